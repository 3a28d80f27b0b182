//! `/probe?target=NAME&debug=true`, as blackbox_exporter answers it: the probe's own log
//! (every step with its offset from the start), the metrics it would have returned and the
//! target's configuration as it applied, as plain text. Against a real PostgreSQL over TLS
//! with SCRAM: a probe that passes, one whose password is wrong and one whose port is
//! closed, each log showing the step that failed and why; a password the test sets (in
//! the target and percent-encoded in a URL) appears nowhere.

mod common;

use common::Metrics;
use common::db::{Db, Engine, block};
use common::servers::test_certs;
use common::{TestExporter, tempdir};

/// Set by this test, so that finding it anywhere in an answer is a leak.
const PASSWORD: &str = "Debug pw/7f3a:9c";
const PASSWORD_IN_URL: &str = "Debug%20pw%2F7f3a%3A9c";
const WRONG: &str = "Wrong-pw-41b2e8";

struct Debug {
    log: Vec<String>,
    metrics: Metrics,
    configuration: String,
}

/// Splits a debug answer into its three parts, checking the layout and that no secret is
/// in it.
fn parse(body: &str) -> Debug {
    for secret in [PASSWORD, PASSWORD_IN_URL, WRONG] {
        assert!(!body.contains(secret), "a password leaked:\n{body}");
    }
    let rest = body
        .strip_prefix("Logs for the probe:\n")
        .unwrap_or_else(|| panic!("no log heading:\n{body}"));
    let (log, rest) = rest
        .split_once("\n\nMetrics that would have been returned:\n")
        .unwrap_or_else(|| panic!("no metrics heading:\n{body}"));
    let (metrics, configuration) = rest
        .split_once("\n\nTarget configuration (as it applied to this probe):\n")
        .unwrap_or_else(|| panic!("no configuration heading:\n{body}"));
    let log: Vec<String> = log.lines().map(str::to_owned).collect();
    // Every line starts with its offset, and offsets never go back.
    let mut before = 0.0;
    for line in &log {
        let offset: f64 = line
            .strip_prefix('+')
            .and_then(|l| l.split_once("s "))
            .and_then(|(o, _)| o.parse().ok())
            .unwrap_or_else(|| panic!("line without an offset: {line:?}"));
        assert!(offset >= before, "offsets go back at {line:?}");
        before = offset;
    }
    Debug {
        log,
        metrics: Metrics::parse(metrics),
        configuration: configuration.to_owned(),
    }
}

impl Debug {
    /// The index of the first log line containing `text`, after `from`.
    fn line(&self, from: usize, text: &str) -> usize {
        self.log
            .iter()
            .skip(from)
            .position(|l| l.contains(text))
            .map(|i| i + from)
            .unwrap_or_else(|| {
                panic!(
                    "no log line with {text:?} after line {from}:\n{}",
                    self.log.join("\n")
                )
            })
    }

    /// Each text on a line of its own, in this order.
    fn in_order(&self, texts: &[&str]) {
        let mut at = 0;
        for text in texts {
            at = self.line(at, text) + 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_true_answers_the_probe_log_its_metrics_and_the_configuration_without_secrets() {
    let Some(db) = Db::start(Engine::Postgres) else {
        return;
    };
    block(|| db.sql(&format!("ALTER ROLE probe PASSWORD '{PASSWORD}'")));
    let port = db.port();
    let ca = test_certs().ca_file.display().to_string();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = |name: &str, port: u16, password: &str| {
        format!(
            "  - name: {name}\n    kind: postgres\n    host: 127.0.0.1\n    port: {port}\n    \
             user: probe\n    password: '{password}'\n    database: app\n    \
             tls: {{mode: verify-full, ca_file: {ca}}}\n    interval: 1h\n"
        )
    };
    let yaml = format!(
        "targets:\n{}{}{}  - name: by-url\n    kind: postgres\n    \
         url: 'postgres://probe:{PASSWORD_IN_URL}@127.0.0.1:{port}/app?sslmode=verify-full&sslrootcert={ca}'\n    \
         interval: 1h\n",
        server("pg", port, PASSWORD),
        server("wrong", port, WRONG),
        server("closed", closed, PASSWORD),
    );
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &yaml).await;

    // A probe that passes: every phase, the TLS session the server reports, each query.
    let r = e.get("/probe?target=pg&debug=true").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"));
    let d = parse(&r.body);
    d.in_order(&[
        &format!("beginning probe of target pg (postgres at 127.0.0.1:{port}/app): checks tcp, connect, read, write, role primary, timeout "),
        "tcp: resolving 127.0.0.1",
        &format!("tcp: connecting to 127.0.0.1:{port}"),
        "tcp: succeeded in ",
        &format!("connect: logging in as probe to database app at 127.0.0.1:{port}, TLS mode verify-full, CA file {ca}"),
        "connect: logged in; every statement is sent as one simple query prefixed with `SET LOCAL statement_timeout = ",
        "connect: succeeded in ",
        "the server says: session of probe, over TLS (TLSv1.3, ",
        "read: query: SELECT 1",
        "read: returned 1 row(s)",
        "read: succeeded in ",
        "write: writing heartbeat seq 1",
        "write: query: INSERT INTO dbvigil_heartbeat ",
        "write: succeeded in ",
        "read_only: query: SELECT pg_is_in_recovery()",
        "the database takes writes (not read-only)",
        "identity: query: SELECT ",
        "identity: sysid=",
        "closing the session",
        "probe succeeded in ",
    ]);
    let t = [("target", "pg")];
    assert_eq!(d.metrics.value("dbvigil_probe_success", &t), 1.0);
    assert_eq!(
        d.metrics.value(
            "dbvigil_probe_check_success",
            &[("target", "pg"), ("check", "write")]
        ),
        1.0
    );
    assert_eq!(
        d.configuration,
        format!(
            "name: \"pg\"\nkind: postgres\nhost: \"127.0.0.1\"\nport: {port}\nuser: \"probe\"\n\
             password: <redacted>\ndatabase: \"app\"\ntls: {{mode: verify-full, ca_file: \"{ca}\"}}\n\
             heartbeat: {{create: true}}\nchecks: [tcp, connect, read, write]\nrole: primary\n\
             connection: fresh\ntimeout: 5s\n"
        )
    );

    // A shorter scrape timeout shortens the probe's, and the configuration says so.
    let r = e
        .get_with(
            "/probe?target=by-url&debug=true",
            &[("X-Prometheus-Scrape-Timeout-Seconds", "2.25")],
        )
        .await;
    let d = parse(&r.body);
    d.in_order(&["timeout 2s", "probe succeeded in "]);
    assert!(
        d.configuration.contains("password: <redacted>\n")
            && d.configuration
                .contains("timeout: 5s  # this probe: 2s, to fit the scrape timeout\n"),
        "{}",
        d.configuration
    );

    // The wrong password: the log shows the login the server refused, and nothing after it.
    let r = e.get("/probe?target=wrong&debug=true").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = parse(&r.body);
    d.in_order(&[
        "tcp: succeeded in ",
        "connect: logging in as probe to database app",
        "connect: failed after ",
        "probe failed in ",
    ]);
    let failed = &d.log[d.line(0, "connect: failed after ")];
    assert!(
        failed.contains(" with reason auth: password authentication failed for user \"probe\""),
        "{failed}"
    );
    assert!(!d.log.iter().any(|l| l.contains("read: ")), "{:#?}", d.log);
    assert_eq!(
        d.metrics
            .value("dbvigil_probe_success", &[("target", "wrong")]),
        0.0
    );
    assert_eq!(
        d.metrics.value(
            "dbvigil_probe_failure_info",
            &[("target", "wrong"), ("reason", "auth")]
        ),
        1.0
    );

    // A closed port: the tcp step fails with `refused`; no login is tried.
    let r = e.get("/probe?target=closed&debug=true").await;
    let d = parse(&r.body);
    d.in_order(&[
        &format!("tcp: connecting to 127.0.0.1:{closed}"),
        "tcp: failed after ",
        "probe failed in ",
    ]);
    let failed = &d.log[d.line(0, "tcp: failed after ")];
    assert!(
        failed.contains(&format!(
            " with reason refused: connect to 127.0.0.1:{closed}: Connection refused"
        )),
        "{failed}"
    );
    assert!(
        !d.log.iter().any(|l| l.contains("connect: ")),
        "{:#?}",
        d.log
    );

    // debug=false is the plain answer; anything else but true is refused.
    let r = e.get("/probe?target=pg&debug=false").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        Metrics::parse(&r.body).value("dbvigil_probe_success", &[("target", "pg")]),
        1.0
    );
    for bad in ["yes", "1", ""] {
        let r = e.get(&format!("/probe?target=pg&debug={bad}")).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (
                400,
                format!("debug={bad:?} is not true or false: use debug=true for the probe's log, the metrics and the target's configuration, or leave it out for the metrics alone\n").as_str()
            )
        );
    }
    e.stop().await;
}

#[tokio::test]
async fn every_kind_logs_its_steps() {
    let dir = tempdir();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        // Kept open: the tcp target's port accepts.
        std::mem::forget(l);
        port
    };
    let yaml = format!(
        "targets:\n  - {{name: lite, kind: sqlite, path: lite.db, create: true, interval: 1h}}\n  \
         - {{name: port, kind: tcp, host: 127.0.0.1, port: {port}, interval: 1h}}\n"
    );
    let e = TestExporter::start(dir.path(), &yaml).await;
    let r = e.get("/probe?target=lite&debug=true").await;
    let d = parse(&r.body);
    d.in_order(&[
        "beginning probe of target lite (sqlite at ",
        "connect: opening ",
        "connect: succeeded in ",
        "read: query: SELECT 1",
        "read: succeeded in ",
        "write: query: INSERT INTO dbvigil_heartbeat ",
        "write: query: SELECT seq, beat_at_ms FROM dbvigil_heartbeat WHERE target = ? AND instance = ? with (lite, test-instance/probe)",
        "write: succeeded in ",
        "the database takes writes (not read-only)",
        "identity: dev=",
        "closing the file",
        "probe succeeded in ",
    ]);
    assert!(
        d.configuration.contains("kind: sqlite\npath: "),
        "{}",
        d.configuration
    );
    let r = e.get("/probe?target=port&debug=true").await;
    let d = parse(&r.body);
    d.in_order(&[
        &format!("tcp: connecting to 127.0.0.1:{port}"),
        &format!("tcp: 127.0.0.1:{port} accepted the connection"),
        "probe succeeded in ",
    ]);
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_probe_logs_its_tls_session_and_statements() {
    let Some(db) = Db::start(Engine::MariaDb) else {
        return;
    };
    let yaml = format!(
        "targets:\n  - name: m\n{}    interval: 1h\n",
        db.probe_settings()
    );
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &yaml).await;
    let r = e.get("/probe?target=m&debug=true").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        !r.body.contains("probe-pw"),
        "the password leaked:\n{}",
        r.body
    );
    let d = parse(&r.body);
    d.in_order(&[
        "connect: logging in as probe to database app",
        "connect: logged in",
        "connect: query: SET SESSION max_statement_time = ",
        "connect: succeeded in ",
        "the server says: session of probe@",
        "read: query: SELECT CAST(1 AS SIGNED)",
        "write: query: INSERT INTO `app`.dbvigil_heartbeat ",
        "probe succeeded in ",
    ]);
    assert_eq!(
        d.metrics.value("dbvigil_probe_success", &[("target", "m")]),
        1.0
    );
    e.stop().await;
}
