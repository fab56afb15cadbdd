//! A bounded in-memory ring of past host rows, for `history.max("load1", "5m")` and friends.
//! Oldest rows fall off when the ring is full; memory never grows past its capacity.

use std::collections::VecDeque;

use crate::model::{HostRow, Sample, TimestampMs};

/// Host fields `history.*` can aggregate, by their Lua name.
pub const FIELDS: &[&str] = &[
    "load1",
    "load5",
    "load15",
    "cpu_user",
    "cpu_system",
    "cpu_iowait",
    "cpu_steal",
    "cpu_idle",
    "mem_used",
    "mem_available",
    "swap_used",
    "psi_cpu_some",
    "psi_memory_some",
    "psi_memory_full",
    "psi_io_some",
    "psi_io_full",
    "disk_read_bps",
    "disk_write_bps",
    "net_rx_bps",
    "net_tx_bps",
    "procs_running",
    "procs_blocked",
];

fn field_values(h: &HostRow) -> [f64; FIELDS.len()] {
    let nan = f64::NAN;
    [
        h.load1,
        h.load5,
        h.load15,
        h.cpu_user_pct,
        h.cpu_system_pct,
        h.cpu_iowait_pct,
        h.cpu_steal_pct,
        h.cpu_idle_pct,
        h.mem_used_bytes as f64,
        h.mem_available_bytes as f64,
        h.swap_used_bytes as f64,
        h.psi_cpu.map_or(nan, |p| p.some_avg10),
        h.psi_memory.map_or(nan, |p| p.some_avg10),
        h.psi_memory.and_then(|p| p.full_avg10).unwrap_or(nan),
        h.psi_io.map_or(nan, |p| p.some_avg10),
        h.psi_io.and_then(|p| p.full_avg10).unwrap_or(nan),
        h.disk_read_bytes_per_s,
        h.disk_write_bytes_per_s,
        h.net_rx_bytes_per_s,
        h.net_tx_bytes_per_s,
        h.procs_running as f64,
        h.procs_blocked as f64,
    ]
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
        let idx = FIELDS.iter().position(|f| *f == field).ok_or_else(|| {
            format!(
                "unknown history field {field:?}; known: {}",
                FIELDS.join(", ")
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
