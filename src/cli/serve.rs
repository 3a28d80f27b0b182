//! Running the exporter: check the flags, load the configuration, listen, and tie the
//! exporter, the HTTP server and the signals together until shutdown.

use std::net::SocketAddr;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use super::listen::{ListenError, Sockets};
use super::{LONG_VERSION, RunArgs, hostname, logging};
use crate::config::{self, Config, ConfigSource, Shard};
use crate::exporter::{Exporter, Settings};
use crate::http::{self, WebSettings};

/// Why the exporter stopped or never started serving.
#[derive(Debug, thiserror::Error)]
enum ServeError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("cannot serve a listening socket: {0}")]
    Adopt(std::io::Error),
    #[error("{0}")]
    Start(#[from] crate::exporter::StartError),
    #[error("HTTP server failed: {0}")]
    Http(std::io::Error),
}

pub fn run(args: RunArgs) -> ExitCode {
    logging::init(args.log_level, args.log_format);
    let sockets = match Sockets::from_flags(&args.listen_addresses, args.systemd_socket) {
        Ok(s) => s,
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
    let shard = match Shard::resolve(args.shard_index, args.shard_count, &pod_name()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
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
        shard,
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
    match runtime.block_on(serve(settings, config, &sockets, web)) {
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
    sockets: &Sockets,
    web: WebSettings,
) -> Result<(), ServeError> {
    if *sockets == Sockets::Systemd {
        tracing::info!(
            "--web.systemd-socket: serving on the sockets systemd passed instead of --web.listen-address"
        );
    }
    let listeners = sockets
        .open()?
        .into_iter()
        .map(tokio::net::TcpListener::from_std)
        .collect::<Result<Vec<_>, _>>()
        .map_err(ServeError::Adopt)?;
    let local = listeners
        .iter()
        .map(tokio::net::TcpListener::local_addr)
        .collect::<Result<Vec<_>, _>>()
        .map_err(ServeError::Adopt)?;
    let exporter = Exporter::start(settings, config)?;
    announce(&exporter, &local, &web);
    // Read the stored windows before answering: right after a restart the gate and the
    // API must already know them, or a load balancer would be told "not in maintenance"
    // until the loop's first read finished. Bounded by the store's own timeout.
    exporter.maintenance_step().await;
    let shutdown = CancellationToken::new();
    tokio::spawn(handle_signals(exporter.clone(), shutdown.clone()));
    let served = http::serve(exporter.clone(), listeners, web, shutdown).await;
    exporter.shutdown().await;
    tracing::info!("stopped");
    served.map_err(ServeError::Http)
}

fn announce(exporter: &Exporter, local: &[SocketAddr], web: &WebSettings) {
    let (settings, config, own) = (exporter.settings(), exporter.config(), exporter.web());
    let scheme = if own.tls.is_some() { "https" } else { "http" };
    let addresses: Vec<String> = local.iter().map(SocketAddr::to_string).collect();
    let urls: Vec<String> = addresses
        .iter()
        .map(|a| format!("{scheme}://{a}{}", web.telemetry_path))
        .collect();
    tracing::info!(
        version = LONG_VERSION,
        addresses = %addresses.join(" "),
        tls = own.tls.is_some(),
        basic_auth = own.basic_auth.is_some(),
        rate_limit = own.rate_limit.is_some(),
        "listening; metrics at {}", urls.join(", ")
    );
    let generation = exporter.generation();
    let placement = &generation.placement;
    if placement.shard.count > 1 {
        tracing::info!(
            shard = placement.shard.index,
            shards = placement.shard.count,
            targets = config.targets.len(),
            configured = placement.configured_targets,
            "probing shard {} of {}",
            placement.shard.index,
            placement.shard.count
        );
    }
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

/// The name a StatefulSet pod's ordinal is read from: `POD_NAME` (the manifest sets it
/// from the pod's metadata), else `HOSTNAME` (a pod's host name is its name).
fn pod_name() -> String {
    ["POD_NAME", "HOSTNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|n| !n.is_empty()))
        .unwrap_or_default()
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
