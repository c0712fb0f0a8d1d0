//! No input makes the parser, the checker, the planner or the renderers
//! panic: arbitrary text, text assembled from the language's own tokens
//! (which gets much further into the checker than random bytes do),
//! plausible declarations, and the shipped experiments with random edits.
//!
//! The quick tests here run a few thousand inputs with every `make test`.
//! `make fuzz` runs the long campaign (`fuzz_campaign`, ignored by default):
//! a million inputs over all four generators, on every core.

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use tandem::check::{check_source, CheckOptions};

/// parse → check → plan → render, as `tandem plan` does for a file.
fn run(text: &str) {
    let checked = check_source("fuzz.exp", text, CheckOptions { max_instances: 1000, max_nodes: 20_000 });
    // Rendering must not panic either.
    let _ = tandem::cli::render::render(&checked.warnings, false, 80);
    if !checked.is_ok() {
        let _ = tandem::cli::render::render(&checked.diagnostics, false, 80);
        return;
    }
    let numerics = tandem::plan::op::Numerics::Portable;
    match tandem::plan::lower::lower_bounded(&checked.program, numerics, 20_000) {
        Ok(plan) => {
            let store = tandem::exec::Store::open_existing("tests/no-cache-here");
            let file = Path::new("fuzz.exp");
            let _ = tandem::cli::view::plan_text(&plan, &store, file);
            let _ = tandem::cli::view::plan_json(&plan, &store, file);
            let _ = tandem::cli::view::plan_dot(&plan, &store);
        }
        Err(d) => {
            let _ = tandem::cli::render::render(&d, false, 80);
        }
    }
}

const TOKENS: &[&str] = &[
    "world",
    "dataset",
    "model",
    "run",
    "eval",
    "figure",
    "let",
    "import",
    "with",
    "sweep",
    "true",
    "false",
    "w",
    "d",
    "m",
    "r",
    "e",
    "x",
    "online",
    "offline",
    "=",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "@",
    ".",
    "summarize",
    "generate",
    "relabel",
    "pairs",
    "sft",
    "pm",
    "train",
    "ipo",
    "dpo",
    "slic",
    "bo2",
    "replay",
    "kl",
    "winrate",
    "classifier",
    "tradeoff",
    "curve",
    "policy",
    "loss",
    "sampler",
    "judge",
    "data",
    "source",
    "shuffle",
    "beta",
    "lr",
    "steps",
    "save_every",
    "policies",
    "at",
    "seed",
    "width",
    "heads",
    "0",
    "1",
    "-1",
    "4k",
    "1e-5",
    "2.5",
    "1e999",
    "\"s\"",
    "\"",
    "#c\n",
    "\n",
    " ",
    "loss.beta",
    "@100",
    "[seed: 1]",
];

fn tokens() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(TOKENS), 0..60).prop_map(|t| t.join(" "))
}

/// Valid-looking declarations with random arguments: deep into the checker.
fn decls() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("w".to_string()),
        Just("d".to_string()),
        Just("p".to_string()),
        Just("s".to_string()),
        Just("r".to_string()),
        Just("r@100".to_string()),
        Just("r@7".to_string()),
        Just("ipo(beta: 0.1)".to_string()),
        Just("online(judge: p)".to_string()),
        Just("replay(r, shuffle: 0.5)".to_string()),
        Just("offline(d)".to_string()),
        Just("sweep [1, 2]".to_string()),
        Just("[r, s]".to_string()),
        Just("-3".to_string()),
        Just("1.5".to_string()),
        Just("\"x\"".to_string()),
    ];
    let arg = (
        proptest::sample::select(
            &[
                "policy", "loss", "sampler", "judge", "data", "steps", "lr", "beta", "seed", "policies", "at", "x",
                "y", "a", "b", "prompts",
            ][..],
        ),
        value,
    )
        .prop_map(|(k, v)| format!("{k}: {v}"));
    let ctor = proptest::sample::select(
        &["train", "sft", "pm", "generate", "relabel", "pairs", "kl", "winrate", "tradeoff", "summarize"][..],
    );
    let kind = proptest::sample::select(&["world", "dataset", "model", "run", "eval", "figure"][..]);
    let decl = (
        kind,
        proptest::sample::select(&["w", "d", "p", "s", "r", "e", "f"][..]),
        ctor,
        proptest::collection::vec(arg, 0..5),
    )
        .prop_map(|(k, n, c, args)| format!("{k} {n} = {c}({})", args.join(", ")));
    proptest::collection::vec(decl, 0..8).prop_map(|d| {
        let prelude = "world w = summarize()\ndataset d = generate(w)\nmodel p = pm(d)\nmodel s = sft(d)\nrun r = train(s, loss: ipo(), sampler: online(judge: p), steps: 200)\n";
        format!("{prelude}{}", d.join("\n"))
    })
}

/// Real experiments to mutate: small ones, so a million fit in minutes.
const SEEDS: &[&str] = &[
    include_str!("../experiments/quickstart.exp"),
    include_str!("../experiments/overoptimisation.exp"),
    include_str!("../experiments/paper/setup.exp"),
    include_str!("../experiments/paper/fig13_shuffle.exp"),
    include_str!("../experiments/paper/fig9_bo2.exp"),
    include_str!("corpus/ok/all_kinds.exp"),
    include_str!("corpus/ok/derive_selected.exp"),
    include_str!("corpus/ok/grid.exp"),
    include_str!("corpus/warn/likely_mistakes.exp"),
    include_str!("corpus/err/keeps_checking.exp"),
    include_str!("corpus/err/sweeps.exp"),
];

/// One edit of a text: delete, duplicate or move a stretch, or insert a token.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Duplicate(usize, usize),
    Insert(usize, &'static str),
    Swap(usize, usize, usize),
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut t = text.as_bytes().to_vec();
    for e in edits {
        let n = t.len().max(1);
        match *e {
            Edit::Delete(a, len) => {
                let a = a % n;
                let b = (a + len % 40).min(t.len());
                t.drain(a.min(t.len())..b);
            }
            Edit::Duplicate(a, len) => {
                let a = a % n;
                let b = (a + len % 80).min(t.len());
                let piece = t[a.min(t.len())..b].to_vec();
                let at = b;
                t.splice(at..at, piece);
            }
            Edit::Insert(a, tok) => {
                let a = (a % n).min(t.len());
                t.splice(a..a, tok.bytes());
            }
            Edit::Swap(a, b, len) => {
                let (a, b) = ((a % n).min(t.len()), (b % n).min(t.len()));
                let (lo, hi) = (a.min(b), a.max(b));
                let len = (len % 30).min(hi - lo).min(t.len() - hi);
                let first = t[lo..lo + len].to_vec();
                let second = t[hi..hi + len].to_vec();
                t.splice(hi..hi + len, first);
                t.splice(lo..lo + len, second);
            }
        }
    }
    // Edits cut through multi-byte characters; the parser takes text.
    String::from_utf8_lossy(&t).into_owned()
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<usize>()).prop_map(|(a, l)| Edit::Delete(a, l)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, l)| Edit::Duplicate(a, l)),
        (any::<usize>(), proptest::sample::select(TOKENS)).prop_map(|(a, t)| Edit::Insert(a, t)),
        (any::<usize>(), any::<usize>(), any::<usize>()).prop_map(|(a, b, l)| Edit::Swap(a, b, l)),
    ]
}

/// A shipped experiment with one to six random edits.
fn mutated() -> impl Strategy<Value = String> {
    (proptest::sample::select(SEEDS), proptest::collection::vec(edit(), 1..6))
        .prop_map(|(text, edits)| apply(text, &edits))
}

/// Programs that use the whole language: constants, sweeps, derivations
/// with overrides, selections, checkpoints and figures.
fn programs() -> impl Strategy<Value = String> {
    let number = || proptest::sample::select(&["0", "1", "2", "100", "1e-4", "0.5", "-1", "4k", "1e400", "3.0"][..]);
    let name = || proptest::sample::select(&["w", "d", "s", "p", "r", "o", "t", "k", "g", "c"][..]);
    let param = || {
        proptest::sample::select(
            &["seed", "lr", "steps", "save_every", "loss.beta", "sampler.shuffle", "beta", "prompts", "at", "policy"][..],
        )
    };
    let value = prop_oneof![
        number().prop_map(String::from),
        (number(), number()).prop_map(|(a, b)| format!("sweep [{a}, {b}]")),
        name().prop_map(String::from),
        (name(), param(), number()).prop_map(|(n, a, v)| format!("{n}[{a}: {v}]")),
        (name(), number()).prop_map(|(n, v)| format!("{n}@{v}")),
        (name(), name()).prop_map(|(a, b)| format!("[{a}, {b}]")),
        Just("ipo(beta: sweep [0.1, 0.5])".to_string()),
        Just("dpo()".to_string()),
        Just("online(judge: p)".to_string()),
        Just("replay(o, shuffle: 1)".to_string()),
        Just("offline(d)".to_string()),
        Just("[]".to_string()),
        Just("\"online\"".to_string()),
        Just("[\"online\", \"t\"]".to_string()),
    ];
    let item = prop_oneof![
        (name(), value.clone()).prop_map(|(n, v)| format!("let {n}x = {v}")),
        (name(), name(), proptest::collection::vec((param(), value.clone()), 0..4)).prop_map(|(n, b, o)| {
            let o: Vec<String> = o.into_iter().map(|(p, v)| format!("{p}: {v}")).collect();
            format!("run {n}2 = {b} with {{ {} }}", o.join(", "))
        }),
        (
            proptest::sample::select(
                &[
                    "run x = train(s, loss: ipo(), sampler: offline(d)",
                    "eval x = kl(policies: [o, t]",
                    "eval x = winrate(policies: [o], baseline: s, judge: p",
                    "figure x = tradeoff(x: k, y: e",
                    "figure x = best(y: e",
                    "figure x = curve(y: [k, e]",
                    "dataset x = generate(w",
                    "model x = sft(d",
                ][..],
            ),
            proptest::collection::vec((param(), value), 0..4),
        )
            .prop_map(|(head, args)| {
                let args: Vec<String> =
                    args.into_iter().map(|(p, v)| format!(", {}: {v}", p.replace('.', "_"))).collect();
                format!("{head}{})", args.concat())
            }),
    ];
    proptest::collection::vec(item, 0..8).prop_map(|items| {
        let prelude =
            "world w = summarize(seed: sweep [1, 2])\ndataset d = generate(w)\nmodel p = pm(d)\nmodel s = sft(d)\n\
            run o = train(s, loss: ipo(), sampler: online(judge: p), steps: 100, save_every: 50)\n\
            run t = o with { sampler: replay(o, shuffle: 1) }\n\
            eval k = kl(policies: [o, t])\neval e = winrate(policies: [o, t], baseline: s, judge: p)\n";
        format!("{prelude}{}", items.join("\n"))
    })
}

/// A text's line ends re-encoded, each one LF, CRLF or CR as `choice`
/// picks (cycling), with a byte-order mark in front when `bom`.
fn reencode(text: &str, choice: &[u8], bom: bool) -> String {
    let mut out = String::from(if bom { "\u{feff}" } else { "" });
    let mut i = 0;
    for c in text.chars() {
        if c == '\n' {
            out.push_str(["\n", "\r\n", "\r"][usize::from(choice[i % choice.len()] % 3)]);
            i += 1;
        } else {
            out.push(c);
        }
    }
    out
}

/// A shipped experiment with mixed line ends and maybe a byte-order mark.
fn line_ends() -> impl Strategy<Value = (&'static str, String)> {
    (proptest::sample::select(SEEDS), proptest::collection::vec(any::<u8>(), 1..8), any::<bool>())
        .prop_map(|(text, choice, bom)| (text, reencode(text, &choice, bom)))
}

/// A shipped experiment in which one name is misspelt at great length
/// (did-you-mean over very long names), and maybe re-encoded line ends.
fn long_names() -> impl Strategy<Value = String> {
    (proptest::sample::select(SEEDS), 1_000usize..60_000, any::<u8>()).prop_map(|(text, len, c)| {
        let long = "x".repeat(len);
        let t = text.replacen("sft", &format!("sft{long}"), 1);
        reencode(&t, &[c], c % 2 == 0)
    })
}

/// What `run` compares: a text's diagnostics (rendered) and, when it plans,
/// its keys.
fn outcome(text: &str) -> (Vec<String>, Vec<tandem::plan::Key>) {
    let checked = check_source("fuzz.exp", text, CheckOptions { max_instances: 1000, max_nodes: 20_000 });
    let codes = checked.diagnostics.iter().map(|d| format!("{} {}", d.code().as_str(), d.problem.message)).collect();
    let mut keys = vec![];
    if checked.is_ok() {
        if let Ok(plan) =
            tandem::plan::lower::lower_bounded(&checked.program, tandem::plan::op::Numerics::Portable, 20_000)
        {
            keys = plan.graph.node_weights().map(|n| n.key).collect();
            keys.sort();
        }
    }
    (codes, keys)
}

/// Runs `cases` inputs from `strategy` with a fixed seed; a panic fails
/// with the (shrunk) input.
fn campaign<S: Strategy<Value = String>>(strategy: S, cases: u32, seed: u8) {
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]);
    let mut runner = TestRunner::new_with_rng(config, rng);
    if let Err(e) = runner.run(&strategy, |text| {
        run(&text);
        Ok(())
    }) {
        panic!("{e}");
    }
}

/// `make fuzz`: TANDEM_FUZZ_CASES inputs (default 1,000,000), split over the
/// four generators and over every core, each thread with its own seed.
#[test]
#[ignore = "the long campaign; run it with `make fuzz`"]
fn fuzz_campaign() {
    let total: u64 = std::env::var("TANDEM_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let per = (total / (4 * threads)).max(1) as u32;
    let start = std::time::Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads as u8 {
            scope.spawn(move || {
                campaign("\\PC{0,300}", per, 4 * t);
                campaign(tokens(), per, 4 * t + 1);
                campaign(programs(), per, 4 * t + 2);
                campaign(mutated(), per, 4 * t + 3);
                campaign(line_ends().prop_map(|(_, t)| t), per / 8, 4 * t + 128);
                campaign(long_names(), (per / 1000).max(1), 4 * t + 129);
            });
        }
    });
    let ran = (u64::from(per) * 4 + u64::from(per / 8) + u64::from((per / 1000).max(1))) * threads;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "fuzz campaign: {ran} inputs, 0 panics, {secs:.0} s on {threads} threads ({:.0} inputs/s)",
        ran as f64 / secs
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn whole_language_programs(s in programs()) {
        run(&s);
    }

    #[test]
    fn edited_experiments(s in mutated()) {
        run(&s);
    }

    #[test]
    fn arbitrary_text(s in "\\PC{0,200}") {
        run(&s);
    }

    #[test]
    fn token_soup(s in tokens()) {
        run(&s);
    }

    #[test]
    fn plausible_declarations(s in decls()) {
        run(&s);
    }

    #[test]
    fn line_ends_and_a_byte_order_mark_change_nothing((lf, other) in line_ends()) {
        // Same diagnostics, same keys: a file saved on any system checks
        // and plans as its LF twin.
        run(&other);
        prop_assert_eq!(outcome(&other), outcome(lf));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, .. ProptestConfig::default() })]

    #[test]
    fn very_long_misspelt_names(s in long_names()) {
        run(&s);
    }
}

#[test]
fn pathological_inputs() {
    for text in [
        "",
        "\u{feff}",
        "run r = train(",
        &"[".repeat(10_000),
        &format!("let x = {}1{}", "[".repeat(300), "]".repeat(300)),
        &format!("let x = {}", "sweep [".repeat(50)),
        "let a = b\nlet b = a\nrun r = train(a)",
        "world w = summarize(seed: 99999999999999999999999)",
        "world w = summarize(seed: 1e18)",
        "run r = r@r",
        &((1..5000)
            .map(|i| format!("let a{i} = a{}\n", i - 1))
            .collect::<String>()
            .replace("let a1 = a0", "let a1 = 5")
            + "world w = summarize(seed: a4999)"),
        &format!(
            "world w = summarize()\nlet x = {}1{}\nworld v = summarize(seed: x)",
            "[".repeat(20_000),
            "]".repeat(20_000)
        ),
        &format!("let x = {}", "ipo(beta: ".repeat(5_000)),
        "world w = summarize()\nworld v = w with { seed.x.y: 1 }",
    ] {
        run(text);
    }
}
