//! A small HTTP/1.1 client for the CLI's calls to a running exporter.

use std::time::Duration;

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

pub async fn call(
    base: &str,
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
    if url.scheme() != "http" {
        return Err(CallError::Url(format!(
            "--url {base:?}: only http:// is supported; put dbvigil behind a local address, or run the CLI where it can reach http://"
        )));
    }
    let host = url
        .host_str()
        .ok_or_else(|| CallError::Url(format!("--url {base:?} has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url.port().unwrap_or(80);
    let full_path = format!("{}{}", url.path().trim_end_matches('/'), path);
    let work = async {
        let stream = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(&full_path)
            .header(hyper::header::HOST, format!("{host}:{port}"))
            .header(hyper::header::ACCEPT, "application/json");
        if let Some(t) = token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
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
