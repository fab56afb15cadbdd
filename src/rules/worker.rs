//! The thread that owns the Lua state. The engine talks to it over channels; everything here
//! runs on that one thread, so a rule stuck in C code blocks only this thread, which the
//! engine's watchdog can then abandon.
//!
//! Replies are streamed in rule order (one [`Reply::RuleDone`] per rule, disabled ones
//! included), so when the watchdog fires the engine knows exactly which rule is stuck.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

use mlua::{Function, Lua, MultiValue, Table, Value};

use super::api::{exports, CallCtx, RuleDecl};
use super::convert::{json_to_lua, lua_to_json, table_to_json};
use super::history::HistoryRing;
use super::machine::{self, Status, Timing, Transition};
use super::sandbox::{self, Prelude};
use super::settings;
use super::types::*;
use super::view::{self, ViewCtx};
use crate::model::Sample;
use crate::model::Severity;

/// A rule file's text and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSource {
    pub path: PathBuf,
    pub text: String,
}

/// What the engine knows of a loaded rule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RuleMeta {
    pub name: String,
    pub file: PathBuf,
    pub severity: Severity,
    pub scheduled: bool,
    pub enabled: bool,
    pub description: Option<String>,
    pub settings: Vec<EffectiveSetting>,
}

pub(crate) enum Request {
    Load {
        files: Vec<RuleSource>,
        states: BTreeMap<String, RuleState>,
    },
    /// Evaluate rules `from..` (earlier ones were done by an abandoned worker).
    Evaluate { sample: Arc<Sample>, from: usize },
}

pub(crate) enum Reply {
    /// The worker could not start (no Lua state).
    Failed(String),
    FileLoaded {
        idx: usize,
        result: Result<Vec<RuleMeta>, RuleError>,
    },
    LoadDone,
    RuleDone(Box<RuleOutcome>),
    EvalDone {
        error: Option<String>,
    },
}

pub(crate) struct RuleOutcome {
    pub state: RuleState,
    pub firing: Option<Firing>,
    pub errors: Vec<RuleError>,
    pub logs: Vec<LogLine>,
    pub newly_disabled: Option<RuleDisabled>,
}

pub(crate) struct WorkerHandle {
    pub tx: Sender<Request>,
    pub rx: Receiver<Reply>,
    /// Linux thread id of the worker, for lowering an abandoned worker's priority.
    pub tid: Arc<AtomicI32>,
}

pub(crate) fn spawn(
    cfg: RulesConfig,
    history: Arc<Mutex<HistoryRing>>,
) -> std::io::Result<WorkerHandle> {
    let (req_tx, req_rx) = std::sync::mpsc::channel::<Request>();
    let (rep_tx, rep_rx) = std::sync::mpsc::channel::<Reply>();
    let tid = Arc::new(AtomicI32::new(0));
    let tid2 = tid.clone();
    std::thread::Builder::new()
        .name("hogtrap-rules".into())
        // The daemon locks its memory: every thread's whole stack is resident. Lua calls
        // are bounded (LUAI_MAXCCALLS) well within this.
        .stack_size(1 << 20)
        .spawn(move || {
            // SAFETY: gettid has no preconditions.
            tid2.store(unsafe { libc::gettid() }, Ordering::SeqCst);
            let mut worker = match Worker::new(cfg, history, rep_tx.clone()) {
                Ok(w) => w,
                Err(e) => {
                    let _ = rep_tx.send(Reply::Failed(e.to_string()));
                    return;
                }
            };
            while let Ok(req) = req_rx.recv() {
                let alive = match req {
                    Request::Load { files, states } => worker.load(files, states),
                    Request::Evaluate { sample, from } => worker.evaluate(sample, from),
                };
                if !alive {
                    break; // the engine hung up: we were abandoned
                }
            }
        })?;
    Ok(WorkerHandle {
        tx: req_tx,
        rx: rep_rx,
        tid,
    })
}

struct Rule {
    decl: RuleDecl,
    file: PathBuf,
    env: Table,
    state: RuleState,
    state_table: Table,
    /// The effective `params` (declared defaults with the config's settings applied).
    params: serde_json::Value,
    params_table: Table,
}

struct Worker {
    lua: Lua,
    cfg: RulesConfig,
    prelude: Prelude,
    rules: Vec<Rule>,
    tx: Sender<Reply>,
}

impl Worker {
    fn new(
        cfg: RulesConfig,
        history: Arc<Mutex<HistoryRing>>,
        tx: Sender<Reply>,
    ) -> mlua::Result<Worker> {
        let lua = sandbox::new_state(cfg.memory_limit_bytes)?;
        // Each sample's view is short-lived garbage: what generational collection is for.
        lua.gc_gen(0, 0);
        lua.set_app_data(CallCtx {
            in_handler: false,
            actions: Vec::new(),
            logs: Vec::new(),
            allow_exec: cfg.allow_exec,
            rule_name: None,
            default_title: String::new(),
            severity: Severity::Warning,
            registering: None,
            history,
        });
        let api = lua.create_table()?;
        api.raw_set("exports", exports(&lua)?)?;
        api.raw_set(
            "budget_tripped",
            lua.create_function(|_, ()| Ok(sandbox::budget_tripped()))?,
        )?;
        let methods = lua.create_table()?;
        let lazy_meta = view::view_api(&lua, &methods)?;
        api.raw_set("view_methods", &methods)?;
        sandbox::disarm_budget();
        let prelude = sandbox::install_prelude(&lua, api)?;
        lua.set_app_data(ViewCtx {
            sample: None,
            cache: None,
            freeze: prelude.freeze.clone(),
            lazy_meta,
            methods,
        });
        Ok(Worker {
            lua,
            cfg,
            prelude,
            rules: Vec::new(),
            tx,
        })
    }

    fn send(&self, reply: Reply) -> bool {
        self.tx.send(reply).is_ok()
    }

    fn load(&mut self, files: Vec<RuleSource>, states: BTreeMap<String, RuleState>) -> bool {
        self.rules.clear();
        let mut names: HashSet<String> = HashSet::new();
        for (idx, file) in files.into_iter().enumerate() {
            let result = self.load_file(&file, &states, &mut names);
            if !self.send(Reply::FileLoaded { idx, result }) {
                return false;
            }
        }
        let _ = self.lua.gc_collect();
        self.send(Reply::LoadDone)
    }

    fn load_file(
        &mut self,
        file: &RuleSource,
        states: &BTreeMap<String, RuleState>,
        names: &mut HashSet<String>,
    ) -> Result<Vec<RuleMeta>, RuleError> {
        let lua = &self.lua;
        let fail = |err: &mlua::Error| rule_error(None, &file.path, err);
        sandbox::disarm_budget();
        let env: Table = self.prelude.new_env.call(()).map_err(|e| fail(&e))?;
        // The file's own state table, for top-level code that touches `state`.
        env.raw_set("state", lua.create_table().map_err(|e| fail(&e))?)
            .map_err(|e| fail(&e))?;
        let chunk = lua
            .load(file.text.as_str())
            .set_name(format!("@{}", file.path.display()))
            .set_mode(mlua::ChunkMode::Text)
            .set_environment(env.clone());
        set_ctx(lua, |c| c.registering = Some(Vec::new()));
        sandbox::arm_budget(lua, self.cfg.instruction_budget);
        let run = chunk.exec();
        let tripped = sandbox::budget_tripped();
        sandbox::disarm_budget();
        let decls = with_ctx(lua, |c| c.registering.take())
            .flatten()
            .unwrap_or_default();
        let logs = with_ctx(lua, |c| std::mem::take(&mut c.logs)).unwrap_or_default();
        for line in logs {
            tracing::info!(file = %file.path.display(), "{line}");
        }
        if let Err(e) = run {
            let mut err = fail(&e);
            if tripped {
                err.kind = ErrorKind::Budget;
            }
            return Err(err);
        }
        if decls.is_empty() {
            return Err(RuleError {
                rule: None,
                file: file.path.clone(),
                line: None,
                kind: ErrorKind::Invalid,
                message: "the file registers no rule (call rule { name = ..., when = ... })".into(),
            });
        }
        let mut metas = Vec::new();
        let mut new_rules = Vec::new();
        for mut decl in decls {
            let defaults = match decl.params.as_ref() {
                Some(t) => match lua_to_json(lua, &Value::Table(t.clone()), 0) {
                    serde_json::Value::Object(m) => m,
                    _ => serde_json::Map::new(),
                },
                None => serde_json::Map::new(),
            };
            let name = decl.name.clone();
            let (params, effective) = settings::apply(
                &mut decl,
                &defaults,
                self.cfg.settings.rules.get(&name),
                &self.cfg.settings.file,
            )?;
            let params = serde_json::Value::Object(params);
            let params_table = match json_to_lua(lua, &params) {
                Ok(Value::Table(t)) => t,
                _ => lua.create_table().map_err(|e| fail(&e))?,
            };
            if !names.insert(decl.name.clone()) {
                return Err(RuleError {
                    rule: Some(decl.name.clone()),
                    file: file.path.clone(),
                    line: None,
                    kind: ErrorKind::Invalid,
                    message: format!("rule {} is already defined by an earlier file", decl.name),
                });
            }
            let state = states.get(&decl.name).cloned().unwrap_or_default();
            let state_table = match json_to_lua(lua, &state.user) {
                Ok(Value::Table(t)) => t,
                _ => lua.create_table().map_err(|e| fail(&e))?,
            };
            metas.push(RuleMeta {
                name: decl.name.clone(),
                file: file.path.clone(),
                severity: decl.severity,
                scheduled: decl.every_ms.is_some(),
                enabled: decl.enabled,
                description: decl.description.as_ref().map(|d| {
                    let mut fill = params.clone();
                    if let serde_json::Value::Object(m) = &mut fill {
                        let text = |ms: i64| crate::format::human_ms(ms).into();
                        m.insert("hold".into(), text(decl.hold_ms));
                        m.insert("clear_after".into(), text(decl.clear_after_ms));
                    }
                    render_template(d, &fill)
                }),
                settings: effective,
            });
            new_rules.push(Rule {
                decl,
                file: file.path.clone(),
                env: env.clone(),
                state,
                state_table,
                params,
                params_table,
            });
        }
        self.rules.extend(new_rules);
        Ok(metas)
    }

    fn evaluate(&mut self, sample: Arc<Sample>, from: usize) -> bool {
        sandbox::disarm_budget();
        let now = sample.ts_ms;
        let root = match view::build_root(&self.lua, sample) {
            Ok(r) => r,
            Err(e) => {
                view::end_sample(&self.lua);
                let _ = self.lua.gc_collect();
                return self.send(Reply::EvalDone {
                    error: Some(format!("building the sample view: {}", error_text(&e))),
                });
            }
        };
        for i in from..self.rules.len() {
            let outcome = self.run_rule(i, &root, now);
            if !self.send(Reply::RuleDone(Box::new(outcome))) {
                return false;
            }
        }
        view::end_sample(&self.lua);
        self.send(Reply::EvalDone { error: None })
    }

    fn run_rule(&mut self, i: usize, root: &Table, now: i64) -> RuleOutcome {
        let mut out = RuleOutcome {
            state: self.rules[i].state.clone(),
            firing: None,
            errors: Vec::new(),
            logs: Vec::new(),
            newly_disabled: None,
        };
        if self.rules[i].state.disabled.is_some() || !self.rules[i].decl.enabled {
            return out;
        }
        let rule = &self.rules[i];
        let _ = rule.env.raw_set("state", &rule.state_table);
        let _ = rule.env.raw_set("params", &rule.params_table);
        let name = rule.decl.name.clone();
        let file = rule.file.clone();
        let mut state = rule.state.clone();
        let mut transition = None;
        let mut values_lua = Value::Nil;

        if let Some(every_ms) = rule.decl.every_ms {
            if machine::scheduled_due(&state, every_ms, now) {
                state.last_run_ms = Some(now);
                state.last_eval_ms = Some(now);
                transition = Some(FiringKind::Scheduled);
            }
        } else if let Some(when) = rule.decl.when.clone() {
            match self.call(i, &when, (root.clone(),), false) {
                Ok((ret, _)) => {
                    let mut it = ret.into_iter();
                    let cond = it
                        .next()
                        .is_some_and(|v| !matches!(v, Value::Nil | Value::Boolean(false)));
                    values_lua = it.next().unwrap_or(Value::Nil);
                    state.consecutive_errors = 0;
                    let timing = Timing {
                        hold_ms: rule.decl.hold_ms,
                        clear_after_ms: rule.decl.clear_after_ms,
                        max_gap_ms: self.cfg.max_gap.as_millis() as i64,
                    };
                    match machine::step(&mut state, timing, cond, now) {
                        Transition::Fire => {
                            state.values = lua_to_json(&self.lua, &values_lua, 0);
                            transition = Some(FiringKind::Fire);
                        }
                        Transition::Clear => transition = Some(FiringKind::Clear),
                        Transition::None => {
                            if state.status == Status::Firing && !values_lua.is_nil() {
                                // Keep the latest culprit while firing.
                                state.values = lua_to_json(&self.lua, &values_lua, 0);
                            }
                        }
                    }
                }
                Err(err) => out.errors.push(err),
            }
            out.logs.extend(self.take_logs(i));
        }

        if let Some(kind) = transition {
            let rule = &self.rules[i];
            let handler = match kind {
                FiringKind::Fire => rule.decl.on_fire.clone(),
                FiringKind::Clear => rule.decl.on_clear.clone(),
                FiringKind::Scheduled => rule.decl.run.clone(),
            };
            let values_json = state.values.clone();
            let default_title = default_title(&rule.decl, &values_json, &rule.params);
            let mut actions = Vec::new();
            if let Some(handler) = handler {
                set_ctx(&self.lua, |c| c.default_title = default_title.clone());
                match self.handler_ctx(i, &state, &values_lua, now) {
                    Err(e) => out.errors.push(rule_error(Some(&name), &file, &e)),
                    Ok(ctx) => match self.call(i, &handler, (root.clone(), ctx), true) {
                        Ok((_, a)) => actions = a,
                        Err(err) => {
                            out.errors.push(err);
                            actions = with_ctx(&self.lua, |c| std::mem::take(&mut c.actions))
                                .unwrap_or_default();
                        }
                    },
                }
                out.logs.extend(self.take_logs(i));
            }
            match kind {
                FiringKind::Fire if actions.is_empty() => actions.push(Action::Incident {
                    title: default_title,
                    severity: rule.decl.severity,
                    body: None,
                }),
                FiringKind::Clear if actions.is_empty() => {
                    actions.push(Action::Resolve { note: None })
                }
                _ => {}
            }
            let rule = &self.rules[i];
            out.firing = Some(Firing {
                rule: name.clone(),
                file: file.clone(),
                severity: rule.decl.severity,
                kind,
                ts_ms: now,
                actions,
                values: values_json,
                labels: rule.decl.labels.clone(),
                rate_limit_ms: rule.decl.rate_limit_ms,
            });
            if kind == FiringKind::Clear {
                state.values = serde_json::Value::Null;
            }
        }

        if out.errors.is_empty() {
            if transition.is_some() || self.rules[i].decl.when.is_some() {
                state.consecutive_errors = 0;
            }
        } else {
            state.consecutive_errors += out.errors.len() as u32;
            state.total_errors += out.errors.len() as u64;
            if state.consecutive_errors >= self.cfg.max_consecutive_errors.max(1) {
                let reason = format!(
                    "disabled after {} consecutive errors; last: {}",
                    state.consecutive_errors,
                    out.errors.last().map(|e| e.to_string()).unwrap_or_default()
                );
                state.disabled = Some(reason.clone());
                out.newly_disabled = Some(RuleDisabled {
                    rule: name.clone(),
                    file: file.clone(),
                    reason,
                });
            }
        }
        match table_to_json(&self.lua, &self.rules[i].state_table) {
            Ok(user) => state.user = user,
            Err(message) => {
                // Keep the last state that fitted; warn without counting it as a failure.
                out.logs.push(LogLine {
                    rule: Some(name.clone()),
                    file: file.clone(),
                    message,
                });
            }
        }
        self.rules[i].state = state.clone();
        out.state = state;
        out
    }

    fn take_logs(&self, i: usize) -> Vec<LogLine> {
        let lines = with_ctx(&self.lua, |c| std::mem::take(&mut c.logs)).unwrap_or_default();
        lines
            .into_iter()
            .map(|message| LogLine {
                rule: Some(self.rules[i].decl.name.clone()),
                file: self.rules[i].file.clone(),
                message,
            })
            .collect()
    }

    fn handler_ctx(
        &self,
        i: usize,
        state: &RuleState,
        values: &Value,
        now: i64,
    ) -> mlua::Result<Table> {
        let rule = &self.rules[i];
        let lua = &self.lua;
        let t = lua.create_table()?;
        t.raw_set("rule", rule.decl.name.as_str())?;
        t.raw_set("severity", rule.decl.severity.as_str())?;
        t.raw_set("file", rule.file.display().to_string())?;
        t.raw_set("now", now as f64 / 1000.0)?;
        t.raw_set("status", state.status.as_str())?;
        t.raw_set("fired_at", state.fired_ms.map(|v| v as f64 / 1000.0))?;
        let values = if values.is_nil() {
            json_to_lua(lua, &state.values)?
        } else {
            values.clone()
        };
        t.raw_set("values", values)?;
        let labels = lua.create_table()?;
        for (k, v) in &rule.decl.labels {
            labels.raw_set(k.as_str(), v.as_str())?;
        }
        t.raw_set("labels", labels)?;
        t.raw_set("state", &rule.state_table)?;
        t.raw_set("params", &rule.params_table)?;
        Ok(t)
    }

    /// Calls a rule function under the budget. Returns its results and the actions it emitted.
    fn call(
        &self,
        i: usize,
        f: &Function,
        args: impl mlua::IntoLuaMulti,
        handler: bool,
    ) -> Result<(MultiValue, Vec<Action>), RuleError> {
        let rule = &self.rules[i];
        set_ctx(&self.lua, |c| {
            c.in_handler = handler;
            c.actions.clear();
            c.rule_name = Some(rule.decl.name.clone());
            c.severity = rule.decl.severity;
        });
        sandbox::arm_budget(&self.lua, self.cfg.instruction_budget);
        let result = f.call::<MultiValue>(args);
        let tripped = sandbox::budget_tripped();
        sandbox::disarm_budget();
        let actions = with_ctx(&self.lua, |c| {
            c.in_handler = false;
            std::mem::take(&mut c.actions)
        })
        .unwrap_or_default();
        // A budget error that the rule caught itself (coroutine.resume returns it as a value)
        // still fails the call: the budget is not a suggestion.
        let result = match result {
            Ok(_) if tripped => Err(mlua::Error::RuntimeError(
                "instruction budget exceeded (the rule caught the error and went on)".into(),
            )),
            other => other,
        };
        match result {
            Ok(v) => Ok((v, actions)),
            Err(e) => {
                let mut err = rule_error(Some(&rule.decl.name), &rule.file, &e);
                if tripped {
                    err.kind = ErrorKind::Budget;
                }
                if err.kind == ErrorKind::Memory {
                    let _ = self.lua.gc_collect();
                }
                if handler {
                    // Keep what the handler decided before it failed.
                    set_ctx(&self.lua, |c| c.actions = actions);
                }
                Err(err)
            }
        }
    }
}

fn set_ctx(lua: &Lua, f: impl FnOnce(&mut CallCtx)) {
    if let Some(mut c) = lua.app_data_mut::<CallCtx>() {
        f(&mut c);
    }
}

fn with_ctx<R>(lua: &Lua, f: impl FnOnce(&mut CallCtx) -> R) -> Option<R> {
    lua.app_data_mut::<CallCtx>().map(|mut c| f(&mut c))
}

/// The summary filled from the values, then from the rule's parameters (`{threshold}`).
fn default_title(
    decl: &RuleDecl,
    values: &serde_json::Value,
    params: &serde_json::Value,
) -> String {
    match &decl.summary {
        Some(template) => render_template(&render_template(template, values), params),
        None => decl.name.clone(),
    }
}

/// Replaces `{key}` with `values[key]` (numbers with one decimal, without a needless `.0`).
pub(crate) fn render_template(template: &str, values: &serde_json::Value) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                let key = &after[..end];
                match values.get(key) {
                    Some(serde_json::Value::String(s)) => out.push_str(s),
                    Some(serde_json::Value::Number(n)) => match n.as_f64() {
                        // One decimal, none when it is 0: 99.96 and 100.0 both read
                        // "100", so a live title and its backtest agree.
                        Some(f) => {
                            let text = format!("{f:.1}");
                            out.push_str(text.strip_suffix(".0").unwrap_or(&text));
                        }
                        None => out.push_str(&n.to_string()),
                    },
                    Some(other) if !other.is_null() => out.push_str(&other.to_string()),
                    _ => {
                        out.push('{');
                        out.push_str(key);
                        out.push('}');
                    }
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

// ---- errors ----

pub(crate) fn error_text(err: &mlua::Error) -> String {
    let text = match err {
        mlua::Error::RuntimeError(s) => s.clone(),
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::MemoryError(s) => format!("memory limit reached ({s})"),
        mlua::Error::CallbackError { cause, .. } => return error_text(cause),
        mlua::Error::WithContext { cause, .. } => return error_text(cause),
        other => other.to_string(),
    };
    match text.find("\nstack traceback:") {
        Some(pos) => text[..pos].to_string(),
        None => text,
    }
}

fn is_memory_error(err: &mlua::Error) -> bool {
    match err {
        mlua::Error::MemoryError(_) => true,
        mlua::Error::CallbackError { cause, .. } | mlua::Error::WithContext { cause, .. } => {
            is_memory_error(cause)
        }
        _ => false,
    }
}

/// The line of the first `chunk:LINE:` in a Lua error message.
pub(crate) fn parse_line(msg: &str) -> Option<u32> {
    let bytes = msg.as_bytes();
    let mut i = 0;
    while let Some(pos) = msg[i..].find(':') {
        let start = i + pos + 1;
        let digits = bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits > 0 && bytes.get(start + digits) == Some(&b':') {
            return msg[start..start + digits].parse().ok();
        }
        i = start;
    }
    None
}

pub(crate) fn rule_error(
    rule: Option<&str>,
    file: &std::path::Path,
    err: &mlua::Error,
) -> RuleError {
    let message = error_text(err);
    let kind = if is_memory_error(err) {
        ErrorKind::Memory
    } else if message.contains("instruction budget exceeded") {
        ErrorKind::Budget
    } else {
        ErrorKind::Runtime
    };
    RuleError {
        rule: rule.map(str::to_string),
        file: file.to_path_buf(),
        line: parse_line(&message),
        kind,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_templates() {
        assert_eq!(parse_line("rules/x.lua:12: boom"), Some(12));
        assert_eq!(
            parse_line("...ong/path/x.lua:7: attempt to call a nil value"),
            Some(7)
        );
        assert_eq!(parse_line("no line here: 3 apples"), None);
        let v = serde_json::json!({"name": "burn", "pid": 42, "cpu": 99.5});
        assert_eq!(
            render_template("{name} (pid {pid}) at {cpu}% {missing}", &v),
            "burn (pid 42) at 99.5% {missing}"
        );
        for cpu in [99.96, 100.0, 100.04] {
            let v = serde_json::json!({ "cpu": cpu });
            assert_eq!(render_template("{cpu}%", &v), "100%", "{cpu}");
        }
    }
}
