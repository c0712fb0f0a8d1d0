//! One namespace for an experiment and all its imports: `let` constants and
//! declarations. Builds the dependency graph between them (petgraph), reports
//! duplicates, unknown names (with a suggestion) and cycles, and gives the
//! order in which declarations can be expanded.

use std::collections::HashMap;

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};

use crate::diagnostic::{did_you_mean, Code, Problem};
use crate::source::Span;
use crate::syntax::ast::{CheckpointRef, Decl, DeclBody, Expr, File, Ident, Let};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entry {
    Let(usize),
    Decl(usize),
}

pub struct Namespace<'a> {
    pub lets: Vec<&'a Let>,
    pub decls: Vec<&'a Decl>,
    pub by_name: HashMap<String, Entry>,
    /// Declarations in an order where every dependency comes first; members of
    /// a cycle are left out (and reported). Broken ones are in it: they are
    /// checked for their own problems but never planned.
    pub decl_order: Vec<usize>,
    /// Entries that are part of (or depend on) a cycle or an unknown name.
    pub broken: std::collections::HashSet<Entry>,
}

impl<'a> Namespace<'a> {
    pub fn span_of(&self, e: Entry) -> Span {
        match e {
            Entry::Let(i) => self.lets[i].name.span,
            Entry::Decl(i) => self.decls[i].name.span,
        }
    }

    pub fn name_of(&self, e: Entry) -> &str {
        match e {
            Entry::Let(i) => &self.lets[i].name.name,
            Entry::Decl(i) => &self.decls[i].name.name,
        }
    }
}

pub fn build<'a>(files: &'a [File], problems: &mut Vec<Problem>) -> Namespace<'a> {
    let mut ns = Namespace {
        lets: vec![],
        decls: vec![],
        by_name: HashMap::new(),
        decl_order: vec![],
        broken: Default::default(),
    };
    for f in files {
        for l in &f.lets {
            ns.lets.push(l);
        }
        for d in &f.decls {
            ns.decls.push(d);
        }
    }
    // Declare every name, reporting duplicates against the first declaration.
    let entries: Vec<(Entry, &Ident)> = ns
        .lets
        .iter()
        .enumerate()
        .map(|(i, l)| (Entry::Let(i), &l.name))
        .chain(ns.decls.iter().enumerate().map(|(i, d)| (Entry::Decl(i), &d.name)))
        .collect();
    let mut sorted = entries.clone();
    sorted.sort_by_key(|(_, id)| (id.span.file, id.span.start));
    for (entry, ident) in sorted {
        if let Some(first) = ns.by_name.get(&ident.name) {
            problems.push(
                Problem::new(Code::DuplicateName, ident.span, format!("`{}` is declared twice", ident.name))
                    .label("second declaration")
                    .related(ns.span_of(*first), "first declared here")
                    .help("give each declaration its own name; to vary one, derive it: `new = old with { ... }`"),
            );
            ns.broken.insert(entry);
        } else {
            ns.by_name.insert(ident.name.clone(), entry);
        }
    }

    // Dependency graph.
    let mut graph: DiGraph<Entry, ()> = DiGraph::new();
    let mut index: HashMap<Entry, NodeIndex> = HashMap::new();
    for (e, _) in &entries {
        index.insert(*e, graph.add_node(*e));
    }
    let all_names: Vec<String> = ns.by_name.keys().cloned().collect();
    for (e, _) in &entries {
        let mut refs = vec![];
        match e {
            Entry::Let(i) => collect_refs(&ns.lets[*i].value, &mut refs),
            Entry::Decl(i) => match &ns.decls[*i].body {
                DeclBody::Expr(x) => collect_refs(x, &mut refs),
                DeclBody::Derive(d) => {
                    refs.push(&d.base.name);
                    for s in &d.base.selector {
                        collect_refs(&s.value, &mut refs);
                    }
                    for o in &d.overrides {
                        collect_refs(&o.value, &mut refs);
                    }
                }
            },
        }
        for r in refs {
            match ns.by_name.get(&r.name) {
                Some(target) => {
                    graph.add_edge(index[target], index[e], ());
                }
                None => {
                    let mut p = Problem::new(Code::UnknownName, r.span, format!("unknown name `{}`", r.name))
                        .label("not declared anywhere");
                    p = match did_you_mean(&r.name, all_names.iter().map(String::as_str)) {
                        Some(s) => p.help(format!("did you mean `{s}`?")),
                        None => p.help("declare it in this file or in an imported one"),
                    };
                    problems.push(p);
                    ns.broken.insert(*e);
                }
            }
        }
    }

    // Cycles: every strongly connected component with more than one member,
    // or a member that refers to itself.
    for scc in tarjan_scc(&graph) {
        let cyclic = scc.len() > 1 || graph.contains_edge(scc[0], scc[0]);
        if !cyclic {
            continue;
        }
        let mut members: Vec<Entry> = scc.iter().map(|n| graph[*n]).collect();
        members.sort_by_key(|e| {
            let s = ns.span_of(*e);
            (s.file, s.start)
        });
        let names: Vec<&str> = members.iter().map(|e| ns.name_of(*e)).collect();
        let mut p = Problem::new(
            Code::Cycle,
            ns.span_of(members[0]),
            if members.len() == 1 {
                format!("`{}` depends on itself", names[0])
            } else {
                format!("declarations depend on each other in a cycle: {} → {}", names.join(" → "), names[0])
            },
        )
        .label("part of the cycle")
        .help("a declaration may only use declarations that do not use it in turn");
        for m in &members[1..] {
            p = p.related(ns.span_of(*m), "also in the cycle");
        }
        problems.push(p);
        ns.broken.extend(members);
    }

    // Propagate brokenness downstream so dependents stay quiet instead of
    // producing a cascade of follow-on errors.
    let order = match toposort(&graph, None) {
        Ok(o) => o,
        Err(_) => {
            // Remove cyclic nodes and sort the rest.
            let mut g = graph.clone();
            g.retain_nodes(|g2, n| !ns.broken.contains(&g2[n]));
            let o = toposort(&g, None).unwrap_or_default();
            o.into_iter().map(|n| index[&g[n]]).collect()
        }
    };
    // Every declaration outside a cycle is still checked, so its own problems
    // are reported; references to a broken one resolve to nothing, silently.
    for n in &order {
        let e = graph[*n];
        if graph.neighbors_directed(*n, petgraph::Direction::Incoming).any(|src| ns.broken.contains(&graph[src])) {
            ns.broken.insert(e);
        }
        if let Entry::Decl(i) = e {
            ns.decl_order.push(i);
        }
    }
    ns
}

/// Every name an expression mentions (references, checkpoint constants).
pub fn collect_refs<'a>(e: &'a Expr, out: &mut Vec<&'a Ident>) {
    match e {
        Expr::Number(..) | Expr::String(..) | Expr::Bool(..) => {}
        Expr::List(items, _) | Expr::Sweep(items, _) => items.iter().for_each(|i| collect_refs(i, out)),
        Expr::Call(c) => c.args.iter().for_each(|a| collect_refs(&a.value, out)),
        Expr::Reference(r) => {
            out.push(&r.name);
            for s in &r.selector {
                collect_refs(&s.value, out);
            }
            if let Some(CheckpointRef::Named(id)) = &r.checkpoint {
                out.push(id);
            }
        }
    }
}
