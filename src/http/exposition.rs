//! `/metrics`: format negotiation, and renders shared between concurrent scrapes.
//!
//! A render reads only snapshots, but at a thousand targets it still takes milliseconds of
//! CPU. Two hundred clients each rendering for themselves once took both cores from the
//! probe tasks, whose deadlines then expired: databases looked down because of a flood
//! of scrapes. So renders run one at a time per format, on the blocking pool (never on a
//! runtime worker the probes need), and every scrape that arrived while one was running
//! takes the next one, which starts after it arrived: nobody gets older data than a
//! scrape of its own would have given, and a flood costs one render at a time.
//!
//! A scraper that accepts gzip gets the render gzipped (a tenth of the bytes), compressed
//! once per render however many scrapes share it, on the blocking pool and after the
//! render's turn is given back, so compression holds no lock anyone else waits on.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::Mutex;

use super::{AppState, text};
use crate::exporter::Exporter;
use crate::metrics::{
    self, CLASSIC_CONTENT_TYPE, Format, MaintenanceScrape, OPENMETRICS_CONTENT_TYPE, ProcessScrape,
    ReloadScrape, Scrape, ShardScrape, SilencesScrape,
};
use crate::time::Timestamp;

/// The last render of each format while someone waits for it, and the right to make the
/// next one.
#[derive(Debug, Default)]
pub struct SharedRenders {
    openmetrics: Slot,
    classic: Slot,
}

#[derive(Debug, Default)]
struct Slot {
    last: Mutex<Option<Rendered>>,
    /// Scrapes queued for `last`: a render is kept only for them, so an idle exporter
    /// holds no copy of its last answer (5.7 MB at a thousand targets).
    waiting: AtomicUsize,
}

#[derive(Debug, Clone)]
struct Rendered {
    started: Instant,
    body: Bytes,
    /// The body gzipped, made by the first scrape of this render that asks for it.
    gzipped: Arc<OnceLock<Bytes>>,
}

impl Rendered {
    fn gzipped(&self) -> Bytes {
        self.gzipped.get_or_init(|| gzip(&self.body)).clone()
    }
}

/// Fastest compression: exposition text repeats itself so much that the fastest level
/// already takes it to about a tenth, and the CPU is the probes'.
fn gzip(body: &[u8]) -> Bytes {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 8),
        flate2::Compression::fast(),
    );
    encoder
        .write_all(body)
        .and_then(|()| encoder.finish())
        .map(Bytes::from)
        .expect("compressing into memory does not fail")
}

impl SharedRenders {
    /// A render that started no earlier than `arrived`: the one just made by a scrape
    /// ahead in line, or a new one.
    async fn get(&self, exporter: &Exporter, format: Format, arrived: Instant) -> Option<Rendered> {
        let slot = match format {
            Format::OpenMetrics => &self.openmetrics,
            Format::Classic => &self.classic,
        };
        slot.waiting.fetch_add(1, Ordering::SeqCst);
        let mut last = slot.last.lock().await;
        slot.waiting.fetch_sub(1, Ordering::SeqCst);
        if let Some(r) = last.as_ref().filter(|r| r.started >= arrived) {
            let r = r.clone();
            if slot.waiting.load(Ordering::SeqCst) == 0 {
                *last = None;
            }
            return Some(r);
        }
        let started = Instant::now();
        let exporter = exporter.clone();
        let body = tokio::task::spawn_blocking(move || {
            Bytes::from(metrics::render(&scrape(&exporter), format))
        })
        .await
        .ok()?;
        let rendered = Rendered {
            started,
            body,
            gzipped: Default::default(),
        };
        *last = (slot.waiting.load(Ordering::SeqCst) > 0).then(|| rendered.clone());
        Some(rendered)
    }
}

/// Everything one answer shows, captured from the snapshots at once.
fn scrape(exporter: &Exporter) -> Scrape {
    let now = Timestamp::now();
    // One load: targets, groups and configuration of the same reload.
    let generation = exporter.generation();
    Scrape {
        targets: generation.targets.iter().map(|t| t.snapshot()).collect(),
        groups: generation.groups.snapshots(),
        reload: {
            let status = exporter.reload_status();
            ReloadScrape {
                successful: status.successful,
                last_success_at: status.last_success_at,
            }
        },
        probe_tasks: exporter.probe_tasks(),
        shard: ShardScrape {
            shard: generation.placement.shard,
            targets: generation.targets.len(),
            configured: generation.placement.configured_targets,
        },
        target_files: exporter.target_files(),
        maintenance: MaintenanceScrape {
            windows: generation.maintenance_windows(exporter.maintenance(), now),
            started: exporter.maintenance().started(),
            stored: exporter.maintenance().stored(),
            config: generation.config.clone(),
            now,
        },
        silences: {
            let status = exporter.silences();
            status.configured.then(|| SilencesScrape {
                synced: status.error.is_none() && status.last_success.is_some(),
                last_success_at: status.last_success,
                failures: status.failures,
                in_place: status.in_place(),
                missing: status.missing(),
            })
        },
        migrations: generation
            .targets
            .iter()
            .filter(|t| t.config.migrations.is_some())
            .map(|t| (t.config.clone(), t.migrations()))
            .collect(),
        process: ProcessScrape::read(),
        now,
    }
}

pub async fn metrics_handler(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let arrived = Instant::now();
    let format = negotiate(&headers);
    let Some(rendered) = s.renders.get(&s.exporter, format, arrived).await else {
        // Only a panic inside the render gets here; the next scrape tries again.
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "rendering the metrics failed; see the exporter's log\n".to_owned(),
        );
    };
    let mut response = if accepts_gzip(&headers) {
        let Ok(body) = tokio::task::spawn_blocking(move || rendered.gzipped()).await else {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "compressing the metrics failed; see the exporter's log\n".to_owned(),
            );
        };
        let mut response = answer(format, body);
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        response
    } else {
        answer(format, rendered.body)
    };
    // Either way the answer depends on Accept-Encoding, which caches must know.
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

/// Whether `Accept-Encoding` allows gzip: named (or `*`, when gzip is not named) with a
/// quality above 0 (RFC 9110, 12.5.3).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for part in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut fields = part.split(';').map(str::trim);
        let coding = fields.next().unwrap_or("");
        let q = fields
            .find_map(|f| {
                let (k, v) = f.split_once('=')?;
                k.trim().eq_ignore_ascii_case("q").then(|| v.trim())
            })
            .map_or(Some(1.0), |q| q.parse::<f64>().ok());
        let accepted = q.is_some_and(|q| q > 0.0);
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(accepted);
        } else if coding == "*" {
            any = Some(accepted);
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// OpenMetrics when the client asks for it (Prometheus does), classic text otherwise.
pub fn negotiate(headers: &HeaderMap) -> Format {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|part| {
            let mut fields = part.split(';').map(str::trim);
            let media = fields.next().unwrap_or("");
            let q_zero = fields.any(|f| {
                f.strip_prefix("q=")
                    .is_some_and(|q| q.parse::<f64>() == Ok(0.0))
            });
            media.eq_ignore_ascii_case("application/openmetrics-text") && !q_zero
        });
    if openmetrics {
        Format::OpenMetrics
    } else {
        Format::Classic
    }
}

pub fn answer(format: Format, body: impl Into<Bytes>) -> Response {
    let content_type = match format {
        Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        Format::Classic => CLASSIC_CONTENT_TYPE,
    };
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body.into(),
    )
        .into_response()
}

/// Shared by every clone of the router's state.
pub type Renders = Arc<SharedRenders>;

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn openmetrics_only_when_asked_for() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(negotiate(&accept(prometheus)), Format::OpenMetrics);
        assert_eq!(
            negotiate(&accept("text/plain;version=0.0.4")),
            Format::Classic
        );
        assert_eq!(
            negotiate(&accept("application/openmetrics-text;q=0")),
            Format::Classic
        );
        assert_eq!(negotiate(&HeaderMap::new()), Format::Classic);
    }

    fn encoding(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn gzip_only_when_accepted_with_a_quality_above_zero() {
        for yes in [
            "gzip",
            "gzip, deflate, br",
            "br;q=1.0, GZIP;q=0.5",
            "*",
            "identity, *;q=0.1",
            "x-gzip",
        ] {
            assert!(accepts_gzip(&encoding(yes)), "{yes}");
        }
        for no in [
            "identity",
            "br, deflate",
            "gzip;q=0",
            "gzip;q=0.000",
            "*, gzip;q=0",
            "gzip;q=x",
            "",
        ] {
            assert!(!accepts_gzip(&encoding(no)), "{no}");
        }
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn gzip_decodes_to_the_body() {
        use std::io::Read;
        let body = "dbvigil_up{target=\"a\"} 1\n".repeat(1000);
        let packed = gzip(body.as_bytes());
        assert!(packed.len() < body.len() / 10, "{} bytes", packed.len());
        let mut out = String::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, body);
    }
}
