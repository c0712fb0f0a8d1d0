//! Typing one argument: an expression and the parameter type it must fit
//! become a [`Value`], with a diagnostic for every mismatch.

use std::collections::BTreeMap;

use crate::check::derive::unknown_arg;
use crate::check::expand::{Choice, Expander};
use crate::check::names::Entry;
use crate::check::program::{InstanceId, SaveSchedule, Value};
use crate::check::schema::{ctor, Category, Ctor, CtorKind, Default, Entity, Ty};
use crate::diagnostic::{did_you_mean, Code, Problem};
use crate::source::Span;
use crate::syntax::ast::{Call, CheckpointRef, Expr, Reference};

fn found(e: &Expr) -> &'static str {
    match e {
        Expr::Number(..) => "a number",
        Expr::String(..) => "a string",
        Expr::Bool(..) => "a boolean",
        Expr::List(..) => "a list",
        Expr::Sweep(..) => "a sweep",
        Expr::Call(_) => "a call",
        Expr::Reference(_) => "a name",
    }
}

impl<'a> Expander<'a> {
    fn mismatch(&mut self, e: &Expr, ty: &Ty, param: &str) {
        self.problems.push(
            Problem::new(
                Code::TypeMismatch,
                e.span(),
                format!("`{param}` expects {}, found {}", ty.describe(), found(e)),
            )
            .label(format!("expected {}", ty.describe()))
            .help(type_help(ty)),
        );
    }

    pub fn eval(&mut self, e: &Expr, ty: &Ty, ch: &Choice, param: &str) -> Option<Value> {
        // A sweep evaluates to the value chosen for this instance; a constant to its value.
        if let Expr::Sweep(items, span) = e {
            let i = *ch.sweep.get(span)?;
            return self.eval(&items[i], ty, ch, param);
        }
        if let Expr::Reference(r) = e {
            if let Some(Entry::Let(l)) = self.ns.by_name.get(&r.name.name) {
                return self.eval_constant(r, *l, ty, ch, param);
            }
        }
        match ty {
            Ty::Int { min, max } => self.eval_int(e, ty, (*min, *max), param),
            Ty::Float { min, open_min, max } => self.eval_float(e, ty, (*min, *open_min, *max), param),
            Ty::Str { choices } => self.eval_str(e, ty, choices, param),
            Ty::Bool => match e {
                Expr::Bool(b, _) => Some(Value::Bool(*b)),
                _ => {
                    self.mismatch(e, ty, param);
                    None
                }
            },
            Ty::List(inner) => self.eval_list(e, ty, inner, ch, param),
            Ty::Ref(_) | Ty::OnlineRun => self.eval_reference(e, ty, ch, param),
            Ty::Value(cat) => self.eval_call(e, ty, *cat, ch, param),
        }
    }

    /// A `let` constant where a value is expected: its value, evaluated.
    fn eval_constant(&mut self, r: &Reference, l: usize, ty: &Ty, ch: &Choice, param: &str) -> Option<Value> {
        if !r.selector.is_empty() || r.checkpoint.is_some() {
            self.problems.push(
                Problem::new(
                    Code::WrongKind,
                    r.span,
                    format!("`{}` is a constant; only declarations have members or checkpoints", r.name.name),
                )
                .label("a `let` constant")
                .help("use the constant's name alone"),
            );
            return None;
        }
        // Constants may refer to constants; bound the chain so no input can exhaust the stack.
        if self.let_depth > crate::syntax::parser::MAX_NESTING {
            self.problems.push(
                Problem::new(Code::Cycle, r.span, "constants refer to each other too deeply")
                    .label("chain of constants")
                    .help("shorten the chain of `let` constants"),
            );
            return None;
        }
        let v = self.ns.lets[l].value.clone();
        self.let_depth += 1;
        let out = self.eval(&v, ty, ch, param);
        self.let_depth -= 1;
        out
    }

    fn eval_int(&mut self, e: &Expr, ty: &Ty, (min, max): (i64, i64), param: &str) -> Option<Value> {
        let Expr::Number(n, span) = e else {
            self.mismatch(e, ty, param);
            return None;
        };
        let Some(v) = n.as_i64() else {
            let written = self.sources.text(*span).to_string();
            if n.is_integral() {
                // A whole number, only too large for any integer tandem keeps.
                self.problems.push(
                    Problem::new(
                        Code::OutOfRange,
                        *span,
                        format!("`{param}`: {written} is a whole number too large for a 64-bit integer"),
                    )
                    .label("too large")
                    .help(format!("choose a value of `{param}` that is {}", range_text_int(min, max))),
                );
                return None;
            }
            self.problems.push(
                Problem::new(Code::TypeMismatch, *span, format!("`{param}` expects an integer, found {written}"))
                    .label("not an integer")
                    .help("write a whole number, e.g. 800, 4k or 2e4"),
            );
            return None;
        };
        if v < min || v > max {
            self.out_of_range(*span, param, &format!("{v}"), &range_text_int(min, max));
            return None;
        }
        Some(Value::Int(v))
    }

    fn eval_float(&mut self, e: &Expr, ty: &Ty, (min, open_min, max): (f64, bool, f64), param: &str) -> Option<Value> {
        let Expr::Number(n, span) = e else {
            self.mismatch(e, ty, param);
            return None;
        };
        let Some(v) = n.as_f64() else {
            self.out_of_range(*span, param, &n.to_string(), "a finite number");
            return None;
        };
        let written = self.sources.text(*span).to_string();
        if v == 0.0 && !n.is_zero() {
            self.problems.push(
                Problem::new(
                    Code::OutOfRange,
                    *span,
                    format!("`{param}`: {written} is too small for a 64-bit float, which rounds it to 0"),
                )
                .label("rounds to 0")
                .help(format!("choose a value of `{param}` that is {}", range_text_float(min, open_min, max))),
            );
            return None;
        }
        let below = if open_min { v <= min } else { v < min };
        if below || v > max {
            self.out_of_range(*span, param, &written, &range_text_float(min, open_min, max));
            return None;
        }
        // -0.0 and 0.0 are the same value.
        Some(Value::Float(if v == 0.0 { 0.0 } else { v }))
    }

    fn eval_str(&mut self, e: &Expr, ty: &Ty, choices: &[&str], param: &str) -> Option<Value> {
        let Expr::String(s, span) = e else {
            self.mismatch(e, ty, param);
            return None;
        };
        if !choices.is_empty() && !choices.contains(&s.as_str()) {
            let mut p =
                Problem::new(Code::OutOfRange, *span, format!("`{param}` must be {}, found \"{s}\"", ty.describe()))
                    .label("not one of the choices");
            if let Some(m) = did_you_mean(s, choices.iter().copied()) {
                p = p.help(format!("did you mean \"{m}\"?"));
            } else {
                p = p.help(format!("choose {}", ty.describe()));
            }
            self.problems.push(p);
            return None;
        }
        Some(Value::Str(s.clone()))
    }

    /// A list, each item of type `inner`; a swept declaration in it stands
    /// for its members.
    fn eval_list(&mut self, e: &Expr, ty: &Ty, inner: &Ty, ch: &Choice, param: &str) -> Option<Value> {
        let Expr::List(items, _) = e else {
            // A lone reference where a list is expected: a list of one (or of all its members).
            if let (Expr::Reference(_), Ty::Ref(_)) = (e, inner) {
                return self.eval(&Expr::List(vec![e.clone()], e.span()), ty, ch, param);
            }
            self.mismatch(e, ty, param);
            return None;
        };
        let mut out = vec![];
        let mut ok = true;
        for item in items {
            match (item, inner) {
                // A swept declaration in a list stands for its members.
                // `online@800` likewise: every member's checkpoint at that step.
                (Expr::Reference(r), Ty::Ref(_)) if self.is_group(r) => match self.group_members(r, ch) {
                    Some(ms) => {
                        for m in ms {
                            let v = match &r.checkpoint {
                                None => self.check_entity(r, m, inner, param),
                                Some(cp) => self.checkpoint(r, cp, m, inner, param),
                            };
                            match v {
                                Some(v) => out.push(v),
                                None => ok = false,
                            }
                        }
                    }
                    None => ok = false,
                },
                _ => match self.eval(item, inner, ch, param) {
                    Some(v) => out.push(v),
                    None => ok = false,
                },
            }
        }
        ok.then_some(Value::List(out))
    }

    /// A reference to one declaration's instance, or one of its checkpoints.
    fn eval_reference(&mut self, e: &Expr, ty: &Ty, ch: &Choice, param: &str) -> Option<Value> {
        let Expr::Reference(r) = e else {
            self.mismatch(e, ty, param);
            return None;
        };
        let inst = self.single_member(r, ch)?;
        match &r.checkpoint {
            None => self.check_entity(r, inst, ty, param),
            Some(cp) => self.checkpoint(r, cp, inst, ty, param),
        }
    }

    /// A call to a value constructor (`ipo(beta: 0.1)`), its defaults filled in.
    fn eval_call(&mut self, e: &Expr, ty: &Ty, cat: Category, ch: &Choice, param: &str) -> Option<Value> {
        let Expr::Call(c) = e else {
            self.mismatch(e, ty, param);
            return None;
        };
        let Some(k) = ctor(&c.callee.name) else {
            self.problems.push(crate::check::derive::unknown_ctor(&c.callee, Some(cat.describe())));
            return None;
        };
        if k.kind != CtorKind::Value(cat) {
            self.problems.push(
                Problem::new(
                    Code::WrongKind,
                    c.callee.span,
                    format!("`{param}` expects {}, but `{}` is not one", cat.describe(), k.name),
                )
                .label(format!("expected {}", cat.describe()))
                .help(format!("use {}", cat.describe())),
            );
            return None;
        }
        let mut ok = true;
        for a in &c.args {
            let n = a.name.as_ref().expect("normalized");
            if k.param(&n.name).is_none() {
                self.problems.push(unknown_arg(k, n));
                ok = false;
            }
        }
        let args = self.call_args(k, c, ch)?;
        ok.then_some(Value::Call { ctor: k, args })
    }

    /// A call's arguments, typed: each parameter's given value under the
    /// member's choice, or its default. None (every problem reported) when
    /// one is in error or a required one is missing. A declaration's call
    /// (`expand.rs`) and a value constructor's (`ipo(beta: 0.1)`) are
    /// filled in here alike.
    pub(super) fn call_args(&mut self, k: &'static Ctor, c: &Call, ch: &Choice) -> Option<BTreeMap<String, Value>> {
        let mut args = BTreeMap::new();
        let mut ok = true;
        for p in k.params {
            let given = c.args.iter().find(|a| a.name.as_ref().map(|n| n.name.as_str()) == Some(p.name));
            let value = match (given, p.default) {
                (Some(a), _) => self.eval(&a.value, &p.ty, ch, p.name),
                (None, Default::Required) => {
                    self.problems.push(
                        Problem::new(
                            Code::MissingArgument,
                            c.callee.span,
                            format!("`{}` needs the argument `{}`", k.name, p.name),
                        )
                        .label(format!("`{}` missing", p.name))
                        .help(format!("{}: {}", p.name, p.doc)),
                    );
                    None
                }
                (None, Default::Optional) => continue,
                (None, Default::Int(v)) => Some(Value::Int(v)),
                (None, Default::Float(v)) => Some(Value::Float(v)),
                (None, Default::Str(v)) => Some(Value::Str(v.into())),
                (None, Default::Bool(v)) => Some(Value::Bool(v)),
            };
            match value {
                Some(v) => {
                    args.insert(p.name.to_string(), v);
                }
                None => ok = false,
            }
        }
        ok.then_some(args)
    }

    fn out_of_range(&mut self, span: Span, param: &str, value: &str, range: &str) {
        self.problems.push(
            Problem::new(Code::OutOfRange, span, format!("`{param}` must be {range}, found {value}"))
                .label("out of range")
                .help(format!("choose a value of `{param}` that is {range}")),
        );
    }

    fn target_decl(&self, r: &Reference) -> Option<usize> {
        match self.ns.by_name.get(&r.name.name) {
            Some(Entry::Decl(d)) => Some(*d),
            _ => None,
        }
    }

    fn is_group(&self, r: &Reference) -> bool {
        self.target_decl(r).is_some_and(|d| self.decls[d].instances.len() > 1)
    }

    /// All members of a referenced declaration that agree with this instance's axes.
    fn group_members(&mut self, r: &Reference, ch: &Choice) -> Option<Vec<InstanceId>> {
        let d = self.target_decl(r)?;
        if self.failed.contains(&d) {
            return None;
        }
        let members = self.select(d, r)?;
        Some(
            members
                .into_iter()
                .filter(|m| self.instances[*m].axes.iter().all(|(k, v)| ch.assignment.get(k).is_none_or(|x| x == v)))
                .collect(),
        )
    }

    /// The one member a reference in a single-value position stands for.
    fn single_member(&mut self, r: &Reference, ch: &Choice) -> Option<InstanceId> {
        let d = self.target_decl(r)?;
        if self.failed.contains(&d) || self.decls[d].instances.is_empty() {
            return None; // already reported
        }
        let key = (d, self.selector_key(r));
        if let Some(m) = ch.group.get(&key) {
            return Some(*m);
        }
        let ms = self.group_members(r, ch)?;
        match ms.as_slice() {
            [one] => Some(*one),
            _ => {
                self.problems.push(
                    Problem::new(
                        Code::AmbiguousSweep,
                        r.span,
                        format!("`{}` is a sweep of {} members; one is needed here", r.name.name, ms.len()),
                    )
                    .label("which member?")
                    .help(format!(
                        "pick one with a selector, e.g. `{}[{}: ...]`",
                        r.name.name,
                        self.decls[d].axes.first().map(|a| a.name.clone()).unwrap_or_default()
                    )),
                );
                None
            }
        }
    }

    /// Checks that an instance is of a kind the parameter accepts.
    fn check_entity(&mut self, r: &Reference, inst: InstanceId, ty: &Ty, param: &str) -> Option<Value> {
        let decl = self.instances[inst].decl;
        let entity = self.decls[decl].entity()?;
        let ok = match ty {
            Ty::Ref(allowed) => allowed.contains(&entity),
            Ty::OnlineRun => {
                let is_online = matches!(self.instances[inst].args.get("sampler"), Some(Value::Call { ctor, .. }) if ctor.name == "online");
                if !is_online {
                    let what = match self.instances[inst].args.get("sampler") {
                        Some(Value::Call { ctor, .. }) => {
                            format!("`{}` is a run with the `{}` sampler", r.name.name, ctor.name)
                        }
                        _ => format!("`{}` is {}", r.name.name, self.decls[decl].kind.keyword()),
                    };
                    self.problems.push(
                        Problem::new(Code::WrongKind, r.span, format!("`{param}` needs an online run: {what}"))
                            .label("not an online run")
                            .related(self.decls[decl].name_span, "declared here")
                            .help("only runs with `sampler: online(judge: ...)` log a data stream to replay"),
                    );
                    return None;
                }
                true
            }
            _ => false,
        };
        if !ok {
            let expected = ty.describe();
            let what = entity_word(self, decl, entity);
            self.problems.push(
                Problem::new(
                    Code::WrongKind,
                    r.span,
                    format!("`{param}` expects {expected}, but `{}` is {what}", r.name.name),
                )
                .label(format!("expected {expected}"))
                .related(self.decls[decl].name_span, "declared here")
                .help(kind_help(ty)),
            );
            return None;
        }
        Some(Value::Instance(inst))
    }

    fn checkpoint(
        &mut self,
        r: &Reference,
        cp: &CheckpointRef,
        inst: InstanceId,
        ty: &Ty,
        param: &str,
    ) -> Option<Value> {
        let (step, span) = match cp {
            CheckpointRef::Step(n, s) => (n.as_i64(), *s),
            CheckpointRef::Named(id) => match self.ns.by_name.get(&id.name) {
                Some(Entry::Let(l)) => match &self.ns.lets[*l].value {
                    Expr::Number(n, _) => (n.as_i64(), id.span),
                    _ => (None, id.span),
                },
                _ => {
                    self.problems.push(
                        Problem::new(Code::BadCheckpoint, id.span, format!("`{}` is not a step constant", id.name))
                            .label("expected a step")
                            .help("write a step (`online@800`) or a `let` constant holding one"),
                    );
                    return None;
                }
            },
        };
        let Some(step) = step else {
            self.problems.push(
                Problem::new(Code::BadCheckpoint, span, "a checkpoint step must be a whole number")
                    .label("not a step")
                    .help("write e.g. `online@800`"),
            );
            return None;
        };
        let decl = self.instances[inst].decl;
        if self.decls[decl].kind != crate::syntax::ast::DeclKind::Run {
            self.problems.push(
                Problem::new(
                    Code::WrongKind,
                    r.span,
                    format!("`{}` is a {}; only runs have checkpoints", r.name.name, self.decls[decl].kind.keyword()),
                )
                .label("no checkpoints")
                .help(format!("refer to `{}` without `@`", r.name.name)),
            );
            return None;
        }
        if !matches!(ty, Ty::Ref(es) if es.contains(&Entity::Policy)) {
            self.problems.push(
                Problem::new(Code::WrongKind, r.span, format!("`{param}` expects {}, not a checkpoint", ty.describe()))
                    .label("a checkpoint is a policy")
                    .help(kind_help(ty)),
            );
            return None;
        }
        let i = &self.instances[inst];
        let schedule = SaveSchedule::of(i);
        if !schedule.saves(step) {
            self.problems.push(
                Problem::new(
                    Code::BadCheckpoint,
                    span,
                    format!("`{}` does not save a checkpoint at step {step}", self.instances[inst].label),
                )
                .label("not a saved step")
                .related(self.decls[decl].name_span, "the run")
                .help(format!("it saves at {}", schedule.describe())),
            );
            return None;
        }
        Some(Value::Checkpoint(inst, step))
    }
}

fn entity_word(x: &Expander, decl: usize, e: Entity) -> String {
    let d = &x.decls[decl];
    match (d.kind, e) {
        (crate::syntax::ast::DeclKind::Run, _) => "a run (a policy)".into(),
        _ => e.describe().into(),
    }
}

fn kind_help(ty: &Ty) -> String {
    match ty {
        Ty::Ref(es) if es.contains(&Entity::PreferenceModel) && !es.contains(&Entity::Policy) => {
            "a judge must be a preference model: `model name = pm(data, ...)`".into()
        }
        Ty::Ref(es) if es.contains(&Entity::Policy) => {
            "a policy is an `sft(...)` model, a run, or a run's checkpoint `run@step`".into()
        }
        Ty::Ref(es) if es.contains(&Entity::Dataset) => "datasets are made by generate, relabel, pairs or jsonl".into(),
        Ty::Ref(es) if es.contains(&Entity::World) => "worlds are made by summarize, helpful, harmless or arena".into(),
        Ty::Ref(es) if es.contains(&Entity::Eval) => {
            "evaluations are made by kl, winrate, classifier, self_classifier or winner_logprob".into()
        }
        _ => format!("expected {}", ty.describe()),
    }
}

fn type_help(ty: &Ty) -> String {
    match ty {
        Ty::Int { .. } => "write a whole number, e.g. 800, 4k or 2e4".into(),
        Ty::Float { .. } => "write a number, e.g. 0.1 or 1e-5".into(),
        Ty::Str { .. } => "write a string in double quotes".into(),
        Ty::Bool => "write true or false".into(),
        Ty::List(_) => "write a list in brackets: [a, b]".into(),
        Ty::Value(c) => format!("write a call to {}", c.describe()),
        other => kind_help(other),
    }
}

fn range_text_int(min: i64, max: i64) -> String {
    if max >= 1_000_000_000 {
        format!("at least {min}")
    } else {
        format!("between {min} and {max}")
    }
}

fn range_text_float(min: f64, open_min: bool, max: f64) -> String {
    match (open_min, max.is_infinite()) {
        (true, true) => format!("greater than {min}"),
        (false, true) => format!("at least {min}"),
        (true, false) => format!("greater than {min} and at most {max}"),
        (false, false) => format!("between {min} and {max}"),
    }
}
