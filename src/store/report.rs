//! The questions an after-the-fact report asks of a window of the record: the host's rows as
//! time series, the top processes as series, the incidents, alerts and captures that touch the
//! window, and the connections captured in it. Read-only; every function takes a connection
//! from [`super::open_read_only`].
//!
//! Guarantees: series are oldest first and hold only recorded samples (a process absent from a
//! sample has no point there: the baseline keeps only the top processes, so "absent" means
//! "not among them", never zero); the window is inclusive at both ends.

use std::collections::HashMap;

use super::vocab::{all_rows, from_row};
use rusqlite::{params, Connection};

use super::incident::{
    alert_row, incident_row, AlertRow, IncidentRow, ALERT_COLUMNS, INCIDENT_COLUMNS,
};
use super::query::{top_over_range, ProcessOverRange};
use crate::format::redact_owned;
use crate::model::TimestampMs;
use crate::model::{HostRow, Resource};

/// The host's row of one sample, the numbers the report charts: the model's [`HostRow`] as
/// every reader of samples sees it, with the sample's time and shape.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HostPoint {
    pub ts_ms: TimestampMs,
    /// Wall time since the previous sample.
    pub interval_ms: i64,
    pub detail: bool,
    pub cpu_count: i64,
    pub host_name: String,
    pub host: HostRow,
}

pub fn host_series(
    conn: &Connection,
    from: TimestampMs,
    to: TimestampMs,
) -> rusqlite::Result<Vec<HostPoint>> {
    // The host rows as every reader of samples sees them (one query for them all).
    let samples = super::query::load_samples(conn, from, to, false)?;
    Ok(samples
        .into_iter()
        .map(|s| HostPoint {
            ts_ms: s.ts_ms,
            interval_ms: s.interval_ms as i64,
            detail: s.level == crate::model::Level::Detail,
            cpu_count: s.cpu_count as i64,
            host_name: s.host_name,
            host: s.host,
        })
        .collect())
}

/// The first and last sample times in the store.
pub fn record_bounds(conn: &Connection) -> rusqlite::Result<Option<(TimestampMs, TimestampMs)>> {
    conn.query_row("SELECT min(ts_ms), max(ts_ms) FROM sample", [], |r| {
        Ok(r.get::<_, Option<i64>>(0)?.zip(r.get::<_, Option<i64>>(1)?))
    })
}

/// One of the top processes of a window by a resource, with its values over time.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProcessSeries {
    pub process: ProcessOverRange,
    /// (sample time, value in the resource's unit), oldest first; only samples that kept it.
    pub points: Vec<(TimestampMs, f64)>,
}

/// The `n` processes with the largest total of `by` over the window (as `hogtrap top --from
/// --to` ranks them), each with its series.
pub fn top_process_series(
    conn: &Connection,
    from: TimestampMs,
    to: TimestampMs,
    by: Resource,
    n: usize,
) -> rusqlite::Result<Vec<ProcessSeries>> {
    let top: Vec<ProcessOverRange> = top_over_range(conn, from, to, by, n)?
        .into_iter()
        .filter(|p| p.peak > 0.0)
        .collect();
    if top.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = top.iter().map(|p| p.process_id.to_string()).collect();
    // Walks the window's samples by time and looks each kept process up by primary key.
    let sql = format!(
        "SELECT ps.process_id, s.ts_ms, {}
         FROM sample s JOIN process_sample ps
           ON ps.sample_id = s.id AND ps.process_id IN ({})
         WHERE s.ts_ms BETWEEN ?1 AND ?2 ORDER BY s.ts_ms",
        super::query::expr(by),
        ids.join(", ")
    );
    let mut points: HashMap<i64, Vec<(TimestampMs, f64)>> = HashMap::new();
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query(params![from, to])?;
    while let Some(r) = rows.next()? {
        let v: Option<f64> = r.get(2)?;
        points
            .entry(r.get(0)?)
            .or_default()
            .push((r.get(1)?, v.unwrap_or(0.0)));
    }
    Ok(top
        .into_iter()
        .map(|p| ProcessSeries {
            points: points.remove(&p.process_id).unwrap_or_default(),
            process: p,
        })
        .collect())
}

/// Incidents open at any moment of the window, oldest first.
pub fn incidents_between(
    conn: &Connection,
    from: TimestampMs,
    to: TimestampMs,
) -> rusqlite::Result<Vec<IncidentRow>> {
    all_rows(
        conn,
        &format!(
            "SELECT {INCIDENT_COLUMNS} FROM incident
         WHERE opened_ms <= ?2 AND (closed_ms IS NULL OR closed_ms >= ?1)
         ORDER BY opened_ms, id"
        ),
        [from, to],
        incident_row,
    )
}

/// Alerts raised in the window or about one of `incident_ids`, oldest first.
pub fn alerts_between(
    conn: &Connection,
    from: TimestampMs,
    to: TimestampMs,
    incident_ids: &[i64],
) -> rusqlite::Result<Vec<AlertRow>> {
    let ids: Vec<String> = incident_ids.iter().map(i64::to_string).collect();
    all_rows(
        conn,
        &format!(
            "SELECT {ALERT_COLUMNS} FROM alert
         WHERE created_ms BETWEEN ?1 AND ?2 OR incident_id IN ({})
         ORDER BY created_ms, id",
            ids.join(", ")
        ),
        [from, to],
        alert_row,
    )
}

/// A detail capture that overlaps the window.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CaptureSpan {
    pub id: i64,
    pub incident_id: Option<i64>,
    pub rule: String,
    pub started_ms: TimestampMs,
    /// When it ended, or was due to end if it is still running.
    pub ended_ms: TimestampMs,
    pub interval_ms: i64,
}

pub fn captures_between(
    conn: &Connection,
    from: TimestampMs,
    to: TimestampMs,
) -> rusqlite::Result<Vec<CaptureSpan>> {
    all_rows(
        conn,
        "SELECT id, incident_id, rule, started_ms, coalesce(ended_ms, until_ms), interval_ms
         FROM capture WHERE started_ms <= ?2 AND coalesce(ended_ms, until_ms) >= ?1
         ORDER BY started_ms",
        [from, to],
        |r| {
            Ok(from_row!(r => CaptureSpan {
                id, incident_id, rule, started_ms, ended_ms, interval_ms
            }))
        },
    )
}

/// One process's traffic with one remote endpoint over the window, from the connections
/// recorded at detail level.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConnectionSummary {
    /// `None` when the recorder could not find the socket's owner.
    pub pid: Option<u32>,
    /// From the process row of the same sample; `None` if it was not kept.
    pub name: Option<String>,
    pub user: Option<String>,
    pub cmdline: Option<String>,
    pub protocol: String,
    pub remote_addr: String,
    pub remote_port: u16,
    /// Distinct local ports: the sockets opened to this endpoint.
    pub sockets: i64,
    /// States seen, comma-separated.
    pub states: String,
    pub first_ms: TimestampMs,
    pub last_ms: TimestampMs,
    /// Bytes moved in the window (rates times the sample intervals).
    pub tx_bytes: f64,
    pub rx_bytes: f64,
    pub peak_tx_bytes_per_s: f64,
    pub peak_rx_bytes_per_s: f64,
}

/// The connections captured in the window, by endpoint and process, most bytes first
/// (listening and unconnected UDP sockets left out).
pub fn connections_between(
    conn: &Connection,
    from: TimestampMs,
    to: TimestampMs,
    limit: usize,
) -> rusqlite::Result<Vec<ConnectionSummary>> {
    all_rows(
        conn,
        "WITH g AS (
            SELECT c.pid, c.protocol, c.remote_addr, c.remote_port,
                   count(DISTINCT c.local_port) AS sockets,
                   group_concat(DISTINCT c.state) AS states,
                   min(s.ts_ms) AS first_ms, max(s.ts_ms) AS last_ms,
                   sum(coalesce(c.tx_bps, 0) * s.interval_ms / 1000.0) AS tx_bytes,
                   sum(coalesce(c.rx_bps, 0) * s.interval_ms / 1000.0) AS rx_bytes,
                   coalesce(max(c.tx_bps), 0) AS peak_tx, coalesce(max(c.rx_bps), 0) AS peak_rx,
                   max(c.sample_id) AS last_sample
            FROM connection c JOIN sample s ON s.id = c.sample_id
            WHERE s.ts_ms BETWEEN ?1 AND ?2 AND upper(c.state) NOT IN ('LISTEN', 'UNCONN')
            GROUP BY c.pid, c.protocol, c.remote_addr, c.remote_port)
         SELECT g.pid, p.name, p.user, p.cmdline, g.protocol, g.remote_addr, g.remote_port,
                g.sockets, g.states, g.first_ms, g.last_ms, g.tx_bytes, g.rx_bytes, g.peak_tx,
                g.peak_rx
         FROM g
         LEFT JOIN process p ON p.id = (
             SELECT ps.process_id FROM process_sample ps JOIN process q ON q.id = ps.process_id
             WHERE ps.sample_id = g.last_sample AND q.pid = g.pid LIMIT 1)
         ORDER BY g.tx_bytes + g.rx_bytes DESC, g.last_ms DESC
         LIMIT ?3",
        params![from, to, limit as i64],
        |r| {
            Ok(from_row!(r => ConnectionSummary {
                pid, name, user, cmdline => |c: Option<String>| c.map(redact_owned), protocol,
                remote_addr, remote_port, sockets,
                states => |s: Option<String>| s.unwrap_or_default(),
                first_ms, last_ms, tx_bytes, rx_bytes, peak_tx_bytes_per_s, peak_rx_bytes_per_s
            }))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        Connection as Socket, Level, ProcessIdentity, ProcessRow, Protocol, Sample,
    };
    use crate::store::incident::NewIncident;
    use crate::store::Store;

    fn proc_row(pid: u32, name: &str, cpu: f64, tx: f64) -> ProcessRow {
        ProcessRow {
            id: ProcessIdentity {
                pid,
                start_time_ms: 5,
                name: name.into(),
                user: "alice".into(),
                cmdline: format!("/usr/bin/{name} --flag"),
                ..Default::default()
            },
            state: 'R',
            cpu_pct: cpu,
            rss_bytes: 1 << 20,
            threads: 1,
            net_tx_bytes_per_s: Some(tx),
            net_rx_bytes_per_s: Some(0.0),
            ..Default::default()
        }
    }

    /// Ten samples a second apart; the burner runs in all, the talker only in 3..7 with a
    /// connection to 127.0.0.1:8080 at detail level.
    fn fixture() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut st = Store::open(&path, std::time::Duration::from_millis(100)).unwrap();
        for i in 0..10i64 {
            let talking = (3..7).contains(&i);
            let mut procs = vec![proc_row(10, "burner", 99.0, 0.0)];
            let mut conns = Vec::new();
            if talking {
                procs.push(proc_row(20, "talker", 5.0, 1000.0));
                conns.push(Socket {
                    pid: Some(20),
                    protocol: Protocol::Tcp,
                    local_addr: "127.0.0.1".into(),
                    local_port: 40000,
                    remote_addr: "127.0.0.1".into(),
                    remote_port: 8080,
                    state: "ESTAB".into(),
                    tx_bytes_per_s: Some(1000.0),
                    rx_bytes_per_s: Some(10.0),
                });
                conns.push(Socket {
                    pid: Some(20),
                    protocol: Protocol::Tcp,
                    local_addr: "0.0.0.0".into(),
                    local_port: 8081,
                    remote_addr: "0.0.0.0".into(),
                    remote_port: 0,
                    state: "LISTEN".into(),
                    tx_bytes_per_s: None,
                    rx_bytes_per_s: None,
                });
            }
            let s = Sample {
                ts_ms: 1_000_000 + i * 1000,
                host_name: "h1".into(),
                cpu_count: 2,
                level: if talking {
                    Level::Detail
                } else {
                    Level::Baseline
                },
                interval_ms: 1000,
                processes: procs,
                connections: conns,
                ..Default::default()
            };
            st.write_sample(&s).unwrap();
        }
        let id = st
            .open_incident(
                &NewIncident {
                    rule: "cpu_hog",
                    rule_file: "cpu_hog.lua",
                    severity: crate::model::Severity::Warning,
                    title: "CPU hog: burner",
                    summary: "",
                    opened_ms: 1_004_000,
                    peak_json: "{}",
                },
                &[],
            )
            .unwrap();
        st.close_incident(id, 1_006_000).unwrap();
        (dir, path)
    }

    #[test]
    fn series_hold_recorded_samples_only() {
        let (_dir, path) = fixture();
        let c = crate::store::open_read_only(&path).unwrap();
        let host = host_series(&c, 1_002_000, 1_008_000).unwrap();
        assert_eq!(host.len(), 7);
        assert!(host[1].detail && !host[0].detail);
        let net = top_process_series(&c, 0, i64::MAX, Resource::Net, 5).unwrap();
        assert_eq!(net.len(), 1, "the burner moved no bytes: {net:?}");
        assert_eq!(net[0].process.name, "talker");
        let ts: Vec<i64> = net[0].points.iter().map(|p| p.0).collect();
        assert_eq!(ts, vec![1_003_000, 1_004_000, 1_005_000, 1_006_000]);
        let cpu = top_process_series(&c, 0, i64::MAX, Resource::Cpu, 5).unwrap();
        assert_eq!(cpu[0].process.name, "burner");
        assert_eq!(cpu[0].points.len(), 10);
        assert!((cpu[0].points[0].1 - 99.0).abs() < 1e-9);
    }

    #[test]
    fn window_overlap_and_connections() {
        let (_dir, path) = fixture();
        let c = crate::store::open_read_only(&path).unwrap();
        assert_eq!(incidents_between(&c, 0, 1_003_999).unwrap().len(), 0);
        assert_eq!(
            incidents_between(&c, 1_005_000, 1_005_000).unwrap().len(),
            1
        );
        assert_eq!(incidents_between(&c, 1_006_000, i64::MAX).unwrap().len(), 1);
        assert_eq!(incidents_between(&c, 1_006_001, i64::MAX).unwrap().len(), 0);
        assert_eq!(record_bounds(&c).unwrap(), Some((1_000_000, 1_009_000)));

        let conns = connections_between(&c, 0, i64::MAX, 10).unwrap();
        assert_eq!(conns.len(), 1, "listening sockets are left out: {conns:?}");
        let t = &conns[0];
        assert_eq!(t.pid, Some(20));
        assert_eq!(t.name.as_deref(), Some("talker"));
        assert_eq!(t.user.as_deref(), Some("alice"));
        assert_eq!((t.remote_addr.as_str(), t.remote_port), ("127.0.0.1", 8080));
        assert_eq!((t.first_ms, t.last_ms), (1_003_000, 1_006_000));
        assert!((t.tx_bytes - 4000.0).abs() < 1e-6, "{t:?}");
        assert!((t.rx_bytes - 40.0).abs() < 1e-6, "{t:?}");
        assert_eq!(t.sockets, 1);
        assert_eq!(t.states, "ESTAB");
        assert!(alerts_between(&c, 0, i64::MAX, &[1]).unwrap().is_empty());
    }
}
