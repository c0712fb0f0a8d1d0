//! How long the rest of a run will take, from node times already recorded:
//! each finished node's manifest says what it cost (`compute_seconds`), and
//! nodes of one kind cost about the same per unit of work (a training step
//! for SFT, preference models and runs; the node itself otherwise). The
//! estimate learns from the plan's cached nodes first, then from every node
//! this run finishes; a kind never timed is counted, not guessed.

use std::collections::BTreeMap;

use crate::exec::store::Store;
use crate::plan::op::checkpoint_key;
use crate::plan::{Key, Node, Op, Plan};

/// What a node's time scales with: its training steps, or 1.
pub fn work_units(node: &Node) -> f64 {
    let steps = match &node.op {
        Op::Train(t) => t.length.steps,
        Op::Sft(s) | Op::Pm(s, _) => s.steps,
        _ => 1,
    };
    steps.max(1) as f64
}

/// Seconds per unit of work, by node kind, and the work still to do.
#[derive(Debug, Default, Clone)]
pub struct Estimate {
    /// kind → (seconds, units) of the nodes timed so far.
    rates: BTreeMap<&'static str, (f64, f64)>,
    /// Nodes not finished yet: key → (kind, units).
    left: BTreeMap<Key, (&'static str, f64)>,
}

/// The time left, as far as it is known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Left {
    /// Node seconds of the unfinished nodes whose kind has been timed.
    pub seconds: f64,
    /// Unfinished nodes of kinds with no timing yet.
    pub untimed: usize,
}

impl Estimate {
    /// The estimate for computing `todo`, seeded by the compute recorded
    /// for the plan's finished nodes (those `is_done` says are).
    pub fn new(plan: &Plan, store: &Store, todo: &[&Node], is_done: impl Fn(&Node) -> bool) -> Estimate {
        let mut e = Estimate::default();
        for n in plan.graph.node_weights() {
            let key = match &n.op {
                Op::Train(t) => checkpoint_key(&n.key, t.length.steps),
                Op::Checkpoint { .. } | Op::Figure(_) => continue,
                _ => n.key,
            };
            if !is_done(n) {
                continue;
            }
            if let Ok(m) = store.manifest(&key) {
                e.record(n.kind(), work_units(n), m.compute_seconds);
            }
        }
        for n in todo {
            e.left.insert(n.key, (n.kind(), work_units(n)));
        }
        e
    }

    /// A node timed: `seconds` for `units` of work of `kind`.
    pub fn record(&mut self, kind: &'static str, units: f64, seconds: f64) {
        if seconds > 0.0 && seconds.is_finite() && units > 0.0 {
            let r = self.rates.entry(kind).or_default();
            r.0 += seconds;
            r.1 += units;
        }
    }

    /// A node of this run finished in `seconds`.
    pub fn finished(&mut self, key: &Key, seconds: f64) {
        if let Some((kind, units)) = self.left.remove(key) {
            self.record(kind, units, seconds);
        }
    }

    /// The node seconds left, where `done(key)` is the share of a running
    /// node already done (0 for one not started).
    pub fn left(&self, done: impl Fn(&Key) -> f64) -> Left {
        let mut out = Left { seconds: 0.0, untimed: 0 };
        for (key, (kind, units)) in &self.left {
            match self.rates.get(*kind) {
                Some((secs, per)) => out.seconds += secs / per * units * (1.0 - done(key).clamp(0.0, 1.0)),
                None => out.untimed += 1,
            }
        }
        out
    }
}

/// `left` as people read it, spread over `jobs` nodes at once: "about
/// 2m 30s left", with the nodes no timing covers yet.
pub fn describe(left: Left, jobs: usize) -> String {
    let secs = (left.seconds / jobs.max(1) as f64).round() as u64;
    let time = humantime::format_duration(std::time::Duration::from_secs(secs)).to_string();
    match (left.untimed, secs > 0) {
        (0, _) => format!("about {time} left"),
        (n, true) => format!("about {time} left, and {n} node(s) of kinds not timed yet"),
        (n, false) => format!("{n} node(s) left of kinds not timed yet"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> Key {
        Key([i; 32])
    }

    #[test]
    fn the_time_left_scales_each_kind_by_its_recorded_rate() {
        let mut e = Estimate::default();
        // Runs: 20 s for 100 steps, 0.2 s a step; PMs: 10 s for 50 steps.
        e.record("run.train", 100.0, 20.0);
        e.record("model.pm", 50.0, 10.0);
        e.left.insert(key(1), ("run.train", 300.0));
        e.left.insert(key(2), ("model.pm", 10.0));
        e.left.insert(key(3), ("eval.kl", 1.0));
        // 300 × 0.2 + 10 × 0.2 = 62 s; the KL is not timed yet.
        assert_eq!(e.left(|_| 0.0), Left { seconds: 62.0, untimed: 1 });
        // Half of the run done: 30 + 2 = 32 s.
        assert_eq!(e.left(|k| if *k == key(1) { 0.5 } else { 0.0 }).seconds, 32.0);
        // The KL finishes in 0.5 s: it times its kind and leaves the rest.
        e.finished(&key(3), 0.5);
        assert_eq!(e.left(|_| 0.0), Left { seconds: 62.0, untimed: 0 });
        assert_eq!(describe(e.left(|_| 0.0), 2), "about 31s left");
        assert_eq!(describe(Left { seconds: 0.0, untimed: 3 }, 2), "3 node(s) left of kinds not timed yet");
    }
}
