//! Which tables dbvigil looks for, and which reader reads them: the one place that lists
//! the tools, like blackbox_exporter's prober table.

use std::future::Future;
use std::pin::Pin;

use super::table::Table;
use super::{
    HistoryError, Reading, alembic, dbmate, django, flyway, golang_migrate, liquibase, sqlx_migrate,
};
use crate::migrate::conn::DbConn;

/// A reader in progress. Boxed, so that every reader fits one function-pointer type.
pub(super) type ReadFuture<'a> = Pin<Box<dyn Future<Output = Reading> + Send + 'a>>;

/// The one signature of every reader: the connection and the tables of its entry.
pub(super) type ReadFn = for<'a> fn(&'a mut DbConn, &'a Found) -> ReadFuture<'a>;

pub(super) struct Reader {
    /// The tables the reader reads, looked up case-insensitively; it runs when any exists.
    pub tables: &'static [&'static str],
    pub read: ReadFn,
}

/// In the order the tools are reported.
pub(super) const READERS: &[Reader] = &[
    Reader {
        tables: &["flyway_schema_history"],
        read: flyway::read,
    },
    Reader {
        tables: &["_sqlx_migrations"],
        read: sqlx_migrate::read,
    },
    Reader {
        tables: &["schema_migrations"],
        read: schema_migrations,
    },
    Reader {
        tables: &["django_migrations"],
        read: django::read,
    },
    Reader {
        tables: &["alembic_version"],
        read: alembic::read,
    },
    // Either may exist alone.
    Reader {
        tables: &["databasechangelog", "databasechangeloglock"],
        read: liquibase::read,
    },
];

/// An entry's tables as the catalog spells their names, in the entry's order; None where
/// the table does not exist.
pub(super) struct Found(Vec<Option<String>>);

impl Found {
    pub async fn look_up(conn: &mut DbConn, tables: &[&str]) -> Result<Found, sqlx::Error> {
        let mut names = Vec::with_capacity(tables.len());
        for table in tables {
            names.push(conn.table_name(table).await?);
        }
        Ok(Found(names))
    }

    pub fn any(&self) -> bool {
        self.0.iter().any(Option::is_some)
    }

    /// The name of the entry's `index`th table, when it exists.
    pub fn get(&self, index: usize) -> Option<&str> {
        self.0.get(index).and_then(Option::as_deref)
    }

    /// The first table that exists: the table of a one-table entry.
    pub fn first(&self) -> &str {
        self.0.iter().flatten().next().map_or("", String::as_str)
    }
}

/// `schema_migrations`: golang-migrate's when it has a `dirty` column, else dbmate's (the
/// Rails layout).
fn schema_migrations<'a>(conn: &'a mut DbConn, found: &'a Found) -> ReadFuture<'a> {
    Box::pin(async move {
        let table = match Table::describe(conn, found.first()).await {
            Ok(table) => table,
            Err(e) => {
                return Reading {
                    tool: golang_migrate::TOOL,
                    result: Err(HistoryError::SharedTable(Box::new(e))),
                };
            }
        };
        if table.has("dirty") {
            Reading {
                tool: golang_migrate::TOOL,
                result: golang_migrate::read_table(conn, &table).await,
            }
        } else {
            Reading {
                tool: dbmate::TOOL,
                result: dbmate::read_table(conn, &table).await,
            }
        }
    })
}
