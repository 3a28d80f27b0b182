//! Migrations: `dbvigil migrate` (ordered SQL scripts, checksummed, locked, recorded in
//! `dbvigil_schema_history`) and the readers that turn any tool's history table into
//! metrics.

pub mod conn;
pub mod history;
pub mod limits;
pub mod plan;
pub mod runner;
pub mod schema_history;
pub mod script;
pub mod session;
pub mod split;
pub mod watch;
