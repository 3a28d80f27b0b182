//! The CSV plan of home-made updaters (shared/background/remote-database-updater.md): one
//! row per script, with the database to run it on. Rows run in order, grouped by database.

use std::path::{Path, PathBuf};

use super::conn::Engine;
use crate::config::{Secret, Server};

pub const HEADER: [&str; 9] = [
    "sql_runner_host",
    "sql_runner_userid",
    "sql_runner_password",
    "database_host",
    "database_userid",
    "database_password",
    "port",
    "database",
    "sql_script_to_run",
];

/// One database of the plan and its scripts, in the order of the rows.
#[derive(Debug, Clone)]
pub struct PlanDatabase {
    pub engine: Engine,
    /// The database as the runner (or, without one, this machine) reaches it.
    pub server: Server,
    /// The host the original updater logged into to run the scripts: dbvigil reaches the
    /// database through it, as through a bastion.
    pub runner: Option<Runner>,
    /// (row number in the file, script path).
    pub scripts: Vec<(usize, PathBuf)>,
}

/// A plan's `sql_runner_host` (`HOST[:PORT]`), `sql_runner_userid` and
/// `sql_runner_password`.
#[derive(Debug, Clone, PartialEq)]
pub struct Runner {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<Secret>,
    /// The first row that names it, for messages.
    pub row: usize,
}

impl PlanDatabase {
    /// `host:port/database`, never the password.
    pub fn describe(&self) -> String {
        format!(
            "{}:{}/{}",
            self.server.host,
            self.server.port,
            self.server.database.as_deref().unwrap_or_default()
        )
    }
}

#[derive(Debug)]
pub struct Plan {
    pub databases: Vec<PlanDatabase>,
}

impl Plan {
    /// Some row names a runner host.
    pub fn has_runners(&self) -> bool {
        self.databases.iter().any(|d| d.runner.is_some())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read plan {path}: {error}")]
    Read {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("plan {path}: {problem}")]
    Invalid {
        path: PathBuf,
        #[source]
        problem: PlanProblem,
    },
}

/// What is wrong inside a plan, each saying what to fix. None quotes a password.
#[derive(Debug, thiserror::Error)]
pub enum PlanProblem {
    #[error("cannot read the header: {0}")]
    Header(#[source] csv::Error),
    #[error("the header must be exactly {}; found {}", HEADER.join(","), found.join(","))]
    WrongHeader { found: Vec<String> },
    #[error("row {row} has {len} fields; every row needs the 9 of the header")]
    FieldCount { row: usize, len: u64 },
    #[error("row {row}: {source}")]
    Row {
        row: usize,
        #[source]
        source: csv::Error,
    },
    #[error("row {row}: {column} is empty; fill it in")]
    Empty { row: usize, column: &'static str },
    #[error("row {row}: port {port:?} is not a port number (1-65535)")]
    Port { row: usize, port: String },
    #[error("row {row}: {why}")]
    Engine {
        row: usize,
        #[source]
        why: PortEngineError,
    },
    #[error(
        "row {row}: the password differs from an earlier row for the same database and user; use one"
    )]
    PasswordDiffers { row: usize },
    #[error(
        "row {row}: sql_runner_userid or sql_runner_password is filled in but sql_runner_host is empty: give the runner host, or empty all three runner columns to connect directly"
    )]
    RunnerWithoutHost { row: usize },
    #[error("row {row}: sql_runner_host {host:?}: {why}; write HOST or HOST:PORT")]
    RunnerHost {
        row: usize,
        host: String,
        why: String,
    },
    #[error(
        "row {row}: the runner's password differs from an earlier row for the same runner and user; use one"
    )]
    RunnerPasswordDiffers { row: usize },
    #[error("it has a header but no rows: add one row per script")]
    NoRows,
}

/// The port of a row tells no engine dbvigil can run.
#[derive(Debug, thiserror::Error)]
pub enum PortEngineError {
    #[error(
        "port 1521 is Oracle's; dbvigil migrates PostgreSQL, MySQL/MariaDB and SQLite only: run this row with Oracle's own tools"
    )]
    Oracle,
    #[error(
        "port 1433 is SQL Server's; dbvigil migrates PostgreSQL, MySQL/MariaDB and SQLite only: run this row with SQL Server's own tools"
    )]
    SqlServer,
    #[error("cannot tell the engine from port {0}: pass --engine postgres or --engine mysql")]
    Unknown(u16),
}

/// Reads a plan. Relative script paths are resolved against `base` (the working directory,
/// as the original updater did). `engine` overrides the engine for every row; without it
/// the engine is told from the port.
pub fn load(path: &Path, base: &Path, engine: Option<Engine>) -> Result<Plan, PlanError> {
    let text = std::fs::read_to_string(path).map_err(|error| PlanError::Read {
        path: path.to_owned(),
        error,
    })?;
    parse(&text, base, engine).map_err(|problem| PlanError::Invalid {
        path: path.to_owned(),
        problem,
    })
}

pub fn parse(text: &str, base: &Path, engine: Option<Engine>) -> Result<Plan, PlanProblem> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(PlanProblem::Header)?
        .iter()
        .map(str::to_owned)
        .collect();
    if header != HEADER {
        return Err(PlanProblem::WrongHeader { found: header });
    }
    let mut databases: Vec<PlanDatabase> = Vec::new();
    for (index, record) in reader.records().enumerate() {
        // Row 1 is the header.
        let row = index + 2;
        let record = record.map_err(|source| match source.kind() {
            csv::ErrorKind::UnequalLengths { len, .. } => {
                PlanProblem::FieldCount { row, len: *len }
            }
            _ => PlanProblem::Row { row, source },
        })?;
        let field = |i: usize| record.get(i).unwrap_or_default().to_owned();
        let runner = runner(row, field(0), field(1), field(2))?;
        let (host, user, password, port, database, script) =
            (field(3), field(4), field(5), field(6), field(7), field(8));
        for (column, value) in [
            ("database_host", &host),
            ("database_userid", &user),
            ("port", &port),
            ("database", &database),
            ("sql_script_to_run", &script),
        ] {
            if value.is_empty() {
                return Err(PlanProblem::Empty { row, column });
            }
        }
        let port: u16 = port.parse().map_err(|_| PlanProblem::Port { row, port })?;
        let engine = match engine {
            Some(e) => e,
            None => engine_of_port(port).map_err(|why| PlanProblem::Engine { row, why })?,
        };
        let server = Server {
            host,
            port,
            user,
            password: (!password.is_empty()).then(|| Secret(password.clone())),
            database: Some(database),
            ..Server::blank(engine.kind())
        };
        let script = base.join(script);
        // The database host is as the runner sees it: behind another runner, the same
        // name may be another database.
        let same_runner = |a: &Option<Runner>| match (a, &runner) {
            (Some(a), Some(b)) => a.host == b.host && a.port == b.port && a.user == b.user,
            (None, None) => true,
            _ => false,
        };
        let same = |d: &&mut PlanDatabase| {
            d.engine == engine
                && d.server.host == server.host
                && d.server.port == server.port
                && d.server.database == server.database
                && d.server.user == server.user
                && same_runner(&d.runner)
        };
        match databases.iter_mut().find(|d| same(d)) {
            Some(d) => {
                if d.server.password != server.password {
                    return Err(PlanProblem::PasswordDiffers { row });
                }
                if d.runner.as_ref().map(|r| &r.password) != runner.as_ref().map(|r| &r.password) {
                    return Err(PlanProblem::RunnerPasswordDiffers { row });
                }
                d.scripts.push((row, script));
            }
            None => databases.push(PlanDatabase {
                engine,
                server,
                runner,
                scripts: vec![(row, script)],
            }),
        }
    }
    if databases.is_empty() {
        return Err(PlanProblem::NoRows);
    }
    Ok(Plan { databases })
}

/// A row's runner columns: all empty for a database reached directly.
fn runner(
    row: usize,
    host: String,
    user: String,
    password: String,
) -> Result<Option<Runner>, PlanProblem> {
    if host.is_empty() {
        if user.is_empty() && password.is_empty() {
            return Ok(None);
        }
        return Err(PlanProblem::RunnerWithoutHost { row });
    }
    let (name, port) = crate::config::parse_address(&host)
        .map_err(|why| PlanProblem::RunnerHost { row, host, why })?;
    if user.is_empty() {
        return Err(PlanProblem::Empty {
            row,
            column: "sql_runner_userid",
        });
    }
    Ok(Some(Runner {
        host: name,
        port,
        user,
        password: (!password.is_empty()).then_some(Secret(password)),
        row,
    }))
}

/// The plan format has no engine column; the port tells it for the usual ports, and names
/// the engines dbvigil cannot run.
fn engine_of_port(port: u16) -> Result<Engine, PortEngineError> {
    match port {
        5432 => Ok(Engine::Postgres),
        3306 => Ok(Engine::MySql),
        1521 => Err(PortEngineError::Oracle),
        1433 => Err(PortEngineError::SqlServer),
        other => Err(PortEngineError::Unknown(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROWS: &str = "sql_runner_host,sql_runner_userid,sql_runner_password,database_host,database_userid,database_password,port,database,sql_script_to_run
localhost,howarddeiner,password,127.0.0.1,root,password,3306,zipster,sql/V1_1__Zipcode_Schema.sql
localhost,howarddeiner,password,127.0.0.1,root,password,3306,zipster,sql/V1_2__Zipcode_Static_Data.sql
localhost,howarddeiner,password,10.0.0.2,app,s3cret,5432,orders,sql/V1__Orders.sql
localhost,howarddeiner,password,127.0.0.1,root,password,3306,zipster,sql/V2_1__Add_Spatial_Data.sql
";

    #[test]
    fn rows_are_grouped_by_database_in_order() {
        let plan = parse(ROWS, Path::new("/repo"), None).unwrap();
        assert!(plan.has_runners());
        assert_eq!(plan.databases.len(), 2);
        let runner = plan.databases[0].runner.as_ref().unwrap();
        assert_eq!(
            (runner.host.as_str(), runner.port, runner.user.as_str()),
            ("localhost", 22, "howarddeiner")
        );
        assert_eq!(runner.password, Some(Secret("password".to_owned())));
        let zipster = &plan.databases[0];
        assert_eq!(zipster.engine, Engine::MySql);
        assert_eq!(zipster.describe(), "127.0.0.1:3306/zipster");
        let rows: Vec<usize> = zipster.scripts.iter().map(|(r, _)| *r).collect();
        assert_eq!(rows, [2, 3, 5]);
        assert_eq!(
            zipster.scripts[2].1,
            PathBuf::from("/repo/sql/V2_1__Add_Spatial_Data.sql")
        );
        assert_eq!(plan.databases[1].engine, Engine::Postgres);
    }

    #[test]
    fn the_bastion_example_goes_through_its_runner() {
        let plan = parse(
            include_str!("../../examples/plan-bastion.csv"),
            Path::new("."),
            None,
        )
        .unwrap();
        assert_eq!(plan.databases.len(), 1);
        let db = &plan.databases[0];
        assert_eq!(db.describe(), "zipster-db.internal:3306/zipster");
        assert_eq!(db.scripts.len(), 4);
        let runner = db.runner.as_ref().unwrap();
        assert_eq!(
            (runner.host.as_str(), runner.port, runner.user.as_str()),
            ("bastion.example.com", 22, "deploy")
        );
        assert_eq!(runner.password, None);
    }

    #[test]
    fn one_database_name_behind_two_runners_is_two_databases() {
        let header = HEADER.join(",");
        let text = format!(
            "{header}\na,ops,,db,u,p,5432,app,V1__a.sql\nb,ops,,db,u,p,5432,app,V1__a.sql\n,,,db,u,p,5432,app,V1__a.sql\na,ops,,db,u,p,5432,app,V2__b.sql\n"
        );
        let plan = parse(&text, Path::new("."), None).unwrap();
        let runners: Vec<Option<&str>> = plan
            .databases
            .iter()
            .map(|d| d.runner.as_ref().map(|r| r.host.as_str()))
            .collect();
        assert_eq!(runners, [Some("a"), Some("b"), None]);
        assert_eq!(plan.databases[0].scripts.len(), 2);
    }

    #[test]
    fn bad_plans_say_what_to_fix() {
        let header = HEADER.join(",");
        for (text, expected) in [
            ("a,b\n".to_owned(), "the header must be exactly"),
            (format!("{header}\n"), "no rows"),
            (
                format!("{header}\n,,,h,u,p,1433,db,V1__a.sql\n"),
                "row 2: port 1433 is SQL Server's",
            ),
            (
                format!("{header}\n,,,h,u,p,1521,db,V1__a.sql\n"),
                "row 2: port 1521 is Oracle's",
            ),
            (
                format!("{header}\n,,,h,u,p,6000,db,V1__a.sql\n"),
                "row 2: cannot tell the engine from port 6000: pass --engine",
            ),
            (
                format!("{header}\n,,,h,u,p,x,db,V1__a.sql\n"),
                "row 2: port \"x\" is not a port number",
            ),
            (
                format!("{header}\n,,,h,u,p,5432,db\n"),
                "row 2 has 8 fields",
            ),
            (
                format!("{header}\n,,,h,u,p,5432,,V1__a.sql\n"),
                "row 2: database is empty",
            ),
            (
                format!("{header}\n,ops,,h,u,p,5432,db,V1__a.sql\n"),
                "row 2: sql_runner_userid or sql_runner_password is filled in but sql_runner_host is empty",
            ),
            (
                format!("{header}\nrunner:x,ops,,h,u,p,5432,db,V1__a.sql\n"),
                "row 2: sql_runner_host \"runner:x\": \"x\" is not a port number (1-65535); write HOST or HOST:PORT",
            ),
            (
                format!("{header}\nrunner,,,h,u,p,5432,db,V1__a.sql\n"),
                "row 2: sql_runner_userid is empty",
            ),
            (
                format!(
                    "{header}\nr,ops,p1,h,u,p,5432,db,V1__a.sql\nr,ops,p2,h,u,p,5432,db,V2__b.sql\n"
                ),
                "row 3: the runner's password differs",
            ),
        ] {
            let err = parse(&text, Path::new("."), None).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(!err.contains("p,"), "no password in {err}");
        }
        let text = format!("{header}\n,,,h,u,p,6000,db,V1__a.sql\n");
        assert_eq!(
            parse(&text, Path::new("."), Some(Engine::Postgres))
                .unwrap()
                .databases[0]
                .engine,
            Engine::Postgres
        );
    }
}
