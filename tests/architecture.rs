//! The dependency direction of `docs/architecture.md`, checked: the table under "Who may
//! import whom" says which top-level modules each module may import, and every reference
//! from a file of one module to another (`crate::x`, `use crate::{x, y}`, `hogtrap::x`)
//! must be in its row. A module missing from the table fails too, so a new one is added to
//! the page. `main.rs` and `lib.rs` wire everything together and are exempt; `super::`
//! never leaves a module and is not a reference.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const DOC: &str = "docs/architecture.md";
const HEADING: &str = "## Who may import whom";

/// Each module, and the modules it may import.
type Allowed = BTreeMap<String, BTreeSet<String>>;

/// Reads the `| module | may import |` table under [`HEADING`] (comma-separated, may be empty).
fn parse_table(doc: &str) -> Result<Allowed, String> {
    let mut lines = doc.lines().skip_while(|l| l.trim() != HEADING);
    if lines.next().is_none() {
        return Err(format!("{DOC} has no heading {HEADING:?}"));
    }
    let rows = lines
        .take_while(|l| !l.starts_with("## "))
        .skip_while(|l| !l.trim_start().starts_with('|'))
        .take_while(|l| l.trim_start().starts_with('|'));
    let mut allowed = Allowed::new();
    for row in rows {
        let cells: Vec<&str> = row.trim().trim_matches('|').split('|').collect();
        let [module, imports] = cells[..] else {
            return Err(format!("{DOC}: a row needs two cells: {row:?}"));
        };
        let module = module.trim().trim_matches('`');
        // The header row and the `| --- | --- |` line under it.
        if module == "module" || module.chars().all(|c| c == '-' || c == ':') {
            continue;
        }
        let imports = imports
            .split(',')
            .map(|m| m.trim().trim_matches('`').to_string())
            .filter(|m| !m.is_empty())
            .collect();
        if allowed.insert(module.to_string(), imports).is_some() {
            return Err(format!("{DOC}: {module} has two rows"));
        }
    }
    if allowed.is_empty() {
        return Err(format!("{DOC}: no table under {HEADING:?}"));
    }
    Ok(allowed)
}

/// The top-level module a file under `src/` belongs to (`src/a/b.rs` and `src/a.rs` are `a`);
/// None for `main.rs` and `lib.rs`.
fn module_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("src/")?;
    match rest.split_once('/') {
        Some((dir, _)) => Some(dir),
        None => match rest.strip_suffix(".rs")? {
            "main" | "lib" => None,
            m => Some(m),
        },
    }
}

/// The text with `//` comments blanked (doc comments and links in them are not imports);
/// lines stay where they were so positions still give line numbers.
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        // A `//` after an odd number of quotes is inside a string literal: keep looking.
        let mut cut = line.len();
        let mut from = 0;
        while let Some(i) = line[from..].find("//") {
            let at = from + i;
            if line[..at].matches('"').count() % 2 == 0 {
                cut = at;
                break;
            }
            from = at + 2;
        }
        out.push_str(&line[..cut]);
        out.push('\n');
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The identifier `s` starts with (after blanks).
fn leading_ident(s: &str) -> &str {
    let s = s.trim_start();
    &s[..s.find(|c| !is_ident(c)).unwrap_or(s.len())]
}

/// Every `(line, name)` where `text` refers to `crate::name` or `hogtrap::name`, with the
/// names in `use crate::{a, b::C}` groups (over several lines too) each on its own line.
fn references(text: &str) -> Vec<(usize, String)> {
    let text = without_comments(text);
    let line_at = |pos: usize| text[..pos].matches('\n').count() + 1;
    let mut found = Vec::new();
    for root in ["crate::", "hogtrap::"] {
        for (at, _) in text.match_indices(root) {
            if text[..at].chars().next_back().is_some_and(is_ident) {
                continue; // e.g. `my_crate::`
            }
            let after = at + root.len();
            let rest = &text[after..];
            if rest.trim_start().starts_with('{') {
                let open = after + rest.find('{').unwrap();
                // The group's items at depth 1, split at its commas.
                let mut depth = 0;
                let mut item_start = open + 1;
                for (i, c) in text[open..].char_indices() {
                    let pos = open + i;
                    match c {
                        '{' => depth += 1,
                        '}' | ',' if depth == 1 => {
                            let item = &text[item_start..pos];
                            let name = leading_ident(item);
                            if !name.is_empty() && name != "self" {
                                let offset = item.find(name).unwrap();
                                found.push((line_at(item_start + offset), name.to_string()));
                            }
                            item_start = pos + 1;
                            if c == '}' {
                                break;
                            }
                        }
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
            } else {
                let name = leading_ident(rest);
                if !name.is_empty() {
                    found.push((line_at(at), name.to_string()));
                }
            }
        }
    }
    found.sort();
    found
}

/// Every reference in `files` (path under the crate, text) that the table does not allow,
/// and every module the table lacks, one line each.
fn violations(allowed: &Allowed, files: &[(String, String)]) -> Vec<String> {
    let modules: BTreeSet<&str> = files.iter().filter_map(|(p, _)| module_of(p)).collect();
    let mut out = Vec::new();
    for m in &modules {
        if !allowed.contains_key(*m) {
            out.push(format!(
                "src/{m}: module {m} is missing from the table in {DOC}"
            ));
        }
    }
    for (path, text) in files {
        let Some(module) = module_of(path) else {
            continue;
        };
        let row = allowed.get(module);
        for (line, other) in references(text) {
            let is_module = modules.contains(other.as_str());
            let ok = other == module || row.is_some_and(|r| r.contains(&other));
            if is_module && !ok {
                out.push(format!(
                    "{path}:{line}: {module} imports {other}, not allowed by {DOC}"
                ));
            }
        }
    }
    out
}

/// Every `.rs` file under `dir`, as (path relative to `root` with `/`, text), sorted.
fn rust_files(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(root, &path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            let rel = path.strip_prefix(root).unwrap().to_string_lossy();
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push((rel.replace('\\', "/"), text));
        }
    }
}

#[test]
fn modules_import_only_what_docs_architecture_allows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join(DOC)).unwrap();
    let allowed = parse_table(&doc).unwrap_or_else(|e| panic!("{e}"));
    let mut files = Vec::new();
    rust_files(root, &root.join("src"), &mut files);
    assert!(files.len() > 10, "src/ has only {} files?", files.len());
    let found = violations(&allowed, &files);
    assert!(
        found.is_empty(),
        "{} imports against the table in {DOC}:\n{}",
        found.len(),
        found.join("\n")
    );
}

// The check itself, on small made-up inputs.

const TABLE: &str = "\
# Title

## Who may import whom

Some words.

| module | may import |
| --- | --- |
| model | |
| store | model |
| cli | `model`, store |

## Next
| other | table |
";

fn file(path: &str, text: &str) -> (String, String) {
    (path.to_string(), text.to_string())
}

#[test]
fn the_table_is_read_from_under_its_heading() {
    let t = parse_table(TABLE).unwrap();
    let row = |m: &str| t[m].iter().map(String::as_str).collect::<Vec<_>>();
    assert_eq!(t.len(), 3, "{t:?}");
    assert!(row("model").is_empty());
    assert_eq!(row("store"), ["model"]);
    assert_eq!(row("cli"), ["model", "store"]);
    assert!(parse_table("# no such heading\n| a | b |\n").is_err());
    assert!(parse_table("## Who may import whom\n\nno table\n").is_err());
    assert!(parse_table("## Who may import whom\n| a | |\n| a | b |\n").is_err());
}

#[test]
fn files_belong_to_their_top_level_module() {
    assert_eq!(module_of("src/store/mod.rs"), Some("store"));
    assert_eq!(module_of("src/store/retention/plan.rs"), Some("store"));
    assert_eq!(module_of("src/model.rs"), Some("model"));
    assert_eq!(module_of("src/main.rs"), None);
    assert_eq!(module_of("src/lib.rs"), None);
    assert_eq!(module_of("tests/x.rs"), None);
}

#[test]
fn references_are_found_in_uses_paths_and_groups() {
    let text = "\
//! Docs may name [`crate::cli`] freely.
use crate::model::Sample;
use crate::{
    store::{self, Store},
    alert,
};
use super::sibling; // crate::daemon in a comment
fn f() -> crate::report::Page {
    let s = \"http://x\"; crate::actions::run(hogtrap::rules::X)
}
mod my_crate { use other_crate::thing; }
use crate::{self as root};
";
    assert_eq!(
        references(text),
        [
            (2, "model".to_string()),
            (4, "store".to_string()),
            (5, "alert".to_string()),
            (8, "report".to_string()),
            (9, "actions".to_string()),
            (9, "rules".to_string()),
        ]
    );
}

#[test]
fn violations_name_file_line_and_the_forbidden_module() {
    let t = parse_table(TABLE).unwrap();
    let files = [
        file("src/model.rs", "use crate::store::Store;\n"),
        file(
            "src/store/mod.rs",
            "use crate::model::Sample;\nuse crate::store::x;\n",
        ),
        file("src/store/query.rs", "\nuse crate::{model, cli::Args};\n"),
        file(
            "src/cli/mod.rs",
            "use crate::{model, store};\nuse crate::Version;\n",
        ),
        file("src/daemon/mod.rs", "use crate::model::Sample;\n"),
        file("src/main.rs", "use hogtrap::{cli, daemon};\n"),
    ];
    assert_eq!(
        violations(&t, &files),
        [
            "src/daemon: module daemon is missing from the table in docs/architecture.md",
            "src/model.rs:1: model imports store, not allowed by docs/architecture.md",
            "src/store/query.rs:2: store imports cli, not allowed by docs/architecture.md",
            "src/daemon/mod.rs:1: daemon imports model, not allowed by docs/architecture.md",
        ]
    );
    let fine = [file("src/cli/mod.rs", "use crate::store;\n")];
    assert!(violations(&t, &fine).is_empty());
}
