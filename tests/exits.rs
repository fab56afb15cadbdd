//! Exit accounting through the real binary: a storm of short-lived children is attributed to
//! its parent and its program (the parent's own getrusage is the truth), without the privilege
//! the unseen CPU stands in for it, and range totals are counter deltas (a `dd` that lived
//! between two samples, a writer that started and ended within the range).

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::recorder::Daemon;

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).unwrap().to_string()
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Runs the storm (`tests/support/storm.pl`) as `ht_forker`; returns its pid and the CPU its
/// children used as its getrusage(RUSAGE_CHILDREN) reports, seconds.
fn storm(n: u32, ms: u32, batch: u32, prefix: &[&str]) -> (u32, f64) {
    let script = support::support_file("storm.pl");
    let mut argv: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
    argv.extend([
        "perl".into(),
        "-e".into(),
        format!("$0 = 'ht_forker'; do '{}' or die $@", script.display()),
        n.to_string(),
        ms.to_string(),
        batch.to_string(),
        "0".into(),
    ]);
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the storm");
    let out = BufReader::new(child.stdout.take().unwrap());
    let (mut pid, mut cpu) = (0, f64::NAN);
    for line in out.lines() {
        let line = line.unwrap();
        if let Some(p) = line.strip_prefix("ready ") {
            pid = p.trim().parse().unwrap();
        } else if let Some(c) = line.strip_prefix("children_cpu_s ") {
            cpu = c.trim().parse().unwrap();
        }
    }
    assert!(child.wait().unwrap().success());
    assert!(
        pid > 0 && cpu > 0.0,
        "the storm did not report (pid {pid}, cpu {cpu})"
    );
    (pid, cpu)
}

/// `hogtrap top --group` over a range, as JSON.
fn groups(d: &Daemon, from: i64, to: i64, by: &str, group: &str) -> serde_json::Value {
    let out = d.ok(&[
        "top",
        "--from",
        &rfc3339(from),
        "--to",
        &rfc3339(to),
        "--by",
        by,
        "--group",
        group,
        "-n",
        "50",
        "--json",
    ]);
    serde_json::from_str(&out).unwrap()
}

fn group_total(v: &serde_json::Value, key: &str) -> f64 {
    v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == key)
        .and_then(|g| g["total"].as_f64())
        .unwrap_or(0.0)
}

/// Waits until two more samples are stored after `ms` (exits are folded one sample late).
fn settle(d: &Daemon, ms: i64) {
    d.wait_for(
        "two samples after the workload",
        Duration::from_secs(30),
        || {
            let n = d.scalar(&format!("SELECT count(*) FROM sample WHERE ts_ms > {ms}"));
            (n.as_i64().unwrap_or(0) >= 3).then_some(())
        },
    );
}

/// Wake-up samples off: with them, exit accounting and range totals disagree with the
/// truth (issue 15's uneven intervals against issue 11's counters; see the issues' notes).
const WAKE_OFF: &str = "[sampler]\ninterval = \"1s\"\n\n[sampler.wake]\nenabled = false\n";

#[test]
fn a_storm_of_short_children_is_attributed_to_its_parent_and_program() {
    support::require_root("taskstats exit notifications need CAP_NET_ADMIN");
    // The shipped rule with a shorter hold, set in the config as an admin would: PSI's avg10
    // takes ~7 s to reach 50 % and the default 15 s hold comes on top, so with the default
    // the incident opens about 22 s in, as this 20-odd-second storm ends (on a fast machine,
    // after it: the culprit is then whoever is left).
    let config = format!("{WAKE_OFF}\n[rules.cpu_pressure]\nhold = \"5s\"\n");
    let d = Daemon::start_with_shipped_rules(&config, &["cpu_pressure.lua"]);
    d.wait_samples(2, Duration::from_secs(30));
    let from = now_ms();
    let (pid, truth) = storm(2000, 20, 100, &[]);
    let end = now_ms();
    settle(&d, end);
    let to = now_ms();

    let by_parent = groups(&d, from, to, "cpu", "parent");
    let parent = group_total(&by_parent, &pid.to_string());
    let by_name = groups(&d, from, to, "cpu", "name");
    let name = group_total(&by_name, "ht_child");
    eprintln!(
        "storm: truth {truth:.2} CPU-s; --group parent {parent:.2} ({:.1} %); --group name \
         {name:.2} ({:.1} %)",
        parent / truth * 100.0,
        name / truth * 100.0
    );
    assert!(parent >= 0.9 * truth, "{by_parent:#}");
    assert!(name >= 0.9 * truth, "{by_name:#}");
    // Not more than was burned either (with a margin for the parent's own CPU).
    assert!(name <= 1.1 * truth, "{by_name:#}");
    let exited = by_name["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == "ht_child")
        .and_then(|g| g["exited"].as_i64())
        .unwrap_or(0);
    eprintln!("exits of ht_child recorded: {exited} of 2000");
    assert!(
        exited >= 2000,
        "{exited} exits of ht_child recorded: {by_name:#}"
    );
    assert_eq!(by_name["exits"]["lost"], 0, "lost exits: {by_name:#}");
    // The shipped CPU-pressure rule opened an incident during the storm whose first CPU
    // culprit is the forker's children or their program.
    let culprits = d.sql_json(&format!(
        "SELECT c.name FROM incident i JOIN incident_culprit c ON c.incident_id = i.id \
         WHERE i.rule = 'cpu_pressure' AND c.resource = 'cpu' AND c.rank = 1 \
         AND i.opened_ms BETWEEN {from} AND {end}"
    ));
    let names: Vec<&str> = culprits
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    eprintln!("cpu_pressure incidents' first culprits: {names:?}");
    assert!(
        names
            .iter()
            .any(|n| n.contains(&format!("children of {pid} ")) || n.contains("all ht_child")),
        "no cpu_pressure incident blames the storm first: {names:?}\n{}",
        d.log()
    );
}

#[test]
fn without_the_privilege_the_unseen_cpu_stands_for_the_storm() {
    support::require_root("setpriv drops CAP_NET_ADMIN from a root daemon");
    support::require_program("setpriv", "util-linux");
    let mut d = Daemon::prepare(WAKE_OFF);
    d.spawn_with_prefix(&[
        "setpriv",
        "--inh-caps=-net_admin",
        "--bounding-set=-net_admin",
        "--",
    ]);
    d.wait_samples(2, Duration::from_secs(30));
    let log = d.log();
    assert_eq!(
        log.matches("exit accounting is off").count(),
        1,
        "one line at start:\n{log}"
    );
    let from = now_ms();
    let (_, truth) = storm(1000, 20, 100, &[]);
    let end = now_ms();
    settle(&d, end);
    let unseen = d
        .scalar(&format!(
            "SELECT sum(cpu_unseen_pct / 100.0 * interval_ms / 1000.0) FROM sample \
             WHERE ts_ms > {from} AND ts_ms <= (SELECT min(ts_ms) FROM sample WHERE ts_ms > {end})"
        ))
        .as_f64()
        .unwrap();
    eprintln!(
        "unprivileged storm: truth {truth:.2} CPU-s, unseen {unseen:.2} ({:.1} %)",
        unseen / truth * 100.0
    );
    assert!(
        (unseen - truth).abs() <= 0.2 * truth,
        "unseen {unseen:.2} CPU-s against {truth:.2}"
    );
    assert_eq!(
        d.scalar("SELECT count(*) FROM process_exit").as_i64(),
        Some(0)
    );
}

/// Bytes `hogtrap top --by io` gives process `pid` over a range (by pid: other programs on
/// the host, a `python3` of another test among them, are not the writer).
fn io_total(d: &Daemon, from: i64, to: i64, pid: u32) -> f64 {
    let out = d.ok(&[
        "top",
        "--from",
        &rfc3339(from),
        "--to",
        &rfc3339(to),
        "--by",
        "io",
        "-n",
        "100",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|p| p["pid"] == pid)
        .map(|p| p["total"].as_f64().unwrap())
        .sum()
}

/// Runs a program to its end; returns its pid and what it printed.
fn run(cmd: &mut Command) -> (u32, String) {
    let child = cmd
        .stderr(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    (pid, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `dd` of 50 MB between two samples and a writer of 160 MiB over several: `hogtrap top
/// --from --to --by io` gives each what it wrote within 5 % (the writer: what the kernel
/// counted for it, as it read its own `/proc/self/io` at its end; on a host under memory
/// pressure that was up to 10 % above the 160 MiB it wrote). The writer's rows (its rates
/// times the real time each covers) plus its exit remainder are that count within 5 % too:
/// the path of a process that started before a range.
fn range_totals(config: &str) -> Daemon {
    support::require_root("taskstats exit notifications need CAP_NET_ADMIN");
    let d = Daemon::start(config);
    d.wait_samples(2, Duration::from_secs(30));
    // Direct I/O needs a real file system, not a tmpfs.
    let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
    let target = dir.path().join("dd.out");
    let from = now_ms();
    let (dd, _) = run(Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "count=50", "oflag=direct"])
        .arg(format!("of={}", target.display())));
    // A writer that lives several samples: 160 MiB in 2 MiB steps, each flushed.
    let writer = dir.path().join("writer.out");
    let (py, said) = run(Command::new("python3")
        .args([
            "-c",
            "import os, sys, time\n\
             f = open(sys.argv[1], 'wb')\n\
             chunk = b'x' * (2 << 20)\n\
             for i in range(80):\n    f.write(chunk); f.flush(); os.fsync(f.fileno()); time.sleep(0.04)\n\
             io = dict(l.split(': ') for l in open('/proc/self/io').read().splitlines())\n\
             print('io', int(io['read_bytes']) + int(io['write_bytes']))\n",
        ])
        .arg(&writer));
    let own: f64 = said
        .trim()
        .strip_prefix("io ")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("the writer said {said:?}"));
    let end = now_ms();
    settle(&d, end);
    let to = now_ms();
    let reasons = d.sql_json(&format!(
        "SELECT reason, count(*) AS n, min(interval_ms) AS shortest_ms FROM sample \
         WHERE ts_ms BETWEEN {from} AND {to} GROUP BY reason"
    ));
    let dd_total = io_total(&d, from, to, dd);
    let py_total = io_total(&d, from, to, py);
    // The writer's rows and its exit remainder, as for a range that began after it started.
    let rows = d
        .scalar(&format!(
            "SELECT (SELECT coalesce(sum((ps.read_bps + ps.write_bps) \
                        * coalesce(ps.span_ms, s.interval_ms) / 1000.0), 0) \
                     FROM process_sample ps JOIN sample s ON s.id = ps.sample_id \
                     JOIN process p ON p.id = ps.process_id WHERE p.pid = {py} \
                     AND s.ts_ms >= {from}) \
                  + (SELECT coalesce(sum(read_bytes + write_bytes), 0) FROM process_exit \
                     WHERE pid = {py})"
        ))
        .as_f64()
        .unwrap();
    let life = d
        .scalar(&format!(
            "SELECT sum(life_read_bytes + life_write_bytes) FROM process_exit WHERE pid = {py}"
        ))
        .as_f64()
        .unwrap_or(0.0);
    let mib = |b: f64| b / 1048576.0;
    eprintln!(
        "samples {reasons}; dd: {:.2} MiB of 50; writer: {:.2} MiB of 160, the kernel's \
         count {:.2} MiB (its rows and remainder {:.2} MiB, its exit record {:.2} MiB)",
        mib(dd_total),
        mib(py_total),
        mib(own),
        mib(rows),
        mib(life)
    );
    let want_dd = 50.0 * 1048576.0;
    assert!(
        (dd_total - want_dd).abs() <= 0.05 * want_dd,
        "dd total {dd_total}"
    );
    assert!(
        own >= 0.95 * 160.0 * 1048576.0,
        "the writer's own count {own}"
    );
    assert!(
        (py_total - own).abs() <= 0.05 * own,
        "writer total {py_total}, its own count {own}"
    );
    assert!(
        (rows - own).abs() <= 0.05 * own,
        "writer's rows {rows}, its own count {own}"
    );
    d
}

#[test]
fn range_totals_are_the_bytes_written() {
    range_totals(WAKE_OFF);
}

/// Wake-ups on, with I/O and CPU triggers low enough that the writer's fsyncs fire them and
/// close spacing: samples at uneven intervals among the clock's. And `hogtrap status` counts
/// the firings of the last 24 h: at least one per sample woken.
#[test]
fn range_totals_are_the_bytes_written_with_wake_ups() {
    let d = range_totals(
        "[sampler]\ninterval = \"2s\"\n\n[sampler.wake]\nmin_spacing = \"300ms\"\n\
         follow = \"3s\"\nrearm_after = \"0s\"\n\
         io = { stall = \"some\", threshold = \"50ms\", window = \"2s\" }\n\
         cpu = { stall = \"some\", threshold = \"50ms\", window = \"2s\" }\n",
    );
    let status: serde_json::Value = serde_json::from_str(&d.ok(&["status", "--json"])).unwrap();
    let triggers = status["wake"]["triggers"].as_array().unwrap();
    eprintln!("status: {triggers:?}");
    let n = |t: &serde_json::Value, k: &str| t[k].as_i64().unwrap_or(0);
    // A sample woken by several firings is named after one of them: per trigger, at least
    // as many firings as samples named after it.
    assert!(
        triggers
            .iter()
            .all(|t| n(t, "fired_in_window") >= n(t, "samples_woken")),
        "{status:#}"
    );
    let woken: i64 = triggers.iter().map(|t| n(t, "samples_woken")).sum();
    assert!(woken >= 1, "no wake-up sample: {status:#}");
}
