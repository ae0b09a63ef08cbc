//! A test that the crate's modules depend on each other one way.
//!
//! Nodes are module files (`src/eval/context.rs` is `eval::context`); an edge
//! is a `crate::`, `super::` or `self::` path in a file's code (comments and
//! the `tests` module at the bottom left out), resolved to the deepest module
//! it names. A module may use its ancestors freely (a child implements its
//! parent's trait, `use super::LocalModel`): those edges are left out, while a
//! parent's use of its children (`pub use self::hub::HubSource`) counts.
//! Every other dependency must point one way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A module's path from the crate root: `["eval", "dataset"]`.
type Module = Vec<String>;

type Graph = BTreeMap<Module, BTreeSet<Module>>;

/// Every module file under `dir`, with its code.
fn modules(dir: &Path, prefix: &[String], out: &mut BTreeMap<Module, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let mut module = prefix.to_vec();
        if path.is_dir() {
            module.push(name);
            modules(&path, &module, out);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") || (prefix.is_empty() && name == "main") {
            continue;
        }
        if name != "mod" && name != "lib" {
            module.push(name);
        }
        out.insert(module, code(&std::fs::read_to_string(&path).unwrap()));
    }
}

/// The file without comment lines and without its `#[cfg(test)] mod tests`.
fn code(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        let next = lines.get(i + 1).map_or("", |l| l.trim());
        if line == "#[cfg(test)]" && next.starts_with("mod tests") {
            break;
        }
        if !line.starts_with("//") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The paths `code` names, each as (`crate`|`super`|`self`, segments); a
/// `{a, b::c}` group gives one path per item.
fn paths(code: &str) -> Vec<(&str, Vec<String>)> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = Vec::new();
    for keyword in ["crate", "super", "self"] {
        let pattern = format!("{keyword}::");
        for (at, _) in code.match_indices(&pattern) {
            if code[..at].ends_with(ident) || code[..at].ends_with("::") {
                continue;
            }
            let mut rest = &code[at + pattern.len()..];
            let mut prefix = Vec::new();
            loop {
                let end = rest.find(|c: char| !ident(c)).unwrap_or(rest.len());
                if end == 0 {
                    break;
                }
                prefix.push(rest[..end].to_owned());
                rest = &rest[end..];
                match rest.strip_prefix("::") {
                    Some(after) => rest = after,
                    None => break,
                }
            }
            match rest.strip_prefix('{') {
                Some(group) => {
                    let group = &group[..group.find('}').unwrap_or(group.len())];
                    for item in group.split(',') {
                        let mut path = prefix.clone();
                        path.extend(
                            item.split("::")
                                .map(|s| s.trim().split(' ').next().unwrap_or("").to_owned())
                                .take_while(|s| !s.is_empty() && s.chars().all(ident)),
                        );
                        out.push((keyword, path));
                    }
                }
                None => out.push((keyword, prefix)),
            }
        }
    }
    out
}

/// The dependency graph of the modules (see the module docs).
fn graph(modules: &BTreeMap<Module, String>) -> Graph {
    let mut graph = Graph::new();
    for (module, code) in modules {
        for (keyword, path) in paths(code) {
            let mut target: Module = match keyword {
                "crate" => Vec::new(),
                "super" => module[..module.len().saturating_sub(1)].to_vec(),
                _ => module.clone(),
            };
            for segment in path {
                target.push(segment);
                if !modules.contains_key(&target) {
                    target.pop();
                    break;
                }
            }
            if !module.starts_with(&target) {
                graph.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    graph
}

/// A cycle of `graph`, if it has one, as the modules along it.
fn find_cycle(graph: &Graph) -> Option<Vec<Module>> {
    fn visit(
        node: &Module,
        graph: &Graph,
        done: &mut BTreeSet<Module>,
        path: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        if let Some(start) = path.iter().position(|m| m == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.clone());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.clone());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(path: &str) -> Module {
        path.split("::").map(str::to_owned).collect()
    }

    #[test]
    fn the_worker_modules_depend_on_each_other_one_way() {
        let mut all = BTreeMap::new();
        modules(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &[],
            &mut all,
        );
        let graph = graph(&all);
        // The graph is read: a few edges that must be there.
        for (from, to) in [
            ("source::hub", "source::precheck"),
            ("source::precheck", "source::precheck::files"),
            ("dataset", "paths"),
            ("engine", "template"),
        ] {
            assert!(
                graph[&module(from)].contains(&module(to)),
                "{from} -> {to} not found: {graph:?}"
            );
        }
        if let Some(cycle) = find_cycle(&graph) {
            let cycle: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
            panic!("module cycle: {}", cycle.join(" -> "));
        }
        // Nor between the crate's top-level modules, a directory counting as one
        // (`eval` must not use `source` while `source` uses `eval`).
        let mut top = Graph::new();
        for (from, tos) in &graph {
            let from_top: Module = from.iter().take(1).cloned().collect();
            let edges = top.entry(from_top.clone()).or_default();
            for to in tos {
                let to_top: Module = to.iter().take(1).cloned().collect();
                if to_top != from_top {
                    edges.insert(to_top);
                }
            }
        }
        if let Some(cycle) = find_cycle(&top) {
            let cycle: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
            panic!("cycle between top-level modules: {}", cycle.join(" -> "));
        }
    }

    #[test]
    fn paths_and_cycles_are_found() {
        let code = code(
            "use super::precheck::{self, CONFIG as C, RepoFile};\n\
             // use crate::commented::out;\n\
             use crate::{gpu, metrics::record};\n\
             let x = crate::paths::is_safe(p); other_crate::x;\n\
             #[cfg(test)]\nmod tests {\nuse crate::fixtures;\n}\n",
        );
        let found: Vec<String> = paths(&code)
            .into_iter()
            .map(|(keyword, path)| format!("{keyword}::{}", path.join("::")))
            .collect();
        assert_eq!(
            found,
            [
                "crate::gpu",
                "crate::metrics::record",
                "crate::paths::is_safe",
                "super::precheck::self",
                "super::precheck::CONFIG",
                "super::precheck::RepoFile",
            ]
        );
        let mut cyclic = Graph::new();
        for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("a", "d")] {
            cyclic.entry(module(from)).or_default().insert(module(to));
        }
        assert_eq!(
            find_cycle(&cyclic).unwrap(),
            [module("a"), module("b"), module("c"), module("a")]
        );
        cyclic.get_mut(&module("c")).unwrap().clear();
        assert_eq!(find_cycle(&cyclic), None);
    }
}
