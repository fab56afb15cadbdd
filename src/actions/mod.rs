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

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::alert::compose::{Culprit as AlertCulprit, IncidentAlert};
use crate::alert::outbox::{self as alert_outbox, OutboxWaker};
use crate::config::{Config, Escalation as EscalationConfig};
use crate::model::{Level, Resource, Sample, Severity, TimestampMs, Urgency};
use crate::rules::{Action, Evaluation, Firing, FiringKind};
use crate::store::incident::{culprits_of, NewIncident};
use crate::store::outbox::{AlertKind, Channel};
use crate::store::retention::PruneQueue;
use crate::store::retention::{LevelFilter, PrunePolicy};
use crate::store::{RecorderEvent, Store};

/// A rule's own words for an alert: what `email{}` or `notify{}` said.
struct RuleNote {
    subject: String,
    body: String,
    channel: Channel,
    /// `None`: from the severity.
    urgency: Option<Urgency>,
}

/// A full sample kept in memory, with the id of its (baseline) row in the store.
struct Kept {
    sample_id: i64,
    sample: Arc<Sample>,
}

#[derive(Debug, Clone)]
struct Capture {
    id: i64,
    rule: String,
    incident_id: Option<i64>,
    started_ms: TimestampMs,
    /// End by duration (extended by later capture actions).
    until_ms: TimestampMs,
    interval: Duration,
}

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
                        urgency: Some(*urgency),
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

    /// Hands a rule's pruning policy to the retention thread (never run on the sampling path).
    #[allow(clippy::too_many_arguments)]
    fn prune(
        &self,
        rule: &str,
        policy: &str,
        older_than: Option<Duration>,
        load_below: Option<f64>,
        keep_incidents: bool,
        dry_run: bool,
        events: &mut Vec<RecorderEvent>,
    ) {
        let Some(queue) = &self.prune else {
            tracing::warn!("rule {rule}: prune {policy}: no retention thread here");
            return;
        };
        if policy == "retention" {
            queue.run_retention();
            return;
        }
        let Some(p) = prune_policy(policy, older_than, load_below, keep_incidents) else {
            // The engine checks this; a policy without an age would prune everything.
            tracing::error!("rule {rule}: prune {policy}: older_than is required");
            return;
        };
        let older_than = p.older_than;
        events.push(RecorderEvent::now(
            "notice",
            format!(
                "rule {rule} runs prune policy {policy} (older than {}s{}){}",
                older_than.as_secs(),
                load_below
                    .map(|l| format!(", load below {l}"))
                    .unwrap_or_default(),
                if dry_run { " as a dry run" } else { "" }
            ),
        ));
        if dry_run {
            queue.dry_run(p);
        } else {
            queue.submit(p);
        }
    }

    /// Queues the standard message about incident `id` (host, rule, severity, values,
    /// culprits, `hogtrap show ID`) on every enabled channel, or on `only`.
    fn raise(
        &self,
        store: &mut Store,
        id: i64,
        kind: AlertKind,
        note: Option<RuleNote>,
        now: TimestampMs,
    ) {
        let conn = store.connection();
        let Ok(Some(i)) = crate::store::incident::incident(conn, id) else {
            return;
        };
        let culprits = crate::store::incident::culprits(conn, id).unwrap_or_default();
        let values = match &i.peak {
            serde_json::Value::Object(o) => o.clone().into_iter().collect(),
            _ => BTreeMap::new(),
        };
        let (title, body, only, urgency) = match note {
            Some(n) => (n.subject, Some(n.body), Some(vec![n.channel]), n.urgency),
            None => (i.title.clone(), None, None, None),
        };
        let alert = IncidentAlert {
            host: crate::collect::system_host_name_cached(),
            incident_id: Some(id),
            rule: i.rule.clone(),
            severity: i.severity,
            title,
            opened_ms: i.opened_ms,
            closed_ms: i.closed_ms,
            values,
            culprits: culprits
                .into_iter()
                .map(|c| AlertCulprit {
                    resource: c.resource,
                    pid: c.pid as u32,
                    name: c.name,
                    user: c.user,
                    cmdline: c.cmdline,
                    value: c.value,
                })
                .collect(),
            note: body,
        };
        let mut new = alert.new_alert(kind, now);
        if let Some(u) = urgency {
            new.urgency = u;
        }
        if let Err(e) = alert_outbox::raise(
            store,
            &alert_outbox::RaiseConfig::from_config(&self.config),
            &self.waker,
            &new,
            only.as_deref(),
        ) {
            tracing::error!("alert for incident {id} not queued: {e}");
        }
    }

    /// A rule's own email or notification: about its open incident if it has one.
    fn raise_from_rule(
        &self,
        store: &mut Store,
        f: &Firing,
        kind: AlertKind,
        note: RuleNote,
        full: &Arc<Sample>,
    ) -> crate::store::Result<()> {
        // At clear the incident was just closed: the newest of the rule's incidents.
        let incident = match store.open_incident_of(&f.rule)? {
            Some(id) => Some(id),
            None if f.kind == FiringKind::Clear => store.last_incident_of(&f.rule)?,
            None => None,
        };
        match incident {
            Some(id) => self.raise(store, id, kind, Some(note), full.ts_ms),
            None => {
                let message = crate::alert::AlertMessage::new(&note.subject, &note.body);
                let mut new =
                    crate::alert::compose::new_alert(&f.rule, None, kind, &message, full.ts_ms);
                if let Some(u) = note.urgency {
                    new.urgency = u;
                }
                alert_outbox::raise(
                    store,
                    &alert_outbox::RaiseConfig::from_config(&self.config),
                    &self.waker,
                    &new,
                    Some(&[note.channel]),
                )?;
            }
        }
        Ok(())
    }

    /// Opens the rule's incident (with culprits and the pre-trigger samples), or updates the
    /// open one. Returns its id.
    #[allow(clippy::too_many_arguments)]
    fn open_or_update(
        &mut self,
        store: &mut Store,
        rule: &str,
        file: &str,
        severity: Severity,
        title: &str,
        summary: &str,
        full: &Arc<Sample>,
        sample_id: Option<i64>,
        values: &serde_json::Value,
    ) -> crate::store::Result<(i64, bool)> {
        if let Some(id) = store.open_incident_of(rule)? {
            update_peaks(store, id, full, Some(severity))?;
            return Ok((id, false));
        }
        let mut peak = host_values(full);
        merge_numbers(&mut peak, values);
        let peak_json = serde_json::Value::Object(peak.into_iter().collect()).to_string();
        let culprits = culprits_of(full, 3);
        let id = store.open_incident(
            &NewIncident {
                rule,
                rule_file: file,
                severity,
                title,
                summary,
                opened_ms: full.ts_ms,
                peak_json: &peak_json,
            },
            &culprits,
        )?;
        let mut linked: Vec<i64> = self.ring.iter().map(|k| k.sample_id).collect();
        linked.extend(sample_id);
        store.link_samples(id, &linked)?;
        let top = culprits
            .iter()
            .find(|c| c.resource == Resource::Cpu)
            .map(|c| format!("; top CPU: {} (pid {}) at {:.0}%", c.name, c.pid, c.value))
            .unwrap_or_default();
        tracing::warn!("incident {id} opened by rule {rule}: {title}{top}; see: hogtrap show {id}");
        Ok((id, true))
    }

    fn start_capture(
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

    fn maybe_end_capture(&mut self, store: &mut Store, now: TimestampMs) {
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

    fn exec(&self, rule: &str, argv: &[String], timeout: Duration) {
        if !self.allow_exec {
            tracing::warn!("rule {rule}: exec refused: [rules] allow_exec is false");
            return;
        }
        let Some((program, args)) = argv.split_first() else {
            return;
        };
        let (rule, program, args) = (rule.to_string(), program.clone(), args.to_vec());
        // Off the sampling thread; never through a shell.
        let spawned = std::thread::Builder::new()
            .name("rule-exec".into())
            .stack_size(256 << 10)
            .spawn(move || {
                let mut child = match std::process::Command::new(&program)
                    .args(&args)
                    .stdin(std::process::Stdio::null())
                    .spawn()
                {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!("rule {rule}: exec {program}: {e}");
                        return;
                    }
                };
                let start = std::time::Instant::now();
                loop {
                    match child.try_wait() {
                        Ok(Some(st)) => {
                            tracing::info!("rule {rule}: exec {program}: {st}");
                            return;
                        }
                        Ok(None) if start.elapsed() > timeout => {
                            let _ = child.kill();
                            let _ = child.wait();
                            tracing::warn!(
                                "rule {rule}: exec {program}: killed after {}s",
                                timeout.as_secs()
                            );
                            return;
                        }
                        Ok(None) => std::thread::sleep(Duration::from_millis(100)),
                        Err(e) => {
                            tracing::error!("rule {rule}: exec {program}: {e}");
                            return;
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("exec: cannot start a thread: {e}");
        }
    }
}

/// The retention policy a rule's `prune { ... }` stands for (structured options, never SQL).
/// `None` without `older_than`: a policy without an age would prune everything.
pub fn prune_policy(
    policy: &str,
    older_than: Option<Duration>,
    load_below: Option<f64>,
    keep_incidents: bool,
) -> Option<PrunePolicy> {
    Some(PrunePolicy {
        name: policy.to_string(),
        older_than: older_than?,
        level: LevelFilter::Any,
        load_below,
        keep_incidents,
    })
}

fn store_incident_closed(store: &Store, id: i64) -> Option<TimestampMs> {
    store.incident_closed_ms(id).ok().flatten()
}

/// The host values an incident tracks the peaks of.
fn host_values(s: &Sample) -> BTreeMap<String, serde_json::Value> {
    let h = &s.host;
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: f64| {
        if let Some(n) = serde_json::Number::from_f64((v * 100.0).round() / 100.0) {
            m.insert(k.to_string(), serde_json::Value::Number(n));
        }
    };
    put("load1", h.load1);
    put("load1_per_cpu", h.load1 / s.cpu_count.max(1) as f64);
    put("cpu_busy_pct", 100.0 - h.cpu_idle_pct);
    put("cpu_iowait_pct", h.cpu_iowait_pct);
    put("mem_used_bytes", h.mem_used_bytes as f64);
    put("swap_used_bytes", h.swap_used_bytes as f64);
    if let Some(p) = h.psi_cpu {
        put("psi_cpu_some_avg10", p.some_avg10);
    }
    if let Some(p) = h.psi_memory {
        put("psi_mem_some_avg10", p.some_avg10);
    }
    if let Some(p) = h.psi_io {
        put("psi_io_some_avg10", p.some_avg10);
    }
    m
}

/// Adds the numeric fields of a rule's values (and of nested tables, dotted) to `m`.
fn merge_numbers(m: &mut BTreeMap<String, serde_json::Value>, v: &serde_json::Value) {
    if let serde_json::Value::Object(o) = v {
        for (k, val) in o {
            if val.is_number() {
                m.insert(k.clone(), val.clone());
            }
        }
    }
}

/// Keeps the highest value of each tracked number in the incident's `peak_json`.
fn update_peaks(
    store: &mut Store,
    id: i64,
    s: &Sample,
    severity: Option<Severity>,
) -> crate::store::Result<()> {
    let old: serde_json::Value = serde_json::from_str(&store.peak_json(id)?).unwrap_or_default();
    let mut peak: BTreeMap<String, serde_json::Value> = match old {
        serde_json::Value::Object(o) => o.into_iter().collect(),
        _ => BTreeMap::new(),
    };
    for (k, v) in host_values(s) {
        let higher = match (peak.get(&k).and_then(|p| p.as_f64()), v.as_f64()) {
            (Some(p), Some(n)) => n > p,
            _ => true,
        };
        if higher {
            peak.insert(k, v);
        }
    }
    let json = serde_json::Value::Object(peak.into_iter().collect()).to_string();
    store.update_incident(id, s.ts_ms, &json, severity)
}
