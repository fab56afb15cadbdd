//! The schema, as an ordered list of forward migrations. `PRAGMA user_version` holds the number
//! of migrations applied. A migration is never edited once released; changes are new entries.
//! Every table and column is documented in `docs/schema.md` (a test keeps the two in step).

/// Migration `i` brings the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6];

/// The samples the seed's `savetop` row `OLD` stands for (one host, load and local second):
/// what its delete trigger removes, table by table.
macro_rules! savetop_old_samples {
    () => {
        "SELECT s.id FROM sample s JOIN host h ON h.id = s.host_id
        WHERE h.name = OLD.HostName AND s.load1 = OLD.Load
          AND strftime('%Y-%m-%d %H:%M:%S', s.ts_ms / 1000, 'unixepoch', 'localtime') = OLD.DateAndTime"
    };
}

const V1: &str = concat!(
    r#"
CREATE TABLE host (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE sample (
    id                     INTEGER PRIMARY KEY,
    ts_ms                  INTEGER NOT NULL,
    host_id                INTEGER NOT NULL REFERENCES host(id),
    level                  INTEGER NOT NULL,
    interval_ms            INTEGER NOT NULL,
    late_ms                INTEGER NOT NULL,
    cpu_count              INTEGER NOT NULL,
    load1                  REAL NOT NULL,
    load5                  REAL NOT NULL,
    load15                 REAL NOT NULL,
    cpu_user_pct           REAL NOT NULL,
    cpu_system_pct         REAL NOT NULL,
    cpu_iowait_pct         REAL NOT NULL,
    cpu_steal_pct          REAL NOT NULL,
    cpu_idle_pct           REAL NOT NULL,
    mem_total_bytes        INTEGER NOT NULL,
    mem_used_bytes         INTEGER NOT NULL,
    mem_available_bytes    INTEGER NOT NULL,
    swap_total_bytes       INTEGER NOT NULL,
    swap_used_bytes        INTEGER NOT NULL,
    psi_cpu_some_avg10     REAL,
    psi_cpu_some_total_us  INTEGER,
    psi_cpu_full_avg10     REAL,
    psi_cpu_full_total_us  INTEGER,
    psi_mem_some_avg10     REAL,
    psi_mem_some_total_us  INTEGER,
    psi_mem_full_avg10     REAL,
    psi_mem_full_total_us  INTEGER,
    psi_io_some_avg10      REAL,
    psi_io_some_total_us   INTEGER,
    psi_io_full_avg10      REAL,
    psi_io_full_total_us   INTEGER,
    procs_running          INTEGER NOT NULL,
    procs_blocked          INTEGER NOT NULL,
    procs_total            INTEGER NOT NULL,
    forks_per_s            REAL NOT NULL,
    ctxsw_per_s            REAL NOT NULL,
    disk_read_bytes_per_s  REAL NOT NULL,
    disk_write_bytes_per_s REAL NOT NULL,
    net_rx_bytes_per_s     REAL NOT NULL,
    net_tx_bytes_per_s     REAL NOT NULL,
    net_unattributed_rx_bytes_per_s REAL NOT NULL DEFAULT 0,
    net_unattributed_tx_bytes_per_s REAL NOT NULL DEFAULT 0
);
CREATE INDEX sample_ts ON sample(ts_ms);

CREATE TABLE process (
    id            INTEGER PRIMARY KEY,
    pid           INTEGER NOT NULL,
    start_time_ms INTEGER NOT NULL,
    ppid          INTEGER NOT NULL,
    uid           INTEGER NOT NULL,
    user          TEXT NOT NULL,
    name          TEXT NOT NULL,
    cmdline       TEXT NOT NULL,
    UNIQUE (pid, start_time_ms, name)
);

CREATE TABLE process_sample (
    sample_id     INTEGER NOT NULL,
    process_id    INTEGER NOT NULL,
    state         TEXT NOT NULL,
    cpu_pct_x100  INTEGER NOT NULL,
    rss_kib       INTEGER NOT NULL,
    read_bps      INTEGER NOT NULL,
    write_bps     INTEGER NOT NULL,
    threads       INTEGER NOT NULL,
    net_tx_bps    INTEGER,
    net_rx_bps    INTEGER,
    PRIMARY KEY (sample_id, process_id)
) WITHOUT ROWID;

CREATE TABLE process_detail (
    sample_id  INTEGER NOT NULL,
    process_id INTEGER NOT NULL,
    open_fds   INTEGER,
    wchan      TEXT,
    cgroup     TEXT,
    PRIMARY KEY (sample_id, process_id)
) WITHOUT ROWID;

CREATE TABLE connection (
    sample_id   INTEGER NOT NULL,
    pid         INTEGER,
    protocol    TEXT NOT NULL,
    local_addr  TEXT NOT NULL,
    local_port  INTEGER NOT NULL,
    remote_addr TEXT NOT NULL,
    remote_port INTEGER NOT NULL,
    state       TEXT NOT NULL,
    tx_bps      INTEGER,
    rx_bps      INTEGER
);
CREATE INDEX connection_sample ON connection(sample_id);

CREATE TABLE oom_kill (
    id        INTEGER PRIMARY KEY,
    ts_ms     INTEGER NOT NULL,
    pid       INTEGER NOT NULL,
    name      TEXT NOT NULL,
    rss_bytes INTEGER NOT NULL,
    UNIQUE (ts_ms, pid)
);

CREATE TABLE recorder_event (
    id      INTEGER PRIMARY KEY,
    ts_ms   INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    from_ms INTEGER,
    to_ms   INTEGER,
    count   INTEGER,
    message TEXT NOT NULL
);
CREATE INDEX recorder_event_ts ON recorder_event(ts_ms);

CREATE TABLE recorder_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE VIEW v_sample AS
SELECT s.id AS sample_id,
       strftime('%Y-%m-%d %H:%M:%S', s.ts_ms / 1000, 'unixepoch', 'localtime') AS time_local,
       s.ts_ms, h.name AS host, CASE s.level WHEN 1 THEN 'detail' ELSE 'baseline' END AS level,
       s.late_ms, s.load1, s.load5, s.load15,
       round(100 - s.cpu_idle_pct, 1) AS cpu_busy_pct, s.cpu_iowait_pct, s.cpu_steal_pct,
       s.mem_used_bytes, s.mem_available_bytes, s.swap_used_bytes,
       s.psi_cpu_some_avg10, s.psi_mem_some_avg10, s.psi_mem_full_avg10,
       s.psi_io_some_avg10, s.psi_io_full_avg10,
       s.procs_running, s.procs_blocked, s.procs_total,
       s.disk_read_bytes_per_s, s.disk_write_bytes_per_s,
       s.net_rx_bytes_per_s, s.net_tx_bytes_per_s,
       s.net_unattributed_rx_bytes_per_s, s.net_unattributed_tx_bytes_per_s
FROM sample s JOIN host h ON h.id = s.host_id;

CREATE VIEW v_process_sample AS
SELECT ps.sample_id,
       strftime('%Y-%m-%d %H:%M:%S', s.ts_ms / 1000, 'unixepoch', 'localtime') AS time_local,
       s.ts_ms, p.pid, p.ppid, p.user, p.name, p.cmdline, ps.state,
       ps.cpu_pct_x100 / 100.0 AS cpu_pct, ps.rss_kib * 1024 AS rss_bytes,
       ps.read_bps, ps.write_bps, ps.threads, ps.net_tx_bps, ps.net_rx_bps,
       ps.process_id
FROM process_sample ps
JOIN sample s ON s.id = ps.sample_id
JOIN process p ON p.id = ps.process_id;

-- The seed's own table, so its queries run unchanged on a hogtrap store.
CREATE VIEW savetop AS
SELECT h.name AS HostName,
       strftime('%Y-%m-%d %H:%M:%S', s.ts_ms / 1000, 'unixepoch', 'localtime') AS DateAndTime,
       s.load1 AS Load,
       (SELECT group_concat(line, char(10)) FROM (
            SELECT printf('%7d %-10s %6.1f%% %9d KiB %s', p.pid, p.user,
                          ps.cpu_pct_x100 / 100.0, ps.rss_kib, p.name) AS line
            FROM process_sample ps JOIN process p ON p.id = ps.process_id
            WHERE ps.sample_id = s.id
            ORDER BY ps.cpu_pct_x100 DESC, ps.rss_kib DESC
            LIMIT 10)) AS TopProcesses
FROM sample s JOIN host h ON h.id = s.host_id;

-- The seed trims with `DELETE FROM savetop WHERE Load<1.4`: make that work too.
CREATE TRIGGER savetop_delete INSTEAD OF DELETE ON savetop
BEGIN
    DELETE FROM process_sample WHERE sample_id IN (
        "#,
    savetop_old_samples!(),
    r#");
    DELETE FROM process_detail WHERE sample_id IN (
        "#,
    savetop_old_samples!(),
    r#");
    DELETE FROM connection WHERE sample_id IN (
        "#,
    savetop_old_samples!(),
    r#");
    DELETE FROM sample WHERE id IN (
        "#,
    savetop_old_samples!(),
    r#");
END;
"#,
);

/// Incidents and their culprits, rule state and errors, captures, the alert outbox and its
/// delivery log, and what pruning removed.
const V2: &str = r#"
CREATE TABLE incident (
    id          INTEGER PRIMARY KEY,
    rule        TEXT NOT NULL,
    rule_file   TEXT,
    severity    TEXT NOT NULL,
    title       TEXT NOT NULL,
    opened_ms   INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    closed_ms   INTEGER,
    peak_json   TEXT NOT NULL DEFAULT '{}',
    summary     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX incident_opened ON incident(opened_ms);
CREATE INDEX incident_open ON incident(closed_ms) WHERE closed_ms IS NULL;

CREATE TABLE incident_culprit (
    incident_id INTEGER NOT NULL,
    resource    TEXT NOT NULL,
    rank        INTEGER NOT NULL,
    process_id  INTEGER,
    pid         INTEGER NOT NULL,
    name        TEXT NOT NULL,
    value       REAL NOT NULL,
    PRIMARY KEY (incident_id, resource, rank)
) WITHOUT ROWID;

CREATE TABLE incident_sample (
    incident_id INTEGER NOT NULL,
    sample_id   INTEGER NOT NULL,
    PRIMARY KEY (incident_id, sample_id)
) WITHOUT ROWID;
CREATE INDEX incident_sample_by_sample ON incident_sample(sample_id);

CREATE TABLE capture (
    id          INTEGER PRIMARY KEY,
    incident_id INTEGER,
    rule        TEXT NOT NULL,
    started_ms  INTEGER NOT NULL,
    until_ms    INTEGER NOT NULL,
    ended_ms    INTEGER,
    interval_ms INTEGER NOT NULL,
    connections INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE rule_state (
    rule        TEXT PRIMARY KEY,
    file        TEXT NOT NULL,
    status      TEXT NOT NULL,
    since_ms    INTEGER,
    state_json  TEXT NOT NULL DEFAULT '{}',
    failures    INTEGER NOT NULL DEFAULT 0,
    disabled    INTEGER NOT NULL DEFAULT 0,
    updated_ms  INTEGER NOT NULL
);

CREATE TABLE rule_error (
    id      INTEGER PRIMARY KEY,
    ts_ms   INTEGER NOT NULL,
    rule    TEXT NOT NULL,
    file    TEXT NOT NULL,
    line    INTEGER,
    message TEXT NOT NULL
);
CREATE INDEX rule_error_ts ON rule_error(ts_ms);

CREATE TABLE alert (
    id              INTEGER PRIMARY KEY,
    created_ms      INTEGER NOT NULL,
    incident_id     INTEGER,
    rule            TEXT NOT NULL,
    channel         TEXT NOT NULL,
    kind            TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body_text       TEXT NOT NULL,
    body_html       TEXT,
    urgency         TEXT NOT NULL DEFAULT 'normal',
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    last_error      TEXT,
    sent_ms         INTEGER
);
CREATE INDEX alert_due ON alert(status, next_attempt_ms);

CREATE TABLE alert_attempt (
    id       INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL,
    ts_ms    INTEGER NOT NULL,
    channel  TEXT NOT NULL,
    result   TEXT NOT NULL,
    error    TEXT
);
CREATE INDEX alert_attempt_alert ON alert_attempt(alert_id);

CREATE TABLE prune_log (
    id        INTEGER PRIMARY KEY,
    ts_ms     INTEGER NOT NULL,
    policy    TEXT NOT NULL,
    reason    TEXT NOT NULL,
    tbl       TEXT NOT NULL,
    rows      INTEGER NOT NULL,
    from_ms   INTEGER,
    to_ms     INTEGER
);
"#;

/// The outbox's rate limit and digest look up a rule's recent alerts per channel and status on
/// the sampling path: index them.
const V3: &str = r#"
CREATE INDEX alert_rule_window ON alert(rule, channel, status, created_ms);
"#;

/// What rules' actions say beyond the defaults: `resolve { note = ... }` is kept with the
/// incident, `email { to = ... }` with the alert (its recipients instead of `[email] to`).
const V4: &str = r#"
ALTER TABLE incident ADD COLUMN resolve_note TEXT;
ALTER TABLE alert ADD COLUMN recipients TEXT;
"#;

/// Exit accounting: processes that exited between samples (a row each for the top ones, a
/// roll-up per parent, user and name for the rest), the time a new process's rates cover, and
/// per sample the CPU no process accounts for (where exits are not accounted) and the exit
/// records the kernel dropped.
const V5: &str = r#"
CREATE TABLE process_exit (
    sample_id     INTEGER NOT NULL,
    pid           INTEGER NOT NULL,
    start_time_ms INTEGER NOT NULL,
    ppid          INTEGER NOT NULL,
    uid           INTEGER NOT NULL,
    user          TEXT NOT NULL,
    name          TEXT NOT NULL,
    end_ms        INTEGER NOT NULL,
    exit_code     INTEGER,
    count         INTEGER NOT NULL,
    cpu_us        INTEGER NOT NULL,
    read_bytes    INTEGER NOT NULL,
    write_bytes   INTEGER NOT NULL,
    life_cpu_us   INTEGER NOT NULL,
    life_read_bytes  INTEGER NOT NULL,
    life_write_bytes INTEGER NOT NULL
);
CREATE INDEX process_exit_sample ON process_exit(sample_id);
ALTER TABLE process_sample ADD COLUMN span_ms INTEGER;
ALTER TABLE sample ADD COLUMN cpu_unseen_pct REAL;
ALTER TABLE sample ADD COLUMN exits_lost INTEGER;
"#;

/// Why each sample was taken: `clock`, or what woke the recorder between two clock samples
/// (`psi_cpu`, `psi_memory`, `psi_io`, `oom`; see `model::SampleReason`).
const V6: &str = r#"
ALTER TABLE sample ADD COLUMN reason TEXT NOT NULL DEFAULT 'clock';
"#;
