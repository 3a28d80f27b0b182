//! dbvigil's own port as every Prometheus exporter has it: several listen addresses,
//! `:port` on IPv6 and IPv4, systemd socket activation, gzip when the scraper asks for it,
//! and the standard `process_*` metrics. The listening tests run the real binary.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::servers::free_port;
use common::{Metrics, TestExporter, eventually, tempdir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SQLITE: &str =
    "targets:\n  - {name: app, kind: sqlite, path: app.db, create: true, interval: 1s}\n";

/// The binary, killed when dropped; its stderr in `log`.
struct Binary {
    child: Child,
    log: PathBuf,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Binary {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn command(dir: &Path, args: &[&str]) -> Command {
    std::fs::write(dir.join("dbvigil.yml"), SQLITE).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dbvigil"));
    cmd.current_dir(dir)
        .args(["--config.file", "dbvigil.yml", "--data.dir", "data"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("log")).unwrap());
    cmd
}

fn start(mut cmd: Command, dir: &Path) -> Binary {
    Binary {
        child: cmd.spawn().unwrap(),
        log: dir.join("log"),
    }
}

async fn healthy(addr: SocketAddr) {
    eventually(
        Duration::from_secs(15),
        &format!("dbvigil answers on {addr}"),
        || async {
            let up = tokio::net::TcpStream::connect(addr).await.is_ok()
                && common::request(addr, "GET", "/-/healthy", &[]).await.status == 200;
            up.then_some(())
        },
    )
    .await;
}

/// Runs the binary to its end: exit code and stderr.
fn fails(dir: &Path, mut cmd: Command) -> (i32, String) {
    let status = cmd.status().unwrap();
    (
        status.code().unwrap_or(-1),
        std::fs::read_to_string(dir.join("log")).unwrap(),
    )
}

#[tokio::test]
async fn serves_on_every_listen_address_given() {
    let dir = tempdir();
    let v4: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let v6: SocketAddr = format!("[::1]:{}", free_port()).parse().unwrap();
    let cmd = command(
        dir.path(),
        &[
            "--web.listen-address",
            &v4.to_string(),
            "--web.listen-address",
            &v6.to_string(),
        ],
    );
    let b = start(cmd, dir.path());
    for addr in [v4, v6] {
        healthy(addr).await;
        let r = common::request(addr, "GET", "/metrics", &[]).await;
        assert!(Metrics::parse(&r.body).has("dbvigil_up"), "{addr}");
    }
    assert!(
        b.log().contains(&format!(
            "listening; metrics at http://{v4}/metrics, http://{v6}/metrics"
        )),
        "{}",
        b.log()
    );
}

/// `:port` is every address of the host, IPv6 and IPv4 alike, on one dual-stack socket.
#[tokio::test]
async fn a_bare_port_listens_on_ipv4_and_ipv6() {
    let dir = tempdir();
    let port = free_port();
    let b = start(
        command(dir.path(), &["--web.listen-address", &format!(":{port}")]),
        dir.path(),
    );
    for addr in [format!("127.0.0.1:{port}"), format!("[::1]:{port}")] {
        healthy(addr.parse().unwrap()).await;
    }
    assert!(
        b.log()
            .contains(&format!("metrics at http://[::]:{port}/metrics")),
        "{}",
        b.log()
    );
}

#[test]
fn listen_addresses_are_checked_before_anything_starts() {
    let dir = tempdir();
    for (args, expected) in [
        (
            vec![
                "--web.listen-address",
                ":10150",
                "--web.listen-address",
                ":10150",
            ],
            "--web.listen-address :10150 is given twice: give each address once",
        ),
        (
            vec!["--web.listen-address", "localhost:10150"],
            "invalid --web.listen-address \\\"localhost:10150\\\": write host:port (127.0.0.1:10150, [::1]:10150) or :port (:10150) for every address",
        ),
    ] {
        let (code, log) = fails(dir.path(), command(dir.path(), &args));
        assert_eq!(code, 1, "{args:?}: {log}");
        assert!(log.contains(expected), "{args:?}: {log}");
    }
}

/// `binary` started the way systemd starts a socket-activated service: `fd` as descriptor
/// 3, LISTEN_FDS=1, and LISTEN_PID set to the pid of the process that gets it (the shell
/// `exec`s the binary, which keeps the pid).
fn activated(dir: &Path, binary: &Command, fd: RawFd) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@""#)
        .arg(binary.get_program())
        .args(binary.get_args())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("log")).unwrap());
    // SAFETY: between fork and exec only dup2 and fcntl run, which are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                // Already in place: only keep it open across exec.
                let flags = libc::fcntl(3, libc::F_GETFD);
                if flags < 0 || libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// A listening socket passed the way systemd passes one: as descriptor 3, with
/// LISTEN_FDS=1 and LISTEN_PID set to the pid of the process that gets it (the shell
/// `exec`s dbvigil, which keeps the pid).
#[tokio::test]
async fn serves_on_the_socket_systemd_passes() {
    let dir = tempdir();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // The listen address is ignored with --web.systemd-socket, as in exporter-toolkit.
    let flags = command(
        dir.path(),
        &[
            "--web.systemd-socket",
            "--web.listen-address",
            "127.0.0.1:1",
        ],
    );
    let cmd = activated(dir.path(), &flags, listener.as_raw_fd());
    let b = start(cmd, dir.path());
    // The socket is dbvigil's now; the test keeps no copy that could take connections.
    drop(listener);
    healthy(addr).await;
    let r = common::request(addr, "GET", "/metrics", &[]).await;
    assert!(Metrics::parse(&r.body).has("dbvigil_up"));
    let log = b.log();
    assert!(
        log.contains("--web.systemd-socket: serving on the sockets systemd passed")
            && log.contains(&format!("metrics at http://{addr}/metrics")),
        "{log}"
    );
}

#[test]
fn the_systemd_flag_without_a_socket_says_what_to_do() {
    let dir = tempdir();
    let cases = [
        (
            vec![],
            "--web.systemd-socket: no socket was passed (LISTEN_PID and LISTEN_FDS are not set): start dbvigil from a systemd .socket unit (ListenStream=10150), or leave out --web.systemd-socket and use --web.listen-address",
        ),
        (
            vec![("LISTEN_PID", "1"), ("LISTEN_FDS", "1")],
            "--web.systemd-socket: no socket was passed (LISTEN_PID is 1, not the pid of dbvigil",
        ),
    ];
    for (env, expected) in cases {
        let mut cmd = command(dir.path(), &["--web.systemd-socket"]);
        cmd.env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDS")
            .envs(env);
        let (code, log) = fails(dir.path(), cmd);
        assert_eq!(code, 1, "{log}");
        assert!(log.contains(expected), "{log}");
    }
    // LISTEN_PID is ours, but descriptor 3 is a plain file, not a listening socket.
    let file = std::fs::File::create(dir.path().join("not-a-socket")).unwrap();
    let flags = command(dir.path(), &["--web.systemd-socket"]);
    let cmd = activated(dir.path(), &flags, file.as_raw_fd());
    let (code, log) = fails(dir.path(), cmd);
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("--web.systemd-socket: file descriptor 3 is not a listening TCP socket"),
        "{log}"
    );
}

/// One GET, its status, headers and body as bytes (a gzipped body is not text).
async fn get_bytes(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, raw[split + 4..].to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The series an exposition holds, without their values (which move between scrapes).
fn series(text: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut s: Vec<_> = Metrics::parse(text)
        .samples
        .into_iter()
        .map(|(n, l, _)| (n, l))
        .collect();
    s.sort();
    s
}

#[tokio::test]
async fn metrics_are_gzipped_when_the_scraper_asks_and_only_then() {
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), SQLITE).await;
    let (status, plain_headers, plain) = get_bytes(e.addr, "/metrics", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&plain_headers, "content-encoding"), None);
    assert_eq!(header(&plain_headers, "vary"), Some("accept-encoding"));
    let plain = String::from_utf8(plain).unwrap();
    // Prometheus's own header.
    let asks = "gzip";
    let (status, headers, packed) =
        get_bytes(e.addr, "/metrics", &[("Accept-Encoding", asks)]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-encoding"), Some("gzip"));
    assert_eq!(header(&headers, "vary"), Some("accept-encoding"));
    assert_eq!(
        header(&headers, "content-type"),
        header(&plain_headers, "content-type")
    );
    let mut unpacked = String::new();
    flate2::read::GzDecoder::new(&packed[..])
        .read_to_string(&mut unpacked)
        .unwrap();
    // One target's exposition is mostly descriptors; a fleet's compresses far better.
    assert!(
        packed.len() < plain.len() / 3,
        "{} of {} bytes",
        packed.len(),
        plain.len()
    );
    assert_eq!(series(&unpacked), series(&plain));
    for refused in ["gzip;q=0", "identity", "br, *;q=0"] {
        let (_, headers, body) =
            get_bytes(e.addr, "/metrics", &[("Accept-Encoding", refused)]).await;
        assert_eq!(header(&headers, "content-encoding"), None, "{refused}");
        assert!(
            String::from_utf8(body).unwrap().contains("dbvigil_up"),
            "{refused}"
        );
    }
    // OpenMetrics, gzipped, still ends with its EOF.
    let (_, _, packed) = get_bytes(
        e.addr,
        "/metrics",
        &[
            ("Accept", "application/openmetrics-text;version=1.0.0"),
            ("Accept-Encoding", "gzip, deflate"),
        ],
    )
    .await;
    let mut unpacked = String::new();
    flate2::read::GzDecoder::new(&packed[..])
        .read_to_string(&mut unpacked)
        .unwrap();
    assert!(unpacked.ends_with("# EOF\n"), "{unpacked}");
    e.stop().await;
}

const PROCESS_METRICS: &[(&str, &str)] = &[
    ("process_cpu_seconds_total", "counter"),
    ("process_open_fds", "gauge"),
    ("process_max_fds", "gauge"),
    ("process_virtual_memory_bytes", "gauge"),
    ("process_virtual_memory_max_bytes", "gauge"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_start_time_seconds", "gauge"),
    ("process_network_receive_bytes_total", "counter"),
    ("process_network_transmit_bytes_total", "counter"),
];

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The real process: every metric with its type, a start time that is when the test
/// started it, open descriptors that follow the connections held, CPU time that grows.
#[tokio::test]
async fn process_metrics_are_present_and_move() {
    let dir = tempdir();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let before = now();
    let _b = start(
        command(dir.path(), &["--web.listen-address", &addr.to_string()]),
        dir.path(),
    );
    let after = now();
    healthy(addr).await;
    let scrape = || async { common::request(addr, "GET", "/metrics", &[]).await.body };
    let text = scrape().await;
    for (name, kind) in PROCESS_METRICS {
        assert!(
            text.contains(&format!("\n# TYPE {name} {kind}\n")),
            "{name} {kind}:\n{text}"
        );
    }
    let m = Metrics::parse(&text);
    let start_time = m.value("process_start_time_seconds", &[]);
    assert!(
        start_time > before - 1.0 && start_time < after + 1.0,
        "started at {start_time}, spawned between {before} and {after}"
    );
    assert!(m.value("process_resident_memory_bytes", &[]) > 1e6);
    assert!(
        m.value("process_virtual_memory_bytes", &[])
            >= m.value("process_resident_memory_bytes", &[])
    );
    assert!(m.value("process_max_fds", &[]) >= m.value("process_open_fds", &[]));
    // Twenty idle connections are twenty more descriptors.
    let fds = m.value("process_open_fds", &[]);
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    eventually(
        Duration::from_secs(10),
        "open fds follow the connections",
        || async {
            let now = Metrics::parse(&scrape().await).value("process_open_fds", &[]);
            (now >= fds + 20.0).then_some(())
        },
    )
    .await;
    drop(held);
    // Scrapes cost CPU time: it grows while they run.
    let cpu = m.value("process_cpu_seconds_total", &[]);
    eventually(
        Duration::from_secs(30),
        "CPU seconds grow under load",
        || async {
            let mut last = 0.0;
            for _ in 0..20 {
                last = Metrics::parse(&scrape().await).value("process_cpu_seconds_total", &[]);
            }
            (last > cpu).then_some(())
        },
    )
    .await;
}

#[test]
fn every_process_metric_is_documented() {
    let doc = std::fs::read_to_string("docs/metrics.md").unwrap();
    for (name, kind) in PROCESS_METRICS {
        assert!(
            doc.contains(&format!("| `{name}` | {kind} |")),
            "docs/metrics.md has no row for {name} ({kind})"
        );
    }
}
