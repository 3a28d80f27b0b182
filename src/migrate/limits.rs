//! How long one statement of a migration may run, and how long it may wait for a lock:
//! the bounds that keep a run from holding the migration lock while it makes no progress.
//!
//! The lock-wait limit is the engine's own session setting, so the server reports the
//! wait. The statement limit is kept by dbvigil's clock rather than by `statement_timeout`,
//! which pg_dump output (and any script) sets to 0 in its preamble; when it strikes, the
//! statement is cancelled from a second connection (SQLite: interrupted by a progress
//! handler), so the session stays usable to roll back and release the lock.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::conn::{Cell, DbConn, Engine, Purpose};
use crate::config::{Endpoint, Kind, MigrationLimits as Limits};

/// How long a cancelled statement has to stop before its connection is given up.
const CANCEL_GRACE: Duration = Duration::from_secs(15);

/// SQLite checks its deadline every this many virtual machine steps.
const SQLITE_PROGRESS_STEPS: i32 = 10_000;

/// `30s`, `10m`, or `none`, as the user would write it back.
pub fn describe(limit: Option<Duration>) -> String {
    limit.map_or_else(|| "none".to_owned(), crate::config::format_duration)
}

/// Sets the lock-wait limit on the session.
pub async fn apply_lock_wait(conn: &mut DbConn, limits: &Limits) -> Result<(), sqlx::Error> {
    let Some(wait) = limits.lock_wait else {
        return Ok(());
    };
    match conn.engine() {
        Engine::Postgres => {
            conn.execute(&format!("SET lock_timeout = {}", wait.as_millis().max(1)))
                .await?;
        }
        Engine::MySql => {
            // Whole seconds: metadata locks (DDL) and InnoDB row locks have one each.
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            conn.execute(&format!(
                "SET SESSION lock_wait_timeout = {seconds}, SESSION innodb_lock_wait_timeout = {seconds}"
            ))
            .await?;
        }
        Engine::Sqlite => {
            let ms = wait.as_millis().clamp(1, i32::MAX as u128);
            conn.execute(&format!("PRAGMA busy_timeout = {ms}")).await?;
        }
    }
    Ok(())
}

/// Whether a statement may have raised or removed the lock-wait limit (pg_dump's preamble
/// sets `lock_timeout = 0`).
pub fn may_change_lock_wait(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    ["lock_timeout", "lock_wait_timeout", "busy_timeout", "reset"]
        .iter()
        .any(|name| lower.contains(name))
}

/// Puts the lock-wait limit back where a statement raised or removed it; a lower one the
/// script chose stays.
pub async fn reassert_lock_wait(conn: &mut DbConn, limits: &Limits) -> Result<(), sqlx::Error> {
    let Some(wait) = limits.lock_wait else {
        return Ok(());
    };
    match conn.engine() {
        Engine::Postgres => {
            let ms = wait.as_millis().max(1);
            conn.execute(&format!(
                "SELECT pg_catalog.set_config('lock_timeout', '{ms}', false) FROM pg_catalog.pg_settings \
                 WHERE name = 'lock_timeout' AND (setting::bigint = 0 OR setting::bigint > {ms})"
            ))
            .await?;
        }
        Engine::MySql => {
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            conn.execute(&format!(
                "SET SESSION lock_wait_timeout = LEAST(@@SESSION.lock_wait_timeout, {seconds}), \
                 SESSION innodb_lock_wait_timeout = LEAST(@@SESSION.innodb_lock_wait_timeout, {seconds})"
            ))
            .await?;
        }
        Engine::Sqlite => apply_lock_wait(conn, limits).await?,
    }
    Ok(())
}

/// Whether the server refused a statement because it waited for a lock past the limit.
pub fn is_lock_wait_timeout(engine: Engine, e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    let code = db.code();
    match engine {
        // lock_not_available: "canceling statement due to lock timeout".
        Engine::Postgres => code.as_deref() == Some("55P03"),
        // ER_LOCK_WAIT_TIMEOUT, for row and metadata locks alike.
        Engine::MySql => db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .is_some_and(|m| m.number() == 1205),
        // SQLITE_BUSY (or one of its extended codes) after busy_timeout.
        Engine::Sqlite => code
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| c & 0xff == 5),
    }
}

/// How a statement run under the limit ended, when it did not simply succeed or fail.
#[derive(Debug)]
pub enum Bounded {
    /// The server failed the statement (a lock-wait timeout included).
    Failed(sqlx::Error),
    /// It ran past the statement limit and was stopped; the session can go on.
    /// `confirmed`: the server answered with an error, so the statement did not complete
    /// (MySQL's `SLEEP` and `BENCHMARK` return normally when killed).
    Stopped { confirmed: bool },
    /// It ran past the limit and did not stop when asked: the connection is given up.
    Unresponsive,
}

/// Keeps the statement limit over one connection.
pub struct Watchdog {
    limit: Option<Duration>,
    stop: Stop,
}

enum Stop {
    /// Cancel from a second connection to the same server (same login).
    Server {
        endpoint: Box<Endpoint>,
        kind: Kind,
        engine: Engine,
        backend: i64,
    },
    /// The progress handler interrupts the statement once the deadline has passed.
    Sqlite(Arc<Mutex<Option<Instant>>>),
    /// No way to reach the server beside the connection: give it up at the limit.
    GiveUp,
}

impl Watchdog {
    /// Prepares to stop statements of `conn` that overrun `limit`; `reach` opens the
    /// second connection that cancels them.
    pub async fn arm(
        conn: &mut DbConn,
        limit: Option<Duration>,
        reach: Option<(&Endpoint, Kind)>,
    ) -> Result<Watchdog, sqlx::Error> {
        let stop = match (limit, conn.engine(), reach) {
            (None, _, _) => Stop::GiveUp,
            (Some(_), Engine::Sqlite, _) => {
                let deadline: Arc<Mutex<Option<Instant>>> = Arc::default();
                conn.on_progress(SQLITE_PROGRESS_STEPS, {
                    let deadline = deadline.clone();
                    move || {
                        let passed = deadline
                            .lock()
                            .map(|d| d.is_some_and(|d| Instant::now() >= d))
                            .unwrap_or(false);
                        // Returning false interrupts the statement.
                        !passed
                    }
                })
                .await?;
                Stop::Sqlite(deadline)
            }
            (Some(_), engine, Some((endpoint, kind))) => {
                let sql = match engine {
                    Engine::Postgres => "SELECT pg_catalog.pg_backend_pid()::bigint",
                    _ => "SELECT CAST(CONNECTION_ID() AS SIGNED)",
                };
                let rows = conn.fetch(sql).await?;
                let backend = rows
                    .first()
                    .and_then(|r| r.first())
                    .and_then(Cell::int)
                    .unwrap_or_default();
                Stop::Server {
                    endpoint: Box::new(endpoint.clone()),
                    kind,
                    engine,
                    backend,
                }
            }
            (Some(_), _, None) => Stop::GiveUp,
        };
        Ok(Watchdog { limit, stop })
    }

    pub fn limit(&self) -> Option<Duration> {
        self.limit
    }

    /// Runs `work` (one statement on the watched connection) under the limit.
    pub async fn run<T>(
        &self,
        work: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, Bounded> {
        let Some(limit) = self.limit else {
            return work.await.map_err(Bounded::Failed);
        };
        if let Stop::Sqlite(deadline) = &self.stop {
            set(deadline, Some(Instant::now() + limit));
            let result = work.await;
            let overran = deadline
                .lock()
                .map(|d| d.is_some_and(|d| Instant::now() >= d))
                .unwrap_or(false);
            set(deadline, None);
            return match result {
                Ok(v) => Ok(v),
                Err(e) if overran && is_sqlite_interrupt(&e) => {
                    Err(Bounded::Stopped { confirmed: true })
                }
                Err(e) => Err(Bounded::Failed(e)),
            };
        }
        let work = std::pin::pin!(work);
        let mut work = work;
        if let Ok(result) = tokio::time::timeout(limit, &mut work).await {
            return result.map_err(Bounded::Failed);
        }
        let Stop::Server {
            endpoint,
            kind,
            engine,
            backend,
        } = &self.stop
        else {
            return Err(Bounded::Unresponsive);
        };
        if cancel(endpoint, *kind, *engine, *backend).await.is_err() {
            return Err(Bounded::Unresponsive);
        }
        match tokio::time::timeout(CANCEL_GRACE, &mut work).await {
            Ok(result) => Err(Bounded::Stopped {
                confirmed: result.is_err(),
            }),
            Err(_) => Err(Bounded::Unresponsive),
        }
    }
}

/// SQLITE_INTERRUPT: what the progress handler's refusal becomes, through sqlx (code 9)
/// or through `DbConn::execute_batch` (SQLite's own message for it).
fn is_sqlite_interrupt(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.code().as_deref() == Some("9"),
        sqlx::Error::Protocol(message) => message == "interrupted",
        _ => false,
    }
}

fn set(deadline: &Mutex<Option<Instant>>, value: Option<Instant>) {
    if let Ok(mut d) = deadline.lock() {
        *d = value;
    }
}

/// Asks the server to stop the statement running on `backend`.
async fn cancel(
    endpoint: &Endpoint,
    kind: Kind,
    engine: Engine,
    backend: i64,
) -> Result<(), sqlx::Error> {
    let open = DbConn::open(endpoint, kind, Purpose::Migrate);
    let mut conn = tokio::time::timeout(CANCEL_GRACE, open)
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)??;
    let sql = match engine {
        Engine::Postgres => format!("SELECT pg_catalog.pg_cancel_backend({backend})"),
        _ => format!("KILL QUERY {backend}"),
    };
    let result = conn.execute(&sql).await.map(drop);
    conn.close().await;
    result
}
