//! dbvigil's calls to other HTTP services (Alertmanager; the CLI's calls to an exporter):
//! one client built from Prometheus-style settings, trusting the system's CA store and the
//! built-in public roots unless `ca_file` names the only CA, and going through the proxy
//! that `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` name, as curl and Go programs do.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::HttpClientConfig;

/// A client that could not be built: a certificate the TLS library refuses.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the HTTP client: {0}")]
pub struct ClientError(String);

/// A client and the credentials it adds to every request.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    authorization: Option<HeaderValue>,
}

impl Client {
    pub fn new(config: &HttpClientConfig, timeout: Duration) -> Result<Client, ClientError> {
        let tls = tls_config(config)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(timeout)
            .connect_timeout(timeout)
            // Credentials and tokens must not follow a redirect to another host.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("dbvigil/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError(describe(&e)))?;
        let authorization = config.basic_auth.as_ref().map(|b| {
            use base64::Engine;
            let pair = format!("{}:{}", b.username, b.password.0);
            let mut value = HeaderValue::from_str(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            ))
            .expect("base64 is a valid header value");
            value.set_sensitive(true);
            value
        });
        Ok(Client {
            http,
            authorization,
        })
    }

    /// Whether requests carry basic auth (then a bearer token must go elsewhere).
    pub fn has_basic_auth(&self) -> bool {
        self.authorization.is_some()
    }

    pub fn request(&self, method: reqwest::Method, url: reqwest::Url) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        match &self.authorization {
            Some(a) => request.header(AUTHORIZATION, a.clone()),
            None => request,
        }
    }
}

/// A failed call as one line: what failed and why, down to the root cause (a refused
/// certificate, a refused connection), without the URL, which callers name themselves.
pub fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.ends_with(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

fn tls_config(config: &HttpClientConfig) -> Result<rustls::ClientConfig, ClientError> {
    let roots = match &config.tls.ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in ca {
                roots
                    .add(cert.clone())
                    .map_err(|e| ClientError(format!("ca_file: {e}")))?;
            }
            Arc::new(roots)
        }
        None => system_and_public_roots(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions");
    let builder = match &config.tls.server_name {
        None => builder.with_root_certificates(roots),
        Some(name) => {
            let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| ClientError(e.to_string()))?;
            let name = ServerName::try_from(name.clone())
                .map_err(|e| ClientError(format!("server_name {name:?}: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NamedVerifier { inner, name }))
        }
    };
    let mut tls = match &config.tls.identity {
        None => builder.with_no_client_auth(),
        Some(id) => builder
            .with_client_auth_cert(id.certs.clone(), id.key.clone_key())
            .map_err(|e| ClientError(format!("cert_file and key_file: {e}")))?,
    };
    // reqwest speaks HTTP/1.1 here; say so, as it would with its own TLS settings.
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

/// The system's CA store (as `SSL_CERT_FILE`/`SSL_CERT_DIR` or the distribution's bundle
/// give it) plus the built-in public roots, read once per process.
fn system_and_public_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let native = rustls_native_certs::load_native_certs();
            for e in &native.errors {
                tracing::debug!(error = %e, "cannot read part of the system's CA store");
            }
            let (added, ignored) = roots.add_parsable_certificates(native.certs);
            tracing::debug!(added, ignored, "system CA store read");
            Arc::new(roots)
        })
        .clone()
}

/// Checks the server's certificate against `server_name` instead of the URL's host, as
/// Prometheus' `tls_config.server_name` does.
#[derive(Debug)]
struct NamedVerifier {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for NamedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
