//! Incidents: opening a rule's incident, or updating the open one, and the peaks of every
//! open incident.
//!
//! Peaks are kept in memory ([`Peaks`]), loaded once when the incident is opened or first
//! seen open (restored at start), and written to `peak_json` only when one of them changed;
//! `updated_ms` (and a rule's new severity) is written on every update, as before.

use std::collections::hash_map::Entry;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::Actions;
use crate::model::{Resource, Sample, Severity, TimestampMs};
use crate::store::incident::{culprits_of, NewIncident};
use crate::store::Store;

impl Actions {
    /// Opens the rule's incident (with culprits and the pre-trigger samples), or updates the
    /// open one. Returns its id.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn open_or_update(
        &mut self,
        store: &mut Store,
        rule: &str,
        file: &str,
        severity: Severity,
        title: &str,
        summary: &str,
        full: &Arc<Sample>,
        sample_id: Option<i64>,
        values: &serde_json::Value,
    ) -> crate::store::Result<(i64, bool)> {
        if let Some(id) = store.open_incident_of(rule)? {
            self.track_peaks(store, id, full, Some(severity))?;
            return Ok((id, false));
        }
        let peaks = Peaks::opening(full, values);
        let peak_json = peaks.to_json();
        let culprits = culprits_of(full, 3);
        let id = store.open_incident(
            &NewIncident {
                rule,
                rule_file: file,
                severity,
                title,
                summary,
                opened_ms: full.ts_ms,
                peak_json: &peak_json,
            },
            &culprits,
        )?;
        self.peaks.insert(id, peaks);
        let mut linked: Vec<i64> = self.pre_trigger.sample_ids().collect();
        linked.extend(sample_id);
        store.link_samples(id, &linked)?;
        let top = culprits
            .iter()
            .find(|c| c.resource == Resource::Cpu)
            .map(|c| format!("; top CPU: {} (pid {}) at {:.0}%", c.name, c.pid, c.value))
            .unwrap_or_default();
        tracing::warn!("incident {id} opened by rule {rule}: {title}{top}; see: hogtrap show {id}");
        Ok((id, true))
    }

    /// Every open incident: links this sample (`sample_id`) and tracks its peaks. Forgets
    /// the peaks of incidents no longer open.
    pub(super) fn track_open_incidents(
        &mut self,
        store: &mut Store,
        full: &Sample,
        sample_id: i64,
    ) {
        let listed = store.open_incidents();
        let Some(open) = self.health.note(super::health::Step::OpenIncidents, listed) else {
            return;
        };
        self.peaks.retain(|id, _| open.iter().any(|(o, _)| o == id));
        for (incident, _) in open {
            let linked = store.link_samples(incident, &[sample_id]);
            self.health.note(super::health::Step::LinkSamples, linked);
            let tracked = self.track_peaks(store, incident, full, None);
            self.health.note(super::health::Step::UpdatePeaks, tracked);
        }
    }

    /// Keeps the highest value of each tracked number of incident `id`; writes `peak_json` only
    /// when a peak changed, `updated_ms` (and `severity`, if given) every time.
    fn track_peaks(
        &mut self,
        store: &mut Store,
        id: i64,
        s: &Sample,
        severity: Option<Severity>,
    ) -> crate::store::Result<()> {
        let peaks = match self.peaks.entry(id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(Peaks::from_json(&store.peak_json(id)?)),
        };
        peaks.track(s);
        write_peaks(store, id, peaks, s.ts_ms, severity)
    }
}

fn write_peaks(
    store: &mut Store,
    id: i64,
    peaks: &mut Peaks,
    updated_ms: TimestampMs,
    severity: Option<Severity>,
) -> crate::store::Result<()> {
    if peaks.unsaved {
        store.update_incident(id, updated_ms, &peaks.to_json(), severity)?;
        peaks.unsaved = false;
        Ok(())
    } else {
        store.touch_incident(id, updated_ms, severity)
    }
}

/// The peaks of one open incident, as its `peak_json` holds them.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Peaks {
    values: BTreeMap<String, serde_json::Value>,
    /// Changed since the store last took them.
    unsaved: bool,
}

impl Peaks {
    /// An incident's first peaks: the sample's host values and the rule's numbers.
    fn opening(s: &Sample, rule_values: &serde_json::Value) -> Peaks {
        let mut values = host_values(s);
        merge_numbers(&mut values, rule_values);
        Peaks {
            values,
            unsaved: false,
        }
    }

    /// Peaks as stored; what is not a JSON object counts as none.
    fn from_json(text: &str) -> Peaks {
        let stored: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
        let values = match stored {
            serde_json::Value::Object(o) => o.into_iter().collect(),
            _ => BTreeMap::new(),
        };
        Peaks {
            values,
            unsaved: false,
        }
    }

    /// Keeps the higher of each host value of `s` and its peak (a value with no numeric peak
    /// takes its place).
    fn track(&mut self, s: &Sample) {
        for (k, v) in host_values(s) {
            let higher = match (self.values.get(&k).and_then(|p| p.as_f64()), v.as_f64()) {
                (Some(p), Some(n)) => n > p,
                _ => true,
            };
            if higher && self.values.get(&k) != Some(&v) {
                self.values.insert(k, v);
                self.unsaved = true;
            }
        }
    }

    fn to_json(&self) -> String {
        serde_json::Value::Object(self.values.clone().into_iter().collect()).to_string()
    }
}

/// The host values an incident tracks the peaks of.
fn host_values(s: &Sample) -> BTreeMap<String, serde_json::Value> {
    let h = &s.host;
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: f64| {
        if let Some(n) = serde_json::Number::from_f64((v * 100.0).round() / 100.0) {
            m.insert(k.to_string(), serde_json::Value::Number(n));
        }
    };
    put("load1", h.load1);
    put("load1_per_cpu", h.load1 / s.cpu_count.max(1) as f64);
    put("cpu_busy_pct", 100.0 - h.cpu_idle_pct);
    put("cpu_iowait_pct", h.cpu_iowait_pct);
    put("mem_used_bytes", h.mem_used_bytes as f64);
    put("swap_used_bytes", h.swap_used_bytes as f64);
    if let Some(p) = h.psi_cpu {
        put("psi_cpu_some_avg10", p.some_avg10);
    }
    if let Some(p) = h.psi_memory {
        put("psi_mem_some_avg10", p.some_avg10);
    }
    if let Some(p) = h.psi_io {
        put("psi_io_some_avg10", p.some_avg10);
    }
    m
}

/// Adds the top-level numeric fields of a rule's values to `m`; nested tables and values
/// that are not numbers are left out.
fn merge_numbers(m: &mut BTreeMap<String, serde_json::Value>, v: &serde_json::Value) {
    if let serde_json::Value::Object(o) = v {
        for (k, val) in o {
            if val.is_number() {
                m.insert(k.clone(), val.clone());
            }
        }
    }
}
