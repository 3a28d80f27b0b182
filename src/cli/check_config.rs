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
                "{}: valid web configuration: {}, {}",
                web.display(),
                if w.tls.is_some() { "TLS" } else { "plain HTTP" },
                match &w.basic_auth {
                    Some(a) => format!("basic auth for {} user(s)", a.user_count()),
                    None => "no basic auth".to_owned(),
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
            for t in &c.targets {
                println!(
                    "  {} ({}, every {}, timeout {})",
                    t.name,
                    t.kind.as_str(),
                    config::format_duration(t.interval),
                    config::format_duration(t.timeout)
                );
            }
            true
        }
        Err(e) => {
            eprintln!("invalid configuration: {e}");
            false
        }
    }
}
