//! No input makes the parser, the checker or the planner panic: arbitrary
//! text, and text assembled from the language's own tokens (which gets much
//! further into the checker than random bytes do).

use proptest::prelude::*;
use tandem::check::{check_source, CheckOptions};

fn run(text: &str) {
    let checked = check_source("fuzz.exp", text, CheckOptions { max_instances: 1000, max_nodes: 100_000 });
    if checked.is_ok() {
        let _ = tandem::plan::lower::lower(&checked.program);
    } else {
        // Rendering must not panic either.
        let _ = tandem::cli::render::render(&checked.diagnostics, false, 80);
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

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
