//! A throwaway OpenSSH bastion: Debian's real `sshd` (openssh-server) in the foreground on
//! a free port of 127.0.0.1, in its own temporary directory with its own host key, client
//! keys, `authorized_keys` and `sshd_config`, on the same lifecycle as the database servers
//! (servers/server.rs): start, stop, restart, freeze, thaw.
//!
//! The bastion forwards (direct-tcpip, `ssh -L` / `ssh -W`) only to the `PermitOpen`
//! destinations the test names, and nothing else: no shell, no TTY, no remote forwarding.
//! It logs in `root` with [`Bastion::client_key`], and, when asked,
//! the system user `dbvigil-runner` with a password.
//!
//! `stop()` and `freeze()` cover sshd's per-connection children as well as the listener:
//! sshd leaves established sessions running when the listener exits, but a bastion host
//! going down takes its sessions with it.
//!
//! Like the servers, `start()` prints `SKIPPED: <reason>` and returns `None` when sshd is
//! missing or the tests do not run as root (as in CI), and panics instead under `CI=true`.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::servers::{
    POLL, Program, SETUP_TIMEOUT, Server, find_program, is_executable, is_root, lock, run_client,
    run_logged, server_tempdir, skip_or_fail, tail, user_ids,
};

/// The system user that [`BastionOptions::password_user`] logs in with a password.
pub const BASTION_PASSWORD_USER: &str = "dbvigil-runner";
/// Its password (set with `chpasswd` every time a test process first asks for it).
pub const BASTION_PASSWORD: &str = "bastion-runner-pw";
/// The passphrase of [`Bastion::client_key_encrypted`].
pub const BASTION_KEY_PASSPHRASE: &str = "bastion-key-passphrase";

/// sshd's privilege-separation directory (Debian's `_PATH_PRIVSEP_CHROOT_DIR`).
const PRIVSEP_DIR: &str = "/run/sshd";
/// Held (flock) while the password user is created and its password set, so that test
/// processes running in parallel do not race on /etc/passwd and /etc/shadow.
const USER_LOCK_FILE: &str = "/tmp/dbvigil-bastion-user.lock";
/// How long the readiness probe waits for the `SSH-2.0-` banner on one connection.
const BANNER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `agent()` waits for ssh-agent's socket.
const AGENT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a [`Bastion`] allows besides forwarding with the client key.
#[derive(Clone, Debug, Default)]
pub struct BastionOptions {
    /// The only destinations forwarded to (`PermitOpen host:port ...`); empty: none.
    pub permit_open: Vec<(String, u16)>,
    /// Also let [`BASTION_PASSWORD_USER`] log in with [`BASTION_PASSWORD`]
    /// (`PasswordAuthentication yes`); see [`Bastion::password_login`].
    pub password_user: bool,
    /// Extra `sshd_config` lines (no `Match` blocks), written before the harness's own:
    /// sshd keeps the first value it reads of a keyword, so these win
    /// (e.g. `"MaxSessions 1"`, `"ClientAliveInterval 1"`).
    pub extra_config: Vec<String>,
}

/// A running throwaway sshd; see the module documentation. Dropping it kills sshd and every
/// session it holds, then removes its files.
pub struct Bastion {
    /// Declared first: dropped (stopped) before anything else.
    server: Server<Sshd>,
    user: String,
    password_login: Option<(String, String)>,
    fingerprint: String,
}

/// The files of one bastion; the [`Program`] its [`Server`] runs.
pub struct Sshd {
    /// Absolute: sshd re-executes itself for every connection and refuses a relative path.
    sshd: PathBuf,
    ssh_keygen: PathBuf,
    config: PathBuf,
    host_key: PathBuf,
    client_key: PathBuf,
    client_key_encrypted: PathBuf,
    known_hosts: PathBuf,
    wrong_known_hosts: PathBuf,
    /// Declared last: removed after everything else.
    dir: TempDir,
}

impl Program for Sshd {
    const NAME: &'static str = "sshd";
    const SCHEME: &'static str = "ssh";
    const STOP_SIGNAL: i32 = libc::SIGTERM;

    fn log(&self) -> PathBuf {
        self.dir.path().join("sshd.log")
    }

    fn command(&self, port: u16) -> Command {
        let mut cmd = Command::new(&self.sshd);
        cmd.args(["-D", "-e", "-f"])
            .arg(&self.config)
            .args(["-p", &port.to_string()])
            .current_dir("/");
        cmd
    }

    fn accepting(&self, port: u16) -> bool {
        banner(port, BANNER_TIMEOUT).is_some_and(|b| b.starts_with("SSH-2.0-"))
    }
}

/// The identification line a server on 127.0.0.1:`port` sends first (without CR LF), if it
/// arrives within `timeout`. `None` when nothing accepts, or nothing arrives in time.
pub fn banner(port: u16, timeout: Duration) -> Option<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    let deadline = Instant::now() + timeout;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") && line.len() < 255 {
        let left = deadline.checked_duration_since(Instant::now())?;
        stream.set_read_timeout(Some(left)).ok()?;
        match stream.read(&mut byte) {
            Ok(0) => return None,
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(String::from_utf8_lossy(&line).trim_end().to_owned())
}

impl Bastion {
    /// A bastion forwarding only to 127.0.0.1:`port` for each of `permit_open`, logging in
    /// [`Bastion::user`] with [`Bastion::client_key`]. `None` (SKIPPED) where sshd is
    /// missing, unless `CI=true`.
    pub fn start(permit_open: &[u16]) -> Option<Bastion> {
        Bastion::start_with(BastionOptions {
            permit_open: permit_open
                .iter()
                .map(|&p| ("127.0.0.1".to_owned(), p))
                .collect(),
            ..BastionOptions::default()
        })
    }

    /// A bastion with `options`; returns once it answers with an `SSH-2.0-` banner.
    pub fn start_with(options: BastionOptions) -> Option<Bastion> {
        let sshd = [PathBuf::from("/usr/sbin/sshd")]
            .into_iter()
            .find(|p| is_executable(p))
            .or_else(|| find_program("sshd").and_then(|p| fs::canonicalize(p).ok()));
        let Some(sshd) = sshd else {
            skip_or_fail(
                "OpenSSH server (/usr/sbin/sshd, Debian package openssh-server) not found",
            );
            return None;
        };
        let Some(ssh_keygen) = openssh_program("ssh-keygen") else {
            skip_or_fail("ssh-keygen (Debian package openssh-client) not found");
            return None;
        };
        if !is_root() {
            // sshd started by another user logs in only that user, without privilege
            // separation, and cannot read /etc/shadow (it then calls accounts locked).
            skip_or_fail(
                "the SSH bastion needs root: sshd as root with privilege separation, the \
                 key login as root and the password user",
            );
            return None;
        }
        if !Path::new(PRIVSEP_DIR).is_dir() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(PRIVSEP_DIR)
                .unwrap_or_else(|e| panic!("cannot create {PRIVSEP_DIR}: {e}"));
        }

        let user = if root_is_locked() {
            // With UsePAM no, sshd refuses every login of a locked account, keys included.
            ensure_password_user();
            BASTION_PASSWORD_USER.to_owned()
        } else {
            "root".to_owned()
        };
        if options.password_user {
            ensure_password_user();
        }

        let dir = server_tempdir("dbvigil-sshd-");
        let path = |name: &str| dir.path().join(name);
        let sshd_files = Sshd {
            sshd,
            ssh_keygen,
            config: path("sshd_config"),
            host_key: path("ssh_host_ed25519_key"),
            client_key: path("client_ed25519"),
            client_key_encrypted: path("client_ed25519_encrypted"),
            known_hosts: path("known_hosts"),
            wrong_known_hosts: path("wrong_known_hosts"),
            dir,
        };
        sshd_files.make_keys();
        let authorized_keys = sshd_files.dir.path().join("authorized_keys");
        let client_pub = read_pub(&sshd_files.client_key.with_extension("pub"));
        fs::write(&authorized_keys, format!("{client_pub}\n"))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", authorized_keys.display()));
        // Read by sshd as the logging-in user (dbvigil-runner too).
        fs::set_permissions(&authorized_keys, fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", authorized_keys.display()));
        let config = sshd_config(&sshd_files, &authorized_keys, &options);
        fs::write(&sshd_files.config, config)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", sshd_files.config.display()));
        let fingerprint = sshd_files.fingerprint(&sshd_files.host_key.with_extension("pub"));

        // If this panics, Drop stops whatever was launched and removes the directory.
        let server = Server::launch_on_free_port("sshd", sshd_files);
        let bastion = Bastion {
            server,
            user,
            password_login: options.password_user.then(|| {
                (
                    BASTION_PASSWORD_USER.to_owned(),
                    BASTION_PASSWORD.to_owned(),
                )
            }),
            fingerprint,
        };
        bastion.write_known_hosts();
        Some(bastion)
    }

    /// The TCP port on 127.0.0.1 (stays the same across restarts).
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// PID of sshd's listener, of the latest launch.
    pub fn pid(&self) -> i32 {
        self.server.pid()
    }

    /// The login that [`Bastion::client_key`] is authorised for: `root`
    /// (`PermitRootLogin prohibit-password`), or [`BASTION_PASSWORD_USER`] where root's
    /// account is locked (sshd without PAM refuses locked accounts even with a key).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The client's ed25519 private key, OpenSSH format, no passphrase, mode 0600.
    pub fn client_key(&self) -> &Path {
        &self.server.program.client_key
    }

    /// The same key (so the same public key is authorised), encrypted with
    /// [`Bastion::passphrase`] (ssh-keygen's default: bcrypt-pbkdf, aes256-ctr), mode 0600.
    pub fn client_key_encrypted(&self) -> &Path {
        &self.server.program.client_key_encrypted
    }

    /// The passphrase of [`Bastion::client_key_encrypted`].
    pub fn passphrase(&self) -> &str {
        BASTION_KEY_PASSPHRASE
    }

    /// A known_hosts file pinning the bastion's host key for `[127.0.0.1]:PORT` and
    /// `[localhost]:PORT`.
    pub fn known_hosts(&self) -> &Path {
        &self.server.program.known_hosts
    }

    /// `SHA256:...` of the ed25519 host key sshd offers (its only host key), as
    /// `ssh-keygen -lf` prints it.
    pub fn host_key_fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    /// A known_hosts file pinning ANOTHER ed25519 key for the same `[127.0.0.1]:PORT` and
    /// `[localhost]:PORT`: a client that checks host keys must refuse the bastion.
    pub fn wrong_known_hosts(&self) -> PathBuf {
        self.server.program.wrong_known_hosts.clone()
    }

    /// `(user, password)` of the password login, when [`BastionOptions::password_user`]
    /// was asked for.
    pub fn password_login(&self) -> Option<(String, String)> {
        self.password_login.clone()
    }

    /// Kills sshd and every session child at once (SIGKILL of the whole tree, as a host
    /// going down: established sessions and forwards die too); returns once sshd is gone.
    /// The port then refuses connections.
    pub fn stop(&mut self) {
        if let Err(e) = self.server.daemon.kill_tree() {
            panic!("{e}\n{}", self.server.daemon.log_tail());
        }
    }

    /// Starts the stopped bastion again on the same port with the same host key and
    /// files; returns once it answers with a banner.
    pub fn start_again(&mut self) {
        self.server.start_again();
    }

    /// `stop()` then `start_again()`.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// SIGSTOPs sshd and all of its session children. New connections still complete the
    /// TCP handshake, but no banner comes; established forwards carry nothing.
    pub fn freeze(&self) {
        self.server.freeze();
    }

    /// SIGCONTs everything `freeze()` stopped.
    pub fn thaw(&self) {
        self.server.thaw();
    }

    /// The last lines sshd logged (every launch, `LogLevel VERBOSE`), for assertions and
    /// panic messages.
    pub fn log_tail(&self) -> String {
        self.server.daemon.log_tail()
    }

    /// Everything sshd logged so far, every launch: to count logins
    /// (`Accepted publickey for`), refused forwards (`but the request was denied`), ...
    pub fn log(&self) -> String {
        let log = self.server.program.log();
        fs::read_to_string(&log).unwrap_or_else(|e| panic!("cannot read {}: {e}", log.display()))
    }

    /// An ssh-agent started for the test, holding [`Bastion::client_key`]; killed when the
    /// [`Agent`] is dropped (it may outlive the bastion).
    pub fn agent(&self) -> Agent {
        Agent::start(self.client_key())
    }

    fn write_known_hosts(&self) {
        let files = &self.server.program;
        let port = self.port();
        let lines = |key: &str| format!("[127.0.0.1]:{port} {key}\n[localhost]:{port} {key}\n");
        let host_pub = read_pub(&files.host_key.with_extension("pub"));
        let other_pub = read_pub(&files.dir.path().join("other_host_ed25519_key.pub"));
        for (path, key) in [
            (&files.known_hosts, &host_pub),
            (&files.wrong_known_hosts, &other_pub),
        ] {
            fs::write(path, lines(key))
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        }
    }
}

impl Drop for Bastion {
    fn drop(&mut self) {
        // The listener's own Drop (Server -> Daemon) would leave the sessions running.
        let _ = self.server.daemon.kill_tree();
    }
}

impl Sshd {
    /// The host key, another host key (for wrong_known_hosts), the client key and its
    /// encrypted copy, all with ssh-keygen.
    fn make_keys(&self) {
        let other = self.dir.path().join("other_host_ed25519_key");
        for (key, comment) in [
            (&self.host_key, "dbvigil-test-bastion"),
            (&other, "dbvigil-test-other-host"),
            (&self.client_key, "dbvigil-test-client"),
        ] {
            let mut cmd = Command::new(&self.ssh_keygen);
            cmd.args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                .arg(key);
            self.keygen(cmd, "generate a key");
        }
        fs::copy(&self.client_key, &self.client_key_encrypted).unwrap_or_else(|e| {
            panic!(
                "cannot copy {} to {}: {e}",
                self.client_key.display(),
                self.client_key_encrypted.display()
            )
        });
        let mut cmd = Command::new(&self.ssh_keygen);
        cmd.args(["-q", "-p", "-P", "", "-N", BASTION_KEY_PASSPHRASE, "-f"])
            .arg(&self.client_key_encrypted);
        self.keygen(cmd, "encrypt the client key");
        for key in [&self.client_key, &self.client_key_encrypted] {
            fs::set_permissions(key, fs::Permissions::from_mode(0o600))
                .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", key.display()));
        }
    }

    fn keygen(&self, cmd: Command, what: &str) {
        let log = self.dir.path().join("ssh-keygen.log");
        run_logged(cmd, &log, SETUP_TIMEOUT).unwrap_or_else(|e| {
            panic!(
                "ssh-keygen failed to {what}: {e}\n--- {} ---\n{}",
                log.display(),
                tail(&log)
            )
        });
    }

    /// The second field of `ssh-keygen -lf <pub> -E sha256`: `SHA256:...`.
    fn fingerprint(&self, public_key: &Path) -> String {
        let mut cmd = Command::new(&self.ssh_keygen);
        cmd.arg("-lf").arg(public_key).args(["-E", "sha256"]);
        let out = run_client(cmd, "", SETUP_TIMEOUT)
            .unwrap_or_else(|e| panic!("ssh-keygen -lf {}: {e}", public_key.display()));
        let stdout = String::from_utf8_lossy(&out.stdout);
        match stdout.split_whitespace().nth(1) {
            Some(fp) if out.status.success() && fp.starts_with("SHA256:") => fp.to_owned(),
            _ => panic!(
                "ssh-keygen -lf {} ({}): unexpected output {stdout:?}, stderr {:?}",
                public_key.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
}

/// The whole sshd_config: `options.extra_config` first (first value wins), then forwarding
/// to the named destinations only, key logins (and passwords when asked), nothing else.
fn sshd_config(files: &Sshd, authorized_keys: &Path, options: &BastionOptions) -> String {
    let permit_open = if options.permit_open.is_empty() {
        "none".to_owned()
    } else {
        options
            .permit_open
            .iter()
            .map(|(host, port)| format!("{host}:{port}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut lines: Vec<String> = options.extra_config.clone();
    lines.extend([
        "ListenAddress 127.0.0.1".to_owned(),
        format!("HostKey {}", files.host_key.display()),
        "PidFile none".to_owned(),
        format!("AuthorizedKeysFile {}", authorized_keys.display()),
        "StrictModes no".to_owned(),
        "UsePAM no".to_owned(),
        "UseDNS no".to_owned(),
        "PubkeyAuthentication yes".to_owned(),
        format!(
            "PasswordAuthentication {}",
            if options.password_user { "yes" } else { "no" }
        ),
        "KbdInteractiveAuthentication no".to_owned(),
        "PermitEmptyPasswords no".to_owned(),
        "PermitRootLogin prohibit-password".to_owned(),
        "AllowTcpForwarding local".to_owned(),
        format!("PermitOpen {permit_open}"),
        "AllowStreamLocalForwarding no".to_owned(),
        "AllowAgentForwarding no".to_owned(),
        "GatewayPorts no".to_owned(),
        "PermitTunnel no".to_owned(),
        "PermitTTY no".to_owned(),
        "X11Forwarding no".to_owned(),
        "PermitUserRC no".to_owned(),
        "PrintMotd no".to_owned(),
        "LogLevel VERBOSE".to_owned(),
        "MaxStartups 100".to_owned(),
        "MaxSessions 100".to_owned(),
    ]);
    lines.join("\n") + "\n"
}

/// An OpenSSH client program: /usr/bin first (Debian), else PATH.
fn openssh_program(name: &str) -> Option<PathBuf> {
    let usr_bin = Path::new("/usr/bin").join(name);
    if is_executable(&usr_bin) {
        Some(usr_bin)
    } else {
        find_program(name)
    }
}

/// `type base64` of an OpenSSH public key file (its comment dropped).
fn read_pub(path: &Path) -> String {
    let text =
        fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let fields: Vec<&str> = text.split_whitespace().take(2).collect();
    // Never quotes the text: a private key given by mistake stays out of the message.
    assert!(
        fields.len() == 2 && fields[0].starts_with("ssh-"),
        "{} is no OpenSSH public key",
        path.display()
    );
    fields.join(" ")
}

/// True when root's password field in /etc/shadow starts with `!` (a locked account,
/// which sshd refuses outright when UsePAM is off).
fn root_is_locked() -> bool {
    shadow_entry_locked(
        &fs::read_to_string("/etc/shadow").unwrap_or_default(),
        "root",
    )
}

fn shadow_entry_locked(shadow: &str, user: &str) -> bool {
    shadow
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| *name == user)
        .is_some_and(|(_, rest)| rest.starts_with('!'))
}

/// Creates [`BASTION_PASSWORD_USER`] if missing (a system user without a home, shell
/// nologin: sshd opens direct-tcpip channels without running the shell) and sets its
/// password; once per test process, under a file lock shared with other test processes.
fn ensure_password_user() {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = lock(&DONE);
    if *done {
        return;
    }
    let lock_file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(USER_LOCK_FILE)
        .unwrap_or_else(|e| panic!("cannot open {USER_LOCK_FILE}: {e}"));
    // SAFETY: flock(2) on a descriptor we own; released when lock_file is closed.
    if unsafe { libc::flock(lock_file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        panic!(
            "cannot lock {USER_LOCK_FILE}: {}",
            std::io::Error::last_os_error()
        );
    }
    if user_ids(BASTION_PASSWORD_USER).is_none() {
        let shell = ["/usr/sbin/nologin", "/sbin/nologin", "/bin/false"]
            .into_iter()
            .find(|s| is_executable(Path::new(s)))
            .unwrap_or("/bin/false");
        let mut useradd = Command::new(sbin("useradd"));
        useradd.args([
            "--system",
            "--no-create-home",
            "--shell",
            shell,
            BASTION_PASSWORD_USER,
        ]);
        let out = run_client(useradd, "", SETUP_TIMEOUT)
            .unwrap_or_else(|e| panic!("useradd {BASTION_PASSWORD_USER}: {e}"));
        assert!(
            out.status.success() || user_ids(BASTION_PASSWORD_USER).is_some(),
            "useradd {BASTION_PASSWORD_USER} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let chpasswd = Command::new(sbin("chpasswd"));
    let out = run_client(
        chpasswd,
        &format!("{BASTION_PASSWORD_USER}:{BASTION_PASSWORD}\n"),
        SETUP_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("chpasswd for {BASTION_PASSWORD_USER}: {e}"));
    // chpasswd's messages name the user, never the password.
    assert!(
        out.status.success(),
        "chpasswd for {BASTION_PASSWORD_USER} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    drop(lock_file);
    *done = true;
}

/// /usr/sbin/`name`, else `name` from PATH.
fn sbin(name: &str) -> PathBuf {
    let path = Path::new("/usr/sbin").join(name);
    if is_executable(&path) {
        path
    } else {
        PathBuf::from(name)
    }
}

/// An ssh-agent (`ssh-agent -D -a <socket>`) holding one key; killed on drop.
pub struct Agent {
    child: Child,
    socket: PathBuf,
    /// Declared last: removed after the agent is gone.
    dir: TempDir,
}

impl Agent {
    fn start(key: &Path) -> Agent {
        let (Some(ssh_agent), Some(ssh_add)) =
            (openssh_program("ssh-agent"), openssh_program("ssh-add"))
        else {
            panic!("ssh-agent or ssh-add not found (Debian package openssh-client)");
        };
        let dir = server_tempdir("dbvigil-agent-");
        let socket = dir.path().join("agent.sock");
        let log = dir.path().join("ssh-agent.log");
        let log_file =
            File::create(&log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let child = Command::new(&ssh_agent)
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", ssh_agent.display()));
        let mut agent = Agent { child, socket, dir };
        let start = Instant::now();
        while UnixStream::connect(&agent.socket).is_err() {
            if let Ok(Some(status)) = agent.child.try_wait() {
                panic!("ssh-agent exited ({status}) at start:\n{}", tail(&log));
            }
            assert!(
                start.elapsed() < AGENT_TIMEOUT,
                "ssh-agent's socket {} does not accept after {AGENT_TIMEOUT:?}:\n{}",
                agent.socket.display(),
                tail(&log)
            );
            thread::sleep(POLL);
        }
        let mut add = Command::new(&ssh_add);
        add.arg(key)
            .env("SSH_AUTH_SOCK", &agent.socket)
            .env_remove("SSH_ASKPASS")
            .env_remove("DISPLAY");
        let out = run_client(add, "", SETUP_TIMEOUT)
            .unwrap_or_else(|e| panic!("ssh-add {}: {e}", key.display()));
        assert!(
            out.status.success(),
            "ssh-add {} failed ({}): {}",
            key.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        agent
    }

    /// The agent's socket: the value for `SSH_AUTH_SOCK`.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
