//! Captures: detail sampling with a pre-trigger buffer. [`CaptureWindow`] decides when a
//! capture runs (pure: the time is passed in); [`PreTrigger`] keeps the samples taken before a
//! trigger so a capture can store them in detail.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::health::Step;
use super::Actions;
use crate::model::{Sample, TimestampMs};
use crate::store::Store;

/// When a detail capture runs. Pure: no I/O, the time is passed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CaptureWindow {
    started_ms: TimestampMs,
    /// End by duration (pushed later by later capture actions, never earlier).
    until_ms: TimestampMs,
    /// The interval the capture asked for.
    interval: Duration,
}

/// Where a capture's incident stands, as far as its window is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IncidentState {
    /// The capture has no incident: it ends by its duration.
    NoIncident,
    /// Open (or not known to be closed): the capture goes on, up to `max_capture`.
    Open,
    /// Closed then: the capture goes on `clear_margin` after it.
    ClosedAt(TimestampMs),
}

/// The bounds a window is checked against; read at each check, so a reload applies to a
/// running capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CaptureBounds {
    pub(super) clear_margin: Duration,
    pub(super) max_capture: Duration,
}

impl CaptureWindow {
    pub(super) fn start(now: TimestampMs, duration: Duration, interval: Duration) -> Self {
        CaptureWindow {
            started_ms: now,
            until_ms: now + duration.as_millis() as i64,
            interval,
        }
    }

    /// A later capture action: the window runs at least `duration` from `now`. It keeps its
    /// interval and is never shortened.
    pub(super) fn extend(&mut self, now: TimestampMs, duration: Duration) {
        self.until_ms = self.until_ms.max(now + duration.as_millis() as i64);
    }

    pub(super) fn until_ms(&self) -> TimestampMs {
        self.until_ms
    }

    pub(super) fn interval(&self) -> Duration {
        self.interval
    }

    /// The interval to sample at while capturing: the capture's, never slower than `baseline`.
    pub(super) fn sample_interval(&self, baseline: Duration) -> Duration {
        self.interval.min(baseline)
    }

    /// When the capture ends: after its duration or `clear_margin` after its incident
    /// closes, whichever is later, and never past `max_capture` after it started.
    pub(super) fn end_ms(&self, incident: IncidentState, bounds: CaptureBounds) -> TimestampMs {
        let max_end = self.started_ms + bounds.max_capture.as_millis() as i64;
        let incident_end = match incident {
            IncidentState::NoIncident => 0,
            IncidentState::Open => i64::MAX,
            IncidentState::ClosedAt(closed) => closed + bounds.clear_margin.as_millis() as i64,
        };
        self.until_ms.max(incident_end).min(max_end)
    }

    pub(super) fn is_over(
        &self,
        now: TimestampMs,
        incident: IncidentState,
        bounds: CaptureBounds,
    ) -> bool {
        now >= self.end_ms(incident, bounds)
    }
}

/// A full sample kept in memory, with the id of its (baseline) row in the store.
pub(super) struct Kept {
    pub(super) sample_id: i64,
    pub(super) sample: Arc<Sample>,
}

/// The samples before a trigger, bounded by age and by process rows (always keeps the newest).
#[derive(Default)]
pub(super) struct PreTrigger {
    ring: VecDeque<Kept>,
    rows: usize,
}

impl PreTrigger {
    pub(super) fn push(&mut self, kept: Kept, max_age_ms: i64, max_rows: usize) {
        self.rows += kept.sample.processes.len();
        self.ring.push_back(kept);
        let oldest_ok = self.ring.back().map_or(0, |k| k.sample.ts_ms) - max_age_ms;
        while let Some(front) = self.ring.front() {
            let too_old = front.sample.ts_ms < oldest_ok;
            let too_big = self.rows > max_rows && self.ring.len() > 1;
            if !(too_old || too_big) {
                break;
            }
            self.rows -= front.sample.processes.len();
            self.ring.pop_front();
        }
    }

    /// The stored rows of the kept samples, oldest first.
    pub(super) fn sample_ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.ring.iter().map(|k| k.sample_id)
    }

    /// Empties the buffer, handing back what it held.
    pub(super) fn take(&mut self) -> Vec<Kept> {
        self.rows = 0;
        self.ring.drain(..).collect()
    }
}

#[derive(Debug, Clone)]
pub(super) struct Capture {
    id: i64,
    rule: String,
    incident_id: Option<i64>,
    pub(super) window: CaptureWindow,
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
        let interval = interval.unwrap_or(self.settings.escalation.detail_interval.std());
        if let Some(c) = self.capture.as_mut() {
            c.window.extend(now, duration);
            if c.incident_id.is_none() {
                c.incident_id = incident_id;
            }
            return store.update_capture(c.id, c.window.until_ms(), None);
        }
        let window = CaptureWindow::start(now, duration, interval);
        let id = store.start_capture(
            incident_id,
            rule,
            now,
            window.until_ms(),
            window.interval().as_millis() as i64,
            true,
        )?;
        // The minutes before the trigger, in full detail.
        let kept = self.pre_trigger.take();
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
            window,
        });
        Ok(())
    }

    pub(super) fn maybe_end_capture(&mut self, store: &mut Store, now: TimestampMs) {
        let Some(c) = &self.capture else { return };
        let incident = match c.incident_id {
            // An error reading it counts as open: the capture goes on (up to max_capture).
            Some(id) => match self
                .health
                .note(Step::IncidentClosed, store.incident_closed_ms(id))
                .flatten()
            {
                None => IncidentState::Open,
                Some(closed) => IncidentState::ClosedAt(closed),
            },
            None => IncidentState::NoIncident,
        };
        let esc = &self.settings.escalation;
        let bounds = CaptureBounds {
            clear_margin: esc.clear_margin.std(),
            max_capture: esc.max_capture.std(),
        };
        if c.window.is_over(now, incident, bounds) {
            let ended = store.update_capture(c.id, c.window.until_ms(), Some(now));
            self.health.note(Step::EndCapture, ended);
            tracing::info!("capture {} (rule {}) ended", c.id, c.rule);
            self.capture = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;
    const T0: TimestampMs = 1_700_000_000_000;

    fn bounds() -> CaptureBounds {
        CaptureBounds {
            clear_margin: Duration::from_secs(30),
            max_capture: Duration::from_secs(600),
        }
    }

    fn window() -> CaptureWindow {
        CaptureWindow::start(T0, Duration::from_secs(60), Duration::from_secs(1))
    }

    /// In `state` the window ends at `end`: still running a second before, over at it.
    #[track_caller]
    fn assert_ends_at(w: &CaptureWindow, state: IncidentState, end: TimestampMs) {
        assert_eq!(w.end_ms(state, bounds()), end);
        assert!(!w.is_over(end - S, state, bounds()));
        assert!(w.is_over(end, state, bounds()));
    }

    #[test]
    fn start_runs_for_its_duration_without_an_incident() {
        let w = window();
        assert_eq!(w.until_ms(), T0 + 60 * S);
        assert_ends_at(&w, IncidentState::NoIncident, T0 + 60 * S);
    }

    #[test]
    fn sample_interval_is_never_slower_than_the_baseline() {
        let w = window();
        assert_eq!(
            w.sample_interval(Duration::from_secs(5)),
            Duration::from_secs(1)
        );
        let slow = CaptureWindow::start(T0, Duration::from_secs(60), Duration::from_secs(10));
        assert_eq!(slow.interval(), Duration::from_secs(10));
        assert_eq!(
            slow.sample_interval(Duration::from_secs(5)),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn extend_pushes_the_end_later_and_never_earlier() {
        let mut w = window();
        w.extend(T0 + 30 * S, Duration::from_secs(60));
        assert_eq!(w.until_ms(), T0 + 90 * S);
        w.extend(T0 + 31 * S, Duration::from_secs(10));
        assert_eq!(w.until_ms(), T0 + 90 * S);
        assert_eq!(w.interval(), Duration::from_secs(1));
        assert!(!w.is_over(T0 + 89 * S, IncidentState::NoIncident, bounds()));
        assert!(w.is_over(T0 + 90 * S, IncidentState::NoIncident, bounds()));
    }

    #[test]
    fn an_open_incident_keeps_it_going_until_the_bound() {
        assert_ends_at(&window(), IncidentState::Open, T0 + 600 * S);
    }

    #[test]
    fn a_closed_incident_expires_it_after_the_clear_margin() {
        let w = window();
        // Closed late: the margin after the close outlasts the duration.
        assert_ends_at(&w, IncidentState::ClosedAt(T0 + 100 * S), T0 + 130 * S);
        // Closed early: the duration is the later end.
        let early = IncidentState::ClosedAt(T0 + 5 * S);
        assert_eq!(w.end_ms(early, bounds()), T0 + 60 * S);
    }

    #[test]
    fn the_longest_capture_bounds_duration_and_incident_alike() {
        let mut w = window();
        w.extend(T0 + 500 * S, Duration::from_secs(3600));
        assert_eq!(w.end_ms(IncidentState::NoIncident, bounds()), T0 + 600 * S);
        let closed = IncidentState::ClosedAt(T0 + 590 * S);
        assert_eq!(w.end_ms(closed, bounds()), T0 + 600 * S);
        assert!(w.is_over(T0 + 600 * S, IncidentState::Open, bounds()));
    }
}
