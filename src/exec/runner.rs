//! Executing a plan: every missing node, inputs first, one at a time.
//! A failed node stops only its dependents; everything else goes on.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crate::exec::artifacts::{self as art, ExecError};
use crate::exec::nodes::{self, Ctx};
use crate::exec::store::Store;
use crate::exec::training;
use crate::plan::lower::checkpoint_key;
use crate::plan::{Key, Node, Plan};

/// Whether a node's result is in the cache. A training run counts as done
/// when the checkpoint at its target step is; a figure is drawn from its
/// evaluations, so it is done when they are.
pub fn is_done(store: &Store, plan: &Plan, node: &Node) -> bool {
    match node.kind.as_str() {
        "run.train" => store.contains(&checkpoint_key(&node.key, target_steps(node))),
        k if k.starts_with("figure.") => node.inputs.iter().all(|(_, i)| plan.node(i).is_some_and(|n| is_done(store, plan, n))),
        _ => store.contains(&node.key),
    }
}

fn target_steps(node: &Node) -> i64 {
    node.attrs.get("steps").and_then(|v| v.as_i64()).unwrap_or(0)
}

#[derive(Debug, Default)]
pub struct Summary {
    pub ran: Vec<(String, f64)>,
    pub cached: usize,
    pub failed: Vec<(String, String)>,
    pub skipped: Vec<String>,
    pub interrupted: bool,
}

pub struct Options<'a> {
    pub device: tch::Device,
    /// Run only these declared names and what they need (all when empty).
    pub only: Vec<String>,
    pub dry_run: bool,
    pub stop: &'a AtomicBool,
    pub log: &'a (dyn Fn(&str) + Sync),
}

/// The nodes `only` names, and everything upstream of them.
fn wanted(plan: &Plan, only: &[String]) -> Option<HashSet<Key>> {
    if only.is_empty() {
        return None;
    }
    let mut set = HashSet::new();
    let mut stack: Vec<Key> = plan
        .graph
        .node_weights()
        .filter(|n| n.names.iter().any(|name| only.iter().any(|o| name == o || name.starts_with(&format!("{o}[")) || name.starts_with(&format!("{o}(")) || name.starts_with(&format!("{o}@")))))
        .map(|n| n.key)
        .collect();
    while let Some(k) = stack.pop() {
        if set.insert(k) {
            if let Some(n) = plan.node(&k) {
                stack.extend(n.inputs.iter().map(|(_, i)| *i));
            }
        }
    }
    Some(set)
}

pub fn run(plan: &Plan, store: &Store, opts: &Options) -> Summary {
    let mut summary = Summary::default();
    let filter = wanted(plan, &opts.only);
    let mut failed: HashMap<Key, String> = HashMap::new();
    let order = plan.ordered();
    let total = order.iter().filter(|n| filter.as_ref().is_none_or(|f| f.contains(&n.key))).count();
    let mut index = 0;
    for node in order {
        if filter.as_ref().is_some_and(|f| !f.contains(&node.key)) {
            continue;
        }
        index += 1;
        let name = node.display_name();
        if is_done(store, plan, node) {
            summary.cached += 1;
            continue;
        }
        if let Some((_, bad)) = node.inputs.iter().find(|(_, i)| failed.contains_key(i)) {
            failed.insert(node.key, format!("input {} failed", bad.short()));
            summary.skipped.push(name);
            continue;
        }
        if node.kind.starts_with("figure.") || node.kind == "checkpoint" {
            // Figures are drawn from their evaluations by the report; a
            // checkpoint is written by its training run.
            if node.kind == "checkpoint" && !store.contains(&node.key) && !opts.dry_run {
                let msg = "its training run did not save it".to_string();
                failed.insert(node.key, msg.clone());
                summary.failed.push((name, msg));
            }
            continue;
        }
        if opts.dry_run {
            (opts.log)(&format!("would run [{index}/{total}] {} {name}", node.kind));
            summary.ran.push((name, 0.0));
            continue;
        }
        (opts.log)(&format!("[{index}/{total}] {} {name}", node.kind));
        let started = Instant::now();
        let label = name.clone();
        let progress = move |done: u64, all: u64| {
            let _ = (done, all, &label);
        };
        let ctx = Ctx { store, device: opts.device, stop: opts.stop, progress: &progress };
        let result = execute(&ctx, node);
        let secs = started.elapsed().as_secs_f64();
        match result {
            Ok(()) => {
                (opts.log)(&format!("      done in {secs:.1}s"));
                summary.ran.push((name, secs));
            }
            Err(ExecError::Interrupted) => {
                summary.interrupted = true;
                (opts.log)("interrupted: finished nodes and saved checkpoints are kept");
                break;
            }
            Err(e) => {
                let msg = e.to_string();
                (opts.log)(&format!("      failed: {msg}"));
                failed.insert(node.key, msg.clone());
                summary.failed.push((name, msg));
            }
        }
    }
    summary
}

/// Computes one node and commits its entry.
pub fn execute(ctx: &Ctx, node: &Node) -> Result<(), ExecError> {
    if node.kind == "run.train" {
        let save_every = node.attrs.get("save_every").and_then(|v| v.as_i64()).unwrap_or(1).max(1);
        return training::train_run(ctx, node, target_steps(node), save_every);
    }
    let mut st = ctx.store.begin(node)?;
    match node.kind.as_str() {
        k if k.starts_with("world.") => nodes::world(ctx, node, &mut st)?,
        "dataset.generate" => nodes::generate(ctx, node, &mut st)?,
        "dataset.relabel" => nodes::relabel(ctx, node, &mut st)?,
        "dataset.pairs" => nodes::pairs(ctx, node, &mut st)?,
        "dataset.jsonl" => crate::worlds::jsonl::import(ctx, node, &mut st)?,
        "model.sft" | "model.pm" => nodes::model(ctx, node, &mut st)?,
        k if k.starts_with("eval.") => nodes::evaluate(ctx, node, &mut st)?,
        other => return Err(ExecError::Invalid(format!("no executor for node kind `{other}`"))),
    }
    st.commit()?;
    Ok(())
}

/// One row of the tidy evaluation table written next to the report.
#[derive(Debug, serde::Serialize)]
pub struct TidyRow {
    pub eval: String,
    pub target: String,
    pub step: Option<i64>,
    pub metric: String,
    pub value: f64,
    pub stderr: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub n: usize,
    pub data_step: Option<i64>,
    pub key: String,
}

/// Every evaluation result of the plan, one row per (declared name, metric).
pub fn tidy_results(plan: &Plan, store: &Store) -> Vec<TidyRow> {
    let mut out = vec![];
    for node in plan.ordered() {
        if !node.kind.starts_with("eval.") || !store.contains(&node.key) {
            continue;
        }
        let Ok(rows) = art::read_results(store, &node.key) else { continue };
        for name in &node.names {
            // `eval(target@step)` or `eval(target)`.
            let (eval, target) = match name.split_once('(') {
                Some((e, t)) => (e.to_string(), t.trim_end_matches(')').to_string()),
                None => (name.clone(), String::new()),
            };
            let step = target.rsplit_once('@').and_then(|(_, s)| s.parse().ok());
            for r in &rows {
                out.push(TidyRow {
                    eval: eval.clone(),
                    target: target.clone(),
                    step,
                    metric: r.metric.clone(),
                    value: r.value,
                    stderr: r.stderr,
                    ci_low: r.ci_low,
                    ci_high: r.ci_high,
                    n: r.n,
                    data_step: r.data_step,
                    key: node.key.short(),
                });
            }
        }
    }
    out
}

/// Writes `evals.csv` into `dir` (atomically: a temporary file, then rename).
pub fn write_tidy(dir: &Path, rows: &[TidyRow]) -> std::io::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let mut w = csv::Writer::from_writer(vec![]);
    for r in rows {
        w.serialize(r).map_err(std::io::Error::other)?;
    }
    let bytes = w.into_inner().map_err(|e| std::io::Error::other(e.to_string()))?;
    let path = dir.join("evals.csv");
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, &bytes)?;
    tmp.persist(&path).map_err(|e| e.error)?;
    Ok(path)
}
