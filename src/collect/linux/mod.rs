//! The Linux collector: lean `/proc` readers for the host and the processes, sock_diag for
//! per-process network bytes, and the kernel log for OOM kills.

pub mod exits;
pub mod host;
pub mod kmsg;
pub mod procfs;
pub mod psi_trigger;
pub mod taskstats;

use crate::model::{Level, ProcessRow, Sample};

use super::net::{NetCollector, NetSample};

pub struct LinuxCollector {
    host: host::HostReader,
    procs: procfs::ProcReader,
    kmsg: kmsg::KmsgReader,
    net: Option<NetCollector>,
    /// `None` where taskstats is unavailable: then each sample records the unseen CPU.
    exits: Option<exits::ExitAccountant>,
    notices: Vec<String>,
    snapshots: Vec<procfs::ProcSnapshot>,
    prev_uptime_ms: Option<f64>,
}

impl LinuxCollector {
    pub fn new() -> LinuxCollector {
        let host = host::HostReader::new();
        let boot = host.boot_time_ms;
        let mut notices = Vec::new();
        let net = match NetCollector::new() {
            Ok(n) => Some(n),
            Err(e) => {
                notices.push(format!(
                    "per-process network accounting is off: sock_diag: {e}"
                ));
                None
            }
        };
        let exits = match exits::ExitAccountant::start() {
            Ok(a) => Some(a),
            Err(e) => {
                notices.push(format!(
                    "exit accounting is off ({e}): short-lived processes are not named; each \
                     sample records the CPU no sampled process accounts for instead"
                ));
                None
            }
        };
        let kmsg = kmsg::KmsgReader::open(boot);
        notices.extend(kmsg.unavailable.iter().cloned());
        // The process reader keeps a descriptor per pid: take the descriptors the hard limit
        // allows (a soft limit of 1,024 is common; a hard one of 524,288 too).
        raise_nofile_limit();
        let mut c = LinuxCollector {
            procs: procfs::ProcReader::new(boot),
            kmsg,
            host,
            net,
            exits,
            notices,
            snapshots: Vec::new(),
            prev_uptime_ms: None,
        };
        // Prime the counters so the first sample already has rates.
        let now = host::uptime_ms();
        c.procs.read_all(now, &mut c.snapshots);
        c.host.read(now, c.snapshots.len() as u32);
        if let Some(n) = c.net.as_mut() {
            n.collect(std::time::Instant::now());
        }
        c.prev_uptime_ms = Some(now);
        c
    }

    /// Why some sources are unavailable, each said once (at start, or when first noticed).
    pub fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }

    pub fn cpu_count(&self) -> u32 {
        self.host.cpu_count
    }

    /// Every process. Detail adds per-process extras and the connection list.
    pub fn sample(&mut self, level: Level, host_name: &str) -> Sample {
        let ts_ms = jiff::Timestamp::now().as_millisecond();
        // Exit records first: a process that exits after this drain is still in the pass below
        // or in what the reader remembers of departed pids.
        let drained = self.exits.as_mut().map(|a| a.drain());
        let now = host::uptime_ms();
        self.procs.read_all(now, &mut self.snapshots);
        let mut host = self.host.read(now, self.snapshots.len() as u32);
        let exits = match (self.exits.as_mut(), drained) {
            (Some(a), Some(d)) => {
                let exits = a.account(d, &mut self.procs);
                host.exits_lost = Some(a.lost);
                if a.lost > 0 {
                    self.notices.push(format!(
                        "taskstats: the kernel dropped exit records {} time(s) since the \
                         previous sample (receive buffer {} bytes full): some exits are missing",
                        a.lost,
                        a.recv_buffer_bytes()
                    ));
                }
                exits
            }
            _ => Vec::new(),
        };
        let net: Option<NetSample> = self.net.as_mut().map(|n| {
            n.set_udp(level == Level::Detail);
            n.collect(std::time::Instant::now())
        });
        let interval_ms = self.prev_uptime_ms.map_or(0, |p| (now - p).max(0.0) as u64);
        self.prev_uptime_ms = Some(now);

        let mut processes = Vec::with_capacity(self.snapshots.len());
        for i in 0..self.snapshots.len() {
            let s = &self.snapshots[i];
            let (pid, state, cpu_pct, rss_bytes, read, write, threads) = (
                s.pid,
                s.stat.state as char,
                s.cpu_pct,
                s.rss_bytes,
                s.read_bytes_per_s,
                s.write_bytes_per_s,
                s.stat.threads,
            );
            let id = self.procs.identity(&self.snapshots[i]);
            let extra = (level == Level::Detail).then(|| self.procs.extra(pid));
            processes.push(ProcessRow {
                id,
                state,
                cpu_pct,
                rss_bytes,
                read_bytes_per_s: read,
                write_bytes_per_s: write,
                threads,
                net_tx_bytes_per_s: None,
                net_rx_bytes_per_s: None,
                extra,
                rate_span_ms: self.snapshots[i].span_ms.map(|s| s.round() as u64),
            });
        }
        if self.exits.is_none() && interval_ms > 0 {
            host.cpu_unseen_pct = Some(unseen_cpu_pct(
                &host,
                self.host.cpu_count,
                &processes,
                interval_ms,
            ));
        }
        let mut connections = Vec::new();
        if let Some(n) = &net {
            n.fill_host(&mut host);
            n.fill_processes(&mut processes);
            connections = if level == Level::Detail {
                n.connections()
            } else {
                n.closed_connections()
            };
        }
        if let (Some(nc), Some(n)) = (self.net.as_mut(), net.as_ref()) {
            if let Some(msg) = nc.permission_notice(n) {
                self.notices.push(msg);
            }
        }
        Sample {
            ts_ms,
            host_name: host_name.to_string(),
            cpu_count: self.host.cpu_count,
            level,
            interval_ms,
            late_ms: 0,
            host,
            processes,
            connections,
            oom_kills: self.kmsg.read_new(),
            filesystems: self.host.filesystems(),
            exits,
            reason: Default::default(),
        }
    }
}

/// Busy CPU from `/proc/stat` minus what the sampled processes account for, per core
/// (one core = 100), never below zero.
pub fn unseen_cpu_pct(
    host: &crate::model::HostRow,
    cpu_count: u32,
    processes: &[ProcessRow],
    interval_ms: u64,
) -> f64 {
    let busy = (100.0 - host.cpu_idle_pct - host.cpu_iowait_pct - host.cpu_steal_pct).max(0.0)
        * cpu_count as f64;
    let seen: f64 = processes
        .iter()
        .map(|p| {
            let span = p.rate_span_ms.unwrap_or(interval_ms).min(interval_ms) as f64;
            p.cpu_pct * span / interval_ms as f64
        })
        .sum();
    (busy - seen).max(0.0)
}

impl Default for LinuxCollector {
    fn default() -> Self {
        LinuxCollector::new()
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit. Failing leaves the soft limit: the
/// reader then keeps fewer files open and opens the rest per read.
fn raise_nofile_limit() {
    raise_soft_limit(libc::RLIMIT_NOFILE);
}

/// Raises the soft limit of `resource` to its hard limit (no privilege needed for that) and
/// returns the limit as it then is. Failing leaves the soft limit as it was.
pub fn raise_soft_limit(resource: libc::__rlimit_resource_t) -> libc::rlimit {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(resource, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(resource, &lim);
        }
    }
    lim
}
