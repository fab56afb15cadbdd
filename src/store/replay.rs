//! What `hogtrap replay` and `hogtrap live` ask of the store: one sample at a time (its host row,
//! its process rows, the incidents open at it) and where to move next (the neighbouring
//! sample, the next or previous incident, the next or previous gap). Every question is a
//! short indexed read on a read-only connection, so a reader never holds the daemon up.

use super::vocab::from_row;
use crate::format::ProcessNumbers;
use rusqlite::{params, Connection, OptionalExtension, Result};

use crate::model::{Sample, TimestampMs};

/// A sample's place in the record: its key and its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleRef {
    pub id: i64,
    pub ts_ms: TimestampMs,
}

/// One process row of a sample, with what grouping needs (parent, uid, cgroup where detail
/// was captured).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReplayProcess {
    /// `process.id`: one process identity.
    pub process_id: i64,
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub user: String,
    pub name: String,
    pub cmdline: String,
    pub numbers: ProcessNumbers,
    /// At detail level only.
    pub cgroup: Option<String>,
}

/// An incident open at a sample.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenIncident {
    pub id: i64,
    pub rule: String,
    pub severity: String,
    pub opened_ms: TimestampMs,
}

/// Everything the view shows for one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub at: SampleRef,
    /// The host row, level, interval and lateness (no process rows: see `processes`).
    pub sample: Sample,
    pub processes: Vec<ReplayProcess>,
    pub open_incidents: Vec<OpenIncident>,
    /// The sample's position in the record (1-based) and the record's length.
    pub position: i64,
    pub total: i64,
}

/// One socket of a process at a detail sample.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayConnection {
    pub protocol: String,
    pub local_addr: String,
    pub local_port: u16,
    pub remote_addr: String,
    pub remote_port: u16,
    pub state: String,
    pub tx_bytes_per_s: Option<i64>,
    pub rx_bytes_per_s: Option<i64>,
}

fn sample_ref(r: &rusqlite::Row) -> Result<SampleRef> {
    Ok(from_row!(r => SampleRef { id, ts_ms }))
}

/// The newest sample at or before `at`, else the oldest after it (a time before the record
/// starts lands on its first sample).
pub fn sample_near(conn: &Connection, at: TimestampMs) -> Result<Option<SampleRef>> {
    let before = conn
        .query_row(
            "SELECT id, ts_ms FROM sample WHERE ts_ms <= ?1 ORDER BY ts_ms DESC, id DESC LIMIT 1",
            [at],
            sample_ref,
        )
        .optional()?;
    match before {
        Some(s) => Ok(Some(s)),
        None => first_at_or_after(conn, at),
    }
}

/// The oldest sample at or after `at`.
pub fn first_at_or_after(conn: &Connection, at: TimestampMs) -> Result<Option<SampleRef>> {
    conn.query_row(
        "SELECT id, ts_ms FROM sample WHERE ts_ms >= ?1 ORDER BY ts_ms, id LIMIT 1",
        [at],
        sample_ref,
    )
    .optional()
}

/// The newest sample in the record.
pub fn last_sample(conn: &Connection) -> Result<Option<SampleRef>> {
    conn.query_row(
        "SELECT id, ts_ms FROM sample ORDER BY ts_ms DESC, id DESC LIMIT 1",
        [],
        sample_ref,
    )
    .optional()
}

/// How many samples are newer than `ts` (a live view's new samples).
pub fn count_after(conn: &Connection, ts: TimestampMs) -> Result<i64> {
    conn.query_row("SELECT count(*) FROM sample WHERE ts_ms > ?1", [ts], |r| {
        r.get(0)
    })
}

/// The oldest sample in the record.
pub fn first_sample(conn: &Connection) -> Result<Option<SampleRef>> {
    first_at_or_after(conn, i64::MIN)
}

/// The comparison and the sort order that look forward in time (`forward`), or back.
fn direction(forward: bool) -> (&'static str, &'static str) {
    if forward {
        (">", "")
    } else {
        ("<", " DESC")
    }
}

/// SQL for the sample a moment in the record (an incident's opening, the end of a gap) lands
/// on: the first sample at or after `time`, a column of the outer query.
fn landing_sample(time: &str) -> String {
    format!("(SELECT id FROM sample WHERE ts_ms >= {time} ORDER BY ts_ms, id LIMIT 1)")
}

/// The sample right after `from` (`forward`) or right before it.
pub fn step(conn: &Connection, from: SampleRef, forward: bool) -> Result<Option<SampleRef>> {
    let (cmp, desc) = direction(forward);
    let sql = format!(
        "SELECT id, ts_ms FROM sample WHERE ts_ms {cmp} ?1 OR (ts_ms = ?1 AND id {cmp} ?2)
         ORDER BY ts_ms{desc}, id{desc} LIMIT 1"
    );
    conn.query_row(&sql, params![from.ts_ms, from.id], sample_ref)
        .optional()
}

/// The opening sample of the next incident opened after `from` (`forward`), or of the
/// newest one opened before it: the first sample at or after the incident's `opened_ms`.
pub fn incident_step(
    conn: &Connection,
    from: SampleRef,
    forward: bool,
) -> Result<Option<(i64, SampleRef)>> {
    // The landing sample must differ from `from` in the direction of travel, so the
    // opening sample of the incident we are on does not hold us in place.
    let (_, desc) = direction(forward);
    let after = if forward {
        "i.opened_ms > ?1"
    } else {
        "i.opened_ms <= ?1 AND s.ts_ms < ?1"
    };
    let landing = landing_sample("i.opened_ms");
    let sql = format!(
        "SELECT i.id, s.id, s.ts_ms FROM incident i
         JOIN sample s ON s.id = {landing}
         WHERE {after} ORDER BY i.opened_ms{desc}, i.id{desc} LIMIT 1"
    );
    conn.query_row(&sql, [from.ts_ms], |r| {
        Ok((
            r.get(0)?,
            SampleRef {
                id: r.get(1)?,
                ts_ms: r.get(2)?,
            },
        ))
    })
    .optional()
}

/// The first sample after the next gap in the record (a `gap` or `dropped` recorder event)
/// after `from` (`forward`), or after the newest gap before it.
pub fn gap_step(conn: &Connection, from: SampleRef, forward: bool) -> Result<Option<SampleRef>> {
    let (cmp, desc) = direction(forward);
    let landing = landing_sample("e.to_ms");
    let sql = format!(
        "SELECT s.id, s.ts_ms FROM recorder_event e
         JOIN sample s ON s.id = {landing}
         WHERE e.kind IN ('gap', 'dropped') AND e.to_ms IS NOT NULL AND s.ts_ms {cmp} ?1
         ORDER BY s.ts_ms{desc}, e.id{desc} LIMIT 1"
    );
    conn.query_row(&sql, [from.ts_ms], sample_ref).optional()
}

/// The opening sample of incident `id` (the first sample at or after it opened), or `None`
/// when there is no such incident or no sample since.
pub fn incident_opening(conn: &Connection, id: i64) -> Result<Option<SampleRef>> {
    let landing = landing_sample("i.opened_ms");
    let sql = format!(
        "SELECT s.id, s.ts_ms FROM incident i
         JOIN sample s ON s.id = {landing}
         WHERE i.id = ?1"
    );
    conn.query_row(&sql, [id], sample_ref).optional()
}

/// The sample at `at` with its process rows and the incidents open at it.
pub fn frame(conn: &Connection, at: SampleRef) -> Result<Option<Frame>> {
    frame_at(conn, at, None)
}

/// Like [`frame`], with the sample's position and the record's length when the caller knows
/// them (one step from a known position): counting them reads the whole time index, which
/// on a 1 GB store costs more than the rest of the frame.
pub fn frame_at(
    conn: &Connection,
    at: SampleRef,
    known: Option<(i64, i64)>,
) -> Result<Option<Frame>> {
    let Some(sample) = super::query::load_samples(conn, at.ts_ms, at.ts_ms, false)?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let (position, total) = match known {
        Some(k) => k,
        None => conn.query_row(
            "SELECT (SELECT count(*) FROM sample WHERE ts_ms <= ?1), (SELECT count(*) FROM sample)",
            [at.ts_ms],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?,
    };
    Ok(Some(Frame {
        at,
        sample,
        processes: processes(conn, at.id)?,
        open_incidents: open_incidents(conn, at.ts_ms)?,
        position,
        total,
    }))
}

/// The process rows of one sample, in no particular order (the view sorts).
pub fn processes(conn: &Connection, sample_id: i64) -> Result<Vec<ReplayProcess>> {
    let mut st = conn.prepare_cached(
        "SELECT p.id, p.pid, p.ppid, p.uid, p.user, p.name, p.cmdline, ps.state,
                ps.cpu_pct_x100 / 100.0, ps.rss_kib * 1024.0, ps.read_bps, ps.write_bps,
                CASE WHEN ps.net_tx_bps IS NULL AND ps.net_rx_bps IS NULL THEN NULL
                     ELSE coalesce(ps.net_tx_bps, 0) + coalesce(ps.net_rx_bps, 0) END,
                ps.threads, d.cgroup
         FROM process_sample ps
         JOIN process p ON p.id = ps.process_id
         LEFT JOIN process_detail d ON d.sample_id = ps.sample_id AND d.process_id = ps.process_id
         WHERE ps.sample_id = ?1",
    )?;
    let rows = st.query_map([sample_id], |r| {
        Ok(from_row!(r => ReplayProcess {
            process_id, pid, ppid, uid, user, name, cmdline;
            numbers: from_row!(r, from 7 => ProcessNumbers {
                state, cpu_pct, rss_bytes, read_bytes_per_s, write_bytes_per_s, net_bytes_per_s,
                threads
            }),
            cgroup: r.get(14)?
        }))
    })?;
    rows.collect()
}

/// The incidents open at `ts`: opened at or before it and not closed before it.
pub fn open_incidents(conn: &Connection, ts: TimestampMs) -> Result<Vec<OpenIncident>> {
    let mut st = conn.prepare_cached(
        "SELECT id, rule, severity, opened_ms FROM incident
         WHERE opened_ms <= ?1 AND (closed_ms IS NULL OR closed_ms >= ?1)
         ORDER BY opened_ms, id",
    )?;
    let rows = st.query_map([ts], |r| {
        Ok(from_row!(r => OpenIncident { id, rule, severity, opened_ms }))
    })?;
    rows.collect()
}

/// The sockets of `pid` recorded with sample `sample_id` (empty at baseline: connections are
/// captured at detail level only).
pub fn connections_of(
    conn: &Connection,
    sample_id: i64,
    pid: u32,
) -> Result<Vec<ReplayConnection>> {
    let mut st = conn.prepare_cached(
        "SELECT protocol, local_addr, local_port, remote_addr, remote_port, state, tx_bps, rx_bps
         FROM connection WHERE sample_id = ?1 AND pid = ?2
         ORDER BY coalesce(tx_bps, 0) + coalesce(rx_bps, 0) DESC, remote_addr, remote_port",
    )?;
    let rows = st.query_map(params![sample_id, pid], |r| {
        Ok(from_row!(r => ReplayConnection {
            protocol, local_addr, local_port, remote_addr, remote_port, state, tx_bytes_per_s,
            rx_bytes_per_s
        }))
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Level, ProcessIdentity, ProcessRow};

    fn sample(ts: i64, level: Level, procs: &[(u32, &str, u64)]) -> Sample {
        Sample {
            ts_ms: ts,
            host_name: "h1".into(),
            cpu_count: 2,
            level,
            interval_ms: 1000,
            processes: procs
                .iter()
                .map(|&(pid, name, rss)| ProcessRow {
                    id: ProcessIdentity {
                        pid,
                        ppid: 1,
                        start_time_ms: 1,
                        uid: 0,
                        user: "root".into(),
                        name: name.into(),
                        cmdline: name.into(),
                    },
                    state: 'S',
                    rss_bytes: rss,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn store_with(samples: &[Sample]) -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut w =
            super::super::Store::open(&path, std::time::Duration::from_millis(100)).unwrap();
        for s in samples {
            w.write_sample(s).unwrap();
        }
        w.connection()
            .execute_batch(
                "INSERT INTO incident (rule, severity, title, opened_ms, updated_ms, closed_ms)
                 VALUES ('r1', 'warning', 't', 1500, 1500, 2500),
                        ('r2', 'critical', 't', 3000, 3000, NULL);
                 INSERT INTO recorder_event (ts_ms, kind, from_ms, to_ms, message)
                 VALUES (2600, 'gap', 2100, 2600, 'x');
                 INSERT INTO connection (sample_id, pid, protocol, local_addr, local_port,
                                         remote_addr, remote_port, state, tx_bps, rx_bps)
                 SELECT id, 11, 'tcp', '127.0.0.1', 40000, '127.0.0.2', 443, 'ESTAB', 10, 20
                 FROM sample WHERE ts_ms = 3000;",
            )
            .unwrap();
        drop(w);
        let conn = super::super::open_read_only(&path).unwrap();
        (dir, conn)
    }

    #[test]
    fn stepping_moves_one_sample_and_stops_at_the_ends() {
        let (_d, conn) = store_with(&[
            sample(1_000, Level::Baseline, &[(10, "a", 4096)]),
            sample(2_000, Level::Baseline, &[(10, "a", 8192)]),
            sample(3_000, Level::Detail, &[(10, "a", 4096), (11, "b", 1 << 20)]),
        ]);
        let first = first_sample(&conn).unwrap().unwrap();
        assert_eq!(first.ts_ms, 1_000);
        let second = step(&conn, first, true).unwrap().unwrap();
        assert_eq!(second.ts_ms, 2_000);
        let third = step(&conn, second, true).unwrap().unwrap();
        assert_eq!(third.ts_ms, 3_000);
        assert_eq!(step(&conn, third, true).unwrap(), None);
        assert_eq!(step(&conn, first, false).unwrap(), None);
        assert_eq!(step(&conn, third, false).unwrap(), Some(second));
        assert_eq!(sample_near(&conn, 2_500).unwrap(), Some(second));
        assert_eq!(sample_near(&conn, 10).unwrap(), Some(first));
        assert_eq!(last_sample(&conn).unwrap(), Some(third));
        let f = frame(&conn, third).unwrap().unwrap();
        assert_eq!((f.position, f.total), (3, 3));
        let g = frame_at(&conn, second, Some((2, 3))).unwrap().unwrap();
        assert_eq!((g.position, g.total), (2, 3));
        assert_eq!(g, frame(&conn, second).unwrap().unwrap());
        assert_eq!(count_after(&conn, 1_000).unwrap(), 2);
        assert_eq!(f.sample.level, Level::Detail);
        let mut names: Vec<_> = f.processes.iter().map(|p| p.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["a", "b"]);
        let b = f.processes.iter().find(|p| p.name == "b").unwrap();
        assert_eq!(b.numbers.rss_bytes, (1 << 20) as f64);
        let c = connections_of(&conn, f.at.id, 11).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].remote_addr.as_str(), c[0].remote_port),
            ("127.0.0.2", 443)
        );
        assert_eq!(c[0].rx_bytes_per_s, Some(20));
        assert!(connections_of(&conn, f.at.id, 10).unwrap().is_empty());
        assert!(connections_of(&conn, second.id, 11).unwrap().is_empty());
    }

    #[test]
    fn incidents_and_gaps_land_on_their_samples() {
        let (_d, conn) = store_with(&[
            sample(1_000, Level::Baseline, &[]),
            sample(2_000, Level::Baseline, &[]),
            sample(3_000, Level::Detail, &[]),
            sample(4_000, Level::Detail, &[]),
        ]);
        let first = first_sample(&conn).unwrap().unwrap();
        // r1 opened at 1500: its opening sample is the first at or after, 2000.
        let (id1, at1) = incident_step(&conn, first, true).unwrap().unwrap();
        assert_eq!(at1.ts_ms, 2_000);
        let (id2, at2) = incident_step(&conn, at1, true).unwrap().unwrap();
        assert_eq!(at2.ts_ms, 3_000);
        assert_ne!(id1, id2);
        assert_eq!(incident_step(&conn, at2, true).unwrap(), None);
        let last = last_sample(&conn).unwrap().unwrap();
        assert_eq!(incident_step(&conn, last, false).unwrap(), Some((id2, at2)));
        assert_eq!(incident_step(&conn, at2, false).unwrap(), Some((id1, at1)));
        assert_eq!(incident_step(&conn, at1, false).unwrap(), None);
        assert_eq!(incident_opening(&conn, id2).unwrap(), Some(at2));
        assert_eq!(incident_opening(&conn, 999).unwrap(), None);
        // Open at 2000: r1 only; at 4000: r2 only.
        let open = |ts| -> Vec<String> {
            open_incidents(&conn, ts)
                .unwrap()
                .into_iter()
                .map(|i| i.rule)
                .collect()
        };
        assert_eq!(open(2_000), ["r1"]);
        assert_eq!(open(4_000), ["r2"]);
        assert!(open(1_000).is_empty());
        // The gap ends at 2600: the sample after it is 3000.
        assert_eq!(gap_step(&conn, first, true).unwrap().unwrap().ts_ms, 3_000);
        assert_eq!(gap_step(&conn, at2, true).unwrap(), None);
        assert_eq!(gap_step(&conn, last, false).unwrap().unwrap().ts_ms, 3_000);
        assert_eq!(gap_step(&conn, at2, false).unwrap(), None);
    }
}
