//! `hogtrap sql`: a read-only SQL query against the store, as a table, CSV or JSON.

use std::io::Write;

use anyhow::Context;

use super::{output, Ctx, FormatArgs};
use crate::store::query;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The query, e.g. "SELECT HostName, DateAndTime, Load FROM savetop".
    pub query: String,
    #[command(flatten)]
    pub format: FormatArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let Args {
        query: sql,
        format: f,
    } = args;
    let store = ctx.open_store()?;
    let r = query::run_sql(&store.conn, &sql)
        .with_context(|| format!("{}: query", store.path.display()))?;
    let mut out = std::io::stdout().lock();
    if f.json {
        let rows: Vec<serde_json::Value> = r
            .rows
            .iter()
            .map(|row| {
                serde_json::Value::Object(
                    r.columns
                        .iter()
                        .zip(row)
                        .map(|(c, v)| (c.clone(), output::value_json(v)))
                        .collect(),
                )
            })
            .collect();
        output::json(&mut out, &rows)?;
    } else if f.csv {
        let records = r.rows.iter().map(|row| row.iter().map(output::value_text));
        output::csv(out, &r.columns, records)?;
    } else {
        let cols: Vec<&str> = r.columns.iter().map(String::as_str).collect();
        let mut t = output::table(&cols);
        for row in &r.rows {
            t.add_row(row.iter().map(output::value_text));
        }
        let numeric: Vec<usize> = (0..cols.len())
            .filter(|&i| {
                r.rows.iter().all(|row| {
                    matches!(
                        row[i],
                        rusqlite::types::Value::Integer(_)
                            | rusqlite::types::Value::Real(_)
                            | rusqlite::types::Value::Null
                    )
                })
            })
            .collect();
        output::align_right(&mut t, &numeric);
        writeln!(out, "{}", output::render(&t))?;
        writeln!(
            out,
            "({} row{})",
            r.rows.len(),
            if r.rows.len() == 1 { "" } else { "s" }
        )?;
    }
    Ok(())
}
