//! A TCP connection opened, used for 5 MB and closed between two samples, through the real
//! binary at 1 s and the baseline level (no capture): `hogtrap net` over that range shows the
//! server side's bytes on the listener's owner and the client side as a closed connection with
//! its endpoints (its process cannot be known once the socket is gone). Loopback only.

mod support;

use std::time::{Duration, Instant};

use support::free_port;
use support::recorder::{Daemon, Workload};

/// Accepts connections one after another, reads each to EOF and closes it.
const SERVER: &str = r#"
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port)); s.listen(8)
while True:
    c, _ = s.accept()
    while c.recv(1 << 20):
        pass
    c.close()
"#;

/// Connects, sends argv[3] bytes, closes; writes "LOCAL_PORT ELAPSED_MS" to argv[4]; idles.
const CLIENT: &str = r#"
import socket, sys, time
host, port, total, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
t = time.monotonic()
c = socket.create_connection((host, port))
local = c.getsockname()[1]
c.sendall(b'q' * total)
c.shutdown(socket.SHUT_WR)
c.recv(1)
c.close()
ms = (time.monotonic() - t) * 1000
open(out + '.tmp', 'w').write(f"{local} {ms:.0f}")
import os; os.rename(out + '.tmp', out)
time.sleep(120)
"#;

const MB5: f64 = 5.0 * 1024.0 * 1024.0;

fn ms_text(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).unwrap().to_string()
}

fn within(got: f64, want: f64, pct: f64) -> bool {
    (got - want).abs() <= want * pct / 100.0
}

fn closed_connection_shows_in_net(host: &str) {
    let d = Daemon::start("[sampler]\ninterval = \"1s\"\n");
    d.wait_samples(2, Duration::from_secs(30));
    let port = free_port();
    let t0 = jiff::Timestamp::now().as_millisecond();
    let server = Workload::python_with("hogtest-lsn", SERVER, &[host, &port.to_string()], &[]);
    std::thread::sleep(Duration::from_millis(1500));

    // Start right after a sample, so that the whole connection fits between two.
    let mut attempt = 0;
    let (client, client_port) = loop {
        attempt += 1;
        let n = d.sample_count();
        d.wait_for("the next sample", Duration::from_secs(10), || {
            (d.sample_count() > n).then_some(())
        });
        let out = d.dir.path().join(format!("client-{attempt}.txt"));
        let started = Instant::now();
        let client = Workload::python_with(
            "hogtest-short",
            CLIENT,
            &[
                host,
                &port.to_string(),
                &(MB5 as u64).to_string(),
                out.to_str().unwrap(),
            ],
            &[],
        );
        let text = d.wait_for("the client's report", Duration::from_secs(20), || {
            std::fs::read_to_string(&out).ok()
        });
        let mut it = text.split_whitespace().map(|x| x.parse::<u64>().unwrap());
        let (local, ms) = (it.next().unwrap(), it.next().unwrap());
        assert!(ms < 200, "the connection took {ms} ms");
        // Python's start included: the connection surely lay between two samples if the whole
        // run did not reach the next one.
        if d.sample_count() == n + 1 && started.elapsed() < Duration::from_millis(800) {
            break (client, local as u16);
        }
        assert!(
            attempt < 5,
            "no connection fitted between two samples in 5 tries"
        );
    };
    let n = d.sample_count();
    d.wait_samples(n + 2, Duration::from_secs(20));
    let t1 = jiff::Timestamp::now().as_millisecond();

    let out = d.ok(&[
        "net",
        "--from",
        &ms_text(t0),
        "--to",
        &ms_text(t1),
        "--json",
        "-n",
        "50",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let server_row = v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == server.pid())
        .unwrap_or_else(|| panic!("the listener's owner is not among the talkers: {v:#}"));
    let received = server_row["rx_bytes"].as_f64().unwrap();
    assert!(
        within(received, MB5, 5.0),
        "server side {received} bytes, really {MB5}"
    );
    let closed = v["closed_unattributed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["local_port"] == client_port && c["remote_port"] == port)
        .unwrap_or_else(|| panic!("the client's closed connection is not listed: {v:#}"));
    assert_eq!(closed["remote_addr"], host);
    let sent = closed["tx_bytes"].as_f64().unwrap();
    assert!(
        within(sent, MB5, 5.0),
        "client side {sent} bytes, really {MB5}"
    );
    assert!(
        v["processes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["pid"] != client.pid()),
        "the client's bytes are not given to it: its socket was gone before any sample saw it"
    );
    let table = d.ok(&["net", "--from", &ms_text(t0), "--to", &ms_text(t1)]);
    assert!(
        table.contains("closed TCP connections with no owner found")
            && table.contains(&format!(":{client_port}")),
        "{table}"
    );
}

#[test]
fn closed_ipv4_loopback_connection_shows_in_net() {
    closed_connection_shows_in_net("127.0.0.1");
}

#[test]
fn closed_ipv6_loopback_connection_shows_in_net() {
    closed_connection_shows_in_net("::1");
}
