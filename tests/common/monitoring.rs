//! Real Prometheus and Alertmanager processes (Debian's packages) for the monitoring
//! bundle's tests, each on a free port in a temporary directory.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::servers::{free_port, skip_or_fail};
use super::{eventually, send};

const READY: Duration = Duration::from_secs(60);

/// Whether a command is on PATH; when not, skips (or fails under CI=true) with a reason.
pub fn have(command: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .output()
        .is_ok_and(|o| o.status.success());
    found
        || !skip_or_fail(&format!(
            "{command} is not installed (apt-get install {package})"
        ))
}

/// A helper process, stopped when dropped (also when the test panics).
pub struct Process {
    child: Child,
    pub addr: SocketAddr,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn spawn(mut cmd: Command, port: u16) -> Process {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let process = Process { child, addr };
    eventually(READY, &format!("{cmd:?} listening"), || async {
        tokio::net::TcpStream::connect(addr).await.ok().map(drop)
    })
    .await;
    eventually(READY, &format!("{cmd:?} ready"), || async {
        let ready = tokio::time::timeout(
            Duration::from_secs(2),
            send(addr, "GET", "/-/ready", &[], ""),
        );
        ready.await.is_ok_and(|r| r.status == 200).then_some(())
    })
    .await;
    process
}

/// Prometheus with `config` (YAML) as its configuration, its data in `dir`.
pub async fn prometheus(dir: &Path, config: &str) -> Process {
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, config).unwrap();
    let port = free_port();
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!("--config.file={}", path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    spawn(cmd, port).await
}

/// Alertmanager with the configuration file at `config`, its data in `dir`.
pub async fn alertmanager(dir: &Path, config: &Path) -> Process {
    let port = free_port();
    let mut cmd = Command::new("prometheus-alertmanager");
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.path={}",
            dir.join("alertmanager").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=");
    spawn(cmd, port).await
}

/// An instant query: the HTTP status and the parsed answer.
pub async fn query(prometheus: SocketAddr, expr: &str) -> (u16, Value) {
    let q: String = url::form_urlencoded::byte_serialize(expr.as_bytes()).collect();
    let r = send(
        prometheus,
        "GET",
        &format!("/api/v1/query?query={q}"),
        &[],
        "",
    )
    .await;
    (
        r.status,
        serde_json::from_str(&r.body).unwrap_or(Value::Null),
    )
}

/// The series an instant query returns (empty on error).
pub async fn series(prometheus: SocketAddr, expr: &str) -> Vec<Value> {
    query(prometheus, expr).await.1["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The labels that tell two dbvigil replicas apart in the shipped setups (the default
/// `replica_labels` of mixin/config.py).
pub const REPLICA_LABELS: &[&str] = &["instance", "pod"];

/// Two dbvigil replicas probing the same targets, as compose/kubernetes/dbvigil.yaml runs
/// them: each with `yaml` in its own subdirectory of `dir` (its own data) and its own
/// exporter instance name (its own heartbeat rows). Relative paths in `yaml` resolve in
/// each replica's directory.
pub async fn replicas(dir: &Path, yaml: &str) -> [super::TestExporter; 2] {
    let mut started = Vec::new();
    for i in 0..2 {
        let own = dir.join(format!("replica-{i}"));
        std::fs::create_dir_all(&own).unwrap();
        started.push(
            super::TestExporter::start(&own, &format!("instance: replica-{i}\n{yaml}")).await,
        );
    }
    started.try_into().ok().unwrap()
}

/// A scrape configuration with one job, `dbvigil`, over every replica.
pub fn scrape_job(replicas: &[super::TestExporter]) -> String {
    let targets: Vec<String> = replicas.iter().map(|r| format!("\"{}\"", r.addr)).collect();
    format!(
        "scrape_configs:\n  - job_name: dbvigil\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    )
}

/// The replica labels a result series carries.
pub fn replica_labels_of(series: &Value) -> Vec<&'static str> {
    REPLICA_LABELS
        .iter()
        .copied()
        .filter(|l| !series["metric"][*l].is_null())
        .collect()
}
