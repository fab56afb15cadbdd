//! `hogtrap report`: resolves the window (an incident and its margins, or a range), gathers it
//! from the store with a progress bar on a terminal, writes the HTML page.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};

use super::{time, Ctx};
use crate::model::TimestampMs;
use crate::report::{self, Window};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Incident number (see `hogtrap incidents`): the incident and the minutes around it.
    #[arg(required_unless_present = "from", conflicts_with_all = ["from", "to"])]
    pub id: Option<i64>,
    /// Start of a range instead of an incident: "2026-11-26 03:00", "2h ago", RFC 3339.
    #[arg(long, allow_hyphen_values = true, value_parser = time::arg, requires = "to")]
    pub from: Option<TimestampMs>,
    /// End of the range.
    #[arg(long, allow_hyphen_values = true, value_parser = time::arg, requires = "from")]
    pub to: Option<TimestampMs>,
    /// Around an incident: how much before and after it the page shows ("10m", "1h").
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    pub margin: String,
    /// Write the page to this file.
    #[arg(long, value_name = "FILE")]
    pub html: PathBuf,
}

/// Windows with more samples than this get a progress bar (on a terminal).
const PROGRESS_FROM_SAMPLES: i64 = 5_000;

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<()> {
    let store = ctx.open_store()?;
    let (db, conn) = (&store.path, &store.conn);
    let now = jiff::Timestamp::now().as_millisecond();
    let window = match (a.id, a.from, a.to) {
        (Some(id), _, _) => {
            let margin = crate::format::parse_duration(&a.margin).map_err(|_| {
                anyhow::anyhow!(
                    "--margin {:?}: not a duration; use e.g. \"10m\", \"30s\", \"1h\"",
                    a.margin
                )
            })?;
            let Some(i) = crate::store::incident::incident(conn, id)
                .with_context(|| format!("{}: reading incident {id}", db.display()))?
            else {
                bail!(
                    "no incident {id} in {} (see: hogtrap incidents)",
                    db.display()
                );
            };
            let bounds = crate::store::report::record_bounds(conn)?;
            report::incident_window(&i, margin.as_millis() as i64, bounds, now)
        }
        (None, Some(from), Some(to)) => {
            if to <= from {
                bail!("--to is not after --from");
            }
            Window {
                from_ms: from,
                to_ms: to,
                incident_id: None,
            }
        }
        _ => bail!("give an incident ID or --from and --to"),
    };
    let samples = crate::store::query::count_samples(conn, window.from_ms, window.to_ms)?;
    if samples == 0 {
        return Err(super::no_samples(window.from_ms, window.to_ms, db));
    }
    // indicatif draws only when stderr is a terminal.
    let bar = if samples >= PROGRESS_FROM_SAMPLES {
        indicatif::ProgressBar::new(report::STEPS)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut step = |what: &str| {
        bar.set_message(format!("reading {what} ({samples} samples)"));
        bar.inc(1);
    };
    let data = report::gather(conn, window, now, &mut step)
        .with_context(|| format!("{}: reading the window", db.display()))?;
    bar.set_message("drawing the page");
    let page = report::html::render(&data, &jiff::tz::TimeZone::system());
    bar.finish_and_clear();
    let access = ctx.config()?.store.access();
    crate::files::write(&a.html, page.as_bytes(), access)
        .with_context(|| format!("cannot write the report to {}", a.html.display()))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "wrote {} ({}): {} samples from {} to {}, {} incident(s), {} alert(s), {} connection row(s)",
        a.html.display(),
        super::output::bytes(page.len() as f64),
        data.host.len(),
        time::format_local(data.window.from_ms),
        time::format_local(data.window.to_ms),
        data.incidents.len(),
        data.alerts.len(),
        data.connections.len()
    )?;
    Ok(())
}
