//! A failover: the primary stops and its streaming standby (`pg_basebackup -R`) is
//! promoted. The promoted server starts a new timeline, and dbvigil must count that as one
//! identity change at the first probe after the promotion: the timeline is read from the
//! WAL being written (`pg_walfile_name(pg_current_wal_lsn())`), not from the last
//! checkpoint, whose timeline changes only when the first checkpoint after the promotion
//! completes (seconds to minutes later, or at once: whenever it happens, the count must
//! not move again).

mod common;

use std::time::{Duration, Instant};

use common::db::{WAIT, block, wait_up};
use common::servers::{PgServer, test_certs};
use common::{TestExporter, eventually, tempdir};

const INTERVAL: Duration = Duration::from_millis(500);

fn target(name: &str, port: u16, extra: &str) -> String {
    format!(
        "  - name: {name}\n    kind: postgres\n    host: 127.0.0.1\n    port: {port}\n    user: probe\n    \
         password: probe-pw\n    database: app\n    tls: {{mode: verify-full, ca_file: {ca}}}\n    \
         interval: {}ms\n{extra}",
        INTERVAL.as_millis(),
        ca = test_certs().ca_file.display()
    )
}

async fn value(e: &TestExporter, name: &str, target: &str) -> f64 {
    e.metrics().await.value(name, &[("target", target)])
}

/// Waits until `target` has run `n` more probes than now.
async fn more_probes(e: &TestExporter, target: &str, n: f64) {
    let from = value(e, "dbvigil_probes_total", target).await;
    eventually(WAIT, &format!("{n} more probes of {target}"), || async {
        (value(e, "dbvigil_probes_total", target).await >= from + n).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_standby_is_one_identity_change_at_its_first_probe() {
    let t = Instant::now();
    let Some(mut primary) = block(PgServer::start) else {
        return;
    };
    block(|| {
        primary
            .psql("CREATE ROLE probe LOGIN PASSWORD 'probe-pw'; CREATE DATABASE app OWNER probe;")
    });
    let standby = block(|| PgServer::start_standby_of(&primary));
    // The standby is read as a standby: no write check (a `role:` key will say so).
    let yaml = format!(
        "targets:\n{}{}",
        target("pg-a", primary.port(), ""),
        target("pg-b", standby.port(), "    checks: [tcp, connect, read]\n"),
    );
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &yaml).await;
    wait_up(&e, "pg-a", 1.0).await;
    wait_up(&e, "pg-b", 1.0).await;
    more_probes(&e, "pg-b", 2.0).await;
    assert_eq!(value(&e, "dbvigil_read_only", "pg-b").await, 1.0);
    assert_eq!(value(&e, "dbvigil_read_only", "pg-a").await, 0.0);
    let before = e.target_json("pg-b").await["identity"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(before.contains("timeline=1 "), "{before}");

    // The primary goes away: the standby stays the same server, still read-only.
    block(|| primary.stop());
    wait_up(&e, "pg-a", 0.0).await;
    more_probes(&e, "pg-b", 2.0).await;
    assert_eq!(
        value(&e, "dbvigil_identity_changes_total", "pg-b").await,
        0.0
    );
    assert_eq!(value(&e, "dbvigil_read_only", "pg-b").await, 1.0);
    assert_eq!(value(&e, "dbvigil_up", "pg-b").await, 1.0);

    block(|| standby.promote());
    let promoted = Instant::now();
    // The first probe after the promotion starts within one interval and ends within its
    // timeout (one interval); the deadline leaves one more interval of slack. No
    // CHECKPOINT has been issued.
    let within = 3 * INTERVAL;
    eventually(
        within,
        "pg-b's identity change, within three intervals of the promotion",
        || async {
            (value(&e, "dbvigil_identity_changes_total", "pg-b").await == 1.0).then_some(())
        },
    )
    .await;
    let seen_after = promoted.elapsed();
    // For the record: whether the checkpoint's timeline (what an identity read from
    // pg_control_checkpoint() would show) had moved yet.
    let checkpoint_tli = block(|| standby.psql("SELECT timeline_id FROM pg_control_checkpoint()"));
    let j = e.target_json("pg-b").await;
    let after = j["identity"]["key"].as_str().unwrap().to_owned();
    assert!(after.contains("timeline=2 "), "{after}");
    assert_eq!(
        before.replace("timeline=1 ", "timeline=2 "),
        after,
        "same cluster, same address: only the timeline moved"
    );
    assert_eq!(value(&e, "dbvigil_read_only", "pg-b").await, 0.0);

    // A checkpoint brings pg_control's timeline along; nothing changes again.
    block(|| standby.psql("CHECKPOINT"));
    assert_eq!(
        block(|| standby.psql("SELECT timeline_id FROM pg_control_checkpoint()")),
        "2"
    );
    more_probes(&e, "pg-b", 4.0).await;
    let m = e.metrics().await;
    assert_eq!(
        m.value("dbvigil_identity_changes_total", &[("target", "pg-b")]),
        1.0
    );
    assert_eq!(m.value("dbvigil_read_only", &[("target", "pg-b")]), 0.0);
    assert_eq!(m.value("dbvigil_up", &[("target", "pg-b")]), 1.0);
    // The standby's probes never failed, promotion included.
    let failed: f64 = m
        .samples
        .iter()
        .filter(|(n, l, _)| {
            n == "dbvigil_probe_failures_total"
                && l.iter().any(|(k, v)| k == "target" && v == "pg-b")
        })
        .map(|(_, _, v)| v)
        .sum();
    assert_eq!(failed, 0.0, "pg-b: {}", j["last_probe"]);
    e.stop().await;
    eprintln!(
        "promotion: identity change seen {:.0} ms after pg_promote returned (checkpoint timeline then: {checkpoint_tli}); test {:.1}s",
        seen_after.as_secs_f64() * 1e3,
        t.elapsed().as_secs_f64()
    );
}
