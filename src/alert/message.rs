//! The alert message as the senders see it, and its rendering as an email.
//!
//! Guarantees: every email carries Date and Message-ID headers, a plain text body, and,
//! when HTML is given, the same content as an HTML alternative (multipart/alternative, text
//! first, so a client that cannot show HTML shows the text).

use serde::{Deserialize, Serialize};

use crate::format::escape_markup;

use crate::model::Urgency;

/// One alert, ready to send on any channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertMessage {
    /// Email subject and desktop summary: one line.
    pub subject: String,
    /// Plain text body (email text part, desktop body).
    pub text: String,
    /// Optional HTML rendering of the same content (email only).
    pub html: Option<String>,
    /// `None` means the channel's configured default.
    pub urgency: Option<Urgency>,
    /// The email Message-ID, with its angle brackets; `None`: a fresh random one. The
    /// outbox gives every alert a stable one, so a message sent twice (after a crash
    /// between the server's "accepted" and the outbox's record of it) carries the same
    /// Message-ID, which mail systems and clients treat as one message.
    #[serde(default)]
    pub message_id: Option<String>,
}

impl AlertMessage {
    /// A text-only message with the channel's default urgency.
    pub fn new(subject: impl Into<String>, text: impl Into<String>) -> Self {
        AlertMessage {
            subject: subject.into(),
            text: text.into(),
            html: None,
            urgency: None,
            message_id: None,
        }
    }

    pub fn with_html(mut self, html: impl Into<String>) -> Self {
        self.html = Some(html.into());
        self
    }

    pub fn with_urgency(mut self, urgency: Urgency) -> Self {
        self.urgency = Some(urgency);
        self
    }

    /// The subject as one line: a rule-made subject with newlines would otherwise be
    /// rejected or folded oddly by mail clients and desktops.
    pub fn one_line_subject(&self) -> String {
        self.subject
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A minimal HTML rendering of plain text (monospace, escaped), for callers that have no
/// richer HTML of their own: process tables stay aligned in an HTML mail client.
pub fn html_from_text(text: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><body><pre style=\"font-family: monospace\">{}</pre></body></html>\n",
        escape_markup(text)
    )
}

/// Builds the email: From, To, Subject, Date (now), a fresh Message-ID, and the body.
/// Addresses were checked by `EmailConfig::validate`; they are parsed again here so that
/// an unvalidated config still gives an error, not a panic.
pub fn build_email(
    from: &str,
    to: &[String],
    msg: &AlertMessage,
) -> Result<lettre::Message, String> {
    use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};

    let from: Mailbox = from
        .parse()
        .map_err(|e| format!("from address {from:?}: {e}"))?;
    let mut builder = lettre::Message::builder()
        .from(from)
        .subject(msg.one_line_subject())
        .date_now()
        // `None` makes lettre generate `<random@hostname>`; without this call lettre adds
        // no Message-ID at all.
        .message_id(msg.message_id.clone());
    if to.is_empty() {
        return Err("no recipients".to_owned());
    }
    for addr in to {
        let mailbox: Mailbox = addr
            .parse()
            .map_err(|e| format!("recipient {addr:?}: {e}"))?;
        builder = builder.to(mailbox);
    }
    let built = match &msg.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            msg.text.clone(),
            html.clone(),
        )),
        None => builder.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(msg.text.clone()),
        ),
    };
    built.map_err(|e| format!("cannot build the message: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_has_date_message_id_and_both_parts() {
        let msg = AlertMessage::new("load spike\non web1", "load 12.0\n<defunct> burner")
            .with_html(html_from_text("load 12.0\n<defunct> burner"));
        let email = build_email(
            "hogtrap <hogtrap@example.org>",
            &["ops@example.org".to_owned()],
            &msg,
        )
        .unwrap();
        let raw = String::from_utf8(email.formatted()).unwrap();
        assert!(raw.contains("\r\nDate: "), "{raw}");
        assert!(raw.contains("\r\nMessage-ID: <"), "{raw}");
        assert!(raw.contains("Subject: load spike on web1\r\n"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("text/plain"), "{raw}");
        assert!(raw.contains("text/html"), "{raw}");
        assert!(raw.contains("&lt;defunct&gt;"), "{raw}");
    }

    #[test]
    fn a_given_message_id_is_used() {
        let mut msg = AlertMessage::new("s", "body");
        msg.message_id = Some("<hogtrap.alert.7.1000@web1>".into());
        let email = build_email("a@example.org", &["b@example.org".to_owned()], &msg).unwrap();
        let raw = String::from_utf8(email.formatted()).unwrap();
        assert!(
            raw.contains("\r\nMessage-ID: <hogtrap.alert.7.1000@web1>\r\n"),
            "{raw}"
        );
    }

    #[test]
    fn text_only_email_is_single_part() {
        let msg = AlertMessage::new("s", "body");
        let email = build_email("a@example.org", &["b@example.org".to_owned()], &msg).unwrap();
        let raw = String::from_utf8(email.formatted()).unwrap();
        assert!(!raw.contains("multipart"), "{raw}");
        assert!(raw.contains("text/plain"), "{raw}");
    }

    #[test]
    fn bad_addresses_are_errors_not_panics() {
        let msg = AlertMessage::new("s", "body");
        assert!(build_email("nope", &["b@example.org".to_owned()], &msg).is_err());
        assert!(build_email("a@example.org", &["nope".to_owned()], &msg).is_err());
        assert!(build_email("a@example.org", &[], &msg).is_err());
    }

    #[test]
    fn markup_is_escaped() {
        assert_eq!(escape_markup("a<b>&\"c\""), "a&lt;b&gt;&amp;&quot;c&quot;");
    }
}
