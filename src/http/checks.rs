//! Load-balancer style checks (Patroni-like): plain 200 or 503 answers that HAProxy's
//! `httpchk`, Kubernetes probes and applications can act on without parsing JSON. Each
//! answers GET, HEAD and OPTIONS alike (the router says so), as Patroni's do, so that
//! `option httpchk OPTIONS /...` works.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{AppState, text};
use crate::config::{Check, Eligibility, Endpoint, Kind, format_duration};
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
/// passed that level, 503 when it did not. `/primary` is `/writable` under Patroni's name.
pub(super) async fn target_level(
    State(s): State<AppState>,
    Path((name, word)): Path<(String, String)>,
) -> Response {
    let level = match word.as_str() {
        "writable" | "primary" => Eligibility::Writable,
        "readable" => Eligibility::Readable,
        "reachable" => Eligibility::Reachable,
        _ => {
            return text(
                StatusCode::NOT_FOUND,
                "unknown check: use /targets/NAME/writable (or /primary), /readable, /reachable or /replica\n"
                    .to_owned(),
            );
        }
    };
    let Some(target) = s.exporter.target(&name) else {
        return unknown_target(&name);
    };
    let kind: Kind = target.config.kind;
    let check: Check = level.check(kind);
    if !target.config.has_check(check) {
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "target {name} has no {} check, so it cannot answer /{word}\n",
                check.as_str(),
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
        text(StatusCode::OK, format!("{word}\n"))
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
            format!("target {name} is not {word}{why}\n"),
        )
    }
}

fn unknown_target(name: &str) -> Response {
    text(
        StatusCode::NOT_FOUND,
        format!(
            "unknown target {:?}: configured targets are listed at /api/v1/targets\n",
            super::truncate(name, 64)
        ),
    )
}

/// `GET /targets/{name}/replica[?lag=5s]`, Patroni's `/replica`: 200 when the target's last
/// probe found it read-only (a standby in recovery, or a server with read-only set) and,
/// with `lag=`, its replication lag known and within it. The lag is dbvigil's own measure,
/// the age of the `replica_of` target's heartbeat row as read on this one, so `lag=` asks
/// for time, never bytes as Patroni's does; where dbvigil has no measure (no `replica_of`,
/// no row read yet) the answer is 503, not a pass: a lag limit that cannot be checked is
/// not met.
pub(super) async fn target_replica(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let mut limit = None;
    for (key, value) in &params {
        match key.as_str() {
            "lag" => match humantime::parse_duration(value.trim()) {
                Ok(d) => limit = Some(d),
                Err(_) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "lag={:?} is not a duration: write it with a unit, like lag=5s or lag=500ms (dbvigil measures replication lag in time, not in bytes)\n",
                            super::truncate(value, 64)
                        ),
                    );
                }
            },
            other => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "unknown parameter {:?}: /targets/NAME/replica takes only lag=DURATION, like lag=5s\n",
                        super::truncate(other, 64)
                    ),
                );
            }
        }
    }
    let Some(target) = s.exporter.target(&name) else {
        return unknown_target(&name);
    };
    let snap = target.snapshot();
    let unavailable = |why: String| text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n"));
    let Some(last) = &snap.last else {
        return unavailable(format!("target {name} has not been probed yet"));
    };
    match snap.read_only {
        Some(true) => {}
        Some(false) => {
            return unavailable(format!(
                "target {name} is not a replica: its last probe found it takes writes"
            ));
        }
        None => {
            let why = last.failure.as_ref().map_or_else(String::new, |f| {
                format!(": {}: {}", f.reason.as_str(), f.message)
            });
            return unavailable(format!(
                "target {name} is not known to be a replica: its last probe could not tell whether it is read-only{why}"
            ));
        }
    }
    let Some(limit) = limit else {
        return text(StatusCode::OK, "replica\n".to_owned());
    };
    let primary = match &target.config.endpoint {
        Endpoint::Server(server) => server.replica_of.as_deref(),
        Endpoint::Sqlite { .. } | Endpoint::Tcp { .. } => None,
    };
    let Some(primary) = primary else {
        return unavailable(format!(
            "target {name}'s replication lag is unknown: it has no replica_of, so dbvigil does not measure it; set replica_of to the target of its primary, or leave out lag="
        ));
    };
    match snap.replication_lag {
        None => unavailable(format!(
            "target {name}'s replication lag is unknown: its last probe did not read {primary}'s heartbeat row"
        )),
        Some(lag) if lag > limit => unavailable(format!(
            "target {name} is a replica, but its lag {} is over {}",
            millis(lag),
            format_duration(limit)
        )),
        Some(lag) => text(
            StatusCode::OK,
            format!(
                "replica, lag {} within {}\n",
                millis(lag),
                format_duration(limit)
            ),
        ),
    }
}

/// A lag as people read it, to the millisecond: `7s 200ms`.
fn millis(d: Duration) -> String {
    format_duration(Duration::from_millis(d.as_millis() as u64))
}
