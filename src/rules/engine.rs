//! The engine the daemon holds: loads rule files into a worker thread, evaluates every sample
//! there, and keeps the one promise the worker cannot keep by itself: [`Engine::evaluate`]
//! answers within `wall_limit`, whatever a rule does. When a call overruns (a C function the
//! instruction hook cannot interrupt), the engine abandons that worker thread and its Lua
//! state (at idle priority), disables the rule, and a fresh worker reloads the other rules
//! with their saved state before the next evaluation.
//!
//! The engine keeps the authoritative copy of every rule's state on its side of the channel,
//! so an abandoned worker loses nothing but the call that hung.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::history::HistoryRing;
use super::types::*;
use super::worker::{self, Reply, Request, RuleMeta, WorkerHandle};
use crate::files::{self, StrictModesError};
use crate::model::Severity;
use crate::model::{HostRow, ProcessIdentity, ProcessRow, Psi, Sample, TimestampMs};

pub use super::worker::RuleSource;

/// A loaded rule as the CLI shows it (`hogtrap status`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RuleInfo {
    pub name: String,
    pub file: PathBuf,
    pub severity: Severity,
    pub scheduled: bool,
    /// `false` when the config says `enabled = false` (loaded, never evaluated).
    pub enabled: bool,
    /// The rule's description with its parameters filled in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Every setting and parameter with its effective value and where it comes from.
    pub settings: Vec<EffectiveSetting>,
    pub state: RuleState,
}

pub struct Engine {
    cfg: RulesConfig,
    /// Files that loaded; a rebuild reloads exactly these.
    sources: Vec<RuleSource>,
    rules: Vec<RuleMeta>,
    states: BTreeMap<String, RuleState>,
    history: Arc<Mutex<HistoryRing>>,
    /// `None` after the watchdog abandoned it: respawned at the next evaluation.
    worker: Option<WorkerHandle>,
    abandoned: usize,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("rules", &self.rules)
            .field("abandoned", &self.abandoned)
            .finish()
    }
}

impl Engine {
    /// Loads every file, all or nothing: the first broken file makes this fail, which is what
    /// a SIGHUP reload wants (keep the running engine, say why).
    pub fn load(cfg: RulesConfig, sources: Vec<RuleSource>) -> Result<Engine, Vec<RuleError>> {
        let (engine, errors) = Engine::load_lenient(cfg, sources).map_err(|e| {
            vec![RuleError {
                rule: None,
                file: PathBuf::from("<engine>"),
                line: None,
                kind: ErrorKind::Runtime,
                message: e.to_string(),
            }]
        })?;
        if errors.is_empty() {
            Ok(engine)
        } else {
            Err(errors)
        }
    }

    /// Like [`Engine::load`], restoring saved state first (daemon start: state from the store),
    /// so no rule starts over and the worker loads once.
    pub fn load_with_state(
        cfg: RulesConfig,
        sources: Vec<RuleSource>,
        state: EngineState,
    ) -> Result<Engine, Vec<RuleError>> {
        let history = Arc::new(Mutex::new(HistoryRing::new(cfg.history_capacity)));
        let mut engine = Engine {
            cfg,
            sources,
            rules: Vec::new(),
            states: state.rules,
            history,
            worker: None,
            abandoned: 0,
        };
        match engine.respawn() {
            Ok(mut errors) => {
                let unknown = engine.unknown_settings(&errors);
                errors.extend(unknown);
                match errors.is_empty() {
                    true => Ok(engine),
                    false => Err(errors),
                }
            }
            Err(e) => Err(vec![engine_error(e.to_string())]),
        }
    }

    /// SIGHUP: loads `sources` into a new worker and swaps it in only if every file loads;
    /// on error the running rules stay and the errors say why. Rule state and history carry
    /// over; rules disabled for errors get another chance (the file may have been fixed).
    pub fn reload(
        &mut self,
        cfg: RulesConfig,
        sources: Vec<RuleSource>,
    ) -> Result<(), Vec<RuleError>> {
        let mut states = self.states.clone();
        for s in states.values_mut() {
            s.disabled = None;
            s.consecutive_errors = 0;
        }
        if cfg.history_capacity != self.cfg.history_capacity {
            let mut ring = self.history.lock().unwrap_or_else(|p| p.into_inner());
            let mut fresh = HistoryRing::new(cfg.history_capacity);
            fresh.extend_from(&ring);
            *ring = fresh;
        }
        let mut next = Engine {
            cfg,
            sources,
            rules: Vec::new(),
            states,
            history: self.history.clone(),
            worker: None,
            abandoned: self.abandoned,
        };
        match next.respawn() {
            Ok(mut errors) => {
                let unknown = next.unknown_settings(&errors);
                errors.extend(unknown);
                if !errors.is_empty() {
                    return Err(errors);
                }
                *self = next;
                Ok(())
            }
            Err(e) => Err(vec![engine_error(e.to_string())]),
        }
    }

    /// Loads the files that work and reports the others (their rules are left out).
    pub fn load_lenient(
        cfg: RulesConfig,
        sources: Vec<RuleSource>,
    ) -> Result<(Engine, Vec<RuleError>), RulesError> {
        let history = Arc::new(Mutex::new(HistoryRing::new(cfg.history_capacity)));
        let mut engine = Engine {
            cfg,
            sources,
            rules: Vec::new(),
            states: BTreeMap::new(),
            history,
            worker: None,
            abandoned: 0,
        };
        let mut errors = engine.respawn()?;
        let unknown = engine.unknown_settings(&errors);
        errors.extend(unknown);
        Ok((engine, errors))
    }

    /// `[rules.<name>]` settings for rules that are not loaded (a typo in the name, or a rule
    /// whose file failed): one error each, naming the config file and line.
    /// Rules already named by one of `errors` (their settings were refused) are left out.
    fn unknown_settings(&self, errors: &[RuleError]) -> Vec<RuleError> {
        super::settings::unknown_rules(
            &self.cfg.settings,
            self.rules.iter().map(|r| r.name.as_str()),
        )
        .into_iter()
        .filter(|u| !errors.iter().any(|e| e.rule == u.rule))
        .collect()
    }

    /// Starts a worker and loads `self.sources` into it, dropping files that fail.
    fn respawn(&mut self) -> Result<Vec<RuleError>, RulesError> {
        let mut errors = Vec::new();
        'attempt: loop {
            let handle = worker::spawn(self.cfg.clone(), self.history.clone())
                .map_err(|e| RulesError::Worker(format!("cannot start the rules thread: {e}")))?;
            let files = self.sources.clone();
            handle
                .tx
                .send(Request::Load {
                    files: files.clone(),
                    states: self.states.clone(),
                })
                .map_err(|_| RulesError::Worker("the rules thread exited at start".into()))?;
            let mut rules = Vec::new();
            let mut bad: Vec<usize> = Vec::new();
            let mut next_file = 0usize;
            loop {
                match handle.rx.recv_timeout(self.cfg.rule_wall_limit) {
                    Ok(Reply::FileLoaded { idx, result }) => {
                        next_file = idx + 1;
                        match result {
                            Ok(metas) => rules.extend(metas),
                            Err(e) => {
                                errors.push(e);
                                bad.push(idx);
                            }
                        }
                    }
                    Ok(Reply::LoadDone) => break,
                    Ok(Reply::Failed(msg)) => return Err(RulesError::Worker(msg)),
                    Ok(_) => {}
                    Err(RecvTimeoutError::Timeout) => {
                        // This file's top-level code hangs in C: drop it and start over.
                        let path = files[next_file].path.clone();
                        errors.push(RuleError {
                            rule: None,
                            file: path,
                            line: None,
                            kind: ErrorKind::Timeout,
                            message: format!(
                                "loading took longer than the wall-clock limit ({:?}); the file is not loaded",
                                self.cfg.rule_wall_limit
                            ),
                        });
                        self.abandon(handle);
                        self.sources.remove(next_file);
                        continue 'attempt;
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        return Err(RulesError::Worker(
                            "the rules thread died while loading".into(),
                        ))
                    }
                }
            }
            for idx in bad.into_iter().rev() {
                self.sources.remove(idx);
            }
            for meta in &rules {
                self.states.entry(meta.name.clone()).or_default();
            }
            self.rules = rules;
            self.worker = Some(handle);
            return Ok(errors);
        }
    }

    fn abandon(&mut self, handle: WorkerHandle) {
        let tid = handle.tid.load(std::sync::atomic::Ordering::SeqCst);
        if tid > 0 {
            // SAFETY: plain syscalls on a thread id of this process; failures are harmless.
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS as _, tid as libc::id_t, 19);
                let param = libc::sched_param { sched_priority: 0 };
                libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param);
            }
        }
        self.abandoned += 1;
        tracing::warn!(
            tid,
            abandoned = self.abandoned,
            "rules: abandoned a stuck Lua worker thread"
        );
        drop(handle);
    }

    /// Evaluates every enabled rule against `sample`. Clones the sample for the worker; use
    /// [`Engine::evaluate_shared`] to avoid the copy.
    pub fn evaluate(&mut self, sample: &Sample) -> Evaluation {
        self.evaluate_shared(Arc::new(sample.clone()))
    }

    /// Like [`Engine::evaluate`], without copying the sample.
    pub fn evaluate_shared(&mut self, sample: Arc<Sample>) -> Evaluation {
        let start = Instant::now();
        let total_deadline = start + self.cfg.wall_limit;
        let mut eval = Evaluation {
            ts_ms: sample.ts_ms,
            ..Default::default()
        };
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(&sample);
        let mut from = 0usize;
        // One pass per worker: a pass ends when the worker finishes or is abandoned.
        loop {
            if self.worker.is_none() {
                match self.respawn() {
                    Ok(errors) => eval.errors.extend(errors),
                    Err(e) => {
                        eval.errors.push(engine_error(e.to_string()));
                        eval.skipped = self.rule_names_from(from);
                        return eval;
                    }
                }
            }
            let Some(handle) = self.worker.take() else {
                return eval;
            };
            let request = Request::Evaluate {
                sample: sample.clone(),
                from,
            };
            if handle.tx.send(request).is_err() {
                eval.errors.push(engine_error(
                    "the rules thread is gone; restarting it".into(),
                ));
                eval.skipped = self.rule_names_from(from);
                return eval;
            }
            let mut done = from;
            let mut rule_start = Instant::now();
            loop {
                let deadline = (rule_start + self.cfg.rule_wall_limit).min(total_deadline);
                let left = deadline.saturating_duration_since(Instant::now());
                match handle.rx.recv_timeout(left) {
                    Ok(Reply::RuleDone(outcome)) => {
                        let outcome = *outcome;
                        if let Some(meta) = self.rules.get(done) {
                            self.states.insert(meta.name.clone(), outcome.state);
                        }
                        eval.firings.extend(outcome.firing);
                        eval.errors.extend(outcome.errors);
                        eval.logs.extend(outcome.logs);
                        eval.disabled.extend(outcome.newly_disabled);
                        done += 1;
                        rule_start = Instant::now();
                    }
                    Ok(Reply::EvalDone { error }) => {
                        if let Some(msg) = error {
                            eval.errors.push(engine_error(msg));
                            eval.skipped = self.rule_names_from(done);
                        }
                        self.worker = Some(handle);
                        return eval;
                    }
                    Ok(_) => {}
                    Err(RecvTimeoutError::Timeout) => {
                        self.on_timeout(done, &mut eval);
                        self.abandon(handle);
                        from = done + 1;
                        if Instant::now() >= total_deadline || from >= self.rules.len() {
                            eval.skipped = self.rule_names_from(from);
                            return eval;
                        }
                        break; // respawn and go on with the rules after the stuck one
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        eval.errors.push(engine_error(
                            "the rules thread died; it is restarted at the next sample".into(),
                        ));
                        eval.skipped = self.rule_names_from(done);
                        return eval;
                    }
                }
            }
        }
    }

    /// Enabled rules from index `from` on.
    fn rule_names_from(&self, from: usize) -> Vec<String> {
        self.rules
            .iter()
            .skip(from)
            .filter(|r| {
                self.states
                    .get(&r.name)
                    .is_none_or(|s| s.disabled.is_none())
            })
            .map(|r| r.name.clone())
            .collect()
    }

    fn on_timeout(&mut self, done: usize, eval: &mut Evaluation) {
        let Some(meta) = self.rules.get(done).cloned() else {
            eval.errors.push(engine_error(format!(
                "the evaluation took longer than the wall-clock limit ({:?}) outside any rule",
                self.cfg.wall_limit
            )));
            return;
        };
        let message = format!(
            "still running after the wall-clock limit ({:?}), probably in a C function such as a pathological string pattern; the rule is disabled",
            self.cfg.rule_wall_limit
        );
        let state = self.states.entry(meta.name.clone()).or_default();
        state.total_errors += 1;
        state.consecutive_errors += 1;
        let reason = format!("{}: rule {}: {message}", meta.file.display(), meta.name);
        state.disabled = Some(reason.clone());
        eval.errors.push(RuleError {
            rule: Some(meta.name.clone()),
            file: meta.file.clone(),
            line: None,
            kind: ErrorKind::Timeout,
            message,
        });
        eval.disabled.push(RuleDisabled {
            rule: meta.name.clone(),
            file: meta.file.clone(),
            reason,
        });
    }

    /// Every rule's state, to persist (JSON via serde).
    pub fn export_state(&self) -> EngineState {
        EngineState {
            rules: self.states.clone(),
        }
    }

    /// Restores saved state (after a restart or a reload). Rules not loaded are kept, so a
    /// rule temporarily removed keeps its state; the worker picks it up before the next sample.
    pub fn import_state(&mut self, state: EngineState) {
        self.states.extend(state.rules);
        self.restart_worker();
    }

    /// Re-enables a disabled rule (after the user fixed the cause without editing the file).
    pub fn enable_rule(&mut self, name: &str) -> bool {
        match self.states.get_mut(name) {
            Some(s) if s.disabled.is_some() => {
                s.disabled = None;
                s.consecutive_errors = 0;
                self.restart_worker();
                true
            }
            _ => false,
        }
    }

    fn restart_worker(&mut self) {
        // A clean shutdown: dropping the channel makes the idle worker exit.
        self.worker = None;
    }

    /// Loaded rules with their current state, in evaluation order.
    pub fn rules(&self) -> Vec<RuleInfo> {
        self.rules
            .iter()
            .map(|m| RuleInfo {
                name: m.name.clone(),
                file: m.file.clone(),
                severity: m.severity,
                scheduled: m.scheduled,
                enabled: m.enabled,
                description: m.description.clone(),
                settings: m.settings.clone(),
                state: self.states.get(&m.name).cloned().unwrap_or_default(),
            })
            .collect()
    }

    /// Fills the history ring from stored rows (oldest first), e.g. after a restart.
    pub fn seed_history<'a>(&mut self, rows: impl IntoIterator<Item = (TimestampMs, &'a HostRow)>) {
        let mut ring = self.history.lock().unwrap_or_else(|p| p.into_inner());
        for (ts, host) in rows {
            ring.push_host(ts, host);
        }
    }

    /// Worker threads abandoned by the watchdog since the engine started (each may still burn
    /// CPU at idle priority until its C call returns).
    pub fn abandoned_workers(&self) -> usize {
        self.abandoned
    }

    pub fn config(&self) -> &RulesConfig {
        &self.cfg
    }
}

fn engine_error(message: String) -> RuleError {
    RuleError {
        rule: None,
        file: PathBuf::from("<engine>"),
        line: None,
        kind: ErrorKind::Runtime,
        message,
    }
}

// ---- files ----

/// Refuses a file or directory that group or others can write, or that is owned by someone
/// other than the user running hogtrap or root (as sshd's StrictModes does; see
/// [`files::check_strict_modes`]).
pub fn check_file_permissions(path: &Path) -> Result<(), RulesError> {
    let file = match files::check_strict_modes(path) {
        Ok(()) => return Ok(()),
        Err(StrictModesError::Metadata(source)) => {
            return Err(RulesError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
        Err(StrictModesError::Unsafe(file)) => file,
    };
    let reason = if file.writable_by_others() {
        format!(
            "writable by group or others (mode {:04o}); run: chmod go-w {}",
            file.mode,
            path.display()
        )
    } else {
        format!(
            "owned by uid {}, not by the user running hogtrap (uid {}) or root; run: chown {} {}",
            file.owner,
            file.euid,
            file.euid,
            path.display()
        )
    };
    Err(RulesError::Permissions {
        path: path.to_path_buf(),
        reason,
    })
}

/// The `*.lua` files of `dir` in name order, read and (if `strict`) permission-checked.
pub fn load_dir_sources(dir: &Path, strict: bool) -> Result<Vec<RuleSource>, RulesError> {
    let (sources, mut problems) = read_dir_sources(dir, strict);
    match problems.is_empty() {
        true => Ok(sources),
        false => Err(problems.remove(0)),
    }
}

fn read_dir_sources(dir: &Path, strict: bool) -> (Vec<RuleSource>, Vec<RulesError>) {
    let mut problems = Vec::new();
    if strict {
        if let Err(e) = check_file_permissions(dir) {
            return (Vec::new(), vec![e]);
        }
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(source) => {
            return (
                Vec::new(),
                vec![RulesError::Io {
                    path: dir.to_path_buf(),
                    source,
                }],
            )
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "lua")
                && p.file_name()
                    .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
                && p.is_file()
        })
        .collect();
    paths.sort();
    let mut sources = Vec::new();
    for path in paths {
        if strict {
            if let Err(e) = check_file_permissions(&path) {
                problems.push(e);
                continue;
            }
        }
        match std::fs::read(&path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => sources.push(RuleSource { path, text }),
                Err(_) => problems.push(RulesError::Permissions {
                    path,
                    reason: "not UTF-8 text (binary chunks are not accepted)".into(),
                }),
            },
            Err(source) => problems.push(RulesError::Io { path, source }),
        }
    }
    (sources, problems)
}

/// `hogtrap rules check`: every problem in `dir`, each naming its file (and line when Lua
/// knows it). Files are compiled and loaded in a throwaway engine, then each rule runs once on
/// a synthetic sample; a failure there is a warning (the rule may rely on real data).
pub fn check(dir: &Path, cfg: &RulesConfig) -> Vec<Diagnostic> {
    let (sources, problems) = read_dir_sources(dir, cfg.strict_permissions);
    let mut diags: Vec<Diagnostic> = problems
        .into_iter()
        .map(|e| {
            let file = match &e {
                RulesError::Io { path, .. } | RulesError::Permissions { path, .. } => path.clone(),
                _ => dir.to_path_buf(),
            };
            Diagnostic {
                file,
                line: None,
                rule: None,
                level: DiagnosticLevel::Error,
                message: match e {
                    RulesError::Permissions { reason, .. } => format!("refused: {reason}"),
                    RulesError::Io { source, .. } => source.to_string(),
                    other => other.to_string(),
                },
            }
        })
        .collect();
    if sources.is_empty() && diags.is_empty() {
        diags.push(Diagnostic {
            file: dir.to_path_buf(),
            line: None,
            rule: None,
            level: DiagnosticLevel::Warning,
            message: "no *.lua rule files".into(),
        });
        return diags;
    }
    let mut cfg = cfg.clone();
    cfg.allow_exec = true; // check the rules, not the config
    match Engine::load_lenient(cfg, sources) {
        Err(e) => diags.push(Diagnostic {
            file: dir.to_path_buf(),
            line: None,
            rule: None,
            level: DiagnosticLevel::Error,
            message: e.to_string(),
        }),
        Ok((mut engine, errors)) => {
            diags.extend(errors.into_iter().map(|e| Diagnostic {
                file: e.file,
                line: e.line,
                rule: e.rule,
                level: DiagnosticLevel::Error,
                message: e.message,
            }));
            let eval = engine.evaluate(&synthetic_sample());
            diags.extend(eval.errors.into_iter().map(|e| Diagnostic {
                file: e.file,
                line: e.line,
                rule: e.rule,
                level: DiagnosticLevel::Warning,
                message: format!("fails on a synthetic sample: {}", e.message),
            }));
        }
    }
    diags
}

/// A plausible sample with a few processes, for dry runs.
pub(crate) fn synthetic_sample() -> Sample {
    let psi = Some(Psi {
        some_avg10: 1.0,
        some_total_us: 1_000,
        full_avg10: Some(0.5),
        full_total_us: Some(500),
    });
    Sample {
        ts_ms: 1_764_000_000_000,
        host_name: "check".into(),
        cpu_count: 4,
        interval_ms: 10_000,
        host: HostRow {
            load1: 0.5,
            load5: 0.4,
            load15: 0.3,
            cpu_user_pct: 10.0,
            cpu_system_pct: 5.0,
            cpu_idle_pct: 85.0,
            mem_total_bytes: 8 << 30,
            mem_used_bytes: 2 << 30,
            mem_available_bytes: 6 << 30,
            swap_total_bytes: 2 << 30,
            psi_cpu: psi,
            psi_memory: psi,
            psi_io: psi,
            procs_total: 2,
            ..Default::default()
        },
        processes: (1..=2)
            .map(|pid| ProcessRow {
                id: ProcessIdentity {
                    pid,
                    ppid: 1,
                    user: "root".into(),
                    name: format!("proc{pid}"),
                    cmdline: format!("/usr/bin/proc{pid} --flag"),
                    ..Default::default()
                },
                state: 'S',
                cpu_pct: 1.0,
                rss_bytes: 10 << 20,
                threads: 1,
                net_tx_bytes_per_s: Some(0.0),
                net_rx_bytes_per_s: Some(0.0),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}
