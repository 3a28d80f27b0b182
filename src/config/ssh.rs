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
            load_identity(file, passphrase.as_ref())?;
        }
        if let HostKeyPin::KnownHosts(path) = &self.host_key {
            pinned_keys(path, &self.host, self.port)?;
        }
        Ok(())
    }
}

/// The private key in `file`, opened with `passphrase`.
pub fn load_identity(
    file: &Path,
    passphrase: Option<&Secret>,
) -> Result<russh::keys::PrivateKey, String> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        format!(
            "cannot read the SSH identity_file {}: {e}; fix the path and make it readable by dbvigil",
            file.display()
        )
    })?;
    russh::keys::decode_secret_key(&text, passphrase.map(|p| p.0.as_str())).map_err(|e| match (e, passphrase) {
        (russh::keys::Error::KeyIsEncrypted, None) => format!(
            "the SSH identity_file {} is encrypted: give its passphrase in passphrase_file, or use the SSH agent",
            file.display()
        ),
        (_, Some(_)) => format!(
            "cannot open the SSH identity_file {} with the passphrase given: check passphrase_file, or that the file is an OpenSSH private key",
            file.display()
        ),
        (e, None) => format!(
            "the SSH identity_file {} is not a private key dbvigil can read ({e}): give an OpenSSH private key (ssh-keygen -t ed25519)",
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
pub fn pinned_keys(path: &Path, host: &str, port: u16) -> Result<Vec<PublicKey>, String> {
    std::fs::metadata(path).map_err(|e| {
        format!(
            "cannot read the SSH known_hosts file {}: {e}; fix the path, or pin the bastion's key with host_key",
            path.display()
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
            "the SSH known_hosts file {} has no key for {}: check the bastion's key out of band, then add it (ssh-keyscan -p {port} {host} >> {}) or pin its fingerprint with host_key",
            path.display(),
            known_hosts_name(host, port),
            path.display()
        ));
    }
    Ok(keys.into_iter().map(|(_, key)| key).collect())
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
    };
    if let (SshAuth::Key { file, passphrase }, Some(written)) = (&config.auth, &ssh.identity_file) {
        load_identity(file, passphrase.as_ref()).map_err(|m| (written.referenced, m))?;
    }
    if let (HostKeyPin::KnownHosts(file), Some(written)) = (&config.host_key, &ssh.known_hosts) {
        pinned_keys(file, &config.host, config.port).map_err(|m| (written.referenced, m))?;
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

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
