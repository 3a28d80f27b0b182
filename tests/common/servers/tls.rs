//! The test certificate authority and the copies of its server certificate each server
//! presents.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::LazyLock;

use super::SETUP_TIMEOUT;
use super::commands::run_logged;
use super::host::{chown, find_in, find_program, server_tempdir, tail};

/// The test process's certificate authority and the one server certificate it signed
/// (subject alternative names `IP:127.0.0.1` and `DNS:localhost`), made once per process
/// with the `openssl` command line. Every throwaway server (PostgreSQL, MariaDB,
/// PgBouncer) presents this certificate, so a client configured with `ca_file` =
/// [`TestCerts::ca_file`] can use `verify-full`. The files are removed when the process exits.
pub struct TestCerts {
    /// CA certificate (PEM), world-readable.
    pub ca_file: PathBuf,
    /// Server certificate (PEM), world-readable.
    pub cert_file: PathBuf,
    /// Server private key (PEM), readable by the test process only: servers get copies.
    pub key_file: PathBuf,
}

static CERTS: LazyLock<TestCerts> = LazyLock::new(make_certs);
static CERTS_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// The process-wide test certificates (made on first use). Panics when `openssl` is
/// missing or fails: TLS is not optional in this harness.
pub fn test_certs() -> &'static TestCerts {
    &CERTS
}

extern "C" fn remove_certs_dir() {
    if let Some(dir) = CERTS_DIR.get() {
        let _ = fs::remove_dir_all(dir);
    }
}

fn make_certs() -> TestCerts {
    let openssl = find_program("openssl")
        .or_else(|| find_in("openssl", [PathBuf::from("/usr/bin")]))
        .unwrap_or_else(|| panic!("`openssl` not found: the test servers need certificates"));
    let dir = server_tempdir("dbvigil-tls-").keep();
    let _ = CERTS_DIR.set(dir.clone());
    // SAFETY: registers a plain extern "C" function; it only touches a OnceLock.
    unsafe {
        libc::atexit(remove_certs_dir);
    }
    let p = |name: &str| dir.join(name);
    fs::write(
        p("server.ext"),
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n\
         basicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature, keyEncipherment\n\
         extendedKeyUsage = serverAuth\n",
    )
    .unwrap_or_else(|e| panic!("cannot write {}: {e}", p("server.ext").display()));
    let path = |name: &str| p(name).to_string_lossy().into_owned();
    let steps: [Vec<String>; 3] = [
        [
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "3650",
            "-subj",
            "/CN=dbvigil test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([path("ca.key"), "-out".into(), path("ca.pem")])
        .collect(),
        [
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([path("server.key"), "-out".into(), path("server.csr")])
        .collect(),
        ["x509", "-req", "-days", "3650", "-set_serial", "2", "-in"]
            .iter()
            .map(|s| s.to_string())
            .chain([
                path("server.csr"),
                "-CA".into(),
                path("ca.pem"),
                "-CAkey".into(),
                path("ca.key"),
                "-extfile".into(),
                path("server.ext"),
                "-out".into(),
                path("server.pem"),
            ])
            .collect(),
    ];
    for (i, args) in steps.iter().enumerate() {
        let mut cmd = Command::new(&openssl);
        cmd.args(args);
        let log = p(&format!("openssl-{i}.log"));
        run_logged(cmd, &log, SETUP_TIMEOUT)
            .unwrap_or_else(|e| panic!("openssl {args:?} failed: {e}\n{}", tail(&log)));
    }
    for (name, mode) in [
        ("ca.pem", 0o644),
        ("server.pem", 0o644),
        ("ca.key", 0o600),
        ("server.key", 0o600),
    ] {
        fs::set_permissions(p(name), fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", p(name).display()));
    }
    TestCerts {
        ca_file: p("ca.pem"),
        cert_file: p("server.pem"),
        key_file: p("server.key"),
    }
}

/// A server's own copies of the test CA, certificate and key in `dir` (`ca.pem`,
/// `server.crt`, `server.key` with mode 0600), owned by the server's user: PostgreSQL
/// refuses a key file that others can read or that it does not own.
#[derive(Clone)]
pub(crate) struct ServerTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub(crate) fn install_server_tls(dir: &Path, owner: Option<(u32, u32)>) -> ServerTls {
    let certs = test_certs();
    let tls = ServerTls {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
    };
    for (from, to, mode) in [
        (&certs.ca_file, &tls.ca, 0o644),
        (&certs.cert_file, &tls.cert, 0o644),
        (&certs.key_file, &tls.key, 0o600),
    ] {
        fs::copy(from, to)
            .unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", from.display(), to.display()));
        fs::set_permissions(to, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", to.display()));
        if let Some(ids) = owner {
            chown(to, ids).unwrap_or_else(|e| panic!("cannot chown {}: {e}", to.display()));
        }
    }
    tls
}
