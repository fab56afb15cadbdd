//! The exit listener's own cost per 1,000 exits: parsing 1,000 kernel exit messages (one
//! datagram each, as the kernel sends them) and folding 1,000 exited processes into a
//! sample's rows (top 20 kept, the rest rolled up by parent and name). The kernel's work and
//! the forks themselves are not ours and are not measured. Figures go to docs/performance.md.

use criterion::{criterion_group, criterion_main, Criterion};
use hogtrap::collect::linux::exits::{roll_up, TOP_EXITS};
use hogtrap::collect::linux::taskstats::{encode_exit_message, parse_datagram, Parsed};
use hogtrap::model::{ProcessExit, ProcessIdentity};

fn bench(c: &mut Criterion) {
    let family = 30;
    let datagrams: Vec<Vec<u8>> = (0..1000u32)
        .map(|i| encode_exit_message(family, 10_000 + i, 10_000 + i, "ht_child", 20_000_000, 0))
        .collect();
    let exits: Vec<ProcessExit> = (0..1000u32)
        .map(|i| ProcessExit {
            id: ProcessIdentity {
                pid: 10_000 + i,
                ppid: 100 + i % 3,
                name: "ht_child".into(),
                user: "root".into(),
                ..Default::default()
            },
            count: 1,
            cpu_ms: 20.0 + (i % 7) as f64,
            life_cpu_ms: 20.0,
            exit_code: Some(0),
            ..Default::default()
        })
        .collect();
    let mut g = c.benchmark_group("exits (per 1,000 exits)");
    g.bench_function("parse 1,000 exit messages", |b| {
        let mut p = Parsed::default();
        b.iter(|| {
            p.exits.clear();
            for d in &datagrams {
                parse_datagram(d, family, &mut p);
            }
            assert_eq!(p.exits.len(), 1000);
        })
    });
    g.bench_function("roll up 1,000 exits", |b| {
        b.iter(|| roll_up(exits.clone(), TOP_EXITS).len())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
