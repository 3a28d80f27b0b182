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
mod tests;
