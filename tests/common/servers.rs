//! Throwaway database servers for integration tests, started from the machine's own
//! binaries (no Docker, no mocks), each on a free port in its own temporary directory.
//!
//! Tests can stop, restart, freeze (SIGSTOP) and thaw (SIGCONT) them. Everything here is
//! plain blocking std code, so it can be called from sync tests and from
//! `#[tokio::test]` tests alike (it blocks the calling thread for at most a few seconds).
//!
//! When a needed binary is missing, `start()` prints `SKIPPED: <reason>` and returns
//! `None`, unless the environment variable `CI` is `"true"`, in which case it panics: CI
//! must install the binaries.
//!
//! Linux only (process trees are read from /proc). When the tests run as root, the
//! servers run as the `postgres` / `mysql` system users.
#![allow(dead_code)]

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a server may take to accept connections after being launched.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `stop()` waits for the server process to exit before SIGKILLing it.
pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The same, in `Drop` (which must never hang for long).
pub(crate) const DROP_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a SIGKILLed process gets to be reaped.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline for one-shot commands: initdb, mariadb-install-db.
pub(crate) const SETUP_TIMEOUT: Duration = Duration::from_secs(120);
/// Deadline for `psql()` / `sql()` (a query against a frozen server would otherwise hang).
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `freeze()` waits for every process to be reported as stopped.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);
/// Polling interval for readiness and exit.
pub(crate) const POLL: Duration = Duration::from_millis(25);
/// Launch attempts when the chosen port was taken between `free_port()` and the bind.
const START_ATTEMPTS: usize = 3;
/// Lines of a server log quoted in panic messages.
const LOG_TAIL_LINES: usize = 40;

// ---------------------------------------------------------------------------------------
// Public helpers
// ---------------------------------------------------------------------------------------

/// Ports already handed out by `free_port()` in this process; never handed out twice.
static HANDED_OUT: LazyLock<Mutex<HashSet<u16>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

/// A TCP port on 127.0.0.1 that nothing listened on a moment ago and that no other caller
/// in this process has been given.
pub fn free_port() -> u16 {
    let mut handed_out = lock(&HANDED_OUT);
    for _ in 0..1000 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("cannot read the address of a listener: {e}"))
            .port();
        drop(listener);
        if handed_out.insert(port) {
            return port;
        }
    }
    panic!("no unused free port found in 1000 tries");
}

/// True when the environment variable `CI` is exactly `"true"`.
pub fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Called when a test cannot run here (typically a missing binary). Under `CI=true` this
/// panics with `reason` (CI must provide everything); otherwise it prints
/// `SKIPPED: <reason>` to stderr and returns `true`, meaning "skip". It never returns
/// `false`; the `bool` lets callers write `if missing && skip_or_fail(..) { return; }`.
pub fn skip_or_fail(reason: &str) -> bool {
    if ci() {
        panic!("{reason} (CI=true, so this is a failure, not a skip)");
    }
    eprintln!("SKIPPED: {reason}");
    true
}

// ---------------------------------------------------------------------------------------
// TLS material
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------

/// Password of the `replicator` role every [`PgServer`] has (REPLICATION, SCRAM over TLS).
pub const PG_REPLICATOR_PASSWORD: &str = "replicator-pw";

/// A throwaway PostgreSQL cluster: `initdb -U postgres`, listening on 127.0.0.1 at its own
/// port and on a Unix socket in its own directory, with fsync off and TLS on (the
/// [`test_certs`] certificate).
///
/// pg_hba.conf, production-shaped: Unix-socket logins are trusted (the harness's own
/// psql); over TCP the superuser `postgres` and members of the group role `trusted` log in
/// without a password, with or without TLS (tests that speak the wire protocol by hand);
/// every other role, `replicator` for streaming replication included, must use TLS and
/// give its password (SCRAM), so that plain logins and wrong passwords are really refused.
pub struct PgServer {
    daemon: Daemon,
    port: u16,
    /// Directory holding `initdb` and `postgres`.
    bindir: PathBuf,
    psql: PathBuf,
    pg_isready: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    tls: ServerTls,
    /// Launch with `ssl=on` and the harness certificate (false: PostgreSQL's defaults).
    ssl: bool,
    /// (uid, gid) of the `postgres` user when we run as root.
    run_as: Option<(u32, u32)>,
    /// Declared last: removed after the server has been stopped.
    dir: TempDir,
}

const PG_HBA: &str = "local all all trust\n\
                      local replication all trust\n\
                      host all postgres,+trusted 127.0.0.1/32 trust\n\
                      hostssl replication replicator 127.0.0.1/32 scram-sha-256\n\
                      hostssl all all 127.0.0.1/32 scram-sha-256\n";

impl PgServer {
    /// Creates a cluster in a new temporary directory, starts it on a free port and
    /// waits until it accepts connections. `None` (after printing `SKIPPED: ...`) when
    /// the PostgreSQL binaries are missing and `CI` is not `"true"`.
    pub fn start() -> Option<PgServer> {
        PgServer::start_with_ssl(true)
    }

    /// [`PgServer::start`] without any `ssl` setting on the command line, so the server
    /// offers no TLS until a test turns it on (`ALTER SYSTEM SET ssl = on` with its own
    /// `server.crt`/`server.key` in the data directory). pg_hba.conf is the same: password
    /// roles can log in only once TLS is on.
    pub fn start_without_tls() -> Option<PgServer> {
        PgServer::start_with_ssl(false)
    }

    fn start_with_ssl(ssl: bool) -> Option<PgServer> {
        let mut server = PgServer::prepare("PostgreSQL")?;
        server.ssl = ssl;
        fs::set_permissions(&server.data_dir, fs::Permissions::from_mode(0o700))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", server.data_dir.display()));

        let mut initdb = Command::new(server.bindir.join("initdb"));
        initdb.arg("-D").arg(&server.data_dir).args([
            "--auth=trust",
            "-U",
            "postgres",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        as_user(&mut initdb, server.run_as);
        let initdb_log = server.dir.path().join("initdb.log");
        run_logged(initdb, &initdb_log, SETUP_TIMEOUT).unwrap_or_else(|e| {
            panic!(
                "initdb failed: {e}\n--- {} ---\n{}",
                initdb_log.display(),
                tail(&initdb_log)
            )
        });
        fs::write(server.data_dir.join("pg_hba.conf"), PG_HBA)
            .unwrap_or_else(|e| panic!("cannot write pg_hba.conf: {e}"));

        // If this panics, Drop stops whatever was launched and removes the directory.
        server.launch_on_free_port();
        server.psql(&format!(
            "CREATE ROLE trusted NOLOGIN; \
             CREATE ROLE replicator LOGIN REPLICATION PASSWORD {}",
            sql_literal(PG_REPLICATOR_PASSWORD)
        ));
        Some(server)
    }

    /// A hot standby of `primary`, streaming from it over TLS as `replicator`: made with
    /// `pg_basebackup -R -X stream` (so it is a copy of the primary, roles and pg_hba.conf
    /// included), started on its own free port, and returned once it accepts connections.
    /// See [`PgServer::wait_replay_caught_up`], [`PgServer::replay_lag_bytes`] and
    /// [`PgServer::promote`].
    pub fn start_standby_of(primary: &PgServer) -> PgServer {
        let mut server = PgServer::prepare("PostgreSQL standby")
            .expect("the primary's binaries are installed, so the standby's are too");
        let mut backup = Command::new(server.bindir.join("pg_basebackup"));
        backup
            .arg("-D")
            .arg(&server.data_dir)
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync", "-d"])
            .arg(format!(
                "host=127.0.0.1 port={} user=replicator sslmode=verify-full sslrootcert={} \
                 connect_timeout=10",
                primary.port,
                server.tls.ca.display(),
            ));
        clear_pg_env(&mut backup);
        // libpq reads ~/.postgresql/postgresql.crt: not root's home as the postgres user.
        backup
            .env("PGPASSWORD", PG_REPLICATOR_PASSWORD)
            .env("HOME", server.dir.path());
        as_user(&mut backup, server.run_as);
        let log = server.dir.path().join("pg_basebackup.log");
        run_logged(backup, &log, SETUP_TIMEOUT).unwrap_or_else(|e| {
            panic!(
                "pg_basebackup from port {} failed: {e}\n--- {} ---\n{}",
                primary.port,
                log.display(),
                tail(&log)
            )
        });
        server.launch_on_free_port();
        server
    }

    /// Finds the binaries and lays out a temporary directory (data and socket
    /// directories owned by the server's user, TLS files); launches nothing.
    fn prepare(name: &'static str) -> Option<PgServer> {
        let Some(bindir) = pg_bindir() else {
            skip_or_fail(
                "PostgreSQL server binaries (initdb, postgres) not found under \
                 /usr/lib/postgresql/*/bin, /usr/pgsql-*/bin or PATH",
            );
            return None;
        };
        let client = |name: &str| {
            let local = bindir.join(name);
            if is_executable(&local) {
                Some(local)
            } else {
                find_program(name)
            }
        };
        let (Some(psql), Some(pg_isready)) = (client("psql"), client("pg_isready")) else {
            skip_or_fail("PostgreSQL client binaries (psql, pg_isready) not found");
            return None;
        };
        let run_as = if is_root() {
            match user_ids("postgres") {
                Some(ids) => Some(ids),
                None => {
                    skip_or_fail(
                        "running as root, but there is no `postgres` user to run PostgreSQL as",
                    );
                    return None;
                }
            }
        } else {
            None
        };

        let dir = server_tempdir("dbvigil-pg-");
        let data_dir = dir.path().join("data");
        let socket_dir = dir.path().join("sock");
        for d in [&data_dir, &socket_dir] {
            fs::create_dir(d).unwrap_or_else(|e| panic!("cannot create {}: {e}", d.display()));
            if let Some(ids) = run_as {
                chown(d, ids).unwrap_or_else(|e| panic!("cannot chown {}: {e}", d.display()));
            }
        }
        fs::set_permissions(&data_dir, fs::Permissions::from_mode(0o700))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", data_dir.display()));
        let tls = install_server_tls(dir.path(), run_as);
        let log = dir.path().join("postgres.log");
        Some(PgServer {
            daemon: Daemon::new(name, libc::SIGINT, log),
            port: 0,
            bindir,
            psql,
            pg_isready,
            data_dir,
            socket_dir,
            tls,
            ssl: true,
            run_as,
            dir,
        })
    }

    /// True while the server is a standby (`pg_is_in_recovery()`).
    pub fn is_in_recovery(&self) -> bool {
        self.psql("select pg_is_in_recovery()") == "t"
    }

    /// Waits until this standby has replayed everything `primary` had written when the
    /// call began (`pg_last_wal_replay_lsn() >= pg_current_wal_lsn()` of the primary);
    /// panics with both positions after READY_TIMEOUT.
    pub fn wait_replay_caught_up(&self, primary: &PgServer) {
        let target = primary.psql("select pg_current_wal_lsn()");
        let start = Instant::now();
        loop {
            let query = format!(
                "select pg_last_wal_replay_lsn() >= {}::pg_lsn, pg_last_wal_replay_lsn()",
                sql_literal(&target)
            );
            let out = self.psql(&query);
            if out.starts_with("t|") {
                return;
            }
            if start.elapsed() > READY_TIMEOUT {
                panic!(
                    "standby on port {} has not replayed up to {target} within \
                     {READY_TIMEOUT:?} (replayed: {out})\n{}",
                    self.port,
                    self.daemon.log_tail()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// Bytes of WAL this standby has still to replay compared with `primary`'s current
    /// write position (0 when caught up).
    pub fn replay_lag_bytes(&self, primary: &PgServer) -> i64 {
        let primary_lsn = primary.psql("select pg_current_wal_lsn()");
        let out = self.psql(&format!(
            "select greatest(0, pg_wal_lsn_diff({}::pg_lsn, pg_last_wal_replay_lsn()))::bigint",
            sql_literal(&primary_lsn)
        ));
        out.parse()
            .unwrap_or_else(|e| panic!("unexpected lag {out:?}: {e}"))
    }

    /// Promotes this standby (`pg_promote(wait => true)`): returns once it has left
    /// recovery and accepts writes. Panics when it is not a standby or does not finish.
    pub fn promote(&self) {
        let out = self.psql("select pg_promote(true, 60)");
        assert_eq!(out, "t", "pg_promote on port {} did not finish", self.port);
    }

    /// This server's copy of the CA that signed its certificate.
    pub fn ca_file(&self) -> &Path {
        &self.tls.ca
    }

    /// The psql binary this server's harness uses.
    pub fn psql_program(&self) -> &Path {
        &self.psql
    }

    /// psql as superuser `postgres` on `database` over the Unix socket, with no SQL yet:
    /// for sessions a test keeps open on stdin, or scripts given with `-f`.
    pub fn psql_command(&self, database: &str) -> Command {
        let mut cmd = Command::new(&self.psql);
        cmd.args(["-X", "-q", "-h"]).arg(&self.socket_dir).args([
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            "-d",
            database,
        ]);
        clear_pg_env(&mut cmd);
        cmd
    }

    /// Runs psql over TCP with a libpq connection string (`host=127.0.0.1 port=...
    /// sslmode=...`), `password` in PGPASSWORD; `Ok(stdout)` (trimmed, `-A -t`) or
    /// `Err(stderr)` when psql fails. For login tests: the server's rules apply as for any
    /// client.
    pub fn psql_conninfo(
        &self,
        conninfo: &str,
        password: Option<&str>,
        sql: &str,
    ) -> Result<String, String> {
        psql_with(&self.psql, conninfo, password, sql)
    }

    /// The TCP port on 127.0.0.1 (stays the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://user[:password]@127.0.0.1:PORT/database` (components percent-encoded).
    pub fn url(&self, user: &str, password: Option<&str>, database: &str) -> String {
        db_url("postgres", user, password, self.port, database)
    }

    /// Runs `sql` (one or more statements, as a script) with psql as superuser `postgres`
    /// on database `postgres` over the Unix socket, with `-X -A -t -q -v ON_ERROR_STOP=1`.
    /// Returns the trimmed stdout (rows, `|`-separated; no command tags). Panics with
    /// stderr when psql fails.
    pub fn psql(&self, sql: &str) -> String {
        let mut cmd = Command::new(&self.psql);
        cmd.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.socket_dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-f",
                "-",
            ])
            .env("PGCONNECT_TIMEOUT", "10");
        clear_pg_env(&mut cmd);
        let out = run_client(cmd, sql, CLIENT_TIMEOUT).unwrap_or_else(|e| {
            panic!("psql on port {} failed to run: {e}\nSQL: {sql}", self.port)
        });
        if !out.status.success() {
            panic!(
                "psql on port {} failed ({}):\nSQL: {sql}\nstderr: {}",
                self.port,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Fast shutdown (SIGINT to the postmaster, after thawing it if frozen); returns once
    /// the postmaster has exited. SIGKILLs everything and panics after 30 s.
    pub fn stop(&mut self) {
        if let Err(e) = self.daemon.stop(STOP_TIMEOUT) {
            panic!("{e}\n{}", self.daemon.log_tail());
        }
    }

    /// Starts the stopped server again with the same data directory and port, and waits
    /// until it accepts connections.
    pub fn start_again(&mut self) {
        assert!(
            !self.daemon.is_running(),
            "start_again: PostgreSQL on port {} is still running",
            self.port
        );
        self.launch().unwrap_or_else(|e| panic!("{e}"));
    }

    /// `stop()` then `start_again()`.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// SIGSTOPs the postmaster and all of its descendants (backends, checkpointer,
    /// walwriter, ...), and returns once the kernel reports them all stopped. New TCP
    /// connections still complete the handshake, but nothing answers.
    pub fn freeze(&self) {
        self.daemon.freeze();
    }

    /// SIGCONTs every process frozen by `freeze()` (and any descendant of the postmaster).
    pub fn thaw(&self) {
        self.daemon.thaw();
    }

    /// PID of the postmaster (of the latest launch; it may have exited since).
    pub fn postmaster_pid(&self) -> i32 {
        self.daemon.pid
    }

    /// Number of client backends of `user`, from pg_stat_activity.
    pub fn connection_count(&self, user: &str) -> i64 {
        let out = self.psql(&format!(
            "select count(*) from pg_stat_activity \
             where usename = {} and backend_type = 'client backend'",
            sql_literal(user)
        ));
        out.parse()
            .unwrap_or_else(|e| panic!("unexpected pg_stat_activity count {out:?}: {e}"))
    }

    /// Launches on a new free port, retrying with another port when the chosen one was
    /// taken in the meantime.
    fn launch_on_free_port(&mut self) {
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            self.port = free_port();
            match self.launch() {
                Ok(()) => return,
                Err(e) if e.contains("Address already in use") => last = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("{last}");
    }

    fn launch(&mut self) -> Result<(), String> {
        let mut cmd = Command::new(self.bindir.join("postgres"));
        cmd.arg("-D")
            .arg(&self.data_dir)
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.socket_dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "synchronous_commit=off",
            ]);
        if self.ssl {
            cmd.args(["-c", "ssl=on", "-c"])
                .arg(format!("ssl_cert_file={}", self.tls.cert.display()))
                .arg("-c")
                .arg(format!("ssl_key_file={}", self.tls.key.display()));
        }
        as_user(&mut cmd, self.run_as);
        // A standby's walreceiver is a libpq client that reads ~/.postgresql/: not root's.
        cmd.env("HOME", self.dir.path());
        self.daemon.launch(cmd);
        let (pg_isready, port) = (&self.pg_isready, self.port);
        self.daemon
            .wait_ready(|| pg_accepting(pg_isready, port))
            .map_err(|e| format!("PostgreSQL on port {port}: {e}"))
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // Thaws first, SIGINT, then SIGKILL for the whole process tree; ignores errors.
        let _ = self.daemon.stop(DROP_STOP_TIMEOUT);
    }
}

/// The bin directory of the highest PostgreSQL version installed (Debian/Ubuntu
/// /usr/lib/postgresql/N/bin, RHEL /usr/pgsql-N/bin), else the directory of `initdb` in
/// PATH, else `pg_config --bindir`.
fn pg_bindir() -> Option<PathBuf> {
    let has_server =
        |dir: &Path| is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres"));
    let mut versioned: Vec<(Vec<u32>, PathBuf)> = Vec::new();
    if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            versioned.push((version_key(&name), e.path().join("bin")));
        }
    }
    if let Ok(entries) = fs::read_dir("/usr") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(v) = name.strip_prefix("pgsql-") {
                versioned.push((version_key(v), e.path().join("bin")));
            }
        }
    }
    versioned.sort();
    if let Some((_, dir)) = versioned.into_iter().rev().find(|(_, d)| has_server(d)) {
        return Some(dir);
    }
    if let Some(dir) = find_program("initdb").and_then(|p| p.parent().map(Path::to_path_buf)) {
        if has_server(&dir) {
            return Some(dir);
        }
    }
    let out = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && has_server(&dir)).then_some(dir)
}

fn version_key(s: &str) -> Vec<u32> {
    s.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

fn pg_accepting(pg_isready: &Path, port: u16) -> bool {
    let mut cmd = Command::new(pg_isready);
    cmd.args([
        "-q",
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-U",
        "postgres",
        "-d",
        "postgres",
        "-t",
        "2",
    ]);
    clear_pg_env(&mut cmd);
    quiet_status(cmd)
}

/// psql over TCP with a connection string; see [`PgServer::psql_conninfo`].
pub(crate) fn psql_with(
    psql: &Path,
    conninfo: &str,
    password: Option<&str>,
    sql: &str,
) -> Result<String, String> {
    let mut cmd = Command::new(psql);
    cmd.args([
        "-X",
        "-A",
        "-t",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        conninfo,
        "-f",
        "-",
    ])
    .env("PGCONNECT_TIMEOUT", "10");
    clear_pg_env(&mut cmd);
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    let out = run_client(cmd, sql, CLIENT_TIMEOUT).map_err(|e| format!("psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

pub(crate) fn clear_pg_env(cmd: &mut Command) {
    for var in [
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGPASSWORD",
        "PGPASSFILE",
        "PGSERVICE",
        "PGSERVICEFILE",
        "PGOPTIONS",
        "PGSSLMODE",
        "PGREQUIRESSL",
        "PGTARGETSESSIONATTRS",
    ] {
        cmd.env_remove(var);
    }
}

// ---------------------------------------------------------------------------------------
// MariaDB
// ---------------------------------------------------------------------------------------

/// A throwaway MariaDB server: `mariadb-install-db` into a temporary directory, root
/// without password, listening on 127.0.0.1 at its own port and on a Unix socket, with
/// `--skip-name-resolve` (create users for both 'u'@'127.0.0.1' and 'u'@'localhost') and
/// TLS on (the [`test_certs`] certificate; create users `REQUIRE SSL` to enforce it).
///
/// [`MariaDbServer::start_primary`] adds a binary log, and
/// [`MariaDbServer::start_replica_of`] a read-only replica replicating from it over TLS.
pub struct MariaDbServer {
    daemon: Daemon,
    port: u16,
    bins: MariaDbBins,
    tls: ServerTls,
    /// Options of the topology role (server id, binary log, read_only), after the rest.
    role_options: Vec<String>,
    data_dir: PathBuf,
    socket: PathBuf,
    pid_file: PathBuf,
    tmp_dir: PathBuf,
    /// Pass `--user=mysql` (we run as root).
    as_mysql: bool,
    /// Declared last: removed after the server has been stopped.
    dir: TempDir,
}

struct MariaDbBins {
    server: PathBuf,
    install_db: PathBuf,
    client: PathBuf,
    admin: PathBuf,
}

/// Password of the replication user `repl` of a [`MariaDbServer::start_primary`] server.
pub const MARIADB_REPL_PASSWORD: &str = "repl-pw";

/// Options for a fast, small server. `--no-defaults` must come first.
const MARIADB_SPEED_OPTIONS: &[&str] = &[
    "--innodb-buffer-pool-size=32M",
    "--innodb-log-file-size=8M",
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-buffer-pool-dump-at-shutdown=OFF",
    "--innodb-buffer-pool-load-at-startup=OFF",
    "--skip-log-bin",
];

impl MariaDbServer {
    /// Installs a data directory in a new temporary directory, starts mariadbd on a free
    /// port and waits until it accepts connections. `None` (after printing
    /// `SKIPPED: ...`) when the MariaDB binaries are missing and `CI` is not `"true"`.
    pub fn start() -> Option<MariaDbServer> {
        MariaDbServer::start_with(Vec::new())
    }

    /// [`MariaDbServer::start`] with a binary log (`--log-bin --server-id=1`, row format)
    /// and a user `repl` (password [`MARIADB_REPL_PASSWORD`], REPLICATION SLAVE,
    /// `REQUIRE SSL`) for replicas.
    pub fn start_primary() -> Option<MariaDbServer> {
        let server = MariaDbServer::start_with(
            [
                "--log-bin=mariadb-bin",
                "--server-id=1",
                "--binlog-format=ROW",
            ]
            .map(String::from)
            .to_vec(),
        )?;
        let pw = sql_literal(MARIADB_REPL_PASSWORD);
        server.sql(&format!(
            "CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY {pw} REQUIRE SSL; \
             GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';"
        ));
        Some(server)
    }

    /// A new server replicating from `primary` (made with [`MariaDbServer::start_primary`])
    /// with its own server id, `read_only=ON`, over TLS verified against the test CA
    /// (`MASTER_SSL_VERIFY_SERVER_CERT=1`), from the start of the primary's binary log by
    /// GTID (`MASTER_USE_GTID=slave_pos`). Returns once both replication threads run.
    pub fn start_replica_of(primary: &MariaDbServer) -> MariaDbServer {
        assert_eq!(
            primary.sql("select @@log_bin"),
            "1",
            "start_replica_of: the primary on port {} has no binary log (use start_primary)",
            primary.port
        );
        static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(2);
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let server = MariaDbServer::start_with(vec![
            format!("--server-id={id}"),
            "--read-only".into(),
            "--relay-log=relay-bin".into(),
        ])
        .expect("the primary's binaries are installed, so the replica's are too");
        server.sql(&format!(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='repl', \
             MASTER_PASSWORD={}, MASTER_SSL=1, MASTER_SSL_CA={}, \
             MASTER_SSL_VERIFY_SERVER_CERT=1, MASTER_CONNECT_RETRY=1, \
             MASTER_USE_GTID=slave_pos; START SLAVE;",
            primary.port,
            sql_literal(MARIADB_REPL_PASSWORD),
            sql_literal(&server.tls.ca.to_string_lossy()),
        ));
        let start = Instant::now();
        loop {
            let status = server.replica_status();
            let field = |k: &str| status.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            if field("Slave_IO_Running") == Some("Yes") && field("Slave_SQL_Running") == Some("Yes")
            {
                break;
            }
            if start.elapsed() > READY_TIMEOUT {
                panic!(
                    "replica on port {} did not start replicating from port {} within \
                     {READY_TIMEOUT:?}: {status:?}",
                    server.port, primary.port
                );
            }
            thread::sleep(POLL);
        }
        server
    }

    /// `SHOW SLAVE STATUS` as (column, value) pairs; empty when not a replica.
    pub fn replica_status(&self) -> Vec<(String, String)> {
        let out = self.client(&["-B"], "SHOW SLAVE STATUS");
        let mut lines = out.lines();
        match (lines.next(), lines.next()) {
            (Some(head), Some(values)) => head
                .split('\t')
                .map(String::from)
                .zip(values.split('\t').map(String::from))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// `Seconds_Behind_Master` of this replica (`None` when NULL: not replicating).
    pub fn seconds_behind_master(&self) -> Option<i64> {
        self.replica_status()
            .into_iter()
            .find(|(k, _)| k == "Seconds_Behind_Master")
            .and_then(|(_, v)| v.parse().ok())
    }

    /// Waits until this replica has applied every transaction in `primary`'s binary log
    /// at the time of the call (`MASTER_GTID_WAIT(@@gtid_binlog_pos of the primary)`);
    /// panics with the replica status after READY_TIMEOUT.
    pub fn wait_caught_up(&self, primary: &MariaDbServer) {
        let pos = primary.sql("select @@gtid_binlog_pos");
        let out = self.sql(&format!(
            "select master_gtid_wait({}, {})",
            sql_literal(&pos),
            READY_TIMEOUT.as_secs()
        ));
        assert_eq!(
            out,
            "0",
            "replica on port {} did not reach GTID {pos} of port {} within {READY_TIMEOUT:?}: {:?}",
            self.port,
            primary.port,
            self.replica_status()
        );
    }

    /// This server's copy of the CA that signed its certificate.
    pub fn ca_file(&self) -> &Path {
        &self.tls.ca
    }

    /// Runs the `mariadb` client over TCP to 127.0.0.1 at `port` as `user` with extra
    /// client `args` (e.g. `--ssl`, `--ssl-verify-server-cert`, `--skip-ssl`) in batch mode;
    /// `Ok(stdout)` or `Err(stderr)`. For login tests: the server's rules apply.
    pub fn client_tcp(
        &self,
        user: &str,
        password: &str,
        args: &[&str],
        sql: &str,
    ) -> Result<String, String> {
        let mut cmd = Command::new(&self.bins.client);
        cmd.arg("--no-defaults")
            .args([
                "--protocol=TCP",
                "-h",
                "127.0.0.1",
                "-P",
                &self.port.to_string(),
            ])
            .arg(format!("--user={user}"))
            .arg(format!("--password={password}"))
            .args(["-N", "-B", "--connect-timeout=10"])
            .args(args);
        clear_mysql_env(&mut cmd);
        let out = run_client(cmd, sql, CLIENT_TIMEOUT).map_err(|e| format!("mariadb: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    fn start_with(role_options: Vec<String>) -> Option<MariaDbServer> {
        let extra = [
            "/usr/sbin",
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/bin",
            "/usr/local/mysql/bin",
        ];
        let find = |name: &str| {
            find_program(name).or_else(|| find_in(name, extra.iter().map(PathBuf::from)))
        };
        let (Some(server), Some(install_db), Some(client), Some(admin)) = (
            find("mariadbd"),
            find("mariadb-install-db"),
            find("mariadb"),
            find("mariadb-admin"),
        ) else {
            skip_or_fail(
                "MariaDB binaries (mariadbd, mariadb-install-db, mariadb, mariadb-admin) not found",
            );
            return None;
        };
        let bins = MariaDbBins {
            server,
            install_db,
            client,
            admin,
        };
        let mysql_ids = if is_root() {
            match user_ids("mysql") {
                Some(ids) => Some(ids),
                None => {
                    skip_or_fail("running as root, but there is no `mysql` user to run MariaDB as");
                    return None;
                }
            }
        } else {
            None
        };

        let dir = server_tempdir("dbvigil-maria-");
        let data_dir = dir.path().join("data");
        let run_dir = dir.path().join("run");
        // Its own tmpdir: concurrent servers (and bootstraps) sharing /tmp trip over each
        // other's temporary table files.
        let tmp_dir = dir.path().join("tmp");
        for d in [&data_dir, &run_dir, &tmp_dir] {
            fs::create_dir(d).unwrap_or_else(|e| panic!("cannot create {}: {e}", d.display()));
            if let Some(ids) = mysql_ids {
                chown(d, ids).unwrap_or_else(|e| panic!("cannot chown {}: {e}", d.display()));
            }
        }

        let mut install = Command::new(&bins.install_db);
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data_dir.display()))
            .arg(format!("--tmpdir={}", tmp_dir.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .args(MARIADB_SPEED_OPTIONS);
        if mysql_ids.is_some() {
            install.arg("--user=mysql");
        }
        let install_log = dir.path().join("install-db.log");
        run_logged(install, &install_log, SETUP_TIMEOUT).unwrap_or_else(|e| {
            panic!(
                "mariadb-install-db failed: {e}\n--- {} ---\n{}",
                install_log.display(),
                tail(&install_log)
            )
        });
        if let Some(ids) = mysql_ids {
            chown_recursive(&data_dir, ids)
                .unwrap_or_else(|e| panic!("cannot chown {}: {e}", data_dir.display()));
        }

        let tls = install_server_tls(dir.path(), mysql_ids);
        let log = dir.path().join("mariadbd.log");
        let mut server = MariaDbServer {
            daemon: Daemon::new("MariaDB", libc::SIGTERM, log),
            port: 0,
            bins,
            tls,
            role_options,
            data_dir,
            socket: run_dir.join("mariadbd.sock"),
            tmp_dir,
            pid_file: run_dir.join("mariadbd.pid"),
            as_mysql: mysql_ids.is_some(),
            dir,
        };
        server.launch_on_free_port();
        Some(server)
    }

    /// The TCP port on 127.0.0.1 (stays the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mysql://user[:password]@127.0.0.1:PORT/database` (components percent-encoded).
    pub fn url(&self, user: &str, password: Option<&str>, database: &str) -> String {
        db_url("mysql", user, password, self.port, database)
    }

    /// Runs `sql` (one or more statements) as root over the Unix socket in batch mode
    /// (`-N -B`: tab-separated rows, no column names). Returns the trimmed stdout. Panics
    /// with stderr when the client fails.
    pub fn sql(&self, sql: &str) -> String {
        self.client(&["-N", "-B"], sql)
    }

    /// The `mariadb` client as root over the Unix socket with extra `args`, with no SQL
    /// yet: for sessions a test keeps open on stdin.
    pub fn client_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bins.client);
        cmd.arg("--no-defaults")
            .arg("-uroot")
            .arg(format!("--socket={}", self.socket.display()))
            .args(args);
        clear_mysql_env(&mut cmd);
        cmd
    }

    fn client(&self, args: &[&str], sql: &str) -> String {
        let mut cmd = Command::new(&self.bins.client);
        cmd.arg("--no-defaults")
            .arg("-uroot")
            .arg(format!("--socket={}", self.socket.display()))
            .arg("--connect-timeout=10")
            .args(args);
        clear_mysql_env(&mut cmd);
        let out = run_client(cmd, sql, CLIENT_TIMEOUT).unwrap_or_else(|e| {
            panic!(
                "mariadb client on port {} failed to run: {e}\nSQL: {sql}",
                self.port
            )
        });
        if !out.status.success() {
            panic!(
                "mariadb client on port {} failed ({}):\nSQL: {sql}\nstderr: {}",
                self.port,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Normal shutdown (SIGTERM to mariadbd, after thawing it if frozen); returns once the
    /// process has exited. SIGKILLs it and panics after 30 s.
    pub fn stop(&mut self) {
        if let Err(e) = self.daemon.stop(STOP_TIMEOUT) {
            panic!("{e}\n{}", self.daemon.log_tail());
        }
    }

    /// Starts the stopped server again with the same data directory and port, and waits
    /// until it accepts connections.
    pub fn start_again(&mut self) {
        assert!(
            !self.daemon.is_running(),
            "start_again: MariaDB on port {} is still running",
            self.port
        );
        self.launch().unwrap_or_else(|e| panic!("{e}"));
    }

    /// `stop()` then `start_again()`.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// SIGSTOPs mariadbd and returns once the kernel reports all its threads stopped. New
    /// TCP connections still complete the handshake, but no greeting is sent.
    pub fn freeze(&self) {
        self.daemon.freeze();
    }

    /// SIGCONTs mariadbd.
    pub fn thaw(&self) {
        self.daemon.thaw();
    }

    /// PID of mariadbd (of the latest launch; it may have exited since).
    pub fn pid(&self) -> i32 {
        self.daemon.pid
    }

    /// Number of connections of `user`, from information_schema.processlist.
    pub fn connection_count(&self, user: &str) -> i64 {
        let out = self.sql(&format!(
            "select count(*) from information_schema.processlist where user = {}",
            sql_literal(&user.replace('\\', "\\\\"))
        ));
        out.parse()
            .unwrap_or_else(|e| panic!("unexpected processlist count {out:?}: {e}"))
    }

    fn launch_on_free_port(&mut self) {
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            self.port = free_port();
            match self.launch() {
                Ok(()) => return,
                Err(e) if e.contains("Address already in use") => last = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("{last}");
    }

    fn launch(&mut self) -> Result<(), String> {
        let mut cmd = Command::new(&self.bins.server);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.data_dir.display()))
            .arg(format!("--tmpdir={}", self.tmp_dir.display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", self.socket.display()))
            .arg(format!("--pid-file={}", self.pid_file.display()))
            .arg("--skip-name-resolve")
            .args(MARIADB_SPEED_OPTIONS)
            .arg(format!("--ssl-ca={}", self.tls.ca.display()))
            .arg(format!("--ssl-cert={}", self.tls.cert.display()))
            .arg(format!("--ssl-key={}", self.tls.key.display()))
            // After --skip-log-bin, so that a primary's --log-bin wins.
            .args(&self.role_options)
            .current_dir("/");
        if self.as_mysql {
            cmd.arg("--user=mysql");
        }
        self.daemon.launch(cmd);
        let (admin, socket, port) = (&self.bins.admin, &self.socket, self.port);
        self.daemon
            .wait_ready(|| mariadb_accepting(admin, socket, port))
            .map_err(|e| format!("MariaDB on port {port}: {e}"))
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        // Thaws first, SIGTERM, then SIGKILL; ignores errors.
        let _ = self.daemon.stop(DROP_STOP_TIMEOUT);
    }
}

/// `mariadb-admin ping` over the socket succeeds and the TCP port accepts connections.
fn mariadb_accepting(admin: &Path, socket: &Path, port: u16) -> bool {
    let mut cmd = Command::new(admin);
    cmd.arg("--no-defaults")
        .arg("-uroot")
        .arg(format!("--socket={}", socket.display()))
        .args(["--connect-timeout=2", "ping"]);
    clear_mysql_env(&mut cmd);
    quiet_status(cmd)
        && TcpStream::connect_timeout(
            &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            Duration::from_secs(2),
        )
        .is_ok()
}

/// Removes the environment variables that would point a MySQL/MariaDB client elsewhere.
pub fn clear_mysql_env(cmd: &mut Command) {
    for var in [
        "MYSQL_PWD",
        "MYSQL_HOST",
        "MYSQL_TCP_PORT",
        "MYSQL_UNIX_PORT",
        "MYSQL_HISTFILE",
    ] {
        cmd.env_remove(var);
    }
}

// ---------------------------------------------------------------------------------------
// A daemon process we own: launch, readiness, stop, freeze, thaw
// ---------------------------------------------------------------------------------------

pub(crate) struct Daemon {
    name: &'static str,
    /// Signal requesting a clean, quick shutdown.
    stop_signal: i32,
    /// The running process (our direct child), `None` once reaped.
    child: Option<Child>,
    /// PID of the latest launch.
    pid: i32,
    /// stdout + stderr of every launch, appended.
    log: PathBuf,
    /// Length of the log when the latest launch started.
    log_offset: u64,
    /// PIDs SIGSTOPped by `freeze()` and not yet SIGCONTed.
    frozen: Mutex<Vec<i32>>,
}

impl Daemon {
    pub(crate) fn new(name: &'static str, stop_signal: i32, log: PathBuf) -> Daemon {
        Daemon {
            name,
            stop_signal,
            child: None,
            pid: 0,
            log,
            log_offset: 0,
            frozen: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn launch(&mut self, mut cmd: Command) {
        assert!(
            self.child.is_none(),
            "{} (pid {}) is already running",
            self.name,
            self.pid
        );
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.log.display()));
        self.log_offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        let log2 = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot duplicate a file handle: {e}"));
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot spawn {} ({:?}): {e}", self.name, cmd.get_program())
        });
        self.pid = child.id() as i32;
        self.child = Some(child);
    }

    /// Polls `ready` until it returns true; fails when the process exits first or after
    /// READY_TIMEOUT. The error quotes what the process logged since it was launched.
    pub(crate) fn wait_ready(&mut self, mut ready: impl FnMut() -> bool) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_reap() {
                return Err(format!(
                    "exited ({status}) before accepting connections\n--- {} ---\n{}",
                    self.log.display(),
                    self.log_since_launch()
                ));
            }
            if ready() {
                return Ok(());
            }
            if start.elapsed() > READY_TIMEOUT {
                let _ = self.stop(KILL_TIMEOUT);
                return Err(format!(
                    "not accepting connections after {READY_TIMEOUT:?}\n--- {} ---\n{}",
                    self.log.display(),
                    self.log_since_launch()
                ));
            }
            thread::sleep(POLL);
        }
    }

    /// Reaps the child if it has exited.
    pub(crate) fn try_reap(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Some(status)
            }
            Ok(None) => None,
            Err(_) => {
                // Not our child any more (cannot happen normally): treat as gone.
                self.child = None;
                Some(ExitStatus::default())
            }
        }
    }

    pub(crate) fn is_running(&mut self) -> bool {
        self.try_reap();
        self.child.is_some()
    }

    /// Thaws, sends the stop signal and waits up to `timeout` for the process to exit;
    /// then SIGKILLs it and its descendants. Err when it had to kill. Never panics.
    pub(crate) fn stop(&mut self, timeout: Duration) -> Result<(), String> {
        self.thaw();
        if !self.is_running() {
            return Ok(());
        }
        let pid = self.pid;
        send_signal(pid, self.stop_signal);
        if self.wait_exit(timeout) {
            return Ok(());
        }
        let tree = descendants(pid);
        send_signal(pid, libc::SIGKILL);
        for p in tree {
            send_signal(p, libc::SIGKILL);
        }
        let reaped = self.wait_exit(KILL_TIMEOUT);
        Err(format!(
            "{} (pid {pid}) did not exit within {timeout:?} of signal {}; SIGKILLed it{}",
            self.name,
            self.stop_signal,
            if reaped {
                ""
            } else {
                " (and it still has not exited)"
            }
        ))
    }

    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> bool {
        let start = Instant::now();
        loop {
            if !self.is_running() {
                return true;
            }
            if start.elapsed() > timeout {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub(crate) fn freeze(&self) {
        let pid = self.pid;
        let alive =
            self.child.is_some() && matches!(process_state(pid), Some(s) if s != 'Z' && s != 'X');
        assert!(alive, "freeze: {} (pid {pid}) is not running", self.name);
        let mut frozen = lock(&self.frozen);
        // The parent first, so that it cannot fork new children meanwhile; then its
        // descendants, until a scan finds no new one.
        if !frozen.contains(&pid) {
            send_signal(pid, libc::SIGSTOP);
            frozen.push(pid);
        }
        for _ in 0..100 {
            let new: Vec<i32> = descendants(pid)
                .into_iter()
                .filter(|p| !frozen.contains(p))
                .collect();
            if new.is_empty() {
                break;
            }
            for p in new {
                send_signal(p, libc::SIGSTOP);
                frozen.push(p);
            }
        }
        let start = Instant::now();
        while !frozen.iter().all(|&p| stopped_or_gone(p)) {
            if start.elapsed() > FREEZE_TIMEOUT {
                let pending: Vec<i32> = frozen
                    .iter()
                    .copied()
                    .filter(|&p| !stopped_or_gone(p))
                    .collect();
                drop(frozen);
                self.thaw();
                panic!(
                    "freeze: processes {pending:?} of {} did not stop within {FREEZE_TIMEOUT:?}",
                    self.name
                );
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGCONT to everything frozen (children first) and to any current descendant.
    /// Harmless when nothing is frozen. Never panics.
    pub(crate) fn thaw(&self) {
        let mut frozen = lock(&self.frozen);
        let mut pids = std::mem::take(&mut *frozen);
        if self.child.is_some() {
            for p in descendants(self.pid) {
                if !pids.contains(&p) {
                    pids.push(p);
                }
            }
        }
        for &p in pids.iter().rev() {
            send_signal(p, libc::SIGCONT);
        }
    }

    pub(crate) fn log_since_launch(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            if f.seek(SeekFrom::Start(self.log_offset)).is_ok() {
                let mut bytes = Vec::new();
                let _ = f.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
        last_lines(&text, LOG_TAIL_LINES)
    }

    pub(crate) fn log_tail(&self) -> String {
        format!("--- {} ---\n{}", self.log.display(), tail(&self.log))
    }
}

// ---------------------------------------------------------------------------------------
// Processes (/proc) and signals
// ---------------------------------------------------------------------------------------

pub(crate) fn send_signal(pid: i32, sig: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Parses /proc/<path>/stat: (state, ppid). The command name may contain spaces and
/// parentheses, so split after its last ')'.
fn parse_stat(path: &Path) -> Option<(char, i32)> {
    let stat = fs::read_to_string(path).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

fn process_state(pid: i32) -> Option<char> {
    parse_stat(&PathBuf::from(format!("/proc/{pid}/stat"))).map(|(s, _)| s)
}

/// True when every thread of `pid` is stopped (T/t), or the process is a zombie or gone.
fn stopped_or_gone(pid: i32) -> bool {
    match process_state(pid) {
        None | Some('Z') | Some('X') | Some('x') => return true,
        _ => {}
    }
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks
        .flatten()
        .all(|t| match parse_stat(&t.path().join("stat")) {
            None => true,
            Some((s, _)) => matches!(s, 'T' | 't' | 'Z' | 'X' | 'x'),
        })
}

/// All live descendants of `pid` (children, grandchildren, ...), parents before children.
fn descendants(pid: i32) -> Vec<i32> {
    let mut procs: Vec<(i32, i32)> = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            if let Some((state, ppid)) = parse_stat(&e.path().join("stat")) {
                if state != 'Z' && state != 'X' {
                    procs.push((p, ppid));
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(p, ppid) in &procs {
            if ppid == parent && p != pid && !out.contains(&p) {
                out.push(p);
                frontier.push(p);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------

/// Runs `cmd` to completion with stdin null and stdout + stderr in `log`, killing it
/// after `timeout`.
pub(crate) fn run_logged(mut cmd: Command, log: &Path, timeout: Duration) -> Result<(), String> {
    let file = File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let file2 = file.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null()).stdout(file).stderr(file2);
    let program = cmd.get_program().to_owned();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot spawn {program:?}: {e}"))?;
    match wait_child(&mut child, timeout) {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(format!("{program:?} exited with {status}")),
        None => {
            let _ = child.kill();
            let _ = wait_child(&mut child, KILL_TIMEOUT);
            Err(format!(
                "{program:?} did not finish within {timeout:?}; killed it"
            ))
        }
    }
}

/// Runs a client with `input` on stdin, capturing stdout and stderr; kills it after
/// `timeout`.
pub(crate) fn run_client(
    mut cmd: Command,
    input: &str,
    timeout: Duration,
) -> Result<Output, String> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let program = cmd.get_program().to_owned();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot spawn {program:?}: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_owned();
    // Writer and readers on their own threads: no pipe can fill up and deadlock.
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let status = match wait_child(&mut child, timeout) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = wait_child(&mut child, KILL_TIMEOUT);
            return Err(format!(
                "{program:?} did not finish within {timeout:?}; killed it"
            ));
        }
    };
    let _ = writer.join();
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Runs `cmd` with all stdio null; true when it exits with status 0 within 10 s.
fn quiet_status(mut cmd: Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let Ok(mut child) = cmd.spawn() else {
        return false;
    };
    match wait_child(&mut child, Duration::from_secs(10)) {
        Some(status) => status.success(),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            false
        }
    }
}

/// Polls `child` until it exits (and is reaped) or `timeout` passes.
fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(_) => return Some(ExitStatus::default()),
        }
        if start.elapsed() > timeout {
            return None;
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Makes `cmd` run as (uid, gid) (std drops supplementary groups), from `/`.
pub(crate) fn as_user(cmd: &mut Command, ids: Option<(u32, u32)>) {
    if let Some((uid, gid)) = ids {
        cmd.uid(uid).gid(gid);
    }
    cmd.current_dir("/");
}

// ---------------------------------------------------------------------------------------
// Files, users, misc
// ---------------------------------------------------------------------------------------

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// (uid, gid) of a system user, via `id`.
pub(crate) fn user_ids(user: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id")
            .args([flag, user])
            .stdin(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

pub(crate) fn chown(path: &Path, (uid, gid): (u32, u32)) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
}

fn chown_recursive(path: &Path, ids: (u32, u32)) -> io::Result<()> {
    chown(path, ids)?;
    if fs::symlink_metadata(path)?.is_dir() {
        for e in fs::read_dir(path)? {
            chown_recursive(&e?.path(), ids)?;
        }
    }
    Ok(())
}

/// A temporary directory readable by the server's user (0755). Under the system temp
/// dir, or /tmp when that path is long (Unix socket paths are limited to ~107 bytes).
pub(crate) fn server_tempdir(prefix: &str) -> TempDir {
    let base = std::env::temp_dir();
    let base = if base.as_os_str().len() > 40 {
        PathBuf::from("/tmp")
    } else {
        base
    };
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&base)
        .unwrap_or_else(|e| {
            panic!(
                "cannot create a temporary directory in {}: {e}",
                base.display()
            )
        });
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", dir.path().display()));
    dir
}

pub(crate) fn is_executable(path: &Path) -> bool {
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

pub(crate) fn find_in(name: &str, dirs: impl IntoIterator<Item = PathBuf>) -> Option<PathBuf> {
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    find_in(name, std::env::split_paths(&path))
}

/// The last `LOG_TAIL_LINES` lines of a file.
pub(crate) fn tail(path: &Path) -> String {
    match fs::read(path) {
        Ok(bytes) => last_lines(&String::from_utf8_lossy(&bytes), LOG_TAIL_LINES),
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A single-quoted SQL string literal.
pub(crate) fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn db_url(scheme: &str, user: &str, password: Option<&str>, port: u16, database: &str) -> String {
    let auth = match password {
        Some(p) => format!("{}:{}", percent_encode(user), percent_encode(p)),
        None => percent_encode(user),
    };
    format!(
        "{scheme}://{auth}@127.0.0.1:{port}/{}",
        percent_encode(database)
    )
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
