//! Every invalid example in tests/data/invalid/ is rejected with its exact message: file,
//! line and column, and one sentence that says what to do.

use dbvigil::config::{self, ConfigError};

const CASES: &[(&str, &str)] = &[
    (
        "unknown_key.yml",
        "5:5: unknown field `intervall`, expected one of name, kind, path, create, url, host, port, user, database, password, password_file, tls, heartbeat, replica_of, ssh, interval, timeout, failure_threshold, checks, connection, phase_buckets, role, labels, maintenance_query, migrations",
    ),
    (
        "migrations_on_tcp.yml",
        "7:7: `migrations` does not apply to kind tcp: dbvigil cannot read history tables through a bare port",
    ),
    (
        "migrations_missing_directory.yml",
        "6:18: migrations directory \"no-such-migrations\" is not a readable directory: fix the path (relative to this file) or remove `directory`",
    ),
    (
        "migrations_timeout_over_interval.yml",
        "7:16: migrations timeout 30s must be above zero and at most the migrations interval 10s",
    ),
    (
        "migrations_unknown_key.yml",
        "6:7: unknown field `dir`, expected one of directory, ignore, interval, timeout, statement_timeout, lock_wait_timeout",
    ),
    (
        "migrations_bad_statement_timeout.yml",
        "6:26: migrations statement_timeout: \"forever\" is neither a duration nor none: write a duration like 30s or 10m, or none for no limit",
    ),
    (
        "migrations_zero_lock_wait.yml",
        "7:26: migrations lock_wait_timeout: 0 would stop every statement: write a duration like 30s or 10m, or none for no limit",
    ),
    (
        "group_named_like_target.yml",
        "6:11: group name \"app\" is also a target name: a maintenance scope must name one thing, so rename the group",
    ),
    (
        "maintenance_query_on_tcp.yml",
        "6:24: `maintenance_query` does not apply to kind tcp: dbvigil cannot query through a bare port",
    ),
    (
        "schedule_unknown_scope.yml",
        "8:14: schedule \"weekly-vacuum\" has scope \"orders\", which is neither a target, a group nor \"*\"",
    ),
    (
        "schedule_unknown_timezone.yml",
        "9:51: unknown timezone \"Europe/Atlantis\": use an IANA name like Europe/Berlin or UTC",
    ),
    (
        "schedule_longer_than_max.yml",
        "11:17: schedule \"upgrade\" lasts 3h: a window lasts more than zero and at most max_duration (2h)",
    ),
    (
        "schedule_bad_time.yml",
        "9:35: time \"3am\" is not a time of day: write HH:MM, like 03:30",
    ),
    (
        "tokens_file_short_token.yml",
        "6:16: tokens_file \"../short-token.txt\" line 3: the token is shorter than 16 characters; generate one with `openssl rand -hex 32`",
    ),
    (
        "state_url_not_postgres.yml",
        "6:8: state.url must be a PostgreSQL URL (postgres://user@host:5432/database); remove it to keep windows in SQLite in --data.dir",
    ),
    (
        "default_duration_over_max.yml",
        "6:21: default_duration 2h is longer than max_duration 1h: lower one or raise the other",
    ),
    (
        "target_without_name.yml",
        "2:11: this target has no `name`: give it one (letters, digits, '_', '.' and '-')",
    ),
    (
        "target_files_template_host.yml",
        "5:13: a target_files template has no `host`: each target's address comes from the discovery files, and its name from the address (see docs/scaling.md)",
    ),
    (
        "target_files_template_replica_of.yml",
        "8:19: a target_files template has no `replica_of`: list replicas under `targets:`, where each can name its primary",
    ),
    (
        "target_files_pattern_dir_wildcard.yml",
        "2:13: tests/data/invalid/teams/*/targets.json: wildcards are allowed in the file name only, as in Prometheus' file_sd_configs",
    ),
    (
        "target_files_pattern_extension.yml",
        "2:13: tests/data/invalid/targets/*.txt: a discovery file ends in .json, .yml or .yaml, as in Prometheus' file_sd_configs",
    ),
    (
        "target_files_bad_key.yml",
        "3:5: unknown field `refresh`, expected one of files, template, name_prefix, refresh_interval",
    ),
    (
        "duplicate_name.yml",
        "5:11: duplicate target name \"app\" (first defined on line 2): target names must be unique",
    ),
    (
        "timeout_longer_than_interval.yml",
        "6:14: timeout 2s is longer than interval 1s: probes of one target would overlap; lower the timeout or raise the interval",
    ),
    (
        "default_timeout_longer_than_interval.yml",
        "2:12: timeout 3s is longer than interval 1s: probes of one target would overlap; lower the timeout or raise the interval",
    ),
    (
        "unreadable_password_file.yml",
        "6:20: cannot read password_file \"/nonexistent/dbvigil/secret\": No such file or directory (os error 2); create it or fix the path, and make it readable by dbvigil",
    ),
    (
        "missing_env_var.yml",
        "4:11: environment variable DBVIGIL_TEST_UNSET_VARIABLE is not set: export it before starting dbvigil, or write ${DBVIGIL_TEST_UNSET_VARIABLE:-default}",
    ),
    (
        "interval_too_short.yml",
        "5:15: interval 50ms is below the minimum of 100ms: raise it",
    ),
    (
        "duration_without_unit.yml",
        "5:15: invalid duration \"5\": write a number with a unit, like 500ms, 1s or 2m",
    ),
    (
        "unknown_kind.yml",
        "3:11: unknown kind `oracle`: use sqlite, postgres, mysql (also for MariaDB), or tcp to check only that a port accepts connections (Oracle, SQL Server, ...)",
    ),
    (
        "check_not_applicable.yml",
        "5:23: check `tcp` does not apply to kind sqlite: use connect, read, write",
    ),
    (
        "reserved_label.yml",
        "7:7: label name \"target\" is reserved by dbvigil or Prometheus: choose another name",
    ),
    (
        // `tool` labels every migration series: a target label of that name would make
        // Prometheus reject the whole scrape for a duplicate label.
        "reserved_tool_label.yml",
        "6:7: label name \"tool\" is reserved by dbvigil or Prometheus: choose another name",
    ),
    (
        "invalid_label_name.yml",
        "6:7: label name \"team-name\" is not a valid Prometheus label name: use letters, digits and '_', not starting with a digit or '__'",
    ),
    (
        "sqlite_without_path.yml",
        "3:11: a sqlite target needs `path`: the database file to probe",
    ),
    (
        "server_field_on_sqlite.yml",
        "5:11: `host` does not apply to kind sqlite: a SQLite target is a file; set `path`",
    ),
    (
        "no_targets.yml",
        "1:1: no targets configured: add at least one under `targets:`, or discovery files under `target_files:` (see examples/)",
    ),
    (
        "missing_targets.yml",
        "1:1: no targets configured: add at least one under `targets:`, or discovery files under `target_files:` (see examples/)",
    ),
    (
        "invalid_target_name.yml",
        "2:11: target name \"orders db\" may only contain letters, digits, '_', '.' and '-', starting with a letter or digit (it becomes a label value and a URL path segment)",
    ),
    (
        "zero_failure_threshold.yml",
        "5:24: failure_threshold must be at least 1",
    ),
    ("yaml_syntax.yml", "4:11: expected string scalar"),
    (
        "url_scheme_mismatch.yml",
        "4:10: url scheme `mysql://` does not match kind postgres: use postgres://",
    ),
    (
        "url_and_host.yml",
        "5:11: set either `url` or `host`, not both",
    ),
    (
        "password_twice.yml",
        "5:15: the password is given twice (in `url` and here): keep one",
    ),
    (
        "password_and_password_file.yml",
        "8:20: set either `password` or `password_file`, not both",
    ),
    (
        "verify_full_without_ca.yml",
        "7:7: tls mode verify-ca and verify-full need `ca_file`: the CA that signed the server's certificate",
    ),
    (
        "unknown_tls_mode.yml",
        "7:13: unknown variant `strict`, expected one of disable, prefer, require, verify-ca, verify-full",
    ),
    (
        "replica_of_unknown.yml",
        "7:17: replica_of names \"orders\", which is not a configured target",
    ),
    (
        "role_primary_with_replica_of.yml",
        "11:11: a replica_of target stands by read-only: set role: standby (the default for replicas) or remove replica_of",
    ),
    (
        "role_on_sqlite.yml",
        "5:11: `role` does not apply to kind sqlite: only postgres and mysql servers can stand by",
    ),
    (
        "replica_of_other_kind.yml",
        "11:17: replica_of names \"orders\", a mysql target; a replica must be of the same kind",
    ),
    (
        "mysql_write_without_database.yml",
        "3:11: a mysql target with a write check needs `database` (or `heartbeat.schema`): the database that holds dbvigil_heartbeat",
    ),
    (
        "unknown_url_parameter.yml",
        "4:10: unknown url parameter `connect_timeout`: dbvigil reads sslmode and sslrootcert from a url; set other options in the target",
    ),
    ("tcp_without_port.yml", "3:11: a tcp target needs `port`"),
    (
        "tcp_with_user.yml",
        "6:11: `user` does not apply to kind tcp: a tcp target only takes `host` and `port`",
    ),
    (
        "server_without_user.yml",
        "3:11: a postgres target needs `user` (or a user in `url`)",
    ),
    (
        "heartbeat_schema_invalid.yml",
        "7:15: heartbeat schema \"monitoring; DROP TABLE x\" must be a plain identifier: letters, digits, '_' and '$', not starting with a digit",
    ),
    (
        "path_on_server.yml",
        "6:11: `path` does not apply to kind postgres: a server is reached by `url`, or `host`, `port`, `user`, `database`",
    ),
    (
        "group_unknown_member.yml",
        "5:18: group \"orders\" names member \"b\", which is not a configured target",
    ),
    (
        "group_empty.yml",
        "5:14: group \"orders\" has no members: list the targets it chooses from, most preferred first",
    ),
    (
        "group_duplicate_name.yml",
        "6:11: duplicate group name \"orders\": group names must be unique",
    ),
    (
        "group_member_without_write.yml",
        "6:18: member \"b\" has no write check, so it can never be writable: add it to the target's checks or lower the group's eligibility",
    ),
    (
        "group_duplicate_member.yml",
        "5:18: group \"orders\" lists \"a\" twice",
    ),
    (
        "group_unknown_policy.yml",
        "6:13: unknown variant `round_robin`, expected one of prefer_first, sticky",
    ),
    (
        "unknown_phase_buckets.yml",
        "2:18: unknown variant `fine`, expected one of detailed, coarse",
    ),
    (
        "alertmanager_url_credentials.yml",
        "6:10: an Alertmanager URL must not carry a user or password: move them to alertmanager.basic_auth",
    ),
    (
        "alertmanager_matcher_no_operator.yml",
        "9:18: matcher \"instance\" has no operator: write one of =, !=, =~, !~ after instance",
    ),
    (
        "alertmanager_unknown_scope.yml",
        "8:14: alertmanager.silences scope \"billing\" is neither a configured target, a group, nor \"*\": fix the name, or remove the entry",
    ),
    (
        "alertmanager_matches_everything.yml",
        "9:17: every matcher here also matches alerts without the label, so the silence would cover every alert (Alertmanager refuses it): add one that needs a value, like instance=~\"orders-db.*\"",
    ),
    (
        "alertmanager_bad_key.yml",
        "6:3: unknown field `url`, expected one of urls, basic_auth, tls_config, timeout, sync_interval, owner, own_alerts, silences",
    ),
    (
        "ssh_without_host_key.yml",
        "6:7: ssh needs the bastion's host key: `known_hosts` (a file with its key) or `host_key` (its SHA256: fingerprint); dbvigil never accepts an unknown key",
    ),
    (
        "ssh_bad_fingerprint.yml",
        "9:17: host_key \"16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48\" is not a SHA-256 fingerprint: give what `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints on the bastion, `SHA256:` and 43 characters",
    ),
    (
        "ssh_key_and_agent.yml",
        "8:22: ssh takes either `identity_file` or the agent (`agent: true`), not both",
    ),
    (
        "ssh_on_sqlite.yml",
        "6:7: `ssh` does not apply to kind sqlite: a SQLite target is a file; set `path`",
    ),
    (
        "ssh_password.yml",
        "8:17: ssh takes no password: log in to the bastion with `identity_file` (a key, with passphrase_file if it is encrypted) or `agent: true`; only a migration plan's sql_runner_password logs in with one",
    ),
    (
        "ssh_known_hosts_without_bastion.yml",
        "7:18: the SSH known_hosts file tests/data/invalid/../ssh/known_hosts_other has no key for [bastion.example]:2222: check the bastion's key out of band, then add it (ssh-keyscan -p 2222 bastion.example >> tests/data/invalid/../ssh/known_hosts_other) or pin its fingerprint: set host_key: SHA256:...",
    ),
    (
        "ssh_missing_identity_file.yml",
        "8:22: cannot read the SSH key tests/data/invalid/no-such-key (identity_file): No such file or directory (os error 2); fix the path and make it readable by dbvigil",
    ),
];

#[test]
fn every_invalid_example_is_rejected_with_its_exact_message() {
    let mut failures = Vec::new();
    for (file, expected) in CASES {
        let path = format!("tests/data/invalid/{file}");
        let expected = format!("{path}:{expected}");
        match config::load_file(path.as_ref(), "host") {
            Ok(_) => failures.push(format!("{path}: accepted, expected {expected:?}")),
            Err(e) => {
                assert!(matches!(e, ConfigError::Invalid { .. }), "{path}: {e:?}");
                if e.to_string() != expected {
                    failures.push(format!("{path}:\n   got: {e}\n  want: {expected}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_file_in_the_invalid_folder_has_a_case() {
    let mut files: Vec<String> = std::fs::read_dir("tests/data/invalid")
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let mut cased: Vec<String> = CASES.iter().map(|(f, _)| (*f).to_owned()).collect();
    cased.sort();
    assert_eq!(files, cased);
}

#[test]
fn unreadable_file_says_so() {
    let err = config::load_file("tests/data/does-not-exist.yml".as_ref(), "host").unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot read configuration file tests/data/does-not-exist.yml: No such file or directory (os error 2); check the path and its permissions"
    );
}

#[test]
fn a_valid_configuration_is_expanded_and_defaulted() {
    let yaml = "instance: exporter-a\n\
         defaults:\n  interval: 2s\n  failure_threshold: 3\n\
         targets:\n\
         \x20 - name: a\n    kind: sqlite\n    path: \"${HOME}/a.db\"\n    labels: {team: payments, tier: \"1\"}\n\
         \x20 - name: b\n    kind: sqlite\n    path: /x/b.db\n    interval: 200ms\n    checks: [read, connect]\n    connection: reuse\n";
    let c = config::parse(yaml, "inline.yml", std::path::Path::new("/etc"), "host").unwrap();
    assert_eq!(c.instance, "exporter-a");
    let a = &c.targets[0];
    assert_eq!(
        a.describe_endpoint(),
        format!("{}/a.db", std::env::var("HOME").unwrap())
    );
    assert_eq!(a.interval.as_millis(), 2000);
    assert_eq!(
        a.timeout.as_millis(),
        2000,
        "timeout defaults to min(interval, 5s)"
    );
    assert_eq!(a.failure_threshold, 3);
    assert_eq!(
        a.labels,
        vec![
            ("team".into(), "payments".into()),
            ("tier".into(), "1".into())
        ]
    );
    let b = &c.targets[1];
    assert_eq!(b.timeout.as_millis(), 200);
    use dbvigil::config::{Check, ConnectionMode};
    assert_eq!(b.checks, vec![Check::Connect, Check::Read]);
    assert_eq!(b.connection, ConnectionMode::Reuse);
}
