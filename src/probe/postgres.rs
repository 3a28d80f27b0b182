//! PostgreSQL: SQL, connect options and SQLSTATE codes for the shared server flow.
//! Identity is the system identifier, timeline and the server's own address and port, so a
//! restart is not a change but a promoted standby or another cluster is.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{ConnectOptions, Connection};

use super::server::{Dialect, HeartbeatSql, Session};
use super::{Beat, Failure, FlagValue, Identity, Reason, net};
use crate::config::{Server, TlsMode};

pub struct Postgres {
    options: PgConnectOptions,
    sql: Arc<HeartbeatSql>,
}

/// Connect options for a configured server, shared with the migration runner and reader.
/// `application_name` shows in `pg_stat_activity`, so a DBA can tell dbvigil's sessions apart.
pub fn connect_options(server: &Server, application_name: &str) -> PgConnectOptions {
    let mut options = PgConnectOptions::new_without_pgpass()
        .host(&server.host)
        .port(server.port)
        .username(&server.user)
        .application_name(application_name)
        .ssl_mode(match server.tls.mode {
            TlsMode::Disable => PgSslMode::Disable,
            TlsMode::Prefer => PgSslMode::Prefer,
            TlsMode::Require => PgSslMode::Require,
            TlsMode::VerifyCa => PgSslMode::VerifyCa,
            TlsMode::VerifyFull => PgSslMode::VerifyFull,
        })
        .disable_statement_logging();
    if let Some(p) = &server.password {
        options = options.password(&p.0);
    }
    if let Some(db) = &server.database {
        options = options.database(db);
    }
    if let Some(ca) = &server.tls.ca_file {
        options = options.ssl_root_cert(ca);
    }
    options
}

impl Postgres {
    pub fn new(server: &Server) -> Self {
        let options = connect_options(server, "dbvigil");
        let table = match &server.heartbeat_schema {
            Some(schema) => format!("{schema}.dbvigil_heartbeat"),
            None => "dbvigil_heartbeat".to_owned(),
        };
        let sql = HeartbeatSql {
            exists: format!("SELECT to_regclass('{table}') IS NOT NULL").into(),
            read: format!("SELECT seq, beat_at_ms FROM {table} WHERE target = $1 AND instance = $2").into(),
            create: format!(
                "CREATE TABLE IF NOT EXISTS {table} (target text NOT NULL, instance text NOT NULL, \
                 seq bigint NOT NULL, beat_at_ms bigint NOT NULL, PRIMARY KEY (target, instance))"
            )
            .into(),
            write: format!(
                "INSERT INTO {table} (target, instance, seq, beat_at_ms) VALUES ($1, $2, $3, $4) \
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

    async fn connect(&mut self, timeout: Duration) -> Result<PgSession, Failure> {
        // The server aborts any statement that outlives the probe, so a stuck probe query
        // never lingers on the server after the client gave up.
        let options = self.options.clone().options([(
            "statement_timeout",
            format!("{}ms", timeout.as_millis().max(1)),
        )]);
        let conn = PgConnection::connect_with(&options)
            .await
            .map_err(failure)?;
        Ok(PgSession {
            conn,
            sql: self.sql.clone(),
        })
    }

    fn heartbeat_ddl(&self) -> &str {
        &self.sql.create
    }
}

pub struct PgSession {
    conn: PgConnection,
    sql: Arc<HeartbeatSql>,
}

impl Session for PgSession {
    async fn select_one(&mut self) -> Result<(), Failure> {
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut self.conn)
            .await
            .map_err(failure)?;
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
        sqlx::query_scalar(&self.sql.exists)
            .fetch_one(&mut self.conn)
            .await
            .map_err(failure)
    }

    async fn read_beat(&mut self, target: &str, instance: &str) -> Result<Option<Beat>, Failure> {
        let row: Option<(i64, i64)> = sqlx::query_as(&self.sql.read)
            .bind(target)
            .bind(instance)
            .fetch_optional(&mut self.conn)
            .await
            .map_err(|e| self.heartbeat_failure(e, "SELECT, INSERT, UPDATE ON"))?;
        Ok(row.map(|(seq, at_ms)| Beat { seq, at_ms }))
    }

    async fn create_heartbeat(&mut self) -> Result<(), Failure> {
        sqlx::query(&self.sql.create)
            .execute(&mut self.conn)
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
        sqlx::query(&self.sql.write)
            .bind(target)
            .bind(instance)
            .bind(beat.seq)
            .bind(beat.at_ms)
            .execute(&mut self.conn)
            .await
            .map_err(|e| self.heartbeat_failure(e, "SELECT, INSERT, UPDATE ON"))?;
        Ok(())
    }

    async fn read_only(&mut self) -> Result<bool, Failure> {
        let (recovery, read_only): (bool, bool) = sqlx::query_as(
            "SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on'",
        )
        .fetch_one(&mut self.conn)
        .await
        .map_err(failure)?;
        Ok(recovery || read_only)
    }

    async fn identity(&mut self) -> Result<Identity, Failure> {
        let (sysid, timeline, addr, port, version): (String, i32, String, i32, String) =
            sqlx::query_as(
                "SELECT (SELECT system_identifier::text FROM pg_control_system()), \
             (SELECT timeline_id FROM pg_control_checkpoint()), \
             coalesce(host(inet_server_addr()), 'socket'), coalesce(inet_server_port(), 0), \
             current_setting('server_version')",
            )
            .fetch_one(&mut self.conn)
            .await
            .map_err(failure)?;
        Ok(Identity {
            key: format!("sysid={sysid} timeline={timeline} addr={addr}:{port}"),
            version,
        })
    }

    async fn maintenance_flag(&mut self, sql: &str) -> Result<FlagValue, Failure> {
        let row = sqlx::query(sql)
            .fetch_optional(&mut self.conn)
            .await
            .map_err(failure)?;
        row.as_ref()
            .map_or(Ok(FlagValue::Missing), super::flag_value)
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
