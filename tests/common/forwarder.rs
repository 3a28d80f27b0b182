//! A TCP forwarder for tests: stands in for a DNS name or proxy that moves between servers,
//! has gaps with no backend, or flaps.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub struct Forwarder {
    pub port: u16,
    backend: Arc<Mutex<Option<u16>>>,
    /// When set, every other connection is hung up at once: a member that flaps.
    flap: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    pub async fn start(backend: u16) -> Forwarder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let backend = Arc::new(Mutex::new(Some(backend)));
        let current = backend.clone();
        let flap = Arc::new(AtomicBool::new(false));
        let flapping = flap.clone();
        let task = tokio::spawn(async move {
            let mut accepted: u64 = 0;
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                accepted += 1;
                if flapping.load(Ordering::Relaxed) && accepted % 2 == 0 {
                    continue;
                }
                // During a gap the forwarder accepts and hangs up at once, like a proxy
                // with no healthy backend.
                let Some(to) = *current.lock().unwrap() else {
                    continue;
                };
                tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Forwarder {
            port,
            backend,
            flap,
            task,
        }
    }

    pub fn switch(&self, to: Option<u16>) {
        *self.backend.lock().unwrap() = to;
    }

    pub fn set_flapping(&self, on: bool) {
        self.flap.store(on, Ordering::Relaxed);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}
