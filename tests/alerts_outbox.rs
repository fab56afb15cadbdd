//! The durable alert outbox against real servers: aiosmtpd on 127.0.0.1 (messages counted as
//! the server received them), a real session bus with notification-daemon, a real SQLite
//! file, and the real `hogtrap` binary for restarts, `alert test` and `status`.
//!
//! Rate limits, digests, reminders and giving up are driven by code with a fake clock
//! (`Delivery::pass(now)`), since they are about minutes and hours; the sends are real.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use hogtrap::alert::compose::{new_alert, IncidentAlert};
use hogtrap::alert::outbox::{raise, Delivery, DeliveryConfig, OutboxWaker, RaiseConfig};
use hogtrap::alert::Culprit;
use hogtrap::config::{Config, Duration as ConfigDuration, EmailConfig, SmtpTls};
use hogtrap::format::ProcessLabel;
use hogtrap::model::{AlertKind, Resource, Severity};
use hogtrap::store::outbox::{Channel, Outbox};
use hogtrap::store::Store;
use support::recorder::Daemon;
use support::{free_port, SilentListener, SmtpMode, SmtpServer};

const DELIVERY_WAIT: Duration = Duration::from_secs(15);
/// A fake "now": 2025-11-24, so nothing depends on the test machine's clock.
const T0: i64 = 1_764_000_000_000;
const MIN: i64 = 60_000;

fn email_config(port: u16) -> EmailConfig {
    EmailConfig {
        enabled: true,
        server: "127.0.0.1".into(),
        port: Some(port),
        tls: SmtpTls::None,
        from: "hogtrap <hogtrap@example.org>".into(),
        to: vec!["ops@example.org".into()],
        connect_timeout: Duration::from_secs(2),
        send_timeout: Duration::from_secs(5),
        ..EmailConfig::default()
    }
}

fn burner_alert(incident_id: Option<i64>, opened_ms: i64) -> IncidentAlert {
    IncidentAlert {
        host: "web1".into(),
        incident_id,
        rule: "cpu_hog".into(),
        severity: Severity::Critical,
        title: "one process holds a CPU".into(),
        opened_ms,
        closed_ms: None,
        values: BTreeMap::from([("cpu_pct".into(), serde_json::json!(99.5))]),
        culprits: vec![Culprit {
            resource: Resource::Cpu,
            process: ProcessLabel::new(4242, "burner", Some("bob"))
                .with_cmdline(Some("python3 -c 'while True: pass'")),
            value: 99.5,
        }],
        note: None,
    }
}

/// A store, a config with email to `port`, and the delivery side on its own connection.
struct Rig {
    _dir: tempfile::TempDir,
    store: Store,
    config: Config,
    delivery: Delivery,
    waker: OutboxWaker,
}

impl Rig {
    fn new(port: u16, alerts: impl FnOnce(&mut Config)) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("hogtrap.db");
        let store = Store::open(&db, Duration::from_secs(2)).unwrap();
        let mut config = Config {
            email: email_config(port),
            ..Config::default()
        };
        alerts(&mut config);
        let outbox = Outbox::open(&db, Duration::from_secs(2)).unwrap();
        let delivery = Delivery::new(
            outbox,
            DeliveryConfig::from_config(&config, "web1"),
            support::relay(),
        );
        Rig {
            _dir: dir,
            store,
            config,
            delivery,
            waker: OutboxWaker::new(),
        }
    }

    fn fire(&mut self, kind: AlertKind, incident: Option<i64>, now: i64) {
        let alert = burner_alert(incident, T0).new_alert(kind, now);
        raise(
            &mut self.store,
            &RaiseConfig::from_config(&self.config),
            &self.waker,
            &alert,
            None,
        )
        .unwrap();
    }

    fn rows(&self, sql: &str) -> Vec<(i64, String, String)> {
        let conn = self.store.connection();
        let mut st = conn.prepare(sql).unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }
}

fn subject(raw: &str) -> String {
    raw.lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn a_rule_firing_every_sample_sends_one_mail_per_window_and_a_digest() {
    let server = SmtpServer::start(SmtpMode::Plain, None, None);
    let mut rig = Rig::new(server.port, |c| {
        c.alerts.rate_limit = ConfigDuration::from_secs(600)
    });
    // A sample every 10 s for 25 minutes, the rule firing on every one; the delivery task
    // runs after each (as it would, woken by the sampler).
    let samples = 150;
    for k in 0..samples {
        let now = T0 + k * 10_000;
        rig.fire(AlertKind::Fire, Some(7), now);
        rig.delivery.pass(now).await.unwrap();
    }
    // The rule went quiet; the last window ends.
    let report = rig.delivery.pass(T0 + 30 * MIN).await.unwrap();
    assert_eq!(report.digests, 1, "{report:?}");

    // One real message per 10-minute window: the first alert, then a digest at the end of
    // each window that held something back.
    let messages = server.wait_for_messages(4, DELIVERY_WAIT);
    assert_eq!(
        messages.len(),
        4,
        "subjects: {:?}",
        messages.iter().map(|m| subject(m)).collect::<Vec<_>>()
    );
    assert!(subject(&messages[0]).contains("CRITICAL web1: one process holds a CPU"));
    let held_per_digest: Vec<&str> =
        ["60 more alerts", "60 more alerts", "29 more alerts"].to_vec();
    for (raw, count) in messages[1..].iter().zip(held_per_digest) {
        assert!(subject(raw).contains(count), "{}", subject(raw));
        assert!(
            raw.contains("burner (pid 4242, bob)"),
            "the digest repeats the newest alert:\n{raw}"
        );
    }
    let sent = rig.rows(
        "SELECT created_ms, kind, status FROM alert WHERE status = 'sent' ORDER BY created_ms",
    );
    let times: Vec<i64> = sent.iter().map(|r| r.0 - T0).collect();
    assert_eq!(times, [0, 10 * MIN, 20 * MIN, 30 * MIN], "{sent:?}");
    let digested = rig.rows("SELECT count(*), 'x', 'y' FROM alert WHERE status = 'digested'");
    assert_eq!(digested[0].0, samples - 1);
    // Every delivery was recorded as an attempt.
    let attempts = rig.rows("SELECT count(*), result, channel FROM alert_attempt GROUP BY result");
    assert_eq!(attempts, [(4, "sent".to_owned(), "email".to_owned())]);
}

#[tokio::test]
async fn reminders_while_open_and_a_recovery_message_on_clear() {
    let server = SmtpServer::start(SmtpMode::Plain, None, None);
    let mut rig = Rig::new(server.port, |c| {
        c.alerts.rate_limit = ConfigDuration::from_secs(600);
        c.alerts.reminder_every = ConfigDuration::from_secs(1800);
    });
    // The incident as the rule engine records it.
    rig.store
        .connection()
        .execute(
            "INSERT INTO incident (id, rule, severity, title, opened_ms, updated_ms)
             VALUES (7, 'cpu_hog', 'critical', 'one process holds a CPU', ?1, ?1)",
            [T0],
        )
        .unwrap();
    rig.fire(AlertKind::Fire, Some(7), T0);
    assert_eq!(rig.delivery.pass(T0).await.unwrap().sent, 1);
    let r = rig.delivery.pass(T0 + 29 * MIN).await.unwrap();
    assert_eq!((r.reminders, r.next_wake_ms), (0, Some(T0 + 30 * MIN)));
    let r = rig.delivery.pass(T0 + 30 * MIN).await.unwrap();
    assert_eq!((r.reminders, r.sent), (1, 1), "{r:?}");
    // It clears at 40 min.
    rig.store
        .connection()
        .execute(
            "UPDATE incident SET closed_ms = ?1 WHERE id = 7",
            [T0 + 40 * MIN],
        )
        .unwrap();
    let mut clear = burner_alert(Some(7), T0);
    clear.closed_ms = Some(T0 + 40 * MIN);
    let clear = clear.new_alert(AlertKind::Clear, T0 + 40 * MIN);
    raise(
        &mut rig.store,
        &RaiseConfig::from_config(&rig.config),
        &rig.waker,
        &clear,
        None,
    )
    .unwrap();
    assert_eq!(rig.delivery.pass(T0 + 40 * MIN).await.unwrap().sent, 1);
    // No more reminders once it is closed.
    let r = rig.delivery.pass(T0 + 120 * MIN).await.unwrap();
    assert_eq!((r.reminders, r.sent), (0, 0));

    let messages = server.wait_for_messages(3, DELIVERY_WAIT);
    let subjects: Vec<String> = messages.iter().map(|m| subject(m)).collect();
    assert_eq!(messages.len(), 3, "{subjects:?}");
    assert!(
        subjects[0].starts_with("[hogtrap] CRITICAL web1"),
        "{subjects:?}"
    );
    assert!(
        subjects[1].starts_with("[reminder] [hogtrap] CRITICAL web1"),
        "{subjects:?}"
    );
    assert!(
        messages[1].contains("Still open after 30m"),
        "{}",
        messages[1]
    );
    assert!(
        subjects[2].starts_with("[hogtrap] RESOLVED web1"),
        "{subjects:?}"
    );
    assert!(messages[2].contains("lasted 40m"), "{}", messages[2]);
    assert!(
        messages[2].contains("See more: hogtrap show 7"),
        "{}",
        messages[2]
    );
}

#[tokio::test]
async fn retries_back_off_and_give_up_after_the_max_age() {
    // Nothing listens on this port: every attempt is refused.
    let port = free_port();
    let mut rig = Rig::new(port, |c| {
        c.alerts.retry_initial = ConfigDuration::from_secs(30);
        c.alerts.retry_max = ConfigDuration::from_secs(120);
        c.alerts.give_up_after = ConfigDuration::from_secs(3600);
    });
    rig.fire(AlertKind::Fire, None, T0);
    let mut waits = Vec::new();
    let mut now = T0;
    loop {
        let r = rig.delivery.pass(now).await.unwrap();
        if r.failed == 1 {
            break;
        }
        assert_eq!(r.retrying, 1, "{r:?}");
        let next = r.next_wake_ms.expect("a retry is scheduled");
        waits.push((next - now) / 1000);
        now = next;
        assert!(now < T0 + 2 * 3_600_000, "never gave up");
    }
    // 30 s, doubled, capped at 2 min; given up at the first attempt past 1 h.
    assert_eq!(&waits[..4], [30, 60, 120, 120]);
    assert!(now >= T0 + 3_600_000);
    let row = rig.rows("SELECT attempts, status, last_error FROM alert");
    let (attempts, status, error) = &row[0];
    assert_eq!(status, "failed");
    assert_eq!(*attempts as usize, waits.len() + 1);
    assert!(
        error.contains("connection refused") && error.contains("gave up"),
        "{error}"
    );
    let results = rig.rows(
        "SELECT count(*), result, coalesce(error, '') FROM alert_attempt GROUP BY result ORDER BY result",
    );
    assert_eq!(results.len(), 2, "{results:?}");
    assert_eq!(
        (results[0].0, results[0].1.as_str()),
        (waits.len() as i64, "error")
    );
    assert_eq!((results[1].0, results[1].1.as_str()), (1, "failed"));
    assert_eq!(
        rig.delivery.pass(now + 3_600_000).await.unwrap(),
        Default::default()
    );
}

#[tokio::test]
async fn a_dead_server_costs_one_attempt_per_retry_not_one_per_alert() {
    let port = free_port();
    let mut rig = Rig::new(port, |c| {
        c.alerts.rate_limit = ConfigDuration::from_secs(0);
        c.alerts.retry_initial = ConfigDuration::from_secs(30);
    });
    for k in 0..3 {
        rig.fire(AlertKind::Fire, None, T0 + k);
    }
    let r = rig.delivery.pass(T0 + 10).await.unwrap();
    assert_eq!((r.retrying, r.postponed, r.sent), (1, 2, 0), "{r:?}");
    let next = r.next_wake_ms.unwrap();
    assert!((T0 + 30_000..T0 + 31_000).contains(&next), "{}", next - T0);
    let attempts = rig.rows("SELECT count(*), 'x', 'y' FROM alert_attempt");
    assert_eq!(attempts[0].0, 1, "one attempt, not three");
    // Nothing is due before the retry.
    assert_eq!(rig.delivery.pass(next - 1).await.unwrap().sent, 0);
    // The server comes up: all three go in the retry's pass.
    let server = SmtpServer::start_on(port, SmtpMode::Plain, None, None);
    let r = rig.delivery.pass(next).await.unwrap();
    assert_eq!(r.sent, 3, "{r:?}");
    assert_eq!(server.wait_for_messages(3, DELIVERY_WAIT).len(), 3);
}

/// The whole story through the real binary: the mail server is down when the alert is
/// raised; the daemon retries, is restarted, and delivers once the server is up; another
/// restart sends nothing twice. `hogtrap status` shows the undelivered alert and its error.
#[test]
fn server_down_then_up_across_restarts_delivers_exactly_once() {
    let port = free_port();
    let mut daemon = Daemon::prepare(&format!(
        "[sampler]\ninterval = \"1s\"\n\n\
         [alerts]\nretry_initial = \"500ms\"\nretry_max = \"1s\"\n\n\
         [email]\nenabled = true\nserver = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
         from = \"hogtrap <hogtrap@example.org>\"\nto = [\"ops@example.org\"]\n\
         connect_timeout = \"2s\"\nsend_timeout = \"5s\"\n"
    ));
    // The alert, raised (by code standing in for the rule engine) before the daemon runs.
    {
        let mut store = Store::open(&daemon.db, Duration::from_secs(2)).unwrap();
        let mut config = Config::load(&daemon.config).unwrap();
        config.store.path = daemon.db.clone();
        let now = jiff::Timestamp::now().as_millisecond();
        let alert = burner_alert(Some(7), now).new_alert(AlertKind::Fire, now);
        let rows = raise(
            &mut store,
            &RaiseConfig::from_config(&config),
            &OutboxWaker::new(),
            &alert,
            None,
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].channel, Channel::Email);
    }
    let attempts = |d: &Daemon| {
        d.scalar("SELECT count(*) FROM alert_attempt")
            .as_i64()
            .unwrap()
    };

    daemon.spawn();
    assert!(
        support::wait_until(DELIVERY_WAIT, || attempts(&daemon) >= 2),
        "no failed attempts recorded; log:\n{}",
        daemon.log()
    );
    let status = daemon.ok(&["status"]);
    eprintln!("{status}");
    assert!(status.contains("alerts     1 undelivered"), "{status}");
    assert!(status.contains("one process holds a CPU"), "{status}");
    assert!(
        status.contains("  last error ") && status.contains("connection refused"),
        "{status}"
    );
    let json: serde_json::Value = serde_json::from_str(&daemon.ok(&["status", "--json"])).unwrap();
    assert_eq!(json["alerts"]["undelivered"], 1, "{json}");

    // Restart while the server is still down: the new daemon keeps trying.
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(15)).success());
    let before = attempts(&daemon);
    daemon.spawn();
    assert!(
        support::wait_until(DELIVERY_WAIT, || attempts(&daemon) > before),
        "the restarted daemon did not retry; log:\n{}",
        daemon.log()
    );

    // The server comes up: the alert arrives, once.
    let server = SmtpServer::start_on(port, SmtpMode::Plain, None, None);
    let messages = server.wait_for_messages(1, DELIVERY_WAIT);
    assert!(subject(&messages[0]).contains("CRITICAL web1: one process holds a CPU"));
    assert!(messages[0].contains("hogtrap show 7"));
    // The Message-ID is the alert's own: a resend after a crash would carry the same one.
    assert!(
        messages[0].contains("Message-ID: <hogtrap.alert.1."),
        "{}",
        messages[0]
    );
    assert!(support::wait_until(DELIVERY_WAIT, || {
        daemon.scalar("SELECT status FROM alert") == "sent"
    }));

    // Another restart: nothing is sent twice.
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(15)).success());
    daemon.spawn();
    daemon.wait_samples(daemon.sample_count() + 3, Duration::from_secs(20));
    assert_eq!(server.messages().len(), 1, "delivered more than once");
    let results = daemon.sql_json(
        "SELECT result, count(*) AS n FROM alert_attempt GROUP BY result ORDER BY result",
    );
    assert_eq!(results[1]["result"], "sent", "{results}");
    assert_eq!(results[1]["n"], 1, "{results}");
    let status = daemon.ok(&["status"]);
    assert!(status.contains("alerts     0 undelivered"), "{status}");
    assert!(status.contains("  last sent "), "{status}");
}

/// A mail server that accepts the connection and never answers: every attempt hangs until
/// send_timeout, and the sampler, one thread away, does not notice.
#[test]
fn a_hanging_mail_server_delays_no_sample() {
    let silent = SilentListener::start();
    let mut daemon = Daemon::prepare(&format!(
        "[sampler]\ninterval = \"1s\"\n\n\
         [alerts]\nretry_initial = \"500ms\"\nretry_max = \"500ms\"\n\n\
         [email]\nenabled = true\nserver = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
         from = \"hogtrap <hogtrap@example.org>\"\nto = [\"ops@example.org\"]\n\
         connect_timeout = \"1s\"\nsend_timeout = \"3s\"\n",
        silent.port
    ));
    {
        let mut store = Store::open(&daemon.db, Duration::from_secs(2)).unwrap();
        let config = Config::load(&daemon.config).unwrap();
        let now = jiff::Timestamp::now().as_millisecond();
        let alert = burner_alert(None, now).new_alert(AlertKind::Fire, now);
        raise(
            &mut store,
            &RaiseConfig::from_config(&config),
            &OutboxWaker::new(),
            &alert,
            None,
        )
        .unwrap();
    }
    daemon.spawn();
    let timed_out = |d: &Daemon| {
        d.scalar("SELECT count(*) FROM alert_attempt WHERE error LIKE '%send_timeout%'")
            .as_i64()
            .unwrap()
    };
    assert!(
        support::wait_until(Duration::from_secs(30), || timed_out(&daemon) >= 2),
        "no timed-out attempts; log:\n{}",
        daemon.log()
    );
    // Two hung attempts (6 s and more) later, the samples came every second.
    let widest = daemon
        .scalar(
            "SELECT max(d) FROM (SELECT ts_ms - lag(ts_ms) OVER (ORDER BY ts_ms) AS d \
             FROM sample)",
        )
        .as_i64()
        .unwrap();
    assert!(widest < 2_000, "a {widest} ms gap between samples");
    assert!(daemon.sample_count() >= 6);
    // SIGTERM during a hung attempt: out within the delivery grace, cleanly.
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(10)).success());
    assert_eq!(daemon.scalar("SELECT status FROM alert"), "pending");
}

#[test]
fn alert_test_says_what_happened_on_each_channel() {
    let server = SmtpServer::start(SmtpMode::Plain, None, None);
    let email = |port: u16| {
        format!(
            "[email]\nenabled = true\nserver = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
             from = \"hogtrap <hogtrap@example.org>\"\nto = [\"ops@example.org\"]\n\
             connect_timeout = \"2s\"\nsend_timeout = \"5s\"\n"
        )
    };
    let ok = Daemon::prepare(&email(server.port));
    let out = ok.cli(&["alert", "test"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "email    delivered to ops@example.org via 127.0.0.1:{} (tls = none)",
            server.port
        )),
        "{stdout}"
    );
    let messages = server.wait_for_messages(1, DELIVERY_WAIT);
    assert!(subject(&messages[0]).starts_with("[hogtrap] test alert from "));

    // The server is down: a clear error line, a failing exit code.
    let down = Daemon::prepare(&email(free_port()));
    let out = down.cli(&["alert", "test", "--email"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stdout.contains("email    FAILED: email via 127.0.0.1:")
            && stdout.contains("connection refused"),
        "{stdout}"
    );
    assert!(stderr.contains("failed on 1 of 1 channel"), "{stderr}");

    // Nothing enabled and nothing named: say how to fix it.
    let none = Daemon::prepare("");
    let out = none.cli(&["alert", "test"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("no alert channel is enabled"), "{stderr}");
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn desktop_alerts_go_through_the_outbox_to_notification_daemon() {
    let bus = support::SessionBus::start();
    let xvfb = support::Xvfb::start(None);
    let _notifier = support::NotificationDaemon::start(&bus, &xvfb);
    let monitor = support::DbusMonitor::start(&bus);
    // Email points nowhere and is off; only the desktop channel is on.
    let mut rig = Rig::new(free_port(), |c| {
        c.email.enabled = false;
        c.desktop.enabled = true;
        c.desktop.bus_address = Some(bus.address.clone());
    });
    let now = jiff::Timestamp::now().as_millisecond();
    let message = burner_alert(Some(7), now).message(AlertKind::Fire, now);
    let alert = new_alert("cpu_hog", Some(7), AlertKind::Fire, &message, now);
    let rows = raise(
        &mut rig.store,
        &RaiseConfig::from_config(&rig.config),
        &rig.waker,
        &alert,
        None,
    )
    .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].channel, Channel::Desktop);
    let r = rig.delivery.pass(now).await.unwrap();
    assert_eq!(r.sent, 1, "{r:?}");
    monitor.wait_for(
        &[
            "CRITICAL web1: one process holds a CPU",
            "burner (pid 4242, bob)",
        ],
        DELIVERY_WAIT,
    );
    // `hogtrap alert test --desktop` through the real binary, whose relay is itself
    // (`hogtrap __notify-relay`), as the daemon's is.
    let cli = Daemon::prepare(&format!(
        "[sampler]\nhost_name = \"web9\"\n\n[desktop]\nbus_address = \"{}\"\n",
        bus.address
    ));
    let out = cli.cli(&["alert", "test", "--desktop"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("desktop  note: [desktop] enabled = false"),
        "{stdout}"
    );
    assert!(
        stdout.contains("desktop  delivered: the notification server accepted it"),
        "{stdout}"
    );
    monitor.wait_for(&["[hogtrap] test alert from web9"], DELIVERY_WAIT);
}
