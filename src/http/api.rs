//! `/api/v1/targets`: each target's state, last error and recent outage episodes as JSON.
//! Built from snapshots and configuration without any credential.

use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use crate::state::{Episode, TargetStats};

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn episode(e: &Episode, now: SystemTime) -> Value {
    json!({
        "started_at": time(e.started_at),
        "ended_at": e.ended_at.map(time),
        "duration_seconds": e.duration(now).as_secs_f64(),
        "reason": e.reason.as_str(),
        "message": e.message,
        "failed_checks": e.failed_checks.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
    })
}

fn target(s: &TargetStats, now: SystemTime) -> Value {
    let t = &s.target;
    let state = match s.up {
        Some(true) => "up",
        Some(false) => "down",
        None => "unknown",
    };
    json!({
        "name": t.name,
        "kind": t.kind.as_str(),
        "endpoint": t.describe_endpoint(),
        "labels": t.labels.iter().map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<serde_json::Map<_, _>>(),
        "interval_seconds": t.interval.as_secs_f64(),
        "timeout_seconds": t.timeout.as_secs_f64(),
        "state": state,
        "read_only": s.read_only,
        "replication_lag_seconds": s.replication_lag.map(|d| d.as_secs_f64()),
        "identity": s.identity.as_ref().map(|i| json!({"key": i.key, "version": i.version})),
        "identity_changes": s.identity_changes,
        "probes": s.probes,
        "consecutive_failures": s.consecutive_failures,
        "last_success_at": s.last_success_at.map(time),
        "last_probe": s.last.as_ref().map(|l| json!({
            "at": time(l.at),
            "duration_seconds": l.duration.as_secs_f64(),
            "success": l.success,
            "checks": l.checks.iter().map(|(c, ok)| (c.as_str().to_owned(), Value::Bool(*ok)))
                .collect::<serde_json::Map<_, _>>(),
            "error": l.failure.as_ref().map(|f| json!({"reason": f.reason.as_str(), "message": f.message})),
        })),
        "current_outage": s.current_outage.as_ref().map(|e| episode(e, now)),
        "outages": s.outages,
        "episodes": s.episodes.iter().rev().map(|e| episode(e, now)).collect::<Vec<_>>(),
    })
}

pub(super) async fn targets(State(s): State<AppState>) -> Json<Value> {
    let now = SystemTime::now();
    let targets: Vec<Value> = s
        .exporter
        .targets()
        .iter()
        .map(|t| target(&t.snapshot(), now))
        .collect();
    Json(json!({ "targets": targets }))
}
