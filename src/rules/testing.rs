//! `hogtrap rules test`: rule tests as data, like `promtool test rules`.
//!
//! A test file (TOML) names rule files, describes fixture samples over time and lists the
//! firings (with their actions) and rule states expected. The runner feeds the samples to a
//! real engine and reports every difference. The format is documented in `docs/rules.md`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use super::engine::{check_file_permissions, Engine, RuleSource};
use super::types::*;
use crate::format::parse_duration;
use crate::model::Severity;
use crate::model::{ProcessRow, Psi, Sample};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    /// Rule files, relative to the test file.
    rules: Vec<String>,
    /// RFC 3339 time of offset 0.
    start: Option<String>,
    /// Default step between samples.
    interval: Option<String>,
    #[serde(default)]
    config: TestConfig,
    /// Fields every sample starts from (model names, as `hogtrap sample --json` prints).
    #[serde(default)]
    defaults: Map<String, Value>,
    #[serde(default)]
    samples: Vec<SampleSpec>,
    #[serde(default)]
    expect: Vec<ExpectFiring>,
    #[serde(default)]
    expect_state: Vec<ExpectState>,
    /// Rule errors fail the test unless this is set.
    #[serde(default)]
    allow_errors: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestConfig {
    allow_exec: Option<bool>,
    instruction_budget: Option<u64>,
    max_consecutive_errors: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct SampleSpec {
    at: Option<String>,
    repeat: Option<u32>,
    #[serde(flatten)]
    fields: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectFiring {
    at: String,
    rule: String,
    kind: FiringKind,
    severity: Option<Severity>,
    values: Option<Map<String, Value>>,
    actions: Option<Vec<Map<String, Value>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectState {
    at: String,
    rule: String,
    status: super::machine::Status,
}

/// The result of one test file.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TestOutcome {
    pub file: PathBuf,
    pub samples: usize,
    pub firings: Vec<Firing>,
    /// Empty when the test passed.
    pub failures: Vec<String>,
}

impl TestOutcome {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

fn bad(path: &Path, message: impl Into<String>) -> RulesError {
    RulesError::TestFile {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Runs one test file. `Err` means the file itself is broken (unreadable, bad TOML, unknown
/// field, rule file missing or refused); a test that runs and fails is `Ok` with failures.
pub fn run_test_file(path: &Path, cfg: &RulesConfig) -> Result<TestOutcome, RulesError> {
    let text = std::fs::read_to_string(path).map_err(|source| RulesError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let test: TestFile = toml::from_str(&text).map_err(|e| bad(path, e.to_string()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut sources = Vec::new();
    for rel in &test.rules {
        let rule_path = base.join(rel);
        if cfg.strict_permissions {
            check_file_permissions(&rule_path)?;
        }
        let text = std::fs::read_to_string(&rule_path).map_err(|source| RulesError::Io {
            path: rule_path.clone(),
            source,
        })?;
        sources.push(RuleSource {
            path: rule_path,
            text,
        });
    }
    let start_ms = match &test.start {
        None => 1_764_126_000_000, // 2026-11-26T03:00:00Z
        Some(s) => s
            .parse::<jiff::Timestamp>()
            .map_err(|e| bad(path, format!("start: {e}")))?
            .as_millisecond(),
    };
    let interval_ms = ms(path, "interval", test.interval.as_deref().unwrap_or("10s"))?;
    let offset_ms = |what: &str, v: &str| ms(path, what, v);

    let mut cfg = cfg.clone();
    // Settings (config, --set) apply to the rules this test loads; others are not here.
    cfg.settings.ignore_unknown_rules = true;
    if let Some(v) = test.config.allow_exec {
        cfg.allow_exec = v;
    }
    if let Some(v) = test.config.instruction_budget {
        cfg.instruction_budget = v;
    }
    if let Some(v) = test.config.max_consecutive_errors {
        cfg.max_consecutive_errors = v;
    }
    let mut engine = Engine::load(cfg, sources).map_err(|errors| {
        bad(
            path,
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;

    // Expand samples: each spec inherits the previous one's fields.
    let template = serde_json::to_value(Sample::default()).map_err(|e| bad(path, e.to_string()))?;
    let mut current = template.clone();
    merge_checked(
        &mut current,
        &Value::Object(test.defaults.clone()),
        "defaults",
    )
    .map_err(|e| bad(path, e))?;
    let mut timeline: Vec<(i64, Sample)> = Vec::new();
    let mut next_offset = 0i64;
    for (i, spec) in test.samples.iter().enumerate() {
        merge_checked(
            &mut current,
            &Value::Object(spec.fields.clone()),
            &format!("samples[{i}]"),
        )
        .map_err(|e| bad(path, e))?;
        let mut offset = match &spec.at {
            Some(at) => offset_ms(&format!("samples[{i}].at"), at)?,
            None => next_offset,
        };
        let mut sample: Sample = serde_json::from_value(current.clone())
            .map_err(|e| bad(path, format!("samples[{i}]: {e}")))?;
        if sample.interval_ms == 0 {
            sample.interval_ms = interval_ms as u64;
        }
        for _ in 0..spec.repeat.unwrap_or(1).max(1) {
            let mut s = sample.clone();
            s.ts_ms = start_ms + offset;
            timeline.push((offset, s));
            offset += interval_ms;
        }
        next_offset = offset;
    }

    let mut failures = Vec::new();
    let mut firings: Vec<(i64, Firing)> = Vec::new();
    let states_at: Vec<(i64, String, super::machine::Status)> = test
        .expect_state
        .iter()
        .map(|e| {
            Ok((
                offset_ms("expect_state.at", &e.at)?,
                e.rule.clone(),
                e.status,
            ))
        })
        .collect::<Result<_, RulesError>>()?;
    for (offset, sample) in &timeline {
        let eval = engine.evaluate(sample);
        if !test.allow_errors {
            for e in &eval.errors {
                failures.push(format!("at {}: rule error: {e}", fmt_offset(*offset)));
            }
        }
        firings.extend(eval.firings.into_iter().map(|f| (*offset, f)));
        for (at, rule, status) in &states_at {
            if at == offset {
                let actual = engine
                    .rules()
                    .into_iter()
                    .find(|r| &r.name == rule)
                    .map(|r| r.state.status);
                if actual != Some(*status) {
                    failures.push(format!(
                        "at {}: rule {rule}: expected status {}, got {}",
                        fmt_offset(*offset),
                        status.as_str(),
                        actual.map_or("(no such rule)", |s| s.as_str())
                    ));
                }
            }
        }
    }
    for (at, rule, _) in &states_at {
        if !timeline.iter().any(|(o, _)| o == at) {
            failures.push(format!(
                "expect_state at {}: no sample at that offset",
                fmt_offset(*at)
            ));
            let _ = rule;
        }
    }

    // Pair expectations with firings.
    let mut unmatched: Vec<Option<&(i64, Firing)>> = firings.iter().map(Some).collect();
    for exp in &test.expect {
        let at = offset_ms("expect.at", &exp.at)?;
        let found = unmatched
            .iter_mut()
            .find(|f| f.is_some_and(|(o, f)| *o == at && f.rule == exp.rule && f.kind == exp.kind));
        let Some(slot) = found else {
            let near: Vec<String> = firings
                .iter()
                .filter(|(_, f)| f.rule == exp.rule)
                .map(|(o, f)| format!("{:?} at {}", f.kind, fmt_offset(*o)))
                .collect();
            failures.push(format!(
                "expected {:?} of {} at {}, not produced (this rule produced: {})",
                exp.kind,
                exp.rule,
                exp.at,
                if near.is_empty() {
                    "nothing".into()
                } else {
                    near.join(", ")
                }
            ));
            continue;
        };
        // `found` only matches slots that are `Some`.
        let Some((_, firing)) = slot.take() else {
            continue;
        };
        let what = format!("{:?} of {} at {}", exp.kind, exp.rule, exp.at);
        if let Some(sev) = exp.severity {
            if sev != firing.severity {
                failures.push(format!(
                    "{what}: severity {:?}, expected {sev:?}",
                    firing.severity
                ));
            }
        }
        if let Some(values) = &exp.values {
            if let Err(e) = subset(&Value::Object(values.clone()), &firing.values, "values") {
                failures.push(format!("{what}: {e}"));
            }
        }
        if let Some(actions) = &exp.actions {
            let actual: Vec<Value> = firing
                .actions
                .iter()
                .map(|a| serde_json::to_value(a).unwrap_or(Value::Null))
                .collect();
            if actions.len() != actual.len() {
                failures.push(format!(
                    "{what}: {} actions, expected {}: {}",
                    actual.len(),
                    actions.len(),
                    serde_json::to_string(&actual).unwrap_or_default()
                ));
            } else {
                for (i, (e, a)) in actions.iter().zip(&actual).enumerate() {
                    if let Err(err) = subset(&Value::Object(e.clone()), a, &format!("actions[{i}]"))
                    {
                        failures.push(format!("{what}: {err}"));
                    }
                }
            }
        }
    }
    for (offset, f) in unmatched.into_iter().flatten() {
        failures.push(format!(
            "unexpected {:?} of {} at {} (actions: {})",
            f.kind,
            f.rule,
            fmt_offset(*offset),
            serde_json::to_string(&f.actions).unwrap_or_default()
        ));
    }
    Ok(TestOutcome {
        file: path.to_path_buf(),
        samples: timeline.len(),
        firings: firings.into_iter().map(|(_, f)| f).collect(),
        failures,
    })
}

fn ms(path: &Path, what: &str, v: &str) -> Result<i64, RulesError> {
    parse_duration(v)
        .map(|d| d.as_millis() as i64)
        .map_err(|e| bad(path, format!("{what}: {e}")))
}

fn fmt_offset(ms: i64) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Merges `patch` into `target`, refusing keys the model does not have (typos).
fn merge_checked(target: &mut Value, patch: &Value, path: &str) -> Result<(), String> {
    let (Value::Object(t), Value::Object(p)) = (&mut *target, patch) else {
        *target = patch.clone();
        return Ok(());
    };
    for (k, v) in p {
        let here = format!("{path}.{k}");
        let Some(slot) = t.get_mut(k) else {
            let known: Vec<&String> = t.keys().collect();
            return Err(format!("{here}: unknown field (known: {known:?})"));
        };
        if k == "processes" || k == "exits" {
            let Value::Array(list) = v else {
                return Err(format!("{here}: expected a list of {k}"));
            };
            let mut out = Vec::new();
            for (i, p) in list.iter().enumerate() {
                let mut proc = if k == "exits" {
                    serde_json::to_value(crate::model::ProcessExit {
                        count: 1,
                        ..Default::default()
                    })
                } else {
                    serde_json::to_value(ProcessRow {
                        state: 'S',
                        ..Default::default()
                    })
                }
                .map_err(|e| e.to_string())?;
                merge_checked(&mut proc, p, &format!("{here}[{i}]"))?;
                out.push(proc);
            }
            *slot = Value::Array(out);
        } else if slot.is_null() && v.is_object() && k.starts_with("psi_") {
            let mut psi = serde_json::to_value(Psi::default()).map_err(|e| e.to_string())?;
            merge_checked(&mut psi, v, &here)?;
            *slot = psi;
        } else if slot.is_object() && v.is_object() {
            merge_checked(slot, v, &here)?;
        } else {
            *slot = v.clone();
        }
    }
    Ok(())
}

/// Every key of `expected` is in `actual` with an equal value. Numbers compare as numbers; a
/// duration string matches a number of seconds.
fn subset(expected: &Value, actual: &Value, path: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let av = a.get(k).unwrap_or(&Value::Null);
                subset(ev, av, &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Number(e), Value::Number(a)) => {
            let (e, a) = (
                e.as_f64().unwrap_or(f64::NAN),
                a.as_f64().unwrap_or(f64::NAN),
            );
            if (e - a).abs() <= 1e-9 * e.abs().max(1.0) {
                Ok(())
            } else {
                Err(format!("{path}: {a}, expected {e}"))
            }
        }
        (Value::String(e), Value::Number(a)) => match parse_duration(e) {
            Ok(d) if (d.as_secs_f64() - a.as_f64().unwrap_or(f64::NAN)).abs() < 1e-6 => Ok(()),
            _ => Err(format!("{path}: {a}, expected {e:?}")),
        },
        (e, a) if e == a => Ok(()),
        (e, a) => Err(format!("{path}: {a}, expected {e}")),
    }
}
