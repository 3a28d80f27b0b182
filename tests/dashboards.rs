//! The Grafana dashboards: generated from grafana/build.py and in sync with it, provisionable
//! (a `datasource` variable, `job` and `instance` variables filtering every query, no
//! `__inputs`, stable uids), and every query, with Grafana's variables substituted, returns
//! data from a real Prometheus scraping two dbvigil replicas every second while they probe
//! the same throwaway PostgreSQL and MariaDB servers, and shows each target once, not once
//! per replica (docs/mixin.md); so does every metric the alert rules read.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::db::{Db, Engine, block, config, target};
use common::{eventually, monitoring, tempdir};
use serde_json::Value;

fn dashboards() -> Vec<(String, Value)> {
    let mut all: Vec<(String, Value)> = std::fs::read_dir("grafana/dashboards")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let v = serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.display().to_string(), v)
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// Every query of a dashboard: panel targets and annotations, with where it is.
fn queries(board: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in board["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            out.push((
                format!("panel {:?}", p["title"]),
                t["expr"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    for a in board["annotations"]["list"].as_array().unwrap() {
        out.push((
            format!("annotation {:?}", a["name"]),
            a["expr"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    out
}

#[test]
fn the_json_is_what_build_py_writes() {
    let out = Command::new("python3")
        .args(["grafana/build.py", "--check"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dashboards_are_provisionable() {
    let boards = dashboards();
    assert_eq!(boards.len(), 4, "fleet, target, groups, migrations");
    let mut uids = BTreeSet::new();
    let variable = serde_json::json!({"type": "prometheus", "uid": "${datasource}"});
    for (path, b) in &boards {
        let text = b.to_string();
        assert!(
            !text.contains("__inputs") && !text.contains("DS_PROMETHEUS"),
            "{path}: import-only placeholders"
        );
        assert!(b["id"].is_null(), "{path}: id must be null");
        let uid = b["uid"].as_str().unwrap();
        assert!(
            uids.insert(uid.to_owned()),
            "{path}: uid {uid} is not unique"
        );
        let vars = b["templating"]["list"].as_array().unwrap();
        assert!(
            vars.iter()
                .any(|v| v["name"] == "datasource" && v["type"] == "datasource"),
            "{path}: no datasource variable"
        );
        for v in vars.iter().filter(|v| v["type"] == "query") {
            assert_eq!(v["datasource"], variable, "{path}: variable {}", v["name"]);
        }
        let var = |name: &str| {
            vars.iter()
                .find(|v| v["name"] == name)
                .unwrap_or_else(|| panic!("{path}: no {name} variable"))
        };
        let job = var("job");
        assert!(
            job["query"]["query"]
                .as_str()
                .unwrap()
                .starts_with("label_values(dbvigil_up{job"),
            "{path}: job lists the jobs of a dbvigil metric: {job}"
        );
        let instance = var("instance");
        assert_eq!(instance["multi"], true, "{path}: instance is multi-select");
        assert_eq!(instance["includeAll"], true, "{path}: instance has All");
        assert_eq!(instance["allValue"], ".*", "{path}: All is .*");
        assert!(
            instance["query"]["query"]
                .as_str()
                .unwrap()
                .contains(r#"{job=~"$job"}"#),
            "{path}: instance is chained on job: {instance}"
        );
        for p in b["panels"].as_array().unwrap() {
            let title = &p["title"];
            assert_eq!(p["datasource"], variable, "{path}: panel {title}");
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{path}: panel {title} has no query");
            for t in targets {
                assert_eq!(t["datasource"], variable, "{path}: panel {title}");
            }
        }
        for a in b["annotations"]["list"].as_array().unwrap() {
            assert_eq!(
                a["datasource"], variable,
                "{path}: annotation {}",
                a["name"]
            );
        }
        for (place, expr) in queries(b) {
            assert!(
                !expr.trim().is_empty(),
                "{path}: {place} has an empty query"
            );
            // Every metric the query reads, not only the first, under both variables.
            let mut metrics = 0;
            for (i, _) in expr.match_indices("dbvigil_") {
                let rest = &expr[i..];
                let name_end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                assert!(
                    rest[name_end..].starts_with(r#"{job=~"$job", instance=~"$instance""#),
                    "{path}: {place}: {} is not filtered by the job and instance variables: {expr}",
                    &rest[..name_end]
                );
                metrics += 1;
            }
            assert!(
                metrics > 0,
                "{path}: {place} reads no dbvigil metric: {expr}"
            );
            if expr.contains("rate(") {
                assert!(
                    expr.contains("[$__rate_interval]"),
                    "{path}: {place}: rates use $__rate_interval: {expr}"
                );
            }
        }
    }
}

/// Queries that may rightly be empty on a healthy setup without replicas or running
/// migrations, with why.
const MAY_BE_EMPTY: &[(&str, &str)] = &[
    (
        "dbvigil_replication_lag_seconds",
        "no target is a replica here",
    ),
    (
        "dbvigil_migration_in_progress_seconds",
        "no migration holds a lock",
    ),
];

/// Panels that are about one replica by nature, and so keep the replica labels, with why.
/// Every other query shows each target (group, scope) once however many replicas probe it.
const PER_REPLICA: &[(&str, &str)] = &[(
    "Scheduling lag (p99)",
    "how late each replica's own probes start: the exporter's health, one line per replica",
)];

/// The part of a query that must return data: filters such as `> 0` and `== 1` select
/// what is wrong, and nothing is wrong here.
fn unfiltered(expr: &str) -> &str {
    [" > 0", " == 1"]
        .iter()
        .find_map(|f| expr.strip_suffix(f))
        .unwrap_or(expr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_returns_data_from_a_real_prometheus() {
    if !monitoring::have("prometheus", "prometheus") {
        return;
    }
    let Some(orders) = Db::start(Engine::Postgres) else {
        return;
    };
    let Some(billing) = Db::start(Engine::MariaDb) else {
        return;
    };
    let dir = tempdir();
    // A migration history for the migrations dashboard.
    std::fs::create_dir(dir.path().join("migrations")).unwrap();
    std::fs::write(
        dir.path().join("migrations/V1__t.sql"),
        "CREATE TABLE t (id int);\n",
    )
    .unwrap();
    let url = format!(
        "postgres://probe:probe-pw@127.0.0.1:{}/app?sslmode=require",
        orders.port()
    );
    let migrated = block(|| {
        Command::new(env!("CARGO_BIN_EXE_dbvigil"))
            .current_dir(dir.path())
            .args(["migrate", "--database-url", &url, "run"])
            .output()
            .unwrap()
    });
    assert!(migrated.status.success(), "{migrated:?}");
    // A window open now, for the maintenance panels and annotations.
    let started = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60);
    // A third target comes from a discovery file, for the panels and rules about them.
    std::fs::create_dir(dir.path().join("sd")).unwrap();
    std::fs::write(
        dir.path().join("sd/fleet.json"),
        format!(r#"[{{"targets": ["127.0.0.1:{}"]}}]"#, orders.port()),
    )
    .unwrap();
    // The window's silence has nowhere to go (no Alertmanager listens on port 1): the
    // silence series the rules read exist, and say the silence is missing.
    let yaml = format!(
        "{}groups:\n  - {{name: pair, members: [orders, billing]}}\n\
         target_files:\n  - {{files: [\"{}/sd/*.json\"], name_prefix: fleet-, template: {{kind: tcp, interval: 500ms}}}}\n\
         maintenance:\n  schedules:\n    - {{name: upgrade, scope: billing, once: \"{started}\", duration: 1h}}\n\
         alertmanager:\n  urls: [\"http://127.0.0.1:1\"]\n",
        config(&[
            target(
                "orders",
                &orders,
                "500ms",
                // The target dashboard's queries run on coarse phase buckets (the
                // default), the fleet's on both settings: every panel must work in either.
                &format!(
                    "    migrations: {{directory: \"{}\", interval: 1s}}\n    phase_buckets: coarse\n",
                    dir.path().join("migrations").display()
                ),
            ),
            target(
                "billing",
                &billing,
                "500ms",
                "    phase_buckets: detailed\n",
            ),
        ]),
        dir.path().display()
    );
    // Two replicas probing the same targets, one Prometheus job scraping both: the shape of
    // the shipped Kubernetes Deployment (compose/kubernetes/dbvigil.yaml).
    let replicas = monitoring::replicas(dir.path(), &yaml).await;
    let prometheus = monitoring::prometheus(
        dir.path(),
        &format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n{}",
            monitoring::scrape_job(&replicas)
        ),
    )
    .await;
    let addr = prometheus.addr;
    eventually(
        Duration::from_secs(60),
        "ten scrapes of both replicas with migration data",
        || async {
            let found = monitoring::series(
                addr,
                "count(count_over_time(up{job=\"dbvigil\"}[1m]) >= 10) == 2 \
             and on() count(count by (instance) (dbvigil_migration_version_info)) == 2",
            )
            .await;
            (!found.is_empty()).then_some(())
        },
    )
    .await;

    // The job and instance variables list what they filter on: the job, both replicas, and
    // the three targets.
    let boards = dashboards();
    for (path, board) in &boards {
        for v in board["templating"]["list"].as_array().unwrap() {
            let Some(q) = v["query"]["query"].as_str() else {
                continue;
            };
            let (selector, label) = q
                .strip_prefix("label_values(")
                .and_then(|q| q.strip_suffix(')'))
                .and_then(|q| q.rsplit_once(", "))
                .unwrap_or_else(|| panic!("{path}: variable {}: {q}", v["name"]));
            let values = monitoring::series(
                addr,
                &substitute(&format!("count by ({label}) ({selector})")),
            )
            .await;
            let want = match label {
                "instance" => 2,
                "target" => 3,
                _ => 1,
            };
            assert_eq!(
                values.len(),
                want,
                "{path}: variable {}: {q}: {values:?}",
                v["name"]
            );
        }
    }

    let mut checked = 0;
    let mut deduplicated = 0;
    for (path, board) in &boards {
        for (place, expr) in queries(board) {
            let concrete = substitute(&expr);
            let (status, v) = monitoring::query(addr, &concrete).await;
            assert_eq!(status, 200, "{path}: {place}: {concrete}: {v}");
            assert_eq!(v["status"], "success", "{path}: {place}: {concrete}: {v}");
            if MAY_BE_EMPTY.iter().any(|(m, _)| concrete.contains(m)) {
                continue;
            }
            // The variables filter: a job or an instance that does not exist shows nothing.
            for (variable, other) in [("$job", "no-such-job"), ("$instance", "no-such-instance")] {
                let elsewhere = substitute(&expr.replace(variable, other));
                let rows = monitoring::series(addr, unfiltered(&elsewhere)).await;
                assert!(
                    rows.is_empty(),
                    "{path}: {place}: {variable} does not filter: {elsewhere}: {rows:?}"
                );
            }
            let rows = monitoring::series(addr, unfiltered(&concrete)).await;
            assert!(
                !rows.is_empty(),
                "{path}: {place}: no data for {}",
                unfiltered(&concrete)
            );
            checked += 1;
            let per_replica = PER_REPLICA.iter().any(|(title, _)| place.contains(title));
            if per_replica {
                assert!(
                    rows.iter()
                        .all(|r| !monitoring::replica_labels_of(r).is_empty()),
                    "{path}: {place} is listed as per replica but has no replica label: {rows:?}"
                );
                continue;
            }
            // Each target (group, scope) once: no replica label where a series names one,
            // and no two series that differ only in their replica labels.
            let mut seen = BTreeSet::new();
            for r in &rows {
                let named = ["target", "group", "scope"]
                    .iter()
                    .any(|l| !r["metric"][*l].is_null());
                let replica = monitoring::replica_labels_of(r);
                assert!(
                    !named || replica.is_empty(),
                    "{path}: {place}: a series per replica ({replica:?}), so two replicas \
                     show it twice: {r}\n{concrete}"
                );
                let mut labels = r["metric"].as_object().cloned().unwrap_or_default();
                for l in monitoring::REPLICA_LABELS {
                    labels.remove(*l);
                }
                assert!(
                    seen.insert(Value::Object(labels).to_string()),
                    "{path}: {place}: two series for the same labels, one per replica: {rows:?}\n{concrete}"
                );
            }
            deduplicated += 1;
        }
    }
    assert!(checked >= 30, "only {checked} queries checked");
    assert!(
        deduplicated >= checked - PER_REPLICA.len(),
        "only {deduplicated} of {checked} queries checked for replicas"
    );

    // Every metric an alert rule reads exists on live data, so no rule is silently empty.
    let rules = std::fs::read_to_string("alerts/dbvigil.rules.yml").unwrap();
    let mut names: Vec<&str> = rules
        .match_indices("dbvigil_")
        .map(|(i, _)| {
            let end = rules[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(rules.len(), |e| i + e);
            &rules[i..end]
        })
        .filter(|n| !n.ends_with('_') && !n.contains("rules"))
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        if MAY_BE_EMPTY.iter().any(|(m, _)| *m == name) {
            continue;
        }
        let found = monitoring::series(addr, &format!("count({name})")).await;
        assert!(
            !found.is_empty(),
            "alert rules read {name}, which has no series"
        );
    }
    for r in replicas {
        r.stop().await;
    }
}

/// A query with Grafana's variables as a dashboard opened on the whole range would send it:
/// the `dbvigil` job, every instance (All is `.*`), target orders, group pair.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__range_s", "300")
        .replace("$__range", "5m")
        .replace("$target", "orders")
        .replace("$group", "pair")
        .replace("$job", "dbvigil")
        .replace("$instance", ".*")
}
