//! The SSH bastion of the test harness (tests/common/sshd.rs), checked with the real
//! OpenSSH client: a local forward carries a PostgreSQL query over TLS with a password,
//! PermitOpen refuses every other destination, a pinned other host key is refused, freeze
//! and thaw hold and release new and established connections, stop kills established
//! forwards, restarts keep the host key, and the agent, the encrypted key and the password
//! login all log in (and fail with the wrong secret).

mod common;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::servers::{PgServer, free_port, run_client, skip_or_fail};
use common::sshd::{Bastion, BastionOptions, banner};
use common::tempdir;

const SSH: &str = "/usr/bin/ssh";
/// Deadline of one ssh run (login, forward, answer).
const SSH_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a frozen bastion must stay silent.
const FROZEN: Duration = Duration::from_secs(1);
/// How long anything that should happen may take.
const WAIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The bastion, or None (SKIPPED) when sshd or the ssh client is missing.
fn bastion(options: BastionOptions) -> Option<Bastion> {
    if !Path::new(SSH).exists() {
        skip_or_fail("the OpenSSH client /usr/bin/ssh (openssh-client) is missing");
        return None;
    }
    Bastion::start_with(options)
}

fn permit(ports: &[u16]) -> BastionOptions {
    BastionOptions {
        permit_open: ports.iter().map(|&p| ("127.0.0.1".to_owned(), p)).collect(),
        ..BastionOptions::default()
    }
}

/// A TCP endpoint on 127.0.0.1 that writes `greeting from PORT\n` to every connection and
/// hangs up; counts the connections it accepted.
struct Greeter {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl Greeter {
    fn start() -> Greeter {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                let _ = conn.write_all(format!("greeting from {port}\n").as_bytes());
            }
        });
        Greeter { port, accepted }
    }

    fn greeting(&self) -> String {
        format!("greeting from {}\n", self.port)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// ssh to the bastion checking its host key against `known_hosts`, with no identity, agent
/// or askpass from the environment and no ssh_config; the caller adds how to log in,
/// what to forward, and the destination.
fn ssh(bastion: &Bastion, known_hosts: &Path) -> Command {
    let mut cmd = Command::new(SSH);
    cmd.args(["-F", "/dev/null", "-p", &bastion.port().to_string(), "-o"])
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "ConnectTimeout=10",
        ])
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("SSH_ASKPASS")
        .env_remove("SSH_ASKPASS_REQUIRE")
        .env_remove("DISPLAY");
    cmd
}

/// [`ssh`] logging in with `key` only, never prompting.
fn ssh_with_key(bastion: &Bastion, known_hosts: &Path, key: &Path) -> Command {
    let mut cmd = ssh(bastion, known_hosts);
    cmd.args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i"])
        .arg(key);
    cmd
}

/// Makes ssh read passwords and passphrases from a script that prints `secret`.
fn with_askpass(cmd: &mut Command, dir: &Path, secret: &str) {
    let script = dir.join(format!("askpass-{}", free_port()));
    fs::write(&script, format!("#!/bin/sh\nprintf '%s\\n' '{secret}'\n")).unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o700)).unwrap();
    cmd.env("SSH_ASKPASS", &script)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .args(["-o", "BatchMode=no", "-o", "NumberOfPasswordPrompts=1"]);
}

/// `ssh -W 127.0.0.1:PORT user@127.0.0.1` with stdin closed: the forwarded destination's
/// bytes on stdout.
fn run_w(mut cmd: Command, user: &str, port: u16) -> Output {
    cmd.arg("-W")
        .arg(format!("127.0.0.1:{port}"))
        .arg(format!("{user}@127.0.0.1"));
    run_client(cmd, "", SSH_TIMEOUT).unwrap_or_else(|e| panic!("ssh -W: {e}"))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn assert_greeted(out: &Output, greeter: &Greeter, bastion: &Bastion) {
    assert!(
        out.status.success() && stdout(out) == greeter.greeting(),
        "ssh -W to {} failed ({}): stdout {:?}, stderr {:?}\n{}",
        greeter.port,
        out.status,
        stdout(out),
        stderr(out),
        bastion.log_tail()
    );
}

/// `ssh -N -L 127.0.0.1:LOCAL:127.0.0.1:TO` in the background; killed on drop.
struct Forward {
    child: Child,
    local: u16,
    stderr: PathBuf,
}

impl Forward {
    /// Returns once the local port accepts connections.
    fn start(bastion: &Bastion, dir: &Path, to: u16) -> Forward {
        let local = free_port();
        let stderr = dir.join(format!("ssh-L-{local}.log"));
        let mut cmd = ssh_with_key(bastion, bastion.known_hosts(), bastion.client_key());
        cmd.args(["-N", "-o", "ExitOnForwardFailure=yes", "-L"])
            .arg(format!("127.0.0.1:{local}:127.0.0.1:{to}"))
            .arg(format!("{}@127.0.0.1", bastion.user()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).unwrap());
        let mut forward = Forward {
            child: cmd.spawn().unwrap(),
            local,
            stderr,
        };
        let start = Instant::now();
        while TcpStream::connect(addr(local)).is_err() {
            if let Some(status) = forward.child.try_wait().unwrap() {
                panic!(
                    "ssh -L exited ({status}): {}\n{}",
                    forward.stderr(),
                    bastion.log_tail()
                );
            }
            assert!(
                start.elapsed() < WAIT,
                "ssh -L does not listen on {local} after {WAIT:?}: {}",
                forward.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }
        forward
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The exit status, once ssh exits within `within`.
    fn exited_within(&mut self, within: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if start.elapsed() > within {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// What arrives on a new connection to 127.0.0.1:`port` within `within`, until EOF;
/// Err when nothing has arrived by then.
fn read_through(port: u16, within: Duration) -> Result<String, String> {
    let mut conn = TcpStream::connect(addr(port)).map_err(|e| format!("connect {port}: {e}"))?;
    conn.set_read_timeout(Some(within)).unwrap();
    let mut text = String::new();
    match conn.read_to_string(&mut text) {
        Ok(_) => Ok(text),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            Err(format!("nothing within {within:?} (read {text:?})"))
        }
        Err(e) => Err(format!("read from {port}: {e}")),
    }
}

/// `SHA256:...` of the ed25519 host key the server on `port` offers, as
/// `ssh-keyscan | ssh-keygen -lf -` sees it.
fn offered_fingerprint(port: u16) -> String {
    let mut scan = Command::new("ssh-keyscan");
    scan.args([
        "-T",
        "5",
        "-t",
        "ed25519",
        "-p",
        &port.to_string(),
        "127.0.0.1",
    ]);
    let scanned = run_client(scan, "", SSH_TIMEOUT).unwrap();
    assert!(
        scanned.status.success() && !scanned.stdout.is_empty(),
        "ssh-keyscan -p {port}: {}",
        stderr(&scanned)
    );
    let mut keygen = Command::new("ssh-keygen");
    keygen.args(["-lf", "-", "-E", "sha256"]);
    let listed = run_client(keygen, &stdout(&scanned), SSH_TIMEOUT).unwrap();
    assert!(
        listed.status.success(),
        "ssh-keygen -lf -: {}",
        stderr(&listed)
    );
    stdout(&listed)
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no fingerprint in {:?}", stdout(&listed)))
        .to_owned()
}

/// `SHA256:...` of a key file (private or public), by ssh-keygen.
fn key_fingerprint(key: &Path) -> String {
    let mut keygen = Command::new("ssh-keygen");
    keygen.arg("-lf").arg(key).args(["-E", "sha256"]);
    let out = run_client(keygen, "", SSH_TIMEOUT).unwrap();
    assert!(out.status.success(), "ssh-keygen -lf: {}", stderr(&out));
    stdout(&out).split_whitespace().nth(1).unwrap().to_owned()
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

/// psql through `ssh -L` reaches the real server: TLS verified against the test CA, a
/// SCRAM password login, and the server reports its own port, not the forward's.
#[test]
fn a_local_forward_carries_a_postgres_query_over_tls_with_a_password() {
    let Some(pg) = PgServer::start() else { return };
    pg.psql("CREATE ROLE probe LOGIN PASSWORD 'probe-pw'");
    let Some(bastion) = bastion(permit(&[pg.port()])) else {
        return;
    };
    let dir = tempdir();
    let forward = Forward::start(&bastion, dir.path(), pg.port());
    let conninfo = format!(
        "host=127.0.0.1 port={} dbname=postgres user=probe sslmode=verify-full sslrootcert={}",
        forward.local,
        pg.ca_file().display()
    );
    let answer = pg
        .psql_conninfo(
            &conninfo,
            Some("probe-pw"),
            "select inet_server_port(), current_user, ssl from pg_stat_ssl \
             where pid = pg_backend_pid()",
        )
        .unwrap_or_else(|e| panic!("psql through the forward: {e}\n{}", bastion.log_tail()));
    assert_eq!(answer, format!("{}|probe|t", pg.port()));
    let log = bastion.log();
    assert!(
        log.contains(&format!("Accepted publickey for {} ", bastion.user())),
        "{log}"
    );
}

#[test]
fn forwarding_is_refused_to_anything_not_in_permit_open() {
    let allowed = Greeter::start();
    let other = Greeter::start();
    let Some(bastion) = bastion(permit(&[allowed.port])) else {
        return;
    };
    let key = || ssh_with_key(&bastion, bastion.known_hosts(), bastion.client_key());

    let out = run_w(key(), bastion.user(), allowed.port);
    assert_greeted(&out, &allowed, &bastion);

    let out = run_w(key(), bastion.user(), other.port);
    assert!(!out.status.success(), "ssh -W to {} succeeded", other.port);
    assert!(
        stderr(&out).contains("administratively prohibited"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        other.accepted(),
        0,
        "the bastion connected to {}",
        other.port
    );
    let log = bastion.log();
    assert!(
        log.contains(&format!(
            "to connect to host 127.0.0.1 port {}, but the request was denied",
            other.port
        )),
        "{log}"
    );

    // PermitOpen compares names, not addresses: localhost is not 127.0.0.1.
    let mut cmd = key();
    cmd.arg("-W")
        .arg(format!("localhost:{}", allowed.port))
        .arg(format!("{}@127.0.0.1", bastion.user()));
    let out = run_client(cmd, "", SSH_TIMEOUT).unwrap();
    assert!(!out.status.success(), "ssh -W localhost:{}", allowed.port);
    assert_eq!(allowed.accepted(), 1);
}

#[test]
fn a_known_hosts_pinning_another_key_refuses_the_bastion() {
    let greeter = Greeter::start();
    let Some(bastion) = bastion(permit(&[greeter.port])) else {
        return;
    };
    let wrong = bastion.wrong_known_hosts();
    let out = run_w(
        ssh_with_key(&bastion, &wrong, bastion.client_key()),
        bastion.user(),
        greeter.port,
    );
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
            && err.contains("Host key verification failed"),
        "{err}"
    );
    // ssh quotes the key it was offered: the one host_key_fingerprint() names.
    assert!(err.contains(&bastion.host_key_fingerprint()), "{err}");
    assert_eq!(greeter.accepted(), 0);
    assert!(!bastion.log().contains("Accepted publickey"));

    // The right known_hosts, by either name the file pins.
    let out = run_w(
        ssh_with_key(&bastion, bastion.known_hosts(), bastion.client_key()),
        bastion.user(),
        greeter.port,
    );
    assert_greeted(&out, &greeter, &bastion);
    let mut cmd = ssh_with_key(&bastion, bastion.known_hosts(), bastion.client_key());
    cmd.args(["-o", "AddressFamily=inet", "-W"])
        .arg(format!("127.0.0.1:{}", greeter.port))
        .arg(format!("{}@localhost", bastion.user()));
    let out = run_client(cmd, "", SSH_TIMEOUT).unwrap();
    assert_greeted(&out, &greeter, &bastion);
}

#[test]
fn freeze_thaw_stop_and_restart_act_on_sshd_and_its_sessions() {
    let greeter = Greeter::start();
    let Some(mut bastion) = bastion(permit(&[greeter.port])) else {
        return;
    };
    let port = bastion.port();
    let fingerprint = bastion.host_key_fingerprint();
    assert_eq!(offered_fingerprint(port), fingerprint);
    let dir = tempdir();
    let forward = Forward::start(&bastion, dir.path(), greeter.port);
    assert_eq!(read_through(forward.local, WAIT), Ok(greeter.greeting()));

    bastion.freeze();
    assert_eq!(
        banner(port, FROZEN),
        None,
        "a frozen bastion sent its banner"
    );
    let held = read_through(forward.local, FROZEN);
    assert!(held.is_err(), "a frozen session forwarded: {held:?}");

    bastion.thaw();
    let thawed = banner(port, WAIT).unwrap_or_else(|| panic!("no banner after thaw"));
    assert!(thawed.starts_with("SSH-2.0-OpenSSH"), "{thawed:?}");
    assert_eq!(read_through(forward.local, WAIT), Ok(greeter.greeting()));

    // A host going down: the established session dies with sshd.
    let mut forward = forward;
    bastion.stop();
    let status = forward
        .exited_within(WAIT)
        .unwrap_or_else(|| panic!("ssh -N still runs {WAIT:?} after stop()"));
    assert!(!status.success(), "ssh -N: {status}");
    let refused = TcpStream::connect(addr(port))
        .map(|_| ())
        .map_err(|e| e.kind());
    assert_eq!(refused, Err(ErrorKind::ConnectionRefused));

    bastion.start_again();
    assert_eq!(bastion.port(), port);
    assert_eq!(offered_fingerprint(port), fingerprint);
    let out = run_w(
        ssh_with_key(&bastion, bastion.known_hosts(), bastion.client_key()),
        bastion.user(),
        greeter.port,
    );
    assert_greeted(&out, &greeter, &bastion);

    let mut forward = Forward::start(&bastion, dir.path(), greeter.port);
    let pid = bastion.pid();
    bastion.restart();
    assert_ne!(bastion.pid(), pid);
    assert!(
        forward.exited_within(WAIT).is_some(),
        "ssh -N survived restart(): {}",
        forward.stderr()
    );
    assert_eq!(offered_fingerprint(port), fingerprint);
    assert_eq!(bastion.host_key_fingerprint(), fingerprint);
}

#[test]
fn the_agent_logs_in_without_a_key_file() {
    let greeter = Greeter::start();
    let Some(bastion) = bastion(permit(&[greeter.port])) else {
        return;
    };
    let batch = || {
        let mut cmd = ssh(&bastion, bastion.known_hosts());
        cmd.args(["-o", "BatchMode=yes"]);
        cmd
    };

    // Without the agent, no key is authorised (the user's own ~/.ssh keys are not).
    let out = run_w(batch(), bastion.user(), greeter.port);
    assert!(!out.status.success(), "logged in without a key");
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );

    let agent = bastion.agent();
    let mut cmd = batch();
    cmd.env("SSH_AUTH_SOCK", agent.socket());
    let out = run_w(cmd, bastion.user(), greeter.port);
    assert_greeted(&out, &greeter, &bastion);
    let accepted = format!(
        "Accepted publickey for {} from 127.0.0.1 port",
        bastion.user()
    );
    let log = bastion.log();
    assert_eq!(count(&log, &accepted), 1, "{log}");
    assert!(
        log.contains(&key_fingerprint(bastion.client_key())),
        "{log}"
    );

    // Killed on drop: its socket no longer answers.
    let socket = agent.socket().to_owned();
    drop(agent);
    assert!(std::os::unix::net::UnixStream::connect(&socket).is_err());
}

#[test]
fn the_encrypted_key_logs_in_with_its_passphrase_only() {
    let greeter = Greeter::start();
    let Some(bastion) = bastion(permit(&[greeter.port])) else {
        return;
    };
    let dir = tempdir();
    let key = bastion.client_key_encrypted();
    assert_eq!(
        fs::metadata(key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(key_fingerprint(key), key_fingerprint(bastion.client_key()));
    // Really encrypted: no public key without the passphrase.
    for (passphrase, works) in [("", false), (bastion.passphrase(), true)] {
        let mut keygen = Command::new("ssh-keygen");
        keygen.args(["-y", "-P", passphrase, "-f"]).arg(key);
        let out = run_client(keygen, "", SSH_TIMEOUT).unwrap();
        assert_eq!(out.status.success(), works, "{}", stderr(&out));
    }

    let with = |secret: &str| {
        let mut cmd = ssh(&bastion, bastion.known_hosts());
        cmd.args(["-o", "IdentitiesOnly=yes", "-i"]).arg(key);
        with_askpass(&mut cmd, dir.path(), secret);
        run_w(cmd, bastion.user(), greeter.port)
    };
    let out = with("not-the-passphrase");
    assert!(!out.status.success(), "logged in with a wrong passphrase");
    assert_eq!(greeter.accepted(), 0);
    let out = with(bastion.passphrase());
    assert_greeted(&out, &greeter, &bastion);
}

#[test]
fn a_password_login_only_when_asked_for() {
    let greeter = Greeter::start();
    let Some(bastion) = bastion(BastionOptions {
        password_user: true,
        ..permit(&[greeter.port])
    }) else {
        return;
    };
    let (user, password) = bastion.password_login().expect("password_user was asked");
    let dir = tempdir();
    let with = |bastion: &Bastion, secret: &str| {
        let mut cmd = ssh(bastion, bastion.known_hosts());
        cmd.args([
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "PubkeyAuthentication=no",
        ]);
        with_askpass(&mut cmd, dir.path(), secret);
        run_w(cmd, &user, greeter.port)
    };

    let out = with(&bastion, "not-the-password");
    assert!(!out.status.success(), "logged in with a wrong password");
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    assert_eq!(greeter.accepted(), 0);

    let out = with(&bastion, &password);
    assert_greeted(&out, &greeter, &bastion);
    let log = bastion.log();
    assert!(
        log.contains(&format!("Accepted password for {user} ")),
        "{log}"
    );
    assert!(!log.contains(&password), "sshd logged the password");

    // The key still logs in the key user on the same bastion.
    let out = run_w(
        ssh_with_key(&bastion, bastion.known_hosts(), bastion.client_key()),
        bastion.user(),
        greeter.port,
    );
    assert_greeted(&out, &greeter, &bastion);

    // A bastion that was not asked for passwords offers only keys.
    let Some(keys_only) = self::bastion(permit(&[greeter.port])) else {
        return;
    };
    assert_eq!(keys_only.password_login(), None);
    let out = with(&keys_only, &password);
    assert!(
        !out.status.success(),
        "password login without password_user"
    );
    assert!(
        stderr(&out).contains("Permission denied (publickey)"),
        "{}",
        stderr(&out)
    );
}
