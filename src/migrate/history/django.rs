//! Django's `django_migrations`.

use super::catalog::{Found, ReadFuture};
use super::sql::{Naive, Sql};
use super::table::{Table, count, text, timestamp_us};
use super::{HistoryError, LastRun, Reading, ToolState};
use crate::migrate::conn::DbConn;

pub(super) const TOOL: &str = "django";

pub(super) fn read<'a>(conn: &'a mut DbConn, found: &'a Found) -> ReadFuture<'a> {
    Box::pin(async move {
        Reading {
            tool: TOOL,
            result: read_table(conn, found.first()).await,
        }
    })
}

/// Django's `django_migrations` (MigrationRecorder's model: id, app, name, applied). With
/// USE_TZ, Django writes UTC into MySQL's zone-less `datetime(6)` and SQLite's text.
async fn read_table(conn: &mut DbConn, name: &str) -> Result<ToolState, HistoryError> {
    let sql = Sql(conn.engine());
    let table = Table::describe(conn, name).await?;
    let c = table.require(sql, TOOL, &["id", "app", "name", "applied"])?;
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
        tool: TOOL,
        table: table.name.clone(),
        version: latest.and_then(|r| match (text(&r, 0), text(&r, 1)) {
            (Some(app), Some(name)) => Some(format!("{app}.{name}")),
            _ => None,
        }),
        applied: Some(rows),
        last_run: (rows > 0).then(|| LastRun {
            success: true,
            ended_at: timestamp_us(&agg, 1),
            duration_seconds: None,
        }),
        failed: false,
        lock: None,
    })
}
