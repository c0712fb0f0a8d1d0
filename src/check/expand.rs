//! Expanding declarations into instances.
//!
//! A declaration with `sweep [...]` axes becomes one instance per combination.
//! A declaration that uses a swept declaration where one value is expected
//! (`replay(online)` when `online` sweeps `seed`) inherits that sweep: it gets
//! one instance per member, and axes with the same name are joined rather than
//! crossed, so `tandem[seed=1]` replays `online[seed=1]`. In a list position
//! (`policies: [online]`) a swept declaration stands for all its members.
//!
//! Arguments are typed against the constructor table as they are evaluated:
//! see `eval.rs`.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::check::derive::{apply_override, check_decl_ctor, normalize_call};
use crate::check::names::{Entry, Namespace};
use crate::check::program::{display_value, DeclInfo, Instance, InstanceId, Value};
use crate::check::schema::{ctor, Ty};
use crate::diagnostic::{did_you_mean, Code, Problem};
use crate::source::{SourceMap, Span};
use crate::syntax::ast::{Call, DeclBody, Expr, Reference};

/// One grid axis found in a declaration.
#[derive(Debug, Clone)]
pub struct Axis {
    pub name: String,
    pub path: String,
    pub span: Span,
    pub ty: Ty,
    pub items: Vec<Expr>,
}

/// A swept declaration used where a single value is expected.
#[derive(Debug, Clone)]
pub struct GroupFactor {
    pub key: FactorKey,
    pub members: Vec<InstanceId>,
}

pub type FactorKey = (usize, String);

/// The choices that pick one instance out of a declaration's grid.
#[derive(Debug, Clone, Default)]
pub struct Choice {
    pub sweep: HashMap<Span, usize>,
    pub group: HashMap<FactorKey, InstanceId>,
    pub assignment: BTreeMap<String, Value>,
}

pub struct Expander<'a> {
    pub ns: &'a Namespace<'a>,
    pub sources: &'a SourceMap,
    pub max_instances: usize,
    pub decls: Vec<DeclInfo>,
    pub merged: Vec<Option<Call>>,
    pub instances: Vec<Instance>,
    pub problems: Vec<Problem>,
    pub failed: HashSet<usize>,
    /// `base[axis: v] with { ... }`: the members of the derived grid to keep.
    pub derive_filter: HashMap<usize, Vec<crate::syntax::ast::Selection>>,
    /// How many `let` constants deep the current evaluation is.
    pub let_depth: usize,
}

impl<'a> Expander<'a> {
    pub fn new(ns: &'a Namespace<'a>, sources: &'a SourceMap, max_instances: usize) -> Self {
        let decls = ns
            .decls
            .iter()
            .map(|d| DeclInfo {
                name: d.name.name.clone(),
                kind: d.kind,
                span: d.span,
                name_span: d.name.span,
                ctor: None,
                instances: vec![],
                axes: vec![],
            })
            .collect();
        Expander {
            ns,
            sources,
            max_instances,
            decls,
            merged: vec![None; ns.decls.len()],
            instances: vec![],
            problems: vec![],
            failed: HashSet::new(),
            derive_filter: HashMap::new(),
            let_depth: 0,
        }
    }

    pub fn label(&self, i: InstanceId) -> String {
        self.instances[i].label.clone()
    }

    pub fn show(&self, v: &Value) -> String {
        display_value(&|i| self.label(i), v)
    }

    /// Expands every declaration, dependencies first.
    pub fn run(&mut self) {
        let order = self.ns.decl_order.clone();
        for d in order {
            let before = self.problems.len();
            let ok = self.expand_decl(d);
            if !ok || self.problems.len() > before {
                self.failed.insert(d);
            }
        }
    }

    fn merged_call(&mut self, d: usize) -> Option<Call> {
        let decl = self.ns.decls[d];
        match &decl.body {
            DeclBody::Expr(Expr::Call(c)) => {
                let n = normalize_call(c, &mut self.problems)?;
                check_decl_ctor(decl.kind, decl.kind_span, &n, &mut self.problems)?;
                Some(n)
            }
            // `run x = base` or `run x = grid[lr: 1e-4]`: a derivation without overrides.
            DeclBody::Expr(Expr::Reference(r)) if r.checkpoint.is_none() => {
                if !r.selector.is_empty() {
                    self.derive_filter.entry(d).or_default().extend(r.selector.iter().cloned());
                }
                self.base_call(d, r)
            }
            DeclBody::Expr(other) => {
                self.problems.push(
                    Problem::new(
                        Code::TypeMismatch,
                        other.span(),
                        format!("a {} is made by a constructor call", decl.kind.keyword()),
                    )
                    .label("not a constructor call")
                    .help(format!(
                        "write e.g. `{} {} = {}(...)`",
                        decl.kind.keyword(),
                        decl.name.name,
                        crate::check::derive::ctors_for(decl.kind).split(", ").next().unwrap_or("ctor")
                    )),
                );
                None
            }
            DeclBody::Derive(dv) => {
                if dv.base.checkpoint.is_some() {
                    self.problems.push(
                        Problem::new(
                            Code::BadOverride,
                            dv.base.span,
                            "derive from a declaration, not from a checkpoint",
                        )
                        .label("checkpoint not allowed here")
                        .help(format!(
                            "write `{} with {{ policy: {}, ... }}` to start from the checkpoint",
                            dv.base.name.name,
                            self.sources.text(dv.base.span)
                        )),
                    );
                    return None;
                }
                if !dv.base.selector.is_empty() {
                    self.derive_filter.entry(d).or_default().extend(dv.base.selector.iter().cloned());
                }
                let mut call = self.base_call(d, &dv.base)?;
                let mut ok = crate::check::derive::check_override_set(&dv.overrides, &mut self.problems);
                for o in &dv.overrides {
                    ok &= apply_override(&mut call, o, &mut self.problems);
                }
                ok.then_some(call)
            }
        }
    }

    fn base_call(&mut self, d: usize, base: &Reference) -> Option<Call> {
        let decl = self.ns.decls[d];
        match self.ns.by_name.get(&base.name.name) {
            Some(Entry::Decl(b)) => {
                let b = *b;
                if self.ns.decls[b].kind != decl.kind {
                    self.problems.push(
                        Problem::new(
                            Code::WrongKind,
                            base.name.span,
                            format!(
                                "`{}` is a {}, but this is declared as a {}",
                                base.name.name,
                                self.ns.decls[b].kind.keyword(),
                                decl.kind.keyword()
                            ),
                        )
                        .label(format!("a {}", self.ns.decls[b].kind.keyword()))
                        .related(decl.kind_span, format!("declared as a {}", decl.kind.keyword()))
                        .help("a derived declaration has the kind of its base"),
                    );
                    return None;
                }
                // A derivation keeps its base's selection of members.
                if let Some(f) = self.derive_filter.get(&b).cloned() {
                    self.derive_filter.entry(d).or_default().extend(f);
                }
                // A failed base has already been reported; stay quiet.
                self.merged[b].clone()
            }
            Some(Entry::Let(_)) => {
                self.problems.push(
                    Problem::new(
                        Code::WrongKind,
                        base.name.span,
                        format!("`{}` is a constant, not a declaration", base.name.name),
                    )
                    .label("a `let` constant")
                    .help("derive from a declaration: `new = old with { ... }`"),
                );
                None
            }
            None => None, // reported as an unknown name
        }
    }

    fn expand_decl(&mut self, d: usize) -> bool {
        let Some(call) = self.merged_call(d) else { return false };
        let c = ctor(&call.callee.name).expect("normalized calls have known constructors");
        self.decls[d].ctor = Some(c);
        self.merged[d] = Some(call.clone());

        // 1. Find the grid: own sweep axes and inherited groups.
        let mut axes: Vec<Axis> = vec![];
        let mut groups: Vec<GroupFactor> = vec![];
        for arg in &call.args {
            let name = &arg.name.as_ref().expect("normalized").name;
            if let Some(p) = c.param(name) {
                self.discover(&arg.value, &p.ty, name.clone(), &mut axes, &mut groups, 0);
            }
        }
        // Short axis names, unless two axes would share one.
        let mut counts: HashMap<String, usize> = HashMap::new();
        for a in &axes {
            *counts.entry(a.name.clone()).or_default() += 1;
        }
        for a in &mut axes {
            if counts[&a.name] > 1 {
                a.name = a.path.clone();
            }
        }

        // 2. Typed values of each axis.
        let mut axis_values: Vec<Vec<Value>> = vec![];
        for a in &axes {
            let mut vals = vec![];
            for item in &a.items {
                let v = self.eval(item, &a.ty, &Choice::default(), &a.path);
                match v {
                    Some(v) => vals.push(v),
                    None => return false,
                }
            }
            if vals.is_empty() {
                self.problems.push(
                    Problem::new(Code::TypeMismatch, a.span, "a sweep needs at least one value")
                        .label("empty sweep")
                        .help("write `sweep [a, b, ...]`"),
                );
                return false;
            }
            axis_values.push(vals);
        }

        // 3. Enumerate consistent combinations, within the limit.
        let mut combos: Vec<Choice> = vec![Choice::default()];
        for (a, vals) in axes.iter().zip(&axis_values) {
            // Check the bound before building anything: a grid can be huge.
            if combos.len().saturating_mul(vals.len()) > self.max_instances {
                return self.too_many(d, a.span);
            }
            let mut next = vec![];
            for ch in &combos {
                for (i, v) in vals.iter().enumerate() {
                    if let Some(prev) = ch.assignment.get(&a.name) {
                        if prev != v {
                            continue;
                        }
                    }
                    let mut n = ch.clone();
                    n.sweep.insert(a.span, i);
                    n.assignment.insert(a.name.clone(), v.clone());
                    next.push(n);
                }
            }
            combos = next;
            if combos.len() > self.max_instances {
                return self.too_many(d, a.span);
            }
        }
        for g in &groups {
            if combos.len().saturating_mul(g.members.len()) > self.max_instances {
                return self.too_many(d, self.ns.decls[d].name.span);
            }
            let mut next = vec![];
            for ch in &combos {
                for m in &g.members {
                    let maxes = &self.instances[*m].axes;
                    if maxes.iter().all(|(k, v)| ch.assignment.get(k).is_none_or(|x| x == v)) {
                        let mut n = ch.clone();
                        n.group.insert(g.key.clone(), *m);
                        for (k, v) in maxes {
                            n.assignment.insert(k.clone(), v.clone());
                        }
                        next.push(n);
                    }
                }
            }
            combos = next;
            if combos.len() > self.max_instances {
                return self.too_many(d, self.ns.decls[d].name.span);
            }
        }
        // Derived from selected members: keep the matching part of the grid.
        if let Some(sel) = self.derive_filter.get(&d).cloned() {
            for s in &sel {
                let axis = s.path.dotted();
                if !combos.iter().any(|c| c.assignment.contains_key(&axis)) {
                    let axes: Vec<String> =
                        combos.first().map(|c| c.assignment.keys().cloned().collect()).unwrap_or_default();
                    self.problems.push(
                        Problem::new(Code::BadSelector, s.path.span, format!("the derived grid has no axis `{axis}`"))
                            .label("unknown axis")
                            .help(if axes.is_empty() {
                                "the base is not a sweep; derive from it without a selector".to_string()
                            } else {
                                format!("its axes are {}", axes.join(", "))
                            }),
                    );
                    return false;
                }
                let x: &Expander = self;
                combos.retain(|c| c.assignment.get(&axis).is_some_and(|v| matches_literal(&s.value, v, x)));
                if combos.is_empty() {
                    self.problems.push(
                        Problem::new(
                            Code::BadSelector,
                            s.span,
                            format!("no member has {axis} = {}", self.sources.text(s.value.span())),
                        )
                        .label("matches nothing")
                        .help("pick a value the base's sweep has"),
                    );
                    return false;
                }
            }
        }
        let mut axis_names: Vec<String> =
            combos.first().map(|c| c.assignment.keys().cloned().collect()).unwrap_or_default();
        axis_names.sort();
        self.decls[d].axes = axis_names;

        // 4. One instance per combination.
        let name = self.ns.decls[d].name.name.clone();
        for ch in combos {
            let mut args = BTreeMap::new();
            let mut ok = true;
            for p in c.params {
                let given = call.args.iter().find(|a| a.name.as_ref().map(|n| n.name.as_str()) == Some(p.name));
                match given {
                    Some(a) => match self.eval(&a.value, &p.ty, &ch, p.name) {
                        Some(v) => {
                            args.insert(p.name.to_string(), v);
                        }
                        None => ok = false,
                    },
                    None => match default_value(p.default) {
                        Some(v) => {
                            args.insert(p.name.to_string(), v);
                        }
                        None if p.default == crate::check::schema::Default::Required => {
                            self.problems.push(
                                Problem::new(
                                    Code::MissingArgument,
                                    call.callee.span,
                                    format!("`{}` needs the argument `{}`", c.name, p.name),
                                )
                                .label(format!("`{}` missing", p.name))
                                .help(format!("{}: {}", p.name, p.doc)),
                            );
                            ok = false;
                        }
                        None => {}
                    },
                }
            }
            if !ok {
                return false;
            }
            let iname = crate::check::program::InstanceName {
                decl: name.clone(),
                member: ch.assignment.iter().map(|(k, v)| (k.clone(), self.show(v))).collect(),
            };
            let label = iname.to_string();
            let inst = Instance {
                decl: d,
                name: iname,
                label,
                axes: ch.assignment.clone(),
                ctor: c,
                args,
                span: self.ns.decls[d].span,
            };
            let id = self.instances.len();
            self.instances.push(inst);
            self.decls[d].instances.push(id);
            let known = crate::check::validate::Known {
                instances: &self.instances,
                decls: &self.decls,
                problems: &mut self.problems,
            };
            if !crate::check::validate::validate_instance(known, id, self.ns.decls[d].span) {
                return false;
            }
        }
        true
    }

    fn too_many(&mut self, d: usize, span: Span) -> bool {
        self.problems.push(
            Problem::new(
                Code::SweepLimit,
                span,
                format!("`{}` would expand to more than {} instances", self.ns.decls[d].name.name, self.max_instances),
            )
            .label("this axis pushes it past the limit")
            .help("shrink the grid, or raise the limit with --max-sweep"),
        );
        false
    }

    fn discover(
        &mut self,
        e: &Expr,
        ty: &Ty,
        path: String,
        axes: &mut Vec<Axis>,
        groups: &mut Vec<GroupFactor>,
        depth: usize,
    ) {
        if depth > 64 {
            return;
        }
        match e {
            Expr::Sweep(items, span) => {
                if axes.iter().any(|a| a.span == *span) {
                    return; // the same constant used twice: one axis
                }
                for i in items {
                    if contains_sweep(i, self.ns) {
                        self.problems.push(
                            Problem::new(Code::TypeMismatch, i.span(), "a sweep cannot contain another sweep")
                                .label("nested sweep")
                                .help("put each axis on its own argument; the grid is their product"),
                        );
                        return;
                    }
                }
                let name = path.rsplit('.').next().unwrap_or(&path).to_string();
                axes.push(Axis { name, path, span: *span, ty: *ty, items: items.clone() });
            }
            Expr::Reference(r) => match self.ns.by_name.get(&r.name.name) {
                Some(Entry::Let(l)) => {
                    let v = &self.ns.lets[*l].value;
                    self.discover(v, ty, path, axes, groups, depth + 1);
                }
                Some(Entry::Decl(t)) => {
                    let t = *t;
                    if matches!(ty, Ty::List(_)) || self.failed.contains(&t) || self.decls[t].instances.is_empty() {
                        return;
                    }
                    if self.decls[t].instances.len() == 1 && self.instances[self.decls[t].instances[0]].axes.is_empty()
                    {
                        return;
                    }
                    let key = (t, self.selector_key(r));
                    if groups.iter().any(|g| g.key == key) {
                        return;
                    }
                    if let Some(members) = self.select(t, r) {
                        // Several members: one instance each. One member that
                        // carries axes (`d[world: summarize]`): it pins them.
                        if members.len() > 1 || members.iter().any(|m| !self.instances[*m].axes.is_empty()) {
                            groups.push(GroupFactor { key, members });
                        }
                    }
                }
                None => {}
            },
            Expr::Call(c) => {
                if let (Ty::Value(_), Some(k)) = (ty, ctor(&c.callee.name)) {
                    for a in &c.args {
                        let n = &a.name.as_ref().expect("normalized").name;
                        if let Some(p) = k.param(n) {
                            self.discover(&a.value, &p.ty, format!("{path}.{n}"), axes, groups, depth + 1);
                        }
                    }
                }
            }
            Expr::List(items, _) => {
                for i in items {
                    if contains_sweep(i, self.ns) {
                        self.problems.push(
                            Problem::new(Code::TypeMismatch, i.span(), "a sweep cannot sit inside a list")
                                .label("sweep inside a list")
                                .help("sweep over whole lists instead: `sweep [[a, b], [c]]`"),
                        );
                    }
                }
            }
            _ => {}
        }
    }

    pub fn selector_key(&self, r: &Reference) -> String {
        r.selector
            .iter()
            .map(|s| self.sources.text(s.span).split_whitespace().collect::<String>())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The members of declaration `t` that a reference's selector picks.
    pub fn select(&mut self, t: usize, r: &Reference) -> Option<Vec<InstanceId>> {
        let mut members = self.decls[t].instances.clone();
        for s in &r.selector {
            let axis = s.path.dotted();
            let has_axis = members.iter().any(|m| self.instances[*m].axes.contains_key(&axis));
            if !has_axis {
                let axes = self.decls[t].axes.clone();
                let mut p = Problem::new(
                    Code::BadSelector,
                    s.path.span,
                    format!("`{}` has no sweep axis `{axis}`", self.decls[t].name),
                )
                .label("unknown axis");
                p = match (did_you_mean(&axis, axes.iter().map(String::as_str)), axes.is_empty()) {
                    (_, true) => {
                        p.help(format!("`{}` is not a sweep; refer to it without a selector", self.decls[t].name))
                    }
                    (Some(s), _) => p.help(format!("did you mean `{s}`? its axes are {}", axes.join(", "))),
                    (None, _) => p.help(format!("its axes are {}", axes.join(", "))),
                };
                self.problems.push(p);
                return None;
            }
            let mut kept = vec![];
            let mut seen_values = vec![];
            for m in &members {
                if let Some(v) = self.instances[*m].axes.get(&axis) {
                    if matches_literal(&s.value, v, self) {
                        kept.push(*m);
                    }
                    let shown = self.show(v);
                    if !seen_values.contains(&shown) {
                        seen_values.push(shown);
                    }
                }
            }
            if kept.is_empty() {
                self.problems.push(
                    Problem::new(
                        Code::BadSelector,
                        s.span,
                        format!(
                            "no member of `{}` has {axis} = {}",
                            self.decls[t].name,
                            self.sources.text(s.value.span())
                        ),
                    )
                    .label("matches nothing")
                    .help(format!("its values of `{axis}` are {}", seen_values.join(", "))),
                );
                return None;
            }
            members = kept;
        }
        Some(members)
    }
}

fn default_value(d: crate::check::schema::Default) -> Option<Value> {
    use crate::check::schema::Default as D;
    match d {
        D::Int(v) => Some(Value::Int(v)),
        D::Float(v) => Some(Value::Float(v)),
        D::Str(s) => Some(Value::Str(s.to_string())),
        D::Bool(b) => Some(Value::Bool(b)),
        D::Required | D::Optional => None,
    }
}

fn contains_sweep(e: &Expr, ns: &Namespace) -> bool {
    contains_sweep_depth(e, ns, 0)
}

fn contains_sweep_depth(e: &Expr, ns: &Namespace, depth: usize) -> bool {
    if depth > 64 {
        return false;
    }
    match e {
        Expr::Sweep(..) => true,
        Expr::List(items, _) => items.iter().any(|i| contains_sweep_depth(i, ns, depth + 1)),
        Expr::Call(c) => c.args.iter().any(|a| contains_sweep_depth(&a.value, ns, depth + 1)),
        Expr::Reference(r) => match ns.by_name.get(&r.name.name) {
            Some(Entry::Let(l)) => contains_sweep_depth(&ns.lets[*l].value, ns, depth + 1),
            _ => false,
        },
        _ => false,
    }
}

/// Does a selector's literal equal an axis value? Numbers compare by value
/// (`1e-5` selects `0.00001`), references by the instance they name.
fn matches_literal(e: &Expr, v: &Value, x: &Expander) -> bool {
    match (e, v) {
        (Expr::Number(n, _), Value::Int(i)) => n.as_i64() == Some(*i),
        (Expr::Number(n, _), Value::Float(f)) => n.as_f64() == Some(*f),
        (Expr::String(s, _), Value::Str(t)) => s == t,
        (Expr::Bool(b, _), Value::Bool(c)) => b == c,
        (Expr::Reference(r), Value::Instance(i)) => {
            x.label(*i) == r.name.name || x.decls[x.instances[*i].decl].name == r.name.name
        }
        (Expr::Reference(r), other) => match x.ns.by_name.get(&r.name.name) {
            Some(Entry::Let(l)) => matches_literal(&x.ns.lets[*l].value, other, x),
            _ => false,
        },
        (Expr::Call(c), Value::Call { ctor, .. }) => c.callee.name == ctor.name && c.args.is_empty(),
        _ => false,
    }
}
