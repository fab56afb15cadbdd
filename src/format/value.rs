//! A named value as people read it: what a rule returned when it fired (its `values`), an
//! incident's peaks, the "What tripped it" block of an alert. The unit comes from the value's
//! name, the way the sample's own fields are named: `*_bytes` and memory sizes in binary
//! units, `*_per_s` byte counters as rates, `*_pct`, `cpu` and PSI averages as percentages,
//! counts (`pid`, `cpus`) as integers, anything else rounded to two decimals.

use super::size::{bytes, pct, rate};

/// The unit a value's name implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    BytesPerSecond,
    Percent,
    Count,
    Number,
}

impl Unit {
    /// The unit of a value called `key` (`mem_used_bytes`, `cpu`, `some_avg10`, `load1`).
    pub fn of(key: &str) -> Unit {
        let k = key.to_ascii_lowercase();
        let last = k.rsplit(['.', ':']).next().unwrap_or(&k);
        if last.ends_with("bytes_per_s") || last.ends_with("_bps") {
            Unit::BytesPerSecond
        } else if last.ends_with("_bytes") || matches!(last, "bytes" | "rss" | "mem" | "memory") {
            Unit::Bytes
        } else if last.ends_with("_pct")
            || last.ends_with("_percent")
            || matches!(last, "cpu" | "pct" | "percent")
            || ["avg10", "avg60", "avg300"]
                .iter()
                .any(|a| last.ends_with(a))
        {
            Unit::Percent
        } else if matches!(last, "pid" | "ppid" | "uid" | "cpus" | "count" | "procs")
            || last.ends_with("_count")
        {
            Unit::Count
        } else {
            Unit::Number
        }
    }

    pub fn text(self, n: f64) -> String {
        match self {
            Unit::Bytes => bytes(n),
            Unit::BytesPerSecond => rate(n),
            Unit::Percent => pct(n),
            Unit::Count if n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", n as i64),
            Unit::Count | Unit::Number => number(n),
        }
    }
}

/// `key`'s value in the unit its name implies: `mem_used_bytes 434790400` reads `414.6 MiB`,
/// `cpu 99.993` reads `100.0%`; text stays text, and a table or list is shown as JSON.
pub fn value_text(key: &str, v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) => Unit::of(key).text(f),
            None => n.to_string(),
        },
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// A plain number with at most two decimals and no trailing zeros: `2.5`, `3`, `1235`.
fn number(n: f64) -> String {
    if n.abs() >= 100.0 {
        return format!("{n:.0}");
    }
    let s = format!("{n:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn units_come_from_the_name() {
        assert_eq!(value_text("mem_used_bytes", &json!(434790400)), "414.6 MiB");
        assert_eq!(value_text("cpu", &json!(99.993)), "100.0%");
        assert_eq!(value_text("cpu_busy_pct", &json!(95.04)), "95.0%");
        assert_eq!(value_text("psi_cpu_some_avg10", &json!(80.2)), "80.2%");
        assert_eq!(value_text("rx_bytes_per_s", &json!(2048)), "2.0 KiB/s");
        assert_eq!(value_text("pid", &json!(4242)), "4242");
        assert_eq!(value_text("cpus", &json!(2.0)), "2");
        assert_eq!(value_text("load1", &json!(3.200001)), "3.2");
        assert_eq!(value_text("per_cpu", &json!(2.126)), "2.13");
        assert_eq!(value_text("score", &json!(1234.56)), "1235");
        assert_eq!(value_text("name", &json!("perl")), "perl");
        assert_eq!(value_text("allowed", &json!(true)), "true");
        assert_eq!(value_text("top", &json!(null)), "-");
        assert_eq!(value_text("near_zero", &json!(-0.001)), "0");
    }
}
