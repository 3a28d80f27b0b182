//! The YAML configuration: parsed, expanded and validated in one pass, so that every
//! mistake is reported with its file, line and column before anything starts.
//!
//! `raw` types mirror the file (with spans); the public types are what the rest of dbvigil
//! sees, already checked. This file is the schema's top (the file's sections, where a
//! configuration comes from); each section is checked in its own module.

mod alertmanager;
mod discovery;
mod endpoint;
mod error;
mod groups;
pub mod http_client;
mod maintenance;
mod migrations;
mod shard;
mod ssh;
mod targets;
mod url;
mod values;
mod web;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

pub use alertmanager::{AlertmanagerConfig, MatchOp, Matcher, ScopeSilence};
pub use discovery::{DEFAULT_REFRESH, Discovered, DiscoveryFiles, FileStatus, Notice, TargetFiles};
pub use endpoint::{Endpoint, Server, Tls, TlsMode};
pub use error::ConfigError;
pub use groups::{Eligibility, GroupConfig, Policy};
pub use http_client::HttpClientConfig;
pub use maintenance::{
    ALL_SCOPE, MaintenanceConfig, ScheduleConfig, ShortEnvToken, StateConfig, TOKEN_ENV, Token,
    When,
};
pub use migrations::{MigrationLimits, MigrationsConfig, parse_limit};
pub use shard::{Placement, Shard, ShardError};
pub use ssh::{
    DEFAULT_SSH_PORT, HostKeyPin, SshAuth, SshConfig, SshSource, fingerprint, known_hosts_name,
    load_identity, parse_address, pinned_keys, valid_fingerprint,
};
pub use targets::{
    Check, ConnectionMode, DEFAULT_INTERVAL, Kind, MAX_DEFAULT_TIMEOUT, MIN_INTERVAL, PhaseBuckets,
    Role, TargetConfig, valid_target_name,
};
pub use url::{UrlError, endpoint_from_url};
pub use values::{ExpandError, Secret, expand_env, format_duration};
use values::{Expanded, HumanDuration};
pub use web::{BasicAuth, RateLimit, WebConfig, load_web_file, parse_web};

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Identifies this exporter in heartbeat rows, so two exporters probing one database
    /// each keep their own row.
    pub instance: String,
    /// The targets of `targets:`; the exporter adds those the discovery files describe.
    pub targets: Vec<TargetConfig>,
    /// Discovery files and the templates that make their addresses targets.
    pub target_files: Vec<TargetFiles>,
    /// Failover groups over the targets.
    pub groups: Vec<GroupConfig>,
    pub maintenance: MaintenanceConfig,
    pub state: StateConfig,
    /// Where windows become silences; `None`: they stay dbvigil's own.
    pub alertmanager: Option<AlertmanagerConfig>,
}

impl Config {
    /// Whether `scope` names something a maintenance window can cover.
    pub fn is_scope(&self, scope: &str) -> bool {
        scope == ALL_SCOPE
            || self.targets.iter().any(|t| t.name == scope)
            || self.groups.iter().any(|g| g.name == scope)
    }

    /// The scopes whose windows cover `scope`: itself, the groups a target belongs to, and
    /// `*`.
    pub fn covering_scopes<'a>(&'a self, scope: &'a str) -> Vec<&'a str> {
        let mut scopes = vec![scope];
        scopes.extend(
            self.groups
                .iter()
                .filter(|g| g.members.iter().any(|m| m == scope))
                .map(|g| g.name.as_str()),
        );
        if scope != ALL_SCOPE {
            scopes.push(ALL_SCOPE);
        }
        scopes
    }
}

/// Where a configuration comes from, so that a reload reads the same place again.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    File(PathBuf),
    /// The built-in configuration: one embedded SQLite target in the data directory.
    Builtin {
        data_dir: PathBuf,
    },
}

impl ConfigSource {
    pub fn load(&self, default_instance: &str) -> Result<Config, ConfigError> {
        match self {
            ConfigSource::File(path) => load_file(path, default_instance),
            ConfigSource::Builtin { data_dir } => builtin(data_dir, default_instance),
        }
    }
}

/// The configuration used when no file is given. Fails only on a malformed token in the
/// environment.
pub fn builtin(data_dir: &Path, instance: &str) -> Result<Config, ConfigError> {
    let maintenance = MaintenanceConfig::from_env().map_err(|e| ConfigError::Invalid {
        file: "(built-in configuration)".to_owned(),
        line: 1,
        column: 1,
        message: e.to_string(),
    })?;
    Ok(Config {
        instance: instance.to_owned(),
        targets: vec![TargetConfig {
            name: "embedded".to_owned(),
            kind: Kind::Sqlite,
            endpoint: Endpoint::Sqlite {
                path: data_dir.join("dbvigil-probe.db"),
                create: true,
            },
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_INTERVAL,
            checks: Kind::Sqlite.applicable_checks().to_vec(),
            connection: ConnectionMode::Fresh,
            phase_buckets: PhaseBuckets::default(),
            role: Role::Primary,
            failure_threshold: 1,
            labels: Vec::new(),
            maintenance_query: None,
            migrations: None,
        }],
        target_files: Vec::new(),
        groups: Vec::new(),
        maintenance,
        state: StateConfig::default(),
        alertmanager: None,
    })
}

pub fn load_file(path: &Path, default_instance: &str) -> Result<Config, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    if size > error::MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_owned(),
            size,
        });
    }
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, &path.display().to_string(), base, default_instance)
}

/// Parses and validates configuration text. `file` names it in error messages; relative
/// paths inside it are resolved against `base`.
pub fn parse(
    text: &str,
    file: &str,
    base: &Path,
    default_instance: &str,
) -> Result<Config, ConfigError> {
    let raw: raw::Config =
        serde_saphyr::from_str(text).map_err(|e| ConfigError::from_yaml(file, e))?;
    Validator {
        file,
        base,
        default_ssh: std::cell::OnceCell::new(),
    }
    .config(raw, default_instance)
}

mod raw {
    //! The file as written, with spans for the checks that need more than one value.
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Config {
        pub instance: Option<Spanned<Expanded>>,
        #[serde(default)]
        pub defaults: Defaults,
        pub targets: Option<Spanned<Vec<super::targets::raw::Target>>>,
        #[serde(default)]
        pub target_files: Vec<super::discovery::raw::TargetFiles>,
        #[serde(default)]
        pub groups: Vec<super::groups::raw::Group>,
        #[serde(default)]
        pub maintenance: super::maintenance::raw::Maintenance,
        #[serde(default)]
        pub state: super::maintenance::raw::State,
        pub alertmanager: Option<super::alertmanager::raw::Alertmanager>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Defaults {
        pub interval: Option<Spanned<HumanDuration>>,
        pub timeout: Option<Spanned<HumanDuration>>,
        pub failure_threshold: Option<Spanned<u32>>,
        pub connection: Option<ConnectionMode>,
        pub phase_buckets: Option<PhaseBuckets>,
        pub ssh: Option<Spanned<super::ssh::raw::Ssh>>,
    }
}

struct Validator<'a> {
    file: &'a str,
    /// Relative paths in the file (sqlite path, password_file, ca_file) are relative to the
    /// file's directory, as in Prometheus, so the working directory does not matter.
    base: &'a Path,
    /// `defaults.ssh`, checked once: its key file is read (and decrypted) once, not once
    /// per target.
    default_ssh: std::cell::OnceCell<Result<Option<SshConfig>, (serde_saphyr::Location, String)>>,
}

impl Validator<'_> {
    fn path(&self, p: &str) -> PathBuf {
        self.base.join(p)
    }

    fn err(&self, at: serde_saphyr::Location, message: impl Into<String>) -> ConfigError {
        ConfigError::at(self.file, at, message)
    }

    fn config(&self, raw: raw::Config, default_instance: &str) -> Result<Config, ConfigError> {
        let instance = match raw.instance {
            Some(s) if s.value.0.trim().is_empty() => {
                return Err(self.err(
                    s.referenced,
                    "instance must not be empty: remove it to use the host name",
                ));
            }
            Some(s) => s.value.0,
            None => default_instance.to_owned(),
        };
        let discovering = !raw.target_files.is_empty();
        let targets = self.targets(raw.targets, &raw.defaults, discovering)?;
        let target_files = self.target_files(raw.target_files, &raw.defaults)?;
        let groups = groups::validate(self.file, raw.groups, &targets.list)?;
        let targets = targets.with_group_roles(&groups);
        let checker = maintenance::Checker {
            file: self.file,
            base: self.base,
        };
        let maintenance = checker.maintenance(raw.maintenance, &targets, &groups)?;
        let state = checker.state(raw.state)?;
        let alertmanager = match raw.alertmanager {
            None => None,
            Some(a) => Some(
                alertmanager::Checker {
                    file: self.file,
                    base: self.base,
                }
                .alertmanager(a, &targets, &groups)?,
            ),
        };
        Ok(Config {
            instance,
            targets,
            target_files,
            groups,
            maintenance,
            state,
            alertmanager,
        })
    }
}
