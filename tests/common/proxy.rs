//! A forward proxy for tests, as an office network has: `CONNECT` tunnels for https URLs,
//! absolute-form requests for http URLs. It resolves names from its own table, so a client
//! can only reach those hosts through it, and it records each request line and the
//! `Proxy-Authorization` it was given.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy was asked: the request line and the `Proxy-Authorization` header.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub request: String,
    pub authorization: Option<String>,
}

pub struct Proxy {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy that carries requests; `hosts` are names only it can resolve.
    pub async fn start(hosts: &[(&str, SocketAddr)]) -> Proxy {
        let hosts: HashMap<String, SocketAddr> =
            hosts.iter().map(|(h, a)| (h.to_string(), *a)).collect();
        Proxy::listen(Some(Arc::new(hosts))).await
    }

    /// A proxy that answers every request with 407, whatever credentials it gets.
    pub async fn refusing() -> Proxy {
        Proxy::listen(None).await
    }

    async fn listen(hosts: Option<Arc<HashMap<String, SocketAddr>>>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (hosts, log) = (hosts.clone(), log.clone());
                tokio::spawn(async move {
                    let _ = serve(client, hosts, log).await;
                });
            }
        });
        Proxy { addr, seen, task }
    }

    /// The proxy's URL, with `user:password@` if given.
    pub fn url(&self, credentials: Option<&str>) -> String {
        match credentials {
            Some(c) => format!("http://{c}@{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut client: TcpStream,
    hosts: Option<Arc<HashMap<String, SocketAddr>>>,
    log: Arc<Mutex<Vec<Seen>>>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).await? == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let request = lines.next().unwrap_or_default().to_owned();
    let authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("proxy-authorization"))
        .map(|(_, v)| v.trim().to_owned());
    log.lock().unwrap().push(Seen {
        request: request.clone(),
        authorization,
    });
    let Some(hosts) = hosts else {
        client
            .write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n\
                  Proxy-Authenticate: Basic realm=\"test\"\r\n\
                  Content-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await?;
        return Ok(());
    };
    let mut parts = request.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    // CONNECT names host:port; an absolute-form request carries it in its URL and goes on
    // in origin form, with the rest of its head.
    let (authority, forward) = if method == "CONNECT" {
        (target, None)
    } else {
        let rest = target.strip_prefix("http://").unwrap_or_default();
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let version = parts.next().unwrap_or("HTTP/1.1");
        let headers = head.split_once("\r\n").map(|(_, h)| h).unwrap_or_default();
        (
            authority,
            Some(format!("{method} /{path} {version}\r\n{headers}")),
        )
    };
    let to = authority.rsplit_once(':').and_then(|(host, port)| {
        let ip = hosts.get(host)?.ip();
        Some(SocketAddr::new(ip, port.parse().ok()?))
    });
    let Some(to) = to else {
        client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return Ok(());
    };
    let mut server = TcpStream::connect(to).await?;
    match forward {
        None => {
            client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await?
        }
        Some(head) => server.write_all(head.as_bytes()).await?,
    }
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}
