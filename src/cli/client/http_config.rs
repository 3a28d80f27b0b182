//! `--http.config.file`: how the CLI reaches an exporter whose port has TLS or basic auth.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use rustls::pki_types::pem::PemObject;

/// A `--http.config.file` that cannot be used; the CLI refuses before calling anything.
#[derive(Debug, thiserror::Error)]
#[error("--http.config.file {}: {problem}", path.display())]
pub struct HttpConfigError {
    path: PathBuf,
    problem: String,
}

/// How the CLI reaches dbvigil's port when it has TLS or basic auth: a Prometheus-style
/// HTTP client configuration file (`--http.config.file`, as amtool takes).
#[derive(Default)]
pub struct HttpConfig {
    /// The whole Authorization header value.
    pub(super) basic_auth: Option<String>,
    /// The connector, and the name to check the certificate against when not the URL's host.
    pub(super) tls: Option<(tokio_rustls::TlsConnector, Option<String>)>,
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
    pub fn load(path: Option<&Path>) -> Result<HttpConfig, HttpConfigError> {
        let Some(path) = path else {
            return Ok(HttpConfig::default());
        };
        let bad = |problem: String| HttpConfigError {
            path: path.to_owned(),
            problem,
        };
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
pub(super) fn public_roots_connector() -> tokio_rustls::TlsConnector {
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
