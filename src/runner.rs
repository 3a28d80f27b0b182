//! One task per target: probes on a fixed schedule that does not drift, folds each report
//! into the target's stats and publishes a snapshot. A slow target only ever delays itself.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::TargetConfig;
use crate::groups::{GroupEvent, GroupSet, Loss};
use crate::metrics::Published;
use crate::migrate::watch::{self, MigrationSnapshot};
use crate::probe::{self, ProbeContext, ProbeReport, Prober};
use crate::state::{TargetStats, Transition};

/// The shared face of a running target: its configuration and its latest snapshot.
pub struct TargetHandle {
    pub config: Arc<TargetConfig>,
    snapshot: ArcSwap<Published>,
    /// The latest read of its migration history, when `migrations` is configured.
    migrations: ArcSwapOption<MigrationSnapshot>,
    cancel: CancellationToken,
    /// Taken only by `/probe`: on-demand probes of one target share one heartbeat row, so
    /// they run one at a time. The continuous probe never takes it.
    pub on_demand: tokio::sync::Mutex<()>,
}

impl TargetHandle {
    pub fn snapshot(&self) -> Arc<Published> {
        self.snapshot.load_full()
    }

    pub fn stop(&self) {
        self.cancel.cancel();
    }

    pub fn migrations(&self) -> Option<Arc<MigrationSnapshot>> {
        self.migrations.load_full()
    }

    /// One read of the migration history tables, published for the next scrape.
    pub async fn read_migrations(&self) {
        let Some(config) = &self.config.migrations else {
            return;
        };
        let snapshot = watch::read(&self.config, config).await;
        let previous = self.migrations.load();
        let was_ok = previous.as_ref().is_none_or(|p| p.error.is_none());
        match (&snapshot.error, was_ok) {
            (Some(e), true) => {
                tracing::warn!(target = %self.config.name, error = %e, "cannot read migration history")
            }
            (None, false) => {
                tracing::info!(target = %self.config.name, "migration history readable again")
            }
            _ => {}
        }
        // A tool's table of another shape (or a failed query on it) leaves that tool's
        // series out; say why once, when it starts and when it stops.
        let secrets = self.config.secrets();
        for read in &snapshot.tools {
            let before = previous
                .as_ref()
                .and_then(|p| p.tools.iter().find(|r| r.tool == read.tool))
                .map(|r| r.result.as_ref().err());
            match (&read.result, before) {
                (Err(e), before) if before.is_none_or(|b| b != Some(e)) => tracing::warn!(
                    target = %self.config.name, tool = read.tool,
                    error = %crate::connect::redact(e, &secrets),
                    "cannot read a migration history table; its tool's series are left out until it can be read"
                ),
                (Ok(_), Some(Some(_))) => tracing::info!(
                    target = %self.config.name, tool = read.tool,
                    "migration history table readable again"
                ),
                _ => {}
            }
        }
        if let Some(e) = &snapshot.scripts_error {
            if previous
                .as_ref()
                .is_none_or(|p| p.scripts_error.as_ref() != Some(e))
            {
                tracing::warn!(target = %self.config.name, error = %e, "cannot read the migration scripts; pending and checksum drift are unknown");
            }
        }
        self.migrations.store(Some(Arc::new(snapshot)));
    }

    /// Reads the migration history every `migrations.interval` until the target stops.
    pub async fn watch_migrations(self: Arc<Self>) {
        let Some(interval) = self.config.migrations.as_ref().map(|m| m.interval) else {
            return;
        };
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = ticks.tick() => {}
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = self.read_migrations() => {}
            }
        }
    }
}

pub struct TargetRunner {
    handle: Arc<TargetHandle>,
    prober: Box<dyn Prober>,
    stats: TargetStats,
    ctx: ProbeContext,
    secrets: Vec<String>,
    /// The current configuration's failover groups, fed with every probe.
    groups: Arc<ArcSwap<GroupSet>>,
    /// Told when the application's maintenance flag turns on or off, so its window's
    /// silence follows at once rather than at the next sync. Telling never waits.
    flag_changed: Arc<Notify>,
}

impl TargetRunner {
    pub fn new(
        config: Arc<TargetConfig>,
        instance: &str,
        parent: &CancellationToken,
        groups: Arc<ArcSwap<GroupSet>>,
        flag_changed: Arc<Notify>,
    ) -> Self {
        let stats = TargetStats::new(config.clone());
        let handle = Arc::new(TargetHandle {
            config: config.clone(),
            snapshot: ArcSwap::from_pointee(Published::new(stats.clone())),
            migrations: ArcSwapOption::empty(),
            cancel: parent.child_token(),
            on_demand: tokio::sync::Mutex::new(()),
        });
        TargetRunner {
            prober: probe::new_prober(&config),
            ctx: ProbeContext::continuous(instance, config.timeout),
            secrets: config.secrets().into_iter().map(str::to_owned).collect(),
            handle,
            stats,
            groups,
            flag_changed,
        }
    }

    pub fn handle(&self) -> Arc<TargetHandle> {
        self.handle.clone()
    }

    /// One probe cycle: probe, fold the report in, publish, log what changed.
    pub async fn probe_once(&mut self) -> ProbeReport {
        let mut report = self.prober.probe(&self.ctx).await;
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        report.redact(&secrets);
        let flag_was_on = self.stats.app_flag.as_ref().is_some_and(|f| f.on);
        let transitions = self.stats.record(&report);
        self.publish();
        // After publishing: whoever wakes reads the window from the new snapshot.
        if self.stats.app_flag.as_ref().is_some_and(|f| f.on) != flag_was_on {
            self.flag_changed.notify_one();
        }
        let target = &self.stats.target.name;
        for (group, event) in self
            .groups
            .load()
            .observe(target, &self.stats.target.checks, &report)
        {
            log_group_event(&group, event);
        }
        for t in transitions {
            match t {
                Transition::Down { reason, message } => {
                    tracing::warn!(target = %target, reason = reason.as_str(), error = %message, "target down")
                }
                Transition::Up { outage } => {
                    tracing::info!(target = %target, outage_seconds = outage.as_secs_f64(), "target up")
                }
                Transition::IdentityChanged { from, to } => tracing::warn!(
                    target = %target, from = %from.key, to = %to.key, version = %to.version,
                    "server identity changed (switchover or failover)"
                ),
                Transition::WritesLost(lost) => tracing::error!(
                    target = %target, writes = lost.writes, span_seconds = lost.span.as_secs_f64(),
                    "acknowledged writes lost: the database came back without heartbeats it had confirmed (failover to a lagging standby, restore or rollback)"
                ),
                Transition::WriteBaseline => tracing::info!(
                    target = %target,
                    "first heartbeat acknowledged: lost writes are judged from here on (a loss while dbvigil was not running cannot be seen)"
                ),
            }
        }
        let required = self.stats.target.required_checks(report.read_only);
        if let Some(f) = report.failure(&required) {
            tracing::debug!(target = %target, reason = f.reason.as_str(), error = %f.message, "probe failed");
        }
        report
    }

    fn publish(&self) {
        self.handle
            .snapshot
            .store(Arc::new(Published::new(self.stats.clone())));
    }

    /// Probes every `interval` until cancelled. Slot n starts at `first + n * interval`
    /// whatever the probes take, so start times do not drift; the lateness of each start is
    /// recorded, and slots missed entirely are counted and skipped rather than bunched up.
    pub async fn run(mut self) {
        let cancel = self.handle.cancel.clone();
        let interval = self.stats.target.interval;
        let mut slot = Instant::now() + stagger(&self.stats.target.name, interval);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep_until(slot) => {}
            }
            let now = Instant::now();
            let skipped;
            (slot, skipped) = catch_up(slot, interval, now);
            self.stats.record_lag(now - slot, skipped);
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.probe_once() => {}
            }
            slot += interval;
        }
    }
}

fn log_group_event(group: &str, event: GroupEvent) {
    let none = "none";
    match event {
        GroupEvent::Switched(s) => tracing::warn!(
            group = %group,
            from = s.from.as_deref().unwrap_or(none),
            to = s.to.as_deref().unwrap_or(none),
            from_member = s.from_member.as_deref().unwrap_or(none),
            no_active_seconds = s.no_active_for.map(|d| d.as_secs_f64()),
            cause = %s.cause,
            "active member switched"
        ),
        GroupEvent::LossJudged(s) => {
            let (from, to) = (
                s.from_member.as_deref().unwrap_or(none),
                s.to.as_deref().unwrap_or(none),
            );
            match s.lost_writes {
                Some(Loss::Judged(lost)) if lost.writes > 0 => tracing::error!(
                    group = %group, from = from, to = to,
                    writes = lost.writes, span_seconds = lost.span.as_secs_f64(),
                    "acknowledged writes lost by a failover: the new active member lacks heartbeats the old one had confirmed"
                ),
                Some(Loss::Judged(_)) => tracing::info!(
                    group = %group, from = from, to = to,
                    "no acknowledged write lost: the new active member holds the old one's last heartbeat"
                ),
                Some(Loss::Unknown(why)) => tracing::info!(
                    group = %group, from = from, to = to, why = %why,
                    "writes lost by the switch cannot be told"
                ),
                Some(Loss::Pending) | None => {}
            }
        }
    }
}

/// The slot a probe starting at `now` belongs to: the last one already started, and how
/// many slots after `slot` were missed entirely on the way to it.
fn catch_up(mut slot: Instant, interval: Duration, now: Instant) -> (Instant, u64) {
    let mut skipped = 0;
    while now >= slot + interval {
        slot += interval;
        skipped += 1;
    }
    (slot, skipped)
}

/// Spreads targets' first probes over one interval (by a hash of the name, so the spread
/// is stable across restarts) instead of probing them all at the same instant.
fn stagger(name: &str, interval: Duration) -> Duration {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let nanos = interval.as_nanos().max(1) as u64;
    Duration::from_nanos(hash % nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missed_slots_are_counted_and_skipped_and_starts_stay_on_the_grid() {
        let interval = Duration::from_secs(10);
        let start = Instant::now();
        let slot = |n: u32| start + interval * n;
        let ms = Duration::from_millis;
        // (the slot the run loop sleeps until, when it wakes) -> (the slot it probes for,
        // how many it skipped)
        for (due, now, expected) in [
            // On time, or late within the slot: that slot, nothing skipped.
            (0, slot(0), (slot(0), 0)),
            (0, slot(0) + ms(9_999), (slot(0), 0)),
            // Woken at the very start of the next slot: the due one is missed.
            (0, slot(1), (slot(1), 1)),
            (0, slot(1) + ms(1), (slot(1), 1)),
            // A probe that hung for three and a half intervals.
            (4, slot(7) + ms(5_000), (slot(7), 3)),
            (4, slot(8) - ms(1), (slot(7), 3)),
        ] {
            assert_eq!(
                catch_up(slot(due), interval, now),
                expected,
                "due at slot {due}, woken {:?} after the start",
                now - start
            );
        }
    }
}
