//! `prune_log`: every change written in the same transaction as the change itself.

use std::collections::HashMap;

use rusqlite::params;

use super::tally::Tally;
use crate::model::TimestampMs;

/// `prune_log` rows of one run: one per (reason, table), inserted with the first batch and
/// updated by later ones, always in the batch's own transaction.
pub(super) struct PruneLog {
    ts_ms: TimestampMs,
    policy: String,
    reasons: Vec<String>,
    ids: HashMap<(usize, &'static str, &'static str), i64>,
}

impl PruneLog {
    pub(super) fn new(ts_ms: TimestampMs, policy: String, reasons: Vec<String>) -> PruneLog {
        PruneLog {
            ts_ms,
            policy,
            reasons,
            ids: HashMap::new(),
        }
    }

    pub(super) fn write(
        &mut self,
        tx: &rusqlite::Transaction,
        batch: &Tally,
    ) -> rusqlite::Result<()> {
        for (&(reason, action, table), &(rows, from, to)) in &batch.rows {
            let key = (reason, action, table);
            let text = if action == "demote" {
                format!("{} (level changed, not removed)", self.reasons[reason])
            } else {
                self.reasons[reason].clone()
            };
            let (from, to) = if table == "process" {
                (None, None)
            } else {
                (Some(from), Some(to))
            };
            match self.ids.get(&key) {
                Some(&id) => {
                    tx.prepare_cached(
                        "UPDATE prune_log SET rows = rows + ?2, from_ms = min(from_ms, ?3),
                         to_ms = max(to_ms, ?4) WHERE id = ?1",
                    )?
                    .execute(params![id, rows as i64, from, to])?;
                }
                None => {
                    tx.prepare_cached(
                        "INSERT INTO prune_log (ts_ms, policy, reason, tbl, rows, from_ms, to_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )?
                    .execute(params![
                        self.ts_ms,
                        self.policy,
                        text,
                        table,
                        rows as i64,
                        from,
                        to
                    ])?;
                    self.ids.insert(key, tx.last_insert_rowid());
                }
            }
        }
        Ok(())
    }
}
