//! A history table as the catalog describes it: its columns, the ones a reader needs, and
//! queries on it whose errors name it; and the cell readers every reader uses.

use super::HistoryError;
use super::sql::Sql;
use crate::migrate::conn::{Cell, DbConn, Engine};
use crate::time::Timestamp;

/// A history table as the catalog describes it.
pub(super) struct Table {
    pub name: String,
    /// PostgreSQL: the schema it was found in (the first on the search path).
    pub schema: Option<String>,
    /// (name as the catalog spells it, lower-case type name).
    columns: Vec<(String, String)>,
}

/// A column a reader uses: its quoted name and its type.
pub(super) struct Col {
    pub expr: String,
    pub ty: String,
}

impl Table {
    pub async fn describe(conn: &mut DbConn, name: &str) -> Result<Table, HistoryError> {
        let engine = conn.engine();
        let rows = match engine {
            Engine::Postgres => {
                conn.fetch_with(
                    "SELECT CAST(a.attname AS text), CAST(t.typname AS text), CAST(n.nspname AS text) \
                     FROM pg_catalog.pg_attribute a \
                     JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
                     JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                     WHERE a.attrelid = to_regclass(quote_ident($1)) AND a.attnum > 0 AND NOT a.attisdropped \
                     ORDER BY a.attnum",
                    &[name],
                )
                .await
            }
            Engine::MySql => {
                conn.fetch_with(
                    "SELECT CAST(column_name AS CHAR), CAST(data_type AS CHAR), CAST(NULL AS CHAR) \
                     FROM information_schema.columns \
                     WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position",
                    &[name],
                )
                .await
            }
            Engine::Sqlite => {
                conn.fetch_with(
                    "SELECT name, type, NULL FROM pragma_table_info($1) ORDER BY cid",
                    &[name],
                )
                .await
            }
        }
        .map_err(|source| HistoryError::Columns {
            table: name.to_owned(),
            source,
        })?;
        let mut schema = None;
        let mut columns = Vec::new();
        for row in &rows {
            let Some(column) = text(row, 0) else { continue };
            let ty = text(row, 1).unwrap_or_default().to_ascii_lowercase();
            if schema.is_none() {
                schema = text(row, 2);
            }
            columns.push((column, ty));
        }
        Ok(Table {
            name: name.to_owned(),
            schema,
            columns,
        })
    }

    pub fn has(&self, column: &str) -> bool {
        self.columns
            .iter()
            .any(|(c, _)| c.eq_ignore_ascii_case(column))
    }

    /// The columns a tool's reader needs, in the order asked, or the error that names the
    /// missing ones.
    pub fn require(
        &self,
        sql: Sql,
        tool: &'static str,
        needed: &'static [&'static str],
    ) -> Result<Vec<Col>, HistoryError> {
        let mut found = Vec::with_capacity(needed.len());
        let mut missing = Vec::new();
        for want in needed {
            match self
                .columns
                .iter()
                .find(|(c, _)| c.eq_ignore_ascii_case(want))
            {
                Some((name, ty)) => found.push(Col {
                    expr: sql.ident(name),
                    ty: ty.clone(),
                }),
                None => missing.push(*want),
            }
        }
        if missing.is_empty() {
            Ok(found)
        } else {
            Err(HistoryError::Layout {
                table: self.name.clone(),
                tool,
                missing,
                needed,
            })
        }
    }

    /// The table as a FROM item, qualified by its schema where known.
    pub fn from(&self, sql: Sql) -> String {
        match &self.schema {
            Some(schema) => format!("{}.{}", sql.ident(schema), sql.ident(&self.name)),
            None => sql.ident(&self.name),
        }
    }

    pub async fn query(
        &self,
        conn: &mut DbConn,
        sql: &str,
    ) -> Result<Vec<Vec<Cell>>, HistoryError> {
        conn.fetch(sql).await.map_err(|source| HistoryError::Query {
            table: self.name.clone(),
            source,
        })
    }

    /// The first row of a query, if any.
    pub async fn first(
        &self,
        conn: &mut DbConn,
        sql: &str,
    ) -> Result<Option<Vec<Cell>>, HistoryError> {
        Ok(self.query(conn, sql).await?.into_iter().next())
    }
}

pub(super) fn text(row: &[Cell], i: usize) -> Option<String> {
    row.get(i).and_then(Cell::text)
}

pub(super) fn int(row: &[Cell], i: usize) -> Option<i64> {
    row.get(i).and_then(Cell::int)
}

pub(super) fn count(row: &[Cell], i: usize) -> u64 {
    int(row, i).and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}

pub(super) fn flag(row: &[Cell], i: usize) -> Option<bool> {
    row.get(i).and_then(Cell::bool)
}

/// Seconds from integer microseconds.
pub(super) fn timestamp_us(row: &[Cell], i: usize) -> Option<Timestamp> {
    int(row, i).map(Timestamp::from_micros)
}
