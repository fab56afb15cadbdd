//! The daemon's side of `[export.prometheus]`: after each pass, the snapshot the `/metrics`
//! server serves. Built from what the pass already has in memory, plus a file size and one
//! count of the outbox.

use std::time::Instant;

use super::Recorder;
use crate::export::{Feed, Health, RuleView, Snapshot};
use crate::rules::{Evaluation, FiringKind, Status};

/// Adds one evaluation's rule errors and opened incidents to the counters.
pub(super) fn count(health: &mut Health, eval: &Evaluation) {
    health.rule_errors += eval.errors.len() as u64;
    for f in &eval.firings {
        if f.kind == FiringKind::Fire {
            *health
                .opened
                .entry((f.rule.clone(), f.severity))
                .or_default() += 1;
        }
    }
}

impl Recorder {
    /// Sends each pass's snapshot to `feed` (the `/metrics` server).
    pub fn set_export(&mut self, feed: Feed) {
        self.export = Some(feed);
    }

    /// Publishes the snapshot of the pass that started at `started`.
    pub(super) fn publish(&mut self, started: Instant, late_ms: u64) {
        let (Some(feed), Some(sample)) = (self.export.as_ref(), self.last_full.take()) else {
            return;
        };
        let h = &mut self.export_health;
        if late_ms > 0 {
            h.late += 1;
        }
        h.dropped = self.dropped + self.queue_dropped;
        h.last_duration_s = started.elapsed().as_secs_f64();
        let path = self.store.path();
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        h.store_bytes = [path.to_path_buf(), wal.into()]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        h.outbox_backlog = match self.store.outbox_backlog() {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::debug!("outbox backlog unknown: {e}");
                None
            }
        };
        let rules = self
            .engine
            .as_ref()
            .map(|e| {
                e.rules()
                    .into_iter()
                    .map(|r| RuleView {
                        open: matches!(r.state.status, Status::Firing | Status::Clearing),
                        name: r.name,
                        severity: r.severity,
                    })
                    .collect()
            })
            .unwrap_or_default();
        feed.publish(Snapshot {
            sample,
            health: h.clone(),
            rules,
            interval_s: self.actions.next().interval.as_secs_f64(),
        });
    }
}
