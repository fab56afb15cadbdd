//! Cost of one collection: the lean procfs collector against sysinfo and against the floor
//! (one read of `/proc/[pid]/stat` per pid), at today's process count and with 1,000 extra
//! idle processes; and the redaction of secrets in 1,000 command lines (what the collector
//! pays once per new process identity, never per sample). Figures go to docs/performance.md.

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

/// 1,000 command lines of the kinds a host runs, one in three with a secret to mask.
fn command_lines() -> Vec<String> {
    (0..1000)
        .map(|i| match i % 6 {
            0 => format!("/usr/bin/python3 -m http.server {i} --bind 127.0.0.1"),
            1 => format!("mysql -uroot -pS3cret{i} --host=db{i} shop"),
            2 => "postgres: 15/main: checkpointer".to_string(),
            3 => format!("curl -sS -H Authorization: Bearer tok.{i} https://api.example.org/v1/items?page={i}"),
            4 => format!(
                "/usr/lib/jvm/java-17/bin/java -Xmx2g -XX:+UseG1GC -Dlog.dir=/var/log/app{i} \
                 -jar /opt/app/app.jar --spring.config.location=/etc/app/{i}.yml --server.port=8080"
            ),
            _ => format!("/usr/bin/make -j4 -C /srv/build/{i} all CC=gcc"),
        })
        .collect()
}

fn redaction(c: &mut Criterion) {
    let lines = command_lines();
    let user = hogtrap::format::Redactor::new(&[r"--license\s+(\S+)".to_string()]).unwrap();
    let mut g = c.benchmark_group("redact/1000 command lines");
    g.sample_size(30);
    g.bench_function("built-in patterns", |b| {
        b.iter(|| {
            lines
                .iter()
                .map(|l| hogtrap::format::Redactor::builtin().redact(l).len())
                .sum::<usize>()
        })
    });
    g.bench_function("built-in + 1 user pattern", |b| {
        b.iter(|| lines.iter().map(|l| user.redact(l).len()).sum::<usize>())
    });
    g.finish();
}

fn collect(c: &mut Criterion) {
    redaction(c);
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
