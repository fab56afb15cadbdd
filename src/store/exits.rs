//! Exited processes in the store, and the questions that need them: a process's or a group's
//! real total over a range (counter deltas over the time it was observed, exits included).
//!
//! Guarantees: a process row's total is its rate × the time the rate covers (`span_ms` for a
//! process that started within the interval, else the interval); an exit row adds what no
//! process row counted. So a range total counts each CPU-second and byte once, and a process
//! that lived between two samples is in it.

use rusqlite::{params, Connection};

use crate::model::{Grouping, Resource, Sample, TimestampMs};

/// Writes the exits of `s` and the sample columns of V4 (unseen CPU, lost exits) for sample
/// `id`, inside the sample's transaction. The span of new processes' rates is written with
/// their rows ([`spans`]).
pub(super) fn insert(tx: &rusqlite::Transaction, id: i64, s: &Sample) -> rusqlite::Result<()> {
    for e in &s.exits {
        tx.prepare_cached(
            "INSERT INTO process_exit (sample_id, pid, start_time_ms, ppid, uid, user, name,
             end_ms, exit_code, count, cpu_us, read_bytes, write_bytes, life_cpu_us,
             life_read_bytes, life_write_bytes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        )?
        .execute(params![
            id,
            e.id.pid,
            e.id.start_time_ms,
            e.id.ppid,
            e.id.uid,
            e.id.user,
            e.id.name,
            e.end_ms,
            e.exit_code,
            e.count,
            (e.cpu_ms * 1000.0).round() as i64,
            e.read_bytes as i64,
            e.write_bytes as i64,
            (e.life_cpu_ms * 1000.0).round() as i64,
            e.life_read_bytes as i64,
            e.life_write_bytes as i64,
        ])?;
    }
    if s.host.cpu_unseen_pct.is_some() || s.host.exits_lost.is_some() {
        tx.prepare_cached("UPDATE sample SET cpu_unseen_pct = ?2, exits_lost = ?3 WHERE id = ?1")?
            .execute(params![
                id,
                s.host.cpu_unseen_pct,
                s.host.exits_lost.map(|v| v as i64)
            ])?;
    }
    Ok(())
}

/// Sets `span_ms` on the rows of sample `id` whose rates cover less than the interval (a
/// process that started within it): without it such a row's total is its rate × the whole
/// interval. Also for rows added to a stored sample later (a capture upgrading a baseline
/// sample to detail).
pub(super) fn spans(
    tx: &rusqlite::Transaction,
    id: i64,
    s: &Sample,
    process_ids: &std::collections::HashMap<(u32, i64, String), i64>,
) -> rusqlite::Result<()> {
    for p in &s.processes {
        let Some(span) = p.rate_span_ms else { continue };
        let key = (p.id.pid, p.id.start_time_ms, p.id.name.clone());
        if let Some(pid) = process_ids.get(&key) {
            tx.prepare_cached(
                "UPDATE process_sample SET span_ms = ?3 WHERE sample_id = ?1 AND process_id = ?2",
            )?
            .execute(params![id, pid, span as i64])?;
        }
    }
    Ok(())
}

/// SQL for one process row's contribution to a range total (`ps` the row, `s` its sample):
/// CPU-seconds for cpu, bytes for io and net, bytes of RSS for mem (whose total is the peak).
pub(super) fn row_total(by: Resource) -> String {
    let span = "coalesce(ps.span_ms, s.interval_ms) / 1000.0";
    let x = super::query::expr(by);
    match by {
        Resource::Cpu => format!("{x} / 100.0 * {span}"),
        Resource::Mem => x.to_string(),
        Resource::Io | Resource::Net => format!("{x} * {span}"),
    }
}

/// How per-row totals add up: a sum, or for memory the peak.
fn agg(by: Resource) -> &'static str {
    match by {
        Resource::Mem => "max",
        _ => "sum",
    }
}

/// SQL for one exit row's (`e`) remainder (what no sample counted) and whole-life total, in
/// the unit of [`row_total`]; `None` where exits add nothing (mem, net).
fn exit_totals(by: Resource) -> Option<(&'static str, &'static str)> {
    match by {
        Resource::Cpu => Some(("e.cpu_us / 1e6", "e.life_cpu_us / 1e6")),
        Resource::Io => Some((
            "(e.read_bytes + e.write_bytes)",
            "(e.life_read_bytes + e.life_write_bytes)",
        )),
        Resource::Mem | Resource::Net => None,
    }
}

/// Every process over a range as (process id or 0, pid, start, ppid, uid, user, name, cmdline,
/// samples, avg, peak, total, exited count): live processes with their exits added, then
/// exits no sample saw (roll-ups among them). `?1`, `?2`: the range.
pub(super) fn per_process_sql(by: Resource) -> String {
    let x = super::query::expr(by);
    let (rt, ag) = (row_total(by), agg(by));
    let (rem, life) = exit_totals(by).unwrap_or(("0", "0"));
    // A process that started within the range and exited in it: its whole life (exact, even
    // where baseline samples did not keep its rows). One that started before: its rows plus
    // what it used after the last sample. A process seen under several names (exec, prctl
    // between samples: one `process` row each) gets its exit on its newest identity only,
    // under the name it exited with, less what its older identities' rows already count.
    let seen_total = if exit_totals(by).is_some() {
        "CASE WHEN m.pid IS NULL THEN v.total
              WHEN m.start_time_ms >= ?1 THEN max(m.life - v.others, 0)
              ELSE v.total + m.rem END"
    } else {
        "v.total"
    };
    format!(
        "WITH live AS (
            SELECT ps.process_id AS id, count(*) AS samples, avg({x}) AS avg, max({x}) AS peak,
                   {ag}({rt}) AS total
            FROM process_sample ps JOIN sample s ON s.id = ps.sample_id
            WHERE s.ts_ms BETWEEN ?1 AND ?2
            GROUP BY ps.process_id),
         ex AS (
            SELECT e.pid, min(e.start_time_ms) AS start_time_ms, e.ppid, e.uid, e.user, e.name,
                   sum(e.count) AS n, sum({rem}) AS rem, sum({life}) AS life
            FROM process_exit e JOIN sample s ON s.id = e.sample_id
            WHERE s.ts_ms BETWEEN ?1 AND ?2
            GROUP BY e.pid, CASE WHEN e.pid = 0 THEN 0 ELSE e.start_time_ms END, e.ppid, e.uid,
                     e.name),
         seen AS (
            SELECT p.id, p.pid, p.start_time_ms, p.ppid, p.uid, p.user, p.name, p.cmdline,
                   l.samples, l.avg, l.peak, l.total,
                   row_number() OVER w AS newest,
                   coalesce(sum(l.total) OVER w, 0) - coalesce(l.total, 0) AS others
            FROM live l JOIN process p ON p.id = l.id
            WINDOW w AS (PARTITION BY p.pid, p.start_time_ms ORDER BY p.id DESC
                         ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)),
         matched AS (
            SELECT pid, start_time_ms, max(name) AS name, sum(n) AS n, sum(rem) AS rem,
                   sum(life) AS life
            FROM ex WHERE pid > 0 GROUP BY pid, start_time_ms)
         SELECT v.id AS id, v.pid AS pid, v.start_time_ms AS start_time_ms, v.ppid AS ppid,
                v.uid AS uid, v.user AS user, coalesce(m.name, v.name) AS name,
                v.cmdline AS cmdline, v.samples AS samples, v.avg AS avg, v.peak AS peak,
                {seen_total} AS total, coalesce(m.n, 0) AS exited
         FROM seen v LEFT JOIN matched m
           ON m.pid = v.pid AND m.start_time_ms = v.start_time_ms AND v.newest = 1
         UNION ALL
         SELECT 0, x.pid, x.start_time_ms, x.ppid, x.uid, x.user, x.name, '', 0, 0, 0,
                CASE WHEN x.start_time_ms >= ?1 THEN x.life ELSE x.rem END, x.n
         FROM ex x
         WHERE x.pid = 0 OR NOT EXISTS (SELECT 1 FROM seen v
             WHERE v.pid = x.pid AND v.start_time_ms = x.start_time_ms)"
    )
}

/// A group of processes over a range.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupTotal {
    pub group: Grouping,
    /// The group's key: a name, a parent pid, a user, a cgroup path.
    pub key: String,
    /// For display: the key, with the parent's name for `parent`.
    pub label: String,
    /// Processes in the group (alive or exited) over the range.
    pub processes: i64,
    /// Of those, how many exited.
    pub exited: i64,
    /// CPU-seconds (cpu), bytes (io, net), sum of peaks (mem), exits included.
    pub total: f64,
    /// The largest single process's total.
    pub largest: f64,
}

/// The `n` largest groups of a range by `by`, summing live and exited processes.
pub fn top_groups(
    conn: &Connection,
    from: TimestampMs,
    to: TimestampMs,
    by: Resource,
    group: Grouping,
    n: usize,
) -> rusqlite::Result<Vec<GroupTotal>> {
    // Group keys: for cgroup, the latest recorded cgroup of the process, or for an exited
    // process that of its parent; '?' where none was recorded (baseline samples only).
    let key = match group {
        Grouping::Name => "t.name".to_string(),
        Grouping::User => "t.user".to_string(),
        Grouping::Parent => "CAST(t.ppid AS TEXT)".to_string(),
        Grouping::Cgroup => "coalesce(
              (SELECT d.cgroup FROM process_detail d JOIN process q ON q.id = d.process_id
               WHERE (t.id > 0 AND q.id = t.id) OR (t.id = 0 AND q.pid = t.ppid)
               ORDER BY d.sample_id DESC LIMIT 1), '?')"
            .to_string(),
    };
    let sql = format!(
        "SELECT {key} AS k, sum(CASE WHEN t.pid = 0 THEN t.exited
                                     ELSE max(t.exited, 1) END),
                sum(t.exited), sum(t.total), max(t.total)
         FROM ({}) t GROUP BY k ORDER BY 4 DESC LIMIT ?3",
        per_process_sql(by)
    );
    let mut st = conn.prepare(&sql)?;
    let rows = st.query_map(params![from, to, n as i64], |r| {
        let k: String = match r.get::<_, rusqlite::types::Value>(0)? {
            rusqlite::types::Value::Text(s) => s,
            rusqlite::types::Value::Integer(i) => i.to_string(),
            _ => "?".to_string(),
        };
        Ok(GroupTotal {
            group,
            label: k.clone(),
            key: k,
            processes: r.get(1)?,
            exited: r.get(2)?,
            total: r.get::<_, Option<f64>>(3)?.unwrap_or(0.0),
            largest: r.get::<_, Option<f64>>(4)?.unwrap_or(0.0),
        })
    })?;
    let mut out: Vec<GroupTotal> = rows.collect::<rusqlite::Result<_>>()?;
    if group == Grouping::Parent {
        for g in &mut out {
            g.label = parent_label(conn, &g.key, to)?;
        }
    }
    Ok(out)
}

/// "PID NAME" for a parent pid: the newest process with that pid started before `at`.
fn parent_label(conn: &Connection, ppid: &str, at: TimestampMs) -> rusqlite::Result<String> {
    let Ok(pid) = ppid.parse::<i64>() else {
        return Ok(ppid.to_string());
    };
    let name: Option<String> = conn
        .query_row(
            "SELECT name FROM process WHERE pid = ?1 AND start_time_ms <= ?2
             ORDER BY start_time_ms DESC LIMIT 1",
            params![pid, at],
            |r| r.get(0),
        )
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    Ok(match name {
        Some(n) => format!("{pid} {n}"),
        None => pid.to_string(),
    })
}

/// Exits recorded in a range: how many processes, and lost records.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ExitTally {
    pub processes: i64,
    /// Receive-buffer overruns (each lost at least one exit); `None`: exits not accounted.
    pub lost: Option<i64>,
    /// CPU-seconds no sampled process accounted for (where exits are not accounted).
    pub unseen_cpu_s: Option<f64>,
}

pub fn exit_tally(
    conn: &Connection,
    from: TimestampMs,
    to: TimestampMs,
) -> rusqlite::Result<ExitTally> {
    conn.query_row(
        "SELECT (SELECT coalesce(sum(e.count), 0) FROM process_exit e JOIN sample s
                 ON s.id = e.sample_id WHERE s.ts_ms BETWEEN ?1 AND ?2),
                sum(exits_lost), sum(cpu_unseen_pct / 100.0 * interval_ms / 1000.0)
         FROM sample WHERE ts_ms BETWEEN ?1 AND ?2",
        params![from, to],
        |r| {
            Ok(ExitTally {
                processes: r.get(0)?,
                lost: r.get(1)?,
                unseen_cpu_s: r.get(2)?,
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ProcessExit, ProcessIdentity, ProcessRow};
    use crate::store::Store;

    fn row(pid: u32, name: &str, cpu_pct: f64, span: Option<u64>) -> ProcessRow {
        ProcessRow {
            id: ProcessIdentity {
                pid,
                ppid: 7,
                start_time_ms: 1500,
                name: name.into(),
                user: "root".into(),
                ..Default::default()
            },
            state: 'R',
            cpu_pct,
            write_bytes_per_s: 1000.0,
            threads: 1,
            rate_span_ms: span,
            ..Default::default()
        }
    }

    fn sample(ts: i64, processes: Vec<ProcessRow>, exits: Vec<ProcessExit>) -> Sample {
        Sample {
            ts_ms: ts,
            host_name: "h1".into(),
            cpu_count: 2,
            interval_ms: 1000,
            processes,
            exits,
            ..Default::default()
        }
    }

    /// A child read once under its parent's name (before its exec or rename) and once under
    /// its own, exiting as the latter: one process of the new name, its life counted once.
    #[test]
    fn a_renamed_process_is_counted_once_under_the_name_it_exited_with() {
        let dir = tempfile::tempdir().unwrap();
        let mut st =
            Store::open(&dir.path().join("t.db"), std::time::Duration::from_secs(1)).unwrap();
        st.write_sample(&sample(1000, vec![], vec![])).unwrap();
        // 10 % over 500 ms, then 50 % over 1 s: 0.05 + 0.5 CPU-s in rows.
        st.write_sample(&sample(
            2000,
            vec![row(42, "forker", 10.0, Some(500))],
            vec![],
        ))
        .unwrap();
        st.write_sample(&sample(3000, vec![row(42, "child", 50.0, None)], vec![]))
            .unwrap();
        let mut id = row(42, "child", 0.0, None).id;
        id.cmdline.clear();
        let exit = ProcessExit {
            id,
            end_ms: 3500,
            exit_code: Some(0),
            count: 1,
            cpu_ms: 200.0,
            life_cpu_ms: 750.0,
            seen_alive: true,
            ..Default::default()
        };
        st.write_sample(&sample(4000, vec![], vec![exit])).unwrap();
        let c = st.connection();
        let g = top_groups(c, 0, 5000, Resource::Cpu, Grouping::Name, 10).unwrap();
        let child = g.iter().find(|g| g.key == "child").unwrap();
        let forker = g.iter().find(|g| g.key == "forker").unwrap();
        assert_eq!((child.processes, child.exited), (1, 1), "{g:?}");
        assert_eq!((forker.processes, forker.exited), (1, 0), "{g:?}");
        // Whole life 0.75 CPU-s: 0.05 under the old name, the rest under the new.
        assert!((forker.total - 0.05).abs() < 1e-6, "{g:?}");
        assert!((child.total - 0.70).abs() < 1e-6, "{g:?}");
        let by_parent = top_groups(c, 0, 5000, Resource::Cpu, Grouping::Parent, 10).unwrap();
        assert!((by_parent[0].total - 0.75).abs() < 1e-6, "{by_parent:?}");
        // Started before the range: rows and remainder, under the new name.
        let late = super::super::query::top_over_range(c, 1600, 5000, Resource::Cpu, 10).unwrap();
        let names: Vec<(&str, i64)> = late.iter().map(|t| (t.name.as_str(), t.exited)).collect();
        assert_eq!(names, vec![("child", 1), ("forker", 0)], "{late:?}");
        assert!((late[0].total - 0.70).abs() < 1e-6, "{late:?}");
    }

    /// Rows a capture adds to a stored baseline sample keep the span of their rates.
    #[test]
    fn rows_added_to_a_stored_sample_keep_their_span() {
        let dir = tempfile::tempdir().unwrap();
        let mut st =
            Store::open(&dir.path().join("t.db"), std::time::Duration::from_secs(1)).unwrap();
        let id = st
            .write_sample(&sample(2000, vec![row(1, "big", 90.0, None)], vec![]))
            .unwrap();
        let full = sample(
            2000,
            vec![row(1, "big", 90.0, None), row(2, "dd", 40.0, Some(30))],
            vec![],
        );
        st.write_process_rows(id, &full).unwrap();
        let c = st.connection();
        let t = super::super::query::top_over_range(c, 0, 5000, Resource::Io, 10).unwrap();
        let dd = t.iter().find(|t| t.name == "dd").unwrap();
        assert!((dd.total - 30.0).abs() < 1e-6, "{t:?}");
    }
}
