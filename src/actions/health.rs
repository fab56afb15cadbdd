//! Failures of the bookkeeping actions does on every pass (linking samples, tracking peaks,
//! ending a capture, ...). None is dropped: each kind is counted; the first failure is
//! logged and recorded in the recorder's health log (`recorder_event`, kind `error`), then
//! again at every tenfold count (10, 100, ...), and once more, with the count, when that kind
//! works again.

use std::collections::BTreeMap;
use std::fmt::Display;

use crate::store::RecorderEvent;

/// A piece of per-pass bookkeeping that can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Step {
    RecordRuleError,
    OpenIncidents,
    IncidentOfRule,
    IncidentClosed,
    LinkSamples,
    UpdatePeaks,
    EndCapture,
    ReadIncident,
    ReadCulprits,
}

impl Step {
    fn what(self) -> &'static str {
        match self {
            Step::RecordRuleError => "record a rule error",
            Step::OpenIncidents => "list the open incidents",
            Step::IncidentOfRule => "find a rule's open incident",
            Step::IncidentClosed => "read whether a capture's incident closed",
            Step::LinkSamples => "link a sample to its open incident",
            Step::UpdatePeaks => "update an incident's peaks",
            Step::EndCapture => "record the end of a capture",
            Step::ReadIncident => "read an incident to alert about it",
            Step::ReadCulprits => "read an incident's culprits for its alert",
        }
    }
}

/// Failure counts by step, and the health events not yet handed to the daemon.
#[derive(Debug, Default)]
pub(super) struct Health {
    /// Failures of each step since it last worked.
    failing: BTreeMap<Step, u64>,
    events: Vec<RecorderEvent>,
}

impl Health {
    /// The value of `r`, or `None` after counting its error against `step`.
    pub(super) fn note<T, E: Display>(&mut self, step: Step, r: Result<T, E>) -> Option<T> {
        match r {
            Ok(v) => {
                self.worked(step);
                Some(v)
            }
            Err(e) => {
                self.failed(step, &e);
                None
            }
        }
    }

    fn failed(&mut self, step: Step, err: &dyn Display) {
        let count = self.failing.entry(step).or_insert(0);
        *count += 1;
        let n = *count;
        if !is_told(n) {
            return;
        }
        let message = if n == 1 {
            format!(
                "actions: cannot {}: {err} (further failures are counted)",
                step.what()
            )
        } else {
            format!(
                "actions: cannot {} ({n} times in a row): {err}",
                step.what()
            )
        };
        tracing::warn!("{message}");
        self.events.push(RecorderEvent {
            count: Some(n as i64),
            ..RecorderEvent::now("error", message)
        });
    }

    fn worked(&mut self, step: Step) {
        if self.failing.is_empty() {
            return;
        }
        let Some(n) = self.failing.remove(&step) else {
            return;
        };
        let message = format!("actions: {} works again after {n} failures", step.what());
        tracing::info!("{message}");
        self.events.push(RecorderEvent {
            count: Some(n as i64),
            ..RecorderEvent::now("notice", message)
        });
    }

    /// The health events since the last call, for the daemon to record.
    pub(super) fn take_events(&mut self) -> Vec<RecorderEvent> {
        std::mem::take(&mut self.events)
    }
}

/// The failure counts that are logged: the first and every tenfold one.
fn is_told(n: u64) -> bool {
    let mut told = 1;
    while told < n {
        told *= 10;
    }
    told == n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(h: &mut Health) -> Option<()> {
        h.note(Step::LinkSamples, Err::<(), _>("disk I/O error"))
    }

    #[test]
    fn the_first_failure_is_told_then_counted() {
        let mut h = Health::default();
        assert_eq!(fail(&mut h), None);
        let first = h.take_events();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].kind, "error");
        assert_eq!(first[0].count, Some(1));
        assert!(first[0].message.contains("link a sample"), "{first:?}");
        assert!(first[0].message.contains("disk I/O error"), "{first:?}");
        for _ in 2..10 {
            fail(&mut h);
        }
        assert!(h.take_events().is_empty());
        fail(&mut h);
        let tenth = h.take_events();
        assert_eq!(tenth.len(), 1);
        assert_eq!(tenth[0].count, Some(10));
    }

    #[test]
    fn a_step_that_works_again_says_how_often_it_failed() {
        let mut h = Health::default();
        for _ in 0..3 {
            fail(&mut h);
        }
        h.take_events();
        assert_eq!(h.note(Step::UpdatePeaks, Ok::<_, String>(7)), Some(7));
        assert!(
            h.take_events().is_empty(),
            "another step working says nothing"
        );
        h.note(Step::LinkSamples, Ok::<_, String>(()));
        let back = h.take_events();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].kind, "notice");
        assert_eq!(back[0].count, Some(3));
        // Counted afresh: the next failure is a first one again.
        fail(&mut h);
        assert_eq!(h.take_events()[0].count, Some(1));
    }

    #[test]
    fn told_counts_are_the_first_and_tenfold() {
        let told: Vec<u64> = (1..=1000).filter(|&n| is_told(n)).collect();
        assert_eq!(told, [1, 10, 100, 1000]);
    }
}
