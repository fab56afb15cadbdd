//! Fleet servers for the export tests: Debian's Prometheus and Alertmanager on free loopback
//! ports, and a minimal HTTP/1.1 client (one request per connection) to talk to them and to
//! the daemon's `/metrics`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::{free_port, require_program, wait_until, Proc, READY_TIMEOUT};

/// One request on a fresh connection; `(status, body)`, or None if the server could not be
/// reached or answered nothing.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Some((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    http(port, "GET", path, &[], "")
}

/// Percent-encodes a query-string value.
pub fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Debian's Prometheus (package prometheus) scraping `targets` as job `hogtrap` every second.
pub struct Prometheus {
    pub port: u16,
    proc: Proc,
    _dir: TempDir,
}

impl Prometheus {
    pub fn start(metrics_port: u16) -> Prometheus {
        let bin = require_program("/usr/bin/prometheus", "prometheus");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: hogtrap\n    static_configs:\n      \
                 - targets: ['127.0.0.1:{metrics_port}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let proc = Proc::spawn(
            "prometheus",
            Command::new(bin)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdout(Stdio::null()),
        );
        let p = Prometheus {
            port,
            proc,
            _dir: dir,
        };
        assert!(
            wait_until(READY_TIMEOUT, || get(port, "/-/ready")
                .is_some_and(|(s, _)| s == 200)),
            "prometheus not ready: {}",
            p.proc.stderr_text()
        );
        p
    }

    /// The result vector of an instant query (`data.result`).
    pub fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let Some((200, body)) = get(
            self.port,
            &format!("/api/v1/query?query={}", encode(promql)),
        ) else {
            return Vec::new();
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    pub fn log(&self) -> String {
        self.proc.stderr_text()
    }
}

/// Debian's Alertmanager (package prometheus-alertmanager), clustering off.
pub struct Alertmanager {
    pub port: u16,
    proc: Option<Proc>,
    dir: TempDir,
}

impl Alertmanager {
    pub fn start() -> Alertmanager {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("alertmanager.yml"),
            "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n",
        )
        .unwrap();
        let mut am = Alertmanager {
            port: free_port(),
            proc: None,
            dir,
        };
        am.restart();
        am
    }

    /// Starts it (again) on the same port and storage.
    pub fn restart(&mut self) {
        let bin = require_program(
            "/usr/bin/prometheus-alertmanager",
            "prometheus-alertmanager",
        );
        let port = self.port;
        let proc = Proc::spawn(
            "alertmanager",
            Command::new(bin)
                .arg(format!("--config.file={}", self.config().display()))
                .arg(format!(
                    "--storage.path={}",
                    self.dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--cluster.listen-address=")
                .arg("--log.level=warn")
                .stdout(Stdio::null()),
        );
        assert!(
            wait_until(READY_TIMEOUT, || get(port, "/-/ready")
                .is_some_and(|(s, _)| s == 200)),
            "alertmanager not ready: {}",
            proc.stderr_text()
        );
        self.proc = Some(proc);
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("alertmanager.yml")
    }

    /// Stops it (the port stays reserved for [`Alertmanager::restart`] by nobody: a test
    /// restarts it soon after).
    pub fn stop(&mut self) {
        self.proc = None;
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `GET /api/v2/alerts` (active, silenced and inhibited alike; resolved ones are gone).
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        match get(self.port, "/api/v2/alerts") {
            Some((200, body)) => serde_json::from_str(&body).unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

/// A daemon in a PID namespace of its own (with its own /proc) beside `burners` CPU burners
/// named `burner_name` (they stop once `stop` exists in the returned directory) and, once
/// `go` exists there, 1,000 sleepers each under its own program name. The namespace keeps
/// whatever else runs on the machine (builds, other tests) out of the daemon's view, so the
/// burner is the top process; it ends with the daemon (which is its pid 1). The prefix
/// returned starts it again (`Daemon::spawn_with_prefix`).
pub fn isolated_daemon(
    config: &str,
    rules: &[(&str, &str)],
    burner_name: &str,
    burners: usize,
) -> (super::recorder::Daemon, TempDir, Vec<String>) {
    require_program("/usr/bin/unshare", "util-linux");
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        require_program("/usr/bin/python3", "python3"),
        dir.path().join(burner_name),
    )
    .unwrap();
    let sleep = require_program("/bin/sleep", "coreutils");
    let script = format!(
        "D={dir}\n\
         for i in $(seq {burners}); do \"$D/{burner_name}\" -c \
           'import os\nwhile not os.path.exists(\"'$D'/stop\"): pass' & done\n\
         (while [ ! -e \"$D/go\" ]; do sleep 0.2; done\n \
          for i in $(seq 1000); do ln -s {sleep} \"$D/hogtest-many-$i\"; \"$D/hogtest-many-$i\" 600 & done\n \
          wait) &\n\
         exec \"$@\"\n",
        dir = dir.path().display(),
        sleep = sleep.display()
    );
    let mut d = super::recorder::Daemon::prepare(config);
    let rules_dir = d.rules_dir();
    std::fs::create_dir_all(&rules_dir).unwrap();
    for (name, text) in rules {
        std::fs::write(rules_dir.join(name), text).unwrap();
    }
    let prefix: Vec<String> = [
        "unshare",
        "--pid",
        "--kill-child",
        "--mount-proc",
        "sh",
        "-c",
        &script,
        "sh",
    ]
    .map(String::from)
    .to_vec();
    d.spawn_with_prefix(&prefix.iter().map(String::as_str).collect::<Vec<_>>());
    (d, dir, prefix)
}

/// Stops an [`isolated_daemon`] as SIGTERM would stop a plain one (the signal goes to the
/// daemon, not to `unshare`), and waits for it.
pub fn stop_isolated(d: &mut super::recorder::Daemon) {
    let outer = d.child.as_ref().expect("running").id();
    let children =
        std::fs::read_to_string(format!("/proc/{outer}/task/{outer}/children")).unwrap_or_default();
    for pid in children
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
    {
        // SAFETY: a signal to the daemon, a child of our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    d.wait_exit(Duration::from_secs(30));
}
