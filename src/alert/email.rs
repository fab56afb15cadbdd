//! Email delivery through lettre's async SMTP transport.
//!
//! Guarantees: with `tls = "starttls"` nothing but EHLO and STARTTLS goes over the wire in
//! clear, and a server that does not offer STARTTLS is an error (lettre's `Tls::Required`;
//! `Tls::Opportunistic` is never used); with `tls = "implicit"` the first byte is TLS;
//! certificates are checked against the built-in Mozilla roots plus `ca_file`. One call is
//! bounded by `send_timeout` as a whole; `connect_timeout` bounds the TCP connect.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::message::{build_email, AlertMessage};
use super::SendError;
use crate::config::alert::{format_duration, EmailConfig, SmtpTls};

/// Sends one message to every recipient in `cfg.to`, once. Does not look at `enabled`:
/// the caller decides whether the channel is on (a test message may go through anyway).
pub async fn send_email(cfg: &EmailConfig, msg: &AlertMessage) -> Result<(), SendError> {
    cfg.validate_for_sending()?;
    let server = server_label(cfg);
    let fail = |problem: String, retryable: bool| SendError::Email {
        server: server.clone(),
        problem,
        retryable,
    };

    let password = read_password(cfg).map_err(|problem| fail(problem, false))?;
    let transport = build_transport(cfg, password).map_err(|problem| fail(problem, false))?;
    let email = build_email(&cfg.from, &cfg.to, msg).map_err(|problem| fail(problem, false))?;

    match tokio::time::timeout(cfg.send_timeout, transport.send(email)).await {
        Err(_elapsed) => Err(fail(
            format!(
                "gave up after send_timeout = {}; the server is slow or not answering",
                format_duration(cfg.send_timeout)
            ),
            true,
        )),
        Ok(Err(e)) => {
            let (problem, retryable) = describe_smtp_error(cfg, &e);
            Err(fail(problem, retryable))
        }
        Ok(Ok(_response)) => Ok(()),
    }
}

/// Checks, without connecting, everything that can be checked about `[email]`: the
/// config, the password source, `ca_file`. Returns warnings to log (an unwise but working
/// setup, such as a password file readable by others). Meant for config load and
/// `hogtrap alert test`.
pub fn email_preflight(cfg: &EmailConfig) -> Result<Vec<String>, SendError> {
    let mut warnings = cfg.validate_for_sending()?;
    let server = server_label(cfg);
    let fail = |problem: String| SendError::Email {
        server: server.clone(),
        problem,
        retryable: false,
    };
    read_password(cfg).map_err(fail)?;
    if let Some(path) = &cfg.password_file {
        if let Some(warning) = check_secret_file_mode(path).map_err(|e| {
            fail(format!(
                "[email] password_file {}: cannot stat: {e}",
                path.display()
            ))
        })? {
            warnings.push(warning);
        }
    }
    if let Some(path) = &cfg.ca_file {
        load_ca(path).map_err(fail)?;
    }
    Ok(warnings)
}

/// Returns a warning when a file holding a secret can be read or written by anyone but its
/// owner (as ssh does for private keys). `Ok(None)` when the mode is tight.
pub fn check_secret_file_mode(path: &Path) -> std::io::Result<Option<String>> {
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(None);
    }
    let who = match (mode & 0o070 != 0, mode & 0o007 != 0) {
        (true, true) => "its group and all users",
        (true, false) => "its group",
        _ => "all users",
    };
    Ok(Some(format!(
        "{} holds a password but is accessible to {who} (mode {mode:04o}); run: chmod 600 {}",
        path.display(),
        path.display()
    )))
}

fn server_label(cfg: &EmailConfig) -> String {
    format!(
        "{}:{} (tls = {})",
        cfg.server,
        cfg.effective_port(),
        cfg.tls.as_str()
    )
}

/// The password from `password_file` (its first line) or `password_env`.
fn read_password(cfg: &EmailConfig) -> Result<Option<String>, String> {
    if let Some(path) = &cfg.password_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("[email] password_file {}: {e}", path.display()))?;
        let password = text.lines().next().unwrap_or("").to_owned();
        if password.is_empty() {
            return Err(format!(
                "[email] password_file {}: the first line is empty",
                path.display()
            ));
        }
        return Ok(Some(password));
    }
    if let Some(var) = &cfg.password_env {
        return match std::env::var(var) {
            Ok(password) if !password.is_empty() => Ok(Some(password)),
            Ok(_) => Err(format!("[email] password_env: ${var} is empty")),
            Err(_) => Err(format!(
                "[email] password_env: ${var} is not set (or not UTF-8) in the daemon's environment"
            )),
        };
    }
    Ok(None)
}

fn load_ca(path: &Path) -> Result<Certificate, String> {
    let pem =
        std::fs::read(path).map_err(|e| format!("[email] ca_file {}: {e}", path.display()))?;
    Certificate::from_pem(&pem).map_err(|e| {
        format!(
            "[email] ca_file {}: not a PEM certificate ({e})",
            path.display()
        )
    })
}

fn build_transport(
    cfg: &EmailConfig,
    password: Option<String>,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let tls = match cfg.tls {
        SmtpTls::None => Tls::None,
        SmtpTls::Implicit | SmtpTls::Starttls => {
            let mut params = TlsParameters::builder(cfg.server.clone());
            if let Some(path) = &cfg.ca_file {
                params = params.add_root_certificate(load_ca(path)?);
            }
            let params = params
                .build_rustls()
                .map_err(|e| format!("cannot set up TLS: {e}"))?;
            if cfg.tls == SmtpTls::Implicit {
                Tls::Wrapper(params)
            } else {
                Tls::Required(params)
            }
        }
    };
    // `builder_dangerous` only means "no TLS preset": the TLS mode is set right below.
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.server.clone())
        .port(cfg.effective_port())
        .tls(tls)
        .timeout(Some(cfg.connect_timeout));
    if let Some(name) = &cfg.hello_name {
        builder = builder.hello_name(ClientId::Domain(name.clone()));
    }
    if let (Some(user), Some(password)) = (&cfg.username, password) {
        builder = builder.credentials(Credentials::new(user.clone(), password));
    }
    Ok(builder.build())
}

/// One line saying what failed, and whether trying again later can help.
fn describe_smtp_error(cfg: &EmailConfig, e: &lettre::transport::smtp::Error) -> (String, bool) {
    // lettre nests "Connection error: Connection error: ..."; say it once.
    let mut text = e.to_string();
    while let Some(rest) = text.strip_prefix("Connection error: Connection error: ") {
        text = format!("Connection error: {rest}");
    }
    let lower = text.to_lowercase();
    if e.is_timeout() || lower.contains("timed out") {
        return (
            format!(
                "could not connect within connect_timeout = {} ({text})",
                format_duration(cfg.connect_timeout)
            ),
            true,
        );
    }
    if lower.contains("starttls is not supported") {
        return (
            "the server does not offer STARTTLS, which tls = \"starttls\" requires; \
             nothing was sent (if the server speaks TLS from the first byte, use \
             tls = \"implicit\")"
                .to_owned(),
            false,
        );
    }
    if lower.contains("connection refused") {
        return (
            format!("cannot connect: connection refused; is the server running? ({text})"),
            true,
        );
    }
    // rustls' verdicts arrive as connection errors, not as lettre's TLS kind.
    if lower.contains("certificate") {
        let hint = if lower.contains("unknownissuer") || lower.contains("unknown issuer") {
            "; if the server uses a private CA, set ca_file to its root certificate"
        } else {
            ""
        };
        return (format!("TLS handshake failed: {text}{hint}"), false);
    }
    if e.is_tls() {
        return (format!("TLS handshake failed: {text}"), false);
    }
    if let Some(code) = e.status() {
        let code_text = code.to_string();
        if code_text.starts_with("535") || code_text.starts_with("534") {
            return (
                format!(
                    "login as {:?} refused: {text}; check username and the password",
                    cfg.username.as_deref().unwrap_or("")
                ),
                false,
            );
        }
        if code_text.starts_with("530") {
            return (
                format!("the server requires login (set username and password_file): {text}"),
                false,
            );
        }
        return (format!("the server said: {text}"), e.is_transient());
    }
    if lower.contains("no compatible authentication mechanism") {
        return (
            format!("cannot log in: the server offers no AUTH mechanism we support ({text})"),
            false,
        );
    }
    (text, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_file_mode_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "secret\n").unwrap();
        let chmod = |mode| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode));
        chmod(0o600).unwrap();
        assert_eq!(check_secret_file_mode(&path).unwrap(), None);
        chmod(0o644).unwrap();
        let warning = check_secret_file_mode(&path).unwrap().unwrap();
        assert!(warning.contains("all users"), "{warning}");
        assert!(warning.contains("chmod 600"), "{warning}");
        chmod(0o640).unwrap();
        let warning = check_secret_file_mode(&path).unwrap().unwrap();
        assert!(warning.contains("its group"), "{warning}");
    }

    #[test]
    fn password_comes_from_file_first_line_or_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\nignored\n").unwrap();
        let cfg = EmailConfig {
            password_file: Some(path),
            ..EmailConfig::default()
        };
        assert_eq!(read_password(&cfg).unwrap().as_deref(), Some("s3cret"));

        let cfg = EmailConfig {
            password_env: Some("HOGTRAP_TEST_SURELY_UNSET_VAR".into()),
            ..EmailConfig::default()
        };
        let err = read_password(&cfg).unwrap_err();
        assert!(err.contains("not set"), "{err}");
    }
}
