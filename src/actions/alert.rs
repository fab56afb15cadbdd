//! Alerts about incidents and rules' own messages, queued in the outbox.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::health::Step;
use super::Actions;
use crate::alert::compose::{Culprit as AlertCulprit, IncidentAlert};
use crate::alert::outbox as alert_outbox;
use crate::format::ProcessLabel;
use crate::model::{AlertKind, Sample, TimestampMs, Urgency};
use crate::rules::{Firing, FiringKind};
use crate::store::outbox::Channel;
use crate::store::Store;

/// A rule's own words for an alert: what `email{}` or `notify{}` said.
pub(super) struct RuleNote {
    pub(super) subject: String,
    pub(super) body: String,
    pub(super) channel: Channel,
    /// `None`: from the severity.
    pub(super) urgency: Option<Urgency>,
    /// Email: these addresses instead of `[email] to` (empty: the configured ones).
    pub(super) recipients: Vec<String>,
}

impl Actions {
    /// Queues the standard message about incident `id` (host, rule, severity, values,
    /// culprits, `hogtrap show ID`) on every enabled channel, or on `only`.
    pub(super) fn raise(
        &mut self,
        store: &mut Store,
        id: i64,
        kind: AlertKind,
        note: Option<RuleNote>,
        now: TimestampMs,
    ) {
        let conn = store.connection();
        let read = crate::store::incident::incident(conn, id);
        // An incident that is not there (pruned meanwhile) has nothing to alert about.
        let Some(Some(i)) = self.health.note(Step::ReadIncident, read) else {
            return;
        };
        let culprits = crate::store::incident::culprits(conn, id);
        let culprits = self
            .health
            .note(Step::ReadCulprits, culprits)
            .unwrap_or_default();
        let values = match &i.peak {
            serde_json::Value::Object(o) => o.clone().into_iter().collect(),
            _ => BTreeMap::new(),
        };
        let (title, body, only, urgency, recipients) = match note {
            Some(n) => (
                n.subject,
                Some(n.body),
                Some(vec![n.channel]),
                n.urgency,
                n.recipients,
            ),
            None => (i.title.clone(), None, None, None, Vec::new()),
        };
        let alert = IncidentAlert {
            host: self.settings.host_name.clone(),
            incident_id: Some(id),
            rule: i.rule.clone(),
            severity: i.severity,
            title,
            opened_ms: i.opened_ms,
            closed_ms: i.closed_ms,
            values,
            culprits: culprits
                .into_iter()
                .map(|c| AlertCulprit {
                    resource: c.resource,
                    process: ProcessLabel::new(c.pid, &c.name, c.user.as_deref())
                        .with_cmdline(c.cmdline.as_deref()),
                    value: c.value,
                })
                .collect(),
            note: body,
        };
        let mut new = alert.new_alert(kind, now);
        if let Some(u) = urgency {
            new.urgency = u;
        }
        new.recipients = recipients;
        if let Err(e) = alert_outbox::raise(
            store,
            &alert_outbox::RaiseConfig::for_rule(&self.settings.config, &i.rule),
            &self.waker,
            &new,
            only.as_deref(),
        ) {
            tracing::error!("alert for incident {id} not queued: {e}");
        }
    }

    /// A rule's own email or notification: about its open incident if it has one.
    pub(super) fn raise_from_rule(
        &mut self,
        store: &mut Store,
        f: &Firing,
        kind: AlertKind,
        note: RuleNote,
        full: &Arc<Sample>,
    ) -> crate::store::Result<()> {
        // At clear the incident was just closed: the newest of the rule's incidents.
        let incident = match store.open_incident_of(&f.rule)? {
            Some(id) => Some(id),
            None if f.kind == FiringKind::Clear => store.last_incident_of(&f.rule)?,
            None => None,
        };
        match incident {
            Some(id) => self.raise(store, id, kind, Some(note), full.ts_ms),
            None => {
                let message = crate::alert::AlertMessage::new(&note.subject, &note.body);
                let mut new =
                    crate::alert::compose::new_alert(&f.rule, None, kind, &message, full.ts_ms);
                if let Some(u) = note.urgency {
                    new.urgency = u;
                }
                new.recipients = note.recipients.clone();
                alert_outbox::raise(
                    store,
                    &alert_outbox::RaiseConfig::for_rule(&self.settings.config, &f.rule),
                    &self.waker,
                    &new,
                    Some(&[note.channel]),
                )?;
            }
        }
        Ok(())
    }
}
