//! Flyway's `flyway_schema_history` and its advisory (PostgreSQL) and named (MySQL) locks.

use super::catalog::{Found, ReadFuture};
use super::locks::{current_database, java_hash, mysql_lock_holder, pg_advisory_holder};
use super::sql::{Naive, Sql};
use super::table::{Table, count, flag, int, text, timestamp_us};
use super::{HistoryError, LastRun, Reading, ToolState};
use crate::migrate::conn::{DbConn, Engine};

pub(super) const TOOL: &str = "flyway";

pub(super) fn read<'a>(conn: &'a mut DbConn, found: &'a Found) -> ReadFuture<'a> {
    Box::pin(async move {
        Reading {
            tool: TOOL,
            result: read_table(conn, found.first()).await,
        }
    })
}

/// Flyway's `flyway_schema_history` (Flyway 5+; PostgreSQLDatabase / MySQLDatabase /
/// SQLiteDatabase `getRawCreateScript`). `execution_time` is in milliseconds.
async fn read_table(conn: &mut DbConn, name: &str) -> Result<ToolState, HistoryError> {
    let sql = Sql(conn.engine());
    let table = Table::describe(conn, name).await?;
    let c = table.require(
        sql,
        TOOL,
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
                .map_err(HistoryError::LockHolder)?,
            None => None,
        },
        Engine::MySql => {
            let db = current_database(conn).await?;
            mysql_lock_holder(conn, &[flyway_mysql_lock(&db, &table.name)])
                .await
                .map_err(HistoryError::LockHolder)?
        }
        Engine::Sqlite => None,
    };

    Ok(ToolState {
        tool: TOOL,
        table: table.name.clone(),
        version: current.and_then(|r| text(&r, 0)),
        applied: Some(count(&agg, 0)),
        last_run: last.map(|r| LastRun {
            success: flag(&r, 0).unwrap_or(false),
            ended_at: timestamp_us(&r, 1),
            duration_seconds: int(&r, 2).filter(|ms| *ms >= 0).map(|ms| ms as f64 / 1e3),
        }),
        failed: count(&agg, 1) > 0,
        lock,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values computed independently with Python (Java's hashCode re-implemented
    // over UTF-16 code units) for the database `hist_full`.

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
}
