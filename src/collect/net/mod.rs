//! Per-process network accounting on Linux: which process moved how many TCP bytes, from the
//! kernel's per-socket counters (sock_diag `tcp_info`), attributed to processes through their
//! fds, plus interface totals from `/proc/net/dev` so that the part no process accounts for is
//! visible rather than silent.
//!
//! What one [`NetCollector::collect`] call guarantees:
//!
//! - **Counters are diffed per socket**, keyed by the kernel socket cookie (unique for the life
//!   of the namespace; the inode is only a fallback when no cookie is reported, because a
//!   connection waiting in an accept queue has inode 0 and gets its inode at `accept()`).
//! - **A socket seen for the first time** counts all its bytes if the previous dump of its
//!   table succeeded: that dump listed every socket alive then, so this one was created during
//!   the interval and all its bytes were moved during it. On the first call, and for a table
//!   whose previous dump failed, new sockets only set a baseline (0 bytes).
//! - **Invisible:** a socket that opened and closed between two calls, and the bytes a socket
//!   moved between the last call and its close. Those bytes still show in the interface totals,
//!   so they end up in [`NetSample::unattributed_external`]. So do UDP, ICMP, other network
//!   namespaces, TCP/IP header overhead and retransmissions (the counters are payload bytes:
//!   `tcpi_bytes_acked` sent and acknowledged, `tcpi_bytes_received` received in order).
//! - **No double counting:** a socket held by several processes counts once, for the lowest pid
//!   holding it (see [`owners`]). `attributed` is exactly the sum of `per_pid`.
//! - **One network namespace:** the one of the thread that called [`NetCollector::new`] (the
//!   netlink socket's) for sockets, and the calling thread's for `/proc/thread-self/net/dev`.
//!   Sockets of other namespaces (containers) are not listed; their traffic on this
//!   namespace's interfaces (a veth, a bridge) counts as unattributed.
//! - Never panics and never aborts on a per-pid or per-socket problem; a failed dump of one
//!   table is reported in `problems` and the other tables are still collected.

pub mod ifstats;
pub mod owners;
pub mod sockdiag;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::model::{Connection, HostRow, ProcessRow, Protocol};
use ifstats::InterfaceCounters;
use owners::{OwnerMap, OwnerStats, SocketKey, Unowned};
use sockdiag::{SockDiag, SockDiagError, SocketRecord, Table};

pub use sockdiag::SockDiagError as NetError;

/// Transmit and receive rates, bytes per second.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NetRate {
    pub tx_bytes_per_s: f64,
    pub rx_bytes_per_s: f64,
}

impl NetRate {
    fn add(&mut self, other: NetRate) {
        self.tx_bytes_per_s += other.tx_bytes_per_s;
        self.rx_bytes_per_s += other.rx_bytes_per_s;
    }
}

/// One interface's rates over the interval.
#[derive(Debug, Clone, PartialEq)]
pub struct InterfaceRate {
    pub name: String,
    pub rate: NetRate,
}

/// One socket in one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SocketSample {
    pub protocol: Protocol,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Kernel state number; see [`sockdiag::state_name`].
    pub state: u8,
    /// 0 for a socket without a file (accept queue, orphaned).
    pub inode: u64,
    /// The owning process (the lowest pid if several hold it); `None` if not found.
    pub pid: Option<u32>,
    /// TCP payload rates over the interval; `None` for UDP, on the first call, or without
    /// kernel counters.
    pub rate: Option<NetRate>,
}

impl SocketSample {
    pub fn state_name(&self) -> &'static str {
        sockdiag::state_name(self.protocol, self.state)
    }

    pub fn to_connection(&self) -> Connection {
        Connection {
            pid: self.pid,
            protocol: self.protocol,
            local_addr: self.local.ip().to_string(),
            local_port: self.local.port(),
            remote_addr: self.remote.ip().to_string(),
            remote_port: self.remote.port(),
            state: self.state_name().to_string(),
            tx_bytes_per_s: self.rate.map(|r| r.tx_bytes_per_s),
            rx_bytes_per_s: self.rate.map(|r| r.rx_bytes_per_s),
        }
    }
}

/// The result of one [`NetCollector::collect`].
#[derive(Debug, Default)]
pub struct NetSample {
    /// Time since the previous call; `None` on the first call (every rate is then 0 and the
    /// connection rates are `None`).
    pub interval: Option<Duration>,
    /// TCP payload rates per process. Only pids that hold at least one TCP socket with counters.
    pub per_pid: HashMap<u32, NetRate>,
    /// Pids whose fds could not be read (no permission): their rates are unknown, not 0.
    pub unreadable_pids: HashSet<u32>,
    /// Every TCP (all states but TIME-WAIT) and UDP socket of the namespace, with its owner.
    /// TCP rows carry rates (when there is an interval and the kernel reports counters); UDP
    /// rows never do. Kept as addresses, not text: [`connections`](Self::connections) makes
    /// the model rows (formatting ~2,000 addresses is a tenth of a sample's cost, so do it only
    /// at detail level).
    pub sockets: Vec<SocketSample>,
    /// Sum of `per_pid`.
    pub attributed: NetRate,
    /// The part of `attributed` on sockets whose peer is on this host (loopback, or the
    /// socket's own address): these bytes cross `lo`, not an external interface.
    pub attributed_local: NetRate,
    /// TCP payload rates of sockets with no owner found (orphaned, accept queue, unreadable).
    pub unattributed_tcp: NetRate,
    /// Sockets (TCP and UDP) with no owner found, and how many of those may belong to
    /// processes whose fds could not be read.
    pub unattributed_sockets: usize,
    pub unattributed_sockets_unreadable: usize,
    /// Every interface in `/proc/net/dev`, `lo` included.
    pub interfaces: Vec<InterfaceRate>,
    /// Sum over interfaces other than `lo`.
    pub interfaces_external: NetRate,
    /// `lo` alone.
    pub interfaces_loopback: NetRate,
    /// What went wrong this time (a failed dump, an unreadable `/proc/net/dev`).
    pub problems: Vec<String>,
}

impl NetSample {
    /// The model's connection rows, one per socket (for detail-level samples).
    pub fn connections(&self) -> Vec<Connection> {
        self.sockets
            .iter()
            .map(SocketSample::to_connection)
            .collect()
    }

    /// External interface traffic that no process accounts for: interface totals (non-`lo`)
    /// minus the attributed TCP payload that crossed them, clamped at 0. It holds UDP and other
    /// protocols, short-lived and unowned sockets, other namespaces and header overhead.
    pub fn unattributed_external(&self) -> NetRate {
        let tx = self.attributed.tx_bytes_per_s - self.attributed_local.tx_bytes_per_s;
        let rx = self.attributed.rx_bytes_per_s - self.attributed_local.rx_bytes_per_s;
        NetRate {
            tx_bytes_per_s: (self.interfaces_external.tx_bytes_per_s - tx).max(0.0),
            rx_bytes_per_s: (self.interfaces_external.rx_bytes_per_s - rx).max(0.0),
        }
    }

    /// A process's TCP rates: `Some` (possibly 0) when its sockets are known, `None` when its
    /// fds could not be read.
    pub fn process_rate(&self, pid: u32) -> Option<NetRate> {
        if self.unreadable_pids.contains(&pid) {
            return None;
        }
        Some(self.per_pid.get(&pid).copied().unwrap_or_default())
    }

    /// Sets the host row's interface totals (`lo` excluded) and the unattributed remainder.
    pub fn fill_host(&self, host: &mut HostRow) {
        host.net_rx_bytes_per_s = self.interfaces_external.rx_bytes_per_s;
        host.net_tx_bytes_per_s = self.interfaces_external.tx_bytes_per_s;
        let u = self.unattributed_external();
        host.net_unattributed_rx_bytes_per_s = u.rx_bytes_per_s;
        host.net_unattributed_tx_bytes_per_s = u.tx_bytes_per_s;
    }

    /// Sets `net_tx_bytes_per_s` / `net_rx_bytes_per_s` of each row (see [`process_rate`]).
    ///
    /// [`process_rate`]: Self::process_rate
    pub fn fill_processes(&self, rows: &mut [ProcessRow]) {
        for row in rows {
            let rate = self.process_rate(row.id.pid);
            row.net_tx_bytes_per_s = rate.map(|r| r.tx_bytes_per_s);
            row.net_rx_bytes_per_s = rate.map(|r| r.rx_bytes_per_s);
        }
    }
}

/// Settings; the defaults suit a daemon.
#[derive(Debug, Clone)]
pub struct NetCollectorOptions {
    /// Where procfs is mounted.
    pub proc_root: PathBuf,
    /// How often every process's fds are reread regardless of need.
    pub full_scan_every: Duration,
}

impl Default for NetCollectorOptions {
    fn default() -> Self {
        NetCollectorOptions {
            proc_root: PathBuf::from("/proc"),
            full_scan_every: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Counters {
    sent: u64,
    received: u64,
}

/// Collects [`NetSample`]s; keeps the previous counters and the socket-owner cache.
pub struct NetCollector {
    diag: SockDiag,
    owners: OwnerMap,
    proc_net_dev: PathBuf,
    proc_net_dev_fallback: PathBuf,
    prev_time: Option<Instant>,
    /// Counters at the previous call, by socket key.
    prev: HashMap<u64, Counters>,
    next: HashMap<u64, Counters>,
    /// Tables whose previous dump succeeded (a socket absent from it is new).
    prev_ok: HashSet<Table>,
    prev_ifaces: Vec<InterfaceCounters>,
    records: Vec<SocketRecord>,
    keys: Vec<SocketKey>,
    notice_given: bool,
    /// Whether UDP sockets are dumped (they carry no byte counters: only listed at detail).
    udp: bool,
}

impl NetCollector {
    pub fn new() -> Result<NetCollector, SockDiagError> {
        NetCollector::with_options(NetCollectorOptions::default())
    }

    pub fn with_options(options: NetCollectorOptions) -> Result<NetCollector, SockDiagError> {
        Ok(NetCollector {
            diag: SockDiag::open()?,
            proc_net_dev: options.proc_root.join("thread-self/net/dev"),
            proc_net_dev_fallback: options.proc_root.join("net/dev"),
            owners: OwnerMap::new(options.proc_root, options.full_scan_every),
            prev_time: None,
            prev: HashMap::new(),
            next: HashMap::new(),
            prev_ok: HashSet::new(),
            prev_ifaces: Vec::new(),
            records: Vec::new(),
            keys: Vec::new(),
            notice_given: false,
            udp: true,
        })
    }

    /// Work done by the owner cache so far.
    pub fn owner_stats(&self) -> OwnerStats {
        self.owners.stats()
    }

    /// Once per collector lifetime: a human sentence when sockets could not be attributed
    /// because other users' fds are unreadable. `None` otherwise and on later calls.
    pub fn permission_notice(&mut self, sample: &NetSample) -> Option<String> {
        if self.notice_given || sample.unattributed_sockets_unreadable == 0 {
            return None;
        }
        self.notice_given = true;
        Some(permission_message(
            sample.unattributed_sockets_unreadable,
            sample.unreadable_pids.len(),
        ))
    }

    /// Whether to dump UDP sockets too (default on). UDP has no byte counters, so a recorder
    /// lists UDP sockets only at detail level and skips the two dumps otherwise.
    pub fn set_udp(&mut self, on: bool) {
        self.udp = on;
    }

    /// One pass: dump the socket tables, attribute, diff against the previous call.
    pub fn collect(&mut self, now: Instant) -> NetSample {
        let mut sample = NetSample::default();
        let interval = self
            .prev_time
            .map(|t| now.saturating_duration_since(t))
            .filter(|d| !d.is_zero());
        sample.interval = interval;
        let secs = interval.map(|d| d.as_secs_f64());

        self.records.clear();
        let mut ok = HashSet::new();
        for table in Table::ALL {
            if !self.udp && table.protocol() == Protocol::Udp {
                continue;
            }
            match self.diag.dump(table, &mut self.records) {
                Ok(_) => {
                    ok.insert(table);
                }
                Err(e) => sample.problems.push(e.to_string()),
            }
        }

        self.keys.clear();
        self.keys.extend(
            self.records
                .iter()
                .filter(|r| r.inode != 0)
                .map(|r| SocketKey {
                    inode: r.inode,
                    uid: r.uid,
                }),
        );
        self.owners.refresh(&self.keys, now);

        self.next.clear();
        let first_call = self.prev_time.is_none();
        sample.sockets.reserve(self.records.len());
        for rec in &self.records {
            let mut rate = None;
            let mut moved = false;
            if let (Some(sent), Some(received)) = (rec.bytes_sent, rec.bytes_received) {
                let key = rec.cookie.unwrap_or(rec.inode ^ (1 << 63));
                self.next.insert(key, Counters { sent, received });
                let (d_sent, d_received) = match self.prev.get(&key) {
                    Some(p) => (
                        sent.saturating_sub(p.sent),
                        received.saturating_sub(p.received),
                    ),
                    None if !first_call && self.prev_ok.contains(&rec.table) => (sent, received),
                    None => (0, 0),
                };
                moved = d_sent > 0 || d_received > 0;
                rate = secs.map(|s| NetRate {
                    tx_bytes_per_s: d_sent as f64 / s,
                    rx_bytes_per_s: d_received as f64 / s,
                });
            }
            let pid = match rec.inode {
                0 => None,
                inode if moved => self.owners.verify_owner(inode),
                inode => self.owners.owner(inode),
            };
            if let Some(r) = rate {
                match pid {
                    Some(pid) => {
                        sample.per_pid.entry(pid).or_default().add(r);
                        sample.attributed.add(r);
                        if is_local(rec.local, rec.remote) {
                            sample.attributed_local.add(r);
                        }
                    }
                    None => sample.unattributed_tcp.add(r),
                }
            }
            if pid.is_none() {
                sample.unattributed_sockets += 1;
                if self.owners.unowned_reason(rec.inode) == Some(Unowned::MaybeUnreadable) {
                    sample.unattributed_sockets_unreadable += 1;
                }
            }
            sample.sockets.push(SocketSample {
                protocol: rec.protocol(),
                local: rec.local,
                remote: rec.remote,
                state: rec.state,
                inode: rec.inode,
                pid,
                rate,
            });
        }
        sample.unreadable_pids = self.owners.unreadable_pid_set();
        std::mem::swap(&mut self.prev, &mut self.next);
        self.prev_ok = ok;

        self.collect_interfaces(secs, &mut sample);
        self.prev_time = Some(now);
        sample
    }

    fn collect_interfaces(&mut self, secs: Option<f64>, sample: &mut NetSample) {
        let mut current = Vec::with_capacity(self.prev_ifaces.len());
        // The calling thread's namespace, as the netlink socket's (before Linux 3.17 there is
        // no thread-self: fall back to the process's).
        let read = ifstats::read_proc_net_dev(&self.proc_net_dev, &mut current).or_else(|_| {
            current.clear();
            ifstats::read_proc_net_dev(&self.proc_net_dev_fallback, &mut current)
        });
        if let Err(e) = read {
            sample
                .problems
                .push(format!("cannot read {}: {e}", self.proc_net_dev.display()));
            return;
        }
        for iface in &current {
            let rate = match (secs, self.prev_ifaces.iter().find(|p| p.name == iface.name)) {
                (Some(s), Some(p)) => NetRate {
                    // A counter that went down (interface recreated) counts 0 this interval.
                    tx_bytes_per_s: iface.tx_bytes.saturating_sub(p.tx_bytes) as f64 / s,
                    rx_bytes_per_s: iface.rx_bytes.saturating_sub(p.rx_bytes) as f64 / s,
                },
                _ => NetRate::default(),
            };
            if iface.name == "lo" {
                sample.interfaces_loopback.add(rate);
            } else {
                sample.interfaces_external.add(rate);
            }
            sample.interfaces.push(InterfaceRate {
                name: iface.name.clone(),
                rate,
            });
        }
        self.prev_ifaces = current;
    }
}

/// The one-time notice when other users' sockets cannot be attributed.
pub fn permission_message(sockets: usize, pids: usize) -> String {
    format!(
        "{sockets} sockets could not be attributed ({pids} processes' fds are unreadable): \
         run as root or grant CAP_SYS_PTRACE"
    )
}

/// Whether a connection's peer is on this host: a loopback peer, or the socket's own address
/// (traffic to one's own address goes through `lo`). Other local addresses are not recognised.
fn is_local(local: SocketAddr, remote: SocketAddr) -> bool {
    let r = remote.ip();
    let unspecified = match r {
        IpAddr::V4(a) => a.is_unspecified(),
        IpAddr::V6(a) => a.is_unspecified(),
    };
    !unspecified && (r.is_loopback() || r == local.ip())
}

#[cfg(test)]
mod tests;
