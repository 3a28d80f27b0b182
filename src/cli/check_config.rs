//! `dbvigil check-config`: validates configuration files, saying what they define.

use std::path::Path;
use std::process::ExitCode;

use crate::config;

pub fn run(path: Option<&Path>, web: Option<&Path>) -> ExitCode {
    if path.is_none() && web.is_none() {
        eprintln!("nothing to check: pass --config.file FILE, --web.config.file FILE, or both");
        return ExitCode::from(2);
    }
    let mut valid = true;
    if let Some(web) = web {
        match config::load_web_file(web) {
            Ok(w) => println!(
                "{}: valid web configuration: {}, {}, {}",
                web.display(),
                if w.tls.is_some() { "TLS" } else { "plain HTTP" },
                match &w.basic_auth {
                    Some(a) if w.auth_excluded_paths.is_empty() =>
                        format!("basic auth for {} user(s)", a.user_count()),
                    Some(a) => format!(
                        "basic auth for {} user(s) except on {}",
                        a.user_count(),
                        w.auth_excluded_paths.join(", ")
                    ),
                    None => "no basic auth".to_owned(),
                },
                match &w.rate_limit {
                    Some(r) => format!(
                        "at most {} requests at once and one more every {}",
                        r.burst(),
                        config::format_duration(r.interval())
                    ),
                    None => "no rate limit".to_owned(),
                }
            ),
            Err(e) => {
                eprintln!("invalid web configuration: {e}");
                valid = false;
            }
        }
    }
    if let Some(path) = path
        && !check_main_config(path)
    {
        valid = false;
    }
    if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn check_main_config(path: &Path) -> bool {
    match config::load_file(path, &super::hostname()) {
        Ok(c) => {
            println!("{}: valid, {} target(s):", path.display(), c.targets.len());
            print_targets(&c.targets);
            if let Some(am) = &c.alertmanager {
                let urls: Vec<String> = am.urls.iter().map(ToString::to_string).collect();
                println!(
                    "maintenance windows become silences in Alertmanager at {} ({} extra matcher set(s), dbvigil's own alerts {})",
                    urls.join(", "),
                    am.silences.len(),
                    if am.own_alerts {
                        "included"
                    } else {
                        "left out"
                    }
                );
            }
            check_target_files(&c)
        }
        Err(e) => {
            eprintln!("invalid configuration: {e}");
            false
        }
    }
}

fn print_targets(targets: &[config::TargetConfig]) {
    for t in targets {
        let bastion = match &t.endpoint {
            config::Endpoint::Server(s) => s.ssh.as_ref().map_or_else(String::new, |ssh| {
                let pin = match &ssh.host_key {
                    config::HostKeyPin::KnownHosts(f) => format!("known_hosts {}", f.display()),
                    config::HostKeyPin::Fingerprint(f) => f.clone(),
                };
                format!(", through the bastion {} (host key: {pin})", ssh.describe())
            }),
            _ => String::new(),
        };
        println!(
            "  {} ({}, every {}, timeout {}{bastion})",
            t.name,
            t.kind.as_str(),
            config::format_duration(t.interval),
            config::format_duration(t.timeout)
        );
    }
}

/// Reads the discovery files once, as the exporter would, so a generator's mistake is
/// found before a reload.
fn check_target_files(c: &config::Config) -> bool {
    if c.target_files.is_empty() {
        return true;
    }
    let taken: Vec<&str> = c.targets.iter().map(|t| t.name.as_str()).collect();
    let (discovered, notices) = config::DiscoveryFiles::default().refresh(&c.target_files, &taken);
    for status in &discovered.files {
        let state = if status.valid { "valid" } else { "INVALID" };
        println!("{}: {state}, {} target(s)", status.file, status.targets);
    }
    for notice in &notices {
        if let config::Notice::Invalid { error, .. } = notice {
            eprintln!("invalid discovery file: {error}");
        }
    }
    if discovered.files.is_empty() {
        println!("target_files: no file matches yet; targets start when one appears");
    }
    println!("{} discovered target(s):", discovered.targets.len());
    print_targets(&discovered.targets);
    discovered.files.iter().all(|f| f.valid)
}
