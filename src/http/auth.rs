//! Basic authentication (`basic_auth_users` in the web configuration) for every endpoint but
//! `/-/healthy`, which a process supervisor must reach without credentials, and the paths
//! `basic_auth_excluded_paths` names. A scrape with
//! credentials that passed before is one hash lookup; bcrypt runs only for new ones, off
//! the async threads and a few at a time.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use tokio::sync::Semaphore;

use super::AppState;

/// bcrypt checks at once: two, whatever the number of cores. Credentials that passed are
/// cached, so only new or wrong ones get here, and two at a time serve real clients; a
/// flood of wrong passwords then keeps at most two cores busy and queues here instead of
/// starving the blocking pool that renders scrapes.
static BCRYPT_SLOTS: Semaphore = Semaphore::const_new(2);

pub async fn require_basic_auth(
    State(s): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let web = s.exporter.web();
    let Some(auth) = web.basic_auth.as_ref() else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if path == "/-/healthy" || web.auth_excluded_paths.iter().any(|p| p == path) {
        return next.run(request).await;
    }
    let Some((user, password)) = credentials(request.headers()) else {
        return challenge();
    };
    if auth.cached(&user, &password) {
        return next.run(request).await;
    }
    let passed = {
        let _slot = BCRYPT_SLOTS.acquire().await;
        let web = web.clone();
        tokio::task::spawn_blocking(move || {
            web.basic_auth
                .as_ref()
                .is_some_and(|a| a.verify(&user, &password))
        })
        .await
        .unwrap_or(false)
    };
    if passed {
        next.run(request).await
    } else {
        challenge()
    }
}

/// `Authorization: Basic base64(user:password)`.
fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn challenge() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"dbvigil\""),
            ),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
        ],
        "Unauthorized: send the user and password of basic_auth_users in the web configuration\n",
    )
        .into_response()
}
