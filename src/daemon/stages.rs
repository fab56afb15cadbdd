//! The sampler's own stopwatch: how long each stage of a pass took (collect, and the hand-off
//! to the recorder thread, which stores the sample and runs the rules), how many page faults and involuntary context switches the sampling thread took
//! meanwhile, so a late sample explains itself in the health log.
//!
//! Guarantees:
//! - The sample's timestamp is taken first, before any stage that can stall ([`PassClock::start`]).
//! - A sample that starts late by [`late_threshold`] or more gets one `late` health event
//!   naming the stages of the pass before it (the usual cause: it ran past the due time), the
//!   thread's wake-up delay, and the faults taken; `gap` events for missed slots carry the
//!   same text.
//! - Measuring costs two `getrusage` calls and five clock reads per pass; nothing allocates
//!   unless a sample is late.

use std::time::{Duration, Instant};

/// The stages of one pass, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Collect,
    /// Queueing the sample for the recorder thread (`handoff`): never waits for the disk.
    Queue,
}

const STAGES: [Stage; 2] = [Stage::Collect, Stage::Queue];

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Collect => "collect",
            Stage::Queue => "queue",
        }
    }
}

/// The calling thread's fault and context-switch counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counters {
    major_faults: i64,
    minor_faults: i64,
    involuntary_switches: i64,
}

impl Counters {
    fn now() -> Counters {
        // SAFETY: getrusage fills the struct it is given; RUSAGE_THREAD is Linux's
        // per-thread view. Zeroed is a valid rusage.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } != 0 {
            return Counters::default();
        }
        Counters {
            major_faults: ru.ru_majflt,
            minor_faults: ru.ru_minflt,
            involuntary_switches: ru.ru_nivcsw,
        }
    }

    fn since(self, before: Counters) -> Counters {
        Counters {
            major_faults: self.major_faults - before.major_faults,
            minor_faults: self.minor_faults - before.minor_faults,
            involuntary_switches: self.involuntary_switches - before.involuntary_switches,
        }
    }
}

/// What one pass took, stage by stage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PassTiming {
    /// When the pass was due, and when it started (the timestamp the sample carries).
    pub late: Duration,
    pub stages: [Duration; 2],
    /// When the pass ended, relative to its due time (how far it ran into the next slot).
    pub ended_after_due: Duration,
    faults: Counters,
}

impl PassTiming {
    pub fn stage(&self, s: Stage) -> Duration {
        self.stages[s as usize]
    }

    /// `collect 812ms, queue 0ms; 140 major fault(s), ...`
    pub fn describe(&self) -> String {
        let stages: Vec<String> = STAGES
            .iter()
            .map(|s| format!("{} {}", s.name(), ms(self.stage(*s))))
            .collect();
        format!(
            "{}; {} major fault(s), {} minor fault(s), {} involuntary switch(es)",
            stages.join(", "),
            self.faults.major_faults,
            self.faults.minor_faults,
            self.faults.involuntary_switches
        )
    }
}

/// Times one pass. Create it first thing in the pass; `mark` at the end of each stage.
pub struct PassClock {
    due: Instant,
    started: Instant,
    last: Instant,
    /// The sample's timestamp, taken before anything else.
    pub ts_ms: i64,
    counters: Counters,
    timing: PassTiming,
}

impl PassClock {
    pub fn start(due: Instant) -> PassClock {
        let started = Instant::now();
        let ts_ms = jiff::Timestamp::now().as_millisecond();
        PassClock {
            due,
            started,
            last: started,
            ts_ms,
            counters: Counters::now(),
            timing: PassTiming {
                late: started.saturating_duration_since(due),
                ..PassTiming::default()
            },
        }
    }

    pub fn late(&self) -> Duration {
        self.timing.late
    }

    /// Ends `stage` now.
    pub fn mark(&mut self, stage: Stage) {
        let now = Instant::now();
        self.timing.stages[stage as usize] += now - self.last;
        self.last = now;
    }

    pub fn finish(mut self) -> PassTiming {
        self.timing.ended_after_due = self.last.saturating_duration_since(self.due);
        self.timing.faults = Counters::now().since(self.counters);
        let _ = self.started;
        self.timing
    }
}

/// From which lateness a sample is written up in the health log: a quarter interval (250 ms
/// at 1 s), well inside the 1.5 × interval bar, well above a normal wake-up.
pub fn late_threshold(interval: Duration) -> Duration {
    interval / 4
}

/// Why the pass due at `due` started `late`: the pass before it (`previous`, due one
/// `interval` earlier) and the wake-up after it ended.
pub fn explain_late(late: Duration, previous: Option<&PassTiming>, interval: Duration) -> String {
    match previous {
        Some(p) if p.ended_after_due > interval => {
            let overran = p.ended_after_due - interval;
            let wake = late.saturating_sub(overran);
            format!(
                "started {} late: the pass before ran {} into this slot ({}), then the wake-up took {}",
                ms(late),
                ms(overran),
                p.describe(),
                ms(wake)
            )
        }
        Some(p) => format!(
            "started {} late: the pass before ended in time ({}); the thread woke late (CPU or reclaim delay)",
            ms(late),
            p.describe()
        ),
        None => format!("started {} late", ms(late)),
    }
}

/// Stage times are short: whole milliseconds say more than `format::human_ms`'s rounding to
/// seconds above one second.
fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(collect_ms: u64, ended_after_due_ms: u64) -> PassTiming {
        PassTiming {
            late: Duration::ZERO,
            stages: [Duration::from_millis(collect_ms), Duration::from_millis(2)],
            ended_after_due: Duration::from_millis(ended_after_due_ms),
            faults: Counters {
                major_faults: 140,
                minor_faults: 3,
                involuntary_switches: 9,
            },
        }
    }

    /// What a sample `late_ms` late says after the pass `prev`, at a 1 s interval.
    fn explain(late_ms: u64, prev: PassTiming) -> String {
        explain_late(
            Duration::from_millis(late_ms),
            Some(&prev),
            Duration::from_secs(1),
        )
    }

    fn assert_mentions(s: &str, parts: &[&str]) {
        for part in parts {
            assert!(s.contains(part), "{part:?} missing from: {s}");
        }
    }

    #[test]
    fn a_pass_that_overran_is_named_with_its_stages() {
        let s = explain(640, timing(1_400, 1_403));
        assert_mentions(
            &s,
            &[
                "ran 403ms into this slot",
                "collect 1400ms",
                "140 major fault(s)",
                "wake-up took 237ms",
            ],
        );
    }

    #[test]
    fn a_pass_that_ended_in_time_points_at_the_wake_up() {
        let s = explain(300, timing(20, 23));
        assert_mentions(&s, &["woke late"]);
    }

    #[test]
    fn the_clock_counts_each_stage_once_in_order() {
        let due = Instant::now();
        let mut c = PassClock::start(due);
        std::thread::sleep(Duration::from_millis(5));
        c.mark(Stage::Collect);
        c.mark(Stage::Queue);
        let t = c.finish();
        assert!(t.stage(Stage::Collect) >= Duration::from_millis(5));
        assert!(t.stage(Stage::Queue) < t.stage(Stage::Collect));
        assert!(t.ended_after_due >= t.stage(Stage::Collect));
    }
}
