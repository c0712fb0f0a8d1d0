//! The plan: a DAG (petgraph) of content-keyed nodes.

use std::collections::{BTreeMap, HashMap};

use petgraph::graph::{DiGraph, NodeIndex};

use crate::plan::key::{CValue, Key};

/// One stage to compute (or find in the cache).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Node {
    pub key: Key,
    /// e.g. `model.sft`, `run.train`, `checkpoint`, `eval.kl`.
    pub kind: String,
    pub version: u32,
    /// Normalized, result-affecting parameters; input keys appear inside.
    pub params: BTreeMap<String, CValue>,
    /// Every input key with the parameter path it sits at.
    pub inputs: Vec<(String, Key)>,
    /// The declared names (instance labels) that lower to this node.
    pub names: Vec<String>,
    /// Facts that do not enter the key, e.g. how far a training run must go.
    pub attrs: BTreeMap<String, serde_json::Value>,
}

impl Node {
    pub fn display_name(&self) -> String {
        if self.names.is_empty() {
            format!("({})", self.kind)
        } else {
            self.names.join(", ")
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub graph: DiGraph<Node, String>,
    pub by_key: HashMap<Key, NodeIndex>,
}

impl Plan {
    /// Adds a node, or merges its names into the identical node already there.
    pub fn add(&mut self, node: Node) -> Key {
        let key = node.key;
        if let Some(ix) = self.by_key.get(&key) {
            let existing = &mut self.graph[*ix];
            for n in node.names {
                if !existing.names.contains(&n) {
                    existing.names.push(n);
                }
            }
            merge_attrs(&mut existing.attrs, node.attrs);
            return key;
        }
        let inputs = node.inputs.clone();
        let ix = self.graph.add_node(node);
        self.by_key.insert(key, ix);
        for (path, k) in inputs {
            if let Some(src) = self.by_key.get(&k) {
                self.graph.add_edge(*src, ix, path);
            }
        }
        key
    }

    pub fn node(&self, key: &Key) -> Option<&Node> {
        self.by_key.get(key).map(|ix| &self.graph[*ix])
    }

    pub fn node_mut(&mut self, key: &Key) -> Option<&mut Node> {
        self.by_key.get(key).copied().map(move |ix| &mut self.graph[ix])
    }

    pub fn add_name(&mut self, key: &Key, name: String) {
        if let Some(n) = self.node_mut(key) {
            if !n.names.contains(&name) {
                n.names.push(name);
            }
        }
    }

    /// Nodes in dependency order (inputs first); ties in insertion order.
    pub fn ordered(&self) -> Vec<&Node> {
        match petgraph::algo::toposort(&self.graph, None) {
            Ok(order) => order.into_iter().map(|ix| &self.graph[ix]).collect(),
            Err(_) => self.graph.node_weights().collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// Names → keys, for diffs.
    pub fn names(&self) -> BTreeMap<String, Key> {
        let mut out = BTreeMap::new();
        for n in self.graph.node_weights() {
            for name in &n.names {
                out.insert(name.clone(), n.key);
            }
        }
        out
    }
}

/// `steps` (how far a run must train) is the maximum asked for; other
/// attributes keep the first value.
/// Records that a training run must save a checkpoint at `step`
/// (attribute `checkpoints`: sorted, without repeats).
pub fn add_checkpoint_step(attrs: &mut BTreeMap<String, serde_json::Value>, step: i64) {
    let mut steps = checkpoint_steps(attrs);
    if let Err(at) = steps.binary_search(&step) {
        steps.insert(at, step);
    }
    attrs.insert("checkpoints".into(), serde_json::json!(steps));
}

/// The steps at which a training run must have saved checkpoints.
pub fn checkpoint_steps(attrs: &BTreeMap<String, serde_json::Value>) -> Vec<i64> {
    attrs.get("checkpoints").and_then(|v| v.as_array()).map(|a| a.iter().filter_map(|s| s.as_i64()).collect()).unwrap_or_default()
}

fn merge_attrs(into: &mut BTreeMap<String, serde_json::Value>, from: BTreeMap<String, serde_json::Value>) {
    for (k, v) in from {
        match (k.as_str(), into.get(&k)) {
            ("steps", Some(old)) => {
                if v.as_i64() > old.as_i64() {
                    into.insert(k, v);
                }
            }
            ("checkpoints", Some(_)) => {
                for s in v.as_array().into_iter().flatten().filter_map(|s| s.as_i64()) {
                    add_checkpoint_step(into, s);
                }
            }
            (_, Some(_)) => {}
            (_, None) => {
                into.insert(k, v);
            }
        }
    }
}
