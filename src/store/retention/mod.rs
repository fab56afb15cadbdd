//! Retention: what the record keeps and what goes, removed in small batches.
//!
//! Guarantees:
//! - An open incident's samples (from `opened − margin` on, and every sample linked to it in
//!   `incident_sample`) are never removed or changed, by any policy, not even the size cap.
//! - A closed incident's window `[opened − margin, closed + margin]` (and its linked samples)
//!   is pinned against age rules until `closed + margin` is older than `incidents`. Only the
//!   size cap may take it earlier, and only once no unpinned sample is left to take.
//! - A sample goes with all its rows: `process_sample`, `process_detail`, `connection`,
//!   `incident_sample`; process identities no sample refers to any more go too.
//! - Every change is written to `prune_log` in the same transaction as the change itself.
//! - Each batch is its own short `IMMEDIATE` transaction of at most about `batch_rows` rows,
//!   followed by a pause as long as the batch took, so the recorder's writer never waits for
//!   more than one batch. A run can be stopped between any two batches.
//! - Policies are structured ([`PrunePolicy`], [`RetentionPolicy`]): no SQL from users.

mod classify;
mod log;
mod pins;
mod plan;
mod policy;
mod prune;
mod queue;
mod read;
mod summary;
mod tally;

pub use plan::plan;
pub use policy::{LevelFilter, PrunePolicy, RetentionPolicy};
pub use prune::{Pruner, CAP_LOW_WATER, ORPHAN_SWEEP_EVERY};
pub use queue::{PruneJob, PruneQueue};
pub use summary::{Kept, Progress, ProgressFn, Removal, SizeInfo, Summary};
