//! Lua rules: the only part of hogtrap that touches mlua.
//!
//! `rules/*.lua` files register rules with `rule { ... }`; every [`Sample`](crate::model::Sample)
//! is shown to every enabled rule through one read-only Lua view, built once per sample. A rule's
//! condition drives a hysteresis state machine (inactive → pending → firing → clearing →
//! inactive); transitions run the rule's handlers, whose decisions come back as [`Action`]s in
//! [`Firing`]s. This module performs no I/O on behalf of rules: the caller carries out actions.
//!
//! Guarantees kept here:
//! - a rule cannot reach the file system, the process, other rules' globals or the shared
//!   library tables (see [`sandbox`]);
//! - a rule cannot run unbounded: an instruction budget that `pcall` and coroutines cannot
//!   escape, a memory limit, and a wall-clock watchdog that abandons a stuck Lua state, so
//!   [`Engine::evaluate`] returns within [`RulesConfig::wall_limit`] (plus the cost of
//!   respawning a worker, a few milliseconds);
//! - a failing rule is reported with file and line, and is disabled after
//!   [`RulesConfig::max_consecutive_errors`] failures in a row; other rules keep running;
//! - rule state (status, timers, the rule's own `state` table) is exportable as JSON and
//!   restorable, so a restart does not reset a `hold` timer.
//!
//! Where things are: `engine.rs` (the [`Engine`] the daemon holds: load, evaluate, watchdog,
//! state, `check`, file permissions), `worker.rs` (the thread owning the Lua state),
//! `sandbox.rs` (the state, library subset, budget hook), `view.rs` (the sample as Lua sees
//! it), `api.rs` (functions rules call: `rule`, actions, `history`), `machine.rs`
//! (hysteresis), `history.rs` (the ring), `testing.rs` (`hogtrap rules test`), `types.rs`
//! (what crosses the boundary). The reference for rule authors is `docs/rules.md`.

mod api;
mod convert;
mod engine;
mod history;
mod machine;
pub mod sandbox;
mod settings;
pub mod testing;
mod types;
mod view;
mod worker;

pub use engine::{check, check_file_permissions, load_dir_sources, Engine, RuleInfo, RuleSource};
pub use history::HistoryRing;
pub use machine::Status;
pub use testing::{run_test_file, TestOutcome};
pub use types::*;

#[cfg(test)]
mod tests;
