//! `--web.config.file`: TLS, client certificates and basic auth on dbvigil's own port, the
//! maintenance token on top of basic auth, reloads, the CLI as a client (with the system's
//! CA store and proxies from the environment), and the file's errors. Certificates are made
//! with openssl for each test; every accepted file is also checked by
//! `promtool check web-config`.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use common::monitoring::have;
use common::proxy::Proxy;
use common::{Metrics, Response, TestExporter, eventually, exchange, tempdir};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::TlsConnector;

const PASSWORD: &str = "correct horse battery staple";
const TOKEN: &str = "maintenance-token-0123456789abcdef";

/// A CA, a server certificate for 127.0.0.1, localhost and dbvigil.test (a name only the
/// test proxy resolves), a client certificate from the same CA, and one from a CA dbvigil
/// does not trust.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let pki = Pki {
            dir: dir.to_owned(),
        };
        pki.ca("ca");
        pki.ca("other-ca");
        pki.leaf(
            "server",
            "ca",
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:dbvigil.test",
        );
        pki.leaf("client", "ca", "extendedKeyUsage=clientAuth");
        pki.leaf("stranger", "other-ca", "extendedKeyUsage=clientAuth");
        pki
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .current_dir(&self.dir)
            .args(args)
            .output()
            .expect("openssl is installed (.ci/run installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ca(&self, name: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ]);
    }

    fn leaf(&self, name: &str, ca: &str, extension: &str) {
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ]);
        std::fs::write(
            self.dir.join(format!("{name}.ext")),
            format!("{extension}\n"),
        )
        .unwrap();
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ]);
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// A client trusting our CA, limited to `versions`, presenting `cert` if given.
    fn client(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
        cert: Option<&str>,
    ) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(self.path("ca.crt")).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
        let config = match cert {
            None => builder.with_no_client_auth(),
            Some(name) => {
                let chain = CertificateDer::pem_file_iter(self.path(&format!("{name}.crt")))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                let key = PrivateKeyDer::from_pem_file(self.path(&format!("{name}.key"))).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
        };
        TlsConnector::from(Arc::new(config))
    }
}

const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS12, &rustls::version::TLS13];

/// One request over TLS; Err when the handshake or the connection fails.
async fn https(
    addr: SocketAddr,
    client: &TlsConnector,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Response, String> {
    let work = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let tls = client
            .connect(ServerName::IpAddress(addr.ip().into()), tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        exchange(tls, &addr.to_string(), method, path, headers, body)
            .await
            .map_err(|e| e.to_string())
    };
    tokio::time::timeout(Duration::from_secs(20), work)
        .await
        .map_err(|_| "no answer within 20s".to_owned())?
}

fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

fn hash(password: &str, cost: u32) -> String {
    bcrypt::hash(password, cost).unwrap()
}

/// The file must pass `promtool check web-config` as well as dbvigil's own check.
fn promtool_accepts(file: &Path) {
    if !have("promtool", "prometheus") {
        return;
    }
    let out = Command::new("promtool")
        .args(["check", "web-config"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check web-config {}: {}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A web configuration with one user, alice, whose hash has `cost`.
fn alice(cost: u32) -> String {
    format!("basic_auth_users:\n  alice: '{}'\n", hash(PASSWORD, cost))
}

fn write_web(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("web.yml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn sqlite_config(dir: &Path) -> String {
    std::fs::write(dir.join("tokens"), format!("{TOKEN}\n")).unwrap();
    "targets:\n  - {name: orders, kind: sqlite, path: orders.db, create: true, interval: 1s}\n\
     maintenance:\n  tokens_file: tokens\n"
        .to_owned()
}

async fn exporter(dir: &Path, web_yaml: &str) -> TestExporter {
    let web = write_web(dir, web_yaml);
    promtool_accepts(&web);
    TestExporter::start_with_web(dir, &sqlite_config(dir), Some(&web)).await
}

fn tls_section(extra: &str) -> String {
    format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra}")
}

#[tokio::test]
async fn tls_serves_https_and_a_plain_http_client_gets_no_answer() {
    let dir = tempdir();
    let pki = Pki::new(dir.path());
    let e = exporter(dir.path(), &tls_section("")).await;
    let client = pki.client(BOTH, None);
    let r = https(e.addr, &client, "GET", "/metrics", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(Metrics::parse(&r.body).has("dbvigil_up"), "{}", r.body);
    // Plain HTTP on a TLS port must not be served (the handshake fails, the connection closes).
    let tcp = tokio::net::TcpStream::connect(e.addr).await.unwrap();
    let plain = exchange(tcp, "x", "GET", "/metrics", &[], "").await;
    assert!(plain.is_err(), "plain HTTP was answered on the TLS port");
    e.stop().await;
}

#[tokio::test]
async fn min_version_tls13_refuses_a_tls12_client() {
    let dir = tempdir();
    let pki = Pki::new(dir.path());
    let e = exporter(dir.path(), &tls_section("  min_version: TLS13\n")).await;
    let old = pki.client(&[&rustls::version::TLS12], None);
    let refused = https(e.addr, &old, "GET", "/-/healthy", &[], "").await;
    assert!(
        refused.as_ref().is_err_and(|m| m.contains("handshake")),
        "{refused:?}"
    );
    let new = pki.client(&[&rustls::version::TLS13], None);
    assert_eq!(
        https(e.addr, &new, "GET", "/-/healthy", &[], "")
            .await
            .unwrap()
            .status,
        200
    );
    e.stop().await;
}

/// Each client_auth_type against no certificate, one from another CA, and one from ours.
#[tokio::test]
async fn each_client_auth_type_serves_exactly_the_clients_it_should() {
    let dir = tempdir();
    let pki = Pki::new(dir.path());
    let ca = "  client_ca_file: ca.crt\n";
    // (type, CA file, served with: none, stranger, ours)
    let policies = [
        ("RequireAndVerifyClientCert", ca, [false, false, true]),
        ("VerifyClientCertIfGiven", ca, [true, false, true]),
        ("RequireAnyClientCert", "", [false, true, true]),
        ("RequestClientCert", "", [true, true, true]),
        ("NoClientCert", "", [true, true, true]),
    ];
    for (policy, ca_line, served) in policies {
        let pdir = dir.path().join(policy);
        std::fs::create_dir_all(&pdir).unwrap();
        for f in ["server.crt", "server.key", "ca.crt"] {
            std::fs::copy(pki.path(f), pdir.join(f)).unwrap();
        }
        let e = exporter(
            &pdir,
            &tls_section(&format!("  client_auth_type: {policy}\n{ca_line}")),
        )
        .await;
        for (cert, want) in [None, Some("stranger"), Some("client")]
            .into_iter()
            .zip(served)
        {
            let r = https(e.addr, &pki.client(BOTH, cert), "GET", "/metrics", &[], "").await;
            let got = r.as_ref().is_ok_and(|r| r.status == 200);
            assert_eq!(got, want, "{policy} with certificate {cert:?}: {r:?}");
        }
        e.stop().await;
    }
}

/// Every endpoint but `/-/healthy` needs the credentials, including unknown paths.
#[tokio::test]
async fn basic_auth_guards_every_endpoint_but_healthy() {
    let dir = tempdir();
    let e = exporter(dir.path(), &alice(4)).await;
    let paths = [
        ("GET", "/"),
        ("GET", "/metrics"),
        ("GET", "/-/ready"),
        ("POST", "/-/reload"),
        ("GET", "/probe?target=orders"),
        ("GET", "/api/v1/targets"),
        ("GET", "/api/v1/groups"),
        ("GET", "/api/v1/maintenance"),
        ("GET", "/maintenance/orders"),
        ("GET", "/targets/orders/up"),
        ("GET", "/no-such-page"),
    ];
    let good = basic("alice", PASSWORD);
    let wrong = [
        basic("alice", "wrong password"),
        basic("mallory", PASSWORD),
        format!("Bearer {TOKEN}"),
        "Basic !!!not-base64".to_owned(),
    ];
    for (method, path) in paths {
        let bare = common::request(e.addr, method, path, &[]).await;
        assert_eq!(bare.status, 401, "{method} {path} without credentials");
        assert_eq!(
            bare.header("www-authenticate"),
            Some("Basic realm=\"dbvigil\"")
        );
        assert_eq!(
            bare.header("x-frame-options"),
            Some("DENY"),
            "401s carry the security headers too"
        );
        for w in &wrong {
            let r = common::request(e.addr, method, path, &[("Authorization", w)]).await;
            assert_eq!(r.status, 401, "{method} {path} with {w:?}");
        }
        let r = common::request(e.addr, method, path, &[("Authorization", &good)]).await;
        assert_ne!(
            r.status, 401,
            "{method} {path} with the right password: {}",
            r.body
        );
    }
    assert_eq!(
        common::request(e.addr, "GET", "/-/healthy", &[])
            .await
            .status,
        200
    );
    // After the right password passed (and was cached), a wrong one is still refused.
    let r = common::request(e.addr, "GET", "/metrics", &[("Authorization", &wrong[0])]).await;
    assert_eq!(r.status, 401);
    e.stop().await;
}

/// bcrypt at cost 12 takes a noticeable fraction of a second: with the cache, only the
/// first request pays it.
#[tokio::test]
async fn a_password_that_passed_is_not_checked_with_bcrypt_again() {
    let dir = tempdir();
    let e = exporter(dir.path(), &alice(12)).await;
    let good = basic("alice", PASSWORD);
    let timed = || async {
        let started = Instant::now();
        let r = common::request(e.addr, "GET", "/-/ready", &[("Authorization", &good)]).await;
        assert_eq!(r.status, 200);
        started.elapsed()
    };
    let first = timed().await;
    let mut rest = Duration::ZERO;
    for _ in 0..20 {
        rest += timed().await;
    }
    // Without the cache the 20 would take about 20 times the first.
    assert!(
        rest < first * 5,
        "20 cached checks took {rest:?}, the first (bcrypt) one {first:?}"
    );
    e.stop().await;
}

#[tokio::test]
async fn maintenance_changes_need_the_token_on_top_of_basic_auth() {
    let dir = tempdir();
    let e = exporter(dir.path(), &alice(4)).await;
    let body = r#"{"scope":"orders","reason":"upgrade","duration":"5m"}"#;
    let good = basic("alice", PASSWORD);
    let send = |headers: Vec<(&'static str, String)>| {
        let addr = e.addr;
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            common::send(addr, "POST", "/api/v1/maintenance", &h, body).await
        }
    };
    let json = ("Content-Type", "application/json".to_owned());
    let only_basic = send(vec![json.clone(), ("Authorization", good.clone())]).await;
    assert_eq!(only_basic.status, 401, "{}", only_basic.body);
    assert!(
        only_basic.body.contains("X-Dbvigil-Token"),
        "{}",
        only_basic.body
    );
    let only_token = send(vec![json.clone(), ("X-Dbvigil-Token", TOKEN.to_owned())]).await;
    assert_eq!(
        only_token.status, 401,
        "the token alone gets past basic auth"
    );
    let wrong_token = send(vec![
        json.clone(),
        ("Authorization", good.clone()),
        ("X-Dbvigil-Token", "not-the-token-0123456789".to_owned()),
    ])
    .await;
    assert_eq!(wrong_token.status, 401, "{}", wrong_token.body);
    let listed = common::request(
        e.addr,
        "GET",
        "/api/v1/maintenance",
        &[("Authorization", &good)],
    )
    .await;
    assert!(
        !listed.body.contains("upgrade"),
        "a refused start stored a window: {}",
        listed.body
    );
    let both = send(vec![
        json,
        ("Authorization", good.clone()),
        ("X-Dbvigil-Token", TOKEN.to_owned()),
    ])
    .await;
    assert_eq!(both.status, 201, "{}", both.body);
    e.stop().await;
}

#[tokio::test]
async fn a_reload_applies_a_new_web_config_and_keeps_the_old_one_when_the_new_one_is_bad() {
    let dir = tempdir();
    let e = exporter(dir.path(), &alice(4)).await;
    let (alice, bob) = (basic("alice", PASSWORD), basic("bob", PASSWORD));
    let status = |auth: String| {
        let addr = e.addr;
        async move {
            common::request(addr, "GET", "/-/ready", &[("Authorization", &auth)])
                .await
                .status
        }
    };
    assert_eq!(status(alice.clone()).await, 200);
    write_web(
        dir.path(),
        &format!("basic_auth_users:\n  bob: '{}'\n", hash(PASSWORD, 4)),
    );
    let r = common::request(e.addr, "POST", "/-/reload", &[("Authorization", &alice)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        status(alice.clone()).await,
        401,
        "alice's cached check outlived her removal"
    );
    assert_eq!(status(bob.clone()).await, 200);

    let web = write_web(dir.path(), "basic_auth_users:\n  bob: hunter2\n");
    let r = common::request(e.addr, "POST", "/-/reload", &[("Authorization", &bob)]).await;
    assert_eq!(r.status, 500, "{}", r.body);
    let expected = format!(
        "{}:2:8: the password of user \"bob\" is not a bcrypt hash",
        web.display()
    );
    assert!(r.body.contains(&expected), "{}", r.body);
    assert_eq!(
        status(bob.clone()).await,
        200,
        "the bad file replaced the good one"
    );
    assert_eq!(status(alice).await, 401);
    let m = common::request(e.addr, "GET", "/metrics", &[("Authorization", &bob)]).await;
    assert_eq!(
        Metrics::parse(&m.body).value("dbvigil_config_last_reload_successful", &[]),
        0.0
    );
    e.stop().await;
}

#[tokio::test]
async fn a_reload_can_turn_tls_on_for_the_next_connection() {
    let dir = tempdir();
    let pki = Pki::new(dir.path());
    let e = exporter(dir.path(), "").await;
    assert_eq!(
        common::request(e.addr, "GET", "/-/healthy", &[])
            .await
            .status,
        200
    );
    write_web(dir.path(), &tls_section(""));
    assert_eq!(
        common::request(e.addr, "POST", "/-/reload", &[])
            .await
            .status,
        200
    );
    let r = https(
        e.addr,
        &pki.client(BOTH, None),
        "GET",
        "/-/healthy",
        &[],
        "",
    )
    .await;
    assert_eq!(r.unwrap().status, 200);
    e.stop().await;
}

/// A client that opens a connection and never sends a ClientHello holds its own slot only.
#[tokio::test]
async fn a_silent_client_does_not_stall_other_handshakes() {
    let dir = tempdir();
    let pki = Pki::new(dir.path());
    let e = exporter(dir.path(), &tls_section("")).await;
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(tokio::net::TcpStream::connect(e.addr).await.unwrap());
    }
    let started = Instant::now();
    let r = https(
        e.addr,
        &pki.client(BOTH, None),
        "GET",
        "/-/healthy",
        &[],
        "",
    )
    .await;
    assert_eq!(r.unwrap().status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a good client waited {:?} behind silent ones (the handshake timeout is 10s)",
        started.elapsed()
    );
    drop(silent);
    e.stop().await;
}

/// What the outbound client reads from its environment besides its flags.
const OUTBOUND_ENV: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    // Set, it means a CGI script, and the proxy variables are ignored.
    "REQUEST_METHOD",
];

fn cli(dir: &Path, args: &[&str]) -> (i32, String, String) {
    cli_env(dir, args, &[])
}

/// The CLI with `env` as the only proxy and CA store settings in its environment.
fn cli_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dbvigil"));
    for name in OUTBOUND_ENV {
        command.env_remove(name);
    }
    let out = command
        .current_dir(dir)
        .args(args)
        .envs(env.iter().copied())
        .env_remove("DBVIGIL_MAINTENANCE_TOKEN")
        .env_remove("DBVIGIL_URL")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The CLI reaches an exporter with TLS, a client certificate and basic auth through an
/// HTTP client configuration file, as amtool does.
#[tokio::test]
async fn the_cli_starts_a_window_over_tls_with_basic_auth_and_a_client_certificate() {
    let dir = tempdir();
    let _pki = Pki::new(dir.path());
    let e = exporter(
        dir.path(),
        &format!(
            "{}basic_auth_users:\n  alice: '{}'\n",
            tls_section(
                "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
            ),
            hash(PASSWORD, 4)
        ),
    )
    .await;
    std::fs::write(dir.path().join("password"), format!("{PASSWORD}\n")).unwrap();
    std::fs::write(
        dir.path().join("client.yml"),
        "basic_auth:\n  username: alice\n  password_file: password\n\
         tls_config:\n  ca_file: ca.crt\n  cert_file: client.crt\n  key_file: client.key\n",
    )
    .unwrap();
    let url = format!("https://{}", e.addr);
    let dir_path = dir.path().to_owned();
    let run = move |args: Vec<String>| {
        let dir = dir_path.clone();
        tokio::task::spawn_blocking(move || {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            cli(&dir, &a)
        })
    };
    let args = |extra: &[&str]| -> Vec<String> {
        [
            "maintenance",
            "--url",
            &url,
            "--http.config.file",
            "client.yml",
            "--token",
            TOKEN,
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
    };
    let (code, out, err) = run(args(&[
        "start", "--scope", "orders", "--reason", "upgrade", "--for", "5m",
    ]))
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(args(&["list"])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("upgrade"), "{out}");
    // Without the client file the certificate cannot be checked: exit 4, saying why.
    let bare: Vec<String> = ["maintenance", "--url", &url, "list"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (code, _, err) = run(bare).await.unwrap();
    assert_eq!(code, 4, "{err}");
    assert!(
        err.starts_with(&format!(
            "dbvigil at {url}: TLS handshake failed: invalid peer certificate: UnknownIssuer; "
        )),
        "{err}"
    );
    assert!(!err.contains(PASSWORD) && !err.contains(TOKEN));
    e.stop().await;
}

/// [`cli_env`] off the test's runtime, which serves the in-process exporter meanwhile.
async fn run_cli(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = dir.to_owned();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        cli_env(&dir, &args, &env)
    })
    .await
    .unwrap()
}

/// Without `--http.config.file` the CLI trusts the system's CA store beside its built-in
/// public roots, so a private CA works once the system knows it (here through
/// SSL_CERT_FILE and SSL_CERT_DIR, which replace the distribution's bundle as in OpenSSL);
/// with `ca_file`, only that CA. Each refusal says what to do.
#[tokio::test]
async fn the_cli_trusts_the_system_ca_store_unless_the_client_file_names_a_ca() {
    let dir = tempdir();
    let pki = Pki::new(dir.path());
    let e = exporter(dir.path(), &tls_section("")).await;
    let url = format!("https://{}", e.addr);
    let list = ["maintenance", "--url", &url, "list"];
    let ca = pki.path("ca.crt");
    let ca = ca.to_str().unwrap();
    let untrusted = format!(
        "dbvigil at {url}: TLS handshake failed: invalid peer certificate: UnknownIssuer; \
         add the CA that signed dbvigil's certificate to the system's CA store \
         (SSL_CERT_FILE or SSL_CERT_DIR can name it), or set tls_config.ca_file in \
         --http.config.file to it"
    );

    // The distribution's bundle and the built-in roots do not know the test CA.
    let (code, out, err) = run_cli(dir.path(), &list, &[]).await;
    assert_eq!(code, 4, "{out}{err}");
    assert!(err.starts_with(&untrusted), "{err}");

    let (code, out, err) = run_cli(dir.path(), &list, &[("SSL_CERT_FILE", ca)]).await;
    assert_eq!(
        (code, out.as_str()),
        (0, "no maintenance windows\n"),
        "{err}"
    );
    let store = dir.path().join("certs");
    std::fs::create_dir(&store).unwrap();
    std::fs::copy(ca, store.join("corporate-ca.pem")).unwrap();
    let store = store.to_str().unwrap();
    let (code, out, err) = run_cli(dir.path(), &list, &[("SSL_CERT_DIR", store)]).await;
    assert_eq!(
        (code, out.as_str()),
        (0, "no maintenance windows\n"),
        "{err}"
    );

    // A store that cannot be read is named in the refusal, or the mistake would not show.
    let missing = dir.path().join("missing.crt");
    let missing = missing.to_str().unwrap();
    let (code, out, err) = run_cli(dir.path(), &list, &[("SSL_CERT_FILE", missing)]).await;
    assert_eq!(code, 4, "{out}{err}");
    assert!(
        err.starts_with(&format!(
            "{untrusted} (the system's CA store was not read fully: failed to read PEM from file: "
        )) && err.contains(missing),
        "{err}"
    );

    // ca_file is the only CA trusted: the system's store no longer counts.
    std::fs::write(
        dir.path().join("other.yml"),
        "tls_config:\n  ca_file: other-ca.crt\n",
    )
    .unwrap();
    let other = [
        "maintenance",
        "--url",
        &url,
        "--http.config.file",
        "other.yml",
        "list",
    ];
    let (code, out, err) = run_cli(dir.path(), &other, &[("SSL_CERT_FILE", ca)]).await;
    assert_eq!(code, 4, "{out}{err}");
    assert_eq!(
        err,
        format!(
            "dbvigil at {url}: TLS handshake failed: invalid peer certificate: UnknownIssuer; \
             set tls_config.ca_file in --http.config.file to the CA that signed dbvigil's \
             certificate: when ca_file is set, it is the only CA trusted\n"
        )
    );

    // A certificate for another name gets other advice.
    std::fs::write(
        dir.path().join("named.yml"),
        "tls_config:\n  ca_file: ca.crt\n  server_name: db-monitor.example\n",
    )
    .unwrap();
    let named = [
        "maintenance",
        "--url",
        &url,
        "--http.config.file",
        "named.yml",
        "list",
    ];
    let (code, out, err) = run_cli(dir.path(), &named, &[]).await;
    assert_eq!(code, 4, "{out}{err}");
    assert!(
        err.starts_with(&format!(
            "dbvigil at {url}: TLS handshake failed: invalid peer certificate: certificate not valid for name \"db-monitor.example\""
        )) && err.ends_with(
            "; call dbvigil by a name its certificate carries, or set tls_config.server_name in --http.config.file to one\n"
        ),
        "{err}"
    );
    e.stop().await;
}

/// An https call goes through the proxy HTTPS_PROXY (or https_proxy) names, as a CONNECT
/// tunnel, unless NO_PROXY names the host. The proxy alone resolves dbvigil.test, so a call
/// that arrives went through it. Loopback addresses never go through a proxy, which could
/// not reach this machine's loopback (as in Go's net/http; curl would send them).
#[tokio::test]
async fn the_cli_calls_https_through_the_proxy_the_environment_names() {
    let dir = tempdir();
    let pki = Pki::new(dir.path());
    let e = exporter(dir.path(), &tls_section("")).await;
    let proxy = Proxy::start(&[("dbvigil.test", e.addr)]).await;
    let port = e.addr.port();
    let behind = format!("https://dbvigil.test:{port}");
    let ca = pki.path("ca.crt");
    let ca = ca.to_str().unwrap();
    let proxy_url = proxy.url(None);
    let windows = (0, "no maintenance windows\n");

    for variable in ["HTTPS_PROXY", "https_proxy"] {
        let (code, out, err) = run_cli(
            dir.path(),
            &["maintenance", "--url", &behind, "list"],
            &[("SSL_CERT_FILE", ca), (variable, &proxy_url)],
        )
        .await;
        assert_eq!((code, out.as_str()), windows, "{variable}: {err}");
    }
    let connect = format!("CONNECT dbvigil.test:{port} HTTP/1.1");
    let seen: Vec<String> = proxy.seen().into_iter().map(|s| s.request).collect();
    assert_eq!(seen, [connect.clone(), connect]);

    // NO_PROXY: the CLI looks the name up itself, and no one else can resolve it.
    let (code, out, err) = run_cli(
        dir.path(),
        &["maintenance", "--url", &behind, "list"],
        &[
            ("SSL_CERT_FILE", ca),
            ("HTTPS_PROXY", &proxy_url),
            ("NO_PROXY", "example.org, .test"),
        ],
    )
    .await;
    assert_eq!(code, 4, "{out}{err}");
    assert!(
        err.starts_with(&format!(
            "cannot reach dbvigil at {behind}: cannot connect: dns error: "
        )) && err.ends_with("; is it running, and is --url right?\n"),
        "{err}"
    );
    assert_eq!(proxy.seen().len(), 2);

    for direct in [
        format!("https://127.0.0.1:{port}"),
        format!("https://localhost:{port}"),
    ] {
        let (code, out, err) = run_cli(
            dir.path(),
            &["maintenance", "--url", &direct, "list"],
            &[("SSL_CERT_FILE", ca), ("HTTPS_PROXY", &proxy_url)],
        )
        .await;
        assert_eq!((code, out.as_str()), windows, "{direct}: {err}");
    }
    assert_eq!(proxy.seen().len(), 2, "{:?}", proxy.seen());
    e.stop().await;
}

/// An http call goes to the proxy HTTP_PROXY (or http_proxy) names, as an absolute-form
/// request; no_proxy in lower case counts as well.
#[tokio::test]
async fn the_cli_sends_plain_http_through_http_proxy() {
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &sqlite_config(dir.path())).await;
    let proxy = Proxy::start(&[("dbvigil.test", e.addr)]).await;
    let behind = format!("http://dbvigil.test:{}", e.addr.port());
    let list = ["maintenance", "--url", &behind, "list"];
    let proxy_url = proxy.url(None);
    // HTTPS_PROXY names nothing that listens: it is not the one for http URLs.
    let closed = format!("http://{}", closed_port());
    for variable in ["HTTP_PROXY", "http_proxy"] {
        let env = [(variable, proxy_url.as_str()), ("HTTPS_PROXY", &closed)];
        let (code, out, err) = run_cli(dir.path(), &list, &env).await;
        assert_eq!(
            (code, out.as_str()),
            (0, "no maintenance windows\n"),
            "{err}"
        );
    }
    let get = format!("GET {behind}/api/v1/maintenance HTTP/1.1");
    let seen: Vec<String> = proxy.seen().into_iter().map(|s| s.request).collect();
    assert_eq!(seen, [get.clone(), get]);

    let env = [
        ("HTTP_PROXY", proxy_url.as_str()),
        ("no_proxy", "dbvigil.test"),
    ];
    let (code, out, err) = run_cli(dir.path(), &list, &env).await;
    assert_eq!(code, 4, "{out}{err}");
    assert!(err.contains(": cannot connect: dns error: "), "{err}");
    assert_eq!(proxy.seen().len(), 2);
    e.stop().await;
}

/// An address where nothing listens.
fn closed_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Credentials in a proxy URL reach the proxy and never the CLI's messages, which name
/// the proxy without them.
#[tokio::test]
async fn a_proxy_that_refuses_its_credentials_is_named_without_them() {
    const SECRET: &str = "s3cret-proxy-pass";
    let dir = tempdir();
    let proxy = Proxy::refusing().await;
    let with_credentials = proxy.url(Some(&format!("ops:{SECRET}")));
    let shown = proxy.url(None);
    let fix =
        "is the proxy right, and can it reach dbvigil? NO_PROXY names the hosts to call directly";

    let (code, out, err) = run_cli(
        dir.path(),
        &["maintenance", "--url", "https://dbvigil.test:10150", "list"],
        &[("HTTPS_PROXY", &with_credentials)],
    )
    .await;
    assert_eq!((code, out.as_str()), (4, ""));
    assert_eq!(
        err,
        format!(
            "cannot reach dbvigil at https://dbvigil.test:10150 through the proxy {shown} \
             (from HTTPS_PROXY or ALL_PROXY): cannot connect: tunnel error: proxy \
             authorization required; {fix}\n"
        )
    );

    let (code, out, err) = run_cli(
        dir.path(),
        &["maintenance", "--url", "http://dbvigil.test:10150", "list"],
        &[("HTTP_PROXY", &with_credentials)],
    )
    .await;
    assert_eq!((code, out.as_str()), (4, ""));
    assert_eq!(
        err,
        format!(
            "cannot reach dbvigil at http://dbvigil.test:10150 through the proxy {shown} \
             (from HTTP_PROXY or ALL_PROXY): the proxy answered 407 Proxy Authentication \
             Required: write its user and password into the variable's URL \
             (http://user:password@proxy:3128); {fix}\n"
        )
    );
    let presented = basic("ops", SECRET);
    let seen: Vec<Option<String>> = proxy.seen().into_iter().map(|s| s.authorization).collect();
    assert_eq!(seen, [Some(presented.clone()), Some(presented.clone())]);

    // A proxy that is not there.
    let gone = closed_port();
    let (code, out, err) = run_cli(
        dir.path(),
        &["maintenance", "--url", "https://dbvigil.test:10150", "list"],
        &[("HTTPS_PROXY", &format!("http://ops:{SECRET}@{gone}"))],
    )
    .await;
    assert_eq!(code, 4, "{out}{err}");
    assert!(
        err.starts_with(&format!(
            "cannot reach dbvigil at https://dbvigil.test:10150 through the proxy http://{gone} \
             (from HTTPS_PROXY or ALL_PROXY): cannot connect: tunnel error: failed to create \
             underlying connection: tcp connect error: "
        )),
        "{err}"
    );
    let encoded = presented.trim_start_matches("Basic ");
    for text in [&out, &err] {
        assert!(!text.contains(SECRET) && !text.contains(encoded), "{text}");
    }
}

/// Each mistake, with the message dbvigil gives (file:line:column first); promtool refuses
/// the same files, so the two tools agree on what is valid.
#[test]
fn invalid_web_configs_are_refused_with_what_to_do() {
    let dir = tempdir();
    let _pki = Pki::new(dir.path());
    let cases: &[(&str, &str)] = &[
        (
            "tls_server_config:\n  cert_file: server.crt\n",
            "web.yml:2:14: cert_file is set but key_file is not: add key_file",
        ),
        (
            "basic_auth_excluded_paths:\n- https://dbvigil.example/-/ready\n",
            "web.yml:2:3: basic_auth_excluded_paths: \"https://dbvigil.example/-/ready\" is not a request path; write the exact path a client asks for, like /-/ready (no host, query or pattern)",
        ),
        (
            "basic_auth_excluded_paths: [/-/*]\n",
            "1:29: basic_auth_excluded_paths: \"/-/*\" is not a request path",
        ),
        (
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n",
            "2:14: cannot read certificates from",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: client.key\n",
            "key_file does not go with cert_file",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n",
            "4:19: client_ca_file is set but client_auth_type is NoClientCert",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: Sometimes\n",
            "4:21: unknown client_auth_type \"Sometimes\"",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS11\n",
            "4:16: TLS11 is not offered",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n",
            "4:19: cipher suite \"TLS_RSA_WITH_RC4_128_SHA\" is not offered",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  cert: inline\n",
            "4:9: cert and cert_file are both set: keep one (cert holds the PEM text itself, cert_file names a PEM file)",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  key: inline\n",
            "4:8: key and key_file are both set: keep one",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  client_ca: inline\n",
            "6:14: client_ca and client_ca_file are both set: keep one",
        ),
        (
            "tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n",
            "2:21: client_auth_type is set but cert_file is not: TLS needs the server's certificate and key",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_allowed_sans: [prometheus]\n",
            "4:25: client_allowed_sans is set but client_auth_type is NoClientCert: no client certificate is asked for",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  client_allowed_sans: []\n",
            "client_allowed_sans is an empty list, which no client certificate can match",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  curve_preferences: [CurveP521]\n",
            "4:23: curve \"CurveP521\" is not offered: dbvigil's TLS library (rustls with ring) has no P-521 key exchange",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA]\n",
            "4:19: cipher suite \"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA\" is not offered: dbvigil's TLS library (rustls) implements no CBC-mode suite",
        ),
        (
            "rate_limit:\n  interval: 1s\n  burst: 0\n",
            "3:10: rate_limit burst 0 would refuse every request: set it to the requests allowed at once (at least 1)",
        ),
        (
            "rate_limit:\n  interval: 1d\n  burst: 5\n",
            "2:13: rate_limit interval \"1d\" is not a duration: write it as Go does, e.g. 1s, 500ms or 1m30s",
        ),
        (
            "rate_limit:\n  interval: 1s\n",
            "2:13: rate_limit has an interval but no burst",
        ),
        (
            "rate_limit:\n  interval: 1s\n  burst: 5\n  wait: true\n",
            "unknown field `wait`",
        ),
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: DENY\n",
            "3:22: X-Frame-Options cannot be \"DENY\": use deny or sameorigin",
        ),
        (
            "http_server_config:\n  headers:\n    x-frame-options: deny\n",
            "3:5: header \"x-frame-options\" cannot be set here: write it as X-Frame-Options",
        ),
        (
            "basic_auth_users:\n  alice: secret\n",
            "2:10: the password of user \"alice\" is not a bcrypt hash",
        ),
        (
            "http_server_config:\n  headers:\n    Set-Cookie: a=b\n",
            "3:5: header \"Set-Cookie\" cannot be set here",
        ),
    ];
    let promtool = have("promtool", "prometheus");
    for (yaml, expected) in cases {
        let file = write_web(dir.path(), yaml);
        let (code, _, err) = cli(
            dir.path(),
            &["check-config", "--web.config.file", "web.yml"],
        );
        assert_eq!(code, 1, "{yaml}");
        assert!(
            err.contains(&format!("invalid web configuration: {}", file.display()))
                || err.contains("invalid web configuration: web.yml"),
            "{err}"
        );
        assert!(
            err.contains(expected),
            "{yaml}\nwanted {expected:?} in {err}"
        );
        // Go still offers TLS 1.1, P-521 and CBC suites; rustls does not, so only dbvigil
        // refuses them (README.md says so).
        let dbvigil_only = ["TLS11", "CurveP521", "CBC_SHA"];
        if promtool && !dbvigil_only.iter().any(|k| expected.contains(k)) {
            let out = Command::new("promtool")
                .args(["check", "web-config"])
                .arg(&file)
                .output()
                .unwrap();
            assert!(
                !out.status.success(),
                "promtool accepted what dbvigil refuses:\n{yaml}"
            );
        }
    }
}

#[test]
fn hash_password_makes_a_hash_that_dbvigil_and_promtool_accept() {
    let dir = tempdir();
    let out = Command::new(env!("CARGO_BIN_EXE_dbvigil"))
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("{PASSWORD}\n").as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    let hashed = String::from_utf8(out.stdout).unwrap();
    let hashed = hashed.trim();
    assert!(bcrypt::verify(PASSWORD, hashed).unwrap(), "{hashed}");
    let file = write_web(
        dir.path(),
        &format!("basic_auth_users:\n  alice: '{hashed}'\n"),
    );
    promtool_accepts(&file);
    let (code, out, err) = cli(
        dir.path(),
        &["check-config", "--web.config.file", "web.yml"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("basic auth for 1 user(s)"), "{out}");
}

/// The real binary: its startup line says https (the address a user copies), and neither
/// the password nor its hash reaches the debug log, whatever clients send.
#[tokio::test]
async fn the_binary_announces_https_and_logs_no_credentials() {
    let dir = tempdir();
    let pki = Pki::new(dir.path());
    let hashed = hash(PASSWORD, 4);
    write_web(
        dir.path(),
        &format!(
            "{}basic_auth_users:\n  alice: '{hashed}'\n",
            tls_section("")
        ),
    );
    let port = common::servers::free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dbvigil"))
        .current_dir(dir.path())
        .args([
            "--web.config.file",
            "web.yml",
            "--data.dir",
            "data",
            "--log.level",
            "debug",
        ])
        .args(["--web.listen-address", &addr.to_string()])
        .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
        .spawn()
        .unwrap();
    let client = pki.client(BOTH, None);
    eventually(
        Duration::from_secs(15),
        "dbvigil answers over TLS",
        || async {
            https(addr, &client, "GET", "/-/healthy", &[], "")
                .await
                .ok()
                .map(|_| ())
        },
    )
    .await;
    for auth in [
        basic("alice", PASSWORD),
        basic("alice", "wrong"),
        basic(PASSWORD, PASSWORD),
    ] {
        https(
            addr,
            &client,
            "GET",
            "/metrics",
            &[("Authorization", &auth)],
            "",
        )
        .await
        .unwrap();
    }
    // A plain-HTTP client on the TLS port: a failed handshake, logged at debug level.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = exchange(
        tcp,
        "x",
        "GET",
        "/metrics",
        &[("Authorization", &basic("alice", PASSWORD))],
        "",
    )
    .await;
    // The failed handshake is logged by its own task: wait for the line, not for luck.
    let log = dir.path().join("log");
    eventually(
        Duration::from_secs(15),
        "the failed handshake in the debug log",
        || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.contains("TLS handshake failed").then_some(())
        },
    )
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let text = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert!(
        text.contains(&format!("metrics at https://{addr}/metrics")),
        "{text}"
    );
    assert!(
        text.contains("level=debug"),
        "the log is not at debug level: {text}"
    );
    assert!(
        !text.contains(PASSWORD) && !text.contains(&hashed),
        "a credential reached the log: {text}"
    );
}

/// examples/web/: the web configuration passes promtool and dbvigil, and the client file
/// next to it reaches an exporter that loaded it.
#[tokio::test]
async fn the_shipped_examples_work_together() {
    let dir = tempdir();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let pki = Pki::new(&secrets);
    for (from, to) in [
        ("server.crt", "dbvigil.crt"),
        ("server.key", "dbvigil.key"),
        ("ca.crt", "clients-ca.crt"),
        ("ca.crt", "dbvigil-ca.crt"),
        ("client.crt", "operator.crt"),
        ("client.key", "operator.key"),
    ] {
        std::fs::copy(pki.path(from), secrets.join(to)).unwrap();
    }
    // The example's hash is of "change-me".
    std::fs::write(secrets.join("dbvigil.password"), "change-me\n").unwrap();
    for file in ["web-config.yml", "http-client.yml"] {
        std::fs::copy(Path::new("examples/web").join(file), dir.path().join(file)).unwrap();
    }
    let web = dir.path().join("web-config.yml");
    promtool_accepts(&web);
    let e = TestExporter::start_with_web(dir.path(), &sqlite_config(dir.path()), Some(&web)).await;
    let url = format!("https://{}", e.addr);
    let d = dir.path().to_owned();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        cli(
            &d,
            &[
                "maintenance",
                "--url",
                &url,
                "--http.config.file",
                "http-client.yml",
                "status",
                "orders",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    e.stop().await;
}

/// Text shaped like a web configuration: the loader answers every one with a value or an
/// error naming a place in the file, never a panic. `PROPTEST_CASES` scales the run.
fn webish() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let token = prop_oneof![
        Just("tls_server_config:\n".to_owned()),
        Just("basic_auth_users:\n".to_owned()),
        Just("http_server_config:\n  headers:\n".to_owned()),
        Just("  cert_file: server.crt\n".to_owned()),
        Just("  key_file: server.key\n".to_owned()),
        Just("  client_ca_file: ca.crt\n".to_owned()),
        Just("  client_auth_type: ".to_owned()),
        Just("RequireAndVerifyClientCert\n".to_owned()),
        Just("  min_version: ".to_owned()),
        Just("  max_version: ".to_owned()),
        Just("TLS13\n".to_owned()),
        Just("  cipher_suites: [".to_owned()),
        Just("  curve_preferences: [X25519, ".to_owned()),
        Just("]\n".to_owned()),
        Just("  alice: ".to_owned()),
        Just("'$2b$04$".to_owned()),
        Just("    X-Frame-Options: ".to_owned()),
        Just("  cert: |\n    -----BEGIN CERTIFICATE-----\n".to_owned()),
        Just("  key: ".to_owned()),
        Just("  client_ca: ".to_owned()),
        Just("  client_allowed_sans: [".to_owned()),
        Just("basic_auth_excluded_paths:\n- ".to_owned()),
        Just("/-/ready\n".to_owned()),
        Just("rate_limit:\n".to_owned()),
        Just("  interval: ".to_owned()),
        Just("1.5s\n".to_owned()),
        Just("  burst: ".to_owned()),
        Just("&a ".to_owned()),
        Just("*a".to_owned()),
        "[ -~]{0,8}".prop_map(|s| s),
        any::<String>(),
    ];
    prop::collection::vec(token, 0..30).prop_map(|t| t.concat())
}

#[test]
fn the_web_config_loader_never_panics() {
    use proptest::test_runner::{Config, TestRunner};
    let dir = tempdir();
    let _pki = Pki::new(dir.path());
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let mut runner = TestRunner::new(Config::with_cases(cases));
    runner
        .run(&webish(), |text| {
            if let Err(e) = dbvigil::config::parse_web(&text, "web.yml", dir.path()) {
                let shown = e.to_string();
                proptest::prop_assert!(shown.starts_with("web.yml:"), "{shown}");
            }
            Ok(())
        })
        .unwrap();
}

/// A real Prometheus (Go's TLS and HTTP client) scrapes dbvigil over mutual TLS with basic
/// auth, configured the way README.md says; a job without the password gets 401.
#[tokio::test]
async fn prometheus_scrapes_over_mutual_tls_with_basic_auth() {
    if !have("prometheus", "prometheus") {
        return;
    }
    let dir = tempdir();
    let _pki = Pki::new(dir.path());
    let e = exporter(
        dir.path(),
        &format!(
            "{}basic_auth_users:\n  prometheus: '{}'\n",
            tls_section(
                "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
            ),
            hash(PASSWORD, 10)
        ),
    )
    .await;
    let d = dir.path().display();
    let job = |name: &str, auth: &str| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    scrape_interval: 1s\n    tls_config:\n      ca_file: {d}/ca.crt\n      cert_file: {d}/client.crt\n      key_file: {d}/client.key\n{auth}    static_configs:\n      - targets: ['{}']\n",
            e.addr
        )
    };
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n{}{}",
        job(
            "dbvigil",
            &format!("    basic_auth:\n      username: prometheus\n      password: '{PASSWORD}'\n")
        ),
        job("no-password", "")
    );
    let prom = common::monitoring::prometheus(dir.path(), &config).await;
    let up = |job: &'static str| {
        let addr = prom.addr;
        async move {
            common::monitoring::series(addr, &format!("up{{job=\"{job}\"}}"))
                .await
                .first()
                .and_then(|s| s["value"][1].as_str().map(str::to_owned))
        }
    };
    eventually(
        Duration::from_secs(30),
        "Prometheus scraped dbvigil over TLS",
        || async { (up("dbvigil").await.as_deref() == Some("1")).then_some(()) },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "the job without a password is down",
        || async { (up("no-password").await.as_deref() == Some("0")).then_some(()) },
    )
    .await;
    let samples = common::monitoring::series(prom.addr, "dbvigil_up{job=\"dbvigil\"}").await;
    assert_eq!(samples.len(), 1, "{samples:?}");
    drop(prom);
    e.stop().await;
}

/// `http_server_config.headers` are added to every answer and replace dbvigil's defaults;
/// an empty value removes the header.
#[tokio::test]
async fn configured_headers_replace_the_defaults_on_every_answer() {
    let dir = tempdir();
    let e = exporter(
        dir.path(),
        "http_server_config:\n  headers:\n    Strict-Transport-Security: max-age=31536000\n    X-Frame-Options: sameorigin\n    Content-Security-Policy: ''\n",
    )
    .await;
    for path in ["/", "/metrics", "/api/v1/targets", "/no-such-page"] {
        let r = common::request(e.addr, "GET", path, &[]).await;
        assert_eq!(
            r.header("strict-transport-security"),
            Some("max-age=31536000"),
            "{path}"
        );
        assert_eq!(r.header("x-frame-options"), Some("sameorigin"), "{path}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}: the other defaults stay"
        );
        assert_eq!(
            r.header("content-security-policy"),
            None,
            "{path}: an empty value removes the header"
        );
    }
    e.stop().await;
}

/// Keys newer than the exporter-toolkit in Debian's promtool 2.42, with the type its
/// message names: that promtool refuses a file with them, key by key.
const NEWER_KEYS: &[(&str, &str)] = &[
    ("rate_limit", "web.Config"),
    ("client_allowed_sans", "web.TLSConfig"),
    ("cert", "web.TLSConfig"),
    ("key", "web.TLSConfig"),
    ("client_ca", "web.TLSConfig"),
    ("basic_auth_excluded_paths", "web.Config"),
];

/// The newer keys of a YAML file: (line number, key, type promtool names).
fn newer_keys(yaml: &str) -> Vec<(usize, &'static str, &'static str)> {
    yaml.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let indent = line.len() - line.trim_start().len();
            let key = line.trim_start().split(':').next()?;
            NEWER_KEYS
                .iter()
                .find(|(k, ty)| *k == key && (indent == 0) == (*ty == "web.Config"))
                .map(|(k, ty)| (i + 1, *k, *ty))
        })
        .collect()
}

/// The file without the newer keys (and what is nested under them).
fn without_newer_keys(yaml: &str) -> String {
    let mut out = String::new();
    let mut skipping: Option<usize> = None;
    for (i, line) in yaml.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        if let Some(depth) = skipping {
            // A block sequence may sit at its key's own indent (`- /-/ready`).
            let item = indent == depth && line.trim_start().starts_with("- ");
            if line.trim().is_empty() || indent > depth || item {
                continue;
            }
            skipping = None;
        }
        if newer_keys(yaml).iter().any(|(n, _, _)| *n == i + 1) {
            skipping = Some(indent);
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `promtool check web-config` agrees with dbvigil on a file dbvigil loads: a promtool
/// that knows every key accepts it; Debian's 2.42 refuses exactly the keys its
/// exporter-toolkit predates, line by line, and accepts the rest of the file (when
/// `rest_alone` says the file still makes sense without them).
fn promtool_agrees(file: &Path, rest_alone: bool) {
    if !have("promtool", "prometheus") {
        return;
    }
    let check = |path: &Path| {
        let out = Command::new("promtool")
            .args(["check", "web-config"])
            .arg(path)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = check(file);
    if ok {
        return;
    }
    let yaml = std::fs::read_to_string(file).unwrap();
    let lines: String = newer_keys(&yaml)
        .iter()
        .map(|(n, k, ty)| format!("  line {n}: field {k} not found in type {ty}\n"))
        .collect();
    assert_eq!(
        text,
        format!(
            "{} FAILED: yaml: unmarshal errors:\n{lines}",
            file.display()
        ),
        "promtool refused {} for more than its older schema",
        file.display()
    );
    if rest_alone {
        let rest = file.with_extension("older.yml");
        std::fs::write(&rest, without_newer_keys(&yaml)).unwrap();
        let (ok, text) = check(&rest);
        assert!(
            ok,
            "promtool refused the rest of {}: {text}",
            file.display()
        );
    }
}

/// Client certificates from our CA, each with one kind of SAN (or one not on the list).
fn san_clients(pki: &Pki) {
    for (name, san) in [
        ("by-dns", "DNS:prometheus.example.com"),
        ("by-ip", "IP:10.0.0.7"),
        ("by-email", "email:ops@example.com"),
        ("by-uri", "URI:spiffe://example.com/prometheus"),
        ("elsewhere", "DNS:grafana.example.com,IP:10.0.0.8"),
    ] {
        pki.leaf(
            name,
            "ca",
            &format!("extendedKeyUsage=clientAuth\nsubjectAltName={san}"),
        );
    }
}

/// A fixture of tests/data/web/ copied next to the test's certificates.
fn fixture(dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    std::fs::copy(Path::new("tests/data/web").join(name), &to).unwrap();
    to
}

fn check_config(dir: &Path, file: &str) -> (i32, String, String) {
    cli(dir, &["check-config", "--web.config.file", file])
}

/// A fixture that `check-config` finds valid with `summary`, that promtool agrees with,
/// loaded by an exporter.
async fn serving(dir: &Path, name: &str, summary: &str) -> TestExporter {
    let web = fixture(dir, name);
    let (code, out, err) = check_config(dir, name);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(summary), "{out}");
    promtool_agrees(&web, true);
    TestExporter::start_with_web(dir, &sqlite_config(dir), Some(&web)).await
}

/// exporter-toolkit's own sample file loads: TLS, both users with `$2y$` hashes, and the
/// paths it excludes from basic auth answer without credentials while the rest ask.
#[tokio::test]
async fn the_exporter_toolkit_example_loads_and_serves() {
    let dir = tempdir();
    let pki = Pki::new(dir.path());
    let e = serving(
        dir.path(),
        "exporter-toolkit-example.yml",
        "valid web configuration: TLS, basic auth for 2 user(s) except on /-/healthy, /-/ready, no rate limit",
    )
    .await;
    let client = pki.client(BOTH, None);
    for path in ["/-/ready", "/-/healthy"] {
        let r = https(e.addr, &client, "GET", path, &[], "").await.unwrap();
        assert_eq!(r.status, 200, "{path} is excluded: {}", r.body);
    }
    for path in ["/metrics", "/-/ready/", "/api/v1/targets"] {
        let r = https(e.addr, &client, "GET", path, &[], "").await.unwrap();
        assert_eq!(r.status, 401, "{path} still asks: {}", r.body);
    }
    for (user, password) in [("alice", "scrape-me"), ("bob", "operate-me")] {
        let auth = basic(user, password);
        let r = https(
            e.addr,
            &client,
            "GET",
            "/metrics",
            &[("Authorization", &auth)],
            "",
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200, "{user}: {}", r.body);
    }
    e.stop().await;
}

/// Every key of the documented schema in one file: it loads, and each kind of SAN in
/// `client_allowed_sans` lets its client in while a certificate naming others is refused.
#[tokio::test]
async fn every_documented_key_loads_and_client_allowed_sans_match_each_kind() {
    let dir = tempdir();
    let pki = Pki::new(dir.path());
    san_clients(&pki);
    let e = serving(
        dir.path(),
        "every-key.yml",
        "TLS, basic auth for 1 user(s) except on /-/ready, at most 20",
    )
    .await;
    let auth = basic("alice", "scrape-me");
    for (cert, served) in [
        (Some("by-dns"), true),
        (Some("by-ip"), true),
        (Some("by-email"), true),
        (Some("by-uri"), true),
        (Some("elsewhere"), false),
        // From our CA, but with no SAN at all.
        (Some("client"), false),
        (None, false),
    ] {
        let r = https(
            e.addr,
            &pki.client(BOTH, cert),
            "GET",
            "/metrics",
            &[("Authorization", &auth)],
            "",
        )
        .await;
        let got = r.as_ref().is_ok_and(|r| r.status == 200);
        assert_eq!(got, served, "certificate {cert:?}: {r:?}");
        if let Ok(r) = r {
            assert_eq!(
                r.header("x-xss-protection"),
                Some("1; mode=block"),
                "{cert:?}"
            );
        }
    }
    e.stop().await;
}

/// The PEM text itself in `cert`, `key` and `client_ca`, instead of files.
#[tokio::test]
async fn inline_certificate_key_and_client_ca_serve_tls() {
    let dir = tempdir();
    let pki = Pki::new(dir.path());
    let mut yaml = std::fs::read_to_string("tests/data/web/inline-pem.yml").unwrap();
    for file in ["server.crt", "server.key", "ca.crt"] {
        let pem = std::fs::read_to_string(pki.path(file)).unwrap();
        let indented: String = pem.lines().map(|l| format!("    {l}\n")).collect();
        yaml = yaml.replace(&format!("    @{file}@\n"), &indented);
    }
    // Only PEM now: nothing read from a file.
    let web = dir.path().join("inline").join("web.yml");
    std::fs::create_dir_all(web.parent().unwrap()).unwrap();
    std::fs::write(&web, &yaml).unwrap();
    promtool_agrees(&web, false);
    let e = TestExporter::start_with_web(dir.path(), &sqlite_config(dir.path()), Some(&web)).await;
    // VerifyClientCertIfGiven with the inline CA: ours or none, not a stranger's.
    for (cert, served) in [
        (None, true),
        (Some("client"), true),
        (Some("stranger"), false),
    ] {
        let r = https(
            e.addr,
            &pki.client(BOTH, cert),
            "GET",
            "/-/healthy",
            &[],
            "",
        )
        .await;
        assert_eq!(
            r.as_ref().is_ok_and(|r| r.status == 200),
            served,
            "{cert:?}: {r:?}"
        );
    }
    e.stop().await;
    // A key that is not PEM is refused without showing it: it is a secret.
    let secret = "NOT-A-KEY-but-a-secret-all-the-same";
    let bad = yaml.replace(
        &std::fs::read_to_string(pki.path("server.key"))
            .unwrap()
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>(),
        &format!("    {secret}\n"),
    );
    // Where the key's text starts: the line under `key: |`.
    let line = bad.lines().position(|l| l.contains(secret)).unwrap() + 1;
    std::fs::write(&web, bad).unwrap();
    let (code, _, err) = check_config(dir.path(), "inline/web.yml");
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "inline/web.yml:{line}:5: key holds no private key dbvigil can read"
        )),
        "{err}"
    );
    assert!(!err.contains(secret), "the key reached the message: {err}");
}

/// A hardened node_exporter file: TLS 1.2+ with chosen suites and curves, mutual TLS
/// whose certificate must name Prometheus, basic auth, HSTS, a rate limit.
#[tokio::test]
async fn a_hardened_node_exporter_web_config_loads_and_holds() {
    let dir = tempdir();
    let pki = Pki::new(dir.path());
    san_clients(&pki);
    let e = serving(
        dir.path(),
        "node-exporter-hardened.yml",
        "TLS, basic auth for 1 user(s), at most 100 requests at once and one more every 50ms",
    )
    .await;
    let auth = basic("prometheus", "scrape-me");
    for versions in [
        &[&rustls::version::TLS12][..],
        &[&rustls::version::TLS13][..],
    ] {
        let r = https(
            e.addr,
            &pki.client(versions, Some("by-dns")),
            "GET",
            "/metrics",
            &[("Authorization", &auth)],
            "",
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200, "{versions:?}: {}", r.body);
        assert_eq!(
            r.header("strict-transport-security"),
            Some("max-age=63072000; includeSubDomains; preload")
        );
        assert_eq!(r.header("x-frame-options"), Some("deny"));
        assert!(Metrics::parse(&r.body).has("dbvigil_up"));
    }
    for cert in [Some("elsewhere"), Some("client"), None] {
        let r = https(
            e.addr,
            &pki.client(BOTH, cert),
            "GET",
            "/metrics",
            &[("Authorization", &auth)],
            "",
        )
        .await;
        // TLS 1.3 clients learn of the refusal after their side of the handshake, when
        // they read: an error either way, never an answer.
        assert!(r.is_err(), "{cert:?} was served: {r:?}");
    }
    // The right certificate without the password: basic auth still applies.
    let r = https(
        e.addr,
        &pki.client(BOTH, Some("by-dns")),
        "GET",
        "/metrics",
        &[],
        "",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 401);
    e.stop().await;
}

/// `rate_limit` is one bucket for every request, `/-/healthy` and wrong passwords
/// included, as in exporter-toolkit; `interval: 0` turns it off.
#[tokio::test]
async fn rate_limit_answers_429_once_the_burst_is_spent() {
    let dir = tempdir();
    let limited = |dir: &Path, yaml: &str| {
        let web = write_web(dir, yaml);
        promtool_agrees(&web, true);
        let config = sqlite_config(dir);
        let dir = dir.to_owned();
        async move { TestExporter::start_with_web(&dir, &config, Some(&web)).await }
    };
    let e = limited(dir.path(), "rate_limit:\n  interval: 1h\n  burst: 3\n").await;
    for path in ["/metrics", "/-/healthy", "/api/v1/targets"] {
        assert_eq!(
            common::request(e.addr, "GET", path, &[]).await.status,
            200,
            "{path}"
        );
    }
    for path in ["/metrics", "/-/healthy", "/no-such-page"] {
        let r = common::request(e.addr, "GET", path, &[]).await;
        assert_eq!(r.status, 429, "{path}: {}", r.body);
        assert_eq!(
            r.body,
            "Too Many Requests: rate_limit in the web configuration allows 3 requests at once and one more every 1h\n"
        );
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
    e.stop().await;
    // exporter-toolkit's "non-blocking" example: interval 0 is no limit, whatever the burst.
    let dir = tempdir();
    let e = limited(dir.path(), "rate_limit:\n  interval: 0\n  burst: 0\n").await;
    for _ in 0..10 {
        assert_eq!(e.get("/-/healthy").await.status, 200);
    }
    e.stop().await;
}

/// HTTP/2 is offered to TLS clients (ALPN) unless `http2: false`, and spoken.
#[tokio::test]
async fn http2_is_negotiated_over_tls_unless_turned_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempdir();
    let pki = Pki::new(dir.path());
    for (http2, want) in [
        ("", Some(&b"h2"[..])),
        (
            "http_server_config:\n  http2: false\n",
            Some(&b"http/1.1"[..]),
        ),
    ] {
        let e = exporter(dir.path(), &format!("{}{http2}", tls_section(""))).await;
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(pki.path("ca.crt")).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let tcp = tokio::net::TcpStream::connect(e.addr).await.unwrap();
        let mut tls = TlsConnector::from(Arc::new(config))
            .connect(ServerName::IpAddress(e.addr.ip().into()), tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), want, "{http2:?}");
        if want == Some(b"h2") {
            // The client preface and an empty SETTINGS frame; the server's first frame
            // is its own SETTINGS (type 4).
            tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
                .await
                .unwrap();
            let mut header = [0u8; 9];
            tls.read_exact(&mut header).await.unwrap();
            assert_eq!(header[3], 4, "not an HTTP/2 SETTINGS frame: {header:?}");
        }
        drop(tls);
        e.stop().await;
    }
}
