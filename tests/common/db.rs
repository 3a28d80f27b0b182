//! Throwaway servers of either engine behind one type, and the YAML and waits that the
//! server scenarios share.

use std::time::Duration;

use super::forwarder::Forwarder;
use super::servers::{MariaDbServer, PgServer, test_certs};
use super::{TestExporter, eventually};

pub const WAIT: Duration = Duration::from_secs(20);

/// A throwaway server of either kind, with a database `app` and a login `probe` that owns
/// it (PostgreSQL) or has every privilege on it (MariaDB) but is no superuser.
/// Production-shaped: `probe` logs in with its password over TLS only (PostgreSQL: SCRAM
/// on a `hostssl` line; MariaDB: `REQUIRE SSL`), and [`Db::probe_settings`] verifies the
/// server certificate against the test CA.
pub enum Db {
    Pg(PgServer),
    Maria(MariaDbServer),
}

#[derive(Clone, Copy, Debug)]
pub enum Engine {
    Postgres,
    MariaDb,
}

impl Db {
    pub fn start(engine: Engine) -> Option<Db> {
        Db::start_with(engine, true)
    }

    /// [`Db::start`], but a PostgreSQL server offers no TLS until the test turns it on
    /// (see `PgServer::start_without_tls`); MariaDB servers always offer it.
    pub fn start_without_tls(engine: Engine) -> Option<Db> {
        Db::start_with(engine, false)
    }

    fn start_with(engine: Engine, tls: bool) -> Option<Db> {
        let start_pg = if tls {
            PgServer::start
        } else {
            PgServer::start_without_tls
        };
        block(|| {
            match engine {
            Engine::Postgres => start_pg().map(|pg| {
                pg.psql(
                    "CREATE ROLE probe LOGIN PASSWORD 'probe-pw'; CREATE DATABASE app OWNER probe;",
                );
                Db::Pg(pg)
            }),
            Engine::MariaDb => MariaDbServer::start().map(|m| {
                m.sql(
                    "CREATE DATABASE app; \
                     CREATE USER 'probe'@'127.0.0.1' IDENTIFIED BY 'probe-pw' REQUIRE SSL; \
                     CREATE USER 'probe'@'localhost' IDENTIFIED BY 'probe-pw' REQUIRE SSL; \
                     GRANT ALL ON app.* TO 'probe'@'127.0.0.1'; GRANT ALL ON app.* TO 'probe'@'localhost';",
                );
                Db::Maria(m)
            }),
        }
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Db::Pg(_) => "postgres",
            Db::Maria(_) => "mysql",
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            Db::Pg(s) => s.port(),
            Db::Maria(s) => s.port(),
        }
    }

    /// Connection settings of the `probe` login as YAML lines of a target: TLS with the
    /// certificate verified against the test CA (`verify-full`), as production runs.
    pub fn probe_settings(&self) -> String {
        self.probe_settings_tls(&format!(
            "{{mode: verify-full, ca_file: {}}}",
            test_certs().ca_file.display()
        ))
    }

    /// [`Db::probe_settings`] without TLS (`mode: disable`), for tests about plain
    /// connections: the server refuses them for `probe`.
    pub fn probe_settings_plain(&self) -> String {
        self.probe_settings_tls("{mode: disable}")
    }

    /// [`Db::probe_settings`] with the given YAML `tls:` value.
    pub fn probe_settings_tls(&self, tls: &str) -> String {
        format!(
            "    kind: {}\n    host: 127.0.0.1\n    port: {}\n    user: probe\n    password: probe-pw\n    database: app\n    tls: {tls}\n",
            self.kind(),
            self.port()
        )
    }

    pub fn sql(&self, sql: &str) -> String {
        match self {
            Db::Pg(s) => s.psql(&format!("\\c app\n{sql}")),
            Db::Maria(s) => s.sql(&format!("USE app; {sql}")),
        }
    }

    pub fn set_read_only(&self, on: bool) {
        match self {
            Db::Pg(s) => {
                let v = if on { "on" } else { "off" };
                s.psql(&format!(
                    "ALTER SYSTEM SET default_transaction_read_only = {v}; SELECT pg_reload_conf();"
                ));
            }
            Db::Maria(s) => {
                s.sql(&format!("SET GLOBAL read_only = {};", u8::from(on)));
            }
        }
    }

    pub fn stop(&mut self) {
        block(|| match self {
            Db::Pg(s) => s.stop(),
            Db::Maria(s) => s.stop(),
        })
    }

    pub fn start_again(&mut self) {
        block(|| match self {
            Db::Pg(s) => s.start_again(),
            Db::Maria(s) => s.start_again(),
        })
    }

    pub fn freeze(&self) {
        block(|| match self {
            Db::Pg(s) => s.freeze(),
            Db::Maria(s) => s.freeze(),
        })
    }

    pub fn thaw(&self) {
        block(|| match self {
            Db::Pg(s) => s.thaw(),
            Db::Maria(s) => s.thaw(),
        })
    }

    pub fn connections(&self) -> i64 {
        block(|| match self {
            Db::Pg(s) => s.connection_count("probe"),
            Db::Maria(s) => s.connection_count("probe"),
        })
    }
}

/// Runs blocking harness work without stalling the exporter's tasks on this runtime.
pub fn block<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// A server target for the `probe` login. `failure_threshold: 2`: on a loaded two-core CI
/// machine one 100 ms probe can run late, and a single slow probe is not an outage; an
/// episode still starts at its first failed probe, so measured durations stay exact.
pub fn target(name: &str, db: &Db, interval: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n{}    interval: {interval}\n    failure_threshold: 2\n{extra}",
        db.probe_settings()
    )
}

pub fn config(targets: &[String]) -> String {
    format!("targets:\n{}", targets.concat())
}

pub async fn wait_up(e: &TestExporter, name: &str, want: f64) {
    eventually(WAIT, &format!("{name} up == {want}"), || async {
        (e.metrics().await.get("dbvigil_up", &[("target", name)]) == Some(want)).then_some(())
    })
    .await;
}

/// A PostgreSQL primary with an `app` database owned by the `probe` login (password
/// `probe-pw`), an asynchronous standby whose replication stream runs through a forwarder
/// (so a test can lose its packets), and a forwarder that clients reach the primary through
/// (so a test can move them to the standby): `(primary, replication, standby, clients)`.
/// `None` where PostgreSQL cannot run.
pub async fn replicated_behind_forwarders() -> Option<(PgServer, Forwarder, PgServer, Forwarder)> {
    let primary = block(PgServer::start)?;
    block(|| {
        primary
            .psql("CREATE ROLE probe LOGIN PASSWORD 'probe-pw'; CREATE DATABASE app OWNER probe;")
    });
    let replication = Forwarder::start(primary.port()).await;
    let standby = block(|| PgServer::start_standby_through(replication.port));
    let clients = Forwarder::start(primary.port()).await;
    Some((primary, replication, standby, clients))
}
