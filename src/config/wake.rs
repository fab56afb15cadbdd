//! `[sampler.wake]`: what wakes the recorder between two clock samples (kernel pressure
//! triggers, a new OOM kill) and how often it may.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{at_least, bad, Duration, Invalid, SHORTEST};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Wake {
    /// Wake-ups at all; off: the clock only, as before.
    pub enabled: bool,
    /// The CPU pressure trigger (`/proc/pressure/cpu`).
    pub cpu: PsiTrigger,
    /// The memory pressure trigger (`/proc/pressure/memory`).
    pub memory: PsiTrigger,
    /// The I/O pressure trigger (`/proc/pressure/io`).
    pub io: PsiTrigger,
    /// A new OOM kill in the kernel log wakes the recorder.
    pub oom: bool,
    /// No sample is taken sooner than this after the previous one because of a wake-up: a
    /// storm of wake-ups never samples faster.
    pub min_spacing: Duration,
    /// After a wake-up sample, samples follow every `escalation.detail_interval` (never closer
    /// than `min_spacing`) for this long; "0s": just the one sample.
    pub follow: Duration,
    /// A trigger that fired within this long of its previous firing belongs to the same
    /// storm and does not wake the recorder again: a 5-minute storm wakes it once. "0s":
    /// every firing wakes it (still no faster than `min_spacing`).
    pub rearm_after: Duration,
    /// Where the pressure files are (tests point this elsewhere to see a refusal).
    pub psi_dir: PathBuf,
}

/// One PSI trigger: wake when tasks stalled on the resource for `threshold` in any `window`.
/// Written whole (`stall`, `threshold`, `window`; `enabled` defaults to true).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PsiTrigger {
    #[serde(default = "on")]
    pub enabled: bool,
    /// `some` (at least one task stalled) or `full` (all non-idle tasks stalled at once).
    pub stall: Stall,
    pub threshold: Duration,
    /// 500ms..10s; without CAP_SYS_RESOURCE the kernel takes only multiples of 2s, and a
    /// window that is not one is widened (threshold in proportion), said at start.
    pub window: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stall {
    Some,
    Full,
}

impl Stall {
    pub fn as_str(self) -> &'static str {
        match self {
            Stall::Some => "some",
            Stall::Full => "full",
        }
    }
}

fn on() -> bool {
    true
}

impl PsiTrigger {
    const fn new(stall: Stall, threshold_ms: u64, window_ms: u64) -> PsiTrigger {
        PsiTrigger {
            enabled: true,
            stall,
            threshold: Duration::from_millis(threshold_ms),
            window: Duration::from_millis(window_ms),
        }
    }

    fn validate(&self, key: &str) -> Result<(), Invalid> {
        let w = self.window.as_millis();
        if !(500..=10_000).contains(&w) {
            return bad(
                &format!("sampler.wake.{key}"),
                format!(
                    "window must be between 500ms and 10s (the kernel's range), got {}",
                    self.window
                ),
            );
        }
        let t = self.threshold.as_millis();
        if t == 0 || t > w {
            return bad(
                &format!("sampler.wake.{key}"),
                format!(
                    "threshold must be more than 0s and at most the window ({}), got {}",
                    self.window, self.threshold
                ),
            );
        }
        Ok(())
    }
}

impl Default for Wake {
    fn default() -> Wake {
        Wake {
            enabled: true,
            // A quarter of every 2 s some task waited for a CPU: a box overcommitted, not a
            // build using the cores it has.
            cpu: PsiTrigger::new(Stall::Some, 500, 2000),
            // A tenth of every 2 s in reclaim or refaults: memory is short.
            memory: PsiTrigger::new(Stall::Some, 200, 2000),
            // A quarter of every 2 s with every task waiting on I/O at once.
            io: PsiTrigger::new(Stall::Full, 500, 2000),
            oom: true,
            min_spacing: Duration::from_secs(1),
            follow: Duration::from_secs(4),
            rearm_after: Duration::from_secs(60),
            psi_dir: PathBuf::from("/proc/pressure"),
        }
    }
}

impl Wake {
    pub fn validate(&self) -> Result<(), Invalid> {
        self.cpu.validate("cpu")?;
        self.memory.validate("memory")?;
        self.io.validate("io")?;
        at_least("sampler.wake.min_spacing", self.min_spacing, SHORTEST)?;
        if self.psi_dir.as_os_str().is_empty() {
            return bad("sampler.wake.psi_dir", "must not be empty");
        }
        Ok(())
    }
}
