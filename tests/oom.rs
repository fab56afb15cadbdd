//! A real kernel OOM kill (in a memory cgroup this test creates, so nothing else is at risk)
//! ends up in the record: "the kernel killed X at T".

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::recorder::Daemon;

/// A memory cgroup limited to 50 MiB (cgroup v2, or v1's memory controller), removed on drop.
struct MemCgroup {
    dir: PathBuf,
    procs: PathBuf,
}

impl MemCgroup {
    fn new() -> MemCgroup {
        support::require_root("a memory cgroup");
        let name = format!("hogtrap-test-{}", std::process::id());
        let v2 = PathBuf::from("/sys/fs/cgroup/cgroup.controllers");
        let v2_memory = std::fs::read_to_string(&v2).is_ok_and(|c| c.contains("memory"));
        let (dir, limit_file) = if v2_memory {
            (PathBuf::from("/sys/fs/cgroup").join(&name), "memory.max")
        } else {
            (
                PathBuf::from("/sys/fs/cgroup/memory").join(&name),
                "memory.limit_in_bytes",
            )
        };
        std::fs::create_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot create the memory cgroup {}: {e}", dir.display()));
        std::fs::write(dir.join(limit_file), (50u64 << 20).to_string()).unwrap();
        MemCgroup {
            procs: dir.join("cgroup.procs"),
            dir,
        }
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[test]
fn a_kernel_oom_kill_is_recorded_with_victim_name_and_rss() {
    let cg = MemCgroup::new();
    let d = Daemon::start("[sampler]\ninterval = \"1s\"\n");
    d.wait_samples(2, Duration::from_secs(30));
    // The child joins the cgroup, then becomes python3 and allocates past the limit.
    let script = format!(
        "echo $$ > {} && exec /usr/bin/python3 -c 'b = bytearray(b\"x\" * (200 << 20))'",
        cg.procs.display()
    );
    let mut child = Command::new("/bin/sh")
        .args(["-c", &script])
        .spawn()
        .unwrap();
    let pid = child.id();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was not killed");
    let row = d.wait_for(
        "the OOM kill in the record",
        Duration::from_secs(15),
        || {
            let v = d.try_sql_json(&format!(
                "SELECT ts_ms, name, rss_bytes FROM oom_kill WHERE pid = {pid}"
            ))?;
            v.get(0).cloned()
        },
    );
    assert_eq!(row["name"], "python3");
    let rss = row["rss_bytes"].as_i64().unwrap();
    assert!(rss > 40 << 20 && rss < 80 << 20, "victim RSS {rss}");
    let ts = row["ts_ms"].as_i64().unwrap();
    let now = jiff::Timestamp::now().as_millisecond();
    assert!(
        (now - ts).abs() < 60_000,
        "kill time {ts} is not now ({now})"
    );
    let status = d.ok(&["status"]);
    assert!(
        status.contains(&format!("the kernel killed python3 (pid {pid}")),
        "{status}"
    );
}

/// Runs a python3 child in the cgroup that allocates past its limit; returns its pid once
/// the kernel killed it.
fn oom_victim(cg: &MemCgroup) -> u32 {
    let script = format!(
        "echo $$ > {} && exec /usr/bin/python3 -c 'b = bytearray(b\"x\" * (200 << 20))'",
        cg.procs.display()
    );
    let mut child = Command::new("/bin/sh")
        .args(["-c", &script])
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(!child.wait().unwrap().success(), "the child was not killed");
    pid
}

#[test]
fn an_oom_kill_from_before_the_first_start_is_recorded_but_fires_nothing() {
    let cg = MemCgroup::new();
    let before = oom_victim(&cg);
    // A fresh store, the shipped oom_kill rule, and an email channel: whatever the rule
    // decided would be an incident, a queued alert or a capture in the store.
    let config = format!(
        "[sampler]\ninterval = \"1s\"\n\n\
         [email]\nenabled = true\nserver = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
         from = \"hogtrap <hogtrap@example.org>\"\nto = [\"ops@example.org\"]\n",
        support::free_port()
    );
    let d = Daemon::start_with_shipped_rules(&config, &["oom_kill.lua"]);
    d.wait_for(
        "the old kill in the record",
        Duration::from_secs(30),
        || {
            let v = d.try_sql_json(&format!("SELECT name FROM oom_kill WHERE pid = {before}"))?;
            v.get(0).cloned()
        },
    );
    let recorded = d.sample_count();
    d.wait_samples(recorded + 3, Duration::from_secs(30));
    let status = d.ok(&["status"]);
    assert!(
        status.contains(&format!("the kernel killed python3 (pid {before}")),
        "{status}"
    );
    assert_eq!(d.scalar("SELECT count(*) FROM incident"), 0);
    assert_eq!(d.scalar("SELECT count(*) FROM alert"), 0);
    assert_eq!(d.scalar("SELECT count(*) FROM capture"), 0);
    assert_eq!(
        d.scalar("SELECT status FROM rule_state WHERE rule = 'oom_kill'"),
        "inactive"
    );

    // A kill while it runs is news: the rule fires on it.
    let during = oom_victim(&cg);
    let title = d.wait_for("an oom_kill incident", Duration::from_secs(30), || {
        let v = d.try_sql_json("SELECT title FROM incident WHERE rule = 'oom_kill'")?;
        v.get(0)
            .and_then(|r| r["title"].as_str().map(str::to_string))
    });
    assert!(title.contains(&format!("pid {during}")), "{title}");
}
