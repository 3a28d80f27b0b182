//! `dbvigil migrate new`: the next script's name (the version after the highest, spelled as
//! the directory already spells its versions, and the description as a file name), and the
//! file, created only if no file has that name.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::schema_history::DESCRIPTION_MAX;
use super::script::Script;
use crate::time::Timestamp;

/// Versions that are a UTC time to the second, as dbmate and golang-migrate's `-format`
/// write them: `20260115080000`.
const TIMESTAMP_FORMAT: &str = "%Y%m%d%H%M%S";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NewScriptError {
    #[error(
        "the description is empty: say what the script changes, like `dbvigil migrate new add order status`"
    )]
    EmptyDescription,
    #[error(
        "the description has {0:?}, which dbvigil does not put in a script name: use letters, digits, spaces, '.', '-' and '_'"
    )]
    Character(char),
    #[error(
        "the description is {0} characters long, and the history table holds {DESCRIPTION_MAX}: shorten it"
    )]
    TooLong(usize),
    #[error(
        "{name} would match --ignore '{pattern}' (or migrations.ignore) and never run: choose another description, or narrow the pattern"
    )]
    Ignored { name: String, pattern: String },
    #[error("{}: a file has this name already; dbvigil never overwrites one, and wrote nothing", .0.display())]
    Exists(PathBuf),
    #[error("cannot create {}: {error}", path.display())]
    Create { path: PathBuf, error: String },
}

/// `V<next version>__<description>.sql`. `scripts` are the directory's, in version order
/// (as `script::load_dir` returns them); `ignore` its patterns of files that are not scripts.
pub fn name(
    scripts: &[Script],
    description: &str,
    ignore: &[String],
    now: Timestamp,
) -> Result<String, NewScriptError> {
    let name = format!(
        "V{}__{}.sql",
        next_version(scripts.last(), now),
        slug(description)?
    );
    match ignore.iter().find(|p| crate::wildcard::matches(p, &name)) {
        Some(pattern) => Err(NewScriptError::Ignored {
            name,
            pattern: pattern.clone(),
        }),
        None => Ok(name),
    }
}

/// Creates the script, empty. `create_new` (O_EXCL): a file that appeared meanwhile, even
/// from another `new` racing this one, is never overwritten.
pub fn create(dir: &Path, name: &str) -> Result<PathBuf, NewScriptError> {
    let path = dir.join(name);
    match std::fs::File::create_new(&path) {
        Ok(_) => Ok(path),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(NewScriptError::Exists(path)),
        Err(e) => Err(NewScriptError::Create {
            path,
            error: e.to_string(),
        }),
    }
}

/// Words joined by `_`, as the description part of a script name; `parse_name` reads the
/// underscores back as spaces.
fn slug(description: &str) -> Result<String, NewScriptError> {
    let slug = description.split_whitespace().collect::<Vec<_>>().join("_");
    if slug.is_empty() {
        return Err(NewScriptError::EmptyDescription);
    }
    if let Some(c) = slug
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(NewScriptError::Character(c));
    }
    let len = slug.chars().count();
    if len > DESCRIPTION_MAX {
        return Err(NewScriptError::TooLong(len));
    }
    Ok(slug)
}

/// The version after the highest script's, in its spelling: the last number goes up by one
/// and keeps its separator and zero padding (`3_1` to `3_2`, `009` to `010`), and a
/// timestamp version is followed by the time now (or by the next second, should the clock
/// be behind it). An empty directory starts at 1.
fn next_version(highest: Option<&Script>, now: Timestamp) -> String {
    let Some(highest) = highest else {
        return "1".to_owned();
    };
    let spelled = highest
        .name
        .strip_prefix('V')
        .and_then(|rest| rest.split_once("__"))
        .map_or_else(|| highest.version.to_string(), |(v, _)| v.to_owned());
    if is_timestamp(&spelled) {
        let stamp = jiff::Timestamp::from_microsecond(now.as_micros())
            .map(|t| t.strftime(TIMESTAMP_FORMAT).to_string())
            .unwrap_or_default();
        // Both are 14 digits, so text order is number order.
        if stamp.len() == spelled.len() && stamp > spelled {
            return stamp;
        }
    }
    let (head, last) = match spelled.rfind(['.', '_']) {
        Some(at) => spelled.split_at(at + 1),
        None => ("", spelled.as_str()),
    };
    format!("{head}{}", increment(last))
}

fn is_timestamp(version: &str) -> bool {
    version.len() == 14
        && version.bytes().all(|b| b.is_ascii_digit())
        && jiff::civil::DateTime::strptime(TIMESTAMP_FORMAT, version).is_ok()
}

/// A decimal number plus one, as text of any length, keeping leading zeros: `009` to
/// `010`, `99` to `100`.
fn increment(number: &str) -> String {
    let mut digits = number.as_bytes().to_vec();
    for d in digits.iter_mut().rev() {
        if *d == b'9' {
            *d = b'0';
        } else {
            *d += 1;
            return String::from_utf8(digits).unwrap_or_default();
        }
    }
    format!("1{}", String::from_utf8(digits).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::script::parse_name;

    fn scripts(names: &[&str]) -> Vec<Script> {
        let mut scripts: Vec<Script> = names
            .iter()
            .map(|name| {
                let (version, description) = parse_name(name).unwrap();
                Script {
                    version,
                    description,
                    name: (*name).to_owned(),
                    path: PathBuf::new(),
                    content: String::new(),
                    checksum: String::new(),
                }
            })
            .collect();
        scripts.sort_by(|a, b| a.version.cmp(&b.version));
        scripts
    }

    const NOW: Timestamp = Timestamp::from_millis(1_795_860_000_000); // 2026-11-28T10:00:00Z

    fn next(names: &[&str]) -> String {
        name(&scripts(names), "add order status", &[], NOW).unwrap()
    }

    #[test]
    fn the_next_version_is_spelled_as_the_directory_spells_its_versions() {
        assert_eq!(next(&[]), "V1__add_order_status.sql");
        assert_eq!(
            next(&["V1__a.sql", "V2__b.sql", "V3__c.sql"]),
            "V4__add_order_status.sql"
        );
        assert_eq!(next(&["V9__a.sql"]), "V10__add_order_status.sql");
        assert_eq!(
            next(&["V001__a.sql", "V009__b.sql"]),
            "V010__add_order_status.sql"
        );
        assert_eq!(
            next(&["V1_1__a.sql", "V2_1__b.sql", "V3_1__c.sql"]),
            "V3_2__add_order_status.sql"
        );
        assert_eq!(
            next(&["V1.9__a.sql", "V1.10__b.sql"]),
            "V1.11__add_order_status.sql"
        );
        assert_eq!(
            next(&["V20240101120000__a.sql"]),
            "V20261128100000__add_order_status.sql"
        );
        assert_eq!(
            next(&["V20991231235959__from_a_fast_clock.sql"]),
            "V20991231235960__add_order_status.sql",
            "never below the highest"
        );
        assert_eq!(
            next(&["V99999999999999__a.sql"]),
            "V100000000000000__add_order_status.sql",
            "14 digits that are no date count up"
        );
        // The version parsed back is above the highest, whatever the spelling.
        let dir = scripts(&["V1_9__a.sql", "V2__b.sql"]);
        let (v, d) = parse_name(&name(&dir, "x  y", &[], NOW).unwrap()).unwrap();
        assert!(v > dir[1].version);
        assert_eq!(d, "x y");
    }

    #[test]
    fn descriptions_that_cannot_be_a_script_name_are_refused() {
        let none = scripts(&[]);
        let err = |d: &str| name(&none, d, &[], NOW).unwrap_err().to_string();
        assert_eq!(
            err("  "),
            "the description is empty: say what the script changes, like `dbvigil migrate new add order status`"
        );
        assert_eq!(
            err("orders/status"),
            "the description has '/', which dbvigil does not put in a script name: use letters, digits, spaces, '.', '-' and '_'"
        );
        assert_eq!(
            err(&"x".repeat(201)),
            "the description is 201 characters long, and the history table holds 200: shorten it"
        );
        assert_eq!(
            name(&none, " Zipcode  Schema-v1.2 ", &[], NOW).unwrap(),
            "V1__Zipcode_Schema-v1.2.sql"
        );
        assert_eq!(
            name(&none, "drop temp", &["V1__drop*".to_owned()], NOW)
                .unwrap_err()
                .to_string(),
            "V1__drop_temp.sql would match --ignore 'V1__drop*' (or migrations.ignore) and never run: choose another description, or narrow the pattern"
        );
    }

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = create(dir.path(), "V1__a.sql").unwrap();
        std::fs::write(&path, "kept").unwrap();
        assert_eq!(
            create(dir.path(), "V1__a.sql").unwrap_err(),
            NewScriptError::Exists(path.clone())
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "kept");
    }
}
