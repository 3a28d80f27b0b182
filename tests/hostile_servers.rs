//! Answers dbvigil does not expect, from small TCP servers written here (no real server
//! behaves this way on purpose) and from real servers with tables of another shape (a
//! heartbeat table, another tool's history table). Each is a labelled failure of its own
//! target or tool, never a panic or a stuck task.

mod common;

use std::time::{Duration, Instant};

use common::db::{Db, Engine, block, config, target};
use common::{Running, TestExporter, eventually, tempdir};
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
         \x20 - {{name: file, kind: sqlite, path: ok.db, create: true, interval: 200ms, failure_threshold: 3}}\n"
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
    // Three probes in a row must fail to take it down: one slow probe of the 200 ms budget
    // on two busy cores (CI runs this file's tests side by side) is not what this tests;
    // the hung targets delaying it would be.
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

/// Flyway's history table as Flyway creates it, with one successful migration.
fn flyway_table(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => {
            "SET ROLE probe;
             DROP TABLE flyway_schema_history;
             CREATE TABLE flyway_schema_history (installed_rank INT NOT NULL, version VARCHAR(50), description VARCHAR(200) NOT NULL, type VARCHAR(20) NOT NULL, script VARCHAR(1000) NOT NULL, checksum INTEGER, installed_by VARCHAR(100) NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT now(), execution_time INTEGER NOT NULL, success BOOLEAN NOT NULL, CONSTRAINT flyway_schema_history_pk PRIMARY KEY (installed_rank));
             INSERT INTO flyway_schema_history VALUES (1, '1', 'init', 'SQL', 'V1__init.sql', 42, 'app', '2024-05-01 12:00:00', 5, true);"
        }
        Engine::MariaDb => {
            "DROP TABLE flyway_schema_history;
             CREATE TABLE `flyway_schema_history` (`installed_rank` INT NOT NULL, `version` VARCHAR(50), `description` VARCHAR(200) NOT NULL, `type` VARCHAR(20) NOT NULL, `script` VARCHAR(1000) NOT NULL, `checksum` INT, `installed_by` VARCHAR(100) NOT NULL, `installed_on` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, `execution_time` INT NOT NULL, `success` BOOL NOT NULL, CONSTRAINT `flyway_schema_history_pk` PRIMARY KEY (`installed_rank`)) ENGINE=InnoDB;
             INSERT INTO flyway_schema_history VALUES (1, '1', 'init', 'SQL', 'V1__init.sql', 42, 'app', '2024-05-01 12:00:00', 5, 1);"
        }
    }
}

/// Someone else's `flyway_schema_history` next to a readable Alembic table, watched by the
/// real binary: the Flyway table is a labelled failure of its own tool (and a log line
/// saying which columns are missing), everything else about the target keeps being
/// reported, and once the table is fixed its series appear.
async fn a_history_table_of_another_shape(engine: Engine) {
    let Some(db) = Db::start(engine) else {
        return;
    };
    let role = match engine {
        Engine::Postgres => "SET ROLE probe;",
        Engine::MariaDb => "",
    };
    block(|| {
        db.sql(&format!(
            "{role}
             CREATE TABLE flyway_schema_history (id int PRIMARY KEY, script varchar(200) NOT NULL, applied_at timestamp NULL);
             INSERT INTO flyway_schema_history VALUES (1, 'V1__init.sql', NULL);
             CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);
             INSERT INTO alembic_version VALUES ('1975ea83b712');"
        ))
    });
    let dir = tempdir();
    std::fs::write(
        dir.path().join("dbvigil.yml"),
        config(&[target(
            "orders",
            &db,
            "300ms",
            "    migrations: {interval: 1s}\n",
        )]),
    )
    .unwrap();
    let run = Running::start(dir.path(), &["--config.file", "dbvigil.yml"], &[]).await;
    let tool = |tool: &'static str| [("target", "orders"), ("tool", tool)];
    let m = eventually(WAIT, "both history tables read, the probe up", || async {
        let m = run.metrics().await;
        (m.get("dbvigil_migration_table_readable", &tool("alembic")) == Some(1.0)
            && m.get("dbvigil_migration_table_readable", &tool("flyway"))
                .is_some()
            && m.get("dbvigil_up", &[("target", "orders")]) == Some(1.0))
        .then_some(m)
    })
    .await;
    assert_eq!(
        m.get("dbvigil_migration_table_readable", &tool("flyway")),
        Some(0.0)
    );
    assert_eq!(
        m.get("dbvigil_migration_read_success", &[("target", "orders")]),
        Some(1.0),
        "the database was read: only one table is at fault"
    );
    let flyway_series: Vec<_> = m
        .samples
        .iter()
        .filter(|(name, labels, _)| {
            name != "dbvigil_migration_table_readable"
                && labels.iter().any(|(k, v)| k == "tool" && v == "flyway")
        })
        .collect();
    assert!(
        flyway_series.is_empty(),
        "nothing is guessed from a table of another shape: {flyway_series:?}"
    );
    let version = [
        ("target", "orders"),
        ("tool", "alembic"),
        ("version", "1975ea83b712"),
    ];
    assert_eq!(m.get("dbvigil_migration_version_info", &version), Some(1.0));
    for check in ["connect", "read", "write"] {
        assert_eq!(
            m.get(
                "dbvigil_check_success",
                &[("target", "orders"), ("check", check)]
            ),
            Some(1.0),
            "{check}"
        );
    }
    let log = run.log();
    let why = log
        .lines()
        .find(|l| l.contains("cannot read a migration history table") && l.contains("tool=flyway"))
        .unwrap_or_else(|| panic!("no log line says why flyway is unreadable:\n{log}"));
    assert!(
        why.contains("flyway_schema_history has unexpected columns: missing installed_rank")
            && why.contains("target=orders"),
        "{why}"
    );

    block(|| db.sql(flyway_table(engine)));
    let flyway_version = [("target", "orders"), ("tool", "flyway"), ("version", "1")];
    let m = eventually(WAIT, "the fixed Flyway table is read", || async {
        let m = run.metrics().await;
        (m.get("dbvigil_migration_table_readable", &tool("flyway")) == Some(1.0)).then_some(m)
    })
    .await;
    assert_eq!(
        m.get("dbvigil_migration_version_info", &flyway_version),
        Some(1.0)
    );
    assert_eq!(
        m.get("dbvigil_migration_applied", &tool("flyway")),
        Some(1.0)
    );
    assert_eq!(
        m.get("dbvigil_migration_failed", &tool("flyway")),
        Some(0.0)
    );
    assert_eq!(m.get("dbvigil_migration_version_info", &version), Some(1.0));
    let log = run.terminate();
    assert!(
        log.contains("migration history table readable again") && !log.contains("panicked"),
        "{log}"
    );
    assert_eq!(
        log.matches("cannot read a migration history table").count(),
        1,
        "said once, not at every read: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_history_table_of_another_shape_is_its_tools_failure_until_fixed() {
    a_history_table_of_another_shape(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_history_table_of_another_shape_is_its_tools_failure_until_fixed() {
    a_history_table_of_another_shape(Engine::MariaDb).await;
}
