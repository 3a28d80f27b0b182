//! A bastion in front of a database: the `ssh:` block of a target (or of `defaults:`), and
//! the same settings as `dbvigil migrate` builds them from flags and a plan's runner
//! columns. Everything a connection would stumble on later (an unreadable or encrypted key,
//! a known_hosts file without the bastion, a malformed fingerprint) is found while the
//! settings are checked, with what to do about it.

use std::path::{Path, PathBuf};

use russh::keys::{HashAlg, PublicKey};
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use super::values::{Expanded, Secret};

pub const DEFAULT_SSH_PORT: u16 = 22;

#[derive(Debug, Clone, PartialEq)]
pub struct SshConfig {
    /// The bastion, as dbvigil reaches it.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub auth: SshAuth,
    pub host_key: HostKeyPin,
    /// Where these settings were written: messages name what the user can change there.
    pub source: SshSource,
}

/// Where a bastion's settings come from. The same failure asks a configuration's user to
/// fix `ssh.user` and a `dbvigil migrate` user to fix a flag or a plan column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SshSource {
    /// A target's (or `defaults:`) `ssh:` block.
    #[default]
    Config,
    /// `dbvigil migrate --ssh USER@HOST[:PORT]` and the `--ssh-*` flags.
    Flags,
    /// A migration plan's runner columns, with the `--ssh-*` flags.
    Plan,
}

impl SshSource {
    pub fn user(self) -> &'static str {
        match self {
            SshSource::Config => "ssh.user",
            SshSource::Flags => "the user of --ssh USER@HOST",
            SshSource::Plan => "the plan's sql_runner_userid",
        }
    }

    pub fn identity_file(self) -> &'static str {
        match self {
            SshSource::Config => "identity_file",
            SshSource::Flags | SshSource::Plan => "--ssh-identity",
        }
    }

    pub fn passphrase_file(self) -> &'static str {
        match self {
            SshSource::Config => "passphrase_file",
            SshSource::Flags | SshSource::Plan => "--ssh-passphrase-file",
        }
    }

    pub fn agent(self) -> &'static str {
        match self {
            SshSource::Config => "agent: true",
            SshSource::Flags | SshSource::Plan => "--ssh-agent",
        }
    }

    /// Where the agent's socket is given.
    pub fn agent_socket(self) -> &'static str {
        match self {
            SshSource::Config => "SSH_AUTH_SOCK or ssh.agent_socket",
            SshSource::Flags | SshSource::Plan => "SSH_AUTH_SOCK",
        }
    }

    pub fn known_hosts(self) -> &'static str {
        match self {
            SshSource::Config => "known_hosts",
            SshSource::Flags | SshSource::Plan => "--ssh-known-hosts",
        }
    }

    /// How to pin `fingerprint` where these settings are written.
    pub fn pin(self, fingerprint: &str) -> String {
        match self {
            SshSource::Config => format!("set host_key: {fingerprint}"),
            SshSource::Flags | SshSource::Plan => format!("pass --ssh-host-key {fingerprint}"),
        }
    }

    /// The way around a runner that cannot be used, for a plan.
    pub fn direct(self) -> &'static str {
        match self {
            SshSource::Plan => {
                "; or, to connect to the databases directly without the runner, pass --plan-direct"
            }
            SshSource::Config | SshSource::Flags => "",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SshAuth {
    /// A private key file in OpenSSH (or PEM) format, with the passphrase that opens it.
    Key {
        file: PathBuf,
        passphrase: Option<Secret>,
    },
    /// The keys an SSH agent holds: `SSH_AUTH_SOCK`, or the socket given.
    Agent { socket: Option<PathBuf> },
    /// Only where a migration plan's `sql_runner_password` gives one; keys are preferred.
    Password(Secret),
}

/// How the bastion proves who it is. There is no "accept any key": a bastion whose key is
/// not pinned is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum HostKeyPin {
    /// The keys an OpenSSH known_hosts file lists for `[host]:port` (or `host` on 22).
    KnownHosts(PathBuf),
    /// The SHA-256 fingerprint `ssh-keygen -lf` prints: `SHA256:` and 43 base64 characters.
    Fingerprint(String),
}

impl SshConfig {
    /// `user@host:port`, for messages and logs: never a key, passphrase or password.
    pub fn describe(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }

    /// What must never reach an output.
    pub fn secrets(&self) -> Vec<&str> {
        match &self.auth {
            SshAuth::Key {
                passphrase: Some(p),
                ..
            } => vec![p.0.as_str()],
            SshAuth::Password(p) => vec![p.0.as_str()],
            SshAuth::Key { .. } | SshAuth::Agent { .. } => Vec::new(),
        }
    }

    /// Reads what the settings name (the key, the known_hosts entry), so that a mistake
    /// stops the configuration instead of every later connection.
    pub fn check_files(&self) -> Result<(), String> {
        if let SshAuth::Key { file, passphrase } = &self.auth {
            load_identity(file, passphrase.as_ref(), self.source)?;
        }
        if let HostKeyPin::KnownHosts(path) = &self.host_key {
            pinned_keys(path, &self.host, self.port, self.source)?;
        }
        Ok(())
    }
}

/// The private key in `file`, opened with `passphrase`.
pub fn load_identity(
    file: &Path,
    passphrase: Option<&Secret>,
    source: SshSource,
) -> Result<russh::keys::PrivateKey, String> {
    let setting = source.identity_file();
    let text = std::fs::read_to_string(file).map_err(|e| {
        format!(
            "cannot read the SSH key {} ({setting}): {e}; fix the path and make it readable by dbvigil",
            file.display()
        )
    })?;
    russh::keys::decode_secret_key(&text, passphrase.map(|p| p.0.as_str())).map_err(|e| match (e, passphrase) {
        (russh::keys::Error::KeyIsEncrypted, None) => format!(
            "the SSH key {} ({setting}) is encrypted: give its passphrase with {}, or use the SSH agent ({})",
            file.display(),
            source.passphrase_file(),
            source.agent(),
        ),
        (_, Some(_)) => format!(
            "cannot open the SSH key {} ({setting}) with the passphrase given: check {}, or that the file is an OpenSSH private key",
            file.display(),
            source.passphrase_file(),
        ),
        (e, None) => format!(
            "the SSH key {} ({setting}) is not a private key dbvigil can read ({e}): give an OpenSSH private key (ssh-keygen -t ed25519)",
            file.display()
        ),
    })
}

/// How known_hosts names a host: `host` on port 22, `[host]:port` elsewhere.
pub fn known_hosts_name(host: &str, port: u16) -> String {
    if port == DEFAULT_SSH_PORT {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The keys `path` pins for the bastion; none is an error that says how to pin one.
pub fn pinned_keys(
    path: &Path,
    host: &str,
    port: u16,
    source: SshSource,
) -> Result<Vec<PublicKey>, String> {
    let pin = source.pin("SHA256:...");
    std::fs::metadata(path).map_err(|e| {
        format!(
            "cannot read the SSH known_hosts file {} ({}): {e}; fix the path, or pin the bastion's key: {pin}{}",
            path.display(),
            source.known_hosts(),
            source.direct(),
        )
    })?;
    let keys = russh::keys::known_hosts::known_host_keys_path(host, port, path).map_err(|e| {
        format!(
            "cannot read the SSH known_hosts file {}: {e}; each line must be `host key-type base64-key`",
            path.display()
        )
    })?;
    if keys.is_empty() {
        return Err(format!(
            "the SSH known_hosts file {} has no key for {}: check the bastion's key out of band, then add it (ssh-keyscan -p {port} {host} >> {}) or pin its fingerprint: {pin}{}",
            path.display(),
            known_hosts_name(host, port),
            path.display(),
            source.direct(),
        ));
    }
    Ok(keys.into_iter().map(|(_, key)| key).collect())
}

/// `HOST`, `HOST:PORT` or `[IPV6]:PORT`: a bastion's address as a plan or a flag writes it.
pub fn parse_address(text: &str) -> Result<(String, u16), String> {
    let port_of = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{p:?} is not a port number (1-65535)"))
    };
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| "an IPv6 address needs its closing `]`".to_owned())?;
            match after.strip_prefix(':') {
                Some(p) => (host, port_of(p)?),
                None if after.is_empty() => (host, DEFAULT_SSH_PORT),
                None => return Err(format!("{after:?} after `]` is not `:PORT`")),
            }
        }
        // More than one colon without brackets is a bare IPv6 address.
        None => match text.split_once(':') {
            Some((host, p)) if !p.contains(':') => (host, port_of(p)?),
            _ => (text, DEFAULT_SSH_PORT),
        },
    };
    if host.is_empty() {
        return Err("the host is empty".to_owned());
    }
    Ok((host.to_owned(), port))
}

/// `SHA256:` followed by the 43 characters of unpadded base64 that `ssh-keygen -lf` prints.
pub fn valid_fingerprint(text: &str) -> bool {
    text.strip_prefix("SHA256:").is_some_and(|b64| {
        b64.len() == 43
            && b64
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
    })
}

/// A key's fingerprint as `ssh-keygen -lf` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

pub(super) mod raw {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Ssh {
        pub host: Option<Spanned<Expanded>>,
        pub port: Option<Spanned<u16>>,
        pub user: Option<Spanned<Expanded>>,
        pub identity_file: Option<Spanned<Expanded>>,
        pub passphrase_file: Option<Spanned<Expanded>>,
        pub agent: Option<Spanned<bool>>,
        pub agent_socket: Option<Spanned<Expanded>>,
        pub known_hosts: Option<Spanned<Expanded>>,
        pub host_key: Option<Spanned<Expanded>>,
        /// Refused with a reason, rather than as an unknown key.
        pub password: Option<Spanned<Secret>>,
    }
}

/// Checks an `ssh:` block as written (`at` is where it starts); relative paths are
/// relative to `base`.
pub(super) fn validate(
    ssh: &raw::Ssh,
    at: Location,
    base: &Path,
) -> Result<SshConfig, (Location, String)> {
    if let Some(p) = &ssh.password {
        return Err((
            p.referenced,
            "ssh takes no password: log in to the bastion with `identity_file` (a key, with passphrase_file if it is encrypted) or `agent: true`; only a migration plan's sql_runner_password logs in with one".to_owned(),
        ));
    }
    let Some(host) = ssh.host.as_ref().filter(|h| !h.value.0.trim().is_empty()) else {
        return Err((
            at,
            "ssh needs `host`: the bastion dbvigil logs into to reach the database".to_owned(),
        ));
    };
    let Some(user) = ssh.user.as_ref().filter(|u| !u.value.0.trim().is_empty()) else {
        return Err((at, "ssh needs `user`: the login on the bastion".to_owned()));
    };
    let port = ssh.port.as_ref().map_or(DEFAULT_SSH_PORT, |p| p.value);
    if let Some(p) = ssh.port.as_ref().filter(|p| p.value == 0) {
        return Err((p.referenced, "ssh port must be 1 to 65535".to_owned()));
    }
    let agent = ssh.agent.as_ref().is_some_and(|a| a.value) || ssh.agent_socket.is_some();
    let auth = match (&ssh.identity_file, agent) {
        (Some(file), false) => {
            let passphrase = match &ssh.passphrase_file {
                None => None,
                Some(p) => Some(Secret(
                    std::fs::read_to_string(base.join(&p.value.0))
                        .map_err(|e| {
                            (
                                p.referenced,
                                format!("cannot read passphrase_file {:?}: {e}; create it or fix the path", p.value.0),
                            )
                        })?
                        .trim_end_matches(['\r', '\n'])
                        .to_owned(),
                )),
            };
            SshAuth::Key {
                file: base.join(&file.value.0),
                passphrase,
            }
        }
        (None, true) => {
            if let Some(p) = &ssh.passphrase_file {
                return Err((
                    p.referenced,
                    "passphrase_file opens an identity_file; the agent holds its keys open"
                        .to_owned(),
                ));
            }
            SshAuth::Agent {
                socket: ssh.agent_socket.as_ref().map(|s| base.join(&s.value.0)),
            }
        }
        (Some(file), true) => {
            return Err((
                file.referenced,
                "ssh takes either `identity_file` or the agent (`agent: true`), not both"
                    .to_owned(),
            ));
        }
        (None, false) => {
            return Err((
                at,
                "ssh needs a key: `identity_file` (a private key file) or `agent: true` (the keys of SSH_AUTH_SOCK's agent)".to_owned(),
            ));
        }
    };
    let host_key = match (&ssh.known_hosts, &ssh.host_key) {
        (Some(file), None) => HostKeyPin::KnownHosts(base.join(&file.value.0)),
        (None, Some(fp)) => {
            let text = fp.value.0.trim();
            if !valid_fingerprint(text) {
                return Err((
                    fp.referenced,
                    format!(
                        "host_key {text:?} is not a SHA-256 fingerprint: give what `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints on the bastion, `SHA256:` and 43 characters"
                    ),
                ));
            }
            HostKeyPin::Fingerprint(text.to_owned())
        }
        (Some(file), Some(_)) => {
            return Err((
                file.referenced,
                "ssh takes either `known_hosts` or `host_key`, not both".to_owned(),
            ));
        }
        (None, None) => {
            return Err((
                at,
                "ssh needs the bastion's host key: `known_hosts` (a file with its key) or `host_key` (its SHA256: fingerprint); dbvigil never accepts an unknown key".to_owned(),
            ));
        }
    };
    let config = SshConfig {
        host: host.value.0.trim().to_owned(),
        port,
        user: user.value.0.trim().to_owned(),
        auth,
        host_key,
        source: SshSource::Config,
    };
    if let (SshAuth::Key { file, passphrase }, Some(written)) = (&config.auth, &ssh.identity_file) {
        load_identity(file, passphrase.as_ref(), config.source)
            .map_err(|m| (written.referenced, m))?;
    }
    if let (HostKeyPin::KnownHosts(file), Some(written)) = (&config.host_key, &ssh.known_hosts) {
        pinned_keys(file, &config.host, config.port, config.source)
            .map_err(|m| (written.referenced, m))?;
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_host_and_optional_port() {
        let ok = |t: &str| parse_address(t).unwrap();
        assert_eq!(ok("bastion.example"), ("bastion.example".to_owned(), 22));
        assert_eq!(ok("10.0.0.1:2222"), ("10.0.0.1".to_owned(), 2222));
        assert_eq!(ok("[::1]:2222"), ("::1".to_owned(), 2222));
        assert_eq!(ok("[::1]"), ("::1".to_owned(), 22));
        assert_eq!(ok("fe80::1"), ("fe80::1".to_owned(), 22));
        assert_eq!(
            parse_address("h:0").unwrap_err(),
            "\"0\" is not a port number (1-65535)"
        );
        assert_eq!(
            parse_address("h:ssh").unwrap_err(),
            "\"ssh\" is not a port number (1-65535)"
        );
        assert_eq!(parse_address(":22").unwrap_err(), "the host is empty");
        assert_eq!(
            parse_address("[::1").unwrap_err(),
            "an IPv6 address needs its closing `]`"
        );
    }

    #[test]
    fn fingerprints_are_what_ssh_keygen_prints() {
        assert!(valid_fingerprint(
            "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"
        ));
        assert!(!valid_fingerprint(
            "uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"
        ));
        assert!(!valid_fingerprint("SHA256:short"));
        assert!(!valid_fingerprint(
            "MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48"
        ));
    }

    #[test]
    fn known_hosts_names_the_port_only_when_it_is_not_22() {
        assert_eq!(known_hosts_name("bastion", 22), "bastion");
        assert_eq!(known_hosts_name("bastion", 2222), "[bastion]:2222");
    }
}
