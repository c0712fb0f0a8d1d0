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
    /// Derivations whose chain selects members (`a[lr: 1e-4] with { .. }`):
    /// they need their base's members, not only its call, so their base is
    /// expanded first. Other derivations need only the base's text.
    pub needs_base_members: std::collections::HashSet<usize>,
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

/// The namespace of the files: every name declared (duplicates reported),
/// unknown names and cycles reported, and the declarations in dependency
/// order with everything downstream of an error marked broken.
pub fn build<'a>(files: &'a [File], problems: &mut Vec<Problem>) -> Namespace<'a> {
    let mut ns = Namespace {
        lets: files.iter().flat_map(|f| &f.lets).collect(),
        decls: files.iter().flat_map(|f| &f.decls).collect(),
        by_name: HashMap::new(),
        decl_order: vec![],
        broken: Default::default(),
        needs_base_members: Default::default(),
    };
    let entries = declare(&mut ns, problems);
    let derive_graph = derivation_graph(&ns);
    for i in 0..ns.decls.len() {
        if selects_base_members(&ns, i, &mut vec![]) {
            ns.needs_base_members.insert(i);
        }
    }
    let (mut graph, index) = dependency_graph(&mut ns, &entries, problems);
    report_cycles(&mut ns, &graph, &derive_graph, problems);
    // A derivation whose base is in a cycle cannot be built either.
    for (i, d) in ns.decls.iter().enumerate() {
        if let Some(Entry::Decl(b)) = derivation_base(d).and_then(|base| ns.by_name.get(&base.name.name)) {
            if ns.broken.contains(&Entry::Decl(*b)) && !ns.broken.contains(&Entry::Decl(i)) {
                graph.add_edge(index[&Entry::Decl(*b)], index[&Entry::Decl(i)], ());
            }
        }
    }
    order_and_propagate(&mut ns, &graph, &index);
    ns
}

/// Declares every name, reporting duplicates against the first
/// declaration; returns every entry with its name, lets first.
fn declare<'a>(ns: &mut Namespace<'a>, problems: &mut Vec<Problem>) -> Vec<(Entry, &'a Ident)> {
    let entries: Vec<(Entry, &'a Ident)> = ns
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
    entries
}

/// Derivations alone (`b = a with { .. }`: an edge a → b), for their own
/// cycles: a derivation uses what its call holds once its overrides are
/// applied, so an override that replaces an argument also drops the names
/// in it (`b = a with { sampler: ... }` does not depend on what `a`'s
/// sampler named), and the dependency graph alone would miss such cycles.
fn derivation_graph(ns: &Namespace) -> DiGraph<usize, ()> {
    let mut derive_graph: DiGraph<usize, ()> = DiGraph::new();
    let derive_nodes: Vec<NodeIndex> = (0..ns.decls.len()).map(|i| derive_graph.add_node(i)).collect();
    for (i, d) in ns.decls.iter().enumerate() {
        if let Some(base) = derivation_base(d) {
            if let Some(Entry::Decl(b)) = ns.by_name.get(&base.name.name) {
                derive_graph.add_edge(derive_nodes[*b], derive_nodes[i], ());
            }
        }
    }
    derive_graph
}

/// The dependency graph (an edge from what is used to its user), reporting
/// unknown names; chains of derivations are followed.
fn dependency_graph(
    ns: &mut Namespace,
    entries: &[(Entry, &Ident)],
    problems: &mut Vec<Problem>,
) -> (DiGraph<Entry, ()>, HashMap<Entry, NodeIndex>) {
    let mut graph: DiGraph<Entry, ()> = DiGraph::new();
    let mut index: HashMap<Entry, NodeIndex> = HashMap::new();
    for (e, _) in entries {
        index.insert(*e, graph.add_node(*e));
    }
    let all_names: Vec<String> = ns.by_name.keys().cloned().collect();
    for (e, _) in entries {
        let mut refs: Vec<&Ident> = vec![];
        match e {
            Entry::Let(i) => collect_refs(&ns.lets[*i].value, &mut refs),
            Entry::Decl(i) => {
                refs.extend(arg_refs(ns, *i, &mut vec![]).into_iter().map(|(_, r)| r));
                if let Some(base) = derivation_base(ns.decls[*i]) {
                    // The base's name itself: an unknown base is reported
                    // here, and one whose members are selected comes first.
                    match ns.by_name.get(&base.name.name) {
                        Some(Entry::Decl(_)) if !ns.needs_base_members.contains(i) => {}
                        _ => refs.push(&base.name),
                    }
                }
            }
        }
        let mut unknown = false;
        for r in refs {
            match ns.by_name.get(&r.name) {
                Some(target) => {
                    graph.add_edge(index[target], index[e], ());
                }
                None => {
                    let p = Problem::new(Code::UnknownName, r.span, format!("unknown name `{}`", r.name))
                        .label("not declared anywhere");
                    problems.push(match did_you_mean(&r.name, all_names.iter().map(String::as_str)) {
                        Some(s) => p.help(format!("did you mean `{s}`?")),
                        None => p.help("declare it in this file or in an imported one"),
                    });
                    unknown = true;
                }
            }
        }
        if unknown {
            ns.broken.insert(*e);
        }
    }
    (graph, index)
}

/// Cycles: every strongly connected component with more than one member,
/// or a member that refers to itself, in the dependency graph or among
/// derivations (`a = b with {..}`, `b = a with {..}`); each reported once,
/// its members marked broken.
fn report_cycles(
    ns: &mut Namespace,
    graph: &DiGraph<Entry, ()>,
    derive_graph: &DiGraph<usize, ()>,
    problems: &mut Vec<Problem>,
) {
    let mut sccs: Vec<Vec<Entry>> = vec![];
    for scc in tarjan_scc(graph) {
        if scc.len() > 1 || graph.contains_edge(scc[0], scc[0]) {
            sccs.push(scc.iter().map(|n| graph[*n]).collect());
        }
    }
    for scc in tarjan_scc(derive_graph) {
        if scc.len() > 1 || derive_graph.contains_edge(scc[0], scc[0]) {
            let members: Vec<Entry> = scc.iter().map(|n| Entry::Decl(derive_graph[*n])).collect();
            if !sccs.iter().any(|c| c.len() == members.len() && members.iter().all(|m| c.contains(m))) {
                sccs.push(members);
            }
        }
    }
    for mut members in sccs {
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
}

/// The declarations in dependency order, each downstream of a broken one
/// marked broken too: dependents stay quiet instead of producing a cascade
/// of follow-on errors. Every declaration outside a cycle is still checked,
/// so its own problems are reported; references to a broken one resolve
/// to nothing, silently.
fn order_and_propagate(ns: &mut Namespace, graph: &DiGraph<Entry, ()>, index: &HashMap<Entry, NodeIndex>) {
    let order = match toposort(graph, None) {
        Ok(o) => o,
        Err(_) => {
            // Remove cyclic nodes and sort the rest.
            let mut g = graph.clone();
            g.retain_nodes(|g2, n| !ns.broken.contains(&g2[n]));
            let o = toposort(&g, None).unwrap_or_default();
            o.into_iter().map(|n| index[&g[n]]).collect()
        }
    };
    for n in &order {
        let e = graph[*n];
        if graph.neighbors_directed(*n, petgraph::Direction::Incoming).any(|src| ns.broken.contains(&graph[src])) {
            ns.broken.insert(e);
        }
        if let Entry::Decl(i) = e {
            ns.decl_order.push(i);
        }
    }
}

/// The declaration a derivation copies: `base` in `x = base with { .. }` or
/// in `x = base[axis: v]`.
pub fn derivation_base(d: &Decl) -> Option<&crate::syntax::ast::Reference> {
    match &d.body {
        DeclBody::Derive(dv) => Some(&dv.base),
        DeclBody::Expr(Expr::Reference(r)) if r.checkpoint.is_none() => Some(r),
        DeclBody::Expr(_) => None,
    }
}

/// Does the derivation chain of declaration `i` select members anywhere?
fn selects_base_members(ns: &Namespace, i: usize, visiting: &mut Vec<usize>) -> bool {
    let Some(base) = derivation_base(ns.decls[i]) else { return false };
    if !base.selector.is_empty() {
        return true;
    }
    match ns.by_name.get(&base.name.name) {
        Some(Entry::Decl(b)) if !visiting.contains(b) => {
            visiting.push(i);
            selects_base_members(ns, *b, visiting)
        }
        _ => false,
    }
}

/// The names declaration `i`'s call holds, each with the top-level argument
/// it sits in (None outside any argument). For a derivation: its overrides'
/// names, its selector's, and its base's minus those in arguments it replaces.
fn arg_refs<'a>(ns: &Namespace<'a>, i: usize, visiting: &mut Vec<usize>) -> Vec<(Option<String>, &'a Ident)> {
    let decl: &'a Decl = ns.decls[i];
    let mut out: Vec<(Option<String>, &'a Ident)> = vec![];
    let push_refs = |out: &mut Vec<(Option<String>, &'a Ident)>, tag: Option<String>, e: &'a Expr| {
        let mut refs = vec![];
        collect_refs(e, &mut refs);
        out.extend(refs.into_iter().map(|r| (tag.clone(), r)));
    };
    let (base, replaced): (&'a crate::syntax::ast::Reference, Vec<&str>) = match &decl.body {
        DeclBody::Expr(Expr::Call(c)) => {
            let ctor = crate::check::schema::ctor(&c.callee.name);
            for (k, a) in c.args.iter().enumerate() {
                let name = match &a.name {
                    Some(n) => Some(n.name.clone()),
                    None => ctor.and_then(|c| c.params.get(k)).map(|p| p.name.to_string()),
                };
                push_refs(&mut out, name, &a.value);
            }
            return out;
        }
        DeclBody::Expr(Expr::Reference(r)) if r.checkpoint.is_none() => (r, vec![]),
        DeclBody::Expr(other) => {
            push_refs(&mut out, None, other);
            return out;
        }
        DeclBody::Derive(dv) => {
            for o in &dv.overrides {
                push_refs(&mut out, o.path.segments.first().map(|s| s.name.clone()), &o.value);
            }
            let replaced =
                dv.overrides.iter().filter(|o| o.path.segments.len() == 1).map(|o| o.path.segments[0].name.as_str());
            (&dv.base, replaced.collect())
        }
    };
    for s in &base.selector {
        push_refs(&mut out, None, &s.value);
    }
    if let Some(Entry::Decl(b)) = ns.by_name.get(&base.name.name) {
        if !visiting.contains(b) && *b != i {
            visiting.push(i);
            let inherited = arg_refs(ns, *b, visiting);
            out.extend(inherited.into_iter().filter(|(tag, _)| tag.as_deref().is_none_or(|t| !replaced.contains(&t))));
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use crate::check::errors_of;
    use crate::diagnostic::Code;

    const BASE: &str = "world w = summarize(seed: 1, vocab: 24, prompt_len: 6, response_len: 8)\ndataset d = generate(w, pairs: 200)\nmodel sft = sft(d, layers: 1, width: 16, heads: 2, steps: 20)\nmodel pm = pm(d, layers: 1, width: 16, heads: 2, steps: 20)\n";

    #[test]
    fn a_duplicate_points_at_the_second_declaration() {
        let found = errors_of(&format!("{BASE}model sft = sft(d)"));
        assert_eq!(found, vec![(Code::DuplicateName, "sft".into())]);
    }

    #[test]
    fn an_unknown_name_points_at_its_use() {
        let found = errors_of(&format!("{BASE}model m = sft(dd)"));
        assert_eq!(found, vec![(Code::UnknownName, "dd".into())]);
    }

    /// A cycle is one problem, at its first member, however many members it has.
    #[test]
    fn a_cycle_is_reported_once_at_its_first_member() {
        let found = errors_of("let a = b\nlet b = a\n");
        assert_eq!(found, vec![(Code::Cycle, "a".into())]);
        let derived = errors_of(&format!("{BASE}model x = y with {{ steps: 1 }}\nmodel y = x with {{ steps: 2 }}"));
        assert_eq!(derived, vec![(Code::Cycle, "x".into())]);
    }
}
