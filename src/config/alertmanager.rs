//! `alertmanager:`: where maintenance windows become silences, how to reach it, and which
//! alerts a window on each scope silences beyond dbvigil's own.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use super::http_client::{self, HttpClientConfig};
use super::maintenance::ALL_SCOPE;
use super::values::{Expanded, HumanDuration};
use super::{ConfigError, GroupConfig, TargetConfig, format_duration};

pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(30);
const MIN_SYNC_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_OWNER: &str = "dbvigil";

#[derive(Debug, Clone, PartialEq)]
pub struct AlertmanagerConfig {
    /// Members of one Alertmanager cluster, tried in order: silences gossip between them,
    /// so each is created on the first that answers.
    pub urls: Vec<url::Url>,
    pub http: HttpClientConfig,
    pub timeout: Duration,
    /// How often silences are checked against the windows (and after every change by the
    /// API at once).
    pub sync_interval: Duration,
    /// Marks the silences this dbvigil (and its replicas) manage, so two deployments that
    /// share an Alertmanager leave each other's silences alone.
    pub owner: String,
    /// Whether a window also silences dbvigil's own availability alerts on its scope.
    pub own_alerts: bool,
    pub silences: Vec<ScopeSilence>,
}

/// One more silence for every window on `scope` (or on a group or `*` that covers it).
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeSilence {
    pub scope: String,
    pub matchers: Vec<Matcher>,
}

/// One of Alertmanager's label matchers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }

    pub fn is_regex(self) -> bool {
        matches!(self, MatchOp::Regex | MatchOp::NotRegex)
    }

    pub fn is_equal(self) -> bool {
        matches!(self, MatchOp::Equal | MatchOp::Regex)
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

impl Matcher {
    /// Parses `name="value"`, `name=~"regex"`, `name!="v"`, `name!~"re"`, as amtool and the
    /// routing tree take them; the value may be left unquoted when it has no spaces.
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let text = text.trim();
        let name_end = text
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(text.len());
        let name = &text[..name_end];
        let starts_well = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !starts_well {
            return Err(format!(
                "matcher {text:?} must start with a label name, like instance=~\"orders-db.*\""
            ));
        }
        let rest = &text[name_end..];
        let (op, value) = [
            ("=~", MatchOp::Regex),
            ("!~", MatchOp::NotRegex),
            ("!=", MatchOp::NotEqual),
            ("=", MatchOp::Equal),
        ]
        .iter()
        .find_map(|(s, op)| rest.trim_start().strip_prefix(s).map(|v| (*op, v.trim())))
        .ok_or_else(|| {
            format!("matcher {text:?} has no operator: write one of =, !=, =~, !~ after {name}")
        })?;
        let value = unquote(value).map_err(|why| format!("matcher {text:?}: {why}"))?;
        if op.is_regex() {
            regex_syntax::Parser::new()
                .parse(&value)
                .map_err(|e| format!("matcher {text:?}: invalid regular expression: {e}"))?;
        }
        Ok(Matcher {
            name: name.to_owned(),
            op,
            value,
        })
    }

    /// Whether it matches a label that is absent (Alertmanager refuses silences whose every
    /// matcher does, since they would silence every alert).
    fn matches_empty(&self) -> bool {
        match self.op {
            MatchOp::Equal => self.value.is_empty(),
            MatchOp::NotEqual => !self.value.is_empty(),
            // A regex that matches "" (anchored, as Alertmanager anchors it): `.*`, `a|`.
            MatchOp::Regex => regex_matches_empty(&self.value),
            MatchOp::NotRegex => !regex_matches_empty(&self.value),
        }
    }
}

fn regex_matches_empty(re: &str) -> bool {
    regex_syntax::Parser::new()
        .parse(re)
        .is_ok_and(|hir| hir.properties().minimum_len() == Some(0))
}

fn unquote(value: &str) -> Result<String, String> {
    let Some(inner) = value.strip_prefix('"') else {
        if value.contains(char::is_whitespace) || value.contains('"') {
            return Err("quote a value that has spaces or quotes: name=\"a value\"".to_owned());
        }
        return Ok(value.to_owned());
    };
    let inner = inner
        .strip_suffix('"')
        .ok_or("the value's closing quote is missing")?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some(e @ ('"' | '\\')) => out.push(e),
                // Regexes keep their own escapes (\d, \.).
                Some(e) => {
                    out.push('\\');
                    out.push(e);
                }
                None => return Err("the value ends in a lone backslash".to_owned()),
            },
            '"' => return Err("a quote inside the value must be escaped as \\\"".to_owned()),
            c => out.push(c),
        }
    }
    Ok(out)
}

pub(super) mod raw {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Alertmanager {
        pub urls: Spanned<Vec<Spanned<Expanded>>>,
        pub basic_auth: Option<http_client::raw::BasicAuth>,
        pub tls_config: Option<http_client::raw::Tls>,
        pub timeout: Option<Spanned<HumanDuration>>,
        pub sync_interval: Option<Spanned<HumanDuration>>,
        pub owner: Option<Spanned<Expanded>>,
        pub own_alerts: Option<bool>,
        #[serde(default)]
        pub silences: Vec<Silence>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Silence {
        pub scope: Spanned<Expanded>,
        pub matchers: Spanned<Vec<Spanned<Expanded>>>,
    }
}

pub(super) struct Checker<'a> {
    pub file: &'a str,
    pub base: &'a Path,
}

impl Checker<'_> {
    fn err(&self, at: Location, message: impl Into<String>) -> ConfigError {
        ConfigError::at(self.file, at, message)
    }

    pub fn alertmanager(
        &self,
        raw: raw::Alertmanager,
        targets: &[TargetConfig],
        groups: &[GroupConfig],
    ) -> Result<AlertmanagerConfig, ConfigError> {
        if raw.urls.value.is_empty() {
            return Err(self.err(
                raw.urls.referenced,
                "alertmanager.urls is empty: list your Alertmanager, like http://alertmanager:9093, or remove alertmanager:",
            ));
        }
        let mut urls = Vec::new();
        for u in raw.urls.value {
            urls.push(self.url(&u)?);
        }
        let http = http_client::validate(raw.basic_auth, raw.tls_config, self.base)
            .map_err(|(at, message)| self.err(at, message))?;
        let timeout = match raw.timeout {
            Some(t) if t.value.0.is_zero() => {
                return Err(self.err(t.referenced, "timeout must be greater than zero"));
            }
            Some(t) => t.value.0,
            None => DEFAULT_TIMEOUT,
        };
        let sync_interval = match raw.sync_interval {
            Some(s) if s.value.0 < MIN_SYNC_INTERVAL => {
                return Err(self.err(
                    s.referenced,
                    format!(
                        "sync_interval {} is below the minimum of {}: raise it",
                        format_duration(s.value.0),
                        format_duration(MIN_SYNC_INTERVAL)
                    ),
                ));
            }
            Some(s) => s.value.0,
            None => DEFAULT_SYNC_INTERVAL,
        };
        let owner = match raw.owner {
            Some(o) if o.value.0.trim().is_empty() || o.value.0.contains(['[', ']']) => {
                return Err(self.err(
                    o.referenced,
                    "owner must be a non-empty name without brackets, like dbvigil-eu",
                ));
            }
            Some(o) => o.value.0,
            None => DEFAULT_OWNER.to_owned(),
        };
        let mut silences = Vec::new();
        for s in raw.silences {
            let scope = s.scope.value.0;
            let known = scope == ALL_SCOPE
                || targets.iter().any(|t| t.name == scope)
                || groups.iter().any(|g| g.name == scope);
            if !known {
                return Err(self.err(
                    s.scope.referenced,
                    format!(
                        "alertmanager.silences scope {scope:?} is neither a configured target, a group, nor \"*\": fix the name, or remove the entry"
                    ),
                ));
            }
            if s.matchers.value.is_empty() {
                return Err(self.err(
                    s.matchers.referenced,
                    "matchers is empty: a silence needs at least one, like instance=~\"orders-db.*\"",
                ));
            }
            let mut matchers = Vec::new();
            for m in s.matchers.value {
                matchers.push(Matcher::parse(&m.value.0).map_err(|e| self.err(m.referenced, e))?);
            }
            if matchers.iter().all(Matcher::matches_empty) {
                return Err(self.err(
                    s.matchers.referenced,
                    "every matcher here also matches alerts without the label, so the silence would cover every alert (Alertmanager refuses it): add one that needs a value, like instance=~\"orders-db.*\"",
                ));
            }
            silences.push(ScopeSilence { scope, matchers });
        }
        Ok(AlertmanagerConfig {
            urls,
            http,
            timeout,
            sync_interval,
            owner,
            own_alerts: raw.own_alerts.unwrap_or(true),
            silences,
        })
    }

    fn url(&self, u: &Spanned<Expanded>) -> Result<url::Url, ConfigError> {
        let bad = |why: String| self.err(u.referenced, why);
        let url = url::Url::parse(&u.value.0).map_err(|e| {
            bad(format!(
                "invalid Alertmanager URL ({e}): write it like http://alertmanager:9093"
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad(format!(
                "Alertmanager URL scheme {:?}: write http:// or https://",
                url.scheme()
            )));
        }
        // Never repeat a URL that carries credentials: they belong in basic_auth.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "an Alertmanager URL must not carry a user or password: move them to alertmanager.basic_auth".to_owned(),
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad(format!(
                "Alertmanager URL {url} has a query or fragment: give the base URL, like http://alertmanager:9093 (or with its route prefix)"
            )));
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_parse_as_amtool_writes_them() {
        let m = Matcher::parse(r#"instance=~"orders-db.*""#).unwrap();
        assert_eq!(
            (m.name.as_str(), m.op, m.value.as_str()),
            ("instance", MatchOp::Regex, "orders-db.*")
        );
        let m = Matcher::parse("job != postgres").unwrap();
        assert_eq!((m.op, m.value.as_str()), (MatchOp::NotEqual, "postgres"));
        let m = Matcher::parse(r#"msg="a \"b\" \d""#).unwrap();
        assert_eq!(m.value, r#"a "b" \d"#);
        assert_eq!(m.to_string(), r#"msg="a \"b\" \\d""#);
    }

    #[test]
    fn bad_matchers_say_what_to_write() {
        assert_eq!(
            Matcher::parse("=x").unwrap_err(),
            "matcher \"=x\" must start with a label name, like instance=~\"orders-db.*\""
        );
        assert_eq!(
            Matcher::parse("instance").unwrap_err(),
            "matcher \"instance\" has no operator: write one of =, !=, =~, !~ after instance"
        );
        let bad_regex = Matcher::parse(r##"instance=~"orders(""##).unwrap_err();
        assert!(
            bad_regex
                .starts_with(r#"matcher "instance=~\"orders(\"": invalid regular expression:"#),
            "{bad_regex}"
        );
        assert_eq!(
            Matcher::parse("a=b c").unwrap_err(),
            "matcher \"a=b c\": quote a value that has spaces or quotes: name=\"a value\""
        );
    }

    #[test]
    fn matchers_that_match_an_absent_label() {
        let empty = |s: &str| Matcher::parse(s).unwrap().matches_empty();
        assert!(empty(r#"a=~".*""#));
        assert!(empty(r#"a="""#));
        assert!(empty(r#"a!="x""#));
        assert!(!empty(r#"a=~".+""#));
        assert!(!empty(r#"a="x""#));
    }
}
