//! OPTIONS on every endpoint. The checks answer it as they answer GET (their routes say
//! so, as Patroni does for HAProxy's `option httpchk OPTIONS`); every other endpoint answers
//! 204 with the methods it takes in `Allow`, instead of a bare 405. Basic auth has answered
//! before (a 401 passes through), so OPTIONS needs the same credentials as GET.

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub async fn options(request: Request, next: Next) -> Response {
    if request.method() != Method::OPTIONS {
        return next.run(request).await;
    }
    let response = next.run(request).await;
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    // The router names the methods a path takes in the 405's `Allow`.
    let listed = response
        .headers()
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut methods: Vec<&str> = listed
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .collect();
    methods.push("OPTIONS");
    let allow =
        HeaderValue::from_str(&methods.join(", ")).unwrap_or(HeaderValue::from_static("OPTIONS"));
    (StatusCode::NO_CONTENT, [(header::ALLOW, allow)]).into_response()
}
