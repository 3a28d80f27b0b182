//! `/api/v1/maintenance` (list, start, extend, end; changes need a bearer token) and the
//! gate `/maintenance/{scope}` for applications and load balancers. Reads come from memory;
//! only changes (and reading one window by id) reach the store.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use crate::config::{Config, TOKEN_ENV, Token};
use crate::maintenance::{
    self, Actor, Coverage, Extension, Length, MaintenanceError, StartRequest, Window,
};
use crate::silences::SyncStatus;
use crate::time::Timestamp;

pub fn json_error(status: StatusCode, message: impl Into<String>, field: Option<&str>) -> Response {
    let mut body = json!({ "error": message.into() });
    if let Some(f) = field {
        body["field"] = json!(f);
    }
    (status, axum::Json(body)).into_response()
}

fn refused(e: MaintenanceError) -> Response {
    match e {
        MaintenanceError::Invalid { field, message } => json_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{field}: {message}"),
            Some(field),
        ),
        MaintenanceError::NotFound(m) => json_error(StatusCode::NOT_FOUND, m, None),
        MaintenanceError::Conflict(m) => json_error(StatusCode::CONFLICT, m, None),
        e @ MaintenanceError::Store(_) => {
            json_error(StatusCode::SERVICE_UNAVAILABLE, e.to_string(), None)
        }
    }
}

/// Carries the maintenance token when `Authorization` already carries basic-auth
/// credentials for the port (web configuration `basic_auth_users`).
pub const TOKEN_HEADER: &str = "X-Dbvigil-Token";

/// The token that authorises a change, from `Authorization: Bearer` or `X-Dbvigil-Token`.
/// Every configured token is compared in full, in constant time, whichever matches.
fn authorize(tokens: &[Token], headers: &HeaderMap) -> Result<String, Refusal> {
    if tokens.is_empty() {
        return Err(Refusal {
            status: StatusCode::FORBIDDEN,
            message: format!(
                "maintenance changes are disabled: no API token is configured; set maintenance.tokens_file in the configuration, or {TOKEN_ENV} in dbvigil's environment, and reload"
            ),
        });
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let given = bearer.or_else(|| {
        headers
            .get(TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    });
    let Some(given) = given else {
        return Err(unauthorized(
            "missing token: send `Authorization: Bearer TOKEN`, or `X-Dbvigil-Token: TOKEN` when Authorization carries basic-auth credentials",
        ));
    };
    let mut found: Option<&Token> = None;
    for t in tokens {
        if constant_time_eq(t.secret.0.as_bytes(), given.as_bytes()) {
            found = Some(t);
        }
    }
    found.map(|t| t.name.clone()).ok_or_else(|| {
        unauthorized("the bearer token is not valid: check it against maintenance.tokens_file")
    })
}

fn unauthorized(message: &str) -> Refusal {
    Refusal {
        status: StatusCode::UNAUTHORIZED,
        message: message.to_owned(),
    }
}

/// A request refused before it reaches the maintenance service.
struct Refusal {
    status: StatusCode,
    message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut r = json_error(self.status, self.message, None);
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// Compares without an early exit, so the time taken does not tell how much matched. The
/// length is not secret (tokens are at least 16 characters).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A JSON body: malformed JSON is a 400, a body of the wrong shape (unknown or missing
/// field, wrong type) a 422 naming the field.
fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Refusal> {
    let bytes: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => Refusal {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message: format!("{e}: see docs/maintenance.md for the fields"),
            },
            _ => Refusal {
                status: StatusCode::BAD_REQUEST,
                message: format!("malformed JSON ({e}): send a JSON object"),
            },
        }
    })
}

/// The token first (an unauthorised caller learns nothing about the body), then the body.
fn authorized_body<T: serde::de::DeserializeOwned>(
    config: &Config,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(String, T), Refusal> {
    let token = authorize(&config.maintenance.tokens, headers)?;
    Ok((token, parse_body(body)?))
}

fn parse_time(field: &'static str, text: &str) -> Result<Timestamp, MaintenanceError> {
    // Windows are kept to the millisecond, as the store holds them.
    text.trim()
        .parse::<Timestamp>()
        .map(Timestamp::floor_millis)
        .map_err(|_| MaintenanceError::Invalid {
            field,
            message: format!(
                "{text:?} is not an RFC 3339 time: write it like 2026-11-22T14:30:00Z"
            ),
        })
}

fn parse_duration(field: &'static str, text: &str) -> Result<Duration, MaintenanceError> {
    humantime::parse_duration(text.trim()).map_err(|_| MaintenanceError::Invalid {
        field,
        message: format!(
            "{text:?} is not a duration: write a number with a unit, like 30m or 1h30m"
        ),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    scope: String,
    reason: String,
    duration: Option<String>,
    ends_at: Option<String>,
    starts_at: Option<String>,
    by: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendBody {
    duration: Option<String>,
    ends_at: Option<String>,
    by: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndBody {
    reason: Option<String>,
    by: Option<String>,
}

fn start_request(b: StartBody) -> Result<StartRequest, MaintenanceError> {
    let length = match (&b.duration, &b.ends_at) {
        (Some(_), Some(_)) => {
            return Err(MaintenanceError::Invalid {
                field: "duration",
                message: "give either duration or ends_at, not both".to_owned(),
            });
        }
        (Some(d), None) => Length::For(parse_duration("duration", d)?),
        (None, Some(t)) => Length::Until(parse_time("ends_at", t)?),
        (None, None) => Length::Default,
    };
    Ok(StartRequest {
        scope: b.scope,
        reason: b.reason,
        by: b.by,
        starts_at: b
            .starts_at
            .as_deref()
            .map(|t| parse_time("starts_at", t))
            .transpose()?,
        length,
    })
}

pub async fn start(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let config = s.exporter.config();
    let (token, body): (String, StartBody) = match authorized_body(&config, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let actor = Actor {
        token,
        by: body.by.clone(),
    };
    let result = match start_request(body) {
        Ok(req) => {
            s.exporter
                .maintenance()
                .start(&config, req, &actor, Timestamp::now())
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(w) => {
            s.exporter.maintenance_tick();
            let mut r = (
                StatusCode::CREATED,
                axum::Json(window_json(&w, Timestamp::now(), &s.exporter.silences())),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/maintenance/{}", w.id)) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        Err(e) => refused(e),
    }
}

pub async fn extend(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let config = s.exporter.config();
    let (token, body): (String, ExtendBody) = match authorized_body(&config, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let extension = match (&body.duration, &body.ends_at) {
        (Some(d), None) => parse_duration("duration", d).map(Extension::By),
        (None, Some(t)) => parse_time("ends_at", t).map(Extension::Until),
        _ => Err(MaintenanceError::Invalid {
            field: "duration",
            message: "give either duration (added to the current end) or ends_at".to_owned(),
        }),
    };
    let actor = Actor { token, by: body.by };
    let result = match extension {
        Ok(ext) => {
            s.exporter
                .maintenance()
                .extend(&config, &id, ext, &actor, Timestamp::now())
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(w) => {
            s.exporter.maintenance_tick();
            axum::Json(window_json(&w, Timestamp::now(), &s.exporter.silences())).into_response()
        }
        Err(e) => refused(e),
    }
}

pub async fn end(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let config = s.exporter.config();
    let (token, body): (String, EndBody) = match authorized_body(&config, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let actor = Actor { token, by: body.by };
    match s
        .exporter
        .maintenance()
        .end(&id, body.reason, &actor, Timestamp::now())
        .await
    {
        Ok(w) => {
            s.exporter.maintenance_tick();
            axum::Json(window_json(&w, Timestamp::now(), &s.exporter.silences())).into_response()
        }
        Err(e) => refused(e),
    }
}

pub async fn get(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let now = Timestamp::now();
    // Schedule and app windows exist only in memory; API windows are read from the store
    // so that an old one can still be looked up.
    if let Some(w) = s
        .exporter
        .maintenance_windows(now)
        .into_iter()
        .find(|w| w.id == id && w.source != maintenance::Source::Api)
    {
        return axum::Json(window_json(&w, now, &s.exporter.silences())).into_response();
    }
    if id.starts_with("schedule:") || id.starts_with("app:") {
        return json_error(
            StatusCode::NOT_FOUND,
            format!("no maintenance window {id:?} now: list them with GET /api/v1/maintenance"),
            None,
        );
    }
    match s.exporter.maintenance().get(&id).await {
        Ok(w) => axum::Json(window_json(&w, now, &s.exporter.silences())).into_response(),
        Err(e) => refused(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    scope: Option<String>,
    state: Option<String>,
}

pub async fn list(State(s): State<AppState>, Query(q): Query<ListQuery>) -> Response {
    let now = Timestamp::now();
    let generation = s.exporter.generation();
    let config = &generation.config;
    let windows = generation.maintenance_windows(s.exporter.maintenance(), now);
    let scopes: Option<Vec<&str>> = match &q.scope {
        Some(scope) if !config.is_scope(scope) => {
            return json_error(
                StatusCode::NOT_FOUND,
                format!("unknown scope {scope:?}: name a target, a group, or \"*\""),
                Some("scope"),
            );
        }
        Some(scope) => Some(config.covering_scopes(scope)),
        None => None,
    };
    const STATES: [&str; 5] = ["scheduled", "active", "expired", "ended", "cancelled"];
    if let Some(state) = &q.state {
        if !STATES.contains(&state.as_str()) {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("unknown state {state:?}: use one of {}", STATES.join(", ")),
                Some("state"),
            );
        }
    }
    let silences = s.exporter.silences();
    let shown: Vec<Value> = windows
        .iter()
        .filter(|w| {
            scopes
                .as_ref()
                .is_none_or(|s| s.contains(&w.scope.as_str()))
        })
        .filter(|w| {
            q.state
                .as_ref()
                .is_none_or(|st| w.state(now).as_str() == st)
        })
        .map(|w| window_json(w, now, &silences))
        .collect();
    let stored = s.exporter.maintenance().stored();
    axum::Json(json!({
        "now": now.to_string(),
        "store": {
            "description": s.exporter.maintenance().store_description(),
            "ok": stored.error.is_none() && stored.refreshed_at.is_some(),
            "error": stored.error,
            "refreshed_at": stored.refreshed_at.map(|t| t.to_string()),
        },
        "alertmanager": silences.configured.then(|| json!({
            "ok": silences.error.is_none() && silences.last_success.is_some(),
            "error": silences.error,
            "url": silences.alertmanager,
            "last_attempt_at": silences.last_attempt.map(|t| t.to_string()),
            "last_success_at": silences.last_success.map(|t| t.to_string()),
        })),
        "windows": shown,
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateQuery {
    status: Option<u16>,
}

/// 503 (or `?status=`) with `Retry-After` while a window covers the scope, 200 otherwise.
/// From memory only: load balancers may ask as often as they like.
pub async fn gate(
    State(s): State<AppState>,
    Path(scope): Path<String>,
    Query(q): Query<GateQuery>,
) -> Response {
    let status = match q.status {
        None => StatusCode::SERVICE_UNAVAILABLE,
        Some(code) if (400..=599).contains(&code) => {
            StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
        }
        Some(code) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!(
                    "status {code} is not an error status: use 400-599 (403 for nginx auth_request)"
                ),
                Some("status"),
            );
        }
    };
    let generation = s.exporter.generation();
    let config = &generation.config;
    if !config.is_scope(&scope) {
        return json_error(
            StatusCode::NOT_FOUND,
            format!("unknown scope {scope:?}: name a configured target, a group, or \"*\""),
            None,
        );
    }
    let now = Timestamp::now();
    let windows = generation.maintenance_windows(s.exporter.maintenance(), now);
    let coverage = maintenance::coverage(config, &windows, &scope, now);
    gate_answer(&scope, &coverage, status)
}

fn gate_answer(scope: &str, c: &Coverage<'_>, status: StatusCode) -> Response {
    let no_store = (header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if !c.active() {
        return (
            StatusCode::OK,
            [no_store],
            axum::Json(json!({ "scope": scope, "maintenance": false })),
        )
            .into_response();
    }
    let windows: Vec<Value> = c
        .windows
        .iter()
        .map(|w| {
            json!({
                "id": w.id,
                "scope": w.scope,
                "source": w.source.as_str(),
                "reason": w.reason,
                "ends_at": w.end().map(|t| t.to_string()),
            })
        })
        .collect();
    let body = json!({
        "scope": scope,
        "maintenance": true,
        "message": format!("{scope} is in maintenance: {}", c.windows.iter().map(|w| w.reason.as_str()).collect::<Vec<_>>().join("; ")),
        "ends_at": c.planned_end.map(|t| t.to_string()),
        "retry_after_seconds": c.retry_after_secs,
        "windows": windows,
    });
    (
        status,
        [
            no_store,
            (header::RETRY_AFTER, HeaderValue::from(c.retry_after_secs)),
        ],
        axum::Json(body),
    )
        .into_response()
}

/// A window as the API shows it; `silences` are those Alertmanager holds (or should) for it.
pub fn window_json(w: &Window, now: Timestamp, silences: &SyncStatus) -> Value {
    let state = w.state(now);
    json!({
        "id": w.id,
        "scope": w.scope,
        "source": w.source.as_str(),
        "state": state.as_str(),
        "reason": w.reason,
        "created_by": w.created_by,
        "created_at": w.created_at.to_string(),
        "starts_at": w.starts_at.to_string(),
        "ends_at": w.ends_at.map(|t| t.to_string()),
        "ended_at": w.ended_at.map(|t| t.to_string()),
        "ended_by": w.ended_by,
        "remaining_seconds": match (state, w.end()) {
            (maintenance::WindowState::Active, Some(end)) => Some((end.since(now).as_millis() as u64).div_ceil(1000)),
            _ => None,
        },
        "silences": silences.for_window(&w.id).map(|s| json!({
            "matchers": s.matchers,
            "id": s.id,
            "ends_at": s.ends_at.to_string(),
            "error": s.error,
        })).collect::<Vec<_>>(),
        "events": w.events.iter().map(|e| json!({
            "at": e.at.to_string(),
            "action": e.action.as_str(),
            "by": e.by,
            "token": e.token,
            "detail": e.detail,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"0123456789abcdef", b"0123456789abcdeX"));
        assert!(!constant_time_eq(b"0123456789abcdef", b"0123456789abcde"));
    }
}
