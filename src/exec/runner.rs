//! Executing a plan: every missing node, inputs first, independent nodes in
//! parallel (`jobs` workers), each behind a file lock so that two `tandem run`
//! processes on one cache never compute the same node at once. A failed node
//! stops only its dependents; everything else goes on.
//!
//! Before anything runs, every cached entry the plan uses is verified against
//! its digests; a corrupt one is reported, evicted and recomputed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use rayon::prelude::*;

use crate::exec::artifacts::{self as art, ExecError};
use crate::exec::nodes::{self, Ctx};
use crate::exec::progress::Progress;
use crate::exec::store::Store;
use crate::exec::training;
use crate::plan::lower::checkpoint_key;
use crate::plan::{Key, Node, Plan};

/// Whether a node's result is in the cache. A training run counts as done
/// when the checkpoint at its target step is; a figure is drawn from its
/// evaluations, so it is done when they are.
pub fn is_done(store: &Store, plan: &Plan, node: &Node) -> bool {
    match node.kind.as_str() {
        "run.train" => {
            store.contains(&checkpoint_key(&node.key, target_steps(node))) && crate::plan::node::checkpoint_steps(&node.attrs).iter().all(|s| store.contains(&checkpoint_key(&node.key, *s)))
        }
        k if k.starts_with("figure.") => node.inputs.iter().all(|(_, i)| plan.node(i).is_some_and(|n| is_done(store, plan, n))),
        _ => store.contains(&node.key),
    }
}

fn target_steps(node: &Node) -> i64 {
    node.attrs.get("steps").and_then(|v| v.as_i64()).unwrap_or(0)
}

/// Nodes that are computed by the runner (not checkpoints, which training
/// writes, nor figures, which the report draws).
pub fn computed(node: &Node) -> bool {
    node.kind != "checkpoint" && !node.kind.starts_with("figure.")
}

#[derive(Debug, Default)]
pub struct Summary {
    /// (name, seconds) of each computed node.
    pub ran: Vec<(String, f64)>,
    pub cached: usize,
    /// (name, error, log path)
    pub failed: Vec<(String, String, PathBuf)>,
    /// Names not run because an input failed.
    pub skipped: Vec<String>,
    /// Corrupt entries found, evicted and recomputed.
    pub corrupt: Vec<String>,
    pub interrupted: bool,
}

pub struct Options<'a> {
    pub device: tch::Device,
    /// Run only these declared names and what they need (all when empty).
    pub only: Vec<String>,
    pub dry_run: bool,
    /// Nodes computed at the same time.
    pub jobs: usize,
    pub stop: &'a AtomicBool,
    pub progress: &'a Progress,
}

/// Does a declared name match `o` (itself, a sweep member, an evaluation of it, a checkpoint)?
pub fn name_matches(name: &str, o: &str) -> bool {
    name == o || [format!("{o}["), format!("{o}("), format!("{o}@")].iter().any(|p| name.starts_with(p.as_str()))
}

/// The nodes `only` names, and everything upstream of them.
fn wanted(plan: &Plan, only: &[String]) -> Option<HashSet<Key>> {
    if only.is_empty() {
        return None;
    }
    let mut set = HashSet::new();
    let mut stack: Vec<Key> = plan.graph.node_weights().filter(|n| n.names.iter().any(|name| only.iter().any(|o| name_matches(name, o)))).map(|n| n.key).collect();
    while let Some(k) = stack.pop() {
        if set.insert(k) {
            if let Some(n) = plan.node(&k) {
                stack.extend(n.inputs.iter().map(|(_, i)| *i));
            }
        }
    }
    Some(set)
}

/// Verifies the cached entries a plan uses (in parallel) and evicts corrupt ones.
fn verify_cached(plan: &Plan, store: &Store, nodes: &[&Node]) -> Vec<String> {
    let mut keys: Vec<(Key, String)> = vec![];
    for n in nodes {
        match n.kind.as_str() {
            "run.train" => {
                let k = checkpoint_key(&n.key, target_steps(n));
                keys.push((k, format!("{}@{}", n.display_name(), target_steps(n))));
            }
            k if k.starts_with("figure.") => {}
            _ => keys.push((n.key, n.display_name())),
        }
    }
    let _ = plan;
    keys.par_iter()
        .filter(|(k, _)| store.contains(k))
        .filter_map(|(k, name)| match store.verify(k) {
            Err(crate::exec::store::StoreError::Corrupt { what, .. }) => {
                let _ = store.evict(k);
                Some(format!("{name} ({}): {what}", k.short()))
            }
            _ => None,
        })
        .collect()
}

struct State {
    sched: Schedule,
    running: usize,
    summary: Summary,
}

/// What a run must compute: the missing nodes, which of them are ready, and
/// for the others how many inputs they still wait for. The local runner and
/// the Slurm driver schedule from the same table.
pub struct Schedule {
    pub todo: HashSet<Key>,
    /// Computed nodes of the plan (or of `--only`) already in the cache.
    pub cached: usize,
    pub waiting: HashMap<Key, usize>,
    pub ready: VecDeque<Key>,
    pub dependents: HashMap<Key, Vec<Key>>,
}

/// Builds the schedule of `nodes` (in plan order).
pub fn schedule(plan: &Plan, store: &Store, nodes: &[&Node]) -> Schedule {
    let todo: HashSet<Key> = nodes.iter().filter(|n| computed(n) && !is_done(store, plan, n)).map(|n| n.key).collect();
    let cached = nodes.iter().filter(|n| computed(n)).count() - todo.len();
    let mut dependents: HashMap<Key, Vec<Key>> = HashMap::new();
    let mut waiting = HashMap::new();
    let mut ready = VecDeque::new();
    // A checkpoint input stands for its training run.
    let producer = |k: &Key| -> Key {
        match plan.node(k) {
            Some(n) if n.kind == "checkpoint" => n.inputs.first().map(|(_, r)| *r).unwrap_or(*k),
            _ => *k,
        }
    };
    for n in nodes {
        if !todo.contains(&n.key) {
            continue;
        }
        let deps: HashSet<Key> = n.inputs.iter().map(|(_, i)| producer(i)).filter(|p| todo.contains(p)).collect();
        for d in &deps {
            dependents.entry(*d).or_default().push(n.key);
        }
        if deps.is_empty() {
            ready.push_back(n.key);
        } else {
            waiting.insert(n.key, deps.len());
        }
    }
    Schedule { todo, cached, waiting, ready, dependents }
}

impl Schedule {
    /// `key` is in the cache now: its dependents wait for one input fewer.
    pub fn release(&mut self, key: &Key) {
        for d in self.dependents.get(key).cloned().unwrap_or_default() {
            if let Some(c) = self.waiting.get_mut(&d) {
                *c -= 1;
                if *c == 0 {
                    self.waiting.remove(&d);
                    self.ready.push_back(d);
                }
            }
        }
    }

    /// `key` failed: everything downstream of it will not run. Returns the
    /// names of the nodes skipped.
    pub fn fail(&mut self, plan: &Plan, key: &Key) -> Vec<String> {
        let mut skipped = vec![];
        let mut stack = vec![*key];
        while let Some(k) = stack.pop() {
            for d in self.dependents.get(&k).cloned().unwrap_or_default() {
                if self.waiting.remove(&d).is_some() {
                    skipped.push(plan.node(&d).map(|n| n.display_name()).unwrap_or_default());
                    stack.push(d);
                }
            }
        }
        skipped
    }
}

/// The nodes a run covers (all, or `--only` and what it needs), in plan
/// order, after verifying (and evicting) corrupt cached entries among them.
pub fn prepare<'p>(plan: &'p Plan, store: &Store, only: &[String], dry_run: bool, progress: &Progress) -> (Vec<&'p Node>, Vec<String>) {
    let filter = wanted(plan, only);
    let nodes: Vec<&Node> = plan.ordered().into_iter().filter(|n| filter.as_ref().is_none_or(|f| f.contains(&n.key))).collect();
    let corrupt = if dry_run { vec![] } else { verify_cached(plan, store, &nodes) };
    for c in &corrupt {
        progress.log(&format!("corrupt cache entry evicted, will recompute: {c}"));
    }
    (nodes, corrupt)
}

pub fn run(plan: &Plan, store: &Store, opts: &Options) -> Summary {
    let (nodes, corrupt) = prepare(plan, store, &opts.only, opts.dry_run, opts.progress);
    let sched = schedule(plan, store, &nodes);
    let (todo, cached) = (&sched.todo, sched.cached);
    if opts.dry_run {
        let mut s = Summary { cached, ..Default::default() };
        for n in &nodes {
            if todo.contains(&n.key) {
                opts.progress.log(&format!("would run  {:<18} {}", n.kind, n.display_name()));
                s.ran.push((n.display_name(), 0.0));
            }
        }
        return s;
    }
    opts.progress.start(todo.len() as u64);
    let state = Mutex::new(State { sched, running: 0, summary: Summary { cached, corrupt, ..Default::default() } });
    let wake = Condvar::new();
    let jobs = opts.jobs.max(1);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| worker(plan, store, opts, &state, &wake));
        }
    });
    opts.progress.finish();
    let mut st = state.into_inner().expect("no worker panicked while holding the state");
    st.summary.interrupted |= opts.stop.load(Ordering::Relaxed);
    st.summary
}

fn worker(plan: &Plan, store: &Store, opts: &Options, state: &Mutex<State>, wake: &Condvar) {
    loop {
        let key = {
            let mut st = state.lock().expect("state");
            loop {
                if opts.stop.load(Ordering::Relaxed) {
                    return;
                }
                if let Some(k) = st.sched.ready.pop_front() {
                    st.running += 1;
                    break k;
                }
                if st.running == 0 {
                    // Nothing ready, nothing running: whatever still waits depends on a failure.
                    return;
                }
                st = wake.wait(st).expect("state");
            }
        };
        let node = plan.node(&key).expect("planned node");
        let result = run_one(plan, store, opts, node);
        let mut st = state.lock().expect("state");
        st.running -= 1;
        match result {
            Ok(Some(secs)) => {
                st.summary.ran.push((node.display_name(), secs));
                st.sched.release(&key);
            }
            Ok(None) => {
                // Another process computed it while we waited for its lock.
                st.summary.cached += 1;
                st.sched.release(&key);
            }
            Err((ExecError::Interrupted, _)) => {
                st.summary.interrupted = true;
            }
            Err((e, log)) => {
                let msg = e.to_string();
                opts.progress.log(&format!("failed     {} {}: {msg}\n           log: {}", node.kind, node.display_name(), log.display()));
                st.summary.failed.push((node.display_name(), msg, log));
                let skipped = st.sched.fail(plan, &key);
                st.summary.skipped.extend(skipped);
            }
        }
        wake.notify_all();
    }
}

/// Runs one node under its lock. Ok(None) if another process finished it first.
pub fn run_one(plan: &Plan, store: &Store, opts: &Options, node: &Node) -> Result<Option<f64>, (ExecError, PathBuf)> {
    let log_path = store.root().join("logs").join(format!("{}.log", node.key.hex()));
    let _lock = match lock(store, &node.key) {
        Ok(l) => l,
        Err(e) => return Err((e, log_path)),
    };
    if is_done(store, plan, node) {
        return Ok(None);
    }
    let name = node.display_name();
    let bar = opts.progress.node(&format!("{} {}", node.kind, name));
    let log = NodeLog::open(&log_path);
    log.line(&format!("{} {} key {}", node.kind, name, node.key));
    let started = Instant::now();
    let progress = |done: u64, total: u64| bar.set(done, total);
    let log_line = |line: &str| log.line(line);
    let ctx = Ctx { store, device: opts.device, stop: opts.stop, progress: &progress, log: &log_line };
    // libtorch reports some errors by panicking through tch; one node's
    // failure must not take the others down.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| execute(&ctx, node, &log))).unwrap_or_else(|p| {
        let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_else(|| "unknown panic".into());
        Err(ExecError::Torch(msg.lines().next().unwrap_or_default().to_string()))
    });
    let secs = started.elapsed().as_secs_f64();
    bar.done();
    match result {
        Ok(()) => {
            log.line(&format!("done in {secs:.1}s"));
            opts.progress.log(&format!("done       {:<18} {name} ({secs:.1}s)", node.kind));
            opts.progress.advance();
            Ok(Some(secs))
        }
        Err(e) => {
            log.line(&format!("failed after {secs:.1}s: {e}"));
            Err((e, log_path))
        }
    }
}

/// An exclusive lock on a node, held across processes while it is computed.
fn lock(store: &Store, key: &Key) -> Result<std::fs::File, ExecError> {
    use fs2::FileExt;
    let dir = store.root().join("locks");
    std::fs::create_dir_all(&dir).map_err(|e| ExecError::Invalid(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join(format!("{}.lock", key.hex()));
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| ExecError::Invalid(format!("cannot open {}: {e}", path.display())))?;
    f.lock_exclusive().map_err(|e| ExecError::Invalid(format!("cannot lock {}: {e}", path.display())))?;
    Ok(f)
}

/// A node's log: appended to `cache/logs/<key>.log` as it runs, and copied
/// into the entry as `log.txt` when it succeeds.
pub struct NodeLog {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
}

impl NodeLog {
    fn open(path: &Path) -> NodeLog {
        let _ = std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).ok();
        NodeLog { path: path.to_path_buf(), file: Mutex::new(file) }
    }

    pub fn line(&self, s: &str) {
        if let Ok(mut g) = self.file.lock() {
            if let Some(f) = g.as_mut() {
                let _ = writeln!(f, "{} {s}", humantime::format_rfc3339_seconds(std::time::SystemTime::now()));
            }
        }
    }

    pub fn text(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap_or_default()
    }
}

/// Computes one node and commits its entry.
pub fn execute(ctx: &Ctx, node: &Node, log: &NodeLog) -> Result<(), ExecError> {
    if node.kind == "run.train" {
        let save_every = node.attrs.get("save_every").and_then(|v| v.as_i64()).unwrap_or(1).max(1);
        return training::train_run(ctx, node, target_steps(node), save_every, log);
    }
    let started = Instant::now();
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
    log.line("committing");
    st.set_compute_seconds(started.elapsed().as_secs_f64());
    st.write("log.txt", &log.text())?;
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
    let bytes = art::csv_bytes(rows).map_err(std::io::Error::other)?;
    let path = dir.join("evals.csv");
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, &bytes)?;
    tmp.persist(&path).map_err(|e| e.error)?;
    Ok(path)
}
