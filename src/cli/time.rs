//! Times as people type them, for the commands' `--from`/`--to`/`--at`: [`crate::format::time`],
//! re-exported so the command files keep their `time::` paths.

pub use crate::format::time::{format_local, parse_time, parse_time_at};
