//! Kernel OOM kills from the kernel log (`/dev/kmsg`), so "the kernel killed mysqld at
//! 03:12:07" is in the record.
//!
//! Guarantees: never blocks (the device is read non-blocking); messages overwritten before we
//! read them are skipped, not fatal; without permission (dmesg_restrict) it says so once and
//! yields nothing.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

use crate::model::OomKill;

pub struct KmsgReader {
    file: Option<File>,
    boot_time_ms: i64,
    /// Why the log cannot be read, reported once by the caller.
    pub unavailable: Option<String>,
    buf: Vec<u8>,
}

impl KmsgReader {
    /// Opens the kernel log. Kills before `after_ms` (already recorded) are skipped.
    pub fn open(boot_time_ms: i64) -> KmsgReader {
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg");
        let (file, unavailable) = match opened {
            Ok(f) => (Some(f), None),
            Err(e) => (
                None,
                Some(format!(
                    "/dev/kmsg: {e}; kernel OOM kills will not be recorded (run as root or set kernel.dmesg_restrict=0)"
                )),
            ),
        };
        KmsgReader {
            file,
            boot_time_ms,
            unavailable,
            buf: vec![0; 8192],
        }
    }

    /// Every OOM kill logged since the last call (on the first call: since boot, as far as
    /// the kernel's ring still holds).
    pub fn read_new(&mut self) -> Vec<OomKill> {
        let mut kills = Vec::new();
        let Some(f) = self.file.as_mut() else {
            return kills;
        };
        loop {
            match f.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => {
                    if let Some(k) = parse_record(&self.buf[..n], self.boot_time_ms) {
                        kills.push(k);
                    }
                }
                // EPIPE: records were overwritten since the last read; the next read resumes.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        kills
    }
}

/// One `/dev/kmsg` record: `prio,seq,usec,flags;message`.
pub fn parse_record(rec: &[u8], boot_time_ms: i64) -> Option<OomKill> {
    let text = std::str::from_utf8(rec).ok()?;
    let (head, msg) = text.split_once(';')?;
    let usec: i64 = head.split(',').nth(2)?.parse().ok()?;
    let (pid, name, rss_bytes) = parse_oom_message(msg.lines().next()?)?;
    Some(OomKill {
        ts_ms: boot_time_ms + usec / 1000,
        pid,
        name,
        rss_bytes,
    })
}

/// "Out of memory: Killed process 1234 (mysqld) total-vm:..kB, anon-rss:..kB, file-rss:..kB,
/// shmem-rss:..kB, ..." (also the "Memory cgroup out of memory:" variant).
pub fn parse_oom_message(msg: &str) -> Option<(u32, String, u64)> {
    let rest = &msg[msg.find("Killed process ")? + "Killed process ".len()..];
    let (pid, rest) = rest.split_once(' ')?;
    let pid = pid.parse().ok()?;
    let open = rest.find('(')?;
    let close = rest.rfind(')')?;
    let name = rest.get(open + 1..close)?.to_string();
    let mut rss_kib = 0u64;
    for part in rest[close..].split([',', ' ']) {
        for key in ["anon-rss:", "file-rss:", "shmem-rss:"] {
            if let Some(v) = part.trim().strip_prefix(key) {
                rss_kib += v.trim_end_matches("kB").parse::<u64>().unwrap_or(0);
            }
        }
    }
    Some((pid, name, rss_kib * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_record() {
        let rec = b"3,1234,5000000,-;Out of memory: Killed process 4321 (mysqld) total-vm:2000kB, anon-rss:1000kB, file-rss:24kB, shmem-rss:0kB, UID:27 pgtables:100kB oom_score_adj:0\n";
        let k = parse_record(rec, 1_000_000).unwrap();
        assert_eq!(k.pid, 4321);
        assert_eq!(k.name, "mysqld");
        assert_eq!(k.rss_bytes, 1024 * 1024);
        assert_eq!(k.ts_ms, 1_000_000 + 5000);
    }

    #[test]
    fn cgroup_oom_and_noise() {
        let m = "Memory cgroup out of memory: Killed process 77 (python3) total-vm:10kB, anon-rss:300kB, file-rss:0kB, shmem-rss:0kB";
        assert_eq!(
            parse_oom_message(m),
            Some((77, "python3".into(), 300 * 1024))
        );
        assert!(parse_record(b"6,1,1,-;eth0: link up", 0).is_none());
        assert!(parse_record(b"garbage", 0).is_none());
    }
}
