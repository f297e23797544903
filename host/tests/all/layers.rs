//! The host's layers only point down: a module may use modules of its own
//! layer or below, never above, and no two top-level modules may import
//! each other (directly or through others). The map is
//! `docs/architecture.md`'s table, read from there, so the picture and the
//! check cannot drift apart.
//!
//! Imports are read from the code with comments and literals removed, as
//! paths: `crate::…` (and `$crate::…`), braced groups nested and over
//! several lines, `super::…` chains that climb to the crate root, and items
//! the crate root re-exports (`crate::Host` is the runtime's).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `module → layer` from the table in docs/architecture.md: rows of the
/// form `| <layer> | <name> | `module`, `module`, … | … |`.
fn layer_map() -> BTreeMap<String, u32> {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/architecture.md");
    let text = std::fs::read_to_string(&doc).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(layer) = cells.get(1).and_then(|c| c.parse::<u32>().ok()) else { continue };
        let Some(modules) = cells.get(3) else { continue };
        for module in modules.split(',').map(|m| m.trim().trim_matches('`')).filter(|m| !m.is_empty()) {
            assert!(map.insert(module.to_owned(), layer).is_none(), "{module} is in two layers");
        }
    }
    assert!(map.len() > 10, "no layer table found in {}", doc.display());
    map
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `host/src` belongs to.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// How deep a file's module sits below the crate root: `a.rs` and
/// `a/mod.rs` are 1, `a/b.rs` is 2.
fn depth_of(src: &Path, file: &Path) -> usize {
    let parts = file.strip_prefix(src).unwrap().components().count();
    if file.file_name().is_some_and(|n| n == "mod.rs") { parts - 1 } else { parts }
}

/// A token of Rust code: an identifier, or one punctuation character
/// (`::` is two `:`), with its line.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Punct(char),
}

/// The tokens of `text`, without comments and with every string, byte
/// string, raw string and char literal replaced by nothing, so that a
/// path inside one is never read as an import.
fn tokens(text: &str) -> Vec<(Token, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            loop {
                if i >= chars.len() {
                    break;
                }
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if c == 'r'
            && (at(i + 1) == '"' || (at(i + 1) == '#' && (at(i + 2) == '"' || at(i + 2) == '#')))
        {
            // r"…", r#"…"#: ends at a quote followed by as many #.
            let mut hashes = 0;
            i += 1;
            while at(i) == '#' {
                hashes += 1;
                i += 1;
            }
            i += 1;
            while i < chars.len() {
                if chars[i] == '"' && (0..hashes).all(|k| at(i + 1 + k) == '#') {
                    i += 1 + hashes;
                    break;
                }
                if chars[i] == '\n' {
                    line += 1;
                }
                i += 1;
            }
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if at(i) == '\n' {
                    line += 1;
                }
                i += 1;
            }
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}'), else a lifetime ('a).
            if at(i + 1) == '\\' {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // b"…" and br"…": the prefix, then the literal as above.
            if (word == "b" || word == "br") && (at(i) == '"' || at(i) == '#') {
                if word == "br" {
                    i -= 1;
                }
                continue;
            }
            out.push((Token::Ident(word), line));
        } else if c.is_whitespace() {
            i += 1;
        } else {
            out.push((Token::Punct(c), line));
            i += 1;
        }
    }
    out
}

fn is_path_sep(tokens: &[(Token, usize)], i: usize) -> bool {
    matches!(tokens.get(i), Some((Token::Punct(':'), _)))
        && matches!(tokens.get(i + 1), Some((Token::Punct(':'), _)))
}

/// The first names of the paths that start at `i` (just after a `::`): one
/// name, or each entry's first name in a braced group (nested groups are
/// skipped over). `*` stands for a glob.
fn first_names(tokens: &[(Token, usize)], i: usize) -> Vec<(String, usize)> {
    match tokens.get(i) {
        Some((Token::Ident(name), line)) => vec![(name.clone(), *line)],
        Some((Token::Punct('*'), line)) => vec![("*".to_owned(), *line)],
        Some((Token::Punct('{'), _)) => {
            let mut names = Vec::new();
            let (mut depth, mut j, mut entry_start) = (0, i, true);
            while j < tokens.len() {
                match &tokens[j].0 {
                    Token::Punct('{') => {
                        depth += 1;
                        entry_start = depth == 1;
                    }
                    Token::Punct('}') => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Token::Punct(',') if depth == 1 => entry_start = true,
                    Token::Ident(name) if entry_start && depth == 1 => {
                        if name != "self" {
                            names.push((name.clone(), tokens[j].1));
                        }
                        entry_start = false;
                    }
                    Token::Punct('*') if entry_start && depth == 1 => {
                        names.push(("*".to_owned(), tokens[j].1));
                        entry_start = false;
                    }
                    _ => {}
                }
                j += 1;
            }
            names
        }
        _ => Vec::new(),
    }
}

/// The crate-root names a file of module depth `depth` uses, with lines:
/// after `crate::` (or `$crate::`), and after `super::` chains that climb
/// to the root (inline `mod x { … }` blocks count one level deeper).
fn uses(text: &str, depth: usize) -> Vec<(String, usize)> {
    let tokens = tokens(text);
    let mut found = Vec::new();
    // Brace depths at which inline modules opened.
    let mut inline: Vec<usize> = Vec::new();
    let mut braces = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i].0 {
            Token::Punct('{') => braces += 1,
            Token::Punct('}') => {
                braces = braces.saturating_sub(1);
                if inline.last() == Some(&braces) {
                    inline.pop();
                }
            }
            Token::Ident(word)
                if word == "mod"
                    && matches!(tokens.get(i + 1), Some((Token::Ident(_), _)))
                    && matches!(tokens.get(i + 2), Some((Token::Punct('{'), _))) =>
            {
                inline.push(braces);
            }
            Token::Ident(word) if word == "crate" && is_path_sep(&tokens, i + 1) => {
                found.extend(first_names(&tokens, i + 3));
            }
            Token::Ident(word) if word == "super" => {
                let preceded = i >= 2 && is_path_sep(&tokens, i - 2);
                if !preceded {
                    let mut j = i;
                    let mut climbs = 0;
                    while matches!(&tokens.get(j), Some((Token::Ident(w), _)) if w == "super")
                        && is_path_sep(&tokens, j + 1)
                    {
                        climbs += 1;
                        j += 3;
                    }
                    if climbs > 0 && climbs >= depth + inline.len() {
                        found.extend(first_names(&tokens, j));
                    }
                    i = j.max(i + 1);
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// Items the crate root re-exports (`pub use runtime::{Host, …}` in
/// lib.rs), by the module they come from.
fn root_exports(lib: &str) -> BTreeMap<String, String> {
    let tokens = tokens(lib);
    let mut map = BTreeMap::new();
    for i in 0..tokens.len() {
        let is_pub_use = tokens[i].0 == Token::Ident("pub".into())
            && tokens.get(i + 1).map(|t| &t.0) == Some(&Token::Ident("use".into()));
        let Some((Token::Ident(module), _)) = tokens.get(i + 2) else { continue };
        if !is_pub_use {
            continue;
        }
        // Every name up to the `;`, the last of each entry (or its alias).
        let mut j = i + 3;
        let mut last: Option<String> = None;
        while j < tokens.len() && tokens[j].0 != Token::Punct(';') {
            match &tokens[j].0 {
                Token::Ident(name) if name != "as" && name != "self" => last = Some(name.clone()),
                Token::Punct(',') | Token::Punct('}') => {
                    if let Some(name) = last.take() {
                        map.insert(name, module.clone());
                    }
                }
                _ => {}
            }
            j += 1;
        }
        if let Some(name) = last {
            map.insert(name, module.clone());
        }
    }
    map
}

/// Each top-level module of `host/src` with what it uses: (used module,
/// file, line), crate-root re-exports resolved to their module.
fn module_uses() -> Vec<(String, String, String, usize)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let exports = root_exports(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let mut all = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        let text = std::fs::read_to_string(file).unwrap();
        for (name, line) in uses(&text, depth_of(&src, file)) {
            let used = if name == "*" || modules.contains(&name) {
                name
            } else if let Some(from) = exports.get(&name) {
                from.clone()
            } else {
                continue;
            };
            let shown = file.strip_prefix(&src).unwrap().display().to_string();
            all.push((module.clone(), used, shown, line));
        }
    }
    all
}

#[test]
fn no_module_imports_from_a_layer_above_its_own() {
    let map = layer_map();
    let top = map.values().copied().max().unwrap();
    let mut upward = Vec::new();
    for (module, used, file, line) in module_uses() {
        let Some(&own) = map.get(&module) else {
            panic!("host/src/{file} is in no layer of docs/architecture.md");
        };
        // A glob of the crate root takes everything, the top layer included.
        let theirs = if used == "*" { top } else { map.get(&used).copied().unwrap_or(own) };
        if theirs > own {
            upward.push(format!("{file}:{line}: `{module}` (layer {own}) uses `{used}` (layer {theirs})"));
        }
    }
    assert!(upward.is_empty(), "{} upward imports:\n{}", upward.len(), upward.join("\n"));
}

/// Which top-level modules each top-level module of `host/src` uses.
fn module_graph() -> BTreeMap<String, Vec<String>> {
    let mut graph: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (module, used, _, _) in module_uses() {
        let edges = graph.entry(module.clone()).or_default();
        if used != module && used != "*" && !edges.contains(&used) {
            edges.push(used);
        }
    }
    graph
}

#[test]
fn the_import_reader_sees_what_rustfmt_and_macros_write() {
    let names =
        |text: &str, depth: usize| -> Vec<String> { uses(text, depth).into_iter().map(|(n, _)| n).collect() };
    // Over several lines, and nested.
    assert_eq!(
        names("use crate::{\n    runtime::X,\n    governance::{A, B},\n};", 1),
        ["runtime", "governance"]
    );
    assert_eq!(names("use crate::{governance::{A, B}, runtime::Host};", 1), ["governance", "runtime"]);
    // Not inside a comment or a literal; and a `//` in a string hides nothing.
    assert!(
        names("// crate::runtime\n/* crate::runtime /* nested */ */ let s = \"crate::runtime\";", 1)
            .is_empty()
    );
    assert_eq!(names("let url = \"https://x\"; let y = crate::runtime::Host::new;", 1), ["runtime"]);
    assert_eq!(
        names(
            "let s = r#\"crate::audit \"quoted\"\"#; fn f<'a>(x: &'a str) -> char { '{' } use crate::runtime::X;",
            1
        ),
        ["runtime"]
    );
    // `super` climbing to the root counts; within its own module it does not.
    assert_eq!(names("use super::super::runtime::X;", 2), ["runtime"]);
    assert_eq!(names("use super::runtime::X;", 1), ["runtime"]);
    assert!(names("use super::sibling::X;", 2).is_empty());
    assert!(names("mod tests { use super::super::X; }", 2).is_empty());
    assert_eq!(names("mod tests { use super::super::super::runtime::X; }", 2), ["runtime"]);
    // Macros and globs.
    assert_eq!(names("macro_rules! m { () => { $crate::runtime::X } }", 1), ["runtime"]);
    assert_eq!(names("use crate::*;", 1), ["*"]);
    // Items the crate root re-exports are found by the module they come from.
    let exports = root_exports("pub use runtime::{CallOptions, Host as H};\npub use vocab::World;\nmod x;");
    assert_eq!(exports.get("H").map(String::as_str), Some("runtime"));
    assert_eq!(exports.get("CallOptions").map(String::as_str), Some("runtime"));
    assert_eq!(exports.get("World").map(String::as_str), Some("vocab"));
}

/// A cycle through the graph, if there is one, as the modules along it.
fn find_cycle(graph: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    // 0 unvisited, 1 on the current path, 2 done.
    fn visit<'a>(
        node: &'a str,
        graph: &'a BTreeMap<String, Vec<String>>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        state.insert(node, 1);
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = path.iter().position(|n| n == next).unwrap();
                    let mut cycle: Vec<String> = path[start..].iter().map(|n| (*n).to_owned()).collect();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(cycle) = visit(next, graph, state, path) {
                        return Some(cycle);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(node, 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0
            && let Some(cycle) = visit(node, graph, &mut state, &mut Vec::new())
        {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn no_import_cycle_between_modules() {
    let graph = module_graph();
    assert!(graph.len() > 10, "no modules found");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" → "));
    }
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let graph: BTreeMap<String, Vec<String>> =
        [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec![])]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
            .collect();
    assert_eq!(find_cycle(&graph).unwrap(), ["a", "b", "c", "a"]);
    let acyclic: BTreeMap<String, Vec<String>> =
        [("a".to_owned(), vec!["b".to_owned()]), ("b".to_owned(), vec![])].into_iter().collect();
    assert_eq!(find_cycle(&acyclic), None);
}

/// The README's layout table: every path in its first column exists, and
/// every top-level module of `host/src` is in it.
#[test]
fn the_readme_layout_table_is_true() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let table = readme.split("## Layout").nth(1).expect("a Layout section").split("\n## ").next().unwrap();
    let mut named = std::collections::BTreeSet::new();
    let mut missing = Vec::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let first = row.split('|').nth(1).unwrap();
        let paths: Vec<&str> = first.split('`').skip(1).step_by(2).collect();
        // `host/src/a.rs`, `b.rs`: later names are in the first one's directory.
        let dir = Path::new(paths[0]).parent().unwrap_or(Path::new("")).to_path_buf();
        for (i, path) in paths.iter().enumerate() {
            let full = if i == 0 { PathBuf::from(path) } else { dir.join(path) };
            if !root.join(&full).exists() {
                missing.push(full.display().to_string());
            }
            if let Ok(rest) = full.strip_prefix("host/src") {
                let module = rest.to_string_lossy().trim_end_matches('/').trim_end_matches(".rs").to_owned();
                named.insert(module);
            }
        }
    }
    assert!(missing.is_empty(), "the README's layout table names paths that do not exist: {missing:?}");
    let src = root.join("host/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: std::collections::BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let unlisted: Vec<&String> = modules.iter().filter(|m| !named.contains(*m)).collect();
    assert!(unlisted.is_empty(), "host/src modules missing from the README's layout table: {unlisted:?}");
}
