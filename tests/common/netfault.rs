//! Lost packets: [`DropPackets`] makes every TCP packet to and from a local port vanish
//! (iptables DROP on the loopback interface), so that clients see silence, never a RST:
//! connects time out instead of being refused and open connections stall.
//!
//! Needs root and `iptables` (Debian package `iptables`); otherwise the guard is not made
//! and the test is skipped through `skip_or_fail` (a failure under `CI=true`).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::servers::{find_in, find_program, is_root, skip_or_fail};

/// Comment prefix of every rule this harness adds: `dbvigil-test-<pid>-<port>`.
const COMMENT_PREFIX: &str = "dbvigil-test-";

/// While alive, packets to and from 127.0.0.1:`port` over `lo` are dropped. Two rules
/// in the INPUT chain (`--dport PORT` and `--sport PORT`, `-i lo`, `-j DROP`), tagged with
/// the comment `dbvigil-test-<pid>-<port>`; both are removed on Drop, so also when the
/// test panics (unwinding). Rules left by killed test processes are removed by the next
/// [`DropPackets::start`] (their pid no longer exists).
pub struct DropPackets {
    iptables: PathBuf,
    port: u16,
    comment: String,
    /// Rule specifications inserted so far (without `-I INPUT`).
    rules: Vec<Vec<String>>,
}

impl DropPackets {
    /// Starts dropping. `None` (after printing `SKIPPED: ...`) when not root or when
    /// iptables is missing, unless `CI=true`. Panics when iptables refuses the rules.
    pub fn start(port: u16) -> Option<DropPackets> {
        if !is_root() {
            skip_or_fail("dropping packets with iptables needs root");
            return None;
        }
        let Some(iptables) = find_program("iptables")
            .or_else(|| find_in("iptables", ["/usr/sbin", "/sbin"].map(PathBuf::from)))
        else {
            skip_or_fail("iptables not found (Debian package `iptables`)");
            return None;
        };
        remove_leftover_rules(&iptables);
        let comment = format!("{COMMENT_PREFIX}{}-{port}", std::process::id());
        let mut guard = DropPackets {
            iptables,
            port,
            comment,
            rules: Vec::new(),
        };
        for direction in ["--dport", "--sport"] {
            let spec: Vec<String> = [
                "-i",
                "lo",
                "-p",
                "tcp",
                direction,
                &port.to_string(),
                "-m",
                "comment",
                "--comment",
                &guard.comment,
                "-j",
                "DROP",
            ]
            .map(String::from)
            .to_vec();
            let mut args = vec!["-w".to_owned(), "10".into(), "-I".into(), "INPUT".into()];
            args.extend(spec.iter().cloned());
            // On failure, `guard` is dropped by the panic and removes what was inserted.
            run(&guard.iptables, &args).unwrap_or_else(|e| panic!("iptables {args:?}: {e}"));
            guard.rules.push(spec);
        }
        Some(guard)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The comment tagging this guard's rules.
    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// Stops dropping now (the same as dropping the guard).
    pub fn stop(self) {}
}

impl Drop for DropPackets {
    fn drop(&mut self) {
        for spec in self.rules.drain(..).rev() {
            let mut args = vec!["-w".to_owned(), "10".into(), "-D".into(), "INPUT".into()];
            args.extend(spec);
            if let Err(e) = run(&self.iptables, &args) {
                eprintln!("WARNING: cannot remove iptables rule {args:?}: {e}");
            }
        }
    }
}

/// The INPUT rules tagged `dbvigil-test-<pid>-...` (as `iptables -S` prints them).
pub fn tagged_rules() -> Vec<String> {
    let Some(iptables) = find_program("iptables")
        .or_else(|| find_in("iptables", ["/usr/sbin", "/sbin"].map(PathBuf::from)))
    else {
        return Vec::new();
    };
    list_rules(&iptables)
}

fn list_rules(iptables: &PathBuf) -> Vec<String> {
    let out = Command::new(iptables)
        .args(["-w", "10", "-S", "INPUT"])
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(COMMENT_PREFIX))
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    }
}

/// Removes rules whose tagging process no longer exists.
fn remove_leftover_rules(iptables: &PathBuf) {
    for rule in list_rules(iptables) {
        let words: Vec<&str> = rule.split_whitespace().collect();
        let Some(tag) = words.iter().find(|w| w.starts_with(COMMENT_PREFIX)) else {
            continue;
        };
        let pid = tag[COMMENT_PREFIX.len()..].split('-').next().unwrap_or("");
        if pid.is_empty() || std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if words.first() == Some(&"-A") {
            let mut args = vec!["-w".to_owned(), "10".into(), "-D".into()];
            args.extend(words[1..].iter().map(|w| w.to_string()));
            let _ = run(iptables, &args);
        }
    }
}

fn run(iptables: &PathBuf, args: &[String]) -> Result<(), String> {
    let out = Command::new(iptables)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", iptables.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}
