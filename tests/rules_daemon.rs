//! Rules through the real daemon: the shipped CPU-hog rule end to end, rule state across a
//! restart, SIGHUP with a broken rule.

mod support;

use std::time::Duration;

use support::recorder::{Daemon, Workload};

const ONE_SECOND: &str = "[sampler]\ninterval = \"1s\"\n\n[escalation]\npre_trigger = \"30s\"\n";

fn incidents(d: &Daemon) -> Vec<serde_json::Value> {
    let o = d.cli(&["incidents", "--json"]);
    if !o.status.success() {
        return Vec::new(); // the store is not there yet
    }
    serde_json::from_slice::<serde_json::Value>(&o.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

#[test]
fn cpu_hog_opens_an_incident_naming_the_burner_captures_and_closes() {
    let d = Daemon::start_with_shipped_rules(ONE_SECOND, &["cpu_hog.lua"]);
    d.wait_samples(3, Duration::from_secs(30));
    let burner = Workload::cpu_burner("hogtest-burn");
    let started = jiff::Timestamp::now().as_millisecond();

    let incident = d.wait_for("the cpu_hog incident", Duration::from_secs(60), || {
        incidents(&d).into_iter().find(|i| i["rule"] == "cpu_hog")
    });
    let id = incident["id"].as_i64().unwrap();
    let opened = incident["opened_ms"].as_i64().unwrap();
    // It fired after its 20 s hold, not before.
    assert!(
        opened - started >= 19_000,
        "fired {} ms after the burner started",
        opened - started
    );
    assert!(
        incident["title"].as_str().unwrap().contains("hogtest-burn"),
        "{incident}"
    );

    let story: serde_json::Value =
        serde_json::from_str(&d.ok(&["show", &id.to_string(), "--json"])).unwrap();
    let top_cpu = &story["culprits"][0];
    assert_eq!(top_cpu["resource"], "cpu");
    assert_eq!(top_cpu["name"], "hogtest-burn");
    assert_eq!(top_cpu["pid"], burner.pid());

    // Detail rows for the pre-trigger window and for the capture.
    d.wait_for(
        "detail samples after the firing",
        Duration::from_secs(10),
        || {
            let n = d.scalar(&format!(
                "SELECT count(*) FROM incident_sample i JOIN sample s ON s.id = i.sample_id
             WHERE i.incident_id = {id} AND s.level = 1 AND s.ts_ms > {opened}"
            ));
            (n.as_i64().unwrap() >= 2).then_some(())
        },
    );
    let before = d.scalar(&format!(
        "SELECT count(*) FROM incident_sample i JOIN sample s ON s.id = i.sample_id
         WHERE i.incident_id = {id} AND s.level = 1 AND s.ts_ms < {opened}"
    ));
    assert!(
        before.as_i64().unwrap() >= 10,
        "pre-trigger detail samples: {before}"
    );
    // A detail sample holds every process, not only the top ones.
    let rows = d.sql_json(&format!(
        "SELECT s.procs_total AS total, (SELECT count(*) FROM process_sample ps
           WHERE ps.sample_id = s.id) AS kept
         FROM incident_sample i JOIN sample s ON s.id = i.sample_id
         WHERE i.incident_id = {id} AND s.level = 1 ORDER BY s.ts_ms DESC LIMIT 1"
    ));
    let (total, kept) = (
        rows[0]["total"].as_i64().unwrap(),
        rows[0]["kept"].as_i64().unwrap(),
    );
    assert!(
        kept as f64 >= total as f64 * 0.9,
        "detail kept {kept} of {total}"
    );
    let detail_extras = d.scalar("SELECT count(*) FROM process_detail");
    assert!(detail_extras.as_i64().unwrap() > 0);

    drop(burner);
    let killed = jiff::Timestamp::now().as_millisecond();
    let closed = d.wait_for("the incident to close", Duration::from_secs(40), || {
        let i = incidents(&d).into_iter().find(|i| i["id"] == id)?;
        i["closed_ms"].as_i64()
    });
    assert!(
        closed - killed >= 9_000,
        "closed {} ms after the kill",
        closed - killed
    );

    let text = d.ok(&["show", &id.to_string()]);
    for want in [
        "cpu_hog",
        "hogtest-burn",
        "closed",
        "Culprits",
        "Timeline",
        "(before)",
        "Captures",
    ] {
        assert!(text.contains(want), "show lacks {want:?}:\n{text}");
    }
    // No sample was missed while all this happened.
    let gaps = d.scalar("SELECT count(*) FROM recorder_event WHERE kind IN ('gap', 'dropped')");
    assert_eq!(gaps, 0);
}

const ALWAYS: &str = r#"
rule { name = "always", severity = "info", hold = "0s",
       when = function(s) return s.load1 >= 0 end }
"#;

const SLOW_HOLD: &str = r#"
rule { name = "slow_hold", severity = "info", hold = "30s",
       when = function(s) return true end }
"#;

#[test]
fn a_pending_hold_survives_a_restart() {
    let mut d =
        Daemon::start_with_rules("[sampler]\ninterval = \"1s\"\n", &[("slow.lua", SLOW_HOLD)]);
    let since = d.wait_for("the rule to be pending", Duration::from_secs(20), || {
        let v =
            d.try_sql_json("SELECT status, since_ms FROM rule_state WHERE rule = 'slow_hold'")?;
        let row = v.get(0)?;
        (row["status"] == "pending").then(|| row["since_ms"].as_i64().unwrap())
    });
    // Let it sit pending for about 20 s of its 30 s hold, then restart.
    std::thread::sleep(Duration::from_millis(
        (since + 20_000 - jiff::Timestamp::now().as_millisecond()).max(0) as u64,
    ));
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
    d.spawn();
    let restarted = jiff::Timestamp::now().as_millisecond();
    let incident = d.wait_for("the firing after restart", Duration::from_secs(25), || {
        incidents(&d).into_iter().find(|i| i["rule"] == "slow_hold")
    });
    let opened = incident["opened_ms"].as_i64().unwrap();
    assert!(
        opened - restarted < 15_000,
        "the hold started over: fired {} ms after the restart",
        opened - restarted
    );
    assert!(
        opened - since >= 29_000,
        "fired early: {} ms",
        opened - since
    );
}

#[test]
fn sighup_with_a_broken_rule_keeps_the_running_rules() {
    let d = Daemon::start_with_rules("[sampler]\ninterval = \"1s\"\n", &[("always.lua", ALWAYS)]);
    d.wait_for("the good rule to fire", Duration::from_secs(20), || {
        incidents(&d).into_iter().find(|i| i["rule"] == "always")
    });
    std::fs::write(
        d.rules_dir().join("broken.lua"),
        "rule { name = 'x', when = ",
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    d.wait_for("the refusal in the log", Duration::from_secs(10), || {
        d.log().contains("reload refused").then_some(())
    });
    assert!(d.log().contains("broken.lua"), "{}", d.log());
    // The old rule set still runs: the open incident keeps getting samples.
    let linked = |d: &Daemon| {
        d.scalar("SELECT count(*) FROM incident_sample")
            .as_i64()
            .unwrap()
    };
    let n = linked(&d);
    d.wait_for(
        "samples still linked to the incident",
        Duration::from_secs(10),
        || (linked(&d) >= n + 2).then_some(()),
    );
    let st = d.scalar("SELECT status FROM rule_state WHERE rule = 'always'");
    assert_eq!(st, "firing");
}
