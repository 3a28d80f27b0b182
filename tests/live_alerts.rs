//! The shipped rules end to end: dbvigil probing throwaway PostgreSQL and MariaDB servers, a
//! real Prometheus scraping it every second with alerts/dbvigil.rules.yml, and a real
//! Alertmanager with alerts/alertmanager.yml. A stopped database pages; a stopped database
//! inside a maintenance window does not.

mod common;

use std::time::Duration;

use common::db::{Db, Engine, config, target};
use common::{TestExporter, eventually, monitoring, send, tempdir};
use serde_json::Value;

const TOKEN: &str = "live-alerts-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_database_pages_unless_a_window_covers_it() {
    if !monitoring::have("prometheus", "prometheus")
        || !monitoring::have("prometheus-alertmanager", "prometheus-alertmanager")
    {
        return;
    }
    let Some(mut orders) = Db::start(Engine::Postgres) else {
        return;
    };
    let Some(mut billing) = Db::start(Engine::MariaDb) else {
        return;
    };
    let dir = tempdir();
    std::fs::write(dir.path().join("tokens"), format!("{TOKEN}\n")).unwrap();
    let yaml = format!(
        "{}maintenance:\n  tokens_file: tokens\n",
        config(&[
            target("orders", &orders, "1s", ""),
            target("billing", &billing, "1s", ""),
        ])
    );
    let exporter = TestExporter::start(dir.path(), &yaml).await;
    let repo = std::env::current_dir().unwrap();
    let am = monitoring::alertmanager(dir.path(), &repo.join("alerts/alertmanager.yml")).await;
    let prometheus = monitoring::prometheus(
        dir.path(),
        &format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: [\"{}\"]\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"{}\"]\n\
             scrape_configs:\n  - job_name: dbvigil\n    static_configs:\n      - targets: [\"{}\"]\n",
            repo.join("alerts/dbvigil.rules.yml").display(),
            am.addr,
            exporter.addr
        ),
    )
    .await;
    let wait = Duration::from_secs(90);
    eventually(wait, "both targets up in Prometheus", || async {
        let up = monitoring::series(prometheus.addr, "dbvigil_up == 1").await;
        (up.len() == 2).then_some(())
    })
    .await;

    // Every rule's expression is one Prometheus accepts on live data.
    let rules: Value = serde_json::from_str(
        &send(prometheus.addr, "GET", "/api/v1/rules", &[], "")
            .await
            .body,
    )
    .unwrap();
    let loaded: Vec<&Value> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert!(loaded.len() >= 15, "only {} rules loaded", loaded.len());
    for rule in &loaded {
        assert_eq!(rule["health"], "ok", "{rule:#}");
    }

    let window = send(
        exporter.addr,
        "POST",
        "/api/v1/maintenance",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        r#"{"scope":"billing","reason":"upgrade","duration":"30m"}"#,
    )
    .await;
    assert_eq!(window.status, 201, "{}", window.body);
    orders.stop();
    billing.stop();

    let in_alertmanager = |name: &'static str, target: &'static str| {
        let addr = am.addr;
        async move {
            let r = send(addr, "GET", "/api/v2/alerts", &[], "").await;
            let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
            v.as_array().is_some_and(|alerts| {
                alerts
                    .iter()
                    .any(|a| a["labels"]["alertname"] == name && a["labels"]["target"] == target)
            })
        }
    };
    eventually(
        wait,
        "DbvigilTargetDown for orders reaches Alertmanager",
        || async {
            in_alertmanager("DbvigilTargetDown", "orders")
                .await
                .then_some(())
        },
    )
    .await;
    assert!(
        in_alertmanager("DbvigilInMaintenance", "billing").await,
        "the window is visible to Alertmanager"
    );
    assert!(
        !in_alertmanager("DbvigilTargetDown", "billing").await,
        "billing is down inside its window: no page"
    );
    let pending = monitoring::series(
        prometheus.addr,
        "ALERTS{alertname=\"DbvigilTargetDown\",target=\"billing\"}",
    )
    .await;
    assert!(pending.is_empty(), "not even pending: {pending:?}");
    let down = monitoring::series(prometheus.addr, "dbvigil_up{target=\"billing\"} == 0").await;
    assert_eq!(down.len(), 1, "billing really is down");

    orders.start_again();
    billing.start_again();
    exporter.stop().await;
}
