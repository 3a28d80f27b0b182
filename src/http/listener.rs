//! dbvigil's own port: plain TCP, or TLS when the web configuration says so, on every
//! listening socket at once. The choice and the certificates are read per connection, so
//! a reload applies to the next connection. Handshakes run in their own tasks: a client
//! that connects and never speaks TLS holds only its own slot, never the accept loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;

use crate::exporter::Exporter;

/// A TLS client has this long to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in flight at once; beyond this, new connections are closed until some end.
const MAX_HANDSHAKES: usize = 256;

pub type Connection = Either<TcpStream, TlsStream<TcpStream>>;

pub struct WebListener {
    tcp: Vec<TcpListener>,
    /// The socket asked first on the next accept, so that none is served before the others
    /// every time.
    next: usize,
    exporter: Exporter,
    handshakes: Arc<Semaphore>,
    done_tx: mpsc::Sender<(Connection, SocketAddr)>,
    done_rx: mpsc::Receiver<(Connection, SocketAddr)>,
}

impl WebListener {
    /// `tcp` holds at least one listener.
    pub fn new(tcp: Vec<TcpListener>, exporter: Exporter) -> WebListener {
        assert!(!tcp.is_empty(), "a web listener needs a socket");
        let (done_tx, done_rx) = mpsc::channel(MAX_HANDSHAKES);
        WebListener {
            tcp,
            next: 0,
            exporter,
            handshakes: Arc::new(Semaphore::new(MAX_HANDSHAKES)),
            done_tx,
            done_rx,
        }
    }

    fn start_handshake(
        &self,
        stream: TcpStream,
        addr: SocketAddr,
        config: Arc<rustls::ServerConfig>,
    ) {
        let Ok(permit) = self.handshakes.clone().try_acquire_owned() else {
            tracing::warn!(client = %addr, "too many TLS handshakes in progress; closing the connection");
            return;
        };
        let done = self.done_tx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let accepted =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, TlsAcceptor::from(config).accept(stream))
                    .await;
            match accepted {
                Ok(Ok(tls)) => {
                    let _ = done.send((Either::Right(tls), addr)).await;
                }
                // Scanners, plain-HTTP clients and refused client certificates end here;
                // at debug level, since anyone who can connect can cause it.
                Ok(Err(e)) => tracing::debug!(client = %addr, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(client = %addr, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for WebListener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        loop {
            tokio::select! {
                Some(done) = self.done_rx.recv() => return done,
                (stream, addr) = accept_any(&self.tcp, &mut self.next) => {
                    match self.exporter.web().tls.clone() {
                        None => return (Either::Left(stream), addr),
                        Some(config) => self.start_handshake(stream, addr, config),
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp[0].local_addr()
    }
}

/// The next connection on any socket. Errors of one connection are skipped; others
/// (out of descriptors) pause accepting for a second rather than spin.
async fn accept_any(tcp: &[TcpListener], next: &mut usize) -> (TcpStream, SocketAddr) {
    loop {
        let start = *next;
        let count = tcp.len();
        let accepted = std::future::poll_fn(|cx| {
            for i in (0..count).map(|i| (start + i) % count) {
                if let Poll::Ready(r) = tcp[i].poll_accept(cx) {
                    return Poll::Ready((i, r));
                }
            }
            Poll::Pending
        })
        .await;
        *next = (accepted.0 + 1) % count;
        match accepted.1 {
            Ok(connection) => return connection,
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot accept connections; trying again in a second");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Errors that end one connection, not the listener (as axum's own listener tells them).
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}
