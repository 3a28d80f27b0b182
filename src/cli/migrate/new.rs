//! `dbvigil migrate new DESCRIPTION`: the next script, created empty in the directory every
//! subcommand reads, its path printed; no database is touched.

use std::path::PathBuf;

use serde_json::json;

use super::args::{MigrateArgs, NewArgs};
use super::exit;
use super::jobs::{self, JobError};
use super::printer::Printer;
use crate::migrate::new_script::{self, NewScriptError};
use crate::migrate::script::{self, ScriptError};
use crate::time::Timestamp;

/// Why no script was created (exit 2).
#[derive(Debug, thiserror::Error)]
enum NewError {
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Scripts(#[from] ScriptError),
    #[error(transparent)]
    Script(#[from] NewScriptError),
}

pub fn run(args: &MigrateArgs, new: &NewArgs, out: &Printer) -> u8 {
    match create(args, new) {
        Ok(path) => {
            // The path alone, so that `$EDITOR "$(dbvigil migrate new ...)"` opens it.
            out.line(&path.display().to_string());
            let script = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.document(
                args,
                exit::OK,
                json!({ "path": path.display().to_string(), "script": script }),
            );
            exit::OK
        }
        Err(e) => {
            out.error(&e.to_string());
            out.document(args, exit::INVALID, json!({ "error": e.to_string() }));
            exit::INVALID
        }
    }
}

fn create(args: &MigrateArgs, new: &NewArgs) -> Result<PathBuf, NewError> {
    let (dir, ignore) = jobs::scripts_dir(args)?;
    // The directory is read as `run` reads it, so a misnamed file is refused here too
    // rather than numbered around.
    let scripts = script::load_dir(&dir, &ignore)?;
    let name = new_script::name(&scripts, &new.words.join(" "), &ignore, Timestamp::now())?;
    Ok(new_script::create(&dir, &name)?)
}
