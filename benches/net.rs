//! Cost of one `NetCollector::collect()` with ~1,000 open loopback TCP sockets (500 connected
//! pairs in this process) plus whatever else the host has open.
//!
//! - `steady`: the owner cache is warm and no socket moved bytes (the common sample).
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
use hogtrap::collect::net::sockdiag::{SockDiag, Table};
use hogtrap::collect::net::NetCollector;

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

fn bench(c: &mut Criterion) {
    let (_listener, mut pairs) = open_pairs();
    let mut group = c.benchmark_group("net_collect_1000_sockets");
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(8));

    let mut collector = NetCollector::new().expect("sock_diag");
    collector.collect(Instant::now());
    group.bench_function("steady", |b| b.iter(|| collector.collect(Instant::now())));

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
    let mut diag = SockDiag::open().expect("sock_diag");
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
