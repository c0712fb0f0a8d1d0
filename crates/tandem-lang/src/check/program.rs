//! The checker's output: every declaration expanded into instances (one per
//! sweep combination) whose arguments are typed, defaulted and resolved.

use std::collections::BTreeMap;

use crate::check::schema::{Ctor, Entity, Ty};
use crate::source::{FileId, SourceMap, Span};
use crate::syntax::ast::DeclKind;

pub type DeclId = usize;
pub type InstanceId = usize;

/// A resolved argument value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    List(Vec<Value>),
    /// A value constructor (loss, sampler) with all its arguments.
    Call {
        ctor: &'static Ctor,
        args: BTreeMap<String, Value>,
    },
    /// Another declaration's instance (a world, dataset, model, run, eval).
    Instance(InstanceId),
    /// A run's checkpoint at a step: `online@800`.
    Checkpoint(InstanceId, i64),
}

/// What a sweep axis is: the place its `sweep [...]` is written. Axes are
/// joined only when they are the same axis: a `let` sweep used in several
/// arguments or declarations varies them together, a derivation keeps its
/// base's sweeps (so `b = a with { .. }` pairs with `a` member by member), and
/// a declaration that inherits a sweep from another carries that sweep's axis.
/// Two sweeps written in two places are two axes, crossed, whatever their
/// parameters are called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AxisId {
    pub file: FileId,
    pub start: usize,
}

impl From<Span> for AxisId {
    fn from(s: Span) -> AxisId {
        AxisId { file: s.file, start: s.start }
    }
}

/// The name a declaration's members show for one of its axes, and the type of
/// the axis's values (for typing a selector's value).
#[derive(Debug, Clone)]
pub struct AxisName {
    pub name: String,
    pub id: AxisId,
    pub ty: Ty,
}

#[derive(Debug, Clone)]
pub struct DeclInfo {
    pub name: String,
    pub kind: DeclKind,
    pub span: Span,
    pub name_span: Span,
    pub ctor: Option<&'static Ctor>,
    pub instances: Vec<InstanceId>,
    /// Names of this declaration's axes (own and inherited), sorted. An axis
    /// a `let` sweep gives to two parameters has both their names.
    pub axes: Vec<AxisName>,
}

impl DeclInfo {
    pub fn entity(&self) -> Option<Entity> {
        self.ctor.and_then(|c| c.entity())
    }
}

/// The name of one instance of a declaration: the declaration's name and,
/// for a sweep member, its axis values as written in labels. Rendered in one
/// place ([`std::fmt::Display`]): `name` or `name[axis=value, ...]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct InstanceName {
    pub decl: String,
    /// (axis, value as displayed), in the sweep's order; empty when not swept.
    pub member: Vec<(String, String)>,
}

impl InstanceName {
    pub fn plain(decl: &str) -> InstanceName {
        InstanceName { decl: decl.to_string(), member: vec![] }
    }
}

impl std::fmt::Display for InstanceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.decl)?;
        if !self.member.is_empty() {
            let parts: Vec<String> = self.member.iter().map(|(k, v)| format!("{k}={v}")).collect();
            write!(f, "[{}]", parts.join(", "))?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct Instance {
    pub decl: DeclId,
    pub name: InstanceName,
    /// `name` rendered: `name` or `name[axis=value, ...]`.
    pub label: String,
    /// The value of every axis this member lies on, by identity.
    pub axes: BTreeMap<AxisId, Value>,
    pub ctor: &'static Ctor,
    /// Every parameter of the constructor that has a value (given or default).
    pub args: BTreeMap<String, Value>,
    pub span: Span,
}

impl Instance {
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.args.get(name) {
            Some(Value::Int(v)) => Some(*v),
            _ => None,
        }
    }
}

/// A checked experiment, ready to be planned.
#[derive(Debug, Clone)]
pub struct Program {
    pub sources: SourceMap,
    pub decls: Vec<DeclInfo>,
    pub instances: Vec<Instance>,
}

impl Program {
    pub fn decl_of(&self, inst: InstanceId) -> &DeclInfo {
        &self.decls[self.instances[inst].decl]
    }
}

/// The steps a run saves a checkpoint at: 0, every `save_every`, each step
/// of `save_at` (early checkpoints, e.g. log-spaced: evidence at small KL),
/// and its last step. None of it enters the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveSchedule {
    pub steps: i64,
    pub every: i64,
    /// Sorted, unique, within 1..=steps.
    pub at: Vec<i64>,
}

impl SaveSchedule {
    /// A run instance's schedule (defaults filled in by the checker).
    pub fn of(run: &Instance) -> SaveSchedule {
        let steps = run.int("steps").unwrap_or(0);
        let mut at: Vec<i64> = match run.args.get("save_at") {
            Some(Value::List(items)) => items
                .iter()
                .filter_map(|v| if let Value::Int(s) = v { Some(*s) } else { None })
                .filter(|s| *s > 0 && *s <= steps)
                .collect(),
            _ => vec![],
        };
        at.sort_unstable();
        at.dedup();
        SaveSchedule { steps, every: run.int("save_every").unwrap_or(1), at }
    }

    /// Is `step` one the run saves?
    pub fn saves(&self, step: i64) -> bool {
        step == 0
            || step == self.steps
            || (step > 0 && step <= self.steps && self.every > 0 && step % self.every == 0)
            || self.at.binary_search(&step).is_ok()
    }

    /// "0, every 50 steps, and at its last step 300" (with `save_at`: "0, 5, 10, every 50 steps, …").
    pub fn describe(&self) -> String {
        let at: String = self.at.iter().map(|s| format!("{s}, ")).collect();
        format!("0, {at}every {} steps, and at its last step {}", self.every, self.steps)
    }

    /// Every saved step, in order.
    pub fn saved(&self) -> Vec<i64> {
        let mut v: Vec<i64> = (0..=self.steps.max(0)).step_by(self.every.max(1) as usize).collect();
        v.extend(self.at.iter().copied());
        v.push(self.steps.max(0));
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Short display of a value as it appears in labels and diffs.
pub fn display_value(program_labels: &dyn Fn(InstanceId) -> String, v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Float(f) => display_float(*f),
        Value::Str(s) => format!("{s:?}"),
        Value::Bool(b) => b.to_string(),
        Value::List(items) => {
            format!("[{}]", items.iter().map(|i| display_value(program_labels, i)).collect::<Vec<_>>().join(", "))
        }
        Value::Call { ctor, args } => format!(
            "{}({})",
            ctor.name,
            args.iter()
                .map(|(k, v)| format!("{k}: {}", display_value(program_labels, v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Instance(i) => program_labels(*i),
        Value::Checkpoint(i, s) => format!("{}@{s}", program_labels(*i)),
    }
}

pub fn display_float(f: f64) -> String {
    if f == 0.0 || (f.abs() >= 1e-3 && f.abs() < 1e6) {
        format!("{f}")
    } else {
        format!("{f:e}")
    }
}
