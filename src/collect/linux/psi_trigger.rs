//! What wakes the recorder between two clock samples: kernel pressure (PSI) triggers and new
//! OOM kills in the kernel log.
//!
//! A PSI trigger is the pressure file (`/proc/pressure/{cpu,memory,io}`) opened read-write,
//! `some 200000 2000000` written to it (stalled at least 200 ms within any 2 s), and then
//! `poll` for `POLLPRI`: the kernel raises it when the stall passes the threshold, at most once
//! a window. Without CAP_SYS_RESOURCE the kernel takes only windows that are multiples of 2 s
//! (others are `EINVAL`): such a window is widened here, the threshold in proportion, and the
//! start line says so.
//!
//! Guarantees: opening never fails the caller: a source that cannot be armed (no PSI, the
//! write refused, no `/dev/kmsg`) is left out and [`WakeSources::start_line`] says which and
//! why, in one line; [`WakeSources::wait`] blocks only in `poll`, and a source the kernel
//! reports broken (`POLLERR`) is dropped and reported once.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::config::{PsiTrigger, Wake};
use crate::format::duration_text;
use crate::model::SampleReason;

/// Bit of CAP_SYS_RESOURCE in `CapEff`.
const CAP_SYS_RESOURCE: u32 = 24;
/// The window unit the kernel requires without CAP_SYS_RESOURCE, µs.
const UNPRIVILEGED_WINDOW_US: u64 = 2_000_000;
/// The kernel's longest window, µs.
const MAX_WINDOW_US: u64 = 10_000_000;

/// A trigger as written to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Armed {
    pub reason: SampleReason,
    /// `cpu some 500ms/2s`: what `hogtrap status` shows.
    pub text: String,
}

enum Source {
    Psi(SampleReason, File),
    Kmsg(File),
}

pub struct WakeSources {
    sources: Vec<Source>,
    /// Triggers in force (PSI ones, then `oom` if the kernel log is watched).
    pub armed: Vec<Armed>,
    start_line: String,
    /// Problems found while waiting (a source dropped), each said once by the caller.
    pub notices: Vec<String>,
    buf: Vec<u8>,
}

/// A trigger's kernel text and its widened form when the window had to become a multiple
/// of 2 s: `(threshold_us, window_us, widened)`.
pub fn kernel_values(t: &PsiTrigger, privileged: bool) -> (u64, u64, bool) {
    let window = t.window.as_millis() * 1000;
    let threshold = (t.threshold.as_millis() * 1000).min(window);
    if privileged || window.is_multiple_of(UNPRIVILEGED_WINDOW_US) {
        return (threshold, window, false);
    }
    let wide = window
        .div_ceil(UNPRIVILEGED_WINDOW_US)
        .saturating_mul(UNPRIVILEGED_WINDOW_US)
        .min(MAX_WINDOW_US);
    let thr = ((threshold as u128 * wide as u128) / window as u128) as u64;
    (thr.min(wide), wide, true)
}

/// Whether this process holds CAP_SYS_RESOURCE (read from `/proc/self/status`).
pub fn has_cap_sys_resource() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

fn us_text(us: u64) -> String {
    duration_text(std::time::Duration::from_micros(us))
}

impl WakeSources {
    /// Arms what `[sampler.wake]` asks for. Never fails: see [`WakeSources::start_line`].
    pub fn open(cfg: &Wake) -> WakeSources {
        let mut w = WakeSources {
            sources: Vec::new(),
            armed: Vec::new(),
            start_line: String::new(),
            notices: Vec::new(),
            buf: vec![0; 8192],
        };
        if !cfg.enabled {
            w.start_line =
                "wake-ups off ([sampler.wake] enabled = false): sampling on the clock only".into();
            return w;
        }
        let privileged = has_cap_sys_resource();
        let mut refused = Vec::new();
        let mut widened = Vec::new();
        let wanted = [
            ("cpu", SampleReason::PsiCpu, &cfg.cpu),
            ("memory", SampleReason::PsiMemory, &cfg.memory),
            ("io", SampleReason::PsiIo, &cfg.io),
        ];
        let any_psi = wanted.iter().any(|(_, _, t)| t.enabled);
        let no_psi = any_psi && !cfg.psi_dir.join("cpu").exists() && !cfg.psi_dir.is_dir();
        if no_psi {
            refused.push(format!(
                "no PSI: {} does not exist (a kernel without CONFIG_PSI, or booted with psi=0)",
                cfg.psi_dir.display()
            ));
        } else {
            for (name, reason, t) in wanted {
                if !t.enabled {
                    continue;
                }
                let (thr, win, wide) = kernel_values(t, privileged);
                let path = cfg.psi_dir.join(name);
                match arm(&path, &format!("{} {thr} {win}", t.stall.as_str())) {
                    Ok(f) => {
                        let text = format!(
                            "{name} {} {}/{}",
                            t.stall.as_str(),
                            us_text(thr),
                            us_text(win)
                        );
                        if wide {
                            widened.push(format!("{name} {}→{}", t.window, us_text(win)));
                        }
                        w.sources.push(Source::Psi(reason, f));
                        w.armed.push(Armed { reason, text });
                    }
                    Err(e) => refused.push(format!("{name}: {}: {e}", path.display())),
                }
            }
        }
        if cfg.oom {
            match open_kmsg_at_end() {
                Ok(f) => {
                    w.sources.push(Source::Kmsg(f));
                    w.armed.push(Armed {
                        reason: SampleReason::Oom,
                        text: "oom (new OOM kills in /dev/kmsg)".into(),
                    });
                }
                Err(e) => refused.push(format!("oom: /dev/kmsg: {e}")),
            }
        }
        let mut line = String::from("wake-ups: ");
        if w.armed.is_empty() {
            line.push_str("none armed");
        } else {
            line.push_str(
                &w.armed
                    .iter()
                    .map(|a| a.text.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            line.push_str(&format!(
                "; min spacing {}, then samples for {}",
                cfg.min_spacing, cfg.follow
            ));
        }
        let psi_armed = w.armed.iter().any(|a| a.reason != SampleReason::Oom);
        if psi_armed && !privileged {
            line.push_str(
                "; 2 s windows: without CAP_SYS_RESOURCE the kernel accepts only multiples of 2 s",
            );
            if !widened.is_empty() {
                line.push_str(&format!(" (widened {})", widened.join(", ")));
            }
        }
        if !refused.is_empty() {
            line.push_str(&format!("; refused: {}", refused.join("; ")));
            if w.sources.is_empty() {
                line.push_str(": sampling on the clock only");
            }
        }
        w.start_line = line;
        w
    }

    /// What is armed, what was refused and why: one line for the log and the record.
    pub fn start_line(&self) -> &str {
        &self.start_line
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Blocks until a source fires (or `timeout_ms`, -1 = forever) and returns why, one
    /// reason per source that fired. Empty on timeout.
    pub fn wait(&mut self, timeout_ms: i32) -> Vec<SampleReason> {
        let mut fds: Vec<libc::pollfd> = self
            .sources
            .iter()
            .map(|s| match s {
                Source::Psi(_, f) => libc::pollfd {
                    fd: f.as_raw_fd(),
                    events: libc::POLLPRI,
                    revents: 0,
                },
                Source::Kmsg(f) => libc::pollfd {
                    fd: f.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            })
            .collect();
        if fds.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(timeout_ms.max(0) as u64));
            return Vec::new();
        }
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs for the whole call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if n <= 0 {
            return Vec::new();
        }
        let mut fired = Vec::new();
        let mut broken = Vec::new();
        for (i, pfd) in fds.iter().enumerate() {
            if pfd.revents == 0 {
                continue;
            }
            match &mut self.sources[i] {
                Source::Psi(reason, _) => {
                    if pfd.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
                        broken.push(i);
                    } else if pfd.revents & libc::POLLPRI != 0 {
                        fired.push(*reason);
                    }
                }
                Source::Kmsg(f) => {
                    if pfd.revents & libc::POLLNVAL != 0 {
                        broken.push(i);
                    } else if read_kmsg_for_oom(f, &mut self.buf) {
                        fired.push(SampleReason::Oom);
                    }
                }
            }
        }
        for i in broken.into_iter().rev() {
            let what = match self.sources.remove(i) {
                Source::Psi(r, _) => r.as_str(),
                Source::Kmsg(_) => "oom",
            };
            self.armed.retain(|a| a.reason.as_str() != what);
            self.notices.push(format!(
                "wake-up source {what} reported an error by the kernel: no longer watched"
            ));
        }
        fired
    }
}

/// Opens a pressure file read-write and writes the trigger; the open file is the trigger.
fn arm(path: &Path, trigger: &str) -> std::io::Result<File> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("open read-write: {e}")))?;
    // The kernel takes the trigger in one write, terminated by NUL.
    let mut bytes = trigger.as_bytes().to_vec();
    bytes.push(0);
    f.write_all(&bytes)
        .map_err(|e| std::io::Error::new(e.kind(), format!("write {trigger:?}: {e}")))?;
    Ok(f)
}

/// The kernel log, positioned after the last record: only kills from now on wake.
fn open_kmsg_at_end() -> std::io::Result<File> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/kmsg")?;
    // SAFETY: lseek on an fd we own; /dev/kmsg supports SEEK_END (after the last record).
    if unsafe { libc::lseek(f.as_raw_fd(), 0, libc::SEEK_END) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(f)
}

/// Reads every new record; true if one of them is an OOM kill.
fn read_kmsg_for_oom(f: &mut File, buf: &mut [u8]) -> bool {
    let mut oom = false;
    loop {
        match f.read(buf) {
            Ok(0) => break,
            Ok(n) => oom |= super::kmsg::parse_record(&buf[..n], 0).is_some(),
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    oom
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Duration, Stall};

    fn t(thr_ms: u64, win_ms: u64) -> PsiTrigger {
        PsiTrigger {
            enabled: true,
            stall: Stall::Some,
            threshold: Duration::from_millis(thr_ms),
            window: Duration::from_millis(win_ms),
        }
    }

    #[test]
    fn windows_are_widened_to_2s_multiples_only_without_the_capability() {
        // (threshold ms, window ms), has the capability, what the kernel is given.
        let cases = [
            ((200, 2000), false, (200_000, 2_000_000, false)),
            ((100, 1000), true, (100_000, 1_000_000, false)),
            ((100, 1000), false, (200_000, 2_000_000, true)),
            ((500, 3000), false, (666_666, 4_000_000, true)),
            ((9900, 9900), false, (10_000_000, 10_000_000, true)),
        ];
        for ((thr, win), capable, want) in cases {
            let got = kernel_values(&t(thr, win), capable);
            assert_eq!(got, want, "{thr}ms in {win}ms, capable: {capable}");
        }
    }

    #[test]
    fn a_refused_trigger_is_said_in_the_start_line() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["cpu", "memory", "io"] {
            std::os::unix::fs::symlink("/dev/full", dir.path().join(name)).unwrap();
        }
        let cfg = Wake {
            psi_dir: dir.path().to_path_buf(),
            oom: false,
            ..Wake::default()
        };
        let w = WakeSources::open(&cfg);
        assert!(w.is_empty());
        let line = w.start_line();
        assert!(line.contains("refused: cpu: "), "{line}");
        assert!(line.contains("No space left on device"), "{line}");
        assert!(line.ends_with("sampling on the clock only"), "{line}");

        let cfg = Wake {
            psi_dir: dir.path().join("absent"),
            oom: false,
            ..Wake::default()
        };
        let line = WakeSources::open(&cfg).start_line().to_string();
        assert!(line.contains("no PSI: "), "{line}");
    }
}
