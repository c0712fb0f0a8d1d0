//! Lowering a checked program to the plan.
//!
//! | declaration | nodes |
//! |---|---|
//! | world, dataset, model | one node each |
//! | run | a `run.train` node keyed *without* its step count, and one `checkpoint` node per step something needs (its last step, `run@k` references, evaluated steps), keyed by (train key, step) |
//! | eval | one node per evaluated policy and step |
//! | figure | one node over all its evaluations' nodes |
//!
//! A reference to a run as a policy means its last checkpoint; `run@0` is the
//! policy it started from. Defaults are filled in by the checker, and a run's
//! `reference` defaults to its starting policy, so writing a default out
//! changes no key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::check::program::{is_saved_step, InstanceId, Program, Value};
use crate::check::schema::node_version;
use crate::diagnostic::{Code, Diagnostic, Problem};
use crate::plan::key::{node_key, CValue, Key};
use crate::plan::node::{Node, Plan};
use crate::syntax::ast::DeclKind;

/// The key of a training run's checkpoint at `step` (step > 0). The
/// executor writes checkpoints under exactly these keys.
pub fn checkpoint_key(train: &Key, step: i64) -> Key {
    node_key("checkpoint", node_version("checkpoint"), &checkpoint_params(train, step))
}

fn checkpoint_params(train: &Key, step: i64) -> BTreeMap<String, CValue> {
    let mut params = BTreeMap::new();
    params.insert("run".to_string(), CValue::Key(*train));
    params.insert("step".to_string(), CValue::Int(step));
    params
}

#[derive(Debug, Clone)]
enum Output {
    Node(Key),
    Run { train: Key, last: Key, init: Key, reference: Key, steps: i64, save_every: i64 },
    Eval(Vec<Key>),
}

struct Lowerer<'p> {
    program: &'p Program,
    plan: Plan,
    out: Vec<Option<Output>>,
    problems: Vec<Problem>,
    /// Policy node → the dataset whose prompts it answers: the data its
    /// root SFT model was fine-tuned on. Online sampling and evaluations
    /// draw prompts from it unless told otherwise.
    pool: std::collections::HashMap<Key, Key>,
}

pub fn lower(program: &Program) -> Result<Plan, Vec<Diagnostic>> {
    let mut l = Lowerer { program, plan: Plan::default(), out: vec![None; program.instances.len()], problems: vec![], pool: Default::default() };
    // Instances are numbered in dependency order, so inputs are lowered first.
    for id in 0..program.instances.len() {
        l.lower_instance(id);
    }
    if l.problems.is_empty() {
        Ok(l.plan)
    } else {
        Err(l.problems.into_iter().map(|p| p.with_sources(&program.sources)).collect())
    }
}

impl<'p> Lowerer<'p> {
    fn lower_instance(&mut self, id: InstanceId) {
        let inst = &self.program.instances[id];
        let decl = &self.program.decls[inst.decl];
        let node_kind = match inst.ctor.kind {
            crate::check::schema::CtorKind::Decl { node, .. } => node,
            crate::check::schema::CtorKind::Value(_) => return,
        };
        let output = match decl.kind {
            DeclKind::World | DeclKind::Dataset | DeclKind::Model => {
                let Some(mut params) = self.params(id, &[]) else { return };
                let mut attrs = BTreeMap::new();
                if inst.ctor.name == "jsonl" {
                    // The file's content, not its path, enters the key.
                    let Some((digest, path)) = self.file_digest(id) else { return };
                    params.remove("path");
                    params.insert("content".into(), CValue::Str(digest));
                    attrs.insert("path".to_string(), serde_json::json!(path));
                }
                let data = match params.get("data") {
                    Some(CValue::Key(k)) if inst.ctor.name == "sft" => Some(*k),
                    _ => None,
                };
                let key = self.add(node_kind, params, vec![inst.label.clone()], attrs);
                if let Some(d) = data {
                    self.pool.insert(key, d);
                }
                Output::Node(key)
            }
            DeclKind::Run => {
                let Some(mut params) = self.params(id, &["reference"]) else { return };
                let init = match params.get("policy") {
                    Some(CValue::Key(k)) => *k,
                    _ => return,
                };
                let reference = match inst.args.get("reference") {
                    Some(v) => match self.value(v) {
                        Some(CValue::Key(k)) => k,
                        _ => return,
                    },
                    None => init,
                };
                params.insert("reference".into(), CValue::Key(reference));
                let pool = self.pool.get(&init).copied();
                // Online sampling draws prompts from the starting policy's data unless told otherwise.
                if let (Some(CValue::Record { tag, fields }), Some(pool)) = (params.get_mut("sampler"), pool) {
                    if tag == "online" && !fields.contains_key("prompts") {
                        fields.insert("prompts".into(), CValue::Key(pool));
                    }
                }
                let steps = inst.int("steps").unwrap_or(0);
                let save_every = inst.int("save_every").unwrap_or(1);
                let mut attrs = BTreeMap::new();
                attrs.insert("steps".to_string(), serde_json::json!(steps));
                attrs.insert("save_every".to_string(), serde_json::json!(save_every));
                let train = self.add(node_kind, params, vec![inst.label.clone()], attrs);
                if let Some(pool) = pool {
                    self.pool.insert(train, pool);
                }
                let last = self.checkpoint(train, init, steps, &inst.label);
                Output::Run { train, last, init, reference, steps, save_every }
            }
            DeclKind::Eval => {
                let mut keys = vec![];
                let list_param = if inst.args.contains_key("models") { "models" } else { "policies" };
                let Some(Value::List(targets)) = inst.args.get(list_param) else { return };
                let at: Option<Vec<i64>> = match inst.args.get("at") {
                    Some(Value::List(v)) => Some(v.iter().filter_map(|x| if let Value::Int(i) = x { Some(*i) } else { None }).collect()),
                    _ => None,
                };
                let Some(base) = self.params(id, &[list_param, "at", "reference"]) else { return };
                for t in targets {
                    for (target_key, target_label, default_ref) in self.eval_targets(t, at.as_deref()) {
                        let mut params = base.clone();
                        params.insert("target".into(), CValue::Key(target_key));
                        let reference = match inst.args.get("reference") {
                            Some(v) => match self.value(v) {
                                Some(CValue::Key(k)) => Some(k),
                                _ => None,
                            },
                            None => default_ref,
                        };
                        if let Some(r) = reference {
                            params.insert("reference".into(), CValue::Key(r));
                        }
                        if let Some(pool) = self.pool.get(&target_key) {
                            params.insert("pool".into(), CValue::Key(*pool));
                        }
                        let name = format!("{}({target_label})", inst.label);
                        keys.push(self.add(node_kind, params, vec![name], BTreeMap::new()));
                    }
                }
                Output::Eval(keys)
            }
            DeclKind::Figure => {
                let Some(params) = self.params(id, &[]) else { return };
                // Presentation-only arguments (the paper's claim, the expected
                // ranking) travel as attributes: they never enter the key.
                let mut attrs = BTreeMap::new();
                for p in inst.ctor.params.iter().filter(|p| !p.in_key) {
                    match inst.args.get(p.name) {
                        Some(Value::Str(t)) => {
                            attrs.insert(p.name.to_string(), serde_json::json!(t));
                        }
                        Some(Value::List(items)) => {
                            let v: Vec<String> = items.iter().filter_map(|i| if let Value::Str(t) = i { Some(t.clone()) } else { None }).collect();
                            attrs.insert(p.name.to_string(), serde_json::json!(v));
                        }
                        _ => {}
                    }
                }
                // The evaluations' declared labels: a figure plots their rows
                // only, though an evaluation node shared with another
                // declaration (a common step 0, say) carries more names.
                let evals: Vec<String> = ["x", "y"].iter().filter_map(|a| match inst.args.get(*a) {
                    Some(Value::Instance(e)) => Some(self.program.instances[*e].label.clone()),
                    _ => None,
                }).collect();
                attrs.insert("evals".to_string(), serde_json::json!(evals));
                Output::Node(self.add(node_kind, params, vec![inst.label.clone()], attrs))
            }
        };
        self.out[id] = Some(output);
    }

    /// Adds a node built from its kind and parameters.
    fn add(&mut self, kind: &str, params: BTreeMap<String, CValue>, names: Vec<String>, attrs: BTreeMap<String, serde_json::Value>) -> Key {
        let version = node_version(kind);
        let key = node_key(kind, version, &params);
        let mut inputs = vec![];
        for (n, v) in &params {
            v.keys(n, &mut inputs);
        }
        self.plan.add(Node { key, kind: kind.to_string(), version, params, inputs, names, attrs })
    }

    /// The checkpoint of a training run at a step; step 0 is where it started.
    fn checkpoint(&mut self, train: Key, init: Key, step: i64, run_label: &str) -> Key {
        if step == 0 {
            return init;
        }
        let params = checkpoint_params(&train, step);
        let key = self.add("checkpoint", params, vec![format!("{run_label}@{step}")], BTreeMap::new());
        if let Some(pool) = self.pool.get(&train).copied() {
            self.pool.insert(key, pool);
        }
        // The training node must now go at least this far, and save this
        // step whatever its `save_every` (declarations merged into one run
        // may save on different grids).
        if let Some(n) = self.plan.node_mut(&train) {
            let cur = n.attrs.get("steps").and_then(|v| v.as_i64()).unwrap_or(0);
            if step > cur {
                n.attrs.insert("steps".into(), serde_json::json!(step));
            }
            crate::plan::node::add_checkpoint_step(&mut n.attrs, step);
        }
        key
    }

    /// The in-key parameters of an instance, lowered; `skip` names the ones
    /// the caller handles itself.
    fn params(&mut self, id: InstanceId, skip: &[&str]) -> Option<BTreeMap<String, CValue>> {
        let inst = &self.program.instances[id];
        let mut out = BTreeMap::new();
        for p in inst.ctor.params {
            if !p.in_key || skip.contains(&p.name) {
                continue;
            }
            if let Some(v) = inst.args.get(p.name) {
                if p.omit_default_from_key && is_default(v, &p.default) {
                    continue;
                }
                out.insert(p.name.to_string(), self.value(v)?);
            }
        }
        Some(out)
    }

    fn value(&mut self, v: &Value) -> Option<CValue> {
        Some(match v {
            Value::Int(i) => CValue::Int(*i),
            Value::Float(f) => CValue::Float(*f),
            Value::Str(s) => CValue::Str(s.clone()),
            Value::Bool(b) => CValue::Bool(*b),
            Value::List(items) => CValue::List(items.iter().map(|i| self.value(i)).collect::<Option<_>>()?),
            Value::Call { ctor, args } => {
                let mut fields = BTreeMap::new();
                for p in ctor.params {
                    if let (true, Some(a)) = (p.in_key, args.get(p.name)) {
                        if p.omit_default_from_key && is_default(a, &p.default) {
                            continue;
                        }
                        fields.insert(p.name.to_string(), self.value(a)?);
                    }
                }
                CValue::Record { tag: ctor.name.to_string(), fields }
            }
            Value::Instance(i) => match self.out[*i].clone()? {
                Output::Node(k) => CValue::Key(k),
                Output::Run { last, .. } => CValue::Key(last),
                Output::Eval(keys) => CValue::List(keys.into_iter().map(CValue::Key).collect()),
            },
            Value::Checkpoint(i, step) => match self.out[*i].clone()? {
                Output::Run { train, init, .. } => {
                    let label = self.program.instances[*i].label.clone();
                    CValue::Key(self.checkpoint(train, init, *step, &label))
                }
                _ => return None,
            },
        })
    }

    /// What an evaluation looks at for one entry of its list: a model once, a
    /// checkpoint once, a run at each requested (or each saved) step. Each
    /// comes with a label and the reference policy it defaults to.
    fn eval_targets(&mut self, t: &Value, at: Option<&[i64]>) -> Vec<(Key, String, Option<Key>)> {
        match t {
            Value::Instance(i) => {
                let label = self.program.instances[*i].label.clone();
                match self.out[*i].clone() {
                    Some(Output::Run { train, init, reference, steps, save_every, .. }) => {
                        let chosen: Vec<i64> = match at {
                            Some(a) => a.iter().copied().filter(|s| is_saved_step(*s, steps, save_every)).collect(),
                            None => {
                                let mut v: Vec<i64> = (0..=steps).step_by(save_every.max(1) as usize).collect();
                                if v.last() != Some(&steps) {
                                    v.push(steps);
                                }
                                v
                            }
                        };
                        chosen.into_iter().map(|s| (self.checkpoint(train, init, s, &label), format!("{label}@{s}"), Some(reference))).collect()
                    }
                    Some(Output::Node(k)) => {
                        // An SFT model is its own reference; a PM has none.
                        let is_policy = self.program.instances[*i].ctor.name == "sft";
                        vec![(k, label, is_policy.then_some(k))]
                    }
                    _ => vec![],
                }
            }
            Value::Checkpoint(i, step) => {
                let label = self.program.instances[*i].label.clone();
                match self.out[*i].clone() {
                    Some(Output::Run { train, init, reference, .. }) => {
                        vec![(self.checkpoint(train, init, *step, &label), format!("{label}@{step}"), Some(reference))]
                    }
                    _ => vec![],
                }
            }
            _ => vec![],
        }
    }

    /// blake3 of an imported file, relative to the .exp file that names it,
    /// and the file's full path.
    fn file_digest(&mut self, id: InstanceId) -> Option<(String, String)> {
        let inst = &self.program.instances[id];
        let Some(Value::Str(path)) = inst.args.get("path") else { return None };
        let file = &self.program.sources.get(inst.span.file).path;
        let full = file.parent().unwrap_or(Path::new(".")).join(path);
        // A relative path must not climb out of the project: data from
        // elsewhere is named explicitly, by an absolute path.
        if Path::new(path).is_relative() {
            let root = project_root(&self.program.sources.get(crate::syntax::source::FileId(0)).path);
            if let (Some(root), Some(target)) = (normalize(&root), normalize(&full)) {
                if !target.starts_with(&root) {
                    self.problems.push(
                        Problem::new(Code::OutsideProject, inst.span, format!("`{path}` leads outside the project ({})", root.display()))
                            .label("this dataset's file")
                            .help(format!("to import a file from outside the project, name it by its absolute path: \"{}\"", target.display())),
                    );
                    return None;
                }
            }
        }
        match std::fs::read(&full) {
            Ok(bytes) => Some((blake3::hash(&bytes).to_hex().to_string(), full.display().to_string())),
            Err(e) => {
                self.problems.push(
                    Problem::new(Code::Io, inst.span, format!("cannot read `{}`: {e}", full.display()))
                        .label("this dataset's file")
                        .help("paths are relative to the .exp file that names them"),
                );
                None
            }
        }
    }
}

/// The project a top-level .exp file belongs to: the nearest folder above it
/// holding `tandem.toml` or `.git`, else the file's own folder.
fn project_root(top: &Path) -> PathBuf {
    let dir = top.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let abs = std::path::absolute(&dir).unwrap_or(dir.clone());
    abs.ancestors().find(|a| a.join("tandem.toml").exists() || a.join(".git").exists()).map(Path::to_path_buf).unwrap_or(abs)
}

/// An absolute path with `.` and `..` resolved lexically (no symlinks followed).
fn normalize(p: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(p).ok()?;
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}

/// Whether an argument equals its parameter's default. The checker has
/// already typed numbers (a float parameter always holds a `Float`, with −0
/// made 0), so equal values compare equal however they were spelled.
fn is_default(v: &Value, default: &crate::check::schema::Default) -> bool {
    use crate::check::schema::Default as D;
    match (v, default) {
        (Value::Int(a), D::Int(b)) => a == b,
        (Value::Float(a), D::Float(b)) => a == b,
        (Value::Str(a), D::Str(b)) => a == b,
        (Value::Bool(a), D::Bool(b)) => a == b,
        _ => false,
    }
}
