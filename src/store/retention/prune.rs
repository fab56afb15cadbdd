//! Execution: the [`Pruner`], a writer of its own that removes in short batches.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, TransactionBehavior};

use super::classify::{policy_rules, reasons, retention_rules, Classifier, Decision, Fate, Rules};
use super::log::PruneLog;
use super::pins::Pins;
use super::read::{census, count_before, fetch_chunk, sizes, CHUNK};
use super::tally::{child_delete_sql, Tally, CHILD_TABLES, TRIM_SQL};
use super::{Progress, ProgressFn, PrunePolicy, Removal, RetentionPolicy, SizeInfo, Summary};
use crate::format::bytes;
use crate::model::TimestampMs;
use crate::store::{Result, StoreError};

/// The cap is enforced down to this share of `max_size`, so one new sample does not trigger
/// pruning again at once.
pub const CAP_LOW_WATER: f64 = 0.95;

/// How often a long-lived pruner (the daemon's) looks for orphaned identities.
pub const ORPHAN_SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Pages returned to the file system per incremental-vacuum step.
const VACUUM_PAGES: i64 = 1024;

/// A writer of its own for pruning: the daemon runs it on a separate thread, `hogtrap prune`
/// in its own process. Either way each batch is one short transaction.
pub struct Pruner {
    conn: Connection,
    path: PathBuf,
    pub settings: RetentionPolicy,
    /// Pause after each batch, as a share of the batch's own duration (1.0: as long again).
    pub pause_ratio: f64,
    last_orphan_sweep: Option<Instant>,
}

impl Pruner {
    /// Opens an existing, migrated store for pruning (the daemon's `Store::open` migrates).
    pub fn open(path: &Path, settings: RetentionPolicy, busy_timeout: Duration) -> Result<Pruner> {
        let err = |e| StoreError::from_sqlite(path, e);
        let conn = crate::store::open_existing_read_write(
            path,
            busy_timeout,
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY;
             PRAGMA journal_size_limit = 16777216;",
        )?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        if version != crate::store::schema::MIGRATIONS.len() as i64 {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::other(format!(
                    "schema version {version}, this hogtrap needs {}; run `hogtrap run` once to migrate it",
                    crate::store::schema::MIGRATIONS.len()
                )),
            });
        }
        Ok(Pruner {
            conn,
            path: path.to_path_buf(),
            settings,
            pause_ratio: 1.0,
            last_orphan_sweep: None,
        })
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Writes a health event (the daemon records each pruning run as `prune`).
    pub fn record_event(&mut self, e: &crate::store::RecorderEvent) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO recorder_event (ts_ms, kind, from_ms, to_ms, count, message)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![e.ts_ms, e.kind, e.from_ms, e.to_ms, e.count, e.message],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        StoreError::from_sqlite(&self.path, e)
    }

    /// The configured retention: age rules, then the size cap, then orphaned identities, then
    /// incremental vacuum.
    pub fn run_retention(&mut self, now: TimestampMs, progress: ProgressFn) -> Result<Summary> {
        let rules = retention_rules(&self.settings, now);
        let mut s = self.execute(rules, None, now, progress)?;
        if s.complete {
            let cap = self.enforce_size_cap(now, progress)?;
            s.merge(cap);
        }
        self.finish(s, progress)
    }

    /// A rule's policy (then orphans and vacuum). Open incidents are never touched.
    pub fn run_policy(
        &mut self,
        p: &PrunePolicy,
        now: TimestampMs,
        progress: ProgressFn,
    ) -> Result<Summary> {
        let s = self.execute(policy_rules(p, now), Some(p), now, progress)?;
        self.finish(s, progress)
    }

    /// Just the size cap, cheap when under it: the daemon calls this often.
    pub fn run_size_cap(&mut self, now: TimestampMs, progress: ProgressFn) -> Result<Summary> {
        let s = self.enforce_size_cap(now, progress)?;
        if s.removed.is_empty() {
            return Ok(s);
        }
        self.finish(s, progress)
    }

    /// Bytes in use (file minus free pages) and the file's size.
    pub fn used_bytes(&self) -> Result<u64> {
        sizes(&self.conn, &self.path)
            .map(|s| s.1)
            .map_err(|e| self.err(e))
    }

    fn execute(
        &mut self,
        rules: Rules,
        policy: Option<&PrunePolicy>,
        now: TimestampMs,
        progress: ProgressFn,
    ) -> Result<Summary> {
        let r = self.settings.clone();
        let pins = Pins::load(&self.conn, &r, now).map_err(|e| self.err(e))?;
        let reasons = reasons(&rules, &r, policy);
        let policy_name = policy.map_or("retention".to_string(), |p| p.name.clone());
        let (file, used) = sizes(&self.conn, &self.path).map_err(|e| self.err(e))?;
        let mut cls = Classifier::new(rules, &pins);
        let until = cls.scan_until();
        let total = count_before(&self.conn, until).map_err(|e| self.err(e))?;
        let mut log = PruneLog::new(now, policy_name.clone(), reasons.clone());
        let mut tally = Tally::default();
        let mut pending: VecDeque<Decision> = VecDeque::new();
        let mut cursor = (i64::MIN, i64::MIN);
        let mut exhausted = false;
        let mut done = 0u64;
        let mut complete = true;
        loop {
            while !exhausted && pending.len() < r.batch_rows.max(CHUNK as usize) {
                let chunk = fetch_chunk(&self.conn, cursor, until).map_err(|e| self.err(e))?;
                if let Some(last) = chunk.last() {
                    cursor = (last.ts_ms, last.id);
                }
                done += chunk.len() as u64;
                if chunk.is_empty() {
                    cls.finish();
                    exhausted = true;
                }
                for m in chunk {
                    cls.push(m);
                }
                pending.extend(cls.out.drain(..).filter(|d| d.fate != Fate::Keep));
            }
            if pending.is_empty() {
                break;
            }
            self.apply_batch(&mut pending, &mut log, &mut tally)?;
            if !progress(Progress {
                phase: "pruning",
                done: done - pending.len() as u64,
                total,
            }) {
                complete = false;
                break;
            }
        }
        let kept = census(&self.conn, &pins).map_err(|e| self.err(e))?;
        Ok(Summary {
            dry_run: false,
            now_ms: now,
            removed: tally.removals(&policy_name, &reasons),
            policy: policy_name,
            kept,
            size: SizeInfo {
                file_bytes_before: file,
                used_bytes_before: used,
                max_size_bytes: r.max_size_bytes,
                ..Default::default()
            },
            complete,
            notes: Vec::new(),
        })
    }

    /// One short write transaction: decisions from the front of `pending` until about
    /// `batch_rows` rows changed. Logged in the same transaction.
    fn apply_batch(
        &mut self,
        pending: &mut VecDeque<Decision>,
        log: &mut PruneLog,
        tally: &mut Tally,
    ) -> Result<()> {
        let started = Instant::now();
        let batch_rows = self.settings.batch_rows as u64;
        let top = self.settings.top_processes as i64;
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| StoreError::from_sqlite(&path, e))?;
        let mut batch = Tally::default();
        let mut rows = 0u64;
        let res: rusqlite::Result<()> = (|| {
            while rows < batch_rows {
                let Some(d) = pending.pop_front() else { break };
                match d.fate {
                    Fate::Keep => {}
                    Fate::Delete(reason) => {
                        let mut step = |sql: &str, table: &'static str| -> rusqlite::Result<u64> {
                            let n = tx.prepare_cached(sql)?.execute([d.meta.id])? as u64;
                            batch.add(reason, "delete", table, n, d.meta.ts_ms);
                            Ok(n)
                        };
                        for t in CHILD_TABLES {
                            rows += step(child_delete_sql(t), t)?;
                        }
                        rows += step("DELETE FROM sample WHERE id = ?1", "sample")?;
                    }
                    Fate::Demote(reason) => {
                        for t in ["process_detail", "connection"] {
                            let n = tx
                                .prepare_cached(child_delete_sql(t))?
                                .execute([d.meta.id])? as u64;
                            batch.add(reason, "delete", t, n, d.meta.ts_ms);
                            rows += n;
                        }
                        let n = tx
                            .prepare_cached(TRIM_SQL)?
                            .execute(params![d.meta.id, top])?;
                        batch.add(reason, "delete", "process_sample", n as u64, d.meta.ts_ms);
                        let n = tx
                            .prepare_cached(
                                "UPDATE sample SET level = 0 WHERE id = ?1 AND level = 1",
                            )?
                            .execute([d.meta.id])?;
                        batch.add(reason, "demote", "sample", n as u64, d.meta.ts_ms);
                        rows += 1 + n as u64;
                    }
                }
            }
            log.write(&tx, &batch)?;
            Ok(())
        })();
        res.and_then(|_| tx.commit())
            .map_err(|e| StoreError::from_sqlite(&path, e))?;
        for (k, v) in batch.rows {
            let e = tally.rows.entry(k).or_insert((0, v.1, v.2));
            e.0 += v.0;
            e.1 = e.1.min(v.1);
            e.2 = e.2.max(v.2);
        }
        self.pause(started);
        Ok(())
    }

    fn pause(&self, since: Instant) {
        let took = since.elapsed();
        let pause = took.mul_f64(self.pause_ratio).max(Duration::from_millis(2));
        std::thread::sleep(pause.min(Duration::from_millis(500)));
    }

    /// Oldest unpinned samples first, then closed incidents' windows, never open incidents,
    /// until the data is under the low-water mark.
    fn enforce_size_cap(&mut self, now: TimestampMs, progress: ProgressFn) -> Result<Summary> {
        let r = self.settings.clone();
        let (file, used) = sizes(&self.conn, &self.path).map_err(|e| self.err(e))?;
        let mut s = Summary {
            policy: "size_cap".into(),
            dry_run: false,
            now_ms: now,
            size: SizeInfo {
                file_bytes_before: file,
                used_bytes_before: used,
                max_size_bytes: r.max_size_bytes,
                ..Default::default()
            },
            complete: true,
            ..Default::default()
        };
        if used <= r.max_size_bytes {
            return Ok(s);
        }
        let low = (r.max_size_bytes as f64 * CAP_LOW_WATER) as u64;
        let pins = Pins::load(&self.conn, &r, now).map_err(|e| self.err(e))?;
        let cap = bytes(r.max_size_bytes as f64);
        let reasons = vec![
            format!("size cap {cap}: oldest unpinned"),
            format!("size cap {cap}: oldest closed incident windows"),
        ];
        let mut log = PruneLog::new(now, "size_cap".into(), reasons.clone());
        let mut tally = Tally::default();
        let excess = used - low;
        let mut freed_goal_done = false;
        'tiers: for tier in 0..2 {
            let mut cursor = (i64::MIN, i64::MIN);
            loop {
                let chunk = fetch_chunk(&self.conn, cursor, i64::MAX).map_err(|e| self.err(e))?;
                let Some(last) = chunk.last() else { break };
                cursor = (last.ts_ms, last.id);
                let mut pending: VecDeque<Decision> = chunk
                    .into_iter()
                    .filter_map(|m| {
                        let open = pins.is_open(m.id, m.ts_ms);
                        let pinned = !open && pins.is_closed(m.id, m.ts_ms);
                        let take = !open && (pinned == (tier == 1));
                        take.then_some(Decision {
                            meta: m,
                            pinned,
                            fate: Fate::Delete(tier),
                        })
                    })
                    .collect();
                while !pending.is_empty() {
                    let used_now = self.used_bytes()?;
                    if used_now <= low {
                        freed_goal_done = true;
                        break 'tiers;
                    }
                    self.apply_batch(&mut pending, &mut log, &mut tally)?;
                    if !progress(Progress {
                        phase: "size cap",
                        done: used.saturating_sub(self.used_bytes()?),
                        total: excess,
                    }) {
                        s.complete = false;
                        break 'tiers;
                    }
                }
            }
        }
        if !freed_goal_done && s.complete && self.used_bytes()? > low {
            let msg = format!(
                "the store is still over {}% of its size cap {cap}: what is left is open incidents' samples and the newest data",
                (CAP_LOW_WATER * 100.0) as u32
            );
            tracing::warn!("{msg}");
            s.notes.push(msg);
        }
        s.removed = tally.removals("size_cap", &reasons);
        s.kept = census(&self.conn, &pins).map_err(|e| self.err(e))?;
        Ok(s)
    }

    /// Orphaned identities (at most every [`ORPHAN_SWEEP_EVERY`]: finding them reads all of
    /// `process_sample`), incremental vacuum, sizes after.
    fn finish(&mut self, mut s: Summary, progress: ProgressFn) -> Result<Summary> {
        let removed_process_rows = s.rows("process_sample") > 0;
        let sweep_due = self
            .last_orphan_sweep
            .is_none_or(|t| t.elapsed() >= ORPHAN_SWEEP_EVERY);
        if s.complete && removed_process_rows && sweep_due {
            let n = self.remove_orphans(s.now_ms, progress)?;
            self.last_orphan_sweep = Some(Instant::now());
            if n > 0 {
                s.removed.push(Removal {
                    policy: s.policy.clone(),
                    reason: "identity no sample refers to".into(),
                    action: "delete",
                    table: "process",
                    rows: n,
                    from_ms: None,
                    to_ms: None,
                });
            }
        }
        if s.complete {
            self.vacuum(progress)?;
        }
        let (file, used) = sizes(&self.conn, &self.path).map_err(|e| self.err(e))?;
        s.size.file_bytes_after = file;
        s.size.used_bytes_after = used;
        Ok(s)
    }

    /// Process identities that no `process_sample` row and no incident culprit refers to.
    /// Found from one consistent read (which never blocks the recorder), deleted in batches
    /// that re-check the samples written since that read.
    fn remove_orphans(&mut self, now: TimestampMs, progress: ProgressFn) -> Result<u64> {
        let path = self.path.clone();
        let err = |e| StoreError::from_sqlite(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        let (max_sample, candidates) = (|| -> rusqlite::Result<(i64, Vec<i64>)> {
            let max_sample: i64 =
                tx.query_row("SELECT coalesce(max(id), 0) FROM sample", [], |r| r.get(0))?;
            let mut live: HashSet<i64> = HashSet::new();
            let mut st = tx.prepare("SELECT process_id FROM process_sample")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                live.insert(r.get(0)?);
            }
            let mut st =
                tx.prepare("SELECT process_id FROM incident_culprit WHERE process_id IS NOT NULL")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                live.insert(r.get(0)?);
            }
            let mut st = tx.prepare("SELECT id FROM process")?;
            let ids = st
                .query_map([], |r| r.get::<_, i64>(0))?
                .collect::<rusqlite::Result<Vec<i64>>>()?;
            Ok((
                max_sample,
                ids.into_iter().filter(|id| !live.contains(id)).collect(),
            ))
        })()
        .map_err(err)?;
        tx.commit().map_err(err)?;
        let mut removed = 0u64;
        let total = candidates.len() as u64;
        let mut log = PruneLog::new(
            now,
            "retention".into(),
            vec!["identity no sample refers to".into()],
        );
        for chunk in candidates.chunks(self.settings.batch_rows.max(1)) {
            let started = Instant::now();
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err)?;
            let mut n = 0u64;
            {
                let mut st = tx
                    .prepare_cached(
                        "DELETE FROM process WHERE id = ?1 AND NOT EXISTS (
                            SELECT 1 FROM process_sample WHERE sample_id > ?2 AND process_id = ?1)",
                    )
                    .map_err(err)?;
                for &id in chunk {
                    n += st.execute(params![id, max_sample]).map_err(err)? as u64;
                }
            }
            let mut t = Tally::default();
            t.add(0, "delete", "process", n, now);
            log.write(&tx, &t).map_err(err)?;
            tx.commit().map_err(err)?;
            removed += n;
            self.pause(started);
            if !progress(Progress {
                phase: "orphaned identities",
                done: removed,
                total,
            }) {
                break;
            }
        }
        Ok(removed)
    }

    /// Returns free pages to the file system in small steps, then checkpoints so the file
    /// itself shrinks.
    fn vacuum(&mut self, progress: ProgressFn) -> Result<()> {
        let free =
            |c: &Connection| c.query_row("PRAGMA freelist_count", [], |r| r.get::<_, i64>(0));
        let total = free(&self.conn).map_err(|e| self.err(e))?.max(0) as u64;
        if total == 0 {
            return Ok(());
        }
        loop {
            let left = free(&self.conn).map_err(|e| self.err(e))?;
            if left <= 0 {
                break;
            }
            let started = Instant::now();
            self.conn
                .execute_batch(&format!("PRAGMA incremental_vacuum({VACUUM_PAGES})"))
                .map_err(|e| self.err(e))?;
            self.pause(started);
            if !progress(Progress {
                phase: "vacuum",
                done: total.saturating_sub(left.max(0) as u64),
                total,
            }) {
                break;
            }
        }
        // PASSIVE never waits for the recorder. The file shrinks only when a checkpoint
        // copies the whole WAL back, which a write landing meanwhile can prevent: try again
        // a few times (the recorder's own checkpoints finish the job otherwise).
        for _ in 0..20 {
            let (log, done): (i64, i64) = self
                .conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get(1)?, r.get(2)?))
                })
                .map_err(|e| self.err(e))?;
            if log == done {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}
