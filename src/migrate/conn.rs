//! One open connection to a database being migrated or read, whatever its engine, and the
//! few engine-neutral operations the runner and the history readers share.

use std::time::Duration;

use sqlx::mysql::{MySqlConnection, MySqlRow};
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{ConnectOptions, Connection, Row};

use crate::config::{Endpoint, Kind, Server};
use crate::tunnel::{Failure, Tunnel, TunnelError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    /// MySQL and MariaDB.
    MySql,
    Sqlite,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::MySql => "mysql",
            Engine::Sqlite => "sqlite",
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            Engine::Postgres => Kind::Postgres,
            Engine::MySql => Kind::Mysql,
            Engine::Sqlite => Kind::Sqlite,
        }
    }
}

/// Why a connection is opened: a reader never creates a SQLite file and never writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Migrate,
    Read,
}

pub enum DbConn {
    Postgres(PgConnection),
    MySql(MySqlConnection),
    Sqlite(SqliteConnection),
}

/// A parameter of `execute_with`.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Text(&'a str),
    Int(i64),
    Bool(bool),
}

/// A value as the driver decoded it, for reading tables whose column types vary by tool,
/// engine and version.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Cell {
    pub fn text(&self) -> Option<String> {
        match self {
            Cell::Null => None,
            Cell::Bool(b) => Some(b.to_string()),
            Cell::Int(i) => Some(i.to_string()),
            Cell::Float(f) => Some(f.to_string()),
            Cell::Text(t) => Some(t.clone()),
        }
    }

    pub fn int(&self) -> Option<i64> {
        match self {
            Cell::Bool(b) => Some(i64::from(*b)),
            Cell::Int(i) => Some(*i),
            Cell::Float(f) => Some(*f as i64),
            Cell::Text(t) => t.trim().parse().ok(),
            Cell::Null => None,
        }
    }

    pub fn float(&self) -> Option<f64> {
        match self {
            Cell::Bool(b) => Some(f64::from(u8::from(*b))),
            Cell::Int(i) => Some(*i as f64),
            Cell::Float(f) => Some(*f),
            Cell::Text(t) => t.trim().parse().ok(),
            Cell::Null => None,
        }
    }

    /// Booleans as the engines store them: bool, 0/1, or t/f text.
    pub fn bool(&self) -> Option<bool> {
        match self {
            Cell::Bool(b) => Some(*b),
            Cell::Int(i) => Some(*i != 0),
            Cell::Float(f) => Some(*f != 0.0),
            Cell::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
                "t" | "true" | "1" | "y" | "yes" => Some(true),
                "f" | "false" | "0" | "n" | "no" => Some(false),
                _ => None,
            },
            Cell::Null => None,
        }
    }
}

impl DbConn {
    /// Opens a connection to a configured endpoint. No timeout here: callers bound it,
    /// since sqlx connect options have none.
    pub async fn open(
        endpoint: &Endpoint,
        kind: Kind,
        purpose: Purpose,
    ) -> Result<DbConn, sqlx::Error> {
        let app = match purpose {
            Purpose::Migrate => "dbvigil migrate",
            Purpose::Read => "dbvigil",
        };
        match (endpoint, kind) {
            (Endpoint::Server(server), _) if server.ssh.is_some() => {
                Self::open_through_bastion(server, kind, app).await
            }
            (Endpoint::Server(server), Kind::Postgres) => {
                PgConnection::connect_with(&crate::connect::postgres(server, app))
                    .await
                    .map(DbConn::Postgres)
            }
            (Endpoint::Server(server), _) => {
                MySqlConnection::connect_with(&crate::connect::mysql(server))
                    .await
                    .map(DbConn::MySql)
            }
            (Endpoint::Sqlite { path, create }, _) => {
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(*create && purpose == Purpose::Migrate)
                    .read_only(purpose == Purpose::Read)
                    .busy_timeout(Duration::ZERO)
                    .disable_statement_logging();
                options.connect().await.map(DbConn::Sqlite)
            }
            (Endpoint::Tcp { .. }, _) => Err(sqlx::Error::Configuration(
                "a tcp target has no database to migrate or read: give the target kind postgres, mysql or sqlite".into(),
            )),
        }
    }

    /// A connection through a tunnel of its own. The tunnel's socket goes once the driver
    /// is connected; the forward it made, and the session under it, live as long as the
    /// connection does and end with it.
    async fn open_through_bastion(
        server: &Server,
        kind: Kind,
        app: &str,
    ) -> Result<DbConn, sqlx::Error> {
        /// Bounds what the tunnel does on its own; callers bound the whole open.
        const TUNNEL_STEP: Duration = Duration::from_secs(30);
        let ssh = server.ssh.as_deref().expect("called behind a bastion");
        let tunnel_error = |e: TunnelError| sqlx::Error::Io(std::io::Error::other(e));
        let tunnel = Tunnel::new(ssh, &server.host, server.port, TUNNEL_STEP)
            .await
            .map_err(tunnel_error)?;
        tunnel.ensure().await.map_err(tunnel_error)?;
        let connected = if kind == Kind::Postgres {
            PgConnection::connect_with(
                &crate::connect::postgres(server, app).socket(tunnel.socket_dir()),
            )
            .await
            .map(DbConn::Postgres)
        } else {
            MySqlConnection::connect_with(
                &crate::connect::mysql(server).socket(tunnel.socket_path()),
            )
            .await
            .map(DbConn::MySql)
        };
        // The driver saw only a closed socket; the tunnel knows why.
        connected.map_err(|e| tunnel.take_relay_failure().map_or(e, tunnel_error))
    }

    /// The bastion refused for a reason that waiting will not change (its host key, the
    /// login, forwarding not allowed): `--wait-for` gives up at once.
    pub fn bastion_refused(e: &sqlx::Error) -> bool {
        let sqlx::Error::Io(io) = e else {
            return false;
        };
        io.get_ref()
            .and_then(|inner| inner.downcast_ref::<TunnelError>())
            .is_some_and(|t| {
                matches!(
                    t.failure,
                    Failure::BastionHostKey | Failure::BastionAuth | Failure::BastionDenied
                )
            })
    }

    pub fn engine(&self) -> Engine {
        match self {
            DbConn::Postgres(_) => Engine::Postgres,
            DbConn::MySql(_) => Engine::MySql,
            DbConn::Sqlite(_) => Engine::Sqlite,
        }
    }

    /// Runs SQL through the engine's simple (text) protocol, which accepts any statement,
    /// including those that cannot be prepared (procedures, `DELIMITER`-free bodies).
    pub async fn execute(&mut self, sql: &str) -> Result<u64, sqlx::Error> {
        Ok(match self {
            DbConn::Postgres(c) => sqlx::raw_sql(sql).execute(c).await?.rows_affected(),
            DbConn::MySql(c) => sqlx::raw_sql(sql).execute(c).await?.rows_affected(),
            DbConn::Sqlite(c) => sqlx::raw_sql(sql).execute(c).await?.rows_affected(),
        })
    }

    /// `COPY ... FROM stdin` with its rows (PostgreSQL only), as psql sends a dump's COPY
    /// blocks. Returns the rows copied.
    pub async fn copy_in(&mut self, sql: &str, rows: &str) -> Result<u64, sqlx::Error> {
        /// CopyData messages of this size keep memory flat for any block.
        const CHUNK: usize = 1 << 20;
        let DbConn::Postgres(c) = self else {
            return Err(sqlx::Error::Protocol(
                "COPY ... FROM stdin is PostgreSQL's; this database cannot take it".into(),
            ));
        };
        let mut copy = c.copy_in_raw(sql).await?;
        for chunk in rows.as_bytes().chunks(CHUNK) {
            if let Err(e) = copy.send(chunk).await {
                let _ = copy.abort("dbvigil could not send the rows").await;
                return Err(e);
            }
        }
        copy.finish().await
    }

    /// SQLite: runs several statements in one `sqlite3_exec` call on this thread, stopping
    /// at the first error. Going through sqlx would hand each statement to its worker thread
    /// and each result back. The error says only that the batch failed: callers run its
    /// statements again one at a time to learn which one, and why.
    pub async fn execute_batch(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        use libsqlite3_sys::{SQLITE_OK, sqlite3_exec, sqlite3_free};
        use std::ffi::{CStr, CString, c_char};
        let DbConn::Sqlite(c) = self else {
            return self.execute(sql).await.map(drop);
        };
        let sql = CString::new(sql)
            .map_err(|_| sqlx::Error::Protocol("a statement holds a NUL character".into()))?;
        let mut handle = c.lock_handle().await?;
        let db = handle.as_raw_handle();
        let mut message: *mut c_char = std::ptr::null_mut();
        // SAFETY: while `handle` lives, sqlx's worker thread makes no call on this
        // connection; `sql` is NUL-terminated and outlives the call; SQLite allocates
        // `message` (or leaves it null), and it is freed once below.
        let rc = unsafe {
            sqlite3_exec(
                db.as_ptr(),
                sql.as_ptr(),
                None,
                std::ptr::null_mut(),
                &mut message,
            )
        };
        if rc == SQLITE_OK {
            return Ok(());
        }
        let text = if message.is_null() {
            format!("SQLite error {rc}")
        } else {
            // SAFETY: a non-null message from sqlite3_exec is a NUL-terminated string.
            let text = unsafe { CStr::from_ptr(message) }
                .to_string_lossy()
                .into_owned();
            // SAFETY: freed once, with the allocator SQLite used.
            unsafe { sqlite3_free(message.cast()) };
            text
        };
        Err(sqlx::Error::Protocol(text))
    }

    /// SQLite: whether the connection is still inside a transaction. After some failures
    /// (an interrupted write, a full disk) SQLite rolls the whole transaction back itself.
    /// Elsewhere always true.
    pub async fn sqlite_in_transaction(&mut self) -> Result<bool, sqlx::Error> {
        let DbConn::Sqlite(c) = self else {
            return Ok(true);
        };
        let mut handle = c.lock_handle().await?;
        let db = handle.as_raw_handle();
        // SAFETY: while `handle` lives, sqlx's worker thread makes no call on this
        // connection.
        Ok(unsafe { libsqlite3_sys::sqlite3_get_autocommit(db.as_ptr()) } == 0)
    }

    /// SQLite: calls `keep_going` every `steps` virtual machine steps of a statement; the
    /// statement is interrupted when it returns false. Elsewhere a no-op.
    pub async fn on_progress(
        &mut self,
        steps: i32,
        keep_going: impl FnMut() -> bool + Send + 'static,
    ) -> Result<(), sqlx::Error> {
        if let DbConn::Sqlite(c) = self {
            c.lock_handle()
                .await?
                .set_progress_handler(steps, keep_going);
        }
        Ok(())
    }

    /// Runs a query without parameters and decodes every column of every row. Cast columns
    /// whose type is not a boolean, integer, float or text (timestamps, decimals) in SQL.
    pub async fn fetch(&mut self, sql: &str) -> Result<Vec<Vec<Cell>>, sqlx::Error> {
        self.fetch_with(sql, &[]).await
    }

    /// As `fetch`, binding text parameters (`$1`.. on PostgreSQL and SQLite, `?` on MySQL).
    pub async fn fetch_with(
        &mut self,
        sql: &str,
        params: &[&str],
    ) -> Result<Vec<Vec<Cell>>, sqlx::Error> {
        match self {
            DbConn::Postgres(c) => {
                let mut q = sqlx::query(sql);
                for p in params {
                    q = q.bind(p.to_string());
                }
                q.fetch_all(c).await?.iter().map(pg_cells).collect()
            }
            DbConn::MySql(c) => {
                let mut q = sqlx::query(sql);
                for p in params {
                    q = q.bind(p.to_string());
                }
                q.fetch_all(c).await?.iter().map(mysql_cells).collect()
            }
            DbConn::Sqlite(c) => {
                let mut q = sqlx::query(sql);
                for p in params {
                    q = q.bind(p.to_string());
                }
                q.fetch_all(c).await?.iter().map(sqlite_cells).collect()
            }
        }
    }

    /// Runs one statement with parameters (`$1`.. on PostgreSQL and SQLite, `?` on MySQL).
    pub async fn execute_with(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<u64, sqlx::Error> {
        macro_rules! bound {
            ($query:expr) => {{
                let mut q = $query;
                for p in params {
                    q = match p {
                        Param::Text(t) => q.bind(t.to_string()),
                        Param::Int(i) => q.bind(*i),
                        Param::Bool(b) => q.bind(*b),
                    };
                }
                q
            }};
        }
        Ok(match self {
            DbConn::Postgres(c) => bound!(sqlx::query(sql)).execute(c).await?.rows_affected(),
            DbConn::MySql(c) => bound!(sqlx::query(sql)).execute(c).await?.rows_affected(),
            DbConn::Sqlite(c) => bound!(sqlx::query(sql)).execute(c).await?.rows_affected(),
        })
    }

    /// Whether a table exists in the connection's own schema (PostgreSQL: the search
    /// path; MySQL: the current database; SQLite: main). Case-insensitive, since Liquibase
    /// writes upper-case names that engines fold differently.
    pub async fn table_exists(&mut self, table: &str) -> Result<bool, sqlx::Error> {
        Ok(self.table_name(table).await?.is_some())
    }

    /// The table's name as the catalog spells it, if it exists (see `table_exists`).
    pub async fn table_name(&mut self, table: &str) -> Result<Option<String>, sqlx::Error> {
        let sql = match self.engine() {
            Engine::Postgres => {
                "SELECT c.relname::text FROM pg_catalog.pg_class c \
                 WHERE c.relkind IN ('r', 'p', 'v') AND lower(c.relname) = lower($1) \
                 AND c.relnamespace = ANY (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = ANY (current_schemas(false))) \
                 ORDER BY array_position(current_schemas(false), (SELECT nspname::text FROM pg_catalog.pg_namespace WHERE oid = c.relnamespace)) LIMIT 1"
            }
            Engine::MySql => {
                "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
                 WHERE table_schema = DATABASE() AND lower(table_name) = lower(?) LIMIT 1"
            }
            Engine::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND lower(name) = lower($1) LIMIT 1"
            }
        };
        let rows = self.fetch_with(sql, &[table]).await?;
        Ok(rows.first().and_then(|r| r.first()).and_then(Cell::text))
    }

    pub async fn close(self) {
        let _ = match self {
            DbConn::Postgres(c) => c.close().await,
            DbConn::MySql(c) => c.close().await,
            DbConn::Sqlite(c) => c.close().await,
        };
    }
}

/// `row.try_get::<T>(i)`, except that a column whose type does not fit `T` gives None
/// without the error `try_get` builds for it (formatted type names and index). The decoders
/// below try up to nine types per cell, so for a history of 1,000 rows those unused errors
/// were most of the time spent reading it.
fn fitting<'r, R, T>(row: &'r R, i: usize) -> Option<T>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    use sqlx::{TypeInfo, ValueRef};
    let value = row.try_get_raw(i).ok()?;
    if !value.is_null() {
        let ty = value.type_info();
        // The same test try_get makes before decoding.
        if !ty.is_null() && !T::compatible(&ty) {
            return None;
        }
    }
    row.try_get::<T, _>(i).ok()
}

macro_rules! decode_cells {
    ($name:ident, $row:ty) => {
        fn $name(row: &$row) -> Result<Vec<Cell>, sqlx::Error> {
            use sqlx::{Column, TypeInfo, ValueRef};
            let mut cells = Vec::with_capacity(row.len());
            for (i, column) in row.columns().iter().enumerate() {
                if row.try_get_raw(i)?.is_null() {
                    cells.push(Cell::Null);
                    continue;
                }
                // Integers first: MySQL and SQLite call any integer column a bool too.
                let cell = if let Some(v) = fitting::<_, i64>(row, i) {
                    Cell::Int(v)
                } else if let Some(v) = fitting::<_, i32>(row, i) {
                    Cell::Int(v.into())
                } else if let Some(v) = fitting::<_, i16>(row, i) {
                    Cell::Int(v.into())
                } else if let Some(v) = fitting::<_, i8>(row, i) {
                    Cell::Int(v.into())
                } else if let Some(v) = fitting::<_, bool>(row, i) {
                    Cell::Bool(v)
                } else if let Some(v) = fitting::<_, f64>(row, i) {
                    Cell::Float(v)
                } else if let Some(v) = fitting::<_, f32>(row, i) {
                    Cell::Float(v.into())
                } else if let Some(v) = fitting::<_, String>(row, i) {
                    Cell::Text(v)
                } else if let Some(v) = fitting::<_, Vec<u8>>(row, i) {
                    Cell::Text(hex(&v))
                } else {
                    return Err(sqlx::Error::Decode(
                        format!(
                            "column {} has type {}, which dbvigil does not decode: cast it to text or a number",
                            column.name(),
                            column.type_info().name()
                        )
                        .into(),
                    ));
                };
                cells.push(cell);
            }
            Ok(cells)
        }
    };
}

decode_cells!(pg_cells, PgRow);
decode_cells!(mysql_cells, MySqlRow);
decode_cells!(sqlite_cells, SqliteRow);

/// Lower-case hex, for checksums stored as bytes (sqlx's `_sqlx_migrations`).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}
