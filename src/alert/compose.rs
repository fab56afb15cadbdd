//! The words of an alert: what a person reads in the mail or the notification.
//!
//! Owns the text of incident alerts (fire, clear, reminder), digests, and the test
//! message. Guarantees: every incident message names the host, rule, severity and time, the
//! values that tripped the rule, the culprit processes by resource, and the command that
//! shows more (`hogtrap show ID`); the HTML part carries the same content as the text,
//! escaped. Inputs are plain structs, so the rule engine, the outbox and the CLI can all
//! build messages without knowing each other.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::message::AlertMessage;
use crate::format::{self as output, escape_markup, format_local};
use crate::model::{AlertKind, Severity, TimestampMs, Urgency};
use crate::store::outbox::{HeldAlert, NewAlert, OpenIncidentAlert};

use crate::model::Resource;

/// How a resource is named in a message.
fn resource_label(r: Resource) -> &'static str {
    match r {
        Resource::Cpu => "CPU",
        Resource::Mem => "memory",
        Resource::Io => "disk I/O",
        Resource::Net => "network",
    }
}

/// A culprit's value in its resource's unit.
fn resource_format(r: Resource, value: f64) -> String {
    match r {
        Resource::Cpu => output::pct(value),
        Resource::Mem => output::bytes(value),
        Resource::Io | Resource::Net => output::rate(value),
    }
}

/// One process blamed for an incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Culprit {
    pub resource: Resource,
    pub process: output::ProcessLabel,
    /// In the resource's unit (see [`Resource`]).
    pub value: f64,
}

/// Everything an incident alert says. Built by whoever raises the alert (the rule engine).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IncidentAlert {
    pub host: String,
    /// `None` for an alert without an incident (the message then points to `hogtrap top`).
    pub incident_id: Option<i64>,
    pub rule: String,
    pub severity: Severity,
    /// One line, e.g. "load per CPU 3.2 for 2m".
    pub title: String,
    pub opened_ms: TimestampMs,
    /// Set for the recovery message.
    pub closed_ms: Option<TimestampMs>,
    /// The values that tripped the rule (what its condition returned), by name.
    pub values: BTreeMap<String, serde_json::Value>,
    /// Culprits, in rank order within each resource.
    pub culprits: Vec<Culprit>,
    /// The rule's own words, if its handler wrote any.
    pub note: Option<String>,
}

/// Label/value rows of an HTML table, escaped.
fn push_rows<K: AsRef<str>, V: AsRef<str>>(html: &mut String, rows: &[(K, V)]) {
    for (k, v) in rows {
        let _ = writeln!(
            html,
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
            escape_markup(k.as_ref()),
            escape_markup(v.as_ref())
        );
    }
}

/// The desktop urgency for a severity.
pub fn severity_urgency(severity: Severity) -> Urgency {
    match severity {
        Severity::Critical => Urgency::Critical,
        Severity::Info => Urgency::Low,
        Severity::Warning => Urgency::Normal,
    }
}

impl IncidentAlert {
    /// The command that tells the rest of the story.
    pub fn see_more(&self) -> String {
        match self.incident_id {
            Some(id) => format!("hogtrap show {id}"),
            None => format!("hogtrap top --at \"{}\"", format_local(self.opened_ms)),
        }
    }

    /// The message for a rule firing (`Fire`, `Notice`), clearing (`Clear`) or still
    /// open (`Reminder`, with `now_ms` to say for how long).
    pub fn message(&self, kind: AlertKind, now_ms: TimestampMs) -> AlertMessage {
        let severity = self.severity.as_str().to_ascii_uppercase();
        let incident = self
            .incident_id
            .map(|id| format!(" (incident {id})"))
            .unwrap_or_default();
        let (tag, headline) = match kind {
            AlertKind::Clear => (
                "RESOLVED".to_owned(),
                format!("Resolved on {}: {}", self.host, self.title),
            ),
            AlertKind::Reminder => (
                format!("STILL {severity}"),
                format!(
                    "Still {} on {} after {}: {}",
                    self.severity,
                    self.host,
                    crate::format::human_ms(now_ms - self.opened_ms),
                    self.title
                ),
            ),
            _ => (
                severity.clone(),
                format!("{severity} on {}: {}", self.host, self.title),
            ),
        };
        let subject = format!("[hogtrap] {tag} {}: {}{incident}", self.host, self.title);

        let mut facts: Vec<(&str, String)> = vec![
            ("host", self.host.clone()),
            ("rule", self.rule.clone()),
            ("severity", self.severity.to_string()),
            ("opened", format_local(self.opened_ms)),
        ];
        if let Some(closed) = self.closed_ms {
            facts.push((
                "closed",
                format!(
                    "{} (lasted {})",
                    format_local(closed),
                    crate::format::human_ms(closed - self.opened_ms)
                ),
            ));
        }
        if let Some(id) = self.incident_id {
            facts.push(("incident", id.to_string()));
        }
        let values: Vec<(String, String)> = self
            .values
            .iter()
            .map(|(k, v)| (k.clone(), crate::format::value_text(k, v)))
            .collect();
        let mut culprits = self.culprits.clone();
        // Stable: rank order within a resource is kept.
        culprits.sort_by_key(|c| c.resource);

        let mut text = String::new();
        let _ = writeln!(text, "{headline}\n");
        let width = facts.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in &facts {
            let _ = writeln!(text, "{k:width$}  {v}");
        }
        // The heading of the values, in the text and the HTML part.
        let values_heading = if kind == AlertKind::Clear {
            "Values when it fired"
        } else {
            "What tripped it"
        };
        if !values.is_empty() {
            let _ = writeln!(text, "\n{values_heading}:");
            let width = values.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (k, v) in &values {
                let _ = writeln!(text, "  {k:width$}  {v}");
            }
        }
        if !culprits.is_empty() {
            let _ = writeln!(text, "\nCulprits:");
            for c in &culprits {
                let _ = writeln!(text, "  {}", culprit_line(c));
            }
        }
        if let Some(note) = self.note.as_deref().filter(|n| !n.trim().is_empty()) {
            let _ = writeln!(text, "\n{}", note.trim_end());
        }
        let _ = writeln!(text, "\nSee more: {}", self.see_more());

        let mut html =
            String::from("<!DOCTYPE html>\n<html><body style=\"font-family: sans-serif\">\n");
        let _ = writeln!(html, "<h2>{}</h2>", escape_markup(&headline));
        html.push_str("<table>\n");
        push_rows(&mut html, &facts);
        html.push_str("</table>\n");
        if !values.is_empty() {
            let _ = writeln!(html, "<h3>{values_heading}</h3>\n<table>");
            push_rows(&mut html, &values);
            html.push_str("</table>\n");
        }
        if !culprits.is_empty() {
            html.push_str(
                "<h3>Culprits</h3>\n<table>\n<tr><th align=\"left\">for</th>\
                 <th align=\"left\">process</th><th align=\"right\">value</th>\
                 <th align=\"left\">command</th></tr>\n",
            );
            for c in &culprits {
                let _ = writeln!(
                    html,
                    "<tr><td>{}</td><td>{}</td><td align=\"right\">{}</td><td><code>{}</code></td></tr>",
                    resource_label(c.resource),
                    escape_markup(&c.process.to_string()),
                    escape_markup(&resource_format(c.resource, c.value)),
                    escape_markup(c.process.cmdline.as_deref().unwrap_or(""))
                );
            }
            html.push_str("</table>\n");
        }
        if let Some(note) = self.note.as_deref().filter(|n| !n.trim().is_empty()) {
            let _ = writeln!(html, "<pre>{}</pre>", escape_markup(note.trim_end()));
        }
        let _ = writeln!(
            html,
            "<p>See more: <code>{}</code></p>\n</body></html>",
            escape_markup(&self.see_more())
        );

        AlertMessage {
            subject,
            text,
            html: Some(html),
            urgency: Some(if kind == AlertKind::Clear {
                Urgency::Low
            } else {
                severity_urgency(self.severity)
            }),
            message_id: None,
        }
    }

    /// The outbox row for this alert (see `alert::outbox::raise`).
    pub fn new_alert(&self, kind: AlertKind, now_ms: TimestampMs) -> NewAlert {
        let message = self.message(kind, now_ms);
        new_alert(&self.rule, self.incident_id, kind, &message, now_ms)
    }
}

/// An outbox row carrying `message`.
pub fn new_alert(
    rule: &str,
    incident_id: Option<i64>,
    kind: AlertKind,
    message: &AlertMessage,
    now_ms: TimestampMs,
) -> NewAlert {
    NewAlert {
        created_ms: now_ms,
        incident_id,
        rule: rule.to_owned(),
        kind,
        subject: message.one_line_subject(),
        body_text: message.text.clone(),
        body_html: message.html.clone(),
        urgency: message.urgency.unwrap_or_default(),
        recipients: Vec::new(),
    }
}

fn culprit_line(c: &Culprit) -> String {
    let mut line = format!(
        "{:8}  {:>10}  {}",
        resource_label(c.resource),
        resource_format(c.resource, c.value),
        c.process
    );
    if let Some(cmd) = c.process.cmdline.as_deref().filter(|s| !s.is_empty()) {
        let _ = write!(line, "  {}", output::short(cmd, 80));
    }
    line
}

/// The digest of what a rate limit held back on one channel: how many, when, their
/// subjects, and the newest one in full.
pub fn digest_message(
    host: &str,
    rule: &str,
    rate_limit: &str,
    held: &[HeldAlert],
) -> AlertMessage {
    let n = held.len();
    let subject = format!(
        "[hogtrap] {host}: {n} more alert{} from rule {rule} (held back by the rate limit)",
        if n == 1 { "" } else { "s" }
    );
    let mut text = format!(
        "Rule {rule} on {host} raised {n} alert{} that the rate limit (one message per \
         rule and channel every {rate_limit}) held back:\n\n",
        if n == 1 { "" } else { "s" }
    );
    const LISTED: usize = 50;
    for h in held.iter().take(LISTED) {
        let _ = writeln!(
            text,
            "  {}  {:8}  {}",
            format_local(h.created_ms),
            h.kind,
            h.subject
        );
    }
    if n > LISTED {
        let _ = writeln!(text, "  ... and {} more", n - LISTED);
    }
    let mut urgency = Urgency::Low;
    if let Some(last) = held.last() {
        let _ = write!(text, "\nThe newest one in full:\n\n{}", last.body_text);
        urgency = last.urgency;
    }
    AlertMessage {
        subject,
        html: Some(super::message::html_from_text(&text)),
        text,
        urgency: Some(urgency),
        message_id: None,
    }
}

/// A reminder that an incident is still open: its first alert again, with how long.
pub fn reminder_message(open: &OpenIncidentAlert, now_ms: TimestampMs) -> AlertMessage {
    let lead = format!(
        "Still open after {} (since {}); the first alert follows.\n\n",
        crate::format::human_ms(now_ms - open.opened_ms),
        format_local(open.opened_ms)
    );
    let urgency = open.urgency;
    AlertMessage {
        subject: format!("[reminder] {}", open.subject),
        text: format!("{lead}{}", open.body_text),
        html: open.body_html.as_ref().map(|html| {
            let p = format!("<p><b>{}</b></p>\n", escape_markup(lead.trim()));
            match html
                .find("<body")
                .and_then(|i| html[i..].find('>').map(|j| i + j + 1))
            {
                Some(at) => format!("{}{p}{}", &html[..at], &html[at..]),
                None => format!("{p}{html}"),
            }
        }),
        urgency: Some(urgency),
        message_id: None,
    }
}

/// The message `hogtrap alert test` sends.
pub fn test_message(host: &str, now_ms: TimestampMs) -> AlertMessage {
    let text = format!(
        "This is a test alert from hogtrap on {host}, sent at {} by `hogtrap alert test`.\n\
         If you can read it, alerts from this host reach you on this channel.\n",
        format_local(now_ms)
    );
    AlertMessage {
        subject: format!("[hogtrap] test alert from {host}"),
        html: Some(super::message::html_from_text(&text)),
        text,
        urgency: Some(Urgency::Normal),
        message_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

    fn burner() -> IncidentAlert {
        IncidentAlert {
            host: "web1".into(),
            incident_id: Some(7),
            rule: "load_spike".into(),
            severity: Severity::Critical,
            title: "load per CPU 3.2 for 2m".into(),
            opened_ms: 1_764_000_000_000,
            closed_ms: None,
            values: BTreeMap::from([
                ("load_per_cpu".into(), serde_json::json!(3.2)),
                ("load1".into(), serde_json::json!(12.8)),
                ("mem_used_bytes".into(), serde_json::json!(434_790_400)),
                ("cpu".into(), serde_json::json!(99.993)),
            ]),
            culprits: [
                (
                    Resource::Mem,
                    17,
                    "java",
                    "app",
                    "java -jar app.jar",
                    2.0 * GIB,
                ),
                (
                    Resource::Cpu,
                    4242,
                    "burner",
                    "bob",
                    "python3 -c <loop>",
                    99.5,
                ),
            ]
            .map(|(resource, pid, name, user, cmdline, value)| Culprit {
                resource,
                process: output::ProcessLabel::new(pid, name, Some(user))
                    .with_cmdline(Some(cmdline)),
                value,
            })
            .into(),
            note: Some("Check the batch jobs.".into()),
        }
    }

    #[test]
    fn fire_message_names_everything_a_person_needs() {
        let m = burner().message(AlertKind::Fire, 0);
        assert_eq!(
            m.subject,
            "[hogtrap] CRITICAL web1: load per CPU 3.2 for 2m (incident 7)"
        );
        for needle in [
            "CRITICAL on web1",
            "rule      load_spike",
            "severity  critical",
            "load_per_cpu    3.2",
            "load1           12.8",
            "burner (pid 4242, bob)",
            "99.5%",
            "2.0 GiB",
            "java (pid 17, app)",
            "Check the batch jobs.",
            "See more: hogtrap show 7",
        ] {
            assert!(
                m.text.contains(needle),
                "{needle:?} missing in:\n{}",
                m.text
            );
        }
        // CPU culprits come before memory ones.
        assert!(m.text.find("burner").unwrap() < m.text.find("java").unwrap());
        let html = m.html.unwrap();
        assert!(html.contains("python3 -c &lt;loop&gt;"), "{html}");
        assert!(html.contains("hogtrap show 7"), "{html}");
        assert_eq!(m.urgency, Some(Urgency::Critical));
    }

    #[test]
    fn clear_and_reminder_say_so() {
        let mut a = burner();
        a.closed_ms = Some(a.opened_ms + 300_000);
        let m = a.message(AlertKind::Clear, a.opened_ms + 300_000);
        assert!(
            m.subject.starts_with("[hogtrap] RESOLVED web1"),
            "{}",
            m.subject
        );
        assert!(m.text.contains("lasted 5m"), "{}", m.text);
        assert!(m.text.contains("Values when it fired"), "{}", m.text);
        let m = burner().message(AlertKind::Reminder, a.opened_ms + 3_600_000);
        assert!(
            m.text.starts_with("Still critical on web1 after 1h"),
            "{}",
            m.text
        );
    }

    #[test]
    fn without_an_incident_it_points_to_top() {
        let a = IncidentAlert {
            incident_id: None,
            ..burner()
        };
        assert!(a.see_more().starts_with("hogtrap top --at \""));
    }

    #[test]
    fn digest_lists_what_was_held() {
        let held: Vec<HeldAlert> = (0..3)
            .map(|i| HeldAlert {
                id: i,
                created_ms: 1_764_000_000_000 + i * 10_000,
                incident_id: None,
                kind: AlertKind::Fire,
                subject: format!("load spike {i}"),
                body_text: format!("body {i}"),
                urgency: Urgency::Critical,
            })
            .collect();
        let m = digest_message("web1", "load_spike", "10m", &held);
        assert!(m.subject.contains("3 more alerts"), "{}", m.subject);
        assert!(m.text.contains("load spike 0") && m.text.contains("load spike 2"));
        assert!(m.text.ends_with("body 2"), "{}", m.text);
        assert_eq!(m.urgency, Some(Urgency::Critical));
    }

    #[test]
    fn tripped_values_read_as_show_prints_them() {
        let m = burner().message(AlertKind::Fire, 0);
        for (k, v) in [
            ("mem_used_bytes", "414.6 MiB"),
            ("cpu", "100.0%"),
            ("load1", "12.8"),
        ] {
            let line = m
                .text
                .lines()
                .find(|l| l.trim_start().starts_with(k))
                .unwrap_or_else(|| panic!("no {k} line in {}", m.text));
            assert!(line.trim_end().ends_with(v), "{line}");
        }
        assert!(!m.text.contains("434790400") && !m.text.contains("99.993"));
    }
}
