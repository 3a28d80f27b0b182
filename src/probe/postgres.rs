//! PostgreSQL: SQL, connect options and SQLSTATE codes for the shared server flow.
//! Identity is the system identifier, timeline and the server's own address and port, so a
//! restart is not a change but a promoted standby or another cluster is.
//!
//! Every statement goes through the simple query protocol, each prefixed with its own
//! `SET LOCAL statement_timeout`: that is what PgBouncer accepts in `transaction` pooling,
//! where a startup `options` parameter is refused and a named prepared statement made on one
//! server connection is missing (or already there) on the next.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use sqlx::{Connection, Row};

use super::server::{Dialect, HeartbeatSql, Session};
use super::{Beat, Failure, FlagValue, Identity, Reason, Trace, net};
use crate::config::Server;
use crate::connect;
use crate::time::Timestamp;
use crate::tunnel::Tunnel;

pub struct Postgres {
    options: PgConnectOptions,
    sql: Arc<HeartbeatSql>,
}

impl Postgres {
    pub fn new(server: &Server) -> Self {
        // Pooled connections must not carry per-session settings that PgBouncer does not
        // track: the probe decodes no floats, so it sends no `extra_float_digits`.
        let options = connect::postgres(server, "dbvigil").extra_float_digits(None);
        let table = match &server.heartbeat_schema {
            Some(schema) => format!("{schema}.dbvigil_heartbeat"),
            None => "dbvigil_heartbeat".to_owned(),
        };
        let sql = HeartbeatSql {
            exists: format!("SELECT to_regclass({}) IS NOT NULL", literal(&table)).into(),
            read: format!(
                "SELECT seq, beat_at_ms FROM {table} WHERE target = {{target}} AND instance = {{instance}}"
            )
            .into(),
            create: format!(
                "CREATE TABLE IF NOT EXISTS {table} (target text NOT NULL, instance text NOT NULL, \
                 seq bigint NOT NULL, beat_at_ms bigint NOT NULL, PRIMARY KEY (target, instance))"
            )
            .into(),
            write: format!(
                "INSERT INTO {table} (target, instance, seq, beat_at_ms) VALUES ({{target}}, {{instance}}, {{seq}}, {{at_ms}}) \
                 ON CONFLICT (target, instance) DO UPDATE SET seq = EXCLUDED.seq, beat_at_ms = EXCLUDED.beat_at_ms"
            )
            .into(),
            user: server.user.clone(),
            table,
        };
        Postgres {
            options,
            sql: Arc::new(sql),
        }
    }
}

impl Dialect for Postgres {
    type Session = PgSession;

    async fn connect(&mut self, timeout: Duration, trace: &Trace) -> Result<PgSession, Failure> {
        let conn = PgConnection::connect_with(&self.options)
            .await
            .map_err(connect_failure)?;
        let limit = format!(
            "SET LOCAL statement_timeout = {}; ",
            timeout.as_millis().max(1)
        );
        trace.note(|| {
            format!(
                "logged in; every statement is sent as one simple query prefixed with `{}`",
                limit.trim()
            )
        });
        Ok(PgSession {
            conn,
            sql: self.sql.clone(),
            limit,
            trace: trace.clone(),
        })
    }

    fn heartbeat_ddl(&self) -> &str {
        &self.sql.create
    }

    fn through(&mut self, tunnel: &Tunnel) {
        self.options = self.options.clone().socket(tunnel.socket_dir());
    }
}

pub struct PgSession {
    conn: PgConnection,
    sql: Arc<HeartbeatSql>,
    /// Prefixed to every statement: the server aborts any statement that outlives the
    /// probe, so a stuck probe query never lingers after the client gave up. `LOCAL` keeps
    /// it inside the statement's own transaction, never on a pooled server connection.
    limit: String,
    trace: Trace,
}

impl PgSession {
    /// Runs one statement through the simple query protocol (no named prepared statement,
    /// nothing left on the session) under the probe's time limit, and returns its rows.
    async fn query(&mut self, sql: &str) -> Result<Vec<PgRow>, sqlx::Error> {
        self.trace.note(|| format!("query: {sql}"));
        // Without arguments, sqlx sends the text as one simple Query message.
        let sql = format!("{}{sql}", self.limit);
        let rows = sqlx::Executor::fetch_all(&mut self.conn, sql.as_str()).await;
        self.trace.note(|| match &rows {
            Ok(rows) => format!("returned {} row(s)", rows.len()),
            Err(e) => format!("failed: {e}"),
        });
        rows
    }

    fn heartbeat_statement(&self, template: &str, target: &str, instance: &str) -> String {
        template
            .replace("{target}", &literal(target))
            .replace("{instance}", &literal(instance))
    }
}

impl Session for PgSession {
    async fn select_one(&mut self) -> Result<(), Failure> {
        let rows = self.query("SELECT 1").await.map_err(failure)?;
        let one: i32 = first(&rows).map_err(failure)?;
        if one == 1 {
            Ok(())
        } else {
            Err(Failure::new(
                Reason::Mismatch,
                format!("SELECT 1 returned {one}"),
            ))
        }
    }

    async fn heartbeat_exists(&mut self) -> Result<bool, Failure> {
        let sql = self.sql.exists.clone();
        let rows = self.query(&sql).await.map_err(failure)?;
        first(&rows).map_err(failure)
    }

    async fn read_beat(&mut self, target: &str, instance: &str) -> Result<Option<Beat>, Failure> {
        let sql = self.heartbeat_statement(&self.sql.read, target, instance);
        let rows = self
            .query(&sql)
            .await
            .map_err(|e| self.heartbeat_failure(e, "SELECT, INSERT, UPDATE ON"))?;
        rows.first()
            .map(|row| {
                Ok(Beat {
                    seq: row.try_get(0)?,
                    at: Timestamp::from_millis(row.try_get(1)?),
                })
            })
            .transpose()
            .map_err(failure)
    }

    async fn create_heartbeat(&mut self) -> Result<(), Failure> {
        let sql = self.sql.create.clone();
        self.query(&sql)
            .await
            .map_err(|e| self.heartbeat_failure(e, "CREATE ON SCHEMA"))?;
        Ok(())
    }

    async fn write_beat(
        &mut self,
        target: &str,
        instance: &str,
        beat: Beat,
    ) -> Result<(), Failure> {
        let sql = self
            .heartbeat_statement(&self.sql.write, target, instance)
            .replace("{seq}", &beat.seq.to_string())
            .replace("{at_ms}", &beat.at.as_millis().to_string());
        self.query(&sql)
            .await
            .map_err(|e| self.heartbeat_failure(e, "SELECT, INSERT, UPDATE ON"))?;
        Ok(())
    }

    async fn read_only(&mut self) -> Result<bool, Failure> {
        let rows = self
            .query("SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'")
            .await
            .map_err(failure)?;
        first(&rows).map_err(failure)
    }

    async fn identity(&mut self) -> Result<Identity, Failure> {
        // The timeline a promotion starts is read where it shows at once: the WAL being
        // written (a primary) or received (a standby). The last checkpoint's timeline would
        // change only when the first checkpoint after the promotion completes, seconds to
        // minutes later.
        let rows = self
            .query(
                "SELECT (SELECT system_identifier::text FROM pg_control_system()), \
                 CASE WHEN pg_is_in_recovery() \
                   THEN coalesce((SELECT received_tli FROM pg_stat_wal_receiver), \
                                 (SELECT timeline_id FROM pg_control_checkpoint())) \
                   ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END, \
                 coalesce(host(inet_server_addr()), 'socket'), coalesce(inet_server_port(), 0), \
                 current_setting('server_version')",
            )
            .await
            .map_err(failure)?;
        let row = rows
            .first()
            .ok_or_else(|| Failure::new(Reason::Query, "the identity query returned no row"))?;
        let decoded = (|| -> Result<(String, i32, String, i32, String), sqlx::Error> {
            Ok((
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
            ))
        })();
        let (sysid, timeline, addr, port, version) = decoded.map_err(failure)?;
        Ok(Identity {
            key: format!("sysid={sysid} timeline={timeline} addr={addr}:{port}"),
            version,
        })
    }

    async fn maintenance_flag(&mut self, sql: &str) -> Result<FlagValue, Failure> {
        let rows = self.query(sql).await.map_err(failure)?;
        rows.first()
            .map_or(Ok(FlagValue::Missing), super::flag_value)
    }

    async fn describe(&mut self) -> Result<String, Failure> {
        let rows = self
            .query(
                "SELECT current_user::text, s.ssl, coalesce(s.version, ''), coalesce(s.cipher, '') \
                 FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()",
            )
            .await
            .map_err(failure)?;
        let row = rows.first().ok_or_else(|| {
            Failure::new(Reason::Query, "pg_stat_ssl has no row for this session")
        })?;
        let (user, ssl, version, cipher): (String, bool, String, String) = (|| {
            Ok::<_, sqlx::Error>((
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
            ))
        })()
        .map_err(failure)?;
        let tls = if ssl {
            format!("over TLS ({version}, {cipher})")
        } else {
            "without TLS".to_owned()
        };
        // Behind a pooler, pg_stat_ssl describes the pooler's connection to the server.
        Ok(format!("the server says: session of {user}, {tls}"))
    }

    async fn close(self) {
        let _ = self.conn.close().await;
    }
}

impl PgSession {
    /// A permission error names the grant that is missing.
    fn heartbeat_failure(&self, err: sqlx::Error, privilege: &str) -> Failure {
        let code = match &err {
            sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
            _ => None,
        };
        let insufficient = code.as_deref() == Some("42501");
        let mut f = failure(err);
        // Undefined column, wrong type, no unique index for ON CONFLICT, an extra NOT NULL column.
        if matches!(code.as_deref(), Some("42703" | "42804" | "42P10" | "23502")) {
            f.message = self.sql.shape_hint(&f.message);
        }
        if insufficient {
            let object = match privilege {
                "CREATE ON SCHEMA" => self
                    .sql
                    .table
                    .rsplit_once('.')
                    .map_or("public", |(s, _)| s)
                    .to_owned(),
                _ => self.sql.table.clone(),
            };
            f.message = format!(
                "{}; grant it with: GRANT {privilege} {object} TO {}; or create the table yourself: {}",
                f.message, self.sql.user, self.sql.create
            );
        }
        f
    }
}

/// The first column of the first row.
fn first<T>(rows: &[PgRow]) -> Result<T, sqlx::Error>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    rows.first().ok_or(sqlx::Error::RowNotFound)?.try_get(0)
}

/// A string literal for the simple query protocol, escaped as libpq's `PQescapeLiteral`
/// does, so it means the same whatever `standard_conforming_strings` says.
fn literal(value: &str) -> String {
    let quoted = value.replace('\'', "''");
    if value.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

/// A failed login: whatever the server (or a pooler in front of it) answered, it is the
/// connect that failed, never a query.
fn connect_failure(err: sqlx::Error) -> Failure {
    let mut f = failure(err);
    if f.reason == Reason::Query {
        f.reason = Reason::Auth;
    }
    f
}

fn failure(err: sqlx::Error) -> Failure {
    net::sqlx_failure(err, |db| match db.code().as_deref() {
        Some("28P01" | "28000") => Reason::Auth,
        Some("53300") => Reason::TooManyConnections,
        Some("3D000") => Reason::NotFound,
        Some("25006") => Reason::ReadOnly,
        Some("57014") => Reason::Timeout,
        Some("55P03") => Reason::Locked,
        // Starting up or shutting down: not accepting connections.
        Some("57P03") => Reason::Refused,
        Some("57P01" | "57P02") => Reason::Io,
        _ => Reason::Query,
    })
}
