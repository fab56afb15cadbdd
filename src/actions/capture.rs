//! Captures: detail sampling with a pre-trigger buffer.

use std::sync::Arc;
use std::time::Duration;

use super::Actions;
use crate::model::{Sample, TimestampMs};
use crate::store::Store;

/// A full sample kept in memory, with the id of its (baseline) row in the store.
pub(super) struct Kept {
    pub(super) sample_id: i64,
    pub(super) sample: Arc<Sample>,
}

#[derive(Debug, Clone)]
pub(super) struct Capture {
    id: i64,
    rule: String,
    incident_id: Option<i64>,
    started_ms: TimestampMs,
    /// End by duration (extended by later capture actions).
    until_ms: TimestampMs,
    pub(super) interval: Duration,
}

impl Actions {
    pub(super) fn start_capture(
        &mut self,
        store: &mut Store,
        rule: &str,
        incident_id: Option<i64>,
        duration: Duration,
        interval: Option<Duration>,
        now: TimestampMs,
    ) -> crate::store::Result<()> {
        let interval = interval.unwrap_or(self.esc.detail_interval.std());
        let until = now + duration.as_millis() as i64;
        if let Some(c) = self.capture.as_mut() {
            c.until_ms = c.until_ms.max(until);
            if c.incident_id.is_none() {
                c.incident_id = incident_id;
            }
            return store.update_capture(c.id, c.until_ms, None);
        }
        let id = store.start_capture(
            incident_id,
            rule,
            now,
            until,
            interval.as_millis() as i64,
            true,
        )?;
        // The minutes before the trigger, in full detail.
        let kept: Vec<Kept> = self.ring.drain(..).collect();
        self.ring_rows = 0;
        for k in &kept {
            store.upgrade_to_detail(k.sample_id, &k.sample)?;
        }
        tracing::info!(
            "capture {id} started by rule {rule}: every process every {}ms; {} pre-trigger samples kept in detail",
            interval.as_millis(),
            kept.len()
        );
        self.capture = Some(Capture {
            id,
            rule: rule.to_string(),
            incident_id,
            started_ms: now,
            until_ms: until,
            interval,
        });
        Ok(())
    }

    pub(super) fn maybe_end_capture(&mut self, store: &mut Store, now: TimestampMs) {
        let Some(c) = &self.capture else { return };
        let max_end = c.started_ms + self.esc.max_capture.as_millis() as i64;
        let incident_end = match c.incident_id {
            Some(id) => match store_incident_closed(store, id) {
                // Open: the capture goes on (up to max_capture).
                None => i64::MAX,
                Some(closed) => closed + self.esc.clear_margin.as_millis() as i64,
            },
            None => 0,
        };
        let end = c.until_ms.max(incident_end).min(max_end);
        if now >= end {
            let _ = store.update_capture(c.id, c.until_ms, Some(now));
            tracing::info!("capture {} (rule {}) ended", c.id, c.rule);
            self.capture = None;
        }
    }
}

fn store_incident_closed(store: &Store, id: i64) -> Option<TimestampMs> {
    store.incident_closed_ms(id).ok().flatten()
}
