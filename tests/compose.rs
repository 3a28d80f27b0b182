//! The compose stack, checked without a Docker engine (none runs on the project's machines):
//! the compose file against the Compose specification's JSON schema (vendored from the
//! docker-compose 1.29.2 package, compose/schema/), every file it mounts exists, the
//! configuration dbvigil gets is valid, and the compose Prometheus configuration parses.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

fn compose() -> Value {
    let text = std::fs::read_to_string("compose/docker-compose.yml").unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

#[test]
fn the_compose_file_follows_the_compose_specification() {
    let has_jsonschema = Command::new("python3")
        .args(["-c", "import jsonschema"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_jsonschema
        && common::servers::skip_or_fail(
            "python3-jsonschema is not installed (apt-get install python3-jsonschema)",
        )
    {
        return;
    }
    let validator = "import json, sys, jsonschema\n\
        schema = json.load(open('compose/schema/compose-spec.json'))\n\
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(json.load(sys.stdin)), key=str)\n\
        for e in errors: print('/'.join(map(str, e.path)) + ': ' + e.message)\n\
        sys.exit(1 if errors else 0)\n";
    let check = |document: &Value| {
        let mut child = Command::new("python3")
            .args(["-c", validator])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(document.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (valid, errors) = check(&compose());
    assert!(valid, "compose/docker-compose.yml:\n{errors}");
    // The validator can fail: an unknown key is rejected.
    let mut broken = compose();
    broken["services"]["dbvigil"]["restart_policy_typo"] = Value::from("always");
    let (valid, errors) = check(&broken);
    assert!(!valid && errors.contains("restart_policy_typo"), "{errors}");
}

#[test]
fn every_mounted_file_exists_and_the_stack_has_every_service() {
    let doc = compose();
    let services = doc["services"].as_object().unwrap();
    for name in [
        "postgres",
        "mysql",
        "dbvigil",
        "prometheus",
        "alertmanager",
        "grafana",
    ] {
        assert!(services.contains_key(name), "no service {name}");
    }
    for (name, service) in services {
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let source = volume.as_str().unwrap().split(':').next().unwrap();
            if source.starts_with('.') {
                assert!(
                    Path::new("compose").join(source).exists(),
                    "{name} mounts {source}, which does not exist"
                );
            }
        }
    }
    assert!(
        services["dbvigil"]["build"]["dockerfile"] == "Dockerfile"
            && Path::new("Dockerfile").exists()
    );
    let dockerfile = std::fs::read_to_string("Dockerfile").unwrap();
    assert!(
        dockerfile.contains("USER 10150"),
        "the image runs as non-root"
    );
    assert!(
        dockerfile.contains("/-/healthy"),
        "the image has a healthcheck"
    );
}

#[test]
fn the_stack_configuration_is_valid() {
    let out = Command::new(env!("CARGO_BIN_EXE_dbvigil"))
        .args(["check-config", "--config.file", "compose/dbvigil.yml"])
        .env("DBVIGIL_DB_PASSWORD", "x")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if !common::monitoring::have("promtool", "prometheus") {
        return;
    }
    let out = Command::new("promtool")
        .args([
            "check",
            "config",
            "--syntax-only",
            "compose/prometheus/prometheus.yml",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
