//! A training node's saved state between its entries: what lets SFT, a
//! preference model or a run that is stopped (a signal, a Slurm time limit,
//! a kill) go on from where it was rather than from step 0.
//!
//! ```text
//! cache/resume/<node key>/objects/<snapshot key>/   the latest saved state
//! cache/resume/<node key>/tmp/                      a snapshot being written
//! ```
//!
//! Each node's folder is a store of its own, so a snapshot is written like
//! any entry (files, digests, manifest, fsync, one rename) and a half-written
//! one never counts. A snapshot holds the model, the optimizer's state and
//! the metrics so far (a run's holds what its checkpoints hold); its step is
//! in its manifest. Saving one removes the older ones it supersedes. The
//! folder goes once the node's entry is committed (a run's snapshots once a
//! checkpoint at or past their step is).
//!
//! Resuming from a snapshot computes what an uninterrupted node computes:
//! every draw comes from (seed, purpose, step) and the optimizer's state is
//! saved whole (`ARCHITECTURE.md`, "Determinism").

use std::time::{Duration, Instant};

use crate::exec::artifacts::ExecError;
use crate::exec::store::{Staging, Store};
use crate::plan::{Key, Node};

const KIND: &str = "resume";

/// One saved state of a node.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    pub step: i64,
    /// Its entry in the node's resume store.
    pub key: Key,
    /// Seconds of computation that reached this step, over all sittings.
    pub compute_seconds: f64,
}

/// The resume area of one node, and the clock that says when to save.
pub struct Resume {
    store: Store,
    node: Key,
    every: Option<Duration>,
    last_saved: Instant,
    /// What the last save took: saves are spaced at least `COST_RATIO` times
    /// that apart, so saving never takes more than 1/COST_RATIO of the time.
    last_cost: Duration,
}

/// Computation per second spent saving, at least (2% at most on saves).
const COST_RATIO: u32 = 50;

/// The resume area of a node: `cache/resume/<key>`.
pub fn area(cache: &Store, node: &Key) -> std::path::PathBuf {
    cache.root().join("resume").join(node.hex())
}

/// The key of a node's snapshot at `step`: never a plan node's key.
fn snapshot_key(node: &Key, step: i64) -> Key {
    let mut h = blake3::Hasher::new();
    h.update(b"tandem resume v1");
    h.update(&node.0);
    h.update(&step.to_le_bytes());
    Key(*h.finalize().as_bytes())
}

impl Resume {
    /// `every`: seconds of computation between snapshots (None: only when stopped).
    pub fn open(cache: &Store, node: &Key, every: Option<Duration>) -> Resume {
        Resume {
            store: Store::open_existing(area(cache, node)),
            node: *node,
            every,
            last_saved: Instant::now(),
            last_cost: Duration::ZERO,
        }
    }

    /// Where a snapshot's files are read from (with `exec::artifacts`).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Every complete, intact snapshot, oldest first, and the keys of
    /// damaged ones (a file that fails its digest, a foreign entry).
    fn scan(&self) -> (Vec<Snapshot>, Vec<(Key, String)>) {
        let (mut good, mut damaged) = (vec![], vec![]);
        for key in self.store.keys().unwrap_or_default() {
            let m = match self.store.verify(&key) {
                Ok(m) => m,
                Err(e) => {
                    damaged.push((key, e.to_string()));
                    continue;
                }
            };
            match m.params.get("step").and_then(|s| s.as_i64()) {
                Some(step) if m.kind == KIND && key == snapshot_key(&self.node, step) => {
                    good.push(Snapshot { step, key, compute_seconds: m.compute_seconds })
                }
                _ => damaged.push((key, "not a saved state of this node".into())),
            }
        }
        good.sort_by_key(|s| s.step);
        (good, damaged)
    }

    /// Every intact snapshot, oldest first. Damaged ones are removed: the
    /// node goes on from an earlier state instead.
    fn snapshots(&self) -> Vec<Snapshot> {
        let (good, damaged) = self.scan();
        for (key, _) in damaged {
            let _ = self.store.evict(&key);
        }
        good
    }

    /// The latest snapshot at a step in `(after, at_most]`.
    pub fn latest(&self, after: i64, at_most: i64) -> Option<Snapshot> {
        self.snapshots().into_iter().rev().find(|s| s.step > after && s.step <= at_most)
    }

    /// Whether the interval since the last save has passed: `every`, or
    /// longer where a save costs more than 1/COST_RATIO of that.
    pub fn due(&self) -> bool {
        self.every.is_some_and(|e| self.last_saved.elapsed() >= e.max(self.last_cost * COST_RATIO))
    }

    /// Saves the node's state at `step`: `fill` writes its files. Older
    /// snapshots are removed once this one is in place. Says what it wrote,
    /// for the node's log.
    pub fn save(
        &mut self,
        node: &Node,
        step: i64,
        compute_seconds: f64,
        fill: impl FnOnce(&mut Staging) -> Result<(), ExecError>,
    ) -> Result<String, ExecError> {
        let began = Instant::now();
        let key = snapshot_key(&self.node, step);
        let store = Store::open(self.store.root())?;
        let mut bytes = 0;
        if !store.contains(&key) {
            let params = serde_json::json!({"node": self.node.hex(), "step": step});
            let mut st = store.begin_other(key, KIND, node.name_strings(), params)?;
            st.set_compute_seconds(compute_seconds);
            fill(&mut st)?;
            bytes = st.commit()?.files.iter().map(|f| f.bytes).sum::<u64>();
        }
        for old in self.snapshots().into_iter().filter(|s| s.step < step) {
            let _ = self.store.evict(&old.key);
        }
        self.last_saved = Instant::now();
        self.last_cost = began.elapsed();
        Ok(format!("saved state at step {step} ({bytes} bytes in {:.0} ms)", 1e3 * self.last_cost.as_secs_f64()))
    }

    /// Removes the snapshots at or before `step` (a run's checkpoint there
    /// supersedes them), and the folder once nothing is left in it.
    pub fn clear_through(&self, step: i64) {
        for s in self.snapshots().into_iter().filter(|s| s.step <= step) {
            let _ = self.store.evict(&s.key);
        }
        if self.store.keys().map(|k| k.is_empty()).unwrap_or(true) {
            clear(&self.store);
        }
    }
}

/// Removes a node's whole resume area (its entry is committed).
pub fn clear_node(cache: &Store, node: &Key) {
    let dir = area(cache, node);
    if dir.exists() {
        clear(&Store::open_existing(dir));
    }
}

/// Removes a resume folder: renamed out of the way first, so that a reader
/// never sees half of it.
fn clear(area: &Store) {
    let dir = area.root();
    let Some(cache) = dir.parent().and_then(|p| p.parent()) else { return };
    let grave = cache.join("tmp").join(format!(
        "{}.resume-cleared.{}",
        dir.file_name().and_then(|n| n.to_str()).unwrap_or("x"),
        std::process::id()
    ));
    if std::fs::rename(dir, &grave).is_ok() {
        let _ = std::fs::remove_dir_all(&grave);
    }
}

/// A node with saved state in a cache.
#[derive(Debug)]
pub struct Pending {
    pub node: Key,
    /// Steps of its intact snapshots.
    pub steps: Vec<i64>,
    /// Snapshots that fail their digests (skipped when resuming, and removed).
    pub damaged: Vec<(Key, String)>,
    pub dir: std::path::PathBuf,
}

/// Every node with saved state in this cache (nothing is changed).
pub fn pending(cache: &Store) -> Vec<Pending> {
    let Ok(rd) = std::fs::read_dir(cache.root().join("resume")) else { return vec![] };
    let mut out: Vec<Pending> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(Key::from_hex))
        .map(|node| {
            let (good, damaged) = Resume::open(cache, &node, None).scan();
            Pending { node, steps: good.iter().map(|s| s.step).collect(), damaged, dir: area(cache, &node) }
        })
        .collect();
    out.sort_by_key(|p| p.node);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Node {
        let op = crate::plan::Op::World(crate::plan::op::WorldSpec {
            flavour: crate::plan::op::WorldFlavour::Summarize,
            seed: 1,
            vocab: 16,
            prompt_len: 4,
            response_len: 4,
            noise: 1.0,
            interaction: 0.0,
        });
        Node::new(op, vec![crate::plan::NodeName::Decl(crate::check::program::InstanceName::plain("n"))])
    }

    fn save(r: &mut Resume, n: &Node, step: i64) {
        r.save(n, step, step as f64, |st| st.write("state.bin", &step.to_le_bytes()).map_err(ExecError::from)).unwrap();
    }

    #[test]
    fn the_latest_intact_snapshot_is_found_and_older_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Store::open(dir.path()).unwrap();
        let n = node();
        let mut r = Resume::open(&cache, &n.key, None);
        assert!(r.latest(0, 100).is_none());
        save(&mut r, &n, 10);
        save(&mut r, &n, 30);
        let s = r.latest(0, 100).unwrap();
        assert_eq!((s.step, s.compute_seconds), (30, 30.0));
        // Saving 30 removed 10.
        assert_eq!(r.snapshots().len(), 1);
        // A bound below it, or a checkpoint at or past it, finds nothing.
        assert!(r.latest(0, 29).is_none());
        assert!(r.latest(30, 100).is_none());
        assert_eq!(r.store().read(&s.key, "state.bin").unwrap(), 30i64.to_le_bytes());
        // Nothing is left in tmp.
        assert_eq!(std::fs::read_dir(area(&cache, &n.key).join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn a_damaged_snapshot_is_skipped_reported_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Store::open(dir.path()).unwrap();
        let n = node();
        let mut r = Resume::open(&cache, &n.key, None);
        save(&mut r, &n, 40);
        let s = r.latest(0, 100).unwrap();
        std::fs::write(r.store().entry_dir(&s.key).join("state.bin"), b"garbage!").unwrap();
        let p = pending(&cache);
        assert_eq!(p.len(), 1);
        assert!(p[0].steps.is_empty() && p[0].damaged.len() == 1, "{p:?}");
        assert!(r.latest(0, 100).is_none());
        assert!(!r.store().contains(&s.key), "the damaged snapshot is removed");
    }

    #[test]
    fn a_checkpoint_supersedes_saved_state_up_to_its_step() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Store::open(dir.path()).unwrap();
        let n = node();
        let mut r = Resume::open(&cache, &n.key, None);
        save(&mut r, &n, 70);
        // A shorter sitting that ends at 50 keeps the state at 70.
        r.clear_through(50);
        assert_eq!(r.latest(0, 100).map(|s| s.step), Some(70));
        r.clear_through(70);
        assert!(!area(&cache, &n.key).exists(), "the folder goes with its last snapshot");
        assert!(pending(&cache).is_empty());
    }

    #[test]
    fn saves_are_due_by_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Store::open(dir.path()).unwrap();
        let n = node();
        assert!(!Resume::open(&cache, &n.key, None).due(), "no interval: only when stopped");
        assert!(!Resume::open(&cache, &n.key, Some(Duration::from_secs(3600))).due());
        let mut r = Resume::open(&cache, &n.key, Some(Duration::ZERO));
        assert!(r.due());
        // A save that took a while spaces the next ones 50 times as far.
        r.last_cost = Duration::from_secs(60);
        assert!(!r.due());
    }
}
