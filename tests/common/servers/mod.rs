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
//!
//! Layout: [`server`] holds the lifecycle every server shares (launch on a free port,
//! stop, restart, freeze, thaw) over a [`daemon`] process; [`postgres`] and [`mariadb`]
//! say how each engine is installed, started and queried.
// Each test binary uses its own part of the harness.
#![allow(dead_code, unused_imports)]

mod commands;
mod daemon;
mod host;
mod mariadb;
mod postgres;
mod server;
mod tls;

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

pub(crate) use commands::{as_user, run_client, run_logged};
pub(crate) use daemon::Daemon;
pub(crate) use host::{
    chown, find_in, find_program, is_executable, is_root, lock, server_tempdir, tail, user_ids,
};
pub use mariadb::{MARIADB_REPL_PASSWORD, MariaDb, MariaDbServer, clear_mysql_env};
pub use postgres::{PG_REPLICATOR_PASSWORD, PgServer, Postgres};
pub(crate) use postgres::{clear_pg_env, psql_with};
pub use server::{Program, Server};
pub(crate) use tls::{ServerTls, install_server_tls};
pub use tls::{TestCerts, test_certs};

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

/// A single-quoted SQL string literal.
pub(crate) fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
