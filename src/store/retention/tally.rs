//! Tallies of what goes, by reason and table, and the SQL that removes a sample's rows.

use std::collections::BTreeMap;

use super::Removal;

#[derive(Default)]
pub(super) struct Tally {
    /// (reason index, action, table) → (rows, from, to)
    pub(super) rows: BTreeMap<(usize, &'static str, &'static str), (u64, i64, i64)>,
}

impl Tally {
    pub(super) fn add(
        &mut self,
        reason: usize,
        action: &'static str,
        table: &'static str,
        n: u64,
        ts: i64,
    ) {
        if n == 0 {
            return;
        }
        let e = self
            .rows
            .entry((reason, action, table))
            .or_insert((0, ts, ts));
        e.0 += n;
        e.1 = e.1.min(ts);
        e.2 = e.2.max(ts);
    }

    pub(super) fn removals(&self, policy: &str, reasons: &[String]) -> Vec<Removal> {
        self.rows
            .iter()
            .map(|(&(reason, action, table), &(rows, from, to))| Removal {
                policy: policy.to_string(),
                reason: reasons[reason].clone(),
                action,
                table,
                rows,
                from_ms: Some(from),
                to_ms: Some(to),
            })
            .collect()
    }
}

/// The tables a sample's rows live in, child tables first.
pub(super) const CHILD_TABLES: [&str; 5] = [
    "process_sample",
    "process_detail",
    "connection",
    "process_exit",
    "incident_sample",
];

pub(super) const TRIM_SQL: &str = "DELETE FROM process_sample WHERE sample_id = ?1 AND process_id NOT IN (
        SELECT process_id FROM (
            SELECT process_id,
                   row_number() OVER (ORDER BY cpu_pct_x100 DESC) AS r_cpu,
                   row_number() OVER (ORDER BY rss_kib DESC) AS r_mem,
                   row_number() OVER (ORDER BY read_bps + write_bps DESC) AS r_io,
                   row_number() OVER (ORDER BY coalesce(net_tx_bps, 0) + coalesce(net_rx_bps, 0) DESC) AS r_net
            FROM process_sample WHERE sample_id = ?1)
        WHERE r_cpu <= ?2 OR r_mem <= ?2 OR r_io <= ?2 OR r_net <= ?2)";

pub(super) fn child_delete_sql(table: &str) -> &'static str {
    match table {
        "process_sample" => "DELETE FROM process_sample WHERE sample_id = ?1",
        "process_detail" => "DELETE FROM process_detail WHERE sample_id = ?1",
        "connection" => "DELETE FROM connection WHERE sample_id = ?1",
        "process_exit" => "DELETE FROM process_exit WHERE sample_id = ?1",
        _ => "DELETE FROM incident_sample WHERE sample_id = ?1",
    }
}

pub(super) fn child_count_sql(table: &str) -> &'static str {
    match table {
        "process_sample" => "SELECT count(*) FROM process_sample WHERE sample_id = ?1",
        "process_detail" => "SELECT count(*) FROM process_detail WHERE sample_id = ?1",
        "connection" => "SELECT count(*) FROM connection WHERE sample_id = ?1",
        "process_exit" => "SELECT count(*) FROM process_exit WHERE sample_id = ?1",
        _ => "SELECT count(*) FROM incident_sample WHERE sample_id = ?1",
    }
}
