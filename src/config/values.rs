//! Scalar value types used by the YAML schema. Each validates itself while it is parsed, so
//! that its error carries the line and column of the offending value.

use std::fmt;
use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// A string after `${NAME}` / `${NAME:-default}` expansion from the environment.
/// `$${` stands for a literal `${`.
#[derive(Clone, PartialEq, Eq)]
pub struct Expanded(pub String);

impl<'de> Deserialize<'de> for Expanded {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        expand_env(&raw, |name| std::env::var(name).ok())
            .map(Expanded)
            .map_err(D::Error::custom)
    }
}

impl fmt::Debug for Expanded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a `${...}` could not be expanded. Names the variable, never a value.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("unterminated ${{...}}: close it with '}}', or write $${{ for a literal ${{")]
    Unterminated,
    #[error("invalid environment variable name {name:?} in ${{...}}: use letters, digits and '_'")]
    InvalidName { name: String },
    #[error(
        "environment variable {name} is not set: export it before starting dbvigil, or write ${{{name}:-default}}"
    )]
    Unset { name: String },
}

/// Expands `${NAME}` and `${NAME:-default}`.
pub fn expand_env(
    raw: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail.find('}').ok_or(ExpandError::Unterminated)?;
            let body = &tail[..end];
            let (name, default) = match body.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (body, None),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric())
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(ExpandError::InvalidName {
                    name: name.to_owned(),
                });
            }
            match (lookup(name), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(ExpandError::Unset {
                        name: name.to_owned(),
                    });
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A secret string (password, URL with credentials). Its Debug form never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Expanded::deserialize(d).map(|e| Secret(e.0))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// A duration written with a unit (`500ms`, `1s`, `2m`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Expanded::deserialize(d)?.0;
        humantime::parse_duration(text.trim())
            .map(HumanDuration)
            .map_err(|_| {
                D::Error::custom(format!(
                    "invalid duration {text:?}: write a number with a unit, like 500ms, 1s or 2m"
                ))
            })
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

/// `1s`, `100ms`, `1m 30s`: how durations are shown back to users.
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::{ExpandError, expand_env};

    fn env(name: &str) -> Option<String> {
        match name {
            "USER_A" => Some("alice".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_variables_and_defaults() {
        assert_eq!(expand_env("u=${USER_A}!", env).unwrap(), "u=alice!");
        assert_eq!(expand_env("${NOPE:-fallback}", env).unwrap(), "fallback");
        assert_eq!(expand_env("${EMPTY:-x}", env).unwrap(), "");
        assert_eq!(
            expand_env("cost $5 and $${USER_A}", env).unwrap(),
            "cost $5 and ${USER_A}"
        );
    }

    #[test]
    fn missing_variable_names_it_and_says_what_to_do() {
        let err = expand_env("${NOPE}", env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable NOPE is not set: export it before starting dbvigil, or write ${NOPE:-default}"
        );
        let unterminated = expand_env("${USER_A", env).unwrap_err();
        assert_eq!(unterminated, ExpandError::Unterminated);
        assert!(unterminated.to_string().starts_with("unterminated"));
        let invalid = expand_env("${1X}", env).unwrap_err();
        assert!(
            invalid
                .to_string()
                .starts_with("invalid environment variable name"),
            "{invalid}"
        );
    }
}
