//! Readers for other migration tools' history tables: Flyway, sqlx, golang-migrate, dbmate
//! (and Rails), Django, Alembic and Liquibase, on PostgreSQL, MySQL/MariaDB and SQLite.
//!
//! The catalog (`catalog.rs`) says which tables belong to which reader; every reader has
//! the same signature, so `read_all` walks the catalog instead of naming each tool.
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
//! in each tool's module as its sources derive them, and Liquibase's lock table. SQLite has
//! none of them.

mod alembic;
mod catalog;
mod dbmate;
mod django;
mod error;
mod flyway;
mod golang_migrate;
mod liquibase;
mod locks;
mod sql;
mod sqlx_migrate;
mod table;

use crate::migrate::conn::DbConn;
use crate::time::Timestamp;

use error::HistoryError;
pub(in crate::migrate) use locks::{mysql_lock_holder, pg_advisory_holder};

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
    pub ended_at: Option<Timestamp>,
    pub duration_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LockHeld {
    /// When the tool records it.
    pub since: Option<Timestamp>,
    pub holder: String,
}

/// One tool's read as the exporter keeps it: the error is the message the user sees, so
/// that snapshots can be cloned and compared from one read to the next.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRead {
    pub tool: &'static str,
    pub result: Result<ToolState, String>,
}

/// One reader's answer. The tool is named even when the table could not be read, since
/// `schema_migrations` is golang-migrate's or dbmate's depending on its columns.
struct Reading {
    tool: &'static str,
    result: Result<ToolState, HistoryError>,
}

impl From<Reading> for ToolRead {
    fn from(reading: Reading) -> Self {
        ToolRead {
            tool: reading.tool,
            result: reading.result.map_err(|e| e.to_string()),
        }
    }
}

/// Every known tool whose table exists in the connection's schema; Err only when the
/// catalog itself cannot be read.
pub async fn read_all(conn: &mut DbConn) -> Result<Vec<ToolRead>, sqlx::Error> {
    // Every table is looked up before any is read, so a catalog error leaves no reader
    // half-way.
    let mut found = Vec::with_capacity(catalog::READERS.len());
    for reader in catalog::READERS {
        found.push(catalog::Found::look_up(conn, reader.tables).await?);
    }
    let mut reads = Vec::new();
    for (reader, found) in catalog::READERS.iter().zip(&found) {
        if found.any() {
            reads.push((reader.read)(conn, found).await.into());
        }
    }
    Ok(reads)
}
