//! Renders metrics from published snapshots: each target's own series when its probe task
//! publishes (`render_target`), the rest at scrape time (`render`). Nothing here touches a
//! database, waits on a lock or a prober: a scrape costs the same whatever the databases do.

#[cfg(test)]
mod classic;
mod migrations;
#[cfg(test)]
mod oracle;
mod process;
mod text;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub use migrations::MigrationScrape;
pub use process::ProcessScrape;
use text::{CounterValue, SeriesLabels, TextWriter};
pub use text::{Format, TargetText};

use crate::config::{ALL_SCOPE, Config, Endpoint, FileStatus, Shard, TargetConfig};
use crate::groups::GroupState;
use crate::labels::Label;
use crate::maintenance::{self, Source, Stored, Window};
use crate::probe::{self, Phase, ProbeReport};
use crate::state::{Histogram, TargetStats};
use crate::time::Timestamp;

pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Version and commit, exported as `dbvigil_build_info` and printed by `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = env!("DBVIGIL_REVISION");

/// Everything one `/metrics` answer shows, captured at once.
#[derive(Debug)]
pub struct Scrape {
    pub targets: Vec<Arc<Published>>,
    pub groups: Vec<Arc<GroupState>>,
    pub reload: ReloadScrape,
    /// Probe tasks running (`Exporter::probe_tasks`).
    pub probe_tasks: usize,
    pub shard: ShardScrape,
    /// Each discovery file's state as of the last refresh.
    pub target_files: Arc<Vec<FileStatus>>,
    pub maintenance: MaintenanceScrape,
    /// Maintenance silences in Alertmanager; `None` without `alertmanager:`.
    pub silences: Option<SilencesScrape>,
    /// Targets with `migrations` configured.
    pub migrations: Vec<MigrationScrape>,
    /// This process's own figures (`process_*`).
    pub process: ProcessScrape,
    pub now: Timestamp,
}

/// Which shard this replica is and what it holds (`--shard.index`, `--shard.count`).
#[derive(Debug, Clone, Copy)]
pub struct ShardScrape {
    pub shard: Shard,
    /// Targets this replica probes.
    pub targets: usize,
    /// Targets in the whole configuration, on every shard.
    pub configured: usize,
}

/// How the last configuration reload went, as the exporter reports it.
#[derive(Debug, Clone, Copy)]
pub struct ReloadScrape {
    pub successful: bool,
    pub last_success_at: Timestamp,
}

/// How the windows' silences in Alertmanager stand, as of the last sync.
#[derive(Debug, Clone, Copy)]
pub struct SilencesScrape {
    /// The last sync put every wanted silence in place.
    pub synced: bool,
    pub last_success_at: Option<Timestamp>,
    pub failures: u64,
    /// Silences the open windows want that Alertmanager holds, and those it does not yet.
    pub in_place: usize,
    pub missing: usize,
}

/// Maintenance windows as this scrape sees them, all from memory.
#[derive(Debug)]
pub struct MaintenanceScrape {
    pub config: Arc<Config>,
    /// Every known window (see `maintenance::all_windows`).
    pub windows: Vec<Window>,
    pub started: Arc<BTreeMap<(String, Source), u64>>,
    pub stored: Arc<Stored>,
    pub now: Timestamp,
}

/// What a probe task publishes after each probe: the stats, and the series of them that a
/// scrape shows, already rendered, so that a scrape only copies them.
#[derive(Debug)]
pub struct Published {
    pub stats: TargetStats,
    pub text: TargetText,
}

impl Published {
    pub fn new(stats: TargetStats) -> Self {
        let text = render_target(&stats);
        Published { stats, text }
    }
}

impl std::ops::Deref for Published {
    type Target = TargetStats;

    fn deref(&self) -> &TargetStats {
        &self.stats
    }
}

/// The exposition in the requested format.
pub fn render(scrape: &Scrape, format: Format) -> String {
    // Sized once, so the buffer never moves while it grows: the targets' rendered series,
    // and room for the rest (descriptors, groups, maintenance, about 1 KiB a target).
    let series: usize = scrape.targets.iter().map(|t| t.text.bytes()).sum();
    let mut w = TextWriter::new(format, 32 * 1024 + series + scrape.targets.len() * 1024);
    scrape
        .write(&mut w)
        .expect("writing to a String does not fail");
    w.finish()
}

/// The metrics of one on-demand probe (`/probe?target=NAME`), and nothing else.
pub fn render_probe(target: &TargetConfig, report: &ProbeReport, format: Format) -> String {
    let mut w = TextWriter::new(format, 4 * 1024);
    ProbeScrape { target, report }
        .write(&mut w)
        .expect("writing to a String does not fail");
    w.finish()
}

fn is_replica(t: &TargetConfig) -> bool {
    matches!(&t.endpoint, Endpoint::Server(s) if s.replica_of.is_some())
}

fn bool_gauge(v: Option<bool>) -> f64 {
    v.map_or(f64::NAN, |b| if b { 1.0 } else { 0.0 })
}

/// `target` plus the target's extra labels, then `extra`.
fn labels<'a>(t: &'a TargetConfig, extra: &[(Label, &'a str)]) -> SeriesLabels<'a> {
    SeriesLabels::new(Some(t), extra)
}

/// Labels of a series that belongs to no target.
fn pairs<'a>(extra: &[(Label, &'a str)]) -> SeriesLabels<'a> {
    SeriesLabels::new(None, extra)
}

/// Where families go: dbvigil's `TextWriter`, or in tests prometheus-client's encoder,
/// which the writer must match byte for byte. `series` yield (labels, value) pairs.
trait Sink {
    fn gauge<'a>(
        &mut self,
        name: &'static str,
        help: &'static str,
        series: impl IntoIterator<Item = (SeriesLabels<'a>, f64)>,
    ) -> std::fmt::Result;

    /// A gauge with no labels at all.
    fn single(&mut self, name: &'static str, help: &'static str, value: f64) -> std::fmt::Result;

    /// A counter with no labels at all; `name` without `_total`.
    fn single_counter(
        &mut self,
        name: &'static str,
        help: &'static str,
        value: CounterValue,
    ) -> std::fmt::Result;

    /// `name` without `_total`: the writer appends it. Values are counts (`u64`) or
    /// fractional seconds (`f64`).
    fn counter<'a, V: Into<CounterValue>>(
        &mut self,
        name: &'static str,
        help: &'static str,
        series: impl IntoIterator<Item = (SeriesLabels<'a>, V)>,
    ) -> std::fmt::Result;

    fn histogram<'a, 'h>(
        &mut self,
        name: &'static str,
        help: &'static str,
        series: impl IntoIterator<Item = (SeriesLabels<'a>, &'h Histogram)>,
    ) -> std::fmt::Result;

    /// The families that depend only on each target's snapshot, series by series. The
    /// `TextWriter` copies what each probe task rendered when it published instead.
    fn target_families(&mut self, targets: &[Arc<Published>]) -> std::fmt::Result
    where
        Self: Sized,
    {
        let stats: Vec<&TargetStats> = targets.iter().map(|t| &t.stats).collect();
        write_target_families(&stats, self)
    }
}

impl Sink for TextWriter {
    fn gauge<'a>(
        &mut self,
        name: &'static str,
        help: &'static str,
        series: impl IntoIterator<Item = (SeriesLabels<'a>, f64)>,
    ) -> std::fmt::Result {
        self.open_family(name, help, "gauge");
        for (l, v) in series {
            self.gauge_line(name, Some(&l), v);
        }
        self.close_family();
        Ok(())
    }

    fn single(&mut self, name: &'static str, help: &'static str, value: f64) -> std::fmt::Result {
        self.open_family(name, help, "gauge");
        self.gauge_line(name, None, value);
        self.close_family();
        Ok(())
    }

    fn single_counter(
        &mut self,
        name: &'static str,
        help: &'static str,
        value: CounterValue,
    ) -> std::fmt::Result {
        self.open_family(name, help, "counter");
        self.counter_line(name, None, value);
        self.close_family();
        Ok(())
    }

    fn counter<'a, V: Into<CounterValue>>(
        &mut self,
        name: &'static str,
        help: &'static str,
        series: impl IntoIterator<Item = (SeriesLabels<'a>, V)>,
    ) -> std::fmt::Result {
        self.open_family(name, help, "counter");
        for (l, v) in series {
            self.counter_line(name, Some(&l), v.into());
        }
        self.close_family();
        Ok(())
    }

    fn histogram<'a, 'h>(
        &mut self,
        name: &'static str,
        help: &'static str,
        series: impl IntoIterator<Item = (SeriesLabels<'a>, &'h Histogram)>,
    ) -> std::fmt::Result {
        self.open_family(name, help, "histogram");
        for (l, h) in series {
            self.histogram_lines(name, &l, h.sum, h.bounds(), h.counts());
        }
        self.close_family();
        Ok(())
    }

    fn target_families(&mut self, targets: &[Arc<Published>]) -> std::fmt::Result {
        let texts: Vec<&TargetText> = targets.iter().map(|t| &t.text).collect();
        if !self.join(&texts) {
            // No targets: the descriptors alone, as the series-by-series path writes them.
            write_target_families(&[], self)?;
        }
        Ok(())
    }
}

/// A target's `TargetText`: its families that depend only on its snapshot.
pub fn render_target(stats: &TargetStats) -> TargetText {
    let mut w = TextWriter::for_target();
    write_target_families(&[stats], &mut w).expect("writing to a String does not fail");
    w.into_target_text()
}

impl Scrape {
    fn write(&self, f: &mut impl Sink) -> std::fmt::Result {
        let ts = &self.targets;
        let now = self.now;
        f.gauge(
            "dbvigil_build_info",
            "Build of this exporter (value 1).",
            [(
                pairs(&[(Label::Version, VERSION), (Label::Revision, REVISION)]),
                1.0,
            )],
        )?;
        f.single(
            "dbvigil_config_last_reload_successful",
            "Whether the last configuration reload succeeded (1) or failed and the previous configuration is still running (0).",
            if self.reload.successful { 1.0 } else { 0.0 },
        )?;
        f.single(
            "dbvigil_config_last_reload_success_timestamp_seconds",
            "Time of the last successful configuration load.",
            self.reload.last_success_at.as_secs_f64(),
        )?;
        f.single(
            "dbvigil_probe_tasks",
            "Target probe tasks running now: one per configured target, plus any that a reload stopped and that has not ended yet.",
            self.probe_tasks as f64,
        )?;
        // Two plain gauges rather than an info series with `index` and `count` labels:
        // they need no label names of their own, which targets' labels could clash with.
        f.single(
            "dbvigil_shard_index",
            "This replica's shard (--shard.index), from 0.",
            f64::from(self.shard.shard.index),
        )?;
        f.single(
            "dbvigil_shard_count",
            "Shards the configuration's targets are split into (--shard.count); 1 when this replica probes them all.",
            f64::from(self.shard.shard.count),
        )?;
        f.single(
            "dbvigil_shard_targets",
            "Targets this replica probes: its shard of the configuration.",
            self.shard.targets as f64,
        )?;
        f.single(
            "dbvigil_configured_targets",
            "Targets in the whole configuration, discovered ones included, on every shard.",
            self.shard.configured as f64,
        )?;
        f.gauge(
            "dbvigil_target_file_valid",
            "Whether a discovery file's last read parsed and all its target names were free (1), or not (0): its previous targets are kept, and the log says why with file:line:column.",
            self.target_files
                .iter()
                .map(|s| (pairs(&[(Label::File, s.file.as_str())]), f64::from(u8::from(s.valid)))),
        )?;
        f.gauge(
            "dbvigil_target_file_targets",
            "Targets a discovery file contributes now, on every shard; those of its last good read while it is invalid.",
            self.target_files
                .iter()
                .map(|s| (pairs(&[(Label::File, s.file.as_str())]), s.targets as f64)),
        )?;
        f.target_families(ts)?;
        f.gauge(
            "dbvigil_current_outage_duration_seconds",
            "How long the outage in progress has lasted so far; 0 while the target is up.",
            ts.iter().map(|s| {
                let d = s
                    .current_outage
                    .as_ref()
                    .map_or(0.0, |e| e.duration(now).as_secs_f64());
                (labels(&s.target, &[]), d)
            }),
        )?;
        self.write_groups(f)?;
        self.write_maintenance(f)?;
        self.write_silences(f)?;
        self.write_migrations(f)?;
        self.process.write(f)
    }
}

/// The families that depend on nothing but each target's snapshot (not on the time of
/// the scrape), written family by family for `ts`.
fn write_target_families(ts: &[&TargetStats], f: &mut impl Sink) -> std::fmt::Result {
    f.gauge(
        "dbvigil_target_info",
        "Configured targets (value 1) with their kind and role.",
        ts.iter().map(|s| {
            (
                labels(
                    &s.target,
                    &[
                        (Label::Kind, s.target.kind.as_str()),
                        (Label::Role, s.target.role.as_str()),
                    ],
                ),
                1.0,
            )
        }),
    )?;
    f.gauge(
        "dbvigil_probe_interval_seconds",
        "Configured probe interval. dbvigil probes continuously, not at scrape time, so that outages shorter than a scrape interval are still counted.",
        ts.iter().map(|s| (labels(&s.target, &[]), s.target.interval.as_secs_f64())),
    )?;
    f.gauge(
        "dbvigil_probe_timeout_seconds",
        "Configured probe timeout; every phase of a probe ends within it.",
        ts.iter()
            .map(|s| (labels(&s.target, &[]), s.target.timeout.as_secs_f64())),
    )?;
    f.gauge(
        "dbvigil_up",
        "Whether the target is up (1) or down (0): every configured check of the last probe succeeded, debounced by failure_threshold. NaN before the first probe.",
        ts.iter().map(|s| (labels(&s.target, &[]), bool_gauge(s.up))),
    )?;
    f.gauge(
        "dbvigil_check_success",
        "Whether each configured check succeeded in the last probe. NaN before the first probe.",
        ts.iter().flat_map(|s| {
            s.target.checks.iter().map(move |&c| {
                let ok = s
                    .last
                    .as_ref()
                    .map(|l| l.checks.iter().any(|&(k, ok)| k == c && ok));
                (
                    labels(&s.target, &[(Label::Check, c.as_str())]),
                    bool_gauge(ok),
                )
            })
        }),
    )?;
    f.gauge(
        "dbvigil_read_only",
        "Whether the database was read-only (1) or writable (0) at the last probe; NaN when that probe could not tell.",
        ts.iter().map(|s| (labels(&s.target, &[]), bool_gauge(s.read_only))),
    )?;
    f.gauge(
        "dbvigil_replication_lag_seconds",
        "On a replica (replica_of), the age of the primary's heartbeat row as read on the replica. NaN while unknown.",
        ts.iter().filter(|s| is_replica(&s.target)).map(|s| {
            (labels(&s.target, &[]), s.replication_lag.map_or(f64::NAN, |d| d.as_secs_f64()))
        }),
    )?;
    f.gauge(
        "dbvigil_last_probe_timestamp_seconds",
        "Start time of the last probe; a stale value means the exporter is not probing this target. NaN before the first probe.",
        ts.iter().map(|s| (labels(&s.target, &[]), s.last.as_ref().map_or(f64::NAN, |l| l.at.as_secs_f64()))),
    )?;
    f.gauge(
        "dbvigil_last_probe_duration_seconds",
        "How long the last probe took, all phases together. NaN before the first probe.",
        ts.iter().map(|s| {
            (
                labels(&s.target, &[]),
                s.last
                    .as_ref()
                    .map_or(f64::NAN, |l| l.duration.as_secs_f64()),
            )
        }),
    )?;
    f.gauge(
        "dbvigil_last_success_timestamp_seconds",
        "End time of the last successful probe. NaN if none has succeeded yet.",
        ts.iter().map(|s| {
            (
                labels(&s.target, &[]),
                s.last_success_at.map_or(f64::NAN, Timestamp::as_secs_f64),
            )
        }),
    )?;
    f.gauge(
        "dbvigil_consecutive_failures",
        "Failed probes in a row, 0 after a success.",
        ts.iter()
            .map(|s| (labels(&s.target, &[]), f64::from(s.consecutive_failures))),
    )?;
    f.counter(
        "dbvigil_probes",
        "Probes run, successful or not.",
        ts.iter().map(|s| (labels(&s.target, &[]), s.probes)),
    )?;
    f.counter(
        "dbvigil_probe_failures",
        "Failed probes by the reason of their first failed check.",
        ts.iter().flat_map(|s| {
            probe::reasons(&s.target).iter().map(move |r| {
                (
                    labels(&s.target, &[(Label::Reason, r.as_str())]),
                    s.failures[r.index()],
                )
            })
        }),
    )?;
    f.histogram(
        "dbvigil_phase_duration_seconds",
        "Duration of each probe phase that ran (tcp, connect, read, write, read_only, identity).",
        ts.iter().flat_map(|s| {
            probe::phases(&s.target).iter().map(move |p: &Phase| {
                (
                    labels(&s.target, &[(Label::Phase, p.as_str())]),
                    &s.phase_durations[p.index()],
                )
            })
        }),
    )?;
    f.gauge(
        "dbvigil_server_info",
        "Who answered the last probe that reached the database (value 1): version and an identity that changes on switchover or failover. Absent until the first connection.",
        ts.iter().filter_map(|s| {
            s.identity.as_ref().map(|i| {
                (labels(&s.target, &[(Label::Version, &i.version), (Label::Identity, &i.key)]), 1.0)
            })
        }),
    )?;
    f.counter(
        "dbvigil_identity_changes",
        "Changes of server identity between two probes that reached the database: switchovers, failovers, a replaced file.",
        ts.iter().map(|s| (labels(&s.target, &[]), s.identity_changes)),
    )?;
    f.counter(
        "dbvigil_outages",
        "Outage episodes started: from the first failed probe (once failure_threshold is reached) to the first successful one.",
        ts.iter().map(|s| (labels(&s.target, &[]), s.outages)),
    )?;
    f.counter(
        "dbvigil_writes_lost",
        "Acknowledged heartbeat writes that a later read no longer found: a failover to a standby that had not received them, a restore, a rollback. A lower bound of what applications lost.",
        ts.iter().map(|s| (labels(&s.target, &[]), s.writes_lost)),
    )?;
    f.gauge(
        "dbvigil_last_write_loss_seconds",
        "Time the last loss of acknowledged writes spans: from the surviving heartbeat to the last acknowledged one; 0 if none.",
        ts.iter().map(|s| {
            (
                labels(&s.target, &[]),
                s.last_write_loss.map_or(0.0, |l| l.span.as_secs_f64()),
            )
        }),
    )?;
    f.counter(
        "dbvigil_check_outages",
        "Periods each configured check failed, started: from the first probe where it failed to the first where it succeeded, with no failure_threshold, so write and read downtime are told apart.",
        ts.iter().flat_map(|s| {
            s.check_downtime.iter().map(move |(c, p)| {
                (labels(&s.target, &[(Label::Check, c.as_str())]), p.started)
            })
        }),
    )?;
    f.counter(
        "dbvigil_check_down_seconds",
        "Seconds each configured check failed, summed over its failure periods up to the last probe; 1 - increase(this[d]) / d is the check's availability over d, exact to an interval even for outages shorter than a scrape.",
        ts.iter().flat_map(|s| {
            s.check_downtime.iter().map(move |(c, p)| {
                (
                    labels(&s.target, &[(Label::Check, c.as_str())]),
                    p.total.as_secs_f64(),
                )
            })
        }),
    )?;
    f.gauge(
        "dbvigil_check_last_outage_duration_seconds",
        "Duration of each check's last finished failure period; 0 if there was none.",
        ts.iter().flat_map(|s| {
            s.check_downtime.iter().map(move |(c, p)| {
                (
                    labels(&s.target, &[(Label::Check, c.as_str())]),
                    p.last.map_or(0.0, |d| d.as_secs_f64()),
                )
            })
        }),
    )?;
    f.counter(
        "dbvigil_read_only_periods",
        "Periods the database said it was read-only, started: from the first probe that found it read-only to the first that found it writable.",
        ts.iter().map(|s| (labels(&s.target, &[]), s.read_only_periods.started)),
    )?;
    f.gauge(
        "dbvigil_last_read_only_duration_seconds",
        "Duration of the last finished read-only period; 0 if there was none.",
        ts.iter().map(|s| {
            (
                labels(&s.target, &[]),
                s.read_only_periods.last.map_or(0.0, |d| d.as_secs_f64()),
            )
        }),
    )?;
    f.histogram(
        "dbvigil_outage_duration_seconds",
        "Durations of finished outage episodes.",
        ts.iter()
            .map(|s| (labels(&s.target, &[]), &s.outage_durations)),
    )?;
    f.gauge(
        "dbvigil_last_outage_duration_seconds",
        "Duration of the last finished outage episode; 0 if there was none.",
        ts.iter().map(|s| {
            (
                labels(&s.target, &[]),
                s.last_outage.map_or(0.0, |d| d.as_secs_f64()),
            )
        }),
    )?;
    f.histogram(
        "dbvigil_probe_scheduling_lag_seconds",
        "How late each probe started against its fixed schedule.",
        ts.iter()
            .map(|s| (labels(&s.target, &[]), &s.scheduling_lag)),
    )?;
    f.counter(
        "dbvigil_probe_skipped_slots",
        "Probe slots skipped because the previous probe overran its slot.",
        ts.iter().map(|s| (labels(&s.target, &[]), s.skipped_slots)),
    )
}

/// What each configured name is: `target` or `group`.
type ScopeKinds<'a> = HashMap<&'a str, Label>;

fn scope_kinds(config: &Config) -> ScopeKinds<'_> {
    let targets = config
        .targets
        .iter()
        .map(|t| (t.name.as_str(), Label::Target));
    let groups = config
        .groups
        .iter()
        .map(|g| (g.name.as_str(), Label::Group));
    targets.chain(groups).collect()
}

/// `scope`, plus `target` or `group` naming the same thing, so that alert rules can say
/// `unless on(target) dbvigil_maintenance_active == 1`.
fn scope_labels<'a>(kinds: &ScopeKinds<'_>, scope: &'a str) -> SeriesLabels<'a> {
    match kinds.get(scope) {
        Some(kind) => pairs(&[(Label::Scope, scope), (*kind, scope)]),
        None => pairs(&[(Label::Scope, scope)]),
    }
}

impl Scrape {
    fn write_silences(&self, f: &mut impl Sink) -> std::fmt::Result {
        let Some(s) = &self.silences else {
            return Ok(());
        };
        f.single(
            "dbvigil_alertmanager_sync_success",
            "Whether the last sync with Alertmanager put every silence the open maintenance windows want in place (1), or failed (0): see the log and the windows' API answer.",
            f64::from(u8::from(s.synced)),
        )?;
        f.single(
            "dbvigil_alertmanager_last_sync_success_timestamp_seconds",
            "When a sync with Alertmanager last succeeded, in seconds since the epoch; 0 before the first.",
            s.last_success_at.map_or(0.0, Timestamp::as_secs_f64),
        )?;
        f.counter(
            "dbvigil_alertmanager_sync_failures",
            "Syncs with Alertmanager that failed (unreachable, refused, or a silence not created) since dbvigil started.",
            [(pairs(&[]), CounterValue::Count(s.failures))],
        )?;
        // Two plain gauges, not one with a `state` label that targets' labels could clash with.
        f.single(
            "dbvigil_alertmanager_silences_in_place",
            "Silences the open maintenance windows want that Alertmanager holds.",
            s.in_place as f64,
        )?;
        f.single(
            "dbvigil_alertmanager_silences_missing",
            "Silences the open maintenance windows want that Alertmanager does not hold yet (it was unreachable or refused them).",
            s.missing as f64,
        )
    }

    fn write_maintenance(&self, f: &mut impl Sink) -> std::fmt::Result {
        let m = &self.maintenance;
        let config = &m.config;
        let scopes: Vec<&str> = config
            .targets
            .iter()
            .map(|t| t.name.as_str())
            .chain(config.groups.iter().map(|g| g.name.as_str()))
            .chain([ALL_SCOPE])
            .collect();
        let kinds = scope_kinds(config);
        let coverage: Vec<(&str, maintenance::Coverage<'_>)> = scopes
            .iter()
            .map(|s| (*s, maintenance::coverage(config, &m.windows, s, m.now)))
            .collect();
        f.gauge(
            "dbvigil_maintenance_active",
            "1 while a maintenance window covers the scope (its own, its groups' or \"*\"), else 0. Target scopes also carry `target`, group scopes `group`.",
            coverage.iter().map(|(s, c)| {
                (scope_labels(&kinds, s), if c.active() { 1.0 } else { 0.0 })
            }),
        )?;
        f.gauge(
            "dbvigil_maintenance_windows_active",
            "Maintenance windows covering the scope now, by where they come from: api, schedule (configuration) or app (the application's own flag).",
            coverage.iter().flat_map(|(s, c)| {
                let kinds = &kinds;
                Source::ALL.iter().map(move |source| {
                    let l = scope_labels(kinds, s).with(Label::Source, source.as_str());
                    let n = c.windows.iter().filter(|w| w.source == *source).count();
                    (l, n as f64)
                })
            }),
        )?;
        f.gauge(
            "dbvigil_maintenance_end_timestamp_seconds",
            "Planned end of the maintenance covering the scope (the latest planned end among the covering windows). Absent when no window with a planned end covers it.",
            coverage.iter().filter_map(|(s, c)| {
                c.planned_end
                    .map(|end| (scope_labels(&kinds, s), end.as_secs_f64()))
            }),
        )?;
        f.counter(
            "dbvigil_maintenance_windows_started",
            "Maintenance windows that started while this exporter ran (those already active when it started count once), by the window's own scope and source.",
            scopes
                .iter()
                .flat_map(|s| Source::ALL.iter().map(move |source| (*s, *source)))
                .chain(m.started.keys().map(|(s, source)| (s.as_str(), *source)))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .map(|(s, source)| {
                    let l = scope_labels(&kinds, s).with(Label::Source, source.as_str());
                    let n = m
                        .started
                        .get(&(s.to_owned(), source))
                        .copied()
                        .unwrap_or(0);
                    (l, n)
                }),
        )?;
        let flagged: Vec<&Arc<Published>> = self
            .targets
            .iter()
            .filter(|t| t.target.maintenance_query.is_some())
            .collect();
        f.gauge(
            "dbvigil_maintenance_app_flag",
            "The application's own maintenance flag as last read by maintenance_query (1 on, 0 off); NaN before the first read.",
            flagged.iter().map(|t| {
                (
                    labels(&t.target, &[]),
                    bool_gauge(t.app_flag.as_ref().map(|a| a.on)),
                )
            }),
        )?;
        f.gauge(
            "dbvigil_maintenance_app_flag_read_error",
            "1 when the last maintenance_query failed (the flag keeps its last value), else 0.",
            flagged.iter().map(|t| {
                let failed = t.app_flag.as_ref().is_some_and(|a| a.error.is_some());
                (labels(&t.target, &[]), if failed { 1.0 } else { 0.0 })
            }),
        )?;
        f.single(
            "dbvigil_maintenance_store_up",
            "Whether the last read of the maintenance state store succeeded (1) or failed (0: windows are the last ones read, and changes are refused).",
            if m.stored.error.is_none() && m.stored.refreshed_at.is_some() {
                1.0
            } else {
                0.0
            },
        )?;
        f.single(
            "dbvigil_maintenance_store_last_refresh_timestamp_seconds",
            "Time of the last successful read of the maintenance state store; 0 before the first.",
            m.stored.refreshed_at.map_or(0.0, Timestamp::as_secs_f64),
        )
    }
}

fn group_labels<'a>(g: &'a GroupState, member: Option<&'a str>) -> SeriesLabels<'a> {
    let l = pairs(&[(Label::Group, g.config.name.as_str())]);
    match member {
        Some(m) => l.with(Label::Member, m),
        None => l,
    }
}

impl Scrape {
    fn write_groups(&self, f: &mut impl Sink) -> std::fmt::Result {
        let gs = &self.groups;
        f.gauge(
            "dbvigil_group_active_member",
            "1 for the member of each failover group that is active, 0 for the others.",
            gs.iter().flat_map(|g| {
                g.members.iter().enumerate().map(move |(i, m)| {
                    (
                        group_labels(g, Some(&m.name)),
                        if g.active == Some(i) { 1.0 } else { 0.0 },
                    )
                })
            }),
        )?;
        f.gauge(
            "dbvigil_group_member_eligible",
            "Whether each member meets the group's eligibility, after hysteresis. NaN until it settles (a first success, or fail_after failures).",
            gs.iter().flat_map(|g| {
                g.members.iter().map(move |m| {
                    let v = if !m.settled { f64::NAN } else if m.eligible { 1.0 } else { 0.0 };
                    (group_labels(g, Some(&m.name)), v)
                })
            }),
        )?;
        f.gauge(
            "dbvigil_group_eligible_members",
            "Members of each group that are eligible now.",
            gs.iter()
                .map(|g| (group_labels(g, None), g.eligible_count() as f64)),
        )?;
        f.gauge(
            "dbvigil_group_no_eligible_member",
            "1 when a group has no eligible member (applications get 503 from /groups/NAME/active), else 0.",
            gs.iter().map(|g| {
                let none = g.decided && g.active.is_none();
                (group_labels(g, None), if none { 1.0 } else { 0.0 })
            }),
        )?;
        f.counter(
            "dbvigil_group_switches",
            "Changes of a group's active member, including to and from no member.",
            gs.iter().map(|g| (group_labels(g, None), g.switches)),
        )?;
        f.gauge(
            "dbvigil_group_last_switch_timestamp_seconds",
            "Time of a group's last switch; NaN if it never switched.",
            gs.iter().map(|g| {
                (
                    group_labels(g, None),
                    g.last_switch_at.map_or(f64::NAN, Timestamp::as_secs_f64),
                )
            }),
        )?;
        f.counter(
            "dbvigil_group_no_active_periods",
            "Periods with no active member (no member eligible), from a group's first decision on.",
            gs.iter()
                .map(|g| (group_labels(g, None), g.no_active.started)),
        )?;
        f.gauge(
            "dbvigil_group_last_no_active_duration_seconds",
            "Duration of a group's last finished period with no active member; 0 if none.",
            gs.iter().map(|g| {
                (
                    group_labels(g, None),
                    g.no_active.last.map_or(0.0, |d| d.as_secs_f64()),
                )
            }),
        )?;
        f.counter(
            "dbvigil_group_writes_lost",
            "Heartbeats the old active member acknowledged that the new one lacked when it took over (needs the new member's replica_of the old); a lower bound of the writes a failover lost.",
            gs.iter().map(|g| (group_labels(g, None), g.writes_lost)),
        )?;
        Ok(())
    }
}

struct ProbeScrape<'a> {
    target: &'a TargetConfig,
    report: &'a ProbeReport,
}

impl ProbeScrape<'_> {
    fn write(&self, f: &mut impl Sink) -> std::fmt::Result {
        let t = self.target;
        let r = self.report;
        f.gauge(
            "dbvigil_probe_success",
            "Whether this probe did what the target's role needs: every configured check, but the write on a read-only server whose role allows standing by.",
            [(labels(t, &[]), if r.success(&t.required_checks(r.read_only)) { 1.0 } else { 0.0 })],
        )?;
        f.gauge(
            "dbvigil_probe_duration_seconds",
            "How long this probe took, all phases together.",
            [(labels(t, &[]), r.duration.as_secs_f64())],
        )?;
        f.gauge(
            "dbvigil_probe_phase_duration_seconds",
            "Duration of each phase of this probe that ran.",
            r.phases.iter().map(|p| {
                (
                    labels(t, &[(Label::Phase, p.phase.as_str())]),
                    p.duration.as_secs_f64(),
                )
            }),
        )?;
        f.gauge(
            "dbvigil_probe_check_success",
            "Whether each configured check of this probe succeeded.",
            r.check_results(&t.checks).map(|(c, ok)| {
                (
                    labels(t, &[(Label::Check, c.as_str())]),
                    if ok { 1.0 } else { 0.0 },
                )
            }),
        )?;
        f.gauge(
            "dbvigil_probe_failure_info",
            "Why this probe failed (value 1); absent when it succeeded.",
            r.failure(&t.required_checks(r.read_only))
                .map(|fl| (labels(t, &[(Label::Reason, fl.reason.as_str())]), 1.0)),
        )?;
        f.gauge(
            "dbvigil_probe_read_only",
            "Whether the database was read-only during this probe; absent when unknown.",
            r.read_only
                .map(|ro| (labels(t, &[]), if ro { 1.0 } else { 0.0 })),
        )?;
        f.gauge(
            "dbvigil_probe_server_info",
            "Who answered this probe (value 1); absent when it did not reach the database.",
            r.identity.as_ref().map(|i| {
                (
                    labels(
                        t,
                        &[(Label::Version, &i.version), (Label::Identity, &i.key)],
                    ),
                    1.0,
                )
            }),
        )?;
        Ok(())
    }
}
