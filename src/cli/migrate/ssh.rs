//! The bastion of a `dbvigil migrate` run without a configuration file: `--ssh` for a URL,
//! a plan's runner columns for its rows, and the `--ssh-*` flags that say how to log in
//! and how to know the bastion. A configured `--target` brings its own `ssh:` block.

use std::path::PathBuf;

use clap::Args;

use crate::config::{self, HostKeyPin, Secret, SshAuth, SshConfig, SshSource, valid_fingerprint};
use crate::migrate::plan::Runner;

#[derive(Debug, Args)]
pub struct SshArgs {
    /// Reach the --database-url database through this SSH bastion (USER@HOST[:PORT]); its
    /// host is the database as the bastion sees it.
    #[arg(long, value_name = "USER@HOST[:PORT]", global = true)]
    pub ssh: Option<String>,
    /// The private key that logs in to the bastion (--ssh or the plan's runner hosts).
    #[arg(long = "ssh-identity", value_name = "FILE", global = true)]
    pub identity: Option<PathBuf>,
    /// A file holding the passphrase of an encrypted --ssh-identity.
    #[arg(
        long = "ssh-passphrase-file",
        value_name = "FILE",
        requires = "identity",
        global = true
    )]
    pub passphrase_file: Option<PathBuf>,
    /// Log in with the keys of the SSH agent at SSH_AUTH_SOCK.
    #[arg(long = "ssh-agent", conflicts_with = "identity", global = true)]
    pub agent: bool,
    /// The known_hosts file that pins the bastion's host key [default: ~/.ssh/known_hosts].
    #[arg(long = "ssh-known-hosts", value_name = "FILE", global = true)]
    pub known_hosts: Option<PathBuf>,
    /// The bastion's host key fingerprint, as `ssh-keygen -lf` prints it (SHA256:...).
    #[arg(
        long = "ssh-host-key",
        value_name = "SHA256:...",
        conflicts_with = "known_hosts",
        global = true
    )]
    pub host_key: Option<String>,
    /// Connect to the plan's databases directly and leave its runner columns unused.
    #[arg(long = "plan-direct", global = true)]
    pub plan_direct: bool,
}

/// Bastion flags that do not fit the run (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum SshFlagError {
    #[error(
        "{0} says how to reach a bastion, and this run has none: add --ssh USER@HOST[:PORT] (with --database-url) or use a plan whose rows name a sql_runner_host"
    )]
    NoBastion(&'static str),
    #[error(
        "--ssh goes with --database-url: a --target takes its bastion from its ssh: block, and a plan from its runner columns"
    )]
    SshWithoutUrl,
    #[error(
        "{0} applies to --database-url and --plan runs: a --target reaches its bastion as its ssh: block in the configuration says"
    )]
    TargetHasItsOwn(&'static str),
    #[error("--plan-direct applies to --plan only")]
    DirectWithoutPlan,
    #[error("--plan-direct connects directly, so {0} has nothing to do: drop one of them")]
    DirectWithBastionFlag(&'static str),
    #[error(
        "--ssh reaches a database server through a bastion; a sqlite: URL is a file on this machine: drop --ssh"
    )]
    SshForSqlite,
    #[error(
        "--ssh takes no password (USER@HOST[:PORT]): log in to the bastion with --ssh-identity FILE or --ssh-agent"
    )]
    PasswordInSsh,
    #[error("--ssh {text:?}: {why}")]
    Address { text: String, why: String },
    #[error(
        "--ssh-host-key {0:?} is not a SHA-256 fingerprint: give what `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints on the bastion, `SHA256:` and 43 characters"
    )]
    Fingerprint(String),
    #[error("cannot read --ssh-passphrase-file {}: {error}; create it or fix the path", path.display())]
    Passphrase {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error(
        "no way to log in to the runner {who} (plan row {row}): pass --ssh-identity FILE or --ssh-agent, or give the plan's sql_runner_password{}",
        SshSource::Plan.direct()
    )]
    NoLogin { who: String, row: usize },
    #[error("no way to log in to the bastion {0}: pass --ssh-identity FILE or --ssh-agent")]
    NoKey(String),
    #[error(
        "--ssh-agent: SSH_AUTH_SOCK is not set, so there is no agent to ask: start one and add the key (eval \"$(ssh-agent)\"; ssh-add KEY), or pass --ssh-identity FILE"
    )]
    NoAgent,
    #[error(
        "no known_hosts file to check the bastion's host key against (HOME is not set): pass --ssh-known-hosts FILE or --ssh-host-key SHA256:..."
    )]
    NoKnownHosts,
    /// The key or the known_hosts entry is unusable; the message says which and why.
    #[error("{0}")]
    Files(String),
}

impl SshArgs {
    /// The flags given, by name, that only a bastion uses.
    fn bastion_flags(&self) -> Option<&'static str> {
        [
            (self.identity.is_some(), "--ssh-identity"),
            (self.passphrase_file.is_some(), "--ssh-passphrase-file"),
            (self.agent, "--ssh-agent"),
            (self.known_hosts.is_some(), "--ssh-known-hosts"),
            (self.host_key.is_some(), "--ssh-host-key"),
        ]
        .into_iter()
        .find_map(|(given, name)| given.then_some(name))
    }

    /// Refuses flags that this kind of run (`--plan`, `--database-url`, `--target`) would
    /// ignore.
    pub fn check(&self, target: bool, plan: bool, url: bool) -> Result<(), SshFlagError> {
        if self.ssh.is_some() && !url {
            return Err(SshFlagError::SshWithoutUrl);
        }
        if let (true, Some(flag)) = (target, self.bastion_flags()) {
            return Err(SshFlagError::TargetHasItsOwn(flag));
        }
        if self.plan_direct {
            if !plan {
                return Err(SshFlagError::DirectWithoutPlan);
            }
            if let Some(flag) = self.bastion_flags() {
                return Err(SshFlagError::DirectWithBastionFlag(flag));
            }
        }
        if let Some(flag) = self.bastion_flags() {
            if !plan && self.ssh.is_none() {
                return Err(SshFlagError::NoBastion(flag));
            }
        }
        Ok(())
    }

    /// `--ssh` for a URL run, checked as far as it can be without connecting.
    pub fn for_url(&self) -> Result<Option<SshConfig>, SshFlagError> {
        let Some(text) = &self.ssh else {
            return Ok(None);
        };
        let address = |why: String| SshFlagError::Address {
            text: text.clone(),
            why,
        };
        let (user, at) = text
            .rsplit_once('@')
            .filter(|(user, _)| !user.is_empty())
            .ok_or_else(|| address("give the login on the bastion: USER@HOST[:PORT]".into()))?;
        if user.contains(':') {
            // USER:PASSWORD@HOST would put a password in the process list and in every
            // message that names the bastion; the text is not repeated.
            return Err(SshFlagError::PasswordInSsh);
        }
        let (host, port) = config::parse_address(at).map_err(address)?;
        let who = format!("{user}@{host}:{port}");
        let auth = self.key_or_agent()?.ok_or(SshFlagError::NoKey(who))?;
        self.settings(host, port, user.to_owned(), auth, SshSource::Flags)
            .map(Some)
    }

    /// The bastion of a plan's runner: the flags' key or agent, else the plan's password
    /// (`true`: the caller warns that keys are preferred).
    pub fn for_runner(&self, runner: &Runner) -> Result<(SshConfig, bool), SshFlagError> {
        let (auth, password) = match (self.key_or_agent()?, &runner.password) {
            (Some(auth), _) => (auth, false),
            (None, Some(p)) => (SshAuth::Password(p.clone()), true),
            (None, None) => {
                return Err(SshFlagError::NoLogin {
                    who: format!("{}@{}:{}", runner.user, runner.host, runner.port),
                    row: runner.row,
                });
            }
        };
        let settings = self.settings(
            runner.host.clone(),
            runner.port,
            runner.user.clone(),
            auth,
            SshSource::Plan,
        )?;
        Ok((settings, password))
    }

    fn key_or_agent(&self) -> Result<Option<SshAuth>, SshFlagError> {
        if self.agent {
            return Ok(Some(SshAuth::Agent { socket: None }));
        }
        let Some(file) = &self.identity else {
            return Ok(None);
        };
        let passphrase = match &self.passphrase_file {
            None => None,
            Some(path) => Some(Secret(
                std::fs::read_to_string(path)
                    .map_err(|error| SshFlagError::Passphrase {
                        path: path.clone(),
                        error,
                    })?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
            )),
        };
        Ok(Some(SshAuth::Key {
            file: file.clone(),
            passphrase,
        }))
    }

    /// The settings, with the host key pinned by the flags or, as `ssh` does, by the
    /// user's own known_hosts; the key and the pin are read now, so that a mistake stops
    /// the run before any database is touched.
    fn settings(
        &self,
        host: String,
        port: u16,
        user: String,
        auth: SshAuth,
        source: SshSource,
    ) -> Result<SshConfig, SshFlagError> {
        let host_key = match (&self.host_key, &self.known_hosts) {
            (Some(fp), _) => {
                let fp = fp.trim();
                if !valid_fingerprint(fp) {
                    return Err(SshFlagError::Fingerprint(fp.to_owned()));
                }
                HostKeyPin::Fingerprint(fp.to_owned())
            }
            (None, Some(file)) => HostKeyPin::KnownHosts(file.clone()),
            (None, None) => {
                let home = std::env::var_os("HOME")
                    .filter(|h| !h.is_empty())
                    .ok_or(SshFlagError::NoKnownHosts)?;
                HostKeyPin::KnownHosts(PathBuf::from(home).join(".ssh/known_hosts"))
            }
        };
        let settings = SshConfig {
            host,
            port,
            user,
            auth,
            host_key,
            source,
        };
        settings.check_files().map_err(SshFlagError::Files)?;
        if matches!(settings.auth, SshAuth::Agent { .. })
            && std::env::var_os("SSH_AUTH_SOCK").is_none_or(|s| s.is_empty())
        {
            return Err(SshFlagError::NoAgent);
        }
        Ok(settings)
    }
}
