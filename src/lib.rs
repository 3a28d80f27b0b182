//! dbvigil: a Prometheus exporter for database availability and change.
//! See ARCHITECTURE.md for the map of this crate.

pub mod cli;
pub mod config;
pub mod exporter;
pub mod groups;
pub mod http;
pub mod labels;
pub mod maintenance;
pub mod metrics;
pub mod migrate;
pub mod probe;
pub mod runner;
pub mod state;
