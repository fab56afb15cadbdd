//! Incidents, their culprits and samples, captures, rule state and rule errors: the SQL of
//! what rules decide. Writes happen on the daemon's single writer connection; the `*_ro`
//! queries take a read-only connection.
//!
//! Guarantees: a rule has at most one open incident (`closed_ms IS NULL`); samples are linked
//! to an incident at most once; rule state rows hold the whole persisted state as JSON so a
//! restart resumes a pending `hold` where it was.

use super::vocab::{all_rows, from_row};
use rusqlite::{params, Connection, OptionalExtension};

use super::{Result, Store};
use crate::format::{redact, redact_owned};
use crate::model::{AlertKind, Grouping, Level, Resource, Sample, Severity, TimestampMs};

/// A process an incident blames.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Culprit {
    pub resource: Resource,
    pub rank: u32,
    pub pid: u32,
    pub start_time_ms: TimestampMs,
    pub name: String,
    pub cmdline: String,
    /// CPU %, RSS bytes, I/O bytes/s or network bytes/s.
    pub value: f64,
}

/// The top `n` processes of a sample by each resource, those with a non-zero value. For cpu
/// and io, the largest group by parent and by program name (exits included) comes first when
/// its members besides the largest one together outweigh every single process: a storm of
/// short-lived children names its forker and its program, while one burner among a few
/// finished siblings is still named itself.
pub fn culprits_of(sample: &Sample, n: usize) -> Vec<Culprit> {
    let mut out = Vec::new();
    for resource in [Resource::Cpu, Resource::Mem, Resource::Io, Resource::Net] {
        let mut groups = Vec::new();
        if matches!(resource, Resource::Cpu | Resource::Io) {
            let single = process_culprits(sample, n, resource)
                .first()
                .map_or(0.0, |c| c.value);
            for how in [Grouping::Parent, Grouping::Name] {
                if let Some(g) = crate::model::group::groups_of(sample, resource, how)
                    .into_iter()
                    .next()
                    .filter(|g| g.exited >= 2 && g.value - g.largest > single)
                {
                    groups.push(Culprit {
                        resource,
                        rank: 0,
                        pid: if how == Grouping::Parent {
                            g.key.parse().unwrap_or(0)
                        } else {
                            0
                        },
                        start_time_ms: 0,
                        name: group_culprit_name(&g),
                        cmdline: String::new(),
                        value: g.value,
                    });
                }
            }
        }
        let rest = process_culprits(sample, n, resource);
        for (i, mut c) in groups.into_iter().chain(rest).take(n + 2).enumerate() {
            c.rank = i as u32 + 1;
            out.push(c);
        }
    }
    out
}

/// How a group culprit reads: "children of 4242 ht_forker (2000 processes, 1990 exited)", "perl
/// (…)".
pub fn group_culprit_name(g: &crate::model::group::SampleGroup) -> String {
    let what = match g.group {
        Grouping::Parent => format!("children of {}", g.label),
        Grouping::Name => format!("all {}", g.label),
        Grouping::User => format!("user {}", g.label),
        Grouping::Cgroup => format!("cgroup {}", g.label),
    };
    format!("{what} ({} processes, {} exited)", g.processes, g.exited)
}

/// The top `n` processes of a sample by one resource.
fn process_culprits(sample: &Sample, n: usize, only: Resource) -> Vec<Culprit> {
    let mut out = Vec::new();
    type Key = fn(&crate::model::ProcessRow) -> f64;
    let keys: [(Resource, Key); 4] = [
        (Resource::Cpu, |p| p.cpu_pct),
        (Resource::Mem, |p| p.rss_bytes as f64),
        (Resource::Io, |p| p.read_bytes_per_s + p.write_bytes_per_s),
        (Resource::Net, |p| {
            p.net_tx_bytes_per_s.unwrap_or(0.0) + p.net_rx_bytes_per_s.unwrap_or(0.0)
        }),
    ];
    for (resource, key) in keys {
        if resource != only {
            continue;
        }
        let mut v: Vec<&crate::model::ProcessRow> =
            sample.processes.iter().filter(|p| key(p) > 0.0).collect();
        v.sort_by(|a, b| key(b).total_cmp(&key(a)));
        for (i, p) in v.into_iter().take(n).enumerate() {
            out.push(Culprit {
                resource,
                rank: i as u32 + 1,
                pid: p.id.pid,
                start_time_ms: p.id.start_time_ms,
                name: p.id.name.clone(),
                cmdline: p.id.cmdline.clone(),
                value: key(p),
            });
        }
    }
    out
}

pub struct NewIncident<'a> {
    pub rule: &'a str,
    pub rule_file: &'a str,
    pub severity: Severity,
    pub title: &'a str,
    pub summary: &'a str,
    pub opened_ms: TimestampMs,
    pub peak_json: &'a str,
}

impl Store {
    /// Runs one statement on the writer connection (kept prepared: they repeat every pass).
    fn exec(&self, sql: &str, params: impl rusqlite::Params) -> Result<()> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut st| st.execute(params))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Every row of a two-column query.
    fn pairs<A: rusqlite::types::FromSql, B: rusqlite::types::FromSql>(
        &self,
        sql: &str,
    ) -> Result<Vec<(A, B)>> {
        all_rows(&self.conn, sql, [], |r| Ok((r.get(0)?, r.get(1)?))).map_err(|e| self.err(e))
    }

    /// The rule's open incident, if any.
    pub fn open_incident_of(&self, rule: &str) -> Result<Option<i64>> {
        self.first_value(
            "SELECT id FROM incident WHERE rule = ?1 AND closed_ms IS NULL
             ORDER BY id DESC LIMIT 1",
            [rule],
        )
    }

    /// When the incident closed; `None` while open (or unknown).
    pub fn incident_closed_ms(&self, id: i64) -> Result<Option<TimestampMs>> {
        self.first_value::<Option<i64>>("SELECT closed_ms FROM incident WHERE id = ?1", [id])
            .map(Option::flatten)
    }

    /// The rule's newest incident, open or closed.
    pub fn last_incident_of(&self, rule: &str) -> Result<Option<i64>> {
        self.first_value(
            "SELECT id FROM incident WHERE rule = ?1 ORDER BY id DESC LIMIT 1",
            [rule],
        )
    }

    /// Every open incident: (id, rule).
    pub fn open_incidents(&self) -> Result<Vec<(i64, String)>> {
        self.pairs("SELECT id, rule FROM incident WHERE closed_ms IS NULL")
    }

    pub fn open_incident(&mut self, i: &NewIncident, culprits: &[Culprit]) -> Result<i64> {
        let tx = self
            .conn
            .transaction()
            .map_err(|e| super::StoreError::from_sqlite(&self.path, e))?;
        let r = (|| {
            tx.execute(
                "INSERT INTO incident (rule, rule_file, severity, title, opened_ms, updated_ms,
                 peak_json, summary) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7)",
                params![
                    i.rule,
                    i.rule_file,
                    i.severity,
                    redact(i.title),
                    i.opened_ms,
                    redact(i.peak_json),
                    redact(i.summary)
                ],
            )?;
            let id = tx.last_insert_rowid();
            for c in culprits {
                let process_id: Option<i64> = tx
                    .query_row(
                        "SELECT id FROM process WHERE pid = ?1 AND start_time_ms = ?2 AND name = ?3",
                        params![c.pid, c.start_time_ms, c.name],
                        |r| r.get(0),
                    )
                    .optional()?;
                tx.execute(
                    "INSERT OR REPLACE INTO incident_culprit (incident_id, resource, rank,
                     process_id, pid, name, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![id, c.resource, c.rank, process_id, c.pid, c.name, c.value],
                )?;
            }
            Ok(id)
        })();
        let id = r.and_then(|id| tx.commit().map(|_| id));
        id.map_err(|e| self.err(e))
    }

    pub fn update_incident(
        &mut self,
        id: i64,
        updated_ms: TimestampMs,
        peak_json: &str,
        severity: Option<Severity>,
    ) -> Result<()> {
        self.exec(
            "UPDATE incident SET updated_ms = ?2, peak_json = ?3,
                 severity = coalesce(?4, severity) WHERE id = ?1",
            params![id, updated_ms, peak_json, severity],
        )
    }

    pub fn peak_json(&self, id: i64) -> Result<String> {
        self.conn
            .query_row("SELECT peak_json FROM incident WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .map_err(|e| self.err(e))
    }

    pub fn close_incident(&mut self, id: i64, closed_ms: TimestampMs) -> Result<()> {
        self.exec("UPDATE incident SET closed_ms = ?2, updated_ms = ?2 WHERE id = ?1 AND closed_ms IS NULL", params![id, closed_ms])
    }

    /// Keeps the note of a rule's `resolve { note = ... }` with the incident.
    pub fn set_resolve_note(&mut self, id: i64, note: &str) -> Result<()> {
        self.exec(
            "UPDATE incident SET resolve_note = ?2 WHERE id = ?1",
            params![id, note],
        )
    }

    pub fn link_samples(&mut self, incident_id: i64, sample_ids: &[i64]) -> Result<()> {
        let tx = self
            .conn
            .transaction()
            .map_err(|e| super::StoreError::from_sqlite(&self.path, e))?;
        let r = (|| {
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO incident_sample (incident_id, sample_id) VALUES (?1, ?2)",
            )?;
            for s in sample_ids {
                st.execute(params![incident_id, s])?;
            }
            drop(st);
            tx.commit()
        })();
        r.map_err(|e| self.err(e))
    }

    /// Turns a stored baseline sample into a detail one: adds the process rows the baseline
    /// left out (from the full sample kept in memory) and marks the level.
    pub fn upgrade_to_detail(&mut self, sample_id: i64, full: &Sample) -> Result<()> {
        self.write_process_rows(sample_id, full)?;
        self.exec("UPDATE sample SET level = 1 WHERE id = ?1", [sample_id])
    }

    pub fn start_capture(
        &mut self,
        incident_id: Option<i64>,
        rule: &str,
        started_ms: TimestampMs,
        until_ms: TimestampMs,
        interval_ms: i64,
        connections: bool,
    ) -> Result<i64> {
        self.exec(
            "INSERT INTO capture (incident_id, rule, started_ms, until_ms, interval_ms,
                 connections) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                incident_id,
                rule,
                started_ms,
                until_ms,
                interval_ms,
                connections
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn update_capture(
        &mut self,
        id: i64,
        until_ms: TimestampMs,
        ended_ms: Option<TimestampMs>,
    ) -> Result<()> {
        self.exec(
            "UPDATE capture SET until_ms = ?2, ended_ms = ?3 WHERE id = ?1",
            params![id, until_ms, ended_ms],
        )
    }

    /// Ends captures a previous run left open (it stopped or died mid-capture).
    pub fn end_stale_captures(&mut self, now: TimestampMs) -> Result<()> {
        self.exec(
            "UPDATE capture SET ended_ms = min(until_ms, ?1) WHERE ended_ms IS NULL",
            [now],
        )
    }

    pub fn record_rule_error(
        &mut self,
        ts_ms: TimestampMs,
        rule: &str,
        file: &str,
        line: Option<u32>,
        message: &str,
    ) -> Result<()> {
        self.exec(
            "INSERT INTO rule_error (ts_ms, rule, file, line, message) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![ts_ms, rule, file, line, message],
        )
    }

    /// Persists one rule's state (the whole of it as JSON, plus columns for people).
    #[allow(clippy::too_many_arguments)]
    pub fn save_rule_state(
        &mut self,
        rule: &str,
        file: &str,
        status: &str,
        since_ms: Option<TimestampMs>,
        state_json: &str,
        failures: u32,
        disabled: bool,
        now: TimestampMs,
    ) -> Result<()> {
        self.exec(
            "INSERT INTO rule_state (rule, file, status, since_ms, state_json, failures,
                 disabled, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (rule) DO UPDATE SET file = excluded.file, status = excluded.status,
                 since_ms = excluded.since_ms, state_json = excluded.state_json,
                 failures = excluded.failures, disabled = excluded.disabled,
                 updated_ms = excluded.updated_ms",
            params![rule, file, status, since_ms, state_json, failures, disabled, now],
        )
    }

    /// Every persisted rule state: (rule, state_json).
    pub fn load_rule_states(&self) -> Result<Vec<(String, String)>> {
        self.pairs("SELECT rule, state_json FROM rule_state")
    }

    /// Recent host rows to seed the rules' history ring after a restart.
    pub fn recent_samples(&self, since_ms: TimestampMs) -> Result<Vec<Sample>> {
        super::query::load_samples(&self.conn, since_ms, i64::MAX, false).map_err(|e| self.err(e))
    }
}

/// Incident list row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IncidentRow {
    pub id: i64,
    pub rule: String,
    pub rule_file: Option<String>,
    pub severity: Severity,
    pub title: String,
    pub opened_ms: TimestampMs,
    pub updated_ms: TimestampMs,
    pub closed_ms: Option<TimestampMs>,
    pub peak: serde_json::Value,
    pub summary: String,
}

pub(super) fn incident_row(r: &rusqlite::Row) -> rusqlite::Result<IncidentRow> {
    Ok(from_row!(r => IncidentRow {
        id, rule, rule_file, severity, title, opened_ms, updated_ms, closed_ms,
        peak => |p: String| serde_json::from_str(&p).unwrap_or(serde_json::Value::Null),
        summary
    }))
}

pub(super) const INCIDENT_COLUMNS: &str =
    "id, rule, rule_file, severity, title, opened_ms, updated_ms, closed_ms, peak_json, summary";

pub fn list_incidents(
    conn: &Connection,
    since_ms: Option<TimestampMs>,
    rule: Option<&str>,
    open_only: bool,
) -> rusqlite::Result<Vec<IncidentRow>> {
    let sql = format!(
        "SELECT {INCIDENT_COLUMNS} FROM incident
         WHERE (?1 IS NULL OR opened_ms >= ?1 OR closed_ms IS NULL OR closed_ms >= ?1)
           AND (?2 IS NULL OR rule = ?2)
           AND (?3 = 0 OR closed_ms IS NULL)
         ORDER BY opened_ms DESC"
    );
    all_rows(conn, &sql, params![since_ms, rule, open_only], incident_row)
}

/// The note the rule left when it resolved incident `id` (`resolve { note = ... }`).
pub fn resolve_note(conn: &Connection, id: i64) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT resolve_note FROM incident WHERE id = ?1",
        [id],
        |r| r.get(0),
    )
    .optional()
    .map(Option::flatten)
}

pub fn incident(conn: &Connection, id: i64) -> rusqlite::Result<Option<IncidentRow>> {
    conn.query_row(
        &format!("SELECT {INCIDENT_COLUMNS} FROM incident WHERE id = ?1"),
        [id],
        incident_row,
    )
    .optional()
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CulpritRow {
    pub resource: Resource,
    pub rank: i64,
    pub pid: i64,
    pub name: String,
    pub value: f64,
    pub user: Option<String>,
    pub cmdline: Option<String>,
}

pub fn culprits(conn: &Connection, id: i64) -> rusqlite::Result<Vec<CulpritRow>> {
    all_rows(conn, "SELECT c.resource, c.rank, c.pid, c.name, c.value, p.user, p.cmdline
         FROM incident_culprit c LEFT JOIN process p ON p.id = c.process_id
         WHERE c.incident_id = ?1
         ORDER BY CASE c.resource WHEN 'cpu' THEN 0 WHEN 'mem' THEN 1 WHEN 'io' THEN 2 ELSE 3 END, c.rank", [id], |r| {
        Ok(CulpritRow {
            resource: r.get(0)?,
            rank: r.get(1)?,
            pid: r.get(2)?,
            name: r.get(3)?,
            value: r.get(4)?,
            user: r.get(5)?,
            cmdline: r.get::<_, Option<String>>(6)?.map(redact_owned),
        })
    })
}

/// One point of an incident's timeline.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TimelinePoint {
    pub sample_id: i64,
    pub ts_ms: TimestampMs,
    pub level: Level,
    pub load1: f64,
    pub cpu_busy_pct: f64,
    pub mem_used_bytes: i64,
    pub psi_cpu_some_avg10: Option<f64>,
    pub psi_mem_some_avg10: Option<f64>,
    pub psi_io_some_avg10: Option<f64>,
    /// The busiest process by CPU in that sample; `None` when it kept no process row.
    #[serde(flatten)]
    pub top: Option<TopProcess>,
}

/// The busiest process by CPU in one sample of a timeline. In JSON its fields sit in the
/// timeline point as `top_name`, `top_pid` and `top_cpu_pct`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TopProcess {
    #[serde(rename = "top_name")]
    pub name: String,
    #[serde(rename = "top_pid")]
    pub pid: i64,
    #[serde(rename = "top_cpu_pct")]
    pub cpu_pct: f64,
}

impl TopProcess {
    /// From the timeline query's `name US pid US cpu_pct_x100` (US: the unit separator).
    fn parse(text: &str) -> Option<TopProcess> {
        let mut parts = text.split('\u{1f}');
        let (name, pid, cpu) = (parts.next()?, parts.next()?, parts.next()?);
        Some(TopProcess {
            name: name.to_string(),
            pid: pid.parse().ok()?,
            cpu_pct: cpu.parse::<f64>().ok()? / 100.0,
        })
    }
}

pub fn timeline(conn: &Connection, id: i64) -> rusqlite::Result<Vec<TimelinePoint>> {
    all_rows(
        conn,
        "SELECT s.id, s.ts_ms, s.level, s.load1, 100 - s.cpu_idle_pct, s.mem_used_bytes,
                s.psi_cpu_some_avg10, s.psi_mem_some_avg10, s.psi_io_some_avg10,
                (SELECT p.name || char(31) || p.pid || char(31) || ps.cpu_pct_x100
                   FROM process_sample ps JOIN process p ON p.id = ps.process_id
                  WHERE ps.sample_id = s.id ORDER BY ps.cpu_pct_x100 DESC LIMIT 1)
         FROM incident_sample i JOIN sample s ON s.id = i.sample_id
         WHERE i.incident_id = ?1 ORDER BY s.ts_ms",
        [id],
        |r| {
            let top: Option<String> = r.get(9)?;
            Ok(from_row!(r => TimelinePoint {
                sample_id, ts_ms, level, load1, cpu_busy_pct, mem_used_bytes, psi_cpu_some_avg10,
                psi_mem_some_avg10, psi_io_some_avg10; top: top.as_deref().and_then(TopProcess::parse)
            }))
        },
    )
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CaptureRow {
    pub id: i64,
    pub started_ms: TimestampMs,
    pub until_ms: TimestampMs,
    pub ended_ms: Option<TimestampMs>,
    pub interval_ms: i64,
    pub detail_samples: i64,
}

pub fn captures(conn: &Connection, incident_id: i64) -> rusqlite::Result<Vec<CaptureRow>> {
    all_rows(
        conn,
        "SELECT c.id, c.started_ms, c.until_ms, c.ended_ms, c.interval_ms,
                (SELECT count(*) FROM incident_sample i JOIN sample s ON s.id = i.sample_id
                  WHERE i.incident_id = c.incident_id AND s.level = 1)
         FROM capture c WHERE c.incident_id = ?1 ORDER BY c.started_ms",
        [incident_id],
        |r| {
            Ok(from_row!(r => CaptureRow {
                id, started_ms, until_ms, ended_ms, interval_ms, detail_samples
            }))
        },
    )
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlertRow {
    pub id: i64,
    pub created_ms: TimestampMs,
    pub incident_id: Option<i64>,
    pub rule: String,
    pub channel: String,
    pub kind: AlertKind,
    pub subject: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub sent_ms: Option<TimestampMs>,
}

pub(super) const ALERT_COLUMNS: &str =
    "id, created_ms, incident_id, rule, channel, kind, subject, \
     status, attempts, last_error, sent_ms";

pub(super) fn alert_row(r: &rusqlite::Row) -> rusqlite::Result<AlertRow> {
    Ok(from_row!(r => AlertRow {
        id, created_ms, incident_id, rule, channel, kind, subject, status, attempts, last_error,
        sent_ms
    }))
}

pub fn alerts_of_incident(conn: &Connection, incident_id: i64) -> rusqlite::Result<Vec<AlertRow>> {
    all_rows(
        conn,
        &format!("SELECT {ALERT_COLUMNS} FROM alert WHERE incident_id = ?1 ORDER BY created_ms"),
        [incident_id],
        alert_row,
    )
}

/// A rule's state as `hogtrap status` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RuleStateRow {
    pub rule: String,
    pub status: String,
    pub since_ms: Option<TimestampMs>,
    pub failures: i64,
    pub disabled: bool,
}

pub fn rule_states(conn: &Connection) -> rusqlite::Result<Vec<RuleStateRow>> {
    all_rows(
        conn,
        "SELECT rule, status, since_ms, failures, disabled FROM rule_state ORDER BY rule",
        [],
        |r| Ok(from_row!(r => RuleStateRow { rule, status, since_ms, failures, disabled })),
    )
}

impl Store {
    /// Marks the incident updated (and sets its severity, if given) without touching its peaks:
    /// `update_incident` for when no peak changed.
    pub fn touch_incident(
        &mut self,
        id: i64,
        updated_ms: TimestampMs,
        severity: Option<Severity>,
    ) -> Result<()> {
        self.exec(
            "UPDATE incident SET updated_ms = ?2, severity = coalesce(?3, severity)
                 WHERE id = ?1",
            params![id, updated_ms, severity],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ProcessIdentity, ProcessRow, Sample};

    fn sample(ts_ms: TimestampMs, burner_cpu: Option<f64>) -> Sample {
        let processes = burner_cpu
            .map(|cpu_pct| ProcessRow {
                id: ProcessIdentity {
                    pid: 4242,
                    start_time_ms: 1,
                    name: "burner".into(),
                    ..Default::default()
                },
                cpu_pct,
                ..Default::default()
            })
            .into_iter()
            .collect();
        Sample {
            ts_ms,
            processes,
            ..Default::default()
        }
    }

    #[test]
    fn the_timeline_names_each_samples_busiest_process() {
        let dir = tempfile::tempdir().unwrap();
        let mut store =
            Store::open(&dir.path().join("t.db"), std::time::Duration::from_secs(1)).unwrap();
        let busy = store.write_sample(&sample(1_000, Some(87.5))).unwrap();
        let empty = store.write_sample(&sample(2_000, None)).unwrap();
        let new = NewIncident {
            rule: "cpu",
            rule_file: "r.lua",
            severity: Severity::Warning,
            title: "t",
            summary: "",
            opened_ms: 1_000,
            peak_json: "{}",
        };
        let id = store.open_incident(&new, &[]).unwrap();
        store.link_samples(id, &[busy, empty]).unwrap();

        let points = timeline(&store.conn, id).unwrap();
        assert_eq!(points.len(), 2);
        let top = TopProcess {
            name: "burner".into(),
            pid: 4242,
            cpu_pct: 87.5,
        };
        assert_eq!(points[0].top, Some(top));
        assert_eq!(points[1].top, None);
        // `show --json` keeps the point's flat keys.
        let json = serde_json::to_value(&points[0]).unwrap();
        assert_eq!(json["top_name"], "burner");
        assert_eq!(json["top_pid"], 4242);
        assert_eq!(json["top_cpu_pct"], 87.5);
    }
}
