//! Command line: flags, logging, and the wiring of config, listener, exporter and signals;
//! `maintenance` talks to a running exporter.

mod client;
mod maintenance;
mod migrate;
mod output;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{self, Config, ConfigSource};
use crate::exporter::{Exporter, Settings};
use crate::http::{self, WebSettings};

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
    /// Apply ordered SQL scripts (V<version>__<description>.sql) to a target, a URL or a CSV plan; info, validate, repair.
    Migrate(migrate::MigrateArgs),
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
    /// Address to listen on: host:port, or :port for every interface.
    #[arg(long = "web.listen-address", value_name = "ADDR", default_value = DEFAULT_LISTEN_ADDRESS)]
    pub listen_address: String,
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
    #[arg(long = "log.level", value_enum, default_value = "info")]
    pub log_level: LogLevel,
    #[arg(long = "log.format", value_enum, default_value = "logfmt")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Logfmt,
    Json,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig {
            config_file,
            web_config_file,
        }) => check_config(config_file.as_deref(), web_config_file.as_deref()),
        Some(Command::HashPassword { cost }) => hash_password(cost),
        Some(Command::Maintenance(args)) => maintenance::run(args),
        Some(Command::Migrate(args)) => migrate::run(args),
        None => run(cli.run),
    }
}

fn check_config(path: Option<&Path>, web: Option<&Path>) -> ExitCode {
    if path.is_none() && web.is_none() {
        eprintln!("nothing to check: pass --config.file FILE, --web.config.file FILE, or both");
        return ExitCode::from(2);
    }
    let mut valid = true;
    if let Some(web) = web {
        match config::load_web_file(web) {
            Ok(w) => println!(
                "{}: valid web configuration: {}, {}",
                web.display(),
                if w.tls.is_some() { "TLS" } else { "plain HTTP" },
                match &w.basic_auth {
                    Some(a) => format!("basic auth for {} user(s)", a.user_count()),
                    None => "no basic auth".to_owned(),
                }
            ),
            Err(e) => {
                eprintln!("invalid web configuration: {e}");
                valid = false;
            }
        }
    }
    if let Some(path) = path
        && !check_main_config(path)
    {
        valid = false;
    }
    if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Reads one line, so `echo -n secret | dbvigil hash-password` and typing it both work;
/// the password is never echoed back.
fn hash_password(cost: u32) -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("cannot read the password from standard input: {e}");
        return ExitCode::FAILURE;
    }
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        eprintln!(
            "empty password: pipe the password on standard input, e.g. `dbvigil hash-password < password.txt`"
        );
        return ExitCode::FAILURE;
    }
    match bcrypt::hash(password, cost) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot hash the password: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_main_config(path: &Path) -> bool {
    match config::load_file(path, &hostname()) {
        Ok(c) => {
            println!("{}: valid, {} target(s):", path.display(), c.targets.len());
            for t in &c.targets {
                println!(
                    "  {} ({}, every {}, timeout {})",
                    t.name,
                    t.kind.as_str(),
                    config::format_duration(t.interval),
                    config::format_duration(t.timeout)
                );
            }
            true
        }
        Err(e) => {
            eprintln!("invalid configuration: {e}");
            false
        }
    }
}

fn init_logging(level: LogLevel, format: LogFormat) {
    let level = match level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    // Our own level applies to dbvigil; dependencies only speak up when something is wrong.
    let filter = EnvFilter::new(format!("warn,dbvigil={level}"));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Logfmt => registry
            .with(
                tracing_logfmt::builder()
                    .with_target(false)
                    .layer()
                    .with_writer(std::io::stderr),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_target(false)
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
}

pub fn parse_listen_address(addr: &str) -> Result<SocketAddr, String> {
    let full = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_owned()
    };
    full.parse().map_err(|_| {
        format!("invalid --web.listen-address {addr:?}: write host:port (127.0.0.1:10150) or :port (:10150)")
    })
}

fn run(args: RunArgs) -> ExitCode {
    init_logging(args.log_level, args.log_format);
    let addr = match parse_listen_address(&args.listen_address) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if !args.telemetry_path.starts_with('/') || args.telemetry_path == "/" {
        tracing::error!(
            "invalid --web.telemetry-path {:?}: it must start with '/' and not be '/'",
            args.telemetry_path
        );
        return ExitCode::FAILURE;
    }
    if let Err(e) = std::fs::create_dir_all(&args.data_dir) {
        tracing::error!(
            "cannot create data directory {}: {e}; pass --data.dir with a writable directory",
            args.data_dir.display()
        );
        return ExitCode::FAILURE;
    }
    let source = match &args.config_file {
        Some(path) => ConfigSource::File(path.clone()),
        None => ConfigSource::Builtin {
            data_dir: args.data_dir.clone(),
        },
    };
    let settings = Settings {
        source,
        default_instance: args.instance.clone().unwrap_or_else(hostname),
        data_dir: args.data_dir.clone(),
        web_config_file: args.web_config_file.clone(),
    };
    let config = match settings.source.load(&settings.default_instance) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("invalid configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let web = WebSettings {
        telemetry_path: args.telemetry_path.clone(),
    };
    match runtime.block_on(serve(settings, config, addr, web)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(
    settings: Settings,
    config: Config,
    addr: SocketAddr,
    web: WebSettings,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        format!("cannot listen on {addr}: {e}; pass --web.listen-address with a free address")
    })?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let exporter = Exporter::start(settings, config)?;
    announce(&exporter, local, &web);
    // Read the stored windows before answering: right after a restart the gate and the
    // API must already know them, or a load balancer would be told "not in maintenance"
    // until the loop's first read finished. Bounded by the store's own timeout.
    exporter.maintenance_step().await;
    let shutdown = CancellationToken::new();
    tokio::spawn(handle_signals(exporter.clone(), shutdown.clone()));
    let served = http::serve(exporter.clone(), listener, web, shutdown).await;
    exporter.shutdown().await;
    tracing::info!("stopped");
    served.map_err(|e| format!("HTTP server failed: {e}"))
}

fn announce(exporter: &Exporter, local: SocketAddr, web: &WebSettings) {
    let (settings, config, own) = (exporter.settings(), exporter.config(), exporter.web());
    let scheme = if own.tls.is_some() { "https" } else { "http" };
    tracing::info!(
        version = LONG_VERSION,
        address = %local,
        tls = own.tls.is_some(),
        basic_auth = own.basic_auth.is_some(),
        "listening; metrics at {scheme}://{local}{}", web.telemetry_path
    );
    for t in &config.targets {
        tracing::info!(
            target = %t.name, kind = t.kind.as_str(), endpoint = %t.describe_endpoint(),
            interval = %config::format_duration(t.interval), "probing"
        );
    }
    if let ConfigSource::Builtin { .. } = settings.source {
        tracing::info!(
            "no --config.file given: probing the embedded SQLite database; to watch your own databases, \
             write a configuration (see examples/) and run dbvigil --config.file dbvigil.yml"
        );
    }
}

/// SIGHUP reloads the configuration; SIGINT and SIGTERM shut down gracefully.
async fn handle_signals(exporter: Exporter, shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop dbvigil with SIGKILL");
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading configuration");
                let _ = exporter.reload().await;
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}

/// `$USER@host`, for audit trails; None when the environment names no user.
fn user_at_host() -> Option<String> {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()?;
    Some(format!("{user}@{}", hostname()))
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "dbvigil".to_owned();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
