//! sqlx's `_sqlx_migrations` and its advisory (PostgreSQL) and named (MySQL) locks.

use super::catalog::{Found, ReadFuture};
use super::locks::{crc32, current_database, mysql_lock_holder, pg_advisory_holder};
use super::sql::{Naive, Sql};
use super::table::{Table, count, flag, int, text, timestamp_us};
use super::{HistoryError, LastRun, Reading, ToolState};
use crate::migrate::conn::{DbConn, Engine};

pub(super) const TOOL: &str = "sqlx";

pub(super) fn read<'a>(conn: &'a mut DbConn, found: &'a Found) -> ReadFuture<'a> {
    Box::pin(async move {
        Reading {
            tool: TOOL,
            result: read_table(conn, found.first()).await,
        }
    })
}

/// sqlx's `_sqlx_migrations` (sqlx-postgres / sqlx-mysql / sqlx-sqlite `migrate.rs`,
/// `ensure_migrations_table`). `execution_time` is in nanoseconds, -1 until measured.
async fn read_table(conn: &mut DbConn, name: &str) -> Result<ToolState, HistoryError> {
    let sql = Sql(conn.engine());
    let table = Table::describe(conn, name).await?;
    let c = table.require(
        sql,
        TOOL,
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
                .map_err(HistoryError::LockHolder)?
        }
        Engine::MySql => {
            let db = current_database(conn).await?;
            mysql_lock_holder(conn, &[sqlx_mysql_lock(&db)])
                .await
                .map_err(HistoryError::LockHolder)?
        }
        Engine::Sqlite => None,
    };

    Ok(ToolState {
        tool: TOOL,
        table: table.name.clone(),
        version: text(&agg, 2),
        applied: Some(count(&agg, 0)),
        last_run: last.map(|r| LastRun {
            success: flag(&r, 0).unwrap_or(false),
            ended_at: timestamp_us(&r, 1),
            duration_seconds: int(&r, 2).filter(|ns| *ns >= 0).map(|ns| ns as f64 / 1e9),
        }),
        failed: count(&agg, 1) > 0,
        lock,
    })
}

/// sqlx's generate_lock_id (PostgreSQL): 0x3d32ad9e times the CRC-32 of the database name.
fn sqlx_pg_key(database: &str) -> i64 {
    0x3d32ad9e * i64::from(crc32(database.as_bytes()))
}

/// sqlx's generate_lock_id (MySQL): the same number in lower-case hex.
fn sqlx_mysql_lock(database: &str) -> String {
    format!("{:x}", sqlx_pg_key(database))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values computed independently with Python (zlib.crc32) for the database
    // `hist_full`.

    #[test]
    fn sqlx_keys() {
        assert_eq!(sqlx_pg_key("hist_full"), 4_278_253_819_228_870_550);
        assert_eq!(sqlx_mysql_lock("hist_full"), "3b5f692e72185796");
    }
}
