//! Incidents to Debian's Alertmanager (clustering off), through the durable outbox: a burner
//! trips the shipped cpu_hog rule, Alertmanager shows the alert active with the culprit and
//! `hogtrap show N`; after the burner is killed it resolves. With Alertmanager down when the
//! incident opens, the alert arrives once it is back, across a daemon restart too.

mod support;

use std::time::Duration;

use support::fleet::{isolated_daemon, stop_isolated, Alertmanager};
use support::recorder::Daemon;
use support::wait_until;

fn config(am: &Alertmanager) -> String {
    format!(
        "[sampler]\ninterval = \"1s\"\n\n\
         [alerts]\nretry_initial = \"1s\"\nretry_max = \"2s\"\n\n\
         [export.alertmanager]\nurls = [\"{}\"]\nresend_every = \"5s\"\nresolved_for = \"1m\"\n\n\
         [rules.cpu_hog]\nthreshold = 5\n",
        am.url()
    )
}

/// The shipped cpu_hog rule, its threshold lowered from 90 % to 5 % of a CPU in the config
/// (`[rules.cpu_hog] threshold = 5`), in a PID
/// namespace with one burner: these tests show delivery to Alertmanager, not the threshold
/// (tests/cpu_hog_alerts.rs does), and a burner on a machine busy with builds may not get
/// 90 % of a CPU. Creating `stop` in the returned directory stops the burner.
fn start(am: &Alertmanager) -> (Daemon, tempfile::TempDir, Vec<String>) {
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/cpu_hog.lua"),
    )
    .unwrap();
    isolated_daemon(&config(am), &[("cpu_hog.lua", &shipped)], "hogtest-am", 1)
}

/// The cpu_hog alert Alertmanager lists, if any.
fn cpu_hog(am: &Alertmanager) -> Option<serde_json::Value> {
    am.alerts()
        .into_iter()
        .find(|a| a["labels"]["alertname"] == "cpu_hog")
}

fn incident_id(d: &Daemon) -> Option<i64> {
    d.try_sql_json("SELECT id FROM incident WHERE rule = 'cpu_hog' ORDER BY id DESC LIMIT 1")
        .and_then(|v| v[0]["id"].as_i64())
}

fn assert_names_the_burner(alert: &serde_json::Value, id: i64) {
    assert_eq!(alert["status"]["state"], "active", "{alert:#}");
    assert_eq!(alert["labels"]["source"], "hogtrap", "{alert:#}");
    assert_eq!(alert["labels"]["severity"], "warning", "{alert:#}");
    assert!(alert["labels"]["instance"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    let summary = alert["annotations"]["summary"].as_str().unwrap_or("");
    assert!(summary.contains("hogtest-am"), "{alert:#}");
    assert_eq!(
        alert["annotations"]["command"],
        format!("hogtrap show {id}"),
        "{alert:#}"
    );
    assert_eq!(
        alert["annotations"]["incident_id"],
        id.to_string(),
        "{alert:#}"
    );
}

#[test]
fn a_burner_fires_in_alertmanager_and_resolves_when_killed() {
    let am = Alertmanager::start();
    let (d, dir, _) = start(&am);
    d.wait_samples(2, Duration::from_secs(30));

    let alert = d.wait_for(
        "cpu_hog active in Alertmanager",
        Duration::from_secs(90),
        || cpu_hog(&am).filter(|a| a["status"]["state"] == "active"),
    );
    let id = incident_id(&d).expect("the incident");
    assert_names_the_burner(&alert, id);

    std::fs::write(dir.path().join("stop"), "").unwrap();
    let closed = d.wait_for("the incident closes", Duration::from_secs(60), || {
        d.try_sql_json(&format!("SELECT closed_ms FROM incident WHERE id = {id}"))
            .and_then(|v| v[0]["closed_ms"].as_i64())
    });
    assert!(
        wait_until(Duration::from_secs(30), || cpu_hog(&am).is_none()),
        "still listed after the incident closed at {closed}: {:#?}",
        cpu_hog(&am)
    );
    let rows = d.sql_json(&format!(
        "SELECT kind, status FROM alert WHERE channel = 'alertmanager' AND incident_id = {id} \
         ORDER BY id"
    ));
    assert_eq!(
        rows,
        serde_json::json!([{"kind": "fire", "status": "sent"}, {"kind": "clear", "status": "sent"}])
    );
}

#[test]
fn an_alertmanager_that_was_down_gets_the_alert_across_a_daemon_restart() {
    let mut am = Alertmanager::start();
    am.stop();
    let (mut d, _dir, prefix) = start(&am);
    d.wait_samples(2, Duration::from_secs(30));

    // The incident opens while Alertmanager is down: its alert waits in the outbox, retried.
    let id = d.wait_for(
        "a failed attempt at the alertmanager alert",
        Duration::from_secs(90),
        || {
            d.try_sql_json(
                "SELECT incident_id FROM alert WHERE channel = 'alertmanager' AND kind = 'fire' \
             AND status = 'pending' AND attempts >= 1",
            )
            .and_then(|v| v[0]["incident_id"].as_i64())
        },
    );
    stop_isolated(&mut d);
    assert_eq!(
        d.scalar("SELECT count(*) FROM recorder_event WHERE kind = 'stop'"),
        1,
        "the daemon stopped cleanly: {}",
        d.log()
    );

    am.restart();
    d.spawn_with_prefix(&prefix.iter().map(String::as_str).collect::<Vec<_>>());
    let alert = d.wait_for(
        "cpu_hog in Alertmanager after the restart",
        Duration::from_secs(60),
        || cpu_hog(&am).filter(|a| a["status"]["state"] == "active"),
    );
    assert_names_the_burner(&alert, id);
}
