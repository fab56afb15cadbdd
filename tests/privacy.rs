//! The record is private, through the real binary: the files hogtrap creates get
//! `[store] mode` (and `[store] group`) whatever the umask; a store more open than configured
//! gets one warning line with its fix; secrets in command lines (`mysql -p…`,
//! `Authorization: Bearer …`) never reach the store file, its WAL, an email or a report,
//! while the program and its other arguments stay readable.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::recorder::Daemon;
use support::{free_port, SmtpMode, SmtpServer};

const WAIT: Duration = Duration::from_secs(60);

/// What a process was started with, by name: the secret is the part after the marker.
const MYSQL_ARGS: [&str; 3] = ["-uroot", "-pS3cretPass", "--host=db"];
const CURL_ARGS: [&str; 3] = [
    "-H",
    "Authorization: Bearer abc.def",
    "https://api.example.org/v1",
];
const SECRETS: [&str; 2] = ["S3cretPass", "abc.def"];

fn set_umask(mask: u32) {
    // SAFETY: umask(2) cannot fail; the tests of this file run one at a time
    // (--test-threads=1), and each sets the umask it means before starting anything.
    unsafe { libc::umask(mask as libc::mode_t) };
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

fn sidecars(db: &Path) -> [PathBuf; 3] {
    let side = |s: &str| PathBuf::from(format!("{}{s}", db.display()));
    [db.to_path_buf(), side("-wal"), side("-shm")]
}

/// Adds keys to the `[store]` section the test harness wrote.
fn add_store_keys(d: &Daemon, keys: &str) {
    let text = std::fs::read_to_string(&d.config).unwrap();
    let text = text.replacen("[store]\n", &format!("[store]\n{keys}"), 1);
    std::fs::write(&d.config, text).unwrap();
}

fn wait_for_sidecars(d: &Daemon) {
    d.wait_samples(2, WAIT);
    for f in sidecars(&d.db) {
        assert!(f.exists(), "{} missing; log:\n{}", f.display(), d.log());
    }
}

#[test]
fn store_wal_shm_and_report_are_0600_under_umask_022() {
    set_umask(0o022);
    let d = Daemon::start("[sampler]\ninterval = \"1s\"\n");
    wait_for_sidecars(&d);
    for f in sidecars(&d.db) {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    let page = d.dir.path().join("report.html");
    d.ok(&[
        "report",
        "--from",
        "-10m",
        "--to",
        "now",
        "--html",
        page.to_str().unwrap(),
    ]);
    assert_eq!(mode(&page), 0o600, "the report page");
    // A page that was there, world-readable, is made private before it is written.
    std::fs::set_permissions(&page, std::fs::Permissions::from_mode(0o644)).unwrap();
    d.ok(&[
        "report",
        "--from",
        "-10m",
        "--to",
        "now",
        "--html",
        page.to_str().unwrap(),
    ]);
    assert_eq!(mode(&page), 0o600, "the rewritten report page");
    assert!(
        !d.log().contains("more open than"),
        "a fresh store is not too open:\n{}",
        d.log()
    );
}

#[test]
fn with_a_group_the_files_are_0640_and_belong_to_it() {
    set_umask(0o022);
    let adm = 4; // Debian's adm group
    assert!(
        std::fs::read_to_string("/etc/group")
            .unwrap()
            .lines()
            .any(|l| l.starts_with("adm:x:4:")),
        "this test uses the adm group (gid 4)"
    );
    let mut d = Daemon::prepare("[sampler]\ninterval = \"1s\"\n");
    add_store_keys(&d, "group = \"adm\"\n");
    d.spawn();
    wait_for_sidecars(&d);
    for f in sidecars(&d.db) {
        assert_eq!(mode(&f), 0o640, "{}", f.display());
        assert_eq!(std::fs::metadata(&f).unwrap().gid(), adm, "{}", f.display());
    }
    let page = d.dir.path().join("report.html");
    d.ok(&[
        "report",
        "--from",
        "-10m",
        "--to",
        "now",
        "--html",
        page.to_str().unwrap(),
    ]);
    assert_eq!(mode(&page), 0o640, "the report page");
    assert_eq!(std::fs::metadata(&page).unwrap().gid(), adm);
}

#[test]
fn a_store_made_0644_by_hand_gets_one_warning_line_with_the_fix() {
    set_umask(0o022);
    let mut d = Daemon::prepare("[sampler]\ninterval = \"1s\"\n");
    std::fs::write(&d.db, b"").unwrap();
    std::fs::set_permissions(&d.db, std::fs::Permissions::from_mode(0o644)).unwrap();
    d.spawn();
    wait_for_sidecars(&d);
    let log = d.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("more open than"))
        .collect();
    assert_eq!(lines.len(), 1, "one warning line:\n{log}");
    let line = lines[0];
    eprintln!("the warning as the user sees it: {line}");
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains(&format!("{} is mode 0644", d.db.display())),
        "{line}"
    );
    // The store is left as it is (the warning is the operator's cue), and the command the
    // line gives fixes it and the sidecars SQLite made alike.
    assert_eq!(mode(&d.db), 0o644);
    let fix = line.split("fix: ").nth(1).expect("the line names a fix");
    assert!(fix.starts_with("chmod 0600 "), "{line}");
    let status = Command::new("sh").args(["-c", fix]).status().unwrap();
    assert!(status.success(), "{fix}");
    for f in sidecars(&d.db) {
        assert_eq!(mode(&f), 0o600, "{} after `{fix}`", f.display());
    }
    // The warning is in the recorder's health log too.
    let stored = d.scalar(
        "SELECT count(*) FROM recorder_event WHERE kind = 'notice' AND message LIKE '%more open than%'",
    );
    assert_eq!(stored, 1);
}

/// A stand-in for a program that must not really run: a shell script named `name` that
/// waits on its stdin. Its command line is `/bin/sh DIR/name ARGS…`, its name `name`.
struct StandIn {
    child: Child,
}

impl StandIn {
    fn start(dir: &Path, name: &str, args: &[&str]) -> StandIn {
        let script = dir.join(name);
        std::fs::write(&script, "#!/bin/sh\nread line\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let child = Command::new(&script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        StandIn { child }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fires when both stand-ins run, with their command lines as the tripped values, and
/// records every process in detail for a while.
const SEEN_RULE: &str = r#"
rule {
  name = "secrets_seen",
  severity = "warning",
  summary = "saw {mysql} and {curl}",
  when = function(s)
    local m, c = s:find("mysql")[1], s:find("curl")[1]
    if m == nil or c == nil then
      return false
    end
    return true, { mysql = m.cmdline, curl = c.cmdline }
  end,
  on_fire = function(s, ctx)
    incident {}
    capture { duration = "1m", interval = "1s" }
  end,
}
"#;

fn assert_no_secret(what: &str, bytes: &[u8]) {
    for secret in SECRETS {
        let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
        assert!(!found, "{what} holds the secret {secret:?}");
    }
}

/// The mail's quoted-printable parts as text (soft line breaks joined, `=XX` decoded).
fn quoted_printable_decoded(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn secrets_in_command_lines_reach_neither_store_nor_mail_nor_page() {
    set_umask(0o022);
    let smtp = SmtpServer::start_on(free_port(), SmtpMode::Plain, None, None);
    let stand_ins = tempfile::tempdir().unwrap();
    let _mysql = StandIn::start(stand_ins.path(), "mysql", &MYSQL_ARGS);
    let _curl = StandIn::start(stand_ins.path(), "curl", &CURL_ARGS);
    let config = format!(
        "[sampler]\ninterval = \"1s\"\n\n\
         [email]\nenabled = true\nserver = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
         from = \"hogtrap <hogtrap@example.org>\"\nto = [\"ops@example.org\"]\n",
        smtp.port
    );
    let d = Daemon::start_with_rules(&config, &[("secrets.lua", SEEN_RULE)]);

    // The mail: the program names and other arguments are there, the secrets are masked.
    let mails = smtp.wait_for_messages(1, WAIT);
    assert_no_secret("the raw mail", mails[0].as_bytes());
    let mail = &quoted_printable_decoded(&mails[0]);
    for readable in [
        "mysql -uroot -p*** --host=db",
        "curl -H Authorization: Bearer *** https://api.example.org/v1",
    ] {
        assert!(
            mail.contains(readable),
            "the mail lacks {readable:?}:\n{mail}"
        );
    }
    assert_no_secret("the mail", mail.as_bytes());

    // `top` at a detail sample (the capture keeps every process) shows both, masked.
    d.wait_for("a detail sample with the stand-ins", WAIT, || {
        let n = d.scalar(
            "SELECT count(*) FROM sample s JOIN process_sample ps ON ps.sample_id = s.id \
             JOIN process p ON p.id = ps.process_id \
             WHERE s.level = 1 AND p.name IN ('mysql', 'curl')",
        );
        (n.as_i64() >= Some(2)).then_some(())
    });
    let top = d.ok(&[
        "top", "--at", "now", "--by", "mem", "-n", "100000", "--json",
    ]);
    for readable in ["-uroot -p*** --host=db", "Authorization: Bearer ***"] {
        assert!(top.contains(readable), "top lacks {readable:?}:\n{top}");
    }
    assert_no_secret("top", top.as_bytes());

    // The report page of the incident.
    let id = d.scalar("SELECT max(id) FROM incident WHERE rule = 'secrets_seen'");
    let page = d.dir.path().join("incident.html");
    d.ok(&["report", &id.to_string(), "--html", page.to_str().unwrap()]);
    let html = std::fs::read(&page).unwrap();
    let text = String::from_utf8_lossy(&html);
    assert!(
        text.contains("-uroot -p*** --host=db"),
        "the page lacks mysql"
    );
    assert!(text.contains("Bearer ***"), "the page lacks curl");
    assert_no_secret("the report page", &html);

    // The store file and its WAL, byte for byte, while the daemon runs (the WAL not yet
    // checkpointed away).
    for f in sidecars(&d.db) {
        assert_no_secret(&f.display().to_string(), &std::fs::read(&f).unwrap());
    }
    let stored = d.sql_json("SELECT cmdline FROM process WHERE name IN ('mysql', 'curl')");
    assert!(
        stored.to_string().contains("-p***"),
        "the store keeps the masked command line: {stored}"
    );
    drop(d);
}
