//! The Linux collector: lean `/proc` readers for the host and the processes, and the kernel
//! log for OOM kills.

pub mod host;
pub mod kmsg;
pub mod procfs;

use crate::model::{Level, ProcessRow, Sample};

use super::top_union;

pub struct LinuxCollector {
    host: host::HostReader,
    procs: procfs::ProcReader,
    kmsg: kmsg::KmsgReader,
    snapshots: Vec<procfs::ProcSnapshot>,
    prev_uptime_ms: Option<f64>,
}

impl LinuxCollector {
    pub fn new() -> LinuxCollector {
        let host = host::HostReader::new();
        let boot = host.boot_time_ms;
        let mut c = LinuxCollector {
            procs: procfs::ProcReader::new(boot),
            kmsg: kmsg::KmsgReader::open(boot),
            host,
            snapshots: Vec::new(),
            prev_uptime_ms: None,
        };
        // Prime the counters so the first sample already has rates.
        let now = host::uptime_ms();
        c.procs.read_all(now, &mut c.snapshots);
        c.host.read(now, c.snapshots.len() as u32);
        c.prev_uptime_ms = Some(now);
        c
    }

    /// Why some sources are unavailable (reported once at start).
    pub fn notices(&self) -> Vec<String> {
        self.kmsg.unavailable.iter().cloned().collect()
    }

    pub fn cpu_count(&self) -> u32 {
        self.host.cpu_count
    }

    pub fn sample(&mut self, level: Level, top_n: usize, host_name: &str) -> Sample {
        let ts_ms = jiff::Timestamp::now().as_millisecond();
        let now = host::uptime_ms();
        self.procs.read_all(now, &mut self.snapshots);
        let host = self.host.read(now, self.snapshots.len() as u32);
        let interval_ms = self.prev_uptime_ms.map_or(0, |p| (now - p).max(0.0) as u64);
        self.prev_uptime_ms = Some(now);

        let keep: Vec<usize> = match level {
            Level::Detail => (0..self.snapshots.len()).collect(),
            Level::Baseline => top_union(
                self.snapshots.len(),
                top_n,
                &[
                    &|i| self.snapshots[i].cpu_pct,
                    &|i| self.snapshots[i].rss_bytes as f64,
                    &|i| self.snapshots[i].read_bytes_per_s + self.snapshots[i].write_bytes_per_s,
                ],
            ),
        };
        let mut processes = Vec::with_capacity(keep.len());
        for i in keep {
            let s = self.snapshots[i].clone();
            let id = self.procs.identity(&s);
            let extra = (level == Level::Detail).then(|| self.procs.extra(s.pid));
            processes.push(ProcessRow {
                id,
                state: s.stat.state as char,
                cpu_pct: s.cpu_pct,
                rss_bytes: s.rss_bytes,
                read_bytes_per_s: s.read_bytes_per_s,
                write_bytes_per_s: s.write_bytes_per_s,
                threads: s.stat.threads,
                net_tx_bytes_per_s: None,
                net_rx_bytes_per_s: None,
                extra,
            });
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
            connections: Vec::new(),
            oom_kills: self.kmsg.read_new(),
        }
    }
}

impl Default for LinuxCollector {
    fn default() -> Self {
        LinuxCollector::new()
    }
}
