//! Sharding one configuration across replicas: three real exporter processes with
//! `--shard.count 3` hold every target exactly once, a failover group on one of them; four
//! processes move about a quarter of the targets, all to the new shard. docs/scaling.md.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Running, eventually, request, tempdir};

const WAIT: Duration = Duration::from_secs(15);
const GROUP: [&str; 3] = ["pair-a", "pair-b", "pair-c"];

/// 60 lone tcp targets and a group of three, all at one local listener.
fn configuration(port: u16) -> String {
    let mut yaml = String::from("defaults: {interval: 1s, timeout: 500ms}\ntargets:\n");
    let names = (0..60)
        .map(|i| format!("db-{i:02}"))
        .chain(GROUP.iter().map(|s| (*s).to_owned()));
    for name in names {
        yaml.push_str(&format!(
            "  - {{name: {name}, kind: tcp, host: 127.0.0.1, port: {port}}}\n"
        ));
    }
    yaml.push_str(&format!(
        "groups:\n  - {{name: orders, eligibility: reachable, members: [{}]}}\n",
        GROUP.join(", ")
    ));
    yaml
}

/// `count` replicas over `config`, each in a directory of its own.
async fn replicas(dir: &Path, config: &Path, count: u32) -> Vec<Running> {
    let mut out = Vec::new();
    for index in 0..count {
        let cwd = dir.join(format!("of{count}-{index}"));
        std::fs::create_dir_all(&cwd).unwrap();
        let (index, count) = (index.to_string(), count.to_string());
        let args = [
            "--config.file",
            config.to_str().unwrap(),
            "--shard.count",
            &count,
            "--shard.index",
            &index,
        ];
        out.push(Running::start(&cwd, &args, &[]).await);
    }
    out
}

/// Which replica holds each target, from their /api/v1/targets; panics on a target held
/// twice, and checks each replica's `dbvigil_shard_*` gauges against what it lists.
async fn holders(replicas: &[Running], configured: usize) -> BTreeMap<String, usize> {
    let mut held = BTreeMap::new();
    for (index, r) in replicas.iter().enumerate() {
        let body = request(r.addr, "GET", "/api/v1/targets", &[]).await.body;
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        let names: Vec<String> = json["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        let m = r.metrics().await;
        assert_eq!(m.value("dbvigil_shard_index", &[]), index as f64);
        assert_eq!(m.value("dbvigil_shard_count", &[]), replicas.len() as f64);
        assert_eq!(m.value("dbvigil_shard_targets", &[]), names.len() as f64);
        assert_eq!(
            m.value("dbvigil_configured_targets", &[]),
            configured as f64
        );
        for name in names {
            if let Some(other) = held.insert(name.clone(), index) {
                panic!("{name} is on replica {other} and on replica {index}");
            }
        }
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_targets_and_a_new_shard_takes_only_its_share() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            drop(conn);
        }
    });
    let dir = tempdir();
    let config = dir.path().join("dbvigil.yml");
    let yaml = configuration(port);
    std::fs::write(&config, &yaml).unwrap();
    let all: BTreeSet<String> = yaml
        .lines()
        .filter_map(|l| l.strip_prefix("  - {name: "))
        .filter_map(|l| l.split(',').next())
        .filter(|n| *n != "orders")
        .map(str::to_owned)
        .collect();
    assert_eq!(all.len(), 63);

    let three = replicas(dir.path(), &config, 3).await;
    let before = holders(&three, all.len()).await;
    assert_eq!(before.keys().cloned().collect::<BTreeSet<_>>(), all);
    let home = before[GROUP[0]];
    for m in GROUP {
        assert_eq!(before[m], home, "{m} is not with {}", GROUP[0]);
    }
    for (index, r) in three.iter().enumerate() {
        let held = before.values().filter(|h| **h == index).count();
        assert!(held > 0, "replica {index} holds no target");
        // The group is decided where its members are probed, and only there.
        let groups = request(r.addr, "GET", "/api/v1/groups", &[]).await.body;
        assert_eq!(groups.contains("\"orders\""), index == home, "{groups}");
    }
    // Every member is probed, and the group picks one, on its replica.
    eventually(WAIT, "the group's replica probes its members", || async {
        let m = three[home].metrics().await;
        GROUP
            .iter()
            .all(|t| m.get("dbvigil_up", &[("target", t)]) == Some(1.0))
            .then_some(())
    })
    .await;
    // /probe of a target another replica holds names the replica that holds it.
    let elsewhere = (home + 1) % 3;
    let answer = request(
        three[elsewhere].addr,
        "GET",
        &format!("/probe?target={}", GROUP[0]),
        &[],
    )
    .await;
    assert_eq!(answer.status, 421, "{}", answer.body);
    assert_eq!(
        answer.body,
        format!(
            "target \"{}\" is probed by shard {home} of 3 (--shard.index {home}); this replica is shard {elsewhere}: send the probe there\n",
            GROUP[0]
        )
    );
    for r in three {
        r.terminate();
    }

    let four = replicas(dir.path(), &config, 4).await;
    let after = holders(&four, all.len()).await;
    assert_eq!(after.keys().cloned().collect::<BTreeSet<_>>(), all);
    let moved: Vec<&String> = all.iter().filter(|t| before[*t] != after[*t]).collect();
    for t in &moved {
        assert_eq!(
            after[*t], 3,
            "{t} moved from {} to {}: only the new shard may take targets",
            before[*t], after[*t]
        );
    }
    let share = moved.len() as f64 / all.len() as f64;
    println!(
        "3 -> 4 shards: {} of {} targets moved ({share:.3}), all to shard 3",
        moved.len(),
        all.len()
    );
    assert!(
        (0.10..=0.45).contains(&share),
        "moved share {share:.3}, expected near 1/4"
    );
    for m in GROUP {
        assert_eq!(after[m], after[GROUP[0]]);
    }
    for r in four {
        r.terminate();
    }
}

#[test]
fn a_shard_outside_the_count_or_without_an_index_is_refused() {
    let dir = tempdir();
    let config = dir.path().join("dbvigil.yml");
    std::fs::write(&config, configuration(1)).unwrap();
    let run = |args: &[&str], pod: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_dbvigil"))
            .current_dir(dir.path())
            .args(["--web.listen-address", "127.0.0.1:0", "--config.file"])
            .arg(&config)
            .args(args)
            .env_remove("DBVIGIL_SHARD_INDEX")
            .env_remove("DBVIGIL_SHARD_COUNT")
            .env("POD_NAME", pod)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} started");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = run(&["--shard.index", "3", "--shard.count", "3"], "dbvigil-0");
    assert!(
        stderr.contains("--shard.index 3 is not below --shard.count 3: shards are numbered 0 to 2"),
        "{stderr}"
    );
    let stderr = run(&["--shard.count", "0"], "dbvigil-0");
    assert!(
        stderr.contains("--shard.count must be at least 1"),
        "{stderr}"
    );
    let stderr = run(&["--shard.count", "3"], "laptop");
    assert!(
        stderr.contains(
            "--shard.count 3 needs the index of this replica: pass --shard.index (0 to 2) or set DBVIGIL_SHARD_INDEX, or run as a StatefulSet pod"
        ),
        "{stderr}"
    );
}
