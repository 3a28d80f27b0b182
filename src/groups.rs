//! Failover groups: which member of each group is active. Fed synchronously by member
//! probes (a short lock that only probe tasks take) and published as immutable snapshots,
//! so the metrics, API and load-balancer endpoints never wait.

use crate::time::Timestamp;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::config::{Check, Config, Endpoint, GroupConfig, Kind};
use crate::probe::{Beat, LostWrites, ProbeReport};
use crate::state::Periods;

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
    /// The target whose heartbeat row this member reads (its `replica_of`): the only
    /// member whose acknowledged writes it can tell it holds.
    pub replica_of: Option<String>,
    /// The last heartbeat this member acknowledged (its write check passed), in this
    /// process.
    pub acknowledged: Option<Beat>,
}

/// One change of a group's active member.
#[derive(Debug, Clone, PartialEq)]
pub struct Switch {
    pub at: Timestamp,
    pub from: Option<String>,
    pub to: Option<String>,
    pub cause: String,
    /// The member active last before this change: `from`, or for a change from no member,
    /// the one active before that gap, so that `orders-a -> none -> orders-b` reads as one
    /// story. `None` only while no member was ever active.
    pub from_member: Option<String>,
    /// For a change from no member to one: how long the group had none.
    pub no_active_for: Option<Duration>,
    /// What the new member lacked of the writes `from_member` acknowledged. `None` when
    /// the change names no other member: to none, a first choice after a gap, or the same
    /// member back after a gap.
    pub lost_writes: Option<Loss>,
}

/// Whether a switch from one member to another lost writes the old one had acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub enum Loss {
    /// Not judged yet: the new member's first read of the old one's heartbeat row is to
    /// come.
    Pending,
    /// The old member's last acknowledged heartbeat against its row as the new member
    /// read it: `writes` 0 when the new member held it. At heartbeat granularity, so a
    /// lower bound of what applications lost.
    Judged(LostWrites),
    /// It cannot be told, and why: the new member reads no heartbeat row of the old one
    /// (no `replica_of`), or the old one acknowledged no write while this process ran.
    Unknown(String),
}

impl Loss {
    pub fn judged(&self) -> Option<LostWrites> {
        match self {
            Loss::Judged(l) => Some(*l),
            Loss::Pending | Loss::Unknown(_) => None,
        }
    }
}

/// What a member's probe changed in its groups, worth a log line.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupEvent {
    /// The active member changed.
    Switched(Switch),
    /// The loss of a switch from one member to another was judged, or found impossible
    /// to judge: the switch record as it now is.
    LossJudged(Switch),
}

/// What a member's probe read and wrote of heartbeats, for the loss judgement.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Beats {
    /// The heartbeat the member acknowledged in this probe.
    pub acknowledged: Option<Beat>,
    /// The row of its `replica_of` target, as this probe read it on the member.
    pub primary: Option<Beat>,
}

impl Beats {
    pub fn of(report: &ProbeReport) -> Beats {
        Beats {
            acknowledged: report.acknowledged,
            primary: report.primary_beat,
        }
    }
}

/// A switch waiting for its new member's read of the old member's heartbeat row.
#[derive(Debug, Clone, PartialEq)]
struct PendingLoss {
    /// Index of the new member.
    member: usize,
    /// The old member's last acknowledged heartbeat when the switch happened.
    acknowledged: Beat,
    /// The switch record, as made.
    switch: Switch,
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
    /// The periods with no active member, from the first decision on (a first decision
    /// that finds no eligible member starts one).
    pub no_active: Periods,
    /// Acknowledged writes of the old active member that the new one lacked, summed over
    /// the switches whose loss was judged.
    pub writes_lost: u64,
    pending_loss: Option<PendingLoss>,
}

impl GroupState {
    /// `kinds` and `replica_of` give each member's target kind and `replica_of`, in the
    /// order of `config.members`.
    pub fn new(config: Arc<GroupConfig>, kinds: &[Kind], replica_of: &[Option<String>]) -> Self {
        let members = config
            .members
            .iter()
            .zip(kinds)
            .zip(replica_of)
            .map(|((name, &kind), replica_of)| MemberState {
                name: name.clone(),
                check: config.eligibility.check(kind),
                settled: false,
                eligible: false,
                consecutive_ok: 0,
                consecutive_failed: 0,
                last_failure: None,
                replica_of: replica_of.clone(),
                acknowledged: None,
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
            no_active: Periods::default(),
            writes_lost: 0,
            pending_loss: None,
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
        self.observe_probe(i, ok, failure, Beats::default(), now)
            .into_iter()
            .find_map(|e| match e {
                GroupEvent::Switched(s) => Some(s),
                GroupEvent::LossJudged(_) => None,
            })
    }

    /// [`GroupState::observe`] with what the probe read and wrote of heartbeats: the
    /// member's acknowledged write is remembered, and a switch to this member waiting for
    /// its read of the old member's row is judged. Returns what changed, in order.
    pub fn observe_probe(
        &mut self,
        i: usize,
        ok: bool,
        failure: Option<String>,
        beats: Beats,
        now: Timestamp,
    ) -> Vec<GroupEvent> {
        if let Some(beat) = beats.acknowledged {
            self.members[i].acknowledged = Some(beat);
        }
        let mut events = Vec::new();
        self.decide(i, ok, failure, now, &mut events);
        if let (Some(found), Some(pending)) = (beats.primary, self.pending_loss.as_ref()) {
            if pending.member == i {
                // A row at or past the acknowledged one: nothing was lost.
                let lost =
                    LostWrites::between(pending.acknowledged, Some(found)).unwrap_or(LostWrites {
                        writes: 0,
                        span: Duration::ZERO,
                    });
                self.writes_lost += lost.writes;
                self.settle_pending(Loss::Judged(lost), &mut events);
            }
        }
        events
    }

    /// Gives the pending switch its verdict, in the recent list too while it is there.
    fn settle_pending(&mut self, loss: Loss, events: &mut Vec<GroupEvent>) {
        let Some(pending) = self.pending_loss.take() else {
            return;
        };
        let mut switch = pending.switch;
        if let Some(kept) = self.recent.iter_mut().rev().find(|s| {
            s.at == switch.at && s.to == switch.to && s.lost_writes == Some(Loss::Pending)
        }) {
            kept.lost_writes = Some(loss.clone());
        }
        switch.lost_writes = Some(loss);
        events.push(GroupEvent::LossJudged(switch));
    }

    fn decide(
        &mut self,
        i: usize,
        ok: bool,
        failure: Option<String>,
        now: Timestamp,
        events: &mut Vec<GroupEvent>,
    ) {
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
            return;
        }
        self.choose(change, now, events);
    }

    fn choose(&mut self, cause: Option<String>, now: Timestamp, events: &mut Vec<GroupEvent>) {
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
            self.no_active.observe(next.is_none(), now);
            return;
        }
        if next == self.active {
            return;
        }
        let name = |i: Option<usize>| i.map(|i| self.members[i].name.clone());
        let cause = match (cause, next) {
            (Some(c), None) => format!("{c}; no eligible member left"),
            (Some(c), _) => c,
            (None, _) => "re-evaluated".to_owned(),
        };
        let no_active_for = match (self.active, next) {
            (None, Some(_)) => self.no_active.since.map(|since| now.since(since)),
            _ => None,
        };
        let mut switch = Switch {
            at: now,
            from: name(self.active),
            to: name(next),
            cause,
            from_member: name(self.last_active),
            no_active_for,
            lost_writes: None,
        };
        self.active = next;
        self.no_active.observe(next.is_none(), now);
        // From one member to another, directly or through a gap: a switch, whose loss is
        // judged from the old member's last acknowledged write.
        let mut waiting = None;
        if let Some(new) = next.filter(|&n| Some(n) != self.last_active) {
            if let Some(old) = self.last_active {
                self.switches += 1;
                self.last_switch_at = Some(now);
                if let Some(p) = &self.pending_loss {
                    let why = format!(
                        "{} was replaced as the active member before it read {}'s heartbeat",
                        self.members[p.member].name,
                        p.switch.from_member.as_deref().unwrap_or_default(),
                    );
                    self.settle_pending(Loss::Unknown(why), events);
                }
                let (o, n) = (&self.members[old], &self.members[new]);
                switch.lost_writes = Some(if n.replica_of.as_deref() != Some(o.name.as_str()) {
                    Loss::Unknown(format!(
                        "{} has no replica_of {}, so it reads no heartbeat of {}'s",
                        n.name, o.name, o.name
                    ))
                } else if let Some(acknowledged) = o.acknowledged {
                    waiting = Some((new, acknowledged));
                    Loss::Pending
                } else {
                    Loss::Unknown(format!(
                        "{} acknowledged no write since this exporter started",
                        o.name
                    ))
                });
            }
            self.last_active = next;
        }
        if self.recent.len() == SWITCHES_KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(switch.clone());
        events.push(GroupEvent::Switched(switch.clone()));
        match waiting {
            Some((member, acknowledged)) => {
                self.pending_loss = Some(PendingLoss {
                    member,
                    acknowledged,
                    switch,
                })
            }
            // Told at once: nothing to wait for.
            None if switch.lost_writes.is_some() => events.push(GroupEvent::LossJudged(switch)),
            None => {}
        }
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
                let targets: Vec<_> = g
                    .members
                    .iter()
                    .map(|m| {
                        config
                            .targets
                            .iter()
                            .find(|t| &t.name == m)
                            // Loading refuses a group member that is not a configured
                            // target (config::groups::validate).
                            .expect("every group member is a configured target")
                    })
                    .collect();
                let replica_of: Vec<Option<String>> = targets
                    .iter()
                    .map(|t| match &t.endpoint {
                        Endpoint::Server(s) => s.replica_of.clone(),
                        Endpoint::Sqlite { .. } | Endpoint::Tcp { .. } => None,
                    })
                    .collect();
                let kept =
                    previous.and_then(|p| p.snapshots().into_iter().find(|s| *s.config == *g));
                let state = match kept {
                    Some(s) => {
                        let mut s = (*s).clone();
                        // The decision is kept; whose row a member reads is the new file's.
                        for (m, r) in s.members.iter_mut().zip(replica_of) {
                            m.replica_of = r;
                        }
                        s
                    }
                    None => {
                        let kinds: Vec<Kind> = targets.iter().map(|t| t.kind).collect();
                        GroupState::new(Arc::new(g.clone()), &kinds, &replica_of)
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

    /// Feeds a member's probe to every group it belongs to; returns what it changed (the
    /// switches it caused, the losses it judged), by group.
    pub fn observe(
        &self,
        target: &str,
        checks: &[Check],
        report: &ProbeReport,
    ) -> Vec<(String, GroupEvent)> {
        let mut events = Vec::new();
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
            let name = state.config.name.clone();
            events.extend(
                state
                    .observe_probe(i, ok, failure, Beats::of(report), report.started_at)
                    .into_iter()
                    .map(|e| (name.clone(), e)),
            );
            g.snapshot.store(Arc::new(state.clone()));
        }
        events
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
        GroupState::new(Arc::new(config), &[Kind::Postgres; 3], &[None, None, None])
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

    #[test]
    fn a_gap_with_no_active_member_is_a_period_and_the_switch_that_ends_it_tells_its_length() {
        let mut g = group(Policy::PreferFirst);
        lose_every_member_standbys_first(&mut g);
        assert_eq!(g.no_active.since, Some(at(300)), "a was dropped at 300 ms");
        assert_eq!(g.no_active.started, 1);
        let dropped = g.recent.back().unwrap().clone();
        assert_eq!(
            (
                dropped.from_member.as_deref(),
                dropped.no_active_for,
                dropped.lost_writes
            ),
            (Some("a"), None, None),
            "a switch to none has no length yet and loses nothing"
        );
        g.observe(1, true, None, at(400));
        let s = g.observe(1, true, None, at(500)).expect("b takes over");
        assert_eq!((s.from.as_deref(), s.to.as_deref()), (None, Some("b")));
        assert_eq!(
            s.from_member.as_deref(),
            Some("a"),
            "a -> (none) -> b is one story"
        );
        assert_eq!(s.no_active_for, Some(Duration::from_millis(200)));
        assert_eq!(
            (g.no_active.since, g.no_active.started, g.no_active.last),
            (None, 1, Some(Duration::from_millis(200)))
        );
        assert_eq!(g.switches, 1);
    }

    #[test]
    fn a_first_decision_with_no_eligible_member_starts_a_gap_and_the_first_member_is_no_switch() {
        let mut g = group(Policy::PreferFirst);
        for i in 0..3 {
            for t in 0..3 {
                g.observe(i, false, Some("refused".into()), at(t * 100));
            }
        }
        assert!(g.decided);
        assert_eq!((g.no_active.since, g.no_active.started), (Some(at(200)), 1));
        g.observe(2, true, None, at(300));
        let s = g.observe(2, true, None, at(400)).expect("c is chosen");
        assert_eq!(s.no_active_for, Some(Duration::from_millis(200)));
        assert_eq!((s.from_member, s.lost_writes), (None, None));
        assert_eq!(g.switches, 0);
    }

    /// a, b and c, where b is a's replica (it reads a's heartbeat row) and c is not.
    fn replicated() -> GroupState {
        let config = GroupConfig {
            name: "g".into(),
            members: vec!["a".into(), "b".into(), "c".into()],
            eligibility: Eligibility::Writable,
            fail_after: 3,
            recover_after: 2,
            policy: Policy::PreferFirst,
        };
        GroupState::new(
            Arc::new(config),
            &[Kind::Postgres; 3],
            &[None, Some("a".into()), None],
        )
    }

    fn beat(seq: i64) -> Beat {
        Beat {
            seq,
            at: Timestamp::from_millis(seq * 100),
        }
    }

    fn acknowledged(seq: i64) -> Beats {
        Beats {
            acknowledged: Some(beat(seq)),
            primary: None,
        }
    }

    /// A read of a's row on a replica that holds heartbeat `seq`.
    fn read_of_a(seq: i64) -> Beats {
        Beats {
            acknowledged: None,
            primary: Some(beat(seq)),
        }
    }

    /// b and c stand by (not writable); a is active and acknowledges heartbeats 1 to
    /// `last` (none for 0), then drops: no member from 10.2 s.
    fn a_acknowledged_then_dropped(g: &mut GroupState, last: i64) {
        for i in [1, 2] {
            for t in 1..=3 {
                g.observe(i, false, Some("read_only".into()), at(t));
            }
        }
        g.observe(0, true, None, at(10));
        for seq in 1..=last {
            g.observe_probe(0, true, None, acknowledged(seq), at(seq as u64 * 100));
        }
        assert_eq!(name(g), Some("a"));
        for t in [10_000, 10_100, 10_200] {
            g.observe(0, false, Some("refused".into()), at(t));
        }
        assert_eq!(name(g), None);
    }

    fn judged(events: &[GroupEvent]) -> Option<&Loss> {
        events.iter().find_map(|e| match e {
            GroupEvent::LossJudged(s) => s.lost_writes.as_ref(),
            GroupEvent::Switched(_) => None,
        })
    }

    #[test]
    fn a_replica_that_lacks_acknowledged_heartbeats_when_it_takes_over_lost_them() {
        let mut g = replicated();
        a_acknowledged_then_dropped(&mut g, 12);
        // b is promoted; its reads find a's row at 9: 10, 11 and 12 never reached it.
        assert!(
            g.observe_probe(1, true, None, read_of_a(9), at(11_000))
                .is_empty()
        );
        let events = g.observe_probe(1, true, None, read_of_a(9), at(11_100));
        let lost = LostWrites {
            writes: 3,
            span: Duration::from_millis(300),
        };
        assert!(
            matches!(&events[0], GroupEvent::Switched(s) if s.lost_writes == Some(Loss::Pending)),
            "{events:?}"
        );
        assert_eq!(judged(&events), Some(&Loss::Judged(lost)));
        assert_eq!(g.writes_lost, 3);
        let s = g.recent.back().unwrap();
        assert_eq!(
            (s.from_member.as_deref(), s.to.as_deref()),
            (Some("a"), Some("b"))
        );
        assert_eq!(s.no_active_for, Some(Duration::from_millis(900)));
        assert_eq!(s.lost_writes, Some(Loss::Judged(lost)));
        // Told once: later reads of the same row add nothing.
        assert!(
            g.observe_probe(1, true, None, read_of_a(9), at(11_200))
                .is_empty()
        );
        assert_eq!(g.writes_lost, 3);
    }

    #[test]
    fn a_replica_that_holds_the_last_acknowledged_heartbeat_lost_nothing() {
        let mut g = replicated();
        a_acknowledged_then_dropped(&mut g, 12);
        g.observe_probe(1, true, None, read_of_a(12), at(11_000));
        let events = g.observe_probe(1, true, None, read_of_a(12), at(11_100));
        let none = LostWrites {
            writes: 0,
            span: Duration::ZERO,
        };
        assert_eq!(judged(&events), Some(&Loss::Judged(none)));
        assert_eq!(
            g.recent.back().unwrap().lost_writes,
            Some(Loss::Judged(none))
        );
        assert_eq!(g.writes_lost, 0);
    }

    #[test]
    fn the_loss_is_judged_at_the_first_read_of_the_new_member_after_the_switch() {
        let mut g = replicated();
        for i in 0..3 {
            g.observe_probe(i, true, None, acknowledged(1), at(0));
        }
        g.observe_probe(0, true, None, acknowledged(5), at(500));
        // a drops while b is eligible: the switch happens on a's probe, which tells
        // nothing of what b holds.
        for t in [600, 700] {
            g.observe(0, false, Some("refused".into()), at(t));
        }
        let events = g.observe_probe(0, false, Some("refused".into()), Beats::default(), at(800));
        assert_eq!(name(&g), Some("b"));
        assert_eq!(judged(&events), None);
        assert_eq!(g.recent.back().unwrap().lost_writes, Some(Loss::Pending));
        // A probe of b whose read did not run tells nothing either.
        assert!(
            g.observe_probe(1, true, None, Beats::default(), at(900))
                .is_empty()
        );
        let events = g.observe_probe(1, true, None, read_of_a(4), at(1_000));
        let lost = LostWrites {
            writes: 1,
            span: Duration::from_millis(100),
        };
        assert_eq!(judged(&events), Some(&Loss::Judged(lost)));
        assert_eq!(
            g.recent.back().unwrap().lost_writes,
            Some(Loss::Judged(lost))
        );
        assert_eq!(g.writes_lost, 1);
    }

    #[test]
    fn the_loss_is_unknown_without_replica_of_or_an_acknowledged_write() {
        // c reads no row of a's.
        let mut g = replicated();
        a_acknowledged_then_dropped(&mut g, 12);
        g.observe_probe(2, true, None, Beats::default(), at(11_000));
        let events = g.observe_probe(2, true, None, Beats::default(), at(11_100));
        assert_eq!(name(&g), Some("c"));
        assert!(
            matches!(judged(&events), Some(Loss::Unknown(why)) if why.contains("c has no replica_of a")),
            "{events:?}"
        );
        assert_eq!(g.writes_lost, 0);

        // a never acknowledged a write in this process.
        let mut g = replicated();
        a_acknowledged_then_dropped(&mut g, 0);
        g.observe_probe(1, true, None, read_of_a(9), at(11_000));
        let events = g.observe_probe(1, true, None, read_of_a(9), at(11_100));
        assert!(
            matches!(judged(&events), Some(Loss::Unknown(why)) if why.contains("a acknowledged no write")),
            "{events:?}"
        );
        assert_eq!(g.writes_lost, 0);
    }
}
