//! dbvigil's own port against careless and hostile clients: security headers on every
//! answer, and oversized bodies refused before they are buffered.

mod common;

use common::{TestExporter, send, tempdir};

const TOKEN: &str = "hardening-token-0123456789";

#[tokio::test]
async fn every_answer_carries_security_headers() {
    let dir = tempdir();
    let exporter = TestExporter::start(
        dir.path(),
        "targets:\n  - {name: app, kind: sqlite, path: app.db, create: true}\n",
    )
    .await;
    for path in [
        "/",
        "/metrics",
        "/api/v1/targets",
        "/maintenance/app",
        "/no-such-page",
    ] {
        let r = exporter.get(path).await;
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
            (
                "content-security-policy",
                "default-src 'none'; frame-ancestors 'none'",
            ),
        ] {
            assert_eq!(r.header(name), Some(value), "{path} ({}): {name}", r.status);
        }
    }
    exporter.stop().await;
}

#[tokio::test]
async fn an_oversized_body_is_refused_and_nothing_is_stored() {
    let dir = tempdir();
    std::fs::write(dir.path().join("tokens"), format!("{TOKEN}\n")).unwrap();
    let exporter = TestExporter::start(
        dir.path(),
        "targets:\n  - {name: app, kind: sqlite, path: app.db, create: true}\nmaintenance:\n  tokens_file: tokens\n",
    )
    .await;
    let auth = format!("Bearer {TOKEN}");
    let reason = "x".repeat(dbvigil::http::MAX_BODY_BYTES);
    let body = format!(r#"{{"scope":"app","reason":"{reason}","duration":"5m"}}"#);
    let r = send(
        exporter.addr,
        "POST",
        "/api/v1/maintenance",
        &[("Authorization", &auth)],
        &body,
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.body);
    let list = exporter.get("/api/v1/maintenance").await;
    assert_eq!(list.status, 200);
    let windows: serde_json::Value = serde_json::from_str(&list.body).unwrap();
    assert_eq!(
        windows["windows"].as_array().map(Vec::len),
        Some(0),
        "{}",
        list.body
    );
    // A normal body still works.
    let ok = r#"{"scope":"app","reason":"fine","duration":"5m"}"#;
    let r = send(
        exporter.addr,
        "POST",
        "/api/v1/maintenance",
        &[("Authorization", &auth)],
        ok,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    exporter.stop().await;
}
