//! Properties of node keys.
//!
//! 1. Reformatting, renaming declarations, reordering arguments and
//!    declarations, and spelling numbers differently never change a key.
//! 2. Changing one result-affecting parameter changes exactly the key of the
//!    node it belongs to and the keys of everything downstream of it.
//!
//! The experiment is generated from a small description so that every
//! rewrite can be applied mechanically and checked.

mod common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use proptest::prelude::*;
use tandem_lang::plan::op::Op;

/// A value in the description.
#[derive(Clone, Debug)]
enum V {
    /// An integer.
    I(i64),
    /// A decimal: mantissa × 10^exp.
    F(i64, i32),
    /// A reference to declaration `usize`, optionally at a checkpoint.
    R(usize, Option<i64>),
    S(&'static str),
    L(Vec<V>),
    C(&'static str, Vec<(&'static str, V)>),
}

struct D {
    kind: &'static str,
    ctor: &'static str,
    /// The first argument may be written positionally.
    args: Vec<(&'static str, V)>,
}

fn study() -> Vec<D> {
    use V::*;
    vec![
        D { kind: "world", ctor: "summarize", args: vec![("seed", I(1)), ("noise", F(1, 0))] },
        D {
            kind: "dataset",
            ctor: "generate",
            args: vec![("world", R(0, None)), ("pairs", I(2000)), ("val_fraction", F(1, -1))],
        },
        D {
            kind: "model",
            ctor: "pm",
            args: vec![("data", R(1, None)), ("layers", I(3)), ("width", I(96)), ("steps", I(1500))],
        },
        D { kind: "dataset", ctor: "relabel", args: vec![("data", R(1, None)), ("judge", R(2, None))] },
        D { kind: "model", ctor: "sft", args: vec![("data", R(3, None)), ("steps", I(1000)), ("lr", F(3, -4))] },
        D { kind: "model", ctor: "pm", args: vec![("data", R(3, None)), ("steps", I(1000))] },
        D {
            kind: "run",
            ctor: "train",
            args: vec![
                ("policy", R(4, None)),
                ("loss", C("ipo", vec![("beta", F(1, -1))])),
                ("sampler", C("online", vec![("judge", R(5, None))])),
                ("lr", F(1, -4)),
                ("steps", I(300)),
                ("save_every", I(50)),
            ],
        },
        D {
            kind: "run",
            ctor: "train",
            args: vec![
                ("policy", R(4, None)),
                ("loss", C("ipo", vec![("beta", F(1, -1))])),
                ("sampler", C("offline", vec![("data", R(3, None))])),
                ("lr", F(1, -4)),
                ("steps", I(300)),
                ("save_every", I(50)),
            ],
        },
        D {
            kind: "run",
            ctor: "train",
            args: vec![
                ("policy", R(4, None)),
                ("loss", C("dpo", vec![("beta", F(5, -1))])),
                ("sampler", C("replay", vec![("source", R(6, None)), ("shuffle", F(1, 0))])),
                ("steps", I(300)),
                ("save_every", I(50)),
            ],
        },
        D {
            kind: "dataset",
            ctor: "pairs",
            args: vec![
                ("a", R(4, None)),
                ("b", R(6, Some(100))),
                ("prompts", R(3, None)),
                ("judge", R(2, None)),
                ("n", I(500)),
            ],
        },
        D { kind: "model", ctor: "pm", args: vec![("data", R(9, None)), ("steps", I(2000))] },
        D {
            kind: "eval",
            ctor: "kl",
            args: vec![("policies", L(vec![R(6, None), R(7, None), R(8, None)])), ("prompts", I(128))],
        },
        D {
            kind: "eval",
            ctor: "winrate",
            args: vec![("policies", L(vec![R(6, None), R(7, None)])), ("baseline", R(8, None)), ("judge", R(2, None))],
        },
        D { kind: "figure", ctor: "tradeoff", args: vec![("x", R(11, None)), ("y", R(12, None)), ("title", S("fig"))] },
    ]
}

/// Random choices for one rendering.
#[derive(Clone, Debug)]
struct Style {
    names: Vec<String>,
    decl_order: Vec<usize>,
    arg_seed: u64,
    spaces: Vec<&'static str>,
    number_style: u64,
    positional: bool,
}

fn int_spellings(n: i64) -> Vec<String> {
    let mut v = vec![n.to_string(), format!("{n}.0"), format!("{n}e0")];
    if n != 0 && n % 1000 == 0 {
        v.push(format!("{}k", n / 1000));
        v.push(format!("{}e3", n / 1000));
        v.push(format!("{}.{}k", n / 1000, 0));
    }
    if n % 10 == 0 && n != 0 {
        v.push(format!("{}e1", n / 10));
        v.push(format!("{}.{}k", n / 1000, format!("{:03}", n % 1000).trim_end_matches('0')).replace(".k", "k"));
    }
    v
}

fn float_spellings(m: i64, e: i32) -> Vec<String> {
    let mut v = vec![
        format!("{m}e{e}"),
        format!("{}e{}", m * 10, e - 1),
        format!("{m}.0e{e}"),
        format!("{}e{}", m * 100, e - 2),
    ];
    // Plain decimal.
    if e < 0 {
        let digits = format!("{:0>width$}", m, width = (-e) as usize + 1);
        let (int, frac) = digits.split_at(digits.len() - (-e) as usize);
        v.push(format!("{int}.{frac}"));
    } else {
        v.push(format!("{}", m * 10i64.pow(e as u32)));
    }
    v
}

fn pick<T: Clone>(v: &[T], seed: u64) -> T {
    v[(seed as usize) % v.len()].clone()
}

fn render_value(v: &V, st: &Style, salt: &mut u64) -> String {
    *salt = salt.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let s = *salt >> 33;
    match v {
        V::I(n) => pick(&int_spellings(*n), s ^ st.number_style),
        V::F(m, e) => pick(&float_spellings(*m, *e), s ^ st.number_style),
        V::R(i, None) => st.names[*i].clone(),
        V::R(i, Some(step)) => format!("{}@{}", st.names[*i], step),
        V::S(t) => format!("\"{t}\""),
        V::L(items) => format!("[{}]", items.iter().map(|i| render_value(i, st, salt)).collect::<Vec<_>>().join(", ")),
        V::C(name, args) => {
            let mut a: Vec<String> = args.iter().map(|(k, v)| format!("{k}: {}", render_value(v, st, salt))).collect();
            rotate(&mut a, st.arg_seed ^ s);
            format!("{name}({})", a.join(", "))
        }
    }
}

fn rotate(v: &mut [String], seed: u64) {
    // A seeded Fisher–Yates shuffle.
    let mut x = seed | 1;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x as usize) % (i + 1));
    }
}

fn render(study: &[D], st: &Style) -> String {
    let mut out = String::from("# generated\n");
    let mut salt = st.arg_seed;
    for (n, &i) in st.decl_order.iter().enumerate() {
        let d = &study[i];
        let ws = st.spaces[n % st.spaces.len()];
        let mut args: Vec<String> = vec![];
        let mut first = None;
        for (k, (name, v)) in d.args.iter().enumerate() {
            let val = render_value(v, st, &mut salt);
            if k == 0 && st.positional {
                first = Some(val);
            } else {
                args.push(format!("{name}:{ws}{val}"));
            }
        }
        rotate(&mut args, st.arg_seed.wrapping_add(i as u64));
        if let Some(f) = first {
            args.insert(0, f);
        }
        out.push_str(&format!(
            "{}{ws}{}{ws}={ws}{}({ws}{}{ws}){ws}// decl {n}\n",
            d.kind,
            st.names[i],
            d.ctor,
            args.join(&format!(",{ws}"))
        ));
    }
    out
}

fn base_style(n: usize) -> Style {
    Style {
        names: (0..n).map(|i| format!("d{i}")).collect(),
        decl_order: (0..n).collect(),
        arg_seed: 0,
        spaces: vec![" "],
        number_style: 0,
        positional: false,
    }
}

fn style_strategy(n: usize) -> impl Strategy<Value = Style> {
    (
        proptest::collection::vec("[a-z][a-z0-9_]{0,8}", n),
        Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
        any::<u64>(),
        proptest::collection::vec(prop_oneof![Just(" "), Just("  "), Just("\n  "), Just("\t"), Just(" \n\n ")], 1..4),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(|(mut names, decl_order, arg_seed, spaces, number_style, positional)| {
            // Names must be distinct and not reserved words.
            for (i, n) in names.iter_mut().enumerate() {
                *n = format!("{n}_{i}");
            }
            Style { names, decl_order, arg_seed, spaces, number_style, positional }
        })
}

/// The keys downstream of (and including) the nodes a declaration lowers to
/// (an evaluation lowers to `name(target@step)` nodes).
fn downstream(plan: &tandem_lang::plan::Plan, name: &str) -> BTreeSet<tandem_lang::plan::Key> {
    let starts: Vec<_> = plan
        .names()
        .into_iter()
        .filter(|(n, _)| n == name || n.starts_with(&format!("{name}(")))
        .map(|(_, k)| plan.by_key[&k])
        .collect();
    assert!(!starts.is_empty(), "no node for {name}");
    let mut seen = BTreeSet::new();
    let mut q = VecDeque::from(starts);
    while let Some(ix) = q.pop_front() {
        if seen.insert(plan.graph[ix].key) {
            q.extend(plan.graph.neighbors_directed(ix, petgraph::Direction::Outgoing));
        }
    }
    seen
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn rewriting_the_text_never_changes_a_key(st in style_strategy(study().len())) {
        let s = study();
        let reference = common::keys(&common::plan_text(&render(&s, &base_style(s.len()))));
        let text = render(&s, &st);
        let keys = common::keys(&common::plan_text(&text));
        prop_assert_eq!(reference, keys, "text:\n{}", text);
    }
}

/// Every numeric, result-affecting parameter of the study, changed one at a time.
#[test]
fn changing_one_parameter_changes_exactly_its_node_and_dependents() {
    let s = study();
    let mut candidates: Vec<(usize, usize)> = vec![];
    for (i, d) in s.iter().enumerate() {
        for (k, (name, v)) in d.args.iter().enumerate() {
            let in_key = !(d.kind == "run" && ["steps", "save_every"].contains(name));
            if matches!(v, V::I(_) | V::F(..)) && in_key {
                candidates.push((i, k));
            }
        }
    }
    assert!(candidates.len() >= 15, "{}", candidates.len());
    let st = base_style(s.len());
    let a = common::plan_text(&render(&s, &st));
    let names_a = common::names(&a);
    for (i, k) in candidates {
        let mut changed = study();
        changed[i].args[k].1 = match changed[i].args[k].1 {
            // +4 keeps widths divisible by heads; halving keeps every float in range.
            V::I(n) => V::I(n + 4),
            V::F(m, e) => V::F(m * 5, e - 1),
            ref other => other.clone(),
        };
        let b = common::plan_text(&render(&changed, &st));
        let mut expected = downstream(&a, &st.names[i]);
        // An evaluation's `prompts` also sizes the shared samples of the
        // policies it samples, each as large as the largest evaluation of
        // that policy: raised past a samples node's size, it changes that
        // node and everything that reads it.
        if let (true, V::I(raised)) = (s[i].args[k].0 == "prompts", &changed[i].args[k].1) {
            for (n, key) in a.names() {
                if let (true, Some(Op::Samples(sm))) =
                    (n.starts_with(&format!("{}.samples(", st.names[i])), a.node(&key).map(|node| &node.op))
                {
                    if sm.prompts < *raised {
                        expected.extend(downstream(&a, &n));
                    }
                }
            }
        }
        let names_b = common::names(&b);
        let actual: BTreeSet<_> =
            names_a.iter().filter(|(n, ka)| names_b.get(*n) != Some(*ka)).map(|(_, ka)| *ka).collect();
        assert_eq!(expected, actual, "changed {}.{}", st.names[i], s[i].args[k].0);
    }
}

#[test]
fn a_run_key_leaves_out_its_step_count() {
    let s = study();
    let st = base_style(s.len());
    let mut longer = study();
    longer[7].args[4].1 = V::I(600);
    let a = common::plan_text(&render(&s, &st));
    let b = common::plan_text(&render(&longer, &st));
    let (na, nb): (BTreeMap<_, _>, BTreeMap<_, _>) = (common::names(&a), common::names(&b));
    // The training node is shared; its last checkpoint is a new node.
    assert_eq!(na["d7"], nb["d7"]);
    assert!(na.contains_key("d7@300") && nb.contains_key("d7@600"));
    assert_eq!(na["d7@100"], nb["d7@100"]);
}

#[test]
fn a_parameter_added_later_stays_out_of_the_key_at_its_default() {
    // `generate`'s `overshoot` came after keys were in use: left out, or
    // written at its default (0, however spelled), the D_initial node carries
    // no `overshoot` at all, so it keeps the key it always had (pinned by the
    // corpus snapshot plan_defaults_implicit); any other value enters the key.
    let base = "world w = summarize(seed: 1)\ndataset d = generate(w, pairs: 100";
    let node = |extra: &str| {
        let plan = common::plan_text(&format!("{base}{extra})\n"));
        let key = common::names(&plan)["d"];
        let node = plan.node(&key).expect("the dataset's node").clone();
        (key, node.op.key_params().contains_key("overshoot"))
    };
    let (before, has) = node("");
    assert!(!has, "a left-out default must not enter the key");
    for spelling in [", overshoot: 0", ", overshoot: 0.0", ", overshoot: 0e3", ", overshoot: -0.0"] {
        assert_eq!(node(spelling), (before, false), "{spelling}");
    }
    let (changed, has) = node(", overshoot: 0.2");
    assert!(has && changed != before);
    assert_ne!(node(", overshoot: 0.3").0, changed);
}

/// Key fields that lowering adds beside the constructor's own arguments.
const LOWERING_FIELDS: &[(&str, &[&str])] =
    &[("eval", &["target", "pool", "reference", "samples"]), ("jsonl", &["content"]), ("parquet", &["content"])];

#[test]
fn every_key_field_is_an_argument_of_its_constructor_in_the_schema() {
    // The typed ops spell each key field once (crates/tandem-lang/src/plan/op.rs); this ties
    // those spellings, and each op's kind, to the schema's table, so a typo
    // in either fails here rather than silently moving keys.
    use tandem_lang::check::schema::{ctor, CtorKind};
    use tandem_lang::plan::CValue;
    let mut plans = vec![];
    for f in ["experiments/quickstart.exp", "experiments/paper.exp", "tests/corpus/ok/all_kinds.exp"] {
        plans.push(common::plan_path(&common::at_root(f)).unwrap());
    }
    let mut seen = std::collections::BTreeSet::new();
    for plan in &plans {
        for node in plan.ordered() {
            // Checkpoints, a win rate's baseline samples and a run's
            // reference log-probs are made by lowering, not written in the
            // language: no constructor.
            let Some(name) = node.op.ctor() else {
                assert!(
                    ["checkpoint", "samples", "reference_logprobs"].contains(&node.kind()),
                    "{} has no constructor",
                    node.kind()
                );
                continue;
            };
            let c = ctor(name).unwrap_or_else(|| panic!("op {} names no constructor `{name}`", node.kind()));
            match c.kind {
                CtorKind::Decl { node: kind, .. } => {
                    assert_eq!(kind, node.kind(), "the schema's node kind of `{name}`")
                }
                CtorKind::Value(_) => panic!("`{name}` is a value constructor"),
            }
            let family = if node.kind().starts_with("eval.") { "eval" } else { name };
            let extra: &[&str] = LOWERING_FIELDS.iter().find(|(f, _)| *f == family).map(|(_, e)| *e).unwrap_or(&[]);
            for (field, value) in node.op.key_params() {
                let param = c.param(&field);
                // The numerics profile is every libtorch-computed node's.
                if field == "numerics" {
                    assert!(node.op.numerics().is_some(), "`{name}` keys a profile it does not compute under");
                    continue;
                }
                assert!(
                    param.is_some_and(|p| p.in_key) || extra.contains(&field.as_str()),
                    "`{name}` keys `{field}`, which is not one of its in-key arguments"
                );
                // Losses and samplers: their fields are their constructor's arguments.
                if let CValue::Record { tag, fields } = value {
                    let vc = ctor(&tag).unwrap_or_else(|| panic!("no constructor `{tag}`"));
                    for f in fields.keys() {
                        assert!(
                            vc.param(f).is_some_and(|p| p.in_key),
                            "`{tag}` keys `{f}`, which is not one of its arguments"
                        );
                    }
                    seen.insert(tag);
                }
                seen.insert(format!("{name}.{field}"));
            }
        }
    }
    // The studies exercise every loss and sampler.
    for tag in ["ipo", "dpo", "slic", "bo2", "offline", "online", "replay"] {
        assert!(seen.contains(tag), "{tag} not exercised");
    }
}

#[test]
fn a_figure_key_ignores_the_order_of_at_and_of_sweep_values_and_repeated_targets() {
    let study = |lrs: &str, at: &str, policies: &str| {
        format!(
            r#"
world w = summarize(seed: 1)
dataset d = generate(w, pairs: 100)
model sft = sft(d, steps: 10)
model pm = pm(d, steps: 10)
run r = train(sft, loss: ipo(), sampler: online(judge: pm), steps: 20, save_every: 10, lr: sweep [{lrs}])
eval k = kl(policies: [{policies}], at: [{at}])
eval wr = winrate(policies: [{policies}], baseline: sft, judge: pm, at: [{at}])
figure f = tradeoff(x: k, y: wr)
"#
        )
    };
    let key = |text: &str| common::names(&common::plan_text(text))["f"];
    let base = key(&study("1e-4, 3e-4", "10, 20", "r"));
    assert_eq!(key(&study("3e-4, 1e-4", "10, 20", "r")), base, "sweep order");
    assert_eq!(key(&study("1e-4, 3e-4", "20, 10", "r")), base, "at: order");
    assert_eq!(key(&study("1e-4, 3e-4", "10, 20", "r, r")), base, "a target listed twice");
    // What does change the figure: other steps.
    assert_ne!(key(&study("1e-4, 3e-4", "10", "r")), base);
}

/// Every node libtorch computes keys the profile it computes under, and a
/// training node in another precision than float32 keys that precision, so
/// no two profiles or precisions can share a cache entry. A kind whose key
/// line forgot either fails here, under both CPU profiles.
#[test]
fn every_libtorch_node_keys_its_profile_and_its_precision() {
    use tandem_lang::check::{check_source, CheckOptions};
    use tandem_lang::plan::lower::lower_with;
    use tandem_lang::plan::op::{Numerics, Precision};
    use tandem_lang::plan::CValue;
    let bf16 = r#"
world w = summarize(seed: 1, vocab: 24, prompt_len: 6, response_len: 8)
dataset d = generate(w, pairs: 200)
model sft = sft(d, layers: 1, width: 16, heads: 2, steps: 20, precision: "bf16")
model judge = pm(d, layers: 1, width: 16, heads: 2, steps: 20, precision: "bf16")
run online = train(sft, loss: ipo(), sampler: online(judge: judge), steps: 20, save_every: 10, precision: "bf16")
run tandem = train(sft, loss: ipo(), sampler: replay(online), steps: 20, save_every: 10, precision: "bf16")
eval k = kl(policies: [online, tandem], prompts: 8)
"#;
    let files = ["experiments/quickstart.exp", "experiments/paper.exp", "tests/corpus/ok/all_kinds.exp"];
    let mut programs: Vec<(String, tandem_lang::check::program::Program, bool)> = files
        .iter()
        .map(|f| {
            let checked = tandem_lang::check::check_file(&common::at_root(f), CheckOptions::default());
            assert!(checked.is_ok(), "{f}");
            (f.to_string(), checked.program, false)
        })
        .collect();
    let checked = check_source("bf16.exp", bf16, CheckOptions::default());
    assert!(checked.is_ok(), "{:?}", checked.diagnostics);
    programs.push(("bf16.exp".into(), checked.program, true));
    let mut kinds = std::collections::BTreeSet::new();
    for (file, program, native_only) in &programs {
        for numerics in [Numerics::Portable, Numerics::Native] {
            if *native_only && numerics == Numerics::Portable {
                continue;
            }
            let plan = lower_with(program, numerics).unwrap_or_else(|_| panic!("{file} plans"));
            for node in plan.ordered() {
                let params = node.op.key_params();
                if let Some(n) = node.op.numerics() {
                    assert_eq!(n, numerics, "{file}: {} computes under another profile", node.kind());
                    assert_eq!(
                        params.get("numerics"),
                        Some(&CValue::Str(n.key_name().to_string())),
                        "{file}: {} does not key its profile",
                        node.kind()
                    );
                    kinds.insert(node.kind().to_string());
                }
                if node.op.precision() != Precision::Float32 {
                    assert_eq!(
                        params.get("precision"),
                        Some(&CValue::Str(node.op.precision().name().to_string())),
                        "{file}: {} does not key its precision",
                        node.kind()
                    );
                    kinds.insert(format!("{} in {}", node.kind(), node.op.precision().name()));
                }
            }
        }
    }
    // The plans above hold every kind that computes with libtorch.
    for kind in ["model.sft", "model.pm", "run.train", "samples", "reference_logprobs", "eval.kl", "eval.winrate"] {
        assert!(kinds.contains(kind), "no {kind} among {kinds:?}");
    }
    for kind in ["model.sft", "model.pm", "run.train", "reference_logprobs"] {
        assert!(kinds.contains(&format!("{kind} in bf16")), "no bf16 {kind} among {kinds:?}");
    }
}
