//! dbvigil: a Prometheus exporter for database availability and change.
//! See ARCHITECTURE.md for the map of this crate.
//!
//! Public is what the binary (`cli::main`) and the integration tests drive; everything else
//! is crate-private, so the compiler reports a piece nothing uses.

pub mod cli;
pub mod config;
mod connect;
pub mod exporter;
mod groups;
pub mod http;
mod labels;
pub mod maintenance;
mod metrics;
pub mod migrate;
mod outbound;
mod probe;
mod runner;
mod silences;
mod state;
pub mod time;
mod tunnel;
mod wildcard;
