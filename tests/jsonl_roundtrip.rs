//! Real data in and out: a JSONL preference file is imported, a policy is
//! fine-tuned on it and trained online against a PM, and both the imported
//! dataset and the run's data stream are exported back to JSONL.

mod common;
use common::Tandem;

fn tandem(args: &[&str]) -> std::process::Output {
    Tandem::new().args(args).run().out
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

/// The `plan --json` key of the node named `name`.
fn key_of(c: &str, exp: &std::path::Path, name: &str) -> String {
    let plan: serde_json::Value =
        serde_json::from_slice(&tandem(&["--cache", c, "plan", "--json", exp.to_str().unwrap()]).stdout).unwrap();
    plan["nodes"].as_array().unwrap().iter().find(|n| n["names"].as_array().unwrap().iter().any(|x| x == name)).unwrap()
        ["key"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn parquet_rows_held_out_records_and_stated_widths() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["tiny_prefs.jsonl", "tiny_prefs.parquet", "tiny_prefs_zstd.parquet"] {
        std::fs::copy(format!("tests/data/{f}"), dir.path().join(f)).unwrap();
    }
    let exp = dir.path().join("s.exp");
    std::fs::write(
        &exp,
        r#"
dataset as_jsonl = jsonl("tiny_prefs.jsonl")
dataset as_parquet = parquet("tiny_prefs.parquet")
dataset zstd = parquet("tiny_prefs_zstd.parquet")
dataset held = jsonl("tiny_prefs.jsonl", val_fraction: 0.25)
dataset cut = parquet("tiny_prefs.parquet", max_prompt_len: 6, max_response_len: 4)
dataset wide = jsonl("tiny_prefs.jsonl", max_response_len: 12)
model judge = pm(held, layers: 1, width: 16, heads: 2, steps: 5, batch: 4)
model judge_all = pm(as_jsonl, layers: 1, width: 16, heads: 2, steps: 5, batch: 4)
model sft = sft(wide, layers: 1, width: 16, heads: 2, steps: 5, batch: 4)
"#,
    )
    .unwrap();
    let cache = dir.path().join("cache");
    let c = cache.to_str().unwrap();
    let results = dir.path().join("r");
    let out = tandem(&["--cache", c, "run", exp.to_str().unwrap(), "--results", results.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let export = |name: &str| -> Vec<serde_json::Value> {
        let to = dir.path().join(format!("{name}.jsonl"));
        let o = tandem(&["--cache", c, "export", &key_of(c, &exp, name)[..12], to.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read_to_string(&to).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let text = |rows: &[serde_json::Value]| -> Vec<[String; 3]> {
        rows.iter().map(|r| ["prompt", "chosen", "rejected"].map(|f| r[f].as_str().unwrap().to_string())).collect()
    };
    // A Parquet file's rows are the same records as the JSONL lines (either codec).
    let (j, p) = (export("as_jsonl"), export("as_parquet"));
    assert_eq!(text(&j), text(&p));
    assert_eq!(text(&export("zstd")), text(&p));
    assert_eq!(p[0]["label_source"], "dataset.parquet");
    // Widths: a longer prompt keeps its last 6 tokens (BOS goes with the
    // rest of its start); a longer response its first 3 characters and EOS.
    for (whole, cut) in text(&j).iter().zip(text(&export("cut"))) {
        let last = |s: &str, n: usize| s.chars().skip(s.chars().count().saturating_sub(n)).collect::<String>();
        assert!(whole[0].ends_with(&cut[0]) && cut[0].chars().count() <= 6, "{whole:?} -> {cut:?}");
        assert_eq!(cut[0], last(&whole[0], cut[0].chars().count()));
        for f in 1..3 {
            assert_eq!(cut[f], whole[f].chars().take(3).collect::<String>(), "{whole:?} -> {cut:?}");
        }
    }
    let report = std::fs::read_to_string(results.join("s/report.md")).unwrap();
    let row = |name: &str| report.lines().find(|l| l.starts_with(&format!("| `{name}` |"))).unwrap().to_string();
    // 2 of 8 records held out; the PM is scored on them, and says so.
    assert!(row("held").starts_with("| `held` | 8 | 6 | 2 |"), "{}", row("held"));
    assert!(row("judge").contains("(n = 2, Wilson) | validation |"), "{}", row("judge"));
    assert!(row("judge_all").contains("(n = 8, Wilson) | train |"), "{}", row("judge_all"));
    // Widths as stated, with what they cut counted (tiny_prefs: 5 prompts
    // of more than 6 tokens with BOS, 4 pairs with a response of more than 4
    // with EOS).
    assert_eq!(row("cut"), "| `cut` | 8 | 8 | 0 | 6 | 4 | 5 | 4 |");
    // A policy's sampling length is the data's stated width, not its longest record's.
    assert!(row("wide").contains("| 12 | 0 | 0 |"), "{}", row("wide"));
    let spec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(cache.join("objects").join(key_of(c, &exp, "sft")).join("spec.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(spec["response_len"], 12, "{spec}");
}
