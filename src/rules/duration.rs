//! Durations as rules and test files write them: `"30s"`, `"5m"`, `"1h30m"`, `"1d"`, `"250ms"`,
//! or a bare number of seconds.

use std::time::Duration;

/// Parses `"250ms"`, `"30s"`, `"5m"`, `"2h"`, `"1d"`, `"1w"` and sums like `"1h30m"`.
/// A bare number (`"90"`, `"1.5"`) is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = t.parse::<f64>() {
        return secs_to_duration(secs).ok_or_else(|| format!("bad duration {text:?}"));
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("bad duration {text:?}: missing unit (ms, s, m, h, d, w)"))?;
        if num_len == 0 {
            return Err(format!("bad duration {text:?}: expected a number"));
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("bad duration {text:?}"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = rest[..unit_len].trim();
        let factor = match unit {
            "ms" => 0.001,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "w" => 7.0 * 86400.0,
            _ => {
                return Err(format!(
                    "bad duration {text:?}: unknown unit {unit:?} (use ms, s, m, h, d or w)"
                ))
            }
        };
        total += value * factor;
        rest = rest[unit_len..].trim_start();
    }
    secs_to_duration(total).ok_or_else(|| format!("bad duration {text:?}"))
}

fn secs_to_duration(secs: f64) -> Option<Duration> {
    if secs.is_finite() && secs >= 0.0 {
        Some(Duration::from_secs_f64(secs))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
