//! Databases behind a bastion. A [`Tunnel`] keeps an SSH session to the bastion and a
//! private Unix socket; every connection made to that socket is forwarded through the
//! session (direct-tcpip) to the database. The drivers connect to the socket unchanged,
//! and TLS above it still verifies the database's own name. No `ssh` binary is spawned.
//!
//! The session is a phase of its own ([`Tunnel::ensure`]), so that a bastion that is down,
//! frozen, unknown or refusing the login is told apart from a database that is down
//! behind a healthy bastion ([`Tunnel::reach`]).

mod quickack;
mod relay;
mod session;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::Handle;

use crate::config::SshConfig;
use session::{Client, Login, Pins};

/// Why going through the bastion failed: the bastion's own failures, then the database's
/// as the bastion saw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The bastion's name did not resolve.
    BastionDns,
    /// Nothing listens on the bastion's SSH port.
    BastionRefused,
    /// The bastion did not answer in time (frozen, packets dropped).
    BastionTimeout,
    /// The bastion presented a host key that is not the pinned one.
    BastionHostKey,
    /// The bastion refused the login, or the key could not be offered.
    BastionAuth,
    /// The bastion does not allow forwarding to the database's address.
    BastionDenied,
    /// The session broke below SSH, or the handshake failed.
    BastionIo,
    /// The bastion could not connect to the database (refused, unreachable).
    DatabaseRefused,
    /// The bastion answered, but the database did not accept its connection in time.
    DatabaseTimeout,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelError {
    pub failure: Failure,
    pub message: String,
}

impl TunnelError {
    fn new(failure: Failure, message: impl Into<String>) -> Self {
        TunnelError {
            failure,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for TunnelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TunnelError {}

/// The path from dbvigil to one database through one bastion.
pub struct Tunnel {
    shared: Arc<Shared>,
    relay: relay::Relay,
}

struct Shared {
    ssh: Arc<SshConfig>,
    login: Login,
    pins: Arc<Pins>,
    /// The database as the bastion reaches it.
    host: String,
    port: u16,
    /// Bounds each step the relay takes on its own (a session, a forward).
    timeout: Duration,
    session: tokio::sync::Mutex<Option<Arc<Handle<Client>>>>,
    /// Why the relay's last forward failed, for the connection that then saw only a
    /// closed socket.
    relay_failure: Mutex<Option<TunnelError>>,
}

impl Tunnel {
    /// Reads the key and the pinned host keys (on the blocking pool: opening an encrypted
    /// key is deliberately slow) and opens the relay's socket; connects to nothing yet.
    pub async fn new(
        ssh: &SshConfig,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<Tunnel, TunnelError> {
        let read = ssh.clone();
        let (login, pins) = tokio::task::spawn_blocking(move || {
            Ok::<_, TunnelError>((Login::read(&read)?, Pins::read(&read)?))
        })
        .await
        .map_err(|e| {
            TunnelError::new(
                Failure::BastionIo,
                format!("reading the SSH key stopped: {e}"),
            )
        })??;
        let shared = Arc::new(Shared {
            login,
            pins: Arc::new(pins),
            ssh: Arc::new(ssh.clone()),
            host: host.to_owned(),
            port,
            timeout,
            session: tokio::sync::Mutex::new(None),
            relay_failure: Mutex::new(None),
        });
        let relay = relay::Relay::start(shared.clone(), port).map_err(|e| {
            TunnelError::new(
                Failure::BastionIo,
                format!("cannot open the local socket that forwards to the bastion: {e}; check that the temporary directory is writable"),
            )
        })?;
        Ok(Tunnel { shared, relay })
    }

    /// The bastion, as `user@host:port`.
    pub fn describe(&self) -> String {
        self.shared.ssh.describe()
    }

    /// The directory a PostgreSQL driver is given as its socket directory: it holds
    /// `.s.PGSQL.<port>`.
    pub fn socket_dir(&self) -> &Path {
        self.relay.dir()
    }

    /// The socket a MySQL driver connects to.
    pub fn socket_path(&self) -> PathBuf {
        self.relay.path()
    }

    /// A live, logged-in session: the kept one if it still answers a round trip, else a
    /// new one. Unbounded in time: the caller bounds it.
    pub async fn ensure(&self) -> Result<(), TunnelError> {
        self.shared.ensure().await.map(|_| ())
    }

    /// Asks the bastion to connect to the database, and closes that connection at once:
    /// whether the database accepts connections, as seen from the bastion.
    pub async fn reach(&self) -> Result<(), TunnelError> {
        let session = self.shared.ensure().await?;
        let channel = self.shared.forward(&session).await?;
        let _ = channel.close().await;
        Ok(())
    }

    /// Why the last connection through the socket was closed at once, if it was: the
    /// driver saw only an end of file.
    pub fn take_relay_failure(&self) -> Option<TunnelError> {
        lock(&self.shared.relay_failure).take()
    }

    /// Ends the session (a new one is opened when next needed).
    pub async fn close(&self) {
        let session = self.shared.session.lock().await.take();
        if let Some(s) = session {
            let _ = tokio::time::timeout(
                Duration::from_millis(500),
                s.disconnect(russh::Disconnect::ByApplication, "", "en"),
            )
            .await;
        }
    }

    /// Drops the session without a goodbye: after a phase timed out, the bastion may be
    /// frozen.
    pub async fn abandon(&self) {
        self.shared.session.lock().await.take();
    }
}

impl Shared {
    async fn ensure(&self) -> Result<Arc<Handle<Client>>, TunnelError> {
        let mut slot = self.session.lock().await;
        if let Some(kept) = slot.as_ref().filter(|s| !s.is_closed()).cloned() {
            // A round trip proves the bastion still answers; a session that breaks on the
            // way is replaced below at once.
            if kept.send_ping().await.is_ok() && !kept.is_closed() {
                return Ok(kept);
            }
        }
        *slot = None;
        let session = Arc::new(session::open(&self.ssh, &self.login, &self.pins).await?);
        *slot = Some(session.clone());
        Ok(session)
    }

    async fn forward(
        &self,
        session: &Handle<Client>,
    ) -> Result<russh::Channel<russh::client::Msg>, TunnelError> {
        session
            .channel_open_direct_tcpip(self.host.clone(), u32::from(self.port), "127.0.0.1", 0)
            .await
            .map_err(|e| self.forward_error(e))
    }

    fn forward_error(&self, e: russh::Error) -> TunnelError {
        let database = format!("{}:{}", self.host, self.port);
        let bastion = self.ssh.describe();
        match e {
            russh::Error::ChannelOpenFailure(russh::ChannelOpenFailure::ConnectFailed) => {
                TunnelError::new(
                    Failure::DatabaseRefused,
                    format!(
                        "the bastion {bastion} could not connect to the database {database}: it is down, not listening there, or unreachable from the bastion"
                    ),
                )
            }
            russh::Error::ChannelOpenFailure(
                russh::ChannelOpenFailure::AdministrativelyProhibited,
            ) => TunnelError::new(
                Failure::BastionDenied,
                format!(
                    "the bastion {bastion} does not allow forwarding to {database}: allow it in its sshd_config (AllowTcpForwarding, PermitOpen {database})"
                ),
            ),
            other => TunnelError::new(
                Failure::BastionIo,
                format!(
                    "the session with the bastion {bastion} broke while forwarding to {database}: {other}"
                ),
            ),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
