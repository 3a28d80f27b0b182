//! `dbvigil migrate baseline`: adopts a database that already has its schema by recording,
//! in an empty history, the version it is at. Scripts up to that version never run; those
//! above it are pending.

use super::conn::DbConn;
use super::runner::{self, MigrateError, Observer, Options, Status};
use super::schema_history::{self, BASELINE_SCRIPT, DESCRIPTION_MAX, Entry, Row};
use super::script::{Script, Version};

/// Bad input, found before the database is touched (exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaselineError {
    #[error(
        "there are no scripts to baseline: add the scripts the database already has (up to version {0}) first, then record the baseline"
    )]
    NoScripts(Version),
    #[error(
        "baseline version {version} is above every script (the highest is V{highest}, {script}): give the version of the last script the database already has"
    )]
    AboveScripts {
        version: Version,
        highest: Version,
        script: String,
    },
    #[error("the description is empty: leave --description out for \"baseline\", or say why")]
    EmptyDescription,
    #[error(
        "the description is {0} characters long, and the history table holds {DESCRIPTION_MAX}: shorten it"
    )]
    DescriptionTooLong(usize),
}

/// Checks the flags against the scripts. A version above every script is refused: it is
/// more likely a typo than a database ahead of its own scripts, and any script written
/// later below it would never run.
pub fn check(
    version: &Version,
    description: &str,
    scripts: &[Script],
) -> Result<(), BaselineError> {
    if description.trim().is_empty() {
        return Err(BaselineError::EmptyDescription);
    }
    let len = description.chars().count();
    if len > DESCRIPTION_MAX {
        return Err(BaselineError::DescriptionTooLong(len));
    }
    let Some(highest) = scripts.iter().max_by(|a, b| a.version.cmp(&b.version)) else {
        return Err(BaselineError::NoScripts(version.clone()));
    };
    if *version > highest.version {
        return Err(BaselineError::AboveScripts {
            version: version.clone(),
            highest: highest.version.clone(),
            script: highest.name.clone(),
        });
    }
    Ok(())
}

/// Records the baseline under the migration lock, so it cannot race a run, and returns the
/// history as it now stands. Refused, changing nothing, when the history has any entry.
pub async fn record(
    conn: &mut DbConn,
    scripts: &[Script],
    opts: &Options,
    version: &Version,
    description: &str,
    observer: &mut dyn Observer,
) -> Result<Status, MigrateError> {
    runner::locked(conn, opts, observer, async |conn, home, _| {
        let rows = schema_history::rows(conn, home).await?;
        if let Some(refusal) = refusal(&rows) {
            return Err(MigrateError::Refused(vec![refusal]));
        }
        let row = Entry {
            rank: 1,
            version: &version.to_string(),
            description,
            script: BASELINE_SCRIPT,
            // No script: nothing to checksum, and no real checksum is empty.
            checksum: "",
            installed_by: &opts.installed_by,
            execution_ms: 0,
            success: Some(true),
        };
        schema_history::insert(conn, home, &row).await?;
        let rows = schema_history::rows(conn, home).await?;
        Ok(runner::status(&rows, scripts, opts, None))
    })
    .await
}

/// Why a history cannot take a baseline: as Flyway, only an empty one can.
fn refusal(rows: &[Row]) -> Option<String> {
    let when = |r: &Row| r.installed_on.map(|t| t.to_string()).unwrap_or_default();
    if let Some(b) = rows.iter().find(|r| r.is_baseline()) {
        return Some(format!(
            "the database was already baselined at V{} on {} by {}: a baseline is recorded once, in an empty history",
            b.version,
            when(b),
            b.installed_by
        ));
    }
    let last = rows.last()?;
    Some(format!(
        "the history already has {} entr{} (the latest: V{} ({}) at {}): a baseline is recorded only in an empty history, before dbvigil applies anything; `dbvigil migrate info` lists them",
        rows.len(),
        if rows.len() == 1 { "y" } else { "ies" },
        last.version,
        last.script,
        when(last)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::runner::State;
    use crate::migrate::script::checksum;
    use crate::time::Timestamp;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    fn script(version: &str) -> Script {
        Script {
            version: v(version),
            description: format!("v{version}"),
            name: format!("V{version}__v.sql"),
            path: Default::default(),
            content: version.to_owned(),
            checksum: checksum(version),
        }
    }

    fn row(rank: i64, version: &str, script: &str, sum: &str) -> Row {
        Row {
            rank,
            version: version.to_owned(),
            description: "baseline".to_owned(),
            script: script.to_owned(),
            checksum: sum.to_owned(),
            installed_by: "me@host".to_owned(),
            installed_on: Some(Timestamp::from_millis(1_800_000_000_000)),
            execution_ms: 0,
            success: Some(true),
        }
    }

    fn opts() -> Options {
        Options {
            lock_timeout: std::time::Duration::ZERO,
            installed_by: String::new(),
            ignore_missing: false,
            limits: Default::default(),
            reach: None,
        }
    }

    #[test]
    fn scripts_up_to_the_baseline_never_run_and_those_above_are_pending() {
        let scripts = [script("1"), script("2"), script("2.1"), script("3")];
        let rows = [
            row(1, "2", BASELINE_SCRIPT, ""),
            row(2, "2.1", "V2.1__v.sql", &checksum("2.1")),
        ];
        let s = runner::status(&rows, &scripts, &opts(), None);
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        let states: Vec<(&str, State)> = s
            .entries
            .iter()
            .map(|e| (e.version.as_str(), e.state))
            .collect();
        assert_eq!(
            states,
            [
                ("2", State::Baseline),
                ("2.1", State::Applied),
                ("1", State::Baselined),
                ("2", State::Baselined),
                ("3", State::Pending),
            ]
        );
        assert_eq!(s.pending(), 1);
    }

    #[test]
    fn only_an_empty_history_takes_a_baseline() {
        assert_eq!(refusal(&[]), None);
        assert_eq!(
            refusal(&[row(1, "2", BASELINE_SCRIPT, "")]).unwrap(),
            "the database was already baselined at V2 on 2027-01-15T08:00:00Z by me@host: a baseline is recorded once, in an empty history"
        );
        assert_eq!(
            refusal(&[row(1, "1", "V1__a.sql", "x"), row(2, "2", "V2__b.sql", "y")]).unwrap(),
            "the history already has 2 entries (the latest: V2 (V2__b.sql) at 2027-01-15T08:00:00Z): a baseline is recorded only in an empty history, before dbvigil applies anything; `dbvigil migrate info` lists them"
        );
    }

    #[test]
    fn a_baseline_must_be_within_the_scripts() {
        let scripts = [script("1"), script("2"), script("3")];
        assert_eq!(check(&v("2"), "baseline", &scripts), Ok(()));
        assert_eq!(check(&v("3.0"), "baseline", &scripts), Ok(()));
        assert_eq!(check(&v("2.5"), "baseline", &scripts), Ok(()));
        assert_eq!(
            check(&v("30"), "baseline", &scripts)
                .unwrap_err()
                .to_string(),
            "baseline version 30 is above every script (the highest is V3, V3__v.sql): give the version of the last script the database already has"
        );
        assert_eq!(
            check(&v("1"), "baseline", &[]).unwrap_err().to_string(),
            "there are no scripts to baseline: add the scripts the database already has (up to version 1) first, then record the baseline"
        );
        assert_eq!(
            check(&v("1"), " ", &scripts).unwrap_err(),
            BaselineError::EmptyDescription
        );
        assert_eq!(
            check(&v("1"), &"é".repeat(201), &scripts).unwrap_err(),
            BaselineError::DescriptionTooLong(201)
        );
    }
}
