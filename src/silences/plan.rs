//! Which silences the open windows want: pure, from the windows, the configuration and
//! the time, so every replica that sees the same windows wants the same silences.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::config::{ALL_SCOPE, AlertmanagerConfig, Config, MatchOp, Matcher};
use crate::maintenance::{Source, Window};
use crate::time::Timestamp;

/// dbvigil's availability alerts: those its Alertmanager example inhibits during a window
/// (alerts/alertmanager.yml; a test holds the two lists together). Lost writes, migration
/// failures and overruns are left out on purpose: they page through maintenance.
pub const TARGET_ALERTS: &str = "DbvigilTargetDown|DbvigilWritesFailing|DbvigilUnexpectedReadOnly|DbvigilProbeLatencyHigh|DbvigilFlapping";
pub const GROUP_ALERT: &str = "DbvigilGroupNoEligibleMember";

/// One silence a window wants.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    pub window: String,
    pub scope: String,
    /// Sorted, so the same set is recognised however it was written.
    pub matchers: Vec<Matcher>,
    pub ends_at: Timestamp,
    /// Windows that last while an application's flag is set have no planned end: their
    /// silences are leased and renewed while the flag stays on.
    pub leased: bool,
    pub created_by: String,
    pub comment: String,
}

/// How long a lease lasts: long enough to outlive a few missed syncs.
pub fn lease(sync_interval: Duration) -> Duration {
    (sync_interval * 4).max(Duration::from_secs(120))
}

/// The marker that ties a silence to its owner, window and scope; the rest of the comment
/// is for people.
pub fn marker(owner: &str, window: &str, scope: &str) -> String {
    format!("[dbvigil:{owner} window={window} scope={scope}]")
}

/// The window and scope a silence's comment names, when `owner` manages it.
pub fn parse_marker<'a>(owner: &str, comment: &'a str) -> Option<(&'a str, &'a str)> {
    let start = comment.rfind(&format!("[dbvigil:{owner} window="))?;
    let inner = comment[start..].strip_suffix(']')?;
    let rest = inner.strip_prefix(&format!("[dbvigil:{owner} window="))?;
    rest.rsplit_once(" scope=")
}

/// The silences every active window this replica knows wants now.
pub fn wanted(
    config: &Config,
    am: &AlertmanagerConfig,
    windows: &[Window],
    now: Timestamp,
) -> Vec<Wanted> {
    let mut out = Vec::new();
    for w in windows
        .iter()
        .filter(|w| w.is_active(now) && config.is_scope(&w.scope))
    {
        let (ends_at, leased) = match w.end() {
            Some(end) => (end, false),
            None => (now + lease(am.sync_interval), true),
        };
        let created_by = format!("{} (dbvigil)", w.created_by);
        let comment = format!(
            "Maintenance window {} on {} ({} window): {} {}",
            w.id,
            w.scope,
            w.source.as_str(),
            w.reason,
            marker(&am.owner, &w.id, &w.scope)
        );
        for matchers in matcher_sets(config, am, &w.scope) {
            out.push(Wanted {
                window: w.id.clone(),
                scope: w.scope.clone(),
                matchers,
                ends_at,
                leased,
                created_by: created_by.clone(),
                comment: comment.clone(),
            });
        }
        debug_assert!(leased == (w.source == Source::App));
    }
    out
}

/// The matcher sets of a window on `scope`: dbvigil's own availability alerts on what it
/// covers, and every configured silence of the scope and of what it covers.
fn matcher_sets(config: &Config, am: &AlertmanagerConfig, scope: &str) -> Vec<Vec<Matcher>> {
    let members: Vec<&str> = match config.groups.iter().find(|g| g.name == scope) {
        Some(g) => g.members.iter().map(String::as_str).collect(),
        None => Vec::new(),
    };
    let is_group = config.groups.iter().any(|g| g.name == scope);
    let mut sets = BTreeSet::new();
    if am.own_alerts {
        let alerts = m("alertname", MatchOp::Regex, TARGET_ALERTS);
        let target = if scope == ALL_SCOPE {
            m("target", MatchOp::Regex, ".+")
        } else if is_group {
            let names: Vec<String> = members.iter().map(|n| regex_quote(n)).collect();
            m("target", MatchOp::Regex, &names.join("|"))
        } else {
            m("target", MatchOp::Equal, scope)
        };
        sets.insert(sorted(vec![alerts, target]));
        if scope == ALL_SCOPE || is_group {
            let group = if is_group {
                m("group", MatchOp::Equal, scope)
            } else {
                m("group", MatchOp::Regex, ".+")
            };
            sets.insert(sorted(vec![
                m("alertname", MatchOp::Equal, GROUP_ALERT),
                group,
            ]));
        }
    }
    for s in &am.silences {
        let covered = scope == ALL_SCOPE || s.scope == scope || members.contains(&s.scope.as_str());
        if covered {
            sets.insert(sorted(s.matchers.clone()));
        }
    }
    sets.into_iter().collect()
}

fn m(name: &str, op: MatchOp, value: &str) -> Matcher {
    Matcher {
        name: name.to_owned(),
        op,
        value: value.to_owned(),
    }
}

fn sorted(mut matchers: Vec<Matcher>) -> Vec<Matcher> {
    matchers.sort();
    matchers.dedup();
    matchers
}

/// A target name as a regular expression that matches only itself.
fn regex_quote(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip() {
        let comment = format!(
            "Maintenance window 7 on orders (api window): upgrade [x] {}",
            marker("dbvigil", "schedule:nightly@2026-12-03T01:00:00Z", "orders")
        );
        assert_eq!(
            parse_marker("dbvigil", &comment),
            Some(("schedule:nightly@2026-12-03T01:00:00Z", "orders"))
        );
        assert_eq!(parse_marker("dbvigil-eu", &comment), None);
        assert_eq!(parse_marker("dbvigil", "made by hand"), None);
    }

    #[test]
    fn own_alerts_are_those_the_shipped_inhibit_rules_cover() {
        let shipped = include_str!("../../alerts/alertmanager.yml");
        assert!(
            shipped.contains(&format!("alertname=~\"{TARGET_ALERTS}\"")),
            "alerts/alertmanager.yml's target inhibit rule lists other alerts than TARGET_ALERTS"
        );
        assert!(shipped.contains(&format!("target_matchers: [alertname=\"{GROUP_ALERT}\"]")));
    }

    #[test]
    fn names_are_quoted_for_regexes() {
        assert_eq!(regex_quote("orders.db-1"), r"orders\.db-1");
    }
}
