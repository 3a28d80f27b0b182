//! The Kubernetes manifests: every document parses, the kinds are the ones documented, and
//! the PrometheusRule carries exactly the rules of alerts/dbvigil.rules.yml.

use std::process::Command;

use serde_json::Value;

fn documents(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    text.split("\n---\n")
        .map(|d| serde_saphyr::from_str(d).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect()
}

#[test]
fn the_prometheusrule_is_generated_from_the_rule_file() {
    let out = Command::new("python3")
        .args(["compose/kubernetes/build-prometheusrule.py", "--check"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rule = &documents("compose/kubernetes/prometheusrule.yaml")[0];
    assert_eq!(rule["kind"], "PrometheusRule");
    let text = std::fs::read_to_string("alerts/dbvigil.rules.yml").unwrap();
    let rules: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(rule["spec"]["groups"], rules["groups"]);
}

#[test]
fn the_manifests_deploy_a_non_root_dbvigil_with_its_service_monitor() {
    let docs = documents("compose/kubernetes/dbvigil.yaml");
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "Secret",
            "Deployment",
            "Service",
            "ServiceMonitor"
        ]
    );
    let pod = &docs[2]["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    // The embedded configuration is one dbvigil accepts.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dbvigil.yml");
    std::fs::write(&config, docs[0]["data"]["dbvigil.yml"].as_str().unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dbvigil"))
        .args(["check-config", "--config.file"])
        .arg(&config)
        .env("DBVIGIL_DB_PASSWORD", "x")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
