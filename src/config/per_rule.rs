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
