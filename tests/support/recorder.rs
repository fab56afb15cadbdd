//! The daemon under test and the workload children it should see.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn hogtrap_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hogtrap"))
}

/// A daemon recording into a temp dir, killed on drop if still running.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub db: PathBuf,
    pub child: Option<Child>,
    pub stderr: PathBuf,
}

impl Daemon {
    /// Writes a config (with `[store] path` set to the temp dir) and starts `hogtrap run`.
    pub fn start(extra_toml: &str) -> Daemon {
        let mut d = Daemon::prepare(extra_toml);
        d.spawn();
        d
    }

    /// Writes the config like [`Daemon::start`] but does not start the daemon yet (to put
    /// something in the store first); call [`Daemon::spawn`].
    pub fn prepare(extra_toml: &str) -> Daemon {
        Daemon::prepare_in(tempfile::tempdir().expect("tempdir"), extra_toml)
    }

    fn start_in(dir: tempfile::TempDir, extra_toml: &str) -> Daemon {
        let mut d = Daemon::prepare_in(dir, extra_toml);
        d.spawn();
        d
    }

    fn prepare_in(dir: tempfile::TempDir, extra_toml: &str) -> Daemon {
        let db = dir.path().join("hogtrap.db");
        let config = dir.path().join("config.toml");
        let rules_line = format!("dir = \"{}\"\n", dir.path().join("rules").display());
        // The caller's [rules] section, if any, gets the rules directory too.
        let text = if extra_toml.contains("[rules]\n") {
            format!(
                "[store]\npath = \"{}\"\n\n{}",
                db.display(),
                extra_toml.replace("[rules]\n", &format!("[rules]\n{rules_line}"))
            )
        } else {
            format!(
                "[store]\npath = \"{}\"\n\n[rules]\n{rules_line}\n{extra_toml}",
                db.display()
            )
        };
        std::fs::write(&config, text).unwrap();
        Daemon {
            stderr: dir.path().join("daemon.log"),
            dir,
            config,
            db,
            child: None,
        }
    }

    /// Like [`Daemon::start`], with these rule files (name, Lua text) in its rules directory.
    pub fn start_with_rules(extra_toml: &str, rules: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let rules_dir = dir.path().join("rules");
        std::fs::create_dir(&rules_dir).unwrap();
        for (name, text) in rules {
            std::fs::write(rules_dir.join(name), text).unwrap();
        }
        Daemon::start_in(dir, extra_toml)
    }

    /// Like [`Daemon::start`], with the shipped rule files named in `names` (e.g. "cpu_hog.lua").
    pub fn start_with_shipped_rules(extra_toml: &str, names: &[&str]) -> Daemon {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let texts: Vec<(String, String)> = names
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    std::fs::read_to_string(shipped.join(n)).unwrap(),
                )
            })
            .collect();
        let refs: Vec<(&str, &str)> = texts
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        Daemon::start_with_rules(extra_toml, &refs)
    }

    pub fn rules_dir(&self) -> PathBuf {
        self.dir.path().join("rules")
    }

    pub fn spawn(&mut self) {
        self.spawn_with_prefix(&[]);
    }

    /// Starts `hogtrap run` through a prefix command, e.g. `ip netns exec NS`.
    pub fn spawn_with_prefix(&mut self, prefix: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr)
            .unwrap();
        let mut cmd = match prefix.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(hogtrap_bin());
                c
            }
            None => Command::new(hogtrap_bin()),
        };
        let child = cmd
            .args(["run", "-c"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start hogtrap run");
        self.child = Some(child);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Runs a hogtrap command against this daemon's config.
    pub fn cli(&self, args: &[&str]) -> Output {
        // --db as well, so queries work while the config is deliberately broken.
        Command::new(hogtrap_bin())
            .arg("-c")
            .arg(&self.config)
            .arg("--db")
            .arg(&self.db)
            .args(args)
            .output()
            .expect("run hogtrap")
    }

    /// Runs a command, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.cli(args);
        assert!(
            o.status.success(),
            "hogtrap {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// The query's rows, or None while the store cannot answer it yet (not created, not migrated).
    pub fn try_sql_json(&self, q: &str) -> Option<serde_json::Value> {
        let o = self.cli(&["sql", "--json", q]);
        if !o.status.success() {
            return None;
        }
        serde_json::from_slice(&o.stdout).ok()
    }

    pub fn sql_json(&self, q: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["sql", "--json", q])).unwrap()
    }

    pub fn scalar(&self, q: &str) -> serde_json::Value {
        let v = self.sql_json(q);
        let row = v[0].as_object().expect("one row").clone();
        row.into_iter().next().expect("one column").1
    }

    pub fn sample_count(&self) -> i64 {
        if !self.db.exists() {
            return 0;
        }
        let o = self.cli(&["sql", "--json", "SELECT count(*) AS n FROM sample"]);
        if !o.status.success() {
            return 0;
        }
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        v[0]["n"].as_i64().unwrap_or(0)
    }

    /// Waits until the store holds at least `n` samples.
    pub fn wait_samples(&self, n: i64, timeout: Duration) {
        let t = Instant::now();
        while self.sample_count() < n {
            assert!(
                t.elapsed() < timeout,
                "fewer than {n} samples after {timeout:?}; daemon log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().expect("running").id();
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(pid as i32, sig) };
    }

    /// Polls `f` every 250 ms until it returns Some, or fails after `timeout`.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut() -> Option<T>,
    ) -> T {
        let t = Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                t.elapsed() < timeout,
                "{what}: not within {timeout:?}; daemon log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Waits for the daemon to exit, returning its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let t = Instant::now();
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.child = None;
                return st;
            }
            assert!(
                t.elapsed() < timeout,
                "daemon did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A workload child with a recognisable name (the program is run through a symlink called
/// `name`, so its comm is `name`). Killed on drop.
pub struct Workload {
    pub child: Child,
    _dir: tempfile::TempDir,
}

impl Workload {
    /// Runs `python3 -c code` as a process named `name`.
    pub fn python(name: &str, code: &str) -> Workload {
        Workload::python_with(name, code, &[], &[])
    }

    /// Like [`Workload::python`], with arguments, through a prefix command (`ip netns exec NS`).
    pub fn python_with(name: &str, code: &str, args: &[&str], prefix: &[&str]) -> Workload {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join(name);
        let python = Path::new("/usr/bin/python3");
        assert!(
            python.exists(),
            "/usr/bin/python3 is missing: run scripts/install-test-deps.sh"
        );
        std::os::unix::fs::symlink(python, &link).unwrap();
        let mut cmd = match prefix.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(&link);
                c
            }
            None => Command::new(&link),
        };
        let child = cmd
            .arg("-c")
            .arg(code)
            .args(args)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("start workload");
        Workload { child, _dir: dir }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A process that keeps one CPU busy.
    pub fn cpu_burner(name: &str) -> Workload {
        Workload::python(name, "while True: pass")
    }

    /// A process that holds `mib` MiB of touched memory and sleeps.
    pub fn memory_holder(name: &str, mib: usize) -> Workload {
        Workload::python(
            name,
            &format!("import time\nb = bytearray(b'x' * ({mib} << 20))\nwhile True: time.sleep(1)"),
        )
    }

    /// A process that keeps writing to a file in its directory and syncing it.
    pub fn disk_writer(name: &str) -> Workload {
        Workload::python(
            name,
            "import os, time\nbuf = b'y' * (1 << 20)\nwhile True:\n    f = open('out.bin', 'wb')\n    for _ in range(16):\n        f.write(buf)\n    f.flush(); os.fsync(f.fileno()); f.close()\n    time.sleep(0.05)",
        )
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
