//! Read-only questions asked of the store: what ran at T, the top consumers over a range, the
//! recorder's health, and plain SQL from the user. Everything here takes a read-only
//! connection from [`super::open_read_only`].

use super::vocab::{all_rows, from_row};
use super::RecorderEvent;
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension};

use crate::format::redact_owned;
use crate::model::{Level, TimestampMs};

use crate::model::Resource;

/// The per-row value of a resource, in its unit (%, bytes, bytes/s, bytes/s).
pub(super) fn expr(r: Resource) -> &'static str {
    match r {
        Resource::Cpu => "ps.cpu_pct_x100 / 100.0",
        Resource::Mem => "ps.rss_kib * 1024",
        Resource::Io => "(ps.read_bps + ps.write_bps)",
        Resource::Net => "(coalesce(ps.net_tx_bps, 0) + coalesce(ps.net_rx_bps, 0))",
    }
}

/// One process in one sample, in display units.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProcessAt {
    pub pid: u32,
    pub user: String,
    pub name: String,
    pub cmdline: String,
    pub state: String,
    pub cpu_pct: f64,
    pub rss_bytes: i64,
    pub read_bytes_per_s: i64,
    pub write_bytes_per_s: i64,
    pub threads: i64,
    pub net_tx_bytes_per_s: Option<i64>,
    pub net_rx_bytes_per_s: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SampleHead {
    pub sample_id: i64,
    pub ts_ms: TimestampMs,
    pub host: String,
    pub level: Level,
    pub load1: f64,
    pub cpu_busy_pct: f64,
    pub mem_used_bytes: i64,
    pub procs_total: i64,
}

/// The newest sample at or before `at`.
pub fn sample_at(conn: &Connection, at: TimestampMs) -> rusqlite::Result<Option<SampleHead>> {
    conn.query_row(
        "SELECT s.id, s.ts_ms, h.name, s.level, s.load1, 100 - s.cpu_idle_pct,
                s.mem_used_bytes, s.procs_total
         FROM sample s JOIN host h ON h.id = s.host_id
         WHERE s.ts_ms <= ?1 ORDER BY s.ts_ms DESC LIMIT 1",
        [at],
        |r| {
            Ok(from_row!(r => SampleHead {
                sample_id, ts_ms, host, level, load1, cpu_busy_pct, mem_used_bytes, procs_total
            }))
        },
    )
    .optional()
}

/// The processes of one sample, highest first by `by`.
pub fn processes_of_sample(
    conn: &Connection,
    sample_id: i64,
    by: Resource,
    n: usize,
) -> rusqlite::Result<Vec<ProcessAt>> {
    let sql = format!(
        "SELECT p.pid, p.user, p.name, p.cmdline, ps.state, ps.cpu_pct_x100 / 100.0,
                ps.rss_kib * 1024, ps.read_bps, ps.write_bps, ps.threads, ps.net_tx_bps,
                ps.net_rx_bps
         FROM process_sample ps JOIN process p ON p.id = ps.process_id
         WHERE ps.sample_id = ?1
         ORDER BY {} DESC, ps.cpu_pct_x100 DESC LIMIT ?2",
        expr(by)
    );
    all_rows(conn, &sql, params![sample_id, n as i64], |r| {
        Ok(from_row!(r => ProcessAt {
            pid, user, name, cmdline => redact_owned, state, cpu_pct, rss_bytes, read_bytes_per_s,
            write_bytes_per_s, threads, net_tx_bytes_per_s, net_rx_bytes_per_s
        }))
    })
}

/// One process's consumption over a range.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProcessOverRange {
    /// `process.id`: one process identity (pid, start time, name); 0 for a process only its
    /// exit record shows.
    pub process_id: i64,
    pub pid: u32,
    pub user: String,
    pub name: String,
    pub cmdline: String,
    /// Samples the process was recorded in (baseline keeps only the top processes).
    pub samples: i64,
    /// Mean and peak of the resource over those samples, in its unit.
    pub avg: f64,
    pub peak: f64,
    /// The integral over time: CPU-seconds for cpu, bytes for io and net; for mem, the peak.
    /// Exits included.
    pub total: f64,
    /// Exited processes the entry stands for (a roll-up of many, pid 0, or 1).
    pub exited: i64,
}

/// The top processes of a range by their real totals (counter deltas over the time each was
/// observed, exits included; see [`super::exits`]).
pub fn top_over_range(
    conn: &Connection,
    from: TimestampMs,
    to: TimestampMs,
    by: Resource,
    n: usize,
) -> rusqlite::Result<Vec<ProcessOverRange>> {
    let sql = format!(
        "SELECT t.id, t.pid, t.user, t.name, t.cmdline, t.samples, coalesce(t.avg, 0.0),
                coalesce(t.peak, 0.0), coalesce(t.total, 0.0), t.exited
         FROM ({}) t ORDER BY t.total DESC LIMIT ?3",
        super::exits::per_process_sql(by)
    );
    all_rows(conn, &sql, params![from, to, n as i64], |r| {
        Ok(from_row!(r => ProcessOverRange {
            process_id, pid, user, name, cmdline => redact_owned, samples, avg, peak, total, exited
        }))
    })
}

pub fn count_samples(
    conn: &Connection,
    from: TimestampMs,
    to: TimestampMs,
) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT count(*) FROM sample WHERE ts_ms BETWEEN ?1 AND ?2",
        [from, to],
        |r| r.get(0),
    )
}

/// The recorder's health, for `hogtrap status`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Status {
    pub schema_version: i64,
    pub samples: i64,
    pub first_ts_ms: Option<TimestampMs>,
    pub last_ts_ms: Option<TimestampMs>,
    pub last_level: Option<Level>,
    pub daemon_pid: Option<i64>,
    pub interval_ms: Option<i64>,
    pub db_bytes: i64,
    pub events: Vec<RecorderEvent>,
    pub oom_kills: Vec<(TimestampMs, i64, String, i64)>,
}

pub fn events_since(conn: &Connection, since: TimestampMs) -> rusqlite::Result<Vec<RecorderEvent>> {
    all_rows(
        conn,
        "SELECT ts_ms, kind, from_ms, to_ms, count, message FROM recorder_event
         WHERE ts_ms >= ?1 ORDER BY ts_ms",
        [since],
        |r| Ok(from_row!(r => RecorderEvent { ts_ms, kind, from_ms, to_ms, count, message })),
    )
}

pub fn status(conn: &Connection, events_since_ms: TimestampMs) -> rusqlite::Result<Status> {
    let (samples, first, last): (i64, Option<i64>, Option<i64>) = conn.query_row(
        "SELECT count(*), min(ts_ms), max(ts_ms) FROM sample",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let last_level = conn
        .query_row(
            "SELECT level FROM sample ORDER BY ts_ms DESC LIMIT 1",
            [],
            |r| r.get::<_, Level>(0),
        )
        .optional()?;
    let state = |k: &str| -> rusqlite::Result<Option<i64>> {
        conn.query_row(
            "SELECT value FROM recorder_state WHERE key = ?1",
            [k],
            |r| r.get::<_, String>(0),
        )
        .optional()
        .map(|v| v.and_then(|v| v.parse().ok()))
    };
    let page_count: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let mut st = conn.prepare(
        "SELECT ts_ms, pid, name, rss_bytes FROM oom_kill WHERE ts_ms >= ?1 ORDER BY ts_ms",
    )?;
    let oom_kills = st
        .query_map([events_since_ms], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Status {
        schema_version: conn.query_row("PRAGMA user_version", [], |r| r.get(0))?,
        samples,
        first_ts_ms: first,
        last_ts_ms: last,
        last_level,
        daemon_pid: state("pid")?,
        interval_ms: state("interval_ms")?,
        db_bytes: page_count * page_size,
        events: events_since(conn, events_since_ms)?,
        oom_kills,
    })
}

/// The result of a user's query.
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("only read-only statements are allowed (SELECT, WITH, EXPLAIN, read-only PRAGMA)")]
    NotReadOnly,
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// Runs one read-only statement from the user.
pub fn run_sql(conn: &Connection, sql: &str) -> Result<QueryResult, SqlError> {
    let mut st = conn.prepare(sql)?;
    if !st.readonly() {
        return Err(SqlError::NotReadOnly);
    }
    let columns: Vec<String> = st.column_names().iter().map(|c| c.to_string()).collect();
    let n = columns.len();
    let mut rows = Vec::new();
    let mut q = st.query([])?;
    while let Some(r) = q.next()? {
        let mut row = Vec::with_capacity(n);
        for i in 0..n {
            row.push(r.get::<_, Value>(i)?);
        }
        rows.push(row);
    }
    Ok(QueryResult { columns, rows })
}

/// Stored samples between `from` and `to`, oldest first, rebuilt as [`Sample`]s (for
/// backtests and to refill the rules' history after a restart). Process rows only when
/// `with_processes`; per-process extras and connections are not rebuilt.
pub fn load_samples(
    conn: &Connection,
    from: TimestampMs,
    to: TimestampMs,
    with_processes: bool,
) -> rusqlite::Result<Vec<crate::model::Sample>> {
    use crate::model::{HostRow, Psi, Sample};
    let mut st = conn.prepare(
        "SELECT s.id, s.ts_ms, h.name, s.cpu_count, s.level, s.interval_ms, s.late_ms,
                s.load1, s.load5, s.load15, s.cpu_user_pct, s.cpu_system_pct, s.cpu_iowait_pct,
                s.cpu_steal_pct, s.cpu_idle_pct, s.mem_total_bytes, s.mem_used_bytes,
                s.mem_available_bytes, s.swap_total_bytes, s.swap_used_bytes,
                s.procs_running, s.procs_blocked, s.procs_total, s.forks_per_s, s.ctxsw_per_s,
                s.disk_read_bytes_per_s, s.disk_write_bytes_per_s, s.net_rx_bytes_per_s,
                s.net_tx_bytes_per_s, s.net_unattributed_rx_bytes_per_s,
                s.net_unattributed_tx_bytes_per_s,
                s.psi_cpu_some_avg10, s.psi_cpu_some_total_us, s.psi_cpu_full_avg10,
                s.psi_cpu_full_total_us, s.psi_mem_some_avg10, s.psi_mem_some_total_us,
                s.psi_mem_full_avg10, s.psi_mem_full_total_us, s.psi_io_some_avg10,
                s.psi_io_some_total_us, s.psi_io_full_avg10, s.psi_io_full_total_us, s.reason
         FROM sample s JOIN host h ON h.id = s.host_id
         WHERE s.ts_ms BETWEEN ?1 AND ?2 ORDER BY s.ts_ms",
    )?;
    let psi = |r: &rusqlite::Row, i: usize| -> rusqlite::Result<Option<Psi>> {
        let some: Option<f64> = r.get(i)?;
        Ok(match some {
            None => None,
            Some(avg) => Some(Psi {
                some_avg10: avg,
                some_total_us: r.get::<_, Option<i64>>(i + 1)?.unwrap_or(0) as u64,
                full_avg10: r.get(i + 2)?,
                full_total_us: r.get::<_, Option<i64>>(i + 3)?.map(|v| v as u64),
            }),
        })
    };
    let as_u64 = |v: i64| v as u64;
    let rows = st.query_map(params![from, to], |r| {
        let id: i64 = r.get(0)?;
        Ok((
            id,
            Sample {
                ts_ms: r.get(1)?,
                host_name: r.get(2)?,
                cpu_count: r.get(3)?,
                level: r.get(4)?,
                interval_ms: r.get::<_, i64>(5)? as u64,
                late_ms: r.get::<_, i64>(6)? as u64,
                // Columns 7 to 30 in the order named; the three PSI groups follow (31 to 42).
                host: from_row!(r, from 7 => HostRow {
                    load1, load5, load15, cpu_user_pct, cpu_system_pct, cpu_iowait_pct,
                    cpu_steal_pct, cpu_idle_pct, mem_total_bytes => as_u64,
                    mem_used_bytes => as_u64, mem_available_bytes => as_u64,
                    swap_total_bytes => as_u64, swap_used_bytes => as_u64, procs_running,
                    procs_blocked, procs_total, forks_per_s, ctxsw_per_s, disk_read_bytes_per_s,
                    disk_write_bytes_per_s, net_rx_bytes_per_s, net_tx_bytes_per_s,
                    net_unattributed_rx_bytes_per_s, net_unattributed_tx_bytes_per_s;
                    psi_cpu: psi(r, 31)?,
                    psi_memory: psi(r, 35)?,
                    psi_io: psi(r, 39)?,
                    cpu_unseen_pct: None,
                    exits_lost: None
                }),
                reason: r.get(43)?,
                ..Default::default()
            },
        ))
    })?;
    let mut samples = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    if with_processes {
        let mut ps = conn.prepare_cached(
            "SELECT p.pid, p.ppid, p.start_time_ms, p.uid, p.user, p.name, p.cmdline, ps.state,
                    ps.cpu_pct_x100, ps.rss_kib, ps.read_bps, ps.write_bps, ps.threads,
                    ps.net_tx_bps, ps.net_rx_bps
             FROM process_sample ps JOIN process p ON p.id = ps.process_id
             WHERE ps.sample_id = ?1",
        )?;
        for (id, s) in samples.iter_mut() {
            let rows = ps.query_map([*id], |r| {
                Ok(crate::model::ProcessRow {
                    id: from_row!(r => crate::model::ProcessIdentity {
                        pid, ppid, start_time_ms, uid, user, name, cmdline => redact_owned
                    }),
                    state: r.get::<_, String>(7)?.chars().next().unwrap_or('?'),
                    cpu_pct: r.get::<_, i64>(8)? as f64 / 100.0,
                    rss_bytes: r.get::<_, i64>(9)? as u64 * 1024,
                    read_bytes_per_s: r.get::<_, i64>(10)? as f64,
                    write_bytes_per_s: r.get::<_, i64>(11)? as f64,
                    threads: r.get(12)?,
                    net_tx_bytes_per_s: r.get::<_, Option<i64>>(13)?.map(|v| v as f64),
                    net_rx_bytes_per_s: r.get::<_, Option<i64>>(14)?.map(|v| v as f64),
                    extra: None,
                    rate_span_ms: None,
                })
            })?;
            s.processes = rows.collect::<rusqlite::Result<_>>()?;
        }
    }
    Ok(samples.into_iter().map(|(_, s)| s).collect())
}

/// One process's network traffic over a range (or in one sample).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Talker {
    pub pid: u32,
    pub user: String,
    pub name: String,
    pub cmdline: String,
    /// Bytes sent and received over the range (rate × interval, summed).
    pub tx_bytes: f64,
    pub rx_bytes: f64,
    pub peak_tx_bytes_per_s: i64,
    pub peak_rx_bytes_per_s: i64,
    pub samples: i64,
    /// Remote ends seen at detail level, busiest first.
    pub remotes: Vec<Remote>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Remote {
    pub protocol: String,
    pub addr: String,
    pub port: u16,
    pub tx_bytes: f64,
    pub rx_bytes: f64,
}

/// Host-wide network over a range: interface totals (loopback excluded) and what no process
/// accounts for.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Default)]
pub struct NetTotals {
    pub samples: i64,
    pub tx_bytes: f64,
    pub rx_bytes: f64,
    pub unattributed_tx_bytes: f64,
    pub unattributed_rx_bytes: f64,
}

/// The processes that moved network bytes between `from` and `to`, busiest first.
pub fn talkers(
    conn: &Connection,
    from: TimestampMs,
    to: TimestampMs,
    n: usize,
) -> rusqlite::Result<Vec<Talker>> {
    let mut st = conn.prepare(
        "SELECT p.pid, p.user, p.name, p.cmdline,
                sum(coalesce(ps.net_tx_bps, 0) * s.interval_ms / 1000.0) AS tx,
                sum(coalesce(ps.net_rx_bps, 0) * s.interval_ms / 1000.0) AS rx,
                max(coalesce(ps.net_tx_bps, 0)), max(coalesce(ps.net_rx_bps, 0)), count(*)
         FROM process_sample ps
         JOIN sample s ON s.id = ps.sample_id
         JOIN process p ON p.id = ps.process_id
         WHERE s.ts_ms BETWEEN ?1 AND ?2 AND (ps.net_tx_bps > 0 OR ps.net_rx_bps > 0)
         GROUP BY ps.process_id
         ORDER BY tx + rx DESC LIMIT ?3",
    )?;
    let rows = st.query_map(params![from, to, n as i64], |r| {
        Ok(from_row!(r => Talker {
            pid, user, name, cmdline => redact_owned, tx_bytes, rx_bytes, peak_tx_bytes_per_s,
            peak_rx_bytes_per_s, samples; remotes: Vec::new()
        }))
    })?;
    let mut talkers = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    let mut rs = conn.prepare(
        "SELECT c.protocol, c.remote_addr, c.remote_port,
                sum(coalesce(c.tx_bps, 0) * s.interval_ms / 1000.0) AS tx,
                sum(coalesce(c.rx_bps, 0) * s.interval_ms / 1000.0) AS rx
         FROM connection c JOIN sample s ON s.id = c.sample_id
         WHERE c.pid = ?1 AND s.ts_ms BETWEEN ?2 AND ?3 AND c.state <> 'listen'
           AND c.remote_port <> 0
         GROUP BY c.protocol, c.remote_addr, c.remote_port
         ORDER BY tx + rx DESC LIMIT 5",
    )?;
    for t in &mut talkers {
        let rows = rs.query_map(params![t.pid, from, to], |r| {
            Ok(from_row!(r => Remote { protocol, addr, port, tx_bytes, rx_bytes }))
        })?;
        t.remotes = rows.collect::<rusqlite::Result<_>>()?;
    }
    Ok(talkers)
}

/// A closed TCP connection no process could be found for (it opened and closed between two
/// samples, not on a known listener's port), with its endpoints and the bytes it moved.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClosedSocket {
    pub local_addr: String,
    pub local_port: u16,
    pub remote_addr: String,
    pub remote_port: u16,
    pub tx_bytes: f64,
    pub rx_bytes: f64,
}

/// The `n` unattributed closed connections that moved most bytes over a range (the rows the
/// collector writes with state `CLOSE` and no pid; `*` addresses sum the rest of a sample).
pub fn closed_unattributed(
    conn: &Connection,
    from: TimestampMs,
    to: TimestampMs,
    n: usize,
) -> rusqlite::Result<Vec<ClosedSocket>> {
    all_rows(
        conn,
        "SELECT c.local_addr, c.local_port, c.remote_addr, c.remote_port,
                sum(coalesce(c.tx_bps, 0) * s.interval_ms / 1000.0) AS tx,
                sum(coalesce(c.rx_bps, 0) * s.interval_ms / 1000.0) AS rx
         FROM connection c JOIN sample s ON s.id = c.sample_id
         WHERE s.ts_ms BETWEEN ?1 AND ?2 AND c.pid IS NULL AND c.state = 'CLOSE'
           AND c.protocol = 'tcp'
         GROUP BY c.local_addr, c.local_port, c.remote_addr, c.remote_port
         ORDER BY tx + rx DESC LIMIT ?3",
        params![from, to, n as i64],
        |r| {
            Ok(from_row!(r => ClosedSocket {
                local_addr, local_port, remote_addr, remote_port, tx_bytes, rx_bytes
            }))
        },
    )
}

pub fn net_totals(
    conn: &Connection,
    from: TimestampMs,
    to: TimestampMs,
) -> rusqlite::Result<NetTotals> {
    conn.query_row(
        "SELECT count(*),
                coalesce(sum(net_tx_bytes_per_s * interval_ms / 1000.0), 0),
                coalesce(sum(net_rx_bytes_per_s * interval_ms / 1000.0), 0),
                coalesce(sum(net_unattributed_tx_bytes_per_s * interval_ms / 1000.0), 0),
                coalesce(sum(net_unattributed_rx_bytes_per_s * interval_ms / 1000.0), 0)
         FROM sample WHERE ts_ms BETWEEN ?1 AND ?2",
        params![from, to],
        |r| {
            Ok(from_row!(r => NetTotals {
                samples, tx_bytes, rx_bytes, unattributed_tx_bytes, unattributed_rx_bytes
            }))
        },
    )
}
