//! The bastion's TCP socket, acknowledging every read at once.
//!
//! OpenSSH's sshd leaves Nagle on for the socket of a session that only forwards (it sets
//! `TCP_NODELAY` for interactive sessions, and on its own connections to the database), so
//! it holds a small packet back until its previous one is acknowledged. Linux meanwhile
//! delays our ACK, by 40 ms at least, once the traffic looks like request and answer. When
//! sshd answers with two packets in a row (a channel's close, then the database's reply)
//! the second waits for that timer: a `SELECT 1` on a kept session took 42.5 ms instead of
//! under 1, and a fresh probe through the bastion 137 ms instead of 54 (docs/benchmarks.md,
//! "SSH bastion: delayed ACKs"). Our own `TCP_NODELAY` cannot help: the bastion's send is
//! the one waiting.
//!
//! `TCP_QUICKACK` sends the pending ACK now, but the kernel leaves quick-ACK mode again on
//! its own, so it is set again after every read that returned data. Elsewhere than Linux
//! the stream is passed through unchanged.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A [`TcpStream`] that sets `TCP_QUICKACK` after each read (Linux; a no-op elsewhere).
pub(super) struct QuickAck {
    inner: TcpStream,
}

impl QuickAck {
    pub(super) fn new(inner: TcpStream) -> Self {
        QuickAck { inner }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn ack_now(stream: &TcpStream) {
    // A failure only leaves the delayed ACK in place.
    let _ = socket2::SockRef::from(stream).set_tcp_quickack(true);
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn ack_now(_stream: &TcpStream) {}

impl AsyncRead for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            ack_now(&self.inner);
        }
        polled
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
