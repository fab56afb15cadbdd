//! Configuration: one TOML file, validated as a whole before anything uses it.
//!
//! Guarantees: unknown keys, wrong types and bad values are errors that name the file, the key
//! and the line; a config that loads is complete (every key has a default, see
//! `config.toml.example`); with no file at all, [`Config::default`] is the embedded default.

pub mod alert;
pub mod export;
mod per_rule;
mod privacy;
mod units;
mod wake;

pub use alert::{DesktopConfig, EmailConfig, SmtpTls};
pub use per_rule::PerRuleOrigin;
pub use privacy::{FileMode, Privacy};
pub use units::{ByteSize, Duration};
pub use wake::{PsiTrigger, Stall, Wake};

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::files::{self, StrictModesError};

/// The embedded default, used when `hogtrap run` is given no config file.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.toml");

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub sampler: Sampler,
    pub store: Store,
    pub retention: Retention,
    pub rules: Rules,
    pub escalation: Escalation,
    pub protect: Protect,
    pub alerts: Alerts,
    pub email: EmailConfig,
    pub desktop: DesktopConfig,
    /// `[export.prometheus]`, `[export.alertmanager]`: off by default.
    pub export: export::Export,
    pub privacy: Privacy,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sampler {
    /// Time between two baseline samples.
    pub interval: Duration,
    /// How many processes to keep per resource (CPU, memory, I/O) in a baseline sample.
    pub top_processes: usize,
    /// Host name written with every sample; empty means the system's host name.
    pub host_name: String,
    /// Where process data comes from: "auto" (procfs on Linux, sysinfo elsewhere),
    /// "procfs" or "sysinfo".
    pub source: Source,
    /// `[sampler.wake]`: what wakes the recorder between two clock samples.
    pub wake: Wake,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Auto,
    Procfs,
    Sysinfo,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Store {
    /// The SQLite file.
    pub path: PathBuf,
    /// How long a write waits for a lock held by someone else before the sample is queued.
    pub busy_timeout: Duration,
    /// Samples kept in memory while the store cannot be written (disk full, locked).
    pub pending_max: usize,
    /// Mode of the files hogtrap creates (store, -wal, -shm, reports), whatever the umask.
    pub mode: FileMode,
    /// A group that may read them (chgrp, and g+r); empty: none.
    pub group: String,
}

/// How long the record is kept and how big it may grow (see `docs/retention.md`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Samples (any level) older than this are removed, unless an incident window pins them.
    pub baseline: Duration,
    /// Detail samples older than this become baseline: extras and connections go, and only
    /// the top processes (`[sampler] top_processes` by each resource) stay.
    pub detail: Duration,
    /// An incident's window stays pinned for this long after the incident closed.
    pub incidents: Duration,
    /// The window pinned around an incident: this much before it opened and after it closed.
    pub incident_margin: Duration,
    /// Total size cap of the store file: the oldest unpinned samples go first.
    pub max_size: ByteSize,
    /// How often the age rules run. The size cap is checked more often (see the docs).
    pub interval: Duration,
    /// Rows removed per write transaction: small batches keep every sample on time.
    pub batch_rows: usize,
    /// Baseline samples older than this are thinned to one per `downsample_to` (off unless
    /// both are set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downsample_after: Option<Duration>,
    /// The bucket width of thinning: the sample with the highest load in each bucket stays.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downsample_to: Option<Duration>,
}

// Not `deny_unknown_fields`: the `[rules.<name>]` tables are gathered in `per_rule`, and any
// other unknown key is refused by `Rules::validate`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Rules {
    /// Directory of `*.lua` rule files, loaded in name order.
    pub dir: PathBuf,
    /// Lua instructions one rule call may run before it is stopped.
    pub instruction_budget: u64,
    /// Memory the Lua state of all rules may hold.
    pub memory_limit: ByteSize,
    /// Wall-clock limit for evaluating all rules on one sample.
    pub wall_limit: Duration,
    /// Wall-clock limit for one rule call; past it the rule is stopped and disabled.
    pub rule_wall_limit: Duration,
    /// Consecutive failures after which a rule is disabled (and a "rule is broken" incident opened).
    pub max_consecutive_errors: u32,
    /// Whether rules may run commands with `exec{argv = {...}}` (never through a shell).
    pub allow_exec: bool,
    /// How long a command run by a rule may take before it is killed.
    pub exec_timeout: Duration,
    /// `[rules.<name>]`: each rule's settings and parameters, checked against the rules
    /// when they load (see docs/rules.md).
    #[serde(flatten)]
    pub per_rule: std::collections::BTreeMap<String, toml::Value>,
    /// Where `per_rule` was written (file, lines), for errors.
    #[serde(skip)]
    pub per_rule_origin: PerRuleOrigin,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Escalation {
    /// Sampling interval while a capture runs.
    pub detail_interval: Duration,
    /// Detail samples kept in memory before a trigger and written when a capture starts.
    pub pre_trigger: Duration,
    /// A capture never runs longer than this.
    pub max_capture: Duration,
    /// A capture goes on this long after its incident clears.
    pub clear_margin: Duration,
    /// Process rows the pre-trigger buffer may hold in memory (bounds its memory: about
    /// 200 bytes a row); with many processes it covers less than `pre_trigger`.
    pub pre_trigger_max_rows: usize,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Protect {
    /// Lock the daemon's memory (mlockall) so it is never swapped out.
    pub mlock: bool,
    /// Written to /proc/self/oom_score_adj (-1000..1000); -1000 exempts from the OOM killer.
    pub oom_score_adj: i32,
    /// Scheduling niceness (-20..19).
    pub nice: i32,
    /// I/O scheduling class: "realtime", "best-effort", "idle" or "none" (leave as is).
    pub ionice_class: IoniceClass,
    /// Priority within the class (0 = highest .. 7).
    pub ionice_level: u8,
}

/// `[alerts]`: the outbox that delivers alerts on the `[email]` and `[desktop]` channels.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Alerts {
    /// At most one message per rule and channel in this window; the ones held back are
    /// summarised in one digest when it ends. "0s": no limit.
    pub rate_limit: Duration,
    /// Repeat an incident's alert this often while it stays open. "0s": never.
    pub reminder_every: Duration,
    /// Wait before the first retry of a failed delivery; doubled after every failure.
    pub retry_initial: Duration,
    /// The longest wait between two attempts (also the wait after an error that only a
    /// config change can fix, such as a refused login).
    pub retry_max: Duration,
    /// An alert not delivered this long after it was raised is given up (status failed).
    pub give_up_after: Duration,
}

impl Default for Alerts {
    fn default() -> Alerts {
        Alerts {
            rate_limit: Duration::from_secs(600),
            reminder_every: Duration::from_secs(0),
            retry_initial: Duration::from_secs(30),
            retry_max: Duration::from_secs(1800),
            give_up_after: Duration::from_secs(86_400),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IoniceClass {
    None,
    Realtime,
    BestEffort,
    Idle,
}

impl Default for Sampler {
    fn default() -> Sampler {
        Sampler {
            interval: Duration::from_secs(10),
            top_processes: 10,
            host_name: String::new(),
            source: Source::Auto,
            wake: Wake::default(),
        }
    }
}

impl Default for Store {
    fn default() -> Store {
        Store {
            path: PathBuf::from("./hogtrap.db"),
            busy_timeout: Duration::from_millis(500),
            pending_max: 360,
            mode: FileMode(0o600),
            group: String::new(),
        }
    }
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            baseline: Duration::from_secs(14 * 86_400),
            detail: Duration::from_secs(3 * 86_400),
            incidents: Duration::from_secs(90 * 86_400),
            incident_margin: Duration::from_secs(600),
            max_size: ByteSize(1 << 30),
            interval: Duration::from_secs(600),
            batch_rows: 5000,
            downsample_after: None,
            downsample_to: None,
        }
    }
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            dir: PathBuf::from("./rules"),
            instruction_budget: 5_000_000,
            memory_limit: ByteSize(64 << 20),
            wall_limit: Duration::from_secs(1),
            rule_wall_limit: Duration::from_millis(250),
            max_consecutive_errors: 3,
            allow_exec: false,
            exec_timeout: Duration::from_secs(30),
            per_rule: Default::default(),
            per_rule_origin: PerRuleOrigin::default(),
        }
    }
}

impl Default for Escalation {
    fn default() -> Escalation {
        Escalation {
            detail_interval: Duration::from_secs(1),
            pre_trigger: Duration::from_secs(120),
            max_capture: Duration::from_secs(1800),
            clear_margin: Duration::from_secs(60),
            pre_trigger_max_rows: 20_000,
        }
    }
}

impl Default for Protect {
    fn default() -> Protect {
        Protect {
            mlock: true,
            oom_score_adj: -999,
            nice: -10,
            ionice_class: IoniceClass::BestEffort,
            ionice_level: 0,
        }
    }
}

/// A config error: one line naming file, line, key and what would be right.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
    #[error("{path}: {message}")]
    Unsafe { path: PathBuf, message: String },
}

impl Config {
    /// Reads, parses and validates a config file, refusing one that others could have changed.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        check_file_is_private(path).map_err(|message| ConfigError::Unsafe {
            path: path.to_path_buf(),
            message,
        })?;
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// The config at `path`, or the embedded default when `path` is `None`.
    pub fn load_or_default(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            Some(p) => Config::load(p),
            None => Config::parse(EMBEDDED_DEFAULT, Path::new("<embedded default>")),
        }
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| invalid(path, text, "", &e))?;
        let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            invalid(path, text, if key == "." { "" } else { &key }, e.inner())
        })?;
        if !config.rules.per_rule.is_empty() {
            config.rules.per_rule_origin =
                PerRuleOrigin::locate(&config.rules.per_rule, text, path);
        }
        config
            .validate()
            .map_err(|(key, message)| ConfigError::Invalid {
                path: path.to_path_buf(),
                line: line_of_key(text, &key).unwrap_or(0),
                key,
                message,
            })?;
        config
            .privacy
            .check(text)
            .map_err(|(line, key, message)| ConfigError::Invalid {
                path: path.to_path_buf(),
                line: line
                    .or_else(|| line_of_key(text, "privacy.redact"))
                    .unwrap_or(0),
                key,
                message,
            })?;
        Ok(config)
    }

    /// Checks that go beyond types, section by section; the first problem wins.
    fn validate(&self) -> Result<(), Invalid> {
        self.sampler.validate()?;
        // The escalation checks sit either side of the rules checks: this is the order in
        // which problems have always been reported.
        self.escalation.validate_detail_interval()?;
        self.rules.validate()?;
        self.escalation.validate_max_capture()?;
        self.protect.validate()?;
        self.retention.validate()?;
        self.store.validate()?;
        self.store.validate_access()?;
        self.alerts.validate()?;
        let section_key = |e: alert::ConfigError| (format!("{}.{}", e.section, e.key), e.problem);
        self.email.validate().map_err(section_key)?;
        self.desktop.validate().map_err(section_key)?;
        self.export.validate()?;
        Ok(())
    }
}

/// A value that parsed but cannot work: the dotted key and why.
type Invalid = (String, String);

fn bad(key: &str, message: impl Into<String>) -> Result<(), Invalid> {
    Err((key.to_string(), message.into()))
}

/// The shortest interval, timeout or spacing any setting takes (below it, loops spin).
const SHORTEST: Duration = Duration::from_millis(100);

/// `value` below `min`: "must be at least {min}, got {value}".
fn at_least<T: PartialOrd + std::fmt::Display>(key: &str, value: T, min: T) -> Result<(), Invalid> {
    if value < min {
        return bad(key, format!("must be at least {min}, got {value}"));
    }
    Ok(())
}

/// A size below a mebibyte (the least memory or store any setting takes): "must be at least
/// 1MiB, got 1000 bytes".
fn at_least_1mib(key: &str, value: ByteSize) -> Result<(), Invalid> {
    if value.0 < 1 << 20 {
        return bad(key, format!("must be at least 1MiB, got {} bytes", value.0));
    }
    Ok(())
}

/// `value` outside `lo..=hi`: "must be between {lo} and {hi}, got {value}".
fn between<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    lo: T,
    hi: T,
) -> Result<(), Invalid> {
    if value < lo || value > hi {
        return bad(key, format!("must be between {lo} and {hi}, got {value}"));
    }
    Ok(())
}

/// `value` set against another key's `bound`: unless `ok`, "must {rule} ({bound}), got {value}".
fn against<T: std::fmt::Display>(
    ok: bool,
    key: &str,
    value: T,
    rule: &str,
    bound: T,
) -> Result<(), Invalid> {
    if !ok {
        return bad(key, format!("must {rule} ({bound}), got {value}"));
    }
    Ok(())
}

impl Sampler {
    fn validate(&self) -> Result<(), Invalid> {
        at_least("sampler.interval", self.interval, SHORTEST)?;
        at_least("sampler.top_processes", self.top_processes, 1)?;
        self.wake.validate()
    }
}

impl Escalation {
    fn validate_detail_interval(&self) -> Result<(), Invalid> {
        at_least("escalation.detail_interval", self.detail_interval, SHORTEST)
    }

    fn validate_max_capture(&self) -> Result<(), Invalid> {
        against(
            self.max_capture >= self.detail_interval,
            "escalation.max_capture",
            self.max_capture,
            "be at least escalation.detail_interval",
            self.detail_interval,
        )
    }
}

impl Rules {
    fn validate(&self) -> Result<(), Invalid> {
        at_least("rules.instruction_budget", self.instruction_budget, 1000)?;
        at_least_1mib("rules.memory_limit", self.memory_limit)?;
        at_least(
            "rules.max_consecutive_errors",
            self.max_consecutive_errors,
            1,
        )?;
        per_rule::check_shape(&self.per_rule)
    }
}

impl Protect {
    fn validate(&self) -> Result<(), Invalid> {
        between("protect.oom_score_adj", self.oom_score_adj, -1000, 1000)?;
        between("protect.nice", self.nice, -20, 19)?;
        between("protect.ionice_level", self.ionice_level, 0, 7)
    }
}

impl Retention {
    fn validate(&self) -> Result<(), Invalid> {
        at_least("retention.baseline", self.baseline, Duration::from_secs(60))?;
        against(
            self.detail <= self.baseline,
            "retention.detail",
            self.detail,
            "not exceed retention.baseline",
            self.baseline,
        )?;
        at_least("retention.interval", self.interval, Duration::from_secs(1))?;
        at_least("retention.batch_rows", self.batch_rows, 1)?;
        at_least_1mib("retention.max_size", self.max_size)?;
        match (self.downsample_after, self.downsample_to) {
            (None, None) => Ok(()),
            (Some(_), None) => bad(
                "retention.downsample_after",
                "needs retention.downsample_to as well (e.g. \"1m\")",
            ),
            (None, Some(_)) => bad(
                "retention.downsample_to",
                "needs retention.downsample_after as well (e.g. \"7d\")",
            ),
            (Some(_), Some(to)) => at_least("retention.downsample_to", to, Duration::from_secs(1)),
        }
    }
}

impl Store {
    fn validate(&self) -> Result<(), Invalid> {
        if self.path.as_os_str().is_empty() {
            return bad("store.path", "must not be empty");
        }
        Ok(())
    }
}

impl Alerts {
    fn validate(&self) -> Result<(), Invalid> {
        at_least("alerts.retry_initial", self.retry_initial, SHORTEST)?;
        against(
            self.retry_max >= self.retry_initial,
            "alerts.retry_max",
            self.retry_max,
            "not be shorter than retry_initial",
            self.retry_initial,
        )?;
        if self.give_up_after.as_millis() == 0 {
            return bad("alerts.give_up_after", "must be longer than 0s");
        }
        Ok(())
    }
}

fn invalid(path: &Path, text: &str, key: &str, e: &toml::de::Error) -> ConfigError {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
        .or_else(|| line_of_key(text, key))
        .unwrap_or(0);
    // toml's messages can span lines; keep the first, which says what is wrong.
    let message = e.message().lines().next().unwrap_or("invalid").to_string();
    let (key, message) = match message.strip_prefix("unknown field `") {
        Some(rest) => {
            let field = rest.split('`').next().unwrap_or("");
            let full = if key.is_empty() {
                field.to_string()
            } else if key.ends_with(field) {
                key.to_string()
            } else {
                format!("{key}.{field}")
            };
            (
                full,
                format!("unknown key; {}", message.replace("unknown field", "field")),
            )
        }
        None => (key.to_string(), message),
    };
    // A syntax error has no key path: name what stands on the line instead.
    let key = if key.is_empty() {
        text.lines()
            .nth(line.saturating_sub(1))
            .map(|l| l.split('=').next().unwrap_or("").trim().to_string())
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| "<file>".into())
    } else {
        key
    };
    ConfigError::Invalid {
        path: path.to_path_buf(),
        line,
        key,
        message,
    }
}

/// Best-effort line of `section.key` in the text, for errors found after parsing.
fn line_of_key(text: &str, dotted: &str) -> Option<usize> {
    let (section, key) = dotted.rsplit_once('.')?;
    let mut in_section = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            in_section = t.trim_matches(|c| c == '[' || c == ']').trim() == section;
        } else if in_section && t.split('=').next().map(str::trim) == Some(key) {
            return Some(i + 1);
        }
    }
    None
}

/// Like sshd's StrictModes (see [`files::check_strict_modes`]), worded for the config file.
/// A file that cannot be inspected passes: reading it will report the error with its cause.
pub fn check_file_is_private(path: &Path) -> Result<(), String> {
    match files::check_strict_modes(path) {
        Ok(()) | Err(StrictModesError::Metadata(_)) => Ok(()),
        Err(StrictModesError::Unsafe(file)) if file.foreign_owner() => Err(format!(
            "refusing a file owned by uid {} (hogtrap runs as uid {}); chown it",
            file.owner, file.euid
        )),
        Err(StrictModesError::Unsafe(file)) => Err(format!(
            "refusing a file writable by group or others (mode {:o}); run chmod go-w on it",
            file.mode
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s, Path::new("test.toml"))
    }

    /// The one-line error a config text gives, as `test.toml`.
    pub(super) fn parse_error(s: &str) -> String {
        parse(s).unwrap_err().to_string()
    }

    /// The config text fails with an error line that starts with `start`.
    #[track_caller]
    pub(super) fn assert_error_starts(s: &str, start: &str) {
        let e = parse_error(s);
        assert!(e.starts_with(start), "{e}");
    }

    #[test]
    fn embedded_default_parses_to_the_defaults() {
        let c = Config::load_or_default(None).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.sampler.interval, Duration::from_secs(10));
        assert_eq!(c.store.path, PathBuf::from("./hogtrap.db"));
        assert_eq!(c.rules.dir, PathBuf::from("./rules"));
    }

    /// `config.toml.example` parses to the defaults and names every key the config has.
    #[test]
    fn example_parses_and_names_every_key() {
        let text = include_str!("../../config.toml.example");
        let parsed = parse(text).unwrap();
        assert_eq!(parsed, Config::default());
        let all = toml::Value::try_from(Config::default()).unwrap();
        let example: toml::Value = toml::from_str(text).unwrap();
        for (section, keys) in all.as_table().unwrap() {
            for key in keys.as_table().unwrap().keys() {
                assert!(
                    example.get(section).and_then(|s| s.get(key)).is_some(),
                    "config.toml.example lacks [{section}] {key}"
                );
            }
        }
    }

    /// docs/alerts.md shows every `[alerts]` key with its default.
    #[test]
    fn alerts_doc_names_every_key_with_its_default() {
        let doc = include_str!("../../docs/alerts.md");
        let all = toml::Value::try_from(Alerts::default()).unwrap();
        for (key, value) in all.as_table().unwrap() {
            let line = format!("{key} = {value}");
            let documented = doc.lines().any(|l| {
                l.split_once('=').is_some_and(|(k, v)| {
                    k.trim() == key
                        && Duration::parse(v.trim().trim_matches('"')).ok()
                            == value.as_str().and_then(|s| Duration::parse(s).ok())
                })
            });
            assert!(documented, "docs/alerts.md lacks `{line}`");
        }
    }

    #[test]
    fn alert_sections_are_checked_with_key_and_line() {
        assert_eq!(
            parse_error("[email]\nenabled = true\nserver = \"\"\n"),
            "test.toml:3: email.server: required when email is enabled"
        );
        assert_error_starts(
            "[email]\npassword = \"hunter2\"\n",
            "test.toml:2: email.password:",
        );
        assert_error_starts(
            "[alerts]\nretry_initial = \"1m\"\nretry_max = \"10s\"\n",
            "test.toml:3: alerts.retry_max:",
        );
        assert_error_starts(
            "[alerts]\nrate_limit = 5\n",
            "test.toml:2: alerts.rate_limit:",
        );
        assert_error_starts(
            "[desktop]\nurgency = \"panic\"\n",
            "test.toml:2: desktop.urgency:",
        );
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.sampler.interval.as_millis(), 10_000);
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        assert_eq!(
            parse_error("[sampler]\n\ninterval = 10\n"),
            "test.toml:3: sampler.interval: expected a duration like \"10s\", got 10"
        );
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        assert_error_starts(
            "[store]\npath = \"x.db\"\npaht = \"y\"\n",
            "test.toml:3: store.paht: unknown key",
        );
    }

    #[test]
    fn bad_value_names_key_and_line() {
        assert_eq!(
            parse_error("[protect]\nnice = 40\n"),
            "test.toml:2: protect.nice: must be between -20 and 19, got 40"
        );
    }

    #[test]
    fn duplicate_section_names_it() {
        assert_error_starts("[rules]\ndir = \"a\"\n[rules]\n", "test.toml:3: [rules]: ");
    }

    #[test]
    fn retention_keys_parse_and_are_checked() {
        let c = parse(
            "[retention]\nbaseline = \"30d\"\nmax_size = \"2GiB\"\ndownsample_after = \"7d\"\ndownsample_to = \"1m\"\n",
        )
        .unwrap();
        assert_eq!(c.retention.baseline, Duration::from_secs(30 * 86_400));
        assert_eq!(c.retention.max_size, ByteSize(2 << 30));
        assert_eq!(c.retention.downsample_to, Some(Duration::from_secs(60)));
        assert_error_starts(
            "[retention]\ndownsample_after = \"7d\"\n",
            "test.toml:2: retention.downsample_after: needs",
        );
        assert_error_starts(
            "[retention]\nbaseline = \"1d\"\ndetail = \"3d\"\n",
            "test.toml:3: retention.detail:",
        );
    }

    #[test]
    fn syntax_error_has_a_line() {
        let e = parse_error("[sampler\ninterval = \"1s\"\n");
        assert!(e.starts_with("test.toml:1:"), "{e}");
        assert_eq!(e.lines().count(), 1);
    }
}
