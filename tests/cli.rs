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

/// Every secret the configuration and the environment give dbvigil, and what a client
/// sends it. Each is distinctive, so a leak is found wherever it lands.
mod secret {
    /// The right password of the PostgreSQL login `vault`, from `${DBVIGIL_TEST_SECRET}`
    /// (targets and `state.url`).
    pub const PG: &str = "Pg-pa55-that-must-not-leak";
    /// A wrong password in target URLs, percent-encoded there as [`URL_ENCODED`].
    pub const URL: &str = "Url-pa55@that/must:not-leak";
    pub const URL_ENCODED: &str = "Url-pa55%40that%2Fmust%3Anot-leak";
    /// A wrong password in a `password_file`.
    pub const FILE: &str = "File-pa55-that-must-not-leak";
    /// A password written literally into a configuration file with a syntax error.
    pub const LITERAL: &str = "Literal-pa55-that-must-not-leak";
    /// Maintenance tokens: from `tokens_file`, from DBVIGIL_MAINTENANCE_TOKEN.
    pub const FILE_TOKEN: &str = "file-token-that-must-not-leak-0123";
    pub const ENV_TOKEN: &str = "env-token-that-must-not-leak-4567";
    /// Tokens too short to be accepted, in a tokens file and in the environment.
    pub const SHORT_TOKEN: &str = "short-tok-leak";
    pub const SHORT_ENV_TOKEN: &str = "shrt-env-leak";
    /// A wrong token a client sends.
    pub const WRONG_TOKEN: &str = "wrong-token-a-client-sent-89ab";

    pub const ALL: [&str; 11] = [
        PG,
        URL,
        URL_ENCODED,
        FILE,
        LITERAL,
        FILE_TOKEN,
        ENV_TOKEN,
        SHORT_TOKEN,
        SHORT_ENV_TOKEN,
        WRONG_TOKEN,
        // A token a client sends that is the real one with a character more.
        "file-token-that-must-not-leak-0123x",
    ];
}

/// Outputs gathered under a name, then searched for every secret at once.
#[derive(Default)]
struct Surfaces(Vec<(String, String)>);

impl Surfaces {
    fn add(&mut self, name: impl Into<String>, text: impl Into<String>) {
        self.0.push((name.into(), text.into()));
    }

    fn response(&mut self, name: &str, r: &common::Response) {
        let headers: Vec<String> = r.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        self.add(
            name,
            format!("{} {}\n{}", r.status, headers.join("\n"), r.body),
        );
    }

    fn output(&mut self, name: &str, out: &std::process::Output) {
        self.add(
            name,
            format!(
                "exit {:?}\n{}{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        );
    }

    fn text(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
            .unwrap_or_else(|| panic!("no surface {name}"))
    }

    fn leaks(&self) -> Vec<String> {
        let mut leaks = Vec::new();
        for (name, text) in &self.0 {
            for s in secret::ALL {
                if let Some(at) = text.find(s) {
                    let from = text[..at]
                        .char_indices()
                        .rev()
                        .nth(80)
                        .map_or(0, |(i, _)| i);
                    let excerpt: String = text[from..].chars().take(200).collect();
                    leaks.push(format!("{s} in {name}: ...{excerpt}..."));
                }
            }
        }
        leaks
    }
}

/// `dbvigil ARGS` in `dir` with the secret environment, as a user runs it.
fn dbvigil(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .env_remove("DBVIGIL_MAINTENANCE_TOKEN")
        .env_remove("DBVIGIL_URL")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// Every output surface, for the configured database passwords (right and wrong, in the
/// environment, a URL, a file and `state.url`), the maintenance tokens and a client's wrong
/// token: /metrics in both formats, /probe, every API answer including refusals, the
/// checks, the landing page, reloads, the log at debug level, `check-config` on a valid
/// file and on invalid ones, `dbvigil migrate` failing in each way it can, and
/// `dbvigil report` on every target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_an_output() {
    let Some(db) = common::db::Db::start(common::db::Engine::Postgres) else {
        return;
    };
    common::db::block(|| {
        db.sql(&format!(
            "CREATE ROLE vault LOGIN PASSWORD '{}'; CREATE DATABASE vaultdb OWNER vault;",
            secret::PG
        ))
    });
    let pg = db.port();
    let closed = common::servers::free_port();
    let dir = tempdir();
    let path = dir.path();
    std::fs::write(path.join("vault.password"), format!("{}\n", secret::FILE)).unwrap();
    std::fs::write(path.join("tokens"), format!("ci {}\n", secret::FILE_TOKEN)).unwrap();
    std::fs::write(
        path.join("client.token"),
        format!("{}\n", secret::FILE_TOKEN),
    )
    .unwrap();
    std::fs::create_dir(path.join("migrations")).unwrap();
    std::fs::write(
        path.join("migrations/V1__t.sql"),
        "CREATE TABLE t (id int);\n",
    )
    .unwrap();
    let server = |extra: &str| {
        format!(
            "    kind: postgres\n    host: 127.0.0.1\n    port: {pg}\n    user: vault\n    database: vaultdb\n    tls: {{mode: require}}\n    interval: 300ms\n{extra}"
        )
    };
    let valid = format!(
        "targets:\n\
         \x20 - name: good\n{good}\
         \x20 - name: wrong-url\n    kind: postgres\n    url: postgres://vault:{url}@127.0.0.1:{pg}/vaultdb?sslmode=require\n    interval: 300ms\n\
         \x20 - name: wrong-file\n{file}\
         \x20 - name: closed\n    kind: mysql\n    url: mysql://vault:{url}@127.0.0.1:{closed}/x\n    interval: 300ms\n\
         \x20 - {{name: a, kind: sqlite, path: a.db, create: true, interval: 300ms}}\n\
         groups:\n  - {{name: g, members: [good, wrong-url]}}\n\
         maintenance:\n  tokens_file: tokens\n\
         state:\n  url: postgres://vault:${{DBVIGIL_TEST_SECRET}}@127.0.0.1:{pg}/vaultdb?sslmode=require\n",
        good = server(
            "    password: ${DBVIGIL_TEST_SECRET}\n    migrations: {directory: migrations, interval: 1s}\n"
        ),
        file = server("    password_file: vault.password\n"),
        url = secret::URL_ENCODED,
    );
    std::fs::write(path.join("dbvigil.yml"), &valid).unwrap();
    let env = [
        ("DBVIGIL_TEST_SECRET", secret::PG),
        ("DBVIGIL_MAINTENANCE_TOKEN", secret::ENV_TOKEN),
    ];
    let mut surfaces = Surfaces::default();

    // check-config, on the valid file and on files that are wrong where a secret is.
    let out = dbvigil(
        path,
        &["check-config", "--config.file", "dbvigil.yml"],
        &env,
    );
    assert!(out.status.success(), "{out:?}");
    surfaces.output("check-config valid", &out);
    let invalid: Vec<(&str, String)> = vec![
        (
            "`password` does not apply to kind sqlite",
            "targets:\n  - name: a\n    kind: sqlite\n    path: a.db\n    password: ${DBVIGIL_TEST_SECRET}\n".into(),
        ),
        (
            "dbvigil.yml:",
            format!("targets:\n  - name: a\n    kind: postgres\n    url: postgres://vault:{}@127.0.0.1:99999/x\n", secret::URL_ENCODED),
        ),
        (
            "dbvigil.yml:",
            "targets:\n  - name: a\n    kind: postgres\n    host: h\n    user: u\n    passwrd: ${DBVIGIL_TEST_SECRET}\n".into(),
        ),
        (
            "dbvigil.yml:",
            "targets:\n  - name: a\n    kind: postgres\n    host: h\n    user: u\n    password: [\"${DBVIGIL_TEST_SECRET}\"]\n".into(),
        ),
        (
            "dbvigil.yml:",
            format!("targets:\n  - name: a\n    kind: postgres\n    host: h\n    password: \"{}\n    user: u\n", secret::LITERAL),
        ),
        (
            "dbvigil.yml:",
            format!("targets:\n  - name: a\n    kind: postgres\n    host: h\n    password: {}\n    password: {}\n", secret::LITERAL, secret::LITERAL),
        ),
        (
            "state.url must be a PostgreSQL URL",
            "targets:\n  - {name: a, kind: sqlite, path: a.db}\nstate:\n  url: mysql://vault:${DBVIGIL_TEST_SECRET}@h/x\n".into(),
        ),
        (
            "invalid state.url",
            "targets:\n  - {name: a, kind: sqlite, path: a.db}\nstate:\n  url: postgres://vault:${DBVIGIL_TEST_SECRET}@h:99999/x\n".into(),
        ),
        (
            "the token is shorter than 16 characters",
            "targets:\n  - {name: a, kind: sqlite, path: a.db}\nmaintenance:\n  tokens_file: short.tokens\n".into(),
        ),
        (
            "write one token per line",
            "targets:\n  - {name: a, kind: sqlite, path: a.db}\nmaintenance:\n  tokens_file: three.tokens\n".into(),
        ),
    ];
    std::fs::write(
        path.join("short.tokens"),
        format!("ci {}\n", secret::SHORT_TOKEN),
    )
    .unwrap();
    std::fs::write(
        path.join("three.tokens"),
        format!("ci {} {}\n", secret::FILE_TOKEN, secret::SHORT_TOKEN),
    )
    .unwrap();
    for (i, (expected, yaml)) in invalid.iter().enumerate() {
        let name = format!("bad-{i}.yml");
        std::fs::write(path.join(&name), yaml.replace("dbvigil.yml", &name)).unwrap();
        let out = dbvigil(path, &["check-config", "--config.file", &name], &env);
        let shown = String::from_utf8_lossy(&out.stderr).replace(&name, "dbvigil.yml");
        assert_eq!(out.status.code(), Some(1), "{name}: {out:?}");
        assert!(shown.contains(expected), "{name}: {shown}");
        surfaces.output(&format!("check-config {name}"), &out);
    }
    let short_env = [
        ("DBVIGIL_TEST_SECRET", secret::PG),
        ("DBVIGIL_MAINTENANCE_TOKEN", secret::SHORT_ENV_TOKEN),
    ];
    let out = dbvigil(
        path,
        &["check-config", "--config.file", "dbvigil.yml"],
        &short_env,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("DBVIGIL_MAINTENANCE_TOKEN is shorter than"),
        "{out:?}"
    );
    surfaces.output("check-config with a short DBVIGIL_MAINTENANCE_TOKEN", &out);

    // The running exporter at debug level.
    let run = Running::start(
        path,
        &["--config.file", "dbvigil.yml", "--log.level", "debug"],
        &env,
    )
    .await;
    let addr = run.addr;
    let reason = |name: &'static str| async move {
        let r = request(addr, "GET", "/api/v1/targets", &[]).await;
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        let t = v["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .cloned();
        t.and_then(|t| {
            t["last_probe"]["error"]["reason"]
                .as_str()
                .map(str::to_owned)
        })
    };
    eventually(
        WAIT,
        "every target probed, good up, history read",
        || async {
            let m = run.metrics().await;
            let ready = m.get("dbvigil_up", &[("target", "good")]) == Some(1.0)
                && m.get("dbvigil_migration_read_success", &[("target", "good")]) == Some(1.0)
                && reason("wrong-url").await.as_deref() == Some("auth")
                && reason("wrong-file").await.as_deref() == Some("auth")
                && reason("closed").await.as_deref() == Some("refused");
            ready.then_some(())
        },
    )
    .await;
    let get = |p: &'static str| async move { (p, request(addr, "GET", p, &[]).await) };
    for path in [
        "/metrics",
        "/probe?target=good",
        "/probe?target=wrong-url",
        "/probe?target=wrong-file",
        "/probe?target=closed",
        "/probe?target=nope",
        "/probe",
        "/api/v1/targets",
        "/api/v1/groups",
        "/api/v1/groups/g",
        "/api/v1/groups/nope",
        "/groups/g/active",
        "/targets/wrong-url/writable",
        "/targets/good/readable",
        "/targets/closed/reachable",
        "/",
        "/api/v1/maintenance",
        "/maintenance/good",
        "/maintenance/nope",
        "/no-such-page",
    ] {
        let (p, r) = get(path).await;
        surfaces.response(p, &r);
    }
    let om = request(
        addr,
        "GET",
        "/metrics",
        &[("Accept", "application/openmetrics-text")],
    )
    .await;
    surfaces.response("/metrics (OpenMetrics)", &om);
    assert!(
        surfaces
            .text("/api/v1/targets")
            .contains("password authentication failed")
    );
    assert!(surfaces.text("/api/v1/maintenance").contains("\"ok\":true"));

    // The maintenance API: changes with either token, refusals of wrong ones.
    let bearer = |t: &str| format!("Bearer {t}");
    let post = |p: String, token: Option<String>, body: &'static str| async move {
        let auth: Vec<(&str, &str)> = token
            .iter()
            .map(|t| ("Authorization", t.as_str()))
            .collect();
        common::send(addr, "POST", &p, &auth, body).await
    };
    let start = r#"{"scope":"good","reason":"secrets test","duration":"10m"}"#;
    let r = post(
        "/api/v1/maintenance".into(),
        Some(bearer(secret::FILE_TOKEN)),
        start,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    surfaces.response("maintenance start", &r);
    let id = serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = post(
        format!("/api/v1/maintenance/{id}/extend"),
        Some(bearer(secret::ENV_TOKEN)),
        r#"{"duration":"5m"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    surfaces.response("maintenance extend", &r);
    let r = request(addr, "GET", &format!("/api/v1/maintenance/{id}"), &[]).await;
    surfaces.response("maintenance get", &r);
    let r = request(addr, "GET", "/maintenance/good", &[]).await;
    assert_eq!(r.status, 503);
    surfaces.response("maintenance gate, covered", &r);
    for (name, token, body) in [
        (
            "maintenance start, wrong token",
            Some(bearer(secret::WRONG_TOKEN)),
            start,
        ),
        (
            "maintenance start, token and more",
            Some(bearer(secret::ALL[10])),
            start,
        ),
        (
            "maintenance start, token without Bearer",
            Some(secret::FILE_TOKEN.to_owned()),
            start,
        ),
        ("maintenance start, no token", None, start),
        (
            "maintenance start, bad body",
            Some(bearer(secret::FILE_TOKEN)),
            "{\"scope\":",
        ),
    ] {
        let r = post("/api/v1/maintenance".into(), token, body).await;
        assert!(
            matches!(r.status, 400 | 401),
            "{name}: {} {}",
            r.status,
            r.body
        );
        surfaces.response(name, &r);
    }
    let r = post(
        format!("/api/v1/maintenance/{id}/end"),
        Some(bearer(secret::WRONG_TOKEN)),
        "{}",
    )
    .await;
    assert_eq!(r.status, 401);
    surfaces.response("maintenance end, wrong token", &r);
    let r = post(
        format!("/api/v1/maintenance/{id}/end"),
        Some(bearer(secret::FILE_TOKEN)),
        "{}",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    surfaces.response("maintenance end", &r);

    // dbvigil migrate: a wrong token, then a run inside a window, a failing script, and
    // every way of not reaching a database, in text and JSON.
    let url = format!("http://{addr}");
    let migrate = |args: &[&str]| {
        let mut all = vec!["migrate", "--config.file", "dbvigil.yml"];
        all.extend_from_slice(args);
        dbvigil(path, &all, &env[..1])
    };
    let out = migrate(&[
        "--target",
        "good",
        "run",
        "--maintenance",
        "--dbvigil-url",
        &url,
        "--token",
        secret::WRONG_TOKEN,
    ]);
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    surfaces.output("migrate run, window refused", &out);
    let out = migrate(&[
        "--target",
        "good",
        "run",
        "--maintenance",
        "--dbvigil-url",
        &url,
        "--token-file",
        "client.token",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    surfaces.output("migrate run in a window", &out);
    std::fs::write(path.join("migrations/V2__bad.sql"), "SELEC 1;\n").unwrap();
    let out = migrate(&["--target", "good", "run"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    surfaces.output("migrate run, failing script", &out);
    for output in ["text", "json"] {
        for target in ["good", "wrong-url", "wrong-file", "closed"] {
            let out = migrate(&[
                "--target",
                target,
                "--dir",
                "migrations",
                "--output",
                output,
                "info",
            ]);
            surfaces.output(&format!("migrate info {target} ({output})"), &out);
            // The report prints each outage's message, as the exporter redacted it.
            let out = dbvigil(
                path,
                &[
                    "report",
                    "--dbvigil-url",
                    &url,
                    "--target",
                    target,
                    "--output",
                    output,
                ],
                &[],
            );
            assert_eq!(out.status.code(), Some(0), "{out:?}");
            surfaces.output(&format!("report {target} ({output})"), &out);
        }
    }
    assert!(
        surfaces
            .text("migrate info wrong-file (text)")
            .contains("password authentication failed"),
        "{}",
        surfaces.text("migrate info wrong-file (text)")
    );

    // Reloads: the same file, then one whose secret is misplaced.
    let r = request(addr, "POST", "/-/reload", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    surfaces.response("reload", &r);
    std::fs::copy(path.join("bad-0.yml"), path.join("dbvigil.yml")).unwrap();
    let r = request(addr, "POST", "/-/reload", &[]).await;
    assert_eq!(r.status, 500, "{}", r.body);
    surfaces.response("reload, invalid", &r);

    let log = run.terminate();
    assert!(log.contains("configuration reload failed"), "{log}");
    assert!(log.contains("level=debug"), "debug lines are logged: {log}");
    surfaces.add("log at debug level", log);
    let leaks = surfaces.leaks();
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
}

#[test]
fn every_shipped_example_passes_check_config() {
    // The examples read secrets from the environment and from files next to them.
    let dir = tempdir();
    let examples = dir.path().join("examples");
    std::fs::create_dir_all(examples.join("secrets")).unwrap();
    for f in [
        "shop-db.password",
        "ledger-db.password",
        "orders.password",
        "billing.password",
        "ca.pem",
    ] {
        std::fs::write(examples.join("secrets").join(f), "placeholder\n").unwrap();
    }
    // bastion.yml's key and the known_hosts entry that pins its bastion: check-config
    // opens both.
    let key = examples.join("secrets/bastion_ed25519");
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .output()
        .expect("ssh-keygen (openssh-client) runs");
    assert!(keygen.status.success(), "{keygen:?}");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    std::fs::write(
        examples.join("secrets/known_hosts"),
        format!("bastion.example.com {public}"),
    )
    .unwrap();
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
    // fleet.yml's discovery file, which check-config reads too.
    std::fs::create_dir(examples.join("targets")).unwrap();
    std::fs::copy(
        "examples/targets/fleet.json",
        examples.join("targets/fleet.json"),
    )
    .unwrap();
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
        if path.ends_with("bastion.yml") {
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                stdout.contains(
                    "through the bastion dbvigil@bastion.example.com:22 (host key: known_hosts "
                ) && stdout.contains(
                    "through the bastion dbvigil@bastion-eu.example.com:22 (host key: SHA256:"
                ),
                "{stdout}"
            );
        }
        if path.ends_with("fleet.yml") {
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                stdout.contains("3 discovered target(s):")
                    && stdout.contains("  billing-db.prod.example.internal_5433 (postgres"),
                "{stdout}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} examples found");
}

/// `--dbvigil-url` names the exporter in every subcommand that calls one; `--url`, which
/// `maintenance` took first, still works in both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_spellings_of_the_exporter_address_work_in_maintenance_and_migrate() {
    const TOKEN: &str = "0123456789abcdef0123456789abcdef";
    let dir = tempdir();
    let path = dir.path();
    std::fs::write(path.join("tokens"), format!("ci {TOKEN}\n")).unwrap();
    std::fs::write(
        path.join("dbvigil.yml"),
        "targets:\n  - {name: app, kind: sqlite, path: app.db, create: true, interval: 1s}\n\
         maintenance:\n  tokens_file: tokens\n",
    )
    .unwrap();
    std::fs::create_dir(path.join("migrations")).unwrap();
    std::fs::write(
        path.join("migrations/V1__t.sql"),
        "CREATE TABLE t (id int);\n",
    )
    .unwrap();
    let run = Running::start(path, &["--config.file", "dbvigil.yml"], &[]).await;
    let url = format!("http://{}", run.addr);
    for flag in ["--dbvigil-url", "--url"] {
        let out = dbvigil(path, &["maintenance", flag, &url, "status", "app"], &[]);
        assert_eq!(out.status.code(), Some(0), "maintenance {flag}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "app: not in maintenance\n"
        );
        // A database of its own per spelling, so each run has a script to apply.
        let database = format!("sqlite:{}.db", flag.trim_start_matches('-'));
        let out = dbvigil(
            path,
            &[
                "migrate",
                "--database-url",
                &database,
                "run",
                "--maintenance",
                "--maintenance-scope",
                "app",
                flag,
                &url,
                "--token",
                TOKEN,
            ],
            &[],
        );
        assert_eq!(out.status.code(), Some(0), "migrate {flag}: {out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("opened maintenance window")
                && stdout.contains("ended maintenance window"),
            "migrate {flag}: {stdout}"
        );
    }
    run.terminate();
}

/// `dbvigil report` against a running exporter: a target in an outage, in text and JSON,
/// then what the exporter refused (an unknown target, a time it cannot read) and an
/// exporter nobody answers for, each with its message and exit code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_prints_a_targets_outages_and_says_what_was_refused() {
    let closed = common::servers::free_port();
    let dir = tempdir();
    let path = dir.path();
    std::fs::write(
        path.join("dbvigil.yml"),
        format!(
            "targets:\n  - {{name: gone, kind: tcp, host: 127.0.0.1, port: {closed}, \
             interval: 200ms, failure_threshold: 1}}\n"
        ),
    )
    .unwrap();
    let run = Running::start(path, &["--config.file", "dbvigil.yml"], &[]).await;
    eventually(WAIT, "target gone is down", || async {
        (run.metrics().await.get("dbvigil_up", &[("target", "gone")]) == Some(0.0)).then_some(())
    })
    .await;
    let url = format!("http://{}", run.addr);
    let report = |args: &[&str]| {
        let mut all = vec!["report", "--dbvigil-url", &url];
        all.extend_from_slice(args);
        let out = dbvigil(path, &all, &[]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (code, text, err) = report(&["--target", "gone"]);
    assert_eq!((code, err.as_str()), (Some(0), ""), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("Target gone, all this exporter keeps, up to now (20"),
        "{text}"
    );
    assert_eq!(
        lines[1], "Probe interval 0.2 s: each time below is within one interval of the truth.",
        "{text}"
    );
    assert!(lines.contains(&"No switchover in this range."), "{text}");
    let outage = lines
        .iter()
        .skip_while(|l| **l != "Outages")
        .nth(1)
        .unwrap_or_else(|| panic!("no outage listed:\n{text}"));
    assert!(
        outage.starts_with("  20")
            && outage.contains(" to now  ")
            && outage.contains(" s so far  refused: ")
            && outage.ends_with("  (tcp failed)"),
        "{text}"
    );
    assert!(
        !text.contains("write"),
        "a tcp target has no writes to talk about:\n{text}"
    );

    let (code, json, err) = report(&["--target", "gone", "--since", "1h", "--output", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let answer: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(answer["target"], "gone", "{answer:#}");
    assert!(answer["since"].is_string(), "{answer:#}");
    assert!(answer["episodes"][0]["ended_at"].is_null(), "{answer:#}");
    assert!(
        json.contains("\n  \"episodes\": ["),
        "pretty-printed: {json}"
    );

    let (code, out, err) = report(&["--target", "nope"]);
    assert_eq!((code, out.as_str()), (Some(1), ""));
    assert_eq!(
        err,
        "refused (404): unknown target \"nope\": configured targets are listed at /api/v1/targets\n"
    );
    let (code, out, err) = report(&["--target", "gone", "--since", "yesterday"]);
    assert_eq!((code, out.as_str()), (Some(2), ""));
    assert_eq!(
        err,
        "refused (400): since=\"yesterday\" is neither an RFC 3339 time (such as 2026-12-03T14:00:00Z) nor a duration back from now (such as 15m, 2h or 1d)\n"
    );

    // Nobody listens there: the message names the URL, without the password written in it.
    let nobody = common::servers::free_port();
    let out = dbvigil(
        path,
        &[
            "report",
            "--target",
            "gone",
            "--dbvigil-url",
            &format!("http://ops:Url-pa55@127.0.0.1:{nobody}"),
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.starts_with(&format!(
            "cannot reach dbvigil at http://127.0.0.1:{nobody}/: "
        )),
        "{err}"
    );
    assert!(!err.contains("Url-pa55"), "{err}");
    run.terminate();
}
