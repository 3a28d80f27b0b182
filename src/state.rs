//! What dbvigil knows about a target: counters, histograms, outage episodes and identity,
//! folded from probe reports. Owned by the target's own task and published as an
//! immutable snapshot, so readers (scrapes, the API) never wait for a prober.

use crate::maintenance::AppFlag;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::time::Timestamp;

use crate::config::{Check, PhaseBuckets, TargetConfig};
use crate::probe::{Failure, Identity, LostWrites, Phase, ProbeReport, Reason};

/// Closed outage episodes kept per target for the API.
pub const EPISODES_KEPT: usize = 50;
/// Finished windows kept per check and for the read-only state, for the API's story of an
/// episode or a switchover: twice the episodes, since a flapping check has more of them.
pub const WINDOWS_KEPT: usize = 100;

pub const PHASE_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// `phase_buckets: coarse`: the same span in 6 bounds, keeping 0.5 s, the threshold of the
/// shipped latency alert, so the alert is as exact in either setting.
pub const COARSE_PHASE_BUCKETS: &[f64] = &[0.001, 0.005, 0.025, 0.1, 0.5, 2.5];

fn phase_bounds(setting: PhaseBuckets) -> &'static [f64] {
    match setting {
        PhaseBuckets::Detailed => PHASE_BUCKETS,
        PhaseBuckets::Coarse => COARSE_PHASE_BUCKETS,
    }
}
pub const OUTAGE_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];
pub const LAG_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket, not cumulative; one more than `bounds` for +Inf.
    counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, value: f64) {
        let i = self
            .bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += value;
        self.count += 1;
    }

    /// Upper bounds, without the implicit +Inf.
    pub fn bounds(&self) -> &'static [f64] {
        self.bounds
    }

    /// Per bucket, not cumulative: one per bound, then +Inf.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }
}

/// A period during which the target was down: from its first failed probe to its first
/// successful one.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    /// The failure of the first failed probe.
    pub reason: Reason,
    pub message: String,
    pub failed_checks: Vec<Check>,
    /// Acknowledged writes the database no longer held when it came back.
    pub lost_writes: Option<LostWrites>,
    /// Who answered the last probe that reached the database before the episode.
    pub identity_before: Option<Identity>,
    /// Who answered when it ended: another server than before on a switchover.
    pub identity_after: Option<Identity>,
}

impl Episode {
    pub fn duration(&self, now: Timestamp) -> Duration {
        let end = self.ended_at.unwrap_or(now);
        end.since(self.started_at)
    }
}

/// The periods during which one thing held (a check failing, the database read-only), each
/// from the first probe that saw it to the first that did not: no failure threshold, so a
/// period is within one probe interval of the truth at either end.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Periods {
    /// The period in progress, since the first probe that saw it.
    pub since: Option<Timestamp>,
    /// Periods started.
    pub started: u64,
    /// The duration of the last finished period.
    pub last: Option<Duration>,
    /// Time spent in periods, up to the last probe: the one in progress counts up to it.
    pub total: Duration,
    /// The last probe's start, where `total` counts up to.
    observed_at: Option<Timestamp>,
    /// Finished periods, newest last, at most `WINDOWS_KEPT`.
    finished: VecDeque<Window>,
}

impl Periods {
    /// One probe's verdict at `at`: `holds` starts a period, its absence ends one.
    pub fn observe(&mut self, holds: bool, at: Timestamp) {
        if let (Some(_), Some(before)) = (self.since, self.observed_at) {
            self.total += at.since(before);
        }
        self.observed_at = Some(at);
        match (holds, self.since) {
            (true, None) => {
                self.since = Some(at);
                self.started += 1;
            }
            (false, Some(since)) => {
                self.last = Some(at.since(since));
                self.since = None;
                if self.finished.len() == WINDOWS_KEPT {
                    self.finished.pop_front();
                }
                self.finished.push_back(Window {
                    from: since,
                    to: Some(at),
                });
            }
            _ => {}
        }
    }

    /// The periods that overlap the span from `from` to `to` (`None`: still going),
    /// oldest first, the one in progress last.
    pub fn during(&self, from: Timestamp, to: Option<Timestamp>) -> Vec<Window> {
        let open = self.since.map(|since| Window {
            from: since,
            to: None,
        });
        self.finished
            .iter()
            .copied()
            .chain(open)
            .filter(|w| w.overlaps(from, to))
            .collect()
    }
}

/// One period as the probes saw it: from the first probe that saw it to the first that did
/// not (`None` while it lasts).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub from: Timestamp,
    pub to: Option<Timestamp>,
}

impl Window {
    pub fn duration(&self, now: Timestamp) -> Duration {
        self.to.unwrap_or(now).since(self.from)
    }

    /// Whether any of it lies inside the span from `from` to `to`. Both ends are probe
    /// starts: a window that ended at `from` ended with the probe that began the span, and
    /// one that began at `to` began with the probe that ended it, so neither is part of it.
    fn overlaps(&self, from: Timestamp, to: Option<Timestamp>) -> bool {
        let starts_before_end = to.is_none_or(|to| self.from < to);
        let ends_after_start = self.to.is_none_or(|end| end > from);
        starts_before_end && ends_after_start
    }
}

/// What each check and the read-only state did during a span: the story of an episode or
/// a switchover.
#[derive(Debug, Clone, PartialEq)]
pub struct Downtime {
    /// Per configured check, in the target's order: its failure periods in the span.
    pub checks: Vec<(Check, Vec<Window>)>,
    pub read_only: Vec<Window>,
}

/// One change of the server that answers, as a postmortem tells it: who answered before
/// and after, the last write the old server took and the first the new one took (writes
/// were unavailable in between), and the acknowledged writes the new one lacked.
#[derive(Debug, Clone, PartialEq)]
pub struct Switchover {
    /// The first probe that reached the new server.
    pub at: Timestamp,
    pub from: Identity,
    pub to: Identity,
    /// The start of the last probe whose write the old server took.
    pub last_write_on_old: Option<Timestamp>,
    /// The start of the first probe whose write the new server took; `None` until then.
    pub first_write_on_new: Option<Timestamp>,
    pub lost_writes: Option<LostWrites>,
}

impl Switchover {
    /// From the old server's last write to the new one's first: `None` until both are known.
    pub fn write_gap(&self) -> Option<Duration> {
        Some(self.first_write_on_new?.since(self.last_write_on_old?))
    }

    /// The span its story covers: from the old server's last write (or, without one, the
    /// first probe that reached the new server) to the new one's first write (or that
    /// probe). A window still open then reaches into it.
    pub fn span(&self) -> (Timestamp, Timestamp) {
        (
            self.last_write_on_old.unwrap_or(self.at),
            self.first_write_on_new.unwrap_or(self.at),
        )
    }
}

/// Switchovers kept per target, newest last.
pub const SWITCHOVERS_KEPT: usize = 20;

#[derive(Debug, Clone)]
pub struct LastProbe {
    pub at: Timestamp,
    pub duration: Duration,
    pub success: bool,
    pub checks: Vec<(Check, bool)>,
    pub failure: Option<Failure>,
}

/// A state change worth a log line.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Down {
        reason: Reason,
        message: String,
    },
    Up {
        outage: Duration,
    },
    IdentityChanged {
        from: Identity,
        to: Identity,
    },
    WritesLost(LostWrites),
    /// The first write this process saw acknowledged: lost writes are judged from here on.
    WriteBaseline,
}

#[derive(Debug, Clone)]
pub struct TargetStats {
    pub target: Arc<TargetConfig>,
    pub probes: u64,
    pub failures: [u64; Reason::ALL.len()],
    pub last: Option<LastProbe>,
    pub last_success_at: Option<Timestamp>,
    pub phase_durations: Vec<Histogram>,
    pub read_only: Option<bool>,
    /// Age of the primary's heartbeat on this replica at the last probe; `None` when that
    /// probe could not read it.
    pub replication_lag: Option<Duration>,
    pub identity: Option<Identity>,
    pub identity_changes: u64,
    /// Acknowledged heartbeats that a later read no longer found, summed.
    pub writes_lost: u64,
    /// The last such loss.
    pub last_write_loss: Option<LostWrites>,
    /// The start of the last probe whose write succeeded, and who took it.
    last_write: Option<(Timestamp, String)>,
    /// The start of the first probe whose write succeeded in this process: acknowledged
    /// writes lost before it (while dbvigil was not running) cannot be seen.
    pub writes_judged_since: Option<Timestamp>,
    /// Changes of the server that answers, newest last.
    pub switchovers: VecDeque<Switchover>,
    /// Per configured check, in the target's order: the periods it failed, so that write
    /// downtime and read downtime are separate numbers.
    pub check_downtime: Vec<(Check, Periods)>,
    /// The periods the database said it was read-only; a probe that could not tell
    /// changes nothing.
    pub read_only_periods: Periods,
    /// Debounced by the failure threshold; `None` until the first probe.
    pub up: Option<bool>,
    pub consecutive_failures: u32,
    /// The failure run in progress, even before it reaches the threshold, so that an
    /// episode starts at the first failed probe.
    pending: Option<Episode>,
    /// The outage in progress once the threshold is reached.
    pub current_outage: Option<Episode>,
    pub outages: u64,
    pub outage_durations: Histogram,
    pub last_outage: Option<Duration>,
    /// Closed episodes, newest last.
    pub episodes: VecDeque<Episode>,
    pub scheduling_lag: Histogram,
    pub skipped_slots: u64,
    /// The application's maintenance flag; `None` without a `maintenance_query` or before
    /// the first read.
    pub app_flag: Option<AppFlag>,
}

impl TargetStats {
    pub fn new(target: Arc<TargetConfig>) -> Self {
        let phase_buckets = target.phase_buckets;
        let check_downtime = target
            .checks
            .iter()
            .map(|&c| (c, Periods::default()))
            .collect();
        TargetStats {
            target,
            probes: 0,
            failures: [0; Reason::ALL.len()],
            last: None,
            last_success_at: None,
            phase_durations: Phase::ALL
                .iter()
                .map(|_| Histogram::new(phase_bounds(phase_buckets)))
                .collect(),
            read_only: None,
            replication_lag: None,
            identity: None,
            identity_changes: 0,
            writes_lost: 0,
            last_write_loss: None,
            last_write: None,
            writes_judged_since: None,
            switchovers: VecDeque::new(),
            check_downtime,
            read_only_periods: Periods::default(),
            up: None,
            consecutive_failures: 0,
            pending: None,
            current_outage: None,
            outages: 0,
            outage_durations: Histogram::new(OUTAGE_BUCKETS),
            last_outage: None,
            episodes: VecDeque::new(),
            scheduling_lag: Histogram::new(LAG_BUCKETS),
            skipped_slots: 0,
            app_flag: None,
        }
    }

    /// A flag that cannot be read keeps its last value: a database restarting in the middle
    /// of a migration must not end the application's window.
    fn record_app_flag(&mut self, report: &ProbeReport) {
        if self.target.maintenance_query.is_none() {
            return;
        }
        let at = report.started_at;
        let previous = self.app_flag.take();
        self.app_flag = match (&report.maintenance_flag, previous) {
            (Some(Ok(on)), Some(p)) if p.on == *on => Some(AppFlag { error: None, ..p }),
            (Some(Ok(on)), _) => Some(AppFlag {
                on: *on,
                since: at,
                error: None,
            }),
            (Some(Err(f)), p) => Some(AppFlag {
                error: Some(f.message.clone()),
                ..p.unwrap_or(AppFlag {
                    on: false,
                    since: at,
                    error: None,
                })
            }),
            (None, Some(p)) => Some(AppFlag {
                error: Some("not read: the probe failed before it could ask".to_owned()),
                ..p
            }),
            (None, None) => None,
        };
    }

    /// What each check and the read-only state did from `from` to `to` (`None`: now).
    pub fn downtime(&self, from: Timestamp, to: Option<Timestamp>) -> Downtime {
        Downtime {
            checks: self
                .check_downtime
                .iter()
                .map(|(c, p)| (*c, p.during(from, to)))
                .collect(),
            read_only: self.read_only_periods.during(from, to),
        }
    }

    pub fn record_lag(&mut self, lag: Duration, skipped: u64) {
        self.scheduling_lag.observe(lag.as_secs_f64());
        self.skipped_slots += skipped;
    }

    /// Folds one probe report in and says what changed.
    pub fn record(&mut self, report: &ProbeReport) -> Vec<Transition> {
        let mut transitions = Vec::new();
        self.record_app_flag(report);
        let target = self.target.clone();
        let checks = &target.checks;
        self.probes += 1;
        for p in &report.phases {
            self.phase_durations[p.phase.index()].observe(p.duration.as_secs_f64());
        }
        // Unknown (NaN) when this probe could not tell: a database that cannot be reached
        // has no read-only state worth showing.
        self.read_only = report.read_only;
        self.replication_lag = report.replication_lag;
        let identity_before = self.identity.clone();
        if let Some(new) = &report.identity {
            if let Some(old) = &self.identity {
                if old.key != new.key {
                    self.identity_changes += 1;
                    if self.switchovers.len() == SWITCHOVERS_KEPT {
                        self.switchovers.pop_front();
                    }
                    self.switchovers.push_back(Switchover {
                        at: report.started_at,
                        from: old.clone(),
                        to: new.clone(),
                        last_write_on_old: self
                            .last_write
                            .as_ref()
                            .filter(|(_, key)| *key == old.key)
                            .map(|(at, _)| *at),
                        first_write_on_new: None,
                        lost_writes: None,
                    });
                    transitions.push(Transition::IdentityChanged {
                        from: old.clone(),
                        to: new.clone(),
                    });
                }
            }
            self.identity = Some(new.clone());
        }

        if let Some(lost) = report.lost_writes {
            self.writes_lost += lost.writes;
            self.last_write_loss = Some(lost);
            // The outage the database came back from is where the loss belongs.
            if let Some(e) = self.current_outage.as_mut().or(self.pending.as_mut()) {
                e.lost_writes = Some(lost);
            }
            transitions.push(Transition::WritesLost(lost));
            // Found by the first reads of the new server: the switch lost them.
            if let Some(sw) = self.switchovers.back_mut() {
                if sw.first_write_on_new.is_none() {
                    sw.lost_writes = Some(lost);
                }
            }
        }
        let check_results: Vec<(Check, bool)> = report.check_results(checks).collect();
        let wrote = check_results.contains(&(Check::Write, true));
        if let (true, Some(id)) = (wrote, &report.identity) {
            if let Some(sw) = self.switchovers.back_mut() {
                if sw.first_write_on_new.is_none() && sw.to.key == id.key {
                    sw.first_write_on_new = Some(report.started_at);
                }
            }
            self.last_write = Some((report.started_at, id.key.clone()));
        }
        if wrote && self.writes_judged_since.is_none() {
            self.writes_judged_since = Some(report.started_at);
            transitions.push(Transition::WriteBaseline);
        }
        for ((_, periods), (_, ok)) in self.check_downtime.iter_mut().zip(&check_results) {
            periods.observe(!ok, report.started_at);
        }
        if let Some(read_only) = report.read_only {
            self.read_only_periods.observe(read_only, report.started_at);
        }
        // Up means doing what the role needs: a standby found read-only need not write.
        let required = target.required_checks(report.read_only);
        let failure = report.failure(&required).cloned().or_else(|| {
            // A required check whose phase never ran and no phase failed: cannot happen
            // with the shipped probers, but a probe must never count as successful then.
            report
                .check_results(&required)
                .find(|(_, ok)| !ok)
                .map(|(c, _)| {
                    Failure::new(Reason::Query, format!("check {} did not run", c.as_str()))
                })
        });
        let success = failure.is_none();
        self.last = Some(LastProbe {
            at: report.started_at,
            duration: report.duration,
            success,
            checks: check_results.clone(),
            failure: failure.clone(),
        });

        match failure {
            None => {
                self.consecutive_failures = 0;
                self.pending = None;
                self.last_success_at = Some(report.started_at + report.duration);
                if let Some(mut episode) = self.current_outage.take() {
                    episode.ended_at = Some(report.started_at);
                    episode.identity_after = self.identity.clone();
                    let duration = episode.duration(report.started_at);
                    self.outage_durations.observe(duration.as_secs_f64());
                    self.last_outage = Some(duration);
                    if self.episodes.len() == EPISODES_KEPT {
                        self.episodes.pop_front();
                    }
                    self.episodes.push_back(episode);
                    transitions.push(Transition::Up { outage: duration });
                }
                self.up = Some(true);
            }
            Some(f) => {
                self.failures[f.reason.index()] += 1;
                self.consecutive_failures += 1;
                let pending = self.pending.get_or_insert_with(|| Episode {
                    started_at: report.started_at,
                    ended_at: None,
                    reason: f.reason,
                    message: f.message.clone(),
                    failed_checks: check_results
                        .iter()
                        .filter(|(_, ok)| !ok)
                        .map(|(c, _)| *c)
                        .collect(),
                    lost_writes: None,
                    identity_before,
                    identity_after: None,
                });
                if self.consecutive_failures >= self.target.failure_threshold
                    && self.current_outage.is_none()
                {
                    self.current_outage = Some(pending.clone());
                    self.outages += 1;
                    self.up = Some(false);
                    transitions.push(Transition::Down {
                        reason: f.reason,
                        message: f.message,
                    });
                }
            }
        }
        transitions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, Check};
    use crate::probe::{Phase, PhaseOutcome};
    use std::path::Path;

    fn stats(threshold: u32) -> TargetStats {
        let mut t = config::builtin(Path::new("/tmp"), "i")
            .unwrap()
            .targets
            .remove(0);
        t.failure_threshold = threshold;
        t.checks = vec![Check::Connect, Check::Read];
        TargetStats::new(Arc::new(t))
    }

    /// A report at `at_ms` where connect succeeded or failed with `reason`.
    fn report(at_ms: u64, failure: Option<Reason>, identity: &str) -> ProbeReport {
        let phase = |phase, result| PhaseOutcome {
            phase,
            duration: Duration::from_millis(1),
            result,
        };
        let phases = match failure {
            None => vec![phase(Phase::Connect, Ok(())), phase(Phase::Read, Ok(()))],
            Some(r) => vec![phase(Phase::Connect, Err(Failure::new(r, "boom")))],
        };
        ProbeReport {
            started_at: Timestamp::from_millis(at_ms as i64),
            duration: Duration::from_millis(2),
            phases,
            read_only: None,
            replication_lag: None,
            maintenance_flag: None,
            lost_writes: None,
            acknowledged: None,
            primary_beat: None,
            identity: failure.is_none().then(|| Identity {
                key: identity.into(),
                version: "v".into(),
            }),
        }
    }

    #[test]
    fn an_episode_starts_at_the_first_failure_once_the_threshold_is_reached() {
        let mut s = stats(3);
        assert!(s.record(&report(0, None, "a")).is_empty());
        assert!(
            s.record(&report(100, Some(Reason::Timeout), "a"))
                .is_empty()
        );
        assert!(
            s.record(&report(200, Some(Reason::Refused), "a"))
                .is_empty()
        );
        assert_eq!(
            s.up,
            Some(true),
            "below the threshold the target is still up"
        );
        let t = s.record(&report(300, Some(Reason::Refused), "a"));
        assert!(matches!(
            t.as_slice(),
            [Transition::Down {
                reason: Reason::Refused,
                ..
            }]
        ));
        assert_eq!(s.up, Some(false));
        assert_eq!(s.outages, 1);
        let t = s.record(&report(1000, None, "a"));
        assert_eq!(
            t,
            vec![Transition::Up {
                outage: Duration::from_millis(900)
            }]
        );
        let ep = s.episodes.back().unwrap();
        assert_eq!(
            ep.reason,
            Reason::Timeout,
            "the episode keeps its first failure"
        );
        assert_eq!(ep.started_at, Timestamp::from_millis(100));
        assert_eq!(s.failures[Reason::Timeout.index()], 1);
        assert_eq!(s.failures[Reason::Refused.index()], 2);
        assert_eq!(s.outage_durations.count, 1);
    }

    #[test]
    fn a_failure_run_shorter_than_the_threshold_is_no_episode() {
        let mut s = stats(2);
        s.record(&report(0, None, "a"));
        s.record(&report(100, Some(Reason::Timeout), "a"));
        s.record(&report(200, None, "a"));
        s.record(&report(300, Some(Reason::Timeout), "a"));
        s.record(&report(400, None, "a"));
        assert_eq!(s.outages, 0);
        assert!(s.episodes.is_empty());
        assert_eq!(s.up, Some(true));
    }

    #[test]
    fn identity_changes_are_counted_between_probes_that_reached_the_database() {
        let mut s = stats(1);
        s.record(&report(0, None, "a"));
        s.record(&report(100, Some(Reason::Refused), "-"));
        let t = s.record(&report(200, None, "b"));
        assert!(
            t.iter()
                .any(|t| matches!(t, Transition::IdentityChanged { .. }))
        );
        s.record(&report(300, None, "b"));
        assert_eq!(s.identity_changes, 1);
    }

    #[test]
    fn episodes_are_bounded() {
        let mut s = stats(1);
        for i in 0..(EPISODES_KEPT as u64 + 10) {
            s.record(&report(i * 200, Some(Reason::Timeout), "a"));
            s.record(&report(i * 200 + 100, None, "a"));
        }
        assert_eq!(s.episodes.len(), EPISODES_KEPT);
        assert_eq!(s.outages, EPISODES_KEPT as u64 + 10);
    }

    #[test]
    fn each_check_and_the_read_only_state_keep_their_own_periods() {
        // A switchover as the probes see it: the old server turns read-only (writes fail,
        // reads work), then nobody answers, then the new server takes reads and writes.
        let mut s = stats(1);
        let mut target = (*s.target).clone();
        target.checks = vec![Check::Connect, Check::Read, Check::Write];
        s = TargetStats::new(Arc::new(target));
        let ok = |phase| PhaseOutcome {
            phase,
            duration: Duration::from_millis(1),
            result: Ok(()),
        };
        let probe = |at: i64, phases: Vec<PhaseOutcome>, read_only: Option<bool>| ProbeReport {
            started_at: Timestamp::from_millis(at),
            duration: Duration::from_millis(2),
            phases,
            read_only,
            replication_lag: None,
            maintenance_flag: None,
            lost_writes: None,
            acknowledged: None,
            primary_beat: None,
            identity: None,
        };
        let read_only_write = || PhaseOutcome {
            phase: Phase::Write,
            duration: Duration::from_millis(1),
            result: Err(Failure::new(Reason::ReadOnly, "read-only")),
        };
        let refused = || PhaseOutcome {
            phase: Phase::Connect,
            duration: Duration::from_millis(1),
            result: Err(Failure::new(Reason::Refused, "refused")),
        };
        let all = || vec![ok(Phase::Connect), ok(Phase::Read), ok(Phase::Write)];
        s.record(&probe(0, all(), Some(false)));
        s.record(&probe(
            1_000,
            vec![ok(Phase::Connect), ok(Phase::Read), read_only_write()],
            Some(true),
        ));
        s.record(&probe(
            2_000,
            vec![ok(Phase::Connect), ok(Phase::Read), read_only_write()],
            Some(true),
        ));
        s.record(&probe(3_000, vec![refused()], None));
        assert_eq!(
            s.check_downtime[2].1.since,
            Some(Timestamp::from_millis(1_000)),
            "writes have been down since the server turned read-only"
        );
        s.record(&probe(4_000, all(), Some(false)));

        let last = |check: Check| {
            let (_, p) = s.check_downtime.iter().find(|(c, _)| *c == check).unwrap();
            (p.started, p.last, p.since)
        };
        let secs = |n| Some(Duration::from_secs(n));
        assert_eq!(last(Check::Write), (1, secs(3), None), "write: 1 s to 4 s");
        assert_eq!(last(Check::Read), (1, secs(1), None), "read: 3 s to 4 s");
        assert_eq!(
            last(Check::Connect),
            (1, secs(1), None),
            "connect: 3 s to 4 s"
        );
        assert_eq!(
            (s.read_only_periods.started, s.read_only_periods.last),
            (1, secs(3)),
            "read-only from 1 s; the probe at 3 s could not tell, so it ended at 4 s"
        );
        let totals: Vec<Duration> = s.check_downtime.iter().map(|(_, p)| p.total).collect();
        assert_eq!(
            totals,
            [1, 1, 3].map(Duration::from_secs),
            "the time each check was down, summed: connect, read, write"
        );

        // The story of the outage (a primary that cannot write is down: 1 s to 4 s) tells
        // each check apart.
        let at = Timestamp::from_millis;
        let episode = s.episodes.back().unwrap().clone();
        assert_eq!(
            (episode.started_at, episode.ended_at),
            (at(1_000), Some(at(4_000)))
        );
        let window = |from, to| Window {
            from: at(from),
            to: Some(at(to)),
        };
        let story = s.downtime(episode.started_at, episode.ended_at);
        assert_eq!(
            story.checks,
            vec![
                (Check::Connect, vec![window(3_000, 4_000)]),
                (Check::Read, vec![window(3_000, 4_000)]),
                (Check::Write, vec![window(1_000, 4_000)]),
            ]
        );
        assert_eq!(story.read_only, vec![window(1_000, 4_000)]);
        assert!(
            s.downtime(at(0), Some(at(1_000)))
                .checks
                .iter()
                .all(|(_, w)| w.is_empty()),
            "a span that ends where a period begins holds none of it"
        );
        assert!(
            s.downtime(at(4_000), None).read_only.is_empty(),
            "nor does one that begins where it ended"
        );
    }

    #[test]
    fn a_loss_is_counted_and_kept_with_the_outage_it_came_back_from() {
        let mut s = stats(1);
        s.record(&report(0, None, "blue"));
        s.record(&report(100, Some(Reason::Refused), ""));
        let lost = LostWrites {
            writes: 4,
            span: Duration::from_millis(800),
        };
        let back = ProbeReport {
            lost_writes: Some(lost),
            ..report(200, None, "green")
        };
        let transitions = s.record(&back);
        assert!(
            transitions.contains(&Transition::WritesLost(lost)),
            "{transitions:?}"
        );
        assert_eq!((s.writes_lost, s.last_write_loss), (4, Some(lost)));
        assert_eq!(s.episodes.back().unwrap().lost_writes, Some(lost));
        s.record(&report(300, None, "green"));
        assert_eq!(s.writes_lost, 4, "a loss is told once");
    }

    #[test]
    fn a_switchover_records_the_last_write_on_the_old_server_and_the_first_on_the_new() {
        let mut s = stats(1);
        let mut target = (*s.target).clone();
        target.checks = vec![Check::Connect, Check::Write];
        s = TargetStats::new(Arc::new(target));
        let wrote = |at: i64, ok: bool, id: Option<&str>| ProbeReport {
            started_at: Timestamp::from_millis(at),
            duration: Duration::from_millis(2),
            phases: vec![
                PhaseOutcome {
                    phase: Phase::Connect,
                    duration: Duration::from_millis(1),
                    result: Ok(()),
                },
                PhaseOutcome {
                    phase: Phase::Write,
                    duration: Duration::from_millis(1),
                    result: if ok {
                        Ok(())
                    } else {
                        Err(Failure::new(Reason::ReadOnly, "read-only"))
                    },
                },
            ],
            read_only: None,
            replication_lag: None,
            maintenance_flag: None,
            lost_writes: None,
            acknowledged: None,
            primary_beat: None,
            identity: id.map(|k| Identity {
                key: k.into(),
                version: "v".into(),
            }),
        };
        s.record(&wrote(0, true, Some("blue")));
        s.record(&wrote(1_000, true, Some("blue")));
        s.record(&wrote(2_000, false, Some("blue")));
        s.record(&wrote(3_000, false, None));
        let lost = LostWrites {
            writes: 2,
            span: Duration::from_secs(1),
        };
        s.record(&ProbeReport {
            lost_writes: Some(lost),
            ..wrote(4_000, false, Some("green"))
        });
        assert_eq!(s.switchovers.len(), 1);
        assert_eq!(s.switchovers[0].write_gap(), None, "no write on green yet");
        s.record(&wrote(5_000, true, Some("green")));
        s.record(&wrote(6_000, true, Some("green")));
        let sw = &s.switchovers[0];
        assert_eq!(
            (sw.from.key.as_str(), sw.to.key.as_str()),
            ("blue", "green")
        );
        assert_eq!(sw.at, Timestamp::from_millis(4_000));
        assert_eq!(sw.last_write_on_old, Some(Timestamp::from_millis(1_000)));
        assert_eq!(sw.first_write_on_new, Some(Timestamp::from_millis(5_000)));
        assert_eq!(sw.write_gap(), Some(Duration::from_secs(4)));
        assert_eq!(sw.lost_writes, Some(lost));
    }
}
