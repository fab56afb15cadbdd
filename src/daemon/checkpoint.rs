//! The checkpoint thread: copies the WAL into the database file every [`CHECKPOINT_EVERY`],
//! on its own connection, and watches for a store that stalls.
//!
//! Guarantees:
//! - The sampling thread never checkpoints or fsyncs (`store::checkpoint`).
//! - A checkpoint that runs [`STALL_AFTER`] or more gets one `stall` health event naming how
//!   long the disk kept it.
//! - The recorder thread ([`StallWatch`]) watches how long each sample waited between the
//!   sampling thread's queue and the store: when samples waited [`STALL_AFTER`] or more (the
//!   recorder was stuck in a write or a lock the disk held), one `stall` event names how long
//!   the store stalled and how many samples waited in memory with their own timestamps.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::format::human_ms;
use crate::store::checkpoint::Checkpointer;
use crate::store::RecorderEvent;

/// How often the WAL is copied back (a 1 s sampler writes a few hundred KiB in that time).
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(10);
/// A checkpoint running this long means the disk is stalled.
pub const STALL_AFTER: Duration = Duration::from_millis(500);

/// What the checkpoint thread tells the sampler.
#[derive(Default)]
pub struct StoreHealth {
    /// When the checkpoint in progress started (ms since the epoch), 0 when none runs.
    checkpoint_since_ms: AtomicI64,
    stop: AtomicBool,
    /// Health events from the checkpoint thread, written by the sampler with its next pass.
    events: Mutex<Vec<RecorderEvent>>,
}

impl StoreHealth {
    /// How long the disk has been stalled, if it is now.
    pub fn stalled_for(&self, now_ms: i64) -> Option<Duration> {
        let since = self.checkpoint_since_ms.load(Ordering::SeqCst);
        let running = Duration::from_millis((now_ms - since).max(0) as u64);
        (since != 0 && running >= STALL_AFTER).then_some(running)
    }

    pub fn take_events(&self) -> Vec<RecorderEvent> {
        match self.events.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(_) => Vec::new(),
        }
    }

    fn push(&self, e: RecorderEvent) {
        if let Ok(mut v) = self.events.lock() {
            v.push(e);
        }
    }
}

pub struct CheckpointWorker {
    health: Arc<StoreHealth>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CheckpointWorker {
    pub fn start(path: &Path, busy_timeout: Duration) -> anyhow::Result<CheckpointWorker> {
        let checkpointer = Checkpointer::open(path, busy_timeout)?;
        let health = Arc::new(StoreHealth::default());
        let h = health.clone();
        let thread = std::thread::Builder::new()
            .name("checkpoint".into())
            // SQLite needs far less; the pages it touches stay locked.
            .stack_size(256 << 10)
            .spawn(move || run(checkpointer, &h))
            .context("cannot start the checkpoint thread")?;
        Ok(CheckpointWorker {
            health,
            thread: Some(thread),
        })
    }

    pub fn health(&self) -> Arc<StoreHealth> {
        self.health.clone()
    }

    /// Stops after the checkpoint in progress (if the disk is stalled, that may take a while).
    pub fn stop(mut self) {
        self.health.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            if t.join().is_err() {
                tracing::error!("the checkpoint thread panicked");
            }
        }
    }
}

fn run(checkpointer: Checkpointer, health: &StoreHealth) {
    let mut errors = 0u64;
    while !health.stop.load(Ordering::SeqCst) {
        std::thread::park_timeout(CHECKPOINT_EVERY);
        let started_ms = jiff::Timestamp::now().as_millisecond();
        let started = Instant::now();
        health
            .checkpoint_since_ms
            .store(started_ms, Ordering::SeqCst);
        let result = checkpointer.run();
        health.checkpoint_since_ms.store(0, Ordering::SeqCst);
        let took = started.elapsed();
        match result {
            Ok(r) if took >= STALL_AFTER => {
                let msg = format!(
                    "the store stalled for {}: a checkpoint of {} WAL page(s) took that long \
                     (write and fsync)",
                    human_ms(took.as_millis() as i64),
                    r.wal_pages
                );
                tracing::warn!("{msg}");
                health.push(RecorderEvent {
                    from_ms: Some(started_ms),
                    to_ms: Some(started_ms + took.as_millis() as i64),
                    count: Some(took.as_millis() as i64),
                    ..RecorderEvent::now("stall", msg)
                });
            }
            Ok(_) => {}
            Err(e) => {
                // Busy or a full disk: the next round tries again; said once per run of errors.
                errors += 1;
                if errors == 1 {
                    tracing::warn!(
                        "WAL checkpoint failed (retrying every {CHECKPOINT_EVERY:?}): {e}"
                    );
                    health.push(RecorderEvent::now(
                        "error",
                        format!("WAL checkpoint failed: {e}"),
                    ));
                }
                continue;
            }
        }
        errors = 0;
    }
}

/// The recorder's side: samples that waited for a stalled store.
#[derive(Default)]
pub struct StallWatch {
    health: Option<Arc<StoreHealth>>,
    /// The timestamp of the first sample that waited, how many did, the longest wait.
    since_ms: Option<i64>,
    samples: u64,
    longest: Duration,
}

impl super::Recorder {
    /// Writes the checkpoint thread's health events with the recorder's.
    pub fn watch_store(&mut self, health: Arc<StoreHealth>) {
        self.stall.health = Some(health);
    }

    /// The checkpoint thread's events (a stalled checkpoint, a failed one).
    pub(super) fn checkpoint_events(&mut self) {
        let Some(health) = self.stall.health.clone() else {
            return;
        };
        for e in health.take_events() {
            self.event(e);
        }
    }

    /// After a sample is written: `waited` from the sampling thread's queue to the store.
    /// A wait of [`STALL_AFTER`] or more is a stall; the first sample after it that did not
    /// wait (or the stop) ends it and writes it up.
    pub(super) fn note_wait(&mut self, ts_ms: i64, waited: Duration) {
        if waited >= STALL_AFTER {
            self.stall.since_ms.get_or_insert(ts_ms);
            self.stall.samples += 1;
            self.stall.longest = self.stall.longest.max(waited);
            return;
        }
        self.end_stall();
    }

    pub(super) fn end_stall(&mut self) {
        let Some(since) = self.stall.since_ms.take() else {
            return;
        };
        let now = jiff::Timestamp::now().as_millisecond();
        let msg = format!(
            "the store stalled for {}: {} sample(s) waited in memory with their own \
             timestamps (the longest {}) and are written now",
            human_ms(now - since),
            self.stall.samples,
            human_ms(self.stall.longest.as_millis() as i64)
        );
        tracing::warn!("{msg}");
        self.event(RecorderEvent {
            from_ms: Some(since),
            to_ms: Some(now),
            count: Some(self.stall.samples as i64),
            ..RecorderEvent::now("stall", msg)
        });
        self.stall.samples = 0;
        self.stall.longest = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::handoff::Taken;
    use crate::daemon::Recorder;

    fn recorder(dir: &Path, pending_max: usize) -> Recorder {
        let mut config = crate::config::Config::default();
        config.store.path = dir.join("r.db");
        config.store.pending_max = pending_max;
        config.rules.dir = dir.join("no-rules");
        let store = crate::store::Store::open(&config.store.path, Duration::from_secs(1)).unwrap();
        Recorder::new(config, store, None).unwrap()
    }

    fn taken(ts_ms: i64, waited: Duration) -> Taken {
        Taken::empty_baseline(ts_ms, waited)
    }

    fn events(db: &Path, kind: &str) -> Vec<(i64, String)> {
        let conn = crate::store::open_read_only(db).unwrap();
        let mut st = conn
            .prepare("SELECT count, message FROM recorder_event WHERE kind = ?1 ORDER BY id")
            .unwrap();
        st.query_map([kind], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn samples_that_waited_for_the_store_are_written_up_once_the_store_keeps_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = recorder(dir.path(), 360);
        let t0 = 1_800_000_000_000;
        for i in 0..3 {
            r.record(taken(t0 + i * 1000, Duration::from_secs(3 - i as u64)));
        }
        let db = dir.path().join("r.db");
        assert!(events(&db, "stall").is_empty(), "the stall is not over yet");
        r.record(taken(t0 + 3000, Duration::ZERO));
        let stalls = events(&db, "stall");
        assert_eq!(stalls.len(), 1, "{stalls:?}");
        assert_eq!(stalls[0].0, 3);
        assert!(
            stalls[0].1.contains(
                "3 sample(s) waited in memory with their own timestamps (the longest 3s)"
            ),
            "{stalls:?}"
        );
        let stored: i64 = r
            .store
            .connection()
            .query_row(
                "SELECT count(*) FROM sample WHERE ts_ms >= ?1",
                [t0],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(stored, 4);
    }

    #[test]
    fn what_the_full_queue_dropped_is_counted_and_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let r = recorder(dir.path(), 2);
        let t0 = 1_800_000_000_000;
        let handoff = r.handoff.clone();
        for i in 0..5 {
            handoff.push_sample(taken(t0 + i * 1000, Duration::ZERO));
        }
        handoff.stop();
        r.run().unwrap();
        let dropped = events(&dir.path().join("r.db"), "dropped");
        assert_eq!(dropped.len(), 1, "{dropped:?}");
        assert_eq!(dropped[0].0, 3, "{dropped:?}");
        assert!(dropped[0].1.contains("3 sample(s) dropped"), "{dropped:?}");
    }
}
