//! The hand-off between the sampling thread and the recorder thread: a bounded in-memory queue,
//! so the sampling thread never waits for the disk.
//!
//! Guarantees:
//! - [`Handoff::push_sample`] and [`Handoff::push`] never block on anything but a lock the
//!   recorder thread holds only to take a job (never across a write).
//! - At most `store.pending_max` samples wait. While the samples waiting whole hold more than
//!   [`WHOLE_PROCESSES`] process rows, the oldest waiting baseline sample is thinned to what
//!   the store keeps of it (the top processes): the rules then see that sample's top
//!   processes only. Beyond `pending_max`, the
//!   oldest waiting sample is dropped. Both are counted with the time range they cover, and the
//!   recorder writes them up (`dropped` event, `hogtrap status`, `/metrics`).
//! - Health events and status keys from the sampling thread wait too (at most
//!   [`OTHER_MAX`]; beyond that they are counted and logged once).
//! - Jobs come out in the order they went in.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::actions::Next;
use crate::config::Config;
use crate::model::{Level, Sample};
use crate::store::RecorderEvent;

/// Process rows of waiting samples kept whole (every process, as collected) for the rules;
/// beyond this the oldest waiting baseline samples are thinned to their stored form. A memory
/// bound, since what the heap grows to stays resident (locked, never trimmed): a process row
/// is about 0.4 KiB, so this is ~3 MiB, 8 samples at 1,000 processes or over 100 at 70 (a
/// store stalled for two minutes at 1 s on a small host thins nothing).
pub const WHOLE_PROCESSES: usize = 8_000;
/// Waiting health events, status keys and reloads.
pub const OTHER_MAX: usize = 1024;

/// A sample as the sampling thread took it.
pub struct Taken {
    /// Every process (detail) or every process the collector saw, for the rules; `stored` is
    /// what the store keeps of it.
    pub sample: Sample,
    pub level: Level,
    /// Whether `sample` was already cut to its stored form (queue full).
    pub thinned: bool,
    /// When the pass started (for `/metrics`' pass duration) and was queued.
    pub started: Instant,
    pub queued: Instant,
    /// Slots missed just before this sample (recorded as a `gap` event already).
    pub missed: u32,
}

#[cfg(test)]
impl Taken {
    /// An empty baseline sample at `ts_ms`, queued `waited` ago (for the daemon's tests).
    pub(crate) fn empty_baseline(ts_ms: i64, waited: Duration) -> Taken {
        Taken {
            sample: Sample {
                ts_ms,
                ..Sample::default()
            },
            level: Level::Baseline,
            thinned: false,
            started: Instant::now(),
            queued: Instant::now() - waited,
            missed: 0,
        }
    }
}

pub enum Job {
    Sample(Box<Taken>),
    Event(RecorderEvent),
    /// A `state` key for `hogtrap status`.
    State(&'static str, String),
    Reload(Box<Config>),
}

/// What the queue had to give up since the recorder last looked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Losses {
    pub thinned: Lost,
    pub dropped: Lost,
    pub other_dropped: u64,
}

impl Losses {
    pub fn is_empty(&self) -> bool {
        self.thinned.count == 0 && self.dropped.count == 0 && self.other_dropped == 0
    }
}

/// Samples given up one way (thinned or dropped), and when they were taken.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Lost {
    pub count: u64,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

impl Lost {
    /// Counts one more sample, taken at `ts`, and widens the range to hold it.
    fn add(&mut self, ts: i64) {
        self.count += 1;
        self.from_ms = Some(self.from_ms.map_or(ts, |f| f.min(ts)));
        self.to_ms = Some(self.to_ms.map_or(ts, |t| t.max(ts)));
    }
}

struct State {
    jobs: VecDeque<Job>,
    samples: usize,
    /// Process rows in the waiting samples not thinned.
    whole_processes: usize,
    others: usize,
    losses: Losses,
    stopped: bool,
    /// What the recorder last said the next sample should be.
    next: Next,
}

pub struct Handoff {
    state: Mutex<State>,
    ready: Condvar,
    max_samples: usize,
    /// For thinning: how many processes a baseline sample keeps.
    top_processes: usize,
}

impl Handoff {
    pub fn new(config: &Config, next: Next) -> Handoff {
        Handoff {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                samples: 0,
                whole_processes: 0,
                others: 0,
                losses: Losses::default(),
                stopped: false,
                next,
            }),
            ready: Condvar::new(),
            max_samples: config.store.pending_max.max(1),
            top_processes: config.sampler.top_processes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding it leaves a queue that is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a sample; thins or drops the oldest waiting ones if the queue is full.
    pub fn push_sample(&self, taken: Taken) {
        let mut s = self.lock();
        if !taken.thinned {
            s.whole_processes += taken.sample.processes.len();
        }
        s.jobs.push_back(Job::Sample(Box::new(taken)));
        s.samples += 1;
        while s.whole_processes > WHOLE_PROCESSES && self.thin_oldest(&mut s) {}
        if s.samples > self.max_samples {
            let at = s.jobs.iter().position(|j| matches!(j, Job::Sample(_)));
            if let Some(Job::Sample(t)) = at.and_then(|i| s.jobs.remove(i)) {
                s.samples -= 1;
                if !t.thinned {
                    s.whole_processes -= t.sample.processes.len();
                }
                s.losses.dropped.add(t.sample.ts_ms);
            }
        }
        drop(s);
        self.ready.notify_one();
    }

    /// Cuts the oldest whole baseline sample waiting to its stored form; false if there is
    /// none (detail samples are never thinned: they are stored whole). The newest job is never
    /// cut: on a host of more than [`WHOLE_PROCESSES`] processes the rules still see every
    /// sample whole while the store keeps up.
    fn thin_oldest(&self, s: &mut State) -> bool {
        let older = s.jobs.len().saturating_sub(1);
        let whole = s.jobs.iter_mut().take(older).find_map(|j| match j {
            Job::Sample(t) if !t.thinned && t.level == Level::Baseline => Some(t),
            _ => None,
        });
        let Some(t) = whole else {
            return false;
        };
        let before = t.sample.processes.len();
        t.sample = crate::collect::baseline_subset(&t.sample, self.top_processes);
        t.thinned = true;
        let ts = t.sample.ts_ms;
        s.whole_processes -= before;
        s.losses.thinned.add(ts);
        true
    }

    /// Queues anything but a sample.
    pub fn push(&self, job: Job) {
        let mut s = self.lock();
        if s.others >= OTHER_MAX {
            s.losses.other_dropped += 1;
            return;
        }
        s.others += 1;
        s.jobs.push_back(job);
        drop(s);
        self.ready.notify_one();
    }

    /// The sampling thread is done: the recorder takes what is left, then stops.
    pub fn stop(&self) {
        self.lock().stopped = true;
        self.ready.notify_all();
    }

    /// The next job, waiting up to `wait` for one; None when the queue is empty and stopped,
    /// or nothing came in time. `.1`: samples still waiting after this one.
    pub fn take(&self, wait: Duration) -> (Option<Job>, usize, bool) {
        let mut s = self.lock();
        if s.jobs.is_empty() && !s.stopped {
            s = self
                .ready
                .wait_timeout_while(s, wait, |s| s.jobs.is_empty() && !s.stopped)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let job = s.jobs.pop_front();
        match &job {
            Some(Job::Sample(t)) => {
                s.samples -= 1;
                if !t.thinned {
                    s.whole_processes -= t.sample.processes.len();
                }
            }
            Some(_) => s.others -= 1,
            None => {}
        }
        (job, s.samples, s.stopped && s.jobs.is_empty())
    }

    /// What was thinned or dropped since the last call.
    pub fn take_losses(&self) -> Losses {
        std::mem::take(&mut self.lock().losses)
    }

    /// The level and interval of the next sample, as the recorder last decided.
    pub fn next(&self) -> Next {
        self.lock().next
    }

    pub fn set_next(&self, next: Next) {
        self.lock().next = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(ts_ms: i64) -> Taken {
        Taken::empty_baseline(ts_ms, Duration::ZERO)
    }

    /// A baseline sample of `n` processes.
    fn taken_of(ts_ms: i64, n: usize) -> Taken {
        let mut t = taken(ts_ms);
        t.sample.processes = vec![crate::model::ProcessRow::default(); n];
        t
    }

    fn handoff(max: usize) -> Handoff {
        let mut c = Config::default();
        c.store.pending_max = max;
        Handoff::new(
            &c,
            Next {
                level: Level::Baseline,
                interval: Duration::from_secs(1),
            },
        )
    }

    #[test]
    fn a_full_queue_thins_then_drops_the_oldest_and_counts_both() {
        // Samples of a 1,000-process host: 8 fit whole.
        const KEPT_WHOLE: usize = WHOLE_PROCESSES / 1000;
        let h = handoff(KEPT_WHOLE + 5);
        for ts in 0..(KEPT_WHOLE as i64 + 8) {
            h.push_sample(taken_of(ts, 1000));
        }
        let l = h.take_losses();
        assert_eq!(l.dropped.count, 3, "{l:?}");
        assert_eq!((l.dropped.from_ms, l.dropped.to_ms), (Some(0), Some(2)));
        assert_eq!(l.thinned.count, 8, "{l:?}");
        let mut first = None;
        let mut n = 0;
        while let (Some(Job::Sample(t)), _, _) = h.take(Duration::ZERO) {
            first.get_or_insert(t.sample.ts_ms);
            n += 1;
        }
        assert_eq!((first, n), (Some(3), KEPT_WHOLE + 5));
        assert!(h.take_losses().is_empty());
    }

    #[test]
    fn small_samples_wait_whole_far_longer_than_large_ones() {
        // A 70-process host: two minutes of samples wait whole.
        let h = handoff(360);
        for ts in 0..114 {
            h.push_sample(taken_of(ts, 70));
        }
        assert!(h.take_losses().is_empty());
        h.push_sample(taken_of(114, 70));
        let l = h.take_losses();
        assert_eq!((l.thinned.count, l.thinned.from_ms), (1, Some(0)), "{l:?}");
        // Taking a sample frees its share of the budget.
        assert!(matches!(
            h.take(Duration::ZERO),
            (Some(Job::Sample(_)), 114, false)
        ));
        assert!(matches!(
            h.take(Duration::ZERO),
            (Some(Job::Sample(_)), 113, false)
        ));
        h.push_sample(taken_of(115, 70));
        assert!(h.take_losses().is_empty());
    }

    #[test]
    fn a_sample_larger_than_the_budget_is_thinned_only_once_another_follows() {
        let h = handoff(360);
        h.push_sample(taken_of(0, WHOLE_PROCESSES + 1));
        assert!(h.take_losses().is_empty());
        h.push_sample(taken_of(1, 10));
        let l = h.take_losses();
        assert_eq!((l.thinned.count, l.thinned.from_ms), (1, Some(0)), "{l:?}");
    }

    #[test]
    fn jobs_come_out_in_order_and_stop_ends_the_queue_after_them() {
        let h = handoff(10);
        h.push_sample(taken(1));
        h.push(Job::State("k", "v".into()));
        h.stop();
        assert!(matches!(
            h.take(Duration::ZERO),
            (Some(Job::Sample(_)), 0, false)
        ));
        assert!(matches!(
            h.take(Duration::ZERO),
            (Some(Job::State(..)), 0, true)
        ));
        assert!(matches!(h.take(Duration::from_secs(5)), (None, 0, true)));
    }
}
