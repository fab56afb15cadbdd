//! Pins: incident windows and linked samples, which the age rules leave alone.

use std::collections::HashSet;

use rusqlite::{params, Connection};

use super::RetentionPolicy;
use crate::model::TimestampMs;

#[derive(Debug, Default)]
pub(super) struct Pins {
    /// Merged, sorted, inclusive.
    pub(super) open: Vec<(i64, i64)>,
    pub(super) closed: Vec<(i64, i64)>,
    pub(super) linked_open: HashSet<i64>,
    pub(super) linked_closed: HashSet<i64>,
}

fn merge_intervals(mut v: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    v.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(v.len());
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

pub(super) fn in_intervals(v: &[(i64, i64)], ts: i64) -> bool {
    let i = v.partition_point(|&(a, _)| a <= ts);
    i > 0 && ts <= v[i - 1].1
}

impl Pins {
    pub(super) fn load(
        conn: &Connection,
        r: &RetentionPolicy,
        now: TimestampMs,
    ) -> rusqlite::Result<Pins> {
        let margin = r.incident_margin.as_millis() as i64;
        let pin_since = now - r.incidents.as_millis() as i64;
        let mut open = Vec::new();
        let mut closed = Vec::new();
        let mut st = conn.prepare("SELECT opened_ms, closed_ms FROM incident")?;
        let mut rows = st.query([])?;
        while let Some(row) = rows.next()? {
            let opened: i64 = row.get(0)?;
            match row.get::<_, Option<i64>>(1)? {
                None => open.push((opened - margin, i64::MAX)),
                Some(c) if c + margin >= pin_since => closed.push((opened - margin, c + margin)),
                Some(_) => {}
            }
        }
        let mut linked_open = HashSet::new();
        let mut linked_closed = HashSet::new();
        let mut st = conn.prepare(
            "SELECT x.sample_id, i.closed_ms FROM incident_sample x
             JOIN incident i ON i.id = x.incident_id
             WHERE i.closed_ms IS NULL OR i.closed_ms + ?1 >= ?2",
        )?;
        let mut rows = st.query(params![margin, pin_since])?;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            if row.get::<_, Option<i64>>(1)?.is_none() {
                linked_open.insert(id);
            } else {
                linked_closed.insert(id);
            }
        }
        Ok(Pins {
            open: merge_intervals(open),
            closed: merge_intervals(closed),
            linked_open,
            linked_closed,
        })
    }

    pub(super) fn is_open(&self, id: i64, ts: i64) -> bool {
        in_intervals(&self.open, ts) || self.linked_open.contains(&id)
    }

    pub(super) fn is_closed(&self, id: i64, ts: i64) -> bool {
        in_intervals(&self.closed, ts) || self.linked_closed.contains(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_merge_and_contain() {
        let v = merge_intervals(vec![(10, 20), (5, 12), (30, 40), (21, 25)]);
        assert_eq!(v, vec![(5, 25), (30, 40)]);
        assert!(in_intervals(&v, 5));
        assert!(in_intervals(&v, 25));
        assert!(!in_intervals(&v, 26));
        assert!(in_intervals(&v, 40));
        assert!(!in_intervals(&v, 41));
        assert!(!in_intervals(&v, 4));
    }
}
