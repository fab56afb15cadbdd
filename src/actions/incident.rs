//! Incidents: opening a rule's incident, or updating the open one, and its peaks.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Actions;
use crate::model::Sample;
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
        severity: &str,
        title: &str,
        summary: &str,
        full: &Arc<Sample>,
        sample_id: Option<i64>,
        values: &serde_json::Value,
    ) -> crate::store::Result<(i64, bool)> {
        if let Some(id) = store.open_incident_of(rule)? {
            update_peaks(store, id, full, Some(severity))?;
            return Ok((id, false));
        }
        let mut peak = host_values(full);
        merge_numbers(&mut peak, values);
        let peak_json = serde_json::Value::Object(peak.into_iter().collect()).to_string();
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
        let mut linked: Vec<i64> = self.ring.iter().map(|k| k.sample_id).collect();
        linked.extend(sample_id);
        store.link_samples(id, &linked)?;
        let top = culprits
            .iter()
            .find(|c| c.resource == "cpu")
            .map(|c| format!("; top CPU: {} (pid {}) at {:.0}%", c.name, c.pid, c.value))
            .unwrap_or_default();
        tracing::warn!("incident {id} opened by rule {rule}: {title}{top}; see: hogtrap show {id}");
        Ok((id, true))
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

/// Adds the numeric fields of a rule's values (and of nested tables, dotted) to `m`.
fn merge_numbers(m: &mut BTreeMap<String, serde_json::Value>, v: &serde_json::Value) {
    if let serde_json::Value::Object(o) = v {
        for (k, val) in o {
            if val.is_number() {
                m.insert(k.clone(), val.clone());
            }
        }
    }
}

/// Keeps the highest value of each tracked number in the incident's `peak_json`.
pub(super) fn update_peaks(
    store: &mut Store,
    id: i64,
    s: &Sample,
    severity: Option<&str>,
) -> crate::store::Result<()> {
    let old: serde_json::Value = serde_json::from_str(&store.peak_json(id)?).unwrap_or_default();
    let mut peak: BTreeMap<String, serde_json::Value> = match old {
        serde_json::Value::Object(o) => o.into_iter().collect(),
        _ => BTreeMap::new(),
    };
    for (k, v) in host_values(s) {
        let higher = match (peak.get(&k).and_then(|p| p.as_f64()), v.as_f64()) {
            (Some(p), Some(n)) => n > p,
            _ => true,
        };
        if higher {
            peak.insert(k, v);
        }
    }
    let json = serde_json::Value::Object(peak.into_iter().collect()).to_string();
    store.update_incident(id, s.ts_ms, &json, severity)
}
