//! The sockets dbvigil serves on, as exporter-toolkit opens them: every
//! `--web.listen-address` (`:port` on IPv6 and IPv4 at once), or with
//! `--web.systemd-socket` the listening sockets systemd passed in instead.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::fd::{FromRawFd, RawFd};

use socket2::{Domain, Protocol, Socket, Type};

/// What a `--web.listen-address` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenAddress {
    /// `:port`: every address of the host, IPv6 and IPv4.
    Any(u16),
    At(SocketAddr),
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(
        "invalid --web.listen-address {0:?}: write host:port (127.0.0.1:10150, [::1]:10150) or :port (:10150) for every address"
    )]
    Address(String),
    #[error("--web.listen-address {0} is given twice: give each address once")]
    Twice(String),
    #[error("cannot listen on {addr}: {source}; pass --web.listen-address with a free address")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "--web.systemd-socket: no socket was passed ({0}): start dbvigil from a systemd .socket unit (ListenStream=10150), or leave out --web.systemd-socket and use --web.listen-address"
    )]
    NoSystemdSocket(String),
    #[error(
        "--web.systemd-socket: file descriptor {fd} is not a listening TCP socket ({why}): serve dbvigil from ListenStream= sockets of a TCP address or port"
    )]
    NotTcp { fd: RawFd, why: String },
}

/// Where to serve, as the flags say; checked before anything is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sockets {
    /// `--web.systemd-socket`: `--web.listen-address` is ignored, as in exporter-toolkit.
    Systemd,
    Addresses(Vec<ListenAddress>),
}

impl Sockets {
    pub fn from_flags(addresses: &[String], systemd: bool) -> Result<Sockets, ListenError> {
        if systemd {
            return Ok(Sockets::Systemd);
        }
        let mut parsed: Vec<ListenAddress> = Vec::new();
        for text in addresses {
            let addr = parse_listen_address(text)?;
            if parsed.contains(&addr) {
                return Err(ListenError::Twice(text.clone()));
            }
            parsed.push(addr);
        }
        Ok(Sockets::Addresses(parsed))
    }

    /// Binds every address in order, or takes over systemd's sockets.
    pub fn open(&self) -> Result<Vec<TcpListener>, ListenError> {
        match self {
            Sockets::Systemd => systemd_sockets(),
            Sockets::Addresses(addresses) => addresses.iter().copied().map(bind).collect(),
        }
    }
}

pub fn parse_listen_address(addr: &str) -> Result<ListenAddress, ListenError> {
    let invalid = || ListenError::Address(addr.to_owned());
    match addr.strip_prefix(':') {
        Some(port) => port.parse().map(ListenAddress::Any).map_err(|_| invalid()),
        None => addr.parse().map(ListenAddress::At).map_err(|_| invalid()),
    }
}

fn bind(addr: ListenAddress) -> Result<TcpListener, ListenError> {
    match addr {
        ListenAddress::At(a) => listen(a, None),
        ListenAddress::Any(port) => {
            let v6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
            match listen(v6, Some(false)) {
                Err(ListenError::Bind { source, .. }) if no_ipv6(&source) => {
                    tracing::info!(
                        port,
                        error = %source,
                        "this host has no IPv6: listening on IPv4 only"
                    );
                    listen(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)), None)
                }
                other => other,
            }
        }
    }
}

/// The errors a host without IPv6 gives for an IPv6 socket or address.
fn no_ipv6(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL | libc::EPROTONOSUPPORT)
    )
}

/// A listening socket as tokio makes one (address reuse, backlog 1024), non-blocking;
/// `only_v6: Some(false)` serves IPv4 on an IPv6 socket too.
fn listen(addr: SocketAddr, only_v6: Option<bool>) -> Result<TcpListener, ListenError> {
    let bind = || -> std::io::Result<TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        if let Some(v6) = only_v6 {
            socket.set_only_v6(v6)?;
        }
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        Ok(socket.into())
    };
    bind().map_err(|source| ListenError::Bind { addr, source })
}

/// systemd's socket activation (sd_listen_fds(3)): `LISTEN_FDS` sockets from descriptor 3,
/// meant for us when `LISTEN_PID` is our pid. The variables are left in place: a child
/// would see another pid in them, and the descriptors are closed on exec.
fn systemd_sockets() -> Result<Vec<TcpListener>, ListenError> {
    const FIRST: RawFd = 3;
    let var = |name: &str| std::env::var(name).ok();
    let (Some(pid), Some(count)) = (var("LISTEN_PID"), var("LISTEN_FDS")) else {
        return Err(ListenError::NoSystemdSocket(
            "LISTEN_PID and LISTEN_FDS are not set".to_owned(),
        ));
    };
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Err(ListenError::NoSystemdSocket(format!(
            "LISTEN_PID is {pid}, not the pid of dbvigil ({}): the sockets were meant for another process",
            std::process::id()
        )));
    }
    let count: RawFd = match count.trim().parse() {
        Ok(n) if n > 0 => n,
        _ => {
            return Err(ListenError::NoSystemdSocket(format!(
                "LISTEN_FDS is {count:?}"
            )));
        }
    };
    (FIRST..FIRST + count).map(adopt).collect()
}

/// Takes over a passed descriptor once it is known to be a listening TCP socket.
fn adopt(fd: RawFd) -> Result<TcpListener, ListenError> {
    let int = |option: libc::c_int| -> std::io::Result<libc::c_int> {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `value`; on a descriptor that
        // is not a socket it fails with ENOTSOCK and writes nothing.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            Ok(value)
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    let not_tcp = |why: String| ListenError::NotTcp { fd, why };
    let domain = int(libc::SO_DOMAIN).map_err(|e| not_tcp(e.to_string()))?;
    if domain != libc::AF_INET && domain != libc::AF_INET6 {
        return Err(not_tcp(if domain == libc::AF_UNIX {
            "a Unix socket".to_owned()
        } else {
            format!("address family {domain}")
        }));
    }
    if int(libc::SO_TYPE).map_err(|e| not_tcp(e.to_string()))? != libc::SOCK_STREAM {
        return Err(not_tcp("a datagram socket".to_owned()));
    }
    if int(libc::SO_ACCEPTCONN).map_err(|e| not_tcp(e.to_string()))? == 0 {
        return Err(not_tcp("not listening".to_owned()));
    }
    // Closed on exec, as every descriptor dbvigil opens itself.
    // SAFETY: fcntl reads and sets the flags of a descriptor; it touches no memory.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(not_tcp(std::io::Error::last_os_error().to_string()));
    }
    // SAFETY: systemd handed this descriptor to this process, and nothing else in it owns
    // it: from here the listener does.
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    listener
        .set_nonblocking(true)
        .map_err(|e| not_tcp(e.to_string()))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_listen_address(":10150").unwrap(),
            ListenAddress::Any(10150)
        );
        assert_eq!(
            parse_listen_address("[::1]:9").unwrap(),
            ListenAddress::At("[::1]:9".parse().unwrap())
        );
        for bad in ["10150", "localhost:10150", ":x", "[::1]", ""] {
            assert!(parse_listen_address(bad).is_err(), "{bad}");
        }
        let twice = Sockets::from_flags(&[":10150".into(), ":10150".into()], false).unwrap_err();
        assert_eq!(
            twice.to_string(),
            "--web.listen-address :10150 is given twice: give each address once"
        );
    }
}
