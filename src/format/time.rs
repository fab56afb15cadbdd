//! Times as people type them: `now`, `10m ago`, `-2h`, `2026-11-26 03:12[:07]`, `03:12`
//! (today), RFC 3339, local time unless an offset is given; and a timestamp as local time.
//! Relative times use the one duration grammar of [`super::duration`].

use jiff::{civil, tz::TimeZone, Timestamp, Zoned};

use super::duration::parse_duration;
use crate::model::TimestampMs;

pub fn parse_time(s: &str) -> Result<TimestampMs, String> {
    parse_time_at(s, Zoned::now())
}

pub fn parse_time_at(s: &str, now: Zoned) -> Result<TimestampMs, String> {
    let t = s.trim();
    let now_ms = now.timestamp().as_millisecond();
    if t.eq_ignore_ascii_case("now") {
        return Ok(now_ms);
    }
    let relative = t
        .strip_suffix(" ago")
        .or_else(|| t.strip_suffix("ago"))
        .or_else(|| t.strip_prefix('-'));
    if let Some(span) = relative {
        let d = parse_duration(span).map_err(|_| bad(s))?;
        return Ok(now_ms - d.as_millis() as i64);
    }
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    let tz = now.time_zone().clone();
    for fmt in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(dt) = civil::DateTime::strptime(fmt, t) {
            return local(dt, &tz).ok_or_else(|| bad(s));
        }
    }
    if let Ok(d) = civil::Date::strptime("%Y-%m-%d", t) {
        return local(d.to_datetime(civil::Time::midnight()), &tz).ok_or_else(|| bad(s));
    }
    for fmt in ["%H:%M:%S", "%H:%M"] {
        if let Ok(tm) = civil::Time::strptime(fmt, t) {
            return local(now.date().to_datetime(tm), &tz).ok_or_else(|| bad(s));
        }
    }
    Err(bad(s))
}

fn local(dt: civil::DateTime, tz: &TimeZone) -> Option<TimestampMs> {
    dt.to_zoned(tz.clone())
        .ok()
        .map(|z| z.timestamp().as_millisecond())
}

fn bad(s: &str) -> String {
    format!(
        "cannot read the time \"{s}\": use e.g. \"2026-11-26 03:12\", \"03:12\", \"10m ago\", \"-2h\", \"now\" or RFC 3339"
    )
}

/// Local "YYYY-MM-DD HH:MM:SS" for a timestamp.
pub fn format_local(ms: TimestampMs) -> String {
    match Timestamp::from_millisecond(ms) {
        Ok(ts) => ts
            .to_zoned(TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Zoned {
        "2026-11-26T12:00:00+00:00[UTC]".parse().unwrap()
    }

    #[test]
    fn forms() {
        let base = now().timestamp().as_millisecond();
        assert_eq!(parse_time_at("now", now()).unwrap(), base);
        assert_eq!(parse_time_at("10m ago", now()).unwrap(), base - 600_000);
        assert_eq!(parse_time_at("-2h", now()).unwrap(), base - 7_200_000);
        assert_eq!(
            parse_time_at("2026-11-26 03:12", now()).unwrap(),
            base - (8 * 3600 + 48 * 60) * 1000
        );
        assert_eq!(
            parse_time_at("03:12:07", now()).unwrap(),
            base - (8 * 3600 + 47 * 60 + 53) * 1000
        );
        assert_eq!(
            parse_time_at("2026-11-26T03:12:00+01:00", now()).unwrap(),
            base - (9 * 3600 + 48 * 60) * 1000
        );
        assert!(parse_time_at("yesterday-ish", now()).is_err());
    }
}
