//! `actions` carries out what rules decided: incidents (open, update, resolve, culprits,
//! linked samples), captures (detail sampling with a pre-trigger buffer), alerts into the
//! outbox, pruning, logging and commands. It is called by the daemon after each evaluation.
//!
//! Guarantees:
//! - Nothing slow runs here on the sampling path: alerts are rows in the outbox (delivered by
//!   another task), commands run on their own thread with a timeout.
//! - A rule has at most one open incident; every sample taken while it is open is linked to
//!   it, and so are the pre-trigger samples before it opened.
//! - The pre-trigger buffer is bounded by time (`[escalation] pre_trigger`) and by process
//!   rows (`pre_trigger_max_rows`); when a capture starts, its samples are upgraded in the
//!   store to detail (every process).
//! - A capture ends after its duration or `clear_margin` after its incident clears, whichever
//!   is later, and never runs past `max_capture`.

mod alert;
mod capture;
mod exec;
mod incident;
mod prune;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::alert::outbox::OutboxWaker;
use crate::config::{Config, Escalation as EscalationConfig};
use crate::daemon::retention::PruneQueue;
use crate::model::{Level, Sample};
use crate::rules::{Action, Evaluation, Firing, FiringKind};
use crate::store::outbox::{AlertKind, Channel};
use crate::store::{RecorderEvent, Store};

use alert::RuleNote;
use capture::{Capture, Kept};
use incident::update_peaks;
pub use prune::prune_policy;

/// What the daemon must know after a pass: at which level and interval to sample next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Next {
    pub level: Level,
    pub interval: Duration,
}

pub struct Actions {
    /// For the alert channels and rate limits.
    config: Config,
    waker: OutboxWaker,
    prune: Option<PruneQueue>,
    esc: EscalationConfig,
    baseline_interval: Duration,
    allow_exec: bool,
    exec_timeout: Duration,
    ring: VecDeque<Kept>,
    ring_rows: usize,
    capture: Option<Capture>,
}

impl Actions {
    pub fn new(config: &Config, waker: OutboxWaker, prune: Option<PruneQueue>) -> Actions {
        Actions {
            config: config.clone(),
            waker,
            prune,
            esc: config.escalation.clone(),
            baseline_interval: config.sampler.interval.std(),
            allow_exec: config.rules.allow_exec,
            exec_timeout: config.rules.exec_timeout.std(),
            ring: VecDeque::new(),
            ring_rows: 0,
            capture: None,
        }
    }

    pub fn reconfigure(&mut self, config: &Config) {
        self.config = config.clone();
        self.esc = config.escalation.clone();
        self.baseline_interval = config.sampler.interval.std();
        self.allow_exec = config.rules.allow_exec;
        self.exec_timeout = config.rules.exec_timeout.std();
    }

    /// The level and interval of the next sample.
    pub fn next(&self) -> Next {
        match &self.capture {
            Some(c) => Next {
                level: Level::Detail,
                interval: c.interval.min(self.baseline_interval),
            },
            None => Next {
                level: Level::Baseline,
                interval: self.baseline_interval,
            },
        }
    }

    pub fn capturing(&self) -> bool {
        self.capture.is_some()
    }

    /// Keeps a full sample for the pre-trigger buffer (its baseline row is `sample_id`).
    pub fn remember(&mut self, sample_id: i64, sample: Arc<Sample>) {
        if self.capture.is_some() {
            return;
        }
        self.ring_rows += sample.processes.len();
        self.ring.push_back(Kept { sample_id, sample });
        let oldest_ok = self.ring.back().map_or(0, |k| k.sample.ts_ms)
            - self.esc.pre_trigger.as_millis() as i64;
        while let Some(front) = self.ring.front() {
            let too_old = front.sample.ts_ms < oldest_ok;
            let too_big = self.ring_rows > self.esc.pre_trigger_max_rows && self.ring.len() > 1;
            if !(too_old || too_big) {
                break;
            }
            self.ring_rows -= front.sample.processes.len();
            self.ring.pop_front();
        }
    }

    /// Carries out one evaluation's decisions and keeps incidents and captures up to date.
    /// `sample_id` is the stored row of `full` (None if the store could not take it).
    pub fn apply(
        &mut self,
        store: &mut Store,
        eval: &Evaluation,
        full: &Arc<Sample>,
        sample_id: Option<i64>,
    ) -> Vec<RecorderEvent> {
        let mut events = Vec::new();
        let now = full.ts_ms;
        for e in &eval.errors {
            let rule = e.rule.clone().unwrap_or_else(|| "<load>".into());
            tracing::warn!("rule error: {e}");
            if let Err(err) = store.record_rule_error(
                now,
                &rule,
                &e.file.display().to_string(),
                e.line,
                &e.message,
            ) {
                tracing::debug!("rule error not recorded: {err}");
            }
        }
        for l in &eval.logs {
            tracing::info!(
                "rule {}: {}",
                l.rule.as_deref().unwrap_or("<load>"),
                l.message
            );
        }
        for d in &eval.disabled {
            tracing::error!(
                "rule {} ({}) disabled: {}",
                d.rule,
                d.file.display(),
                d.reason
            );
            let title = format!("rule {} is broken: {}", d.rule, d.reason);
            let opened = self.open_or_update(
                store,
                &d.rule,
                &d.file.display().to_string(),
                "warning",
                &title,
                "",
                full,
                sample_id,
                &serde_json::Value::Null,
            );
            match opened {
                Ok((id, true)) => self.raise(store, id, AlertKind::Fire, None, now),
                Ok(_) => {}
                Err(e) => tracing::error!("cannot record the broken rule's incident: {e}"),
            }
        }
        for f in &eval.firings {
            self.apply_firing(store, f, full, sample_id, &mut events);
        }
        // Every open incident: link this sample, track peaks.
        if let Some(id) = sample_id {
            match store.open_incidents() {
                Ok(open) => {
                    for (incident, _) in open {
                        let _ = store.link_samples(incident, &[id]);
                        let _ = update_peaks(store, incident, full, None);
                    }
                }
                Err(e) => tracing::debug!("open incidents unknown this pass: {e}"),
            }
        }
        self.maybe_end_capture(store, now);
        events
    }

    fn apply_firing(
        &mut self,
        store: &mut Store,
        f: &Firing,
        full: &Arc<Sample>,
        sample_id: Option<i64>,
        events: &mut Vec<RecorderEvent>,
    ) {
        let file = f.file.display().to_string();
        // A rule that says how to alert is obeyed; otherwise an incident that opens or
        // clears alerts every enabled channel.
        let explicit_alerts = f
            .actions
            .iter()
            .any(|a| matches!(a, Action::Email { .. } | Action::Notify { .. }));
        let kind = match f.kind {
            FiringKind::Fire => AlertKind::Fire,
            FiringKind::Clear => AlertKind::Clear,
            FiringKind::Scheduled => AlertKind::Notice,
        };
        for a in &f.actions {
            let r: crate::store::Result<()> = match a {
                Action::Incident {
                    title,
                    severity,
                    body,
                } => self
                    .open_or_update(
                        store,
                        &f.rule,
                        &file,
                        severity.as_str(),
                        title,
                        body.as_deref().unwrap_or(""),
                        full,
                        sample_id,
                        &f.values,
                    )
                    .map(|(id, new)| {
                        if new && !explicit_alerts {
                            self.raise(store, id, AlertKind::Fire, None, full.ts_ms);
                        }
                    }),
                Action::Resolve { .. } => match store.open_incident_of(&f.rule) {
                    Ok(Some(id)) => {
                        tracing::info!("incident {id} ({}) resolved", f.rule);
                        store.close_incident(id, full.ts_ms).map(|_| {
                            if !explicit_alerts {
                                self.raise(store, id, AlertKind::Clear, None, full.ts_ms);
                            }
                        })
                    }
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                },
                Action::Capture {
                    duration, interval, ..
                } => {
                    let incident = store.open_incident_of(&f.rule).ok().flatten();
                    self.start_capture(store, &f.rule, incident, *duration, *interval, full.ts_ms)
                }
                Action::Email { subject, body, .. } => self.raise_from_rule(
                    store,
                    f,
                    kind,
                    RuleNote {
                        subject: subject.clone(),
                        body: body.clone(),
                        channel: Channel::Email,
                        urgency: None,
                    },
                    full,
                ),
                Action::Notify {
                    summary,
                    body,
                    urgency,
                } => self.raise_from_rule(
                    store,
                    f,
                    kind,
                    RuleNote {
                        subject: summary.clone(),
                        body: body.clone(),
                        channel: Channel::Desktop,
                        urgency: Some(match urgency {
                            crate::rules::Urgency::Low => "low",
                            crate::rules::Urgency::Normal => "normal",
                            crate::rules::Urgency::Critical => "critical",
                        }),
                    },
                    full,
                ),
                Action::Prune {
                    policy,
                    older_than,
                    load_below,
                    keep_incidents,
                    dry_run,
                } => {
                    self.prune(
                        &f.rule,
                        policy,
                        *older_than,
                        *load_below,
                        *keep_incidents,
                        *dry_run,
                        events,
                    );
                    Ok(())
                }
                Action::Log { message } => {
                    tracing::info!("rule {}: {message}", f.rule);
                    Ok(())
                }
                Action::Exec { argv, timeout } => {
                    self.exec(&f.rule, argv, timeout.unwrap_or(self.exec_timeout));
                    Ok(())
                }
            };
            if let Err(e) = r {
                tracing::error!("rule {}: {} action failed: {e}", f.rule, a.type_name());
            }
        }
        if f.kind == FiringKind::Fire {
            tracing::warn!("rule {} fired ({})", f.rule, f.severity.as_str());
        } else if f.kind == FiringKind::Clear {
            tracing::info!("rule {} cleared", f.rule);
        }
    }
}
