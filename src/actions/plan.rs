//! Which alerts a firing raises: the one policy the daemon carries out (in `apply_firing`)
//! and `hogtrap rules backtest` reports, so the two cannot disagree about what an incident
//! sends.
//!
//! A rule that says how to alert (`email{}`, `notify{}`) is obeyed, on that channel only;
//! otherwise an incident that opens, or closes, alerts every enabled channel.

use crate::model::AlertKind;
use crate::rules::{Action, Firing, FiringKind};
use crate::store::outbox::Channel;

/// One alert a firing queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedAlert {
    pub channel: Channel,
    pub kind: AlertKind,
    /// The subject or summary it goes out with.
    pub subject: String,
}

/// True when the rule's own actions say how to alert, so the standard incident alert is not
/// raised.
pub fn rule_alerts_itself(f: &Firing) -> bool {
    f.actions
        .iter()
        .any(|a| matches!(a, Action::Email { .. } | Action::Notify { .. }))
}

/// The alert kind of a firing's own alerts.
pub fn kind_of(f: &Firing) -> AlertKind {
    match f.kind {
        FiringKind::Fire => AlertKind::Fire,
        FiringKind::Clear => AlertKind::Clear,
        FiringKind::Scheduled => AlertKind::Notice,
    }
}

/// What the incident did on this firing, as the daemon's store saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IncidentChange {
    /// The firing opened a new incident (not an update of an open one).
    pub opened: bool,
    /// The firing resolved an open incident.
    pub closed: bool,
}

/// The alerts `action` of firing `f` queues, given what the incident did and the enabled
/// channels (in their order).
pub fn alerts_of_action(
    f: &Firing,
    action: &Action,
    change: IncidentChange,
    enabled: &[Channel],
) -> Vec<PlannedAlert> {
    let every = |kind: AlertKind, subject: &str| {
        enabled
            .iter()
            .map(|&channel| PlannedAlert {
                channel,
                kind,
                subject: subject.to_owned(),
            })
            .collect()
    };
    let only = |channel: Channel, subject: &str| {
        enabled
            .iter()
            .filter(|&&c| c == channel)
            .map(|&channel| PlannedAlert {
                channel,
                kind: kind_of(f),
                subject: subject.to_owned(),
            })
            .collect()
    };
    match action {
        Action::Incident { title, .. } if change.opened && !rule_alerts_itself(f) => {
            every(AlertKind::Fire, title)
        }
        Action::Resolve { .. } if change.closed && !rule_alerts_itself(f) => {
            every(AlertKind::Clear, &format!("resolved: {}", f.rule))
        }
        Action::Email { subject, .. } => only(Channel::Email, subject),
        Action::Notify { summary, .. } => only(Channel::Desktop, summary),
        Action::Incident { .. }
        | Action::Resolve { .. }
        | Action::Capture { .. }
        | Action::Prune { .. }
        | Action::Log { .. }
        | Action::Exec { .. } => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Severity, Urgency};

    fn firing(kind: FiringKind, actions: Vec<Action>) -> Firing {
        Firing {
            rule: "cpu_hog".into(),
            file: "cpu_hog.lua".into(),
            severity: Severity::Warning,
            kind,
            ts_ms: 0,
            actions,
            values: serde_json::Value::Null,
            labels: Default::default(),
            rate_limit_ms: None,
        }
    }

    fn incident() -> Action {
        Action::Incident {
            title: "hot".into(),
            severity: Severity::Warning,
            body: None,
        }
    }

    fn all(f: &Firing, change: IncidentChange, enabled: &[Channel]) -> Vec<PlannedAlert> {
        f.actions
            .iter()
            .flat_map(|a| alerts_of_action(f, a, change, enabled))
            .collect()
    }

    const BOTH: [Channel; 2] = [Channel::Email, Channel::Desktop];
    const OPENED: IncidentChange = IncidentChange {
        opened: true,
        closed: false,
    };

    #[test]
    fn a_new_incident_alerts_every_enabled_channel_once() {
        let f = firing(FiringKind::Fire, vec![incident()]);
        let got = all(&f, OPENED, &BOTH);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].channel, Channel::Email);
        assert_eq!(got[1].channel, Channel::Desktop);
        assert!(got
            .iter()
            .all(|a| a.kind == AlertKind::Fire && a.subject == "hot"));
        assert!(all(&f, OPENED, &[Channel::Desktop]).len() == 1);
        assert!(
            all(&f, IncidentChange::default(), &BOTH).is_empty(),
            "an update"
        );
    }

    #[test]
    fn a_rule_that_alerts_itself_replaces_the_standard_alert() {
        let f = firing(
            FiringKind::Fire,
            vec![
                incident(),
                Action::Notify {
                    summary: "look".into(),
                    body: String::new(),
                    urgency: Urgency::Normal,
                },
            ],
        );
        let got = all(&f, OPENED, &BOTH);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].channel, Channel::Desktop);
        assert_eq!(got[0].subject, "look");
        assert!(all(&f, OPENED, &[Channel::Email]).is_empty(), "desktop off");
    }

    #[test]
    fn a_resolve_alerts_only_when_it_closed_something() {
        let f = firing(FiringKind::Clear, vec![Action::Resolve { note: None }]);
        let closed = IncidentChange {
            opened: false,
            closed: true,
        };
        let got = all(&f, closed, &BOTH);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|a| a.kind == AlertKind::Clear));
        assert!(all(&f, IncidentChange::default(), &BOTH).is_empty());
    }
}
