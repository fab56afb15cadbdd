//! The per-rule hysteresis state machine, pure logic with no Lua:
//!
//! ```text
//! inactive --true--> pending --true for hold--> firing --false--> clearing --false for clear_after--> inactive
//!            (hold 0: straight to firing)   pending --false--> inactive     clearing --true--> firing
//! ```
//!
//! Time is the sample's timestamp, never the wall clock, so tests, backtests and a restored
//! state behave the same as live evaluation.

use serde::{Deserialize, Serialize};

use super::types::RuleState;
use crate::model::TimestampMs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Inactive,
    /// The condition is true, `hold` has not elapsed yet.
    Pending,
    Firing,
    /// Fired, and the condition is now false, `clear_after` has not elapsed yet.
    Clearing,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Inactive => "inactive",
            Status::Pending => "pending",
            Status::Firing => "firing",
            Status::Clearing => "clearing",
        }
    }
}

/// What a step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    Fire,
    Clear,
}

/// Timing of a conditional rule, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub hold_ms: i64,
    pub clear_after_ms: i64,
    /// A pending hold older than this gap since the last evaluation restarts.
    pub max_gap_ms: i64,
}

/// Advances `state` with the condition's value at `now`.
pub fn step(
    state: &mut RuleState,
    timing: Timing,
    condition: bool,
    now: TimestampMs,
) -> Transition {
    let gap_too_long = state
        .last_eval_ms
        .is_some_and(|last| now - last > timing.max_gap_ms);
    state.last_eval_ms = Some(now);
    let since = state.since_ms.unwrap_or(now);
    match (state.status, condition) {
        (Status::Inactive, true) => {
            if timing.hold_ms <= 0 {
                fire(state, now)
            } else {
                state.status = Status::Pending;
                state.since_ms = Some(now);
                Transition::None
            }
        }
        (Status::Pending, true) => {
            if gap_too_long {
                // The recorder was down: we do not know the condition held meanwhile.
                state.since_ms = Some(now);
                Transition::None
            } else if now - since >= timing.hold_ms {
                fire(state, now)
            } else {
                Transition::None
            }
        }
        (Status::Pending, false) | (Status::Inactive, false) => {
            state.status = Status::Inactive;
            state.since_ms = None;
            Transition::None
        }
        (Status::Firing, true) => Transition::None,
        (Status::Firing, false) => {
            if timing.clear_after_ms <= 0 {
                clear(state)
            } else {
                state.status = Status::Clearing;
                state.since_ms = Some(now);
                Transition::None
            }
        }
        (Status::Clearing, true) => {
            state.status = Status::Firing;
            state.since_ms = state.fired_ms;
            Transition::None
        }
        (Status::Clearing, false) => {
            if now - since >= timing.clear_after_ms {
                clear(state)
            } else {
                Transition::None
            }
        }
    }
}

fn fire(state: &mut RuleState, now: TimestampMs) -> Transition {
    state.status = Status::Firing;
    state.since_ms = Some(now);
    state.fired_ms = Some(now);
    Transition::Fire
}

fn clear(state: &mut RuleState) -> Transition {
    state.status = Status::Inactive;
    state.since_ms = None;
    state.fired_ms = None;
    Transition::Clear
}

/// Whether a scheduled rule is due at `now`. A rule that never ran is due at once.
pub fn scheduled_due(state: &RuleState, every_ms: i64, now: TimestampMs) -> bool {
    match state.last_run_ms {
        None => true,
        Some(last) => now - last >= every_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timing = Timing {
        hold_ms: 30_000,
        clear_after_ms: 60_000,
        max_gap_ms: 300_000,
    };

    fn run(state: &mut RuleState, conds: &[(i64, bool)]) -> Vec<(i64, Transition, Status)> {
        conds
            .iter()
            .map(|&(t, c)| {
                let tr = step(state, T, c, t * 1000);
                (t, tr, state.status)
            })
            .collect()
    }

    #[test]
    fn pending_then_fire_after_hold_then_clear_after() {
        let mut s = RuleState::default();
        let out = run(
            &mut s,
            &[
                (0, true),
                (10, true),
                (29, true),
                (30, true),
                (40, false),
                (99, false),
                (100, false),
            ],
        );
        assert_eq!(out[0].2, Status::Pending);
        assert_eq!(out[2].1, Transition::None);
        assert_eq!(out[3], (30, Transition::Fire, Status::Firing));
        assert_eq!(out[4].2, Status::Clearing);
        assert_eq!(out[5].1, Transition::None);
        assert_eq!(out[6], (100, Transition::Clear, Status::Inactive));
    }

    #[test]
    fn false_while_pending_resets_and_true_while_clearing_refires_silently() {
        let mut s = RuleState::default();
        run(&mut s, &[(0, true), (20, false), (25, true)]);
        assert_eq!(s.since_ms, Some(25_000));
        let out = run(&mut s, &[(55, true), (60, false), (70, true), (200, true)]);
        assert_eq!(out[0].1, Transition::Fire);
        assert_eq!(out[1].2, Status::Clearing);
        assert_eq!(out[2], (70, Transition::None, Status::Firing));
        assert_eq!(out[3].1, Transition::None);
    }

    #[test]
    fn restored_pending_keeps_its_hold_but_a_long_gap_restarts_it() {
        let mut s = RuleState::default();
        run(&mut s, &[(0, true), (20, true)]);
        let json = serde_json::to_string(&s).unwrap();
        let mut restored: RuleState = serde_json::from_str(&json).unwrap();
        assert_eq!(run(&mut restored, &[(30, true)])[0].1, Transition::Fire);

        let mut s = RuleState::default();
        run(&mut s, &[(0, true), (20, true)]);
        assert_eq!(run(&mut s, &[(1000, true)])[0].1, Transition::None);
        assert_eq!(s.since_ms, Some(1_000_000));
    }

    #[test]
    fn zero_hold_fires_at_once_and_scheduling() {
        let t = Timing {
            hold_ms: 0,
            clear_after_ms: 0,
            max_gap_ms: 1,
        };
        let mut s = RuleState::default();
        assert_eq!(step(&mut s, t, true, 0), Transition::Fire);
        assert_eq!(step(&mut s, t, false, 1), Transition::Clear);
        let mut st = RuleState::default();
        assert!(scheduled_due(&st, 3_600_000, 0));
        st.last_run_ms = Some(0);
        assert!(!scheduled_due(&st, 3_600_000, 3_599_999));
        assert!(scheduled_due(&st, 3_600_000, 3_600_000));
    }
}
