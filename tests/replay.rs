//! `hogtrap replay` in a real terminal: tmux runs the real binary on a store the real daemon
//! recorded, keys go in with `send-keys`, the screen comes back with `capture-pane`. The
//! daemon records inside its own PID namespace (with a 300 MB memory holder that starts a few
//! seconds late and a dozen sleepers), so the process table holds exactly the test's
//! processes, whatever else the machine runs. The screens are kept in
//! `<target>/test-artifacts/replay-*.txt`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::recorder::{hogtrap_bin, Daemon};
use support::require_program;

const HOLDER: &str = "hogtest-hold";

/// Fires when the holder holds 200 MiB or more: the incident opens at the first sample
/// after the holder has touched its memory.
const HOLDER_RULE: &str = r#"
rule { name = "holder", severity = "warning", hold = "0s",
       when = function(s)
         for _, p in ipairs(s.procs) do
           if p.name == "hogtest-hold" and p.rss >= 200 * 1048576 then return true end
         end
         return false
       end }
"#;

fn artifacts_dir() -> PathBuf {
    // <target>/debug/hogtrap → <target>/test-artifacts
    let bin = hogtrap_bin();
    let target = bin
        .parent()
        .and_then(Path::parent)
        .expect("the binary sits in <target>/<profile>/");
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A detached tmux session of a given size on a private server socket, killed on drop.
struct Tmux {
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmux {
    /// Starts `sh` in an `cols`×`rows` terminal.
    fn start(cols: u16, rows: u16) -> Tmux {
        let tmux = require_program("tmux", "tmux");
        let dir = tempfile::tempdir().unwrap();
        let t = Tmux {
            socket: dir.path().join("tmux.sock"),
            _dir: dir,
        };
        let o = Command::new(tmux)
            .arg("-S")
            .arg(&t.socket)
            .args(["-f", "/dev/null", "new-session", "-d", "-s", "t"])
            .args(["-x", &cols.to_string(), "-y", &rows.to_string()])
            .args(["env", "PS1=$ ", "sh"])
            .output()
            .expect("run tmux");
        assert!(
            o.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        t
    }

    fn cmd(&self, args: &[&str]) -> String {
        let o = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux");
        assert!(
            o.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Types a line into the shell.
    fn type_line(&self, line: &str) {
        self.cmd(&["send-keys", "-t", "t", "-l", line]);
        self.cmd(&["send-keys", "-t", "t", "Enter"]);
    }

    /// Sends tmux key names (`t`, `Home`, `C-c`, `Enter`).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.cmd(&args);
    }

    fn screen(&self) -> String {
        self.cmd(&["capture-pane", "-p", "-t", "t"])
    }

    fn alternate_screen_on(&self) -> bool {
        self.cmd(&["display-message", "-p", "-t", "t", "#{alternate_on}"])
            .trim()
            == "1"
    }

    /// Waits until the screen satisfies `accept` and is fully drawn (the same a moment
    /// later), then returns it (and saves it as `replay-<name>.txt`); fails with the last
    /// screen after 15 s.
    fn wait_screen(&self, name: &str, what: &str, accept: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let ok = support::wait_until(Duration::from_secs(15), || {
            last = self.screen();
            if !accept(&last) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(150));
            let again = self.screen();
            let same = again == last;
            last = again;
            same
        });
        std::fs::write(artifacts_dir().join(format!("replay-{name}.txt")), &last).unwrap();
        assert!(ok, "{what}: not on screen; the screen:\n{last}");
        last
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

/// Whether the header's first line is at the sample at `ts_ms`, number `pos` of `total`
/// (the view runs with TZ=UTC).
fn at_sample(screen: &str, ts_ms: i64, pos: usize, total: usize) -> bool {
    let t = jiff::Timestamp::from_millisecond(ts_ms).unwrap();
    let line = first_line(screen);
    line.starts_with(&t.strftime("%Y-%m-%d %H:%M:%S  ").to_string())
        && line.contains(&format!("  #{pos}/{total}  "))
}

fn first_line(screen: &str) -> &str {
    screen.lines().next().unwrap_or("")
}

/// The process rows on the screen: lines that start with a pid.
fn process_rows(screen: &str) -> Vec<&str> {
    screen
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.chars().all(|c| c.is_ascii_digit()))
                && l.contains('%')
        })
        .collect()
}

/// Records about 14 s: the holder starts 4 s in, the incident opens when it holds its
/// memory; then the daemon is stopped, so the record is fixed.
fn record() -> Daemon {
    require_program("unshare", "util-linux");
    support::require_root("the recorder runs in its own PID namespace (unshare)");
    let mut d = Daemon::prepare("[sampler]\ninterval = \"1s\"\ntop_processes = 40\n");
    std::fs::create_dir(d.rules_dir()).unwrap();
    std::fs::write(d.rules_dir().join("holder.lua"), HOLDER_RULE).unwrap();
    let holder = d.dir.path().join(HOLDER);
    std::os::unix::fs::symlink("/usr/bin/python3", &holder).unwrap();
    // Inside the namespace: twelve sleepers, the holder 4 s late, and the recorder as pid 1.
    let script = format!(
        "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 600 & done; \
         (sleep 4; exec {} -c 'import time\nb = bytearray(b\"x\" * (300 << 20))\nwhile True: time.sleep(1)') & \
         exec \"$0\" \"$@\"",
        holder.display()
    );
    d.spawn_with_prefix(&[
        "unshare",
        "--pid",
        "--fork",
        "--mount-proc",
        "sh",
        "-c",
        &script,
    ]);
    d.wait_for("the holder incident", Duration::from_secs(40), || {
        let v = d.try_sql_json("SELECT id FROM incident WHERE rule = 'holder'")?;
        v.get(0).cloned()
    });
    let n = d.sample_count();
    d.wait_samples(n + 4, Duration::from_secs(20));
    // The recorder is unshare's child (pid 1 in the namespace): stop it cleanly; unshare
    // and the namespace's other processes end with it.
    let unshare = d.child.as_ref().unwrap().id();
    let children =
        std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children")).unwrap();
    let recorder: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    // SAFETY: a signal to a process this test started (through unshare).
    unsafe { libc::kill(recorder, libc::SIGTERM) };
    d.wait_exit(Duration::from_secs(10));
    d
}

fn sample_times(d: &Daemon) -> Vec<i64> {
    d.sql_json("SELECT ts_ms FROM sample ORDER BY ts_ms, id")
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ts_ms"].as_i64().unwrap())
        .collect()
}

fn replay_command(d: &Daemon, args: &str) -> String {
    format!(
        "echo $$ > {pid}; exec env TZ=UTC NO_COLOR=1 {bin} --db {db} replay {args}",
        pid = d.dir.path().join("replay.pid").display(),
        bin = hogtrap_bin().display(),
        db = d.db.display()
    )
}

#[test]
fn replay_steps_sorts_jumps_to_the_incident_and_restores_the_terminal() {
    let d = record();
    let times = sample_times(&d);
    let total = times.len();
    assert!(total >= 8, "{total} samples");
    let opened: i64 = d
        .scalar("SELECT opened_ms FROM incident WHERE rule = 'holder'")
        .as_i64()
        .unwrap();
    let opening = times.iter().position(|&t| t >= opened).unwrap();

    let tmux = Tmux::start(80, 24);
    // Start at the third sample, by its time (RFC 3339, UTC).
    let at = jiff::Timestamp::from_millisecond(times[2])
        .unwrap()
        .to_string();
    tmux.type_line(&format!(
        "sh -c '{}'",
        replay_command(&d, &format!("--at {at}"))
    ));
    let screen = tmux.wait_screen("80x24-start", "the third sample", |s| {
        at_sample(s, times[2], 3, total)
    });

    // 80×24: the header (host row, level, lateness, incident mark) and ≥ 10 process rows.
    for part in [
        "load ",
        "cpu usr",
        "mem ",
        "swap",
        "psi ",
        "disk read",
        "net rx",
    ] {
        assert!(
            screen.contains(part),
            "no {part:?} in the header:\n{screen}"
        );
    }
    assert!(first_line(&screen).contains("baseline") && first_line(&screen).contains("late "));
    assert!(screen.contains("PID") && screen.contains("RSS"), "{screen}");
    let rows = process_rows(&screen);
    assert!(rows.len() >= 10, "{} process rows:\n{screen}", rows.len());
    assert!(screen.lines().all(|l| l.chars().count() <= 80));

    // Stepping: forward one, back two.
    tmux.keys(&["t"]);
    tmux.wait_screen("step-forward", "the fourth sample after t", |s| {
        at_sample(s, times[3], 4, total)
    });
    tmux.keys(&["T", "T"]);
    tmux.wait_screen("step-back", "the second sample after T T", |s| {
        at_sample(s, times[1], 2, total)
    });

    // Next incident: its opening sample, marked.
    tmux.keys(&["Home", "i"]);
    let screen = tmux.wait_screen("next-incident", "the incident's opening sample", |s| {
        at_sample(s, times[opening], opening + 1, total)
    });
    assert!(
        screen.contains("!! INCIDENT") && screen.contains("holder (warning, opens here)"),
        "{screen}"
    );

    // Sort by memory: the 300 MB holder first.
    tmux.keys(&["End", "m"]);
    let screen = tmux.wait_screen("sort-mem", "RSS* as the sort column", |s| {
        s.contains("RSS*") && first_line(s).contains(&format!("#{total}/{total}"))
    });
    let first = process_rows(&screen)[0];
    assert!(first.contains(HOLDER), "first row {first:?}:\n{screen}");
    // "300.0 MiB": the holder's 300 MiB, touched.
    let cells: Vec<&str> = first.split_whitespace().collect();
    let cpu = cells.iter().position(|w| w.ends_with('%')).unwrap();
    let (rss, unit) = (cells[cpu + 1], cells[cpu + 2]);
    let mib: f64 = rss.parse().unwrap();
    assert!(
        unit == "MiB" && mib >= 290.0,
        "holder RSS {rss} {unit}: {first}"
    );

    // Help, then q: the shell's screen comes back, out of raw mode.
    tmux.keys(&["?"]);
    tmux.wait_screen("help", "the help", |s| {
        s.contains("next / previous incident")
    });
    tmux.keys(&["Escape", "q"]);
    let screen = tmux.wait_screen("after-q", "the shell after q", |s| {
        !s.contains("cpu usr") && s.contains("replay --at")
    });
    assert!(
        !tmux.alternate_screen_on(),
        "still on the alternate screen:\n{screen}"
    );
    let stty = d.dir.path().join("stty.txt");
    tmux.type_line(&format!("stty -a > {}", stty.display()));
    assert!(support::wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&stty).is_ok_and(|t| t.contains("icanon"))
    }));
    let modes = std::fs::read_to_string(&stty).unwrap();
    for mode in ["icanon", "echo", "isig"] {
        assert!(
            modes.split_whitespace().any(|w| w == mode),
            "the terminal is left with -{mode}: {modes}"
        );
    }
}

fn gone(pid: i32) -> bool {
    // A zombie is gone as far as the terminal is concerned; tmux reaps it.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

#[test]
fn ctrl_c_and_a_closed_terminal_end_the_view() {
    let d = record();
    let pid_file = d.dir.path().join("replay.pid");

    // Ctrl-C: back to the shell, off the alternate screen.
    let tmux = Tmux::start(120, 40);
    tmux.type_line(&format!("sh -c '{}'", replay_command(&d, "")));
    let screen = tmux.wait_screen("120x40", "the view", |s| s.contains("cpu usr"));
    // Wide: top's columns.
    for col in ["READ/s", "WRITE/s", "NET/s", "THR", "COMMAND"] {
        assert!(screen.contains(col), "no {col} at 120 columns:\n{screen}");
    }
    tmux.keys(&["C-c"]);
    tmux.wait_screen("after-ctrl-c", "the shell after Ctrl-C", |s| {
        !s.contains("cpu usr")
    });
    assert!(!tmux.alternate_screen_on());
    drop(tmux);

    // The terminal goes away under it: the process ends.
    std::fs::remove_file(&pid_file).unwrap();
    let tmux = Tmux::start(80, 24);
    tmux.type_line(&format!("sh -c '{}'", replay_command(&d, "")));
    tmux.wait_screen("before-hangup", "the view", |s| s.contains("cpu usr"));
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!gone(pid), "the view is not running");
    drop(tmux);
    assert!(
        support::wait_until(Duration::from_secs(10), || gone(pid)),
        "hogtrap replay (pid {pid}) still runs after its terminal closed"
    );
}
