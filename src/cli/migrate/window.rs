//! `run --maintenance`: a window on a running exporter around the run.

use reqwest::Method;
use serde_json::{Value, json};

use super::args::RunArgs;
use super::installed_by;
use crate::cli::client::{CallError, HttpConfigError, TokenFileError};

/// An open maintenance window, as the exporter answered.
pub struct Window {
    pub id: String,
    pub ends_at: String,
}

/// Why a window could not be opened (exit 6, nothing ran) or ended.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error("--maintenance needs --target or --maintenance-scope: the scope the window covers")]
    NoScope,
    #[error(
        "--maintenance needs a token: pass --token, --token-file, or set DBVIGIL_MAINTENANCE_TOKEN"
    )]
    NoToken,
    #[error(transparent)]
    TokenFile(#[from] TokenFileError),
    #[error(transparent)]
    HttpConfig(#[from] HttpConfigError),
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("dbvigil answered {status}: {why}")]
    Refused { status: u16, why: String },
}

fn token(run: &RunArgs) -> Result<String, WindowError> {
    run.exporter.token()?.ok_or(WindowError::NoToken)
}

/// Opens a window on `scope` for the run on `label`.
pub async fn open(run: &RunArgs, scope: &str, label: &str) -> Result<Window, WindowError> {
    if scope.is_empty() {
        return Err(WindowError::NoScope);
    }
    let token = token(run)?;
    let mut body = json!({
        "scope": scope,
        "reason": format!("dbvigil migrate run on {label}"),
        "by": installed_by(),
    });
    if let Some(d) = &run.maintenance_for {
        body["duration"] = json!(d);
    }
    let reply = run
        .exporter
        .client()?
        .call(
            Method::POST,
            "/api/v1/maintenance",
            Some(&token),
            Some(body.to_string()),
        )
        .await?;
    let parsed: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
    if reply.status != 201 && reply.status != 200 {
        let why = parsed["error"].as_str().unwrap_or(reply.body.trim());
        return Err(WindowError::Refused {
            status: reply.status,
            why: why.to_owned(),
        });
    }
    Ok(Window {
        id: parsed["id"].as_str().unwrap_or_default().to_owned(),
        ends_at: parsed["ends_at"].as_str().unwrap_or_default().to_owned(),
    })
}

/// Ends the window after a successful run.
pub async fn end(run: &RunArgs, w: &Window) -> Result<(), WindowError> {
    let token = token(run)?;
    let body = json!({ "reason": "migration finished", "by": installed_by() });
    let reply = run
        .exporter
        .client()?
        .call(
            Method::POST,
            &format!("/api/v1/maintenance/{}/end", w.id),
            Some(&token),
            Some(body.to_string()),
        )
        .await?;
    if reply.status == 200 {
        Ok(())
    } else {
        Err(WindowError::Refused {
            status: reply.status,
            why: reply.body.trim().to_owned(),
        })
    }
}
