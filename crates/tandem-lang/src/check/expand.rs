//! Expanding declarations into instances.
//!
//! A declaration with `sweep [...]` axes becomes one instance per combination.
//! A declaration that uses a swept declaration where one value is expected
//! (`replay(online)` when `online` sweeps `seed`) inherits that sweep: it gets
//! one instance per member and carries the member's axes, so `tandem[seed=1]`
//! replays `online[seed=1]`. In a list position (`policies: [online]`) a swept
//! declaration stands for all its members.
//!
//! Axes are joined only when they are the same axis ([`AxisId`]: the same
//! `sweep [...]` in the source), never because two parameters share a name.
//! A declaration whose axes leave no consistent member is an error, not an
//! empty grid.
//!
//! Arguments are typed against the constructor table as they are evaluated:
//! see `eval.rs`.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::check::derive::{apply_override, check_decl_ctor, normalize_call};
use crate::check::names::{Entry, Namespace};
use crate::check::program::{display_value, AxisId, AxisName, DeclInfo, Instance, InstanceId, Value};
use crate::check::schema::{ctor, Ctor, Ty};
use crate::diagnostic::{did_you_mean, Code, Problem};
use crate::source::{SourceMap, Span};
use crate::syntax::ast::{Call, DeclBody, Expr, Reference};

/// One of a declaration's own sweep axes.
#[derive(Debug, Clone)]
pub struct Axis {
    pub id: AxisId,
    /// The parameters it is given to (two for a `let` sweep used twice).
    pub paths: Vec<String>,
    pub span: Span,
    pub ty: Ty,
    pub items: Vec<Expr>,
}

/// A swept declaration used where a single value is expected.
#[derive(Debug, Clone)]
pub struct GroupFactor {
    pub key: FactorKey,
    pub members: Vec<InstanceId>,
    /// The parameter it is used in, to name its axes when they clash with others.
    pub via: String,
    pub span: Span,
}

pub type FactorKey = (usize, String);

/// The choices that pick one instance out of a declaration's grid.
#[derive(Debug, Clone, Default)]
pub struct Choice {
    pub sweep: HashMap<Span, usize>,
    pub group: HashMap<FactorKey, InstanceId>,
    pub assignment: BTreeMap<AxisId, Value>,
}

pub struct Expander<'a> {
    pub ns: &'a Namespace<'a>,
    pub sources: &'a SourceMap,
    pub max_instances: usize,
    /// The most instances of all declarations together (the plan's bound).
    pub max_total: usize,
    pub decls: Vec<DeclInfo>,
    pub merged: Vec<Option<Call>>,
    /// Declarations whose merged call has been made (or attempted).
    merge_tried: HashSet<usize>,
    pub instances: Vec<Instance>,
    pub problems: Vec<Problem>,
    pub failed: HashSet<usize>,
    /// A derivation's base members (all of them, or those its selector picks):
    /// the derived grid keeps the members that agree with one of them on the
    /// axes they share. An axis the derivation overrides is no longer shared.
    pub derive_from: HashMap<usize, Vec<InstanceId>>,
    /// Each axis's name and span where its sweep is written, for messages.
    pub axis_origin: HashMap<AxisId, (String, Span)>,
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
            max_total: usize::MAX,
            decls,
            merged: vec![None; ns.decls.len()],
            merge_tried: HashSet::new(),
            instances: vec![],
            problems: vec![],
            failed: HashSet::new(),
            derive_from: HashMap::new(),
            axis_origin: HashMap::new(),
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
            let broken = self.ns.broken.contains(&Entry::Decl(d));
            if !ok || broken || self.problems.len() > before {
                self.failed.insert(d);
            }
            if self.problems.iter().any(|p| p.code == Code::PlanLimit) {
                break; // the rest would only use more memory to say the same
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
            DeclBody::Expr(Expr::Reference(r)) if r.checkpoint.is_none() => self.base_call(d, r),
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
                // The base's call, made now if the base comes later in the
                // order (a derivation needs only its text). A base whose call
                // failed has already been reported; stay quiet.
                let call = self.merged_of(b)?;
                if !self.ns.needs_base_members.contains(&d) {
                    return Some(call);
                }
                // The chain selects members, so the base was expanded first.
                if self.failed.contains(&b) {
                    // Check the derivation's own arguments, but never plan it.
                    self.failed.insert(d);
                    return Some(call);
                }
                // The members it derives from: a derivation of a derivation
                // keeps the first one's selection, since its base has only those.
                let from =
                    if base.selector.is_empty() { self.decls[b].instances.clone() } else { self.select(b, base)? };
                self.derive_from.insert(d, from);
                Some(call)
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

    /// A declaration's call with its derivation applied, made once.
    fn merged_of(&mut self, d: usize) -> Option<Call> {
        if !self.merge_tried.insert(d) {
            return self.merged[d].clone();
        }
        let call = self.merged_call(d);
        self.merged[d] = call.clone();
        call
    }

    /// A declaration's instances, one per member of its grid, each
    /// validated: false when the declaration (or a value in it) is in error.
    fn expand_decl(&mut self, d: usize) -> bool {
        let Some(call) = self.merged_of(d) else { return false };
        let c = ctor(&call.callee.name).expect("normalized calls have known constructors");
        self.decls[d].ctor = Some(c);
        let (axes, groups) = self.find_grid(&call, c);
        let Some((axis_values, bad_values)) = self.axis_values(&axes) else { return false };
        let Some(combos) = self.combinations(d, &axes, &axis_values, &groups) else { return false };
        let Some(combos) = self.keep_derived(d, combos) else { return false };
        self.decls[d].axes = self.axis_names(&axes, &groups);
        self.instantiate(d, c, &call, combos) && !bad_values
    }

    /// The grid: the call's own sweep axes and the groups it inherits.
    fn find_grid(&mut self, call: &Call, c: &'static Ctor) -> (Vec<Axis>, Vec<GroupFactor>) {
        let mut axes: Vec<Axis> = vec![];
        let mut groups: Vec<GroupFactor> = vec![];
        for arg in &call.args {
            let name = &arg.name.as_ref().expect("normalized").name;
            if let Some(p) = c.param(name) {
                self.discover(&arg.value, &p.ty, name.clone(), &mut axes, &mut groups, 0);
            }
        }
        for a in &axes {
            self.axis_origin.entry(a.id).or_insert_with(|| (leaf(&a.paths[0]).to_string(), a.span));
        }
        (axes, groups)
    }

    /// Typed values of each axis, as (index in the sweep as written, value),
    /// and whether any was bad. A bad value is reported and left out, so the
    /// rest of the declaration is still checked with the good ones; None
    /// when an axis has no good value at all.
    #[allow(clippy::type_complexity)]
    fn axis_values(&mut self, axes: &[Axis]) -> Option<(Vec<Vec<(usize, Value)>>, bool)> {
        let mut axis_values = vec![];
        let mut bad_values = false;
        for a in axes {
            let mut vals = vec![];
            for (i, item) in a.items.iter().enumerate() {
                if let Some(v) = self.eval(item, &a.ty, &Choice::default(), &a.paths[0]) {
                    vals.push((i, v));
                }
            }
            if a.items.is_empty() {
                self.problems.push(
                    Problem::new(Code::TypeMismatch, a.span, "a sweep needs at least one value")
                        .label("empty sweep")
                        .help("write `sweep [a, b, ...]`"),
                );
                return None;
            }
            if vals.is_empty() {
                return None; // every value reported
            }
            self.report_repeated_values(a, &vals);
            bad_values |= vals.len() < a.items.len();
            axis_values.push(vals);
        }
        Some((axis_values, bad_values))
    }

    /// The same value twice is one member, not two: say so, since a sweep
    /// written `[1e-4, 0.0001]` looks like two configurations.
    fn report_repeated_values(&mut self, a: &Axis, vals: &[(usize, Value)]) {
        for (k, (i, v)) in vals.iter().enumerate() {
            if let Some((first, _)) = vals[..k].iter().find(|(_, w)| w == v) {
                self.problems.push(
                    Problem::new(
                        Code::DuplicateSweepValue,
                        a.items[*i].span(),
                        format!("this sweep lists the value of item {} again: the two are one member", first + 1),
                    )
                    .label("the same value again")
                    .help("remove the repeat, or write the value you meant"),
                );
            }
        }
    }

    /// Every consistent combination of the axes' values and the groups'
    /// members, within the limit (checked before building: a grid can be huge).
    fn combinations(
        &mut self,
        d: usize,
        axes: &[Axis],
        axis_values: &[Vec<(usize, Value)>],
        groups: &[GroupFactor],
    ) -> Option<Vec<Choice>> {
        let mut combos: Vec<Choice> = vec![Choice::default()];
        for (a, vals) in axes.iter().zip(axis_values) {
            if combos.len().saturating_mul(vals.len()) > self.max_instances {
                self.too_many(d, a.span);
                return None;
            }
            let mut next = vec![];
            for ch in &combos {
                for (i, v) in vals {
                    let mut n = ch.clone();
                    n.sweep.insert(a.span, *i);
                    n.assignment.insert(a.id, v.clone());
                    next.push(n);
                }
            }
            combos = next;
            if combos.len() > self.max_instances {
                self.too_many(d, a.span);
                return None;
            }
        }
        for g in groups {
            if combos.len().saturating_mul(g.members.len()) > self.max_instances {
                self.too_many(d, self.ns.decls[d].name.span);
                return None;
            }
            let next = self.join_group(&combos, g);
            if next.is_empty() && !combos.is_empty() {
                self.report_no_members(d, g, &combos);
                return None;
            }
            combos = next;
            if combos.len() > self.max_instances {
                self.too_many(d, self.ns.decls[d].name.span);
                return None;
            }
        }
        Some(combos)
    }

    /// Each combination extended by each member of an inherited group that
    /// agrees with it on every axis both have.
    fn join_group(&self, combos: &[Choice], g: &GroupFactor) -> Vec<Choice> {
        let mut next = vec![];
        for ch in combos {
            for m in &g.members {
                let maxes = &self.instances[*m].axes;
                if maxes.iter().all(|(k, v)| ch.assignment.get(k).is_none_or(|x| x == v)) {
                    let mut n = ch.clone();
                    n.group.insert(g.key.clone(), *m);
                    for (k, v) in maxes {
                        n.assignment.insert(*k, v.clone());
                    }
                    next.push(n);
                }
            }
        }
        next
    }

    /// Derived from (selected) members: keep the members of the derived
    /// grid that agree with one of them on every axis both have.
    fn keep_derived(&mut self, d: usize, mut combos: Vec<Choice>) -> Option<Vec<Choice>> {
        let Some(from) = self.derive_from.get(&d).cloned() else { return Some(combos) };
        let instances = &self.instances;
        combos.retain(|c| {
            from.iter().any(|m| instances[*m].axes.iter().all(|(k, v)| c.assignment.get(k).is_none_or(|x| x == v)))
        });
        if combos.is_empty() {
            self.problems.push(
                Problem::new(
                    Code::NoMembers,
                    self.ns.decls[d].name.span,
                    format!("`{}` has no member that agrees with the members it derives from", self.ns.decls[d].name.name),
                )
                .label("no members")
                .help("its overrides leave no combination its base's selection allows; select other members or override fewer axes"),
            );
            return None;
        }
        Some(combos)
    }

    /// One validated instance per combination, within the plan's bound.
    fn instantiate(&mut self, d: usize, c: &'static Ctor, call: &Call, combos: Vec<Choice>) -> bool {
        if self.instances.len().saturating_add(combos.len()) > self.max_total {
            self.problems.push(
                Problem::new(
                    Code::PlanLimit,
                    self.ns.decls[d].name.span,
                    format!(
                        "the plan would have more than {} nodes; `{}` pushes it past",
                        self.max_total, self.ns.decls[d].name.name
                    ),
                )
                .label("expands past the bound")
                .help("shrink the sweeps, or raise the bound with --max-nodes"),
            );
            return false;
        }
        let name = self.ns.decls[d].name.name.clone();
        for ch in combos {
            let Some(args) = self.call_args(c, call, &ch) else { return false };
            let member = self.decls[d]
                .axes
                .iter()
                .filter_map(|a| ch.assignment.get(&a.id).map(|v| (a.name.clone(), self.show(v))))
                .collect();
            let iname = crate::check::program::InstanceName { decl: name.clone(), member };
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

    fn too_many(&mut self, d: usize, span: Span) {
        self.problems.push(
            Problem::new(
                Code::SweepLimit,
                span,
                format!("`{}` would expand to more than {} instances", self.ns.decls[d].name.name, self.max_instances),
            )
            .label("this axis pushes it past the limit")
            .help("shrink the grid, or raise the limit with --max-sweep"),
        );
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
                if let Some(a) = axes.iter_mut().find(|a| a.span == *span) {
                    // The same `let` sweep used twice: one axis, both parameters named.
                    if !a.paths.contains(&path) {
                        a.paths.push(path);
                    }
                    return;
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
                axes.push(Axis {
                    id: AxisId::from(*span),
                    paths: vec![path],
                    span: *span,
                    ty: *ty,
                    items: items.clone(),
                });
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
                            groups.push(GroupFactor { key, members, via: path, span: r.span });
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

    /// The members of declaration `t` that a reference's selector picks. A
    /// selector names an axis as the members show it and gives a value as
    /// the plan prints it (numbers by value, so `1e-5` picks `0.00001`; calls
    /// with their arguments, so `loss: dpo(beta: 0.5)` works).
    pub fn select(&mut self, t: usize, r: &Reference) -> Option<Vec<InstanceId>> {
        let mut members = self.decls[t].instances.clone();
        for s in &r.selector {
            let axis = s.path.dotted();
            let Some(named) = self.decls[t].axes.iter().find(|a| a.name == axis).cloned() else {
                let axes: Vec<String> = self.decls[t].axes.iter().map(|a| a.name.clone()).collect();
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
            };
            let said = self.problems.len();
            let Some(wanted) = self.eval(&s.value, &named.ty, &Choice::default(), &axis) else {
                // A sweep (or a constant holding one) has no single value
                // here: say so, or the reference would select nothing in silence.
                if self.problems.len() == said {
                    self.problems.push(
                        Problem::new(
                            Code::BadSelector,
                            s.value.span(),
                            format!("a selector takes one value of `{axis}`, and this is a sweep"),
                        )
                        .label("a sweep")
                        .help("write one value, e.g. `offline[hide_best: 0.15]`; for several, one reference per value"),
                    );
                }
                return None;
            };
            let mut kept = vec![];
            let mut seen_values = vec![];
            for m in &members {
                if let Some(v) = self.instances[*m].axes.get(&named.id) {
                    if *v == wanted {
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

    /// The names a declaration's members show for its axes: each own axis by
    /// its parameter (`lr`, or `loss.beta` when two parameters end alike),
    /// each inherited axis by the name its declaration gave it (prefixed with
    /// the parameter it came through, `policy.seed`, when it clashes).
    fn axis_names(&self, axes: &[Axis], groups: &[GroupFactor]) -> Vec<AxisName> {
        // (short name, long name, axis, type)
        let mut entries: Vec<(String, String, AxisId, Ty)> = vec![];
        for a in axes {
            for p in &a.paths {
                entries.push((leaf(p).to_string(), p.clone(), a.id, a.ty));
            }
        }
        for g in groups {
            let carried: HashSet<AxisId> =
                g.members.iter().flat_map(|m| self.instances[*m].axes.keys().copied()).collect();
            let t = self.instances[g.members[0]].decl;
            for n in &self.decls[t].axes {
                if carried.contains(&n.id) {
                    entries.push((n.name.clone(), format!("{}.{}", g.via, n.name), n.id, n.ty));
                }
            }
        }
        let mut seen = HashSet::new();
        entries.retain(|(short, _, id, _)| seen.insert((short.clone(), *id)));
        let mut ids_by_short: HashMap<&str, HashSet<AxisId>> = HashMap::new();
        for (short, _, id, _) in &entries {
            ids_by_short.entry(short).or_default().insert(*id);
        }
        let mut names: Vec<AxisName> = entries
            .iter()
            .map(|(short, long, id, ty)| {
                let name = if ids_by_short[short.as_str()].len() > 1 { long.clone() } else { short.clone() };
                AxisName { name, id: *id, ty: *ty }
            })
            .collect();
        let mut seen = HashSet::new();
        names.retain(|n| seen.insert((n.name.clone(), n.id)));
        // Two different axes still under one name (the same parameter path
        // reached twice): number them so a selector can tell them apart.
        let mut count: HashMap<String, usize> = HashMap::new();
        for n in &names {
            *count.entry(n.name.clone()).or_default() += 1;
        }
        let mut k: HashMap<String, usize> = HashMap::new();
        for n in &mut names {
            if count[&n.name] > 1 {
                let i = k.entry(n.name.clone()).or_default();
                *i += 1;
                n.name = format!("{}{}", n.name, i);
            }
        }
        names.sort_by(|a, b| a.name.cmp(&b.name));
        names
    }

    /// A group (a swept declaration used in one argument) that agrees with
    /// none of the combinations built so far: say which axis conflicts.
    fn report_no_members(&mut self, d: usize, g: &GroupFactor, combos: &[Choice]) {
        let mut conflict = None;
        let ids: Vec<AxisId> = g.members.iter().flat_map(|m| self.instances[*m].axes.keys().copied()).collect();
        for id in ids {
            let mine: Vec<&Value> = g.members.iter().filter_map(|m| self.instances[*m].axes.get(&id)).collect();
            let rest: Vec<&Value> = combos.iter().filter_map(|c| c.assignment.get(&id)).collect();
            if !rest.is_empty() && !mine.iter().any(|v| rest.contains(v)) {
                conflict = Some((id, mine, rest));
                break;
            }
        }
        let name = &self.ns.decls[d].name.name;
        let via = &g.via;
        let show_set = |vals: &[&Value], x: &Expander| {
            let mut shown: Vec<String> = vec![];
            for v in vals {
                let s = x.show(v);
                if !shown.contains(&s) {
                    shown.push(s);
                }
            }
            shown.join(", ")
        };
        let mut problem = match conflict {
            Some((id, mine, rest)) => {
                let (axis, at) = self.axis_origin.get(&id).cloned().unwrap_or_else(|| ("?".into(), g.span));
                Problem::new(
                    Code::NoMembers,
                    g.span,
                    format!(
                        "`{name}` has no members: `{via}` has {axis} = {}, its other arguments have {axis} = {}",
                        show_set(&mine, self),
                        show_set(&rest, self)
                    ),
                )
                .related(at, format!("both take `{axis}` from this sweep"))
                .help(format!("one sweep has one value per member; select members that agree on `{axis}`"))
            }
            None => Problem::new(
                Code::NoMembers,
                g.span,
                format!("`{name}` has no members: `{via}` agrees with none of the combinations of its other arguments"),
            )
            .help("select members of the swept declarations that agree on the axes they share"),
        };
        problem = problem.label("agrees with no other argument");
        self.problems.push(problem);
    }
}

/// The last part of a parameter path: `beta` of `loss.beta`.
fn leaf(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
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

#[cfg(test)]
mod tests {
    use crate::check::{errors_of, warnings_of};
    use crate::diagnostic::Code;

    const BASE: &str = "world w = summarize(seed: 1, vocab: 24, prompt_len: 6, response_len: 8)\ndataset d = generate(w, pairs: 200)\nmodel sft = sft(d, layers: 1, width: 16, heads: 2, steps: 20)\nmodel pm = pm(d, layers: 1, width: 16, heads: 2, steps: 20)\n";

    /// A warning, not an error: the two spellings are one member.
    #[test]
    fn a_repeated_sweep_value_points_at_the_repeat() {
        let text = format!("{BASE}model m = sft(d, lr: sweep [1e-4, 0.0001])");
        assert_eq!(errors_of(&text), vec![]);
        assert_eq!(warnings_of(&text), vec![(Code::DuplicateSweepValue, "0.0001".into())]);
    }

    #[test]
    fn an_empty_sweep_points_at_the_sweep() {
        let found = errors_of(&format!("{BASE}model m = sft(d, lr: sweep [])"));
        assert_eq!(found, vec![(Code::TypeMismatch, "sweep []".into())]);
    }

    /// A missing argument of a declaration and of a value constructor are
    /// reported alike (one function fills both in), at the callee.
    #[test]
    fn a_missing_argument_points_at_the_callee_of_a_declaration_or_a_value() {
        assert_eq!(
            errors_of(&format!("{BASE}run r = train(loss: ipo(), sampler: offline(d))")),
            vec![(Code::MissingArgument, "train".into())]
        );
        assert_eq!(
            errors_of(&format!("{BASE}run r = train(sft, loss: ipo(), sampler: offline())")),
            vec![(Code::MissingArgument, "offline".into())]
        );
    }

    #[test]
    fn a_grid_past_the_limit_points_at_the_axis_that_crosses_it() {
        // 400 × 400 members: past the default limit of 100,000 at the second axis.
        let sweep = |from: usize| {
            format!("sweep [{}]", (from..from + 400).map(|i| i.to_string()).collect::<Vec<_>>().join(", "))
        };
        let (steps, seeds) = (sweep(1), sweep(1000));
        let text = format!("{BASE}model m = sft(d, steps: {steps}, seed: {seeds})");
        assert_eq!(errors_of(&text), vec![(Code::SweepLimit, seeds)]);
    }
}
