//! Load-balancer style checks (Patroni-like): plain 200 or 503 answers that HAProxy's
//! `httpchk`, Kubernetes probes and applications can act on without parsing JSON.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{AppState, text};
use crate::config::{Check, Eligibility, Kind};
use crate::probe;

/// `GET /groups/{name}/active`: 200 with the active member's name, 503 when no member is
/// eligible.
pub(super) async fn group_active(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    let groups = s.exporter.groups();
    let Some(g) = groups.snapshot(&name) else {
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "unknown group {:?}: configured groups are listed at /api/v1/groups\n",
                super::truncate(&name, 64)
            ),
        );
    };
    match g.active_member() {
        Some(m) => text(StatusCode::OK, format!("{}\n", m.name)),
        None if !g.decided => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("group {name} has not decided yet: not every member has settled\n"),
        ),
        None => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("group {name} has no eligible member\n"),
        ),
    }
}

/// `GET /targets/{name}/writable|readable|reachable`: 200 when the target's last probe
/// passed that level, 503 when it did not.
pub(super) async fn target_level(
    State(s): State<AppState>,
    Path((name, level)): Path<(String, String)>,
) -> Response {
    let level = match level.as_str() {
        "writable" => Eligibility::Writable,
        "readable" => Eligibility::Readable,
        "reachable" => Eligibility::Reachable,
        _ => {
            return text(
                StatusCode::NOT_FOUND,
                "unknown check: use /targets/NAME/writable, /readable or /reachable\n".to_owned(),
            );
        }
    };
    let Some(target) = s.exporter.target(&name) else {
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "unknown target {:?}: configured targets are listed at /api/v1/targets\n",
                super::truncate(&name, 64)
            ),
        );
    };
    let kind: Kind = target.config.kind;
    let check: Check = level.check(kind);
    if !target.config.has_check(check) {
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "target {name} has no {} check, so it cannot answer /{}\n",
                check.as_str(),
                level.as_str()
            ),
        );
    }
    let snap = target.snapshot();
    let Some(last) = &snap.last else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("target {name} has not been probed yet\n"),
        );
    };
    let ok = last.checks.iter().any(|&(c, ok)| c == check && ok);
    if ok {
        text(StatusCode::OK, format!("{}\n", level.as_str()))
    } else {
        let standing_by =
            (check == Check::Write && snap.read_only == Some(true)).then(probe::not_asked_to_write);
        let why = last
            .failure
            .clone()
            .or(standing_by)
            .map_or_else(String::new, |f| {
                format!(": {}: {}", f.reason.as_str(), f.message)
            });
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("target {name} is not {}{why}\n", level.as_str()),
        )
    }
}
