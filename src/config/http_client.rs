//! How dbvigil reaches another HTTP service: Prometheus' HTTP client settings
//! (`basic_auth`, `tls_config`), read once for `alertmanager:` in the configuration and for
//! the CLI's `--http.config.file`. Files are read while the settings are checked, so a
//! missing CA or key is a configuration error, not a failure at the first call.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use super::values::{Expanded, Secret};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpClientConfig {
    pub basic_auth: Option<ClientBasicAuth>,
    pub tls: ClientTls,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClientBasicAuth {
    pub username: String,
    pub password: Secret,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClientTls {
    /// The only roots to trust (`ca_file`); `None`: the system's store and the built-in
    /// public roots.
    pub ca: Option<Vec<CertificateDer<'static>>>,
    /// A client certificate to present.
    pub identity: Option<ClientIdentity>,
    /// The name the server's certificate must carry, when not the URL's host.
    pub server_name: Option<String>,
}

/// A certificate chain and its key. The key never reaches a message or a `Debug` print.
pub struct ClientIdentity {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for ClientIdentity {
    fn clone(&self) -> Self {
        ClientIdentity {
            certs: self.certs.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl PartialEq for ClientIdentity {
    fn eq(&self, other: &Self) -> bool {
        self.certs == other.certs && self.key.secret_der() == other.key.secret_der()
    }
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("certs", &self.certs.len())
            .field("key", &"<secret>")
            .finish()
    }
}

pub mod raw {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct BasicAuth {
        pub username: Spanned<Expanded>,
        pub password: Option<Spanned<Secret>>,
        pub password_file: Option<Spanned<Expanded>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Tls {
        pub ca_file: Option<Spanned<Expanded>>,
        pub cert_file: Option<Spanned<Expanded>>,
        pub key_file: Option<Spanned<Expanded>>,
        pub server_name: Option<Spanned<Expanded>>,
        pub insecure_skip_verify: Option<Spanned<bool>>,
    }
}

/// A problem with the settings, and where it was written.
pub type Problem = (Location, String);

/// Checks `basic_auth` and `tls_config` as written; relative paths are relative to `base`.
pub fn validate(
    basic_auth: Option<raw::BasicAuth>,
    tls_config: Option<raw::Tls>,
    base: &Path,
) -> Result<HttpClientConfig, Problem> {
    let read = |what: &str, p: &Spanned<Expanded>| {
        std::fs::read_to_string(base.join(&p.value.0)).map_err(|e| {
            (
                p.referenced,
                format!("cannot read {what} {:?}: {e}", p.value.0),
            )
        })
    };
    let basic_auth = match basic_auth {
        None => None,
        Some(b) => {
            let password = match (b.password, b.password_file) {
                (Some(p), None) => p.value,
                (None, Some(f)) => Secret(
                    read("password_file", &f)?
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                ),
                (None, None) => Secret(String::new()),
                (Some(p), Some(_)) => {
                    return Err((
                        p.referenced,
                        "basic_auth has both password and password_file: keep one".to_owned(),
                    ));
                }
            };
            if b.username.value.0.is_empty() {
                return Err((
                    b.username.referenced,
                    "basic_auth.username must not be empty".to_owned(),
                ));
            }
            Some(ClientBasicAuth {
                username: b.username.value.0,
                password,
            })
        }
    };
    let tls = match tls_config {
        None => ClientTls::default(),
        Some(t) => {
            if let Some(skip) = t.insecure_skip_verify.filter(|s| s.value) {
                return Err((
                    skip.referenced,
                    "insecure_skip_verify is not supported: set tls_config.ca_file to the CA that signed the server's certificate (or to a self-signed certificate itself)".to_owned(),
                ));
            }
            let ca = match &t.ca_file {
                None => None,
                Some(ca) => {
                    let certs = certs(base, ca, "ca_file")?;
                    let mut roots = rustls::RootCertStore::empty();
                    for c in &certs {
                        roots.add(c.clone()).map_err(|e| {
                            (ca.referenced, format!("ca_file {:?}: {e}", ca.value.0))
                        })?;
                    }
                    Some(certs)
                }
            };
            let identity = match (&t.cert_file, &t.key_file) {
                (None, None) => None,
                (Some(c), Some(k)) => Some(ClientIdentity {
                    certs: certs(base, c, "cert_file")?,
                    key: PrivateKeyDer::from_pem_file(base.join(&k.value.0)).map_err(|e| {
                        (
                            k.referenced,
                            format!("cannot read key_file {:?}: {e}", k.value.0),
                        )
                    })?,
                }),
                (Some(only), None) | (None, Some(only)) => {
                    return Err((
                        only.referenced,
                        "tls_config needs both cert_file and key_file for a client certificate, or neither".to_owned(),
                    ));
                }
            };
            let server_name = match t.server_name {
                None => None,
                Some(n) => {
                    rustls::pki_types::ServerName::try_from(n.value.0.as_str()).map_err(|e| {
                        (
                            n.referenced,
                            format!(
                                "server_name {:?} is not a host name or IP address: {e}",
                                n.value.0
                            ),
                        )
                    })?;
                    Some(n.value.0)
                }
            };
            ClientTls {
                ca,
                identity,
                server_name,
            }
        }
    };
    Ok(HttpClientConfig { basic_auth, tls })
}

fn certs(
    base: &Path,
    file: &Spanned<Expanded>,
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, Problem> {
    let bad = |e: String| {
        (
            file.referenced,
            format!("cannot read {what} {:?}: {e}", file.value.0),
        )
    };
    let certs: Vec<_> = CertificateDer::pem_file_iter(base.join(&file.value.0))
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("it holds no PEM certificate".to_owned()));
    }
    Ok(certs)
}
