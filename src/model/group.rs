//! Processes of one sample summed by program name, parent, user or cgroup, the exits recorded
//! with the sample included: what a storm of short-lived children adds up to.

use std::collections::HashMap;

use super::{Grouping, Resource, Sample};

/// One group of a sample. `value` is in the resource's unit (CPU % per core, bytes, bytes/s).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SampleGroup {
    pub group: Grouping,
    /// A name, a parent pid, a user, a cgroup path (`?` where none was recorded).
    pub key: String,
    /// For display: for `parent`, "PID NAME" when the parent is in the sample.
    pub label: String,
    /// Live processes plus exited ones (a roll-up counts its processes).
    pub processes: u32,
    pub exited: u32,
    pub value: f64,
    /// The largest single live process's or exit's value.
    pub largest: f64,
}

/// The groups of `s` by `by`, largest first. Exits count for cpu (their CPU over the interval,
/// as a rate) and io (their bytes over the interval); memory and network are live only.
pub fn groups_of(s: &Sample, by: Resource, how: Grouping) -> Vec<SampleGroup> {
    let interval_s = (s.interval_ms.max(1)) as f64 / 1000.0;
    let mut by_key: HashMap<String, SampleGroup> = HashMap::new();
    let cgroup_of = |pid: u32| -> Option<String> {
        s.processes
            .iter()
            .find(|p| p.id.pid == pid)
            .and_then(|p| p.extra.as_ref())
            .and_then(|x| x.cgroup.clone())
    };
    let mut add = |key: String, v: f64, n: u32, exited: u32| {
        let g = by_key.entry(key.clone()).or_insert_with(|| SampleGroup {
            group: how,
            label: key.clone(),
            key,
            processes: 0,
            exited: 0,
            value: 0.0,
            largest: 0.0,
        });
        g.processes += n;
        g.exited += exited;
        g.value += v;
        g.largest = g.largest.max(v);
    };
    for p in &s.processes {
        let key = match how {
            Grouping::Name => p.id.name.clone(),
            Grouping::Parent => p.id.ppid.to_string(),
            Grouping::User => p.id.user.clone(),
            Grouping::Cgroup => p
                .extra
                .as_ref()
                .and_then(|x| x.cgroup.clone())
                .unwrap_or_else(|| "?".into()),
        };
        let span = p
            .rate_span_ms
            .map_or(1.0, |sp| (sp as f64 / s.interval_ms.max(1) as f64).min(1.0));
        let v = match by {
            Resource::Cpu => p.cpu_pct * span,
            Resource::Mem => p.rss_bytes as f64,
            Resource::Io => (p.read_bytes_per_s + p.write_bytes_per_s) * span,
            Resource::Net => {
                p.net_tx_bytes_per_s.unwrap_or(0.0) + p.net_rx_bytes_per_s.unwrap_or(0.0)
            }
        };
        add(key, v, 1, 0);
    }
    for e in &s.exits {
        let key = match how {
            Grouping::Name => e.id.name.clone(),
            Grouping::Parent => e.id.ppid.to_string(),
            Grouping::User => e.id.user.clone(),
            Grouping::Cgroup => cgroup_of(e.id.ppid).unwrap_or_else(|| "?".into()),
        };
        let v = match by {
            Resource::Cpu => e.cpu_ms / 1000.0 / interval_s * 100.0,
            Resource::Io => (e.read_bytes + e.write_bytes) as f64 / interval_s,
            Resource::Mem | Resource::Net => 0.0,
        };
        add(key, v, e.count, e.count);
    }
    let mut out: Vec<SampleGroup> = by_key.into_values().collect();
    if how == Grouping::Parent {
        for g in &mut out {
            if let Some(p) = s.processes.iter().find(|p| p.id.pid.to_string() == g.key) {
                g.label = format!("{} {}", p.id.pid, p.id.name);
            }
        }
    }
    out.sort_by(|a, b| b.value.total_cmp(&a.value).then(a.key.cmp(&b.key)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ProcessExit, ProcessIdentity, ProcessRow};

    fn proc(pid: u32, ppid: u32, name: &str, cpu: f64) -> ProcessRow {
        ProcessRow {
            id: ProcessIdentity {
                pid,
                ppid,
                name: name.into(),
                user: "root".into(),
                ..Default::default()
            },
            cpu_pct: cpu,
            ..Default::default()
        }
    }

    #[test]
    fn a_storm_outweighs_the_steady_process() {
        let mut s = Sample {
            interval_ms: 1000,
            processes: vec![
                proc(10, 1, "ht_forker", 1.0),
                proc(20, 1, "steady", 21.0),
                proc(30, 10, "perl", 5.0),
            ],
            ..Default::default()
        };
        s.exits.push(ProcessExit {
            id: ProcessIdentity {
                ppid: 10,
                name: "perl".into(),
                user: "root".into(),
                ..Default::default()
            },
            count: 40,
            cpu_ms: 800.0,
            ..Default::default()
        });
        let by_parent = groups_of(&s, Resource::Cpu, Grouping::Parent);
        assert_eq!(by_parent[0].label, "10 ht_forker");
        assert_eq!(by_parent[0].processes, 41);
        assert!((by_parent[0].value - 85.0).abs() < 1e-9);
        let by_name = groups_of(&s, Resource::Cpu, Grouping::Name);
        assert_eq!(by_name[0].key, "perl");
        assert_eq!(by_name[0].exited, 40);
        assert_eq!(groups_of(&s, Resource::Cpu, Grouping::User).len(), 1);
    }
}
