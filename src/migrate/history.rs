//! Readers for other migration tools' history tables: Flyway, sqlx, golang-migrate, dbmate
//! (and Rails), Django, Alembic and Liquibase, on PostgreSQL, MySQL/MariaDB and SQLite.
//!
//! Each reader checks the columns it needs, then aggregates in SQL. Every value is cast to
//! text in SQL and parsed here: the engine-neutral decoder would read a MySQL or SQLite
//! integer as a boolean, and casting keeps the readers independent of each driver's type
//! mapping. Timestamps become integer microseconds since the epoch in SQL:
//! - zone-aware columns (PostgreSQL `timestamptz`, MySQL `TIMESTAMP`) exactly;
//! - zone-less PostgreSQL `timestamp` and SQLite text as UTC;
//! - zone-less MySQL `DATETIME` as UTC where the tool writes UTC (Django), and in the
//!   server's global time zone where the tool writes the server's `NOW()` (Liquibase);
//! - integers and reals as epoch seconds, or milliseconds from 10^11 up (sqlite-jdbc).
//!
//! Locks are reported where the tool's lock can be recognised exactly: Flyway's, sqlx's and
//! golang-migrate's advisory (PostgreSQL) and named (MySQL) locks, whose keys are derived
//! here as their sources derive them, and Liquibase's lock table. SQLite has none of them.

use crate::migrate::conn::{Cell, DbConn, Engine};

/// What one tool's history table says.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolState {
    /// "flyway", "sqlx", "golang-migrate", "dbmate", "django", "alembic", "liquibase".
    pub tool: &'static str,
    /// The table name as found in the catalog.
    pub table: String,
    /// The current version.
    pub version: Option<String>,
    /// Successfully applied migrations, when the table records them one per row.
    pub applied: Option<u64>,
    pub last_run: Option<LastRun>,
    /// A failed or dirty migration is recorded.
    pub failed: bool,
    /// A run holds the tool's lock now.
    pub lock: Option<LockHeld>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LastRun {
    pub success: bool,
    /// Unix seconds.
    pub ended_at: Option<f64>,
    pub duration_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LockHeld {
    /// Unix seconds, when the tool records it.
    pub since: Option<f64>,
    pub holder: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolRead {
    pub tool: &'static str,
    pub result: Result<ToolState, String>,
}

/// Every known tool whose table exists in the connection's schema; Err only when the
/// catalog itself cannot be read.
pub async fn read_all(conn: &mut DbConn) -> Result<Vec<ToolRead>, sqlx::Error> {
    let flyway = conn.table_name("flyway_schema_history").await?;
    let sqlx = conn.table_name("_sqlx_migrations").await?;
    let schema_migrations = conn.table_name("schema_migrations").await?;
    let django = conn.table_name("django_migrations").await?;
    let alembic = conn.table_name("alembic_version").await?;
    let changelog = conn.table_name("databasechangelog").await?;
    let changelog_lock = conn.table_name("databasechangeloglock").await?;

    let mut reads = Vec::new();
    if let Some(name) = flyway {
        let result = read_flyway(conn, &name).await;
        reads.push(ToolRead {
            tool: FLYWAY,
            result,
        });
    }
    if let Some(name) = sqlx {
        let result = read_sqlx(conn, &name).await;
        reads.push(ToolRead { tool: SQLX, result });
    }
    if let Some(name) = schema_migrations {
        reads.push(read_schema_migrations(conn, &name).await);
    }
    if let Some(name) = django {
        let result = read_django(conn, &name).await;
        reads.push(ToolRead {
            tool: DJANGO,
            result,
        });
    }
    if let Some(name) = alembic {
        let result = read_alembic(conn, &name).await;
        reads.push(ToolRead {
            tool: ALEMBIC,
            result,
        });
    }
    if changelog.is_some() || changelog_lock.is_some() {
        let result = read_liquibase(conn, changelog.as_deref(), changelog_lock.as_deref()).await;
        reads.push(ToolRead {
            tool: LIQUIBASE,
            result,
        });
    }
    Ok(reads)
}

const FLYWAY: &str = "flyway";
const SQLX: &str = "sqlx";
const GOLANG_MIGRATE: &str = "golang-migrate";
const DBMATE: &str = "dbmate";
const DJANGO: &str = "django";
const ALEMBIC: &str = "alembic";
const LIQUIBASE: &str = "liquibase";

// ---------------------------------------------------------------------------------------
// Tables and columns
// ---------------------------------------------------------------------------------------

/// A history table as the catalog describes it.
struct Table {
    name: String,
    /// PostgreSQL: the schema it was found in (the first on the search path).
    schema: Option<String>,
    /// (name as the catalog spells it, lower-case type name).
    columns: Vec<(String, String)>,
}

/// A column a reader uses: its quoted name and its type.
struct Col {
    expr: String,
    ty: String,
}

impl Table {
    async fn describe(conn: &mut DbConn, name: &str) -> Result<Table, String> {
        let engine = conn.engine();
        let rows = match engine {
            Engine::Postgres => {
                conn.fetch_with(
                    "SELECT CAST(a.attname AS text), CAST(t.typname AS text), CAST(n.nspname AS text) \
                     FROM pg_catalog.pg_attribute a \
                     JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
                     JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                     WHERE a.attrelid = to_regclass(quote_ident($1)) AND a.attnum > 0 AND NOT a.attisdropped \
                     ORDER BY a.attnum",
                    &[name],
                )
                .await
            }
            Engine::MySql => {
                conn.fetch_with(
                    "SELECT CAST(column_name AS CHAR), CAST(data_type AS CHAR), CAST(NULL AS CHAR) \
                     FROM information_schema.columns \
                     WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position",
                    &[name],
                )
                .await
            }
            Engine::Sqlite => {
                conn.fetch_with(
                    "SELECT name, type, NULL FROM pragma_table_info($1) ORDER BY cid",
                    &[name],
                )
                .await
            }
        }
        .map_err(|e| format!("cannot read the columns of {name}: {e}"))?;
        let mut schema = None;
        let mut columns = Vec::new();
        for row in &rows {
            let Some(column) = text(row, 0) else { continue };
            let ty = text(row, 1).unwrap_or_default().to_ascii_lowercase();
            if schema.is_none() {
                schema = text(row, 2);
            }
            columns.push((column, ty));
        }
        Ok(Table {
            name: name.to_owned(),
            schema,
            columns,
        })
    }

    fn has(&self, column: &str) -> bool {
        self.columns
            .iter()
            .any(|(c, _)| c.eq_ignore_ascii_case(column))
    }

    /// The columns a tool's reader needs, in the order asked, or the error that names the
    /// missing ones.
    fn require(&self, sql: Sql, tool: &str, needed: &[&str]) -> Result<Vec<Col>, String> {
        let mut found = Vec::with_capacity(needed.len());
        let mut missing = Vec::new();
        for want in needed {
            match self
                .columns
                .iter()
                .find(|(c, _)| c.eq_ignore_ascii_case(want))
            {
                Some((name, ty)) => found.push(Col {
                    expr: sql.ident(name),
                    ty: ty.clone(),
                }),
                None => missing.push(*want),
            }
        }
        if missing.is_empty() {
            Ok(found)
        } else {
            Err(format!(
                "{} has unexpected columns: missing {}; dbvigil reads {tool}'s layout: {}",
                self.name,
                missing.join(", "),
                needed.join(", ")
            ))
        }
    }

    /// The table as a FROM item, qualified by its schema where known.
    fn from(&self, sql: Sql) -> String {
        match &self.schema {
            Some(schema) => format!("{}.{}", sql.ident(schema), sql.ident(&self.name)),
            None => sql.ident(&self.name),
        }
    }

    async fn query(&self, conn: &mut DbConn, sql: &str) -> Result<Vec<Vec<Cell>>, String> {
        conn.fetch(sql)
            .await
            .map_err(|e| format!("cannot read {}: {e}", self.name))
    }

    /// The first row of a query, if any.
    async fn first(&self, conn: &mut DbConn, sql: &str) -> Result<Option<Vec<Cell>>, String> {
        Ok(self.query(conn, sql).await?.into_iter().next())
    }
}

fn text(row: &[Cell], i: usize) -> Option<String> {
    row.get(i).and_then(Cell::text)
}

fn int(row: &[Cell], i: usize) -> Option<i64> {
    row.get(i).and_then(Cell::int)
}

fn count(row: &[Cell], i: usize) -> u64 {
    int(row, i).and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}

fn flag(row: &[Cell], i: usize) -> Option<bool> {
    row.get(i).and_then(Cell::bool)
}

/// Seconds from integer microseconds.
fn seconds_us(row: &[Cell], i: usize) -> Option<f64> {
    int(row, i).map(|us| us as f64 / 1e6)
}

// ---------------------------------------------------------------------------------------
// SQL per engine
// ---------------------------------------------------------------------------------------

/// How a tool writes zone-less timestamps (matters for MySQL `DATETIME`).
#[derive(Clone, Copy)]
enum Naive {
    Utc,
    /// Written with the server's `NOW()` in a session left at the server's time zone.
    ServerZone,
}

#[derive(Clone, Copy)]
struct Sql(Engine);

impl Sql {
    fn ident(self, name: &str) -> String {
        match self.0 {
            Engine::MySql => format!("`{}`", name.replace('`', "``")),
            Engine::Postgres | Engine::Sqlite => format!("\"{}\"", name.replace('"', "\"\"")),
        }
    }

    /// The value as text, which every driver decodes the same way.
    fn text(self, expr: &str) -> String {
        match self.0 {
            Engine::MySql => format!("CAST({expr} AS CHAR)"),
            Engine::Postgres | Engine::Sqlite => format!("CAST({expr} AS TEXT)"),
        }
    }

    /// A predicate: the boolean column is true (bool, 0/1, BIT(1), or SQLite text).
    fn truthy(self, expr: &str) -> String {
        match self.0 {
            Engine::Postgres => format!("(CAST({expr} AS integer) <> 0)"),
            Engine::MySql => format!("({expr} + 0 <> 0)"),
            Engine::Sqlite => format!(
                "(CASE WHEN typeof({expr}) = 'text' THEN lower(trim({expr})) IN ('1', 't', 'true', 'y', 'yes') ELSE {expr} <> 0 END)"
            ),
        }
    }

    /// The boolean column as text '1' / '0' (NULL stays NULL).
    fn flag(self, expr: &str) -> String {
        self.text(&format!(
            "CASE WHEN {expr} IS NULL THEN NULL WHEN {} THEN 1 ELSE 0 END",
            self.truthy(expr)
        ))
    }

    /// The timestamp column as integer microseconds since the epoch (an SQL expression).
    fn epoch_us(self, col: &Col, naive: Naive) -> String {
        let c = &col.expr;
        let ty = col.ty.as_str();
        match self.0 {
            Engine::Postgres => match ty {
                "timestamptz" | "timestamp" | "date" => {
                    format!("CAST(round(extract(epoch FROM {c}) * 1000000) AS bigint)")
                }
                "int2" | "int4" | "int8" | "numeric" | "float4" | "float8" => {
                    let n = format!("CAST({c} AS numeric)");
                    format!(
                        "CAST(round(CASE WHEN abs({n}) >= 100000000000 THEN {n} * 1000 ELSE {n} * 1000000 END) AS bigint)"
                    )
                }
                _ => "NULL".to_owned(),
            },
            Engine::MySql => match ty {
                // Stored in UTC: exact whatever the session's time zone.
                "timestamp" => format!("CAST(UNIX_TIMESTAMP({c}) * 1000000 AS SIGNED)"),
                "datetime" | "date" | "char" | "varchar" | "tinytext" | "text" | "mediumtext"
                | "longtext" => match naive {
                    Naive::Utc => format!("TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {c})"),
                    Naive::ServerZone => format!(
                        "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', COALESCE(CONVERT_TZ({c}, @@global.time_zone, '+00:00'), {c}))"
                    ),
                },
                "tinyint" | "smallint" | "mediumint" | "int" | "bigint" | "decimal" | "float"
                | "double" => format!(
                    "CAST(ROUND(CASE WHEN ABS({c}) >= 100000000000 THEN {c} * 1000 ELSE {c} * 1000000 END) AS SIGNED)"
                ),
                _ => "NULL".to_owned(),
            },
            // SQLite stores what it was given: decide per value. A TEXT column turns a
            // bound number (sqlite-jdbc's epoch milliseconds) into digits.
            Engine::Sqlite => {
                let n = format!("CAST({c} AS NUMERIC)");
                format!(
                    "(CASE \
                     WHEN typeof({c}) = 'integer' THEN (CASE WHEN abs({c}) >= 100000000000 THEN {c} * 1000 ELSE {c} * 1000000 END) \
                     WHEN typeof({c}) = 'real' \
                       OR (typeof({c}) = 'text' AND trim({c}) <> '' AND trim({c}) NOT GLOB '*[^0-9.]*') \
                       THEN CAST(round(CASE WHEN abs({n}) >= 100000000000 THEN {n} * 1000 ELSE {n} * 1000000 END) AS INTEGER) \
                     WHEN typeof({c}) = 'text' THEN CAST(round((julianday({c}) - 2440587.5) * 86400000.0) AS INTEGER) * 1000 \
                     ELSE NULL END)"
                )
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The readers
// ---------------------------------------------------------------------------------------

/// Flyway's `flyway_schema_history` (Flyway 5+; PostgreSQLDatabase / MySQLDatabase /
/// SQLiteDatabase `getRawCreateScript`). `execution_time` is in milliseconds.
async fn read_flyway(conn: &mut DbConn, name: &str) -> Result<ToolState, String> {
    let sql = Sql(conn.engine());
    let table = Table::describe(conn, name).await?;
    let c = table.require(
        sql,
        FLYWAY,
        &[
            "installed_rank",
            "version",
            "installed_on",
            "execution_time",
            "success",
        ],
    )?;
    let (rank, version, installed_on, execution_time, success) =
        (&c[0].expr, &c[1].expr, &c[2], &c[3].expr, &c[4].expr);
    let from = table.from(sql);
    let ok = sql.truthy(success);

    let agg = table
        .first(
            conn,
            &format!(
                "SELECT {}, {} FROM {from}",
                sql.text(&format!(
                    "COUNT(CASE WHEN {ok} AND {version} IS NOT NULL THEN 1 END)"
                )),
                sql.text(&format!("COUNT(CASE WHEN NOT {ok} THEN 1 END)")),
            ),
        )
        .await?
        .unwrap_or_default();
    let current = table
        .first(
            conn,
            &format!(
                "SELECT {} FROM {from} WHERE {ok} AND {version} IS NOT NULL ORDER BY {rank} DESC LIMIT 1",
                sql.text(version)
            ),
        )
        .await?;
    let last = table
        .first(
            conn,
            &format!(
                "SELECT {}, {}, {} FROM {from} ORDER BY {rank} DESC LIMIT 1",
                sql.flag(success),
                sql.text(&sql.epoch_us(installed_on, Naive::ServerZone)),
                sql.text(execution_time),
            ),
        )
        .await?;

    let lock = match sql.0 {
        Engine::Postgres => match &table.schema {
            Some(schema) => pg_advisory_holder(conn, &[flyway_pg_key(schema, &table.name)])
                .await
                .map_err(lock_error)?,
            None => None,
        },
        Engine::MySql => {
            let db = current_database(conn).await?;
            mysql_lock_holder(conn, &[flyway_mysql_lock(&db, &table.name)])
                .await
                .map_err(lock_error)?
        }
        Engine::Sqlite => None,
    };

    Ok(ToolState {
        tool: FLYWAY,
        table: table.name.clone(),
        version: current.and_then(|r| text(&r, 0)),
        applied: Some(count(&agg, 0)),
        last_run: last.map(|r| LastRun {
            success: flag(&r, 0).unwrap_or(false),
            ended_at: seconds_us(&r, 1),
            duration_seconds: int(&r, 2).filter(|ms| *ms >= 0).map(|ms| ms as f64 / 1e3),
        }),
        failed: count(&agg, 1) > 0,
        lock,
    })
}

/// sqlx's `_sqlx_migrations` (sqlx-postgres / sqlx-mysql / sqlx-sqlite `migrate.rs`,
/// `ensure_migrations_table`). `execution_time` is in nanoseconds, -1 until measured.
async fn read_sqlx(conn: &mut DbConn, name: &str) -> Result<ToolState, String> {
    let sql = Sql(conn.engine());
    let table = Table::describe(conn, name).await?;
    let c = table.require(
        sql,
        SQLX,
        &["version", "installed_on", "success", "execution_time"],
    )?;
    let (version, installed_on, success, execution_time) =
        (&c[0].expr, &c[1], &c[2].expr, &c[3].expr);
    let from = table.from(sql);
    let ok = sql.truthy(success);

    let agg = table
        .first(
            conn,
            &format!(
                "SELECT {}, {}, {} FROM {from}",
                sql.text(&format!("COUNT(CASE WHEN {ok} THEN 1 END)")),
                sql.text(&format!("COUNT(CASE WHEN NOT {ok} THEN 1 END)")),
                sql.text(&format!("MAX(CASE WHEN {ok} THEN {version} END)")),
            ),
        )
        .await?
        .unwrap_or_default();
    let last = table
        .first(
            conn,
            &format!(
                "SELECT {}, {}, {} FROM {from} ORDER BY {} DESC, {version} DESC LIMIT 1",
                sql.flag(success),
                sql.text(&sql.epoch_us(installed_on, Naive::ServerZone)),
                sql.text(execution_time),
                installed_on.expr,
            ),
        )
        .await?;

    let lock = match sql.0 {
        Engine::Postgres => {
            let db = current_database(conn).await?;
            pg_advisory_holder(conn, &[sqlx_pg_key(&db)])
                .await
                .map_err(lock_error)?
        }
        Engine::MySql => {
            let db = current_database(conn).await?;
            mysql_lock_holder(conn, &[sqlx_mysql_lock(&db)])
                .await
                .map_err(lock_error)?
        }
        Engine::Sqlite => None,
    };

    Ok(ToolState {
        tool: SQLX,
        table: table.name.clone(),
        version: text(&agg, 2),
        applied: Some(count(&agg, 0)),
        last_run: last.map(|r| LastRun {
            success: flag(&r, 0).unwrap_or(false),
            ended_at: seconds_us(&r, 1),
            duration_seconds: int(&r, 2).filter(|ns| *ns >= 0).map(|ns| ns as f64 / 1e9),
        }),
        failed: count(&agg, 1) > 0,
        lock,
    })
}

/// `schema_migrations`: golang-migrate's when it has a `dirty` column, else dbmate's (the
/// Rails layout).
async fn read_schema_migrations(conn: &mut DbConn, name: &str) -> ToolRead {
    let table = match Table::describe(conn, name).await {
        Ok(t) => t,
        Err(e) => {
            return ToolRead {
                tool: GOLANG_MIGRATE,
                result: Err(format!("{e} (golang-migrate's or dbmate's table)")),
            };
        }
    };
    if table.has("dirty") {
        ToolRead {
            tool: GOLANG_MIGRATE,
            result: read_golang_migrate(conn, &table).await,
        }
    } else {
        ToolRead {
            tool: DBMATE,
            result: read_dbmate(conn, &table).await,
        }
    }
}

/// golang-migrate's `schema_migrations` (database/postgres, database/mysql,
/// database/sqlite3 `ensureVersionTable`): one row, version and dirty; no times.
async fn read_golang_migrate(conn: &mut DbConn, table: &Table) -> Result<ToolState, String> {
    let sql = Sql(conn.engine());
    let c = table.require(sql, GOLANG_MIGRATE, &["version", "dirty"])?;
    let (version, dirty) = (&c[0].expr, &c[1].expr);
    let row = table
        .first(
            conn,
            &format!(
                "SELECT {}, {} FROM {} ORDER BY {version} DESC LIMIT 1",
                sql.text(version),
                sql.flag(dirty),
                table.from(sql)
            ),
        )
        .await?;
    // -1 (NilVersion) with dirty set records a failed first down migration: no version.
    let version = row
        .as_ref()
        .and_then(|r| text(r, 0))
        .filter(|v| !v.trim().starts_with('-'));
    let failed = row.as_ref().and_then(|r| flag(r, 1)).unwrap_or(false);

    let lock = match sql.0 {
        Engine::Postgres => match &table.schema {
            Some(schema) => {
                let db = current_database(conn).await?;
                pg_advisory_holder(conn, &golang_migrate_pg_keys(&db, schema, &table.name))
                    .await
                    .map_err(lock_error)?
            }
            None => None,
        },
        Engine::MySql => {
            let db = current_database(conn).await?;
            mysql_lock_holder(conn, &[golang_migrate_mysql_lock(&db, &table.name)])
                .await
                .map_err(lock_error)?
        }
        Engine::Sqlite => None,
    };

    Ok(ToolState {
        tool: GOLANG_MIGRATE,
        table: table.name.clone(),
        version,
        applied: None,
        last_run: None,
        failed,
        lock,
    })
}

/// dbmate's `schema_migrations` (pkg/driver/*/ `CreateMigrationsTable`: `version
/// varchar(128) primary key`), also Rails': one row per applied version, no times, no
/// lock.
async fn read_dbmate(conn: &mut DbConn, table: &Table) -> Result<ToolState, String> {
    let sql = Sql(conn.engine());
    let c = table.require(sql, DBMATE, &["version"])?;
    let version = &c[0].expr;
    let agg = table
        .first(
            conn,
            &format!(
                "SELECT {}, {} FROM {}",
                sql.text(&format!("MAX({version})")),
                sql.text("COUNT(*)"),
                table.from(sql)
            ),
        )
        .await?
        .unwrap_or_default();
    Ok(ToolState {
        tool: DBMATE,
        table: table.name.clone(),
        version: text(&agg, 0),
        applied: Some(count(&agg, 1)),
        last_run: None,
        failed: false,
        lock: None,
    })
}

/// Django's `django_migrations` (MigrationRecorder's model: id, app, name, applied). With
/// USE_TZ, Django writes UTC into MySQL's zone-less `datetime(6)` and SQLite's text.
async fn read_django(conn: &mut DbConn, name: &str) -> Result<ToolState, String> {
    let sql = Sql(conn.engine());
    let table = Table::describe(conn, name).await?;
    let c = table.require(sql, DJANGO, &["id", "app", "name", "applied"])?;
    let (id, app, migration, applied) = (&c[0].expr, &c[1].expr, &c[2].expr, &c[3]);
    let from = table.from(sql);
    let latest = table
        .first(
            conn,
            &format!(
                "SELECT {}, {} FROM {from} ORDER BY {id} DESC LIMIT 1",
                sql.text(app),
                sql.text(migration)
            ),
        )
        .await?;
    let agg = table
        .first(
            conn,
            &format!(
                "SELECT {}, {} FROM {from}",
                sql.text("COUNT(*)"),
                sql.text(&format!("MAX({})", sql.epoch_us(applied, Naive::Utc))),
            ),
        )
        .await?
        .unwrap_or_default();
    let rows = count(&agg, 0);
    Ok(ToolState {
        tool: DJANGO,
        table: table.name.clone(),
        version: latest.and_then(|r| match (text(&r, 0), text(&r, 1)) {
            (Some(app), Some(name)) => Some(format!("{app}.{name}")),
            _ => None,
        }),
        applied: Some(rows),
        last_run: (rows > 0).then(|| LastRun {
            success: true,
            ended_at: seconds_us(&agg, 1),
            duration_seconds: None,
        }),
        failed: false,
        lock: None,
    })
}

/// Alembic's `alembic_version` (version_num, one row per head).
async fn read_alembic(conn: &mut DbConn, name: &str) -> Result<ToolState, String> {
    let sql = Sql(conn.engine());
    let table = Table::describe(conn, name).await?;
    let c = table.require(sql, ALEMBIC, &["version_num"])?;
    let rows = table
        .query(
            conn,
            &format!("SELECT {} FROM {}", sql.text(&c[0].expr), table.from(sql)),
        )
        .await?;
    let mut heads: Vec<String> = rows.iter().filter_map(|r| text(r, 0)).collect();
    heads.sort();
    Ok(ToolState {
        tool: ALEMBIC,
        table: table.name.clone(),
        version: (!heads.is_empty()).then(|| heads.join(",")),
        applied: None,
        last_run: None,
        failed: false,
        lock: None,
    })
}

/// Liquibase's `DATABASECHANGELOG` and `DATABASECHANGELOGLOCK` (the standard tracking
/// tables; either may exist alone). DATEEXECUTED is written with the server's NOW() /
/// CURRENT_TIMESTAMP, LOCKGRANTED with the client's clock.
async fn read_liquibase(
    conn: &mut DbConn,
    changelog: Option<&str>,
    lock_table: Option<&str>,
) -> Result<ToolState, String> {
    let sql = Sql(conn.engine());
    let mut state = ToolState {
        tool: LIQUIBASE,
        table: changelog.or(lock_table).unwrap_or_default().to_owned(),
        version: None,
        applied: None,
        last_run: None,
        failed: false,
        lock: None,
    };
    if let Some(name) = changelog {
        let table = Table::describe(conn, name).await?;
        let c = table.require(
            sql,
            LIQUIBASE,
            &["id", "dateexecuted", "orderexecuted", "exectype"],
        )?;
        let (id, date, order, exectype) = (&c[0].expr, &c[1], &c[2].expr, &c[3].expr);
        let from = table.from(sql);
        let kind = format!("UPPER({exectype})");
        let latest = table
            .first(
                conn,
                &format!(
                    "SELECT {}, {} FROM {from} ORDER BY {order} DESC, {} DESC LIMIT 1",
                    sql.text(id),
                    sql.text(&kind),
                    date.expr
                ),
            )
            .await?;
        let agg = table
            .first(
                conn,
                &format!(
                    "SELECT {}, {}, {} FROM {from}",
                    sql.text(&format!(
                        "COUNT(CASE WHEN {kind} IN ('EXECUTED', 'RERAN', 'MARK_RAN') THEN 1 END)"
                    )),
                    sql.text(&format!("COUNT(CASE WHEN {kind} = 'FAILED' THEN 1 END)")),
                    sql.text(&format!("MAX({})", sql.epoch_us(date, Naive::ServerZone))),
                ),
            )
            .await?
            .unwrap_or_default();
        state.version = latest.as_ref().and_then(|r| text(r, 0));
        state.applied = Some(count(&agg, 0));
        state.failed = count(&agg, 1) > 0;
        state.last_run = latest.as_ref().map(|r| LastRun {
            success: text(r, 1).as_deref() != Some("FAILED"),
            ended_at: seconds_us(&agg, 2),
            duration_seconds: None,
        });
    }
    if let Some(name) = lock_table {
        let table = Table::describe(conn, name).await?;
        let c = table.require(sql, LIQUIBASE, &["locked", "lockgranted", "lockedby"])?;
        let (locked, granted, by) = (&c[0].expr, &c[1], &c[2].expr);
        let row = table
            .first(
                conn,
                &format!(
                    "SELECT {}, {} FROM {} WHERE {} LIMIT 1",
                    sql.text(&sql.epoch_us(granted, Naive::ServerZone)),
                    sql.text(by),
                    table.from(sql),
                    sql.truthy(locked)
                ),
            )
            .await?;
        state.lock = row.map(|r| LockHeld {
            since: seconds_us(&r, 0),
            holder: text(&r, 1).unwrap_or_default(),
        });
    }
    Ok(state)
}

// ---------------------------------------------------------------------------------------
// Advisory and named locks
// ---------------------------------------------------------------------------------------

async fn current_database(conn: &mut DbConn) -> Result<String, String> {
    let sql = match conn.engine() {
        Engine::Postgres => "SELECT CAST(current_database() AS TEXT)",
        Engine::MySql => "SELECT CAST(DATABASE() AS CHAR)",
        Engine::Sqlite => return Ok(String::new()),
    };
    let rows = conn
        .fetch(sql)
        .await
        .map_err(|e| format!("cannot read the current database's name: {e}"))?;
    Ok(rows.first().and_then(|r| text(r, 0)).unwrap_or_default())
}

/// Who holds one of these advisory locks (`pg_try_advisory_lock(bigint)`), if anyone. Since
/// when: the holding session's start, as these tools take their lock right after connecting.
pub(super) async fn pg_advisory_holder(
    conn: &mut DbConn,
    keys: &[i64],
) -> Result<Option<LockHeld>, sqlx::Error> {
    let keys = keys
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let rows = conn
        .fetch_with(
            "SELECT CAST(l.pid AS TEXT), CAST(a.usename AS TEXT), CAST(a.application_name AS TEXT), \
             CAST(coalesce(host(a.client_addr), 'local socket') AS TEXT), \
             CAST(extract(epoch from a.backend_start) AS TEXT) \
             FROM pg_catalog.pg_locks l LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
             AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) \
             AND ((CAST(l.classid AS bigint) << 32) | CAST(l.objid AS bigint)) = ANY (CAST(string_to_array($1, ',') AS bigint[])) \
             ORDER BY l.pid LIMIT 1",
            &[&keys],
        )
        .await?;
    Ok(rows.first().map(|r| {
        let mut holder = format!("PostgreSQL backend {}", text(r, 0).unwrap_or_default());
        if let Some(user) = text(r, 1).filter(|u| !u.is_empty()) {
            holder.push_str(&format!(", user {user}"));
        }
        if let Some(app) = text(r, 2).filter(|a| !a.is_empty()) {
            holder.push_str(&format!(", application {app:?}"));
        }
        if let Some(from) = text(r, 3) {
            holder.push_str(&format!(", from {from}"));
        }
        LockHeld {
            since: text(r, 4).and_then(|t| t.parse().ok()),
            holder,
        }
    }))
}

/// The connection holding one of these named locks (GET_LOCK), from IS_USED_LOCK. MySQL
/// does not record when a named lock was taken; the holder's account shows when the
/// processlist lets us see it.
pub(super) async fn mysql_lock_holder(
    conn: &mut DbConn,
    names: &[String],
) -> Result<Option<LockHeld>, sqlx::Error> {
    for name in names {
        let rows = conn
            .fetch_with(
                "SELECT CAST(IS_USED_LOCK(?) AS CHAR), \
                 (SELECT CAST(CONCAT(p.user, '@', p.host) AS CHAR) FROM information_schema.processlist p WHERE p.id = IS_USED_LOCK(?))",
                &[name, name],
            )
            .await?;
        let Some(row) = rows.first() else { continue };
        let Some(id) = text(row, 0) else { continue };
        let mut holder = format!("MySQL connection {id}");
        if let Some(account) = text(row, 1) {
            holder.push_str(&format!(", user {account}"));
        }
        return Ok(Some(LockHeld {
            since: None,
            holder,
        }));
    }
    Ok(None)
}

fn lock_error(e: sqlx::Error) -> String {
    format!("cannot tell who holds the lock: {e}")
}

/// CRC-32 (IEEE 802.3), as Go's crc32.ChecksumIEEE and the crc crate's CRC_32_ISO_HDLC.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// Java's String.hashCode.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// Flyway's PostgreSQLAdvisoryLockTemplate: "Flyway" in ASCII plus the hash of the quoted,
/// schema-qualified history table.
fn flyway_pg_key(schema: &str, table: &str) -> i64 {
    const LOCK_MAGIC_NUM: i64 =
        (0x46 << 40) + (0x6C << 32) + (0x79 << 24) + (0x77 << 16) + (0x61 << 8) + 0x79;
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    LOCK_MAGIC_NUM + i64::from(java_hash(&format!("{}.{}", quote(schema), quote(table))))
}

/// Flyway's MySQLNamedLockTemplate: `Flyway-` and the hash of `` `db`.`table` ``.
fn flyway_mysql_lock(database: &str, table: &str) -> String {
    format!("Flyway-{}", java_hash(&format!("`{database}`.`{table}`")))
}

/// sqlx's generate_lock_id (PostgreSQL): 0x3d32ad9e times the CRC-32 of the database name.
fn sqlx_pg_key(database: &str) -> i64 {
    0x3d32ad9e * i64::from(crc32(database.as_bytes()))
}

/// sqlx's generate_lock_id (MySQL): the same number in lower-case hex.
fn sqlx_mysql_lock(database: &str) -> String {
    format!("{:x}", sqlx_pg_key(database))
}

/// golang-migrate's GenerateAdvisoryLockId: CRC-32 of the NUL-joined names times 1486364155,
/// in 32 bits.
fn golang_migrate_lock_id(names: &[&str]) -> u32 {
    crc32(names.join("\0").as_bytes()).wrapping_mul(1_486_364_155)
}

/// golang-migrate's PostgreSQL keys. Current releases hash (database, schema, table),
/// earlier ones (database, schema) and (database); the CLI passes the URL path ("/db") as
/// the database name, the library the name from current_database().
fn golang_migrate_pg_keys(database: &str, schema: &str, table: &str) -> Vec<i64> {
    let slashed = format!("/{database}");
    let mut keys = Vec::new();
    for db in [database, slashed.as_str()] {
        for names in [vec![db, schema, table], vec![db, schema], vec![db]] {
            keys.push(i64::from(golang_migrate_lock_id(&names)));
        }
    }
    keys
}

/// golang-migrate's MySQL lock name: the id of "database:table", in decimal.
fn golang_migrate_mysql_lock(database: &str, table: &str) -> String {
    golang_migrate_lock_id(&[&format!("{database}:{table}")]).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values computed independently with Python (zlib.crc32, Java's hashCode
    // re-implemented over UTF-16 code units) for the database `hist_full`.

    #[test]
    fn crc32_matches_ieee() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn java_hash_matches_string_hash_code() {
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("hello"), 99_162_322);
    }

    #[test]
    fn flyway_keys() {
        assert_eq!(
            flyway_pg_key("public", "flyway_schema_history"),
            77_433_833_903_597
        );
        assert_eq!(
            flyway_mysql_lock("hist_full", "flyway_schema_history"),
            "Flyway--1286310995"
        );
    }

    #[test]
    fn sqlx_keys() {
        assert_eq!(sqlx_pg_key("hist_full"), 4_278_253_819_228_870_550);
        assert_eq!(sqlx_mysql_lock("hist_full"), "3b5f692e72185796");
    }

    #[test]
    fn golang_migrate_keys() {
        assert_eq!(
            golang_migrate_pg_keys("hist_full", "public", "schema_migrations"),
            vec![
                3_312_161_793,
                595_902_031,
                1_740_198_567,
                882_941_410,
                2_592_399_006,
                4_012_901_952
            ]
        );
        assert_eq!(
            golang_migrate_mysql_lock("hist_full", "schema_migrations"),
            "2720431537"
        );
    }
}
