//! What a pruning run applies: a rule's [`PrunePolicy`] or the configured
//! [`RetentionPolicy`]. Structured values, no SQL from users.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::format::human_ms;

/// Which samples a pruning policy applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LevelFilter {
    Baseline,
    Detail,
    #[default]
    Any,
}

impl LevelFilter {
    pub(super) fn matches(self, level: i64) -> bool {
        match self {
            LevelFilter::Baseline => level == 0,
            LevelFilter::Detail => level == 1,
            LevelFilter::Any => true,
        }
    }
}

/// A pruning policy a rule runs: "remove samples older than `older_than`, of `level`, whose
/// load1 stayed under `load_below`". The seed's `DELETE FROM savetop WHERE Load<1.4` on
/// day-old rows is `PrunePolicy { older_than: 1 day, load_below: Some(1.4), .. }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrunePolicy {
    /// Written to `prune_log.policy`.
    pub name: String,
    /// Only samples older than this (measured from `now`).
    pub older_than: Duration,
    pub level: LevelFilter,
    /// Only samples whose `load1` is below this (the seed's `Load`).
    pub load_below: Option<f64>,
    /// Leave closed incidents' pinned windows alone (open incidents are always left alone).
    pub keep_incidents: bool,
}

impl PrunePolicy {
    /// Every level, any load, incident windows kept.
    pub fn older_than(name: impl Into<String>, older_than: Duration) -> PrunePolicy {
        PrunePolicy {
            name: name.into(),
            older_than,
            level: LevelFilter::Any,
            load_below: None,
            keep_incidents: true,
        }
    }

    pub(super) fn reason(&self) -> String {
        let mut r = format!(
            "{} older than {}",
            match self.level {
                LevelFilter::Baseline => "baseline samples",
                LevelFilter::Detail => "detail samples",
                LevelFilter::Any => "samples",
            },
            human_ms(self.older_than.as_millis() as i64)
        );
        if let Some(x) = self.load_below {
            r.push_str(&format!(" with load1 < {x}"));
        }
        if !self.keep_incidents {
            r.push_str(" (closed incidents too)");
        }
        r
    }
}

/// The configured retention (`[retention]`), in store terms.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionPolicy {
    pub baseline: Duration,
    pub detail: Duration,
    pub incidents: Duration,
    pub incident_margin: Duration,
    pub max_size_bytes: u64,
    pub batch_rows: usize,
    /// Processes kept by each resource when a detail sample becomes baseline.
    pub top_processes: usize,
    /// (after, bucket): baseline samples older than `after` thinned to one per `bucket`.
    pub downsample: Option<(Duration, Duration)>,
}

impl RetentionPolicy {
    pub fn from_config(c: &crate::config::Config) -> RetentionPolicy {
        let r = &c.retention;
        RetentionPolicy {
            baseline: r.baseline.std(),
            detail: r.detail.std(),
            incidents: r.incidents.std(),
            incident_margin: r.incident_margin.std(),
            max_size_bytes: r.max_size.0,
            batch_rows: r.batch_rows,
            top_processes: c.sampler.top_processes,
            downsample: r
                .downsample_after
                .zip(r.downsample_to)
                .map(|(a, t)| (a.std(), t.std())),
        }
    }
}
