//! Targets: what each one probes and how often, checked field by field and then against
//! each other (unique names, `replica_of`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::raw::Defaults;
use super::{ConfigError, Endpoint, GroupConfig, MigrationsConfig, Validator, format_duration};

/// Shortest probe interval: below it a probe cycle is mostly connection overhead.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// The default timeout is min(interval, this).
pub const MAX_DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq)]
pub struct TargetConfig {
    pub name: String,
    pub kind: Kind,
    pub endpoint: Endpoint,
    pub interval: Duration,
    pub timeout: Duration,
    pub checks: Vec<Check>,
    pub connection: ConnectionMode,
    pub phase_buckets: PhaseBuckets,
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
    /// written (percent-encoded) in a URL, and the bastion key's passphrase.
    pub fn secrets(&self) -> Vec<&str> {
        match &self.endpoint {
            Endpoint::Server(s) => s
                .password
                .iter()
                .flat_map(|p| [p.0.as_str(), s.password_in_url.0.as_str()])
                .chain(s.ssh.iter().flat_map(|ssh| ssh.secrets()))
                .collect(),
            Endpoint::Sqlite { .. } | Endpoint::Tcp { .. } => Vec::new(),
        }
    }

    /// Where the target is (and the bastion it is reached through), for humans, without
    /// any credential.
    pub fn describe_endpoint(&self) -> String {
        match &self.endpoint {
            Endpoint::Sqlite { path, .. } => path.display().to_string(),
            Endpoint::Server(s) => {
                let at = match &s.database {
                    Some(db) => format!("{}:{}/{db}", s.host, s.port),
                    None => format!("{}:{}", s.host, s.port),
                };
                match &s.ssh {
                    Some(ssh) => format!("{at} via the bastion {}", ssh.describe()),
                    None => at,
                }
            }
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

    pub(super) fn default_port(self) -> u16 {
        match self {
            Kind::Postgres => 5432,
            Kind::Mysql => 3306,
            Kind::Sqlite | Kind::Tcp => 0,
        }
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

impl ConnectionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionMode::Fresh => "fresh",
            ConnectionMode::Reuse => "reuse",
        }
    }
}

/// How finely each phase's duration histogram is bucketed: the biggest share of a
/// target's series, so the setting a fleet trades detail for series with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseBuckets {
    /// 14 bounds from 0.5 ms to 10 s.
    Detailed,
    /// 6 bounds from 1 ms to 2.5 s, 0.5 s (the latency alert's threshold) among them. The
    /// default: a fleet of a thousand databases saves a quarter of its series, and what it
    /// loses is resolution inside a bucket, not an alert or a panel (docs/metrics.md).
    #[default]
    Coarse,
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

pub(super) mod raw {
    //! A target as written, with spans.
    use super::*;
    use crate::config::Secret;
    use crate::config::endpoint::raw::{RawHeartbeat, RawTls};
    use crate::config::migrations::raw::RawMigrations;
    use crate::config::values::{Expanded, HumanDuration};

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Target {
        /// Required in `targets:`; a `target_files:` template has none (names come from
        /// addresses).
        pub name: Option<Spanned<Expanded>>,
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
        pub ssh: Option<Spanned<crate::config::ssh::raw::Ssh>>,
        // Schedule and checks
        pub interval: Option<Spanned<HumanDuration>>,
        pub timeout: Option<Spanned<HumanDuration>>,
        pub failure_threshold: Option<Spanned<u32>>,
        pub checks: Option<Spanned<Vec<Spanned<Check>>>>,
        pub connection: Option<ConnectionMode>,
        pub phase_buckets: Option<PhaseBuckets>,
        pub role: Option<Spanned<Role>>,
        pub labels: Option<HashMap<Spanned<String>, Expanded>>,
        pub maintenance_query: Option<Spanned<Expanded>>,
        pub migrations: Option<Spanned<RawMigrations>>,
    }
}

/// Checked targets, waiting for the groups: a group member's default role depends on them.
pub(super) struct Targets {
    pub list: Vec<TargetConfig>,
    /// Targets whose role the file sets: membership in a group leaves it alone.
    explicit_roles: Vec<String>,
}

impl Targets {
    /// Any member of a failover group may be the one standing by.
    pub(super) fn with_group_roles(self, groups: &[GroupConfig]) -> Vec<TargetConfig> {
        let Targets {
            mut list,
            explicit_roles,
        } = self;
        for t in &mut list {
            let member = groups.iter().any(|g| g.members.contains(&t.name));
            if member
                && t.role == Role::Primary
                && matches!(t.endpoint, Endpoint::Server(_))
                && !explicit_roles.contains(&t.name)
            {
                t.role = Role::Either;
            }
        }
        list
    }
}

impl Validator<'_> {
    /// Every target, checked alone and then against the others.
    pub(super) fn targets(
        &self,
        raw_targets: Option<Spanned<Vec<raw::Target>>>,
        defaults: &Defaults,
        discovering: bool,
    ) -> Result<Targets, ConfigError> {
        let raw_targets = match raw_targets.filter(|t| !t.value.is_empty()) {
            Some(t) => t.value,
            None if discovering => Vec::new(),
            None => {
                return Err(ConfigError::Invalid {
                    file: self.file.to_owned(),
                    line: 1,
                    column: 1,
                    message: "no targets configured: add at least one under `targets:`, or discovery files under `target_files:` (see examples/)"
                        .to_owned(),
                });
            }
        };
        let mut seen: HashMap<String, u64> = HashMap::new();
        let mut targets = Vec::with_capacity(raw_targets.len());
        let mut explicit_roles = Vec::new();
        for t in raw_targets {
            let Some(name) = &t.name else {
                return Err(self.err(
                    t.kind.referenced,
                    "this target has no `name`: give it one (letters, digits, '_', '.' and '-')",
                ));
            };
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
            targets.push((self.target(t, defaults)?, replica_of));
        }
        self.replicas(&targets)?;
        Ok(Targets {
            list: targets.into_iter().map(|(t, _)| t).collect(),
            explicit_roles,
        })
    }

    /// `replica_of` must name another target of the same kind whose heartbeat it can read.
    fn replicas(
        &self,
        targets: &[(TargetConfig, Option<serde_saphyr::Location>)],
    ) -> Result<(), ConfigError> {
        for (target, at) in targets {
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
        Ok(())
    }

    pub(super) fn target(
        &self,
        t: raw::Target,
        defaults: &Defaults,
    ) -> Result<TargetConfig, ConfigError> {
        let name_at = t.name.as_ref().map_or(t.kind.referenced, |n| n.referenced);
        let name = t
            .name
            .as_ref()
            .map(|n| n.value.0.clone())
            .unwrap_or_default();
        if !valid_target_name(&name) {
            return Err(self.err(
                name_at,
                format!(
                    "target name {name:?} may only contain letters, digits, '_', '.' and '-', starting with a letter or digit (it becomes a label value and a URL path segment)"
                ),
            ));
        }
        let kind = t.kind.value;
        let endpoint = self.endpoint(&t, kind, defaults.ssh.as_ref())?;

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
            check_label_name(&key.value).map_err(|m| self.err(key.referenced, m))?;
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
            phase_buckets: t
                .phase_buckets
                .or(defaults.phase_buckets)
                .unwrap_or_default(),
            role,
            failure_threshold,
            labels: labels.into_iter().collect(),
            maintenance_query,
            migrations,
        })
    }
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

/// Why `name` cannot be a target label, if it cannot.
pub(super) fn check_label_name(name: &str) -> Result<(), String> {
    if !valid_label_name(name) {
        return Err(format!(
            "label name {name:?} is not a valid Prometheus label name: use letters, digits and '_', not starting with a digit or '__'"
        ));
    }
    if crate::labels::is_reserved(name) {
        return Err(format!(
            "label name {name:?} is reserved by dbvigil or Prometheus: choose another name"
        ));
    }
    Ok(())
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
        && !name.starts_with("__")
}
