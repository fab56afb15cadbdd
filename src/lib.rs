//! hogtrap: a scriptable flight recorder for Linux hosts.
//!
//! The pipeline, one folder each: `collect` reads the host into a [`model::Sample`]; `store`
//! writes it to SQLite (the only SQL in the program); `rules` runs the user's Lua on every
//! sample; `actions` carries out what the rules decide; `alert` sends email and desktop
//! notifications; `daemon` wires the loop; `cli` answers the user's questions from the store,
//! read-only; `report` draws a window of the record as one HTML page. At the bottom, `model`
//! (the one vocabulary), `format` (how things look and parse) and `files` (file safety).
//! Who may import whom: `docs/architecture.md`, held by `tests/architecture.rs`.

pub mod actions;
pub mod alert;
pub mod cli;
pub mod collect;
pub mod config;
pub mod daemon;
pub mod export;
pub mod files;
pub mod format;
pub mod model;
pub mod report;
pub mod rules;
pub mod store;
