//! Lost packets: a database whose packets vanish (iptables DROP on loopback, no RST), the
//! failure a dead host, a cut network or a silent firewall gives. A probe must end within
//! its timeout with reason `timeout`, whether it opens a new connection or waits on an
//! established one (`connection: reuse`); the other targets and `/metrics` must not notice;
//! and when packets flow again the target comes back after exactly one outage episode.
//!
//! Needs root and iptables (common/netfault.rs): skipped otherwise, except under `CI=true`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::db::{Db, Engine, WAIT, block, wait_up};
use common::netfault::DropPackets;
use common::{Metrics, TestExporter, eventually, tempdir};

const TIMEOUT_S: f64 = 0.5;
/// A failed probe must end within the timeout plus this (the phases are bounded by one
/// deadline; what is left is bookkeeping).
const OVERRUN_S: f64 = 0.1;
/// Every scrape during the drop must answer within this (it usually takes milliseconds:
/// a scrape renders from memory and never waits on a database).
const SCRAPE_LIMIT: Duration = Duration::from_millis(500);

/// One probe as the API last showed it.
#[derive(Debug)]
struct Seen {
    probe: u64,
    duration: f64,
    reason: Option<String>,
}

async fn lost_packets(engine: Engine) {
    let t = Instant::now();
    let other = match engine {
        Engine::Postgres => Engine::MariaDb,
        Engine::MariaDb => Engine::Postgres,
    };
    let Some(db) = Db::start(engine) else { return };
    let Some(neighbour) = Db::start(other) else {
        return;
    };
    // `fresh` runs every check (its tcp phase opens a new connection each time); `reuse`
    // has no tcp check, so its first phase is a statement on the established session.
    // No write on `reuse`: two targets creating one heartbeat table at once could race.
    let target = |name: &str, server: &Db, extra: &str| {
        format!(
            "  - name: {name}\n{}    interval: 1s\n{extra}",
            server.probe_settings()
        )
    };
    let yaml = format!(
        "targets:\n{}{}{}",
        target(
            "fresh",
            &db,
            "    timeout: 500ms\n    failure_threshold: 2\n    connection: fresh\n"
        ),
        target(
            "reuse",
            &db,
            "    timeout: 500ms\n    failure_threshold: 2\n    connection: reuse\n    checks: [connect, read]\n"
        ),
        target("neighbour", &neighbour, ""),
    );
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &yaml).await;
    for name in ["fresh", "reuse", "neighbour"] {
        wait_up(&e, name, 1.0).await;
    }
    // The reused session is established (at least two probes on it).
    eventually(WAIT, "two probes of reuse", || async {
        (e.metrics()
            .await
            .value("dbvigil_probes_total", &[("target", "reuse")])
            >= 2.0)
            .then_some(())
    })
    .await;
    let m = e.metrics().await;
    for name in ["fresh", "reuse"] {
        assert!(
            m.failures(name).is_empty(),
            "{name}: {:?}",
            m.failures(name)
        );
    }

    let Some(guard) = block(|| DropPackets::start(db.port())) else {
        return;
    };
    let dropped_at = Instant::now();
    let mut seen: BTreeMap<&str, Vec<Seen>> = BTreeMap::new();
    let mut slowest_scrape = Duration::ZERO;
    let mut scrapes = 0;
    let deadline = dropped_at + Duration::from_secs(20);
    loop {
        let started = Instant::now();
        let r = e.get("/metrics").await;
        let took = started.elapsed();
        assert_eq!(r.status, 200);
        scrapes += 1;
        slowest_scrape = slowest_scrape.max(took);
        let m = Metrics::parse(&r.body);
        for name in ["fresh", "reuse"] {
            let j = e.target_json(name).await;
            let probe = j["probes"].as_u64().unwrap();
            let list = seen.entry(name).or_default();
            if list.last().is_none_or(|s| s.probe != probe) {
                list.push(Seen {
                    probe,
                    duration: j["last_probe"]["duration_seconds"].as_f64().unwrap(),
                    reason: j["last_probe"]["error"]["reason"]
                        .as_str()
                        .map(str::to_owned),
                });
            }
        }
        let failed = |name: &str| seen[name].iter().filter(|s| s.reason.is_some()).count();
        let down = |name: &str| m.value("dbvigil_up", &[("target", name)]) == 0.0;
        if down("fresh") && down("reuse") && failed("fresh") >= 3 && failed("reuse") >= 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "targets not down with three failed probes each within 20 s of the drop: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let down_for = dropped_at.elapsed();
    drop(guard);
    let lifted_at = Instant::now();
    for name in ["fresh", "reuse"] {
        wait_up(&e, name, 1.0).await;
    }
    let back_after = lifted_at.elapsed();

    for (name, list) in &seen {
        // The first entry may be the last probe before the drop; every failure after it
        // must be a timeout that ended on time.
        for s in list.iter().filter(|s| s.reason.is_some()) {
            assert_eq!(s.reason.as_deref(), Some("timeout"), "{name}: {s:?}");
            assert!(
                s.duration <= TIMEOUT_S + OVERRUN_S,
                "{name}: a failed probe took {:.3}s, more than the {TIMEOUT_S}s timeout + {OVERRUN_S}s: {list:?}",
                s.duration
            );
        }
        // Probes are counted one by one: none was missed between two looks.
        for pair in list.windows(2) {
            assert_eq!(pair[1].probe, pair[0].probe + 1, "{name}: {list:?}");
        }
    }
    assert!(
        slowest_scrape < SCRAPE_LIMIT,
        "a scrape during the drop took {slowest_scrape:?}"
    );
    let m = e.metrics().await;
    for name in ["fresh", "reuse"] {
        let f = m.failures(name);
        assert_eq!(f.keys().collect::<Vec<_>>(), ["timeout"], "{name}: {f:?}");
        assert_eq!(
            m.value("dbvigil_outages_total", &[("target", name)]),
            1.0,
            "{name}: one drop, one outage episode; {}",
            e.target_json(name).await["episodes"]
        );
        assert_eq!(
            m.value(
                "dbvigil_current_outage_duration_seconds",
                &[("target", name)]
            ),
            0.0
        );
    }
    assert!(
        m.failures("neighbour").is_empty(),
        "the neighbour on another server failed: {:?}",
        m.failures("neighbour")
    );
    assert_eq!(m.value("dbvigil_up", &[("target", "neighbour")]), 1.0);
    e.stop().await;
    eprintln!(
        "lost packets {engine:?}: down after {:.1}s, back {:.1}s after the drop ended, {scrapes} scrapes (slowest {:.1} ms), failed probe durations {:?}; test {:.1}s",
        down_for.as_secs_f64(),
        back_after.as_secs_f64(),
        slowest_scrape.as_secs_f64() * 1e3,
        seen.iter()
            .map(|(n, l)| (
                *n,
                l.iter()
                    .filter(|s| s.reason.is_some())
                    .map(|s| (s.duration * 1e3).round())
                    .collect::<Vec<_>>()
            ))
            .collect::<Vec<_>>(),
        t.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lost_packets_are_timeouts_within_the_timeout() {
    lost_packets(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_lost_packets_are_timeouts_within_the_timeout() {
    lost_packets(Engine::MariaDb).await;
}
