//! `[rules.<name>]`: per-rule settings and parameters. The config only knows their shape (a
//! table per rule) and where each key is written; which keys a rule accepts and of what type
//! is checked against the loaded rules (see `rules::RuleSettings`), with the file and line
//! kept here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the `[rules.<name>]` tables were written: the file and, per rule, the line of its
/// header and of each key (0 when not found, e.g. an inline table).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PerRuleOrigin {
    pub file: PathBuf,
    pub lines: BTreeMap<String, (usize, BTreeMap<String, usize>)>,
}

impl PerRuleOrigin {
    /// Finds the lines of every rule and key of `per_rule` in `text`.
    pub(super) fn locate(
        per_rule: &BTreeMap<String, toml::Value>,
        text: &str,
        path: &Path,
    ) -> PerRuleOrigin {
        let mut lines = BTreeMap::new();
        for (rule, value) in per_rule {
            let section = format!("rules.{rule}");
            let header = section_line(text, &section).unwrap_or(0);
            let keys = value
                .as_table()
                .map(|t| {
                    t.keys()
                        .map(|k| {
                            let line = super::line_of_key(text, &format!("{section}.{k}"))
                                .unwrap_or(header);
                            (k.clone(), line)
                        })
                        .collect()
                })
                .unwrap_or_default();
            lines.insert(rule.clone(), (header, keys));
        }
        PerRuleOrigin {
            file: path.to_path_buf(),
            lines,
        }
    }
}

/// The line of a `[section]` header (quotes around parts ignored).
fn section_line(text: &str, section: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let t = l.trim();
            t.starts_with('[')
                && t.trim_matches(|c| c == '[' || c == ']')
                    .replace(['"', '\''], "")
                    .split('.')
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(".")
                    == section
        })
        .map(|i| i + 1)
}

/// A key of `[rules]` that is neither a `[rules]` setting nor a table: the error to report.
pub(super) fn check_shape(
    per_rule: &BTreeMap<String, toml::Value>,
) -> Result<(), (String, String)> {
    for (key, value) in per_rule {
        if !value.is_table() {
            return Err((
                format!("rules.{key}"),
                "unknown key; [rules] takes dir, instruction_budget, memory_limit, wall_limit, \
                 rule_wall_limit, max_consecutive_errors, allow_exec, exec_timeout, or a \
                 [rules.<rule name>] table of that rule's settings"
                    .to_string(),
            ));
        }
    }
    Ok(())
}

impl super::Rules {
    /// `[rules.<rule>] rate_limit`, when set and a valid duration (the engine reports a bad
    /// one when the rules load, so a config that loads has only good ones).
    pub fn rate_limit_of(&self, rule: &str) -> Option<super::Duration> {
        let v = self.per_rule.get(rule)?.get("rate_limit")?;
        match v {
            toml::Value::String(s) => super::Duration::parse(s).ok(),
            toml::Value::Integer(i) if *i >= 0 => Some(super::Duration::from_secs(*i as u64)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use std::path::Path;

    #[test]
    fn rule_tables_are_kept_with_their_lines() {
        let text = "[rules]\ndir = \"r\"\n\n[rules.cpu_hog]\nthreshold = 70\nhold = \"2m\"\n";
        let c = Config::parse(text, Path::new("t.toml")).unwrap();
        assert_eq!(
            c.rules.per_rule["cpu_hog"]["threshold"].as_integer(),
            Some(70)
        );
        let (header, keys) = &c.rules.per_rule_origin.lines["cpu_hog"];
        assert_eq!((*header, keys["threshold"], keys["hold"]), (4, 5, 6));
        assert_eq!(c.rules.per_rule_origin.file, Path::new("t.toml"));
        assert_eq!(c.rules.rate_limit_of("cpu_hog"), None, "no rate_limit set");
    }

    #[test]
    fn a_rule_rate_limit_is_read_from_its_table() {
        let text = "[rules.disk_full]\nrate_limit = \"1h\"\n";
        let c = Config::parse(text, Path::new("t.toml")).unwrap();
        assert_eq!(
            c.rules.rate_limit_of("disk_full"),
            Some(super::super::Duration::from_secs(3600))
        );
        assert_eq!(c.rules.rate_limit_of("cpu_hog"), None);
    }

    #[test]
    fn a_plain_unknown_key_in_rules_is_still_an_error() {
        let e = Config::parse("[rules]\ndri = \"x\"\n", Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.toml:2: rules.dri: unknown key"), "{e}");
    }
}
