//! `dbvigil report`: a target's switchovers and outages, read from a running exporter
//! (`/api/v1/targets/NAME/episodes`) and printed as the timeline a postmortem needs, or
//! as the exporter answered (`--output json`). Fetching is `execute`; the text is
//! `render`, a function of the answer alone.

use std::process::ExitCode;

use clap::Args;
use reqwest::Method;
use serde_json::Value;

use super::client::{ExporterArgs, Reply};
use super::output::Output;
use crate::time::Timestamp;

/// Exit codes, documented in `dbvigil report --help`.
pub mod exit {
    /// The report was printed, whatever it says.
    pub const OK: u8 = 0;
    /// dbvigil has no target of that name.
    pub const UNKNOWN_TARGET: u8 = 1;
    /// Usage: bad flags, a --since or --until dbvigil cannot read, a bad --http.config.file.
    pub const USAGE: u8 = 2;
    /// dbvigil's port refused the credentials of --http.config.file.
    pub const AUTH: u8 = 3;
    /// dbvigil could not be reached, or failed.
    pub const UNAVAILABLE: u8 = 4;
}

const EXIT_CODES: &str = "Exit codes: 0 printed (outages or not), 1 unknown target, 2 usage (flags, --since or --until, --http.config.file), 3 dbvigil's port refused the credentials of --http.config.file, 4 dbvigil unreachable or failing.";

#[derive(Debug, Args)]
#[command(
    after_help = EXIT_CODES,
    // Read-only: the maintenance token the shared flags offer has no use here.
    mut_arg("token", |a| a.hide(true)),
    mut_arg("token_file", |a| a.hide(true))
)]
pub struct ReportArgs {
    #[command(flatten)]
    pub exporter: ExporterArgs,
    /// The configured target to report on.
    #[arg(long)]
    pub target: String,
    /// Start of the range: an RFC 3339 time (2026-12-03T14:00:00Z) or a duration back from
    /// now (90s, 15m, 2h, 1d). Default: everything the exporter keeps.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// End of the range, written as --since (default: now).
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// text: the timeline for a postmortem; json: the exporter's answer as it came.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

pub fn run(args: ReportArgs) -> ExitCode {
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
    ExitCode::from(runtime.block_on(execute(&args)))
}

async fn execute(args: &ReportArgs) -> u8 {
    let client = match args.exporter.client() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return exit::USAGE;
        }
    };
    let path = episodes_path(&args.target, args.since.as_deref(), args.until.as_deref());
    match client.call(Method::GET, &path, None, None).await {
        Ok(reply) => print(args, &reply),
        Err(e) => {
            eprintln!("{e}");
            exit::UNAVAILABLE
        }
    }
}

/// The API path, with the range passed on as the user wrote it: dbvigil reads it.
fn episodes_path(target: &str, since: Option<&str>, until: Option<&str>) -> String {
    let name = percent_encoding::utf8_percent_encode(target, percent_encoding::NON_ALPHANUMERIC);
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if let Some(s) = since {
        query.append_pair("since", s);
    }
    if let Some(u) = until {
        query.append_pair("until", u);
    }
    let query = query.finish();
    let path = format!("/api/v1/targets/{name}/episodes");
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

/// Prints the report or the refusal, and picks the exit code.
fn print(args: &ReportArgs, reply: &Reply) -> u8 {
    let parsed: Option<Value> = serde_json::from_str(&reply.body).ok();
    let code = match reply.status {
        200 => exit::OK,
        400 => exit::USAGE,
        401 | 403 => exit::AUTH,
        404 => exit::UNKNOWN_TARGET,
        _ => exit::UNAVAILABLE,
    };
    let error = parsed.as_ref().and_then(|v| v["error"].as_str());
    match (code, &parsed, error) {
        (exit::OK, Some(value), None) => {
            match args.output {
                Output::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(value).unwrap_or_default()
                ),
                Output::Text => print!("{}", render(value)),
            }
            exit::OK
        }
        (_, _, Some(error)) => {
            eprintln!("refused ({}): {error}", reply.status);
            if code == exit::OK {
                exit::UNAVAILABLE
            } else {
                code
            }
        }
        (exit::UNKNOWN_TARGET, _, None) => {
            eprintln!(
                "dbvigil at {} has no /api/v1/targets/NAME/episodes (404): is it a dbvigil older than this command?",
                args.exporter.url
            );
            exit::UNAVAILABLE
        }
        _ => {
            eprintln!("dbvigil answered {}: {}", reply.status, reply.body.trim());
            if code == exit::OK {
                exit::UNAVAILABLE
            } else {
                code
            }
        }
    }
}

/// The report as text, from the API's answer alone. Times are UTC to the millisecond,
/// durations in seconds with two decimals; switchovers and outages oldest first.
pub fn render(v: &Value) -> String {
    let mut out = Vec::new();
    header(&mut out, v);
    let switchovers = items(&v["switchovers"], "at");
    let episodes = items(&v["episodes"], "started_at");
    out.push(String::new());
    if switchovers.is_empty() {
        out.push("No switchover in this range.".to_owned());
    }
    let counted_since = instant(&v["writes_lost_counted_since"]);
    for sw in switchovers {
        switchover(&mut out, sw, counted_since);
        out.push(String::new());
    }
    if episodes.is_empty() {
        out.push("No outage in this range.".to_owned());
    } else {
        out.push("Outages".to_owned());
    }
    for e in episodes {
        episode(&mut out, e, list(&v["switchovers"]));
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

fn header(out: &mut Vec<String>, v: &Value) {
    let target = v["target"].as_str().unwrap_or("?");
    let from = match &v["since"] {
        Value::Null => "all this exporter keeps, up".to_owned(),
        since => when(since, None),
    };
    let to = match &v["until"] {
        Value::Null => format!("now ({})", when(&v["now"], None)),
        until => when(until, None),
    };
    out.push(format!("Target {target}, {from} to {to}"));
    if let Some(interval) = v["interval_seconds"].as_f64() {
        out.push(format!(
            "Probe interval {interval} s: each time below is within one interval of the truth."
        ));
    }
    // Only a write check can lose writes: without one in the range there is nothing to say.
    let writes_checked = [&v["switchovers"], &v["episodes"]]
        .into_iter()
        .flat_map(list)
        .any(|i| !i["check_downtime"]["write"].is_null());
    match (
        instant(&v["writes_lost_counted_since"]),
        instant(&v["since"]),
    ) {
        (None, _) if writes_checked => out.push(
            "This exporter has had no write acknowledged: acknowledged writes lost cannot be counted."
                .to_owned(),
        ),
        (None, _) => {}
        (Some(counted), None) => out.push(format!(
            "Acknowledged writes lost are counted from {}, this exporter's first acknowledged write: a loss before it is not seen.",
            full(counted)
        )),
        (Some(counted), Some(since)) if counted > since => out.push(format!(
            "Acknowledged writes lost are counted only from {}, this exporter's first acknowledged write (dbvigil started after the range began): a loss before it is not seen.",
            full(counted)
        )),
        (Some(_), Some(_)) => {}
    }
}

/// The list under `key`, oldest first (the API answers newest first).
fn items<'a>(list: &'a Value, key: &str) -> Vec<&'a Value> {
    let mut items: Vec<&Value> = list
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    items.sort_by_key(|i| instant(&i[key]));
    items
}

/// One line of a switchover's timeline; equal times keep the order of `rank`.
struct Event {
    at: Option<Timestamp>,
    rank: usize,
    text: String,
}

/// Checks in the order a failure reaches them, for lines that start at the same time.
const CHECKS: [&str; 4] = ["tcp", "connect", "read", "write"];

fn check_rank(check: &str) -> usize {
    CHECKS
        .iter()
        .position(|c| *c == check)
        .unwrap_or(CHECKS.len())
}

fn switchover(out: &mut Vec<String>, sw: &Value, counted_since: Option<Timestamp>) {
    let at = instant(&sw["at"]);
    out.push(format!("Switchover at {}", when(&sw["at"], None)));
    out.push(format!("  from  {}", who(&sw["from"])));
    out.push(format!("  to    {}", who(&sw["to"])));
    let mut events = Vec::new();
    let mut event = |t: &Value, rank: usize, text: String| {
        if !t.is_null() {
            events.push(Event {
                at: instant(t),
                rank,
                text: format!("{}  {text}", when(t, at)),
            });
        }
    };
    event(
        &sw["last_write_on_old"],
        0,
        "last write on the old server".to_owned(),
    );
    event(&sw["at"], 1, "the new server answers".to_owned());
    for p in list(&sw["read_only"]) {
        event(&p["from"], 2, period("read-only", p, at));
    }
    for (check, periods) in checks(&sw["check_downtime"]) {
        for p in list(periods) {
            event(
                &p["from"],
                3 + check_rank(check),
                period(&format!("{check} failing"), p, at),
            );
        }
    }
    event(
        &sw["first_write_on_new"],
        3 + CHECKS.len() + 1,
        "first write on the new server".to_owned(),
    );
    events.sort_by_key(|e| (e.at, e.rank));
    out.extend(events.into_iter().map(|e| format!("  {}", e.text)));

    let mut unavailable = Vec::new();
    let downtime = &sw["check_downtime"];
    match sw["write_gap_seconds"].as_f64() {
        Some(gap) => unavailable.push(format!("writes {}", secs(gap))),
        None if sw["first_write_on_new"].is_null() && !downtime["write"].is_null() => {
            unavailable.push("writes not known yet (no write on the new server)".to_owned())
        }
        None if sw["last_write_on_old"].is_null() && !downtime["write"].is_null() => {
            unavailable.push("writes not known (no write on the old server seen)".to_owned())
        }
        None => {}
    }
    for (check, noun) in [
        ("read", "reads"),
        ("connect", "connections"),
        ("tcp", "tcp"),
    ] {
        if !downtime[check].is_null() {
            unavailable.push(format!("{noun} {}", total(&downtime[check])));
        }
    }
    if !unavailable.is_empty() {
        out.push(format!("  unavailable: {}", unavailable.join(", ")));
    }
    let lost = match lost(&sw["lost_writes"]) {
        Some(l) => l,
        None if sw["first_write_on_new"].is_null() => {
            "not known yet: no write on the new server".to_owned()
        }
        None if counted_since.is_none_or(|c| at.is_some_and(|at| c > at)) => {
            "not seen: this exporter had no acknowledged write before the switchover".to_owned()
        }
        None => "none found".to_owned(),
    };
    out.push(format!("  acknowledged writes lost: {lost}"));
}

fn episode(out: &mut Vec<String>, e: &Value, switchovers: &[Value]) {
    let start = instant(&e["started_at"]);
    let (end, so_far) = match &e["ended_at"] {
        Value::Null => ("now".to_owned(), " so far"),
        end => (when(end, start), ""),
    };
    let mut line = format!(
        "  {} to {end}  {}{so_far}  {}",
        when(&e["started_at"], None),
        secs(e["duration_seconds"].as_f64().unwrap_or(0.0)),
        e["reason"].as_str().unwrap_or("?"),
    );
    if let Some(message) = e["message"].as_str().filter(|m| !m.is_empty()) {
        line.push_str(": ");
        line.push_str(&message.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    let failed: Vec<&str> = list(&e["failed_checks"])
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    if !failed.is_empty() {
        line.push_str(&format!("  ({} failed)", failed.join(", ")));
    }
    out.push(line);
    let (before, after) = (&e["identity_before"], &e["identity_after"]);
    let switched = &e["switchover"];
    if !switched.is_null() {
        // Told whole above when the report holds it; else named here, with who and whom.
        let listed = switchovers.iter().any(|sw| sw["at"] == switched["at"]);
        out.push(if listed {
            format!(
                "    another server answered after it: the switchover at {} above",
                when(&switched["at"], start)
            )
        } else {
            format!(
                "    another server answered after it: the switchover at {}, {} -> {}",
                when(&switched["at"], start),
                who(&switched["from"]),
                who(&switched["to"])
            )
        });
    } else if !before.is_null() && !after.is_null() && before["key"] != after["key"] {
        out.push(format!(
            "    another server answered after it: {} -> {}",
            who(before),
            who(after)
        ));
    }
    if let Some(l) = lost(&e["lost_writes"]) {
        out.push(format!("    acknowledged writes lost: {l}"));
    }
}

/// A period's line: what held, until when, and for how long.
fn period(what: &str, p: &Value, day: Option<Timestamp>) -> String {
    let d = secs(p["duration_seconds"].as_f64().unwrap_or(0.0));
    match &p["to"] {
        Value::Null => format!("{what:<30}  until now  ({d} so far)"),
        to => format!("{what:<30}  until {}  ({d})", when(to, day)),
    }
}

/// The periods' total, "so far" when one is still going on.
fn total(periods: &Value) -> String {
    let periods = list(periods);
    // A fold from +0.0: an empty `sum()` of f64 is -0.0, which prints as "-0.00".
    let sum = periods
        .iter()
        .filter_map(|p| p["duration_seconds"].as_f64())
        .fold(0.0, |a, b| a + b);
    if periods.iter().any(|p| p["to"].is_null()) {
        format!("{} so far", secs(sum))
    } else {
        secs(sum)
    }
}

/// The configured checks' periods, in the order a failure reaches them.
fn checks(downtime: &Value) -> Vec<(&str, &Value)> {
    let mut checks: Vec<(&str, &Value)> = downtime
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.as_str(), v)).collect())
        .unwrap_or_default();
    checks.sort_by_key(|(c, _)| (check_rank(c), *c));
    checks
}

fn lost(l: &Value) -> Option<String> {
    let writes = l["writes"].as_u64().filter(|n| *n > 0)?;
    Some(format!(
        "{writes} heartbeat{} spanning {} (a lower bound: heartbeats are one per interval)",
        if writes == 1 { "" } else { "s" },
        secs(l["span_seconds"].as_f64().unwrap_or(0.0))
    ))
}

fn who(identity: &Value) -> String {
    match (identity["key"].as_str(), identity["version"].as_str()) {
        (Some(key), Some(version)) if !version.is_empty() => format!("{key}, version {version}"),
        (Some(key), _) => key.to_owned(),
        _ => "unknown".to_owned(),
    }
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn secs(s: f64) -> String {
    format!("{s:.2} s")
}

fn instant(v: &Value) -> Option<Timestamp> {
    v.as_str()?.parse().ok()
}

/// A time from the answer: the time of day when it falls on the same UTC day as `day`,
/// else the whole RFC 3339 form; as written when it is not a time.
fn when(v: &Value, day: Option<Timestamp>) -> String {
    match (instant(v), day) {
        (Some(t), Some(d)) if same_day(t, d) => strftime(t, "%H:%M:%S%.3f"),
        (Some(t), _) => full(t),
        (None, _) => v.as_str().unwrap_or("?").to_owned(),
    }
}

fn full(t: Timestamp) -> String {
    strftime(t, "%Y-%m-%dT%H:%M:%S%.3fZ")
}

fn strftime(t: Timestamp, format: &str) -> String {
    match jiff::Timestamp::from_microsecond(t.as_micros()) {
        Ok(j) => j.strftime(format).to_string(),
        Err(_) => t.to_string(),
    }
}

fn same_day(a: Timestamp, b: Timestamp) -> bool {
    const DAY: i64 = 86_400_000_000;
    a.as_micros().div_euclid(DAY) == b.as_micros().div_euclid(DAY)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn identity(n: u32) -> Value {
        json!({"key": format!("sysid=730{n} timeline=1 addr=10.0.0.{n}:5432"), "version": "PostgreSQL 15.4"})
    }

    fn span(from: &str, to: Option<&str>, seconds: f64) -> Value {
        json!({
            "from": format!("2026-12-03T{from}Z"),
            "to": to.map(|t| format!("2026-12-03T{t}Z")),
            "duration_seconds": seconds,
        })
    }

    /// A blue/green switchover as the API tells it: blue read-only for four seconds, then
    /// nobody answering for one, then green.
    fn blue_green() -> Value {
        json!({
            "target": "app",
            "since": "2026-12-03T13:05:00Z",
            "until": null,
            "now": "2026-12-03T14:05:00.123Z",
            "interval_seconds": 0.25,
            "writes_lost_counted_since": "2026-12-03T13:30:00.25Z",
            "switchovers": [{
                "at": "2026-12-03T14:02:04.3Z",
                "from": identity(1),
                "to": identity(2),
                "last_write_on_old": "2026-12-03T14:02:00.05Z",
                "first_write_on_new": "2026-12-03T14:02:04.55Z",
                "write_gap_seconds": 4.5,
                "lost_writes": null,
                "check_downtime": {
                    "connect": [span("14:02:03.3", Some("14:02:04.3"), 1.0)],
                    "read": [span("14:02:03.3", Some("14:02:04.3"), 1.0)],
                    "write": [span("14:02:00.3", Some("14:02:04.55"), 4.25)],
                },
                "read_only": [span("14:02:00.3", Some("14:02:04.3"), 4.0)],
            }],
            "episodes": [{
                "started_at": "2026-12-03T14:02:03.3Z",
                "ended_at": "2026-12-03T14:02:04.3Z",
                "duration_seconds": 1.0,
                "reason": "refused",
                "message": "connection refused\n(os error 111)",
                "failed_checks": ["connect", "read", "write"],
                "lost_writes": null,
                "identity_before": identity(1),
                "identity_after": identity(2),
                "check_downtime": {},
                "read_only": [],
                "switchover": {"at": "2026-12-03T14:02:04.3Z", "from": identity(1), "to": identity(2)},
            }],
        })
    }

    #[test]
    fn a_switchover_reads_as_a_timeline_in_the_order_things_happened() {
        let text = render(&blue_green());
        let expected = [
            "Target app, 2026-12-03T13:05:00.000Z to now (2026-12-03T14:05:00.123Z)",
            "Probe interval 0.25 s: each time below is within one interval of the truth.",
            "Acknowledged writes lost are counted only from 2026-12-03T13:30:00.250Z, this exporter's first acknowledged write (dbvigil started after the range began): a loss before it is not seen.",
            "",
            "Switchover at 2026-12-03T14:02:04.300Z",
            "  from  sysid=7301 timeline=1 addr=10.0.0.1:5432, version PostgreSQL 15.4",
            "  to    sysid=7302 timeline=1 addr=10.0.0.2:5432, version PostgreSQL 15.4",
            "  14:02:00.050  last write on the old server",
            "  14:02:00.300  read-only                       until 14:02:04.300  (4.00 s)",
            "  14:02:00.300  write failing                   until 14:02:04.550  (4.25 s)",
            "  14:02:03.300  connect failing                 until 14:02:04.300  (1.00 s)",
            "  14:02:03.300  read failing                    until 14:02:04.300  (1.00 s)",
            "  14:02:04.300  the new server answers",
            "  14:02:04.550  first write on the new server",
            "  unavailable: writes 4.50 s, reads 1.00 s, connections 1.00 s",
            "  acknowledged writes lost: none found",
            "",
            "Outages",
            "  2026-12-03T14:02:03.300Z to 14:02:04.300  1.00 s  refused: connection refused (os error 111)  (connect, read, write failed)",
            "    another server answered after it: the switchover at 14:02:04.300 above",
        ];
        assert_eq!(text.lines().collect::<Vec<_>>(), expected, "\n{text}");
        // A switchover outside the range (the outage began inside it) is named in full,
        // and without one the outage names both servers itself.
        let mut v = blue_green();
        v["switchovers"] = json!([]);
        let text = render(&v);
        assert!(
            text.ends_with(
                "\n    another server answered after it: the switchover at 14:02:04.300, sysid=7301 timeline=1 addr=10.0.0.1:5432, version PostgreSQL 15.4 -> sysid=7302 timeline=1 addr=10.0.0.2:5432, version PostgreSQL 15.4\n"
            ),
            "{text}"
        );
        v["episodes"][0]["switchover"] = Value::Null;
        let text = render(&v);
        assert!(
            text.ends_with(
                "\n    another server answered after it: sysid=7301 timeline=1 addr=10.0.0.1:5432, version PostgreSQL 15.4 -> sysid=7302 timeline=1 addr=10.0.0.2:5432, version PostgreSQL 15.4\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn writes_lost_and_periods_still_going_on_are_said_so() {
        let mut v = blue_green();
        v["since"] = Value::Null;
        let sw = &mut v["switchovers"][0];
        sw["lost_writes"] = json!({"writes": 12, "span_seconds": 2.4});
        sw["check_downtime"]["tcp"] = json!([]);
        sw["check_downtime"]["read"] = json!([
            span("14:02:01.3", Some("14:02:01.55"), 0.25),
            span("14:02:03.3", None, 121.0),
        ]);
        let e = &mut v["episodes"][0];
        e["ended_at"] = Value::Null;
        e["lost_writes"] = json!({"writes": 1, "span_seconds": 0.0});
        e["identity_after"] = Value::Null;
        e["switchover"] = Value::Null;
        e["message"] = json!("");
        let text = render(&v);
        let lines: Vec<&str> = text.lines().collect();
        for line in [
            "Target app, all this exporter keeps, up to now (2026-12-03T14:05:00.123Z)",
            "Acknowledged writes lost are counted from 2026-12-03T13:30:00.250Z, this exporter's first acknowledged write: a loss before it is not seen.",
            "  14:02:01.300  read failing                    until 14:02:01.550  (0.25 s)",
            "  14:02:03.300  read failing                    until now  (121.00 s so far)",
            "  unavailable: writes 4.50 s, reads 121.25 s so far, connections 1.00 s, tcp 0.00 s",
            "  acknowledged writes lost: 12 heartbeats spanning 2.40 s (a lower bound: heartbeats are one per interval)",
            "  2026-12-03T14:02:03.300Z to now  1.00 s so far  refused  (connect, read, write failed)",
            "    acknowledged writes lost: 1 heartbeat spanning 0.00 s (a lower bound: heartbeats are one per interval)",
        ] {
            assert!(lines.contains(&line), "no line {line:?} in\n{text}");
        }
        assert!(!text.contains("another server"), "{text}");
    }

    #[test]
    fn writes_not_counted_yet_are_said_only_where_a_write_check_runs() {
        let mut v = blue_green();
        v["writes_lost_counted_since"] = Value::Null;
        v["switchovers"][0]["last_write_on_old"] = Value::Null;
        let said = "This exporter has had no write acknowledged: acknowledged writes lost cannot be counted.";
        let text = render(&v);
        assert_eq!(text.lines().nth(2), Some(said), "{text}");
        assert!(
            text.contains("  acknowledged writes lost: not seen: this exporter had no acknowledged write before the switchover\n"),
            "{text}"
        );
        // A tcp target in an outage: no write check, nothing to say about writes.
        v["switchovers"] = json!([]);
        v["episodes"][0]["check_downtime"] = json!({"tcp": [span("14:02:03.3", None, 1.0)]});
        let text = render(&v);
        assert!(!text.contains(said), "{text}");
    }

    #[test]
    fn a_switchover_without_a_write_on_the_new_server_says_what_is_not_known_yet() {
        let mut v = blue_green();
        let sw = &mut v["switchovers"][0];
        sw["first_write_on_new"] = Value::Null;
        sw["write_gap_seconds"] = Value::Null;
        sw["check_downtime"]["write"] = json!([span("14:02:00.3", None, 300.0)]);
        let text = render(&v);
        assert!(!text.contains("first write on the new server"), "{text}");
        for line in [
            "  14:02:00.300  write failing                   until now  (300.00 s so far)",
            "  unavailable: writes not known yet (no write on the new server), reads 1.00 s, connections 1.00 s",
            "  acknowledged writes lost: not known yet: no write on the new server",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in\n{text}"
            );
        }
        // An exporter started after the old server's last write has nothing to compare.
        let mut v = blue_green();
        v["writes_lost_counted_since"] = json!("2026-12-03T14:02:04.55Z");
        let text = render(&v);
        assert!(
            text.contains("  acknowledged writes lost: not seen: this exporter had no acknowledged write before the switchover\n"),
            "{text}"
        );
    }

    #[test]
    fn an_empty_range_says_so() {
        let v = json!({
            "target": "app", "since": "2026-12-03T13:05:00Z", "until": "2026-12-03T13:10:00Z",
            "now": "2026-12-04T00:00:00Z", "interval_seconds": 1.0,
            "writes_lost_counted_since": "2026-12-03T12:00:00Z",
            "switchovers": [], "episodes": [],
        });
        assert_eq!(
            render(&v),
            "Target app, 2026-12-03T13:05:00.000Z to 2026-12-03T13:10:00.000Z\n\
             Probe interval 1 s: each time below is within one interval of the truth.\n\
             \n\
             No switchover in this range.\n\
             No outage in this range.\n"
        );
    }

    #[test]
    fn times_on_another_day_are_written_whole_and_lists_read_oldest_first() {
        let mut v = blue_green();
        let mut older = v["episodes"][0].clone();
        older["started_at"] = json!("2026-12-02T23:59:59.9Z");
        older["ended_at"] = json!("2026-12-03T00:00:00.1Z");
        older["duration_seconds"] = json!(0.2);
        older["identity_after"] = older["identity_before"].clone();
        older["switchover"] = Value::Null;
        v["episodes"].as_array_mut().unwrap().push(older);
        v["switchovers"][0]["last_write_on_old"] = json!("2026-12-02T23:59:59.95Z");
        let text = render(&v);
        let outages: Vec<&str> = text.lines().skip_while(|l| *l != "Outages").collect();
        assert!(
            outages[1].starts_with(
                "  2026-12-02T23:59:59.900Z to 2026-12-03T00:00:00.100Z  0.20 s  refused"
            ),
            "{text}"
        );
        assert!(
            outages[2].starts_with("  2026-12-03T14:02:03.300Z to 14:02:04.300  1.00 s"),
            "{text}"
        );
        assert!(
            text.contains("\n  2026-12-02T23:59:59.950Z  last write on the old server\n"),
            "{text}"
        );
    }

    #[test]
    fn the_range_is_passed_on_as_written_and_encoded() {
        assert_eq!(
            episodes_path("app", None, None),
            "/api/v1/targets/app/episodes"
        );
        assert_eq!(
            episodes_path("a/b c", Some("2026-12-03T14:00:00+01:00"), Some("15m")),
            "/api/v1/targets/a%2Fb%20c/episodes?since=2026-12-03T14%3A00%3A00%2B01%3A00&until=15m"
        );
    }
}
