//! How plans, diffs and cache entries are shown to people: the text, JSON
//! and DOT of `tandem plan`, and the text of `tandem show`.

use std::path::Path;

use crate::exec::schedule::is_done;
use crate::exec::store::{Manifest, Store};
use crate::plan::{Key, Op, Plan};

/// The `plan --json` document (format 1; documented in docs/running.md).
pub fn plan_json(plan: &Plan, store: &Store, file: &Path) -> serde_json::Value {
    let nodes: Vec<serde_json::Value> = plan
        .ordered()
        .into_iter()
        .map(|n| {
            serde_json::json!({
                "key": n.key.hex(),
                "short": n.key.short(),
                "kind": n.kind(),
                "version": n.op.version(),
                "names": n.name_strings(),
                "params": serde_json::Value::Object(n.op.key_params().iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
                "inputs": n.inputs.iter().map(|(p, k)| serde_json::json!({"path": p, "key": k.hex()})).collect::<Vec<_>>(),
                "attrs": n.op.facts_json(),
                "cached": is_done(store, plan, n),
            })
        })
        .collect();
    let cached = nodes.iter().filter(|n| n["cached"] == true).count();
    serde_json::json!({
        "format": 1,
        "file": file.display().to_string(),
        "nodes": nodes,
        "totals": {"nodes": plan.len(), "cached": cached, "missing": plan.len() - cached},
    })
}

fn first_name(plan: &Plan, k: &Key) -> String {
    plan.node(k).and_then(|n| n.names.first().map(|n| n.to_string())).unwrap_or_else(|| k.short())
}

pub fn plan_text(plan: &Plan, store: &Store, file: &Path) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "plan for {}\n", file.display());
    let _ = writeln!(s, "{:<10}  {:<20}  {:<7}  {:<36}  inputs", "key", "kind", "status", "name(s)");
    let mut cached = 0;
    for n in plan.ordered() {
        let is_cached = is_done(store, plan, n);
        cached += usize::from(is_cached);
        let inputs = inputs_summary(plan, &n.inputs);
        let mut name = n.display_name();
        if let Op::Train(t) = &n.op {
            name = format!("{name} (to step {})", t.length.steps);
        }
        let _ = writeln!(
            s,
            "{:<10}  {:<20}  {:<7}  {:<36}  {}",
            n.key.short(),
            n.kind(),
            if is_cached { "cached" } else { "missing" },
            name,
            if inputs.is_empty() { "-".into() } else { inputs.join(" ") }
        );
    }
    let _ = writeln!(s, "\ntotals: {} nodes, {} cached, {} missing", plan.len(), cached, plan.len() - cached);
    s
}

/// `param=name` per input; a list of many inputs is summarised by its size.
fn inputs_summary(plan: &Plan, inputs: &[(String, Key)]) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    let mut lists: Vec<(String, usize)> = vec![];
    for (p, k) in inputs {
        match p.split_once('[') {
            Some((head, _)) => match lists.iter_mut().find(|(h, _)| h == head) {
                Some((_, n)) => *n += 1,
                None => lists.push((head.to_string(), 1)),
            },
            None => out.push(format!("{p}={}", first_name(plan, k))),
        }
    }
    for (head, n) in lists {
        out.push(format!("{head}=[{n} nodes]"));
    }
    out
}

pub fn plan_dot(plan: &Plan, store: &Store) -> String {
    use std::fmt::Write;
    let mut s = String::from("digraph plan {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n");
    for n in plan.ordered() {
        let style = if is_done(store, plan, n) { "filled" } else { "solid" };
        let label = format!("{}\\n{}\\n{}", n.display_name().replace('"', "'"), n.kind(), n.key.short());
        let _ = writeln!(s, "  \"{}\" [label=\"{}\", style={style}];", n.key.short(), label);
    }
    for e in plan.graph.edge_indices() {
        let (a, b) = plan.graph.edge_endpoints(e).expect("edge");
        let _ = writeln!(
            s,
            "  \"{}\" -> \"{}\" [label=\"{}\"];",
            plan.graph[a].key.short(),
            plan.graph[b].key.short(),
            plan.graph[e]
        );
    }
    s.push_str("}\n");
    s
}

pub fn show_text(store: &Store, m: &Manifest) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "key      {}", m.key);
    let _ = writeln!(s, "kind     {} (version {})", m.kind, m.version);
    let _ = writeln!(s, "names    {}", if m.names.is_empty() { "-".into() } else { m.names.join(", ") });
    let _ = writeln!(s, "created  {} by tandem {}", m.created, m.tool_version);
    let _ = writeln!(s, "folder   {}", store.entry_dir(&m.key).display());
    let _ = writeln!(s, "params");
    if let serde_json::Value::Object(o) = &m.params {
        for (k, v) in o {
            let _ = writeln!(s, "  {k}: {}", crate::plan::diff::show(v));
        }
    }
    if let Some(h) = &m.host {
        let _ = writeln!(s, "computed");
        for (what, value) in h.lines() {
            let _ = writeln!(s, "  {what:<18} {value}");
        }
    }
    let _ = writeln!(s, "files");
    for f in &m.files {
        let _ = writeln!(s, "  {:<24} {:>10} bytes  blake3 {}", f.name, f.bytes, &f.blake3[..16]);
    }
    let _ = writeln!(s, "lineage");
    let _ = writeln!(s, "  {} ({} {})", m.names.first().cloned().unwrap_or_default(), m.kind, m.key.short());
    lineage(store, m, "  ", &mut s, 0);
    s
}

fn lineage(store: &Store, m: &Manifest, indent: &str, out: &mut String, depth: usize) {
    use std::fmt::Write;
    if depth > 64 {
        return;
    }
    let n = m.inputs.len();
    for (i, input) in m.inputs.iter().enumerate() {
        let last = i + 1 == n;
        let branch = if last { "└─ " } else { "├─ " };
        match store.manifest(&input.key) {
            Ok(im) => {
                let _ = writeln!(
                    out,
                    "{indent}{branch}{}: {} ({} {})",
                    input.path,
                    im.names.first().cloned().unwrap_or_default(),
                    im.kind,
                    input.key.short()
                );
                let next = format!("{indent}{}", if last { "   " } else { "│  " });
                lineage(store, &im, &next, out, depth + 1);
            }
            Err(_) => {
                let _ = writeln!(out, "{indent}{branch}{}: {} (not cached)", input.path, input.key.short());
            }
        }
    }
}
