//! A bounded in-memory ring of past host rows, for `history.max("load1", "5m")` and friends.
//! Oldest rows fall off when the ring is full; memory never grows past its capacity.

use std::collections::VecDeque;

use crate::model::{HostRow, Psi, Sample, TimestampMs};

/// A host field `history.*` can aggregate: its Lua name and how to read it from a host row
/// (NaN where the value is absent: PSI on a kernel without it).
type Field = (&'static str, fn(&HostRow) -> f64);

/// Host fields `history.*` can aggregate, by their Lua name.
pub const FIELDS: &[Field] = &[
    ("load1", |h| h.load1),
    ("load5", |h| h.load5),
    ("load15", |h| h.load15),
    ("cpu_user", |h| h.cpu_user_pct),
    ("cpu_system", |h| h.cpu_system_pct),
    ("cpu_iowait", |h| h.cpu_iowait_pct),
    ("cpu_steal", |h| h.cpu_steal_pct),
    ("cpu_idle", |h| h.cpu_idle_pct),
    ("mem_used", |h| h.mem_used_bytes as f64),
    ("mem_available", |h| h.mem_available_bytes as f64),
    ("swap_used", |h| h.swap_used_bytes as f64),
    ("psi_cpu_some", |h| some(h.psi_cpu)),
    ("psi_memory_some", |h| some(h.psi_memory)),
    ("psi_memory_full", |h| full(h.psi_memory)),
    ("psi_io_some", |h| some(h.psi_io)),
    ("psi_io_full", |h| full(h.psi_io)),
    ("disk_read_bps", |h| h.disk_read_bytes_per_s),
    ("disk_write_bps", |h| h.disk_write_bytes_per_s),
    ("net_rx_bps", |h| h.net_rx_bytes_per_s),
    ("net_tx_bps", |h| h.net_tx_bytes_per_s),
    ("procs_running", |h| h.procs_running as f64),
    ("procs_blocked", |h| h.procs_blocked as f64),
];

/// The "some" share of a pressure reading, NaN where the kernel has none.
fn some(psi: Option<Psi>) -> f64 {
    psi.map_or(f64::NAN, |p| p.some_avg10)
}

/// The "full" share of a pressure reading, NaN where the kernel has none.
fn full(psi: Option<Psi>) -> f64 {
    psi.and_then(|p| p.full_avg10).unwrap_or(f64::NAN)
}

fn field_values(h: &HostRow) -> [f64; FIELDS.len()] {
    std::array::from_fn(|i| (FIELDS[i].1)(h))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Min,
    Max,
    Avg,
    Last,
    Count,
}

#[derive(Debug, Clone)]
pub struct HistoryRing {
    capacity: usize,
    rows: VecDeque<(TimestampMs, [f64; FIELDS.len()])>,
}

impl HistoryRing {
    pub fn new(capacity: usize) -> HistoryRing {
        HistoryRing {
            capacity: capacity.max(1),
            rows: VecDeque::new(),
        }
    }

    /// Adds a sample's host row. Out-of-order or repeated timestamps replace newer rows, so a
    /// replay (backtest) starting earlier than the ring's content starts clean.
    pub fn push(&mut self, sample: &Sample) {
        self.push_host(sample.ts_ms, &sample.host);
    }

    pub fn push_host(&mut self, ts_ms: TimestampMs, host: &HostRow) {
        while self.rows.back().is_some_and(|(t, _)| *t >= ts_ms) {
            self.rows.pop_back();
        }
        if self.rows.len() == self.capacity {
            self.rows.pop_front();
        }
        self.rows.push_back((ts_ms, field_values(host)));
    }

    /// Copies `other`'s rows (oldest first), keeping this ring's capacity.
    pub fn extend_from(&mut self, other: &HistoryRing) {
        for (ts, values) in &other.rows {
            if self.rows.len() == self.capacity {
                self.rows.pop_front();
            }
            self.rows.push_back((*ts, *values));
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Aggregates `field` over rows with `now - window < ts <= now`. `None` when no row (or no
    /// value: PSI absent) falls in the window; `Err` for an unknown field.
    pub fn aggregate(
        &self,
        field: &str,
        window_ms: i64,
        now: TimestampMs,
        agg: Aggregate,
    ) -> Result<Option<f64>, String> {
        let idx = FIELDS
            .iter()
            .position(|(name, _)| *name == field)
            .ok_or_else(|| {
                format!(
                    "unknown history field {field:?}; known: {}",
                    FIELDS
                        .iter()
                        .map(|(name, _)| *name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
        let from = now - window_ms;
        let values = self
            .rows
            .iter()
            .rev()
            .take_while(|(t, _)| *t > from)
            .filter(|(t, _)| *t <= now)
            .map(|(_, v)| v[idx])
            .filter(|v| !v.is_nan());
        let mut count = 0usize;
        let (mut min, mut max, mut sum) = (f64::INFINITY, f64::NEG_INFINITY, 0.0);
        let mut last = None;
        for v in values {
            if last.is_none() {
                last = Some(v);
            }
            count += 1;
            min = min.min(v);
            max = max.max(v);
            sum += v;
        }
        if agg == Aggregate::Count {
            return Ok(Some(count as f64));
        }
        if count == 0 {
            return Ok(None);
        }
        Ok(Some(match agg {
            Aggregate::Min => min,
            Aggregate::Max => max,
            Aggregate::Avg => sum / count as f64,
            Aggregate::Last => last.unwrap_or(f64::NAN),
            Aggregate::Count => count as f64,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_aggregates_and_capacity() {
        let mut ring = HistoryRing::new(3);
        for (t, l) in [(1000, 1.0), (2000, 5.0), (3000, 2.0), (4000, 3.0)] {
            let h = HostRow {
                load1: l,
                ..Default::default()
            };
            ring.push_host(t, &h);
        }
        assert_eq!(ring.len(), 3);
        let agg = |a, w| ring.aggregate("load1", w, 4000, a).unwrap();
        assert_eq!(agg(Aggregate::Max, 10_000), Some(5.0));
        assert_eq!(agg(Aggregate::Min, 10_000), Some(2.0));
        assert_eq!(agg(Aggregate::Last, 10_000), Some(3.0));
        assert_eq!(agg(Aggregate::Avg, 1500), Some(2.5));
        assert_eq!(agg(Aggregate::Count, 1500), Some(2.0));
        assert_eq!(
            ring.aggregate("psi_io_some", 10_000, 4000, Aggregate::Max),
            Ok(None)
        );
        assert!(ring.aggregate("nope", 1, 1, Aggregate::Max).is_err());
    }
}
