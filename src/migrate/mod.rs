//! Migrations: `dbvigil migrate` (ordered SQL scripts, checksummed, locked, recorded in
//! `dbvigil_schema_history`) and the readers that turn any tool's history table into
//! metrics.

pub(crate) mod baseline;
pub mod conn;
pub mod history;
pub(crate) mod limits;
pub(crate) mod new_script;
pub mod plan;
pub(crate) mod runner;
pub(crate) mod schema_history;
pub mod script;
pub(crate) mod session;
pub mod split;
pub(crate) mod watch;
