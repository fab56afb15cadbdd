//! Host-wide counters from `/proc`: load, CPU time split, memory, PSI, task counts, forks,
//! context switches, disk and network throughput.
//!
//! Guarantees: cumulative counters are diffed here, once, into rates over the real elapsed
//! time; a file that is missing (PSI on an old kernel) leaves its fields absent, never zero by
//! accident; a counter that went backwards (wrap, hot-unplug) yields a zero rate.

use std::collections::{HashMap, HashSet};

use crate::model::{HostRow, Psi};

/// Cumulative counters kept between passes.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    cpu: CpuTimes,
    ctxt: u64,
    forks: u64,
    disk_read_sectors: u64,
    disk_write_sectors: u64,
    net_rx: u64,
    net_tx: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl CpuTimes {
    fn total(&self) -> u64 {
        self.user
            + self.nice
            + self.system
            + self.idle
            + self.iowait
            + self.irq
            + self.softirq
            + self.steal
    }
}

/// Parsed `/proc/stat`: the aggregate cpu line, btime, ctxt, processes, procs_running/blocked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcStat {
    pub cpu: CpuTimes,
    pub cpu_count: u32,
    pub boot_time_s: u64,
    pub ctxt: u64,
    pub forks: u64,
    pub running: u32,
    pub blocked: u32,
}

pub fn parse_proc_stat(text: &str) -> ProcStat {
    let mut s = ProcStat::default();
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let Some(key) = f.next() else { continue };
        let mut num = || f.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        match key {
            "cpu" => {
                s.cpu = CpuTimes {
                    user: num(),
                    nice: num(),
                    system: num(),
                    idle: num(),
                    iowait: num(),
                    irq: num(),
                    softirq: num(),
                    steal: num(),
                }
            }
            k if k.starts_with("cpu") => s.cpu_count += 1,
            "btime" => s.boot_time_s = num(),
            "ctxt" => s.ctxt = num(),
            "processes" => s.forks = num(),
            "procs_running" => s.running = num() as u32,
            "procs_blocked" => s.blocked = num() as u32,
            _ => {}
        }
    }
    s
}

/// `MemTotal`, `MemAvailable`, `SwapTotal`, `SwapFree` in bytes.
pub fn parse_meminfo(text: &str) -> (u64, u64, u64, u64) {
    let (mut total, mut avail, mut swap_total, mut swap_free) = (0, 0, 0, 0);
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let key = f.next().unwrap_or("");
        let kib: u64 = f.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        match key {
            "MemTotal:" => total = kib * 1024,
            "MemAvailable:" => avail = kib * 1024,
            "SwapTotal:" => swap_total = kib * 1024,
            "SwapFree:" => swap_free = kib * 1024,
            _ => {}
        }
    }
    (total, avail, swap_total, swap_free)
}

/// One `/proc/pressure/*` file.
pub fn parse_psi(text: &str) -> Option<Psi> {
    let mut psi = Psi::default();
    let mut seen_some = false;
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let kind = f.next()?;
        let mut avg10 = None;
        let mut total = None;
        for kv in f {
            if let Some(v) = kv.strip_prefix("avg10=") {
                avg10 = v.parse::<f64>().ok();
            } else if let Some(v) = kv.strip_prefix("total=") {
                total = v.parse::<u64>().ok();
            }
        }
        match kind {
            "some" => {
                psi.some_avg10 = avg10?;
                psi.some_total_us = total?;
                seen_some = true;
            }
            "full" => {
                psi.full_avg10 = avg10;
                psi.full_total_us = total;
            }
            _ => {}
        }
    }
    seen_some.then_some(psi)
}

/// Sectors read and written on whole disks (partitions and virtual devices excluded, so
/// nothing is counted twice). Sectors in /proc/diskstats are always 512 bytes.
pub fn parse_diskstats(text: &str, whole_disks: &HashSet<String>) -> (u64, u64) {
    let (mut r, mut w) = (0, 0);
    for line in text.lines() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.len() < 10 || !whole_disks.contains(f[2]) {
            continue;
        }
        r += f[5].parse::<u64>().unwrap_or(0);
        w += f[9].parse::<u64>().unwrap_or(0);
    }
    (r, w)
}

/// Per-interface (name, rx bytes, tx bytes) from `/proc/net/dev`.
pub fn parse_net_dev(text: &str) -> Vec<(String, u64, u64)> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let f: Vec<u64> = rest
                .split_ascii_whitespace()
                .map(|v| v.parse().unwrap_or(0))
                .collect();
            Some((name.trim().to_string(), *f.first()?, *f.get(8)?))
        })
        .collect()
}

/// Block devices that are whole disks: listed in /sys/block, not loop/ram/zram.
fn whole_disks() -> HashSet<String> {
    std::fs::read_dir("/sys/block")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| {
                    !n.starts_with("loop") && !n.starts_with("ram") && !n.starts_with("zram")
                })
                .collect()
        })
        .unwrap_or_default()
}

pub struct HostReader {
    prev: Option<(f64, Counters)>,
    /// The files read every sample, kept open.
    files: HashMap<&'static str, super::procfs::KeptFile>,
    buf: Vec<u8>,
    disks: HashSet<String>,
    pub cpu_count: u32,
    pub boot_time_ms: i64,
}

impl HostReader {
    pub fn new() -> HostReader {
        let stat = parse_proc_stat(&read("/proc/stat"));
        HostReader {
            prev: None,
            files: HashMap::new(),
            buf: Vec::with_capacity(8192),
            disks: whole_disks(),
            cpu_count: stat.cpu_count.max(1),
            boot_time_ms: stat.boot_time_s as i64 * 1000,
        }
    }

    /// Reads the host. `uptime_ms` is CLOCK_BOOTTIME now; `procs_total` comes from the process
    /// reader. The first call primes the counters and reports zero rates.
    pub fn read(&mut self, uptime_ms: f64, procs_total: u32) -> HostRow {
        let stat = parse_proc_stat(&self.text("/proc/stat"));
        let (mem_total, mem_avail, swap_total, swap_free) =
            parse_meminfo(&self.text("/proc/meminfo"));
        let (disk_r, disk_w) = parse_diskstats(&self.text("/proc/diskstats"), &self.disks);
        let (net_rx, net_tx) = parse_net_dev(&self.text("/proc/net/dev"))
            .into_iter()
            .filter(|(n, _, _)| n != "lo")
            .fold((0, 0), |(r, t), (_, rx, tx)| (r + rx, t + tx));
        let now = Counters {
            cpu: stat.cpu,
            ctxt: stat.ctxt,
            forks: stat.forks,
            disk_read_sectors: disk_r,
            disk_write_sectors: disk_w,
            net_rx,
            net_tx,
        };
        let loadavg = self.text("/proc/loadavg");
        let psi = [
            parse_psi(&self.text("/proc/pressure/cpu")),
            parse_psi(&self.text("/proc/pressure/memory")),
            parse_psi(&self.text("/proc/pressure/io")),
        ];
        let mut l = loadavg
            .split_ascii_whitespace()
            .map(|v| v.parse::<f64>().unwrap_or(0.0));
        let mut row = HostRow {
            load1: l.next().unwrap_or(0.0),
            load5: l.next().unwrap_or(0.0),
            load15: l.next().unwrap_or(0.0),
            mem_total_bytes: mem_total,
            mem_available_bytes: mem_avail,
            mem_used_bytes: mem_total.saturating_sub(mem_avail),
            swap_total_bytes: swap_total,
            swap_used_bytes: swap_total.saturating_sub(swap_free),
            psi_cpu: psi[0],
            psi_memory: psi[1],
            psi_io: psi[2],
            // procs_running counts the pass's own thread; the kernel counts threads here.
            procs_running: stat.running,
            procs_blocked: stat.blocked,
            procs_total,
            cpu_idle_pct: 100.0,
            ..HostRow::default()
        };
        if let Some((t, p)) = self.prev {
            let secs = ((uptime_ms - t) / 1000.0).max(0.001);
            let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
            let total = now.cpu.total().saturating_sub(p.cpu.total()).max(1) as f64;
            let pct = |a: u64, b: u64| a.saturating_sub(b) as f64 * 100.0 / total;
            row.cpu_user_pct = pct(now.cpu.user + now.cpu.nice, p.cpu.user + p.cpu.nice);
            row.cpu_system_pct = pct(
                now.cpu.system + now.cpu.irq + now.cpu.softirq,
                p.cpu.system + p.cpu.irq + p.cpu.softirq,
            );
            row.cpu_iowait_pct = pct(now.cpu.iowait, p.cpu.iowait);
            row.cpu_steal_pct = pct(now.cpu.steal, p.cpu.steal);
            row.cpu_idle_pct = pct(now.cpu.idle, p.cpu.idle);
            row.ctxsw_per_s = rate(now.ctxt, p.ctxt);
            row.forks_per_s = rate(now.forks, p.forks);
            row.disk_read_bytes_per_s = rate(now.disk_read_sectors, p.disk_read_sectors) * 512.0;
            row.disk_write_bytes_per_s = rate(now.disk_write_sectors, p.disk_write_sectors) * 512.0;
            row.net_rx_bytes_per_s = rate(now.net_rx, p.net_rx);
            row.net_tx_bytes_per_s = rate(now.net_tx, p.net_tx);
        }
        self.prev = Some((uptime_ms, now));
        row
    }
}

impl Default for HostReader {
    fn default() -> Self {
        HostReader::new()
    }
}

impl HostReader {
    /// The text of a /proc file read every sample (kept open), empty where it cannot be read.
    fn text(&mut self, path: &'static str) -> String {
        self.files
            .entry(path)
            .or_insert_with(|| super::procfs::KeptFile::new(path))
            .text(&mut self.buf)
    }

    /// Real file systems (no proc, tmpfs, overlay, cgroup ...) with their size and free space.
    /// One `statvfs` per mount; a mount that cannot be queried is skipped.
    pub fn filesystems(&mut self) -> Vec<crate::model::FilesystemRow> {
        filesystems_of(&self.text("/proc/self/mounts"))
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// CLOCK_BOOTTIME in ms: the clock `/proc/[pid]/stat` start times count on.
pub fn uptime_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as f64 * 1000.0 + ts.tv_nsec as f64 / 1e6
}

/// The real file systems of a `/proc/self/mounts` text, each with its `statvfs`.
fn filesystems_of(text: &str) -> Vec<crate::model::FilesystemRow> {
    const REAL: &[&str] = &[
        "ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "vfat", "exfat", "ntfs", "ntfs3",
        "jfs", "reiserfs", "nilfs2", "bcachefs",
    ];
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() < 3 || !REAL.contains(&f[2]) || !seen.insert(f[0]) {
            continue;
        }
        // Mount points escape spaces as \040.
        let mount = f[1].replace("\\040", " ");
        let Ok(c) = std::ffi::CString::new(mount.as_bytes()) else {
            continue;
        };
        // SAFETY: c is a valid C string; st is a plain struct to write into.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
            continue;
        }
        let frsize = st.f_frsize as u64;
        out.push(crate::model::FilesystemRow {
            mount_point: mount,
            fs_type: f[2].to_string(),
            total_bytes: st.f_blocks as u64 * frsize,
            available_bytes: st.f_bavail as u64 * frsize,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_some_and_full() {
        let t = "some avg10=1.50 avg60=0.20 avg300=0.00 total=12345\nfull avg10=0.50 avg60=0.00 avg300=0.00 total=678\n";
        let p = parse_psi(t).unwrap();
        assert_eq!(p.some_avg10, 1.5);
        assert_eq!(p.some_total_us, 12345);
        assert_eq!(p.full_avg10, Some(0.5));
        assert_eq!(p.full_total_us, Some(678));
        assert!(parse_psi("").is_none());
    }

    #[test]
    fn proc_stat_fields() {
        let t = "cpu  10 1 5 100 3 0 1 2 0 0\ncpu0 5 0 2 50 1 0 0 1 0 0\ncpu1 5 1 3 50 2 0 1 1 0 0\nctxt 999\nbtime 1700000000\nprocesses 4242\nprocs_running 3\nprocs_blocked 1\n";
        let s = parse_proc_stat(t);
        assert_eq!(s.cpu.iowait, 3);
        assert_eq!(s.cpu.steal, 2);
        assert_eq!(s.cpu_count, 2);
        assert_eq!(s.forks, 4242);
        assert_eq!((s.running, s.blocked), (3, 1));
        assert_eq!(s.boot_time_s, 1_700_000_000);
    }

    #[test]
    fn diskstats_counts_whole_disks_only() {
        let t = "   8       0 sda 100 0 2000 0 50 0 4000 0 0 0 0\n   8       1 sda1 100 0 2000 0 50 0 4000 0 0 0 0\n";
        let disks: HashSet<String> = ["sda".to_string()].into();
        assert_eq!(parse_diskstats(t, &disks), (2000, 4000));
    }

    #[test]
    fn net_dev_interfaces() {
        let t = "Inter-|   Receive |  Transmit\n face |bytes packets\n    lo: 100 1 0 0 0 0 0 0 200 2 0 0 0 0 0 0\n  eth0: 300 3 0 0 0 0 0 0 400 4 0 0 0 0 0 0\n";
        let v = parse_net_dev(t);
        assert_eq!(v[1], ("eth0".to_string(), 300, 400));
    }

    #[test]
    fn host_read_twice_gives_rates() {
        let mut h = HostReader::new();
        let a = h.read(uptime_ms(), 1);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let b = h.read(uptime_ms(), 1);
        assert!(a.mem_total_bytes > 0);
        let sum = b.cpu_user_pct + b.cpu_system_pct + b.cpu_idle_pct + b.cpu_iowait_pct;
        assert!(sum <= 100.5, "{sum}");
    }
}
