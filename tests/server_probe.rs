//! PostgreSQL and MariaDB targets against throwaway servers: healthy probes, a stopped
//! server, a frozen one, read-only periods, a switchover, refused logins, scale.
//! Every scenario asserts metrics and the API, never log lines.

mod common;

use std::time::{Duration, Instant};

use common::db::{Db, Engine, WAIT, block, config, target, wait_up};
use common::forwarder::Forwarder;
use common::{Running, TestExporter, eventually, request, tempdir};

async fn last_reason(e: &TestExporter, name: &str) -> Option<String> {
    e.target_json(name).await["last_probe"]["error"]["reason"]
        .as_str()
        .map(str::to_owned)
}

async fn episodes(e: &TestExporter, name: &str) -> Vec<serde_json::Value> {
    e.target_json(name).await["episodes"]
        .as_array()
        .unwrap()
        .clone()
}

async fn healthy_server_passes_every_phase(engine: Engine) {
    let Some(db) = Db::start(engine) else { return };
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &config(&[target("db", &db, "200ms", "")])).await;
    wait_up(&e, "db", 1.0).await;
    eventually(WAIT, "identity reported", || async {
        e.metrics().await.has("dbvigil_server_info").then_some(())
    })
    .await;
    let m = e.metrics().await;
    for check in ["tcp", "connect", "read", "write"] {
        assert_eq!(
            m.value(
                "dbvigil_check_success",
                &[("target", "db"), ("check", check)]
            ),
            1.0,
            "{check}"
        );
    }
    for phase in ["tcp", "connect", "read", "write", "read_only", "identity"] {
        let n = m.value(
            "dbvigil_phase_duration_seconds_count",
            &[("target", "db"), ("phase", phase)],
        );
        assert!(n >= 1.0, "phase {phase} never ran");
    }
    assert_eq!(m.value("dbvigil_read_only", &[("target", "db")]), 0.0);
    let (_, labels, _) = m
        .samples
        .iter()
        .find(|(n, _, _)| n == "dbvigil_server_info")
        .unwrap();
    let label = |k: &str| labels.iter().find(|(lk, _)| lk == k).unwrap().1.clone();
    match engine {
        Engine::Postgres => {
            assert!(
                label("version").starts_with("15")
                    || label("version").chars().next().unwrap().is_ascii_digit()
            );
            assert!(
                label("identity").starts_with("sysid="),
                "{}",
                label("identity")
            );
            assert!(label("identity").contains(&format!(":{}", db.port())));
        }
        Engine::MariaDb => {
            assert!(label("version").contains("MariaDB"), "{}", label("version"));
            assert!(
                label("identity").contains(&format!("port={}", db.port())),
                "{}",
                label("identity")
            );
        }
    }
    // One heartbeat row however many probes ran.
    eventually(WAIT, "five probes", || async {
        (e.metrics()
            .await
            .value("dbvigil_probes_total", &[("target", "db")])
            >= 5.0)
            .then_some(())
    })
    .await;
    assert_eq!(
        block(|| db.sql("SELECT count(*) FROM dbvigil_heartbeat;")),
        "1"
    );
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_postgres_passes_every_phase() {
    healthy_server_passes_every_phase(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_mariadb_passes_every_phase() {
    healthy_server_passes_every_phase(Engine::MariaDb).await;
}

/// Stops the server for about 3 s under 100 ms probes: exactly one outage episode, whose
/// duration lies within what the test itself can bound, widened by one interval.
async fn a_stopped_server_is_one_outage_of_the_right_length(engine: Engine) {
    let Some(mut db) = Db::start(engine) else {
        return;
    };
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &config(&[target("db", &db, "100ms", "")])).await;
    wait_up(&e, "db", 1.0).await;

    let stop_began = Instant::now();
    db.stop();
    let stopped = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let start_began = Instant::now();
    db.start_again();
    let started = Instant::now();
    wait_up(&e, "db", 1.0).await;

    let eps = episodes(&e, "db").await;
    assert_eq!(eps.len(), 1, "{eps:#?}");
    let measured = eps[0]["duration_seconds"].as_f64().unwrap();
    // The outage lasted at least from "stopped" to "start began", at most from "stop began"
    // to "started"; the probe sees it within one interval on each side.
    let shortest = (start_began - stopped).as_secs_f64() - 0.1;
    let longest = (started - stop_began).as_secs_f64() + 0.1 + 0.05;
    assert!(
        (shortest..=longest).contains(&measured),
        "measured {measured:.3}s, expected between {shortest:.3}s and {longest:.3}s"
    );
    let reason = eps[0]["reason"].as_str().unwrap();
    assert!(
        ["refused", "io", "timeout"].contains(&reason),
        "reason {reason}"
    );
    let m = e.metrics().await;
    assert_eq!(m.value("dbvigil_outages_total", &[("target", "db")]), 1.0);
    assert_eq!(
        m.value("dbvigil_identity_changes_total", &[("target", "db")]),
        0.0,
        "a restart is not a new server"
    );
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_postgres_is_one_outage_of_the_right_length() {
    a_stopped_server_is_one_outage_of_the_right_length(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_mariadb_is_one_outage_of_the_right_length() {
    a_stopped_server_is_one_outage_of_the_right_length(Engine::MariaDb).await;
}

/// A frozen server (SIGSTOP) still completes TCP handshakes; only the timeout tells.
async fn a_frozen_server_times_out_without_delaying_anyone(engine: Engine) {
    let Some(frozen) = Db::start(engine) else {
        return;
    };
    let other_engine = match engine {
        Engine::Postgres => Engine::MariaDb,
        Engine::MariaDb => Engine::Postgres,
    };
    let Some(other) = Db::start(other_engine) else {
        return;
    };
    let dir = tempdir();
    let e = TestExporter::start(
        dir.path(),
        &config(&[
            target("frozen", &frozen, "200ms", ""),
            target("other", &other, "100ms", ""),
        ]),
    )
    .await;
    wait_up(&e, "frozen", 1.0).await;
    wait_up(&e, "other", 1.0).await;

    frozen.freeze();
    let other_before = e
        .metrics()
        .await
        .value("dbvigil_probes_total", &[("target", "other")]);
    let window = Instant::now();
    let mut slowest_scrape = Duration::ZERO;
    let mut longest_probe: f64 = 0.0;
    while window.elapsed() < Duration::from_secs(2) {
        let t = Instant::now();
        let m = e.metrics().await;
        slowest_scrape = slowest_scrape.max(t.elapsed());
        let d = m.value(
            "dbvigil_last_probe_duration_seconds",
            &[("target", "frozen")],
        );
        if !d.is_nan() {
            longest_probe = longest_probe.max(d);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = e.metrics().await;
    assert_eq!(m.value("dbvigil_up", &[("target", "frozen")]), 0.0);
    assert_eq!(last_reason(&e, "frozen").await.as_deref(), Some("timeout"));
    assert!(
        m.value("dbvigil_read_only", &[("target", "frozen")])
            .is_nan(),
        "a frozen server's read-only state is unknown, not its last value"
    );
    assert!(
        m.value(
            "dbvigil_probe_failures_total",
            &[("target", "frozen"), ("reason", "timeout")]
        ) >= 3.0
    );
    assert!(
        longest_probe <= 0.2 + 0.1,
        "a probe of the frozen server took {longest_probe:.3}s (timeout 0.2s)"
    );
    let other_probes = m.value("dbvigil_probes_total", &[("target", "other")]) - other_before;
    assert!(
        other_probes >= 12.0,
        "the other target probed only {other_probes} times in 2 s"
    );
    assert_eq!(m.value("dbvigil_up", &[("target", "other")]), 1.0);
    assert!(
        slowest_scrape < Duration::from_millis(500),
        "a scrape took {slowest_scrape:?}"
    );

    frozen.thaw();
    wait_up(&e, "frozen", 1.0).await;
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_postgres_times_out_without_delaying_anyone() {
    a_frozen_server_times_out_without_delaying_anyone(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_mariadb_times_out_without_delaying_anyone() {
    a_frozen_server_times_out_without_delaying_anyone(Engine::MariaDb).await;
}

async fn a_read_only_server_fails_writes_only(engine: Engine) {
    let Some(db) = Db::start(engine) else { return };
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &config(&[target("db", &db, "100ms", "")])).await;
    wait_up(&e, "db", 1.0).await;

    block(|| db.set_read_only(true));
    eventually(WAIT, "writes refused as read_only", || async {
        (last_reason(&e, "db").await.as_deref() == Some("read_only")).then_some(())
    })
    .await;
    wait_up(&e, "db", 0.0).await;
    let m = e.metrics().await;
    assert_eq!(m.value("dbvigil_read_only", &[("target", "db")]), 1.0);
    assert_eq!(
        m.value(
            "dbvigil_check_success",
            &[("target", "db"), ("check", "read")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "dbvigil_check_success",
            &[("target", "db"), ("check", "write")]
        ),
        0.0
    );
    assert!(
        m.has("dbvigil_server_info"),
        "identity still read while writes fail"
    );

    block(|| db.set_read_only(false));
    wait_up(&e, "db", 1.0).await;
    let m = e.metrics().await;
    assert_eq!(m.value("dbvigil_read_only", &[("target", "db")]), 0.0);
    let eps = episodes(&e, "db").await;
    assert_eq!(eps.len(), 1, "{eps:#?}");
    assert_eq!(eps[0]["reason"], "read_only");
    assert_eq!(eps[0]["failed_checks"], serde_json::json!(["write"]));
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_postgres_fails_writes_only() {
    a_read_only_server_fails_writes_only(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_mariadb_fails_writes_only() {
    a_read_only_server_fails_writes_only(Engine::MariaDb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switchover_is_one_outage_and_one_identity_change() {
    let Some(blue) = Db::start(Engine::Postgres) else {
        return;
    };
    let Some(green) = Db::start(Engine::Postgres) else {
        return;
    };
    let fwd = Forwarder::start(blue.port()).await;
    let dir = tempdir();
    // 250 ms: the first login to green (SCRAM) plus creating its heartbeat table must fit
    // in one timeout even on a loaded two-core CI machine, or a slow first probe would
    // read as a second outage.
    let yaml = format!(
        "targets:\n  - name: app\n    kind: postgres\n    url: postgres://probe:probe-pw@127.0.0.1:{}/app?sslmode=require\n    interval: 250ms\n",
        fwd.port
    );
    let e = TestExporter::start(dir.path(), &yaml).await;
    wait_up(&e, "app", 1.0).await;
    let blue_identity = e.target_json("app").await["identity"]["key"].clone();

    fwd.switch(None);
    wait_up(&e, "app", 0.0).await;
    tokio::time::sleep(Duration::from_millis(750)).await;
    fwd.switch(Some(green.port()));
    wait_up(&e, "app", 1.0).await;

    let m = e.metrics().await;
    let eps = episodes(&e, "app").await;
    assert_eq!(
        m.value("dbvigil_outages_total", &[("target", "app")]),
        1.0,
        "{eps:#?}"
    );
    assert_eq!(
        m.value("dbvigil_identity_changes_total", &[("target", "app")]),
        1.0
    );
    let green_identity = e.target_json("app").await["identity"]["key"].clone();
    assert_ne!(blue_identity, green_identity);
    assert!(
        green_identity
            .as_str()
            .unwrap()
            .contains(&format!(":{}", green.port()))
    );
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_logins_unknown_hosts_and_closed_ports_have_their_reasons_and_no_password_leaks() {
    let Some(pg) = Db::start(Engine::Postgres) else {
        return;
    };
    let Some(maria) = Db::start(Engine::MariaDb) else {
        return;
    };
    // A role that must log in with its password (SCRAM), unlike the trusted `probe`.
    block(|| {
        pg.sql("CREATE ROLE guarded LOGIN PASSWORD 'guarded-pw'; GRANT ALL ON SCHEMA public TO guarded;")
    });
    const WRONG: &str = "Wrong-Pa55word-never-shown";
    let dir = tempdir();
    std::fs::write(dir.path().join("pg-password"), format!("{WRONG}\n")).unwrap();
    let closed = common::servers::free_port();
    let yaml = format!(
        "targets:\n\
         \x20 - {{name: pg-auth, kind: postgres, host: 127.0.0.1, port: {pg}, user: guarded, database: app, password_file: pg-password, interval: 200ms}}\n\
         \x20 - {{name: pg-scram, kind: postgres, host: 127.0.0.1, port: {pg}, user: guarded, database: app, password: guarded-pw, interval: 200ms}}\n\
         \x20 - {{name: maria-auth, kind: mariadb, url: \"mysql://probe:{WRONG}@127.0.0.1:{maria}/app\", interval: 200ms}}\n\
         \x20 - {{name: nowhere, kind: postgres, host: dbvigil-test.invalid, user: probe, password: {WRONG}, interval: 200ms}}\n\
         \x20 - {{name: closed, kind: mysql, host: 127.0.0.1, port: {closed}, user: probe, password: {WRONG}, database: app, interval: 200ms}}\n",
        pg = pg.port(),
        maria = maria.port(),
    );
    std::fs::write(dir.path().join("dbvigil.yml"), yaml).unwrap();
    let run = Running::start(
        dir.path(),
        &["--config.file", "dbvigil.yml", "--log.level", "debug"],
        &[],
    )
    .await;
    let expect = [
        ("pg-auth", "auth"),
        ("maria-auth", "auth"),
        ("nowhere", "dns"),
        ("closed", "refused"),
    ];
    eventually(
        WAIT,
        "every target failed with its reason, and the right password got in",
        || async {
            let m = run.metrics().await;
            (m.get("dbvigil_up", &[("target", "pg-scram")]) == Some(1.0)).then_some(())?;
            expect
                .iter()
                .all(|(t, r)| {
                    m.get(
                        "dbvigil_probe_failures_total",
                        &[("target", t), ("reason", r)],
                    )
                    .unwrap_or(0.0)
                        >= 2.0
                })
                .then_some(())
        },
    )
    .await;
    let mut surfaces = vec![
        request(run.addr, "GET", "/metrics", &[]).await.body,
        request(run.addr, "GET", "/api/v1/targets", &[]).await.body,
        request(run.addr, "GET", "/", &[]).await.body,
    ];
    for (t, _) in expect {
        surfaces.push(
            request(run.addr, "GET", &format!("/probe?target={t}"), &[])
                .await
                .body,
        );
    }
    let api: serde_json::Value = serde_json::from_str(&surfaces[1]).unwrap();
    for (t, r) in expect {
        let target = api["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == t)
            .unwrap();
        assert_eq!(target["last_probe"]["error"]["reason"], r, "{target:#}");
    }
    surfaces.push(run.terminate());
    for s in &surfaces {
        assert!(!s.contains(WRONG), "the password leaked into:\n{s}");
    }
    assert!(
        surfaces.last().unwrap().contains("target down"),
        "debug log was captured"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_grant_is_a_query_failure_that_names_it() {
    let Some(db) = Db::start(Engine::Postgres) else {
        return;
    };
    // In database `postgres` the probe login may read but not create tables (PostgreSQL 15
    // revoked CREATE on schema public from PUBLIC).
    let dir = tempdir();
    let yaml = format!(
        "targets:\n  - name: db\n    kind: postgres\n    url: postgres://probe:probe-pw@127.0.0.1:{}/postgres?sslmode=require\n    interval: 200ms\n",
        db.port()
    );
    let e = TestExporter::start(dir.path(), &yaml).await;
    wait_up(&e, "db", 0.0).await;
    let t = e.target_json("db").await;
    assert_eq!(t["last_probe"]["error"]["reason"], "query");
    let msg = t["last_probe"]["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("GRANT CREATE ON SCHEMA public TO probe"),
        "{msg}"
    );
    assert!(
        msg.contains("CREATE TABLE IF NOT EXISTS dbvigil_heartbeat"),
        "{msg}"
    );
    assert_eq!(t["last_probe"]["checks"]["read"], true);
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_reports_the_age_of_its_primarys_heartbeat() {
    let Some(db) = Db::start(Engine::Postgres) else {
        return;
    };
    let dir = tempdir();
    // The "replica" reads the same server here: what is measured is the age of the
    // primary's row as read through the replica's connection.
    let primary = target("primary", &db, "100ms", "");
    let replica = target(
        "replica",
        &db,
        "100ms",
        "    checks: [tcp, connect, read]\n    replica_of: primary\n",
    );
    let e = TestExporter::start(dir.path(), &config(&[primary, replica])).await;
    let lag = eventually(WAIT, "replication lag reported", || async {
        let v = e
            .metrics()
            .await
            .value("dbvigil_replication_lag_seconds", &[("target", "replica")]);
        (!v.is_nan()).then_some(v)
    })
    .await;
    assert!((0.0..0.5).contains(&lag), "lag {lag}");

    // Writes stop reaching the primary (it went read-only): the lag seen on the replica
    // grows with time while the replica's reads keep working.
    block(|| db.set_read_only(true));
    eventually(WAIT, "lag grows past 1 s", || async {
        (e.metrics()
            .await
            .value("dbvigil_replication_lag_seconds", &[("target", "replica")])
            > 1.0)
            .then_some(())
    })
    .await;
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_at_its_connection_limit_is_too_many_connections() {
    let Some(db) = Db::start(Engine::Postgres) else {
        return;
    };
    block(|| db.sql("ALTER ROLE probe CONNECTION LIMIT 0;"));
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &config(&[target("db", &db, "200ms", "")])).await;
    wait_up(&e, "db", 0.0).await;
    let t = e.target_json("db").await;
    assert_eq!(
        t["last_probe"]["error"]["reason"], "too_many_connections",
        "{t:#}"
    );
    block(|| db.sql("ALTER ROLE probe CONNECTION LIMIT -1;"));
    wait_up(&e, "db", 1.0).await;
    e.stop().await;
}

/// A CA, a server certificate for localhost/127.0.0.1 signed by it, and an unrelated CA.
fn make_certificates(dir: &std::path::Path) {
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let days = ["-days", "2"];
    openssl(
        &[
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=dbvigil test CA",
            ][..],
            &days,
        ]
        .concat(),
    );
    openssl(
        &[
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "other.key",
                "-out",
                "other-ca.pem",
                "-subj",
                "/CN=another CA",
            ][..],
            &days,
        ]
        .concat(),
    );
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        &[
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-extfile",
                "san.ext",
            ][..],
            &days,
        ]
        .concat(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_modes_are_enforced_against_a_real_tls_server() {
    // Starts without TLS (unlike the harness default) to see each mode fail first.
    let Some(Db::Pg(pg)) = Db::start_without_tls(Engine::Postgres) else {
        return;
    };
    let dir = tempdir();
    make_certificates(dir.path());
    let tls_target = |name: &str, mode: &str, ca: Option<&str>| {
        let ca = ca.map(|c| format!(", ca_file: {c}")).unwrap_or_default();
        format!(
            "  - {{name: {name}, kind: postgres, host: localhost, port: {}, user: probe, password: probe-pw, database: app, interval: 200ms, tls: {{mode: {mode}{ca}}}}}\n",
            pg.port()
        )
    };
    let yaml = format!(
        "targets:\n{}{}{}",
        tls_target("required", "require", None),
        tls_target("verified", "verify-full", Some("ca.pem")),
        tls_target("wrong-ca", "verify-full", Some("other-ca.pem")),
    );
    let e = TestExporter::start(dir.path(), &yaml).await;
    // The server does not offer TLS yet: every mode that demands it fails as `tls`.
    for name in ["required", "verified", "wrong-ca"] {
        wait_up(&e, name, 0.0).await;
        let t = e.target_json(name).await;
        assert_eq!(
            t["last_probe"]["error"]["reason"], "tls",
            "{name}: {}",
            t["last_probe"]["error"]
        );
    }

    // Turn TLS on with the certificate signed by ca.pem.
    let data_dir = std::path::PathBuf::from(block(|| pg.psql("SHOW data_directory")));
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(&data_dir).unwrap();
    for f in ["server.crt", "server.key"] {
        let to = data_dir.join(f);
        std::fs::copy(dir.path().join(f), &to).unwrap();
        std::os::unix::fs::chown(&to, Some(owner.uid()), Some(owner.gid())).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    block(|| pg.psql("ALTER SYSTEM SET ssl = on; SELECT pg_reload_conf();"));
    wait_up(&e, "required", 1.0).await;
    wait_up(&e, "verified", 1.0).await;
    let m = e.metrics().await;
    assert_eq!(m.value("dbvigil_up", &[("target", "wrong-ca")]), 0.0);
    let t = e.target_json("wrong-ca").await;
    assert_eq!(
        t["last_probe"]["error"]["reason"], "tls",
        "{}",
        t["last_probe"]["error"]
    );
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_login_without_create_is_told_the_grant_and_a_missing_table_the_ddl() {
    let Some(Db::Maria(m)) = Db::start(Engine::MariaDb) else {
        return;
    };
    block(|| {
        m.sql(
            "CREATE USER 'limited'@'127.0.0.1' IDENTIFIED BY 'limited-pw'; \
             GRANT SELECT, INSERT, UPDATE ON app.* TO 'limited'@'127.0.0.1';",
        )
    });
    let dir = tempdir();
    let yaml = format!(
        "targets:\n\
         \x20 - {{name: limited, kind: mariadb, url: \"mysql://limited:limited-pw@127.0.0.1:{p}/app\", interval: 200ms}}\n\
         \x20 - {{name: no-create, kind: mariadb, url: \"mysql://limited:limited-pw@127.0.0.1:{p}/app\", interval: 200ms, heartbeat: {{create: false}}}}\n",
        p = m.port()
    );
    let e = TestExporter::start(dir.path(), &yaml).await;
    wait_up(&e, "limited", 0.0).await;
    wait_up(&e, "no-create", 0.0).await;
    let t = e.target_json("limited").await;
    assert_eq!(t["last_probe"]["error"]["reason"], "query");
    let msg = t["last_probe"]["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("GRANT CREATE ON `app`.dbvigil_heartbeat TO 'limited'"),
        "{msg}"
    );
    let t = e.target_json("no-create").await;
    let msg = t["last_probe"]["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("the heartbeat table does not exist and heartbeat.create is false: create it with: CREATE TABLE IF NOT EXISTS `app`.dbvigil_heartbeat"),
        "{msg}"
    );

    // Once the DBA creates the table, the login that may not create it writes happily.
    block(|| {
        m.sql("CREATE TABLE app.dbvigil_heartbeat (target VARCHAR(190) NOT NULL, instance VARCHAR(190) NOT NULL, seq BIGINT NOT NULL, beat_at_ms BIGINT NOT NULL, PRIMARY KEY (target, instance));")
    });
    wait_up(&e, "no-create", 1.0).await;
    wait_up(&e, "limited", 1.0).await;
    e.stop().await;
}

async fn a_reused_connection_stays_one_and_survives_a_restart(engine: Engine) {
    let Some(mut db) = Db::start(engine) else {
        return;
    };
    let dir = tempdir();
    let e = TestExporter::start(
        dir.path(),
        &config(&[target("db", &db, "100ms", "    connection: reuse\n")]),
    )
    .await;
    eventually(WAIT, "ten successful probes", || async {
        let m = e.metrics().await;
        (m.value("dbvigil_probes_total", &[("target", "db")]) >= 10.0
            && m.get("dbvigil_up", &[("target", "db")]) == Some(1.0))
        .then_some(())
    })
    .await;
    let m = e.metrics().await;
    assert_eq!(
        m.value(
            "dbvigil_probe_failures_total",
            &[("target", "db"), ("reason", "query")]
        ),
        0.0
    );
    assert_eq!(
        m.value("dbvigil_outages_total", &[("target", "db")]),
        0.0,
        "every reused probe succeeded"
    );
    assert_eq!(
        m.value(
            "dbvigil_check_success",
            &[("target", "db"), ("check", "connect")]
        ),
        1.0
    );
    assert_eq!(
        db.connections(),
        1,
        "one kept connection, not one per probe"
    );

    // The kept connection breaks with the restart; the next probes log in again.
    db.stop();
    wait_up(&e, "db", 0.0).await;
    db.start_again();
    wait_up(&e, "db", 1.0).await;
    assert_eq!(
        e.metrics()
            .await
            .value("dbvigil_outages_total", &[("target", "db")]),
        1.0
    );
    eventually(WAIT, "one connection again", || async {
        (db.connections() == 1).then_some(())
    })
    .await;
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_postgres_connection_stays_one_and_survives_a_restart() {
    a_reused_connection_stays_one_and_survives_a_restart(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_mariadb_connection_stays_one_and_survives_a_restart() {
    a_reused_connection_stays_one_and_survives_a_restart(Engine::MariaDb).await;
}

/// `/probe` runs beside the continuous probe of the same target: four clients calling it
/// back to back must not make a single continuous probe fail (they used to overwrite its
/// heartbeat row, whose read-back then failed with `mismatch`), and each answer is a
/// successful probe of its own.
async fn on_demand_probes_never_disturb_the_continuous_probe(engine: Engine) {
    let Some(db) = Db::start(engine) else { return };
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &config(&[target("db", &db, "250ms", "")])).await;
    wait_up(&e, "db", 1.0).await;
    let before = e
        .metrics()
        .await
        .value("dbvigil_probes_total", &[("target", "db")]);
    let until = Instant::now() + Duration::from_secs(5);
    let client = || async {
        let mut answers = 0;
        while Instant::now() < until {
            let r = e.get("/probe?target=db").await;
            assert_eq!(r.status, 200, "{}", r.body);
            assert!(
                r.body.contains("dbvigil_probe_success{target=\"db\"} 1"),
                "an on-demand probe failed:\n{}",
                r.body
            );
            answers += 1;
        }
        answers
    };
    let (a, b, c, d) = tokio::join!(client(), client(), client(), client());
    assert!(
        a + b + c + d >= 8,
        "only {} on-demand probes ran",
        a + b + c + d
    );
    let m = e.metrics().await;
    let probes = m.value("dbvigil_probes_total", &[("target", "db")]) - before;
    assert!(
        probes >= 5.0,
        "the continuous probe ran only {probes} times"
    );
    assert!(
        m.failures("db").is_empty(),
        "continuous probe failures: {:?}",
        m.failures("db")
    );
    assert_eq!(m.value("dbvigil_outages_total", &[("target", "db")]), 0.0);
    // One row for the schedule and one for on-demand probes, however many calls.
    let rows = block(|| db.sql("SELECT count(*) FROM dbvigil_heartbeat WHERE target = 'db'"));
    assert_eq!(rows.trim(), "2");
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_probes_never_disturb_the_continuous_postgres_probe() {
    on_demand_probes_never_disturb_the_continuous_probe(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_probes_never_disturb_the_continuous_mariadb_probe() {
    on_demand_probes_never_disturb_the_continuous_probe(Engine::MariaDb).await;
}
