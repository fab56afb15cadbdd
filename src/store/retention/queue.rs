//! The prune queue: where rules' prune actions go. The daemon's retention thread holds the
//! receiving end and runs the jobs in order, so a rule never waits for a pruning run.

use std::sync::mpsc;
use std::time::Duration;

use super::{PrunePolicy, RetentionPolicy};

/// What the retention thread is asked to do.
pub enum PruneJob {
    /// New settings and interval (SIGHUP).
    Reload(RetentionPolicy, Duration),
    Retention,
    Policy(PrunePolicy),
    DryRun(PrunePolicy),
    Stop,
}

/// Where rules send pruning: cheap to clone, never blocks the caller.
#[derive(Clone)]
pub struct PruneQueue(mpsc::Sender<PruneJob>);

impl PruneQueue {
    /// A queue sending to the retention thread that holds `tx`'s receiver.
    pub fn new(tx: mpsc::Sender<PruneJob>) -> PruneQueue {
        PruneQueue(tx)
    }

    /// Runs a rule's policy on the retention thread, after what is already queued.
    pub fn submit(&self, policy: PrunePolicy) {
        let _ = self.0.send(PruneJob::Policy(policy));
    }

    /// Logs what a policy would remove (a rule's `dry_run = true`).
    pub fn dry_run(&self, policy: PrunePolicy) {
        let _ = self.0.send(PruneJob::DryRun(policy));
    }

    /// Runs the configured retention now (a rule's `prune { policy = "retention" }`).
    pub fn run_retention(&self) {
        let _ = self.0.send(PruneJob::Retention);
    }
}
