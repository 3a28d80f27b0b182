//! The benchmark harness (bench/) in its smoke mode: every scenario, small and short,
//! against throwaway servers, with this build's binary. The figures themselves belong to
//! the full run (`bench/run.sh`, docs/benchmarks.md); this holds the harness to working,
//! and dbvigil to the behaviour the benchmarks claim, with generous bounds.

mod common;

use std::path::Path;
use std::process::Command;

use common::servers::skip_or_fail;

fn tool_missing(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map_or(true, |o| !o.status.success())
}

#[test]
fn every_scenario_runs_and_dbvigil_keeps_its_claims() {
    for tool in ["python3", "wrk", "psql", "mariadb"] {
        if tool_missing(tool)
            && skip_or_fail(&format!(
                "{tool} is not installed: the benchmark harness needs it"
            ))
        {
            return;
        }
    }
    let out_dir = tempfile::tempdir().unwrap();
    let md = out_dir.path().join("bench.md");
    let json = out_dir.path().join("bench.json");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = Command::new("python3")
        .arg(root.join("bench/bench.py"))
        .args(["--smoke", "--dbvigil", env!("CARGO_BIN_EXE_dbvigil")])
        .arg("--out")
        .arg(&md)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "bench.py --smoke failed:\n{stderr}");

    let text = std::fs::read_to_string(&md).unwrap();
    for n in 1..=8 {
        assert!(
            text.contains(&format!("### {n}. ")),
            "scenario {n} missing from the smoke run's output:\n{text}"
        );
    }
    let figures: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let h = &figures["headlines"];
    let number = |key: &str| {
        h[key]
            .as_f64()
            .unwrap_or_else(|| panic!("headline {key} missing or not a number in {h}"))
    };

    // Scenario 2: a frozen database does not slow dbvigil's scrape (the full run's bar is
    // 1.2; a short run on a busy machine gets room).
    let frozen = number("frozen_ratio_dbvigil");
    assert!(
        frozen < 3.0,
        "a frozen database slowed the scrape {frozen:.2}x:\n{text}"
    );
    // Scenario 3: one outage episode per real outage, within one probe interval of the
    // time logins were refused or of the wall time around the restart (a probe cut by the
    // start of a shutdown can begin the episode a few ms before logins are refused).
    let ok = |key: &str| h[key] == serde_json::Value::Bool(true);
    assert!(
        ok("outage_dbvigil_ok") || ok("outage_dbvigil_ok_vs_wall"),
        "dbvigil missed or misjudged a short outage:\n{text}"
    );
    // Scenario 4, TLS + password logins: dbvigil logged in over TLS on both engines, and a
    // PostgreSQL TLS + SCRAM login is not far behind libpq's against the same server in the
    // same run. sqlx 0.9.0 without TCP_NODELAY took about 94 ms there (transact-rs/sqlx#4335),
    // libpq a few ms: the bar is generous for a debug build on a busy machine, not for that.
    for engine in ["postgres", "mariadb"] {
        for shape in ["", "_tls"] {
            let key = format!("login_median_ms_{engine}_dbvigil{shape}");
            assert!(number(&key) > 0.0, "{key}: {text}");
        }
    }
    let ours = number("login_median_ms_postgres_dbvigil_tls");
    let libpq = number("login_median_ms_postgres_native_tls");
    assert!(
        ours < (3.0 * libpq).max(60.0),
        "a PostgreSQL TLS + SCRAM login took {ours:.1} ms, libpq's {libpq:.1} ms (TCP_NODELAY lost again?):\n{text}"
    );
    // Scenario 5: a scrape flood fails no scrape, and makes no tcp target look down. The
    // SQLite row is reported, not held: SQLite probing is CPU-bound on two cores (each
    // probe opens its file on a thread of its own), so under a flood a debug build can miss
    // probe deadlines for real (docs/benchmarks.md, "Bars not met").
    assert_eq!(
        number("flood_errors"),
        0.0,
        "failed scrapes under a flood:\n{text}"
    );
    assert_eq!(
        number("flood_false_outages_tcp"),
        0.0,
        "a scrape flood made tcp targets look down:\n{text}"
    );
    // Scenario 8: PostgreSQL through a throwaway OpenSSH bastion. Every probe through it
    // succeeded (the harness stops at a failed one), `connection: reuse` logged in on the
    // bastion once per dbvigil process while `connection: fresh` logged in every probe, and
    // the reused path has its figures: the session is kept and the forward carries a login.
    if let Some(why) = h["bastion_skipped"].as_str() {
        skip_or_fail(&format!("scenario 8 not measured: {why}"));
    } else {
        assert!(ok("bastion_probes_ok"), "bastion probes: {text}");
        assert_eq!(
            number("bastion_reuse_logins"),
            number("bastion_reuse_processes"),
            "connection: reuse opened more than one SSH session per process:\n{text}"
        );
        assert!(
            number("bastion_fresh_logins") >= number("bastion_fresh_probes"),
            "connection: fresh did not log in on the bastion at every probe:\n{text}"
        );
        for key in [
            "bastion_via_fresh_total_median_ms",
            "bastion_via_reuse_bastion_median_ms",
            "bastion_via_reuse_connect_median_ms",
            "bastion_ssh_kept_connect_median_ms",
        ] {
            assert!(number(key) > 0.0, "{key}: {text}");
        }
    }
    // Scenario 6: dbvigil applied the scripts on both engines and was compared with
    // another tool (dbmate, which .ci/run installs; sqlx-cli only in the full run).
    for key in ["migrate_ratio_pg", "migrate_ratio_maria"] {
        if h[key].is_null()
            && skip_or_fail(&format!(
                "{key}: neither dbmate nor sqlx-cli is installed, nothing to compare with"
            ))
        {
            continue;
        }
        assert!(number(key) > 0.0, "{key}: {text}");
    }
}
