//! The CPU-hog scenario end to end, with real servers: a burner child → the shipped cpu_hog
//! rule fires → an incident → one email (aiosmtpd) and one desktop notification
//! (notification-daemon, seen through dbus-monitor), both naming the burner; and
//! `rules backtest` over that window reports the incident and the alerts the daemon queued.

mod support;

use std::time::Duration;

use support::recorder::{Daemon, Workload};
use support::{free_port, DbusMonitor, NotificationDaemon, SessionBus, SmtpMode, SmtpServer, Xvfb};

#[test]
fn a_burner_makes_one_email_and_one_notification_naming_it() {
    let smtp = SmtpServer::start_on(free_port(), SmtpMode::Plain, None, None);
    let bus = SessionBus::start();
    let xvfb = Xvfb::start(None);
    let _notifier = NotificationDaemon::start(&bus, &xvfb);
    let monitor = DbusMonitor::start(&bus);
    let config = format!(
        "[sampler]\ninterval = \"1s\"\n\n\
         [email]\nenabled = true\nserver = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
         from = \"hogtrap <hogtrap@example.org>\"\nto = [\"ops@example.org\"]\n\n\
         [desktop]\nenabled = true\nbus_address = \"{}\"\n",
        smtp.port, bus.address
    );
    let d = Daemon::start_with_shipped_rules(&config, &["cpu_hog.lua"]);
    d.wait_samples(2, Duration::from_secs(30));
    let burner = Workload::cpu_burner("hogtest-hot");

    let mails = smtp.wait_for_messages(1, Duration::from_secs(60));
    let mail = &mails[0];
    assert!(
        mail.contains("hogtest-hot"),
        "the email does not name the burner:\n{mail}"
    );
    assert!(mail.contains(&burner.pid().to_string()), "{mail}");
    assert!(mail.contains("hogtrap show"), "{mail}");
    monitor.wait_for(&["hogtest-hot"], Duration::from_secs(20));
    // One of each while the incident stays open (the rate limit and the open incident keep
    // it at one).
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(smtp.messages().len(), 1, "more than one email");
    let notifies = monitor.text().matches("member=Notify").count();
    assert_eq!(notifies, 1, "{}", monitor.text());

    // The backtest over the same window (written as the README writes it, `--from -10m`)
    // says what the daemon did: one incident, and the alerts it queued for it.
    let queued = d.sql_json(
        "SELECT channel, subject FROM alert WHERE incident_id = \
         (SELECT id FROM incident WHERE rule = 'cpu_hog') ORDER BY channel",
    );
    let queued = queued.as_array().unwrap();
    assert_eq!(queued.len(), 2, "{queued:?}");
    let backtest = d.ok(&["rules", "backtest", "--from", "-10m", "--to", "now"]);
    assert!(
        backtest.contains(&format!(
            "1 incident(s) and {} alert(s) would have been made",
            queued.len()
        )),
        "{backtest}"
    );
    // The daemon's subject is the composed one: "[hogtrap] WARNING host: TITLE (incident N)".
    for row in queued {
        let (channel, subject) = (
            row["channel"].as_str().unwrap(),
            row["subject"].as_str().unwrap(),
        );
        let title = subject
            .split_once(": ")
            .and_then(|(_, t)| t.rsplit_once(" (incident"))
            .map(|(t, _)| t)
            .unwrap_or_else(|| panic!("subject {subject}"));
        let line = format!("would send ({channel} fire): {title}");
        assert!(backtest.contains(&line), "{line}: {backtest}");
    }
}
