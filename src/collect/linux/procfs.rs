//! The lean process reader: one `read` of `/proc/[pid]/stat` per pid per sample, and more only
//! where it pays.
//!
//! Guarantees:
//! - `stat` is the only file read for every pid. `io` is read only for a process that ran or
//!   waited on block I/O in the interval (a process that did neither did no I/O worth ranking),
//!   and identity files (`cmdline`, the owner) once per process lifetime.
//! - CPU % is right from the first interval a process is seen: a process that started within
//!   the interval is charged all its ticks over the time it has existed.
//! - A pid that vanished or cannot be read is skipped and counted, never an error.
//! - The cost of a pass follows the processes, not their churn: each pid's `stat` stays open
//!   between passes and is re-read with one `pread` (no path walk, no open, no close; a pid
//!   whose process exited fails the read and is forgotten, so a reused number is opened
//!   afresh), within a budget of descriptors set from `RLIMIT_NOFILE`. The directory of
//!   `/proc` is listed only when a task was created since the previous pass (the last pid in
//!   `/proc/loadavg` moved): with no fork, the live processes are those of the previous pass.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};

use crate::model::{ProcessExtra, ProcessIdentity};

/// What one `/proc/[pid]/stat` line holds that we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    pub state: u8,
    pub ppid: u32,
    pub utime_ticks: u64,
    pub stime_ticks: u64,
    pub threads: u32,
    /// Since boot, in clock ticks.
    pub start_ticks: u64,
    pub rss_pages: u64,
    pub blkio_delay_ticks: u64,
}

/// Parses the text of `/proc/[pid]/stat`. The comm field may hold spaces and parentheses, so
/// the fields after it are found from the *last* `)`.
pub fn parse_stat(buf: &[u8]) -> Option<(Stat, &[u8])> {
    let open = buf.iter().position(|&b| b == b'(')?;
    let close = buf.iter().rposition(|&b| b == b')')?;
    let comm = buf.get(open + 1..close)?;
    let rest = buf.get(close + 2..)?;
    let mut it = rest.split(|&b| b == b' ');
    let state = *it.next()?.first()?;
    // Field numbers as in proc(5); `state` is field 3. Only the fields used are parsed.
    let mut fields = [0u64; 39];
    for (i, f) in it.enumerate().take(fields.len()) {
        if matches!(i + 4, 4 | 14 | 15 | 20 | 22 | 24 | 42) {
            fields[i] = parse_u64(f);
        }
    }
    // fields[k] holds proc(5) field k + 4.
    let at = |n: usize| fields[n - 4];
    Some((
        Stat {
            state,
            ppid: at(4) as u32,
            utime_ticks: at(14),
            stime_ticks: at(15),
            threads: at(20) as u32,
            start_ticks: at(22),
            rss_pages: at(24),
            blkio_delay_ticks: at(42),
        },
        comm,
    ))
}

fn parse_u64(f: &[u8]) -> u64 {
    let mut v: u64 = 0;
    for &b in f {
        if b.is_ascii_digit() {
            v = v.wrapping_mul(10).wrapping_add((b - b'0') as u64);
        } else {
            break;
        }
    }
    v
}

/// Cumulative `read_bytes`/`write_bytes` from `/proc/[pid]/io` (bytes that reached storage).
pub fn parse_io(text: &[u8]) -> Option<(u64, u64)> {
    let mut read = None;
    let mut write = None;
    for line in text.split(|&b| b == b'\n') {
        if let Some(v) = line.strip_prefix(b"read_bytes: ") {
            read = Some(parse_u64(v));
        } else if let Some(v) = line.strip_prefix(b"write_bytes: ") {
            write = Some(parse_u64(v));
        }
    }
    Some((read?, write?))
}

/// One process as seen in one pass, with its rates.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcSnapshot {
    pub pid: u32,
    pub stat: Stat,
    pub comm: String,
    pub cpu_pct: f64,
    pub rss_bytes: u64,
    pub read_bytes_per_s: f64,
    pub write_bytes_per_s: f64,
    /// The time the rates cover when it is shorter than the interval (a process that started
    /// within it), ms: rate × span is what the process used in the interval.
    pub span_ms: Option<f64>,
}

/// What was last read of a process, for the exit accountant: its counters then, and its
/// identity if one was read.
#[derive(Debug, Clone, PartialEq)]
pub struct LastSeen {
    pub start_ticks: u64,
    pub cpu_ticks: u64,
    pub io: Option<(u64, u64)>,
    pub identity: Option<ProcessIdentity>,
    /// The comm the identity was read under (a different comm at exit: renamed since).
    pub identity_comm: Option<String>,
}

/// What we remember of a pid between passes.
#[derive(Debug, Clone)]
struct Prev {
    start_ticks: u64,
    cpu_ticks: u64,
    blkio_ticks: u64,
    io: Option<(u64, u64)>,
    /// Pass number when last seen, to forget vanished pids.
    seen: u64,
}

/// Counters of what could not be read in the last pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadErrors {
    pub vanished: u32,
    pub io_denied: u32,
}

pub struct ProcReader {
    root: String,
    clk_tck: f64,
    page_size: u64,
    boot_time_ms: i64,
    prev: HashMap<u32, Prev>,
    /// Pids that vanished in one of the last passes, with what was last read of them (their
    /// exit record may arrive after the pass that no longer saw them).
    departed: HashMap<u32, Prev>,
    /// Keyed by (pid, start ticks), with the comm the identity was read under: `exec` keeps
    /// pid and start time but changes the program, so a changed comm means a new identity.
    identities: HashMap<(u32, u64), (String, ProcessIdentity)>,
    users: Users,
    pass: u64,
    /// Boot-relative time of the previous pass, ms.
    prev_uptime_ms: Option<f64>,
    buf: Vec<u8>,
    path: String,
    pub errors: ReadErrors,
    /// Each pid's `stat`, kept open between passes.
    stat_files: HashMap<u32, File>,
    /// How many `stat` files may stay open (the rest are opened per read).
    stat_budget: usize,
    /// `/proc/loadavg`, kept open, for the last pid the kernel handed out; `None` where that
    /// number does not speak for `root` (another root, another pid namespace).
    loadavg: Option<File>,
    /// The last pid at the previous listed pass.
    last_pid: Option<u64>,
    /// The pids of the pass being read (kept for its allocation).
    pids: Vec<u32>,
}

impl ProcReader {
    pub fn new(boot_time_ms: i64) -> ProcReader {
        ProcReader::with_root("/proc", boot_time_ms)
    }

    pub fn with_root(root: &str, boot_time_ms: i64) -> ProcReader {
        // SAFETY: sysconf has no preconditions.
        let clk_tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
        ProcReader {
            root: root.to_string(),
            clk_tck,
            page_size,
            boot_time_ms,
            prev: HashMap::new(),
            departed: HashMap::new(),
            identities: HashMap::new(),
            users: Users::default(),
            pass: 0,
            prev_uptime_ms: None,
            buf: Vec::with_capacity(1024),
            path: String::with_capacity(64),
            errors: ReadErrors::default(),
            stat_files: HashMap::new(),
            stat_budget: stat_budget(),
            loadavg: same_pid_namespace(root)
                .then(|| File::open(format!("{root}/loadavg")).ok())
                .flatten(),
            last_pid: None,
            pids: Vec::new(),
        }
    }

    /// Reads `pid`'s `stat` into the buffer: by its open file if one is kept, else by path
    /// (keeping the file while the budget allows).
    fn read_stat(&mut self, pid: u32) -> bool {
        if let Some(f) = self.stat_files.get(&pid) {
            if pread_small(f, &mut self.buf) {
                return true;
            }
            // That process is gone; the number may belong to a new one by now.
            self.stat_files.remove(&pid);
        }
        use std::fmt::Write;
        self.path.clear();
        let _ = write!(self.path, "{}/{}/stat", self.root, pid);
        let Ok(f) = File::open(&self.path) else {
            self.buf.clear();
            return false;
        };
        if !pread_small(&f, &mut self.buf) {
            return false;
        }
        if self.stat_files.len() < self.stat_budget {
            self.stat_files.insert(pid, f);
        }
        true
    }

    /// The pids to read this pass: those of the previous pass when no task was created since
    /// (the last pid did not move), else the listing of `root`. Whether it listed.
    fn pids_to_read(&mut self, out: &mut Vec<u32>) -> bool {
        out.clear();
        let last_pid = self.loadavg.as_ref().and_then(|f| {
            pread_small(f, &mut self.buf)
                .then(|| parse_last_pid(&self.buf))
                .flatten()
        });
        if last_pid.is_some() && last_pid == self.last_pid {
            out.extend(self.prev.keys().copied());
            return false;
        }
        self.last_pid = last_pid;
        if let Ok(dir) = std::fs::read_dir(&self.root) {
            out.extend(
                dir.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()),
            );
        }
        true
    }

    fn read_file(&mut self, pid: u32, name: &str) -> bool {
        use std::fmt::Write;
        self.path.clear();
        let _ = write!(self.path, "{}/{}/{}", self.root, pid, name);
        read_small_file(&self.path, &mut self.buf)
    }

    /// Reads every process. `uptime_ms` is the boot-relative time of this pass
    /// (CLOCK_BOOTTIME). The first pass primes the counters; its rates are zero for processes
    /// older than the pass.
    pub fn read_all(&mut self, uptime_ms: f64, out: &mut Vec<ProcSnapshot>) {
        out.clear();
        self.errors = ReadErrors::default();
        self.pass += 1;
        let elapsed_s = self
            .prev_uptime_ms
            .map(|p| ((uptime_ms - p) / 1000.0).max(0.001));
        let mut pids = std::mem::take(&mut self.pids);
        // A pid of the previous pass that fails now has exited: not an error.
        let listed = self.pids_to_read(&mut pids);
        for &pid in &pids {
            if !self.read_stat(pid) {
                self.errors.vanished += u32::from(listed);
                continue;
            }
            let Some((stat, comm)) = parse_stat(&self.buf) else {
                self.errors.vanished += 1;
                continue;
            };
            let comm = String::from_utf8_lossy(comm).into_owned();
            let cpu_ticks = stat.utime_ticks + stat.stime_ticks;
            let start_ms = stat.start_ticks as f64 * 1000.0 / self.clk_tck;
            let prev = self
                .prev
                .get(&pid)
                .filter(|p| p.start_ticks == stat.start_ticks)
                .cloned();
            // Over what time and from what base this process's counters are diffed.
            let (base, span_s) = match (&prev, elapsed_s) {
                (Some(p), Some(e)) => (Some(p.clone()), Some(e)),
                // Started since the previous pass: everything it did, over its lifetime.
                (None, Some(e)) if start_ms > self.prev_uptime_ms.unwrap_or(f64::MAX) => (
                    None,
                    Some(((uptime_ms - start_ms) / 1000.0).clamp(0.001, e)),
                ),
                _ => (None, None),
            };
            let span_ms = match (&base, span_s, elapsed_s) {
                (None, Some(s), Some(e)) if s < e => Some(s * 1000.0),
                _ => None,
            };
            let cpu_pct = match span_s {
                Some(s) => {
                    let d = cpu_ticks.saturating_sub(base.as_ref().map_or(0, |b| b.cpu_ticks));
                    d as f64 / self.clk_tck / s * 100.0
                }
                None => 0.0,
            };
            let busy = match &base {
                Some(b) => cpu_ticks != b.cpu_ticks || stat.blkio_delay_ticks != b.blkio_ticks,
                None => true,
            };
            // Re-read io only for a process that ran or waited on I/O; otherwise its counters
            // cannot have moved.
            let (io, io_rate) = if busy || prev.as_ref().is_none_or(|p| p.io.is_none()) {
                let io = if self.read_file(pid, "io") {
                    parse_io(&self.buf)
                } else {
                    self.errors.io_denied += 1;
                    None
                };
                let rate = match (io, span_s) {
                    (Some((r, w)), Some(s)) => {
                        let (br, bw) = match &base {
                            Some(b) => match b.io {
                                Some(v) => v,
                                // No base read: no rate this pass.
                                None => (r, w),
                            },
                            None => (0, 0),
                        };
                        (
                            r.saturating_sub(br) as f64 / s,
                            w.saturating_sub(bw) as f64 / s,
                        )
                    }
                    _ => (0.0, 0.0),
                };
                (io, rate)
            } else {
                (prev.as_ref().and_then(|p| p.io), (0.0, 0.0))
            };
            self.prev.insert(
                pid,
                Prev {
                    start_ticks: stat.start_ticks,
                    cpu_ticks,
                    blkio_ticks: stat.blkio_delay_ticks,
                    io,
                    seen: self.pass,
                },
            );
            out.push(ProcSnapshot {
                pid,
                stat,
                comm,
                cpu_pct,
                rss_bytes: stat.rss_pages * self.page_size,
                read_bytes_per_s: io_rate.0,
                write_bytes_per_s: io_rate.1,
                span_ms,
            });
        }
        let pass = self.pass;
        // Keep what was last read of a vanished pid for three passes, for its exit record.
        self.departed.retain(|_, p| p.seen + 3 > pass);
        let departed = &mut self.departed;
        self.prev.retain(|&pid, p| {
            if p.seen != pass {
                departed.insert(pid, p.clone());
            }
            p.seen == pass
        });
        // No file kept for a pid this pass did not see.
        let prev = &self.prev;
        self.stat_files.retain(|pid, _| prev.contains_key(pid));
        let (prev, departed) = (&self.prev, &self.departed);
        self.identities.retain(|(pid, start), _| {
            prev.get(pid).is_some_and(|p| p.start_ticks == *start)
                || departed.get(pid).is_some_and(|p| p.start_ticks == *start)
        });
        self.prev_uptime_ms = Some(uptime_ms);
        self.pids = pids;
    }

    /// What was last read of `pid` if it started between `earlier` ticks before and `later`
    /// ticks after `start_ticks` (alive, or vanished in the last passes).
    pub fn last_seen(
        &self,
        pid: u32,
        start_ticks: u64,
        earlier: u64,
        later: u64,
    ) -> Option<LastSeen> {
        let p = [self.prev.get(&pid), self.departed.get(&pid)]
            .into_iter()
            .flatten()
            .find(|p| {
                p.start_ticks + earlier >= start_ticks && p.start_ticks <= start_ticks + later
            })?;
        let known = self.identities.get(&(pid, p.start_ticks));
        Some(LastSeen {
            start_ticks: p.start_ticks,
            cpu_ticks: p.cpu_ticks,
            io: p.io,
            identity: known.map(|(_, id)| id.clone()),
            identity_comm: known.map(|(comm, _)| comm.clone()),
        })
    }

    /// Whether `pid` was seen by the last pass.
    pub fn is_alive(&self, pid: u32) -> bool {
        self.prev.get(&pid).is_some_and(|p| p.seen == self.pass)
    }

    /// The user name of a uid (from `/etc/passwd`, cached), or the number.
    pub fn user_name(&mut self, uid: u32) -> String {
        self.users.name(uid)
    }

    pub fn clk_tck(&self) -> f64 {
        self.clk_tck
    }

    pub fn boot_time_ms(&self) -> i64 {
        self.boot_time_ms
    }

    /// The identity of a process, read once per lifetime and cached.
    pub fn identity(&mut self, p: &ProcSnapshot) -> ProcessIdentity {
        let key = (p.pid, p.stat.start_ticks);
        if let Some((comm, id)) = self.identities.get(&key) {
            if *comm == p.comm {
                let mut id = id.clone();
                id.ppid = p.stat.ppid;
                return id;
            }
        }
        let cmdline = if self.read_file(p.pid, "cmdline") {
            let mut v: Vec<u8> = self.buf.clone();
            while v.last() == Some(&0) {
                v.pop();
            }
            v
        } else {
            Vec::new()
        };
        let name = full_name(&p.comm, &cmdline);
        // Secrets are masked here, once per identity: no later copy (rules, store, alerts)
        // ever holds them.
        let cmdline = crate::format::redact_owned(crate::collect::cap_cmdline(
            String::from_utf8_lossy(&cmdline).replace('\0', " "),
        ));
        self.path.clear();
        self.path.push_str(&format!("{}/{}", self.root, p.pid));
        let uid = std::fs::metadata(&self.path).map(|m| m.uid()).unwrap_or(0);
        let id = ProcessIdentity {
            pid: p.pid,
            ppid: p.stat.ppid,
            start_time_ms: self.boot_time_ms
                + (p.stat.start_ticks as f64 * 1000.0 / self.clk_tck) as i64,
            uid,
            user: self.users.name(uid),
            name,
            cmdline,
        };
        self.identities.insert(key, (p.comm.clone(), id.clone()));
        id
    }

    /// Detail-level extras: open fds, wait channel, cgroup. Costs three more reads per pid.
    pub fn extra(&mut self, pid: u32) -> ProcessExtra {
        self.path.clear();
        self.path.push_str(&format!("{}/{}/fd", self.root, pid));
        let open_fds = std::fs::read_dir(&self.path).ok().map(|d| d.count() as u32);
        let wchan = if self.read_file(pid, "wchan") {
            let s = String::from_utf8_lossy(&self.buf).trim().to_string();
            (!s.is_empty() && s != "0").then_some(s)
        } else {
            None
        };
        let cgroup = if self.read_file(pid, "cgroup") {
            // cgroup v2: "0::/path"; v1: take the first line's path.
            String::from_utf8_lossy(&self.buf)
                .lines()
                .next()
                .and_then(|l| l.splitn(3, ':').nth(2))
                .map(str::to_string)
        } else {
            None
        };
        ProcessExtra {
            open_fds,
            wchan,
            cgroup,
        }
    }
}

/// Reads a /proc file kept open into `buf`: one `pread` from offset 0 while it fills less than
/// the chunk (a /proc seq file hands its whole text to one read that has room for it), more
/// reads only for a longer text.
fn pread_small(f: &File, buf: &mut Vec<u8>) -> bool {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        match f.read_at(&mut chunk, buf.len() as u64) {
            Ok(0) => return !buf.is_empty(),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if n < chunk.len() {
                    return true;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// A /proc file kept open and re-read from its start with `pread`: no path walk, no open and
/// no close per read. A failed read reopens it by path once.
pub struct KeptFile {
    path: &'static str,
    file: Option<File>,
}

impl KeptFile {
    pub fn new(path: &'static str) -> KeptFile {
        KeptFile { path, file: None }
    }

    /// The file's text, or empty where it cannot be read.
    pub fn text(&mut self, buf: &mut Vec<u8>) -> String {
        for _ in 0..2 {
            if self.file.is_none() {
                self.file = File::open(self.path).ok();
            }
            match &self.file {
                Some(f) if pread_small(f, buf) => {
                    return String::from_utf8_lossy(buf).into_owned();
                }
                Some(_) => self.file = None,
                None => break,
            }
        }
        String::new()
    }
}

/// The last pid the kernel handed out: the fifth field of `/proc/loadavg`
/// ("0.10 0.20 0.30 1/123 4567").
fn parse_last_pid(loadavg: &[u8]) -> Option<u64> {
    std::str::from_utf8(loadavg)
        .ok()?
        .split_ascii_whitespace()
        .nth(4)?
        .parse()
        .ok()
}

/// Whether the pids under `root` are those of this process's pid namespace (the only one whose
/// last pid `/proc/loadavg` tells): `root/self` names our own pid.
fn same_pid_namespace(root: &str) -> bool {
    std::fs::read_link(format!("{root}/self"))
        .ok()
        .and_then(|p| p.to_str()?.parse::<u32>().ok())
        == Some(std::process::id())
}

/// How many `stat` files the reader may keep open: half of the soft `RLIMIT_NOFILE` (raised to
/// the hard limit at start by the daemon), less a reserve for everything else, at most 65,536.
fn stat_budget() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    ((lim.rlim_cur / 2).saturating_sub(256) as usize).min(65_536)
}

/// Reads a /proc file into `buf` with plain `read` calls. (`read_to_end` first asks for the
/// file's size with statx and lseek, which a /proc file cannot answer: two wasted syscalls per
/// file, per pid, per sample.)
fn read_small_file(path: &str, buf: &mut Vec<u8>) -> bool {
    buf.clear();
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    let mut chunk = [0u8; 4096];
    loop {
        match f.read(&mut chunk) {
            Ok(0) => return true,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// The collection floor of SPEC §11: one read of `/proc/[pid]/stat` for every pid, nothing
/// else. The benchmarks and `examples/stat_floor.rs` measure hogtrap against it. Returns the
/// bytes read.
pub fn read_every_stat_once(buf: &mut Vec<u8>) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut n = 0;
    let mut path = String::with_capacity(32);
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        path.clear();
        path.push_str("/proc/");
        path.push_str(pid);
        path.push_str("/stat");
        if read_small_file(&path, buf) {
            n += buf.len();
        }
    }
    n
}

/// The kernel cuts `comm` to 15 bytes; where it is cut, take the program's own name from
/// argv[0] when that name starts with the comm.
pub fn full_name(comm: &str, cmdline: &[u8]) -> String {
    if comm.len() < 15 {
        return comm.to_string();
    }
    let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or(&[]);
    let argv0 = String::from_utf8_lossy(argv0);
    // argv[0] may carry arguments when a program rewrote it (e.g. "postgres: writer").
    let first = argv0.split(' ').next().unwrap_or("");
    let base = first.rsplit('/').next().unwrap_or("");
    if base.starts_with(comm) {
        base.to_string()
    } else {
        comm.to_string()
    }
}

/// uid → user name, from /etc/passwd, reloaded on a miss at most once per minute.
#[derive(Default)]
struct Users {
    names: HashMap<u32, String>,
    loaded_at: Option<std::time::Instant>,
}

impl Users {
    fn name(&mut self, uid: u32) -> String {
        if !self.names.contains_key(&uid)
            && self
                .loaded_at
                .is_none_or(|t| t.elapsed() > std::time::Duration::from_secs(60))
        {
            self.loaded_at = Some(std::time::Instant::now());
            if let Ok(text) = std::fs::read_to_string("/etc/passwd") {
                for line in text.lines() {
                    let mut f = line.split(':');
                    if let (Some(name), _, Some(id)) = (f.next(), f.next(), f.next()) {
                        if let Ok(id) = id.parse() {
                            self.names.insert(id, name.to_string());
                        }
                    }
                }
            }
        }
        self.names
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| uid.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parens_in_comm() {
        let line = b"1234 (a b) c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 987654 10000000 2500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 7 0 0\n";
        let (s, comm) = parse_stat(line).unwrap();
        assert_eq!(comm, b"a b) c)");
        assert_eq!(s.state, b'S');
        assert_eq!(s.ppid, 1);
        assert_eq!(s.utime_ticks, 250);
        assert_eq!(s.stime_ticks, 50);
        assert_eq!(s.threads, 3);
        assert_eq!(s.start_ticks, 987654);
        assert_eq!(s.rss_pages, 2500);
        assert_eq!(s.blkio_delay_ticks, 7);
    }

    #[test]
    fn truncated_stat_does_not_panic() {
        for n in 0..40 {
            let line = b"1 (x) S 0 1 1 0";
            let _ = parse_stat(&line[..n.min(line.len())]);
        }
        assert!(parse_stat(b"garbage").is_none());
    }

    #[test]
    fn io_fields() {
        let t = b"rchar: 5\nwchar: 6\nsyscr: 1\nsyscw: 1\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n";
        assert_eq!(parse_io(t), Some((4096, 8192)));
        assert_eq!(parse_io(b"rchar: 1\n"), None);
    }

    #[test]
    fn full_name_from_argv0_when_comm_is_cut() {
        assert_eq!(full_name("bash", b"/bin/bash\0-l"), "bash");
        assert_eq!(
            full_name("very-long-progr", b"/usr/bin/very-long-program-name\0--x"),
            "very-long-program-name"
        );
        assert_eq!(full_name("kworker/0:1-eve", b""), "kworker/0:1-eve");
    }

    /// `exec` keeps pid and start time; the identity must follow the new program.
    #[test]
    fn identity_follows_exec() {
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 0.5; exec sleep 5"])
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut r = ProcReader::new(0);
        let mut out = Vec::new();
        let name_now = |r: &mut ProcReader, out: &mut Vec<ProcSnapshot>| {
            r.read_all(1.0, out);
            let p = out.iter().find(|p| p.pid == pid).unwrap().clone();
            r.identity(&p).name
        };
        assert_eq!(name_now(&mut r, &mut out), "sh");
        std::thread::sleep(std::time::Duration::from_millis(1200));
        assert_eq!(name_now(&mut r, &mut out), "sleep");
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn reads_this_process() {
        let mut r = ProcReader::new(0);
        let mut out = Vec::new();
        r.read_all(1.0, &mut out);
        let me = std::process::id();
        let p = out.iter().find(|p| p.pid == me).expect("own pid listed");
        assert!(p.rss_bytes > 0);
        let id = r.identity(p);
        assert!(!id.name.is_empty());
        assert!(!id.cmdline.is_empty());
    }

    #[test]
    fn last_pid_is_the_fifth_field_of_loadavg() {
        assert_eq!(parse_last_pid(b"0.10 0.20 0.30 1/123 4567\n"), Some(4567));
        assert_eq!(parse_last_pid(b"0.10 0.20 0.30 1/123"), None);
        assert_eq!(parse_last_pid(b""), None);
    }

    fn pass(r: &mut ProcReader, out: &mut Vec<ProcSnapshot>) -> Vec<u32> {
        r.read_all(crate::collect::linux::host::uptime_ms(), out);
        out.iter().map(|p| p.pid).collect()
    }

    #[test]
    fn kept_stat_files_follow_processes_that_start_and_exit() {
        let mut r = ProcReader::new(0);
        assert!(
            r.loadavg.is_some(),
            "this test's /proc is its own pid namespace's"
        );
        let mut out = Vec::new();
        pass(&mut r, &mut out);
        // A process started after a pass is read by the next one (the last pid moved).
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let seen = pass(&mut r, &mut out);
        assert!(seen.contains(&pid), "a new process is listed");
        assert!(r.stat_files.contains_key(&pid), "and its stat kept open");
        let before = out.iter().find(|p| p.pid == pid).unwrap().stat.start_ticks;
        // Read again through the kept file: the same process.
        let seen = pass(&mut r, &mut out);
        assert!(seen.contains(&pid));
        assert_eq!(
            out.iter().find(|p| p.pid == pid).unwrap().stat.start_ticks,
            before
        );
        // Once it exits (and is reaped), its kept file fails and it is gone, listed or not.
        child.kill().unwrap();
        child.wait().unwrap();
        let seen = pass(&mut r, &mut out);
        assert!(!seen.contains(&pid), "an exited process is not read");
        assert!(!r.stat_files.contains_key(&pid), "nor its file kept");
    }

    #[test]
    fn a_pass_with_no_new_task_reads_the_previous_pids_without_listing() {
        let mut r = ProcReader::new(0);
        let mut out = Vec::new();
        pass(&mut r, &mut out);
        // Pretend no task was created since: the pass reads the pids it knows.
        r.last_pid = r.loadavg.as_ref().and_then(|f| {
            let mut b = Vec::new();
            pread_small(f, &mut b).then(|| parse_last_pid(&b)).flatten()
        });
        let mut pids = Vec::new();
        let listed = r.pids_to_read(&mut pids);
        // Another thread of the test harness may fork between the two reads: then it lists.
        if !listed {
            let mut known: Vec<u32> = r.prev.keys().copied().collect();
            known.sort_unstable();
            pids.sort_unstable();
            assert_eq!(pids, known);
        }
        let me = std::process::id();
        assert!(pids.contains(&me));
    }

    #[test]
    fn a_kept_file_reads_the_whole_text_again_each_time() {
        let mut buf = Vec::new();
        for path in ["/proc/filesystems", "/proc/self/mounts"] {
            let mut f = KeptFile::new(path);
            let want = std::fs::read_to_string(path).unwrap();
            assert_eq!(f.text(&mut buf), want, "{path}");
            assert_eq!(f.text(&mut buf), want, "{path}, read again");
        }
        assert_eq!(KeptFile::new("/proc/no-such-file").text(&mut buf), "");
    }
}
