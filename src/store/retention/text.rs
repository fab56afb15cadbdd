//! Retention's own text helpers: sizes and spans for reasons and notes.
//!
//! Kept in this one file so they can be swapped for the shared `crate::format` ones.

/// "1.0 GiB": a size for people.
pub(super) fn bytes_text(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// "14d", "10m", "1h30m": short human text of a span of milliseconds.
pub(super) fn human(ms: i64) -> String {
    const UNITS: [(i64, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1000, "s"),
    ];
    if ms <= 0 {
        return "0s".into();
    }
    let mut left = ms;
    let mut out = String::new();
    for (size, unit) in UNITS {
        if left >= size {
            out.push_str(&format!("{}{unit}", left / size));
            left %= size;
        }
    }
    if left > 0 {
        out.push_str(&format!("{left}ms"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_spans() {
        assert_eq!(human(14 * 86_400_000), "14d");
        assert_eq!(human(600_000), "10m");
        assert_eq!(human(5_400_000), "1h30m");
    }
}
