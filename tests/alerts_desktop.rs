//! Desktop notifications against a real session bus (dbus-daemon) with Debian's
//! notification-daemon under Xvfb, asserted through dbus-monitor.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use hogtrap::alert::desktop::KILL_GRACE;
use hogtrap::alert::{send_desktop_with, AlertMessage, SendError};
use hogtrap::config::DesktopConfig;
use hogtrap::model::Urgency;
use support::{
    relay, DbusMonitor, NotificationDaemon, SessionBus, TestUser, WedgedNotifier, Xvfb, TEST_USER,
};

const SEEN_WAIT: Duration = Duration::from_secs(10);

fn config_for(bus: &SessionBus) -> DesktopConfig {
    DesktopConfig {
        enabled: true,
        bus_address: Some(bus.address.clone()),
        timeout: Duration::from_secs(5),
        ..DesktopConfig::default()
    }
}

fn message() -> AlertMessage {
    AlertMessage::new(
        "hogtrap: load spike on web1",
        "burner (pid 4242) at 99% CPU for 2m; see: hogtrap show 7",
    )
    .with_urgency(Urgency::Critical)
}

fn expect_desktop_error(result: Result<(), SendError>) -> SendError {
    match result {
        Err(e @ SendError::Desktop { .. }) => {
            eprintln!("error as the user sees it: {e}");
            e
        }
        other => panic!("expected a desktop error, got {other:?}"),
    }
}

#[tokio::test]
async fn summary_body_and_urgency_reach_notification_daemon() {
    let bus = SessionBus::start();
    let xvfb = Xvfb::start(None);
    let _daemon = NotificationDaemon::start(&bus, &xvfb);
    let monitor = DbusMonitor::start(&bus);

    send_desktop_with(&relay(), &config_for(&bus), &message())
        .await
        .expect("notification delivered");

    let seen = monitor.wait_for(
        &[
            "member=Notify",
            "string \"hogtrap\"",
            "string \"hogtrap: load spike on web1\"",
            "string \"burner (pid 4242) at 99% CPU for 2m; see: hogtrap show 7\"",
        ],
        SEEN_WAIT,
    );
    // urgency hint: critical is byte 2.
    assert!(seen.contains("string \"urgency\""), "{seen}");
    assert!(seen.contains("byte 2"), "{seen}");
}

#[tokio::test]
async fn markup_in_the_body_is_escaped() {
    let bus = SessionBus::start();
    let xvfb = Xvfb::start(None);
    let _daemon = NotificationDaemon::start(&bus, &xvfb);
    let monitor = DbusMonitor::start(&bus);

    let msg = AlertMessage::new("zombie", "worker <defunct> & friends");
    send_desktop_with(&relay(), &config_for(&bus), &msg)
        .await
        .expect("notification delivered");
    monitor.wait_for(
        &["string \"worker &lt;defunct&gt; &amp; friends\"", "byte 1"],
        SEEN_WAIT,
    );
}

#[tokio::test]
async fn a_notification_server_that_never_answers_times_out() {
    let bus = SessionBus::start();
    let _wedged = WedgedNotifier::start(&bus);
    let monitor = DbusMonitor::start(&bus);
    let cfg = DesktopConfig {
        timeout: Duration::from_secs(1),
        ..config_for(&bus)
    };

    let started = Instant::now();
    let error = expect_desktop_error(send_desktop_with(&relay(), &cfg, &message()).await);
    let elapsed = started.elapsed();

    assert!(
        elapsed < cfg.timeout + KILL_GRACE + Duration::from_millis(500),
        "took {elapsed:?} with timeout {:?}",
        cfg.timeout
    );
    assert!(elapsed >= cfg.timeout, "gave up early, after {elapsed:?}");
    let text = error.to_string();
    assert!(text.contains("no answer"), "{text}");
    assert!(text.contains(&bus.socket.display().to_string()), "{text}");
    assert!(error.is_retryable());
    // The call did go out; it was the server that stayed silent.
    monitor.wait_for(&["string \"hogtrap: load spike on web1\""], SEEN_WAIT);
}

#[tokio::test]
async fn no_notification_server_on_the_bus_is_a_clear_error() {
    let bus = SessionBus::start();
    let error =
        expect_desktop_error(send_desktop_with(&relay(), &config_for(&bus), &message()).await);
    let text = error.to_string();
    assert!(text.contains("no notification server"), "{text}");
    assert!(error.is_retryable(), "a desktop may come up later");
    assert!(text.contains(&bus.socket.display().to_string()), "{text}");
}

#[tokio::test]
async fn a_missing_bus_socket_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = DesktopConfig {
        bus_address: Some(format!("unix:path={}/no-bus", dir.path().display())),
        timeout: Duration::from_secs(2),
        ..DesktopConfig::default()
    };
    let started = Instant::now();
    let error = expect_desktop_error(send_desktop_with(&relay(), &cfg, &message()).await);
    assert!(started.elapsed() < cfg.timeout + KILL_GRACE);
    let text = error.to_string();
    assert!(text.contains("cannot connect to the session bus"), "{text}");
    assert!(error.is_retryable());
    assert!(text.contains("no-bus"), "{text}");
}

#[tokio::test]
async fn as_root_the_relay_reaches_a_bus_owned_by_an_unprivileged_user() {
    let user = TestUser::ensure();
    let bus = SessionBus::start_for_user(&user);
    assert_eq!(
        bus.socket,
        std::path::PathBuf::from(format!("/run/user/{}/bus", user.uid))
    );
    let xvfb = Xvfb::start(Some(&user));
    let _daemon = NotificationDaemon::start(&bus, &xvfb);
    let monitor = DbusMonitor::start(&bus); // runs as the user too

    // Root itself is turned away by that bus: the relay is what makes delivery possible.
    let direct = std::process::Command::new(support::require_program("dbus-send", "dbus-bin"))
        .arg(format!("--bus={}", bus.address))
        .args([
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.GetId",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run dbus-send as root");
    assert!(
        !direct.status.success(),
        "root could talk to the user's bus directly; this test would prove nothing"
    );

    // No bus_address: the relay must derive /run/user/UID/bus from the user.
    let cfg = DesktopConfig {
        enabled: true,
        user: Some(TEST_USER.to_owned()),
        timeout: Duration::from_secs(5),
        ..DesktopConfig::default()
    };
    send_desktop_with(&relay(), &cfg, &message())
        .await
        .expect("delivered through the relay");
    monitor.wait_for(
        &[
            "string \"hogtrap: load spike on web1\"",
            "string \"burner (pid 4242) at 99% CPU for 2m; see: hogtrap show 7\"",
        ],
        SEEN_WAIT,
    );
}
