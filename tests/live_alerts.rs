//! The shipped rules end to end: two dbvigil replicas probing the same throwaway PostgreSQL
//! and MariaDB servers (the shipped Deployment's shape), a real Prometheus scraping both
//! every second in one job with alerts/dbvigil.rules.yml, and a real Alertmanager with
//! alerts/alertmanager.yml. A stopped database pages once, not once per replica; a stopped
//! database inside a maintenance window does not page.

mod common;

use std::time::Duration;

use common::db::{Db, Engine, config, target};
use common::{eventually, monitoring, send, tempdir};
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
        "{}maintenance:\n  tokens_file: \"{}\"\n",
        config(&[
            target("orders", &orders, "1s", ""),
            target("billing", &billing, "1s", ""),
        ]),
        dir.path().join("tokens").display()
    );
    let replicas = monitoring::replicas(dir.path(), &yaml).await;
    let repo = std::env::current_dir().unwrap();
    let am = monitoring::alertmanager(dir.path(), &repo.join("alerts/alertmanager.yml")).await;
    let prometheus = monitoring::prometheus(
        dir.path(),
        &format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: [\"{}\"]\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"{}\"]\n{}",
            repo.join("alerts/dbvigil.rules.yml").display(),
            am.addr,
            monitoring::scrape_job(&replicas)
        ),
    )
    .await;
    let wait = Duration::from_secs(90);
    eventually(
        wait,
        "both targets up for both replicas in Prometheus",
        || async {
            let up = monitoring::series(prometheus.addr, "dbvigil_up == 1").await;
            (up.len() == 4).then_some(())
        },
    )
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

    // The replicas share their windows through a state store in production
    // (docs/scaling.md); here each is told.
    for r in &replicas {
        let window = send(
            r.addr,
            "POST",
            "/api/v1/maintenance",
            &[("Authorization", &format!("Bearer {TOKEN}"))],
            r#"{"scope":"billing","reason":"upgrade","duration":"30m"}"#,
        )
        .await;
        assert_eq!(window.status, 201, "{}", window.body);
    }
    orders.stop();
    billing.stop();

    // How many alerts of that name Alertmanager holds for the target.
    let in_alertmanager = |name: &'static str, target: &'static str| {
        let addr = am.addr;
        async move {
            let r = send(addr, "GET", "/api/v2/alerts", &[], "").await;
            let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
            v.as_array().map_or(0, |alerts| {
                alerts
                    .iter()
                    .filter(|a| a["labels"]["alertname"] == name && a["labels"]["target"] == target)
                    .count()
            })
        }
    };
    // Wait until both replicas see orders down and Prometheus has nothing pending for it, so
    // every alert a replica could raise has fired, and Alertmanager holds all that fired.
    let fired = eventually(
        wait,
        "DbvigilTargetDown for orders fired for every replica and reached Alertmanager",
        || async {
            let addr = prometheus.addr;
            let down = monitoring::series(addr, "dbvigil_up{target=\"orders\"} == 0").await;
            let alerts = monitoring::series(
                addr,
                "ALERTS{alertname=\"DbvigilTargetDown\",target=\"orders\"}",
            )
            .await;
            let firing = alerts
                .iter()
                .filter(|a| a["metric"]["alertstate"] == "firing")
                .count();
            let received = in_alertmanager("DbvigilTargetDown", "orders").await;
            (down.len() == 2 && firing > 0 && firing == alerts.len() && received == firing)
                .then_some(alerts)
        },
    )
    .await;
    assert_eq!(
        fired.len(),
        1,
        "orders is down for two replicas: one alert, not one per replica: {fired:?}"
    );
    assert_eq!(in_alertmanager("DbvigilTargetDown", "orders").await, 1);
    assert!(
        monitoring::replica_labels_of(&fired[0]).is_empty(),
        "the alert names the target, not a replica: {fired:?}"
    );
    assert_eq!(
        in_alertmanager("DbvigilInMaintenance", "billing").await,
        1,
        "the window is visible to Alertmanager, once"
    );
    assert_eq!(
        in_alertmanager("DbvigilTargetDown", "billing").await,
        0,
        "billing is down inside its window: no page"
    );
    let pending = monitoring::series(
        prometheus.addr,
        "ALERTS{alertname=\"DbvigilTargetDown\",target=\"billing\"}",
    )
    .await;
    assert!(pending.is_empty(), "not even pending: {pending:?}");
    let down = monitoring::series(prometheus.addr, "dbvigil_up{target=\"billing\"} == 0").await;
    assert_eq!(down.len(), 2, "billing really is down, for both replicas");

    orders.start_again();
    billing.start_again();
    for r in replicas {
        r.stop().await;
    }
}
