//! Splits a migration script into the statements the runner sends one at a time.
//!
//! Drivers reject several statements in one query (or report errors against the whole
//! blob), so the runner has to find statement boundaries itself, the way psql, the mysql
//! client and the sqlite3 shell do. That takes just enough lexing to know whether a
//! terminator sits inside a string, a comment or a block body; it is not a SQL parser.
//!
//! The scanner walks bytes rather than chars: every byte it reacts to is ASCII, and UTF-8
//! never reuses ASCII values inside a multi-byte character, so every position it stops at
//! (and slices at) is a char boundary.

use std::borrow::Cow;

/// The SQL dialect whose lexical rules decide where statements end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    MySql,
    Sqlite,
}

/// One statement of a script, ready to send to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement<'a> {
    /// The statement text without its terminator, trimmed; leading comments removed (except
    /// MySQL `/*! ... */` executable comments, which are code), inner comments kept.
    /// Borrowed from the script, so a dump is held in memory once.
    pub sql: Cow<'a, str>,
    /// 1-based line on which the statement's first code character is.
    pub line: usize,
    /// PostgreSQL `COPY ... FROM stdin`: the rows that follow it in the script, from the
    /// next line up to the `\.` line (both excluded), sent as the COPY's data.
    pub copy_data: Option<&'a str>,
}

/// Why a script cannot be split. Every message names the line and says how to fix it,
/// because it is shown to whoever wrote the migration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// A string, quoted identifier, comment or block opened on `line` is still open at the
    /// end of the script.
    #[error("unterminated {what} starting on line {line}: {fix}")]
    Unterminated {
        what: &'static str,
        line: usize,
        fix: &'static str,
    },
    /// A PostgreSQL dollar quote (`tag` is the whole opener, like `$body$`) is never closed.
    #[error("unterminated dollar-quoted string {tag} starting on line {line}: close it with {tag}")]
    UnterminatedDollarQuote { tag: String, line: usize },
    /// A MySQL `DELIMITER` command with nothing after it.
    #[error("DELIMITER on line {line} needs a delimiter, like DELIMITER //")]
    MissingDelimiter { line: usize },
    /// A MySQL `DELIMITER` command whose delimiter could never be matched reliably.
    #[error("DELIMITER on line {line}: {delimiter} {problem}; use one like DELIMITER //")]
    InvalidDelimiter {
        delimiter: String,
        problem: &'static str,
        line: usize,
    },
    /// A MySQL `DELIMITER` command followed by more text on its line, which would otherwise
    /// be silently dropped.
    #[error(
        "DELIMITER on line {line} takes only the delimiter, but the line goes on after {delimiter}: put the next statement on its own line"
    )]
    TextAfterDelimiter { delimiter: String, line: usize },
    /// A psql meta-command (`\connect`, `\i`, ...) that dbvigil cannot honour.
    #[error("psql meta-command {command} on line {line} cannot run in dbvigil migrate: {fix}")]
    MetaCommand {
        command: String,
        line: usize,
        fix: &'static str,
    },
    /// `\unrestrict` with a key other than the one `\restrict` gave.
    #[error(
        "\\unrestrict on line {line} does not give the key of \\restrict on line {restrict_line}: the script was edited between them; restore the key the dump was written with"
    )]
    UnrestrictMismatch { line: usize, restrict_line: usize },
    /// `COPY ... FROM stdin` whose rows never end with a `\.` line.
    #[error(
        "COPY ... FROM stdin on line {line} has no end-of-data line \\. after its rows: the script is cut short; take the whole dump again"
    )]
    UnterminatedCopy { line: usize },
    /// Text after `COPY ... FROM stdin;` on its own line, where psql would mix it with rows.
    #[error(
        "COPY ... FROM stdin on line {line} is followed by more text on its line: put its rows on the lines after it, ended by a line \\."
    )]
    TextAfterCopy { line: usize },
    /// `COPY ... TO stdout`, which sends rows to a client that has nowhere to put them.
    #[error(
        "COPY ... TO stdout on line {line} sends rows to dbvigil, which has nowhere to put them: remove it, or copy to a server file"
    )]
    CopyToStdout { line: usize },
}

/// Splits `script` into statements, following the quoting, comment and block rules of
/// `dialect`.
pub fn split(script: &str, dialect: Dialect) -> Result<Vec<Statement<'_>>, SplitError> {
    split_from(script, dialect, Lexing::default())
}

/// How the session reads backslashes in strings before a script's first statement: the
/// server's defaults, which a script's own SETs then change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexing {
    /// PostgreSQL `standard_conforming_strings`.
    pub standard_strings: bool,
    /// MySQL NO_BACKSLASH_ESCAPES in sql_mode.
    pub no_backslash_escapes: bool,
}

impl Default for Lexing {
    fn default() -> Self {
        Lexing {
            standard_strings: true,
            no_backslash_escapes: false,
        }
    }
}

/// [`split`], starting from the session's `lexing` rather than the engines' defaults.
pub fn split_from(
    script: &str,
    dialect: Dialect,
    lexing: Lexing,
) -> Result<Vec<Statement<'_>>, SplitError> {
    let mut splitter = Splitter {
        src: script,
        bytes: script.as_bytes(),
        dialect,
        pos: 0,
        counted: 0,
        line: 1,
        delimiter: String::from(";"),
        current: None,
        block: Block::default(),
        standard_strings: lexing.standard_strings,
        restricted: None,
        sql_mode: SqlMode {
            no_backslash_escapes: lexing.no_backslash_escapes,
            saved: Vec::new(),
        },
        out: Vec::new(),
    };
    while splitter.pos < splitter.bytes.len() {
        splitter.step()?;
    }
    splitter.finish()
}

/// How a quoted token ends, and what to tell the user when it does not.
#[derive(Clone, Copy)]
struct Quote {
    close: u8,
    /// Whether the closing character written twice stands for itself.
    doubled: bool,
    /// Whether a backslash escapes the character after it.
    backslash: bool,
    what: &'static str,
    fix: &'static str,
}

const PLAIN_STRING: Quote = Quote {
    close: b'\'',
    doubled: true,
    backslash: false,
    what: "string literal",
    fix: "close it with '",
};
const ESCAPE_STRING: Quote = Quote {
    close: b'\'',
    doubled: true,
    backslash: true,
    what: "escape string E'...'",
    fix: "close it with ' (a backslash escapes the next character, so \\' does not close it)",
};
const MYSQL_STRING: Quote = Quote {
    close: b'\'',
    doubled: true,
    backslash: true,
    what: "string literal",
    fix: "close it with ' (a backslash escapes the next character, so \\' does not close it)",
};
const MYSQL_DOUBLE_QUOTED_STRING: Quote = Quote {
    close: b'"',
    doubled: true,
    backslash: true,
    what: "double-quoted string",
    fix: "close it with \" (a backslash escapes the next character, so \\\" does not close it)",
};
const DOUBLE_QUOTED_IDENTIFIER: Quote = Quote {
    close: b'"',
    doubled: true,
    backslash: false,
    what: "quoted identifier",
    fix: "close it with \"",
};
const BACKQUOTED_IDENTIFIER: Quote = Quote {
    close: b'`',
    doubled: true,
    backslash: false,
    what: "backquoted identifier",
    fix: "close it with `",
};
const BRACKETED_IDENTIFIER: Quote = Quote {
    close: b']',
    doubled: false,
    backslash: false,
    what: "bracketed identifier",
    fix: "close it with ]",
};

/// Where the statement in progress stands in the sqlite3_complete() state machine, which
/// is how the sqlite3 shell knows that the `;` inside `CREATE TRIGGER ... BEGIN ... END`
/// do not end the statement. Reproducing it exactly keeps us in step with the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum TriggerState {
    #[default]
    Start,
    Normal,
    Explain,
    Create,
    Body,
    /// Just after a `;` inside the body, where `END` closes the body.
    Semi,
    /// After `; END`: the next `;` ends the whole CREATE TRIGGER.
    End,
}

#[derive(Clone, Copy)]
enum SqliteToken {
    Other,
    Explain,
    Create,
    Temp,
    Trigger,
    End,
}

impl SqliteToken {
    fn of_word(word: &[u8]) -> Self {
        const KEYWORDS: [(&[u8], SqliteToken); 6] = [
            (b"EXPLAIN", SqliteToken::Explain),
            (b"CREATE", SqliteToken::Create),
            (b"TEMP", SqliteToken::Temp),
            (b"TEMPORARY", SqliteToken::Temp),
            (b"TRIGGER", SqliteToken::Trigger),
            (b"END", SqliteToken::End),
        ];
        KEYWORDS
            .iter()
            .find(|(keyword, _)| word.eq_ignore_ascii_case(keyword))
            .map_or(SqliteToken::Other, |&(_, token)| token)
    }
}

impl TriggerState {
    fn next(self, token: SqliteToken) -> Self {
        use SqliteToken as T;
        match (self, token) {
            (Self::Start, T::Explain) => Self::Explain,
            (Self::Start | Self::Explain, T::Create) => Self::Create,
            // EXPLAIN QUERY PLAN CREATE TRIGGER is still a trigger.
            (Self::Explain, T::Other) => Self::Explain,
            (Self::Create, T::Temp) => Self::Create,
            (Self::Create, T::Trigger) => Self::Body,
            (Self::Semi, T::End) => Self::End,
            (Self::Body | Self::Semi | Self::End, _) => Self::Body,
            _ => Self::Normal,
        }
    }
}

/// Block structure of the statement in progress: what stops a terminator from ending it.
#[derive(Default)]
struct Block {
    /// PostgreSQL: the statement starts with CREATE, so BEGIN ATOMIC can open a
    /// SQL-standard function body. Requiring it keeps `SELECT begin atomic` (a column
    /// `begin` aliased `atomic`) from swallowing the rest of the script.
    create: bool,
    /// PostgreSQL: position of a BEGIN that was the previous code token.
    after_begin: Option<usize>,
    /// PostgreSQL: open BEGIN ATOMIC bodies plus the CASEs inside them, since both close
    /// with END.
    atomic_depth: usize,
    atomic_at: usize,
    /// PostgreSQL: like psql, a `;` inside parentheses does not end the statement, which is
    /// what lets `CREATE RULE ... DO (INSERT ...; INSERT ...)` through.
    paren_depth: usize,
    paren_at: usize,
    trigger: TriggerState,
    copy: CopyScan,
}

/// PostgreSQL: what a `COPY` statement exchanges with the client, read from its words at
/// parenthesis depth 0 (so `COPY (SELECT 'from stdin') ...` is not fooled).
#[derive(Default)]
struct CopyScan {
    /// The statement's first word is COPY.
    is_copy: bool,
    /// The previous code token was the word FROM, or TO.
    after_from: bool,
    after_to: bool,
    from_stdin: bool,
    to_stdout: bool,
}

struct Splitter<'a> {
    src: &'a str,
    bytes: &'a [u8],
    dialect: Dialect,
    pos: usize,
    /// `line` is the line of byte `counted`. Lines are wanted for statement starts and
    /// DELIMITER commands, which only move forward, so counting them incrementally keeps
    /// the whole split linear.
    counted: usize,
    line: usize,
    /// MySQL's current DELIMITER; never empty.
    delimiter: String,
    /// Start offset and line of the statement in progress.
    current: Option<(usize, usize)>,
    block: Block,
    /// PostgreSQL: whether `'...'` strings take backslashes literally, as they do unless
    /// the script ran `SET standard_conforming_strings = off` (psql follows the server).
    standard_strings: bool,
    /// PostgreSQL: the key and line of a `\restrict` still in force.
    restricted: Option<(String, usize)>,
    /// MySQL: whether NO_BACKSLASH_ESCAPES is on, as the script's SETs leave it.
    sql_mode: SqlMode,
    out: Vec<Statement<'a>>,
}

impl<'a> Splitter<'a> {
    /// Consumes one token (or one whitespace character) at `self.pos`.
    fn step(&mut self) -> Result<(), SplitError> {
        let at = self.pos;
        let bytes = self.bytes;
        let byte = bytes[at];
        let next = bytes.get(at + 1).copied();
        let dialect = self.dialect;
        // The mysql client looks for its delimiter before anything else, so `END//` and
        // `END$$` end a statement even though `/` and `$` mean other things elsewhere.
        if dialect == Dialect::MySql && self.at_delimiter(at) {
            self.pos = at + self.delimiter.len();
            self.end_statement(at);
            return Ok(());
        }
        match byte {
            b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' => self.pos += 1,
            b';' if dialect == Dialect::Postgres => {
                self.pos += 1;
                if self.block.paren_depth > 0 || self.block.atomic_depth > 0 {
                    self.other(at);
                } else {
                    self.end_postgres_statement(at)?;
                }
            }
            b'\\' if dialect == Dialect::Postgres => self.meta_command(at)?,
            b';' if dialect == Dialect::Sqlite => {
                self.pos += 1;
                match self.block.trigger {
                    TriggerState::Body | TriggerState::Semi => {
                        self.block.trigger = TriggerState::Semi;
                    }
                    _ => self.end_statement(at),
                }
            }
            b'-' if next == Some(b'-') && self.dash_comment_at(at) => self.skip_line(at),
            b'#' if dialect == Dialect::MySql => self.skip_line(at),
            b'/' if next == Some(b'*') => match self.executable_comment_body(at) {
                Some(body) => self.executable_comment(at, body)?,
                None => self.block_comment(at)?,
            },
            b'\'' => {
                let quote = match dialect {
                    Dialect::MySql => self.mysql_quote(MYSQL_STRING),
                    Dialect::Postgres if !self.standard_strings => ESCAPE_STRING,
                    Dialect::Postgres | Dialect::Sqlite => PLAIN_STRING,
                };
                self.quoted(at, at + 1, quote)?;
            }
            b'"' => {
                let quote = match dialect {
                    Dialect::MySql => self.mysql_quote(MYSQL_DOUBLE_QUOTED_STRING),
                    Dialect::Postgres | Dialect::Sqlite => DOUBLE_QUOTED_IDENTIFIER,
                };
                self.quoted(at, at + 1, quote)?;
            }
            b'`' if dialect != Dialect::Postgres => {
                self.quoted(at, at + 1, BACKQUOTED_IDENTIFIER)?;
            }
            b'[' if dialect == Dialect::Sqlite => self.quoted(at, at + 1, BRACKETED_IDENTIFIER)?,
            b'$' if dialect == Dialect::Postgres => self.dollar(at)?,
            b'(' if dialect == Dialect::Postgres => {
                self.other(at);
                self.pos += 1;
                if self.block.paren_depth == 0 {
                    self.block.paren_at = at;
                }
                self.block.paren_depth += 1;
            }
            b')' if dialect == Dialect::Postgres => {
                self.other(at);
                self.pos += 1;
                self.block.paren_depth = self.block.paren_depth.saturating_sub(1);
            }
            0x80.. => {
                // A stray no-break space pasted from a web page must not become a
                // statement of its own.
                match self.src[at..].chars().next() {
                    Some(c) if c.is_whitespace() => self.pos += c.len_utf8(),
                    _ => self.word(at)?,
                }
            }
            _ if is_word_byte(byte) => self.word(at)?,
            _ => {
                self.other(at);
                self.pos += 1;
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<Statement<'a>>, SplitError> {
        if let Some((start, _)) = self.current {
            let block = &self.block;
            // Sending the rest of the script as one statement would only get a confusing
            // syntax error from the server, far from the real mistake.
            if block.paren_depth > 0 {
                return Err(self.unterminated(
                    "parenthesis",
                    block.paren_at,
                    "close it with ) (a ; inside parentheses does not end a PostgreSQL statement)",
                ));
            }
            if block.atomic_depth > 0 {
                return Err(self.unterminated(
                    "BEGIN ATOMIC function body",
                    block.atomic_at,
                    "close it with END; (each CASE inside needs its own END too)",
                ));
            }
            if matches!(block.trigger, TriggerState::Body | TriggerState::Semi) {
                return Err(self.unterminated(
                    "CREATE TRIGGER statement",
                    start,
                    "end the trigger body with END; (a ; before that END belongs to the body)",
                ));
            }
            if self.dialect == Dialect::Postgres {
                self.end_postgres_statement(self.bytes.len())?;
            } else {
                self.end_statement(self.bytes.len());
            }
        }
        Ok(self.out)
    }

    fn at_delimiter(&self, at: usize) -> bool {
        let delimiter = self.delimiter.as_bytes();
        self.bytes[at] == delimiter[0] && self.bytes[at..].starts_with(delimiter)
    }

    /// MySQL only takes `--` as a comment when followed by whitespace, so that `1--1`
    /// stays arithmetic.
    fn dash_comment_at(&self, at: usize) -> bool {
        self.dialect != Dialect::MySql
            || self
                .bytes
                .get(at + 2)
                .is_none_or(|c| c.is_ascii_whitespace() || c.is_ascii_control())
    }

    /// Marks `at` as the start of a statement unless one is already in progress.
    fn start(&mut self, at: usize) {
        if self.current.is_none() {
            let line = self.line_at(at);
            self.current = Some((at, line));
        }
    }

    /// Line of `at`, which must not lie before any position asked about earlier.
    fn line_at(&mut self, at: usize) -> usize {
        self.line += count_newlines(&self.bytes[self.counted..at]);
        self.counted = at;
        self.line
    }

    /// Records a code token that is not a word, so no keyword can pair across it.
    fn other(&mut self, at: usize) {
        self.start(at);
        self.block.after_begin = None;
        self.block.copy.after_from = false;
        self.block.copy.after_to = false;
        self.block.trigger = self.block.trigger.next(SqliteToken::Other);
    }

    fn end_statement(&mut self, end: usize) {
        if let Some((start, line)) = self.current.take() {
            let src = self.src;
            let sql = src[start..end].trim_end();
            if self.dialect == Dialect::MySql {
                self.sql_mode.follow(sql);
            }
            self.out.push(Statement {
                sql: Cow::Borrowed(sql),
                line,
                copy_data: None,
            });
        }
        self.block = Block::default();
    }

    /// MySQL quotes as the session's sql_mode reads them: with NO_BACKSLASH_ESCAPES a
    /// backslash is an ordinary character.
    fn mysql_quote(&self, quote: Quote) -> Quote {
        Quote {
            backslash: !self.sql_mode.no_backslash_escapes,
            ..quote
        }
    }

    fn skip_line(&mut self, at: usize) {
        self.pos = self.bytes[at..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(self.bytes.len(), |offset| at + offset);
    }

    fn quoted(&mut self, at: usize, body: usize, quote: Quote) -> Result<(), SplitError> {
        self.other(at);
        self.pos = self.quote_end(at, body, quote)?;
        Ok(())
    }

    /// Offset just past the quote opened at `at` whose contents begin at `body`.
    fn quote_end(&self, at: usize, body: usize, quote: Quote) -> Result<usize, SplitError> {
        let bytes = self.bytes;
        let mut i = body;
        while i < bytes.len() {
            let c = bytes[i];
            if quote.backslash && c == b'\\' {
                i += 2;
            } else if c == quote.close {
                if quote.doubled && bytes.get(i + 1) == Some(&quote.close) {
                    i += 2;
                } else {
                    return Ok(i + 1);
                }
            } else {
                i += 1;
            }
        }
        Err(self.unterminated(quote.what, at, quote.fix))
    }

    fn block_comment(&mut self, at: usize) -> Result<(), SplitError> {
        let nested = self.dialect == Dialect::Postgres;
        let bytes = self.bytes;
        let mut depth = 1_usize;
        let mut i = at + 2;
        while i + 1 < bytes.len() {
            match &bytes[i..i + 2] {
                b"*/" => {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        self.pos = i;
                        return Ok(());
                    }
                }
                b"/*" if nested => {
                    depth += 1;
                    i += 2;
                }
                _ => i += 1,
            }
        }
        let fix = if nested {
            "close it with */ (comments nest in PostgreSQL, so each /* inside needs its own */)"
        } else {
            "close it with */"
        };
        Err(self.unterminated("block comment", at, fix))
    }

    /// Where the code inside a MySQL `/*! ... */` (or MariaDB `/*M! ... */`) begins.
    fn executable_comment_body(&self, at: usize) -> Option<usize> {
        if self.dialect != Dialect::MySql {
            None
        } else if self.bytes.get(at + 2) == Some(&b'!') {
            Some(at + 3)
        } else if self.bytes.get(at + 2..at + 4) == Some(&b"M!"[..]) {
            Some(at + 4)
        } else {
            None
        }
    }

    /// MySQL runs the inside of `/*! ... */` as code, so it is part of the statement and
    /// its quotes are real quotes; the delimiter inside it does not end the statement,
    /// since splitting there would leave both halves with an unbalanced comment.
    fn executable_comment(&mut self, at: usize, body: usize) -> Result<(), SplitError> {
        self.start(at);
        let bytes = self.bytes;
        let mut i = body;
        while i < bytes.len() {
            i = match bytes[i] {
                b'\'' => self.quote_end(i, i + 1, self.mysql_quote(MYSQL_STRING))?,
                b'"' => self.quote_end(i, i + 1, self.mysql_quote(MYSQL_DOUBLE_QUOTED_STRING))?,
                b'`' => self.quote_end(i, i + 1, BACKQUOTED_IDENTIFIER)?,
                b'*' if bytes.get(i + 1) == Some(&b'/') => {
                    self.pos = i + 2;
                    return Ok(());
                }
                _ => i + 1,
            };
        }
        Err(self.unterminated("executable comment /*!", at, "close it with */"))
    }

    /// PostgreSQL `$`: a dollar quote opener `$tag$`/`$$`, or else a parameter like `$1` or
    /// a lone `$`, which are ordinary code.
    fn dollar(&mut self, at: usize) -> Result<(), SplitError> {
        self.other(at);
        let bytes = self.bytes;
        let mut i = at + 1;
        if bytes.get(i).is_some_and(|&c| is_tag_start(c)) {
            i += 1;
            while bytes
                .get(i)
                .is_some_and(|&c| is_tag_start(c) || c.is_ascii_digit())
            {
                i += 1;
            }
        }
        if bytes.get(i) != Some(&b'$') {
            self.pos = at + 1;
            return Ok(());
        }
        let tag = &self.src[at..=i];
        let body = i + 1;
        match self.src[body..].find(tag) {
            Some(offset) => {
                self.pos = body + offset + tag.len();
                Ok(())
            }
            None => Err(SplitError::UnterminatedDollarQuote {
                tag: tag.to_owned(),
                line: self.line_of(at),
            }),
        }
    }

    fn word(&mut self, at: usize) -> Result<(), SplitError> {
        let bytes = self.bytes;
        let mut end = at + 1;
        while end < bytes.len()
            && is_word_byte(bytes[end])
            && !(self.dialect == Dialect::MySql && self.at_delimiter(end))
        {
            end += 1;
        }
        self.pos = end;
        let word = &bytes[at..end];
        match self.dialect {
            Dialect::MySql => {
                if self.current.is_none() && word.eq_ignore_ascii_case(b"DELIMITER") {
                    return self.delimiter_command(at);
                }
                self.start(at);
            }
            Dialect::Postgres => {
                if word.eq_ignore_ascii_case(b"E") && bytes.get(end) == Some(&b'\'') {
                    return self.quoted(at, end + 1, ESCAPE_STRING);
                }
                self.postgres_word(at, word);
            }
            Dialect::Sqlite => {
                self.start(at);
                self.block.trigger = self.block.trigger.next(SqliteToken::of_word(word));
            }
        }
        Ok(())
    }

    fn postgres_word(&mut self, at: usize, word: &[u8]) {
        if self.current.is_none() {
            self.block.create = word.eq_ignore_ascii_case(b"CREATE");
            self.block.copy.is_copy = word.eq_ignore_ascii_case(b"COPY");
        }
        self.start(at);
        let block = &mut self.block;
        let copy = &mut block.copy;
        if copy.is_copy && block.paren_depth == 0 {
            copy.from_stdin |= copy.after_from && word.eq_ignore_ascii_case(b"STDIN");
            copy.to_stdout |= copy.after_to && word.eq_ignore_ascii_case(b"STDOUT");
            copy.after_from = word.eq_ignore_ascii_case(b"FROM");
            copy.after_to = word.eq_ignore_ascii_case(b"TO");
        }
        let after_begin = block.after_begin.take();
        if !block.create {
            return;
        }
        if word.eq_ignore_ascii_case(b"BEGIN") {
            block.after_begin = Some(at);
        } else if let (Some(begin), true) = (after_begin, word.eq_ignore_ascii_case(b"ATOMIC")) {
            if block.atomic_depth == 0 {
                block.atomic_at = begin;
            }
            block.atomic_depth += 1;
        } else if block.atomic_depth > 0 {
            if word.eq_ignore_ascii_case(b"CASE") {
                block.atomic_depth += 1;
            } else if word.eq_ignore_ascii_case(b"END") {
                block.atomic_depth -= 1;
            }
        }
    }

    /// The mysql client's `DELIMITER xx` command: it is consumed here and never sent.
    fn delimiter_command(&mut self, at: usize) -> Result<(), SplitError> {
        let src = self.src;
        let line_end = src[self.pos..]
            .find('\n')
            .map_or(src.len(), |offset| self.pos + offset);
        let mut words = src[self.pos..line_end].split_whitespace();
        let line = self.line_at(at);
        let Some(delimiter) = words.next() else {
            return Err(SplitError::MissingDelimiter { line });
        };
        if words.next().is_some() {
            return Err(SplitError::TextAfterDelimiter {
                delimiter: delimiter.to_owned(),
                line,
            });
        }
        // Quotes and backslashes would be taken as opening a string before the delimiter
        // could match; the mysql client rejects backslashes and caps the length for the
        // same reason. The cap also bounds the cost of matching it at every byte.
        let problem = if delimiter.contains(['\\', '\'', '"', '`']) {
            Some("contains a backslash or a quote")
        } else if delimiter.len() > 16 {
            Some("is longer than 16 bytes")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(SplitError::InvalidDelimiter {
                delimiter: delimiter.to_owned(),
                problem,
                line,
            });
        }
        self.delimiter = delimiter.to_owned();
        self.pos = line_end;
        Ok(())
    }

    /// Ends a PostgreSQL statement at `end`, then takes in what its kind brings with it:
    /// the rows of a `COPY ... FROM stdin`, or the string rules a SET changes.
    fn end_postgres_statement(&mut self, end: usize) -> Result<(), SplitError> {
        let copy = std::mem::take(&mut self.block.copy);
        let Some((_, line)) = self.current else {
            self.block = Block::default();
            return Ok(());
        };
        if copy.to_stdout {
            return Err(SplitError::CopyToStdout { line });
        }
        self.end_statement(end);
        if let Some(on) = self
            .out
            .last()
            .and_then(|s| standard_strings_set_by(&s.sql))
        {
            self.standard_strings = on;
        }
        if copy.from_stdin {
            let rows = self.copy_rows(line)?;
            if let Some(statement) = self.out.last_mut() {
                statement.copy_data = Some(rows);
            }
        }
        Ok(())
    }

    /// The rows after `COPY ... FROM stdin;`: from the next line up to a line that is only
    /// `\.`, which psql takes as the end of the data in both text and CSV formats.
    fn copy_rows(&mut self, line: usize) -> Result<&'a str, SplitError> {
        let rest = &self.src[self.pos..];
        let line_end = rest.find('\n').map_or(rest.len(), |i| i + 1);
        if !rest[..line_end].trim().is_empty() {
            return Err(SplitError::TextAfterCopy { line });
        }
        let start = self.pos + line_end;
        let mut at = start;
        while at < self.src.len() {
            let next = self.src[at..]
                .find('\n')
                .map_or(self.src.len(), |i| at + i + 1);
            let text = &self.src[at..next];
            if matches!(text, "\\.\n" | "\\.\r\n" | "\\.") {
                self.pos = next;
                let src = self.src;
                return Ok(&src[start..at]);
            }
            at = next;
        }
        Err(SplitError::UnterminatedCopy { line })
    }

    /// A psql backslash command. pg_dump brackets its output with `\restrict KEY` and
    /// `\unrestrict KEY`, which only stop psql from running other meta-commands in between;
    /// dbvigil runs none anyway, so those two are taken in. Every other one is refused
    /// before anything runs: skipping `\connect` would load a dump into the wrong database.
    fn meta_command(&mut self, at: usize) -> Result<(), SplitError> {
        let rest = &self.src[at..];
        let line_end = rest.find('\n').map_or(rest.len(), |i| i);
        let text = &rest[..line_end];
        let name = &text[1..];
        let name_len = match name.find(|c: char| c.is_whitespace() || c == '\\') {
            // `\\` is psql's separator command.
            Some(0) if name.starts_with('\\') => 1,
            Some(len) => len,
            None => name.len(),
        };
        let command = &text[..1 + name_len];
        let line = self.line_at(at);
        let mut args = text[command.len()..].split_whitespace();
        let fix = match command {
            "\\restrict" | "\\unrestrict" if self.current.is_some() => {
                "end the statement before it with ;"
            }
            "\\restrict" => {
                let key = args.next().unwrap_or_default().to_owned();
                self.restricted = Some((key, line));
                self.pos = at + line_end;
                return Ok(());
            }
            "\\unrestrict" => {
                let key = args.next().unwrap_or_default();
                if let Some((restrict_key, restrict_line)) = self.restricted.take() {
                    if restrict_key != key {
                        return Err(SplitError::UnrestrictMismatch {
                            line,
                            restrict_line,
                        });
                    }
                }
                self.pos = at + line_end;
                return Ok(());
            }
            "\\c" | "\\connect" => {
                "dbvigil runs every script in the database it connected to; run that part with its own --database-url or target, and remove the line"
            }
            "\\i" | "\\ir" | "\\include" | "\\include_relative" => {
                "dbvigil does not include files; make the included file a script of its own"
            }
            "\\copy" => {
                "\\copy reads a file on the client; write the rows inline after COPY ... FROM stdin; (as pg_dump does), or load the file separately"
            }
            "\\set" | "\\unset" | "\\pset" | "\\echo" | "\\qecho" | "\\timing" | "\\o"
            | "\\out" | "\\encoding" => "it sets up psql, not the database; remove the line",
            "\\g" | "\\gset" | "\\gexec" | "\\gx" | "\\if" | "\\elif" | "\\else" | "\\endif" => {
                "dbvigil sends SQL only; rewrite it as plain SQL (a DO block can branch)"
            }
            _ => "dbvigil sends SQL only; do its work in SQL, or remove the line",
        };
        Err(SplitError::MetaCommand {
            command: command.to_owned(),
            line,
            fix,
        })
    }

    fn unterminated(&self, what: &'static str, at: usize, fix: &'static str) -> SplitError {
        SplitError::Unterminated {
            what,
            line: self.line_of(at),
            fix,
        }
    }

    /// Only for errors, which end the split, so counting from the top is fine.
    fn line_of(&self, at: usize) -> usize {
        1 + count_newlines(&self.bytes[..at])
    }
}

/// MySQL's NO_BACKSLASH_ESCAPES as a script's `SET` statements leave it. The mysql client
/// asks the server after each statement; splitting happens before anything runs, so the
/// assignments mysqldump writes are followed instead: a mode given as a literal, saved to a
/// user variable (`SET @saved_sql_mode = @@sql_mode`) and restored from it. A script starts
/// with the session's own mode ([`Lexing`]).
struct SqlMode {
    no_backslash_escapes: bool,
    /// User variables holding a saved sql_mode, and whether it had NO_BACKSLASH_ESCAPES.
    saved: Vec<(String, bool)>,
}

impl SqlMode {
    fn follow(&mut self, sql: &str) {
        let lower = sql.to_ascii_lowercase();
        if !lower.contains("sql_mode") {
            return;
        }
        // Executable comments run their contents; ordinary comments are gone by now
        // except inside the statement, which mysqldump's SETs never have.
        let code: String = lower
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join(" ");
        let code = strip_executable_comment_marks(&code);
        let Some(assignments) = code.trim().strip_prefix("set ") else {
            return;
        };
        for assignment in split_outside_quotes(assignments, ',') {
            let Some((target, value)) = assignment.split_once('=') else {
                continue;
            };
            let target = target.trim().trim_end_matches(':');
            let target = target
                .strip_prefix("session ")
                .or_else(|| target.strip_prefix("local "))
                .unwrap_or(target)
                .trim();
            let target = target
                .strip_prefix("@@session.")
                .or_else(|| target.strip_prefix("@@local."))
                .or_else(|| target.strip_prefix("@@"))
                .unwrap_or(target);
            let value = value.trim();
            let reads_mode = matches!(value, "@@sql_mode" | "@@session.sql_mode");
            if target == "sql_mode" {
                self.no_backslash_escapes = if value.starts_with('\'') {
                    value.contains("no_backslash_escapes")
                } else if let Some(var) = value.strip_prefix('@').filter(|_| !reads_mode) {
                    self.saved
                        .iter()
                        .rev()
                        .find(|(name, _)| name == var)
                        .is_some_and(|(_, on)| *on)
                } else if reads_mode {
                    self.no_backslash_escapes
                } else {
                    value.contains("no_backslash_escapes")
                };
            } else if let (Some(var), true) = (target.strip_prefix('@'), reads_mode) {
                self.saved.push((var.to_owned(), self.no_backslash_escapes));
            }
        }
    }
}

/// `text` without the `/*!NNNNN` / `/*M!NNNNNN` openers and `*/` closers of MySQL
/// executable comments.
fn strip_executable_comment_marks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("/*") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let after = after
            .strip_prefix('!')
            .or_else(|| after.strip_prefix("m!"))
            .unwrap_or(after);
        rest = after.trim_start_matches(|c: char| c.is_ascii_digit());
        out.push(' ');
    }
    out.push_str(rest);
    out.replace("*/", " ")
}

/// Pieces of `text` between `separator`s that are not inside quotes.
fn split_outside_quotes(text: &str, separator: char) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut quote: Option<char> = None;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (None, '\'' | '"' | '`') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, _) if c == separator => {
                pieces.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    pieces.push(&text[start..]);
    pieces
}

/// The value `SET standard_conforming_strings` (or `RESET`) gives, if `sql` is one.
fn standard_strings_set_by(sql: &str) -> Option<bool> {
    let words: Vec<String> = sql
        .split(|c: char| c.is_whitespace() || c == '=')
        .filter(|w| !w.is_empty())
        .map(|w| w.trim_matches('\'').to_ascii_lowercase())
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let (name, value) = match words.as_slice() {
        ["reset", "all"] => return Some(true),
        ["reset", name] => (*name, "default"),
        ["set", "session" | "local", name, "to", value]
        | ["set", "session" | "local", name, value]
        | ["set", name, "to", value]
        | ["set", name, value] => (*name, *value),
        _ => return None,
    };
    if name != "standard_conforming_strings" {
        return None;
    }
    match value {
        "on" | "true" | "yes" | "1" | "default" => Some(true),
        "off" | "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// Identifier and number characters. Bytes of non-ASCII characters count, as they do in
/// PostgreSQL, MySQL and SQLite identifiers, so a multi-byte character is never split.
fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Characters that may start a dollar-quote tag (later ones may also be digits); unlike
/// identifiers, tags cannot contain `$`.
fn is_tag_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn count_newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&c| c == b'\n').count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::strategy::Union;
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
        let script = r#"SELECT 'it\'s;', 'a''b;', "say \"hi\"; ""ok""", `col``;` FROM t; SELECT '\\'; SELECT 2"#;
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

    #[test]
    fn splits_megabytes_in_linear_time() {
        let unit = "INSERT INTO t VALUES (1, 'a;b', \"c\") /* x; */; -- note;\n";
        let many_statements = unit.repeat(100_000);
        assert!(many_statements.len() > 5_000_000);
        for dialect in ALL {
            let started = Instant::now();
            let statements = ok(&many_statements, dialect);
            let elapsed = started.elapsed();
            assert_eq!(statements.len(), 100_000);
            assert_eq!(
                statements[99_999],
                st(100_000, "INSERT INTO t VALUES (1, 'a;b', \"c\") /* x; */")
            );
            assert_fast(elapsed, dialect, "100k statements");
        }
        // Inputs that would make a rescanning splitter quadratic.
        let adversarial = [
            (Dialect::Postgres, "$a ".repeat(1_000_000)),
            (Dialect::Postgres, "a$".repeat(1_000_000)),
            (Dialect::Postgres, "/*".repeat(1_000_000)),
            (
                Dialect::Postgres,
                "CREATE FUNCTION f() BEGIN ATOMIC CASE ".repeat(100_000),
            ),
            (
                Dialect::MySql,
                format!("DELIMITER aaaaaaaaaaaaaaab\n{}", "a".repeat(5_000_000)),
            ),
            (
                Dialect::Sqlite,
                "CREATE TRIGGER t BEGIN x; ".repeat(200_000),
            ),
            (Dialect::MySql, "DELIMITER ;\n".repeat(500_000)),
        ];
        for (dialect, script) in adversarial {
            let started = Instant::now();
            let _ = split(&script, dialect);
            assert_fast(started.elapsed(), dialect, &script[..20]);
        }
    }

    /// Timing only means something in an optimised build.
    fn assert_fast(elapsed: Duration, dialect: Dialect, what: &str) {
        if !cfg!(debug_assertions) {
            assert!(
                elapsed < Duration::from_millis(500),
                "{dialect:?} {what}: {elapsed:?}"
            );
        }
    }

    /// Results must be well formed whatever the input: trimmed, non-empty slices of the
    /// script, with lines in order and within the script.
    fn check_well_formed(script: &str) {
        let last_line = 1 + script.matches('\n').count();
        for dialect in ALL {
            let Ok(statements) = split(script, dialect) else {
                continue;
            };
            let mut previous_line = 1;
            for statement in &statements {
                assert!(!statement.sql.is_empty(), "{dialect:?}: {statements:?}");
                assert_eq!(statement.sql.trim(), statement.sql, "{dialect:?}");
                assert!(
                    script.contains(statement.sql.as_ref()),
                    "{dialect:?}: {statement:?}"
                );
                assert!(
                    (previous_line..=last_line).contains(&statement.line),
                    "{dialect:?}: {statements:?}"
                );
                previous_line = statement.line;
            }
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

    fn sql_soup() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            prop::sample::select(vec![
                "'",
                "\"",
                "`",
                "[",
                "]",
                ";",
                "$",
                "$$",
                "$a$",
                "$1",
                "-",
                "--",
                "-- ",
                "/",
                "*",
                "/*",
                "*/",
                "/*!",
                "/*M!",
                "#",
                "\\",
                "(",
                ")",
                " ",
                "\n",
                "\r\n",
                "\t",
                "E'",
                "e",
                "DELIMITER",
                "delimiter ",
                "DELIMITER //\n",
                "//",
                "BEGIN",
                "END",
                "ATOMIC",
                "TRIGGER",
                "CREATE",
                "case",
                "temp",
                "explain",
                "\u{a0}",
                "é",
                "🐢",
            ])
            .prop_map(str::to_owned),
            "[a-z0-9]{1,4}",
            any::<char>().prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..64).prop_map(|pieces| pieces.concat())
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
        let statements =
            prop::collection::vec((statement(dialect), whitespace(), whitespace()), 1..8);
        (statements, whitespace(), any::<bool>()).prop_map(
            |(statements, leading, terminate_last)| {
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
            },
        )
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(script in any::<String>()) {
            check_well_formed(&script);
        }

        #[test]
        fn never_panics_on_sql_punctuation_and_keywords(script in sql_soup()) {
            check_well_formed(&script);
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
}
