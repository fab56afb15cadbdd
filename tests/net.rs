//! Per-process network accounting through the real binary: TCP over 127.0.0.1 and ::1, and
//! across a veth pair between two network namespaces this test creates (nothing leaves the
//! machine; nothing touches the host's own namespace).

mod support;

use std::process::Command;
use std::time::Duration;

use support::free_port;
use support::recorder::{Daemon, Workload};

/// Captures from the first sample on, so connections are recorded at detail level.
const CAPTURE_ALL: &str = r#"
rule { name = "capture_all", severity = "info", hold = "0s",
       when = function(s) return true end,
       on_fire = function(s) capture { duration = "30m", interval = "1s" } end }
"#;

const SERVER: &str = r#"
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port)); s.listen(1)
c, _ = s.accept()
while c.recv(1 << 16):
    pass
time.sleep(120)
"#;

/// Sends N bytes paced over a few seconds, keeps the connection open past the next samples
/// (a closed socket's last bytes are invisible), then closes and idles.
const CLIENT: &str = r#"
import socket, sys, time
host, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for _ in range(100):
    try:
        c = socket.create_connection((host, port)); break
    except OSError:
        time.sleep(0.1)
buf = b'z' * (1 << 16); sent = 0
while sent < total:
    c.sendall(buf[:min(len(buf), total - sent)]); sent += min(len(buf), total - sent)
    time.sleep(0.01)
time.sleep(3); c.close(); time.sleep(120)
"#;

const UDP_BLAST: &str = r#"
import socket, sys, time
host, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
buf = b'u' * 1200; sent = 0
while sent < total:
    s.sendto(buf, (host, port)); sent += len(buf)
    if sent % (100 * 1200) == 0: time.sleep(0.02)
time.sleep(120)
"#;

const MB: u64 = 1 << 20;

fn net_json(d: &Daemon, from: i64, to: i64) -> serde_json::Value {
    let out = d.ok(&[
        "net",
        "--from",
        &ms_text(from),
        "--to",
        &ms_text(to),
        "--json",
        "-n",
        "20",
    ]);
    serde_json::from_str(&out).unwrap()
}

fn ms_text(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).unwrap().to_string()
}

fn find(v: &serde_json::Value, pid: u32) -> &serde_json::Value {
    v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == pid)
        .unwrap_or_else(|| panic!("pid {pid} not among the talkers: {v:#}"))
}

fn within(got: f64, want: f64, pct: f64) -> bool {
    (got - want).abs() <= want * pct / 100.0
}

fn loopback_transfer(host: &str) {
    let d = Daemon::start_with_rules(
        "[sampler]\ninterval = \"1s\"\n",
        &[("capture.lua", CAPTURE_ALL)],
    );
    d.wait_samples(2, Duration::from_secs(30));
    let port = free_port().to_string();
    let total = 30 * MB;
    let t0 = jiff::Timestamp::now().as_millisecond();
    let server = Workload::python_with("hogtest-srv", SERVER, &[host, &port], &[]);
    std::thread::sleep(Duration::from_millis(300));
    let client = Workload::python_with(
        "hogtest-cli",
        CLIENT,
        &[host, &port, &total.to_string()],
        &[],
    );
    // Paced at ~6 MB/s: about 5 s of sending, 3 s open, then a couple of samples more.
    std::thread::sleep(Duration::from_secs(11));
    let t1 = jiff::Timestamp::now().as_millisecond();
    let v = net_json(&d, t0, t1);
    let procs = v["processes"].as_array().unwrap();
    let top_tx = procs
        .iter()
        .max_by(|a, b| {
            a["tx_bytes"]
                .as_f64()
                .unwrap_or(0.0)
                .total_cmp(&b["tx_bytes"].as_f64().unwrap_or(0.0))
        })
        .unwrap();
    let top_rx = procs
        .iter()
        .max_by(|a, b| {
            a["rx_bytes"]
                .as_f64()
                .unwrap_or(0.0)
                .total_cmp(&b["rx_bytes"].as_f64().unwrap_or(0.0))
        })
        .unwrap();
    assert_eq!(top_tx["pid"], client.pid(), "top sender: {v:#}");
    assert_eq!(top_tx["name"], "hogtest-cli");
    assert_eq!(top_rx["pid"], server.pid(), "top receiver: {v:#}");
    let sent = find(&v, client.pid())["tx_bytes"].as_f64().unwrap();
    let received = find(&v, server.pid())["rx_bytes"].as_f64().unwrap();
    assert!(
        within(sent, total as f64, 5.0),
        "client sent {sent}, really {total}"
    );
    assert!(
        within(received, total as f64, 5.0),
        "server received {received}, really {total}"
    );
    // The detail rows name the remote port.
    let remotes = &find(&v, client.pid())["remotes"];
    assert!(
        remotes.as_array().unwrap().iter().any(|r| r["port"]
            .as_u64()
            .map(|p| p.to_string())
            .as_deref()
            == Some(port.as_str())),
        "client remotes {remotes}"
    );
    let rows = d.scalar(&format!(
        "SELECT count(*) FROM connection WHERE pid = {} AND remote_port = {port} AND protocol = 'tcp'",
        client.pid()
    ));
    assert!(rows.as_i64().unwrap() > 0);
    // The human table names them too.
    let table = d.ok(&["net", "--from", &ms_text(t0), "--to", &ms_text(t1)]);
    assert!(
        table.contains("hogtest-cli") && table.contains("hogtest-srv"),
        "{table}"
    );
    // And `top --by net` ranks a talker first.
    let top: serde_json::Value = serde_json::from_str(&d.ok(&[
        "top",
        "--from",
        &ms_text(t0),
        "--to",
        &ms_text(t1),
        "--by",
        "net",
        "--json",
    ]))
    .unwrap();
    let first = top[0]["name"].as_str().unwrap();
    assert!(first == "hogtest-cli" || first == "hogtest-srv", "{top}");
}

#[test]
fn tcp_over_ipv4_loopback_is_attributed_to_client_and_server() {
    loopback_transfer("127.0.0.1");
}

#[test]
fn tcp_over_ipv6_loopback_is_attributed_to_client_and_server() {
    loopback_transfer("::1");
}

/// Two namespaces joined by a veth pair (10.251.0.1 in A, 10.251.0.2 in B), removed on drop.
struct Veth {
    a: String,
    b: String,
}

impl Veth {
    fn new() -> Veth {
        support::require_root("network namespaces");
        support::require_program("ip", "iproute2");
        let id = std::process::id();
        let v = Veth {
            a: format!("hgtA{id}"),
            b: format!("hgtB{id}"),
        };
        let ip = |args: &[&str]| {
            let st = Command::new("ip").args(args).status().unwrap();
            assert!(st.success(), "ip {args:?} failed");
        };
        ip(&["netns", "add", &v.a]);
        ip(&["netns", "add", &v.b]);
        ip(&[
            "-n", &v.a, "link", "add", "hgt0", "type", "veth", "peer", "name", "hgt1", "netns",
            &v.b,
        ]);
        ip(&["-n", &v.a, "addr", "add", "10.251.0.1/30", "dev", "hgt0"]);
        ip(&["-n", &v.b, "addr", "add", "10.251.0.2/30", "dev", "hgt1"]);
        for (ns, dev) in [(&v.a, "hgt0"), (&v.b, "hgt1")] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        v
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

#[test]
fn traffic_across_a_veth_pair_adds_up_with_interface_totals() {
    let veth = Veth::new();
    let mut d = support::recorder::Daemon::prepare("[sampler]\ninterval = \"1s\"\n");
    std::fs::create_dir(d.rules_dir()).unwrap();
    std::fs::write(d.rules_dir().join("capture.lua"), CAPTURE_ALL).unwrap();
    // The recorder lives in namespace A: its interfaces are lo and the veth end.
    d.spawn_with_prefix(&["ip", "netns", "exec", &veth.a]);
    d.wait_samples(2, Duration::from_secs(30));
    let in_a = ["ip", "netns", "exec", veth.a.as_str()];
    let in_b = ["ip", "netns", "exec", veth.b.as_str()];
    let port = "47001";
    let total = 20 * MB;
    let t0 = jiff::Timestamp::now().as_millisecond();
    let _server = Workload::python_with("hogtest-vsrv", SERVER, &["10.251.0.2", port], &in_b);
    std::thread::sleep(Duration::from_millis(300));
    let client = Workload::python_with(
        "hogtest-vcli",
        CLIENT,
        &["10.251.0.2", port, &total.to_string()],
        &in_a,
    );
    std::thread::sleep(Duration::from_secs(9));
    // UDP that really leaves the interface, and that no process can be credited for.
    let udp_bytes = 4 * MB;
    let udp = Workload::python_with(
        "hogtest-udp",
        UDP_BLAST,
        &["10.251.0.2", "47002", &udp_bytes.to_string()],
        &in_a,
    );
    std::thread::sleep(Duration::from_secs(4));
    let t1 = jiff::Timestamp::now().as_millisecond();

    let v = net_json(&d, t0, t1);
    let sent = find(&v, client.pid())["tx_bytes"].as_f64().unwrap();
    assert!(
        within(sent, total as f64, 5.0),
        "client sent {sent}, really {total}"
    );
    let totals = &v["totals"];
    let iface_tx = totals["tx_bytes"].as_f64().unwrap();
    let unattributed_tx = totals["unattributed_tx_bytes"].as_f64().unwrap();
    // The interface carried the TCP payload plus headers, and the UDP.
    let payload = (total + udp_bytes) as f64;
    assert!(
        iface_tx >= payload * 0.95 && iface_tx <= payload * 1.15,
        "interface sent {iface_tx} for {payload} bytes of payload"
    );
    // What is attributed plus what is not is what the interface carried; the remainder holds
    // the UDP blast and the headers.
    let attributed = iface_tx - unattributed_tx;
    assert!(
        within(attributed, sent, 5.0),
        "attributed {attributed} vs client {sent}"
    );
    assert!(
        unattributed_tx >= udp_bytes as f64 * 0.95,
        "unattributed {unattributed_tx} hides the {udp_bytes} UDP bytes"
    );
    // The UDP socket is listed under its pid at detail level.
    let udp_rows = d.scalar(&format!(
        "SELECT count(*) FROM connection WHERE pid = {} AND protocol = 'udp'",
        udp.pid()
    ));
    assert!(
        udp_rows.as_i64().unwrap() > 0,
        "no UDP socket row for the sender"
    );
}
