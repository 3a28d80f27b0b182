//! The flags of `dbvigil migrate` and its subcommands.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use super::exit;
use super::ssh::SshArgs;
use crate::cli::client::ExporterArgs;
use crate::cli::output::Output;
use crate::config;
use crate::migrate::script::{NameError, Version};

#[derive(Debug, Args)]
#[command(after_help = exit::HELP)]
pub struct MigrateArgs {
    /// A target of the configuration file (with --config.file).
    #[arg(long, global = true, conflicts_with_all = ["database_url", "plan"])]
    pub target: Option<String>,
    /// The configuration file that defines --target.
    #[arg(
        long = "config.file",
        value_name = "FILE",
        env = "DBVIGIL_CONFIG_FILE",
        global = true
    )]
    pub config_file: Option<PathBuf>,
    /// The database: postgres://user@host/db, mysql://user@host/db (also MariaDB), or sqlite:path/to/file.db.
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        hide_env_values = true,
        global = true,
        conflicts_with = "plan"
    )]
    pub database_url: Option<String>,
    /// A CSV plan (sql_runner_host,...,sql_script_to_run): rows run in order, grouped by database.
    #[arg(long, value_name = "FILE.csv", global = true)]
    pub plan: Option<PathBuf>,
    /// The engine of every plan row, when the port does not tell (5432 postgres, 3306 mysql).
    #[arg(long, value_enum, global = true)]
    pub engine: Option<EngineArg>,
    /// The scripts (default: the target's migrations.directory, else ./migrations).
    #[arg(long, value_name = "DIR", global = true)]
    pub dir: Option<PathBuf>,
    /// File name pattern in the scripts directory that is not a script (repeatable; * and ?).
    #[arg(long, value_name = "PATTERN", global = true)]
    pub ignore: Vec<String>,
    /// Applied versions whose scripts are gone are not an error.
    #[arg(long = "ignore-missing", global = true)]
    pub ignore_missing: bool,
    /// How long to wait for another run's lock.
    #[arg(long = "lock-timeout", value_name = "DURATION", default_value = "60s", value_parser = duration, global = true)]
    pub lock_timeout: Duration,
    /// How long one statement may run before it is stopped, or none [default: the target's migrations.statement_timeout, else 10m].
    #[arg(long = "statement-timeout", value_name = "DURATION|none", value_parser = limit, global = true)]
    pub statement_timeout: Option<Limit>,
    /// How long a statement may wait for another session's lock, or none [default: the target's migrations.lock_wait_timeout, else 10s].
    #[arg(long = "lock-wait-timeout", value_name = "DURATION|none", value_parser = limit, global = true)]
    pub lock_wait_timeout: Option<Limit>,
    /// Wait until the database accepts connections, up to this long (like 60s).
    #[arg(long = "wait-for", value_name = "DURATION", value_parser = duration, global = true)]
    pub wait_for: Option<Duration>,
    /// text for people; json: one document on stdout at the end, for pipelines.
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub output: Output,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(subcommand)]
    pub command: MigrateCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    Postgres,
    Mysql,
}

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Apply pending scripts in order.
    Run(RunArgs),
    /// Show applied, pending, failed and changed scripts; changes nothing.
    Info(PendingArgs),
    /// Check the history against the scripts: exit 3 when a run would be refused.
    Validate(PendingArgs),
    /// Remove failed and interrupted entries and accept edited scripts' checksums.
    Repair,
    /// Adopt a database that already has its schema: record, in an empty history, the
    /// version it is at. Scripts up to it never run; those above it are pending.
    Baseline(BaselineArgs),
    /// Create the next script, empty, in the scripts directory, and print its path; no
    /// database is touched.
    New(NewArgs),
}

#[derive(Debug, Args)]
pub struct PendingArgs {
    /// Exit 7 when scripts are pending, so a pipeline can ask "anything to apply?" (other
    /// codes keep their meaning: a refused history is still 3).
    #[arg(long = "exit-code")]
    pub exit_code: bool,
}

#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// The version the database is at: the last script it already has (like 2, or 2_1).
    #[arg(long, value_name = "VERSION", value_parser = version)]
    pub version: Version,
    /// What the history records with the baseline.
    #[arg(long, default_value = "baseline")]
    pub description: String,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// What the script changes, like: add order status. The words become the file name:
    /// V<next version>__add_order_status.sql.
    #[arg(value_name = "DESCRIPTION", required = true, num_args = 1..)]
    pub words: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Show what would run; lock, create and change nothing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Open a maintenance window on a running exporter before the first script and end it
    /// after success (on failure it stays until it expires).
    #[arg(long)]
    pub maintenance: bool,
    /// The window's scope (default: --target).
    #[arg(long = "maintenance-scope", requires = "maintenance")]
    pub maintenance_scope: Option<String>,
    /// The window's length (default: the exporter's maintenance.default_duration).
    #[arg(
        long = "maintenance-for",
        value_name = "DURATION",
        requires = "maintenance"
    )]
    pub maintenance_for: Option<String>,
    #[command(flatten)]
    pub exporter: ExporterArgs,
}

/// A limit flag's value: a duration, or none.
#[derive(Debug, Clone, Copy)]
pub struct Limit(pub Option<Duration>);

fn limit(text: &str) -> Result<Limit, String> {
    config::parse_limit(text).map(Limit)
}

fn version(text: &str) -> Result<Version, String> {
    Version::parse(text).ok_or_else(|| NameError::Version(text.to_owned()).to_string())
}

fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e}: write a duration like 30s or 5m"))
}
