//! Keeps the house as docs/ARCHITECTURE.md draws it: no module of host/src imports from a
//! layer above its own or from another module of its own layer, and there is no import
//! circle among the files of host/src.
//!
//! The sources are read with a small parser of its own (standard library only): comments,
//! string literals and `#[cfg(test)]` code are dropped, then `use` trees and `crate::`,
//! `super::`, `self::` and (in the binary) `mailpipe::` paths are resolved to the longest
//! prefix that is a module, i.e. a file. Set ARCHITECTURE_PRINT=1 to print the graphs.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// The top-level modules of host/src and their layers. A module may import from its own
/// top-level module and from lower layers only. Keep in step with docs/ARCHITECTURE.md.
/// `main.rs` and `cli/` (the binary) are the group `cli`; the crate root `lib.rs` is exempt.
#[rustfmt::skip]
const LAYERS: &[(&str, u32)] = &[
    ("model", 0), ("clock", 0), ("contract", 0),
    ("config", 1), ("net", 1),
    ("message", 2), ("state", 2),
    ("plugin", 3), ("actions", 3),
    ("pipeline", 4),
    ("sink", 5), ("source", 5),
    ("telemetry", 6), ("report", 6),
    ("run", 7),
    ("cli", 8),
];

/// Module → the modules it imports. Modules are named by path: `a::b` for `a/b.rs` or
/// `a/b/mod.rs`, "" for `lib.rs`, `main` for `main.rs` (the binary's root).
type Graph = BTreeMap<String, Set>;
type Set = BTreeSet<String>;

const CFG_TEST: [&str; 7] = ["#", "[", "cfg", "(", "test", ")", "]"];
const INNER_CFG_TEST: [&str; 8] = ["#", "!", "[", "cfg", "(", "test", ")", "]"];

#[test]
fn the_module_graph_has_no_upward_import_and_no_circle() {
    let src = src_dir();
    let (files, graph) = module_graph(&src);
    let edges: usize = graph.values().map(BTreeSet::len).sum();
    assert!(
        edges > 50,
        "only {edges} imports found in {}: is the parser broken?",
        src.display()
    );
    if std::env::var_os("ARCHITECTURE_PRINT").is_some() {
        print_graphs(&graph);
    }
    let mut errors = layer_violations(&files, &graph);
    for circle in circles(&graph) {
        let example = shortest_cycle(&graph, &circle).join(" -> ");
        errors.push(format!(
            "import circle among {} modules: {}\n    e.g. {example}",
            circle.len(),
            circle.join(", ")
        ));
    }
    assert!(
        errors.is_empty(),
        "{} architecture violation(s) (see docs/ARCHITECTURE.md):\n{}\n",
        errors.len(),
        errors.join("\n")
    );
}

fn src_dir() -> PathBuf {
    option_env!("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(file!()).parent().unwrap().join("../host"))
        .join("src")
}

/// Module → file (relative to `src`), and the import graph without test-only files and
/// without containment edges (a module using its own descendants).
fn module_graph(src: &Path) -> (BTreeMap<String, String>, Graph) {
    let mut paths = Vec::new();
    rs_files(src, &mut paths);
    let mut files = BTreeMap::new();
    for path in &paths {
        let rel = path.strip_prefix(src).unwrap();
        files.insert(module_of(rel), rel.display().to_string());
    }
    let modules: Set = files.keys().cloned().collect();
    let (mut graph, mut test_only) = (Graph::new(), Vec::new());
    for (module, rel) in &files {
        let path = src.join(rel);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (refs, test_mods) = references(&text, module, &modules);
        test_only.extend(test_mods.iter().map(|name| child(module, name)));
        let deps = refs.into_iter().filter(|r| !is_descendant(module, r));
        graph.insert(module.clone(), deps.collect());
    }
    let is_test = |m: &str| {
        test_only
            .iter()
            .any(|t| m == t || m.starts_with(&format!("{t}::")))
    };
    files.retain(|m, _| !is_test(m));
    graph.retain(|m, _| !is_test(m));
    for deps in graph.values_mut() {
        deps.retain(|m| !is_test(m));
    }
    (files, graph)
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rs_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn module_of(rel: &Path) -> String {
    if rel == Path::new("lib.rs") {
        return String::new();
    }
    let mut segs: Vec<String> = rel
        .with_extension("")
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    if segs.last().is_some_and(|s| s == "mod") {
        segs.pop();
    }
    segs.join("::")
}

fn is_bin(module: &str) -> bool {
    module == "main" || module == "cli" || module.starts_with("cli::")
}

fn group(module: &str) -> &str {
    if module == "main" {
        return "cli";
    }
    module.split("::").next().unwrap()
}

fn child(module: &str, name: &str) -> String {
    if module.is_empty() || module == "main" {
        name.to_string()
    } else {
        format!("{module}::{name}")
    }
}

fn is_descendant(module: &str, other: &str) -> bool {
    module.is_empty()
        || (module == "main" && is_bin(other))
        || other.starts_with(&format!("{module}::"))
}

fn is_ident(token: &str) -> bool {
    token.starts_with(|c: char| c.is_alphabetic() || c == '_')
}

/// The modules a file's non-test code refers to, and the names of the child modules it
/// declares test-only (`#[cfg(test)] mod tests;`).
fn references(src: &str, here: &str, modules: &Set) -> (Set, Vec<String>) {
    let (t, test_mods) = drop_test_code(&tokens(&strip(src)));
    let mut paths = Vec::new();
    let mut i = 0;
    while i < t.len() {
        let path_start = matches!(t[i].as_str(), "crate" | "super" | "self" | "mailpipe")
            && t.get(i + 1).is_some_and(|s| s == "::")
            && (i == 0 || t[i - 1] != "::");
        if t[i] == "use" {
            i += 1;
            let mut out = Vec::new();
            use_tree(&t, &mut i, Vec::new(), &mut out);
            paths.extend(out.into_iter().map(|p| (p, true)));
        } else if path_start {
            let mut path = vec![t[i].clone()];
            i += 1;
            while t.get(i).is_some_and(|s| s == "::") && t.get(i + 1).is_some_and(|s| is_ident(s)) {
                path.push(t[i + 1].clone());
                i += 2;
            }
            paths.push((path, false));
        } else {
            i += 1;
        }
    }
    let refs = paths
        .iter()
        .filter_map(|(p, in_use)| resolve(p, here, modules, *in_use));
    (refs.collect(), test_mods)
}

/// The source with comments, string literals and char literals removed (strings become
/// `""`), so that only code is left.
fn strip(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        let raw_hashes = c[i + 1..].iter().take_while(|&&h| h == '#').count();
        if at(i) == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if at(i) == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if at(i) == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 1;
                } else if at(i) == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 1;
                }
                i += 1;
                if depth == 0 {
                    break;
                }
            }
            out.push(' ');
        } else if at(i) == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if at(i) == 'r' && at(i + 1 + raw_hashes) == '"' {
            // r"..." or r#"..."#: ends at a quote followed by as many hashes.
            i += raw_hashes + 2;
            while i < c.len() && !(c[i] == '"' && (1..=raw_hashes).all(|k| at(i + k) == '#')) {
                i += 1;
            }
            i += raw_hashes + 1;
            out.push_str("\"\"");
        } else if at(i) == '\'' && at(i + 1) == '\\' {
            i += 3; // '\n', '\'', '\u{..}': the quote after the escaped char ends it
            while i < c.len() && c[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if at(i) == '\'' && at(i + 2) == '\'' {
            i += 3; // 'x' (a lifetime 'a has no closing quote)
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// Identifiers (and numbers), `::`, and single punctuation characters.
fn tokens(code: &str) -> Vec<String> {
    let c: Vec<char> = code.chars().collect();
    let word = |ch: char| ch.is_alphanumeric() || ch == '_';
    let (mut out, mut i) = (Vec::new(), 0);
    while i < c.len() {
        let start = i;
        if word(c[i]) {
            while i < c.len() && word(c[i]) {
                i += 1;
            }
        } else if c[i] == ':' && c.get(i + 1) == Some(&':') {
            i += 2;
        } else {
            i += 1;
            if c[start].is_whitespace() {
                continue;
            }
        }
        out.push(c[start..i].iter().collect());
    }
    out
}

/// The tokens without the items marked `#[cfg(test)]`, and the names of the modules
/// declared test-only without a body (`#[cfg(test)] mod tests;`).
fn drop_test_code(t: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut keep, mut test_mods) = (Vec::new(), Vec::new());
    if t.windows(INNER_CFG_TEST.len()).any(|w| w == INNER_CFG_TEST) {
        return (keep, test_mods); // #![cfg(test)]: the whole file
    }
    let mut i = 0;
    while i < t.len() {
        if !t.get(i..i + CFG_TEST.len()).is_some_and(|w| w == CFG_TEST) {
            keep.push(t[i].clone());
            i += 1;
            continue;
        }
        // The item, with any further attributes: through its `;` or its closing brace.
        let (item, mut depth) = (i + CFG_TEST.len(), 0);
        i = item;
        while let Some(token) = t.get(i) {
            i += 1;
            match token.as_str() {
                "(" | "[" | "{" => depth += 1,
                ")" | "]" => depth -= 1,
                "}" if depth == 1 => break,
                "}" => depth -= 1,
                ";" if depth == 0 => break,
                _ => {}
            }
        }
        if let [.., m, name, semi] = &t[item..i] {
            if m == "mod" && semi == ";" {
                test_mods.push(name.clone());
            }
        }
    }
    (keep, test_mods)
}

/// The full paths of the `use` tree at `t[*i]`: `a::{b, c::{self, D as E}}` gives `a::b`,
/// `a::c::self` and `a::c::D`.
fn use_tree(t: &[String], i: &mut usize, mut path: Vec<String>, out: &mut Vec<Vec<String>>) {
    while let Some(token) = t.get(*i) {
        *i += 1;
        match token.as_str() {
            "::" => continue,
            "*" => {}
            "{" => {
                while *i < t.len() && t[*i] != "}" {
                    let before = *i;
                    use_tree(t, i, path.clone(), out);
                    if t.get(*i).is_some_and(|s| s == ",") {
                        *i += 1;
                    } else if *i == before {
                        break;
                    }
                }
                *i += 1;
                return;
            }
            word if is_ident(word) => {
                path.push(word.to_string());
                if t.get(*i).is_some_and(|s| s == "::") {
                    continue;
                }
                if t.get(*i).is_some_and(|s| s == "as") {
                    *i += 2;
                }
            }
            _ => *i -= 1,
        }
        break;
    }
    out.push(path);
}

/// The module a path refers to: the longest prefix that is a module. None for paths that
/// leave the crate, and for the crate roots and `here` itself.
fn resolve(path: &[String], here: &str, modules: &Set, in_use: bool) -> Option<String> {
    let exists = |segs: &[String], bin: bool| {
        let key = segs.join("::");
        is_bin(&key) == bin && modules.contains(&key)
    };
    let mut bin = is_bin(here);
    let mut base: Vec<String> = match here {
        "" | "main" => Vec::new(),
        _ => here.split("::").map(String::from).collect(),
    };
    let first = path.first()?;
    let mut rest = &path[1..];
    match first.as_str() {
        "crate" => base.clear(),
        "mailpipe" if bin => {
            base.clear();
            bin = false;
        }
        "self" => {}
        "super" => {
            rest = path;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        _ if in_use && exists(&[base.clone(), vec![first.clone()]].concat(), bin) => rest = path,
        _ => return None,
    }
    for seg in rest {
        base.push(seg.clone());
        if !exists(&base, bin) {
            base.pop();
            break;
        }
    }
    let module = base.join("::");
    (!module.is_empty() && module != here).then_some(module)
}

fn layer_of(group: &str) -> Option<u32> {
    LAYERS
        .iter()
        .find(|(g, _)| *g == group)
        .map(|(_, layer)| *layer)
}

/// Imports from a higher layer or from another group of the same layer, and groups in no
/// layer; sorted.
fn layer_violations(files: &BTreeMap<String, String>, graph: &Graph) -> Vec<String> {
    let mut errors = BTreeSet::new();
    for (from, deps) in graph {
        let g = group(from);
        if g.is_empty() {
            continue; // the crate root
        }
        let Some(layer) = layer_of(g) else {
            errors.insert(format!(
                "host/src/{g} is in no layer: add it to LAYERS and docs/ARCHITECTURE.md"
            ));
            continue;
        };
        for to in deps.iter().filter(|to| group(to) != g) {
            // A group in no layer is reported on its own.
            if let Some(to_layer) = layer_of(group(to)).filter(|&l| l >= layer) {
                errors.insert(format!(
                    "host/src/{}: {from} (layer {layer}) imports {to} (layer {to_layer})",
                    files[from]
                ));
            }
        }
    }
    errors.into_iter().collect()
}

/// The strongly connected components of more than one module (Kosaraju), each sorted.
fn circles(graph: &Graph) -> Vec<Vec<String>> {
    fn visit<'g>(g: &'g Graph, v: &'g str, seen: &mut BTreeSet<&'g str>, out: &mut Vec<&'g str>) {
        if seen.insert(v) {
            for w in g.get(v).into_iter().flatten() {
                visit(g, w, seen, out);
            }
            out.push(v);
        }
    }
    let mut reverse = Graph::new();
    for (v, deps) in graph {
        for w in deps {
            reverse.entry(w.clone()).or_default().insert(v.clone());
        }
    }
    let (mut seen, mut order) = (BTreeSet::new(), Vec::new());
    for v in graph.keys() {
        visit(graph, v, &mut seen, &mut order);
    }
    let (mut seen, mut found) = (BTreeSet::new(), Vec::new());
    for v in order.into_iter().rev() {
        let mut component = Vec::new();
        visit(&reverse, v, &mut seen, &mut component);
        if component.len() > 1 {
            found.push(Vec::from_iter(component.iter().map(|m| m.to_string())));
        }
    }
    found.iter_mut().for_each(|c| c.sort());
    found.sort();
    found
}

/// A shortest circle through the first module of `component`, as a path back to it.
fn shortest_cycle(graph: &Graph, component: &[String]) -> Vec<String> {
    let start = component[0].as_str();
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for w in graph[v].iter().filter(|w| component.contains(w)) {
            if !came_from.contains_key(w.as_str()) {
                came_from.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    let (mut path, mut v) = (vec![start.to_string()], start);
    while let Some(&prev) = came_from.get(v) {
        path.push(prev.to_string());
        v = prev;
        if v == start {
            break;
        }
    }
    path.reverse();
    path
}

fn print_graphs(graph: &Graph) {
    let mut groups: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (from, deps) in graph.iter().filter(|(m, _)| !m.is_empty()) {
        let g = group(from);
        let others = deps.iter().map(|d| group(d)).filter(|d| *d != g);
        groups.entry(g).or_default().extend(others);
    }
    println!("# groups");
    for (g, deps) in &groups {
        println!("{g} -> {}", Vec::from_iter(deps.iter().copied()).join(" "));
    }
    println!("# files");
    for (from, deps) in graph {
        for to in deps {
            println!("{from} -> {to}");
        }
    }
}

#[cfg(test)]
mod parser {
    use super::*;

    fn refs(src: &str, here: &str, modules: &[&str]) -> Vec<String> {
        let modules = modules.iter().map(|m| m.to_string()).collect();
        references(src, here, &modules).0.into_iter().collect()
    }

    #[test]
    fn grouped_nested_use_trees_are_expanded() {
        let t = tokens("super::{self, x::{Y, z as W}, *};");
        let mut out = Vec::new();
        use_tree(&t, &mut 0, Vec::new(), &mut out);
        let paths: Vec<String> = out.iter().map(|p| p.join("::")).collect();
        assert_eq!(
            paths,
            ["super::self", "super::x::Y", "super::x::z", "super"]
        );
        let src = "pub(crate) use crate::{config::{Auth, Secret}, net::tls};";
        let modules = ["", "config", "net", "net::tls", "pipeline"];
        assert_eq!(refs(src, "pipeline", &modules), ["config", "net::tls"]);
        let src = "pub use decision::Decision;\nuse commit::x;\nuse std::sync::Arc;";
        let modules = ["pipeline", "pipeline::commit", "pipeline::decision"];
        assert_eq!(
            refs(src, "pipeline", &modules),
            ["pipeline::commit", "pipeline::decision"]
        );
        let src = "use mailpipe::config::Config; fn f() { crate::cli::test::run() }";
        assert_eq!(
            refs(src, "main", &["config", "cli", "cli::test", "main"]),
            ["cli::test", "config"]
        );
    }

    #[test]
    fn comments_strings_and_chars_are_not_code() {
        let src = r##"
            //! crate::a in a doc comment
            /// crate::a
            /* crate::a /* nested */ crate::a */
            fn f<'a>(x: &'a str) -> char {
                let _ = ("crate::a", "\"crate::a", r#"crate::a"#, b"crate::a", '"', '\'');
                crate::b::f(); // crate::a
                '{'
            }
        "##;
        assert_eq!(refs(src, "c", &["a", "b", "c"]), ["b"]);
    }

    #[test]
    fn cfg_test_items_are_dropped() {
        let src = "use crate::a;\n#[cfg(test)]\nmod tests {\n use crate::b;\n fn f() { crate::b::g() }\n}\nfn h() { crate::c::i() }";
        assert_eq!(refs(src, "m", &["a", "b", "c", "m"]), ["a", "c"]);
        let src = "#[cfg(test)]\n#[path = \"x\"]\npub mod tests;\n#[cfg(test)] use crate::b;";
        let modules = ["b", "m"].iter().map(|m| m.to_string()).collect();
        assert_eq!(
            references(src, "m", &modules),
            (BTreeSet::new(), vec!["tests".to_string()])
        );
        assert!(refs("#![cfg(test)]\nuse crate::a;", "m", &["a", "m"]).is_empty());
    }

    #[test]
    fn super_depends_on_whether_the_file_is_a_mod_rs() {
        let modules = ["", "a", "a::b", "a::c", "d"];
        assert_eq!(module_of(Path::new("a/mod.rs")), "a");
        assert_eq!(module_of(Path::new("a/b.rs")), "a::b");
        assert_eq!(refs("use super::d::X;", "a", &modules), ["d"]);
        assert_eq!(refs("use super::c::X;", "a::b", &modules), ["a::c"]);
        assert_eq!(
            refs(
                "fn f() { super::super::d::g(); super::X }",
                "a::b",
                &modules
            ),
            ["a", "d"]
        );
        assert_eq!(
            refs("use super::{self, c};", "a::b", &modules),
            ["a", "a::c"]
        );
        assert!(refs("use super::X; use crate::Y;", "a", &modules).is_empty());
    }

    #[test]
    fn circles_are_the_strongly_connected_components() {
        let edges = [
            ("a", "b"),
            ("b", "c"),
            ("c", "a"),
            ("c", "d"),
            ("d", "e"),
            ("e", "d"),
            ("f", "a"),
        ];
        let mut graph = Graph::new();
        for (from, to) in edges {
            graph
                .entry(from.to_string())
                .or_default()
                .insert(to.to_string());
            graph.entry(to.to_string()).or_default();
        }
        assert_eq!(circles(&graph), [vec!["a", "b", "c"], vec!["d", "e"]]);
        assert_eq!(
            shortest_cycle(&graph, &["a".into(), "b".into(), "c".into()]),
            ["a", "b", "c", "a"]
        );
    }
}
