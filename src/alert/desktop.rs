//! Desktop notifications over the D-Bus session bus, through a relay process.
//!
//! Every notification is sent by a short-lived relay process (`hogtrap __notify-relay`, a
//! hidden subcommand of the one installed binary whose whole body is [`relay_main`]) rather
//! than from inside the daemon:
//!
//! - As root, the daemon cannot talk to another user's session bus: the bus checks the
//!   peer's uid. The relay is started with that user's uid and gid (supplementary groups
//!   dropped, environment cleared) and connects to `/run/user/UID/bus`.
//! - notify-rust picks the bus from `DBUS_SESSION_BUS_ADDRESS` only; setting that variable
//!   inside a multi-threaded daemon is unsound, in a fresh child it is not.
//! - A desktop that never answers wedges only the relay, which is killed at the deadline.
//!
//! Guarantee: [`send_desktop`] returns within `timeout` plus [`KILL_GRACE`], whatever the
//! bus or the notification server does. The request goes to the relay as one JSON object
//! on stdin; the relay exits 0 when the server accepted the notification, otherwise it
//! prints one line to stderr and exits non-zero ([`RelayExit::Timeout`] for no answer,
//! [`RelayExit::Unavailable`] for no bus or no server, [`RelayExit::Failed`] otherwise).

use std::ffi::{CString, OsString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::message::AlertMessage;
use super::SendError;
use crate::config::alert::{format_duration, DesktopConfig};
use crate::format::escape_markup;
use crate::model::Urgency;

/// The hidden subcommand of `hogtrap` that runs [`relay_main`]; `main` dispatches it before
/// anything else (no argument parsing, no logging, no runtime).
pub const RELAY_SUBCOMMAND: &str = "__notify-relay";
/// How long the relay may overrun its own deadline before it is killed.
pub const KILL_GRACE: Duration = Duration::from_millis(500);
/// How a failed relay ends: its exit code tells the daemon whether another try may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RelayExit {
    /// Anything else went wrong (message on stderr).
    Failed = 1,
    /// The notification server did not answer in time.
    Timeout = 3,
    /// No bus or no notification server now; worth another try later.
    Unavailable = 4,
}

impl RelayExit {
    /// Whether a relay that exited with `code` may succeed on another try.
    fn retryable(code: Option<i32>) -> bool {
        [RelayExit::Timeout, RelayExit::Unavailable]
            .iter()
            .any(|e| code == Some(*e as i32))
    }
}

/// How to start the relay process: a program and its leading arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl Relay {
    /// The running `hogtrap` executable with its hidden relay subcommand.
    pub fn current_exe() -> std::io::Result<Relay> {
        Ok(Relay {
            program: std::env::current_exe()?,
            args: vec![RELAY_SUBCOMMAND.into()],
        })
    }

    /// Any program whose behaviour is [`relay_main`], e.g. a `hogtrap` binary at a known
    /// path: `Relay::new(path, [RELAY_SUBCOMMAND])`.
    pub fn new(
        program: impl Into<PathBuf>,
        args: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Relay {
        Relay {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }
}

/// What the daemon asks the relay to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayRequest {
    pub app_name: String,
    pub summary: String,
    /// Already escaped for the body markup subset.
    pub body: String,
    pub urgency: Urgency,
    /// Deadline for connecting and the `Notify` call.
    pub timeout_ms: u64,
    /// How long the notification stays up; `None` for the desktop's default.
    pub show_for_ms: Option<u64>,
}

/// The user whose session bus is the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesktopUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// Sends one notification through the running `hogtrap` executable as relay. (Only from
/// the `hogtrap` binary itself; other programs use [`send_desktop_with`].)
pub async fn send_desktop(cfg: &DesktopConfig, msg: &AlertMessage) -> Result<(), SendError> {
    let relay = Relay::current_exe().map_err(|e| SendError::Desktop {
        target: "session bus".to_owned(),
        problem: format!("cannot locate the running hogtrap executable for the relay: {e}"),
        retryable: false,
    })?;
    send_desktop_with(&relay, cfg, msg).await
}

/// Sends one notification through the given relay. Does not look at `enabled`.
pub async fn send_desktop_with(
    relay: &Relay,
    cfg: &DesktopConfig,
    msg: &AlertMessage,
) -> Result<(), SendError> {
    cfg.validate()?;
    let euid = current_euid();
    let user = match &cfg.user {
        Some(spec) => Some(lookup_user(spec).map_err(|problem| SendError::Desktop {
            target: format!("user {spec}"),
            problem,
            retryable: false,
        })?),
        None => None,
    };
    let switch_to = match &user {
        Some(u) if u.uid != euid => {
            if euid != 0 {
                return Err(SendError::Desktop {
                    target: format!("user {}", u.name),
                    problem: format!(
                        "reaching another user's session bus needs root (running as uid {euid}); \
                         remove [desktop] user or run the daemon as {}",
                        u.name
                    ),
                    retryable: false,
                });
            }
            Some(u)
        }
        _ => None,
    };
    let address = bus_address(cfg, user.as_ref(), euid)?;
    let target = match &user {
        Some(u) => format!(
            "{} as {} (uid {})",
            display_address(&address),
            u.name,
            u.uid
        ),
        None => display_address(&address).to_owned(),
    };
    let fail = |problem: String, retryable: bool| SendError::Desktop {
        target: target.clone(),
        problem,
        retryable,
    };

    let request = RelayRequest {
        app_name: cfg.app_name.clone(),
        summary: msg.one_line_subject(),
        body: escape_markup(&msg.text),
        urgency: msg.urgency.unwrap_or(cfg.urgency),
        timeout_ms: u64::try_from(cfg.timeout.as_millis()).unwrap_or(u64::MAX),
        show_for_ms: cfg
            .show_for
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    };
    // Serialising plain strings and numbers cannot fail.
    let request = serde_json::to_vec(&request).expect("RelayRequest serialises");

    let mut command = tokio::process::Command::new(&relay.program);
    command
        .args(&relay.args)
        .env_clear()
        .env("DBUS_SESSION_BUS_ADDRESS", &address)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(u) = switch_to {
        // std drops the supplementary groups when it switches uid as root.
        command
            .uid(u.uid)
            .gid(u.gid)
            .env("HOME", &u.home)
            .env("USER", &u.name)
            .env("XDG_RUNTIME_DIR", format!("/run/user/{}", u.uid));
    } else if let Some(runtime_dir) = std::env::var_os("XDG_RUNTIME_DIR") {
        command.env("XDG_RUNTIME_DIR", runtime_dir);
    }

    let run = async {
        let mut child = command.spawn().map_err(|e| {
            fail(
                format!("cannot start the relay {}: {e}", relay.program.display()),
                false,
            )
        })?;
        if let Some(mut stdin) = child.stdin.take() {
            // A relay that died early shows up in its exit status below.
            let _ = stdin.write_all(&request).await;
        }
        child
            .wait_with_output()
            .await
            .map_err(|e| fail(format!("waiting for the relay: {e}"), true))
    };
    let output = match tokio::time::timeout(cfg.timeout + KILL_GRACE, run).await {
        // Dropping the future dropped the child, which kill_on_drop kills.
        Err(_elapsed) => {
            return Err(fail(
                format!(
                    "no answer within timeout = {}; relay killed",
                    format_duration(cfg.timeout)
                ),
                true,
            ))
        }
        Ok(result) => result?,
    };
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let problem = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("the relay failed without a message")
        .trim()
        .to_owned();
    let retryable = RelayExit::retryable(output.status.code());
    Err(fail(problem, retryable))
}

/// The bus to use: `bus_address`, else the user's `/run/user/UID/bus`, else the daemon's
/// own session bus.
fn bus_address(
    cfg: &DesktopConfig,
    user: Option<&DesktopUser>,
    euid: u32,
) -> Result<String, SendError> {
    if let Some(address) = &cfg.bus_address {
        return Ok(address.clone());
    }
    let per_user = |uid: u32| PathBuf::from(format!("/run/user/{uid}/bus"));
    let socket = match user {
        Some(u) => per_user(u.uid),
        None => {
            if let Ok(address) = std::env::var("DBUS_SESSION_BUS_ADDRESS") {
                if !address.is_empty() {
                    return Ok(address);
                }
            }
            per_user(euid)
        }
    };
    if !bus_socket_exists(&socket) {
        let hint = match (user, euid) {
            (Some(u), _) => format!("is {} logged in to a desktop?", u.name),
            (None, 0) => {
                "the daemon runs as root: set [desktop] user to the desktop's user".to_owned()
            }
            (None, _) => "is a desktop session running for this user?".to_owned(),
        };
        return Err(SendError::Desktop {
            target: socket.display().to_string(),
            problem: format!("no session bus socket; {hint}"),
            retryable: true,
        });
    }
    Ok(format!("unix:path={}", socket.display()))
}

fn current_euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Looks a user up by name or numeric uid (through NSS, like `id`).
pub fn lookup_user(spec: &str) -> Result<DesktopUser, String> {
    let spec = spec.trim();
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = if let Ok(uid) = spec.parse::<u32>() {
        // SAFETY: all pointers are valid for the call; buf outlives the use of pwd below.
        unsafe {
            libc::getpwuid_r(
                uid,
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        }
    } else {
        let name = CString::new(spec).map_err(|_| format!("user {spec:?}: contains a NUL"))?;
        // SAFETY: as above; name is a valid C string for the call.
        unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        }
    };
    if rc != 0 {
        return Err(format!(
            "looking up user {spec:?}: {}",
            std::io::Error::from_raw_os_error(rc)
        ));
    }
    if result.is_null() {
        return Err(format!(
            "[desktop] user: no such user {spec:?} (see `getent passwd`)"
        ));
    }
    // SAFETY: getpw*_r succeeded, so pw_name and pw_dir point to C strings inside buf.
    let (name, home) = unsafe {
        (
            std::ffi::CStr::from_ptr(pwd.pw_name)
                .to_string_lossy()
                .into_owned(),
            PathBuf::from(
                std::ffi::CStr::from_ptr(pwd.pw_dir)
                    .to_string_lossy()
                    .into_owned(),
            ),
        )
    };
    Ok(DesktopUser {
        name,
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
        home,
    })
}

/// The whole relay program: reads a [`RelayRequest`] as JSON from stdin, sends it to the
/// notification server on the session bus named by `DBUS_SESSION_BUS_ADDRESS`, and exits.
/// Call it first thing in `main` (before any tokio runtime exists): it builds its own.
pub fn relay_main() -> ExitCode {
    match relay_once() {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("{message}");
            ExitCode::from(code as u8)
        }
    }
}

fn relay_once() -> Result<(), (RelayExit, String)> {
    let failed = |m: String| (RelayExit::Failed, m);
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| failed(format!("reading the request on stdin: {e}")))?;
    let request: RelayRequest =
        serde_json::from_str(&input).map_err(|e| failed(format!("bad request on stdin: {e}")))?;

    let mut notification = notify_rust::Notification::new();
    notification
        .appname(&request.app_name)
        .summary(&request.summary)
        .body(&request.body)
        .urgency(match request.urgency {
            Urgency::Low => notify_rust::Urgency::Low,
            Urgency::Normal => notify_rust::Urgency::Normal,
            Urgency::Critical => notify_rust::Urgency::Critical,
        });
    if let Some(ms) = request.show_for_ms {
        notification.timeout(notify_rust::Timeout::Milliseconds(
            u32::try_from(ms).unwrap_or(u32::MAX),
        ));
    }
    let deadline = Duration::from_millis(request.timeout_ms);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        // show_async, not show: the blocking call panics inside a tokio runtime.
        match tokio::time::timeout(deadline, notification.show_async()).await {
            Err(_elapsed) => Err((
                RelayExit::Timeout,
                format!(
                    "no answer from org.freedesktop.Notifications within timeout = {}",
                    format_duration(deadline)
                ),
            )),
            Ok(Err(e)) => Err(describe_notify_error(&e.to_string())),
            Ok(Ok(_handle)) => Ok(()),
        }
    })
}

/// One line for a failed connect or Notify call.
fn describe_notify_error(text: &str) -> (RelayExit, String) {
    if text.contains("ServiceUnknown") || text.contains("NameHasNoOwner") {
        (
            RelayExit::Unavailable,
            format!(
                "no notification server (org.freedesktop.Notifications) on the bus; \
                 is a desktop session running? ({text})"
            ),
        )
    } else if text.contains("failed to connect") || text.contains("os error") {
        (
            RelayExit::Unavailable,
            format!("cannot connect to the session bus: {text}"),
        )
    } else {
        (RelayExit::Failed, format!("the Notify call failed: {text}"))
    }
}

/// A bus address for messages: without the `,guid=...` that identifies the bus instance.
fn display_address(address: &str) -> &str {
    address.split(",guid=").next().unwrap_or(address)
}

/// Whether `path` is a socket that exists.
fn bus_socket_exists(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path)
        .map(|m| m.file_type().is_socket())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_numeric_users_are_found() {
        let root = lookup_user("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(lookup_user("0").unwrap().name, "root");
        let err = lookup_user("no-such-user-hogtrap").unwrap_err();
        assert!(err.contains("no such user"), "{err}");
    }

    #[test]
    fn explicit_bus_address_wins() {
        let cfg = DesktopConfig {
            bus_address: Some("unix:path=/tmp/x".into()),
            ..DesktopConfig::default()
        };
        assert_eq!(bus_address(&cfg, None, 0).unwrap(), "unix:path=/tmp/x");
    }

    #[test]
    fn missing_user_bus_is_a_clear_retryable_error() {
        let user = DesktopUser {
            name: "ghost".into(),
            uid: 4_000_000_000,
            gid: 4_000_000_000,
            home: "/".into(),
        };
        let err = bus_address(&DesktopConfig::default(), Some(&user), 0).unwrap_err();
        assert!(err.is_retryable());
        let text = err.to_string();
        assert!(
            text.contains("/run/user/4000000000/bus") && text.contains("ghost"),
            "{text}"
        );
    }
}
