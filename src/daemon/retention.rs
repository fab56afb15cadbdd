//! The retention thread: runs the configured retention every `[retention] interval`, checks
//! the size cap every few seconds, and runs the pruning policies rules ask for. It has its
//! own connection and works in short batches with pauses between them (see
//! `store::retention`), so the sampling thread's writes never wait for more than one batch.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::store::retention::{PruneJob, PruneQueue, Pruner, RetentionPolicy, Summary};
use crate::store::RecorderEvent;

/// How often the size cap is checked between full runs (or the interval, if shorter).
const SIZE_CHECK: Duration = Duration::from_secs(10);

/// The first full run waits this long after start, so the recorder's first samples go first.
const FIRST_RUN_AFTER: Duration = Duration::from_secs(5);

/// Handle to the retention thread.
pub struct RetentionWorker {
    tx: mpsc::Sender<PruneJob>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RetentionWorker {
    pub fn start(
        path: &Path,
        settings: RetentionPolicy,
        interval: Duration,
        busy_timeout: Duration,
    ) -> anyhow::Result<RetentionWorker> {
        let pruner = Pruner::open(path, settings, busy_timeout)?;
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("retention".into())
            // SQLite needs far less; the pages it touches stay locked.
            .stack_size(512 << 10)
            .spawn(move || run(pruner, interval, rx, flag))
            .context("cannot start the retention thread")?;
        Ok(RetentionWorker {
            tx,
            stop,
            thread: Some(thread),
        })
    }

    /// The queue rules' prune actions go to.
    pub fn queue(&self) -> PruneQueue {
        PruneQueue::new(self.tx.clone())
    }

    pub fn reload(&self, settings: RetentionPolicy, interval: Duration) {
        let _ = self.tx.send(PruneJob::Reload(settings, interval));
    }

    /// Stops between two batches and waits for the thread.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.tx.send(PruneJob::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(
    mut pruner: Pruner,
    mut interval: Duration,
    rx: mpsc::Receiver<PruneJob>,
    stop: Arc<AtomicBool>,
) {
    let mut next_full = Instant::now() + FIRST_RUN_AFTER;
    let mut next_cap = next_full + SIZE_CHECK.min(interval);
    let mut keep_going = |_: crate::store::retention::Progress| !stop.load(Ordering::SeqCst);
    loop {
        let due = next_full.min(next_cap);
        let wait = due.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(PruneJob::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Ok(PruneJob::Reload(settings, new_interval)) => {
                pruner.settings = settings;
                if new_interval != interval {
                    interval = new_interval;
                    next_full = Instant::now() + interval;
                }
                continue;
            }
            Ok(PruneJob::Retention) => {
                next_full = Instant::now();
            }
            Ok(PruneJob::DryRun(p)) => {
                let now = now_ms();
                match crate::store::retention::plan(
                    pruner.connection(),
                    &pruner.settings,
                    Some(&p),
                    now,
                    &mut keep_going,
                ) {
                    Ok(s) => tracing::info!(
                        "pruning policy {} (dry run) would remove {} sample(s)",
                        p.name,
                        s.rows("sample")
                    ),
                    Err(e) => tracing::warn!("pruning policy {} (dry run): {e}", p.name),
                }
                continue;
            }
            Ok(PruneJob::Policy(p)) => {
                let started = now_ms();
                match pruner.run_policy(&p, started, &mut keep_going) {
                    Ok(s) => report(&mut pruner, &s, started),
                    Err(e) => tracing::warn!("pruning policy {}: {e}", p.name),
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        if now >= next_full {
            let started = now_ms();
            match pruner.run_retention(started, &mut keep_going) {
                Ok(s) => report(&mut pruner, &s, started),
                Err(e) => tracing::warn!("retention: {e}; trying again in {interval:?}"),
            }
            next_full = Instant::now() + interval;
            next_cap = Instant::now() + SIZE_CHECK.min(interval);
        } else if now >= next_cap {
            let started = now_ms();
            match pruner.run_size_cap(started, &mut keep_going) {
                Ok(s) => report(&mut pruner, &s, started),
                Err(e) => tracing::warn!("size cap: {e}"),
            }
            next_cap = Instant::now() + SIZE_CHECK.min(interval);
        }
    }
}

/// A run that removed something is logged and recorded as a `prune` health event.
fn report(pruner: &mut Pruner, s: &Summary, started_ms: i64) {
    let samples = s.rows("sample") - s.rows_for("made baseline", "sample");
    let rows: u64 = s
        .removed
        .iter()
        .filter(|r| r.action == "delete")
        .map(|r| r.rows)
        .sum();
    if rows == 0 && s.rows_for("made baseline", "sample") == 0 {
        return;
    }
    let ended = now_ms();
    let msg = format!(
        "{}: {samples} sample(s) and {rows} row(s) in all removed in {}, store {} -> {} bytes{}",
        s.policy,
        crate::format::human_ms(ended - started_ms),
        s.size.file_bytes_before,
        s.size.file_bytes_after,
        if s.complete { "" } else { " (stopped early)" }
    );
    tracing::info!("{msg}");
    for n in &s.notes {
        tracing::warn!("{}: {n}", s.policy);
    }
    let ev = RecorderEvent {
        from_ms: Some(started_ms),
        to_ms: Some(ended),
        count: Some(samples as i64),
        ..RecorderEvent::now("prune", msg)
    };
    if let Err(e) = pruner.record_event(&ev) {
        tracing::warn!("cannot record the pruning: {e}");
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}
