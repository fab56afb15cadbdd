//! Cost of one `NetCollector::collect()` with ~1,000 open loopback TCP sockets (500 connected
//! pairs in this process) plus whatever else the host has open.
//!
//! Runs in a network namespace of its own when root (so that no other process's new
//! connections make the collector walk the tables); that namespace shares the host's TCP
//! established hash (unless `net.ipv4.tcp_child_ehash_entries` was set), so a walk costs what it
//! costs on the host.
//!
//! - `steady`: what the daemon does at baseline (UDP off, TCP listing `Auto`): the owner cache
//!   is warm, no socket moved bytes, no connection was opened since the last sample, so the
//!   known sockets are looked up (or walked, if the last walk was cheaper).
//! - `steady_walk`: the same with both TCP tables walked every sample (the path before lookups).
//! - `lookup_only`: the batched lookups of the 1,001 TCP sockets alone (the new path's floor).
//! - `steady_detail`: UDP on (detail level): four walks.
//! - `all_active`: every one of the 1,000 sockets moved a byte since the last call, so each
//!   cached owner is verified with one readlink.
//! - `one_new_connection`: this process opens one connection before each call: the cost of
//!   finding the owner of a new socket of an existing process.
//! - `dump_only`: the four sock_diag dumps alone (the floor).
//! - `connection_rows`: formatting the model's `Connection` rows from a sample.
//! - `cold`: a fresh collector (netlink socket, full `/proc/*/fd` scan, first dump).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use hogtrap::collect::net::sockdiag::{Lookup, SockDiag, Table};
use hogtrap::collect::net::{NetCollector, TcpListing};

const PAIRS: usize = 500;

fn raise_nofile(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn open_pairs() -> (TcpListener, Vec<(TcpStream, TcpStream)>) {
    raise_nofile(4096);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = listener.local_addr().unwrap();
    let pairs = (0..PAIRS)
        .map(|_| {
            let client = TcpStream::connect(addr).expect("connect");
            let (server, _) = listener.accept().expect("accept");
            (client, server)
        })
        .collect();
    (listener, pairs)
}

/// As root: this thread (criterion runs on it) moves into a fresh network namespace.
fn own_namespace() {
    // SAFETY: getuid and unshare are plain syscalls; unshare affects only this thread.
    if unsafe { libc::getuid() } != 0 || unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        eprintln!(
            "not root: benchmarking in the host's namespace (others' connections may force walks)"
        );
        return;
    }
    let up = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status();
    assert!(
        matches!(up, Ok(s) if s.success()),
        "ip link set lo up: {up:?}"
    );
}

fn bench(c: &mut Criterion) {
    own_namespace();
    let (_listener, mut pairs) = open_pairs();
    let mut group = c.benchmark_group("net_collect_1000_sockets");
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(8));

    let mut collector = NetCollector::new().expect("sock_diag");
    collector.set_udp(false);
    collector.collect(Instant::now());
    collector.collect(Instant::now());
    let before = collector.listing_stats();
    group.bench_function("steady", |b| b.iter(|| collector.collect(Instant::now())));
    let after = collector.listing_stats();
    eprintln!(
        "steady: {} walks, {} lookup passes ({} lookups)",
        after.dumps - before.dumps,
        after.lookup_passes - before.lookup_passes,
        after.lookups - before.lookups
    );

    let mut walker = NetCollector::new().expect("sock_diag");
    walker.set_udp(false);
    walker.set_tcp_listing(TcpListing::Dump);
    walker.collect(Instant::now());
    group.bench_function("steady_walk", |b| b.iter(|| walker.collect(Instant::now())));

    let mut detail = NetCollector::new().expect("sock_diag");
    detail.collect(Instant::now());
    group.bench_function("steady_detail", |b| {
        b.iter(|| detail.collect(Instant::now()))
    });

    let mut diag = SockDiag::open().expect("sock_diag");
    let mut known = Vec::new();
    for table in [Table::Tcp4, Table::Tcp6] {
        diag.dump(table, &mut known).expect("dump");
    }
    known.retain(|r| r.state != 10);
    let mut found = Vec::new();
    group.bench_function("lookup_only", |b| {
        b.iter(|| {
            diag.lookup(&known, &mut found).expect("lookups");
            found.len()
        })
    });
    let hits = found
        .iter()
        .filter(|l| matches!(l, Lookup::Found(_)))
        .count();
    eprintln!("lookup_only: {hits} of {} sockets found", known.len());

    group.bench_function("all_active", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut byte = [0u8; 1];
            for _ in 0..iters {
                for (client, server) in pairs.iter_mut() {
                    client.write_all(b"x").unwrap();
                    server.read_exact(&mut byte).unwrap();
                    server.write_all(b"y").unwrap();
                    client.read_exact(&mut byte).unwrap();
                }
                std::thread::sleep(Duration::from_millis(5)); // let the ACKs land
                let start = Instant::now();
                let s = collector.collect(Instant::now());
                total += start.elapsed();
                std::hint::black_box(s);
            }
            total
        })
    });

    // An existing process (this one, ~1,000 fds) opens one new connection per sample: the
    // unknown inode costs a /proc listing and a rescan of the pids of its uid.
    let listener2 = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr2 = listener2.local_addr().unwrap();
    group.bench_function("one_new_connection", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let client = TcpStream::connect(addr2).expect("connect");
                let (server, _) = listener2.accept().expect("accept");
                let start = Instant::now();
                let s = collector.collect(Instant::now());
                total += start.elapsed();
                std::hint::black_box(s);
                drop((client, server));
            }
            total
        })
    });

    // The floor: the four sock_diag dumps alone, no attribution, no diffing.
    let mut records = Vec::new();
    group.bench_function("dump_only", |b| {
        b.iter(|| {
            records.clear();
            for table in Table::ALL {
                diag.dump(table, &mut records).expect("dump");
            }
            records.len()
        })
    });

    // Turning a sample's sockets into model rows (only needed at detail level).
    let sample = collector.collect(Instant::now());
    group.bench_function("connection_rows", |b| b.iter(|| sample.connections()));

    group.sample_size(20);
    group.bench_function("cold", |b| {
        b.iter(|| {
            let mut fresh = NetCollector::new().expect("sock_diag");
            fresh.collect(Instant::now())
        })
    });
    group.finish();

    // Side by side, interleaved (the machine is shared: criterion's cases run minutes apart):
    // a steady sample by lookups against one by a walk.
    let (mut looks, mut walks) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..300 {
        let t = Instant::now();
        std::hint::black_box(collector.collect(Instant::now()));
        looks += t.elapsed();
        let t = Instant::now();
        std::hint::black_box(walker.collect(Instant::now()));
        walks += t.elapsed();
    }
    eprintln!(
        "interleaved, 300 each: steady {:.3} ms, steady_walk {:.3} ms, ratio {:.2}",
        looks.as_secs_f64() / 0.3,
        walks.as_secs_f64() / 0.3,
        looks.as_secs_f64() / walks.as_secs_f64()
    );

    let s = collector.collect(Instant::now());
    eprintln!(
        "sockets in the last sample: {} ({} unattributed); owner cache work so far: {:?}",
        s.sockets.len(),
        s.unattributed_sockets,
        collector.owner_stats()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
