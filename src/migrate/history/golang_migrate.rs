//! golang-migrate's `schema_migrations` and its advisory (PostgreSQL) and named (MySQL)
//! locks. The catalog hands it the table when the table has a `dirty` column.

use super::locks::{crc32, current_database, mysql_lock_holder, pg_advisory_holder};
use super::sql::Sql;
use super::table::{Table, flag, text};
use super::{HistoryError, ToolState};
use crate::migrate::conn::{DbConn, Engine};

pub(super) const TOOL: &str = "golang-migrate";

/// golang-migrate's `schema_migrations` (database/postgres, database/mysql,
/// database/sqlite3 `ensureVersionTable`): one row, version and dirty; no times.
pub(super) async fn read_table(
    conn: &mut DbConn,
    table: &Table,
) -> Result<ToolState, HistoryError> {
    let sql = Sql(conn.engine());
    let c = table.require(sql, TOOL, &["version", "dirty"])?;
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
                    .map_err(HistoryError::LockHolder)?
            }
            None => None,
        },
        Engine::MySql => {
            let db = current_database(conn).await?;
            mysql_lock_holder(conn, &[golang_migrate_mysql_lock(&db, &table.name)])
                .await
                .map_err(HistoryError::LockHolder)?
        }
        Engine::Sqlite => None,
    };

    Ok(ToolState {
        tool: TOOL,
        table: table.name.clone(),
        version,
        applied: None,
        last_run: None,
        failed,
        lock,
    })
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

    // Expected values computed independently with Python (zlib.crc32) for the database
    // `hist_full`.

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
