//! Wake-ups between clock samples: a thread that waits on the kernel's pressure triggers and
//! the kernel log ([`collect::linux::psi_trigger`]) and tells the sampling thread, and the
//! schedule that decides when a wake-up becomes a sample.
//!
//! Guarantees:
//! - A wake-up is sampled at once, unless the previous sample is closer than
//!   `min_spacing`: then as soon as that has passed (wake-ups meanwhile join it). Nothing a
//!   wake-up causes is ever closer than `min_spacing` to the sample before it.
//! - After a wake-up sample, samples follow every `max(detail_interval, min_spacing)` for
//!   `follow` (reason `clock`); then the clock resumes one interval after the last sample.
//! - A wake-up's own sample is a detail sample (every process); follow-ups are at the
//!   schedule's level.
//! - A trigger that fires again within `rearm_after` of its previous firing is the same
//!   storm: it is counted, but wakes nothing.
//! - Every firing is counted per reason (`fired`), for `hogtrap status`.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::model::{Level, SampleReason};

use super::Control;

/// The wake-up schedule, kept by the sampling thread (`sampler`).
pub(super) struct WakeSchedule {
    min_spacing: Duration,
    follow: Duration,
    follow_every: Duration,
    rearm_after: Duration,
    last_sample: Option<Instant>,
    /// A wake-up waiting for `min_spacing` to pass.
    pending: Option<SampleReason>,
    follow_until: Option<Instant>,
    last_fire: BTreeMap<SampleReason, Instant>,
    /// Firings since start, per reason (including those that joined another or were part of
    /// a storm).
    pub fired: BTreeMap<SampleReason, u64>,
    /// Firings over the last day, per reason (loaded from the store at start: they span
    /// restarts), for `hogtrap status`.
    pub recent: crate::store::wake::RecentFirings,
    /// Whether `fired` changed since it was last written.
    pub fired_changed: bool,
}

impl WakeSchedule {
    pub fn new(config: &crate::config::Config) -> WakeSchedule {
        let w = &config.sampler.wake;
        WakeSchedule {
            min_spacing: w.min_spacing.std(),
            follow: w.follow.std(),
            follow_every: config
                .escalation
                .detail_interval
                .std()
                .max(w.min_spacing.std()),
            rearm_after: w.rearm_after.std(),
            last_sample: None,
            pending: None,
            follow_until: None,
            last_fire: BTreeMap::new(),
            fired: BTreeMap::new(),
            recent: Default::default(),
            fired_changed: false,
        }
    }

    /// A trigger fired at `now`; true if it will wake a sample.
    pub fn fire(&mut self, reason: SampleReason, now: Instant) -> bool {
        *self.fired.entry(reason).or_default() += 1;
        self.recent
            .add(reason, jiff::Timestamp::now().as_millisecond());
        self.fired_changed = true;
        let previous = self.last_fire.insert(reason, now);
        if previous.is_some_and(|p| now.saturating_duration_since(p) < self.rearm_after) {
            return false;
        }
        // Firings waiting for the same sample: it is named after the rarest (cpu pressure
        // is the common one).
        if self.pending.is_none_or(|p| rank(reason) > rank(p)) {
            self.pending = Some(reason);
        }
        true
    }

    /// When the next wake-up or follow-up sample is due, and why; None when none is.
    pub fn due(&self) -> Option<(Instant, SampleReason)> {
        let spaced = |at: Instant| match self.last_sample {
            Some(last) => at.max(last + self.min_spacing),
            None => at,
        };
        if let Some(reason) = self.pending {
            return Some((spaced(Instant::now()), reason));
        }
        let until = self.follow_until?;
        let next = self.last_sample? + self.follow_every;
        (next <= until).then_some((next, SampleReason::Clock))
    }

    /// A sample taken for `reason` ended at `at` (clock samples too: the spacing counts from
    /// every sample).
    pub fn sampled(&mut self, at: Instant, reason: SampleReason) {
        self.last_sample = Some(at);
        if reason != SampleReason::Clock {
            self.pending = None;
            self.follow_until = Some(at + self.follow);
        }
    }

    /// `fired` as stored for `hogtrap status`: `psi_cpu=3 oom=1`.
    pub fn fired_text(&self) -> String {
        self.fired
            .iter()
            .map(|(r, n)| format!("{r}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A wake-up's own sample keeps every process (detail): the moment it was taken for is the
/// one to see whole, whatever the top lists would have kept. Others keep the schedule's level.
pub(super) fn level(scheduled: Level, reason: SampleReason) -> Level {
    match reason {
        SampleReason::Clock => scheduled,
        _ => Level::Detail,
    }
}

/// Which reason names a sample that several firings woke.
fn rank(r: SampleReason) -> u8 {
    match r {
        SampleReason::Clock => 0,
        SampleReason::PsiCpu => 1,
        SampleReason::PsiIo => 2,
        SampleReason::PsiMemory => 3,
        SampleReason::Oom => 4,
    }
}

/// Arms the sources `[sampler.wake]` names and starts the thread that waits on them; returns
/// the start line and the triggers in force (for `hogtrap status`: `reason=text`, one a
/// line).
#[cfg(target_os = "linux")]
pub(super) fn start(
    config: &crate::config::Config,
    tx: mpsc::Sender<Control>,
) -> anyhow::Result<(String, String)> {
    use crate::collect::linux::psi_trigger::WakeSources;
    let mut sources = WakeSources::open(&config.sampler.wake);
    let line = sources.start_line().to_string();
    let armed = sources
        .armed
        .iter()
        .map(|a| format!("{}={}", a.reason, a.text))
        .collect::<Vec<_>>()
        .join("\n");
    if sources.is_empty() {
        return Ok((line, armed));
    }
    std::thread::Builder::new()
        .name("wake".into())
        .stack_size(256 << 10)
        .spawn(move || loop {
            let fired = sources.wait(-1);
            for n in std::mem::take(&mut sources.notices) {
                tracing::warn!("{n}");
            }
            for reason in fired {
                if tx.send(Control::Wake(reason)).is_err() {
                    return; // the sampler has stopped
                }
            }
            if sources.is_empty() {
                return;
            }
        })
        .map_err(|e| anyhow::anyhow!("cannot start the wake-up thread: {e}"))?;
    Ok((line, armed))
}

#[cfg(not(target_os = "linux"))]
pub(super) fn start(
    _config: &crate::config::Config,
    _tx: mpsc::Sender<Control>,
) -> anyhow::Result<(String, String)> {
    Ok((
        "wake-ups: none (pressure triggers need Linux): sampling on the clock only".into(),
        String::new(),
    ))
}

impl super::Recorder {
    /// Says what wakes the recorder (the start line, logged and recorded), and keeps the
    /// triggers in force for `hogtrap status`; returns the last day's firings as the previous
    /// run left them.
    pub(super) fn wake_started(
        &mut self,
        (line, armed): (String, String),
    ) -> crate::store::wake::RecentFirings {
        if line.contains("refused") || line.contains("none armed") {
            tracing::warn!("{line}");
        } else {
            tracing::info!("{line}");
        }
        self.event(crate::store::RecorderEvent::now("notice", line));
        self.wake_state("wake_triggers", &armed);
        self.wake_state("wake_fired", "");
        // The last day's firings go on from what the previous run recorded.
        match self.store.get_state("wake_fired_recent") {
            Ok(text) => crate::store::wake::RecentFirings::parse(text.as_deref().unwrap_or("")),
            Err(e) => {
                tracing::warn!("cannot read the last day's wake-ups: {e}");
                Default::default()
            }
        }
    }

    pub(super) fn wake_state(&mut self, key: &str, value: &str) {
        if let Err(e) = self.store.set_state(key, value) {
            self.state_errors += 1;
            if self.state_errors == 1 {
                tracing::warn!("cannot record {key} for hogtrap status: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn schedule(min_spacing_ms: u64, follow_ms: u64, rearm_ms: u64) -> WakeSchedule {
        let mut c = Config::default();
        c.sampler.wake.min_spacing = crate::config::Duration::from_millis(min_spacing_ms);
        c.sampler.wake.follow = crate::config::Duration::from_millis(follow_ms);
        c.sampler.wake.rearm_after = crate::config::Duration::from_millis(rearm_ms);
        WakeSchedule::new(&c)
    }

    #[test]
    fn a_wake_waits_for_the_spacing_and_then_follows_at_the_detail_interval() {
        let mut w = schedule(2000, 4000, 0);
        let t0 = Instant::now();
        w.sampled(t0, SampleReason::Clock);
        assert!(w.due().is_none());
        assert!(w.fire(SampleReason::PsiCpu, t0));
        let (at, why) = w.due().unwrap();
        assert_eq!(why, SampleReason::PsiCpu);
        assert!(at >= t0 + Duration::from_secs(2));
        // A second firing joins the pending one, which is named after the rarer.
        assert!(w.fire(SampleReason::PsiIo, t0));
        assert_eq!(w.due().unwrap().1, SampleReason::PsiIo);
        assert!(w.fire(SampleReason::PsiCpu, t0));
        assert_eq!(w.due().unwrap().1, SampleReason::PsiIo);
        w.sampled(at, SampleReason::PsiIo);
        // Follow-ups every max(1s detail, 2s spacing) until 4s after the wake sample.
        assert_eq!(
            w.due(),
            Some((at + Duration::from_secs(2), SampleReason::Clock))
        );
        w.sampled(at + Duration::from_secs(2), SampleReason::Clock);
        assert_eq!(
            w.due(),
            Some((at + Duration::from_secs(4), SampleReason::Clock))
        );
        w.sampled(at + Duration::from_secs(4), SampleReason::Clock);
        assert_eq!(w.due(), None);
        assert_eq!(w.fired_text(), "psi_cpu=2 psi_io=1");
    }

    #[test]
    fn a_storm_wakes_once_until_it_has_been_quiet_for_rearm_after() {
        let mut w = schedule(1000, 0, 60_000);
        let t0 = Instant::now();
        assert!(w.fire(SampleReason::PsiMemory, t0));
        w.sampled(t0, SampleReason::PsiMemory);
        for s in 1..100 {
            assert!(!w.fire(SampleReason::PsiMemory, t0 + Duration::from_secs(2 * s)));
        }
        assert!(w.due().is_none());
        // Another resource is not part of this storm.
        assert!(w.fire(SampleReason::PsiIo, t0 + Duration::from_secs(1)));
        // Quiet for longer than rearm_after: wakes again.
        assert!(w.fire(SampleReason::PsiMemory, t0 + Duration::from_secs(198 + 61)));
        assert_eq!(w.fired[&SampleReason::PsiMemory], 101);
    }
}
