//! How things look and parse, one of each, for every layer: durations (one grammar for every
//! place a user writes one: the config, the alert config, Lua rules and rule tests), sizes,
//! rates and percentages, local time, how a process is labelled, markup escaping, and the redaction of secrets in
//! command lines ([`redact`]).
//!
//! The floor of the program: this module imports only [`crate::model`], so `alert`, `report`,
//! `cli`, `daemon` and `store` can all use it without importing each other. Tests compare
//! rendered text, so a formatter here changes the output of every command, alert and report.

pub mod duration;
pub mod escape;
pub mod process;
pub mod redact;
pub mod size;
pub mod time;
pub mod value;

pub use duration::{cpu_seconds, duration_text, human_ms, parse_duration};
pub use escape::{escape_html, escape_markup};
pub use process::{
    net_rate, process_cells, resource_total, resource_value, short, ProcessLabel, ProcessNumbers,
    PROCESS_COLUMNS, PROCESS_NUMERIC,
};
pub use redact::{redact, redact_owned, Redactor};
pub use size::{bytes, parse_size, pct, rate};
pub use time::{format_local, parse_time, parse_time_at};
pub use value::value_text;
