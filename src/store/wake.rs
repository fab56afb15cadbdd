//! What woke the recorder, for `hogtrap status`: the triggers in force (written by the daemon
//! at start), how often each fired since then, and the samples each woke in a window.

use rusqlite::{Connection, OptionalExtension};

use crate::model::{SampleReason, TimestampMs};

/// One trigger in force and what it did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WakeTrigger {
    pub reason: SampleReason,
    /// `cpu some 1s/2s`.
    pub trigger: String,
    /// Firings since the daemon started (those that joined another wake-up or were part of
    /// a storm too).
    pub fired_since_start: i64,
    /// Samples this trigger woke since `since`.
    pub samples_woken: i64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WakeStatus {
    /// The daemon's last start line about wake-ups (what is armed, what was refused, why).
    pub start_line: Option<String>,
    pub triggers: Vec<WakeTrigger>,
}

/// The triggers in force and their counts; no triggers when the daemon armed none (or the
/// store predates wake-ups).
pub fn wake_status(conn: &Connection, since: TimestampMs) -> rusqlite::Result<WakeStatus> {
    let start_line = conn
        .query_row(
            "SELECT message FROM recorder_event
             WHERE kind = 'notice' AND message LIKE 'wake-ups%' ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get::<_, String>(0),
        )
        .optional()?;
    let triggers = triggers(conn, since)?;
    Ok(WakeStatus {
        start_line,
        triggers,
    })
}

fn triggers(conn: &Connection, since: TimestampMs) -> rusqlite::Result<Vec<WakeTrigger>> {
    let state = |k: &str| -> rusqlite::Result<String> {
        Ok(conn
            .query_row(
                "SELECT value FROM recorder_state WHERE key = ?1",
                [k],
                |r| r.get::<_, String>(0),
            )
            .optional()?
            .unwrap_or_default())
    };
    let has_reason: bool = conn.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('sample') WHERE name = 'reason'",
        [],
        |r| r.get(0),
    )?;
    if !has_reason {
        return Ok(Vec::new());
    }
    let fired = state("wake_fired")?;
    let fired_of = |reason: SampleReason| -> i64 {
        fired
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == reason.as_str())
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    };
    let mut woken =
        conn.prepare_cached("SELECT count(*) FROM sample WHERE ts_ms >= ?1 AND reason = ?2")?;
    let mut out = Vec::new();
    for line in state("wake_triggers")?.lines() {
        let Some((reason, trigger)) = line.split_once('=') else {
            continue;
        };
        let Ok(reason) = reason.parse::<SampleReason>() else {
            continue;
        };
        out.push(WakeTrigger {
            reason,
            trigger: trigger.to_string(),
            fired_since_start: fired_of(reason),
            samples_woken: woken.query_row(rusqlite::params![since, reason], |r| r.get(0))?,
        });
    }
    Ok(out)
}
