//! Times as people type them, for the commands' `--from`/`--to`/`--at`/`--since`: the grammar
//! is [`crate::format::time`]'s. [`arg`] is the value parser every time option uses, so
//! `--from -2h` reads as a time (not an unknown flag) and a bad value is one clap error line
//! naming the option.

pub use crate::format::time::{format_local, parse_time};
use crate::model::TimestampMs;

/// The value parser of every time option (with `allow_hyphen_values`, so `-2h` is a value).
pub fn arg(s: &str) -> Result<TimestampMs, String> {
    parse_time(s)
}

/// A range as the commands' headings say it: "from 2026-11-26 03:12:00 to 03:20:00".
pub fn span(from: TimestampMs, to: TimestampMs) -> String {
    format!("from {} to {}", format_local(from), format_local(to))
}

/// Now, for a time option left out.
pub fn now() -> TimestampMs {
    jiff::Timestamp::now().as_millisecond()
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, CliCommand, Command};

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::parse_args(args)
    }

    #[test]
    fn relative_times_with_a_hyphen_are_values_everywhere() {
        for args in [
            &["top", "--from", "-2h", "--to", "now"][..],
            &["top", "--at", "-10m"],
            &["net", "--from", "-2h", "--to", "-1h"],
            &["net", "--at", "-5m"],
            &["report", "--from", "-2h", "--to", "now", "--html", "x.html"],
            &["rules", "backtest", "--from", "-2h", "--to", "now"],
            &["incidents", "--since", "-1d"],
        ] {
            parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
        let Command::Cli(CliCommand::Top(t)) = parse(&["top", "--from", "-2h", "--to", "now"])
            .unwrap()
            .command
        else {
            panic!("not top")
        };
        let (from, to) = (t.from.unwrap(), t.to.unwrap());
        assert!((to - from - 2 * 3_600_000).abs() < 60_000, "{from} {to}");
    }

    #[test]
    fn a_bad_time_is_one_line_naming_the_option() {
        let e = parse(&["top", "--from", "-2x", "--to", "now"]).unwrap_err();
        let text = e.to_string();
        let first = text.lines().next().unwrap();
        assert!(first.contains("--from") && first.contains("-2x"), "{text}");
    }
}
