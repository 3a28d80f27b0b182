//! `/api/v1/targets` and `/api/v1/groups`: state, last errors, outage episodes, active
//! members and switches as JSON. Built from snapshots and configuration, never a credential.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use crate::config::{Endpoint, TargetConfig};
use crate::groups::GroupState;
use crate::probe::{Identity, LostWrites};
use crate::state::{Downtime, Episode, Periods, Switchover, TargetStats, Window};
use crate::time::Timestamp;

fn episode(e: &Episode, now: Timestamp) -> Value {
    json!({
        "started_at": e.started_at.to_string(),
        "ended_at": e.ended_at.map(|t| t.to_string()),
        "duration_seconds": e.duration(now).as_secs_f64(),
        "reason": e.reason.as_str(),
        "message": e.message,
        "failed_checks": e.failed_checks.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        "lost_writes": e.lost_writes.map(lost),
        "identity_before": e.identity_before.as_ref().map(identity),
        "identity_after": e.identity_after.as_ref().map(identity),
    })
}

fn lost(l: LostWrites) -> Value {
    json!({ "writes": l.writes, "span_seconds": l.span.as_secs_f64() })
}

fn identity(i: &Identity) -> Value {
    json!({"key": i.key, "version": i.version})
}

fn switchover(s: &Switchover) -> Value {
    json!({
        "at": s.at.to_string(),
        "from": identity(&s.from),
        "to": identity(&s.to),
        "last_write_on_old": s.last_write_on_old.map(|t| t.to_string()),
        "first_write_on_new": s.first_write_on_new.map(|t| t.to_string()),
        "write_gap_seconds": s.write_gap().map(|d| d.as_secs_f64()),
        "lost_writes": s.lost_writes.map(lost),
    })
}

fn periods(p: &Periods) -> Value {
    json!({
        "since": p.since.map(|t| t.to_string()),
        "periods": p.started,
        "last_duration_seconds": p.last.map(|d| d.as_secs_f64()),
    })
}

fn target(s: &TargetStats, now: Timestamp) -> Value {
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
        "check_failures": s.check_downtime.iter()
            .map(|(c, p)| (c.as_str().to_owned(), periods(p)))
            .collect::<serde_json::Map<_, _>>(),
        "read_only_periods": periods(&s.read_only_periods),
        "writes_lost": s.writes_lost,
        "writes_lost_counted_since": s.writes_judged_since.map(|t| t.to_string()),
        "last_write_loss": s.last_write_loss.map(lost),
        "switchovers": s.switchovers.iter().rev().map(switchover).collect::<Vec<_>>(),
        "probes": s.probes,
        "consecutive_failures": s.consecutive_failures,
        "last_success_at": s.last_success_at.map(|t| t.to_string()),
        "last_probe": s.last.as_ref().map(|l| json!({
            "at": l.at.to_string(),
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

fn window(w: &Window, now: Timestamp) -> Value {
    json!({
        "from": w.from.to_string(),
        "to": w.to.map(|t| t.to_string()),
        "duration_seconds": w.duration(now).as_secs_f64(),
    })
}

/// Each check's failure periods and the read-only periods of a span, as JSON fields.
fn downtime(d: &Downtime, now: Timestamp) -> [(&'static str, Value); 2] {
    let windows = |ws: &[Window]| ws.iter().map(|w| window(w, now)).collect::<Vec<_>>();
    [
        (
            "check_downtime",
            Value::Object(
                d.checks
                    .iter()
                    .map(|(c, ws)| (c.as_str().to_owned(), windows(ws).into()))
                    .collect(),
            ),
        ),
        ("read_only", windows(&d.read_only).into()),
    ]
}

fn with(mut v: Value, fields: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    for (k, field) in fields {
        v[k] = field;
    }
    v
}

/// The time filter of `/api/v1/targets/NAME/episodes`.
#[derive(Debug, Deserialize)]
pub(super) struct Range {
    since: Option<String>,
    until: Option<String>,
}

/// An RFC 3339 time, or a duration back from `now` (`15m`, `2h`, `1d`).
fn when(field: &str, text: &str, now: Timestamp) -> Result<Timestamp, String> {
    if let Ok(t) = text.trim().parse::<Timestamp>() {
        return Ok(t);
    }
    humantime::parse_duration(text.trim())
        .map(|d| now - d)
        .map_err(|_| {
            format!(
                "{field}={:?} is neither an RFC 3339 time (such as 2026-12-03T14:00:00Z) nor a duration back from now (such as 15m, 2h or 1d)",
                super::truncate(text, 64)
            )
        })
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

/// A target's outage episodes and switchovers in a time range, each with what every check
/// and the read-only state did meanwhile: the material of a postmortem.
pub(super) async fn episodes(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(range): Query<Range>,
) -> Response {
    let now = Timestamp::now();
    let Some(t) = s.exporter.target(&name) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("unknown target {:?}: configured targets are listed at /api/v1/targets", super::truncate(&name, 64))})),
        )
            .into_response();
    };
    let parse =
        |field, text: &Option<String>| text.as_deref().map(|x| when(field, x, now)).transpose();
    let (since, until) = match (parse("since", &range.since), parse("until", &range.until)) {
        (Ok(since), Ok(until)) => (since, until),
        (Err(e), _) | (_, Err(e)) => return bad_request(e),
    };
    if let (Some(a), Some(b)) = (since, until) {
        if a > b {
            return bad_request(format!("since ({a}) is after until ({b}): swap them"));
        }
    }
    let in_range = |from: Timestamp, to: Option<Timestamp>| {
        until.is_none_or(|u| from <= u) && since.is_none_or(|s| to.is_none_or(|t| t >= s))
    };
    let snapshot = t.snapshot();
    let stats: &TargetStats = &snapshot;
    let switchovers: Vec<Value> = stats
        .switchovers
        .iter()
        .rev()
        .filter(|sw| in_range(sw.at, Some(sw.at)))
        .map(|sw| {
            let (from, to) = sw.span();
            with(
                switchover(sw),
                downtime(&stats.downtime(from, Some(to)), now),
            )
        })
        .collect();
    let episodes: Vec<Value> = stats
        .current_outage
        .iter()
        .chain(stats.episodes.iter().rev())
        .filter(|e| in_range(e.started_at, e.ended_at))
        .map(|e| {
            // The switch this outage ended on (or went through), told with the episode too.
            let switched = stats
                .switchovers
                .iter()
                .rev()
                .find(|sw| sw.at >= e.started_at && e.ended_at.is_none_or(|end| sw.at <= end));
            let story = downtime(&stats.downtime(e.started_at, e.ended_at), now);
            let switchover_field = ("switchover", switched.map_or(Value::Null, switchover));
            with(episode(e, now), story.into_iter().chain([switchover_field]))
        })
        .collect();
    Json(json!({
        "target": stats.target.name,
        "since": since.map(|t| t.to_string()),
        "until": until.map(|t| t.to_string()),
        "now": now.to_string(),
        "interval_seconds": stats.target.interval.as_secs_f64(),
        "writes_lost_counted_since": stats.writes_judged_since.map(|t| t.to_string()),
        "switchovers": switchovers,
        "episodes": episodes,
    }))
    .into_response()
}

pub(super) async fn targets(State(s): State<AppState>) -> Json<Value> {
    let now = Timestamp::now();
    let targets: Vec<Value> = s
        .exporter
        .targets()
        .iter()
        .map(|t| target(&t.snapshot(), now))
        .collect();
    Json(json!({ "targets": targets }))
}

/// Where an application connects, without any credential.
fn connection(t: &TargetConfig) -> Value {
    match &t.endpoint {
        Endpoint::Server(s) => json!({
            "kind": t.kind.as_str(), "host": s.host, "port": s.port, "database": s.database,
        }),
        Endpoint::Sqlite { path, .. } => {
            json!({"kind": "sqlite", "path": path.display().to_string()})
        }
        Endpoint::Tcp { host, port } => json!({"kind": "tcp", "host": host, "port": port}),
    }
}

fn group_json(s: &AppState, g: &GroupState) -> Value {
    let c = &g.config;
    let active = g.active_member().map(|m| {
        let mut v = json!({"name": m.name});
        if let Some(t) = s.exporter.target(&m.name) {
            v["connection"] = connection(&t.config);
        }
        v
    });
    let level = c.eligibility.as_str();
    let members: Vec<Value> = g
        .members
        .iter()
        .map(|m| {
            let why = if !m.settled {
                format!(
                    "not settled yet: waiting for a first success or {} failures in a row",
                    c.fail_after
                )
            } else if m.eligible && m.consecutive_failed > 0 {
                format!(
                    "{level}, although its last {} probe(s) failed (drops after {}): {}",
                    m.consecutive_failed,
                    c.fail_after,
                    m.last_failure.clone().unwrap_or_default()
                )
            } else if m.eligible {
                level.to_owned()
            } else if m.consecutive_ok > 0 {
                format!(
                    "recovering: {} of {} successful probes needed",
                    m.consecutive_ok, c.recover_after
                )
            } else {
                format!(
                    "not {level}: {}",
                    m.last_failure.clone().unwrap_or_default()
                )
            };
            json!({
                "name": m.name,
                "eligible": m.eligible,
                "active": g.active_member().is_some_and(|a| a.name == m.name),
                "check": m.check.as_str(),
                "consecutive_ok": m.consecutive_ok,
                "consecutive_failed": m.consecutive_failed,
                "why": why,
            })
        })
        .collect();
    json!({
        "name": c.name,
        "eligibility": level,
        "policy": c.policy.as_str(),
        "fail_after": c.fail_after,
        "recover_after": c.recover_after,
        "decided": g.decided,
        "active": active,
        "eligible_members": g.eligible_count(),
        "switches": g.switches,
        "last_switch_at": g.last_switch_at.map(|t| t.to_string()),
        "members": members,
        "recent_switches": g.recent.iter().rev().map(|sw| json!({
            "at": sw.at.to_string(), "from": sw.from, "to": sw.to, "cause": sw.cause,
        })).collect::<Vec<_>>(),
    })
}

pub(super) async fn groups(State(s): State<AppState>) -> Json<Value> {
    let groups = s.exporter.groups();
    let list: Vec<Value> = groups
        .snapshots()
        .iter()
        .map(|g| group_json(&s, g))
        .collect();
    Json(json!({ "groups": list }))
}

pub(super) async fn group(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    match s.exporter.groups().snapshot(&name) {
        Some(g) => Json(group_json(&s, &g)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("unknown group {:?}: configured groups are listed at /api/v1/groups", super::truncate(&name, 64))})),
        )
            .into_response(),
    }
}
