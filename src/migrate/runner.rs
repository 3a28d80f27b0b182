//! `info`, `validate`, `run` and `repair` over one database: compares the scripts with the
//! history table, refuses a dirty or edited history, and applies pending scripts in order
//! under the migration lock, one transaction per script where the engine allows.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use super::conn::{Cell, DbConn, Engine};
use super::history::LockHeld;
use super::limits::{self, Bounded, Watchdog};
use super::schema_history::{self, Entry, Home, Row};
use super::script::{Script, Version};
use super::session::Session;
use super::split::{self, Dialect, Lexing, SplitError, Statement};
use crate::config::{Endpoint, Kind, MigrationLimits};
use crate::time::Timestamp;

/// How often a run waiting for the lock tries again.
const LOCK_RETRY: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct Options {
    /// How long `run` and `repair` wait for another run's lock.
    pub lock_timeout: Duration,
    /// Recorded in `installed_by`.
    pub installed_by: String,
    /// Applied versions whose scripts are gone are not an error.
    pub ignore_missing: bool,
    pub limits: MigrationLimits,
    /// How to reach the server again, to cancel a statement that overran its limit.
    pub reach: Option<(Endpoint, Kind)>,
}

/// Hooks for progress output; the CLI draws a bar or prints lines.
pub trait Observer {
    fn waiting_for_lock(&mut self, _holder: Option<&LockHeld>, _waited: Duration) {}
    fn starting(&mut self, _index: usize, _total: usize, _script: &Script) {}
    fn finished(&mut self, _script: &Script, _execution_ms: i64) {}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Applied,
    Pending,
    Failed,
    /// Started and never finished: the run died (MySQL/MariaDB records a script as it starts).
    Interrupted,
    /// Started, and its run still holds the lock.
    Running,
    /// Applied, but the file has changed since.
    Changed,
    /// Applied, but no script has its version.
    Missing,
    /// Pending, with a version below one already applied.
    OutOfOrder,
    /// The row `baseline` recorded: the database was at this version when dbvigil adopted it.
    Baseline,
    /// A script at or below the baseline: the database already had it, so it never runs.
    Baselined,
}

impl State {
    /// The name `info` prints and its JSON report gives.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Applied => "applied",
            State::Pending => "pending",
            State::Failed => "failed",
            State::Interrupted => "interrupted",
            State::Running => "running",
            State::Changed => "changed",
            State::Missing => "missing",
            State::OutOfOrder => "out-of-order",
            State::Baseline => "baseline",
            State::Baselined => "baselined",
        }
    }
}

/// One line of `info`: a version, from the history table, the scripts, or both.
#[derive(Debug, Clone)]
pub struct InfoEntry {
    pub version: String,
    pub description: String,
    pub script: String,
    pub state: State,
    pub installed_on: Option<Timestamp>,
    pub installed_by: Option<String>,
    pub execution_ms: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct Status {
    pub entries: Vec<InfoEntry>,
    /// Why a run would be refused, one sentence each, saying what to do.
    pub problems: Vec<String>,
    /// Another run holds the lock.
    pub holder: Option<LockHeld>,
}

impl Status {
    /// Scripts not applied yet: those a run would apply, and those it would refuse as out
    /// of order (`dbvigil_migration_pending` counts the same).
    pub fn pending(&self) -> usize {
        self.count(&[State::Pending, State::OutOfOrder])
    }

    pub fn count(&self, states: &[State]) -> usize {
        self.entries
            .iter()
            .filter(|e| states.contains(&e.state))
            .count()
    }
}

#[derive(Debug, Clone)]
pub struct Applied {
    pub version: String,
    pub description: String,
    pub script: String,
    pub execution_ms: i64,
}

#[derive(Debug, Clone)]
pub struct ScriptFailure {
    pub version: String,
    pub script: String,
    /// The line on which the failing statement starts.
    pub line: usize,
    /// The server's message.
    pub message: String,
    /// MySQL/MariaDB commit DDL as they go: statements before the failing one stay.
    pub partial_changes_possible: bool,
    /// A limit stopped it, and nothing of it stayed: nothing is recorded, and the next run
    /// tries it again.
    pub retry: bool,
}

#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    pub applied: Vec<Applied>,
    /// `--dry-run`: what would run, in order.
    pub would_apply: Vec<Applied>,
    pub failed: Option<ScriptFailure>,
}

#[derive(Debug, Clone, Default)]
pub struct RepairOutcome {
    /// Failed or interrupted entries removed, so their scripts run again.
    pub removed: Vec<String>,
    /// Applied entries whose checksum now matches the edited script.
    pub realigned: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{0}")]
    Database(#[source] DatabaseError),
    #[error(
        "another migration run holds the lock{}; gave up after {}s: wait for it to finish, or raise --lock-timeout",
        holder.as_ref().map(describe_holder).unwrap_or_default(),
        waited.as_secs()
    )]
    Locked {
        waited: Duration,
        holder: Option<LockHeld>,
    },
    #[error("refused, nothing was changed:\n  {}", .0.join("\n  "))]
    Refused(Vec<String>),
    #[error("{script}: {error}")]
    Split {
        script: String,
        #[source]
        error: SplitError,
    },
    /// A statement overran its limit and the server did not stop it when asked: the
    /// connection was given up, and the server rolls back and frees the lock when it notices.
    #[error(
        "{script} line {line} ran past the statement time limit of {limit} and the server did not stop it when asked; dbvigil closed the connection, and the server rolls the script back and frees the migration lock once it notices. Check the server, then run again"
    )]
    Unresponsive {
        script: String,
        line: usize,
        limit: String,
    },
    /// SQLite rolled back the run's whole transaction after a failure (an interrupted
    /// write, a full disk): scripts applied earlier in the run went with it.
    #[error(
        "{script} {lines}: {message}. SQLite rolled back the whole run with it: no script of this run stayed applied, and nothing was recorded; run again once the cause is gone"
    )]
    RunRolledBack {
        script: String,
        /// `line N`, or `lines N to M` for a batch.
        lines: String,
        message: String,
    },
}

fn describe_holder(h: &LockHeld) -> String {
    match h.since {
        Some(since) => format!(": {} since {}", h.holder, since),
        None => format!(": {}", h.holder),
    }
}

/// The database failed dbvigil itself (not a script): reading or writing the history,
/// the lock, the session.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("{}", server_message(.0))]
    Query(#[source] sqlx::Error),
    /// Whatever the run did stays done; only the lock may still be held.
    #[error("the run finished but releasing the lock failed: {}", server_message(.0))]
    Unlock(#[source] sqlx::Error),
}

impl From<sqlx::Error> for MigrateError {
    fn from(e: sqlx::Error) -> Self {
        MigrateError::Database(DatabaseError::Query(e))
    }
}

/// The server's own words (and SQLSTATE or error number), without sqlx's wrapping.
pub fn server_message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (code {code})", db.message()),
            None => db.message().to_owned(),
        },
        other => other.to_string(),
    }
}

fn dialect(engine: Engine) -> Dialect {
    match engine {
        Engine::Postgres => Dialect::Postgres,
        Engine::MySql => Dialect::MySql,
        Engine::Sqlite => Dialect::Sqlite,
    }
}

/// Compares the history with the scripts. Pure, so every state is unit-tested.
pub fn status(
    rows: &[Row],
    scripts: &[Script],
    opts: &Options,
    holder: Option<&LockHeld>,
) -> Status {
    let mut status = Status {
        holder: holder.cloned(),
        ..Status::default()
    };
    // Each version is parsed once and looked up in an ordered map: comparing every row
    // with every script (parsing the row's version each time) made `info` on 1,000
    // applied scripts spend most of its time here.
    let mut script_of: BTreeMap<&Version, &Script> = BTreeMap::new();
    for s in scripts {
        script_of.entry(&s.version).or_insert(s);
    }
    let mut applied: BTreeSet<Version> = BTreeSet::new();
    let mut highest_applied: Option<Version> = None;
    let mut baseline: Option<Version> = None;
    for row in rows {
        let version = Version::parse(&row.version);
        let script = version.as_ref().and_then(|v| script_of.get(v).copied());
        let state = match row.success {
            Some(true) if row.is_baseline() => {
                baseline = baseline.max(version.clone());
                State::Baseline
            }
            None if holder.is_some() => State::Running,
            None => State::Interrupted,
            Some(false) => State::Failed,
            Some(true) => match script {
                None if opts.ignore_missing => State::Applied,
                None => State::Missing,
                Some(s) if s.checksum != row.checksum => State::Changed,
                Some(_) => State::Applied,
            },
        };
        let when = || row.installed_on.map(|t| t.to_string()).unwrap_or_default();
        let label = || format!("V{} ({})", row.version, row.script);
        match state {
            State::Failed => status.problems.push(format!(
                "{} failed at {}: fix the script, check what it left behind, then run `dbvigil migrate repair`",
                label(),
                when()
            )),
            State::Interrupted => status.problems.push(format!(
                "{} started at {} and never finished (its run died); MySQL/MariaDB may have kept part of it: check the schema, then run `dbvigil migrate repair`",
                label(),
                when()
            )),
            State::Changed => status.problems.push(format!(
                "{} has changed since it was applied at {} (checksum {} now {}): restore the file as applied, or run `dbvigil migrate repair` to accept the edit",
                label(),
                when(),
                short(&row.checksum),
                short(&script.map(|s| s.checksum.clone()).unwrap_or_default())
            )),
            State::Missing => status.problems.push(format!(
                "{} was applied at {} but no script has version {}: restore it, or pass --ignore-missing",
                label(),
                when(),
                row.version
            )),
            _ => {}
        }
        // The baseline's own version stays listed as a script: it is baselined, not run.
        if row.success == Some(true) && !row.is_baseline() {
            if let Some(v) = version {
                if highest_applied.as_ref().is_none_or(|h| v > *h) {
                    highest_applied = Some(v.clone());
                }
                applied.insert(v);
            }
        }
        status.entries.push(InfoEntry {
            version: row.version.clone(),
            description: row.description.clone(),
            script: row.script.clone(),
            state,
            installed_on: row.installed_on,
            installed_by: Some(row.installed_by.clone()),
            execution_ms: Some(row.execution_ms),
        });
    }
    for script in scripts {
        if applied.contains(&script.version) {
            continue;
        }
        let state = match &highest_applied {
            _ if baseline.as_ref().is_some_and(|b| script.version <= *b) => State::Baselined,
            Some(h) if script.version < *h => {
                status.problems.push(format!(
                    "V{} ({}) is pending but V{h} is already applied: give it a version above {h}",
                    script.version, script.name
                ));
                State::OutOfOrder
            }
            _ => State::Pending,
        };
        status.entries.push(InfoEntry {
            version: script.version.to_string(),
            description: script.description.clone(),
            script: script.name.clone(),
            state,
            installed_on: None,
            installed_by: None,
            execution_ms: None,
        });
    }
    status
}

fn short(checksum: &str) -> &str {
    checksum.get(..12).unwrap_or(checksum)
}

/// The history and the lock as they are, without taking the lock or creating anything.
pub async fn info(
    conn: &mut DbConn,
    scripts: &[Script],
    opts: &Options,
) -> Result<Status, MigrateError> {
    let home = Home::resolve(conn).await?;
    let rows = schema_history::rows(conn, &home).await?;
    let holder = schema_history::holder(conn, &home).await?;
    Ok(status(&rows, scripts, opts, holder.as_ref()))
}

/// `info`, refused when the history is dirty or edited or a script cannot be split.
pub async fn validate(
    conn: &mut DbConn,
    scripts: &[Script],
    opts: &Options,
) -> Result<Status, MigrateError> {
    let status = info(conn, scripts, opts).await?;
    let lexing = lexing(conn).await?;
    split_all(conn.engine(), lexing, scripts.iter())?;
    if !status.problems.is_empty() {
        return Err(MigrateError::Refused(status.problems));
    }
    Ok(status)
}

/// How the server reads backslashes in strings when a script starts (each script starts
/// from the session the run began with: `session.rs`).
async fn lexing(conn: &mut DbConn) -> Result<Lexing, sqlx::Error> {
    let sql = match conn.engine() {
        Engine::Postgres => "SELECT current_setting('standard_conforming_strings') = 'on'",
        Engine::MySql => "SELECT @@SESSION.sql_mode LIKE '%NO_BACKSLASH_ESCAPES%'",
        Engine::Sqlite => return Ok(Lexing::default()),
    };
    let on = conn
        .fetch(sql)
        .await?
        .first()
        .and_then(|r| r.first())
        .and_then(Cell::bool)
        .unwrap_or_default();
    Ok(match conn.engine() {
        Engine::Postgres => Lexing {
            standard_strings: on,
            ..Lexing::default()
        },
        _ => Lexing {
            no_backslash_escapes: on,
            ..Lexing::default()
        },
    })
}

fn split_all<'a>(
    engine: Engine,
    lexing: Lexing,
    scripts: impl Iterator<Item = &'a Script>,
) -> Result<Vec<(&'a Script, Vec<Statement<'a>>)>, MigrateError> {
    scripts
        .map(|s| {
            split::split_from(&s.content, dialect(engine), lexing)
                .map(|statements| (s, statements))
                .map_err(|error| MigrateError::Split {
                    script: s.name.clone(),
                    error,
                })
        })
        .collect()
}

/// Applies the pending scripts in order; stops at the first failing statement, which is
/// recorded and blocks later runs until `repair`. With `dry_run`, nothing is locked,
/// created or changed.
pub async fn run(
    conn: &mut DbConn,
    scripts: &[Script],
    opts: &Options,
    dry_run: bool,
    observer: &mut dyn Observer,
) -> Result<RunOutcome, MigrateError> {
    if dry_run {
        let status = validate(conn, scripts, opts).await?;
        let would_apply = pending(&status, scripts)
            .map(|s| Applied {
                version: s.version.to_string(),
                description: s.description.clone(),
                script: s.name.clone(),
                execution_ms: 0,
            })
            .collect();
        return Ok(RunOutcome {
            would_apply,
            ..RunOutcome::default()
        });
    }
    locked(conn, opts, observer, async |conn, home, observer| {
        let rows = schema_history::rows(conn, home).await?;
        let status = status(&rows, scripts, opts, None);
        if !status.problems.is_empty() {
            return Err(MigrateError::Refused(status.problems));
        }
        // Every pending script is split before the first runs, so a syntax slip in the
        // last one does not leave the database half-way.
        let lexing = lexing(conn).await?;
        let work = split_all(conn.engine(), lexing, pending(&status, scripts))?;
        let mut rank = rows.iter().map(|r| r.rank).max().unwrap_or(0);
        let mut outcome = RunOutcome::default();
        let total = work.len();
        if total == 0 {
            return Ok(outcome);
        }
        let session = Session::start(conn, opts.limits).await?;
        let reach = opts.reach.as_ref().map(|(e, k)| (e, *k));
        let watchdog = Watchdog::arm(conn, opts.limits.statement, reach).await?;
        let run = Run {
            home,
            session: &session,
            watchdog: &watchdog,
            opts,
        };
        for (index, (script, statements)) in work.into_iter().enumerate() {
            rank += 1;
            observer.starting(index, total, script);
            match apply(conn, &run, script, &statements, rank).await? {
                Ok(execution_ms) => {
                    observer.finished(script, execution_ms);
                    outcome.applied.push(Applied {
                        version: script.version.to_string(),
                        description: script.description.clone(),
                        script: script.name.clone(),
                        execution_ms,
                    });
                }
                Err(failure) => {
                    outcome.failed = Some(failure);
                    break;
                }
            }
        }
        Ok(outcome)
    })
    .await
}

/// Removes failed and interrupted entries and accepts edited scripts, under the lock.
pub async fn repair(
    conn: &mut DbConn,
    scripts: &[Script],
    opts: &Options,
    observer: &mut dyn Observer,
) -> Result<RepairOutcome, MigrateError> {
    locked(conn, opts, observer, async |conn, home, _| {
        let rows = schema_history::rows(conn, home).await?;
        let mut outcome = RepairOutcome::default();
        for row in &rows {
            let label = format!("V{} ({})", row.version, row.script);
            if row.is_baseline() {
                // It has no script whose checksum could be accepted.
                continue;
            }
            if row.success != Some(true) {
                outcome.removed.push(label);
                continue;
            }
            let script =
                Version::parse(&row.version).and_then(|v| scripts.iter().find(|s| s.version == v));
            if let Some(s) = script.filter(|s| s.checksum != row.checksum) {
                schema_history::realign(conn, home, row.rank, &s.checksum, &s.description).await?;
                outcome.realigned.push(label);
            }
        }
        schema_history::delete_unsuccessful(conn, home).await?;
        Ok(outcome)
    })
    .await
}

fn pending<'a>(status: &Status, scripts: &'a [Script]) -> impl Iterator<Item = &'a Script> {
    let versions: HashSet<&str> = status
        .entries
        .iter()
        .filter(|e| e.state == State::Pending)
        .map(|e| e.version.as_str())
        .collect();
    scripts
        .iter()
        .filter(move |s| versions.contains(s.version.to_string().as_str()))
}

/// Takes the lock (waiting up to the timeout), creates the history table, runs `work`, and
/// releases the lock whatever happened.
pub(super) async fn locked<T>(
    conn: &mut DbConn,
    opts: &Options,
    observer: &mut dyn Observer,
    work: impl AsyncFnOnce(&mut DbConn, &Home, &mut dyn Observer) -> Result<T, MigrateError>,
) -> Result<T, MigrateError> {
    let home = Home::resolve(conn).await?;
    let started = Instant::now();
    loop {
        if schema_history::try_lock(conn, &home).await? {
            break;
        }
        let holder = schema_history::holder(conn, &home).await.ok().flatten();
        let waited = started.elapsed();
        if waited >= opts.lock_timeout {
            return Err(MigrateError::Locked { waited, holder });
        }
        observer.waiting_for_lock(holder.as_ref(), waited);
        tokio::time::sleep(LOCK_RETRY.min(opts.lock_timeout - waited)).await;
    }
    let result = match schema_history::create(conn, &home).await {
        Ok(()) => work(conn, &home, observer).await,
        Err(e) => Err(e.into()),
    };
    if matches!(result, Err(MigrateError::Unresponsive { .. })) {
        // The connection is still busy with the statement: nothing more can go through it.
        return result;
    }
    // A refusal or a recorded script failure is an answer to keep; any other error means
    // the database failed mid-way, and nothing half-written may stay.
    let keep = matches!(
        result,
        Ok(_) | Err(MigrateError::Refused(_) | MigrateError::Split { .. })
    );
    let released = schema_history::unlock(conn, &home, keep).await;
    match (result, released) {
        (Ok(v), Ok(())) => Ok(v),
        (Ok(_), Err(e)) => Err(MigrateError::Database(DatabaseError::Unlock(e))),
        (Err(e), _) => Err(e),
    }
}

/// What every script of one run shares.
struct Run<'a> {
    home: &'a Home,
    session: &'a Session,
    watchdog: &'a Watchdog,
    opts: &'a Options,
}

/// How one statement ended, when not in success.
enum StatementFailure {
    /// The server's error, or a limit that struck: the script failed. `undone`: a limit
    /// stopped the statement before it changed anything.
    Failed { message: String, undone: bool },
    /// The server did not stop an overrunning statement: the connection is gone.
    Unresponsive,
}

/// Runs one script. The outer error is the database failing dbvigil (it could not record
/// what happened); the inner one is the script failing.
async fn apply(
    conn: &mut DbConn,
    run: &Run<'_>,
    script: &Script,
    statements: &[Statement<'_>],
    rank: i64,
) -> Result<Result<i64, ScriptFailure>, MigrateError> {
    let engine = conn.engine();
    let home = run.home;
    let started = Instant::now();
    let elapsed = |started: Instant| started.elapsed().as_millis() as i64;
    let version = script.version.to_string();
    let entry = |success: Option<bool>, execution_ms: i64| Entry {
        rank,
        version: &version,
        description: &script.description,
        script: &script.name,
        checksum: &script.checksum,
        installed_by: &run.opts.installed_by,
        execution_ms,
        success,
    };
    let transactional = match engine {
        Engine::Postgres => script.wants_transaction(),
        Engine::Sqlite => true,
        Engine::MySql => false,
    };
    // SQLite runs inside the run's exclusive transaction, so each script is a savepoint.
    let (begin, commit, rollback) = match engine {
        Engine::Sqlite => (
            "SAVEPOINT dbvigil_script",
            "RELEASE dbvigil_script",
            "ROLLBACK TO dbvigil_script; RELEASE dbvigil_script",
        ),
        _ => ("BEGIN", "COMMIT", "ROLLBACK"),
    };
    let statements = own_statements(engine, statements);
    if transactional {
        conn.execute(begin).await?;
    } else if engine == Engine::MySql {
        schema_history::insert(conn, home, &entry(None, 0)).await?;
    }
    // Statements before this one that were part of a failed batch run one at a time.
    let mut single_until = 0;
    let mut index = 0;
    while index < statements.len() {
        if index >= single_until {
            if let Some(end) = batch_end(engine, &statements, index) {
                if run_batch(conn, run, script, &statements[index..end]).await? {
                    index = end;
                    continue;
                }
                // Rolled back: run its statements one at a time, so the failure names its
                // own line.
                single_until = end;
            }
        }
        let statement = &statements[index];
        let (message, undone) = match run_statement(conn, run, statement).await {
            Ok(()) => {
                index += 1;
                continue;
            }
            Err(StatementFailure::Unresponsive) => {
                return Err(MigrateError::Unresponsive {
                    script: script.name.clone(),
                    line: statement.line,
                    limit: limits::describe(run.watchdog.limit()),
                });
            }
            Err(StatementFailure::Failed { message, undone }) => (message, undone),
        };
        if !conn.sqlite_in_transaction().await? {
            return Err(MigrateError::RunRolledBack {
                script: script.name.clone(),
                lines: format!("line {}", statement.line),
                message,
            });
        }
        // Stopped by a limit with nothing of the script kept: the script is not at fault,
        // so nothing is recorded and the next run tries it again.
        let kept_nothing = transactional
            || statements[..index]
                .iter()
                .all(|s| only_sets_up_session(&s.sql));
        let retry = undone && kept_nothing;
        let failure = ScriptFailure {
            version: version.clone(),
            script: script.name.clone(),
            line: statement.line,
            message,
            partial_changes_possible: !kept_nothing,
            retry,
        };
        let ms = elapsed(started);
        if transactional {
            conn.execute(rollback).await?;
        }
        run.session.restore(conn).await?;
        match (retry, engine) {
            (true, Engine::MySql) => schema_history::forget(conn, home, rank).await?,
            (true, _) => {}
            (false, Engine::MySql) => schema_history::finish(conn, home, rank, false, ms).await?,
            (false, _) => schema_history::insert(conn, home, &entry(Some(false), ms)).await?,
        }
        return Ok(Err(failure));
    }
    let ms = elapsed(started);
    run.session.restore(conn).await?;
    if engine == Engine::MySql {
        schema_history::finish(conn, home, rank, true, ms).await?;
    } else {
        schema_history::insert(conn, home, &entry(Some(true), ms)).await?;
    }
    if transactional {
        conn.execute(commit).await?;
    }
    Ok(Ok(ms))
}

/// SQLite: at most this many statements, or bytes of them, go to the driver at once.
const BATCH_STATEMENTS: usize = 500;
const BATCH_BYTES: usize = 1 << 20;

/// SQLite: the end of the batch of statements starting at `at`, when there are two or
/// more. sqlx runs SQLite on a worker thread, and handing it one statement at a time cost
/// thread switches each way: 2.4 times sqlite3's time on a `.dump` of 200,000 INSERTs.
/// Statements that change the session's limits or transactions still go alone.
fn batch_end(engine: Engine, statements: &[Statement<'_>], at: usize) -> Option<usize> {
    if engine != Engine::Sqlite {
        return None;
    }
    let mut bytes = 0;
    let len = statements[at..]
        .iter()
        .take(BATCH_STATEMENTS)
        .take_while(|s| {
            bytes += s.sql.len();
            bytes <= BATCH_BYTES
                && s.copy_data.is_none()
                && !limits::may_change_lock_wait(&s.sql)
                && !controls_transaction(&s.sql)
        })
        .count();
    (len > 1).then_some(at + len)
}

fn controls_transaction(sql: &str) -> bool {
    let first = sql
        .split(|c: char| !c.is_ascii_alphabetic())
        .find(|w| !w.is_empty())
        .unwrap_or_default();
    ["BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"]
        .iter()
        .any(|w| first.eq_ignore_ascii_case(w))
}

/// Runs a batch in a savepoint of its own under the statement limit: true when it went
/// through, false when it failed and was rolled back, to be run again one at a time.
async fn run_batch(
    conn: &mut DbConn,
    run: &Run<'_>,
    script: &Script,
    statements: &[Statement<'_>],
) -> Result<bool, MigrateError> {
    let mut sql = String::new();
    for s in statements {
        sql.push_str(&s.sql);
        // SQLite keeps a CREATE's text as sent, so the terminator goes right after it,
        // unless the last line has a -- comment that would swallow it.
        let last_line = s.sql.rsplit('\n').next().unwrap_or_default();
        sql.push_str(if last_line.contains("--") {
            "\n;\n"
        } else {
            ";\n"
        });
    }
    conn.execute("SAVEPOINT dbvigil_batch").await?;
    let sent = run.watchdog.run(conn.execute_batch(&sql)).await;
    let went_through = sent.is_ok();
    if let Err(failure) = sent {
        if !conn.sqlite_in_transaction().await? {
            let message = match failure_of(conn.engine(), run, failure) {
                StatementFailure::Failed { message, .. } => message,
                StatementFailure::Unresponsive => "no answer".to_owned(),
            };
            return Err(MigrateError::RunRolledBack {
                script: script.name.clone(),
                lines: format!(
                    "lines {} to {}",
                    statements.first().map_or(0, |s| s.line),
                    statements.last().map_or(0, |s| s.line)
                ),
                message,
            });
        }
    }
    let end = if went_through {
        "RELEASE dbvigil_batch"
    } else {
        "ROLLBACK TO dbvigil_batch; RELEASE dbvigil_batch"
    };
    conn.execute(end).await?;
    Ok(went_through)
}

/// Sends one statement (with its COPY rows) under the run's limits.
async fn run_statement(
    conn: &mut DbConn,
    run: &Run<'_>,
    statement: &Statement<'_>,
) -> Result<(), StatementFailure> {
    let engine = conn.engine();
    let sent = match &statement.copy_data {
        Some(rows) => run.watchdog.run(conn.copy_in(&statement.sql, rows)).await,
        None => run.watchdog.run(conn.execute(&statement.sql)).await,
    };
    match sent {
        Ok(_) => run
            .session
            .after_statement(conn, &statement.sql)
            .await
            .map_err(|e| StatementFailure::Failed {
                message: server_message(&e),
                undone: false,
            }),
        Err(bounded) => Err(failure_of(engine, run, bounded)),
    }
}

/// What a statement that did not go through tells the user, and whether it changed nothing.
fn failure_of(engine: Engine, run: &Run<'_>, bounded: Bounded) -> StatementFailure {
    let limits = run.session.limits();
    match bounded {
        Bounded::Unresponsive => StatementFailure::Unresponsive,
        Bounded::Stopped { confirmed } => StatementFailure::Failed {
            message: format!(
                "stopped after the statement time limit of {} (--statement-timeout, or migrations.statement_timeout): make the statement faster, or raise the limit for this run",
                limits::describe(limits.statement)
            ),
            undone: confirmed,
        },
        Bounded::Failed(e) if limits::is_lock_wait_timeout(engine, &e) => {
            StatementFailure::Failed {
                message: format!(
                    "waited longer than the lock-wait limit of {} for a lock another session holds (--lock-wait-timeout, or migrations.lock_wait_timeout): {}; run again when that session is done",
                    limits::describe(limits.lock_wait),
                    server_message(&e)
                ),
                undone: true,
            }
        }
        Bounded::Failed(e) => StatementFailure::Failed {
            message: server_message(&e),
            undone: false,
        },
    }
}

/// Whether a statement only sets up the session (MySQL's `SET` preambles, `USE`, table
/// locks), so that a script stopped after it has changed nothing that stays.
fn only_sets_up_session(sql: &str) -> bool {
    // mysqldump wraps its SETs in version comments: `/*!40101 SET NAMES utf8mb4 */`.
    let code = sql
        .trim_start_matches(['/', '*', '!', 'M'])
        .trim_start_matches(|c: char| c.is_ascii_digit());
    let mut words = code
        .split(|c: char| c.is_whitespace() || c == '=')
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase);
    match (words.next().as_deref(), words.next().as_deref()) {
        (Some("SET"), Some(second)) => {
            !matches!(
                second,
                "GLOBAL" | "PERSIST" | "PERSIST_ONLY" | "PASSWORD" | "DEFAULT" | "ROLE"
            ) && !second.starts_with("@@GLOBAL")
        }
        (Some("USE" | "LOCK" | "UNLOCK"), _) => true,
        _ => false,
    }
}

/// The statements dbvigil sends for a script. sqlite3's `.dump` wraps its output in
/// `PRAGMA foreign_keys=OFF; BEGIN TRANSACTION; ... COMMIT;`: each script already runs in
/// its own savepoint, where those would fail (BEGIN) or do nothing (the PRAGMA), so the
/// transaction pair is left out and the PRAGMA becomes `defer_foreign_keys`, which lets
/// rows load in any order while the run still commits only consistent data.
fn own_statements<'a>(engine: Engine, statements: &[Statement<'a>]) -> Vec<Statement<'a>> {
    if engine != Engine::Sqlite {
        return statements.to_vec();
    }
    let words = |s: &Statement<'_>| -> Vec<String> {
        s.sql
            .split(|c: char| c.is_whitespace() || c == '=' || c == ';')
            .filter(|w| !w.is_empty())
            .map(|w| w.to_ascii_lowercase())
            .collect()
    };
    let is_begin = |s: &Statement<'_>| {
        let w = words(s);
        let w: Vec<&str> = w.iter().map(String::as_str).collect();
        matches!(
            w.as_slice(),
            ["begin"]
                | ["begin", "transaction"]
                | ["begin", "deferred" | "immediate" | "exclusive"]
                | [
                    "begin",
                    "deferred" | "immediate" | "exclusive",
                    "transaction"
                ]
        )
    };
    let is_commit = |s: &Statement<'_>| {
        let w = words(s);
        let w: Vec<&str> = w.iter().map(String::as_str).collect();
        matches!(
            w.as_slice(),
            ["commit"] | ["commit", "transaction"] | ["end"] | ["end", "transaction"]
        )
    };
    let foreign_keys_off = |s: &Statement<'_>| {
        let w = words(s);
        let w: Vec<&str> = w.iter().map(String::as_str).collect();
        matches!(
            w.as_slice(),
            ["pragma", "foreign_keys", "off" | "0" | "false" | "no"]
        )
    };
    let first_code = statements.iter().position(|s| !foreign_keys_off(s));
    let last = statements.len().saturating_sub(1);
    let wrapper = match first_code {
        Some(first)
            if first < last && is_begin(&statements[first]) && is_commit(&statements[last]) =>
        {
            Some((first, last))
        }
        _ => None,
    };
    statements
        .iter()
        .enumerate()
        .filter(|(i, _)| wrapper.is_none_or(|(first, last)| *i != first && *i != last))
        .map(|(_, s)| {
            if foreign_keys_off(s) {
                Statement {
                    sql: "PRAGMA defer_foreign_keys = ON".into(),
                    ..s.clone()
                }
            } else {
                s.clone()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::script::checksum;

    fn script(version: &str, text: &str) -> Script {
        Script {
            version: Version::parse(version).unwrap(),
            description: format!("v{version}"),
            name: format!("V{version}__v.sql"),
            path: Default::default(),
            content: text.to_owned(),
            checksum: checksum(text),
        }
    }

    fn row(rank: i64, version: &str, text: &str, success: Option<bool>) -> Row {
        Row {
            rank,
            version: version.to_owned(),
            description: String::new(),
            script: format!("V{version}__v.sql"),
            checksum: checksum(text),
            installed_by: "me@host".to_owned(),
            installed_on: Some(Timestamp::from_millis(1_800_000_000_000)),
            execution_ms: 5,
            success,
        }
    }

    fn opts(ignore_missing: bool) -> Options {
        Options {
            lock_timeout: Duration::ZERO,
            installed_by: String::new(),
            ignore_missing,
            limits: MigrationLimits::default(),
            reach: None,
        }
    }

    fn states(s: &Status) -> Vec<(String, State)> {
        s.entries
            .iter()
            .map(|e| (e.version.clone(), e.state))
            .collect()
    }

    fn statements(sql: &[&'static str]) -> Vec<Statement<'static>> {
        sql.iter()
            .enumerate()
            .map(|(i, s)| Statement {
                sql: (*s).into(),
                line: i + 1,
                copy_data: None,
            })
            .collect()
    }

    #[test]
    fn sqlite_dump_transaction_wrappers_give_way_to_the_scripts_savepoint() {
        let dump = statements(&[
            "PRAGMA foreign_keys=OFF",
            "BEGIN TRANSACTION",
            "CREATE TABLE t(x)",
            "COMMIT",
        ]);
        let sent: Vec<String> = own_statements(Engine::Sqlite, &dump)
            .into_iter()
            .map(|s| s.sql.into_owned())
            .collect();
        assert_eq!(
            sent,
            ["PRAGMA defer_foreign_keys = ON", "CREATE TABLE t(x)"]
        );
        // A lone COMMIT is the script's own business, and other engines are left alone.
        let lone = statements(&["CREATE TABLE t(x)", "COMMIT"]);
        assert_eq!(own_statements(Engine::Sqlite, &lone), lone);
        assert_eq!(own_statements(Engine::Postgres, &dump), dump);
    }

    #[test]
    fn session_setup_is_told_apart_from_changes_that_stay() {
        for sql in [
            "/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */",
            "SET NAMES utf8mb4",
            "SET SESSION lock_wait_timeout = 5",
            "USE other_db",
            "LOCK TABLES `t` WRITE",
        ] {
            assert!(only_sets_up_session(sql), "{sql}");
        }
        for sql in [
            "SET GLOBAL read_only = 1",
            "SET PASSWORD FOR x = PASSWORD('y')",
            "CREATE TABLE t (x int)",
            "INSERT INTO t VALUES (1)",
            "/*!50003 CREATE PROCEDURE p() SELECT 1 */",
        ] {
            assert!(!only_sets_up_session(sql), "{sql}");
        }
    }

    #[test]
    fn a_clean_history_has_applied_and_pending_entries_and_no_problem() {
        let scripts = [script("1", "a"), script("1.1", "b"), script("2", "c")];
        let rows = [row(1, "1", "a", Some(true)), row(2, "1.1", "b", Some(true))];
        let s = status(&rows, &scripts, &opts(false), None);
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!(
            states(&s),
            [
                ("1".into(), State::Applied),
                ("1.1".into(), State::Applied),
                ("2".into(), State::Pending)
            ]
        );
        assert_eq!(s.pending(), 1);
    }

    #[test]
    fn history_versions_match_scripts_by_value_not_by_spelling() {
        let scripts = [script("1", "a"), script("1.1", "b"), script("2", "c")];
        let rows = [
            row(1, "1.0", "a", Some(true)),
            row(2, "01_1", "b", Some(true)),
        ];
        let s = status(&rows, &scripts, &opts(false), None);
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!(
            states(&s),
            [
                ("1.0".into(), State::Applied),
                ("01_1".into(), State::Applied),
                ("2".into(), State::Pending)
            ]
        );
        let pending: Vec<_> = pending(&s, &scripts).map(|s| s.name.clone()).collect();
        assert_eq!(pending, ["V2__v.sql"]);
    }

    #[test]
    fn every_refusal_says_what_to_do() {
        let scripts = [
            script("1", "edited"),
            script("1.5", "late"),
            script("3", "x"),
        ];
        let rows = [
            row(1, "1", "original", Some(true)),
            row(2, "2", "gone", Some(true)),
            row(3, "3", "x", Some(false)),
        ];
        let s = status(&rows, &scripts, &opts(false), None);
        assert_eq!(
            states(&s),
            [
                ("1".into(), State::Changed),
                ("2".into(), State::Missing),
                ("3".into(), State::Failed),
                ("1.5".into(), State::OutOfOrder),
                ("3".into(), State::Pending),
            ]
        );
        let all = s.problems.join("\n");
        for expected in [
            "V1 (V1__v.sql) has changed since it was applied",
            "restore the file as applied, or run `dbvigil migrate repair` to accept the edit",
            "V2 (V2__v.sql) was applied at 2027-01-15T08:00:00Z but no script has version 2: restore it, or pass --ignore-missing",
            "V3 (V3__v.sql) failed at",
            "V1.5 (V1.5__v.sql) is pending but V2 is already applied: give it a version above 2",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in\n{all}");
        }
        let s = status(&rows, &scripts, &opts(true), None);
        assert_eq!(s.entries[1].state, State::Applied, "--ignore-missing");
    }

    #[test]
    fn a_started_script_is_running_while_the_lock_is_held_and_interrupted_after() {
        let scripts = [script("1", "a")];
        let rows = [row(1, "1", "a", None)];
        let held = LockHeld {
            since: None,
            holder: "MySQL connection 7".to_owned(),
        };
        let running = status(&rows, &scripts, &opts(false), Some(&held));
        assert_eq!(running.entries[0].state, State::Running);
        assert!(running.problems.is_empty());
        let died = status(&rows, &scripts, &opts(false), None);
        assert_eq!(died.entries[0].state, State::Interrupted);
        assert!(
            died.problems[0].contains("never finished"),
            "{:?}",
            died.problems
        );
    }
}
