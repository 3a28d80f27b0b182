//! Migrations: `dbvigil migrate` (ordered SQL scripts, checksummed, locked, recorded in
//! `dbvigil_schema_history`) and the readers that turn any tool's history table into
//! metrics.

pub mod conn;
