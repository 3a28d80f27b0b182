//! `dbvigil maintenance ...`: start, extend, end, status and list windows on a running
//! exporter, with exit codes a pipeline can branch on.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{ExporterArgs, Reply};
use super::output::Output;

/// Exit codes, documented in `dbvigil maintenance --help` and docs/maintenance.md.
pub mod exit {
    /// Done; for `status`: no maintenance covers the scope.
    pub const OK: u8 = 0;
    /// dbvigil refused the request (bad input, unknown window or scope, window already ended).
    pub const REFUSED: u8 = 1;
    /// The token is missing or wrong, or no token is configured on the exporter.
    pub const AUTH: u8 = 3;
    /// dbvigil could not be reached, or failed (its state store is down, say).
    pub const UNAVAILABLE: u8 = 4;
    /// `status`: a maintenance window covers the scope now.
    pub const IN_MAINTENANCE: u8 = 5;
}

const EXIT_CODES: &str = "Exit codes: 0 done (status: not in maintenance), 1 refused (bad input, unknown window or scope, already ended), 2 usage, 3 token missing or wrong, 4 dbvigil unreachable or failing, 5 status: in maintenance.";

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct MaintenanceArgs {
    #[command(flatten)]
    pub exporter: ExporterArgs,
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub output: Output,
    #[command(subcommand)]
    pub command: MaintenanceCommand,
}

#[derive(Debug, Subcommand)]
pub enum MaintenanceCommand {
    /// Start a window (now, or later with --at).
    Start {
        /// A target, a group, or "*".
        #[arg(long)]
        scope: String,
        /// How long, like 30m (default: maintenance.default_duration).
        #[arg(long = "for", value_name = "DURATION", conflicts_with = "until")]
        duration: Option<String>,
        /// When it ends, as an RFC 3339 time.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// When it starts, as an RFC 3339 time (default: now).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        #[arg(long)]
        reason: String,
        /// Who starts it, for the audit trail (default: $USER@host).
        #[arg(long)]
        by: Option<String>,
    },
    /// Move a window's end later.
    Extend {
        id: String,
        /// Added to the current end, like 15m.
        #[arg(
            long = "for",
            value_name = "DURATION",
            conflicts_with = "until",
            required_unless_present = "until"
        )]
        duration: Option<String>,
        /// The new end, as an RFC 3339 time.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        #[arg(long)]
        by: Option<String>,
    },
    /// End a window now (or cancel one that has not started).
    End {
        id: String,
        /// A note for the audit trail.
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        by: Option<String>,
    },
    /// Whether a maintenance window covers a scope now: exit 0 if not, 5 if it does.
    Status { scope: String },
    /// List current, upcoming and recent windows.
    List {
        /// Only windows that cover this scope.
        #[arg(long)]
        scope: Option<String>,
        /// Only windows in this state: scheduled, active, expired, ended, cancelled.
        #[arg(long)]
        state: Option<String>,
    },
}

pub fn run(args: MaintenanceArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(exit::UNAVAILABLE);
        }
    };
    ExitCode::from(runtime.block_on(execute(args)))
}

fn default_by() -> Option<String> {
    super::user_at_host()
}

async fn execute(args: MaintenanceArgs) -> u8 {
    let token = match args.exporter.token() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return exit::REFUSED;
        }
    };
    let by = |b: &Option<String>| b.clone().or_else(default_by);
    let (method, path, body, needs_token) = match &args.command {
        MaintenanceCommand::Start {
            scope,
            duration,
            until,
            at,
            reason,
            by: who,
        } => {
            let mut b = json!({ "scope": scope, "reason": reason });
            set(&mut b, "duration", duration);
            set(&mut b, "ends_at", until);
            set(&mut b, "starts_at", at);
            set(&mut b, "by", &by(who));
            (
                Method::POST,
                "/api/v1/maintenance".to_owned(),
                Some(b),
                true,
            )
        }
        MaintenanceCommand::Extend {
            id,
            duration,
            until,
            by: who,
        } => {
            let mut b = json!({});
            set(&mut b, "duration", duration);
            set(&mut b, "ends_at", until);
            set(&mut b, "by", &by(who));
            (
                Method::POST,
                format!("/api/v1/maintenance/{}/extend", encode(id)),
                Some(b),
                true,
            )
        }
        MaintenanceCommand::End {
            id,
            reason,
            by: who,
        } => {
            let mut b = json!({});
            set(&mut b, "reason", reason);
            set(&mut b, "by", &by(who));
            (
                Method::POST,
                format!("/api/v1/maintenance/{}/end", encode(id)),
                Some(b),
                true,
            )
        }
        MaintenanceCommand::Status { scope } => (
            Method::GET,
            format!("/maintenance/{}", encode(scope)),
            None,
            false,
        ),
        MaintenanceCommand::List { scope, state } => {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            if let Some(s) = scope {
                query.append_pair("scope", s);
            }
            if let Some(s) = state {
                query.append_pair("state", s);
            }
            let query = query.finish();
            let path = if query.is_empty() {
                "/api/v1/maintenance".to_owned()
            } else {
                format!("/api/v1/maintenance?{query}")
            };
            (Method::GET, path, None, false)
        }
    };
    if needs_token && token.is_none() {
        eprintln!(
            "no token: pass --token, --token-file, or set DBVIGIL_MAINTENANCE_TOKEN (a token from the exporter's maintenance.tokens_file)"
        );
        return exit::AUTH;
    }
    let client = match args.exporter.client() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return exit::REFUSED;
        }
    };
    let reply = match client
        .call(
            method,
            &path,
            token.as_deref().filter(|_| needs_token),
            body.map(|b| b.to_string()),
        )
        .await
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return exit::UNAVAILABLE;
        }
    };
    report(&args, &reply)
}

fn set(body: &mut Value, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        body[key] = json!(v);
    }
}

fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Prints the answer and picks the exit code.
fn report(args: &MaintenanceArgs, reply: &Reply) -> u8 {
    let parsed: Option<Value> = serde_json::from_str(&reply.body).ok();
    let status_command = matches!(args.command, MaintenanceCommand::Status { .. });
    let code = match reply.status {
        200 | 201 => exit::OK,
        503 if status_command && parsed.as_ref().is_some_and(|v| v["maintenance"] == true) => {
            exit::IN_MAINTENANCE
        }
        401 | 403 => exit::AUTH,
        400..=499 => exit::REFUSED,
        _ => exit::UNAVAILABLE,
    };
    let Some(value) = parsed else {
        eprintln!("dbvigil answered {}: {}", reply.status, reply.body.trim());
        return if code == exit::OK {
            exit::UNAVAILABLE
        } else {
            code
        };
    };
    if args.output == Output::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        return code;
    }
    if let Some(error) = value["error"].as_str() {
        eprintln!("refused ({}): {error}", reply.status);
        return code;
    }
    match &args.command {
        MaintenanceCommand::Status { scope } => {
            if code == exit::IN_MAINTENANCE {
                println!(
                    "{scope}: in maintenance until {} (retry after {}s): {}",
                    value["ends_at"]
                        .as_str()
                        .unwrap_or("the application clears its flag"),
                    value["retry_after_seconds"],
                    value["message"].as_str().unwrap_or_default()
                );
            } else {
                println!("{scope}: not in maintenance");
            }
        }
        MaintenanceCommand::List { .. } => {
            let windows = value["windows"].as_array().cloned().unwrap_or_default();
            if windows.is_empty() {
                println!("no maintenance windows");
            }
            for w in &windows {
                println!("{}", describe(w));
            }
            if value["store"]["ok"] == false {
                eprintln!(
                    "warning: the state store is not answering ({}); these are the last windows read",
                    value["store"]["error"].as_str().unwrap_or("unknown error")
                );
            }
        }
        _ => println!("{}", describe(&value)),
    }
    code
}

fn describe(w: &Value) -> String {
    let s = |k: &str| w[k].as_str().unwrap_or("-").to_owned();
    format!(
        "{id}\t{scope}\t{state}\t{source}\t{start} .. {end}\tby {by}\t{reason}",
        id = s("id"),
        scope = s("scope"),
        state = s("state"),
        source = s("source"),
        start = s("starts_at"),
        end = w["ended_at"]
            .as_str()
            .or(w["ends_at"].as_str())
            .unwrap_or("(while the flag is set)"),
        by = s("created_by"),
        reason = s("reason"),
    )
}
