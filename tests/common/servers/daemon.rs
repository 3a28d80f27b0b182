//! A daemon process we own: launch, readiness, stop, freeze (SIGSTOP of its whole process
//! tree, read from /proc) and thaw.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use super::host::{last_lines, lock, tail};
use super::{DROP_STOP_TIMEOUT, KILL_TIMEOUT, LOG_TAIL_LINES, POLL, READY_TIMEOUT};

/// How long `freeze()` waits for every process to be reported as stopped.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct Daemon {
    name: &'static str,
    /// Signal requesting a clean, quick shutdown.
    stop_signal: i32,
    /// The running process (our direct child), `None` once reaped.
    child: Option<Child>,
    /// PID of the latest launch.
    pid: i32,
    /// stdout + stderr of every launch, appended.
    log: PathBuf,
    /// Length of the log when the latest launch started.
    log_offset: u64,
    /// PIDs SIGSTOPped by `freeze()` and not yet SIGCONTed.
    frozen: Mutex<Vec<i32>>,
}

impl Daemon {
    pub(crate) fn new(name: &'static str, stop_signal: i32, log: PathBuf) -> Daemon {
        Daemon {
            name,
            stop_signal,
            child: None,
            pid: 0,
            log,
            log_offset: 0,
            frozen: Mutex::new(Vec::new()),
        }
    }

    /// PID of the latest launch (it may have exited since).
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    pub(crate) fn launch(&mut self, mut cmd: Command) {
        assert!(
            self.child.is_none(),
            "{} (pid {}) is already running",
            self.name,
            self.pid
        );
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.log.display()));
        self.log_offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        let log2 = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot duplicate a file handle: {e}"));
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot spawn {} ({:?}): {e}", self.name, cmd.get_program())
        });
        self.pid = child.id() as i32;
        self.child = Some(child);
    }

    /// Polls `ready` until it returns true; fails when the process exits first or after
    /// READY_TIMEOUT. The error quotes what the process logged since it was launched.
    pub(crate) fn wait_ready(&mut self, mut ready: impl FnMut() -> bool) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_reap() {
                return Err(format!(
                    "exited ({status}) before accepting connections\n--- {} ---\n{}",
                    self.log.display(),
                    self.log_since_launch()
                ));
            }
            if ready() {
                return Ok(());
            }
            if start.elapsed() > READY_TIMEOUT {
                let _ = self.stop(KILL_TIMEOUT);
                return Err(format!(
                    "not accepting connections after {READY_TIMEOUT:?}\n--- {} ---\n{}",
                    self.log.display(),
                    self.log_since_launch()
                ));
            }
            thread::sleep(POLL);
        }
    }

    /// Reaps the child if it has exited.
    pub(crate) fn try_reap(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Some(status)
            }
            Ok(None) => None,
            Err(_) => {
                // Not our child any more (cannot happen normally): treat as gone.
                self.child = None;
                Some(ExitStatus::default())
            }
        }
    }

    pub(crate) fn is_running(&mut self) -> bool {
        self.try_reap();
        self.child.is_some()
    }

    /// Thaws, sends the stop signal and waits up to `timeout` for the process to exit;
    /// then SIGKILLs it and its descendants. Err when it had to kill. Never panics.
    pub(crate) fn stop(&mut self, timeout: Duration) -> Result<(), String> {
        self.thaw();
        if !self.is_running() {
            return Ok(());
        }
        let pid = self.pid;
        send_signal(pid, self.stop_signal);
        if self.wait_exit(timeout) {
            return Ok(());
        }
        let tree = descendants(pid);
        send_signal(pid, libc::SIGKILL);
        for p in tree {
            send_signal(p, libc::SIGKILL);
        }
        let reaped = self.wait_exit(KILL_TIMEOUT);
        Err(format!(
            "{} (pid {pid}) did not exit within {timeout:?} of signal {}; SIGKILLed it{}",
            self.name,
            self.stop_signal,
            if reaped {
                ""
            } else {
                " (and it still has not exited)"
            }
        ))
    }

    /// SIGKILLs the process and every descendant at once, as when the host goes down: the
    /// whole tree is SIGSTOPped first (parents before children, until a scan finds no new
    /// one), so that nothing forks or is reparented away meanwhile, then killed; returns
    /// once the process is reaped. Err when it is still there after KILL_TIMEOUT. Never
    /// panics. For daemons that fork one child per connection and leave the children
    /// running when they exit themselves (sshd).
    pub(crate) fn kill_tree(&mut self) -> Result<(), String> {
        // Whatever freeze() stopped is still stopped, so still in the tree: found again below.
        lock(&self.frozen).clear();
        let mut tree = Vec::new();
        if self.is_running() {
            let pid = self.pid;
            send_signal(pid, libc::SIGSTOP);
            tree.push(pid);
            for _ in 0..100 {
                let new: Vec<i32> = descendants(pid)
                    .into_iter()
                    .filter(|p| !tree.contains(p))
                    .collect();
                if new.is_empty() {
                    break;
                }
                for p in new {
                    send_signal(p, libc::SIGSTOP);
                    tree.push(p);
                }
            }
        }
        for &p in &tree {
            send_signal(p, libc::SIGKILL);
        }
        if self.wait_exit(KILL_TIMEOUT) {
            Ok(())
        } else {
            Err(format!(
                "{} (pid {}) still has not exited {KILL_TIMEOUT:?} after SIGKILL",
                self.name, self.pid
            ))
        }
    }

    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> bool {
        let start = Instant::now();
        loop {
            if !self.is_running() {
                return true;
            }
            if start.elapsed() > timeout {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub(crate) fn freeze(&self) {
        let pid = self.pid;
        let alive =
            self.child.is_some() && matches!(process_state(pid), Some(s) if s != 'Z' && s != 'X');
        assert!(alive, "freeze: {} (pid {pid}) is not running", self.name);
        let mut frozen = lock(&self.frozen);
        // The parent first, so that it cannot fork new children meanwhile; then its
        // descendants, until a scan finds no new one.
        if !frozen.contains(&pid) {
            send_signal(pid, libc::SIGSTOP);
            frozen.push(pid);
        }
        for _ in 0..100 {
            let new: Vec<i32> = descendants(pid)
                .into_iter()
                .filter(|p| !frozen.contains(p))
                .collect();
            if new.is_empty() {
                break;
            }
            for p in new {
                send_signal(p, libc::SIGSTOP);
                frozen.push(p);
            }
        }
        let start = Instant::now();
        while !frozen.iter().all(|&p| stopped_or_gone(p)) {
            if start.elapsed() > FREEZE_TIMEOUT {
                let pending: Vec<i32> = frozen
                    .iter()
                    .copied()
                    .filter(|&p| !stopped_or_gone(p))
                    .collect();
                drop(frozen);
                self.thaw();
                panic!(
                    "freeze: processes {pending:?} of {} did not stop within {FREEZE_TIMEOUT:?}",
                    self.name
                );
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGCONT to everything frozen (children first) and to any current descendant.
    /// Harmless when nothing is frozen. Never panics.
    pub(crate) fn thaw(&self) {
        let mut frozen = lock(&self.frozen);
        let mut pids = std::mem::take(&mut *frozen);
        if self.child.is_some() {
            for p in descendants(self.pid) {
                if !pids.contains(&p) {
                    pids.push(p);
                }
            }
        }
        for &p in pids.iter().rev() {
            send_signal(p, libc::SIGCONT);
        }
    }

    pub(crate) fn log_since_launch(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            if f.seek(SeekFrom::Start(self.log_offset)).is_ok() {
                let mut bytes = Vec::new();
                let _ = f.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
        last_lines(&text, LOG_TAIL_LINES)
    }

    pub(crate) fn log_tail(&self) -> String {
        format!("--- {} ---\n{}", self.log.display(), tail(&self.log))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Thaws first, the stop signal, then SIGKILL for the whole process tree; ignores
        // errors: a drop must not panic.
        let _ = self.stop(DROP_STOP_TIMEOUT);
    }
}

fn send_signal(pid: i32, sig: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Parses /proc/<path>/stat: (state, ppid). The command name may contain spaces and
/// parentheses, so split after its last ')'.
fn parse_stat(path: &Path) -> Option<(char, i32)> {
    let stat = fs::read_to_string(path).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

fn process_state(pid: i32) -> Option<char> {
    parse_stat(&PathBuf::from(format!("/proc/{pid}/stat"))).map(|(s, _)| s)
}

/// True when every thread of `pid` is stopped (T/t), or the process is a zombie or gone.
fn stopped_or_gone(pid: i32) -> bool {
    match process_state(pid) {
        None | Some('Z') | Some('X') | Some('x') => return true,
        _ => {}
    }
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks
        .flatten()
        .all(|t| match parse_stat(&t.path().join("stat")) {
            None => true,
            Some((s, _)) => matches!(s, 'T' | 't' | 'Z' | 'X' | 'x'),
        })
}

/// All live descendants of `pid` (children, grandchildren, ...), parents before children.
fn descendants(pid: i32) -> Vec<i32> {
    let mut procs: Vec<(i32, i32)> = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            if let Some((state, ppid)) = parse_stat(&e.path().join("stat")) {
                if state != 'Z' && state != 'X' {
                    procs.push((p, ppid));
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(p, ppid) in &procs {
            if ppid == parent && p != pid && !out.contains(&p) {
                out.push(p);
                frontier.push(p);
            }
        }
    }
    out
}
