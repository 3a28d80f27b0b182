//! dbvigil's calls to other HTTP services (Alertmanager; the CLI's calls to an exporter):
//! one client built from Prometheus-style settings, trusting the system's CA store and the
//! built-in public roots unless `ca_file` names the only CA, and going through the proxy
//! that `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`/`NO_PROXY` name, as curl does; loopback
//! addresses are called directly, as Go's net/http does.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper_util::client::proxy::matcher::Matcher;
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
    /// Through the proxy the environment names for a destination, if any.
    http: reqwest::Client,
    /// For loopback destinations, which a proxy elsewhere cannot reach.
    direct: reqwest::Client,
    /// The environment's proxy settings as `http` reads them, to name the proxy a failed
    /// call went through.
    proxies: Arc<Matcher>,
    authorization: Option<HeaderValue>,
}

impl Client {
    pub fn new(config: &HttpClientConfig, timeout: Duration) -> Result<Client, ClientError> {
        let tls = tls_config(config)?;
        let builder = || {
            reqwest::Client::builder()
                .use_preconfigured_tls(tls.clone())
                .timeout(timeout)
                .connect_timeout(timeout)
                // Credentials and tokens must not follow a redirect to another host.
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("dbvigil/", env!("CARGO_PKG_VERSION")))
        };
        let built = |b: reqwest::ClientBuilder| b.build().map_err(|e| ClientError(describe(&e)));
        // reqwest reads the same variables with the same matcher when it builds `http`.
        let proxies = Arc::new(Matcher::from_system());
        let http = built(builder())?;
        let direct = built(builder().no_proxy())?;
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
            direct,
            proxies,
            authorization,
        })
    }

    /// Whether requests carry basic auth (then a bearer token must go elsewhere).
    pub fn has_basic_auth(&self) -> bool {
        self.authorization.is_some()
    }

    pub fn request(&self, method: reqwest::Method, url: reqwest::Url) -> reqwest::RequestBuilder {
        let http = if is_loopback(&url) {
            &self.direct
        } else {
            &self.http
        };
        let request = http.request(method, url);
        match &self.authorization {
            Some(a) => request.header(AUTHORIZATION, a.clone()),
            None => request,
        }
    }

    /// The proxy a call to `url` goes through, named without its credentials and with the
    /// variables that set it; `None` when the call goes directly.
    pub fn proxy_for(&self, url: &reqwest::Url) -> Option<String> {
        if is_loopback(url) {
            return None;
        }
        let uri: http::Uri = url.as_str().parse().ok()?;
        // The matcher keeps a proxy URL's user and password apart from `uri()`.
        let proxy = self.proxies.intercept(&uri)?;
        let variables = match url.scheme() {
            "https" => "HTTPS_PROXY or ALL_PROXY",
            _ => "HTTP_PROXY or ALL_PROXY",
        };
        let (scheme, authority) = (proxy.uri().scheme_str()?, proxy.uri().authority()?);
        Some(format!(
            "the proxy {scheme}://{authority} (from {variables})"
        ))
    }
}

/// Whether `url` names this machine's loopback, where only a direct call arrives.
fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
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
        source = cause.source();
        // "client error (Connect)": what `text` says already.
        if cause.is::<hyper_util::client::legacy::Error>() {
            continue;
        }
        let line = cause.to_string();
        if tls_error_in(cause).is_some() {
            text.push_str(": TLS handshake failed");
        }
        if !text.ends_with(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
    }
    text
}

/// The TLS library's reason when a call failed in the handshake: a certificate it refused,
/// an alert from the server.
pub fn tls_error(error: &reqwest::Error) -> Option<&rustls::Error> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(tls) = tls_error_in(cause) {
            return Some(tls);
        }
        source = cause.source();
    }
    None
}

/// The TLS connectors hand rustls' error on inside an `io::Error`, sometimes inside another,
/// and an `io::Error`'s `source()` skips what it wraps.
fn tls_error_in<'a>(mut cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    loop {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        cause = cause.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
}

/// What went wrong reading the system's CA store (an unreadable `SSL_CERT_FILE`, say), to
/// explain a certificate the client then did not trust.
pub fn system_store_problems() -> &'static [String] {
    &system_store().problems
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
        None => system_store().roots.clone(),
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

/// The built-in public roots and the system's CA store, and what could not be read of it.
struct SystemStore {
    roots: Arc<RootCertStore>,
    problems: Vec<String>,
}

/// The system's CA store (as `SSL_CERT_FILE`/`SSL_CERT_DIR` or the distribution's bundle
/// give it) plus the built-in public roots, read once per process.
fn system_store() -> &'static SystemStore {
    static STORE: OnceLock<SystemStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let native = rustls_native_certs::load_native_certs();
        let problems: Vec<String> = native.errors.iter().map(ToString::to_string).collect();
        for problem in &problems {
            tracing::warn!(problem, "cannot read part of the system's CA store");
        }
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(added, ignored, "system CA store read");
        SystemStore {
            roots: Arc::new(roots),
            problems,
        }
    })
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

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn only_this_machines_loopback_skips_the_proxy() {
        let loopback = |u: &str| is_loopback(&reqwest::Url::parse(u).unwrap());
        for direct in [
            "http://127.0.0.1:10150",
            "https://127.3.2.1/",
            "http://[::1]:10150",
            "http://LocalHost:10150",
        ] {
            assert!(loopback(direct), "{direct}");
        }
        for proxied in [
            "http://10.0.0.1:10150",
            "https://localhost.example.com",
            "http://[::2]:10150",
            "http://db-monitor:10150",
        ] {
            assert!(!loopback(proxied), "{proxied}");
        }
    }
}
