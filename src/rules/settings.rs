//! Per-rule settings (`[rules.<name>]` in the config, `--set rule.key=value`) applied to a
//! rule as it loads: the settings every rule has ([`SETTING_KEYS`]) and the parameters the
//! rule declares with `params = { ... }`, each checked against the declared default's type.
//! A problem is one [`RuleError`] naming the config file, the line and the key.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value as J;

use super::api::RuleDecl;
use super::types::*;
use crate::format::parse_duration;
use crate::model::Severity;

/// Applies `ov` to `decl` and returns the effective parameters and every effective setting
/// (for `hogtrap rules list`). `defaults` are the declared parameters.
pub(crate) fn apply(
    decl: &mut RuleDecl,
    defaults: &serde_json::Map<String, J>,
    ov: Option<&RuleOverride>,
    settings_file: &Path,
) -> Result<(serde_json::Map<String, J>, Vec<EffectiveSetting>), RuleError> {
    let name = decl.name.clone();
    let mut params = defaults.clone();
    let mut from_config: BTreeMap<&str, (u32, bool)> = BTreeMap::new();
    let empty = RuleOverride::default();
    let ov = ov.unwrap_or(&empty);
    for (key, setting) in &ov.keys {
        let fail = |message: String| RuleError {
            rule: Some(name.clone()),
            file: match setting.cli {
                true => "--set".into(),
                false => settings_file.to_path_buf(),
            },
            line: (setting.line > 0).then_some(setting.line),
            kind: ErrorKind::Invalid,
            message: format!("rules.{name}.{key}: {message}"),
        };
        let v = &setting.value;
        match key.as_str() {
            "enabled" => match v {
                J::Bool(b) => decl.enabled = *b,
                other => return Err(fail(format!("expected true or false, got {other}"))),
            },
            "hold" => decl.hold_ms = duration_ms(v).map_err(fail)?,
            "clear_after" => decl.clear_after_ms = duration_ms(v).map_err(fail)?,
            "rate_limit" => decl.rate_limit_ms = Some(duration_ms(v).map_err(fail)?),
            "severity" => {
                decl.severity = v
                    .as_str()
                    .and_then(|s| s.parse::<Severity>().ok())
                    .ok_or_else(|| {
                        fail(format!(
                            "expected \"info\", \"warning\" or \"critical\", got {v}"
                        ))
                    })?
            }
            "labels" => match v {
                J::Object(m) => {
                    for (k, lv) in m {
                        let J::String(lv) = lv else {
                            return Err(fail(format!("label {k}: expected a string, got {lv}")));
                        };
                        decl.labels.insert(k.clone(), lv.clone());
                    }
                }
                other => return Err(fail(format!("expected a table of strings, got {other}"))),
            },
            _ => match defaults.get(key) {
                Some(default) => {
                    same_type(default, v).map_err(fail)?;
                    params.insert(key.clone(), v.clone());
                }
                None => {
                    let declared: Vec<&str> = defaults.keys().map(String::as_str).collect();
                    return Err(fail(format!(
                        "unknown key; rule {name} declares {} (and every rule has {})",
                        if declared.is_empty() {
                            "no parameters".to_string()
                        } else {
                            declared.join(", ")
                        },
                        SETTING_KEYS.join(", ")
                    )));
                }
            },
        }
        from_config.insert(key.as_str(), (setting.line, setting.cli));
    }
    let at = |key: &str| {
        from_config.get(key).map(|&(line, cli)| match (line, cli) {
            (_, true) => "--set".to_string(),
            (0, false) => settings_file.display().to_string(),
            (l, false) => format!("{}:{l}", settings_file.display()),
        })
    };
    let mut effective = Vec::new();
    let mut push = |key: &str, value: J| {
        let at = at(key);
        effective.push(EffectiveSetting {
            key: key.to_string(),
            value,
            source: if at.is_some() { "config" } else { "default" }.to_string(),
            at,
        });
    };
    let secs = |ms: i64| J::String(crate::format::human_ms(ms));
    push("enabled", J::Bool(decl.enabled));
    push("severity", J::String(decl.severity.as_str().to_string()));
    if decl.every_ms.is_none() {
        push("hold", secs(decl.hold_ms));
        push("clear_after", secs(decl.clear_after_ms));
    }
    push(
        "labels",
        J::Object(
            decl.labels
                .iter()
                .map(|(k, v)| (k.clone(), J::String(v.clone())))
                .collect(),
        ),
    );
    push("rate_limit", decl.rate_limit_ms.map_or(J::Null, secs));
    for (k, v) in &params {
        push(k, v.clone());
    }
    Ok((params, effective))
}

/// The rules named in `settings` that are not loaded: one error each.
pub(crate) fn unknown_rules<'a>(
    settings: &RuleSettings,
    loaded: impl Iterator<Item = &'a str> + Clone,
) -> Vec<RuleError> {
    if settings.ignore_unknown_rules {
        return Vec::new();
    }
    settings
        .rules
        .iter()
        .filter(|(name, _)| !loaded.clone().any(|l| l == name.as_str()))
        .map(|(name, ov)| {
            let mut known: Vec<&str> = loaded.clone().collect();
            known.sort();
            let from_cli = !ov.keys.is_empty() && ov.keys.values().all(|s| s.cli);
            RuleError {
                rule: Some(name.clone()),
                file: match from_cli {
                    true => "--set".into(),
                    false => settings.file.clone(),
                },
                line: (ov.line > 0).then_some(ov.line),
                kind: ErrorKind::Invalid,
                message: format!(
                    "rules.{name}: no rule named {name} is loaded (rules: {})",
                    known.join(", ")
                ),
            }
        })
        .collect()
}

fn duration_ms(v: &J) -> Result<i64, String> {
    match v {
        J::String(s) => parse_duration(s).map(|d| d.as_millis() as i64),
        J::Number(n) => match n.as_f64() {
            Some(f) if f >= 0.0 && f.is_finite() => Ok((f * 1000.0) as i64),
            _ => Err(format!("expected a duration like \"30s\", got {n}")),
        },
        other => Err(format!("expected a duration like \"30s\", got {other}")),
    }
}

fn kind(v: &J) -> &'static str {
    match v {
        J::Null => "nothing",
        J::Bool(_) => "true or false",
        J::Number(_) => "a number",
        J::String(_) => "a string",
        J::Array(_) => "a list",
        J::Object(_) => "a table",
    }
}

/// `given` must be of the default's type; a duration default (`"20s"`) takes durations only,
/// and a list takes elements of its first element's type.
fn same_type(default: &J, given: &J) -> Result<(), String> {
    let mismatch = || {
        Err(format!(
            "expected {} (the default is {default}), got {given}",
            kind(default)
        ))
    };
    match (default, given) {
        (J::Bool(_), J::Bool(_)) | (J::Number(_), J::Number(_)) => Ok(()),
        (J::String(d), J::String(g)) => {
            if parse_duration(d).is_ok() && d.chars().any(|c| c.is_ascii_alphabetic()) {
                parse_duration(g)
                    .map(|_| ())
                    .map_err(|e| format!("expected a duration like {default}: {e}"))
            } else {
                Ok(())
            }
        }
        (J::Array(d), J::Array(g)) => match d.first() {
            Some(first) => g.iter().try_for_each(|item| same_type(first, item)),
            None => Ok(()),
        },
        // An empty Lua table is a list and a map: either shape is accepted.
        (J::Object(d), J::Array(_)) if d.is_empty() => Ok(()),
        (J::Object(_), J::Object(_)) => Ok(()),
        _ => mismatch(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_follow_the_default() {
        assert!(same_type(&json!(90), &json!(70.5)).is_ok());
        assert!(same_type(&json!(90), &json!("70")).is_err());
        assert!(same_type(&json!("20s"), &json!("2m")).is_ok());
        assert!(same_type(&json!("20s"), &json!("soon")).is_err());
        assert!(same_type(&json!(["10."]), &json!(["172.16."])).is_ok());
        assert!(same_type(&json!(["10."]), &json!([1])).is_err());
        assert!(same_type(&json!(true), &json!(1)).is_err());
        assert_eq!(duration_ms(&json!("3s")), Ok(3000));
        assert_eq!(duration_ms(&json!(2)), Ok(2000));
        assert!(duration_ms(&json!(true)).is_err());
    }

    /// `config.toml.example` shows a commented `[rules.<name>]` block for every shipped rule,
    /// naming every setting and parameter, each parameter with its declared default.
    #[test]
    fn the_example_config_has_a_block_per_shipped_rule() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let example = std::fs::read_to_string(root.join("config.toml.example")).unwrap();
        let sources = super::super::load_dir_sources(&root.join("rules"), false).unwrap();
        let engine = super::super::Engine::load(RulesConfig::default(), sources).unwrap();
        let normal = |v: &J| match v {
            J::Object(m) if m.is_empty() => json!([]),
            J::Number(n) => json!(n.as_f64()),
            other => other.clone(),
        };
        for rule in engine.rules() {
            let header = format!("# [rules.{}]", rule.name);
            let block: Vec<&str> = example
                .lines()
                .skip_while(|l| *l != header)
                .skip(1)
                .take_while(|l| !l.trim().is_empty())
                .filter_map(|l| l.strip_prefix("# "))
                .filter(|l| !l.starts_with('('))
                .collect();
            assert!(!block.is_empty(), "config.toml.example lacks `{header}`");
            let table: toml::Table = toml::from_str(&block.join("\n"))
                .unwrap_or_else(|e| panic!("{header} does not parse uncommented: {e}"));
            for s in &rule.settings {
                let shown = table
                    .get(&s.key)
                    .unwrap_or_else(|| panic!("{header} lacks {}", s.key));
                if s.key == "labels" || s.key == "rate_limit" {
                    continue; // examples, not defaults
                }
                let shown = serde_json::to_value(shown).unwrap();
                assert_eq!(
                    normal(&shown),
                    normal(&s.value),
                    "{header} {}: the example shows {shown}, the rule's default is {}",
                    s.key,
                    s.value
                );
            }
            for key in table.keys() {
                assert!(
                    rule.settings.iter().any(|s| &s.key == key),
                    "{header} shows {key}, which the rule does not declare"
                );
            }
        }
    }

    #[test]
    fn set_arguments_parse_as_toml() {
        let mut s = RuleSettings::default();
        s.set("cpu_hog.threshold=70").unwrap();
        s.set("cpu_hog.hold=2m").unwrap();
        s.set("cpu_hog.enabled = false").unwrap();
        let keys = &s.rules["cpu_hog"].keys;
        assert_eq!(keys["threshold"].value, json!(70));
        assert_eq!(keys["hold"].value, json!("2m"));
        assert_eq!(keys["enabled"].value, json!(false));
        assert!(s.set("threshold=70").is_err());
    }
}
