//! Alembic's `alembic_version`.

use super::catalog::{Found, ReadFuture};
use super::sql::Sql;
use super::table::{Table, text};
use super::{HistoryError, Reading, ToolState};
use crate::migrate::conn::DbConn;

pub(super) const TOOL: &str = "alembic";

pub(super) fn read<'a>(conn: &'a mut DbConn, found: &'a Found) -> ReadFuture<'a> {
    Box::pin(async move {
        Reading {
            tool: TOOL,
            result: read_table(conn, found.first()).await,
        }
    })
}

/// Alembic's `alembic_version` (version_num, one row per head).
async fn read_table(conn: &mut DbConn, name: &str) -> Result<ToolState, HistoryError> {
    let sql = Sql(conn.engine());
    let table = Table::describe(conn, name).await?;
    let c = table.require(sql, TOOL, &["version_num"])?;
    let rows = table
        .query(
            conn,
            &format!("SELECT {} FROM {}", sql.text(&c[0].expr), table.from(sql)),
        )
        .await?;
    let mut heads: Vec<String> = rows.iter().filter_map(|r| text(r, 0)).collect();
    heads.sort();
    Ok(ToolState {
        tool: TOOL,
        table: table.name.clone(),
        version: (!heads.is_empty()).then(|| heads.join(",")),
        applied: None,
        last_run: None,
        failed: false,
        lock: None,
    })
}
