//! `dbvigil hash-password`: a bcrypt hash for basic_auth_users in --web.config.file.

use std::process::ExitCode;

/// Reads one line, so `echo -n secret | dbvigil hash-password` and typing it both work;
/// the password is never echoed back.
pub fn run(cost: u32) -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("cannot read the password from standard input: {e}");
        return ExitCode::FAILURE;
    }
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        eprintln!(
            "empty password: pipe the password on standard input, e.g. `dbvigil hash-password < password.txt`"
        );
        return ExitCode::FAILURE;
    }
    match bcrypt::hash(password, cost) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot hash the password: {e}");
            ExitCode::FAILURE
        }
    }
}
