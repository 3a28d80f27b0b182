//! The session state a script may change (current database, search_path, sql_mode, locked
//! tables), captured when a run starts and put back after each script, so that every
//! script starts where a fresh native client would: a dump's `USE other` or
//! `SET search_path = ''` does not leak into the next script.

use super::conn::{Cell, DbConn, Engine};
use super::limits;
use crate::config::MigrationLimits;

pub struct Session {
    limits: MigrationLimits,
    /// MySQL: statements that restore what the run started with, in order.
    restore: Vec<String>,
}

/// MySQL session variables a dump or script sets and a later script would inherit.
const MYSQL_VARIABLES: [&str; 9] = [
    "sql_mode",
    "time_zone",
    "foreign_key_checks",
    "unique_checks",
    "character_set_client",
    "character_set_results",
    "collation_connection",
    "sql_notes",
    // Last: turning it back on commits what a script left open, as its own COMMIT would
    // have, before dbvigil records the script.
    "autocommit",
];

impl Session {
    /// Reads what must be restored later and sets the lock-wait limit.
    pub async fn start(conn: &mut DbConn, limits: MigrationLimits) -> Result<Session, sqlx::Error> {
        let mut restore = Vec::new();
        if conn.engine() == Engine::MySql {
            let columns: Vec<String> = MYSQL_VARIABLES
                .iter()
                .map(|v| format!("CAST(@@SESSION.{v} AS CHAR)"))
                .collect();
            let rows = conn
                .fetch(&format!("SELECT DATABASE(), {}", columns.join(", ")))
                .await?;
            let row = rows.into_iter().next().unwrap_or_default();
            // Locks taken with LOCK TABLES (every mysqldump data section) would keep the
            // history table out of reach.
            restore.push("UNLOCK TABLES".to_owned());
            if let Some(database) = row.first().and_then(Cell::text) {
                restore.push(format!("USE `{}`", database.replace('`', "``")));
            }
            let assignments: Vec<String> = MYSQL_VARIABLES
                .iter()
                .zip(row.iter().skip(1))
                .map(|(name, value)| match value.text() {
                    Some(v) => format!("SESSION {name} = {}", mysql_literal(&v)),
                    None => format!("SESSION {name} = NULL"),
                })
                .collect();
            restore.push(format!("SET {}", assignments.join(", ")));
        }
        limits::apply_lock_wait(conn, &limits).await?;
        Ok(Session { limits, restore })
    }

    pub fn limits(&self) -> &MigrationLimits {
        &self.limits
    }

    /// After a statement that may have lifted the lock-wait limit, puts it back.
    pub async fn after_statement(&self, conn: &mut DbConn, sql: &str) -> Result<(), sqlx::Error> {
        if limits::may_change_lock_wait(sql) {
            limits::reassert_lock_wait(conn, &self.limits).await?;
        }
        Ok(())
    }

    /// Puts back the state the run started with. PostgreSQL: `RESET ALL` returns every
    /// setting to the session's defaults (search_path included) but not the role, which
    /// has resets of its own; then the limit is set again. SQLite keeps no such state
    /// across statements that matters here.
    pub async fn restore(&self, conn: &mut DbConn) -> Result<(), sqlx::Error> {
        match conn.engine() {
            Engine::Postgres => {
                conn.execute("RESET SESSION AUTHORIZATION; RESET ROLE; RESET ALL")
                    .await?;
            }
            Engine::MySql => {
                for sql in &self.restore {
                    conn.execute(sql).await?;
                }
            }
            Engine::Sqlite => return Ok(()),
        }
        limits::apply_lock_wait(conn, &self.limits).await
    }
}

/// A MySQL string literal for a session value: names of modes, zones and character sets,
/// which hold no backslash, so doubling quotes reads the same whether or not the script
/// left NO_BACKSLASH_ESCAPES on.
fn mysql_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
