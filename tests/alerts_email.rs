//! Email delivery against a real SMTP server (aiosmtpd) on 127.0.0.1, with a test CA made
//! by openssl for STARTTLS and implicit TLS.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hogtrap::alert::{send_email, AlertMessage, SendError};
use hogtrap::config::{EmailConfig, SmtpTls};
use support::{SilentListener, SmtpMode, SmtpServer, TestCa};

const DELIVERY_WAIT: Duration = Duration::from_secs(10);

fn config(port: u16, tls: SmtpTls) -> EmailConfig {
    EmailConfig {
        enabled: true,
        server: "127.0.0.1".into(),
        port: Some(port),
        tls,
        from: "hogtrap <hogtrap@example.org>".into(),
        to: vec!["ops@example.org".into(), "oncall@example.org".into()],
        connect_timeout: Duration::from_secs(5),
        send_timeout: Duration::from_secs(10),
        ..EmailConfig::default()
    }
}

fn message() -> AlertMessage {
    AlertMessage::new(
        "hogtrap: load spike on web1",
        "Load per CPU 3.2 for 2m.\nTop CPU: burner (pid 4242) 99%\nSee: hogtrap show 7\n",
    )
    .with_html("<html><body><p>Load per CPU <b>3.2</b> for 2m.</p></body></html>")
}

/// A password file with mode 0600 in its own temp dir.
fn password_file(password: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("smtp-password");
    std::fs::write(&path, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    (dir, path)
}

fn header_present(raw: &str, name: &str) -> bool {
    raw.lines().take_while(|l| !l.is_empty()).any(|l| {
        l.to_ascii_lowercase()
            .starts_with(&format!("{}:", name.to_ascii_lowercase()))
    })
}

fn expect_email_error(result: Result<(), SendError>) -> (String, bool) {
    match result {
        Err(e @ SendError::Email { .. }) => {
            eprintln!("error as the user sees it: {e}");
            (e.to_string(), e.is_retryable())
        }
        other => panic!("expected an email error, got {other:?}"),
    }
}

#[tokio::test]
async fn plain_smtp_delivers_text_and_html_with_date_and_message_id() {
    let server = SmtpServer::start(SmtpMode::Plain, None, None);
    send_email(&config(server.port, SmtpTls::None), &message())
        .await
        .expect("delivered");
    let messages = server.wait_for_messages(1, DELIVERY_WAIT);
    assert_eq!(messages.len(), 1, "one message for two recipients");
    let raw = &messages[0];
    assert!(header_present(raw, "Date"), "no Date header:\n{raw}");
    assert!(
        header_present(raw, "Message-ID"),
        "no Message-ID header:\n{raw}"
    );
    assert!(
        raw.contains("Subject: hogtrap: load spike on web1"),
        "{raw}"
    );
    assert!(raw.contains("multipart/alternative"), "{raw}");
    assert!(raw.contains("text/plain"), "{raw}");
    assert!(raw.contains("text/html"), "{raw}");
    assert!(raw.contains("Top CPU: burner (pid 4242) 99%"), "{raw}");
    assert!(raw.contains("<b>3.2</b>"), "{raw}");
    let commands = server.commands();
    assert!(commands.contains("RCPT ops@example.org"), "{commands}");
    assert!(commands.contains("RCPT oncall@example.org"), "{commands}");
}

#[tokio::test]
async fn starttls_with_the_test_ca_delivers_and_nothing_goes_in_clear() {
    let ca = TestCa::new();
    let server = SmtpServer::start(SmtpMode::Starttls, Some(&ca), None);
    let cfg = EmailConfig {
        ca_file: Some(ca.ca_cert.clone()),
        ..config(server.port, SmtpTls::Starttls)
    };
    send_email(&cfg, &message()).await.expect("delivered");
    let messages = server.wait_for_messages(1, DELIVERY_WAIT);
    assert!(header_present(&messages[0], "Message-ID"));
    let commands = server.commands();
    assert!(
        commands.contains("MAIL hogtrap@example.org tls"),
        "{commands}"
    );
    assert!(
        !commands.contains("clear"),
        "something went in clear:\n{commands}"
    );
}

#[tokio::test]
async fn implicit_tls_with_the_test_ca_delivers() {
    let ca = TestCa::new();
    let server = SmtpServer::start(SmtpMode::Implicit, Some(&ca), None);
    let cfg = EmailConfig {
        ca_file: Some(ca.ca_cert.clone()),
        ..config(server.port, SmtpTls::Implicit)
    };
    send_email(&cfg, &message()).await.expect("delivered");
    server.wait_for_messages(1, DELIVERY_WAIT);
    let commands = server.commands();
    assert!(commands.contains("DATA 0001 tls"), "{commands}");
}

#[tokio::test]
async fn starttls_with_an_unknown_ca_fails_on_the_certificate_and_sends_nothing() {
    let ca = TestCa::new();
    let server = SmtpServer::start(SmtpMode::Starttls, Some(&ca), None);
    // No ca_file: the test CA is not among the trusted roots.
    let cfg = config(server.port, SmtpTls::Starttls);
    let (error, retryable) = expect_email_error(send_email(&cfg, &message()).await);
    assert!(error.contains("127.0.0.1:"), "{error}");
    assert!(error.contains("TLS handshake failed"), "{error}");
    assert!(
        error.contains("ca_file"),
        "the error should hint at ca_file: {error}"
    );
    assert!(!retryable, "a trust problem does not heal by retrying");
    assert_eq!(server.commands(), "", "nothing may reach the server");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn auth_with_the_right_password_delivers() {
    let ca = TestCa::new();
    let server = SmtpServer::start(SmtpMode::Starttls, Some(&ca), Some(("alerts", "s3cret")));
    let (_dir, password_file) = password_file("s3cret");
    let cfg = EmailConfig {
        ca_file: Some(ca.ca_cert.clone()),
        username: Some("alerts".into()),
        password_file: Some(password_file),
        ..config(server.port, SmtpTls::Starttls)
    };
    send_email(&cfg, &message()).await.expect("delivered");
    server.wait_for_messages(1, DELIVERY_WAIT);
    let commands = server.commands();
    assert!(
        commands.contains(" ok tls"),
        "AUTH should succeed over TLS:\n{commands}"
    );
}

#[tokio::test]
async fn auth_with_the_password_from_an_environment_variable_delivers() {
    // cargo sets CARGO_PKG_NAME in the environment of every test process; reading it
    // avoids set_var, which races with the other tests' threads.
    let password = std::env::var("CARGO_PKG_NAME").expect("cargo sets CARGO_PKG_NAME");
    let ca = TestCa::new();
    let server = SmtpServer::start(SmtpMode::Starttls, Some(&ca), Some(("alerts", &password)));
    let cfg = EmailConfig {
        ca_file: Some(ca.ca_cert.clone()),
        username: Some("alerts".into()),
        password_env: Some("CARGO_PKG_NAME".into()),
        ..config(server.port, SmtpTls::Starttls)
    };
    send_email(&cfg, &message()).await.expect("delivered");
    server.wait_for_messages(1, DELIVERY_WAIT);
    assert!(
        server.commands().contains(" ok tls"),
        "{}",
        server.commands()
    );
}

#[tokio::test]
async fn auth_with_a_wrong_password_is_refused_and_nothing_is_delivered() {
    let ca = TestCa::new();
    let server = SmtpServer::start(SmtpMode::Starttls, Some(&ca), Some(("alerts", "s3cret")));
    let (_dir, password_file) = password_file("wrong");
    let cfg = EmailConfig {
        ca_file: Some(ca.ca_cert.clone()),
        username: Some("alerts".into()),
        password_file: Some(password_file),
        ..config(server.port, SmtpTls::Starttls)
    };
    let (error, retryable) = expect_email_error(send_email(&cfg, &message()).await);
    assert!(error.contains("login as \"alerts\" refused"), "{error}");
    assert!(error.contains("535"), "{error}");
    assert!(!retryable);
    let commands = server.commands();
    assert!(commands.contains("refused tls"), "{commands}");
    assert!(!commands.contains("MAIL"), "{commands}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn required_starttls_against_a_server_without_it_fails_and_sends_nothing_in_clear() {
    let server = SmtpServer::start(SmtpMode::Plain, None, Some(("alerts", "s3cret")));
    let (_dir, password_file) = password_file("s3cret");
    let cfg = EmailConfig {
        username: Some("alerts".into()),
        password_file: Some(password_file),
        ..config(server.port, SmtpTls::Starttls)
    };
    let (error, retryable) = expect_email_error(send_email(&cfg, &message()).await);
    assert!(
        error.contains("does not offer STARTTLS") && error.contains("nothing was sent"),
        "{error}"
    );
    assert!(
        error.contains(&format!("127.0.0.1:{}", server.port)),
        "{error}"
    );
    assert!(!retryable);
    // Give a (wrong) late write a chance to show up before asserting its absence.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        server.commands(),
        "",
        "no AUTH, MAIL or DATA may be sent in clear"
    );
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn server_down_is_a_clear_retryable_error() {
    let port = support::free_port(); // nothing listens there
    let cfg = config(port, SmtpTls::None);
    let started = Instant::now();
    let (error, retryable) = expect_email_error(send_email(&cfg, &message()).await);
    assert!(
        started.elapsed() < cfg.send_timeout,
        "took {:?}",
        started.elapsed()
    );
    assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");
    assert!(error.contains("connection refused"), "{error}");
    assert!(retryable, "a server that is down may come back");
}

#[tokio::test]
async fn a_server_that_never_greets_times_out_within_the_configured_timeout() {
    let silent = SilentListener::start();
    let cfg = EmailConfig {
        connect_timeout: Duration::from_secs(1),
        send_timeout: Duration::from_secs(2),
        ..config(silent.port, SmtpTls::Starttls)
    };
    let started = Instant::now();
    let (error, retryable) = expect_email_error(send_email(&cfg, &message()).await);
    let elapsed = started.elapsed();
    assert!(
        elapsed < cfg.send_timeout + Duration::from_millis(500),
        "took {elapsed:?}"
    );
    assert!(
        error.contains("connect_timeout") || error.contains("send_timeout"),
        "{error}"
    );
    assert!(retryable);
}

#[tokio::test]
async fn a_world_readable_password_file_is_reported_by_preflight() {
    let (_dir, path) = password_file("s3cret");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = EmailConfig {
        username: Some("alerts".into()),
        password_file: Some(path.clone()),
        ..config(2525, SmtpTls::Starttls)
    };
    let warnings = hogtrap::alert::email_preflight(&cfg).expect("preflight passes");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(&path.display().to_string()),
        "{warnings:?}"
    );
}
