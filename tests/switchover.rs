//! Switchovers as the probes see them, on real servers.
//!
//! A blue/green switchover as a managed database performs it: blue turns read-only (writes
//! fail, reads work), then nobody answers, then green takes reads and writes behind the
//! same address. Write downtime and read downtime must come out as separate numbers, each
//! within an interval or so of what the test itself did.
//!
//! A database that comes back older than the writes it acknowledged (here: restored from a
//! snapshot while unreachable) must be reported as exactly the heartbeats it lost, and a
//! restart of dbvigil itself never as a loss.

mod common;

use std::time::{Duration, Instant};

use common::db::replicated_behind_forwarders;
use common::db::{Db, Engine, WAIT, block, config, target, wait_up};
use common::forwarder::Forwarder;
use common::netfault::DropPackets;
use common::servers::{PgServer, test_certs};
use common::{TestExporter, eventually, tempdir};
use dbvigil::time::Timestamp;

/// How far a period may sit from the test's own clock: a period starts and ends at probe
/// starts, 250 ms apart (one interval each way), plus a probe that runs late on two busy
/// cores.
const MARGIN: f64 = 1.0;

/// `dbvigil report --target app ARGS` against `e`, as a user runs it: exit code, stdout,
/// stderr.
async fn report(e: &TestExporter, args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_dbvigil"));
    cmd.args(["report", "--target", "app", "--dbvigil-url"])
        .arg(format!("http://{}", e.addr))
        .args(args)
        .env_remove("DBVIGIL_HTTP_CONFIG_FILE");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The configuration of target `app` on `db`, reached through `fwd`, probed every 250 ms.
fn through(db: &Db, fwd: &Forwarder) -> String {
    let app = target("app", db, "250ms", "").replace(
        &format!("port: {}\n", db.port()),
        &format!("port: {}\n", fwd.port),
    );
    config(&[app])
}

async fn blue_green(engine: Engine) {
    let Some(blue) = Db::start(engine) else {
        return;
    };
    let Some(green) = Db::start(engine) else {
        return;
    };
    let fwd = Forwarder::start(blue.port()).await;
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &through(&blue, &fwd)).await;
    wait_up(&e, "app", 1.0).await;
    let check = |c: &'static str| [("target", "app"), ("check", c)];

    // Blue stops taking writes; reads still work.
    let read_only_at = Instant::now();
    block(|| blue.set_read_only(true));
    eventually(WAIT, "writes fail on read-only blue", || async {
        (e.metrics()
            .await
            .get("dbvigil_check_success", &check("write"))
            == Some(0.0))
        .then_some(())
    })
    .await;
    assert_eq!(
        e.metrics()
            .await
            .value("dbvigil_check_success", &check("read")),
        1.0,
        "reads keep working while blue is read-only"
    );
    // The scenario's own length, not a wait for a condition: blue stays read-only a while.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Connections are cut, then green answers behind the same address.
    let cut_at = Instant::now();
    fwd.switch(None);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let green_at = Instant::now();
    fwd.switch(Some(green.port()));
    eventually(
        WAIT,
        "write and read periods both ended on green",
        || async {
            let m = e.metrics().await;
            let ended = |c| m.value("dbvigil_check_last_outage_duration_seconds", &check(c)) > 0.0;
            (ended("write") && ended("read")).then_some(())
        },
    )
    .await;

    let truth_write = green_at.duration_since(read_only_at).as_secs_f64();
    let truth_read = green_at.duration_since(cut_at).as_secs_f64();
    let m = e.metrics().await;
    let write = m.value(
        "dbvigil_check_last_outage_duration_seconds",
        &check("write"),
    );
    let read = m.value("dbvigil_check_last_outage_duration_seconds", &check("read"));
    eprintln!(
        "write down {write} s (made {truth_write:.2} s), read down {read} s (made {truth_read:.2} s)"
    );
    assert!(
        (write - truth_write).abs() <= MARGIN,
        "write downtime {write} s, the test made {truth_write:.2} s"
    );
    assert!(
        (read - truth_read).abs() <= MARGIN,
        "read downtime {read} s, the test made {truth_read:.2} s"
    );
    assert!(
        write > read + 1.0,
        "writes were down two seconds longer than reads: write {write} s, read {read} s"
    );
    // The summed downtime counters, behind each check's availability, say the same.
    for (c, last) in [("write", write), ("read", read)] {
        let total = m.value("dbvigil_check_down_seconds_total", &check(c));
        assert!(
            (total - last).abs() < 1e-6,
            "{c}: one period of {last} s, summed {total} s"
        );
    }
    assert_eq!(m.value("dbvigil_check_outages_total", &check("write")), 1.0);
    assert_eq!(m.value("dbvigil_check_outages_total", &check("read")), 1.0);
    assert_eq!(
        m.value("dbvigil_read_only_periods_total", &[("target", "app")]),
        1.0
    );
    let read_only = m.value(
        "dbvigil_last_read_only_duration_seconds",
        &[("target", "app")],
    );
    // Blue was found read-only from its first probe after the change until green's first
    // probe: the gap in between could not tell, so it changes nothing.
    assert!(
        (read_only - truth_write).abs() <= MARGIN,
        "read-only for {read_only} s, the test made {truth_write:.2} s"
    );
    // The API tells the same periods.
    let api = e.target_json("app").await;
    assert_eq!(
        api["check_failures"]["write"]["last_duration_seconds"].as_f64(),
        Some(write),
        "{api:#}"
    );
    assert_eq!(api["check_failures"]["write"]["periods"], 1, "{api:#}");
    // The switchover as a postmortem tells it: blue's last write, green's first, and the
    // gap between them is the write downtime.
    let sw = &api["switchovers"][0];
    assert_eq!(
        api["switchovers"].as_array().map(Vec::len),
        Some(1),
        "{api:#}"
    );
    assert_ne!(sw["from"]["key"], sw["to"]["key"], "{sw:#}");
    assert!(
        sw["last_write_on_old"].is_string() && sw["first_write_on_new"].is_string(),
        "{sw:#}"
    );
    let gap = sw["write_gap_seconds"].as_f64().unwrap();
    assert!(
        (gap - truth_write).abs() <= MARGIN,
        "blue's last write to green's first: {gap} s, the test made {truth_write:.2} s"
    );
    // This green is a separate server with no row of blue's: nothing older was found.
    assert!(sw["lost_writes"].is_null(), "{sw:#}");
    assert_eq!(
        api["read_only_periods"]["last_duration_seconds"].as_f64(),
        Some(read_only),
        "{api:#}"
    );
    assert_eq!(
        m.value("dbvigil_identity_changes_total", &[("target", "app")]),
        1.0,
        "one switch from blue to green"
    );

    // `dbvigil report` tells the same switchover: the API's answer with --output json, and
    // the timeline a postmortem needs as text.
    let (code, json, err) = report(&e, &["--output", "json"]).await;
    assert_eq!(code, Some(0), "{err}");
    let answer: serde_json::Value = serde_json::from_str(&json).unwrap();
    let switchovers = answer["switchovers"].as_array().unwrap();
    assert_eq!(switchovers.len(), 1, "{answer:#}");
    let sw = &switchovers[0];
    assert_ne!(sw["from"], sw["to"], "{sw:#}");
    let gap = sw["write_gap_seconds"].as_f64().unwrap();
    assert!(
        (gap - truth_write).abs() <= MARGIN,
        "the report's write gap {gap} s, the test made {truth_write:.2} s"
    );
    let period = |c: &str| {
        let periods = sw["check_downtime"][c].as_array().unwrap();
        assert_eq!(periods.len(), 1, "one {c} period: {sw:#}");
        periods[0]["duration_seconds"].as_f64().unwrap()
    };
    assert!(
        period("write") > period("read"),
        "writes were down longer than reads: {sw:#}"
    );
    let (code, text, err) = report(&e, &[]).await;
    assert_eq!(code, Some(0), "{err}");
    eprintln!("{text}");
    for line in [
        "  last write on the old server",
        "  the new server answers",
        "  first write on the new server",
        "  acknowledged writes lost: none found",
    ] {
        assert!(
            text.contains(&format!("{line}\n")),
            "no {line:?} in\n{text}"
        );
    }
    e.stop().await;
}

/// The heartbeat row of target `app`: (seq, beat_at_ms), from `table`.
fn beat(db: &Db, table: &str) -> Option<(i64, i64)> {
    let out = block(|| {
        db.sql(&format!(
            "SELECT seq, beat_at_ms FROM {table} WHERE target = 'app';"
        ))
    });
    let line = out.lines().map(str::trim).find(|l| !l.is_empty())?;
    let mut cells = line.split(['|', '\t']).map(|c| c.trim().parse::<i64>());
    Some((cells.next()?.ok()?, cells.next()?.ok()?))
}

async fn restored_older_than_acknowledged(engine: Engine) {
    let Some(db) = Db::start(engine) else { return };
    let fwd = Forwarder::start(db.port()).await;
    let dir = tempdir();
    let yaml = through(&db, &fwd);
    let e = TestExporter::start(dir.path(), &yaml).await;
    wait_up(&e, "app", 1.0).await;
    let live = "dbvigil_heartbeat";
    eventually(WAIT, "a few heartbeats written", || async {
        beat(&db, live).filter(|(seq, _)| *seq >= 3)
    })
    .await;
    block(|| db.sql("CREATE TABLE heartbeat_snapshot AS SELECT * FROM dbvigil_heartbeat;"));
    let (kept_seq, kept_at) = beat(&db, "heartbeat_snapshot").expect("the snapshot holds the row");
    eventually(
        WAIT,
        "more heartbeats acknowledged after the snapshot",
        || async { beat(&db, live).filter(|(seq, _)| *seq >= kept_seq + 4) },
    )
    .await;

    // Unreachable, so no write is in flight; then the database goes back to the snapshot.
    fwd.switch(None);
    wait_up(&e, "app", 0.0).await;
    let (acked_seq, acked_at) = beat(&db, live).unwrap();
    block(|| {
        db.sql(
            "DELETE FROM dbvigil_heartbeat; \
             INSERT INTO dbvigil_heartbeat SELECT * FROM heartbeat_snapshot;",
        )
    });
    fwd.switch(Some(db.port()));
    wait_up(&e, "app", 1.0).await;

    let m = e.metrics().await;
    let lost = (acked_seq - kept_seq) as f64;
    assert_eq!(
        m.value("dbvigil_writes_lost_total", &[("target", "app")]),
        lost,
        "heartbeats {kept_seq} to {acked_seq} were acknowledged, then gone"
    );
    let span = m.value("dbvigil_last_write_loss_seconds", &[("target", "app")]);
    assert!(
        (span - (acked_at - kept_at) as f64 / 1000.0).abs() < 1e-6,
        "the loss spans from the surviving heartbeat to the last acknowledged one: {span} s"
    );
    let api = e.target_json("app").await;
    let episode = &api["episodes"][0];
    assert_eq!(
        episode["lost_writes"]["writes"],
        acked_seq - kept_seq,
        "{api:#}"
    );

    // A restart of dbvigil starts without an acknowledged heartbeat: what it reads first
    // is its own last row, never a loss.
    e.stop().await;
    let e = TestExporter::start(dir.path(), &yaml).await;
    wait_up(&e, "app", 1.0).await;
    eventually(
        WAIT,
        "the restarted exporter wrote and read back a few heartbeats",
        || async {
            let m = e.metrics().await;
            (m.value("dbvigil_probes_total", &[("target", "app")]) >= 4.0).then_some(m)
        },
    )
    .await;
    assert_eq!(
        e.metrics()
            .await
            .value("dbvigil_writes_lost_total", &[("target", "app")]),
        0.0,
        "a restart of dbvigil is no loss"
    );
    e.stop().await;
}

/// dbvigil restarted while the database is unreachable. The new process has no baseline:
/// the old process's row it reads first (seq n) and its own first writes after (seq 1, 2,
/// ...) are never a loss, though the second is "older" than the first. A baseline taken
/// from the database instead of from this process's own acknowledged writes fails here.
async fn restarted_during_an_outage(engine: Engine) {
    let Some(db) = Db::start(engine) else { return };
    let fwd = Forwarder::start(db.port()).await;
    let dir = tempdir();
    let yaml = through(&db, &fwd);
    let e = TestExporter::start(dir.path(), &yaml).await;
    wait_up(&e, "app", 1.0).await;
    eventually(
        WAIT,
        "the first process wrote a dozen heartbeats",
        || async { beat(&db, "dbvigil_heartbeat").filter(|(seq, _)| *seq >= 12) },
    )
    .await;
    fwd.switch(None);
    wait_up(&e, "app", 0.0).await;
    e.stop().await;
    let (old_seq, _) = beat(&db, "dbvigil_heartbeat").unwrap();

    let restarted = Timestamp::now();
    let e = TestExporter::start(dir.path(), &yaml).await;
    wait_up(&e, "app", 0.0).await;
    fwd.switch(Some(db.port()));
    wait_up(&e, "app", 1.0).await;
    eventually(
        WAIT,
        "the new process's own heartbeats replaced the old row and were read back",
        || async {
            let probes = e
                .metrics()
                .await
                .value("dbvigil_probes_total", &[("target", "app")]);
            let (seq, _) = beat(&db, "dbvigil_heartbeat")?;
            (seq >= 3 && seq < old_seq && probes >= 6.0).then_some(())
        },
    )
    .await;
    let m = e.metrics().await;
    assert_eq!(
        m.value("dbvigil_writes_lost_total", &[("target", "app")]),
        0.0,
        "a restart during an outage is no loss"
    );
    let api = e.target_json("app").await;
    let since: Timestamp = api["writes_lost_counted_since"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("the restarted process says where its baseline starts: {api:#}"));
    assert!(
        since >= restarted,
        "the baseline is the new process's first acknowledged write ({since}), not older than its start ({restarted})"
    );
    assert!(api["episodes"][0]["lost_writes"].is_null(), "{api:#}");
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_of_dbvigil_during_an_outage_is_no_loss() {
    restarted_during_an_outage(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_restart_of_dbvigil_during_an_outage_is_no_loss() {
    restarted_during_an_outage(Engine::MariaDb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restored_database_reports_the_acknowledged_writes_it_lost() {
    restored_older_than_acknowledged(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_restored_database_reports_the_acknowledged_writes_it_lost() {
    restored_older_than_acknowledged(Engine::MariaDb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_blue_green_tells_write_downtime_from_read_downtime() {
    blue_green(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_blue_green_tells_write_downtime_from_read_downtime() {
    blue_green(Engine::MariaDb).await;
}

/// A failover to an asynchronous standby: the primary goes on acknowledging heartbeats the
/// standby never receives (its replication stream, through a port of the test's own, loses
/// every packet), then the primary freezes and the standby is promoted. dbvigil must count
/// exactly the heartbeats the primary acknowledged after the standby's last one. With the
/// standby caught up, the same failover loses nothing.
async fn failover_to_a_standby(lagging: bool) {
    let Some((primary, replication, standby, clients)) = replicated_behind_forwarders().await
    else {
        return;
    };
    let dir = tempdir();
    let yaml = format!(
        "targets:\n  - name: app\n    kind: postgres\n    host: 127.0.0.1\n    port: {}\n    \
         user: probe\n    password: probe-pw\n    database: app\n    \
         tls: {{mode: verify-full, ca_file: {}}}\n    interval: 200ms\n    failure_threshold: 2\n",
        clients.port,
        test_certs().ca_file.display()
    );
    let e = TestExporter::start(dir.path(), &yaml).await;
    wait_up(&e, "app", 1.0).await;
    let row = |server: &PgServer| -> Option<(i64, i64)> {
        let exists = block(|| {
            server
                .psql("\\c app\nSELECT count(*) FROM pg_class WHERE relname = 'dbvigil_heartbeat';")
        });
        if exists.trim() != "1" {
            return None;
        }
        let out = block(|| {
            server.psql(
                "\\c app\nSELECT seq, beat_at_ms FROM dbvigil_heartbeat WHERE target = 'app';",
            )
        });
        let (seq, at) = out.trim().split_once('|')?;
        Some((seq.parse().ok()?, at.parse().ok()?))
    };
    eventually(WAIT, "the standby holds a heartbeat", || async {
        row(&standby).filter(|(seq, _)| *seq >= 3)
    })
    .await;

    let cut = if lagging {
        let Some(cut) = DropPackets::start(replication.port) else {
            return;
        };
        let (kept, _) = row(&standby).unwrap();
        eventually(
            WAIT,
            "the primary acknowledged heartbeats the standby lacks",
            || async { row(&primary).filter(|(seq, _)| *seq >= kept + 5) },
        )
        .await;
        Some(cut)
    } else {
        None
    };
    // Clients lose the primary; once a probe has failed no write is in flight.
    clients.switch(None);
    wait_up(&e, "app", 0.0).await;
    let (acked_seq, acked_at) = row(&primary).unwrap();
    if !lagging {
        block(|| standby.wait_replay_caught_up(&primary));
    }
    primary.freeze();
    let (kept_seq, kept_at) = row(&standby).unwrap();
    block(|| standby.promote());
    clients.switch(Some(standby.port()));
    wait_up(&e, "app", 1.0).await;
    drop(cut);

    let m = e.metrics().await;
    let lost = m.value("dbvigil_writes_lost_total", &[("target", "app")]);
    assert_eq!(
        lost,
        (acked_seq - kept_seq) as f64,
        "the primary acknowledged heartbeat {acked_seq}, the standby had {kept_seq}"
    );
    if lagging {
        assert!(lost >= 5.0, "{lost}");
        let span = m.value("dbvigil_last_write_loss_seconds", &[("target", "app")]);
        assert!(
            (span - (acked_at - kept_at) as f64 / 1000.0).abs() < 1e-6,
            "the loss spans the heartbeats the standby never received: {span} s"
        );
    }
    assert_eq!(
        m.value("dbvigil_identity_changes_total", &[("target", "app")]),
        1.0
    );
    let api = e.target_json("app").await;
    let sw = &api["switchovers"][0];
    if lagging {
        assert_eq!(sw["lost_writes"]["writes"], acked_seq - kept_seq, "{sw:#}");
    } else {
        assert!(sw["lost_writes"].is_null(), "{sw:#}");
    }
    assert!(sw["first_write_on_new"].is_string(), "{sw:#}");
    // The outage that the failover was tells the same story.
    let story = e.get("/api/v1/targets/app/episodes?since=10m").await;
    let story: serde_json::Value = serde_json::from_str(&story.body).unwrap();
    let episode = &story["episodes"][0];
    assert_eq!(episode["switchover"]["to"], sw["to"], "{story:#}");
    assert_eq!(episode["identity_before"], sw["from"], "{story:#}");
    assert_eq!(episode["identity_after"], sw["to"], "{story:#}");
    assert_eq!(episode["lost_writes"], sw["lost_writes"], "{story:#}");
    let write = episode["check_downtime"]["write"].as_array().unwrap();
    assert_eq!(write.len(), 1, "one write outage: {story:#}");
    let (code, text, err) = report(&e, &[]).await;
    assert_eq!(code, Some(0), "{err}");
    eprintln!("{text}");
    let said = if lagging {
        format!(
            "  acknowledged writes lost: {} heartbeats spanning ",
            acked_seq - kept_seq
        )
    } else {
        "  acknowledged writes lost: none found\n".to_owned()
    };
    assert!(text.contains(&said), "no {said:?} in\n{text}");
    e.stop().await;
    primary.thaw();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_to_a_lagging_standby_counts_the_acknowledged_writes_lost() {
    failover_to_a_standby(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_to_a_caught_up_standby_loses_nothing() {
    failover_to_a_standby(false).await;
}

/// The episodes endpoint's time filter and its answers to a wrong name or time, on a
/// target whose port nobody listens on (an outage in progress).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_episodes_endpoint_filters_by_time_and_says_what_is_wrong() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dir = tempdir();
    let yaml = format!(
        "targets:\n  - {{name: gone, kind: tcp, host: 127.0.0.1, port: {port}, interval: 200ms, failure_threshold: 1}}\n"
    );
    let e = TestExporter::start(dir.path(), &yaml).await;
    wait_up(&e, "gone", 0.0).await;
    let json = |path: &'static str| {
        let e = &e;
        async move {
            let r = e.get(path).await;
            (
                r.status,
                serde_json::from_str::<serde_json::Value>(&r.body).unwrap(),
            )
        }
    };

    let (status, all) = json("/api/v1/targets/gone/episodes").await;
    assert_eq!(status, 200, "{all:#}");
    assert_eq!(all["target"], "gone");
    let current = &all["episodes"][0];
    assert!(
        current["ended_at"].is_null(),
        "the outage in progress: {all:#}"
    );
    assert_eq!(current["reason"], "refused", "{all:#}");
    let tcp = current["check_downtime"]["tcp"].as_array().unwrap();
    assert_eq!(tcp.len(), 1, "{all:#}");
    assert_eq!(tcp[0]["from"], current["started_at"], "{all:#}");
    assert!(tcp[0]["to"].is_null(), "still failing: {all:#}");
    assert!(
        all["writes_lost_counted_since"].is_null(),
        "no write check: {all:#}"
    );

    let (_, recent) = json("/api/v1/targets/gone/episodes?since=1h").await;
    // The same episode (its duration grows between the two answers).
    let starts = |v: &serde_json::Value| -> Vec<serde_json::Value> {
        v["episodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["started_at"].clone())
            .collect()
    };
    assert_eq!(
        starts(&recent),
        starts(&all),
        "an outage in progress overlaps any later range: {recent:#}"
    );
    assert!(recent["since"].is_string(), "{recent:#}");
    let (_, before) =
        json("/api/v1/targets/gone/episodes?since=2020-01-01T00:00:00Z&until=2020-01-02T00:00:00Z")
            .await;
    assert_eq!(before["episodes"], serde_json::json!([]), "{before:#}");

    let (status, bad) = json("/api/v1/targets/gone/episodes?since=yesterday").await;
    assert_eq!(status, 400);
    assert_eq!(
        bad["error"],
        "since=\"yesterday\" is neither an RFC 3339 time (such as 2026-12-03T14:00:00Z) nor a duration back from now (such as 15m, 2h or 1d)"
    );
    let (status, swapped) =
        json("/api/v1/targets/gone/episodes?since=2020-01-02T00:00:00Z&until=2020-01-01T00:00:00Z")
            .await;
    assert_eq!(status, 400);
    assert_eq!(
        swapped["error"],
        "since (2020-01-02T00:00:00Z) is after until (2020-01-01T00:00:00Z): swap them"
    );
    let (status, unknown) = json("/api/v1/targets/nope/episodes").await;
    assert_eq!(status, 404);
    assert_eq!(
        unknown["error"],
        "unknown target \"nope\": configured targets are listed at /api/v1/targets"
    );
    e.stop().await;
}
