//! Database URLs: a target's `url` in the configuration, and `--database-url` on the
//! command line. Errors never repeat the URL: it may hold a password.

use std::path::PathBuf;

use super::{Endpoint, Kind, Secret, Server, TlsMode};

#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("invalid url ({cause}): write it like {}://user@host:port/database", .kind.as_str())]
    Unparsable {
        cause: ::url::ParseError,
        kind: Kind,
    },
    #[error("url scheme `{scheme}://` does not match kind {}: use {expected}://", .kind.as_str())]
    SchemeMismatch {
        scheme: String,
        kind: Kind,
        expected: &'static str,
    },
    #[error(
        "unknown {key} {value:?} in url: use disable, prefer, require, verify-ca or verify-full"
    )]
    UnknownTlsMode { key: String, value: String },
    #[error(
        "unknown url parameter `{name}`: dbvigil reads sslmode and sslrootcert from a url; set other options in the target"
    )]
    UnknownParameter { name: String },
    #[error("a sqlite url needs a path: sqlite:path/to/file.db")]
    SqliteWithoutPath,
    #[error("the database url must start with postgres://, mysql://, mariadb:// or sqlite:")]
    UnknownScheme,
    #[error("the database url needs a host and a user: {}://user@host:port/database", .kind.as_str())]
    NoHostOrUser { kind: Kind },
}

/// Reads host, port, user, password, database and TLS settings from a URL into `s`.
pub(super) fn apply_url(s: &mut Server, text: &str, kind: Kind) -> Result<(), UrlError> {
    let url = ::url::Url::parse(text).map_err(|cause| UrlError::Unparsable { cause, kind })?;
    let schemes: &[&str] = match kind {
        Kind::Postgres => &["postgres", "postgresql"],
        _ => &["mysql", "mariadb"],
    };
    if !schemes.contains(&url.scheme()) {
        return Err(UrlError::SchemeMismatch {
            scheme: url.scheme().to_owned(),
            kind,
            expected: schemes[0],
        });
    }
    let decode = |v: &str| {
        percent_encoding::percent_decode_str(v)
            .decode_utf8_lossy()
            .into_owned()
    };
    s.host = url
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if let Some(port) = url.port() {
        s.port = port;
    }
    s.user = decode(url.username());
    if let Some(p) = url.password() {
        s.password = Some(Secret(decode(p)));
        s.password_in_url = Secret(p.to_owned());
    }
    let db = decode(url.path().trim_start_matches('/'));
    if !db.is_empty() {
        s.database = Some(db);
    }
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "sslmode" | "ssl-mode" | "ssl_mode" => {
                s.tls.mode = tls_mode(&value).ok_or_else(|| UrlError::UnknownTlsMode {
                    key: key.clone().into_owned(),
                    value: value.clone().into_owned(),
                })?;
            }
            "sslrootcert" | "ssl-ca" | "ssl_ca" => {
                s.tls.ca_file = Some(PathBuf::from(value.as_ref()))
            }
            other => {
                return Err(UrlError::UnknownParameter {
                    name: other.to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// The TLS mode as libpq's `sslmode` or MySQL's `ssl-mode` spell it.
fn tls_mode(v: &str) -> Option<TlsMode> {
    Some(match v.to_ascii_lowercase().replace('_', "-").as_str() {
        "disable" | "disabled" => TlsMode::Disable,
        "prefer" | "preferred" | "allow" => TlsMode::Prefer,
        "require" | "required" => TlsMode::Require,
        "verify-ca" => TlsMode::VerifyCa,
        "verify-full" | "verify-identity" => TlsMode::VerifyFull,
        _ => return None,
    })
}

/// A database given on the command line as a URL: `postgres://`, `mysql://`, `mariadb://`
/// or `sqlite:PATH` (a SQLite file is created when missing, for a first migration).
pub fn endpoint_from_url(text: &str) -> Result<(Kind, Endpoint), UrlError> {
    if let Some(path) = text.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err(UrlError::SqliteWithoutPath);
        }
        return Ok((
            Kind::Sqlite,
            Endpoint::Sqlite {
                path: PathBuf::from(path),
                create: true,
            },
        ));
    }
    let scheme = text.split_once("://").map(|(s, _)| s).unwrap_or_default();
    let kind = match scheme {
        "postgres" | "postgresql" => Kind::Postgres,
        "mysql" | "mariadb" => Kind::Mysql,
        _ => return Err(UrlError::UnknownScheme),
    };
    let mut server = Server::blank(kind);
    apply_url(&mut server, text, kind)?;
    if server.host.is_empty() || server.user.is_empty() {
        return Err(UrlError::NoHostOrUser { kind });
    }
    Ok((kind, Endpoint::Server(server)))
}
