//! The functions a rule can call: `rule { ... }` (registration and validation of a rule's
//! definition), the actions (`incident`, `capture`, `email`, ...), `log` and `history.*`.
//! They only record decisions into the call context; nothing here performs I/O.
//!
//! Each returns `(value, error_message)`; the prelude turns the message into a Lua error at
//! the caller's line, so errors name the rule file and line.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use mlua::{Function, Lua, Table, Value};

use super::history::{Aggregate, HistoryRing};
use super::sandbox;
use super::types::*;
use super::view::ViewCtx;
use crate::format::parse_duration;
use crate::model::{Severity, Urgency};

/// Per-call context the action functions write into (Lua app data).
pub(crate) struct CallCtx {
    /// Actions are accepted only inside handlers.
    pub(crate) in_handler: bool,
    pub(crate) actions: Vec<Action>,
    pub(crate) logs: Vec<String>,
    pub(crate) allow_exec: bool,
    pub(crate) rule_name: Option<String>,
    pub(crate) default_title: String,
    pub(crate) severity: Severity,
    /// `Some` while a file loads: rules it registers.
    pub(crate) registering: Option<Vec<RuleDecl>>,
    pub(crate) history: Arc<Mutex<HistoryRing>>,
}

pub(crate) struct RuleDecl {
    pub(crate) name: String,
    pub(crate) severity: Severity,
    pub(crate) hold_ms: i64,
    pub(crate) clear_after_ms: i64,
    pub(crate) every_ms: Option<i64>,
    pub(crate) when: Option<Function>,
    pub(crate) run: Option<Function>,
    pub(crate) on_fire: Option<Function>,
    pub(crate) on_clear: Option<Function>,
    pub(crate) summary: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) labels: BTreeMap<String, String>,
    /// The declared parameters with their defaults (`params = { threshold = 90 }`).
    pub(crate) params: Option<Table>,
    /// `[rules.<name>] enabled = false` loads the rule but never evaluates it.
    pub(crate) enabled: bool,
    /// `[rules.<name>] rate_limit`, ms.
    pub(crate) rate_limit_ms: Option<i64>,
}

type Opt<T> = (Option<T>, Option<String>);

fn ok<T>(v: T) -> mlua::Result<Opt<T>> {
    Ok((Some(v), None))
}

fn refuse<T>(msg: impl Into<String>) -> mlua::Result<Opt<T>> {
    Ok((None, Some(msg.into())))
}

/// Reads the option table of an action, refusing unknown keys (typos).
struct Opts<'a> {
    what: &'static str,
    t: Option<&'a Table>,
}

impl Opts<'_> {
    fn check_keys(&self, known: &[&str]) -> Result<(), String> {
        let Some(t) = self.t else { return Ok(()) };
        for pair in t.pairs::<Value, Value>() {
            let (k, _) = pair.map_err(|e| e.to_string())?;
            let name = match &k {
                Value::String(s) => s.to_string_lossy(),
                other => return Err(format!("{}: unexpected key {other:?}", self.what)),
            };
            if !known.contains(&name.as_str()) {
                return Err(format!(
                    "{}: unknown option {name:?} (known: {})",
                    self.what,
                    known.join(", ")
                ));
            }
        }
        Ok(())
    }
    fn value(&self, key: &str) -> Value {
        self.t
            .and_then(|t| t.raw_get::<Value>(key).ok())
            .unwrap_or(Value::Nil)
    }
    /// A message's heading (`heading_key`, else the incident's title) and its body (else
    /// empty): what `email` and `notify` send.
    fn heading_and_body(
        &self,
        heading_key: &str,
        ctx: &ActionInfo,
    ) -> Result<(String, String), String> {
        let heading = self.string(heading_key)?;
        let heading = heading.unwrap_or_else(|| ctx.default_title.clone());
        Ok((heading, self.string("body")?.unwrap_or_default()))
    }
    fn string(&self, key: &str) -> Result<Option<String>, String> {
        match self.value(key) {
            Value::Nil => Ok(None),
            Value::String(s) => Ok(Some(s.to_string_lossy())),
            Value::Integer(i) => Ok(Some(i.to_string())),
            Value::Number(n) => Ok(Some(n.to_string())),
            other => Err(format!(
                "{}: {key} must be a string, not {}",
                self.what,
                other.type_name()
            )),
        }
    }
    fn number(&self, key: &str) -> Result<Option<f64>, String> {
        match self.value(key) {
            Value::Nil => Ok(None),
            Value::Integer(i) => Ok(Some(i as f64)),
            Value::Number(n) => Ok(Some(n)),
            other => Err(format!(
                "{}: {key} must be a number, not {}",
                self.what,
                other.type_name()
            )),
        }
    }
    fn boolean(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.value(key) {
            Value::Nil => Ok(default),
            Value::Boolean(b) => Ok(b),
            other => Err(format!(
                "{}: {key} must be true or false, not {}",
                self.what,
                other.type_name()
            )),
        }
    }
    fn duration(&self, key: &str) -> Result<Option<std::time::Duration>, String> {
        match self.value(key) {
            Value::Nil => Ok(None),
            v => duration_value(&v)
                .map(Some)
                .map_err(|e| format!("{}: {key}: {e}", self.what)),
        }
    }
    fn severity(&self, key: &str) -> Result<Option<Severity>, String> {
        match self.string(key)? {
            None => Ok(None),
            Some(s) => s.parse::<Severity>().ok().map(Some).ok_or_else(|| {
                format!(
                    "{}: {key} must be \"info\", \"warning\" or \"critical\", not {s:?}",
                    self.what
                )
            }),
        }
    }
}

fn duration_value(v: &Value) -> Result<std::time::Duration, String> {
    match v {
        Value::String(s) => parse_duration(&s.to_string_lossy()),
        Value::Integer(i) if *i >= 0 => Ok(std::time::Duration::from_secs(*i as u64)),
        Value::Number(n) if *n >= 0.0 && n.is_finite() => {
            Ok(std::time::Duration::from_secs_f64(*n))
        }
        other => Err(format!(
            "expected a duration like \"30s\", got {}",
            other.type_name()
        )),
    }
}

/// Shared body of every action function: only inside handlers; records the action.
/// What an action may read about the current call (copied, so building the action, which
/// can run Lua metamethods, never holds a borrow of the call context).
struct ActionInfo {
    default_title: String,
    severity: Severity,
    allow_exec: bool,
}

/// Shared body of every action function: only inside handlers; records the action.
fn emit(
    lua: &Lua,
    what: &str,
    build: impl FnOnce(&ActionInfo) -> Result<Action, String>,
) -> mlua::Result<Opt<bool>> {
    let info = {
        let ctx = lua
            .app_data_ref::<CallCtx>()
            .ok_or_else(|| mlua::Error::runtime("no call context"))?;
        if !ctx.in_handler {
            return refuse(format!(
                "{what}: actions are only allowed in on_fire, on_clear and run handlers, not in the condition or at load time"
            ));
        }
        ActionInfo {
            default_title: ctx.default_title.clone(),
            severity: ctx.severity,
            allow_exec: ctx.allow_exec,
        }
    };
    let action = match build(&info) {
        Ok(action) => action,
        Err(e) => return refuse(e),
    };
    let mut ctx = lua
        .app_data_mut::<CallCtx>()
        .ok_or_else(|| mlua::Error::runtime("no call context"))?;
    if ctx.actions.len() >= 100 {
        return refuse(format!(
            "{what}: too many actions in one call (100 at most)"
        ));
    }
    ctx.actions.push(action);
    ok(true)
}

/// Builds one action from its option table; the first thing each does is refuse unknown keys.
type BuildAction = fn(&Opts<'_>, &ActionInfo) -> Result<Action, String>;

/// The action functions, in registration order: each is `name(opts)` recorded through [`emit`].
const ACTIONS: &[(&str, BuildAction)] = &[
    ("incident", incident),
    ("resolve", resolve),
    ("capture", capture),
    ("email", email),
    ("notify", notify),
    ("prune", prune),
    ("exec", exec),
];

/// The `history.*` functions: one per aggregate, all with the same `(field, window)` shape.
const AGGREGATES: [(&str, Aggregate); 5] = [
    ("min", Aggregate::Min),
    ("max", Aggregate::Max),
    ("avg", Aggregate::Avg),
    ("last", Aggregate::Last),
    ("count", Aggregate::Count),
];

pub(crate) fn exports(lua: &Lua) -> mlua::Result<Table> {
    let ex = lua.create_table()?;
    ex.raw_set("rule", lua.create_function(rule)?)?;
    for &(name, build) in ACTIONS {
        let action = move |lua: &Lua, t: Option<Table>| {
            emit(lua, name, |info| {
                build(
                    &Opts {
                        what: name,
                        t: t.as_ref(),
                    },
                    info,
                )
            })
        };
        ex.raw_set(name, lua.create_function(action)?)?;
    }
    ex.raw_set("log", lua.create_function(log)?)?;
    let history = lua.create_table()?;
    for (name, agg) in AGGREGATES {
        let aggregate = move |lua: &Lua, args| history_aggregate(lua, agg, args);
        history.raw_set(name, lua.create_function(aggregate)?)?;
    }
    ex.raw_set("history", history)?;
    Ok(ex)
}

/// `rule { ... }`: validates a definition and registers it while its file loads.
fn rule(lua: &Lua, def: Value) -> mlua::Result<Opt<bool>> {
    let Value::Table(def) = def else {
        return refuse::<bool>(
            "rule: expected a table, e.g. rule { name = \"x\", when = function(s) ... end }",
        );
    };
    match parse_rule(&def) {
        Ok(decl) => {
            let mut ctx = lua
                .app_data_mut::<CallCtx>()
                .ok_or_else(|| mlua::Error::runtime("no call context"))?;
            match ctx.registering.as_mut() {
                Some(list) => {
                    if list.iter().any(|d| d.name == decl.name) {
                        return refuse(format!(
                            "rule: {} is defined twice in this file",
                            decl.name
                        ));
                    }
                    list.push(decl);
                    ok(true)
                }
                None => refuse("rule: rules can only be registered while the file loads"),
            }
        }
        Err(e) => refuse(e),
    }
}

fn incident(o: &Opts<'_>, ctx: &ActionInfo) -> Result<Action, String> {
    o.check_keys(&["title", "severity", "body"])?;
    Ok(Action::Incident {
        title: o
            .string("title")?
            .unwrap_or_else(|| ctx.default_title.clone()),
        severity: o.severity("severity")?.unwrap_or(ctx.severity),
        body: o.string("body")?,
    })
}

fn resolve(o: &Opts<'_>, _: &ActionInfo) -> Result<Action, String> {
    o.check_keys(&["note"])?;
    Ok(Action::Resolve {
        note: o.string("note")?,
    })
}

/// A capture records every process and its connections: the detail level is one mode of
/// the collector, so there is no `all_processes` or `connections` switch to offer.
fn capture(o: &Opts<'_>, _: &ActionInfo) -> Result<Action, String> {
    o.check_keys(&["duration", "interval"])?;
    Ok(Action::Capture {
        duration: o
            .duration("duration")?
            .unwrap_or(std::time::Duration::from_secs(300)),
        interval: o.duration("interval")?,
    })
}

fn email(o: &Opts<'_>, ctx: &ActionInfo) -> Result<Action, String> {
    o.check_keys(&["subject", "body", "to"])?;
    let to = match o.value("to") {
        Value::Nil => Vec::new(),
        Value::String(s) => vec![s.to_string_lossy()],
        Value::Table(list) => list
            .sequence_values::<String>()
            .collect::<mlua::Result<Vec<_>>>()
            .map_err(|_| "email: to must be a list of addresses".to_string())?,
        _ => return Err("email: to must be an address or a list of addresses".into()),
    };
    for addr in &to {
        let plain = addr.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        }) && !addr
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '<' | '>' | ',' | ';' | '"' | '(' | ')'));
        if !plain {
            return Err(format!(
                "email: to: {addr:?} is not an email address (write it as \"team@example.org\")"
            ));
        }
    }
    if o.value("to") != Value::Nil && to.is_empty() {
        return Err(
            "email: to is an empty list (leave it out for the configured recipients)".into(),
        );
    }
    let (subject, body) = o.heading_and_body("subject", ctx)?;
    Ok(Action::Email { subject, body, to })
}

fn notify(o: &Opts<'_>, ctx: &ActionInfo) -> Result<Action, String> {
    o.check_keys(&["summary", "body", "urgency"])?;
    let urgency = match o.string("urgency")?.as_deref() {
        None => match ctx.severity {
            Severity::Critical => Urgency::Critical,
            Severity::Warning => Urgency::Normal,
            Severity::Info => Urgency::Low,
        },
        Some("low") => Urgency::Low,
        Some("normal") => Urgency::Normal,
        Some("critical") => Urgency::Critical,
        Some(other) => {
            return Err(format!(
                "notify: urgency must be \"low\", \"normal\" or \"critical\", not {other:?}"
            ))
        }
    };
    let (summary, body) = o.heading_and_body("summary", ctx)?;
    Ok(Action::Notify {
        summary,
        body,
        urgency,
    })
}

fn prune(o: &Opts<'_>, _: &ActionInfo) -> Result<Action, String> {
    o.check_keys(&[
        "policy",
        "older_than",
        "load_below",
        "keep_incidents",
        "dry_run",
    ])?;
    let older_than = o.duration("older_than")?;
    let load_below = o.number("load_below")?;
    let policy = match o.string("policy")? {
        Some(p) => p,
        None if load_below.is_some() => "low_load".to_string(),
        None => "age".to_string(),
    };
    match policy.as_str() {
        "low_load" if load_below.is_none() => {
            return Err(
                "prune: policy \"low_load\" needs load_below (e.g. load_below = 1.4)".into(),
            )
        }
        "low_load" | "age" | "retention" => {}
        other => {
            return Err(format!(
                "prune: unknown policy {other:?} (use \"low_load\", \"age\" or \"retention\")"
            ))
        }
    }
    if policy != "retention" && older_than.is_none() {
        return Err("prune: older_than is required (e.g. older_than = \"1d\")".into());
    }
    Ok(Action::Prune {
        policy,
        older_than,
        load_below,
        keep_incidents: o.boolean("keep_incidents", true)?,
        dry_run: o.boolean("dry_run", false)?,
    })
}

fn exec(o: &Opts<'_>, ctx: &ActionInfo) -> Result<Action, String> {
    // Refused before the options are read: a disabled exec says so whatever it was given.
    if !ctx.allow_exec {
        return Err(
            "exec: running commands is disabled by the configuration ([rules] allow_exec = false)"
                .into(),
        );
    }
    o.check_keys(&["argv", "timeout"])?;
    let argv: Vec<String> = match o.value("argv") {
        Value::Table(list) => list
            .sequence_values::<String>()
            .collect::<mlua::Result<Vec<_>>>()
            .map_err(|_| "exec: argv must be a list of strings".to_string())?,
        _ => {
            return Err("exec: argv = { \"program\", \"arg\", ... } is required (no shell)".into())
        }
    };
    if argv.is_empty() || argv[0].is_empty() {
        return Err("exec: argv must name a program".into());
    }
    Ok(Action::Exec {
        argv,
        timeout: o.duration("timeout")?,
    })
}

/// `log(msg)`: kept for the call's log (100 lines of 4 KiB at most); an action in handlers.
fn log(lua: &Lua, msg: Value) -> mlua::Result<Opt<bool>> {
    let text = match &msg {
        Value::String(s) => s.to_string_lossy(),
        Value::Nil => "nil".to_string(),
        other => other
            .to_string()
            .unwrap_or_else(|_| other.type_name().to_string()),
    };
    let mut ctx = lua
        .app_data_mut::<CallCtx>()
        .ok_or_else(|| mlua::Error::runtime("no call context"))?;
    if ctx.logs.len() < 100 {
        let mut text = text;
        text.truncate(4096);
        ctx.logs.push(text.clone());
        if ctx.in_handler {
            ctx.actions.push(Action::Log { message: text });
        }
    }
    ok(true)
}

/// `history.<agg>(field, window)`: the aggregate of `field` over the last `window` of samples.
fn history_aggregate(
    lua: &Lua,
    agg: Aggregate,
    (field, window): (Value, Value),
) -> mlua::Result<Opt<f64>> {
    let Value::String(field) = field else {
        return refuse::<f64>("history: first argument is a field name such as \"load1\"");
    };
    let window = match duration_value(&window) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => return refuse(format!("history: window: {e}")),
    };
    let now = lua
        .app_data_ref::<ViewCtx>()
        .and_then(|v| v.sample.as_ref().map(|s| s.ts_ms));
    let Some(now) = now else {
        return refuse("history: only available while a sample is evaluated");
    };
    let ring = lua
        .app_data_ref::<CallCtx>()
        .map(|c| c.history.clone())
        .ok_or_else(|| mlua::Error::runtime("no call context"))?;
    let ring = ring.lock().unwrap_or_else(|p| p.into_inner());
    sandbox::charge(ring.len());
    match ring.aggregate(&field.to_string_lossy(), window, now, agg) {
        Ok(v) => Ok((v, None)),
        Err(e) => refuse(format!("history: {e}")),
    }
}

const RULE_KEYS: &[&str] = &[
    "name",
    "description",
    "severity",
    "hold",
    "clear_after",
    "when",
    "on_fire",
    "on_clear",
    "every",
    "run",
    "summary",
    "labels",
    "params",
];

pub(crate) fn parse_rule(def: &Table) -> Result<RuleDecl, String> {
    let o = Opts {
        what: "rule",
        t: Some(def),
    };
    o.check_keys(RULE_KEYS)?;
    let name = o.string("name")?.ok_or("rule: name is required")?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return Err(format!(
            "rule: name {name:?} must be letters, digits, '_', '-' or '.'"
        ));
    }
    let func = |key: &str| -> Result<Option<Function>, String> {
        match o.value(key) {
            Value::Nil => Ok(None),
            Value::Function(f) => Ok(Some(f)),
            other => Err(format!(
                "rule {name}: {key} must be a function, not {}",
                other.type_name()
            )),
        }
    };
    let when = func("when")?;
    let run = func("run")?;
    let every = o.duration("every")?;
    let ms = |d: Option<std::time::Duration>| d.map_or(0, |d| d.as_millis() as i64);
    match (&when, &every) {
        (Some(_), Some(_)) => return Err(format!("rule {name}: a scheduled rule (every) has no condition (when)")),
        (None, None) => return Err(format!("rule {name}: needs a condition (when = function(s) ... end) or a schedule (every = \"1h\" with run = ...)")),
        (None, Some(d)) => {
            if run.is_none() {
                return Err(format!("rule {name}: a scheduled rule needs run = function(s, ctx) ... end"));
            }
            if d.is_zero() {
                return Err(format!("rule {name}: every must be longer than 0s"));
            }
        }
        (Some(_), None) => {
            if run.is_some() {
                return Err(format!("rule {name}: run is for scheduled rules; use on_fire"));
            }
        }
    }
    let mut labels = BTreeMap::new();
    match o.value("labels") {
        Value::Nil => {}
        Value::Table(t) => {
            for pair in t.pairs::<String, String>() {
                let (k, v) =
                    pair.map_err(|_| format!("rule {name}: labels must map strings to strings"))?;
                labels.insert(k, v);
            }
        }
        _ => return Err(format!("rule {name}: labels must be a table of strings")),
    }
    let params = match o.value("params") {
        Value::Nil => None,
        Value::Table(t) => {
            for pair in t.pairs::<Value, Value>() {
                let (k, v) = pair.map_err(|e| e.to_string())?;
                let Value::String(k) = k else {
                    return Err(format!(
                        "rule {name}: params keys must be names, e.g. params = {{ threshold = 90 }}"
                    ));
                };
                let k = k.to_string_lossy();
                if SETTING_KEYS.contains(&k.as_str()) {
                    return Err(format!(
                        "rule {name}: params.{k}: {k} is a setting every rule has; name the parameter otherwise"
                    ));
                }
                if !matches!(
                    v,
                    Value::Boolean(_)
                        | Value::Integer(_)
                        | Value::Number(_)
                        | Value::String(_)
                        | Value::Table(_)
                ) {
                    return Err(format!(
                        "rule {name}: params.{k} must be a number, string, boolean or table (its default), not {}",
                        v.type_name()
                    ));
                }
            }
            Some(t)
        }
        other => {
            return Err(format!(
                "rule {name}: params must be a table of defaults, not {}",
                other.type_name()
            ))
        }
    };
    Ok(RuleDecl {
        description: o.string("description")?,
        params,
        enabled: true,
        rate_limit_ms: None,
        severity: o.severity("severity")?.unwrap_or_default(),
        hold_ms: ms(o.duration("hold")?),
        clear_after_ms: ms(o.duration("clear_after")?),
        every_ms: every.map(|d| d.as_millis() as i64),
        on_fire: func("on_fire")?,
        on_clear: func("on_clear")?,
        summary: o.string("summary")?,
        when,
        run,
        labels,
        name,
    })
}
