//! `dbvigil migrate` through a real OpenSSH bastion (tests/common/sshd.rs): the background
//! document's CSV plan with its runner columns honoured, a URL run with `--ssh`, and the
//! flags that do not fit refused before anything is touched.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::db::{Db, Engine, block};
use common::plan;
use common::servers::test_certs;
use common::sshd::{Bastion, BastionOptions};
use common::{Outcome, tempdir};

/// `dbvigil migrate` with `args`, run in `cwd`, with no agent.
fn migrate(cwd: &Path, args: &[&str]) -> Outcome {
    Outcome::of(migrate_command(cwd, args).env_remove("SSH_AUTH_SOCK"))
}

fn migrate_command(cwd: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dbvigil"));
    cmd.current_dir(cwd)
        .arg("migrate")
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("DBVIGIL_CONFIG_FILE")
        // No user's own known_hosts decides a test.
        .env("HOME", cwd);
    cmd
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// The background document's plan, with `runner` as its three runner columns and the
/// database as the bastion reaches it.
fn background_plan(runner: &str, db_port: u16) -> String {
    let rows = plan::rows(runner, "127.0.0.1,probe,probe-pw", db_port);
    format!("{}\n{rows}", plan::HEADER)
}

#[test]
fn the_background_plan_runs_through_its_runner_against_mariadb() {
    let Some(db) = Db::start(Engine::MariaDb) else {
        return;
    };
    let Some(bastion) = Bastion::start_with(BastionOptions {
        permit_open: vec![("127.0.0.1".to_owned(), db.port())],
        password_user: true,
        ..Default::default()
    }) else {
        return;
    };
    let tmp = tempdir();
    let dir = tmp.path();
    plan::write_scripts(dir);
    let (runner_user, runner_password) = bastion.password_login().unwrap();
    let runner_host = format!("127.0.0.1:{}", bastion.port());
    write(
        dir,
        "password.csv",
        &background_plan(
            &format!("{runner_host},{runner_user},{runner_password}"),
            db.port(),
        ),
    );
    let known_hosts = bastion.known_hosts().to_str().unwrap();
    let mut outputs = Vec::new();
    let out = migrate(
        dir,
        &[
            "--plan",
            "password.csv",
            "--engine",
            "mysql",
            "--ssh-known-hosts",
            known_hosts,
            "run",
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "warning: logging in to the runner {runner_user}@127.0.0.1:{} with the plan's sql_runner_password; a key is safer",
            bastion.port()
        )),
        "one warning that keys are preferred: {out:?}"
    );
    assert_eq!(out.stderr.matches("warning:").count(), 1, "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "127.0.0.1:{}/app: through the bastion {runner_user}@127.0.0.1:{}",
            db.port(),
            bastion.port()
        )),
        "{out:?}"
    );
    assert_eq!(out.stdout.matches(": applied V").count(), 4, "{out:?}");
    assert!(
        !out.stdout.contains("not used"),
        "the runner columns are used: {out:?}"
    );
    let log = bastion.log();
    assert!(
        log.contains(&format!("Accepted password for {runner_user}")),
        "the runner's password logged in on the bastion:\n{log}"
    );
    let rows = db.sql("SELECT COUNT(*), SUM(lat > 1) FROM zipcode");
    assert_eq!(rows.trim_end(), "3\t2", "the four scripts ran");
    let history = || {
        db.sql("SELECT GROUP_CONCAT(version ORDER BY installed_rank) FROM dbvigil_schema_history WHERE success")
    };
    assert_eq!(history().trim_end(), "1.1,1.2,2.1,3.1");
    outputs.push(out);

    // The same plan with a key: the plan's password stays unused, and nothing is pending.
    write(
        dir,
        "key.csv",
        &background_plan(
            &format!("{runner_host},{},{runner_password}", bastion.user()),
            db.port(),
        ),
    );
    let out = migrate(
        dir,
        &[
            "--plan",
            "key.csv",
            "--engine",
            "mysql",
            "--ssh-identity",
            bastion.client_key().to_str().unwrap(),
            "--ssh-host-key",
            &bastion.host_key_fingerprint(),
            "--output",
            "json",
            "run",
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("warning:"), "{out:?}");
    let doc: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let database = &doc["databases"][0];
    assert_eq!(
        database["bastion"],
        format!("{}@127.0.0.1:{}", bastion.user(), bastion.port()),
        "{doc}"
    );
    assert_eq!(
        database["applied"].as_array().map(Vec::len),
        Some(0),
        "a second run applies nothing: {doc}"
    );
    assert!(
        bastion.log().contains("Accepted publickey"),
        "the key logged in:\n{}",
        bastion.log()
    );
    assert_eq!(history().trim_end(), "1.1,1.2,2.1,3.1");
    outputs.push(out);

    // A wrong runner password is the bastion's refusal, said once, with what to fix.
    write(
        dir,
        "wrong.csv",
        &background_plan(
            &format!("{runner_host},{runner_user},not-the-password"),
            db.port(),
        ),
    );
    let out = migrate(
        dir,
        &[
            "--plan",
            "wrong.csv",
            "--engine",
            "mysql",
            "--ssh-known-hosts",
            known_hosts,
            "--wait-for",
            "60s",
            "run",
        ],
    );
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr.contains("the bastion refused the login")
            && out.stderr.contains("check the plan's sql_runner_password")
            && out.stderr.contains("--plan-direct"),
        "{out:?}"
    );
    assert!(
        !out.all().contains("waiting for the database"),
        "a refused login is not retried: {out:?}"
    );
    outputs.push(out);

    for out in &outputs {
        for secret in [runner_password.as_str(), "not-the-password", "probe-pw"] {
            assert!(!out.all().contains(secret), "{secret} leaked: {out:?}");
        }
    }
}

#[test]
fn a_url_run_goes_through_ssh_and_a_wrong_host_key_stops_it_at_once() {
    let Some(db) = Db::start(Engine::Postgres) else {
        return;
    };
    let Some(bastion) = Bastion::start(&[db.port()]) else {
        return;
    };
    let tmp = tempdir();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("migrations")).unwrap();
    write(
        &dir.join("migrations"),
        "V1__t.sql",
        "CREATE TABLE behind (id int);\n",
    );
    write(dir, "passphrase", &format!("{}\n", bastion.passphrase()));
    let url = format!(
        "postgres://probe:probe-pw@127.0.0.1:{}/app?sslmode=verify-full&sslrootcert={}",
        db.port(),
        test_certs().ca_file.display()
    );
    let via = format!("{}@127.0.0.1:{}", bastion.user(), bastion.port());
    let key = bastion.client_key_encrypted().to_str().unwrap();
    let fingerprint = bastion.host_key_fingerprint();
    let passphrase_file = dir.join("passphrase");
    let passphrase_file = passphrase_file.to_str().unwrap();
    let flags = |pin: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "--database-url",
            &url,
            "--ssh",
            &via,
            "--ssh-identity",
            key,
            "--ssh-passphrase-file",
            passphrase_file,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(pin.iter().map(|s| s.to_string()));
        v
    };
    let run = |args: &[String]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        migrate(dir, &args)
    };
    let mut outputs = Vec::new();

    let ok_flags = flags(&["--ssh-host-key", &fingerprint, "run"]);
    let out = run(&ok_flags);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&format!("through the bastion {via}")),
        "{out:?}"
    );
    assert!(out.stdout.contains("applied V1"), "{out:?}");
    let tables = db.sql("SELECT count(*) FROM pg_tables WHERE tablename = 'behind';");
    assert!(
        tables.contains('1'),
        "the script ran on the database: {tables}"
    );
    assert!(bastion.log().contains("Accepted publickey"));
    outputs.push(out);

    // The agent's key, as an operator's laptop logs in.
    let agent = bastion.agent();
    let logins = bastion.log().matches("Accepted publickey").count();
    let out = Outcome::of(
        migrate_command(
            dir,
            &[
                "--database-url",
                &url,
                "--ssh",
                &via,
                "--ssh-agent",
                "--ssh-host-key",
                &fingerprint,
                "validate",
            ],
        )
        .env("SSH_AUTH_SOCK", agent.socket()),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        bastion.log().matches("Accepted publickey").count(),
        logins + 1,
        "one login through the agent:\n{}",
        bastion.log()
    );
    outputs.push(out);

    // A bastion whose key is not the pinned one: refused, once, with how to re-pin it by
    // flag, although --wait-for would wait a minute for a database that is starting.
    let wrong = bastion.wrong_known_hosts();
    let wrong_flags = flags(&[
        "--ssh-known-hosts",
        wrong.to_str().unwrap(),
        "--wait-for",
        "60s",
        "info",
    ]);
    let started = Instant::now();
    let out = run(&wrong_flags);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "no minute of retries: {:?}",
        started.elapsed()
    );
    assert!(
        out.stderr.contains("which is not the pinned one")
            && out
                .stderr
                .contains(&format!("pass --ssh-host-key {fingerprint}")),
        "{out:?}"
    );
    assert!(
        !out.stderr.contains("host_key:"),
        "the CLI's words: {out:?}"
    );
    assert!(!out.all().contains("waiting for the database"), "{out:?}");
    outputs.push(out);

    // The database stopped behind a healthy bastion is the database's failure: --wait-for
    // would wait for it (here: none, so the hint says how).
    let mut db = db;
    block(|| db.stop());
    let stopped_flags = flags(&["--ssh-host-key", &fingerprint, "info"]);
    let out = run(&stopped_flags);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "the bastion {via} could not connect to the database"
        )) && out.stderr.contains("pass --wait-for"),
        "{out:?}"
    );
    outputs.push(out);
    for out in &outputs {
        for secret in [bastion.passphrase(), "probe-pw"] {
            assert!(!out.all().contains(secret), "{secret} leaked: {out:?}");
        }
    }
}

#[test]
fn bastion_flags_that_do_not_fit_are_refused_before_any_database() {
    let tmp = tempdir();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("migrations")).unwrap();
    write(
        dir,
        "runner.csv",
        &format!(
            "{}\nbastion.example,ops,,db.internal,app,app-pw,5432,app,V1__a.sql\n",
            plan::HEADER
        ),
    );
    write(dir, "V1__a.sql", "SELECT 1;\n");
    let url = "postgres://app@127.0.0.1:1/app";
    for (args, expected) in [
        (
            vec!["--database-url", url, "--ssh-identity", "k", "info"],
            "--ssh-identity says how to reach a bastion, and this run has none: add --ssh USER@HOST[:PORT] (with --database-url) or use a plan whose rows name a sql_runner_host\n",
        ),
        (
            vec!["--database-url", url, "--ssh", "bastion.example", "info"],
            "--ssh \"bastion.example\": give the login on the bastion: USER@HOST[:PORT]\n",
        ),
        (
            vec![
                "--database-url",
                url,
                "--ssh",
                "ops:hunter2@bastion.example",
                "info",
            ],
            "--ssh takes no password (USER@HOST[:PORT]): log in to the bastion with --ssh-identity FILE or --ssh-agent\n",
        ),
        (
            vec![
                "--database-url",
                url,
                "--ssh",
                "ops@bastion.example:0",
                "info",
            ],
            "--ssh \"ops@bastion.example:0\": \"0\" is not a port number (1-65535)\n",
        ),
        (
            vec![
                "--database-url",
                url,
                "--ssh",
                "ops@bastion.example",
                "info",
            ],
            "no way to log in to the bastion ops@bastion.example:22: pass --ssh-identity FILE or --ssh-agent\n",
        ),
        (
            vec![
                "--database-url",
                url,
                "--ssh",
                "ops@bastion.example",
                "--ssh-agent",
                "--ssh-host-key",
                "16:27:ac:a5",
                "info",
            ],
            "--ssh-host-key \"16:27:ac:a5\" is not a SHA-256 fingerprint: give what `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints on the bastion, `SHA256:` and 43 characters\n",
        ),
        (
            vec![
                "--database-url",
                url,
                "--ssh",
                "ops@bastion.example",
                "--ssh-agent",
                "--ssh-host-key",
                "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
                "info",
            ],
            "--ssh-agent: SSH_AUTH_SOCK is not set, so there is no agent to ask: start one and add the key (eval \"$(ssh-agent)\"; ssh-add KEY), or pass --ssh-identity FILE\n",
        ),
        (
            vec![
                "--config.file",
                "dbvigil.yml",
                "--target",
                "orders",
                "--ssh-known-hosts",
                "k",
                "info",
            ],
            "--ssh-known-hosts applies to --database-url and --plan runs: a --target reaches its bastion as its ssh: block in the configuration says\n",
        ),
        (
            vec!["--database-url", url, "--plan-direct", "info"],
            "--plan-direct applies to --plan only\n",
        ),
        (
            vec![
                "--plan",
                "runner.csv",
                "--plan-direct",
                "--ssh-agent",
                "info",
            ],
            "--plan-direct connects directly, so --ssh-agent has nothing to do: drop one of them\n",
        ),
        (
            vec!["--plan", "runner.csv", "info"],
            "no way to log in to the runner ops@bastion.example:22 (plan row 2): pass --ssh-identity FILE or --ssh-agent, or give the plan's sql_runner_password; or, to connect to the databases directly without the runner, pass --plan-direct\n",
        ),
        (
            vec!["--plan", "runner.csv", "--ssh-agent", "info"],
            &*format!(
                "cannot read the SSH known_hosts file {}/.ssh/known_hosts (--ssh-known-hosts): No such file or directory (os error 2); fix the path, or pin the bastion's key: pass --ssh-host-key SHA256:...; or, to connect to the databases directly without the runner, pass --plan-direct\n",
                dir.display()
            ),
        ),
    ] {
        let out = migrate(dir, &args);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert_eq!(out.stderr, expected, "{args:?}");
    }
}
