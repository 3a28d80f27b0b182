//! Input meant to hurt: YAML bombs, deep nesting, huge files, and arbitrary text thrown at
//! every parser of user input (the configuration, the CSV plan, script names, the
//! maintenance API's JSON bodies). Each gets a clear error, never a panic, a hang or
//! unbounded memory. The SQL statement splitter's hostile text is in its own tests,
//! src/migrate/split/tests.rs.
//!
//! The property tests run a modest number of cases by default; `PROPTEST_CASES=N` runs N
//! cases of each instead (docs/reliability.md, "Hostile input").

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::TestExporter;
use dbvigil::config;
use dbvigil::maintenance::Window;
use dbvigil::migrate::{plan, script};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};

/// Runs `check-config` on `text`: its exit code and stderr. It must answer within seconds
/// and within bounded memory.
fn check_config(text: &[u8]) -> (i32, String) {
    let dir = common::tempdir();
    let path = dir.path().join("dbvigil.yml");
    std::fs::write(&path, text).unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_dbvigil"))
        .args(["check-config", "--config.file"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "check-config took {:?}",
        started.elapsed()
    );
    // The largest resident set of any child this test process has waited for, in KiB.
    // SAFETY: getrusage writes into the struct it is given.
    let peak_kib = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage.ru_maxrss
    };
    assert!(
        peak_kib < 256 * 1024,
        "check-config peaked at {peak_kib} KiB"
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_alias_bomb_is_refused() {
    // The billion laughs, placed where the schema expects a list of names.
    let mut yaml = String::from("targets:\n  - {name: t, kind: tcp, host: h, port: 1}\ngroups:\n");
    yaml.push_str("  - name: g0\n    members: &a0 [t, t, t, t, t, t, t, t, t]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        yaml.push_str(&format!("  - name: g{i}\n    members: &a{i} [{refs}]\n"));
    }
    let (rc, stderr) = check_config(yaml.as_bytes());
    assert_eq!(rc, 1, "{stderr}");
    // Refused at the first alias that expands into a list where names belong.
    assert!(
        stderr.contains("dbvigil.yml:7:19: expected string scalar"),
        "{stderr}"
    );
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let depth = 100_000;
    let yaml = format!("targets: {}{}\n", "[".repeat(depth), "]".repeat(depth));
    let (rc, stderr) = check_config(yaml.as_bytes());
    assert_eq!(rc, 1, "{stderr}");
    assert!(stderr.contains("recursion limit exceeded"), "{stderr}");
}

#[test]
fn a_huge_file_is_refused_before_it_is_read() {
    let dir = common::tempdir();
    let path = dir.path().join("huge.yml");
    let file = std::fs::File::create(&path).unwrap();
    // Sparse: 1 GiB on paper, nothing on disk.
    file.set_len(1 << 30).unwrap();
    let err = config::load_file(&path, "test").unwrap_err().to_string();
    assert!(
        err.contains("is 1073741824 bytes; dbvigil reads at most 16777216"),
        "{err}"
    );
}

/// Text that looks enough like YAML to get past the first character.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("targets:".to_owned()),
        Just("\n  - ".to_owned()),
        Just("name: ".to_owned()),
        Just("kind: ".to_owned()),
        Just("postgres".to_owned()),
        Just("sqlite".to_owned()),
        Just("url: ".to_owned()),
        Just("postgres://u:p@h:5432/d".to_owned()),
        Just("migrations: {".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("&a ".to_owned()),
        Just("*a".to_owned()),
        Just("${X}".to_owned()),
        Just("\n    ".to_owned()),
        Just("interval: ".to_owned()),
        Just("1s".to_owned()),
        "[ -~]{0,8}".prop_map(|s| s),
        any::<String>(),
    ];
    prop::collection::vec(token, 0..40).prop_map(|t| t.concat())
}

/// `PROPTEST_CASES` when set, else `default`: the short run in `cargo test`, a long one
/// on demand.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(512)))]

    #[test]
    fn the_config_loader_never_panics(text in yamlish()) {
        let _ = config::parse(&text, "fuzz.yml", Path::new("."), "test");
    }

    #[test]
    fn the_csv_plan_reader_never_panics(text in prop::collection::vec(
        prop_oneof![Just(plan::HEADER.join(",")), Just("\n".to_owned()), Just(",".to_owned()),
                    Just("\"".to_owned()), Just("5432".to_owned()), Just("V1__a.sql".to_owned()),
                    any::<String>()],
        0..30,
    ).prop_map(|t| t.concat())) {
        let _ = plan::parse(&text, Path::new("."), None);
    }

    #[test]
    fn script_names_and_versions_never_panic(name in "[V0-9._R_U]{0,12}(__)?[a-z_ ]{0,8}(\\.sql)?") {
        if let Ok((version, _)) = script::parse_name(&name) {
            // A parsed version orders consistently with itself and prints back as numbers.
            prop_assert_eq!(version.cmp(&version), std::cmp::Ordering::Equal);
            prop_assert!(version.to_string().split('.').all(|p| p.parse::<u128>().is_ok() || p.len() > 30));
        }
        let _ = script::Version::parse(&name);
    }
}

// ---------------------------------------------------------------------------------------
// The maintenance API's JSON bodies
// ---------------------------------------------------------------------------------------

const API_TOKEN: &str = "hostile-input-token-0123456789";

/// Two SQLite targets `a` and `b`, a group `g` = [a], and the token API_TOKEN; windows last
/// at most 2h.
fn api_config(dir: &Path) -> String {
    std::fs::write(dir.join("tokens"), format!("fuzz {API_TOKEN}\n")).unwrap();
    "targets:\n\
     \x20 - {name: a, kind: sqlite, path: a.db, create: true}\n\
     \x20 - {name: b, kind: sqlite, path: b.db, create: true}\n\
     groups:\n  - {name: g, members: [a]}\n\
     maintenance:\n  tokens_file: tokens\n  max_duration: 2h\n  default_duration: 10m\n"
        .to_owned()
}

#[derive(Debug, Clone)]
enum Route {
    Start,
    /// `extend` or `end` of the window kept open for the cases, or of an odd id.
    Change {
        action: &'static str,
        id: Option<&'static str>,
    },
}

#[derive(Clone)]
struct ApiCase {
    route: Route,
    body: Vec<u8>,
}

impl std::fmt::Debug for ApiCase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = String::from_utf8_lossy(&self.body);
        let shown: String = body.chars().take(300).collect();
        write!(
            f,
            "{:?} with {} bytes: {shown:?}",
            self.route,
            self.body.len()
        )
    }
}

/// RFC 3339 times relative to now (the run lasts minutes at most; windows at most 2h).
struct Times {
    past: String,
    soon: String,
    later: String,
    too_far: String,
}

impl Times {
    fn now() -> Times {
        let at = |minutes: i64| {
            (jiff::Timestamp::now() + jiff::SignedDuration::from_mins(minutes)).to_string()
        };
        Times {
            past: at(-120),
            soon: at(20),
            later: at(90),
            too_far: at(600),
        }
    }
}

fn json_text(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// Any JSON value, nested a few levels.
fn any_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        prop::sample::select(vec!["a", "*", "30m", "g", "0s", "scope", "reason"])
            .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        prop::sample::select(vec![
                            "scope",
                            "reason",
                            "duration",
                            "ends_at",
                            "starts_at",
                            "by"
                        ])
                        .prop_map(str::to_owned),
                        any::<String>(),
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// JSON text for one field: usually of the right kind but odd, sometimes right, sometimes
/// of another type entirely.
fn field_value(field: &'static str, t: &Times) -> BoxedStrategy<String> {
    let valid: Vec<String> = match field {
        "scope" => vec!["a", "b", "g", "*"],
        "reason" => vec!["schema upgrade", "  padded  ", "żółw 🐢"],
        "duration" => vec!["30m", "1h", "1h 30m", "90s"],
        "ends_at" | "starts_at" => vec![t.soon.as_str(), t.later.as_str()],
        _ => vec!["alice", "ci@runner-7"],
    }
    .into_iter()
    .map(json_text)
    .collect();
    let odd: Vec<String> = match field {
        "duration" => vec![
            "0s",
            "0",
            "1ns",
            "999us",
            "1ms",
            "-5m",
            "5",
            "  30m  ",
            "1y",
            "1M",
            "3h",
            "30 minutes",
            "P1D",
            "NaN",
            "1e3s",
            "∞",
            "99999999999999999999h",
            "18446744073709551615s",
            "18446744073709551616s",
            "9223372036854775807ms",
            "9223372036854775808ms",
            "18446744073709551615ms",
            "584942417355y",
            "2305843009213694012s",
            "27670116110564327s",
        ],
        "ends_at" | "starts_at" => vec![
            t.past.as_str(),
            t.too_far.as_str(),
            "2026-13-01T00:00:00Z",
            "2030-02-30T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "-009999-01-01T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "2016-12-31T23:59:60Z",
            "now",
            "2030-01-01",
            "2030-01-01T00:00:00",
            "2030-01-01T00:00:00+25:00",
        ],
        _ => vec!["c", "nope", "a,b", "a ", "A", "**"],
    }
    .into_iter()
    .map(str::to_owned)
    .chain([
        String::new(),
        " \t\n".to_owned(),
        "x".repeat(501),
        "é".repeat(300),
        "x".repeat(20_000),
        "\u{0}\u{1b}[2J\u{202e}".to_owned(),
        "<script>alert(1)</script>".to_owned(),
        "'; DROP TABLE dbvigil_maintenance_windows; --".to_owned(),
    ])
    .map(|s| json_text(&s))
    .collect();
    let wrong_type = prop::sample::select(vec![
        "0",
        "-1",
        "1.5",
        "1e308",
        "1e999",
        "-0",
        "18446744073709551616",
        "-9223372036854775809",
        "123456789012345678901234567890",
        "true",
        "null",
        "[]",
        "{}",
        "[\"30m\"]",
        "{\"value\":\"30m\"}",
        "\"\\ud800\"",
        "\"\\u0000\"",
    ])
    .prop_map(str::to_owned);
    prop_oneof![
        2 => prop::sample::select(valid),
        4 => prop::sample::select(odd),
        2 => wrong_type,
        1 => any_json().prop_map(|v| v.to_string()),
    ]
    .boxed()
}

/// An object close to what the route takes: each known field present (valid, odd or of
/// another type) or missing, perhaps unknown keys, perhaps a key given twice.
fn near_valid(route: &Route, t: &Times) -> BoxedStrategy<Vec<u8>> {
    let fields: &[&'static str] = match route {
        Route::Start => &["scope", "reason", "duration", "ends_at", "starts_at", "by"],
        Route::Change {
            action: "extend", ..
        } => &["duration", "ends_at", "by"],
        Route::Change { .. } => &["reason", "by"],
    };
    let known: Vec<_> = fields
        .iter()
        .map(|&f| {
            prop::option::weighted(0.6, field_value(f, t).prop_map(move |v| (f.to_owned(), v)))
        })
        .collect();
    let unknown = prop::collection::vec(
        (
            prop_oneof![
                prop::sample::select(vec![
                    "durration",
                    "Scope",
                    "scope ",
                    "",
                    "__proto__",
                    "id",
                    "state",
                    "token",
                ])
                .prop_map(str::to_owned),
                "[a-z_]{1,8}",
            ],
            any_json().prop_map(|v| v.to_string()),
        ),
        0..2,
    );
    (
        known,
        prop::option::weighted(0.2, unknown),
        any::<bool>(),
        any::<u8>(),
    )
        .prop_map(|(known, unknown, duplicate, sweep)| {
            let mut pairs: Vec<(String, String)> = known.into_iter().flatten().collect();
            pairs.extend(unknown.into_iter().flatten());
            if duplicate && !pairs.is_empty() {
                let again = pairs[sweep as usize % pairs.len()].clone();
                pairs.push(again);
            }
            let fields: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}:{v}", json_text(k)))
                .collect();
            format!("{{{}}}", fields.join(",")).into_bytes()
        })
        .boxed()
}

/// Bodies that are not JSON, or not only JSON: bytes, truncations, trailing garbage, deep
/// nesting, numbers no type holds.
fn not_quite_json() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        any::<String>().prop_map(String::into_bytes),
        // Nesting as deep as fits under the 64 KiB body limit.
        (
            prop::sample::select(vec!["[", "{\"a\":", "{\"scope\":["]),
            0.0..1.0
        )
            .prop_map(|(open, fill): (&str, f64)| {
                let depth = 1 + (fill * (60_000 / open.len()) as f64) as usize;
                open.repeat(depth).into_bytes()
            }),
        (1usize..30_000)
            .prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()),
        prop::sample::select(vec![
            "",
            "   \r\n",
            "{",
            "}",
            "{\"scope\":\"a\",",
            "{\"scope\":\"a\"} trailing",
            "\u{feff}{\"scope\":\"a\",\"reason\":\"x\"}",
            "scope=a&reason=x",
            "null",
            "[]",
            "[\"a\",\"x\",null,null,null,null]",
            "\"a\"",
            "1e999999",
            "-",
            "{\"scope\":\"a\",\"reason\":\"x\",\"duration\":\"30m\"}\u{0}",
            "{\"reason\":\"\\ud800\"}",
            "{'scope':'a'}",
            "{scope:a}",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
    ]
}

fn api_case(t: &Times) -> impl Strategy<Value = ApiCase> {
    let route = prop_oneof![
        4 => Just(Route::Start),
        6 => (
            prop::sample::select(vec!["extend", "end"]),
            prop::option::weighted(0.2, prop::sample::select(vec![
                "0", "-1", "999999999", "99999999999999999999", "abc", "1.0", "1e3",
                "schedule:weekly@0", "app:a", "%20", "%C3%A9", "..",
            ])),
        )
            .prop_map(|(action, id)| Route::Change { action, id }),
    ];
    let soon = t.soon.clone();
    let (past, later, too_far) = (t.past.clone(), t.later.clone(), t.too_far.clone());
    route.prop_flat_map(move |route| {
        let t = Times {
            past: past.clone(),
            soon: soon.clone(),
            later: later.clone(),
            too_far: too_far.clone(),
        };
        let body = prop_oneof![
            5 => near_valid(&route, &t),
            2 => any_json().prop_map(|v| v.to_string().into_bytes()),
            2 => not_quite_json(),
        ];
        (Just(route), body).prop_map(|(route, body)| ApiCase { route, body })
    })
}

/// One POST with a deadline: status, content type and body, or why there was no answer.
async fn post_bytes(
    addr: std::net::SocketAddr,
    path: &str,
    body: &[u8],
) -> Result<(u16, String, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Authorization: Bearer {API_TOKEN}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = match tokio::time::timeout(REQUEST_DEADLINE, exchange).await {
        Err(_) => return Err(format!("no answer within {REQUEST_DEADLINE:?}")),
        Ok(Err(e)) => return Err(format!("connection failed: {e}")),
        Ok(Ok(raw)) => String::from_utf8_lossy(&raw).into_owned(),
    };
    let Some((head, body)) = raw.split_once("\r\n\r\n") else {
        return Err(format!("no HTTP answer (connection closed?): {raw:?}"));
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line: {head:?}"))?;
    let content_type = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    Ok((status, content_type, body.to_owned()))
}

/// The store's windows, read afresh (not the copy the refresh loop last took).
async fn stored_windows(e: &TestExporter) -> Vec<dbvigil::maintenance::Window> {
    e.exporter.maintenance().refresh().await.unwrap();
    e.exporter.maintenance().stored().windows.clone()
}

/// A refusal says what to fix: the field it names leads the message, or the message ends
/// with what to do, and a body the parser refused is located by field or position.
fn says_what_to_fix(answer: &serde_json::Value) -> Result<(), String> {
    let error = answer["error"]
        .as_str()
        .filter(|e| !e.trim().is_empty())
        .ok_or("no \"error\" string")?;
    if let Some(field) = answer.get("field") {
        let field = field.as_str().ok_or("\"field\" is not a string")?;
        return if error.starts_with(&format!("{field}: ")) && error.len() > field.len() + 2 {
            Ok(())
        } else {
            Err(format!(
                "the message does not lead with its field {field:?}"
            ))
        };
    }
    const WHAT_TO_DO: [&str; 6] = [
        "see docs/maintenance.md for the fields",
        "send a JSON object",
        "list them with GET /api/v1/maintenance",
        "start a new window instead",
        "change or remove the schedule and reload",
        "it ends when the application clears the flag",
    ];
    let Some(what_to_do) = WHAT_TO_DO.iter().find(|w| error.ends_with(*w)) else {
        return Err("the message does not say what to do".to_owned());
    };
    // The parser's refusals (the first two) point at the offending field or position.
    let parser = WHAT_TO_DO[..2].contains(what_to_do);
    if parser
        && !["field `", "line ", "column "]
            .iter()
            .any(|w| error.contains(w))
    {
        return Err("the message locates nothing".to_owned());
    }
    Ok(())
}

/// What an accepted change must have done, read from the request body: the only window
/// that changed is the one asked about, and its end moved exactly as asked. `None` when the
/// body is not a JSON object (serde also takes a struct as an array of its fields).
fn accepted_as_asked(
    case: &ApiCase,
    open: &str,
    before: &[Window],
    after: &[Window],
) -> Result<(), String> {
    let Ok(serde_json::Value::Object(body)) = serde_json::from_slice(&case.body) else {
        return Ok(());
    };
    let changed: Vec<&Window> = after.iter().filter(|w| !before.contains(w)).collect();
    let [window] = changed[..] else {
        return Err(format!("{} windows changed: {changed:?}", changed.len()));
    };
    let duration_ms = || {
        let text = body.get("duration")?.as_str()?;
        let d = humantime::parse_duration(text.trim()).ok()?;
        Some(d.as_millis() as i64)
    };
    let ends_at = || {
        let text = body.get("ends_at")?.as_str()?;
        Some(
            text.trim()
                .parse::<jiff::Timestamp>()
                .ok()?
                .as_millisecond(),
        )
    };
    let planned = window.ends_at.map_or(0, |t| t.as_millis());
    let old = before.iter().find(|w| w.id == window.id);
    let (want, got) = match &case.route {
        Route::Start if old.is_some() => return Err(format!("start changed {window:?}")),
        Route::Start => match (duration_ms(), ends_at()) {
            (Some(d), _) => (d, planned - window.starts_at.as_millis()),
            (None, Some(t)) => (t, planned),
            (None, None) => (10 * 60_000, planned - window.starts_at.as_millis()),
        },
        Route::Change { id: Some(_), .. } => {
            return Err(format!("a change of an odd id changed {window:?}"));
        }
        Route::Change { .. } if window.id != open => {
            return Err(format!("a change of window {open} changed {window:?}"));
        }
        Route::Change {
            action: "extend", ..
        } => {
            let was = old.and_then(|w| w.ends_at).map_or(0, |t| t.as_millis());
            match (duration_ms(), ends_at()) {
                (Some(d), _) => (was + d, planned),
                (None, Some(t)) => (t, planned),
                (None, None) => return Err("extended without duration or ends_at".to_owned()),
            }
        }
        Route::Change { .. } => match window.ended_at {
            Some(_) => return Ok(()),
            None => return Err(format!("end left {window:?} open")),
        },
    };
    if want != got {
        return Err(format!("asked for {want} ms, got {got} ms: {window:?}"));
    }
    Ok(())
}

/// One case: the answer comes in time, is never a 5xx, a refusal is JSON that says what to
/// fix and changes nothing, and an accepted request does exactly what it asked. Returns the
/// status and the answer.
async fn api_check(
    e: &TestExporter,
    open: &mut String,
    case: &ApiCase,
) -> Result<(u16, serde_json::Value), String> {
    let now = dbvigil::time::Timestamp::now();
    let mut before = stored_windows(e).await;
    let still_open = before
        .iter()
        .any(|w| w.id == *open && matches!(w.state(now).as_str(), "active" | "scheduled"));
    if !still_open {
        let (status, _, body) = post_bytes(
            e.addr,
            "/api/v1/maintenance",
            br#"{"scope":"a","reason":"kept open for the cases","duration":"1h"}"#,
        )
        .await?;
        let created: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let Some(id) = created["id"].as_str().filter(|_| status == 201) else {
            return Err(format!(
                "cannot open the window for the cases: {status} {body}"
            ));
        };
        *open = id.to_owned();
        before = stored_windows(e).await;
    }
    let path = match &case.route {
        Route::Start => "/api/v1/maintenance".to_owned(),
        Route::Change { action, id } => {
            format!("/api/v1/maintenance/{}/{action}", id.unwrap_or(open))
        }
    };
    let (status, content_type, body) = post_bytes(e.addr, &path, &case.body).await?;
    let after = stored_windows(e).await;
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    match status {
        200 | 201 => {
            if answer["id"].as_str().is_none() {
                return Err(format!("{path}: {status} without a window: {body}"));
            }
            accepted_as_asked(case, open, &before, &after)
                .map_err(|why| format!("{path}: {status} {body}: {why}"))?;
        }
        400..=499 => {
            if !content_type.starts_with("application/json") || !answer.is_object() {
                return Err(format!(
                    "{path}: {status} is not a JSON object ({content_type:?}): {body}"
                ));
            }
            says_what_to_fix(&answer).map_err(|why| format!("{path}: {status} {body}: {why}"))?;
            // Nobody else changes windows here: a race reported here is a wrong answer.
            if body.contains("changed while this request ran") {
                return Err(format!("{path}: {status} {body}: no other request ran"));
            }
            if after != before {
                return Err(format!(
                    "{path}: refused with {status}, yet the store changed: {body}"
                ));
            }
        }
        _ => return Err(format!("{path}: {status} {body}")),
    }
    Ok((status, answer))
}

fn api_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Durations the property test found, and their neighbours: below a millisecond, longer
/// than any window, or wrapping around at 64 bits. Each is refused, naming `duration`.
#[test]
fn the_maintenance_api_refuses_durations_no_window_can_have() {
    let rt = api_runtime();
    let dir = common::tempdir();
    let e = rt.block_on(TestExporter::start(dir.path(), &api_config(dir.path())));
    let mut open = String::new();
    let mut failures = Vec::new();
    for duration in [
        "1ns",
        "999us",
        "3h",
        "9223372036854775807ms",
        "9223372036854775808ms",
        "18446744073709551615ms",
        "18446744073709551615s",
        "584942417355y",
        // 125 * 2^64 + 60,000 ms: a minute, once the milliseconds wrap at 64 bits.
        "2305843009213694012s",
        // 2^64 + 2^63 - 424 ms: just below i64::MAX once wrapped, so adding it overflows.
        "27670116110564327s",
    ] {
        for route in [
            Route::Start,
            Route::Change {
                action: "extend",
                id: None,
            },
        ] {
            let body = match route {
                Route::Start => format!(r#"{{"scope":"a","reason":"r","duration":"{duration}"}}"#),
                Route::Change { .. } => format!(r#"{{"duration":"{duration}"}}"#),
            };
            let case = ApiCase {
                route,
                body: body.into_bytes(),
            };
            match rt.block_on(api_check(&e, &mut open, &case)) {
                Ok((422, answer)) if answer["field"] == "duration" => {}
                Ok((status, answer)) => failures.push(format!("{case:?}: {status} {answer}")),
                Err(why) => failures.push(format!("{case:?}: {why}")),
            }
        }
    }
    let windows = rt.block_on(stored_windows(&e));
    rt.block_on(e.stop());
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_eq!(
        windows.len(),
        1,
        "only the window kept open for the cases: {windows:?}"
    );
}

/// A fresh exporter (and store) after this many windows, so that a long run does not
/// slow down reading an ever larger store before and after every request.
const WINDOWS_PER_EXPORTER: usize = 200;

#[test]
fn the_maintenance_api_refuses_hostile_json_cleanly_and_stores_nothing() {
    let rt = api_runtime();
    let start = || {
        let dir = common::tempdir();
        let e = rt.block_on(TestExporter::start(dir.path(), &api_config(dir.path())));
        (dir, e, String::new())
    };
    let current = std::sync::Mutex::new(Some(start()));
    let mut runner = TestRunner::new(ProptestConfig {
        cases: cases(500),
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&api_case(&Times::now()), |case| {
        let mut current = current.lock().unwrap();
        let (_, e, _) = current.as_ref().unwrap();
        if e.exporter.maintenance().stored().windows.len() > WINDOWS_PER_EXPORTER {
            let (_dir, e, _) = current.take().unwrap();
            rt.block_on(e.stop());
            *current = Some(start());
        }
        let (_, e, open) = current.as_mut().unwrap();
        rt.block_on(api_check(e, open, &case))
            .map(|_| ())
            .map_err(TestCaseError::fail)
    });
    if let Some((_dir, e, _)) = current.into_inner().unwrap() {
        rt.block_on(e.stop());
    }
    if let Err(e) = result {
        panic!("{e}");
    }
}
