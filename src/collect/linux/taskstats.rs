//! Exit accounting through the kernel's taskstats interface (generic netlink family
//! `TASKSTATS`): the kernel sends one record per exiting task to every listener registered for
//! the CPU the task exited on.
//!
//! Guarantees: the listener runs on its own thread with a receive buffer of
//! [`RECV_BUFFER_BYTES`] (`SO_RCVBUFFORCE`, falling back to `SO_RCVBUF`); a receive that fails
//! with `ENOBUFS` (the kernel dropped records) is counted, never fatal. Every field of a message
//! is read with a length check: a truncated or malformed message is skipped and counted, and no
//! input can make the parser panic. Registering needs `CAP_NET_ADMIN` in the initial user and
//! network namespaces; without it [`ExitListener::start`] returns the reason.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use netlink_sys::{protocols::NETLINK_GENERIC, Socket};

use crate::collect::netlink::{
    attrs, error_code, grow_receive_buffer, messages, put_attr, put_header, u16_at, u32_at, u64_at,
    Message, HEADER_LEN, NLMSG_ERROR, NLM_F_ACK, NLM_F_REQUEST,
};

/// The receive buffer asked for: measured on a 2-CPU host, the default buffer lost over 90 % of
/// 2,000 exits in a burst; 4 MiB lost none.
pub const RECV_BUFFER_BYTES: usize = 8 << 20;

/// Records held between two samples at most; beyond, records are counted as lost.
pub const MAX_PENDING: usize = 200_000;

/// Generic netlink's controller family and what we ask it (linux/genetlink.h).
const GENL_ID_CTRL: u16 = libc::GENL_ID_CTRL as u16;
const TASKSTATS_CMD_GET: u8 = 1;
const TASKSTATS_CMD_NEW: u8 = 2;
const TASKSTATS_CMD_ATTR_REGISTER_CPUMASK: u16 = 3;
const TASKSTATS_TYPE_PID: u16 = 1;
const TASKSTATS_TYPE_STATS: u16 = 3;
const TASKSTATS_TYPE_AGGR_PID: u16 = 4;
const GENL_HDR: usize = 4;

/// Offsets in `struct taskstats` (include/uapi/linux/taskstats.h, version 13), host byte order.
mod off {
    pub const VERSION: usize = 0;
    pub const EXITCODE: usize = 4;
    pub const CPU_RUN_VIRTUAL_TOTAL: usize = 72;
    pub const COMM: usize = 80;
    pub const COMM_LEN: usize = 32;
    pub const UID: usize = 120;
    pub const PID: usize = 128;
    pub const PPID: usize = 132;
    pub const ETIME: usize = 144;
    pub const UTIME: usize = 152;
    pub const STIME: usize = 160;
    pub const READ_BYTES: usize = 248;
    pub const WRITE_BYTES: usize = 256;
    /// `ac_tgid`, from struct version 12 (Linux 5.19).
    pub const TGID: usize = 368;
}

/// One exited task (a thread, or the last word of a process's leader) as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskExit {
    /// Thread id.
    pub pid: u32,
    /// Process id; equal to `pid` for a leader. Taken from `pid` on kernels before 5.19.
    pub tgid: u32,
    /// The parent process's id.
    pub ppid: u32,
    pub uid: u32,
    /// The kernel's 15-character command name.
    pub comm: String,
    /// Exit status in `wait(2)` form.
    pub exit_status: u32,
    /// CPU time, nanoseconds (`cpu_run_virtual_total`, or utime + stime where it is zero).
    pub cpu_ns: u64,
    /// Lifetime, microseconds (`ac_etime`).
    pub elapsed_us: u64,
    /// Bytes that reached storage.
    pub read_bytes: u64,
    pub write_bytes: u64,
    /// CLOCK_BOOTTIME when the record was received, ms.
    pub received_uptime_ms: f64,
}

/// Parses a raw `struct taskstats`. `None` when it is too short for the fields used (older
/// than version 8: no I/O accounting offsets we rely on).
pub fn parse_stats(b: &[u8]) -> Option<TaskExit> {
    let version = u16_at(b, off::VERSION)?;
    let pid = u32_at(b, off::PID)?;
    let comm_raw = b.get(off::COMM..off::COMM + off::COMM_LEN)?;
    let comm_end = comm_raw
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(comm_raw.len());
    let virt = u64_at(b, off::CPU_RUN_VIRTUAL_TOTAL)?;
    let cpu_ns = if virt > 0 {
        virt
    } else {
        (u64_at(b, off::UTIME)?.saturating_add(u64_at(b, off::STIME)?)).saturating_mul(1000)
    };
    let tgid = if version >= 12 {
        u32_at(b, off::TGID).filter(|&t| t != 0).unwrap_or(pid)
    } else {
        pid
    };
    Some(TaskExit {
        pid,
        tgid,
        ppid: u32_at(b, off::PPID)?,
        uid: u32_at(b, off::UID)?,
        comm: String::from_utf8_lossy(&comm_raw[..comm_end]).into_owned(),
        exit_status: u32_at(b, off::EXITCODE)?,
        cpu_ns,
        elapsed_us: u64_at(b, off::ETIME)?,
        read_bytes: u64_at(b, off::READ_BYTES)?,
        write_bytes: u64_at(b, off::WRITE_BYTES)?,
        received_uptime_ms: 0.0,
    })
}

/// What one datagram from the listening socket held.
#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    pub exits: Vec<TaskExit>,
    /// Messages that were truncated or malformed.
    pub malformed: u32,
    /// Kernel errors reported in `NLMSG_ERROR` messages (negative errno).
    pub errors: Vec<i32>,
}

/// Parses every netlink message of a datagram from the taskstats family `family`. Never panics.
pub fn parse_datagram(buf: &[u8], family: u16, out: &mut Parsed) {
    for msg in messages(buf) {
        let Ok(Message { kind, body, .. }) = msg else {
            out.malformed += 1;
            break;
        };
        if kind == NLMSG_ERROR {
            match error_code(body) {
                Some(e) if e != 0 => out.errors.push(e),
                Some(_) => {}
                None => out.malformed += 1,
            }
            continue;
        }
        if kind != family {
            continue;
        }
        if body.first() != Some(&TASKSTATS_CMD_NEW) || body.len() < GENL_HDR {
            continue;
        }
        let mut found = false;
        for (t, payload) in attrs(&body[GENL_HDR..]) {
            // AGGR_TGID only adds delay accounting: threads are folded by the collector.
            if t != TASKSTATS_TYPE_AGGR_PID {
                continue;
            }
            let mut pid = None;
            let mut stats = None;
            for (t2, p2) in attrs(payload) {
                match t2 {
                    TASKSTATS_TYPE_PID => pid = u32_at(p2, 0),
                    TASKSTATS_TYPE_STATS => stats = parse_stats(p2),
                    _ => {}
                }
            }
            match (pid, stats) {
                (Some(_), Some(s)) => {
                    found = true;
                    out.exits.push(s);
                }
                _ => out.malformed += 1,
            }
        }
        if !found {
            out.malformed += 1;
        }
    }
}

/// A generic netlink request: nlmsghdr, genlmsghdr (command, version 1), then attributes.
fn request(family: u16, cmd: u8, seq: u32, attributes: &[(u16, &[u8])]) -> Vec<u8> {
    let mut body = vec![cmd, 1, 0, 0];
    for (kind, payload) in attributes {
        put_attr(&mut body, *kind, payload);
    }
    let mut m = Vec::with_capacity(HEADER_LEN + body.len());
    put_header(
        &mut m,
        HEADER_LEN + body.len(),
        family,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
    );
    m.extend_from_slice(&body);
    m
}

/// Finds the numeric id of the generic netlink family `TASKSTATS`.
fn resolve_family(socket: &Socket) -> std::io::Result<u16> {
    let name = b"TASKSTATS\0";
    let req = request(
        GENL_ID_CTRL,
        libc::CTRL_CMD_GETFAMILY as u8,
        1,
        &[(libc::CTRL_ATTR_FAMILY_NAME as u16, name)],
    );
    socket.send(&req, 0)?;
    let mut buf = vec![0u8; 16384];
    for _ in 0..4 {
        let n = socket.recv(&mut &mut buf[..], 0)?;
        for msg in messages(&buf[..n.min(buf.len())]) {
            let Ok(Message { kind, body, .. }) = msg else {
                break;
            };
            if kind == NLMSG_ERROR {
                let e = error_code(body).unwrap_or(0);
                if e != 0 {
                    return Err(std::io::Error::from_raw_os_error(-e));
                }
                continue;
            }
            if kind == GENL_ID_CTRL && body.len() >= GENL_HDR {
                for (t, p) in attrs(&body[GENL_HDR..]) {
                    if t == libc::CTRL_ATTR_FAMILY_ID as u16 {
                        if let Some(id) = u16_at(p, 0) {
                            return Ok(id);
                        }
                    }
                }
            }
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        "no TASKSTATS generic netlink family (kernel without CONFIG_TASKSTATS)",
    ))
}

/// Waits for the kernel's acknowledgement of request `seq`.
fn wait_ack(socket: &Socket, seq: u32) -> std::io::Result<()> {
    let mut buf = vec![0u8; 16384];
    for _ in 0..16 {
        let n = socket.recv(&mut &mut buf[..], 0)?;
        for msg in messages(&buf[..n.min(buf.len())]) {
            let Ok(msg) = msg else {
                break;
            };
            if msg.kind == NLMSG_ERROR && msg.seq == seq {
                let e = error_code(msg.body).unwrap_or(0);
                return if e == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::from_raw_os_error(-e))
                };
            }
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no acknowledgement from the kernel",
    ))
}

/// The CPUs the kernel may ever run a task on, as a cpulist (`0-3`).
fn possible_cpus() -> String {
    std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            // SAFETY: sysconf has no preconditions.
            let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) }.max(1);
            format!("0-{}", n - 1)
        })
}

fn uptime_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as f64 * 1000.0 + ts.tv_nsec as f64 / 1e6
}

/// What the listener thread collected since the last [`ExitListener::drain`].
#[derive(Debug, Default)]
pub struct Drained {
    pub exits: Vec<TaskExit>,
    /// Receives that failed with `ENOBUFS`: the kernel dropped records (how many is unknown).
    pub overruns: u64,
    /// Records dropped because too many were pending.
    pub dropped: u64,
    pub malformed: u64,
}

#[derive(Default)]
struct Shared {
    exits: Vec<TaskExit>,
    dropped: u64,
}

/// The exit listener: a thread reading the taskstats socket into a shared queue.
pub struct ExitListener {
    shared: Arc<Mutex<Shared>>,
    overruns: Arc<AtomicU64>,
    malformed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// The receive buffer the kernel granted, bytes.
    pub recv_buffer_bytes: usize,
}

impl ExitListener {
    /// Opens the socket, registers for exits on every CPU and starts the thread.
    pub fn start() -> Result<ExitListener, String> {
        let mut socket = Socket::new(NETLINK_GENERIC)
            .map_err(|e| format!("cannot open generic netlink: {e}"))?;
        socket
            .bind_auto()
            .map_err(|e| format!("cannot bind generic netlink: {e}"))?;
        let family = resolve_family(&socket).map_err(|e| format!("taskstats: {e}"))?;
        let granted = grow_receive_buffer(socket.as_raw_fd(), RECV_BUFFER_BYTES);
        let mask = possible_cpus();
        let mut mask_z = mask.clone().into_bytes();
        mask_z.push(0);
        let req = request(
            family,
            TASKSTATS_CMD_GET,
            2,
            &[(TASKSTATS_CMD_ATTR_REGISTER_CPUMASK, &mask_z)],
        );
        socket
            .send(&req, 0)
            .map_err(|e| format!("taskstats: cannot register CPUs {mask}: {e}"))?;
        wait_ack(&socket, 2).map_err(|e| {
            if e.raw_os_error() == Some(libc::EPERM) {
                format!("taskstats: registering for exits needs CAP_NET_ADMIN in the initial namespaces ({e})")
            } else {
                format!("taskstats: cannot register CPUs {mask}: {e}")
            }
        })?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let overruns = Arc::new(AtomicU64::new(0));
        let malformed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        set_recv_timeout(&socket, 500);
        let (sh, ov, ma, st) = (
            shared.clone(),
            overruns.clone(),
            malformed.clone(),
            stop.clone(),
        );
        std::thread::Builder::new()
            .name("hogtrap-exits".into())
            .spawn(move || listen(socket, family, sh, ov, ma, st))
            .map_err(|e| format!("taskstats: cannot start the listener thread: {e}"))?;
        Ok(ExitListener {
            shared,
            overruns,
            malformed,
            stop,
            recv_buffer_bytes: granted,
        })
    }

    /// Takes what arrived since the previous call.
    pub fn drain(&self) -> Drained {
        let (exits, dropped) = match self.shared.lock() {
            Ok(mut g) => (std::mem::take(&mut g.exits), std::mem::take(&mut g.dropped)),
            Err(p) => {
                let mut g = p.into_inner();
                (std::mem::take(&mut g.exits), std::mem::take(&mut g.dropped))
            }
        };
        Drained {
            exits,
            overruns: self.overruns.swap(0, Ordering::Relaxed),
            dropped,
            malformed: self.malformed.swap(0, Ordering::Relaxed),
        }
    }
}

impl Drop for ExitListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn listen(
    socket: Socket,
    family: u16,
    shared: Arc<Mutex<Shared>>,
    overruns: Arc<AtomicU64>,
    malformed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut parsed = Parsed::default();
    while !stop.load(Ordering::Relaxed) {
        let n = match socket.recv(&mut &mut buf[..], 0) {
            Ok(n) => n.min(buf.len()),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                overruns.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => {
                malformed.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
        };
        let now = uptime_ms();
        parsed.exits.clear();
        parsed.malformed = 0;
        parsed.errors.clear();
        parse_datagram(&buf[..n], family, &mut parsed);
        if parsed.malformed > 0 {
            malformed.fetch_add(parsed.malformed as u64, Ordering::Relaxed);
        }
        let mut g = match shared.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for mut e in parsed.exits.drain(..) {
            if g.exits.len() >= MAX_PENDING {
                g.dropped += 1;
                continue;
            }
            e.received_uptime_ms = now;
            g.exits.push(e);
        }
    }
    // Dropping the socket closes it, which deregisters the listener.
}

fn set_recv_timeout(socket: &Socket, ms: i64) {
    let tv = libc::timeval {
        tv_sec: (ms / 1000) as libc::time_t,
        tv_usec: ((ms % 1000) * 1000) as libc::suseconds_t,
    };
    // SAFETY: fd is an open socket; tv lives across the call.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
}

/// A `struct taskstats` with the given fields (version 13; ppid 77, uid 1000, exit code 3,
/// 30 ms old), for tests and benchmarks.
#[doc(hidden)]
pub fn encode_stats(pid: u32, tgid: u32, comm: &str, cpu_ns: u64, write: u64) -> Vec<u8> {
    let mut b = vec![0u8; 416];
    let mut put = |o: usize, v: &[u8]| b[o..o + v.len()].copy_from_slice(v);
    put(0, &13u16.to_ne_bytes());
    put(off::EXITCODE, &(3u32 << 8).to_ne_bytes());
    put(off::CPU_RUN_VIRTUAL_TOTAL, &cpu_ns.to_ne_bytes());
    let comm = &comm.as_bytes()[..comm.len().min(off::COMM_LEN - 1)];
    put(off::COMM, comm);
    put(off::UID, &1000u32.to_ne_bytes());
    put(off::PID, &pid.to_ne_bytes());
    put(off::PPID, &77u32.to_ne_bytes());
    put(off::ETIME, &30_000u64.to_ne_bytes());
    put(off::WRITE_BYTES, &write.to_ne_bytes());
    put(off::TGID, &tgid.to_ne_bytes());
    b
}

fn encode_nla(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    put_attr(&mut m, kind, payload);
    m
}

/// One exit message as the kernel sends it, for tests and benchmarks.
#[doc(hidden)]
pub fn encode_exit_message(
    family: u16,
    pid: u32,
    tgid: u32,
    comm: &str,
    cpu_ns: u64,
    write: u64,
) -> Vec<u8> {
    let mut aggr = encode_nla(TASKSTATS_TYPE_PID, &pid.to_ne_bytes());
    aggr.extend(encode_nla(
        TASKSTATS_TYPE_STATS,
        &encode_stats(pid, tgid, comm, cpu_ns, write),
    ));
    let mut body = vec![TASKSTATS_CMD_NEW, 1, 0, 0];
    body.extend(encode_nla(TASKSTATS_TYPE_AGGR_PID, &aggr));
    let mut m = Vec::new();
    put_header(&mut m, HEADER_LEN + body.len(), family, 0, 0);
    m.extend(body);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(family: u16, pid: u32, tgid: u32) -> Vec<u8> {
        encode_exit_message(family, pid, tgid, "perl", 20_000_000, 4096)
    }

    fn stats(pid: u32, tgid: u32, comm: &str, cpu_ns: u64, write: u64) -> Vec<u8> {
        encode_stats(pid, tgid, comm, cpu_ns, write)
    }

    #[test]
    fn a_whole_message_gives_its_exit() {
        let mut d = message(30, 1234, 1200);
        d.extend(message(30, 1235, 1235));
        let mut p = Parsed::default();
        parse_datagram(&d, 30, &mut p);
        assert_eq!(p.malformed, 0);
        assert_eq!(p.exits.len(), 2);
        let e = &p.exits[0];
        assert_eq!((e.pid, e.tgid, e.ppid, e.uid), (1234, 1200, 77, 1000));
        assert_eq!(e.comm, "perl");
        assert_eq!(e.cpu_ns, 20_000_000);
        assert_eq!(e.write_bytes, 4096);
        assert_eq!(e.exit_status >> 8, 3);
        assert_eq!(p.exits[1].tgid, 1235);
    }

    #[test]
    fn other_families_are_ignored() {
        let mut p = Parsed::default();
        parse_datagram(&message(31, 1, 1), 30, &mut p);
        assert!(p.exits.is_empty());
        assert_eq!(p.malformed, 0);
    }

    /// Every truncation and every single-byte corruption of a valid datagram parses without
    /// panicking, and a truncation never yields an exit that was not wholly there.
    #[test]
    fn truncated_and_corrupted_messages_never_panic() {
        let whole = message(30, 4321, 4321);
        for cut in 0..whole.len() {
            let mut p = Parsed::default();
            parse_datagram(&whole[..cut], 30, &mut p);
            assert!(p.exits.is_empty(), "a message cut at {cut} gave an exit");
        }
        let mut seed: u32 = 12345;
        for i in 0..whole.len() {
            for _ in 0..8 {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let mut bad = whole.clone();
                bad[i] = (seed >> 16) as u8;
                let mut p = Parsed::default();
                parse_datagram(&bad, 30, &mut p);
                assert!(p.exits.len() <= 1);
            }
        }
        for len in 0..416 {
            let s = stats(1, 1, "x", 1, 1);
            let got = parse_stats(&s[..len]);
            assert_eq!(
                got.is_some(),
                len >= off::WRITE_BYTES + 8,
                "stats cut at {len}"
            );
        }
    }
}
