//! `tls_server_config`: the server certificate and key (files, or PEM text inline), client
//! certificates and the SANs they must carry, versions, cipher suites and curves, built
//! into one rustls `ServerConfig` while the file is read.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme,
};
use serde_saphyr::{Location, Spanned};

use super::{WebValidator, raw, san};
use crate::config::ConfigError;

/// Where a PEM value comes from: `cert_file` or `cert`, and so on.
#[derive(Clone, Copy)]
enum Pem<'a> {
    File(&'static str, &'a Spanned<String>),
    Inline(&'static str, &'a Spanned<String>),
}

impl Pem<'_> {
    fn key(&self) -> &'static str {
        match self {
            Pem::File(k, _) | Pem::Inline(k, _) => k,
        }
    }

    fn at(&self) -> Location {
        match self {
            Pem::File(_, v) | Pem::Inline(_, v) => v.referenced,
        }
    }
}

#[derive(Clone, Copy)]
enum ClientAuth {
    None,
    Request,
    RequireAny,
    VerifyIfGiven,
    RequireAndVerify,
}

/// Cipher suites Go offers and rustls does not, with the reason.
const GO_ONLY_SUITES: &[(&str, &str)] = &[
    ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", CBC),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", CBC),
    ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", CBC),
    ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", CBC),
    ("TLS_RSA_WITH_AES_128_CBC_SHA", RSA_KX),
    ("TLS_RSA_WITH_AES_256_CBC_SHA", RSA_KX),
    ("TLS_RSA_WITH_AES_128_GCM_SHA256", RSA_KX),
    ("TLS_RSA_WITH_AES_256_GCM_SHA384", RSA_KX),
];
const CBC: &str =
    "dbvigil's TLS library (rustls) implements no CBC-mode suite, which RFC 9325 advises against";
const RSA_KX: &str =
    "dbvigil's TLS library (rustls) implements no RSA key exchange, which has no forward secrecy";
/// Go's names of the TLS 1.3 suites. As in Go, TLS 1.3 suites are always on: naming them
/// changes nothing.
const TLS13_SUITES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

impl WebValidator<'_> {
    /// One of `inline` and `file` (the same value written two ways), or neither.
    fn pem<'a>(
        &self,
        inline: (&'static str, &'a Option<Spanned<String>>),
        file: (&'static str, &'a Option<Spanned<String>>),
    ) -> Result<Option<Pem<'a>>, ConfigError> {
        // As in exporter-toolkit, an empty value is no value.
        let set = |v: &'a Option<Spanned<String>>| v.as_ref().filter(|v| !v.value.is_empty());
        match (set(inline.1), set(file.1)) {
            (Some(i), Some(_)) => Err(self.err(
                i.referenced,
                format!(
                    "{} and {} are both set: keep one ({} holds the PEM text itself, {} names a PEM file)",
                    inline.0, file.0, inline.0, file.0
                ),
            )),
            (Some(i), None) => Ok(Some(Pem::Inline(inline.0, i))),
            (None, Some(f)) => Ok(Some(Pem::File(file.0, f))),
            (None, None) => Ok(None),
        }
    }

    /// `http2`: whether TLS clients may choose HTTP/2 (ALPN `h2`).
    pub(super) fn tls(
        &self,
        raw: raw::Tls,
        http2: bool,
    ) -> Result<Option<Arc<ServerConfig>>, ConfigError> {
        let cert = self.pem(("cert", &raw.cert), ("cert_file", &raw.cert_file))?;
        let key = self.pem(("key", &raw.key), ("key_file", &raw.key_file))?;
        let ca = self.pem(
            ("client_ca", &raw.client_ca),
            ("client_ca_file", &raw.client_ca_file),
        )?;
        let auth_type = raw
            .client_auth_type
            .as_ref()
            .filter(|t| !t.value.is_empty());
        let (cert, key) = match (cert, key) {
            (Some(c), Some(k)) => (c, k),
            (Some(c), None) => {
                return Err(self.err(
                    c.at(),
                    format!("{} is set but key_file is not: add key_file with the certificate's private key (PEM), or key with its PEM text", c.key()),
                ));
            }
            (None, Some(k)) => {
                return Err(self.err(
                    k.at(),
                    format!("{} is set but cert_file is not: add cert_file with the server certificate (PEM), or cert with its PEM text", k.key()),
                ));
            }
            (None, None) => {
                // As in exporter-toolkit: without any of these, the section serves plain HTTP.
                let Some((name, at)) = ca
                    .map(|ca| (ca.key(), ca.at()))
                    .or(auth_type.map(|t| ("client_auth_type", t.referenced)))
                else {
                    return Ok(None);
                };
                return Err(self.err(
                    at,
                    format!("{name} is set but cert_file is not: TLS needs the server's certificate and key: add cert_file and key_file (or cert and key), or remove tls_server_config"),
                ));
            }
        };
        let provider = Arc::new(self.provider(&raw)?);
        let versions = self.versions(&raw)?;
        let client_auth = self.client_auth(&raw)?;
        let roots = match (ca, client_auth) {
            (Some(ca), ClientAuth::None) => {
                return Err(self.err(
                    ca.at(),
                    format!("{} is set but client_auth_type is NoClientCert: set client_auth_type to RequireAndVerifyClientCert (or VerifyClientCertIfGiven), or remove {}", ca.key(), ca.key()),
                ));
            }
            (Some(ca), _) => Some((ca, self.roots(ca)?)),
            (None, ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify) => {
                let at = auth_type.map_or(cert.at(), |t| t.referenced);
                return Err(self.err(
                    at,
                    "this client_auth_type verifies client certificates: set client_ca_file to the PEM file of the CA that signs them (or client_ca to its PEM text)",
                ));
            }
            (None, _) => None,
        };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| self.err(cert.at(), format!("TLS settings rejected: {e}")))?;
        let verifier: Option<Arc<dyn ClientCertVerifier>> = match client_auth {
            ClientAuth::None => None,
            ClientAuth::Request | ClientAuth::RequireAny => Some(Arc::new(AnyClientCert {
                mandatory: matches!(client_auth, ClientAuth::RequireAny),
                algorithms: provider.signature_verification_algorithms,
            })),
            ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify => {
                let (ca, roots) = roots.expect("checked above");
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                let verifier = if matches!(client_auth, ClientAuth::VerifyIfGiven) {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                Some(
                    verifier
                        .build()
                        .map_err(|e| self.err(ca.at(), format!("cannot use {}: {e}", ca.key())))?,
                )
            }
        };
        let verifier = match (&raw.client_allowed_sans, verifier) {
            (None, v) => v,
            (Some(sans), None) => {
                let at = sans.first().map_or(cert.at(), |s| s.referenced);
                return Err(self.err(
                    at,
                    "client_allowed_sans is set but client_auth_type is NoClientCert: no client certificate is asked for, so no SAN can be checked; set client_auth_type to RequireAndVerifyClientCert with client_ca_file",
                ));
            }
            (Some(sans), Some(inner)) => Some(self.allowed_sans(sans, inner, cert.at())?),
        };
        let builder = match verifier {
            None => builder.with_no_client_auth(),
            Some(v) => builder.with_client_cert_verifier(v),
        };
        let certs = self.certs(cert)?;
        let private = self.private_key(key)?;
        let mut config = builder.with_single_cert(certs, private).map_err(|e| {
            self.err(
                key.at(),
                format!(
                    "{} does not go with {}: {e}; check that the key is the certificate's",
                    key.key(),
                    cert.key()
                ),
            )
        })?;
        config.ignore_client_order = raw.prefer_server_cipher_suites.unwrap_or(true);
        config.alpn_protocols = if http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Ok(Some(Arc::new(config)))
    }

    fn allowed_sans(
        &self,
        sans: &[Spanned<String>],
        inner: Arc<dyn ClientCertVerifier>,
        section: Location,
    ) -> Result<Arc<dyn ClientCertVerifier>, ConfigError> {
        if sans.is_empty() {
            return Err(self.err(
                section,
                "client_allowed_sans is an empty list, which no client certificate can match: list the SANs to accept, or remove the key",
            ));
        }
        if let Some(empty) = sans.iter().find(|s| s.value.is_empty()) {
            return Err(self.err(
                empty.referenced,
                "an empty SAN matches no certificate: write a DNS name, IP address, e-mail address or URI",
            ));
        }
        Ok(Arc::new(AllowedSans {
            inner,
            allowed: sans.iter().map(|s| s.value.clone()).collect(),
        }))
    }

    fn file_path(&self, p: &Spanned<String>) -> PathBuf {
        self.base.join(&p.value)
    }

    fn certs(&self, pem: Pem<'_>) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
        let read = match pem {
            Pem::File(_, file) => CertificateDer::pem_file_iter(self.file_path(file))
                .map_err(|e| e.to_string())
                .and_then(|it| it.collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())),
            Pem::Inline(_, text) => CertificateDer::pem_slice_iter(text.value.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string()),
        };
        let fail = |e: String| {
            self.err(
                pem.at(),
                match pem {
                    Pem::File(_, file) => format!(
                        "cannot read certificates from {:?}: {e}; it must be a PEM file readable by dbvigil",
                        self.file_path(file)
                    ),
                    Pem::Inline(key, _) => format!(
                        "cannot read certificates from {key}: {e}; it must hold PEM text (-----BEGIN CERTIFICATE----- ...)"
                    ),
                },
            )
        };
        let certs = read.map_err(fail)?;
        if certs.is_empty() {
            return Err(fail("it holds no CERTIFICATE block".to_owned()));
        }
        Ok(certs)
    }

    fn private_key(&self, pem: Pem<'_>) -> Result<PrivateKeyDer<'static>, ConfigError> {
        match pem {
            Pem::File(_, file) => PrivateKeyDer::from_pem_file(self.file_path(file)).map_err(|e| {
                self.err(
                    file.referenced,
                    format!(
                        "cannot read a private key from key_file {:?}: {e}; it must be a PEM file (PKCS#8, PKCS#1 or SEC1) readable by dbvigil",
                        self.file_path(file)
                    ),
                )
            }),
            // The parser's message may quote the text, and the text is a secret.
            Pem::Inline(_, text) => PrivateKeyDer::from_pem_slice(text.value.as_bytes()).map_err(|_| {
                self.err(
                    text.referenced,
                    "key holds no private key dbvigil can read: it must be PEM text (-----BEGIN PRIVATE KEY----- ..., PKCS#8, PKCS#1 or SEC1); the text is not shown, it is a secret",
                )
            }),
        }
    }

    fn roots(&self, ca: Pem<'_>) -> Result<RootCertStore, ConfigError> {
        let mut roots = RootCertStore::empty();
        for cert in self.certs(ca)? {
            roots.add(cert).map_err(|e| {
                self.err(
                    ca.at(),
                    format!("{} holds a certificate that cannot be a CA: {e}", ca.key()),
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
                .chain(TLS13_SUITES.iter().map(|s| (*s).to_owned()))
                .collect();
            let mut chosen = Vec::new();
            for name in names {
                if TLS13_SUITES.contains(&name.value.as_str()) {
                    continue;
                }
                let suite = provider
                    .cipher_suites
                    .iter()
                    .find(|s| tls12(s) && format!("{:?}", s.suite()) == name.value)
                    .ok_or_else(|| {
                        let why = GO_ONLY_SUITES
                            .iter()
                            .find(|(n, _)| *n == name.value)
                            .map_or(String::new(), |(_, why)| format!("{why}; "));
                        self.err(
                            name.referenced,
                            format!(
                                "cipher suite {:?} is not offered: {why}use some of {}",
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
                    "CurveP521" => {
                        return Err(self.err(
                            name.referenced,
                            "curve \"CurveP521\" is not offered: dbvigil's TLS library (rustls with ring) has no P-521 key exchange; use X25519, CurveP256 or CurveP384",
                        ));
                    }
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

/// `client_allowed_sans`: after the `client_auth_type`'s own check, the certificate must
/// carry one of the listed SANs, compared as exporter-toolkit does (exact strings). A
/// client without a certificate carries none, so one is required: exporter-toolkit, too,
/// serves no client without one once the list is set.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

impl ClientCertVerifier for AllowedSans {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let names = san::names(end_entity).ok_or(rustls::Error::InvalidCertificate(
            CertificateError::BadEncoding,
        ))?;
        if names.iter().any(|n| self.allowed.contains(n)) {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
