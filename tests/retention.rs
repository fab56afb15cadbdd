//! Retention against a month of history built by code (tests/support/history.rs): exact
//! counts by age and level, pinned incident windows, an open incident, the size cap; and,
//! through the real binary, a large prune while the daemon records every second.

mod support;

use std::time::Duration;

use hogtrap::store::retention::{self, LevelFilter, PrunePolicy, Pruner, RetentionPolicy};
use rusqlite::Connection;
use support::history::{
    self, count, day_start, Incidents, BASELINE_PER_DAY, DAY, DETAIL_PER_DAY, HOUR, MINUTE,
};

const DAYS: i64 = 30;

fn now() -> i64 {
    "2026-11-26T00:00:00Z"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond()
}

fn settings() -> RetentionPolicy {
    RetentionPolicy {
        baseline: Duration::from_secs(14 * 86_400),
        detail: Duration::from_secs(3 * 86_400),
        incidents: Duration::from_secs(21 * 86_400),
        incident_margin: Duration::from_secs(600),
        max_size_bytes: 1 << 30,
        batch_rows: 5000,
        top_processes: 2,
        downsample: Some((Duration::from_secs(7 * 86_400), Duration::from_secs(600))),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    incidents: Incidents,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("month.db");
    let incidents = history::build(&path, now(), DAYS);
    Fixture {
        _dir: dir,
        path,
        incidents,
    }
}

fn pruner(f: &Fixture, s: RetentionPolicy) -> Pruner {
    let mut p = Pruner::open(&f.path, s, Duration::from_secs(5)).unwrap();
    p.pause_ratio = 0.0;
    p
}

/// Samples of `level` whose age is in [younger, older) days.
fn by_age(c: &Connection, level: i64, older_days: i64, younger_days: i64) -> i64 {
    c.query_row(
        "SELECT count(*) FROM sample WHERE level = ?1 AND ts_ms >= ?2 AND ts_ms < ?3",
        [level, now() - older_days * DAY, now() - younger_days * DAY],
        |r| r.get(0),
    )
    .unwrap()
}

/// What the open incident holds: its window's samples and rows, and its linked samples.
fn open_incident_rows(c: &Connection, f: &Fixture) -> (i64, i64, i64, i64, i64) {
    let from = now() - 36 * HOUR - 10 * MINUTE;
    let q = |sql: &str| {
        c.query_row(sql, [from], |r| r.get::<_, i64>(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    };
    (
        q("SELECT count(*) FROM sample WHERE ts_ms >= ?1"),
        q("SELECT count(*) FROM process_sample WHERE sample_id IN (SELECT id FROM sample WHERE ts_ms >= ?1)"),
        q("SELECT count(*) FROM process_detail WHERE sample_id IN (SELECT id FROM sample WHERE ts_ms >= ?1)"),
        q("SELECT count(*) FROM connection WHERE sample_id IN (SELECT id FROM sample WHERE ts_ms >= ?1)"),
        c.query_row(
            "SELECT count(*) FROM incident_sample x JOIN sample s ON s.id = x.sample_id
             WHERE x.incident_id = ?1",
            [f.incidents.open_36h],
            |r| r.get(0),
        )
        .unwrap(),
    )
}

fn no_dangling_rows(c: &Connection) {
    for sql in [
        "SELECT count(*) FROM process_sample WHERE sample_id NOT IN (SELECT id FROM sample)",
        "SELECT count(*) FROM process_detail WHERE sample_id NOT IN (SELECT id FROM sample)",
        "SELECT count(*) FROM connection WHERE sample_id NOT IN (SELECT id FROM sample)",
        "SELECT count(*) FROM incident_sample WHERE sample_id NOT IN (SELECT id FROM sample)",
        "SELECT count(*) FROM process_sample WHERE process_id NOT IN (SELECT id FROM process)",
        "SELECT count(*) FROM process WHERE id NOT IN (SELECT process_id FROM process_sample)",
    ] {
        assert_eq!(count(c, sql), 0, "{sql}");
    }
}

#[test]
fn retention_keeps_exact_counts_by_age_and_level() {
    let f = fixture();
    let c = Connection::open(&f.path).unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM sample"), 54_000);
    let open_before = open_incident_rows(&c, &f);
    let a_day = day_start(now(), DAYS, DAYS - 20);
    let a_window = |c: &Connection| {
        c.query_row(
            "SELECT count(*) FROM sample WHERE ts_ms BETWEEN ?1 AND ?2",
            [
                a_day + 2 * HOUR + 50 * MINUTE,
                a_day + 3 * HOUR + 40 * MINUTE,
            ],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
    };
    assert_eq!(a_window(&c), 51);

    // The dry run says what the real run then does.
    let plan = retention::plan(&c, &settings(), None, now(), &mut |_| true).unwrap();
    let mut p = pruner(&f, settings());
    let done = p.run_retention(now(), &mut |_| true).unwrap();
    assert!(done.complete);

    // Older than 14 days: only incident A's pinned window (51 baseline samples) is left;
    // incident B's window expired (closed 25 days ago, `incidents` = 21 days).
    assert_eq!(by_age(&c, 0, 99, 14), 51);
    assert_eq!(by_age(&c, 1, 99, 14), 0);
    assert_eq!(a_window(&c), 51);
    // 7 to 14 days: thinned to one per 10 minutes (144 a day; on day 20 three buckets are all
    // incident C's pinned window, which keeps its 31 baseline and 181 detail samples as
    // they were); the 39 bucket keepers that were detail samples are baseline now.
    assert_eq!(by_age(&c, 0, 14, 7), 6 * 144 + 141 + 31);
    assert_eq!(by_age(&c, 1, 14, 7), 181);
    // 3 to 7 days: every sample, detail ones made baseline.
    assert_eq!(by_age(&c, 0, 7, 3), 4 * (1440 + 360));
    assert_eq!(by_age(&c, 1, 7, 3), 0);
    // The last 3 days: untouched.
    assert_eq!(by_age(&c, 0, 3, 0), 3 * 1440);
    assert_eq!(by_age(&c, 1, 3, 0), 3 * 360);

    // Child rows went with their samples; made-baseline samples keep the top 2 processes.
    assert_eq!(count(&c, "SELECT count(*) FROM sample"), 13_868);
    assert_eq!(
        count(&c, "SELECT count(*) FROM process_sample"),
        153 + (997 * 3 + 39 * 2) + 181 * 12 + (5760 * 3 + 1440 * 2) + (4320 * 3 + 1080 * 12)
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM process_detail"),
        (181 + 1080) * 12
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM connection"),
        (181 + 1080) * 2
    );
    // A's 31 linked samples and the open incident's 2; B's 21 went with its samples.
    assert_eq!(count(&c, "SELECT count(*) FROM incident_sample"), 33);
    // Identities: init, sshd, job-D of the 15 days with samples left, and the workers still
    // referred to: the top 2 on days with made-baseline samples, all 9 where detail is kept.
    assert_eq!(
        count(&c, "SELECT count(*) FROM process"),
        2 + 15 + (6 * 2 + 9 + 4 * 2 + 3 * 9)
    );
    no_dangling_rows(&c);

    // The open incident is untouched.
    assert_eq!(open_incident_rows(&c, &f), open_before);
    assert_eq!(open_before.4, 2);

    // Reported, logged, and planned alike.
    // Older than 14 days (`baseline`): days 0 to 15 of the fixture, `DAYS - 14` whole days. All
    // their samples went but incident A's 51 pinned baseline ones (asserted above): that is
    // 16 * 1440 - 51 = 22_989 baseline and 16 * 360 = 5760 detail samples.
    let old_days = DAYS - 14;
    assert_eq!(
        done.rows_for("older than 14d", "sample"),
        (old_days * BASELINE_PER_DAY - 51 + old_days * DETAIL_PER_DAY) as u64
    );
    assert_eq!(done.rows_for("thinned", "sample"), 11_383);
    assert_eq!(done.rows_for("made baseline", "sample"), 39 + 1440);
    assert_eq!(done.kept.detail_samples, 181 + 1080);
    assert_eq!(done.kept.baseline_samples, 13_868 - 1261);
    assert_eq!(done.kept.pinned_samples, 51 + 31 + 181);
    assert_eq!(done.kept.open_incident_samples as i64, open_before.0 + 2);
    let logged = count(
        &c,
        "SELECT sum(rows) FROM prune_log WHERE tbl = 'sample' AND reason NOT LIKE '%level changed%'",
    );
    assert_eq!(logged, 54_000 - 13_868);
    for r in &done.removed {
        let planned = plan
            .removed
            .iter()
            .find(|p| p.reason == r.reason && p.table == r.table && p.action == r.action)
            .map(|p| p.rows);
        if r.table != "process" {
            assert_eq!(planned, Some(r.rows), "{r:?}");
        }
    }
    assert_eq!(plan.kept, done.kept);
    let again = p.run_retention(now(), &mut |_| true).unwrap();
    assert_eq!(
        again.rows("sample"),
        0,
        "a second run changes nothing: {again:?}"
    );
    let check: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

/// The seed's "drop samples older than a day whose load stayed under 1.4", as a rule runs it.
#[test]
fn seed_policy_drops_calm_day_old_samples_only() {
    let f = fixture();
    let c = Connection::open(&f.path).unwrap();
    let open_before = open_incident_rows(&c, &f);
    let seed = PrunePolicy {
        name: "low_load".into(),
        older_than: Duration::from_secs(86_400),
        level: LevelFilter::Any,
        load_below: Some(1.4),
        keep_incidents: true,
    };
    let plan = retention::plan(&c, &settings(), Some(&seed), now(), &mut |_| true).unwrap();
    let mut p = pruner(&f, settings());
    let done = p.run_policy(&seed, now(), &mut |_| true).unwrap();
    assert_eq!(plan.rows("sample"), done.rows("sample"));

    // Every sample of the last day stays, and every busy (01:00–01:59) sample.
    assert_eq!(by_age(&c, 0, 1, 0), 1440);
    assert_eq!(by_age(&c, 1, 1, 0), 360);
    assert_eq!(
        count(&c, "SELECT count(*) FROM sample WHERE load1 >= 1.4"),
        30 * 60
    );
    // Day 28: the busy hour, and the open incident's window from 11:50 with its 2 linked
    // pre-trigger samples.
    assert_eq!(by_age(&c, 0, 2, 1), 60 + 730 + 2);
    assert_eq!(by_age(&c, 1, 2, 1), 360);
    // Older: the busy hours, and the pinned windows of incidents A (51) and C (31 + 181).
    assert_eq!(by_age(&c, 0, 99, 2), 28 * 60 + 51 + 31);
    assert_eq!(by_age(&c, 1, 99, 2), 181);
    assert_eq!(done.rows("sample"), 39_206 + 9_899);
    assert_eq!(count(&c, "SELECT count(*) FROM sample"), 3_994 + 901);
    assert_eq!(open_incident_rows(&c, &f), open_before);
    no_dangling_rows(&c);
    assert_eq!(
        count(
            &c,
            "SELECT sum(rows) FROM prune_log WHERE policy = 'low_load' AND tbl = 'sample'"
        ),
        39_206 + 9_899
    );

    // Without keep_incidents the closed windows go too; the open incident still stays.
    let all = PrunePolicy {
        keep_incidents: false,
        ..seed
    };
    let done = p.run_policy(&all, now(), &mut |_| true).unwrap();
    assert_eq!(done.rows("sample"), 51 + 31 + 181);
    assert_eq!(open_incident_rows(&c, &f), open_before);
}

/// `level = detail`: only detail samples go; pinned and open windows stay.
#[test]
fn a_detail_only_policy_leaves_baseline_alone() {
    let f = fixture();
    let c = Connection::open(&f.path).unwrap();
    let policy = PrunePolicy {
        level: LevelFilter::Detail,
        ..PrunePolicy::older_than("detail_1d", Duration::from_secs(86_400))
    };
    let done = pruner(&f, settings())
        .run_policy(&policy, now(), &mut |_| true)
        .unwrap();
    // 29 days of detail hours, less incident C's 181 and the open incident's 360.
    assert_eq!(done.rows("sample"), 29 * 360 - 181 - 360);
    assert_eq!(done.rows("process_detail"), (29 * 360 - 181 - 360) * 12);
    assert_eq!(
        count(&c, "SELECT count(*) FROM sample WHERE level = 0"),
        43_200
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM sample WHERE level = 1"),
        360 + 181 + 360
    );
    // The workers of the 27 days without kept detail samples are gone.
    assert_eq!(count(&c, "SELECT count(*) FROM process"), 302 - 27 * 9);
    no_dangling_rows(&c);
}

#[test]
fn size_cap_takes_the_oldest_unpinned_first_and_shrinks_the_file() {
    let f = fixture();
    let c = Connection::open(&f.path).unwrap();
    let open_before = open_incident_rows(&c, &f);
    let file_before = std::fs::metadata(&f.path).unwrap().len();
    let cap = file_before * 6 / 10;
    // Age rules that remove nothing: only the cap acts.
    let s = RetentionPolicy {
        baseline: Duration::from_secs(365 * 86_400),
        detail: Duration::from_secs(365 * 86_400),
        incidents: Duration::from_secs(365 * 86_400),
        max_size_bytes: cap,
        downsample: None,
        ..settings()
    };
    let mut p = pruner(&f, s);
    let done = p.run_retention(now(), &mut |_| true).unwrap();
    drop(p);
    let file_after = std::fs::metadata(&f.path).unwrap().len();
    assert!(
        file_after <= cap,
        "file {file_after} bytes after vacuum, cap {cap} (was {file_before})"
    );
    assert!(done.size.used_bytes_after <= cap);
    assert!(done.rows_for("oldest unpinned", "sample") > 0);
    assert_eq!(done.rows_for("closed incident", "sample"), 0);
    // Oldest first: every unpinned sample left is newer than every one removed.
    let removed_to: i64 = c
        .query_row(
            "SELECT max(to_ms) FROM prune_log WHERE policy = 'size_cap' AND tbl = 'sample'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let oldest_left: i64 = c
        .query_row(
            "SELECT min(ts_ms) FROM sample s WHERE NOT EXISTS (
                SELECT 1 FROM incident i WHERE s.ts_ms BETWEEN i.opened_ms - 600000
                AND coalesce(i.closed_ms + 600000, 9e18))
             AND id NOT IN (SELECT sample_id FROM incident_sample)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(removed_to <= oldest_left, "{removed_to} > {oldest_left}");
    // Pinned windows outlast older unpinned data; the open incident is untouched.
    let a_day = day_start(now(), DAYS, DAYS - 20);
    assert_eq!(
        count(
            &c,
            &format!(
                "SELECT count(*) FROM sample WHERE ts_ms BETWEEN {} AND {}",
                a_day + 2 * HOUR + 50 * MINUTE,
                a_day + 3 * HOUR + 40 * MINUTE
            )
        ),
        51
    );
    assert_eq!(open_incident_rows(&c, &f), open_before);
    no_dangling_rows(&c);
    let check: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

/// A cap so small that only the open incident's data fits: closed windows go (after the
/// unpinned data), the open incident never.
#[test]
fn size_cap_never_touches_an_open_incident() {
    let f = fixture();
    let c = Connection::open(&f.path).unwrap();
    let open_before = open_incident_rows(&c, &f);
    let s = RetentionPolicy {
        baseline: Duration::from_secs(365 * 86_400),
        detail: Duration::from_secs(365 * 86_400),
        incidents: Duration::from_secs(365 * 86_400),
        max_size_bytes: 1 << 20,
        downsample: None,
        ..settings()
    };
    let mut p = pruner(&f, s);
    let done = p.run_retention(now(), &mut |_| true).unwrap();
    assert!(done.rows_for("closed incident", "sample") > 0, "{done:?}");
    assert_eq!(open_incident_rows(&c, &f), open_before);
    assert_eq!(
        count(&c, "SELECT count(*) FROM sample"),
        open_before.0 + 2,
        "only the open incident's samples are left"
    );
    assert!(
        !done.notes.is_empty(),
        "the run says it could not reach the cap"
    );
}

/// Today's midnight, UTC: the end of a fixture month that the real clock prunes.
fn midnight_today() -> i64 {
    let now = jiff::Timestamp::now().as_millisecond();
    now - now.rem_euclid(DAY)
}

#[test]
fn prune_command_says_what_goes_then_does_it() {
    use support::recorder::Daemon;
    let d = Daemon::prepare("[retention]\nbaseline = \"14d\"\ndetail = \"3d\"\n");
    history::build(&d.db, midnight_today(), DAYS);
    let plan: serde_json::Value =
        serde_json::from_str(&d.ok(&["prune", "--dry-run", "--json"])).unwrap();
    assert_eq!(plan["dry_run"], true);
    let c = Connection::open(&d.db).unwrap();
    assert_eq!(
        count(&c, "SELECT count(*) FROM sample"),
        54_000,
        "a dry run changes nothing"
    );
    let table = d.ok(&["prune", "--dry-run"]);
    for want in [
        "WHAT GOES",
        "WHAT STAYS",
        "older than 14d",
        "process_sample",
        "made baseline",
    ] {
        assert!(table.contains(want), "{want}: {table}");
    }
    let done: serde_json::Value = serde_json::from_str(&d.ok(&["prune", "--json"])).unwrap();
    assert_eq!(done["dry_run"], false);
    let sum = |v: &serde_json::Value, table: &str| -> i64 {
        v["removed"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["table"] == table && r["action"] == "delete")
            .map(|r| r["rows"].as_i64().unwrap())
            .sum()
    };
    // The clock is real: between the dry run and the run, the age lines move. Every fixture
    // timestamp sits on a 10 s step (detail) or a minute (baseline), so the two runs must agree
    // exactly when their `now` falls in the same 10 s step; otherwise by no more than what
    // those steps could have aged past the lines (a sample and its rows per step).
    let (plan_now, done_now) = (
        plan["now_ms"].as_i64().unwrap(),
        done["now_ms"].as_i64().unwrap(),
    );
    let steps = done_now.div_euclid(10_000) - plan_now.div_euclid(10_000);
    for (t, per_sample) in [
        ("sample", 1),
        ("process_sample", history::DETAIL_ROWS),
        ("process_detail", history::DETAIL_ROWS),
        ("connection", history::DETAIL_CONNECTIONS),
    ] {
        let drift = sum(&done, t) - sum(&plan, t);
        assert!(
            (0..=2 * steps * per_sample).contains(&drift),
            "{t}: the run removed {drift} more than the plan over {steps} 10 s steps"
        );
    }
    assert!(sum(&done, "sample") > 20_000);
    assert_eq!(
        count(&c, "SELECT count(*) FROM sample"),
        54_000 - sum(&done, "sample")
    );
    // What stays moves with the same steps: a sample that aged past a line between the two
    // runs is removed (or made baseline) by the run and was kept by the plan.
    let kept = |v: &serde_json::Value, k: &str| v["kept"][k].as_i64().unwrap();
    for k in plan["kept"].as_object().unwrap().keys() {
        let drift = kept(&plan, k) - kept(&done, k);
        assert!(
            drift.abs() <= 2 * steps,
            "kept {k}: the plan kept {} and the run {} over {steps} 10 s steps",
            kept(&plan, k),
            kept(&done, k)
        );
    }
    // Again: only what aged past the line since (the clock is real).
    let again: serde_json::Value = serde_json::from_str(&d.ok(&["prune", "--json"])).unwrap();
    assert!(sum(&again, "sample") <= 5, "{again}");
}

/// A month of history, pruned to its last day by the daemon's own retention thread while it
/// records every second: no sample is late, none is missed.
#[test]
fn a_large_prune_delays_no_sample() {
    use support::recorder::Daemon;
    let mut d = Daemon::prepare(
        "[sampler]\ninterval = \"1s\"\n\n[retention]\nbaseline = \"1d\"\ndetail = \"1d\"\n",
    );
    history::build(&d.db, midnight_today(), DAYS);
    d.spawn();
    let t = std::time::Instant::now();
    let prune = loop {
        let v = d.sql_json(
            "SELECT from_ms, to_ms, count, message FROM recorder_event WHERE kind = 'prune'",
        );
        if let Some(row) = v.as_array().unwrap().first() {
            break row.clone();
        }
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "no prune recorded; daemon log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let from = prune["from_ms"].as_i64().unwrap();
    let to = prune["to_ms"].as_i64().unwrap();
    assert!(
        to - from >= 3000,
        "the prune took {} ms: too short to prove anything ({prune})",
        to - from
    );
    assert!(prune["count"].as_i64().unwrap() > 40_000, "{prune}");
    std::thread::sleep(Duration::from_millis(2500));

    let first: i64 = d
        .scalar("SELECT min(s.ts_ms) FROM sample s JOIN host h ON h.id = s.host_id WHERE h.name <> 'fixture'")
        .as_i64()
        .unwrap();
    assert!(first < from, "the daemon sampled before the prune began");
    let rows = d.sql_json(&format!(
        "SELECT s.ts_ms, s.late_ms FROM sample s JOIN host h ON h.id = s.host_id
         WHERE h.name <> 'fixture' AND s.ts_ms BETWEEN {} AND {} ORDER BY s.ts_ms",
        from - 1000,
        to + 1000
    ));
    let rows = rows.as_array().unwrap();
    let secs = (to - from) / 1000;
    eprintln!(
        "prune ran {} ms ({}); {} samples meanwhile, latest {} ms late",
        to - from,
        prune["message"],
        rows.len(),
        rows.iter()
            .map(|r| r["late_ms"].as_i64().unwrap())
            .max()
            .unwrap_or(0)
    );
    assert!(
        rows.len() as i64 > secs,
        "{} samples in the {secs} s the prune ran",
        rows.len()
    );
    for r in rows {
        let late = r["late_ms"].as_i64().unwrap();
        assert!(late < 500, "a sample {late} ms late during the prune");
    }
    support::assert_no_hole(rows, 1500, "during the prune");
    let gaps = d.scalar(&format!(
        "SELECT count(*) FROM recorder_event WHERE kind IN ('gap', 'dropped') AND from_ms >= {first}"
    ));
    assert_eq!(gaps, 0, "{}", d.log());
    // The file shrank and is sound.
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "file {} bytes, WAL {} bytes, freelist {}",
        size(&d.db),
        size(&d.db.with_extension("db-wal")),
        d.scalar("PRAGMA freelist_count")
    );
    assert!(
        size(&d.db) < 5 << 20,
        "a month pruned to a day still takes {} bytes",
        size(&d.db)
    );
    assert_eq!(d.scalar("PRAGMA integrity_check"), "ok");
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

/// The cap is enforced between full runs too: after SIGHUP lowers it, the daemon's next size
/// check (every 10 s) brings the file under it, oldest unpinned data first.
#[test]
fn the_daemon_keeps_the_store_under_a_lowered_cap() {
    use support::recorder::Daemon;
    let d = Daemon::prepare(
        "[sampler]\ninterval = \"1s\"\n\n[retention]\nbaseline = \"60d\"\ndetail = \"60d\"\nmax_size = \"64MiB\"\n",
    );
    let month = history::build(&d.db, midnight_today(), DAYS);
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let before = size(&d.db);
    assert!(before > 16 << 20, "fixture of {before} bytes");
    let mut d = d;
    d.spawn();
    d.wait_samples(54_002, Duration::from_secs(30));
    // The first full run (5 s after start) finds nothing to do under 64 MiB.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        d.scalar("SELECT count(*) FROM recorder_event WHERE kind = 'prune'"),
        0
    );
    let open_window = format!(
        "SELECT count(*) FROM sample WHERE ts_ms >= {}",
        midnight_today() - 36 * HOUR - 10 * MINUTE
    );
    let open_before = d.scalar(&open_window).as_i64().unwrap();

    let cfg = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, cfg.replace("\"64MiB\"", "\"8MiB\"")).unwrap();
    d.signal(libc::SIGHUP);
    let t = std::time::Instant::now();
    while size(&d.db) > 8 << 20 {
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "still {} bytes; log:\n{}",
            size(&d.db),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let ev = d.sql_json("SELECT message FROM recorder_event WHERE kind = 'prune'");
    assert!(
        ev[0]["message"].as_str().unwrap().starts_with("size_cap"),
        "{ev}"
    );
    // Oldest first: the oldest fixture days went, the last day and the open incident stayed.
    assert!(d.scalar(&open_window).as_i64().unwrap() >= open_before);
    let linked = d.scalar(&format!(
        "SELECT count(*) FROM incident_sample x JOIN sample s ON s.id = x.sample_id WHERE x.incident_id = {}",
        month.open_36h
    ));
    assert_eq!(linked, 2);
    let oldest: i64 = d.scalar("SELECT min(ts_ms) FROM sample").as_i64().unwrap();
    assert!(oldest > midnight_today() - 30 * DAY, "nothing old went");
    assert_eq!(d.scalar("PRAGMA integrity_check"), "ok");
}

/// The shipped `rules/prune_low_load.lua` (the seed's `DELETE FROM savetop WHERE Load<1.4`,
/// for samples older than a day) through the rule engine, on the same month of data: the
/// action it returns prunes exactly what the policy above prunes.
#[test]
fn the_seeds_pruning_as_a_shipped_rule() {
    use hogtrap::rules::{Action, Engine, RuleSource, RulesConfig};
    let f = fixture();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/prune_low_load.lua");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut engine = Engine::load(RulesConfig::default(), vec![RuleSource { path, text }]).unwrap();
    let sample = hogtrap::model::Sample {
        ts_ms: now(),
        host_name: "h".into(),
        cpu_count: 2,
        ..Default::default()
    };
    let eval = engine.evaluate(&sample);
    let action = eval
        .firings
        .iter()
        .flat_map(|f| f.actions.iter())
        .find(|a| matches!(a, Action::Prune { .. }))
        .unwrap_or_else(|| panic!("the rule did not prune: {eval:?}"));
    let Action::Prune {
        policy,
        older_than,
        load_below,
        keep_incidents,
        dry_run,
    } = action
    else {
        unreachable!()
    };
    assert!(!dry_run);
    let p = hogtrap::actions::prune_policy(policy, *older_than, *load_below, *keep_incidents)
        .expect("an age");
    assert_eq!(p.older_than, Duration::from_secs(86_400));
    assert_eq!(p.load_below, Some(1.4));
    let c = Connection::open(&f.path).unwrap();
    let open_before = open_incident_rows(&c, &f);
    let done = pruner(&f, settings())
        .run_policy(&p, now(), &mut |_| true)
        .unwrap();
    assert_eq!(done.rows("sample"), 39_206 + 9_899);
    assert_eq!(count(&c, "SELECT count(*) FROM sample"), 3_994 + 901);
    assert_eq!(
        count(&c, "SELECT count(*) FROM sample WHERE load1 >= 1.4"),
        30 * 60
    );
    assert_eq!(open_incident_rows(&c, &f), open_before);
}
