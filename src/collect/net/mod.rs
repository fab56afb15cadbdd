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
//! - **How sockets are listed** (see [`targeted`]): walking the tables costs in proportion to
//!   the kernel's established hash, which is sized from RAM, not from the sockets. So a sample
//!   looks up each known socket by tuple and cookie (one hash lookup each, batched) and walks
//!   the tables only when `/proc/net/snmp`'s TCP open counters moved since the last listing (a
//!   connection was opened: its socket is unknown), when a half-open connection was seen, when a
//!   lookup pass fails, at detail level (the listing shows every socket), every
//!   `full_scan_every`, or when the last walk cost less than the lookups would.
//! - **Closed sockets** arrive through the sock_diag destroy groups with their final counters:
//!   a socket known by cookie gives its last bytes (since the previous call) to the owner it
//!   had, if that process still runs; an unknown one (opened and closed between two calls) on
//!   the port of a known listener goes to the listener's owner; the rest is unattributed but
//!   listed in [`NetSample::closed`] with its endpoints. Without the groups (an old kernel),
//!   those bytes are only in the interface totals.
//! - **Invisible:** UDP, ICMP, other network namespaces, TCP/IP header overhead and
//!   retransmissions (the counters are payload bytes: `tcpi_bytes_acked` sent and acknowledged,
//!   `tcpi_bytes_received` received in order), and closed sockets whose destroy message the
//!   kernel dropped (a full buffer; counted in [`ListingStats::destroy_overruns`]). Those bytes
//!   still show in the interface totals, so they end up in
//!   [`NetSample::unattributed_external`].
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
pub mod targeted;

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
    /// TCP sockets closed since the previous call that moved bytes in the interval (from the
    /// destroy groups): each with the owner its bytes went to, or `None` (then its bytes are in
    /// `unattributed_tcp` and `unattributed_closed`). State is the kernel's at destruction.
    pub closed: Vec<SocketSample>,
    /// The part of `unattributed_tcp` on closed sockets no owner was found for.
    pub unattributed_closed: NetRate,
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
    /// A TCP socket's rate over the interval: its owner's, or unattributed when it has none.
    fn add_socket_rate(&mut self, pid: Option<u32>, rec: &sockdiag::SocketRecord, r: NetRate) {
        match pid {
            Some(pid) => {
                self.per_pid.entry(pid).or_default().add(r);
                self.attributed.add(r);
                if is_local(rec.local, rec.remote) {
                    self.attributed_local.add(r);
                }
            }
            None => self.unattributed_tcp.add(r),
        }
    }

    /// The model's connection rows, one per socket, closed ones included (for detail-level
    /// samples).
    pub fn connections(&self) -> Vec<Connection> {
        self.sockets
            .iter()
            .chain(&self.closed)
            .map(SocketSample::to_connection)
            .collect()
    }

    /// The closed sockets as connection rows, for baseline samples: the
    /// [`CLOSED_ROWS_KEPT`] that moved most bytes, and one row (`*` addresses, port 0) summing
    /// the rest, so that a storm of short connections stays a few rows.
    pub fn closed_connections(&self) -> Vec<Connection> {
        let total = |s: &SocketSample| s.rate.map_or(0.0, |r| r.tx_bytes_per_s + r.rx_bytes_per_s);
        let mut closed: Vec<&SocketSample> = self.closed.iter().collect();
        closed.sort_by(|a, b| total(b).total_cmp(&total(a)));
        let mut rows: Vec<Connection> = closed
            .iter()
            .take(CLOSED_ROWS_KEPT)
            .map(|s| s.to_connection())
            .collect();
        if closed.len() > CLOSED_ROWS_KEPT {
            let mut rest = NetRate::default();
            for s in &closed[CLOSED_ROWS_KEPT..] {
                rest.add(s.rate.unwrap_or_default());
            }
            rows.push(Connection {
                pid: None,
                protocol: Protocol::Tcp,
                local_addr: "*".into(),
                local_port: 0,
                remote_addr: "*".into(),
                remote_port: 0,
                state: "CLOSE".into(),
                tx_bytes_per_s: Some(rest.tx_bytes_per_s),
                rx_bytes_per_s: Some(rest.rx_bytes_per_s),
            });
        }
        rows
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

/// How the TCP sockets are listed each sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TcpListing {
    /// Look up the known sockets one by one (hash lookups) while no connection was opened
    /// since the last walk, and walk the tables only when one was (or when a walk is cheaper).
    #[default]
    Auto,
    /// Walk both TCP tables every sample (the behaviour before lookups; for comparisons).
    Dump,
}

/// A socket the collector knows by cookie.
#[derive(Debug, Clone)]
struct Known {
    rec: SocketRecord,
    /// Its owner at the last sample.
    pid: Option<u32>,
    /// Samples since it was last listed: it may be closing, its destroy message due.
    missing: u8,
}

/// A known socket that vanished without its destroy message is forgotten after this many
/// samples (its last bytes are then lost, as without the destroy groups).
const MISSING_SAMPLES_KEPT: u8 = 5;
/// Closed sockets kept as connection rows per baseline sample (the biggest; the rest summed).
pub const CLOSED_ROWS_KEPT: usize = 32;

/// How the last sample listed TCP sockets and what it cost, for benches and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListingStats {
    pub dumps: u64,
    pub lookup_passes: u64,
    pub lookups: u64,
    /// Lookup passes that failed (a full buffer, an error) and fell back to a dump.
    pub lookup_failures: u64,
    pub closed_sockets: u64,
    /// Times the kernel dropped destroy messages because the buffer was full.
    pub destroy_overruns: u64,
}

/// Collects [`NetSample`]s; keeps the previous counters and the socket-owner cache.
pub struct NetCollector {
    diag: SockDiag,
    destroy: Option<targeted::DestroyListener>,
    owners: OwnerMap,
    proc_net_dev: PathBuf,
    proc_net_dev_fallback: PathBuf,
    proc_net_snmp: PathBuf,
    snmp_buf: Vec<u8>,
    prev_time: Option<Instant>,
    /// Every socket listed at the previous call (and those missing since), by cookie (or by
    /// inode with the top bit set when the kernel gives no cookie).
    known: HashMap<u64, Known>,
    next: HashMap<u64, Known>,
    /// Tables whose previous listing was complete (a socket absent from it is new).
    prev_ok: HashSet<Table>,
    prev_ifaces: Vec<InterfaceCounters>,
    records: Vec<SocketRecord>,
    closed: Vec<SocketRecord>,
    closed_known: Vec<Option<Known>>,
    lookup_list: Vec<SocketRecord>,
    lookup_results: Vec<sockdiag::Lookup>,
    keys: Vec<SocketKey>,
    notice_given: bool,
    /// Whether UDP sockets are dumped (they carry no byte counters: only listed at detail).
    udp: bool,
    listing: TcpListing,
    full_scan_every: Duration,
    /// TCP opens counted at the start of the previous listing.
    prev_opens: Option<u64>,
    last_dump: Option<Instant>,
    /// A half-open connection (SYN-RECV) was seen: its socket appears under a new cookie.
    handshakes_pending: bool,
    /// Cost of the last TCP walk, and of one lookup (running average), in nanoseconds.
    dump_ns: u64,
    lookup_ns: u64,
    stats: ListingStats,
    /// Whether the one-walk legacy request works here (cleared at its first failure).
    walk_once: bool,
}

impl NetCollector {
    pub fn new() -> Result<NetCollector, SockDiagError> {
        NetCollector::with_options(NetCollectorOptions::default())
    }

    pub fn with_options(options: NetCollectorOptions) -> Result<NetCollector, SockDiagError> {
        Ok(NetCollector {
            diag: SockDiag::open()?,
            destroy: targeted::DestroyListener::open().ok(),
            proc_net_dev: options.proc_root.join("thread-self/net/dev"),
            proc_net_dev_fallback: options.proc_root.join("net/dev"),
            proc_net_snmp: options.proc_root.join("thread-self/net/snmp"),
            snmp_buf: Vec::new(),
            owners: OwnerMap::new(options.proc_root, options.full_scan_every),
            prev_time: None,
            known: HashMap::new(),
            next: HashMap::new(),
            prev_ok: HashSet::new(),
            prev_ifaces: Vec::new(),
            records: Vec::new(),
            closed: Vec::new(),
            closed_known: Vec::new(),
            lookup_list: Vec::new(),
            lookup_results: Vec::new(),
            keys: Vec::new(),
            notice_given: false,
            udp: true,
            listing: TcpListing::Auto,
            full_scan_every: options.full_scan_every,
            prev_opens: None,
            last_dump: None,
            handshakes_pending: false,
            dump_ns: 0,
            lookup_ns: 1_500,
            stats: ListingStats::default(),
            walk_once: true,
        })
    }

    /// Work done by the owner cache so far.
    pub fn owner_stats(&self) -> OwnerStats {
        self.owners.stats()
    }

    /// How the TCP sockets were listed so far.
    pub fn listing_stats(&self) -> ListingStats {
        let mut s = self.stats;
        s.destroy_overruns = self.destroy.as_ref().map_or(0, |d| d.overruns);
        s
    }

    /// Whether closed sockets are reported (the destroy groups could be joined).
    pub fn sees_closed_sockets(&self) -> bool {
        self.destroy.is_some()
    }

    /// Chooses how TCP sockets are listed (default [`TcpListing::Auto`]).
    pub fn set_tcp_listing(&mut self, listing: TcpListing) {
        self.listing = listing;
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
    /// lists UDP sockets only at detail level and skips the two dumps otherwise. With UDP on,
    /// the TCP tables are walked too (the detail listing shows every socket, listeners
    /// opened since the last walk included).
    pub fn set_udp(&mut self, on: bool) {
        self.udp = on;
    }

    fn read_tcp_opens(&mut self) -> Option<u64> {
        use std::io::Read;
        self.snmp_buf.clear();
        let mut f = std::fs::File::open(&self.proc_net_snmp).ok()?;
        f.read_to_end(&mut self.snmp_buf).ok()?;
        targeted::parse_tcp_opens(std::str::from_utf8(&self.snmp_buf).ok()?)
    }

    /// Whether this sample must walk the TCP tables rather than look up the known sockets.
    fn walk_needed(&self, now: Instant, opens: Option<u64>) -> bool {
        if self.listing == TcpListing::Dump || self.udp || self.prev_time.is_none() {
            return true;
        }
        let complete = self.prev_ok.contains(&Table::Tcp4) && self.prev_ok.contains(&Table::Tcp6);
        let refresh_due = self
            .last_dump
            .is_none_or(|t| now.saturating_duration_since(t) >= self.full_scan_every);
        let lookups = self
            .known
            .values()
            .filter(|k| k.missing == 0 && k.rec.state != sockdiag::TCP_LISTEN)
            .count() as u64;
        !complete
            || refresh_due
            || self.handshakes_pending
            || opens.is_none()
            || opens != self.prev_opens
            || self.known.values().any(|k| k.rec.cookie.is_none())
            || lookups.saturating_mul(self.lookup_ns) > self.dump_ns
    }

    /// Fills `self.records` with every TCP socket (and UDP, if on) by walking the tables;
    /// returns the tables listed completely.
    fn walk(&mut self, now: Instant, sample: &mut NetSample) -> HashSet<Table> {
        let mut ok = HashSet::new();
        let started = Instant::now();
        // One walk for both families; a kernel without the legacy request gets two.
        if self.walk_once && self.diag.dump_tcp_any(&mut self.records).is_ok() {
            ok.extend([Table::Tcp4, Table::Tcp6]);
        } else {
            self.walk_once = false;
            self.records.clear();
            for table in [Table::Tcp4, Table::Tcp6] {
                match self.diag.dump(table, &mut self.records) {
                    Ok(_) => {
                        ok.insert(table);
                    }
                    Err(e) => sample.problems.push(e.to_string()),
                }
            }
        }
        self.dump_ns = started.elapsed().as_nanos() as u64;
        if self.udp {
            for table in [Table::Udp4, Table::Udp6] {
                match self.diag.dump(table, &mut self.records) {
                    Ok(_) => {
                        ok.insert(table);
                    }
                    Err(e) => sample.problems.push(e.to_string()),
                }
            }
        }
        self.stats.dumps += 1;
        self.last_dump = Some(now);
        self.handshakes_pending = self
            .records
            .iter()
            .any(|r| r.protocol() == Protocol::Tcp && matches!(r.state, 3 | 12));
        ok
    }

    /// Fills `self.records` from lookups of the known sockets (and the known listeners, which
    /// move no bytes); `false` if the lookups failed (then walk instead).
    fn look_up(&mut self) -> bool {
        self.lookup_list.clear();
        self.lookup_list.extend(
            self.known
                .values()
                .filter(|k| k.missing == 0 && k.rec.state != sockdiag::TCP_LISTEN)
                .map(|k| k.rec.clone()),
        );
        let started = Instant::now();
        if self
            .diag
            .lookup(&self.lookup_list, &mut self.lookup_results)
            .is_err()
        {
            self.stats.lookup_failures += 1;
            return false;
        }
        let n = self.lookup_list.len() as u64;
        if let Some(per) = (started.elapsed().as_nanos() as u64).checked_div(n) {
            self.lookup_ns = (self.lookup_ns * 3 + per) / 4;
        }
        self.stats.lookup_passes += 1;
        self.stats.lookups += n;
        for r in self.lookup_results.drain(..) {
            // TIME-WAIT: the socket was closed (its destroy message is on its way).
            if let sockdiag::Lookup::Found(rec) = r {
                if rec.state != sockdiag::TCP_TIME_WAIT {
                    self.records.push(rec);
                }
            }
        }
        self.records.extend(
            self.known
                .values()
                .filter(|k| k.missing == 0 && k.rec.state == sockdiag::TCP_LISTEN)
                .map(|k| k.rec.clone()),
        );
        true
    }

    /// One pass: list the TCP sockets (lookups of the known ones, or a walk when a connection
    /// was opened), attribute, diff against the previous call, account the sockets closed
    /// since.
    pub fn collect(&mut self, now: Instant) -> NetSample {
        let mut sample = NetSample::default();
        let interval = self
            .prev_time
            .map(|t| now.saturating_duration_since(t))
            .filter(|d| !d.is_zero());
        sample.interval = interval;
        let secs = interval.map(|d| d.as_secs_f64());

        // Order matters: the open counter is read before the listing (a connection opened
        // after it moves it for the next sample), and the closed sockets are drained before the
        // listing (a socket closed after the drain is missing from the listing and arrives
        // with the next drain, while still known).
        let opens = self.read_tcp_opens();
        self.closed.clear();
        if let Some(d) = self.destroy.as_mut() {
            d.drain(&mut self.closed);
        }
        // A closed socket is not looked up again (a lookup would find its TIME-WAIT
        // successor, which keeps the cookie); what was known of it is set aside.
        self.closed_known.clear();
        for rec in &self.closed {
            let k = self.known.remove(&socket_key(rec));
            self.closed_known.push(k);
        }
        self.records.clear();
        let ok = if !self.walk_needed(now, opens) && self.look_up() {
            HashSet::from([Table::Tcp4, Table::Tcp6])
        } else {
            self.records.clear();
            self.walk(now, &mut sample)
        };

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
            let key = socket_key(rec);
            if let (Some(sent), Some(received)) = (rec.bytes_sent, rec.bytes_received) {
                let (d_sent, d_received) = match self.known.get(&key) {
                    Some(Known { rec: p, .. }) => (
                        sent.saturating_sub(p.bytes_sent.unwrap_or(sent)),
                        received.saturating_sub(p.bytes_received.unwrap_or(received)),
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
            if rec.protocol() == Protocol::Tcp {
                self.next.insert(
                    key,
                    Known {
                        rec: rec.clone(),
                        pid,
                        missing: 0,
                    },
                );
            }
            if let Some(r) = rate {
                sample.add_socket_rate(pid, rec, r);
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
        self.account_closed(secs, first_call, &mut sample);
        // Known sockets missing from this listing: closing; their destroy message is due.
        for (key, mut k) in self.known.drain() {
            if !self.next.contains_key(&key) && k.missing < MISSING_SAMPLES_KEPT {
                k.missing += 1;
                self.next.insert(key, k);
            }
        }
        sample.unreadable_pids = self.owners.unreadable_pid_set();
        std::mem::swap(&mut self.known, &mut self.next);
        self.prev_ok = ok;
        self.prev_opens = opens;

        self.collect_interfaces(secs, &mut sample);
        self.prev_time = Some(now);
        sample
    }

    /// The sockets closed since the last drain: a known one gives its last bytes to its
    /// owner; an unknown one (opened and closed within the interval) on a known listener's
    /// port goes to the listener's owner; the rest stay unattributed, recorded with endpoints.
    fn account_closed(&mut self, secs: Option<f64>, first_call: bool, sample: &mut NetSample) {
        for (rec, known) in self.closed.iter().zip(self.closed_known.drain(..)) {
            let (Some(sent), Some(received)) = (rec.bytes_sent, rec.bytes_received) else {
                continue;
            };
            self.stats.closed_sockets += 1;
            let (d_sent, d_received, pid) = match known {
                Some(k) => (
                    sent.saturating_sub(k.rec.bytes_sent.unwrap_or(sent)),
                    received.saturating_sub(k.rec.bytes_received.unwrap_or(received)),
                    k.pid,
                ),
                None if !first_call && self.prev_ok.contains(&rec.table) => {
                    let listener = self.next.values().chain(self.known.values()).find(|k| {
                        k.rec.state == sockdiag::TCP_LISTEN
                            && k.rec.local.port() == rec.local.port()
                            && (k.rec.local.ip().is_unspecified()
                                || k.rec.local.ip() == rec.local.ip())
                    });
                    (sent, received, listener.and_then(|l| l.pid))
                }
                None => continue,
            };
            let Some(s) = secs else { continue };
            if d_sent == 0 && d_received == 0 {
                continue;
            }
            // The owner may have exited since: then nobody's row shows the bytes.
            let pid = pid.filter(|&p| self.owners.is_alive(p));
            let r = NetRate {
                tx_bytes_per_s: d_sent as f64 / s,
                rx_bytes_per_s: d_received as f64 / s,
            };
            sample.add_socket_rate(pid, rec, r);
            if pid.is_none() {
                sample.unattributed_closed.add(r);
            }
            sample.closed.push(SocketSample {
                protocol: Protocol::Tcp,
                local: rec.local,
                remote: rec.remote,
                state: rec.state,
                inode: 0,
                pid,
                rate: Some(r),
            });
        }
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

/// A socket's identity across samples: its cookie, or its inode (top bit set) without one.
fn socket_key(rec: &SocketRecord) -> u64 {
    rec.cookie.unwrap_or(rec.inode ^ (1 << 63))
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
