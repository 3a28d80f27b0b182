//! The shipped Prometheus configuration, alert rules and Alertmanager configuration, checked
//! by the real tools (Debian's prometheus and prometheus-alertmanager packages):
//! `promtool check config`, `promtool check rules --lint=all`, `promtool test rules`,
//! `amtool check-config` and route tests, plus the conventions every alert keeps.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

fn tool(name: &str, package: &str) -> Option<Command> {
    common::monitoring::have(name, package).then(|| Command::new(name))
}

fn run(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn the_rules_are_what_build_py_writes() {
    let out = Command::new("python3")
        .args(["alerts/build.py", "--check"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every shipped scrape job is one the rules' job selector (mixin/config.py) matches, so
/// no shipped setup has silent rules; promtool evaluates the selector on each job's name.
#[test]
fn the_job_selector_matches_every_shipped_scrape_job() {
    let Some(_) = tool("promtool", "prometheus") else {
        return;
    };
    let rules = std::fs::read_to_string("alerts/dbvigil.rules.yml").unwrap();
    let selector = rules
        .split("expr: up{")
        .nth(1)
        .and_then(|r| r.split('}').next())
        .expect("DbvigilExporterDown reads up{<job selector>}");
    // prometheus/prometheus.yml and compose: job dbvigil; the ServiceMonitor: the Service's
    // name; the sharded PodMonitor: namespace/name.
    for job in ["dbvigil", "default/dbvigil-sharded", "monitoring/dbvigil"] {
        let dir = common::tempdir();
        let test = dir.path().join("selector.test.yml");
        std::fs::write(
            &test,
            format!(
                "tests:\n  - interval: 1m\n    input_series:\n      - series: 'up{{job=\"{job}\"}}'\n        values: '1'\n    promql_expr_test:\n      - expr: count(up{{{selector}}})\n        eval_time: 0m\n        exp_samples: [{{labels: '{{}}', value: 1}}]\n"
            ),
        )
        .unwrap();
        let mut cmd = Command::new("promtool");
        cmd.args(["test", "rules"]).arg(&test);
        run(cmd);
    }
}

#[test]
fn promtool_accepts_the_config_and_rules_and_their_tests_pass() {
    let Some(mut check_config) = tool("promtool", "prometheus") else {
        return;
    };
    check_config.args(["check", "config", "prometheus/prometheus.yml"]);
    run(check_config);
    let mut check_rules = Command::new("promtool");
    check_rules.args([
        "check",
        "rules",
        "--lint=all",
        "--lint-fatal",
        "alerts/dbvigil.rules.yml",
    ]);
    run(check_rules);
    let mut test_rules = Command::new("promtool");
    test_rules
        .args(["test", "rules"])
        .args(test_files().iter().map(|(path, _)| path));
    let out = run(test_rules);
    assert!(!out.contains("FAILED"), "{out}");
}

#[test]
fn amtool_accepts_the_alertmanager_config_and_routes_by_severity() {
    let Some(mut check) = tool("amtool", "prometheus-alertmanager") else {
        return;
    };
    check.args(["check-config", "alerts/alertmanager.yml"]);
    run(check);
    for (labels, receiver) in [
        (
            ["severity=critical", "alertname=DbvigilTargetDown"],
            "dbvigil-pager",
        ),
        (
            ["severity=warning", "alertname=DbvigilFlapping"],
            "dbvigil-tickets",
        ),
        (
            ["severity=info", "alertname=DbvigilGroupSwitched"],
            "dbvigil-feed",
        ),
        (
            ["severity=info", "alertname=DbvigilInMaintenance"],
            "dbvigil-null",
        ),
    ] {
        let mut route = Command::new("amtool");
        route
            .args([
                "config",
                "routes",
                "test",
                "--config.file=alerts/alertmanager.yml",
            ])
            .args(labels);
        let out = run(route);
        assert_eq!(out.lines().next(), Some(receiver), "{labels:?}: {out}");
    }
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn alerts() -> Vec<Value> {
    yaml("alerts/dbvigil.rules.yml")["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .collect()
}

fn test_files() -> Vec<(String, Value)> {
    let mut files: Vec<(String, Value)> = std::fs::read_dir("alerts/tests")
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".test.yml"))
        .map(|p| {
            let v = yaml(&p);
            (p, v)
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

#[test]
fn every_alert_has_a_severity_annotations_a_runbook_and_a_firing_test() {
    let runbooks = std::fs::read_to_string("docs/runbooks.md").unwrap();
    // Alerts some test expects to fire (a non-empty exp_alerts).
    let fired: BTreeSet<String> = test_files()
        .iter()
        .flat_map(|(_, v)| v["tests"].as_array().unwrap().clone())
        .flat_map(|t| t["alert_rule_test"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["exp_alerts"].as_array().is_some_and(|e| !e.is_empty()))
        .map(|a| a["alertname"].as_str().unwrap().to_owned())
        .collect();
    let alerts = alerts();
    assert!(alerts.len() >= 15, "only {} alerts", alerts.len());
    for rule in alerts {
        let name = rule["alert"].as_str().unwrap();
        assert!(
            name.starts_with("Dbvigil"),
            "{name}: alert names share the Dbvigil prefix"
        );
        let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
        assert!(
            ["critical", "warning", "info"].contains(&severity),
            "{name}: severity {severity:?}"
        );
        for key in ["summary", "description", "runbook_url"] {
            assert!(
                rule["annotations"][key]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "{name}: no {key}"
            );
        }
        let anchor = name.to_lowercase();
        assert!(
            rule["annotations"]["runbook_url"]
                .as_str()
                .unwrap()
                .ends_with(&format!("docs/runbooks.md#{anchor}")),
            "{name}: runbook_url must point at docs/runbooks.md#{anchor}"
        );
        assert!(
            runbooks.contains(&format!("\n## {name}\n")),
            "{name}: no section in docs/runbooks.md"
        );
        assert!(
            fired.contains(name),
            "{name}: no promtool test makes it fire"
        );
    }
}

/// Whether `expr` asks `dbvigil_maintenance_active == 1`, with or without a label selector
/// (the rules put the job selector on it).
fn checks_maintenance(expr: &str) -> bool {
    expr.match_indices("dbvigil_maintenance_active")
        .any(|(i, m)| {
            let rest = &expr[i + m.len()..];
            let rest = match rest.strip_prefix('{') {
                Some(inner) => inner.split_once('}').map_or("", |(_, after)| after),
                None => rest,
            };
            rest.starts_with(" == 1")
        })
}

#[test]
fn the_maintenance_check_is_seen_with_or_without_a_selector() {
    assert!(checks_maintenance(
        "a unless on(target) dbvigil_maintenance_active == 1"
    ));
    assert!(checks_maintenance(
        r#"a unless on(target) dbvigil_maintenance_active{job=~".*dbvigil.*"} == 1"#
    ));
    assert!(!checks_maintenance(
        r#"max(dbvigil_maintenance_active{job="x"}) > 0"#
    ));
    assert!(!checks_maintenance(
        "increase(dbvigil_writes_lost_total[10m]) > 0"
    ));
}

#[test]
fn availability_alerts_respect_maintenance_and_migration_alerts_do_not() {
    for rule in alerts() {
        let name = rule["alert"].as_str().unwrap();
        let expr = rule["expr"].as_str().unwrap();
        let respects = checks_maintenance(expr);
        let must = [
            "DbvigilTargetDown",
            "DbvigilWritesFailing",
            "DbvigilUnexpectedReadOnly",
            "DbvigilProbeLatencyHigh",
            "DbvigilFlapping",
            "DbvigilGroupNoEligibleMember",
        ];
        let never = [
            "DbvigilWritesLost",
            "DbvigilGroupWritesLost",
            "DbvigilMigrationFailed",
            "DbvigilMigrationLockHeldTooLong",
            "DbvigilMigrationChecksumDrift",
        ];
        if must.contains(&name) {
            assert!(respects, "{name} must stay silent in maintenance: {expr}");
        }
        if never.contains(&name) {
            assert!(!respects, "{name} must fire despite maintenance: {expr}");
        }
    }
}

/// The inhibit rules, in a real Alertmanager: maintenance silences a target's availability
/// alerts but not its migration failure nor another target's; a down target silences its
/// write alert; a down exporter silences what it said last about its own probes, not the
/// target alerts that every replica speaks for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_inhibits_as_documented() {
    use common::{eventually, monitoring, send};
    use std::time::Duration;
    if !monitoring::have("prometheus-alertmanager", "prometheus-alertmanager") {
        return;
    }
    let dir = common::tempdir();
    let am =
        monitoring::alertmanager(dir.path(), std::path::Path::new("alerts/alertmanager.yml")).await;
    let alert = |name: &str, target: &str, instance: &str| {
        serde_json::json!({"labels": {
            "alertname": name, "target": target, "job": "dbvigil", "instance": instance,
            "severity": "critical"
        }})
    };
    let alerts = serde_json::json!([
        alert("DbvigilInMaintenance", "orders", "a:10150"),
        alert("DbvigilFlapping", "orders", "a:10150"),
        alert("DbvigilMigrationFailed", "orders", "a:10150"),
        alert("DbvigilFlapping", "billing", "a:10150"),
        alert("DbvigilTargetDown", "billing", "a:10150"),
        alert("DbvigilWritesFailing", "billing", "a:10150"),
        {"labels": {"alertname": "DbvigilExporterDown", "job": "dbvigil", "instance": "b:10150", "severity": "critical"}},
        // What replica b said last about ledger (a per-replica alert) is silenced; a target
        // alert carries no replica label (the rules aggregate replicas away) and stays: the
        // other replica speaks for the target.
        alert("DbvigilProbesStale", "ledger", "b:10150"),
        {"labels": {"alertname": "DbvigilTargetDown", "target": "ledger", "job": "dbvigil", "severity": "critical"}},
    ]);
    let posted = send(
        am.addr,
        "POST",
        "/api/v2/alerts",
        &[("Content-Type", "application/json")],
        &alerts.to_string(),
    )
    .await;
    assert_eq!(posted.status, 200, "{}", posted.body);
    let inhibited = |alerts: &Value, name: &str, target: &str| {
        alerts.as_array().unwrap().iter().find_map(|a| {
            (a["labels"]["alertname"] == name
                && a["labels"]["target"].as_str().unwrap_or_default() == target)
                .then(|| {
                    a["status"]["inhibitedBy"]
                        .as_array()
                        .is_some_and(|by| !by.is_empty())
                })
        })
    };
    let listed = eventually(
        Duration::from_secs(30),
        "every alert listed with inhibitions settled",
        || async {
            let r = send(am.addr, "GET", "/api/v2/alerts", &[], "").await;
            let v: Value = serde_json::from_str(&r.body).ok()?;
            (v.as_array()?.len() == 9 && inhibited(&v, "DbvigilFlapping", "orders") == Some(true))
                .then_some(v)
        },
    )
    .await;
    for (name, target, expected) in [
        ("DbvigilFlapping", "orders", true),
        ("DbvigilMigrationFailed", "orders", false),
        ("DbvigilFlapping", "billing", false),
        ("DbvigilTargetDown", "billing", false),
        ("DbvigilWritesFailing", "billing", true),
        ("DbvigilProbesStale", "ledger", true),
        ("DbvigilTargetDown", "ledger", false),
    ] {
        assert_eq!(
            inhibited(&listed, name, target),
            Some(expected),
            "{name} on {target}: {listed:#}"
        );
    }
}
