//! Pretrained Hugging Face models (src/ml/hf): tandem's own GPT-2 and
//! Llama-family implementations against transformers itself.
//!
//! scripts/tiny_hf_models.py makes tiny random models (GPT-2; Llama with
//! grouped-query attention and an untied head; Qwen2 with q/k/v biases and a
//! tied head) and a byte-level BPE tokenizer, offline, and records what
//! transformers computes: token ids, per-token log-probs, greedy tokens.
//! tandem must give the same ids, log-probs within 1e-4, and the same greedy
//! tokens through its KV cache. Bad directories must be refused in words.
//!
//! Needs transformers in the project's venv (`bash bench/setup.sh test`, which
//! `make test` runs). Without it the tests skip with a message, unless
//! TANDEM_REQUIRE_TRANSFORMERS is set (CI sets it): then they fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use tandem::ml::hf::{content_digest, HfError, Pretrained};
use tch::{Device, Kind, Tensor};

fn python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python")
}

/// The tiny models, made once per test process; None when transformers is
/// absent (and allowed to be).
fn fixtures() -> Option<&'static Path> {
    static DIR: OnceLock<Option<tempfile::TempDir>> = OnceLock::new();
    DIR.get_or_init(|| {
        let has = Command::new(python()).args(["-c", "import transformers"]).output().is_ok_and(|o| o.status.success());
        if !has {
            assert!(
                std::env::var_os("TANDEM_REQUIRE_TRANSFORMERS").is_none(),
                "TANDEM_REQUIRE_TRANSFORMERS is set, but .venv has no transformers: run `bash bench/setup.sh test`"
            );
            eprintln!("SKIPPED: Python's transformers is not in .venv (bash bench/setup.sh test installs it)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(python())
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/tiny_hf_models.py"))
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "tiny_hf_models.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
        Some(dir)
    })
    .as_ref()
    .map(|d| d.path())
}

fn expected(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap()
}

fn ints(v: &serde_json::Value) -> Vec<i64> {
    v.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect()
}

#[test]
fn log_probs_and_greedy_tokens_equal_transformers() {
    let Some(dir) = fixtures() else { return };
    let exp = expected(dir);
    for (name, want) in exp["models"].as_object().unwrap() {
        let model = Pretrained::load(&dir.join(name), Device::Cpu).unwrap_or_else(|e| panic!("{name}: {e}"));
        let texts = want["texts"].as_array().unwrap();
        // All texts in one left-padded batch: padding must change nothing.
        let ids: Vec<Vec<i64>> = texts.iter().map(|t| ints(&t["ids"])).collect();
        let width = ids.iter().map(Vec::len).max().unwrap();
        let mut rows = vec![];
        let mut masks = vec![];
        for (t, want_ids) in texts.iter().zip(&ids) {
            let text = t["text"].as_str().unwrap();
            assert_eq!(&model.tokenizer.encode(text).unwrap(), want_ids, "{name}: token ids of {text:?}");
            let pad = width - want_ids.len();
            rows.extend(std::iter::repeat_n(0, pad).chain(want_ids.iter().copied()));
            masks.extend(std::iter::repeat_n(0, pad).chain(std::iter::repeat_n(1, want_ids.len())));
        }
        let b = ids.len() as i64;
        let batch = Tensor::from_slice(&rows).view([b, width as i64]);
        let mask = Tensor::from_slice(&masks).view([b, width as i64]);
        let lp = tch::no_grad(|| model.token_logprobs(&batch, &mask));
        let mut worst = 0f64;
        for (i, t) in texts.iter().enumerate() {
            let want_lp: Vec<f64> = t["logprobs"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            let n = want_lp.len() as i64;
            let got: Vec<f64> =
                Vec::try_from(lp.get(i as i64).narrow(0, width as i64 - 1 - n, n).to_kind(Kind::Double)).unwrap();
            for (g, w) in got.iter().zip(&want_lp) {
                worst = worst.max((g - w).abs());
            }
        }
        assert!(worst < 1e-4, "{name}: per-token log-probs differ from transformers' by up to {worst:e}");
        let greedy = tch::no_grad(|| model.greedy(&ints(&want["prompt"]), ints(&want["greedy"]).len()));
        assert_eq!(greedy, ints(&want["greedy"]), "{name}: greedy tokens");
        eprintln!("{name}: log-probs within {worst:.1e} of transformers, greedy tokens equal");
    }
}

/// Copies a fixture model directory to change one of its files.
fn copy_model(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// The shipped preference text (prompt, chosen, rejected).
fn real_text() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/real_text.jsonl")
}

/// A project folder (a `.git` marks its root) holding the fixtures' model
/// `family` as `model/`, the shipped text as `prefs.jsonl`, and `study` as
/// `study.exp`.
fn text_project(fixtures: &Path, family: &str, study: &str) -> tempfile::TempDir {
    let project = tempfile::tempdir().unwrap();
    let root = project.path();
    std::fs::create_dir(root.join(".git")).unwrap();
    copy_model(&fixtures.join(family), &root.join("model"));
    std::fs::copy(real_text(), root.join("prefs.jsonl")).unwrap();
    std::fs::write(root.join("study.exp"), study).unwrap();
    project
}

/// The key of the node `name` in `tandem plan --json`'s output.
fn plan_key(plan: &serde_json::Value, name: &str) -> tandem::plan::Key {
    let hex = plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["names"].as_array().unwrap().iter().any(|s| s == name))
        .map(|n| n["key"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("{name} in the plan"));
    tandem::plan::Key::from_hex(&hex).unwrap()
}

#[test]
fn a_bad_directory_is_refused_in_words() {
    let Some(dir) = fixtures() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let fail = |d: &Path| match Pretrained::load(d, Device::Cpu) {
        Ok(_) => panic!("{} loaded", d.display()),
        Err(e) => (e.to_string(), e),
    };

    // Identity is content, not place: a copy has the digest of the original.
    let copy = tmp.path().join("copy");
    copy_model(&dir.join("llama"), &copy);
    assert_eq!(content_digest(&copy).unwrap(), content_digest(&dir.join("llama")).unwrap());

    // A truncated safetensors file.
    let cut = tmp.path().join("cut");
    copy_model(&dir.join("llama"), &cut);
    let bytes = std::fs::read(cut.join("model.safetensors")).unwrap();
    std::fs::write(cut.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let (msg, e) = fail(&cut);
    assert!(matches!(e, HfError::Weights { .. }) && msg.contains("model.safetensors"), "{msg}");
    assert_ne!(content_digest(&cut).unwrap(), content_digest(&copy).unwrap());

    // An architecture tandem does not have.
    let bert = tmp.path().join("bert");
    copy_model(&dir.join("gpt2"), &bert);
    let config = std::fs::read_to_string(bert.join("config.json")).unwrap().replace("\"gpt2\"", "\"bert\"");
    std::fs::write(bert.join("config.json"), config).unwrap();
    let (msg, _) = fail(&bert);
    assert!(msg.contains("`bert` is not supported") && msg.contains("gpt2, llama, qwen2"), "{msg}");

    // A tokenizer from a larger vocabulary than the model's embedding.
    let small = tmp.path().join("small");
    copy_model(&dir.join("qwen2"), &small);
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(small.join("config.json")).unwrap()).unwrap();
    cfg["vocab_size"] = serde_json::json!(100);
    std::fs::write(small.join("config.json"), cfg.to_string()).unwrap();
    let (msg, e) = fail(&small);
    assert!(matches!(e, HfError::VocabMismatch { tokens: 320, vocab: 100, .. }), "{msg}");

    // Weights of another shape than the config says.
    let wide = tmp.path().join("wide");
    copy_model(&dir.join("gpt2"), &wide);
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(wide.join("config.json")).unwrap()).unwrap();
    cfg["n_embd"] = serde_json::json!(64);
    std::fs::write(wide.join("config.json"), cfg.to_string()).unwrap();
    let (msg, e) = fail(&wide);
    assert!(matches!(e, HfError::Shapes { .. }) && msg.contains("the config asks for"), "{msg}");

    // A missing tokenizer.
    let bare = tmp.path().join("bare");
    copy_model(&dir.join("gpt2"), &bare);
    std::fs::remove_file(bare.join("tokenizer.json")).unwrap();
    let (msg, e) = fail(&bare);
    assert!(matches!(e, HfError::Missing(_)) && msg.contains("tokenizer.json"), "{msg}");
}

#[test]
fn the_pretrained_command_describes_a_model_and_scores_text() {
    let Some(dir) = fixtures() else { return };
    let bin = env!("CARGO_BIN_EXE_tandem");
    let out = Command::new(bin)
        .args([
            "pretrained",
            dir.join("qwen2").to_str().unwrap(),
            "--text",
            "Please fix the heating.",
            "--generate",
            "4",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let digest = content_digest(&dir.join("qwen2")).unwrap();
    for want in [
        "model        qwen2 (Llama family)",
        "(1 for keys and values)",
        &format!("digest       {digest}"),
        "log p = ",
        "greedy",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    // The log-prob it prints is the one transformers gives (within rounding).
    let exp = expected(dir);
    let t = &exp["models"]["qwen2"]["texts"][2];
    let want: f64 = t["logprobs"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).sum();
    let printed: f64 = text
        .split("log p = ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no log p in:\n{text}"));
    assert!((printed - want).abs() < 1e-3, "printed log p {printed}, transformers {want}");

    let out = Command::new(bin).args(["pretrained", dir.join("no_such_model").to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("tandem::pretrained::missing") && err.contains("config.json"),
        "{err}"
    );
}

/// What transformers computes for the texts of expected.json with the model
/// in `dir`: per text, the token ids its tokenizer.json gives and the
/// per-token log-probs.
fn transformers_logprobs(dir: &Path, texts: &[&str]) -> serde_json::Value {
    let script = r#"
import json, sys, torch, transformers
from tokenizers import Tokenizer
d = sys.argv[1]
model = transformers.AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager").eval()
tok = Tokenizer.from_file(d + "/tokenizer.json")
out = []
with torch.no_grad():
    for t in json.loads(sys.argv[2]):
        ids = tok.encode(t).ids
        x = torch.tensor([ids])
        lp = model(x).logits[0, :-1].float().log_softmax(-1).gather(1, x[0, 1:].unsqueeze(1)).squeeze(1)
        out.append({"ids": ids, "logprobs": lp.tolist()})
print(json.dumps(out))
"#;
    let out = Command::new(python())
        .args(["-c", script, dir.to_str().unwrap(), &serde_json::to_string(texts).unwrap()])
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "transformers could not load {}:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_saved_model_is_a_directory_transformers_loads_as_is() {
    let Some(dir) = fixtures() else { return };
    let exp = expected(dir);
    let tmp = tempfile::tempdir().unwrap();
    for (name, want) in exp["models"].as_object().unwrap() {
        let model = Pretrained::load(&dir.join(name), Device::Cpu).unwrap();
        let out = tmp.path().join(name);
        model.save(&out).unwrap_or_else(|e| panic!("{name}: {e}"));
        // Never over another model.
        assert!(matches!(model.save(&out), Err(HfError::Exists(_))));
        let texts: Vec<&str> = want["texts"].as_array().unwrap().iter().map(|t| t["text"].as_str().unwrap()).collect();
        let got = transformers_logprobs(&out, &texts);
        for (g, w) in got.as_array().unwrap().iter().zip(want["texts"].as_array().unwrap()) {
            assert_eq!(g["ids"], w["ids"], "{name}: the saved tokenizer gives other ids");
            for (a, b) in g["logprobs"].as_array().unwrap().iter().zip(w["logprobs"].as_array().unwrap()) {
                let d = (a.as_f64().unwrap() - b.as_f64().unwrap()).abs();
                assert!(d < 1e-5, "{name}: saved and reloaded, a log-prob moved by {d:e}");
            }
        }
        // And tandem reads back what it wrote.
        let again = Pretrained::load(&out, Device::Cpu).unwrap();
        assert_eq!(again.config, model.config);
    }
}

#[test]
fn a_text_past_gpt2s_positions_is_refused_not_a_crash() {
    let Some(dir) = fixtures() else { return };
    // The fixture's GPT-2 has 64 positions.
    let long = "Please fix the heating. ".repeat(20);
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["pretrained", dir.join("gpt2").to_str().unwrap(), "--text", &long])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("tandem::pretrained::too_long"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // Rotary positions have no table: the same text is scored by Llama.
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["pretrained", dir.join("llama").to_str().unwrap(), "--text", &long, "--generate", "3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn sampling_through_the_cache_draws_from_the_model_in_padded_batches() {
    let Some(dir) = fixtures() else { return };
    let exp = expected(dir);
    for name in ["gpt2", "llama"] {
        let model = Pretrained::load(&dir.join(name), Device::Cpu).unwrap();
        let prompts: Vec<Vec<i64>> =
            exp["models"][name]["texts"].as_array().unwrap().iter().map(|t| ints(&t["ids"])).collect();
        // Near temperature 0 every row of a left-padded batch is its greedy
        // continuation: padding, positions and the cache line up per row.
        let mut rng = tandem::ml::rng::stream(3, "test/sample", 0);
        let cold = tch::no_grad(|| model.sample(&prompts, 6, 1e-6, &mut rng));
        for (p, s) in prompts.iter().zip(&cold) {
            let greedy = tch::no_grad(|| model.greedy(p, 6));
            let stop = greedy.iter().position(|t| Some(*t) == model.config.eos).map_or(6, |i| i + 1);
            assert_eq!(s, &greedy[..stop], "{name}: a cold sample is not the greedy continuation");
        }
        // At temperature 1 the first token's frequencies over 4,000 draws
        // match the model's probabilities (within 4 standard errors for the
        // five likeliest tokens).
        let n = 4000;
        let one = vec![prompts[0].clone(); n];
        let mut rng = tandem::ml::rng::stream(4, "test/sample", 0);
        let drawn = tch::no_grad(|| model.sample(&one, 1, 1.0, &mut rng));
        let ids = Tensor::from_slice(&prompts[0]).unsqueeze(0);
        let probs: Vec<f64> = Vec::try_from(tch::no_grad(|| {
            model.logits(&ids, &ids.ones_like()).get(0).get(-1).softmax(-1, Kind::Double)
        }))
        .unwrap();
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|a, b| probs[*b].total_cmp(&probs[*a]));
        for &t in &order[..5] {
            let freq = drawn.iter().filter(|d| d[0] == t as i64).count() as f64 / n as f64;
            let se = (probs[t] * (1.0 - probs[t]) / n as f64).sqrt();
            assert!(
                (freq - probs[t]).abs() < 4.0 * se,
                "{name}: token {t} drawn {freq:.4}, probability {:.4}",
                probs[t]
            );
        }
    }
}

/// A study on real text, as a user would run it: a pretrained model, a
/// JSONL file read by its tokenizer, SFT from the model and a few offline
/// IPO steps from the SFT policy, through the `tandem` binary. The run's
/// last checkpoint, exported with `tandem export`, must load in
/// transformers, and transformers' log-probs of each response (after its
/// prompt) must equal the ones tandem's policy gives it, within 1e-4:
/// the one-up storage of ids, masks and padding included.
#[test]
fn a_text_study_trains_a_pretrained_model_whose_export_transformers_reads_alike() {
    let Some(dir) = fixtures() else { return };
    let bin = env!("CARGO_BIN_EXE_tandem");
    let data = real_text();
    for family in ["gpt2", "llama"] {
        let project = text_project(
            dir,
            family,
            "model base = pretrained(\"model\")\n\
             dataset prefs = jsonl(\"prefs.jsonl\", tokenizer_of: base)\n\
             model sft = sft(prefs, base: base, steps: 20, batch: 8, lr: 1e-3)\n\
             run ipo_run = train(sft, loss: ipo(beta: 0.1), sampler: offline(prefs), lr: 1e-3, batch: 8, steps: 10, save_every: 10)\n\
             model judge = pm(prefs, base: sft, steps: 5, batch: 8, lr: 1e-3)\n\
             run online_run = train(sft, loss: ipo(beta: 0.1), sampler: online(judge: judge), batch: 4, steps: 4, save_every: 4)\n\
             run replayed = online_run with { sampler: replay(online_run, shuffle: 0) }\n\
             eval against_sft = winrate(policies: [online_run], baseline: sft, judge: judge, prompts: 8, at: [4])\n",
        );
        let root = project.path();
        let cache = root.join("cache");
        let run = Command::new(bin)
            .args(["run", "study.exp", "--cache", cache.to_str().unwrap(), "--results", "results"])
            .current_dir(root)
            .output()
            .unwrap();
        assert!(run.status.success(), "{family}: {}", String::from_utf8_lossy(&run.stderr));

        // The last checkpoint's key, from the plan.
        let plan = Command::new(bin).args(["plan", "study.exp", "--json"]).current_dir(root).output().unwrap();
        let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
        let key_of = |name: &str| plan_key(&plan, name);
        let key = key_of("ipo_run@10").hex();

        // Online training with a pretrained policy and a judge from its SFT
        // trunk: replaying its data stream in order gives its bytes.
        let store = tandem::exec::store::Store::open_existing(&cache);
        let bytes = |name: &str| {
            let k = key_of(name);
            std::fs::read(store.verified_path(&k, "model.safetensors").unwrap()).unwrap()
        };
        assert!(bytes("online_run@4") == bytes("replayed@4"), "{family}: the exact replay differs from the online run");
        assert!(bytes("online_run@4") != bytes("sft"), "{family}: online training changed nothing");
        let evals = std::fs::read_to_string(root.join("results/study/evals.csv")).unwrap();
        assert!(evals.lines().any(|l| l.starts_with("against_sft,online_run@4,4,winrate,")), "{evals}");
        let out = root.join("exported");
        let export = Command::new(bin)
            .args(["export", &key, out.to_str().unwrap(), "--cache", cache.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));

        // tandem's policy, from the exported directory, on the study's own pairs.
        let model = Pretrained::load(&out, Device::Cpu).unwrap();
        let base = Pretrained::load(&dir.join(family), Device::Cpu).unwrap();
        let eos = model.config.eos.unwrap();
        let text = std::fs::read_to_string(&data).unwrap();
        let records: Vec<(String, String)> = text
            .lines()
            .take(6)
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (v["prompt"].as_str().unwrap().to_string(), v["chosen"].as_str().unwrap().to_string())
            })
            .collect();
        let (mut prompts, mut responses) = (vec![], vec![]);
        for (p, r) in &records {
            prompts.push(model.tokenizer.encode_with_template(p).unwrap().iter().map(|i| i + 1).collect::<Vec<_>>());
            let mut ids = model.tokenizer.encode(r).unwrap();
            ids.push(eos);
            responses.push(ids.iter().map(|i| i + 1).collect::<Vec<_>>());
        }
        let lp = prompts.iter().map(Vec::len).max().unwrap();
        let lr = responses.iter().map(Vec::len).max().unwrap();
        let (pt, rt) = (tandem::ml::tokens::left_pad(&prompts, lp), tandem::ml::tokens::right_pad(&responses, lr));
        let per_token = |m: Pretrained| -> Vec<Vec<f64>> {
            let policy = tandem::ml::policy::Policy::from_pretrained(m, lp as i64, lr as i64).unwrap();
            let (lps, _) = tch::no_grad(|| policy.token_logprobs(&pt, &rt));
            (0..records.len())
                .map(|i| {
                    let row = Vec::<f64>::try_from(lps.get(i as i64).to_kind(Kind::Double)).unwrap();
                    row[..responses[i].len()].to_vec()
                })
                .collect()
        };
        let ours = per_token(model);
        let before = per_token(base);

        // transformers, from the same directory.
        let script = format!(
            r#"
import json, sys, torch, transformers
m = transformers.AutoModelForCausalLM.from_pretrained({out:?}, attn_implementation="eager").eval()
t = transformers.AutoTokenizer.from_pretrained({out:?})
out = []
for p, r in json.loads(sys.stdin.read()):
    x = t(p)["input_ids"]
    y = t(r, add_special_tokens=False)["input_ids"] + [{eos}]
    ids = torch.tensor([x + y])
    with torch.no_grad():
        lp = m(ids).logits[0].float().log_softmax(-1)
    out.append([lp[len(x) - 1 + j, y[j]].item() for j in range(len(y))])
print(json.dumps(out))
"#,
            out = out.to_str().unwrap(),
        );
        let mut py = Command::new(python())
            .args(["-c", &script])
            .env("HF_HUB_OFFLINE", "1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        py.stdin.take().unwrap().write_all(serde_json::to_string(&records).unwrap().as_bytes()).unwrap();
        let res = py.wait_with_output().unwrap();
        assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
        let theirs: Vec<Vec<f64>> = serde_json::from_slice(&res.stdout).unwrap();

        let mut moved = 0.0f64;
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(a.len(), b.len(), "{family} record {i}: token counts");
            for (j, (x, y)) in a.iter().zip(b).enumerate() {
                assert!((x - y).abs() < 1e-4, "{family} record {i} token {j}: tandem {x}, transformers {y}");
            }
            moved = moved.max(a.iter().zip(&before[i]).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max));
        }
        // Training changed the model: the export is not the base written back.
        assert!(moved > 1e-2, "{family}: the exported policy's log-probs are the base model's ({moved})");
    }
}

/// A directory tandem cannot use stops the study when it is planned, with
/// a diagnostic, and nothing is cached.
#[test]
fn a_bad_model_directory_stops_the_plan_and_caches_nothing() {
    let Some(dir) = fixtures() else { return };
    let bin = env!("CARGO_BIN_EXE_tandem");
    let project = tempfile::tempdir().unwrap();
    let root = project.path();
    std::fs::create_dir(root.join(".git")).unwrap();
    std::fs::copy(real_text(), root.join("p.jsonl")).unwrap();
    type Spoil = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Spoil, &str)> = vec![
        (
            "cut",
            Box::new(|m: &Path| {
                let bytes = std::fs::read(m.join("model.safetensors")).unwrap();
                std::fs::write(m.join("model.safetensors"), &bytes[..bytes.len() - 100]).unwrap();
            }),
            "is not a readable safetensors file",
        ),
        (
            "bert",
            Box::new(|m: &Path| {
                let c = std::fs::read_to_string(m.join("config.json")).unwrap().replace("\"gpt2\"", "\"bert\"");
                std::fs::write(m.join("config.json"), c).unwrap();
            }),
            "`bert` is not supported",
        ),
        (
            "small",
            Box::new(|m: &Path| {
                let mut c: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(m.join("config.json")).unwrap()).unwrap();
                c["vocab_size"] = serde_json::json!(100);
                std::fs::write(m.join("config.json"), c.to_string()).unwrap();
            }),
            "knows 320 tokens",
        ),
    ];
    for (name, spoil, want) in cases {
        let model = root.join(name);
        copy_model(&dir.join("gpt2"), &model);
        spoil(&model);
        let exp = format!("{name}.exp");
        std::fs::write(
            root.join(&exp),
            format!(
                "model base = pretrained(\"{name}\")\n\
                 dataset prefs = jsonl(\"p.jsonl\", tokenizer_of: base)\n\
                 model sft = sft(prefs, base: base, steps: 2, batch: 4)\n"
            ),
        )
        .unwrap();
        let cache = root.join(format!("cache-{name}"));
        let run = Command::new(bin)
            .args(["run", &exp, "--cache", cache.to_str().unwrap()])
            .current_dir(root)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{name}: ran");
        assert!(err.contains("tandem::pretrained") && err.contains(want), "{name}: {err}");
        let entries = std::fs::read_dir(cache.join("objects")).map(|d| d.count()).unwrap_or(0);
        assert_eq!(entries, 0, "{name}: something was cached");
    }
}

/// A preference model on a pretrained trunk (GPT-2; Llama with grouped-query
/// attention) scores a response continuing the prompt's kept pass as a
/// pass over the whole `[x y]` does, within float rounding; the kept pass
/// round-trips through its named tensors bit for bit, and one of another
/// shape is refused.
#[test]
fn a_preference_model_on_a_pretrained_trunk_scores_through_its_kept_prefix_as_whole() {
    let Some(dir) = fixtures() else { return };
    use tandem::ml::preference::PreferenceModel;
    for family in ["gpt2", "llama"] {
        let model = Pretrained::load(&dir.join(family), Device::Cpu).unwrap();
        let pm = PreferenceModel::from_pretrained(model, 6, 5, 7, tandem::ml::preference::PmHead::Pooled).unwrap();
        // Stored ids (one up), prompts left-padded, responses right-padded, one empty but for its end.
        let prompts = Tensor::from_slice(&[0i64, 0, 12, 40, 7, 9, 5, 6, 7, 8, 9, 10, 0, 0, 0, 0, 0, 300]).view([3, 6]);
        let y = Tensor::from_slice(&[20i64, 21, 22, 1, 0, 33, 1, 0, 0, 0, 1, 0, 0, 0, 0]).view([3, 5]);
        let whole = tch::no_grad(|| pm.pooled_score_whole(&prompts, &y).unwrap());
        let prefix = tch::no_grad(|| pm.prefix(&prompts));
        let shared = pm.pooled_scores_after(&prefix, &y).unwrap();
        let diff = (&whole - &shared).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "{family}: shared {shared} vs whole {whole}");
        let named: std::collections::HashMap<String, Tensor> = prefix.to_named().into_iter().collect();
        let kept = pm.prefix_from_named(&prompts, |n| named.get(n).map(|t| t.shallow_clone())).unwrap();
        let again = pm.pooled_scores_after(&kept, &y).unwrap();
        assert!(again.equal(&shared), "{family}: the kept prefix scores otherwise");
        let wider = Tensor::cat(&[&prompts, &prompts.narrow(1, 0, 1)], 1);
        assert!(pm.prefix_from_named(&wider, |n| named.get(n).map(|t| t.shallow_clone())).is_none());
    }
}

/// scripts/device_check.py is what a GPU machine runs (it has no Rust
/// toolchain to run this file there). Run here on the CPU, it must pass, so
/// that it is known to work before a GPU is at hand: under `native` (the
/// profile whose flags are the `cuda` profile's but for the device), in
/// float32 and bf16.
#[test]
fn the_device_check_script_passes_on_the_cpu() {
    let Some(_) = fixtures() else { return };
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(python())
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/device_check.py"))
        .args(["--tandem", env!("CARGO_BIN_EXE_tandem"), "--numerics", "native", "--precisions", "float32,bf16"])
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{text}{}", String::from_utf8_lossy(&run.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("device_check.json")).unwrap()).unwrap();
    let checks = report["checks"].as_array().unwrap();
    // env, the tiny models, 3 × (log p, greedy), 2 families × 2 precisions ×
    // (study, float32 weights, again, replay, export), and tandem's own
    // models in 2 precisions × (study, float32 weights, again, replay).
    assert_eq!(checks.len(), 1 + 1 + 6 + 20 + 8, "{text}");
    assert!(checks.iter().all(|c| c["ok"] == true), "{text}");
}

/// `precision: "bf16"`: refused under `portable` before anything is
/// computed; under `native`, mixed precision that keeps every saved model in
/// float32, has keys of its own, computes other weights than float32 does,
/// and trains about as well.
#[test]
fn bf16_training_is_refused_under_portable_and_keeps_float32_weights_under_native() {
    let Some(dir) = fixtures() else { return };
    let bin = env!("CARGO_BIN_EXE_tandem");
    let project = text_project(
        dir,
        "llama",
        "model base = pretrained(\"model\")\n\
         dataset prefs = jsonl(\"prefs.jsonl\", tokenizer_of: base)\n\
         model sft32 = sft(prefs, base: base, steps: 30, batch: 8, lr: 1e-3)\n\
         model sft16 = sft(prefs, base: base, steps: 30, batch: 8, lr: 1e-3, precision: \"bf16\")\n\
         model judge = pm(prefs, base: sft16, steps: 5, batch: 8, lr: 1e-3, precision: \"bf16\")\n\
         run online_run = train(sft16, loss: ipo(beta: 0.1), sampler: online(judge: judge), batch: 4, steps: 4, save_every: 4, precision: \"bf16\")\n",
    );
    let root = project.path();
    let cache = root.join("cache");
    let tandem = |args: &[&str]| Command::new(bin).args(args).current_dir(root).output().unwrap();
    let run = |numerics: &str| {
        tandem(&[
            "run",
            "study.exp",
            "--cache",
            cache.to_str().unwrap(),
            "--results",
            "results",
            "--numerics",
            numerics,
        ])
    };

    let refused = run("portable");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("tandem::precision"), "{stderr}");
    let objects = cache.join("objects");
    assert!(
        !objects.exists() || std::fs::read_dir(&objects).unwrap().next().is_none(),
        "a refused study cached something"
    );

    let done = run("native");
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let plan = tandem(&["plan", "study.exp", "--json", "--numerics", "native"]);
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let key_of = |name: &str| plan_key(&plan, name);
    assert_ne!(key_of("sft16"), key_of("sft32"), "bf16 must not share float32's key");
    let store = tandem::exec::store::Store::open_existing(&cache);

    // Every saved model is float32: the master weights, never a bf16 copy.
    for name in ["sft16", "judge", "online_run@4"] {
        let path = store.verified_path(&key_of(name), "model.safetensors").unwrap();
        for (tensor, t) in Tensor::read_safetensors(&path).unwrap() {
            assert_eq!(t.kind(), Kind::Float, "{name}: {tensor} is saved as {:?}", t.kind());
        }
    }
    let weights = |name: &str| std::fs::read(store.verified_path(&key_of(name), "model.safetensors").unwrap()).unwrap();
    assert!(weights("sft16") != weights("sft32"), "bf16 training computed float32's bytes: autocast never engaged");
    let log = std::fs::read_to_string(store.verified_path(&key_of("sft16"), "log.txt").unwrap()).unwrap();
    assert!(log.contains("precision bf16"), "{log}");

    // And it trains: its last steps' loss is float32's within 2% (measured
    // here: 0.01%), where 30 steps take float32 from 6.3 to 4.1.
    let last_loss = |name: &str| {
        let text = String::from_utf8(store.read(&key_of(name), "metrics.csv").unwrap()).unwrap();
        let losses: Vec<f64> = text.lines().skip(1).map(|l| l.split(',').nth(1).unwrap().parse().unwrap()).collect();
        let tail = &losses[losses.len() - 5..];
        (losses[0], tail.iter().sum::<f64>() / tail.len() as f64)
    };
    let ((first32, end32), (first16, end16)) = (last_loss("sft32"), last_loss("sft16"));
    assert!(end32 < 0.9 * first32, "float32 SFT did not learn: {first32} → {end32}");
    assert!(
        (end16 - end32).abs() < 0.02 * end32,
        "bf16 SFT ends at loss {end16}, float32 at {end32} (from {first16}, {first32})"
    );
}

/// A reward model as transformers ships one (`GPT2ForSequenceClassification`,
/// `LlamaForSequenceClassification`, one label) scores text as transformers
/// does, within 1e-4: through `tandem pretrained`, and as a judge does, on
/// prompts and responses padded as training pads them, through the kept
/// prompt pass and through a whole pass. A response ends with EOS, which is
/// also these models' pad token: transformers then scores the token before
/// it, and so must tandem.
#[test]
fn a_hugging_face_reward_model_scores_as_transformers_does() {
    let Some(dir) = fixtures() else { return };
    use tandem::ml::preference::{PmHead, PreferenceModel};
    let expected = expected(dir);
    for rm in ["gpt2-rm", "llama-rm", "qwen2-rm"] {
        let path = dir.join(rm);
        let texts = expected["reward_models"][rm]["texts"].as_array().unwrap();
        // Through the binary.
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandem"));
        cmd.arg("pretrained").arg(&path);
        for t in texts {
            cmd.args(["--text", t["text"].as_str().unwrap()]);
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("a reward model"), "{rm}: {text}");
        let printed: Vec<f64> =
            text.lines().filter_map(|l| l.split("score = ").nth(1)).map(|s| s.trim().parse().unwrap()).collect();
        assert_eq!(printed.len(), texts.len(), "{text}");
        for (p, t) in printed.iter().zip(texts) {
            let want = t["score"].as_f64().unwrap();
            assert!((p - want).abs() < 1e-4, "{rm}: printed {p}, transformers {want}");
        }
        // As a judge: prompt = the first 3 tokens, response = the rest and EOS.
        let model = Pretrained::load(&path, Device::Cpu).unwrap();
        let eos = model.config.eos.unwrap();
        let (lp, lr) = (5i64, 24i64);
        let pm = PreferenceModel::from_pretrained(model, lp, lr, 0, PmHead::Last).unwrap();
        let (mut prompts, mut responses) = (vec![], vec![]);
        for t in texts {
            let ids = ints(&t["ids"]);
            let (p, r) = ids.split_at(3);
            // Stored ids are one up; prompts left-padded, responses right-padded (0).
            prompts.extend(std::iter::repeat_n(0, lp as usize - p.len()).chain(p.iter().map(|i| i + 1)));
            let r: Vec<i64> = r.iter().map(|i| i + 1).chain([eos + 1]).collect();
            assert!(r.len() <= lr as usize);
            responses.extend(r.iter().copied().chain(std::iter::repeat_n(0, lr as usize - r.len())));
        }
        let b = texts.len() as i64;
        let prompts = Tensor::from_slice(&prompts).view([b, lp]);
        let y = Tensor::from_slice(&responses).view([b, lr]);
        let shared = pm.pooled_score(&prompts, &y).unwrap();
        let whole = tch::no_grad(|| pm.pooled_score_whole(&prompts, &y).unwrap());
        for (i, t) in texts.iter().enumerate() {
            let want = t["score"].as_f64().unwrap();
            for (how, got) in [
                ("kept prompt pass", shared.double_value(&[i as i64])),
                ("whole pass", whole.double_value(&[i as i64])),
            ] {
                assert!((got - want).abs() < 1e-4, "{rm} ({how}): {got}, transformers {want}");
            }
        }
    }
}

/// The reward models judge an online run and a win rate in a study, for a
/// policy of each family that reads the same tokens (the same tokenizer).
#[test]
fn a_hugging_face_reward_model_judges_an_online_run_and_a_win_rate() {
    let Some(dir) = fixtures() else { return };
    let bin = env!("CARGO_BIN_EXE_tandem");
    for (family, rm) in [("gpt2", "gpt2-rm"), ("llama", "llama-rm"), ("qwen2", "qwen2-rm")] {
        let project = text_project(
            dir,
            family,
            "model base = pretrained(\"model\")\n\
             model rm_dir = pretrained(\"rm\")\n\
             dataset prefs = jsonl(\"prefs.jsonl\", tokenizer_of: base)\n\
             model sft = sft(prefs, base: base, steps: 5, batch: 8, lr: 1e-3)\n\
             model rm = pm(prefs, base: rm_dir, head: \"last\", steps: 0)\n\
             model trained_rm = pm(prefs, base: sft, head: \"last\", steps: 5, batch: 8, lr: 1e-3)\n\
             model pooled = pm(prefs, base: sft, steps: 2, batch: 8)\n\
             run online = train(sft, loss: ipo(beta: 0.1), sampler: online(judge: rm), batch: 4, steps: 4, save_every: 4)\n\
             eval wr = winrate(policies: [online], baseline: sft, judge: rm, prompts: 8, at: [4])\n\
             eval wr2 = winrate(policies: [online], baseline: sft, judge: trained_rm, prompts: 8, at: [4])\n\
             dataset heldout = jsonl(\"heldout.jsonl\", tokenizer_of: base)\n\
             eval acc = classifier(models: [rm, sft], data: heldout, n: 3)\n",
        );
        let root = project.path();
        copy_model(&dir.join(rm), &root.join("rm"));
        // A held-out file of shorter records than the training file's
        // longest: padded to other widths, it evaluates at the models'.
        std::fs::write(
            root.join("heldout.jsonl"),
            "{\"prompt\": \"Quick?\", \"chosen\": \"Yes.\", \"rejected\": \"No.\"}\n\
             {\"prompt\": \"Fix it?\", \"chosen\": \"The heating failed.\", \"rejected\": \"Dogs.\"}\n\
             {\"prompt\": \"Who?\", \"chosen\": \"Human comparisons.\", \"rejected\": \"Nobody.\"}\n",
        )
        .unwrap();
        let run = Command::new(bin)
            .args(["run", "study.exp", "--cache", "cache", "--results", "results"])
            .current_dir(root)
            .output()
            .unwrap();
        assert!(run.status.success(), "{family}: {}", String::from_utf8_lossy(&run.stderr));
        let evals = std::fs::read_to_string(root.join("results/study/evals.csv")).unwrap();
        assert!(evals.lines().any(|l| l.starts_with("wr,online@4,4,winrate,")), "{family}: {evals}");
        // The reward model's last-token head scores one response at a time:
        // its scores of the baseline's samples are kept with them, with its
        // pass over the prompts, and every win rate continues that pass.
        let plan = Command::new(bin).args(["plan", "study.exp", "--json"]).current_dir(root).output().unwrap();
        let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
        let kept =
            root.join("cache/objects").join(plan_key(&plan, "wr.samples(sft)").hex()).join("samples.safetensors");
        let names: Vec<String> = Tensor::read_safetensors(&kept).unwrap().into_iter().map(|(name, _)| name).collect();
        assert!(names.iter().any(|n| n == "scores") && names.iter().any(|n| n.starts_with("prefix.")), "{names:?}");
        for target in ["rm", "sft"] {
            assert!(evals.lines().any(|l| l.starts_with(&format!("acc,{target},,accuracy,"))), "{family}: {evals}");
        }
        // A reward model cannot start an SFT where its score head replaced an
        // untied language-model head (Llama): refused when the plan is made.
        // GPT-2's output head is its embedding, so its reward model can.
        std::fs::write(
            root.join("rm_as_policy.exp"),
            "model rm_dir = pretrained(\"rm\")\ndataset prefs = jsonl(\"prefs.jsonl\", tokenizer_of: rm_dir)\n\
             model bad = sft(prefs, base: rm_dir, steps: 1)\n",
        )
        .unwrap();
        let check = Command::new(bin).args(["check", "rm_as_policy.exp"]).current_dir(root).output().unwrap();
        let said = String::from_utf8_lossy(&check.stderr);
        if family == "llama" {
            assert!(!check.status.success() && said.contains("has no language-model head"), "{family}: {said}");
        } else {
            assert!(check.status.success(), "{family}: {said}");
        }
        // A held-out record longer than the models' widths is refused, counted.
        let long = format!("{{\"prompt\": \"Why?\", \"chosen\": \"{}\", \"rejected\": \"No.\"}}\n", "very ".repeat(40));
        std::fs::write(root.join("heldout.jsonl"), long).unwrap();
        let run = Command::new(bin)
            .args(["run", "study.exp", "--cache", "cache", "--results", "results2"])
            .current_dir(root)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&run.stdout);
        assert!(!run.status.success() && said.contains("1 responses longer than"), "{family}: {said}");
        let report = std::fs::read_to_string(root.join("results/study/report.md")).unwrap();
        assert!(report.contains("`rm`"), "{family}: {report}");
        // A PM trained here with the last-token head exports as
        // transformers' reward model, which scores texts as tandem does.
        let export = |name: &str, out: &str| {
            Command::new(bin)
                .args(["--cache", "cache", "export", "study.exp", name, out])
                .current_dir(root)
                .output()
                .unwrap()
        };
        let o = export("trained_rm", "rm_out");
        assert!(o.status.success(), "{family}: {}", String::from_utf8_lossy(&o.stderr));
        let texts = ["Please fix the heating.", "The reward model prefers short summaries."];
        let mut cmd = Command::new(bin);
        cmd.arg("pretrained").arg(root.join("rm_out"));
        for t in texts {
            cmd.args(["--text", t]);
        }
        let ours = String::from_utf8_lossy(&cmd.output().unwrap().stdout).into_owned();
        let ours: Vec<f64> =
            ours.lines().filter_map(|l| l.split("score = ").nth(1)).map(|s| s.trim().parse().unwrap()).collect();
        let script = r#"
import json, sys, torch, transformers
d = sys.argv[1]
tok = transformers.AutoTokenizer.from_pretrained(d)
m = transformers.AutoModelForSequenceClassification.from_pretrained(d, attn_implementation="eager").eval()
with torch.no_grad():
    print(json.dumps([m(torch.tensor([tok(t)["input_ids"]])).logits[0, 0].item() for t in sys.argv[2:]]))
"#;
        let py = Command::new(python()).arg("-c").arg(script).arg(root.join("rm_out")).args(texts).output().unwrap();
        assert!(py.status.success(), "{family}: {}", String::from_utf8_lossy(&py.stderr));
        let theirs: Vec<f64> = serde_json::from_slice(&py.stdout).unwrap();
        assert_eq!(ours.len(), texts.len());
        for (a, b) in ours.iter().zip(&theirs) {
            assert!((a - b).abs() < 1e-4, "{family}: tandem {a}, transformers {b}");
        }
        // The pooled head has no transformers class: its export says so.
        let o = export("pooled", "pooled_out");
        assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("no transformers class"));
        assert!(!root.join("pooled_out").exists());
    }
}

/// TRL's conversational preference records, rendered with the model's own
/// chat template (transformers writes it as chat_template.jinja), tokenise
/// as `apply_chat_template` tokenises them: the prompt with the generation
/// prompt, and prompt + response as the whole conversation (tandem ends each
/// response with EOS, as TRL does). A conversational file without a
/// template is refused when the plan is made.
#[test]
fn conversational_records_tokenise_as_apply_chat_template_does() {
    let Some(dir) = fixtures() else { return };
    let bin = env!("CARGO_BIN_EXE_tandem");
    let records = [
        (
            r#"[{"role": "user", "content": "Fix the heating?"}]"#,
            r#"[{"role": "assistant", "content": "The heating failed."}]"#,
            r#"[{"role": "assistant", "content": "It is winter."}]"#,
        ),
        (
            r#"[{"role": "system", "content": "Be short."}, {"role": "user", "content": "Is the fox quick?"}]"#,
            r#"[{"role": "assistant", "content": "Yes."}]"#,
            r#"[{"role": "assistant", "content": "Dogs are lazy."}]"#,
        ),
    ];
    let jsonl: String =
        records.iter().map(|(p, c, r)| format!("{{\"prompt\": {p}, \"chosen\": {c}, \"rejected\": {r}}}\n")).collect();
    let project = text_project(
        dir,
        "gpt2",
        "model base = pretrained(\"model\")\n\
         dataset chat = jsonl(\"chat.jsonl\", tokenizer_of: base)\n\
         model sft = sft(chat, base: base, steps: 2, batch: 2)\n",
    );
    let root = project.path();
    std::fs::write(root.join("chat.jsonl"), &jsonl).unwrap();
    let run = Command::new(bin).args(["run", "study.exp", "--cache", "cache"]).current_dir(root).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let plan = Command::new(bin).args(["plan", "study.exp", "--json"]).current_dir(root).output().unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let store = tandem::exec::store::Store::open_existing(root.join("cache"));
    let path = store.verified_path(&plan_key(&plan, "chat"), "pairs.safetensors").unwrap();
    let pairs = tandem::ml::data::Pairs::load(&path, Device::Cpu).unwrap();
    // Stored ids are one up, 0 is padding.
    let rows = |t: &Tensor| -> Vec<Vec<i64>> {
        let v: Vec<i64> = Vec::try_from(t.to_kind(tch::Kind::Int64).view([-1])).unwrap();
        v.chunks(t.size()[1] as usize).map(|r| r.iter().filter(|&&x| x != 0).map(|x| x - 1).collect()).collect()
    };
    let (prompts, chosen, rejected) = (rows(&pairs.prompts), rows(&pairs.chosen), rows(&pairs.rejected));
    let script = r#"
import json, sys, transformers
tok = transformers.AutoTokenizer.from_pretrained(sys.argv[1])
out = []
for line in open(sys.argv[2]):
    r = json.loads(line)
    ids = lambda m, g: list(tok.apply_chat_template(m, tokenize=True, add_generation_prompt=g, return_dict=True)["input_ids"])
    out.append({"prompt": ids(r["prompt"], True), "chosen": ids(r["prompt"] + r["chosen"], False),
                "rejected": ids(r["prompt"] + r["rejected"], False), "eos": tok.eos_token_id})
print(json.dumps(out))
"#;
    let py = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(root.join("model"))
        .arg(root.join("chat.jsonl"))
        .output()
        .unwrap();
    assert!(py.status.success(), "{}", String::from_utf8_lossy(&py.stderr));
    let want: Vec<serde_json::Value> = serde_json::from_slice(&py.stdout).unwrap();
    for (i, w) in want.iter().enumerate() {
        let eos = w["eos"].as_i64().unwrap();
        assert_eq!(prompts[i], ints(&w["prompt"]), "record {i}: the prompt");
        for (name, ours) in [("chosen", &chosen[i]), ("rejected", &rejected[i])] {
            let whole: Vec<i64> = [prompts[i].clone(), ours.clone()].concat();
            assert_eq!(whole, [ints(&w[name]), vec![eos]].concat(), "record {i}: prompt + {name}, then EOS");
        }
    }
    // Without a chat template, conversations are refused before anything runs.
    std::fs::remove_file(root.join("model/chat_template.jinja")).unwrap();
    let check = Command::new(bin).args(["check", "study.exp"]).current_dir(root).output().unwrap();
    let said = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success() && said.contains("the records are conversations"), "{said}");
}
