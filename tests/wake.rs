//! Wake-ups between clock samples, through the real binary: kernel pressure (PSI) triggers and
//! new OOM kills take a sample at once, with `sample.reason` saying why; a storm never samples
//! faster than `min_spacing`; where the kernel refuses the triggers, one start line says so
//! and the clock goes on as before.
//!
//! The triggers are the kernel's own on `/proc/pressure`; the memory cgroups are created by
//! the tests (cgroup v2's `memory.high` where the memory controller is on v2, else v1's
//! `memory.limit_in_bytes`) and removed at the end.
//!
//! This machine is shared: other work may raise CPU pressure at any time. The tests set
//! `rearm_after = "0s"` so that an earlier storm cannot swallow the one under test.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::recorder::{Daemon, Workload};

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Waits for the next clock sample after the ones already stored; returns its ts_ms.
fn next_clock_sample(d: &Daemon, timeout: Duration) -> i64 {
    let last = |d: &Daemon| {
        d.try_sql_json("SELECT coalesce(max(id), 0) AS id FROM sample")
            .and_then(|v| v[0]["id"].as_i64())
            .unwrap_or(0)
    };
    let before = last(d);
    d.wait_for("a clock sample", timeout, || {
        let v = d.try_sql_json(&format!(
            "SELECT ts_ms FROM sample WHERE id > {before} AND reason = 'clock' ORDER BY id LIMIT 1"
        ))?;
        v.get(0)?["ts_ms"].as_i64()
    })
}

/// A sample taken for `reason` with ts_ms in `[from, to]`: (id, ts_ms, interval_ms).
fn woken_sample(d: &Daemon, reason: &str, from: i64, to: i64) -> Option<(i64, i64, i64)> {
    let v = d.try_sql_json(&format!(
        "SELECT id, ts_ms, interval_ms FROM sample
         WHERE reason = '{reason}' AND ts_ms BETWEEN {from} AND {to} ORDER BY ts_ms LIMIT 1"
    ))?;
    let r = v.get(0)?;
    Some((
        r["id"].as_i64()?,
        r["ts_ms"].as_i64()?,
        r["interval_ms"].as_i64()?,
    ))
}

/// The memory and I/O triggers off (a test of one trigger).
const OFF: &str = "memory = { enabled = false, stall = \"some\", threshold = \"1s\", window = \"2s\" }\n\
                   io = { enabled = false, stall = \"some\", threshold = \"1s\", window = \"2s\" }\n";

fn burners(prefix: &str, n: usize) -> Vec<Workload> {
    (1..=n)
        .map(|i| Workload::cpu_burner(&format!("{prefix}{i}")))
        .collect()
}

#[test]
fn four_cpu_burners_just_after_a_clock_sample_wake_a_psi_cpu_sample_with_them_in_it() {
    // Only the CPU trigger: a memory or I/O firing at the same moment would name the sample.
    let d = Daemon::start(&format!(
        "[sampler]\ninterval = \"10s\"\n\n[sampler.wake]\nrearm_after = \"0s\"\noom = false\n\
         cpu = {{ stall = \"some\", threshold = \"200ms\", window = \"2s\" }}\n{OFF}"
    ));
    d.wait_samples(1, Duration::from_secs(30));
    // On a quiet host the trigger's first firing comes at the kernel's next 2 s tick after the
    // stall passes 200 ms. On a shared host whose CPU is saturated already, the trigger keeps
    // firing on its own and the kernel now and then skips a tick (seen: firings 4 s apart),
    // so the storm is started up to three times, each time just after a clock sample; the
    // misses are printed.
    let mut misses = Vec::new();
    let (t0, row) = loop {
        let clock = next_clock_sample(&d, Duration::from_secs(30));
        let t0 = now_ms();
        assert!(
            t0 - clock < 2000,
            "the burners start just after a clock sample"
        );
        let b = burners("wakeburn", 4);
        std::thread::sleep(Duration::from_secs(4));
        drop(b);
        std::thread::sleep(Duration::from_secs(1));
        // The first psi_cpu sample within 2.5 s whose process rows have (at least three of)
        // the burners. (Other work may wake one earlier, as they start.)
        let found = d.sql_json(&format!(
            "SELECT s.id, s.ts_ms, s.interval_ms FROM sample s
             WHERE s.reason = 'psi_cpu' AND s.ts_ms BETWEEN {t0} AND {t0} + 2500
               AND (SELECT count(*) FROM v_process_sample p
                    WHERE p.sample_id = s.id AND p.name LIKE 'wakeburn%' AND p.cpu_pct > 0) >= 3
             ORDER BY s.ts_ms LIMIT 1"
        ));
        if let Some(row) = found.get(0) {
            break (t0, row.clone());
        }
        misses.push(format!(
            "start {t0}: {}",
            d.sql_json(&format!(
                "SELECT ts_ms - {t0} AS after_ms, reason FROM sample WHERE ts_ms >= {t0} - 2000 ORDER BY ts_ms"
            ))
        ));
        assert!(
            misses.len() < 3,
            "no psi_cpu sample with the burners within 2.5s of their start: {misses:#?}\nlog:\n{}",
            d.log()
        );
    };
    for m in &misses {
        eprintln!("missed (the kernel skipped a tick?): {m}");
    }
    let (id, ts, interval_ms) = (
        row["id"].as_i64().unwrap(),
        row["ts_ms"].as_i64().unwrap(),
        row["interval_ms"].as_i64().unwrap(),
    );
    eprintln!("psi_cpu sample {}ms after the burners started", ts - t0);
    assert!(
        ts - t0 <= 2500,
        "psi_cpu sample {}ms after the start",
        ts - t0
    );
    // Rates are per second over the real (short) elapsed time: each burner at most one
    // core, and the processes' CPU agrees with the host's over the same interval (a rate over
    // the nominal 10 s would be a fifth of it).
    assert!(
        interval_ms < 9000,
        "a wake-up sample is off the clock: {interval_ms}ms"
    );
    let rows = d.sql_json(&format!(
        "SELECT name, cpu_pct FROM v_process_sample WHERE sample_id = {id} AND name LIKE 'wakeburn%'"
    ));
    for r in rows.as_array().unwrap() {
        assert!(
            r["cpu_pct"].as_f64().unwrap() <= 110.0,
            "a burner above one core: {r}"
        );
    }
    // A process younger than the interval has its rate over its own life (`span_ms`): over
    // the sample's interval it counts in proportion (schema.md, `process_sample.span_ms`).
    let v = d.sql_json(&format!(
        "SELECT (SELECT sum(p.cpu_pct_x100 / 100.0 * coalesce(p.span_ms, s.interval_ms) / s.interval_ms)
                 FROM process_sample p WHERE p.sample_id = {id}) / s.cpu_count AS procs,
                s.cpu_user_pct + s.cpu_system_pct AS host
         FROM sample s WHERE s.id = {id}"
    ));
    let (procs, host) = (
        v[0]["procs"].as_f64().unwrap(),
        v[0]["host"].as_f64().unwrap(),
    );
    assert!(
        procs <= host * 1.15 + 5.0 && procs >= host * 0.4,
        "processes {procs:.1}% vs host {host:.1}% of all CPUs over {interval_ms}ms"
    );
    // The start line says what is armed and that windows are 2 s multiples here.
    let line = d.scalar(
        "SELECT message FROM recorder_event WHERE message LIKE 'wake-ups:%' ORDER BY id DESC LIMIT 1",
    );
    assert!(
        line.as_str().unwrap().contains("cpu some 200ms/2s"),
        "{line}"
    );
    let status = d.ok(&["status"]);
    assert!(
        status.contains("psi_cpu    cpu some 200ms/2s: fired"),
        "{status}"
    );
}

/// A memory cgroup made for one test, removed on drop.
struct MemCgroup {
    dir: PathBuf,
}

impl MemCgroup {
    /// Limited to `limit` bytes: cgroup v2's memory.high (the kernel throttles and reclaims
    /// above it) where memory is on v2, else v1's hard limit.
    fn new(tag: &str, limit: u64) -> MemCgroup {
        support::require_root("a memory cgroup");
        let name = format!("hogtrap-wake-{tag}-{}", std::process::id());
        let v2 = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .is_ok_and(|c| c.contains("memory"));
        let (dir, files): (PathBuf, &[&str]) = if v2 {
            (Path::new("/sys/fs/cgroup").join(&name), &["memory.high"])
        } else {
            (
                Path::new("/sys/fs/cgroup/memory").join(&name),
                &["memory.limit_in_bytes"],
            )
        };
        std::fs::create_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot create the memory cgroup {}: {e}", dir.display()));
        for f in files {
            std::fs::write(dir.join(f), limit.to_string()).unwrap();
        }
        MemCgroup { dir }
    }

    /// `sh -c` that joins the cgroup and then execs `command`.
    fn run(&self, command: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.args([
            "-c",
            &format!(
                "echo $$ > {} && exec {command}",
                self.dir.join("cgroup.procs").display()
            ),
        ]);
        c
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Reads a file four times the cgroup's memory over and over through a mapping: every page
/// is reclaimed before it is read again, so the reader stalls in reclaim and refaults (with
/// no swap here, a file is what memory pressure can reclaim).
const THRASH: &str = r#"
import mmap, os, sys, time
path, size, secs = sys.argv[1], int(sys.argv[2]) << 20, float(sys.argv[3])
with open(path, 'wb') as f:
    chunk = os.urandom(1 << 20)
    for _ in range(size >> 20):
        f.write(chunk)
os.sync()
print('ready', flush=True)
m = mmap.mmap(os.open(path, os.O_RDONLY), size, prot=mmap.PROT_READ)
t, n = time.time(), 0
while time.time() - t < secs:
    for off in range(0, size, 4096):
        n += m[off]
"#;

#[test]
fn a_memory_hog_stalling_on_reclaim_wakes_a_psi_memory_sample() {
    let cg = MemCgroup::new("mem", 96 << 20);
    let d = Daemon::start(
        "[sampler]\ninterval = \"10s\"\n\n[sampler.wake]\nrearm_after = \"0s\"\n\
         cpu = { enabled = false, stall = \"some\", threshold = \"1s\", window = \"2s\" }\n",
    );
    d.wait_samples(1, Duration::from_secs(30));
    next_clock_sample(&d, Duration::from_secs(30));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("thrash.py");
    std::fs::write(&script, THRASH).unwrap();
    let t0 = now_ms();
    let mut hog = cg
        .run(&format!(
            "/usr/bin/python3 {} {} 384 8",
            script.display(),
            dir.path().join("big.bin").display()
        ))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let found = d.wait_for("a psi_memory sample", Duration::from_secs(20), || {
        woken_sample(&d, "psi_memory", t0, now_ms())
    });
    let _ = hog.kill();
    let _ = hog.wait();
    let (id, ts, _) = found;
    // Off the clock: no clock sample had come due since t0 when it was taken.
    let clock_between = d.scalar(&format!(
        "SELECT count(*) FROM sample WHERE reason = 'clock' AND ts_ms BETWEEN {t0} AND {ts}"
    ));
    let procs = d.scalar(&format!(
        "SELECT count(*) FROM process_sample WHERE sample_id = {id}"
    ));
    assert!(
        procs.as_i64().unwrap() > 0,
        "the woken sample has process rows"
    );
    let stall = d.scalar(&format!(
        "SELECT psi_mem_some_total_us FROM sample WHERE id = {id}"
    ));
    assert!(
        stall.as_i64().unwrap() > 0,
        "memory stall recorded: {stall}"
    );
    eprintln!(
        "psi_memory sample {} ms after the hog started ({clock_between} clock samples between)",
        ts - t0
    );
}

#[test]
fn an_oom_kill_in_a_memory_cgroup_is_sampled_within_a_second() {
    let cg = MemCgroup::new("oom", 50 << 20);
    let d = Daemon::start(
        "[sampler]\ninterval = \"10s\"\n\n[sampler.wake]\nrearm_after = \"0s\"\nmin_spacing = \"250ms\"\n",
    );
    d.wait_samples(1, Duration::from_secs(30));
    next_clock_sample(&d, Duration::from_secs(30));
    let mut child = cg
        .run("/usr/bin/python3 -c 'b = bytearray(b\"x\" * (200 << 20))'")
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(!child.wait().unwrap().success(), "the child was not killed");
    let kill_ts = d.wait_for(
        "the OOM kill in the record",
        Duration::from_secs(15),
        || {
            let v = d.try_sql_json(&format!("SELECT ts_ms FROM oom_kill WHERE pid = {pid}"))?;
            v.get(0)?["ts_ms"].as_i64()
        },
    );
    let (_, ts, _) = d.wait_for("an oom sample", Duration::from_secs(5), || {
        woken_sample(&d, "oom", kill_ts - 2000, kill_ts + 5000)
    });
    eprintln!(
        "oom sample {}ms after the kill's kernel timestamp",
        ts - kill_ts
    );
    assert!(
        (ts - kill_ts).abs() <= 1000,
        "the oom sample is {}ms from the kill",
        ts - kill_ts
    );
    let status = d.ok(&["status"]);
    assert!(status.contains("oom        oom"), "{status}");
}

#[test]
fn a_storm_of_wake_ups_never_samples_faster_than_min_spacing() {
    // Every firing may wake (rearm_after 0s): only the spacing holds the storm back.
    let d = Daemon::start(&format!(
        "[sampler]\ninterval = \"10s\"\n\n[sampler.wake]\nrearm_after = \"0s\"\nmin_spacing = \"3s\"\nfollow = \"6s\"\n\
         oom = false\ncpu = {{ stall = \"some\", threshold = \"200ms\", window = \"2s\" }}\n{OFF}"
    ));
    d.wait_samples(1, Duration::from_secs(30));
    let t0 = now_ms();
    let b = burners("stormburn", 4);
    std::thread::sleep(Duration::from_secs(60));
    drop(b);
    let t1 = now_ms();
    let rows = d.sql_json(&format!(
        "SELECT ts_ms, reason FROM sample WHERE ts_ms BETWEEN {t0} AND {t1} ORDER BY ts_ms"
    ));
    let rows = rows.as_array().unwrap();
    let woken = rows.iter().filter(|r| r["reason"] == "psi_cpu").count();
    assert!(woken >= 3, "the storm woke the recorder: {rows:?}");
    let ts: Vec<i64> = rows.iter().map(|r| r["ts_ms"].as_i64().unwrap()).collect();
    let closest = ts.windows(2).map(|w| w[1] - w[0]).min().unwrap();
    // Spacing counts from the end of the previous pass: timestamps are at least 3 s apart.
    assert!(
        closest >= 3000,
        "two samples {closest}ms apart (min_spacing 3s): {rows:?}"
    );
    // Faster than the clock alone, as the storm asked: more than 60s / 10s samples.
    assert!(rows.len() > 7, "{} samples in 60s", rows.len());
}

#[test]
fn refused_triggers_say_so_in_one_start_line_and_the_clock_goes_on() {
    // A directory whose pressure files reject every write: /dev/full answers ENOSPC.
    let psi = tempfile::tempdir().unwrap();
    for name in ["cpu", "memory", "io"] {
        std::os::unix::fs::symlink("/dev/full", psi.path().join(name)).unwrap();
    }
    let d = Daemon::start(&format!(
        "[sampler]\ninterval = \"1s\"\ntop_processes = 500\n\n[sampler.wake]\npsi_dir = \"{}\"\noom = false\n",
        psi.path().display()
    ));
    d.wait_samples(2, Duration::from_secs(30));
    let b = burners("refburn", 4);
    let t0 = now_ms();
    std::thread::sleep(Duration::from_secs(3));
    drop(b);
    let lines = d.sql_json("SELECT message FROM recorder_event WHERE message LIKE 'wake-ups%'");
    let lines = lines.as_array().unwrap();
    assert_eq!(lines.len(), 1, "one start line: {lines:?}");
    let line = lines[0]["message"].as_str().unwrap();
    assert!(
        line.contains("refused: cpu: ") && line.contains("No space left on device"),
        "{line}"
    );
    assert!(line.ends_with("sampling on the clock only"), "{line}");
    assert!(d.log().contains(line), "the start line is logged");
    // The clock goes on, with the burners in its samples (every process kept: on a busy
    // shared host they need not make a top 10).
    let t = Instant::now();
    let n = d.wait_for(
        "clock samples with the burners",
        Duration::from_secs(10),
        || {
            let v = d.try_sql_json(&format!(
                "SELECT count(DISTINCT sample_id) AS n FROM v_process_sample
             WHERE ts_ms >= {t0} AND name LIKE 'refburn%'"
            ))?;
            v[0]["n"].as_i64().filter(|n| *n >= 2)
        },
    );
    assert!(n >= 2, "after {:?}", t.elapsed());
    let other = d.scalar("SELECT count(*) FROM sample WHERE reason != 'clock'");
    assert_eq!(other.as_i64(), Some(0));
    let status = d.ok(&["status"]);
    assert!(
        status.contains("wake-ups   wake-ups: none armed; refused"),
        "{status}"
    );
}

/// A rule sees why a sample was taken (`s.reason`); a capture it starts on a wake-up's sample
/// keeps the pre-trigger buffer's samples in detail and links the woken sample.
#[test]
fn a_rule_firing_on_a_wake_up_sample_captures_with_the_pre_trigger_window() {
    let cg = MemCgroup::new("cap", 50 << 20);
    let rule = r#"
rule {
  name = "woken",
  severity = "warning",
  clear_after = "1m",
  summary = "woken by {reason}",
  when = function(s)
    if s.reason ~= "oom" then
      return false
    end
    return true, { reason = s.reason }
  end,
  on_fire = function(s, ctx)
    incident {}
    capture { duration = "5s", interval = "1s" }
  end,
}
"#;
    let d = Daemon::start_with_rules(
        &format!(
            "[sampler]\ninterval = \"2s\"\n\n[escalation]\npre_trigger = \"30s\"\n\n\
             [sampler.wake]\nrearm_after = \"0s\"\nmin_spacing = \"250ms\"\n\
             cpu = {{ enabled = false, stall = \"some\", threshold = \"1s\", window = \"2s\" }}\n{OFF}"
        ),
        &[("woken.lua", rule)],
    );
    d.wait_samples(5, Duration::from_secs(60));
    let mut child = cg
        .run("/usr/bin/python3 -c 'b = bytearray(b\"x\" * (200 << 20))'")
        .spawn()
        .unwrap();
    assert!(!child.wait().unwrap().success(), "the child was not killed");
    let incident = d.wait_for("the woken incident", Duration::from_secs(20), || {
        let v = d.try_sql_json(
            "SELECT id, opened_ms, title FROM incident WHERE rule = 'woken' LIMIT 1",
        )?;
        v.get(0).cloned()
    });
    assert_eq!(incident["title"], "woken by oom");
    let id = incident["id"].as_i64().unwrap();
    let opened = incident["opened_ms"].as_i64().unwrap();
    // The sample that fired it is the oom one, and it is the incident's.
    let woke = d.scalar(&format!(
        "SELECT s.reason FROM incident_sample i JOIN sample s ON s.id = i.sample_id
         WHERE i.incident_id = {id} AND s.ts_ms = {opened}"
    ));
    assert_eq!(woke, "oom");
    // The pre-trigger window (clock samples every 2 s before it) is in detail now.
    let before = d.scalar(&format!(
        "SELECT count(*) FROM incident_sample i JOIN sample s ON s.id = i.sample_id
         WHERE i.incident_id = {id} AND s.level = 1 AND s.ts_ms < {opened} AND s.reason = 'clock'"
    ));
    assert!(
        before.as_i64().unwrap() >= 3,
        "pre-trigger detail samples: {before}"
    );
}
