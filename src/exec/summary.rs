//! What a run of a plan did: computed, cached, failed, skipped, corrupt, and
//! where its time went.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// One computed node.
#[derive(Debug, Clone)]
pub struct Ran {
    /// The node's key: what the report matches this run's nodes by.
    pub key: crate::plan::Key,
    /// Its names as the plan prints them, for people.
    pub name: String,
    /// The node's kind (`run.train`, `eval.winrate`, ...).
    pub kind: String,
    pub seconds: f64,
    /// A training node that went on from saved state or a checkpoint: the step.
    pub resumed_from: Option<i64>,
}

impl Ran {
    pub fn new(node: &crate::plan::Node, seconds: f64) -> Ran {
        Ran { key: node.key, name: node.display_name(), kind: node.kind().to_string(), seconds, resumed_from: None }
    }
}

#[derive(Debug, Default)]
pub struct Summary {
    /// Each computed node (with 0 s in a dry run).
    pub ran: Vec<Ran>,
    pub cached: usize,
    /// (name, error, log path)
    pub failed: Vec<(String, String, PathBuf)>,
    /// Names not run because an input failed.
    pub skipped: Vec<String>,
    /// Corrupt entries found, evicted and recomputed.
    pub corrupt: Vec<String>,
    /// Corrupt entries that could not be evicted (a read-only cache): not
    /// recomputed, and the run fails.
    pub unevictable: Vec<String>,
    pub interrupted: bool,
    /// Nodes stopped by a signal, and the step their saved state holds.
    pub stopped: Vec<(String, i64)>,
    /// Slurm: nodes whose jobs ended by a time limit or preemption and were
    /// submitted again to resume, and how many times.
    pub resubmitted: Vec<(String, u32)>,
}

/// Node time of one kind: how many nodes and how many seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct KindTime {
    pub kind: String,
    pub nodes: usize,
    pub seconds: f64,
}

impl Summary {
    pub fn node_seconds(&self) -> f64 {
        // + 0.0: an empty sum is -0.0, which would print as "-0.0 s".
        self.ran.iter().map(|r| r.seconds).sum::<f64>() + 0.0
    }

    /// Node time by kind, the costliest first.
    pub fn by_kind(&self) -> Vec<KindTime> {
        by_kind(self.ran.iter().map(|r| (r.kind.as_str(), r.seconds)))
    }
}

/// Sums (kind, seconds) pairs per kind, the costliest kind first (ties by name).
pub fn by_kind<'a>(items: impl IntoIterator<Item = (&'a str, f64)>) -> Vec<KindTime> {
    let mut m: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    for (kind, s) in items {
        let e = m.entry(kind).or_default();
        e.0 += 1;
        e.1 += s;
    }
    let mut v: Vec<KindTime> =
        m.into_iter().map(|(kind, (nodes, seconds))| KindTime { kind: kind.to_string(), nodes, seconds }).collect();
    v.sort_by(|a, b| b.seconds.total_cmp(&a.seconds).then_with(|| a.kind.cmp(&b.kind)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_summed_and_the_costliest_comes_first() {
        let v = by_kind([("eval.kl", 1.0), ("run.train", 10.0), ("eval.kl", 2.5), ("model.sft", 2.5)]);
        assert_eq!(
            v,
            vec![
                KindTime { kind: "run.train".into(), nodes: 1, seconds: 10.0 },
                KindTime { kind: "eval.kl".into(), nodes: 2, seconds: 3.5 },
                KindTime { kind: "model.sft".into(), nodes: 1, seconds: 2.5 },
            ]
        );
    }
}
