//! The netlink wire pieces both of our netlink readers share: taskstats (generic netlink, exit
//! records) and sock_diag (socket lookups and the destroy groups). Reading native-endian
//! fields, walking the messages of a datagram and the attributes of a message, writing a
//! header or an attribute, and growing a socket's receive buffer.
//!
//! Guarantees: every read checks its length and returns `None` (or ends the walk) rather than
//! panicking, whatever the input. The constants come from the netlink-packet crates, not
//! copies of the kernel headers.

use std::os::fd::RawFd;

pub use netlink_packet_core::{
    NETLINK_HEADER_LEN as HEADER_LEN, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
pub use netlink_packet_utils::nla::{NLA_HEADER_SIZE as ATTR_HEADER_LEN, NLA_TYPE_MASK};

#[inline]
pub fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

#[inline]
pub fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

#[inline]
pub fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// `len` rounded up to netlink's 4-byte alignment.
#[inline]
fn aligned(len: usize) -> usize {
    len.saturating_add(3) & !3
}

/// One netlink message of a datagram: its type, sequence number and what follows its header.
pub struct Message<'a> {
    pub kind: u16,
    pub seq: u32,
    pub body: &'a [u8],
}

/// A message whose length runs past the datagram or below the header, or a tail too short
/// for a header: the rest of the datagram is unreadable.
#[derive(Debug, PartialEq, Eq)]
pub struct Truncated;

/// The netlink messages of a datagram, in order; a [`Truncated`] one ends it.
#[inline]
pub fn messages(buf: &[u8]) -> impl Iterator<Item = Result<Message<'_>, Truncated>> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let len = u32_at(rest, 0).map_or(0, |l| l as usize);
        if len < HEADER_LEN || len > rest.len() {
            rest = &[];
            return Some(Err(Truncated));
        }
        let msg = &rest[..len];
        rest = rest.get(aligned(len)..).unwrap_or(&[]);
        Some(Ok(Message {
            kind: u16_at(msg, 4).unwrap_or(0),
            seq: u32_at(msg, 8).unwrap_or(0),
            body: &msg[HEADER_LEN..],
        }))
    })
}

/// The error an `NLMSG_ERROR` message carries: 0 for an acknowledgement, else a negative
/// errno. `None` when the body is too short to hold one.
#[inline]
pub fn error_code(body: &[u8]) -> Option<i32> {
    u32_at(body, 0).map(|e| e as i32)
}

/// Netlink attributes of `buf`, as (type, payload); stops at the first one that does not fit.
#[inline]
pub fn attrs(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        let len = u16_at(rest, 0)? as usize;
        let kind = u16_at(rest, 2)? & NLA_TYPE_MASK;
        if len < ATTR_HEADER_LEN || len > rest.len() {
            return None;
        }
        let payload = &rest[ATTR_HEADER_LEN..len];
        rest = rest.get(aligned(len)..).unwrap_or(&[]);
        Some((kind, payload))
    })
}

/// Appends a message header for a message of `len` bytes in all (header included).
pub fn put_header(out: &mut Vec<u8>, len: usize, kind: u16, flags: u16, seq: u32) {
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    // The port id: 0, the kernel fills in ours.
    out.extend_from_slice(&0u32.to_ne_bytes());
}

/// Appends one attribute, padded to alignment.
pub fn put_attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    out.extend_from_slice(&((ATTR_HEADER_LEN + payload.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(aligned(out.len()), 0);
}

/// Sets the receive buffer as large as allowed (`SO_RCVBUFFORCE` as root, else up to
/// `rmem_max`) and returns what the kernel granted.
pub fn grow_receive_buffer(fd: RawFd, bytes: usize) -> usize {
    let want = bytes as libc::c_int;
    let set = |opt| {
        // SAFETY: a valid fd and a pointer to a live c_int of the size passed.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&want as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    if set(libc::SO_RCVBUFFORCE) != 0 {
        set(libc::SO_RCVBUF);
    }
    let mut got: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid fd; got and len are live and of the sizes passed.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut got as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        got.max(0) as usize
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        put_header(&mut m, HEADER_LEN + body.len(), kind, NLM_F_REQUEST, seq);
        m.extend_from_slice(body);
        m.resize(aligned(m.len()), 0);
        m
    }

    #[test]
    fn messages_and_attributes_round_trip() {
        let mut body = Vec::new();
        put_attr(&mut body, 1, b"abc");
        put_attr(&mut body, 2, &7u32.to_ne_bytes());
        let mut datagram = message(30, 5, &body);
        datagram.extend(message(NLMSG_DONE, 6, &[]));
        let got: Vec<_> = messages(&datagram).collect();
        assert_eq!(got.len(), 2);
        let Ok(first) = &got[0] else { panic!() };
        assert_eq!((first.kind, first.seq), (30, 5));
        let a: Vec<_> = attrs(first.body).collect();
        assert_eq!(a, vec![(1, &b"abc"[..]), (2, &7u32.to_ne_bytes()[..])]);
        let Ok(second) = &got[1] else { panic!() };
        assert_eq!((second.kind, second.seq), (NLMSG_DONE, 6));
    }

    #[test]
    fn no_input_makes_a_walk_panic() {
        let good = message(30, 1, &[1, 2, 3, 4, 5, 6]);
        let len = HEADER_LEN + 6;
        for cut in 1..good.len() {
            let got: Vec<_> = messages(&good[..cut]).collect();
            assert_eq!(got.len(), 1, "cut at {cut}");
            // Short of its length the message is truncated; its padding may be missing.
            assert_eq!(got[0].is_err(), cut < len, "cut at {cut}");
            let _ = attrs(&good[..cut]).count();
        }
        assert_eq!(messages(&[]).count(), 0);
        // A length below the header, and one past the end.
        let mut bad = good.clone();
        bad[..4].copy_from_slice(&3u32.to_ne_bytes());
        assert_eq!(messages(&bad).next().map(|m| m.is_err()), Some(true));
        bad[..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(messages(&bad).next().map(|m| m.is_err()), Some(true));
        assert_eq!(u64_at(&[0; 7], 0), None);
        assert_eq!(u32_at(&[0; 8], usize::MAX), None);
    }
}
