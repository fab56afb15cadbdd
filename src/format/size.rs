//! Sizes, rates and percentages: `2.0 KiB`, `1.0 KiB/s`, `99.4%`, and the size grammar of
//! the config (`"512MiB"`, `"2GB"`).

/// The binary units [`bytes`] and the report's chart axes count in.
pub const BYTE_UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/// Bytes in binary units: `512 B`, `2.0 KiB`, `3.0 MiB` … `PiB`.
pub fn bytes(n: f64) -> String {
    const UNITS: [&str; 6] = BYTE_UNITS;
    let mut v = n;
    let mut u = 0;
    while v.abs() >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} {}", UNITS[0])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Bytes per second: `1.0 KiB/s`.
pub fn rate(n: f64) -> String {
    format!("{}/s", bytes(n))
}

/// A percentage with one decimal: `99.4%` (CPU: 100 = one core).
pub fn pct(v: f64) -> String {
    format!("{v:.1}%")
}

/// Reads a size as people write it: `"512MiB"`, `"2GB"`, `"1024"` (bytes).
pub fn parse_size(text: &str) -> Result<u64, String> {
    parse_size::parse_size(text.trim())
        .map_err(|e| format!("expected a size like \"512MiB\", got \"{text}\" ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_rates_and_percentages() {
        assert_eq!(bytes(0.0), "0 B");
        assert_eq!(bytes(1023.0), "1023 B");
        assert_eq!(bytes(2048.0), "2.0 KiB");
        assert_eq!(bytes(3.0 * 1024.0 * 1024.0), "3.0 MiB");
        assert_eq!(bytes(1024f64.powi(6)), "1024.0 PiB");
        assert_eq!(rate(1024.0), "1.0 KiB/s");
        assert_eq!(pct(99.44), "99.4%");
    }

    #[test]
    fn size_grammar() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size(" 2GB "), Ok(2_000_000_000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        let e = parse_size("lots").unwrap_err();
        assert!(
            e.starts_with("expected a size like \"512MiB\", got \"lots\""),
            "{e}"
        );
    }
}
