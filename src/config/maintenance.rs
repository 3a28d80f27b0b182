//! Maintenance windows and the state store: durations, API tokens, scheduled windows, and
//! where windows are kept.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::values::{Expanded, HumanDuration, Secret};
use super::{ConfigError, GroupConfig, TargetConfig, format_duration};

pub const DEFAULT_WINDOW_DURATION: Duration = Duration::from_secs(3600);
pub const DEFAULT_MAX_WINDOW_DURATION: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(2);
const MIN_REFRESH_INTERVAL: Duration = Duration::from_millis(100);
/// Shorter tokens can be guessed; 16 characters is the floor, `openssl rand -hex 32` the advice.
pub const MIN_TOKEN_LENGTH: usize = 16;
/// Read on every load, for setups without a tokens file (the built-in configuration).
pub const TOKEN_ENV: &str = "DBVIGIL_MAINTENANCE_TOKEN";
/// The scope that covers every target and group.
pub const ALL_SCOPE: &str = "*";

#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceConfig {
    /// Length of a window started without a duration or end.
    pub default_duration: Duration,
    /// No window may be planned longer than this, extensions included.
    pub max_duration: Duration,
    /// Bearer tokens allowed to change windows. Empty: changes are refused.
    pub tokens: Vec<Token>,
    pub schedules: Vec<ScheduleConfig>,
}

impl MaintenanceConfig {
    /// Defaults, with the token from the environment if there is one.
    pub fn from_env() -> Result<MaintenanceConfig, ShortEnvToken> {
        Ok(MaintenanceConfig {
            default_duration: DEFAULT_WINDOW_DURATION,
            max_duration: DEFAULT_MAX_WINDOW_DURATION,
            tokens: env_token()?.into_iter().collect(),
            schedules: Vec::new(),
        })
    }
}

/// A bearer token and the name the audit trail records for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub name: String,
    pub secret: Secret,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleConfig {
    pub name: String,
    pub scope: String,
    pub reason: String,
    pub duration: Duration,
    pub when: When,
}

#[derive(Debug, Clone, PartialEq)]
pub enum When {
    /// Every week on `day` at `time` local time in `timezone` (an IANA name).
    Weekly {
        day: jiff::civil::Weekday,
        time: jiff::civil::Time,
        timezone: String,
    },
    /// Once, at an instant.
    Once(crate::time::Timestamp),
}

#[derive(Debug, Clone, PartialEq)]
pub struct StateConfig {
    /// A PostgreSQL URL shared by several exporters; `None`: SQLite in the data directory.
    pub url: Option<Secret>,
    /// How often windows are re-read from the store, so replicas agree within it.
    pub refresh_interval: Duration,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            url: None,
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
        }
    }
}

pub(super) mod raw {
    use super::*;

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Maintenance {
        pub default_duration: Option<Spanned<HumanDuration>>,
        pub max_duration: Option<Spanned<HumanDuration>>,
        pub tokens_file: Option<Spanned<Expanded>>,
        #[serde(default)]
        pub schedules: Vec<Schedule>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Schedule {
        pub name: Spanned<Expanded>,
        pub scope: Spanned<Expanded>,
        pub reason: Option<Expanded>,
        pub duration: Spanned<HumanDuration>,
        pub weekly: Option<Spanned<Weekly>>,
        pub once: Option<Spanned<Expanded>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Weekly {
        pub day: Spanned<Expanded>,
        pub time: Spanned<Expanded>,
        pub timezone: Option<Spanned<Expanded>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct State {
        pub url: Option<Spanned<Secret>>,
        pub refresh_interval: Option<Spanned<HumanDuration>>,
    }
}

pub(super) struct Checker<'a> {
    pub file: &'a str,
    pub base: &'a Path,
}

impl Checker<'_> {
    fn err(&self, at: serde_saphyr::Location, message: impl Into<String>) -> ConfigError {
        ConfigError::at(self.file, at, message)
    }

    pub fn state(&self, raw: raw::State) -> Result<StateConfig, ConfigError> {
        let mut state = StateConfig::default();
        if let Some(url) = raw.url {
            // Never repeat the URL in a message: it may hold a password.
            let scheme = url.value.0.split_once("://").map(|(s, _)| s);
            if !matches!(scheme, Some("postgres" | "postgresql")) {
                return Err(self.err(
                    url.referenced,
                    "state.url must be a PostgreSQL URL (postgres://user@host:5432/database); remove it to keep windows in SQLite in --data.dir",
                ));
            }
            if let Err(e) = url::Url::parse(&url.value.0) {
                return Err(self.err(
                    url.referenced,
                    format!(
                        "invalid state.url ({e}): write it like postgres://user@host:5432/database"
                    ),
                ));
            }
            state.url = Some(url.value);
        }
        if let Some(r) = raw.refresh_interval {
            if r.value.0 < MIN_REFRESH_INTERVAL {
                return Err(self.err(
                    r.referenced,
                    format!(
                        "refresh_interval {} is below the minimum of {}: raise it",
                        format_duration(r.value.0),
                        format_duration(MIN_REFRESH_INTERVAL)
                    ),
                ));
            }
            state.refresh_interval = r.value.0;
        }
        Ok(state)
    }

    pub fn maintenance(
        &self,
        raw: raw::Maintenance,
        targets: &[TargetConfig],
        groups: &[GroupConfig],
    ) -> Result<MaintenanceConfig, ConfigError> {
        let mut m = MaintenanceConfig::from_env().map_err(|e| ConfigError::Invalid {
            file: self.file.to_owned(),
            line: 1,
            column: 1,
            message: e.to_string(),
        })?;
        if let Some(d) = &raw.max_duration {
            if d.value.0.is_zero() {
                return Err(self.err(d.referenced, "max_duration must be greater than zero"));
            }
            m.max_duration = d.value.0;
        }
        if let Some(d) = &raw.default_duration {
            if d.value.0.is_zero() {
                return Err(self.err(d.referenced, "default_duration must be greater than zero"));
            }
            m.default_duration = d.value.0;
        }
        if m.default_duration > m.max_duration {
            let at = raw
                .default_duration
                .as_ref()
                .or(raw.max_duration.as_ref())
                .map(|d| d.referenced)
                .expect("only configured values can disagree");
            return Err(self.err(
                at,
                format!(
                    "default_duration {} is longer than max_duration {}: lower one or raise the other",
                    format_duration(m.default_duration),
                    format_duration(m.max_duration)
                ),
            ));
        }
        if let Some(f) = &raw.tokens_file {
            m.tokens.extend(self.tokens_file(f)?);
        }
        for s in raw.schedules {
            let schedule = self.schedule(s, &m, targets, groups)?;
            m.schedules.push(schedule);
        }
        Ok(m)
    }

    /// One token per line, optionally after a name (`NAME TOKEN`); `#` starts a comment.
    /// Messages name lines, never tokens.
    fn tokens_file(&self, f: &Spanned<Expanded>) -> Result<Vec<Token>, ConfigError> {
        let path = &f.value.0;
        let text = std::fs::read_to_string(self.base.join(path)).map_err(|e| {
            self.err(
                f.referenced,
                format!("cannot read tokens_file {path:?}: {e}; create it or fix the path, and make it readable by dbvigil"),
            )
        })?;
        let mut tokens = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let n = i + 1;
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (name, secret) = match fields.as_slice() {
                [secret] => (format!("token-{n}"), *secret),
                [name, secret] => ((*name).to_owned(), *secret),
                _ => {
                    return Err(self.err(
                        f.referenced,
                        format!("tokens_file {path:?} line {n}: write one token per line, optionally after a name and a space (`ci-pipeline TOKEN`)"),
                    ));
                }
            };
            if secret.len() < MIN_TOKEN_LENGTH {
                return Err(self.err(
                    f.referenced,
                    format!("tokens_file {path:?} line {n}: the token is shorter than {MIN_TOKEN_LENGTH} characters; generate one with `openssl rand -hex 32`"),
                ));
            }
            tokens.push(Token {
                name,
                secret: Secret(secret.to_owned()),
            });
        }
        if tokens.is_empty() {
            return Err(self.err(
                f.referenced,
                format!("tokens_file {path:?} holds no token: add one per line (`openssl rand -hex 32`), or remove tokens_file to refuse all changes"),
            ));
        }
        Ok(tokens)
    }

    fn schedule(
        &self,
        s: raw::Schedule,
        m: &MaintenanceConfig,
        targets: &[TargetConfig],
        groups: &[GroupConfig],
    ) -> Result<ScheduleConfig, ConfigError> {
        let name = s.name.value.0.clone();
        if !super::valid_target_name(&name) {
            return Err(self.err(
                s.name.referenced,
                format!("schedule name {name:?} may only contain letters, digits, '_', '.' and '-', starting with a letter or digit"),
            ));
        }
        if m.schedules.iter().any(|o| o.name == name) {
            return Err(self.err(
                s.name.referenced,
                format!("duplicate schedule name {name:?}: schedule names must be unique"),
            ));
        }
        let scope = s.scope.value.0.clone();
        if scope != ALL_SCOPE
            && !targets.iter().any(|t| t.name == scope)
            && !groups.iter().any(|g| g.name == scope)
        {
            return Err(self.err(
                s.scope.referenced,
                format!("schedule {name:?} has scope {scope:?}, which is neither a target, a group nor \"*\""),
            ));
        }
        let duration = s.duration.value.0;
        if duration.is_zero() || duration > m.max_duration {
            return Err(self.err(
                s.duration.referenced,
                format!(
                    "schedule {name:?} lasts {}: a window lasts more than zero and at most max_duration ({})",
                    format_duration(duration),
                    format_duration(m.max_duration)
                ),
            ));
        }
        let when = match (s.weekly, s.once) {
            (Some(w), None) => self.weekly(w)?,
            (None, Some(once)) => When::Once(once.value.0.trim().parse().map_err(|_| {
                self.err(
                    once.referenced,
                    format!("once {:?} is not an RFC 3339 time: write it like 2026-12-01T02:00:00Z or 2026-12-01T03:00:00+01:00", once.value.0),
                )
            })?),
            (Some(_), Some(once)) => {
                return Err(self.err(
                    once.referenced,
                    format!("schedule {name:?} sets both weekly and once: keep one"),
                ));
            }
            (None, None) => {
                return Err(self.err(
                    s.name.referenced,
                    format!("schedule {name:?} needs `weekly` (day, time, timezone) or `once` (an RFC 3339 time)"),
                ));
            }
        };
        Ok(ScheduleConfig {
            name,
            scope,
            reason: s
                .reason
                .map_or_else(|| "scheduled maintenance".to_owned(), |r| r.0),
            duration,
            when,
        })
    }

    fn weekly(&self, w: Spanned<raw::Weekly>) -> Result<When, ConfigError> {
        let w = w.value;
        let day = parse_weekday(&w.day.value.0).ok_or_else(|| {
            self.err(
                w.day.referenced,
                format!(
                    "unknown day {:?}: use monday ... sunday (or mon ... sun)",
                    w.day.value.0
                ),
            )
        })?;
        let time: jiff::civil::Time = w.time.value.0.trim().parse().map_err(|_| {
            self.err(
                w.time.referenced,
                format!(
                    "time {:?} is not a time of day: write HH:MM, like 03:30",
                    w.time.value.0
                ),
            )
        })?;
        let timezone = match w.timezone {
            None => "UTC".to_owned(),
            Some(tz) => {
                let name = tz.value.0.trim().to_owned();
                if jiff::tz::TimeZone::get(&name).is_err() {
                    return Err(self.err(
                        tz.referenced,
                        format!(
                            "unknown timezone {name:?}: use an IANA name like Europe/Berlin or UTC"
                        ),
                    ));
                }
                name
            }
        };
        Ok(When::Weekly {
            day,
            time,
            timezone,
        })
    }
}

fn parse_weekday(text: &str) -> Option<jiff::civil::Weekday> {
    use jiff::civil::Weekday::*;
    let lower = text.trim().to_ascii_lowercase();
    let day = match lower.get(..3)? {
        "mon" => Monday,
        "tue" => Tuesday,
        "wed" => Wednesday,
        "thu" => Thursday,
        "fri" => Friday,
        "sat" => Saturday,
        "sun" => Sunday,
        _ => return None,
    };
    let full = format!("{day:?}").to_ascii_lowercase();
    (lower.len() == 3 || lower == full).then_some(day)
}

/// [`TOKEN_ENV`] holds a token too short to resist guessing.
#[derive(Debug, thiserror::Error)]
#[error(
    "{TOKEN_ENV} is shorter than {MIN_TOKEN_LENGTH} characters: generate a token with `openssl rand -hex 32`"
)]
pub struct ShortEnvToken;

/// The token from [`TOKEN_ENV`], named `env` in the audit trail.
fn env_token() -> Result<Option<Token>, ShortEnvToken> {
    match std::env::var(TOKEN_ENV) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) if v.trim().len() < MIN_TOKEN_LENGTH => Err(ShortEnvToken),
        Ok(v) => Ok(Some(Token {
            name: "env".to_owned(),
            secret: Secret(v.trim().to_owned()),
        })),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekdays_by_short_or_full_name_only() {
        assert_eq!(parse_weekday("Sun"), Some(jiff::civil::Weekday::Sunday));
        assert_eq!(
            parse_weekday("wednesday"),
            Some(jiff::civil::Weekday::Wednesday)
        );
        assert_eq!(parse_weekday("sundae"), None);
        assert_eq!(parse_weekday("su"), None);
    }
}
