//! Input meant to hurt: YAML bombs, deep nesting, huge files, and arbitrary text thrown at
//! every parser of user input. Each gets a clear error, never a panic, a hang or unbounded
//! memory.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use dbvigil::config;
use dbvigil::migrate::{plan, script};
use proptest::prelude::*;

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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

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
