//! Maintenance windows through the real HTTP API, against the real SQLite store: tokens,
//! validation that stores nothing, expiry, extend and end, coverage by groups and "*",
//! schedules, the application's own flag, restarts and kill -9, and the CLI.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Running, TestExporter, app_flag_db, app_sql, eventually, send, tempdir};
use serde_json::{Value, json};

const TOKEN: &str = "ci-token-0123456789abcdef";

/// Two SQLite targets `a` and `b`, group `g` = [a], a tokens file with TOKEN (named
/// `pipeline`), max 1h, and `extra` appended under `maintenance:`.
fn config(dir: &Path, extra: &str, target_extra: &str) -> String {
    std::fs::write(
        dir.join("tokens"),
        format!("# API tokens\npipeline {TOKEN}\n"),
    )
    .unwrap();
    format!(
        "targets:\n\
         \x20 - name: a\n    kind: sqlite\n    path: {a}\n    create: true\n    interval: 200ms\n{target_extra}\
         \x20 - name: b\n    kind: sqlite\n    path: {b}\n    create: true\n    interval: 200ms\n\
         groups:\n  - name: g\n    members: [a]\n\
         maintenance:\n  tokens_file: tokens\n  max_duration: 1h\n  default_duration: 10m\n{extra}",
        a = dir.join("a.db").display(),
        b = dir.join("b.db").display(),
    )
}

async fn post(e: &TestExporter, path: &str, token: Option<&str>, body: &str) -> common::Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    send(e.addr, "POST", path, &headers, body).await
}

fn json(r: &common::Response) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|_| panic!("not JSON ({}): {}", r.status, r.body))
}

async fn windows(e: &TestExporter) -> Vec<Value> {
    let r = e.get("/api/v1/maintenance").await;
    assert_eq!(r.status, 200, "{}", r.body);
    json(&r)["windows"].as_array().unwrap().clone()
}

fn ms(text: &str) -> i64 {
    text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

#[tokio::test]
async fn changes_need_a_configured_and_valid_token() {
    let dir = tempdir();
    // No token anywhere: changes are refused with how to configure one; reads work.
    let yaml = config(dir.path(), "", "").replace("  tokens_file: tokens\n", "");
    let e = TestExporter::start(dir.path(), &yaml).await;
    let body = r#"{"scope":"a","reason":"upgrade","duration":"5m"}"#;
    let r = post(&e, "/api/v1/maintenance", Some(TOKEN), body).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        json(&r)["error"].as_str().unwrap().contains(
            "set maintenance.tokens_file in the configuration, or DBVIGIL_MAINTENANCE_TOKEN"
        ),
        "{}",
        r.body
    );
    assert!(windows(&e).await.is_empty());
    e.stop().await;

    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &config(dir.path(), "", "")).await;
    let missing = post(&e, "/api/v1/maintenance", None, body).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    let wrong = post(
        &e,
        "/api/v1/maintenance",
        Some("ci-token-0123456789abcdeX"),
        body,
    )
    .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(
        !wrong.body.contains("ci-token"),
        "an answer never echoes a token"
    );
    assert!(
        windows(&e).await.is_empty(),
        "refused requests store nothing"
    );
    assert_eq!(e.get("/maintenance/a").await.status, 200);

    let ok = post(&e, "/api/v1/maintenance", Some(TOKEN), body).await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    let w = json(&ok);
    assert_eq!(
        w["created_by"], "pipeline",
        "without `by`, the token's name"
    );
    assert_eq!(w["events"][0]["token"], "pipeline");
    assert_eq!(
        ok.header("location"),
        Some(format!("/api/v1/maintenance/{}", w["id"].as_str().unwrap()).as_str())
    );
    assert_eq!(windows(&e).await.len(), 1);
    e.stop().await;
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_and_stores_nothing() {
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &config(dir.path(), "", "")).await;
    let past = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    let cases: Vec<(String, u16, &str)> = vec![
        (r#"{"scope":"orders","reason":"x","duration":"5m"}"#.into(), 422, "scope: \"orders\" is neither a configured target, a group, nor \"*\"; known: a, b, g, *"),
        (r#"{"scope":"a","reason":"x","starts_at":"2030-01-01T10:00:00Z","ends_at":"2030-01-01T09:00:00Z"}"#.into(), 422, "ends_at: 2030-01-01T09:00:00Z is not after the start (2030-01-01T10:00:00Z)"),
        (r#"{"scope":"a","reason":"x","duration":"2h"}"#.into(), 422, "duration: 2h is longer than the maximum of 1h (maintenance.max_duration)"),
        (r#"{"scope":"a","reason":"x","duration":"0s"}"#.into(), 422, "duration: must be greater than zero"),
        (r#"{"scope":"a","reason":"x","duration":"soon"}"#.into(), 422, "duration: \"soon\" is not a duration"),
        (r#"{"scope":"a","reason":"x","duration":"5m","ends_at":"2030-01-01T09:00:00Z"}"#.into(), 422, "duration: give either duration or ends_at, not both"),
        (format!(r#"{{"scope":"a","reason":"x","starts_at":"{past}"}}"#), 422, "starts_at: "),
        (r#"{"scope":"a","reason":"  "}"#.into(), 422, "reason: is missing"),
        (r#"{"scope":"a"}"#.into(), 422, "missing field `reason`"),
        (r#"{"scope":"a","reason":"x","durration":"5m"}"#.into(), 422, "unknown field `durration`"),
        (r#"{"scope":"a","reason":"x","duration":300}"#.into(), 422, "invalid type: integer `300`, expected a string"),
        (r#"{"scope":"a","reason":"x""#.into(), 400, "malformed JSON"),
        ("scope=a&reason=x".into(), 400, "malformed JSON"),
    ];
    let mut failures = Vec::new();
    for (body, status, message) in &cases {
        let r = post(&e, "/api/v1/maintenance", Some(TOKEN), body).await;
        let error = serde_json::from_str::<Value>(&r.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_default();
        if r.status != *status || !error.contains(message) {
            failures.push(format!(
                "{body}\n  got {} {}\n  want {status} ...{message}...",
                r.status, r.body
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert!(
        windows(&e).await.is_empty(),
        "no refused request stored a window"
    );
    e.exporter.maintenance_step().await;
    let m = e.metrics().await;
    assert_eq!(
        m.value(
            "dbvigil_maintenance_windows_started_total",
            &[("scope", "a"), ("source", "api")]
        ),
        0.0
    );
    e.stop().await;
}

#[tokio::test]
async fn a_window_expires_on_time_and_the_gate_follows() {
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &config(dir.path(), "", "")).await;
    let r = post(
        &e,
        "/api/v1/maintenance",
        Some(TOKEN),
        r#"{"scope":"a","reason":"schema upgrade","duration":"3s"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let ends_at = ms(json(&r)["ends_at"].as_str().unwrap());

    let gate = e.get("/maintenance/a").await;
    assert_eq!(gate.status, 503, "{}", gate.body);
    let retry: u64 = gate.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (2..=3).contains(&retry),
        "Retry-After {retry} for a window ending in 3s"
    );
    let body = json(&gate);
    assert_eq!(body["maintenance"], true);
    assert_eq!(body["windows"][0]["reason"], "schema upgrade");
    // nginx's auth_request only understands 2xx, 401 and 403.
    assert_eq!(e.get("/maintenance/a?status=403").await.status, 403);
    assert_eq!(e.get("/maintenance/a?status=200").await.status, 400);
    assert_eq!(
        e.get("/maintenance/b").await.status,
        200,
        "b is not covered"
    );
    assert_eq!(e.get("/maintenance/nope").await.status, 404);

    let m = e.metrics().await;
    assert_eq!(
        m.value("dbvigil_maintenance_active", &[("target", "a")]),
        1.0
    );
    assert_eq!(
        m.value("dbvigil_maintenance_active", &[("target", "b")]),
        0.0
    );
    assert_eq!(
        m.value(
            "dbvigil_maintenance_windows_active",
            &[("scope", "a"), ("source", "api")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "dbvigil_maintenance_end_timestamp_seconds",
            &[("scope", "a")]
        ),
        ends_at as f64 / 1000.0
    );
    assert_eq!(
        m.value(
            "dbvigil_maintenance_windows_started_total",
            &[("scope", "a"), ("source", "api")]
        ),
        1.0
    );

    // The gate opens when the window ends, not before and not much after.
    let reopened_at = eventually(
        Duration::from_secs(10),
        "the gate answers 200 again",
        || async {
            let status = e.get("/maintenance/a").await.status;
            let now = jiff::Timestamp::now().as_millisecond();
            (status == 200).then_some(now)
        },
    )
    .await;
    assert!(
        reopened_at >= ends_at,
        "reopened {}ms before the end",
        ends_at - reopened_at
    );
    assert!(
        reopened_at - ends_at < 1000,
        "reopened {}ms after the end",
        reopened_at - ends_at
    );
    let w = &windows(&e).await[0];
    assert_eq!(w["state"], "expired");
    let m = e.metrics().await;
    assert_eq!(
        m.value("dbvigil_maintenance_active", &[("target", "a")]),
        0.0
    );
    assert!(
        m.get(
            "dbvigil_maintenance_end_timestamp_seconds",
            &[("scope", "a")]
        )
        .is_none()
    );
    e.stop().await;
}

#[tokio::test]
async fn extend_and_end_early_are_audited_and_bounded() {
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &config(dir.path(), "", "")).await;
    let r = post(
        &e,
        "/api/v1/maintenance",
        Some(TOKEN),
        r#"{"scope":"g","reason":"failover drill","duration":"10m","by":"alice"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let w = json(&r);
    let id = w["id"].as_str().unwrap().to_owned();
    let end = ms(w["ends_at"].as_str().unwrap());

    let r = post(
        &e,
        &format!("/api/v1/maintenance/{id}/extend"),
        Some(TOKEN),
        r#"{"duration":"15m","by":"bob"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ms(json(&r)["ends_at"].as_str().unwrap()), end + 15 * 60_000);
    let r = post(
        &e,
        &format!("/api/v1/maintenance/{id}/extend"),
        Some(TOKEN),
        r#"{"duration":"50m"}"#,
    )
    .await;
    assert_eq!(r.status, 422, "past max_duration: {}", r.body);
    assert!(
        json(&r)["error"]
            .as_str()
            .unwrap()
            .contains("more than the maximum of 1h")
    );
    let r = post(
        &e,
        &format!("/api/v1/maintenance/{id}/extend"),
        Some(TOKEN),
        r#"{"ends_at":"2020-01-01T00:00:00Z"}"#,
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let unchanged = &windows(&e).await[0];
    assert_eq!(
        ms(unchanged["ends_at"].as_str().unwrap()),
        end + 15 * 60_000,
        "refused extensions change nothing"
    );

    let r = post(
        &e,
        &format!("/api/v1/maintenance/{id}/end"),
        Some(TOKEN),
        r#"{"by":"carol","reason":"drill done"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ended = json(&r);
    assert_eq!(ended["state"], "ended");
    assert_eq!(ended["ended_by"], "carol");
    assert_eq!(
        e.get("/maintenance/a").await.status,
        200,
        "a member of g is free again"
    );

    assert_eq!(
        post(
            &e,
            &format!("/api/v1/maintenance/{id}/end"),
            Some(TOKEN),
            ""
        )
        .await
        .status,
        409
    );
    assert_eq!(
        post(
            &e,
            &format!("/api/v1/maintenance/{id}/extend"),
            Some(TOKEN),
            r#"{"duration":"1m"}"#
        )
        .await
        .status,
        409
    );
    assert_eq!(
        post(&e, "/api/v1/maintenance/999/end", Some(TOKEN), "")
            .await
            .status,
        404
    );

    let r = e.get(&format!("/api/v1/maintenance/{id}")).await;
    let events: Vec<(String, String, String)> = json(&r)["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().into(),
                e["by"].as_str().unwrap().into(),
                e["token"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want: Vec<(String, String, String)> = [
        ("started", "alice"),
        ("extended", "bob"),
        ("ended", "carol"),
    ]
    .iter()
    .map(|(a, b)| ((*a).into(), (*b).into(), "pipeline".into()))
    .collect();
    assert_eq!(events, want);
    assert_eq!(json(&r)["events"][2]["detail"], "drill done");
    e.stop().await;
}

#[tokio::test]
async fn windows_on_a_group_or_star_cover_their_targets() {
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &config(dir.path(), "", "")).await;
    let r = post(
        &e,
        "/api/v1/maintenance",
        Some(TOKEN),
        r#"{"scope":"g","reason":"r"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let w = json(&r);
    let length = ms(w["ends_at"].as_str().unwrap()) - ms(w["starts_at"].as_str().unwrap());
    assert_eq!(length, 10 * 60_000, "default_duration applies");
    assert_eq!(e.get("/maintenance/g").await.status, 503);
    assert_eq!(e.get("/maintenance/a").await.status, 503, "a is in g");
    assert_eq!(e.get("/maintenance/b").await.status, 200);
    assert_eq!(
        e.get("/maintenance/*").await.status,
        200,
        "a group window does not cover *"
    );
    let m = e.metrics().await;
    assert_eq!(
        m.value("dbvigil_maintenance_active", &[("group", "g")]),
        1.0
    );
    assert_eq!(
        m.value("dbvigil_maintenance_active", &[("target", "a")]),
        1.0
    );

    let r = post(
        &e,
        "/api/v1/maintenance",
        Some(TOKEN),
        r#"{"scope":"*","reason":"r","duration":"1m"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(e.get("/maintenance/b").await.status, 503);
    let listed = e.get("/api/v1/maintenance?scope=b").await;
    let scopes: Vec<String> = json(&listed)["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["scope"].as_str().unwrap().into())
        .collect();
    assert_eq!(scopes, vec!["*".to_owned()], "b is covered by * only");
    assert_eq!(e.get("/api/v1/maintenance?scope=nope").await.status, 404);
    assert_eq!(e.get("/api/v1/maintenance?state=soon").await.status, 400);
    e.stop().await;
}

#[tokio::test]
async fn a_scheduled_window_opens_and_closes() {
    let dir = tempdir();
    let start = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(2);
    let start = jiff::Timestamp::from_second(start.as_second() + 1).unwrap();
    let schedule = format!(
        "  schedules:\n    - name: nightly-reindex\n      scope: b\n      once: {start}\n      duration: 2s\n      reason: reindex\n"
    );
    let e = TestExporter::start(dir.path(), &config(dir.path(), &schedule, "")).await;
    let listed = windows(&e).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["state"], "scheduled");
    assert_eq!(listed[0]["source"], "schedule");
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(e.get("/maintenance/b").await.status, 200);

    let opened = eventually(Duration::from_secs(10), "the schedule opens", || async {
        let r = e.get("/maintenance/b").await;
        (r.status == 503).then(jiff::Timestamp::now)
    })
    .await;
    assert!(opened >= start, "opened before its start");
    e.exporter.maintenance_tick();
    let m = e.metrics().await;
    assert_eq!(
        m.value(
            "dbvigil_maintenance_windows_active",
            &[("scope", "b"), ("source", "schedule")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "dbvigil_maintenance_windows_started_total",
            &[("scope", "b"), ("source", "schedule")]
        ),
        1.0
    );
    let r = post(
        &e,
        &format!("/api/v1/maintenance/{id}/end"),
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(
        r.status, 409,
        "a schedule changes with the configuration: {}",
        r.body
    );

    eventually(Duration::from_secs(10), "the schedule closes", || async {
        (e.get("/maintenance/b").await.status == 200).then_some(())
    })
    .await;
    assert!(jiff::Timestamp::now() >= start + jiff::SignedDuration::from_secs(2));
    assert_eq!(windows(&e).await[0]["state"], "expired");
    e.stop().await;
}

#[tokio::test]
async fn the_application_flag_opens_and_closes_a_window() {
    let dir = tempdir();
    let app_db = dir.path().join("a.db");
    app_flag_db(&app_db).await;
    let yaml = config(
        dir.path(),
        "",
        "    maintenance_query: SELECT maintenance FROM service_context LIMIT 1\n",
    );
    let e = TestExporter::start(dir.path(), &yaml).await;
    let flag = |m: &common::Metrics| m.get("dbvigil_maintenance_app_flag", &[("target", "a")]);
    eventually(
        Duration::from_secs(10),
        "the flag is read as off",
        || async { (flag(&e.metrics().await) == Some(0.0)).then_some(()) },
    )
    .await;
    assert_eq!(e.get("/maintenance/a").await.status, 200);

    app_sql(&app_db, "UPDATE service_context SET maintenance = 1").await;
    let gate = eventually(
        Duration::from_secs(10),
        "the flag opens a window",
        || async {
            let r = e.get("/maintenance/a").await;
            (r.status == 503).then_some(r)
        },
    )
    .await;
    let body = json(&gate);
    assert_eq!(body["windows"][0]["source"], "app");
    assert_eq!(
        body["ends_at"],
        Value::Null,
        "an app window has no planned end"
    );
    assert_eq!(
        gate.header("retry-after"),
        Some("1"),
        "one probe interval, rounded up"
    );
    assert_eq!(
        e.get("/maintenance/g").await.status,
        200,
        "an app window covers its target only"
    );
    let r = post(&e, "/api/v1/maintenance/app:a/end", Some(TOKEN), "").await;
    assert_eq!(r.status, 409, "{}", r.body);
    e.exporter.maintenance_tick();
    let m = e.metrics().await;
    assert_eq!(
        m.value(
            "dbvigil_maintenance_windows_active",
            &[("scope", "a"), ("source", "app")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "dbvigil_maintenance_windows_started_total",
            &[("scope", "a"), ("source", "app")]
        ),
        1.0
    );
    assert_eq!(
        m.value("dbvigil_up", &[("target", "a")]),
        1.0,
        "probes go on during a window"
    );

    // Text flags are understood too.
    app_sql(&app_db, "UPDATE service_context SET maintenance = 'off'").await;
    eventually(
        Duration::from_secs(10),
        "clearing the flag ends the window",
        || async { (e.get("/maintenance/a").await.status == 200).then_some(()) },
    )
    .await;
    app_sql(
        &app_db,
        "UPDATE service_context SET maintenance = 'perhaps'",
    )
    .await;
    let api = eventually(
        Duration::from_secs(10),
        "an unreadable flag is reported",
        || async {
            let m = e.metrics().await;
            (m.get(
                "dbvigil_maintenance_app_flag_read_error",
                &[("target", "a")],
            ) == Some(1.0))
            .then_some(m)
        },
    )
    .await;
    assert_eq!(flag(&api), Some(0.0), "the flag keeps its last value");
    e.stop().await;
}

/// The binary with a tokens file, in `dir`, keeping its windows in `dir/dbvigil-data`.
async fn binary(dir: &Path) -> Running {
    let yaml = config(dir, "", "");
    std::fs::write(dir.join("dbvigil.yml"), yaml).unwrap();
    Running::start(dir, &["--config.file", "dbvigil.yml"], &[]).await
}

async fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> common::Response {
    let auth = format!("Bearer {TOKEN}");
    send(addr, method, path, &[("Authorization", &auth)], body).await
}

#[tokio::test]
async fn restart_and_kill_9_keep_every_acknowledged_window() {
    let dir = tempdir();
    let first = binary(dir.path()).await;
    let mut acknowledged: Vec<(String, String)> = Vec::new();
    for i in 0..20 {
        let body = json!({ "scope": if i % 2 == 0 { "a" } else { "g" }, "reason": format!("step {i}"), "duration": "30m" }).to_string();
        let r = call(first.addr, "POST", "/api/v1/maintenance", &body).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let w = json(&r);
        acknowledged.push((
            w["id"].as_str().unwrap().into(),
            w["ends_at"].as_str().unwrap().into(),
        ));
    }
    let (extended, _) = acknowledged[3].clone();
    let r = call(
        first.addr,
        "POST",
        &format!("/api/v1/maintenance/{extended}/extend"),
        r#"{"duration":"10m"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    acknowledged[3].1 = json(&r)["ends_at"].as_str().unwrap().into();
    let (ended, _) = acknowledged[7].clone();
    assert_eq!(
        call(
            first.addr,
            "POST",
            &format!("/api/v1/maintenance/{ended}/end"),
            ""
        )
        .await
        .status,
        200
    );
    first.signal(libc::SIGKILL);
    drop(first);

    let second = binary(dir.path()).await;
    let r = common::request(second.addr, "GET", "/api/v1/maintenance", &[]).await;
    let listed: Vec<(String, String, String)> = json(&r)["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["id"].as_str().unwrap().into(),
                w["ends_at"].as_str().unwrap().into(),
                w["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want: Vec<(String, String, String)> = acknowledged
        .iter()
        .map(|(id, end)| {
            (
                id.clone(),
                end.clone(),
                if *id == ended { "ended" } else { "active" }.to_owned(),
            )
        })
        .collect();
    assert_eq!(listed, want);
    assert_eq!(
        common::request(second.addr, "GET", "/maintenance/a", &[])
            .await
            .status,
        503
    );
    second.terminate();
}

fn cli(addr: std::net::SocketAddr, token: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_dbvigil"));
    cmd.arg("maintenance")
        .args(args)
        .env("DBVIGIL_URL", format!("http://{addr}"))
        .env_remove("DBVIGIL_MAINTENANCE_TOKEN")
        .env("USER", "ops");
    if let Some(t) = token {
        cmd.env("DBVIGIL_MAINTENANCE_TOKEN", t);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_drives_a_running_exporter_with_exit_codes() {
    let dir = tempdir();
    let running = binary(dir.path()).await;
    let addr = running.addr;
    let (code, out, _) = tokio::task::spawn_blocking(move || cli(addr, None, &["status", "a"]))
        .await
        .unwrap();
    assert_eq!((code, out.trim()), (0, "a: not in maintenance"));

    let (code, _, err) = tokio::task::spawn_blocking(move || {
        cli(
            addr,
            None,
            &["start", "--scope", "a", "--for", "5m", "--reason", "x"],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 3, "no token: {err}");
    let (code, _, err) = tokio::task::spawn_blocking(move || {
        cli(
            addr,
            Some("ci-token-WRONG-WRONG-WRONG"),
            &["start", "--scope", "a", "--reason", "x"],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("401"), "{err}");
    let (code, _, err) = tokio::task::spawn_blocking(move || {
        cli(
            addr,
            Some(TOKEN),
            &["start", "--scope", "orders", "--reason", "x"],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("\"orders\" is neither a configured target"),
        "{err}"
    );

    let (code, out, err) = tokio::task::spawn_blocking(move || {
        cli(
            addr,
            Some(TOKEN),
            &[
                "start",
                "--scope",
                "g",
                "--for",
                "20m",
                "--reason",
                "db upgrade",
                "--output",
                "json",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    let w: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(w["created_by"], format!("ops@{}", dbvigil::cli::hostname()));
    let id = w["id"].as_str().unwrap().to_owned();

    let (code, out, _) = tokio::task::spawn_blocking(move || cli(addr, None, &["status", "a"]))
        .await
        .unwrap();
    assert_eq!(code, 5, "{out}");
    assert!(out.contains("a: in maintenance until"), "{out}");

    let id2 = id.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        cli(addr, Some(TOKEN), &["extend", &id2, "--for", "5m"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\tactive\t"), "{out}");
    let id2 = id.clone();
    let (code, _, err) = tokio::task::spawn_blocking(move || {
        cli(addr, Some(TOKEN), &["end", &id2, "--reason", "done"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    let id2 = id.clone();
    let (code, _, err) =
        tokio::task::spawn_blocking(move || cli(addr, Some(TOKEN), &["end", &id2]))
            .await
            .unwrap();
    assert_eq!(code, 1, "ending twice is refused: {err}");
    let (code, _, _) = tokio::task::spawn_blocking(move || cli(addr, None, &["status", "a"]))
        .await
        .unwrap();
    assert_eq!(code, 0);

    let (code, out, _) =
        tokio::task::spawn_blocking(move || cli(addr, None, &["list", "--output", "json"]))
            .await
            .unwrap();
    assert_eq!(code, 0);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["windows"][0]["state"], "ended");
    assert_eq!(listed["windows"][0]["events"].as_array().unwrap().len(), 3);

    let closed: std::net::SocketAddr = format!("127.0.0.1:{}", common::servers::free_port())
        .parse()
        .unwrap();
    let (code, _, err) = tokio::task::spawn_blocking(move || cli(closed, None, &["status", "a"]))
        .await
        .unwrap();
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("cannot reach dbvigil"), "{err}");
    running.terminate();
}
