//! What a run must compute and in which order: which nodes are done, which
//! `--only` selects, which are ready and which wait for inputs. The local
//! runner and the Slurm driver schedule from the same table.
//!
//! Before anything runs, every cached entry the plan uses is verified against
//! its digests; a corrupt one is reported, evicted and recomputed.

use std::collections::{HashMap, HashSet, VecDeque};

use rayon::prelude::*;

use crate::exec::progress::Progress;
use crate::exec::resume;
use crate::exec::store::Store;
use crate::plan::op::{checkpoint_key, Op};
use crate::plan::{Key, Node, Plan};

/// Whether a node's result is in the cache. A training run counts as done
/// when the checkpoint at its target step is, and every checkpoint it must
/// save; a figure is drawn from its evaluations, so it is done when they are.
pub fn is_done(store: &Store, plan: &Plan, node: &Node) -> bool {
    match &node.op {
        Op::Train(t) => {
            store.contains(&checkpoint_key(&node.key, t.length.steps))
                && t.length.checkpoints.iter().all(|s| store.contains(&checkpoint_key(&node.key, *s)))
        }
        Op::Figure(_) => node.inputs.iter().all(|(_, i)| plan.node(i).is_some_and(|n| is_done(store, plan, n))),
        _ => store.contains(&node.key),
    }
}

/// The nodes `only` names, and everything upstream of them.
fn wanted(plan: &Plan, only: &[String]) -> Option<HashSet<Key>> {
    if only.is_empty() {
        return None;
    }
    let mut set = HashSet::new();
    let mut stack: Vec<Key> = plan.graph.node_weights().filter(|n| selected(n, only)).map(|n| n.key).collect();
    while let Some(k) = stack.pop() {
        if set.insert(k) {
            if let Some(n) = plan.node(&k) {
                stack.extend(n.inputs.iter().map(|(_, i)| *i));
            }
        }
    }
    Some(set)
}

/// Whether one of `only` names this node (see [`crate::plan::NodeName::selected_by`]).
pub fn selected(node: &Node, only: &[String]) -> bool {
    node.names.iter().any(|name| only.iter().any(|o| name.selected_by(o)))
}

/// Verifies the cached entries a plan uses (in parallel) and evicts corrupt
/// ones: (evicted, to be recomputed; corrupt but could not be evicted, e.g.
/// on a read-only cache).
fn verify_cached(store: &Store, nodes: &[&Node]) -> (Vec<String>, Vec<String>) {
    let mut keys: Vec<(Key, String)> = vec![];
    for n in nodes {
        match &n.op {
            Op::Train(t) => {
                keys.push((checkpoint_key(&n.key, t.length.steps), format!("{}@{}", n.display_name(), t.length.steps)))
            }
            Op::Figure(_) => {}
            _ => keys.push((n.key, n.display_name())),
        }
    }
    let found: Vec<(String, Option<String>)> = keys
        .par_iter()
        .filter(|(k, _)| store.contains(k))
        .filter_map(|(k, name)| match store.verify(k) {
            Err(crate::exec::store::StoreError::Corrupt { what, .. }) => {
                let said = format!("{name} ({}): {what}", k.short());
                Some(match store.evict(k) {
                    Ok(()) => (said, None),
                    Err(e) => (said, Some(e.to_string())),
                })
            }
            _ => None,
        })
        .collect();
    let mut evicted = vec![];
    let mut stuck = vec![];
    for (said, failed) in found {
        match failed {
            None => evicted.push(said),
            Some(e) => stuck.push(format!("{said}; not evicted: {e}")),
        }
    }
    (evicted, stuck)
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
    let todo: HashSet<Key> =
        nodes.iter().filter(|n| n.op.is_computed() && !is_done(store, plan, n)).map(|n| n.key).collect();
    let cached = nodes.iter().filter(|n| n.op.is_computed()).count() - todo.len();
    let mut dependents: HashMap<Key, Vec<Key>> = HashMap::new();
    let mut waiting = HashMap::new();
    let mut ready = VecDeque::new();
    // A checkpoint input stands for its training run.
    let producer = |k: &Key| -> Key {
        match plan.node(k).map(|n| &n.op) {
            Some(Op::Checkpoint { run, .. }) => *run,
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
pub fn prepare<'p>(
    plan: &'p Plan,
    store: &Store,
    only: &[String],
    dry_run: bool,
    progress: &Progress,
) -> (Vec<&'p Node>, (Vec<String>, Vec<String>)) {
    let filter = wanted(plan, only);
    let nodes: Vec<&Node> =
        plan.ordered().into_iter().filter(|n| filter.as_ref().is_none_or(|f| f.contains(&n.key))).collect();
    let corrupt = if dry_run { (vec![], vec![]) } else { verify_cached(store, &nodes) };
    for c in &corrupt.0 {
        progress.log(&format!("corrupt cache entry evicted, will recompute: {c}"));
    }
    for c in &corrupt.1 {
        progress.log(&format!("corrupt cache entry, cannot be recomputed: {c}"));
    }
    if !dry_run {
        clear_finished_nodes_saved_state(plan, store, &nodes);
    }
    (nodes, corrupt)
}

/// A node's saved state goes right after its entry is committed; a process
/// killed between the two leaves it behind, and nothing would ever resume
/// from it (the node is done). It is removed here, before anything runs.
/// Safe beside another process on the cache: a done node is computed by no
/// one, so no one is writing its saved state.
fn clear_finished_nodes_saved_state(plan: &Plan, store: &Store, nodes: &[&Node]) {
    for n in nodes {
        if resume::area(store, &n.key).exists() && is_done(store, plan, n) {
            resume::clear_node(store, &n.key);
        }
    }
}
