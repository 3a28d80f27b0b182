//! Targets from discovery files: the lists of addresses and labels that Prometheus users
//! already generate for `file_sd_configs`, each block of files turned into targets by one
//! template.
//!
//! The template is checked with the configuration; each file is checked on every change,
//! alone. A bad file is reported with its own line and column and keeps the targets it
//! had, so one broken generator never stops the rest of the fleet.

mod files;

pub use files::{Discovered, DiscoveryFiles, FileStatus, Notice};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use super::raw::Defaults;
use super::targets::{check_label_name, raw::Target, valid_target_name};
use super::values::{Expanded, HumanDuration};
use super::{ConfigError, Endpoint, Kind, TargetConfig, Validator, format_duration};

/// How often the files are re-read when `refresh_interval` is not set. Reading is cheap
/// (a 1,000-target file is about 40 KB) and polling also sees a Kubernetes ConfigMap's
/// symlink swap, which a watch on the file itself would miss.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(5);
const MIN_REFRESH: Duration = Duration::from_millis(100);
/// Discovery files are generated, but never trusted to be small.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
const EXTENSIONS: [&str; 3] = ["json", "yml", "yaml"];
/// Written into the template for the fields each address fills in, so that the rest of the
/// template is checked by the same code as a target of `targets:`.
const PLACEHOLDER_NAME: &str = "target-files-template";
const PLACEHOLDER_HOST: &str = "address.from.discovery.file";

/// One `target_files:` block: the files and the template that makes their addresses
/// targets.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetFiles {
    /// `dir/pattern`: wildcards (`*`, `?`) in the file name only, as in Prometheus.
    pub patterns: Vec<PathBuf>,
    /// A checked target whose name and address each discovered entry replaces.
    pub template: TargetConfig,
    /// The port of an address written without one: the template's, else the kind's.
    pub default_port: Option<u16>,
    pub name_prefix: String,
    pub refresh_interval: Duration,
}

pub(super) mod raw {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TargetFiles {
        pub files: Spanned<Vec<Spanned<Expanded>>>,
        pub template: Spanned<Target>,
        pub name_prefix: Option<Spanned<Expanded>>,
        pub refresh_interval: Option<Spanned<HumanDuration>>,
    }

    /// One entry of a discovery file, as Prometheus' file_sd reads it.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Group {
        pub targets: Vec<Spanned<String>>,
        #[serde(default)]
        pub labels: HashMap<Spanned<String>, String>,
    }
}

impl Validator<'_> {
    pub(super) fn target_files(
        &self,
        blocks: Vec<raw::TargetFiles>,
        defaults: &Defaults,
    ) -> Result<Vec<TargetFiles>, ConfigError> {
        blocks
            .into_iter()
            .map(|b| self.target_files_block(b, defaults))
            .collect()
    }

    fn target_files_block(
        &self,
        block: raw::TargetFiles,
        defaults: &Defaults,
    ) -> Result<TargetFiles, ConfigError> {
        if block.files.value.is_empty() {
            return Err(self.err(
                block.files.referenced,
                "files is empty: list at least one file or pattern, like targets/*.json",
            ));
        }
        let mut patterns = Vec::new();
        for f in &block.files.value {
            let pattern = self.path(&f.value.0);
            check_pattern(&pattern).map_err(|m| self.err(f.referenced, m))?;
            patterns.push(pattern);
        }
        let name_prefix = match &block.name_prefix {
            None => String::new(),
            Some(p) if !p.value.0.is_empty() && !valid_target_name(&p.value.0) => {
                return Err(self.err(
                    p.referenced,
                    format!(
                        "name_prefix {:?} may only contain letters, digits, '_', '.' and '-', starting with a letter or digit",
                        p.value.0
                    ),
                ));
            }
            Some(p) => p.value.0.clone(),
        };
        let refresh_interval = match &block.refresh_interval {
            None => DEFAULT_REFRESH,
            Some(d) if d.value.0 < MIN_REFRESH => {
                return Err(self.err(
                    d.referenced,
                    format!(
                        "refresh_interval {} is below the minimum of {}: raise it",
                        format_duration(d.value.0),
                        format_duration(MIN_REFRESH)
                    ),
                ));
            }
            Some(d) => d.value.0,
        };
        let (template, default_port) = self.template(block.template, defaults)?;
        Ok(TargetFiles {
            patterns,
            template,
            default_port,
            name_prefix,
            refresh_interval,
        })
    }

    /// Checks a template as a target whose name and address are still to come.
    fn template(
        &self,
        t: Spanned<Target>,
        defaults: &Defaults,
    ) -> Result<(TargetConfig, Option<u16>), ConfigError> {
        let at = t.referenced;
        let mut t = t.value;
        let from_address = |field: &str| {
            format!(
                "a target_files template has no `{field}`: each target's address comes from the discovery files, and its name from the address (see docs/scaling.md)"
            )
        };
        let given = [
            ("name", t.name.as_ref().map(|s| s.referenced)),
            ("host", t.host.as_ref().map(|s| s.referenced)),
            ("path", t.path.as_ref().map(|s| s.referenced)),
            ("url", t.url.as_ref().map(|s| s.referenced)),
        ];
        if let Some((field, Some(at))) = given.into_iter().find(|(_, at)| at.is_some()) {
            return Err(self.err(at, from_address(field)));
        }
        if let Some(r) = &t.replica_of {
            return Err(self.err(
                r.referenced,
                "a target_files template has no `replica_of`: list replicas under `targets:`, where each can name its primary",
            ));
        }
        let kind = t.kind.value;
        let placeholder = |text: &str| Some(Spanned::new(Expanded(text.to_owned()), at, at));
        t.name = placeholder(PLACEHOLDER_NAME);
        let default_port = match kind {
            Kind::Sqlite => {
                t.path = placeholder(PLACEHOLDER_HOST);
                None
            }
            Kind::Tcp => {
                let port = t.port.as_ref().map(|p| p.value);
                if port.is_none() {
                    t.port = Some(Spanned::new(1, at, at));
                }
                t.host = placeholder(PLACEHOLDER_HOST);
                port
            }
            Kind::Postgres | Kind::Mysql => {
                t.host = placeholder(PLACEHOLDER_HOST);
                Some(t.port.as_ref().map_or(kind.default_port(), |p| p.value))
            }
        };
        Ok((self.target(t, defaults)?, default_port))
    }
}

/// Wildcards only in the last path segment, and a file_sd extension, as Prometheus asks.
fn check_pattern(pattern: &Path) -> Result<(), String> {
    let shown = pattern.display();
    let name = pattern.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let dir = pattern
        .parent()
        .map(|d| d.to_string_lossy())
        .unwrap_or_default();
    if dir.contains(['*', '?', '[']) {
        return Err(format!(
            "{shown}: wildcards are allowed in the file name only, as in Prometheus' file_sd_configs"
        ));
    }
    if name.contains('[') {
        return Err(format!(
            "{shown}: only `*` and `?` are wildcards; `[` is not supported"
        ));
    }
    let extension = name.rsplit_once('.').map(|(_, e)| e);
    if !extension.is_some_and(|e| EXTENSIONS.contains(&e)) {
        return Err(format!(
            "{shown}: a discovery file ends in .json, .yml or .yaml, as in Prometheus' file_sd_configs"
        ));
    }
    Ok(())
}

impl TargetFiles {
    /// The files the patterns match now, sorted. A missing directory matches nothing: the
    /// generator may not have run yet.
    pub fn matching_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for pattern in &self.patterns {
            let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else {
                continue;
            };
            let name = name.to_string_lossy();
            if !name.contains(['*', '?']) {
                if pattern.is_file() {
                    files.push(pattern.clone());
                }
                continue;
            }
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let file_name = entry.file_name();
                let file_name = file_name.to_string_lossy();
                // Editors' and generators' hidden temporary files are not discovery files.
                if !file_name.starts_with('.')
                    && crate::wildcard::matches(&name, &file_name)
                    && entry.path().is_file()
                {
                    files.push(entry.path());
                }
            }
        }
        files.sort();
        files.dedup();
        files
    }

    /// The targets one discovery file describes, or why it describes none. `shown` names
    /// the file in messages.
    pub fn parse_file(
        &self,
        text: &str,
        shown: &str,
        dir: &Path,
    ) -> Result<Vec<Found>, ConfigError> {
        let invalid = |at: Location, message: String| ConfigError::at(shown, at, message);
        if text.trim().is_empty() {
            return Err(ConfigError::Invalid {
                file: shown.to_owned(),
                line: 1,
                column: 1,
                message: "the file is empty: write [] for no targets (an empty file is more often one half-written, so its previous targets are kept)".to_owned(),
            });
        }
        let groups: Vec<raw::Group> =
            serde_saphyr::from_str(text).map_err(|e| ConfigError::from_yaml(shown, e))?;
        let mut found: Vec<Found> = Vec::new();
        let mut seen: HashMap<String, (String, u64)> = HashMap::new();
        for group in groups {
            let mut labels: BTreeMap<String, String> =
                self.template.labels.iter().cloned().collect();
            for (key, value) in group.labels {
                // Prometheus' own meta labels, which relabeling reads and then drops.
                if key.value.starts_with("__") {
                    continue;
                }
                check_label_name(&key.value).map_err(|m| invalid(key.referenced, m))?;
                labels.insert(key.value, value);
            }
            for address in group.targets {
                let target = self
                    .target_at(&address.value, dir, &labels)
                    .map_err(|m| invalid(address.referenced, m))?;
                if let Some((first, _)) = seen.get(&target.name) {
                    let line = seen[&target.name].1;
                    return Err(invalid(
                        address.referenced,
                        format!(
                            "address {:?} makes target name {:?}, as {first:?} on line {line} does: list each database once, or tell them apart with name_prefix in separate blocks",
                            address.value, target.name
                        ),
                    ));
                }
                seen.insert(
                    target.name.clone(),
                    (address.value.clone(), address.referenced.line()),
                );
                found.push(Found {
                    target,
                    line: address.referenced.line(),
                    column: address.referenced.column(),
                });
            }
        }
        Ok(found)
    }

    fn target_at(
        &self,
        address: &str,
        dir: &Path,
        labels: &BTreeMap<String, String>,
    ) -> Result<TargetConfig, String> {
        let mut target = self.template.clone();
        target.labels = labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let name = match &mut target.endpoint {
            Endpoint::Sqlite { path, .. } => {
                if address.trim().is_empty() {
                    return Err("the address is empty: write the SQLite file's path".to_owned());
                }
                *path = dir.join(address);
                derive_name(&self.name_prefix, address, None, address)?
            }
            Endpoint::Tcp { host, port } => {
                let (h, p) = self.host_port(address)?;
                let name = derive_name(&self.name_prefix, &h, self.extra_port(p), address)?;
                (*host, *port) = (h, p);
                name
            }
            Endpoint::Server(server) => {
                let (h, p) = self.host_port(address)?;
                let name = derive_name(&self.name_prefix, &h, self.extra_port(p), address)?;
                (server.host, server.port) = (h, p);
                name
            }
        };
        target.name = name;
        Ok(target)
    }

    /// The port goes into the name only when it is not the one every address defaults to,
    /// so `orders-db` stays `orders-db` and a second server on one host gets its own name.
    fn extra_port(&self, port: u16) -> Option<u16> {
        (Some(port) != self.default_port).then_some(port)
    }

    fn host_port(&self, address: &str) -> Result<(String, u16), String> {
        let (host, port) = split_address(address)?;
        match port.or(self.default_port) {
            Some(p) => Ok((host, p)),
            None => Err(format!(
                "address {address:?} has no port, and the template sets none: write host:port, or set `port` in the template"
            )),
        }
    }
}

/// A discovered target and where its address is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub target: TargetConfig,
    pub line: u64,
    pub column: u64,
}

/// `host`, `host:port`, `[v6]:port` or a bare IPv6 address; never credentials or a path.
fn split_address(address: &str) -> Result<(String, Option<u16>), String> {
    let bad = |why: &str| Err(format!("address {address:?} {why}"));
    if address.trim().is_empty() {
        return bad("is empty: write host or host:port");
    }
    if address.contains('@') {
        return bad("carries credentials: put the user and password in the template");
    }
    if address.contains(['/', '?', '#', ' ', '\t']) || address.contains("://") {
        return bad(
            "is not host or host:port: write the address alone, settings go in the template",
        );
    }
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return bad("opens '[' without closing it: write [2001:db8::1]:5432");
        };
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None => return bad("has text after ']': write [2001:db8::1]:5432"),
            },
        }
    } else if address.matches(':').count() > 1 {
        (address, None)
    } else {
        match address.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (address, None),
        }
    };
    if host.is_empty() {
        return bad("has no host: write host:port");
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return bad("has no valid port: write a number from 1 to 65535"),
            Ok(n) => Some(n),
        },
    };
    Ok((host.to_owned(), port))
}

/// A target name from an address: the prefix, the host (or path) in lower case with every
/// character a name cannot hold made `_`, then `_port` when the port is not the default;
/// leading characters that are not a letter or digit are dropped.
fn derive_name(
    prefix: &str,
    host: &str,
    port: Option<u16>,
    address: &str,
) -> Result<String, String> {
    let mut body: String = host
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Some(port) = port {
        body.push('_');
        body.push_str(&port.to_string());
    }
    let name = format!("{prefix}{body}");
    let name = name.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    if !valid_target_name(name) {
        return Err(format!(
            "address {address:?} makes no valid target name (letters, digits, '_', '.' and '-', at most 128): shorten it or set name_prefix"
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests;
