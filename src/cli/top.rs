//! `hogtrap top`: what was running at a moment, or the top consumers over a range.

use std::io::Write;

use crate::model::{Grouping, Resource, TimestampMs};
use anyhow::{bail, Context};

use super::{output, time, Ctx, FormatArgs};
use crate::store::query;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A moment: "now", "2026-11-26 03:12", "10m ago", RFC 3339.
    #[arg(long, allow_hyphen_values = true, value_parser = time::arg, conflicts_with_all = ["from", "to"])]
    pub at: Option<TimestampMs>,
    /// Start of a range.
    #[arg(long, allow_hyphen_values = true, value_parser = time::arg, requires = "to")]
    pub from: Option<TimestampMs>,
    /// End of a range.
    #[arg(long, allow_hyphen_values = true, value_parser = time::arg, requires = "from")]
    pub to: Option<TimestampMs>,
    /// Rank by this resource.
    #[arg(long, value_enum, default_value_t = Resource::Cpu)]
    pub by: Resource,
    /// How many processes to show.
    #[arg(short = 'n', default_value_t = 10)]
    pub n: usize,
    /// Sum processes, alive and exited, by program name, parent, user or cgroup (a storm of
    /// short-lived children shows as one line).
    #[arg(long, value_enum)]
    pub group: Option<Grouping>,
    #[command(flatten)]
    pub format: FormatArgs,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<()> {
    let store = ctx.open_store()?;
    let (db, conn) = (&store.path, &store.conn);
    let by = a.by;
    let mut out = std::io::stdout().lock();
    if let Some(group) = a.group {
        let (from, to) = match (a.from, a.to) {
            (Some(from), Some(to)) => (from, to),
            _ => {
                let head = store.sample_at(a.at.unwrap_or_else(time::now))?;
                (head.ts_ms, head.ts_ms)
            }
        };
        return groups(&mut out, conn, db, (from, to), by, group, a.n, &a.format);
    }
    if let (Some(from), Some(to)) = (a.from, a.to) {
        if to < from {
            bail!("--to is before --from");
        }
        let rows = query::top_over_range(conn, from, to, by, a.n)
            .with_context(|| format!("{}: reading the range", db.display()))?;
        let n = query::count_samples(conn, from, to)?;
        if n == 0 {
            return Err(super::no_samples(from, to, db));
        }
        if a.format.json {
            return output::json(out, &rows);
        }
        let (avg_h, peak_h, total_h) = match a.by {
            Resource::Cpu => ("AVG CPU", "PEAK CPU", "CPU TIME"),
            Resource::Mem => ("AVG RSS", "PEAK RSS", "PEAK RSS"),
            Resource::Io => ("AVG IO/s", "PEAK IO/s", "TOTAL IO"),
            Resource::Net => ("AVG NET/s", "PEAK NET/s", "TOTAL NET"),
        };
        let [pid_h, user_h, name_h] = output::ProcessLabel::COLUMNS;
        let header = [
            pid_h, user_h, name_h, "SAMPLES", avg_h, peak_h, total_h, "COMMAND",
        ];
        if a.format.csv {
            let record = |r: &query::ProcessOverRange| {
                let who = [r.pid.to_string(), r.user.clone(), r.name.clone()];
                let numbers = [r.avg, r.peak, r.total].map(|v| v.to_string());
                let samples = r.samples.to_string();
                let command = std::slice::from_ref(&r.cmdline);
                [who.as_slice(), &[samples], &numbers, command].concat()
            };
            return output::csv(out, header, rows.iter().map(record));
        }
        writeln!(out, "{n} samples {}, by {}\n", time::span(from, to), a.by)?;
        let mut t = output::table(&header);
        for r in &rows {
            let label = output::ProcessLabel::new(r.pid, &r.name, Some(&r.user))
                .with_cmdline(Some(&r.cmdline));
            let [pid, user, name] = label.cells();
            t.add_row(vec![
                pid,
                user,
                name,
                r.samples.to_string(),
                output::resource_value(by, r.avg),
                output::resource_value(by, r.peak),
                output::resource_total(by, r.total),
                label.command(60),
            ]);
        }
        output::align_right(&mut t, &[0, 3, 4, 5, 6]);
        writeln!(out, "{}", output::render(&t))?;
        return Ok(());
    }
    let head = store.sample_at(a.at.unwrap_or_else(time::now))?;
    let rows = query::processes_of_sample(conn, head.sample_id, by, a.n)?;
    if a.format.json {
        return output::json(
            out,
            &serde_json::json!({ "sample": head, "processes": rows }),
        );
    }
    let header = [
        "PID", "USER", "NAME", "S", "CPU%", "RSS", "READ/s", "WRITE/s", "THR", "COMMAND",
    ];
    // CSV keeps raw numbers (and its columns); people get the shared process row.
    if a.format.csv {
        let record = |p: &query::ProcessAt| {
            let who = [
                p.pid.to_string(),
                p.user.clone(),
                p.name.clone(),
                p.state.clone(),
            ];
            let cpu = p.cpu_pct.to_string();
            let numbers = [
                p.rss_bytes,
                p.read_bytes_per_s,
                p.write_bytes_per_s,
                p.threads,
            ];
            let numbers = numbers.map(|v| v.to_string());
            let command = std::slice::from_ref(&p.cmdline);
            [who.as_slice(), &[cpu], &numbers, command].concat()
        };
        return output::csv(out, header, rows.iter().map(record));
    }
    writeln!(
        out,
        "{}  {}  ({} sample)  load {:.2}  cpu {}  mem used {}  {} processes\n",
        time::format_local(head.ts_ms),
        head.host,
        head.level,
        head.load1,
        output::pct(head.cpu_busy_pct),
        output::bytes(head.mem_used_bytes as f64),
        head.procs_total
    )?;
    let mut t = output::table(&output::PROCESS_COLUMNS);
    for p in &rows {
        let label =
            output::ProcessLabel::new(p.pid, &p.name, Some(&p.user)).with_cmdline(Some(&p.cmdline));
        t.add_row(output::process_cells(
            &label,
            &output::ProcessNumbers {
                state: p.state.clone(),
                cpu_pct: p.cpu_pct,
                rss_bytes: p.rss_bytes as f64,
                read_bytes_per_s: p.read_bytes_per_s as f64,
                write_bytes_per_s: p.write_bytes_per_s as f64,
                net_bytes_per_s: output::net_rate(
                    p.net_tx_bytes_per_s.map(|v| v as f64),
                    p.net_rx_bytes_per_s.map(|v| v as f64),
                ),
                threads: p.threads,
            },
        ));
    }
    output::align_right(&mut t, &output::PROCESS_NUMERIC);
    writeln!(out, "{}", output::render(&t))?;
    Ok(())
}

/// `--group`: the largest groups of a range, live and exited processes summed.
#[allow(clippy::too_many_arguments)]
pub(super) fn groups(
    out: &mut impl Write,
    conn: &rusqlite::Connection,
    db: &std::path::Path,
    (from, to): (TimestampMs, TimestampMs),
    by: Resource,
    group: Grouping,
    n_rows: usize,
    format: &FormatArgs,
) -> anyhow::Result<()> {
    if to < from {
        bail!("--to is before --from");
    }
    let n = query::count_samples(conn, from, to)?;
    if n == 0 {
        return Err(super::no_samples(from, to, db));
    }
    let rows = crate::store::exits::top_groups(conn, from, to, by, group, n_rows)
        .with_context(|| format!("{}: reading the range", db.display()))?;
    let tally = crate::store::exits::exit_tally(conn, from, to)?;
    if format.json {
        return output::json(
            out,
            &serde_json::json!({ "from_ms": from, "to_ms": to, "by": by, "group": group,
                                 "exits": tally, "groups": rows }),
        );
    }
    let total_h = match by {
        Resource::Cpu => "CPU TIME",
        Resource::Mem => "RSS",
        Resource::Io => "TOTAL IO",
        Resource::Net => "TOTAL NET",
    };
    let header = [group.as_str(), "PROCS", "EXITED", total_h, "LARGEST ONE"];
    if format.csv {
        let record = |r: &crate::store::exits::GroupTotal| {
            let counts = [r.processes, r.exited].map(|v| v.to_string());
            let totals = [r.total, r.largest].map(|v| v.to_string());
            [[r.label.clone()].as_slice(), &counts, &totals].concat()
        };
        return output::csv(out, header, rows.iter().map(record));
    }
    let span = time::span(from, to);
    writeln!(out, "{n} samples {span}, by {by}, grouped by {group}")?;
    match (tally.lost, tally.unseen_cpu_s) {
        (Some(lost), _) => writeln!(
            out,
            "{} exited processes recorded{}\n",
            tally.processes,
            if lost > 0 {
                format!(", exit records lost {lost} time(s): totals are short")
            } else {
                String::new()
            }
        )?,
        (None, Some(unseen)) => writeln!(
            out,
            "exits not accounted: {} of CPU no sampled process accounts for\n",
            output::resource_total(Resource::Cpu, unseen)
        )?,
        (None, None) => writeln!(out)?,
    }
    let mut t = output::table(&header);
    for r in &rows {
        t.add_row(vec![
            r.label.clone(),
            r.processes.to_string(),
            r.exited.to_string(),
            output::resource_total(by, r.total),
            output::resource_total(by, r.largest),
        ]);
    }
    output::align_right(&mut t, &[1, 2, 3, 4]);
    writeln!(out, "{}", output::render(&t))?;
    Ok(())
}
