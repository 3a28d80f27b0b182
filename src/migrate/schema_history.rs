//! dbvigil's own history table, `dbvigil_schema_history`, and the lock that lets one run at
//! a time change a database: a PostgreSQL advisory lock, a MySQL/MariaDB `GET_LOCK`, or
//! SQLite's exclusive transaction.

use super::conn::{Cell, DbConn, Engine, Param};
use super::history::{self, LockHeld};
use crate::time::Timestamp;

pub const TABLE: &str = "dbvigil_schema_history";

/// The `script` of the row `dbvigil migrate baseline` records. No script file can have this
/// name (they are `V<version>__<description>.sql`), so the existing columns carry the mark
/// and history tables made before baselines existed need no change.
pub const BASELINE_SCRIPT: &str = "<< baseline >>";

/// The longest description the table holds everywhere (MySQL's `VARCHAR(200)`).
pub const DESCRIPTION_MAX: usize = 200;

/// The advisory lock key: the bytes of "dbvigilm". PostgreSQL shows it in `pg_locks` as
/// classid (high half) and objid (low half); advisory locks are per database.
const PG_LOCK_KEY: i64 = 0x6462_7669_6769_6c6d;

/// Where the history table and the lock live, fixed when a run starts: the schema
/// (PostgreSQL) or database (MySQL) the connection began in. A script that runs `USE other`
/// or empties `search_path`, as pg_dump output does, cannot move them.
#[derive(Debug, Clone)]
pub struct Home {
    /// The history table, qualified when the connection had a current schema or database.
    table: String,
    /// MySQL: the lock name as a string literal.
    lock_name: String,
}

impl Home {
    pub async fn resolve(conn: &mut DbConn) -> Result<Home, sqlx::Error> {
        let engine = conn.engine();
        let current = match engine {
            Engine::Postgres => {
                first(&conn.fetch("SELECT current_schema()::text").await?).and_then(Cell::text)
            }
            Engine::MySql => first(&conn.fetch("SELECT DATABASE()").await?).and_then(Cell::text),
            Engine::Sqlite => Some("main".to_owned()),
        };
        let table = match (&current, engine) {
            (Some(schema), Engine::MySql) => {
                format!("`{}`.{TABLE}", schema.replace('`', "``"))
            }
            (Some(schema), _) => format!("\"{}\".{TABLE}", schema.replace('"', "\"\"")),
            (None, _) => TABLE.to_owned(),
        };
        // Lock names are server-wide, so the name says which database it guards; LEFT(.., 48)
        // in characters, as earlier versions computed it on the server.
        let database: String = current.unwrap_or_default().chars().take(48).collect();
        let lock_name = format!(
            "'dbvigil_migrate:{}'",
            database.replace('\\', "\\\\").replace('\'', "''")
        );
        Ok(Home { table, lock_name })
    }
}

/// One row of the history table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub rank: i64,
    pub version: String,
    pub description: String,
    pub script: String,
    pub checksum: String,
    pub installed_by: String,
    /// Unix seconds: when the script finished (when it started, while `success` is NULL).
    pub installed_on: Option<Timestamp>,
    pub execution_ms: i64,
    /// NULL while a MySQL/MariaDB script runs, and after a run died in one.
    pub success: Option<bool>,
}

impl Row {
    /// Recorded by `baseline`: the database was at this version before dbvigil ran anything.
    pub fn is_baseline(&self) -> bool {
        self.script == BASELINE_SCRIPT
    }
}

fn ddl(engine: Engine, table: &str) -> String {
    let columns = match engine {
        Engine::Postgres => {
            "(
                installed_rank integer NOT NULL PRIMARY KEY,
                version text NOT NULL,
                description text NOT NULL,
                script text NOT NULL,
                checksum text NOT NULL,
                installed_by text NOT NULL,
                installed_on timestamptz NOT NULL,
                execution_time_ms bigint NOT NULL,
                success boolean
            )"
        }
        Engine::MySql => {
            "(
                installed_rank INT NOT NULL PRIMARY KEY,
                version VARCHAR(100) NOT NULL,
                description VARCHAR(200) NOT NULL,
                script VARCHAR(1000) NOT NULL,
                checksum CHAR(64) NOT NULL,
                installed_by VARCHAR(200) NOT NULL,
                installed_on DATETIME(3) NOT NULL COMMENT 'UTC',
                execution_time_ms BIGINT NOT NULL,
                success BOOLEAN NULL
            ) ENGINE=InnoDB"
        }
        Engine::Sqlite => {
            "(
                installed_rank INTEGER NOT NULL PRIMARY KEY,
                version TEXT NOT NULL,
                description TEXT NOT NULL,
                script TEXT NOT NULL,
                checksum TEXT NOT NULL,
                installed_by TEXT NOT NULL,
                installed_on TEXT NOT NULL,
                execution_time_ms INTEGER NOT NULL,
                success INTEGER
            )"
        }
    };
    format!("CREATE TABLE IF NOT EXISTS {table} {columns}")
}

/// The server's clock, in UTC, as the column stores it.
fn now(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => "clock_timestamp()",
        Engine::MySql => "UTC_TIMESTAMP(3)",
        Engine::Sqlite => "strftime('%Y-%m-%d %H:%M:%f', 'now')",
    }
}

/// `installed_on` as unix seconds, whatever the session time zone.
fn epoch(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => "extract(epoch from installed_on)::float8",
        Engine::MySql => "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', installed_on) / 1e6",
        Engine::Sqlite => "(julianday(installed_on) - 2440587.5) * 86400.0",
    }
}

/// Rewrites `$1`.. placeholders as `?` for MySQL.
fn placeholders(engine: Engine, sql: &str) -> String {
    if engine != Engine::MySql {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

pub async fn create(conn: &mut DbConn, home: &Home) -> Result<(), sqlx::Error> {
    conn.execute(&ddl(conn.engine(), &home.table))
        .await
        .map(drop)
}

pub async fn rows(conn: &mut DbConn, home: &Home) -> Result<Vec<Row>, sqlx::Error> {
    if !conn.table_exists(TABLE).await? {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT installed_rank, version, description, script, checksum, installed_by, {}, \
         execution_time_ms, success FROM {} ORDER BY installed_rank",
        epoch(conn.engine()),
        home.table
    );
    let rows = conn.fetch(&sql).await?;
    Ok(rows
        .iter()
        .map(|r| {
            let text = |i: usize| r.get(i).and_then(Cell::text).unwrap_or_default();
            Row {
                rank: r.first().and_then(Cell::int).unwrap_or_default(),
                version: text(1),
                description: text(2),
                script: text(3),
                checksum: text(4),
                installed_by: text(5),
                installed_on: r.get(6).and_then(Cell::float).map(Timestamp::from_secs_f64),
                execution_ms: r.get(7).and_then(Cell::int).unwrap_or_default(),
                success: r.get(8).and_then(Cell::bool),
            }
        })
        .collect())
}

/// What is written about one script.
pub struct Entry<'a> {
    pub rank: i64,
    pub version: &'a str,
    pub description: &'a str,
    pub script: &'a str,
    pub checksum: &'a str,
    pub installed_by: &'a str,
    pub execution_ms: i64,
    /// None: started, not finished (MySQL/MariaDB, whose DDL cannot be rolled back).
    pub success: Option<bool>,
}

pub async fn insert(conn: &mut DbConn, home: &Home, e: &Entry<'_>) -> Result<(), sqlx::Error> {
    let engine = conn.engine();
    let success = if e.success.is_some() { "$8" } else { "NULL" };
    let sql = placeholders(
        engine,
        &format!(
            "INSERT INTO {} (installed_rank, version, description, script, checksum, \
             installed_by, installed_on, execution_time_ms, success) VALUES ($1, $2, $3, $4, $5, $6, {}, $7, {success})",
            home.table,
            now(engine)
        ),
    );
    let mut params = vec![
        Param::Int(e.rank),
        Param::Text(e.version),
        Param::Text(e.description),
        Param::Text(e.script),
        Param::Text(e.checksum),
        Param::Text(e.installed_by),
        Param::Int(e.execution_ms),
    ];
    if let Some(s) = e.success {
        params.push(Param::Bool(s));
    }
    conn.execute_with(&sql, &params).await.map(drop)
}

/// Records how a started script (success NULL) ended.
pub async fn finish(
    conn: &mut DbConn,
    home: &Home,
    rank: i64,
    success: bool,
    execution_ms: i64,
) -> Result<(), sqlx::Error> {
    let engine = conn.engine();
    let sql = placeholders(
        engine,
        &format!(
            "UPDATE {} SET success = $1, execution_time_ms = $2, installed_on = {} \
             WHERE installed_rank = $3",
            home.table,
            now(engine)
        ),
    );
    conn.execute_with(
        &sql,
        &[
            Param::Bool(success),
            Param::Int(execution_ms),
            Param::Int(rank),
        ],
    )
    .await
    .map(drop)
}

/// Forgets failed and interrupted rows, so their scripts run again.
pub async fn delete_unsuccessful(conn: &mut DbConn, home: &Home) -> Result<u64, sqlx::Error> {
    conn.execute(&format!(
        "DELETE FROM {} WHERE success IS NULL OR success = false",
        home.table
    ))
    .await
}

/// Forgets a started script that changed nothing (a MySQL/MariaDB script stopped at its
/// first statement by a limit), so the next run simply tries it again.
pub async fn forget(conn: &mut DbConn, home: &Home, rank: i64) -> Result<(), sqlx::Error> {
    let sql = placeholders(
        conn.engine(),
        &format!("DELETE FROM {} WHERE installed_rank = $1", home.table),
    );
    conn.execute_with(&sql, &[Param::Int(rank)]).await.map(drop)
}

/// Accepts the script on disk as what was applied (after a deliberate edit).
pub async fn realign(
    conn: &mut DbConn,
    home: &Home,
    rank: i64,
    checksum: &str,
    description: &str,
) -> Result<(), sqlx::Error> {
    let sql = placeholders(
        conn.engine(),
        &format!(
            "UPDATE {} SET checksum = $1, description = $2 WHERE installed_rank = $3",
            home.table
        ),
    );
    conn.execute_with(
        &sql,
        &[
            Param::Text(checksum),
            Param::Text(description),
            Param::Int(rank),
        ],
    )
    .await
    .map(drop)
}

/// Tries once to take the lock. On SQLite this begins the exclusive transaction that the
/// whole run happens in.
pub async fn try_lock(conn: &mut DbConn, home: &Home) -> Result<bool, sqlx::Error> {
    match conn.engine() {
        Engine::Postgres => {
            let rows = conn
                .fetch(&format!("SELECT pg_try_advisory_lock({PG_LOCK_KEY})"))
                .await?;
            Ok(first(&rows).and_then(Cell::bool).unwrap_or(false))
        }
        Engine::MySql => {
            let rows = conn
                .fetch(&format!("SELECT GET_LOCK({}, 0)", home.lock_name))
                .await?;
            Ok(first(&rows).and_then(Cell::int) == Some(1))
        }
        Engine::Sqlite => match conn.execute("BEGIN EXCLUSIVE").await {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(e)) if e.message().contains("locked") => Ok(false),
            Err(e) => Err(e),
        },
    }
}

/// Releases the lock. `keep` is false when the run failed dbvigil itself (the database
/// broke off mid-script): whatever is uncommitted is rolled back, so no script's changes
/// stay without their history row. On SQLite this ends the run's transaction.
pub async fn unlock(conn: &mut DbConn, home: &Home, keep: bool) -> Result<(), sqlx::Error> {
    if !keep && conn.engine() != Engine::Sqlite {
        // Outside a transaction this is a no-op (PostgreSQL warns, MySQL says nothing).
        let _ = conn.execute("ROLLBACK").await;
    }
    match conn.engine() {
        Engine::Postgres => conn
            .execute(&format!("SELECT pg_advisory_unlock({PG_LOCK_KEY})"))
            .await
            .map(drop),
        Engine::MySql => conn
            .execute(&format!("SELECT RELEASE_LOCK({})", home.lock_name))
            .await
            .map(drop),
        Engine::Sqlite if keep => conn.execute("COMMIT").await.map(drop),
        Engine::Sqlite => conn.execute("ROLLBACK").await.map(drop),
    }
}

/// Who holds the lock now, if anyone (SQLite cannot tell).
pub async fn holder(conn: &mut DbConn, home: &Home) -> Result<Option<LockHeld>, sqlx::Error> {
    match conn.engine() {
        Engine::Postgres => history::pg_advisory_holder(conn, &[PG_LOCK_KEY]).await,
        Engine::MySql => {
            let name = first(&conn.fetch(&format!("SELECT {}", home.lock_name)).await?)
                .and_then(Cell::text)
                .unwrap_or_default();
            let Some(held) = history::mysql_lock_holder(conn, &[name]).await? else {
                return Ok(None);
            };
            // MySQL does not say when a named lock was taken; the started script's row
            // says since when the run has been at work.
            let since = if conn.table_exists(TABLE).await? {
                let sql = format!(
                    "SELECT MIN({}) FROM {} WHERE success IS NULL",
                    epoch(Engine::MySql),
                    home.table
                );
                first(&conn.fetch(&sql).await?)
                    .and_then(Cell::float)
                    .map(Timestamp::from_secs_f64)
            } else {
                None
            };
            Ok(Some(LockHeld { since, ..held }))
        }
        Engine::Sqlite => Ok(None),
    }
}

fn first(rows: &[Vec<Cell>]) -> Option<&Cell> {
    rows.first().and_then(|r| r.first())
}
