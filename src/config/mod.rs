//! The YAML configuration: parsed, expanded and validated in one pass, so that every
//! mistake is reported with its file, line and column before anything starts.
//!
//! `raw` types mirror the file (with spans); the public types below are what the rest of
//! dbvigil sees, already checked.

mod error;
mod groups;
mod maintenance;
mod values;
mod web;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

pub use error::ConfigError;
pub use groups::{Eligibility, GroupConfig, Policy};
pub use maintenance::{
    ALL_SCOPE, MaintenanceConfig, ScheduleConfig, StateConfig, TOKEN_ENV, Token, When,
};
use values::{Expanded, HumanDuration};
pub use values::{Secret, expand_env, format_duration};
pub use web::{BasicAuth, WebConfig, load_web_file, parse_web};

/// Shortest probe interval: below it a probe cycle is mostly connection overhead.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// The default timeout is min(interval, this).
pub const MAX_DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Identifies this exporter in heartbeat rows, so two exporters probing one database
    /// each keep their own row.
    pub instance: String,
    pub targets: Vec<TargetConfig>,
    /// Failover groups over the targets.
    pub groups: Vec<GroupConfig>,
    pub maintenance: MaintenanceConfig,
    pub state: StateConfig,
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

#[derive(Debug, Clone, PartialEq)]
pub struct TargetConfig {
    pub name: String,
    pub kind: Kind,
    pub endpoint: Endpoint,
    pub interval: Duration,
    pub timeout: Duration,
    pub checks: Vec<Check>,
    pub connection: ConnectionMode,
    /// Whether the server is expected to take writes, to stand by read-only, or either.
    pub role: Role,
    /// Consecutive failed probes before the target counts as down.
    pub failure_threshold: u32,
    /// Extra labels, sorted by name.
    pub labels: Vec<(String, String)>,
    /// The application's own maintenance flag: a query whose truthy answer opens an
    /// app-sourced maintenance window for this target.
    pub maintenance_query: Option<String>,
    /// Read migration history tables on their own interval.
    pub migrations: Option<MigrationsConfig>,
}

/// How often the exporter reads a target's migration history, and where its scripts are.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationsConfig {
    /// dbvigil's scripts for this target: enables the pending count and checksum drift,
    /// and is the default `--dir` of `dbvigil migrate --target`.
    pub directory: Option<PathBuf>,
    /// File name patterns in `directory` that are not scripts.
    pub ignore: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    /// `dbvigil migrate --target`'s limits, unless its flags say otherwise.
    pub limits: MigrationLimits,
}

/// A schema change that runs for ten minutes is stuck or misjudged; ten seconds behind
/// another session's lock already queues every query on that table behind the migration.
const DEFAULT_STATEMENT: Duration = Duration::from_secs(600);
const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(10);

/// `dbvigil migrate`'s bounds on each statement of a run (enforced by `migrate::limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationLimits {
    /// None: a statement may run as long as it takes.
    pub statement: Option<Duration>,
    /// None: the server's own lock-wait settings apply.
    pub lock_wait: Option<Duration>,
}

impl Default for MigrationLimits {
    fn default() -> Self {
        MigrationLimits {
            statement: Some(DEFAULT_STATEMENT),
            lock_wait: Some(DEFAULT_LOCK_WAIT),
        }
    }
}

/// A limit as flags and the configuration write it: a duration like `30s`, or `none`.
pub fn parse_limit(text: &str) -> Result<Option<Duration>, String> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    match humantime::parse_duration(text.trim()) {
        Ok(d) if d.is_zero() => Err(
            "0 would stop every statement: write a duration like 30s or 10m, or none for no limit"
                .to_owned(),
        ),
        Ok(d) => Ok(Some(d)),
        Err(_) => Err(format!(
            "{text:?} is neither a duration nor none: write a duration like 30s or 10m, or none for no limit"
        )),
    }
}

/// Migration history changes rarely; reading it every probe would be waste.
const DEFAULT_MIGRATIONS_INTERVAL: Duration = Duration::from_secs(60);
const MAX_MIGRATIONS_TIMEOUT: Duration = Duration::from_secs(10);

impl TargetConfig {
    pub fn has_check(&self, check: Check) -> bool {
        self.checks.contains(&check)
    }

    /// The checks this target must pass to be up, given the read-only state its probe
    /// found: a server standing by in a role that allows it need not take the write.
    pub fn required_checks(&self, read_only: Option<bool>) -> Vec<Check> {
        let standing_by = self.role != Role::Primary && read_only == Some(true);
        self.checks
            .iter()
            .copied()
            .filter(|&c| !(standing_by && c == Check::Write))
            .collect()
    }

    /// Everything that must never appear in an output: the password, also as it was
    /// written (percent-encoded) in a URL.
    pub fn secrets(&self) -> Vec<&str> {
        match &self.endpoint {
            Endpoint::Server(s) => s
                .password
                .iter()
                .flat_map(|p| [p.0.as_str(), s.password_in_url.0.as_str()])
                .collect(),
            Endpoint::Sqlite { .. } | Endpoint::Tcp { .. } => Vec::new(),
        }
    }

    /// Where the target is, for humans, without any credential.
    pub fn describe_endpoint(&self) -> String {
        match &self.endpoint {
            Endpoint::Sqlite { path, .. } => path.display().to_string(),
            Endpoint::Server(s) => match &s.database {
                Some(db) => format!("{}:{}/{db}", s.host, s.port),
                None => format!("{}:{}", s.host, s.port),
            },
            Endpoint::Tcp { host, port } => format!("{host}:{port}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Sqlite,
    Postgres,
    /// MySQL and MariaDB.
    Mysql,
    /// Only checks that a port accepts connections (for engines dbvigil cannot speak to).
    Tcp,
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ok(match text.as_str() {
            "sqlite" => Kind::Sqlite,
            "postgres" | "postgresql" => Kind::Postgres,
            "mysql" | "mariadb" => Kind::Mysql,
            "tcp" => Kind::Tcp,
            other => {
                return Err(serde::de::Error::custom(format!(
                    "unknown kind `{other}`: use sqlite, postgres, mysql (also for MariaDB), or tcp to check only that a port accepts connections (Oracle, SQL Server, ...)"
                )));
            }
        })
    }
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Sqlite => "sqlite",
            Kind::Postgres => "postgres",
            Kind::Mysql => "mysql",
            Kind::Tcp => "tcp",
        }
    }

    /// The checks that make sense for this kind, in probe order; also the default set.
    pub fn applicable_checks(self) -> &'static [Check] {
        match self {
            Kind::Sqlite => &[Check::Connect, Check::Read, Check::Write],
            Kind::Postgres | Kind::Mysql => {
                &[Check::Tcp, Check::Connect, Check::Read, Check::Write]
            }
            Kind::Tcp => &[Check::Tcp],
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Kind::Postgres => 5432,
            Kind::Mysql => 3306,
            Kind::Sqlite | Kind::Tcp => 0,
        }
    }
}

/// How to reach a target, so a prober receives exactly what its kind needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    Sqlite {
        path: PathBuf,
        /// Create the file when missing. Off by default: a vanished database is an outage,
        /// not something to paper over with an empty file.
        create: bool,
    },
    /// PostgreSQL, MySQL or MariaDB.
    Server(Server),
    Tcp {
        host: String,
        port: u16,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<Secret>,
    /// The password as written in the URL (percent-encoded), so it can be redacted too.
    pub password_in_url: Secret,
    pub database: Option<String>,
    pub tls: Tls,
    /// Schema (PostgreSQL) or database (MySQL) holding `dbvigil_heartbeat`; default: the
    /// connection's own.
    pub heartbeat_schema: Option<String>,
    /// Create the heartbeat table on first use.
    pub create_heartbeat_table: bool,
    /// The target whose heartbeat this replica receives: its age is the replication lag.
    pub replica_of: Option<String>,
}

impl Server {
    /// A server of `kind` at its default port, with every option at its default; callers
    /// fill in where it is.
    pub fn blank(kind: Kind) -> Server {
        Server {
            host: String::new(),
            port: kind.default_port(),
            user: String::new(),
            password: None,
            password_in_url: Secret(String::new()),
            database: None,
            tls: Tls::default(),
            heartbeat_schema: None,
            create_heartbeat_table: true,
            replica_of: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tls {
    pub mode: TlsMode,
    /// CA bundle for verify-ca and verify-full.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    Disable,
    /// TLS when the server offers it (libpq's default).
    #[default]
    Prefer,
    Require,
    /// TLS, and the server certificate must be signed by the CA.
    VerifyCa,
    /// verify-ca, and the certificate must name the host.
    VerifyFull,
}

impl TlsMode {
    fn parse_url_value(v: &str) -> Option<TlsMode> {
        Some(match v.to_ascii_lowercase().replace('_', "-").as_str() {
            "disable" | "disabled" => TlsMode::Disable,
            "prefer" | "preferred" | "allow" => TlsMode::Prefer,
            "require" | "required" => TlsMode::Require,
            "verify-ca" => TlsMode::VerifyCa,
            "verify-full" | "verify-identity" => TlsMode::VerifyFull,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    Tcp,
    Connect,
    Read,
    Write,
}

impl Check {
    pub const ALL: [Check; 4] = [Check::Tcp, Check::Connect, Check::Read, Check::Write];

    pub fn as_str(self) -> &'static str {
        match self {
            Check::Tcp => "tcp",
            Check::Connect => "connect",
            Check::Read => "read",
            Check::Write => "write",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionMode {
    /// A new connection every cycle, so the real connect path is measured.
    #[default]
    Fresh,
    /// Keep one connection open between cycles.
    Reuse,
}

/// What a server's job is, so that a standby in its normal read-only state is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Must take writes: read-only is an outage (the default).
    #[default]
    Primary,
    /// Expected read-only (a streaming standby, a replica): up when it connects and reads;
    /// it is not asked to write while it is read-only.
    Standby,
    /// Either, as a failover group member may be: it must do what its current state needs
    /// (write while writable, read while read-only).
    Either,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Standby => "standby",
            Role::Either => "either",
        }
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
    let maintenance = MaintenanceConfig::from_env().map_err(|message| ConfigError::Invalid {
        file: "(built-in configuration)".to_owned(),
        line: 1,
        column: 1,
        message,
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
            role: Role::Primary,
            failure_threshold: 1,
            labels: Vec::new(),
            maintenance_query: None,
            migrations: None,
        }],
        groups: Vec::new(),
        maintenance,
        state: StateConfig::default(),
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
    Validator { file, base }.config(raw, default_instance)
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
        pub targets: Option<Spanned<Vec<Target>>>,
        #[serde(default)]
        pub groups: Vec<super::groups::raw::Group>,
        #[serde(default)]
        pub maintenance: super::maintenance::raw::Maintenance,
        #[serde(default)]
        pub state: super::maintenance::raw::State,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Defaults {
        pub interval: Option<Spanned<HumanDuration>>,
        pub timeout: Option<Spanned<HumanDuration>>,
        pub failure_threshold: Option<Spanned<u32>>,
        pub connection: Option<ConnectionMode>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Target {
        pub name: Spanned<Expanded>,
        pub kind: Spanned<Kind>,
        // SQLite
        pub path: Option<Spanned<Expanded>>,
        pub create: Option<Spanned<bool>>,
        // Servers
        pub url: Option<Spanned<Secret>>,
        pub host: Option<Spanned<Expanded>>,
        pub port: Option<Spanned<u16>>,
        pub user: Option<Spanned<Expanded>>,
        pub database: Option<Spanned<Expanded>>,
        pub password: Option<Spanned<Secret>>,
        pub password_file: Option<Spanned<Expanded>>,
        pub tls: Option<Spanned<RawTls>>,
        pub heartbeat: Option<Spanned<RawHeartbeat>>,
        pub replica_of: Option<Spanned<Expanded>>,
        // Schedule and checks
        pub interval: Option<Spanned<HumanDuration>>,
        pub timeout: Option<Spanned<HumanDuration>>,
        pub failure_threshold: Option<Spanned<u32>>,
        pub checks: Option<Spanned<Vec<Spanned<Check>>>>,
        pub connection: Option<ConnectionMode>,
        pub role: Option<Spanned<Role>>,
        pub labels: Option<HashMap<Spanned<String>, Expanded>>,
        pub maintenance_query: Option<Spanned<Expanded>>,
        pub migrations: Option<Spanned<RawMigrations>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RawMigrations {
        pub directory: Option<Spanned<Expanded>>,
        #[serde(default)]
        pub ignore: Vec<String>,
        pub interval: Option<Spanned<HumanDuration>>,
        pub timeout: Option<Spanned<HumanDuration>>,
        pub statement_timeout: Option<Spanned<Expanded>>,
        pub lock_wait_timeout: Option<Spanned<Expanded>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RawTls {
        pub mode: Option<TlsMode>,
        pub ca_file: Option<Spanned<Expanded>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RawHeartbeat {
        pub schema: Option<Spanned<Expanded>>,
        pub create: Option<bool>,
    }
}

struct Validator<'a> {
    file: &'a str,
    /// Relative paths in the file (sqlite path, password_file, ca_file) are relative to the
    /// file's directory, as in Prometheus, so the working directory does not matter.
    base: &'a Path,
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
        let Some(raw_targets) = raw.targets.filter(|t| !t.value.is_empty()) else {
            return Err(ConfigError::Invalid {
                file: self.file.to_owned(),
                line: 1,
                column: 1,
                message: "no targets configured: add at least one under `targets:` (see examples/)"
                    .to_owned(),
            });
        };
        let mut seen: HashMap<String, u64> = HashMap::new();
        let mut targets = Vec::with_capacity(raw_targets.value.len());
        let mut explicit_roles = Vec::new();
        for t in raw_targets.value {
            let name = &t.name;
            if let Some(first_line) = seen.get(&name.value.0) {
                return Err(self.err(
                    name.referenced,
                    format!(
                        "duplicate target name {:?} (first defined on line {first_line}): target names must be unique",
                        name.value.0
                    ),
                ));
            }
            seen.insert(name.value.0.clone(), name.referenced.line());
            let replica_of = t.replica_of.as_ref().map(|r| r.referenced);
            if t.role.is_some() {
                explicit_roles.push(name.value.0.clone());
            }
            targets.push((self.target(t, &raw.defaults)?, replica_of));
        }
        for (target, at) in &targets {
            let (Endpoint::Server(server), Some(at)) = (&target.endpoint, at) else {
                continue;
            };
            let primary = server.replica_of.as_deref().unwrap_or_default();
            match targets.iter().find(|(t, _)| t.name == primary) {
                None => {
                    return Err(self.err(
                        *at,
                        format!("replica_of names {primary:?}, which is not a configured target"),
                    ));
                }
                Some((p, _)) if p.name == target.name => {
                    return Err(self.err(*at, "a target cannot be a replica of itself"));
                }
                Some((p, _)) if p.kind != target.kind => {
                    return Err(self.err(
                        *at,
                        format!("replica_of names {primary:?}, a {} target; a replica must be of the same kind", p.kind.as_str()),
                    ));
                }
                Some((p, _)) if !p.has_check(Check::Write) => {
                    return Err(self.err(
                        *at,
                        format!("replica_of names {primary:?}, which has no write check: without its heartbeat there is no lag to measure"),
                    ));
                }
                Some(_) => {}
            }
        }
        let mut targets: Vec<TargetConfig> = targets.into_iter().map(|(t, _)| t).collect();
        let groups = groups::validate(self.file, raw.groups, &targets)?;
        // Any member of a failover group may be the one standing by.
        for t in &mut targets {
            let member = groups.iter().any(|g| g.members.contains(&t.name));
            if member
                && t.role == Role::Primary
                && matches!(t.endpoint, Endpoint::Server(_))
                && !explicit_roles.contains(&t.name)
            {
                t.role = Role::Either;
            }
        }
        let checker = maintenance::Checker {
            file: self.file,
            base: self.base,
        };
        let maintenance = checker.maintenance(raw.maintenance, &targets, &groups)?;
        let state = checker.state(raw.state)?;
        Ok(Config {
            instance,
            targets,
            groups,
            maintenance,
            state,
        })
    }

    fn target(
        &self,
        t: raw::Target,
        defaults: &raw::Defaults,
    ) -> Result<TargetConfig, ConfigError> {
        let name = t.name.value.0.clone();
        if !valid_target_name(&name) {
            return Err(self.err(
                t.name.referenced,
                format!(
                    "target name {name:?} may only contain letters, digits, '_', '.' and '-', starting with a letter or digit (it becomes a label value and a URL path segment)"
                ),
            ));
        }
        let kind = t.kind.value;
        let endpoint = self.endpoint(&t, kind)?;

        let interval_src = t.interval.as_ref().or(defaults.interval.as_ref());
        let interval = interval_src.map_or(DEFAULT_INTERVAL, |d| d.value.0);
        if let Some(d) = interval_src {
            if interval < MIN_INTERVAL {
                return Err(self.err(
                    d.referenced,
                    format!(
                        "interval {} is below the minimum of {}: raise it",
                        format_duration(interval),
                        format_duration(MIN_INTERVAL)
                    ),
                ));
            }
        }
        let timeout_src = t.timeout.as_ref().or(defaults.timeout.as_ref());
        let timeout = timeout_src.map_or(interval.min(MAX_DEFAULT_TIMEOUT), |d| d.value.0);
        if let Some(d) = timeout_src {
            if timeout.is_zero() {
                return Err(self.err(d.referenced, "timeout must be greater than zero"));
            }
            if timeout > interval {
                return Err(self.err(
                    d.referenced,
                    format!(
                        "timeout {} is longer than interval {}: probes of one target would overlap; lower the timeout or raise the interval",
                        format_duration(timeout),
                        format_duration(interval)
                    ),
                ));
            }
        }

        let applicable = kind.applicable_checks();
        let checks = match &t.checks {
            None => applicable.to_vec(),
            Some(list) => {
                if list.value.is_empty() {
                    return Err(self.err(
                        list.referenced,
                        format!(
                            "checks is empty: name at least one of {}, or remove it for all",
                            names(applicable)
                        ),
                    ));
                }
                let mut checks: Vec<Check> = Vec::new();
                for c in &list.value {
                    if !applicable.contains(&c.value) {
                        return Err(self.err(
                            c.referenced,
                            format!(
                                "check `{}` does not apply to kind {}: use {}",
                                c.value.as_str(),
                                kind.as_str(),
                                names(applicable)
                            ),
                        ));
                    }
                    if !checks.contains(&c.value) {
                        checks.push(c.value);
                    }
                }
                checks.sort();
                checks
            }
        };

        let threshold_src = t
            .failure_threshold
            .as_ref()
            .or(defaults.failure_threshold.as_ref());
        let failure_threshold = threshold_src.map_or(1, |s| s.value);
        if let Some(s) = threshold_src {
            if failure_threshold == 0 {
                return Err(self.err(s.referenced, "failure_threshold must be at least 1"));
            }
        }

        let mut labels = BTreeMap::new();
        for (key, value) in t.labels.into_iter().flatten() {
            let k = &key.value;
            if !valid_label_name(k) {
                return Err(self.err(
                    key.referenced,
                    format!("label name {k:?} is not a valid Prometheus label name: use letters, digits and '_', not starting with a digit or '__'"),
                ));
            }
            if crate::labels::is_reserved(k) {
                return Err(self.err(
                    key.referenced,
                    format!(
                        "label name {k:?} is reserved by dbvigil or Prometheus: choose another name"
                    ),
                ));
            }
            labels.insert(key.value, value.0);
        }

        if let Endpoint::Server(server) = &endpoint {
            if kind == Kind::Mysql
                && checks.contains(&Check::Write)
                && server.database.is_none()
                && server.heartbeat_schema.is_none()
            {
                return Err(self.err(
                    t.kind.referenced,
                    "a mysql target with a write check needs `database` (or `heartbeat.schema`): the database that holds dbvigil_heartbeat",
                ));
            }
        }

        let maintenance_query = match &t.maintenance_query {
            None => None,
            Some(q) if kind == Kind::Tcp => {
                return Err(self.err(
                    q.referenced,
                    "`maintenance_query` does not apply to kind tcp: dbvigil cannot query through a bare port",
                ));
            }
            Some(q) if q.value.0.trim().is_empty() => {
                return Err(self.err(
                    q.referenced,
                    "maintenance_query must not be empty: write a query whose first column is the flag, like SELECT maintenance FROM service_context LIMIT 1",
                ));
            }
            Some(q) => Some(q.value.0.trim().to_owned()),
        };

        let migrations = match &t.migrations {
            None => None,
            Some(m) => Some(self.migrations(m, kind)?),
        };

        // Group members get theirs once the groups are known (`either`).
        let role = match (&t.role, &endpoint) {
            (Some(r), Endpoint::Server(server)) => {
                if r.value == Role::Primary && server.replica_of.is_some() {
                    return Err(self.err(
                        r.referenced,
                        "a replica_of target stands by read-only: set role: standby (the default for replicas) or remove replica_of",
                    ));
                }
                r.value
            }
            (Some(r), _) => {
                return Err(self.err(
                    r.referenced,
                    format!("`role` does not apply to kind {}: only postgres and mysql servers can stand by", kind.as_str()),
                ));
            }
            (None, Endpoint::Server(server)) if server.replica_of.is_some() => Role::Standby,
            (None, _) => Role::Primary,
        };

        Ok(TargetConfig {
            name,
            kind,
            endpoint,
            interval,
            timeout,
            checks,
            connection: t.connection.or(defaults.connection).unwrap_or_default(),
            role,
            failure_threshold,
            labels: labels.into_iter().collect(),
            maintenance_query,
            migrations,
        })
    }

    fn migrations(
        &self,
        m: &Spanned<raw::RawMigrations>,
        kind: Kind,
    ) -> Result<MigrationsConfig, ConfigError> {
        if kind == Kind::Tcp {
            return Err(self.err(
                m.referenced,
                "`migrations` does not apply to kind tcp: dbvigil cannot read history tables through a bare port",
            ));
        }
        let raw = &m.value;
        let directory = match &raw.directory {
            None => None,
            Some(d) => {
                let path = self.path(&d.value.0);
                if !path.is_dir() {
                    return Err(self.err(
                        d.referenced,
                        format!(
                            "migrations directory {:?} is not a readable directory: fix the path (relative to this file) or remove `directory`",
                            d.value.0
                        ),
                    ));
                }
                Some(path)
            }
        };
        let interval = raw
            .interval
            .as_ref()
            .map_or(DEFAULT_MIGRATIONS_INTERVAL, |i| i.value.0);
        if let Some(i) = &raw.interval {
            if interval < Duration::from_secs(1) {
                return Err(self.err(
                    i.referenced,
                    "migrations interval must be at least 1s: history tables change rarely",
                ));
            }
        }
        let timeout = raw
            .timeout
            .as_ref()
            .map_or(interval.min(MAX_MIGRATIONS_TIMEOUT), |t| t.value.0);
        if let Some(t) = &raw.timeout {
            if timeout > interval || timeout.is_zero() {
                return Err(self.err(
                    t.referenced,
                    format!(
                        "migrations timeout {} must be above zero and at most the migrations interval {}",
                        format_duration(timeout),
                        format_duration(interval)
                    ),
                ));
            }
        }
        let limit = |key: &str, value: &Option<Spanned<Expanded>>, default| match value {
            None => Ok(default),
            Some(v) => parse_limit(&v.value.0)
                .map_err(|e| self.err(v.referenced, format!("migrations {key}: {e}"))),
        };
        let defaults = MigrationLimits::default();
        let limits = MigrationLimits {
            statement: limit(
                "statement_timeout",
                &raw.statement_timeout,
                defaults.statement,
            )?,
            lock_wait: limit(
                "lock_wait_timeout",
                &raw.lock_wait_timeout,
                defaults.lock_wait,
            )?,
        };
        Ok(MigrationsConfig {
            directory,
            ignore: raw.ignore.clone(),
            interval,
            timeout,
            limits,
        })
    }

    fn endpoint(&self, t: &raw::Target, kind: Kind) -> Result<Endpoint, ConfigError> {
        self.reject_foreign_fields(t, kind)?;
        match kind {
            Kind::Sqlite => {
                let Some(path) = &t.path else {
                    return Err(self.err(
                        t.kind.referenced,
                        "a sqlite target needs `path`: the database file to probe",
                    ));
                };
                if path.value.0.trim().is_empty() {
                    return Err(self.err(path.referenced, "path must not be empty"));
                }
                Ok(Endpoint::Sqlite {
                    path: self.path(&path.value.0),
                    create: t.create.as_ref().is_some_and(|c| c.value),
                })
            }
            Kind::Tcp => {
                let Some(host) = &t.host else {
                    return Err(self.err(t.kind.referenced, "a tcp target needs `host` and `port`"));
                };
                let Some(port) = &t.port else {
                    return Err(self.err(t.kind.referenced, "a tcp target needs `port`"));
                };
                Ok(Endpoint::Tcp {
                    host: host.value.0.clone(),
                    port: port.value,
                })
            }
            Kind::Postgres | Kind::Mysql => self.server(t, kind).map(Endpoint::Server),
        }
    }

    /// Each connection field belongs to some kinds only; a field given to another kind is
    /// a mistake worth stopping for, not something to ignore.
    fn reject_foreign_fields(&self, t: &raw::Target, kind: Kind) -> Result<(), ConfigError> {
        use Kind::*;
        let fields: [(&str, Option<serde_saphyr::Location>, &[Kind]); 12] = [
            ("path", t.path.as_ref().map(|s| s.referenced), &[Sqlite]),
            ("create", t.create.as_ref().map(|s| s.referenced), &[Sqlite]),
            (
                "url",
                t.url.as_ref().map(|s| s.referenced),
                &[Postgres, Mysql],
            ),
            (
                "host",
                t.host.as_ref().map(|s| s.referenced),
                &[Postgres, Mysql, Tcp],
            ),
            (
                "port",
                t.port.as_ref().map(|s| s.referenced),
                &[Postgres, Mysql, Tcp],
            ),
            (
                "user",
                t.user.as_ref().map(|s| s.referenced),
                &[Postgres, Mysql],
            ),
            (
                "database",
                t.database.as_ref().map(|s| s.referenced),
                &[Postgres, Mysql],
            ),
            (
                "password",
                t.password.as_ref().map(|s| s.referenced),
                &[Postgres, Mysql],
            ),
            (
                "password_file",
                t.password_file.as_ref().map(|s| s.referenced),
                &[Postgres, Mysql],
            ),
            (
                "tls",
                t.tls.as_ref().map(|s| s.referenced),
                &[Postgres, Mysql],
            ),
            (
                "heartbeat",
                t.heartbeat.as_ref().map(|s| s.referenced),
                &[Postgres, Mysql],
            ),
            (
                "replica_of",
                t.replica_of.as_ref().map(|s| s.referenced),
                &[Postgres, Mysql],
            ),
        ];
        for (field, at, kinds) in fields {
            if let Some(at) = at {
                if !kinds.contains(&kind) {
                    let hint = match kind {
                        Sqlite => "a SQLite target is a file; set `path`",
                        Tcp => "a tcp target only takes `host` and `port`",
                        Postgres | Mysql => {
                            "a server is reached by `url`, or `host`, `port`, `user`, `database`"
                        }
                    };
                    return Err(self.err(
                        at,
                        format!("`{field}` does not apply to kind {}: {hint}", kind.as_str()),
                    ));
                }
            }
        }
        Ok(())
    }

    fn server(&self, t: &raw::Target, kind: Kind) -> Result<Server, ConfigError> {
        let mut server = Server {
            replica_of: t.replica_of.as_ref().map(|r| r.value.0.clone()),
            ..Server::blank(kind)
        };
        if let Some(url) = &t.url {
            if let Some(host) = &t.host {
                return Err(self.err(host.referenced, "set either `url` or `host`, not both"));
            }
            self.apply_url(&mut server, &url.value.0, url.referenced, kind)?;
        } else if let Some(host) = &t.host {
            server.host = host.value.0.clone();
        } else {
            return Err(self.err(
                t.kind.referenced,
                format!("a {} target needs `url` or `host`", kind.as_str()),
            ));
        }
        if server.host.trim().is_empty() {
            let at = t.host.as_ref().map_or(t.kind.referenced, |h| h.referenced);
            return Err(self.err(at, "the host must not be empty"));
        }
        if let Some(port) = &t.port {
            server.port = port.value;
        }
        if let Some(user) = &t.user {
            server.user = user.value.0.clone();
        }
        if server.user.is_empty() {
            return Err(self.err(
                t.kind.referenced,
                format!(
                    "a {} target needs `user` (or a user in `url`)",
                    kind.as_str()
                ),
            ));
        }
        if let Some(db) = &t.database {
            server.database = Some(db.value.0.clone());
        }
        let given = match (&t.password, &t.password_file) {
            (Some(_), Some(f)) => {
                return Err(self.err(
                    f.referenced,
                    "set either `password` or `password_file`, not both",
                ));
            }
            (Some(p), None) => Some((p.referenced, p.value.clone())),
            (None, Some(f)) => Some((f.referenced, self.read_password_file(f)?)),
            (None, None) => None,
        };
        if let Some((at, password)) = given {
            if server.password.is_some() {
                return Err(self.err(
                    at,
                    "the password is given twice (in `url` and here): keep one",
                ));
            }
            server.password = Some(password);
        }
        if let Some(tls) = &t.tls {
            if let Some(mode) = tls.value.mode {
                server.tls.mode = mode;
            }
            if let Some(ca) = &tls.value.ca_file {
                let path = self.path(&ca.value.0);
                if let Err(e) = std::fs::metadata(&path) {
                    return Err(self.err(
                        ca.referenced,
                        format!(
                            "cannot read tls ca_file {:?}: {e}; fix the path or remove ca_file",
                            ca.value.0
                        ),
                    ));
                }
                server.tls.ca_file = Some(path);
            }
        }
        if matches!(server.tls.mode, TlsMode::VerifyCa | TlsMode::VerifyFull)
            && server.tls.ca_file.is_none()
        {
            let at = t.tls.as_ref().map_or(t.kind.referenced, |t| t.referenced);
            return Err(self.err(at, "tls mode verify-ca and verify-full need `ca_file`: the CA that signed the server's certificate"));
        }
        if let Some(hb) = &t.heartbeat {
            if let Some(schema) = &hb.value.schema {
                if !valid_identifier(&schema.value.0) {
                    return Err(self.err(
                        schema.referenced,
                        format!("heartbeat schema {:?} must be a plain identifier: letters, digits, '_' and '$', not starting with a digit", schema.value.0),
                    ));
                }
                server.heartbeat_schema = Some(schema.value.0.clone());
            }
            server.create_heartbeat_table = hb.value.create.unwrap_or(true);
        }
        Ok(server)
    }

    /// Read when the configuration is loaded and on every reload, so a rotated secret is
    /// picked up. Trailing newlines are not part of the password.
    fn read_password_file(&self, f: &Spanned<Expanded>) -> Result<Secret, ConfigError> {
        let path = &f.value.0;
        match std::fs::read_to_string(self.path(path)) {
            Ok(text) => Ok(Secret(text.trim_end_matches(['\r', '\n']).to_owned())),
            Err(e) => Err(self.err(
                f.referenced,
                format!("cannot read password_file {path:?}: {e}; create it or fix the path, and make it readable by dbvigil"),
            )),
        }
    }

    fn apply_url(
        &self,
        s: &mut Server,
        text: &str,
        at: serde_saphyr::Location,
        kind: Kind,
    ) -> Result<(), ConfigError> {
        apply_url(s, text, kind).map_err(|message| self.err(at, message))
    }
}

/// Reads host, port, user, password, database and TLS settings from a URL. Errors never
/// repeat the URL: it may hold a password.
fn apply_url(s: &mut Server, text: &str, kind: Kind) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| {
        format!(
            "invalid url ({e}): write it like {}://user@host:port/database",
            kind.as_str()
        )
    })?;
    let schemes: &[&str] = match kind {
        Kind::Postgres => &["postgres", "postgresql"],
        _ => &["mysql", "mariadb"],
    };
    if !schemes.contains(&url.scheme()) {
        return Err(format!(
            "url scheme `{}://` does not match kind {}: use {}://",
            url.scheme(),
            kind.as_str(),
            schemes[0]
        ));
    }
    let decode = |v: &str| {
        percent_encoding::percent_decode_str(v)
            .decode_utf8_lossy()
            .into_owned()
    };
    s.host = url
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if let Some(port) = url.port() {
        s.port = port;
    }
    s.user = decode(url.username());
    if let Some(p) = url.password() {
        s.password = Some(Secret(decode(p)));
        s.password_in_url = Secret(p.to_owned());
    }
    let db = decode(url.path().trim_start_matches('/'));
    if !db.is_empty() {
        s.database = Some(db);
    }
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "sslmode" | "ssl-mode" | "ssl_mode" => {
                s.tls.mode = TlsMode::parse_url_value(&value).ok_or_else(|| {
                    format!("unknown {key} {value:?} in url: use disable, prefer, require, verify-ca or verify-full")
                })?;
            }
            "sslrootcert" | "ssl-ca" | "ssl_ca" => {
                s.tls.ca_file = Some(PathBuf::from(value.as_ref()))
            }
            other => {
                return Err(format!(
                    "unknown url parameter `{other}`: dbvigil reads sslmode and sslrootcert from a url; set other options in the target"
                ));
            }
        }
    }
    Ok(())
}

/// A database given on the command line as a URL: `postgres://`, `mysql://`, `mariadb://`
/// or `sqlite:PATH` (a SQLite file is created when missing, for a first migration).
/// Errors never repeat the URL.
pub fn endpoint_from_url(text: &str) -> Result<(Kind, Endpoint), String> {
    if let Some(path) = text.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err("a sqlite url needs a path: sqlite:path/to/file.db".to_owned());
        }
        return Ok((
            Kind::Sqlite,
            Endpoint::Sqlite {
                path: PathBuf::from(path),
                create: true,
            },
        ));
    }
    let scheme = text.split_once("://").map(|(s, _)| s).unwrap_or_default();
    let kind = match scheme {
        "postgres" | "postgresql" => Kind::Postgres,
        "mysql" | "mariadb" => Kind::Mysql,
        _ => {
            return Err(
                "the database url must start with postgres://, mysql://, mariadb:// or sqlite:"
                    .to_owned(),
            );
        }
    };
    let mut server = Server::blank(kind);
    apply_url(&mut server, text, kind)?;
    if server.host.is_empty() || server.user.is_empty() {
        return Err(format!(
            "the database url needs a host and a user: {}://user@host:port/database",
            kind.as_str()
        ));
    }
    Ok((kind, Endpoint::Server(server)))
}

fn names(checks: &[Check]) -> String {
    checks
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn valid_target_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && name.len() <= 128
}

fn valid_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c == '$' || c.is_ascii_alphanumeric())
        && name.len() <= 63
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
        && !name.starts_with("__")
}
