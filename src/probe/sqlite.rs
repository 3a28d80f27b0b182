//! SQLite: the database is a file, so "connect" opens it, identity is the file's device and
//! inode plus the library version, and a lock held by another process is reason `locked`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};

use super::trace::{beat_text, flag_text, read_only_text};
use super::{
    Beat, Failure, FlagValue, Identity, LostWrites, Phase, PhaseRunner, ProbeContext, ProbeFuture,
    Prober, Reason, Trace,
};
use crate::config::{Check, ConnectionMode, TargetConfig};
use crate::time::Timestamp;

/// Identity of the file on disk: a deleted and recreated database is another file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

struct Open {
    conn: SqliteConnection,
    file: FileId,
    version: String,
}

pub struct SqliteProber {
    target: String,
    path: PathBuf,
    create: bool,
    reuse: bool,
    checks: Vec<Check>,
    maintenance_query: Option<String>,
    open: Option<Open>,
    seq: i64,
    /// The last heartbeat the file acknowledged, in this process (see `ServerProber`).
    acknowledged: Option<Beat>,
    /// Found by this cycle's read, reported when it ends.
    lost: Option<LostWrites>,
    /// This cycle's write, once read back, reported when it ends.
    wrote: Option<Beat>,
}

impl SqliteProber {
    pub fn new(target: &TargetConfig, path: &Path, create: bool) -> Self {
        SqliteProber {
            target: target.name.clone(),
            path: path.to_owned(),
            create,
            reuse: target.connection == ConnectionMode::Reuse,
            checks: target.checks.clone(),
            maintenance_query: target.maintenance_query.clone(),
            open: None,
            seq: 0,
            acknowledged: None,
            lost: None,
            wrote: None,
        }
    }

    async fn file_id(&self) -> Result<Option<FileId>, Failure> {
        match tokio::fs::metadata(&self.path).await {
            Ok(m) => Ok(Some(FileId {
                dev: m.dev(),
                ino: m.ino(),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Failure::new(
                Reason::Io,
                format!("cannot stat {}: {e}", self.path.display()),
            )),
        }
    }

    /// Opens the file, or keeps the open connection in `reuse` mode while the path still
    /// names the same file.
    async fn connect(&mut self, busy_timeout: Duration, trace: &Trace) -> Result<(), Failure> {
        let current = self.file_id().await?;
        if let (Some(open), Some(id)) = (&self.open, current) {
            if open.file == id {
                trace.note(|| "reusing the connection kept from the last probe".to_owned());
                return Ok(());
            }
        }
        trace.note(|| {
            format!(
                "opening {} (busy timeout {}{})",
                self.path.display(),
                super::seconds(busy_timeout),
                if self.create {
                    ", created when missing"
                } else {
                    ""
                }
            )
        });
        self.open = None;
        if current.is_none() && !self.create {
            return Err(Failure::new(
                Reason::NotFound,
                format!("database file {} does not exist", self.path.display()),
            ));
        }
        let mut conn = SqliteConnectOptions::new()
            .filename(&self.path)
            .create_if_missing(self.create)
            .busy_timeout(busy_timeout)
            .disable_statement_logging()
            .connect()
            .await
            .map_err(failure)?;
        let version: String = sqlx::query_scalar("SELECT sqlite_version()")
            .fetch_one(&mut conn)
            .await
            .map_err(failure)?;
        let file = self.file_id().await?.ok_or_else(|| {
            Failure::new(
                Reason::NotFound,
                format!(
                    "database file {} vanished while it was opened",
                    self.path.display()
                ),
            )
        })?;
        self.open = Some(Open {
            conn,
            file,
            version,
        });
        Ok(())
    }
}

impl Prober for SqliteProber {
    fn probe<'a>(&'a mut self, ctx: &'a ProbeContext) -> ProbeFuture<'a> {
        Box::pin(async move {
            let trace = &ctx.trace;
            let mut run = PhaseRunner::new(ctx.timeout, trace);
            // SQLite waits for locks itself; give up just before our own deadline so that a
            // held lock is reported as `locked`, not as a generic timeout.
            let busy_timeout = ctx.timeout.mul_f64(0.8);
            if run
                .run(Phase::Connect, self.connect(busy_timeout, trace))
                .await
                .is_none()
            {
                return run.finish(None, None);
            }
            let target = self.target.clone();
            let checks = self.checks.clone();
            let Some(open) = self.open.as_mut() else {
                return run.finish(None, None);
            };

            let mut table_exists = false;
            if checks.contains(&Check::Read) {
                match run
                    .run(
                        Phase::Read,
                        read(&mut open.conn, &target, &ctx.beat_row, trace),
                    )
                    .await
                {
                    Some((exists, own)) => {
                        table_exists = exists;
                        if let Some(lost) = self
                            .acknowledged
                            .and_then(|ack| LostWrites::between(ack, own))
                        {
                            // A file restored from a backup: the surviving row is the new
                            // baseline, so the loss is told once.
                            self.acknowledged = own;
                            self.lost = Some(lost);
                        }
                    }
                    None => return self.finish(run, None, None, trace).await,
                }
            }

            let mut read_only = None;
            if checks.contains(&Check::Write) {
                let beat = Beat::next(&mut self.seq);
                let written = run
                    .run(
                        Phase::Write,
                        write(
                            &mut open.conn,
                            &target,
                            &ctx.beat_row,
                            beat,
                            table_exists,
                            trace,
                        ),
                    )
                    .await;
                if written.is_some() {
                    self.acknowledged = Some(beat);
                    self.wrote = Some(beat);
                }
                read_only = match (written, run.last_failure_reason()) {
                    (Some(()), _) => Some(false),
                    (None, Some(Reason::ReadOnly)) => Some(true),
                    (None, _) => None,
                };
            } else if let Some(ro) = run
                .run(Phase::ReadOnly, probe_read_only(&mut open.conn, trace))
                .await
            {
                read_only = ro;
            }
            trace.note(|| read_only_text(read_only));

            let open = self.open.as_ref().expect("connection checked above");
            let identity = Identity {
                key: format!("dev={} ino={}", open.file.dev, open.file.ino),
                version: open.version.clone(),
            };
            trace.note(|| {
                format!(
                    "identity: {}, SQLite version {}",
                    identity.key, identity.version
                )
            });
            self.finish(run, read_only, Some(identity), trace).await
        })
    }
}

impl SqliteProber {
    async fn finish(
        &mut self,
        run: PhaseRunner,
        read_only: Option<bool>,
        identity: Option<Identity>,
        trace: &Trace,
    ) -> super::ProbeReport {
        let mut flag = None;
        if let (Some(open), Some(sql)) = (self.open.as_mut(), &self.maintenance_query) {
            trace.note(|| format!("query: {sql}"));
            let query = async {
                let row = sqlx::query(sql.as_str())
                    .fetch_optional(&mut open.conn)
                    .await
                    .map_err(failure)?;
                row.as_ref()
                    .map_or(Ok(FlagValue::Missing), super::flag_value)
            };
            let read = super::bounded(run.remaining(), "maintenance_query", query)
                .await
                .and_then(FlagValue::truthy);
            trace.note(|| flag_text(&read));
            flag = Some(read);
        }
        if !self.reuse {
            if let Some(open) = self.open.take() {
                trace.note(|| "closing the file".to_owned());
                let budget = run.remaining().max(Duration::from_millis(100));
                let _ = tokio::time::timeout(budget, open.conn.close()).await;
            }
        }
        let mut report = run.finish(read_only, identity);
        report.maintenance_flag = flag;
        report.lost_writes = self.lost.take();
        report.acknowledged = self.wrote.take();
        report
    }
}

/// `SELECT 1`, then this exporter's heartbeat row when the table exists. Returns whether
/// the heartbeat table exists, and the row.
async fn read(
    conn: &mut SqliteConnection,
    target: &str,
    instance: &str,
    trace: &Trace,
) -> Result<(bool, Option<Beat>), Failure> {
    trace.note(|| "query: SELECT 1".to_owned());
    let one: i64 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut *conn)
        .await
        .map_err(failure)?;
    if one != 1 {
        return Err(Failure::new(
            Reason::Mismatch,
            format!("SELECT 1 returned {one}"),
        ));
    }
    const EXISTS: &str =
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'dbvigil_heartbeat'";
    trace.note(|| format!("query: {EXISTS}"));
    let exists: i64 = sqlx::query_scalar(EXISTS)
        .fetch_one(&mut *conn)
        .await
        .map_err(failure)?;
    let own = if exists > 0 {
        let own = read_beat(conn, target, instance, trace).await?;
        trace.note(|| format!("heartbeat row ({target}, {instance}): {}", beat_text(own)));
        own
    } else {
        trace.note(|| "the heartbeat table does not exist yet".to_owned());
        None
    };
    Ok((exists > 0, own))
}

async fn read_beat(
    conn: &mut SqliteConnection,
    target: &str,
    instance: &str,
    trace: &Trace,
) -> Result<Option<Beat>, Failure> {
    const READ: &str =
        "SELECT seq, beat_at_ms FROM dbvigil_heartbeat WHERE target = ? AND instance = ?";
    trace.note(|| format!("query: {READ} with ({target}, {instance})"));
    let row: Option<(i64, i64)> = sqlx::query_as(READ)
        .bind(target)
        .bind(instance)
        .fetch_optional(&mut *conn)
        .await
        .map_err(failure)?;
    Ok(row.map(|(seq, at_ms)| Beat {
        seq,
        at: Timestamp::from_millis(at_ms),
    }))
}

/// Upserts the one heartbeat row of this target and instance and reads it back.
async fn write(
    conn: &mut SqliteConnection,
    target: &str,
    instance: &str,
    beat: Beat,
    table_exists: bool,
    trace: &Trace,
) -> Result<(), Failure> {
    if !table_exists {
        const CREATE: &str = "CREATE TABLE IF NOT EXISTS dbvigil_heartbeat (
                target TEXT NOT NULL,
                instance TEXT NOT NULL,
                seq INTEGER NOT NULL,
                beat_at_ms INTEGER NOT NULL,
                PRIMARY KEY (target, instance))";
        trace.note(|| format!("query: {CREATE}"));
        sqlx::query(CREATE)
            .execute(&mut *conn)
            .await
            .map_err(failure)?;
    }
    const WRITE: &str = "INSERT INTO dbvigil_heartbeat (target, instance, seq, beat_at_ms) VALUES (?, ?, ?, ?)
         ON CONFLICT (target, instance) DO UPDATE SET seq = excluded.seq, beat_at_ms = excluded.beat_at_ms";
    trace.note(|| {
        format!(
            "query: {WRITE} with ({target}, {instance}, {}, {})",
            beat.seq,
            beat.at.as_millis()
        )
    });
    sqlx::query(WRITE)
        .bind(target)
        .bind(instance)
        .bind(beat.seq)
        .bind(beat.at.as_millis())
        .execute(&mut *conn)
        .await
        .map_err(failure)?;
    beat.verify(read_beat(conn, target, instance, trace).await?)
}

/// Without a write check, asks for a write lock and releases it at once: SQLite refuses
/// with SQLITE_READONLY on a read-only database. `None` when another writer holds the lock.
async fn probe_read_only(
    conn: &mut SqliteConnection,
    trace: &Trace,
) -> Result<Option<bool>, Failure> {
    trace.note(|| "query: BEGIN IMMEDIATE, then ROLLBACK".to_owned());
    match sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
        Ok(_) => {
            sqlx::query("ROLLBACK")
                .execute(&mut *conn)
                .await
                .map_err(failure)?;
            Ok(Some(false))
        }
        Err(e) => match failure(e) {
            f if f.reason == Reason::ReadOnly => Ok(Some(true)),
            f if f.reason == Reason::Locked => Ok(None),
            f => Err(f),
        },
    }
}

/// Maps an sqlx error to a reason by SQLite's primary result code.
fn failure(err: sqlx::Error) -> Failure {
    match &err {
        sqlx::Error::Database(db) => {
            let code: i32 = db.code().and_then(|c| c.parse().ok()).unwrap_or(1);
            let (reason, name) = match code & 0xff {
                5 => (Reason::Locked, "SQLITE_BUSY"),
                6 => (Reason::Locked, "SQLITE_LOCKED"),
                8 => (Reason::ReadOnly, "SQLITE_READONLY"),
                14 => (Reason::NotFound, "SQLITE_CANTOPEN"),
                3 => (Reason::Io, "SQLITE_PERM"),
                10 => (Reason::Io, "SQLITE_IOERR"),
                11 => (Reason::Io, "SQLITE_CORRUPT"),
                13 => (Reason::Io, "SQLITE_FULL"),
                26 => (Reason::Io, "SQLITE_NOTADB"),
                23 => (Reason::Auth, "SQLITE_AUTH"),
                _ => (Reason::Query, "SQLITE_ERROR"),
            };
            Failure::new(reason, format!("{} ({name}, code {code})", db.message()))
        }
        sqlx::Error::Io(e) => Failure::new(Reason::Io, e.to_string()),
        other => Failure::new(Reason::Query, other.to_string()),
    }
}
