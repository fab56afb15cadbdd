//! The data that crosses the rules boundary: configuration in, firings, actions, errors and
//! state out. Everything here is plain Rust (serde) so the daemon, the store and the CLI can
//! use it without touching mlua.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::TimestampMs;

pub use super::machine::Status;

/// Limits and switches for the rule engine (`[rules]` in the config).
#[derive(Debug, Clone, PartialEq)]
pub struct RulesConfig {
    /// Lua instructions one call (condition or handler) may run.
    pub instruction_budget: u64,
    /// Bytes the whole Lua state may hold (all rules plus the sample view).
    pub memory_limit_bytes: usize,
    /// Wall-clock limit for one whole [`Engine::evaluate`](super::Engine::evaluate).
    pub wall_limit: Duration,
    /// Wall-clock limit for one rule call (or one file load); past it the watchdog abandons
    /// the Lua state and disables the rule.
    pub rule_wall_limit: Duration,
    /// Failures in a row after which a rule is disabled.
    pub max_consecutive_errors: u32,
    /// Whether `exec{argv=...}` is allowed.
    pub allow_exec: bool,
    /// Host rows kept for `history.*`.
    pub history_capacity: usize,
    /// A pending rule whose last evaluation is older than this (daemon down) restarts its hold.
    pub max_gap: Duration,
    /// Refuse rule files writable by group/others or owned by another user.
    pub strict_permissions: bool,
    /// Per-rule settings from the config (`[rules.<name>]`) or `--set`.
    pub settings: RuleSettings,
}

/// Per-rule settings: `[rules.<name>]` tables of the config file, or `--set rule.key=value`.
/// Checked against the rules when they load: each key must be one of [`SETTING_KEYS`] or a
/// parameter the rule declares, of the declared default's type.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RuleSettings {
    /// Where they come from (the config file, or `--set`), for errors.
    pub file: PathBuf,
    pub rules: BTreeMap<String, RuleOverride>,
    /// Settings for rules that are not loaded are ignored instead of refused (a rule test
    /// loads only some of the rules).
    #[serde(default)]
    pub ignore_unknown_rules: bool,
}

/// The settings of one rule.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RuleOverride {
    /// Line of the `[rules.<name>]` header (0: unknown).
    pub line: u32,
    pub keys: BTreeMap<String, Setting>,
}

/// One setting: its value (as JSON) and the line it is on (0: unknown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    pub value: serde_json::Value,
    pub line: u32,
    /// Given on the command line (`--set`), not in the file.
    #[serde(default)]
    pub cli: bool,
}

/// The settings every rule has, besides the parameters it declares.
pub const SETTING_KEYS: &[&str] = &[
    "enabled",
    "hold",
    "clear_after",
    "severity",
    "labels",
    "rate_limit",
];

impl RuleSettings {
    /// Adds `rule.key=value` (a `--set` argument; the value is TOML: `70`, `"2m"`, `true`,
    /// or a bare word taken as a string).
    pub fn set(&mut self, arg: &str) -> Result<(), String> {
        let (lhs, value) = arg.split_once('=').ok_or_else(|| {
            format!("--set {arg}: expected RULE.KEY=VALUE, e.g. cpu_hog.threshold=70")
        })?;
        let (rule, key) = lhs.trim().rsplit_once('.').ok_or_else(|| {
            format!("--set {arg}: expected RULE.KEY=VALUE, e.g. cpu_hog.threshold=70")
        })?;
        let value = value.trim();
        let parsed: serde_json::Value = match toml::from_str::<toml::Table>(&format!("v = {value}"))
        {
            Ok(mut t) => match t.remove("v") {
                Some(v) => serde_json::to_value(v).map_err(|e| format!("--set {arg}: {e}"))?,
                None => serde_json::Value::String(value.to_string()),
            },
            Err(_) => serde_json::Value::String(value.to_string()),
        };
        self.rules.entry(rule.to_string()).or_default().keys.insert(
            key.trim().to_string(),
            Setting {
                value: parsed,
                line: 0,
                cli: true,
            },
        );
        Ok(())
    }
}

/// One effective setting of a loaded rule, for `hogtrap rules list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EffectiveSetting {
    pub key: String,
    pub value: serde_json::Value,
    /// `"default"` or `"config"`.
    pub source: String,
    /// Where the config set it: `FILE:LINE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            instruction_budget: 5_000_000,
            memory_limit_bytes: 64 << 20,
            wall_limit: Duration::from_secs(1),
            rule_wall_limit: Duration::from_millis(250),
            max_consecutive_errors: 3,
            allow_exec: false,
            history_capacity: 4096,
            max_gap: Duration::from_secs(300),
            strict_permissions: true,
            settings: RuleSettings::default(),
        }
    }
}

/// A rule's severity and a notification's urgency are the model's words; the Lua-facing
/// parsing (which words a rule may write, and the error it gets) stays in `api`.
use crate::model::{Severity, Urgency};

/// A decision a rule handler made. The engine performs none of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// Open an incident for this rule, or update the open one.
    Incident {
        title: String,
        severity: Severity,
        #[serde(skip_serializing_if = "Option::is_none")]
        body: Option<String>,
    },
    /// Resolve this rule's open incident.
    Resolve {
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Record at detail level (every process, with connections) for a while.
    Capture {
        #[serde(with = "secs")]
        duration: Duration,
        #[serde(with = "opt_secs", skip_serializing_if = "Option::is_none")]
        interval: Option<Duration>,
    },
    Email {
        subject: String,
        body: String,
        /// The recipients, instead of `[email] to`; empty means the configured ones.
        #[serde(skip_serializing_if = "Vec::is_empty", default)]
        to: Vec<String>,
    },
    Notify {
        summary: String,
        body: String,
        urgency: Urgency,
    },
    /// Run a retention policy. Structured options only, never SQL.
    Prune {
        policy: String,
        #[serde(with = "opt_secs", skip_serializing_if = "Option::is_none")]
        older_than: Option<Duration>,
        #[serde(skip_serializing_if = "Option::is_none")]
        load_below: Option<f64>,
        keep_incidents: bool,
        dry_run: bool,
    },
    Log {
        message: String,
    },
    /// Run a command (never through a shell). Only emitted when `allow_exec` is set.
    Exec {
        argv: Vec<String>,
        #[serde(with = "opt_secs", skip_serializing_if = "Option::is_none")]
        timeout: Option<Duration>,
    },
}

impl Action {
    pub fn type_name(&self) -> &'static str {
        match self {
            Action::Incident { .. } => "incident",
            Action::Resolve { .. } => "resolve",
            Action::Capture { .. } => "capture",
            Action::Email { .. } => "email",
            Action::Notify { .. } => "notify",
            Action::Prune { .. } => "prune",
            Action::Log { .. } => "log",
            Action::Exec { .. } => "exec",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FiringKind {
    /// The condition held for `hold`: the rule fires.
    Fire,
    /// The condition was false for `clear_after`: the rule clears.
    Clear,
    /// A scheduled (`every`) rule ran.
    Scheduled,
}

/// One transition of one rule, with what its handler decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Firing {
    pub rule: String,
    pub file: PathBuf,
    pub severity: Severity,
    pub kind: FiringKind,
    /// The sample that caused it.
    pub ts_ms: TimestampMs,
    pub actions: Vec<Action>,
    /// The table the condition returned as its second value (at fire), e.g. the culprit.
    pub values: serde_json::Value,
    pub labels: BTreeMap<String, String>,
    /// The rule's own alert rate limit (`[rules.<name>] rate_limit`), in ms; `None`: the
    /// `[alerts] rate_limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A Lua error (including sandbox refusals such as `os.execute` being absent).
    Runtime,
    /// The instruction budget ran out.
    Budget,
    /// The memory limit was hit.
    Memory,
    /// The wall-clock watchdog abandoned the call.
    Timeout,
    /// The rule's definition or returned values are invalid.
    Invalid,
}

/// One failed call of one rule (or one failed file load, with `rule` = None).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleError {
    pub rule: Option<String>,
    pub file: PathBuf,
    pub line: Option<u32>,
    pub kind: ErrorKind,
    pub message: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(rule) = &self.rule {
            write!(f, ": rule {rule}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A rule the engine just disabled: the caller opens a "rule X is broken" incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleDisabled {
    pub rule: String,
    pub file: PathBuf,
    pub reason: String,
}

/// `log(...)`/`print(...)` output from a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub rule: Option<String>,
    pub file: PathBuf,
    pub message: String,
}

/// What one [`Engine::evaluate`](super::Engine::evaluate) produced.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Evaluation {
    pub ts_ms: TimestampMs,
    pub firings: Vec<Firing>,
    pub errors: Vec<RuleError>,
    pub disabled: Vec<RuleDisabled>,
    pub logs: Vec<LogLine>,
    /// Rules not evaluated for this sample because the watchdog abandoned the Lua state.
    pub skipped: Vec<String>,
}

/// Persistent state of one rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RuleState {
    pub status: Status,
    /// When the current status began (ms).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub since_ms: Option<TimestampMs>,
    /// When the current firing began (firing and clearing).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fired_ms: Option<TimestampMs>,
    /// Last sample this rule was evaluated on.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_eval_ms: Option<TimestampMs>,
    /// Scheduled rules: last run.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_run_ms: Option<TimestampMs>,
    /// Values returned by the condition when it fired.
    #[serde(skip_serializing_if = "serde_json::Value::is_null", default)]
    pub values: serde_json::Value,
    pub consecutive_errors: u32,
    pub total_errors: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub disabled: Option<String>,
    /// The rule's own `state` table.
    #[serde(skip_serializing_if = "serde_json::Value::is_null", default)]
    pub user: serde_json::Value,
}

/// The state of every rule, keyed by rule name: what the store persists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct EngineState {
    pub rules: BTreeMap<String, RuleState>,
}

/// What `hogtrap rules check` prints, one per problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: Option<u32>,
    pub rule: Option<String>,
    pub level: DiagnosticLevel,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiagnosticLevel {
    Error,
    Warning,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        let level = match self.level {
            DiagnosticLevel::Error => "error",
            DiagnosticLevel::Warning => "warning",
        };
        write!(f, ": {level}")?;
        if let Some(rule) = &self.rule {
            write!(f, " (rule {rule})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Errors of the engine itself (not of one rule).
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: refused: {reason}")]
    Permissions { path: PathBuf, reason: String },
    #[error("{0}")]
    Load(RuleError),
    #[error("rule {name} is defined twice: {first} and {second}")]
    Duplicate {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("rules worker: {0}")]
    Worker(String),
    #[error("{path}: {message}")]
    TestFile { path: PathBuf, message: String },
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Ok(Duration::from_secs_f64(v.max(0.0)))
    }
}

mod opt_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let v = Option::<f64>::deserialize(d)?;
        Ok(v.map(|v| Duration::from_secs_f64(v.max(0.0))))
    }
}
