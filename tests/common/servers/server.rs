//! The lifecycle every throwaway server shares: launch on a free port, stop, start again,
//! freeze and thaw. A [`Program`] says only what differs: how to start it, how to tell it
//! is ready, and its files.

use std::path::PathBuf;
use std::process::Command;

use super::daemon::Daemon;
use super::{START_ATTEMPTS, STOP_TIMEOUT, free_port};

/// What a [`Server`] runs.
pub trait Program {
    /// Names the server in panic messages.
    const NAME: &'static str;
    /// The scheme of [`Server::url`].
    const SCHEME: &'static str;
    /// The signal asking for a clean, quick shutdown.
    const STOP_SIGNAL: i32;

    /// Where the server's stdout and stderr go, appended across launches.
    fn log(&self) -> PathBuf;

    /// The command that runs the server in the foreground, listening on 127.0.0.1:`port`.
    fn command(&self, port: u16) -> Command;

    /// True once the server launched on `port` accepts connections.
    fn accepting(&self, port: u16) -> bool;
}

/// A server process of `P` on its own port, which stays the same across restarts.
///
/// Dropping it stops the process (thawing it first; SIGKILL after 10 s) before `P`'s files
/// are removed: the daemon is declared first, so it is dropped first.
pub struct Server<P: Program> {
    pub(crate) daemon: Daemon,
    port: u16,
    pub(crate) program: P,
}

impl<P: Program> Server<P> {
    /// Launches `program` as `name` on a new free port, retrying with another port when the
    /// chosen one was taken in the meantime, and returns once it accepts connections.
    pub(crate) fn launch_on_free_port(name: &'static str, program: P) -> Server<P> {
        let mut server = Server {
            daemon: Daemon::new(name, P::STOP_SIGNAL, program.log()),
            port: 0,
            program,
        };
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            server.port = free_port();
            match server.launch() {
                Ok(()) => return server,
                Err(e) if e.contains("Address already in use") => last = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("{last}");
    }

    /// The TCP port on 127.0.0.1 (stays the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `SCHEME://user[:password]@127.0.0.1:PORT/database` (components percent-encoded).
    pub fn url(&self, user: &str, password: Option<&str>, database: &str) -> String {
        let auth = match password {
            Some(p) => format!("{}:{}", percent_encode(user), percent_encode(p)),
            None => percent_encode(user),
        };
        format!(
            "{}://{auth}@127.0.0.1:{}/{}",
            P::SCHEME,
            self.port,
            percent_encode(database)
        )
    }

    /// PID of the server's main process (PostgreSQL's postmaster), of the latest launch;
    /// it may have exited since.
    pub fn pid(&self) -> i32 {
        self.daemon.pid()
    }

    /// Clean shutdown with the program's stop signal (PostgreSQL: SIGINT, a fast shutdown;
    /// MariaDB and PgBouncer: SIGTERM), after thawing it if frozen; returns once the
    /// process has exited. SIGKILLs it and its descendants and panics after 30 s.
    pub fn stop(&mut self) {
        if let Err(e) = self.daemon.stop(STOP_TIMEOUT) {
            panic!("{e}\n{}", self.daemon.log_tail());
        }
    }

    /// Starts the stopped server again with the same files and port, and waits until it
    /// accepts connections.
    pub fn start_again(&mut self) {
        assert!(
            !self.daemon.is_running(),
            "start_again: {} on port {} is still running",
            P::NAME,
            self.port
        );
        self.launch().unwrap_or_else(|e| panic!("{e}"));
    }

    /// `stop()` then `start_again()`.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// SIGSTOPs the server process and all of its descendants (PostgreSQL's backends,
    /// checkpointer, walwriter, ...), and returns once the kernel reports every thread
    /// stopped. New TCP connections still complete the handshake, but nothing answers.
    pub fn freeze(&self) {
        self.daemon.freeze();
    }

    /// SIGCONTs every process frozen by `freeze()` (and any descendant of the server).
    pub fn thaw(&self) {
        self.daemon.thaw();
    }

    fn launch(&mut self) -> Result<(), String> {
        let port = self.port;
        self.daemon.launch(self.program.command(port));
        let program = &self.program;
        self.daemon
            .wait_ready(|| program.accepting(port))
            .map_err(|e| format!("{} on port {port}: {e}", P::NAME))
    }
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
