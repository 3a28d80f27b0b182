//! Why a call to an exporter got no answer, and what to do about it: a certificate not
//! trusted, a proxy in the way, dbvigil not running.

use rustls::CertificateError;

use super::TIMEOUT;
use crate::outbound;

/// Why a call got no answer; the CLI exits with 4 on these.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("invalid --url {url:?} ({error}): write it like http://127.0.0.1:10150")]
    InvalidUrl { url: String, error: url::ParseError },
    #[error("--url {0:?}: write http:// or https://")]
    NotHttp(String),
    #[error("--url {0:?} has no host")]
    NoHost(String),
    #[error("{0}")]
    Client(#[from] outbound::ClientError),
    #[error("dbvigil at {url}: TLS handshake failed: {problem}; {advice}")]
    Tls {
        url: String,
        problem: String,
        advice: String,
    },
    #[error("cannot reach dbvigil at {url}: {error}; is it running, and is --url right?")]
    Unreachable { url: String, error: String },
    #[error(
        "cannot reach dbvigil at {url} through {proxy}: {error}; is the proxy right, and can it reach dbvigil? NO_PROXY names the hosts to call directly"
    )]
    ThroughProxy {
        url: String,
        proxy: String,
        error: String,
    },
    #[error("dbvigil at {0} did not answer within {secs}s", secs = TIMEOUT.as_secs())]
    Timeout(String),
}

/// A call to `url` (as messages show it) that failed; `proxy` is the one it went through,
/// `ca_file` whether `--http.config.file` names the only CA to trust.
pub fn failed(
    error: &reqwest::Error,
    url: &str,
    proxy: Option<String>,
    ca_file: bool,
) -> CallError {
    let url = url.to_owned();
    if error.is_timeout() {
        return CallError::Timeout(url);
    }
    if let Some(tls) = outbound::tls_error(error) {
        return CallError::Tls {
            url,
            problem: tls.to_string(),
            advice: advice(tls, ca_file),
        };
    }
    let error = outbound::describe(error);
    match proxy {
        Some(proxy) => CallError::ThroughProxy { url, proxy, error },
        None => CallError::Unreachable { url, error },
    }
}

/// A 407 from the proxy a plain-HTTP call went through (dbvigil never answers 407).
pub fn proxy_refused(url: &str, proxy: String) -> CallError {
    CallError::ThroughProxy {
        url: url.to_owned(),
        proxy,
        error: "the proxy answered 407 Proxy Authentication Required: write its user and password into the variable's URL (http://user:password@proxy:3128)".to_owned(),
    }
}

fn advice(tls: &rustls::Error, ca_file: bool) -> String {
    let rustls::Error::InvalidCertificate(certificate) = tls else {
        return "is dbvigil serving TLS on that port, and if it asks for a client certificate, do tls_config.cert_file and key_file in --http.config.file name one it accepts?".to_owned();
    };
    match certificate {
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "call dbvigil by a name its certificate carries, or set tls_config.server_name in --http.config.file to one".to_owned()
        }
        CertificateError::Expired
        | CertificateError::ExpiredContext { .. }
        | CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. } => {
            "renew dbvigil's certificate (tls_server_config.cert_file in its --web.config.file), or check this machine's clock".to_owned()
        }
        _ if ca_file => {
            "set tls_config.ca_file in --http.config.file to the CA that signed dbvigil's certificate: when ca_file is set, it is the only CA trusted".to_owned()
        }
        _ => {
            let mut advice = "add the CA that signed dbvigil's certificate to the system's CA store (SSL_CERT_FILE or SSL_CERT_DIR can name it), or set tls_config.ca_file in --http.config.file to it".to_owned();
            let problems = outbound::system_store_problems();
            if !problems.is_empty() {
                advice.push_str(&format!(
                    " (the system's CA store was not read fully: {})",
                    problems.join("; ")
                ));
            }
            advice
        }
    }
}
