//! Shared test harness: an in-process exporter on port 0, a small HTTP client, metric
//! parsing, and throwaway database servers (see servers/), the topologies around them
//! (topology.rs: PgBouncer), lost packets (netfault.rs), a forward proxy (proxy.rs) and an
//! OpenSSH bastion (sshd.rs).
#![allow(dead_code)]

pub mod db;
pub mod forwarder;
pub mod monitoring;
pub mod netfault;
pub mod plan;
pub mod proxy;
pub mod servers;
pub mod sshd;
pub mod topology;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dbvigil::config::ConfigSource;
use dbvigil::exporter::{Exporter, Settings};
use dbvigil::http::{self, WebSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// A running exporter serving HTTP on 127.0.0.1 with a free port.
pub struct TestExporter {
    pub exporter: Exporter,
    pub addr: std::net::SocketAddr,
    pub config_path: PathBuf,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestExporter {
    /// Writes `yaml` to `dir/dbvigil.yml`, loads it as the real CLI would, starts probing
    /// and serving.
    pub async fn start(dir: &Path, yaml: &str) -> TestExporter {
        TestExporter::start_with_web(dir, yaml, None).await
    }

    /// [`TestExporter::start`] with `--web.config.file` (TLS, basic auth).
    pub async fn start_with_web(dir: &Path, yaml: &str, web: Option<&Path>) -> TestExporter {
        let config_path = dir.join("dbvigil.yml");
        std::fs::write(&config_path, yaml).unwrap();
        let settings = Settings {
            source: ConfigSource::File(config_path.clone()),
            default_instance: "test-instance".to_owned(),
            data_dir: dir.to_owned(),
            web_config_file: web.map(Path::to_owned),
            shard: Default::default(),
        };
        let config = settings
            .source
            .load(&settings.default_instance)
            .unwrap_or_else(|e| panic!("test configuration is invalid: {e}"));
        let exporter = Exporter::start(settings, config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(http::serve(
            exporter.clone(),
            vec![listener],
            WebSettings::default(),
            shutdown.clone(),
        ));
        TestExporter {
            exporter,
            addr,
            config_path,
            shutdown,
            server: Some(server),
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        request(self.addr, "GET", path, &[]).await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        request(self.addr, "GET", path, headers).await
    }

    pub async fn post(&self, path: &str) -> Response {
        request(self.addr, "POST", path, &[]).await
    }

    pub async fn metrics(&self) -> Metrics {
        let r = self.get("/metrics").await;
        assert_eq!(r.status, 200, "{}", r.body);
        Metrics::parse(&r.body)
    }

    pub async fn targets_json(&self) -> serde_json::Value {
        let r = self.get("/api/v1/targets").await;
        assert_eq!(r.status, 200);
        serde_json::from_str(&r.body).unwrap()
    }

    pub async fn target_json(&self, name: &str) -> serde_json::Value {
        let all = self.targets_json().await;
        all["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("target {name} not in the API"))
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(s) = self.server.take() {
            s.await.unwrap().unwrap();
        }
        self.exporter.shutdown().await;
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 client: one request per connection, body read to EOF.
pub async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    send(addr, method, path, headers, "").await
}

/// [`request`] with a body.
pub async fn send(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    exchange(stream, &addr.to_string(), method, path, headers, body)
        .await
        .unwrap()
}

/// One request over an open connection (plain or TLS), read to EOF; Err when the
/// connection fails before a whole answer arrives.
pub async fn exchange<S>(
    mut stream: S,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<Response>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let addr = host;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8(raw).map_err(std::io::Error::other)?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP answer: {text:?}")))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// One sample: metric name, labels, value.
pub type Sample = (String, Vec<(String, String)>, f64);

/// Samples of one exposition, in classic text format.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub samples: Vec<Sample>,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = match value {
                "NaN" => f64::NAN,
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad sample {line:?}")),
            };
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n.to_owned(), parse_labels(rest.trim_end_matches('}'))),
                None => (series.to_owned(), Vec::new()),
            };
            samples.push((name, labels, value));
        }
        Metrics { samples }
    }

    /// The value of the one sample named `name` whose labels include all of `labels`.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = self.samples.iter().filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        });
        let first = found.next().map(|(_, _, v)| *v);
        assert!(
            found.next().is_none(),
            "more than one sample {name} {labels:?}"
        );
        first
    }

    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
    }

    /// Every `dbvigil_probe_failures_total` of `target` that is not zero, by reason.
    pub fn failures(&self, target: &str) -> std::collections::BTreeMap<String, f64> {
        self.samples
            .iter()
            .filter(|(n, l, v)| {
                n == "dbvigil_probe_failures_total"
                    && l.iter().any(|(k, lv)| k == "target" && lv == target)
                    && *v != 0.0
            })
            .map(|(_, l, v)| {
                let reason = l.iter().find(|(k, _)| k == "reason").map_or("", |(_, r)| r);
                (reason.to_owned(), *v)
            })
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|(n, _, _)| n == name)
    }
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some((k, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(match n {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((k.trim_start_matches(',').trim().to_owned(), value));
        rest = &after[end..];
    }
    out
}

/// Polls `condition` until it returns `Some` or `within` passes; panics with `what`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = condition().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {within:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How a run of the dbvigil binary ended, printed whole when an assertion fails.
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Runs `cmd` to the end.
    pub fn of(cmd: &mut Command) -> Outcome {
        let out = cmd.output().unwrap();
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// stdout then stderr, for checks that hold for every output.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A temporary directory that the harness and throwaway servers can share.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("dbvigil-test-")
        .tempdir()
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real dbvigil binary, started in a directory on a free port, its stderr in a file.
pub struct Running {
    child: Child,
    pub addr: std::net::SocketAddr,
    log: std::path::PathBuf,
}

impl Running {
    /// Starts the binary in `cwd` on a free port and waits until it answers.
    pub async fn start(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Running {
        let port = servers::free_port();
        let log = cwd.join("dbvigil.log");
        let child = Command::new(env!("CARGO_BIN_EXE_dbvigil"))
            .current_dir(cwd)
            .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(cwd.join("stdout.log")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        let r = Running { child, addr, log };
        eventually(
            Duration::from_secs(15),
            "dbvigil answers /-/healthy",
            || async {
                let ok = tokio::net::TcpStream::connect(addr).await.is_ok()
                    && request(addr, "GET", "/-/healthy", &[]).await.status == 200;
                ok.then_some(())
            },
        )
        .await;
        r
    }

    pub async fn metrics(&self) -> Metrics {
        Metrics::parse(&request(self.addr, "GET", "/metrics", &[]).await.body)
    }

    /// The process id, to read /proc/PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// SIGTERM, and the process must exit successfully on its own.
    pub fn terminate(mut self) -> String {
        self.signal(libc::SIGTERM);
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "exit status {status} after SIGTERM:\n{}",
                    self.log()
                );
                return self.log();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no exit after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `statements` on the application's SQLite database, as the application would.
pub async fn app_sql(path: &Path, statements: &str) {
    use sqlx::{ConnectOptions, Connection, sqlite::SqliteConnectOptions};
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    sqlx::raw_sql(statements).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}

/// An application's SQLite database whose maintenance flag (`SELECT maintenance FROM
/// service_context LIMIT 1`) is off.
pub async fn app_flag_db(path: &Path) {
    app_sql(
        path,
        "CREATE TABLE service_context (id INTEGER PRIMARY KEY, maintenance BOOLEAN NOT NULL);
         INSERT INTO service_context VALUES (1, 0);",
    )
    .await;
}
