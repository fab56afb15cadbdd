//! `hogtrap incidents`: the incident list, what rules found, told from the store.

use std::io::Write;

use anyhow::Context;

use super::{output, time, Ctx, JsonFlag};
use crate::model::TimestampMs;
use crate::store::incident as inc;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only incidents open at or after this time.
    #[arg(long, allow_hyphen_values = true, value_parser = time::arg)]
    pub since: Option<TimestampMs>,
    /// Only this rule's incidents.
    #[arg(long)]
    pub rule: Option<String>,
    /// Only open incidents.
    #[arg(long)]
    pub open: bool,
    #[command(flatten)]
    pub format: JsonFlag,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let Args {
        since,
        rule,
        open,
        format: JsonFlag { json },
    } = args;
    let store = ctx.open_store()?;
    let rows = inc::list_incidents(&store.conn, since, rule.as_deref(), open)
        .with_context(|| format!("{}: reading incidents", store.path.display()))?;
    let mut out = std::io::stdout().lock();
    if json {
        return output::json(out, &rows);
    }
    if rows.is_empty() {
        writeln!(out, "no incidents")?;
        return Ok(());
    }
    let mut t = output::table(&[
        "ID", "RULE", "SEVERITY", "OPENED", "CLOSED", "LASTED", "TITLE",
    ]);
    let now = jiff::Timestamp::now().as_millisecond();
    for r in &rows {
        t.add_row(vec![
            r.id.to_string(),
            r.rule.clone(),
            r.severity.to_string(),
            time::format_local(r.opened_ms),
            r.closed_ms
                .map(time::format_local)
                .unwrap_or_else(|| "open".into()),
            crate::format::human_ms(r.closed_ms.unwrap_or(now) - r.opened_ms),
            output::short(&r.title, 70),
        ]);
    }
    output::align_right(&mut t, &[0, 5]);
    writeln!(out, "{}", output::render(&t))?;
    Ok(())
}
