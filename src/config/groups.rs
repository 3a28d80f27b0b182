//! Failover groups: ordered members, the health a member needs to be eligible, hysteresis
//! and the policy when a preferred member recovers.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::values::Expanded;
use super::{Check, ConfigError, Kind, TargetConfig, valid_target_name};

/// Defaults in the spirit of HAProxy's `fall 3` / `rise 2`.
pub const DEFAULT_FAIL_AFTER: u32 = 3;
pub const DEFAULT_RECOVER_AFTER: u32 = 2;

#[derive(Debug, Clone, PartialEq)]
pub struct GroupConfig {
    pub name: String,
    /// Target names, most preferred first.
    pub members: Vec<String>,
    pub eligibility: Eligibility,
    /// Consecutive failed probes before a member is dropped.
    pub fail_after: u32,
    /// Consecutive successful probes before a dropped member is eligible again.
    pub recover_after: u32,
    pub policy: Policy,
}

/// The health a member needs to be eligible, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Eligibility {
    /// The port accepts connections (tcp check; for SQLite, the file opens).
    Reachable,
    /// A login (or opening the file) succeeds.
    Connectable,
    /// The read check succeeds.
    Readable,
    /// The write check succeeds: the member takes writes now.
    #[default]
    Writable,
}

impl Eligibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Eligibility::Reachable => "reachable",
            Eligibility::Connectable => "connectable",
            Eligibility::Readable => "readable",
            Eligibility::Writable => "writable",
        }
    }

    /// The check whose result decides this level for a member of `kind`.
    pub fn check(self, kind: Kind) -> Check {
        match self {
            Eligibility::Reachable if kind == Kind::Sqlite => Check::Connect,
            Eligibility::Reachable => Check::Tcp,
            Eligibility::Connectable => Check::Connect,
            Eligibility::Readable => Check::Read,
            Eligibility::Writable => Check::Write,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Go back to the first eligible member in order as soon as it is eligible again.
    #[default]
    PreferFirst,
    /// Stay on the current member while it stays eligible.
    Sticky,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::PreferFirst => "prefer_first",
            Policy::Sticky => "sticky",
        }
    }
}

pub(super) mod raw {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Group {
        pub name: Spanned<Expanded>,
        pub members: Spanned<Vec<Spanned<Expanded>>>,
        pub eligibility: Option<Eligibility>,
        pub fail_after: Option<Spanned<u32>>,
        pub recover_after: Option<Spanned<u32>>,
        pub policy: Option<Policy>,
    }
}

pub(super) fn validate(
    file: &str,
    raw: Vec<raw::Group>,
    targets: &[TargetConfig],
) -> Result<Vec<GroupConfig>, ConfigError> {
    let err = |at, msg: String| ConfigError::at(file, at, msg);
    let mut groups: Vec<GroupConfig> = Vec::with_capacity(raw.len());
    for g in raw {
        let name = g.name.value.0.clone();
        if !valid_target_name(&name) {
            return Err(err(
                g.name.referenced,
                format!(
                    "group name {name:?} may only contain letters, digits, '_', '.' and '-', starting with a letter or digit (it becomes a label value and a URL path segment)"
                ),
            ));
        }
        if targets.iter().any(|t| t.name == name) {
            return Err(err(
                g.name.referenced,
                format!(
                    "group name {name:?} is also a target name: a maintenance scope must name one thing, so rename the group"
                ),
            ));
        }
        if groups.iter().any(|o| o.name == name) {
            return Err(err(
                g.name.referenced,
                format!("duplicate group name {name:?}: group names must be unique"),
            ));
        }
        if g.members.value.is_empty() {
            return Err(err(
                g.members.referenced,
                format!(
                    "group {name:?} has no members: list the targets it chooses from, most preferred first"
                ),
            ));
        }
        let eligibility = g.eligibility.unwrap_or_default();
        let mut members: Vec<String> = Vec::new();
        for m in &g.members.value {
            let member = &m.value.0;
            let Some(target) = targets.iter().find(|t| &t.name == member) else {
                return Err(err(
                    m.referenced,
                    format!(
                        "group {name:?} names member {member:?}, which is not a configured target"
                    ),
                ));
            };
            if members.contains(member) {
                return Err(err(
                    m.referenced,
                    format!("group {name:?} lists {member:?} twice"),
                ));
            }
            let needed = eligibility.check(target.kind);
            if !target.has_check(needed) {
                return Err(err(
                    m.referenced,
                    format!(
                        "member {member:?} has no {} check, so it can never be {}: add it to the target's checks or lower the group's eligibility",
                        needed.as_str(),
                        eligibility.as_str()
                    ),
                ));
            }
            members.push(member.clone());
        }
        let count = |v: &Option<Spanned<u32>>, default: u32, key: &str| match v {
            Some(s) if s.value == 0 => Err(err(s.referenced, format!("{key} must be at least 1"))),
            Some(s) => Ok(s.value),
            None => Ok(default),
        };
        groups.push(GroupConfig {
            name,
            members,
            eligibility,
            fail_after: count(&g.fail_after, DEFAULT_FAIL_AFTER, "fail_after")?,
            recover_after: count(&g.recover_after, DEFAULT_RECOVER_AFTER, "recover_after")?,
            policy: g.policy.unwrap_or_default(),
        });
    }
    Ok(groups)
}
