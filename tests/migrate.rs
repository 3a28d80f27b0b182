//! `dbvigil migrate` against throwaway PostgreSQL and MariaDB servers and SQLite files: the
//! real binary, real scripts, and the history table read back from the database.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::servers::{MariaDbServer, PgServer};
use common::{Outcome, tempdir};
use dbvigil::migrate::conn::{DbConn, Purpose};

const WAIT: Duration = Duration::from_secs(60);

enum Server {
    Pg(PgServer),
    Maria(MariaDbServer),
    Sqlite(PathBuf),
}

#[derive(Clone, Copy, PartialEq)]
enum Engine {
    Postgres,
    MariaDb,
    Sqlite,
}

/// A database `app` owned by the non-superuser login `app`.
fn start(engine: Engine, dir: &Path) -> Option<Server> {
    match engine {
        Engine::Postgres => PgServer::start().map(|pg| {
            pg.psql("CREATE ROLE app LOGIN IN ROLE trusted; CREATE DATABASE app OWNER app;");
            Server::Pg(pg)
        }),
        Engine::MariaDb => MariaDbServer::start().map(|m| {
            m.sql(
                "CREATE DATABASE app; \
                 CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'app-pw'; \
                 GRANT ALL ON app.* TO 'app'@'127.0.0.1';",
            );
            Server::Maria(m)
        }),
        Engine::Sqlite => Some(Server::Sqlite(dir.join("app.db"))),
    }
}

impl Server {
    fn url(&self) -> String {
        match self {
            Server::Pg(pg) => pg.url("app", None, "app"),
            Server::Maria(m) => m.url("app", Some("app-pw"), "app"),
            Server::Sqlite(path) => format!("sqlite:{}", path.display()),
        }
    }

    /// Rows of a query, each column as text ("" for NULL).
    fn query(&self, sql: &str) -> Vec<Vec<String>> {
        let (kind, endpoint) = dbvigil::config::endpoint_from_url(&self.url()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut conn = DbConn::open(&endpoint, kind, Purpose::Migrate)
                .await
                .unwrap();
            let rows = conn
                .fetch(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            conn.close().await;
            rows.iter()
                .map(|r| r.iter().map(|c| c.text().unwrap_or_default()).collect())
                .collect()
        })
    }

    /// `version:success` per history row, in order.
    fn history(&self) -> Vec<String> {
        self.query(
            "SELECT version, CASE WHEN success IS NULL THEN 'null' WHEN success THEN 'ok' ELSE 'failed' END \
             FROM dbvigil_schema_history ORDER BY installed_rank",
        )
        .iter()
        .map(|r| format!("{}:{}", r[0], r[1]))
        .collect()
    }
}

fn dbvigil(cwd: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dbvigil"));
    cmd.current_dir(cwd)
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("DBVIGIL_CONFIG_FILE")
        .env_remove("DBVIGIL_URL")
        .env_remove("DBVIGIL_MAINTENANCE_TOKEN")
        .env_remove("DBVIGIL_MAINTENANCE_TOKEN_FILE");
    cmd
}

fn migrate(cwd: &Path, args: &[&str]) -> Outcome {
    Outcome::of(&mut dbvigil(cwd, &[&["migrate"], args].concat()))
}

/// A running `dbvigil migrate` whose stdout is collected line by line.
struct Background {
    child: Child,
    stdout: Arc<Mutex<String>>,
}

impl Background {
    fn start(cwd: &Path, args: &[&str]) -> Background {
        let mut child = dbvigil(cwd, &[&["migrate"], args].concat())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(String::new()));
        let pipe = child.stdout.take().unwrap();
        let sink = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Background { child, stdout }
    }

    fn wait_for_output(&self, needle: &str) {
        wait_until(&format!("output {needle:?}"), || {
            self.stdout.lock().unwrap().contains(needle)
        });
    }

    fn finish(mut self) -> Outcome {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "migrate did not finish");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        use std::io::Read;
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        // The reader thread sees EOF once the process is gone.
        wait_until("stdout closed", || Arc::strong_count(&self.stdout) == 1);
        Outcome {
            code: status.code().unwrap_or(-1),
            stdout: self.stdout.lock().unwrap().clone(),
            stderr,
        }
    }
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// Apply, re-run, fail, stay blocked, repair, and refuse an edited script.
fn lifecycle(engine: Engine) {
    let tmp = tempdir();
    let Some(db) = start(engine, tmp.path()) else {
        return;
    };
    let url = db.url();
    let dir = tmp.path().join("migrations");
    std::fs::create_dir(&dir).unwrap();
    write(
        &dir,
        "V1__create_items.sql",
        "-- items; semicolons in comments and strings do not split\n\
         CREATE TABLE items (id int PRIMARY KEY, note varchar(50));\n\
         INSERT INTO items VALUES (1, 'semi;colon');\n\
         INSERT INTO items VALUES (2, 'it''s');\n",
    );
    write(
        &dir,
        "V1_1__add_qty.sql",
        "ALTER TABLE items ADD qty int;\n",
    );
    write(&dir, "README.md", "not a script\n");
    let base = [
        "--database-url",
        url.as_str(),
        "--dir",
        dir.to_str().unwrap(),
    ];
    let args = |extra: &[&'static str]| -> Vec<String> {
        base.iter()
            .copied()
            .chain(extra.iter().copied())
            .map(str::to_owned)
            .collect()
    };
    let run = |extra: &[&'static str]| {
        let a = args(extra);
        migrate(
            tmp.path(),
            &a.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };

    let out = run(&["run"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("README.md: not a migration script"),
        "{out:?}"
    );
    assert!(out.stderr.contains("--ignore 'README.md'"), "{out:?}");

    let out = run(&["--ignore", "*.md", "run", "--dry-run"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("would apply V1 create items (V1__create_items.sql)"),
        "{out:?}"
    );
    assert!(out.stdout.contains("would apply V1.1 add qty"), "{out:?}");
    let tables = db.query(match engine {
        Engine::Postgres => {
            "SELECT count(*) FROM pg_tables WHERE tablename IN ('items', 'dbvigil_schema_history')"
        }
        Engine::MariaDb => {
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'app'"
        }
        Engine::Sqlite => "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
    });
    assert_eq!(tables[0][0], "0", "a dry run creates nothing");

    let out = run(&["--ignore", "*.md", "run"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("applied 2 script(s); now at version 1.1"),
        "{out:?}"
    );
    assert_eq!(db.history(), ["1:ok", "1.1:ok"]);
    assert_eq!(
        db.query("SELECT note FROM items ORDER BY id"),
        [["semi;colon"], ["it's"]]
    );

    let out = run(&["--ignore", "*.md", "run"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("up to date; nothing to apply"),
        "{out:?}"
    );
    assert_eq!(db.history(), ["1:ok", "1.1:ok"], "a re-run applies nothing");

    write(
        &dir,
        "V2__broken.sql",
        "INSERT INTO items (id, note) VALUES (3, 'three');\nSELECT * FROM no_such_table;\n",
    );
    let out = run(&["--ignore", "*.md", "run"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("FAILED V2__broken.sql line 2:"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("no_such_table"),
        "the server's message: {out:?}"
    );
    assert_eq!(db.history(), ["1:ok", "1.1:ok", "2:failed"]);
    let kept = db.query("SELECT count(*) FROM items WHERE id = 3");
    if engine == Engine::MariaDb {
        assert!(out.stderr.contains("may have been applied"), "{out:?}");
        assert_eq!(kept[0][0], "1", "MySQL autocommits each statement");
    } else {
        assert!(out.stderr.contains("was rolled back"), "{out:?}");
        assert_eq!(kept[0][0], "0", "the failed script was rolled back");
    }

    write(&dir, "V2__broken.sql", "UPDATE items SET qty = 1;\n");
    let out = run(&["--ignore", "*.md", "run"]);
    assert_eq!(out.code, 3, "a recorded failure blocks runs: {out:?}");
    assert!(
        out.stderr.contains("V2 (V2__broken.sql) failed at"),
        "{out:?}"
    );
    assert!(out.stderr.contains("dbvigil migrate repair"), "{out:?}");

    let out = run(&["--ignore", "*.md", "repair"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("removed the failed entry of V2 (V2__broken.sql)"),
        "{out:?}"
    );
    let out = run(&["--ignore", "*.md", "run"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(db.history(), ["1:ok", "1.1:ok", "2:ok"]);

    write(
        &dir,
        "V1_1__add_qty.sql",
        "ALTER TABLE items ADD qty int; -- edited\n",
    );
    for command in ["validate", "run"] {
        let out = run(&["--ignore", "*.md", command]);
        assert_eq!(out.code, 3, "{command}: {out:?}");
        assert!(
            out.stderr
                .contains("V1.1 (V1_1__add_qty.sql) has changed since it was applied"),
            "{out:?}"
        );
    }
    let out = run(&["--ignore", "*.md", "repair"]);
    assert!(
        out.stdout.contains("accepted the edited script of V1.1"),
        "{out:?}"
    );
    let out = run(&["--ignore", "*.md", "validate"]);
    assert_eq!(out.code, 0, "{out:?}");

    let out = run(&["--ignore", "*.md", "--output", "json", "info"]);
    assert_eq!(out.code, 0, "{out:?}");
    let doc: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let states: Vec<&str> = doc["databases"][0]["status"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["applied", "applied", "applied"]);
    assert_eq!(doc["exit_code"], 0);
}

#[test]
fn postgres_lifecycle() {
    lifecycle(Engine::Postgres);
}

#[test]
fn mariadb_lifecycle() {
    lifecycle(Engine::MariaDb);
}

#[test]
fn sqlite_lifecycle() {
    lifecycle(Engine::Sqlite);
}

/// Runs `migrate` with the database URL and a scripts directory.
fn migrate_dir(cwd: &Path, db: &Server, dir: &Path, args: &[&str]) -> Outcome {
    let url = db.url();
    let base = [
        "--database-url",
        url.as_str(),
        "--dir",
        dir.to_str().unwrap(),
    ];
    migrate(cwd, &[&base[..], args].concat())
}

fn scripts(tmp: &Path, files: &[(&str, &str)]) -> PathBuf {
    let dir = tmp.join("migrations");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        write(&dir, name, text);
    }
    dir
}

/// One run holds the lock: a second gives up naming the holder, a third waits and then
/// finds nothing to apply. The script runs once.
fn concurrent_runs(engine: Engine) {
    let tmp = tempdir();
    let Some(db) = start(engine, tmp.path()) else {
        return;
    };
    let sleep = match engine {
        Engine::Postgres => "SELECT pg_sleep(3);",
        _ => "SELECT SLEEP(3);",
    };
    let dir = scripts(
        tmp.path(),
        &[(
            "V1__slow.sql",
            &format!("CREATE TABLE slow (id int);\n{sleep}\n"),
        )],
    );
    let url = db.url();
    let dir_arg = dir.to_str().unwrap();
    let base = ["--database-url", url.as_str(), "--dir", dir_arg];
    let first = Background::start(tmp.path(), &[&base[..], &["run"]].concat());
    first.wait_for_output("applying V1 slow");

    let out = migrate_dir(tmp.path(), &db, &dir, &["--lock-timeout", "1s", "run"]);
    assert_eq!(out.code, 5, "{out:?}");
    assert!(
        out.stderr
            .contains("another migration run holds the lock: "),
        "{out:?}"
    );
    assert!(
        out.stderr.contains(" since 20"),
        "names since when: {out:?}"
    );
    match engine {
        Engine::Postgres => assert!(
            out.stderr.contains("application \"dbvigil migrate\""),
            "{out:?}"
        ),
        _ => assert!(
            out.stderr.contains("MySQL connection") && out.stderr.contains(", user app@127.0.0.1"),
            "{out:?}"
        ),
    }

    let waiting = Background::start(
        tmp.path(),
        &[&base[..], &["--lock-timeout", "60s", "run"]].concat(),
    );
    waiting.wait_for_output("waiting for the migration lock");
    let out = first.finish();
    assert_eq!(out.code, 0, "{out:?}");
    let out = waiting.finish();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("up to date; nothing to apply"),
        "{out:?}"
    );
    assert_eq!(db.history(), ["1:ok"], "applied once");
}

#[test]
fn postgres_runs_one_at_a_time() {
    concurrent_runs(Engine::Postgres);
}

#[test]
fn mariadb_runs_one_at_a_time() {
    concurrent_runs(Engine::MariaDb);
}

#[test]
fn sqlite_runs_one_at_a_time() {
    let tmp = tempdir();
    let db = start(Engine::Sqlite, tmp.path()).unwrap();
    let dir = scripts(tmp.path(), &[("V1__t.sql", "CREATE TABLE t (id int);\n")]);
    let (runtime, mut holder) = hold_migration_lock(&db, Engine::Sqlite);
    let out = migrate_dir(tmp.path(), &db, &dir, &["--lock-timeout", "1s", "run"]);
    assert_eq!(out.code, 5, "{out:?}");
    assert!(
        out.stderr
            .contains("another migration run holds the lock; gave up after 1s"),
        "{out:?}"
    );
    runtime.block_on(async { holder.execute("COMMIT").await.unwrap() });
    let out = migrate_dir(tmp.path(), &db, &dir, &["run"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(db.history(), ["1:ok"]);
}

/// The background document's plan: four scripts for one MariaDB database, run in order.
#[test]
fn csv_plan_runs_four_scripts_in_order() {
    let tmp = tempdir();
    let Some(db) = start(Engine::MariaDb, tmp.path()) else {
        return;
    };
    let Server::Maria(m) = &db else {
        unreachable!()
    };
    common::plan::write_scripts(tmp.path());
    let header = common::plan::HEADER;
    let rows = common::plan::rows(
        "localhost,howarddeiner,password",
        "127.0.0.1,app,app-pw",
        m.port(),
    );
    write(tmp.path(), "localhost.csv", &format!("{header}\n{rows}"));

    // The runner is this machine: the rows connect directly.
    let run_direct = |plan: &str| {
        let args = ["--plan", plan, "--plan-direct", "--engine", "mysql", "run"];
        migrate(tmp.path(), &args)
    };
    let out = migrate(tmp.path(), &["--plan", "localhost.csv", "run"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("cannot tell the engine from port"),
        "{out:?}"
    );
    assert!(
        !out.stderr.contains("app-pw"),
        "no password in errors: {out:?}"
    );

    let out = run_direct("localhost.csv");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("sql_runner_password columns are not used"),
        "{out:?}"
    );
    assert_eq!(db.history(), ["1.1:ok", "1.2:ok", "2.1:ok", "3.1:ok"]);
    assert_eq!(
        db.query("SELECT CAST(COUNT(*) AS SIGNED), CAST(SUM(lat > 1) AS SIGNED) FROM zipcode"),
        [["3", "2"]]
    );
    assert!(!out.stdout.contains("app-pw") && !out.stderr.contains("app-pw"));

    let out = run_direct("localhost.csv");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("up to date"), "{out:?}");

    let reversed: String = rows.lines().rev().map(|l| format!("{l}\n")).collect();
    write(tmp.path(), "reversed.csv", &format!("{header}\n{reversed}"));
    let out = run_direct("reversed.csv");
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("order the rows by version"), "{out:?}");
}

#[test]
fn mariadb_procedures_and_triggers_with_delimiter() {
    let tmp = tempdir();
    let Some(db) = start(Engine::MariaDb, tmp.path()) else {
        return;
    };
    let dir = scripts(
        tmp.path(),
        &[
            (
                "V1__counter.sql",
                "CREATE TABLE counter (n INT NOT NULL);\n\
                 INSERT INTO counter VALUES (0);\n\
                 DELIMITER //\n\
                 CREATE PROCEDURE bump(IN by_n INT)\n\
                 BEGIN\n\
                 \x20 UPDATE counter SET n = n + by_n; -- a semicolon inside the body\n\
                 END //\n\
                 CREATE TRIGGER never_negative BEFORE UPDATE ON counter FOR EACH ROW\n\
                 BEGIN\n\
                 \x20 IF NEW.n < 0 THEN SET NEW.n = 0; END IF;\n\
                 END//\n\
                 DELIMITER ;\n\
                 CALL bump(5);\n",
            ),
            ("V2__below_zero.sql", "CALL bump(-10);\n"),
        ],
    );
    let out = migrate_dir(tmp.path(), &db, &dir, &["run"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(db.history(), ["1:ok", "2:ok"]);
    assert_eq!(
        db.query("SELECT n FROM counter"),
        [["0"]],
        "the trigger clamped it"
    );
    assert_eq!(
        db.query("SELECT CAST(COUNT(*) AS SIGNED) FROM information_schema.routines WHERE routine_schema = 'app' AND routine_name = 'bump'"),
        [["1"]]
    );
}

#[test]
fn postgres_functions_with_dollar_quotes() {
    let tmp = tempdir();
    let Some(db) = start(Engine::Postgres, tmp.path()) else {
        return;
    };
    let dir = scripts(
        tmp.path(),
        &[(
            "V1__functions.sql",
            "CREATE TABLE audit (id serial PRIMARY KEY, note text);\n\
             CREATE FUNCTION log_note(t text) RETURNS integer LANGUAGE plpgsql AS $$\n\
             DECLARE new_id integer;\n\
             BEGIN\n\
             \x20 INSERT INTO audit (note) VALUES (t || ';') RETURNING id INTO new_id;\n\
             \x20 RETURN new_id;\n\
             END;\n\
             $$;\n\
             CREATE FUNCTION tagged() RETURNS text LANGUAGE sql AS $fn$ SELECT 'a;b' $fn$;\n\
             SELECT log_note('from migration');\n",
        )],
    );
    let out = migrate_dir(tmp.path(), &db, &dir, &["run"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        db.query("SELECT note, tagged() FROM audit"),
        [["from migration;", "a;b"]]
    );
}

#[test]
fn wait_for_a_server_that_starts_late() {
    let tmp = tempdir();
    let Some(mut db) = start(Engine::Postgres, tmp.path()) else {
        return;
    };
    let dir = scripts(tmp.path(), &[("V1__t.sql", "CREATE TABLE t (id int);\n")]);
    let Server::Pg(pg) = &mut db else {
        unreachable!()
    };
    pg.stop();
    let out = migrate_dir(tmp.path(), &db, &dir, &["run"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(out.stderr.contains("cannot connect"), "{out:?}");
    assert!(out.stderr.contains("pass --wait-for 60s"), "{out:?}");

    let url = db.url();
    let waiting = Background::start(
        tmp.path(),
        &[
            "--database-url",
            &url,
            "--dir",
            dir.to_str().unwrap(),
            "--wait-for",
            "60s",
            "run",
        ],
    );
    waiting.wait_for_output("waiting for the database (");
    let Server::Pg(pg) = &mut db else {
        unreachable!()
    };
    pg.start_again();
    let out = waiting.finish();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("accepting connections after"),
        "{out:?}"
    );
    assert_eq!(db.history(), ["1:ok"]);

    let Server::Pg(pg) = &mut db else {
        unreachable!()
    };
    pg.stop();
    let out = migrate_dir(tmp.path(), &db, &dir, &["--wait-for", "2s", "info"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr
            .contains("still not accepting connections after 2s"),
        "{out:?}"
    );
}

const TOKEN: &str = "migration-token-0123456789";

/// The exporter's metrics follow a run from in progress to success and to failure, and
/// `--maintenance` brackets a successful run with a window and leaves a failed one's open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_follows_runs_that_maintenance_brackets() {
    use common::{TestExporter, eventually};
    let tmp = tempdir();
    let Some(db) = tokio::task::spawn_blocking({
        let path = tmp.path().to_owned();
        move || start(Engine::Postgres, &path)
    })
    .await
    .unwrap() else {
        return;
    };
    let dir = scripts(
        tmp.path(),
        &[(
            "V1__slow.sql",
            "CREATE TABLE items (id int);\nSELECT pg_sleep(2);\n",
        )],
    );
    write(tmp.path(), "tokens", &format!("{TOKEN}\n"));
    let yaml = format!(
        "targets:\n  - name: orders\n    kind: postgres\n    url: {}\n    checks: [connect, read]\n    interval: 1s\n\
         \x20   migrations:\n      directory: migrations\n      interval: 1s\n\
         maintenance:\n  tokens_file: tokens\n",
        db.url()
    );
    let exporter = TestExporter::start(tmp.path(), &yaml).await;
    let metric = |name: &'static str, extra: &'static [(&'static str, &'static str)]| {
        let exporter = &exporter;
        async move {
            let mut labels = vec![("target", "orders")];
            labels.extend_from_slice(extra);
            exporter.metrics().await.get(name, &labels)
        }
    };
    let dbvigil_tool: &[(&str, &str)] = &[("tool", "dbvigil")];
    let wait = Duration::from_secs(30);
    eventually(wait, "one pending script", || async {
        (metric("dbvigil_migration_pending", dbvigil_tool).await == Some(1.0)).then_some(())
    })
    .await;

    let config = exporter.config_path.to_str().unwrap().to_owned();
    let url = format!("http://{}", exporter.addr);
    let maintenance = [
        "run",
        "--maintenance",
        "--dbvigil-url",
        url.as_str(),
        "--token",
        TOKEN,
    ];
    let base = ["--config.file", config.as_str(), "--target", "orders"];
    let running = Background::start(tmp.path(), &[&base[..], &maintenance[..]].concat());
    eventually(wait, "the run shows as in progress", || async {
        (metric("dbvigil_migration_in_progress", dbvigil_tool).await == Some(1.0)).then_some(())
    })
    .await;
    assert_eq!(
        exporter.get("/maintenance/orders").await.status,
        503,
        "the window is open while the script runs"
    );
    let out = tokio::task::block_in_place(|| running.finish());
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("opened maintenance window"), "{out:?}");
    assert!(out.stdout.contains("ended maintenance window"), "{out:?}");
    assert_eq!(exporter.get("/maintenance/orders").await.status, 200);
    eventually(wait, "the run shows as finished", || async {
        let m = exporter.metrics().await;
        let l = [("target", "orders"), ("tool", "dbvigil")];
        let done = m.get("dbvigil_migration_in_progress", &l) == Some(0.0)
            && m.get("dbvigil_migration_last_run_success", &l) == Some(1.0)
            && m.get("dbvigil_migration_applied", &l) == Some(1.0)
            && m.get("dbvigil_migration_pending", &l) == Some(0.0)
            && m.get(
                "dbvigil_migration_version_info",
                &[("target", "orders"), ("tool", "dbvigil"), ("version", "1")],
            ) == Some(1.0);
        done.then_some(m)
    })
    .await;
    let m = exporter.metrics().await;
    let l = [("target", "orders"), ("tool", "dbvigil")];
    assert!(m.value("dbvigil_migration_last_run_duration_seconds", &l) >= 2.0);
    assert_eq!(m.value("dbvigil_migration_failed", &l), 0.0);

    write(&dir, "V2__broken.sql", "SELECT * FROM no_such_table;\n");
    let out = tokio::task::block_in_place(|| {
        migrate(tmp.path(), &[&base[..], &maintenance[..]].concat())
    });
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("stays open until"), "{out:?}");
    assert_eq!(
        exporter.get("/maintenance/orders").await.status,
        503,
        "a failed run leaves its window to expire"
    );
    eventually(wait, "the failure shows", || async {
        let m = exporter.metrics().await;
        (m.get("dbvigil_migration_failed", &l) == Some(1.0)
            && m.get("dbvigil_migration_last_run_success", &l) == Some(0.0))
        .then_some(())
    })
    .await;

    write(
        &dir,
        "V1__slow.sql",
        "CREATE TABLE items (id int);\nSELECT pg_sleep(1);\n",
    );
    eventually(wait, "the edited script shows as drift", || async {
        (metric("dbvigil_migration_checksum_drift", dbvigil_tool).await == Some(1.0)).then_some(())
    })
    .await;
    exporter.stop().await;
}

/// The connection dies mid-script: nothing of the script and no history row stay, and the
/// next run applies it whole.
#[test]
fn a_connection_lost_mid_script_leaves_nothing_half_done() {
    let tmp = tempdir();
    let Some(db) = start(Engine::Postgres, tmp.path()) else {
        return;
    };
    let dir = scripts(
        tmp.path(),
        &[(
            "V1__t.sql",
            "CREATE TABLE t (id int);\nSELECT pg_terminate_backend(pg_backend_pid());\n",
        )],
    );
    let out = migrate_dir(tmp.path(), &db, &dir, &["run"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert_eq!(
        db.query("SELECT count(*) FROM pg_tables WHERE tablename = 't'"),
        [["0"]]
    );
    assert!(db.history().is_empty(), "{:?}", db.history());

    write(&dir, "V1__t.sql", "CREATE TABLE t (id int);\n");
    let out = migrate_dir(tmp.path(), &db, &dir, &["run"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(db.history(), ["1:ok"]);
}

/// A script that breaks dbvigil's own bookkeeping (it drops the history table) is rolled
/// back whole where the engine can: its changes never stay without their history row.
fn bookkeeping_failure_rolls_back(engine: Engine) {
    let tmp = tempdir();
    let Some(db) = start(engine, tmp.path()) else {
        return;
    };
    let dir = scripts(tmp.path(), &[("V1__t1.sql", "CREATE TABLE t1 (id int);\n")]);
    assert_eq!(migrate_dir(tmp.path(), &db, &dir, &["run"]).code, 0);
    write(
        &dir,
        "V2__t2.sql",
        "CREATE TABLE t2 (id int);\nDROP TABLE dbvigil_schema_history;\n",
    );
    let out = migrate_dir(tmp.path(), &db, &dir, &["run"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert_eq!(
        db.history(),
        ["1:ok"],
        "the history table is back, unchanged"
    );
    let t2 = db.query(match engine {
        Engine::Postgres => "SELECT count(*) FROM pg_tables WHERE tablename = 't2'",
        _ => "SELECT count(*) FROM sqlite_master WHERE name = 't2'",
    });
    assert_eq!(t2, [["0"]], "the script's changes were rolled back");
}

#[test]
fn postgres_bookkeeping_failure_rolls_back() {
    bookkeeping_failure_rolls_back(Engine::Postgres);
}

#[test]
fn sqlite_bookkeeping_failure_rolls_back() {
    bookkeeping_failure_rolls_back(Engine::Sqlite);
}

/// A frozen database fails only its own migration reads, within its timeout; another
/// target's reads go on and the scrape answers from memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_database_delays_only_its_own_migration_reads() {
    use common::{TestExporter, eventually};
    let tmp = tempdir();
    let Some(db) = tokio::task::spawn_blocking({
        let path = tmp.path().to_owned();
        move || start(Engine::Postgres, &path)
    })
    .await
    .unwrap() else {
        return;
    };
    let yaml = format!(
        "targets:\n  - name: frozen\n    kind: postgres\n    url: {}\n    checks: [connect, read]\n    interval: 1s\n\
         \x20   migrations:\n      interval: 1s\n      timeout: 1s\n\
         \x20 - name: fine\n    kind: sqlite\n    path: fine.db\n    create: true\n    interval: 1s\n\
         \x20   migrations:\n      interval: 1s\n",
        db.url()
    );
    let exporter = TestExporter::start(tmp.path(), &yaml).await;
    let read = |target: &'static str| {
        let exporter = &exporter;
        async move {
            let m = exporter.metrics().await;
            (
                m.get("dbvigil_migration_read_success", &[("target", target)]),
                m.get(
                    "dbvigil_migration_last_read_timestamp_seconds",
                    &[("target", target)],
                ),
            )
        }
    };
    let wait = Duration::from_secs(30);
    eventually(wait, "both targets read", || async {
        (read("frozen").await.0 == Some(1.0) && read("fine").await.0 == Some(1.0)).then_some(())
    })
    .await;

    let Server::Pg(pg) = &db else { unreachable!() };
    tokio::task::block_in_place(|| pg.freeze());
    eventually(wait, "the frozen target's read times out", || async {
        (read("frozen").await.0 == Some(0.0)).then_some(())
    })
    .await;
    let before = read("fine").await.1.unwrap();
    eventually(wait, "the other target is still read", || async {
        (read("fine").await.1.unwrap() > before).then_some(())
    })
    .await;
    let started = Instant::now();
    let scrape = exporter.get("/metrics").await;
    assert_eq!(scrape.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a scrape renders from memory, frozen database or not: {:?}",
        started.elapsed()
    );
    tokio::task::block_in_place(|| pg.thaw());
    eventually(wait, "the thawed target is read again", || async {
        (read("frozen").await.0 == Some(1.0)).then_some(())
    })
    .await;
    exporter.stop().await;
}

/// Passwords given in a URL (also percent-encoded) or a plan never reach any output of
/// `dbvigil migrate`, in text or JSON, whether the server is unreachable or refuses them.
#[test]
fn migrate_never_prints_a_password() {
    const SECRET: &str = "S3cret@pw";
    const ENCODED: &str = "S3cret%40pw";
    let tmp = tempdir();
    let Some(db) = start(Engine::MariaDb, tmp.path()) else {
        return;
    };
    let Server::Maria(m) = &db else {
        unreachable!()
    };
    let dir = scripts(tmp.path(), &[("V1__t.sql", "CREATE TABLE t (id int);\n")]);
    let dir_arg = dir.to_str().unwrap();
    let closed = common::servers::free_port();
    let refused = format!("mysql://app:{ENCODED}@127.0.0.1:{}/app", m.port());
    let unreachable = format!("postgres://app:{ENCODED}@127.0.0.1:{closed}/app");
    let header = "sql_runner_host,sql_runner_userid,sql_runner_password,database_host,database_userid,database_password,port,database,sql_script_to_run";
    write(
        tmp.path(),
        "plan.csv",
        &format!(
            "{header}\nlocalhost,me,{SECRET},127.0.0.1,app,{SECRET},{},app,{dir_arg}/V1__t.sql\n",
            m.port()
        ),
    );
    let mut outputs = Vec::new();
    for output in ["text", "json"] {
        for url in [&refused, &unreachable] {
            for command in [&["run"][..], &["info"], &["baseline", "--version", "1"]] {
                let out = migrate(
                    tmp.path(),
                    &[
                        &[
                            "--database-url",
                            url.as_str(),
                            "--dir",
                            dir_arg,
                            "--output",
                            output,
                        ][..],
                        command,
                    ]
                    .concat(),
                );
                assert_eq!(out.code, 4, "{out:?}");
                outputs.push(out);
            }
        }
        let out = migrate(
            tmp.path(),
            &[
                "--plan",
                "plan.csv",
                "--plan-direct",
                "--engine",
                "mysql",
                "--output",
                output,
                "run",
            ],
        );
        assert_eq!(out.code, 4, "{out:?}");
        outputs.push(out);
    }
    assert!(
        outputs.iter().any(|o| o.stderr.contains("Access denied")),
        "the server's refusal is reported"
    );
    for out in &outputs {
        for secret in [SECRET, ENCODED] {
            assert!(
                !out.stdout.contains(secret) && !out.stderr.contains(secret),
                "{secret} leaked: {out:?}"
            );
        }
    }
}

/// Holds the migration lock, as a run holding it would, until the connection is dropped.
fn hold_migration_lock(db: &Server, engine: Engine) -> (tokio::runtime::Runtime, DbConn) {
    let (kind, endpoint) = dbvigil::config::endpoint_from_url(&db.url()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let conn = runtime.block_on(async {
        let mut c = DbConn::open(&endpoint, kind, Purpose::Migrate)
            .await
            .unwrap();
        let take = match engine {
            // The bytes of "dbvigilm".
            Engine::Postgres => format!("SELECT pg_advisory_lock({})", 0x6462_7669_6769_6c6d_i64),
            Engine::MariaDb => "SELECT GET_LOCK('dbvigil_migrate:app', 0)".to_owned(),
            Engine::Sqlite => "BEGIN EXCLUSIVE".to_owned(),
        };
        c.execute(&take).await.unwrap();
        c
    });
    (runtime, conn)
}

/// A database whose tables were made by hand is adopted: `baseline` records the version
/// it is at, under the run lock, once; scripts up to it never run, `run` applies those above
/// it, and `info`/`validate --exit-code` tell a pipeline whether anything is pending.
fn adopt(engine: Engine) {
    let tmp = tempdir();
    let Some(db) = start(engine, tmp.path()) else {
        return;
    };
    for sql in [
        "CREATE TABLE items (id int PRIMARY KEY)",
        "CREATE TABLE orders (id int PRIMARY KEY)",
    ] {
        db.query(sql);
    }
    // V1 and V2 fail if they ever run: their tables are there already.
    let dir = scripts(
        tmp.path(),
        &[
            (
                "V1__create_items.sql",
                "CREATE TABLE items (id int PRIMARY KEY);\n",
            ),
            (
                "V2__create_orders.sql",
                "CREATE TABLE orders (id int PRIMARY KEY);\n",
            ),
            (
                "V3__add_status.sql",
                "ALTER TABLE orders ADD status varchar(20);\n",
            ),
        ],
    );
    let run = |args: &[&str]| migrate_dir(tmp.path(), &db, &dir, args);
    let json = |out: &Outcome| -> serde_json::Value {
        serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {out:?}"))
    };

    for (args, code) in [
        (&["info"][..], 0),
        (&["info", "--exit-code"], 7),
        (&["validate"], 0),
        (&["validate", "--exit-code"], 7),
    ] {
        let out = run(args);
        assert_eq!(out.code, code, "{args:?}: {out:?}");
    }
    let out = run(&["--output", "json", "validate", "--exit-code"]);
    assert_eq!(out.code, 7, "{out:?}");
    let doc = json(&out);
    assert_eq!(doc["exit_code"], 7);
    assert_eq!(doc["databases"][0]["pending"], 3);

    let out = run(&["baseline", "--version", "4"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains(
            ": baseline version 4 is above every script (the highest is V3, V3__add_status.sql): give the version of the last script the database already has"
        ),
        "{out:?}"
    );
    let out = run(&["baseline", "--version", "2x"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains(
            "invalid value '2x' for '--version <VERSION>': version \"2x\" must be numbers separated by '.' or '_', like 1, 1_1 or 2.3.1"
        ),
        "{out:?}"
    );

    let (runtime, holder) = hold_migration_lock(&db, engine);
    let out = run(&["--lock-timeout", "1s", "baseline", "--version", "2"]);
    assert_eq!(out.code, 5, "baseline waits for a run's lock: {out:?}");
    assert!(
        out.stderr.contains("another migration run holds the lock"),
        "{out:?}"
    );
    runtime.block_on(holder.close());
    let out = run(&["--output", "json", "info"]);
    assert_eq!(
        json(&out)["databases"][0]["pending"],
        3,
        "nothing recorded: {out:?}"
    );
    let recorded = |db: &Server| {
        db.query(
            "SELECT version, description, script, checksum, execution_time_ms FROM dbvigil_schema_history",
        )
    };

    let out = run(&["baseline", "--version", "2"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("baselined at version 2; 0 applied, 2 baselined, 1 pending"),
        "{out:?}"
    );
    assert_eq!(
        recorded(&db),
        [["2", "baseline", "<< baseline >>", "", "0"]]
    );

    let out = run(&[
        "--output",
        "json",
        "baseline",
        "--version",
        "1",
        "--description",
        "again",
    ]);
    assert_eq!(out.code, 3, "{out:?}");
    let doc = json(&out);
    let error = doc["databases"][0]["error"].as_str().unwrap();
    assert!(
        error.contains(
            ": refused, nothing was changed:\n  the database was already baselined at V2 on 20"
        ),
        "{error}"
    );
    assert!(
        error.ends_with(": a baseline is recorded once, in an empty history"),
        "{error}"
    );
    assert_eq!(recorded(&db).len(), 1, "a refused baseline changes nothing");

    let out = run(&["info"]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let shown: Vec<(&str, &str, &str)> = lines
        .iter()
        .map(|w| (w[0], w[1], *w.last().unwrap()))
        .collect();
    assert_eq!(
        shown,
        [
            ("2", "baseline", ">>"),
            ("1", "baselined", "V1__create_items.sql"),
            ("2", "baselined", "V2__create_orders.sql"),
            ("3", "pending", "V3__add_status.sql"),
        ],
        "{out:?}"
    );
    let out = run(&["info", "--exit-code"]);
    assert_eq!(out.code, 7, "{out:?}");

    let out = run(&["run"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("applied 1 script(s); now at version 3"),
        "{out:?}"
    );
    assert!(!out.stdout.contains("applying V1"), "{out:?}");
    assert_eq!(db.history(), ["2:ok", "3:ok"]);
    db.query("INSERT INTO orders (id, status) VALUES (1, 'new')");

    for command in ["info", "validate"] {
        let out = run(&["--output", "json", command, "--exit-code"]);
        assert_eq!(out.code, 0, "nothing pending: {out:?}");
        let doc = json(&out);
        assert_eq!(doc["databases"][0]["pending"], 0);
        let states: Vec<&str> = doc["databases"][0]["status"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["baseline", "applied", "baselined", "baselined"]);
    }
    let out = run(&["repair"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("nothing to repair"), "{out:?}");
}

#[test]
fn postgres_adopts_an_existing_database() {
    adopt(Engine::Postgres);
}

#[test]
fn mariadb_adopts_an_existing_database() {
    adopt(Engine::MariaDb);
}

#[test]
fn sqlite_adopts_an_existing_database() {
    adopt(Engine::Sqlite);
}

/// With several databases, `--exit-code` asks every one and says pending if any is.
#[test]
fn a_plan_is_pending_when_any_of_its_databases_is() {
    let tmp = tempdir();
    let Some(db) = start(Engine::MariaDb, tmp.path()) else {
        return;
    };
    let Server::Maria(m) = &db else {
        unreachable!()
    };
    m.sql("CREATE DATABASE other; GRANT ALL ON other.* TO 'app'@'127.0.0.1';");
    let dir = scripts(
        tmp.path(),
        &[
            ("V1__a.sql", "CREATE TABLE a (id int);\n"),
            ("V2__b.sql", "CREATE TABLE b (id int);\n"),
        ],
    );
    let header = "sql_runner_host,sql_runner_userid,sql_runner_password,database_host,database_userid,database_password,port,database,sql_script_to_run";
    let row = |database: &str, script: &str| {
        format!(
            ",,,127.0.0.1,app,app-pw,{},{database},{}/{script}\n",
            m.port(),
            dir.display()
        )
    };
    write(
        tmp.path(),
        "plan.csv",
        &format!(
            "{header}\n{}{}",
            row("app", "V1__a.sql"),
            row("other", "V1__a.sql")
        ),
    );
    let out = migrate(
        tmp.path(),
        &["--plan", "plan.csv", "--engine", "mysql", "run"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    write(
        tmp.path(),
        "plan.csv",
        &format!(
            "{header}\n{}{}{}",
            row("app", "V1__a.sql"),
            row("app", "V2__b.sql"),
            row("other", "V1__a.sql")
        ),
    );
    let out = migrate(
        tmp.path(),
        &[
            "--plan",
            "plan.csv",
            "--engine",
            "mysql",
            "--output",
            "json",
            "info",
            "--exit-code",
        ],
    );
    assert_eq!(out.code, 7, "{out:?}");
    let doc: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let pending: Vec<(&str, u64)> = doc["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["database"].as_str().unwrap(),
                d["pending"].as_u64().unwrap(),
            )
        })
        .collect();
    let app = format!("127.0.0.1:{}/app", m.port());
    let other = format!("127.0.0.1:{}/other", m.port());
    assert_eq!(pending, [(app.as_str(), 1), (other.as_str(), 0)]);
}

/// `new` names the next script as the directory names its scripts, in the directory every
/// subcommand reads (also a target's), and never overwrites or hides a file.
#[test]
fn new_creates_the_next_script() {
    let tmp = tempdir();
    let dir = tmp.path().join("migrations");
    std::fs::create_dir(&dir).unwrap();
    let new = |args: &[&str]| migrate(tmp.path(), args);

    let out = new(&["new", "create", "items"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout, "migrations/V1__create_items.sql\n",
        "the default directory"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("V1__create_items.sql")).unwrap(),
        ""
    );

    for name in ["V2__b.sql", "V3__c.sql"] {
        write(&dir, name, "SELECT 1;\n");
    }
    let out = new(&["--output", "json", "new", "add order status"]);
    assert_eq!(out.code, 0, "{out:?}");
    let doc: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(doc["command"], "new");
    assert_eq!(doc["exit_code"], 0);
    assert_eq!(doc["script"], "V4__add_order_status.sql");
    assert_eq!(doc["path"], "migrations/V4__add_order_status.sql");
    assert!(dir.join("V4__add_order_status.sql").is_file());

    let padded = tmp.path().join("padded");
    std::fs::create_dir(&padded).unwrap();
    write(&padded, "V1_09__a.sql", "");
    let out = new(&["--dir", "padded", "new", "b"]);
    assert_eq!(out.stdout, "padded/V1_10__b.sql\n", "{out:?}");

    // Refusals, with nothing written.
    for (args, message) in [
        (
            &["new", "drop/items"][..],
            "the description has '/', which dbvigil does not put in a script name: use letters, digits, spaces, '.', '-' and '_'\n",
        ),
        (
            &["new", " "],
            "the description is empty: say what the script changes, like `dbvigil migrate new add order status`\n",
        ),
        (
            &["--ignore", "V5__*", "new", "drop", "temp"],
            "V5__drop_temp.sql would match --ignore 'V5__*' (or migrations.ignore) and never run: choose another description, or narrow the pattern\n",
        ),
        (
            &["--dir", "nowhere", "new", "x"],
            "cannot read migrations directory nowhere: No such file or directory (os error 2); check --dir (migrations.directory)\n",
        ),
        (
            &["--plan", "plan.csv", "new", "x"],
            "new writes the next script into a directory, and a plan names each script: pass --dir (or --target) instead of --plan\n",
        ),
    ] {
        let out = new(args);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert_eq!(out.stderr, message, "{args:?}");
    }
    write(&dir, "notes.txt", "");
    let out = new(&["new", "x"]);
    assert_eq!(
        out.code, 2,
        "a misnamed file is refused, as run refuses it: {out:?}"
    );
    assert!(
        out.stderr.starts_with("notes.txt: not a migration script"),
        "{out:?}"
    );
    let names = |d: &Path| {
        let mut n: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    };
    assert_eq!(
        names(&dir),
        [
            "V1__create_items.sql",
            "V2__b.sql",
            "V3__c.sql",
            "V4__add_order_status.sql",
            "notes.txt"
        ]
    );

    // A target's directory and ignore list, as `run --target` reads them.
    write(
        tmp.path(),
        "dbvigil.yml",
        "targets:\n  - name: orders\n    kind: sqlite\n    path: orders.db\n\
         \x20   migrations:\n      directory: migrations\n      ignore: [\"*.txt\"]\n",
    );
    let out = new(&[
        "--config.file",
        "dbvigil.yml",
        "--target",
        "orders",
        "new",
        "x",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.ends_with("migrations/V5__x.sql\n"), "{out:?}");
    assert!(dir.join("V5__x.sql").is_file());
}

/// After a baseline, the exporter reports the baseline's version and counts only the
/// scripts above it as pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_sees_a_baseline() {
    use common::{TestExporter, eventually};
    let tmp = tempdir();
    scripts(
        tmp.path(),
        &[
            ("V1__a.sql", "CREATE TABLE a (id int);\n"),
            ("V2__b.sql", "CREATE TABLE b (id int);\n"),
            ("V3__c.sql", "CREATE TABLE c (id int);\n"),
        ],
    );
    let yaml = "targets:\n  - name: app\n    kind: sqlite\n    path: app.db\n    create: true\n    interval: 1s\n\
                \x20   migrations:\n      directory: migrations\n      interval: 1s\n";
    let exporter = TestExporter::start(tmp.path(), yaml).await;
    let wait = Duration::from_secs(30);
    let l = [("target", "app"), ("tool", "dbvigil")];
    eventually(wait, "three pending scripts", || async {
        (exporter
            .metrics()
            .await
            .get("dbvigil_migration_pending", &l)
            == Some(3.0))
        .then_some(())
    })
    .await;
    let config = exporter.config_path.to_str().unwrap().to_owned();
    let out = tokio::task::block_in_place(|| {
        migrate(
            tmp.path(),
            &[
                "--config.file",
                &config,
                "--target",
                "app",
                "baseline",
                "--version",
                "2",
            ],
        )
    });
    assert_eq!(out.code, 0, "{out:?}");
    eventually(wait, "one pending script, at version 2", || async {
        let m = exporter.metrics().await;
        let at_2 = [("target", "app"), ("tool", "dbvigil"), ("version", "2")];
        (m.get("dbvigil_migration_pending", &l) == Some(1.0)
            && m.get("dbvigil_migration_version_info", &at_2) == Some(1.0)
            && m.get("dbvigil_migration_failed", &l) == Some(0.0))
        .then_some(())
    })
    .await;
    exporter.stop().await;
}
