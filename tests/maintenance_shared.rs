//! Two exporters sharing a throwaway PostgreSQL state store agree on windows; a store that
//! goes away refuses changes but keeps the gate answering from memory; and a PostgreSQL
//! application's own flag opens a window.

mod common;

use std::time::Duration;

use common::servers::PgServer;
use common::{TestExporter, eventually, send, tempdir};
use serde_json::Value;

const TOKEN: &str = "shared-token-0123456789abcdef";

fn config(dir: &std::path::Path, state_url: &str, pg_app_url: &str) -> String {
    std::fs::write(dir.join("tokens"), format!("{TOKEN}\n")).unwrap();
    format!(
        "targets:\n\
         \x20 - name: orders\n    kind: postgres\n    url: {pg_app_url}\n    interval: 200ms\n    timeout: 200ms\n    checks: [connect, read]\n\
         \x20   maintenance_query: SELECT maintenance FROM service_context LIMIT 1\n\
         maintenance:\n  tokens_file: tokens\n\
         state:\n  url: {state_url}\n  refresh_interval: 200ms\n"
    )
}

async fn post(e: &TestExporter, path: &str, body: &str) -> common::Response {
    let auth = format!("Bearer {TOKEN}");
    send(e.addr, "POST", path, &[("Authorization", &auth)], body).await
}

fn json(r: &common::Response) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|_| panic!("not JSON ({}): {}", r.status, r.body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_exporters_sharing_a_postgres_store_agree() {
    let Some(mut pg) = tokio::task::spawn_blocking(PgServer::start).await.unwrap() else {
        return;
    };
    tokio::task::block_in_place(|| pg.psql("CREATE DATABASE dbvigil_state"));
    pg.psql("CREATE TABLE service_context (id int PRIMARY KEY, maintenance boolean NOT NULL); INSERT INTO service_context VALUES (1, false);");
    let state_url = pg.url("postgres", None, "dbvigil_state");
    let app_url = pg.url("postgres", None, "postgres");
    let (dir_a, dir_b) = (tempdir(), tempdir());
    let a = TestExporter::start(dir_a.path(), &config(dir_a.path(), &state_url, &app_url)).await;
    let b = TestExporter::start(dir_b.path(), &config(dir_b.path(), &state_url, &app_url)).await;

    let r = post(
        &a,
        "/api/v1/maintenance",
        r#"{"scope":"orders","reason":"shared","duration":"5m"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = json(&r)["id"].as_str().unwrap().to_owned();
    assert_eq!(
        a.get("/maintenance/orders").await.status,
        503,
        "the writer sees it at once"
    );
    // The other replica within its refresh interval (200ms), with margin for a loaded machine.
    eventually(
        Duration::from_secs(3),
        "replica b sees a's window",
        || async { (b.get("/maintenance/orders").await.status == 503).then_some(()) },
    )
    .await;

    let r = post(
        &b,
        &format!("/api/v1/maintenance/{id}/end"),
        r#"{"by":"replica-b"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually(Duration::from_secs(3), "replica a sees b's end", || async {
        (a.get("/maintenance/orders").await.status == 200).then_some(())
    })
    .await;
    let r = a.get(&format!("/api/v1/maintenance/{id}")).await;
    assert_eq!(json(&r)["ended_by"], "replica-b");

    // The store goes away: changes are refused with 503, the gate answers from memory.
    let r = post(
        &a,
        "/api/v1/maintenance",
        r#"{"scope":"*","reason":"before the outage","duration":"5m"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    tokio::task::block_in_place(|| pg.stop());
    let m = eventually(
        Duration::from_secs(10),
        "a notices the store is down",
        || async {
            let m = a.metrics().await;
            (m.value("dbvigil_maintenance_store_up", &[]) == 0.0).then_some(m)
        },
    )
    .await;
    assert_eq!(
        m.value("dbvigil_maintenance_active", &[("scope", "*")]),
        1.0
    );
    assert_eq!(
        a.get("/maintenance/orders").await.status,
        503,
        "windows read before the outage still hold"
    );
    let r = post(
        &a,
        "/api/v1/maintenance",
        r#"{"scope":"orders","reason":"during the outage","duration":"5m"}"#,
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        json(&r)["error"]
            .as_str()
            .unwrap()
            .contains("nothing was changed"),
        "{}",
        r.body
    );
    let listed = json(&a.get("/api/v1/maintenance").await);
    assert_eq!(listed["store"]["ok"], false);

    tokio::task::block_in_place(|| pg.start_again());
    eventually(Duration::from_secs(15), "the store is back", || async {
        (a.metrics().await.value("dbvigil_maintenance_store_up", &[]) == 1.0).then_some(())
    })
    .await;
    let r = post(
        &a,
        "/api/v1/maintenance",
        r#"{"scope":"orders","reason":"after the outage","duration":"5m"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_application_flag_opens_and_closes_a_window() {
    let Some(pg) = tokio::task::spawn_blocking(PgServer::start).await.unwrap() else {
        return;
    };
    pg.psql("CREATE TABLE service_context (id int PRIMARY KEY, maintenance boolean NOT NULL); INSERT INTO service_context VALUES (1, false);");
    let dir = tempdir();
    let yaml = config(dir.path(), "", &pg.url("postgres", None, "postgres"))
        .replace("state:\n  url: \n  refresh_interval: 200ms\n", "");
    let e = TestExporter::start(dir.path(), &yaml).await;
    eventually(
        Duration::from_secs(10),
        "the flag is read as off",
        || async {
            (e.metrics()
                .await
                .get("dbvigil_maintenance_app_flag", &[("target", "orders")])
                == Some(0.0))
            .then_some(())
        },
    )
    .await;
    tokio::task::block_in_place(|| pg.psql("UPDATE service_context SET maintenance = true"));
    eventually(
        Duration::from_secs(10),
        "the flag opens a window",
        || async { (e.get("/maintenance/orders").await.status == 503).then_some(()) },
    )
    .await;
    tokio::task::block_in_place(|| pg.psql("UPDATE service_context SET maintenance = false"));
    eventually(
        Duration::from_secs(10),
        "clearing the flag closes it",
        || async { (e.get("/maintenance/orders").await.status == 200).then_some(()) },
    )
    .await;
    e.stop().await;
}
