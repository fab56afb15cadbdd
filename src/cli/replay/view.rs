//! The view model of `hogtrap replay`: what to show for one sample, as plain text, with no
//! terminal in sight. The header lines, the process table (filtered, grouped, sorted) and
//! which columns fit a width are all decided here, so they are unit-tested; `ui` only lays
//! the strings out.

use std::collections::HashMap;

use crate::format::{
    bytes, human_ms, pct, rate, short, time::format_local, ProcessNumbers, PROCESS_COLUMNS,
};
use crate::model::{Level, Resource};
use crate::store::replay::{Frame, ReplayProcess};

/// How process rows are gathered into one row each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupBy {
    /// One row per process.
    #[default]
    None,
    /// By program name.
    Program,
    /// By user.
    User,
    /// By parent process.
    Parent,
    /// By cgroup (captured at detail level only).
    Cgroup,
}

impl GroupBy {
    pub fn label(self) -> &'static str {
        match self {
            GroupBy::None => "none",
            GroupBy::Program => "program",
            GroupBy::User => "user",
            GroupBy::Parent => "parent",
            GroupBy::Cgroup => "cgroup",
        }
    }

    /// The group a process belongs to: its key and how the row is named. Other groupings
    /// (from the store) plug in here.
    fn key(self, p: &ReplayProcess, names: &HashMap<u32, &str>) -> (String, String) {
        match self {
            GroupBy::None => (format!("pid {}", p.process_id), p.name.clone()),
            GroupBy::Program => (p.name.clone(), p.name.clone()),
            GroupBy::User => (p.user.clone(), p.user.clone()),
            GroupBy::Parent => {
                let label = match names.get(&p.ppid) {
                    Some(n) => format!("{n} ({})", p.ppid),
                    None => format!("ppid {}", p.ppid),
                };
                (p.ppid.to_string(), label)
            }
            GroupBy::Cgroup => match &p.cgroup {
                Some(c) => (c.clone(), c.rsplit('/').next().unwrap_or(c).to_string()),
                None => (String::new(), "(not captured)".into()),
            },
        }
    }
}

/// The user's choices: order, grouping, name filter.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewOptions {
    pub sort: Resource,
    pub group: GroupBy,
    /// Case-insensitive substring of the name or command line; empty: everything.
    pub filter: String,
}

impl Default for ViewOptions {
    /// By CPU, ungrouped, unfiltered: `top`'s order.
    fn default() -> Self {
        ViewOptions {
            sort: Resource::Cpu,
            group: GroupBy::None,
            filter: String::new(),
        }
    }
}

/// What a table row stands for, so the selection survives a step to another sample.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RowKey {
    Process { pid: u32, process_id: i64 },
    Group(String),
}

/// One row of the process table, in display units.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRow {
    pub key: RowKey,
    /// Processes in the row (1 without grouping).
    pub count: usize,
    pub pid: Option<u32>,
    pub user: String,
    pub name: String,
    /// Summed over the group's processes.
    pub numbers: ProcessNumbers,
    pub command: String,
}

fn matches(p: &ReplayProcess, filter: &str) -> bool {
    if filter.is_empty() {
        return true;
    }
    let f = filter.to_lowercase();
    p.name.to_lowercase().contains(&f) || p.cmdline.to_lowercase().contains(&f)
}

fn row_of(p: &ReplayProcess) -> TableRow {
    TableRow {
        key: RowKey::Process {
            pid: p.pid,
            process_id: p.process_id,
        },
        count: 1,
        pid: Some(p.pid),
        user: p.user.clone(),
        name: p.name.clone(),
        numbers: p.numbers.clone(),
        command: p.cmdline.clone(),
    }
}

/// The process table of one sample: filtered by name, grouped, highest first by the sort
/// resource (ties: CPU, then pid).
pub fn table(processes: &[ReplayProcess], opts: &ViewOptions) -> Vec<TableRow> {
    let kept = processes.iter().filter(|p| matches(p, &opts.filter));
    let mut rows: Vec<TableRow> = if opts.group == GroupBy::None {
        kept.map(row_of).collect()
    } else {
        let names: HashMap<u32, &str> =
            processes.iter().map(|p| (p.pid, p.name.as_str())).collect();
        let mut groups: Vec<TableRow> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for p in kept {
            let (key, label) = opts.group.key(p, &names);
            match index.get(&key) {
                Some(&i) => {
                    let g = &mut groups[i];
                    g.count += 1;
                    g.pid = None;
                    if g.user != p.user {
                        g.user = "*".into();
                    }
                    g.numbers.add(&p.numbers);
                }
                None => {
                    index.insert(key.clone(), groups.len());
                    let mut g = row_of(p);
                    g.key = RowKey::Group(key.clone());
                    g.name = label;
                    g.command = match opts.group {
                        GroupBy::Cgroup | GroupBy::Parent => key,
                        _ => p.cmdline.clone(),
                    };
                    groups.push(g);
                }
            }
        }
        groups
    };
    let by = opts.sort;
    rows.sort_by(|a, b| {
        let (a_n, b_n) = (&a.numbers, &b.numbers);
        b_n.value(by)
            .total_cmp(&a_n.value(by))
            .then(b_n.cpu_pct.total_cmp(&a_n.cpu_pct))
            .then(a.pid.cmp(&b.pid))
            .then(a.name.cmp(&b.name))
    });
    rows
}

/// A column of the process table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Pid,
    User,
    Name,
    State,
    Cpu,
    Rss,
    Read,
    Write,
    /// Read + write, where the terminal is too narrow for both.
    Io,
    Net,
    Threads,
    Command,
}

/// Below this width the table folds READ/s and WRITE/s into IO/s and drops THR.
pub const WIDE: u16 = 110;

/// `top`'s columns; the narrow table differs only in the I/O and thread columns.
const WIDE_COLUMNS: [Column; 11] = {
    use Column::*;
    [
        Pid, User, Name, State, Cpu, Rss, Read, Write, Net, Threads, Command,
    ]
};
const NARROW_COLUMNS: [Column; 9] = {
    use Column::*;
    [Pid, User, Name, State, Cpu, Rss, Io, Net, Command]
};

/// The columns that fit `width`: `top`'s columns on a wide terminal.
pub fn columns_for(width: u16) -> &'static [Column] {
    if width >= WIDE {
        &WIDE_COLUMNS
    } else {
        &NARROW_COLUMNS
    }
}

impl Column {
    pub fn title(self) -> &'static str {
        match self {
            Column::Pid => PROCESS_COLUMNS[0],
            Column::User => PROCESS_COLUMNS[1],
            Column::Name => PROCESS_COLUMNS[2],
            Column::State => PROCESS_COLUMNS[3],
            Column::Cpu => PROCESS_COLUMNS[4],
            Column::Rss => PROCESS_COLUMNS[5],
            Column::Read => PROCESS_COLUMNS[6],
            Column::Write => PROCESS_COLUMNS[7],
            Column::Io => "IO/s",
            Column::Net => PROCESS_COLUMNS[8],
            Column::Threads => PROCESS_COLUMNS[9],
            Column::Command => PROCESS_COLUMNS[10],
        }
    }

    /// Characters the column takes; `None` for the command, which takes what is left.
    pub fn width(self) -> Option<u16> {
        Some(match self {
            Column::Pid => 7,
            Column::User => 8,
            Column::Name => 15,
            Column::State => 1,
            Column::Cpu => 6,
            Column::Rss => 10,
            Column::Read | Column::Write | Column::Io | Column::Net => 10,
            Column::Threads => 4,
            Column::Command => return None,
        })
    }

    pub fn numeric(self) -> bool {
        !matches!(
            self,
            Column::User | Column::Name | Column::State | Column::Command
        )
    }

    /// The cell of `row` in this column. Rates are shown as bytes (the title says `/s`) so
    /// they fit ten characters.
    pub fn cell(self, row: &TableRow) -> String {
        let n = &row.numbers;
        match self {
            Column::Pid => match row.pid {
                Some(pid) => pid.to_string(),
                None => format!("{}×", row.count),
            },
            Column::User => short(&row.user, 8),
            Column::Name => short(&row.name, 15),
            Column::State => n.state.clone(),
            Column::Cpu => pct(n.cpu_pct),
            Column::Rss => bytes(n.rss_bytes),
            Column::Read => bytes(n.read_bytes_per_s),
            Column::Write => bytes(n.write_bytes_per_s),
            Column::Io => bytes(n.read_bytes_per_s + n.write_bytes_per_s),
            Column::Net => n.net_bytes_per_s.map(bytes).unwrap_or_else(|| "-".into()),
            Column::Threads => n.threads.to_string(),
            Column::Command => row.command.clone(),
        }
    }
}

/// Which way the view is reading: a stored record, or the running recorder's newest sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Replay,
    /// `following`: the view moves to each new sample as it is written.
    Live {
        following: bool,
    },
}

fn psi_text(name: &str, p: &Option<crate::model::Psi>) -> String {
    match p {
        Some(p) => match p.full_avg10 {
            Some(full) => format!("{name} {:.1}/{:.1}", p.some_avg10, full),
            None => format!("{name} {:.1}", p.some_avg10),
        },
        None => format!("{name} -"),
    }
}

/// The header above the table: where we are, the host row, and the open incidents.
pub fn header(frame: &Frame, mode: Mode, opts: &ViewOptions) -> Vec<String> {
    let s = &frame.sample;
    let h = &s.host;
    let mode_text = match mode {
        Mode::Replay => "replay".to_string(),
        Mode::Live { following: true } => "live".to_string(),
        Mode::Live { following: false } => "live (paused: End follows)".to_string(),
    };
    let level = match s.level {
        Level::Baseline => "baseline",
        Level::Detail => "DETAIL",
    };
    let late = if s.late_ms == 0 {
        "0ms".to_string()
    } else {
        human_ms(s.late_ms as i64)
    };
    let where_ = format!(
        "{}  {}  #{}/{}  {level} every {}  late {late}  {mode_text}",
        format_local(frame.at.ts_ms),
        s.host_name,
        frame.position,
        frame.total,
        human_ms(s.interval_ms as i64),
    );
    let cpu = format!(
        "load {:.2} {:.2} {:.2}  cpu usr {} sys {} wait {} steal {} idle {}",
        h.load1,
        h.load5,
        h.load15,
        pct(h.cpu_user_pct),
        pct(h.cpu_system_pct),
        pct(h.cpu_iowait_pct),
        pct(h.cpu_steal_pct),
        pct(h.cpu_idle_pct)
    );
    let mem = format!(
        "mem {} / {} (avail {})  swap {} / {}",
        bytes(h.mem_used_bytes as f64),
        bytes(h.mem_total_bytes as f64),
        bytes(h.mem_available_bytes as f64),
        bytes(h.swap_used_bytes as f64),
        bytes(h.swap_total_bytes as f64),
    );
    let psi = format!(
        "psi {} {} {}  procs {} run {} blocked {}",
        psi_text("cpu", &h.psi_cpu),
        psi_text("mem", &h.psi_memory),
        psi_text("io", &h.psi_io),
        h.procs_total,
        h.procs_running,
        h.procs_blocked
    );
    let io = format!(
        "disk read {} write {}  net rx {} tx {}",
        rate(h.disk_read_bytes_per_s),
        rate(h.disk_write_bytes_per_s),
        rate(h.net_rx_bytes_per_s),
        rate(h.net_tx_bytes_per_s)
    );
    let incident = if frame.open_incidents.is_empty() {
        "no incident open".to_string()
    } else {
        let list: Vec<String> = frame
            .open_incidents
            .iter()
            .map(|i| {
                let opened = if i.opened_ms == frame.at.ts_ms {
                    "opens here".to_string()
                } else if i.opened_ms > frame.at.ts_ms {
                    format!("opens in {}", human_ms(i.opened_ms - frame.at.ts_ms))
                } else {
                    format!("open {}", human_ms(frame.at.ts_ms - i.opened_ms))
                };
                format!("#{} {} ({}, {opened})", i.id, i.rule, i.severity)
            })
            .collect();
        format!("!! INCIDENT {}", list.join("; "))
    };
    let choices = format!(
        "sort {}  group {}{}",
        opts.sort,
        opts.group.label(),
        if opts.filter.is_empty() {
            String::new()
        } else {
            format!("  filter \"{}\"", opts.filter)
        }
    );
    vec![
        where_,
        cpu,
        mem,
        psi,
        io,
        format!("{incident}  |  {choices}"),
    ]
}

/// The keys, for `?`.
pub const HELP: &[(&str, &str)] = &[
    ("t  → l", "next sample"),
    ("T  ← h", "previous sample"),
    ("Home / End", "first / last sample (End: follow, in live)"),
    (
        "b",
        "jump to a time (\"03:12\", \"10m ago\", \"2026-11-26 03:12\")",
    ),
    ("i / I", "next / previous incident (its opening sample)"),
    ("g / G", "next / previous gap in the record"),
    ("c m d n", "sort by CPU, memory, disk I/O, network"),
    (
        "p u a o",
        "group by program, user, parent, cgroup (again: ungroup)",
    ),
    ("/", "filter by name or command line (empty: all)"),
    ("↑ ↓ j k PgUp PgDn", "select a process"),
    (
        "Enter",
        "connections of the selected process (detail samples)",
    ),
    ("?", "this help"),
    ("q  Ctrl-C", "quit"),
];

/// The one-line reminder at the bottom.
pub const FOOTER: &str =
    "t/T step  b time  i/I incident  g/G gap  c/m/d/n sort  p/u/a/o group  / filter  ? help  q quit";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Sample;
    use crate::store::replay::{OpenIncident, SampleRef};

    fn p(pid: u32, name: &str, user: &str, cpu: f64, rss_mib: f64) -> ReplayProcess {
        ReplayProcess {
            process_id: pid as i64 + 1000,
            pid,
            ppid: 1,
            user: user.into(),
            name: name.into(),
            cmdline: format!("/usr/bin/{name} --flag"),
            numbers: ProcessNumbers {
                state: "S".into(),
                cpu_pct: cpu,
                rss_bytes: rss_mib * 1048576.0,
                read_bytes_per_s: pid as f64,
                threads: 2,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn procs() -> Vec<ReplayProcess> {
        vec![
            p(10, "postgres", "postgres", 5.0, 100.0),
            p(11, "postgres", "postgres", 50.0, 20.0),
            p(12, "holder", "alice", 0.0, 300.0),
            p(13, "sshd", "root", 1.0, 5.0),
            p(1, "systemd", "root", 0.5, 10.0),
        ]
    }

    fn names(rows: &[TableRow]) -> Vec<&str> {
        rows.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn sorting_by_each_resource_puts_its_biggest_first() {
        let mut opts = ViewOptions::default();
        assert_eq!(
            names(&table(&procs(), &opts)),
            ["postgres", "postgres", "sshd", "systemd", "holder"]
        );
        opts.sort = Resource::Mem;
        let rows = table(&procs(), &opts);
        assert_eq!(rows[0].name, "holder");
        assert_eq!(Column::Rss.cell(&rows[0]), "300.0 MiB");
        opts.sort = Resource::Io;
        assert_eq!(table(&procs(), &opts)[0].pid, Some(13));
    }

    #[test]
    fn grouping_sums_and_counts() {
        let opts = ViewOptions {
            group: GroupBy::Program,
            ..Default::default()
        };
        let rows = table(&procs(), &opts);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].name, "postgres");
        assert_eq!(rows[0].count, 2);
        assert_eq!(rows[0].numbers.cpu_pct, 55.0);
        assert_eq!(rows[0].numbers.threads, 4);
        assert_eq!(Column::Pid.cell(&rows[0]), "2×");
        assert_eq!(rows[0].key, RowKey::Group("postgres".into()));

        let by_user = table(
            &procs(),
            &ViewOptions {
                group: GroupBy::User,
                sort: Resource::Mem,
                ..Default::default()
            },
        );
        assert_eq!(names(&by_user), ["alice", "postgres", "root"]);
        assert_eq!(by_user[2].count, 2);
        assert_eq!(by_user[2].numbers.rss_bytes, 15.0 * 1048576.0);

        let by_parent = table(
            &procs(),
            &ViewOptions {
                group: GroupBy::Parent,
                ..Default::default()
            },
        );
        assert_eq!(by_parent.len(), 1);
        assert_eq!(by_parent[0].name, "systemd (1)");
        assert_eq!(by_parent[0].count, 5);

        let by_cgroup = table(
            &procs(),
            &ViewOptions {
                group: GroupBy::Cgroup,
                ..Default::default()
            },
        );
        assert_eq!(names(&by_cgroup), ["(not captured)"]);
    }

    #[test]
    fn the_filter_matches_name_or_command_without_case() {
        let opts = ViewOptions {
            filter: "POST".into(),
            ..Default::default()
        };
        assert_eq!(names(&table(&procs(), &opts)), ["postgres", "postgres"]);
        let opts = ViewOptions {
            filter: "bin/sshd".into(),
            ..Default::default()
        };
        assert_eq!(names(&table(&procs(), &opts)), ["sshd"]);
        let opts = ViewOptions {
            filter: "nothing-like-it".into(),
            group: GroupBy::User,
            ..Default::default()
        };
        assert!(table(&procs(), &opts).is_empty());
    }

    #[test]
    fn narrow_columns_fit_80_and_wide_ones_are_tops() {
        let narrow: u16 = columns_for(80)
            .iter()
            .filter_map(|c| c.width())
            .map(|w| w + 1)
            .sum();
        assert!(narrow + 5 <= 80, "{narrow}");
        let wide: Vec<&str> = columns_for(200).iter().map(|c| c.title()).collect();
        assert_eq!(wide, PROCESS_COLUMNS);
    }

    #[test]
    fn the_header_names_level_lateness_and_open_incidents() {
        let mut sample = Sample {
            ts_ms: 5_000,
            host_name: "web1".into(),
            interval_ms: 1000,
            late_ms: 120,
            level: Level::Detail,
            ..Default::default()
        };
        sample.host.load1 = 2.5;
        let mut frame = Frame {
            at: SampleRef {
                id: 7,
                ts_ms: 5_000,
            },
            sample,
            processes: vec![],
            open_incidents: vec![],
            position: 7,
            total: 9,
        };
        let opts = ViewOptions::default();
        let lines = header(&frame, Mode::Replay, &opts);
        assert!(
            lines[0].contains("web1") && lines[0].contains("#7/9"),
            "{lines:?}"
        );
        assert!(lines[0].contains("DETAIL") && lines[0].contains("late 120ms"));
        assert!(lines[1].starts_with("load 2.50"));
        assert!(lines[5].starts_with("no incident open"));
        assert!(lines.iter().all(|l| l.chars().count() <= 80), "{lines:#?}");
        frame.open_incidents.push(OpenIncident {
            id: 3,
            rule: "holder".into(),
            severity: "warning".into(),
            opened_ms: 5_000,
        });
        let lines = header(&frame, Mode::Live { following: true }, &opts);
        assert!(
            lines[5].starts_with("!! INCIDENT #3 holder (warning, opens here)"),
            "{lines:?}"
        );
        assert!(lines[0].ends_with("live"));
    }
}
