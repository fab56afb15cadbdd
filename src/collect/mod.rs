//! `collect` owns every read of the host: `/proc`, the kernel log and sysinfo. It produces a
//! [`Sample`] and nothing else; nobody else reads `/proc`.
//!
//! Platform code sits behind [`Collector`]: the lean procfs readers on Linux, sysinfo as the
//! portable fallback (and as a comparison on Linux, `sampler.source = "sysinfo"`).
//! Guarantees: collection never forks or shells out; a pid that vanished or cannot be read is
//! skipped, never an error; at baseline a sample keeps the union of the top N processes by
//! each resource, at detail every process.

#[cfg(target_os = "linux")]
pub mod linux;
#[cfg(target_os = "linux")]
pub mod net;
#[cfg(target_os = "linux")]
pub mod netlink;
pub mod portable;

use crate::config::{Sampler, Source};
use crate::model::{Level, Sample};

pub enum Collector {
    #[cfg(target_os = "linux")]
    Procfs(Box<linux::LinuxCollector>),
    Sysinfo(Box<portable::SysinfoCollector>),
}

impl Collector {
    pub fn new(source: Source) -> Collector {
        match source {
            #[cfg(target_os = "linux")]
            Source::Auto | Source::Procfs => Collector::Procfs(Box::default()),
            _ => Collector::Sysinfo(Box::default()),
        }
    }

    /// One sample with every process: what rules see. `Level::Detail` adds per-process
    /// extras and connections; the store keeps a baseline sample as [`baseline_subset`].
    pub fn sample(&mut self, level: Level, host_name: &str) -> Sample {
        match self {
            #[cfg(target_os = "linux")]
            Collector::Procfs(c) => c.sample(level, host_name),
            Collector::Sysinfo(c) => c.sample(level, host_name),
        }
    }

    /// Sources that are unavailable and why, each returned once.
    pub fn take_notices(&mut self) -> Vec<String> {
        match self {
            #[cfg(target_os = "linux")]
            Collector::Procfs(c) => c.take_notices(),
            Collector::Sysinfo(_) => Vec::new(),
        }
    }
}

/// What a baseline sample keeps of a full one: the union of the top `n` processes by CPU,
/// memory, disk I/O and network, and the closed connections.
pub fn baseline_subset(full: &Sample, n: usize) -> Sample {
    let p = &full.processes;
    let keep = top_union(
        p.len(),
        n,
        &[
            &|i| p[i].cpu_pct,
            &|i| p[i].rss_bytes as f64,
            &|i| p[i].read_bytes_per_s + p[i].write_bytes_per_s,
            &|i| p[i].net_tx_bytes_per_s.unwrap_or(0.0) + p[i].net_rx_bytes_per_s.unwrap_or(0.0),
        ],
    );
    let mut host = full.host.clone();
    if let Some(unseen) = host.cpu_unseen_pct.as_mut() {
        // The unseen CPU of the record: what its rows do not account for, so the CPU of new
        // processes left out (a storm's children, each small) is not lost from it.
        *unseen += left_out_cpu_pct(full, &keep);
    }
    Sample {
        ts_ms: full.ts_ms,
        host_name: full.host_name.clone(),
        cpu_count: full.cpu_count,
        level: Level::Baseline,
        interval_ms: full.interval_ms,
        late_ms: full.late_ms,
        host,
        processes: keep.into_iter().map(|i| p[i].clone()).collect(),
        // Closed TCP connections (a few rows at most at baseline, see
        // `net::NetSample::closed_connections`): the only record of who a short connection
        // talked to.
        connections: full
            .connections
            .iter()
            .filter(|c| c.state == "CLOSE")
            .cloned()
            .collect(),
        oom_kills: full.oom_kills.clone(),
        filesystems: full.filesystems.clone(),
        exits: full.exits.clone(),
        reason: full.reason,
    }
}

/// Processes younger than this left out of a baseline sample count in its unseen CPU.
pub const YOUNG_MS: i64 = 10_000;

/// CPU (per core, % of the interval) of the young processes of `full` (started less than
/// [`YOUNG_MS`] ago) not in `keep` (ascending indices): each row's rate over the time it
/// covers. A storm's children are each too small to be among the top N, and the record would
/// show their CPU nowhere; older processes below the top N are not unseen, only not kept.
fn left_out_cpu_pct(full: &Sample, keep: &[usize]) -> f64 {
    let interval = full.interval_ms.max(1);
    let mut kept = keep.iter().peekable();
    let mut sum = 0.0;
    for (i, p) in full.processes.iter().enumerate() {
        if kept.next_if_eq(&&i).is_some() {
            continue;
        }
        if full.ts_ms - p.id.start_time_ms > YOUNG_MS {
            continue;
        }
        let span = p.rate_span_ms.unwrap_or(interval).min(interval);
        sum += p.cpu_pct * span as f64 / interval as f64;
    }
    sum
}

/// The host name a sample carries: `[sampler] host_name` when set, else the system's.
pub fn host_name(sampler: &Sampler) -> String {
    if sampler.host_name.is_empty() {
        system_host_name()
    } else {
        sampler.host_name.clone()
    }
}

/// The system's host name.
fn system_host_name() -> String {
    sysinfo::System::host_name().unwrap_or_else(|| "localhost".to_string())
}

/// Longest command line stored: a linker's can run to tens of KiB, and an identity is stored
/// for every process that ever makes a top list.
pub const CMDLINE_MAX_BYTES: usize = 4096;

/// Cuts a command line to [`CMDLINE_MAX_BYTES`] (on a character boundary), marking the cut.
pub fn cap_cmdline(mut s: String) -> String {
    if s.len() > CMDLINE_MAX_BYTES {
        let mut end = CMDLINE_MAX_BYTES - "…".len();
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// Indices of the union of the top `n` items by each key, in ascending index order. Items
/// whose key is zero are not "top" of anything.
pub fn top_union(len: usize, n: usize, keys: &[&dyn Fn(usize) -> f64]) -> Vec<usize> {
    let mut keep = vec![false; len];
    let mut idx: Vec<usize> = (0..len).collect();
    for key in keys {
        let by_desc = |a: &usize, b: &usize| key(*b).total_cmp(&key(*a));
        if len > n {
            idx.select_nth_unstable_by(n, by_desc);
        }
        for &i in idx.iter().take(n) {
            if key(i) > 0.0 {
                keep[i] = true;
            }
        }
    }
    (0..len).filter(|&i| keep[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_command_lines_are_capped() {
        let long = "é".repeat(5000);
        let capped = cap_cmdline(long);
        assert!(capped.len() <= CMDLINE_MAX_BYTES);
        assert!(capped.ends_with('…'));
        assert_eq!(cap_cmdline("ls -l".into()), "ls -l");
    }

    #[test]
    fn union_of_tops() {
        let cpu = [5.0, 0.0, 9.0, 1.0];
        let mem = [1.0, 8.0, 2.0, 0.0];
        let got = top_union(4, 1, &[&|i| cpu[i], &|i| mem[i]]);
        assert_eq!(got, vec![1, 2]);
        let all = top_union(4, 10, &[&|i| cpu[i]]);
        assert_eq!(all, vec![0, 2, 3]);
    }
    /// A baseline sample's unseen CPU takes in the young processes it leaves out, over the
    /// time their rates cover, and not the old ones.
    #[test]
    fn a_baseline_keeps_the_cpu_of_young_processes_it_leaves_out_as_unseen() {
        use crate::model::{HostRow, ProcessIdentity, ProcessRow};
        let row = |pid, cpu_pct, age_ms: i64, span| ProcessRow {
            id: ProcessIdentity {
                pid,
                start_time_ms: 100_000 - age_ms,
                ..Default::default()
            },
            cpu_pct,
            rate_span_ms: span,
            ..Default::default()
        };
        let full = Sample {
            ts_ms: 100_000,
            interval_ms: 1000,
            host: HostRow {
                cpu_unseen_pct: Some(7.0),
                ..Default::default()
            },
            processes: vec![
                row(1, 90.0, 60_000, None),
                // Young, left out: 40 % over 500 ms and 10 % over the interval.
                row(2, 40.0, 500, Some(500)),
                row(3, 10.0, 3000, None),
                // Old, left out: not unseen.
                row(4, 5.0, 60_000, None),
            ],
            ..Default::default()
        };
        let b = baseline_subset(&full, 1);
        assert_eq!(b.processes.len(), 1);
        assert!((b.host.cpu_unseen_pct.unwrap() - 37.0).abs() < 1e-9);
        // Where exits are accounted there is no unseen CPU to add to.
        let mut privileged = full.clone();
        privileged.host.cpu_unseen_pct = None;
        assert_eq!(baseline_subset(&privileged, 1).host.cpu_unseen_pct, None);
    }
}
