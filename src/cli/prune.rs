//! `hogtrap prune [--dry-run] [--json]`: apply `[retention]` now, or say what it would do —
//! what goes and what stays, by reason and table — with a progress bar on a terminal.

use std::io::{IsTerminal, Write};
use std::path::Path;

use super::{output, time, Ctx, JsonFlag};
use crate::store::retention::{self, Progress, Pruner, RetentionPolicy, Summary};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only say what would go; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub format: JsonFlag,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let Args {
        dry_run,
        format: JsonFlag { json },
    } = args;
    let config = ctx.config()?;
    let db = &ctx.db_path()?;
    let settings = RetentionPolicy::from_config(config);
    let now = jiff::Timestamp::now().as_millisecond();
    let bar = progress_bar();
    let mut tick = |p: Progress| {
        if let Some(b) = &bar {
            b.set_length(p.total.max(1));
            b.set_position(p.done.min(p.total));
            b.set_message(p.phase);
        }
        true
    };
    let summary = if dry_run {
        let store = ctx.open_store()?;
        retention::plan(&store.conn, &settings, None, now, &mut tick)?
    } else {
        let mut p = Pruner::open(
            db,
            settings,
            config
                .store
                .busy_timeout
                .std()
                .max(std::time::Duration::from_secs(5)),
        )?;
        p.run_retention(now, &mut tick)?
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let mut out = std::io::stdout().lock();
    if json {
        return output::json(out, &summary);
    }
    print_summary(&mut out, &summary, db)?;
    Ok(())
}

fn progress_bar() -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let b = indicatif::ProgressBar::new(1);
    b.set_style(
        indicatif::ProgressStyle::with_template("{msg:>20} [{bar:40}] {pos}/{len} ({eta} left)")
            .ok()?
            .progress_chars("=> "),
    );
    Some(b)
}

fn print_summary(out: &mut impl Write, s: &Summary, db: &Path) -> anyhow::Result<()> {
    writeln!(
        out,
        "{} {} as of {}{}\n",
        if s.dry_run { "would prune" } else { "pruned" },
        db.display(),
        time::format_local(s.now_ms),
        if s.complete { "" } else { " (stopped early)" }
    )?;
    if s.removed.is_empty() {
        writeln!(out, "nothing goes: everything is within [retention]\n")?;
    } else {
        writeln!(out, "{}", if s.dry_run { "WHAT GOES" } else { "WHAT WENT" })?;
        let mut t = output::table(&["POLICY", "REASON", "TABLE", "ROWS", "FROM", "TO"]);
        for r in &s.removed {
            t.add_row(vec![
                r.policy.clone(),
                if r.action == "demote" {
                    format!("{} (level changed)", r.reason)
                } else {
                    r.reason.clone()
                },
                r.table.to_string(),
                r.rows.to_string(),
                r.from_ms.map(time::format_local).unwrap_or_default(),
                r.to_ms.map(time::format_local).unwrap_or_default(),
            ]);
        }
        output::align_right(&mut t, &[3]);
        writeln!(out, "{}\n", output::render(&t))?;
        let mut by_table: std::collections::BTreeMap<&str, u64> = Default::default();
        for r in s.removed.iter().filter(|r| r.action == "delete") {
            *by_table.entry(r.table).or_default() += r.rows;
        }
        let mut t = output::table(&["TABLE", "ROWS REMOVED"]);
        for (table, rows) in by_table {
            t.add_row(vec![table.to_string(), rows.to_string()]);
        }
        output::align_right(&mut t, &[1]);
        writeln!(out, "{}\n", output::render(&t))?;
    }
    let k = &s.kept;
    writeln!(
        out,
        "{}",
        if s.dry_run {
            "WHAT STAYS"
        } else {
            "WHAT STAYED"
        }
    )?;
    writeln!(
        out,
        "samples    {} baseline, {} detail",
        k.baseline_samples, k.detail_samples
    )?;
    writeln!(
        out,
        "pinned     {} in closed incidents' windows, {} in open incidents (never removed)",
        k.pinned_samples, k.open_incident_samples
    )?;
    let z = &s.size;
    let size = |n: u64| output::bytes(n as f64);
    let file = if s.dry_run {
        format!(
            "{} file, {} in use",
            size(z.file_bytes_before),
            size(z.used_bytes_before)
        )
    } else {
        format!(
            "{} -> {} file",
            size(z.file_bytes_before),
            size(z.file_bytes_after)
        )
    };
    writeln!(out, "size       {file}, cap {}", size(z.max_size_bytes))?;
    for n in &s.notes {
        writeln!(out, "note       {n}")?;
    }
    Ok(())
}
