//! One-shot commands (setup tools, SQL clients), each bounded by a deadline.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::KILL_TIMEOUT;

/// Runs `cmd` to completion with stdin null and stdout + stderr in `log`, killing it
/// after `timeout`.
pub(crate) fn run_logged(mut cmd: Command, log: &Path, timeout: Duration) -> Result<(), String> {
    let file = File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let file2 = file.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null()).stdout(file).stderr(file2);
    let program = cmd.get_program().to_owned();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot spawn {program:?}: {e}"))?;
    match wait_child(&mut child, timeout) {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(format!("{program:?} exited with {status}")),
        None => {
            let _ = child.kill();
            let _ = wait_child(&mut child, KILL_TIMEOUT);
            Err(format!(
                "{program:?} did not finish within {timeout:?}; killed it"
            ))
        }
    }
}

/// Runs a client with `input` on stdin, capturing stdout and stderr; kills it after
/// `timeout`.
pub(crate) fn run_client(
    mut cmd: Command,
    input: &str,
    timeout: Duration,
) -> Result<Output, String> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let program = cmd.get_program().to_owned();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot spawn {program:?}: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_owned();
    // Writer and readers on their own threads: no pipe can fill up and deadlock.
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let status = match wait_child(&mut child, timeout) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = wait_child(&mut child, KILL_TIMEOUT);
            return Err(format!(
                "{program:?} did not finish within {timeout:?}; killed it"
            ));
        }
    };
    let _ = writer.join();
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Runs `cmd` with all stdio null; true when it exits with status 0 within 10 s.
pub(crate) fn quiet_status(mut cmd: Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let Ok(mut child) = cmd.spawn() else {
        return false;
    };
    match wait_child(&mut child, Duration::from_secs(10)) {
        Some(status) => status.success(),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            false
        }
    }
}

/// Polls `child` until it exits (and is reaped) or `timeout` passes.
fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(_) => return Some(ExitStatus::default()),
        }
        if start.elapsed() > timeout {
            return None;
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Makes `cmd` run as (uid, gid) (std drops supplementary groups), from `/`.
pub(crate) fn as_user(cmd: &mut Command, ids: Option<(u32, u32)>) {
    if let Some((uid, gid)) = ids {
        cmd.uid(uid).gid(gid);
    }
    cmd.current_dir("/");
}
