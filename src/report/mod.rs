//! `hogtrap report`: one self-contained HTML page about a window of the record (an incident
//! and the minutes around it, or any range): host charts, the top processes over time,
//! incidents shaded, culprits, alerts and captured connections.
//!
//! [`gather`] asks the store (read-only) for everything the page shows; [`html::render`]
//! turns it into the page. Guarantees: the page references nothing outside itself (no URL,
//! no script, no font or image to fetch), so it opens the same offline, in a mail
//! attachment or years later; a process is named as everywhere else in hogtrap
//! ([`crate::format::ProcessLabel`]).

pub mod chart;
pub mod html;

use rusqlite::Connection;

use crate::model::Resource;
use crate::model::TimestampMs;
use crate::store::incident::{self as inc, AlertRow, CulpritRow, IncidentRow};
use crate::store::report as q;

/// Processes charted per resource.
pub const TOP_PER_RESOURCE: usize = 5;
/// Connection rows in the table.
pub const MAX_CONNECTIONS: usize = 40;

/// What the report covers.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub from_ms: TimestampMs,
    pub to_ms: TimestampMs,
    /// The incident the report is about, if it is an incident report.
    pub incident_id: Option<i64>,
}

/// The window of an incident report: the incident, `margin_ms` before and after, cut to the
/// samples the store holds (so the charts are not mostly empty) but never cut into the
/// incident itself.
pub fn incident_window(
    incident: &IncidentRow,
    margin_ms: i64,
    record: Option<(TimestampMs, TimestampMs)>,
    now_ms: TimestampMs,
) -> Window {
    let end = incident.closed_ms.unwrap_or(now_ms);
    let (mut from, mut to) = (incident.opened_ms - margin_ms, end + margin_ms);
    if let Some((first, last)) = record {
        from = from.max(first.min(incident.opened_ms));
        to = to.min(last.max(end));
    }
    Window {
        from_ms: from,
        to_ms: to.max(from + 1),
        incident_id: Some(incident.id),
    }
}

/// Everything the page shows.
#[derive(Debug, Clone)]
pub struct ReportData {
    pub window: Window,
    pub generated_ms: TimestampMs,
    /// The incident the report is about.
    pub focus: Option<IncidentRow>,
    pub host: Vec<q::HostPoint>,
    /// Per resource (cpu, mem, io, net), the top processes of the window with their series.
    pub top: Vec<(Resource, Vec<q::ProcessSeries>)>,
    pub incidents: Vec<IncidentRow>,
    /// Per incident in the window, its culprits.
    pub culprits: Vec<(i64, Vec<CulpritRow>)>,
    pub captures: Vec<q::CaptureSpan>,
    pub alerts: Vec<AlertRow>,
    pub connections: Vec<q::ConnectionSummary>,
}

/// The steps [`gather`] reports to its progress callback, for a progress bar's length.
pub const STEPS: u64 = 8;

/// Reads the window from the store. `step` is called before each of [`STEPS`] steps with
/// what it is about to do.
pub fn gather(
    conn: &Connection,
    window: Window,
    generated_ms: TimestampMs,
    step: &mut dyn FnMut(&str),
) -> rusqlite::Result<ReportData> {
    let (from, to) = (window.from_ms, window.to_ms);
    step("host rows");
    let host = q::host_series(conn, from, to)?;
    let mut top = Vec::new();
    for r in Resource::ALL {
        step(match r {
            Resource::Cpu => "top processes by CPU",
            Resource::Mem => "top processes by memory",
            Resource::Io => "top processes by I/O",
            Resource::Net => "top processes by network",
        });
        top.push((
            r,
            q::top_process_series(conn, from, to, r, TOP_PER_RESOURCE)?,
        ));
    }
    step("incidents, culprits and alerts");
    let focus = match window.incident_id {
        Some(id) => inc::incident(conn, id)?,
        None => None,
    };
    let mut incidents = q::incidents_between(conn, from, to)?;
    if let Some(f) = &focus {
        if !incidents.iter().any(|i| i.id == f.id) {
            incidents.push(f.clone());
        }
    }
    let ids: Vec<i64> = incidents.iter().map(|i| i.id).collect();
    let culprits = ids
        .iter()
        .map(|&id| inc::culprits(conn, id).map(|c| (id, c)))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let alerts = q::alerts_between(conn, from, to, &ids)?;
    step("captures");
    let captures = q::captures_between(conn, from, to)?;
    step("connections");
    let connections = q::connections_between(conn, from, to, MAX_CONNECTIONS)?;
    Ok(ReportData {
        window,
        generated_ms,
        focus,
        host,
        top,
        incidents,
        culprits,
        captures,
        alerts,
        connections,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(opened: i64, closed: Option<i64>) -> IncidentRow {
        IncidentRow {
            id: 7,
            rule: "cpu_hog".into(),
            rule_file: None,
            severity: crate::model::Severity::Warning,
            title: "t".into(),
            opened_ms: opened,
            updated_ms: opened,
            closed_ms: closed,
            peak: serde_json::Value::Null,
            summary: String::new(),
        }
    }

    #[test]
    fn incident_window_has_margins_cut_to_the_record() {
        let m = 600_000;
        let w = incident_window(&incident(1_000_000, Some(1_100_000)), m, None, 0);
        assert_eq!((w.from_ms, w.to_ms), (400_000, 1_700_000));
        let w = incident_window(
            &incident(1_000_000, Some(1_100_000)),
            m,
            Some((900_000, 1_150_000)),
            0,
        );
        assert_eq!((w.from_ms, w.to_ms), (900_000, 1_150_000));
        // An open incident runs to now; the record never cuts into the incident.
        let w = incident_window(
            &incident(1_000_000, None),
            m,
            Some((1_010_000, 1_020_000)),
            1_050_000,
        );
        assert_eq!((w.from_ms, w.to_ms), (1_000_000, 1_050_000));
        assert_eq!(w.incident_id, Some(7));
    }
}
