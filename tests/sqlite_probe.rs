//! SQLite targets against real files: outages with the right reason and a duration within
//! one interval of the truth, isolation of slow targets, /probe, reload.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{TestExporter, eventually, tempdir};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};

const WAIT: Duration = Duration::from_secs(10);

async fn create_db(path: &Path) {
    let mut c = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    sqlx::query("CREATE TABLE IF NOT EXISTS app (id INTEGER PRIMARY KEY)")
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
}

fn target(name: &str, path: &Path, interval: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    kind: sqlite\n    path: {}\n    interval: {interval}\n{extra}",
        path.display()
    )
}

fn config(targets: &[String]) -> String {
    format!("targets:\n{}", targets.concat())
}

async fn up(e: &TestExporter, name: &str) -> Option<f64> {
    e.metrics().await.get("dbvigil_up", &[("target", name)])
}

async fn wait_state(e: &TestExporter, name: &str, want: f64) {
    eventually(WAIT, &format!("{name} up == {want}"), || async {
        (up(e, name).await == Some(want)).then_some(())
    })
    .await;
}

async fn last_reason(e: &TestExporter, name: &str) -> Option<String> {
    e.target_json(name).await["last_probe"]["error"]["reason"]
        .as_str()
        .map(str::to_owned)
}

/// The one closed episode of a target: (reason, duration in seconds).
async fn only_episode(e: &TestExporter, name: &str) -> (String, f64) {
    let t = e.target_json(name).await;
    let episodes = t["episodes"].as_array().unwrap();
    assert_eq!(episodes.len(), 1, "expected one outage episode: {t:#}");
    let ep = &episodes[0];
    (
        ep["reason"].as_str().unwrap().to_owned(),
        ep["duration_seconds"].as_f64().unwrap(),
    )
}

/// A measured outage must be within one probe interval (plus a little for the probe's own
/// run time) of what the test itself measured.
fn assert_within_one_interval(measured: f64, truth: Duration, interval: Duration) {
    let slack = interval.as_secs_f64() + 0.05;
    assert!(
        (measured - truth.as_secs_f64()).abs() <= slack,
        "outage measured {measured:.3}s, truth {:.3}s, allowed difference {slack:.3}s",
        truth.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_file_is_a_not_found_outage_and_its_replacement_a_new_identity() {
    let dir = tempdir();
    let db = dir.path().join("app.db");
    create_db(&db).await;
    let e = TestExporter::start(dir.path(), &config(&[target("app", &db, "100ms", "")])).await;
    wait_state(&e, "app", 1.0).await;
    let backup = dir.path().join("backup.db");
    std::fs::copy(&db, &backup).unwrap();

    std::fs::remove_file(&db).unwrap();
    let gone = Instant::now();
    wait_state(&e, "app", 0.0).await;
    assert_eq!(last_reason(&e, "app").await.as_deref(), Some("not_found"));
    let m = e.metrics().await;
    assert_eq!(m.value("dbvigil_outages_total", &[("target", "app")]), 1.0);
    assert!(
        m.value(
            "dbvigil_current_outage_duration_seconds",
            &[("target", "app")]
        ) > 0.0
    );
    assert!(
        m.value(
            "dbvigil_probe_failures_total",
            &[("target", "app"), ("reason", "not_found")]
        ) >= 1.0
    );

    // The outage itself: keep the file away for about a second.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    std::fs::rename(&backup, &db).unwrap();
    let truth = gone.elapsed();
    wait_state(&e, "app", 1.0).await;

    let (reason, measured) = only_episode(&e, "app").await;
    assert_eq!(reason, "not_found");
    assert_within_one_interval(measured, truth, Duration::from_millis(100));
    let m = e.metrics().await;
    assert_eq!(
        m.value(
            "dbvigil_current_outage_duration_seconds",
            &[("target", "app")]
        ),
        0.0
    );
    assert_eq!(
        m.value(
            "dbvigil_outage_duration_seconds_count",
            &[("target", "app")]
        ),
        1.0
    );
    assert!(
        (m.value("dbvigil_last_outage_duration_seconds", &[("target", "app")]) - measured).abs()
            < 1e-6
    );
    // The restored file is another inode: the database was replaced under the same path.
    assert_eq!(
        m.value("dbvigil_identity_changes_total", &[("target", "app")]),
        1.0
    );
    e.stop().await;
}

/// Makes a file read-only even for root (immutable attribute), or by mode for other users.
struct ReadOnlyFile(PathBuf);

impl ReadOnlyFile {
    fn set(path: &Path) -> Option<ReadOnlyFile> {
        let root = unsafe { libc::geteuid() } == 0;
        let ok = if root {
            std::process::Command::new("chattr")
                .arg("+i")
                .arg(path)
                .status()
                .is_ok_and(|s| s.success())
        } else {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444)).is_ok()
        };
        ok.then(|| ReadOnlyFile(path.to_owned()))
    }

    fn clear(&self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o644));
    }
}

impl Drop for ReadOnlyFile {
    fn drop(&mut self) {
        self.clear();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_file_fails_writes_with_read_only_while_reads_succeed() {
    let dir = tempdir();
    let db = dir.path().join("app.db");
    create_db(&db).await;
    let e = TestExporter::start(dir.path(), &config(&[target("app", &db, "100ms", "")])).await;
    wait_state(&e, "app", 1.0).await;
    assert_eq!(
        e.metrics()
            .await
            .value("dbvigil_read_only", &[("target", "app")]),
        0.0
    );

    let Some(guard) = ReadOnlyFile::set(&db) else {
        assert!(
            !common::servers::ci(),
            "cannot make a file read-only here (chattr failed)"
        );
        eprintln!("SKIPPED: cannot make a file read-only here (chattr +i failed)");
        return;
    };
    let started = Instant::now();
    wait_state(&e, "app", 0.0).await;
    let m = e.metrics().await;
    assert_eq!(m.value("dbvigil_read_only", &[("target", "app")]), 1.0);
    assert_eq!(
        m.value(
            "dbvigil_check_success",
            &[("target", "app"), ("check", "read")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "dbvigil_check_success",
            &[("target", "app"), ("check", "connect")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "dbvigil_check_success",
            &[("target", "app"), ("check", "write")]
        ),
        0.0
    );
    assert_eq!(last_reason(&e, "app").await.as_deref(), Some("read_only"));

    tokio::time::sleep(Duration::from_millis(500)).await;
    guard.clear();
    let truth = started.elapsed();
    wait_state(&e, "app", 1.0).await;
    assert_eq!(
        e.metrics()
            .await
            .value("dbvigil_read_only", &[("target", "app")]),
        0.0
    );
    let (reason, measured) = only_episode(&e, "app").await;
    assert_eq!(reason, "read_only");
    assert_within_one_interval(measured, truth, Duration::from_millis(100));
    e.stop().await;
}

/// Holds an exclusive lock on the database until dropped or released.
async fn lock_exclusively(path: &Path) -> SqliteConnection {
    let mut c = SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut c)
        .await
        .unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_file_is_a_locked_outage() {
    let dir = tempdir();
    let db = dir.path().join("app.db");
    create_db(&db).await;
    let e = TestExporter::start(dir.path(), &config(&[target("app", &db, "200ms", "")])).await;
    wait_state(&e, "app", 1.0).await;

    let mut lock = lock_exclusively(&db).await;
    let started = Instant::now();
    wait_state(&e, "app", 0.0).await;
    assert_eq!(last_reason(&e, "app").await.as_deref(), Some("locked"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    let truth = started.elapsed();
    wait_state(&e, "app", 1.0).await;
    let (reason, measured) = only_episode(&e, "app").await;
    assert_eq!(reason, "locked");
    assert_within_one_interval(measured, truth, Duration::from_millis(200));
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_target_delays_neither_another_target_nor_a_scrape() {
    let dir = tempdir();
    let slow_db = dir.path().join("slow.db");
    let fast_db = dir.path().join("fast.db");
    create_db(&slow_db).await;
    create_db(&fast_db).await;
    // Every probe of `slow` waits most of its 3 s timeout for the lock.
    let _lock = lock_exclusively(&slow_db).await;
    let e = TestExporter::start(
        dir.path(),
        &config(&[
            target("slow", &slow_db, "3s", ""),
            target("fast", &fast_db, "100ms", ""),
        ]),
    )
    .await;
    wait_state(&e, "fast", 1.0).await;

    let fast_before = e
        .metrics()
        .await
        .value("dbvigil_probes_total", &[("target", "fast")]);
    let window = Instant::now();
    let mut slowest_scrape = Duration::ZERO;
    while window.elapsed() < Duration::from_secs(2) {
        let t = Instant::now();
        let m = e.metrics().await;
        slowest_scrape = slowest_scrape.max(t.elapsed());
        assert!(m.has("dbvigil_up"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = e.metrics().await;
    let fast_probes = m.value("dbvigil_probes_total", &[("target", "fast")]) - fast_before;
    // 20 slots in 2 s; allow for a loaded machine but not for being held up by `slow`.
    assert!(
        fast_probes >= 12.0,
        "fast target probed only {fast_probes} times in 2 s"
    );
    assert!(
        slowest_scrape < Duration::from_millis(500),
        "a scrape took {slowest_scrape:?} while another target hung"
    );
    // `slow` was genuinely hung meanwhile: at most one of its probes has finished.
    assert!(
        m.get("dbvigil_probes_total", &[("target", "slow")])
            .unwrap()
            <= 1.0
    );
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_endpoint_runs_one_probe_for_a_configured_name_only() {
    let dir = tempdir();
    let db = dir.path().join("app.db");
    create_db(&db).await;
    let missing = dir.path().join("missing.db");
    let e = TestExporter::start(
        dir.path(),
        &config(&[
            target("app", &db, "1s", "    labels: {team: web}\n"),
            target("gone", &missing, "1s", ""),
        ]),
    )
    .await;

    let r = e
        .get_with(
            "/probe?target=app",
            &[("Accept", "application/openmetrics-text")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(r.body.ends_with("# EOF\n"));
    let m = common::Metrics::parse(&r.body.replace("# EOF\n", ""));
    assert_eq!(
        m.value(
            "dbvigil_probe_success",
            &[("target", "app"), ("team", "web")]
        ),
        1.0
    );
    assert_eq!(
        m.value("dbvigil_probe_check_success", &[("check", "write")]),
        1.0
    );
    assert!(m.has("dbvigil_probe_server_info"));
    // Only this probe's metrics: nothing of the continuous state, nothing of other targets.
    assert!(!m.has("dbvigil_up") && !m.has("dbvigil_probes_total"));
    assert!(
        m.samples
            .iter()
            .all(|(_, l, _)| l.iter().any(|(k, v)| k == "target" && v == "app"))
    );

    let r = e.get("/probe?target=gone").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let m = common::Metrics::parse(&r.body);
    assert_eq!(m.value("dbvigil_probe_success", &[]), 0.0);
    assert_eq!(
        m.value("dbvigil_probe_failure_info", &[("reason", "not_found")]),
        1.0
    );

    let r = e.get("/probe?target=postgres://user:pw@db:5432/x").await;
    assert_eq!(r.status, 400);
    assert!(
        r.body
            .contains("accepts only configured target names (app, gone)"),
        "{}",
        r.body
    );
    let r = e.get("/probe").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        "missing ?target=NAME: name one of the configured targets: app, gone\n"
    );
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_a_valid_file_and_keeps_running_on_an_invalid_one() {
    let dir = tempdir();
    let a = dir.path().join("a.db");
    let b = dir.path().join("b.db");
    create_db(&a).await;
    create_db(&b).await;
    let e = TestExporter::start(dir.path(), &config(&[target("a", &a, "100ms", "")])).await;
    wait_state(&e, "a", 1.0).await;
    // Enough history that a counter reset by the reload could not catch up in the moment
    // the reload and b's first probe take.
    let probes = || async {
        e.metrics()
            .await
            .value("dbvigil_probes_total", &[("target", "a")])
    };
    eventually(WAIT, "a probed five times", || async {
        (probes().await >= 5.0).then_some(())
    })
    .await;

    std::fs::write(
        &e.config_path,
        config(&[target("a", &a, "100ms", ""), target("b", &b, "100ms", "")]),
    )
    .unwrap();
    let r = e.post("/-/reload").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        "configuration reloaded: 1 targets kept, 1 started, 0 stopped\n"
    );
    wait_state(&e, "b", 1.0).await;
    let probes_a = e
        .metrics()
        .await
        .value("dbvigil_probes_total", &[("target", "a")]);
    assert!(
        probes_a >= 5.0,
        "the kept target keeps its history across the reload ({probes_a} probes)"
    );

    std::fs::write(
        &e.config_path,
        "targets:\n  - name: a\n    kind: sqlite\n    paht: x\n",
    )
    .unwrap();
    let r = e.post("/-/reload").await;
    assert_eq!(r.status, 500);
    assert!(
        r.body
            .starts_with("configuration reload failed, the previous configuration keeps running: ")
    );
    assert!(
        r.body.contains("dbvigil.yml:4:5: unknown field `paht`"),
        "{}",
        r.body
    );
    let m = e.metrics().await;
    assert_eq!(m.value("dbvigil_config_last_reload_successful", &[]), 0.0);
    assert_eq!(
        m.value("dbvigil_up", &[("target", "b")]),
        1.0,
        "old configuration still probing"
    );
    let before = m.value("dbvigil_probes_total", &[("target", "a")]);
    eventually(
        WAIT,
        "target a still probed after a failed reload",
        || async {
            (e.metrics()
                .await
                .value("dbvigil_probes_total", &[("target", "a")])
                > before)
                .then_some(())
        },
    )
    .await;

    std::fs::write(&e.config_path, config(&[target("b", &b, "100ms", "")])).unwrap();
    let r = e.post("/-/reload").await;
    assert_eq!(
        r.body,
        "configuration reloaded: 1 targets kept, 0 started, 1 stopped\n"
    );
    let m = e.metrics().await;
    assert_eq!(m.value("dbvigil_config_last_reload_successful", &[]), 1.0);
    assert!(
        m.get("dbvigil_up", &[("target", "a")]).is_none(),
        "removed target's series are gone"
    );
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_configured_target_has_its_series_from_the_first_scrape() {
    let dir = tempdir();
    let db = dir.path().join("app.db");
    create_db(&db).await;
    // At a 60 s interval the schedule's stagger (a hash of the name) puts target `app`'s
    // first probe about 52 s after start, so this scrape certainly precedes it.
    let e = TestExporter::start(
        dir.path(),
        &config(&[target("app", &db, "60s", "    timeout: 1s\n")]),
    )
    .await;
    let m = e.metrics().await;
    assert_eq!(m.value("dbvigil_probes_total", &[("target", "app")]), 0.0);
    assert!(m.value("dbvigil_up", &[("target", "app")]).is_nan());
    for reason in ["timeout", "not_found", "locked", "read_only", "query", "io"] {
        assert_eq!(
            m.value(
                "dbvigil_probe_failures_total",
                &[("target", "app"), ("reason", reason)]
            ),
            0.0
        );
    }
    assert_eq!(m.value("dbvigil_outages_total", &[("target", "app")]), 0.0);
    assert_eq!(
        m.value(
            "dbvigil_phase_duration_seconds_count",
            &[("target", "app"), ("phase", "connect")]
        ),
        0.0
    );
    assert_eq!(
        m.value("dbvigil_probe_interval_seconds", &[("target", "app")]),
        60.0
    );
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_table_holds_one_row_per_target_and_instance() {
    let dir = tempdir();
    let db = dir.path().join("app.db");
    create_db(&db).await;
    let e = TestExporter::start(
        dir.path(),
        &config(&[
            target("one", &db, "100ms", ""),
            target("two", &db, "100ms", "    connection: reuse\n"),
        ]),
    )
    .await;
    eventually(WAIT, "ten probes of each target", || async {
        let m = e.metrics().await;
        (m.value("dbvigil_probes_total", &[("target", "one")]) >= 10.0
            && m.value("dbvigil_probes_total", &[("target", "two")]) >= 10.0)
            .then_some(())
    })
    .await;
    e.stop().await;
    let mut c = SqliteConnectOptions::new()
        .filename(&db)
        .connect()
        .await
        .unwrap();
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT target, instance, seq FROM dbvigil_heartbeat ORDER BY target")
            .fetch_all(&mut c)
            .await
            .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_str()),
        ("one", "test-instance")
    );
    assert_eq!(rows[1].0, "two");
    assert!(
        rows.iter().all(|r| r.2 >= 10),
        "each row was updated in place: {rows:?}"
    );
}

/// A reload whose new state store does not answer changes nothing: not the targets, not
/// the store, not the running configuration; it reports failure (it used to log the error,
/// keep the new `state.url` in the running configuration and answer 200).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_whose_state_store_cannot_be_opened_changes_nothing() {
    let dir = tempdir();
    let a = dir.path().join("a.db");
    let b = dir.path().join("b.db");
    create_db(&a).await;
    create_db(&b).await;
    let e = TestExporter::start(dir.path(), &config(&[target("a", &a, "100ms", "")])).await;
    wait_state(&e, "a", 1.0).await;
    let store_before = e.exporter.maintenance().store_description();

    let bad_store = format!(
        "{}state:\n  url: postgres://keeper:hunter2@127.0.0.1:1/windows\n",
        config(&[target("a", &a, "100ms", ""), target("b", &b, "100ms", "")])
    );
    std::fs::write(&e.config_path, bad_store).unwrap();
    let r = e.post("/-/reload").await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(
        r.body.contains("cannot switch the maintenance state store"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("hunter2"), "{}", r.body);
    let m = e.metrics().await;
    assert_eq!(m.value("dbvigil_config_last_reload_successful", &[]), 0.0);
    assert!(
        m.get("dbvigil_up", &[("target", "b")]).is_none(),
        "the new target must not start"
    );
    assert!(e.exporter.config().state.url.is_none());
    assert_eq!(e.exporter.maintenance().store_description(), store_before);
    e.stop().await;
}

/// Every scrape shows one configuration: while reloads swap two configurations back and
/// forth, no scrape mixes the targets of one with the groups of the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_never_mixes_two_reloads() {
    let dir = tempdir();
    let (one, two) = (dir.path().join("one.db"), dir.path().join("two.db"));
    create_db(&one).await;
    create_db(&two).await;
    let generation = |name: &str, path: &Path| {
        format!(
            "{}groups:\n  - name: g-{name}\n    members: [{name}]\n    eligibility: connectable\n",
            config(&[target(name, path, "1s", "")])
        )
    };
    let (a, b) = (generation("one", &one), generation("two", &two));
    let e = TestExporter::start(dir.path(), &a).await;
    let until = Instant::now() + Duration::from_secs(3);
    let reloads = async {
        let mut n = 0;
        while Instant::now() < until {
            let yaml = if n % 2 == 0 { &b } else { &a };
            std::fs::write(&e.config_path, yaml).unwrap();
            e.exporter
                .reload()
                .await
                .expect("both configurations are valid");
            n += 1;
        }
        n
    };
    let scrapes = async {
        let mut n = 0;
        while Instant::now() < until {
            let m = e.metrics().await;
            let labels_of = |family: &str, label: &str| -> Vec<String> {
                m.samples
                    .iter()
                    .filter(|(name, _, _)| name == family)
                    .filter_map(|(_, l, _)| l.iter().find(|(k, _)| k == label))
                    .map(|(_, v)| v.clone())
                    .collect()
            };
            let targets = labels_of("dbvigil_target_info", "target");
            let groups = labels_of("dbvigil_group_eligible_members", "group");
            assert_eq!(targets.len(), 1, "{targets:?}");
            assert_eq!(
                groups,
                vec![format!("g-{}", targets[0])],
                "targets {targets:?} of one configuration, groups of another"
            );
            n += 1;
        }
        n
    };
    let (reloaded, scraped) = tokio::join!(reloads, scrapes);
    assert!(
        reloaded >= 10 && scraped >= 10,
        "{reloaded} reloads, {scraped} scrapes"
    );
    e.stop().await;
}

async fn heartbeat_seq(path: &Path) -> Option<i64> {
    let mut c = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .ok()?;
    sqlx::query_scalar("SELECT seq FROM dbvigil_heartbeat WHERE target = 'app'")
        .fetch_optional(&mut c)
        .await
        .ok()
        .flatten()
}

/// A file put back from a backup (made with sqlite3's own `.backup`) no longer holds the
/// heartbeats written since: they are reported as lost, within the one write that may have
/// gone to the replaced file while it was swapped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_restored_from_a_backup_reports_the_acknowledged_writes_it_lost() {
    let Some(sqlite3) = common::servers::find_program("sqlite3") else {
        common::servers::skip_or_fail("sqlite3 is not installed (apt-get install sqlite3)");
        return;
    };
    let dir = tempdir();
    let db = dir.path().join("app.db");
    let backup = dir.path().join("backup.db");
    create_db(&db).await;
    let e = TestExporter::start(dir.path(), &config(&[target("app", &db, "100ms", "")])).await;
    wait_state(&e, "app", 1.0).await;
    eventually(WAIT, "a few heartbeats", || async {
        heartbeat_seq(&db).await.filter(|s| *s >= 3)
    })
    .await;
    let status = std::process::Command::new(&sqlite3)
        .arg(&db)
        .arg(format!(".backup '{}'", backup.display()))
        .status()
        .unwrap();
    assert!(status.success(), "sqlite3 .backup failed");
    let kept = heartbeat_seq(&backup)
        .await
        .expect("the backup holds the row");
    let acknowledged = eventually(WAIT, "more heartbeats after the backup", || async {
        heartbeat_seq(&db).await.filter(|s| *s >= kept + 5)
    })
    .await;
    std::fs::rename(&backup, &db).unwrap();
    let lost = eventually(WAIT, "the loss is reported", || async {
        let m = e.metrics().await;
        let lost = m.value("dbvigil_writes_lost_total", &[("target", "app")]);
        (lost > 0.0).then_some(lost)
    })
    .await;
    let least = (acknowledged - kept) as f64;
    assert!(
        (least..=least + 1.0).contains(&lost),
        "heartbeats {kept} to {acknowledged} (or one more) were lost; reported {lost}"
    );
    e.stop().await;
}
