//! A full disk: the recorder says so once, keeps its samples in memory, and writes them when
//! space returns; nothing recorded before is lost and the file stays sound. The "disk" is a
//! 4 MiB tmpfs this test mounts.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> SmallDisk {
        support::require_root("mounting a small tmpfs");
        let dir = tempfile::tempdir().unwrap();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=4m",
                "hogtrap-test",
                &dir.path().display().to_string(),
            ])
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs failed");
        SmallDisk { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Fills the disk with a file of zeros until writing fails.
    fn fill(&self) -> PathBuf {
        let filler = self.path().join("filler");
        let _ = Command::new("dd")
            .args([
                "if=/dev/zero",
                &format!("of={}", filler.display()),
                "bs=64k",
            ])
            .stderr(std::process::Stdio::null())
            .status();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_is_said_once_and_the_samples_are_written_when_space_returns() {
    let disk = SmallDisk::mount();
    let db = disk.path().join("hogtrap.db");
    // The store lives on the small disk: a config of its own.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[sampler]\ninterval = \"1s\"\n\n[store]\npath = \"{}\"\npending_max = 120\n\n[rules]\ndir = \"{}\"\n\n[retention]\nmax_size = \"64MiB\"\n",
            db.display(),
            dir.path().join("rules").display()
        ),
    )
    .unwrap();
    let log = dir.path().join("daemon.log");
    let mut child = Command::new(support::recorder::hogtrap_bin())
        .args(["run", "-c"])
        .arg(&config)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let count = || -> i64 {
        let o = Command::new(support::recorder::hogtrap_bin())
            .args(["--db"])
            .arg(&db)
            .args(["sql", "--csv", "SELECT count(*) FROM sample"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0)
    };
    let wait = |what: &str, f: &dyn Fn() -> bool| {
        let t = std::time::Instant::now();
        while !f() {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "{what}; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    wait("first samples", &|| count() >= 3);
    let before = count();
    let filler = disk.fill();
    // Keep it full for a while: the recorder must hold its samples, not die.
    std::thread::sleep(Duration::from_secs(8));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the daemon died on a full disk"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let said = text.matches("cannot write the sample").count();
    assert_eq!(said, 1, "the full disk should be said once:\n{text}");
    assert!(
        text.contains("disk is full") || text.contains("full"),
        "{text}"
    );
    std::fs::remove_file(&filler).unwrap();
    // Space is back: the held samples are written, none lost, and it says so.
    wait("the held samples written", &|| count() >= before + 10);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("accepts writes again"), "{text}");
    let o = Command::new(support::recorder::hogtrap_bin())
        .arg("--db")
        .arg(&db)
        .args(["sql", "--json", "SELECT ts_ms FROM sample ORDER BY ts_ms"])
        .output()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    support::assert_no_hole(rows.as_array().unwrap(), 2000, "across the full disk");
    let o = Command::new(support::recorder::hogtrap_bin())
        .arg("--db")
        .arg(&db)
        .args(["sql", "--csv", "PRAGMA integrity_check"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("ok"));
    let _ = child.kill();
    let _ = child.wait();
}
