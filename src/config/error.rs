//! Configuration errors: every one names the file, line and column, and says what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}; check the path and its permissions")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "configuration file {path} is {size} bytes; dbvigil reads at most {MAX_CONFIG_BYTES}: is it the right file?"
    )]
    TooLarge { path: PathBuf, size: u64 },
    #[error(
        "cannot switch the maintenance state store: {0}; fix state.url and reload again (the running configuration is unchanged)"
    )]
    StateStore(String),
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        file: String,
        line: u64,
        column: u64,
        message: String,
    },
}

/// Far above any real configuration; a bigger file is a mistake (or an attack), and is
/// refused before it is read into memory.
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

impl ConfigError {
    pub(crate) fn at(
        file: &str,
        location: serde_saphyr::Location,
        message: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            file: file.to_owned(),
            line: location.line(),
            column: location.column(),
            message: message.into(),
        }
    }

    /// Wraps a YAML error (syntax, unknown key, bad value) with the file name, keeping the
    /// parser's own sentence without its "at line L, column C" tail, which we print in front.
    pub(crate) fn from_yaml(file: &str, err: serde_saphyr::Error) -> Self {
        let plain = err.render_with_options(serde_saphyr::render_options! {
            snippets: serde_saphyr::SnippetMode::Off,
        });
        match err.location() {
            Some(loc) => {
                let tail = format!(" at line {}, column {}", loc.line(), loc.column());
                let message = plain.strip_suffix(&tail).unwrap_or(&plain).to_owned();
                ConfigError::at(file, loc, message)
            }
            None => ConfigError::Invalid {
                file: file.to_owned(),
                line: 1,
                column: 1,
                message: plain,
            },
        }
    }
}
