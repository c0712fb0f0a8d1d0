//! `tandem run --tensorboard DIR` writes event files that TensorBoard's own
//! reader (Python's `tensorboard` package, which `bash bench/setup.sh test` puts
//! into .venv and `make test` runs) loads, with the values tandem recorded:
//! every training step of every model and run, every evaluation.
//!
//! Without the package the test skips with a message, unless
//! TANDEM_REQUIRE_TENSORBOARD is set (CI sets it): then it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::Tandem;

fn python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python")
}

fn has_tensorboard() -> bool {
    let has = Command::new(python())
        .args(["-c", "import tensorboard.backend.event_processing.event_accumulator"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        assert!(
            std::env::var_os("TANDEM_REQUIRE_TENSORBOARD").is_none(),
            "TANDEM_REQUIRE_TENSORBOARD is set, but .venv has no tensorboard: run `bash bench/setup.sh test`"
        );
        eprintln!("SKIPPED: Python's tensorboard is not in .venv (bash bench/setup.sh test installs it)");
    }
    has
}

/// Every scalar under `dir`, as TensorBoard's EventAccumulator reads it:
/// {run folder: {tag: [[step, value], ...]}}.
fn read_with_tensorboard(dir: &Path) -> serde_json::Value {
    let script = r#"
import json, os, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
root = sys.argv[1]
out = {}
for run in sorted(os.listdir(root)):
    acc = EventAccumulator(os.path.join(root, run), size_guidance={"scalars": 0})
    acc.Reload()
    out[run] = {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
print(json.dumps(out))
"#;
    let o = Command::new(python()).args(["-c", script]).arg(dir).output().unwrap();
    assert!(
        o.status.success(),
        "TensorBoard could not read {}:\n{}",
        dir.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn tandem(cache: &Path, args: &[&str]) -> std::process::Output {
    Tandem::new().cache(cache).args(args).run().out
}

/// A column of a CSV file as numbers, by header name.
fn column(csv_text: &str, name: &str) -> Vec<f64> {
    let mut r = csv::Reader::from_reader(csv_text.as_bytes());
    let i = r.headers().unwrap().iter().position(|h| h == name).unwrap();
    r.records().map(|row| row.unwrap()[i].parse().unwrap()).collect()
}

#[test]
fn tensorboard_reads_back_every_training_step_and_evaluation() {
    if !has_tensorboard() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tb.exp");
    std::fs::write(
        &file,
        "world w = summarize(seed: 1, vocab: 24, prompt_len: 6, response_len: 8)\n\
         dataset d = generate(w, pairs: 200)\n\
         model sft = sft(d, layers: 1, width: 16, heads: 2, steps: 6)\n\
         model pm = pm(d, layers: 1, width: 16, heads: 2, steps: 6)\n\
         run online = train(sft, loss: ipo(), sampler: online(judge: pm), steps: 8, save_every: 4, batch: 4, seeds: 2)\n\
         run offline = online with { sampler: offline(d) }\n\
         eval wr = winrate(policies: [online, offline], baseline: online, judge: pm, prompts: 16)\n",
    )
    .unwrap();
    let cache = dir.path().join("cache");
    let tb = dir.path().join("tb");
    let results = dir.path().join("results");
    let o = tandem(
        &cache,
        &["run", file.to_str().unwrap(), "--results", results.to_str().unwrap(), "--tensorboard", tb.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("tensorboard: "), "{}", String::from_utf8_lossy(&o.stdout));
    let runs = read_with_tensorboard(&tb.join("tb"));
    let names: Vec<&String> = runs.as_object().unwrap().keys().collect();
    assert_eq!(
        names,
        ["offline[seed=0]", "offline[seed=1]", "online[seed=0]", "online[seed=1]", "pm", "sft"],
        "one TensorBoard run per model and training run"
    );

    // Each run's loss is its metrics.csv, step for step (as f32: TensorBoard
    // stores simple values in single precision).
    let metrics = |name: &str| {
        let o = tandem(&cache, &["show", file.to_str().unwrap(), name, "--json"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let entry = cache.join("objects").join(m["key"].as_str().unwrap());
        std::fs::read_to_string(entry.join("metrics.csv")).unwrap()
    };
    for name in ["online[seed=1]", "sft", "pm"] {
        let csv_text = metrics(name);
        let want = column(&csv_text, "loss");
        let got = &runs[name]["train/loss"];
        let got: Vec<(i64, f64)> =
            got.as_array().unwrap().iter().map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap())).collect();
        assert_eq!(got.len(), want.len(), "{name}: one loss per step");
        for ((step, v), (i, w)) in got.iter().zip(want.iter().enumerate()) {
            assert_eq!(*step, i as i64 + 1);
            assert_eq!(*v as f32, *w as f32, "{name} step {step}");
        }
        assert_eq!(runs[name]["train/lr"].as_array().unwrap().len(), want.len());
    }
    // Preference losses have their margin and log-probs; SFT does not.
    for tag in ["train/margin", "train/chosen_logprob", "train/rejected_logprob"] {
        assert_eq!(runs["online[seed=0]"][tag].as_array().map(Vec::len), Some(8), "{tag}");
        assert_eq!(runs["offline[seed=0]"][tag].as_array().map(Vec::len), Some(8), "{tag}");
        assert!(runs["sft"].get(tag).is_none(), "{tag}");
    }
    // Online runs record their samples and their judge at every step;
    // offline runs, which draw none, do not.
    for tag in ["train/sample_kl", "train/sample_length", "train/judge_margin", "train/judge_score"] {
        assert_eq!(runs["online[seed=1]"][tag].as_array().map(Vec::len), Some(8), "{tag}");
        assert!(runs["offline[seed=1]"].get(tag).is_none(), "{tag}");
    }
    // A sample is 1 to 8 tokens (response_len 8); the judge's margin for
    // its chosen sample is never negative (ties count 0).
    for p in runs["online[seed=1]"]["train/sample_length"].as_array().unwrap() {
        let v = p[1].as_f64().unwrap();
        assert!((1.0..=8.0).contains(&v), "{v}");
    }
    for p in runs["online[seed=1]"]["train/judge_margin"].as_array().unwrap() {
        let v = p[1].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{v}");
    }

    // The evaluations are on their targets' runs at checkpoint steps, with
    // the interval beside them, and equal evals.csv.
    let evals = std::fs::read_to_string(results.join("tb/evals.csv")).unwrap();
    let mut r = csv::Reader::from_reader(evals.as_bytes());
    let mut seen = 0;
    for row in r.deserialize::<std::collections::HashMap<String, String>>() {
        let row = row.unwrap();
        if row["metric"] != "winrate" {
            continue;
        }
        // The target as the plan prints it: `online[seed=1]@4`.
        let target = row["target"].split('@').next().unwrap();
        let step: i64 = row["step"].parse().unwrap();
        let value: f64 = row["value"].parse().unwrap();
        let series = runs[target]["eval/wr/winrate"].as_array().unwrap();
        let at = series.iter().find(|p| p[0].as_i64() == Some(step)).expect("the checkpoint's step");
        assert_eq!(at[1].as_f64().unwrap() as f32, value as f32, "{target}@{step}");
        assert!(runs[target]["eval/wr/winrate/ci_low"].is_array());
        seen += 1;
    }
    // Two runs × two seeds × checkpoints 4 and 8 (step 0 is shared SFT).
    assert!(seen >= 8, "only {seen} win rates in evals.csv");

    // A second export replaces the first: TensorBoard sees each series once.
    let o = tandem(
        &cache,
        &["run", file.to_str().unwrap(), "--results", results.to_str().unwrap(), "--tensorboard", tb.to_str().unwrap()],
    );
    assert!(o.status.success());
    let again = read_with_tensorboard(&tb.join("tb"));
    assert_eq!(again, runs);
}
