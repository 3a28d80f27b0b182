//! Migration-run metrics, from the last read of each target's history tables.

use std::sync::Arc;

use super::{Scrape, SeriesLabels, Sink, labels};
use crate::config::TargetConfig;
use crate::labels::Label;
use crate::migrate::history::ToolState;
use crate::migrate::watch::MigrationSnapshot;

/// A target with `migrations` configured, and its last read (none before the first).
pub type MigrationScrape = (Arc<TargetConfig>, Option<Arc<MigrationSnapshot>>);

impl Scrape {
    pub(super) fn write_migrations(&self, f: &mut impl Sink) -> std::fmt::Result {
        let ms = &self.migrations;
        f.gauge(
            "dbvigil_migration_read_success",
            "Whether the last read of the target's migration history tables succeeded (0 before the first read).",
            ms.iter().map(|(t, s)| {
                let ok = s.as_ref().is_some_and(|s| s.error.is_none());
                (labels(t, &[]), if ok { 1.0 } else { 0.0 })
            }),
        )?;
        f.gauge(
            "dbvigil_migration_last_read_timestamp_seconds",
            "When the target's migration history was last read, successfully or not.",
            ms.iter().filter_map(|(t, s)| {
                s.as_ref()
                    .map(|s| (labels(t, &[]), s.read_at.as_secs_f64()))
            }),
        )?;
        f.gauge(
            "dbvigil_migration_read_duration_seconds",
            "How long the last read of the migration history took.",
            ms.iter().filter_map(|(t, s)| {
                s.as_ref()
                    .map(|s| (labels(t, &[]), s.duration.as_secs_f64()))
            }),
        )?;
        f.gauge(
            "dbvigil_migration_table_readable",
            "Per tool whose history table exists: 1 when dbvigil could read it, 0 when its shape or a query error stopped it.",
            reads(ms).map(|(t, tool, state)| (labels(t, &[(Label::Tool, tool)]), if state.is_some() { 1.0 } else { 0.0 })),
        )?;
        f.gauge(
            "dbvigil_migration_version_info",
            "The current version per migration tool, as a label.",
            states(ms).filter_map(|(t, s)| {
                s.version.as_deref().map(|v| {
                    (
                        labels(t, &[(Label::Tool, s.tool), (Label::Version, v)]),
                        1.0,
                    )
                })
            }),
        )?;
        f.gauge(
            "dbvigil_migration_applied",
            "Migrations applied successfully, per tool (tools that record one row per migration).",
            states(ms).filter_map(|(t, s)| s.applied.map(|a| (tool_labels(t, s), a as f64))),
        )?;
        f.gauge(
            "dbvigil_migration_pending",
            "dbvigil scripts in migrations.directory not applied yet.",
            ms.iter().filter_map(|(t, s)| {
                s.as_ref()
                    .and_then(|s| s.pending)
                    .map(|p| (labels(t, &[(Label::Tool, "dbvigil")]), p as f64))
            }),
        )?;
        f.gauge(
            "dbvigil_migration_checksum_drift",
            "dbvigil scripts changed on disk since they were applied (migrate run and validate refuse them).",
            ms.iter().filter_map(|(t, s)| {
                s.as_ref()
                    .and_then(|s| s.drift)
                    .map(|d| (labels(t, &[(Label::Tool, "dbvigil")]), d as f64))
            }),
        )?;
        f.gauge(
            "dbvigil_migration_last_run_success",
            "Whether the last recorded migration succeeded.",
            states(ms).filter_map(|(t, s)| {
                s.last_run
                    .as_ref()
                    .map(|r| (tool_labels(t, s), if r.success { 1.0 } else { 0.0 }))
            }),
        )?;
        f.gauge(
            "dbvigil_migration_last_run_end_timestamp_seconds",
            "When the last recorded migration ended.",
            states(ms).filter_map(|(t, s)| {
                s.last_run
                    .as_ref()
                    .and_then(|r| r.ended_at)
                    .map(|e| (tool_labels(t, s), e.as_secs_f64()))
            }),
        )?;
        f.gauge(
            "dbvigil_migration_last_run_duration_seconds",
            "How long the last recorded migration took.",
            states(ms).filter_map(|(t, s)| {
                s.last_run
                    .as_ref()
                    .and_then(|r| r.duration_seconds)
                    .map(|d| (tool_labels(t, s), d))
            }),
        )?;
        f.gauge(
            "dbvigil_migration_failed",
            "1 when a failed, interrupted or dirty migration is recorded: later runs are blocked until it is repaired.",
            states(ms).map(|(t, s)| (tool_labels(t, s), if s.failed { 1.0 } else { 0.0 })),
        )?;
        f.gauge(
            "dbvigil_migration_in_progress",
            "1 while a migration run holds the tool's lock.",
            states(ms).map(|(t, s)| (tool_labels(t, s), if s.lock.is_some() { 1.0 } else { 0.0 })),
        )?;
        f.gauge(
            "dbvigil_migration_in_progress_seconds",
            "How long the running migration has held its lock, when the database tells.",
            states(ms).filter_map(|(t, s)| {
                s.lock
                    .as_ref()
                    .and_then(|l| l.since)
                    .map(|since| (tool_labels(t, s), self.now.since(since).as_secs_f64()))
            }),
        )
    }
}

fn tool_labels<'a>(t: &'a TargetConfig, s: &'a ToolState) -> SeriesLabels<'a> {
    labels(t, &[(Label::Tool, s.tool)])
}

/// Every tool table read, readable or not.
fn reads(
    ms: &[MigrationScrape],
) -> impl Iterator<Item = (&TargetConfig, &'static str, Option<&ToolState>)> {
    ms.iter().flat_map(|(t, s)| {
        s.iter()
            .flat_map(|s| s.tools.iter())
            .map(move |r| (t.as_ref(), r.tool, r.result.as_ref().ok()))
    })
}

fn states(ms: &[MigrationScrape]) -> impl Iterator<Item = (&TargetConfig, &ToolState)> {
    reads(ms).filter_map(|(t, _, s)| s.map(|s| (t, s)))
}
