//! Engine tests with real Lua: the rule model, the view, actions, state, and the adversarial
//! rules (those of one kind as a table of cases, each named when it fails). Each adversary
//! shares an engine with two good rules that must keep firing, and every evaluation must
//! return within the wall-clock limit.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::*;
use crate::model::{HostRow, ProcessIdentity, ProcessRow, Psi, Sample, Severity};

fn src(name: &str, text: &str) -> RuleSource {
    RuleSource {
        path: PathBuf::from(format!("rules/{name}")),
        text: text.to_string(),
    }
}

fn cfg() -> RulesConfig {
    RulesConfig {
        instruction_budget: 200_000,
        memory_limit_bytes: 32 << 20,
        wall_limit: Duration::from_millis(1500),
        rule_wall_limit: Duration::from_millis(300),
        max_consecutive_errors: 2,
        ..Default::default()
    }
}

fn proc_row(pid: u32, name: &str, cpu: f64) -> ProcessRow {
    ProcessRow {
        id: ProcessIdentity {
            pid,
            ppid: 1,
            user: "alice".into(),
            name: name.into(),
            cmdline: format!("/usr/bin/{name} --run"),
            ..Default::default()
        },
        state: 'R',
        cpu_pct: cpu,
        rss_bytes: pid as u64 * 1024 * 1024,
        read_bytes_per_s: pid as f64,
        net_tx_bytes_per_s: Some(pid as f64 * 10.0),
        net_rx_bytes_per_s: None,
        threads: 1,
        ..Default::default()
    }
}

fn sample(t_s: i64, load1: f64) -> Sample {
    Sample {
        ts_ms: 1_764_000_000_000 + t_s * 1000,
        host_name: "box".into(),
        cpu_count: 2,
        interval_ms: 1000,
        host: HostRow {
            load1,
            mem_total_bytes: 1000,
            mem_used_bytes: 250,
            psi_memory: Some(Psi {
                some_avg10: 12.5,
                ..Default::default()
            }),
            ..Default::default()
        },
        processes: vec![
            proc_row(10, "sshd", 0.5),
            proc_row(20, "burn", 99.0),
            proc_row(30, "db", 40.0),
        ],
        ..Default::default()
    }
}

const GOOD_A: &str = r#"
rule { name = "good_a", when = function(s) return s.load1 > 1 end }
"#;
const GOOD_Z: &str = r#"
rule { name = "good_z", severity = "critical", when = function(s)
  local t = s:top(1, "cpu")[1]
  return s.load1 > 1 and t.name == "burn" and string.upper("x") == "X" and ("y"):upper() == "Y"
end }
"#;

/// Runs `bad` beside two good rules over 4 samples (load 2, 0, 2, 0).
/// The adversary fails with `kind` and `message` while the good rules go on.
#[track_caller]
fn adversary_fails(bad: &str, kind: ErrorKind, message: &str) {
    adversary_cfg_fails(bad, cfg(), kind, message);
}

#[track_caller]
fn adversary_cfg_fails(bad: &str, cfg: RulesConfig, kind: ErrorKind, message: &str) {
    let (evals, _) = adversary_cfg(bad, cfg);
    assert_bad_failed(&evals, kind, message);
}

fn adversary(bad: &str) -> (Vec<Evaluation>, Engine) {
    adversary_cfg(bad, cfg())
}

fn adversary_cfg(bad: &str, cfg: RulesConfig) -> (Vec<Evaluation>, Engine) {
    let limit = cfg.wall_limit;
    let mut engine = Engine::load(
        cfg,
        vec![
            src("a_good.lua", GOOD_A),
            src("m_bad.lua", bad),
            src("z_good.lua", GOOD_Z),
        ],
    )
    .expect("loads");
    let mut evals = Vec::new();
    for (i, load) in [2.0, 0.0, 2.0, 0.0].into_iter().enumerate() {
        let start = Instant::now();
        let eval = engine.evaluate(&sample(i as i64, load));
        let took = start.elapsed();
        if std::env::var_os("HOGTRAP_PRINT_TIMES").is_some() {
            eprintln!("evaluate {i}: {took:?}");
        }
        // The limit, plus respawning a worker after an abandoned one (debug build).
        assert!(
            took < limit + Duration::from_millis(700),
            "evaluate took {took:?}"
        );
        evals.push(eval);
    }
    for (i, eval) in evals.iter().enumerate() {
        for good in ["good_a", "good_z"] {
            let kinds: Vec<FiringKind> = eval
                .firings
                .iter()
                .filter(|f| f.rule == good)
                .map(|f| f.kind)
                .collect();
            let want = if i % 2 == 0 {
                FiringKind::Fire
            } else {
                FiringKind::Clear
            };
            assert_eq!(kinds, vec![want], "sample {i}, rule {good}: {eval:#?}");
        }
        assert!(
            eval.errors.iter().all(|e| e.rule.as_deref() == Some("bad")),
            "{:#?}",
            eval.errors
        );
    }
    (evals, engine)
}

fn bad_errors(evals: &[Evaluation]) -> Vec<RuleError> {
    evals
        .iter()
        .flat_map(|e| e.errors.clone())
        .filter(|e| e.rule.as_deref() == Some("bad"))
        .collect()
}

fn assert_bad_failed(evals: &[Evaluation], kind: ErrorKind, needle: &str) {
    let errs = bad_errors(evals);
    assert!(!errs.is_empty(), "no error recorded for the bad rule");
    assert_eq!(errs[0].kind, kind, "{:#?}", errs);
    assert!(
        errs[0].message.contains(needle),
        "{:?} lacks {needle:?}",
        errs[0].message
    );
    assert_eq!(errs[0].file, PathBuf::from("rules/m_bad.lua"));
    // Disabled after max_consecutive_errors (2) failures (or at once on a timeout).
    assert!(evals
        .iter()
        .any(|e| e.disabled.iter().any(|d| d.rule == "bad")));
}

#[test]
fn adversary_infinite_loop() {
    let (evals, _) =
        adversary("rule { name = 'bad', when = function(s)\n  while true do end\nend }");
    assert_bad_failed(&evals, ErrorKind::Budget, "instruction budget exceeded");
    assert_eq!(bad_errors(&evals)[0].line, Some(2));
}

#[test]
fn adversary_loops_exhaust_the_budget() {
    // Each case its own adversary: a loop hidden where a budget check could be dodged.
    let cases = [
        (
            "loop_inside_pcall",
            "rule { name = 'bad', when = function(s)\n  while true do pcall(function() while true do end end) end\nend }",
        ),
        (
            "loop_inside_xpcall_with_retrying_handler",
            "rule { name = 'bad', when = function(s)\n  while true do xpcall(function() while true do end end, function() while true do end end) end\nend }",
        ),
        (
            "loop_inside_coroutine",
            "rule { name = 'bad', when = function(s)\n  while true do\n    local co = coroutine.create(function() while true do end end)\n    coroutine.resume(co)\n  end\nend }",
        ),
        (
            "coroutine_wrap_in_pcall",
            "rule { name = 'bad', when = function(s)\n  while true do pcall(coroutine.wrap(function() while true do end end)) end\nend }",
        ),
    ];
    for (case, rule) in cases {
        eprintln!("case: {case}");
        adversary_fails(rule, ErrorKind::Budget, "instruction budget exceeded");
    }
}

#[test]
fn adversary_table_bomb() {
    let mut c = cfg();
    c.instruction_budget = 50_000_000;
    c.memory_limit_bytes = 8 << 20;
    c.wall_limit = Duration::from_secs(3);
    c.rule_wall_limit = Duration::from_secs(3);
    adversary_cfg_fails("rule { name = 'bad', when = function(s)\n  local t = {}\n  for i = 1, 1e9 do t[i] = { i, i, i } end\nend }", c, ErrorKind::Memory, "memory");
}

#[test]
fn adversary_string_rep_bomb() {
    adversary_fails("rule { name = 'bad', when = function(s)\n  local x = string.rep('x', 1e9)\n  return #x > 0\nend }", ErrorKind::Memory, "memory");
}

#[test]
fn adversary_pathological_pattern_hits_the_watchdog() {
    let mut c = cfg();
    c.rule_wall_limit = Duration::from_millis(300);
    let (evals, engine) = adversary_cfg(
        "rule { name = 'bad', when = function(s)\n  return string.find(string.rep('a', 40000), '.-.-.-.-.-.-b')\nend }",
        c,
    );
    assert_bad_failed(&evals, ErrorKind::Timeout, "wall-clock limit");
    assert_eq!(engine.abandoned_workers(), 1);
    // good_z comes after the stuck rule: a fresh worker evaluated it in the same call.
    let state = &engine.export_state().rules["bad"];
    assert!(state.disabled.is_some());
}

#[test]
fn adversary_deep_recursion() {
    let mut c = cfg();
    c.instruction_budget = 50_000_000;
    c.wall_limit = Duration::from_secs(3);
    c.rule_wall_limit = Duration::from_secs(3);
    let (evals, _) = adversary_cfg(
        "local function f(n) return f(n + 1) + 1 end\nrule { name = 'bad', when = function(s)\n  return f(1) > 0\nend }",
        c,
    );
    let errs = bad_errors(&evals);
    assert!(!errs.is_empty());
    assert!(
        errs[0].message.contains("stack overflow") || errs[0].kind == ErrorKind::Memory,
        "{:?}",
        errs[0]
    );
}

fn reach(expr: &str, needle: &str) {
    let text = format!("rule {{ name = 'bad', when = function(s)\n  {expr}\n  return true\nend }}");
    let (evals, _) = adversary(&text);
    assert_bad_failed(&evals, ErrorKind::Runtime, needle);
    assert_eq!(
        bad_errors(&evals)[0].line,
        Some(2),
        "{:?}",
        bad_errors(&evals)[0]
    );
}

#[test]
fn adversary_reaches_for_what_the_sandbox_withholds() {
    // (case, the rule's line 2, what its error names)
    #[rustfmt::skip]
    let cases = [
        ("os_execute", "os.execute('touch /tmp/hogtrap-pwned')", "execute"),
        ("os_getenv_and_remove", "local h = os.getenv('HOME') or os.remove('/tmp/x')", "getenv"),
        ("io", "io.open('/etc/passwd')", "io"),
        ("require", "require('os')", "require"),
        ("package_loadlib", "package.loadlib('libc.so.6', 'system')", "package"),
        ("string_dump", "local f = load(string.dump(function() end))", "dump"),
        ("binary_chunk", "assert(load('\\27Lua\\x54\\0\\25\\147\\13\\10\\26\\10'))", "binary chunk"),
        ("dofile_loadfile", "dofile('/etc/passwd')", "dofile"),
        ("debug", "debug.sethook()", "debug"),
        ("gc_metamethod", "setmetatable({}, { __gc = function() while true do end end })", "__gc"),
        // `load` runs in the rule's own env: no way to the real _G from there either.
        ("load_escapes_to_real_globals", "load('return io')().open('/etc/passwd')", "index a nil value"),
        ("string_metatable", "getmetatable('').__index.upper = function() return 'evil' end", "index"),
        ("writes_the_shared_sample", "s.load1 = 0", "read-only"),
        ("rawsets_the_shared_sample", "rawset(s, 'load1', 0)", "read-only"),
        ("mutates_shared_process_table", "s:top(1, 'cpu')[1].name = 'evil'", "read-only"),
    ];
    for (case, expr, needle) in cases {
        eprintln!("case: {case}");
        reach(expr, needle);
    }
}

#[test]
fn adversary_changes_string_for_others() {
    // Its own copy changes, the others' do not (GOOD_Z checks string.upper and ("y"):upper()).
    let text = "string.upper = function() return 'evil' end\nrule { name = 'bad', when = function(s)\n  string.lower = nil\n  error('after tampering')\nend }";
    let (evals, _) = adversary(text);
    assert_bad_failed(&evals, ErrorKind::Runtime, "after tampering");
}

#[test]
fn adversary_globals_do_not_leak_between_files() {
    let a = "leaked = 42\nrule { name = 'bad', when = function(s) return false end }";
    let z = "rule { name = 'peek', when = function(s) return leaked == nil end }";
    let mut engine = Engine::load(cfg(), vec![src("a.lua", a), src("z.lua", z)]).unwrap();
    let eval = engine.evaluate(&sample(0, 0.0));
    assert_eq!(eval.firings.len(), 1, "{eval:#?}");
    assert_eq!(eval.firings[0].rule, "peek");
}

#[test]
fn load_time_runaway_and_syntax_errors_name_file_and_line() {
    let mut c = cfg();
    c.rule_wall_limit = Duration::from_millis(300);
    let sources = vec![
        src("a_good.lua", GOOD_A),
        src("b_loop.lua", "while true do end"),
        src(
            "c_syntax.lua",
            "rule { name = 'x',\n  when = function(s) return s.load1 > end }",
        ),
        src(
            "d_hang.lua",
            "string.find(string.rep('a', 40000), '.-.-.-.-.-.-b')",
        ),
        src(
            "e_unknown.lua",
            "rule { name = 'typo', hold_for = '30s', when = function(s) return true end }",
        ),
        src("z_good.lua", GOOD_Z),
    ];
    assert!(Engine::load(c.clone(), sources.clone()).is_err());
    let (mut engine, errors) = Engine::load_lenient(c, sources).unwrap();
    let by_file = |f: &str| {
        errors
            .iter()
            .find(|e| e.file.ends_with(f))
            .unwrap_or_else(|| panic!("{f}: {errors:#?}"))
    };
    assert_eq!(by_file("b_loop.lua").kind, ErrorKind::Budget);
    assert_eq!(by_file("c_syntax.lua").line, Some(2));
    assert_eq!(by_file("d_hang.lua").kind, ErrorKind::Timeout);
    assert!(by_file("e_unknown.lua").message.contains("hold_for"));
    assert_eq!(by_file("e_unknown.lua").line, Some(1));
    let names: Vec<String> = engine.rules().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["good_a", "good_z"]);
    assert_eq!(engine.evaluate(&sample(0, 2.0)).firings.len(), 2);
}

#[test]
fn hold_state_survives_export_and_import() {
    let text = "rule { name = 'held', hold = '30s', when = function(s)\n  state.seen = (state.seen or 0) + 1\n  return s.load1 > 1\nend }";
    let mut engine = Engine::load(cfg(), vec![src("held.lua", text)]).unwrap();
    for t in [0, 10, 20] {
        assert!(engine.evaluate(&sample(t, 2.0)).firings.is_empty());
    }
    let saved = serde_json::to_string(&engine.export_state()).unwrap();
    drop(engine);
    let mut engine = Engine::load(cfg(), vec![src("held.lua", text)]).unwrap();
    engine.import_state(serde_json::from_str(&saved).unwrap());
    assert_eq!(engine.rules()[0].state.status, Status::Pending);
    let eval = engine.evaluate(&sample(30, 2.0));
    assert_eq!(eval.firings.len(), 1, "{eval:#?}");
    assert_eq!(eval.firings[0].kind, FiringKind::Fire);
    assert_eq!(engine.export_state().rules["held"].user["seen"], 4);
}

#[test]
fn handlers_emit_actions_and_default_incident_names_the_culprit() {
    let text = r#"
rule {
  name = "hog", severity = "critical", summary = "{name} (pid {pid}) uses {cpu}% CPU",
  labels = { team = "ops" },
  when = function(s)
    local p = s:top(1, "cpu")[1]
    if p and p.cpu >= 90 then return true, { pid = p.pid, name = p.name, cpu = p.cpu } end
    return false
  end,
}
rule {
  name = "custom", clear_after = "1s",
  when = function(s) return s.load1 > 1, { load = s.load1 } end,
  on_fire = function(s, ctx)
    incident { title = "load " .. ctx.values.load }
    capture { duration = "5m", interval = "1s" }
    email { subject = "load on " .. s.host, body = "see hogtrap show" }
    notify { summary = "load", urgency = "critical" }
    log("fired")
  end,
  on_clear = function(s, ctx) resolve { note = "ok" } end,
}
rule {
  name = "prune_low_load", every = "1h",
  run = function(s, ctx) prune { older_than = "1d", load_below = 1.4 } end,
}
rule {
  name = "no_exec", when = function(s) return true end,
  on_fire = function(s, ctx) exec { argv = { "/bin/true" } } end,
}
"#;
    let mut engine = Engine::load(cfg(), vec![src("x.lua", text)]).unwrap();
    let e0 = engine.evaluate(&sample(0, 2.0));
    let by = |e: &Evaluation, r: &str| e.firings.iter().find(|f| f.rule == r).cloned();
    let hog = by(&e0, "hog").unwrap();
    assert_eq!(
        hog.actions,
        vec![Action::Incident {
            title: "burn (pid 20) uses 99% CPU".into(),
            severity: Severity::Critical,
            body: None
        }]
    );
    assert_eq!(hog.values["pid"], 20);
    assert_eq!(hog.labels["team"], "ops");
    let custom = by(&e0, "custom").unwrap();
    let types: Vec<&str> = custom.actions.iter().map(|a| a.type_name()).collect();
    assert_eq!(types, ["incident", "capture", "email", "notify", "log"]);
    assert_eq!(
        by(&e0, "prune_low_load").unwrap().actions[0].type_name(),
        "prune"
    );
    // exec refused by config: an error, and the default incident still opens.
    assert!(e0
        .errors
        .iter()
        .any(|e| e.rule.as_deref() == Some("no_exec") && e.message.contains("allow_exec")));
    // Scheduled: not again within the hour.
    let e1 = engine.evaluate(&sample(1, 0.0));
    assert!(by(&e1, "prune_low_load").is_none());
    assert!(by(&e1, "custom").is_none(), "clearing, not cleared yet");
    let e2 = engine.evaluate(&sample(2, 0.0));
    assert_eq!(
        by(&e2, "custom").unwrap().actions,
        vec![Action::Resolve {
            note: Some("ok".into())
        }]
    );
    let e3 = engine.evaluate(&sample(3600, 0.0));
    assert!(by(&e3, "prune_low_load").is_some());
}

#[test]
fn actions_are_refused_in_conditions() {
    let (evals, _) =
        adversary("rule { name = 'bad', when = function(s)\n  incident { title = 'x' }\nend }");
    assert_bad_failed(&evals, ErrorKind::Runtime, "only allowed in on_fire");
}

#[test]
fn view_fields_helpers_and_history() {
    let text = r#"
rule { name = "view", when = function(s)
  assert(s.cpus == 2 and s.host == "box" and s.time_ms % 1000 == 0)
  assert(s.mem.used_pct == 25, s.mem.used_pct)
  assert(s.psi.memory.some_avg10 == 12.5 and s.psi.cpu == nil)
  assert(#s.procs == 3 and s.nprocs == 3)
  local names = {}
  for _, p in ipairs(s:top(2, "mem")) do names[#names + 1] = p.name end
  assert(table.concat(names, ",") == "db,burn", table.concat(names, ","))
  assert(s:top(1, "net")[1].pid == 30)
  assert(#s:find("sshd") == 1 and #s:find("^b") == 1 and #s:find("--run") == 0)
  assert(s:find("%-%-run")[1])
  assert(s.procs[2] == s:top(1, "cpu")[1], "one table per process per sample")
  local n = 0
  for k, v in pairs(s.procs[1]) do n = n + 1 end
  assert(n >= 14, n)
  assert(s.procs[1].net_rx_bps == nil)
  assert(history.max("load1", "5m") == 3, history.max("load1", "5m"))
  assert(history.min("load1", "5m") == 1)
  assert(history.count("load1", "1500ms") == 2)
  assert(not pcall(history.max, "nope", "1m"))
  assert(not pcall(s.top, s, 1, "bogus"))
  return true
end }
"#;
    let mut engine = Engine::load(cfg(), vec![src("v.lua", text)]).unwrap();
    engine.evaluate(&sample(0, 1.0));
    engine.evaluate(&sample(1, 3.0));
    let eval = engine.evaluate(&sample(2, 2.0));
    assert!(eval.errors.is_empty(), "{:#?}", eval.errors);
}

#[test]
fn print_goes_to_the_log_not_stdout() {
    let text = "rule { name = 'p', when = function(s) print('load', s.load1) return false end }";
    let mut engine = Engine::load(cfg(), vec![src("p.lua", text)]).unwrap();
    let eval = engine.evaluate(&sample(0, 2.5));
    assert_eq!(eval.logs.len(), 1);
    assert_eq!(eval.logs[0].message, "load\t2.5");
}

#[test]
fn permissions_are_checked_like_strictmodes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let f = dir.path().join("a.lua");
    std::fs::write(&f, GOOD_A).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o664)).unwrap();
    let err = load_dir_sources(dir.path(), true).unwrap_err().to_string();
    assert!(
        err.contains("a.lua") && err.contains("writable by group or others"),
        "{err}"
    );
    let diags = check(dir.path(), &RulesConfig::default());
    assert!(
        diags
            .iter()
            .any(|d| d.file == f && d.level == DiagnosticLevel::Error),
        "{diags:?}"
    );
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(load_dir_sources(dir.path(), true).unwrap().len(), 1);
    assert!(check(dir.path(), &RulesConfig::default()).is_empty());
}

fn shipped_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules")
}

#[test]
fn shipped_rules_pass_check() {
    // A git checkout may be group-writable under some umasks; permissions are tested above.
    let cfg = RulesConfig {
        strict_permissions: false,
        ..Default::default()
    };
    let diags = check(&shipped_dir(), &cfg);
    assert!(
        diags.is_empty(),
        "{}",
        diags
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn every_shipped_rule_has_a_passing_test_file() {
    let cfg = RulesConfig {
        strict_permissions: false,
        ..Default::default()
    };
    let dir = shipped_dir();
    let mut tested = std::collections::BTreeSet::new();
    let mut tests: Vec<PathBuf> = std::fs::read_dir(dir.join("tests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    tests.sort();
    let mut failures = Vec::new();
    for t in &tests {
        match run_test_file(t, &cfg) {
            Ok(outcome) => {
                for f in &outcome.firings {
                    tested.insert(f.file.file_name().unwrap().to_string_lossy().to_string());
                }
                for f in outcome.failures {
                    failures.push(format!("{}: {f}", t.display()));
                }
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for lua in std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()) {
        if lua.extension().is_some_and(|x| x == "lua") {
            let name = lua.file_name().unwrap().to_string_lossy().to_string();
            assert!(
                tested.contains(&name),
                "{name} has no test that makes it fire"
            );
        }
    }
}

#[test]
fn test_runner_reports_mismatches() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("r.lua"), GOOD_A).unwrap();
    let t = dir.path().join("t.toml");
    std::fs::write(
        &t,
        r#"
rules = ["r.lua"]
[[samples]]
host = { load1 = 5.0 }
[[expect]]
at = "10s"
rule = "good_a"
kind = "fire"
"#,
    )
    .unwrap();
    let cfg = RulesConfig {
        strict_permissions: false,
        ..Default::default()
    };
    let out = run_test_file(&t, &cfg).unwrap();
    assert!(!out.passed());
    assert!(
        out.failures.iter().any(|f| f.contains("not produced")),
        "{:?}",
        out.failures
    );
    assert!(
        out.failures
            .iter()
            .any(|f| f.contains("unexpected Fire of good_a at 0s")),
        "{:?}",
        out.failures
    );
    std::fs::write(
        &t,
        "rules = [\"r.lua\"]\n[[samples]]\nhost = { laod1 = 5.0 }\n",
    )
    .unwrap();
    let err = run_test_file(&t, &cfg).unwrap_err().to_string();
    assert!(
        err.contains("laod1") && err.contains("unknown field"),
        "{err}"
    );
}

#[test]
fn process_views_serialize_and_copy() {
    let text = r#"rule { name = "v", when = function(s)
  local p = s:top(1, "cpu")[1]
  local c = p:copy()
  c.name = "mine"
  return true, { proc = p, copy_name = c.name, kind = type(p), text = tostring(p) }
end }"#;
    let mut engine = Engine::load(cfg(), vec![src("v.lua", text)]).unwrap();
    let eval = engine.evaluate(&sample(0, 0.0));
    assert!(eval.errors.is_empty(), "{:#?}", eval.errors);
    let v = &eval.firings[0].values;
    assert_eq!(v["proc"]["pid"], 20, "{v}");
    assert_eq!(v["proc"]["name"], "burn");
    assert_eq!(v["copy_name"], "mine");
    assert_eq!(v["kind"], "userdata");
    assert_eq!(v["text"], "process 20 (burn)");
}

#[test]
fn reload_keeps_state_and_refuses_broken_files() {
    let held = "rule { name = 'held', hold = '30s', when = function(s) return s.load1 > 1 end }";
    let mut engine =
        Engine::load_with_state(cfg(), vec![src("held.lua", held)], EngineState::default())
            .unwrap();
    engine.evaluate(&sample(0, 2.0));
    engine.evaluate(&sample(20, 2.0));
    // A broken reload keeps the running rules.
    let broken = vec![src("held.lua", held), src("oops.lua", "rule { name = ")];
    let errors = engine.reload(cfg(), broken).unwrap_err();
    assert!(
        errors[0].file.ends_with("oops.lua") && errors[0].line == Some(1),
        "{errors:?}"
    );
    // A good reload keeps the pending hold.
    engine
        .reload(cfg(), vec![src("held.lua", held), src("b.lua", GOOD_A)])
        .unwrap();
    let eval = engine.evaluate(&sample(30, 2.0));
    let fired: Vec<&str> = eval.firings.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(fired, ["held", "good_a"]);
}

#[test]
fn engine_is_send() {
    fn send<T: Send>() {}
    send::<Engine>();
}

#[test]
fn adversary_reenters_actions_through_metamethods() {
    // Building an action reads the option table; metamethods calling actions again must not
    // crash the worker (no borrow of the call context is held meanwhile).
    let text = r#"rule { name = 'bad', when = function(s) return s.load1 > 1 end,
  on_fire = function(s, ctx)
    local evil = setmetatable({}, { __index = function(t, k) incident { title = "inner" } return "x" end,
                                    __len = function() incident { title = "len" } return 2 end })
    email { subject = "s", to = evil }
    exec { argv = evil }
  end }"#;
    let (evals, _) = adversary(text);
    assert!(evals
        .iter()
        .all(|e| e.errors.iter().all(|e| e.rule.as_deref() == Some("bad"))));
}

#[test]
fn oversized_state_is_not_persisted_but_does_not_break_the_rule() {
    let text = "rule { name = 'big', when = function(s)\n  for i = 1, 20000 do state[i] = i end\n  return true\nend }";
    let mut engine = Engine::load(cfg(), vec![src("big.lua", text)]).unwrap();
    let eval = engine.evaluate(&sample(0, 0.0));
    assert!(eval.errors.is_empty(), "{:?}", eval.errors);
    assert_eq!(eval.firings.len(), 1);
    assert!(eval
        .logs
        .iter()
        .any(|l| l.message.contains("more than 10000 entries")));
}

#[test]
fn adversary_error_object_with_looping_tostring() {
    let (evals, _) = adversary(
        "rule { name = 'bad', when = function(s)\n  error(setmetatable({}, { __tostring = function() while true do end end }))\nend }",
    );
    assert!(!bad_errors(&evals).is_empty());
    assert!(evals
        .iter()
        .any(|e| e.disabled.iter().any(|d| d.rule == "bad")));
}

#[test]
fn adversary_to_be_closed_variable_loops() {
    adversary_fails("rule { name = 'bad', when = function(s)\n  local x <close> = setmetatable({}, { __close = function() while true do end end })\n  error('boom')\nend }", ErrorKind::Budget, "instruction budget exceeded");
}

#[test]
fn adversary_loops_over_rust_helpers() {
    // Each call is cheap in instructions but not in work: helpers charge the budget.
    let mut c = cfg();
    c.instruction_budget = 100_000;
    adversary_cfg_fails("rule { name = 'bad', when = function(s)\n  while true do s:top(1000, 'cpu') history.max('load1', '1h') end\nend }", c, ErrorKind::Budget, "instruction budget exceeded");
}
