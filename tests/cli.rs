//! The real binary, as a user runs it: the embedded default, --version, check-config,
//! SIGHUP and SIGTERM, and secrets kept out of every output.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Running, eventually, request, tempdir};

const BIN: &str = env!("CARGO_BIN_EXE_dbvigil");
const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_arguments_it_probes_the_embedded_sqlite_database() {
    let dir = tempdir();
    let run = Running::start(dir.path(), &[], &[]).await;
    eventually(WAIT, "embedded target up", || async {
        (run.metrics()
            .await
            .get("dbvigil_up", &[("target", "embedded")])
            == Some(1.0))
        .then_some(())
    })
    .await;
    assert!(
        dir.path().join("dbvigil-data/dbvigil-probe.db").exists(),
        "data dir created in the working directory"
    );
    let m = run.metrics().await;
    assert_eq!(
        m.value(
            "dbvigil_target_info",
            &[("target", "embedded"), ("kind", "sqlite")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "dbvigil_check_success",
            &[("target", "embedded"), ("check", "write")]
        ),
        1.0
    );
    let landing = request(run.addr, "GET", "/", &[]).await;
    assert!(
        landing.body.contains("<a href=\"/metrics\">Metrics</a>")
            && landing.body.contains("embedded")
    );
    assert_eq!(request(run.addr, "GET", "/-/ready", &[]).await.status, 200);
    let log = run.terminate();
    assert!(
        log.contains("listening; metrics at http://127.0.0.1:"),
        "{log}"
    );
    assert!(
        log.contains("no --config.file given: probing the embedded SQLite database"),
        "{log}"
    );
    assert!(
        log.contains("message=stopped"),
        "graceful shutdown logged: {log}"
    );
}

#[test]
fn version_names_the_version_and_commit() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("dbvigil {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
}

#[test]
fn check_config_exits_zero_on_a_valid_file_and_one_with_the_reason_on_an_invalid_one() {
    let out = Command::new(BIN)
        .args(["check-config", "--config.file", "examples/sqlite.yml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("app (sqlite, every 1s, timeout 1s)"));

    let out = Command::new(BIN)
        .args([
            "check-config",
            "--config.file",
            "tests/data/invalid/duplicate_name.yml",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "invalid configuration: tests/data/invalid/duplicate_name.yml:5:11: duplicate target name \"app\" (first defined on line 2): target names must be unique\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_configuration_file() {
    let dir = tempdir();
    let cfg = dir.path().join("dbvigil.yml");
    let one =
        "targets:\n  - {name: one, kind: sqlite, path: one.db, create: true, interval: 100ms}\n";
    std::fs::write(&cfg, one).unwrap();
    let run = Running::start(dir.path(), &["--config.file", "dbvigil.yml"], &[]).await;
    eventually(WAIT, "target one up", || async {
        (run.metrics().await.get("dbvigil_up", &[("target", "one")]) == Some(1.0)).then_some(())
    })
    .await;
    std::fs::write(
        &cfg,
        format!(
            "{one}  - {{name: two, kind: sqlite, path: two.db, create: true, interval: 100ms}}\n"
        ),
    )
    .unwrap();
    run.signal(libc::SIGHUP);
    eventually(WAIT, "target two up after SIGHUP", || async {
        (run.metrics().await.get("dbvigil_up", &[("target", "two")]) == Some(1.0)).then_some(())
    })
    .await;
    let log = run.terminate();
    assert!(log.contains("configuration reloaded"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_an_output() {
    const SECRET: &str = "Pa55-w0rd-that-must-not-leak";
    let dir = tempdir();
    let env = [("DBVIGIL_TEST_SECRET", SECRET)];

    // check-config on a file whose secret is misplaced: the error names the field, not the value.
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "targets:\n  - name: a\n    kind: sqlite\n    path: a.db\n    password: ${DBVIGIL_TEST_SECRET}\n").unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config.file"])
        .arg(&bad)
        .envs(env)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("`password` does not apply to kind sqlite"),
        "{text}"
    );
    assert!(
        !text.contains(SECRET),
        "check-config echoed the secret: {text}"
    );

    // A running exporter at debug level, reloaded with that file: log, reload answer,
    // metrics and API stay clean.
    let cfg = dir.path().join("dbvigil.yml");
    std::fs::write(
        &cfg,
        "targets:\n  - {name: a, kind: sqlite, path: a.db, create: true, interval: 100ms}\n",
    )
    .unwrap();
    let run = Running::start(
        dir.path(),
        &["--config.file", "dbvigil.yml", "--log.level", "debug"],
        &env,
    )
    .await;
    std::fs::copy(&bad, &cfg).unwrap();
    let reload = request(run.addr, "POST", "/-/reload", &[]).await;
    assert_eq!(reload.status, 500);
    let surfaces = [
        reload.body,
        request(run.addr, "GET", "/metrics", &[]).await.body,
        request(run.addr, "GET", "/api/v1/targets", &[]).await.body,
        request(run.addr, "GET", "/probe?target=a", &[]).await.body,
        request(run.addr, "GET", "/", &[]).await.body,
    ];
    let log = run.terminate();
    assert!(log.contains("configuration reload failed"), "{log}");
    for s in surfaces.iter().chain(std::iter::once(&log)) {
        assert!(!s.contains(SECRET), "secret leaked into: {s}");
    }
}

#[test]
fn every_shipped_example_passes_check_config() {
    // The examples read secrets from the environment and from files next to them.
    let dir = tempdir();
    let examples = dir.path().join("examples");
    std::fs::create_dir_all(examples.join("secrets")).unwrap();
    for f in ["shop-db.password", "ledger-db.password", "ca.pem"] {
        std::fs::write(examples.join("secrets").join(f), "placeholder\n").unwrap();
    }
    std::fs::write(
        examples.join("secrets").join("maintenance.tokens"),
        "ci-pipeline 0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    // ... and scripts directories next to them.
    std::fs::create_dir_all(examples.join("migrations")).unwrap();
    for script in std::fs::read_dir("examples/migrations").unwrap() {
        let script = script.unwrap().path();
        std::fs::copy(
            &script,
            examples
                .join("migrations")
                .join(script.file_name().unwrap()),
        )
        .unwrap();
    }
    let mut checked = 0;
    for entry in std::fs::read_dir("examples").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yml") {
            continue;
        }
        let copy = examples.join(path.file_name().unwrap());
        std::fs::copy(&path, &copy).unwrap();
        let out = Command::new(BIN)
            .args(["check-config", "--config.file"])
            .arg(&copy)
            .env("ORDERS_DB_PASSWORD", "x")
            .env("BILLING_DB_PASSWORD", "x")
            .current_dir("/")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} examples found");
}
