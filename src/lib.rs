//! hogtrap: a scriptable flight recorder for Linux hosts.
//!
//! The pipeline, one folder each: `collect` reads the host into a [`model::Sample`]; `store`
//! writes it to SQLite (the only SQL in the program); `rules` runs the user's Lua on every sample; `daemon` wires the loop; `alert` sends
//! email and desktop notifications; `cli` answers the user's questions from the store,
//! read-only; `report` draws a window of the record as one HTML page.

pub mod actions;
pub mod alert;
pub mod cli;
pub mod collect;
pub mod config;
pub mod daemon;
pub mod files;
pub mod format;
pub mod model;
pub mod report;
pub mod rules;
pub mod store;
