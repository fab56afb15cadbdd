//! Which process holds a socket: socket inode → pid, read from the `/proc/[pid]/fd/*` links
//! (`socket:[INODE]`), as `lsof` and `ss -p` do.
//!
//! Cost strategy (measured by `benches/net.rs`): reading every fd of every process on every
//! sample is what makes such tools expensive, so the map is a cache that is only repaired where
//! it is known to be wrong:
//!
//! - A full scan of all pids at the first refresh and then every `full_scan_every` (default
//!   60 s), which also retries sockets that could not be attributed.
//! - A socket inode that is in neither the cache nor the "searched, no owner" set triggers a
//!   search: list `/proc`, forget vanished pids, scan pids not seen before; if still missing,
//!   rescan the known pids that could hold it (same uid as the socket, or root-owned, or all if
//!   the socket is root's), those already holding the most sockets first, until all are found;
//!   still missing → recorded as unowned until the next full scan.
//! - A socket that moved bytes has its cached owner checked with one `readlink` of the exact
//!   fd (`verify_owner`); on a miss that pid is rescanned and the next holder is tried.
//!
//! So a quiet host costs one netlink dump and no `/proc` reads per sample; a new connection
//! costs a `/proc` listing plus the fds of new processes (and, if the connection belongs to an
//! old process, a rescan of that user's processes).
//!
//! Shared sockets: after `fork` (or fd passing) several processes hold the same socket. Its
//! bytes are attributed to exactly one of them, the lowest pid among the holders the cache
//! knows (usually the process that created it, which forked the others), so totals add up and
//! nothing is counted twice. The kernel keeps no per-process count, so who really wrote the
//! bytes is not knowable from socket counters. After a full scan the cache knows every holder;
//! between full scans a search stops at the first holder it finds, so a socket first found in a
//! forked child stays with the child until the next full scan (still counted once).
//!
//! Without root (or CAP_SYS_PTRACE), `/proc/[pid]/fd` of other users' processes is unreadable
//! (EACCES): those pids are remembered as unreadable and their sockets end up unowned; see
//! [`OwnerMap::unreadable_pids`].

use std::collections::{HashMap, HashSet};
use std::io::{ErrorKind, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A process holding a socket through one of its fds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub fd: u32,
}

/// Why a socket has no owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unowned {
    /// Searched; some processes' fds could not be read (no permission), it may be theirs.
    MaybeUnreadable,
    /// Searched every readable process: no fd refers to it (orphaned, kernel socket, or closed
    /// since the dump).
    NoFd,
}

/// Work counters, for benches and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwnerStats {
    pub full_scans: u64,
    pub proc_listings: u64,
    pub pid_scans: u64,
    pub fd_links_read: u64,
    pub verifications: u64,
    pub verification_misses: u64,
}

#[derive(Debug, Default)]
struct PidFds {
    /// Owner uid of `/proc/[pid]` (the effective uid).
    uid: u32,
    readable: bool,
    /// (inode, fd) of every socket fd at the last scan.
    sockets: Vec<(u64, u32)>,
}

/// The cached socket-inode → holders map. See the module comment for the strategy.
#[derive(Debug)]
pub struct OwnerMap {
    proc_root: PathBuf,
    full_scan_every: Duration,
    last_full_scan: Option<Instant>,
    pids: HashMap<u32, PidFds>,
    /// Holders per inode, sorted by pid.
    holders: HashMap<u64, Vec<Holder>>,
    unowned: HashMap<u64, Unowned>,
    stats: OwnerStats,
    path_buf: Vec<u8>,
}

/// A socket to attribute: its inode and the uid the kernel reports for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketKey {
    pub inode: u64,
    pub uid: u32,
}

impl OwnerMap {
    pub fn new(proc_root: impl Into<PathBuf>, full_scan_every: Duration) -> OwnerMap {
        OwnerMap {
            proc_root: proc_root.into(),
            full_scan_every,
            last_full_scan: None,
            pids: HashMap::new(),
            holders: HashMap::new(),
            unowned: HashMap::new(),
            stats: OwnerStats::default(),
            path_buf: Vec::new(),
        }
    }

    pub fn stats(&self) -> OwnerStats {
        self.stats
    }

    /// Processes whose fds could not be read at their last scan.
    pub fn unreadable_pids(&self) -> usize {
        self.pids.values().filter(|p| !p.readable).count()
    }

    /// The pids counted by [`unreadable_pids`](Self::unreadable_pids).
    pub fn unreadable_pid_set(&self) -> HashSet<u32> {
        self.pids
            .iter()
            .filter(|(_, p)| !p.readable)
            .map(|(pid, _)| *pid)
            .collect()
    }

    /// The socket's owner as the cache knows it: the lowest pid among its holders.
    pub fn owner(&self, inode: u64) -> Option<u32> {
        self.holders
            .get(&inode)
            .and_then(|h| h.first())
            .map(|h| h.pid)
    }

    /// Whether `/proc/[pid]` still exists.
    pub fn is_alive(&mut self, pid: u32) -> bool {
        self.path_buf.clear();
        self.path_buf
            .extend_from_slice(self.proc_root.as_os_str().as_bytes());
        // Writing into a Vec cannot fail.
        let _ = write!(self.path_buf, "/{pid}");
        std::path::Path::new(std::ffi::OsStr::from_bytes(&self.path_buf)).exists()
    }

    /// Every holder the cache knows, lowest pid first.
    pub fn holders(&self, inode: u64) -> &[Holder] {
        self.holders.get(&inode).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Why `inode` has no owner, if it was searched for in vain.
    pub fn unowned_reason(&self, inode: u64) -> Option<Unowned> {
        self.unowned.get(&inode).copied()
    }

    /// Like [`owner`](Self::owner), but checks the cached fd still refers to the socket
    /// (one `readlink`); on a miss the holder's fds are rescanned and the next holder tried.
    pub fn verify_owner(&mut self, inode: u64) -> Option<u32> {
        // Bounded: every miss rescans a pid, which removes the stale holder.
        for _ in 0..8 {
            let holder = *self.holders.get(&inode)?.first()?;
            self.stats.verifications += 1;
            if self.fd_refers_to(holder, inode) {
                return Some(holder.pid);
            }
            self.stats.verification_misses += 1;
            self.scan_pid(holder.pid);
        }
        None
    }

    /// Makes sure every socket in `sockets` is either in the cache or recorded as unowned, and
    /// forgets unowned records of sockets that no longer exist. Never fails: unreadable and
    /// vanished pids are normal.
    pub fn refresh(&mut self, sockets: &[SocketKey], now: Instant) {
        let full_due = self
            .last_full_scan
            .is_none_or(|t| now.saturating_duration_since(t) >= self.full_scan_every);
        if full_due {
            self.full_scan();
            self.last_full_scan = Some(now);
        }

        let mut missing: Vec<SocketKey> = sockets
            .iter()
            .filter(|s| {
                s.inode != 0
                    && !self.holders.contains_key(&s.inode)
                    && !self.unowned.contains_key(&s.inode)
            })
            .copied()
            .collect();

        if !missing.is_empty() && !full_due {
            // 1. New processes.
            let mut scanned = HashSet::new();
            let live = self.list_pids();
            self.pids.retain(|pid, _| live.contains(pid));
            self.rebuild_holders();
            for &pid in &live {
                if !self.pids.contains_key(&pid) {
                    self.scan_pid(pid);
                    scanned.insert(pid);
                }
            }
            missing.retain(|s| !self.holders.contains_key(&s.inode));
            // 2. Known processes that opened a socket since their last scan.
            if !missing.is_empty() {
                let uids: HashSet<u32> = missing.iter().map(|s| s.uid).collect();
                let all = uids.contains(&0);
                // Processes that already hold sockets (servers, clients) first, the busiest
                // first; stop as soon as every missing socket is found.
                let mut candidates: Vec<(usize, u32)> = self
                    .pids
                    .iter()
                    .filter(|(pid, p)| {
                        p.readable
                            && !scanned.contains(*pid)
                            && (all || p.uid == 0 || uids.contains(&p.uid))
                    })
                    .map(|(pid, p)| (p.sockets.len(), *pid))
                    .collect();
                candidates.sort_unstable_by(|a, b| b.cmp(a));
                for (_, pid) in candidates {
                    self.scan_pid(pid);
                    missing.retain(|s| !self.holders.contains_key(&s.inode));
                    if missing.is_empty() {
                        break;
                    }
                }
            }
        }

        let reason = if self.unreadable_pids() > 0 {
            Unowned::MaybeUnreadable
        } else {
            Unowned::NoFd
        };
        for s in missing {
            if !self.holders.contains_key(&s.inode) {
                self.unowned.insert(s.inode, reason);
            }
        }
        if !self.unowned.is_empty() {
            let present: HashSet<u64> = sockets.iter().map(|s| s.inode).collect();
            self.unowned.retain(|inode, _| present.contains(inode));
        }
    }

    /// Rescans every pid; clears the unowned records so they are searched again.
    pub fn full_scan(&mut self) {
        self.stats.full_scans += 1;
        self.unowned.clear();
        let live = self.list_pids();
        self.pids.clear();
        self.holders.clear();
        for pid in live {
            self.scan_pid(pid);
        }
    }

    fn list_pids(&mut self) -> Vec<u32> {
        self.stats.proc_listings += 1;
        let Ok(dir) = std::fs::read_dir(&self.proc_root) else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .collect()
    }

    /// Rereads one pid's fds and updates the holders map. A vanished pid is forgotten; an
    /// unreadable one is remembered as such (with no sockets).
    fn scan_pid(&mut self, pid: u32) {
        self.stats.pid_scans += 1;
        let old = self.pids.remove(&pid);
        if let Some(old) = &old {
            for &(inode, _) in &old.sockets {
                self.remove_holder(inode, pid);
            }
        }
        let pid_dir = self.proc_root.join(pid.to_string());
        let uid = match std::fs::metadata(&pid_dir) {
            Ok(m) => m.uid(),
            Err(_) => return, // vanished
        };
        let fd_dir = pid_dir.join("fd");
        let entries = match std::fs::read_dir(&fd_dir) {
            Ok(d) => d,
            Err(e) if matches!(e.kind(), ErrorKind::PermissionDenied) => {
                self.pids.insert(
                    pid,
                    PidFds {
                        uid,
                        readable: false,
                        sockets: Vec::new(),
                    },
                );
                return;
            }
            Err(_) => return, // vanished, or a zombie without fds
        };
        let mut sockets = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(fd) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            self.stats.fd_links_read += 1;
            self.path_buf.clear();
            self.path_buf
                .extend_from_slice(fd_dir.as_os_str().as_bytes());
            let _ = write!(self.path_buf, "/{fd}");
            let mut target = [0u8; 64];
            // Closed meanwhile, or not a socket (longer targets are paths, never sockets).
            if let Some(inode) = readlink(&mut self.path_buf, &mut target)
                .and_then(|t| std::str::from_utf8(t).ok())
                .and_then(parse_socket_link)
            {
                sockets.push((inode, fd));
            }
        }
        for &(inode, fd) in &sockets {
            self.add_holder(inode, Holder { pid, fd });
            self.unowned.remove(&inode);
        }
        self.pids.insert(
            pid,
            PidFds {
                uid,
                readable: true,
                sockets,
            },
        );
    }

    fn fd_refers_to(&mut self, holder: Holder, inode: u64) -> bool {
        self.path_buf.clear();
        self.path_buf
            .extend_from_slice(self.proc_root.as_os_str().as_bytes());
        // Writing into a Vec cannot fail.
        let _ = write!(self.path_buf, "/{}/fd/{}", holder.pid, holder.fd);
        let mut target = [0u8; 64];
        readlink(&mut self.path_buf, &mut target)
            .and_then(|t| std::str::from_utf8(t).ok())
            .and_then(parse_socket_link)
            == Some(inode)
    }

    fn add_holder(&mut self, inode: u64, holder: Holder) {
        let list = self.holders.entry(inode).or_default();
        let at = list
            .partition_point(|h| h.pid < holder.pid || (h.pid == holder.pid && h.fd < holder.fd));
        list.insert(at, holder);
    }

    fn remove_holder(&mut self, inode: u64, pid: u32) {
        if let Some(list) = self.holders.get_mut(&inode) {
            list.retain(|h| h.pid != pid);
            if list.is_empty() {
                self.holders.remove(&inode);
            }
        }
    }

    fn rebuild_holders(&mut self) {
        self.holders.clear();
        let entries: Vec<(u64, Holder)> = self
            .pids
            .iter()
            .flat_map(|(&pid, p)| {
                p.sockets
                    .iter()
                    .map(move |&(inode, fd)| (inode, Holder { pid, fd }))
            })
            .collect();
        for (inode, holder) in entries {
            self.add_holder(inode, holder);
        }
    }
}

/// `readlink(2)` without allocating: `path` gets a NUL appended; returns the target if it fits
/// in `out` (a longer target is reported as `None`).
fn readlink<'a>(path: &mut Vec<u8>, out: &'a mut [u8]) -> Option<&'a [u8]> {
    if path.contains(&0) {
        return None;
    }
    path.push(0);
    // SAFETY: `path` is NUL-terminated with no interior NUL; `out` is writable for its length.
    let n = unsafe { libc::readlink(path.as_ptr().cast(), out.as_mut_ptr().cast(), out.len()) };
    let n = usize::try_from(n).ok()?;
    (n < out.len()).then(|| &out[..n])
}

/// `socket:[12345]` → 12345.
pub fn parse_socket_link(target: &str) -> Option<u64> {
    target
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_links_parse() {
        assert_eq!(parse_socket_link("socket:[42]"), Some(42));
        assert_eq!(parse_socket_link("socket:[]"), None);
        assert_eq!(parse_socket_link("pipe:[42]"), None);
        assert_eq!(parse_socket_link("/dev/null"), None);
        assert_eq!(parse_socket_link("socket:[18446744073709551616]"), None);
    }
}
