//! Migration scripts on disk: Flyway-style names (`V<version>__<description>.sql`),
//! numeric version order, and checksums that survive a CRLF checkout.

use std::cmp::Ordering;
use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A version such as `1`, `1_1` or `2.3.1`: numbers compared part by part, so 1.10 comes
/// after 1.9, and trailing zero parts do not count (1.0 is 1), as in Flyway.
#[derive(Debug, Clone, Eq)]
pub struct Version {
    parts: Vec<String>,
}

impl Version {
    pub fn parse(text: &str) -> Option<Version> {
        let parts: Vec<String> = text
            .split(['.', '_'])
            .map(|p| {
                let trimmed = p.trim_start_matches('0');
                if trimmed.is_empty() { "0" } else { trimmed }.to_owned()
            })
            .collect();
        let digits_only = text
            .split(['.', '_'])
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        digits_only.then_some(Version { parts })
    }

    fn significant(&self) -> &[String] {
        let keep = self
            .parts
            .iter()
            .rposition(|p| p != "0")
            .map_or(1, |i| i + 1);
        &self.parts[..keep]
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.significant(), other.significant());
        for (x, y) in a.iter().zip(b) {
            // Parts have no leading zeros, so a longer part is a larger number.
            let order = x.len().cmp(&y.len()).then_with(|| x.cmp(y));
            if order != Ordering::Equal {
                return order;
            }
        }
        a.len().cmp(&b.len())
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.parts.join("."))
    }
}

#[derive(Debug, Clone)]
pub struct Script {
    pub version: Version,
    pub description: String,
    /// The file name, as recorded in the history table.
    pub name: String,
    pub path: PathBuf,
    pub content: String,
    pub checksum: String,
}

impl Script {
    /// Reads a script whose name follows the convention.
    pub fn load(path: &Path) -> Result<Script, ScriptError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (version, description) = parse_name(&name).map_err(|why| ScriptError::Name {
            name: name.clone(),
            why,
        })?;
        let bytes = std::fs::read(path).map_err(|e| ScriptError::Read {
            path: path.to_owned(),
            error: e.to_string(),
        })?;
        let content = String::from_utf8(bytes).map_err(|_| ScriptError::Read {
            path: path.to_owned(),
            error: "not UTF-8 text: save the script as UTF-8".to_owned(),
        })?;
        Ok(Script {
            version,
            description,
            name,
            path: path.to_owned(),
            checksum: checksum(&content),
            content,
        })
    }

    /// A `-- dbvigil:no-transaction` line among the script's leading comments runs it
    /// outside a transaction, for statements PostgreSQL refuses inside one
    /// (`CREATE INDEX CONCURRENTLY`, `VACUUM`).
    pub fn wants_transaction(&self) -> bool {
        !self
            .content
            .lines()
            .map(str::trim)
            .take_while(|l| l.is_empty() || l.starts_with("--"))
            .any(|l| l.trim_start_matches('-').trim() == "dbvigil:no-transaction")
    }
}

/// SHA-256 of the text with CRLF line ends read as LF, so a Windows checkout of the same
/// script is not "changed".
pub fn checksum(content: &str) -> String {
    let normalised = content.replace("\r\n", "\n");
    super::conn::hex(&Sha256::digest(normalised.as_bytes()))
}

/// Splits `V1_1__Add_users.sql` into version 1.1 and description "Add users".
pub fn parse_name(name: &str) -> Result<(Version, String), NameError> {
    let Some(stem) = name.strip_suffix(".sql") else {
        return Err(NameError::NotSql);
    };
    if stem.starts_with("R__") {
        return Err(NameError::Repeatable);
    }
    if stem.starts_with('U') && stem.contains("__") {
        return Err(NameError::Undo);
    }
    let Some(rest) = stem.strip_prefix('V') else {
        return Err(NameError::NoV);
    };
    let Some((version, description)) = rest.split_once("__") else {
        return Err(NameError::NoSeparator);
    };
    let Some(version) = Version::parse(version) else {
        return Err(NameError::Version(version.to_owned()));
    };
    Ok((version, description.replace('_', " ").trim().to_owned()))
}

/// Why a file name is not a migration script's, and how to name it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a migration script must end in .sql")]
    NotSql,
    #[error(
        "repeatable migrations (R__) are not supported: give it a version, V<version>__<description>.sql"
    )]
    Repeatable,
    #[error("undo migrations (U...) are not supported: write a new forward migration instead")]
    Undo,
    #[error("the name must start with V: V<version>__<description>.sql")]
    NoV,
    #[error(
        "the version and description are separated by two underscores: V<version>__<description>.sql"
    )]
    NoSeparator,
    #[error("version {0:?} must be numbers separated by '.' or '_', like 1, 1_1 or 2.3.1")]
    Version(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    #[error("cannot read migrations directory {path}: {error}")]
    Dir { path: PathBuf, error: String },
    #[error("cannot read {path}: {error}")]
    Read { path: PathBuf, error: String },
    #[error("{name}: {why}")]
    Name {
        name: String,
        #[source]
        why: NameError,
    },
    #[error(
        "{}: not a migration script; rename it V<version>__<description>.sql, or pass --ignore '{}' (migrations.ignore in the configuration) to leave it alone",
        names.join(", "), names[0]
    )]
    Unexpected { names: Vec<String> },
    #[error(
        "{first} and {second} have the same version {version}: give one of them another version"
    )]
    Duplicate {
        first: String,
        second: String,
        version: String,
    },
}

/// The scripts of a directory in version order. Every entry must be a script or match an
/// ignore pattern, so a misnamed script is an error instead of silently never running.
pub fn load_dir(dir: &Path, ignore: &[String]) -> Result<Vec<Script>, ScriptError> {
    let entries = std::fs::read_dir(dir).map_err(|e| ScriptError::Dir {
        path: dir.to_owned(),
        error: format!("{e}; check --dir (migrations.directory)"),
    })?;
    let mut scripts = Vec::new();
    let mut unexpected = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ScriptError::Dir {
            path: dir.to_owned(),
            error: e.to_string(),
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if ignore.iter().any(|p| crate::wildcard::matches(p, &name)) {
            continue;
        }
        let is_file = entry.file_type().map(|t| t.is_file() || t.is_symlink());
        if !is_file.unwrap_or(false) || !name.ends_with(".sql") {
            unexpected.push(name);
            continue;
        }
        scripts.push(Script::load(&entry.path())?);
    }
    if !unexpected.is_empty() {
        unexpected.sort();
        return Err(ScriptError::Unexpected { names: unexpected });
    }
    scripts.sort_by(|a, b| a.version.cmp(&b.version));
    for pair in scripts.windows(2) {
        if pair[0].version == pair[1].version {
            return Err(ScriptError::Duplicate {
                first: pair[0].name.clone(),
                second: pair[1].name.clone(),
                version: pair[0].version.to_string(),
            });
        }
    }
    Ok(scripts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn versions_compare_numerically_part_by_part() {
        assert!(v("1.9") < v("1.10"));
        assert!(v("1_1") < v("2"));
        assert!(v("2.3.1") > v("2.3"));
        assert_eq!(v("1"), v("1.0"));
        assert_eq!(v("1_01"), v("1.1"));
        assert!(v("100000000000000000000000000001") > v("99999999999999999999999999999"));
        assert_eq!(v("1_1").to_string(), "1.1");
        assert!(Version::parse("1a").is_none());
        assert!(Version::parse("1..2").is_none());
        assert!(Version::parse("").is_none());
    }

    #[test]
    fn names_follow_the_flyway_convention() {
        let (version, description) = parse_name("V1_1__Zipcode_Schema.sql").unwrap();
        assert_eq!(
            (version.to_string(), description.as_str()),
            ("1.1".to_owned(), "Zipcode Schema")
        );
        for (name, why) in [
            ("V1_users.sql", "two underscores"),
            ("1__users.sql", "must start with V"),
            ("R__views.sql", "repeatable"),
            ("U1__undo.sql", "undo"),
            ("V1x__a.sql", "numbers separated"),
            ("V1__a.txt", "end in .sql"),
        ] {
            let err = parse_name(name).unwrap_err().to_string();
            assert!(err.contains(why), "{name}: {err}");
        }
    }

    #[test]
    fn checksums_ignore_crlf_but_nothing_else() {
        assert_eq!(checksum("a;\nb;\n"), checksum("a;\r\nb;\r\n"));
        assert_ne!(checksum("a;\n"), checksum("a; \n"));
        assert_eq!(
            checksum(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn the_no_transaction_marker_is_read_from_leading_comments_only() {
        let mut s = Script {
            version: v("1"),
            description: String::new(),
            name: "V1__a.sql".to_owned(),
            path: PathBuf::new(),
            content: "-- build the index online\n-- dbvigil:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (c);".to_owned(),
            checksum: String::new(),
        };
        assert!(!s.wants_transaction());
        s.content = "CREATE TABLE t (c int);\n-- dbvigil:no-transaction\n".to_owned();
        assert!(s.wants_transaction());
    }
}
