//! The history-table readers against real engines: a SQLite file, a throwaway PostgreSQL 15
//! and a throwaway MariaDB 10.11. Every tool's table is created with the DDL the tool itself
//! writes for that engine (sources quoted above each script) and filled as the tool would,
//! with fixed timestamps instead of NOW() so that every field can be asserted exactly.
//!
//! Time zones are deliberately hostile: the PostgreSQL login's session time zone is
//! Asia/Tokyo and MariaDB's global time zone is +02:00, so a reader that relied on the
//! session's zone would be off by hours.

mod common;

use dbvigil::time::Timestamp;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use common::servers::{MariaDbServer, PgServer};
use dbvigil::config::{Endpoint, Kind, Secret, Server, Tls, TlsMode};
use dbvigil::migrate::conn::{Cell, DbConn, Purpose};
use dbvigil::migrate::history::{LastRun, LockHeld, ToolRead, ToolState, read_all};

/// An instant given in Unix seconds, as the fixtures' comments and the tools write them.
fn at(seconds: f64) -> Timestamp {
    Timestamp::from_secs_f64(seconds)
}

// UTC instants used by every engine (2024-05-01).
/// 12:00:00.25Z: the last Flyway row.
const FLYWAY_LAST: f64 = 1_714_564_800.25;
/// 09:45:00.5Z: the last sqlx row.
const SQLX_LAST: f64 = 1_714_556_700.5;
/// 08:00:03.123456Z: the last Django row.
const DJANGO_LAST: f64 = 1_714_550_403.123_456;
/// 07:00:03Z: the last Liquibase changeset.
const LIQUIBASE_LAST: f64 = 1_714_546_803.0;
/// 12:30:00.5Z: when the Liquibase lock was granted.
const LIQUIBASE_LOCKED: f64 = 1_714_566_600.5;

// Lock keys for the database `hist_full`, computed independently (Python: zlib.crc32 and
// Java's String.hashCode re-implemented), exactly as each tool derives them.
/// Flyway (PostgreSQLAdvisoryLockTemplate): 77431708279161 + "\"public\".\"flyway_schema_history\"".hashCode().
const FLYWAY_PG_KEY: i64 = 77_433_833_903_597;
/// Flyway (MySQLNamedLockTemplate): "Flyway-" + "`hist_full`.`flyway_schema_history`".hashCode().
const FLYWAY_MYSQL_LOCK: &str = "Flyway--1286310995";
/// sqlx (generate_lock_id): 0x3d32ad9e * crc32("hist_full"); MySQL: the same in hex.
const SQLX_PG_KEY: i64 = 4_278_253_819_228_870_550;
const SQLX_MYSQL_LOCK: &str = "3b5f692e72185796";
/// golang-migrate CLI (URL path as database name): crc32("/hist_full\0public\0schema_migrations") * 1486364155 mod 2^32.
const GOLANG_MIGRATE_PG_KEY: i64 = 882_941_410;
/// golang-migrate (MySQL): crc32("hist_full:schema_migrations") * 1486364155 mod 2^32.
const GOLANG_MIGRATE_MYSQL_LOCK: &str = "2720431537";

// ---------------------------------------------------------------------------------------
// Shared servers and connections
// ---------------------------------------------------------------------------------------

/// One server per engine for the tests that run at the same time; the last test to finish
/// stops it (a static would outlive the test process's destructors and leak the server).
fn shared<T>(slot: &'static Mutex<Weak<T>>, start: impl FnOnce() -> Option<T>) -> Option<Arc<T>> {
    tokio::task::block_in_place(|| {
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(server) = slot.upgrade() {
            return Some(server);
        }
        let server = Arc::new(start()?);
        *slot = Arc::downgrade(&server);
        Some(server)
    })
}

fn postgres() -> Option<Arc<PgServer>> {
    static SLOT: Mutex<Weak<PgServer>> = Mutex::new(Weak::new());
    shared(&SLOT, || {
        let pg = PgServer::start()?;
        pg.psql(
            "CREATE ROLE probe LOGIN PASSWORD 'probe-pw' IN ROLE trusted; \
             ALTER ROLE probe SET timezone = 'Asia/Tokyo';",
        );
        Some(pg)
    })
}

fn mariadb() -> Option<Arc<MariaDbServer>> {
    static SLOT: Mutex<Weak<MariaDbServer>> = Mutex::new(Weak::new());
    shared(&SLOT, || {
        let m = MariaDbServer::start()?;
        m.sql(
            "SET GLOBAL time_zone = '+02:00'; \
             CREATE USER 'probe'@'127.0.0.1' IDENTIFIED BY 'probe-pw'; \
             CREATE USER 'probe'@'localhost' IDENTIFIED BY 'probe-pw';",
        );
        Some(m)
    })
}

/// Stops a shared server outside the async runtime's worker (when this was the last user).
fn release<T>(server: Arc<T>) {
    tokio::task::block_in_place(|| drop(server));
}

fn server_endpoint(port: u16, database: &str) -> Endpoint {
    Endpoint::Server(Server {
        host: "127.0.0.1".to_owned(),
        port,
        user: "probe".to_owned(),
        password: Some(Secret("probe-pw".to_owned())),
        password_in_url: Secret(String::new()),
        database: Some(database.to_owned()),
        tls: Tls {
            mode: TlsMode::Disable,
            ca_file: None,
        },
        heartbeat_schema: None,
        create_heartbeat_table: false,
        replica_of: None,
        ssh: None,
    })
}

/// A new database owned by `probe`.
fn pg_database(pg: &PgServer, name: &str) -> Endpoint {
    tokio::task::block_in_place(|| pg.psql(&format!("CREATE DATABASE {name} OWNER probe")));
    server_endpoint(pg.port(), name)
}

/// A new database on which `probe` has every privilege.
fn maria_database(m: &MariaDbServer, name: &str) -> Endpoint {
    tokio::task::block_in_place(|| {
        m.sql(&format!(
            "CREATE DATABASE {name}; GRANT ALL ON {name}.* TO 'probe'@'127.0.0.1'; \
             GRANT ALL ON {name}.* TO 'probe'@'localhost';"
        ))
    });
    server_endpoint(m.port(), name)
}

async fn writer(endpoint: &Endpoint, kind: Kind) -> DbConn {
    DbConn::open(endpoint, kind, Purpose::Migrate)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to set up: {e}"))
}

async fn setup(endpoint: &Endpoint, kind: Kind, script: &str) {
    let mut c = writer(endpoint, kind).await;
    c.execute(script)
        .await
        .unwrap_or_else(|e| panic!("setup failed: {e}\n{script}"));
    c.close().await;
}

async fn read(endpoint: &Endpoint, kind: Kind) -> Vec<ToolRead> {
    let mut c = DbConn::open(endpoint, kind, Purpose::Read)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to read: {e}"));
    let reads = read_all(&mut c)
        .await
        .unwrap_or_else(|e| panic!("read_all failed: {e}"));
    c.close().await;
    reads
}

async fn one_text(c: &mut DbConn, sql: &str) -> String {
    let rows = c.fetch(sql).await.unwrap();
    match rows.first().and_then(|r| r.first()) {
        Some(Cell::Text(t)) => t.clone(),
        other => panic!("{sql}: expected one text value, got {other:?}"),
    }
}

fn sqlite_endpoint(path: &Path, create: bool) -> Endpoint {
    Endpoint::Sqlite {
        path: path.to_owned(),
        create,
    }
}

// ---------------------------------------------------------------------------------------
// Expected values
// ---------------------------------------------------------------------------------------

fn ok(state: ToolState) -> ToolRead {
    ToolRead {
        tool: state.tool,
        result: Ok(state),
    }
}

fn err(tool: &'static str, message: &str) -> ToolRead {
    ToolRead {
        tool,
        result: Err(message.to_owned()),
    }
}

fn blank(tool: &'static str, table: &str) -> ToolState {
    ToolState {
        tool,
        table: table.to_owned(),
        version: None,
        applied: None,
        last_run: None,
        failed: false,
        lock: None,
    }
}

/// What the full scenario's tables say, whatever the engine; timestamps and locks differ
/// per engine and are passed in.
struct Full {
    flyway_last: f64,
    sqlx_last: LastRun,
    django_last: f64,
    liquibase_table: &'static str,
    liquibase_lock_since: f64,
    /// The advisory/named lock holder for Flyway, sqlx and golang-migrate (None on SQLite).
    holder: Option<LockHeld>,
}

fn full_expected(f: Full) -> Vec<ToolRead> {
    vec![
        ok(ToolState {
            version: Some("2".into()),
            applied: Some(2),
            last_run: Some(LastRun {
                success: false,
                ended_at: Some(at(f.flyway_last)),
                duration_seconds: Some(1.5),
            }),
            failed: true,
            lock: f.holder.clone(),
            ..blank("flyway", "flyway_schema_history")
        }),
        ok(ToolState {
            version: Some("20240201000000".into()),
            applied: Some(2),
            last_run: Some(f.sqlx_last),
            failed: true,
            lock: f.holder.clone(),
            ..blank("sqlx", "_sqlx_migrations")
        }),
        ok(ToolState {
            version: Some("3".into()),
            failed: true,
            lock: f.holder.clone(),
            ..blank("golang-migrate", "schema_migrations")
        }),
        ok(ToolState {
            version: Some("orders.0001_initial".into()),
            applied: Some(4),
            last_run: Some(LastRun {
                success: true,
                ended_at: Some(at(f.django_last)),
                duration_seconds: None,
            }),
            ..blank("django", "django_migrations")
        }),
        ok(ToolState {
            version: Some("ae1027a6acf0,f00dbeef0002".into()),
            ..blank("alembic", "alembic_version")
        }),
        ok(ToolState {
            version: Some("seed-data".into()),
            applied: Some(3),
            last_run: Some(LastRun {
                success: true,
                ended_at: Some(at(LIQUIBASE_LAST)),
                duration_seconds: None,
            }),
            failed: true,
            lock: Some(LockHeld {
                since: Some(at(f.liquibase_lock_since)),
                holder: "build-7f3c (10.1.2.3)".into(),
            }),
            ..blank("liquibase", f.liquibase_table)
        }),
    ]
}

// ---------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------

/// Each tool's PostgreSQL DDL, rows as the tool writes them (literal times for NOW()).
const PG_FULL: &str = r#"
-- Flyway 9, PostgreSQLDatabase.getRawCreateScript:
CREATE TABLE "public"."flyway_schema_history" (
    "installed_rank" INT NOT NULL,
    "version" VARCHAR(50),
    "description" VARCHAR(200) NOT NULL,
    "type" VARCHAR(20) NOT NULL,
    "script" VARCHAR(1000) NOT NULL,
    "checksum" INTEGER,
    "installed_by" VARCHAR(100) NOT NULL,
    "installed_on" TIMESTAMP NOT NULL DEFAULT now(),
    "execution_time" INTEGER NOT NULL,
    "success" BOOLEAN NOT NULL
);
ALTER TABLE "public"."flyway_schema_history" ADD CONSTRAINT "flyway_schema_history_pk" PRIMARY KEY ("installed_rank");
CREATE INDEX "flyway_schema_history_s_idx" ON "public"."flyway_schema_history" ("success");
-- JdbcTableSchemaHistory.doAddAppliedMigration (installed_on given instead of its default):
INSERT INTO "public"."flyway_schema_history" ("installed_rank", "version", "description", "type", "script", "checksum", "installed_by", "installed_on", "execution_time", "success") VALUES
    (1, '1', 'create users', 'SQL', 'V1__create_users.sql', 1234, 'probe', '2024-05-01 10:00:00', 35, TRUE),
    (2, '2', 'add index', 'SQL', 'V2__add_index.sql', 5678, 'probe', '2024-05-01 11:00:00', 120, TRUE),
    (3, NULL, 'views', 'SQL', 'R__views.sql', 91011, 'probe', '2024-05-01 11:30:00', 10, TRUE),
    (4, '3', 'broken', 'SQL', 'V3__broken.sql', 1213, 'probe', '2024-05-01 12:00:00.25', 1500, FALSE);

-- sqlx-postgres 0.9 migrate.rs, ensure_migrations_table:
CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
    success BOOLEAN NOT NULL,
    checksum BYTEA NOT NULL,
    execution_time BIGINT NOT NULL
);
-- apply(): INSERT ... VALUES ($1, $2, TRUE, $3, -1), then UPDATE ... SET execution_time (ns).
INSERT INTO _sqlx_migrations ( version, description, installed_on, success, checksum, execution_time ) VALUES
    (20240101000000, 'init', '2024-05-01 09:00:00+00', TRUE, '\x0102', 2500000),
    (20240201000000, 'users', '2024-05-01 09:30:00+00', TRUE, '\x0304', 1234567890),
    (20240301000000, 'broken', '2024-05-01 09:45:00.5+00', FALSE, '\x05', -1);

-- golang-migrate database/postgres, ensureVersionTable; SetVersion(3, dirty=true):
CREATE TABLE IF NOT EXISTS "public"."schema_migrations" (version bigint not null primary key, dirty boolean not null);
TRUNCATE "public"."schema_migrations";
INSERT INTO "public"."schema_migrations" (version, dirty) VALUES (3, true);

-- Django 5 (schema editor log) for MigrationRecorder.Migration; record_applied():
CREATE TABLE "django_migrations" ("id" bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "app" varchar(255) NOT NULL, "name" varchar(255) NOT NULL, "applied" timestamp with time zone NOT NULL);
INSERT INTO "django_migrations" ("app", "name", "applied") VALUES
    ('contenttypes', '0001_initial', '2024-05-01 08:00:00.1+00'),
    ('auth', '0001_initial', '2024-05-01 08:00:01+00'),
    ('auth', '0002_alter_permission_name_max_length', '2024-05-01 08:00:02+00'),
    ('orders', '0001_initial', '2024-05-01 08:00:03.123456+00');

-- Alembic (offline SQL output), two heads:
CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO alembic_version (version_num) VALUES ('f00dbeef0002');
INSERT INTO alembic_version (version_num) VALUES ('ae1027a6acf0');

-- Liquibase update-sql output for PostgreSQL (lock table, lock, changelog, changesets):
CREATE TABLE public.databasechangeloglock (ID INT NOT NULL, LOCKED BOOLEAN NOT NULL, LOCKGRANTED TIMESTAMP WITHOUT TIME ZONE, LOCKEDBY VARCHAR(255), CONSTRAINT PK_DATABASECHANGELOGLOCK PRIMARY KEY (ID));
DELETE FROM public.databasechangeloglock;
INSERT INTO public.databasechangeloglock (ID, LOCKED) VALUES (1, FALSE);
UPDATE public.databasechangeloglock SET LOCKED = TRUE, LOCKEDBY = 'build-7f3c (10.1.2.3)', LOCKGRANTED = '2024-05-01 12:30:00.5' WHERE ID = 1 AND LOCKED = FALSE;
CREATE TABLE public.databasechangelog (ID VARCHAR(255) NOT NULL, AUTHOR VARCHAR(255) NOT NULL, FILENAME VARCHAR(255) NOT NULL, DATEEXECUTED TIMESTAMP WITHOUT TIME ZONE NOT NULL, ORDEREXECUTED INT NOT NULL, EXECTYPE VARCHAR(10) NOT NULL, MD5SUM VARCHAR(35), DESCRIPTION VARCHAR(255), COMMENTS VARCHAR(255), TAG VARCHAR(255), LIQUIBASE VARCHAR(20), CONTEXTS VARCHAR(255), LABELS VARCHAR(255), DEPLOYMENT_ID VARCHAR(10));
INSERT INTO public.databasechangelog (ID, AUTHOR, FILENAME, DATEEXECUTED, ORDEREXECUTED, MD5SUM, DESCRIPTION, COMMENTS, EXECTYPE, CONTEXTS, LABELS, LIQUIBASE, DEPLOYMENT_ID) VALUES
    ('create-users', 'alice', 'db/changelog.xml', '2024-05-01 07:00:00', 1, '9:0a1b', 'createTable tableName=users', '', 'EXECUTED', NULL, NULL, '4.25.1', '4546800001'),
    ('legacy-grants', 'alice', 'db/changelog.xml', '2024-05-01 07:00:01', 2, '9:2c3d', 'sql', '', 'MARK_RAN', NULL, NULL, '4.25.1', '4546800001'),
    ('add-audit', 'bob', 'db/changelog.xml', '2024-05-01 07:00:02', 3, '9:4e5f', 'sql', '', 'FAILED', NULL, NULL, '4.25.1', '4546800001'),
    ('seed-data', 'bob', 'db/changelog.xml', '2024-05-01 07:00:03', 4, '9:6a7b', 'insert tableName=users', '', 'EXECUTED', NULL, NULL, '4.25.1', '4546800001');
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reads_every_tool_and_its_lock() {
    let Some(pg) = postgres() else { return };
    let endpoint = pg_database(&pg, "hist_full");
    setup(&endpoint, Kind::Postgres, PG_FULL).await;

    // Nothing holds a tool's lock yet: the table-based Liquibase lock only.
    let reads = read(&endpoint, Kind::Postgres).await;
    let mut expected = full_expected(Full {
        flyway_last: FLYWAY_LAST,
        sqlx_last: LastRun {
            success: false,
            ended_at: Some(at(SQLX_LAST)),
            duration_seconds: None,
        },
        django_last: DJANGO_LAST,
        liquibase_table: "databasechangelog",
        liquibase_lock_since: LIQUIBASE_LOCKED,
        holder: None,
    });
    assert_eq!(reads, expected);

    // A run holds Flyway's, sqlx's and golang-migrate's advisory locks, as each takes it.
    let mut holder = writer(&endpoint, Kind::Postgres).await;
    holder
        .execute(&format!(
            "SELECT pg_advisory_lock({FLYWAY_PG_KEY}); SELECT pg_advisory_lock({SQLX_PG_KEY}); \
             SELECT pg_advisory_lock({GOLANG_MIGRATE_PG_KEY});"
        ))
        .await
        .unwrap();
    let pid = one_text(&mut holder, "SELECT CAST(pg_backend_pid() AS TEXT)").await;
    let started = one_text(
        &mut holder,
        "SELECT CAST(extract(epoch from backend_start) AS TEXT) FROM pg_stat_activity WHERE pid = pg_backend_pid()",
    )
    .await;
    let held = LockHeld {
        since: Some(at(started.parse().unwrap())),
        holder: format!(
            "PostgreSQL backend {pid}, user probe, application \"dbvigil migrate\", from 127.0.0.1"
        ),
    };
    for r in &mut expected[..3] {
        r.result.as_mut().unwrap().lock = Some(held.clone());
    }
    assert_eq!(read(&endpoint, Kind::Postgres).await, expected);

    // Released: gone again.
    holder
        .execute("SELECT pg_advisory_unlock_all()")
        .await
        .unwrap();
    for r in &mut expected[..3] {
        r.result.as_mut().unwrap().lock = None;
    }
    assert_eq!(read(&endpoint, Kind::Postgres).await, expected);
    holder.close().await;
    release(pg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unexpected_columns_and_query_errors_stay_with_their_tool() {
    let Some(pg) = postgres() else { return };
    let endpoint = pg_database(&pg, "hist_odd");
    setup(
        &endpoint,
        Kind::Postgres,
        r#"
        -- Another product's schema_migrations: neither golang-migrate's nor dbmate's.
        CREATE TABLE schema_migrations (id serial PRIMARY KEY, name text NOT NULL, applied_at timestamptz);
        INSERT INTO schema_migrations (name) VALUES ('0001_init');
        -- An older sqlx-like layout without success and execution_time.
        CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), checksum BYTEA NOT NULL);
        -- Flyway's columns, but success as free text: the server refuses the read.
        CREATE TABLE flyway_schema_history (installed_rank INT NOT NULL, version VARCHAR(50), installed_on TIMESTAMP NOT NULL, execution_time INT NOT NULL, success VARCHAR(10) NOT NULL);
        INSERT INTO flyway_schema_history VALUES (1, '1', '2024-05-01 10:00:00', 5, 'yes');
        -- Still read: Alembic, and Liquibase's lock table alone (not locked).
        CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));
        INSERT INTO alembic_version (version_num) VALUES ('1975ea83b712');
        CREATE TABLE public.databasechangeloglock (ID INT NOT NULL, LOCKED BOOLEAN NOT NULL, LOCKGRANTED TIMESTAMP WITHOUT TIME ZONE, LOCKEDBY VARCHAR(255), CONSTRAINT PK_DATABASECHANGELOGLOCK PRIMARY KEY (ID));
        INSERT INTO public.databasechangeloglock (ID, LOCKED) VALUES (1, FALSE);
        "#,
    )
    .await;
    let mut reads = read(&endpoint, Kind::Postgres).await;

    let flyway = reads.remove(0);
    assert_eq!(flyway.tool, "flyway");
    let message = flyway.result.unwrap_err();
    assert!(
        message.starts_with("cannot read flyway_schema_history: ")
            && message.contains("invalid input syntax for type integer"),
        "{message}"
    );
    assert!(!message.contains("probe-pw"), "{message}");
    assert_eq!(
        reads,
        vec![
            err(
                "sqlx",
                "_sqlx_migrations has unexpected columns: missing success, execution_time; \
                 dbvigil reads sqlx's layout: version, installed_on, success, execution_time"
            ),
            err(
                "dbmate",
                "schema_migrations has unexpected columns: missing version; dbvigil reads dbmate's layout: version"
            ),
            ok(ToolState {
                version: Some("1975ea83b712".into()),
                ..blank("alembic", "alembic_version")
            }),
            ok(blank("liquibase", "databasechangeloglock")),
        ]
    );
    release(pg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dbmate_and_a_held_liquibase_lock_alone() {
    let Some(pg) = postgres() else { return };
    let endpoint = pg_database(&pg, "hist_dbmate");
    setup(
        &endpoint,
        Kind::Postgres,
        r#"
        -- dbmate pkg/driver/postgres CreateMigrationsTable; InsertMigration per migration:
        create table if not exists public.schema_migrations (version varchar(128) primary key);
        insert into public.schema_migrations (version) values ('20240101093000');
        insert into public.schema_migrations (version) values ('20240315120000');
        insert into public.schema_migrations (version) values ('20240210080000');
        -- Liquibase's lock table (update-sql output), locked by a run that has not yet
        -- created DATABASECHANGELOG:
        CREATE TABLE public.databasechangeloglock (ID INT NOT NULL, LOCKED BOOLEAN NOT NULL, LOCKGRANTED TIMESTAMP WITHOUT TIME ZONE, LOCKEDBY VARCHAR(255), CONSTRAINT PK_DATABASECHANGELOGLOCK PRIMARY KEY (ID));
        INSERT INTO public.databasechangeloglock (ID, LOCKED) VALUES (1, FALSE);
        UPDATE public.databasechangeloglock SET LOCKED = TRUE, LOCKEDBY = 'runner-1 (10.0.0.7)', LOCKGRANTED = '2024-05-01 12:30:00.5' WHERE ID = 1 AND LOCKED = FALSE;
        "#,
    )
    .await;
    assert_eq!(
        read(&endpoint, Kind::Postgres).await,
        vec![
            ok(ToolState {
                version: Some("20240315120000".into()),
                applied: Some(3),
                ..blank("dbmate", "schema_migrations")
            }),
            ok(ToolState {
                lock: Some(LockHeld {
                    since: Some(at(LIQUIBASE_LOCKED)),
                    holder: "runner-1 (10.0.0.7)".into()
                }),
                ..blank("liquibase", "databasechangeloglock")
            }),
        ]
    );
    release(pg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reads_only_the_search_path() {
    let Some(pg) = postgres() else { return };
    let empty = pg_database(&pg, "hist_empty");
    assert_eq!(read(&empty, Kind::Postgres).await, vec![]);

    let endpoint = pg_database(&pg, "hist_paths");
    setup(
        &endpoint,
        Kind::Postgres,
        r#"
        CREATE SCHEMA elsewhere;
        CREATE TABLE elsewhere.flyway_schema_history (installed_rank INT NOT NULL, version VARCHAR(50), installed_on TIMESTAMP NOT NULL, execution_time INT NOT NULL, success BOOLEAN NOT NULL);
        CREATE TABLE elsewhere._sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL);
        CREATE TABLE elsewhere.alembic_version (version_num VARCHAR(32) NOT NULL);
        INSERT INTO elsewhere.alembic_version VALUES ('0000elsewhere');
        "#,
    )
    .await;
    assert_eq!(
        read(&endpoint, Kind::Postgres).await,
        vec![],
        "schema elsewhere is not on the search path"
    );

    // A schema on the search path is read, with its own copy of the table.
    setup(
        &endpoint,
        Kind::Postgres,
        r#"
        CREATE SCHEMA app;
        CREATE TABLE app.alembic_version (version_num VARCHAR(32) NOT NULL, CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));
        INSERT INTO app.alembic_version VALUES ('3c1d2e4f5a6b');
        ALTER DATABASE hist_paths SET search_path = "$user", public, app;
        "#,
    )
    .await;
    assert_eq!(
        read(&endpoint, Kind::Postgres).await,
        vec![ok(ToolState {
            version: Some("3c1d2e4f5a6b".into()),
            ..blank("alembic", "alembic_version")
        })]
    );
    release(pg);
}

// ---------------------------------------------------------------------------------------
// MariaDB
// ---------------------------------------------------------------------------------------

/// Each tool's MySQL DDL. The server's global time zone is +02:00, so the sessions that
/// write TIMESTAMP literals and NOW()-style DATETIMEs are at +02:00; Django writes UTC.
const MARIA_FULL: &str = r#"
-- Flyway 9, MySQLDatabase.getRawCreateScript:
CREATE TABLE `hist_full`.`flyway_schema_history` (
    `installed_rank` INT NOT NULL,
    `version` VARCHAR(50),
    `description` VARCHAR(200) NOT NULL,
    `type` VARCHAR(20) NOT NULL,
    `script` VARCHAR(1000) NOT NULL,
    `checksum` INT,
    `installed_by` VARCHAR(100) NOT NULL,
    `installed_on` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    `execution_time` INT NOT NULL,
    `success` BOOL NOT NULL,
    CONSTRAINT `flyway_schema_history_pk` PRIMARY KEY (`installed_rank`)
) ENGINE=InnoDB;
CREATE INDEX `flyway_schema_history_s_idx` ON `hist_full`.`flyway_schema_history` (`success`);
-- 14:00 at +02:00 is 12:00Z (TIMESTAMP keeps no fraction here).
INSERT INTO `hist_full`.`flyway_schema_history` (`installed_rank`, `version`, `description`, `type`, `script`, `checksum`, `installed_by`, `installed_on`, `execution_time`, `success`) VALUES
    (1, '1', 'create users', 'SQL', 'V1__create_users.sql', 1234, 'probe', '2024-05-01 12:00:00', 35, 1),
    (2, '2', 'add index', 'SQL', 'V2__add_index.sql', 5678, 'probe', '2024-05-01 13:00:00', 120, 1),
    (3, NULL, 'views', 'SQL', 'R__views.sql', 91011, 'probe', '2024-05-01 13:30:00', 10, 1),
    (4, '3', 'broken', 'SQL', 'V3__broken.sql', 1213, 'probe', '2024-05-01 14:00:00', 1500, 0);

-- sqlx-mysql 0.9 migrate.rs, ensure_migrations_table; apply() inserts success=FALSE,
-- execution_time=-1 first and sets success once the migration ran.
CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
);
INSERT INTO _sqlx_migrations ( version, description, installed_on, success, checksum, execution_time ) VALUES
    (20240101000000, 'init', '2024-05-01 11:00:00', TRUE, x'0102', 2500000),
    (20240201000000, 'users', '2024-05-01 11:30:00', TRUE, x'0304', 1234567890),
    (20240301000000, 'broken', '2024-05-01 11:45:00', FALSE, x'05', -1);

-- golang-migrate database/mysql, ensureVersionTable; SetVersion(3, dirty=true):
CREATE TABLE `schema_migrations` (version bigint not null primary key, dirty boolean not null);
TRUNCATE `schema_migrations`;
INSERT INTO `schema_migrations` (version, dirty) VALUES (3, 1);

-- Django 5 schema editor (MySQL) for MigrationRecorder.Migration; USE_TZ writes UTC:
CREATE TABLE `django_migrations` (`id` bigint AUTO_INCREMENT NOT NULL PRIMARY KEY, `app` varchar(255) NOT NULL, `name` varchar(255) NOT NULL, `applied` datetime(6) NOT NULL);
INSERT INTO `django_migrations` (`app`, `name`, `applied`) VALUES
    ('contenttypes', '0001_initial', '2024-05-01 08:00:00.100000'),
    ('auth', '0001_initial', '2024-05-01 08:00:01.000000'),
    ('auth', '0002_alter_permission_name_max_length', '2024-05-01 08:00:02.000000'),
    ('orders', '0001_initial', '2024-05-01 08:00:03.123456');

-- Alembic, two heads:
CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO alembic_version (version_num) VALUES ('f00dbeef0002');
INSERT INTO alembic_version (version_num) VALUES ('ae1027a6acf0');

-- Liquibase update-sql output for MySQL; DATEEXECUTED is the server's NOW() at +02:00,
-- LOCKGRANTED the client's clock (here also +02:00):
CREATE TABLE DATABASECHANGELOGLOCK (ID INT NOT NULL, LOCKED BIT(1) NOT NULL, LOCKGRANTED datetime NULL, LOCKEDBY VARCHAR(255) NULL, CONSTRAINT PK_DATABASECHANGELOGLOCK PRIMARY KEY (ID));
DELETE FROM DATABASECHANGELOGLOCK;
INSERT INTO DATABASECHANGELOGLOCK (ID, LOCKED) VALUES (1, 0);
UPDATE DATABASECHANGELOGLOCK SET LOCKED = 1, LOCKEDBY = 'build-7f3c (10.1.2.3)', LOCKGRANTED = '2024-05-01 14:30:00' WHERE ID = 1 AND LOCKED = 0;
CREATE TABLE DATABASECHANGELOG (ID VARCHAR(255) NOT NULL, AUTHOR VARCHAR(255) NOT NULL, FILENAME VARCHAR(255) NOT NULL, DATEEXECUTED datetime NOT NULL, ORDEREXECUTED INT NOT NULL, EXECTYPE VARCHAR(10) NOT NULL, MD5SUM VARCHAR(35) NULL, DESCRIPTION VARCHAR(255) NULL, COMMENTS VARCHAR(255) NULL, TAG VARCHAR(255) NULL, LIQUIBASE VARCHAR(20) NULL, CONTEXTS VARCHAR(255) NULL, LABELS VARCHAR(255) NULL, DEPLOYMENT_ID VARCHAR(10) NULL);
INSERT INTO DATABASECHANGELOG (ID, AUTHOR, FILENAME, DATEEXECUTED, ORDEREXECUTED, MD5SUM, DESCRIPTION, COMMENTS, EXECTYPE, CONTEXTS, LABELS, LIQUIBASE, DEPLOYMENT_ID) VALUES
    ('create-users', 'alice', 'db/changelog.xml', '2024-05-01 09:00:00', 1, '9:0a1b', 'createTable tableName=users', '', 'EXECUTED', NULL, NULL, '4.25.1', '4546800001'),
    ('legacy-grants', 'alice', 'db/changelog.xml', '2024-05-01 09:00:01', 2, '9:2c3d', 'sql', '', 'MARK_RAN', NULL, NULL, '4.25.1', '4546800001'),
    ('add-audit', 'bob', 'db/changelog.xml', '2024-05-01 09:00:02', 3, '9:4e5f', 'sql', '', 'FAILED', NULL, NULL, '4.25.1', '4546800001'),
    ('seed-data', 'bob', 'db/changelog.xml', '2024-05-01 09:00:03', 4, '9:6a7b', 'insert tableName=users', '', 'EXECUTED', NULL, NULL, '4.25.1', '4546800001');
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_reads_every_tool_and_its_lock() {
    let Some(m) = mariadb() else { return };
    let endpoint = maria_database(&m, "hist_full");
    setup(&endpoint, Kind::Mysql, MARIA_FULL).await;

    let mut expected = full_expected(Full {
        flyway_last: 1_714_564_800.0,
        sqlx_last: LastRun {
            success: false,
            ended_at: Some(at(1_714_556_700.0)),
            duration_seconds: None,
        },
        django_last: DJANGO_LAST,
        liquibase_table: "DATABASECHANGELOG",
        liquibase_lock_since: 1_714_566_600.0,
        holder: None,
    });
    assert_eq!(read(&endpoint, Kind::Mysql).await, expected);

    // A run holds Flyway's, sqlx's and golang-migrate's named locks.
    let mut holder = writer(&endpoint, Kind::Mysql).await;
    holder
        .execute(&format!(
            "SELECT GET_LOCK('{FLYWAY_MYSQL_LOCK}', 0), GET_LOCK('{SQLX_MYSQL_LOCK}', 0), \
             GET_LOCK('{GOLANG_MIGRATE_MYSQL_LOCK}', 0)"
        ))
        .await
        .unwrap();
    let id = one_text(&mut holder, "SELECT CAST(CONNECTION_ID() AS CHAR)").await;
    let account = one_text(
        &mut holder,
        "SELECT CAST(CONCAT(user, '@', host) AS CHAR) FROM information_schema.processlist WHERE id = CONNECTION_ID()",
    )
    .await;
    let held = LockHeld {
        since: None,
        holder: format!("MySQL connection {id}, user {account}"),
    };
    for r in &mut expected[..3] {
        r.result.as_mut().unwrap().lock = Some(held.clone());
    }
    assert_eq!(read(&endpoint, Kind::Mysql).await, expected);

    holder.execute("SELECT RELEASE_ALL_LOCKS()").await.unwrap();
    for r in &mut expected[..3] {
        r.result.as_mut().unwrap().lock = None;
    }
    assert_eq!(read(&endpoint, Kind::Mysql).await, expected);
    holder.close().await;
    release(m);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_unexpected_columns_stay_with_their_tool() {
    let Some(m) = mariadb() else { return };
    let endpoint = maria_database(&m, "hist_odd");
    setup(
        &endpoint,
        Kind::Mysql,
        r#"
        -- golang-migrate's dirty flag, but the version column renamed.
        CREATE TABLE `schema_migrations` (migration_version bigint not null primary key, dirty boolean not null);
        INSERT INTO `schema_migrations` VALUES (7, 0);
        -- Django's table from another product: no id, no app.
        CREATE TABLE `django_migrations` (`name` varchar(255) NOT NULL, `applied` datetime(6) NOT NULL);
        CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));
        INSERT INTO alembic_version (version_num) VALUES ('1975ea83b712');
        CREATE TABLE DATABASECHANGELOGLOCK (ID INT NOT NULL, LOCKED BIT(1) NOT NULL, LOCKGRANTED datetime NULL, LOCKEDBY VARCHAR(255) NULL, CONSTRAINT PK_DATABASECHANGELOGLOCK PRIMARY KEY (ID));
        INSERT INTO DATABASECHANGELOGLOCK (ID, LOCKED) VALUES (1, 0);
        "#,
    )
    .await;
    assert_eq!(
        read(&endpoint, Kind::Mysql).await,
        vec![
            err(
                "golang-migrate",
                "schema_migrations has unexpected columns: missing version; dbvigil reads golang-migrate's layout: version, dirty"
            ),
            err(
                "django",
                "django_migrations has unexpected columns: missing id, app; dbvigil reads django's layout: id, app, name, applied"
            ),
            ok(ToolState {
                version: Some("1975ea83b712".into()),
                ..blank("alembic", "alembic_version")
            }),
            ok(blank("liquibase", "DATABASECHANGELOGLOCK")),
        ]
    );
    release(m);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_dbmate_and_other_databases() {
    let Some(m) = mariadb() else { return };
    let empty = maria_database(&m, "hist_empty");
    assert_eq!(read(&empty, Kind::Mysql).await, vec![]);

    // Tables in another database are not read.
    let elsewhere = maria_database(&m, "hist_elsewhere");
    setup(
        &elsewhere,
        Kind::Mysql,
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL); \
         INSERT INTO alembic_version VALUES ('0000elsewhere');",
    )
    .await;
    assert_eq!(read(&empty, Kind::Mysql).await, vec![]);

    let endpoint = maria_database(&m, "hist_dbmate");
    setup(
        &endpoint,
        Kind::Mysql,
        r#"
        -- dbmate pkg/driver/mysql CreateMigrationsTable; InsertMigration per migration:
        create table if not exists `schema_migrations` (version varchar(128) primary key);
        insert into `schema_migrations` (version) values ('20240101093000');
        insert into `schema_migrations` (version) values ('20240315120000');
        insert into `schema_migrations` (version) values ('20240210080000');
        "#,
    )
    .await;
    assert_eq!(
        read(&endpoint, Kind::Mysql).await,
        vec![ok(ToolState {
            version: Some("20240315120000".into()),
            applied: Some(3),
            ..blank("dbmate", "schema_migrations")
        })]
    );
    release(m);
}

// ---------------------------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------------------------

/// Each tool's SQLite DDL; SQLite tools write UTC text timestamps.
const SQLITE_FULL: &str = r#"
-- Flyway 9, SQLiteDatabase.getRawCreateScript:
CREATE TABLE "main"."flyway_schema_history" (
    "installed_rank" INT NOT NULL PRIMARY KEY,
    "version" VARCHAR(50),
    "description" VARCHAR(200) NOT NULL,
    "type" VARCHAR(20) NOT NULL,
    "script" VARCHAR(1000) NOT NULL,
    "checksum" INT,
    "installed_by" VARCHAR(100) NOT NULL,
    "installed_on" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
    "execution_time" INT NOT NULL,
    "success" BOOLEAN NOT NULL
);
CREATE INDEX "main"."flyway_schema_history_s_idx" ON "flyway_schema_history" ("success");
INSERT INTO "main"."flyway_schema_history" ("installed_rank", "version", "description", "type", "script", "checksum", "installed_by", "installed_on", "execution_time", "success") VALUES
    (1, '1', 'create users', 'SQL', 'V1__create_users.sql', 1234, '', '2024-05-01 10:00:00.000', 35, 1),
    (2, '2', 'add index', 'SQL', 'V2__add_index.sql', 5678, '', '2024-05-01 11:00:00.000', 120, 1),
    (3, NULL, 'views', 'SQL', 'R__views.sql', 91011, '', '2024-05-01 11:30:00.000', 10, 1),
    (4, '3', 'broken', 'SQL', 'V3__broken.sql', 1213, '', '2024-05-01 12:00:00.250', 1500, 0);

-- sqlx-sqlite 0.9 migrate.rs, ensure_migrations_table (CURRENT_TIMESTAMP text, no
-- fraction); here the failed migration was fixed and a later one ran after it.
CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
);
INSERT INTO _sqlx_migrations ( version, description, installed_on, success, checksum, execution_time ) VALUES
    (20240101000000, 'init', '2024-05-01 09:00:00', 1, x'0102', 2500000),
    (20240115000000, 'broken', '2024-05-01 09:15:00', 0, x'05', -1),
    (20240201000000, 'users', '2024-05-01 09:45:00', 1, x'0304', 1500000000);

-- golang-migrate database/sqlite3, ensureVersionTable; SetVersion(3, dirty=true):
CREATE TABLE IF NOT EXISTS schema_migrations (version uint64,dirty bool);
CREATE UNIQUE INDEX IF NOT EXISTS version_unique ON schema_migrations (version);
DELETE FROM schema_migrations;
INSERT INTO schema_migrations (version, dirty) VALUES (3, 1);

-- Django (sqlite3 schema editor) for MigrationRecorder.Migration; SQLite keeps ms:
CREATE TABLE "django_migrations" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "app" varchar(255) NOT NULL, "name" varchar(255) NOT NULL, "applied" datetime NOT NULL);
INSERT INTO "django_migrations" ("app", "name", "applied") VALUES
    ('contenttypes', '0001_initial', '2024-05-01 08:00:00.100000'),
    ('auth', '0001_initial', '2024-05-01 08:00:01.000000'),
    ('auth', '0002_alter_permission_name_max_length', '2024-05-01 08:00:02.000000'),
    ('orders', '0001_initial', '2024-05-01 08:00:03.123456');

-- Alembic, two heads:
CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO alembic_version (version_num) VALUES ('f00dbeef0002');
INSERT INTO alembic_version (version_num) VALUES ('ae1027a6acf0');

-- Liquibase update-sql output for SQLite (DATEEXECUTED is CURRENT_TIMESTAMP):
CREATE TABLE DATABASECHANGELOGLOCK (ID INTEGER NOT NULL, LOCKED BOOLEAN NOT NULL, LOCKGRANTED TEXT, LOCKEDBY VARCHAR(255), CONSTRAINT PK_DATABASECHANGELOGLOCK PRIMARY KEY (ID));
DELETE FROM DATABASECHANGELOGLOCK;
INSERT INTO DATABASECHANGELOGLOCK (ID, LOCKED) VALUES (1, 0);
UPDATE DATABASECHANGELOGLOCK SET LOCKED = 1, LOCKEDBY = 'build-7f3c (10.1.2.3)', LOCKGRANTED = '2024-05-01 12:30:00.500' WHERE ID = 1 AND LOCKED = 0;
CREATE TABLE DATABASECHANGELOG (ID VARCHAR(255) NOT NULL, AUTHOR VARCHAR(255) NOT NULL, FILENAME VARCHAR(255) NOT NULL, DATEEXECUTED TEXT NOT NULL, ORDEREXECUTED INTEGER NOT NULL, EXECTYPE VARCHAR(10) NOT NULL, MD5SUM VARCHAR(35), DESCRIPTION VARCHAR(255), COMMENTS VARCHAR(255), TAG VARCHAR(255), LIQUIBASE VARCHAR(20), CONTEXTS VARCHAR(255), LABELS VARCHAR(255), DEPLOYMENT_ID VARCHAR(10));
INSERT INTO DATABASECHANGELOG (ID, AUTHOR, FILENAME, DATEEXECUTED, ORDEREXECUTED, MD5SUM, DESCRIPTION, COMMENTS, EXECTYPE, CONTEXTS, LABELS, LIQUIBASE, DEPLOYMENT_ID) VALUES
    ('create-users', 'alice', 'db/changelog.xml', '2024-05-01 07:00:00', 1, '9:0a1b', 'createTable tableName=users', '', 'EXECUTED', NULL, NULL, '4.25.1', '4546800001'),
    ('legacy-grants', 'alice', 'db/changelog.xml', '2024-05-01 07:00:01', 2, '9:2c3d', 'sql', '', 'MARK_RAN', NULL, NULL, '4.25.1', '4546800001'),
    ('add-audit', 'bob', 'db/changelog.xml', '2024-05-01 07:00:02', 3, '9:4e5f', 'sql', '', 'FAILED', NULL, NULL, '4.25.1', '4546800001'),
    ('seed-data', 'bob', 'db/changelog.xml', '2024-05-01 07:00:03', 4, '9:6a7b', 'insert tableName=users', '', 'EXECUTED', NULL, NULL, '4.25.1', '4546800001');
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reads_every_tool() {
    let dir = common::tempdir();
    let path = dir.path().join("app.db");
    setup(&sqlite_endpoint(&path, true), Kind::Sqlite, SQLITE_FULL).await;
    assert_eq!(
        read(&sqlite_endpoint(&path, false), Kind::Sqlite).await,
        full_expected(Full {
            flyway_last: FLYWAY_LAST,
            sqlx_last: LastRun {
                success: true,
                ended_at: Some(at(1_714_556_700.0)),
                duration_seconds: Some(1.5),
            },
            django_last: 1_714_550_403.123,
            liquibase_table: "DATABASECHANGELOG",
            liquibase_lock_since: LIQUIBASE_LOCKED,
            holder: None,
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_odd_tables_dbmate_and_epoch_numbers() {
    let dir = common::tempdir();

    let empty = dir.path().join("empty.db");
    setup(&sqlite_endpoint(&empty, true), Kind::Sqlite, "").await;
    assert_eq!(
        read(&sqlite_endpoint(&empty, false), Kind::Sqlite).await,
        vec![]
    );

    let path = dir.path().join("app.db");
    setup(
        &sqlite_endpoint(&path, true),
        Kind::Sqlite,
        r#"
        -- dbmate pkg/driver/sqlite CreateMigrationsTable:
        create table if not exists "schema_migrations" (version varchar(128) primary key);
        insert into "schema_migrations" (version) values ('20240101093000'), ('20240315120000'), ('20240210080000');
        -- Another product's flyway_schema_history: renamed columns.
        CREATE TABLE flyway_schema_history (rank INTEGER, version TEXT, ran_at TEXT, ok BOOLEAN);
        -- Liquibase's lock as sqlite-jdbc stores a bound java.sql.Timestamp: epoch ms.
        CREATE TABLE DATABASECHANGELOGLOCK (ID INTEGER NOT NULL, LOCKED BOOLEAN NOT NULL, LOCKGRANTED TEXT, LOCKEDBY VARCHAR(255), CONSTRAINT PK_DATABASECHANGELOGLOCK PRIMARY KEY (ID));
        INSERT INTO DATABASECHANGELOGLOCK (ID, LOCKED, LOCKGRANTED, LOCKEDBY) VALUES (1, 1, 1714566600500, 'runner-1 (10.0.0.7)');
        -- Django's applied as epoch seconds (real).
        CREATE TABLE "django_migrations" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "app" varchar(255) NOT NULL, "name" varchar(255) NOT NULL, "applied" datetime NOT NULL);
        INSERT INTO "django_migrations" ("app", "name", "applied") VALUES ('auth', '0001_initial', 1714550403.25);
        "#,
    )
    .await;
    assert_eq!(
        read(&sqlite_endpoint(&path, false), Kind::Sqlite).await,
        vec![
            err(
                "flyway",
                "flyway_schema_history has unexpected columns: missing installed_rank, installed_on, execution_time, success; \
                 dbvigil reads flyway's layout: installed_rank, version, installed_on, execution_time, success"
            ),
            ok(ToolState {
                version: Some("20240315120000".into()),
                applied: Some(3),
                ..blank("dbmate", "schema_migrations")
            }),
            ok(ToolState {
                version: Some("auth.0001_initial".into()),
                applied: Some(1),
                last_run: Some(LastRun {
                    success: true,
                    ended_at: Some(at(1_714_550_403.25)),
                    duration_seconds: None,
                }),
                ..blank("django", "django_migrations")
            }),
            ok(ToolState {
                lock: Some(LockHeld {
                    since: Some(at(LIQUIBASE_LOCKED)),
                    holder: "runner-1 (10.0.0.7)".into()
                }),
                ..blank("liquibase", "DATABASECHANGELOGLOCK")
            }),
        ]
    );
}
