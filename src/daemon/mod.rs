//! The daemon: wires collect → store (→ rules → actions) on a drift-free schedule. It holds no
//! logic of its own beyond scheduling, signals and keeping the record honest about itself.
//!
//! Guarantees:
//! - Two threads share the work: the sampling thread (`sampler`) keeps the schedule, takes
//!   each sample with its timestamp and queues it in memory (`handoff`, bounded); the recorder
//!   thread stores it, runs the rules and carries out their decisions. The sampling thread
//!   never touches the disk, so a store that stalls (a write or fsync taking seconds) delays
//!   the writes, the rules and their actions, never the next sample; the stall is written up
//!   (`checkpoint::StallWatch`), and what a full queue thinned or dropped is counted.
//! - Samples are due at `start + k × interval`; a slow pass never shifts the schedule. A pass
//!   that starts late records how late; missed slots are recorded as a gap.
//! - A kernel pressure trigger or a new OOM kill takes a sample between clock samples
//!   (`wake`: spaced, bounded, its reason recorded); the clock then resumes one interval later.
//! - SIGTERM/SIGINT: the sample in flight is finished and written, then exit 0.
//! - SIGHUP: the config is re-read and validated first; on error the running one is kept and
//!   the reason logged.
//! - A store that cannot be written (disk full, locked) never stops the loop: samples wait in
//!   a bounded queue and are written when the store is back; what had to be dropped is
//!   counted and recorded.
//! - A restart records the gap since the last sample, and whether the last run ended cleanly.
//! - Alerts are delivered by a task on the main thread's runtime (`alert::outbox`), with its
//!   own store connection: the sampler only queues rows and wakes it, so delivery never
//!   delays a sample. At stop, an attempt in flight gets [`DELIVERY_GRACE`] to finish.

pub mod checkpoint;
mod export;
pub mod handoff;
pub mod protect;
pub mod retention;
mod sampler;
pub mod stages;
pub mod threads;
mod wake;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;

use std::collections::HashMap;
use std::sync::Arc;

use crate::actions::Actions;
use crate::alert::outbox::{self as alert_outbox, Delivery, DeliveryConfig, OutboxWaker};
use crate::collect;
use crate::config::Config;
use crate::format::human_ms;
use crate::model::{Level, Sample};
use crate::rules::{Engine, EngineState};
use crate::store::outbox::Outbox;
use crate::store::retention::{PruneQueue, RetentionPolicy};
use crate::store::{RecorderEvent, Store, StoreError};

/// How long an alert attempt in flight at stop may take to finish before it is cut (and
/// sent again at the next start).
pub const DELIVERY_GRACE: Duration = Duration::from_secs(5);
/// The delivery connection's wait for the sampler's write lock.
const OUTBOX_BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// Messages from the signal handler to the sampling thread.
enum Control {
    Stop,
    Reload(Box<Config>),
    /// A kernel pressure trigger fired or an OOM kill was logged (`wake`).
    Wake(crate::model::SampleReason),
    /// From the recorder thread: the next sample's level or interval changed (a capture
    /// started or ended); the schedule counts from the last due time again.
    Next,
}

/// The one line said at start when the store (or its -wal/-shm) is more open than
/// `[store] mode`, with the command that fixes it.
fn store_too_open_warning(files: &[crate::files::TooOpen], group: Option<&str>) -> Option<String> {
    let first = files.first()?;
    Some(format!(
        "{first}: other users may read the record (every sampled command line); fix: {}",
        crate::files::fix_command(files, group)
    ))
}

/// Runs the recorder until SIGTERM/SIGINT. `config_path` None: the embedded default.
pub fn run(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = Config::load_or_default(config_path.as_deref())?;
    // `[rules.<name>]` settings must fit the rules: a typo there stops the start.
    crate::actions::check_rule_settings(&config).map_err(anyhow::Error::msg)?;
    // Before any thread exists, so every thread inherits priority and I/O class.
    let protections = protect::apply(&config.protect);
    // A few threads share the heap: one malloc arena each would all be locked in memory.
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator tuning; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    crate::format::redact::install(config.privacy.redactor());
    let (mut store, too_open) = Store::open_with_access(
        &config.store.path,
        config.store.busy_timeout.std(),
        config.store.access(),
    )?;
    let loose_store = store_too_open_warning(&too_open, config.store.group_name());
    store.hand_off_checkpoints()?;
    let checkpoints =
        checkpoint::CheckpointWorker::start(&config.store.path, Duration::from_secs(5))?;
    // Its own connection and thread: pruning never runs on the sampling path.
    let retention = retention::RetentionWorker::start(
        &config.store.path,
        RetentionPolicy::from_config(&config),
        config.retention.interval.std(),
        Duration::from_secs(5),
    )?;
    let mut recorder = Recorder::new(config, store, Some(retention.queue()))?;
    recorder.watch_store(checkpoints.health());
    let rt = threads::runtime()?;
    recorder.event(RecorderEvent::now("protect", threads::started_line()));
    for line in &protections {
        tracing::info!("{line}");
        recorder.event(RecorderEvent::now("protect", line.clone()));
    }
    if let Some(line) = loose_store {
        tracing::warn!("{line}");
        recorder.event(RecorderEvent::now("notice", line));
    }
    for (level, line) in alert_preflight(&recorder.config) {
        match level {
            tracing::Level::ERROR => tracing::error!("{line}"),
            _ => tracing::warn!("{line}"),
        }
        recorder.event(RecorderEvent::now("notice", line));
    }
    let outbox = Outbox::open(&recorder.config.store.path, OUTBOX_BUSY_TIMEOUT)?;
    let relay = crate::alert::Relay::current_exe()
        .context("cannot locate the hogtrap executable (the desktop notification relay)")?;
    let delivery = Delivery::new(
        outbox,
        DeliveryConfig::from_config(&recorder.config, &recorder.host_name),
        relay,
    );
    let waker = recorder.alert_waker();
    let export_feed = recorder.config.export.prometheus.enabled.then(|| {
        let feed = crate::export::Feed::new();
        recorder.set_export(feed.clone());
        feed
    });
    let prometheus = recorder.config.export.prometheus.clone();

    let (tx, rx) = mpsc::channel();
    let armed = wake::start(&recorder.config, tx.clone())?;
    let recent_wakes = recorder.wake_started(armed);
    recorder.sampler_tx = Some(tx.clone());
    let handoff = recorder.handoff.clone();
    let sampling = sampler::Sampler::new(&recorder.config, handoff.clone(), recent_wakes);
    let recording = std::thread::Builder::new()
        .name("recorder".into())
        // Small: SQLite and the actions need little (pages touched stay locked;
        // the rules run on their own worker).
        .stack_size(512 << 10)
        .spawn(move || recorder.run())
        .context("cannot start the recorder thread")?;
    let sampler = std::thread::Builder::new()
        .name("sampler".into())
        // Collection needs little.
        .stack_size(1 << 20)
        .spawn(move || sampling.run(rx))
        .context("cannot start the sampling thread")?;

    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let worker = alert_outbox::spawn(delivery, waker);
        let metrics = match &export_feed {
            Some(feed) => {
                let server = crate::export::server::Server::start(&prometheus, feed.subscribe()).await?;
                tracing::info!("serving /metrics on http://{}/metrics", server.addr);
                Some(server)
            }
            None => None,
        };
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    // Validate everything (the config, then the rules) before applying
                    // anything: on any error the running configuration and rules stay.
                    match Config::load_or_default(config_path.as_deref())
                        .map_err(|e| e.to_string())
                        .and_then(|c| rules_compile(&c).map(|_| c))
                    {
                        Ok(c) => {
                            tracing::info!("SIGHUP: configuration reloaded");
                            crate::format::redact::install(c.privacy.redactor());
                            for (_, line) in alert_preflight(&c) {
                                tracing::warn!("{line}");
                            }
                            worker.reconfigure(DeliveryConfig::from_config(&c, &collect::host_name(&c.sampler)));
                            if c.export.prometheus != prometheus {
                                tracing::warn!("SIGHUP: [export.prometheus] changed; that takes a restart, still serving as before");
                            }
                            retention.reload(RetentionPolicy::from_config(&c), c.retention.interval.std());
                            let _ = tx.send(Control::Reload(Box::new(c)));
                        }
                        Err(e) => tracing::error!("SIGHUP: reload refused, keeping the running configuration: {e}"),
                    }
                }
            }
        }
        let _ = tx.send(Control::Stop);
        worker.stop(DELIVERY_GRACE).await;
        if let Some(server) = metrics {
            server.stop().await;
        }
        anyhow::Ok(())
    })?;
    retention.stop();
    let sampled = sampler.join();
    // The recorder writes what is still queued, then stops (also if the sampler panicked).
    handoff.stop();
    let recorded = recording.join();
    checkpoints.stop();
    if sampled.is_err() {
        anyhow::bail!("the sampling thread panicked");
    }
    match recorded {
        Ok(r) => r,
        Err(_) => anyhow::bail!("the recorder thread panicked"),
    }
}

/// The recorder thread: stores what the sampling thread queued, runs the rules, carries out
/// their decisions.
pub struct Recorder {
    config: Config,
    store: Store,
    /// Where the sampling thread's samples and events wait for this thread.
    handoff: Arc<handoff::Handoff>,
    /// Tells the sampling thread when the next sample's level or interval changed.
    sampler_tx: Option<mpsc::Sender<Control>>,
    engine: Option<Engine>,
    actions: Actions,
    /// Rule state as last written to the store, to write only what changed.
    /// Per rule, what was last written (its state without the evaluation time) and when.
    saved_rule_states: HashMap<String, (String, i64)>,
    host_name: String,
    pending: VecDeque<Sample>,
    /// Samples lost since the store last accepted a write, and since when.
    dropped: u64,
    failing_since: Option<i64>,
    events_pending: Vec<RecorderEvent>,
    /// Wakes the alert delivery task after an alert is queued (`alert::outbox::raise`).
    alert_waker: OutboxWaker,
    /// How long samples waited for a stalled store (`checkpoint`).
    stall: checkpoint::StallWatch,
    /// Samples the hand-off queue dropped since start (`/metrics`).
    queue_dropped: u64,
    /// Writes of the status keys that failed (the first is logged).
    state_errors: u64,
    /// `[export.prometheus]`: where each pass's snapshot goes, and the counters it carries.
    export: Option<crate::export::Feed>,
    export_health: crate::export::Health,
    last_full: Option<Arc<Sample>>,
}

impl Recorder {
    /// `prune`: where rules' prune actions go (the retention thread), if anywhere.
    pub fn new(
        config: Config,
        mut store: Store,
        prune: Option<PruneQueue>,
    ) -> anyhow::Result<Recorder> {
        let host_name = collect::host_name(&config.sampler);
        let now = jiff::Timestamp::now().as_millisecond();
        let alert_waker = OutboxWaker::new();
        let actions = Actions::new(&config, &host_name, alert_waker.clone(), prune);
        let mut r = Recorder {
            handoff: Arc::new(handoff::Handoff::new(&config, actions.next())),
            sampler_tx: None,
            engine: None,
            actions,
            saved_rule_states: HashMap::new(),
            host_name,
            pending: VecDeque::new(),
            dropped: 0,
            failing_since: None,
            events_pending: Vec::new(),
            alert_waker,
            stall: checkpoint::StallWatch::default(),
            queue_dropped: 0,
            state_errors: 0,
            export: None,
            export_health: crate::export::Health::default(),
            last_full: None,
            store: {
                store.set_state("pid", &std::process::id().to_string())?;
                store.set_state(
                    "interval_ms",
                    &config.sampler.interval.as_millis().to_string(),
                )?;
                store.set_state("started_ms", &now.to_string())?;
                store
            },
            config,
        };
        r.actions.note_start(&mut r.store, now);
        r.record_restart_gap(now)?;
        if let Err(e) = r.store.end_stale_captures(now) {
            tracing::warn!("cannot close the captures of the previous run: {e}");
        }
        r.load_rules(now);
        Ok(r)
    }

    /// Loads the rules leniently (a broken file is skipped and reported; recording never
    /// waits for rules), restores their state and refills their history from the store.
    fn load_rules(&mut self, now: i64) {
        let dir = self.config.rules.dir.clone();
        if !dir.exists() {
            let msg = format!(
                "rules directory {} does not exist: recording without rules",
                dir.display()
            );
            tracing::warn!("{msg}");
            self.event(RecorderEvent::now("notice", msg));
            return;
        }
        let loaded = crate::rules::load_dir_sources(&dir, true).and_then(|sources| {
            Engine::load_lenient(crate::actions::rules_config(&self.config), sources)
        });
        let (mut engine, errors) = match loaded {
            Ok(r) => r,
            Err(e) => {
                let msg = format!("rules not loaded: {e}; recording without rules");
                tracing::error!("{msg}");
                self.event(RecorderEvent::now("error", msg));
                return;
            }
        };
        for e in &errors {
            tracing::error!("rule file skipped: {e}");
            let _ = self.store.record_rule_error(
                now,
                e.rule.as_deref().unwrap_or("<load>"),
                &e.file.display().to_string(),
                e.line,
                &e.message,
            );
        }
        if let Ok(saved) = self.store.load_rule_states() {
            let mut state = EngineState::default();
            for (rule, json) in saved {
                if let Ok(mut s) = serde_json::from_str::<crate::rules::RuleState>(&json) {
                    // A restart gives a disabled rule another chance (its file may be fixed);
                    // timers and the rule's own state carry over.
                    s.disabled = None;
                    s.consecutive_errors = 0;
                    state.rules.insert(rule, s);
                }
            }
            engine.import_state(state);
        }
        let history_from = now - HISTORY_REFILL.as_millis() as i64;
        if let Ok(samples) = self.store.recent_samples(history_from) {
            engine.seed_history(samples.iter().map(|s| (s.ts_ms, &s.host)));
        }
        let names: Vec<String> = engine.rules().into_iter().map(|r| r.name).collect();
        tracing::info!(
            "{} rules loaded from {}: {}",
            names.len(),
            dir.display(),
            names.join(", ")
        );
        self.engine = Some(engine);
    }

    /// Writes the rule states that changed since the last write.
    fn save_rule_states(&mut self, now: i64) {
        let Some(engine) = &self.engine else { return };
        for info in engine.rules() {
            // The evaluation time moves every sample; it alone is written at most once a
            // minute (and at stop): after a crash a pending hold may restart, never run long.
            let mut unclocked = info.state.clone();
            unclocked.last_eval_ms = None;
            let key = serde_json::to_string(&unclocked).unwrap_or_default();
            if let Some((saved, at)) = self.saved_rule_states.get(&info.name) {
                if *saved == key && now - at < RULE_STATE_REFRESH_MS {
                    continue;
                }
            }
            let json = serde_json::to_string(&info.state).unwrap_or_default();
            let st = &info.state;
            let r = self.store.save_rule_state(
                &info.name,
                &info.file.display().to_string(),
                st.status.as_str(),
                st.since_ms,
                &json,
                st.consecutive_errors,
                st.disabled.is_some(),
                now,
            );
            if r.is_ok() {
                self.saved_rule_states.insert(info.name, (key, now));
            }
        }
    }

    /// What wakes the alert delivery task; alerts are raised with
    /// `alert::outbox::raise(&mut store, &RaiseConfig::from_config(&config), &waker, ...)`.
    pub fn alert_waker(&self) -> OutboxWaker {
        self.alert_waker.clone()
    }

    /// Records how long the recorder was away and whether it had stopped cleanly.
    fn record_restart_gap(&mut self, now: i64) -> anyhow::Result<()> {
        let clean = self.store.last_run_stopped_cleanly()?;
        if let Some((last, _)) = self.store.last_sample_ts()? {
            let away = now - last;
            let interval = self.config.sampler.interval.as_millis() as i64;
            if away > 2 * interval {
                let how = if clean {
                    "the recorder was stopped"
                } else {
                    "the recorder ended without stopping (killed, crashed or power lost)"
                };
                self.event(RecorderEvent {
                    from_ms: Some(last),
                    to_ms: Some(now),
                    ..RecorderEvent::now("gap", format!("no samples for {}: {how}", human_ms(away)))
                });
            }
        }
        self.event(RecorderEvent::now(
            "start",
            format!(
                "hogtrap {} started, pid {}, interval {}",
                env!("CARGO_PKG_VERSION"),
                std::process::id(),
                self.config.sampler.interval
            ),
        ));
        Ok(())
    }

    /// Queues a health event; it is written with the next sample (or right away if possible).
    fn event(&mut self, e: RecorderEvent) {
        if let Err(err) = self.store.record_event(&e) {
            tracing::debug!("health event held back: {err}");
            self.events_pending.push(e);
        }
    }

    fn run(mut self) -> anyhow::Result<()> {
        // No pre-faulting here: this thread's page faults delay writes, never a sample (the
        // sampling thread pre-faults its own arena), and a second pre-fault racing the
        // sampler's would take another 4 MiB of locked memory.
        loop {
            let (job, _waiting, done) = self.handoff.take(Duration::from_secs(1));
            match job {
                Some(handoff::Job::Sample(taken)) => self.record(*taken),
                Some(handoff::Job::Event(e)) => self.event(e),
                Some(handoff::Job::State(key, value)) => self.wake_state(key, &value),
                Some(handoff::Job::Reload(c)) => self.reload(*c),
                None => {}
            }
            self.report_losses();
            if done {
                break;
            }
        }
        self.end_stall();
        self.flush_pending();
        self.checkpoint_events();
        self.save_rule_states(jiff::Timestamp::now().as_millisecond());
        self.event(RecorderEvent::now("stop", "hogtrap stopped by signal"));
        Ok(())
    }

    /// What the hand-off queue had to thin or drop while this thread was stuck: logged and
    /// recorded as one `dropped` event.
    fn report_losses(&mut self) {
        let l = self.handoff.take_losses();
        if l.is_empty() {
            return;
        }
        let mut parts = Vec::new();
        if l.dropped.count > 0 {
            parts.push(format!(
                "{} sample(s) dropped (the oldest waiting, taken {} to {})",
                l.dropped.count,
                crate::format::format_local(l.dropped.from_ms.unwrap_or_default()),
                crate::format::format_local(l.dropped.to_ms.unwrap_or_default())
            ));
        }
        if l.thinned.count > 0 {
            parts.push(format!(
                "{} sample(s) thinned to their top processes before the rules saw them",
                l.thinned.count
            ));
        }
        if l.other_dropped > 0 {
            parts.push(format!("{} health event(s) dropped", l.other_dropped));
        }
        let msg = format!(
            "the in-memory queue for the store was full (store.pending_max = {}): {}",
            self.config.store.pending_max,
            parts.join("; ")
        );
        tracing::warn!("{msg}");
        self.queue_dropped += l.dropped.count;
        // The event's range: the dropped samples', else the thinned ones'.
        let range = if l.dropped.from_ms.is_some() {
            l.dropped
        } else {
            l.thinned
        };
        self.event(RecorderEvent {
            from_ms: range.from_ms,
            to_ms: range.to_ms,
            count: Some(l.dropped.count as i64),
            ..RecorderEvent::now("dropped", msg)
        });
    }

    /// One sample from the sampling thread: store, evaluate the rules, carry out their
    /// decisions. Never fails: what cannot be stored is queued or counted; a rule cannot stop
    /// it. The sample carries the timestamp the sampling thread gave it.
    fn record(&mut self, taken: handoff::Taken) {
        self.checkpoint_events();
        let handoff::Taken {
            sample: mut full,
            level,
            thinned,
            started,
            queued,
            missed,
        } = taken;
        self.export_health.missed += missed as u64;
        let late_ms = full.late_ms;
        let stored = match level {
            Level::Baseline if !thinned => {
                collect::baseline_subset(&full, self.config.sampler.top_processes)
            }
            Level::Baseline | Level::Detail => full.clone(),
        };
        let ts = full.ts_ms;
        let sample_id = self.store_sample(stored);
        self.note_wait(ts, queued.elapsed());
        // Recorded above with their real time; old ones are not news to the rules.
        let old = self.actions.drop_old_oom_kills(&mut full);
        if old > 0 {
            tracing::info!("{old} OOM kill(s) recorded but not handed to the rules: from before the first start on this store, or recorded by an earlier run");
        }
        let full = Arc::new(full);
        if let (Level::Baseline, Some(id)) = (level, sample_id) {
            self.actions.remember(id, full.clone());
        }
        self.export_health.samples += 1;
        if self.export.is_some() {
            self.last_full = Some(full.clone());
        }
        if let Some(engine) = self.engine.as_mut() {
            let eval = engine.evaluate_shared(full.clone());
            if self.export.is_some() {
                crate::daemon::export::count(&mut self.export_health, &eval);
            }
            for e in self.actions.apply(&mut self.store, &eval, &full, sample_id) {
                self.event(e);
            }
            self.save_rule_states(full.ts_ms);
        }
        self.update_next();
        self.publish(started, late_ms);
    }

    /// Tells the sampling thread the level and interval of the next sample, if they changed.
    fn update_next(&mut self) {
        let next = self.actions.next();
        if next == self.handoff.next() {
            return;
        }
        self.handoff.set_next(next);
        if let Some(tx) = &self.sampler_tx {
            if tx.send(Control::Next).is_err() {
                tracing::debug!("the sampling thread has stopped: next {next:?} not sent");
            }
        }
    }

    /// Queues the sample and writes what the store accepts; returns this sample's row id if
    /// it was written now.
    fn store_sample(&mut self, sample: Sample) -> Option<i64> {
        let ts = sample.ts_ms;
        self.pending.push_back(sample);
        if self.pending.len() > self.config.store.pending_max.max(1) {
            self.pending.pop_front();
            self.dropped += 1;
        }
        self.flush_pending()
            .filter(|(written_ts, _)| *written_ts == ts)
            .map(|(_, id)| id)
    }

    /// Writes queued samples, oldest first; returns the (ts, id) of the last one written.
    fn flush_pending(&mut self) -> Option<(i64, i64)> {
        let mut last = None;
        while let Some(s) = self.pending.front() {
            match self.store.write_sample(s) {
                Ok(id) => {
                    last = Some((s.ts_ms, id));
                    self.pending.pop_front();
                }
                Err(e) => {
                    let now = jiff::Timestamp::now().as_millisecond();
                    if self.failing_since.is_none() {
                        self.failing_since = Some(now);
                        tracing::error!(
                            "cannot write the sample: {e}; {}",
                            if e.is_transient() {
                                "keeping samples in memory and retrying every interval"
                            } else {
                                "retrying every interval"
                            }
                        );
                    }
                    if !is_retryable(&e) {
                        // A sample the store rejects for good would block the queue forever.
                        self.pending.pop_front();
                        self.dropped += 1;
                    }
                    return last;
                }
            }
        }
        if let Some(since) = self.failing_since.take() {
            let now = jiff::Timestamp::now().as_millisecond();
            let msg = format!(
                "the store accepts writes again after {}; {} sample(s) dropped",
                human_ms(now - since),
                self.dropped
            );
            tracing::warn!("{msg}");
            let ev = RecorderEvent {
                from_ms: Some(since),
                to_ms: Some(now),
                count: Some(self.dropped as i64),
                ..RecorderEvent::now("dropped", msg)
            };
            self.dropped = 0;
            self.event(ev);
        }
        for e in std::mem::take(&mut self.events_pending) {
            self.event(e);
        }
        last
    }

    fn reload(&mut self, new: Config) {
        // Rules first: if they do not load, nothing changes.
        if let Some(engine) = self.engine.as_mut() {
            let sources =
                crate::rules::load_dir_sources(&new.rules.dir, true).map_err(|e| e.to_string());
            let loaded = sources.and_then(|s| {
                engine
                    .reload(crate::actions::rules_config(&new), s)
                    .map_err(|errs| {
                        errs.iter()
                            .map(|e| e.to_string())
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
            });
            if let Err(why) = loaded {
                let msg = format!(
                    "SIGHUP: reload refused, keeping the running rules and configuration: {why}"
                );
                tracing::error!("{msg}");
                self.event(RecorderEvent::now("error", msg));
                return;
            }
            tracing::info!("SIGHUP: rules reloaded");
        }
        if new.store.path != self.config.store.path {
            tracing::warn!(
                "SIGHUP: store.path changed to {}; that takes a restart, still writing {}",
                new.store.path.display(),
                self.config.store.path.display()
            );
        }
        let store_path = self.config.store.path.clone();
        self.config = new;
        self.config.store.path = store_path;
        self.host_name = collect::host_name(&self.config.sampler);
        self.actions.reconfigure(&self.config, &self.host_name);
        self.update_next();
        let _ = self.store.set_state(
            "interval_ms",
            &self.config.sampler.interval.as_millis().to_string(),
        );
        self.event(RecorderEvent::now("reload", "configuration reloaded"));
    }
}

/// Compiles the configured rules in a throwaway engine; the error names file and line.
fn rules_compile(c: &Config) -> Result<(), String> {
    if !c.rules.dir.exists() {
        return Ok(()); // recording without rules, as at start
    }
    let errors: Vec<String> = crate::rules::check(&c.rules.dir, &crate::actions::rules_config(c))
        .into_iter()
        .filter(|d| d.level == crate::rules::DiagnosticLevel::Error)
        .map(|d| d.to_string())
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// How far back the rules' history is refilled from the store at start.
const HISTORY_REFILL: Duration = Duration::from_secs(3600);
/// A rule's state unchanged but for its evaluation time is written at most this often.
const RULE_STATE_REFRESH_MS: i64 = 60_000;

/// What can be checked about the alert channels without sending: problems to log at start
/// and reload (a missing password file, a password file others can read). Never fatal:
/// alerts raised meanwhile wait in the outbox, and each failed attempt is recorded.
fn alert_preflight(config: &Config) -> Vec<(tracing::Level, String)> {
    let mut out = Vec::new();
    if config.email.enabled {
        match crate::alert::email_preflight(&config.email) {
            Ok(warnings) => out.extend(warnings.into_iter().map(|w| (tracing::Level::WARN, w))),
            Err(e) => out.push((
                tracing::Level::ERROR,
                format!("alert email cannot be sent as configured: {e}"),
            )),
        }
    }
    out
}

fn is_retryable(e: &StoreError) -> bool {
    e.is_transient() || matches!(e, StoreError::Io { .. })
}
