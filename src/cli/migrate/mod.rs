//! `dbvigil migrate run|info|validate|repair`: ordered SQL scripts for a configured target,
//! a database URL, or the CSV plan of home-made updaters, with exit codes a pipeline can
//! branch on.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand, ValueEnum};
use hyper::Method;
use serde_json::{Value, json};

use super::client::ExporterArgs;
use super::output::Output;
use crate::config::{self, Endpoint, Kind, MigrationLimits};
use crate::migrate::conn::{DbConn, Engine, Purpose};
use crate::migrate::history::LockHeld;

use crate::migrate::plan;
use crate::migrate::runner::{self, MigrateError, Observer, Options, State, Status};
use crate::migrate::script::{self, Script};

/// Exit codes, documented in `dbvigil migrate --help` and docs/migrations.md.
pub mod exit {
    /// Done: applied, nothing to apply, valid.
    pub const OK: u8 = 0;
    /// A script failed; the failure is recorded and blocks runs until `repair`.
    pub const SCRIPT_FAILED: u8 = 1;
    /// Bad input: flags, script names, the plan, a script that cannot be split.
    pub const INVALID: u8 = 2;
    /// Refused: a failed or interrupted entry, an edited or missing script, out of order.
    pub const REFUSED: u8 = 3;
    /// The database could not be reached (within --wait-for), or failed dbvigil.
    pub const UNREACHABLE: u8 = 4;
    /// Another run held the lock for longer than --lock-timeout.
    pub const LOCKED: u8 = 5;
    /// --maintenance: the window could not be opened; nothing ran.
    pub const MAINTENANCE: u8 = 6;
}

const EXIT_CODES: &str = "Exit codes: 0 done, 1 a script failed (recorded, so run `repair` after fixing it, unless a time or lock-wait limit stopped it before anything stayed), 2 bad input (flags, script names, plan), 3 refused (failed, interrupted, edited, missing or out-of-order history), 4 database unreachable or not stopping a statement past its limit, 5 lock not obtained within --lock-timeout, 6 --maintenance window could not be opened (nothing ran).";

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct MigrateArgs {
    /// A target of the configuration file (with --config.file).
    #[arg(long, global = true, conflicts_with_all = ["database_url", "plan"])]
    pub target: Option<String>,
    /// The configuration file that defines --target.
    #[arg(
        long = "config.file",
        value_name = "FILE",
        env = "DBVIGIL_CONFIG_FILE",
        global = true
    )]
    pub config_file: Option<PathBuf>,
    /// The database: postgres://user@host/db, mysql://user@host/db (also MariaDB), or sqlite:path/to/file.db.
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        hide_env_values = true,
        global = true,
        conflicts_with = "plan"
    )]
    pub database_url: Option<String>,
    /// A CSV plan (sql_runner_host,...,sql_script_to_run): rows run in order, grouped by database.
    #[arg(long, value_name = "FILE.csv", global = true)]
    pub plan: Option<PathBuf>,
    /// The engine of every plan row, when the port does not tell (5432 postgres, 3306 mysql).
    #[arg(long, value_enum, global = true)]
    pub engine: Option<EngineArg>,
    /// The scripts (default: the target's migrations.directory, else ./migrations).
    #[arg(long, value_name = "DIR", global = true)]
    pub dir: Option<PathBuf>,
    /// File name pattern in the scripts directory that is not a script (repeatable; * and ?).
    #[arg(long, value_name = "PATTERN", global = true)]
    pub ignore: Vec<String>,
    /// Applied versions whose scripts are gone are not an error.
    #[arg(long = "ignore-missing", global = true)]
    pub ignore_missing: bool,
    /// How long to wait for another run's lock.
    #[arg(long = "lock-timeout", value_name = "DURATION", default_value = "60s", value_parser = duration, global = true)]
    pub lock_timeout: Duration,
    /// How long one statement may run before it is stopped, or none [default: the target's migrations.statement_timeout, else 10m].
    #[arg(long = "statement-timeout", value_name = "DURATION|none", value_parser = limit, global = true)]
    pub statement_timeout: Option<Limit>,
    /// How long a statement may wait for another session's lock, or none [default: the target's migrations.lock_wait_timeout, else 10s].
    #[arg(long = "lock-wait-timeout", value_name = "DURATION|none", value_parser = limit, global = true)]
    pub lock_wait_timeout: Option<Limit>,
    /// Wait until the database accepts connections, up to this long (like 60s).
    #[arg(long = "wait-for", value_name = "DURATION", value_parser = duration, global = true)]
    pub wait_for: Option<Duration>,
    /// text for people; json: one document on stdout at the end, for pipelines.
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub output: Output,
    #[command(subcommand)]
    pub command: MigrateCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    Postgres,
    Mysql,
}

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Apply pending scripts in order.
    Run(RunArgs),
    /// Show applied, pending, failed and changed scripts; changes nothing.
    Info,
    /// Check the history against the scripts: exit 3 when a run would be refused.
    Validate,
    /// Remove failed and interrupted entries and accept edited scripts' checksums.
    Repair,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Show what would run; lock, create and change nothing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Open a maintenance window on a running exporter before the first script and end it
    /// after success (on failure it stays until it expires).
    #[arg(long)]
    pub maintenance: bool,
    /// The window's scope (default: --target).
    #[arg(long = "maintenance-scope", requires = "maintenance")]
    pub maintenance_scope: Option<String>,
    /// The window's length (default: the exporter's maintenance.default_duration).
    #[arg(
        long = "maintenance-for",
        value_name = "DURATION",
        requires = "maintenance"
    )]
    pub maintenance_for: Option<String>,
    #[command(flatten)]
    pub exporter: ExporterArgs,
}

/// A limit flag's value: a duration, or none.
#[derive(Debug, Clone, Copy)]
pub struct Limit(Option<Duration>);

fn limit(text: &str) -> Result<Limit, String> {
    config::parse_limit(text).map(Limit)
}

fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e}: write a duration like 30s or 5m"))
}

/// One database to work on, and its scripts.
struct Job {
    label: String,
    kind: Kind,
    endpoint: Endpoint,
    scripts: Vec<Script>,
    /// Directory mode: applied versions must have their script (unless --ignore-missing).
    strict: bool,
    secrets: Vec<String>,
    /// The target's limits (defaults without one); flags override them.
    limits: MigrationLimits,
}

pub fn run(args: MigrateArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(exit::UNREACHABLE);
        }
    };
    ExitCode::from(runtime.block_on(execute(args)))
}

async fn execute(args: MigrateArgs) -> u8 {
    let mut out = Printer::new(args.output);
    let (jobs, notes) = match jobs(&args) {
        Ok(j) => j,
        Err(message) => {
            out.error(&message);
            out.finish(&args, exit::INVALID, Vec::new());
            return exit::INVALID;
        }
    };
    for note in notes {
        out.line(&note);
    }
    let mut reports = Vec::new();
    let mut window: Option<Window> = None;
    let mut code = exit::OK;
    for job in &jobs {
        let (job_code, report) = run_job(&args, job, &mut out, &mut window).await;
        reports.push(report);
        code = job_code;
        if code != exit::OK {
            break;
        }
    }
    if let (Some(w), MigrateCommand::Run(run)) = (&window, &args.command) {
        if code == exit::OK {
            match end_window(run, w).await {
                Ok(()) => out.line(&format!("ended maintenance window {}", w.id)),
                Err(e) => out.error(&format!(
                    "the migration succeeded but ending maintenance window {} failed: {e}; end it with `dbvigil maintenance end {}`",
                    w.id, w.id
                )),
            }
        } else {
            out.error(&format!(
                "maintenance window {} stays open until {}, when it expires; end it earlier with `dbvigil maintenance end {}`",
                w.id, w.ends_at, w.id
            ));
        }
    }
    out.finish(&args, code, reports);
    code
}

/// The databases to work on, and notes for the user; an error is bad input (exit 2).
fn jobs(args: &MigrateArgs) -> Result<(Vec<Job>, Vec<String>), String> {
    let mut ignore = args.ignore.clone();
    if args.engine.is_some() && args.plan.is_none() {
        return Err(
            "--engine applies to --plan only: a target or URL already says its engine".to_owned(),
        );
    }
    if let Some(plan_path) = &args.plan {
        if args.dir.is_some() {
            return Err("--dir does not apply to --plan: the plan names each script".to_owned());
        }
        let engine = args.engine.map(|e| match e {
            EngineArg::Postgres => Engine::Postgres,
            EngineArg::Mysql => Engine::MySql,
        });
        let cwd = std::env::current_dir().unwrap_or_default();
        let plan = plan::load(plan_path, &cwd, engine).map_err(|e| e.to_string())?;
        let mut notes = Vec::new();
        if plan.runner_columns_used {
            notes.push("note: the plan's sql_runner_host, sql_runner_userid and sql_runner_password columns are not used: dbvigil connects to each database directly".to_owned());
        }
        let mut jobs = Vec::new();
        for db in plan.databases {
            let mut scripts: Vec<Script> = Vec::new();
            for (row, path) in &db.scripts {
                let s = Script::load(path).map_err(|e| format!("plan row {row}: {e}"))?;
                if let Some(prev) = scripts.last() {
                    if s.version <= prev.version {
                        return Err(format!(
                            "plan row {row}: {} (version {}) comes after {} (version {}): order the rows by version",
                            s.name, s.version, prev.name, prev.version
                        ));
                    }
                }
                scripts.push(s);
            }
            let secrets = db.server.password.iter().map(|p| p.0.clone()).collect();
            jobs.push(Job {
                label: db.describe(),
                kind: db.engine.kind(),
                endpoint: Endpoint::Server(db.server),
                scripts,
                strict: false,
                secrets,
                limits: MigrationLimits::default(),
            });
        }
        return Ok((jobs, notes));
    }
    let (label, kind, endpoint, dir, secrets, limits) = match (&args.target, &args.database_url) {
        (Some(name), _) => {
            let Some(path) = &args.config_file else {
                return Err("--target needs --config.file (or DBVIGIL_CONFIG_FILE)".to_owned());
            };
            let config = config::load_file(path, &super::hostname())
                .map_err(|e| format!("invalid configuration: {e}"))?;
            let Some(target) = config.targets.iter().find(|t| &t.name == name) else {
                let names: Vec<&str> = config.targets.iter().map(|t| t.name.as_str()).collect();
                return Err(format!(
                    "no target {name:?} in {}: use one of {}",
                    path.display(),
                    names.join(", ")
                ));
            };
            if target.kind == Kind::Tcp {
                return Err(format!(
                    "target {name:?} is a tcp target: dbvigil can only migrate postgres, mysql and sqlite targets"
                ));
            }
            let migrations = target.migrations.as_ref();
            ignore.extend(migrations.map(|m| m.ignore.clone()).unwrap_or_default());
            let dir = args
                .dir
                .clone()
                .or_else(|| migrations.and_then(|m| m.directory.clone()))
                .ok_or_else(|| {
                    format!(
                        "no scripts for target {name:?}: pass --dir, or set migrations.directory on the target"
                    )
                })?;
            let secrets = target.secrets().iter().map(|s| s.to_string()).collect();
            let limits = migrations.map(|m| m.limits).unwrap_or_default();
            (
                name.clone(),
                target.kind,
                target.endpoint.clone(),
                dir,
                secrets,
                limits,
            )
        }
        (None, Some(url)) => {
            let (kind, endpoint) =
                config::endpoint_from_url(url).map_err(|e| format!("--database-url: {e}"))?;
            let secrets = match &endpoint {
                Endpoint::Server(s) => s
                    .password
                    .iter()
                    .flat_map(|p| [p.0.clone(), s.password_in_url.0.clone()])
                    .collect(),
                _ => Vec::new(),
            };
            let label = match &endpoint {
                Endpoint::Server(s) => format!(
                    "{}:{}/{}",
                    s.host,
                    s.port,
                    s.database.as_deref().unwrap_or_default()
                ),
                Endpoint::Sqlite { path, .. } => path.display().to_string(),
                Endpoint::Tcp { .. } => String::new(),
            };
            let dir = args
                .dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("migrations"));
            (
                label,
                kind,
                endpoint,
                dir,
                secrets,
                MigrationLimits::default(),
            )
        }
        (None, None) => {
            return Err(
                "which database? pass --target NAME (with --config.file), --database-url URL, or --plan FILE.csv".to_owned(),
            );
        }
    };
    let scripts = script::load_dir(&dir, &ignore).map_err(|e| e.to_string())?;
    Ok((
        vec![Job {
            label,
            kind,
            endpoint,
            scripts,
            strict: true,
            secrets,
            limits,
        }],
        Vec::new(),
    ))
}

async fn run_job(
    args: &MigrateArgs,
    job: &Job,
    out: &mut Printer,
    window: &mut Option<Window>,
) -> (u8, Value) {
    let mut report = json!({ "database": job.label, "engine": job.kind.as_str() });
    let secrets: Vec<&str> = job.secrets.iter().map(String::as_str).collect();
    let redact = |text: &str| crate::probe::redact(text, &secrets);
    let mut conn = match connect(args, job, out).await {
        Ok(c) => c,
        Err(e) => {
            let message = redact(&e);
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
        MigrateCommand::Info => {
            let status = runner::info(conn, &job.scripts, opts).await?;
            out.status(&job.label, &status);
            report["result"] = json!("ok");
            report["status"] = json!(status);
            Ok(exit::OK)
        }
        MigrateCommand::Validate => {
            let status = runner::validate(conn, &job.scripts, opts).await?;
            out.line(&format!(
                "{}: valid; {} applied, {} pending",
                job.label,
                status
                    .entries
                    .iter()
                    .filter(|e| e.state == State::Applied)
                    .count(),
                status.pending()
            ));
            report["result"] = json!("ok");
            report["status"] = json!(status);
            Ok(exit::OK)
        }
        MigrateCommand::Repair => {
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
            report["repair"] = json!(outcome);
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
                    match open_window(run, &scope, &job.label).await {
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
                            report["error"] = json!(e);
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

fn finish_run(
    report: &mut Value,
    run: &RunArgs,
    outcome: &runner::RunOutcome,
    code: u8,
) -> Result<u8, MigrateError> {
    report["result"] = json!(if code == exit::OK { "ok" } else { "failed" });
    report["dry_run"] = json!(run.dry_run);
    report["applied"] = json!(outcome.applied);
    if run.dry_run {
        report["would_apply"] = json!(outcome.would_apply);
    }
    report["failed"] = json!(outcome.failed);
    Ok(code)
}

/// Opens the database, retrying for `--wait-for` with a line of progress per attempt.
async fn connect(args: &MigrateArgs, job: &Job, out: &mut Printer) -> Result<DbConn, String> {
    const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
    const RETRY: Duration = Duration::from_secs(1);
    let started = Instant::now();
    let wait = args.wait_for.unwrap_or_default();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let error = match tokio::time::timeout(
            ATTEMPT_TIMEOUT,
            DbConn::open(&job.endpoint, job.kind, Purpose::Migrate),
        )
        .await
        {
            Ok(Ok(conn)) => {
                if attempt > 1 {
                    out.line(&format!(
                        "{}: accepting connections after {:.1}s",
                        job.label,
                        started.elapsed().as_secs_f64()
                    ));
                }
                return Ok(conn);
            }
            Ok(Err(e)) => runner::server_message(&e),
            Err(_) => format!("no answer within {}s", ATTEMPT_TIMEOUT.as_secs()),
        };
        let elapsed = started.elapsed();
        if elapsed >= wait {
            return Err(if args.wait_for.is_some() {
                format!(
                    "{}: still not accepting connections after {}s ({attempt} attempts): {error}",
                    job.label,
                    elapsed.as_secs()
                )
            } else {
                format!(
                    "{}: cannot connect: {error}; pass --wait-for 60s to wait for a database that is starting",
                    job.label
                )
            });
        }
        out.line(&format!(
            "{}: waiting for the database ({}s of {}s, attempt {attempt}): {error}",
            job.label,
            elapsed.as_secs(),
            wait.as_secs()
        ));
        tokio::time::sleep(RETRY.min(wait - elapsed)).await;
    }
}

fn installed_by() -> String {
    super::user_at_host().unwrap_or_else(|| format!("unknown@{}", super::hostname()))
}

struct Window {
    id: String,
    ends_at: String,
}

fn token(run: &RunArgs) -> Result<String, String> {
    run.exporter.token().map_err(|e| e.to_string())?.ok_or_else(|| {
        "--maintenance needs a token: pass --token, --token-file, or set DBVIGIL_MAINTENANCE_TOKEN".to_owned()
    })
}

async fn open_window(run: &RunArgs, scope: &str, label: &str) -> Result<Window, String> {
    if scope.is_empty() {
        return Err(
            "--maintenance needs --target or --maintenance-scope: the scope the window covers"
                .to_owned(),
        );
    }
    let token = token(run)?;
    let mut body = json!({
        "scope": scope,
        "reason": format!("dbvigil migrate run on {label}"),
        "by": installed_by(),
    });
    if let Some(d) = &run.maintenance_for {
        body["duration"] = json!(d);
    }
    let client = run.exporter.client().map_err(|e| e.to_string())?;
    let reply = client
        .call(
            Method::POST,
            "/api/v1/maintenance",
            Some(&token),
            Some(body.to_string()),
        )
        .await
        .map_err(|e| e.to_string())?;
    let parsed: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
    if reply.status != 201 && reply.status != 200 {
        let why = parsed["error"].as_str().unwrap_or(reply.body.trim());
        return Err(format!("dbvigil answered {}: {why}", reply.status));
    }
    Ok(Window {
        id: parsed["id"].as_str().unwrap_or_default().to_owned(),
        ends_at: parsed["ends_at"].as_str().unwrap_or_default().to_owned(),
    })
}

async fn end_window(run: &RunArgs, w: &Window) -> Result<(), String> {
    let token = token(run)?;
    let body = json!({ "reason": "migration finished", "by": installed_by() });
    let client = run.exporter.client().map_err(|e| e.to_string())?;
    let reply = client
        .call(
            Method::POST,
            &format!("/api/v1/maintenance/{}/end", w.id),
            Some(&token),
            Some(body.to_string()),
        )
        .await
        .map_err(|e| e.to_string())?;
    if reply.status == 200 {
        Ok(())
    } else {
        Err(format!(
            "dbvigil answered {}: {}",
            reply.status,
            reply.body.trim()
        ))
    }
}

/// Text for people (a progress bar on a terminal, lines otherwise) or one JSON document at
/// the end for pipelines.
struct Printer {
    output: Output,
    bar: Option<indicatif::ProgressBar>,
    label: String,
    /// The last whole second of lock waiting reported.
    waited_reported: Option<u64>,
}

impl Printer {
    fn new(output: Output) -> Printer {
        Printer {
            output,
            bar: None,
            label: String::new(),
            waited_reported: None,
        }
    }

    fn line(&self, text: &str) {
        if self.output == Output::Text {
            match &self.bar {
                Some(bar) => bar.println(text),
                None => println!("{text}"),
            }
        }
    }

    fn error(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn begin_run(&mut self, job: &Job) {
        self.label = job.label.clone();
        if self.output == Output::Text && std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_prefix(job.label.clone());
            self.bar = Some(bar);
        }
    }

    fn end_run(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn status(&self, label: &str, status: &Status) {
        if self.output != Output::Text {
            return;
        }
        // One write for the whole table: stdout is line-buffered even into a pipe, and
        // `info` on a thousand versions spent more time in write calls than in its queries.
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let _ = self
            .write_status(&mut out, label, status)
            .and_then(|()| out.flush());
    }

    fn write_status(
        &self,
        out: &mut impl Write,
        label: &str,
        status: &Status,
    ) -> std::io::Result<()> {
        writeln!(out, "{label}:")?;
        writeln!(
            out,
            "  {:<12} {:<12} {:<25} {:>9}  script",
            "version", "state", "installed on", "time"
        )?;
        for e in &status.entries {
            let state = serde_json::to_value(e.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            writeln!(
                out,
                "  {:<12} {:<12} {:<25} {:>9}  {}",
                e.version,
                state,
                e.installed_on
                    .map(|t| crate::maintenance::rfc3339((t * 1000.0) as i64))
                    .unwrap_or_default(),
                e.execution_ms
                    .map(|ms| format!("{ms} ms"))
                    .unwrap_or_default(),
                e.script
            )?;
        }
        if let Some(h) = &status.holder {
            writeln!(out, "  a run is in progress: {}", h.holder)?;
        }
        for p in &status.problems {
            writeln!(out, "  problem: {p}")?;
        }
        Ok(())
    }

    fn finish(&self, args: &MigrateArgs, code: u8, databases: Vec<Value>) {
        if self.output != Output::Json {
            return;
        }
        let command = match &args.command {
            MigrateCommand::Run(_) => "run",
            MigrateCommand::Info => "info",
            MigrateCommand::Validate => "validate",
            MigrateCommand::Repair => "repair",
        };
        let doc = json!({ "command": command, "exit_code": code, "databases": databases });
        println!("{doc}");
    }
}

impl Observer for Printer {
    fn waiting_for_lock(&mut self, holder: Option<&LockHeld>, waited: Duration) {
        // Once a second is enough for a person; the retry loop runs more often.
        if self.waited_reported != Some(waited.as_secs()) {
            self.waited_reported = Some(waited.as_secs());
            let who = holder.map_or_else(|| "another run".to_owned(), |h| h.holder.clone());
            self.line(&format!(
                "{}: waiting for the migration lock held by {who} ({}s)",
                self.label,
                waited.as_secs()
            ));
        }
    }

    fn starting(&mut self, index: usize, total: usize, script: &Script) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(total as u64);
                bar.set_position(index as u64);
                bar.set_message(script.name.clone());
            }
            None => self.line(&format!(
                "{}: applying V{} {} ({}/{total})",
                self.label,
                script.version,
                script.description,
                index + 1
            )),
        }
    }

    fn finished(&mut self, script: &Script, execution_ms: i64) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        self.line(&format!(
            "{}: applied V{} in {execution_ms} ms",
            self.label, script.version
        ));
    }
}
