//! The flags that say how to reach a running exporter, the same for every subcommand that
//! calls one (`maintenance`, `migrate run --maintenance`, `report`).

use std::path::{Path, PathBuf};

use clap::Args;

use super::{Client, HttpConfigError};

/// Where the exporter listens, how to get through its port, and the token for changes.
#[derive(Debug, Args)]
pub struct ExporterArgs {
    /// Where the exporter listens.
    // `--url` is how `dbvigil maintenance` spelled it first; scripts still pass it.
    #[arg(
        long = "dbvigil-url",
        visible_alias = "url",
        value_name = "URL",
        env = "DBVIGIL_URL",
        default_value = "http://127.0.0.1:10150",
        global = true
    )]
    pub url: String,
    /// Bearer token for changes to maintenance windows.
    #[arg(
        long,
        env = "DBVIGIL_MAINTENANCE_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,
    /// File holding the bearer token (its first line), instead of --token.
    #[arg(
        long = "token-file",
        env = "DBVIGIL_MAINTENANCE_TOKEN_FILE",
        global = true,
        conflicts_with = "token"
    )]
    pub token_file: Option<PathBuf>,
    /// HTTP client configuration for an exporter with TLS or basic auth (basic_auth, tls_config; as amtool's).
    #[arg(
        long = "http.config.file",
        value_name = "FILE",
        env = "DBVIGIL_HTTP_CONFIG_FILE",
        global = true
    )]
    pub http_config_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read --token-file {}: {source}", path.display())]
pub struct TokenFileError {
    path: PathBuf,
    source: std::io::Error,
}

impl ExporterArgs {
    /// The bearer token from `--token`, or the first line of `--token-file`.
    pub fn token(&self) -> Result<Option<String>, TokenFileError> {
        match &self.token_file {
            Some(path) => read_token_file(path),
            None => Ok(self.token.clone()),
        }
    }

    /// The exporter these flags name, with `--http.config.file` read.
    pub fn client(&self) -> Result<Client, HttpConfigError> {
        Client::new(&self.url, self.http_config_file.as_deref())
    }
}

fn read_token_file(path: &Path) -> Result<Option<String>, TokenFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenFileError {
        path: path.to_owned(),
        source,
    })?;
    Ok(text.lines().next().map(|l| l.trim().to_owned()))
}
