//! Failover groups over throwaway PostgreSQL servers: which member is active, as metrics,
//! JSON and plain 200/503 answers, through stops, recoveries, read-only periods and flaps;
//! and a failover over real streaming replication told whole: the time with no active
//! member, the switch, and the acknowledged writes the new member lacked.

mod common;

use std::time::{Duration, Instant};

use common::db::replicated_behind_forwarders;
use common::db::{Db, Engine, WAIT, block, target};
use common::forwarder::Forwarder;
use common::netfault::DropPackets;
use common::servers::{PgServer, test_certs};
use common::{TestExporter, eventually, tempdir};

const INTERVAL: Duration = Duration::from_millis(100);

fn group(name: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    members: [a, b, c]\n    fail_after: 3\n    recover_after: 2\n{extra}"
    )
}

fn config(dbs: &[&Db], groups: &[String]) -> String {
    let targets: String = ["a", "b", "c"]
        .iter()
        .zip(dbs)
        .map(|(n, db)| target(n, db, "100ms", ""))
        .collect();
    format!("targets:\n{targets}groups:\n{}", groups.concat())
}

async fn active(e: &TestExporter, group: &str) -> (u16, String) {
    let r = e.get(&format!("/groups/{group}/active")).await;
    (r.status, r.body.trim().to_owned())
}

async fn wait_active(e: &TestExporter, group: &str, want: &str) {
    eventually(WAIT, &format!("{group} active == {want}"), || async {
        (active(e, group).await == (200, want.to_owned())).then_some(())
    })
    .await;
}

async fn switches(e: &TestExporter, group: &str) -> f64 {
    e.metrics()
        .await
        .value("dbvigil_group_switches_total", &[("group", group)])
}

fn start3() -> Option<[Db; 3]> {
    Some([
        Db::start(Engine::Postgres)?,
        Db::start(Engine::Postgres)?,
        Db::start(Engine::Postgres)?,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_member_fails_over_and_comes_back_by_policy() {
    let Some([mut a, b, c]) = start3() else {
        return;
    };
    let dir = tempdir();
    let yaml = config(
        &[&a, &b, &c],
        &[
            group("orders", ""),
            group("orders-sticky", "    policy: sticky\n"),
        ],
    );
    let e = TestExporter::start(dir.path(), &yaml).await;

    // 1. All healthy: the first member is active, in every interface.
    wait_active(&e, "orders", "a").await;
    wait_active(&e, "orders-sticky", "a").await;
    let m = e.metrics().await;
    assert_eq!(
        m.value(
            "dbvigil_group_active_member",
            &[("group", "orders"), ("member", "a")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "dbvigil_group_active_member",
            &[("group", "orders"), ("member", "b")]
        ),
        0.0
    );
    assert_eq!(
        m.value("dbvigil_group_eligible_members", &[("group", "orders")]),
        3.0
    );
    assert_eq!(
        m.value("dbvigil_group_no_eligible_member", &[("group", "orders")]),
        0.0
    );
    assert_eq!(switches(&e, "orders").await, 0.0);
    let api = e.get("/api/v1/groups/orders").await;
    let g: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(g["active"]["name"], "a");
    assert_eq!(g["active"]["connection"]["port"], a.port());
    assert_eq!(g["active"]["connection"]["host"], "127.0.0.1");
    assert!(
        !api.body.contains("probe-pw"),
        "no credential in the group API"
    );

    // 2. The first member stops: after fail_after probes the second is active.
    a.stop();
    let stopped = Instant::now();
    wait_active(&e, "orders", "b").await;
    let took = stopped.elapsed();
    let bound = INTERVAL * 3 + INTERVAL + Duration::from_millis(300);
    assert!(
        took <= bound,
        "switch took {took:?}, bound fail_after x interval + timeout (+0.3 s polling) = {bound:?}"
    );
    assert_eq!(switches(&e, "orders").await, 1.0);
    let m = e.metrics().await;
    assert_eq!(
        m.value(
            "dbvigil_group_active_member",
            &[("group", "orders"), ("member", "b")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "dbvigil_group_member_eligible",
            &[("group", "orders"), ("member", "a")]
        ),
        0.0
    );
    assert_eq!(e.get("/targets/a/writable").await.status, 503);
    assert_eq!(e.get("/targets/b/writable").await.status, 200);
    let g: serde_json::Value =
        serde_json::from_str(&e.get("/api/v1/groups/orders").await.body).unwrap();
    let sw = &g["recent_switches"][0];
    assert_eq!(
        (sw["from"].as_str(), sw["to"].as_str()),
        (Some("a"), Some("b"))
    );
    assert!(
        sw["cause"]
            .as_str()
            .unwrap()
            .starts_with("a not writable for 3 probes"),
        "{sw}"
    );
    assert!(
        g["members"][0]["why"]
            .as_str()
            .unwrap()
            .starts_with("not writable"),
        "{g:#}"
    );

    // 3. It comes back: prefer_first returns to it, sticky stays.
    a.start_again();
    wait_active(&e, "orders", "a").await;
    assert_eq!(switches(&e, "orders").await, 2.0);
    assert_eq!(active(&e, "orders-sticky").await, (200, "b".to_owned()));
    assert_eq!(switches(&e, "orders-sticky").await, 1.0);

    // A reload that leaves a group unchanged keeps its decision and history.
    assert_eq!(e.post("/-/reload").await.status, 200);
    assert_eq!(active(&e, "orders-sticky").await, (200, "b".to_owned()));
    assert_eq!(switches(&e, "orders-sticky").await, 1.0);

    // Unknown names are a 404 that says where the names are.
    let r = e.get("/groups/nope/active").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            404,
            "unknown group \"nope\": configured groups are listed at /api/v1/groups\n"
        )
    );
    assert_eq!(e.get("/api/v1/groups/nope").await.status, 404);
    let r = e.get("/targets/nope/writable").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            404,
            "unknown target \"nope\": configured targets are listed at /api/v1/targets\n"
        )
    );
    let r = e.get("/targets/a/master").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            404,
            "unknown check: use /targets/NAME/writable (or /primary), /readable, /reachable or /replica\n"
        )
    );
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_active_member_is_dropped_only_by_a_writable_group() {
    let Some([a, b, c]) = start3() else { return };
    let dir = tempdir();
    let yaml = config(
        &[&a, &b, &c],
        &[
            group("rw", ""),
            group("tcp", "    eligibility: reachable\n"),
        ],
    );
    let e = TestExporter::start(dir.path(), &yaml).await;
    wait_active(&e, "rw", "a").await;
    wait_active(&e, "tcp", "a").await;

    block(|| a.set_read_only(true));
    wait_active(&e, "rw", "b").await;
    assert_eq!(active(&e, "tcp").await, (200, "a".to_owned()));
    assert_eq!(switches(&e, "tcp").await, 0.0);
    let r = e.get("/targets/a/writable").await;
    assert_eq!(r.status, 503);
    assert!(r.body.contains("read_only"), "{}", r.body);
    assert_eq!(e.get("/targets/a/readable").await.status, 200);
    assert_eq!(e.get("/targets/a/reachable").await.status, 200);
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_member_down_the_group_answers_503_until_one_recovers() {
    let Some([mut a, mut b, mut c]) = start3() else {
        return;
    };
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &config(&[&a, &b, &c], &[group("orders", "")])).await;
    wait_active(&e, "orders", "a").await;

    for db in [&mut a, &mut b, &mut c] {
        db.stop();
    }
    eventually(WAIT, "no eligible member", || async {
        (active(&e, "orders").await.0 == 503).then_some(())
    })
    .await;
    let m = e.metrics().await;
    assert_eq!(
        m.value("dbvigil_group_no_eligible_member", &[("group", "orders")]),
        1.0
    );
    assert_eq!(
        m.value("dbvigil_group_eligible_members", &[("group", "orders")]),
        0.0
    );
    assert_eq!(
        e.get("/groups/orders/active").await.body,
        "group orders has no eligible member\n"
    );

    c.start_again();
    wait_active(&e, "orders", "c").await;
    let m = e.metrics().await;
    assert_eq!(
        m.value("dbvigil_group_no_eligible_member", &[("group", "orders")]),
        0.0
    );
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_flapping_faster_than_the_hysteresis_causes_no_switch() {
    let Some([a, b, c]) = start3() else { return };
    // Member a is reached through a forwarder that, when flapping, hangs up every other
    // connection: with one connection per probe, a alternates between success and failure.
    let fwd = Forwarder::start(a.port()).await;
    let dir = tempdir();
    let a_target = format!(
        "  - name: a\n    kind: postgres\n    url: postgres://probe:probe-pw@127.0.0.1:{}/app?sslmode=require\n    interval: 200ms\n    checks: [connect, read, write]\n",
        fwd.port
    );
    let yaml = format!(
        "targets:\n{a_target}{}{}groups:\n{}",
        target("b", &b, "100ms", ""),
        target("c", &c, "100ms", ""),
        // Alternation alone gives failure runs of one; fail_after 5 leaves room for a
        // stray timeout on a loaded machine while still catching a broken hysteresis.
        "  - name: orders\n    members: [a, b, c]\n    fail_after: 5\n    recover_after: 2\n"
    );
    let e = TestExporter::start(dir.path(), &yaml).await;
    wait_active(&e, "orders", "a").await;

    fwd.set_flapping(true);
    let start = Instant::now();
    let mut failures_seen = 0;
    while start.elapsed() < Duration::from_secs(3) {
        let m = e.metrics().await;
        failures_seen =
            failures_seen.max(m.value("dbvigil_outages_total", &[("target", "a")]) as i64);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        failures_seen >= 3,
        "member a did not really flap ({failures_seen} outages)"
    );
    assert_eq!(active(&e, "orders").await, (200, "a".to_owned()));
    assert_eq!(
        switches(&e, "orders").await,
        0.0,
        "flapping below fail_after caused a switch"
    );
    e.stop().await;
}

/// The Python in docs/failover.md, run as written against a live exporter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_examples_in_the_failover_docs_work() {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            !common::servers::ci(),
            "python3 is needed to check docs/failover.md"
        );
        eprintln!("SKIPPED: no python3 to run docs/failover.md's examples");
        return;
    }
    let doc = std::fs::read_to_string("docs/failover.md").unwrap();
    let code = doc
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a python block in docs/failover.md");
    let dir = tempdir();
    std::fs::write(dir.path().join("dbvigil_client.py"), code).unwrap();
    let sqlite = |n: &str| {
        format!("  - {{name: {n}, kind: sqlite, path: {n}.db, create: true, interval: 100ms}}\n")
    };
    let yaml = format!(
        "targets:\n{}{}groups:\n  - name: orders\n    members: [orders-a, orders-b]\n",
        sqlite("orders-a"),
        sqlite("orders-b")
    );
    let e = TestExporter::start(dir.path(), &yaml).await;
    wait_active(&e, "orders", "orders-a").await;
    let driver = "from dbvigil_client import DbvigilRouter, active_connection, active_member\n\
                  print(active_member('orders'))\n\
                  print(active_connection('orders')['kind'])\n\
                  print(DbvigilRouter().db_for_write(None))\n";
    let out = block(|| {
        std::process::Command::new("python3")
            .args(["-c", driver])
            .current_dir(dir.path())
            .env("DBVIGIL_URL", format!("http://{}", e.addr))
            .output()
            .unwrap()
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "orders-a\nsqlite\ndefault\n"
    );
    e.stop().await;
}

/// The heartbeat row dbvigil keeps for `target` on `server`: (seq, beat_at_ms).
fn heartbeat(server: &PgServer, target: &str) -> Option<(i64, i64)> {
    let exists = block(|| {
        server.psql("\\c app\nSELECT count(*) FROM pg_class WHERE relname = 'dbvigil_heartbeat';")
    });
    if exists.trim() != "1" {
        return None;
    }
    let out = block(|| {
        server.psql(&format!(
            "\\c app\nSELECT seq, beat_at_ms FROM dbvigil_heartbeat WHERE target = '{target}';"
        ))
    });
    let (seq, at) = out.trim().split_once('|')?;
    Some((seq.parse().ok()?, at.parse().ok()?))
}

async fn group_json(e: &TestExporter, group: &str) -> serde_json::Value {
    serde_json::from_str(&e.get(&format!("/api/v1/groups/{group}")).await.body).unwrap()
}

/// A failover group over real PostgreSQL streaming replication: member `a` is the
/// primary, member `b` its standby with `replica_of: a` (so b reads a's heartbeat row).
/// When `lagging`, the standby's replication stream (through a port of the test's own)
/// loses every packet while a goes on acknowledging heartbeats. Then clients lose a (the
/// group has no eligible member), a freezes and b is promoted: the group switches a ->
/// (none) -> b and must report exactly the heartbeats a acknowledged that b lacks; with
/// the standby caught up, zero, and known to be zero.
async fn group_failover_to_a_standby(lagging: bool) {
    let t0 = Instant::now();
    let Some((primary, replication, standby, clients)) = replicated_behind_forwarders().await
    else {
        return;
    };
    let member = |name: &str, port: u16, extra: &str| {
        format!(
            "  - name: {name}\n    kind: postgres\n    host: 127.0.0.1\n    port: {port}\n    \
             user: probe\n    password: probe-pw\n    database: app\n    \
             tls: {{mode: verify-full, ca_file: {}}}\n    interval: 200ms\n    \
             checks: [tcp, connect, read, write]\n{extra}",
            test_certs().ca_file.display()
        )
    };
    let yaml = format!(
        "targets:\n{}{}groups:\n  - name: orders\n    members: [a, b]\n    \
         fail_after: 2\n    recover_after: 2\n",
        member("a", clients.port, "    role: primary\n"),
        member("b", standby.port(), "    replica_of: a\n    role: either\n"),
    );
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &yaml).await;
    wait_active(&e, "orders", "a").await;
    eventually(WAIT, "the standby holds a's heartbeat", || async {
        heartbeat(&standby, "a").filter(|(seq, _)| *seq >= 3)
    })
    .await;

    let cut = if lagging {
        let Some(cut) = DropPackets::start(replication.port) else {
            return;
        };
        let (kept, _) = heartbeat(&standby, "a").unwrap();
        eventually(
            WAIT,
            "a acknowledged heartbeats the standby lacks",
            || async { heartbeat(&primary, "a").filter(|(seq, _)| *seq >= kept + 5) },
        )
        .await;
        Some(cut)
    } else {
        None
    };
    // Clients lose a; once the group has dropped it (two failed probes) no write of a's
    // is in flight.
    let cut_at = Instant::now();
    clients.switch(None);
    eventually(WAIT, "orders has no eligible member", || async {
        (active(&e, "orders").await.0 == 503).then_some(())
    })
    .await;
    let (acked_seq, acked_at) = heartbeat(&primary, "a").unwrap();
    if !lagging {
        block(|| standby.wait_replay_caught_up(&primary));
    }
    primary.freeze();
    let (kept_seq, kept_at) = heartbeat(&standby, "a").unwrap();
    block(|| standby.promote());
    wait_active(&e, "orders", "b").await;
    let took = cut_at.elapsed();
    drop(cut);

    let g = eventually(WAIT, "the switch to b has its loss judged", || async {
        let g = group_json(&e, "orders").await;
        (g["recent_switches"][0]["lost_writes_known"] == true).then_some(g)
    })
    .await;
    let sw = &g["recent_switches"][0];
    assert_eq!(
        (
            sw["from"].as_str(),
            sw["to"].as_str(),
            sw["from_member"].as_str()
        ),
        (None, Some("b"), Some("a")),
        "a -> (none) -> b is one story: {g:#}"
    );
    assert_eq!(g["switches"], 1, "{g:#}");
    let gap = sw["no_active_seconds"].as_f64().unwrap_or_default();
    assert!(
        gap > 0.0 && gap <= took.as_secs_f64(),
        "no member for {gap} s, within the {took:?} from cutting a to seeing b active: {g:#}"
    );
    assert_eq!(g["no_active"]["periods"], 1, "{g:#}");
    assert_eq!(g["no_active"]["since"], serde_json::Value::Null, "{g:#}");
    assert_eq!(
        g["no_active"]["last_duration_seconds"].as_f64(),
        Some(gap),
        "{g:#}"
    );
    // The switch to none names no new member, so it has no loss to judge.
    let dropped = &g["recent_switches"][1];
    assert_eq!(
        (dropped["from"].as_str(), dropped["to"].as_str()),
        (Some("a"), None),
        "{g:#}"
    );
    assert_eq!(dropped["lost_writes_known"], false, "{g:#}");

    let lost = acked_seq - kept_seq;
    assert_eq!(
        sw["lost_writes"]["writes"], lost,
        "a acknowledged heartbeat {acked_seq}, b held {kept_seq}: {g:#}"
    );
    assert_eq!(g["writes_lost"], lost, "{g:#}");
    let m = e.metrics().await;
    let group = [("group", "orders")];
    assert_eq!(
        m.value("dbvigil_group_writes_lost_total", &group),
        lost as f64
    );
    assert_eq!(
        m.value("dbvigil_group_no_active_periods_total", &group),
        1.0
    );
    assert_eq!(
        m.value("dbvigil_group_last_no_active_duration_seconds", &group),
        gap
    );
    let span = sw["lost_writes"]["span_seconds"].as_f64().unwrap();
    if lagging {
        assert!(lost >= 5, "{g:#}");
        assert!(
            (span - (acked_at - kept_at) as f64 / 1000.0).abs() < 1e-6,
            "the loss spans the heartbeats b never received: {span} s"
        );
    } else {
        assert_eq!((lost, span), (0, 0.0), "{g:#}");
    }
    e.stop().await;
    primary.thaw();
    eprintln!(
        "group failover (lagging: {lagging}): no member for {gap:.2} s, {lost} writes lost \
         (a acknowledged {acked_seq}, b held {kept_seq}); test {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_failover_to_a_lagging_standby_counts_the_writes_the_new_member_lacks() {
    group_failover_to_a_standby(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_failover_to_a_caught_up_standby_loses_nothing_and_says_so() {
    group_failover_to_a_standby(false).await;
}
