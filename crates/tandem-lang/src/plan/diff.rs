//! Comparing two plans by hash: which nodes only one has, how many both
//! share, and for each name declared in both with different keys, which
//! parameters differ and which differ only because an input's key differs.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::check::program::display_float;
use crate::plan::key::{CValue, Key};
use crate::plan::node::Plan;
use crate::plan::op::Op;

#[derive(Debug, Clone, Serialize)]
pub struct NodeRef {
    pub key: Key,
    pub kind: String,
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ParamChange {
    pub path: String,
    pub a: serde_json::Value,
    pub b: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct InputChange {
    pub path: String,
    pub a: Key,
    pub b: Key,
    /// The names the input node carries in A and in B.
    pub names_a: Vec<String>,
    pub names_b: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Changed {
    pub name: String,
    pub kind: String,
    pub key_a: Key,
    pub key_b: Key,
    /// Parameters whose own values differ.
    pub params: Vec<ParamChange>,
    /// Inputs whose keys differ (the change came from upstream).
    pub inputs: Vec<InputChange>,
    /// True when nothing but input keys differ.
    pub only_inputs: bool,
}

/// A run whose length or saved steps differ: not in its key (a longer run
/// resumes a shorter one), so said apart from the key changes it causes
/// downstream (other checkpoints, other evaluations).
#[derive(Debug, Clone, Serialize)]
pub struct LengthChange {
    pub name: String,
    pub steps: (i64, i64),
    pub save_every: (i64, i64),
    /// The same training node on both sides (only its length differs).
    pub same_key: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub only_in_a: Vec<NodeRef>,
    pub only_in_b: Vec<NodeRef>,
    pub shared: usize,
    pub changed: Vec<Changed>,
    pub lengths: Vec<LengthChange>,
}

pub fn diff(a: &Plan, b: &Plan) -> Diff {
    let keys_a: HashSet<Key> = a.by_key.keys().copied().collect();
    let keys_b: HashSet<Key> = b.by_key.keys().copied().collect();
    let refs = |p: &Plan, other: &HashSet<Key>| -> Vec<NodeRef> {
        p.ordered()
            .into_iter()
            .filter(|n| !other.contains(&n.key))
            .map(|n| NodeRef { key: n.key, kind: n.kind().to_string(), names: n.name_strings() })
            .collect()
    };
    let only_in_a = refs(a, &keys_b);
    let only_in_b = refs(b, &keys_a);
    let shared = keys_a.intersection(&keys_b).count();

    let names_a = a.names();
    let names_b = b.names();
    // Report in A's dependency order so causes come before their effects.
    let order: BTreeMap<Key, usize> = a.ordered().iter().enumerate().map(|(i, n)| (n.key, i)).collect();
    let mut changed = vec![];
    let mut lengths = vec![];
    for (name, ka) in &names_a {
        let Some(kb) = names_b.get(name) else { continue };
        if let (Some(Op::Train(ta)), Some(Op::Train(tb))) = (a.node(ka).map(|n| &n.op), b.node(kb).map(|n| &n.op)) {
            let (la, lb) = (&ta.length, &tb.length);
            if la.steps != lb.steps || la.save_every != lb.save_every {
                lengths.push(LengthChange {
                    name: name.clone(),
                    steps: (la.steps, lb.steps),
                    save_every: (la.save_every, lb.save_every),
                    same_key: ka == kb,
                });
            }
        }
        if ka == kb {
            continue;
        }
        let (na, nb) = (a.node(ka).expect("named node"), b.node(kb).expect("named node"));
        let mut params = vec![];
        let mut inputs = vec![];
        if na.kind() != nb.kind() {
            params.push(ParamChange { path: "(kind)".into(), a: na.kind().into(), b: nb.kind().into() });
        }
        if na.op.version() != nb.op.version() {
            params.push(ParamChange { path: "(version)".into(), a: na.op.version().into(), b: nb.op.version().into() });
        }
        let (pa, pb) = (na.op.key_params(), nb.op.key_params());
        let all: std::collections::BTreeSet<&String> = pa.keys().chain(pb.keys()).collect();
        for p in all {
            compare(p, pa.get(p), pb.get(p), a, b, &mut params, &mut inputs);
        }
        let only_inputs = params.is_empty() && !inputs.is_empty();
        changed.push((
            order.get(ka).copied().unwrap_or(usize::MAX),
            Changed {
                name: name.clone(),
                kind: na.kind().to_string(),
                key_a: *ka,
                key_b: *kb,
                params,
                inputs,
                only_inputs,
            },
        ));
    }
    changed.sort_by(|x, y| x.0.cmp(&y.0).then_with(|| x.1.name.cmp(&y.1.name)));
    Diff { only_in_a, only_in_b, shared, changed: changed.into_iter().map(|(_, c)| c).collect(), lengths }
}

fn compare(
    path: &str,
    a: Option<&CValue>,
    b: Option<&CValue>,
    pa: &Plan,
    pb: &Plan,
    params: &mut Vec<ParamChange>,
    inputs: &mut Vec<InputChange>,
) {
    match (a, b) {
        (Some(x), Some(y)) if x == y => {}
        (Some(CValue::Key(x)), Some(CValue::Key(y))) => inputs.push(InputChange {
            path: path.to_string(),
            a: *x,
            b: *y,
            names_a: pa.node(x).map(|n| n.name_strings()).unwrap_or_default(),
            names_b: pb.node(y).map(|n| n.name_strings()).unwrap_or_default(),
        }),
        (Some(CValue::Record { tag: ta, fields: fa }), Some(CValue::Record { tag: tb, fields: fb })) if ta == tb => {
            let all: std::collections::BTreeSet<&String> = fa.keys().chain(fb.keys()).collect();
            for f in all {
                compare(&format!("{path}.{f}"), fa.get(f), fb.get(f), pa, pb, params, inputs);
            }
        }
        (Some(CValue::List(xa)), Some(CValue::List(xb))) if xa.len() == xb.len() => {
            for (i, (x, y)) in xa.iter().zip(xb).enumerate() {
                compare(&format!("{path}[{i}]"), Some(x), Some(y), pa, pb, params, inputs);
            }
        }
        (x, y) => params.push(ParamChange {
            path: path.to_string(),
            a: x.map(CValue::to_json).unwrap_or(serde_json::Value::Null),
            b: y.map(CValue::to_json).unwrap_or(serde_json::Value::Null),
        }),
    }
}

/// A parameter value for people: floats short, keys as short hex, at any
/// depth (a list of inputs is a list of short keys, not of 64-hex strings).
pub fn show(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Number(n) if n.is_f64() => display_float(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::Null => "(unset)".into(),
        serde_json::Value::String(s) if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) => {
            s[..10].to_string()
        }
        serde_json::Value::Array(items) => format!("[{}]", items.iter().map(show).collect::<Vec<_>>().join(", ")),
        serde_json::Value::Object(fields) => {
            format!("{{{}}}", fields.iter().map(|(k, v)| format!("{k}: {}", show(v))).collect::<Vec<_>>().join(", "))
        }
        other => other.to_string(),
    }
}

/// Human-readable diff.
pub fn render_text(d: &Diff, name_a: &str, name_b: &str) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "A = {name_a}\nB = {name_b}\n");
    let _ = writeln!(s, "shared nodes: {}", d.shared);
    let _ = writeln!(s, "only in A:    {}", d.only_in_a.len());
    for n in &d.only_in_a {
        let _ = writeln!(s, "  - {}  {:<20} {}", n.key.short(), n.kind, join_names(&n.names));
    }
    let _ = writeln!(s, "only in B:    {}", d.only_in_b.len());
    for n in &d.only_in_b {
        let _ = writeln!(s, "  + {}  {:<20} {}", n.key.short(), n.kind, join_names(&n.names));
    }
    if !d.lengths.is_empty() {
        let _ = writeln!(
            s,
            "\nruns of another length ({}; not in their keys: the longer resumes the shorter):",
            d.lengths.len()
        );
        for l in &d.lengths {
            let mut what = vec![];
            if l.steps.0 != l.steps.1 {
                what.push(format!("steps {} → {}", l.steps.0, l.steps.1));
            }
            if l.save_every.0 != l.save_every.1 {
                what.push(format!("save_every {} → {}", l.save_every.0, l.save_every.1));
            }
            let node = if l.same_key { "the same training node" } else { "and its key changed (below)" };
            let _ = writeln!(s, "  {}: {} ({node})", l.name, what.join(", "));
        }
    }
    if d.changed.is_empty() {
        let _ = writeln!(s, "\nno declaration changed its key");
        return s;
    }
    let direct: Vec<&Changed> = d.changed.iter().filter(|c| !c.only_inputs).collect();
    let downstream: Vec<&Changed> = d.changed.iter().filter(|c| c.only_inputs).collect();
    let _ = writeln!(s, "\nchanged parameters ({}):", direct.len());
    for c in &direct {
        let _ = writeln!(s, "  {} ({})  {} → {}", c.name, c.kind, c.key_a.short(), c.key_b.short());
        for p in &c.params {
            let _ = writeln!(s, "      {}: {}", p.path, show_change(&p.a, &p.b));
        }
        for i in &c.inputs {
            let _ = writeln!(s, "      input {}: {} changed", i.path, join_names(&i.names_a));
        }
    }
    let _ = writeln!(s, "\nchanged only because an input changed ({}):", downstream.len());
    for c in &downstream {
        // The input as each side names it: after a length change, A's
        // checkpoint at 300 is B's at 400.
        let why: Vec<String> = c
            .inputs
            .iter()
            .map(|i| {
                let (na, nb) = (join_names(&i.names_a), join_names(&i.names_b));
                if na == nb {
                    format!("{} ({na})", i.path)
                } else {
                    format!("{} ({na} → {nb})", i.path)
                }
            })
            .collect();
        let _ =
            writeln!(s, "  {} ({})  {} → {}  via {}", c.name, c.kind, c.key_a.short(), c.key_b.short(), why.join(", "));
    }
    s
}

/// A change of value; two lists of input keys as counts, not every key.
fn show_change(a: &serde_json::Value, b: &serde_json::Value) -> String {
    let keys = |v: &serde_json::Value| -> Option<Vec<String>> {
        v.as_array()?
            .iter()
            .map(|x| x.as_str().filter(|s| s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())).map(String::from))
            .collect()
    };
    match (keys(a), keys(b)) {
        (Some(ka), Some(kb)) if ka.len() + kb.len() > 8 => {
            let only_a = ka.iter().filter(|k| !kb.contains(k)).count();
            let only_b = kb.iter().filter(|k| !ka.contains(k)).count();
            format!("{} → {} inputs ({only_a} only in A, {only_b} only in B)", ka.len(), kb.len())
        }
        _ => format!("{} → {}", show(a), show(b)),
    }
}

fn join_names(n: &[String]) -> String {
    if n.is_empty() {
        "(unnamed)".into()
    } else {
        n.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::show;

    #[test]
    fn keys_are_short_at_any_depth() {
        let k = "ab".repeat(32);
        let v = serde_json::json!([k, {"judge": k, "beta": 0.1}, 3]);
        assert_eq!(show(&v), "[ababababab, {judge: ababababab, beta: 0.1}, 3]");
    }
}
