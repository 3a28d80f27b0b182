//! dbmate's (and Rails') `schema_migrations`. The catalog hands it the table when the
//! table has no `dirty` column.

use super::sql::Sql;
use super::table::{Table, count, text};
use super::{HistoryError, ToolState};
use crate::migrate::conn::DbConn;

pub(super) const TOOL: &str = "dbmate";

/// dbmate's `schema_migrations` (pkg/driver/*/ `CreateMigrationsTable`: `version
/// varchar(128) primary key`), also Rails': one row per applied version, no times, no
/// lock.
pub(super) async fn read_table(
    conn: &mut DbConn,
    table: &Table,
) -> Result<ToolState, HistoryError> {
    let sql = Sql(conn.engine());
    let c = table.require(sql, TOOL, &["version"])?;
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
        tool: TOOL,
        table: table.name.clone(),
        version: text(&agg, 0),
        applied: Some(count(&agg, 1)),
        last_run: None,
        failed: false,
        lock: None,
    })
}
