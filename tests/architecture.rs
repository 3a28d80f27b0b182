//! ARCHITECTURE.md, checked: in the spirit of rust-analyzer's tidy tests, each invariant the
//! document states as an absence is looked for in the source, every file under src/ must be
//! findable from the code map, every dependency must say why it is there, and the modules
//! must import each other one way only. A failure names the file and what to fix.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn architecture() -> String {
    fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md is readable")
}

/// The `.rs` files under `dir`, as paths relative to the crate root with `/` separators.
fn rust_files(dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root().join(dir)];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path: PathBuf = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root()).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

/// A file's code without its comments, the contents of its string and char literals, and
/// its unit tests (`#[cfg(test)]` items), which may use anything.
fn code_of(path: &str) -> String {
    let text = fs::read_to_string(root().join(path)).unwrap();
    let cleaned = without_comments_and_literals(&text);
    let mut code = String::with_capacity(cleaned.len());
    // Depth of braces inside a skipped test item; `Some(0)` right after `#[cfg(test)]`.
    let mut skipping: Option<usize> = None;
    for line in cleaned.lines() {
        let trimmed = line.trim_start();
        match skipping {
            None if trimmed.starts_with("#[cfg(test)]") => {
                let rest = trimmed.trim_start_matches("#[cfg(test)]");
                skipping = Some(0);
                skipping = skip(skipping, rest);
            }
            None => {
                code.push_str(line);
                code.push('\n');
            }
            Some(_) => skipping = skip(skipping, line),
        }
    }
    code
}

/// Follows one line of a skipped test item: attributes before it, then its braces; `None`
/// once the item has ended.
fn skip(state: Option<usize>, line: &str) -> Option<usize> {
    let depth = state?;
    let trimmed = line.trim();
    if depth == 0 && (trimmed.is_empty() || trimmed.starts_with("#[")) {
        return Some(0);
    }
    let opens = line.matches('{').count();
    let closes = line.matches('}').count();
    let after = (depth + opens).saturating_sub(closes);
    // An item without a block (`mod tests;`, `use x;`) ends on its line.
    (after > 0).then_some(after)
}

/// The text with `//` and `/* */` comments removed and string and char literals emptied
/// (their quotes kept), so that a message mentioning `axum` or holding a brace counts for
/// nothing. Line breaks stay where they were.
fn without_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                if chars[i] == '\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 2;
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_before(&chars, i) {
            // A raw string: r"..." or r#"..."#, with no escapes inside.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            out.push_str("\"\"");
            while j < chars.len() {
                if chars[j] == '"'
                    && chars[j + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|&&h| h == '#')
                        .count()
                        == hashes
                {
                    j += 1 + hashes;
                    break;
                }
                if chars[j] == '\n' {
                    out.push('\n');
                }
                j += 1;
            }
            i = j;
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if chars.get(i) == Some(&'\n') {
                    out.push('\n');
                }
                i += 1;
            }
            out.push('"');
            i += 1;
        } else if c == '\'' && is_char_literal(&chars, i) {
            // Past an escaped character first, so `'\''` ends at its own quote.
            let from = if chars[i + 1] == '\\' { i + 3 } else { i + 2 };
            let end = chars[from.min(chars.len())..]
                .iter()
                .position(|&q| q == '\'')
                .map_or(chars.len(), |p| from + p + 1);
            out.push_str("' '");
            i = end;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// `'x'` or `'\n'`, not a lifetime `'a`.
fn is_char_literal(chars: &[char], i: usize) -> bool {
    matches!(
        (chars.get(i + 1), chars.get(i + 2)),
        (Some('\\'), _) | (Some(_), Some('\''))
    )
}

fn contains_word(code: &str, word: &str) -> bool {
    code.match_indices(word).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = code[i + word.len()..].chars().next();
        let is_ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !is_ident(before) && !is_ident(after)
    })
}

#[test]
fn the_layers_that_return_values_never_serve_encode_or_serialise() {
    // ARCHITECTURE.md, Invariants: probers, the migration runner and the maintenance model
    // return values; only http/ and metrics/ turn them into HTTP, exposition text or JSON.
    let forbidden = ["axum", "prometheus_client", "serde_json", "Serialize"];
    let mut found = Vec::new();
    for dir in ["src/probe", "src/migrate", "src/maintenance"] {
        for file in rust_files(dir) {
            let code = code_of(&file);
            for word in forbidden {
                if contains_word(&code, word) {
                    found.push(format!("{file} uses {word}"));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "ARCHITECTURE.md says these layers never serve, encode or serialise; move the \
         encoding to http/, metrics/ or cli/:\n{}",
        found.join("\n")
    );
}

/// The code map's rows: the backticked paths of the first cell, and the whole row.
fn code_map_rows(doc: &str) -> Vec<(Vec<String>, String)> {
    let section = doc
        .split("\n## Code map")
        .nth(1)
        .expect("ARCHITECTURE.md has a `## Code map` section");
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|---") && !l.starts_with("| where"))
        .map(|row| {
            let first = row.split('|').nth(1).unwrap_or_default();
            let paths = first
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect();
            (paths, row.to_owned())
        })
        .collect()
}

/// Whether the code map leads to `file` in one hop: a row names it, or a row names its
/// directory and, in its text, the file (`name.rs`, or the directory alone for `mod.rs`).
fn mapped(rows: &[(Vec<String>, String)], file: &str) -> bool {
    rows.iter().any(|(paths, row)| {
        paths.iter().any(|p| {
            if p == file {
                return true;
            }
            let Some(rest) = p
                .ends_with('/')
                .then(|| file.strip_prefix(p.as_str()))
                .flatten()
            else {
                return false;
            };
            rest == "mod.rs" || row.contains(&format!("`{rest}`"))
        })
    })
}

#[test]
fn every_source_file_is_on_the_code_map() {
    let rows = code_map_rows(&architecture());
    let missing: Vec<String> = rust_files("src")
        .into_iter()
        .filter(|f| f != "src/lib.rs" && !mapped(&rows, f))
        .collect();
    assert!(
        missing.is_empty(),
        "files under src/ that ARCHITECTURE.md's code map does not lead to: name each in a \
         row (its path, or its directory in the first cell and `file.rs` in the text):\n{}",
        missing.join("\n")
    );
}

/// The dependency names of Cargo.toml's `[dependencies]` and `[dev-dependencies]`.
fn dependencies() -> BTreeSet<String> {
    let manifest = fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let mut names = BTreeSet::new();
    let mut in_deps = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]" || line == "[dev-dependencies]";
            continue;
        }
        if in_deps && !line.is_empty() && !line.starts_with('#') {
            if let Some((name, _)) = line.split_once('=') {
                names.insert(name.trim().to_owned());
            }
        }
    }
    names
}

/// `rustls (ring, as sqlx uses)` -> `rustls `: a note in parentheses names no crate.
fn without_parentheses(text: &str) -> String {
    let mut depth = 0usize;
    text.chars()
        .filter(|c| {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                _ => return depth == 0,
            }
            false
        })
        .collect()
}

#[test]
fn every_dependency_says_why_it_is_there() {
    let doc = architecture();
    let section = doc
        .split("\n## Dependencies and why")
        .nth(1)
        .expect("ARCHITECTURE.md has a `## Dependencies and why` section");
    let section = section.split("\n## ").next().unwrap();
    let listed: BTreeSet<String> = section
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|---") && !l.starts_with("| crate"))
        .flat_map(|row| {
            let first = without_parentheses(row.split('|').nth(1).unwrap_or_default());
            first
                .split(',')
                .filter_map(|c| c.split_whitespace().next().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect();
    let missing: Vec<String> = dependencies().difference(&listed).cloned().collect();
    assert!(
        missing.is_empty(),
        "Cargo.toml dependencies missing from ARCHITECTURE.md's dependency table (add a row \
         saying why): {missing:?}"
    );
    let stale: Vec<String> = listed.difference(&dependencies()).cloned().collect();
    assert!(
        stale.is_empty(),
        "ARCHITECTURE.md's dependency table names crates Cargo.toml no longer has: {stale:?}"
    );
}

/// Which top-level modules each top-level module imports through `crate::` paths, unit
/// tests left out.
fn module_imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files("src") {
        let rel = file.strip_prefix("src/").unwrap();
        let top = rel.split('/').next().unwrap().trim_end_matches(".rs");
        if top == "main" || top == "lib" {
            continue;
        }
        let code = code_of(&file);
        let entry = imports.entry(top.to_owned()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                .collect();
            if !name.is_empty() && name != top {
                entry.insert(name);
            }
        }
    }
    let known: BTreeSet<String> = imports.keys().cloned().collect();
    for targets in imports.values_mut() {
        targets.retain(|t| known.contains(t));
    }
    imports
}

/// Every circle, as `a -> b -> a`.
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
        found: &mut BTreeSet<String>,
    ) {
        state.insert(m.to_owned(), 1);
        stack.push(m.to_owned());
        for n in &edges[m] {
            match state.get(n) {
                Some(1) => {
                    let start = stack.iter().position(|s| s == n).unwrap();
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(n.clone());
                    found.insert(cycle.join(" -> "));
                }
                None => visit(n, edges, state, stack, found),
                _ => {}
            }
        }
        stack.pop();
        state.insert(m.to_owned(), 2);
    }
    let mut state = BTreeMap::new();
    let mut found = BTreeSet::new();
    for m in edges.keys() {
        if !state.contains_key(m) {
            visit(m, edges, &mut state, &mut Vec::new(), &mut found);
        }
    }
    found
}

#[test]
fn modules_import_each_other_one_way_only() {
    let found = circles(&module_imports());
    assert!(
        found.is_empty(),
        "modules of src/ import each other in a circle; move the shared piece to a module \
         both import, or pass it in:\n{}",
        found.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_circle_check_sees_a_circle() {
    // The check itself must be able to fail: a -> b -> a is found, a -> b -> c is not.
    let edges = |pairs: &[(&str, &str)]| {
        let mut e: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in pairs {
            e.entry((*a).to_owned())
                .or_default()
                .insert((*b).to_owned());
            e.entry((*b).to_owned()).or_default();
        }
        e
    };
    assert_eq!(
        circles(&edges(&[("a", "b"), ("b", "a")])),
        BTreeSet::from(["a -> b -> a".to_owned()])
    );
    assert!(circles(&edges(&[("a", "b"), ("b", "c")])).is_empty());
}

#[test]
fn code_of_leaves_out_comments_strings_and_unit_tests() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.rs");
    fs::write(
        &file,
        "use crate::real;\n// crate::comment\nconst S: &str = \"crate::string {\";\n\
         #[cfg(test)]\nmod tests {\n    use crate::testonly;\n    fn f() { let _ = '{'; }\n}\n\
         fn after() { crate::after(); }\n",
    )
    .unwrap();
    // code_of reads relative to the crate root; an absolute path joins as itself.
    let code = code_of(file.to_str().unwrap());
    assert!(code.contains("crate::real"), "{code}");
    assert!(code.contains("crate::after"), "{code}");
    assert!(!code.contains("crate::comment"), "{code}");
    assert!(!code.contains("crate::string"), "{code}");
    assert!(!code.contains("crate::testonly"), "{code}");
}
