//! `hogtrap status`: is the daemon recording; the last sample's age; gaps; the store's size;
//! rules and incidents; undelivered alerts.

use std::io::Write;

use anyhow::Context;

use super::{output, time, Ctx, JsonFlag};
use crate::store::query;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub format: JsonFlag,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let Args {
        format: JsonFlag { json },
    } = args;
    let store = ctx.open_store()?;
    let (db, conn) = (&store.path, &store.conn);
    let now = jiff::Timestamp::now().as_millisecond();
    let day_ago = now - 86_400_000;
    let st = query::status(conn, day_ago)?;
    // A store older than the outbox (schema v1) has none to show.
    let alerts = if st.schema_version >= 2 {
        Some(
            crate::store::outbox::summary(conn, day_ago)
                .with_context(|| format!("{}: reading the alert outbox", db.display()))?,
        )
    } else {
        None
    };
    let wal = std::fs::metadata(format!("{}-wal", db.display()))
        .map(|m| m.len() as i64)
        .unwrap_or(0);
    let alive = st.daemon_pid.is_some_and(|pid| {
        // SAFETY: kill with signal 0 only checks that the pid exists.
        let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    });
    let interval = st.interval_ms.unwrap_or(10_000);
    let age = st.last_ts_ms.map(|t| now - t);
    let recording = alive && age.is_some_and(|a| a <= 2 * interval + 1000);
    let rule_states = crate::store::incident::rule_states(conn)?;
    let open = crate::store::incident::list_incidents(conn, None, None, true)?;
    let wake = crate::store::wake::wake_status(conn, day_ago)?;
    if json {
        let mut v = serde_json::to_value(&st)?;
        v["wake"] = serde_json::to_value(&wake)?;
        v["rules"] = serde_json::to_value(&rule_states)?;
        v["open_incidents"] = serde_json::to_value(&open)?;
        v["recording"] = recording.into();
        v["last_sample_age_ms"] = age.into();
        v["wal_bytes"] = wal.into();
        v["alerts"] = serde_json::to_value(&alerts)?;
        return output::json(std::io::stdout().lock(), &v);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "store      {} (schema v{})",
        db.display(),
        st.schema_version
    )?;
    writeln!(
        out,
        "recording  {}",
        match (recording, st.daemon_pid) {
            (true, Some(pid)) => format!(
                "yes (pid {pid}, every {})",
                crate::format::human_ms(interval)
            ),
            (false, Some(pid)) if alive =>
                format!("NO: pid {pid} is alive but the last sample is late"),
            _ => "NO: no daemon running".to_string(),
        }
    )?;
    match (st.last_ts_ms, age) {
        (Some(t), Some(a)) => writeln!(
            out,
            "last       {} ({} ago, {})",
            time::format_local(t),
            crate::format::human_ms(a),
            st.last_level.map_or("?", |l| l.as_str())
        )?,
        _ => writeln!(out, "last       no samples yet")?,
    }
    writeln!(
        out,
        "samples    {}{}",
        st.samples,
        st.first_ts_ms
            .map(|t| format!(" since {}", time::format_local(t)))
            .unwrap_or_default()
    )?;
    writeln!(
        out,
        "size       {} (+ {} WAL)",
        output::bytes(st.db_bytes as f64),
        output::bytes(wal as f64)
    )?;
    let gaps: Vec<_> = st
        .events
        .iter()
        .filter(|e| matches!(e.kind.as_str(), "gap" | "dropped" | "error"))
        .collect();
    writeln!(out, "gaps (24h) {}", gaps.len())?;
    for e in gaps.iter().rev().take(10) {
        writeln!(
            out,
            "  {}  {}: {}",
            time::format_local(e.ts_ms),
            e.kind,
            e.message
        )?;
    }
    let firing: Vec<String> = rule_states
        .iter()
        .filter(|r| r.status != "inactive" || r.disabled)
        .map(|r| {
            format!(
                "{} {}{}",
                r.rule,
                if r.disabled { "disabled" } else { &r.status },
                r.since_ms
                    .map(|t| format!(" since {}", time::format_local(t)))
                    .unwrap_or_default()
            )
        })
        .collect();
    writeln!(
        out,
        "rules      {} ({} not inactive){}",
        rule_states.len(),
        firing.len(),
        if firing.is_empty() {
            String::new()
        } else {
            format!(": {}", firing.join("; "))
        }
    )?;
    writeln!(out, "incidents  {} open", open.len())?;
    for i in &open {
        writeln!(
            out,
            "  {}  {} ({}): {}",
            i.id,
            i.rule,
            time::format_local(i.opened_ms),
            i.title
        )?;
    }
    if let Some(a) = &alerts {
        writeln!(
            out,
            "alerts     {} undelivered, {} held for a digest, {} given up (24h)",
            a.undelivered, a.held, a.failed_recently
        )?;
        for u in &a.oldest_undelivered {
            writeln!(
                out,
                "  #{} {}  {} {} {:?}: {} attempt(s){}{}",
                u.id,
                time::format_local(u.created_ms),
                u.channel,
                u.kind,
                u.subject,
                u.attempts,
                if u.status == "pending" {
                    format!(", next {}", time::format_local(u.next_attempt_ms))
                } else {
                    ", sending now".to_string()
                },
                u.last_error
                    .as_deref()
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default()
            )?;
        }
        // "  last sent  2026-11-26 03:12:00  email alert 7", the labels aligned.
        let attempt = |label: &str, e: &crate::store::outbox::AttemptRow| {
            let at = time::format_local(e.ts_ms);
            format!("  last {label:<5} {at}  {} alert {}", e.channel, e.alert_id)
        };
        if let Some(e) = &a.last_error {
            let error = e.error.as_deref().unwrap_or("");
            writeln!(out, "{} ({}): {error}", attempt("error", e), e.result)?;
        }
        if let Some(s) = &a.last_sent {
            writeln!(out, "{}", attempt("sent", s))?;
        }
    }
    write_wake(&mut out, &wake)?;
    if !st.oom_kills.is_empty() {
        writeln!(out, "OOM kills (24h)")?;
        for (ts, pid, name, rss) in &st.oom_kills {
            writeln!(
                out,
                "  {}  the kernel killed {name} (pid {pid}, rss {})",
                time::format_local(*ts),
                output::bytes(*rss as f64)
            )?;
        }
    }
    Ok(())
}

/// The triggers in force, how often each fired in 24 h (and since the daemon started) and how
/// many samples each woke in 24 h; or why none is armed.
fn write_wake(out: &mut impl Write, wake: &crate::store::wake::WakeStatus) -> std::io::Result<()> {
    if wake.triggers.is_empty() {
        if let Some(line) = &wake.start_line {
            writeln!(out, "wake-ups   {line}")?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "wake-ups   {} trigger(s) in force",
        wake.triggers.len()
    )?;
    for t in &wake.triggers {
        writeln!(
            out,
            "  {:<10} {}: fired {} time(s) in 24h ({} since start), woke {} sample(s) in 24h",
            t.reason.as_str(),
            t.trigger,
            t.fired_in_window,
            t.fired_since_start,
            t.samples_woken
        )?;
    }
    Ok(())
}
