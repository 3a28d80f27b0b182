use super::*;
use crate::config::{Check, parse};

fn block(dir: &Path, template: &str, extra: &str) -> TargetFiles {
    let yaml = format!(
        "target_files:\n  - files: [sd/*.json, sd/*.yml]\n{extra}    template: {template}\n"
    );
    let mut config = parse(&yaml, "dbvigil.yml", dir, "test").unwrap();
    config.target_files.remove(0)
}

fn names(found: &[Found]) -> Vec<&str> {
    found.iter().map(|f| f.target.name.as_str()).collect()
}

#[test]
fn addresses_split_into_host_and_port() {
    assert_eq!(split_address("db1:5433"), Ok(("db1".into(), Some(5433))));
    assert_eq!(split_address("db1"), Ok(("db1".into(), None)));
    assert_eq!(split_address("[::1]:5432"), Ok(("::1".into(), Some(5432))));
    assert_eq!(
        split_address("2001:db8::7"),
        Ok(("2001:db8::7".into(), None))
    );
    assert_eq!(
        split_address("u:pw@db1:5432"),
        Err("address \"u:pw@db1:5432\" carries credentials: put the user and password in the template".into())
    );
    assert_eq!(
        split_address("db1:0"),
        Err("address \"db1:0\" has no valid port: write a number from 1 to 65535".into())
    );
    assert_eq!(
        split_address("postgres://db1"),
        Err("address \"postgres://db1\" is not host or host:port: write the address alone, settings go in the template".into())
    );
    assert!(split_address("[::1").is_err() && split_address(":5432").is_err());
}

#[test]
fn names_are_label_safe_and_keep_only_a_port_that_differs() {
    assert_eq!(
        derive_name("", "Orders-DB.prod.example", None, "x"),
        Ok("orders-db.prod.example".into())
    );
    assert_eq!(
        derive_name("", "db1", Some(5433), "x"),
        Ok("db1_5433".into())
    );
    assert_eq!(derive_name("", "::1", Some(5433), "x"), Ok("1_5433".into()));
    assert_eq!(derive_name("eu-", "::1", None, "x"), Ok("eu-__1".into()));
    assert_eq!(
        derive_name("", "/var/lib/app/orders.db", None, "x"),
        Ok("var_lib_app_orders.db".into())
    );
    let long = "a".repeat(129);
    assert!(derive_name("", &long, None, "x").is_err());
    assert!(derive_name("", "::", None, "x").is_err());
}

#[test]
fn a_json_file_becomes_targets_from_the_template() {
    let dir = tempfile::tempdir().unwrap();
    let b = block(
        dir.path(),
        "{kind: postgres, user: dbvigil, database: app, interval: 5s, labels: {team: core}}",
        "",
    );
    let text = r#"[
  {"targets": ["orders-db:5432", "orders-db:5433", "[2001:db8::1]"],
   "labels": {"env": "prod", "team": "payments", "__meta_source": "x"}},
  {"targets": ["billing-db"]}
]"#;
    let found = b.parse_file(text, "sd/prod.json", dir.path()).unwrap();
    assert_eq!(
        names(&found),
        ["orders-db", "orders-db_5433", "2001_db8__1", "billing-db"]
    );
    let orders = &found[1].target;
    let Endpoint::Server(server) = &orders.endpoint else {
        panic!("{orders:?}")
    };
    assert_eq!((server.host.as_str(), server.port), ("orders-db", 5433));
    assert_eq!(server.user, "dbvigil");
    assert_eq!(orders.interval, Duration::from_secs(5));
    // The file's labels win over the template's; Prometheus' meta labels are left out.
    assert_eq!(
        orders.labels,
        [
            ("env".into(), "prod".into()),
            ("team".into(), "payments".into())
        ]
    );
    assert_eq!(found[3].target.labels, [("team".into(), "core".into())]);
    assert_eq!((found[1].line, found[1].column), (2, 34));
}

#[test]
fn a_yaml_file_of_sqlite_paths_is_relative_to_its_own_directory() {
    let dir = tempfile::tempdir().unwrap();
    let b = block(dir.path(), "{kind: sqlite, checks: [connect, read]}", "");
    let found = b
        .parse_file(
            "- targets: [app/one.db, two.db]\n",
            "sd/a.yml",
            &dir.path().join("sd"),
        )
        .unwrap();
    assert_eq!(names(&found), ["app_one.db", "two.db"]);
    assert_eq!(
        found[0].target.endpoint,
        Endpoint::Sqlite {
            path: dir.path().join("sd/app/one.db"),
            create: false
        }
    );
    assert_eq!(found[0].target.checks, [Check::Connect, Check::Read]);
}

#[test]
fn a_bad_file_is_refused_with_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let b = block(dir.path(), "{kind: tcp}", "    name_prefix: edge-\n");
    let cases = [
        (
            "[{\"targets\": [\"a:1\", \"b\"]}]",
            "sd/x.json:1:22: address \"b\" has no port, and the template sets none: write host:port, or set `port` in the template",
        ),
        (
            "- targets: [a:1]\n  labels: {job: x}\n",
            "sd/x.json:2:12: label name \"job\" is reserved by dbvigil or Prometheus: choose another name",
        ),
        (
            "- targets: [a:1]\n- targets: [A:1]\n",
            "sd/x.json:2:13: address \"A:1\" makes target name \"edge-a_1\", as \"a:1\" on line 1 does: list each database once, or tell them apart with name_prefix in separate blocks",
        ),
        (
            "- targets: [a:1]\n  lables: {}\n",
            "sd/x.json:2:3: unknown field `lables`, expected one of targets, labels",
        ),
        (
            "  \n",
            "sd/x.json:1:1: the file is empty: write [] for no targets (an empty file is more often one half-written, so its previous targets are kept)",
        ),
    ];
    for (text, message) in cases {
        let err = b.parse_file(text, "sd/x.json", dir.path()).unwrap_err();
        assert_eq!(err.to_string(), message, "{text}");
    }
    assert_eq!(b.parse_file("[]", "sd/x.json", dir.path()).unwrap(), []);
}

#[test]
fn a_bad_edit_keeps_the_previous_targets_and_a_taken_name_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sd")).unwrap();
    let b = block(dir.path(), "{kind: tcp, port: 5432}", "");
    let write = |name: &str, text: &str| std::fs::write(dir.path().join("sd").join(name), text);
    write("a.json", r#"[{"targets": ["a1", "a2"]}]"#).unwrap();
    write("b.yml", "- targets: [b1, static-one]\n").unwrap();
    write(".a.json.swp", "not a discovery file").unwrap();
    let mut files = DiscoveryFiles::default();
    let blocks = [b];
    let (found, notices) = files.refresh(&blocks, &["static-one"]);
    let names: Vec<&str> = found.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a1", "a2", "b1"]);
    assert!(found.files[0].valid && !found.files[1].valid);
    assert!(matches!(&notices[1], Notice::Invalid { error, kept: 1, .. }
        if error.ends_with("sd/b.yml:1:17: target name \"static-one\" is already a target under `targets:`: remove one, or tell them apart with name_prefix")));

    // Unchanged files say nothing the second time.
    let (again, notices) = files.refresh(&blocks, &["static-one"]);
    assert_eq!(again, found);
    assert_eq!(notices, []);

    write("a.json", r#"[{"targets": ["a1", "a3"]"#).unwrap();
    let (bad, notices) = files.refresh(&blocks, &["static-one"]);
    assert_eq!(bad.targets, found.targets, "the bad edit keeps a1 and a2");
    assert!(!bad.files[0].valid && bad.files[0].targets == 2);
    assert!(matches!(&notices[0], Notice::Invalid { kept: 2, .. }));

    write("a.json", r#"[{"targets": ["a1", "a3"]}]"#).unwrap();
    std::fs::remove_file(dir.path().join("sd/b.yml")).unwrap();
    let (fixed, notices) = files.refresh(&blocks, &["static-one"]);
    let names: Vec<&str> = fixed.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a1", "a3"]);
    assert_eq!(fixed.files.len(), 1);
    assert!(notices.contains(&Notice::Read {
        path: dir.path().join("sd/a.json"),
        targets: 2
    }));
    assert!(notices.contains(&Notice::Gone {
        path: dir.path().join("sd/b.yml"),
        targets: 1
    }));
}
