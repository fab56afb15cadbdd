//! The fleet's view of this host: a Prometheus `/metrics` endpoint.
//!
//! Guarantees:
//! - The sampler hands over a [`Snapshot`] after each pass ([`Feed::publish`]: a pointer
//!   swap, never a wait). A scrape encodes the newest snapshot; it never touches SQLite or
//!   the sampling path.
//! - The server runs on the daemon's async runtime, not the sampling thread: it serves at
//!   most `max_connections` at once (more are closed when accepted), each request's headers
//!   must arrive within `header_timeout`, and a connection lives at most
//!   `connection_timeout`. A slow or hostile client costs a socket, never a sample.
//! - Processes are exported by program name (the same names summed), never by pid, user or
//!   command line, with labels cut to [`LABEL_MAX`] characters; at most `top_n` programs per
//!   resource. The series bound is [`series_bound`].

pub mod metrics;
pub mod server;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;

use crate::model::{Sample, Severity};

/// The longest label value exported; longer names are cut (ending in `…`).
pub const LABEL_MAX: usize = 48;

/// The most `hogtrap_` series one host exports: fixed host and health series, four
/// resources × `top_n` programs, and two per loaded rule (open, opened).
pub fn series_bound(top_n: usize, rules: usize) -> usize {
    metrics::FIXED_SERIES + 4 * top_n + 2 * rules
}

/// A rule as the exporter sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleView {
    pub name: String,
    pub severity: Severity,
    /// Firing or clearing: its incident is open.
    pub open: bool,
}

/// The recorder's counters about itself, since the daemon started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    pub samples: u64,
    /// Passes that started after their slot.
    pub late: u64,
    /// Slots skipped because a pass could not start for a whole interval.
    pub missed: u64,
    /// How long the last pass took (collect, store, rules, actions).
    pub last_duration_s: f64,
    /// The store's files (database and write-ahead log).
    pub store_bytes: u64,
    /// Alerts waiting for delivery (pending or in flight); `None` when unknown.
    pub outbox_backlog: Option<i64>,
    pub rule_errors: u64,
    /// Samples the store could not take and that were dropped.
    pub dropped: u64,
    /// Incidents opened, by rule and severity.
    pub opened: BTreeMap<(String, Severity), u64>,
}

/// What one scrape serves: the newest sample and the recorder's state after it.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub sample: Arc<Sample>,
    pub health: Health,
    pub rules: Vec<RuleView>,
    pub interval_s: f64,
}

/// The sampler's end: publishes snapshots for the server.
#[derive(Debug, Clone)]
pub struct Feed(Arc<watch::Sender<Option<Arc<Snapshot>>>>);

impl Feed {
    pub fn new() -> Feed {
        Feed(Arc::new(watch::channel(None).0))
    }

    /// Replaces the served snapshot; never blocks.
    pub fn publish(&self, snapshot: Snapshot) {
        self.0.send_replace(Some(Arc::new(snapshot)));
    }

    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Snapshot>>> {
        self.0.subscribe()
    }
}

impl Default for Feed {
    fn default() -> Feed {
        Feed::new()
    }
}
