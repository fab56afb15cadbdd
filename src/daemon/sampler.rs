//! The sampling thread: keeps the schedule, takes each sample and hands it to the recorder
//! thread. It never touches the disk: no store, no rules, no actions, so a stalled disk (a
//! write or fsync taking seconds) delays only the writes, never the next sample.
//!
//! Guarantees:
//! - Samples are due at `start + k × interval` (the interval the recorder last asked for: a
//!   capture shortens it); a slow pass never shifts the schedule. A pass that starts late
//!   records how late; missed slots are recorded as a gap.
//! - The sample's timestamp is taken first, before anything that can stall.
//! - What it has to say (late samples, gaps, collector notices, wake-up counts) goes through
//!   the same queue as the samples ([`handoff`](super::handoff)), in order.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use crate::collect::Collector;
use crate::config::Config;
use crate::model::SampleReason;
use crate::store::RecorderEvent;

use super::handoff::{Handoff, Job, Taken};
use super::stages::{self, PassClock, PassTiming, Stage};
use super::wake::{self, WakeSchedule};
use super::Control;

pub(super) struct Sampler {
    collector: Collector,
    host_name: String,
    /// `[sampler.wake]` as armed at start (a change takes a restart).
    wake_config: crate::config::Wake,
    wake: WakeSchedule,
    handoff: Arc<Handoff>,
    /// The previous pass's stage timings, to explain a late one (`stages`).
    last_pass: Option<PassTiming>,
}

impl Sampler {
    pub fn new(
        config: &Config,
        handoff: Arc<Handoff>,
        recent_wakes: crate::store::wake::RecentFirings,
    ) -> Sampler {
        let mut s = Sampler {
            collector: Collector::new(config.sampler.source),
            host_name: crate::collect::host_name(&config.sampler),
            wake_config: config.sampler.wake.clone(),
            wake: WakeSchedule::new(config),
            handoff,
            last_pass: None,
        };
        s.wake.recent = recent_wakes;
        s.report_notices();
        s
    }

    fn event(&self, e: RecorderEvent) {
        self.handoff.push(Job::Event(e));
    }

    /// What a source cannot do (no permission, not supported): said once, logged and recorded.
    fn report_notices(&mut self) {
        for n in self.collector.take_notices() {
            tracing::warn!("{n}");
            self.event(RecorderEvent::now("notice", n));
        }
    }

    pub fn run(mut self, rx: mpsc::Receiver<Control>) {
        // The schedule: each pass is due one interval after the previous pass was due (the
        // interval is shorter while a capture runs), so a slow pass never shifts it.
        super::protect::prefault_heap(); // this thread's arena: what every pass allocates from
        let mut due = Instant::now() + self.handoff.next().interval;
        // When the last sample was due (or taken, after a wake-up): a new interval from the
        // recorder counts from there.
        let mut last_due = Instant::now();
        loop {
            let now = Instant::now();
            let next = self.wake.due().map_or(due, |(at, _)| at.min(due));
            let msg = if next > now {
                rx.recv_timeout(next - now)
            } else {
                rx.try_recv().map_err(|e| match e {
                    mpsc::TryRecvError::Empty => mpsc::RecvTimeoutError::Timeout,
                    mpsc::TryRecvError::Disconnected => mpsc::RecvTimeoutError::Disconnected,
                })
            };
            match msg {
                Ok(Control::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Ok(Control::Reload(c)) => {
                    if self.reload(&c) {
                        due = Instant::now() + c.sampler.interval.std();
                    }
                    self.handoff.push(Job::Reload(c));
                    continue;
                }
                Ok(Control::Next) => {
                    // Never in the past: the change is no reason to count a slot as missed.
                    due = (last_due + self.handoff.next().interval).max(Instant::now());
                    continue;
                }
                Ok(Control::Wake(reason)) => {
                    let wakes = self.wake.fire(reason, Instant::now());
                    tracing::debug!("{reason} fired (wakes a sample: {wakes})");
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if let Some((taken, next_clock)) = self.wake_pass() {
                last_due = taken;
                due = next_clock; // the clock resumes one interval after a wake-up's sample
                continue;
            }
            let interval = self.handoff.next().interval;
            let started = Instant::now();
            let late = started.saturating_duration_since(due);
            let mut missed = 0;
            if late >= interval {
                // The pass could not start for whole intervals: record the hole, then get
                // back on the grid.
                missed = (late.as_nanos() / interval.as_nanos()) as u32;
                let now_ms = jiff::Timestamp::now().as_millisecond();
                let why = stages::explain_late(late, self.last_pass.as_ref(), interval);
                self.event(RecorderEvent {
                    from_ms: Some(now_ms - late.as_millis() as i64),
                    to_ms: Some(now_ms),
                    count: Some(missed as i64),
                    ..RecorderEvent::now("gap", format!("{missed} sample(s) missed: {why}"))
                });
                due += interval * missed;
            }
            let clock = PassClock::start(due);
            self.pass(clock, SampleReason::Clock, started, missed);
            self.wake.sampled(Instant::now(), SampleReason::Clock);
            last_due = due;
            due += self.handoff.next().interval;
        }
    }

    /// Whether the baseline interval changed (the schedule restarts from now).
    fn reload(&mut self, new: &Config) -> bool {
        if new.sampler.wake != self.wake_config {
            let msg =
                "SIGHUP: [sampler.wake] changed; that takes a restart, the running triggers stay";
            tracing::warn!("{msg}");
            self.event(RecorderEvent::now("notice", msg));
        }
        self.host_name = crate::collect::host_name(&new.sampler);
        let before = self.handoff.next();
        // The recorder sets the next interval when it takes the reload; until then the
        // schedule runs on the new baseline (a capture in progress keeps its own).
        !matches!(before.level, crate::model::Level::Detail)
            && before.interval != new.sampler.interval.std()
    }

    /// One pass: collect and hand over. The sample's timestamp is the clock's.
    fn pass(&mut self, mut clock: PassClock, reason: SampleReason, started: Instant, missed: u32) {
        let level = wake::level(self.handoff.next().level, reason);
        let mut sample = self.collector.sample(level, &self.host_name);
        sample.ts_ms = clock.ts_ms;
        sample.late_ms = clock.late().as_millis() as u64;
        sample.reason = reason;
        clock.mark(Stage::Collect);
        self.report_notices();
        self.handoff.push_sample(Taken {
            sample,
            level,
            thinned: false,
            started,
            queued: Instant::now(),
            missed,
        });
        clock.mark(Stage::Queue);
        self.note_pass(clock.finish());
    }

    /// After each pass: a late start is written up with the pass before it; the timing is
    /// kept to explain the next one.
    fn note_pass(&mut self, timing: PassTiming) {
        let interval = self.handoff.next().interval;
        if timing.late >= stages::late_threshold(interval) {
            let why = stages::explain_late(timing.late, self.last_pass.as_ref(), interval);
            let this = format!("sample {why}; its own pass: {}", timing.describe());
            tracing::warn!("{this}");
            self.event(RecorderEvent {
                count: Some(timing.late.as_millis() as i64),
                ..RecorderEvent::now("late", this)
            });
        }
        self.last_pass = Some(timing);
    }

    /// Takes the wake-up or follow-up sample if one is due; returns when it started and when
    /// the next clock sample is then due (one interval after that).
    fn wake_pass(&mut self) -> Option<(Instant, Instant)> {
        let (at, reason) = self.wake.due().filter(|(at, _)| *at <= Instant::now())?;
        let started = Instant::now();
        let clock = PassClock::start(at);
        if reason != SampleReason::Clock {
            tracing::debug!("woken by {reason}");
        }
        self.pass(clock, reason, started, 0);
        // Spacing counts from the end of the pass: the next sample's timestamp is then at
        // least `min_spacing` after this one's, however long collection took to start.
        let ended = Instant::now();
        self.wake.sampled(ended, reason);
        if self.wake.fired_changed {
            self.wake.fired_changed = false;
            self.handoff
                .push(Job::State("wake_fired", self.wake.fired_text()));
            self.handoff
                .push(Job::State("wake_fired_recent", self.wake.recent.text()));
        }
        // The clock resumes one interval after this sample's start, as after a clock pass: a
        // pass slowed by distress (a detail collection under thrash can take a second) must
        // not push the next clock sample out by its own length. If it overran, the next pass
        // starts at once, or counts the slots it missed.
        Some((started, started + self.handoff.next().interval))
    }
}
