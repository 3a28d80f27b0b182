//! Targets from discovery files (`target_files:`), on the real binary: a 200-target fleet
//! (tcp and SQLite) whose files change while it runs. Added targets start, removed ones
//! stop, a bad edit keeps the file's previous targets and is reported with file:line:column,
//! a fixed edit applies, and the targets that stay keep probing without a gap. Two shards
//! over the same files split them. docs/scaling.md.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Metrics, Running, TestExporter, eventually, tempdir};
use dbvigil::exporter::ReloadSummary;

const WAIT: Duration = Duration::from_secs(30);

/// Writes a discovery file the way generators should: to a temporary name, then renamed
/// into place, so a refresh never reads half of it.
fn publish(path: &Path, text: &str) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// tcp targets at `127.0.1.N`, all served by one listener on every loopback address.
fn tcp_file(range: std::ops::Range<u32>) -> String {
    let addresses: Vec<String> = range.map(|n| format!("\"127.0.1.{n}\"")).collect();
    format!(
        "[{{\"targets\": [{}], \"labels\": {{\"env\": \"prod\"}}}}]\n",
        addresses.join(", ")
    )
}

fn sqlite_file(range: std::ops::Range<u32>) -> String {
    let paths: Vec<String> = range.map(|n| format!("dbs/app-{n:02}.db")).collect();
    format!(
        "- targets: [{}]\n  labels: {{team: apps}}\n",
        paths.join(", ")
    )
}

/// The targets with a `dbvigil_up` series, and those of them that are up.
fn listed(m: &Metrics) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut all = BTreeSet::new();
    let mut up = BTreeSet::new();
    for (name, labels, value) in &m.samples {
        let Some((_, target)) = labels.iter().find(|(k, _)| k == "target") else {
            continue;
        };
        if name == "dbvigil_up" {
            all.insert(target.clone());
            if *value == 1.0 {
                up.insert(target.clone());
            }
        }
    }
    (all, up)
}

fn up_targets(m: &Metrics) -> BTreeSet<String> {
    listed(m).1
}

fn has_target_series(m: &Metrics, target: &str) -> bool {
    m.samples
        .iter()
        .any(|(_, labels, _)| labels.iter().any(|(k, v)| k == "target" && v == target))
}

fn expected(tcp: std::ops::Range<u32>, sqlite: std::ops::Range<u32>) -> BTreeSet<String> {
    tcp.map(|n| format!("edge-127.0.1.{n}"))
        .chain(sqlite.map(|n| format!("dbs_app-{n:02}.db")))
        .collect()
}

fn configuration(port: u16) -> String {
    format!(
        r#"defaults: {{interval: 1s, timeout: 800ms}}
target_files:
  - files: [sd/*.json]
    name_prefix: edge-
    refresh_interval: 250ms
    template: {{kind: tcp, port: {port}, phase_buckets: coarse}}
  - files: [sd/*.yml]
    refresh_interval: 250ms
    template: {{kind: sqlite, create: true, labels: {{tier: embedded}}}}
"#
    )
}

/// A directory with `sd/dbs/`, the configuration, and a listener for its tcp targets:
/// (directory, `sd/`, configuration path).
async fn fleet() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempdir();
    let sd = dir.path().join("sd");
    std::fs::create_dir_all(sd.join("dbs")).unwrap();
    let port = listener().await;
    let config = dir.path().join("dbvigil.yml");
    std::fs::write(&config, configuration(port)).unwrap();
    (dir, sd, config)
}

/// Accepts on every loopback address and closes each connection at once: the tcp check
/// needs only the handshake.
async fn listener() -> u16 {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let _ = listener.accept().await;
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_target_discovery_file_changes_while_running() {
    let (dir, sd, config) = fleet().await;
    let (tcp, yml) = (sd.join("fleet.json"), sd.join("apps.yml"));
    publish(&tcp, &tcp_file(0..150));
    publish(&yml, &sqlite_file(0..50));
    let exporter = Running::start(
        dir.path(),
        &["--config.file", config.to_str().unwrap()],
        &[],
    )
    .await;

    let all = expected(0..150, 0..50);
    eventually(WAIT, "all 200 discovered targets up", || async {
        (up_targets(&exporter.metrics().await) == all).then_some(())
    })
    .await;
    let m = exporter.metrics().await;
    assert_eq!(m.value("dbvigil_configured_targets", &[]), 200.0);
    assert_eq!(
        m.value(
            "dbvigil_up",
            &[("target", "edge-127.0.1.7"), ("env", "prod")]
        ),
        1.0,
        "the file's labels reach the series"
    );
    assert_eq!(
        m.value(
            "dbvigil_up",
            &[
                ("target", "dbs_app-03.db"),
                ("team", "apps"),
                ("tier", "embedded")
            ]
        ),
        1.0,
        "the template's labels and the file's together"
    );

    // Targets that stay through every edit must keep their state and schedule: their
    // probe counts go on from here (a restarted target would count from zero again).
    const KEPT: [&str; 3] = ["edge-127.0.1.20", "edge-127.0.1.149", "dbs_app-30.db"];
    let slots = |m: &Metrics, target: &str| {
        m.value("dbvigil_probes_total", &[("target", target)])
            + m.value("dbvigil_probe_skipped_slots_total", &[("target", target)])
    };
    let before = eventually(WAIT, "five probes of the targets that stay", || async {
        let m = exporter.metrics().await;
        let counts: Vec<f64> = KEPT.iter().map(|t| slots(&m, t)).collect();
        counts.iter().all(|&c| c >= 5.0).then_some(counts)
    })
    .await;
    let first_edit = Instant::now();

    // Additions and removals: 10 tcp targets go, 10 come.
    publish(&tcp, &tcp_file(10..160));
    let changed = expected(10..160, 0..50);
    eventually(WAIT, "the edited tcp file applied", || async {
        let (all, up) = listed(&exporter.metrics().await);
        (all == changed && up == changed).then_some(())
    })
    .await;
    let file = tcp.display().to_string();
    let m = exporter.metrics().await;
    assert_eq!(
        m.value("dbvigil_target_file_targets", &[("file", &file)]),
        150.0
    );
    assert!(
        !has_target_series(&m, "edge-127.0.1.3"),
        "a removed target's series disappear"
    );

    // A bad edit: the file's previous 50 targets stay, and the log says where.
    std::fs::write(&yml, "- targets: [dbs/app-00.db\n  labels: {team: apps}\n").unwrap();
    let shown = yml.display().to_string();
    eventually(WAIT, "the bad edit reported", || async {
        let m = exporter.metrics().await;
        (m.get("dbvigil_target_file_valid", &[("file", &shown)]) == Some(0.0)).then_some(())
    })
    .await;
    let m = exporter.metrics().await;
    assert_eq!(
        m.value("dbvigil_target_file_targets", &[("file", &shown)]),
        50.0
    );
    assert_eq!(up_targets(&m), changed, "nothing stopped for a bad file");
    let log = exporter.log();
    let line = log
        .lines()
        .find(|l| l.contains("invalid discovery file"))
        .unwrap_or_else(|| panic!("no log line for the bad file:\n{log}"));
    assert!(line.contains(&format!("{shown}:")), "{line}");
    assert!(line.contains("kept=50"), "{line}");

    // The fixed edit drops five SQLite targets.
    publish(&yml, &sqlite_file(5..50));
    let fixed = expected(10..160, 5..50);
    eventually(WAIT, "the fixed edit applied", || async {
        let m = exporter.metrics().await;
        (m.get("dbvigil_target_file_valid", &[("file", &shown)]) == Some(1.0)
            && up_targets(&m) == fixed)
            .then_some(())
    })
    .await;

    let m = exporter.metrics().await;
    let elapsed = first_edit.elapsed().as_secs_f64();
    for (kept, before) in KEPT.iter().zip(before) {
        let after = slots(&m, kept);
        assert!(
            after - before >= elapsed - 2.0,
            "{kept}: {before} probe slots before the edits, {after} {elapsed:.1} s later: restarted or missed"
        );
        assert!(m.failures(kept).is_empty(), "{kept} failed a probe");
    }

    // A reload with a changed template remakes the targets of its files.
    let changed = std::fs::read_to_string(&config)
        .unwrap()
        .replace("tier: embedded", "tier: edge");
    std::fs::write(&config, changed).unwrap();
    exporter.signal(libc::SIGHUP);
    eventually(WAIT, "the new template applied on reload", || async {
        let m = exporter.metrics().await;
        (m.get(
            "dbvigil_up",
            &[("target", "dbs_app-30.db"), ("tier", "edge")],
        ) == Some(1.0))
        .then_some(())
    })
    .await;
    exporter.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_split_the_discovered_targets() {
    let (dir, sd, config) = fleet().await;
    publish(&sd.join("fleet.json"), &tcp_file(0..40));
    let config = config.display().to_string();
    let mut shards = Vec::new();
    for index in ["0", "1"] {
        let cwd = dir.path().join(format!("shard-{index}"));
        std::fs::create_dir(&cwd).unwrap();
        let args = [
            "--config.file",
            &config,
            "--shard.count",
            "2",
            "--shard.index",
            index,
        ];
        shards.push(Running::start(&cwd, &args, &[]).await);
    }
    let all = expected(0..40, 0..0);
    let held = eventually(WAIT, "the shards hold every target once", || async {
        let mut held = Vec::new();
        for s in &shards {
            held.push(up_targets(&s.metrics().await));
        }
        let union: BTreeSet<String> = held.iter().flatten().cloned().collect();
        (union == all && held.iter().map(BTreeSet::len).sum::<usize>() == 40).then_some(held)
    })
    .await;
    for (s, mine) in shards.iter().zip(&held) {
        let m = s.metrics().await;
        assert_eq!(m.value("dbvigil_configured_targets", &[]), 40.0);
        assert_eq!(m.value("dbvigil_shard_targets", &[]), mine.len() as f64);
        assert!(!mine.is_empty(), "a shard of 40 targets holds some");
    }
}

/// One step of the discovery loop, as the loop runs it: exactly the changed targets start
/// and stop, an unchanged file changes nothing, and a bad file stops nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_discovery_step_starts_and_stops_only_what_changed() {
    let dir = tempdir();
    let sd = dir.path().join("sd");
    std::fs::create_dir(&sd).unwrap();
    let port = listener().await;
    let file = sd.join("fleet.json");
    publish(&file, &tcp_file(0..5));
    // The loop itself waits an hour: only the steps below read the files.
    let yaml = format!(
        "targets:\n  - {{name: static, kind: tcp, host: 127.0.0.1, port: {port}}}\n\
         target_files:\n  - {{files: [sd/*.json], refresh_interval: 1h, template: {{kind: tcp, port: {port}}}}}\n"
    );
    let e = TestExporter::start(dir.path(), &yaml).await;
    let names = |e: &TestExporter| -> Vec<String> {
        e.exporter
            .targets()
            .iter()
            .map(|t| t.config.name.clone())
            .collect()
    };
    assert_eq!(
        names(&e),
        [
            "static",
            "127.0.1.0",
            "127.0.1.1",
            "127.0.1.2",
            "127.0.1.3",
            "127.0.1.4"
        ]
    );
    assert_eq!(e.exporter.discovery_step().await, None, "nothing changed");

    publish(&file, &tcp_file(2..8));
    let summary = e.exporter.discovery_step().await;
    assert_eq!(
        summary,
        Some(ReloadSummary {
            kept: 4,
            started: 3,
            stopped: 2
        }),
        "static and 127.0.1.2 to .4 kept, .5 to .7 started, .0 and .1 stopped"
    );

    std::fs::write(&file, "[{\"targets\": [").unwrap();
    assert_eq!(
        e.exporter.discovery_step().await,
        None,
        "a bad file stops nothing"
    );
    let status = e.exporter.target_files();
    assert!(!status[0].valid && status[0].targets == 6, "{status:?}");
    assert_eq!(names(&e).len(), 7);

    std::fs::remove_file(&file).unwrap();
    let summary = e.exporter.discovery_step().await;
    assert_eq!(
        summary,
        Some(ReloadSummary {
            kept: 1,
            started: 0,
            stopped: 6
        }),
        "a file no pattern matches takes its targets with it"
    );
    assert_eq!(names(&e), ["static"]);
    assert!(e.exporter.target_files().is_empty());
    e.stop().await;
}
