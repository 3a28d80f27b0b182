//! Targets behind a bastion: probes forwarded through a real OpenSSH server (Debian's sshd,
//! tests/common/sshd.rs) that may forward only to the test's database ports. The bastion's
//! failures (stopped, frozen, unknown host key) and the database's own (stopped behind a
//! healthy bastion) must read as different reasons.

mod common;

use common::db::{Db, Engine, WAIT, wait_up};
use common::sshd::Bastion;
use common::{Running, TestExporter, eventually, request, tempdir};

/// A database target reached only through `bastion`, with `ssh_auth` as its login lines
/// (identity_file, agent, ...) and `host_key` as its pin.
fn target_behind(
    name: &str,
    db: &Db,
    bastion: &Bastion,
    extra: &str,
    auth_and_pin: &str,
) -> String {
    format!(
        "  - name: {name}\n{}    interval: 1s\n    failure_threshold: 2\n    checks: [tcp, connect, read, write]\n{extra}    ssh:\n      host: 127.0.0.1\n      port: {}\n      user: {}\n{auth_and_pin}",
        db.probe_settings(),
        bastion.port(),
        bastion.user(),
    )
}

fn key_and_known_hosts(bastion: &Bastion) -> String {
    format!(
        "      identity_file: {}\n      known_hosts: {}\n",
        bastion.client_key().display(),
        bastion.known_hosts().display()
    )
}

fn logins(bastion: &Bastion) -> usize {
    bastion.log().matches("Accepted publickey").count()
}

async fn last_error(e: &TestExporter, name: &str) -> Option<(String, String)> {
    let t = e.target_json(name).await;
    let err = &t["last_probe"]["error"];
    Some((
        err["reason"].as_str()?.to_owned(),
        err["message"].as_str()?.to_owned(),
    ))
}

async fn wait_reason(e: &TestExporter, name: &str, reason: &str) -> String {
    eventually(
        WAIT,
        &format!("{name} down with reason {reason}"),
        || async {
            let m = e.metrics().await;
            (m.get("dbvigil_up", &[("target", name)]) == Some(0.0)).then_some(())?;
            let (r, message) = last_error(e, name).await?;
            (r == reason).then_some(message)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_and_mariadb_behind_a_bastion_pass_every_check_through_it() {
    let Some(pg) = Db::start(Engine::Postgres) else {
        return;
    };
    let Some(maria) = Db::start(Engine::MariaDb) else {
        return;
    };
    let Some(bastion) = Bastion::start(&[pg.port(), maria.port()]) else {
        return;
    };
    // The kept session's own bastion, so that its logins can be counted.
    let Some(kept_bastion) = Bastion::start(&[pg.port()]) else {
        return;
    };
    let dir = tempdir();
    let pin = key_and_known_hosts(&bastion);
    let fingerprint = format!(
        "      identity_file: {}\n      host_key: {}\n",
        bastion.client_key().display(),
        bastion.host_key_fingerprint()
    );
    let agent = bastion.agent();
    let through_agent = format!(
        "      agent_socket: {}\n      known_hosts: {}\n",
        agent.socket().display(),
        bastion.known_hosts().display()
    );
    let yaml = format!(
        "targets:\n{}{}{}{}",
        target_behind("pg", &pg, &bastion, "", &pin),
        target_behind("maria-agent", &maria, &bastion, "", &through_agent),
        target_behind("maria", &maria, &bastion, "", &fingerprint),
        target_behind(
            "pg-kept",
            &pg,
            &kept_bastion,
            "    connection: reuse\n",
            &key_and_known_hosts(&kept_bastion)
        ),
    );
    let e = TestExporter::start(dir.path(), &yaml).await;
    let all = ["pg", "maria", "maria-agent", "pg-kept"];
    for t in all {
        wait_up(&e, t, 1.0).await;
    }
    let m = e.metrics().await;
    for t in all {
        for check in ["tcp", "connect", "read", "write"] {
            assert_eq!(
                m.get("dbvigil_check_success", &[("target", t), ("check", check)]),
                Some(1.0),
                "{t} {check}"
            );
        }
        assert!(
            m.value(
                "dbvigil_phase_duration_seconds_count",
                &[("target", t), ("phase", "bastion")]
            ) >= 1.0,
            "{t}: the bastion is a phase of its own"
        );
        // The bastion's reasons exist for a target behind one, at 0.
        assert_eq!(
            m.get(
                "dbvigil_probe_failures_total",
                &[("target", t), ("reason", "bastion_host_key")]
            ),
            Some(0.0)
        );
    }
    let endpoint = e.target_json("pg").await["endpoint"].to_string();
    assert!(
        endpoint.contains(&format!(
            "via the bastion root@127.0.0.1:{}",
            bastion.port()
        )),
        "the API says how the target is reached: {endpoint}"
    );
    // Identity as seen from inside: the server's own address and port.
    let pg_identity = e.target_json("pg").await["identity"].to_string();
    assert!(
        pg_identity.contains(&pg.port().to_string()),
        "PostgreSQL's identity names its own port: {pg_identity}"
    );
    // connection: close logs in to the bastion for every probe; reuse keeps one session.
    let before = logins(&bastion);
    let probes_before = m.value("dbvigil_probes_total", &[("target", "pg-kept")]);
    eventually(WAIT, "five more probes of each target", || async {
        let m = e.metrics().await;
        (m.value("dbvigil_probes_total", &[("target", "pg-kept")]) >= probes_before + 5.0)
            .then_some(())
    })
    .await;
    let after = logins(&bastion);
    assert!(
        after >= before + 12,
        "three targets with connection: fresh log in to the bastion at every probe: {before} then {after}"
    );
    assert_eq!(
        logins(&kept_bastion),
        1,
        "connection: reuse keeps one SSH session across probes"
    );
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_host_key_is_refused_with_how_to_check_and_pin_the_right_one() {
    let Some(maria) = Db::start(Engine::MariaDb) else {
        return;
    };
    let Some(bastion) = Bastion::start(&[maria.port()]) else {
        return;
    };
    let dir = tempdir();
    let wrong_file = format!(
        "      identity_file: {}\n      known_hosts: {}\n",
        bastion.client_key().display(),
        bastion.wrong_known_hosts().display()
    );
    let wrong_fingerprint = format!(
        "      identity_file: {}\n      host_key: SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
        bastion.client_key().display(),
    );
    let yaml = format!(
        "targets:\n{}{}",
        target_behind("pinned-elsewhere", &maria, &bastion, "", &wrong_file),
        target_behind(
            "wrong-fingerprint",
            &maria,
            &bastion,
            "",
            &wrong_fingerprint
        ),
    );
    let e = TestExporter::start(dir.path(), &yaml).await;
    let seen = bastion.host_key_fingerprint();
    for t in ["pinned-elsewhere", "wrong-fingerprint"] {
        let message = wait_reason(&e, t, "bastion_host_key").await;
        assert!(
            message.contains(&seen),
            "names the key presented: {message}"
        );
        assert!(
            message.contains("ssh-keygen -lf") && message.contains("refused"),
            "says how to check and pin: {message}"
        );
    }
    // Nothing was forwarded: the bastion never let dbvigil log in.
    assert_eq!(
        bastion.log().matches("Accepted publickey").count(),
        0,
        "{}",
        bastion.log_tail()
    );
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bastion_down_frozen_and_back_is_its_own_reason_and_the_database_down_behind_it_is_the_databases()
 {
    let Some(mut pg) = Db::start(Engine::Postgres) else {
        return;
    };
    let Some(mut bastion) = Bastion::start(&[pg.port()]) else {
        return;
    };
    let dir = tempdir();
    let pin = key_and_known_hosts(&bastion);
    let yaml = format!(
        "targets:\n{}{}",
        target_behind("kept", &pg, &bastion, "    connection: reuse\n", &pin),
        target_behind("fresh", &pg, &bastion, "", &pin),
    );
    let e = TestExporter::start(dir.path(), &yaml).await;
    let targets = ["kept", "fresh"];
    for t in targets {
        wait_up(&e, t, 1.0).await;
    }
    let episodes =
        |m: &common::Metrics, t: &str| m.value("dbvigil_outages_total", &[("target", t)]);

    // Stopped: the host is gone with its sessions.
    bastion.stop();
    for t in targets {
        wait_reason(&e, t, "bastion_refused").await;
    }
    bastion.start_again();
    for t in targets {
        wait_up(&e, t, 1.0).await;
    }
    let m = e.metrics().await;
    for t in targets {
        assert_eq!(episodes(&m, t), 1.0, "{t}: one outage for one bastion stop");
    }

    // Frozen: every probe ends within its timeout with the bastion's reason.
    bastion.freeze();
    for t in targets {
        let message = wait_reason(&e, t, "bastion_timeout").await;
        assert!(message.contains("bastion"), "{message}");
    }
    let m = e.metrics().await;
    for t in targets {
        let slow = m.value(
            "dbvigil_phase_duration_seconds_bucket",
            &[("target", t), ("phase", "bastion"), ("le", "+Inf")],
        ) - m.value(
            "dbvigil_phase_duration_seconds_bucket",
            &[("target", t), ("phase", "bastion"), ("le", "2.5")],
        );
        // The timeout is 1 s: no bastion phase outlived it by a bucket.
        assert_eq!(slow, 0.0, "{t}: a bastion phase outlived the 1 s timeout");
    }
    bastion.thaw();
    for t in targets {
        wait_up(&e, t, 1.0).await;
    }

    // The database stopped behind a healthy bastion: the database's reason.
    pg.stop();
    for t in targets {
        let message = wait_reason(&e, t, "refused").await;
        assert!(
            message.contains("could not connect to the database"),
            "{t}: {message}"
        );
    }
    pg.start_again();
    for t in targets {
        wait_up(&e, t, 1.0).await;
    }
    let m = e.metrics().await;
    for t in targets {
        assert_eq!(
            episodes(&m, t),
            3.0,
            "{t}: stop, freeze, database: three outages"
        );
        assert!(
            m.value(
                "dbvigil_probe_failures_total",
                &[("target", t), ("reason", "bastion_refused")]
            ) >= 2.0
        );
        assert!(
            m.value(
                "dbvigil_probe_failures_total",
                &[("target", t), ("reason", "bastion_timeout")]
            ) >= 2.0
        );
        assert!(
            m.value(
                "dbvigil_probe_failures_total",
                &[("target", t), ("reason", "refused")]
            ) >= 2.0
        );
    }
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_passphrase_reaches_no_output() {
    let Some(maria) = Db::start(Engine::MariaDb) else {
        return;
    };
    let Some(bastion) = Bastion::start(&[maria.port()]) else {
        return;
    };
    let dir = tempdir();
    std::fs::write(
        dir.path().join("passphrase"),
        format!("{}\n", bastion.passphrase()),
    )
    .unwrap();
    let encrypted = format!(
        "      identity_file: {}\n      passphrase_file: passphrase\n      known_hosts: {}\n",
        bastion.client_key_encrypted().display(),
        bastion.known_hosts().display()
    );
    let refused = format!(
        "      identity_file: {}\n      passphrase_file: passphrase\n      known_hosts: {}\n",
        bastion.client_key_encrypted().display(),
        bastion.wrong_known_hosts().display()
    );
    let yaml = format!(
        "targets:\n{}{}",
        target_behind("sealed", &maria, &bastion, "", &encrypted),
        target_behind("sealed-refused", &maria, &bastion, "", &refused),
    );
    std::fs::write(dir.path().join("dbvigil.yml"), yaml).unwrap();
    let run = Running::start(
        dir.path(),
        &["--config.file", "dbvigil.yml", "--log.level", "debug"],
        &[],
    )
    .await;
    eventually(WAIT, "sealed up, sealed-refused failing", || async {
        let m = run.metrics().await;
        (m.get("dbvigil_up", &[("target", "sealed")]) == Some(1.0)
            && m.value(
                "dbvigil_probe_failures_total",
                &[("target", "sealed-refused"), ("reason", "bastion_host_key")],
            ) >= 2.0)
            .then_some(())
    })
    .await;
    let mut surfaces = Vec::new();
    for path in [
        "/metrics",
        "/api/v1/targets",
        "/",
        "/probe?target=sealed&debug=true",
        "/probe?target=sealed-refused&debug=true",
    ] {
        surfaces.push(request(run.addr, "GET", path, &[]).await.body);
    }
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_dbvigil"))
        .args(["check-config", "--config.file", "dbvigil.yml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    let listed = String::from_utf8_lossy(&check.stdout);
    assert!(
        listed.contains(&format!(
            "through the bastion root@127.0.0.1:{}",
            bastion.port()
        )),
        "check-config says how each target is reached: {listed}"
    );
    surfaces.push(String::from_utf8_lossy(&check.stdout).into_owned());
    surfaces.push(String::from_utf8_lossy(&check.stderr).into_owned());
    surfaces.push(run.terminate());
    for s in &surfaces {
        assert!(
            !s.contains(bastion.passphrase()),
            "the key's passphrase leaked into:\n{s}"
        );
    }
    assert!(
        surfaces[4].contains("bastion"),
        "the debug log tells the bastion phase: {}",
        surfaces[4]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_history_is_read_through_the_bastion() {
    let Some(pg) = Db::start(Engine::Postgres) else {
        return;
    };
    let Some(mut bastion) = Bastion::start(&[pg.port()]) else {
        return;
    };
    // golang-migrate's own table, as its postgres driver makes it.
    common::db::block(|| {
        pg.sql(
            "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL); \
             INSERT INTO schema_migrations VALUES (42, false); GRANT SELECT ON schema_migrations TO probe;",
        )
    });
    let dir = tempdir();
    let yaml = format!(
        "targets:\n{}",
        target_behind(
            "pg",
            &pg,
            &bastion,
            "    migrations: {interval: 1s}\n",
            &key_and_known_hosts(&bastion)
        ),
    );
    let e = TestExporter::start(dir.path(), &yaml).await;
    let version = [
        ("target", "pg"),
        ("tool", "golang-migrate"),
        ("version", "42"),
    ];
    eventually(
        WAIT,
        "golang-migrate's version read through the bastion",
        || async {
            let m = e.metrics().await;
            (m.get("dbvigil_migration_version_info", &version) == Some(1.0)
                && m.get("dbvigil_migration_read_success", &[("target", "pg")]) == Some(1.0))
            .then_some(())
        },
    )
    .await;
    // The database stays up: only the way to it is gone.
    bastion.stop();
    eventually(
        WAIT,
        "the history read fails without the bastion",
        || async {
            let m = e.metrics().await;
            (m.get("dbvigil_migration_read_success", &[("target", "pg")]) == Some(0.0))
                .then_some(())
        },
    )
    .await;
    bastion.start_again();
    eventually(
        WAIT,
        "the history read through the bastion again",
        || async {
            let m = e.metrics().await;
            (m.get("dbvigil_migration_read_success", &[("target", "pg")]) == Some(1.0))
                .then_some(())
        },
    )
    .await;
    e.stop().await;
}
