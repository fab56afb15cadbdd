//! What a run reports: what it removed (or would), what stays, the sizes, and its progress.

use serde::Serialize;

use crate::model::TimestampMs;

/// What one run removed (or, for a plan, would remove) and what stays.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// `retention`, `size_cap` or a rule's policy name.
    pub policy: String,
    pub dry_run: bool,
    pub now_ms: TimestampMs,
    /// By reason, then table.
    pub removed: Vec<Removal>,
    pub kept: Kept,
    pub size: SizeInfo,
    /// False when the run was stopped before it finished.
    pub complete: bool,
    pub notes: Vec<String>,
}

impl Summary {
    /// Rows removed (or demoted) from `table` for any reason.
    pub fn rows(&self, table: &str) -> u64 {
        self.removed
            .iter()
            .filter(|r| r.table == table)
            .map(|r| r.rows)
            .sum()
    }

    /// Rows of `table` for reasons that contain `reason`.
    pub fn rows_for(&self, reason: &str, table: &str) -> u64 {
        self.removed
            .iter()
            .filter(|r| r.table == table && r.reason.contains(reason))
            .map(|r| r.rows)
            .sum()
    }

    /// Appends a later step of the same run: its removals, and what stays after it.
    pub(super) fn merge(&mut self, other: Summary) {
        if !other.removed.is_empty() {
            self.kept = other.kept;
        }
        self.removed.extend(other.removed);
        self.notes.extend(other.notes);
        self.complete &= other.complete;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Removal {
    /// `retention`, `size_cap` or the rule's policy name, as in `prune_log.policy`.
    pub policy: String,
    pub reason: String,
    /// `delete`, or `demote` (a detail sample made baseline: `sample` rows are changed, not
    /// removed).
    pub action: &'static str,
    pub table: &'static str,
    pub rows: u64,
    /// Time span of the samples concerned.
    pub from_ms: Option<TimestampMs>,
    pub to_ms: Option<TimestampMs>,
}

/// Samples that stay, by level, and how many of them incident windows pin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Kept {
    pub baseline_samples: u64,
    pub detail_samples: u64,
    /// In closed incidents' windows still within `incidents`.
    pub pinned_samples: u64,
    /// In open incidents' windows: never removed.
    pub open_incident_samples: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SizeInfo {
    pub file_bytes_before: u64,
    /// Pages in use (file minus free pages).
    pub used_bytes_before: u64,
    pub file_bytes_after: u64,
    pub used_bytes_after: u64,
    pub max_size_bytes: u64,
}

/// Where a run is, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub phase: &'static str,
    pub done: u64,
    pub total: u64,
}

/// Called after every batch; returning false stops the run there.
pub type ProgressFn<'a> = &'a mut dyn FnMut(Progress) -> bool;
