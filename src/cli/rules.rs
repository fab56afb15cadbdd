//! `hogtrap rules check | list | test | backtest`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};

use clap::Subcommand;

use super::{time, Ctx};
use crate::actions::plan::{self, IncidentChange};
use crate::config::Config;
use crate::model::TimestampMs;
use crate::rules::{self, Action, DiagnosticLevel, Engine, FiringKind};

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Compile and validate every rule file; errors name file and line.
    Check,
    /// Every rule with its file, state and effective settings (default, or config with its line).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Run rule test files (fixture samples in, expected firings and actions out; see docs/rules.md).
    Test {
        /// Test files; default: every *.toml in the rules directory's tests/.
        files: Vec<PathBuf>,
        /// Override a rule setting or parameter, as `[rules.<name>]` would: cpu_hog.threshold=70.
        #[arg(long = "set", value_name = "RULE.KEY=VALUE")]
        set: Vec<String>,
    },
    /// Replay recorded samples through the rules with actions held: when each rule would have fired.
    Backtest {
        /// Start: "2026-11-26 03:00", "-2h", "2h ago", RFC 3339.
        #[arg(long, allow_hyphen_values = true, value_parser = time::arg)]
        from: TimestampMs,
        /// End: "now", "-1h", a time.
        #[arg(long, allow_hyphen_values = true, value_parser = time::arg)]
        to: TimestampMs,
        /// Only this rule's firings.
        #[arg(long)]
        rule: Option<String>,
        /// Override a rule setting or parameter, as `[rules.<name>]` would: cpu_hog.threshold=70.
        #[arg(long = "set", value_name = "RULE.KEY=VALUE")]
        set: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(ctx: &Ctx, command: Command) -> anyhow::Result<()> {
    let cfg = ctx.config()?;
    match command {
        Command::Check => check(cfg),
        Command::List { json } => list(ctx, cfg, json),
        Command::Test { files, set } => test(cfg, &files, &set),
        Command::Backtest {
            from,
            to,
            rule,
            set,
            json,
        } => backtest(ctx, cfg, from, to, rule.as_deref(), &set, json),
    }
}

fn check(cfg: &Config) -> anyhow::Result<()> {
    let rc = crate::actions::rules_config(cfg);
    let diags = rules::check(&cfg.rules.dir, &rc);
    let mut out = std::io::stdout().lock();
    let errors = diags
        .iter()
        .filter(|d| d.level == DiagnosticLevel::Error)
        .count();
    for d in &diags {
        writeln!(out, "{d}")?;
    }
    if errors > 0 {
        bail!("{errors} error(s) in {}", cfg.rules.dir.display());
    }
    let files = std::fs::read_dir(&cfg.rules.dir)
        .with_context(|| format!("{}", cfg.rules.dir.display()))?
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "lua"))
        .count();
    writeln!(out, "{}: {files} rule file(s) OK", cfg.rules.dir.display())?;
    Ok(())
}

/// The engine config with `--set` overrides on top of the config's `[rules.<name>]`.
fn rules_config_with(cfg: &Config, set: &[String]) -> anyhow::Result<rules::RulesConfig> {
    let mut rc = crate::actions::rules_config(cfg);
    for arg in set {
        rc.settings.set(arg).map_err(anyhow::Error::msg)?;
    }
    Ok(rc)
}

fn list(ctx: &Ctx, cfg: &Config, json: bool) -> anyhow::Result<()> {
    let rc = crate::actions::rules_config(cfg);
    let sources = rules::load_dir_sources(&cfg.rules.dir, true)?;
    let (engine, errors) = Engine::load_lenient(rc, sources)?;
    // The state the daemon recorded, when there is a store.
    let recorded = match ctx.open_store() {
        Ok(store) => crate::store::incident::rule_states(&store.conn).unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    #[derive(serde::Serialize)]
    struct Listed<'a> {
        #[serde(flatten)]
        rule: &'a rules::RuleInfo,
        /// What the daemon recorded for it (status, since, failures), if it ran.
        recorded: Option<&'a crate::store::incident::RuleStateRow>,
    }
    let infos = engine.rules();
    let listed: Vec<Listed> = infos
        .iter()
        .map(|r| Listed {
            rule: r,
            recorded: recorded.iter().find(|s| s.rule == r.name),
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if json {
        super::output::json(&mut out, &listed)?;
    } else {
        for l in &listed {
            let r = l.rule;
            let state = match (r.enabled, l.recorded) {
                (false, _) => "off (enabled = false)".to_string(),
                (true, Some(s)) if s.disabled => "disabled after errors".to_string(),
                (true, Some(s)) => s.status.clone(),
                (true, None) => "not run yet".to_string(),
            };
            writeln!(out, "{} ({}): {state}", r.name, r.file.display())?;
            if let Some(d) = &r.description {
                writeln!(out, "    {d}")?;
            }
            for s in &r.settings {
                let at = s.at.as_deref().map(|a| format!(" {a}")).unwrap_or_default();
                let value = match &s.value {
                    serde_json::Value::Null => "-".to_string(),
                    v => v.to_string(),
                };
                writeln!(out, "    {:<18} {value:<24} {}{at}", s.key, s.source)?;
            }
        }
    }
    for e in &errors {
        eprintln!("{e}");
    }
    if !errors.is_empty() {
        bail!("{} error(s) loading the rules", errors.len());
    }
    Ok(())
}

fn test(cfg: &Config, files: &[PathBuf], set: &[String]) -> anyhow::Result<()> {
    let rc = rules_config_with(cfg, set)?;
    let files: Vec<PathBuf> = if files.is_empty() {
        let dir = cfg.rules.dir.join("tests");
        let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("{}: no rule tests", dir.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        v.sort();
        v
    } else {
        files.to_vec()
    };
    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    for f in &files {
        match rules::run_test_file(f, &rc) {
            Ok(o) if o.passed() => writeln!(
                out,
                "PASS {} ({} samples, {} firings)",
                f.display(),
                o.samples,
                o.firings.len()
            )?,
            Ok(o) => {
                failed += 1;
                writeln!(out, "FAIL {}", f.display())?;
                for m in &o.failures {
                    writeln!(out, "     {m}")?;
                }
            }
            Err(e) => {
                failed += 1;
                writeln!(out, "FAIL {}: {e}", f.display())?;
            }
        }
    }
    writeln!(out, "{} passed, {} failed", files.len() - failed, failed)?;
    if failed > 0 {
        bail!("{failed} rule test file(s) failed");
    }
    Ok(())
}

fn backtest(
    ctx: &Ctx,
    cfg: &Config,
    from: TimestampMs,
    to: TimestampMs,
    only: Option<&str>,
    set: &[String],
    json: bool,
) -> anyhow::Result<()> {
    if to < from {
        bail!("--to is before --from");
    }
    let store = ctx.open_store()?;
    let db = &store.path;
    let samples = crate::store::query::load_samples(&store.conn, from, to, true)
        .with_context(|| format!("{}: reading samples", db.display()))?;
    if samples.is_empty() {
        return Err(super::no_samples(from, to, db));
    }
    let sources = rules::load_dir_sources(&cfg.rules.dir, true)?;
    // Actions are held: the engine only returns them, and nothing here carries them out.
    let mut engine = Engine::load(rules_config_with(cfg, set)?, sources).map_err(|errs| {
        anyhow::anyhow!(
            "{}",
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    if let Some(rule) = only {
        if !engine.rules().iter().any(|r| r.name == rule) {
            bail!("no rule named {rule} in {}", cfg.rules.dir.display());
        }
    }
    let bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(samples.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} samples {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut firings = Vec::new();
    let mut errors = 0;
    for s in samples.iter() {
        let eval = engine.evaluate(s);
        errors += eval.errors.len();
        firings.extend(
            eval.firings
                .into_iter()
                .filter(|f| only.is_none_or(|r| r == f.rule)),
        );
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut out = std::io::stdout().lock();
    if json {
        return super::output::json(out, &firings);
    }
    writeln!(
        out,
        "backtest over {} samples {} (actions held, nothing sent or written)\n",
        samples.len(),
        time::span(from, to)
    )?;
    // The daemon's policy, replayed: which incidents would open and close, and what each
    // would send on the channels this config enables.
    let enabled = crate::alert::outbox::enabled_channels(cfg);
    let mut open = std::collections::HashSet::new();
    let (mut incidents, mut alerts) = (0, 0);
    for f in &firings {
        let kind = match f.kind {
            FiringKind::Fire => "FIRE ",
            FiringKind::Clear => "CLEAR",
            FiringKind::Scheduled => "RUN  ",
        };
        writeln!(
            out,
            "{}  {kind} {} ({})",
            time::format_local(f.ts_ms),
            f.rule,
            f.severity.as_str()
        )?;
        if let serde_json::Value::Object(values) = &f.values {
            let shown: Vec<String> = values
                .iter()
                .map(|(k, v)| format!("{k} {}", crate::format::value_text(k, v)))
                .collect();
            writeln!(out, "      values: {}", shown.join(", "))?;
        }
        for a in &f.actions {
            let mut change = IncidentChange::default();
            let line = match a {
                Action::Incident { title, .. } => {
                    change.opened = open.insert(f.rule.clone());
                    if change.opened {
                        incidents += 1;
                        format!("would open incident: {title}")
                    } else {
                        format!("would update the open incident: {title}")
                    }
                }
                Action::Resolve { .. } => {
                    change.closed = open.remove(&f.rule);
                    if change.closed {
                        "would resolve the incident".to_string()
                    } else {
                        "would resolve the incident (none open)".to_string()
                    }
                }
                Action::Capture { duration, .. } => {
                    format!("would capture in detail for {}s", duration.as_secs())
                }
                Action::Email { subject, .. } => format!("email: {subject}"),
                Action::Notify { summary, .. } => format!("desktop notification: {summary}"),
                Action::Prune { policy, .. } => format!("would run prune policy {policy}"),
                Action::Log { message } => format!("would log: {message}"),
                Action::Exec { argv, .. } => format!("would run: {}", argv.join(" ")),
            };
            writeln!(out, "      {line}")?;
            for alert in plan::alerts_of_action(f, a, change, &enabled) {
                alerts += 1;
                writeln!(
                    out,
                    "      would send ({} {}): {}",
                    alert.channel.as_str(),
                    alert.kind,
                    alert.subject
                )?;
            }
        }
    }
    writeln!(
        out,
        "\n{} firing(s): {incidents} incident(s) and {alerts} alert(s) would have been made; {errors} rule error(s)",
        firings.len()
    )?;
    Ok(())
}
