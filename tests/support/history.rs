//! A month of recorded history, built by code: the fixture retention is tested against.
//!
//! With `now` at a day boundary and `days` days before it (day 0 the oldest, day `days − 1`
//! the last 24 hours):
//! - a baseline sample every minute, with 3 process rows (`init`, `sshd`, and the day's own
//!   `job-D`); load1 is 2.0 from 01:00 to 01:59 and 0.5 otherwise;
//! - from 12:00:00 to 12:59:50 a detail sample every 10 s (load1 0.8), with 12 process rows
//!   (`init`, `sshd`, `job-D`, and nine `worker-D-K` that only detail samples see, ranked by
//!   every resource in that order: `worker-D-9` is the top), 12 `process_detail` rows and 2
//!   connections;
//! - incidents, as [`Incidents`] says.

use std::path::Path;

use rusqlite::{params, Connection};

pub const MINUTE: i64 = 60_000;
pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;

pub const BASELINE_PER_DAY: i64 = 1440;
pub const DETAIL_PER_DAY: i64 = 360;
pub const BASELINE_ROWS: i64 = 3;
pub const DETAIL_ROWS: i64 = 12;
pub const DETAIL_CONNECTIONS: i64 = 2;

/// Incident ids in the fixture.
pub struct Incidents {
    /// Closed, day `days − 20` 03:00–03:30; its samples 03:00–03:30 linked.
    pub a_closed_20d: i64,
    /// Closed, day `days − 25` 05:00–05:20; its samples 05:00–05:20 linked.
    pub b_closed_25d: i64,
    /// Closed, day `days − 10` 12:30–12:40 (over the detail hour).
    pub c_closed_10d: i64,
    /// Open since `now − 36h` (day `days − 2`, 12:00); the baseline samples at 11:48 and 11:49
    /// of that day (its pre-trigger) are linked.
    pub open_36h: i64,
}

/// A millisecond a day starts at: 2026-10-27 00:00 UTC plus `days` days is `now` in the tests.
pub fn day_start(now: i64, days: i64, d: i64) -> i64 {
    now - (days - d) * DAY
}

/// Fills a new store at `path` (created and migrated by the real `Store::open`).
pub fn build(path: &Path, now: i64, days: i64) -> Incidents {
    assert_eq!(now % DAY, 0, "now must be a day boundary");
    drop(hogtrap::store::Store::open(path, std::time::Duration::from_secs(5)).unwrap());
    let mut c = Connection::open(path).unwrap();
    c.execute_batch("PRAGMA synchronous = OFF;").unwrap();
    let tx = c.transaction().unwrap();
    tx.execute("INSERT INTO host (id, name) VALUES (1, 'fixture')", [])
        .unwrap();
    let mut next_process = 1i64;
    let mut identity = |tx: &rusqlite::Transaction, pid: i64, name: &str| -> i64 {
        let id = next_process;
        next_process += 1;
        tx.execute(
            "INSERT INTO process (id, pid, start_time_ms, ppid, uid, user, name, cmdline)
             VALUES (?1, ?2, ?3, 1, 0, 'root', ?4, ?4)",
            params![id, pid, id, name],
        )
        .unwrap();
        id
    };
    let init = identity(&tx, 1, "init");
    let sshd = identity(&tx, 2, "sshd");
    {
        let mut sample = tx
            .prepare(
                "INSERT INTO sample (ts_ms, host_id, level, interval_ms, late_ms, cpu_count, load1,
                 load5, load15, cpu_user_pct, cpu_system_pct, cpu_iowait_pct, cpu_steal_pct,
                 cpu_idle_pct, mem_total_bytes, mem_used_bytes, mem_available_bytes,
                 swap_total_bytes, swap_used_bytes, procs_running, procs_blocked, procs_total,
                 forks_per_s, ctxsw_per_s, disk_read_bytes_per_s, disk_write_bytes_per_s,
                 net_rx_bytes_per_s, net_tx_bytes_per_s)
                 VALUES (?1, 1, ?2, ?3, 0, 4, ?4, ?4, ?4, 10, 5, 0, 0, 85, 8000000000,
                 2000000000, 6000000000, 0, 0, 1, 0, 200, 1, 1000, 0, 0, 0, 0)",
            )
            .unwrap();
        let mut row = tx
            .prepare(
                "INSERT INTO process_sample (sample_id, process_id, state, cpu_pct_x100, rss_kib,
                 read_bps, write_bps, threads, net_tx_bps, net_rx_bps)
                 VALUES (?1, ?2, 'S', ?3, ?4, ?5, 0, 1, ?5, 0)",
            )
            .unwrap();
        let mut detail = tx
            .prepare(
                "INSERT INTO process_detail (sample_id, process_id, open_fds, wchan, cgroup)
                 VALUES (?1, ?2, 10, 'do_wait', '/system.slice')",
            )
            .unwrap();
        let mut conn = tx
            .prepare(
                "INSERT INTO connection (sample_id, pid, protocol, local_addr, local_port,
                 remote_addr, remote_port, state, tx_bps, rx_bps)
                 VALUES (?1, 2, 'tcp', '10.0.0.1', 22, '203.0.113.5', ?2, 'ESTABLISHED', 100, 100)",
            )
            .unwrap();
        for d in 0..days {
            let day = day_start(now, days, d);
            let job = identity(&tx, 1000 + d, &format!("job-{d}"));
            let workers: Vec<i64> = (1..=9)
                .map(|k| identity(&tx, 2000 + d * 10 + k, &format!("worker-{d}-{k}")))
                .collect();
            for m in 0..BASELINE_PER_DAY {
                let ts = day + m * MINUTE;
                let load = if (60..120).contains(&m) { 2.0 } else { 0.5 };
                sample.execute(params![ts, 0, 60_000, load]).unwrap();
                let id = tx.last_insert_rowid();
                for (rank, p) in [init, sshd, job].into_iter().enumerate() {
                    let v = rank as i64 + 1;
                    row.execute(params![id, p, v * 100, v * 1000, v]).unwrap();
                }
            }
            for j in 0..DETAIL_PER_DAY {
                let ts = day + 12 * HOUR + j * 10_000;
                sample.execute(params![ts, 1, 10_000, 0.8]).unwrap();
                let id = tx.last_insert_rowid();
                let all = [init, sshd, job].into_iter().chain(workers.iter().copied());
                for (rank, p) in all.enumerate() {
                    let v = rank as i64 + 1;
                    row.execute(params![id, p, v * 100, v * 1000, v]).unwrap();
                    detail.execute(params![id, p]).unwrap();
                }
                for port in 0..DETAIL_CONNECTIONS {
                    conn.execute(params![id, 40000 + port]).unwrap();
                }
            }
        }
    }
    let incident = |opened: i64, closed: Option<i64>, link: Option<(i64, i64)>| -> i64 {
        tx.execute(
            "INSERT INTO incident (rule, severity, title, opened_ms, updated_ms, closed_ms)
             VALUES ('load_spike', 'warning', 'load', ?1, ?1, ?2)",
            params![opened, closed],
        )
        .unwrap();
        let id = tx.last_insert_rowid();
        if let Some((from, to)) = link {
            tx.execute(
                "INSERT INTO incident_sample (incident_id, sample_id)
                 SELECT ?1, id FROM sample WHERE level = 0 AND ts_ms BETWEEN ?2 AND ?3",
                params![id, from, to],
            )
            .unwrap();
        }
        id
    };
    let a = day_start(now, days, days - 20);
    let a_closed_20d = incident(
        a + 3 * HOUR,
        Some(a + 3 * HOUR + 30 * MINUTE),
        Some((a + 3 * HOUR, a + 3 * HOUR + 30 * MINUTE)),
    );
    let b = day_start(now, days, days - 25);
    let b_closed_25d = incident(
        b + 5 * HOUR,
        Some(b + 5 * HOUR + 20 * MINUTE),
        Some((b + 5 * HOUR, b + 5 * HOUR + 20 * MINUTE)),
    );
    let c10 = day_start(now, days, days - 10);
    let c_closed_10d = incident(
        c10 + 12 * HOUR + 30 * MINUTE,
        Some(c10 + 12 * HOUR + 40 * MINUTE),
        None,
    );
    let o = now - 36 * HOUR;
    let open_36h = incident(o, None, Some((o - 12 * MINUTE, o - 11 * MINUTE)));
    tx.commit().unwrap();
    Incidents {
        a_closed_20d,
        b_closed_25d,
        c_closed_10d,
        open_36h,
    }
}

/// `SELECT count(*)`-style helper.
pub fn count(c: &Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}
