//! Production topologies around the throwaway servers of servers.rs: a PgBouncer in
//! front of a [`PgServer`]. (The PostgreSQL standby and the MariaDB replica are
//! constructors of the server types themselves: `PgServer::start_standby_of`,
//! `MariaDbServer::start_primary` / `start_replica_of`.)
#![allow(dead_code)]

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use super::servers::{
    DROP_STOP_TIMEOUT, Daemon, PgServer, STOP_TIMEOUT, as_user, chown, find_in, find_program,
    free_port, install_server_tls, is_root, psql_with, server_tempdir, skip_or_fail, sql_literal,
    user_ids,
};

/// The admin-console user of every [`PgBouncer`] (`admin_users`), with a plain-text
/// password in the userlist.
pub const PGBOUNCER_ADMIN: &str = "bouncer_admin";
pub const PGBOUNCER_ADMIN_PASSWORD: &str = "bouncer-admin-pw";

/// PgBouncer's `pool_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolMode {
    Session,
    Transaction,
}

impl PoolMode {
    fn as_str(self) -> &'static str {
        match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
        }
    }
}

/// Debian's `pgbouncer` (1.18 on Debian 12) in front of a [`PgServer`], as production
/// runs it: its own temporary directory, ini and userlist; listening on 127.0.0.1 at a
/// free port (and a Unix socket for the admin console); every database (`* =`) routed to
/// the server; `auth_type = scram-sha-256` with the users' SCRAM secrets copied from
/// `pg_authid` (so PgBouncer logs in to PostgreSQL with the client's own SCRAM proof);
/// `client_tls_sslmode = require` with the test certificate and `server_tls_sslmode =
/// require` towards PostgreSQL.
///
/// `ignore_startup_parameters = extra_float_digits`, the usual production value (JDBC,
/// sqlx and others send `extra_float_digits`); any other startup parameter that 1.18 does
/// not track, `options` included, is refused as in production.
///
/// Runs as the `postgres` user when the tests run as root (PgBouncer refuses root).
pub struct PgBouncer {
    daemon: Daemon,
    port: u16,
    bin: PathBuf,
    ini: PathBuf,
    socket_dir: PathBuf,
    psql: PathBuf,
    run_as: Option<(u32, u32)>,
    /// Declared last: removed after PgBouncer has been stopped.
    dir: TempDir,
}

impl PgBouncer {
    /// Starts PgBouncer in `mode` in front of `pg` for the login roles `users` (which must
    /// have SCRAM passwords), and returns once it accepts TCP connections. `None` (after
    /// printing `SKIPPED: ...`) when `pgbouncer` is not installed and `CI` is not `"true"`.
    pub fn start(pg: &PgServer, mode: PoolMode, users: &[&str]) -> Option<PgBouncer> {
        let Some(bin) = find_program("pgbouncer").or_else(|| {
            find_in(
                "pgbouncer",
                ["/usr/sbin", "/usr/local/sbin", "/usr/bin"].map(PathBuf::from),
            )
        }) else {
            skip_or_fail("pgbouncer not found (Debian package `pgbouncer`)");
            return None;
        };
        let run_as = if is_root() {
            match user_ids("postgres") {
                Some(ids) => Some(ids),
                None => {
                    skip_or_fail(
                        "running as root, but there is no `postgres` user to run pgbouncer as",
                    );
                    return None;
                }
            }
        } else {
            None
        };

        let mut userlist = format!(
            "{} {}\n",
            quote(PGBOUNCER_ADMIN),
            quote(PGBOUNCER_ADMIN_PASSWORD)
        );
        for user in users {
            let secret = pg.psql(&format!(
                "select rolpassword from pg_authid where rolname = {} and rolcanlogin",
                sql_literal(user)
            ));
            assert!(
                secret.starts_with("SCRAM-SHA-256$"),
                "PgBouncer::start: role {user:?} has no SCRAM password on port {} (got {secret:?})",
                pg.port()
            );
            userlist.push_str(&format!("{} {}\n", quote(user), quote(&secret)));
        }

        let dir = server_tempdir("dbvigil-bouncer-");
        let socket_dir = dir.path().join("sock");
        fs::create_dir(&socket_dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", socket_dir.display()));
        let tls = install_server_tls(dir.path(), run_as);
        let userlist_path = dir.path().join("userlist.txt");
        let ini = dir.path().join("pgbouncer.ini");
        fs::write(&userlist_path, userlist)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", userlist_path.display()));
        fs::set_permissions(&userlist_path, fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", userlist_path.display()));
        if let Some(ids) = run_as {
            for p in [&socket_dir, &userlist_path] {
                chown(p, ids).unwrap_or_else(|e| panic!("cannot chown {}: {e}", p.display()));
            }
        }

        let mut bouncer = PgBouncer {
            daemon: Daemon::new("PgBouncer", libc::SIGTERM, dir.path().join("pgbouncer.log")),
            port: 0,
            bin,
            ini,
            socket_dir,
            psql: pg.psql_program().to_owned(),
            run_as,
            dir,
        };
        let mut last = String::new();
        for _ in 0..3 {
            bouncer.port = free_port();
            let config = format!(
                "[databases]\n\
                 * = host=127.0.0.1 port={pg_port}\n\
                 \n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir = {sock}\n\
                 auth_type = scram-sha-256\n\
                 auth_file = {userlist}\n\
                 admin_users = {PGBOUNCER_ADMIN}\n\
                 pool_mode = {mode}\n\
                 ignore_startup_parameters = extra_float_digits\n\
                 client_tls_sslmode = require\n\
                 client_tls_cert_file = {cert}\n\
                 client_tls_key_file = {key}\n\
                 client_tls_ca_file = {ca}\n\
                 server_tls_sslmode = require\n\
                 server_tls_ca_file = {ca}\n",
                pg_port = pg.port(),
                port = bouncer.port,
                sock = bouncer.socket_dir.display(),
                userlist = userlist_path.display(),
                mode = mode.as_str(),
                cert = tls.cert.display(),
                key = tls.key.display(),
                ca = tls.ca.display(),
            );
            fs::write(&bouncer.ini, config)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", bouncer.ini.display()));
            match bouncer.launch() {
                Ok(()) => return Some(bouncer),
                Err(e) if e.contains("Address already in use") => last = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("{last}");
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A runs a command on the admin console (database `pgbouncer`, over the Unix
    /// socket as [`PGBOUNCER_ADMIN`]), e.g. `SHOW POOLS`; rows `|`-separated, no headers.
    pub fn admin(&self, command: &str) -> String {
        let conninfo = format!(
            "host={} port={} user={PGBOUNCER_ADMIN} dbname=pgbouncer",
            self.socket_dir.display(),
            self.port
        );
        psql_with(
            &self.psql,
            &conninfo,
            Some(PGBOUNCER_ADMIN_PASSWORD),
            command,
        )
        .unwrap_or_else(|e| panic!("PgBouncer admin {command:?} on port {}: {e}", self.port))
    }

    /// Immediate shutdown (SIGTERM); returns once PgBouncer has exited.
    pub fn stop(&mut self) {
        if let Err(e) = self.daemon.stop(STOP_TIMEOUT) {
            panic!("{e}\n{}", self.daemon.log_tail());
        }
    }

    fn launch(&mut self) -> Result<(), String> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg(&self.ini);
        as_user(&mut cmd, self.run_as);
        self.daemon.launch(cmd);
        let port = self.port;
        self.daemon
            .wait_ready(|| {
                TcpStream::connect_timeout(
                    &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                    Duration::from_secs(2),
                )
                .is_ok()
            })
            .map_err(|e| format!("PgBouncer on port {port}: {e}"))
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.daemon.stop(DROP_STOP_TIMEOUT);
    }
}

/// A double-quoted userlist field (`"` doubled).
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}
