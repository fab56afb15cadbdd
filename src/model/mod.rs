//! The one data model every part shares: a [`Sample`] is what `collect` produces, what `store`
//! writes, what rules see and what `hogtrap sample` prints. Derived numbers (rates,
//! percentages) are computed once, in `collect`, and never recomputed downstream.
//!
//! Units are in the field names. CPU percentages are per core (one busy core = 100 %), as in
//! `top`. Rates are per second over the interval since the previous sample.
//!
//! The enums every layer shares (`Level`, `Resource`, `Severity`, `Urgency`, `AlertKind`,
//! `SampleReason`) live
//! in [`vocab`]; their SQLite mapping is in `store::vocab`, the only place that speaks SQL.

use serde::{Deserialize, Serialize};

pub mod group;
mod vocab;

pub use vocab::{
    AlertKind, Channel, Grouping, Level, Resource, SampleReason, Severity, UnknownValue, Urgency,
};

/// Milliseconds since the Unix epoch, UTC.
pub type TimestampMs = i64;

/// Pressure-stall information for one resource (`/proc/pressure/*`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Psi {
    /// Share of the last 10 s in which some task stalled, percent.
    pub some_avg10: f64,
    /// Cumulative stall time, microseconds since boot.
    pub some_total_us: u64,
    /// Share of the last 10 s in which all non-idle tasks stalled, percent (absent for cpu on old kernels).
    pub full_avg10: Option<f64>,
    pub full_total_us: Option<u64>,
}

/// The host-wide part of a sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct HostRow {
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
    /// Percent of all CPU time (0–100 across all cores).
    pub cpu_user_pct: f64,
    pub cpu_system_pct: f64,
    pub cpu_iowait_pct: f64,
    pub cpu_steal_pct: f64,
    pub cpu_idle_pct: f64,
    pub mem_total_bytes: u64,
    pub mem_used_bytes: u64,
    pub mem_available_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_used_bytes: u64,
    pub psi_cpu: Option<Psi>,
    pub psi_memory: Option<Psi>,
    pub psi_io: Option<Psi>,
    pub procs_running: u32,
    pub procs_blocked: u32,
    /// Processes (thread-group leaders) on the host.
    pub procs_total: u32,
    pub forks_per_s: f64,
    pub ctxsw_per_s: f64,
    pub disk_read_bytes_per_s: f64,
    pub disk_write_bytes_per_s: f64,
    /// Interface totals, loopback excluded.
    pub net_rx_bytes_per_s: f64,
    pub net_tx_bytes_per_s: f64,
    /// The part of the interface totals that no process's TCP counters account for (UDP and
    /// other protocols, sockets that opened and closed between samples, unowned sockets, other
    /// network namespaces, header overhead).
    #[serde(default)]
    pub net_unattributed_rx_bytes_per_s: f64,
    #[serde(default)]
    pub net_unattributed_tx_bytes_per_s: f64,
    /// CPU that no sampled process accounts for, per core (one core = 100): busy time from
    /// `/proc/stat` minus the sum over processes. Recorded only where exits are not accounted
    /// (no taskstats): short-lived processes burned it. `None` when exits are accounted.
    #[serde(default)]
    pub cpu_unseen_pct: Option<f64>,
    /// Exit records the kernel dropped since the previous sample (receive-buffer overruns:
    /// each counts at least one lost exit). `None` when exits are not accounted.
    #[serde(default)]
    pub exits_lost: Option<u64>,
}

/// Identity of a process: stable for its lifetime. `(pid, start_time_ms)` is unique on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ProcessIdentity {
    pub pid: u32,
    pub ppid: u32,
    /// Wall-clock start time, ms since the epoch.
    pub start_time_ms: TimestampMs,
    pub uid: u32,
    pub user: String,
    /// The full program name (not the kernel's 15-character `comm`).
    pub name: String,
    /// Arguments joined by spaces; empty for kernel threads.
    pub cmdline: String,
}

/// One process in one sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ProcessRow {
    #[serde(flatten)]
    pub id: ProcessIdentity,
    /// Kernel state letter: R, S, D, Z, T, I, ...
    pub state: char,
    /// Per core: one busy core = 100.
    pub cpu_pct: f64,
    pub rss_bytes: u64,
    pub read_bytes_per_s: f64,
    pub write_bytes_per_s: f64,
    pub threads: u32,
    /// TCP payload bytes per second; `None` where it could not be attributed.
    pub net_tx_bytes_per_s: Option<f64>,
    pub net_rx_bytes_per_s: Option<f64>,
    /// Detail-level extras; `None` at baseline.
    pub extra: Option<ProcessExtra>,
    /// The time the rates cover when shorter than the interval (the process started within
    /// it), ms; `None`: the whole interval. Rate × span is what the process used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_span_ms: Option<u64>,
}

/// A process that exited since the previous sample (from the kernel's exit records), or a
/// roll-up of many (`count` > 1) under a storm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ProcessExit {
    /// For a roll-up: pid 0, the parent, user and name shared by the processes rolled up, and
    /// the earliest start.
    #[serde(flatten)]
    pub id: ProcessIdentity,
    /// When it exited, ms since the epoch (the newest exit of a roll-up).
    pub end_ms: TimestampMs,
    /// Exit code, or minus the signal that killed it; `None` for a roll-up.
    pub exit_code: Option<i32>,
    /// Processes this row stands for.
    pub count: u32,
    /// CPU time, ms, that no process row accounts for: its whole life if no sample saw it
    /// alive, else what it used since the last sample that did.
    pub cpu_ms: f64,
    /// Bytes that reached storage, on the same terms as `cpu_ms`.
    pub read_bytes: u64,
    pub write_bytes: u64,
    /// Its whole CPU time, ms, and bytes read and written over its life (sums for a
    /// roll-up).
    pub life_cpu_ms: f64,
    pub life_read_bytes: u64,
    pub life_write_bytes: u64,
    /// A sample saw it alive (its identity is in the process table): such an exit is never
    /// rolled up, so range totals can tell its rows from its remainder.
    #[serde(default)]
    pub seen_alive: bool,
}

/// What a detail sample adds per process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ProcessExtra {
    pub open_fds: Option<u32>,
    pub wchan: Option<String>,
    pub cgroup: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

/// A socket seen at detail level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    /// Owning process; `None` when the owner could not be found (no permission, gone).
    pub pid: Option<u32>,
    pub protocol: Protocol,
    pub local_addr: String,
    pub local_port: u16,
    pub remote_addr: String,
    pub remote_port: u16,
    pub state: String,
    pub tx_bytes_per_s: Option<f64>,
    pub rx_bytes_per_s: Option<f64>,
}

/// A kernel OOM kill, read from the kernel log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OomKill {
    pub ts_ms: TimestampMs,
    pub pid: u32,
    pub name: String,
    pub rss_bytes: u64,
}

/// One mounted file system's usage (rules such as "disk filling" read it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FilesystemRow {
    pub mount_point: String,
    /// `ext4`, `xfs`, `btrfs`, ...
    pub fs_type: String,
    pub total_bytes: u64,
    /// Bytes an unprivileged user can still write (`statvfs` f_bavail).
    pub available_bytes: u64,
}

/// One pass of collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Sample {
    /// When collection started.
    pub ts_ms: TimestampMs,
    pub host_name: String,
    pub cpu_count: u32,
    pub level: Level,
    /// Wall time since the previous sample, ms (the rate denominator).
    pub interval_ms: u64,
    /// How late this sample started against its schedule, ms.
    pub late_ms: u64,
    pub host: HostRow,
    /// At baseline: the union of the top processes by each resource. At detail: all.
    pub processes: Vec<ProcessRow>,
    pub connections: Vec<Connection>,
    pub oom_kills: Vec<OomKill>,
    /// Mounted file systems (real ones: no tmpfs, proc, overlay). Empty when not collected.
    #[serde(default)]
    pub filesystems: Vec<FilesystemRow>,
    /// Processes that exited since the previous sample: every one when exits are accounted
    /// (the top ones each in a row, the rest rolled up by parent and name).
    #[serde(default)]
    pub exits: Vec<ProcessExit>,
    /// Why this sample was taken (the clock, or what woke the recorder).
    #[serde(default)]
    pub reason: SampleReason,
}
