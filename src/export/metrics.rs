//! A snapshot as Prometheus/OpenMetrics text, through the official `prometheus-client`.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{Snapshot, LABEL_MAX};
use crate::format::short;
use crate::model::Psi;

/// Series exported whatever the host runs: host figures and the recorder's health.
pub const FIXED_SERIES: usize = 40;

/// The content type of [`encode_snapshot`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of [`to_classic_text`]'s text.
pub const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// OpenMetrics text as the classic Prometheus text format (for clients that do not ask for
/// OpenMetrics, such as `promtool check metrics` or curl): a counter's HELP and TYPE name
/// the `_total` series, and there is no `# EOF`. The series are the same.
pub fn to_classic_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 64);
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta.and_then(|(p, rest)| rest.split_once(' ').map(|(n, tail)| (p, n, tail))) {
            Some((p, name, tail)) if counters.contains(name) => {
                out.push_str(&format!("{p}{name}_total {tail}\n"));
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

type Labels = Vec<(String, String)>;
type G = Gauge<f64, AtomicU64>;

fn gauge(reg: &mut Registry, name: &str, help: &str, v: f64) {
    let g = G::default();
    g.set(v);
    reg.register(name, help, g);
}

fn counter(reg: &mut Registry, name: &str, help: &str, v: u64) {
    let c: Counter<u64> = Counter::default();
    c.inc_by(v);
    reg.register(name, help, c);
}

fn family(reg: &mut Registry, name: &str, help: &str, rows: &[(Labels, f64)]) {
    let f = Family::<Labels, G>::default();
    for (labels, v) in rows {
        f.get_or_create(labels).set(*v);
    }
    reg.register(name, help, f);
}

fn label(k: &str, v: &str) -> (String, String) {
    (k.to_string(), short(v, LABEL_MAX))
}

/// Programs (processes of the same name, summed) by one resource, highest first.
fn top_programs(by_name: &HashMap<String, [f64; 4]>, which: usize, n: usize) -> Vec<(Labels, f64)> {
    let mut rows: Vec<(&str, f64)> = by_name
        .iter()
        .map(|(k, v)| (k.as_str(), v[which]))
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    rows.truncate(n);
    rows.into_iter()
        .map(|(name, v)| (vec![label("program", name)], v))
        .collect()
}

/// The snapshot's series, all prefixed `hogtrap_`; at most `top_n` programs per resource.
pub fn encode_snapshot(snap: &Snapshot, top_n: usize) -> String {
    let mut reg = Registry::with_prefix("hogtrap");
    let s = &snap.sample;
    let h = &s.host;
    gauge(&mut reg, "load1", "Load average over 1 minute", h.load1);
    gauge(&mut reg, "load5", "Load average over 5 minutes", h.load5);
    gauge(&mut reg, "load15", "Load average over 15 minutes", h.load15);
    gauge(&mut reg, "cpus", "CPUs online", s.cpu_count as f64);
    let mode = |m: &str, pct: f64| (vec![label("mode", m)], pct / 100.0);
    family(
        &mut reg,
        "cpu_ratio",
        "Share of all CPUs' time by mode over the last interval (0-1)",
        &[
            mode("user", h.cpu_user_pct),
            mode("system", h.cpu_system_pct),
            mode("iowait", h.cpu_iowait_pct),
            mode("steal", h.cpu_steal_pct),
            mode("idle", h.cpu_idle_pct),
        ],
    );
    gauge(
        &mut reg,
        "memory_total_bytes",
        "Memory installed",
        h.mem_total_bytes as f64,
    );
    gauge(
        &mut reg,
        "memory_used_bytes",
        "Memory in use",
        h.mem_used_bytes as f64,
    );
    gauge(
        &mut reg,
        "memory_available_bytes",
        "Memory available for new work without swapping",
        h.mem_available_bytes as f64,
    );
    gauge(
        &mut reg,
        "swap_total_bytes",
        "Swap configured",
        h.swap_total_bytes as f64,
    );
    gauge(
        &mut reg,
        "swap_used_bytes",
        "Swap in use",
        h.swap_used_bytes as f64,
    );
    let psi = [
        ("cpu", &h.psi_cpu),
        ("memory", &h.psi_memory),
        ("io", &h.psi_io),
    ];
    let some: Vec<(Labels, f64)> = psi
        .iter()
        .filter_map(|(r, p)| {
            p.as_ref()
                .map(|p: &Psi| (vec![label("resource", r)], p.some_avg10 / 100.0))
        })
        .collect();
    family(
        &mut reg,
        "pressure_some_ratio",
        "Pressure stall information: share of time some task stalled, 10 s average (0-1)",
        &some,
    );
    let full: Vec<(Labels, f64)> = psi
        .iter()
        .filter_map(|(r, p)| {
            p.as_ref()
                .and_then(|p| p.full_avg10)
                .map(|v| (vec![label("resource", r)], v / 100.0))
        })
        .collect();
    family(
        &mut reg,
        "pressure_full_ratio",
        "Pressure stall information: share of time all tasks stalled, 10 s average (0-1)",
        &full,
    );
    gauge(
        &mut reg,
        "procs_running",
        "Runnable tasks",
        h.procs_running as f64,
    );
    gauge(
        &mut reg,
        "procs_blocked",
        "Tasks blocked on I/O",
        h.procs_blocked as f64,
    );
    gauge(&mut reg, "procs", "Processes", h.procs_total as f64);
    gauge(
        &mut reg,
        "forks_per_second",
        "Processes created per second",
        h.forks_per_s,
    );
    gauge(
        &mut reg,
        "context_switches_per_second",
        "Context switches per second",
        h.ctxsw_per_s,
    );
    gauge(
        &mut reg,
        "disk_read_bytes_per_second",
        "Bytes read from block devices per second",
        h.disk_read_bytes_per_s,
    );
    gauge(
        &mut reg,
        "disk_written_bytes_per_second",
        "Bytes written to block devices per second",
        h.disk_write_bytes_per_s,
    );
    gauge(
        &mut reg,
        "network_receive_bytes_per_second",
        "Bytes received per second, all interfaces but loopback",
        h.net_rx_bytes_per_s,
    );
    gauge(
        &mut reg,
        "network_transmit_bytes_per_second",
        "Bytes sent per second, all interfaces but loopback",
        h.net_tx_bytes_per_s,
    );

    // Top programs: processes of one name summed, so no label names a pid. Names are cut
    // before summing, so two long names with one prefix make one series, not a clash.
    let mut by_name: HashMap<String, [f64; 4]> = HashMap::new();
    for p in &s.processes {
        let e = by_name.entry(short(&p.id.name, LABEL_MAX)).or_default();
        e[0] += p.cpu_pct / 100.0;
        e[1] += p.rss_bytes as f64;
        e[2] += p.read_bytes_per_s + p.write_bytes_per_s;
        e[3] += p.net_tx_bytes_per_s.unwrap_or(0.0) + p.net_rx_bytes_per_s.unwrap_or(0.0);
    }
    // One family per column of `by_name`, in its order.
    let families = [
        (
            "top_process_cpu_ratio",
            "The programs using the most CPU (processes of one name summed; 1 = one core)",
        ),
        (
            "top_process_memory_bytes",
            "The programs with the most resident memory (processes of one name summed)",
        ),
        (
            "top_process_io_bytes_per_second",
            "The programs reading and writing the most (processes of one name summed)",
        ),
        (
            "top_process_network_bytes_per_second",
            "The programs sending and receiving the most (processes of one name summed)",
        ),
    ];
    for (column, (name, help)) in families.into_iter().enumerate() {
        family(&mut reg, name, help, &top_programs(&by_name, column, top_n));
    }

    // The recorder's own health.
    let hl = &snap.health;
    counter(
        &mut reg,
        "samples",
        "Samples taken since the daemon started",
        hl.samples,
    );
    counter(
        &mut reg,
        "samples_late",
        "Samples that started after their slot",
        hl.late,
    );
    counter(
        &mut reg,
        "samples_missed",
        "Sample slots skipped because a pass could not start for a whole interval",
        hl.missed,
    );
    counter(
        &mut reg,
        "samples_dropped",
        "Samples the store could not take and that were dropped",
        hl.dropped,
    );
    gauge(
        &mut reg,
        "last_sample_timestamp_seconds",
        "When the newest sample was taken (Unix time)",
        s.ts_ms as f64 / 1000.0,
    );
    gauge(
        &mut reg,
        "sample_duration_seconds",
        "How long the newest pass took: collect, store, rules, actions",
        hl.last_duration_s,
    );
    gauge(
        &mut reg,
        "sample_interval_seconds",
        "The interval the newest sample was taken at",
        snap.interval_s,
    );
    gauge(
        &mut reg,
        "store_size_bytes",
        "Size of the store's database and write-ahead log",
        hl.store_bytes as f64,
    );
    gauge(
        &mut reg,
        "outbox_backlog",
        "Alerts waiting for delivery (pending or in flight); -1 when unknown",
        hl.outbox_backlog.map_or(-1.0, |n| n as f64),
    );
    counter(
        &mut reg,
        "rule_errors",
        "Rule errors since the daemon started",
        hl.rule_errors,
    );
    family(
        &mut reg,
        "build_info",
        "Always 1; the version of the running hogtrap",
        &[(vec![label("version", env!("CARGO_PKG_VERSION"))], 1.0)],
    );

    // Incidents, by rule.
    let open: Vec<(Labels, f64)> = snap
        .rules
        .iter()
        .map(|r| {
            (
                vec![
                    label("rule", &r.name),
                    label("severity", r.severity.as_str()),
                ],
                if r.open { 1.0 } else { 0.0 },
            )
        })
        .collect();
    family(
        &mut reg,
        "incident_open",
        "1 while the rule's incident is open",
        &open,
    );
    let opened = Family::<Labels, Counter<u64>>::default();
    for r in &snap.rules {
        let n = hl
            .opened
            .get(&(r.name.clone(), r.severity))
            .copied()
            .unwrap_or(0);
        opened
            .get_or_create(&vec![
                label("rule", &r.name),
                label("severity", r.severity.as_str()),
            ])
            .inc_by(n);
    }
    reg.register(
        "incidents_opened",
        "Incidents opened since the daemon started, by rule",
        opened,
    );

    let mut out = String::new();
    // Writing into a String cannot fail.
    encode(&mut out, &reg).expect("encoding into a String");
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::export::{series_bound, Health, RuleView, Snapshot};
    use crate::model::{ProcessRow, Psi, Sample, Severity};

    fn sample(procs: usize) -> Sample {
        let mut s = Sample::default();
        let psi = Psi {
            some_avg10: 1.0,
            full_avg10: Some(0.5),
            ..Psi::default()
        };
        s.host.psi_cpu = Some(psi);
        s.host.psi_memory = Some(psi);
        s.host.psi_io = Some(psi);
        for i in 0..procs {
            let mut p = ProcessRow::default();
            p.id.pid = i as u32 + 1;
            p.id.name = format!("prog-{i}-{}", "x".repeat(100));
            p.cpu_pct = i as f64;
            p.rss_bytes = i as u64;
            p.read_bytes_per_s = 1.0;
            p.net_tx_bytes_per_s = Some(1.0);
            s.processes.push(p);
        }
        s
    }

    fn series(text: &str) -> usize {
        text.lines().filter(|l| l.starts_with("hogtrap_")).count()
    }

    #[test]
    fn the_series_count_is_bounded_whatever_runs() {
        let rules = vec![RuleView {
            name: "cpu_hog".into(),
            severity: Severity::Warning,
            open: true,
        }];
        for procs in [0, 5, 2000] {
            let snap = Snapshot {
                sample: Arc::new(sample(procs)),
                health: Health::default(),
                rules: rules.clone(),
                interval_s: 1.0,
            };
            let text = encode_snapshot(&snap, 10);
            assert!(series(&text) <= series_bound(10, 1), "{procs}: {text}");
            if procs == 2000 {
                assert_eq!(series(&text), series_bound(10, 1), "{text}");
                assert!(!text.contains("pid"), "no pid label");
                let longest = text
                    .lines()
                    .filter_map(|l| l.split("program=\"").nth(1))
                    .map(|v| v.split('"').next().unwrap().chars().count())
                    .max()
                    .unwrap();
                assert_eq!(longest, LABEL_MAX);
                let value = |l: &str| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap();
                let first = text
                    .lines()
                    .filter(|l| l.starts_with("hogtrap_top_process_cpu_ratio{"))
                    .max_by(|a, b| value(a).total_cmp(&value(b)))
                    .unwrap();
                assert!(first.contains("prog-1999-"), "{first}");
            }
        }
    }

    #[test]
    fn classic_text_names_the_counter_series() {
        let om = "# HELP hogtrap_samples Samples.\n# TYPE hogtrap_samples counter\n\
                  hogtrap_samples_total 3\n# TYPE hogtrap_load1 gauge\nhogtrap_load1 1.0\n# EOF\n";
        assert_eq!(
            to_classic_text(om),
            "# HELP hogtrap_samples_total Samples.\n# TYPE hogtrap_samples_total counter\n\
             hogtrap_samples_total 3\n# TYPE hogtrap_load1 gauge\nhogtrap_load1 1.0\n"
        );
    }

    #[test]
    fn programs_of_one_name_are_summed() {
        let mut s = sample(0);
        for pid in [1, 2] {
            let mut p = ProcessRow::default();
            p.id.pid = pid;
            p.id.name = "worker".into();
            p.cpu_pct = 50.0;
            s.processes.push(p);
        }
        let snap = Snapshot {
            sample: Arc::new(s),
            health: Health::default(),
            rules: vec![],
            interval_s: 1.0,
        };
        let text = encode_snapshot(&snap, 3);
        assert!(
            text.contains("hogtrap_top_process_cpu_ratio{program=\"worker\"} 1.0"),
            "{text}"
        );
    }
}
