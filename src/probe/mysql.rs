//! MySQL and MariaDB: SQL, connect options and error numbers for the shared server flow.
//! The two differ in their statement limit (`max_statement_time` vs `max_execution_time`),
//! read-only variables and identity; the flavour is learned from `VERSION()` once.

use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlDatabaseError};

use super::server::{Dialect, HeartbeatSql, Session};
use super::{Beat, Failure, FlagValue, Identity, Reason, Trace, net};
use crate::config::Server;
use crate::connect;
use crate::time::Timestamp;
use crate::tunnel::Tunnel;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    MySql,
    MariaDb,
}

pub struct MySql {
    options: MySqlConnectOptions,
    flavour: Option<Flavour>,
    sql: Arc<HeartbeatSql>,
}

impl MySql {
    pub fn new(server: &Server) -> Self {
        let options = connect::mysql(server);
        // Qualified by the heartbeat schema, else the target's database, so that messages
        // name the table exactly; the database name is quoted as an identifier.
        let (table, schema) = match (&server.heartbeat_schema, &server.database) {
            (Some(schema), _) => (format!("{schema}.dbvigil_heartbeat"), format!("'{schema}'")),
            (None, Some(db)) => (
                format!("`{}`.dbvigil_heartbeat", db.replace('`', "``")),
                format!("'{}'", db.replace('\\', "\\\\").replace('\'', "''")),
            ),
            (None, None) => ("dbvigil_heartbeat".to_owned(), "DATABASE()".to_owned()),
        };
        let sql = HeartbeatSql {
            exists: format!(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = {schema} AND table_name = 'dbvigil_heartbeat'"
            )
            .into(),
            read: format!("SELECT seq, beat_at_ms FROM {table} WHERE target = ? AND instance = ?").into(),
            create: format!(
                "CREATE TABLE IF NOT EXISTS {table} (target VARCHAR(190) NOT NULL, instance VARCHAR(190) NOT NULL, \
                 seq BIGINT NOT NULL, beat_at_ms BIGINT NOT NULL, PRIMARY KEY (target, instance)) ENGINE=InnoDB"
            )
            .into(),
            write: format!(
                "INSERT INTO {table} (target, instance, seq, beat_at_ms) VALUES (?, ?, ?, ?) \
                 ON DUPLICATE KEY UPDATE seq = VALUES(seq), beat_at_ms = VALUES(beat_at_ms)"
            )
            .into(),
            user: server.user.clone(),
            table,
        };
        MySql {
            options,
            flavour: None,
            sql: Arc::new(sql),
        }
    }
}

impl Dialect for MySql {
    type Session = MySqlSession;

    async fn connect(&mut self, timeout: Duration, trace: &Trace) -> Result<MySqlSession, Failure> {
        let mut conn = MySqlConnection::connect_with(&self.options)
            .await
            .map_err(failure)?;
        trace.note(|| "logged in".to_owned());
        let flavour = match self.flavour {
            Some(f) => f,
            None => {
                trace.note(|| "query: SELECT VERSION()".to_owned());
                let version: String = sqlx::query_scalar("SELECT VERSION()")
                    .fetch_one(&mut conn)
                    .await
                    .map_err(failure)?;
                let f = if version.contains("MariaDB") {
                    Flavour::MariaDb
                } else {
                    Flavour::MySql
                };
                self.flavour = Some(f);
                f
            }
        };
        // Server-side limit so a probe statement never outlives the probe. MySQL's
        // max_execution_time covers SELECTs only; the client-side deadline covers the rest.
        let limit = match flavour {
            Flavour::MariaDb => format!(
                "SET SESSION max_statement_time = {:.3}",
                timeout.as_secs_f64()
            ),
            Flavour::MySql => format!(
                "SET SESSION max_execution_time = {}",
                timeout.as_millis().max(1)
            ),
        };
        trace.note(|| format!("query: {limit}"));
        if let Err(e) = sqlx::query(&limit).execute(&mut conn).await {
            // Another flavour behind the same address (after a switchover): learn it again.
            self.flavour = None;
            return Err(failure(e));
        }
        Ok(MySqlSession {
            conn,
            flavour,
            sql: self.sql.clone(),
            trace: trace.clone(),
        })
    }

    fn heartbeat_ddl(&self) -> &str {
        &self.sql.create
    }

    fn through(&mut self, tunnel: &Tunnel) {
        self.options = self.options.clone().socket(tunnel.socket_path());
    }
}

pub struct MySqlSession {
    conn: MySqlConnection,
    flavour: Flavour,
    sql: Arc<HeartbeatSql>,
    trace: Trace,
}

impl Session for MySqlSession {
    async fn select_one(&mut self) -> Result<(), Failure> {
        self.sent("SELECT CAST(1 AS SIGNED)", &[]);
        let one: i64 = sqlx::query_scalar("SELECT CAST(1 AS SIGNED)")
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
        self.sent(&self.sql.exists, &[]);
        let n: i64 = sqlx::query_scalar(&self.sql.exists)
            .fetch_one(&mut self.conn)
            .await
            .map_err(failure)?;
        Ok(n > 0)
    }

    async fn read_beat(&mut self, target: &str, instance: &str) -> Result<Option<Beat>, Failure> {
        self.sent(&self.sql.read, &[target, instance]);
        let row: Option<(i64, i64)> = sqlx::query_as(&self.sql.read)
            .bind(target)
            .bind(instance)
            .fetch_optional(&mut self.conn)
            .await
            .map_err(|e| self.heartbeat_failure(e, "SELECT, INSERT, UPDATE"))?;
        Ok(row.map(|(seq, at_ms)| Beat {
            seq,
            at: Timestamp::from_millis(at_ms),
        }))
    }

    async fn create_heartbeat(&mut self) -> Result<(), Failure> {
        self.sent(&self.sql.create, &[]);
        sqlx::query(&self.sql.create)
            .execute(&mut self.conn)
            .await
            .map_err(|e| self.heartbeat_failure(e, "CREATE"))?;
        Ok(())
    }

    async fn write_beat(
        &mut self,
        target: &str,
        instance: &str,
        beat: Beat,
    ) -> Result<(), Failure> {
        let (seq, at) = (beat.seq.to_string(), beat.at.as_millis().to_string());
        self.sent(&self.sql.write, &[target, instance, &seq, &at]);
        sqlx::query(&self.sql.write)
            .bind(target)
            .bind(instance)
            .bind(beat.seq)
            .bind(beat.at.as_millis())
            .execute(&mut self.conn)
            .await
            .map_err(|e| self.heartbeat_failure(e, "SELECT, INSERT, UPDATE"))?;
        Ok(())
    }

    async fn read_only(&mut self) -> Result<bool, Failure> {
        let sql = match self.flavour {
            Flavour::MariaDb => "SELECT CAST(@@read_only + @@innodb_read_only AS SIGNED)",
            Flavour::MySql => {
                "SELECT CAST(@@read_only + @@super_read_only + @@innodb_read_only AS SIGNED)"
            }
        };
        self.sent(sql, &[]);
        let any: i64 = sqlx::query_scalar(sql)
            .fetch_one(&mut self.conn)
            .await
            .map_err(failure)?;
        Ok(any > 0)
    }

    async fn identity(&mut self) -> Result<Identity, Failure> {
        // MariaDB has no server_uuid and server_id defaults to 1 everywhere: host name, port
        // and server_id together tell servers apart (see docs/metrics.md for the limits).
        let sql = match self.flavour {
            Flavour::MariaDb => {
                "SELECT CONCAT('host=', @@hostname, ' port=', @@port, ' server_id=', @@server_id), VERSION()"
            }
            Flavour::MySql => {
                "SELECT CONCAT('uuid=', @@server_uuid, ' host=', @@hostname, ' port=', @@port), VERSION()"
            }
        };
        self.sent(sql, &[]);
        let (key, version): (String, String) = sqlx::query_as(sql)
            .fetch_one(&mut self.conn)
            .await
            .map_err(failure)?;
        Ok(Identity { key, version })
    }

    async fn maintenance_flag(&mut self, sql: &str) -> Result<FlagValue, Failure> {
        self.sent(sql, &[]);
        let row = sqlx::query(sql)
            .fetch_optional(&mut self.conn)
            .await
            .map_err(failure)?;
        row.as_ref()
            .map_or(Ok(FlagValue::Missing), super::flag_value)
    }

    async fn describe(&mut self) -> Result<String, Failure> {
        self.sent("SELECT CURRENT_USER()", &[]);
        let user: String = sqlx::query_scalar("SELECT CURRENT_USER()")
            .fetch_one(&mut self.conn)
            .await
            .map_err(failure)?;
        let sql = "SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')";
        self.sent(sql, &[]);
        let status: Vec<(String, String)> = sqlx::query_as(sql)
            .fetch_all(&mut self.conn)
            .await
            .map_err(failure)?;
        let value = |name: &str| {
            status
                .iter()
                .find(|(n, v)| n.eq_ignore_ascii_case(name) && !v.is_empty())
                .map(|(_, v)| v.as_str())
        };
        let tls = match (value("Ssl_version"), value("Ssl_cipher")) {
            (Some(v), Some(c)) => format!("over TLS ({v}, {c})"),
            _ => "without TLS".to_owned(),
        };
        Ok(format!("the server says: session of {user}, {tls}"))
    }

    async fn close(self) {
        let _ = self.conn.close().await;
    }
}

impl MySqlSession {
    /// Notes a statement in the probe's log, with the values bound to its placeholders.
    fn sent(&self, sql: &str, values: &[&str]) {
        self.trace.note(|| match values {
            [] => format!("query: {sql}"),
            v => format!("query: {sql} with ({})", v.join(", ")),
        });
    }

    fn heartbeat_failure(&self, err: sqlx::Error, privilege: &str) -> Failure {
        let number = match &err {
            sqlx::Error::Database(db) => db
                .try_downcast_ref::<MySqlDatabaseError>()
                .map(|e| e.number()),
            _ => None,
        };
        let denied = matches!(number, Some(1142 | 1044 | 1227));
        let mut f = failure(err);
        // Unknown column, a column without default, a value of the wrong type.
        if matches!(number, Some(1054 | 1364 | 1366)) {
            f.message = self.sql.shape_hint(&f.message);
        }
        if denied {
            f.message = format!(
                "{}; grant it with: GRANT {privilege} ON {} TO '{}'; or create the table yourself: {}",
                f.message, self.sql.table, self.sql.user, self.sql.create
            );
        }
        f
    }
}

fn failure(err: sqlx::Error) -> Failure {
    net::sqlx_failure(err, |db| {
        let number = db
            .try_downcast_ref::<MySqlDatabaseError>()
            .map_or(0, |e| e.number());
        match number {
            1045 | 1698 => Reason::Auth,
            1040 | 1203 => Reason::TooManyConnections,
            1049 => Reason::NotFound,
            1290 | 1836 | 1874 => Reason::ReadOnly,
            1969 | 3024 => Reason::Timeout,
            1205 => Reason::Locked,
            _ => Reason::Query,
        }
    })
}
