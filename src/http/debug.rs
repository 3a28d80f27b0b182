//! `/probe?target=NAME&debug=true`, as blackbox_exporter answers it: the probe's own log
//! (each step with its offset from the start), the metrics it would have returned, and the
//! target's configuration as it applied, in plain text for a human. No credential appears:
//! the configuration shows none, and every secret is replaced in the whole answer.

use std::fmt::Write;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;

use super::text;
use crate::config::{Endpoint, TargetConfig, format_duration};
use crate::connect;
use crate::metrics::{self, Format};
use crate::probe::{ProbeReport, Trace, seconds};

/// Whether `debug=` asks for the log; anything but `true` or `false` is refused (with the
/// message to answer 400 with), so that a typo never silently returns plain metrics.
pub fn requested(value: Option<&str>) -> Result<bool, String> {
    match value {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(format!(
            "debug={:?} is not true or false: use debug=true for the probe's log, the metrics and the target's configuration, or leave it out for the metrics alone\n",
            super::truncate(other, 64)
        )),
    }
}

/// A recording trace whose first line says what is about to be probed.
pub fn begin(config: &TargetConfig, timeout: Duration) -> Trace {
    let trace = Trace::recording();
    trace.note(|| {
        let checks: Vec<&str> = config.checks.iter().map(|c| c.as_str()).collect();
        format!(
            "beginning probe of target {} ({} at {}): checks {}, role {}, timeout {}",
            config.name,
            config.kind.as_str(),
            config.describe_endpoint(),
            checks.join(", "),
            config.role.as_str(),
            format_duration(timeout)
        )
    });
    trace
}

/// The answer to a probe with `debug=true`, once it has ended.
pub fn answer(
    config: &TargetConfig,
    report: &ProbeReport,
    trace: &Trace,
    timeout: Duration,
) -> Response {
    let required = config.required_checks(report.read_only);
    trace.note(|| match report.failure(&required) {
        None => format!("probe succeeded in {}", seconds(report.duration)),
        Some(f) => format!(
            "probe failed in {} with reason {}: {}",
            seconds(report.duration),
            f.reason.as_str(),
            f.message
        ),
    });
    let mut body = String::from("Logs for the probe:\n");
    for line in trace.lines() {
        body.push_str(&line);
        body.push('\n');
    }
    body.push_str("\nMetrics that would have been returned:\n");
    body.push_str(&metrics::render_probe(config, report, Format::Classic));
    body.push_str("\nTarget configuration (as it applied to this probe):\n");
    body.push_str(&configuration(config, timeout));
    text(StatusCode::OK, connect::redact(&body, &config.secrets()))
}

/// The target as YAML, with what the probe used: its timeout after the scrape's header,
/// and `<redacted>` where a password is set.
fn configuration(t: &TargetConfig, timeout: Duration) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut y = String::new();
    let mut line = |key: &str, value: String| {
        let _ = writeln!(y, "{key}: {value}");
    };
    line("name", q(&t.name));
    line("kind", t.kind.as_str().to_owned());
    match &t.endpoint {
        Endpoint::Sqlite { path, create } => {
            line("path", q(&path.display().to_string()));
            line("create", create.to_string());
        }
        Endpoint::Tcp { host, port } => {
            line("host", q(host));
            line("port", port.to_string());
        }
        Endpoint::Server(s) => {
            line("host", q(&s.host));
            line("port", s.port.to_string());
            line("user", q(&s.user));
            if s.password.is_some() {
                line("password", "<redacted>".to_owned());
            }
            if let Some(db) = &s.database {
                line("database", q(db));
            }
            let ca = s.tls.ca_file.as_ref().map_or_else(String::new, |f| {
                format!(", ca_file: {}", q(&f.display().to_string()))
            });
            line("tls", format!("{{mode: {}{ca}}}", s.tls.mode.as_str()));
            let schema = s
                .heartbeat_schema
                .as_deref()
                .map_or_else(String::new, |schema| format!("schema: {}, ", q(schema)));
            line(
                "heartbeat",
                format!("{{{schema}create: {}}}", s.create_heartbeat_table),
            );
            if let Some(primary) = &s.replica_of {
                line("replica_of", q(primary));
            }
        }
    }
    let checks: Vec<&str> = t.checks.iter().map(|c| c.as_str()).collect();
    line("checks", format!("[{}]", checks.join(", ")));
    line("role", t.role.as_str().to_owned());
    line("connection", t.connection.as_str().to_owned());
    let configured = format_duration(t.timeout);
    line(
        "timeout",
        if timeout == t.timeout {
            configured
        } else {
            format!(
                "{configured}  # this probe: {}, to fit the scrape timeout",
                format_duration(timeout)
            )
        },
    );
    if let Some(sql) = &t.maintenance_query {
        line("maintenance_query", q(sql));
    }
    if !t.labels.is_empty() {
        let labels: Vec<String> = t
            .labels
            .iter()
            .map(|(k, v)| format!("{k}: {}", q(v)))
            .collect();
        line("labels", format!("{{{}}}", labels.join(", ")));
    }
    y
}
