//! The portable collector, through sysinfo: the path for macOS and other non-Linux hosts, and
//! a comparison point on Linux (`sampler.source = "sysinfo"`). Linux-only sources (PSI,
//! forks, context switches, OOM kills) are absent here.

use std::collections::HashMap;

use sysinfo::{
    Networks, ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System, UpdateKind, Users,
};

use crate::model::{HostRow, Level, ProcessIdentity, ProcessRow, Sample};

pub struct SysinfoCollector {
    sys: System,
    networks: Networks,
    users: Users,
    last: std::time::Instant,
}

impl Default for SysinfoCollector {
    fn default() -> Self {
        let mut c = SysinfoCollector {
            sys: System::new(),
            networks: Networks::new_with_refreshed_list(),
            users: Users::new_with_refreshed_list(),
            last: std::time::Instant::now(),
        };
        // Prime CPU and disk counters: sysinfo needs two refreshes for rates.
        c.refresh();
        c
    }
}

impl SysinfoCollector {
    fn refresh(&mut self) {
        self.sys.refresh_cpu_usage();
        self.sys.refresh_memory();
        self.sys.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing()
                .with_cpu()
                .with_memory()
                .with_disk_usage()
                .with_user(UpdateKind::OnlyIfNotSet)
                .with_cmd(UpdateKind::OnlyIfNotSet),
        );
        self.networks.refresh(true);
    }

    pub fn sample(&mut self, level: Level, host_name: &str) -> Sample {
        let ts_ms = jiff::Timestamp::now().as_millisecond();
        let interval = self.last.elapsed();
        self.last = std::time::Instant::now();
        self.refresh();
        let secs = interval.as_secs_f64().max(0.001);
        let load = System::load_average();
        let cpu_used = self.sys.global_cpu_usage() as f64;
        let (rx, tx) = self
            .networks
            .iter()
            .filter(|(name, _)| name.as_str() != "lo" && name.as_str() != "lo0")
            .fold((0u64, 0u64), |(r, t), (_, d)| {
                (r + d.received(), t + d.transmitted())
            });
        let procs: Vec<&sysinfo::Process> = self
            .sys
            .processes()
            .values()
            .filter(|p| p.thread_kind().is_none())
            .collect();
        let mut host = HostRow {
            load1: load.one,
            load5: load.five,
            load15: load.fifteen,
            cpu_user_pct: cpu_used,
            cpu_idle_pct: 100.0 - cpu_used,
            mem_total_bytes: self.sys.total_memory(),
            mem_available_bytes: self.sys.available_memory(),
            mem_used_bytes: self
                .sys
                .total_memory()
                .saturating_sub(self.sys.available_memory()),
            swap_total_bytes: self.sys.total_swap(),
            swap_used_bytes: self.sys.used_swap(),
            procs_total: procs.len() as u32,
            net_rx_bytes_per_s: rx as f64 / secs,
            net_tx_bytes_per_s: tx as f64 / secs,
            ..HostRow::default()
        };
        host.procs_running = procs
            .iter()
            .filter(|p| p.status() == ProcessStatus::Run)
            .count() as u32;
        let keep = 0..procs.len();
        let mut user_names: HashMap<String, String> = HashMap::new();
        let processes = keep
            .into_iter()
            .map(|i| {
                let p = procs[i];
                let uid = p.user_id().map(|u| u.to_string()).unwrap_or_default();
                let user = user_names
                    .entry(uid.clone())
                    .or_insert_with(|| {
                        p.user_id()
                            .and_then(|u| self.users.get_user_by_id(u))
                            .map(|u| u.name().to_string())
                            .unwrap_or_else(|| uid.clone())
                    })
                    .clone();
                let d = p.disk_usage();
                ProcessRow {
                    id: ProcessIdentity {
                        pid: p.pid().as_u32(),
                        ppid: p.parent().map_or(0, |pp| pp.as_u32()),
                        start_time_ms: p.start_time() as i64 * 1000,
                        uid: uid.parse().unwrap_or(0),
                        user,
                        name: p.name().to_string_lossy().into_owned(),
                        cmdline: crate::format::redact_owned(super::cap_cmdline(
                            p.cmd()
                                .iter()
                                .map(|a| a.to_string_lossy())
                                .collect::<Vec<_>>()
                                .join(" "),
                        )),
                    },
                    state: state_letter(p.status()),
                    cpu_pct: p.cpu_usage() as f64,
                    rss_bytes: p.memory(),
                    read_bytes_per_s: d.read_bytes as f64 / secs,
                    write_bytes_per_s: d.written_bytes as f64 / secs,
                    threads: p.tasks().map_or(1, |t| t.len() as u32),
                    net_tx_bytes_per_s: None,
                    net_rx_bytes_per_s: None,
                    extra: None,
                    rate_span_ms: None,
                }
            })
            .collect();
        Sample {
            ts_ms,
            host_name: host_name.to_string(),
            cpu_count: self.sys.cpus().len().max(1) as u32,
            level,
            interval_ms: interval.as_millis() as u64,
            late_ms: 0,
            host,
            processes,
            connections: Vec::new(),
            oom_kills: Vec::new(),
            exits: Vec::new(),
            filesystems: Vec::new(),
            reason: Default::default(),
        }
    }
}

fn state_letter(s: ProcessStatus) -> char {
    match s {
        ProcessStatus::Run => 'R',
        ProcessStatus::Sleep => 'S',
        ProcessStatus::Idle => 'I',
        ProcessStatus::Zombie => 'Z',
        ProcessStatus::Stop => 'T',
        ProcessStatus::UninterruptibleDiskSleep => 'D',
        ProcessStatus::Dead => 'X',
        _ => '?',
    }
}
