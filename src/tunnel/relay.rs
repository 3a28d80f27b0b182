//! The tunnel's local end: a Unix socket in a directory only dbvigil's user can enter.
//! Each connection accepted there gets its own forward through the bastion session.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::UnixListener;

use super::{Failure, Shared, TunnelError, lock};

pub(super) struct Relay {
    dir: tempfile::TempDir,
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// The socket is named as PostgreSQL names its own (`.s.PGSQL.<port>`), so the same
    /// path serves a driver that takes a directory and one that takes a file.
    pub(super) fn start(shared: Arc<Shared>, port: u16) -> std::io::Result<Relay> {
        let dir = tempfile::Builder::new().prefix("dbvigil-ssh-").tempdir()?;
        let path = dir.path().join(format!(".s.PGSQL.{port}"));
        let listener = UnixListener::bind(&path)?;
        let task = tokio::spawn(accept_loop(listener, shared));
        Ok(Relay { dir, path, task })
    }

    pub(super) fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub(super) fn path(&self) -> PathBuf {
        self.path.clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    loop {
        let mut local = match listener.accept().await {
            Ok((local, _)) => local,
            Err(e) => {
                // Out of file descriptors, most likely: give the process a moment rather
                // than spin; the waiting driver sees its own timeout.
                tracing::warn!(error = %e, "the SSH tunnel's socket cannot accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let opened = open(&shared).await;
            match opened {
                Ok(channel) => {
                    let mut remote = channel.into_stream();
                    let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
                }
                Err(e) => *lock(&shared.relay_failure) = Some(e),
            }
        });
    }
}

/// A forward for one accepted connection, each step bounded by the tunnel's timeout.
async fn open(shared: &Shared) -> Result<russh::Channel<russh::client::Msg>, TunnelError> {
    let late = |failure, what: &str| {
        TunnelError::new(
            failure,
            format!(
                "{what} within {}",
                crate::config::format_duration(shared.timeout)
            ),
        )
    };
    let session = tokio::time::timeout(shared.timeout, shared.ensure())
        .await
        .map_err(|_| {
            late(
                Failure::BastionTimeout,
                &format!("the bastion {} did not answer", shared.ssh.describe()),
            )
        })??;
    tokio::time::timeout(shared.timeout, shared.forward(&session))
        .await
        .map_err(|_| {
            late(
                Failure::DatabaseTimeout,
                &format!(
                    "the bastion {} did not connect to the database {}:{}",
                    shared.ssh.describe(),
                    shared.host,
                    shared.port
                ),
            )
        })?
}
