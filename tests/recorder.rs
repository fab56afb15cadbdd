//! The recorder core through the real binary: a real SQLite file, real child processes, real
//! signals.

mod support;

use std::time::Duration;

use support::recorder::{Daemon, Workload};

const ONE_SECOND: &str = "[sampler]\ninterval = \"1s\"\n";

fn top_first(d: &Daemon, by: &str) -> serde_json::Value {
    let out = d.ok(&["top", "--at", "now", "--by", by, "-n", "3", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["processes"][0].clone()
}

#[test]
fn top_names_the_cpu_memory_and_io_hogs() {
    let cpu = Workload::cpu_burner("hogtest-cpu");
    let mem = Workload::memory_holder("hogtest-mem", 300);
    let io = Workload::disk_writer("hogtest-io");
    let d = Daemon::start(ONE_SECOND);
    d.wait_samples(4, Duration::from_secs(30));

    // Each must lead its ranking in a recent sample (a moment of contention from another
    // process on a 2-CPU machine can take one sample; it cannot take them all).
    let leads = |by: &str, name: &str, ok: &dyn Fn(&serde_json::Value) -> bool| {
        d.wait_for(
            &format!("{name} first by {by}"),
            Duration::from_secs(15),
            || {
                let first = top_first(&d, by);
                (first["name"] == name && ok(&first)).then_some(first)
            },
        )
    };
    let first = leads("cpu", "hogtest-cpu", &|p| {
        p["cpu_pct"].as_f64().unwrap() >= 75.0
    });
    assert_eq!(first["pid"], cpu.pid());
    let cpu_pct = first["cpu_pct"].as_f64().unwrap();
    assert!((75.0..=105.0).contains(&cpu_pct), "burner at {cpu_pct}%");

    let want = 300.0 * 1024.0 * 1024.0;
    let first = leads("mem", "hogtest-mem", &|_| true);
    assert_eq!(first["pid"], mem.pid());
    let rss = first["rss_bytes"].as_f64().unwrap();
    assert!(
        (rss - want).abs() / want < 0.10,
        "holder RSS {rss} not within 10% of {want}"
    );

    let first = leads("io", "hogtest-io", &|p| {
        p["write_bytes_per_s"].as_f64().unwrap() > 1_000_000.0
    });
    assert_eq!(first["pid"], io.pid());

    // The human table names them too.
    let table = d.ok(&["top", "--at", "now", "--by", "cpu", "-n", "5"]);
    assert!(table.contains("hogtest-cpu"), "{table}");

    // Over a range: the burner leads by CPU-seconds.
    let out = d.ok(&[
        "top", "--from", "1h ago", "--to", "now", "--by", "cpu", "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["name"], "hogtest-cpu", "{v}");
    assert!(v[0]["total"].as_f64().unwrap() > 1.0);
}

#[test]
fn seed_queries_run_unchanged() {
    let mut d = Daemon::start(ONE_SECOND);
    d.wait_samples(3, Duration::from_secs(30));
    let rows = d.sql_json("SELECT HostName,DateAndTime,Load FROM savetop");
    let rows = rows.as_array().unwrap();
    assert!(rows.len() >= 3);
    let host = rows[0]["HostName"].as_str().unwrap();
    assert!(!host.is_empty());
    // "YYYY-MM-DD HH:MM:SS" as the seed stored it.
    let t = rows[0]["DateAndTime"].as_str().unwrap();
    assert_eq!(t.len(), 19, "{t}");
    assert!(rows[0]["Load"].as_f64().is_some());
    // The seed's count of busy samples, checked against the rows read another way. Stopped
    // first, so no sample lands between the reads; and the host's load is whatever it is, so
    // the oldest sample is set below 1.4 and the newest above it: the count has rows on both
    // sides to tell apart.
    d.signal(libc::SIGTERM);
    d.wait_exit(Duration::from_secs(10));
    let c = rusqlite::Connection::open(&d.db).unwrap();
    c.execute_batch(
        "UPDATE sample SET load1 = 0.5 WHERE id = (SELECT min(id) FROM sample);
         UPDATE sample SET load1 = 2.0 WHERE id = (SELECT max(id) FROM sample);",
    )
    .unwrap();
    drop(c);
    let loads: Vec<f64> = d
        .sql_json("SELECT Load FROM savetop")
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Load"].as_f64().unwrap())
        .collect();
    let busy = loads.iter().filter(|&&load| load > 1.4).count() as i64;
    assert!(0 < busy && busy < loads.len() as i64, "{loads:?}");
    let n = d.scalar("SELECT COUNT(HostName) FROM savetop WHERE Load>1.4");
    let all = d.scalar("SELECT COUNT(HostName) FROM savetop");
    assert_eq!(n.as_i64().unwrap(), busy, "{loads:?}");
    assert_eq!(all.as_i64().unwrap(), loads.len() as i64);
    assert!(n.as_i64().unwrap() <= all.as_i64().unwrap());
    let top = d.scalar("SELECT TopProcesses FROM savetop LIMIT 1");
    assert!(top.as_str().unwrap().lines().count() >= 1);
}

#[test]
fn kill_9_leaves_a_sound_db_and_the_restart_records_the_gap() {
    let mut d = Daemon::start(ONE_SECOND);
    d.wait_samples(3, Duration::from_secs(30));
    d.signal(libc::SIGKILL);
    d.wait_exit(Duration::from_secs(5));
    let check = d.scalar("PRAGMA integrity_check");
    assert_eq!(check, "ok");
    let before = d.sample_count();
    std::thread::sleep(Duration::from_millis(2500));
    d.spawn();
    d.wait_samples(before + 2, Duration::from_secs(30));
    let gaps = d.sql_json("SELECT message, from_ms, to_ms FROM recorder_event WHERE kind = 'gap'");
    let gaps = gaps.as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    let msg = gaps[0]["message"].as_str().unwrap();
    assert!(msg.contains("ended without stopping"), "{msg}");
    let span = gaps[0]["to_ms"].as_i64().unwrap() - gaps[0]["from_ms"].as_i64().unwrap();
    assert!(span >= 2500, "gap of {span} ms");
}

#[test]
fn sigterm_finishes_and_exits_zero() {
    let mut d = Daemon::start(ONE_SECOND);
    d.wait_samples(2, Duration::from_secs(30));
    d.signal(libc::SIGTERM);
    let st = d.wait_exit(Duration::from_secs(10));
    assert_eq!(st.code(), Some(0), "{}", d.log());
    let last = d.scalar("SELECT kind FROM recorder_event ORDER BY id DESC LIMIT 1");
    assert_eq!(last, "stop");
    assert_eq!(d.scalar("PRAGMA integrity_check"), "ok");
}

#[test]
fn malformed_config_is_one_line_naming_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[store]\npath = \"x.db\"\n\n[sampler]\ninterval = 10\n",
    )
    .unwrap();
    let o = std::process::Command::new(support::recorder::hogtrap_bin())
        .args(["run", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("bad.toml:5: sampler.interval: expected a duration like \"10s\", got 10"),
        "{err}"
    );
    assert!(!dir.path().join("x.db").exists());
}

#[test]
fn config_writable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("open.toml");
    std::fs::write(&cfg, "").unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o666)).unwrap();
    let o = std::process::Command::new(support::recorder::hogtrap_bin())
        .args(["run", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("writable by group or others"), "{err}");
}

#[test]
fn a_long_sql_read_delays_no_sample() {
    let d = Daemon::start(ONE_SECOND);
    d.wait_samples(2, Duration::from_secs(30));
    let t0 = jiff::Timestamp::now().as_millisecond();
    // A read that holds a snapshot for several seconds.
    let o = d.cli(&[
        "sql",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 30000000) \
         SELECT count(*) FROM c, (SELECT count(*) FROM sample)",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t1 = jiff::Timestamp::now().as_millisecond();
    assert!(
        t1 - t0 >= 2000,
        "the read was too short to prove anything: {} ms",
        t1 - t0
    );
    std::thread::sleep(Duration::from_millis(1500));
    let rows = d.sql_json(&format!(
        "SELECT ts_ms, late_ms FROM sample WHERE ts_ms BETWEEN {t0} AND {t1} ORDER BY ts_ms"
    ));
    let rows = rows.as_array().unwrap();
    let secs = (t1 - t0) / 1000;
    assert!(
        rows.len() as i64 >= secs - 1,
        "{} samples in {secs} s",
        rows.len()
    );
    support::assert_no_hole(rows, 1900, "during the read");
    let gaps = d.scalar(&format!(
        "SELECT count(*) FROM recorder_event WHERE kind IN ('gap', 'dropped') AND ts_ms >= {t0}"
    ));
    assert_eq!(gaps, 0);
}

#[test]
fn sql_refuses_writes() {
    let d = Daemon::start(ONE_SECOND);
    d.wait_samples(1, Duration::from_secs(30));
    let o = d.cli(&["sql", "DELETE FROM sample"]);
    assert!(!o.status.success());
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("read-only"), "{err}");
    assert!(d.sample_count() >= 1);
}

#[test]
fn sighup_reloads_and_keeps_the_old_config_on_error() {
    let d = Daemon::start(ONE_SECOND);
    d.wait_samples(1, Duration::from_secs(30));
    let cfg = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, format!("{cfg}\n[bogus]\nx = 1\n")).unwrap();
    d.signal(libc::SIGHUP);
    d.wait_for("the refused reload logged", Duration::from_secs(10), || {
        d.log().contains("reload refused").then_some(())
    });
    let n = d.sample_count();
    d.wait_samples(n + 2, Duration::from_secs(10));
    std::fs::write(&d.config, cfg.replace("\"1s\"", "\"2s\"")).unwrap();
    d.signal(libc::SIGHUP);
    d.wait_samples(n + 4, Duration::from_secs(15));
    assert_eq!(
        d.scalar("SELECT value FROM recorder_state WHERE key = 'interval_ms'"),
        "2000"
    );
}

#[test]
fn status_says_recording() {
    let d = Daemon::start(ONE_SECOND);
    d.wait_samples(2, Duration::from_secs(30));
    let out = d.ok(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["recording"], true, "{v}");
    assert!(v["samples"].as_i64().unwrap() >= 2);
}
