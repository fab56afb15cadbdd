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

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OpenFlags, TransactionBehavior};
use serde::{Deserialize, Serialize};

use super::{Result, StoreError};
use crate::model::TimestampMs;

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
    fn matches(self, level: i64) -> bool {
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

    fn reason(&self) -> String {
        let mut r = format!(
            "{} older than {}",
            match self.level {
                LevelFilter::Baseline => "baseline samples",
                LevelFilter::Detail => "detail samples",
                LevelFilter::Any => "samples",
            },
            human(self.older_than.as_millis() as i64)
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
    fn merge(&mut self, other: Summary) {
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

// ---------------------------------------------------------------------------------------------
// Pins: incident windows and linked samples.

#[derive(Debug, Default)]
struct Pins {
    /// Merged, sorted, inclusive.
    open: Vec<(i64, i64)>,
    closed: Vec<(i64, i64)>,
    linked_open: HashSet<i64>,
    linked_closed: HashSet<i64>,
}

fn merge_intervals(mut v: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    v.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(v.len());
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

fn in_intervals(v: &[(i64, i64)], ts: i64) -> bool {
    let i = v.partition_point(|&(a, _)| a <= ts);
    i > 0 && ts <= v[i - 1].1
}

impl Pins {
    fn load(conn: &Connection, r: &RetentionPolicy, now: TimestampMs) -> rusqlite::Result<Pins> {
        let margin = r.incident_margin.as_millis() as i64;
        let pin_since = now - r.incidents.as_millis() as i64;
        let mut open = Vec::new();
        let mut closed = Vec::new();
        let mut st = conn.prepare("SELECT opened_ms, closed_ms FROM incident")?;
        let mut rows = st.query([])?;
        while let Some(row) = rows.next()? {
            let opened: i64 = row.get(0)?;
            match row.get::<_, Option<i64>>(1)? {
                None => open.push((opened - margin, i64::MAX)),
                Some(c) if c + margin >= pin_since => closed.push((opened - margin, c + margin)),
                Some(_) => {}
            }
        }
        let mut linked_open = HashSet::new();
        let mut linked_closed = HashSet::new();
        let mut st = conn.prepare(
            "SELECT x.sample_id, i.closed_ms FROM incident_sample x
             JOIN incident i ON i.id = x.incident_id
             WHERE i.closed_ms IS NULL OR i.closed_ms + ?1 >= ?2",
        )?;
        let mut rows = st.query(params![margin, pin_since])?;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            if row.get::<_, Option<i64>>(1)?.is_none() {
                linked_open.insert(id);
            } else {
                linked_closed.insert(id);
            }
        }
        Ok(Pins {
            open: merge_intervals(open),
            closed: merge_intervals(closed),
            linked_open,
            linked_closed,
        })
    }

    fn is_open(&self, id: i64, ts: i64) -> bool {
        in_intervals(&self.open, ts) || self.linked_open.contains(&id)
    }

    fn is_closed(&self, id: i64, ts: i64) -> bool {
        in_intervals(&self.closed, ts) || self.linked_closed.contains(&id)
    }
}

// ---------------------------------------------------------------------------------------------
// Classification: the fate of each sample, decided in time order. Pure logic, no SQL.

#[derive(Debug, Clone, Copy, PartialEq)]
struct Meta {
    id: i64,
    ts_ms: i64,
    host_id: i64,
    level: i64,
    load1: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Keep,
    Delete(usize),
    Demote(usize),
}

#[derive(Debug, Clone, Copy)]
struct Decision {
    meta_id: i64,
    ts_ms: i64,
    level: i64,
    pinned: bool,
    fate: Fate,
}

/// What to classify by.
#[derive(Debug, Clone)]
enum Rules {
    Retention {
        baseline_cut: i64,
        detail_cut: i64,
        /// (aligned cut, bucket ms)
        downsample: Option<(i64, i64)>,
    },
    Policy {
        cut: i64,
        level: LevelFilter,
        load_below: Option<f64>,
        keep_incidents: bool,
    },
}

const R_AGE: usize = 0;
const R_DETAIL: usize = 1;
const R_THIN: usize = 2;
const R_POLICY: usize = 0;

struct Classifier<'a> {
    rules: Rules,
    pins: &'a Pins,
    bucket: Option<i64>,
    buffer: Vec<(Meta, bool)>,
    out: VecDeque<Decision>,
}

impl<'a> Classifier<'a> {
    fn new(rules: Rules, pins: &'a Pins) -> Classifier<'a> {
        Classifier {
            rules,
            pins,
            bucket: None,
            buffer: Vec::new(),
            out: VecDeque::new(),
        }
    }

    /// The newest time any rule looks at: newer samples are kept.
    fn scan_until(&self) -> i64 {
        match self.rules {
            Rules::Retention {
                baseline_cut,
                detail_cut,
                downsample,
            } => baseline_cut
                .max(detail_cut)
                .max(downsample.map_or(i64::MIN, |d| d.0)),
            Rules::Policy { cut, .. } => cut,
        }
    }

    fn emit(&mut self, m: Meta, fate: Fate, pinned: bool) {
        self.out.push_back(Decision {
            meta_id: m.id,
            ts_ms: m.ts_ms,
            level: m.level,
            pinned,
            fate,
        });
    }

    /// Samples must come in (ts_ms, id) order.
    fn push(&mut self, m: Meta) {
        let open = self.pins.is_open(m.id, m.ts_ms);
        let pinned = !open && self.pins.is_closed(m.id, m.ts_ms);
        match self.rules.clone() {
            Rules::Policy {
                cut,
                level,
                load_below,
                keep_incidents,
            } => {
                let fate = if open
                    || (pinned && keep_incidents)
                    || m.ts_ms >= cut
                    || !level.matches(m.level)
                    || load_below.is_some_and(|x| m.load1.is_nan() || m.load1 >= x)
                {
                    Fate::Keep
                } else {
                    Fate::Delete(R_POLICY)
                };
                self.emit(m, fate, pinned);
            }
            Rules::Retention {
                baseline_cut,
                detail_cut,
                downsample,
            } => {
                if let Some((_, bucket_ms)) = downsample {
                    let b = m.ts_ms.div_euclid(bucket_ms);
                    if self.bucket.is_some_and(|cur| cur != b) {
                        self.flush_bucket();
                    }
                }
                if open || pinned {
                    return self.emit(m, Fate::Keep, pinned);
                }
                if m.ts_ms < baseline_cut {
                    return self.emit(m, Fate::Delete(R_AGE), false);
                }
                let demote = m.level == 1 && m.ts_ms < detail_cut;
                match downsample {
                    Some((ds_cut, bucket_ms)) if (m.level == 0 || demote) && m.ts_ms < ds_cut => {
                        self.bucket = Some(m.ts_ms.div_euclid(bucket_ms));
                        self.buffer.push((m, demote));
                    }
                    _ => {
                        let fate = if demote {
                            Fate::Demote(R_DETAIL)
                        } else {
                            Fate::Keep
                        };
                        self.emit(m, fate, false);
                    }
                }
            }
        }
    }

    /// One bucket is complete: per host, the sample with the highest load1 stays (the
    /// earliest among equals).
    fn flush_bucket(&mut self) {
        self.bucket = None;
        let buf = std::mem::take(&mut self.buffer);
        let mut best: HashMap<i64, (f64, i64)> = HashMap::new();
        for (m, _) in &buf {
            let load = if m.load1.is_nan() { f64::MIN } else { m.load1 };
            match best.get(&m.host_id) {
                Some(&(l, _)) if l >= load => {}
                _ => {
                    best.insert(m.host_id, (load, m.id));
                }
            }
        }
        for (m, demote) in buf {
            let fate = if best.get(&m.host_id).map(|b| b.1) == Some(m.id) {
                if demote {
                    Fate::Demote(R_DETAIL)
                } else {
                    Fate::Keep
                }
            } else {
                Fate::Delete(R_THIN)
            };
            self.emit(m, fate, false);
        }
    }

    fn finish(&mut self) {
        self.flush_bucket();
    }
}

fn reasons(rules: &Rules, r: &RetentionPolicy, policy: Option<&PrunePolicy>) -> Vec<String> {
    match (rules, policy) {
        (Rules::Policy { .. }, Some(p)) => vec![p.reason()],
        _ => vec![
            format!("older than {}", human(r.baseline.as_millis() as i64)),
            format!(
                "detail older than {}: made baseline",
                human(r.detail.as_millis() as i64)
            ),
            match r.downsample {
                Some((a, t)) => format!(
                    "thinned to one per {} after {}",
                    human(t.as_millis() as i64),
                    human(a.as_millis() as i64)
                ),
                None => "thinned".into(),
            },
        ],
    }
}

fn retention_rules(r: &RetentionPolicy, now: TimestampMs) -> Rules {
    Rules::Retention {
        baseline_cut: now - r.baseline.as_millis() as i64,
        detail_cut: now - r.detail.as_millis() as i64,
        downsample: r.downsample.map(|(after, to)| {
            let to = (to.as_millis() as i64).max(1);
            let cut = (now - after.as_millis() as i64).div_euclid(to) * to;
            (cut, to)
        }),
    }
}

fn policy_rules(p: &PrunePolicy, now: TimestampMs) -> Rules {
    Rules::Policy {
        cut: now - p.older_than.as_millis() as i64,
        level: p.level,
        load_below: p.load_below,
        keep_incidents: p.keep_incidents,
    }
}

// ---------------------------------------------------------------------------------------------
// Reading.

const CHUNK: i64 = 2000;

fn fetch_chunk(conn: &Connection, after: (i64, i64), until_ts: i64) -> rusqlite::Result<Vec<Meta>> {
    let mut st = conn.prepare_cached(
        "SELECT id, ts_ms, host_id, level, load1 FROM sample
         WHERE (ts_ms, id) > (?1, ?2) AND ts_ms < ?3
         ORDER BY ts_ms, id LIMIT ?4",
    )?;
    let rows = st.query_map(params![after.0, after.1, until_ts, CHUNK], |r| {
        Ok(Meta {
            id: r.get(0)?,
            ts_ms: r.get(1)?,
            host_id: r.get(2)?,
            level: r.get(3)?,
            load1: r.get(4)?,
        })
    })?;
    rows.collect()
}

fn count_before(conn: &Connection, until_ts: i64) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT count(*) FROM sample WHERE ts_ms < ?1",
        [until_ts],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as u64)
}

fn sizes(conn: &Connection, path: &Path) -> rusqlite::Result<(u64, u64)> {
    let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let count: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let file = std::fs::metadata(path)
        .map(|m| m.len())
        .unwrap_or((count * page) as u64);
    Ok((file, ((count - free) * page) as u64))
}

/// Samples that stay, by level, and the pinned ones.
fn census(conn: &Connection, pins: &Pins) -> rusqlite::Result<Kept> {
    let mut k = Kept::default();
    let mut st = conn.prepare("SELECT level, count(*) FROM sample GROUP BY level")?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let n = r.get::<_, i64>(1)? as u64;
        if r.get::<_, i64>(0)? == 1 {
            k.detail_samples += n;
        } else {
            k.baseline_samples += n;
        }
    }
    let count_in = |v: &[(i64, i64)]| -> rusqlite::Result<u64> {
        let mut n = 0;
        for &(a, b) in v {
            n += conn.query_row(
                "SELECT count(*) FROM sample WHERE ts_ms BETWEEN ?1 AND ?2",
                [a, b],
                |r| r.get::<_, i64>(0),
            )? as u64;
        }
        Ok(n)
    };
    k.open_incident_samples = count_in(&pins.open)?;
    k.pinned_samples = count_in(&pins.closed)?;
    // Linked samples outside the windows.
    let mut st = conn.prepare_cached("SELECT ts_ms FROM sample WHERE id = ?1")?;
    for (set, open) in [(&pins.linked_open, true), (&pins.linked_closed, false)] {
        for &id in set {
            let Some(ts) = st
                .query_row([id], |r| r.get::<_, i64>(0))
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })?
            else {
                continue;
            };
            if open && !in_intervals(&pins.open, ts) {
                k.open_incident_samples += 1;
            } else if !open && !in_intervals(&pins.closed, ts) && !pins.is_open(id, ts) {
                k.pinned_samples += 1;
            }
        }
    }
    // A sample both in an open and a closed window counts as open.
    let both: u64 = {
        let mut n = 0;
        for &(a, b) in &pins.closed {
            for &(c, d) in &pins.open {
                let (x, y) = (a.max(c), b.min(d));
                if x <= y {
                    n += conn.query_row(
                        "SELECT count(*) FROM sample WHERE ts_ms BETWEEN ?1 AND ?2",
                        [x, y],
                        |r| r.get::<_, i64>(0),
                    )? as u64;
                }
            }
        }
        n
    };
    k.pinned_samples -= both.min(k.pinned_samples);
    Ok(k)
}

// ---------------------------------------------------------------------------------------------
// Tallies of what goes, by reason and table.

#[derive(Default)]
struct Tally {
    /// (reason index, action, table) → (rows, from, to)
    rows: BTreeMap<(usize, &'static str, &'static str), (u64, i64, i64)>,
}

impl Tally {
    fn add(&mut self, reason: usize, action: &'static str, table: &'static str, n: u64, ts: i64) {
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

    fn removals(&self, policy: &str, reasons: &[String]) -> Vec<Removal> {
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
const CHILD_TABLES: [&str; 4] = [
    "process_sample",
    "process_detail",
    "connection",
    "incident_sample",
];

const TRIM_SQL: &str = "DELETE FROM process_sample WHERE sample_id = ?1 AND process_id NOT IN (
        SELECT process_id FROM (
            SELECT process_id,
                   row_number() OVER (ORDER BY cpu_pct_x100 DESC) AS r_cpu,
                   row_number() OVER (ORDER BY rss_kib DESC) AS r_mem,
                   row_number() OVER (ORDER BY read_bps + write_bps DESC) AS r_io,
                   row_number() OVER (ORDER BY coalesce(net_tx_bps, 0) + coalesce(net_rx_bps, 0) DESC) AS r_net
            FROM process_sample WHERE sample_id = ?1)
        WHERE r_cpu <= ?2 OR r_mem <= ?2 OR r_io <= ?2 OR r_net <= ?2)";

fn child_delete_sql(table: &str) -> &'static str {
    match table {
        "process_sample" => "DELETE FROM process_sample WHERE sample_id = ?1",
        "process_detail" => "DELETE FROM process_detail WHERE sample_id = ?1",
        "connection" => "DELETE FROM connection WHERE sample_id = ?1",
        _ => "DELETE FROM incident_sample WHERE sample_id = ?1",
    }
}

fn child_count_sql(table: &str) -> &'static str {
    match table {
        "process_sample" => "SELECT count(*) FROM process_sample WHERE sample_id = ?1",
        "process_detail" => "SELECT count(*) FROM process_detail WHERE sample_id = ?1",
        "connection" => "SELECT count(*) FROM connection WHERE sample_id = ?1",
        _ => "SELECT count(*) FROM incident_sample WHERE sample_id = ?1",
    }
}

// ---------------------------------------------------------------------------------------------
// Plans (dry runs): read-only.

/// What the configured retention would remove now, by reason and table, and what would stay.
/// Read-only: `conn` may be a read-only connection. The size cap part is an estimate.
pub fn plan(
    conn: &Connection,
    r: &RetentionPolicy,
    now: TimestampMs,
    progress: ProgressFn,
) -> Result<Summary> {
    let path = db_path(conn);
    let mut s = plan_rules(conn, r, None, now, progress).map_err(|e| sql_err(&path, e))?;
    estimate_size_cap(conn, r, &mut s).map_err(|e| sql_err(&path, e))?;
    Ok(s)
}

/// What a rule's policy would remove now. Read-only.
pub fn plan_policy(
    conn: &Connection,
    p: &PrunePolicy,
    r: &RetentionPolicy,
    now: TimestampMs,
    progress: ProgressFn,
) -> Result<Summary> {
    let path = db_path(conn);
    plan_rules(conn, r, Some(p), now, progress).map_err(|e| sql_err(&path, e))
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
            .query_row([d.meta_id], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
    };
    match d.fate {
        Fate::Keep => {}
        Fate::Delete(reason) => {
            for t in CHILD_TABLES {
                tally.add(reason, "delete", t, count(t)?, d.ts_ms);
            }
            tally.add(reason, "delete", "sample", 1, d.ts_ms);
            if d.level == 1 {
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
                tally.add(reason, "delete", t, count(t)?, d.ts_ms);
            }
            let trimmed: i64 = conn
                .prepare_cached(&TRIM_SQL.replacen(
                    "DELETE FROM process_sample",
                    "SELECT count(*) FROM process_sample",
                    1,
                ))?
                .query_row(params![d.meta_id, r.top_processes as i64], |r| r.get(0))?;
            tally.add(reason, "delete", "process_sample", trimmed as u64, d.ts_ms);
            tally.add(reason, "demote", "sample", 1, d.ts_ms);
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
                bytes_text(r.max_size_bytes)
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

// ---------------------------------------------------------------------------------------------
// Execution.

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
        super::require_existing(path, super::START_FIRST)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        conn.busy_timeout(busy_timeout).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY;
             PRAGMA journal_size_limit = 16777216;",
        )
        .map_err(err)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        if version != super::schema::MIGRATIONS.len() as i64 {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::other(format!(
                    "schema version {version}, this hogtrap needs {}; run `hogtrap run` once to migrate it",
                    super::schema::MIGRATIONS.len()
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
    pub fn record_event(&mut self, e: &super::RecorderEvent) -> Result<()> {
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
                        for t in CHILD_TABLES {
                            let n = tx
                                .prepare_cached(child_delete_sql(t))?
                                .execute([d.meta_id])?;
                            batch.add(reason, "delete", t, n as u64, d.ts_ms);
                            rows += n as u64;
                        }
                        let n = tx
                            .prepare_cached("DELETE FROM sample WHERE id = ?1")?
                            .execute([d.meta_id])?;
                        batch.add(reason, "delete", "sample", n as u64, d.ts_ms);
                        rows += n as u64;
                    }
                    Fate::Demote(reason) => {
                        for t in ["process_detail", "connection"] {
                            let n = tx
                                .prepare_cached(child_delete_sql(t))?
                                .execute([d.meta_id])?;
                            batch.add(reason, "delete", t, n as u64, d.ts_ms);
                            rows += n as u64;
                        }
                        let n = tx
                            .prepare_cached(TRIM_SQL)?
                            .execute(params![d.meta_id, top])?;
                        batch.add(reason, "delete", "process_sample", n as u64, d.ts_ms);
                        let n = tx
                            .prepare_cached(
                                "UPDATE sample SET level = 0 WHERE id = ?1 AND level = 1",
                            )?
                            .execute([d.meta_id])?;
                        batch.add(reason, "demote", "sample", n as u64, d.ts_ms);
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
        let cap = bytes_text(r.max_size_bytes);
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
                            meta_id: m.id,
                            ts_ms: m.ts_ms,
                            level: m.level,
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

/// `prune_log` rows of one run: one per (reason, table), inserted with the first batch and
/// updated by later ones, always in the batch's own transaction.
struct PruneLog {
    ts_ms: TimestampMs,
    policy: String,
    reasons: Vec<String>,
    ids: HashMap<(usize, &'static str, &'static str), i64>,
}

impl PruneLog {
    fn new(ts_ms: TimestampMs, policy: String, reasons: Vec<String>) -> PruneLog {
        PruneLog {
            ts_ms,
            policy,
            reasons,
            ids: HashMap::new(),
        }
    }

    fn write(&mut self, tx: &rusqlite::Transaction, batch: &Tally) -> rusqlite::Result<()> {
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

fn db_path(conn: &Connection) -> String {
    conn.path().unwrap_or("<store>").to_string()
}

fn sql_err(path: &str, e: rusqlite::Error) -> StoreError {
    StoreError::from_sqlite(Path::new(path), e)
}

/// "1.0 GiB": a size for people.
fn bytes_text(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// "14d", "10m", "1h30m": short human text of a span of milliseconds.
fn human(ms: i64) -> String {
    const UNITS: [(i64, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1000, "s"),
    ];
    if ms <= 0 {
        return "0s".into();
    }
    let mut left = ms;
    let mut out = String::new();
    for (size, unit) in UNITS {
        if left >= size {
            out.push_str(&format!("{}{unit}", left / size));
            left %= size;
        }
    }
    if left > 0 {
        out.push_str(&format!("{left}ms"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: i64, ts: i64, level: i64, load1: f64) -> Meta {
        Meta {
            id,
            ts_ms: ts,
            host_id: 1,
            level,
            load1,
        }
    }

    fn drain(c: &mut Classifier) -> Vec<(i64, Fate)> {
        c.out.drain(..).map(|d| (d.meta_id, d.fate)).collect()
    }

    #[test]
    fn intervals_merge_and_contain() {
        let v = merge_intervals(vec![(10, 20), (5, 12), (30, 40), (21, 25)]);
        assert_eq!(v, vec![(5, 25), (30, 40)]);
        assert!(in_intervals(&v, 5));
        assert!(in_intervals(&v, 25));
        assert!(!in_intervals(&v, 26));
        assert!(in_intervals(&v, 40));
        assert!(!in_intervals(&v, 41));
        assert!(!in_intervals(&v, 4));
    }

    #[test]
    fn retention_classifies_by_age_level_and_pins() {
        let pins = Pins {
            open: vec![(900, i64::MAX)],
            closed: vec![(100, 150)],
            linked_closed: [7].into_iter().collect(),
            ..Default::default()
        };
        let rules = Rules::Retention {
            baseline_cut: 200,
            detail_cut: 500,
            downsample: None,
        };
        let mut c = Classifier::new(rules, &pins);
        for m in [
            meta(1, 50, 0, 0.0),  // old: deleted
            meta(2, 120, 1, 0.0), // pinned by a closed window
            meta(7, 180, 0, 0.0), // pinned by its link
            meta(3, 300, 1, 0.0), // detail past its age: demoted
            meta(4, 300, 0, 0.0), // baseline, young enough
            meta(5, 950, 1, 9.0), // open incident
        ] {
            c.push(m);
        }
        c.finish();
        assert_eq!(
            drain(&mut c),
            vec![
                (1, Fate::Delete(R_AGE)),
                (2, Fate::Keep),
                (7, Fate::Keep),
                (3, Fate::Demote(R_DETAIL)),
                (4, Fate::Keep),
                (5, Fate::Keep),
            ]
        );
    }

    #[test]
    fn downsampling_keeps_the_highest_load_per_bucket() {
        let pins = Pins::default();
        let rules = Rules::Retention {
            baseline_cut: 0,
            detail_cut: 0,
            downsample: Some((300, 100)),
        };
        let mut c = Classifier::new(rules, &pins);
        for m in [
            meta(1, 100, 0, 1.0),
            meta(2, 110, 0, 3.0),
            meta(3, 120, 0, 3.0), // tie: the earlier stays
            meta(4, 200, 0, 0.5),
            meta(5, 250, 0, 0.1),
            meta(6, 310, 0, 0.1), // past the cut: kept
        ] {
            c.push(m);
        }
        c.finish();
        assert_eq!(
            drain(&mut c),
            vec![
                (1, Fate::Delete(R_THIN)),
                (2, Fate::Keep),
                (3, Fate::Delete(R_THIN)),
                (4, Fate::Keep),
                (5, Fate::Delete(R_THIN)),
                (6, Fate::Keep),
            ]
        );
    }

    #[test]
    fn policy_honours_load_level_and_incidents() {
        let pins = Pins {
            open: vec![(400, i64::MAX)],
            closed: vec![(100, 150)],
            ..Default::default()
        };
        let rules = |keep| Rules::Policy {
            cut: 1000,
            level: LevelFilter::Any,
            load_below: Some(1.4),
            keep_incidents: keep,
        };
        for keep in [true, false] {
            let mut c = Classifier::new(rules(keep), &pins);
            for m in [
                meta(1, 50, 0, 1.0),
                meta(2, 60, 1, 1.4),
                meta(3, 120, 0, 0.2),
                meta(4, 450, 0, 0.2),
                meta(5, 1100, 0, 0.2),
            ] {
                c.push(m);
            }
            c.finish();
            let pinned_fate = if keep {
                Fate::Keep
            } else {
                Fate::Delete(R_POLICY)
            };
            assert_eq!(
                drain(&mut c),
                vec![
                    (1, Fate::Delete(R_POLICY)),
                    (2, Fate::Keep),
                    (3, pinned_fate),
                    (4, Fate::Keep),
                    (5, Fate::Keep),
                ]
            );
        }
    }

    #[test]
    fn human_spans() {
        assert_eq!(human(14 * 86_400_000), "14d");
        assert_eq!(human(600_000), "10m");
        assert_eq!(human(5_400_000), "1h30m");
    }
}
