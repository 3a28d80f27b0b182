//! `dbvigil migrate run` loads real dump files as the engine's own client does: for each
//! engine, a rich schema is made with the native client, dumped with the engine's own dump
//! tool (pg_dump plain, mariadb-dump --routines --triggers, sqlite3 .dump), and the dump is
//! loaded by `dbvigil migrate run` into one fresh database and by the native client (psql,
//! mariadb, sqlite3) into another. Both are then dumped again and compared, and so are
//! every table's rows and the catalog's views, routines, triggers and types. Any
//! difference fails with the detail.

mod common;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::servers::{
    MariaDbServer, PgServer, clear_mysql_env, clear_pg_env, find_program, skip_or_fail, sql_literal,
};
use common::tempdir;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

/// How long one `dbvigil migrate run` may take (a debug build on two busy cores).
const MIGRATE_DEADLINE: Duration = Duration::from_secs(120);
/// How long one dump, load or query with a native tool may take.
const TOOL_DEADLINE: Duration = Duration::from_secs(120);

/// The database the corpus is made in, the one dbvigil loads and the one the native
/// client loads.
const SRC: &str = "dump_src";
const A: &str = "dump_a";
const B: &str = "dump_b";
const HISTORY: &str = "dbvigil_schema_history";

/// The login that owns the databases and loads the dumps: a password over verified TLS.
const LOGIN: &str = "loader";
const PASSWORD: &str = "loader-pw";

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

#[test]
fn postgres_pg_dump_loads_as_psql_loads_it() {
    let tmp = tempdir();
    let Some(pg) = Postgres::start(tmp.path()) else {
        return;
    };
    round_trip(&pg, tmp.path());
}

/// What psql scripts written by hand hold and pg_dump does not write: a CSV COPY block,
/// plain strings read with `standard_conforming_strings = off`, and `E''` strings.
const PSQL_SCRIPT: &str = r#"
CREATE TABLE note (id int PRIMARY KEY, body text, extra text);
SET standard_conforming_strings = off;
INSERT INTO note VALUES (1, 'it\'s; a \\ backslash', 'tab\there');
SET standard_conforming_strings = on;
INSERT INTO note VALUES (2, E'line\nbreak; \'quoted\'', 'C:\path\');
COPY note (id, body, extra) FROM stdin WITH (FORMAT csv);
3,"a, ""quoted""; value",plain
4,"two
lines; \.",
\.
INSERT INTO note VALUES (5, $$after the copy; it's$$, NULL);
"#;

#[test]
fn postgres_hand_written_psql_script_loads_as_psql_loads_it() {
    let tmp = tempdir();
    let Some(pg) = Postgres::start(tmp.path()) else {
        return;
    };
    let b = loads_alike(&pg, PSQL_SCRIPT, tmp.path(), false);
    let rows = b.rows.iter().map(|(_, r)| r.len()).sum::<usize>();
    assert_eq!(
        rows, 5,
        "every statement of the script must have loaded: {:?}",
        b.rows
    );
}

#[test]
fn mariadb_dump_loads_as_mariadb_client_loads_it() {
    let tmp = tempdir();
    let Some(maria) = MariaDb::start(tmp.path()) else {
        return;
    };
    round_trip(&maria, tmp.path());
}

#[test]
fn sqlite_dump_loads_as_sqlite3_loads_it() {
    let tmp = tempdir();
    let Some(lite) = Sqlite::start(tmp.path()) else {
        return;
    };
    round_trip(&lite, tmp.path());
}

/// Dumps the source, loads the dump with dbvigil into A and with the native client into
/// B, and compares A with B.
fn round_trip(engine: &dyn Engine, scratch: &Path) {
    let name = engine.name();
    let dump = engine.dump(SRC);
    eprintln!(
        "{name}: the source dump is {} bytes, {} lines",
        dump.len(),
        dump.lines().count()
    );
    let missing: Vec<&str> = engine
        .hard_parts()
        .iter()
        .copied()
        .filter(|part| !dump.contains(part))
        .collect();
    assert!(
        missing.is_empty(),
        "{name}: the dump tool's output no longer has {missing:?}, so this test would not \
         test what it claims to; the dump begins:\n{}",
        dump.lines().take(80).collect::<Vec<_>>().join("\n")
    );

    let b = loads_alike(engine, &dump, scratch, true);
    eprintln!(
        "{name}: A and B are equal: {} catalog entries, {} rows in {} tables, dumps of {} lines",
        b.catalog.iter().map(|(_, v)| v.len()).sum::<usize>(),
        b.rows.iter().map(|(_, v)| v.len()).sum::<usize>(),
        b.rows.len(),
        b.dump.lines().count()
    );
}

/// Loads `script` with dbvigil into A (twice: the second run must apply nothing) and with
/// the native client into B, and fails with every difference between the two. With
/// `whole_catalog`, every catalog section of B must hold something. Returns B.
fn loads_alike(
    engine: &dyn Engine,
    script_text: &str,
    scratch: &Path,
    whole_catalog: bool,
) -> Snapshot {
    let name = engine.name();
    let migrations = scratch.join("migrations");
    fs::create_dir(&migrations).unwrap();
    let script = migrations.join("V1__dump.sql");
    fs::write(&script, script_text).unwrap();

    let url = engine.migrate_url(A);
    let first = migrate_run(&url, &migrations, scratch);
    assert!(
        first.succeeded(),
        "{name}: dbvigil migrate run of the dump failed: {}",
        first.describe()
    );
    let again = migrate_run(&url, &migrations, scratch);
    assert!(
        again.succeeded() && again.stdout_text().contains("up to date"),
        "{name}: a second dbvigil migrate run must apply nothing and say so: {}",
        again.describe()
    );

    engine.load_native(B, &script);

    let a = Snapshot::take(engine, A);
    let b = Snapshot::take(engine, B);
    let problems = a.differences_from(&b, whole_catalog);
    assert!(
        problems.is_empty(),
        "{name}: the database dbvigil loaded (A, `-` lines) differs from the one the native \
         client loaded (B, `+` lines):\n\n{}",
        problems.join("\n\n")
    );
    b
}

// ---------------------------------------------------------------------------------------
// Comparing two databases
// ---------------------------------------------------------------------------------------

/// What is compared of one database: its dump (without dbvigil's history table, with what
/// must differ normalised), catalog sections and every table's rows (ordered).
struct Snapshot {
    dump: String,
    catalog: Vec<(&'static str, Vec<String>)>,
    rows: Vec<(String, Vec<String>)>,
}

impl Snapshot {
    fn take(engine: &dyn Engine, db: &str) -> Snapshot {
        let tables = engine.tables(db);
        Snapshot {
            dump: engine.dump_for_compare(db),
            catalog: engine.catalog(db),
            rows: tables
                .into_iter()
                .map(|t| {
                    let rows = engine.rows(db, &t);
                    (t, rows)
                })
                .collect(),
        }
    }

    /// Every difference between `self` (A) and `reference` (B), and every empty section of
    /// the reference (the comparison would prove nothing).
    fn differences_from(&self, reference: &Snapshot, whole_catalog: bool) -> Vec<String> {
        let mut problems = Vec::new();
        for (section, want) in &reference.catalog {
            if whole_catalog && want.is_empty() {
                problems.push(format!(
                    "catalog {section}: empty in B, so the comparison proves nothing"
                ));
            }
            let got = self
                .catalog
                .iter()
                .find(|(s, _)| s == section)
                .map(|(_, v)| v.as_slice())
                .unwrap_or_default();
            if let Some(diff) = first_difference(&got.join("\n"), &want.join("\n")) {
                problems.push(format!("catalog {section}:\n{diff}"));
            }
        }
        let names = |s: &Snapshot| s.rows.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>();
        if names(self) != names(reference) {
            problems.push(format!(
                "tables: A has {:?}, B has {:?}",
                names(self),
                names(reference)
            ));
        }
        if reference.rows.iter().all(|(_, rows)| rows.is_empty()) {
            problems.push("rows: every table of B is empty".to_owned());
        }
        for (table, want) in &reference.rows {
            let Some((_, got)) = self.rows.iter().find(|(t, _)| t == table) else {
                continue;
            };
            if let Some(diff) = first_difference(&got.join("\n"), &want.join("\n")) {
                problems.push(format!(
                    "rows of {table} (A {} rows, B {} rows):\n{diff}",
                    got.len(),
                    want.len()
                ));
            }
        }
        if let Some(diff) = first_difference(&self.dump, &reference.dump) {
            problems.push(format!("dumps:\n{diff}"));
        }
        problems
    }
}

/// None when equal; else the first differing lines with a little context, `-` for `a`
/// and `+` for `b`.
fn first_difference(a: &str, b: &str) -> Option<String> {
    const CONTEXT: usize = 3;
    const SHOWN: usize = 6;
    let al: Vec<&str> = a.lines().collect();
    let bl: Vec<&str> = b.lines().collect();
    let at = (0..al.len().max(bl.len())).find(|&i| al.get(i) != bl.get(i))?;
    let mut out = format!(
        "@@ line {} (A has {} lines, B has {}) @@\n",
        at + 1,
        al.len(),
        bl.len()
    );
    for line in &al[at.saturating_sub(CONTEXT)..at] {
        out.push_str(&format!(" {}\n", clip(line)));
    }
    for line in al.iter().skip(at).take(SHOWN) {
        out.push_str(&format!("-{}\n", clip(line)));
    }
    for line in bl.iter().skip(at).take(SHOWN) {
        out.push_str(&format!("+{}\n", clip(line)));
    }
    Some(out)
}

/// A line cut to a readable length.
fn clip(line: &str) -> String {
    const MAX: usize = 400;
    match line.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// Running programs with a deadline
// ---------------------------------------------------------------------------------------

/// A program that ran: its exit status (None: killed at its deadline) and output.
struct Finished {
    what: String,
    status: Option<ExitStatus>,
    deadline: Duration,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Finished {
    fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn describe(&self) -> String {
        let status = match self.status {
            Some(s) => format!("{s}"),
            None => format!(
                "still running after its {:?} deadline, so it was killed",
                self.deadline
            ),
        };
        format!(
            "{}: {status}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            last_chars(&self.stdout_text()),
            last_chars(&String::from_utf8_lossy(&self.stderr))
        )
    }
}

/// The end of a long text (a failing tool may echo a whole dump).
fn last_chars(text: &str) -> &str {
    const MAX: usize = 6000;
    if text.len() <= MAX {
        return text;
    }
    let mut start = text.len() - MAX;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Runs `cmd` with stdin from `input` (or none) and stdout and stderr in files under
/// `scratch`, killing it if it is still running after `deadline`.
fn run_until(
    what: &str,
    mut cmd: Command,
    input: Option<&Path>,
    deadline: Duration,
    scratch: &Path,
) -> Finished {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    let out_path = scratch.join(format!("run-{n}.stdout"));
    let err_path = scratch.join(format!("run-{n}.stderr"));
    cmd.stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .stdin(match input {
            Some(path) => {
                Stdio::from(File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
            }
            None => Stdio::null(),
        });
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start {:?}: {e}", cmd.get_program()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Finished {
        what: what.to_owned(),
        status,
        deadline,
        stdout: fs::read(&out_path).unwrap(),
        stderr: fs::read(&err_path).unwrap(),
    }
}

/// Runs a native tool that must succeed within [`TOOL_DEADLINE`]; its stdout.
fn run_tool(what: &str, cmd: Command, input: Option<&Path>, scratch: &Path) -> String {
    let done = run_until(what, cmd, input, TOOL_DEADLINE, scratch);
    assert!(done.succeeded(), "{}", done.describe());
    String::from_utf8(done.stdout)
        .unwrap_or_else(|e| panic!("{what}: the output is not UTF-8: {e}"))
}

/// `dbvigil migrate run --database-url URL --dir DIR`, killed after [`MIGRATE_DEADLINE`].
fn migrate_run(url: &str, dir: &Path, scratch: &Path) -> Finished {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dbvigil"));
    cmd.current_dir(scratch)
        .args(["migrate", "run", "--database-url", url, "--dir"])
        .arg(dir);
    for var in [
        "DATABASE_URL",
        "DBVIGIL_CONFIG_FILE",
        "DBVIGIL_URL",
        "DBVIGIL_MAINTENANCE_TOKEN",
        "DBVIGIL_MAINTENANCE_TOKEN_FILE",
    ] {
        cmd.env_remove(var);
    }
    run_until("dbvigil migrate run", cmd, None, MIGRATE_DEADLINE, scratch)
}

/// A URL query value.
fn url_value(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// Output lines as a list ("" is no line).
fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

/// `"name"` with inner quotes doubled.
fn quoted_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

// ---------------------------------------------------------------------------------------
// One engine
// ---------------------------------------------------------------------------------------

/// What the round trip needs of an engine. Databases are named [`SRC`], [`A`] and [`B`].
trait Engine {
    fn name(&self) -> &'static str;
    /// Texts the source dump must contain: the parts that are hard to run.
    fn hard_parts(&self) -> &'static [&'static str];
    /// The dump tool's output for `db`, as is.
    fn dump(&self, db: &str) -> String;
    /// The dump of `db` without dbvigil's history table, with what must differ between
    /// two databases (names, random keys, dates) normalised.
    fn dump_for_compare(&self, db: &str) -> String;
    /// dbvigil's `--database-url` for `db`.
    fn migrate_url(&self, db: &str) -> String;
    /// Loads `file` into `db` with the native client; panics when it fails.
    fn load_native(&self, db: &str, file: &Path);
    /// Catalog sections (views, routines, triggers, ...), one line per object.
    fn catalog(&self, db: &str) -> Vec<(&'static str, Vec<String>)>;
    /// Every table but dbvigil's history table.
    fn tables(&self, db: &str) -> Vec<String>;
    /// The rows of `table`, one line each, in a stable order.
    fn rows(&self, db: &str, table: &str) -> Vec<String>;
}

// ---------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------

/// Everything pg_dump writes: an enum, a domain with a CHECK, a sequence, identity
/// columns, defaults, inheritance, a partitioned table, plpgsql and SQL functions, a
/// procedure with a BEGIN ATOMIC body, a trigger, a view, a materialized view, comments,
/// and data that COPY must escape.
const PG_SCHEMA: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'it''s complicated');
CREATE DOMAIN percent AS integer CHECK (VALUE BETWEEN 0 AND 100);
CREATE SEQUENCE ticket_seq START 1000 INCREMENT 7;
CREATE TABLE person (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL CONSTRAINT name_not_semicolon CHECK (name <> ';'),
    feeling mood DEFAULT 'ok',
    score percent,
    ticket bigint DEFAULT nextval('ticket_seq'),
    note text,
    motto text DEFAULT 'it''s; fine',
    created date DEFAULT '2024-01-02'
);
COMMENT ON TABLE person IS 'People; it''s a "table" with a comment';
COMMENT ON COLUMN person.note IS 'free text; may hold \. and ''quotes''';
CREATE TABLE employee (salary numeric(10,2), manager_id integer) INHERITS (person);
CREATE TABLE measurement (
    id bigint GENERATED BY DEFAULT AS IDENTITY,
    taken date NOT NULL,
    reading double precision,
    label text
) PARTITION BY RANGE (taken);
CREATE TABLE measurement_2023 PARTITION OF measurement
    FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE measurement_2024 PARTITION OF measurement
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE audit (
    id serial PRIMARY KEY,
    person_id integer CONSTRAINT audit_person_fk REFERENCES person (id),
    what text,
    at_count integer
);
CREATE TABLE bulk (n integer PRIMARY KEY, txt text, payload jsonb);
CREATE FUNCTION shout(t text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $fn$
BEGIN
    -- a semicolon; a 'quote' and a $ sign in the body
    RETURN upper(t) || '!' || ';' || E'\'';
END
$fn$;
COMMENT ON FUNCTION shout(text) IS $c$shouts; loudly$c$;
CREATE FUNCTION dollar_body() RETURNS text LANGUAGE sql IMMUTABLE
    AS $body$ SELECT '$$;$_$' $body$;
CREATE FUNCTION add_one(i integer) RETURNS integer LANGUAGE sql IMMUTABLE RETURN i + 1;
CREATE FUNCTION audit_person() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    SELECT count(*) INTO n FROM audit;
    INSERT INTO audit (person_id, what, at_count)
        VALUES (NEW.id, TG_OP || ' of ' || quote_literal(NEW.name), n);
    RETURN NEW;
END;
$$;
CREATE TRIGGER person_audit AFTER INSERT OR UPDATE ON person
    FOR EACH ROW EXECUTE FUNCTION audit_person();
CREATE PROCEDURE bump_scores(delta integer) LANGUAGE plpgsql AS $proc$
BEGIN
    UPDATE person SET score = least(100, coalesce(score, 0) + delta);
    RAISE NOTICE 'bumped; by %', delta;
END;
$proc$;
CREATE PROCEDURE log_twice(w text) LANGUAGE sql
BEGIN ATOMIC
    INSERT INTO audit (what) VALUES (w || '; first');
    INSERT INTO audit (what) VALUES (w || '; second');
END;
CREATE VIEW happy_people AS
    SELECT id, shout(name) AS loud, feeling FROM person WHERE feeling = 'happy'::mood;
CREATE MATERIALIZED VIEW reading_stats AS
    SELECT date_trunc('year', taken) AS year, count(*) AS n, sum(reading) AS total
    FROM measurement GROUP BY 1;
CREATE INDEX person_name_idx ON person (lower(name));

INSERT INTO person (name, feeling, score, note) VALUES
    ('plain', 'happy', 10, 'simple'),
    (E'tab\there', 'sad', 0, E'line one\nline two\r\nline three'),
    (E'back\\slash', 'ok', 100, E'C:\\path\\to\\file\\'),
    ('single '' quote', 'it''s complicated', NULL, 'double " quote'),
    ('nulls', NULL, NULL, NULL),
    ('unicode ☃ é 日本', 'happy', 50, '😀 emoji'),
    ('empty note', 'ok', 1, ''),
    ('dot', 'ok', 2, E'\\.'),
    ('dot start', 'ok', 3, E'\\.starts the text'),
    ('dot line', 'ok', 4, E'before\n\\.\nafter'),
    ('semicolons', 'ok', 5, 'a; b;; c; -- not a comment /* nor this */'),
    ('dollars', 'ok', 6, '$$ and $fn$ and $1'),
    ('psql-ish', 'ok', 7, E'\\restrict nothing\n\\i /etc/passwd\nCOPY x FROM stdin;');
INSERT INTO employee (id, name, feeling, score, note, salary, manager_id) VALUES
    (100, 'boss', 'happy', 99, E'the\tboss', 12345.67, NULL),
    (101, 'worker', 'sad', 20, E'\\.', 100.5, 13);
INSERT INTO measurement (taken, reading, label) VALUES
    ('2023-03-01', 1.5, 'march'),
    ('2023-12-31', -0.25, E'new\nyear''s eve'),
    ('2024-02-29', 1e10, 'leap'),
    ('2024-07-04', NULL, NULL);
INSERT INTO bulk
    SELECT i, repeat(chr(32 + i % 90), i % 40) || E'\t' || i || E'\\',
           jsonb_build_object('i', i, 's', E'q"\n\\')
    FROM generate_series(1, 3000) i;
CALL bump_scores(5);
CALL log_twice('called');
SELECT setval('ticket_seq', 5000);
REFRESH MATERIALIZED VIEW reading_stats;
"#;

/// One line per object, as JSON, for each catalog section; `public` only, without
/// dbvigil's history table.
const PG_CATALOG: &[(&str, &str)] = &[
    (
        "views",
        "SELECT json_build_array(c.relname, c.relkind, pg_get_viewdef(c.oid))::text \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind IN ('v', 'm') ORDER BY 1",
    ),
    (
        "functions and procedures",
        "SELECT json_build_array(p.proname, p.prokind, pg_get_functiondef(p.oid), \
         obj_description(p.oid, 'pg_proc'))::text \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname = 'public' ORDER BY 1",
    ),
    (
        "triggers",
        "SELECT json_build_array(t.tgname, t.tgenabled, pg_get_triggerdef(t.oid))::text \
         FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND NOT t.tgisinternal ORDER BY 1",
    ),
    (
        "enum types and domains",
        "SELECT json_build_array(t.typname, t.typtype, format_type(t.typbasetype, t.typtypmod), \
         t.typnotnull, t.typdefault, \
         (SELECT json_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e \
          WHERE e.enumtypid = t.oid), \
         (SELECT json_agg(pg_get_constraintdef(k.oid) ORDER BY k.conname) FROM pg_constraint k \
          WHERE k.contypid = t.oid))::text \
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
         WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd') ORDER BY 1",
    ),
    (
        "sequences",
        "SELECT json_build_array(sequencename, data_type::text, start_value, increment_by, \
         last_value)::text FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1",
    ),
    (
        "columns",
        "SELECT json_build_array(c.relname, c.relkind, a.attnum, a.attname, \
         format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity, a.attislocal, \
         pg_get_expr(d.adbin, d.adrelid), col_description(c.oid, a.attnum))::text \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE n.nspname = 'public' AND a.attnum > 0 AND NOT a.attisdropped \
         AND c.relkind IN ('r', 'p', 'v', 'm') AND c.relname <> 'dbvigil_schema_history' \
         ORDER BY 1",
    ),
    (
        "constraints",
        "SELECT json_build_array(c.relname, k.conname, pg_get_constraintdef(k.oid))::text \
         FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relname <> 'dbvigil_schema_history' ORDER BY 1",
    ),
    (
        "indexes",
        "SELECT json_build_array(c.relname, pg_get_indexdef(i.indexrelid))::text \
         FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relname <> 'dbvigil_schema_history' ORDER BY 1",
    ),
    (
        "inheritance and partitions",
        "SELECT json_build_array(c.relname, p.relname, pg_get_expr(c.relpartbound, c.oid))::text \
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         JOIN pg_class p ON p.oid = i.inhparent ORDER BY 1",
    ),
    (
        "table comments",
        "SELECT json_build_array(c.relname, obj_description(c.oid, 'pg_class'))::text \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND obj_description(c.oid, 'pg_class') IS NOT NULL \
         ORDER BY 1",
    ),
];

struct Postgres {
    server: PgServer,
    scratch: PathBuf,
}

impl Postgres {
    /// A server with the source database made by `loader` and empty databases A and B,
    /// all owned by `loader` (no superuser: dbvigil and psql load as it, over TLS).
    fn start(scratch: &Path) -> Option<Postgres> {
        let server = PgServer::start()?;
        server.psql(&format!(
            "CREATE ROLE {LOGIN} LOGIN PASSWORD {}",
            sql_literal(PASSWORD)
        ));
        for db in [SRC, A, B] {
            server.psql(&format!("CREATE DATABASE {db} OWNER {LOGIN}"));
        }
        server.psql(&format!("\\c {SRC}\nSET ROLE {LOGIN};\n{PG_SCHEMA}"));
        Some(Postgres {
            server,
            scratch: scratch.to_owned(),
        })
    }

    fn program(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.server.psql_program().with_file_name(name));
        clear_pg_env(&mut cmd);
        cmd.env("PGCONNECT_TIMEOUT", "10");
        cmd
    }

    fn pg_dump(&self, db: &str, exclude_history: bool) -> String {
        let mut cmd = self.program("pg_dump");
        cmd.args(["-w", "-h", "127.0.0.1", "-p"])
            .arg(self.server.port().to_string())
            .args(["-U", "postgres"]);
        if exclude_history {
            cmd.arg(format!("--exclude-table=public.{HISTORY}"));
        }
        cmd.arg(db);
        run_tool(&format!("pg_dump {db}"), cmd, None, &self.scratch)
    }

    fn query(&self, db: &str, sql: &str) -> Vec<String> {
        lines(&self.server.psql(&format!("\\c {db}\n{sql};")))
    }
}

impl Engine for Postgres {
    fn name(&self) -> &'static str {
        "PostgreSQL"
    }

    fn hard_parts(&self) -> &'static [&'static str] {
        &[
            "\\restrict ",
            "\\unrestrict ",
            "SELECT pg_catalog.set_config('search_path', '', false);",
            "COPY public.person (",
            ") FROM stdin;\n",
            "\n\\.\n",
            "\t\\\\.\t",
            "\t\\\\.starts the text\t",
            "\tsingle ' quote\t",
            "AS $$\n",
            "AS $_$\n",
            "$_X$",
            "BEGIN ATOMIC\n",
            "PARTITION BY RANGE",
            "INHERITS (public.person)",
            "REFRESH MATERIALIZED VIEW",
        ]
    }

    fn dump(&self, db: &str) -> String {
        self.pg_dump(db, false)
    }

    fn dump_for_compare(&self, db: &str) -> String {
        self.pg_dump(db, true)
            .lines()
            .map(|line| {
                for command in ["\\restrict ", "\\unrestrict "] {
                    if line.starts_with(command) {
                        return format!("{command}KEY");
                    }
                }
                line.to_owned()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn migrate_url(&self, db: &str) -> String {
        format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            self.server.url(LOGIN, Some(PASSWORD), db),
            url_value(&self.server.ca_file().to_string_lossy())
        )
    }

    fn load_native(&self, db: &str, file: &Path) {
        let mut cmd = self.program("psql");
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(format!(
                "host=127.0.0.1 port={} user={LOGIN} dbname={db} sslmode=verify-full sslrootcert={}",
                self.server.port(),
                self.server.ca_file().display()
            ))
            .arg("-f")
            .arg(file)
            .env("PGPASSWORD", PASSWORD);
        run_tool(&format!("psql -f into {db}"), cmd, None, &self.scratch);
    }

    fn catalog(&self, db: &str) -> Vec<(&'static str, Vec<String>)> {
        PG_CATALOG
            .iter()
            .map(|(section, sql)| (*section, self.query(db, sql)))
            .collect()
    }

    fn tables(&self, db: &str) -> Vec<String> {
        self.query(
            db,
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'm') \
             AND c.relname <> 'dbvigil_schema_history' ORDER BY 1",
        )
    }

    fn rows(&self, db: &str, table: &str) -> Vec<String> {
        self.query(
            db,
            &format!(
                "SELECT row_to_json(t)::text FROM ONLY public.{} t ORDER BY 1",
                quoted_ident(table)
            ),
        )
    }
}

// ---------------------------------------------------------------------------------------
// MariaDB
// ---------------------------------------------------------------------------------------

/// Tables with nasty data, a view, triggers, a procedure and a function (mariadb-dump
/// writes the last three between `DELIMITER ;;` lines).
const MARIADB_SCHEMA: &str = r#"
SET NAMES utf8mb4;
CREATE TABLE person (
    id INT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    feeling ENUM('sad', 'ok', 'happy', 'it''s complicated') DEFAULT 'ok',
    tags SET('a', 'b', 'c;d'),
    score DECIMAL(6,2) CHECK (score BETWEEN 0 AND 1000),
    note TEXT,
    doc JSON,
    motto VARCHAR(50) DEFAULT 'it''s; fine',
    born DATE DEFAULT '2000-01-01',
    updated TIMESTAMP(3) NULL DEFAULT NULL
) ENGINE=InnoDB COMMENT='people; it''s a "table"';
CREATE TABLE audit (
    id INT AUTO_INCREMENT PRIMARY KEY,
    person_id INT,
    what VARCHAR(300),
    CONSTRAINT audit_person_fk FOREIGN KEY (person_id) REFERENCES person (id)
) ENGINE=InnoDB;
CREATE TABLE bulk (n INT PRIMARY KEY, txt VARCHAR(200)) ENGINE=InnoDB;
CREATE TABLE item (
    id INT AUTO_INCREMENT PRIMARY KEY,
    price DECIMAL(8,2) NOT NULL,
    qty INT NOT NULL DEFAULT 1,
    total DECIMAL(10,2) AS (price * qty) PERSISTENT,
    label VARCHAR(40) AS (CONCAT('item; ', id)) VIRTUAL
) ENGINE=InnoDB;
CREATE SEQUENCE ticket_seq START WITH 1000 INCREMENT BY 7;
CREATE INDEX person_name ON person (name);
CREATE VIEW happy_people AS
    SELECT id, CONCAT(name, '; yay') AS loud FROM person WHERE feeling = 'happy';
CREATE VIEW happy_later AS SELECT loud FROM happy_people WHERE id > 1;
DELIMITER ;;
CREATE TRIGGER person_audit AFTER INSERT ON person FOR EACH ROW
BEGIN
    DECLARE n INT;
    SELECT COUNT(*) INTO n FROM audit;
    INSERT INTO audit (person_id, what) VALUES (NEW.id, CONCAT('insert; ', QUOTE(NEW.name), ' #', n));
END;;
CREATE TRIGGER person_touch BEFORE UPDATE ON person FOR EACH ROW
    SET NEW.motto = CONCAT(NEW.motto, ';;');;
CREATE PROCEDURE bump_scores(IN delta INT)
BEGIN
    UPDATE person SET score = LEAST(1000, COALESCE(score, 0) + delta);
    SELECT 'done;;' AS msg;
END;;
CREATE FUNCTION shout(t TEXT) RETURNS TEXT DETERMINISTIC
BEGIN
    RETURN CONCAT(UPPER(t), '!;', '''', "\"", '\\');
END;;
CREATE TRIGGER person_audit_again AFTER INSERT ON person FOR EACH ROW FOLLOWS person_audit
    INSERT INTO audit (person_id, what) VALUES (NEW.id, 'again;;');;
CREATE PROCEDURE count_notes(OUT total INT)
BEGIN
    DECLARE done INT DEFAULT 0;
    DECLARE n TEXT;
    DECLARE c CURSOR FOR SELECT note FROM person;
    DECLARE CONTINUE HANDLER FOR NOT FOUND SET done = 1;
    SET total = 0;
    OPEN c;
    read_loop: LOOP
        FETCH c INTO n;
        IF done THEN
            LEAVE read_loop;
        END IF;
        IF n LIKE '%;%' THEN
            SET total = total + 1;
        END IF;
    END LOOP;
    CLOSE c;
END;;
DELIMITER ;
SET @saved_sql_mode = @@sql_mode;
SET sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES');
DELIMITER ;;
CREATE FUNCTION windows_dir(t TEXT) RETURNS TEXT DETERMINISTIC
BEGIN
    RETURN CONCAT('C:\', t, '\');
END;;
DELIMITER ;
SET sql_mode = @saved_sql_mode;
INSERT INTO person (name, feeling, tags, score, note, doc, updated) VALUES
    ('plain', 'happy', 'a', 10, 'simple', '{"k": 1}', '2024-01-02 03:04:05.678'),
    ('tab\there', 'sad', 'a,b', 0, 'line one\nline two\r\nline three', NULL, NULL),
    ('back\\slash', 'ok', 'c;d', 100, 'C:\\path\\to\\file\\', '{"p": "C:\\\\x"}', NULL),
    ('single '' quote', 'it''s complicated', '', NULL, 'double " quote', '[]', NULL),
    ('nulls', NULL, NULL, NULL, NULL, NULL, NULL),
    ('unicode ☃ é 日本 😀', 'happy', 'b', 50, '😀 emoji', '{"u": "☃"}', NULL),
    ('empty note', 'ok', 'a', 1, '', NULL, NULL),
    ('delims', 'ok', 'a', 2, 'a;; b; DELIMITER ;; -- not /* a comment */ /*!40101 nor this */', NULL, NULL),
    ('dot', 'ok', 'a', 3, '\\.\n\\.', NULL, NULL),
    ('zero byte', 'ok', 'a', 4, CONCAT('nul', CHAR(0), 'after'), NULL, NULL),
    ('ctrl-z', 'ok', 'a', 5, CONCAT('sub', CHAR(26), 'after'), NULL, NULL),
    ('client commands', 'ok', 'a', 6, '\\G\n\\c\nsource /etc/passwd\nUSE mysql;', NULL, NULL);
INSERT INTO bulk (n, txt)
    SELECT seq, CONCAT(REPEAT(CHAR(32 + seq % 90), seq % 40), '\t', seq, '\\') FROM seq_1_to_3000;
INSERT INTO item (price, qty) VALUES (1.5, 2), (10, 3), (0.01, 100);
SELECT NEXTVAL(ticket_seq), NEXTVAL(ticket_seq);
CALL bump_scores(5);
"#;

/// One line per object, as JSON, for each catalog section; `{db}` is the database.
const MARIADB_CATALOG: &[(&str, &str)] = &[
    (
        "routines",
        "SELECT JSON_ARRAY(ROUTINE_NAME, ROUTINE_TYPE, DTD_IDENTIFIER, ROUTINE_DEFINITION, \
         IS_DETERMINISTIC, SQL_DATA_ACCESS, SECURITY_TYPE, SQL_MODE, ROUTINE_COMMENT, DEFINER, \
         CHARACTER_SET_CLIENT, COLLATION_CONNECTION, DATABASE_COLLATION) AS j \
         FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{db}' ORDER BY j",
    ),
    (
        "routine parameters",
        "SELECT JSON_ARRAY(SPECIFIC_NAME, ORDINAL_POSITION, PARAMETER_MODE, PARAMETER_NAME, \
         DTD_IDENTIFIER) AS j \
         FROM information_schema.PARAMETERS WHERE SPECIFIC_SCHEMA = '{db}' ORDER BY j",
    ),
    (
        "triggers",
        "SELECT JSON_ARRAY(TRIGGER_NAME, EVENT_MANIPULATION, EVENT_OBJECT_TABLE, ACTION_ORDER, \
         ACTION_STATEMENT, ACTION_TIMING, SQL_MODE, DEFINER, CHARACTER_SET_CLIENT, \
         COLLATION_CONNECTION, DATABASE_COLLATION) AS j \
         FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{db}' ORDER BY j",
    ),
    (
        "views",
        "SELECT JSON_ARRAY(TABLE_NAME, VIEW_DEFINITION, CHECK_OPTION, IS_UPDATABLE, DEFINER, \
         SECURITY_TYPE, CHARACTER_SET_CLIENT, COLLATION_CONNECTION, ALGORITHM) AS j \
         FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '{db}' ORDER BY j",
    ),
    (
        "tables",
        "SELECT JSON_ARRAY(TABLE_NAME, TABLE_TYPE, ENGINE, TABLE_COLLATION, TABLE_COMMENT, \
         AUTO_INCREMENT) AS j FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME <> 'dbvigil_schema_history' ORDER BY j",
    ),
    (
        "columns",
        "SELECT JSON_ARRAY(TABLE_NAME, ORDINAL_POSITION, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, \
         COLUMN_DEFAULT, COLLATION_NAME, EXTRA, COLUMN_COMMENT) AS j \
         FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME <> 'dbvigil_schema_history' ORDER BY j",
    ),
    (
        "indexes",
        "SELECT JSON_ARRAY(TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE) AS j \
         FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME <> 'dbvigil_schema_history' ORDER BY j",
    ),
    (
        "check constraints",
        "SELECT JSON_ARRAY(TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE) AS j \
         FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = '{db}' ORDER BY j",
    ),
    (
        "foreign keys",
        "SELECT JSON_ARRAY(TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME, UPDATE_RULE, \
         DELETE_RULE) AS j \
         FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = '{db}' \
         ORDER BY j",
    ),
];

struct MariaDb {
    server: MariaDbServer,
    client: PathBuf,
    dump_tool: PathBuf,
    scratch: PathBuf,
}

/// A login for the dump tool (like PostgreSQL's superuser): every privilege, over TCP.
const MARIADB_DUMPER: &str = "dumper";
const MARIADB_DUMPER_PASSWORD: &str = "dumper-pw";

impl MariaDb {
    /// A server with the source database made by `loader` (so routines, triggers and
    /// views are defined by `loader`@`127.0.0.1`, who loads the dumps) and empty
    /// databases A and B. `loader` must use TLS and has every privilege on the three
    /// databases only.
    fn start(scratch: &Path) -> Option<MariaDb> {
        let (Some(client), Some(dump_tool)) = (
            find_program("mariadb"),
            find_program("mariadb-dump").or_else(|| find_program("mysqldump")),
        ) else {
            skip_or_fail("the MariaDB client programs (mariadb, mariadb-dump) are not installed");
            return None;
        };
        let server = MariaDbServer::start()?;
        let mut setup = format!(
            "CREATE USER '{LOGIN}'@'127.0.0.1' IDENTIFIED BY {} REQUIRE SSL; \
             CREATE USER '{MARIADB_DUMPER}'@'127.0.0.1' IDENTIFIED BY {}; \
             GRANT ALL ON *.* TO '{MARIADB_DUMPER}'@'127.0.0.1';",
            sql_literal(PASSWORD),
            sql_literal(MARIADB_DUMPER_PASSWORD)
        );
        for db in [SRC, A, B] {
            setup.push_str(&format!(
                " CREATE DATABASE {db} CHARACTER SET utf8mb4; \
                 GRANT ALL ON {db}.* TO '{LOGIN}'@'127.0.0.1';"
            ));
        }
        server.sql(&setup);
        let maria = MariaDb {
            server,
            client,
            dump_tool,
            scratch: scratch.to_owned(),
        };
        let schema = scratch.join("mariadb-schema.sql");
        fs::write(&schema, MARIADB_SCHEMA).unwrap();
        maria.load_native(SRC, &schema);
        Some(maria)
    }

    fn tool(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.arg("--no-defaults")
            .args(["--protocol=TCP", "-h", "127.0.0.1", "-P"])
            .arg(self.server.port().to_string());
        clear_mysql_env(&mut cmd);
        cmd
    }

    fn mariadb_dump(&self, db: &str, exclude_history: bool) -> String {
        let mut cmd = self.tool(&self.dump_tool);
        cmd.arg(format!("--user={MARIADB_DUMPER}"))
            .arg(format!("--password={MARIADB_DUMPER_PASSWORD}"))
            .args(["--routines", "--triggers"]);
        if exclude_history {
            cmd.arg(format!("--ignore-table={db}.{HISTORY}"));
        }
        cmd.arg(db);
        run_tool(&format!("mariadb-dump {db}"), cmd, None, &self.scratch)
    }

    /// Rows of `sql` (run as root), one line each, with the database's name made `DB`.
    fn query(&self, db: &str, sql: &str) -> Vec<String> {
        lines(&self.server.sql(&format!("{sql};")).replace(db, "DB"))
    }
}

impl Engine for MariaDb {
    fn name(&self) -> &'static str {
        "MariaDB"
    }

    fn hard_parts(&self) -> &'static [&'static str] {
        &[
            "/*M!999999\\- enable the sandbox mode */",
            "/*!40101 SET NAMES utf8mb4 */;",
            "/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;",
            "LOCK TABLES `person` WRITE;",
            "UNLOCK TABLES;",
            "/*!40000 ALTER TABLE `person` DISABLE KEYS */;",
            "DELIMITER ;;\n",
            "*/;;\n",
            "\n;;\n",
            "DELIMITER ;\n",
            "/*!50003 CREATE*/ /*!50017 DEFINER=",
            "CREATE DEFINER=`loader`@`127.0.0.1` PROCEDURE",
            "CREATE DEFINER=`loader`@`127.0.0.1` FUNCTION",
            "/*!50001 CREATE ALGORITHM=UNDEFINED */",
            "'single \\' quote'",
            "'back\\\\slash'",
            "'a;; b; DELIMITER ;; -- not /* a comment */ /*!40101 nor this */'",
            "nul\\0after",
            "sub\\Zafter",
            "NO_BACKSLASH_ESCAPES",
            "RETURN CONCAT('C:\\', t, '\\');",
            "CREATE SEQUENCE `ticket_seq`",
            "DO SETVAL(`ticket_seq`, ",
            "TRIGGER person_audit_again AFTER INSERT",
        ]
    }

    fn dump(&self, db: &str) -> String {
        self.mariadb_dump(db, false)
    }

    fn dump_for_compare(&self, db: &str) -> String {
        self.mariadb_dump(db, true)
            .lines()
            .map(|line| {
                if line.starts_with("-- Dump completed on") {
                    "-- Dump completed on DATE".to_owned()
                } else {
                    line.replace(db, "DB")
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn migrate_url(&self, db: &str) -> String {
        format!(
            "{}?ssl-mode=verify-full&ssl-ca={}",
            self.server.url(LOGIN, Some(PASSWORD), db),
            url_value(&self.server.ca_file().to_string_lossy())
        )
    }

    fn load_native(&self, db: &str, file: &Path) {
        let mut cmd = self.tool(&self.client);
        cmd.arg(format!("--user={LOGIN}"))
            .arg(format!("--password={PASSWORD}"))
            .arg("--ssl")
            .arg(format!("--ssl-ca={}", self.server.ca_file().display()))
            .arg("--ssl-verify-server-cert")
            .arg("--connect-timeout=10")
            .arg(db);
        run_tool(
            &format!("mariadb {db} < file"),
            cmd,
            Some(file),
            &self.scratch,
        );
    }

    fn catalog(&self, db: &str) -> Vec<(&'static str, Vec<String>)> {
        MARIADB_CATALOG
            .iter()
            .map(|(section, sql)| (*section, self.query(db, &sql.replace("{db}", db))))
            .collect()
    }

    fn tables(&self, db: &str) -> Vec<String> {
        self.query(
            db,
            &format!(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' \
                 AND TABLE_TYPE IN ('BASE TABLE', 'SEQUENCE') AND TABLE_NAME <> '{HISTORY}' \
                 ORDER BY 1"
            ),
        )
    }

    fn rows(&self, db: &str, table: &str) -> Vec<String> {
        let columns = self.server.sql(&format!(
            "SELECT GROUP_CONCAT(CONCAT('`', REPLACE(COLUMN_NAME, '`', '``'), '`') \
             ORDER BY ORDINAL_POSITION) FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = {}",
            sql_literal(table)
        ));
        self.query(
            db,
            &format!(
                "SELECT JSON_ARRAY({columns}) AS j FROM `{db}`.`{}` ORDER BY j",
                table.replace('`', "``")
            ),
        )
    }
}

// ---------------------------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------------------------

/// Tables (one WITHOUT ROWID, with an odd name), a foreign key, an index, a view, a
/// trigger whose BEGIN ... END body holds `;`, and data with newlines, quotes and blobs.
const SQLITE_SCHEMA: &str = r#"
PRAGMA foreign_keys = ON;
CREATE TABLE person (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL CHECK (name <> ';'),
    score REAL DEFAULT 1.5,
    note TEXT DEFAULT 'it''s; fine',
    raw BLOB
);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    person_id INTEGER REFERENCES person (id) ON DELETE CASCADE,
    what TEXT
);
CREATE TABLE "odd ""name""; table" (k TEXT PRIMARY KEY, v ANY) WITHOUT ROWID;
CREATE INDEX person_name ON person (name COLLATE NOCASE);
CREATE VIEW loud_people AS SELECT id, upper(name) || '; yay' AS loud FROM person WHERE score > 1;
CREATE TRIGGER person_audit AFTER INSERT ON person
BEGIN
    INSERT INTO audit (person_id, what) VALUES (NEW.id, 'insert; ' || quote(NEW.name));
    UPDATE person SET score = score + 1 WHERE id = NEW.id;
END;
INSERT INTO person (name, score, note, raw) VALUES
    ('plain', 10, 'simple', NULL),
    ('tab	here', 0, 'line one' || char(10) || 'line two' || char(13, 10) || 'line three', x'00ff10'),
    ('back\slash', 100, 'C:\path\to\file\', NULL),
    ('single '' quote', NULL, 'double " quote', NULL),
    ('unicode ☃ é 日本 😀', 50, '😀 emoji', x''),
    ('empty', 1, '', NULL),
    ('semicolons', 2, 'a; b;; c; END; -- not /* a comment */', NULL),
    ('dot', 3, '\.' || char(10) || '\.', NULL),
    ('dot commands', 4, '.tables' || char(10) || '.quit' || char(10) || 'COMMIT;', NULL);
INSERT INTO "odd ""name""; table" VALUES
    ('int', 42), ('real', 4.25), ('text', 'x;y'), ('null', NULL), ('blob', x'cafe');
INSERT INTO person (name, score, note, raw)
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
    SELECT 'bulk ' || i, i / 7.0, printf('%.*c', i % 40, char(32 + i % 90)) || char(9) || i, NULL FROM n;
"#;

struct Sqlite {
    sqlite3: PathBuf,
    scratch: PathBuf,
}

impl Sqlite {
    /// The source database made with the sqlite3 shell.
    fn start(scratch: &Path) -> Option<Sqlite> {
        let Some(sqlite3) = find_program("sqlite3") else {
            skip_or_fail("the sqlite3 shell is not installed");
            return None;
        };
        let lite = Sqlite {
            sqlite3,
            scratch: scratch.to_owned(),
        };
        let schema = scratch.join("sqlite-schema.sql");
        fs::write(&schema, SQLITE_SCHEMA).unwrap();
        lite.load_native(SRC, &schema);
        Some(lite)
    }

    fn path(&self, db: &str) -> PathBuf {
        self.scratch.join(format!("{db}.db"))
    }

    /// `sqlite3 -batch -bail [options] FILE COMMAND`: its output.
    fn shell(&self, options: &[&str], file: &Path, command: &str) -> String {
        let mut cmd = Command::new(&self.sqlite3);
        cmd.args(["-batch", "-bail"])
            .args(options)
            .arg(file)
            .arg(command);
        run_tool(
            &format!("sqlite3 {} {command:?}", file.display()),
            cmd,
            None,
            &self.scratch,
        )
    }

    fn query(&self, db: &str, sql: &str) -> Vec<String> {
        lines(&self.shell(&["-readonly"], &self.path(db), sql))
    }
}

impl Engine for Sqlite {
    fn name(&self) -> &'static str {
        "SQLite"
    }

    fn hard_parts(&self) -> &'static [&'static str] {
        &[
            "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n",
            "\nCOMMIT;\n",
            "CREATE TRIGGER person_audit AFTER INSERT ON person\nBEGIN\n",
            "\nEND;\n",
            ",char(10))",
            "'single '' quote'",
            "X'00ff10'",
            "CREATE TABLE IF NOT EXISTS \"odd \"\"name\"\"; table\"",
            "INSERT INTO sqlite_sequence VALUES('person',",
        ]
    }

    fn dump(&self, db: &str) -> String {
        self.shell(&[], &self.path(db), ".dump")
    }

    /// The dump of a copy of the database without dbvigil's history table.
    fn dump_for_compare(&self, db: &str) -> String {
        let copy = self.scratch.join(format!("{db}-without-history.db"));
        fs::copy(self.path(db), &copy).unwrap();
        self.shell(&[], &copy, &format!("DROP TABLE IF EXISTS {HISTORY}"));
        self.shell(&[], &copy, ".dump")
    }

    fn migrate_url(&self, db: &str) -> String {
        format!("sqlite:{}", self.path(db).display())
    }

    fn load_native(&self, db: &str, file: &Path) {
        let mut cmd = Command::new(&self.sqlite3);
        cmd.args(["-batch", "-bail"]).arg(self.path(db));
        run_tool(
            &format!("sqlite3 {db}.db < file"),
            cmd,
            Some(file),
            &self.scratch,
        );
    }

    fn catalog(&self, db: &str) -> Vec<(&'static str, Vec<String>)> {
        ["table", "index", "view", "trigger"]
            .into_iter()
            .map(|kind| {
                let entries = self.query(
                    db,
                    &format!(
                        "SELECT json_array(name, tbl_name, sql) FROM sqlite_master \
                         WHERE type = '{kind}' AND tbl_name <> '{HISTORY}' ORDER BY name"
                    ),
                );
                (kind, entries)
            })
            .collect()
    }

    fn tables(&self, db: &str) -> Vec<String> {
        self.query(
            db,
            &format!(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name <> '{HISTORY}' \
                 ORDER BY name"
            ),
        )
    }

    /// Each row as a JSON array of (type, value) pairs, blobs in hex.
    fn rows(&self, db: &str, table: &str) -> Vec<String> {
        let columns = self.query(
            db,
            &format!(
                "SELECT name FROM pragma_table_info({}) ORDER BY cid",
                sql_literal(table)
            ),
        );
        let values: Vec<String> = columns
            .iter()
            .map(|c| {
                let c = quoted_ident(c);
                format!("typeof({c}), CASE typeof({c}) WHEN 'blob' THEN hex({c}) ELSE {c} END")
            })
            .collect();
        self.query(
            db,
            &format!(
                "SELECT json_array({}) AS j FROM {} ORDER BY j",
                values.join(", "),
                quoted_ident(table)
            ),
        )
    }
}
