//! Throwaway PostgreSQL clusters: primaries made with initdb, hot standbys made with
//! pg_basebackup, and the psql client the harness drives them with.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Instant;

use tempfile::TempDir;

use super::commands::{as_user, quiet_status, run_client, run_logged};
use super::host::{chown, find_program, is_executable, is_root, server_tempdir, tail, user_ids};
use super::server::{Program, Server};
use super::tls::{ServerTls, install_server_tls};
use super::{CLIENT_TIMEOUT, POLL, READY_TIMEOUT, SETUP_TIMEOUT, skip_or_fail, sql_literal};

/// Password of the `replicator` role every [`PgServer`] has (REPLICATION, SCRAM over TLS).
pub const PG_REPLICATOR_PASSWORD: &str = "replicator-pw";

/// A throwaway PostgreSQL cluster: `initdb -U postgres`, listening on 127.0.0.1 at its own
/// port and on a Unix socket in its own directory, with fsync off and TLS on (the
/// [`test_certs`](super::test_certs) certificate).
///
/// pg_hba.conf, production-shaped: Unix-socket logins are trusted (the harness's own
/// psql); over TCP the superuser `postgres` and members of the group role `trusted` log in
/// without a password, with or without TLS (tests that speak the wire protocol by hand);
/// every other role, `replicator` for streaming replication included, must use TLS and
/// give its password (SCRAM), so that plain logins and wrong passwords are really refused.
pub type PgServer = Server<Postgres>;

/// A PostgreSQL cluster's binaries and files.
pub struct Postgres {
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
    /// Declared last: removed after everything else.
    dir: TempDir,
}

const PG_HBA: &str = "local all all trust\n\
                      local replication all trust\n\
                      host all postgres,+trusted 127.0.0.1/32 trust\n\
                      hostssl replication replicator 127.0.0.1/32 scram-sha-256\n\
                      hostssl all all 127.0.0.1/32 scram-sha-256\n";

impl Program for Postgres {
    const NAME: &'static str = "PostgreSQL";
    const SCHEME: &'static str = "postgres";
    /// Fast shutdown: sessions are disconnected, nothing waits for clients.
    const STOP_SIGNAL: i32 = libc::SIGINT;

    fn log(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn command(&self, port: u16) -> Command {
        let mut cmd = Command::new(self.bindir.join("postgres"));
        cmd.arg("-D")
            .arg(&self.data_dir)
            .args(["-p", &port.to_string(), "-k"])
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
        cmd
    }

    fn accepting(&self, port: u16) -> bool {
        let mut cmd = Command::new(&self.pg_isready);
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
}

impl Postgres {
    /// Finds the binaries and lays out a temporary directory (data and socket
    /// directories owned by the server's user, TLS files); launches nothing.
    fn prepare(ssl: bool) -> Option<Postgres> {
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
        Some(Postgres {
            bindir,
            psql,
            pg_isready,
            data_dir,
            socket_dir,
            tls,
            ssl,
            run_as,
            dir,
        })
    }

    /// `initdb` into the data directory, and the harness's pg_hba.conf.
    fn init_cluster(&self) {
        let mut initdb = Command::new(self.bindir.join("initdb"));
        initdb.arg("-D").arg(&self.data_dir).args([
            "--auth=trust",
            "-U",
            "postgres",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        as_user(&mut initdb, self.run_as);
        let initdb_log = self.dir.path().join("initdb.log");
        run_logged(initdb, &initdb_log, SETUP_TIMEOUT).unwrap_or_else(|e| {
            panic!(
                "initdb failed: {e}\n--- {} ---\n{}",
                initdb_log.display(),
                tail(&initdb_log)
            )
        });
        fs::write(self.data_dir.join("pg_hba.conf"), PG_HBA)
            .unwrap_or_else(|e| panic!("cannot write pg_hba.conf: {e}"));
    }

    /// `pg_basebackup -R` of the primary on `primary_port` into the data directory, over
    /// TLS as `replicator`.
    fn copy_primary(&self, primary_port: u16) {
        let mut backup = Command::new(self.bindir.join("pg_basebackup"));
        backup
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync", "-d"])
            .arg(format!(
                "host=127.0.0.1 port={primary_port} user=replicator sslmode=verify-full \
                 sslrootcert={} connect_timeout=10",
                self.tls.ca.display(),
            ));
        clear_pg_env(&mut backup);
        // libpq reads ~/.postgresql/postgresql.crt: not root's home as the postgres user.
        backup
            .env("PGPASSWORD", PG_REPLICATOR_PASSWORD)
            .env("HOME", self.dir.path());
        as_user(&mut backup, self.run_as);
        let log = self.dir.path().join("pg_basebackup.log");
        run_logged(backup, &log, SETUP_TIMEOUT).unwrap_or_else(|e| {
            panic!(
                "pg_basebackup from port {primary_port} failed: {e}\n--- {} ---\n{}",
                log.display(),
                tail(&log)
            )
        });
    }
}

impl Server<Postgres> {
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
        let postgres = Postgres::prepare(ssl)?;
        postgres.init_cluster();
        // If this panics, Drop stops whatever was launched and removes the directory.
        let server = Server::launch_on_free_port("PostgreSQL", postgres);
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
        PgServer::start_standby_through(primary.port())
    }

    /// [`PgServer::start_standby_of`] the primary reachable on `port`, which may be a
    /// forwarder the test controls: the standby keeps streaming through it
    /// (`primary_conninfo` names that port), so the test can cut replication alone.
    pub fn start_standby_through(port: u16) -> PgServer {
        let postgres = Postgres::prepare(true)
            .expect("the primary's binaries are installed, so the standby's are too");
        postgres.copy_primary(port);
        Server::launch_on_free_port("PostgreSQL standby", postgres)
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
                    self.port(),
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
        assert_eq!(
            out,
            "t",
            "pg_promote on port {} did not finish",
            self.port()
        );
    }

    /// This server's copy of the CA that signed its certificate.
    pub fn ca_file(&self) -> &Path {
        &self.program.tls.ca
    }

    /// The psql binary this server's harness uses.
    pub fn psql_program(&self) -> &Path {
        &self.program.psql
    }

    /// psql as superuser `postgres` on `database` over the Unix socket, with no SQL yet:
    /// for sessions a test keeps open on stdin, or scripts given with `-f`.
    pub fn psql_command(&self, database: &str) -> Command {
        let mut cmd = Command::new(&self.program.psql);
        cmd.args(["-X", "-q", "-h"])
            .arg(&self.program.socket_dir)
            .args([
                "-p",
                &self.port().to_string(),
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
        psql_with(&self.program.psql, conninfo, password, sql)
    }

    /// Runs `sql` (one or more statements, as a script) with psql as superuser `postgres`
    /// on database `postgres` over the Unix socket, with `-X -A -t -q -v ON_ERROR_STOP=1`.
    /// Returns the trimmed stdout (rows, `|`-separated; no command tags). Panics with
    /// stderr when psql fails.
    pub fn psql(&self, sql: &str) -> String {
        let port = self.port();
        let mut cmd = Command::new(&self.program.psql);
        cmd.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.program.socket_dir)
            .args([
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-f",
                "-",
            ])
            .env("PGCONNECT_TIMEOUT", "10");
        clear_pg_env(&mut cmd);
        let out = run_client(cmd, sql, CLIENT_TIMEOUT)
            .unwrap_or_else(|e| panic!("psql on port {port} failed to run: {e}\nSQL: {sql}"));
        if !out.status.success() {
            panic!(
                "psql on port {port} failed ({}):\nSQL: {sql}\nstderr: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
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
