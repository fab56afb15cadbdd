//! One dump of the kernel's TCP and UDP socket tables through `NETLINK_SOCK_DIAG`
//! (what `ss -tuai` reads), IPv4 and IPv6, in the network namespace of the calling thread.
//!
//! Guarantees: no root needed (the kernel reports every socket of the namespace with its
//! `tcp_info`); the `tcp_info` attribute is read by offset with a length check per field, so an
//! older kernel's shorter struct gives `None` counters instead of an error, and no input can make
//! the parser panic. A malformed netlink message is skipped and counted, never fatal.
//! Sockets in `TIME_WAIT` are not requested: they have no owner and no counters.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::{
    constants::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP},
    inet::{nlas::Nla, ExtensionFlags, InetRequest, SocketId, StateFlags},
    SockDiagMessage,
};
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket};

use super::targeted::{
    encode_lookup, encode_tcp_dump_any, grow_receive_buffer, parse_replies, RecvBatch, Reply,
};
use crate::model::Protocol;

/// Errors of the sock_diag source. Per-socket problems are never errors (they are counted).
#[derive(Debug, thiserror::Error)]
pub enum SockDiagError {
    #[error("cannot open a NETLINK_SOCK_DIAG socket: {0}")]
    Open(#[source] std::io::Error),
    #[error("sock_diag dump of {what} failed: {source}")]
    Dump {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Which table a dump reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Tcp4,
    Tcp6,
    Udp4,
    Udp6,
}

impl Table {
    pub const ALL: [Table; 4] = [Table::Tcp4, Table::Tcp6, Table::Udp4, Table::Udp6];

    pub fn name(self) -> &'static str {
        match self {
            Table::Tcp4 => "TCP/IPv4",
            Table::Tcp6 => "TCP/IPv6",
            Table::Udp4 => "UDP/IPv4",
            Table::Udp6 => "UDP/IPv6",
        }
    }

    pub fn protocol(self) -> Protocol {
        match self {
            Table::Tcp4 | Table::Tcp6 => Protocol::Tcp,
            Table::Udp4 | Table::Udp6 => Protocol::Udp,
        }
    }

    fn family(self) -> u8 {
        match self {
            Table::Tcp4 | Table::Udp4 => AF_INET,
            Table::Tcp6 | Table::Udp6 => AF_INET6,
        }
    }
}

/// One socket as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketRecord {
    pub table: Table,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Kernel state number (`TCP_ESTABLISHED` = 1, ...); see [`state_name`].
    pub state: u8,
    /// Socket inode, as in `/proc/[pid]/fd/N -> socket:[INODE]`. 0 for a socket without a file
    /// (in an accept queue, or orphaned after close).
    pub inode: u64,
    /// Owner uid of the socket (the creator's fsuid).
    pub uid: u32,
    /// The interface the socket is bound to (0: none); part of its identity for a lookup.
    pub interface: u32,
    /// Kernel socket cookie: unique per socket for the life of the namespace, never reused.
    pub cookie: Option<u64>,
    /// `tcpi_bytes_acked`: payload bytes sent and acknowledged by the peer (the SYN and the FIN
    /// count one each). `None` for UDP, or when `tcp_info` is missing or too short (kernels
    /// before 4.1).
    pub bytes_sent: Option<u64>,
    /// `tcpi_bytes_received`: payload bytes received in sequence.
    pub bytes_received: Option<u64>,
}

impl SocketRecord {
    pub fn protocol(&self) -> Protocol {
        self.table.protocol()
    }
}

/// What the byte counters of `struct tcp_info` hold, if the buffer is long enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpByteCounters {
    pub bytes_acked: Option<u64>,
    pub bytes_received: Option<u64>,
}

/// Offsets in `struct tcp_info` (include/uapi/linux/tcp.h): eight u8 fields, 24 u32 fields
/// (`tcpi_rto` .. `tcpi_total_retrans`), then u64 `pacing_rate`, `max_pacing_rate`,
/// `bytes_acked`, `bytes_received`. Host byte order.
const TCPI_BYTES_ACKED: usize = 120;
const TCPI_BYTES_RECEIVED: usize = 128;

/// Reads `tcpi_bytes_acked` and `tcpi_bytes_received` from a raw `tcp_info`, each only if the
/// buffer holds it. Never panics.
pub fn parse_tcp_info(buf: &[u8]) -> TcpByteCounters {
    TcpByteCounters {
        bytes_acked: read_u64_ne(buf, TCPI_BYTES_ACKED),
        bytes_received: read_u64_ne(buf, TCPI_BYTES_RECEIVED),
    }
}

fn read_u64_ne(buf: &[u8], offset: usize) -> Option<u64> {
    let bytes = buf.get(offset..offset.checked_add(8)?)?;
    Some(u64::from_ne_bytes(bytes.try_into().ok()?))
}

pub const TCP_TIME_WAIT: u8 = 6;
pub const TCP_LISTEN: u8 = 10;

/// `ss`-style names of the kernel's TCP states, by number (`TCP_ESTABLISHED` = 1 ..
/// `TCP_NEW_SYN_RECV` = 12).
const TCP_STATES: [&str; 13] = [
    "UNKNOWN",
    "ESTAB",
    "SYN-SENT",
    "SYN-RECV",
    "FIN-WAIT-1",
    "FIN-WAIT-2",
    "TIME-WAIT",
    "CLOSE",
    "CLOSE-WAIT",
    "LAST-ACK",
    "LISTEN",
    "CLOSING",
    "NEW-SYN-RECV",
];

/// `ss`-style name of a kernel socket state.
pub fn state_name(protocol: Protocol, state: u8) -> &'static str {
    match (protocol, state) {
        (Protocol::Udp, 1) => "ESTAB",
        (Protocol::Udp, 7) => "UNCONN",
        (Protocol::Udp, _) => "UNKNOWN",
        (Protocol::Tcp, _) => TCP_STATES.get(state as usize).copied().unwrap_or("UNKNOWN"),
    }
}

/// Counts of what one dump skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DumpStats {
    pub sockets: usize,
    /// Netlink messages that did not decode (skipped).
    pub malformed: usize,
}

/// An open `NETLINK_SOCK_DIAG` socket with a reused receive buffer.
pub struct SockDiag {
    socket: Socket,
    buf: Vec<u8>,
    seq: u32,
    /// Lookups sent per `sendmsg`: as many answers as the receive buffer surely holds.
    lookup_batch: usize,
    requests: Vec<u8>,
    replies: Option<RecvBatch>,
}

/// What a lookup found for one known socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(SocketRecord),
    /// No such socket any more (`ENOENT`), or another socket under its tuple (`ESTALE`: the
    /// cookie differs).
    Gone,
}

/// A lookup answer takes at most this much of the receive buffer (`tcp_info` and a few small
/// attributes in a 1 KiB skb, plus its overhead).
const LOOKUP_REPLY_TRUESIZE: usize = 2048;

/// Kernel dumps arrive in datagrams of up to 32 KiB (more on large-page systems).
const RECV_BUF_BYTES: usize = 64 * 1024;

impl SockDiag {
    pub fn open() -> Result<SockDiag, SockDiagError> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG).map_err(SockDiagError::Open)?;
        socket.bind_auto().map_err(SockDiagError::Open)?;
        socket
            .connect(&netlink_sys::SocketAddr::new(0, 0))
            .map_err(SockDiagError::Open)?;
        // A dump is answered at once; the timeout only guards against a kernel that never
        // answers, so a sample can never hang here.
        let timeout = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        // SAFETY: a valid fd and a pointer to a live timeval of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(SockDiagError::Open(std::io::Error::last_os_error()));
        }
        let rcvbuf = grow_receive_buffer(socket.as_raw_fd(), 1 << 20);
        Ok(SockDiag {
            socket,
            buf: Vec::with_capacity(RECV_BUF_BYTES),
            seq: 0,
            lookup_batch: (rcvbuf / LOOKUP_REPLY_TRUESIZE).clamp(16, 1024),
            requests: Vec::new(),
            replies: None,
        })
    }

    /// Appends every TCP socket (IPv4 and IPv6, all states but TIME-WAIT) to `out`, from one
    /// walk of the hash (the legacy `AF_UNSPEC` request; see [`encode_tcp_dump_any`]).
    pub fn dump_tcp_any(
        &mut self,
        out: &mut Vec<SocketRecord>,
    ) -> Result<DumpStats, SockDiagError> {
        let err = |source| SockDiagError::Dump {
            what: "TCP (IPv4 and IPv6 in one walk)",
            source,
        };
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        self.requests.clear();
        encode_tcp_dump_any(seq, &mut self.requests);
        self.socket.send(&self.requests, 0).map_err(err)?;
        let mut stats = DumpStats::default();
        loop {
            self.buf.clear();
            let received = self.socket.recv(&mut self.buf, 0).map_err(err)?;
            let datagram = &self.buf[..received.min(self.buf.len())];
            let mut end = None;
            parse_replies(datagram, |s, reply| {
                if s != seq || end.is_some() {
                    return; // a stale answer of an older request
                }
                match reply {
                    Reply::Socket(rec) => {
                        out.push(rec);
                        stats.sockets += 1;
                    }
                    Reply::Done => end = Some(Ok(())),
                    Reply::Error(code) => end = Some(Err(code)),
                    Reply::Malformed => stats.malformed += 1,
                    Reply::Other => {}
                }
            });
            match end {
                None => {}
                Some(Ok(())) => return Ok(stats),
                Some(Err(code)) => return Err(err(std::io::Error::from_raw_os_error(code))),
            }
        }
    }

    /// Looks up each of `known` by its tuple, interface and cookie (one hash lookup each in the
    /// kernel, no walk), many per `sendmsg`; `out[i]` is the answer for `known[i]`. Fails as a
    /// whole if any answer is missing or is an error other than "gone" (then dump instead).
    pub fn lookup(
        &mut self,
        known: &[SocketRecord],
        out: &mut Vec<Lookup>,
    ) -> Result<(), SockDiagError> {
        let err = |source| SockDiagError::Dump {
            what: "TCP (lookups)",
            source,
        };
        out.clear();
        out.resize(known.len(), Lookup::Gone);
        let fd = self.socket.as_raw_fd();
        let replies = self
            .replies
            .get_or_insert_with(|| RecvBatch::new(32, LOOKUP_REPLY_TRUESIZE));
        for (chunk_no, chunk) in known.chunks(self.lookup_batch).enumerate() {
            let first = chunk_no * self.lookup_batch;
            // Sequence numbers first+1.. name the requests of this chunk; answers of an older,
            // abandoned exchange carry others and are skipped.
            self.seq = self.seq.wrapping_add(chunk.len() as u32 + 1);
            let base = self.seq.wrapping_sub(chunk.len() as u32);
            self.requests.clear();
            for (i, rec) in chunk.iter().enumerate() {
                encode_lookup(rec, base.wrapping_add(i as u32), &mut self.requests);
            }
            self.socket.send(&self.requests, 0).map_err(err)?;
            // The kernel answered every request before send returned: the answers are queued.
            let mut answered = 0usize;
            let mut failure = None;
            while answered < chunk.len() {
                let n = replies.receive(fd).map_err(err)?;
                if n == 0 {
                    break;
                }
                for d in 0..n {
                    let (datagram, truncated) = replies.datagram(d);
                    if truncated {
                        failure = Some(libc::EMSGSIZE);
                        continue;
                    }
                    parse_replies(datagram, |seq, reply| {
                        let i = seq.wrapping_sub(base) as usize;
                        if i >= chunk.len() {
                            return;
                        }
                        match reply {
                            Reply::Socket(rec) => {
                                out[first + i] = Lookup::Found(rec);
                                answered += 1;
                            }
                            Reply::Error(libc::ENOENT | libc::ESTALE) => answered += 1,
                            Reply::Error(code) => {
                                answered += 1;
                                failure = Some(code);
                            }
                            _ => {}
                        }
                    });
                }
            }
            if let Some(code) = failure {
                return Err(err(std::io::Error::from_raw_os_error(code)));
            }
            if answered < chunk.len() {
                return Err(err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "{} of {} lookups unanswered",
                        chunk.len() - answered,
                        chunk.len()
                    ),
                )));
            }
        }
        Ok(())
    }

    /// Appends every socket of `table` to `out`.
    pub fn dump(
        &mut self,
        table: Table,
        out: &mut Vec<SocketRecord>,
    ) -> Result<DumpStats, SockDiagError> {
        let err = |source| SockDiagError::Dump {
            what: table.name(),
            source,
        };
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let (protocol, extensions, states) = match table.protocol() {
            Protocol::Tcp => (
                IPPROTO_TCP,
                ExtensionFlags::INFO,
                StateFlags::all() - StateFlags::TIME_WAIT,
            ),
            Protocol::Udp => (IPPROTO_UDP, ExtensionFlags::empty(), StateFlags::all()),
        };
        let socket_id = if table.family() == AF_INET {
            SocketId::new_v4()
        } else {
            SocketId::new_v6()
        };
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = seq;
        let mut request = NetlinkMessage::new(
            header,
            SockDiagMessage::InetRequest(InetRequest {
                family: table.family(),
                protocol,
                extensions,
                states,
                socket_id,
            })
            .into(),
        );
        request.finalize();
        let mut request_bytes = vec![0u8; request.buffer_len()];
        // serialize() panics only if the buffer is shorter than buffer_len(); it is not.
        request.serialize(&mut request_bytes);
        self.socket.send(&request_bytes, 0).map_err(err)?;

        let mut stats = DumpStats::default();
        loop {
            self.buf.clear();
            let received = self.socket.recv(&mut self.buf, 0).map_err(err)?;
            let datagram = &self.buf[..received.min(self.buf.len())];
            match parse_datagram(datagram, seq, table, out, &mut stats) {
                Datagram::More => {}
                Datagram::Done => return Ok(stats),
                Datagram::Error(code) => return Err(err(std::io::Error::from_raw_os_error(code))),
            }
        }
    }
}

enum Datagram {
    More,
    Done,
    Error(i32),
}

/// Walks the netlink messages of one datagram.
fn parse_datagram(
    datagram: &[u8],
    seq: u32,
    table: Table,
    out: &mut Vec<SocketRecord>,
    stats: &mut DumpStats,
) -> Datagram {
    let mut offset = 0usize;
    while let Some(rest) = datagram.get(offset..) {
        // nlmsg_len, read by hand so that a message the crate cannot decode can be skipped.
        let Some(len) = rest
            .get(..4)
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        else {
            break;
        };
        let len = len as usize;
        if len < 16 || len > rest.len() {
            if !rest.is_empty() {
                stats.malformed += 1;
            }
            break;
        }
        match NetlinkMessage::<SockDiagMessage>::deserialize(&rest[..len]) {
            Ok(msg) if msg.header.sequence_number != seq => {} // stale answer of an older dump
            Ok(msg) => match msg.payload {
                NetlinkPayload::Done(_) => return Datagram::Done,
                NetlinkPayload::Error(e) => {
                    if let Some(code) = e.code {
                        return Datagram::Error(code.get().saturating_neg());
                    }
                }
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
                    let h = &response.header;
                    let mut counters = TcpByteCounters::default();
                    for nla in response.nlas.iter() {
                        if let Nla::TcpInfo(raw) = nla {
                            counters = parse_tcp_info(raw);
                        }
                    }
                    let cookie = u64::from_ne_bytes(h.socket_id.cookie);
                    out.push(SocketRecord {
                        table,
                        local: SocketAddr::new(
                            canonical(h.socket_id.source_address),
                            h.socket_id.source_port,
                        ),
                        remote: SocketAddr::new(
                            canonical(h.socket_id.destination_address),
                            h.socket_id.destination_port,
                        ),
                        state: h.state,
                        inode: u64::from(h.inode),
                        uid: h.uid,
                        interface: h.socket_id.interface_id,
                        // INET_DIAG_NOCOOKIE is all ones.
                        cookie: (cookie != u64::MAX).then_some(cookie),
                        bytes_sent: counters.bytes_acked,
                        bytes_received: counters.bytes_received,
                    });
                    stats.sockets += 1;
                }
                _ => {}
            },
            Err(_) => stats.malformed += 1,
        }
        // Messages are 4-byte aligned.
        offset = offset.saturating_add((len + 3) & !3);
    }
    Datagram::More
}

/// `::ffff:a.b.c.d` (an IPv4 peer of a dual-stack socket) shown as `a.b.c.d`.
fn canonical(addr: IpAddr) -> IpAddr {
    addr.to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_info_parser_reads_counters_by_offset() {
        let mut buf = vec![0u8; 232];
        buf[120..128].copy_from_slice(&1234u64.to_ne_bytes());
        buf[128..136].copy_from_slice(&5678u64.to_ne_bytes());
        let c = parse_tcp_info(&buf);
        assert_eq!(c.bytes_acked, Some(1234));
        assert_eq!(c.bytes_received, Some(5678));
    }

    #[test]
    fn tcp_info_parser_survives_short_buffers() {
        let full = vec![0xffu8; 300];
        for len in 0..full.len() {
            let c = parse_tcp_info(&full[..len]);
            assert_eq!(c.bytes_acked.is_some(), len >= 128, "len {len}");
            assert_eq!(c.bytes_received.is_some(), len >= 136, "len {len}");
        }
    }

    #[test]
    fn datagram_parser_survives_garbage() {
        let mut out = Vec::new();
        let mut stats = DumpStats::default();
        // Lengths that lie, truncated headers, random bytes: no panic, nothing invented.
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![1, 2, 3],
            vec![0xff; 16],
            {
                let mut v = 40u32.to_ne_bytes().to_vec();
                v.extend_from_slice(&[0u8; 12]);
                v
            },
            (0..200u32).map(|i| (i * 37 % 251) as u8).collect(),
        ];
        for case in cases {
            let _ = parse_datagram(&case, 1, Table::Tcp4, &mut out, &mut stats);
        }
        assert!(out.is_empty());
    }

    #[test]
    fn dump_lists_a_listening_socket_with_its_inode() {
        use std::os::fd::AsRawFd as _;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let inode = inode_of(listener.as_raw_fd());
        let mut diag = SockDiag::open().unwrap();
        let mut out = Vec::new();
        diag.dump(Table::Tcp4, &mut out).unwrap();
        let rec = out
            .iter()
            .find(|r| r.local.port() == port)
            .expect("listener in the dump");
        assert_eq!(rec.inode, inode);
        assert_eq!(state_name(Protocol::Tcp, rec.state), "LISTEN");
        assert!(rec.cookie.is_some());
        assert_eq!(rec.bytes_sent, Some(0));
    }

    #[test]
    fn one_walk_lists_what_the_two_family_dumps_list() {
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let v6 = std::net::TcpListener::bind("[::1]:0").unwrap();
        let mut diag = SockDiag::open().unwrap();
        let mut any = Vec::new();
        diag.dump_tcp_any(&mut any).unwrap();
        let mut two = Vec::new();
        diag.dump(Table::Tcp4, &mut two).unwrap();
        diag.dump(Table::Tcp6, &mut two).unwrap();
        for l in [&v4, &v6] {
            let addr = l.local_addr().unwrap();
            let a = any
                .iter()
                .find(|r| r.local == addr)
                .expect("in the one walk");
            let b = two
                .iter()
                .find(|r| r.local == addr)
                .expect("in the family dumps");
            assert_eq!(a, b);
        }
        assert!(any.iter().any(|r| r.table == Table::Tcp6));
    }

    pub(crate) fn inode_of(fd: i32) -> u64 {
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        let s = link.to_str().unwrap();
        s.trim_start_matches("socket:[")
            .trim_end_matches(']')
            .parse()
            .unwrap()
    }
}
