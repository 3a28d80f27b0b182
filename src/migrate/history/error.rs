//! Why one tool's history could not be read. The exporter leaves that tool's series out
//! and logs the message, so each names the table or lock it was reading.

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("cannot read the columns of {table}: {source}")]
    Columns {
        table: String,
        #[source]
        source: sqlx::Error,
    },
    /// The table exists, in another shape than the tool's.
    #[error(
        "{table} has unexpected columns: missing {}; dbvigil reads {tool}'s layout: {}",
        missing.join(", "),
        needed.join(", ")
    )]
    Layout {
        table: String,
        tool: &'static str,
        missing: Vec<&'static str>,
        needed: &'static [&'static str],
    },
    #[error("cannot read {table}: {source}")]
    Query {
        table: String,
        #[source]
        source: sqlx::Error,
    },
    /// Lock keys are derived from the database's name.
    #[error("cannot read the current database's name: {0}")]
    DatabaseName(#[source] sqlx::Error),
    #[error("cannot tell who holds the lock: {0}")]
    LockHolder(#[source] sqlx::Error),
    /// `schema_migrations` could not be described, so whose it is stays unknown.
    #[error("{0} (golang-migrate's or dbmate's table)")]
    SharedTable(#[source] Box<HistoryError>),
}
