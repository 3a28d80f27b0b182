//! Migration history: how often a target's history tables are read, where dbvigil's own
//! scripts are, and `dbvigil migrate`'s limits.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::values::{Expanded, HumanDuration};
use super::{ConfigError, Kind, Validator, format_duration};

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

pub(super) mod raw {
    //! The `migrations` section of a target as written.
    use super::*;

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
}

impl Validator<'_> {
    pub(super) fn migrations(
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
}
