//! Rules' pruning policies, handed to the retention thread.

use std::time::Duration;

use super::Actions;
use crate::store::retention::{LevelFilter, PrunePolicy};
use crate::store::RecorderEvent;

impl Actions {
    /// Hands a rule's pruning policy to the retention thread (never run on the sampling path).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn prune(
        &self,
        rule: &str,
        policy: &str,
        older_than: Option<Duration>,
        load_below: Option<f64>,
        keep_incidents: bool,
        dry_run: bool,
        events: &mut Vec<RecorderEvent>,
    ) {
        let Some(queue) = &self.prune else {
            tracing::warn!("rule {rule}: prune {policy}: no retention thread here");
            return;
        };
        if policy == "retention" {
            queue.run_retention();
            return;
        }
        let Some(p) = prune_policy(policy, older_than, load_below, keep_incidents) else {
            // The engine checks this; a policy without an age would prune everything.
            tracing::error!("rule {rule}: prune {policy}: older_than is required");
            return;
        };
        let older_than = p.older_than;
        events.push(RecorderEvent::now(
            "notice",
            format!(
                "rule {rule} runs prune policy {policy} (older than {}s{}){}",
                older_than.as_secs(),
                load_below
                    .map(|l| format!(", load below {l}"))
                    .unwrap_or_default(),
                if dry_run { " as a dry run" } else { "" }
            ),
        ));
        if dry_run {
            queue.dry_run(p);
        } else {
            queue.submit(p);
        }
    }
}

/// The retention policy a rule's `prune { ... }` stands for (structured options, never SQL).
/// `None` without `older_than`: a policy without an age would prune everything.
pub fn prune_policy(
    policy: &str,
    older_than: Option<Duration>,
    load_below: Option<f64>,
    keep_incidents: bool,
) -> Option<PrunePolicy> {
    Some(PrunePolicy {
        name: policy.to_string(),
        older_than: older_than?,
        level: LevelFilter::Any,
        load_below,
        keep_incidents,
    })
}
