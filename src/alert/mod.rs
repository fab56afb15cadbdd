//! Alert delivery: the senders that talk to SMTP servers and to the desktop's D-Bus.
//!
//! Owns the `[email]` and `[desktop]` config sections, the message format, and the one
//! attempt at delivering one message on one channel. It keeps no queue and never retries:
//! the durable outbox (store) decides when to call again, using
//! [`SendError::is_retryable`]. Every call is bounded by the configured timeout, so a
//! wedged mail server or desktop can delay only the task that called, never the sampler.

pub mod config;
pub mod desktop;
pub mod email;
pub mod message;

pub use config::{ConfigError, DesktopConfig, EmailConfig, SmtpTls};
pub use desktop::{relay_main, send_desktop, send_desktop_with, Relay};
pub use email::{check_secret_file_mode, email_preflight, send_email};
pub use message::{AlertMessage, Urgency};

/// Why one delivery attempt failed, as one line that names the server or bus and the
/// step that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The config cannot work as written; retrying will not help.
    #[error(transparent)]
    Config(#[from] ConfigError),
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
            SendError::Email { retryable, .. } | SendError::Desktop { retryable, .. } => *retryable,
        }
    }
}
