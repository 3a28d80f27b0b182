//! Throwaway MariaDB servers: standalone, primaries with a binary log, and replicas of
//! them, and the `mariadb` client the harness drives them with.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::commands::{quiet_status, run_client, run_logged};
use super::host::{
    chown, chown_recursive, find_in, find_program, is_root, server_tempdir, tail, user_ids,
};
use super::server::{Program, Server};
use super::tls::{ServerTls, install_server_tls};
use super::{CLIENT_TIMEOUT, POLL, READY_TIMEOUT, SETUP_TIMEOUT, skip_or_fail, sql_literal};

/// A throwaway MariaDB server: `mariadb-install-db` into a temporary directory, root
/// without password, listening on 127.0.0.1 at its own port and on a Unix socket, with
/// `--skip-name-resolve` (create users for both 'u'@'127.0.0.1' and 'u'@'localhost') and
/// TLS on (the [`test_certs`](super::test_certs) certificate; create users `REQUIRE SSL`
/// to enforce it).
///
/// [`MariaDbServer::start_primary`] adds a binary log, and
/// [`MariaDbServer::start_replica_of`] a read-only replica replicating from it over TLS.
pub type MariaDbServer = Server<MariaDb>;

/// A MariaDB server's binaries, options and files.
pub struct MariaDb {
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
    /// Declared last: removed after everything else.
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

impl Program for MariaDb {
    const NAME: &'static str = "MariaDB";
    const SCHEME: &'static str = "mysql";
    const STOP_SIGNAL: i32 = libc::SIGTERM;

    fn log(&self) -> PathBuf {
        self.dir.path().join("mariadbd.log")
    }

    fn command(&self, port: u16) -> Command {
        let mut cmd = Command::new(&self.bins.server);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.data_dir.display()))
            .arg(format!("--tmpdir={}", self.tmp_dir.display()))
            .arg(format!("--port={port}"))
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
        cmd
    }

    /// `mariadb-admin ping` over the socket succeeds and the TCP port accepts connections.
    fn accepting(&self, port: u16) -> bool {
        let mut cmd = Command::new(&self.bins.admin);
        cmd.arg("--no-defaults")
            .arg("-uroot")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["--connect-timeout=2", "ping"]);
        clear_mysql_env(&mut cmd);
        quiet_status(cmd)
            && TcpStream::connect_timeout(
                &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                Duration::from_secs(2),
            )
            .is_ok()
    }
}

impl MariaDb {
    /// Finds the binaries and installs a data directory in a new temporary directory;
    /// launches nothing.
    fn install(role_options: Vec<String>) -> Option<MariaDb> {
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
        Some(MariaDb {
            bins,
            tls,
            role_options,
            data_dir,
            socket: run_dir.join("mariadbd.sock"),
            tmp_dir,
            pid_file: run_dir.join("mariadbd.pid"),
            as_mysql: mysql_ids.is_some(),
            dir,
        })
    }
}

impl Server<MariaDb> {
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
            primary.port()
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
            primary.port(),
            sql_literal(MARIADB_REPL_PASSWORD),
            sql_literal(&server.program.tls.ca.to_string_lossy()),
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
                    server.port(),
                    primary.port()
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
            self.port(),
            primary.port(),
            self.replica_status()
        );
    }

    /// This server's copy of the CA that signed its certificate.
    pub fn ca_file(&self) -> &Path {
        &self.program.tls.ca
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
        let mut cmd = Command::new(&self.program.bins.client);
        cmd.arg("--no-defaults")
            .args([
                "--protocol=TCP",
                "-h",
                "127.0.0.1",
                "-P",
                &self.port().to_string(),
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
        let mariadb = MariaDb::install(role_options)?;
        Some(Server::launch_on_free_port("MariaDB", mariadb))
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
        let mut cmd = Command::new(&self.program.bins.client);
        cmd.arg("--no-defaults")
            .arg("-uroot")
            .arg(format!("--socket={}", self.program.socket.display()))
            .args(args);
        clear_mysql_env(&mut cmd);
        cmd
    }

    fn client(&self, args: &[&str], sql: &str) -> String {
        let mut cmd = Command::new(&self.program.bins.client);
        cmd.arg("--no-defaults")
            .arg("-uroot")
            .arg(format!("--socket={}", self.program.socket.display()))
            .arg("--connect-timeout=10")
            .args(args);
        clear_mysql_env(&mut cmd);
        let out = run_client(cmd, sql, CLIENT_TIMEOUT).unwrap_or_else(|e| {
            panic!(
                "mariadb client on port {} failed to run: {e}\nSQL: {sql}",
                self.port()
            )
        });
        if !out.status.success() {
            panic!(
                "mariadb client on port {} failed ({}):\nSQL: {sql}\nstderr: {}",
                self.port(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
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
