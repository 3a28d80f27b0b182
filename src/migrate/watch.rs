//! The exporter's view of a target's migrations: dbvigil's own history table and every
//! other tool's, read on the target's migrations interval. Returns values only; the
//! metrics module renders them at scrape time.

use std::time::{Duration, Instant};

use super::conn::{DbConn, Purpose};
use super::history::{self, LastRun, LockHeld, ToolRead, ToolState};
use super::runner::{self, Options, State};
use super::schema_history::{self, Row};
use super::script::{self, Script, ScriptError, Version};
use crate::config::{MigrationsConfig, TargetConfig};
use crate::time::Timestamp;

/// One read of a target's migration history.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationSnapshot {
    /// Unix seconds.
    pub read_at: Timestamp,
    pub duration: Duration,
    /// The database could not be read at all (no connection, timeout, catalog error).
    pub error: Option<String>,
    /// One entry per tool whose table exists; dbvigil's first.
    pub tools: Vec<ToolRead>,
    /// dbvigil's scripts not yet applied, when `migrations.directory` is set.
    pub pending: Option<u64>,
    /// dbvigil's applied scripts whose file changed since, when `migrations.directory` is set.
    pub drift: Option<u64>,
    /// The scripts directory could not be read (pending and drift are then unknown).
    pub scripts_error: Option<String>,
}

pub async fn read(target: &TargetConfig, config: &MigrationsConfig) -> MigrationSnapshot {
    let started = Instant::now();
    let scripts = match config.directory.clone() {
        None => Ok(None),
        Some(dir) => {
            let ignore = config.ignore.clone();
            tokio::task::spawn_blocking(move || script::load_dir(&dir, &ignore))
                .await
                .map_err(ScriptsError::Task)
                .and_then(|r| r.map_err(ScriptsError::Load))
                .map(Some)
        }
    };
    let (scripts, scripts_error) = match scripts {
        Ok(s) => (s, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let outcome =
        tokio::time::timeout(config.timeout, read_tables(target, scripts.as_deref())).await;
    let secrets = target.secrets();
    let mut snapshot = MigrationSnapshot {
        read_at: Timestamp::now(),
        duration: started.elapsed(),
        error: None,
        tools: Vec::new(),
        pending: None,
        drift: None,
        scripts_error,
    };
    match outcome {
        Ok(Ok((tools, pending, drift))) => {
            snapshot.tools = tools;
            snapshot.pending = pending;
            snapshot.drift = drift;
        }
        Ok(Err(e)) => snapshot.error = Some(crate::connect::redact(&e.to_string(), &secrets)),
        Err(_) => snapshot.error = Some(ReadError::Timeout(config.timeout).to_string()),
    }
    snapshot
}

/// Why the scripts directory could not be read.
#[derive(Debug, thiserror::Error)]
enum ScriptsError {
    #[error("{0}")]
    Load(#[source] ScriptError),
    #[error("{0}")]
    Task(#[source] tokio::task::JoinError),
}

/// Why a target's migration history could not be read at all. Connection and query
/// errors reach the snapshot redacted: a driver may quote the connection string.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("{}", runner::server_message(.0))]
    Connect(#[source] sqlx::Error),
    #[error("{}", runner::server_message(.0))]
    Query(#[source] sqlx::Error),
    #[error(
        "no answer within the migrations timeout of {}",
        crate::config::format_duration(*.0)
    )]
    Timeout(Duration),
}

type Tables = (Vec<ToolRead>, Option<u64>, Option<u64>);

async fn read_tables(
    target: &TargetConfig,
    scripts: Option<&[Script]>,
) -> Result<Tables, ReadError> {
    let mut conn = DbConn::open(&target.endpoint, target.kind, Purpose::Read)
        .await
        .map_err(ReadError::Connect)?;
    let result = read_with(&mut conn, scripts).await;
    conn.close().await;
    result.map_err(ReadError::Query)
}

async fn read_with(conn: &mut DbConn, scripts: Option<&[Script]>) -> Result<Tables, sqlx::Error> {
    let mut tools = Vec::new();
    let (mut pending, mut drift) = (None, None);
    let has_table = conn.table_exists(schema_history::TABLE).await?;
    if has_table || scripts.is_some() {
        let own = async {
            let home = schema_history::Home::resolve(conn).await?;
            let rows = schema_history::rows(conn, &home).await?;
            let holder = schema_history::holder(conn, &home).await?;
            Ok::<_, sqlx::Error>((rows, holder))
        }
        .await;
        match own {
            Ok((rows, holder)) => {
                if let Some(scripts) = scripts {
                    let opts = Options {
                        lock_timeout: Duration::ZERO,
                        installed_by: String::new(),
                        ignore_missing: true,
                        limits: Default::default(),
                        reach: None,
                    };
                    let status = runner::status(&rows, scripts, &opts, holder.as_ref());
                    pending = Some(status.pending() as u64);
                    drift = Some(status.count(&[State::Changed]) as u64);
                }
                if has_table || holder.is_some() {
                    tools.push(ToolRead {
                        tool: "dbvigil",
                        result: Ok(own_state(&rows, holder)),
                    });
                }
            }
            Err(e) => tools.push(ToolRead {
                tool: "dbvigil",
                result: Err(runner::server_message(&e)),
            }),
        }
    }
    tools.extend(history::read_all(conn).await?);
    Ok((tools, pending, drift))
}

/// dbvigil's own history in the shape every tool is reported in.
pub fn own_state(rows: &[Row], holder: Option<LockHeld>) -> ToolState {
    let succeeded = rows.iter().filter(|r| r.success == Some(true));
    let version = succeeded
        .clone()
        .filter_map(|r| Version::parse(&r.version).map(|v| (v, &r.version)))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, text)| text.clone());
    let last_run = rows
        .iter()
        .filter(|r| r.success.is_some())
        .max_by_key(|r| r.rank)
        .map(|r| LastRun {
            success: r.success == Some(true),
            ended_at: r.installed_on,
            duration_seconds: Some(r.execution_ms as f64 / 1000.0),
        });
    // A script started and never finished is a failure once no run holds the lock.
    let failed = rows
        .iter()
        .any(|r| r.success == Some(false) || (r.success.is_none() && holder.is_none()));
    ToolState {
        tool: "dbvigil",
        table: schema_history::TABLE.to_owned(),
        version,
        applied: Some(succeeded.count() as u64),
        last_run,
        failed,
        lock: holder.map(|h| LockHeld {
            since: h.since,
            holder: h.holder,
        }),
    }
}
