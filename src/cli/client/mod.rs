//! A small HTTP/1.1 client for the CLI's calls to a running exporter.

mod args;
mod http_config;

use std::path::Path;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

pub use args::{ExporterArgs, TokenFileError};
use http_config::HttpConfig;
pub use http_config::HttpConfigError;

const TIMEOUT: Duration = Duration::from_secs(15);

pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// Why a call got no answer; the CLI exits with 4 on these.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("invalid --url {url:?} ({error}): write it like http://127.0.0.1:10150")]
    InvalidUrl { url: String, error: url::ParseError },
    #[error("--url {0:?}: write http:// or https://")]
    NotHttp(String),
    #[error("--url {0:?} has no host")]
    NoHost(String),
    #[error("cannot check the certificate of {name:?}: {error}")]
    ServerName {
        name: String,
        error: rustls::pki_types::InvalidDnsNameError,
    },
    #[error("cannot reach dbvigil at {url}: {error}; is it running, and is --url right?")]
    Unreachable { url: String, error: String },
    #[error("dbvigil at {0} did not answer within {secs}s", secs = TIMEOUT.as_secs())]
    Timeout(String),
}

/// A running exporter: its address, and how to get through its port.
pub struct Client {
    url: String,
    http: HttpConfig,
}

impl Client {
    pub fn new(url: &str, http_config_file: Option<&Path>) -> Result<Client, HttpConfigError> {
        Ok(Client {
            url: url.to_owned(),
            http: HttpConfig::load(http_config_file)?,
        })
    }

    /// One request; `token` goes where the exporter's maintenance API looks for it.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> Result<Reply, CallError> {
        call(&self.url, &self.http, method, path, token, body).await
    }
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

async fn call(
    base: &str,
    http: &HttpConfig,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> Result<Reply, CallError> {
    let url = url::Url::parse(base).map_err(|error| CallError::InvalidUrl {
        url: base.to_owned(),
        error,
    })?;
    let shown = without_credentials(&url, base);
    let default_port = match url.scheme() {
        "http" => 80,
        "https" => 443,
        _ => {
            return Err(CallError::NotHttp(shown));
        }
    };
    let host = url
        .host_str()
        .ok_or_else(|| CallError::NoHost(shown.clone()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url.port().unwrap_or(default_port);
    let https = url.scheme() == "https";
    let default_tls;
    let tls = match (&http.tls, https) {
        (Some((connector, name)), true) => Some((connector, name.clone().unwrap_or(host.clone()))),
        (None, true) => {
            default_tls = http_config::public_roots_connector();
            Some((&default_tls, host.clone()))
        }
        (_, false) => None,
    };
    let server_name = match &tls {
        Some((_, name)) => Some(
            rustls::pki_types::ServerName::try_from(name.clone()).map_err(|error| {
                CallError::ServerName {
                    name: name.clone(),
                    error,
                }
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
        Ok(Err(error)) => Err(CallError::Unreachable { url: shown, error }),
        Err(_) => Err(CallError::Timeout(shown)),
    }
}

/// The URL as a message names it: as written, unless it carries a user or password (which
/// the client never sends: credentials go in --http.config.file), then without them.
fn without_credentials(url: &url::Url, written: &str) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return written.to_owned();
    }
    let mut shown = url.clone();
    // Only URLs that cannot have a host refuse these; such a URL is refused just after.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::without_credentials;

    #[test]
    fn a_url_is_named_as_written_unless_it_carries_credentials() {
        let plain = "http://127.0.0.1:10150";
        assert_eq!(
            without_credentials(&url::Url::parse(plain).unwrap(), plain),
            plain
        );
        let secret = "https://ops:s3cret@db-monitor:10150/dbvigil";
        assert_eq!(
            without_credentials(&url::Url::parse(secret).unwrap(), secret),
            "https://db-monitor:10150/dbvigil"
        );
    }
}
