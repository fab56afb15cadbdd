//! The cheap path of per-process TCP accounting: sock_diag lookups of known sockets (a hash
//! lookup each, not a walk of the table), the destroy multicast groups (a closed socket's final
//! counters), and the TCP open counters of `/proc/net/snmp` (whether any connection was opened
//! since the last listing, i.e. whether a walk is needed at all).
//!
//! Why: a sock_diag *dump* walks every bucket of the TCP established hash, which the kernel
//! sizes from RAM (262,144 buckets on a 23 GiB host, 1,048,576 on big servers), not from the
//! number of sockets. A request *without* `NLM_F_DUMP` that names one socket (its 4-tuple,
//! interface and cookie) is answered from one hash lookup; many such requests go in one
//! `sendmsg` and their answers are read back with `recvmmsg`.
//!
//! Every parser here checks lengths field by field and never panics on any input; a message
//! that does not decode is skipped and counted.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};

use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket};

use netlink_packet_sock_diag::{
    AF_INET, AF_INET6, INET_DIAG_INFO, IPPROTO_TCP, SOCK_DIAG_BY_FAMILY,
};

use super::sockdiag::{SocketRecord, Table};
pub use crate::collect::netlink::grow_receive_buffer;
use crate::collect::netlink::{
    attrs, error_code, messages, put_header, u32_at, HEADER_LEN as NLMSG_HDR, NLMSG_DONE,
    NLMSG_ERROR, NLM_F_DUMP, NLM_F_REQUEST,
};

/// The legacy request type (not in netlink-packet-sock-diag): with it the family is
/// `AF_UNSPEC`, so one walk lists both.
const TCPDIAG_GETSOCK: u16 = 18;
/// `1 << (INET_DIAG_INFO - 1)`.
const EXT_INFO: u8 = 1 << (INET_DIAG_INFO - 1);
/// Multicast groups of NETLINK_SOCK_DIAG (`enum sknetlink_groups`).
pub const SKNLGRP_INET_TCP_DESTROY: u32 = 1;
pub const SKNLGRP_INET6_TCP_DESTROY: u32 = 3;

/// `struct inet_diag_req_v2`.
const REQ_LEN: usize = 56;
/// `struct inet_diag_msg`.
const MSG_LEN: usize = 72;

/// Appends one lookup request (no `NLM_F_DUMP`) for `rec` to `out`.
pub fn encode_lookup(rec: &SocketRecord, seq: u32, out: &mut Vec<u8>) {
    let family = match rec.table {
        Table::Tcp4 | Table::Udp4 => AF_INET,
        Table::Tcp6 | Table::Udp6 => AF_INET6,
    };
    put_header(
        out,
        NLMSG_HDR + REQ_LEN,
        SOCK_DIAG_BY_FAMILY,
        NLM_F_REQUEST,
        seq,
    );
    // inet_diag_req_v2: family, protocol, ext, pad, states, then the socket id.
    out.extend_from_slice(&[family, IPPROTO_TCP, EXT_INFO, 0]);
    out.extend_from_slice(&u32::MAX.to_ne_bytes());
    out.extend_from_slice(&rec.local.port().to_be_bytes());
    out.extend_from_slice(&rec.remote.port().to_be_bytes());
    out.extend_from_slice(&address_bytes(rec.local.ip(), family));
    out.extend_from_slice(&address_bytes(rec.remote.ip(), family));
    out.extend_from_slice(&rec.interface.to_ne_bytes());
    out.extend_from_slice(&rec.cookie.unwrap_or(u64::MAX).to_ne_bytes());
}

/// The legacy `TCPDIAG_GETSOCK` dump request (`struct inet_diag_req`): the kernel answers it
/// with `AF_UNSPEC`, walking the TCP hash once for IPv4 and IPv6 together (two
/// `SOCK_DIAG_BY_FAMILY` dumps walk it twice). Every state but TIME-WAIT, with `tcp_info`.
pub fn encode_tcp_dump_any(seq: u32, out: &mut Vec<u8>) {
    const LEN: usize = NLMSG_HDR + 60;
    put_header(out, LEN, TCPDIAG_GETSOCK, NLM_F_REQUEST | NLM_F_DUMP, seq);
    // family (AF_UNSPEC), src_len, dst_len, ext; the socket id (all zero); states; dbs.
    out.extend_from_slice(&[0, 0, 0, EXT_INFO]);
    out.extend_from_slice(&[0u8; 48]);
    let states: u32 = !(1 << super::sockdiag::TCP_TIME_WAIT);
    out.extend_from_slice(&states.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
}

/// The 16 address bytes of a socket id: IPv4 in the first four; an IPv6 socket's IPv4 peer
/// (shown canonically as a.b.c.d) back as `::ffff:a.b.c.d`, as the kernel holds it.
fn address_bytes(ip: IpAddr, family: u8) -> [u8; 16] {
    let mut b = [0u8; 16];
    match (ip, family) {
        (IpAddr::V4(a), AF_INET) => b[..4].copy_from_slice(&a.octets()),
        (IpAddr::V4(a), _) => b = a.to_ipv6_mapped().octets(),
        (IpAddr::V6(a), _) => b = a.octets(),
    }
    b
}

/// One netlink message of a sock_diag answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Socket(SocketRecord),
    /// `NLMSG_ERROR` with this (positive) errno; 0 is an ack.
    Error(i32),
    Done,
    /// A message that did not decode (counted, skipped).
    Malformed,
    /// A message of another type or protocol (ignored).
    Other,
}

/// Walks the netlink messages of one datagram: `(sequence number, reply)` for each.
pub fn parse_replies(datagram: &[u8], mut each: impl FnMut(u32, Reply)) {
    for msg in messages(datagram) {
        let Ok(msg) = msg else {
            each(0, Reply::Malformed);
            return;
        };
        let reply = match msg.kind {
            NLMSG_DONE => Reply::Done,
            NLMSG_ERROR => match error_code(msg.body) {
                Some(e) => Reply::Error(e.saturating_neg()),
                None => Reply::Malformed,
            },
            SOCK_DIAG_BY_FAMILY | TCPDIAG_GETSOCK => parse_inet_diag_msg(msg.body),
            _ => Reply::Other,
        };
        each(msg.seq, reply);
    }
}

/// `struct inet_diag_msg` and its attributes. TCP only (the destroy groups joined are TCP's).
pub fn parse_inet_diag_msg(p: &[u8]) -> Reply {
    if p.len() < MSG_LEN {
        return Reply::Malformed;
    }
    let family = p[0];
    let table = match family {
        AF_INET => Table::Tcp4,
        AF_INET6 => Table::Tcp6,
        _ => return Reply::Other,
    };
    let addr = |at: usize| -> IpAddr {
        if family == AF_INET {
            IpAddr::V4(Ipv4Addr::new(p[at], p[at + 1], p[at + 2], p[at + 3]))
        } else {
            let mut b = [0u8; 16];
            b.copy_from_slice(&p[at..at + 16]);
            Ipv6Addr::from(b).to_canonical()
        }
    };
    let port = |at: usize| u16::from_be_bytes([p[at], p[at + 1]]);
    let cookie = u64::from_ne_bytes(p[44..52].try_into().unwrap_or([0xff; 8]));
    let mut rec = SocketRecord {
        table,
        local: SocketAddr::new(addr(8), port(4)),
        remote: SocketAddr::new(addr(24), port(6)),
        state: p[1],
        inode: u64::from(u32_at(p, 68).unwrap_or(0)),
        uid: u32_at(p, 64).unwrap_or(0),
        interface: u32_at(p, 40).unwrap_or(0),
        cookie: (cookie != u64::MAX).then_some(cookie),
        bytes_sent: None,
        bytes_received: None,
    };
    if let Some((_, info)) = attrs(&p[MSG_LEN..]).find(|(kind, _)| *kind == INET_DIAG_INFO) {
        let info = super::sockdiag::parse_tcp_info(info);
        rec.bytes_sent = info.bytes_acked;
        rec.bytes_received = info.bytes_received;
    }
    Reply::Socket(rec)
}

/// Receive buffers for `recvmmsg`: `count` datagrams of `size` bytes.
pub struct RecvBatch {
    bufs: Vec<u8>,
    size: usize,
    count: usize,
    lens: Vec<usize>,
    truncated: Vec<bool>,
}

impl RecvBatch {
    pub fn new(count: usize, size: usize) -> RecvBatch {
        RecvBatch {
            bufs: vec![0u8; count * size],
            size,
            count,
            lens: vec![0; count],
            truncated: vec![false; count],
        }
    }

    /// One `recvmmsg(MSG_DONTWAIT)`: how many datagrams arrived (0 when none is waiting).
    pub fn receive(&mut self, fd: RawFd) -> io::Result<usize> {
        let mut iovs: Vec<libc::iovec> = self
            .bufs
            .chunks_mut(self.size)
            .map(|c| libc::iovec {
                iov_base: c.as_mut_ptr().cast(),
                iov_len: c.len(),
            })
            .collect();
        // SAFETY: mmsghdr is plain data; all-zero is a valid value.
        let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; self.count];
        for (m, iov) in msgs.iter_mut().zip(iovs.iter_mut()) {
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every msg_hdr points at one live iovec over a live, writable buffer of
        // iov_len bytes; msgs has self.count entries.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                self.count as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(0)
            } else {
                Err(e)
            };
        }
        let n = n as usize;
        for (i, m) in msgs.iter().take(n).enumerate() {
            self.lens[i] = (m.msg_len as usize).min(self.size);
            self.truncated[i] = m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        }
        Ok(n)
    }

    /// Datagram `i` of the last `receive`, and whether it was cut short.
    pub fn datagram(&self, i: usize) -> (&[u8], bool) {
        let start = i * self.size;
        (&self.bufs[start..start + self.lens[i]], self.truncated[i])
    }
}

/// A socket joined to the TCP destroy groups (IPv4 and IPv6) of the calling thread's network
/// namespace. Each closed socket arrives once, with its tuple, cookie and final `tcp_info`
/// (uid and inode 0: the file is gone).
pub struct DestroyListener {
    socket: Socket,
    batch: RecvBatch,
    /// Datagrams the kernel dropped because the buffer was full (each `ENOBUFS` counts one
    /// overrun; the number of sockets lost in it is not knowable).
    pub overruns: u64,
    pub malformed: u64,
}

impl DestroyListener {
    pub fn open() -> io::Result<DestroyListener> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
        socket.bind_auto()?;
        socket.add_membership(SKNLGRP_INET_TCP_DESTROY)?;
        socket.add_membership(SKNLGRP_INET6_TCP_DESTROY)?;
        socket.set_non_blocking(true)?;
        grow_receive_buffer(socket.as_raw_fd(), 4 << 20);
        Ok(DestroyListener {
            socket,
            batch: RecvBatch::new(32, 2048),
            overruns: 0,
            malformed: 0,
        })
    }

    /// Every closed socket waiting in the buffer.
    pub fn drain(&mut self, out: &mut Vec<SocketRecord>) {
        // Bounded: a storm cannot keep a sample here forever (the rest waits for the next one).
        for _ in 0..4096 {
            match self.batch.receive(self.socket.as_raw_fd()) {
                Ok(0) => return,
                Ok(n) => {
                    for i in 0..n {
                        let (d, truncated) = self.batch.datagram(i);
                        if truncated {
                            self.malformed += 1;
                            continue;
                        }
                        parse_replies(d, |_, r| match r {
                            Reply::Socket(rec) => out.push(rec),
                            Reply::Malformed => self.malformed += 1,
                            _ => {}
                        });
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => self.overruns += 1,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}

/// `ActiveOpens + PassiveOpens` from the `Tcp:` lines of `/proc/net/snmp`: moves whenever a TCP
/// connection is opened in the namespace (a `connect`, or a connection a listener completes).
pub fn parse_tcp_opens(text: &str) -> Option<u64> {
    let mut lines = text.lines().filter(|l| l.starts_with("Tcp:"));
    let names = lines.next()?;
    let values = lines.next()?;
    let mut sum = 0u64;
    let mut found = 0;
    for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
        if n == "ActiveOpens" || n == "PassiveOpens" {
            sum = sum.wrapping_add(v.parse::<u64>().ok()?);
            found += 1;
        }
    }
    (found == 2).then_some(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_record(table: Table) -> SocketRecord {
        SocketRecord {
            table,
            local: "127.0.0.1:80".parse().unwrap(),
            remote: "10.1.2.3:5555".parse().unwrap(),
            state: 1,
            inode: 0,
            uid: 0,
            interface: 3,
            cookie: Some(0x1122_3344_5566_7788),
            bytes_sent: None,
            bytes_received: None,
        }
    }

    /// A reply as the kernel writes it, built from the same layout the request uses.
    fn reply_for(rec: &SocketRecord, seq: u32, info: Option<(u64, u64)>) -> Vec<u8> {
        let mut req = Vec::new();
        encode_lookup(rec, seq, &mut req);
        let id = &req[NLMSG_HDR + 8..NLMSG_HDR + REQ_LEN];
        let family = req[NLMSG_HDR];
        let mut msg = vec![family, rec.state, 0, 0];
        msg.extend_from_slice(id);
        msg.extend_from_slice(&[0u8; 12]); // expires, rqueue, wqueue
        msg.extend_from_slice(&1000u32.to_ne_bytes());
        msg.extend_from_slice(&4242u32.to_ne_bytes());
        if let Some((acked, received)) = info {
            let mut ti = vec![0u8; 232];
            ti[120..128].copy_from_slice(&acked.to_ne_bytes());
            ti[128..136].copy_from_slice(&received.to_ne_bytes());
            crate::collect::netlink::put_attr(&mut msg, INET_DIAG_INFO, &ti);
        }
        let mut out = Vec::new();
        put_header(&mut out, NLMSG_HDR + msg.len(), SOCK_DIAG_BY_FAMILY, 0, seq);
        out.extend_from_slice(&msg);
        out
    }

    #[test]
    fn a_reply_decodes_to_the_socket_the_request_named() {
        for (table, local, remote) in [
            (Table::Tcp4, "127.0.0.1:80", "10.1.2.3:5555"),
            (Table::Tcp6, "[::1]:80", "[2001:db8::1]:5555"),
            // A dual-stack socket's IPv4 peer: canonical in the record, mapped on the wire.
            (Table::Tcp6, "127.0.0.1:80", "10.1.2.3:5555"),
        ] {
            let mut rec = sample_record(table);
            rec.local = local.parse().unwrap();
            rec.remote = remote.parse().unwrap();
            let wire = reply_for(&rec, 77, Some((5, 6)));
            let mut got = Vec::new();
            parse_replies(&wire, |seq, r| got.push((seq, r)));
            let mut want = rec.clone();
            want.uid = 1000;
            want.inode = 4242;
            want.bytes_sent = Some(5);
            want.bytes_received = Some(6);
            assert_eq!(got, vec![(77, Reply::Socket(want))]);
        }
    }

    #[test]
    fn truncated_and_garbage_replies_never_panic_nor_invent_sockets() {
        let rec = sample_record(Table::Tcp6);
        let wire = reply_for(&rec, 1, Some((1, 2)));
        for cut in 0..wire.len() {
            let mut sockets = 0;
            parse_replies(&wire[..cut], |_, r| {
                if matches!(r, Reply::Socket(_)) {
                    sockets += 1;
                }
            });
            assert_eq!(sockets, 0, "cut at {cut}");
            // The payload alone, cut anywhere: a socket only once the fixed part is whole.
            if cut >= NLMSG_HDR {
                let r = parse_inet_diag_msg(&wire[NLMSG_HDR..cut]);
                assert_eq!(matches!(r, Reply::Socket(_)), cut - NLMSG_HDR >= MSG_LEN);
            }
        }
        // Lengths that lie.
        let mut lying = wire.clone();
        lying[0..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        let mut got = Vec::new();
        parse_replies(&lying, |_, r| got.push(r));
        assert_eq!(got, vec![Reply::Malformed]);
        let noise: Vec<u8> = (0..500u32).map(|i| (i * 131 % 251) as u8).collect();
        parse_replies(&noise, |_, _| {});
    }

    #[test]
    fn an_error_reply_carries_the_errno() {
        let mut wire = 36u32.to_ne_bytes().to_vec();
        wire.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        wire.extend_from_slice(&0u16.to_ne_bytes());
        wire.extend_from_slice(&9u32.to_ne_bytes());
        wire.extend_from_slice(&0u32.to_ne_bytes());
        wire.extend_from_slice(&(-libc::ENOENT).to_ne_bytes());
        wire.extend_from_slice(&[0u8; 16]);
        let mut got = Vec::new();
        parse_replies(&wire, |seq, r| got.push((seq, r)));
        assert_eq!(got, vec![(9, Reply::Error(libc::ENOENT))]);
    }

    #[test]
    fn tcp_opens_come_from_the_tcp_lines_of_snmp() {
        let text = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails\n\
                    Tcp: 1 200 120000 -1 37 5 2\nUdp: InDatagrams\nUdp: 3\n";
        assert_eq!(parse_tcp_opens(text), Some(42));
        assert_eq!(parse_tcp_opens("Tcp: ActiveOpens\nTcp: 1\n"), None);
        assert_eq!(parse_tcp_opens(""), None);
    }
}
