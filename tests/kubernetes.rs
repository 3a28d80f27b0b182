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
    accepted_config(&docs[0], None);
}

#[test]
fn the_sharded_manifest_runs_one_shard_per_statefulset_pod() {
    let docs = documents("compose/kubernetes/dbvigil-sharded.yaml");
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "ConfigMap",
            "Secret",
            "Service",
            "StatefulSet",
            "PodMonitor"
        ]
    );
    let (service, set, monitor) = (&docs[3], &docs[4], &docs[5]);
    assert_eq!(service["spec"]["clusterIP"], "None", "a headless Service");
    assert_eq!(set["spec"]["serviceName"], service["metadata"]["name"]);
    let labels = &set["spec"]["template"]["metadata"]["labels"];
    assert_eq!(set["spec"]["selector"]["matchLabels"], *labels);
    assert_eq!(service["spec"]["selector"], *labels);
    assert_eq!(monitor["spec"]["selector"]["matchLabels"], *labels);
    let pod = &set["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    // --shard.count equals the replicas, and each pod's index is its ordinal, from POD_NAME.
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let replicas = set["spec"]["replicas"].as_u64().unwrap();
    assert_eq!(replicas, 3);
    assert!(
        args.contains(&format!("--shard.count={replicas}").as_str()),
        "{args:?}"
    );
    assert!(
        !args.iter().any(|a| a.starts_with("--shard.index")),
        "{args:?}"
    );
    let pod_name = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "POD_NAME")
        .expect("POD_NAME in the container's env");
    assert_eq!(
        pod_name["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(
        monitor["spec"]["podMetricsEndpoints"][0]["port"],
        container["ports"][0]["name"]
    );
    // Every pod starts with the embedded configuration and the generated target list,
    // mounted where the pods find them, as shard 0, 1 and 2 of it.
    let (dir, config) = accepted_config(&docs[0], Some(&docs[1]));
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("${DBVIGIL_DB_PASSWORD}", "x");
    let mut parsed = dbvigil::config::parse(&text, "dbvigil.yml", dir.path(), "test").unwrap();
    let taken: Vec<&str> = parsed.targets.iter().map(|t| t.name.as_str()).collect();
    let (found, _) =
        dbvigil::config::DiscoveryFiles::default().refresh(&parsed.target_files, &taken);
    assert!(found.files.iter().all(|f| f.valid), "{:?}", found.files);
    let discovered: Vec<&str> = found.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        discovered,
        [
            "app-db-01.databases.svc",
            "app-db-02.databases.svc",
            "app-db-03.databases.svc",
            "reports-db.databases.svc_5433"
        ]
    );
    parsed.targets.extend(found.targets);
    let mut held = Vec::new();
    for index in 0..replicas as u32 {
        let name = format!("{}-{index}", set["metadata"]["name"].as_str().unwrap());
        let shard = dbvigil::config::Shard::resolve(None, replicas as u32, &name).unwrap();
        assert_eq!(shard.index, index);
        let (part, _) = shard.split(parsed.clone());
        held.extend(part.targets.into_iter().map(|t| t.name));
    }
    held.sort();
    let mut all: Vec<String> = parsed.targets.iter().map(|t| t.name.clone()).collect();
    all.sort();
    assert_eq!(held, all, "every target on exactly one pod");
}

/// The configuration a manifest's ConfigMap embeds, written to a temporary directory and
/// checked by `dbvigil check-config` as the pods will load it.
/// A target list's ConfigMap is written where the configuration expects it, with
/// `/etc/dbvigil/` made the temporary directory.
fn accepted_config(
    config_map: &serde_json::Value,
    targets: Option<&serde_json::Value>,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dbvigil.yml");
    let text = config_map["data"]["dbvigil.yml"].as_str().unwrap();
    let root = format!("{}/", dir.path().display());
    std::fs::write(&config, text.replace("/etc/dbvigil/", &root)).unwrap();
    if let Some(targets) = targets {
        std::fs::create_dir(dir.path().join("targets")).unwrap();
        for (file, content) in targets["data"].as_object().unwrap() {
            let path = dir.path().join("targets").join(file);
            std::fs::write(path, content.as_str().unwrap()).unwrap();
        }
    }
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
    (dir, config)
}
