//! The plan: a DAG (petgraph) of content-keyed nodes.

use std::collections::{BTreeMap, HashMap};

use petgraph::graph::{DiGraph, NodeIndex};

use crate::plan::key::Key;
use crate::plan::name::NodeName;
use crate::plan::op::Op;

/// One stage to compute (or find in the cache).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Node {
    pub key: Key,
    pub op: Op,
    /// Every input key with the parameter path it sits at.
    pub inputs: Vec<(String, Key)>,
    /// The declared names that lower to this node.
    pub names: Vec<NodeName>,
}

impl Node {
    /// A node computing `op`: its key and inputs follow from the op.
    pub fn new(op: Op, names: Vec<NodeName>) -> Node {
        let mut inputs = vec![];
        for (n, v) in &op.key_params() {
            v.keys(n, &mut inputs);
        }
        Node { key: op.key(), op, inputs, names }
    }

    /// e.g. `model.sft`, `run.train`, `checkpoint`, `eval.kl`.
    pub fn kind(&self) -> &'static str {
        self.op.kind()
    }

    pub fn display_name(&self) -> String {
        if self.names.is_empty() {
            format!("({})", self.kind())
        } else {
            self.names.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ")
        }
    }

    pub fn name_strings(&self) -> Vec<String> {
        self.names.iter().map(|n| n.to_string()).collect()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub graph: DiGraph<Node, String>,
    pub by_key: HashMap<Key, NodeIndex>,
}

impl Plan {
    /// Adds a node, or merges its names (and a run's length) into the
    /// identical node already there.
    pub fn add(&mut self, node: Node) -> Key {
        let key = node.key;
        if let Some(ix) = self.by_key.get(&key) {
            let existing = &mut self.graph[*ix];
            let mut named = false;
            for n in node.names {
                if !existing.names.contains(&n) {
                    existing.names.push(n);
                    named = true;
                }
            }
            // A figure's words go with its name: one view per further name.
            if named || !matches!(node.op, crate::plan::Op::Figure(_)) {
                existing.op.merge(node.op);
            }
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
                out.insert(name.to_string(), n.key);
            }
        }
        out
    }
}
