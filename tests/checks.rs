//! The load-balancer checks as HAProxy, Kubernetes and Patroni users call them, over real
//! HTTP: every check answers HEAD (without a body) and OPTIONS with the status GET gets,
//! 200 and 503 alike, so `option httpchk OPTIONS /...` works as it does against Patroni;
//! every other endpoint answers OPTIONS with 204 and its methods in `Allow`, behind the same
//! basic auth as GET. `/targets/NAME/replica[?lag=]` is asked of a read-only PostgreSQL and
//! of a real streaming standby whose replay is paused (503 over the limit) and resumed
//! (200 again).

mod common;

use std::time::Duration;

use common::db::{Db, Engine, WAIT, block, replicated_behind_forwarders, wait_up};
use common::servers::test_certs;
use common::{Response, TestExporter, eventually, request, send, tempdir};

const TOKEN: &str = "checks-token-0123456789abcdef";

/// GET, HEAD and OPTIONS of `path` (with `headers`): HEAD and OPTIONS must get GET's
/// status, HEAD without a body. Returns GET's answer.
async fn each_method(e: &TestExporter, path: &str, headers: &[(&str, &str)]) -> Response {
    let get = request(e.addr, "GET", path, headers).await;
    for method in ["HEAD", "OPTIONS"] {
        let r = request(e.addr, method, path, headers).await;
        assert_eq!(
            r.status, get.status,
            "{method} {path} answered {} ({:?}); GET answered {}: {}",
            r.status, r.body, get.status, get.body
        );
        if method == "HEAD" {
            assert_eq!(r.body, "", "HEAD {path} has a body");
        }
    }
    get
}

/// Waits until GET `path` answers `status`, then checks HEAD and OPTIONS agree.
async fn answers(e: &TestExporter, path: &str, status: u16) -> Response {
    eventually(WAIT, &format!("GET {path} answers {status}"), || async {
        (e.get(path).await.status == status).then_some(())
    })
    .await;
    let r = each_method(e, path, &[]).await;
    assert_eq!(r.status, status, "{path}: {}", r.body);
    r
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_answers_head_and_options_as_it_answers_get() {
    let dir = tempdir();
    std::fs::write(dir.path().join("tokens"), format!("{TOKEN}\n")).unwrap();
    let yaml = format!(
        "targets:\n\
         \x20 - {{name: lite, kind: sqlite, path: lite.db, create: true, interval: 100ms}}\n\
         \x20 - {{name: gone, kind: tcp, host: 127.0.0.1, port: {port}, interval: 100ms, failure_threshold: 1}}\n\
         groups:\n\
         \x20 - {{name: up, members: [lite]}}\n\
         \x20 - {{name: down, members: [gone], eligibility: reachable, fail_after: 1}}\n\
         maintenance:\n  tokens_file: tokens\n",
        port = closed_port()
    );
    let e = TestExporter::start(dir.path(), &yaml).await;
    wait_up(&e, "lite", 1.0).await;
    wait_up(&e, "gone", 0.0).await;

    let r = answers(&e, "/targets/lite/writable", 200).await;
    assert_eq!(r.body, "writable\n");
    let r = answers(&e, "/targets/lite/primary", 200).await;
    assert_eq!(r.body, "primary\n", "Patroni's name for writable");
    let r = answers(&e, "/targets/gone/reachable", 503).await;
    assert!(
        r.body
            .starts_with("target gone is not reachable: refused: "),
        "{}",
        r.body
    );
    answers(&e, "/groups/up/active", 200).await;
    eventually(WAIT, "group down has decided", || async {
        let r = e.get("/groups/down/active").await;
        (r.body == "group down has no eligible member\n").then_some(())
    })
    .await;
    answers(&e, "/groups/down/active", 503).await;
    let r = answers(&e, "/targets/lite/replica", 503).await;
    assert_eq!(
        r.body,
        "target lite is not a replica: its last probe found it takes writes\n"
    );
    let r = answers(&e, "/targets/gone/replica", 503).await;
    assert!(
        r.body.starts_with(
            "target gone is not known to be a replica: its last probe could not tell whether it is read-only: refused: "
        ),
        "{}",
        r.body
    );
    let r = answers(&e, "/targets/nope/writable", 404).await;
    assert_eq!(
        r.body,
        "unknown target \"nope\": configured targets are listed at /api/v1/targets\n"
    );
    let r = answers(&e, "/targets/lite/leader", 404).await;
    assert_eq!(
        r.body,
        "unknown check: use /targets/NAME/writable (or /primary), /readable, /reachable or /replica\n"
    );

    // The maintenance gate is a check too: 200 without a window, 503 while one covers it.
    answers(&e, "/maintenance/lite", 200).await;
    let started = send(
        e.addr,
        "POST",
        "/api/v1/maintenance",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        r#"{"scope": "lite", "reason": "reindex", "duration": "10m"}"#,
    )
    .await;
    assert_eq!(started.status, 201, "{}", started.body);
    let r = answers(&e, "/maintenance/lite", 503).await;
    assert!(r.header("Retry-After").is_some(), "{r:?}");

    // Every other endpoint: 204 and what it takes, never a bare 405; nothing runs.
    for (path, allow) in [
        ("/metrics", "GET, HEAD, OPTIONS"),
        ("/probe?target=lite", "GET, HEAD, OPTIONS"),
        ("/api/v1/targets", "GET, HEAD, OPTIONS"),
        ("/api/v1/maintenance", "GET, HEAD, POST, OPTIONS"),
        ("/api/v1/maintenance/x/end", "POST, OPTIONS"),
        ("/-/reload", "POST, PUT, OPTIONS"),
    ] {
        let r = request(e.addr, "OPTIONS", path, &[]).await;
        assert_eq!(
            (r.status, r.header("Allow"), r.body.as_str()),
            (204, Some(allow), ""),
            "OPTIONS {path}: {r:?}"
        );
    }
    // A method a path does not take is still refused.
    assert_eq!(request(e.addr, "DELETE", "/metrics", &[]).await.status, 405);
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_needs_the_credentials_get_needs() {
    const USER_PASSWORD: &str = "correct horse battery staple";
    let dir = tempdir();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "basic_auth_users:\n  alice: '{}'\n",
            bcrypt::hash(USER_PASSWORD, 4).unwrap()
        ),
    )
    .unwrap();
    let yaml =
        "targets:\n  - {name: lite, kind: sqlite, path: lite.db, create: true, interval: 100ms}\n";
    let e = TestExporter::start_with_web(dir.path(), yaml, Some(&web)).await;
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("alice:{USER_PASSWORD}"))
    );
    let alice = [("Authorization", basic.as_str())];
    for (path, status) in [("/targets/lite/writable", 200), ("/metrics", 204)] {
        let without = request(e.addr, "OPTIONS", path, &[]).await;
        assert_eq!(without.status, 401, "OPTIONS {path} without credentials");
        let with = eventually(
            WAIT,
            &format!("OPTIONS {path} answers {status}"),
            || async {
                let r = request(e.addr, "OPTIONS", path, &alice).await;
                (r.status == status).then_some(r)
            },
        )
        .await;
        assert_eq!(with.status, status, "{with:?}");
    }
    each_method(&e, "/targets/lite/writable", &alice).await;
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_postgresql_is_a_replica_but_a_lag_limit_needs_replica_of() {
    let Some(db) = Db::start(Engine::Postgres) else {
        return;
    };
    block(|| db.set_read_only(true));
    let yaml = format!(
        "targets:\n  - name: pg\n{}    interval: 100ms\n    role: either\n",
        db.probe_settings()
    );
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &yaml).await;
    let r = answers(&e, "/targets/pg/replica", 200).await;
    assert_eq!(r.body, "replica\n");
    // Patroni measures every replica's lag; dbvigil only a replica_of target's, and a limit
    // it cannot check is not met.
    let r = answers(&e, "/targets/pg/replica?lag=5s", 503).await;
    assert_eq!(
        r.body,
        "target pg's replication lag is unknown: it has no replica_of, so dbvigil does not measure it; set replica_of to the target of its primary, or leave out lag=\n"
    );
    for (query, message) in [
        (
            "lag=5",
            "lag=\"5\" is not a duration: write it with a unit, like lag=5s or lag=500ms (dbvigil measures replication lag in time, not in bytes)\n",
        ),
        (
            "lag=16MB",
            "lag=\"16MB\" is not a duration: write it with a unit, like lag=5s or lag=500ms (dbvigil measures replication lag in time, not in bytes)\n",
        ),
        (
            "max_lag=5s",
            "unknown parameter \"max_lag\": /targets/NAME/replica takes only lag=DURATION, like lag=5s\n",
        ),
    ] {
        let r = each_method(&e, &format!("/targets/pg/replica?{query}"), &[]).await;
        assert_eq!((r.status, r.body.as_str()), (400, message), "?{query}");
    }
    let r = each_method(&e, "/targets/nope/replica", &[]).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            404,
            "unknown target \"nope\": configured targets are listed at /api/v1/targets\n"
        )
    );

    block(|| db.set_read_only(false));
    let r = answers(&e, "/targets/pg/replica", 503).await;
    assert_eq!(
        r.body,
        "target pg is not a replica: its last probe found it takes writes\n"
    );
    answers(&e, "/targets/pg/primary", 200).await;
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_standby_is_a_replica_within_its_lag_until_replay_stops() {
    let Some((primary, _replication, standby, _clients)) = replicated_behind_forwarders().await
    else {
        return;
    };
    let target = |name: &str, port: u16, extra: &str| {
        format!(
            "  - name: {name}\n    kind: postgres\n    host: 127.0.0.1\n    port: {port}\n    \
             user: probe\n    password: probe-pw\n    database: app\n    \
             tls: {{mode: verify-full, ca_file: {}}}\n    interval: 200ms\n{extra}",
            test_certs().ca_file.display()
        )
    };
    let yaml = format!(
        "targets:\n{}{}",
        target("a", primary.port(), ""),
        target("s", standby.port(), "    replica_of: a\n"),
    );
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &yaml).await;
    wait_up(&e, "a", 1.0).await;
    wait_up(&e, "s", 1.0).await;

    let r = answers(&e, "/targets/s/replica?lag=2s", 200).await;
    assert!(
        r.body.starts_with("replica, lag ") && r.body.ends_with(" within 2s\n"),
        "{}",
        r.body
    );
    answers(&e, "/targets/s/replica", 200).await;
    let r = answers(&e, "/targets/a/replica?lag=2s", 503).await;
    assert_eq!(
        r.body,
        "target a is not a replica: its last probe found it takes writes\n"
    );

    // Replay stops: the primary's heartbeat row on the standby ages past the limit. The
    // standby is still a replica, and still up.
    block(|| standby.psql("SELECT pg_wal_replay_pause()"));
    let r = answers(&e, "/targets/s/replica?lag=2s", 503).await;
    assert!(
        r.body.starts_with("target s is a replica, but its lag ")
            && r.body.ends_with(" is over 2s\n"),
        "{}",
        r.body
    );
    answers(&e, "/targets/s/replica", 200).await;
    answers(&e, "/targets/s/replica?lag=1h", 200).await;
    assert_eq!(
        e.metrics().await.value("dbvigil_up", &[("target", "s")]),
        1.0
    );

    // It catches up: within the limit again.
    block(|| standby.psql("SELECT pg_wal_replay_resume()"));
    answers(&e, "/targets/s/replica?lag=2s", 200).await;
    e.stop().await;
}

/// The checks answer from memory: a HEAD or OPTIONS never waits for a database.
#[tokio::test]
async fn a_check_answers_before_the_first_probe_ends() {
    let dir = tempdir();
    // A port that accepts and never answers: the first probe hangs until its timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let yaml = format!(
        "targets:\n  - {{name: slow, kind: postgres, host: 127.0.0.1, port: {}, user: u, \
         password: p, tls: {{mode: disable}}, interval: 1m, timeout: 30s}}\n",
        silent.local_addr().unwrap().port()
    );
    let e = TestExporter::start(dir.path(), &yaml).await;
    let started = std::time::Instant::now();
    for method in ["GET", "HEAD", "OPTIONS"] {
        let r = request(e.addr, method, "/targets/slow/replica", &[]).await;
        assert_eq!(r.status, 503, "{method}: {r:?}");
    }
    let r = e.get("/targets/slow/replica").await;
    assert_eq!(r.body, "target slow has not been probed yet\n");
    assert!(started.elapsed() < Duration::from_secs(5));
    e.stop().await;
}
