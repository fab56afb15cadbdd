//! Every `hogtrap …` command that the README and `docs/guide.md` show runs as written.
//!
//! The commands are read from the Markdown (fenced lines starting with `hogtrap ` or
//! `$ hogtrap `, a command continued over lines while its quotes are open, and inline code
//! spans of a command with an option), never copied here. They run in the directory of a
//! store this test records with the real daemon (the shipped rules, their tests, and a rule
//! that opens and closes an incident every few seconds so that the incident numbers the docs
//! use exist), with the daemon running and a real SMTP server for `alert test --email`.
//!
//! The store holds a month of history before today, built by code (the retention tests'
//! fixture), with the live recording on top.
//!
//! A command fails the test on a usage error, a crash, or a non-zero exit — except one
//! error: the record has nothing at an absolute moment the docs picked from their own story
//! (today's "11:04", before the daemon started), which this store cannot hold. That error
//! must be one line saying so; commands with relative times ("-2h", "10m ago", "now") and
//! incident numbers must succeed.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::recorder::{hogtrap_bin, Daemon};
use support::{free_port, history, wait_until, SmtpMode, SmtpServer};

/// One command found in a document.
#[derive(Debug)]
struct DocCommand {
    at: String,
    argv: Vec<String>,
}

/// The text before an unquoted ` #` comment.
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev.is_whitespace() => return &line[..i],
            _ => {}
        }
        prev = c;
    }
    line
}

/// `hogtrap …` words to argv (without the program), dropping a trailing `&`.
fn words(text: &str) -> Option<Vec<String>> {
    let mut w = shlex::split(strip_comment(text).trim())?;
    if w.last().map(String::as_str) == Some("&") {
        w.pop();
    }
    (w.first().map(String::as_str) == Some("hogtrap")).then(|| w.split_off(1))
}

fn extract(path: &Path) -> Vec<DocCommand> {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut fenced = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            i += 1;
            continue;
        }
        let at = format!("{name}:{}", i + 1);
        if fenced {
            let body = line.strip_prefix("$ ").unwrap_or(line);
            if body.starts_with("hogtrap ") {
                // A quote left open continues on the next lines.
                let mut joined = body.to_string();
                let mut j = i;
                while shlex::split(strip_comment(&joined)).is_none() && j + 1 < lines.len() {
                    j += 1;
                    joined.push('\n');
                    joined.push_str(lines[j]);
                }
                let argv = words(&joined).unwrap_or_else(|| panic!("{at}: cannot split {joined}"));
                out.push(DocCommand { at, argv });
                i = j + 1;
                continue;
            }
        } else {
            for span in line.split('`').skip(1).step_by(2) {
                if span.starts_with("hogtrap ") && span.contains(" -") {
                    if let Some(argv) = words(span) {
                        out.push(DocCommand {
                            at: at.clone(),
                            argv,
                        });
                    }
                }
            }
        }
        i += 1;
    }
    out
}

const FLAP: &str = r#"
rule {
  name = "flap",
  description = "opens and closes an incident every few seconds, for the docs' incident numbers",
  severity = "info",
  summary = "flap",
  when = function(s) return (s.time_ms // 3000) % 2 == 0 end,
}
"#;

/// An absolute moment of the docs' story, which a fresh record cannot hold.
fn absolute_moment(argv: &[String]) -> bool {
    argv.windows(2).any(|w| {
        ["--at", "--from", "--to"].contains(&w[0].as_str())
            && (w[1].contains(':') || w[1].starts_with("20"))
    }) || argv
        .iter()
        .any(|a| a.contains("DateAndTime='") || a.contains("DateAndTime >="))
}

#[test]
fn every_command_in_the_readme_and_the_guide_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut commands = extract(&root.join("README.md"));
    let readme = commands.len();
    commands.extend(extract(&root.join("docs/guide.md")));
    assert!(readme >= 15, "the README's tour: {commands:#?}");
    assert!(commands.len() >= readme + 15, "the guide: {commands:#?}");

    let smtp = SmtpServer::start_on(free_port(), SmtpMode::Plain, None, None);
    let config = format!(
        "[sampler]\ninterval = \"1s\"\n\n\
         [email]\nenabled = true\nserver = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
         from = \"hogtrap <hogtrap@example.org>\"\nto = [\"ops@example.org\"]\n",
        smtp.port
    );
    let mut rules: Vec<(String, String)> = std::fs::read_dir(root.join("rules"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "lua"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    rules.push(("flap.lua".into(), FLAP.into()));
    let mut d = Daemon::prepare(&config);
    let tests_dir = d.rules_dir().join("tests");
    std::fs::create_dir_all(&tests_dir).unwrap();
    for (name, text) in &rules {
        std::fs::write(d.rules_dir().join(name), text).unwrap();
    }
    for e in std::fs::read_dir(root.join("rules/tests")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, tests_dir.join(p.file_name().unwrap())).unwrap();
    }
    // A month of history before today (the retention tests' fixture, built by code), so
    // that "03:12" today and the docs' dates have samples; the live recording goes on top.
    let now = jiff::Timestamp::now().as_millisecond();
    support::history::build(&d.db, now - now.rem_euclid(history::DAY), 30);
    d.spawn();
    // Enough incidents for every number the docs use.
    let wanted = commands
        .iter()
        .filter(|c| matches!(c.argv.first().map(String::as_str), Some("show" | "report")))
        .filter_map(|c| c.argv.get(1).and_then(|a| a.parse::<i64>().ok()))
        .max()
        .unwrap_or(1);
    assert!(
        wait_until(Duration::from_secs(120), || {
            d.try_sql_json("SELECT count(*) AS n FROM incident")
                .and_then(|v| v[0]["n"].as_i64())
                .is_some_and(|n| n >= wanted)
        }),
        "fewer than {wanted} incidents: {}",
        d.log()
    );
    let copy = d.dir.path().join("prune-copy.db");
    let c = rusqlite::Connection::open(&d.db).unwrap();
    c.execute("VACUUM INTO ?1", [copy.to_str().unwrap()])
        .unwrap();

    let mut failures = Vec::new();
    let mut absent = 0;
    for cmd in &commands {
        let mut argv = cmd.argv.clone();
        // The daemon is the one this test runs, with the same config.
        if argv.first().map(String::as_str) == Some("run") {
            continue;
        }
        if !argv.iter().any(|a| a == "-c" || a == "--config") {
            argv.splice(0..0, ["-c".to_string(), "config.toml".to_string()]);
        }
        let live = argv.iter().any(|a| a == "--live");
        let mut command = Command::new(hogtrap_bin());
        command
            .args(&argv)
            .current_dir(d.dir.path())
            .stdin(Stdio::null());
        let (code, stdout, stderr) = if live {
            // Runs until stopped, like nethogs: it must draw a table and keep going.
            let mut child = command
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_secs(3));
            let still = child.try_wait().unwrap().is_none();
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            let code = if still { Some(0) } else { o.status.code() };
            (code, o.stdout, o.stderr)
        } else {
            let o = command.output().unwrap();
            (o.status.code(), o.stdout, o.stderr)
        };
        let stderr = String::from_utf8_lossy(&stderr).to_string();
        let stdout = String::from_utf8_lossy(&stdout).to_string();
        let shown = format!("{} `hogtrap {}`", cmd.at, argv.join(" "));
        match code {
            Some(0) if !stdout.trim().is_empty() || argv.contains(&"--html".to_string()) => {}
            Some(0) => failures.push(format!("{shown}: printed nothing")),
            Some(1)
                if absolute_moment(&argv)
                    && stderr.trim().lines().count() == 1
                    && (stderr.contains("no sample") || stderr.contains("nothing")) =>
            {
                absent += 1;
                eprintln!("{shown}: nothing there: {}", stderr.trim());
            }
            other => failures.push(format!("{shown}: exit {other:?}\n{stderr}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} documented commands failed:\n{}",
        failures.len(),
        commands.len(),
        failures.join("\n")
    );
    assert!(
        absent * 3 < commands.len(),
        "{absent} of {} commands found nothing",
        commands.len()
    );
    // `alert test --email` reached the real server.
    assert!(smtp
        .messages()
        .iter()
        .any(|m| m.contains("test alert from")));
}
