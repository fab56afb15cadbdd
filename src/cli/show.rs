//! `hogtrap show ID`: one incident's story: rule, severity, peaks, culprits, timeline,
//! captures, alerts.

use std::io::Write;

use anyhow::bail;

use super::{output, time, Ctx, JsonFlag};
use crate::model::Level;
use crate::store::incident as inc;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Incident number (see `hogtrap incidents`).
    pub id: i64,
    #[command(flatten)]
    pub format: JsonFlag,
    /// The whole timeline, not 30 rows of it.
    #[arg(long)]
    pub full: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let Args {
        id,
        format: JsonFlag { json },
        full,
    } = args;
    let store = ctx.open_store()?;
    let conn = &store.conn;
    let Some(i) = inc::incident(conn, id)? else {
        bail!(
            "no incident {id} in {} (see: hogtrap incidents)",
            store.path.display()
        );
    };
    let culprits = inc::culprits(conn, id)?;
    let timeline = inc::timeline(conn, id)?;
    let captures = inc::captures(conn, id)?;
    let alerts = inc::alerts_of_incident(conn, id)?;
    let note = inc::resolve_note(conn, id)?;
    let mut out = std::io::stdout().lock();
    if json {
        return output::json(
            out,
            &serde_json::json!({
                "incident": i, "culprits": culprits, "timeline": timeline,
                "captures": captures, "alerts": alerts, "resolve_note": note,
            }),
        );
    }
    let now = jiff::Timestamp::now().as_millisecond();
    writeln!(out, "Incident {}: {}", i.id, i.title)?;
    writeln!(
        out,
        "rule      {}{}, severity {}",
        i.rule,
        i.rule_file
            .as_deref()
            .map(|f| format!(" ({f})"))
            .unwrap_or_default(),
        i.severity
    )?;
    writeln!(out, "opened    {}", time::format_local(i.opened_ms))?;
    match i.closed_ms {
        Some(c) => writeln!(
            out,
            "closed    {} (after {})",
            time::format_local(c),
            crate::format::human_ms(c - i.opened_ms)
        )?,
        None => writeln!(
            out,
            "closed    no: open for {}",
            crate::format::human_ms(now - i.opened_ms)
        )?,
    }
    if !i.summary.is_empty() {
        writeln!(out, "summary   {}", i.summary)?;
    }
    if let Some(note) = &note {
        writeln!(out, "note      {note}")?;
    }
    if let serde_json::Value::Object(peak) = &i.peak {
        let parts: Vec<String> = peak
            .iter()
            .map(|(k, v)| format!("{k} {}", crate::format::value_text(k, v)))
            .collect();
        if !parts.is_empty() {
            writeln!(out, "peak      {}", parts.join(", "))?;
        }
    }
    writeln!(out, "\nCulprits when it opened")?;
    if culprits.is_empty() {
        writeln!(out, "  none recorded")?;
    } else {
        let [pid_h, user_h, name_h] = output::ProcessLabel::COLUMNS;
        let mut t = output::table(&["", "#", pid_h, user_h, name_h, "VALUE", "COMMAND"]);
        for c in &culprits {
            let label = output::ProcessLabel::new(c.pid, &c.name, c.user.as_deref())
                .with_cmdline(c.cmdline.as_deref());
            let [pid, user, name] = label.cells();
            t.add_row(vec![
                c.resource.as_str().to_uppercase(),
                c.rank.to_string(),
                pid,
                user,
                name,
                output::resource_value(c.resource, c.value),
                label.command(50),
            ]);
        }
        output::align_right(&mut t, &[1, 2, 5]);
        writeln!(out, "{}", indent(&output::render(&t)))?;
    }
    let detail = timeline.iter().filter(|p| p.level == Level::Detail).count();
    writeln!(
        out,
        "\nTimeline ({} samples, {} in detail{})",
        timeline.len(),
        detail,
        if timeline.len() > 30 && !full {
            "; 30 shown, --full for all"
        } else {
            ""
        }
    )?;
    let step = if full || timeline.len() <= 30 {
        1
    } else {
        timeline.len().div_ceil(30)
    };
    let mut t = output::table(&["TIME", "LEVEL", "LOAD", "CPU", "MEM USED", "TOP BY CPU"]);
    for (n, p) in timeline.iter().enumerate() {
        let last = n + 1 == timeline.len();
        if n % step != 0 && !last {
            continue;
        }
        let mark = if p.ts_ms < i.opened_ms {
            " (before)"
        } else {
            ""
        };
        t.add_row(vec![
            format!("{}{mark}", time::format_local(p.ts_ms)),
            p.level.to_string(),
            format!("{:.2}", p.load1),
            output::pct(p.cpu_busy_pct),
            output::bytes(p.mem_used_bytes as f64),
            p.top.as_ref().map_or_else(String::new, |t| {
                format!(
                    "{} {}",
                    output::ProcessLabel::new(t.pid, &t.name, None),
                    output::pct(t.cpu_pct)
                )
            }),
        ]);
    }
    output::align_right(&mut t, &[2, 3, 4]);
    writeln!(out, "{}", indent(&output::render(&t)))?;
    if !captures.is_empty() {
        writeln!(out, "\nCaptures")?;
        for c in &captures {
            writeln!(
                out,
                "  {} to {}: every process every {}",
                time::format_local(c.started_ms),
                c.ended_ms
                    .map(time::format_local)
                    .unwrap_or_else(|| "now (running)".into()),
                crate::format::human_ms(c.interval_ms),
            )?;
        }
    }
    writeln!(out, "\nAlerts")?;
    if alerts.is_empty() {
        writeln!(out, "  none")?;
    }
    for a in &alerts {
        writeln!(
            out,
            "  {}  {} {} \"{}\": {}{}",
            time::format_local(a.created_ms),
            a.channel,
            a.kind,
            a.subject,
            a.status,
            a.last_error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        )?;
    }
    let to = i.closed_ms.unwrap_or(now);
    writeln!(
        out,
        "\nMore: hogtrap top --from \"{}\" --to \"{}\" --by cpu",
        time::format_local(i.opened_ms),
        time::format_local(to)
    )?;
    Ok(())
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
