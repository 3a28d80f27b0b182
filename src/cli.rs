//! Command line: the flags, and which job each subcommand (or none: run the exporter) goes to;
//! `maintenance`, `migrate` and `report` talk to a running exporter or a database.

mod check_config;
mod client;
mod hash_password;
mod host;
mod listen;
mod logging;
mod maintenance;
mod migrate;
mod output;
mod report;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use host::hostname;
use host::user_at_host;
pub use logging::{LogFormat, LogLevel};

const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("DBVIGIL_REVISION"),
    ")"
);
pub const DEFAULT_LISTEN_ADDRESS: &str = ":10150";

#[derive(Debug, Parser)]
#[command(
    name = "dbvigil",
    version = LONG_VERSION,
    about = "Prometheus exporter for database availability and change",
    after_help = "With no --config.file, dbvigil probes an embedded SQLite database in --data.dir."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a configuration file and exit: 0 when valid, 1 with the reason when not.
    CheckConfig {
        #[arg(long = "config.file", value_name = "FILE")]
        config_file: Option<PathBuf>,
        /// Also check a web configuration file (TLS, basic auth), as --web.config.file reads it.
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config_file: Option<PathBuf>,
    },
    /// Print the bcrypt hash of a password read from standard input, for basic_auth_users in --web.config.file.
    HashPassword {
        /// bcrypt cost: each step doubles the time a check takes (and a guess costs).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(4..=31))]
        cost: u32,
    },
    /// Start, extend, end, list maintenance windows on a running exporter, or ask whether a scope is in maintenance.
    Maintenance(maintenance::MaintenanceArgs),
    /// Apply ordered SQL scripts (V<version>__<description>.sql) to a target, a URL or a CSV plan; info, validate, repair, baseline, new.
    Migrate(Box<migrate::MigrateArgs>),
    /// A target's switchovers as a postmortem timeline, then its outages, from a running exporter.
    Report(report::ReportArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Configuration file (YAML). Without it, the built-in configuration probes an embedded SQLite database.
    #[arg(long = "config.file", value_name = "FILE", env = "DBVIGIL_CONFIG_FILE")]
    pub config_file: Option<PathBuf>,
    /// Directory for dbvigil's own data (the embedded SQLite database); created if missing.
    #[arg(
        long = "data.dir",
        value_name = "DIR",
        default_value = "./dbvigil-data"
    )]
    pub data_dir: PathBuf,
    /// Address to listen on: host:port, or :port for every address, IPv6 and IPv4; repeat the flag for more.
    #[arg(long = "web.listen-address", value_name = "ADDR", default_value = DEFAULT_LISTEN_ADDRESS)]
    pub listen_addresses: Vec<String>,
    /// Serve on the sockets systemd passes (socket activation) instead of --web.listen-address.
    #[arg(long = "web.systemd-socket")]
    pub systemd_socket: bool,
    /// Web configuration file (exporter-toolkit format): TLS and basic auth for this port; re-read on reload.
    #[arg(
        long = "web.config.file",
        value_name = "FILE",
        env = "DBVIGIL_WEB_CONFIG_FILE"
    )]
    pub web_config_file: Option<PathBuf>,
    /// Path under which metrics are exposed.
    #[arg(
        long = "web.telemetry-path",
        value_name = "PATH",
        default_value = "/metrics"
    )]
    pub telemetry_path: String,
    /// Name of this exporter in heartbeat rows (default: the host name).
    #[arg(long = "exporter.instance", value_name = "NAME")]
    pub instance: Option<String>,
    /// This replica's shard, 0 to --shard.count - 1. Default with more than one shard: the
    /// ordinal ending a StatefulSet pod's name (POD_NAME, else HOSTNAME: dbvigil-2 is 2).
    #[arg(long = "shard.index", value_name = "N", env = "DBVIGIL_SHARD_INDEX")]
    pub shard_index: Option<u32>,
    /// Replicas sharing the configuration's targets; each probes its shard (rendezvous hashing of target names; a failover group's members stay together).
    #[arg(
        long = "shard.count",
        value_name = "M",
        env = "DBVIGIL_SHARD_COUNT",
        default_value_t = 1
    )]
    pub shard_count: u32,
    #[arg(long = "log.level", value_enum, default_value = "info")]
    pub log_level: LogLevel,
    #[arg(long = "log.format", value_enum, default_value = "logfmt")]
    pub log_format: LogFormat,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig {
            config_file,
            web_config_file,
        }) => check_config::run(config_file.as_deref(), web_config_file.as_deref()),
        Some(Command::HashPassword { cost }) => hash_password::run(cost),
        Some(Command::Maintenance(args)) => maintenance::run(args),
        Some(Command::Migrate(args)) => migrate::run(*args),
        Some(Command::Report(args)) => report::run(args),
        None => serve::run(cli.run),
    }
}
