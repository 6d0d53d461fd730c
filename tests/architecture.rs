//! Keeps the house as docs/ARCHITECTURE.md draws it: no module of host/src imports from a
//! layer above its own or from another module of its own layer, and there is no import
//! circle among the files of host/src.
//!
//! The sources are read with a small parser of its own (standard library only): comments,
//! string literals and `#[cfg(test)]` code are dropped, then `use` trees and `crate::`,
//! `super::`, `self::` and (in the binary) `mailpipe::` paths are resolved to the longest
//! prefix that is a module, i.e. a file. Set ARCHITECTURE_PRINT=1 to print the graphs.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf, MAIN_SEPARATOR};

/// The top-level modules of host/src and their layers. A module may import from its own
/// top-level module and from lower layers only. Keep in step with docs/ARCHITECTURE.md.
/// `main.rs` and `cli/` (the binary) are the group `cli`; the crate root `lib.rs` is exempt.
#[rustfmt::skip]
const LAYERS: &[(&str, u32)] = &[
    ("model", 0), ("clock", 0), ("contract", 0),
    ("config", 1), ("net", 1),
    ("message", 2), ("state", 2),
    ("plugin", 3), ("actions", 3), ("source", 3), ("sink", 3),
    ("pipeline", 4),
    ("telemetry", 5), ("report", 5), ("serve", 5),
    ("run", 6),
    ("cli", 7),
];

/// Module → the modules it imports. Modules are named by path: `a::b` for `a/b.rs` or
/// `a/b/mod.rs`, "" for `lib.rs`, `main` for `main.rs` (the binary's root).
type Graph = BTreeMap<String, Set>;
type Set = BTreeSet<String>;

const CFG_TEST: [&str; 7] = ["#", "[", "cfg", "(", "test", ")", "]"];

#[test]
fn the_module_graph_has_no_upward_import_and_no_circle() {
    let src = option_env!("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(file!()).parent().unwrap().join("../host"))
        .join("src");
    let (files, graph) = module_graph(&src);
    let edges: usize = graph.values().map(BTreeSet::len).sum();
    assert!(
        edges > 50,
        "only {edges} imports in {src:?}: is the parser broken?"
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

/// Module → file (relative to `src`), and the import graph without test-only files and
/// without containment edges (a module using its own descendants).
fn module_graph(src: &Path) -> (BTreeMap<String, String>, Graph) {
    let (mut dirs, mut files) = (vec![src.to_path_buf()], BTreeMap::new());
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}")) {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(src).unwrap();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.insert(module_of(rel), rel.display().to_string());
            }
        }
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
    graph.retain(|m, _| !test_only.iter().any(|t| m == t || is_descendant(t, m)));
    (files, graph)
}

fn module_of(rel: &Path) -> String {
    let name = rel.with_extension("").display().to_string();
    let name = name.replace(MAIN_SEPARATOR, "::");
    let name = name.strip_suffix("::mod").unwrap_or(&name);
    if name == "lib" { "" } else { name }.to_string()
}

fn is_bin(module: &str) -> bool {
    module == "main" || module == "cli" || module.starts_with("cli::")
}

/// The top-level module, the unit of LAYERS ("" for the crate root).
fn group(module: &str) -> &str {
    let top = module.split("::").next().unwrap();
    if top == "main" {
        "cli"
    } else {
        top
    }
}

fn child(module: &str, name: &str) -> String {
    match module {
        "" | "main" => name.to_string(),
        _ => format!("{module}::{name}"),
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
    let (t, test_mods) = drop_test_code(&tokens(src));
    let (mut paths, mut aliases) = (Vec::new(), BTreeMap::new());
    let mut i = 0;
    while i < t.len() {
        let path_start = is_ident(&t[i])
            && t.get(i + 1).is_some_and(|s| s == "::")
            && (i == 0 || t[i - 1] != "::");
        if t[i] == "use" {
            i += 1;
            for mut path in use_tree(&t, &mut i) {
                // `use a::m;` or `use a::m::{self, ..}`: `m::x` in code is `a::m::x`.
                if path.len() > 1 && path[path.len() - 1] == "self" {
                    path.pop();
                }
                let last = path.last().cloned().unwrap_or_default();
                let module = resolve(&path, here, modules, true).unwrap_or_default();
                if module == last || module.ends_with(&format!("::{last}")) {
                    aliases.insert(last, path.clone());
                }
                paths.push((path, true));
            }
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
        .into_iter()
        .filter_map(|(path, in_use)| match aliases.get(&path[0]) {
            Some(alias) if !in_use => resolve(&[alias, &path[1..]].concat(), here, modules, true),
            _ => resolve(&path, here, modules, in_use),
        });
    (refs.collect(), test_mods)
}

/// The code's tokens: identifiers (and numbers), `::` and single punctuation characters.
/// Comments, string literals and char literals are left out.
fn tokens(src: &str) -> Vec<String> {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let word = |ch: char| ch.is_alphanumeric() || ch == '_';
    let (mut out, mut i) = (Vec::new(), 0);
    while i < c.len() {
        let end = (i..c.len()).find(|&j| !word(c[j])).unwrap_or(c.len());
        let w = String::from_iter(&c[i..end]);
        let hashes = c[end..].iter().take_while(|&&h| h == '#').count();
        let raw = matches!(w.as_str(), "r" | "br" | "cr") && at(end + hashes) == '"';
        if at(i) == '/' && at(i + 1) == '/' {
            i = (i..c.len()).find(|&j| c[j] == '\n').unwrap_or(c.len());
        } else if at(i) == '/' && at(i + 1) == '*' {
            let mut depth = 0; // block comments nest
            while i < c.len() {
                let d: i32 = match (at(i), at(i + 1)) {
                    ('/', '*') => 1,
                    ('*', '/') => -1,
                    _ => 0,
                };
                (depth, i) = (depth + d, i + 1 + d.unsigned_abs() as usize);
                if depth == 0 {
                    break;
                }
            }
        } else if at(i) == '"' || raw {
            // "..." with escapes, or r#"..."# ending at a quote and as many hashes
            let (h, mut j) = if raw {
                (hashes, end + hashes + 1)
            } else {
                (0, i + 1)
            };
            while j < c.len() && !(c[j] == '"' && (1..=h).all(|k| at(j + k) == '#')) {
                j += if c[j] == '\\' && !raw { 2 } else { 1 };
            }
            i = j + h + 1;
        } else if at(i) == '\'' && (at(i + 1) == '\\' || at(i + 2) == '\'') {
            // 'x', '\n', '\'', '\u{..}' (a lifetime 'a has no closing quote)
            let from = i + if at(i + 1) == '\\' { 3 } else { 2 };
            i = (from..c.len()).find(|&j| c[j] == '\'').unwrap_or(c.len()) + 1;
        } else if end > i {
            out.push(w);
            i = end;
        } else if at(i) == ':' && at(i + 1) == ':' {
            out.push("::".to_string());
            i += 2;
        } else {
            if !c[i].is_whitespace() {
                out.push(c[i].to_string());
            }
            i += 1;
        }
    }
    out
}

/// The tokens without the items marked `#[cfg(test)]`, and the names of the modules
/// declared test-only without a body (`#[cfg(test)] mod tests;`).
fn drop_test_code(t: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut keep, mut test_mods) = (Vec::new(), Vec::new());
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
        match &t[item..i] {
            [.., m, name, semi] if m == "mod" && semi == ";" => test_mods.push(name.clone()),
            _ => {}
        }
    }
    (keep, test_mods)
}

/// The full paths of the `use` tree at `t[*i]`, up to its `;`: `a::{b, c::{self, D as E}}`
/// gives `a::b`, `a::c::self` and `a::c::D`.
fn use_tree(t: &[String], i: &mut usize) -> Vec<Vec<String>> {
    // `groups`: the length of the path before each open `{`.
    let (mut out, mut path, mut groups, mut pending) = (Vec::new(), Vec::new(), vec![0], false);
    while let Some(token) = t.get(*i) {
        *i += 1;
        match token.as_str() {
            "::" => {}
            "as" => *i += 1,
            "{" => groups.push(path.len()),
            "*" => pending = true,
            word if is_ident(word) => {
                path.push(word.to_string());
                pending = true;
            }
            end => {
                if std::mem::take(&mut pending) {
                    out.push(path.clone());
                }
                match end {
                    "," => {}
                    "}" => drop(groups.pop()),
                    _ => break,
                }
                path.truncate(groups.last().copied().unwrap_or(0));
            }
        }
    }
    out
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
    LAYERS.iter().find(|l| l.0 == group).map(|l| l.1)
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
    let start = &component[0];
    let (mut queue, mut seen) = (VecDeque::from([vec![start]]), BTreeSet::new());
    while let Some(path) = queue.pop_front() {
        for w in graph[path[path.len() - 1]]
            .iter()
            .filter(|w| component.contains(w))
        {
            let next = [&path[..], &[w]].concat();
            if w == start {
                return next.into_iter().cloned().collect();
            }
            if seen.insert(w) {
                queue.push_back(next);
            }
        }
    }
    unreachable!("{start} is in a circle")
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

    /// The modules `src` refers to as module `here`, among `modules`; space-separated.
    fn refs(here: &str, modules: &str, src: &str) -> String {
        let modules = modules.split(' ').map(String::from).collect();
        Vec::from_iter(references(src, here, &modules).0).join(" ")
    }

    #[test]
    fn grouped_nested_use_trees_are_expanded() {
        let t = tokens("super::{self, x::{Y, z as W}, *};");
        let paths = Vec::from_iter(use_tree(&t, &mut 0).iter().map(|p| p.join("::")));
        assert_eq!(paths.join(" "), "super::self super::x::Y super::x::z super");
        let src = "pub(crate) use crate::{config::{Auth, Secret}, net::tls};";
        assert_eq!(refs("p", "config net net::tls", src), "config net::tls");
        let src = "pub use decision::Decision;\nuse commit::x;\nuse std::sync::Arc;";
        let modules = "p p::commit p::decision";
        assert_eq!(refs("p", modules, src), "p::commit p::decision");
        let src = "use mailpipe::{config::Config, net}; fn f() { crate::cli::test::run() }";
        let modules = "config cli cli::test net net::tls";
        assert_eq!(refs("main", modules, src), "cli::test config net");
        let src = format!("{src} fn g() {{ net::tls::connect() }}");
        assert_eq!(refs("main", modules, &src), "cli::test config net net::tls");
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
        assert_eq!(refs("c", "a b c", src), "b");
    }

    #[test]
    fn cfg_test_items_are_dropped() {
        let src = "use crate::a;
            #[cfg(test)]
            mod tests { use crate::b; fn f() { crate::b::g() } }
            fn h() { crate::c::i() }";
        assert_eq!(refs("m", "a b c m", src), "a c");
        let src = "#[cfg(test)]\n#[path = \"x\"]\npub mod tests;\n#[cfg(test)] use crate::b;";
        let (found, test_mods) = references(src, "m", &Set::from(["b".to_string()]));
        assert!(found.is_empty() && test_mods == ["tests"]);
    }

    #[test]
    fn super_depends_on_whether_the_file_is_a_mod_rs() {
        assert_eq!(module_of(Path::new("a/mod.rs")), "a");
        assert_eq!(module_of(Path::new("a/b.rs")), "a::b");
        assert_eq!(module_of(Path::new("lib.rs")), "");
        let m = "a a::b a::c d";
        assert_eq!(refs("a", m, "use super::d::X;"), "d");
        assert_eq!(refs("a::b", m, "use super::c::X;"), "a::c");
        assert_eq!(refs("a::b", m, "use super::{self, c};"), "a a::c");
        let src = "fn f() { super::super::d::g(); super::X }";
        assert_eq!(refs("a::b", m, src), "a d");
        assert_eq!(refs("a", m, "use super::X; use crate::Y;"), "");
    }

    #[test]
    fn circles_are_the_strongly_connected_components() {
        let mut graph = Graph::new();
        for edge in ["a b", "b c", "c a", "c d", "d e", "e d", "f a"] {
            let (from, to) = edge.split_once(' ').unwrap();
            graph.entry(from.into()).or_default().insert(to.into());
            graph.entry(to.into()).or_default();
        }
        assert_eq!(circles(&graph), [vec!["a", "b", "c"], vec!["d", "e"]]);
        let abc = ["a", "b", "c"].map(String::from);
        assert_eq!(shortest_cycle(&graph, &abc), ["a", "b", "c", "a"]);
    }
}
