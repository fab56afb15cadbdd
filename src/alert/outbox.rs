//! Delivery of the outbox: the task that sends queued alerts, retries them with backoff,
//! sends digests of what rate limits held back, and reminders while incidents stay open.
//!
//! Guarantees:
//! - Raising an alert ([`raise`]) is a few short inserts on the caller's connection and a
//!   wake-up; it never waits for a server. Sending happens on the delivery task, which has
//!   its own connection, so a slow or dead mail server or desktop never delays sampling.
//! - Each attempt is bounded by the channel's timeout (`[email] send_timeout`,
//!   `[desktop] timeout`); email and desktop are delivered side by side, so one wedged
//!   channel does not hold up the other.
//! - Exactly once on the normal path: an alert is claimed before its attempt and marked sent
//!   in the same transaction that records the attempt (see `store::outbox`). A crash or kill
//!   between the server's "accepted" and that commit makes the alert go out again at the
//!   next start (recorded as an `interrupted` attempt): at-least-once there, never lost.
//! - A failed attempt is retried after `retry_initial`, doubled each time up to `retry_max`
//!   (errors that retrying cannot fix wait `retry_max`, so a fixed config still delivers);
//!   an alert still undelivered `give_up_after` after it was raised is given up (`failed`).
//!   When a channel's server is down or hanging, one alert pays the attempt (and its
//!   timeout); the rest of that channel's batch waits for the same retry, unattempted.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use super::compose::{digest_message, new_alert, reminder_message};
use super::desktop::{send_desktop_with, Relay};
use super::email::send_email;
use super::message::AlertMessage;
use super::SendError;
use crate::config::{Alerts, Config};
use crate::config::{DesktopConfig, EmailConfig};
use crate::model::{AlertKind, TimestampMs};
use crate::store::outbox::{AttemptOutcome, Channel, DueAlert, Enqueued, NewAlert, Outbox};
use crate::store::{Store, StoreError};

/// The delivery task checks the store at least this often, so alerts queued by another
/// process (or a wake-up that raced a restart) are never stranded.
pub const POLL: Duration = Duration::from_secs(10);
/// How many due alerts one pass takes on.
const BATCH: usize = 100;

/// Everything delivery needs from the config.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryConfig {
    pub email: EmailConfig,
    pub desktop: DesktopConfig,
    pub alerts: Alerts,
    /// Named in digests, and Alertmanager's `instance` label.
    pub host: String,
    /// `[rules.<name>] rate_limit`: rules with their own window.
    pub rule_rate_limits: std::collections::BTreeMap<String, Duration>,
    /// `[export.alertmanager]`.
    pub alertmanager: crate::config::export::Alertmanager,
}

impl DeliveryConfig {
    pub fn from_config(config: &Config, host: &str) -> DeliveryConfig {
        DeliveryConfig {
            email: config.email.clone(),
            desktop: config.desktop.clone(),
            alerts: config.alerts.clone(),
            host: host.to_owned(),
            rule_rate_limits: config
                .rules
                .per_rule
                .keys()
                .filter_map(|r| Some((r.clone(), config.rules.rate_limit_of(r)?.std())))
                .collect(),
            alertmanager: config.export.alertmanager.clone(),
        }
    }

    /// The rate-limit window of `rule`: its own, or `[alerts] rate_limit`.
    fn rate_limit_of(&self, rule: &str) -> Duration {
        self.rule_rate_limits
            .get(rule)
            .copied()
            .unwrap_or_else(|| self.alerts.rate_limit.std())
    }

    fn enabled(&self, channel: Channel) -> bool {
        match channel {
            Channel::Email => self.email.enabled,
            Channel::Desktop => self.desktop.enabled,
            Channel::Alertmanager => self.alertmanager.enabled(),
        }
    }
}

/// What queueing an alert needs from the config: which channels are enabled, and the
/// rate limit. Small and `Copy`, so the caller need not hand over the whole config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaiseConfig {
    /// `[email] enabled`.
    pub email: bool,
    /// `[desktop] enabled`.
    pub desktop: bool,
    /// `[export.alertmanager] urls` set: incidents' fire and clear also go there.
    pub alertmanager: bool,
    /// `[alerts] rate_limit`: at most one message per rule and channel in this window;
    /// zero means no limit.
    pub rate_limit: Duration,
}

impl RaiseConfig {
    pub fn from_config(config: &Config) -> RaiseConfig {
        RaiseConfig {
            email: config.email.enabled,
            desktop: config.desktop.enabled,
            alertmanager: config.export.alertmanager.enabled(),
            rate_limit: config.alerts.rate_limit.std(),
        }
    }

    /// For an alert of `rule`: its own rate limit (`[rules.<name>] rate_limit`) if it has one.
    pub fn for_rule(config: &Config, rule: &str) -> RaiseConfig {
        RaiseConfig {
            rate_limit: config
                .rules
                .rate_limit_of(rule)
                .map_or_else(|| config.alerts.rate_limit.std(), |d| d.std()),
            ..RaiseConfig::from_config(config)
        }
    }

    /// The channels an alert goes to: every enabled one.
    pub fn channels(&self) -> Vec<Channel> {
        let mut out = Vec::new();
        if self.email {
            out.push(Channel::Email);
        }
        if self.desktop {
            out.push(Channel::Desktop);
        }
        out
    }
}

/// The channels an alert goes to: every enabled one.
pub fn enabled_channels(config: &Config) -> Vec<Channel> {
    RaiseConfig::from_config(config).channels()
}

/// Wakes the delivery task; cheap, callable from any thread (the sampler's included).
#[derive(Debug, Clone, Default)]
pub struct OutboxWaker(Arc<Notify>);

impl OutboxWaker {
    pub fn new() -> OutboxWaker {
        OutboxWaker::default()
    }

    /// Asks the task for a pass now. A wake-up while it is busy is kept, not lost.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Queues `alert` on every enabled channel (or, with `only`, on those of the listed
/// channels that are enabled), applying `[alerts] rate_limit`, and wakes the delivery
/// task. Returns the rows written: none when no channel is enabled.
pub fn raise(
    store: &mut Store,
    config: &RaiseConfig,
    waker: &OutboxWaker,
    alert: &NewAlert,
    only: Option<&[Channel]>,
) -> Result<Vec<Enqueued>, StoreError> {
    let mut channels: Vec<Channel> = config
        .channels()
        .into_iter()
        .filter(|c| only.is_none_or(|list| list.contains(c)))
        .collect();
    // Alertmanager is told about incidents, their opening and their close, whichever
    // channel a rule's own message names (a second row for one incident posts the same
    // state again: harmless).
    if config.alertmanager
        && alert.incident_id.is_some()
        && matches!(alert.kind, AlertKind::Fire | AlertKind::Clear)
    {
        channels.push(Channel::Alertmanager);
    }
    if channels.is_empty() {
        return Ok(Vec::new());
    }
    let rows = store.enqueue_alert(alert, &channels, config.rate_limit.as_millis() as i64)?;
    // Held rows too: the task schedules their digest for the end of the window.
    waker.wake();
    Ok(rows)
}

/// The wait before the attempt after `attempts` failed ones.
pub fn backoff_ms(alerts: &Alerts, attempts: i64, retryable: bool) -> i64 {
    let max = alerts.retry_max.as_millis() as i64;
    if !retryable {
        return max;
    }
    let initial = alerts.retry_initial.as_millis() as i64;
    let doublings = (attempts - 1).clamp(0, 32) as u32;
    initial.saturating_mul(1i64 << doublings).min(max)
}

/// The Message-ID of an outbox alert: the same on every attempt, so a resend after a crash
/// is recognisably the same message.
fn message_id(alert: &DueAlert, host: &str) -> String {
    let domain: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let domain = if domain.is_empty() {
        "localhost".to_owned()
    } else {
        domain
    };
    format!(
        "<hogtrap.alert.{}.{}@{domain}>",
        alert.id, alert.content.created_ms
    )
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub sent: usize,
    pub retrying: usize,
    pub failed: usize,
    /// Not attempted: the channel's server failed on an earlier alert of the pass, so they
    /// wait for its retry.
    pub postponed: usize,
    pub digests: usize,
    pub reminders: usize,
    /// When the next pass is due (a retry, a digest or a reminder); `None`: nothing
    /// scheduled.
    pub next_wake_ms: Option<TimestampMs>,
}

/// The delivery side: its own store connection, the channel configs, and the relay for
/// desktop notifications. Drive it with [`Delivery::pass`] (tests, with any clock) or
/// [`spawn`] (the daemon).
pub struct Delivery {
    outbox: Arc<Mutex<Outbox>>,
    config: DeliveryConfig,
    relay: Relay,
    stopping: Arc<AtomicBool>,
    /// When Alertmanager is next re-told about open and lately closed incidents; 0: at the
    /// next pass (so a restart re-tells at once).
    am_refresh_ms: AtomicI64,
    /// Failed re-posts in a row (the first is logged).
    am_refresh_failures: AtomicI64,
}

impl Delivery {
    pub fn new(outbox: Outbox, config: DeliveryConfig, relay: Relay) -> Delivery {
        Delivery {
            outbox: Arc::new(Mutex::new(outbox)),
            config,
            relay,
            stopping: Arc::new(AtomicBool::new(false)),
            am_refresh_ms: AtomicI64::new(0),
            am_refresh_failures: AtomicI64::new(0),
        }
    }

    pub fn config(&self) -> &DeliveryConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: DeliveryConfig) {
        self.config = config;
    }

    /// Runs `f` on the outbox; the lock is never held across an await.
    fn with<T>(&self, f: impl FnOnce(&Outbox) -> Result<T, StoreError>) -> Result<T, StoreError> {
        // A panic while holding the lock leaves a usable connection: take it anyway.
        let outbox = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        f(&outbox)
    }

    /// Makes attempts a previous process left in flight pending again (see
    /// `Outbox::recover`). Call once before the first pass.
    pub fn recover(&self, now_ms: TimestampMs) -> Result<usize, StoreError> {
        self.with(|o| o.recover(now_ms))
    }

    /// One pass at time `now_ms`: queue the digests and reminders that are due, then
    /// attempt every alert that is due, email and desktop side by side.
    pub async fn pass(&self, now_ms: TimestampMs) -> Result<PassReport, StoreError> {
        let started = Instant::now();
        let mut report = PassReport::default();
        let mut next: Option<TimestampMs> = None;
        let mut schedule = |t: TimestampMs| next = Some(next.map_or(t, |n: i64| n.min(t)));

        // Digests of what the rate limit held back, once the window is over.
        for group in self.with(|o| o.held_groups())? {
            let rate = self.config.rate_limit_of(&group.rule);
            let rate_ms = rate.as_millis() as i64;
            let due_at = match group.window_start_ms {
                Some(start) if rate_ms > 0 => start + rate_ms,
                _ => now_ms,
            };
            if due_at > now_ms {
                schedule(due_at);
                continue;
            }
            let held = self.with(|o| o.held_alerts(&group.rule, group.channel))?;
            if held.is_empty() {
                continue;
            }
            let message = digest_message(
                &self.config.host,
                &group.rule,
                &crate::format::human_ms(rate_ms),
                &held,
            );
            let digest = new_alert(&group.rule, None, AlertKind::Digest, &message, now_ms);
            let ids: Vec<i64> = held.iter().map(|h| h.id).collect();
            self.with(|o| o.enqueue_digest(&digest, group.channel, &ids))?;
            report.digests += 1;
        }

        // Reminders while an incident stays open.
        let every_ms = self.config.alerts.reminder_every.as_millis() as i64;
        if every_ms > 0 {
            for open in self.with(|o| o.open_incident_alerts())? {
                // Alertmanager is re-told by `refresh_alertmanager`, not reminded.
                if !self.config.enabled(open.channel) || open.channel == Channel::Alertmanager {
                    continue;
                }
                let due_at = open.last_alert_ms + every_ms;
                if due_at > now_ms {
                    schedule(due_at);
                    continue;
                }
                let message = reminder_message(&open, now_ms);
                let reminder = new_alert(
                    &open.rule,
                    Some(open.incident_id),
                    AlertKind::Reminder,
                    &message,
                    now_ms,
                );
                self.with(|o| {
                    o.enqueue(
                        &reminder,
                        &[open.channel],
                        self.config.rate_limit_of(&open.rule).as_millis() as i64,
                    )
                })?;
                report.reminders += 1;
                schedule(now_ms + every_ms);
            }
        }

        // Attempts.
        let due = self.with(|o| o.due(now_ms, BATCH))?;
        let (email, rest): (Vec<DueAlert>, Vec<DueAlert>) =
            due.into_iter().partition(|a| a.channel == Channel::Email);
        let (desktop, alertmanager): (Vec<DueAlert>, Vec<DueAlert>) = rest
            .into_iter()
            .partition(|a| a.channel == Channel::Desktop);
        let (a, b, c) = tokio::join!(
            self.attempt_all(&email, now_ms, started),
            self.attempt_all(&desktop, now_ms, started),
            self.attempt_all(&alertmanager, now_ms, started)
        );
        if let Some(t) = self.refresh_alertmanager(now_ms).await? {
            schedule(t);
        }
        for part in [a?, b?, c?] {
            report.sent += part.sent;
            report.retrying += part.retrying;
            report.failed += part.failed;
            report.postponed += part.postponed;
        }
        if let Some(t) = self.with(|o| o.next_attempt_ms())? {
            schedule(t);
        }
        report.next_wake_ms = next;
        Ok(report)
    }

    /// One outbox row on the Alertmanager channel: its incident as it is now.
    async fn post_incident(&self, alert: &DueAlert, now_ms: TimestampMs) -> Result<(), SendError> {
        let gone = |problem: String| SendError::Alertmanager {
            url: self.config.alertmanager.urls.join(", "),
            problem,
            retryable: false,
        };
        let id = alert
            .content
            .incident_id
            .ok_or_else(|| gone("the alert names no incident".into()))?;
        let incident = self
            .with(|o| o.incident_export(id))
            .map_err(|e| SendError::Alertmanager {
                url: String::new(),
                problem: format!("cannot read incident {id}: {e}"),
                retryable: true,
            })?
            .ok_or_else(|| gone(format!("incident {id} is no longer in the store")))?;
        let body = super::alertmanager::payload(
            &[incident],
            &self.config.host,
            &self.config.alertmanager,
            now_ms,
        );
        super::alertmanager::post_all(&self.config.alertmanager, &body)
            .await
            .map(|_| ())
    }

    /// Every `resend_every`, re-posts the incidents Alertmanager was told about that are open
    /// (`endsAt` moved ahead) or closed within `resolved_for` (resolved again, in case a peer
    /// missed it). A failure is logged and retried at the next one; the outbox rows hold
    /// what must not be lost. Returns when it is next due.
    async fn refresh_alertmanager(
        &self,
        now_ms: TimestampMs,
    ) -> Result<Option<TimestampMs>, StoreError> {
        let am = &self.config.alertmanager;
        if !am.enabled() {
            return Ok(None);
        }
        let every = am.resend_every.as_millis() as i64;
        let due = self.am_refresh_ms.load(Ordering::Relaxed);
        if due > now_ms {
            return Ok(Some(due));
        }
        let next = now_ms + every;
        self.am_refresh_ms.store(next, Ordering::Relaxed);
        let incidents =
            self.with(|o| o.alertmanager_current(now_ms - am.resolved_for.as_millis() as i64))?;
        if incidents.is_empty() {
            return Ok(Some(next));
        }
        let body = super::alertmanager::payload(&incidents, &self.config.host, am, now_ms);
        match super::alertmanager::post_all(am, &body).await {
            Ok(_) => {
                if self.am_refresh_failures.swap(0, Ordering::Relaxed) > 0 {
                    tracing::info!("alertmanager: re-posting works again");
                }
            }
            Err(e) => {
                if self.am_refresh_failures.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!(
                        "alertmanager: re-posting {} incident(s) failed: {e}; trying again every {}",
                        incidents.len(),
                        am.resend_every
                    );
                }
            }
        }
        Ok(Some(next))
    }

    async fn attempt_all(
        &self,
        alerts: &[DueAlert],
        now_ms: TimestampMs,
        started: Instant,
    ) -> Result<PassReport, StoreError> {
        let mut report = PassReport::default();
        for (i, alert) in alerts.iter().enumerate() {
            if self.stopping.load(Ordering::Relaxed) {
                break;
            }
            // Times as the pass's clock sees them, moved on by the real time spent.
            let clock = || now_ms + started.elapsed().as_millis() as i64;
            if !self.config.enabled(alert.channel) {
                let outcome = AttemptOutcome::GiveUp {
                    error: format!(
                        "[{}] enabled = false: the channel was switched off after this alert \
                         was raised; not sent",
                        alert.channel.as_str()
                    ),
                    result: "cancelled",
                };
                if self.with(|o| o.claim(alert.id))? {
                    self.with(|o| o.finish(alert.id, clock(), &outcome))?;
                    report.failed += 1;
                }
                continue;
            }
            if !self.with(|o| o.claim(alert.id))? {
                continue;
            }
            let message = AlertMessage {
                subject: alert.content.subject.clone(),
                text: alert.content.body_text.clone(),
                html: alert.content.body_html.clone(),
                urgency: Some(alert.content.urgency),
                message_id: Some(message_id(alert, &self.config.host)),
            };
            let result = match alert.channel {
                Channel::Email if !alert.content.recipients.is_empty() => {
                    // A rule's `email { to = ... }`: exactly those recipients.
                    let email = EmailConfig {
                        to: alert.content.recipients.clone(),
                        ..self.config.email.clone()
                    };
                    send_email(&email, &message).await
                }
                Channel::Email => send_email(&self.config.email, &message).await,
                Channel::Desktop => {
                    send_desktop_with(&self.relay, &self.config.desktop, &message).await
                }
                Channel::Alertmanager => self.post_incident(alert, clock()).await,
            };
            let ts = clock();
            let failure = result.as_ref().err().cloned();
            let outcome = match result {
                Ok(()) => {
                    report.sent += 1;
                    tracing::info!(
                        "alert {} ({}) delivered by {}",
                        alert.id,
                        alert.content.subject,
                        alert.channel.as_str()
                    );
                    AttemptOutcome::Sent
                }
                Err(e) => {
                    let age = ts - alert.content.created_ms;
                    let give_up_ms = self.config.alerts.give_up_after.as_millis() as i64;
                    if age >= give_up_ms {
                        report.failed += 1;
                        tracing::error!("alert {}: {e}; giving up", alert.id);
                        AttemptOutcome::GiveUp {
                            error: format!(
                                "{e}; gave up {} after the alert was raised (give_up_after = {})",
                                crate::format::human_ms(age),
                                self.config.alerts.give_up_after
                            ),
                            result: "failed",
                        }
                    } else {
                        report.retrying += 1;
                        let wait =
                            backoff_ms(&self.config.alerts, alert.attempts + 1, e.is_retryable());
                        tracing::warn!(
                            "alert {}: {e}; next attempt in {}",
                            alert.id,
                            crate::format::human_ms(wait)
                        );
                        AttemptOutcome::Retry {
                            error: e.to_string(),
                            next_attempt_ms: ts + wait,
                        }
                    }
                }
            };
            self.with(|o| o.finish(alert.id, ts, &outcome))?;
            // The server is down or hanging: the rest of this channel's batch would only
            // fail the same way, one timeout each. They wait for the same retry instead.
            if let (
                Some(e),
                AttemptOutcome::Retry {
                    next_attempt_ms, ..
                },
            ) = (failure.filter(|e| e.is_retryable()), &outcome)
            {
                let rest: Vec<i64> = alerts[i + 1..].iter().map(|a| a.id).collect();
                if !rest.is_empty() {
                    let n = self.with(|o| o.postpone(&rest, *next_attempt_ms))?;
                    report.postponed += n;
                    tracing::info!(
                        "{n} more {} alert(s) wait for the same retry ({e})",
                        alert.channel.as_str()
                    );
                }
                break;
            }
        }
        Ok(report)
    }
}

/// The running delivery task.
pub struct Worker {
    waker: OutboxWaker,
    config: watch::Sender<DeliveryConfig>,
    stop: watch::Sender<bool>,
    stopping: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<()>,
}

/// Starts the delivery task on the current tokio runtime: it recovers interrupted
/// attempts, then makes a pass whenever woken, when the next retry, digest or reminder is
/// due, and at least every [`POLL`].
pub fn spawn(delivery: Delivery, waker: OutboxWaker) -> Worker {
    let (config_tx, config_rx) = watch::channel(delivery.config.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopping = Arc::clone(&delivery.stopping);
    let handle = tokio::spawn(run(delivery, waker.clone(), config_rx, stop_rx));
    Worker {
        waker,
        config: config_tx,
        stop: stop_tx,
        stopping,
        handle,
    }
}

fn now_ms() -> TimestampMs {
    jiff::Timestamp::now().as_millisecond()
}

async fn run(
    mut delivery: Delivery,
    waker: OutboxWaker,
    mut config: watch::Receiver<DeliveryConfig>,
    mut stop: watch::Receiver<bool>,
) {
    match delivery.recover(now_ms()) {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            "{n} alert attempt(s) were cut short when hogtrap last stopped; sending again \
             (a message may arrive twice)"
        ),
        Err(e) => tracing::error!("alert outbox: {e}"),
    }
    loop {
        let now = now_ms();
        let wait = match delivery.pass(now).await {
            Ok(report) => report
                .next_wake_ms
                .map(|t| Duration::from_millis((t - now_ms()).max(0) as u64))
                .unwrap_or(POLL)
                .min(POLL),
            Err(e) => {
                tracing::error!("alert outbox: {e}; trying again in {POLL:?}");
                POLL
            }
        };
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = waker.0.notified() => {}
            changed = config.changed() => {
                if changed.is_ok() {
                    delivery.set_config(config.borrow_and_update().clone());
                }
            }
            _ = stop.changed() => break,
        }
    }
}

impl Worker {
    pub fn waker(&self) -> OutboxWaker {
        self.waker.clone()
    }

    /// New channel settings (SIGHUP); taken at the next pass.
    pub fn reconfigure(&self, config: DeliveryConfig) {
        let _ = self.config.send(config);
    }

    /// Stops the task: no new attempt starts; the one in flight may finish within `grace`,
    /// else it is cut (and recovered as `interrupted` at the next start).
    pub async fn stop(self, grace: Duration) {
        self.stopping.store(true, Ordering::Relaxed);
        let _ = self.stop.send(true);
        let mut handle = self.handle;
        if tokio::time::timeout(grace, &mut handle).await.is_err() {
            tracing::warn!(
                "an alert delivery was still in flight after {grace:?}; it is sent again at \
                 the next start"
            );
            handle.abort();
            let _ = handle.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_rate_limit_replaces_the_alerts_one_for_that_rule_only() {
        let text = "[alerts]\nrate_limit = \"10m\"\n\n[rules.disk_full]\nrate_limit = \"1h\"\n";
        let c = crate::config::Config::parse(text, std::path::Path::new("t.toml")).unwrap();
        let full = RaiseConfig::for_rule(&c, "disk_full");
        let other = RaiseConfig::for_rule(&c, "cpu_hog");
        assert_eq!(full.rate_limit, std::time::Duration::from_secs(3600));
        assert_eq!(other.rate_limit, std::time::Duration::from_secs(600));
    }
    use crate::config::Duration as ConfigDuration;
    use crate::model::Urgency;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let a = Alerts {
            retry_initial: ConfigDuration::from_secs(30),
            retry_max: ConfigDuration::from_secs(300),
            ..Alerts::default()
        };
        let waits: Vec<i64> = (1..=6).map(|n| backoff_ms(&a, n, true) / 1000).collect();
        assert_eq!(waits, [30, 60, 120, 240, 300, 300]);
        assert_eq!(
            backoff_ms(&a, 1, false),
            300_000,
            "permanent errors wait the cap"
        );
        assert_eq!(backoff_ms(&a, 1_000, true), 300_000, "no overflow");
    }

    #[test]
    fn raise_goes_to_enabled_channels_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut store =
            Store::open(&dir.path().join("t.db"), std::time::Duration::from_secs(1)).unwrap();
        let mut config = Config::default();
        let waker = OutboxWaker::new();
        let alert = NewAlert {
            created_ms: 1,
            incident_id: None,
            rule: "r".into(),
            kind: AlertKind::Fire,
            subject: "s".into(),
            body_text: "b".into(),
            body_html: None,
            urgency: Urgency::Normal,
            recipients: Vec::new(),
        };
        assert!(raise(
            &mut store,
            &RaiseConfig::from_config(&config),
            &waker,
            &alert,
            None
        )
        .unwrap()
        .is_empty());
        config.desktop.enabled = true;
        config.email.enabled = true;
        let rows = raise(
            &mut store,
            &RaiseConfig::from_config(&config),
            &waker,
            &alert,
            Some(&[Channel::Email]),
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].channel, Channel::Email);
    }
}
