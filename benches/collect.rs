//! Cost of one collection: the lean procfs collector against sysinfo and against the floor
//! (one read of `/proc/[pid]/stat` per pid), at today's process count and with 1,000 extra
//! idle processes. Figures go to docs/performance.md.

use std::process::{Child, Command, Stdio};

use criterion::{criterion_group, criterion_main, Criterion};
use hogtrap::collect::Collector;
use hogtrap::config::Source;
use hogtrap::model::Level;

fn stat_floor() -> usize {
    let mut buf = Vec::with_capacity(1024);
    hogtrap::collect::linux::procfs::read_every_stat_once(&mut buf)
}

fn run_group(c: &mut Criterion, label: &str) {
    let procs = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|s| s.parse::<u32>().is_ok())
        })
        .count();
    let mut g = c.benchmark_group(format!("collect/{label} ({procs} processes)"));
    g.sample_size(30);
    g.bench_function("floor: read every /proc/pid/stat", |b| b.iter(stat_floor));
    let mut lean = Collector::new(Source::Procfs);
    g.bench_function("hogtrap procfs baseline sample", |b| {
        b.iter(|| lean.sample(Level::Baseline, "bench"))
    });
    g.bench_function("hogtrap procfs detail sample", |b| {
        b.iter(|| lean.sample(Level::Detail, "bench"))
    });
    let mut si = Collector::new(Source::Sysinfo);
    g.bench_function("sysinfo baseline sample", |b| {
        b.iter(|| si.sample(Level::Baseline, "bench"))
    });
    g.finish();
}

struct Idle(Vec<Child>);

impl Drop for Idle {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

fn collect(c: &mut Criterion) {
    run_group(c, "today");
    let idle = Idle(
        (0..1000)
            .map(|_| {
                Command::new("sleep")
                    .arg("600")
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("spawn sleep")
            })
            .collect(),
    );
    run_group(c, "with 1000 idle");
    drop(idle);
}

criterion_group!(benches, collect);
criterion_main!(benches);
