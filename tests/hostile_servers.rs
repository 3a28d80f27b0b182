//! Answers dbvigil does not expect, from small TCP servers written here (no real server
//! behaves this way on purpose) and from a real server with a table of another shape. Each
//! is a labelled failure of its own target, never a panic or a stuck task.

mod common;

use std::time::{Duration, Instant};

use common::db::{Db, Engine, config, target};
use common::{TestExporter, eventually, tempdir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(30);

async fn last_error(e: &TestExporter, name: &str) -> (Option<String>, String) {
    let t = e.target_json(name).await;
    let error = &t["last_probe"]["error"];
    (
        error["reason"].as_str().map(str::to_owned),
        error["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Accepts connections and then does `behaviour` with each, in its own task.
async fn server<F, Fut>(behaviour: F) -> u16
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(behaviour(stream));
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_that_accepts_and_never_speaks_times_out_and_delays_nobody() {
    // Holds every connection open, reading and never answering.
    let silent = server(|mut s| async move {
        let mut buf = [0u8; 1024];
        while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
    let dir = tempdir();
    let yaml = format!(
        "targets:\n\
         \x20 - {{name: pg, kind: postgres, host: 127.0.0.1, port: {silent}, user: u, interval: 500ms, timeout: 300ms,\n\
         \x20     migrations: {{interval: 1s, timeout: 500ms}}}}\n\
         \x20 - {{name: my, kind: mysql, host: 127.0.0.1, port: {silent}, user: u, database: d, interval: 500ms, timeout: 300ms}}\n\
         \x20 - {{name: file, kind: sqlite, path: ok.db, create: true, interval: 200ms}}\n"
    );
    let e = TestExporter::start(dir.path(), &yaml).await;
    for name in ["pg", "my"] {
        eventually(WAIT, &format!("{name} fails with timeout"), || async {
            (last_error(&e, name).await.0.as_deref() == Some("timeout")).then_some(())
        })
        .await;
    }
    eventually(WAIT, "the migration read times out", || async {
        let m = e.metrics().await;
        (m.get("dbvigil_migration_read_success", &[("target", "pg")]) == Some(0.0)
            && m.has("dbvigil_migration_last_read_timestamp_seconds"))
        .then_some(())
    })
    .await;
    let m = e.metrics().await;
    assert_eq!(m.get("dbvigil_up", &[("target", "file")]), Some(1.0));
    let started = Instant::now();
    assert_eq!(e.get("/metrics").await.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_hangs_up_mid_handshake_is_an_io_failure() {
    // PostgreSQL: the client speaks first; read its first message, then hang up.
    let pg = server(|mut s| async move {
        let mut buf = [0u8; 8];
        let _ = s.read(&mut buf).await;
    })
    .await;
    // MySQL: the server speaks first; send half a greeting packet, then hang up.
    let my = server(|mut s| async move {
        let _ = s
            .write_all(&[0x4a, 0x00, 0x00, 0x00, 0x0a, b'8', b'.'])
            .await;
    })
    .await;
    let dir = tempdir();
    let yaml = format!(
        "targets:\n\
         \x20 - {{name: pg, kind: postgres, host: 127.0.0.1, port: {pg}, user: u, interval: 300ms, timeout: 250ms, tls: {{mode: disable}}}}\n\
         \x20 - {{name: my, kind: mysql, host: 127.0.0.1, port: {my}, user: u, database: d, interval: 300ms, timeout: 250ms, tls: {{mode: disable}}}}\n"
    );
    let e = TestExporter::start(dir.path(), &yaml).await;
    for name in ["pg", "my"] {
        let (reason, message) = eventually(WAIT, &format!("{name} fails"), || async {
            let (reason, message) = last_error(&e, name).await;
            reason.map(|r| (r, message))
        })
        .await;
        assert_eq!(reason, "io", "{name}: {message}");
        let up = e.metrics().await.get("dbvigil_up", &[("target", name)]);
        assert_eq!(up, Some(0.0), "{name}");
    }
    e.stop().await;
}

/// Someone else's `dbvigil_heartbeat`: the heartbeat checks fail as `query`, saying what
/// to do; connecting still works.
async fn a_heartbeat_table_of_another_shape(engine: Engine) {
    let Some(db) = Db::start(engine) else {
        return;
    };
    db.sql("CREATE TABLE dbvigil_heartbeat (id int PRIMARY KEY, note text);");
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &config(&[target("orders", &db, "300ms", "")])).await;
    let (reason, message) = eventually(WAIT, "the write check fails", || async {
        let (reason, message) = last_error(&e, "orders").await;
        reason.map(|r| (r, message))
    })
    .await;
    assert_eq!(reason, "query", "{message}");
    assert!(
        message.contains("has another layout than dbvigil's heartbeat")
            && message.contains("set heartbeat.schema"),
        "{message}"
    );
    let m = e.metrics().await;
    assert_eq!(
        m.get(
            "dbvigil_check_success",
            &[("target", "orders"), ("check", "connect")]
        ),
        Some(1.0),
        "the server itself is reachable: only the heartbeat is at fault"
    );
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_heartbeat_table_of_another_shape_says_what_to_do() {
    a_heartbeat_table_of_another_shape(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_heartbeat_table_of_another_shape_says_what_to_do() {
    a_heartbeat_table_of_another_shape(Engine::MariaDb).await;
}
