//! The YAML configuration: parsed, expanded and validated in one pass, so that every
//! mistake is reported with its file, line and column before anything starts.
//!
//! `raw` types mirror the file (with spans); the public types below are what the rest of
//! dbvigil sees, already checked.

mod error;
mod values;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

pub use error::ConfigError;
use values::{Expanded, HumanDuration};
pub use values::{Secret, expand_env, format_duration};

/// Shortest probe interval: below it a probe cycle is mostly connection overhead.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// The default timeout is min(interval, this).
pub const MAX_DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Labels dbvigil puts on its own series; a target's extra labels may not reuse them.
const RESERVED_LABELS: &[&str] = &[
    "target", "kind", "check", "phase", "reason", "le", "version", "identity", "instance", "job",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Identifies this exporter in heartbeat rows, so two exporters probing one database
    /// each keep their own row.
    pub instance: String,
    pub targets: Vec<TargetConfig>,
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
    /// Consecutive failed probes before the target counts as down.
    pub failure_threshold: u32,
    /// Extra labels, sorted by name.
    pub labels: Vec<(String, String)>,
}

impl TargetConfig {
    pub fn has_check(&self, check: Check) -> bool {
        self.checks.contains(&check)
    }

    /// Everything that must never appear in an output: passwords and URLs with credentials.
    pub fn secrets(&self) -> Vec<&str> {
        match &self.endpoint {
            Endpoint::Sqlite { .. } => Vec::new(),
        }
    }

    /// Where the target is, for humans, without any credential.
    pub fn describe_endpoint(&self) -> String {
        match &self.endpoint {
            Endpoint::Sqlite { path, .. } => path.display().to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Sqlite,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Sqlite => "sqlite",
        }
    }

    /// The checks that make sense for this kind, in probe order; also the default set.
    pub fn applicable_checks(self) -> &'static [Check] {
        match self {
            Kind::Sqlite => &[Check::Connect, Check::Read, Check::Write],
        }
    }
}

/// How to reach a target. One variant per kind, so a prober receives exactly what it needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    Sqlite {
        path: PathBuf,
        /// Create the file when missing. Off by default: a vanished database is an outage,
        /// not something to paper over with an empty file.
        create: bool,
    },
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
            ConfigSource::Builtin { data_dir } => Ok(builtin(data_dir, default_instance)),
        }
    }
}

/// The configuration used when no file is given.
pub fn builtin(data_dir: &Path, instance: &str) -> Config {
    Config {
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
            failure_threshold: 1,
            labels: Vec::new(),
        }],
    }
}

pub fn load_file(path: &Path, default_instance: &str) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, &path.display().to_string(), default_instance)
}

/// Parses and validates configuration text; `file` is only used in error messages.
pub fn parse(text: &str, file: &str, default_instance: &str) -> Result<Config, ConfigError> {
    let raw: raw::Config =
        serde_saphyr::from_str(text).map_err(|e| ConfigError::from_yaml(file, e))?;
    Validator { file }.config(raw, default_instance)
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
        pub password_file: Option<Spanned<PasswordFile>>,
        // Schedule and checks
        pub interval: Option<Spanned<HumanDuration>>,
        pub timeout: Option<Spanned<HumanDuration>>,
        pub failure_threshold: Option<Spanned<u32>>,
        pub checks: Option<Spanned<Vec<Spanned<Check>>>>,
        pub connection: Option<ConnectionMode>,
        pub labels: Option<HashMap<Spanned<String>, Expanded>>,
    }

    /// A password read from a file when the configuration is loaded (and on every reload, so
    /// a rotated secret is picked up). Trailing newlines are not part of the password.
    pub struct PasswordFile(#[allow(dead_code)] pub Secret);

    impl<'de> Deserialize<'de> for PasswordFile {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            use serde::de::Error as _;
            let path = Expanded::deserialize(d)?.0;
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok(PasswordFile(Secret(
                    text.trim_end_matches(['\r', '\n']).to_owned(),
                ))),
                Err(e) => Err(D::Error::custom(format!(
                    "cannot read password_file {path:?}: {e}; create it or fix the path, and make it readable by dbvigil"
                ))),
            }
        }
    }
}

struct Validator<'a> {
    file: &'a str,
}

impl Validator<'_> {
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
            targets.push(self.target(t, &raw.defaults)?);
        }
        Ok(Config { instance, targets })
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
            if RESERVED_LABELS.contains(&k.as_str()) {
                return Err(self.err(
                    key.referenced,
                    format!(
                        "label name {k:?} is reserved by dbvigil or Prometheus: choose another name"
                    ),
                ));
            }
            labels.insert(key.value, value.0);
        }

        Ok(TargetConfig {
            name,
            kind,
            endpoint,
            interval,
            timeout,
            checks,
            connection: t.connection.or(defaults.connection).unwrap_or_default(),
            failure_threshold,
            labels: labels.into_iter().collect(),
        })
    }

    fn endpoint(&self, t: &raw::Target, kind: Kind) -> Result<Endpoint, ConfigError> {
        match kind {
            Kind::Sqlite => {
                let server_fields = [
                    ("url", t.url.as_ref().map(|s| s.referenced)),
                    ("host", t.host.as_ref().map(|s| s.referenced)),
                    ("port", t.port.as_ref().map(|s| s.referenced)),
                    ("user", t.user.as_ref().map(|s| s.referenced)),
                    ("database", t.database.as_ref().map(|s| s.referenced)),
                    ("password", t.password.as_ref().map(|s| s.referenced)),
                    (
                        "password_file",
                        t.password_file.as_ref().map(|s| s.referenced),
                    ),
                ];
                if let Some((field, at)) = server_fields
                    .iter()
                    .find_map(|(f, at)| at.map(|at| (f, at)))
                {
                    return Err(self.err(
                        at,
                        format!("`{field}` does not apply to kind sqlite: a SQLite target is a file; set `path` instead"),
                    ));
                }
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
                    path: PathBuf::from(&path.value.0),
                    create: t.create.as_ref().is_some_and(|c| c.value),
                })
            }
        }
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

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
        && !name.starts_with("__")
}
