//! `store` is the only part that speaks SQL. One SQLite file, one writer (the daemon), any
//! number of read-only readers (the CLI).
//!
//! Guarantees:
//! - Each sample is written in one transaction: after a crash (even `kill -9`) a sample is
//!   either all there or not at all, and the file passes `PRAGMA integrity_check` (WAL,
//!   `synchronous=NORMAL`: a power loss may lose the last commits, never corrupt).
//! - The schema version is `PRAGMA user_version`; opening for writing applies the missing
//!   forward migrations in one transaction each.
//! - Process identity is stored once per (pid, start time); per-sample rows are compact
//!   integers in a `WITHOUT ROWID` table.
//! - Readers open the file read-only with `query_only`, so no query can change the record, and
//!   WAL means a long read never blocks the writer.

pub mod checkpoint;
pub mod exits;
pub mod incident;
pub mod outbox;
pub mod query;
pub mod replay;
pub mod report;
pub mod retention;
pub mod schema;
mod vocab;
pub mod wake;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};

use crate::model::{Sample, TimestampMs};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: the disk is full ({source})")]
    DiskFull {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{path}: the database is locked by another process ({source})")]
    Busy {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{path}: not a hogtrap database or corrupt ({source}); move it aside and hogtrap starts a new one")]
    Corrupt {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{path}: schema version {found} is newer than this hogtrap knows ({known}); upgrade hogtrap")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl StoreError {
    fn from_sqlite(path: &Path, e: rusqlite::Error) -> StoreError {
        let path = path.to_path_buf();
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::DiskFull { path, source: e },
            Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
                StoreError::Busy { path, source: e }
            }
            Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase) => {
                StoreError::Corrupt { path, source: e }
            }
            _ => StoreError::Sqlite { path, source: e },
        }
    }

    /// Errors that may pass by themselves (space freed, lock released): keep the sample and
    /// retry.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::DiskFull { .. } | StoreError::Busy { .. })
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// An entry in the recorder's own health log, as written and as read back.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecorderEvent {
    pub ts_ms: TimestampMs,
    /// `start`, `stop`, `gap`, `late`, `stall`, `dropped`, `error`, `protect`, `notice`, `reload`,
    /// `prune`.
    pub kind: String,
    pub from_ms: Option<TimestampMs>,
    pub to_ms: Option<TimestampMs>,
    pub count: Option<i64>,
    pub message: String,
}

impl RecorderEvent {
    pub fn now(kind: &str, message: impl Into<String>) -> RecorderEvent {
        RecorderEvent {
            ts_ms: jiff::Timestamp::now().as_millisecond(),
            kind: kind.to_owned(),
            from_ms: None,
            to_ms: None,
            count: None,
            message: message.into(),
        }
    }
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    host_ids: HashMap<String, i64>,
    /// (pid, start_time_ms, name) → process.id; bounded, rebuilt from the table on a miss.
    process_ids: HashMap<(u32, i64, String), i64>,
    /// `PRAGMA data_version` when `process_ids` was last known good: another connection's
    /// commit (pruning removes orphaned identities) invalidates the cache.
    data_version: i64,
}

const PROCESS_ID_CACHE_MAX: usize = 50_000;

impl Store {
    /// Opens (creating if needed) the store for writing and migrates it to the current schema.
    /// A new store is private to its owner (mode 0600).
    pub fn open(path: &Path, busy_timeout: std::time::Duration) -> Result<Store> {
        Store::open_with_access(path, busy_timeout, crate::files::Access::default()).map(|(s, _)| s)
    }

    /// [`Store::open`], creating a new store and its `-wal` and `-shm` with exactly `access`
    /// whatever the umask. Returns the files of an existing store that are more open than
    /// `access`, for the caller to warn about (they are left as they are).
    pub fn open_with_access(
        path: &Path,
        busy_timeout: std::time::Duration,
        access: crate::files::Access,
    ) -> Result<(Store, Vec<crate::files::TooOpen>)> {
        let io_err = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let loose = crate::files::prepare_db(path, access).map_err(io_err)?;
        let err = |e| StoreError::from_sqlite(path, e);
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(busy_timeout).map_err(err)?;
        // auto_vacuum must be set before the first table exists; harmless later.
        conn.execute_batch(
            "PRAGMA auto_vacuum = INCREMENTAL;
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA journal_size_limit = 16777216;
             PRAGMA foreign_keys = OFF;
             PRAGMA temp_store = MEMORY;",
        )
        .map_err(err)?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            host_ids: HashMap::new(),
            process_ids: HashMap::new(),
            data_version: 0,
        };
        store.migrate()?;
        // SQLite gives a new -wal and -shm the main file's mode, and its group only as root:
        // a private main file means the sidecars (now both open) get `access` too.
        if loose.is_empty() {
            for side in &crate::files::with_sidecars(path)[1..] {
                access.apply_to_path(side).map_err(io_err)?;
            }
        }
        Ok((store, crate::files::too_open(path, access)))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        StoreError::from_sqlite(&self.path, e)
    }

    /// The first column of the first row `sql` returns; `None` when it returns no row.
    fn first_value<T: rusqlite::types::FromSql>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Option<T>> {
        self.conn
            .query_row(sql, params, |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn schema_version(&self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    fn migrate(&mut self) -> Result<()> {
        let found = self.schema_version()?;
        let known = schema::MIGRATIONS.len() as i64;
        if found > known {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found,
                known,
            });
        }
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(found as usize) {
            let tx = self
                .conn
                .transaction()
                .map_err(|e| StoreError::from_sqlite(&self.path, e))?;
            tx.execute_batch(sql)
                .and_then(|_| tx.pragma_update(None, "user_version", i as i64 + 1))
                .and_then(|_| tx.commit())
                .map_err(|e| StoreError::from_sqlite(&self.path, e))?;
        }
        Ok(())
    }

    /// Writes one sample in one transaction; returns its id.
    pub fn write_sample(&mut self, s: &Sample) -> Result<i64> {
        let host_id = self.host_id(&s.host_name)?;
        if self.process_ids.len() > PROCESS_ID_CACHE_MAX {
            self.process_ids.clear();
        }
        let tx = self
            .conn
            .transaction()
            .map_err(|e| StoreError::from_sqlite(&self.path, e))?;
        let sample_id = insert_sample(&tx, s, host_id)
            .and_then(|id| {
                // The write lock is held from here on: no other connection can commit until
                // this transaction ends, so a cache found valid now stays valid.
                check_identity_cache(&tx, &mut self.data_version, &mut self.process_ids)?;
                insert_rows(&tx, id, s, &mut self.process_ids, false)?;
                exits::insert(&tx, id, s).map(|_| id)
            })
            .and_then(|id| tx.commit().map(|_| id));
        match sample_id {
            Ok(id) => Ok(id),
            Err(e) => {
                // The transaction rolled back: identities cached during it may not exist.
                self.process_ids.clear();
                Err(self.err(e))
            }
        }
    }

    /// Adds the process rows (and detail, connections) of `s` to an already stored sample,
    /// keeping rows that are already there.
    pub(crate) fn write_process_rows(&mut self, sample_id: i64, s: &Sample) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| StoreError::from_sqlite(&self.path, e))?;
        let r = check_identity_cache(&tx, &mut self.data_version, &mut self.process_ids)
            .and_then(|_| insert_rows(&tx, sample_id, s, &mut self.process_ids, true))
            .and_then(|_| tx.commit());
        if let Err(e) = r {
            self.process_ids.clear();
            return Err(self.err(e));
        }
        Ok(())
    }

    fn host_id(&mut self, name: &str) -> Result<i64> {
        if let Some(&id) = self.host_ids.get(name) {
            return Ok(id);
        }
        self.conn
            .execute("INSERT OR IGNORE INTO host (name) VALUES (?1)", [name])
            .map_err(|e| self.err(e))?;
        let id: i64 = self
            .conn
            .query_row("SELECT id FROM host WHERE name = ?1", [name], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        self.host_ids.insert(name.to_string(), id);
        Ok(id)
    }

    pub fn record_event(&mut self, e: &RecorderEvent) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO recorder_event (ts_ms, kind, from_ms, to_ms, count, message)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    e.ts_ms, e.kind, e.from_ms, e.to_ms, e.count, e.message
                ])
            })
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Time of the newest sample, to find the gap a restart left.
    pub fn last_sample_ts(&self) -> Result<Option<(TimestampMs, u64)>> {
        self.conn
            .query_row(
                "SELECT ts_ms, interval_ms FROM sample ORDER BY ts_ms DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// A value of `recorder_state`, if set.
    pub fn get_state(&self, key: &str) -> Result<Option<String>> {
        self.first_value("SELECT value FROM recorder_state WHERE key = ?1", [key])
    }

    pub fn set_state(&mut self, key: &str, value: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO recorder_state (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Whether the previous run recorded its `stop` (true for a new store).
    pub fn last_run_stopped_cleanly(&self) -> Result<bool> {
        self.first_value::<String>(
            "SELECT kind FROM recorder_event WHERE kind IN ('start', 'stop')
             ORDER BY id DESC LIMIT 1",
            [],
        )
        .map(|k| k.is_none_or(|k| k == "stop"))
    }

    /// The newest OOM kill already recorded, so a restart does not record old ones twice.
    pub fn last_oom_kill_ts(&self) -> Result<Option<TimestampMs>> {
        self.conn
            .query_row("SELECT max(ts_ms) FROM oom_kill", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Queues an alert on the sampler's connection; see [`outbox::enqueue`]. The delivery
    /// worker, on its own connection, sends it.
    pub fn enqueue_alert(
        &mut self,
        alert: &outbox::NewAlert,
        channels: &[outbox::Channel],
        rate_limit_ms: i64,
    ) -> Result<Vec<outbox::Enqueued>> {
        outbox::enqueue(&self.conn, alert, channels, rate_limit_ms).map_err(|e| self.err(e))
    }

    /// Direct access for the query layer and tests in this crate.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

/// Forgets cached process ids when another connection committed since they were read (the
/// pruner removes orphaned identities). Call with the write lock held.
fn check_identity_cache(
    tx: &rusqlite::Transaction,
    data_version: &mut i64,
    process_ids: &mut HashMap<(u32, i64, String), i64>,
) -> rusqlite::Result<()> {
    let version: i64 = tx.query_row("PRAGMA data_version", [], |r| r.get(0))?;
    if version != *data_version {
        process_ids.clear();
        *data_version = version;
    }
    Ok(())
}

/// The per-process (with the span of their rates), connection and OOM rows of a sample.
/// `keep_existing`: leave rows already stored for this sample as they are (upgrading a
/// baseline sample to detail).
fn insert_rows(
    tx: &rusqlite::Transaction,
    id: i64,
    s: &Sample,
    process_ids: &mut HashMap<(u32, i64, String), i64>,
    keep_existing: bool,
) -> rusqlite::Result<()> {
    let verb = if keep_existing {
        "INSERT OR IGNORE"
    } else {
        "INSERT OR REPLACE"
    };
    for p in &s.processes {
        let pid_key = (p.id.pid, p.id.start_time_ms, p.id.name.clone());
        let process_id = match process_ids.get(&pid_key) {
            Some(&id) => id,
            None => {
                let id = upsert_process(tx, &p.id)?;
                process_ids.insert(pid_key, id);
                id
            }
        };
        tx.prepare_cached(&format!(
            "{verb} INTO process_sample (sample_id, process_id, state,
             cpu_pct_x100, rss_kib, read_bps, write_bps, threads, net_tx_bps,
             net_rx_bps) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        ))?
        .execute(params![
            id,
            process_id,
            p.state.to_string(),
            (p.cpu_pct * 100.0).round() as i64,
            (p.rss_bytes / 1024) as i64,
            p.read_bytes_per_s.round() as i64,
            p.write_bytes_per_s.round() as i64,
            p.threads,
            p.net_tx_bytes_per_s.map(|v| v.round() as i64),
            p.net_rx_bytes_per_s.map(|v| v.round() as i64),
        ])?;
        if let Some(x) = &p.extra {
            tx.prepare_cached(&format!(
                "{verb} INTO process_detail (sample_id, process_id,
                 open_fds, wchan, cgroup) VALUES (?1, ?2, ?3, ?4, ?5)"
            ))?
            .execute(params![id, process_id, x.open_fds, x.wchan, x.cgroup])?;
        }
    }
    for c in &s.connections {
        tx.prepare_cached(
            "INSERT INTO connection (sample_id, pid, protocol, local_addr,
             local_port, remote_addr, remote_port, state, tx_bps, rx_bps)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            id,
            c.pid,
            match c.protocol {
                crate::model::Protocol::Tcp => "tcp",
                crate::model::Protocol::Udp => "udp",
            },
            c.local_addr,
            c.local_port,
            c.remote_addr,
            c.remote_port,
            c.state,
            c.tx_bytes_per_s.map(|v| v.round() as i64),
            c.rx_bytes_per_s.map(|v| v.round() as i64),
        ])?;
    }
    for k in &s.oom_kills {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO oom_kill (ts_ms, pid, name, rss_bytes)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![k.ts_ms, k.pid, k.name, k.rss_bytes as i64])?;
    }
    exits::spans(tx, id, s, process_ids)
}

fn insert_sample(tx: &rusqlite::Transaction, s: &Sample, host_id: i64) -> rusqlite::Result<i64> {
    let h = &s.host;
    let psi = |p: &Option<crate::model::Psi>| {
        (
            p.map(|p| p.some_avg10),
            p.map(|p| p.some_total_us as i64),
            p.and_then(|p| p.full_avg10),
            p.and_then(|p| p.full_total_us.map(|v| v as i64)),
        )
    };
    let (c0, c1, c2, c3) = psi(&h.psi_cpu);
    let (m0, m1, m2, m3) = psi(&h.psi_memory);
    let (i0, i1, i2, i3) = psi(&h.psi_io);
    tx.prepare_cached(
        "INSERT INTO sample (ts_ms, host_id, level, interval_ms, late_ms, cpu_count,
         load1, load5, load15, cpu_user_pct, cpu_system_pct, cpu_iowait_pct, cpu_steal_pct,
         cpu_idle_pct, mem_total_bytes, mem_used_bytes, mem_available_bytes, swap_total_bytes,
         swap_used_bytes, psi_cpu_some_avg10, psi_cpu_some_total_us, psi_cpu_full_avg10,
         psi_cpu_full_total_us, psi_mem_some_avg10, psi_mem_some_total_us, psi_mem_full_avg10,
         psi_mem_full_total_us, psi_io_some_avg10, psi_io_some_total_us, psi_io_full_avg10,
         psi_io_full_total_us, procs_running, procs_blocked, procs_total, forks_per_s,
         ctxsw_per_s, disk_read_bytes_per_s, disk_write_bytes_per_s, net_rx_bytes_per_s,
         net_tx_bytes_per_s, net_unattributed_rx_bytes_per_s, net_unattributed_tx_bytes_per_s,
         reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
         ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34,
         ?35, ?36, ?37, ?38, ?39, ?40, ?41, ?42, ?43)",
    )?
    .execute(params![
        s.ts_ms,
        host_id,
        s.level,
        s.interval_ms as i64,
        s.late_ms as i64,
        s.cpu_count,
        h.load1,
        h.load5,
        h.load15,
        h.cpu_user_pct,
        h.cpu_system_pct,
        h.cpu_iowait_pct,
        h.cpu_steal_pct,
        h.cpu_idle_pct,
        h.mem_total_bytes as i64,
        h.mem_used_bytes as i64,
        h.mem_available_bytes as i64,
        h.swap_total_bytes as i64,
        h.swap_used_bytes as i64,
        c0,
        c1,
        c2,
        c3,
        m0,
        m1,
        m2,
        m3,
        i0,
        i1,
        i2,
        i3,
        h.procs_running,
        h.procs_blocked,
        h.procs_total,
        h.forks_per_s,
        h.ctxsw_per_s,
        h.disk_read_bytes_per_s,
        h.disk_write_bytes_per_s,
        h.net_rx_bytes_per_s,
        h.net_tx_bytes_per_s,
        h.net_unattributed_rx_bytes_per_s,
        h.net_unattributed_tx_bytes_per_s,
        s.reason,
    ])?;
    Ok(tx.last_insert_rowid())
}

fn upsert_process(
    tx: &rusqlite::Transaction,
    p: &crate::model::ProcessIdentity,
) -> rusqlite::Result<i64> {
    tx.prepare_cached(
        "INSERT INTO process (pid, start_time_ms, ppid, uid, user, name, cmdline)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (pid, start_time_ms, name) DO NOTHING",
    )?
    .execute(params![
        p.pid,
        p.start_time_ms,
        p.ppid,
        p.uid,
        p.user,
        p.name,
        crate::format::redact(&p.cmdline)
    ])?;
    tx.prepare_cached("SELECT id FROM process WHERE pid = ?1 AND start_time_ms = ?2 AND name = ?3")?
        .query_row(params![p.pid, p.start_time_ms, p.name], |r| r.get(0))
}

/// A clear error for a store file that is not there (a second connection or a reader must
/// not create an empty one). `hint` says what to do.
pub(crate) fn require_existing(path: &Path, hint: &str) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    Err(StoreError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no such store; {hint}"),
        ),
    })
}

/// What to do about a missing store, for readers.
pub(crate) const START_FIRST: &str =
    "start `hogtrap run` first or pass -c with the right [store] path";

/// Opens an existing store read-write for a second writer (the checkpointer, the pruner),
/// with `busy_timeout` and the connection's `pragmas`.
pub(crate) fn open_existing_read_write(
    path: &Path,
    busy_timeout: std::time::Duration,
    pragmas: &str,
) -> Result<Connection> {
    open_existing(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE,
        busy_timeout,
        pragmas,
    )
}

/// Opens the store read-only for queries. Fails clearly when the file does not exist.
pub fn open_read_only(path: &Path) -> Result<Connection> {
    let conn = open_existing(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY,
        std::time::Duration::from_secs(5),
        "PRAGMA query_only = ON;",
    )?;
    // Touch the schema so a non-database fails here, with a clear error.
    conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(|e| StoreError::from_sqlite(path, e))?;
    Ok(conn)
}

/// Opens a connection (`mode` plus no mutex) to a store that must exist: a second connection
/// or a reader must not create an empty one, so a missing file is a clear error.
fn open_existing(
    path: &Path,
    mode: OpenFlags,
    busy_timeout: std::time::Duration,
    pragmas: &str,
) -> Result<Connection> {
    require_existing(path, START_FIRST)?;
    let err = |e| StoreError::from_sqlite(path, e);
    let conn =
        Connection::open_with_flags(path, mode | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(err)?;
    conn.busy_timeout(busy_timeout).map_err(err)?;
    conn.execute_batch(pragmas).map_err(err)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ProcessIdentity, ProcessRow};

    /// The first column of the one row `sql` returns.
    fn value<T: rusqlite::types::FromSql>(c: &Connection, sql: &str) -> T {
        c.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    fn sample(ts: i64, pids: &[u32]) -> Sample {
        Sample {
            ts_ms: ts,
            host_name: "h1".into(),
            cpu_count: 2,
            interval_ms: 1000,
            processes: pids
                .iter()
                .map(|&pid| ProcessRow {
                    id: ProcessIdentity {
                        pid,
                        start_time_ms: 5,
                        name: format!("p{pid}"),
                        user: "root".into(),
                        ..Default::default()
                    },
                    state: 'R',
                    cpu_pct: 12.34,
                    rss_bytes: 4096 * 1024,
                    threads: 1,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn writes_and_reuses_identities() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut st = Store::open(&path, std::time::Duration::from_millis(100)).unwrap();
        st.write_sample(&sample(1000, &[1, 2])).unwrap();
        st.write_sample(&sample(2000, &[2, 3])).unwrap();
        let c = st.connection();
        let n: i64 = value(c, "SELECT count(*) FROM process");
        assert_eq!(n, 3);
        let rows: i64 = value(c, "SELECT count(*) FROM process_sample");
        assert_eq!(rows, 4);
        let cpu: f64 = value(c, "SELECT cpu_pct FROM v_process_sample LIMIT 1");
        assert!((cpu - 12.34).abs() < 1e-9);
        assert_eq!(
            st.schema_version().unwrap(),
            schema::MIGRATIONS.len() as i64
        );
    }

    /// Pruning (another connection) may remove an identity the writer has cached; the next
    /// write must not refer to the removed row.
    #[test]
    fn identity_cache_survives_pruning_by_another_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut st = Store::open(&path, std::time::Duration::from_millis(100)).unwrap();
        st.write_sample(&sample(1000, &[7])).unwrap();
        let other = Connection::open(&path).unwrap();
        other
            .execute_batch("DELETE FROM process_sample; DELETE FROM sample; DELETE FROM process;")
            .unwrap();
        st.write_sample(&sample(2000, &[7])).unwrap();
        let dangling: i64 = value(
            st.connection(),
            "SELECT count(*) FROM process_sample WHERE process_id NOT IN (SELECT id FROM process)",
        );
        assert_eq!(dangling, 0);
    }

    #[test]
    fn reopen_does_not_migrate_twice_and_refuses_newer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(Store::open(&path, std::time::Duration::from_millis(100)).unwrap());
        drop(Store::open(&path, std::time::Duration::from_millis(100)).unwrap());
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        let e = Store::open(&path, std::time::Duration::from_millis(100))
            .err()
            .unwrap();
        assert!(e.to_string().contains("newer"), "{e}");
    }

    #[test]
    fn savetop_view_and_seed_delete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut st = Store::open(&path, std::time::Duration::from_millis(100)).unwrap();
        let mut a = sample(1_000_000, &[1]);
        a.host.load1 = 2.0;
        let mut b = sample(2_000_000, &[1]);
        b.host.load1 = 0.5;
        st.write_sample(&a).unwrap();
        st.write_sample(&b).unwrap();
        let c = st.connection();
        let n: i64 = value(c, "SELECT COUNT(HostName) FROM savetop WHERE Load>1.4");
        assert_eq!(n, 1);
        let top: String = value(c, "SELECT TopProcesses FROM savetop WHERE Load>1.4");
        assert!(top.contains("p1"), "{top}");
        c.execute("DELETE FROM savetop WHERE Load<1.4", []).unwrap();
        let left: i64 = value(c, "SELECT COUNT(HostName) FROM savetop");
        assert_eq!(left, 1);
        let rows: i64 = value(c, "SELECT count(*) FROM process_sample");
        assert_eq!(rows, 1);
    }

    /// Each migration upgrades a store made by the version before it, keeping its rows.
    #[test]
    fn every_migration_applies_to_a_store_of_the_previous_version() {
        for version in 1..schema::MIGRATIONS.len() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("old.db");
            {
                let c = Connection::open(&path).unwrap();
                c.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL;")
                    .unwrap();
                for sql in &schema::MIGRATIONS[..version] {
                    c.execute_batch(sql).unwrap();
                }
                c.pragma_update(None, "user_version", version as i64)
                    .unwrap();
                c.execute("INSERT INTO host (name) VALUES ('old')", [])
                    .unwrap();
            }
            let mut st = Store::open(&path, std::time::Duration::from_millis(100)).unwrap();
            assert_eq!(
                st.schema_version().unwrap(),
                schema::MIGRATIONS.len() as i64
            );
            st.write_sample(&sample(1000, &[1])).unwrap();
            let hosts: i64 = value(
                st.connection(),
                "SELECT count(*) FROM host WHERE name = 'old'",
            );
            assert_eq!(hosts, 1, "rows of v{version} survive the migration");
        }
    }

    #[test]
    fn corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
        let e = Store::open(&path, std::time::Duration::from_millis(100))
            .err()
            .unwrap();
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), vec![0x42u8; 8192]);
    }
}
