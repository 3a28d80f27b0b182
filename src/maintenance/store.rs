//! Where API windows live: SQLite in the data directory, or a PostgreSQL database shared by
//! several exporters. One code path over sqlx's `Any` driver; every change is one
//! transaction that also writes its audit event, and every precondition (not ended, within
//! the maximum) is part of the statement that changes the row, so replicas cannot race.

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use tokio::sync::OnceCell;

use super::{Action, Event, Source, Window};
use crate::time::Timestamp;

/// Bounds every store operation: a hung store must fail a request, not hold it.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
/// The newest schema this build writes; the store records the one it holds.
const SCHEMA_VERSION: i64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the state store did not answer within {}s", OPERATION_TIMEOUT.as_secs())]
    Timeout,
    #[error("{0}")]
    Database(String),
    #[error(
        "the state store holds schema version {found}, newer than this dbvigil understands ({SCHEMA_VERSION}): upgrade dbvigil, or point state.url at another database"
    )]
    TooNew { found: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Describes the store for logs and the API, without credentials.
    pub description: String,
    schema: OnceCell<()>,
    /// Kept only to redact it from driver messages.
    url: Option<String>,
}

impl Store {
    /// SQLite file `dbvigil-state.db` in `data_dir`. Connects lazily: opening never blocks.
    pub fn sqlite(data_dir: &Path) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let path = data_dir.join("dbvigil-state.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        // One connection: SQLite serialises writers anyway, and a single connection never
        // meets SQLITE_BUSY from itself. FULL sync: an acknowledged change survives kill -9
        // and power loss.
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(OPERATION_TIMEOUT)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::Executor::execute(
                        &mut *conn,
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON",
                    )
                    .await
                    .map(|_| ())
                })
            })
            .connect_lazy(&url)
            .map_err(|e| StoreError::Database(e.to_string()))?;
        Ok(Store {
            pool,
            backend: Backend::Sqlite,
            description: format!("sqlite {}", path.display()),
            schema: OnceCell::new(),
            url: None,
        })
    }

    /// A shared PostgreSQL database. `url` may hold a password: it never reaches a message.
    pub fn postgres(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let parsed = url::Url::parse(url)
            .map_err(|e| StoreError::Database(format!("invalid state.url ({e})")))?;
        let description = format!(
            "postgres {}:{}{}",
            parsed.host_str().unwrap_or("localhost"),
            parsed.port().unwrap_or(5432),
            parsed.path()
        );
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(OPERATION_TIMEOUT)
            .connect_lazy(url)
            .map_err(|e| StoreError::Database(redact_url(&e.to_string(), url)))?;
        Ok(Store {
            pool,
            backend: Backend::Postgres,
            description,
            schema: OnceCell::new(),
            url: Some(url.to_owned()),
        })
    }

    /// Creates or upgrades dbvigil's tables, once per store; concurrent exporters take turns
    /// (PostgreSQL advisory lock; SQLite's single writer).
    pub(super) async fn ready(&self) -> Result<(), StoreError> {
        self.schema
            .get_or_try_init(|| self.bounded(self.migrate()))
            .await
            .map(|_| ())
    }

    async fn migrate(&self) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            // "dbvigil" in ASCII: one lock id for every dbvigil schema change.
            sqlx::query("SELECT pg_advisory_xact_lock(7233183853136488300)")
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("CREATE TABLE IF NOT EXISTS dbvigil_state_schema (version BIGINT NOT NULL)")
            .execute(&mut *tx)
            .await?;
        let found: Option<i64> = sqlx::query("SELECT max(version) FROM dbvigil_state_schema")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let found = found.unwrap_or(0);
        if found > SCHEMA_VERSION {
            return Err(sqlx::Error::Protocol(
                StoreError::TooNew { found }.to_string(),
            ));
        }
        if found < 1 {
            let id = match self.backend {
                Backend::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
                Backend::Postgres => "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            };
            let ddl = [
                format!(
                    "CREATE TABLE dbvigil_maintenance_windows (
                        id {id},
                        scope TEXT NOT NULL,
                        reason TEXT NOT NULL,
                        created_by TEXT NOT NULL,
                        created_at_ms BIGINT NOT NULL,
                        starts_at_ms BIGINT NOT NULL,
                        ends_at_ms BIGINT NOT NULL,
                        ended_at_ms BIGINT,
                        ended_by TEXT)"
                ),
                "CREATE INDEX dbvigil_maintenance_windows_ends ON dbvigil_maintenance_windows (ends_at_ms)".to_owned(),
                format!(
                    "CREATE TABLE dbvigil_maintenance_events (
                        id {id},
                        window_id BIGINT NOT NULL REFERENCES dbvigil_maintenance_windows (id),
                        at_ms BIGINT NOT NULL,
                        action TEXT NOT NULL,
                        actor TEXT NOT NULL,
                        token TEXT NOT NULL,
                        detail TEXT NOT NULL)"
                ),
                "CREATE INDEX dbvigil_maintenance_events_window ON dbvigil_maintenance_events (window_id)".to_owned(),
                "INSERT INTO dbvigil_state_schema (version) VALUES (1)".to_owned(),
            ];
            for statement in ddl {
                sqlx::query(&statement).execute(&mut *tx).await?;
            }
        }
        tx.commit().await
    }

    /// Windows that are not over, and those that ended at or after `since`, with their
    /// audit events; ordered by start.
    pub async fn load(&self, since: Timestamp) -> Result<Vec<Window>, StoreError> {
        self.ready().await?;
        self.bounded(async {
            let rows = sqlx::query(
                "SELECT id, scope, reason, created_by, created_at_ms, starts_at_ms, ends_at_ms, ended_at_ms, ended_by
                 FROM dbvigil_maintenance_windows
                 WHERE COALESCE(ended_at_ms, ends_at_ms) >= $1
                 ORDER BY starts_at_ms, id",
            )
            .bind(since.as_millis())
            .fetch_all(&self.pool)
            .await?;
            let events = sqlx::query(
                "SELECT e.window_id, e.at_ms, e.action, e.actor, e.token, e.detail
                 FROM dbvigil_maintenance_events e
                 JOIN dbvigil_maintenance_windows w ON w.id = e.window_id
                 WHERE COALESCE(w.ended_at_ms, w.ends_at_ms) >= $1
                 ORDER BY e.id",
            )
            .bind(since.as_millis())
            .fetch_all(&self.pool)
            .await?;
            assemble(rows, events)
        })
        .await
    }

    /// One window by id, however old.
    pub async fn get(&self, id: i64) -> Result<Option<Window>, StoreError> {
        self.ready().await?;
        self.bounded(async {
            let rows = sqlx::query(
                "SELECT id, scope, reason, created_by, created_at_ms, starts_at_ms, ends_at_ms, ended_at_ms, ended_by
                 FROM dbvigil_maintenance_windows WHERE id = $1",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
            let events = sqlx::query(
                "SELECT window_id, at_ms, action, actor, token, detail
                 FROM dbvigil_maintenance_events WHERE window_id = $1 ORDER BY id",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
            Ok(assemble(rows, events)?.pop())
        })
        .await
    }

    /// Stores a new window and its `started` event; returns its id.
    pub async fn insert(&self, w: &NewWindow<'_>) -> Result<i64, StoreError> {
        self.ready().await?;
        self.bounded(async {
            let mut tx = self.pool.begin().await?;
            let id: i64 = sqlx::query(
                "INSERT INTO dbvigil_maintenance_windows (scope, reason, created_by, created_at_ms, starts_at_ms, ends_at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(w.scope)
            .bind(w.reason)
            .bind(w.by)
            .bind(w.now.as_millis())
            .bind(w.starts_at.as_millis())
            .bind(w.ends_at.as_millis())
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            let detail = format!(
                "scope {} from {} to {}",
                w.scope,
                w.starts_at, w.ends_at
            );
            event(&mut tx, id, w.now, Action::Started, w.by, w.token, &detail).await?;
            tx.commit().await?;
            Ok(id)
        })
        .await
    }

    /// Moves the planned end of a window that has not ended yet. Returns whether it changed;
    /// the caller re-reads the window to say why not.
    pub async fn extend(
        &self,
        id: i64,
        new_end: Timestamp,
        max: Duration,
        change: &Change<'_>,
    ) -> Result<bool, StoreError> {
        self.ready().await?;
        self.bounded(async {
            let mut tx = self.pool.begin().await?;
            let old: Option<Timestamp> = sqlx::query(
                "SELECT ends_at_ms FROM dbvigil_maintenance_windows
                 WHERE id = $1 AND ended_at_ms IS NULL AND ends_at_ms > $2",
            )
            .bind(id)
            .bind(change.now.as_millis())
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get(0).map(Timestamp::from_millis))
            .transpose()?;
            let updated = sqlx::query(
                "UPDATE dbvigil_maintenance_windows SET ends_at_ms = $1
                 WHERE id = $2 AND ended_at_ms IS NULL AND ends_at_ms > $3
                   AND $1 > ends_at_ms AND $1 - starts_at_ms <= $4",
            )
            .bind(new_end.as_millis())
            .bind(id)
            .bind(change.now.as_millis())
            .bind(i64::try_from(max.as_millis()).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                return Ok(false);
            }
            let detail = format!(
                "end moved from {} to {}",
                old.map_or_else(|| "?".to_owned(), |t| t.to_string()),
                new_end
            );
            event(
                &mut tx,
                id,
                change.now,
                Action::Extended,
                change.by,
                change.token,
                &detail,
            )
            .await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    /// Ends a window that has not ended yet (one that has not started is cancelled).
    /// Returns whether it changed.
    pub async fn end(&self, id: i64, note: &str, change: &Change<'_>) -> Result<bool, StoreError> {
        self.ready().await?;
        self.bounded(async {
            let mut tx = self.pool.begin().await?;
            let updated = sqlx::query(
                "UPDATE dbvigil_maintenance_windows SET ended_at_ms = $1, ended_by = $2
                 WHERE id = $3 AND ended_at_ms IS NULL AND ends_at_ms > $1",
            )
            .bind(change.now.as_millis())
            .bind(change.by)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                return Ok(false);
            }
            event(
                &mut tx,
                id,
                change.now,
                Action::Ended,
                change.by,
                change.token,
                note,
            )
            .await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }
}

impl Store {
    async fn bounded<T>(
        &self,
        fut: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(OPERATION_TIMEOUT, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(sqlx::Error::Protocol(message))) => Err(StoreError::Database(message)),
            Ok(Err(e)) => Err(StoreError::Database(match &self.url {
                Some(url) => redact_url(&e.to_string(), url),
                None => e.to_string(),
            })),
            Err(_) => Err(StoreError::Timeout),
        }
    }
}

pub struct NewWindow<'a> {
    pub scope: &'a str,
    pub reason: &'a str,
    pub by: &'a str,
    pub token: &'a str,
    pub now: Timestamp,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
}

/// Who changes a window, and when.
pub struct Change<'a> {
    pub by: &'a str,
    pub token: &'a str,
    pub now: Timestamp,
}

async fn event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    window: i64,
    at: Timestamp,
    action: Action,
    actor: &str,
    token: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO dbvigil_maintenance_events (window_id, at_ms, action, actor, token, detail)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(window)
    .bind(at.as_millis())
    .bind(action.as_str())
    .bind(actor)
    .bind(token)
    .bind(detail)
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

/// The store keeps times as milliseconds since the epoch, in a BIGINT every backend has.
fn millis(row: &AnyRow, column: &str) -> Result<Timestamp, sqlx::Error> {
    row.try_get::<i64, _>(column).map(Timestamp::from_millis)
}

fn assemble(rows: Vec<AnyRow>, events: Vec<AnyRow>) -> Result<Vec<Window>, sqlx::Error> {
    let mut windows = rows
        .iter()
        .map(|r| {
            Ok(Window {
                id: r.try_get::<i64, _>("id")?.to_string(),
                scope: r.try_get("scope")?,
                source: Source::Api,
                reason: r.try_get("reason")?,
                created_by: r.try_get("created_by")?,
                created_at: millis(r, "created_at_ms")?,
                starts_at: millis(r, "starts_at_ms")?,
                ends_at: Some(millis(r, "ends_at_ms")?),
                ended_at: r
                    .try_get::<Option<i64>, _>("ended_at_ms")?
                    .map(Timestamp::from_millis),
                ended_by: r.try_get("ended_by")?,
                events: Vec::new(),
            })
        })
        .collect::<Result<Vec<Window>, sqlx::Error>>()?;
    for e in events {
        let window_id: i64 = e.try_get("window_id")?;
        let action: String = e.try_get("action")?;
        let event = Event {
            at: millis(&e, "at_ms")?,
            action: Action::parse(&action).unwrap_or(Action::Started),
            by: e.try_get("actor")?,
            token: e.try_get("token")?,
            detail: e.try_get("detail")?,
        };
        if let Some(w) = windows.iter_mut().find(|w| w.id == window_id.to_string()) {
            w.events.push(event);
        }
    }
    Ok(windows)
}

/// Drivers sometimes echo the URL they were given; the password never leaves.
fn redact_url(text: &str, url: &str) -> String {
    let mut out = text.replace(url, "<state.url>");
    if let Ok(u) = url::Url::parse(url) {
        if let Some(p) = u.password() {
            out = out.replace(p, "<redacted>");
        }
    }
    out
}
