//! The CLI's calls to a running exporter, through the shared outbound client (system CA
//! store, proxies from the environment, `--http.config.file`).

mod args;
mod failure;
mod http_config;

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};

pub use args::{ExporterArgs, TokenFileError};
pub use failure::CallError;
pub use http_config::HttpConfigError;

use crate::outbound;

const TIMEOUT: Duration = Duration::from_secs(15);

pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// A running exporter: its address, and how to get through its port.
pub struct Client {
    url: String,
    http: crate::config::HttpClientConfig,
}

impl Client {
    pub fn new(url: &str, http_config_file: Option<&Path>) -> Result<Client, HttpConfigError> {
        Ok(Client {
            url: url.to_owned(),
            http: http_config::load(http_config_file)?,
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
        let url = url::Url::parse(&self.url).map_err(|error| CallError::InvalidUrl {
            url: self.url.clone(),
            error,
        })?;
        let shown = without_credentials(&url, &self.url);
        if !matches!(url.scheme(), "http" | "https") {
            return Err(CallError::NotHttp(shown));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(CallError::NoHost(shown));
        }
        let mut full = url.clone();
        // Credentials in --url are never sent: they belong in --http.config.file.
        let _ = full.set_username("");
        let _ = full.set_password(None);
        // `path` may carry a query, which set_path would encode into the path.
        let (path, query) = match path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path, None),
        };
        full.set_path(&format!("{}{}", url.path().trim_end_matches('/'), path));
        full.set_query(query);
        full.set_fragment(None);
        let client = outbound::Client::new(&self.http, TIMEOUT)?;
        let proxy = client.proxy_for(&full);
        let mut request = client
            .request(method, full)
            .header(ACCEPT, "application/json");
        if let Some(t) = token {
            request = if client.has_basic_auth() {
                // Authorization carries the port's credentials; the token goes beside it.
                request.header("X-Dbvigil-Token", t)
            } else {
                request.header(AUTHORIZATION, format!("Bearer {t}"))
            };
        }
        if let Some(b) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(b);
        }
        let ca_file = self.http.tls.ca.is_some();
        let failed = |e: reqwest::Error| failure::failed(&e, &shown, proxy.clone(), ca_file);
        let response = request.send().await.map_err(failed)?;
        let status = response.status().as_u16();
        if let (407, Some(proxy)) = (status, &proxy) {
            return Err(failure::proxy_refused(&shown, proxy.clone()));
        }
        let body = response.text().await.map_err(failed)?;
        Ok(Reply { status, body })
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
