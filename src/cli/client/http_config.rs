//! `--http.config.file`: how the CLI reaches an exporter whose port has TLS or basic auth.

use std::path::{Path, PathBuf};

use crate::config::{HttpClientConfig, http_client};

/// A `--http.config.file` that cannot be used; the CLI refuses before calling anything.
#[derive(Debug, thiserror::Error)]
#[error("--http.config.file {}: {problem}", path.display())]
pub struct HttpConfigError {
    path: PathBuf,
    problem: String,
}

mod raw {
    use serde::Deserialize;

    use crate::config::http_client::raw::{BasicAuth, Tls};

    /// A Prometheus-style HTTP client file, as amtool takes: the parts that apply.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct File {
        pub basic_auth: Option<BasicAuth>,
        pub tls_config: Option<Tls>,
    }
}

/// Reads `--http.config.file`; relative paths in it are relative to its directory.
pub fn load(path: Option<&Path>) -> Result<HttpClientConfig, HttpConfigError> {
    let Some(path) = path else {
        return Ok(HttpClientConfig::default());
    };
    let bad = |problem: String| HttpConfigError {
        path: path.to_owned(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let raw: Option<raw::File> = serde_saphyr::from_str(&text).map_err(|e| {
        bad(e
            .render_with_options(serde_saphyr::render_options! {
                snippets: serde_saphyr::SnippetMode::Off,
            })
            .to_string())
    })?;
    let Some(raw) = raw else {
        return Ok(HttpClientConfig::default());
    };
    let base = path.parent().unwrap_or(Path::new("."));
    http_client::validate(raw.basic_auth, raw.tls_config, base).map_err(|(at, problem)| {
        bad(format!(
            "line {}, column {}: {problem}",
            at.line(),
            at.column()
        ))
    })
}
