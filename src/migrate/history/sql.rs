//! SQL that differs per engine: quoting, casts to text, booleans, and timestamps as
//! epoch microseconds.

use super::table::Col;
use crate::migrate::conn::Engine;

/// How a tool writes zone-less timestamps (matters for MySQL `DATETIME`).
#[derive(Clone, Copy)]
pub(super) enum Naive {
    Utc,
    /// Written with the server's `NOW()` in a session left at the server's time zone.
    ServerZone,
}

#[derive(Clone, Copy)]
pub(super) struct Sql(pub Engine);

impl Sql {
    pub fn ident(self, name: &str) -> String {
        match self.0 {
            Engine::MySql => format!("`{}`", name.replace('`', "``")),
            Engine::Postgres | Engine::Sqlite => format!("\"{}\"", name.replace('"', "\"\"")),
        }
    }

    /// The value as text, which every driver decodes the same way.
    pub fn text(self, expr: &str) -> String {
        match self.0 {
            Engine::MySql => format!("CAST({expr} AS CHAR)"),
            Engine::Postgres | Engine::Sqlite => format!("CAST({expr} AS TEXT)"),
        }
    }

    /// A predicate: the boolean column is true (bool, 0/1, BIT(1), or SQLite text).
    pub fn truthy(self, expr: &str) -> String {
        match self.0 {
            Engine::Postgres => format!("(CAST({expr} AS integer) <> 0)"),
            Engine::MySql => format!("({expr} + 0 <> 0)"),
            Engine::Sqlite => format!(
                "(CASE WHEN typeof({expr}) = 'text' THEN lower(trim({expr})) IN ('1', 't', 'true', 'y', 'yes') ELSE {expr} <> 0 END)"
            ),
        }
    }

    /// The boolean column as text '1' / '0' (NULL stays NULL).
    pub fn flag(self, expr: &str) -> String {
        self.text(&format!(
            "CASE WHEN {expr} IS NULL THEN NULL WHEN {} THEN 1 ELSE 0 END",
            self.truthy(expr)
        ))
    }

    /// The timestamp column as integer microseconds since the epoch (an SQL expression).
    pub fn epoch_us(self, col: &Col, naive: Naive) -> String {
        let c = &col.expr;
        let ty = col.ty.as_str();
        match self.0 {
            Engine::Postgres => match ty {
                "timestamptz" | "timestamp" | "date" => {
                    format!("CAST(round(extract(epoch FROM {c}) * 1000000) AS bigint)")
                }
                "int2" | "int4" | "int8" | "numeric" | "float4" | "float8" => {
                    let n = format!("CAST({c} AS numeric)");
                    format!(
                        "CAST(round(CASE WHEN abs({n}) >= 100000000000 THEN {n} * 1000 ELSE {n} * 1000000 END) AS bigint)"
                    )
                }
                _ => "NULL".to_owned(),
            },
            Engine::MySql => match ty {
                // Stored in UTC: exact whatever the session's time zone.
                "timestamp" => format!("CAST(UNIX_TIMESTAMP({c}) * 1000000 AS SIGNED)"),
                "datetime" | "date" | "char" | "varchar" | "tinytext" | "text" | "mediumtext"
                | "longtext" => match naive {
                    Naive::Utc => format!("TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {c})"),
                    Naive::ServerZone => format!(
                        "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', COALESCE(CONVERT_TZ({c}, @@global.time_zone, '+00:00'), {c}))"
                    ),
                },
                "tinyint" | "smallint" | "mediumint" | "int" | "bigint" | "decimal" | "float"
                | "double" => format!(
                    "CAST(ROUND(CASE WHEN ABS({c}) >= 100000000000 THEN {c} * 1000 ELSE {c} * 1000000 END) AS SIGNED)"
                ),
                _ => "NULL".to_owned(),
            },
            // SQLite stores what it was given: decide per value. A TEXT column turns a
            // bound number (sqlite-jdbc's epoch milliseconds) into digits.
            Engine::Sqlite => {
                let n = format!("CAST({c} AS NUMERIC)");
                format!(
                    "(CASE \
                     WHEN typeof({c}) = 'integer' THEN (CASE WHEN abs({c}) >= 100000000000 THEN {c} * 1000 ELSE {c} * 1000000 END) \
                     WHEN typeof({c}) = 'real' \
                       OR (typeof({c}) = 'text' AND trim({c}) <> '' AND trim({c}) NOT GLOB '*[^0-9.]*') \
                       THEN CAST(round(CASE WHEN abs({n}) >= 100000000000 THEN {n} * 1000 ELSE {n} * 1000000 END) AS INTEGER) \
                     WHEN typeof({c}) = 'text' THEN CAST(round((julianday({c}) - 2440587.5) * 86400000.0) AS INTEGER) * 1000 \
                     ELSE NULL END)"
                )
            }
        }
    }
}
