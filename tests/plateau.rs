//! A preference model trained to a validation plateau (`patience:`) stops
//! before its maximum of steps, says where in its summary, and reports an
//! accuracy measured on validation rows the stop did not see.

mod common;

use tandem::exec::Store;

const STUDY: &str = r#"
world w = summarize(seed: 1, vocab: 24, prompt_len: 6, response_len: 8, noise: 0.5)
dataset d = generate(w, pairs: 800, val_fraction: 0.2)
model pm_plateau = pm(d, layers: 1, width: 32, heads: 2, steps: 5000, batch: 32, lr: 3e-3, patience: 3, val_every: 20)
"#;

#[test]
fn a_pm_stops_at_its_validation_plateau() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let plan = common::plan_text(STUDY);
    common::run_portable(&plan, &store, 1);
    let key = common::names(&plan)["pm_plateau"];
    let summary: serde_json::Value = serde_json::from_slice(&store.read(&key, "summary.json").unwrap()).unwrap();
    let p = &summary["plateau"];
    let stopped = p["stopped_at"].as_i64().unwrap();
    // A 1-layer PM on 640 training pairs at lr 3e-3 overfits long before
    // 5,000 steps: the plateau comes first.
    assert!(p["reached"].as_bool().unwrap(), "{summary}");
    assert!(stopped < 5000 && stopped % 20 == 0, "{summary}");
    assert_eq!(stopped, p["best_step"].as_i64().unwrap() + 3 * 20, "{summary}");
    // The accuracy is measured on the validation rows the stop did not see.
    assert_eq!(summary["val_accuracy"]["n"].as_u64().unwrap() + p["selection_rows"].as_u64().unwrap(), 160);
    let validation = String::from_utf8(store.read(&key, "validation.csv").unwrap()).unwrap();
    assert_eq!(validation.lines().count() as i64, 1 + stopped / 20, "{validation}");
}
