//! Renders metrics from published snapshots at scrape time. Nothing here touches a
//! database, waits on a lock or a prober: a scrape costs the same whatever the databases do.

mod classic;

use std::sync::Arc;
use std::time::SystemTime;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

pub use classic::openmetrics_to_classic;

use crate::config::{Endpoint, TargetConfig};
use crate::exporter::ReloadStatus;
use crate::groups::GroupState;
use crate::probe::{self, Phase, ProbeReport, Reason};
use crate::state::{Histogram, TargetStats};

pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Version and commit, exported as `dbvigil_build_info` and printed by `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = env!("DBVIGIL_REVISION");

type Labels = Vec<(String, String)>;

/// Everything one `/metrics` answer shows, captured at once.
#[derive(Debug)]
pub struct Scrape {
    pub targets: Vec<Arc<TargetStats>>,
    pub groups: Vec<Arc<GroupState>>,
    pub reload: Arc<ReloadStatus>,
    pub now: SystemTime,
}

/// The exposition in OpenMetrics text.
pub fn render(scrape: Scrape) -> String {
    encode(scrape)
}

/// The metrics of one on-demand probe (`/probe?target=NAME`), and nothing else.
pub fn render_probe(target: &TargetConfig, report: &ProbeReport) -> String {
    encode(ProbeScrape {
        target: target.clone(),
        report: report.clone(),
    })
}

fn encode(collector: impl Collector) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector));
    let mut out = String::with_capacity(16 * 1024);
    prometheus_client::encoding::text::encode(&mut out, &registry)
        .expect("writing to a String does not fail");
    out
}

fn is_replica(t: &TargetConfig) -> bool {
    matches!(&t.endpoint, Endpoint::Server(s) if s.replica_of.is_some())
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn bool_gauge(v: Option<bool>) -> f64 {
    v.map_or(f64::NAN, |b| if b { 1.0 } else { 0.0 })
}

/// `target` plus the target's extra labels, then `extra`.
fn labels(t: &TargetConfig, extra: &[(&str, &str)]) -> Labels {
    let mut l = Vec::with_capacity(1 + t.labels.len() + extra.len());
    l.push(("target".to_owned(), t.name.clone()));
    l.extend(t.labels.iter().cloned());
    l.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    l
}

/// Writes one family; `series` yields (labels, value) pairs.
struct Family<'e, 'w> {
    enc: &'e mut DescriptorEncoder<'w>,
}

impl Family<'_, '_> {
    fn gauge(
        &mut self,
        name: &str,
        help: &str,
        series: impl IntoIterator<Item = (Labels, f64)>,
    ) -> std::fmt::Result {
        let mut m = self
            .enc
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (l, v) in series {
            m.encode_family(&l)?.encode_gauge(&v)?;
        }
        Ok(())
    }

    /// A gauge with no labels at all.
    fn single(&mut self, name: &str, help: &str, value: f64) -> std::fmt::Result {
        self.enc
            .encode_descriptor(name, help, None, MetricType::Gauge)?
            .encode_gauge(&value)
    }

    /// `name` without `_total`: the encoder appends it.
    fn counter(
        &mut self,
        name: &str,
        help: &str,
        series: impl IntoIterator<Item = (Labels, u64)>,
    ) -> std::fmt::Result {
        let mut m = self
            .enc
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        for (l, v) in series {
            m.encode_family(&l)?
                .encode_counter::<NoLabelSet, _, f64>(&v, None)?;
        }
        Ok(())
    }

    fn histogram<'h>(
        &mut self,
        name: &str,
        help: &str,
        series: impl IntoIterator<Item = (Labels, &'h Histogram)>,
    ) -> std::fmt::Result {
        let mut m = self
            .enc
            .encode_descriptor(name, help, None, MetricType::Histogram)?;
        for (l, h) in series {
            m.encode_family(&l)?.encode_histogram::<NoLabelSet>(
                h.sum,
                h.count,
                &h.buckets(),
                None,
            )?;
        }
        Ok(())
    }
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let ts = &self.targets;
        let now = self.now;
        let mut f = Family { enc: &mut enc };
        f.gauge(
            "dbvigil_build_info",
            "Build of this exporter (value 1).",
            [(
                vec![
                    ("version".into(), VERSION.into()),
                    ("revision".into(), REVISION.into()),
                ],
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
            secs(self.reload.last_success_at),
        )?;
        f.gauge(
            "dbvigil_target_info",
            "Configured targets (value 1) with their kind.",
            ts.iter()
                .map(|s| (labels(&s.target, &[("kind", s.target.kind.as_str())]), 1.0)),
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
                    let ok = s.last.as_ref().map(|l| l.checks.iter().any(|&(k, ok)| k == c && ok));
                    (labels(&s.target, &[("check", c.as_str())]), bool_gauge(ok))
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
            ts.iter().map(|s| (labels(&s.target, &[]), s.last.as_ref().map_or(f64::NAN, |l| secs(l.at)))),
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
                    s.last_success_at.map_or(f64::NAN, secs),
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
                Reason::ALL.iter().map(move |r| {
                    (
                        labels(&s.target, &[("reason", r.as_str())]),
                        s.failures[r.index()],
                    )
                })
            }),
        )?;
        f.histogram(
            "dbvigil_phase_duration_seconds",
            "Duration of each probe phase that ran (tcp, connect, read, write, read_only, identity).",
            ts.iter().flat_map(|s| {
                probe::phases(s.target.kind).iter().map(move |p: &Phase| {
                    (labels(&s.target, &[("phase", p.as_str())]), &s.phase_durations[p.index()])
                })
            }),
        )?;
        f.gauge(
            "dbvigil_server_info",
            "Who answered the last probe that reached the database (value 1): version and an identity that changes on switchover or failover. Absent until the first connection.",
            ts.iter().filter_map(|s| {
                s.identity.as_ref().map(|i| {
                    (labels(&s.target, &[("version", &i.version), ("identity", &i.key)]), 1.0)
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
        f.histogram(
            "dbvigil_outage_duration_seconds",
            "Durations of finished outage episodes.",
            ts.iter()
                .map(|s| (labels(&s.target, &[]), &s.outage_durations)),
        )?;
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
        )?;
        self.encode_groups(&mut f)
    }
}

fn group_labels(g: &GroupState, member: Option<&str>) -> Labels {
    let mut l = vec![("group".to_owned(), g.config.name.clone())];
    if let Some(m) = member {
        l.push(("member".to_owned(), m.to_owned()));
    }
    l
}

impl Scrape {
    fn encode_groups(&self, f: &mut Family<'_, '_>) -> std::fmt::Result {
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
                    g.last_switch_at.map_or(f64::NAN, secs),
                )
            }),
        )?;
        Ok(())
    }
}

#[derive(Debug)]
struct ProbeScrape {
    target: TargetConfig,
    report: ProbeReport,
}

impl Collector for ProbeScrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let t = &self.target;
        let r = &self.report;
        let mut f = Family { enc: &mut enc };
        f.gauge(
            "dbvigil_probe_success",
            "Whether every configured check of this probe succeeded.",
            [(labels(t, &[]), if r.success(&t.checks) { 1.0 } else { 0.0 })],
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
                    labels(t, &[("phase", p.phase.as_str())]),
                    p.duration.as_secs_f64(),
                )
            }),
        )?;
        f.gauge(
            "dbvigil_probe_check_success",
            "Whether each configured check of this probe succeeded.",
            r.check_results(&t.checks).map(|(c, ok)| {
                (
                    labels(t, &[("check", c.as_str())]),
                    if ok { 1.0 } else { 0.0 },
                )
            }),
        )?;
        f.gauge(
            "dbvigil_probe_failure_info",
            "Why this probe failed (value 1); absent when it succeeded.",
            r.failure(&t.checks)
                .map(|fl| (labels(t, &[("reason", fl.reason.as_str())]), 1.0)),
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
                    labels(t, &[("version", &i.version), ("identity", &i.key)]),
                    1.0,
                )
            }),
        )?;
        Ok(())
    }
}
