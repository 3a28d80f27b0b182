//! Maintenance windows as silences in a real Alertmanager (Debian's), reached over TLS with
//! basic auth: another exporter's alert is silenced while a window (API, schedule or the
//! application's flag) is open and fires once it ends; extending and ending move the
//! silence, also while Alertmanager is down; two replicas sharing a store keep one silence;
//! a reload that removes a schedule ends its silence without two configurations fighting.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::monitoring::have;
use common::servers::{PgServer, free_port};
use common::{TestExporter, app_flag_db, app_sql, eventually, send, tempdir};
use serde_json::{Value, json};

const TOKEN: &str = "silences-token-0123456789abcdef";
const AM_USER: &str = "dbvigil";
const AM_PASSWORD: &str = "alertmanager horse battery";
const WAIT: Duration = Duration::from_secs(20);

/// A CA and a certificate for 127.0.0.1, made with openssl.
fn pki(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl is installed");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &key[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=test-ca",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &key[..],
            &[
                "-keyout",
                "am.key",
                "-out",
                "am.csr",
                "-subj",
                "/CN=alertmanager",
            ],
        ]
        .concat(),
    );
    std::fs::write(dir.join("am.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "am.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "am.crt",
        "-days",
        "2",
        "-extfile",
        "am.ext",
    ]);
}

/// Alertmanager on `port` with TLS and basic auth, its data in `dir`; stopped when dropped.
struct Alertmanager {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Alertmanager {
    /// Stops it as its service manager would (SIGTERM), so it writes its silences to its
    /// data directory and a restart on the same directory has them back.
    fn terminate(mut self) {
        // SAFETY: kill(2) on the pid of the child this test started and has not reaped.
        let sent = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(sent, 0, "SIGTERM to Alertmanager");
        let status = tokio::task::block_in_place(|| self.child.wait()).unwrap();
        assert!(
            status.success(),
            "Alertmanager exits cleanly on SIGTERM: {status}"
        );
    }

    async fn start(dir: &Path, port: u16) -> Alertmanager {
        let hash = bcrypt::hash(AM_PASSWORD, 4).unwrap();
        std::fs::write(
            dir.join("web.yml"),
            format!(
                "tls_server_config:\n  cert_file: am.crt\n  key_file: am.key\nbasic_auth_users:\n  {AM_USER}: {hash}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("alertmanager.yml"),
            "route:\n  receiver: nobody\n  group_wait: 0s\n  group_interval: 1s\nreceivers:\n  - name: nobody\n",
        )
        .unwrap();
        let child = Command::new("prometheus-alertmanager")
            .current_dir(dir)
            .arg("--config.file=alertmanager.yml")
            .arg("--web.config.file=web.yml")
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager starts");
        let am = Alertmanager {
            child,
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            dir: dir.to_owned(),
        };
        eventually(Duration::from_secs(60), "Alertmanager ready", || async {
            am.call(reqwest::Method::GET, "/-/ready", None)
                .await
                .ok()
                .filter(|(s, _)| *s == 200)
        })
        .await;
        am
    }

    fn client(&self) -> reqwest::Client {
        let ca = std::fs::read(self.dir.join("ca.crt")).unwrap();
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, String), reqwest::Error> {
        let mut r = self
            .client()
            .request(method, format!("https://{}{path}", self.addr))
            .basic_auth(AM_USER, Some(AM_PASSWORD));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let response = r.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None).await.unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Every silence it holds, expired ones included, by id.
    async fn silence_states(&self) -> std::collections::HashMap<String, String> {
        let all = self.get("/api/v2/silences").await;
        all.as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let id = s["id"].as_str().unwrap().to_owned();
                (id, s["status"]["state"].as_str().unwrap().to_owned())
            })
            .collect()
    }

    /// The ids of the silences not yet expired, sorted.
    async fn live_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .live_silences()
            .await
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    }

    /// Waits until the alert is `active` (it notifies) or `suppressed`.
    async fn wait_for_alert(&self, alertname: &str, state: &str, what: &str) {
        eventually(WAIT, what, || async {
            (self.alert_state(alertname).await.as_deref() == Some(state)).then_some(())
        })
        .await;
    }

    /// Silences not yet expired.
    async fn live_silences(&self) -> Vec<Value> {
        let all = self.get("/api/v2/silences").await;
        all.as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"]["state"] != "expired")
            .cloned()
            .collect()
    }

    /// An alert as another exporter's rules would send it.
    async fn fire(&self, alertname: &str, instance: &str) {
        let alert = json!([{
            "labels": {"alertname": alertname, "instance": instance, "job": "postgres"},
            "annotations": {"summary": "PostgreSQL is down"},
            "startsAt": chrono_now(),
            "endsAt": chrono_in(3600),
        }]);
        let (status, body) = self
            .call(reqwest::Method::POST, "/api/v2/alerts", Some(alert))
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
    }

    /// The alert's state: `active` (it notifies) or `suppressed`.
    async fn alert_state(&self, alertname: &str) -> Option<String> {
        let alerts = self.get("/api/v2/alerts").await;
        alerts.as_array()?.iter().find_map(|a| {
            (a["labels"]["alertname"] == alertname)
                .then(|| a["status"]["state"].as_str().unwrap().to_owned())
        })
    }
}

fn chrono_now() -> String {
    dbvigil::time::Timestamp::now().to_string()
}

fn chrono_in(secs: u64) -> String {
    (dbvigil::time::Timestamp::now() + Duration::from_secs(secs)).to_string()
}

fn config(dir: &Path, am: SocketAddr, state: &str) -> String {
    config_with(dir, am, state, &Extra::default())
}

/// What some tests add to [`config`].
struct Extra<'a> {
    /// Lines of the `orders` target.
    target: &'a str,
    /// Lines of `maintenance:`.
    maintenance: &'a str,
    sync_interval: &'a str,
}

impl Default for Extra<'_> {
    fn default() -> Self {
        Extra {
            target: "",
            maintenance: "",
            sync_interval: "1s",
        }
    }
}

fn config_with(dir: &Path, am: SocketAddr, state: &str, extra: &Extra) -> String {
    std::fs::write(dir.join("tokens"), format!("{TOKEN}\n")).unwrap();
    std::fs::write(dir.join("am-password"), format!("{AM_PASSWORD}\n")).unwrap();
    let Extra {
        target,
        maintenance,
        sync_interval,
    } = extra;
    format!(
        "targets:\n\
         \x20 - name: orders\n    kind: sqlite\n    path: orders.db\n    interval: 200ms\n\
         {target}\
         maintenance:\n  tokens_file: tokens\n\
         {maintenance}\
         {state}\
         alertmanager:\n\
         \x20 urls: [https://{am}]\n\
         \x20 basic_auth: {{username: {AM_USER}, password_file: am-password}}\n\
         \x20 tls_config: {{ca_file: ca.crt}}\n\
         \x20 sync_interval: {sync_interval}\n\
         \x20 silences:\n\
         \x20   - scope: orders\n      matchers: ['instance=~\"orders-db.*\"']\n"
    )
}

async fn post(e: &TestExporter, path: &str, body: &str) -> Value {
    let auth = format!("Bearer {TOKEN}");
    let r = send(e.addr, "POST", path, &[("Authorization", &auth)], body).await;
    assert!(
        r.status == 200 || r.status == 201,
        "{path}: {} {}",
        r.status,
        r.body
    );
    serde_json::from_str(&r.body).unwrap()
}

/// The silence for the other exporter's alerts: the one matching on `instance`.
fn instance_silence(silences: &[Value]) -> Option<&Value> {
    silences
        .iter()
        .find(|s| s["matchers"][0]["name"] == "instance")
}

fn ends_at(silence: &Value) -> dbvigil::time::Timestamp {
    silence["endsAt"].as_str().unwrap().parse().unwrap()
}

/// A temporary directory with an Alertmanager on a free port; `None` (the test skips) when
/// Alertmanager is not installed.
async fn with_alertmanager() -> Option<(tempfile::TempDir, Alertmanager)> {
    let dir = tempdir();
    if !setup(dir.path()) {
        return None;
    }
    let am = Alertmanager::start(dir.path(), free_port()).await;
    Some((dir, am))
}

fn setup(dir: &Path) -> bool {
    if !have("prometheus-alertmanager", "prometheus-alertmanager") {
        return false;
    }
    pki(dir);
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_silences_another_exporters_alerts_until_it_ends() {
    let Some((dir, am)) = with_alertmanager().await else {
        return;
    };
    let dbvigil = TestExporter::start(dir.path(), &config(dir.path(), am.addr, "")).await;
    am.fire("PostgresqlDown", "orders-db-1:9187").await;
    am.wait_for_alert(
        "PostgresqlDown",
        "active",
        "the alert is active before any window",
    )
    .await;
    assert!(am.live_silences().await.is_empty(), "no window, no silence");

    let window = post(
        &dbvigil,
        "/api/v1/maintenance",
        r#"{"scope":"orders","reason":"minor upgrade","duration":"10m","by":"alice"}"#,
    )
    .await;
    let id = window["id"].as_str().unwrap().to_owned();
    let planned: dbvigil::time::Timestamp = window["ends_at"].as_str().unwrap().parse().unwrap();
    am.wait_for_alert(
        "PostgresqlDown",
        "suppressed",
        "the other exporter's alert is silenced",
    )
    .await;
    let live = am.live_silences().await;
    assert_eq!(
        live.len(),
        2,
        "dbvigil's own alerts and the configured matchers: {live:#?}"
    );
    let silence = instance_silence(&live).expect("a silence on instance");
    assert_eq!(silence["matchers"][0]["value"], "orders-db.*");
    assert_eq!(silence["matchers"][0]["isRegex"], true);
    assert_eq!(silence["createdBy"], "alice (dbvigil)");
    let comment = silence["comment"].as_str().unwrap();
    assert!(
        comment.contains(&format!("Maintenance window {id} on orders"))
            && comment.contains("minor upgrade"),
        "{comment}"
    );
    assert!(
        ends_at(silence).since(planned) < Duration::from_secs(1)
            && planned.since(ends_at(silence)) < Duration::from_secs(1)
    );
    let own = live
        .iter()
        .find(|s| s["matchers"].to_string().contains("DbvigilTargetDown"))
        .unwrap();
    assert!(
        own["matchers"]
            .to_string()
            .contains(r#""name":"target","value":"orders""#),
        "{own}"
    );
    // The window's API answer names its silences.
    let shown = dbvigil.get(&format!("/api/v1/maintenance/{id}")).await;
    let shown: Value = serde_json::from_str(&shown.body).unwrap();
    let ids: Vec<&str> = shown["silences"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 2, "{shown:#}");
    assert!(ids.contains(&silence["id"].as_str().unwrap()));
    let m = dbvigil.metrics().await;
    assert_eq!(m.value("dbvigil_alertmanager_silences_in_place", &[]), 2.0);
    assert_eq!(m.value("dbvigil_alertmanager_silences_missing", &[]), 0.0);
    assert_eq!(m.value("dbvigil_alertmanager_sync_success", &[]), 1.0);

    // Extended: the silence ends with the window.
    let extended = post(
        &dbvigil,
        &format!("/api/v1/maintenance/{id}/extend"),
        r#"{"duration":"30m"}"#,
    )
    .await;
    let new_end: dbvigil::time::Timestamp = extended["ends_at"].as_str().unwrap().parse().unwrap();
    eventually(WAIT, "the silence is extended with the window", || async {
        let live = am.live_silences().await;
        let s = instance_silence(&live)?;
        (ends_at(s).since(new_end) < Duration::from_secs(1)
            && new_end.since(ends_at(s)) < Duration::from_secs(1))
        .then_some(())
    })
    .await;
    assert_eq!(am.live_silences().await.len(), 2, "moved, not duplicated");
    assert_eq!(
        am.alert_state("PostgresqlDown").await.as_deref(),
        Some("suppressed")
    );

    // Ended early: the silence expires and the alert notifies again.
    post(
        &dbvigil,
        &format!("/api/v1/maintenance/{id}/end"),
        r#"{"by":"alice"}"#,
    )
    .await;
    eventually(WAIT, "the silences expire with the window", || async {
        am.live_silences().await.is_empty().then_some(())
    })
    .await;
    am.wait_for_alert("PostgresqlDown", "active", "the alert is active again")
        .await;
    dbvigil.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_down_never_blocks_a_window_and_gets_its_silence_when_back() {
    let dir = tempdir();
    if !setup(dir.path()) {
        return;
    }
    let port = free_port();
    let am = Alertmanager::start(dir.path(), port).await;
    drop(am);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let dbvigil = TestExporter::start(dir.path(), &config(dir.path(), addr, "")).await;
    let window = post(
        &dbvigil,
        "/api/v1/maintenance",
        r#"{"scope":"orders","reason":"while Alertmanager is down","duration":"10m"}"#,
    )
    .await;
    let id = window["id"].as_str().unwrap().to_owned();
    assert_eq!(
        dbvigil.get("/maintenance/orders").await.status,
        503,
        "the window is open at once"
    );
    dbvigil.exporter.silences_step().await;
    let shown: Value =
        serde_json::from_str(&dbvigil.get(&format!("/api/v1/maintenance/{id}")).await.body)
            .unwrap();
    let silences = shown["silences"].as_array().unwrap();
    assert_eq!(silences.len(), 2, "{shown:#}");
    for s in silences {
        assert!(s["id"].is_null(), "{s}");
        let error = s["error"].as_str().unwrap();
        assert!(
            error.contains(&format!("https://127.0.0.1:{port}/"))
                && error.contains("cannot connect"),
            "{error}"
        );
    }
    let list: Value = serde_json::from_str(&dbvigil.get("/api/v1/maintenance").await.body).unwrap();
    assert_eq!(list["alertmanager"]["ok"], false, "{list:#}");
    let m = dbvigil.metrics().await;
    assert_eq!(m.value("dbvigil_alertmanager_sync_success", &[]), 0.0);
    assert_eq!(m.value("dbvigil_alertmanager_silences_missing", &[]), 2.0);
    assert!(m.value("dbvigil_alertmanager_sync_failures_total", &[]) >= 1.0);

    // Back on the same address: the loop's retry creates the silences.
    let am = Alertmanager::start(dir.path(), port).await;
    eventually(
        WAIT,
        "the silences appear once Alertmanager is back",
        || async { (am.live_silences().await.len() == 2).then_some(()) },
    )
    .await;
    eventually(WAIT, "the metrics say so", || async {
        let m = dbvigil.metrics().await;
        (m.value("dbvigil_alertmanager_silences_missing", &[]) == 0.0
            && m.value("dbvigil_alertmanager_sync_success", &[]) == 1.0)
            .then_some(())
    })
    .await;
    dbvigil.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sharing_a_store_keep_one_silence() {
    let dir = tempdir();
    if !setup(dir.path()) {
        return;
    }
    let Some(pg) = tokio::task::spawn_blocking(PgServer::start).await.unwrap() else {
        return;
    };
    tokio::task::block_in_place(|| pg.psql("CREATE DATABASE dbvigil_state"));
    // The replicas re-read the store only when the test says so, to hold one of them
    // behind the other.
    let state = format!(
        "state:\n  url: {}\n  refresh_interval: 1h\n",
        pg.url("postgres", None, "dbvigil_state")
    );
    let am = Alertmanager::start(dir.path(), free_port()).await;
    let mut replicas = Vec::new();
    for i in 0..2 {
        let own = dir.path().join(format!("replica-{i}"));
        std::fs::create_dir_all(&own).unwrap();
        std::fs::copy(dir.path().join("ca.crt"), own.join("ca.crt")).unwrap();
        replicas.push(TestExporter::start(&own, &config(&own, am.addr, &state)).await);
    }
    let (a, b) = (&replicas[0], &replicas[1]);
    post(
        a,
        "/api/v1/maintenance",
        r#"{"scope":"orders","reason":"shared","duration":"10m"}"#,
    )
    .await;
    b.exporter.maintenance_step().await;
    assert_eq!(
        b.get("/maintenance/orders").await.status,
        503,
        "b read a's window"
    );
    // Both step at once, over and over: however their creations race, they end with one
    // silence per matcher set, and keep it.
    for _ in 0..5 {
        tokio::join!(a.exporter.silences_step(), b.exporter.silences_step());
    }
    let held = am.live_ids().await;
    assert_eq!(held.len(), 2, "one silence per matcher set: {held:?}");
    for r in [a, b] {
        let status = r.exporter.silences();
        let mut ids: Vec<String> = status
            .silences
            .iter()
            .filter_map(|s| s.id.clone())
            .collect();
        ids.sort();
        assert_eq!(
            ids, held,
            "each replica names the silences Alertmanager holds: {status:#?}"
        );
    }

    // A window b has not read yet: b's steps must leave a's new silences alone.
    post(
        a,
        "/api/v1/maintenance",
        r#"{"scope":"*","reason":"everything","duration":"10m"}"#,
    )
    .await;
    a.exporter.silences_step().await;
    let with_all = am.live_silences().await.len();
    assert_eq!(
        with_all, 5,
        "\"*\" adds dbvigil's target and group alerts and the orders matchers"
    );
    for _ in 0..3 {
        b.exporter.silences_step().await;
    }
    assert_eq!(
        am.live_silences().await.len(),
        with_all,
        "a lagging replica expired nothing"
    );
    for r in replicas {
        r.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_adds_alertmanager_silences_the_windows_already_open() {
    let Some((dir, am)) = with_alertmanager().await else {
        return;
    };
    let with_am = config(dir.path(), am.addr, "");
    let without = &with_am[..with_am.find("alertmanager:").unwrap()];
    let dbvigil = TestExporter::start(dir.path(), without).await;
    post(
        &dbvigil,
        "/api/v1/maintenance",
        r#"{"scope":"orders","reason":"before Alertmanager was configured","duration":"10m"}"#,
    )
    .await;
    std::fs::write(&dbvigil.config_path, &with_am).unwrap();
    dbvigil.exporter.reload().await.unwrap();
    // The reload wakes the loop: no step is called by the test.
    eventually(
        WAIT,
        "the open window's silences appear after the reload",
        || async { (am.live_silences().await.len() == 2).then_some(()) },
    )
    .await;
    dbvigil.stop().await;
}

/// The gate's answer for `orders`: 503 while a window covers it.
async fn gate(e: &TestExporter) -> u16 {
    e.get("/maintenance/orders").await.status
}

fn close(a: dbvigil::time::Timestamp, b: dbvigil::time::Timestamp, within: Duration) -> bool {
    a.since(b) <= within && b.since(a) <= within
}

/// A `once:` schedule on `orders` that starts on the whole second at least `after` from now.
fn once_schedule(name: &str, after: Duration, length: &str) -> (String, jiff::Timestamp) {
    let start = jiff::Timestamp::now() + jiff::SignedDuration::try_from(after).unwrap();
    let start = jiff::Timestamp::from_second(start.as_second() + 1).unwrap();
    let yaml = format!(
        "  schedules:\n    - name: {name}\n      scope: orders\n      once: {start}\n      duration: {length}\n      reason: reindex\n"
    );
    (yaml, start)
}

fn ts(t: jiff::Timestamp) -> dbvigil::time::Timestamp {
    dbvigil::time::Timestamp::from_millis(t.as_millisecond())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_window_silences_another_exporters_alerts_until_it_ends() {
    let Some((dir, am)) = with_alertmanager().await else {
        return;
    };
    // Long enough to look at on two busy cores; it opens a few seconds after the start.
    let length = Duration::from_secs(20);
    let (schedule, start) = once_schedule("nightly-reindex", Duration::from_secs(3), "20s");
    let (start, end) = (ts(start), ts(start) + length);
    let extra = Extra {
        maintenance: &schedule,
        ..Extra::default()
    };
    let dbvigil =
        TestExporter::start(dir.path(), &config_with(dir.path(), am.addr, "", &extra)).await;
    am.fire("PostgresqlDown", "orders-db-1:9187").await;
    let before = am.live_silences().await;
    if dbvigil::time::Timestamp::now() < start {
        assert!(
            before.is_empty(),
            "no silence before the schedule opens: {before:#?}"
        );
    }

    eventually(
        WAIT + Duration::from_secs(3),
        "the schedule's silence suppresses the other exporter's alert",
        || async {
            (am.alert_state("PostgresqlDown").await.as_deref() == Some("suppressed")).then_some(())
        },
    )
    .await;
    assert!(
        dbvigil::time::Timestamp::now() >= start,
        "silenced before the schedule opened"
    );
    let live = am.live_silences().await;
    assert_eq!(
        live.len(),
        2,
        "dbvigil's own alerts and the configured matchers: {live:#?}"
    );
    let silence = instance_silence(&live).expect("a silence on instance");
    assert_eq!(silence["createdBy"], "schedule nightly-reindex (dbvigil)");
    let comment = silence["comment"].as_str().unwrap();
    let id = format!("schedule:nightly-reindex@{}", start.as_millis() / 1000);
    assert!(
        comment.contains(&format!(
            "Maintenance window {id} on orders (schedule window): reindex"
        )),
        "{comment}"
    );
    for s in &live {
        assert!(
            close(ends_at(s), end, Duration::from_secs(1)),
            "the silence ends with the occurrence, at {end}: {s:#}"
        );
    }
    assert_eq!(gate(&dbvigil).await, 503);

    // Nothing ends it but the time: it expires with the occurrence.
    eventually(
        length + WAIT,
        "the schedule's silences expire with it",
        || async { am.live_silences().await.is_empty().then_some(()) },
    )
    .await;
    assert!(
        dbvigil::time::Timestamp::now() + Duration::from_secs(1) >= end,
        "the silence ended before the occurrence did"
    );
    am.wait_for_alert("PostgresqlDown", "active", "the alert is active again")
        .await;
    assert_eq!(gate(&dbvigil).await, 200);
    dbvigil.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_removes_an_open_schedule_ends_its_silence_without_replicas_fighting() {
    let Some((dir, am)) = with_alertmanager().await else {
        return;
    };
    let (schedule, _) = once_schedule("pg16-upgrade", Duration::ZERO, "10m");
    let with = Extra {
        maintenance: &schedule,
        ..Extra::default()
    };
    let replica = |i: usize| {
        let own = dir.path().join(format!("replica-{i}"));
        std::fs::create_dir_all(&own).unwrap();
        std::fs::copy(dir.path().join("ca.crt"), own.join("ca.crt")).unwrap();
        own
    };
    let (dir_a, dir_b) = (replica(0), replica(1));
    let a = TestExporter::start(&dir_a, &config_with(&dir_a, am.addr, "", &with)).await;
    let made_by_a: Vec<String> = eventually(WAIT, "a's silences for the open schedule", || async {
        let live = am.live_ids().await;
        (live.len() == 2).then_some(live)
    })
    .await;

    // b starts on the configuration without the schedule: a's silences are leftovers of
    // the old one to it, and it ends them.
    let b = TestExporter::start(&dir_b, &config(&dir_b, am.addr, "")).await;
    b.exporter.silences_step().await;
    let states = am.silence_states().await;
    for id in &made_by_a {
        assert_eq!(
            states[id], "expired",
            "b ended a's silence {id}: {states:?}"
        );
    }

    // a, still on the old configuration, makes them again; b leaves those alone: they were
    // made after its configuration changed, by a replica that has not reloaded yet.
    a.exporter.silences_step().await;
    let remade = am.live_ids().await;
    assert_eq!(remade.len(), 2, "a made its silences again");
    for _ in 0..3 {
        tokio::join!(b.exporter.silences_step(), a.exporter.silences_step());
    }
    assert_eq!(
        am.live_ids().await,
        remade,
        "neither replica undid the other's step"
    );

    // a reloads without the schedule: its reload wakes its loop, and the silences end.
    std::fs::write(&a.config_path, config(&dir_a, am.addr, "")).unwrap();
    a.exporter.reload().await.unwrap();
    eventually(
        WAIT,
        "the removed schedule's silences end after the reload",
        || async { am.live_silences().await.is_empty().then_some(()) },
    )
    .await;
    tokio::join!(b.exporter.silences_step(), a.exporter.silences_step());
    assert!(
        am.live_silences().await.is_empty(),
        "nobody makes them again"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_flag_makes_a_leased_silence_at_once_and_ends_it_when_it_clears() {
    let Some((dir, am)) = with_alertmanager().await else {
        return;
    };
    let app_db = dir.path().join("orders.db");
    app_flag_db(&app_db).await;
    // Neither the silences loop nor the maintenance loop comes round during the test: only
    // the flag's change can bring the silence on time.
    let extra = Extra {
        target: "    maintenance_query: SELECT maintenance FROM service_context LIMIT 1\n",
        sync_interval: "1h",
        ..Extra::default()
    };
    let state = "state:\n  refresh_interval: 1h\n";
    let dbvigil =
        TestExporter::start(dir.path(), &config_with(dir.path(), am.addr, state, &extra)).await;
    let flag = |m: &common::Metrics| m.get("dbvigil_maintenance_app_flag", &[("target", "orders")]);
    eventually(WAIT, "the flag is read as off", || async {
        (flag(&dbvigil.metrics().await) == Some(0.0)).then_some(())
    })
    .await;
    am.fire("PostgresqlDown", "orders-db-1:9187").await;
    am.wait_for_alert(
        "PostgresqlDown",
        "active",
        "the alert is active before the flag is set",
    )
    .await;
    assert!(am.live_silences().await.is_empty());

    app_sql(&app_db, "UPDATE service_context SET maintenance = 1").await;
    let set_at = dbvigil::time::Timestamp::now();
    am.wait_for_alert(
        "PostgresqlDown",
        "suppressed",
        "the flag's window silences the other exporter's alert",
    )
    .await;
    let lease = Duration::from_secs(4 * 3600);
    let live = am.live_silences().await;
    assert_eq!(live.len(), 2, "{live:#?}");
    let silence = instance_silence(&live).unwrap();
    assert_eq!(silence["createdBy"], "application (dbvigil)");
    let comment = silence["comment"].as_str().unwrap();
    assert!(
        comment.contains("Maintenance window app:orders on orders (app window)"),
        "{comment}"
    );
    for s in &live {
        let end = ends_at(s);
        assert!(
            end >= set_at + lease - Duration::from_secs(1)
                && end <= dbvigil::time::Timestamp::now() + lease,
            "leased for 4 × sync_interval from when it was made: {s:#}"
        );
    }
    assert_eq!(gate(&dbvigil).await, 503);

    // Most of the lease gone by (moved there in Alertmanager, as time would): the next step
    // renews it while the flag stays set.
    let soon = dbvigil::time::Timestamp::now() + Duration::from_secs(600);
    let mut shortened = silence.clone();
    shortened["endsAt"] = json!(soon.to_string());
    for field in ["status", "updatedAt"] {
        shortened.as_object_mut().unwrap().remove(field);
    }
    let (status, body) = am
        .call(reqwest::Method::POST, "/api/v2/silences", Some(shortened))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        instance_silence_end(&am).await < soon + Duration::from_secs(1),
        "the lease was shortened"
    );
    dbvigil.exporter.silences_step().await;
    let renewed = instance_silence_end(&am).await;
    assert!(
        renewed > dbvigil::time::Timestamp::now() + lease - Duration::from_secs(60),
        "the lease was renewed for another 4 × sync_interval: ends at {renewed}"
    );
    assert_eq!(am.live_silences().await.len(), 2, "renewed, not duplicated");

    app_sql(&app_db, "UPDATE service_context SET maintenance = 0").await;
    eventually(WAIT, "the silences end once the flag clears", || async {
        am.live_silences().await.is_empty().then_some(())
    })
    .await;
    am.wait_for_alert("PostgresqlDown", "active", "the alert is active again")
        .await;
    assert_eq!(gate(&dbvigil).await, 200);
    dbvigil.stop().await;
}

async fn instance_silence_end(am: &Alertmanager) -> dbvigil::time::Timestamp {
    ends_at(instance_silence(&am.live_silences().await).expect("a live silence on instance"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extending_and_ending_while_alertmanager_is_down_reach_it_when_it_is_back() {
    let dir = tempdir();
    if !setup(dir.path()) {
        return;
    }
    let port = free_port();
    let am = Alertmanager::start(dir.path(), port).await;
    let dbvigil = TestExporter::start(dir.path(), &config(dir.path(), am.addr, "")).await;
    let window = post(
        &dbvigil,
        "/api/v1/maintenance",
        r#"{"scope":"orders","reason":"upgrade","duration":"10m"}"#,
    )
    .await;
    let id = window["id"].as_str().unwrap().to_owned();
    let held: Vec<String> = eventually(WAIT, "the window's silences", || async {
        let live = am.live_ids().await;
        (live.len() == 2).then_some(live)
    })
    .await;

    // Extended while Alertmanager is down: the window changes at once, the silence when
    // Alertmanager is back.
    am.terminate();
    let extended = post(
        &dbvigil,
        &format!("/api/v1/maintenance/{id}/extend"),
        r#"{"duration":"30m"}"#,
    )
    .await;
    let new_end: dbvigil::time::Timestamp = extended["ends_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(gate(&dbvigil).await, 503);
    dbvigil.exporter.silences_step().await;
    let status = dbvigil.exporter.silences();
    assert!(
        status
            .error
            .as_deref()
            .is_some_and(|e| e.contains("cannot connect")),
        "{status:#?}"
    );
    let am = Alertmanager::start(dir.path(), port).await;
    let states = am.silence_states().await;
    for id in &held {
        assert!(
            states.contains_key(id),
            "Alertmanager kept silence {id} across its restart: {states:?}"
        );
    }
    eventually(
        WAIT,
        "the silences follow the extension once Alertmanager is back",
        || async {
            let live = am.live_silences().await;
            (live.len() == 2
                && live
                    .iter()
                    .all(|s| close(ends_at(s), new_end, Duration::from_secs(1))))
            .then_some(())
        },
    )
    .await;
    eventually(WAIT, "the step says so", || async {
        dbvigil.exporter.silences().error.is_none().then_some(())
    })
    .await;
    let held = am.live_ids().await;

    // Ended while Alertmanager is down: the silences expire when it is back.
    am.terminate();
    post(&dbvigil, &format!("/api/v1/maintenance/{id}/end"), "{}").await;
    assert_eq!(gate(&dbvigil).await, 200, "the window ends at once");
    let am = Alertmanager::start(dir.path(), port).await;
    eventually(
        WAIT,
        "the ended window's silences expire once Alertmanager is back",
        || async { am.live_silences().await.is_empty().then_some(()) },
    )
    .await;
    let states = am.silence_states().await;
    for id in &held {
        assert_eq!(
            states.get(id).map(String::as_str),
            Some("expired"),
            "silence {id} was kept across the restart, then expired: {states:?}"
        );
    }
    dbvigil.stop().await;
}
