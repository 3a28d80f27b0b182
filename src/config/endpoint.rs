//! Where a target is and how to log in: the connection fields each kind takes, checked
//! against each other and against the files they name.

use std::path::PathBuf;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::ssh::{self, SshConfig};
use super::targets::raw::Target;
use super::url::apply_url;
use super::values::Expanded;
use super::{ConfigError, Kind, Secret, Validator};

/// How to reach a target, so a prober receives exactly what its kind needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    Sqlite {
        path: PathBuf,
        /// Create the file when missing. Off by default: a vanished database is an outage,
        /// not something to paper over with an empty file.
        create: bool,
    },
    /// PostgreSQL, MySQL or MariaDB.
    Server(Server),
    Tcp {
        host: String,
        port: u16,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<Secret>,
    /// The password as written in the URL (percent-encoded), so it can be redacted too.
    pub password_in_url: Secret,
    pub database: Option<String>,
    pub tls: Tls,
    /// Schema (PostgreSQL) or database (MySQL) holding `dbvigil_heartbeat`; default: the
    /// connection's own.
    pub heartbeat_schema: Option<String>,
    /// Create the heartbeat table on first use.
    pub create_heartbeat_table: bool,
    /// The target whose heartbeat this replica receives: its age is the replication lag.
    pub replica_of: Option<String>,
    /// The bastion the connection is forwarded through; `host` and `port` are then the
    /// database as the bastion sees it.
    pub ssh: Option<Box<SshConfig>>,
}

impl Server {
    /// A server of `kind` at its default port, with every option at its default; callers
    /// fill in where it is.
    pub fn blank(kind: Kind) -> Server {
        Server {
            host: String::new(),
            port: kind.default_port(),
            user: String::new(),
            password: None,
            password_in_url: Secret(String::new()),
            database: None,
            tls: Tls::default(),
            heartbeat_schema: None,
            create_heartbeat_table: true,
            replica_of: None,
            ssh: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tls {
    pub mode: TlsMode,
    /// CA bundle for verify-ca and verify-full.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    Disable,
    /// TLS when the server offers it (libpq's default).
    #[default]
    Prefer,
    Require,
    /// TLS, and the server certificate must be signed by the CA.
    VerifyCa,
    /// verify-ca, and the certificate must name the host.
    VerifyFull,
}

impl TlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }
}

pub(super) mod raw {
    //! The connection sections of a target as written.
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RawTls {
        pub mode: Option<TlsMode>,
        pub ca_file: Option<Spanned<Expanded>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RawHeartbeat {
        pub schema: Option<Spanned<Expanded>>,
        pub create: Option<bool>,
    }
}

impl Validator<'_> {
    pub(super) fn endpoint(
        &self,
        t: &Target,
        kind: Kind,
        default_ssh: Option<&Spanned<ssh::raw::Ssh>>,
    ) -> Result<Endpoint, ConfigError> {
        self.reject_foreign_fields(t, kind)?;
        match kind {
            Kind::Sqlite => {
                let Some(path) = &t.path else {
                    return Err(self.err(
                        t.kind.referenced,
                        "a sqlite target needs `path`: the database file to probe",
                    ));
                };
                if path.value.0.trim().is_empty() {
                    return Err(self.err(path.referenced, "path must not be empty"));
                }
                Ok(Endpoint::Sqlite {
                    path: self.path(&path.value.0),
                    create: t.create.as_ref().is_some_and(|c| c.value),
                })
            }
            Kind::Tcp => {
                let Some(host) = &t.host else {
                    return Err(self.err(t.kind.referenced, "a tcp target needs `host` and `port`"));
                };
                let Some(port) = &t.port else {
                    return Err(self.err(t.kind.referenced, "a tcp target needs `port`"));
                };
                Ok(Endpoint::Tcp {
                    host: host.value.0.clone(),
                    port: port.value,
                })
            }
            Kind::Postgres | Kind::Mysql => {
                let mut server = self.server(t, kind)?;
                server.ssh = self.ssh(t, default_ssh)?.map(Box::new);
                Ok(Endpoint::Server(server))
            }
        }
    }

    /// Each connection field belongs to some kinds only; a field given to another kind is
    /// a mistake worth stopping for, not something to ignore.
    fn reject_foreign_fields(&self, t: &Target, kind: Kind) -> Result<(), ConfigError> {
        use Kind::*;
        let fields: [(&str, Option<serde_saphyr::Location>, &[Kind]); 13] = [
            ("path", t.path.as_ref().map(|s| s.referenced), &[Sqlite]),
            ("create", t.create.as_ref().map(|s| s.referenced), &[Sqlite]),
            (
                "url",
                t.url.as_ref().map(|s| s.referenced),
                &[Postgres, Mysql],
            ),
            (
                "host",
                t.host.as_ref().map(|s| s.referenced),
                &[Postgres, Mysql, Tcp],
            ),
            (
                "port",
                t.port.as_ref().map(|s| s.referenced),
                &[Postgres, Mysql, Tcp],
            ),
            (
                "user",
                t.user.as_ref().map(|s| s.referenced),
                &[Postgres, Mysql],
            ),
            (
                "database",
                t.database.as_ref().map(|s| s.referenced),
                &[Postgres, Mysql],
            ),
            (
                "password",
                t.password.as_ref().map(|s| s.referenced),
                &[Postgres, Mysql],
            ),
            (
                "password_file",
                t.password_file.as_ref().map(|s| s.referenced),
                &[Postgres, Mysql],
            ),
            (
                "tls",
                t.tls.as_ref().map(|s| s.referenced),
                &[Postgres, Mysql],
            ),
            (
                "heartbeat",
                t.heartbeat.as_ref().map(|s| s.referenced),
                &[Postgres, Mysql],
            ),
            (
                "replica_of",
                t.replica_of.as_ref().map(|s| s.referenced),
                &[Postgres, Mysql],
            ),
            (
                "ssh",
                t.ssh.as_ref().map(|s| s.referenced),
                &[Postgres, Mysql],
            ),
        ];
        for (field, at, kinds) in fields {
            if let Some(at) = at {
                if !kinds.contains(&kind) {
                    let hint = match kind {
                        Sqlite => "a SQLite target is a file; set `path`",
                        Tcp => "a tcp target only takes `host` and `port`",
                        Postgres | Mysql => {
                            "a server is reached by `url`, or `host`, `port`, `user`, `database`"
                        }
                    };
                    return Err(self.err(
                        at,
                        format!("`{field}` does not apply to kind {}: {hint}", kind.as_str()),
                    ));
                }
            }
        }
        Ok(())
    }

    fn server(&self, t: &Target, kind: Kind) -> Result<Server, ConfigError> {
        let mut server = Server {
            replica_of: t.replica_of.as_ref().map(|r| r.value.0.clone()),
            ..Server::blank(kind)
        };
        if let Some(url) = &t.url {
            if let Some(host) = &t.host {
                return Err(self.err(host.referenced, "set either `url` or `host`, not both"));
            }
            apply_url(&mut server, &url.value.0, kind)
                .map_err(|e| self.err(url.referenced, e.to_string()))?;
        } else if let Some(host) = &t.host {
            server.host = host.value.0.clone();
        } else {
            return Err(self.err(
                t.kind.referenced,
                format!("a {} target needs `url` or `host`", kind.as_str()),
            ));
        }
        if server.host.trim().is_empty() {
            let at = t.host.as_ref().map_or(t.kind.referenced, |h| h.referenced);
            return Err(self.err(at, "the host must not be empty"));
        }
        if let Some(port) = &t.port {
            server.port = port.value;
        }
        if let Some(user) = &t.user {
            server.user = user.value.0.clone();
        }
        if server.user.is_empty() {
            return Err(self.err(
                t.kind.referenced,
                format!(
                    "a {} target needs `user` (or a user in `url`)",
                    kind.as_str()
                ),
            ));
        }
        if let Some(db) = &t.database {
            server.database = Some(db.value.0.clone());
        }
        let given = match (&t.password, &t.password_file) {
            (Some(_), Some(f)) => {
                return Err(self.err(
                    f.referenced,
                    "set either `password` or `password_file`, not both",
                ));
            }
            (Some(p), None) => Some((p.referenced, p.value.clone())),
            (None, Some(f)) => Some((f.referenced, self.read_password_file(f)?)),
            (None, None) => None,
        };
        if let Some((at, password)) = given {
            if server.password.is_some() {
                return Err(self.err(
                    at,
                    "the password is given twice (in `url` and here): keep one",
                ));
            }
            server.password = Some(password);
        }
        if let Some(tls) = &t.tls {
            if let Some(mode) = tls.value.mode {
                server.tls.mode = mode;
            }
            if let Some(ca) = &tls.value.ca_file {
                let path = self.path(&ca.value.0);
                if let Err(e) = std::fs::metadata(&path) {
                    return Err(self.err(
                        ca.referenced,
                        format!(
                            "cannot read tls ca_file {:?}: {e}; fix the path or remove ca_file",
                            ca.value.0
                        ),
                    ));
                }
                server.tls.ca_file = Some(path);
            }
        }
        if matches!(server.tls.mode, TlsMode::VerifyCa | TlsMode::VerifyFull)
            && server.tls.ca_file.is_none()
        {
            let at = t.tls.as_ref().map_or(t.kind.referenced, |t| t.referenced);
            return Err(self.err(at, "tls mode verify-ca and verify-full need `ca_file`: the CA that signed the server's certificate"));
        }
        if let Some(hb) = &t.heartbeat {
            if let Some(schema) = &hb.value.schema {
                if !valid_identifier(&schema.value.0) {
                    return Err(self.err(
                        schema.referenced,
                        format!("heartbeat schema {:?} must be a plain identifier: letters, digits, '_' and '$', not starting with a digit", schema.value.0),
                    ));
                }
                server.heartbeat_schema = Some(schema.value.0.clone());
            }
            server.create_heartbeat_table = hb.value.create.unwrap_or(true);
        }
        Ok(server)
    }

    /// The target's own `ssh:` block, else the one in `defaults:` (checked once for all).
    fn ssh(
        &self,
        t: &Target,
        default_ssh: Option<&Spanned<ssh::raw::Ssh>>,
    ) -> Result<Option<SshConfig>, ConfigError> {
        let checked = match &t.ssh {
            Some(own) => ssh::validate(&own.value, own.referenced, self.base).map(Some),
            None => self
                .default_ssh
                .get_or_init(|| {
                    default_ssh
                        .map(|d| ssh::validate(&d.value, d.referenced, self.base))
                        .transpose()
                })
                .clone(),
        };
        checked.map_err(|(at, message)| self.err(at, message))
    }

    /// Read when the configuration is loaded and on every reload, so a rotated secret is
    /// picked up. Trailing newlines are not part of the password.
    fn read_password_file(&self, f: &Spanned<Expanded>) -> Result<Secret, ConfigError> {
        let path = &f.value.0;
        match std::fs::read_to_string(self.path(path)) {
            Ok(text) => Ok(Secret(text.trim_end_matches(['\r', '\n']).to_owned())),
            Err(e) => Err(self.err(
                f.referenced,
                format!("cannot read password_file {path:?}: {e}; create it or fix the path, and make it readable by dbvigil"),
            )),
        }
    }
}

fn valid_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c == '$' || c.is_ascii_alphanumeric())
        && name.len() <= 63
}
