//! The daemon: wires collect → store (→ rules → actions) on a drift-free schedule. It holds no
//! logic of its own beyond scheduling, signals and keeping the record honest about itself.
//!
//! Guarantees:
//! - Samples are due at `start + k × interval`; a slow pass never shifts the schedule. A pass
//!   that starts late records how late; missed slots are recorded as a gap.
//! - SIGTERM/SIGINT: the sample in flight is finished and written, then exit 0.
//! - SIGHUP: the config is re-read and validated first; on error the running one is kept and
//!   the reason logged.
//! - A store that cannot be written (disk full, locked) never stops the loop: samples wait in
//!   a bounded queue and are written when the store is back; what had to be dropped is
//!   counted and recorded.
//! - A restart records the gap since the last sample, and whether the last run ended cleanly.

pub mod protect;
pub mod retention;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::collect::{self, Collector};
use crate::config::Config;
use crate::model::{Level, Sample};
use crate::store::retention::RetentionPolicy;
use crate::store::{RecorderEvent, Store, StoreError};

/// Messages from the signal handler to the sampling thread.
enum Control {
    Stop,
    Reload(Box<Config>),
}

/// Runs the recorder until SIGTERM/SIGINT. `config_path` None: the embedded default.
pub fn run(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = Config::load_or_default(config_path.as_deref())?;
    // Before any thread exists, so every thread inherits priority and I/O class.
    let protections = protect::apply(&config.protect);
    let store = Store::open(&config.store.path, config.store.busy_timeout.std())?;
    // Its own connection and thread: pruning never runs on the sampling path.
    let retention = retention::RetentionWorker::start(
        &config.store.path,
        RetentionPolicy::from_config(&config),
        config.retention.interval.std(),
        Duration::from_secs(5),
    )?;
    let mut recorder = Recorder::new(config, store)?;
    for line in &protections {
        tracing::info!("{line}");
        recorder.event(RecorderEvent::now("protect", line.clone()));
    }

    let (tx, rx) = mpsc::channel();
    let sampler = std::thread::Builder::new()
        .name("sampler".into())
        .stack_size(4 << 20)
        .spawn(move || recorder.run(rx))
        .context("cannot start the sampling thread")?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    match Config::load_or_default(config_path.as_deref()) {
                        Ok(c) => {
                            tracing::info!("SIGHUP: configuration reloaded");
                            retention.reload(RetentionPolicy::from_config(&c), c.retention.interval.std());
                            let _ = tx.send(Control::Reload(Box::new(c)));
                        }
                        Err(e) => tracing::error!("SIGHUP: reload refused, keeping the running configuration: {e}"),
                    }
                }
            }
        }
        let _ = tx.send(Control::Stop);
        anyhow::Ok(())
    })?;
    retention.stop();
    match sampler.join() {
        Ok(r) => r,
        Err(_) => anyhow::bail!("the sampling thread panicked"),
    }
}

pub struct Recorder {
    config: Config,
    store: Store,
    collector: Collector,
    host_name: String,
    pending: VecDeque<Sample>,
    /// Samples lost since the store last accepted a write, and since when.
    dropped: u64,
    failing_since: Option<i64>,
    events_pending: Vec<RecorderEvent>,
}

impl Recorder {
    pub fn new(config: Config, mut store: Store) -> anyhow::Result<Recorder> {
        let collector = Collector::new(config.sampler.source);
        let host_name = host_name(&config);
        let now = jiff::Timestamp::now().as_millisecond();
        let mut r = Recorder {
            host_name,
            pending: VecDeque::new(),
            dropped: 0,
            failing_since: None,
            events_pending: Vec::new(),
            collector,
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
        r.record_restart_gap(now)?;
        for n in r.collector.notices() {
            tracing::warn!("{n}");
            r.event(RecorderEvent::now("notice", n));
        }
        Ok(r)
    }

    /// Records how long the recorder was away and whether it had stopped cleanly.
    fn record_restart_gap(&mut self, now: i64) -> anyhow::Result<()> {
        let clean = self
            .store
            .connection()
            .query_row(
                "SELECT kind FROM recorder_event WHERE kind IN ('start', 'stop')
                 ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get::<_, String>(0),
            )
            .map(|k| k == "stop")
            .unwrap_or(true);
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

    fn run(mut self, rx: mpsc::Receiver<Control>) -> anyhow::Result<()> {
        let mut interval = self.config.sampler.interval.std();
        let mut t0 = Instant::now();
        let mut k: u32 = 1;
        loop {
            let due = t0 + interval * k;
            let now = Instant::now();
            let msg = if due > now {
                rx.recv_timeout(due - now)
            } else {
                rx.try_recv().map_err(|e| match e {
                    mpsc::TryRecvError::Empty => mpsc::RecvTimeoutError::Timeout,
                    mpsc::TryRecvError::Disconnected => mpsc::RecvTimeoutError::Disconnected,
                })
            };
            match msg {
                Ok(Control::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Ok(Control::Reload(c)) => {
                    self.reload(*c);
                    if self.config.sampler.interval.std() != interval {
                        interval = self.config.sampler.interval.std();
                        t0 = Instant::now();
                        k = 1;
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            let started = Instant::now();
            let late = started.saturating_duration_since(due);
            if late >= interval {
                // The pass could not start for whole intervals: record the hole, then get
                // back on the grid.
                let missed = (late.as_nanos() / interval.as_nanos()) as u32;
                let now_ms = jiff::Timestamp::now().as_millisecond();
                self.event(RecorderEvent {
                    from_ms: Some(now_ms - late.as_millis() as i64),
                    to_ms: Some(now_ms),
                    count: Some(missed as i64),
                    ..RecorderEvent::now(
                        "gap",
                        format!(
                            "{missed} sample(s) missed: the recorder started {} late",
                            human_ms(late.as_millis() as i64)
                        ),
                    )
                });
                k += missed;
            }
            let late_ms = started
                .saturating_duration_since(t0 + interval * k)
                .as_millis() as u64;
            self.pass(late_ms);
            k += 1;
        }
        self.flush_pending();
        self.event(RecorderEvent::now("stop", "hogtrap stopped by signal"));
        Ok(())
    }

    /// One pass: collect, store. Never fails: what cannot be stored is queued or counted.
    pub fn pass(&mut self, late_ms: u64) {
        let mut sample = self.collector.sample(
            Level::Baseline,
            self.config.sampler.top_processes,
            &self.host_name,
        );
        sample.late_ms = late_ms;
        self.store_sample(sample);
    }

    fn store_sample(&mut self, sample: Sample) {
        self.pending.push_back(sample);
        if self.pending.len() > self.config.store.pending_max.max(1) {
            self.pending.pop_front();
            self.dropped += 1;
        }
        self.flush_pending();
    }

    fn flush_pending(&mut self) {
        while let Some(s) = self.pending.front() {
            match self.store.write_sample(s) {
                Ok(_) => {
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
                    return;
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
    }

    fn reload(&mut self, new: Config) {
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
        self.host_name = host_name(&self.config);
        let _ = self.store.set_state(
            "interval_ms",
            &self.config.sampler.interval.as_millis().to_string(),
        );
        self.event(RecorderEvent::now("reload", "configuration reloaded"));
    }
}

fn is_retryable(e: &StoreError) -> bool {
    e.is_transient() || matches!(e, StoreError::Io { .. })
}

fn host_name(c: &Config) -> String {
    if c.sampler.host_name.is_empty() {
        collect::system_host_name()
    } else {
        c.sampler.host_name.clone()
    }
}

/// "3m12s"-style text for a span of milliseconds.
pub fn human_ms(ms: i64) -> String {
    let d = Duration::from_millis(ms.max(0) as u64);
    let secs = d.as_secs();
    if secs < 1 {
        format!("{ms}ms")
    } else {
        humantime::format_duration(Duration::from_secs(secs))
            .to_string()
            .replace(' ', "")
    }
}
