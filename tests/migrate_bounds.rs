//! `dbvigil migrate` on scripts that reach outside their own statements: they change the
//! session's database or search_path, wait on another session's lock, run too long, or
//! hold psql meta-commands. Real servers; the migration login uses a password over TLS
//! with the certificate verified, as production runs.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::servers::{MariaDbServer, PgServer, test_certs};
use common::tempdir;

const WAIT: Duration = Duration::from_secs(60);

enum Server {
    Pg(PgServer),
    Maria(MariaDbServer),
    Sqlite(PathBuf),
}

/// A database `app` owned by the password login `app`.
fn start_pg() -> Option<Server> {
    PgServer::start().map(|pg| {
        pg.psql("CREATE ROLE app LOGIN PASSWORD 'app-pw'; CREATE DATABASE app OWNER app;");
        Server::Pg(pg)
    })
}

fn start_maria() -> Option<Server> {
    MariaDbServer::start().map(|m| {
        m.sql(
            "CREATE DATABASE app; CREATE DATABASE other_db; \
             CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'app-pw' REQUIRE SSL; \
             GRANT ALL ON app.* TO 'app'@'127.0.0.1'; GRANT ALL ON other_db.* TO 'app'@'127.0.0.1';",
        );
        Server::Maria(m)
    })
}

impl Server {
    fn url(&self) -> String {
        let tls = format!(
            "?sslmode=verify-full&sslrootcert={}",
            test_certs().ca_file.display()
        );
        match self {
            Server::Pg(pg) => pg.url("app", Some("app-pw"), "app") + &tls,
            Server::Maria(m) => m.url("app", Some("app-pw"), "app") + &tls,
            Server::Sqlite(path) => format!("sqlite:{}", path.display()),
        }
    }

    /// Rows as the native client prints them, as superuser.
    fn sql(&self, sql: &str) -> String {
        match self {
            Server::Pg(pg) => pg.psql(&format!("\\c app\n{sql}")),
            Server::Maria(m) => m.sql(sql),
            Server::Sqlite(path) => {
                let out = Command::new("sqlite3").arg(path).arg(sql).output().unwrap();
                assert!(out.status.success(), "sqlite3: {out:?}");
                String::from_utf8_lossy(&out.stdout).trim().to_owned()
            }
        }
    }

    /// A native-client session kept open on stdin, as another application would hold
    /// locks; it ends when dropped.
    fn session(&self, sql: &str) -> Session {
        let mut cmd = match self {
            Server::Pg(pg) => pg.psql_command("app"),
            Server::Maria(m) => m.client_command(&["app"]),
            Server::Sqlite(path) => {
                let mut cmd = Command::new("sqlite3");
                cmd.arg(path);
                cmd
            }
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.as_mut().unwrap();
        writeln!(stdin, "{sql}").unwrap();
        stdin.flush().unwrap();
        Session(child)
    }
}

struct Session(Child);

impl Drop for Session {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {} after {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.took, self.stdout, self.stderr
        )
    }
}

/// `dbvigil migrate run` on the URL, with a deadline.
fn run(db: &Server, dir: &Path, extra: &[&str]) -> Outcome {
    let url = db.url();
    let args = [
        "--database-url",
        url.as_str(),
        "--dir",
        dir.to_str().unwrap(),
    ];
    migrate_run(&[&args, extra].concat())
}

/// A configuration file with target `app` on `db`, whose `migrations:` section holds
/// `directory: DIR` and `extra` (indented YAML lines).
fn config_file(db: &Server, tmp: &Path, dir: &Path, extra: &str) -> PathBuf {
    let (kind, port) = match db {
        Server::Pg(pg) => ("postgres", pg.port()),
        Server::Maria(m) => ("mysql", m.port()),
        Server::Sqlite(_) => unreachable!("the limits test needs a server"),
    };
    let path = tmp.join("dbvigil.yml");
    std::fs::write(
        &path,
        format!(
            "targets:\n  - name: app\n    kind: {kind}\n    host: 127.0.0.1\n    port: {port}\n    user: app\n    password: app-pw\n    database: app\n    tls: {{mode: verify-full, ca_file: {}}}\n    migrations:\n      directory: {}\n{extra}",
            test_certs().ca_file.display(),
            dir.display()
        ),
    )
    .unwrap();
    path
}

/// `dbvigil migrate run` with a deadline: a run that hangs fails the test instead.
fn migrate_run(args: &[&str]) -> Outcome {
    let args = [&["migrate", "run"], args].concat();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dbvigil"))
        .args(&args)
        .env_remove("DATABASE_URL")
        .env_remove("DBVIGIL_CONFIG_FILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = started + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "dbvigil migrate run did not finish within 120s\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

fn scripts(tmp: &Path, files: &[(&str, &str)]) -> PathBuf {
    let dir = tmp.join("migrations");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn postgres_scripts_that_empty_search_path_keep_bookkeeping_where_the_run_began() {
    let tmp = tempdir();
    let Some(db) = start_pg() else { return };
    // A role that may not create in public: left in force, it would fail V3 and the
    // bookkeeping after it.
    db.sql("CREATE ROLE reader NOLOGIN; GRANT reader TO app;");
    let dir = scripts(
        tmp.path(),
        &[
            // What every pg_dump script does first.
            (
                "V1__dump_preamble.sql",
                "SELECT pg_catalog.set_config('search_path', '', false);\n\
                 CREATE SCHEMA other;\n\
                 CREATE TABLE public.a (x int);\n",
            ),
            (
                "V2__other.sql",
                "SET search_path = other;\nCREATE TABLE b (x int);\nGRANT USAGE ON SCHEMA other TO reader;\nSET ROLE reader;\n",
            ),
            ("V3__plain.sql", "CREATE TABLE c (x int);\n"),
        ],
    );
    let first = run(&db, &dir, &[]);
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(
        db.sql(
            "SELECT string_agg(version || ':' || success, ',' ORDER BY installed_rank) \
             FROM public.dbvigil_schema_history"
        ),
        "1:true,2:true,3:true"
    );
    // Each script starts from the session's own search_path, as a new psql would.
    assert_eq!(
        db.sql(
            "SELECT string_agg(table_schema || '.' || table_name, ',' ORDER BY table_name) \
             FROM information_schema.tables WHERE table_name IN ('a', 'b', 'c', 'dbvigil_schema_history')"
        ),
        "public.a,other.b,public.c,public.dbvigil_schema_history"
    );
    let second = run(&db, &dir, &[]);
    assert_eq!(second.code, 0, "{second:?}");
    assert!(
        second.stdout.contains("up to date; nothing to apply"),
        "{second:?}"
    );
}

#[test]
fn mariadb_scripts_that_use_another_database_keep_bookkeeping_where_the_run_began() {
    let tmp = tempdir();
    let Some(db) = start_maria() else { return };
    let dir = scripts(
        tmp.path(),
        &[
            (
                "V1__elsewhere.sql",
                "USE other_db;\nCREATE TABLE t (x int);\nLOCK TABLES t WRITE;\nINSERT INTO t VALUES (1);\n",
            ),
            ("V2__home.sql", "CREATE TABLE u (x int);\n"),
        ],
    );
    let first = run(&db, &dir, &[]);
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(
        db.sql("SELECT GROUP_CONCAT(CONCAT(version, ':', success) ORDER BY installed_rank) FROM app.dbvigil_schema_history"),
        "1:1,2:1"
    );
    assert_eq!(
        db.sql(
            "SELECT GROUP_CONCAT(CONCAT(table_schema, '.', table_name) ORDER BY table_name) \
             FROM information_schema.tables WHERE table_name IN ('t', 'u', 'dbvigil_schema_history')"
        ),
        "app.dbvigil_schema_history,other_db.t,app.u"
    );
    let second = run(&db, &dir, &[]);
    assert_eq!(second.code, 0, "{second:?}");
    assert!(
        second.stdout.contains("up to date; nothing to apply"),
        "{second:?}"
    );
}

/// A statement behind another session's lock fails at the limit with its file and line,
/// records nothing, frees the migration lock, and runs once the blocker is gone.
fn blocked_by_a_lock(db: Server, blocker_sql: &str, holds: &str, script: &str) {
    let tmp = tempdir();
    let dir = scripts(
        tmp.path(),
        &[
            ("V1__table.sql", "CREATE TABLE t (x int);\n"),
            ("V2__blocked.sql", script),
        ],
    );
    // V1 alone first, so the blocker has a table to lock.
    let v1_dir = scripts(
        &tmp.path().join("v1"),
        &[("V1__table.sql", "CREATE TABLE t (x int);\n")],
    );
    assert_eq!(run(&db, &v1_dir, &[]).code, 0);
    let blocker = db.session(blocker_sql);
    wait_until("the blocker to hold its lock", || db.sql(holds) != "0");

    // The limit from the target's configuration, as a deployment sets it.
    let config = config_file(&db, tmp.path(), &dir, "      lock_wait_timeout: 2s\n");
    let blocked = migrate_run(&["--target", "app", "--config.file", config.to_str().unwrap()]);
    assert_eq!(blocked.code, 1, "{blocked:?}");
    assert!(
        blocked.stderr.contains("V2__blocked.sql line 3: waited longer than the lock-wait limit of 2s for a lock another session holds"),
        "{blocked:?}"
    );
    assert!(
        blocked
            .stderr
            .contains("the failure is not recorded: run again"),
        "{blocked:?}"
    );
    assert!(blocked.took < Duration::from_secs(60), "{blocked:?}");
    // Nothing recorded, nothing kept, and the next run is not refused: it is blocked again.
    let again = run(&db, &dir, &["--lock-wait-timeout", "2s"]);
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.contains("lock-wait limit"), "{again:?}");

    drop(blocker);
    let free = run(&db, &dir, &["--lock-wait-timeout", "2s"]);
    assert_eq!(free.code, 0, "{free:?}");
    assert!(free.stdout.contains("now at version 2"), "{free:?}");
}

#[test]
fn postgres_statement_behind_a_lock_fails_at_the_limit_and_runs_once_it_is_free() {
    let Some(db) = start_pg() else { return };
    blocked_by_a_lock(
        db,
        "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE;",
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
         WHERE c.relname = 't' AND l.mode = 'AccessExclusiveLock' AND l.granted",
        // pg_dump's preamble lifts the limit; dbvigil puts it back.
        "SET lock_timeout = 0;\nSET statement_timeout = 0;\nALTER TABLE t ADD COLUMN y int;\n",
    );
}

#[test]
fn mariadb_statement_behind_a_lock_fails_at_the_limit_and_runs_once_it_is_free() {
    let Some(db) = start_maria() else { return };
    blocked_by_a_lock(
        db,
        // An open transaction that read t holds its metadata lock until it ends.
        "START TRANSACTION; SELECT * FROM t FOR UPDATE;",
        "SELECT COUNT(*) FROM information_schema.innodb_trx",
        "SET SESSION lock_wait_timeout = 31536000;\n-- wait\nALTER TABLE t ADD COLUMN y int;\n",
    );
}

/// A statement that runs past the limit is stopped; nothing of its script stays.
fn overruns(db: &Server, slow: &str) {
    let tmp = tempdir();
    let dir = scripts(
        tmp.path(),
        &[(
            "V1__slow.sql",
            &format!("CREATE TABLE kept (x int);\n{slow};\n"),
        )],
    );
    let out = run(db, &dir, &["--statement-timeout", "1s"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("V1__slow.sql line 2: stopped after the statement time limit of 1s"),
        "{out:?}"
    );
    assert!(out.took < Duration::from_secs(60), "{out:?}");
}

#[test]
fn postgres_statement_over_its_time_limit_is_cancelled_and_rolled_back() {
    let Some(db) = start_pg() else { return };
    overruns(&db, "SELECT pg_sleep(600)");
    assert_eq!(
        db.sql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid()"),
        "0",
        "the server still runs the statement"
    );
    assert_eq!(db.sql("SELECT to_regclass('public.kept') IS NULL"), "t");
    assert_eq!(db.sql("SELECT count(*) FROM dbvigil_schema_history"), "0");
}

#[test]
fn mariadb_statement_over_its_time_limit_is_killed() {
    let Some(db) = start_maria() else { return };
    // The statement limit strikes on the second statement: the first is kept (DDL
    // commits), so the failure is recorded and repair is asked for.
    overruns(&db, "SELECT BENCHMARK(100000000000, MD5('x'))");
    assert_eq!(
        db.sql("SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE '%BENCHMARK(1000%' AND id <> CONNECTION_ID()"),
        "0",
        "the server still runs the statement"
    );
    assert_eq!(
        db.sql("SELECT CONCAT(version, ':', success) FROM app.dbvigil_schema_history"),
        "1:0"
    );
}

#[test]
fn sqlite_statement_over_its_time_limit_is_interrupted_and_rolled_back() {
    let tmp = tempdir();
    let db = Server::Sqlite(tmp.path().join("app.db"));
    overruns(
        &db,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
    );
    assert_eq!(
        db.sql("SELECT count(*) FROM sqlite_master WHERE name = 'kept'"),
        "0"
    );
}

#[test]
fn psql_meta_commands_are_refused_by_file_and_line_before_anything_runs() {
    let tmp = tempdir();
    let Some(db) = start_pg() else { return };
    let dir = scripts(
        tmp.path(),
        &[
            ("V1__fine.sql", "CREATE TABLE fine (x int);\n"),
            (
                "V2__dumpall.sql",
                "CREATE TABLE other (x int);\n\n\\connect postgres\nCREATE TABLE elsewhere (x int);\n",
            ),
        ],
    );
    let out = run(&db, &dir, &[]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("V2__dumpall.sql: psql meta-command \\connect on line 3 cannot run in dbvigil migrate: dbvigil runs every script in the database it connected to"),
        "{out:?}"
    );
    assert_eq!(db.sql("SELECT to_regclass('public.fine') IS NULL"), "t");
}

#[test]
fn postgres_statement_a_frozen_server_cannot_stop_gives_up_the_connection() {
    let tmp = tempdir();
    let Some(db) = start_pg() else { return };
    let Server::Pg(pg) = &db else { unreachable!() };
    let dir = scripts(tmp.path(), &[("V1__slow.sql", "SELECT pg_sleep(20);\n")]);
    let args: Vec<String> = [
        "--database-url",
        &db.url(),
        "--dir",
        dir.to_str().unwrap(),
        "--statement-timeout",
        "3s",
    ]
    .map(String::from)
    .to_vec();
    let running = std::thread::spawn(move || {
        migrate_run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    });
    wait_until("the statement to run", || {
        db.sql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(20)%'")
            == "1"
    });
    // The cancel cannot get through either: the run must give up, not wait forever.
    pg.freeze();
    let out = running.join().unwrap();
    pg.thaw();
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr.contains("V1__slow.sql line 1 ran past the statement time limit of 3s and the server did not stop it when asked"),
        "{out:?}"
    );
    assert!(out.took < Duration::from_secs(60), "{out:?}");
}

#[test]
fn sqlite_failure_among_many_statements_names_its_own_line_and_keeps_nothing() {
    let tmp = tempdir();
    let db = Server::Sqlite(tmp.path().join("app.db"));
    // Enough statements to go to the driver in batches; the bad one sits inside one.
    let mut script = String::from("CREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT);\n");
    for id in 1..=1200 {
        let id = if id == 700 { 699 } else { id };
        script.push_str(&format!(
            "INSERT INTO t VALUES ({id}, 'row -- {id}'); -- {id}\n"
        ));
    }
    let dir = scripts(tmp.path(), &[("V1__rows.sql", &script)]);
    let out = run(&db, &dir, &[]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("V1__rows.sql line 701: UNIQUE constraint failed: t.id"),
        "{out:?}"
    );
    assert_eq!(
        db.sql("SELECT count(*) FROM sqlite_master WHERE name = 't'"),
        "0"
    );
    let fixed = script.replace("(699, 'row -- 700')", "(700, 'row -- 700')");
    std::fs::write(dir.join("V1__rows.sql"), fixed).unwrap();
    let again = migrate_run(&["--database-url", &db.url(), "--dir", dir.to_str().unwrap()]);
    assert_eq!(
        again.code, 3,
        "a recorded failure blocks the next run: {again:?}"
    );
}

#[test]
fn sqlite_write_over_its_time_limit_takes_the_whole_run_back_and_says_so() {
    let tmp = tempdir();
    let db = Server::Sqlite(tmp.path().join("app.db"));
    // An interrupted write makes SQLite roll back the whole transaction, and the run is
    // one transaction: V1 goes too, and the user must hear it.
    let dir = scripts(
        tmp.path(),
        &[
            ("V1__first.sql", "CREATE TABLE first (x int);\n"),
            (
                "V2__slow.sql",
                "CREATE TABLE t (x int);\nINSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c;\n",
            ),
        ],
    );
    let out = run(&db, &dir, &["--statement-timeout", "1s"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("stopped after the statement time limit of 1s")
            && out.stderr.contains("SQLite rolled back the whole run with it: no script of this run stayed applied, and nothing was recorded"),
        "{out:?}"
    );
    assert_eq!(db.sql("SELECT count(*) FROM sqlite_master"), "0");
    std::fs::write(dir.join("V2__slow.sql"), "CREATE TABLE t (x int);\n").unwrap();
    let again = run(&db, &dir, &["--statement-timeout", "1s"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("applied 2 script(s)"), "{again:?}");
}

/// Backslashes in strings are read as the server's own settings say before the script
/// changes them: scripts written for such a server split as its client splits them.
fn server_reads_backslashes(db: &Server, setup: &str, script: &str, rows: &str, want: &str) {
    let tmp = tempdir();
    db.sql(setup);
    let dir = scripts(tmp.path(), &[("V1__paths.sql", script)]);
    let out = run(db, &dir, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(db.sql(rows), want);
}

#[test]
fn postgres_database_without_standard_conforming_strings_splits_as_psql_does() {
    let Some(db) = start_pg() else { return };
    server_reads_backslashes(
        &db,
        "ALTER DATABASE app SET standard_conforming_strings = off;",
        "CREATE TABLE s (v text);\nINSERT INTO s VALUES ('it\\'s; here');\n",
        "SELECT v FROM s",
        "it's; here",
    );
}

#[test]
fn mariadb_server_with_no_backslash_escapes_splits_as_its_client_does() {
    let Some(db) = start_maria() else { return };
    server_reads_backslashes(
        &db,
        "SET GLOBAL sql_mode = CONCAT(@@GLOBAL.sql_mode, ',NO_BACKSLASH_ESCAPES');",
        "CREATE TABLE p (v TEXT);\nINSERT INTO p VALUES ('C:\\');\nINSERT INTO p VALUES ('D:\\');\n",
        // Lengths, since the client escapes backslashes in what it prints.
        "SELECT GROUP_CONCAT(CONCAT(LEFT(v, 2), LENGTH(v)) ORDER BY v SEPARATOR ' ') FROM app.p",
        "C:3 D:3",
    );
}
