//! The micro study: SFT → online IPO → replay of its data stream in exact
//! order → KL and win-rate evaluation, run through the executor on a fresh
//! cache. It asserts the paper's Appendix F claim exactly: offline training
//! on D_online in the online order reproduces the online run — here bit for
//! bit, at every saved step.

mod common;

use std::sync::atomic::AtomicBool;

use tandem::exec::local::{self, Options};
use tandem::exec::summary::Summary;
use tandem::exec::Store;
use tandem::plan::Plan;

const STUDY: &str = r#"
world w = summarize(seed: 1, vocab: 24, prompt_len: 6, response_len: 8)
dataset d_initial = generate(w, pairs: 600)
model golden_pm = pm(d_initial, layers: 2, width: 32, heads: 2, steps: 150, batch: 32, lr: 1e-3)
dataset d_golden = relabel(d_initial, judge: golden_pm)
model sft = sft(d_golden, layers: 1, width: 32, heads: 2, steps: 150, batch: 64, lr: 1e-3)
model proxy_pm = pm(d_golden, layers: 1, width: 32, heads: 2, steps: 150, batch: 32, lr: 1e-3)
run online = train(sft, loss: ipo(beta: 0.1), sampler: online(judge: proxy_pm), lr: 1e-3, steps: 50, save_every: 10, batch: 16)
run exact = online with { sampler: replay(online, shuffle: 0) }
run shuffled = online with { sampler: replay(online, shuffle: 1) }
eval k = kl(policies: [online, exact], prompts: 64)
eval wr = winrate(policies: [online], baseline: sft, judge: golden_pm, prompts: 64)
"#;

/// Every other evaluation and the pairs dataset, on top of the study.
const MORE: &str = r#"
dataset sft_vs_30 = pairs(a: sft, b: online@30, prompts: d_golden, judge: golden_pm, n: 100)
eval acc_golden = classifier(models: [proxy_pm, online, shuffled], data: d_golden, n: 100, at: [0, 50])
eval acc_stream = classifier(models: [proxy_pm, online@50], data: online, judge: golden_pm, n: 32, windows: 5)
eval self_acc = self_classifier(policies: [online], judge: golden_pm, prompts: 64, at: [50])
eval logp = winner_logprob(policies: [online, shuffled], data: sft_vs_30, n: 64, at: [0, 50])
eval kl_all = kl(policies: [online, shuffled], prompts: 32)
eval wr_all = winrate(policies: [online, shuffled], baseline: sft, judge: golden_pm, prompts: 32)
figure trade = tradeoff(x: kl_all, y: wr_all, title: "trade-off")
figure acc_curve = curve(y: [acc_stream])
figure acc_vs_wr = scatter(x: acc_golden, y: wr_all)
figure best_of = best(y: wr_all)
"#;

fn run_all(plan: &Plan, store: &Store) -> Summary {
    common::run_portable(plan, store, 2)
}

/// The model digest of a run's checkpoint (saved whether or not the plan names it).
fn model_digest(store: &Store, plan: &Plan, name: &str) -> String {
    let (run, step) = name.split_once('@').unwrap();
    let key = tandem::plan::op::checkpoint_key(&plan.names()[run], step.parse().unwrap());
    let m = store.manifest(&key).unwrap();
    m.files.iter().find(|f| f.name == "model.safetensors").unwrap().blake3.clone()
}

#[test]
fn replay_in_exact_order_equals_the_online_run_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let plan = common::plan_text(&format!("{STUDY}{MORE}"));
    let summary = run_all(&plan, &store);
    assert!(summary.ran.len() >= 10);
    for step in [10, 20, 30, 40, 50] {
        let online = model_digest(&store, &plan, &format!("online@{step}"));
        let exact = model_digest(&store, &plan, &format!("exact@{step}"));
        assert_eq!(online, exact, "step {step}: replay(shuffle: 0) must equal online");
        let shuffled = model_digest(&store, &plan, &format!("shuffled@{step}"));
        assert_ne!(online, shuffled, "step {step}: a shuffled replay differs");
    }
    // The evaluations ran and carry their uncertainty.
    let rows = tandem::report::results::eval_rows(&plan, &store);
    let kl50: Vec<_> = rows.iter().filter(|r| r.eval.decl == "k" && r.target_label() == "online@50").collect();
    assert_eq!(kl50.len(), 1);
    assert!(kl50[0].result.value > 0.0 && kl50[0].result.stderr > 0.0 && kl50[0].result.n == 64);
    let kl0: Vec<_> = rows.iter().filter(|r| r.eval.decl == "k" && r.target_label() == "online@0").collect();
    assert_eq!(kl0[0].result.value, 0.0, "the starting policy has KL 0 to itself");
    let wr: Vec<_> = rows.iter().filter(|r| r.eval.decl == "wr").collect();
    assert_eq!(wr.len(), 6);
    assert!(wr.iter().all(|r| (0.0..=1.0).contains(&r.result.value)
        && r.result.ci_low <= r.result.value
        && r.result.value <= r.result.ci_high));
    // Classifier accuracies: a PM scores once; the starting policy is exactly ½
    // (its score is 0 on every pair); stream windows carry their data step.
    let acc: Vec<_> = rows.iter().filter(|r| r.eval.decl == "acc_golden").collect();
    assert!(acc.iter().any(|r| r.target_label() == "proxy_pm" && r.result.value > 0.5));
    assert!(acc.iter().filter(|r| r.step == Some(0)).all(|r| r.result.value == 0.5));
    let stream: Vec<_> = rows.iter().filter(|r| r.eval.decl == "acc_stream").collect();
    assert_eq!(stream.iter().filter(|r| r.target_label() == "proxy_pm").count(), 5);
    assert!(stream.iter().all(|r| r.result.data_step.is_some_and(|s| (0..50).contains(&s)) && r.result.n == 32));
    assert_eq!(rows.iter().filter(|r| r.eval.decl == "self_acc").count(), 1);
    let logp: Vec<_> = rows.iter().filter(|r| r.eval.decl == "logp").collect();
    assert_eq!(logp.len(), 4);
    assert!(logp.iter().filter(|r| r.step == Some(0)).all(|r| r.result.value == 0.0));
    // Figures and the report.
    let out = tempfile::tempdir().unwrap();
    let (md, html) = tandem::report::study::write_report(
        out.path(),
        std::path::Path::new("micro.exp"),
        &plan,
        &store,
        &rows,
        &summary,
        &[],
    )
    .unwrap();
    for f in ["trade", "acc_curve", "acc_vs_wr", "best_of", "training-loss", "training-margin"] {
        for ext in ["svg", "png", "csv"] {
            let p = out.path().join(format!("{f}.{ext}"));
            assert!(std::fs::metadata(&p).map(|m| m.len() > 30).unwrap_or(false), "{} missing or empty", p.display());
        }
    }
    let report = std::fs::read_to_string(md).unwrap();
    assert!(
        report.contains("## trade-off") && report.contains("`online`: peak") && report.contains("Pearson r"),
        "{report}"
    );
    // Every run's training curves, per declaration.
    assert!(report.contains("## Training"), "{report}");
    let curves = std::fs::read_to_string(out.path().join("training-margin.csv")).unwrap();
    for run in ["online", "exact", "shuffled"] {
        assert!(curves.lines().any(|l| l.starts_with(&format!("{run},"))), "{run}: {curves}");
    }
    // Fig. 7's lesson: a pooled correlation is said to be pooled.
    assert!(report.contains("pooled over the series"), "{report}");
    // The page carries its figures (data: URIs), so it opens anywhere.
    assert!(std::fs::read_to_string(html).unwrap().contains("<img src=\"data:image/svg+xml;base64,"));
    // Where the time went: every kind that ran, and the kinds add up to the node time.
    let kinds = summary.by_kind();
    assert_eq!(kinds.iter().map(|k| k.nodes).sum::<usize>(), summary.ran.len());
    assert!((kinds.iter().map(|k| k.seconds).sum::<f64>() - summary.node_seconds()).abs() < 1e-9);
    for k in ["run.train", "model.pm", "model.sft", "eval.kl"] {
        assert!(kinds.iter().any(|x| x.kind == k), "{k} missing from {kinds:?}");
        assert!(report.contains(&format!("| `{k}` |")), "the report's time table lacks {k}");
    }
    // A second run computes nothing.
    let again = run_all(&plan, &store);
    assert!(again.ran.is_empty());
    // Every entry verifies.
    for k in store.keys().unwrap() {
        store.verify(&k).unwrap();
    }
}

#[test]
fn same_node_twice_gives_bit_identical_artifacts_and_longer_runs_resume_shorter_ones() {
    let short = STUDY.replace("steps: 50, save_every: 10", "steps: 30, save_every: 10");
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (sa, sb) = (Store::open(a.path()).unwrap(), Store::open(b.path()).unwrap());
    // Cache A: straight to 50 steps. Cache B: 30 steps first, then 50.
    let plan = common::plan_text(STUDY);
    run_all(&plan, &sa);
    let short_plan = common::plan_text(&short);
    run_all(&short_plan, &sb);
    assert!(!sb.contains(&plan.names()["online@50"]));
    let resumed = run_all(&plan, &sb);
    // Only the steps past 30 (and what depends on them) were computed.
    assert!(resumed.ran.iter().any(|r| r.name == "online"));
    for name in ["sft", "golden_pm", "proxy_pm", "d_golden", "online@30", "online@50", "exact@50"] {
        let ka = plan.names()[name];
        // Every artifact but the log (which records times) is bit-identical.
        let files = |s: &Store| -> Vec<_> {
            s.manifest(&ka).unwrap().files.into_iter().filter(|f| f.name != "log.txt").collect()
        };
        assert_eq!(files(&sa), files(&sb), "{name}: artifacts differ between caches");
    }
}

#[test]
fn the_oracle_scores_samples_against_the_behaviour_policies() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let study = format!("{STUDY}\neval truth = oracle(policies: [sft, online], world: w, prompts: 64, at: [50])\n");
    let plan = common::plan_text(&study);
    run_all(&plan, &store);
    let rows = tandem::report::results::eval_rows(&plan, &store);
    let get = |target: &str, metric: &str| {
        rows.iter()
            .find(|r| r.eval.decl == "truth" && r.target_label() == target && r.result.metric.as_str() == metric)
            .unwrap_or_else(|| panic!("{target} {metric}"))
    };
    let (worst, best) = (get("sft", "oracle_reward_worst_behaviour"), get("sft", "oracle_reward_best_behaviour"));
    // The behaviour levels are ordered, as the world is built.
    // A one-sided z-test at 97.5%: the best level beats the worst.
    let z =
        (best.result.value - worst.result.value) / (best.result.stderr.powi(2) + worst.result.stderr.powi(2)).sqrt();
    assert!(
        z > 1.96,
        "best {} ± {} vs worst {} ± {}",
        best.result.value,
        best.result.stderr,
        worst.result.value,
        worst.result.stderr
    );
    for t in ["sft", "online@50"] {
        let r = get(t, "oracle_reward");
        assert!(r.result.value.is_finite() && r.result.n == 64);
        let stops = get(t, "stops_on_its_own");
        assert!((0.0..=1.0).contains(&stops.result.value));
    }
}

#[test]
fn two_profiles_never_share_a_key_and_a_node_is_never_computed_under_another() {
    use tandem::plan::op::Numerics;
    let checked = tandem::check::check_source("p.exp", common::MICRO_STUDY, Default::default());
    let portable = tandem::plan::lower::lower_with(&checked.program, Numerics::Portable).unwrap();
    let native = tandem::plan::lower::lower_with(&checked.program, Numerics::Native).unwrap();
    let (kp, kn) = (common::names(&portable), common::names(&native));
    for (name, key) in &kp {
        let node = portable.node(key).unwrap();
        // Pure-Rust nodes (the world, generated data) are shared; every node
        // libtorch computes, and everything downstream of one, is not.
        let shared = matches!(node.op, tandem::plan::Op::World(_) | tandem::plan::Op::Generate(_));
        assert_eq!(kn[name] == *key, shared, "{name}");
    }
    // This process computes under `portable`: a `native` node is refused.
    tandem::exec::numerics::activate(Numerics::Portable, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let stop = AtomicBool::new(false);
    let progress = tandem::exec::progress::Progress::new(true);
    let opts = Options {
        device: tch::Device::Cpu,
        only: vec!["golden_pm".into()],
        dry_run: false,
        jobs: 1,
        stop: &stop,
        progress: &progress,
        snapshot_every: None,
    };
    let s = local::run(&native, &store, &opts);
    assert_eq!(s.failed.len(), 1, "{:?}", s.failed);
    assert!(s.failed[0].1.contains("keyed under the `native` numerics profile"), "{}", s.failed[0].1);
    // The world and D_initial it needed were computed: they belong to every profile.
    assert_eq!(s.ran.len(), 2, "{:?}", s.ran);
    assert!(tandem::exec::numerics::activate(Numerics::Native, 1).is_err(), "a process keeps one profile");
}

/// Two methods that differ only in their training seeds: an A/A study. Its
/// one claim must come out undecided, whatever the sign of the difference.
const A_A: &str = r#"
world w = summarize(seed: 1, vocab: 24, prompt_len: 6, response_len: 8)
dataset d = generate(w, pairs: 400)
model pm = pm(d, layers: 1, width: 32, heads: 2, steps: 60, batch: 32, lr: 1e-3)
dataset g = relabel(d, judge: pm)
model sft = sft(g, layers: 1, width: 32, heads: 2, steps: 60, batch: 64, lr: 1e-3)
run a = train(sft, loss: ipo(beta: 0.1), sampler: offline(g), lr: 1e-3, steps: 20, save_every: 5, batch: 16, seed: sweep [1, 2, 3])
run b = a with { seed: sweep [4, 5, 6] }
eval k = kl(policies: [a, b], prompts: 64, at: [0, 5, 10, 15, 20])
eval wr = winrate(policies: [a, b], baseline: sft, judge: pm, prompts: 64, at: [0, 5, 10, 15, 20])
figure t = tradeoff(x: k, y: wr, expect: ["a", "b"])
"#;

#[test]
fn an_a_a_study_comes_out_undecided() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let plan = common::plan_text(A_A);
    run_all(&plan, &store);
    let rows = tandem::report::results::eval_rows(&plan, &store);
    let fig_node = plan.ordered().into_iter().find(|n| n.kind() == "figure.tradeoff").unwrap();
    let figs = tandem::report::figures::figures_of(fig_node, &rows);
    let d = tandem::report::verdicts::decide(&figs);
    assert_eq!(d.claims.len(), 1);
    let c = &d.claims[0];
    let said = tandem::report::verdicts::sentence(&figs[0], c);
    // Identical methods: never decided, whether or not their trained KL
    // ranges give a window (at 20 steps they may not).
    assert!(!c.verdict().decided(), "{said}");
    if let Some(a) = c.primary.as_ref() {
        // Three seeds per method: a decidable comparison, over seeds.
        assert_eq!(a.comparison.runs, (3, 3), "{said}");
        assert!(a.comparison.decidable() && a.comparison.units == 64);
        assert!(said.contains("undecided") && said.contains("detects with 80% power"), "{said}");
    } else {
        assert!(said.contains("not comparable"), "{said}");
    }
}
