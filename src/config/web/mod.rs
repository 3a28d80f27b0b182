//! The web configuration file (`--web.config.file`) in the exporter-toolkit format that
//! `promtool check web-config` also reads: TLS for dbvigil's own port (`tls.rs`), client
//! certificates and their SANs (`san.rs`), response headers, basic-auth users with bcrypt
//! hashes, and the rate limit (`rate.rs`). Everything is checked, and certificates are
//! loaded, while the file is read, so a reload with a bad file changes nothing.

mod rate;
mod san;
mod tls;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::server::ServerConfig;
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};
use sha2::{Digest, Sha256};

use super::ConfigError;
use super::error::MAX_CONFIG_BYTES;
pub use rate::RateLimit;

/// What the web configuration file asks of dbvigil's own port. The default (no file) is
/// plain HTTP without authentication.
#[derive(Default)]
pub struct WebConfig {
    /// None: plain HTTP.
    pub tls: Option<Arc<ServerConfig>>,
    /// None: no basic authentication.
    pub basic_auth: Option<BasicAuth>,
    /// `basic_auth_excluded_paths`: request paths served without credentials (exact
    /// matches), as a load balancer's health check needs; `/-/healthy` always is.
    pub auth_excluded_paths: Vec<String>,
    /// `http_server_config.headers`: added to every answer, replacing dbvigil's defaults;
    /// an empty value means the header is not sent at all.
    pub headers: Vec<(String, String)>,
    /// `rate_limit`; None: no limit.
    pub rate_limit: Option<RateLimit>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field(
                "basic_auth_users",
                &self.basic_auth.as_ref().map_or(0, |b| b.users.len()),
            )
            .field("auth_excluded_paths", &self.auth_excluded_paths)
            .field("headers", &self.headers)
            .field("rate_limit", &self.rate_limit)
            .finish()
    }
}

/// Users and their bcrypt hashes, with a cache of the credentials that passed so that a
/// scrape pays bcrypt once per process and password, not once per request.
pub struct BasicAuth {
    users: HashMap<String, String>,
    /// Keys of successful checks: SHA-256 over a per-process random key, the user, the
    /// password and the hash, so the cache never holds a password and dies with its hash.
    passed: ArcSwap<HashSet<[u8; 32]>>,
    key: [u8; 32],
}

/// Beyond this many distinct successful credentials the cache starts over; a handful of
/// scrapers and operators never get near it.
const MAX_CACHED_CREDENTIALS: usize = 1024;

impl BasicAuth {
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// True when these credentials passed bcrypt before: the cheap path every scrape takes.
    pub fn cached(&self, user: &str, password: &str) -> bool {
        self.passed.load().contains(&self.cache_key(user, password))
    }

    /// The full bcrypt check; slow on purpose (tens of milliseconds), so callers run it off
    /// the async threads. Success is cached.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        // An unknown user is checked against some user's hash all the same, so the time an
        // answer takes does not tell which names exist.
        let (hash, known) = match self.users.get(user) {
            Some(h) => (h.as_str(), true),
            None => (self.users.values().next().map_or("", String::as_str), false),
        };
        let ok = bcrypt::verify(password, hash).unwrap_or(false) && known;
        if ok {
            let key = self.cache_key(user, password);
            self.passed.rcu(|passed| {
                let mut next = if passed.len() >= MAX_CACHED_CREDENTIALS {
                    HashSet::new()
                } else {
                    HashSet::clone(passed)
                };
                next.insert(key);
                next
            });
        }
        ok
    }

    fn cache_key(&self, user: &str, password: &str) -> [u8; 32] {
        let hash = self.users.get(user).map_or("", String::as_str);
        let mut h = Sha256::new();
        h.update(self.key);
        for part in [user, password, hash] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().into()
    }
}

/// exporter-toolkit accepts only these in `http_server_config.headers`, spelled exactly so,
/// and for two of them only these values (empty: any value).
const ALLOWED_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

mod raw {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct File {
        pub tls_server_config: Option<Tls>,
        pub http_server_config: Option<Http>,
        pub basic_auth_users: Option<HashMap<Spanned<String>, Spanned<String>>>,
        pub basic_auth_excluded_paths: Option<Vec<Spanned<String>>>,
        pub rate_limit: Option<RateLimit>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Tls {
        pub cert: Option<Spanned<String>>,
        pub key: Option<Spanned<String>>,
        pub client_ca: Option<Spanned<String>>,
        pub cert_file: Option<Spanned<String>>,
        pub key_file: Option<Spanned<String>>,
        pub client_auth_type: Option<Spanned<String>>,
        pub client_ca_file: Option<Spanned<String>>,
        pub client_allowed_sans: Option<Vec<Spanned<String>>>,
        pub min_version: Option<Spanned<String>>,
        pub max_version: Option<Spanned<String>>,
        pub cipher_suites: Option<Vec<Spanned<String>>>,
        pub curve_preferences: Option<Vec<Spanned<String>>>,
        pub prefer_server_cipher_suites: Option<bool>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Http {
        /// HTTP/2 offered to TLS clients (ALPN); on by default, as in exporter-toolkit.
        pub http2: Option<bool>,
        pub headers: Option<HashMap<Spanned<String>, Spanned<String>>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RateLimit {
        pub interval: Option<Spanned<String>>,
        pub burst: Option<Spanned<i64>>,
    }
}

/// Reads and checks the web configuration file; relative paths in it are relative to its
/// directory, as in exporter-toolkit.
pub fn load_web_file(path: &Path) -> Result<WebConfig, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    if size > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_owned(),
            size,
        });
    }
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse_web(&text, &path.display().to_string(), base)
}

pub fn parse_web(text: &str, file: &str, base: &Path) -> Result<WebConfig, ConfigError> {
    // An empty file is a valid "nothing configured", as for exporter-toolkit.
    let raw: Option<raw::File> =
        serde_saphyr::from_str(text).map_err(|e| ConfigError::from_yaml(file, e))?;
    let Some(raw) = raw else {
        return Ok(WebConfig::default());
    };
    let v = WebValidator { file, base };
    let http = raw.http_server_config.unwrap_or_default();
    Ok(WebConfig {
        tls: match raw.tls_server_config {
            Some(tls) => v.tls(tls, http.http2.unwrap_or(true))?,
            None => None,
        },
        basic_auth: match raw.basic_auth_users {
            Some(users) => v.users(users)?,
            None => None,
        },
        auth_excluded_paths: match raw.basic_auth_excluded_paths {
            Some(paths) => v.excluded_paths(paths)?,
            None => Vec::new(),
        },
        headers: match http.headers {
            Some(headers) => v.headers(headers)?,
            None => Vec::new(),
        },
        rate_limit: match raw.rate_limit {
            Some(limit) => v.rate_limit(limit)?,
            None => None,
        },
    })
}

struct WebValidator<'a> {
    file: &'a str,
    base: &'a Path,
}

impl WebValidator<'_> {
    fn err(&self, at: Location, message: impl Into<String>) -> ConfigError {
        ConfigError::at(self.file, at, message)
    }

    /// Paths as a request names them: exporter-toolkit compares them with the request's
    /// path exactly, so a pattern or a full URL would silently exclude nothing.
    fn excluded_paths(&self, paths: Vec<Spanned<String>>) -> Result<Vec<String>, ConfigError> {
        paths
            .into_iter()
            .map(|p| {
                let path = p.value.trim();
                if !path.starts_with('/') || path.contains(['*', '?', '#']) {
                    return Err(self.err(
                        p.referenced,
                        format!(
                            "basic_auth_excluded_paths: {path:?} is not a request path; write the exact path a client asks for, like /-/ready (no host, query or pattern)"
                        ),
                    ));
                }
                Ok(path.to_owned())
            })
            .collect()
    }

    fn users(
        &self,
        users: HashMap<Spanned<String>, Spanned<String>>,
    ) -> Result<Option<BasicAuth>, ConfigError> {
        let mut checked = HashMap::new();
        // In file order, so the first mistake is the one reported.
        let mut users: Vec<_> = users.into_iter().collect();
        users.sort_by_key(|(u, _)| (u.referenced.line(), u.referenced.column()));
        for (user, hash) in users {
            if user.value.contains(':') {
                return Err(self.err(
                    user.referenced,
                    format!("user name {:?} contains ':', which basic authentication cannot carry: rename the user", user.value),
                ));
            }
            if hash.value.parse::<bcrypt::HashParts>().is_err() {
                return Err(self.err(
                    hash.referenced,
                    format!("the password of user {:?} is not a bcrypt hash: write the output of `dbvigil hash-password` (or `htpasswd -nBC 10 \"\" | tr -d ':'`), never the password itself", user.value),
                ));
            }
            checked.insert(user.value, hash.value);
        }
        if checked.is_empty() {
            return Ok(None);
        }
        Ok(Some(BasicAuth {
            users: checked,
            passed: ArcSwap::from_pointee(HashSet::new()),
            key: random_key(),
        }))
    }

    fn headers(
        &self,
        headers: HashMap<Spanned<String>, Spanned<String>>,
    ) -> Result<Vec<(String, String)>, ConfigError> {
        let mut out = Vec::new();
        let mut headers: Vec<_> = headers.into_iter().collect();
        headers.sort_by_key(|(n, _)| (n.referenced.line(), n.referenced.column()));
        let names = || {
            ALLOWED_HEADERS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (name, value) in headers {
            let Some((canonical, values)) = ALLOWED_HEADERS.iter().find(|(h, _)| *h == name.value)
            else {
                let hint = match ALLOWED_HEADERS
                    .iter()
                    .find(|(h, _)| h.eq_ignore_ascii_case(&name.value))
                {
                    // exporter-toolkit and promtool match names exactly, so dbvigil does too.
                    Some((h, _)) => format!("write it as {h}"),
                    None => format!("use one of {}", names()),
                };
                return Err(self.err(
                    name.referenced,
                    format!("header {:?} cannot be set here: {hint}", name.value),
                ));
            };
            if !values.is_empty() && !values.contains(&value.value.as_str()) {
                return Err(self.err(
                    value.referenced,
                    format!(
                        "{canonical} cannot be {:?}: use {}",
                        value.value,
                        values.join(" or ")
                    ),
                ));
            }
            if value.value.bytes().any(|b| b.is_ascii_control()) {
                return Err(self.err(
                    value.referenced,
                    format!("the value of header {canonical} must be printable text, on one line"),
                ));
            }
            out.push(((*canonical).to_owned(), value.value));
        }
        Ok(out)
    }

    fn rate_limit(&self, raw: raw::RateLimit) -> Result<Option<RateLimit>, ConfigError> {
        let interval = match &raw.interval {
            None => Duration::ZERO,
            Some(i) => rate::parse_go_duration(&i.value).map_err(|e| {
                self.err(
                    i.referenced,
                    format!("rate_limit interval {e}; 0 turns the limit off"),
                )
            })?,
        };
        // As in exporter-toolkit, no interval (or 0) is no limit, whatever the burst.
        if interval.is_zero() {
            return Ok(None);
        }
        let at = raw
            .interval
            .as_ref()
            .expect("a non-zero interval was written")
            .referenced;
        let burst = match &raw.burst {
            None => {
                return Err(self.err(
                    at,
                    "rate_limit has an interval but no burst, so it would refuse every request: set burst to the requests allowed at once (at least 1)",
                ));
            }
            Some(b) if b.value < 1 => {
                return Err(self.err(
                    b.referenced,
                    format!("rate_limit burst {} would refuse every request: set it to the requests allowed at once (at least 1), or set interval to 0 to turn the limit off", b.value),
                ));
            }
            Some(b) => u32::try_from(b.value).map_err(|_| {
                self.err(
                    b.referenced,
                    format!(
                        "rate_limit burst {} is too large: at most {}",
                        b.value,
                        u32::MAX
                    ),
                )
            })?,
        };
        Ok(Some(RateLimit::new(interval, burst)))
    }
}

fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    // Without randomness the key is merely fixed: the cache keys are still one-way hashes.
    let _ = rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut key);
    key
}
