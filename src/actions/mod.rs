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
mod health;
mod incident;
pub mod plan;
mod prune;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::alert::outbox::OutboxWaker;
use crate::config::{Config, Escalation as EscalationConfig};
use crate::model::{AlertKind, Level, Sample, Severity, TimestampMs};
use crate::rules::{Action, Evaluation, Firing, FiringKind};
use crate::store::outbox::Channel;
use crate::store::retention::PruneQueue;
use crate::store::{RecorderEvent, Store};

use alert::RuleNote;
use capture::{Capture, Kept, PreTrigger};
use health::{Health, Step};
use incident::Peaks;
pub use prune::prune_policy;

/// What the daemon must know after a pass: at which level and interval to sample next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Next {
    pub level: Level,
    pub interval: Duration,
}

/// What actions works from, built from the configuration by [`Settings::new`] at start and
/// on every reload, so nothing is kept in step by hand.
struct Settings {
    /// For the alert channels and rate limits.
    config: Config,
    escalation: EscalationConfig,
    baseline_interval: Duration,
    allow_exec: bool,
    exec_timeout: Duration,
    /// The host name alerts carry: the daemon's (`sampler.host_name`, or the system's).
    host_name: String,
}

impl Settings {
    fn new(config: &Config, host_name: &str) -> Settings {
        Settings {
            config: config.clone(),
            escalation: config.escalation.clone(),
            baseline_interval: config.sampler.interval.std(),
            allow_exec: config.rules.allow_exec,
            exec_timeout: config.rules.exec_timeout.std(),
            host_name: host_name.to_string(),
        }
    }
}

pub struct Actions {
    settings: Settings,
    waker: OutboxWaker,
    prune: Option<PruneQueue>,
    pre_trigger: PreTrigger,
    capture: Option<Capture>,
    /// The peaks of the open incidents seen so far, by incident id.
    peaks: HashMap<i64, Peaks>,
    health: Health,
    /// Kernel OOM kills at or before this time are history, not news: see
    /// [`Actions::note_start`].
    oom_news_after: TimestampMs,
}

impl Actions {
    /// `host_name`: the name the daemon resolved for this host, for the alerts.
    pub fn new(
        config: &Config,
        host_name: &str,
        waker: OutboxWaker,
        prune: Option<PruneQueue>,
    ) -> Actions {
        Actions {
            settings: Settings::new(config, host_name),
            waker,
            prune,
            pre_trigger: PreTrigger::default(),
            capture: None,
            peaks: HashMap::new(),
            health: Health::default(),
            oom_news_after: TimestampMs::MIN,
        }
    }

    /// At the daemon's start, before the first sample is written: kernel OOM kills from
    /// before the first start on this store (the kernel log replays them) and those already
    /// recorded by an earlier run are recorded, but not handed to the rules as new.
    pub fn note_start(&mut self, store: &mut Store, now: TimestampMs) {
        let first = match store.get_state("first_start_ms") {
            Ok(Some(v)) => v.parse().unwrap_or(now),
            Ok(None) => {
                if let Err(e) = store.set_state("first_start_ms", &now.to_string()) {
                    tracing::warn!("cannot record the first start: {e}");
                }
                now
            }
            Err(e) => {
                tracing::warn!("cannot read the first start: {e}; old OOM kills count as history");
                now
            }
        };
        let last = match store.last_oom_kill_ts() {
            Ok(last) => last,
            Err(e) => {
                tracing::warn!("cannot read the recorded OOM kills: {e}");
                None
            }
        };
        self.oom_news_after = last.map_or(first, |l| l.max(first));
    }

    /// Leaves in `sample` only the OOM kills that are news to the rules (see
    /// [`Actions::note_start`]); returns how many were left out.
    pub fn drop_old_oom_kills(&self, sample: &mut Sample) -> usize {
        let before = sample.oom_kills.len();
        let after = self.oom_news_after;
        sample.oom_kills.retain(|k| k.ts_ms > after);
        before - sample.oom_kills.len()
    }

    pub fn reconfigure(&mut self, config: &Config, host_name: &str) {
        self.settings = Settings::new(config, host_name);
    }

    /// The level and interval of the next sample.
    pub fn next(&self) -> Next {
        let baseline = self.settings.baseline_interval;
        match &self.capture {
            Some(c) => Next {
                level: Level::Detail,
                interval: c.window.sample_interval(baseline),
            },
            None => Next {
                level: Level::Baseline,
                interval: baseline,
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
        let esc = &self.settings.escalation;
        self.pre_trigger.push(
            Kept { sample_id, sample },
            esc.pre_trigger.as_millis() as i64,
            esc.pre_trigger_max_rows,
        );
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
            let recorded = store.record_rule_error(
                now,
                &rule,
                &e.file.display().to_string(),
                e.line,
                &e.message,
            );
            self.health.note(Step::RecordRuleError, recorded);
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
                Severity::Warning,
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
        if let Some(id) = sample_id {
            self.track_open_incidents(store, full, id);
        }
        self.maybe_end_capture(store, now);
        events.extend(self.health.take_events());
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
        // The policy `rules backtest` reports too: see [`plan`].
        let explicit_alerts = plan::rule_alerts_itself(f);
        let kind = plan::kind_of(f);
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
                        *severity,
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
                Action::Resolve { note } => match store.open_incident_of(&f.rule) {
                    Ok(Some(id)) => {
                        tracing::info!("incident {id} ({}) resolved", f.rule);
                        let noted = match note {
                            Some(n) => store.set_resolve_note(id, n),
                            None => Ok(()),
                        };
                        noted
                            .and_then(|_| store.close_incident(id, full.ts_ms))
                            .map(|_| {
                                if !explicit_alerts {
                                    self.raise(store, id, AlertKind::Clear, None, full.ts_ms);
                                }
                            })
                    }
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                },
                Action::Capture { duration, interval } => {
                    let found = store.open_incident_of(&f.rule);
                    let incident = self.health.note(Step::IncidentOfRule, found).flatten();
                    self.start_capture(store, &f.rule, incident, *duration, *interval, full.ts_ms)
                }
                Action::Email { subject, body, to } => self.raise_from_rule(
                    store,
                    f,
                    kind,
                    RuleNote {
                        subject: subject.clone(),
                        body: body.clone(),
                        channel: Channel::Email,
                        urgency: None,
                        recipients: to.clone(),
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
                        urgency: Some(*urgency),
                        recipients: Vec::new(),
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
                    self.exec(&f.rule, argv, timeout.unwrap_or(self.settings.exec_timeout));
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

/// The rule engine's limits from `[rules]`: the one place where the config meets the sealed
/// rules engine, shared by the daemon and the `rules` commands.
pub fn rules_config(c: &Config) -> crate::rules::RulesConfig {
    crate::rules::RulesConfig {
        instruction_budget: c.rules.instruction_budget,
        memory_limit_bytes: c.rules.memory_limit.0 as usize,
        wall_limit: c.rules.wall_limit.std(),
        rule_wall_limit: c.rules.rule_wall_limit.std(),
        max_consecutive_errors: c.rules.max_consecutive_errors,
        allow_exec: c.rules.allow_exec,
        settings: rule_settings(&c.rules),
        ..crate::rules::RulesConfig::default()
    }
}

/// Checks the `[rules.<name>]` settings against the rules in `[rules] dir` (unknown rule,
/// unknown key, wrong type): `Err` holds one line per problem, naming file, line and key.
/// Other rule problems are left to the lenient load (a broken rule file never stops
/// recording).
pub fn check_rule_settings(c: &Config) -> Result<(), String> {
    if c.rules.per_rule.is_empty() {
        return Ok(());
    }
    let cfg = rules_config(c);
    let sources = match crate::rules::load_dir_sources(&c.rules.dir, true) {
        Ok(s) => s,
        Err(_) => return Ok(()), // reported when the daemon loads its rules
    };
    let settings_file = cfg.settings.file.clone();
    let errors = match crate::rules::Engine::load_lenient(cfg, sources) {
        Ok((_, errors)) => errors,
        Err(_) => return Ok(()),
    };
    let lines: Vec<String> = errors
        .iter()
        .filter(|e| e.file == settings_file)
        .map(|e| e.to_string())
        .collect();
    match lines.is_empty() {
        true => Ok(()),
        false => Err(lines.join("\n")),
    }
}

/// `[rules.<name>]` tables as the engine takes them: values as JSON, with file and lines.
fn rule_settings(r: &crate::config::Rules) -> crate::rules::RuleSettings {
    use crate::rules::{RuleOverride, Setting};
    let origin = &r.per_rule_origin;
    let rules = r
        .per_rule
        .iter()
        .map(|(name, table)| {
            let (header, lines) = origin.lines.get(name).cloned().unwrap_or_default();
            let keys = table
                .as_table()
                .map(|t| {
                    t.iter()
                        .map(|(k, v)| {
                            let setting = Setting {
                                value: serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
                                line: lines.get(k).copied().unwrap_or(header) as u32,
                                cli: false,
                            };
                            (k.clone(), setting)
                        })
                        .collect()
                })
                .unwrap_or_default();
            let ov = RuleOverride {
                line: header as u32,
                keys,
            };
            (name.clone(), ov)
        })
        .collect();
    crate::rules::RuleSettings {
        file: origin.file.clone(),
        rules,
        ignore_unknown_rules: false,
    }
}
