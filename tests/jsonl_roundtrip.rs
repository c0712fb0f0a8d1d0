//! Real data in and out: a JSONL preference file is imported, a policy is
//! fine-tuned on it and trained online against a PM, and both the imported
//! dataset and the run's data stream are exported back to JSONL.

use std::process::Command;

fn tandem(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("TANDEM_CACHE")
        .output()
        .unwrap()
}

#[test]
fn import_train_export_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read_to_string("tests/data/tiny_prefs.jsonl").unwrap();
    std::fs::write(dir.path().join("prefs.jsonl"), &original).unwrap();
    let exp = dir.path().join("real.exp");
    std::fs::write(
        &exp,
        r#"
dataset prefs = jsonl("prefs.jsonl")
model sft = sft(prefs, layers: 1, width: 16, heads: 2, steps: 10, batch: 8)
model judge = pm(prefs, layers: 1, width: 16, heads: 2, steps: 10, batch: 8)
run online = train(sft, loss: dpo(beta: 0.1), sampler: online(judge: judge), steps: 4, save_every: 2, batch: 4)
"#,
    )
    .unwrap();
    let cache = dir.path().join("cache");
    let c = cache.to_str().unwrap();
    let out =
        tandem(&["--cache", c, "run", exp.to_str().unwrap(), "--results", dir.path().join("r").to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let plan: serde_json::Value =
        serde_json::from_slice(&tandem(&["--cache", c, "plan", "--json", exp.to_str().unwrap()]).stdout).unwrap();
    let key_of = |name: &str| {
        plan["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["names"].as_array().unwrap().iter().any(|x| x == name))
            .unwrap()["key"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // The imported dataset comes back as it went in.
    let back = dir.path().join("back.jsonl");
    let o = tandem(&["--cache", c, "export", &key_of("prefs")[..12], back.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&back).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let orig: Vec<serde_json::Value> = original.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), orig.len());
    for (a, b) in lines.iter().zip(&orig) {
        for f in ["prompt", "chosen", "rejected"] {
            assert_eq!(a[f], b[f], "{f}");
        }
        assert_eq!(a["label_source"], "dataset.jsonl");
    }

    // The online run's stream: every record is text over the same alphabet, with its step and batch index.
    let stream = dir.path().join("stream.jsonl");
    let o = tandem(&["--cache", c, "export", &key_of("online@4")[..12], stream.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let recs: Vec<serde_json::Value> =
        std::fs::read_to_string(&stream).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(recs.len(), 4 * 4);
    let alphabet: std::collections::HashSet<char> = original.chars().collect();
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r["step"], i as i64 / 4);
        assert_eq!(r["batch_index"], i as i64 % 4);
        assert_eq!(r["label_source"], "online stream");
        for f in ["prompt", "chosen", "rejected"] {
            assert!(r[f].as_str().unwrap().chars().all(|ch| alphabet.contains(&ch)));
        }
    }

    // A malformed line is refused with its file and line, and nothing is imported.
    std::fs::write(dir.path().join("prefs.jsonl"), format!("{original}{{\"prompt\": \"x\", \"chosen\": 3}}\n"))
        .unwrap();
    let o = tandem(&["--cache", c, "run", exp.to_str().unwrap(), "--results", dir.path().join("r").to_str().unwrap()]);
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(!o.status.success());
    assert!(text.contains("prefs.jsonl:9"), "{text}");
}
