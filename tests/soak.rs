//! Load and soak, short forms (issue 9), against the real binary: a PostgreSQL server that
//! is also the maintenance state store, restarted under 100 ms probes; configuration
//! reloads under continuous scraping; 200 concurrent clients. The long forms are
//! `bench/soak.py`, with their figures in docs/reliability.md.
//!
//! The scenarios run one at a time (`SERIAL`): each one measures the exporter's resources or
//! holds its probes to their deadlines, which another scenario's load on two cores would
//! disturb. Figures are printed (`--nocapture` shows them); bounds are generous.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::db::{Db, Engine, WAIT, block, config, target};
use common::servers::{PgServer, skip_or_fail};
use common::{Metrics, Response, Running, eventually, request, send, tempdir};
use serde_json::Value;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TOKEN: &str = "soak-token-0123456789abcdef";

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("cannot list /proc/{pid}/fd: {e}"))
        .count()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Descriptors and resident memory once what a probe or a request holds for a moment is
/// let go: the fewest of ten readings over half a second.
async fn settled(pid: u32) -> (usize, u64) {
    let (mut fds, mut rss) = (usize::MAX, u64::MAX);
    for _ in 0..10 {
        fds = fds.min(open_fds(pid));
        rss = rss.min(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (fds, rss)
}

fn json(r: &Response) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|_| panic!("not JSON ({}): {}", r.status, r.body))
}

async fn post(d: &Running, path: &str, body: &str) -> Response {
    let auth = format!("Bearer {TOKEN}");
    send(d.addr, "POST", path, &[("Authorization", &auth)], body).await
}

async fn get_json(d: &Running, path: &str) -> Value {
    let r = request(d.addr, "GET", path, &[]).await;
    assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    json(&r)
}

async fn wait_value(d: &Running, name: &str, labels: &[(&str, &str)], want: f64, what: &str) {
    eventually(WAIT, what, || async {
        (d.metrics().await.get(name, labels) == Some(want)).then_some(())
    })
    .await;
}

async fn start_dbvigil(dir: &Path, yaml: &str) -> Running {
    std::fs::write(dir.join("dbvigil.yml"), yaml).unwrap();
    Running::start(
        dir,
        &["--config.file", "dbvigil.yml", "--data.dir", "data"],
        &[],
    )
    .await
}

fn pg(db: &Db) -> &PgServer {
    match db {
        Db::Pg(pg) => pg,
        Db::Maria(_) => unreachable!("the soak scenarios use PostgreSQL"),
    }
}

const RESTARTS: usize = 12;
/// Restarts before the baseline: the store's pool, the first episodes and the allocator's
/// arenas have grown to their working size by then.
const WARM_UP: usize = 2;

/// Every restart of the probed server is exactly one outage episode, although the same
/// server holds the maintenance store; windows created, extended and ended between the
/// restarts are all still there with their audit trail; descriptors and memory come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_of_a_server_that_is_also_the_state_store() {
    let _serial = SERIAL.lock().await;
    let Some(mut db) = block(|| Db::start(Engine::Postgres)) else {
        return;
    };
    block(|| pg(&db).psql("CREATE DATABASE dbvigil_state"));
    let state_url = pg(&db).url("postgres", None, "dbvigil_state");
    let dir = tempdir();
    std::fs::write(dir.path().join("tokens"), format!("soak {TOKEN}\n")).unwrap();
    let yaml = format!(
        "{}maintenance:\n  tokens_file: tokens\nstate:\n  url: {state_url}\n  refresh_interval: 200ms\n",
        config(&[target("db", &db, "100ms", "")])
    );
    let d = start_dbvigil(dir.path(), &yaml).await;
    let pid = d.pid();
    wait_value(&d, "dbvigil_up", &[("target", "db")], 1.0, "db up").await;

    let began = Instant::now();
    let mut windows: Vec<(String, usize)> = Vec::new();
    let mut baseline = (0, 0);
    let (mut peak_fds, mut peak_rss) = (0, 0);
    for i in 0..RESTARTS {
        if i == WARM_UP {
            baseline = settled(pid).await;
        }
        let r = post(
            &d,
            "/api/v1/maintenance",
            &format!(r#"{{"scope":"db","reason":"restart {i}","duration":"1h","by":"soak-{i}"}}"#),
        )
        .await;
        assert_eq!(r.status, 201, "window before restart {i}: {}", r.body);
        windows.push((json(&r)["id"].as_str().unwrap().to_owned(), i));

        block(|| db.stop());
        wait_value(
            &d,
            "dbvigil_up",
            &[("target", "db")],
            0.0,
            &format!("db down after stop {i}"),
        )
        .await;
        if i == 1 {
            // The store is down with the server: a change is refused and nothing is stored.
            let r = post(
                &d,
                "/api/v1/maintenance",
                r#"{"scope":"db","reason":"while the store is down","duration":"1h"}"#,
            )
            .await;
            assert_eq!(
                r.status, 503,
                "a change while the store is down: {}",
                r.body
            );
        }
        block(|| db.start_again());
        wait_value(
            &d,
            "dbvigil_up",
            &[("target", "db")],
            1.0,
            &format!("db up after start {i}"),
        )
        .await;
        let m = d.metrics().await;
        assert_eq!(
            m.value("dbvigil_outages_total", &[("target", "db")]),
            (i + 1) as f64,
            "restart {i} must be exactly one more outage episode"
        );
        // Right after the store came back: end one window in three, extend another.
        let (id, _) = &windows[i];
        let change = match i % 3 {
            0 => Some((
                "end",
                format!(r#"{{"reason":"done {i}","by":"soak-end-{i}"}}"#),
            )),
            1 => Some((
                "extend",
                format!(r#"{{"duration":"10m","by":"soak-extend-{i}"}}"#),
            )),
            _ => None,
        };
        if let Some((action, body)) = change {
            let r = post(&d, &format!("/api/v1/maintenance/{id}/{action}"), &body).await;
            assert_eq!(
                r.status, 200,
                "{action} window {id} after restart {i}: {}",
                r.body
            );
        }
        peak_fds = peak_fds.max(open_fds(pid));
        peak_rss = peak_rss.max(rss_kib(pid));
    }
    let restarts_took = began.elapsed();
    wait_value(
        &d,
        "dbvigil_maintenance_store_up",
        &[],
        1.0,
        "the store is read again",
    )
    .await;
    let after = settled(pid).await;
    eprintln!(
        "{RESTARTS} restarts in {:.1}s; fds baseline {} peak {peak_fds} after {}; RSS KiB baseline {} peak {peak_rss} after {}",
        restarts_took.as_secs_f64(),
        baseline.0,
        after.0,
        baseline.1,
        after.1
    );

    // One episode per restart, each one over.
    let targets = get_json(&d, "/api/v1/targets").await;
    let t = &targets["targets"][0];
    assert_eq!(t["name"], "db");
    let episodes = t["episodes"].as_array().unwrap();
    assert_eq!(episodes.len(), RESTARTS, "{episodes:#?}");
    for e in episodes {
        assert!(e["ended_at"].is_string(), "an episode did not end: {e}");
        let reason = e["reason"].as_str().unwrap();
        assert!(
            ["refused", "io", "timeout"].contains(&reason),
            "reason {reason}: {e}"
        );
    }
    assert!(t["current_outage"].is_null(), "{t}");
    let m = d.metrics().await;
    let db_labels = [("target", "db")];
    assert_eq!(
        m.value("dbvigil_outages_total", &db_labels),
        RESTARTS as f64
    );
    assert_eq!(
        m.value("dbvigil_outage_duration_seconds_count", &db_labels),
        RESTARTS as f64
    );
    assert_eq!(
        m.value("dbvigil_current_outage_duration_seconds", &db_labels),
        0.0
    );
    assert_eq!(
        m.value("dbvigil_identity_changes_total", &db_labels),
        0.0,
        "a restart is not a new server"
    );

    // Connections and memory come back. A leaked connection per restart would be 10 more
    // descriptors; the store's pool (up to 4) and a probe in flight account for the rest.
    assert!(
        after.0 <= baseline.0 + 8,
        "descriptors grew from {} to {} over {} restarts (peak {peak_fds})",
        baseline.0,
        after.0,
        RESTARTS - WARM_UP
    );
    assert!(
        after.1 <= baseline.1 + 16 * 1024,
        "resident memory grew from {} KiB to {} KiB (peak {peak_rss} KiB)",
        baseline.1,
        after.1
    );

    // Every window is still listed, with its whole audit trail, and the refused one is not.
    let listed = get_json(&d, "/api/v1/maintenance").await;
    let listed: BTreeMap<String, Value> = listed["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["id"].as_str().unwrap().to_owned(), w.clone()))
        .collect();
    assert!(
        listed
            .values()
            .all(|w| w["reason"] != "while the store is down"),
        "a refused change was stored: {listed:#?}"
    );
    for (id, i) in &windows {
        let expected: Vec<(&str, String)> = match i % 3 {
            0 => vec![
                ("started", format!("soak-{i}")),
                ("ended", format!("soak-end-{i}")),
            ],
            1 => vec![
                ("started", format!("soak-{i}")),
                ("extended", format!("soak-extend-{i}")),
            ],
            _ => vec![("started", format!("soak-{i}"))],
        };
        let one = get_json(&d, &format!("/api/v1/maintenance/{id}")).await;
        for (source, w) in [("list", listed.get(id)), ("get", Some(&one))] {
            let w = w.unwrap_or_else(|| panic!("window {id} (restart {i}) is not listed"));
            let events: Vec<(&str, String)> = w["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["action"].as_str().unwrap(),
                        e["by"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            assert_eq!(
                events, expected,
                "{source}: audit trail of window {id}: {w}"
            );
            let state = if i % 3 == 0 { "ended" } else { "active" };
            assert_eq!(w["state"], state, "{source}: {w}");
        }
    }
    d.terminate();
}

const RELOADS: usize = 20;

/// The configuration after `k` reloads: odd reloads change `flip`'s interval, even ones
/// add or remove `extra`; `steady`, `still` and `pg` never change. Returns the YAML and
/// the number of targets.
fn reload_config(pg_target: &str, k: usize) -> (String, usize) {
    let flip = if flip_is_slow(k) { "300ms" } else { "100ms" };
    let extra = matches!(k % 4, 2 | 3);
    let mut targets = vec![
        "  - {name: steady, kind: sqlite, path: steady.db, create: true, interval: 100ms}\n"
            .to_owned(),
        "  - {name: still, kind: sqlite, path: still.db, create: true, interval: 500ms}\n"
            .to_owned(),
        pg_target.to_owned(),
        format!(
            "  - {{name: flip, kind: sqlite, path: flip.db, create: true, interval: {flip}}}\n"
        ),
    ];
    if extra {
        targets.push(
            "  - {name: extra, kind: sqlite, path: extra.db, create: true, interval: 100ms}\n"
                .to_owned(),
        );
    }
    (config(&targets), targets.len())
}

/// Whether `flip` runs at 300 ms (not 100 ms) after `k` reloads: each odd reload toggles it.
fn flip_is_slow(k: usize) -> bool {
    k.div_ceil(2) % 2 == 1
}

/// What the concurrent scraper saw.
#[derive(Debug, Default)]
struct Scraped {
    scrapes: usize,
    /// Scrapes that missed a series of a target configured for the whole run.
    lost: Vec<String>,
    max_tasks: f64,
    /// `steady`'s probe counter went down: its history was not kept.
    steady_reset: bool,
}

const KEPT: [&str; 4] = ["steady", "still", "pg", "flip"];

fn check_scrape(m: &Metrics, seen: &mut Scraped, last_steady: &mut f64) {
    seen.scrapes += 1;
    for t in KEPT {
        for family in ["dbvigil_target_info", "dbvigil_up", "dbvigil_probes_total"] {
            if m.get(family, &[("target", t)]).is_none() {
                seen.lost
                    .push(format!("scrape {}: {family}{{target={t}}}", seen.scrapes));
            }
        }
    }
    if let Some(n) = m.get("dbvigil_probe_tasks", &[]) {
        seen.max_tasks = seen.max_tasks.max(n);
    } else {
        seen.lost
            .push(format!("scrape {}: dbvigil_probe_tasks", seen.scrapes));
    }
    let steady = m
        .get("dbvigil_probes_total", &[("target", "steady")])
        .unwrap_or(0.0);
    seen.steady_reset |= steady < *last_steady;
    *last_steady = steady;
}

fn sessions(pg: &PgServer) -> f64 {
    pg.psql("SELECT sessions FROM pg_stat_database WHERE datname = 'app'")
        .parse()
        .unwrap()
}

/// Reloads under a scraper that never stops: no scrape misses a target that stayed
/// configured, stopped tasks end (`dbvigil_probe_tasks` returns to the number of targets
/// after every reload), and unchanged targets keep their history and their probe rate,
/// counted by dbvigil and, for the server target, by the server's own session count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_continuous_scraping() {
    let _serial = SERIAL.lock().await;
    let Some(db) = block(|| Db::start(Engine::Postgres)) else {
        return;
    };
    let pg_target = target("pg", &db, "200ms", "");
    let dir = tempdir();
    let (yaml, n) = reload_config(&pg_target, 0);
    let d = start_dbvigil(dir.path(), &yaml).await;
    for t in KEPT {
        wait_value(&d, "dbvigil_up", &[("target", t)], 1.0, &format!("{t} up")).await;
    }
    wait_value(
        &d,
        "dbvigil_probe_tasks",
        &[],
        n as f64,
        "one task per target",
    )
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let scrapes = Arc::new(AtomicUsize::new(0));
    let scraper = {
        let (addr, stop, scrapes) = (d.addr, stop.clone(), scrapes.clone());
        tokio::spawn(async move {
            let mut seen = Scraped::default();
            let mut last_steady = 0.0;
            while !stop.load(Ordering::SeqCst) {
                let r = request(addr, "GET", "/metrics", &[]).await;
                assert_eq!(r.status, 200, "{}", r.body);
                check_scrape(&Metrics::parse(&r.body), &mut seen, &mut last_steady);
                scrapes.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen
        })
    };

    let rate_start = |m: &Metrics| {
        (
            m.value("dbvigil_probes_total", &[("target", "steady")]),
            m.value("dbvigil_probes_total", &[("target", "pg")]),
        )
    };
    let t0 = Instant::now();
    let (steady0, pg0) = rate_start(&d.metrics().await);
    let sessions0 = block(|| sessions(pg(&db)));
    for k in 1..=RELOADS {
        let (yaml, n) = reload_config(&pg_target, k);
        std::fs::write(dir.path().join("dbvigil.yml"), yaml).unwrap();
        let scraped_before = scrapes.load(Ordering::SeqCst);
        let r = send(d.addr, "POST", "/-/reload", &[], "").await;
        assert_eq!(r.status, 200, "reload {k}: {}", r.body);
        let names: Vec<String> = get_json(&d, "/api/v1/targets").await["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names.len(), n, "reload {k}: {names:?}");
        // The reload is over when the task it stopped has ended, the task it started has
        // probed, and the scraper has seen the result.
        let (changed, interval) = if k % 2 == 1 {
            let interval = if flip_is_slow(k) { 0.3 } else { 0.1 };
            (Some("flip"), interval)
        } else if k % 4 == 2 {
            (Some("extra"), 0.1)
        } else {
            (None, 0.0)
        };
        eventually(WAIT, &format!("reload {k} settles"), || async {
            let m = d.metrics().await;
            let tasks = m.get("dbvigil_probe_tasks", &[]) == Some(n as f64);
            let probed = changed.is_none_or(|t| {
                let l = [("target", t)];
                m.get("dbvigil_probe_interval_seconds", &l) == Some(interval)
                    && m.get("dbvigil_probes_total", &l).is_some_and(|p| p >= 1.0)
            });
            let scraped = scrapes.load(Ordering::SeqCst) >= scraped_before + 2;
            (tasks && probed && scraped).then_some(())
        })
        .await;
    }
    let reloads_took = t0.elapsed();
    // The unchanged targets run on the final configuration for a while too.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (steady1, pg1) = rate_start(&d.metrics().await);
    let sessions1 = block(|| sessions(pg(&db)));
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let seen = scraper.await.unwrap();

    let (_, n) = reload_config(&pg_target, RELOADS);
    let m = d.metrics().await;
    assert_eq!(m.value("dbvigil_probe_tasks", &[]), n as f64);
    let rates = [
        ("steady probes", steady1 - steady0, elapsed / 0.1),
        ("pg probes", pg1 - pg0, elapsed / 0.2),
        (
            "pg sessions on the server",
            sessions1 - sessions0,
            elapsed / 0.2,
        ),
    ];
    eprintln!(
        "{RELOADS} reloads in {:.1}s; {} scrapes, {} lost series, max {} tasks; {}",
        reloads_took.as_secs_f64(),
        seen.scrapes,
        seen.lost.len(),
        seen.max_tasks,
        rates
            .iter()
            .map(|(what, got, want)| format!("{what} {got} (expected {want:.0})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(seen.lost.is_empty(), "lost series: {:#?}", seen.lost);
    assert!(seen.scrapes >= 2 * RELOADS, "only {} scrapes", seen.scrapes);
    assert!(
        !seen.steady_reset,
        "an unchanged target's history was reset"
    );
    // At most one stopped task outlives its reload for a moment, next to at most 5 targets.
    assert!(seen.max_tasks <= 6.0, "{} tasks at once", seen.max_tasks);
    // A duplicated task would double the rate; a stalled one would halve it.
    for (what, got, want) in rates {
        assert!(
            got >= 0.5 * want && got <= 1.5 * want + 3.0,
            "{what}: {got} in {elapsed:.1}s, expected about {want:.0}"
        );
    }
    d.terminate();
}

fn wrk_installed() -> bool {
    Command::new("sh")
        .args(["-c", "command -v wrk"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// wrk's own report: requests, socket errors (connect, read, write, timeout), non-2xx
/// answers, and p50 and p99 latency in ms.
const WRK_REPORT: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("SOAK %d %d %d %.3f %.3f\n", summary.requests,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"#;

struct Wrk {
    requests: u64,
    socket_errors: u64,
    non_2xx: u64,
    p50_ms: f64,
    p99_ms: f64,
}

fn wrk(script: &Path, url: &str, seconds: u32) -> Wrk {
    let out = Command::new("wrk")
        .args([
            "-t2",
            "-c200",
            &format!("-d{seconds}s"),
            "--timeout",
            "10s",
            "-s",
        ])
        .arg(script)
        .arg(url)
        .output()
        .expect("wrk runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SOAK "))
        .unwrap_or_else(|| {
            panic!(
                "wrk printed no report:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let f: Vec<f64> = line
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    Wrk {
        requests: f[0] as u64,
        socket_errors: f[1] as u64,
        non_2xx: f[2] as u64,
        p50_ms: f[3],
        p99_ms: f[4],
    }
}

/// 200 connections on `/metrics` and then on `/api/v1/targets`: every request answered
/// with 2xx, no target looks down meanwhile, and the connections' descriptors are let go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients() {
    let _serial = SERIAL.lock().await;
    if !wrk_installed() && skip_or_fail("wrk is not installed (apt-get install wrk)") {
        return;
    }
    let Some(db) = block(|| Db::start(Engine::Postgres)) else {
        return;
    };
    let dir = tempdir();
    let mut targets: Vec<String> = (0..10)
        .map(|i| {
            format!(
                "  - {{name: file-{i}, kind: sqlite, path: f{i}.db, create: true, interval: 1s, failure_threshold: 2}}\n"
            )
        })
        .collect();
    targets.push(target("pg", &db, "1s", ""));
    let names: Vec<String> = (0..10)
        .map(|i| format!("file-{i}"))
        .chain(["pg".to_owned()])
        .collect();
    let d = start_dbvigil(dir.path(), &config(&targets)).await;
    for t in &names {
        wait_value(&d, "dbvigil_up", &[("target", t)], 1.0, &format!("{t} up")).await;
    }
    let pid = d.pid();
    let baseline = settled(pid).await;
    let before = d.metrics().await;
    let script = dir.path().join("report.lua");
    std::fs::write(&script, WRK_REPORT).unwrap();

    let mut peak_fds = 0;
    for path in ["/metrics", "/api/v1/targets"] {
        let url = format!("http://{}{path}", d.addr);
        let sampling = Arc::new(AtomicBool::new(true));
        let sampler = {
            let sampling = sampling.clone();
            std::thread::spawn(move || {
                let mut peak = 0;
                while sampling.load(Ordering::SeqCst) {
                    peak = peak.max(open_fds(pid));
                    std::thread::sleep(Duration::from_millis(100));
                }
                peak
            })
        };
        let w = block(|| wrk(&script, &url, 3));
        sampling.store(false, Ordering::SeqCst);
        peak_fds = peak_fds.max(sampler.join().unwrap());
        eprintln!(
            "{path}: 200 connections, 3s: {} requests, {} socket errors, {} non-2xx, p50 {:.1} ms, p99 {:.1} ms",
            w.requests, w.socket_errors, w.non_2xx, w.p50_ms, w.p99_ms
        );
        assert!(w.requests > 0, "{path}: wrk made no request");
        assert_eq!(w.socket_errors, 0, "{path}: socket errors");
        assert_eq!(w.non_2xx, 0, "{path}: answers other than 2xx");
    }

    let m = d.metrics().await;
    for t in &names {
        let l = [("target", t.as_str())];
        assert_eq!(
            m.value("dbvigil_outages_total", &l),
            0.0,
            "{t} recorded an outage under the flood"
        );
        assert_eq!(m.value("dbvigil_up", &l), 1.0, "{t}");
    }
    // The probes kept running (1 s interval, 6 s of flood).
    let pg_probes = m.value("dbvigil_probes_total", &[("target", "pg")])
        - before.value("dbvigil_probes_total", &[("target", "pg")]);
    assert!(
        pg_probes >= 3.0,
        "pg was probed {pg_probes} times during the flood"
    );
    let after = eventually(
        Duration::from_secs(15),
        "the flood's connections are closed",
        || async {
            let now = settled(pid).await;
            (now.0 <= baseline.0 + 8).then_some(now)
        },
    )
    .await;
    eprintln!(
        "fds baseline {} peak {peak_fds} after {}; RSS KiB baseline {} after {}",
        baseline.0, after.0, baseline.1, after.1
    );
    d.terminate();
}
