//! Which databases `dbvigil migrate` works on, and their scripts: a target of the
//! configuration file, a database URL, or the rows of a CSV plan.

use std::path::PathBuf;

use super::args::{EngineArg, MigrateArgs};
use super::ssh::SshFlagError;
use crate::config::{self, ConfigError, Endpoint, Kind, MigrationLimits, TargetConfig};
use crate::migrate::conn::Engine;
use crate::migrate::plan::{self, PlanError};
use crate::migrate::script::{self, Script, ScriptError, Version};

/// One database to work on, and its scripts.
pub struct Job {
    pub label: String,
    pub kind: Kind,
    pub endpoint: Endpoint,
    pub scripts: Vec<Script>,
    /// Directory mode: applied versions must have their script (unless --ignore-missing).
    pub strict: bool,
    pub secrets: Vec<String>,
    /// The target's limits (defaults without one); flags override them.
    pub limits: MigrationLimits,
}

/// Bad input before any database is touched (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("--engine applies to --plan only: a target or URL already says its engine")]
    EngineWithoutPlan,
    #[error("--dir does not apply to --plan: the plan names each script")]
    DirWithPlan,
    #[error(
        "new writes the next script into a directory, and a plan names each script: pass --dir (or --target) instead of --plan"
    )]
    NewWithPlan,
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("plan row {row}: {error}")]
    PlanScript { row: usize, error: ScriptError },
    #[error(
        "plan row {row}: {name} (version {version}) comes after {previous} (version {previous_version}): order the rows by version"
    )]
    PlanOutOfOrder {
        row: usize,
        name: String,
        version: Version,
        previous: String,
        previous_version: Version,
    },
    #[error("--target needs --config.file (or DBVIGIL_CONFIG_FILE)")]
    TargetWithoutConfig,
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("no target {name:?} in {}: use one of {}", path.display(), names.join(", "))]
    UnknownTarget {
        name: String,
        path: PathBuf,
        names: Vec<String>,
    },
    #[error(
        "target {0:?} is a tcp target: dbvigil can only migrate postgres, mysql and sqlite targets"
    )]
    TcpTarget(String),
    #[error("no scripts for target {0:?}: pass --dir, or set migrations.directory on the target")]
    NoScriptsDir(String),
    #[error("--database-url: {0}")]
    DatabaseUrl(#[source] config::UrlError),
    #[error(
        "which database? pass --target NAME (with --config.file), --database-url URL, or --plan FILE.csv"
    )]
    NoDatabase,
    #[error(transparent)]
    Scripts(#[from] ScriptError),
    #[error(transparent)]
    Ssh(#[from] SshFlagError),
}

/// The databases, lines for the user, and warnings (on stderr, whatever the output).
type Chosen = (Vec<Job>, Vec<String>, Vec<String>);

impl Job {
    /// The bastion the database is reached through, as `user@host:port`.
    pub fn bastion(&self) -> Option<String> {
        match &self.endpoint {
            Endpoint::Server(s) => s.ssh.as_ref().map(|b| b.describe()),
            _ => None,
        }
    }
}

/// The databases to work on, and what the user should read first.
pub fn choose(args: &MigrateArgs) -> Result<Chosen, JobError> {
    if args.engine.is_some() && args.plan.is_none() {
        return Err(JobError::EngineWithoutPlan);
    }
    args.ssh.check(
        args.target.is_some(),
        args.plan.is_some(),
        args.target.is_none() && args.database_url.is_some(),
    )?;
    if let Some(plan_path) = &args.plan {
        return plan_jobs(args, plan_path);
    }
    let (label, kind, endpoint, (dir, ignore), secrets, limits) =
        match (&args.target, &args.database_url) {
            (Some(name), _) => {
                let target = configured(args, name)?;
                let secrets = target.secrets().iter().map(|s| s.to_string()).collect();
                let limits = target
                    .migrations
                    .as_ref()
                    .map(|m| m.limits)
                    .unwrap_or_default();
                (
                    name.clone(),
                    target.kind,
                    target.endpoint.clone(),
                    target_dir(args, &target)?,
                    secrets,
                    limits,
                )
            }
            (None, Some(url)) => {
                let (kind, mut endpoint) =
                    config::endpoint_from_url(url).map_err(JobError::DatabaseUrl)?;
                match (&mut endpoint, args.ssh.for_url()?) {
                    (Endpoint::Server(s), Some(bastion)) => s.ssh = Some(Box::new(bastion)),
                    (_, Some(_)) => return Err(SshFlagError::SshForSqlite.into()),
                    (_, None) => {}
                }
                let mut secrets: Vec<String> = match &endpoint {
                    Endpoint::Server(s) => s
                        .password
                        .iter()
                        .flat_map(|p| [p.0.clone(), s.password_in_url.0.clone()])
                        .collect(),
                    _ => Vec::new(),
                };
                if let Endpoint::Server(s) = &endpoint {
                    let bastion = s.ssh.iter().flat_map(|b| b.secrets());
                    secrets.extend(bastion.map(str::to_owned));
                }
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
                (
                    label,
                    kind,
                    endpoint,
                    default_dir(args),
                    secrets,
                    MigrationLimits::default(),
                )
            }
            (None, None) => return Err(JobError::NoDatabase),
        };
    let scripts = script::load_dir(&dir, &ignore)?;
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
        Vec::new(),
    ))
}

/// The scripts directory and the names in it that are not scripts, as every subcommand
/// finds them, without a database: for `new`.
pub fn scripts_dir(args: &MigrateArgs) -> Result<(PathBuf, Vec<String>), JobError> {
    if args.plan.is_some() {
        return Err(JobError::NewWithPlan);
    }
    if args.engine.is_some() {
        return Err(JobError::EngineWithoutPlan);
    }
    match &args.target {
        Some(name) => target_dir(args, &configured(args, name)?),
        None => Ok(default_dir(args)),
    }
}

/// `--target` in `--config.file`, when dbvigil can migrate it.
fn configured(args: &MigrateArgs, name: &str) -> Result<TargetConfig, JobError> {
    let Some(path) = &args.config_file else {
        return Err(JobError::TargetWithoutConfig);
    };
    let config = config::load_file(path, &crate::cli::hostname())?;
    let names = config.targets.iter().map(|t| t.name.clone()).collect();
    let Some(target) = config.targets.into_iter().find(|t| t.name == name) else {
        return Err(JobError::UnknownTarget {
            name: name.to_owned(),
            path: path.clone(),
            names,
        });
    };
    if target.kind == Kind::Tcp {
        return Err(JobError::TcpTarget(name.to_owned()));
    }
    Ok(target)
}

/// A target's scripts: `--dir`, else its `migrations.directory`; and the patterns of
/// `--ignore` and its `migrations.ignore`.
fn target_dir(
    args: &MigrateArgs,
    target: &TargetConfig,
) -> Result<(PathBuf, Vec<String>), JobError> {
    let migrations = target.migrations.as_ref();
    let dir = args
        .dir
        .clone()
        .or_else(|| migrations.and_then(|m| m.directory.clone()))
        .ok_or_else(|| JobError::NoScriptsDir(target.name.clone()))?;
    let mut ignore = args.ignore.clone();
    ignore.extend(migrations.map(|m| m.ignore.clone()).unwrap_or_default());
    Ok((dir, ignore))
}

/// Without a target: `--dir`, else `./migrations`.
fn default_dir(args: &MigrateArgs) -> (PathBuf, Vec<String>) {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("migrations"));
    (dir, args.ignore.clone())
}

/// One job per database of the plan, its rows in order.
fn plan_jobs(args: &MigrateArgs, plan_path: &std::path::Path) -> Result<Chosen, JobError> {
    if args.dir.is_some() {
        return Err(JobError::DirWithPlan);
    }
    let engine = args.engine.map(|e| match e {
        EngineArg::Postgres => Engine::Postgres,
        EngineArg::Mysql => Engine::MySql,
    });
    let cwd = std::env::current_dir().unwrap_or_default();
    let plan = plan::load(plan_path, &cwd, engine)?;
    let mut notes = Vec::new();
    let mut warnings = Vec::new();
    if plan.has_runners() && args.ssh.plan_direct {
        notes.push("note: --plan-direct: the plan's sql_runner_host, sql_runner_userid and sql_runner_password columns are not used; dbvigil connects to each database directly".to_owned());
    }
    let mut jobs = Vec::new();
    for mut db in plan.databases {
        let runner = db.runner.take().filter(|_| !args.ssh.plan_direct);
        let mut secrets: Vec<String> = db.server.password.iter().map(|p| p.0.clone()).collect();
        if let Some(runner) = &runner {
            let (bastion, by_password) = args.ssh.for_runner(runner)?;
            let who = bastion.describe();
            if by_password {
                push_once(
                    &mut warnings,
                    format!(
                        "warning: logging in to the runner {who} with the plan's sql_runner_password; a key is safer and needs no password in the plan: pass --ssh-identity FILE or --ssh-agent"
                    ),
                );
            } else if runner.password.is_some() {
                push_once(
                    &mut notes,
                    format!(
                        "note: the plan's sql_runner_password for {who} is not used: dbvigil logs in with the key"
                    ),
                );
            }
            secrets.extend(runner.password.iter().map(|p| p.0.clone()));
            secrets.extend(bastion.secrets().into_iter().map(str::to_owned));
            db.server.ssh = Some(Box::new(bastion));
        }
        let mut scripts: Vec<Script> = Vec::new();
        for (row, path) in &db.scripts {
            let row = *row;
            let s = Script::load(path).map_err(|error| JobError::PlanScript { row, error })?;
            if let Some(prev) = scripts.last() {
                if s.version <= prev.version {
                    return Err(JobError::PlanOutOfOrder {
                        row,
                        name: s.name,
                        version: s.version,
                        previous: prev.name.clone(),
                        previous_version: prev.version.clone(),
                    });
                }
            }
            scripts.push(s);
        }
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
    Ok((jobs, notes, warnings))
}

/// Databases behind one runner share its notes.
fn push_once(lines: &mut Vec<String>, line: String) {
    if !lines.contains(&line) {
        lines.push(line);
    }
}
