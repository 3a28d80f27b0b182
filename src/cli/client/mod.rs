//! A small HTTP/1.1 client for the CLI's calls to a running exporter.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rustls::pki_types::pem::PemObject;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

const TIMEOUT: Duration = Duration::from_secs(15);

pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// Why a call got no answer; the CLI exits with 4 on these.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{0}")]
    Url(String),
    #[error("cannot reach dbvigil at {url}: {error}; is it running, and is --url right?")]
    Unreachable { url: String, error: String },
    #[error("dbvigil at {0} did not answer within {secs}s", secs = TIMEOUT.as_secs())]
    Timeout(String),
}

/// The bearer token from `--token`, or the first line of `--token-file`.
pub fn token(
    token: Option<&str>,
    file: Option<&std::path::Path>,
) -> Result<Option<String>, String> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read --token-file {}: {e}", path.display()))?;
        return Ok(text.lines().next().map(|l| l.trim().to_owned()));
    }
    Ok(token.map(str::to_owned))
}

/// How the CLI reaches dbvigil's port when it has TLS or basic auth: a Prometheus-style
/// HTTP client configuration file (`--http.config.file`, as amtool takes).
#[derive(Default)]
pub struct HttpConfig {
    basic_auth: Option<String>,
    tls: Option<(tokio_rustls::TlsConnector, Option<String>)>,
}

mod raw {
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct File {
        pub basic_auth: Option<BasicAuth>,
        pub tls_config: Option<Tls>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct BasicAuth {
        pub username: String,
        pub password: Option<String>,
        pub password_file: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Tls {
        pub ca_file: Option<String>,
        pub cert_file: Option<String>,
        pub key_file: Option<String>,
        pub server_name: Option<String>,
        pub insecure_skip_verify: Option<bool>,
    }
}

impl HttpConfig {
    /// Reads `--http.config.file`; relative paths in it are relative to its directory.
    pub fn load(path: Option<&Path>) -> Result<HttpConfig, CallError> {
        let Some(path) = path else {
            return Ok(HttpConfig::default());
        };
        let shown = path.display();
        let bad = |m: String| CallError::Url(format!("--http.config.file {shown}: {m}"));
        let text =
            std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let raw: Option<raw::File> = serde_saphyr::from_str(&text).map_err(|e| {
            bad(e
                .render_with_options(serde_saphyr::render_options! {
                    snippets: serde_saphyr::SnippetMode::Off,
                })
                .to_string())
        })?;
        let Some(raw) = raw else {
            return Ok(HttpConfig::default());
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let read = |what: &str, p: &str| {
            std::fs::read_to_string(base.join(p))
                .map_err(|e| bad(format!("cannot read {what} {:?}: {e}", base.join(p))))
        };
        let basic_auth = match raw.basic_auth {
            None => None,
            Some(b) => {
                let password = match (b.password, b.password_file) {
                    (Some(p), None) => p,
                    (None, Some(f)) => read("password_file", &f)?
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                    (None, None) => String::new(),
                    (Some(_), Some(_)) => {
                        return Err(bad(
                            "basic_auth has both password and password_file: keep one".to_owned(),
                        ));
                    }
                };
                let pair = format!("{}:{password}", b.username);
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            }
        };
        let tls = match raw.tls_config {
            None => None,
            Some(t) => {
                if t.insecure_skip_verify == Some(true) {
                    return Err(bad("insecure_skip_verify is not supported: set tls_config.ca_file to the CA that signed dbvigil's certificate (or to a self-signed certificate itself)".to_owned()));
                }
                let mut roots = rustls::RootCertStore::empty();
                match &t.ca_file {
                    Some(ca) => {
                        let certs = read_certs(&base.join(ca))
                            .map_err(|e| bad(format!("cannot read ca_file {ca:?}: {e}")))?;
                        for c in certs {
                            roots
                                .add(c)
                                .map_err(|e| bad(format!("ca_file {ca:?}: {e}")))?;
                        }
                    }
                    None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
                }
                let builder = trusting(roots);
                let config = match (&t.cert_file, &t.key_file) {
                    (None, None) => builder.with_no_client_auth(),
                    (Some(c), Some(k)) => {
                        let certs = read_certs(&base.join(c))
                            .map_err(|e| bad(format!("cannot read cert_file {c:?}: {e}")))?;
                        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(base.join(k))
                            .map_err(|e| bad(format!("cannot read key_file {k:?}: {e}")))?;
                        builder
                            .with_client_auth_cert(certs, key)
                            .map_err(|e| bad(format!("cert_file and key_file: {e}")))?
                    }
                    _ => {
                        return Err(bad(
                            "tls_config needs both cert_file and key_file for a client certificate, or neither".to_owned(),
                        ));
                    }
                };
                Some((
                    tokio_rustls::TlsConnector::from(Arc::new(config)),
                    t.server_name,
                ))
            }
        };
        Ok(HttpConfig { basic_auth, tls })
    }
}

/// https:// without --http.config.file: the certificate must chain to a public CA.
fn public_roots_connector() -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    tokio_rustls::TlsConnector::from(Arc::new(trusting(roots).with_no_client_auth()))
}

/// A client configuration (ring, TLS 1.2 and 1.3) that trusts `roots`.
fn trusting(
    roots: rustls::RootCertStore,
) -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert> {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
}

fn read_certs(
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, rustls::pki_types::pem::Error> {
    rustls::pki_types::CertificateDer::pem_file_iter(path)?.collect()
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

pub async fn call(
    base: &str,
    http: &HttpConfig,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> Result<Reply, CallError> {
    let url = url::Url::parse(base).map_err(|e| {
        CallError::Url(format!(
            "invalid --url {base:?} ({e}): write it like http://127.0.0.1:10150"
        ))
    })?;
    let default_port = match url.scheme() {
        "http" => 80,
        "https" => 443,
        _ => {
            return Err(CallError::Url(format!(
                "--url {base:?}: write http:// or https://"
            )));
        }
    };
    let host = url
        .host_str()
        .ok_or_else(|| CallError::Url(format!("--url {base:?} has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url.port().unwrap_or(default_port);
    let https = url.scheme() == "https";
    let default_tls;
    let tls = match (&http.tls, https) {
        (Some((connector, name)), true) => Some((connector, name.clone().unwrap_or(host.clone()))),
        (None, true) => {
            default_tls = public_roots_connector();
            Some((&default_tls, host.clone()))
        }
        (_, false) => None,
    };
    let server_name = match &tls {
        Some((_, name)) => Some(
            rustls::pki_types::ServerName::try_from(name.clone()).map_err(|e| {
                CallError::Url(format!("cannot check the certificate of {name:?}: {e}"))
            })?,
        ),
        None => None,
    };
    let full_path = format!("{}{}", url.path().trim_end_matches('/'), path);
    let work = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| e.to_string())?;
        let stream: Box<dyn Io> = match (tls, server_name) {
            (Some((connector, _)), Some(name)) => Box::new(
                connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS handshake failed: {e}"))?,
            ),
            _ => Box::new(tcp),
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(&full_path)
            .header(hyper::header::HOST, format!("{host}:{port}"))
            .header(hyper::header::ACCEPT, "application/json");
        if let Some(basic) = &http.basic_auth {
            req = req.header(hyper::header::AUTHORIZATION, basic);
        }
        if let Some(t) = token {
            req = match http.basic_auth {
                // Authorization carries the port's credentials; the token goes beside it.
                Some(_) => req.header("X-Dbvigil-Token", t),
                None => req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}")),
            };
        }
        let req = match body {
            Some(b) => req
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(b))),
            None => req.body(Full::new(Bytes::new())),
        }
        .map_err(|e| e.to_string())?;
        let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        let bytes = res
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>(Reply {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    };
    match tokio::time::timeout(TIMEOUT, work).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(error)) => Err(CallError::Unreachable {
            url: base.to_owned(),
            error,
        }),
        Err(_) => Err(CallError::Timeout(base.to_owned())),
    }
}
