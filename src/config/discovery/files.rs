//! The discovery files as last read: what each one holds, and what it keeps when it turns
//! bad. One refresh reads every matching file and says what changed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::{Found, MAX_FILE_BYTES, TargetFiles};
use crate::config::TargetConfig;

/// Every discovered target after a refresh, and the state of each file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Discovered {
    /// In file order, then in the order each file lists them.
    pub targets: Vec<TargetConfig>,
    pub files: Vec<FileStatus>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FileStatus {
    /// The path as the patterns found it, as shown in metrics and logs.
    pub file: String,
    /// Whether the last read parsed and every name in it was free.
    pub valid: bool,
    /// Targets it contributes now: the last good read's, when the latest one is bad.
    pub targets: usize,
}

/// What a refresh changed about a file, for the log.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// New or changed, and good.
    Read { path: PathBuf, targets: usize },
    /// Bad, with why (file:line:column first); `kept` targets stay from the last good read.
    Invalid {
        path: PathBuf,
        error: String,
        kept: usize,
    },
    /// No longer matched by any pattern: its targets stop.
    Gone { path: PathBuf, targets: usize },
}

/// Each discovery file's last read, kept between refreshes.
#[derive(Default)]
pub struct DiscoveryFiles {
    known: BTreeMap<PathBuf, Known>,
}

struct Known {
    /// What the last read saw and which block read it: the same text under the same block
    /// is not parsed again.
    text: Result<String, String>,
    block: TargetFiles,
    parsed: Result<Vec<Found>, String>,
    /// The last good read's targets, which a bad read keeps.
    good: Vec<Found>,
    /// The problem reported now, so each is logged once.
    error: Option<String>,
    /// Targets it gave the last refresh: `good` less the names others held first.
    contributed: usize,
}

impl DiscoveryFiles {
    /// Reads every file the blocks match. `taken` are the names of `targets:`, which a
    /// discovered target may not reuse; between files, the first (in block, then path
    /// order) keeps a name.
    pub fn refresh(&mut self, blocks: &[TargetFiles], taken: &[&str]) -> (Discovered, Vec<Notice>) {
        let mut owners: HashMap<String, String> = taken
            .iter()
            .map(|n| (n.to_string(), "a target under `targets:`".to_owned()))
            .collect();
        let mut known = std::mem::take(&mut self.known);
        let mut discovered = Discovered::default();
        let mut notices = Vec::new();
        for block in blocks {
            for path in block.matching_files() {
                if self.known.contains_key(&path) {
                    // An earlier block's pattern matched it too; that block reads it.
                    continue;
                }
                let previous = known.remove(&path);
                let text = read(&path);
                let unchanged = previous
                    .as_ref()
                    .is_some_and(|p| p.text == text && p.block == *block);
                let parsed = match (&previous, &text) {
                    (Some(p), _) if unchanged => p.parsed.clone(),
                    (_, Ok(text)) => {
                        let shown = path.display().to_string();
                        let dir = path.parent().unwrap_or(Path::new("."));
                        block
                            .parse_file(text, &shown, dir)
                            .map_err(|e| e.to_string())
                    }
                    (_, Err(e)) => Err(e.clone()),
                };
                let good = match &parsed {
                    Ok(found) => found.clone(),
                    Err(_) => previous
                        .as_ref()
                        .map(|p| p.good.clone())
                        .unwrap_or_default(),
                };
                let mut error = parsed.as_ref().err().cloned();
                let mut contributed = 0;
                for f in &good {
                    let here = format!("{}:{}:{}", path.display(), f.line, f.column);
                    if let Some(owner) = owners.get(&f.target.name) {
                        error.get_or_insert_with(|| {
                            format!(
                                "{here}: target name {:?} is already {owner}: remove one, or tell them apart with name_prefix",
                                f.target.name
                            )
                        });
                        continue;
                    }
                    owners.insert(f.target.name.clone(), format!("made by {here}"));
                    discovered.targets.push(f.target.clone());
                    contributed += 1;
                }
                let was_error = previous.as_ref().and_then(|p| p.error.clone());
                match &error {
                    Some(e) if was_error.as_ref() != Some(e) => notices.push(Notice::Invalid {
                        path: path.clone(),
                        error: e.clone(),
                        kept: contributed,
                    }),
                    None if !unchanged || was_error.is_some() => notices.push(Notice::Read {
                        path: path.clone(),
                        targets: contributed,
                    }),
                    _ => {}
                }
                discovered.files.push(FileStatus {
                    file: path.display().to_string(),
                    valid: error.is_none(),
                    targets: contributed,
                });
                self.known.insert(
                    path,
                    Known {
                        text,
                        block: block.clone(),
                        parsed,
                        good,
                        error,
                        contributed,
                    },
                );
            }
        }
        for (path, gone) in known {
            notices.push(Notice::Gone {
                path,
                targets: gone.contributed,
            });
        }
        (discovered, notices)
    }
}

fn read(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let size = std::fs::metadata(path)
        .map_err(|e| format!("{shown}: cannot read the discovery file: {e}"))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(format!(
            "{shown}: the discovery file is {size} bytes; dbvigil reads at most {MAX_FILE_BYTES}: split it"
        ));
    }
    std::fs::read_to_string(path)
        .map_err(|e| format!("{shown}: cannot read the discovery file: {e}; check its permissions"))
}
