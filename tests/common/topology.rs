//! Production topologies around the throwaway servers of servers/: a PgBouncer in
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
    PgServer, Program, Server, ServerTls, as_user, chown, find_in, find_program,
    install_server_tls, is_root, psql_with, server_tempdir, skip_or_fail, sql_literal, user_ids,
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
pub type PgBouncer = Server<Bouncer>;

/// PgBouncer's binary, files and the server it routes to.
pub struct Bouncer {
    bin: PathBuf,
    ini: PathBuf,
    userlist: PathBuf,
    socket_dir: PathBuf,
    tls: ServerTls,
    mode: PoolMode,
    pg_port: u16,
    psql: PathBuf,
    run_as: Option<(u32, u32)>,
    /// Declared last: removed after everything else.
    dir: TempDir,
}

impl Program for Bouncer {
    const NAME: &'static str = "PgBouncer";
    const SCHEME: &'static str = "postgres";
    /// Immediate shutdown.
    const STOP_SIGNAL: i32 = libc::SIGTERM;

    fn log(&self) -> PathBuf {
        self.dir.path().join("pgbouncer.log")
    }

    /// PgBouncer reads its port from the ini only, so each launch writes the ini anew.
    fn command(&self, port: u16) -> Command {
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
            pg_port = self.pg_port,
            sock = self.socket_dir.display(),
            userlist = self.userlist.display(),
            mode = self.mode.as_str(),
            cert = self.tls.cert.display(),
            key = self.tls.key.display(),
            ca = self.tls.ca.display(),
        );
        fs::write(&self.ini, config)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", self.ini.display()));
        let mut cmd = Command::new(&self.bin);
        cmd.arg(&self.ini);
        as_user(&mut cmd, self.run_as);
        cmd
    }

    fn accepting(&self, port: u16) -> bool {
        TcpStream::connect_timeout(
            &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            Duration::from_secs(2),
        )
        .is_ok()
    }
}

impl Server<Bouncer> {
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
        fs::write(&userlist_path, userlist)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", userlist_path.display()));
        fs::set_permissions(&userlist_path, fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", userlist_path.display()));
        if let Some(ids) = run_as {
            for p in [&socket_dir, &userlist_path] {
                chown(p, ids).unwrap_or_else(|e| panic!("cannot chown {}: {e}", p.display()));
            }
        }

        let bouncer = Bouncer {
            bin,
            ini: dir.path().join("pgbouncer.ini"),
            userlist: userlist_path,
            socket_dir,
            tls,
            mode,
            pg_port: pg.port(),
            psql: pg.psql_program().to_owned(),
            run_as,
            dir,
        };
        Some(Server::launch_on_free_port("PgBouncer", bouncer))
    }

    /// A runs a command on the admin console (database `pgbouncer`, over the Unix
    /// socket as [`PGBOUNCER_ADMIN`]), e.g. `SHOW POOLS`; rows `|`-separated, no headers.
    pub fn admin(&self, command: &str) -> String {
        let conninfo = format!(
            "host={} port={} user={PGBOUNCER_ADMIN} dbname=pgbouncer",
            self.program.socket_dir.display(),
            self.port()
        );
        psql_with(
            &self.program.psql,
            &conninfo,
            Some(PGBOUNCER_ADMIN_PASSWORD),
            command,
        )
        .unwrap_or_else(|e| panic!("PgBouncer admin {command:?} on port {}: {e}", self.port()))
    }
}

/// A double-quoted userlist field (`"` doubled).
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}
