//! SPEC §11: the shipped rule set over a 1,000-process sample in under 1 ms, building the
//! Lua view included. Run: `cargo bench --bench rules`.

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use hogtrap::model::{HostRow, ProcessIdentity, ProcessRow, Psi, Sample};
use hogtrap::rules::{load_dir_sources, Engine, RuleSource, RulesConfig};

fn big_sample(n: u32) -> Sample {
    let psi = Some(Psi {
        some_avg10: 1.5,
        some_total_us: 1_000_000,
        full_avg10: Some(0.2),
        full_total_us: Some(100_000),
    });
    Sample {
        ts_ms: 1_764_126_000_000,
        host_name: "bench".into(),
        cpu_count: 8,
        interval_ms: 1000,
        host: HostRow {
            load1: 3.0,
            load5: 2.5,
            load15: 2.0,
            cpu_user_pct: 30.0,
            cpu_system_pct: 10.0,
            cpu_idle_pct: 60.0,
            mem_total_bytes: 16 << 30,
            mem_used_bytes: 8 << 30,
            mem_available_bytes: 8 << 30,
            swap_total_bytes: 4 << 30,
            swap_used_bytes: 1 << 30,
            psi_cpu: psi,
            psi_memory: psi,
            psi_io: psi,
            procs_total: n,
            ..Default::default()
        },
        processes: (0..n)
            .map(|i| ProcessRow {
                id: ProcessIdentity {
                    pid: 1000 + i,
                    ppid: 1,
                    start_time_ms: 1_764_000_000_000,
                    uid: 1000,
                    user: "alice".into(),
                    name: format!("worker-{i}"),
                    cmdline: format!("/usr/bin/worker-{i} --id {i} --config /etc/worker.conf"),
                },
                state: 'S',
                cpu_pct: (i % 97) as f64,
                rss_bytes: (i as u64 % 500) << 20,
                read_bytes_per_s: (i % 13) as f64 * 1000.0,
                write_bytes_per_s: (i % 7) as f64 * 1000.0,
                threads: 1 + i % 8,
                net_tx_bytes_per_s: Some((i % 11) as f64 * 100.0),
                net_rx_bytes_per_s: Some((i % 5) as f64 * 100.0),
                extra: None,
                rate_span_ms: None,
            })
            .collect(),
        filesystems: vec![hogtrap::model::FilesystemRow {
            mount_point: "/".into(),
            fs_type: "ext4".into(),
            total_bytes: 100 << 30,
            available_bytes: 40 << 30,
        }],
        ..Default::default()
    }
}

fn shipped() -> Vec<RuleSource> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules");
    load_dir_sources(&dir, false).expect("shipped rules")
}

fn bench(c: &mut Criterion) {
    let sample = Arc::new(big_sample(1000));
    let mut engine = Engine::load(RulesConfig::default(), shipped()).expect("loads");
    c.bench_function("shipped rules, 1000 processes (shared sample)", |b| {
        b.iter(|| engine.evaluate_shared(sample.clone()))
    });
    c.bench_function(
        "shipped rules, 1000 processes (evaluate(&Sample), clones it)",
        |b| b.iter(|| engine.evaluate(&sample)),
    );
    // A user rule that walks every process forces the whole view to be built each sample.
    let mut sources = shipped();
    sources.push(RuleSource {
        path: PathBuf::from("rules/zz_walk_all.lua"),
        text: r#"rule { name = "walk_all", when = function(s)
  local n = 0
  for _, p in ipairs(s.procs) do if p.cpu > 500 then n = n + 1 end end
  return n > 0
end }"#
            .into(),
    });
    let mut engine = Engine::load(RulesConfig::default(), sources).expect("loads");
    c.bench_function("shipped rules + a rule walking all 1000 processes", |b| {
        b.iter(|| engine.evaluate_shared(sample.clone()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
