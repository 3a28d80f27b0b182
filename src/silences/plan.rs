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

/// Whether a silence of ours that no wanted silence claimed ends now. `window` is the id its
/// marker names, `made_at` when Alertmanager says it was made, `config_since` when this
/// replica's configuration last changed what silences are made from.
///
/// - A stored (API) window that ended or expired: every replica reads the same store, so
///   its silence ends. One this replica does not know may be one the store has not shown it
///   yet (another replica just opened it): its silence stays, bounded by its own end.
/// - An application window this replica does not know: they are listed only while their
///   flag is set, so the flag has cleared (a replica that has not read the flag yet may end
///   it early; the one that has recreates it at its next step).
/// - Anything else is at odds with this replica's *configuration*: a schedule occurrence it
///   does not list (the schedule was removed or moved) or lists as over (shortened), or an
///   open window whose matchers it no longer wants. Replicas on two configurations (a
///   rolling reload) would undo each other's steps for ever, so such a silence ends only if
///   it was made before this replica's configuration changed: it is a leftover of the old
///   configuration. One made later was made by a replica still on another configuration;
///   it stays, bounded by its own end, until that replica reloads and ends it in turn.
pub fn is_over(
    window: &str,
    windows: &[Window],
    now: Timestamp,
    made_at: Option<Timestamp>,
    config_since: Timestamp,
) -> bool {
    let leftover = made_at.is_none_or(|made| made < config_since);
    match windows.iter().find(|w| w.id == window) {
        Some(w) if w.source == Source::Api && !w.is_active(now) => true,
        Some(_) => leftover,
        None if window.starts_with("app:") => true,
        None if window.starts_with("schedule:") => leftover,
        None => false,
    }
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

    const CONFIG: &str = r#"
targets:
  - {name: orders.a, kind: tcp, host: 127.0.0.1, port: 1}
  - {name: orders-b, kind: tcp, host: 127.0.0.1, port: 1}
  - {name: billing, kind: tcp, host: 127.0.0.1, port: 1}
groups:
  - {name: orders, members: [orders.a, orders-b], eligibility: reachable}
alertmanager:
  urls: [http://127.0.0.1:9093]
  sync_interval: 30s
  silences:
    - scope: orders.a
      matchers: ['instance="orders-a:9187"']
    - scope: orders
      matchers: ['job="pgbouncer"']
    - scope: billing
      matchers: ['instance=~"billing.*"', 'job="postgres"']
"#;

    fn config(yaml: &str) -> (Config, AlertmanagerConfig) {
        let config = crate::config::parse(yaml, "test.yml", std::path::Path::new("."), "test")
            .expect("the test configuration is valid");
        let am = config.alertmanager.clone().expect("it has alertmanager:");
        (config, am)
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000 + secs * 1000)
    }

    fn window(id: &str, scope: &str, source: Source, starts: i64, ends: Option<i64>) -> Window {
        Window {
            id: id.into(),
            scope: scope.into(),
            source,
            reason: "upgrade".into(),
            created_by: "alice".into(),
            created_at: at(starts),
            starts_at: at(starts),
            ends_at: ends.map(at),
            ended_at: None,
            ended_by: None,
            events: Vec::new(),
        }
    }

    /// Each set as amtool writes it, for readable failures.
    fn sets(config: &Config, am: &AlertmanagerConfig, scope: &str) -> Vec<Vec<String>> {
        matcher_sets(config, am, scope)
            .iter()
            .map(|set| set.iter().map(Matcher::to_string).collect())
            .collect()
    }

    #[test]
    fn only_active_windows_on_known_scopes_want_silences() {
        let (config, am) = config(CONFIG);
        let now = at(0);
        let windows = [
            window("1", "orders.a", Source::Api, -60, Some(600)),
            window("2", "orders.a", Source::Api, 60, Some(600)),
            window("3", "orders.a", Source::Api, -600, Some(-60)),
            window("4", "another-shards-target", Source::Api, -60, Some(600)),
            window("app:billing", "billing", Source::App, -5, None),
        ];
        let wanted = wanted(&config, &am, &windows, now);
        let ids: Vec<&str> = wanted.iter().map(|w| w.window.as_str()).collect();
        assert_eq!(
            ids,
            ["1", "1", "app:billing", "app:billing"],
            "own alerts and configured matchers of the active windows only: {wanted:#?}"
        );
        let api = &wanted[0];
        assert_eq!((api.ends_at, api.leased), (at(600), false));
        assert_eq!(api.created_by, "alice (dbvigil)");
        assert!(
            api.comment
                .ends_with("[dbvigil:dbvigil window=1 scope=orders.a]"),
            "{}",
            api.comment
        );
        assert!(
            api.comment.contains("(api window): upgrade"),
            "{}",
            api.comment
        );
        let app = &wanted[2];
        assert!(
            app.leased,
            "an app window has no end: its silence is leased"
        );
        assert_eq!(app.ends_at, now + lease(am.sync_interval));
        assert_eq!(lease(am.sync_interval), Duration::from_secs(120));
        assert_eq!(lease(Duration::from_secs(60)), Duration::from_secs(240));
    }

    #[test]
    fn a_target_window_silences_its_own_alerts_and_its_configured_matchers() {
        let (config, am) = config(CONFIG);
        assert_eq!(
            sets(&config, &am, "orders.a"),
            [
                vec![
                    format!("alertname=~{TARGET_ALERTS:?}"),
                    r#"target="orders.a""#.to_owned()
                ],
                vec![r#"instance="orders-a:9187""#.to_owned()],
            ]
        );
        assert_eq!(
            sets(&config, &am, "billing")[1],
            [r#"instance=~"billing.*""#, r#"job="postgres""#],
            "one entry's matchers are one silence"
        );
    }

    #[test]
    fn a_group_window_covers_its_members_and_the_group_alert() {
        let (config, am) = config(CONFIG);
        assert_eq!(
            sets(&config, &am, "orders"),
            [
                // Sorted: `=` before `=~`.
                vec![
                    format!("alertname={GROUP_ALERT:?}"),
                    r#"group="orders""#.to_owned()
                ],
                vec![
                    format!("alertname=~{TARGET_ALERTS:?}"),
                    r#"target=~"orders\\.a|orders-b""#.to_owned()
                ],
                vec![r#"instance="orders-a:9187""#.to_owned()],
                vec![r#"job="pgbouncer""#.to_owned()],
            ],
            "billing is not a member: its matchers stay out"
        );
    }

    #[test]
    fn star_covers_every_target_group_and_configured_silence() {
        let (config, am) = config(CONFIG);
        assert_eq!(
            sets(&config, &am, ALL_SCOPE),
            [
                // Sorted: `=` before `=~`.
                vec![
                    format!("alertname={GROUP_ALERT:?}"),
                    r#"group=~".+""#.to_owned()
                ],
                vec![
                    format!("alertname=~{TARGET_ALERTS:?}"),
                    r#"target=~".+""#.to_owned()
                ],
                vec![r#"instance="orders-a:9187""#.to_owned()],
                vec![
                    r#"instance=~"billing.*""#.to_owned(),
                    r#"job="postgres""#.to_owned()
                ],
                vec![r#"job="pgbouncer""#.to_owned()],
            ]
        );
    }

    #[test]
    fn without_own_alerts_only_configured_matchers_are_silenced() {
        let (config, am) = config(&CONFIG.replace(
            "  sync_interval: 30s\n",
            "  sync_interval: 30s\n  own_alerts: false\n",
        ));
        assert!(!am.own_alerts);
        assert_eq!(
            sets(&config, &am, "orders-b"),
            Vec::<Vec<String>>::new(),
            "nothing configured for orders-b: no silence at all"
        );
        assert_eq!(sets(&config, &am, "orders").len(), 2);
    }

    #[test]
    fn ended_stored_windows_end_their_silences_and_unknown_ones_never() {
        let since = at(0);
        let (before, after) = (Some(at(-30)), Some(at(30)));
        let ended = window("7", "orders.a", Source::Api, -600, Some(-1));
        for made in [before, after, None] {
            assert!(
                is_over("7", std::slice::from_ref(&ended), at(60), made, since),
                "the store says it ended, on every replica"
            );
            assert!(
                !is_over("8", std::slice::from_ref(&ended), at(60), made, since),
                "an API window the store has not shown this replica yet keeps its silence"
            );
        }
        let open = window("7", "orders.a", Source::Api, -600, Some(600));
        assert!(
            is_over("7", std::slice::from_ref(&open), at(60), before, since),
            "open, but the configuration changed its matchers since the silence was made"
        );
        assert!(
            !is_over("7", &[open], at(60), after, since),
            "made since by a replica still on another configuration"
        );
    }

    #[test]
    fn an_unknown_app_window_has_cleared() {
        for made in [Some(at(-30)), Some(at(30)), None] {
            assert!(is_over("app:billing", &[], at(60), made, at(0)));
        }
    }

    #[test]
    fn a_schedule_this_configuration_no_longer_lists_ends_only_its_leftovers() {
        let since = at(0);
        let id = "schedule:nightly@1800000000";
        assert!(
            is_over(id, &[], at(60), Some(at(-30)), since),
            "made before the reload that removed the schedule"
        );
        assert!(
            is_over(id, &[], at(60), None, since),
            "no start to tell by: treated as a leftover"
        );
        assert!(
            !is_over(id, &[], at(60), Some(at(30)), since),
            "made since by a replica not reloaded yet: left to it, or to its end"
        );
        // Shortened: this configuration says the occurrence is over.
        let shortened = window(id, "orders.a", Source::Schedule, -600, Some(-10));
        assert!(is_over(
            id,
            std::slice::from_ref(&shortened),
            at(60),
            Some(at(-30)),
            since
        ));
        assert!(!is_over(id, &[shortened], at(60), Some(at(30)), since));
    }

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
