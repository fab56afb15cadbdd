//! The `[email]` and `[desktop]` config sections.
//!
//! Owns the schema of both sections and their checks. Guarantees: a password never sits in
//! the config file itself (only a file path or an environment variable name), plaintext SMTP
//! is only ever the result of `tls = "none"` written by the user, and every duration is a
//! positive, human-written string such as `"10s"`. `docs/alerts.md` documents every key and
//! a unit test keeps it in step with these structs.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::Urgency;

/// How the SMTP connection is secured. There is deliberately no "opportunistic" mode: a
/// server that does not offer STARTTLS when it is required is an error, never a downgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
    /// Plain connect, then STARTTLS, which must succeed before anything else is sent
    /// (submission, usually port 587).
    Starttls,
    /// No encryption at all. Only by explicit choice, e.g. a relay on localhost.
    None,
}

impl SmtpTls {
    /// The conventional port for this mode, used when `port` is not set.
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::Implicit => 465,
            SmtpTls::Starttls => 587,
            SmtpTls::None => 25,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SmtpTls::Implicit => "implicit",
            SmtpTls::Starttls => "starttls",
            SmtpTls::None => "none",
        }
    }
}

/// `[email]`: alert mail through an SMTP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// Send alert mail at all.
    pub enabled: bool,
    /// SMTP server host name (also the name its TLS certificate must carry).
    pub server: String,
    /// Server port; when absent, 465 for implicit TLS, 587 for STARTTLS, 25 for none.
    pub port: Option<u16>,
    /// `"implicit"`, `"starttls"` or `"none"`. There is no default that sends in clear.
    pub tls: SmtpTls,
    /// Login name for SMTP AUTH; absent means no AUTH.
    pub username: Option<String>,
    /// A file whose first line is the password (keep it mode 0600).
    pub password_file: Option<PathBuf>,
    /// The name of an environment variable that holds the password.
    pub password_env: Option<String>,
    /// Refused with a clear error: passwords never sit inline in the config. Declared only
    /// so that the error can say what to write instead of "unknown field".
    #[serde(skip_serializing)]
    pub password: Option<String>,
    /// The sender, e.g. `"hogtrap <hogtrap@example.org>"`.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
    /// Limit on the TCP connect (lettre's async transport applies it there only).
    #[serde(with = "duration_string")]
    pub connect_timeout: Duration,
    /// Limit on the whole delivery of one message (connect, TLS, AUTH, DATA, QUIT).
    #[serde(with = "duration_string")]
    pub send_timeout: Duration,
    /// Extra trusted root CA (PEM), on top of the built-in Mozilla roots: for a private CA.
    pub ca_file: Option<PathBuf>,
    /// Name sent in EHLO; absent means this host's name.
    pub hello_name: Option<String>,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            enabled: false,
            server: String::new(),
            port: None,
            tls: SmtpTls::Starttls,
            username: None,
            password_file: None,
            password_env: None,
            password: None,
            from: String::new(),
            to: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(30),
            ca_file: None,
            hello_name: None,
        }
    }
}

/// A mistake in `[email]` or `[desktop]`, naming the key and what would be right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[{section}] {key}: {problem}")]
pub struct ConfigError {
    pub section: &'static str,
    pub key: &'static str,
    pub problem: String,
}

fn email_err(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        section: "email",
        key,
        problem: problem.into(),
    }
}

impl EmailConfig {
    /// The port actually used.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or_else(|| self.tls.default_port())
    }

    /// Checks what serde cannot. Returns warnings (things that work but are unwise) or the
    /// first error. A disabled section is only checked for an inline password.
    pub fn validate(&self) -> Result<Vec<String>, ConfigError> {
        if self.enabled {
            self.validate_for_sending()
        } else {
            self.refuse_inline_password().map(|()| Vec::new())
        }
    }

    fn refuse_inline_password(&self) -> Result<(), ConfigError> {
        match self.password {
            Some(_) => Err(email_err(
                "password",
                "passwords are not accepted inline; put it in a file (mode 0600) and set \
                 password_file, or set password_env to the name of an environment variable",
            )),
            None => Ok(()),
        }
    }

    /// All checks, whether or not `enabled` is set (a test message may be sent through a
    /// disabled channel).
    pub fn validate_for_sending(&self) -> Result<Vec<String>, ConfigError> {
        let mut warnings = Vec::new();
        self.refuse_inline_password()?;
        if self.server.trim().is_empty() {
            return Err(email_err("server", "required when email is enabled"));
        }
        if self.port == Some(0) {
            return Err(email_err(
                "port",
                "must be 1-65535 (or absent for the default)",
            ));
        }
        if self.from.trim().is_empty() {
            return Err(email_err(
                "from",
                "required, e.g. \"hogtrap <hogtrap@example.org>\"",
            ));
        }
        if let Err(e) = self.from.parse::<lettre::message::Mailbox>() {
            return Err(email_err("from", format!("not a mail address ({e})")));
        }
        if self.to.is_empty() {
            return Err(email_err("to", "at least one recipient is required"));
        }
        for to in &self.to {
            if let Err(e) = to.parse::<lettre::message::Mailbox>() {
                return Err(email_err(
                    "to",
                    format!("{to:?} is not a mail address ({e})"),
                ));
            }
        }
        if self.password_file.is_some() && self.password_env.is_some() {
            return Err(email_err(
                "password_file",
                "set either password_file or password_env, not both",
            ));
        }
        let has_password = self.password_file.is_some() || self.password_env.is_some();
        match (&self.username, has_password) {
            (Some(_), false) => {
                return Err(email_err(
                    "username",
                    "needs a password: set password_file or password_env",
                ))
            }
            (None, true) => {
                return Err(email_err(
                    "username",
                    "a password is configured but no username to log in with",
                ))
            }
            _ => {}
        }
        if self.tls == SmtpTls::None && self.username.is_some() {
            warnings.push(format!(
                "[email] tls = \"none\" with username set: the password to {} goes over the \
                 network in clear",
                self.server
            ));
        }
        if self.connect_timeout > self.send_timeout {
            warnings.push(format!(
                "[email] connect_timeout ({:?}) is longer than send_timeout ({:?}); the \
                 send_timeout wins",
                self.connect_timeout, self.send_timeout
            ));
        }
        Ok(warnings)
    }
}

/// `[desktop]`: desktop notifications over the D-Bus session bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DesktopConfig {
    /// Send desktop notifications at all.
    pub enabled: bool,
    /// Limit on one notification: starting the relay, connecting to the bus and the
    /// `Notify` call.
    #[serde(with = "duration_string")]
    pub timeout: Duration,
    /// Urgency of alerts that do not set one: `"low"`, `"normal"` or `"critical"`.
    pub urgency: Urgency,
    /// The desktop user (name or numeric uid) whose session bus `/run/user/UID/bus` gets
    /// the notification. Needed when the daemon runs as root; absent means the daemon's own
    /// session bus.
    pub user: Option<String>,
    /// Explicit D-Bus address (e.g. `"unix:path=/run/user/1000/bus"`), overriding the one
    /// derived from `user` or inherited from `DBUS_SESSION_BUS_ADDRESS`.
    pub bus_address: Option<String>,
    /// How long the notification stays on screen; absent means the desktop's default.
    #[serde(with = "optional_duration_string")]
    pub show_for: Option<Duration>,
    /// Application name shown by the desktop.
    pub app_name: String,
}

impl Default for DesktopConfig {
    fn default() -> Self {
        DesktopConfig {
            enabled: false,
            timeout: Duration::from_secs(5),
            urgency: Urgency::default(),
            user: None,
            bus_address: None,
            show_for: None,
            app_name: "hogtrap".to_owned(),
        }
    }
}

impl DesktopConfig {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |key, problem: &str| ConfigError {
            section: "desktop",
            key,
            problem: problem.to_owned(),
        };
        if let Some(user) = &self.user {
            if user.trim().is_empty() {
                return Err(err("user", "empty; remove the key or name a user"));
            }
        }
        if let Some(addr) = &self.bus_address {
            if !addr.contains(':') {
                return Err(err(
                    "bus_address",
                    "not a D-Bus address; expected e.g. \"unix:path=/run/user/1000/bus\"",
                ));
            }
        }
        if self.app_name.trim().is_empty() {
            return Err(err("app_name", "must not be empty"));
        }
        Ok(())
    }
}

/// Parses a positive duration in the one duration grammar ([`crate::format::parse_duration`]):
/// `"10s"`, `"1m 30s"`, `"500ms"`, `"2h"`, ISO 8601 such as `"PT10S"`. Zero is refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = crate::format::parse_duration(text)?;
    if d.is_zero() {
        return Err(format!("{text:?}: the duration must be positive"));
    }
    Ok(d)
}

/// Formats a duration the way `parse_duration` reads it back.
pub fn format_duration(duration: Duration) -> String {
    crate::format::duration_text(duration)
}

mod duration_string {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

mod optional_duration_string {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&super::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sections {
        email: EmailConfig,
        desktop: DesktopConfig,
    }

    fn doc_snippet() -> String {
        let doc = include_str!("../../docs/alerts.md");
        let start = doc
            .find("```toml")
            .expect("docs/alerts.md has a ```toml block");
        let rest = &doc[start + "```toml".len()..];
        let end = rest.find("```").expect("the ```toml block is closed");
        rest[..end].to_owned()
    }

    #[test]
    fn durations_parse_for_people() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("PT2S"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("ten").is_err());
        assert_eq!(format_duration(Duration::from_secs(90)), "1m 30s");
    }

    #[test]
    fn docs_snippet_parses_and_shows_the_defaults() {
        // The snippet in docs/alerts.md must parse and, with every key as documented, be
        // exactly the defaults, so the documented defaults cannot drift from the code.
        let parsed: Sections = toml::from_str(&doc_snippet()).expect("docs snippet parses");
        assert_eq!(parsed.email, EmailConfig::default());
        assert_eq!(parsed.desktop, DesktopConfig::default());
    }

    #[test]
    fn docs_name_every_key() {
        let doc = include_str!("../../docs/alerts.md");
        let email = toml::to_string(&EmailConfig {
            port: Some(1),
            username: Some("u".into()),
            password_file: Some("/p".into()),
            password_env: Some("P".into()),
            ca_file: Some("/c".into()),
            hello_name: Some("h".into()),
            ..EmailConfig::default()
        })
        .unwrap();
        let desktop = toml::to_string(&DesktopConfig {
            user: Some("u".into()),
            bus_address: Some("unix:path=/b".into()),
            show_for: Some(Duration::from_secs(1)),
            ..DesktopConfig::default()
        })
        .unwrap();
        for (section, text) in [("email", email), ("desktop", desktop)] {
            for line in text.lines() {
                let key = line.split('=').next().unwrap().trim();
                assert!(
                    doc.contains(&format!("{key} =")),
                    "docs/alerts.md does not document [{section}] {key}"
                );
            }
        }
    }

    #[test]
    fn inline_password_is_refused_with_a_hint() {
        let cfg: EmailConfig = toml::from_str("password = \"hunter2\"").unwrap();
        let err = cfg.validate().unwrap_err();
        assert_eq!(err.key, "password");
        assert!(err.to_string().contains("password_file"), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = toml::from_str::<EmailConfig>("servr = \"x\"").unwrap_err();
        assert!(err.to_string().contains("servr"), "{err}");
        let err = toml::from_str::<EmailConfig>("tls = \"opportunistic\"").unwrap_err();
        assert!(err.to_string().contains("opportunistic"), "{err}");
        let err = toml::from_str::<EmailConfig>("send_timeout = \"soon\"").unwrap_err();
        assert!(err.to_string().contains("soon"), "{err}");
        let err = toml::from_str::<DesktopConfig>("urgency = \"panic\"").unwrap_err();
        assert!(err.to_string().contains("panic"), "{err}");
    }

    #[test]
    fn enabled_email_needs_server_from_to_and_consistent_auth() {
        let ok = EmailConfig {
            enabled: true,
            server: "mail.example.org".into(),
            from: "hogtrap <hogtrap@example.org>".into(),
            to: vec!["ops@example.org".into()],
            ..EmailConfig::default()
        };
        assert_eq!(ok.validate(), Ok(vec![]));
        assert_eq!(ok.effective_port(), 587);

        let no_server = EmailConfig {
            server: String::new(),
            ..ok.clone()
        };
        assert_eq!(no_server.validate().unwrap_err().key, "server");
        let bad_to = EmailConfig {
            to: vec!["not an address".into()],
            ..ok.clone()
        };
        assert_eq!(bad_to.validate().unwrap_err().key, "to");
        let user_no_pw = EmailConfig {
            username: Some("me".into()),
            ..ok.clone()
        };
        assert_eq!(user_no_pw.validate().unwrap_err().key, "username");
        let both = EmailConfig {
            username: Some("me".into()),
            password_file: Some("/x".into()),
            password_env: Some("X".into()),
            ..ok.clone()
        };
        assert_eq!(both.validate().unwrap_err().key, "password_file");
        let clear_auth = EmailConfig {
            tls: SmtpTls::None,
            username: Some("me".into()),
            password_env: Some("X".into()),
            ..ok
        };
        let warnings = clear_auth.validate().unwrap();
        assert!(warnings[0].contains("in clear"), "{warnings:?}");
    }
}
