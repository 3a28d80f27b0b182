//! The splitter's tests: examples of each dialect's rules, the time it takes on adversarial
//! input, and property tests (generated scripts with known statements, and hostile text that
//! must keep the splitter consistent).
//!
//! The property tests run a modest number of cases by default; `PROPTEST_CASES=N` runs N
//! cases of each instead (docs/reliability.md, "Hostile input").

use super::*;
use proptest::prelude::*;
use proptest::strategy::Union;
use proptest::test_runner::TestCaseError;
use std::time::{Duration, Instant};

const ALL: [Dialect; 3] = [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite];

fn st(line: usize, sql: &str) -> Statement<'static> {
    Statement {
        sql: Cow::Owned(sql.to_owned()),
        line,
        copy_data: None,
    }
}

fn ok(script: &str, dialect: Dialect) -> Vec<Statement<'_>> {
    split(script, dialect).unwrap_or_else(|e| panic!("{dialect:?}: {e}"))
}

fn err(script: &str, dialect: Dialect) -> String {
    match split(script, dialect) {
        Ok(statements) => panic!("{dialect:?}: expected an error, got {statements:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn statements_end_at_semicolons_and_the_last_may_be_unterminated() {
    let script =
        "CREATE TABLE t (id int);\n\nINSERT INTO t VALUES (1);  INSERT INTO t VALUES (2)\n";
    for dialect in ALL {
        assert_eq!(
            ok(script, dialect),
            [
                st(1, "CREATE TABLE t (id int)"),
                st(3, "INSERT INTO t VALUES (1)"),
                st(3, "INSERT INTO t VALUES (2)"),
            ],
            "{dialect:?}"
        );
    }
}

#[test]
fn scripts_of_only_comments_and_blanks_give_no_statements() {
    for dialect in ALL {
        for script in [
            "",
            " \n\t\r\n",
            ";;\n ; ",
            "-- only a comment; really\n/* and a block; */\n",
            "/* trailing */ ; -- after the last statement",
            "\u{a0}\n\u{3000}",
        ] {
            assert_eq!(ok(script, dialect), [], "{dialect:?} {script:?}");
        }
    }
    assert_eq!(ok("# hash comment;\n", Dialect::MySql), []);
}

#[test]
fn leading_comments_are_dropped_and_inner_ones_kept() {
    let script =
        "-- header; not code\n/* block; */ SELECT 1 /* inner; */ + 2 -- tail;\n;\nSELECT 3";
    for dialect in ALL {
        assert_eq!(
            ok(script, dialect),
            [
                st(2, "SELECT 1 /* inner; */ + 2 -- tail;"),
                st(4, "SELECT 3"),
            ],
            "{dialect:?}"
        );
    }
}

#[test]
fn crlf_line_endings_count_lines_by_newline() {
    let script = "SELECT 1;\r\n\r\n-- c\r\nSELECT\r\n  2;\r\n";
    for dialect in ALL {
        assert_eq!(
            ok(script, dialect),
            [st(1, "SELECT 1"), st(4, "SELECT\r\n  2")],
            "{dialect:?}"
        );
    }
}

#[test]
fn doubled_single_quotes_stay_inside_the_string() {
    for dialect in ALL {
        assert_eq!(
            ok("SELECT 'it''s; fine';SELECT ''';'", dialect),
            [st(1, "SELECT 'it''s; fine'"), st(1, "SELECT ''';'")],
            "{dialect:?}"
        );
    }
}

#[test]
fn unicode_text_and_no_break_spaces() {
    let script = "SELECT 'żółw;🐢';\u{a0}\nSELECT naïve FROM café;\u{a0}";
    for dialect in ALL {
        assert_eq!(
            ok(script, dialect),
            [st(1, "SELECT 'żółw;🐢'"), st(2, "SELECT naïve FROM café")],
            "{dialect:?}"
        );
    }
    assert_eq!(
        ok("SELECT $ż$a;b$ż$; SELECT 2", Dialect::Postgres),
        [st(1, "SELECT $ż$a;b$ż$"), st(1, "SELECT 2")]
    );
}

#[test]
fn postgres_dollar_quoted_function_bodies() {
    let script = "\
CREATE FUNCTION add(a int, b int) RETURNS int AS $$
BEGIN
  RETURN a + b;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION quote_it(t text) RETURNS text AS $fn$
  SELECT 'it''s;' || $$ nested; $$ || t;
$fn$ LANGUAGE sql;
SELECT add(1, 2);
";
    assert_eq!(
        ok(script, Dialect::Postgres),
        [
            st(
                1,
                "CREATE FUNCTION add(a int, b int) RETURNS int AS $$\nBEGIN\n  RETURN a + b;\nEND;\n$$ LANGUAGE plpgsql"
            ),
            st(
                7,
                "CREATE FUNCTION quote_it(t text) RETURNS text AS $fn$\n  SELECT 'it''s;' || $$ nested; $$ || t;\n$fn$ LANGUAGE sql"
            ),
            st(10, "SELECT add(1, 2)"),
        ]
    );
}

#[test]
fn postgres_parameters_and_dollars_in_identifiers_are_not_quotes() {
    let script = "PREPARE q AS SELECT $1, $2::text;\nSELECT a$b$c, price$ FROM t$x;\nSELECT $ ;\nSELECT $a b;\nSELECT 1";
    assert_eq!(
        ok(script, Dialect::Postgres),
        [
            st(1, "PREPARE q AS SELECT $1, $2::text"),
            st(2, "SELECT a$b$c, price$ FROM t$x"),
            st(3, "SELECT $"),
            st(4, "SELECT $a b"),
            st(5, "SELECT 1"),
        ]
    );
}

#[test]
fn postgres_escape_strings_honour_backslashes_and_plain_strings_do_not() {
    let script = r"SELECT E'it\'s;', e'\\';
SELECT 'C:\';
SELECT E'a''\';';
SELECT be'a\'; SELECT 2";
    assert_eq!(
        ok(script, Dialect::Postgres),
        [
            st(1, r"SELECT E'it\'s;', e'\\'"),
            st(2, r"SELECT 'C:\'"),
            st(3, r"SELECT E'a''\';'"),
            st(4, r"SELECT be'a\'"),
            st(4, "SELECT 2"),
        ]
    );
}

#[test]
fn postgres_block_comments_nest_and_others_do_not() {
    assert_eq!(
        ok(
            "/* outer /* inner; */ still comment; */ SELECT 1; SELECT /* a; /* b; */ c; */ 2;",
            Dialect::Postgres
        ),
        [st(1, "SELECT 1"), st(1, "SELECT /* a; /* b; */ c; */ 2")]
    );
    for dialect in [Dialect::MySql, Dialect::Sqlite] {
        assert_eq!(
            ok("/* a /* b; */ SELECT 1;", dialect),
            [st(1, "SELECT 1")],
            "{dialect:?}"
        );
    }
}

#[test]
fn postgres_quoted_identifiers_double_their_quotes() {
    assert_eq!(
        ok(r#"SELECT "a;""b" FROM "t;"; SELECT 2"#, Dialect::Postgres),
        [st(1, r#"SELECT "a;""b" FROM "t;""#), st(1, "SELECT 2")]
    );
}

#[test]
fn dash_comments_run_to_end_of_line_in_postgres_and_sqlite() {
    for dialect in [Dialect::Postgres, Dialect::Sqlite] {
        assert_eq!(
            ok("SELECT 1 --1; not a statement\n+ 2;", dialect),
            [st(1, "SELECT 1 --1; not a statement\n+ 2")],
            "{dialect:?}"
        );
    }
}

#[test]
fn postgres_begin_atomic_bodies_end_at_their_matching_end() {
    let script = "\
CREATE FUNCTION sign_of(x int) RETURNS int LANGUAGE sql
BEGIN ATOMIC
  SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;
  SELECT 2;
END;
create procedure p() language sql begin /* c; */ atomic insert into t values (1); end;
BEGIN;
SELECT 1;
COMMIT;
SELECT begin atomic FROM t; SELECT 2";
    assert_eq!(
        ok(script, Dialect::Postgres),
        [
            st(
                1,
                "CREATE FUNCTION sign_of(x int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;\n  SELECT 2;\nEND"
            ),
            st(
                6,
                "create procedure p() language sql begin /* c; */ atomic insert into t values (1); end"
            ),
            st(7, "BEGIN"),
            st(8, "SELECT 1"),
            st(9, "COMMIT"),
            st(10, "SELECT begin atomic FROM t"),
            st(10, "SELECT 2"),
        ]
    );
}

#[test]
fn postgres_semicolons_inside_parentheses_do_not_end_statements() {
    let script = "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2));\nSELECT 1);SELECT 2";
    assert_eq!(
        ok(script, Dialect::Postgres),
        [
            st(
                1,
                "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2))"
            ),
            st(2, "SELECT 1)"),
            st(2, "SELECT 2"),
        ]
    );
}

#[test]
fn mariadb_procedure_and_trigger_in_a_delimiter_block() {
    let script = "\
CREATE TABLE t (id INT, note TEXT);
DELIMITER //
CREATE PROCEDURE add_row(IN n INT)
BEGIN
  INSERT INTO t VALUES (n, 'a;b');
  SELECT COUNT(*) FROM t;
END//
CREATE TRIGGER t_bi BEFORE INSERT ON t FOR EACH ROW
BEGIN
  SET NEW.note = CONCAT(NEW.note, ';');
END //
delimiter ;
CALL add_row(1);
INSERT INTO t VALUES (2, 'x');
";
    assert_eq!(
        ok(script, Dialect::MySql),
        [
            st(1, "CREATE TABLE t (id INT, note TEXT)"),
            st(
                3,
                "CREATE PROCEDURE add_row(IN n INT)\nBEGIN\n  INSERT INTO t VALUES (n, 'a;b');\n  SELECT COUNT(*) FROM t;\nEND"
            ),
            st(
                8,
                "CREATE TRIGGER t_bi BEFORE INSERT ON t FOR EACH ROW\nBEGIN\n  SET NEW.note = CONCAT(NEW.note, ';');\nEND"
            ),
            st(13, "CALL add_row(1)"),
            st(14, "INSERT INTO t VALUES (2, 'x')"),
        ]
    );
}

#[test]
fn mysql_dollar_and_double_semicolon_delimiters_as_mysqldump_writes_them() {
    let script = "\
DELIMITER $$
CREATE FUNCTION f() RETURNS INT DETERMINISTIC
BEGIN
  RETURN 1;
END$$
DELIMITER ;;
/*!50003 CREATE*/ /*!50003 TRIGGER tr BEFORE INSERT ON t FOR EACH ROW BEGIN SET NEW.a = 1; END */;;
DELIMITER ;
SELECT f()";
    assert_eq!(
        ok(script, Dialect::MySql),
        [
            st(
                2,
                "CREATE FUNCTION f() RETURNS INT DETERMINISTIC\nBEGIN\n  RETURN 1;\nEND"
            ),
            st(
                7,
                "/*!50003 CREATE*/ /*!50003 TRIGGER tr BEFORE INSERT ON t FOR EACH ROW BEGIN SET NEW.a = 1; END */"
            ),
            st(9, "SELECT f()"),
        ]
    );
}

#[test]
fn mysql_delimiter_is_a_command_only_between_statements() {
    let script = "SELECT delimiter FROM t;\nDeLiMiTeR //\nSELECT 1; SELECT 2//SELECT 3//\nDELIMITER ;\nSELECT 4\nDELIMITER //\n";
    assert_eq!(
        ok(script, Dialect::MySql),
        [
            st(1, "SELECT delimiter FROM t"),
            st(3, "SELECT 1; SELECT 2"),
            st(3, "SELECT 3"),
            st(5, "SELECT 4\nDELIMITER //"),
        ]
    );
    // The delimiter is found even where it runs into a word, as the mysql client does.
    assert_eq!(
        ok("DELIMITER $$\r\nSELECT a$$SELECT 'x$$'$$", Dialect::MySql),
        [st(2, "SELECT a"), st(2, "SELECT 'x$$'")]
    );
    assert_eq!(
        ok("DELIMITER;\nSELECT 1;", Dialect::MySql),
        [st(2, "SELECT 1")]
    );
}

#[test]
fn mysql_strings_take_backslashes_and_doubling() {
    let script =
        r#"SELECT 'it\'s;', 'a''b;', "say \"hi\"; ""ok""", `col``;` FROM t; SELECT '\\'; SELECT 2"#;
    assert_eq!(
        ok(script, Dialect::MySql),
        [
            st(
                1,
                r#"SELECT 'it\'s;', 'a''b;', "say \"hi\"; ""ok""", `col``;` FROM t"#
            ),
            st(1, r"SELECT '\\'"),
            st(1, "SELECT 2"),
        ]
    );
}

#[test]
fn mysql_comments() {
    let script = "SELECT 1--1;\nSELECT 2 -- comment;\n;\nSELECT 3 # hash; comment\n;\nSELECT 4 --\tx;\n; SELECT 5 --";
    assert_eq!(
        ok(script, Dialect::MySql),
        [
            st(1, "SELECT 1--1"),
            st(2, "SELECT 2 -- comment;"),
            st(4, "SELECT 3 # hash; comment"),
            st(6, "SELECT 4 --\tx;"),
            st(7, "SELECT 5 --"),
        ]
    );
}

#[test]
fn mysql_executable_comments_are_code() {
    let script = "/*!40101 SET NAMES utf8mb4 */;\n/* plain; */ /*M!100100 SET x = 'a*/b' */;\n/*!40014 SET a = 1; SET b = 2 */;";
    assert_eq!(
        ok(script, Dialect::MySql),
        [
            st(1, "/*!40101 SET NAMES utf8mb4 */"),
            st(2, "/*M!100100 SET x = 'a*/b' */"),
            st(3, "/*!40014 SET a = 1; SET b = 2 */"),
        ]
    );
    for dialect in [Dialect::Postgres, Dialect::Sqlite] {
        assert_eq!(
            ok("/*! not code; */ SELECT 1", dialect),
            [st(1, "SELECT 1")],
            "{dialect:?}"
        );
    }
}

#[test]
fn mysql_delimiter_errors() {
    assert_eq!(
        err("SELECT 1;\nDELIMITER", Dialect::MySql),
        "DELIMITER on line 2 needs a delimiter, like DELIMITER //"
    );
    assert_eq!(
        err("DELIMITER  \t\r\nSELECT 1", Dialect::MySql),
        "DELIMITER on line 1 needs a delimiter, like DELIMITER //"
    );
    assert_eq!(
        err("DELIMITER \\", Dialect::MySql),
        "DELIMITER on line 1: \\ contains a backslash or a quote; use one like DELIMITER //"
    );
    assert_eq!(
        err("DELIMITER 'x'", Dialect::MySql),
        "DELIMITER on line 1: 'x' contains a backslash or a quote; use one like DELIMITER //"
    );
    assert_eq!(
        err("\nDELIMITER abcdefghijklmnopq", Dialect::MySql),
        "DELIMITER on line 2: abcdefghijklmnopq is longer than 16 bytes; use one like DELIMITER //"
    );
    assert_eq!(
        err(
            "DELIMITER // CREATE PROCEDURE p() BEGIN END//",
            Dialect::MySql
        ),
        "DELIMITER on line 1 takes only the delimiter, but the line goes on after //: put the next statement on its own line"
    );
}

#[test]
fn sqlite_trigger_bodies_end_after_end() {
    let script = "\
CREATE TABLE log (msg TEXT);
CREATE TEMP TRIGGER trg AFTER INSERT ON log
BEGIN
  INSERT INTO log VALUES ('a;b');
  SELECT CASE WHEN 1 THEN 'x' END;
END;
create trigger \"t2\" before delete on [log;] begin delete from `x;`; end
;
CREATE TABLE trigger_log (x);
CREATE TABLE \"trigger\" (y);
EXPLAIN QUERY PLAN CREATE TRIGGER t3 AFTER INSERT ON log BEGIN SELECT 1; END";
    assert_eq!(
        ok(script, Dialect::Sqlite),
        [
            st(1, "CREATE TABLE log (msg TEXT)"),
            st(
                2,
                "CREATE TEMP TRIGGER trg AFTER INSERT ON log\nBEGIN\n  INSERT INTO log VALUES ('a;b');\n  SELECT CASE WHEN 1 THEN 'x' END;\nEND"
            ),
            st(
                7,
                "create trigger \"t2\" before delete on [log;] begin delete from `x;`; end"
            ),
            st(9, "CREATE TABLE trigger_log (x)"),
            st(10, "CREATE TABLE \"trigger\" (y)"),
            st(
                11,
                "EXPLAIN QUERY PLAN CREATE TRIGGER t3 AFTER INSERT ON log BEGIN SELECT 1; END"
            ),
        ]
    );
}

#[test]
fn unterminated_constructs_name_what_and_where() {
    let cases = [
        (
            Dialect::Postgres,
            "SELECT 1;\nSELECT 'abc",
            "unterminated string literal starting on line 2: close it with '",
        ),
        (
            Dialect::Postgres,
            "SELECT \"abc",
            "unterminated quoted identifier starting on line 1: close it with \"",
        ),
        (
            Dialect::Postgres,
            r"SELECT E'it\'s",
            r"unterminated escape string E'...' starting on line 1: close it with ' (a backslash escapes the next character, so \' does not close it)",
        ),
        (
            Dialect::Postgres,
            "SELECT 1;\n/* a /* b */ c",
            "unterminated block comment starting on line 2: close it with */ (comments nest in PostgreSQL, so each /* inside needs its own */)",
        ),
        (
            Dialect::Postgres,
            "SELECT 1;\n\nCREATE FUNCTION f() RETURNS int AS $body$\nSELECT 1;\n$$ LANGUAGE sql;",
            "unterminated dollar-quoted string $body$ starting on line 3: close it with $body$",
        ),
        (
            Dialect::Postgres,
            "SELECT $$",
            "unterminated dollar-quoted string $$ starting on line 1: close it with $$",
        ),
        (
            Dialect::Postgres,
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\n",
            "unterminated BEGIN ATOMIC function body starting on line 2: close it with END; (each CASE inside needs its own END too)",
        ),
        (
            Dialect::Postgres,
            "SELECT (1;\nSELECT 2;",
            "unterminated parenthesis starting on line 1: close it with ) (a ; inside parentheses does not end a PostgreSQL statement)",
        ),
        (
            Dialect::MySql,
            r"SELECT 'it\'s",
            r"unterminated string literal starting on line 1: close it with ' (a backslash escapes the next character, so \' does not close it)",
        ),
        (
            Dialect::MySql,
            "SELECT \"a",
            r#"unterminated double-quoted string starting on line 1: close it with " (a backslash escapes the next character, so \" does not close it)"#,
        ),
        (
            Dialect::MySql,
            "SELECT `a``",
            "unterminated backquoted identifier starting on line 1: close it with `",
        ),
        (
            Dialect::MySql,
            "SELECT 1;\r\n/* a",
            "unterminated block comment starting on line 2: close it with */",
        ),
        (
            Dialect::MySql,
            "/*!40101 SET x = 1;",
            "unterminated executable comment /*! starting on line 1: close it with */",
        ),
        (
            Dialect::Sqlite,
            "SELECT [a",
            "unterminated bracketed identifier starting on line 1: close it with ]",
        ),
        (
            Dialect::Sqlite,
            "SELECT 0;\nCREATE TRIGGER t AFTER INSERT ON x BEGIN\n  SELECT 1;\n",
            "unterminated CREATE TRIGGER statement starting on line 2: end the trigger body with END; (a ; before that END belongs to the body)",
        ),
    ];
    for (dialect, script, message) in cases {
        assert_eq!(err(script, dialect), message, "{dialect:?} {script:?}");
    }
}

#[test]
fn fragments_at_end_of_input_do_not_panic() {
    for dialect in ALL {
        for script in [
            "$",
            "$a",
            "$a$",
            "$1",
            "E",
            "E'",
            "e'\\",
            "'\\",
            "/",
            "/*",
            "/*!",
            "/*M",
            "/*M!",
            "-",
            "--",
            "#",
            "[",
            "`",
            "\"",
            "DELIMITER",
            "DELIMITER ",
            "delimiter\n",
            "BEGIN",
            "CREATE TRIGGER",
            "CREATE FUNCTION f() BEGIN ATOMIC",
            "(",
            ")",
            "é",
            "\u{a0}",
            "\u{85}",
        ] {
            let _ = split(script, dialect);
        }
    }
}

const MANY_STATEMENTS: &str = "INSERT INTO t VALUES (1, 'a;b', \"c\") /* x; */; -- note;\n";

/// Scripts of megabytes, as a prefix and a unit repeated `count` times: 100k ordinary
/// statements in each dialect, then inputs that would make a rescanning splitter quadratic.
fn megabyte_scripts() -> Vec<(Dialect, &'static str, &'static str, usize)> {
    let mut scripts: Vec<_> = ALL
        .into_iter()
        .map(|dialect| (dialect, "", MANY_STATEMENTS, 100_000))
        .collect();
    scripts.extend([
        (Dialect::Postgres, "", "$a ", 1_000_000),
        (Dialect::Postgres, "", "a$", 1_000_000),
        (Dialect::Postgres, "", "/*", 1_000_000),
        (
            Dialect::Postgres,
            "",
            "CREATE FUNCTION f() BEGIN ATOMIC CASE ",
            100_000,
        ),
        (
            Dialect::MySql,
            "DELIMITER aaaaaaaaaaaaaaab\n",
            "a",
            5_000_000,
        ),
        (Dialect::Sqlite, "", "CREATE TRIGGER t BEGIN x; ", 200_000),
        (Dialect::MySql, "", "DELIMITER ;\n", 500_000),
    ]);
    scripts
}

#[test]
fn splits_megabytes_in_linear_time() {
    for (dialect, prefix, unit, count) in megabyte_scripts() {
        let what = format!("{dialect:?} {prefix:?} + {count} x {unit:?}");
        let script = |units: usize| format!("{prefix}{}", unit.repeat(units));
        let eighth_time = (0..3)
            .map(|_| time_split(script(count / 8), dialect, None).unwrap())
            .min()
            .unwrap();
        // A ratio holds in a debug build and on a busy machine too: linear work takes about
        // 8 times as long on 8 times the input, quadratic work 64 times.
        let limit = eighth_time * 24;
        let whole_time = (0..3).find_map(|_| time_split(script(count), dialect, Some(limit)));
        let Some(whole_time) = whole_time else {
            panic!(
                "{what}: not split within {limit:?}, 24 times what an eighth of it took, in 3 tries: more than linear"
            );
        };
        // Timing the whole only means something in an optimised build.
        if !cfg!(debug_assertions) {
            assert!(
                whole_time < Duration::from_millis(500),
                "{what}: {whole_time:?}"
            );
        }
    }
    let many_statements = MANY_STATEMENTS.repeat(100_000);
    assert!(many_statements.len() > 5_000_000);
    for dialect in ALL {
        let statements = ok(&many_statements, dialect);
        assert_eq!(statements.len(), 100_000);
        assert_eq!(
            statements[99_999],
            st(100_000, "INSERT INTO t VALUES (1, 'a;b', \"c\") /* x; */")
        );
    }
}

/// How long splitting `script` takes, or None when it takes longer than `limit`. The split
/// runs on a thread of its own, left behind when over the limit, so that a quadratic
/// splitter fails the test at the limit rather than when its split ends (about 4 minutes
/// against over 10 for the megabytes of statements, in a debug build).
fn time_split(script: String, dialect: Dialect, limit: Option<Duration>) -> Option<Duration> {
    let (done, finished) = std::sync::mpsc::channel();
    let started = Instant::now();
    std::thread::spawn(move || {
        let _ = split(&script, dialect);
        let _ = done.send(started.elapsed());
    });
    match limit {
        Some(limit) => finished.recv_timeout(limit).ok(),
        None => finished.recv().ok(),
    }
}

#[test]
fn pg_dump_copy_blocks_carry_their_rows_up_to_the_end_marker() {
    let script = "SET standard_conforming_strings = on;\n\
                      COPY public.t (id, note) FROM stdin;\n\
                      1\ta;b\\\\c\n\
                      2\t\\\\.\n\
                      3\t\\N\n\
                      \\.\n\
                      SELECT 1;\n\
                      copy \"t\" FROM STDIN WITH (FORMAT csv);\r\n\
                      \"x;\",\"it's\"\r\n\
                      \\.\r\n";
    let statements = ok(script, Dialect::Postgres);
    assert_eq!(statements.len(), 4, "{statements:?}");
    assert_eq!(
        statements[1].copy_data,
        Some("1\ta;b\\\\c\n2\t\\\\.\n3\t\\N\n")
    );
    assert_eq!(statements[1].sql, "COPY public.t (id, note) FROM stdin");
    assert_eq!(statements[2], st(7, "SELECT 1"));
    assert_eq!(statements[3].copy_data, Some("\"x;\",\"it's\"\r\n"));
    assert_eq!(statements[0].copy_data, None);
}

#[test]
fn copy_words_inside_strings_or_subqueries_do_not_make_a_copy_block() {
    for script in [
        "COPY (SELECT 'from stdin') TO '/tmp/x';\nSELECT 2;",
        "COPY t FROM '/srv/stdin';\nSELECT 2;",
        "SELECT 'copy t from stdin';\nSELECT 2;",
    ] {
        let statements = ok(script, Dialect::Postgres);
        assert_eq!(statements.len(), 2, "{script}: {statements:?}");
        assert!(statements.iter().all(|s| s.copy_data.is_none()), "{script}");
    }
}

#[test]
fn broken_copy_blocks_are_refused_with_their_line() {
    assert_eq!(
        err("SELECT 1;\nCOPY t FROM stdin;\n1\n2\n", Dialect::Postgres),
        "COPY ... FROM stdin on line 2 has no end-of-data line \\. after its rows: the script is cut short; take the whole dump again"
    );
    assert_eq!(
        err("COPY t FROM stdin; 1\n\\.\n", Dialect::Postgres),
        "COPY ... FROM stdin on line 1 is followed by more text on its line: put its rows on the lines after it, ended by a line \\."
    );
    assert_eq!(
        err("\n\nCOPY (SELECT 1) TO STDOUT;", Dialect::Postgres),
        "COPY ... TO stdout on line 3 sends rows to dbvigil, which has nowhere to put them: remove it, or copy to a server file"
    );
}

#[test]
fn psql_meta_commands_are_refused_except_pg_dumps_restrict_pair() {
    let script = "\\restrict abc123\n\nSELECT 1;\n\\unrestrict abc123\n";
    assert_eq!(ok(script, Dialect::Postgres), [st(3, "SELECT 1")]);
    assert_eq!(
        err("SELECT 1;\n\\connect other\nSELECT 2;", Dialect::Postgres),
        "psql meta-command \\connect on line 2 cannot run in dbvigil migrate: dbvigil runs every script in the database it connected to; run that part with its own --database-url or target, and remove the line"
    );
    assert_eq!(
        err("\\set ON_ERROR_STOP on\n", Dialect::Postgres),
        "psql meta-command \\set on line 1 cannot run in dbvigil migrate: it sets up psql, not the database; remove the line"
    );
    assert_eq!(
        err("SELECT 1 \\g\n", Dialect::Postgres),
        "psql meta-command \\g on line 1 cannot run in dbvigil migrate: dbvigil sends SQL only; rewrite it as plain SQL (a DO block can branch)"
    );
    assert_eq!(
        err(
            "\\restrict k1\nSELECT 1;\n\\unrestrict k2\n",
            Dialect::Postgres
        ),
        "\\unrestrict on line 3 does not give the key of \\restrict on line 1: the script was edited between them; restore the key the dump was written with"
    );
    // Backslashes mean nothing special to MySQL or SQLite outside strings.
    assert_eq!(ok("SELECT 1 \\g", Dialect::Sqlite).len(), 1);
}

#[test]
fn standard_conforming_strings_off_makes_backslashes_escape_in_plain_strings() {
    let script = "SET standard_conforming_strings = off;\n\
                      INSERT INTO t VALUES ('a\\';b');\n\
                      SET standard_conforming_strings TO 'on';\n\
                      SELECT 'c\\';\n\
                      SELECT 2;";
    let statements = ok(script, Dialect::Postgres);
    let sql: Vec<&str> = statements.iter().map(|s| s.sql.as_ref()).collect();
    assert_eq!(
        sql,
        [
            "SET standard_conforming_strings = off",
            "INSERT INTO t VALUES ('a\\';b')",
            "SET standard_conforming_strings TO 'on'",
            "SELECT 'c\\'",
            "SELECT 2"
        ]
    );
    assert_eq!(standard_strings_set_by("RESET ALL"), Some(true));
    assert_eq!(
        standard_strings_set_by("set session standard_conforming_strings=false"),
        Some(false)
    );
    assert_eq!(standard_strings_set_by("SET search_path = off"), None);
}

#[test]
fn mysqldump_routines_under_no_backslash_escapes_split_as_the_client_splits_them() {
    let script = "/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;\n\
                      INSERT INTO t VALUES ('a\\';b');\n\
                      /*!50003 SET @saved_sql_mode       = @@sql_mode */ ;\n\
                      /*!50003 SET sql_mode              = 'NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES' */ ;\n\
                      DELIMITER ;;\n\
                      CREATE FUNCTION f(t TEXT) RETURNS TEXT RETURN CONCAT('C:\\', t, '\\') ;;\n\
                      DELIMITER ;\n\
                      /*!50003 SET sql_mode              = @saved_sql_mode */ ;\n\
                      INSERT INTO t VALUES ('c\\';d');\n\
                      /*!40101 SET SQL_MODE=@OLD_SQL_MODE */;\n";
    let statements = ok(script, Dialect::MySql);
    let sql: Vec<&str> = statements.iter().map(|s| s.sql.as_ref()).collect();
    assert_eq!(sql.len(), 8, "{sql:#?}");
    assert_eq!(
        sql[4],
        "CREATE FUNCTION f(t TEXT) RETURNS TEXT RETURN CONCAT('C:\\', t, '\\')"
    );
    assert_eq!(sql[6], "INSERT INTO t VALUES ('c\\';d')");
}

/// A script generated together with the statements it must split into.
#[derive(Debug, Clone)]
struct Case {
    script: String,
    expected: Vec<Statement<'static>>,
}

const KEYWORDS: [&str; 13] = [
    "copy",
    "stdin",
    "stdout",
    "begin",
    "atomic",
    "case",
    "end",
    "create",
    "trigger",
    "temp",
    "temporary",
    "explain",
    "delimiter",
];

/// Words that cannot change where a statement ends.
fn word() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,7}".prop_filter("keywords shape statement ends", |w| {
        !KEYWORDS.contains(&w.as_str())
    })
}

/// Text for string literals and comments, full of terminators and quotes.
const TEXT: &str = "[a-z ;'\"\\\\]{0,8}";
const COMMENT_TEXT: &str = "[a-z ;'\"]{0,8}";

fn fragment(dialect: Dialect) -> BoxedStrategy<String> {
    let mut fragments = vec![
        word().boxed(),
        "[0-9]{1,4}".boxed(),
        COMMENT_TEXT.prop_map(|c| format!("/*{c}*/")).boxed(),
    ];
    match dialect {
        Dialect::Postgres => fragments.extend([
            TEXT.prop_map(|t| format!("'{}'", t.replace('\'', "''")))
                .boxed(),
            (TEXT, any::<bool>())
                .prop_map(|(t, doubled)| {
                    let quote = if doubled { "''" } else { "\\'" };
                    format!("E'{}'", t.replace('\\', "\\\\").replace('\'', quote))
                })
                .boxed(),
            COMMENT_TEXT
                .prop_map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
                .boxed(),
            COMMENT_TEXT.prop_map(|c| format!("--{c}\n")).boxed(),
            COMMENT_TEXT
                .prop_map(|c| format!("/* {c} /* {c} */ {c} */"))
                .boxed(),
            "[a-z ;'\"]{0,10}".prop_map(|b| format!("$${b}$$")).boxed(),
            // No f or n in the body, so it cannot contain the closing tag.
            "[a-e ;'$]{0,10}"
                .prop_map(|b| format!("$fn${b}$fn$"))
                .boxed(),
            Just("$1".to_owned()).boxed(),
            Just("CASE WHEN x THEN 1 ELSE 2 END".to_owned()).boxed(),
        ]),
        Dialect::MySql => fragments.extend([
            (TEXT, any::<bool>())
                .prop_map(|(t, doubled)| {
                    let quote = if doubled { "''" } else { "\\'" };
                    format!("'{}'", t.replace('\\', "\\\\").replace('\'', quote))
                })
                .boxed(),
            (TEXT, any::<bool>())
                .prop_map(|(t, doubled)| {
                    let quote = if doubled { "\"\"" } else { "\\\"" };
                    format!("\"{}\"", t.replace('\\', "\\\\").replace('"', quote))
                })
                .boxed(),
            "[a-z ;`]{0,8}"
                .prop_map(|t| format!("`{}`", t.replace('`', "``")))
                .boxed(),
            COMMENT_TEXT.prop_map(|c| format!("-- {c}\n")).boxed(),
            COMMENT_TEXT.prop_map(|c| format!("#{c}\n")).boxed(),
            "[a-z ]{0,8}"
                .prop_map(|c| format!("/*!40101 {c}*/"))
                .boxed(),
        ]),
        Dialect::Sqlite => fragments.extend([
            TEXT.prop_map(|t| format!("'{}'", t.replace('\'', "''")))
                .boxed(),
            COMMENT_TEXT
                .prop_map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
                .boxed(),
            "[a-z ;`]{0,8}"
                .prop_map(|t| format!("`{}`", t.replace('`', "``")))
                .boxed(),
            COMMENT_TEXT.prop_map(|t| format!("[{t}]")).boxed(),
            COMMENT_TEXT.prop_map(|c| format!("--{c}\n")).boxed(),
            Just("CASE WHEN x THEN 1 ELSE 2 END".to_owned()).boxed(),
        ]),
    }
    Union::new(fragments).boxed()
}

fn separator() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![" ", "\n", "\t", " \r\n  "])
}

fn whitespace() -> impl Strategy<Value = String> {
    prop_oneof!["[ \t\n]{0,3}", Just("\r\n".to_owned())]
}

/// A statement that starts with code and holds only terminators that must not split it.
fn plain_statement(dialect: Dialect) -> BoxedStrategy<String> {
    let first = match dialect {
        Dialect::MySql => prop_oneof![
            4 => word(),
            1 => "[a-z ]{0,8}".prop_map(|c| format!("/*!40101 {c}*/")),
        ]
        .boxed(),
        Dialect::Postgres | Dialect::Sqlite => word().boxed(),
    };
    let rest = prop::collection::vec((separator(), fragment(dialect)), 0..6);
    (first, rest)
        .prop_map(|(mut sql, rest)| {
            for (separator, fragment) in rest {
                sql.push_str(separator);
                sql.push_str(&fragment);
            }
            sql
        })
        .boxed()
}

/// A statement and the delimiter that must end it.
fn statement(dialect: Dialect) -> BoxedStrategy<(String, &'static str)> {
    let body = prop::collection::vec(plain_statement(dialect), 1..4)
        .prop_map(|statements| statements.join(";\n  "));
    match dialect {
            Dialect::Postgres => prop_oneof![
                3 => plain_statement(dialect).prop_map(|sql| (sql, ";")),
                1 => body.prop_map(|body| (
                    format!("CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  {body};\nEND"),
                    ";",
                )),
            ]
            .boxed(),
            Dialect::MySql => prop_oneof![
                3 => (plain_statement(dialect), prop::sample::select(vec![";", "//", "$$"])),
                1 => (body, prop::sample::select(vec!["//", "$$"])).prop_map(|(body, delimiter)| (
                    format!("CREATE PROCEDURE p()\nBEGIN\n  {body};\nEND"),
                    delimiter,
                )),
            ]
            .boxed(),
            Dialect::Sqlite => prop_oneof![
                3 => plain_statement(dialect).prop_map(|sql| (sql, ";")),
                1 => body.prop_map(|body| (
                    format!("CREATE TEMP TRIGGER trg AFTER INSERT ON t\nBEGIN\n  {body};\nEND"),
                    ";",
                )),
            ]
            .boxed(),
        }
}

fn case(dialect: Dialect) -> impl Strategy<Value = Case> {
    let statements = prop::collection::vec((statement(dialect), whitespace(), whitespace()), 1..8);
    (statements, whitespace(), any::<bool>()).prop_map(|(statements, leading, terminate_last)| {
        let mut script = leading;
        let mut expected = Vec::new();
        let mut delimiter = ";";
        let count = statements.len();
        for (i, ((sql, wanted), before, after)) in statements.into_iter().enumerate() {
            if wanted != delimiter {
                script.push_str(&format!("\nDELIMITER {wanted}\n"));
                delimiter = wanted;
            }
            expected.push(Statement {
                sql: Cow::Owned(sql.trim_end().to_owned()),
                line: 1 + script.matches('\n').count(),
                copy_data: None,
            });
            script.push_str(&sql);
            if i + 1 < count || terminate_last {
                script.push_str(&before);
                script.push_str(delimiter);
            }
            script.push_str(&after);
        }
        Case { script, expected }
    })
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_text(script in any::<String>()) {
        for dialect in ALL {
            if let Err(e) = well_formed(&script, &split(&script, dialect)) {
                return Err(TestCaseError::fail(format!("{dialect:?}: {e}")));
            }
        }
    }

    #[test]
    fn postgres_round_trip(case in case(Dialect::Postgres)) {
        prop_assert_eq!(split(&case.script, Dialect::Postgres), Ok(case.expected), "{}", case.script);
    }

    #[test]
    fn mysql_round_trip(case in case(Dialect::MySql)) {
        prop_assert_eq!(split(&case.script, Dialect::MySql), Ok(case.expected), "{}", case.script);
    }

    #[test]
    fn sqlite_round_trip(case in case(Dialect::Sqlite)) {
        prop_assert_eq!(split(&case.script, Dialect::Sqlite), Ok(case.expected), "{}", case.script);
    }
}

/// Text made of everything the splitter reacts to, in any order and any balance: quotes,
/// dollar quotes, comments of every kind, parentheses, terminators, DELIMITER commands,
/// block keywords, non-ASCII whitespace, and arbitrary characters.
fn sql_soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        6 => prop::sample::select(vec![
            "'", "\"", "`", "[", "]", ";", ";", ";", "$", "$$", "$a$", "$1", "-", "--", "-- ",
            "#", "/", "*", "/*", "*/", "/*!", "/*M!", "\\", "(", ")", " ", " ", "\n", "\n",
            "\r\n", "\t", "E'", "e", "'a;b'", "\"x;\"", "$t$ ; $t$", "/* ; */", "-- ;\n",
            "# ;\n", "/*!40101 a; */", "DELIMITER //\n", "DELIMITER ;\n", "delimiter $$\n",
            "DELIMITER", "//", "$$", "BEGIN", "ATOMIC", "END", "CASE", "CREATE", "TRIGGER",
            "TEMP", "EXPLAIN", "SELECT", "delimiter ", "case", "temp", "explain", "\u{a0}",
            "\u{85}", "\u{2028}", "\u{3000}", "é", "🐢", "\0", "\u{feff}",
        ])
        .prop_map(str::to_owned),
        // Openers and closers of the blocks whose inner terminators do not end a statement.
        2 => prop::sample::select(vec![
            "CREATE TRIGGER t BEGIN ", "create temp trigger t after insert on x begin ",
            "EXPLAIN CREATE TRIGGER t BEGIN ", "CREATE FUNCTION f() BEGIN ATOMIC ",
            "CREATE PROCEDURE p() BEGIN ", "CREATE RULE r AS ON INSERT TO t DO (",
            "CASE WHEN x THEN 1 END", " END", "; END;", "END//", "END$$",
        ])
        .prop_map(str::to_owned),
        2 => "[a-z0-9_]{1,6}",
        1 => any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..64).prop_map(|pieces| pieces.concat())
}

/// `PROPTEST_CASES` when set, else `default`: the short run in `cargo test`, a long one
/// on demand.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

type Split<'a> = Result<Vec<Statement<'a>>, SplitError>;

/// The invariants for every dialect, watched: a hang ends the test process after a
/// deadline, printing the input, instead of stalling it (a panic is caught and shrunk by
/// proptest like any failure).
fn splitter_invariants_bounded(a: &str, b: &str) -> Result<(), String> {
    use std::io::Write;
    use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
    const DEADLINE: Duration = Duration::from_secs(10);
    static WATCHDOG: std::sync::OnceLock<Sender<Option<String>>> = std::sync::OnceLock::new();
    let watchdog = WATCHDOG.get_or_init(|| {
        let (tx, rx) = channel::<Option<String>>();
        std::thread::spawn(move || {
            let mut watching: Option<String> = None;
            loop {
                let next = match &watching {
                    None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                    Some(_) => rx.recv_timeout(DEADLINE),
                };
                match next {
                    Ok(message) => watching = message,
                    Err(RecvTimeoutError::Disconnected) => return,
                    Err(RecvTimeoutError::Timeout) => {
                        let input = watching.unwrap_or_default();
                        // Straight to stderr: the test harness would swallow eprintln!.
                        let _ = writeln!(
                            std::io::stderr(),
                            "the splitter did not finish within {DEADLINE:?} on {input}"
                        );
                        std::process::abort();
                    }
                }
            }
        });
        tx
    });
    /// Tells the watchdog that the case is over, also when it panics.
    struct Done<'a>(&'a Sender<Option<String>>);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            let _ = self.0.send(None);
        }
    }
    let _ = watchdog.send(Some(format!("a = {a:?}, b = {b:?}")));
    let _done = Done(watchdog);
    [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite]
        .into_iter()
        .try_for_each(|d| splitter_invariants(a, b, d).map_err(|e| format!("{d:?}: {e}")))
}

fn newlines(s: &str) -> usize {
    s.matches('\n').count()
}

/// The same result for a script placed after `lines` more lines.
fn shifted<'a>(result: &Split<'a>, lines: usize) -> Split<'a> {
    match result {
        Ok(statements) => Ok(statements
            .iter()
            .map(|s| Statement {
                sql: s.sql.clone(),
                line: s.line + lines,
                copy_data: s.copy_data,
            })
            .collect()),
        Err(e) => Err(match e.clone() {
            SplitError::Unterminated { what, line, fix } => SplitError::Unterminated {
                what,
                line: line + lines,
                fix,
            },
            SplitError::UnterminatedDollarQuote { tag, line } => {
                SplitError::UnterminatedDollarQuote {
                    tag,
                    line: line + lines,
                }
            }
            SplitError::MissingDelimiter { line } => {
                SplitError::MissingDelimiter { line: line + lines }
            }
            SplitError::InvalidDelimiter {
                delimiter,
                problem,
                line,
            } => SplitError::InvalidDelimiter {
                delimiter,
                problem,
                line: line + lines,
            },
            SplitError::TextAfterDelimiter { delimiter, line } => SplitError::TextAfterDelimiter {
                delimiter,
                line: line + lines,
            },
            SplitError::MetaCommand { command, line, fix } => SplitError::MetaCommand {
                command,
                line: line + lines,
                fix,
            },
            SplitError::UnrestrictMismatch {
                line,
                restrict_line,
            } => SplitError::UnrestrictMismatch {
                line: line + lines,
                restrict_line: restrict_line + lines,
            },
            SplitError::UnterminatedCopy { line } => {
                SplitError::UnterminatedCopy { line: line + lines }
            }
            SplitError::TextAfterCopy { line } => SplitError::TextAfterCopy { line: line + lines },
            SplitError::CopyToStdout { line } => SplitError::CopyToStdout { line: line + lines },
        }),
    }
}

fn error_line(e: &SplitError) -> usize {
    match e {
        SplitError::Unterminated { line, .. }
        | SplitError::UnterminatedDollarQuote { line, .. }
        | SplitError::MissingDelimiter { line }
        | SplitError::InvalidDelimiter { line, .. }
        | SplitError::TextAfterDelimiter { line, .. }
        | SplitError::MetaCommand { line, .. }
        | SplitError::UnrestrictMismatch { line, .. }
        | SplitError::UnterminatedCopy { line }
        | SplitError::TextAfterCopy { line }
        | SplitError::CopyToStdout { line } => *line,
    }
}

/// What a result says on its own: statements are non-empty, trimmed, taken from the script
/// in order, on lines that exist and never go back; an error names a line of the script.
fn well_formed(script: &str, result: &Split<'_>) -> Result<(), String> {
    let last_line = 1 + newlines(script);
    match result {
        Ok(statements) => {
            let (mut from, mut line) = (0, 1);
            for s in statements {
                if s.sql.is_empty() || s.sql.trim() != s.sql {
                    return Err(format!("statement not trimmed or empty: {s:?}"));
                }
                let Some(at) = script[from..].find(s.sql.as_ref()) else {
                    return Err(format!("{s:?} is not in the script after byte {from}"));
                };
                from += at + s.sql.len();
                if s.line < line || s.line > last_line {
                    return Err(format!(
                        "{s:?}: line out of order (previous {line}, last {last_line})"
                    ));
                }
                line = s.line;
            }
        }
        Err(e) => {
            let at = error_line(e);
            if !(1..=last_line).contains(&at) || !e.to_string().contains(&format!("line {at}")) {
                return Err(format!("error names no line of the script: {e}"));
            }
        }
    }
    Ok(())
}

/// The invariants, checked on `a` and `b` for one dialect. `a;` is `a` followed by a line
/// holding only a terminator: whatever `a` left open that does not fail is closed by then.
///
/// 1. Both results are well formed (see [`well_formed`]).
/// 2. Ending a script with a terminator changes nothing: `split(a;) == split(a)`.
/// 3. Splitting composes: `split(a; b)` is `split(a)` followed by `split(b)` moved down by
///    the lines of `a;` (and `b`'s error, moved the same way, when `b` has one). A splitter
///    that lost, merged, cut or duplicated a statement, or leaked state from one statement
///    into the next, breaks this.
/// 4. The statements are a fixed point: joined back with terminators, they split into
///    exactly themselves. No statement ends inside a string, comment or block, since it
///    would then swallow what follows it, and none is lost or split anew.
///
/// MySQL scripts that mention DELIMITER are only checked for 1: a delimiter carries over
/// into what follows, so a terminator line means something else after them. 4 is not
/// checked where the statements' texts cannot show how they ended (see the exceptions in
/// the code).
fn splitter_invariants(a: &str, b: &str, dialect: Dialect) -> Result<(), String> {
    let mentions_delimiter = |s: &str| s.to_ascii_lowercase().contains("delimiter");
    let composable = dialect != Dialect::MySql || !mentions_delimiter(a);
    let a_end = format!("{a}\n;\n");
    let mut scripts = vec![a.to_owned(), b.to_owned(), a_end.clone()];
    if composable {
        scripts.push(format!("{a_end}{b}"));
    }
    let splits: Vec<Split<'_>> = scripts.iter().map(|s| split(s, dialect)).collect();
    let (split_a, split_b) = (&splits[0], &splits[1]);
    well_formed(a, split_a)?;
    well_formed(b, split_b)?;
    if !composable {
        return Ok(());
    }
    let (split_a_end, split_a_b) = (&splits[2], &splits[3]);
    if split_a_end != split_a {
        return Err(format!(
            "a terminator line changed the result:\n  {split_a:?}\n  {split_a_end:?}"
        ));
    }
    let Ok(statements) = split_a else {
        return Ok(());
    };
    let expected = match shifted(split_b, newlines(&a_end)) {
        Ok(rest) => Ok(statements.iter().cloned().chain(rest).collect()),
        Err(e) => Err(e),
    };
    if *split_a_b != expected {
        return Err(format!(
            "split(a; b) is not split(a) then split(b):\n  got      {split_a_b:?}\n  expected {expected:?}"
        ));
    }
    // A word running into a no-break space (or other non-ASCII blank) takes it in, as in
    // PostgreSQL; a statement ending so is sent without it, which is kinder to a space
    // pasted before a `;`, but is then another word when split again.
    let glued = |s: &str| {
        let mut previous = ' ';
        s.chars().any(|c| {
            let glued = !c.is_ascii()
                && c.is_whitespace()
                && (previous.is_ascii_alphanumeric()
                    || matches!(previous, '_' | '$')
                    || !previous.is_ascii());
            previous = c;
            glued
        })
    };
    if glued(a) {
        return Ok(());
    }
    // A MySQL statement ending in `--` cannot be joined back: the `--` is code when the
    // terminator followed it directly and a comment before a newline, and its text does
    // not say which it was.
    if dialect == Dialect::MySql && statements.iter().any(|s| s.sql.ends_with("--")) {
        return Ok(());
    }
    let mut joined = String::new();
    let mut fixed = Vec::new();
    for s in statements {
        fixed.push(Statement {
            sql: s.sql.clone(),
            line: 1 + newlines(&joined),
            copy_data: None,
        });
        joined.push_str(&s.sql);
        joined.push_str("\n;\n");
    }
    let again = split(&joined, dialect);
    if again != Ok(fixed) {
        return Err(format!(
            "the statements, joined back, split differently:\n  {statements:?}\n  {again:?}"
        ));
    }
    Ok(())
}

#[test]
fn the_splitter_invariants_hold_on_plain_scripts() {
    for dialect in [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite] {
        let statements = split("SELECT 1; SELECT 'a;b';\n-- c;\n", dialect).unwrap();
        let texts: Vec<&str> = statements.iter().map(|s| s.sql.as_ref()).collect();
        assert_eq!(texts, ["SELECT 1", "SELECT 'a;b'"], "{dialect:?}");
        for (a, b) in [
            ("SELECT 1; SELECT 'a;b'", "-- c\nSELECT 2"),
            ("", "SELECT 'open"),
            ("SELECT (1", "SELECT 2"),
            // Found by the property test: a MySQL `--` directly before a terminator is
            // code, and one inside a comment is not.
            ("--;[", ""),
            ("[-- --", ""),
            // ... and a word running into a no-break space takes it in.
            ("CREATE TRIGGER t BEGIN ATOMIC\u{a0};$1`", ""),
            // Kept from the property test's saved failures: a string left open, then a
            // backslash glued to a no-break space.
            ("'", "\\\u{a0}"),
        ] {
            splitter_invariants(a, b, dialect).unwrap_or_else(|e| panic!("{dialect:?}: {e}"));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(2048)))]

    #[test]
    fn the_statement_splitter_is_consistent_on_hostile_text(a in sql_soup(), b in sql_soup()) {
        if let Err(e) = splitter_invariants_bounded(&a, &b) {
            return Err(TestCaseError::fail(format!("{e}\na = {a:?}\nb = {b:?}")));
        }
    }
}
