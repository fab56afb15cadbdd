//! Plans (dry runs): read-only.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection};

use super::classify::{policy_rules, reasons, retention_rules, Classifier, Decision, Fate};
use super::pins::Pins;
use super::read::{census, count_before, fetch_chunk, sizes};
use super::tally::{child_count_sql, Tally, CHILD_TABLES, TRIM_SQL};
use super::{
    Kept, Progress, ProgressFn, PrunePolicy, Removal, RetentionPolicy, SizeInfo, Summary,
    CAP_LOW_WATER,
};
use crate::format::bytes;
use crate::model::TimestampMs;
use crate::store::{Result, StoreError};

/// What would be removed now, by reason and table, and what would stay: by the configured
/// retention (`policy` `None`; the size cap part is an estimate) or by a rule's prune policy.
/// Read-only: `conn` may be a read-only connection.
pub fn plan(
    conn: &Connection,
    r: &RetentionPolicy,
    policy: Option<&PrunePolicy>,
    now: TimestampMs,
    progress: ProgressFn,
) -> Result<Summary> {
    let path = db_path(conn);
    let mut s = plan_rules(conn, r, policy, now, progress).map_err(|e| sql_err(&path, e))?;
    if policy.is_none() {
        estimate_size_cap(conn, r, &mut s).map_err(|e| sql_err(&path, e))?;
    }
    Ok(s)
}

fn plan_rules(
    conn: &Connection,
    r: &RetentionPolicy,
    policy: Option<&PrunePolicy>,
    now: TimestampMs,
    progress: ProgressFn,
) -> rusqlite::Result<Summary> {
    let path = PathBuf::from(db_path(conn));
    let pins = Pins::load(conn, r, now)?;
    let rules = match policy {
        Some(p) => policy_rules(p, now),
        None => retention_rules(r, now),
    };
    let reasons = reasons(&rules, r, policy);
    let mut cls = Classifier::new(rules, &pins);
    let until = cls.scan_until();
    let total = count_before(conn, until)?;
    let (file, used) = sizes(conn, &path)?;
    let mut kept = census(conn, &pins)?;
    let mut tally = Tally::default();
    let mut cursor = (i64::MIN, i64::MIN);
    let mut done = 0u64;
    let mut complete = true;
    loop {
        let chunk = fetch_chunk(conn, cursor, until)?;
        if let Some(last) = chunk.last() {
            cursor = (last.ts_ms, last.id);
        }
        let end = chunk.is_empty();
        done += chunk.len() as u64;
        for m in chunk {
            cls.push(m);
        }
        if end {
            cls.finish();
        }
        while let Some(d) = cls.out.pop_front() {
            plan_one(conn, r, &d, &mut tally, &mut kept)?;
        }
        if !progress(Progress {
            phase: "planning",
            done,
            total,
        }) {
            complete = false;
            break;
        }
        if end {
            break;
        }
    }
    Ok(Summary {
        policy: policy.map_or("retention".into(), |p| p.name.clone()),
        dry_run: true,
        now_ms: now,
        removed: tally.removals(
            &policy.map_or("retention".to_string(), |p| p.name.clone()),
            &reasons,
        ),
        kept,
        size: SizeInfo {
            file_bytes_before: file,
            used_bytes_before: used,
            file_bytes_after: file,
            used_bytes_after: used,
            max_size_bytes: r.max_size_bytes,
        },
        complete,
        notes: Vec::new(),
    })
}

fn plan_one(
    conn: &Connection,
    r: &RetentionPolicy,
    d: &Decision,
    tally: &mut Tally,
    kept: &mut Kept,
) -> rusqlite::Result<()> {
    let count = |table: &str| -> rusqlite::Result<u64> {
        conn.prepare_cached(child_count_sql(table))?
            .query_row([d.meta.id], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
    };
    match d.fate {
        Fate::Keep => {}
        Fate::Delete(reason) => {
            for t in CHILD_TABLES {
                tally.add(reason, "delete", t, count(t)?, d.meta.ts_ms);
            }
            tally.add(reason, "delete", "sample", 1, d.meta.ts_ms);
            if d.meta.level == 1 {
                kept.detail_samples -= 1;
            } else {
                kept.baseline_samples -= 1;
            }
            if d.pinned {
                kept.pinned_samples = kept.pinned_samples.saturating_sub(1);
            }
        }
        Fate::Demote(reason) => {
            for t in ["process_detail", "connection"] {
                tally.add(reason, "delete", t, count(t)?, d.meta.ts_ms);
            }
            let trimmed: i64 = conn
                .prepare_cached(&TRIM_SQL.replacen(
                    "DELETE FROM process_sample",
                    "SELECT count(*) FROM process_sample",
                    1,
                ))?
                .query_row(params![d.meta.id, r.top_processes as i64], |r| r.get(0))?;
            tally.add(
                reason,
                "delete",
                "process_sample",
                trimmed as u64,
                d.meta.ts_ms,
            );
            tally.add(reason, "demote", "sample", 1, d.meta.ts_ms);
            kept.detail_samples -= 1;
            kept.baseline_samples += 1;
        }
    }
    Ok(())
}

/// After the age rules: how far over the cap the data would still be, and about how many of
/// the oldest samples would go for it.
fn estimate_size_cap(
    conn: &Connection,
    r: &RetentionPolicy,
    s: &mut Summary,
) -> rusqlite::Result<()> {
    let samples: i64 = conn.query_row("SELECT count(*) FROM sample", [], |r| r.get(0))?;
    if samples == 0 {
        return Ok(());
    }
    let per_sample = s.size.used_bytes_before as f64 / samples as f64;
    let going = s.rows("sample") as f64 - s.rows_for("made baseline", "sample") as f64;
    let after_age = s.size.used_bytes_before as f64 - going * per_sample;
    if after_age > r.max_size_bytes as f64 {
        let low = r.max_size_bytes as f64 * CAP_LOW_WATER;
        let n = ((after_age - low) / per_sample).ceil() as u64;
        s.removed.push(Removal {
            policy: "size_cap".into(),
            reason: format!(
                "size cap {} (estimate: about {per_sample:.0} bytes a sample)",
                bytes(r.max_size_bytes as f64)
            ),
            action: "delete",
            table: "sample",
            rows: n,
            from_ms: None,
            to_ms: None,
        });
        s.notes.push(format!(
            "the data would still be over the size cap after the age rules: about {n} of the oldest unpinned samples would go"
        ));
    }
    Ok(())
}

fn db_path(conn: &Connection) -> String {
    conn.path().unwrap_or("<store>").to_string()
}

fn sql_err(path: &str, e: rusqlite::Error) -> StoreError {
    StoreError::from_sqlite(Path::new(path), e)
}
