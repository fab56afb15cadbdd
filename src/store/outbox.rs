//! The alert outbox: one row per alert and channel (`alert`), and one row per delivery
//! attempt (`alert_attempt`). The SQL lives here; when to send, what to write and how to
//! back off is decided by `alert::outbox`.
//!
//! A row's `status`:
//! - `pending`: waiting for its next attempt at `next_attempt_ms`;
//! - `sending`: an attempt is in flight (claimed, `attempts` already counted);
//! - `sent`: delivered; `held`: kept back by the rate limit of its rule and channel;
//! - `digested`: held, and summarised in a digest that was queued (the digest is its own row);
//! - `failed`: given up (too old, or its channel was switched off); `last_error` says why.
//!
//! Guarantees:
//! - Every attempt is claimed (`pending` → `sending`, `attempts + 1`) in one transaction
//!   before the send and finished (`sending` → `sent`/`pending`/`failed`, plus its
//!   `alert_attempt` row) in one transaction after it. So a row is `sent` exactly when an
//!   attempt row says `sent`, and the normal path delivers exactly once.
//! - A row found in `sending` means the process died between those two transactions, maybe
//!   after the server accepted the message. [`Outbox::recover`] records that attempt as
//!   `interrupted` and makes the row `pending` again: at-least-once in that window (a
//!   possible duplicate beats a lost alert), exactly once everywhere else.
//! - Every write is a short `BEGIN IMMEDIATE` transaction, so the sampler's connection and
//!   the delivery connection take turns (each waits up to its busy_timeout) and never
//!   deadlock on a read-to-write upgrade.

use std::path::{Path, PathBuf};

use super::vocab::from_row;
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::{Result, StoreError};
use crate::format::redact;
use crate::model::AlertKind;
use crate::model::{TimestampMs, Urgency};

pub use crate::model::Channel;

/// An alert to queue, the same on every channel.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert {
    pub created_ms: TimestampMs,
    pub incident_id: Option<i64>,
    pub rule: String,
    pub kind: AlertKind,
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
    pub urgency: Urgency,
    /// Email: the addresses a rule named (`email { to = ... }`), sent to instead of
    /// `[email] to`; empty: the configured recipients.
    pub recipients: Vec<String>,
}

/// One row [`enqueue`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    pub id: i64,
    pub channel: Channel,
    /// Kept back by the rate limit; it goes out in the next digest.
    pub held: bool,
}

/// An alert ready for an attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct DueAlert {
    pub id: i64,
    pub channel: Channel,
    /// Attempts made before this one.
    pub attempts: i64,
    /// What was queued: the same on every channel.
    pub content: NewAlert,
}

/// A rule and channel with alerts held back, and when its rate-limit window began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldGroup {
    pub rule: String,
    pub channel: Channel,
    /// Creation time of the newest alert of this rule and channel that was not held (the
    /// start of the current window); `None` if there is none.
    pub window_start_ms: Option<TimestampMs>,
    pub count: i64,
}

/// One held-back alert, for the digest.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldAlert {
    pub id: i64,
    pub created_ms: TimestampMs,
    pub incident_id: Option<i64>,
    pub kind: AlertKind,
    pub subject: String,
    pub body_text: String,
    pub urgency: Urgency,
}

/// An open incident that has had a `fire` alert on a channel, for reminders.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenIncidentAlert {
    pub incident_id: i64,
    pub channel: Channel,
    pub rule: String,
    pub opened_ms: TimestampMs,
    /// Creation time of its newest `fire` or `reminder` alert on this channel.
    pub last_alert_ms: TimestampMs,
    /// The first `fire` alert's text, which a reminder repeats.
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
    pub urgency: Urgency,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Delivered: the row becomes `sent`.
    Sent,
    /// Failed; try again at this time (the row becomes `pending`).
    Retry {
        error: String,
        next_attempt_ms: TimestampMs,
    },
    /// Failed for good (too old, or the channel is off): the row becomes `failed`.
    GiveUp { error: String, result: &'static str },
}

/// Writes one row per channel. A row is written as `held` when its rule and channel had a
/// non-held alert less than `rate_limit_ms` before `alert.created_ms`, or still have held
/// alerts waiting for their digest (so a rule that keeps firing gets one digest per window,
/// never a fresh message that pushes the digest back). `rate_limit_ms` ≤ 0: no limit;
/// digests are never held.
pub fn enqueue(
    conn: &Connection,
    alert: &NewAlert,
    channels: &[Channel],
    rate_limit_ms: i64,
) -> rusqlite::Result<Vec<Enqueued>> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let mut out = Vec::with_capacity(channels.len());
    for &channel in channels {
        // Alertmanager groups and throttles itself: its rows are never held.
        let held = rate_limit_ms > 0
            && alert.kind != AlertKind::Digest
            && channel != Channel::Alertmanager
            && (window_start(&tx, &alert.rule, channel)?
                .is_some_and(|start| alert.created_ms < start + rate_limit_ms)
                || has_held(&tx, &alert.rule, channel)?);
        let id = insert(&tx, alert, channel, if held { "held" } else { "pending" })?;
        out.push(Enqueued { id, channel, held });
    }
    tx.commit()?;
    Ok(out)
}

/// The start of the current rate-limit window of a rule and channel.
fn window_start(
    conn: &Connection,
    rule: &str,
    channel: Channel,
) -> rusqlite::Result<Option<TimestampMs>> {
    conn.prepare_cached(
        "SELECT max(created_ms) FROM alert
         WHERE rule = ?1 AND channel = ?2 AND status NOT IN ('held', 'digested')",
    )?
    .query_row(params![rule, channel.as_str()], |r| r.get(0))
}

fn has_held(conn: &Connection, rule: &str, channel: Channel) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM alert WHERE rule = ?1 AND channel = ?2 AND status = 'held')",
    )?
    .query_row(params![rule, channel.as_str()], |r| r.get(0))
}

/// The message is redacted (`format::redact`) before it is stored, and so before it is sent.
fn insert(
    conn: &Connection,
    alert: &NewAlert,
    channel: Channel,
    status: &str,
) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO alert (created_ms, incident_id, rule, channel, kind, subject, body_text,
         body_html, urgency, status, attempts, next_attempt_ms, recipients)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, ?1, ?11)",
    )?
    .execute(params![
        alert.created_ms,
        alert.incident_id,
        alert.rule,
        channel.as_str(),
        alert.kind,
        redact(&alert.subject),
        redact(&alert.body_text),
        alert.body_html.as_deref().map(redact),
        alert.urgency,
        status,
        match channel {
            Channel::Email if !alert.recipients.is_empty() => {
                serde_json::to_string(&alert.recipients).ok()
            }
            _ => None,
        },
    ])?;
    Ok(conn.last_insert_rowid())
}

/// The delivery side's own connection to the store (the sampler keeps the other one).
pub struct Outbox {
    conn: Connection,
    path: PathBuf,
}

impl Outbox {
    /// Opens a second connection to a store that `Store::open` has already created and
    /// migrated.
    pub fn open(path: &Path, busy_timeout: std::time::Duration) -> Result<Outbox> {
        let err = |e| StoreError::from_sqlite(path, e);
        super::require_existing(path, "the outbox opens the store the recorder created")?;
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(busy_timeout).map_err(err)?;
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF;")
            .map_err(err)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        if version < 2 {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "schema v{version} has no alert outbox; open it with the recorder first"
                    ),
                ),
            });
        }
        Ok(Outbox {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        StoreError::from_sqlite(&self.path, e)
    }

    /// See [`enqueue`].
    pub fn enqueue(
        &self,
        alert: &NewAlert,
        channels: &[Channel],
        rate_limit_ms: i64,
    ) -> Result<Vec<Enqueued>> {
        enqueue(&self.conn, alert, channels, rate_limit_ms).map_err(|e| self.err(e))
    }

    /// Finishes attempts a previous process left in flight: each gets an `interrupted`
    /// attempt row and becomes `pending`, due now. Returns how many.
    pub fn recover(&self, now_ms: TimestampMs) -> Result<usize> {
        let run = || -> rusqlite::Result<usize> {
            let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO alert_attempt (alert_id, ts_ms, channel, result, error)
                 SELECT id, ?1, channel, 'interrupted',
                        'hogtrap stopped during this attempt; the message may have been \
                         delivered; sending it again'
                 FROM alert WHERE status = 'sending'",
                [now_ms],
            )?;
            let n = tx.execute(
                "UPDATE alert SET status = 'pending', next_attempt_ms = ?1,
                        last_error = 'interrupted: hogtrap stopped during an attempt'
                 WHERE status = 'sending'",
                [now_ms],
            )?;
            tx.commit()?;
            Ok(n)
        };
        run().map_err(|e| self.err(e))
    }

    /// Pending alerts whose next attempt is due at `now_ms`, oldest first.
    pub fn due(&self, now_ms: TimestampMs, limit: usize) -> Result<Vec<DueAlert>> {
        let run = || -> rusqlite::Result<Vec<DueAlert>> {
            let mut st = self.conn.prepare_cached(
                "SELECT id, channel, attempts, created_ms, incident_id, rule, kind, subject,
                        body_text, body_html, urgency, recipients
                 FROM alert WHERE status = 'pending' AND next_attempt_ms <= ?1
                 ORDER BY next_attempt_ms, id LIMIT ?2",
            )?;
            // Only this module writes the channel column: an unknown value is an error (naming
            // it), never a guess.
            let rows = st.query_map(params![now_ms, limit as i64], |r| {
                Ok(from_row!(r => DueAlert {
                    id, channel, attempts;
                    content: from_row!(r, from 3 => NewAlert {
                        created_ms, incident_id, rule, kind, subject, body_text, body_html,
                        urgency,
                        recipients => |j: Option<String>| j
                            .and_then(|j| serde_json::from_str(&j).ok())
                            .unwrap_or_default()
                    })
                }))
            })?;
            rows.collect()
        };
        run().map_err(|e| self.err(e))
    }

    /// The earliest `next_attempt_ms` of a pending alert.
    pub fn next_attempt_ms(&self) -> Result<Option<TimestampMs>> {
        self.conn
            .query_row(
                "SELECT min(next_attempt_ms) FROM alert WHERE status = 'pending'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Claims a pending alert for one attempt. False if it is no longer pending.
    pub fn claim(&self, id: i64) -> Result<bool> {
        self.conn
            .execute(
                "UPDATE alert SET status = 'sending', attempts = attempts + 1
                 WHERE id = ?1 AND status = 'pending'",
                [id],
            )
            .map(|n| n == 1)
            .map_err(|e| self.err(e))
    }

    /// Moves the next attempt of pending alerts to `next_attempt_ms` without an attempt
    /// (their channel's server just failed on another alert). Returns how many moved.
    pub fn postpone(&self, ids: &[i64], next_attempt_ms: TimestampMs) -> Result<usize> {
        let run = || -> rusqlite::Result<usize> {
            let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
            let mut n = 0;
            for id in ids {
                n += tx
                    .prepare_cached(
                        "UPDATE alert SET next_attempt_ms = max(next_attempt_ms, ?2)
                         WHERE id = ?1 AND status = 'pending'",
                    )?
                    .execute(params![id, next_attempt_ms])?;
            }
            tx.commit()?;
            Ok(n)
        };
        run().map_err(|e| self.err(e))
    }

    /// Records how a claimed attempt ended, and the row's new status, in one transaction.
    pub fn finish(&self, id: i64, ts_ms: TimestampMs, outcome: &AttemptOutcome) -> Result<()> {
        let run = || -> rusqlite::Result<()> {
            let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
            let (result, error) = match outcome {
                AttemptOutcome::Sent => {
                    tx.execute(
                        "UPDATE alert SET status = 'sent', sent_ms = ?2 WHERE id = ?1",
                        params![id, ts_ms],
                    )?;
                    ("sent", None)
                }
                AttemptOutcome::Retry {
                    error,
                    next_attempt_ms,
                } => {
                    tx.execute(
                        "UPDATE alert SET status = 'pending', next_attempt_ms = ?2,
                                last_error = ?3 WHERE id = ?1",
                        params![id, next_attempt_ms, error],
                    )?;
                    ("error", Some(error.as_str()))
                }
                AttemptOutcome::GiveUp { error, result } => {
                    tx.execute(
                        "UPDATE alert SET status = 'failed', last_error = ?2 WHERE id = ?1",
                        params![id, error],
                    )?;
                    (*result, Some(error.as_str()))
                }
            };
            tx.execute(
                "INSERT INTO alert_attempt (alert_id, ts_ms, channel, result, error)
                 SELECT id, ?2, channel, ?3, ?4 FROM alert WHERE id = ?1",
                params![id, ts_ms, result, error],
            )?;
            tx.commit()
        };
        run().map_err(|e| self.err(e))
    }

    /// Rules and channels with held alerts, with the start of their current window.
    pub fn held_groups(&self) -> Result<Vec<HeldGroup>> {
        let run = || -> rusqlite::Result<Vec<HeldGroup>> {
            let mut st = self.conn.prepare_cached(
                "SELECT h.rule, h.channel, count(*),
                        (SELECT max(a.created_ms) FROM alert a
                         WHERE a.rule = h.rule AND a.channel = h.channel
                           AND a.status NOT IN ('held', 'digested'))
                 FROM alert h WHERE h.status = 'held'
                 GROUP BY h.rule, h.channel ORDER BY h.rule, h.channel",
            )?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (rule, channel, count, window_start_ms) = row?;
                if let Ok(channel) = channel.parse::<Channel>() {
                    out.push(HeldGroup {
                        rule,
                        channel,
                        window_start_ms,
                        count,
                    });
                }
            }
            Ok(out)
        };
        run().map_err(|e| self.err(e))
    }

    /// The held alerts of one rule and channel, oldest first.
    pub fn held_alerts(&self, rule: &str, channel: Channel) -> Result<Vec<HeldAlert>> {
        let run = || -> rusqlite::Result<Vec<HeldAlert>> {
            let mut st = self.conn.prepare_cached(
                "SELECT id, created_ms, incident_id, kind, subject, body_text, urgency
                 FROM alert WHERE status = 'held' AND rule = ?1 AND channel = ?2
                 ORDER BY created_ms, id",
            )?;
            let rows = st.query_map(params![rule, channel.as_str()], |r| {
                Ok(from_row!(r => HeldAlert {
                    id, created_ms, incident_id, kind, subject, body_text, urgency
                }))
            })?;
            rows.collect()
        };
        run().map_err(|e| self.err(e))
    }

    /// Queues a digest on one channel and marks the alerts it summarises `digested`, in one
    /// transaction. Returns the digest's id.
    pub fn enqueue_digest(
        &self,
        digest: &NewAlert,
        channel: Channel,
        summarised: &[i64],
    ) -> Result<i64> {
        let run = || -> rusqlite::Result<i64> {
            let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
            let id = insert(&tx, digest, channel, "pending")?;
            for held in summarised {
                tx.prepare_cached(
                    "UPDATE alert SET status = 'digested', last_error = ?2
                     WHERE id = ?1 AND status = 'held'",
                )?
                .execute(params![
                    held,
                    format!("held by the rate limit; in digest {id}")
                ])?;
            }
            tx.commit()?;
            Ok(id)
        };
        run().map_err(|e| self.err(e))
    }

    /// Open incidents (not closed, no `clear` alert yet) that had a `fire` alert, per
    /// channel, with their newest `fire`/`reminder` time and the first `fire` text.
    pub fn open_incident_alerts(&self) -> Result<Vec<OpenIncidentAlert>> {
        let run = || -> rusqlite::Result<Vec<OpenIncidentAlert>> {
            let mut st = self.conn.prepare_cached(
                "SELECT a.incident_id, i.rule, i.opened_ms, max(a.created_ms), f.subject,
                        f.body_text, f.body_html, f.urgency, a.channel
                 FROM alert a
                 JOIN incident i ON i.id = a.incident_id
                 JOIN alert f ON f.id = (SELECT min(x.id) FROM alert x
                                         WHERE x.incident_id = a.incident_id
                                           AND x.channel = a.channel AND x.kind = 'fire')
                 WHERE i.closed_ms IS NULL AND a.kind IN ('fire', 'reminder')
                   AND NOT EXISTS (SELECT 1 FROM alert c
                                   WHERE c.incident_id = a.incident_id AND c.kind = 'clear')
                 GROUP BY a.incident_id, a.channel",
            )?;
            let rows = st.query_map([], |r| {
                // The channel (column 8) is set below, once parsed.
                let open = from_row!(r => OpenIncidentAlert {
                    incident_id, rule, opened_ms, last_alert_ms, subject, body_text, body_html,
                    urgency;
                    channel: Channel::Email
                });
                Ok((r.get::<_, String>(8)?, open))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (channel, mut open) = row?;
                if let Ok(channel) = channel.parse::<Channel>() {
                    open.channel = channel;
                    out.push(open);
                }
            }
            Ok(out)
        };
        run().map_err(|e| self.err(e))
    }

    /// Direct access for tests.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

/// An alert not delivered yet, for `hogtrap status`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UndeliveredAlert {
    pub id: i64,
    pub created_ms: TimestampMs,
    pub rule: String,
    pub channel: String,
    pub kind: AlertKind,
    pub subject: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_ms: TimestampMs,
    pub last_error: Option<String>,
}

/// One attempt, for `hogtrap status`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AttemptRow {
    pub alert_id: i64,
    pub ts_ms: TimestampMs,
    pub channel: String,
    pub result: String,
    pub error: Option<String>,
}

/// The outbox at a glance.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OutboxSummary {
    /// `pending` and `sending` rows.
    pub undelivered: i64,
    /// `held` rows (waiting for their digest).
    pub held: i64,
    /// Rows given up since `since_ms`.
    pub failed_recently: i64,
    /// The oldest undelivered rows, up to 10.
    pub oldest_undelivered: Vec<UndeliveredAlert>,
    pub last_error: Option<AttemptRow>,
    pub last_sent: Option<AttemptRow>,
}

/// The outbox at a glance, read from any connection (the CLI's is read-only).
pub fn summary(conn: &Connection, since_ms: TimestampMs) -> rusqlite::Result<OutboxSummary> {
    let count = |status_sql: &str| -> rusqlite::Result<i64> {
        conn.query_row(
            &format!("SELECT count(*) FROM alert WHERE {status_sql}"),
            [],
            |r| r.get(0),
        )
    };
    let undelivered = count("status IN ('pending', 'sending')")?;
    let held = count("status = 'held'")?;
    let failed_recently: i64 = conn.query_row(
        "SELECT count(*) FROM alert a WHERE a.status = 'failed' AND EXISTS
           (SELECT 1 FROM alert_attempt t WHERE t.alert_id = a.id AND t.ts_ms >= ?1)",
        [since_ms],
        |r| r.get(0),
    )?;
    let mut st = conn.prepare(
        "SELECT id, created_ms, rule, channel, kind, subject, status, attempts,
                next_attempt_ms, last_error
         FROM alert WHERE status IN ('pending', 'sending')
         ORDER BY created_ms, id LIMIT 10",
    )?;
    let oldest_undelivered = st
        .query_map([], |r| {
            Ok(from_row!(r => UndeliveredAlert {
                id, created_ms, rule, channel, kind, subject, status, attempts, next_attempt_ms,
                last_error
            }))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let attempt = |filter: &str| -> rusqlite::Result<Option<AttemptRow>> {
        conn.query_row(
            &format!(
                "SELECT alert_id, ts_ms, channel, result, error FROM alert_attempt
                 WHERE {filter} ORDER BY ts_ms DESC, id DESC LIMIT 1"
            ),
            [],
            |r| Ok(from_row!(r => AttemptRow { alert_id, ts_ms, channel, result, error })),
        )
        .optional()
    };
    Ok(OutboxSummary {
        undelivered,
        held,
        failed_recently,
        oldest_undelivered,
        last_error: attempt("result <> 'sent'")?,
        last_sent: attempt("result = 'sent'")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn alert(ts: i64, rule: &str, kind: AlertKind) -> NewAlert {
        NewAlert {
            created_ms: ts,
            incident_id: None,
            rule: rule.into(),
            kind,
            subject: format!("{rule} at {ts}"),
            body_text: "body".into(),
            body_html: None,
            urgency: Urgency::Normal,
            recipients: Vec::new(),
        }
    }

    fn open() -> (tempfile::TempDir, Store, Outbox) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = Store::open(&path, std::time::Duration::from_secs(1)).unwrap();
        let outbox = Outbox::open(&path, std::time::Duration::from_secs(1)).unwrap();
        (dir, store, outbox)
    }

    #[test]
    fn one_row_per_channel_and_the_rate_limit_holds_the_rest() {
        let (_dir, mut store, outbox) = open();
        let both = [Channel::Email, Channel::Desktop];
        let first = store
            .enqueue_alert(&alert(1_000, "load", AlertKind::Fire), &both, 60_000)
            .unwrap();
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|e| !e.held));
        // A fire of `rule` at `ts` on `channels`: whether each row was held.
        let held = |ts, rule, channels: &[Channel], limit| -> Vec<bool> {
            let rows = outbox.enqueue(&alert(ts, rule, AlertKind::Fire), channels, limit);
            rows.unwrap().iter().map(|e| e.held).collect()
        };
        let email = [Channel::Email];
        // Within the window: held on both channels; another rule is not affected.
        assert!(held(30_000, "load", &both, 60_000).iter().all(|h| *h));
        assert!(!held(30_000, "swap", &email, 60_000)[0]);
        // After the window, while held alerts wait for their digest: held too.
        assert!(held(61_000, "load", &both, 60_000).iter().all(|h| *h));
        // After the window with nothing held: sent.
        assert!(!held(91_000, "swap", &email, 60_000)[0]);
        // No limit.
        assert!(held(61_001, "load", &both, 0).iter().all(|h| !*h));
        let groups = outbox.held_groups().unwrap();
        assert_eq!(groups.len(), 2, "{groups:?}");
        assert_eq!(groups[0].count, 2);
    }

    #[test]
    fn attempts_are_claimed_finished_and_recorded() {
        let (_dir, _store, outbox) = open();
        let ids = outbox
            .enqueue(&alert(1_000, "load", AlertKind::Fire), &[Channel::Email], 0)
            .unwrap();
        let id = ids[0].id;
        assert_eq!(outbox.due(999, 10).unwrap().len(), 0);
        let due = outbox.due(1_000, 10).unwrap();
        assert_eq!(due[0].id, id);
        assert!(outbox.claim(id).unwrap());
        assert!(
            !outbox.claim(id).unwrap(),
            "a claimed row is not claimed twice"
        );
        outbox
            .finish(
                id,
                1_100,
                &AttemptOutcome::Retry {
                    error: "refused".into(),
                    next_attempt_ms: 5_000,
                },
            )
            .unwrap();
        assert_eq!(outbox.next_attempt_ms().unwrap(), Some(5_000));
        assert!(outbox.due(4_999, 10).unwrap().is_empty());
        assert!(outbox.claim(id).unwrap());
        outbox.finish(id, 5_100, &AttemptOutcome::Sent).unwrap();
        let (status, attempts, sent): (String, i64, Option<i64>) = outbox
            .connection()
            .query_row(
                "SELECT status, attempts, sent_ms FROM alert WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((status.as_str(), attempts, sent), ("sent", 2, Some(5_100)));
        let log: Vec<(String, Option<String>)> = outbox
            .connection()
            .prepare("SELECT result, error FROM alert_attempt WHERE alert_id = ?1 ORDER BY id")
            .unwrap()
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            log,
            vec![
                ("error".to_string(), Some("refused".to_string())),
                ("sent".to_string(), None)
            ]
        );
        let s = summary(outbox.connection(), 0).unwrap();
        assert_eq!(s.undelivered, 0);
        assert_eq!(s.last_error.unwrap().error.as_deref(), Some("refused"));
        assert_eq!(s.last_sent.unwrap().ts_ms, 5_100);
    }

    #[test]
    fn an_attempt_cut_short_by_a_crash_is_recorded_and_retried() {
        let (_dir, _store, outbox) = open();
        let id = outbox
            .enqueue(&alert(1_000, "load", AlertKind::Fire), &[Channel::Email], 0)
            .unwrap()[0]
            .id;
        assert!(outbox.claim(id).unwrap());
        // The process dies here. The next one:
        assert_eq!(outbox.recover(9_000).unwrap(), 1);
        let due = outbox.due(9_000, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].attempts, 1);
        let result: String = outbox
            .connection()
            .query_row(
                "SELECT result FROM alert_attempt WHERE alert_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(result, "interrupted");
        let s = summary(outbox.connection(), 0).unwrap();
        assert_eq!(s.undelivered, 1);
        assert_eq!(s.oldest_undelivered[0].id, id);
    }

    #[test]
    fn digest_marks_what_it_summarises_and_opens_a_new_window() {
        let (_dir, _store, outbox) = open();
        let e = [Channel::Email];
        outbox
            .enqueue(&alert(0, "load", AlertKind::Fire), &e, 60_000)
            .unwrap();
        for t in 1..5 {
            assert!(
                outbox
                    .enqueue(&alert(t * 1_000, "load", AlertKind::Fire), &e, 60_000)
                    .unwrap()[0]
                    .held
            );
        }
        let group = &outbox.held_groups().unwrap()[0];
        assert_eq!((group.count, group.window_start_ms), (4, Some(0)));
        let held = outbox.held_alerts("load", Channel::Email).unwrap();
        let ids: Vec<i64> = held.iter().map(|h| h.id).collect();
        let digest = NewAlert {
            kind: AlertKind::Digest,
            ..alert(60_000, "load", AlertKind::Digest)
        };
        outbox
            .enqueue_digest(&digest, Channel::Email, &ids)
            .unwrap();
        assert!(outbox.held_groups().unwrap().is_empty());
        // The digest started a new window.
        assert!(
            outbox
                .enqueue(&alert(61_000, "load", AlertKind::Fire), &e, 60_000)
                .unwrap()[0]
                .held
        );
    }

    #[test]
    fn reminders_see_open_incidents_with_a_fire_alert() {
        let (_dir, store, outbox) = open();
        store
            .connection()
            .execute_batch(
                "INSERT INTO incident (id, rule, severity, title, opened_ms, updated_ms)
                 VALUES (7, 'load', 'critical', 'load spike', 500, 500);
                 INSERT INTO incident (id, rule, severity, title, opened_ms, updated_ms, closed_ms)
                 VALUES (8, 'load', 'critical', 'load spike', 500, 500, 900);",
            )
            .unwrap();
        for incident in [7, 8] {
            outbox
                .enqueue(
                    &NewAlert {
                        incident_id: Some(incident),
                        ..alert(1_000, "load", AlertKind::Fire)
                    },
                    &[Channel::Email],
                    0,
                )
                .unwrap();
        }
        let open = outbox.open_incident_alerts().unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!((open[0].incident_id, open[0].last_alert_ms), (7, 1_000));
        outbox
            .enqueue(
                &NewAlert {
                    incident_id: Some(7),
                    ..alert(2_000, "load", AlertKind::Clear)
                },
                &[Channel::Email],
                0,
            )
            .unwrap();
        assert!(outbox.open_incident_alerts().unwrap().is_empty());
    }
}

impl super::Store {
    /// Alerts waiting for delivery: pending or in flight.
    pub fn outbox_backlog(&self) -> Result<i64> {
        self.connection()
            .prepare_cached("SELECT count(*) FROM alert WHERE status IN ('pending', 'sending')")
            .and_then(|mut st| st.query_row([], |r| r.get(0)))
            .map_err(|e| StoreError::from_sqlite(self.path(), e))
    }
}

/// An incident as Alertmanager is told about it.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentExport {
    pub id: i64,
    pub rule: String,
    pub severity: crate::model::Severity,
    pub title: String,
    pub opened_ms: TimestampMs,
    pub closed_ms: Option<TimestampMs>,
}

const INCIDENT_EXPORT: &str =
    "SELECT id, rule, severity, title, opened_ms, closed_ms FROM incident";

fn incident_export(r: &rusqlite::Row) -> rusqlite::Result<IncidentExport> {
    Ok(from_row!(r => IncidentExport { id, rule, severity, title, opened_ms, closed_ms }))
}

impl Outbox {
    /// The incident an Alertmanager row is about, as it is now (it may have closed since).
    pub fn incident_export(&self, id: i64) -> Result<Option<IncidentExport>> {
        self.conn
            .prepare_cached(&format!("{INCIDENT_EXPORT} WHERE id = ?1"))
            .and_then(|mut st| st.query_row([id], incident_export).optional())
            .map_err(|e| self.err(e))
    }

    /// What Alertmanager is re-told every `resend_every`: incidents it was told about (a
    /// `sent` alertmanager row) that are open, or closed at or after `closed_since_ms`.
    pub fn alertmanager_current(
        &self,
        closed_since_ms: TimestampMs,
    ) -> Result<Vec<IncidentExport>> {
        let run = || -> rusqlite::Result<Vec<IncidentExport>> {
            let mut st = self.conn.prepare_cached(&format!(
                "{INCIDENT_EXPORT} WHERE (closed_ms IS NULL OR closed_ms >= ?1)
                   AND id IN (SELECT incident_id FROM alert
                              WHERE channel = 'alertmanager' AND status = 'sent')
                 ORDER BY id"
            ))?;
            let rows = st.query_map([closed_since_ms], incident_export)?;
            rows.collect()
        };
        run().map_err(|e| self.err(e))
    }
}
