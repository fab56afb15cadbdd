//! Real servers for integration tests: an SMTP server (aiosmtpd), a test CA made with
//! openssl, a private D-Bus session bus, Xvfb, Debian's notification-daemon, dbus-monitor,
//! a notification server that never answers, and a throwaway unprivileged user.
//!
//! Each server is started on a free port, display or socket, waits until it is ready, and
//! is stopped when its value is dropped (SIGTERM, then SIGKILL). A missing prerequisite is
//! a panic naming the program and the Debian package — a test failure, never a skip.
//! Network traffic goes to 127.0.0.1 only.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod fleet;
pub mod history;
pub mod recorder;

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long any server may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Debian's python, which has python3-aiosmtpd and python3-dbus (a pyenv or venv python
/// on PATH would not).
pub const PYTHON: &str = "/usr/bin/python3";
pub const NOTIFICATION_DAEMON: &str = "/usr/lib/notification-daemon/notification-daemon";

const INSTALL_HINT: &str = "run scripts/install-test-deps.sh (as root)";

/// Panics unless `program` exists: a missing prerequisite fails the test.
pub fn require_program(program: &str, debian_package: &str) -> PathBuf {
    let found = if program.contains('/') {
        Some(PathBuf::from(program)).filter(|p| p.exists())
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(program))
                .find(|p| p.exists())
        })
    };
    found.unwrap_or_else(|| {
        panic!(
            "missing test prerequisite: {program} (Debian package {debian_package}); \
             {INSTALL_HINT}"
        )
    })
}

/// Panics unless Debian's python can import `module`.
pub fn require_python_module(module: &str, debian_package: &str) {
    require_program(PYTHON, "python3");
    let ok = Command::new(PYTHON)
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "missing test prerequisite: python module {module} for {PYTHON} (Debian package \
         {debian_package}); {INSTALL_HINT}"
    );
}

/// Panics unless the test runs as root.
pub fn require_root(why: &str) {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test must run as root ({why}); run: sudo -E cargo test --test alerts_desktop"
    );
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// Path of a file shipped in tests/support/.
pub fn support_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(name)
}

/// A child process that is stopped on drop; its stderr goes to a log file that failure
/// messages quote.
pub struct Proc {
    name: String,
    child: Child,
    stderr_log: PathBuf,
    _log_dir: TempDir,
}

impl Proc {
    /// Spawns `command` with stderr logged and stdout as the caller set it.
    pub fn spawn(name: &str, command: &mut Command) -> Proc {
        let log_dir = tempfile::tempdir().expect("tempdir");
        let stderr_log = log_dir.path().join("stderr.log");
        let stderr = File::create(&stderr_log).expect("create stderr log");
        command.stdin(Stdio::null()).stderr(stderr);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        Proc {
            name: name.to_owned(),
            child,
            stderr_log,
            _log_dir: log_dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Panics (with the process's stderr) if it has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited early ({status}); its stderr:\n{}",
                self.name,
                self.stderr_text()
            );
        }
    }

    /// Takes the stdout pipe and returns its lines as they come.
    pub fn stdout_lines(&mut self) -> Receiver<String> {
        let stdout = self
            .child
            .stdout
            .take()
            .expect("stdout was set to Stdio::piped()");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(line) => {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        rx
    }

    /// Waits for a stdout line for which `accept` is true.
    pub fn wait_for_line(
        &mut self,
        lines: &Receiver<String>,
        what: &str,
        accept: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) if accept(&line) => return line,
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.assert_running();
                    if left.is_zero() {
                        panic!(
                            "{} did not print {what} within {READY_TIMEOUT:?}; stderr:\n{}",
                            self.name,
                            self.stderr_text()
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    thread::sleep(Duration::from_millis(100));
                    self.assert_running();
                    panic!(
                        "{} closed stdout before printing {what}; stderr:\n{}",
                        self.name,
                        self.stderr_text()
                    );
                }
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SAFETY: kill(2) on our own child's pid; the child is not reaped yet, so the pid
        // cannot have been reused.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Fails when two consecutive `rows` (samples with a `ts_ms`, in time order) are `limit_ms`
/// or more apart: a hole where samples were lost. `during` says what the samples lived through.
pub fn assert_no_hole(rows: &[serde_json::Value], limit_ms: i64, during: &str) {
    for w in rows.windows(2) {
        let gap = w[1]["ts_ms"].as_i64().unwrap() - w[0]["ts_ms"].as_i64().unwrap();
        assert!(
            gap < limit_ms,
            "samples {gap} ms apart {during}: a hole where samples were lost"
        );
    }
}

fn run_ok(what: &str, command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what} ({command:?}): {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---------------------------------------------------------------------------------------
// TLS

/// A throwaway CA and a server certificate for 127.0.0.1 and localhost, made with openssl.
pub struct TestCa {
    dir: TempDir,
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl TestCa {
    pub fn new() -> TestCa {
        let openssl = require_program("openssl", "openssl");
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |name: &str| dir.path().join(name);
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        run_ok(
            "openssl: make the test CA",
            Command::new(&openssl)
                .args(["req", "-x509"])
                .args(ec)
                .arg("-keyout")
                .arg(p("ca.key"))
                .arg("-out")
                .arg(p("ca.crt"))
                .args(["-days", "2", "-subj", "/CN=hogtrap test CA"])
                .args(["-addext", "basicConstraints=critical,CA:TRUE"])
                .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
        );
        run_ok(
            "openssl: make the server key and request",
            Command::new(&openssl)
                .arg("req")
                .args(ec)
                .arg("-keyout")
                .arg(p("server.key"))
                .arg("-out")
                .arg(p("server.csr"))
                .args(["-subj", "/CN=127.0.0.1"]),
        );
        std::fs::write(
            p("server.ext"),
            "basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\n\
             subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .expect("write server.ext");
        run_ok(
            "openssl: sign the server certificate",
            Command::new(&openssl)
                .args(["x509", "-req", "-in"])
                .arg(p("server.csr"))
                .arg("-CA")
                .arg(p("ca.crt"))
                .arg("-CAkey")
                .arg(p("ca.key"))
                .args(["-CAcreateserial", "-days", "2", "-out"])
                .arg(p("server.crt"))
                .arg("-extfile")
                .arg(p("server.ext")),
        );
        TestCa {
            ca_cert: p("ca.crt"),
            server_cert: p("server.crt"),
            server_key: p("server.key"),
            dir,
        }
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

// ---------------------------------------------------------------------------------------
// SMTP

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpMode {
    /// No TLS offered at all (no STARTTLS in EHLO).
    Plain,
    /// STARTTLS offered and required before MAIL.
    Starttls,
    /// TLS from the first byte.
    Implicit,
}

/// aiosmtpd on 127.0.0.1 that saves every message it receives.
pub struct SmtpServer {
    pub port: u16,
    outdir: TempDir,
    proc: Proc,
}

impl SmtpServer {
    pub fn start(mode: SmtpMode, ca: Option<&TestCa>, auth: Option<(&str, &str)>) -> SmtpServer {
        SmtpServer::start_on(free_port(), mode, ca, auth)
    }

    /// A server on a given port: e.g. one that "comes back up" where a client already
    /// failed to connect.
    pub fn start_on(
        port: u16,
        mode: SmtpMode,
        ca: Option<&TestCa>,
        auth: Option<(&str, &str)>,
    ) -> SmtpServer {
        require_python_module("aiosmtpd", "python3-aiosmtpd");
        let outdir = tempfile::tempdir().expect("tempdir");
        let mut command = Command::new(PYTHON);
        command
            .arg(support_file("smtp_server.py"))
            .arg("--port")
            .arg(port.to_string())
            .arg("--outdir")
            .arg(outdir.path())
            .stdout(Stdio::piped());
        match mode {
            SmtpMode::Plain => {
                command.args(["--tls", "none"]);
            }
            SmtpMode::Starttls | SmtpMode::Implicit => {
                let ca = ca.expect("a TLS SMTP server needs the TestCa");
                command
                    .args([
                        "--tls",
                        if mode == SmtpMode::Starttls {
                            "starttls"
                        } else {
                            "implicit"
                        },
                    ])
                    .arg("--cert")
                    .arg(&ca.server_cert)
                    .arg("--key")
                    .arg(&ca.server_key);
            }
        }
        if let Some((user, password)) = auth {
            command.args(["--user", user, "--password", password]);
        }
        let mut proc = Proc::spawn("aiosmtpd (tests/support/smtp_server.py)", &mut command);
        let lines = proc.stdout_lines();
        proc.wait_for_line(&lines, "READY", |l| l.starts_with("READY"));
        SmtpServer { port, outdir, proc }
    }

    /// The messages received so far, raw, in arrival order.
    pub fn messages(&self) -> Vec<String> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.outdir.path())
            .expect("read outdir")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| std::fs::read_to_string(p).expect("read message"))
            .collect()
    }

    /// Waits until at least `n` messages arrived; returns them all.
    pub fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<String> {
        let arrived = wait_until(timeout, || self.messages().len() >= n);
        let messages = self.messages();
        assert!(
            arrived,
            "expected {n} message(s) within {timeout:?}, got {}; server log:\n{}\n{}",
            messages.len(),
            self.commands(),
            self.proc.stderr_text()
        );
        messages
    }

    /// The MAIL, RCPT, AUTH and DATA lines the server saw, each with "tls" or "clear".
    pub fn commands(&self) -> String {
        std::fs::read_to_string(self.outdir.path().join("commands.log")).unwrap_or_default()
    }
}

/// A TCP listener on 127.0.0.1 that accepts connections and never says a word: a mail
/// server that hangs before its greeting.
pub struct SilentListener {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl SilentListener {
    pub fn start() -> SilentListener {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            while !stop_flag.load(Ordering::Relaxed) {
                if let Ok((stream, _)) = listener.accept() {
                    held.push(stream);
                }
                thread::sleep(Duration::from_millis(20));
            }
        });
        SilentListener { port, stop }
    }
}

impl Drop for SilentListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------
// D-Bus and the desktop

/// An unprivileged user the tests may run servers as. Created with useradd if missing.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

pub const TEST_USER: &str = "hogtrap-test";

impl TestUser {
    pub fn ensure() -> TestUser {
        require_root("it creates a throwaway user and starts servers as that user");
        if hogtrap::alert::desktop::lookup_user(TEST_USER).is_err() {
            let useradd = require_program("/usr/sbin/useradd", "passwd");
            run_ok(
                "useradd",
                Command::new(useradd).args([
                    "--system",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    "--user-group",
                    TEST_USER,
                ]),
            );
        }
        let user = hogtrap::alert::desktop::lookup_user(TEST_USER)
            .unwrap_or_else(|e| panic!("{TEST_USER} still missing after useradd: {e}"));
        assert_ne!(user.uid, 0, "{TEST_USER} must not be root");
        TestUser {
            name: user.name,
            uid: user.uid,
            gid: user.gid,
        }
    }

    /// Makes `command` run as this user (primary group only).
    pub fn apply(&self, command: &mut Command) {
        command
            .uid(self.uid)
            .gid(self.gid)
            .env("HOME", "/")
            .env("USER", &self.name)
            .current_dir("/");
    }

    pub fn chown(&self, path: &Path) {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    }
}

/// A private session bus (dbus-daemon) with no service activation, optionally run as a
/// [`TestUser`] on that user's `/run/user/UID/bus`.
pub struct SessionBus {
    pub address: String,
    pub socket: PathBuf,
    pub user: Option<TestUser>,
    dir: TempDir,
    /// `/run/user/UID` when this bus created it, removed on drop.
    created_runtime_dir: Option<PathBuf>,
    proc: Proc,
}

impl SessionBus {
    /// A bus owned by the test process's user, on a socket in a temp dir.
    pub fn start() -> SessionBus {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("bus");
        SessionBus::start_at(dir, socket, None, None)
    }

    /// A bus owned by `user`, on `/run/user/UID/bus` as a logged-in desktop would have it.
    pub fn start_for_user(user: &TestUser) -> SessionBus {
        let dir = tempfile::tempdir().expect("tempdir");
        user.chown(dir.path());
        let runtime_dir = PathBuf::from(format!("/run/user/{}", user.uid));
        let created = if runtime_dir.exists() {
            None
        } else {
            std::fs::create_dir_all(&runtime_dir)
                .unwrap_or_else(|e| panic!("mkdir {}: {e}", runtime_dir.display()));
            std::fs::set_permissions(&runtime_dir, std::fs::Permissions::from_mode(0o700))
                .expect("chmod runtime dir");
            user.chown(&runtime_dir);
            Some(runtime_dir.clone())
        };
        let socket = runtime_dir.join("bus");
        assert!(
            !socket.exists(),
            "{} already exists: is {} logged in? Stop that session or remove the socket",
            socket.display(),
            user.name
        );
        SessionBus::start_at(dir, socket, Some(user.clone()), created)
    }

    fn start_at(
        dir: TempDir,
        socket: PathBuf,
        user: Option<TestUser>,
        created_runtime_dir: Option<PathBuf>,
    ) -> SessionBus {
        let dbus_daemon = require_program("dbus-daemon", "dbus-daemon (dbus)");
        let config = dir.path().join("bus.conf");
        // No <servicedir>: nothing is activated behind the test's back.
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                socket.display()
            ),
        )
        .expect("write bus.conf");
        if let Some(u) = &user {
            u.chown(&config);
        }
        let mut command = Command::new(dbus_daemon);
        command
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(Stdio::piped());
        if let Some(u) = &user {
            u.apply(&mut command);
        }
        let mut proc = Proc::spawn("dbus-daemon", &mut command);
        let lines = proc.stdout_lines();
        let address = proc.wait_for_line(&lines, "its address", |l| l.starts_with("unix:"));
        SessionBus {
            address,
            socket,
            user,
            dir,
            created_runtime_dir,
            proc,
        }
    }

    /// A command that talks to this bus, as the bus's user.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command.env("DBUS_SESSION_BUS_ADDRESS", &self.address);
        if let Some(u) = &self.user {
            u.apply(&mut command);
        }
        command
    }

    pub fn name_has_owner(&self, name: &str) -> bool {
        let dbus_send = require_program("dbus-send", "dbus-bin");
        let output = self
            .command(dbus_send)
            .arg(format!("--bus={}", self.address))
            .args([
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
            ])
            .arg(format!("string:{name}"))
            .output()
            .expect("run dbus-send");
        String::from_utf8_lossy(&output.stdout).contains("boolean true")
    }

    pub fn owner_of_runtime_dir(&self) -> Option<&Path> {
        self.created_runtime_dir.as_deref()
    }
}

impl Drop for SessionBus {
    fn drop(&mut self) {
        // Stop the daemon first (Proc's drop runs after this body), then its socket dir.
        let _ = std::fs::remove_file(&self.socket);
        if let Some(dir) = &self.created_runtime_dir {
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe {
                libc::kill(self.proc.pid() as libc::pid_t, libc::SIGTERM);
            }
            thread::sleep(Duration::from_millis(100));
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A virtual X display for notification-daemon.
pub struct Xvfb {
    pub display: String,
    proc: Proc,
}

impl Xvfb {
    pub fn start(user: Option<&TestUser>) -> Xvfb {
        let xvfb = require_program("Xvfb", "xvfb");
        let mut command = Command::new(xvfb);
        // -displayfd: Xvfb picks a free display and prints its number when ready.
        command
            .args([
                "-displayfd",
                "1",
                "-nolisten",
                "tcp",
                "-screen",
                "0",
                "800x600x24",
            ])
            .stdout(Stdio::piped());
        if let Some(u) = user {
            u.apply(&mut command);
        }
        let mut proc = Proc::spawn("Xvfb", &mut command);
        let lines = proc.stdout_lines();
        let number = proc.wait_for_line(&lines, "its display number", |l| {
            l.trim().parse::<u32>().is_ok()
        });
        Xvfb {
            display: format!(":{}", number.trim()),
            proc,
        }
    }
}

/// Debian's notification-daemon on a bus, drawing on an Xvfb display.
pub struct NotificationDaemon {
    proc: Proc,
}

impl NotificationDaemon {
    pub fn start(bus: &SessionBus, xvfb: &Xvfb) -> NotificationDaemon {
        let program = require_program(NOTIFICATION_DAEMON, "notification-daemon");
        let mut command = bus.command(program);
        command
            .env("DISPLAY", &xvfb.display)
            .env("NO_AT_BRIDGE", "1")
            .stdout(Stdio::null());
        let mut proc = Proc::spawn("notification-daemon", &mut command);
        if !wait_until(READY_TIMEOUT, || {
            bus.name_has_owner("org.freedesktop.Notifications")
        }) {
            proc.assert_running();
            panic!(
                "notification-daemon did not own org.freedesktop.Notifications within \
                 {READY_TIMEOUT:?}; stderr:\n{}",
                proc.stderr_text()
            );
        }
        NotificationDaemon { proc }
    }
}

/// A notification server that owns the name and never answers.
pub struct WedgedNotifier {
    proc: Proc,
}

impl WedgedNotifier {
    pub fn start(bus: &SessionBus) -> WedgedNotifier {
        require_python_module("dbus", "python3-dbus");
        let mut command = bus.command(PYTHON);
        command
            .arg(support_file("wedged_notifier.py"))
            .arg(&bus.address)
            .stdout(Stdio::piped());
        let mut proc = Proc::spawn("wedged_notifier.py", &mut command);
        let lines = proc.stdout_lines();
        proc.wait_for_line(&lines, "READY", |l| l == "READY");
        WedgedNotifier { proc }
    }
}

/// dbus-monitor on a bus, capturing Notify calls to a file.
pub struct DbusMonitor {
    dir: TempDir,
    output: PathBuf,
    proc: Proc,
}

impl DbusMonitor {
    pub fn start(bus: &SessionBus) -> DbusMonitor {
        let program = require_program("dbus-monitor", "dbus-bin");
        let dir = tempfile::tempdir().expect("tempdir");
        let output = dir.path().join("monitor.txt");
        // Opened here, so a monitor running as another user can write it.
        let file = File::create(&output).expect("create monitor output");
        let mut command = bus.command(program);
        command
            .arg("--address")
            .arg(&bus.address)
            .arg("type='method_call',interface='org.freedesktop.Notifications',member='Notify'")
            .stdout(file);
        let mut proc = Proc::spawn("dbus-monitor", &mut command);
        // A monitor announces itself by losing its own unique name.
        if !wait_until(READY_TIMEOUT, || {
            std::fs::read_to_string(&output)
                .map(|t| t.contains("member=NameLost"))
                .unwrap_or(false)
        }) {
            proc.assert_running();
            panic!(
                "dbus-monitor did not become a monitor within {READY_TIMEOUT:?}; stderr:\n{}",
                proc.stderr_text()
            );
        }
        DbusMonitor { dir, output, proc }
    }

    pub fn text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.output) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// Waits until the captured Notify calls contain every needle; returns the capture.
    pub fn wait_for(&self, needles: &[&str], timeout: Duration) -> String {
        let found = wait_until(timeout, || {
            let text = self.text();
            needles.iter().all(|n| text.contains(n))
        });
        let text = self.text();
        assert!(
            found,
            "dbus-monitor did not see {needles:?} within {timeout:?}; it saw:\n{text}"
        );
        text
    }
}

/// The relay: the `hogtrap` binary built with this package, with its hidden subcommand.
pub fn relay() -> hogtrap::alert::Relay {
    hogtrap::alert::Relay::new(
        env!("CARGO_BIN_EXE_hogtrap"),
        [hogtrap::alert::RELAY_SUBCOMMAND],
    )
}
