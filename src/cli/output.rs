//! The terminal side of how things look: aligned tables, and query values as text or JSON.
//! Units, process labels and times are [`crate::format`]'s, re-exported here so every
//! command file keeps its `output::` paths.

use comfy_table::{presets, CellAlignment, ContentArrangement, Table};
use rusqlite::types::Value;

pub use crate::format::{
    bytes, cpu_seconds, net_rate, pct, process_cells, rate, resource_total, resource_value, short,
    ProcessLabel, ProcessNumbers, PROCESS_COLUMNS, PROCESS_NUMERIC,
};

/// `value` as pretty JSON and a newline: every command's `--json`.
pub fn json(mut out: impl std::io::Write, value: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// A header and its records as CSV (raw numbers, not display units): every command's `--csv`.
pub fn csv<C: AsRef<[u8]>>(
    out: impl std::io::Write,
    header: impl IntoIterator<Item = impl AsRef<[u8]>>,
    records: impl IntoIterator<Item = impl IntoIterator<Item = C>>,
) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(header)?;
    for r in records {
        w.write_record(r)?;
    }
    w.flush()?;
    Ok(())
}

pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().map(|h| h.to_string()));
    t
}

/// The table as text, without the padding comfy-table leaves at line ends.
pub fn render(t: &Table) -> String {
    t.lines()
        .map(|l| l.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Right-aligns the given columns (numbers).
pub fn align_right(t: &mut Table, columns: &[usize]) {
    for &c in columns {
        if let Some(col) = t.column_mut(c) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
}

pub fn value_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(s) => s.clone(),
        Value::Blob(b) => format!("<{} bytes>", b.len()),
    }
}

pub fn value_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Integer(i) => (*i).into(),
        Value::Real(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::Text(s) => s.clone().into(),
        Value::Blob(b) => format!("<{} bytes>", b.len()).into(),
    }
}
