//! Reading: samples in (ts_ms, id) chunks, counts, sizes, and the census of what stays.

use std::path::Path;

use crate::store::vocab::from_row;
use rusqlite::{params, Connection};

use super::classify::Meta;
use super::pins::{in_intervals, Pins};
use super::Kept;

pub(super) const CHUNK: i64 = 2000;

pub(super) fn fetch_chunk(
    conn: &Connection,
    after: (i64, i64),
    until_ts: i64,
) -> rusqlite::Result<Vec<Meta>> {
    let mut st = conn.prepare_cached(
        "SELECT id, ts_ms, host_id, level, load1 FROM sample
         WHERE (ts_ms, id) > (?1, ?2) AND ts_ms < ?3
         ORDER BY ts_ms, id LIMIT ?4",
    )?;
    let rows = st.query_map(params![after.0, after.1, until_ts, CHUNK], |r| {
        Ok(from_row!(r => Meta { id, ts_ms, host_id, level, load1 }))
    })?;
    rows.collect()
}

pub(super) fn count_before(conn: &Connection, until_ts: i64) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT count(*) FROM sample WHERE ts_ms < ?1",
        [until_ts],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as u64)
}

pub(super) fn sizes(conn: &Connection, path: &Path) -> rusqlite::Result<(u64, u64)> {
    let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let count: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let file = std::fs::metadata(path)
        .map(|m| m.len())
        .unwrap_or((count * page) as u64);
    Ok((file, ((count - free) * page) as u64))
}

/// Samples that stay, by level, and the pinned ones.
pub(super) fn census(conn: &Connection, pins: &Pins) -> rusqlite::Result<Kept> {
    let mut k = Kept::default();
    let mut st = conn.prepare("SELECT level, count(*) FROM sample GROUP BY level")?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let n = r.get::<_, i64>(1)? as u64;
        if r.get::<_, i64>(0)? == 1 {
            k.detail_samples += n;
        } else {
            k.baseline_samples += n;
        }
    }
    let count_in = |v: &[(i64, i64)]| -> rusqlite::Result<u64> {
        let mut n = 0;
        for &(a, b) in v {
            n += conn.query_row(
                "SELECT count(*) FROM sample WHERE ts_ms BETWEEN ?1 AND ?2",
                [a, b],
                |r| r.get::<_, i64>(0),
            )? as u64;
        }
        Ok(n)
    };
    k.open_incident_samples = count_in(&pins.open)?;
    k.pinned_samples = count_in(&pins.closed)?;
    // Linked samples outside the windows.
    let mut st = conn.prepare_cached("SELECT ts_ms FROM sample WHERE id = ?1")?;
    for (set, open) in [(&pins.linked_open, true), (&pins.linked_closed, false)] {
        for &id in set {
            let Some(ts) = st
                .query_row([id], |r| r.get::<_, i64>(0))
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })?
            else {
                continue;
            };
            if open && !in_intervals(&pins.open, ts) {
                k.open_incident_samples += 1;
            } else if !open && !in_intervals(&pins.closed, ts) && !pins.is_open(id, ts) {
                k.pinned_samples += 1;
            }
        }
    }
    // A sample both in an open and a closed window counts as open.
    let both: u64 = {
        let mut n = 0;
        for &(a, b) in &pins.closed {
            for &(c, d) in &pins.open {
                let (x, y) = (a.max(c), b.min(d));
                if x <= y {
                    n += conn.query_row(
                        "SELECT count(*) FROM sample WHERE ts_ms BETWEEN ?1 AND ?2",
                        [x, y],
                        |r| r.get::<_, i64>(0),
                    )? as u64;
                }
            }
        }
        n
    };
    k.pinned_samples -= both.min(k.pinned_samples);
    Ok(k)
}
