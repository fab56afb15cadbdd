//! How a process looks to people, the same in every command (`top`, `show`, `net`,
//! `sample`), in alerts and in the HTML report: [`ProcessLabel`] names it, [`process_cells`]
//! lays out its row, [`resource_value`] and [`resource_total`] give its numbers their units.

use std::fmt;

use super::duration::cpu_seconds;
use super::size::{bytes, pct, rate};
use crate::model::{ProcessIdentity, ProcessRow, Resource};

/// A process as people see it: `name (pid N, user)` in running text (legends, timelines,
/// alerts) and the columns `PID USER NAME` in tables, always in that order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProcessLabel {
    pub pid: i64,
    pub name: String,
    /// `None` when the store does not know it (a culprit whose process row was pruned).
    pub user: Option<String>,
    pub cmdline: Option<String>,
}

impl ProcessLabel {
    /// The table columns [`ProcessLabel::cells`] fills.
    pub const COLUMNS: [&'static str; 3] = ["PID", "USER", "NAME"];

    pub fn new(pid: impl Into<i64>, name: &str, user: Option<&str>) -> ProcessLabel {
        ProcessLabel {
            pid: pid.into(),
            name: name.to_string(),
            user: user.filter(|u| !u.is_empty()).map(str::to_string),
            cmdline: None,
        }
    }

    /// A recorded process: its pid, name, user and command line.
    pub fn of(id: &ProcessIdentity) -> ProcessLabel {
        ProcessLabel::new(id.pid, &id.name, Some(&id.user)).with_cmdline(Some(&id.cmdline))
    }

    pub fn with_cmdline(mut self, cmdline: Option<&str>) -> ProcessLabel {
        self.cmdline = cmdline.filter(|c| !c.is_empty()).map(str::to_string);
        self
    }

    /// PID, USER, NAME (`?` for an unknown user).
    pub fn cells(&self) -> [String; 3] {
        [
            self.pid.to_string(),
            self.user.clone().unwrap_or_else(|| "?".to_string()),
            self.name.clone(),
        ]
    }

    /// The command line cut to `max` characters, or empty.
    pub fn command(&self, max: usize) -> String {
        self.cmdline
            .as_deref()
            .map(|c| short(c, max))
            .unwrap_or_default()
    }
}

impl fmt::Display for ProcessLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.user {
            Some(user) => write!(f, "{} (pid {}, {user})", self.name, self.pid),
            None => write!(f, "{} (pid {})", self.name, self.pid),
        }
    }
}

/// The columns of a process in one sample, as `top --at`, `sample` and `show` print it.
pub const PROCESS_COLUMNS: [&str; 11] = [
    "PID", "USER", "NAME", "S", "CPU", "RSS", "READ/s", "WRITE/s", "NET/s", "THR", "COMMAND",
];
/// The right-aligned (numeric) ones among [`PROCESS_COLUMNS`].
pub const PROCESS_NUMERIC: [usize; 7] = [0, 4, 5, 6, 7, 8, 9];

/// One process's numbers in one sample, in the units of every other command.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProcessNumbers {
    pub state: String,
    pub cpu_pct: f64,
    pub rss_bytes: f64,
    pub read_bytes_per_s: f64,
    pub write_bytes_per_s: f64,
    /// tx + rx; `None` where network accounting was not available.
    pub net_bytes_per_s: Option<f64>,
    pub threads: i64,
}

impl From<&ProcessRow> for ProcessNumbers {
    fn from(p: &ProcessRow) -> ProcessNumbers {
        ProcessNumbers {
            state: p.state.to_string(),
            cpu_pct: p.cpu_pct,
            rss_bytes: p.rss_bytes as f64,
            read_bytes_per_s: p.read_bytes_per_s,
            write_bytes_per_s: p.write_bytes_per_s,
            net_bytes_per_s: net_rate(p.net_tx_bytes_per_s, p.net_rx_bytes_per_s),
            threads: p.threads as i64,
        }
    }
}

/// A process's tx + rx, when network accounting saw it.
pub fn net_rate(tx: Option<f64>, rx: Option<f64>) -> Option<f64> {
    match (tx, rx) {
        (None, None) => None,
        (tx, rx) => Some(tx.unwrap_or(0.0) + rx.unwrap_or(0.0)),
    }
}

impl ProcessNumbers {
    /// The value `r` ranks by, in its unit.
    pub fn value(&self, r: Resource) -> f64 {
        match r {
            Resource::Cpu => self.cpu_pct,
            Resource::Mem => self.rss_bytes,
            Resource::Io => self.read_bytes_per_s + self.write_bytes_per_s,
            Resource::Net => self.net_bytes_per_s.unwrap_or(0.0),
        }
    }

    /// Adds `other`'s numbers (a group's sum); a state that differs becomes `*`.
    pub fn add(&mut self, other: &ProcessNumbers) {
        if self.state != other.state {
            self.state = "*".into();
        }
        self.cpu_pct += other.cpu_pct;
        self.rss_bytes += other.rss_bytes;
        self.read_bytes_per_s += other.read_bytes_per_s;
        self.write_bytes_per_s += other.write_bytes_per_s;
        self.net_bytes_per_s = match (self.net_bytes_per_s, other.net_bytes_per_s) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
        self.threads += other.threads;
    }
}

/// A row for [`PROCESS_COLUMNS`].
pub fn process_cells(p: &ProcessLabel, n: &ProcessNumbers) -> Vec<String> {
    let [pid, user, name] = p.cells();
    vec![
        pid,
        user,
        name,
        n.state.clone(),
        pct(n.cpu_pct),
        bytes(n.rss_bytes),
        rate(n.read_bytes_per_s),
        rate(n.write_bytes_per_s),
        n.net_bytes_per_s.map(rate).unwrap_or_else(|| "-".into()),
        n.threads.to_string(),
        p.command(60),
    ]
}

/// A per-sample value of `r` in its unit: CPU % (100 = one core), RSS bytes, bytes/s.
pub fn resource_value(r: Resource, v: f64) -> String {
    match r {
        Resource::Cpu => pct(v),
        Resource::Mem => bytes(v),
        Resource::Io | Resource::Net => rate(v),
    }
}

/// A total of `r` over a range: CPU time, peak RSS, bytes moved.
pub fn resource_total(r: Resource, v: f64) -> String {
    match r {
        Resource::Cpu => cpu_seconds(v),
        Resource::Mem | Resource::Io | Resource::Net => bytes(v),
    }
}

/// Cuts a command line to fit a terminal row.
pub fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_reads_the_same_in_text_and_tables() {
        let p = ProcessLabel::new(4242u32, "hogtest-burn", Some("alice"))
            .with_cmdline(Some("python3 -c while True: pass"));
        assert_eq!(p.to_string(), "hogtest-burn (pid 4242, alice)");
        assert_eq!(p.cells(), ["4242", "alice", "hogtest-burn"]);
        assert_eq!(p.command(10), "python3 -…");
        let unknown = ProcessLabel::new(7, "gone", None);
        assert_eq!(unknown.to_string(), "gone (pid 7)");
        assert_eq!(unknown.cells()[1], "?");
        assert_eq!(ProcessLabel::new(7, "x", Some("")).user, None);
    }

    #[test]
    fn process_rows_have_one_shape() {
        let p = ProcessLabel::new(9u32, "db", Some("pg")).with_cmdline(Some("postgres -D x"));
        let n = ProcessNumbers {
            state: "R".into(),
            cpu_pct: 150.0,
            rss_bytes: 2048.0,
            read_bytes_per_s: 0.0,
            write_bytes_per_s: 1024.0,
            net_bytes_per_s: None,
            threads: 3,
        };
        let cells = process_cells(&p, &n);
        assert_eq!(cells.len(), PROCESS_COLUMNS.len());
        assert_eq!(
            cells,
            [
                "9",
                "pg",
                "db",
                "R",
                "150.0%",
                "2.0 KiB",
                "0 B/s",
                "1.0 KiB/s",
                "-",
                "3",
                "postgres -D x"
            ]
        );
    }

    #[test]
    fn units_per_resource() {
        assert_eq!(resource_value(Resource::Cpu, 99.44), "99.4%");
        assert_eq!(
            resource_value(Resource::Mem, 3.0 * 1024.0 * 1024.0),
            "3.0 MiB"
        );
        assert_eq!(resource_value(Resource::Net, 2048.0), "2.0 KiB/s");
        assert_eq!(resource_total(Resource::Io, 2048.0), "2.0 KiB");
        assert_eq!(resource_total(Resource::Cpu, 42.04), "42.0 s");
    }
}
