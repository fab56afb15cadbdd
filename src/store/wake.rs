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
    /// Firings since `since` (24 h for `hogtrap status`), across daemon restarts, to
    /// [`RECENT_BUCKET_MS`].
    pub fired_in_window: i64,
}

/// Firings are kept for `hogtrap status` in buckets of this many ms.
pub const RECENT_BUCKET_MS: i64 = 600_000;
/// How long firings are kept: a day and one bucket.
pub const RECENT_KEEP_MS: i64 = 24 * 3_600_000 + RECENT_BUCKET_MS;

/// Firings per reason over the last day, in [`RECENT_BUCKET_MS`] buckets, as kept in
/// `recorder_state.wake_fired_recent`: `psi_cpu=2993412:3,2993413:1 psi_io=2993412:1` (bucket
/// number since the epoch, count). The daemon loads it at start, so the day spans restarts.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RecentFirings(
    std::collections::BTreeMap<SampleReason, std::collections::BTreeMap<i64, u64>>,
);

impl RecentFirings {
    /// Reads the stored text; parts that do not parse are skipped (a newer or damaged value
    /// costs counts, never the daemon).
    pub fn parse(text: &str) -> RecentFirings {
        let mut out = RecentFirings::default();
        for part in text.split_whitespace() {
            let Some((reason, buckets)) = part.split_once('=') else {
                continue;
            };
            let Ok(reason) = reason.parse::<SampleReason>() else {
                continue;
            };
            let m = out.0.entry(reason).or_default();
            for b in buckets.split(',') {
                if let Some((k, n)) = b.split_once(':') {
                    if let (Ok(k), Ok(n)) = (k.parse::<i64>(), n.parse::<u64>()) {
                        *m.entry(k).or_default() += n;
                    }
                }
            }
        }
        out
    }

    /// One firing of `reason` at `now_ms`; forgets buckets older than [`RECENT_KEEP_MS`].
    pub fn add(&mut self, reason: SampleReason, now_ms: TimestampMs) {
        *self
            .0
            .entry(reason)
            .or_default()
            .entry(now_ms.div_euclid(RECENT_BUCKET_MS))
            .or_default() += 1;
        let oldest = (now_ms - RECENT_KEEP_MS).div_euclid(RECENT_BUCKET_MS);
        for m in self.0.values_mut() {
            m.retain(|&k, _| k >= oldest);
        }
        self.0.retain(|_, m| !m.is_empty());
    }

    /// Firings of `reason` in the buckets that end after `since`.
    pub fn count_since(&self, reason: SampleReason, since: TimestampMs) -> u64 {
        let first = since.div_euclid(RECENT_BUCKET_MS);
        self.0
            .get(&reason)
            .map_or(0, |m| m.range(first..).map(|(_, n)| n).sum())
    }

    /// The text to store.
    pub fn text(&self) -> String {
        self.0
            .iter()
            .map(|(r, m)| {
                let b: Vec<String> = m.iter().map(|(k, n)| format!("{k}:{n}")).collect();
                format!("{r}={}", b.join(","))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
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
    let recent = RecentFirings::parse(&state("wake_fired_recent")?);
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
            fired_in_window: recent.count_since(reason, since) as i64,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod recent_tests {
    use super::*;

    #[test]
    fn firings_count_over_the_last_day_and_survive_a_round_trip() {
        let day = 24 * 3_600_000;
        let t0: TimestampMs = 1_800_000_000_000;
        let mut r = RecentFirings::default();
        r.add(SampleReason::PsiCpu, t0);
        r.add(SampleReason::PsiCpu, t0 + 1000);
        r.add(SampleReason::PsiIo, t0 + day / 2);
        r.add(SampleReason::PsiCpu, t0 + day + 2 * RECENT_BUCKET_MS);
        let now = t0 + day + 2 * RECENT_BUCKET_MS;
        // The first two are more than a day old by now.
        assert_eq!(r.count_since(SampleReason::PsiCpu, now - day), 1);
        assert_eq!(r.count_since(SampleReason::PsiIo, now - day), 1);
        assert_eq!(r.count_since(SampleReason::Oom, now - day), 0);
        // Older buckets are forgotten, not only skipped.
        assert_eq!(r.count_since(SampleReason::PsiCpu, 0), 1);
        let back = RecentFirings::parse(&r.text());
        assert_eq!(back, r);
        // What does not parse is skipped.
        let odd = RecentFirings::parse("psi_cpu=1:2,x:3 nonsense psi_nope=1:1 oom=5");
        assert_eq!(odd.count_since(SampleReason::PsiCpu, 0), 2);
        assert_eq!(odd.count_since(SampleReason::Oom, 0), 0);
    }
}
