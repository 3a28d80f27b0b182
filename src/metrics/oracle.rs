//! prometheus-client as the reference: every family rendered through its encoder and
//! through dbvigil's `TextWriter` must come out byte for byte the same, in both formats.

use std::sync::Arc;
use std::time::Duration;

use crate::time::Timestamp;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, LabelSetEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::classic::openmetrics_to_classic;
use super::*;
use crate::config::GroupConfig;
use crate::maintenance::{Source, Stored, Window};
use crate::migrate::history::{LastRun, LockHeld, ToolRead, ToolState};
use crate::migrate::schema_history::Row;
use crate::migrate::watch::{self, MigrationSnapshot};
use crate::probe::{Failure, Identity, PhaseOutcome, ProbeReport, Reason};

impl EncodeLabelSet for SeriesLabels<'_> {
    fn encode(&self, enc: &mut LabelSetEncoder) -> std::fmt::Result {
        if let Some(t) = self.target {
            ("target", t.name.as_str()).encode(enc.encode_label())?;
            for (k, v) in &t.labels {
                (k.as_str(), v.as_str()).encode(enc.encode_label())?;
            }
        }
        for (k, v) in self.pairs() {
            (k.as_str(), *v).encode(enc.encode_label())?;
        }
        Ok(())
    }
}

struct ClientSink<'e, 'w> {
    enc: &'e mut DescriptorEncoder<'w>,
}

impl Sink for ClientSink<'_, '_> {
    fn gauge<'a>(
        &mut self,
        name: &str,
        help: &str,
        series: impl IntoIterator<Item = (SeriesLabels<'a>, f64)>,
    ) -> std::fmt::Result {
        let mut m = self
            .enc
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (l, v) in series {
            m.encode_family(&l)?.encode_gauge(&v)?;
        }
        Ok(())
    }

    fn single(&mut self, name: &str, help: &str, value: f64) -> std::fmt::Result {
        self.enc
            .encode_descriptor(name, help, None, MetricType::Gauge)?
            .encode_gauge(&value)
    }

    fn single_counter(&mut self, name: &str, help: &str, value: CounterValue) -> std::fmt::Result {
        let mut m = self
            .enc
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        match value {
            CounterValue::Count(n) => m.encode_counter::<NoLabelSet, _, f64>(&n, None),
            CounterValue::Seconds(s) => m.encode_counter::<NoLabelSet, _, f64>(&s, None),
        }
    }

    fn counter<'a, V: Into<CounterValue>>(
        &mut self,
        name: &str,
        help: &str,
        series: impl IntoIterator<Item = (SeriesLabels<'a>, V)>,
    ) -> std::fmt::Result {
        let mut m = self
            .enc
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        for (l, v) in series {
            let mut family = m.encode_family(&l)?;
            match v.into() {
                CounterValue::Count(n) => family.encode_counter::<NoLabelSet, _, f64>(&n, None)?,
                CounterValue::Seconds(s) => {
                    family.encode_counter::<NoLabelSet, _, f64>(&s, None)?
                }
            }
        }
        Ok(())
    }

    fn histogram<'a, 'h>(
        &mut self,
        name: &str,
        help: &str,
        series: impl IntoIterator<Item = (SeriesLabels<'a>, &'h Histogram)>,
    ) -> std::fmt::Result {
        let mut m = self
            .enc
            .encode_descriptor(name, help, None, MetricType::Histogram)?;
        for (l, h) in series {
            let buckets: Vec<(f64, u64)> = h
                .bounds()
                .iter()
                .copied()
                .chain([f64::INFINITY])
                .zip(h.counts().iter().copied())
                .collect();
            m.encode_family(&l)?
                .encode_histogram::<NoLabelSet>(h.sum, h.count, &buckets, None)?;
        }
        Ok(())
    }
}

/// Renders whatever `write` writes through prometheus-client.
struct Reference<F>(F);

impl<F> std::fmt::Debug for Reference<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reference")
    }
}

impl<F: Fn(&mut ClientSink<'_, '_>) -> std::fmt::Result + Send + Sync + 'static> Collector
    for Reference<F>
{
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        (self.0)(&mut ClientSink { enc: &mut enc })
    }
}

fn reference(
    write: impl Fn(&mut ClientSink<'_, '_>) -> std::fmt::Result + Send + Sync + 'static,
) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Reference(write)));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
    out
}

/// Targets of every kind, labels that need escaping, a group, windows from two sources.
const CONFIG: &str = r#"
targets:
  - name: app
    kind: sqlite
    path: app.db
    labels: {team: "web \"blue\"", path: 'C:\data', note: "two\nlines"}
  - {name: orders, kind: postgres, url: "postgres://u@127.0.0.1:5432/orders", password: hunter2}
  - {name: orders-replica, kind: postgres, url: "postgres://u@127.0.0.1:5433/orders", replica_of: orders}
  - {name: shop, kind: mysql, url: "mysql://u@127.0.0.1:3306/shop", migrations: {directory: m}}
  - {name: oracle, kind: tcp, host: 127.0.0.1, port: 1521}
groups:
  - {name: orders-pair, members: [orders, orders-replica]}
"#;

fn scrape() -> Scrape {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("m")).unwrap();
    let config = Arc::new(crate::config::parse(CONFIG, "test.yml", dir.path(), "test").unwrap());
    let at = Timestamp::from_millis(1_796_000_000_123);
    let outcome = |phase, ms, result| PhaseOutcome {
        phase,
        duration: Duration::from_micros(ms),
        result,
    };
    let targets = config
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut stats = TargetStats::new(Arc::new(t.clone()));
            let ok = ProbeReport {
                started_at: at,
                duration: Duration::from_micros(2_345),
                phases: probe::phases(t)
                    .iter()
                    .map(|&p| outcome(p, 1_234 + i as u64 * 777, Ok(())))
                    .collect(),
                read_only: Some(i % 2 == 0),
                identity: Some(Identity {
                    key: format!("sysid=7{i} \"tl\"=1"),
                    version: "15.4 (Debian)".into(),
                }),
                replication_lag: t
                    .name
                    .contains("replica")
                    .then_some(Duration::from_millis(1500)),
                maintenance_flag: None,
                // One target came back without writes it had confirmed.
                lost_writes: (i == 0).then_some(crate::probe::LostWrites {
                    writes: 7,
                    span: Duration::from_millis(1_750),
                }),
                acknowledged: None,
                primary_beat: None,
            };
            stats.record(&ok);
            if i % 2 == 1 {
                let down = ProbeReport {
                    started_at: at + Duration::from_secs(1),
                    phases: vec![outcome(
                        probe::phases(t)[0],
                        1_000_000,
                        Err(Failure::new(Reason::Timeout, "no answer")),
                    )],
                    identity: None,
                    read_only: None,
                    ..ok.clone()
                };
                stats.record(&down);
            }
            stats.record_lag(Duration::from_micros(300 * i as u64), i as u64);
            Arc::new(Published::new(stats))
        })
        .collect::<Vec<_>>();
    let kinds: Vec<_> = config.targets.iter().map(|t| t.kind).collect();
    let group: &GroupConfig = &config.groups[0];
    let window = |id: &str, scope: &str, source, ends| Window {
        id: id.into(),
        scope: scope.into(),
        source,
        reason: "upgrade".into(),
        created_by: "ops".into(),
        created_at: Timestamp::from_millis(1_796_000_000_000),
        starts_at: Timestamp::from_millis(1_796_000_000_000),
        ends_at: ends,
        ended_at: None,
        ended_by: None,
        events: Vec::new(),
    };
    Scrape {
        targets,
        groups: vec![Arc::new(GroupState::new(
            Arc::new(group.clone()),
            &kinds[1..3],
            &[None, None],
        ))],
        reload: ReloadScrape {
            successful: false,
            last_success_at: at,
        },
        probe_tasks: 5,
        shard: ShardScrape {
            shard: Shard { index: 1, count: 3 },
            targets: 5,
            configured: 14,
        },
        target_files: Arc::new(vec![
            crate::config::FileStatus {
                file: "/etc/dbvigil/targets/prod.json".into(),
                valid: true,
                targets: 9,
            },
            crate::config::FileStatus {
                file: r#"C:\sd"odd".yml"#.into(),
                valid: false,
                targets: 0,
            },
        ]),
        maintenance: MaintenanceScrape {
            windows: vec![
                window(
                    "1",
                    "orders-pair",
                    Source::Api,
                    Some(Timestamp::from_millis(1_796_000_600_000)),
                ),
                window("app:app", "app", Source::App, None),
            ],
            started: Arc::new(
                [
                    (("gone".to_owned(), Source::Api), 2),
                    (("app".to_owned(), Source::App), 1),
                ]
                .into_iter()
                .collect(),
            ),
            stored: Arc::new(Stored {
                refreshed_at: Some(at),
                ..Stored::default()
            }),
            config: config.clone(),
            now: Timestamp::from_millis(1_796_000_100_000),
        },
        silences: Some(SilencesScrape {
            synced: false,
            last_success_at: Some(Timestamp::from_millis(1_796_000_050_500)),
            failures: 3,
            in_place: 2,
            missing: 1,
        }),
        migrations: migrations(&config.targets),
        // Every kind of value, and one read that failed (left out).
        process: ProcessScrape {
            cpu_seconds: Some(12.34),
            open_fds: Some(17),
            max_fds: Some(1_048_576.0),
            virtual_memory_bytes: Some(1_234_567_890),
            virtual_memory_max_bytes: Some(u64::MAX as f64),
            resident_memory_bytes: Some(45_678_912),
            start_time_seconds: Some(1_796_000_000.12),
            network_receive_bytes: None,
            network_transmit_bytes: Some(987_654),
        },
        now: at + Duration::from_secs(5),
    }
}

/// Migration reads of every outcome, so that every migration family has series to compare:
/// one never read, one that failed (on the target whose labels need escaping), and one with
/// dbvigil's own history (a run holding the lock) and other tools' (a failed run, a version
/// that needs escaping, a table of another shape).
fn migrations(targets: &[TargetConfig]) -> Vec<MigrationScrape> {
    let read_at = Timestamp::from_millis(1_796_000_000_250);
    let snapshot = |error: Option<&str>, tools, pending, drift| {
        Some(Arc::new(MigrationSnapshot {
            read_at,
            duration: Duration::from_millis(42),
            error: error.map(str::to_owned),
            tools,
            pending,
            drift,
            scripts_error: None,
        }))
    };
    let row = |rank: i64, version: &str, success| Row {
        rank,
        version: version.into(),
        description: "step".into(),
        script: format!("V{version}__step.sql"),
        checksum: "c".into(),
        installed_by: "ops".into(),
        installed_on: Some(read_at - Duration::from_secs(600) + Duration::from_secs(rank as u64)),
        execution_ms: 1_500 * rank,
        success,
    };
    let dbvigil = watch::own_state(
        &[
            row(1, "1", Some(true)),
            row(2, "1.1", Some(true)),
            row(3, "2", None),
        ],
        Some(LockHeld {
            since: Some(read_at - Duration::from_millis(30_500)),
            holder: "dbvigil migrate on host".into(),
        }),
    );
    let flyway = ToolState {
        tool: "flyway",
        table: "flyway_schema_history".into(),
        version: Some("2.1".into()),
        applied: Some(5),
        last_run: Some(LastRun {
            success: false,
            ended_at: Some(read_at - Duration::from_secs(3_600)),
            duration_seconds: Some(0.75),
        }),
        failed: true,
        lock: None,
    };
    let alembic = ToolState {
        tool: "alembic",
        table: "alembic_version".into(),
        version: Some("ae10 \"head\" \\ 2".into()),
        applied: None,
        last_run: None,
        failed: false,
        lock: Some(LockHeld {
            since: None,
            holder: "alembic".into(),
        }),
    };
    let tools = [
        ("dbvigil", Ok(dbvigil)),
        ("flyway", Ok(flyway)),
        ("alembic", Ok(alembic)),
    ]
    .into_iter()
    .chain([("sqlx", Err("column \"checksum\" is missing".to_owned()))])
    .map(|(tool, result)| ToolRead { tool, result })
    .collect();
    vec![
        (Arc::new(targets[1].clone()), None),
        (
            Arc::new(targets[0].clone()),
            snapshot(Some("no answer"), Vec::new(), None, None),
        ),
        (
            Arc::new(targets[3].clone()),
            snapshot(None, tools, Some(2), Some(1)),
        ),
    ]
}

/// The families among `# TYPE` lines with no series line after them.
fn families_without_series(text: &str) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| {
            let family = line.strip_prefix("# TYPE ")?.split(' ').next()?;
            let series = lines
                .get(i + 1..)?
                .iter()
                .take_while(|l| !l.starts_with("# TYPE"));
            let has_series = series
                .clone()
                .any(|l| !l.starts_with('#') && l.starts_with(family));
            (!has_series).then_some(family)
        })
        .collect()
}

#[test]
fn the_writer_matches_prometheus_client_for_a_whole_scrape() {
    let s = Arc::new(scrape());
    let expected = {
        let s = s.clone();
        reference(move |sink| s.write(sink))
    };
    assert!(
        expected.contains(r#"team="web \"blue\"""#) && expected.contains(r#"note="two\nlines""#),
        "the fixture must exercise escaping:\n{expected}"
    );
    assert!(expected.contains("dbvigil_phase_duration_seconds_bucket{le=\"+Inf\""));
    assert!(
        expected.contains("\nprocess_cpu_seconds_total 12.34\n")
            && expected.contains("\nprocess_network_transmit_bytes_total 987654\n")
            && !expected.contains("process_network_receive_bytes"),
        "process metrics, with the one that failed to read left out:\n{expected}"
    );
    let silent: Vec<_> = families_without_series(&expected)
        .into_iter()
        .filter(|f| f.starts_with("dbvigil_migration_"))
        .collect();
    assert!(
        silent.is_empty(),
        "the fixture must give every migration family a series: {silent:?}\n{expected}"
    );
    assert_eq!(render(&s, Format::OpenMetrics), expected);
    assert_eq!(
        render(&s, Format::Classic),
        openmetrics_to_classic(&expected)
    );
}

#[test]
fn the_writer_matches_prometheus_client_for_one_probe() {
    let s = scrape();
    let t = s.maintenance.config.targets[1].clone();
    let report = ProbeReport {
        started_at: s.now,
        duration: Duration::from_millis(3),
        phases: vec![PhaseOutcome {
            phase: probe::Phase::Tcp,
            duration: Duration::from_millis(3),
            result: Err(Failure::new(Reason::Refused, "refused")),
        }],
        read_only: Some(false),
        identity: Some(Identity {
            key: "k".into(),
            version: "v".into(),
        }),
        replication_lag: None,
        maintenance_flag: None,
        lost_writes: None,
        acknowledged: None,
        primary_beat: None,
    };
    let expected = {
        let (t, report) = (t.clone(), report.clone());
        reference(move |sink| {
            ProbeScrape {
                target: &t,
                report: &report,
            }
            .write(sink)
        })
    };
    assert_eq!(render_probe(&t, &report, Format::OpenMetrics), expected);
    assert_eq!(
        render_probe(&t, &report, Format::Classic),
        openmetrics_to_classic(&expected)
    );
}
