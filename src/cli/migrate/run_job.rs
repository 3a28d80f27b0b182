//! One job: connect, do the command (info, validate, repair, run), and say how it went
//! in lines, the JSON report and the exit code.

use std::time::Duration;

use serde_json::{Value, json};

use super::args::{MigrateArgs, MigrateCommand, PendingArgs, RunArgs};
use super::connect::connect;
use super::exit;
use super::installed_by;
use super::jobs::Job;
use super::printer::Printer;
use super::report;
use super::window::{self, Window};
use crate::config::MigrationLimits;
use crate::migrate::baseline;
use crate::migrate::conn::DbConn;
use crate::migrate::runner::{self, MigrateError, Options, State, Status};

/// Works on one database; the exit code and the report always come back, whatever failed.
pub async fn run_job(
    args: &MigrateArgs,
    job: &Job,
    out: &mut Printer,
    window: &mut Option<Window>,
) -> (u8, Value) {
    let bastion = job.bastion();
    let mut report = json!({
        "database": job.label,
        "engine": job.kind.as_str(),
        "bastion": bastion,
    });
    if let MigrateCommand::Baseline(b) = &args.command {
        // Bad flags are told before the database is reached, whatever its state.
        if let Err(e) = baseline::check(&b.version, &b.description, &job.scripts) {
            let message = format!("{}: {e}", job.label);
            out.error(&message);
            report["result"] = json!("invalid");
            report["error"] = json!(message);
            return (exit::INVALID, report);
        }
    }
    let secrets: Vec<&str> = job.secrets.iter().map(String::as_str).collect();
    let redact = |text: &str| crate::connect::redact(text, &secrets);
    if let Some(b) = &bastion {
        out.line(&format!("{}: through the bastion {b}", job.label));
    }
    let mut conn = match connect(args, job, out).await {
        Ok(c) => c,
        Err(e) => {
            let message = redact(&e.to_string());
            out.error(&message);
            report["result"] = json!("unreachable");
            report["error"] = json!(message);
            return (exit::UNREACHABLE, report);
        }
    };
    let opts = Options {
        lock_timeout: args.lock_timeout,
        installed_by: installed_by(),
        ignore_missing: args.ignore_missing || !job.strict,
        limits: MigrationLimits {
            statement: args.statement_timeout.map_or(job.limits.statement, |l| l.0),
            lock_wait: args.lock_wait_timeout.map_or(job.limits.lock_wait, |l| l.0),
        },
        reach: Some((job.endpoint.clone(), job.kind)),
    };
    let result = command(args, job, &mut conn, &opts, out, window, &mut report).await;
    // A connection given up mid-statement may never answer a goodbye.
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.close()).await;
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            let (code, result) = match &e {
                MigrateError::Database(_) => (exit::UNREACHABLE, "unreachable"),
                MigrateError::Locked { .. } => (exit::LOCKED, "locked"),
                MigrateError::Refused(_) => (exit::REFUSED, "refused"),
                MigrateError::Split { .. } => (exit::INVALID, "invalid"),
                MigrateError::Unresponsive { .. } => (exit::UNREACHABLE, "unresponsive"),
                MigrateError::RunRolledBack { .. } => (exit::SCRIPT_FAILED, "rolled-back"),
            };
            let message = redact(&format!("{}: {e}", job.label));
            out.error(&message);
            report["result"] = json!(result);
            report["error"] = json!(message);
            code
        }
    };
    (code, report)
}

async fn command(
    args: &MigrateArgs,
    job: &Job,
    conn: &mut DbConn,
    opts: &Options,
    out: &mut Printer,
    window: &mut Option<Window>,
    report: &mut Value,
) -> Result<u8, MigrateError> {
    match &args.command {
        MigrateCommand::Info(pending) => {
            let status = runner::info(conn, &job.scripts, opts).await?;
            out.status(&job.label, &status);
            Ok(answer(report, &status, pending))
        }
        MigrateCommand::Validate(pending) => {
            let status = runner::validate(conn, &job.scripts, opts).await?;
            out.line(&format!("{}: valid; {}", job.label, counts(&status)));
            Ok(answer(report, &status, pending))
        }
        MigrateCommand::Baseline(b) => {
            out.working_on(job);
            let status =
                baseline::record(conn, &job.scripts, opts, &b.version, &b.description, out).await?;
            out.line(&format!(
                "{}: baselined at version {}; {}",
                job.label,
                b.version,
                counts(&status)
            ));
            report["result"] = json!("ok");
            report["baseline"] =
                json!({ "version": b.version.to_string(), "description": b.description });
            report["pending"] = json!(status.pending());
            report["status"] = report::status(&status);
            Ok(exit::OK)
        }
        // Handled before any database is chosen.
        MigrateCommand::New(_) => Ok(exit::OK),
        MigrateCommand::Repair => {
            out.working_on(job);
            let outcome = runner::repair(conn, &job.scripts, opts, out).await?;
            if outcome.removed.is_empty() && outcome.realigned.is_empty() {
                out.line(&format!("{}: nothing to repair", job.label));
            }
            for r in &outcome.removed {
                out.line(&format!(
                    "{}: removed the failed entry of {r}; it will run again",
                    job.label
                ));
            }
            for r in &outcome.realigned {
                out.line(&format!("{}: accepted the edited script of {r}", job.label));
            }
            report["result"] = json!("ok");
            report["repair"] = report::repair(&outcome);
            Ok(exit::OK)
        }
        MigrateCommand::Run(run) => {
            if run.maintenance && !run.dry_run && window.is_none() {
                let status = runner::validate(conn, &job.scripts, opts).await?;
                if status.pending() > 0 {
                    let scope = run
                        .maintenance_scope
                        .clone()
                        .or_else(|| args.target.clone())
                        .unwrap_or_default();
                    match window::open(run, &scope, &job.label).await {
                        Ok(w) => {
                            out.line(&format!(
                                "opened maintenance window {} on {scope} until {}",
                                w.id, w.ends_at
                            ));
                            report["maintenance_window"] = json!(w.id);
                            *window = Some(w);
                        }
                        Err(e) => {
                            out.error(&format!(
                                "cannot open a maintenance window: {e}; nothing ran"
                            ));
                            report["result"] = json!("maintenance-failed");
                            report["error"] = json!(e.to_string());
                            return Ok(exit::MAINTENANCE);
                        }
                    }
                }
            }
            out.begin_run(job);
            let outcome = runner::run(conn, &job.scripts, opts, run.dry_run, out).await?;
            out.end_run();
            if run.dry_run {
                if outcome.would_apply.is_empty() {
                    out.line(&format!("{}: up to date; nothing would run", job.label));
                }
                for a in &outcome.would_apply {
                    out.line(&format!(
                        "{}: would apply V{} {} ({})",
                        job.label, a.version, a.description, a.script
                    ));
                }
                out.line("dry run: nothing was changed");
            } else if outcome.applied.is_empty() && outcome.failed.is_none() {
                out.line(&format!("{}: up to date; nothing to apply", job.label));
            } else if outcome.failed.is_none() {
                out.line(&format!(
                    "{}: applied {} script(s); now at version {}",
                    job.label,
                    outcome.applied.len(),
                    outcome
                        .applied
                        .last()
                        .map(|a| a.version.as_str())
                        .unwrap_or_default()
                ));
            }
            let code = match &outcome.failed {
                None => exit::OK,
                Some(f) => {
                    out.error(&format!(
                        "{}: FAILED {} line {}: {}",
                        job.label, f.script, f.line, f.message
                    ));
                    if f.retry {
                        out.error(&format!(
                            "{}: nothing of {} was kept and the failure is not recorded: run again once the cause is gone",
                            job.label, f.script
                        ));
                        return finish_run(report, run, &outcome, exit::SCRIPT_FAILED);
                    }
                    if f.partial_changes_possible {
                        out.error(&format!(
                            "{}: MySQL/MariaDB cannot roll back DDL: statements of {} before line {} may have been applied; check the schema before `dbvigil migrate repair`",
                            job.label, f.script, f.line
                        ));
                    } else {
                        out.error(&format!(
                            "{}: {} was rolled back; scripts before it stay applied",
                            job.label, f.script
                        ));
                    }
                    out.error(&format!(
                        "{}: the failure is recorded and blocks later runs: fix the script, then run `dbvigil migrate repair` and run again",
                        job.label
                    ));
                    exit::SCRIPT_FAILED
                }
            };
            finish_run(report, run, &outcome, code)
        }
    }
}

/// How `info` and `validate` answer: the status, the pending count, and with
/// `--exit-code` whether anything is pending.
fn answer(report: &mut Value, status: &Status, pending: &PendingArgs) -> u8 {
    report["result"] = json!("ok");
    report["pending"] = json!(status.pending());
    report["status"] = report::status(status);
    if pending.exit_code && status.pending() > 0 {
        exit::PENDING
    } else {
        exit::OK
    }
}

/// `2 applied, 1 pending`, with the scripts a baseline covers when there are any.
fn counts(status: &Status) -> String {
    let baselined = status.count(&[State::Baselined]);
    format!(
        "{} applied, {}{} pending",
        status.count(&[State::Applied]),
        if baselined > 0 {
            format!("{baselined} baselined, ")
        } else {
            String::new()
        },
        status.pending()
    )
}

fn finish_run(
    report: &mut Value,
    run: &RunArgs,
    outcome: &runner::RunOutcome,
    code: u8,
) -> Result<u8, MigrateError> {
    report["result"] = json!(if code == exit::OK { "ok" } else { "failed" });
    report["dry_run"] = json!(run.dry_run);
    report["applied"] = report::applied(&outcome.applied);
    if run.dry_run {
        report["would_apply"] = report::applied(&outcome.would_apply);
    }
    report["failed"] = report::failure(outcome.failed.as_ref());
    Ok(code)
}
