//! Alerts: the words of a message, the senders that talk to SMTP servers and to the
//! desktop's D-Bus, and the delivery of the durable outbox.
//!
//! - `compose`: what an alert says (incident alerts, digests, reminders, the test message).
//! - `email`, `desktop`: one attempt at delivering one message on one channel, bounded by
//!   the configured timeout; [`SendError::is_retryable`] tells the outbox whether to retry.
//! - `outbox`: [`outbox::raise`] queues an alert in the store (never waits for a server);
//!   the delivery task ([`outbox::spawn`]) sends it, retries with backoff, rate-limits,
//!   digests and reminds. A wedged mail server or desktop delays only that task, never the
//!   sampler.

pub mod alertmanager;
pub mod compose;
pub mod desktop;
pub mod email;
pub mod message;
pub mod outbox;

/// The `[email]` and `[desktop]` sections live with the rest of the config, in
/// `config::alert`; these paths keep `alert::config::…` and `alert::EmailConfig` working.
pub use compose::{Culprit, IncidentAlert};
pub use desktop::{relay_main, send_desktop, send_desktop_with, Relay, RELAY_SUBCOMMAND};
pub use email::{check_secret_file_mode, email_preflight, send_email};
pub use message::AlertMessage;

/// Why one delivery attempt failed, as one line that names the server or bus and the
/// step that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The config cannot work as written; retrying will not help.
    #[error(transparent)]
    Config(#[from] crate::config::alert::ConfigError),
    /// An email attempt failed.
    #[error("email via {server}: {problem}")]
    Email {
        /// `host:port (tls mode)`.
        server: String,
        problem: String,
        /// A later attempt may succeed (server down, timeout, 4xx); false for 5xx
        /// rejections, failed logins, TLS trust problems, missing STARTTLS.
        retryable: bool,
    },
    /// A POST to Alertmanager failed.
    #[error("alertmanager {url}: {problem}")]
    Alertmanager {
        url: String,
        problem: String,
        retryable: bool,
    },
    /// A desktop notification failed.
    #[error("desktop notification to {target}: {problem}")]
    Desktop {
        /// The bus address and, if switched to, the user.
        target: String,
        problem: String,
        retryable: bool,
    },
}

impl SendError {
    /// Whether the outbox should try this message again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            SendError::Config(_) => false,
            SendError::Email { retryable, .. }
            | SendError::Desktop { retryable, .. }
            | SendError::Alertmanager { retryable, .. } => *retryable,
        }
    }
}
