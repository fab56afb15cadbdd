//! `/metrics` with real parts: Debian's Prometheus scrapes a running daemon every second,
//! `promtool check metrics` accepts the exposition, a CPU burner's program name comes first
//! in the top-process CPU metric, 1,000 more processes leave the series count under its
//! bound; and hostile clients (500 idle connections, a header sent a byte a second) delay no
//! sample.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::fleet::{get, http, isolated_daemon, Prometheus};
use support::recorder::Daemon;
use support::{free_port, require_program, wait_until};

const TOP_N: usize = 10;

fn exporting(port: u16) -> String {
    format!(
        "[sampler]\ninterval = \"1s\"\n\n[export.prometheus]\nenabled = true\n\
         listen = \"127.0.0.1:{port}\"\ntop_n = {TOP_N}\n"
    )
}

fn value(r: &serde_json::Value) -> f64 {
    r["value"][1]
        .as_str()
        .unwrap_or("nan")
        .parse()
        .unwrap_or(f64::NAN)
}

#[test]
fn prometheus_scrapes_the_daemon_and_sees_the_burner_first() {
    let promtool = require_program("/usr/bin/promtool", "prometheus");
    let port = free_port();
    let (d, dir, _) = isolated_daemon(&exporting(port), &[], "hogtest-prom", 4);
    d.wait_samples(2, Duration::from_secs(30));

    // The exposition as a client without an Accept header gets it: promtool's own check.
    let (status, text) = get(port, "/metrics").expect("/metrics answers");
    assert_eq!(status, 200, "{text}");
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("pid="), "no pid label:\n{text}");

    let prom = Prometheus::start(port);
    assert!(
        wait_until(Duration::from_secs(60), || {
            prom.query("up{job=\"hogtrap\"}").first().map(value) == Some(1.0)
        }),
        "up{{job=\"hogtrap\"}} never 1: {:?}\n{}\n{}",
        prom.query("up"),
        prom.log(),
        d.log()
    );
    let mut last = Vec::new();
    let first = wait_until(Duration::from_secs(60), || {
        last = prom.query("topk(1, hogtrap_top_process_cpu_ratio{job=\"hogtrap\"})");
        last.first()
            .is_some_and(|r| r["metric"]["program"] == "hogtest-prom")
    });
    assert!(first, "the burner is not first by CPU: {last:?}");
    let bound = hogtrap::export::series_bound(TOP_N, 0);
    let count_series = || {
        prom.query("count({__name__=~\"hogtrap_.+\", job=\"hogtrap\"})")
            .first()
            .map(value)
            .unwrap_or(f64::NAN)
    };
    let before = count_series();
    assert!(
        before > 30.0 && before <= bound as f64,
        "{before} series, bound {bound}"
    );

    // A thousand more programs: the series count stays under the bound.
    std::fs::write(dir.path().join("go"), "").unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || prom
            .query("hogtrap_procs{job=\"hogtrap\"}")
            .first()
            .is_some_and(|r| value(r) >= 1000.0)),
        "the daemon never saw the 1,000 processes: {:?}",
        prom.query("hogtrap_procs")
    );
    // A few more scrapes with them running.
    std::thread::sleep(Duration::from_secs(3));
    let after = count_series();
    assert!(
        after <= bound as f64,
        "{after} series with 1,000 more processes, bound {bound}"
    );
    let (_, text) = get(port, "/metrics").unwrap();
    let exported = text.lines().filter(|l| l.starts_with("hogtrap_")).count();
    assert!(
        exported <= bound,
        "{exported} series exported, bound {bound}"
    );
}

#[test]
fn idle_connections_and_a_slow_header_delay_no_sample() {
    let port = free_port();
    let d = Daemon::start(&exporting(port));
    d.wait_samples(2, Duration::from_secs(30));
    let t0 = jiff::Timestamp::now().as_millisecond();
    let started = Instant::now();

    // 500 connections that never send anything.
    let idle: Vec<TcpStream> = (0..500)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    assert!(idle.len() >= 400, "only {} connections opened", idle.len());
    // One that sends a request header a byte a second.
    let slow = std::thread::spawn(move || {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            return (0, false);
        };
        let header =
            b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        let mut sent = 0;
        for b in header {
            if s.write_all(&[*b]).is_err() {
                return (sent, true); // the server cut it
            }
            sent += 1;
            std::thread::sleep(Duration::from_secs(1));
        }
        let mut buf = [0u8; 1];
        let closed = matches!(s.read(&mut buf), Ok(0) | Err(_));
        (sent, closed)
    });
    while started.elapsed() < Duration::from_secs(12) {
        std::thread::sleep(Duration::from_millis(500));
    }
    let (sent, cut) = slow.join().unwrap();
    drop(idle);
    let t1 = jiff::Timestamp::now().as_millisecond();

    let rows = d.sql_json(&format!(
        "SELECT ts_ms FROM sample WHERE ts_ms BETWEEN {t0} AND {t1} ORDER BY ts_ms"
    ));
    let rows = rows.as_array().unwrap();
    assert!(rows.len() >= 9, "{} samples in 12 s", rows.len());
    support::assert_no_hole(rows, 1500, "beside 500 idle connections and a slow header");
    assert!(
        cut && sent < 20,
        "the slow client sent {sent} bytes and was {}cut off",
        if cut { "" } else { "not " }
    );
    // The endpoint serves again once the hostile clients are gone.
    assert!(
        wait_until(Duration::from_secs(10), || http(
            port,
            "GET",
            "/metrics",
            &[],
            ""
        )
        .is_some_and(|(s, _)| s == 200)),
        "/metrics does not answer after the attack: {}",
        d.log()
    );
}
