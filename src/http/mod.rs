//! HTTP: the only place that serialises (OpenMetrics, classic text, JSON, HTML). Handlers
//! read published snapshots; only `/probe` and `/-/reload` do work, and only when asked.

mod api;
mod auth;
mod checks;
mod debug;
mod exposition;
mod listener;
mod maintenance;
mod methods;

use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::exporter::Exporter;
use crate::metrics;
use crate::probe::{self, ProbeContext};

#[derive(Debug, Clone)]
pub struct WebSettings {
    /// Path of the metrics endpoint (`--web.telemetry-path`).
    pub telemetry_path: String,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            telemetry_path: "/metrics".to_owned(),
        }
    }
}

#[derive(Clone)]
struct AppState {
    exporter: Exporter,
    web: WebSettings,
    renders: exposition::Renders,
}

pub fn router(exporter: Exporter, web: WebSettings) -> Router {
    let telemetry_path = web.telemetry_path.clone();
    let state = AppState {
        exporter,
        web,
        renders: Default::default(),
    };
    let routes = Router::new()
        .route("/", get(landing))
        .route(&telemetry_path, get(exposition::metrics_handler))
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(|| async { "Ready\n" }))
        .route("/-/reload", post(reload).put(reload))
        .route("/probe", get(probe_handler))
        .route("/api/v1/targets", get(api::targets))
        .route("/api/v1/targets/{name}/episodes", get(api::episodes))
        .route("/api/v1/groups", get(api::groups))
        .route("/api/v1/groups/{name}", get(api::group))
        .route(
            "/groups/{name}/active",
            get(checks::group_active).options(checks::group_active),
        )
        .route(
            "/targets/{name}/replica",
            get(checks::target_replica).options(checks::target_replica),
        )
        .route(
            "/targets/{name}/{level}",
            get(checks::target_level).options(checks::target_level),
        )
        .route(
            "/api/v1/maintenance",
            get(maintenance::list).post(maintenance::start),
        )
        .route("/api/v1/maintenance/{id}", get(maintenance::get))
        .route("/api/v1/maintenance/{id}/extend", post(maintenance::extend))
        .route("/api/v1/maintenance/{id}/end", post(maintenance::end))
        .route(
            "/maintenance/{scope}",
            get(maintenance::gate).options(maintenance::gate),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_basic_auth,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limited,
        ))
        .layer(axum::middleware::from_fn(bounded))
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            security_headers,
        ))
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES));
    // Around the whole router, where its 405 already carries the `Allow` that OPTIONS
    // answers with (a route's own layers run before the router adds it).
    Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn(methods::options))
}

/// The API's bodies are a few hundred bytes; anything far larger is refused (413) before
/// it is buffered.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// No request holds a connection longer than this; a scrape or `/probe` ends well before.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

async fn bounded(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the request took longer than {}s and was abandoned\n",
                REQUEST_TIMEOUT.as_secs()
            ),
        ),
    }
}

/// `rate_limit` in the web configuration: one bucket for every request, credentials or
/// not, as exporter-toolkit has it; 429 when it is empty.
async fn rate_limited(
    State(s): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(limit) = &s.exporter.web().rate_limit
        && !limit.allow()
    {
        return text(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too Many Requests: rate_limit in the web configuration allows {} requests at once and one more every {}\n",
                limit.burst(),
                crate::config::format_duration(limit.interval())
            ),
        );
    }
    next.run(request).await
}

/// Headers that keep browsers from sniffing types, framing the pages or leaking the URL;
/// a handler's own value wins, and `http_server_config.headers` replace these defaults (an
/// empty one removes the header).
async fn security_headers(State(s): State<AppState>, mut response: Response) -> Response {
    let web = s.exporter.web();
    let headers = response.headers_mut();
    for (name, value) in &web.headers {
        let Ok(name) = header::HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        if value.is_empty() {
            headers.remove(&name);
        } else if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    let configured = |name: &header::HeaderName| {
        web.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name.as_str()))
    };
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
    ] {
        if !configured(&name) {
            headers
                .entry(name)
                .or_insert(HeaderValue::from_static(value));
        }
    }
    response
}

/// Serves on every listener until `shutdown` is cancelled, then finishes in-flight
/// requests. TLS and basic auth follow the exporter's web configuration.
pub async fn serve(
    exporter: Exporter,
    listeners: Vec<tokio::net::TcpListener>,
    web: WebSettings,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = listener::WebListener::new(listeners, exporter.clone());
    axum::serve(listener, router(exporter, web))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn reload(State(s): State<AppState>) -> Response {
    match s.exporter.reload().await {
        Ok(r) => text(
            StatusCode::OK,
            format!(
                "configuration reloaded: {} targets kept, {} started, {} stopped\n",
                r.kept, r.started, r.stopped
            ),
        ),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("configuration reload failed, the previous configuration keeps running: {e}\n"),
        ),
    }
}

#[derive(Deserialize)]
struct ProbeQuery {
    target: Option<String>,
    debug: Option<String>,
}

/// Runs one probe now, blackbox_exporter style, with a fresh prober and a heartbeat row of
/// its own: it touches neither the continuous probe's state nor its row. Only configured
/// names are accepted, never a DSN or address.
async fn probe_handler(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ProbeQuery>,
) -> Response {
    let debug = match debug::requested(q.debug.as_deref()) {
        Ok(debug) => debug,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    let names = || {
        s.exporter
            .targets()
            .iter()
            .map(|t| t.config.name.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(name) = q.target.filter(|n| !n.is_empty()) else {
        return text(
            StatusCode::BAD_REQUEST,
            format!(
                "missing ?target=NAME: name one of the configured targets: {}\n",
                names()
            ),
        );
    };
    let Some(handle) = s.exporter.target(&name) else {
        let placement = s.exporter.generation().placement.clone();
        if let Some(owner) = placement.elsewhere.get(&name) {
            // 421 Misdirected Request: the name is configured, but another replica probes it.
            return text(
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "target {name:?} is probed by shard {owner} of {count} (--shard.index {owner}); this replica is shard {index}: send the probe there\n",
                    count = placement.shard.count,
                    index = placement.shard.index,
                ),
            );
        }
        return text(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown target {:?}: /probe accepts only configured target names ({}), never a DSN or address\n",
                truncate(&name, 64),
                names()
            ),
        );
    };
    let config = &handle.config;
    // Leave Prometheus some margin to receive the answer before its own timeout.
    let budget = scrape_timeout(&headers).map(|t| t.saturating_sub(Duration::from_millis(250)));
    let timeout = budget.map_or(config.timeout, |t| {
        t.min(config.timeout).max(Duration::from_millis(10))
    });
    // Concurrent calls for one target take turns on its on-demand heartbeat row, waiting
    // for as long as the caller's own budget leaves after the probe itself.
    let turn_wait = budget.map_or(ON_DEMAND_TURN_WAIT, |b| b.saturating_sub(timeout));
    let Ok(_turn) = tokio::time::timeout(turn_wait, handle.on_demand.lock()).await else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "other /probe calls of {name:?} kept it busy for {}: call it less often, or give the scrape a longer timeout\n",
                crate::config::format_duration(turn_wait)
            ),
        );
    };
    let mut ctx = ProbeContext::on_demand(&s.exporter.config().instance, timeout);
    if debug {
        ctx.trace = debug::begin(config, timeout);
    }
    let mut prober = probe::new_prober(config);
    let mut report = prober.probe(&ctx).await;
    report.redact(&config.secrets());
    if debug {
        return debug::answer(config, &report, &ctx.trace, timeout);
    }
    let format = exposition::negotiate(&headers);
    exposition::answer(format, metrics::render_probe(config, &report, format))
}

/// How long a `/probe` without a scrape timeout waits for other calls of the same target.
const ON_DEMAND_TURN_WAIT: Duration = Duration::from_secs(10);

fn scrape_timeout(headers: &HeaderMap) -> Option<Duration> {
    let v = headers
        .get("X-Prometheus-Scrape-Timeout-Seconds")?
        .to_str()
        .ok()?;
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

async fn landing(State(s): State<AppState>) -> Html<String> {
    let rows: String = s
        .exporter
        .targets()
        .iter()
        .map(|t| {
            let snap = t.snapshot();
            let state = match snap.up {
                Some(true) => "up",
                Some(false) => "down",
                None => "unknown",
            };
            format!(
                "<tr><td>{name}</td><td>{kind}</td><td>{state}</td><td><a href=\"/probe?target={name}\">probe now</a></td></tr>",
                name = t.config.name,
                kind = t.config.kind.as_str(),
            )
        })
        .collect();
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>dbvigil</title></head><body>\
         <h1>dbvigil</h1><p>Database availability and change exporter, version {version} ({revision}).</p>\
         <ul><li><a href=\"{metrics}\">Metrics</a></li><li><a href=\"/api/v1/targets\">Targets (JSON)</a></li>\
         <li><a href=\"/api/v1/groups\">Groups (JSON)</a></li><li><a href=\"/api/v1/maintenance\">Maintenance windows (JSON)</a></li>\
         <li><a href=\"/-/healthy\">Health</a></li><li><a href=\"/-/ready\">Readiness</a></li></ul>\
         <table><tr><th>target</th><th>kind</th><th>state</th><th></th></tr>{rows}</table></body></html>",
        version = metrics::VERSION,
        revision = metrics::REVISION,
        metrics = s.web.telemetry_path,
    ))
}
