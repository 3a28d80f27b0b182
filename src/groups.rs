//! Failover groups: which member of each group is active. Fed synchronously by member
//! probes (a short lock that only probe tasks take) and published as immutable snapshots,
//! so the metrics, API and load-balancer endpoints never wait.

use crate::time::Timestamp;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::config::{Check, Config, GroupConfig, Kind};
use crate::probe::ProbeReport;

/// Switches kept per group for the API.
pub const SWITCHES_KEPT: usize = 50;

#[derive(Debug, Clone, PartialEq)]
pub struct MemberState {
    pub name: String,
    /// The check whose result decides eligibility for this member.
    pub check: Check,
    /// Whether the member's starting state is known: it succeeded once, or failed
    /// `fail_after` times in a row. Until every member has settled, the group does not choose.
    pub settled: bool,
    pub eligible: bool,
    pub consecutive_ok: u32,
    pub consecutive_failed: u32,
    /// Why the last probe failed the group's level, if it did.
    pub last_failure: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Switch {
    pub at: Timestamp,
    pub from: Option<String>,
    pub to: Option<String>,
    pub cause: String,
}

/// A group's decision state; also its published snapshot.
#[derive(Debug, Clone)]
pub struct GroupState {
    pub config: Arc<GroupConfig>,
    pub members: Vec<MemberState>,
    /// Index into `members`.
    pub active: Option<usize>,
    /// Whether a first choice was made (every member settled).
    pub decided: bool,
    /// The member active last, kept through a period with none eligible.
    pub last_active: Option<usize>,
    /// Changes of the active member from one member to another: a failover that passes
    /// through "none eligible" (the primary dropped before the standby was eligible) is
    /// one switch, and a member that returns after such a gap is none.
    pub switches: u64,
    pub last_switch_at: Option<Timestamp>,
    /// Newest last.
    pub recent: VecDeque<Switch>,
}

impl GroupState {
    pub fn new(config: Arc<GroupConfig>, kinds: &[Kind]) -> Self {
        let members = config
            .members
            .iter()
            .zip(kinds)
            .map(|(name, &kind)| MemberState {
                name: name.clone(),
                check: config.eligibility.check(kind),
                settled: false,
                eligible: false,
                consecutive_ok: 0,
                consecutive_failed: 0,
                last_failure: None,
            })
            .collect();
        GroupState {
            config,
            members,
            active: None,
            decided: false,
            last_active: None,
            switches: 0,
            last_switch_at: None,
            recent: VecDeque::new(),
        }
    }

    pub fn active_member(&self) -> Option<&MemberState> {
        self.active.map(|i| &self.members[i])
    }

    pub fn eligible_count(&self) -> usize {
        self.members.iter().filter(|m| m.eligible).count()
    }

    /// Folds one probe of member `i` in (`ok`: it passed the group's level) and re-decides.
    /// Returns the switch, if the active member changed.
    pub fn observe(
        &mut self,
        i: usize,
        ok: bool,
        failure: Option<String>,
        now: Timestamp,
    ) -> Option<Switch> {
        let (fail_after, recover_after) = (self.config.fail_after, self.config.recover_after);
        let level = self.config.eligibility.as_str();
        let m = &mut self.members[i];
        if ok {
            m.consecutive_ok += 1;
            m.consecutive_failed = 0;
            m.last_failure = None;
        } else {
            m.consecutive_failed += 1;
            m.consecutive_ok = 0;
            m.last_failure = failure;
        }
        let mut change = None;
        if !m.settled {
            // A slow first probe must not make the preferred member start out ineligible
            // (and cause a switch back moments later): it is eligible on its first success,
            // and ineligible only after fail_after failures in a row.
            if ok || m.consecutive_failed >= fail_after {
                m.settled = true;
                m.eligible = ok;
            }
        } else if m.eligible && m.consecutive_failed >= fail_after {
            m.eligible = false;
            let why = m.last_failure.clone().unwrap_or_default();
            change = Some(format!(
                "{} not {level} for {fail_after} probes: {why}",
                m.name
            ));
        } else if !m.eligible && m.consecutive_ok >= recover_after {
            m.eligible = true;
            change = Some(format!(
                "{} {level} for {recover_after} probes in a row",
                m.name
            ));
        }
        if !self.members.iter().all(|m| m.settled) {
            return None;
        }
        self.choose(change, now)
    }

    fn choose(&mut self, cause: Option<String>, now: Timestamp) -> Option<Switch> {
        use crate::config::Policy;
        let first_eligible = self.members.iter().position(|m| m.eligible);
        let next = match (self.config.policy, self.active) {
            (Policy::Sticky, Some(a)) if self.members[a].eligible => Some(a),
            _ => first_eligible,
        };
        if !self.decided {
            self.decided = true;
            self.active = next;
            self.last_active = next;
            return None;
        }
        if next == self.active {
            return None;
        }
        let name = |i: Option<usize>| i.map(|i| self.members[i].name.clone());
        let cause = match (cause, next) {
            (Some(c), None) => format!("{c}; no eligible member left"),
            (Some(c), _) => c,
            (None, _) => "re-evaluated".to_owned(),
        };
        let switch = Switch {
            at: now,
            from: name(self.active),
            to: name(next),
            cause,
        };
        self.active = next;
        if next.is_some() && next != self.last_active {
            if self.last_active.is_some() {
                self.switches += 1;
                self.last_switch_at = Some(now);
            }
            self.last_active = next;
        }
        if self.recent.len() == SWITCHES_KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(switch.clone());
        Some(switch)
    }
}

struct Group {
    state: Mutex<GroupState>,
    snapshot: ArcSwap<GroupState>,
}

/// Every group of one configuration.
pub struct GroupSet {
    groups: Vec<Group>,
}

impl GroupSet {
    /// Builds the groups of `config`, carrying over the state of groups whose configuration
    /// did not change (so a reload does not forget who is active).
    pub fn new(config: &Config, previous: Option<&GroupSet>) -> GroupSet {
        let groups = config
            .groups
            .iter()
            .map(|g| {
                let kept =
                    previous.and_then(|p| p.snapshots().into_iter().find(|s| *s.config == *g));
                let state = match kept {
                    Some(s) => (*s).clone(),
                    None => {
                        let kinds: Vec<Kind> = g
                            .members
                            .iter()
                            .map(|m| {
                                config
                                    .targets
                                    .iter()
                                    .find(|t| &t.name == m)
                                    // Loading refuses a group member that is not a
                                    // configured target (config::groups::validate).
                                    .expect("every group member is a configured target")
                                    .kind
                            })
                            .collect();
                        GroupState::new(Arc::new(g.clone()), &kinds)
                    }
                };
                Group {
                    snapshot: ArcSwap::from_pointee(state.clone()),
                    state: Mutex::new(state),
                }
            })
            .collect();
        GroupSet { groups }
    }

    pub fn snapshots(&self) -> Vec<Arc<GroupState>> {
        self.groups.iter().map(|g| g.snapshot.load_full()).collect()
    }

    pub fn snapshot(&self, name: &str) -> Option<Arc<GroupState>> {
        self.snapshots().into_iter().find(|g| g.config.name == name)
    }

    /// Feeds a member's probe to every group it belongs to; returns the switches it caused.
    pub fn observe(
        &self,
        target: &str,
        checks: &[Check],
        report: &ProbeReport,
    ) -> Vec<(String, Switch)> {
        let mut switches = Vec::new();
        for g in &self.groups {
            let mut state = g.state.lock().unwrap_or_else(|e| e.into_inner());
            let Some(i) = state.members.iter().position(|m| m.name == target) else {
                continue;
            };
            let needed = state.members[i].check;
            let ok = report
                .check_results(checks)
                .any(|(c, ok)| c == needed && ok);
            let failure = (!ok).then(|| {
                report.check_failure(checks, needed).map_or_else(
                    || format!("{} check failed", needed.as_str()),
                    |f| format!("{}: {}", f.reason.as_str(), f.message),
                )
            });
            if let Some(s) = state.observe(i, ok, failure, report.started_at) {
                switches.push((state.config.name.clone(), s));
            }
            g.snapshot.store(Arc::new(state.clone()));
        }
        switches
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Eligibility, Policy};

    fn group(policy: Policy) -> GroupState {
        let config = GroupConfig {
            name: "g".into(),
            members: vec!["a".into(), "b".into(), "c".into()],
            eligibility: Eligibility::Writable,
            fail_after: 3,
            recover_after: 2,
            policy,
        };
        GroupState::new(Arc::new(config), &[Kind::Postgres; 3])
    }

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms as i64)
    }

    fn name(g: &GroupState) -> Option<&str> {
        g.active_member().map(|m| m.name.as_str())
    }

    #[test]
    fn no_choice_until_every_member_was_probed_and_the_first_choice_is_no_switch() {
        let mut g = group(Policy::PreferFirst);
        g.observe(1, true, None, at(0));
        assert_eq!(name(&g), None);
        g.observe(2, true, None, at(1));
        g.observe(0, true, None, at(2));
        assert_eq!(name(&g), Some("a"));
        assert_eq!(g.switches, 0);
    }

    #[test]
    fn a_slow_first_probe_of_the_preferred_member_causes_no_switch() {
        let mut g = group(Policy::PreferFirst);
        g.observe(0, false, Some("timeout".into()), at(0));
        g.observe(1, true, None, at(1));
        g.observe(2, true, None, at(2));
        assert_eq!(name(&g), None, "no choice while a is unsettled");
        g.observe(0, true, None, at(100));
        assert_eq!(name(&g), Some("a"));
        assert_eq!(g.switches, 0);
    }

    #[test]
    fn a_member_down_from_the_start_is_excluded_before_the_first_choice() {
        let mut g = group(Policy::PreferFirst);
        g.observe(1, true, None, at(0));
        g.observe(2, true, None, at(0));
        for t in 0..3 {
            g.observe(0, false, Some("refused".into()), at(t * 100));
        }
        assert_eq!(name(&g), Some("b"));
        assert_eq!(g.switches, 0);
    }

    #[test]
    fn a_member_is_dropped_after_fail_after_and_back_after_recover_after() {
        let mut g = group(Policy::PreferFirst);
        for i in 0..3 {
            g.observe(i, true, None, at(0));
        }
        assert!(
            g.observe(0, false, Some("timeout".into()), at(100))
                .is_none()
        );
        assert!(
            g.observe(0, false, Some("timeout".into()), at(200))
                .is_none()
        );
        let s = g
            .observe(0, false, Some("timeout: x".into()), at(300))
            .expect("switch");
        assert_eq!((s.from.as_deref(), s.to.as_deref()), (Some("a"), Some("b")));
        assert_eq!(s.cause, "a not writable for 3 probes: timeout: x");
        assert!(
            g.observe(0, true, None, at(400)).is_none(),
            "one success is not enough"
        );
        let s = g
            .observe(0, true, None, at(500))
            .expect("prefer_first goes back");
        assert_eq!(s.to.as_deref(), Some("a"));
        assert_eq!(g.switches, 2);
    }

    #[test]
    fn sticky_stays_on_the_current_member() {
        let mut g = group(Policy::Sticky);
        for i in 0..3 {
            g.observe(i, true, None, at(0));
        }
        for t in 1..=3 {
            g.observe(0, false, None, at(t * 100));
        }
        assert_eq!(name(&g), Some("b"));
        g.observe(0, true, None, at(400));
        g.observe(0, true, None, at(500));
        assert_eq!(name(&g), Some("b"));
        assert_eq!(g.switches, 1);
    }

    #[test]
    fn flapping_faster_than_the_hysteresis_never_switches() {
        let mut g = group(Policy::PreferFirst);
        for i in 0..3 {
            g.observe(i, true, None, at(0));
        }
        for t in 1..100 {
            g.observe(0, t % 3 != 0, None, at(t * 100));
        }
        assert_eq!(g.switches, 0);
        assert_eq!(name(&g), Some("a"));
    }

    #[test]
    fn no_eligible_member_is_a_switch_to_none_and_back() {
        let mut g = group(Policy::PreferFirst);
        for i in 0..3 {
            g.observe(i, true, None, at(0));
        }
        for t in 1..=3 {
            for i in 0..3 {
                g.observe(i, false, Some("refused".into()), at(t * 100));
            }
        }
        assert_eq!(name(&g), None);
        assert_eq!(g.eligible_count(), 0);
        assert!(
            g.recent
                .back()
                .unwrap()
                .cause
                .ends_with("no eligible member left")
        );
        g.observe(2, true, None, at(400));
        g.observe(2, true, None, at(500));
        assert_eq!(name(&g), Some("c"));
    }

    /// The standbys are dropped (not yet eligible), then the primary: no member for a while.
    fn lose_every_member_standbys_first(g: &mut GroupState) {
        for i in 0..3 {
            g.observe(i, true, None, at(0));
        }
        for i in [1, 2, 0] {
            for t in 1..=3 {
                g.observe(i, false, Some("refused".into()), at(t * 100));
            }
        }
        assert_eq!(name(g), None);
        assert_eq!(g.switches, 0, "losing every member is no switch yet");
    }

    #[test]
    fn a_failover_through_none_eligible_is_one_switch() {
        let mut g = group(Policy::PreferFirst);
        lose_every_member_standbys_first(&mut g);
        g.observe(1, true, None, at(400));
        g.observe(1, true, None, at(500));
        assert_eq!(name(&g), Some("b"));
        assert_eq!(g.switches, 1, "a to b through none eligible is one switch");
        assert_eq!(g.recent.len(), 2, "both changes are in the recent list");
    }

    #[test]
    fn a_member_that_returns_after_none_was_eligible_is_no_switch() {
        let mut g = group(Policy::PreferFirst);
        lose_every_member_standbys_first(&mut g);
        g.observe(0, true, None, at(400));
        g.observe(0, true, None, at(500));
        assert_eq!(name(&g), Some("a"));
        assert_eq!(g.switches, 0);
        assert!(g.last_switch_at.is_none());
    }
}
