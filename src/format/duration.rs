//! Durations: one grammar for every place a user writes one (the config, the alert config,
//! Lua rules and rule test files), and the two ways hogtrap prints one.
//!
//! The grammar is jiff's friendly format (`"250ms"`, `"10s"`, `"5m"`, `"1h30m"`, `"1m 30s"`,
//! `"2 hours"`, `"1.5h"`, `"14d"`, `"1w"`, days and weeks being 24 h and 7 days) and ISO 8601
//! (`"PT10S"`), plus a bare number, which is seconds (`"90"`, `"1.5"`). A negative duration
//! is refused. Built on jiff rather than by hand: it is the time crate the rest of hogtrap
//! already uses, and it reads every form the docs, examples and rules write.

use std::time::Duration;

use jiff::{Span, SpanRelativeTo};

/// Reads a duration in the one grammar (see the module header). Zero is allowed; a caller
/// that needs a positive duration says so itself.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err(bad(text, "empty"));
    }
    if let Ok(secs) = t.parse::<f64>() {
        return if secs.is_finite() && secs >= 0.0 {
            Ok(Duration::from_secs_f64(secs))
        } else {
            Err(bad(text, "must not be negative"))
        };
    }
    let span: Span = t.parse().map_err(|e| bad(text, e))?;
    let signed = span
        .to_duration(SpanRelativeTo::days_are_24_hours())
        .map_err(|e| bad(text, e))?;
    if signed.is_negative() {
        return Err(bad(text, "must not be negative"));
    }
    Duration::try_from(signed).map_err(|e| bad(text, e))
}

fn bad(text: &str, why: impl std::fmt::Display) -> String {
    format!("expected a duration like \"10s\", \"1m 30s\" or \"1h30m\", got \"{text}\" ({why})")
}

/// A duration as the config writes it back: `"10s"`, `"1m 30s"`, `"14days"`, `"500ms"`
/// (humantime's format, which [`parse_duration`] reads back).
pub fn duration_text(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// "3m12s"-style text for a span of milliseconds: days, hours, minutes and seconds without
/// spaces ("14d", "1h30m", "3m12s"), whole seconds from one second up, `"250ms"` below it, and
/// `"0s"` for nothing. Used for ages, gaps, windows and retention spans in logs, alerts, the
/// report and the CLI.
pub fn human_ms(ms: i64) -> String {
    const UNITS: [(i64, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1000, "s"),
    ];
    if ms <= 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let mut left = ms;
    let mut out = String::new();
    for (size, unit) in UNITS {
        if left >= size {
            out.push_str(&format!("{}{unit}", left / size));
            left %= size;
        }
    }
    out
}

/// CPU time, e.g. `42.0 s`, `12m 03s`, `3h 07m`.
pub fn cpu_seconds(s: f64) -> String {
    if s < 600.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        let m = (s / 60.0).floor();
        format!("{m:.0}m {:02.0}s", (s - m * 60.0).floor())
    } else {
        let h = (s / 3600.0).floor();
        format!("{h:.0}h {:02.0}m", ((s - h * 3600.0) / 60.0).floor())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Result<Duration, String> {
        Ok(Duration::from_secs(s))
    }

    #[test]
    fn every_form_the_docs_rules_and_tests_write() {
        assert_eq!(parse_duration("10s"), secs(10));
        assert_eq!(parse_duration("5m"), secs(300));
        assert_eq!(parse_duration("2h"), secs(7200));
        assert_eq!(parse_duration("1h30m"), secs(5400));
        assert_eq!(parse_duration("1m 30s"), secs(90));
        assert_eq!(parse_duration("1d"), secs(86_400));
        assert_eq!(parse_duration("14d"), secs(14 * 86_400));
        assert_eq!(parse_duration("1w"), secs(7 * 86_400));
        assert_eq!(parse_duration("0s"), secs(0));
        assert_eq!(parse_duration(" 30s "), secs(30));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5min"), secs(300));
        assert_eq!(parse_duration("10sec"), secs(10));
        assert_eq!(parse_duration("2 hours"), secs(7200));
        assert_eq!(parse_duration("1.5m"), secs(90));
        assert_eq!(parse_duration("PT2S"), secs(2));
    }

    #[test]
    fn a_bare_number_is_seconds() {
        assert_eq!(parse_duration("90"), secs(90));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn rejections_say_what_would_be_right() {
        for bad in ["", "ten", "5 parsecs", "-1", "-5s", "10 s ago"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(
                e.starts_with(&format!(
                    "expected a duration like \"10s\", \"1m 30s\" or \"1h30m\", got \"{bad}\""
                )),
                "{bad:?}: {e}"
            );
        }
        assert!(parse_duration("-1")
            .unwrap_err()
            .contains("must not be negative"));
    }

    #[test]
    fn written_back_as_the_parser_reads_it() {
        for d in [10, 90, 5400, 14 * 86_400] {
            let d = Duration::from_secs(d);
            assert_eq!(parse_duration(&duration_text(d)), Ok(d));
        }
        assert_eq!(duration_text(Duration::from_secs(90)), "1m 30s");
        assert_eq!(duration_text(Duration::from_millis(500)), "500ms");
    }

    #[test]
    fn compact_spans() {
        assert_eq!(human_ms(250), "250ms");
        assert_eq!(human_ms(-5), "0s");
        assert_eq!(human_ms(14 * 86_400_000), "14d");
        assert_eq!(human_ms(600_000), "10m");
        assert_eq!(human_ms(192_400), "3m12s");
        assert_eq!(human_ms(5_400_000), "1h30m");
    }

    #[test]
    fn cpu_time() {
        assert_eq!(cpu_seconds(42.04), "42.0 s");
        assert_eq!(cpu_seconds(723.0), "12m 03s");
        assert_eq!(cpu_seconds(3.0 * 3600.0 + 7.0 * 60.0), "3h 07m");
    }
}

#[cfg(test)]
/// The forms the rules and their test files write, kept from the rules' old parser.
mod rule_forms {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("").is_err());
    }
}
