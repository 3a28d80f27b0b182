//! Liquibase's `DATABASECHANGELOG` and its lock table `DATABASECHANGELOGLOCK`.

use super::catalog::{Found, ReadFuture};
use super::sql::{Naive, Sql};
use super::table::{Table, count, text, timestamp_us};
use super::{HistoryError, LastRun, LockHeld, Reading, ToolState};
use crate::migrate::conn::DbConn;

pub(super) const TOOL: &str = "liquibase";

pub(super) fn read<'a>(conn: &'a mut DbConn, found: &'a Found) -> ReadFuture<'a> {
    Box::pin(async move {
        Reading {
            tool: TOOL,
            result: read_tables(conn, found.get(0), found.get(1)).await,
        }
    })
}

/// Liquibase's `DATABASECHANGELOG` and `DATABASECHANGELOGLOCK` (the standard tracking
/// tables; either may exist alone). DATEEXECUTED is written with the server's NOW() /
/// CURRENT_TIMESTAMP, LOCKGRANTED with the client's clock.
async fn read_tables(
    conn: &mut DbConn,
    changelog: Option<&str>,
    lock_table: Option<&str>,
) -> Result<ToolState, HistoryError> {
    let sql = Sql(conn.engine());
    let mut state = ToolState {
        tool: TOOL,
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
            TOOL,
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
            ended_at: timestamp_us(&agg, 2),
            duration_seconds: None,
        });
    }
    if let Some(name) = lock_table {
        let table = Table::describe(conn, name).await?;
        let c = table.require(sql, TOOL, &["locked", "lockgranted", "lockedby"])?;
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
            since: timestamp_us(&r, 0),
            holder: text(&r, 1).unwrap_or_default(),
        });
    }
    Ok(state)
}
