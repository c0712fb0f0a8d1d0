//! How sweeps compose (docs/language.md, "Sweeps"): axes are joined only when
//! they are the same sweep, a `let` sweep is one axis wherever it is used,
//! selection works with any value the plan prints, and a declaration whose
//! axes leave no member is an error rather than a silent gap in the plan.

mod common;

use tandem_lang::check::{check_source, CheckOptions};

const HEAD: &str = r#"
world w = summarize(seed: 2, vocab: 24, prompt_len: 6, response_len: 8)
dataset d = generate(w, pairs: 400)
model pm = pm(d, layers: 1, width: 32, heads: 2, steps: 20, batch: 32)
"#;

/// Names of the plan's nodes of one declaration (without checkpoints and
/// evaluations), sorted.
fn members(text: &str, decl: &str) -> Vec<String> {
    let plan = common::plan_text(&format!("{HEAD}{text}"));
    let prefix = format!("{decl}[");
    let mut v: Vec<String> = plan
        .names()
        .into_keys()
        .filter(|n| {
            (n.starts_with(&prefix) || n == decl)
                && !n.contains('@')
                && !n.contains("](")
                && !n.ends_with(".reference_logprobs")
        })
        .collect();
    v.sort();
    v
}

fn problems(text: &str) -> Vec<(String, String)> {
    let checked = check_source("test.exp", &format!("{HEAD}{text}"), CheckOptions::default());
    checked.diagnostics.iter().map(|d| (d.code().as_str().to_string(), d.problem.message.clone())).collect()
}

#[test]
fn two_sweeps_that_share_a_parameter_name_are_crossed_not_joined() {
    // The SFT's seeds and the run's training seeds are different axes: 2 × 3 runs.
    let runs = members(
        "model sft = sft(d, layers: 1, width: 32, heads: 2, steps: 20, seed: sweep [0, 1])
         run r = train(sft, loss: ipo(), sampler: online(judge: pm), steps: 10, seed: sweep [0, 1, 2])",
        "r",
    );
    assert_eq!(runs.len(), 6, "{runs:?}");
    assert!(runs.contains(&"r[policy.seed=1, seed=2]".to_string()), "{runs:?}");
}

#[test]
fn a_world_seed_and_a_dataset_seed_with_no_common_value_still_give_every_dataset() {
    let plan = common::plan_text(&format!(
        "{HEAD}world v = summarize(seed: sweep [1, 2], vocab: 24)
         dataset e = generate(v, pairs: 100, seed: sweep [3, 4])"
    ));
    let e: Vec<String> = plan.names().into_keys().filter(|n| n.starts_with("e[")).collect();
    assert_eq!(e.len(), 4, "{e:?}");
    assert!(e.contains(&"e[seed=3, world.seed=2]".to_string()), "{e:?}");
}

#[test]
fn a_let_sweep_used_twice_is_one_axis_and_members_name_both_parameters() {
    // Diagonal: 3 members, each naming both parameters it sets.
    let runs = members(
        "let rates = sweep [1e-4, 3e-4, 1e-3]
         model sft = sft(d, layers: 1, width: 32, heads: 2, steps: 20)
         run r = train(sft, loss: ipo(), sampler: offline(d), steps: 10, lr: rates, warmup: sweep [5, 6])",
        "r",
    );
    assert_eq!(runs.len(), 6, "{runs:?}");
    let diagonal = members(
        "let steps = sweep [10, 20, 30]
         model sft = sft(d, layers: 1, width: 32, heads: 2, steps: 20)
         run r = train(sft, loss: ipo(), sampler: offline(d), steps: steps, warmup: steps)",
        "r",
    );
    assert_eq!(diagonal, ["r[steps=10, warmup=10]", "r[steps=20, warmup=20]", "r[steps=30, warmup=30]"]);
    // The product: write the sweep twice (or name two constants).
    let product = members(
        "model sft = sft(d, layers: 1, width: 32, heads: 2, steps: 20)
         run r = train(sft, loss: ipo(), sampler: offline(d), steps: sweep [10, 20, 30], warmup: sweep [10, 20, 30])",
        "r",
    );
    assert_eq!(product.len(), 9, "{product:?}");
}

#[test]
fn a_let_sweep_used_in_two_declarations_pairs_their_members() {
    let runs = members(
        "let seeds = sweep [0, 1, 2]
         model sft = sft(d, layers: 1, width: 32, heads: 2, steps: 20, seed: seeds)
         run r = train(sft, loss: ipo(), sampler: offline(d), steps: 10, seed: seeds)",
        "r",
    );
    assert_eq!(runs, ["r[seed=0]", "r[seed=1]", "r[seed=2]"]);
}

#[test]
fn a_derivation_pairs_with_its_base_member_by_member() {
    let plan = common::plan_text(&format!(
        "{HEAD}model sft = sft(d, layers: 1, width: 32, heads: 2, steps: 20)
         run online = train(sft, loss: ipo(), sampler: online(judge: pm), steps: 10, seed: sweep [0, 1, 2])
         run offline = online with {{ sampler: offline(d) }}
         eval wr = winrate(policies: [offline], baseline: online, judge: pm, prompts: 8, at: [10])"
    ));
    let names: Vec<String> = plan.names().into_keys().filter(|n| n.starts_with("wr[")).collect();
    let evals: Vec<&String> = names.iter().filter(|n| !n.contains(".samples(")).collect();
    // One per seed, each comparing offline and online of that seed (whose
    // samples are the baseline's node of that seed).
    assert_eq!(evals.len(), 3, "{names:?}");
    assert!(names.contains(&"wr[seed=2](offline[seed=2]@10)".to_string()), "{names:?}");
    assert!(names.contains(&"wr[seed=2].samples(online[seed=2]@10)".to_string()), "{names:?}");
}

#[test]
fn selection_takes_any_value_the_plan_prints_calls_included() {
    let text = "model sft = sft(d, layers: 1, width: 32, heads: 2, steps: 20)
         run y = train(sft, loss: sweep [ipo(beta: 0.1), dpo(beta: 0.5)], sampler: offline(d), steps: 10, lr: sweep [1e-5, 3e-4])
         run pick = y[loss: dpo(beta: 0.5), lr: 0.00001]";
    assert_eq!(members(text, "pick"), ["pick[loss=dpo(beta: 0.5), lr=1e-5]"]);
    // A call's defaults count: `ipo()` is `ipo(beta: 0.1)`.
    let text2 = text.replace("y[loss: dpo(beta: 0.5), lr: 0.00001]", "y[loss: ipo(), lr: 1e-5]");
    assert_eq!(members(&text2, "pick"), ["pick[loss=ipo(beta: 0.1), lr=1e-5]"]);
}

#[test]
fn a_derivation_from_a_selected_member_may_override_its_axes() {
    let text = "model sft = sft(d, layers: 1, width: 32, heads: 2, steps: 20)
         run grid = train(sft, loss: ipo(), sampler: offline(d), steps: 10, lr: sweep [1e-5, 3e-5], seed: sweep [0, 1])
         run fine = grid[lr: 1e-5, seed: 1] with { lr: 3e-4 }
         run kept = grid[lr: 1e-5] with { steps: 20 }";
    // The selection picks the base member; the override replaces its `lr`.
    assert_eq!(members(text, "fine"), ["fine[seed=1]"]);
    assert_eq!(members(text, "kept"), ["kept[lr=1e-5, seed=0]", "kept[lr=1e-5, seed=1]"]);
    let plan = common::plan_text(&format!("{HEAD}{text}"));
    let fine = plan.node(&plan.names()["fine[seed=1]"]).expect("fine is planned");
    assert!(format!("{:?}", fine.op).contains("0.0003"), "{:?}", fine.op);
}

#[test]
fn a_checkpoint_of_a_swept_run_in_a_list_stands_for_every_member() {
    let plan = common::plan_text(&format!(
        "{HEAD}model sft = sft(d, layers: 1, width: 32, heads: 2, steps: 20)
         run r = train(sft, loss: ipo(), sampler: offline(d), steps: 10, save_every: 5, seed: sweep [0, 1])
         eval k = kl(policies: [r@5], prompts: 8)"
    ));
    let evals: Vec<String> = plan.names().into_keys().filter(|n| n.starts_with("k(")).collect();
    assert_eq!(evals, ["k(r[seed=0]@5)", "k(r[seed=1]@5)"]);
}

#[test]
fn selections_that_disagree_on_one_sweep_are_an_error_naming_it() {
    let found = problems(
        "world v = summarize(seed: sweep [1, 2], vocab: 24)
         dataset e = generate(v, pairs: 100)
         model s = sft(e, steps: 20)
         model p = pm(e, steps: 20)
         run r = train(s[seed: 1], loss: ipo(), sampler: online(judge: p[seed: 2]), steps: 10)",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "tandem::no_members");
    assert!(found[0].1.contains("seed = 2") && found[0].1.contains("seed = 1"), "{found:?}");
}

#[test]
fn seeds_in_one_word_is_a_seed_sweep_from_zero_and_shares_seed_zero() {
    let base = "model sft = sft(d, layers: 1, width: 32, heads: 2, steps: 20)
         run online = train(sft, loss: ipo(), sampler: online(judge: pm), steps: 10)";
    // In a call, and in a derivation: the same three members.
    let in_call = members(
        &format!("{base}\n run r = train(sft, loss: ipo(), sampler: online(judge: pm), steps: 10, seeds: 3)"),
        "r",
    );
    assert_eq!(in_call, ["r[seed=0]", "r[seed=1]", "r[seed=2]"]);
    let derived = members(&format!("{base}\n run r = online with {{ seeds: 3 }}"), "r");
    assert_eq!(derived, in_call);
    // Written out, the same keys: seed 0 is the un-replicated run itself.
    let short = common::plan_text(&format!("{HEAD}{base}\n run r = online with {{ seeds: 3 }}"));
    let long = common::plan_text(&format!("{HEAD}{base}\n run r = online with {{ seed: sweep [0, 1, 2] }}"));
    let keys = |p: &tandem_lang::plan::Plan| {
        let mut k: Vec<String> = p.names().into_iter().map(|(n, k)| format!("{n} {k}")).collect();
        k.sort();
        k
    };
    assert_eq!(keys(&short), keys(&long));
    let names = short.names();
    assert_eq!(names["r[seed=0]"], names["online"]);
    // A derivation of the replicated run keeps its seeds, paired member by member.
    let tandem =
        members(&format!("{base}\n run r = online with {{ seeds: 2 }}\n run t = r with {{ sampler: replay(r) }}"), "t");
    assert_eq!(tandem, ["t[seed=0]", "t[seed=1]"]);
}

#[test]
fn seeds_says_what_is_wrong_with_it() {
    let base = "model sft = sft(d, layers: 1, width: 32, heads: 2, steps: 20)
         run online = train(sft, loss: ipo(), sampler: online(judge: pm), steps: 10)\n";
    let codes = |text: &str| problems(&format!("{base}{text}"));
    for bad in ["seeds: 0", "seeds: 2.5", "seeds: 1001", "seeds: \"three\""] {
        let p = codes(&format!("run r = online with {{ {bad} }}"));
        assert!(
            p.iter().any(|(c, m)| c == "tandem::type_mismatch" && m.contains("whole number of replicates")),
            "{bad}: {p:?}"
        );
    }
    let p = codes("run r = train(sft, loss: ipo(), sampler: online(judge: pm), seed: 1, seeds: 3)");
    assert!(p.iter().any(|(c, _)| c == "tandem::duplicate_argument"), "{p:?}");
    let p = codes("run r = online with { seed: 1, seeds: 3 }");
    assert!(p.iter().any(|(c, _)| c == "tandem::duplicate_argument"), "{p:?}");
    // A constructor without a seed has no `seeds` either.
    let p = codes("figure f = tradeoff(x: online, y: online, seeds: 3)");
    assert!(p.iter().any(|(c, _)| c == "tandem::unknown_argument"), "{p:?}");
}
