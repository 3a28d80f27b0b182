//! One SSH session to a bastion: TCP, the host key checked against what the settings pin,
//! and the login. Every way it can fail is told apart, so an operator knows whether to fix
//! the bastion's address, its key, or the login.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::key::PrivateKeyWithHashAlg;
use russh::keys::{PrivateKey, PublicKey};

use super::{Failure, TunnelError};
use crate::config::{HostKeyPin, SshAuth, SshConfig, fingerprint, known_hosts_name, pinned_keys};

/// What a login offers, read once per tunnel: an encrypted key is opened once, not at
/// every session.
pub(super) enum Login {
    Key(Arc<PrivateKey>),
    Agent(Option<std::path::PathBuf>),
    Password(String),
}

impl Login {
    pub(super) fn read(ssh: &SshConfig) -> Result<Login, TunnelError> {
        Ok(match &ssh.auth {
            SshAuth::Key { file, passphrase } => Login::Key(Arc::new(
                crate::config::load_identity(file, passphrase.as_ref(), ssh.source)
                    .map_err(|m| TunnelError::new(Failure::BastionAuth, m))?,
            )),
            SshAuth::Agent { socket } => Login::Agent(socket.clone()),
            SshAuth::Password(p) => Login::Password(p.0.clone()),
        })
    }
}

/// The host keys the bastion may present.
pub(super) enum Pins {
    Keys {
        keys: Vec<PublicKey>,
        file: std::path::PathBuf,
    },
    Fingerprint(String),
}

impl Pins {
    pub(super) fn read(ssh: &SshConfig) -> Result<Pins, TunnelError> {
        Ok(match &ssh.host_key {
            HostKeyPin::KnownHosts(file) => Pins::Keys {
                keys: pinned_keys(file, &ssh.host, ssh.port, ssh.source)
                    .map_err(|m| TunnelError::new(Failure::BastionHostKey, m))?,
                file: file.clone(),
            },
            HostKeyPin::Fingerprint(f) => Pins::Fingerprint(f.clone()),
        })
    }

    /// `Err` says what was presented, what was pinned, and how to check and re-pin.
    fn check(&self, presented: &PublicKey, ssh: &SshConfig) -> Result<(), String> {
        let seen = fingerprint(presented);
        let algorithm = presented.algorithm();
        let pinned = match self {
            Pins::Keys { keys, .. }
                if keys.iter().any(|k| k.key_data() == presented.key_data()) =>
            {
                return Ok(());
            }
            Pins::Fingerprint(f) if *f == seen => return Ok(()),
            Pins::Keys { keys, file } => {
                let listed: Vec<String> = keys
                    .iter()
                    .map(|k| format!("{} {}", k.algorithm(), fingerprint(k)))
                    .collect();
                format!(
                    "{} pins {} for {}",
                    file.display(),
                    listed.join(", "),
                    known_hosts_name(&ssh.host, ssh.port)
                )
            }
            Pins::Fingerprint(f) => format!("the pin is {f}"),
        };
        Err(format!(
            "the bastion {}:{} presented the host key {algorithm} {seen}, which is not the pinned one ({pinned}): the bastion was reinstalled or someone is in between; refused. Check the key on the bastion itself (ssh-keygen -lf /etc/ssh/ssh_host_{}_key.pub), and only if it matches, pin it: put its line in the known_hosts file (ssh-keyscan -p {} {}) or {}",
            ssh.host,
            ssh.port,
            key_file_name(presented),
            ssh.port,
            ssh.host,
            ssh.source.pin(&seen),
        ))
    }
}

fn key_file_name(key: &PublicKey) -> &'static str {
    match key.algorithm() {
        russh::keys::Algorithm::Ed25519 => "ed25519",
        russh::keys::Algorithm::Rsa { .. } => "rsa",
        russh::keys::Algorithm::Ecdsa { .. } => "ecdsa",
        _ => "*",
    }
}

/// The session's event handler: only the host key check is ours, and its verdict is kept
/// so that a refusal reads as a host-key failure rather than a broken handshake.
pub(super) struct Client {
    pins: Arc<Pins>,
    ssh: Arc<SshConfig>,
    verdict: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        presented: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match presented {
            russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } => key,
            russh::keys::PublicKeyOrCertificate::Certificate(c) => {
                *lock(&self.verdict) = Some(format!(
                    "the bastion {}:{} presented a host certificate; dbvigil pins host keys: pin the bastion's plain key ({})",
                    self.ssh.host,
                    self.ssh.port,
                    fingerprint(&PublicKey::from(c.public_key().clone()))
                ));
                return Ok(false);
            }
        };
        match self.pins.check(key, &self.ssh) {
            Ok(()) => Ok(true),
            Err(message) => {
                *lock(&self.verdict) = Some(message);
                Ok(false)
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A new, logged-in session to the bastion. The caller bounds it in time.
pub(super) async fn open(
    ssh: &Arc<SshConfig>,
    login: &Login,
    pins: &Arc<Pins>,
) -> Result<Handle<Client>, TunnelError> {
    let bastion = format!("{}:{}", ssh.host, ssh.port);
    let addrs: Vec<_> = tokio::net::lookup_host((ssh.host.as_str(), ssh.port))
        .await
        .map_err(|e| {
            TunnelError::new(
                Failure::BastionDns,
                format!("cannot resolve the bastion {}: {e}", ssh.host),
            )
        })?
        .collect();
    let mut stream = None;
    let mut last = None;
    for addr in &addrs {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some((*addr, e)),
        }
    }
    let stream = match (stream, last) {
        (Some(s), _) => s,
        (None, Some((addr, e))) => {
            let failure = if e.kind() == std::io::ErrorKind::ConnectionRefused {
                Failure::BastionRefused
            } else {
                Failure::BastionIo
            };
            return Err(TunnelError::new(
                failure,
                format!("cannot connect to the bastion {bastion} ({addr}): {e}"),
            ));
        }
        (None, None) => {
            return Err(TunnelError::new(
                Failure::BastionDns,
                format!("the bastion {} has no address", ssh.host),
            ));
        }
    };
    let _ = stream.set_nodelay(true);
    let config = Arc::new(client::Config {
        // A reused session between probes: the bastion and any NAT between see traffic, and
        // a session whose peer vanished is found dead within a minute and a half.
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 3,
        inactivity_timeout: None,
        nodelay: true,
        ..Default::default()
    });
    let verdict = Arc::new(Mutex::new(None));
    let handler = Client {
        pins: pins.clone(),
        ssh: ssh.clone(),
        verdict: verdict.clone(),
    };
    // Every read acknowledged at once: the bastion's sshd does not set TCP_NODELAY for a
    // forwarding-only session, and would otherwise wait on our delayed ACKs (quickack.rs).
    let stream = super::quickack::QuickAck::new(stream);
    let mut handle = client::connect_stream(config, stream, handler)
        .await
        .map_err(|e| match lock(&verdict).take() {
            Some(refusal) => TunnelError::new(Failure::BastionHostKey, refusal),
            None => TunnelError::new(
                Failure::BastionIo,
                format!("the SSH handshake with the bastion {bastion} failed: {e}"),
            ),
        })?;
    authenticate(&mut handle, ssh, login).await?;
    Ok(handle)
}

async fn authenticate(
    handle: &mut Handle<Client>,
    ssh: &SshConfig,
    login: &Login,
) -> Result<(), TunnelError> {
    let who = ssh.describe();
    let broken = |e: &dyn std::fmt::Display| {
        TunnelError::new(
            Failure::BastionIo,
            format!("the bastion {who} broke the connection during the login: {e}"),
        )
    };
    let (result, offered) = match login {
        Login::Key(key) => {
            let hash = handle
                .best_supported_rsa_hash()
                .await
                .map_err(|e| broken(&e))?
                .flatten();
            let result = handle
                .authenticate_publickey(
                    ssh.user.clone(),
                    PrivateKeyWithHashAlg::new(key.clone(), hash),
                )
                .await
                .map_err(|e| broken(&e))?;
            let offered = match &ssh.auth {
                SshAuth::Key { file, .. } => format!(
                    "the key in {} ({})",
                    file.display(),
                    fingerprint(key.public_key())
                ),
                _ => "the key".to_owned(),
            };
            (result, offered)
        }
        Login::Agent(socket) => agent_login(handle, ssh, socket.as_deref()).await?,
        Login::Password(password) => {
            let result = handle
                .authenticate_password(ssh.user.clone(), password.clone())
                .await
                .map_err(|e| broken(&e))?;
            (result, "a password".to_owned())
        }
    };
    match result {
        russh::client::AuthResult::Success => Ok(()),
        russh::client::AuthResult::Failure {
            remaining_methods, ..
        } => {
            let methods: Vec<&str> = remaining_methods.iter().map(|m| m.into()).collect();
            Err(TunnelError::new(
                Failure::BastionAuth,
                format!(
                    "the bastion refused the login {who} with {offered} (it accepts: {}): {}, or fix {}{}",
                    methods.join(", "),
                    match login {
                        Login::Password(_) =>
                            "check the plan's sql_runner_password, or log in with a key (--ssh-identity, --ssh-agent)",
                        Login::Key(_) | Login::Agent(_) =>
                            "authorise the public key in that user's authorized_keys on the bastion",
                    },
                    ssh.source.user(),
                    ssh.source.direct(),
                ),
            ))
        }
    }
}

/// Tries each key the agent holds, as `ssh` does.
async fn agent_login(
    handle: &mut Handle<Client>,
    ssh: &SshConfig,
    socket: Option<&std::path::Path>,
) -> Result<(russh::client::AuthResult, String), TunnelError> {
    let no_agent = |e: &dyn std::fmt::Display| {
        TunnelError::new(
            Failure::BastionAuth,
            format!(
                "cannot reach the SSH agent ({e}): start one and add the key (ssh-add), and give dbvigil its {}",
                ssh.source.agent_socket()
            ),
        )
    };
    let mut agent = match socket {
        Some(path) => AgentClient::connect_uds(path)
            .await
            .map_err(|e| no_agent(&e))?
            .dynamic(),
        None => AgentClient::connect_env()
            .await
            .map_err(|e| no_agent(&e))?
            .dynamic(),
    };
    let identities = agent.request_identities().await.map_err(|e| no_agent(&e))?;
    let keys: Vec<PublicKey> = identities
        .into_iter()
        .filter_map(|i| match i {
            russh::keys::agent::AgentIdentity::PublicKey { key, .. } => Some(key),
            russh::keys::agent::AgentIdentity::Certificate { .. } => None,
        })
        .collect();
    if keys.is_empty() {
        return Err(no_agent(&"it holds no key"));
    }
    let hash = handle
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten();
    let mut last = None;
    for key in &keys {
        let result = handle
            .authenticate_publickey_with(ssh.user.clone(), key.clone(), hash, &mut agent)
            .await
            .map_err(|e| {
                TunnelError::new(
                    Failure::BastionAuth,
                    format!("the SSH agent could not sign the login: {e}"),
                )
            })?;
        if result.success() {
            return Ok((result, String::new()));
        }
        last = Some(result);
    }
    let offered: Vec<String> = keys.iter().map(fingerprint).collect();
    Ok((
        last.expect("at least one key was offered"),
        format!("the agent's keys ({})", offered.join(", ")),
    ))
}
