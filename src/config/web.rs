//! The web configuration file (`--web.config.file`) in the exporter-toolkit format that
//! `promtool check web-config` also reads: TLS for dbvigil's own port, client certificates,
//! response headers, and basic-auth users with bcrypt hashes. Everything is checked, and
//! certificates are loaded, while the file is read, so a reload with a bad file changes
//! nothing.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};
use sha2::{Digest, Sha256};

use super::ConfigError;
use super::error::MAX_CONFIG_BYTES;

/// What the web configuration file asks of dbvigil's own port. The default (no file) is
/// plain HTTP without authentication.
#[derive(Default)]
pub struct WebConfig {
    /// None: plain HTTP.
    pub tls: Option<Arc<ServerConfig>>,
    /// None: no basic authentication.
    pub basic_auth: Option<BasicAuth>,
    /// `http_server_config.headers`: added to every answer, replacing dbvigil's defaults.
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field(
                "basic_auth_users",
                &self.basic_auth.as_ref().map_or(0, |b| b.users.len()),
            )
            .field("headers", &self.headers)
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

/// exporter-toolkit accepts only these in `http_server_config.headers`.
const ALLOWED_HEADERS: &[&str] = &[
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
];

mod raw {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct File {
        pub tls_server_config: Option<Tls>,
        pub http_server_config: Option<Http>,
        pub basic_auth_users: Option<HashMap<Spanned<String>, Spanned<String>>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Tls {
        pub cert_file: Option<Spanned<String>>,
        pub key_file: Option<Spanned<String>>,
        pub client_auth_type: Option<Spanned<String>>,
        pub client_ca_file: Option<Spanned<String>>,
        pub min_version: Option<Spanned<String>>,
        pub max_version: Option<Spanned<String>>,
        pub cipher_suites: Option<Vec<Spanned<String>>>,
        pub curve_preferences: Option<Vec<Spanned<String>>>,
        pub prefer_server_cipher_suites: Option<bool>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Http {
        /// dbvigil serves HTTP/1.1 only; the key is accepted so shared files load.
        #[allow(dead_code)]
        pub http2: Option<bool>,
        pub headers: Option<HashMap<Spanned<String>, String>>,
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
    Ok(WebConfig {
        tls: match raw.tls_server_config {
            Some(tls) => v.tls(tls)?,
            None => None,
        },
        basic_auth: match raw.basic_auth_users {
            Some(users) => v.users(users)?,
            None => None,
        },
        headers: match raw.http_server_config.and_then(|h| h.headers) {
            Some(headers) => v.headers(headers)?,
            None => Vec::new(),
        },
    })
}

struct WebValidator<'a> {
    file: &'a str,
    base: &'a Path,
}

#[derive(Clone, Copy)]
enum ClientAuth {
    None,
    Request,
    RequireAny,
    VerifyIfGiven,
    RequireAndVerify,
}

impl WebValidator<'_> {
    fn err(&self, at: Location, message: impl Into<String>) -> ConfigError {
        ConfigError::at(self.file, at, message)
    }

    fn path(&self, p: &Spanned<String>) -> PathBuf {
        self.base.join(&p.value)
    }

    fn tls(&self, raw: raw::Tls) -> Result<Option<Arc<ServerConfig>>, ConfigError> {
        let (cert_file, key_file) = match (&raw.cert_file, &raw.key_file) {
            // As in exporter-toolkit: a TLS section without files serves plain HTTP.
            (None, None) => return Ok(None),
            (Some(c), Some(k)) => (c, k),
            (Some(c), None) => {
                return Err(self.err(
                    c.referenced,
                    "cert_file is set but key_file is not: add key_file with the certificate's private key (PEM)",
                ));
            }
            (None, Some(k)) => {
                return Err(self.err(
                    k.referenced,
                    "key_file is set but cert_file is not: add cert_file with the server certificate (PEM)",
                ));
            }
        };
        let provider = Arc::new(self.provider(&raw)?);
        let versions = self.versions(&raw)?;
        let client_auth = self.client_auth(&raw)?;
        let roots = match (&raw.client_ca_file, client_auth) {
            (Some(ca), ClientAuth::None) => {
                return Err(self.err(
                    ca.referenced,
                    "client_ca_file is set but client_auth_type is NoClientCert: set client_auth_type to RequireAndVerifyClientCert (or VerifyClientCertIfGiven), or remove client_ca_file",
                ));
            }
            (Some(ca), _) => Some(self.roots(ca)?),
            (None, ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify) => {
                let at = raw
                    .client_auth_type
                    .as_ref()
                    .map_or(cert_file.referenced, |t| t.referenced);
                return Err(self.err(
                    at,
                    "this client_auth_type verifies client certificates: set client_ca_file to the PEM file of the CA that signs them",
                ));
            }
            (None, _) => None,
        };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| self.err(cert_file.referenced, format!("TLS settings rejected: {e}")))?;
        let builder = match client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Request | ClientAuth::RequireAny => {
                builder.with_client_cert_verifier(Arc::new(AnyClientCert {
                    mandatory: matches!(client_auth, ClientAuth::RequireAny),
                    algorithms: provider.signature_verification_algorithms,
                }))
            }
            ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify => {
                let ca = raw.client_ca_file.as_ref().expect("checked above");
                let roots = Arc::new(roots.expect("checked above"));
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
                let verifier = if matches!(client_auth, ClientAuth::VerifyIfGiven) {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier.build().map_err(|e| {
                    self.err(ca.referenced, format!("cannot use client_ca_file: {e}"))
                })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let certs = self.certs(cert_file)?;
        let key = PrivateKeyDer::from_pem_file(self.path(key_file)).map_err(|e| {
            self.err(
                key_file.referenced,
                format!(
                    "cannot read a private key from key_file {:?}: {e}; it must be a PEM file (PKCS#8, PKCS#1 or SEC1) readable by dbvigil",
                    self.path(key_file)
                ),
            )
        })?;
        let mut config = builder.with_single_cert(certs, key).map_err(|e| {
            self.err(
                key_file.referenced,
                format!("key_file does not go with cert_file: {e}; check that the key is the certificate's"),
            )
        })?;
        config.ignore_client_order = raw.prefer_server_cipher_suites.unwrap_or(true);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Arc::new(config)))
    }

    fn certs(&self, file: &Spanned<String>) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
        let path = self.path(file);
        let fail = |e: String| {
            self.err(
                file.referenced,
                format!("cannot read certificates from {path:?}: {e}; it must be a PEM file readable by dbvigil"),
            )
        };
        let certs = CertificateDer::pem_file_iter(&path)
            .map_err(|e| fail(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(e.to_string()))?;
        if certs.is_empty() {
            return Err(fail("it holds no CERTIFICATE block".to_owned()));
        }
        Ok(certs)
    }

    fn roots(&self, ca: &Spanned<String>) -> Result<RootCertStore, ConfigError> {
        let mut roots = RootCertStore::empty();
        for cert in self.certs(ca)? {
            roots.add(cert).map_err(|e| {
                self.err(
                    ca.referenced,
                    format!("client_ca_file holds a certificate that cannot be a CA: {e}"),
                )
            })?;
        }
        Ok(roots)
    }

    fn client_auth(&self, raw: &raw::Tls) -> Result<ClientAuth, ConfigError> {
        let Some(t) = &raw.client_auth_type else {
            return Ok(ClientAuth::None);
        };
        Ok(match t.value.as_str() {
            "" | "NoClientCert" => ClientAuth::None,
            "RequestClientCert" => ClientAuth::Request,
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAny,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerify,
            other => {
                return Err(self.err(
                    t.referenced,
                    format!("unknown client_auth_type {other:?}: use NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"),
                ));
            }
        })
    }

    fn versions(
        &self,
        raw: &raw::Tls,
    ) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, ConfigError> {
        let parse = |v: &Option<Spanned<String>>, default: u8| -> Result<u8, ConfigError> {
            let Some(v) = v else { return Ok(default) };
            match v.value.as_str() {
                "TLS12" => Ok(2),
                "TLS13" => Ok(3),
                "TLS10" | "TLS11" => Err(self.err(
                    v.referenced,
                    format!("{} is not offered: TLS 1.0 and 1.1 are deprecated (RFC 8996) and dbvigil's TLS library does not implement them; use TLS12 or TLS13", v.value),
                )),
                other => Err(self.err(
                    v.referenced,
                    format!("unknown TLS version {other:?}: use TLS12 or TLS13"),
                )),
            }
        };
        let min = parse(&raw.min_version, 2)?;
        let max = parse(&raw.max_version, 3)?;
        if min > max {
            let at = raw
                .max_version
                .as_ref()
                .expect("max below the default min")
                .referenced;
            return Err(self.err(
                at,
                "max_version is below min_version: raise max_version or lower min_version",
            ));
        }
        Ok([(2, &rustls::version::TLS12), (3, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(n, _)| (min..=max).contains(n))
            .map(|(_, v)| v)
            .collect())
    }

    /// The ring provider, narrowed to `cipher_suites` (TLS 1.2 only, as in Go: TLS 1.3's
    /// suites are not configurable) and ordered by `curve_preferences`.
    fn provider(&self, raw: &raw::Tls) -> Result<CryptoProvider, ConfigError> {
        let mut provider = rustls::crypto::ring::default_provider();
        if let Some(names) = &raw.cipher_suites {
            let tls12 = |s: &rustls::SupportedCipherSuite| s.version() == &rustls::version::TLS12;
            let offered: Vec<String> = provider
                .cipher_suites
                .iter()
                .filter(|s| tls12(s))
                .map(|s| format!("{:?}", s.suite()))
                .collect();
            let mut chosen = Vec::new();
            for name in names {
                let suite = provider
                    .cipher_suites
                    .iter()
                    .find(|s| tls12(s) && format!("{:?}", s.suite()) == name.value)
                    .ok_or_else(|| {
                        self.err(
                            name.referenced,
                            format!(
                                "cipher suite {:?} is not offered: use some of {}",
                                name.value,
                                offered.join(", ")
                            ),
                        )
                    })?;
                chosen.push(*suite);
            }
            provider.cipher_suites.retain(|s| !tls12(s));
            provider.cipher_suites.extend(chosen);
        }
        if let Some(names) = &raw.curve_preferences {
            let mut chosen = Vec::new();
            for name in names {
                let group = match name.value.as_str() {
                    "X25519" => rustls::NamedGroup::X25519,
                    "CurveP256" => rustls::NamedGroup::secp256r1,
                    "CurveP384" => rustls::NamedGroup::secp384r1,
                    other => {
                        return Err(self.err(
                            name.referenced,
                            format!(
                                "curve {other:?} is not offered: use X25519, CurveP256 or CurveP384"
                            ),
                        ));
                    }
                };
                let kx = provider
                    .kx_groups
                    .iter()
                    .find(|g| g.name() == group)
                    .expect("ring offers X25519, P-256 and P-384");
                chosen.push(*kx);
            }
            provider.kx_groups = chosen;
        }
        Ok(provider)
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
        headers: HashMap<Spanned<String>, String>,
    ) -> Result<Vec<(String, String)>, ConfigError> {
        let mut out = Vec::new();
        let mut headers: Vec<_> = headers.into_iter().collect();
        headers.sort_by_key(|(n, _)| (n.referenced.line(), n.referenced.column()));
        for (name, value) in headers {
            let Some(canonical) = ALLOWED_HEADERS
                .iter()
                .find(|h| h.eq_ignore_ascii_case(&name.value))
            else {
                return Err(self.err(
                    name.referenced,
                    format!(
                        "header {:?} cannot be set here: use one of {}",
                        name.value,
                        ALLOWED_HEADERS.join(", ")
                    ),
                ));
            };
            if value.is_empty() || value.bytes().any(|b| b.is_ascii_control()) {
                return Err(self.err(
                    name.referenced,
                    format!("the value of header {canonical} must be non-empty printable text"),
                ));
            }
            out.push(((*canonical).to_owned(), value));
        }
        Ok(out)
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

/// `RequestClientCert` and `RequireAnyClientCert`: a client certificate is asked for (and
/// for the latter required) but not checked against any CA, as in Go's TLS; the client must
/// still prove it holds the certificate's key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
