//! Real sockets, real child processes, real `/proc`; traffic only on 127.0.0.1 and ::1.

use super::owners::{OwnerMap, SocketKey, Unowned};
use super::*;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

const MB20: u64 = 20 * 1024 * 1024;

/// A python3 child we talk to line by line; killed on drop.
struct Py {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Py {
    fn spawn(script: &str, args: &[&str]) -> Py {
        Py::spawn_cmd(Command::new("python3").arg("-c").arg(script).args(args))
    }

    fn spawn_cmd(cmd: &mut Command) -> Py {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 is installed");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Py {
            child,
            stdin,
            stdout,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn line(&mut self) -> String {
        let mut s = String::new();
        self.stdout.read_line(&mut s).unwrap();
        assert!(!s.is_empty(), "child {} exited early", self.pid());
        s.trim().to_string()
    }

    fn say(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{text}").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Listens on argv[1], prints the port, accepts one connection, reads argv[2] bytes, prints
/// "got N", then waits for stdin to close (so its socket stays open for the next collect).
const SERVER: &str = r#"
import socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
ls = socket.socket(fam, socket.SOCK_STREAM)
ls.bind((sys.argv[1], 0)); ls.listen(1)
print(ls.getsockname()[1], flush=True)
c, _ = ls.accept()
want = int(sys.argv[2]); got = 0
while got < want:
    b = c.recv(1 << 20)
    if not b: break
    got += len(b)
print("got", got, flush=True)
sys.stdin.read()
"#;

/// Connects to argv[1]:argv[2], prints its local port, waits for a "go" line if argv[4] ==
/// "wait", sends argv[3] bytes, prints "sent", then waits for stdin to close.
const CLIENT: &str = r#"
import socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.connect((sys.argv[1], int(sys.argv[2])))
print(s.getsockname()[1], flush=True)
if sys.argv[4] == "wait": sys.stdin.readline()
buf = b"x" * (1 << 20); left = int(sys.argv[3])
while left > 0:
    n = s.send(buf[:min(left, len(buf))]); left -= n
print("sent", flush=True)
sys.stdin.read()
"#;

fn close_enough(measured: f64, expected: u64) -> bool {
    (measured - expected as f64).abs() <= 0.05 * expected as f64
}

fn bytes(rate: f64, sample: &NetSample) -> f64 {
    rate * sample.interval.expect("an interval").as_secs_f64()
}

/// The client has sent its 20 MB and the server got them all; after the last ACKs, the
/// sample of the transfer.
fn after_transfer(client: &mut Py, server: &mut Py, collector: &mut NetCollector) -> NetSample {
    assert_eq!(client.line(), "sent");
    assert_eq!(server.line(), format!("got {MB20}"));
    settle();
    let s = collector.collect(Instant::now());
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    s
}

/// The process's rate in the sample (zero when it has none).
fn rate_of(s: &NetSample, pid: u32) -> NetRate {
    s.per_pid.get(&pid).copied().unwrap_or_default()
}

/// Lets the last ACKs arrive (delayed ACK is at most 40 ms on Linux loopback).
fn settle() {
    std::thread::sleep(Duration::from_millis(250));
}

fn transfer_is_attributed(host: &str, connect_before_first_collect: bool) {
    let mut server = Py::spawn(SERVER, &[host, &MB20.to_string()]);
    let port = server.line();
    let mut collector = NetCollector::new().unwrap();
    let mode = if connect_before_first_collect {
        "wait"
    } else {
        "nowait"
    };
    let mut client = None;
    let mut client_port = 0u16;
    if connect_before_first_collect {
        let mut c = Py::spawn(CLIENT, &[host, &port, &MB20.to_string(), mode]);
        client_port = c.line().parse().unwrap(); // connected
        client = Some(c);
        settle(); // let the server accept
    }
    let first = collector.collect(Instant::now());
    assert!(first.interval.is_none());
    assert!(first.per_pid.values().all(|r| *r == NetRate::default()));
    let mut client = match client {
        Some(mut c) => {
            c.say("go");
            c
        }
        None => {
            let mut c = Py::spawn(CLIENT, &[host, &port, &MB20.to_string(), mode]);
            client_port = c.line().parse().unwrap();
            c
        }
    };
    let s = after_transfer(&mut client, &mut server, &mut collector);

    let c = rate_of(&s, client.pid());
    let v = rate_of(&s, server.pid());
    assert!(
        close_enough(bytes(c.tx_bytes_per_s, &s), MB20),
        "client tx {} bytes, expected {MB20}",
        bytes(c.tx_bytes_per_s, &s)
    );
    assert!(
        close_enough(bytes(v.rx_bytes_per_s, &s), MB20),
        "server rx {} bytes, expected {MB20}",
        bytes(v.rx_bytes_per_s, &s)
    );
    assert!(bytes(c.rx_bytes_per_s, &s) < 0.01 * MB20 as f64);
    assert!(bytes(v.tx_bytes_per_s, &s) < 0.01 * MB20 as f64);

    // The client's connection row names the server's port, and the reverse.
    let port: u16 = port.parse().unwrap();
    let row = s
        .connections()
        .into_iter()
        .find(|r| r.pid == Some(client.pid()) && r.remote_port == port)
        .expect("a connection row of the client naming the server port");
    assert_eq!(row.protocol, Protocol::Tcp);
    assert_eq!(row.local_port, client_port);
    assert_eq!(row.remote_addr, host);
    assert!(close_enough(bytes(row.tx_bytes_per_s.unwrap(), &s), MB20));
    assert!(s.connections().iter().any(|r| r.pid == Some(server.pid())
        && r.remote_port == client_port
        && r.state == "ESTAB"));

    // Loopback traffic is attributed as local, and lo carried at least those bytes.
    assert!(s.attributed_local.tx_bytes_per_s >= c.tx_bytes_per_s);
    assert!(bytes(s.interfaces_loopback.tx_bytes_per_s, &s) >= MB20 as f64);
    let sum: f64 = s.per_pid.values().map(|r| r.tx_bytes_per_s).sum();
    assert!((sum - s.attributed.tx_bytes_per_s).abs() < 1e-6 * sum.max(1.0));
    client.say("bye");
    server.say("bye");
}

#[test]
fn tcp_ipv4_connection_opened_in_the_interval_counts_all_its_bytes() {
    transfer_is_attributed("127.0.0.1", false);
}

#[test]
fn tcp_ipv6_established_connection_counts_the_delta() {
    transfer_is_attributed("::1", true);
}

#[test]
fn tcp_ipv6_connection_opened_in_the_interval_counts_all_its_bytes() {
    transfer_is_attributed("::1", false);
}

#[test]
fn tcp_ipv4_established_connection_counts_the_delta() {
    transfer_is_attributed("127.0.0.1", true);
}

/// Writes argv[1] bytes to the socket inherited as fd 3 after each "go" line.
const INHERITOR: &str = r#"
import socket, sys
s = socket.socket(fileno=3)
for line in sys.stdin:
    buf = b"y" * int(line); left = len(buf)
    while left > 0:
        left -= s.send(buf[len(buf) - left:])
    print("sent", flush=True)
"#;

#[test]
fn socket_shared_after_fork_counts_once_for_the_lowest_pid() {
    use std::os::fd::AsRawFd;
    const N: u64 = 8 * 1024 * 1024;
    let mut server = Py::spawn(SERVER, &["127.0.0.1", &(2 * N).to_string()]);
    let port: u16 = server.line().parse().unwrap();
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let local_port = stream.local_addr().unwrap().port();
    let fd = stream.as_raw_fd();
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(INHERITOR);
    // SAFETY: dup2 is async-signal-safe; the copy at fd 3 has no FD_CLOEXEC, so the child
    // holds the same socket as this process.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself would keep FD_CLOEXEC: clear the flag instead.
            let rc = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = Py::spawn_cmd(&mut cmd);
    let me = std::process::id();
    let lowest = me.min(child.pid());
    let highest = me.max(child.pid());

    let mut collector = NetCollector::new().unwrap();
    collector.collect(Instant::now());
    child.say(&N.to_string());
    assert_eq!(child.line(), "sent");
    settle();
    let s = collector.collect(Instant::now());
    let rows: Vec<_> = s
        .connections()
        .into_iter()
        .filter(|r| r.local_port == local_port && r.remote_port == port)
        .collect();
    assert_eq!(
        rows.len(),
        1,
        "one row per socket, not per holder: {rows:?}"
    );
    assert_eq!(rows[0].pid, Some(lowest));
    let low = s.per_pid.get(&lowest).copied().unwrap_or_default();
    assert!(close_enough(bytes(low.tx_bytes_per_s, &s), N), "{low:?}");
    let high = s.per_pid.get(&highest).copied().unwrap_or_default();
    assert_eq!(high.tx_bytes_per_s, 0.0, "no double counting");

    // This process lets go of its copy: the child alone holds it now and gets the bytes
    // (the cached owner fails verification and its fds are rescanned).
    drop(stream);
    if lowest == me {
        child.say(&N.to_string());
        assert_eq!(child.line(), "sent");
        settle();
        let s = collector.collect(Instant::now());
        let c = rate_of(&s, child.pid());
        assert!(close_enough(bytes(c.tx_bytes_per_s, &s), N), "{c:?}");
        assert_eq!(
            s.per_pid.get(&me).map(|r| r.tx_bytes_per_s).unwrap_or(0.0),
            0.0
        );
        // (Found by the verification miss, or by a rescan that a parallel test's new socket
        // triggered: either way, the fake-/proc test pins down which.)
    }
    server.say("bye");
}

/// Sends datagrams to 127.0.0.1:argv[1] after printing its own port.
const UDP_SENDER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
for _ in range(100):
    s.sendto(b"z" * 1000, ("127.0.0.1", int(sys.argv[1])))
print("sent", flush=True)
sys.stdin.read()
"#;

#[test]
fn udp_socket_is_listed_with_its_pid_and_no_rates() {
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let sink_port = sink.local_addr().unwrap().port();
    let mut sender = Py::spawn(UDP_SENDER, &[&sink_port.to_string()]);
    let port: u16 = sender.line().parse().unwrap();
    assert_eq!(sender.line(), "sent");
    let mut collector = NetCollector::new().unwrap();
    collector.collect(Instant::now());
    let s = collector.collect(Instant::now());
    let row = s
        .connections()
        .into_iter()
        .find(|r| r.protocol == Protocol::Udp && r.local_port == port)
        .expect("the sender's UDP socket");
    assert_eq!(row.pid, Some(sender.pid()));
    assert_eq!(row.state, "UNCONN");
    assert_eq!(row.tx_bytes_per_s, None);
    let mine = s
        .connections()
        .into_iter()
        .find(|r| r.protocol == Protocol::Udp && r.local_port == sink_port)
        .expect("this process's UDP socket");
    assert_eq!(mine.pid, Some(std::process::id()));
    assert!(
        !s.per_pid.contains_key(&sender.pid()),
        "UDP bytes are not per-process"
    );
}

/// Run as `nobody` by `unprivileged_collector_says_once_what_it_cannot_attribute`; does nothing
/// when run directly.
#[test]
#[ignore = "helper run in a child process as nobody"]
fn unprivileged_probe() {
    if std::env::var_os("HOGTRAP_NET_PROBE").is_none() {
        return;
    }
    let port: u16 = std::env::var("HOGTRAP_NET_PROBE").unwrap().parse().unwrap();
    let mut collector = NetCollector::new().unwrap();
    let s = collector.collect(Instant::now());
    let row = s
        .connections()
        .into_iter()
        .find(|r| r.local_port == port && r.state == "LISTEN")
        .expect("the root-owned listener is in the dump");
    println!("ROOT_SOCKET_PID {:?}", row.pid);
    println!(
        "NOTICE {}",
        collector.permission_notice(&s).unwrap_or_default()
    );
    let s = collector.collect(Instant::now());
    println!("SECOND {:?}", collector.permission_notice(&s));
}

#[test]
fn unprivileged_collector_says_once_what_it_cannot_attribute() {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("not root: this test needs to run the probe as another user");
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "collect::net::tests::unprivileged_probe",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HOGTRAP_NET_PROBE", port.to_string())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ROOT_SOCKET_PID None"), "{stdout}");
    let notice = stdout
        .lines()
        .find_map(|l| l.strip_prefix("NOTICE "))
        .unwrap();
    assert!(
        notice.contains("sockets could not be attributed"),
        "{notice}"
    );
    assert!(
        notice.contains("run as root or grant CAP_SYS_PTRACE"),
        "{notice}"
    );
    assert!(
        stdout.contains("SECOND None"),
        "the notice is given once: {stdout}"
    );
}

// ---- the owner cache on a /proc-shaped tree built by the test ----

/// A fake `/proc` holding the fd links `(pid, fd, target)`.
fn fake_proc(fds: &[(u32, u32, &str)]) -> tempfile::TempDir {
    let proc = tempfile::tempdir().unwrap();
    for &(pid, fd, target) in fds {
        add_fd(proc.path(), pid, fd, target);
    }
    proc
}

fn add_fd(root: &std::path::Path, pid: u32, fd: u32, target: &str) {
    let dir = root.join(format!("{pid}/fd"));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join(fd.to_string());
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(target, link).unwrap();
}

fn keys(inodes: &[u64]) -> Vec<SocketKey> {
    let uid = unsafe { libc::getuid() };
    inodes
        .iter()
        .map(|&inode| SocketKey { inode, uid })
        .collect()
}

#[test]
fn owner_cache_rescans_only_what_changed() {
    let proc = fake_proc(&[
        (10, 3, "socket:[100]"),
        (10, 4, "/dev/null"),
        (20, 5, "socket:[100]"), // shared after fork
        (20, 6, "socket:[200]"),
    ]);
    let root = proc.path();
    let mut map = OwnerMap::new(root, Duration::from_secs(3600));
    let t0 = Instant::now();
    map.refresh(&keys(&[100, 200]), t0);
    assert_eq!(map.owner(100), Some(10), "lowest pid holds a shared socket");
    assert_eq!(map.holders(100).len(), 2);
    assert_eq!(map.owner(200), Some(20));
    let after_full = map.stats();
    assert_eq!(after_full.full_scans, 1);
    assert_eq!(after_full.pid_scans, 2);

    // Nothing new: no /proc work at all.
    map.refresh(&keys(&[100, 200]), t0);
    assert_eq!(map.stats(), after_full);

    // A new process with a new socket: one listing, one pid scanned.
    add_fd(root, 30, 3, "socket:[300]");
    map.refresh(&keys(&[100, 200, 300]), t0);
    assert_eq!(map.owner(300), Some(30));
    assert_eq!(map.stats().pid_scans, after_full.pid_scans + 1);
    assert_eq!(map.stats().proc_listings, after_full.proc_listings + 1);

    // An old process opens a socket: found by rescanning the known pids of its uid.
    add_fd(root, 20, 7, "socket:[400]");
    map.refresh(&keys(&[100, 200, 300, 400]), t0);
    assert_eq!(map.owner(400), Some(20));

    // A socket nobody holds: searched once, then remembered as unowned.
    map.refresh(&keys(&[100, 200, 300, 400, 999]), t0);
    assert_eq!(map.unowned_reason(999), Some(Unowned::NoFd));
    let before = map.stats();
    map.refresh(&keys(&[100, 200, 300, 400, 999]), t0);
    assert_eq!(map.stats().pid_scans, before.pid_scans);

    // The lowest holder closes its copy: verification misses, the next holder owns it.
    std::fs::remove_file(root.join("10/fd/3")).unwrap();
    assert_eq!(map.verify_owner(100), Some(20));
    assert_eq!(
        map.stats().verification_misses,
        before.verification_misses + 1
    );

    // A vanished pid is forgotten at the next listing.
    std::fs::remove_dir_all(root.join("30")).unwrap();
    assert_eq!(map.verify_owner(300), None);
    assert_eq!(map.owner(300), None);

    // The periodic full scan retries the unowned.
    add_fd(root, 40, 3, "socket:[999]");
    map.refresh(&keys(&[100, 200, 400, 999]), t0 + Duration::from_secs(3600));
    assert_eq!(map.owner(999), Some(40));
    assert_eq!(map.stats().full_scans, 2);
}

#[test]
fn garbage_fd_links_and_missing_proc_do_not_panic() {
    let proc = fake_proc(&[(10, 3, "socket:["), (10, 4, "socket:[12x]")]);
    let root = proc.path();
    std::fs::create_dir_all(root.join("notapid/fd")).unwrap();
    let mut map = OwnerMap::new(root, Duration::from_secs(60));
    map.refresh(&keys(&[12]), Instant::now());
    assert_eq!(map.owner(12), None);
    let mut gone = OwnerMap::new("/nonexistent/proc", Duration::from_secs(60));
    gone.refresh(&keys(&[1, 2, 3]), Instant::now());
    assert_eq!(gone.verify_owner(1), None);
}

#[test]
fn collector_can_move_to_the_sampling_thread() {
    fn is_send<T: Send>() {}
    is_send::<NetCollector>();
    is_send::<NetSample>();
}

#[test]
fn first_sample_has_no_interval_and_zero_rates() {
    let mut collector = NetCollector::new().unwrap();
    let s = collector.collect(Instant::now());
    assert!(s.interval.is_none());
    assert!(s.per_pid.values().all(|r| *r == NetRate::default()));
    assert!(s.connections().iter().all(|c| c.tx_bytes_per_s.is_none()));
    assert!(s.interfaces.iter().any(|i| i.name == "lo"));
    assert_eq!(s.unattributed_external(), NetRate::default());
}

#[test]
fn fill_helpers_write_host_and_process_rows() {
    let mut s = NetSample {
        interfaces_external: NetRate {
            tx_bytes_per_s: 1000.0,
            rx_bytes_per_s: 500.0,
        },
        attributed: NetRate {
            tx_bytes_per_s: 700.0,
            rx_bytes_per_s: 900.0,
        },
        attributed_local: NetRate {
            tx_bytes_per_s: 100.0,
            rx_bytes_per_s: 100.0,
        },
        ..NetSample::default()
    };
    s.per_pid.insert(
        7,
        NetRate {
            tx_bytes_per_s: 700.0,
            rx_bytes_per_s: 900.0,
        },
    );
    s.unreadable_pids.insert(9);
    let mut host = HostRow::default();
    s.fill_host(&mut host);
    assert_eq!(host.net_tx_bytes_per_s, 1000.0);
    assert_eq!(host.net_unattributed_tx_bytes_per_s, 400.0);
    // More attributed than the interfaces saw (counter timing): clamped, never negative.
    assert_eq!(host.net_unattributed_rx_bytes_per_s, 0.0);
    let mut rows = vec![ProcessRow::default(); 3];
    rows[0].id.pid = 7;
    rows[1].id.pid = 8;
    rows[2].id.pid = 9;
    s.fill_processes(&mut rows);
    assert_eq!(rows[0].net_tx_bytes_per_s, Some(700.0));
    assert_eq!(rows[1].net_tx_bytes_per_s, Some(0.0));
    assert_eq!(rows[2].net_tx_bytes_per_s, None);
}

// ---- traffic that really leaves an interface: a veth pair between two namespaces ----

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("the command exists");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Says "ready" once running (so in its own namespace), then binds and listens only after a
/// "go" line (the address is configured meanwhile).
fn ns_server_script() -> String {
    format!("import sys\nprint('ready', flush=True)\nsys.stdin.readline()\n{SERVER}")
}

/// Sends argv[2] bytes of UDP to argv[1]:9 in 1,400-byte datagrams.
const UDP_BLAST: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 0))
print(s.getsockname()[1], flush=True)
left = int(sys.argv[2])
while left > 0:
    s.sendto(b"u" * 1400, (sys.argv[1], 9)); left -= 1400
print("sent", flush=True)
sys.stdin.read()
"#;

/// This test's thread moves into a fresh network namespace (A); a server child runs in a second
/// one (B); a veth pair joins them (10.250.0.1 in A, 10.250.0.2 in B). Nothing touches the
/// host's namespace. The collector, created in A, sees the client, not the server.
#[test]
fn veth_traffic_adds_up_with_interface_totals() {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("not root: cannot create network namespaces");
        return;
    }
    // A thread of its own: unshare(CLONE_NEWNET) moves only the calling thread, and children
    // spawned from it inherit its namespace.
    std::thread::spawn(veth_scenario).join().unwrap();
}

fn veth_scenario() {
    // SAFETY: plain syscall; affects only this thread.
    assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare");
    run(Command::new("ip").args(["link", "set", "lo", "up"]));
    let mut server = Py::spawn_cmd(
        Command::new("unshare")
            .args(["-n", "python3", "-c"])
            .arg(ns_server_script())
            .args(["10.250.0.2", &MB20.to_string()]),
    );
    assert_eq!(server.line(), "ready", "the server runs in its namespace");
    let b = server.pid().to_string();
    run(Command::new("ip").args([
        "link", "add", "htv0", "type", "veth", "peer", "name", "htv1",
    ]));
    run(Command::new("ip").args(["link", "set", "htv1", "netns", &b]));
    run(Command::new("ip").args(["addr", "add", "10.250.0.1/30", "dev", "htv0"]));
    run(Command::new("ip").args(["link", "set", "htv0", "up"]));
    for args in [
        &["addr", "add", "10.250.0.2/30", "dev", "htv1"][..],
        &["link", "set", "htv1", "up"],
        &["link", "set", "lo", "up"],
    ] {
        run(Command::new("nsenter")
            .args(["-t", &b, "-n", "ip"])
            .args(args));
    }
    server.say("go");
    let port = server.line();

    let mut collector = NetCollector::new().unwrap();
    collector.collect(Instant::now());
    let mut client = Py::spawn(CLIENT, &["10.250.0.2", &port, &MB20.to_string(), "nowait"]);
    client.line();
    let s = after_transfer(&mut client, &mut server, &mut collector);

    let c = rate_of(&s, client.pid());
    let client_tx = bytes(c.tx_bytes_per_s, &s);
    assert!(close_enough(client_tx, MB20), "client tx {client_tx}");
    assert!(
        !s.per_pid.contains_key(&server.pid()),
        "the server is in another namespace"
    );
    assert_eq!(
        s.attributed_local,
        NetRate::default(),
        "nothing here is loopback"
    );
    let veth = s
        .interfaces
        .iter()
        .find(|i| i.name == "htv0")
        .expect("htv0");
    let veth_tx = bytes(veth.rate.tx_bytes_per_s, &s);
    let external_tx = bytes(s.interfaces_external.tx_bytes_per_s, &s);
    assert_eq!(
        external_tx, veth_tx,
        "htv0 is the only external interface here"
    );
    // The interface carries the payload plus headers: a little more, never less.
    assert!(
        veth_tx >= client_tx && veth_tx < 1.05 * MB20 as f64,
        "veth tx {veth_tx}"
    );
    let unattributed_tx = bytes(s.unattributed_external().tx_bytes_per_s, &s);
    assert!(
        (unattributed_tx - (veth_tx - client_tx)).abs() < 1.0
            && unattributed_tx < 0.05 * MB20 as f64,
        "unattributed tx {unattributed_tx}"
    );
    let mut host = HostRow::default();
    s.fill_host(&mut host);
    assert_eq!(
        host.net_tx_bytes_per_s,
        s.interfaces_external.tx_bytes_per_s
    );
    assert_eq!(
        host.net_unattributed_tx_bytes_per_s,
        s.unattributed_external().tx_bytes_per_s
    );

    // A UDP sender: its bytes leave through htv0 and show as unattributed, its socket is listed.
    const UDP_BYTES: u64 = 4 * 1024 * 1024;
    let mut udp = Py::spawn(UDP_BLAST, &["10.250.0.2", &UDP_BYTES.to_string()]);
    let udp_port: u16 = udp.line().parse().unwrap();
    assert_eq!(udp.line(), "sent");
    let s = collector.collect(Instant::now());
    let unattributed_tx = bytes(s.unattributed_external().tx_bytes_per_s, &s);
    assert!(
        unattributed_tx >= 0.95 * UDP_BYTES as f64,
        "UDP shows as unattributed: {unattributed_tx}"
    );
    assert!(bytes(s.attributed.tx_bytes_per_s, &s) < 0.01 * UDP_BYTES as f64);
    let row = s
        .sockets
        .iter()
        .find(|r| r.protocol == Protocol::Udp && r.local.port() == udp_port)
        .expect("the UDP sender's socket");
    assert_eq!(row.pid, Some(udp.pid()));
    assert_eq!(row.rate, None);
    client.say("bye");
    server.say("bye");
}

// ---- lookups of known sockets, and closed sockets, in a namespace of the test's own ----

/// Runs `f` on a thread moved into a fresh network namespace with `lo` up: no other process
/// opens connections there, so the collector's choice between lookups and walks is the test's.
fn in_fresh_netns(f: fn()) -> bool {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("not root: cannot create network namespaces");
        return false;
    }
    std::thread::spawn(move || {
        // SAFETY: plain syscall; affects only this thread.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare");
        run(Command::new("ip").args(["link", "set", "lo", "up"]));
        f();
    })
    .join()
    .unwrap();
    true
}

/// The same established transfer measured by a collector that looks sockets up and by one
/// that walks the tables, side by side: the same bytes for each process.
#[test]
fn lookups_measure_an_established_transfer_as_a_walk_does() {
    in_fresh_netns(|| {
        for host in ["127.0.0.1", "::1"] {
            let mut server = Py::spawn(SERVER, &[host, &MB20.to_string()]);
            let port = server.line();
            let mut client = Py::spawn(CLIENT, &[host, &port, &MB20.to_string(), "wait"]);
            client.line();
            settle();
            let mut looks = NetCollector::new().unwrap();
            looks.set_udp(false);
            let mut walks = NetCollector::new().unwrap();
            walks.set_udp(false);
            walks.set_tcp_listing(TcpListing::Dump);
            for c in [&mut looks, &mut walks] {
                c.collect(Instant::now()); // first: a walk, sets the baseline
                c.collect(Instant::now()); // nothing opened since: lookups
            }
            assert_eq!(
                looks.listing_stats().dumps,
                1,
                "{:?}",
                looks.listing_stats()
            );
            assert_eq!(looks.listing_stats().lookup_passes, 1);
            client.say("go");
            assert_eq!(client.line(), "sent");
            assert_eq!(server.line(), format!("got {MB20}"));
            settle();
            let a = looks.collect(Instant::now());
            let b = walks.collect(Instant::now());
            assert_eq!(
                looks.listing_stats().lookup_passes,
                2,
                "{:?}",
                looks.listing_stats()
            );
            assert!(a.problems.is_empty(), "{:?}", a.problems);
            for pid in [client.pid(), server.pid()] {
                let x = a.per_pid.get(&pid).copied().unwrap_or_default();
                let y = b.per_pid.get(&pid).copied().unwrap_or_default();
                let (xb, yb) = (
                    bytes(x.tx_bytes_per_s + x.rx_bytes_per_s, &a),
                    bytes(y.tx_bytes_per_s + y.rx_bytes_per_s, &b),
                );
                assert!(close_enough(xb, MB20), "{host} pid {pid}: {xb} by lookups");
                assert!(
                    (xb - yb).abs() <= 0.001 * yb,
                    "{host}: lookups {xb}, walk {yb}"
                );
            }
            // The listing shows the same sockets (the listener from the cache).
            let listed = |s: &NetSample| {
                let mut v: Vec<_> = s
                    .sockets
                    .iter()
                    .map(|k| (k.local, k.remote, k.pid))
                    .collect();
                v.sort();
                v
            };
            assert_eq!(listed(&a), listed(&b));
            client.say("bye");
            server.say("bye");
        }
    });
}

/// Accepts connections one after another; reads each to EOF, prints "got N", closes it.
const ACCEPT_LOOP: &str = r#"
import socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
ls = socket.socket(fam, socket.SOCK_STREAM)
ls.bind((sys.argv[1], 0)); ls.listen(8)
print(ls.getsockname()[1], flush=True)
while True:
    c, _ = ls.accept(); got = 0
    while True:
        b = c.recv(1 << 20)
        if not b: break
        got += len(b)
    c.close()
    print("got", got, flush=True)
"#;

/// On each line "N": connects to argv[1]:argv[2], sends N bytes, closes, prints its port.
/// With argv[3] == "early", connects at start and waits for the first line to send.
const SHORT_CLIENT: &str = r#"
import socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
early = None
if sys.argv[3] == "early":
    early = socket.create_connection((sys.argv[1], int(sys.argv[2])))
    print(early.getsockname()[1], flush=True)
for line in sys.stdin:
    s = early or socket.create_connection((sys.argv[1], int(sys.argv[2])))
    early = None
    port = s.getsockname()[1]
    s.sendall(b"c" * int(line)); s.close()
    print(port, flush=True)
"#;

const MB5: u64 = 5 * 1024 * 1024;

/// A connection opened, used for 5 MB and closed between two samples: the server side goes
/// to the listener's owner, the client side is recorded unattributed with its endpoints, and
/// on `lo` attributed + unattributed is what the interface carried.
#[test]
fn a_connection_closed_between_samples_is_accounted() {
    in_fresh_netns(|| {
        for host in ["127.0.0.1", "::1"] {
            let mut server = Py::spawn(ACCEPT_LOOP, &[host, "0"]);
            let port: u16 = server.line().parse().unwrap();
            let mut client = Py::spawn(SHORT_CLIENT, &[host, &port.to_string(), "late"]);
            let mut c = NetCollector::new().unwrap();
            c.set_udp(false);
            assert!(
                c.sees_closed_sockets(),
                "the destroy groups could not be joined"
            );
            c.collect(Instant::now());
            c.collect(Instant::now());
            client.say(&MB5.to_string());
            let client_port: u16 = client.line().parse().unwrap();
            assert_eq!(server.line(), format!("got {MB5}"));
            settle();
            let s = c.collect(Instant::now());
            assert!(s.problems.is_empty(), "{:?}", s.problems);

            let v = rate_of(&s, server.pid());
            let server_rx = bytes(v.rx_bytes_per_s, &s);
            assert!(
                close_enough(server_rx, MB5),
                "{host}: server rx {server_rx}"
            );
            assert!(
                !s.per_pid.contains_key(&client.pid()),
                "the client's socket had no owner left"
            );
            let row = s
                .closed
                .iter()
                .find(|k| k.local.port() == client_port && k.remote.port() == port)
                .expect("the client's closed socket, with its endpoints");
            assert_eq!(row.pid, None);
            assert_eq!(row.remote.ip().to_string(), host);
            let client_tx = bytes(row.rate.unwrap().tx_bytes_per_s, &s);
            assert!(
                close_enough(client_tx, MB5),
                "{host}: client tx {client_tx}"
            );
            assert!(s.closed.iter().any(|k| k.pid == Some(server.pid())
                && k.local.port() == port
                && k.remote.port() == client_port));
            let rows = s.closed_connections();
            assert!(rows
                .iter()
                .any(|r| r.pid.is_none() && r.remote_port == port));

            // lo carried the payload of both ends' sends plus headers: attributed (local) and
            // unattributed closed bytes add up to it.
            let lo_tx = bytes(s.interfaces_loopback.tx_bytes_per_s, &s);
            let accounted = bytes(
                s.attributed_local.tx_bytes_per_s + s.unattributed_closed.tx_bytes_per_s,
                &s,
            );
            assert!(
                accounted <= lo_tx && lo_tx < 1.05 * accounted,
                "{host}: lo tx {lo_tx}, accounted {accounted}"
            );

            // A connection known from an earlier sample, then used and closed: its last bytes
            // go to the owner that still runs.
            let mut early = Py::spawn(SHORT_CLIENT, &[host, &port.to_string(), "early"]);
            early.line();
            settle();
            c.collect(Instant::now());
            early.say(&MB5.to_string());
            early.line();
            assert_eq!(server.line(), format!("got {MB5}"));
            settle();
            let s = c.collect(Instant::now());
            let e = rate_of(&s, early.pid());
            let early_tx = bytes(e.tx_bytes_per_s, &s);
            assert!(
                close_enough(early_tx, MB5),
                "{host}: known closed socket tx {early_tx}"
            );
            let v = rate_of(&s, server.pid());
            assert!(close_enough(bytes(v.rx_bytes_per_s, &s), MB5));
            assert_eq!(s.unattributed_closed, NetRate::default());
        }
    });
}
