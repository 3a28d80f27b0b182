//! What every network prober shares: the tcp phase, and the mapping of transport and
//! driver errors (below SQL) to failure reasons.

use std::io;

use super::{Failure, Reason, Trace};
use crate::tunnel::{self, TunnelError};

/// Resolves `host` and opens (then closes) a TCP connection to the first address that
/// accepts. A name that does not resolve is `dns`; a closed port is `refused`.
pub async fn tcp_connect(host: &str, port: u16, trace: &Trace) -> Result<(), Failure> {
    trace.note(|| format!("resolving {host}"));
    let addrs: Vec<_> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Failure::new(Reason::Dns, format!("cannot resolve host {host}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(Failure::new(
            Reason::Dns,
            format!("host {host} has no address"),
        ));
    }
    trace.note(|| {
        let all: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        format!("resolved to {}", all.join(", "))
    });
    let mut last = None;
    for addr in addrs {
        trace.note(|| format!("connecting to {addr}"));
        match tokio::net::TcpStream::connect(addr).await {
            Ok(_) => {
                trace.note(|| format!("{addr} accepted the connection"));
                return Ok(());
            }
            Err(e) => {
                let failure = io_failure(&format!("connect to {addr}"), &e);
                trace.note(|| failure.message.clone());
                last = Some(failure);
            }
        }
    }
    Err(last.expect("at least one address was tried"))
}

pub fn io_failure(what: &str, e: &io::Error) -> Failure {
    // rustls reports a failed handshake (unknown issuer, wrong host name) inside an
    // io::Error: that is a TLS failure, not a broken connection.
    let tls = e
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
    let reason = match e.kind() {
        _ if tls => Reason::Tls,
        io::ErrorKind::ConnectionRefused => Reason::Refused,
        io::ErrorKind::TimedOut => Reason::Timeout,
        _ => Reason::Io,
    };
    Failure::new(reason, format!("{what}: {e}"))
}

/// Maps an sqlx error; `database` classifies the server's own error codes.
pub fn sqlx_failure(
    err: sqlx::Error,
    database: impl Fn(&dyn sqlx::error::DatabaseError) -> Reason,
) -> Failure {
    match &err {
        sqlx::Error::Database(db) => Failure::new(database(db.as_ref()), db.message().to_owned()),
        sqlx::Error::Io(e) => io_failure("connection", e),
        sqlx::Error::Tls(e) => Failure::new(Reason::Tls, format!("TLS: {e}")),
        sqlx::Error::Protocol(msg) => Failure::new(Reason::Io, format!("protocol error: {msg}")),
        other => Failure::new(Reason::Query, other.to_string()),
    }
}

/// Maps a failure on the way through a bastion: the bastion's own, or the database's as the
/// bastion saw it.
pub fn tunnel_failure(e: TunnelError) -> Failure {
    let reason = match e.failure {
        tunnel::Failure::BastionDns => Reason::BastionDns,
        tunnel::Failure::BastionRefused => Reason::BastionRefused,
        tunnel::Failure::BastionTimeout => Reason::BastionTimeout,
        tunnel::Failure::BastionHostKey => Reason::BastionHostKey,
        tunnel::Failure::BastionAuth => Reason::BastionAuth,
        tunnel::Failure::BastionDenied => Reason::BastionDenied,
        tunnel::Failure::BastionIo => Reason::BastionIo,
        tunnel::Failure::DatabaseRefused => Reason::Refused,
        tunnel::Failure::DatabaseTimeout => Reason::Timeout,
    };
    Failure::new(reason, e.message)
}
