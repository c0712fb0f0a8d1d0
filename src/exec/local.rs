//! Executing a plan on this machine: every missing node, inputs first,
//! independent nodes in parallel (`jobs` workers), each behind a file lock so
//! that two `tandem run` processes on one cache never compute the same node
//! at once. A failed node stops only its dependents; everything else goes on.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use crate::exec::artifacts::ExecError;
use crate::exec::evaluate;
use crate::exec::node_log::NodeLog;
use crate::exec::nodes::{self, Ctx, ModelKind, Resumption};
use crate::exec::progress::Progress;
use crate::exec::schedule::{is_done, prepare, schedule, Schedule};
use crate::exec::store::{Staging, Store};
use crate::exec::summary::{Ran, Summary};
use crate::exec::training;
use crate::plan::{Key, Node, Op, Plan};

pub struct Options<'a> {
    pub device: tch::Device,
    /// Run only these declared names and what they need (all when empty).
    pub only: Vec<String>,
    pub dry_run: bool,
    /// Nodes computed at the same time.
    pub jobs: usize,
    pub stop: &'a AtomicBool,
    pub progress: &'a Progress,
    /// Seconds of computation between a training node's saved states
    /// (None: only when stopped).
    pub snapshot_every: Option<std::time::Duration>,
}

/// A node this process computed (or found computed by another).
pub enum Outcome {
    Computed { seconds: f64, resumed_from: Option<i64> },
    AlreadyDone,
}

struct State {
    sched: Schedule,
    running: usize,
    summary: Summary,
}

pub fn run(plan: &Plan, store: &Store, opts: &Options) -> Summary {
    let (nodes, (corrupt, unevictable)) = prepare(plan, store, &opts.only, opts.dry_run, opts.progress);
    let sched = schedule(plan, store, &nodes);
    let (todo, cached) = (&sched.todo, sched.cached);
    if opts.dry_run {
        let mut s = Summary { cached, ..Default::default() };
        for n in &nodes {
            if todo.contains(&n.key) {
                opts.progress.log(&format!("would run  {:<18} {}", n.kind(), n.display_name()));
                s.ran.push(Ran::new(n, 0.0));
            }
        }
        return s;
    }
    let to_compute: Vec<&Node> = nodes.iter().copied().filter(|n| todo.contains(&n.key)).collect();
    let estimate = crate::exec::estimate::Estimate::new(plan, store, &to_compute, |n| is_done(store, plan, n));
    opts.progress.estimate(estimate, opts.jobs.max(1));
    opts.progress.start(todo.len() as u64);
    let state = Mutex::new(State {
        sched,
        running: 0,
        summary: Summary { cached, corrupt, unevictable, ..Default::default() },
    });
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
            Ok(Outcome::Computed { seconds, resumed_from }) => {
                st.summary.ran.push(Ran { resumed_from, ..Ran::new(node, seconds) });
                st.sched.release(&key);
            }
            Ok(Outcome::AlreadyDone) => {
                // Another process computed it while we waited for its lock.
                st.summary.cached += 1;
                st.sched.release(&key);
            }
            Err((ExecError::Interrupted, _, saved_at)) => {
                st.summary.interrupted = true;
                if let Some(step) = saved_at {
                    st.summary.stopped.push((node.display_name(), step));
                }
            }
            Err((e, log, _)) => {
                let msg = e.to_string();
                opts.progress.log(&format!(
                    "failed     {} {}: {msg}\n           log: {}",
                    node.kind(),
                    node.display_name(),
                    log.display()
                ));
                st.summary.failed.push((node.display_name(), msg, log));
                let skipped = st.sched.fail(plan, &key);
                st.summary.skipped.extend(skipped);
            }
        }
        wake.notify_all();
    }
}

/// Why a node did not complete: the error, its log, and (stopped by a
/// signal) the step its saved state holds.
pub type Failure = (ExecError, PathBuf, Option<i64>);

/// Runs one node under its lock.
pub fn run_one(plan: &Plan, store: &Store, opts: &Options, node: &Node) -> Result<Outcome, Failure> {
    let log_path = store.root().join("logs").join(format!("{}.log", node.key.hex()));
    let _lock = match lock(store, &node.key) {
        Ok(l) => l,
        Err(e) => return Err((e, log_path, None)),
    };
    if is_done(store, plan, node) {
        return Ok(Outcome::AlreadyDone);
    }
    // A node keyed under one profile is never computed under another.
    if let Some(wanted) = node.op.numerics() {
        if crate::exec::numerics::active() != Some(wanted) {
            let now = crate::exec::numerics::active().map_or("no profile", |n| n.name());
            let e = ExecError::Invalid(format!(
                "`{}` is keyed under the `{}` numerics profile, but this process computes under {now}",
                node.display_name(),
                wanted.name()
            ));
            return Err((e, log_path, None));
        }
    }
    let name = node.display_name();
    let bar = opts.progress.node(&format!("{} {}", node.kind(), name), node.key);
    let log = NodeLog::open(&log_path);
    log.line(&format!("{} {} key {}", node.kind(), name, node.key));
    let started = Instant::now();
    let progress = |done: u64, total: u64| bar.set(done, total);
    let log_line = |line: &str| log.line(line);
    let resumption = std::sync::Mutex::new(Resumption::default());
    let ctx = Ctx {
        store,
        device: opts.device,
        stop: opts.stop,
        progress: &progress,
        log: &log_line,
        snapshot_every: opts.snapshot_every,
        resumption: &resumption,
    };
    // libtorch reports some errors by panicking through tch; one node's
    // failure must not take the others down.
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| execute(&ctx, node, &log))).unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(ExecError::Torch(msg.lines().next().unwrap_or_default().to_string()))
        });
    let secs = started.elapsed().as_secs_f64();
    bar.done();
    let resumption = *resumption.lock().unwrap_or_else(|p| p.into_inner());
    match result {
        Ok(()) => {
            log.line(&format!("done in {secs:.1}s"));
            let resumed = resumption.resumed_from.map(|s| format!(", resumed from step {s}")).unwrap_or_default();
            opts.progress.log(&format!("done       {:<18} {name} ({secs:.1}s{resumed})", node.kind()));
            opts.progress.finished(&node.key, secs);
            opts.progress.advance();
            Ok(Outcome::Computed { seconds: secs, resumed_from: resumption.resumed_from })
        }
        Err(ExecError::Interrupted) => {
            let saved = match resumption.saved_at {
                Some(step) => format!("; its state is saved at step {step}"),
                None => String::new(),
            };
            log.line(&format!("stopped after {secs:.1}s{saved}"));
            opts.progress.log(&format!("stopped    {:<18} {name}{saved}", node.kind()));
            Err((ExecError::Interrupted, log_path, resumption.saved_at))
        }
        Err(e) => {
            log.line(&format!("failed after {secs:.1}s: {e}"));
            Err((e, log_path, None))
        }
    }
}

/// An exclusive lock on a node, held across processes while it is computed.
fn lock(store: &Store, key: &Key) -> Result<std::fs::File, ExecError> {
    let dir = store.root().join("locks");
    std::fs::create_dir_all(&dir).map_err(|e| ExecError::Invalid(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join(format!("{}.lock", key.hex()));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| ExecError::Invalid(format!("cannot open {}: {e}", path.display())))?;
    // std's advisory lock (flock on Linux), released when the file closes.
    f.lock().map_err(|e| ExecError::Invalid(format!("cannot lock {}: {e}", path.display())))?;
    Ok(f)
}

/// Computes one node and commits its entry: an exhaustive match over what
/// the node computes.
pub fn execute(ctx: &Ctx, node: &Node, log: &NodeLog) -> Result<(), ExecError> {
    let name = node.display_name();
    // This thread computes in the node's precision until the node ends.
    let precision = node.op.precision();
    let _precision = crate::exec::precision::enter(precision, ctx.device);
    if precision != crate::plan::op::Precision::Float32 {
        log.line(&format!("precision {}: mixed, float32 weights", precision.name()));
    }
    match &node.op {
        // Training commits its own checkpoints as it goes.
        Op::Train(spec) => training::train_run(ctx, node, spec, log),
        Op::Checkpoint { .. } | Op::Figure(_) => {
            Err(ExecError::Invalid(format!("`{name}` is a {}, which the runner does not compute", node.kind())))
        }
        Op::World(_) => commit(ctx, node, log, |st| nodes::world(node, st)),
        Op::Generate(spec) => commit(ctx, node, log, |st| nodes::generate(ctx, spec, st)),
        Op::Relabel(spec) => commit(ctx, node, log, |st| nodes::relabel(ctx, spec, st)),
        Op::Pairs(spec) => commit(ctx, node, log, |st| nodes::pairs(ctx, spec, st)),
        Op::Jsonl(spec) => commit(ctx, node, log, |st| crate::exec::import::jsonl(ctx.store, spec, st)),
        Op::Pretrained(spec) => commit(ctx, node, log, |st| crate::exec::import::pretrained(spec, st)),
        Op::Sft(spec) => commit(ctx, node, log, |st| nodes::model(ctx, node, spec, ModelKind::Sft, st)),
        Op::Pm(spec, head) => commit(ctx, node, log, |st| nodes::model(ctx, node, spec, ModelKind::Pm(*head), st)),
        Op::Samples(spec) => commit(ctx, node, log, |st| evaluate::samples(ctx, spec, st)),
        Op::ReferenceLogprobs(spec) => commit(ctx, node, log, |st| crate::exec::reference::compute(ctx, spec, st)),
        Op::Eval(spec) => commit(ctx, node, log, |st| evaluate::evaluate(ctx, &name, spec, st)),
    }
}

/// Stages a node's entry, fills it with `fill`, and commits it with its log
/// and compute time (earlier sittings' included); the node's saved state,
/// if it had any, is then no longer needed.
fn commit(
    ctx: &Ctx,
    node: &Node,
    log: &NodeLog,
    fill: impl FnOnce(&mut Staging) -> Result<(), ExecError>,
) -> Result<(), ExecError> {
    let started = Instant::now();
    let mut st = ctx.store.begin(node)?;
    fill(&mut st)?;
    log.line("committing");
    st.set_compute_seconds(ctx.resumption().seconds_before + started.elapsed().as_secs_f64());
    st.write("log.txt", &log.text())?;
    st.commit()?;
    crate::exec::resume::clear_node(ctx.store, &node.key);
    Ok(())
}
