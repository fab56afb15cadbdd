//! The recorder when the box is failing (issue 17; the full three-minute thrash is
//! `scripts/bench-distress.sh`, not a test):
//! - a store whose disk stalls (every write to it throttled to 2 KiB/s, so a 4 KiB write takes
//!   2 s): every sample of the window is stored afterwards with its own timestamp, and the
//!   health log names the stall;
//! - PID exhaustion: the daemon inside a pids cgroup that allows it no new task keeps sampling
//!   and reports nothing degraded.
//!
//! Both need root, a loop device and cgroups; the stalled disk is an ext4 loop device this test
//! makes, throttled with the blkio (cgroup v1) or io (v2) controller.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::recorder::hogtrap_bin;

/// An ext4 file system on a loop device, mounted in a temp dir; torn down on drop.
struct LoopDisk {
    dir: tempfile::TempDir,
    dev: String,
}

impl LoopDisk {
    fn mount() -> LoopDisk {
        support::require_root("a loop device and cgroup throttling");
        support::require_program("losetup", "mount");
        support::require_program("mkfs.ext4", "e2fsprogs");
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(128 << 20)
            .unwrap();
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&img)
            .output()
            .unwrap();
        assert!(out.status.success(), "losetup: {out:?}");
        let dev = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let disk = LoopDisk { dir, dev };
        run(Command::new("mkfs.ext4").args(["-q", &disk.dev]));
        std::fs::create_dir(disk.mountpoint()).unwrap();
        run(Command::new("mount").arg(&disk.dev).arg(disk.mountpoint()));
        disk
    }

    fn mountpoint(&self) -> PathBuf {
        self.dir.path().join("m")
    }

    fn majmin(&self) -> String {
        let out = Command::new("lsblk")
            .args(["-dno", "MAJ:MIN", &self.dev])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.mountpoint()).status();
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

/// Writes to `disk` throttled to `bps` bytes a second while this lives. cgroup v1: the root
/// blkio group (the daemon, the flusher and jbd2 live there); v2: a child group holding `pid`.
struct Throttle {
    undo: Box<dyn FnMut()>,
}

impl Throttle {
    fn writes(disk: &LoopDisk, bps: u64, pid: u32) -> Throttle {
        let mm = disk.majmin();
        let v1 = Path::new("/sys/fs/cgroup/blkio/blkio.throttle.write_bps_device");
        if v1.exists() {
            std::fs::write(v1, format!("{mm} {bps}")).unwrap();
            return Throttle {
                undo: Box::new(move || {
                    let _ = std::fs::write(v1, format!("{mm} 0"));
                }),
            };
        }
        let root = Path::new("/sys/fs/cgroup");
        let ok = std::fs::read_to_string(root.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|x| x == "io"));
        if !ok {
            panic!("no blkio (v1) or io (v2) cgroup controller to throttle the disk with");
        }
        let _ = std::fs::write(root.join("cgroup.subtree_control"), "+io");
        let cg = root.join(format!("hogtrap-test-io-{}", std::process::id()));
        std::fs::create_dir(&cg).unwrap();
        std::fs::write(cg.join("io.max"), format!("{mm} wbps={bps}")).unwrap();
        std::fs::write(cg.join("cgroup.procs"), pid.to_string()).unwrap();
        Throttle {
            undo: Box::new(move || {
                let _ = std::fs::write(root.join("cgroup.procs"), pid.to_string());
                let _ = std::fs::remove_dir(&cg);
            }),
        }
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        (self.undo)();
    }
}

fn run(cmd: &mut Command) {
    let st = cmd.status().unwrap();
    assert!(st.success(), "{cmd:?}: {st}");
}

/// `hogtrap run` with a 1 s interval and no rules, its store at `db`.
struct Recorder {
    child: Child,
    db: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Recorder {
    fn start(db: &Path) -> Recorder {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[sampler]\ninterval = \"1s\"\n\n[store]\npath = \"{}\"\n\n[rules]\ndir = \"{}\"\n",
                db.display(),
                dir.path().join("rules").display()
            ),
        )
        .unwrap();
        let log = dir.path().join("daemon.log");
        let child = Command::new(hogtrap_bin())
            .args(["run", "-c"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Recorder {
            child,
            db: db.to_path_buf(),
            log,
            _dir: dir,
        }
    }

    fn sql(&self, q: &str) -> Vec<serde_json::Value> {
        let out = Command::new(hogtrap_bin())
            .arg("--db")
            .arg(&self.db)
            .args(["sql", "--json", q])
            .output()
            .unwrap();
        if !out.status.success() {
            return Vec::new();
        }
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    fn samples_since(&self, from_ms: i64) -> Vec<serde_json::Value> {
        self.sql(&format!(
            "SELECT ts_ms FROM sample WHERE ts_ms >= {from_ms} ORDER BY ts_ms"
        ))
    }

    fn wait_samples(&self, n: usize) {
        let ok = support::wait_until(Duration::from_secs(60), || self.samples_since(0).len() >= n);
        assert!(ok, "fewer than {n} samples; log:\n{}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM and wait: held samples are written at stop.
    fn stop(&mut self) {
        // SAFETY: kill with a pid this test started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let st = self.child.wait().unwrap();
        assert!(
            st.success(),
            "hogtrap run exited {st}; log:\n{}",
            self.log()
        );
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn a_stalled_store_keeps_every_sample_with_its_timestamp_and_names_the_stall() {
    let disk = LoopDisk::mount();
    let mut rec = Recorder::start(&disk.mountpoint().join("hogtrap.db"));
    rec.wait_samples(3);
    let from = now_ms();
    {
        // 2 KiB/s: each 4 KiB write takes 2 s. Longer than the checkpoint period (10 s), so
        // at least one checkpoint runs into it.
        let _slow = Throttle::writes(&disk, 2048, rec.child.id());
        std::thread::sleep(Duration::from_secs(16));
    }
    let to = now_ms();
    // The checkpoint caught in the stall returns; the recorder thread, if a write of its own
    // was caught too, writes the samples that waited. Either names the stall.
    let written = support::wait_until(Duration::from_secs(60), || {
        !rec.sql("SELECT id FROM recorder_event WHERE kind = 'stall' AND message LIKE 'the store stalled for%'")
            .is_empty()
    });
    rec.stop();
    assert!(written, "no stall reported; log:\n{}", rec.log());
    let rows = rec.samples_since(from - 1000);
    let window: Vec<_> = rows
        .iter()
        .filter(|r| r["ts_ms"].as_i64().unwrap() <= to)
        .cloned()
        .collect();
    // One sample per second of the window (its ends may fall either side of a slot).
    let secs = (to - from) / 1000;
    assert!(
        window.len() as i64 >= secs,
        "{} samples for a {secs} s window; log:\n{}",
        window.len(),
        rec.log()
    );
    support::assert_no_hole(&rows, 2000, "while the store's disk stalled");
    let stalls =
        rec.sql("SELECT message, count FROM recorder_event WHERE kind = 'stall' ORDER BY id");
    let text = format!("{stalls:?}");
    eprintln!("stall events: {text}");
    assert!(text.contains("the store stalled for"), "{text}");
    // The sampling thread never waited for the disk: no slot missed, nothing dropped.
    let bad = rec.sql("SELECT kind, message FROM recorder_event WHERE kind IN ('gap', 'dropped')");
    assert!(bad.is_empty(), "{bad:?}; stalls: {text}");
}

/// The pids controller's directory: v2 at /sys/fs/cgroup if it offers pids, else v1's.
fn pids_root() -> PathBuf {
    let v2 = Path::new("/sys/fs/cgroup");
    if std::fs::read_to_string(v2.join("cgroup.controllers"))
        .is_ok_and(|c| c.split_whitespace().any(|x| x == "pids"))
    {
        let _ = std::fs::write(v2.join("cgroup.subtree_control"), "+pids");
        return v2.to_path_buf();
    }
    let v1 = Path::new("/sys/fs/cgroup/pids");
    assert!(
        v1.join("cgroup.procs").exists(),
        "no pids cgroup controller"
    );
    v1.to_path_buf()
}

#[test]
fn a_daemon_left_no_new_pid_keeps_sampling_and_nothing_degrades() {
    support::require_root("a pids cgroup");
    let dir = tempfile::tempdir().unwrap();
    let mut rec = Recorder::start(&dir.path().join("hogtrap.db"));
    rec.wait_samples(3);
    let root = pids_root();
    let cg = root.join(format!("hogtrap-test-pids-{}", std::process::id()));
    std::fs::create_dir(&cg).unwrap();
    let pid = rec.child.id();
    std::fs::write(cg.join("cgroup.procs"), pid.to_string()).unwrap();
    // Exactly the tasks it has: not one thread or process more.
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count();
    std::fs::write(cg.join("pids.max"), tasks.to_string()).unwrap();
    let from = now_ms();
    // A reload in the middle: it must not need a new thread either.
    std::thread::sleep(Duration::from_secs(4));
    // SAFETY: kill with a pid this test started.
    unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    std::thread::sleep(Duration::from_secs(6));
    let refused = std::fs::read_to_string(cg.join("pids.events")).unwrap_or_default();
    std::fs::write(root.join("cgroup.procs"), pid.to_string()).unwrap();
    std::fs::remove_dir(&cg).unwrap();
    let to = now_ms();
    rec.wait_samples(3);
    let status = Command::new(hogtrap_bin())
        .arg("--db")
        .arg(&rec.db)
        .args(["status", "--json"])
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    rec.stop();
    let rows = rec.samples_since(from);
    let window = rows
        .iter()
        .filter(|r| r["ts_ms"].as_i64().unwrap() <= to)
        .count() as i64;
    assert!(
        window >= (to - from) / 1000 - 1,
        "{window} samples; log:\n{}",
        rec.log()
    );
    support::assert_no_hole(&rows, 2000, "with no pid to spare");
    assert_eq!(status["recording"], true, "{status}");
    let bad = rec
        .sql("SELECT kind, message FROM recorder_event WHERE kind IN ('gap', 'error', 'dropped')");
    assert!(bad.is_empty(), "degraded: {bad:?}; pids.events: {refused}");
    assert!(
        rec.log().contains("SIGHUP: configuration reloaded"),
        "{}",
        rec.log()
    );
}
