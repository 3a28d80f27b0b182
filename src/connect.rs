//! How dbvigil reaches a configured database server, shared by the probes, the migration
//! runner and the migration-history reader: the drivers' connect options, and `redact`,
//! which takes a target's secrets out of whatever a driver says before anyone sees it.

use sqlx::ConnectOptions;
use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::config::{Server, TlsMode};

/// PostgreSQL's connect options for a configured server, without `~/.pgpass`: the configuration
/// is the only source of a login.
/// `application_name` shows in `pg_stat_activity`, so a DBA can tell dbvigil's sessions apart.
pub fn postgres(server: &Server, application_name: &str) -> PgConnectOptions {
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

/// MySQL's and MariaDB's connect options for a configured server.
pub fn mysql(server: &Server) -> MySqlConnectOptions {
    let mut options = MySqlConnectOptions::new()
        .host(&server.host)
        .port(server.port)
        .username(&server.user)
        .ssl_mode(match server.tls.mode {
            TlsMode::Disable => MySqlSslMode::Disabled,
            TlsMode::Prefer => MySqlSslMode::Preferred,
            TlsMode::Require => MySqlSslMode::Required,
            TlsMode::VerifyCa => MySqlSslMode::VerifyCa,
            TlsMode::VerifyFull => MySqlSslMode::VerifyIdentity,
        })
        // No session SETs at connect: dbvigil sets only its statement limit.
        .pipes_as_concat(false)
        .no_engine_substitution(false)
        .timezone(None)
        .set_names(false)
        .disable_statement_logging();
    if let Some(p) = &server.password {
        options = options.password(&p.0);
    }
    if let Some(db) = &server.database {
        options = options.database(db);
    }
    if let Some(ca) = &server.tls.ca_file {
        options = options.ssl_ca(ca);
    }
    options
}

/// `text` with every non-empty secret replaced by `<redacted>`.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s, "<redacted>");
    }
    out
}
