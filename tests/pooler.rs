//! PostgreSQL behind PgBouncer 1.18 (TLS and SCRAM on both legs), as production runs it.
//!
//! PgBouncer refuses startup parameters it does not track (`options` included), and in
//! `transaction` pooling a named prepared statement made on one server connection is
//! missing on the next. The probe therefore sends no `options` and speaks the simple query
//! protocol, each statement carrying its own `SET LOCAL statement_timeout`. These tests
//! fail if any of that regresses: a probe that sent `options=-c statement_timeout=...`
//! could not even log in here, and one that prepared named statements would fail its
//! reads under transaction pooling with `connection: reuse`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::db::{Db, Engine, WAIT, block, wait_up};
use common::servers::{PgServer, test_certs};
use common::topology::{PgBouncer, PoolMode};
use common::{TestExporter, eventually, tempdir};

/// A target that reaches the `probe` login through PgBouncer at `port`, TLS verified
/// against the test CA, its heartbeat table in its own schema (so that targets do not
/// race each other's `CREATE TABLE IF NOT EXISTS`).
fn bouncer_target(name: &str, port: u16, password: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    kind: postgres\n    host: 127.0.0.1\n    port: {port}\n    user: probe\n    \
         password: {password}\n    database: app\n    tls: {{mode: verify-full, ca_file: {ca}}}\n{extra}",
        ca = test_certs().ca_file.display()
    )
}

fn pg_of(db: &Db) -> &PgServer {
    match db {
        Db::Pg(pg) => pg,
        Db::Maria(_) => unreachable!("started as PostgreSQL"),
    }
}

/// Four targets (session and transaction pooling, fresh and reused connections), all
/// checks at 250 ms: at least 15 probes each without a single failure of any reason, every
/// check succeeding, and the heartbeat row of each target written by its latest probes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_passes_through_pgbouncer_in_both_pool_modes() {
    let t = Instant::now();
    let Some(db) = Db::start(Engine::Postgres) else {
        return;
    };
    let pg = pg_of(&db);
    let Some(session) = block(|| PgBouncer::start(pg, PoolMode::Session, &["probe"])) else {
        return;
    };
    let Some(transaction) = block(|| PgBouncer::start(pg, PoolMode::Transaction, &["probe"]))
    else {
        return;
    };
    let targets = [
        ("session-fresh", session.port(), "fresh"),
        ("session-reuse", session.port(), "reuse"),
        ("transaction-fresh", transaction.port(), "fresh"),
        ("transaction-reuse", transaction.port(), "reuse"),
    ];
    let mut yaml = String::from("targets:\n");
    for (name, port, connection) in targets {
        let schema = name.replace('-', "_");
        block(|| db.sql(&format!("CREATE SCHEMA {schema} AUTHORIZATION probe;")));
        yaml.push_str(&bouncer_target(
            name,
            port,
            "probe-pw",
            &format!(
                "    interval: 250ms\n    connection: {connection}\n    checks: [tcp, connect, read, write]\n    \
                 heartbeat: {{schema: {schema}}}\n"
            ),
        ));
    }
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &yaml).await;

    eventually(
        Duration::from_secs(30),
        "15 probes of every target",
        || async {
            let m = e.metrics().await;
            targets
                .iter()
                .all(|(name, _, _)| m.value("dbvigil_probes_total", &[("target", name)]) >= 15.0)
                .then_some(())
        },
    )
    .await;

    let m = e.metrics().await;
    for (name, _, _) in targets {
        assert_eq!(
            m.failures(name),
            BTreeMap::new(),
            "{name}: failed probes through PgBouncer; last probe: {}",
            e.target_json(name).await["last_probe"]
        );
        assert_eq!(m.value("dbvigil_up", &[("target", name)]), 1.0, "{name}");
        for check in ["tcp", "connect", "read", "write"] {
            assert_eq!(
                m.value(
                    "dbvigil_check_success",
                    &[("target", name), ("check", check)]
                ),
                1.0,
                "{name}: check {check}"
            );
        }
        assert_eq!(m.value("dbvigil_read_only", &[("target", name)]), 0.0);
        // The write round trip really landed on the server, one row per target, with
        // the sequence number of a probe at least as recent as the 10th.
        let schema = name.replace('-', "_");
        let row = block(|| {
            db.sql(&format!(
                "SELECT count(*), max(seq) FROM {schema}.dbvigil_heartbeat WHERE target = '{name}';"
            ))
        });
        let (count, seq) = row.split_once('|').unwrap();
        assert_eq!(count, "1", "{name}: heartbeat rows");
        let seq: i64 = seq.parse().unwrap();
        assert!(seq >= 10, "{name}: heartbeat seq {seq}, expected >= 10");
    }
    // The traffic went through the poolers, not around them.
    for bouncer in [&session, &transaction] {
        let pools = block(|| bouncer.admin("SHOW POOLS"));
        assert!(
            pools.lines().any(|l| l.starts_with("app|probe|")),
            "no pool app/probe: {pools}"
        );
    }
    e.stop().await;
    eprintln!(
        "every_check_passes_through_pgbouncer_in_both_pool_modes: {:.1}s",
        t.elapsed().as_secs_f64()
    );
}

/// A probe statement that would run long (a `maintenance_query` of `pg_sleep(30)`, timeout
/// 500 ms) is cancelled by PostgreSQL itself, through the pooler: the `SET LOCAL
/// statement_timeout` prefix reaches the server. Without it, the backend would keep
/// sleeping for 30 s after dbvigil gave up (a backend in `pg_sleep` does not notice that
/// its client, here PgBouncer, went away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_statement_limit_applies_through_pgbouncer() {
    let t = Instant::now();
    let Some(db) = Db::start(Engine::Postgres) else {
        return;
    };
    let pg = pg_of(&db);
    let Some(bouncer) = block(|| PgBouncer::start(pg, PoolMode::Transaction, &["probe"])) else {
        return;
    };
    let mut yaml = String::from("targets:\n");
    for connection in ["fresh", "reuse"] {
        yaml.push_str(&bouncer_target(
            &format!("sleepy-{connection}"),
            bouncer.port(),
            "probe-pw",
            &format!(
                "    interval: 1s\n    timeout: 500ms\n    connection: {connection}\n    checks: [connect]\n    \
                 maintenance_query: SELECT pg_sleep(30)\n"
            ),
        ));
    }
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &yaml).await;

    // Watch dbvigil's statements on the server for 5 s (about five probes per target).
    let watch = "SELECT count(*), coalesce(max(extract(epoch FROM clock_timestamp() - query_start)), 0) \
                 FROM pg_stat_activity WHERE state = 'active' AND application_name = 'dbvigil' \
                 AND query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()";
    let mut seen = 0;
    let mut oldest = 0.0f64;
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let out = block(|| pg.psql(watch));
        let (n, age) = out.split_once('|').unwrap();
        let n: i64 = n.parse().unwrap();
        let age: f64 = age.parse().unwrap();
        if n > 0 {
            seen += 1;
            oldest = oldest.max(age);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen > 0,
        "dbvigil's pg_sleep was never seen running on the server: the test proves nothing"
    );
    // 500 ms of statement_timeout, plus generous scheduling slack; 30 s without a limit.
    assert!(
        oldest < 2.0,
        "a probe statement ran {oldest:.2}s on the server, past its 500 ms limit"
    );
    // And none is left once the exporter has stopped probing.
    e.stop().await;
    eventually(
        Duration::from_secs(3),
        "no pg_sleep of dbvigil left",
        || async {
            let out = block(|| pg.psql(watch));
            out.starts_with("0|").then_some(())
        },
    )
    .await;
    eprintln!(
        "server_side_statement_limit_applies_through_pgbouncer: {:.1}s (pg_sleep seen in {seen} polls, oldest {oldest:.2}s)",
        t.elapsed().as_secs_f64()
    );
}

/// A wrong password, refused by PgBouncer itself (its SCRAM check, SQLSTATE 08P01), is a
/// failed login: reason `auth`, never `query`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_through_pgbouncer_is_an_auth_failure() {
    let t = Instant::now();
    let Some(db) = Db::start(Engine::Postgres) else {
        return;
    };
    let pg = pg_of(&db);
    let Some(bouncer) = block(|| PgBouncer::start(pg, PoolMode::Transaction, &["probe"])) else {
        return;
    };
    let yaml = format!(
        "targets:\n{}{}",
        bouncer_target(
            "wrong",
            bouncer.port(),
            "not-the-password",
            "    interval: 250ms\n"
        ),
        bouncer_target("right", bouncer.port(), "probe-pw", "    interval: 250ms\n"),
    );
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &yaml).await;
    wait_up(&e, "wrong", 0.0).await;
    wait_up(&e, "right", 1.0).await;
    eventually(WAIT, "three auth failures", || async {
        let m = e.metrics().await;
        (m.value(
            "dbvigil_probe_failures_total",
            &[("target", "wrong"), ("reason", "auth")],
        ) >= 3.0)
            .then_some(())
    })
    .await;
    let m = e.metrics().await;
    let auth = m.value(
        "dbvigil_probe_failures_total",
        &[("target", "wrong"), ("reason", "auth")],
    );
    assert_eq!(
        m.failures("wrong"),
        BTreeMap::from([("auth".to_owned(), auth)]),
        "every failure of the wrong password is `auth` (none `query`)"
    );
    assert_eq!(
        m.value(
            "dbvigil_check_success",
            &[("target", "wrong"), ("check", "connect")]
        ),
        0.0
    );
    let last = e.target_json("wrong").await["last_probe"].clone();
    assert_eq!(last["error"]["reason"], "auth", "{last}");
    // The same pooler lets the right password in meanwhile.
    assert_eq!(m.failures("right"), BTreeMap::new());
    e.stop().await;
    eprintln!(
        "a_wrong_password_through_pgbouncer_is_an_auth_failure: {:.1}s",
        t.elapsed().as_secs_f64()
    );
}
