//! Roles against real standbys: a PostgreSQL streaming standby (`pg_basebackup -R`) and a
//! MariaDB replica are read-only by design. A `standby` or `either` target on one is up,
//! is never asked to write (its server logs no refused writes) and reads 0 on its `write`
//! check, so a `writable` failover group does not choose it until it is promoted; a
//! failover through a moment with no eligible member is one switch. A `primary` target on
//! a standby is down with reason `read_only`. A `replica_of` target reports the real age
//! of the primary's replicated heartbeat, which grows while replication is stopped.
//!
//! Before roles, a standby in a writable group carried the write check: it was down with an
//! open `read_only` outage, and a failover counted two switches.
//!
//! The tests of this file run one at a time: each runs two servers and probes every
//! 300 ms, and asserts that the standby's probes never fail, which two such tests at once
//! on a two-core machine could turn into a timeout.

mod common;

use std::time::{Duration, Instant};

use common::db::{WAIT, block, wait_up};
use common::servers::{MariaDbServer, PgServer, test_certs};
use common::{Metrics, TestExporter, eventually, tempdir};

const INTERVAL: Duration = Duration::from_millis(300);

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A server target for the `probe` login over TLS (verify-full), every check.
fn target(name: &str, kind: &str, port: u16, extra: &str) -> String {
    format!(
        "  - name: {name}\n    kind: {kind}\n    host: 127.0.0.1\n    port: {port}\n    user: probe\n    \
         password: probe-pw\n    database: app\n    tls: {{mode: verify-full, ca_file: {ca}}}\n    \
         interval: {}ms\n    checks: [tcp, connect, read, write]\n{extra}",
        INTERVAL.as_millis(),
        ca = test_certs().ca_file.display()
    )
}

/// A primary with the `probe` login owning database `app`, and its streaming standby.
fn pg_pair() -> Option<(PgServer, PgServer)> {
    let primary = block(PgServer::start)?;
    block(|| {
        primary
            .psql("CREATE ROLE probe LOGIN PASSWORD 'probe-pw'; CREATE DATABASE app OWNER probe;")
    });
    let standby = block(|| PgServer::start_standby_of(&primary));
    block(|| standby.wait_replay_caught_up(&primary));
    assert!(block(|| standby.is_in_recovery()));
    Some((primary, standby))
}

async fn value(e: &TestExporter, name: &str, target: &str) -> f64 {
    e.metrics().await.value(name, &[("target", target)])
}

/// Waits until `target` has run `n` more probes than now.
async fn more_probes(e: &TestExporter, target: &str, n: f64) {
    let from = value(e, "dbvigil_probes_total", target).await;
    eventually(WAIT, &format!("{n} more probes of {target}"), || async {
        (value(e, "dbvigil_probes_total", target).await >= from + n).then_some(())
    })
    .await;
}

/// `dbvigil_probe_failures_total` of `target` by reason (every reason is exported from
/// the start).
fn failures(m: &Metrics, target: &str) -> Vec<(String, f64)> {
    m.samples
        .iter()
        .filter(|(n, l, _)| {
            n == "dbvigil_probe_failures_total"
                && l.iter().any(|(k, v)| k == "target" && v == target)
        })
        .map(|(_, l, v)| {
            let reason = l.iter().find(|(k, _)| k == "reason").unwrap().1.clone();
            (reason, *v)
        })
        .collect()
}

/// A target standing by: up, never an outage, no failed probe of any reason, read-only,
/// its write check 0 (not asked to write), its other checks 1.
fn assert_standing_by(m: &Metrics, target: &str, why: &str) {
    let t = [("target", target)];
    assert_eq!(m.value("dbvigil_up", &t), 1.0, "{target} up ({why})");
    assert_eq!(
        m.value("dbvigil_outages_total", &t),
        0.0,
        "{target} outages ({why})"
    );
    assert_eq!(
        m.value("dbvigil_current_outage_duration_seconds", &t),
        0.0,
        "{target} current outage ({why})"
    );
    let f = failures(m, target);
    assert!(f.len() >= 10, "every reason is exported: {f:?}");
    assert!(
        f.iter().all(|(_, v)| *v == 0.0),
        "{target} failed probes ({why}): {f:?}"
    );
    assert_eq!(
        m.value("dbvigil_read_only", &t),
        1.0,
        "{target} read-only ({why})"
    );
    let check = |c: &str| m.value("dbvigil_check_success", &[("target", target), ("check", c)]);
    assert_eq!(check("write"), 0.0, "{target} write check ({why})");
    for c in ["tcp", "connect", "read"] {
        assert_eq!(check(c), 1.0, "{target} {c} check ({why})");
    }
}

async fn active(e: &TestExporter, group: &str) -> (u16, String) {
    let r = e.get(&format!("/groups/{group}/active")).await;
    (r.status, r.body.trim().to_owned())
}

async fn switches(e: &TestExporter, group: &str) -> f64 {
    e.metrics()
        .await
        .value("dbvigil_group_switches_total", &[("group", group)])
}

/// The server log of a [`PgServer`] (the harness writes it beside the data directory).
fn pg_log(server: &PgServer) -> String {
    let data = block(|| server.psql("SHOW data_directory"));
    let log = std::path::Path::new(&data)
        .parent()
        .unwrap()
        .join("postgres.log");
    std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_standby_in_a_writable_group_is_up_and_its_promotion_is_one_switch() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let t0 = Instant::now();
    let Some((mut primary, standby)) = pg_pair() else {
        return;
    };
    let yaml = format!(
        "targets:\n{}{}groups:\n  - name: orders\n    members: [pg-a, pg-b]\n    \
         fail_after: 2\n    recover_after: 2\n",
        target("pg-a", "postgres", primary.port(), ""),
        target("pg-b", "postgres", standby.port(), ""),
    );
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &yaml).await;

    // 1. Healthy: the primary is active; the standby is up, read-only, and not writing.
    eventually(WAIT, "orders active == pg-a", || async {
        (active(&e, "orders").await == (200, "pg-a".to_owned())).then_some(())
    })
    .await;
    wait_up(&e, "pg-b", 1.0).await;
    more_probes(&e, "pg-b", 4.0).await;
    let m = e.metrics().await;
    assert_standing_by(&m, "pg-b", "healthy standby");
    for member in ["pg-a", "pg-b"] {
        assert_eq!(
            m.get(
                "dbvigil_target_info",
                &[("target", member), ("kind", "postgres"), ("role", "either")]
            ),
            Some(1.0),
            "{member}: a group member's role defaults to either"
        );
    }
    assert_eq!(
        m.value(
            "dbvigil_group_member_eligible",
            &[("group", "orders"), ("member", "pg-b")]
        ),
        0.0
    );
    assert_eq!(
        m.value(
            "dbvigil_check_success",
            &[("target", "pg-a"), ("check", "write")]
        ),
        1.0
    );
    assert_eq!(m.value("dbvigil_read_only", &[("target", "pg-a")]), 0.0);
    assert_eq!(switches(&e, "orders").await, 0.0);
    let r = e.get("/targets/pg-b/writable").await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("read_only"), "{}", r.body);
    let r = e.get("/targets/pg-b/readable").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let j = e.target_json("pg-b").await;
    let identity = j["identity"]["key"].as_str().unwrap().to_owned();
    assert!(identity.contains("timeline=1 "), "{identity}");
    // The standby was never asked to write: its server refused nothing.
    let log = pg_log(&standby);
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("read-only transaction"))
        .collect();
    assert!(
        refused.is_empty(),
        "the standby's server log has refused writes:\n{}",
        refused.join("\n")
    );

    // 2. The primary stops: after fail_after probes no member is eligible (the standby is
    // still read-only); the standby stays up.
    block(|| primary.stop());
    eventually(WAIT, "orders has no eligible member", || async {
        (active(&e, "orders").await.0 == 503).then_some(())
    })
    .await;
    let m = e.metrics().await;
    assert_eq!(
        m.value("dbvigil_group_no_eligible_member", &[("group", "orders")]),
        1.0
    );
    assert_eq!(m.value("dbvigil_up", &[("target", "pg-a")]), 0.0);
    more_probes(&e, "pg-b", 2.0).await;
    assert_standing_by(&e.metrics().await, "pg-b", "primary stopped");

    // 3. The standby is promoted: it takes the write, becomes eligible and active. That
    // is one switch (pg-a to pg-b), through the moment with no eligible member.
    block(|| standby.promote());
    let promoted = Instant::now();
    eventually(WAIT, "orders active == pg-b", || async {
        (active(&e, "orders").await == (200, "pg-b".to_owned())).then_some(())
    })
    .await;
    let took = promoted.elapsed();
    assert_eq!(switches(&e, "orders").await, 1.0);
    more_probes(&e, "pg-b", 4.0).await;
    let m = e.metrics().await;
    let t = [("target", "pg-b")];
    assert_eq!(
        m.value("dbvigil_group_switches_total", &[("group", "orders")]),
        1.0,
        "a failover is one switch"
    );
    assert_eq!(m.value("dbvigil_identity_changes_total", &t), 1.0);
    assert_eq!(m.value("dbvigil_up", &t), 1.0);
    assert_eq!(m.value("dbvigil_read_only", &t), 0.0);
    assert_eq!(
        m.value(
            "dbvigil_check_success",
            &[("target", "pg-b"), ("check", "write")]
        ),
        1.0
    );
    // A counter: 0 now means no outage ever, promotion included.
    assert_eq!(m.value("dbvigil_outages_total", &t), 0.0);
    let f = failures(&m, "pg-b");
    assert!(
        f.iter().all(|(_, v)| *v == 0.0),
        "pg-b failed probes: {f:?}"
    );
    assert_eq!(e.get("/targets/pg-b/writable").await.status, 200);
    let after = e.target_json("pg-b").await["identity"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(identity.replace("timeline=1 ", "timeline=2 "), after);
    let g: serde_json::Value =
        serde_json::from_str(&e.get("/api/v1/groups/orders").await.body).unwrap();
    // The API lists every change of the active member, the gap included (pg-a to none,
    // none to pg-b); the count is of changes from one member to another.
    assert_eq!(g["switches"], 1, "{g:#}");
    let recent: Vec<(Option<&str>, Option<&str>)> = g["recent_switches"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|s| (s["from"].as_str(), s["to"].as_str()))
        .collect();
    assert_eq!(
        recent,
        [(Some("pg-a"), None), (None, Some("pg-b"))],
        "{g:#}"
    );
    e.stop().await;
    eprintln!(
        "standby group: pg-b active {:.0} ms after pg_promote returned; test {:.1}s",
        took.as_secs_f64() * 1e3,
        t0.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_whose_role_is_primary_is_down_as_read_only() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let t0 = Instant::now();
    let Some((primary, standby)) = pg_pair() else {
        return;
    };
    let yaml = format!(
        "targets:\n{}{}",
        target("pg-a", "postgres", primary.port(), ""),
        target("pg-b", "postgres", standby.port(), "    role: primary\n"),
    );
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &yaml).await;
    wait_up(&e, "pg-a", 1.0).await;
    wait_up(&e, "pg-b", 0.0).await;
    more_probes(&e, "pg-b", 2.0).await;
    let m = e.metrics().await;
    let t = [("target", "pg-b")];
    assert_eq!(
        m.get(
            "dbvigil_target_info",
            &[("target", "pg-b"), ("role", "primary")]
        ),
        Some(1.0)
    );
    assert_eq!(m.value("dbvigil_up", &t), 0.0);
    assert_eq!(m.value("dbvigil_read_only", &t), 1.0);
    assert_eq!(m.value("dbvigil_outages_total", &t), 1.0);
    assert!(m.value("dbvigil_current_outage_duration_seconds", &t) > 0.0);
    let f = failures(&m, "pg-b");
    let read_only = f.iter().find(|(r, _)| r == "read_only").unwrap().1;
    assert!(read_only >= 2.0, "{f:?}");
    assert!(
        f.iter().all(|(r, v)| r == "read_only" || *v == 0.0),
        "only read_only failures: {f:?}"
    );
    assert_eq!(
        m.value(
            "dbvigil_check_success",
            &[("target", "pg-b"), ("check", "write")]
        ),
        0.0
    );
    assert_eq!(
        m.value(
            "dbvigil_check_success",
            &[("target", "pg-b"), ("check", "read")]
        ),
        1.0
    );
    let j = e.target_json("pg-b").await;
    assert_eq!(j["last_probe"]["error"]["reason"], "read_only", "{j:#}");
    let r = e.get("/targets/pg-b/writable").await;
    assert_eq!(r.status, 503);
    assert!(r.body.contains("read_only"), "{}", r.body);
    // The primary is unaffected.
    assert_eq!(m.value("dbvigil_up", &[("target", "pg-a")]), 1.0);
    assert_eq!(
        m.get(
            "dbvigil_target_info",
            &[("target", "pg-a"), ("role", "primary")]
        ),
        Some(1.0)
    );
    e.stop().await;
    eprintln!(
        "role primary on a standby: test {:.1}s",
        t0.elapsed().as_secs_f64()
    );
}

/// Waits until `target`'s replication lag satisfies `ok`, checking on every poll that the
/// target stays up without an outage; returns the lag.
async fn wait_lag(e: &TestExporter, target: &str, what: &str, ok: impl Fn(f64) -> bool) -> f64 {
    eventually(WAIT, &format!("{target}: {what}"), || async {
        let m = e.metrics().await;
        let t = [("target", target)];
        assert_eq!(m.value("dbvigil_up", &t), 1.0, "{target} up while {what}");
        assert_eq!(
            m.value("dbvigil_outages_total", &t),
            0.0,
            "{target} outages"
        );
        let lag = m.value("dbvigil_replication_lag_seconds", &t);
        (lag.is_finite() && ok(lag)).then_some(lag)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_replica_is_up_and_reports_its_real_lag() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let t0 = Instant::now();
    let Some(primary) = block(MariaDbServer::start_primary) else {
        return;
    };
    let replica = block(|| MariaDbServer::start_replica_of(&primary));
    // Created on the primary, replicated to the replica (it replicates from the start of
    // the binary log): the same login and database on both.
    block(|| {
        primary.sql(
            "CREATE DATABASE app; \
             CREATE USER 'probe'@'127.0.0.1' IDENTIFIED BY 'probe-pw' REQUIRE SSL; \
             CREATE USER 'probe'@'localhost' IDENTIFIED BY 'probe-pw' REQUIRE SSL; \
             GRANT ALL ON app.* TO 'probe'@'127.0.0.1'; GRANT ALL ON app.* TO 'probe'@'localhost';",
        )
    });
    block(|| replica.wait_caught_up(&primary));
    assert_eq!(
        block(|| replica.sql("select count(*) from mysql.user where user = 'probe'")),
        "2"
    );
    assert_eq!(block(|| replica.sql("select @@read_only")), "1");
    let yaml = format!(
        "targets:\n{}{}",
        target("m-primary", "mysql", primary.port(), ""),
        target(
            "m-replica",
            "mysql",
            replica.port(),
            "    replica_of: m-primary\n"
        ),
    );
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &yaml).await;
    wait_up(&e, "m-primary", 1.0).await;
    wait_up(&e, "m-replica", 1.0).await;
    let lag = wait_lag(&e, "m-replica", "lag known", |_| true).await;
    more_probes(&e, "m-replica", 3.0).await;
    let m = e.metrics().await;
    assert_standing_by(&m, "m-replica", "replicating");
    assert_eq!(
        m.get(
            "dbvigil_target_info",
            &[
                ("target", "m-replica"),
                ("kind", "mysql"),
                ("role", "standby")
            ]
        ),
        Some(1.0),
        "replica_of makes the role standby"
    );
    assert_eq!(
        m.get(
            "dbvigil_target_info",
            &[("target", "m-primary"), ("role", "primary")]
        ),
        Some(1.0)
    );
    let replicating = m.value(
        "dbvigil_replication_lag_seconds",
        &[("target", "m-replica")],
    );
    assert!(
        (0.0..2.0).contains(&replicating),
        "lag while replicating: {replicating} (first seen {lag})"
    );

    // Replication stops: the primary's heartbeat row on the replica ages; the replica
    // stays up.
    block(|| replica.sql("STOP SLAVE"));
    let stopped = wait_lag(&e, "m-replica", "lag grows past 1.5 s", |l| l > 1.5).await;
    assert_standing_by(&e.metrics().await, "m-replica", "replication stopped");

    // It resumes: the replica catches up, the lag shrinks again.
    block(|| replica.sql("START SLAVE"));
    let resumed = wait_lag(&e, "m-replica", "lag shrinks below 1 s", |l| l < 1.0).await;
    assert_standing_by(&e.metrics().await, "m-replica", "replication resumed");
    e.stop().await;
    eprintln!(
        "mariadb replica lag: {replicating:.3}s replicating, {stopped:.3}s stopped, \
         {resumed:.3}s resumed; test {:.1}s",
        t0.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_standby_target_reports_its_real_replay_lag() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let t0 = Instant::now();
    let Some((primary, standby)) = pg_pair() else {
        return;
    };
    let yaml = format!(
        "targets:\n{}{}",
        target("pg-a", "postgres", primary.port(), ""),
        target("pg-s", "postgres", standby.port(), "    replica_of: pg-a\n"),
    );
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &yaml).await;
    wait_up(&e, "pg-a", 1.0).await;
    wait_up(&e, "pg-s", 1.0).await;
    wait_lag(&e, "pg-s", "lag known", |_| true).await;
    more_probes(&e, "pg-s", 3.0).await;
    let m = e.metrics().await;
    assert_standing_by(&m, "pg-s", "streaming");
    assert_eq!(
        m.get(
            "dbvigil_target_info",
            &[("target", "pg-s"), ("role", "standby")]
        ),
        Some(1.0)
    );
    let streaming = m.value("dbvigil_replication_lag_seconds", &[("target", "pg-s")]);
    assert!(
        (0.0..2.0).contains(&streaming),
        "lag while streaming: {streaming}"
    );

    block(|| standby.psql("SELECT pg_wal_replay_pause()"));
    let paused = wait_lag(&e, "pg-s", "lag grows past 1.5 s", |l| l > 1.5).await;
    assert_standing_by(&e.metrics().await, "pg-s", "replay paused");

    block(|| standby.psql("SELECT pg_wal_replay_resume()"));
    let resumed = wait_lag(&e, "pg-s", "lag shrinks below 1 s", |l| l < 1.0).await;
    assert_standing_by(&e.metrics().await, "pg-s", "replay resumed");
    let log = pg_log(&standby);
    assert!(
        !log.contains("read-only transaction"),
        "the standby's server log has refused writes"
    );
    e.stop().await;
    eprintln!(
        "postgresql standby lag: {streaming:.3}s streaming, {paused:.3}s paused, \
         {resumed:.3}s resumed; test {:.1}s",
        t0.elapsed().as_secs_f64()
    );
}
