//! Faults a careless operator or a bad setting causes: nothing meaningless
//! passes as a result, nothing that is not ours is written over, and every
//! failure says so in its exit code.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

mod common;
use common::Tandem;

fn tandem(args: &[&str]) -> Command {
    Tandem::new().args(args).command()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A tiny study: a world, its data, an SFT policy and a short offline run
/// with a learning rate of `lr`, evaluated and plotted.
fn study(lr: &str) -> String {
    format!(
        r#"
world w = summarize(seed: 2, vocab: 24, prompt_len: 6, response_len: 8)
dataset d = generate(w, pairs: 200)
model sft = sft(d, layers: 1, width: 16, heads: 2, steps: 20, batch: 16)
model pm = pm(d, layers: 1, width: 16, heads: 2, steps: 20, batch: 16)
run off = train(sft, loss: ipo(beta: 0.1), sampler: offline(d), lr: {lr}, steps: 20, save_every: 10, batch: 8)
eval kl = kl(policies: [off], reference: sft, prompts: 16)
eval win = winrate(policies: [off], baseline: sft, judge: pm, prompts: 16)
figure f = tradeoff(x: kl, y: win)
"#
    )
}

fn run(dir: &Path, exp: &str, extra: &[&str]) -> Output {
    let file = dir.join("study.exp");
    std::fs::write(&file, exp).unwrap();
    let cache = dir.join("cache");
    let results = dir.join("results");
    let mut args = vec!["--cache", cache.to_str().unwrap(), "run", file.to_str().unwrap()];
    if !extra.contains(&"--results") {
        args.extend(["--results", results.to_str().unwrap()]);
    }
    args.extend(extra);
    tandem(&args).output().unwrap()
}

#[test]
fn a_diverging_run_fails_keeps_nothing_and_enters_no_figure() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &study("1e300"), &[]);
    let said = text(&o);
    assert_eq!(o.status.code(), Some(3), "a diverged run is a failure:\n{said}");
    assert!(said.contains("diverged at step"), "{said}");
    // No checkpoint of the run is in the cache, and its evaluations never ran.
    let checked = tandem::check::check_file(&dir.path().join("study.exp"), Default::default());
    let plan = tandem::plan::lower::lower(&checked.program).unwrap();
    let store = tandem::exec::Store::open_existing(dir.path().join("cache"));
    let off = plan.names()["off"];
    for step in 1..=20 {
        assert!(!store.contains(&tandem::plan::op::checkpoint_key(&off, step)), "step {step} was kept");
    }
    // Only step 0 (the starting policy itself, evaluated whatever the run
    // does) may be in the results; no trained step of the run.
    let evals = std::fs::read_to_string(dir.path().join("results/study/evals.csv")).unwrap_or_default();
    assert!(!evals.contains("off@10") && !evals.contains("off@20"), "the diverged run is in the results:\n{evals}");
    assert!(said.contains("skipped because an input failed"), "{said}");
    // The same study at a sane learning rate runs.
    let ok = run(dir.path(), &study("1e-3"), &[]);
    assert!(ok.status.success(), "{}", text(&ok));
}

#[test]
fn results_never_go_over_or_through_what_is_not_a_folder_of_ours() {
    let dir = tempfile::tempdir().unwrap();
    // --results naming a file: refused before anything is computed.
    let file = dir.path().join("a_file");
    std::fs::write(&file, "mine").unwrap();
    let o = run(dir.path(), &study("1e-3"), &["--results", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("not a folder"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
    let objects = dir.path().join("cache/objects");
    assert_eq!(std::fs::read_dir(&objects).map(|d| d.count()).unwrap_or(0), 0, "something was computed");
    // A FIFO where a result file goes: refused, and left as it was.
    let results = dir.path().join("r");
    std::fs::create_dir_all(results.join("study")).unwrap();
    let fifo = results.join("study/evals.csv");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) on a path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let o = run(dir.path(), &study("1e-3"), &["--results", results.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo_like());
}

trait FifoLike {
    fn is_fifo_like(&self) -> bool;
}

impl FifoLike for std::fs::FileType {
    fn is_fifo_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_fifo()
    }
}

#[test]
fn export_writes_a_new_path_only() {
    let dir = tempfile::tempdir().unwrap();
    let exp =
        "world w = summarize(seed: 2, vocab: 24, prompt_len: 6, response_len: 8)\ndataset d = generate(w, pairs: 20)\n";
    let o = run(dir.path(), exp, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let checked = tandem::check::check_source("x.exp", exp, Default::default());
    let plan = tandem::plan::lower::lower(&checked.program).unwrap();
    let key = plan.names()["d"].hex();
    let cache = dir.path().join("cache");
    let export = |to: &Path| {
        tandem(&["--cache", cache.to_str().unwrap(), "export", &key, to.to_str().unwrap()]).output().unwrap()
    };
    // An existing file, a symlink (to a file of ours) and a FIFO: each refused, each untouched.
    let existing = dir.path().join("existing.jsonl");
    std::fs::write(&existing, "keep").unwrap();
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink(&existing, &link).unwrap();
    let fifo = dir.path().join("fifo.jsonl");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) on a path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    for target in [&existing, &link, &fifo] {
        let o = export(target);
        assert_ne!(o.status.code(), Some(0), "{}: {}", target.display(), text(&o));
        assert!(text(&o).contains("exists already"), "{}", text(&o));
    }
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo_like());
    // A new path: written, readable by others as any file the user makes.
    let fresh = dir.path().join("fresh.jsonl");
    let o = export(&fresh);
    assert!(o.status.success(), "{}", text(&o));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o644);
}

#[test]
fn verify_catches_an_edited_or_truncated_manifest_and_a_folder_without_one_is_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    let exp = "world w = summarize(seed: 2, vocab: 24, prompt_len: 6, response_len: 8)\ndataset d = generate(w, pairs: 20)\ndataset e = generate(w, pairs: 30)\ndataset f = generate(w, pairs: 40)\n";
    let o = run(dir.path(), exp, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let checked = tandem::check::check_source("x.exp", exp, Default::default());
    let plan = tandem::plan::lower::lower(&checked.program).unwrap();
    let cache = dir.path().join("cache");
    let entry = |name: &str| cache.join("objects").join(plan.names()[name].hex());
    // Edit d's recorded parameters: its manifest no longer hashes to its key.
    let manifest = entry("d").join("manifest.json");
    let edited = std::fs::read_to_string(&manifest).unwrap().replacen("\"pairs\": 20", "\"pairs\": 21", 1);
    assert!(edited.contains("\"pairs\": 21"), "the manifest records pairs");
    std::fs::write(&manifest, edited).unwrap();
    // Remove e's manifest: a folder that is no entry.
    std::fs::remove_file(entry("e").join("manifest.json")).unwrap();
    // Cut f's manifest short, as a crash mid-write on a filesystem without
    // atomic rename might leave it.
    let cut = entry("f").join("manifest.json");
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let v = tandem(&["--cache", cache.to_str().unwrap(), "verify"]).output().unwrap();
    let said = text(&v);
    assert_eq!(v.status.code(), Some(3), "{said}");
    assert!(said.contains("3 corrupt"), "{said}");
    assert!(said.contains("was changed after it was written") && said.contains("has no manifest"), "{said}");
    // The next run recomputes both and ends clean.
    let o = run(dir.path(), exp, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let v = tandem(&["--cache", cache.to_str().unwrap(), "verify"]).output().unwrap();
    assert!(v.status.success() && text(&v).contains("0 corrupt"), "{}", text(&v));
}

#[test]
fn line_endings_and_a_byte_order_mark_check_as_lf() {
    let lf = std::fs::read_to_string("experiments/quickstart.exp").unwrap();
    let keys = |text: &str| -> Vec<tandem::plan::Key> {
        let checked = tandem::check::check_source("experiments/q.exp", text, Default::default());
        assert!(checked.is_ok(), "{}", tandem::cli::render::render(&checked.diagnostics, false, 100));
        let plan = tandem::plan::lower::lower(&checked.program).unwrap();
        let mut k: Vec<_> = plan.graph.node_weights().map(|n| n.key).collect();
        k.sort();
        k
    };
    let want = keys(&lf);
    assert_eq!(keys(&lf.replace('\n', "\r\n")), want);
    assert_eq!(keys(&lf.replace('\n', "\r")), want);
    assert_eq!(keys(&format!("\u{feff}{lf}")), want);
}

#[test]
fn two_quick_interrupts_exit_130_and_never_crash() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pm.exp");
    // A training whose steps and saved state are large enough that a stop
    // takes a while: the second signal must land while the first is being
    // served, whatever the machine's load.
    let exp = "world w = summarize(seed: 2, vocab: 24, prompt_len: 6, response_len: 8)\ndataset d = generate(w, pairs: 400)\nmodel judge = pm(d, layers: 4, width: 256, heads: 4, steps: 100k, batch: 64, lr: 1e-3)\n";
    std::fs::write(&file, exp).unwrap();
    let checked = tandem::check::check_file(&file, Default::default());
    let judge = tandem::plan::lower::lower(&checked.program).unwrap().names()["judge"];
    let tries = std::env::var("TANDEM_SIGINT_TRIES").ok().and_then(|t| t.parse().ok()).unwrap_or(5);
    for i in 0..tries {
        let cache = dir.path().join(format!("cache{i}"));
        let results = dir.path().join("r");
        let mut child = tandem(&[
            "--cache",
            cache.to_str().unwrap(),
            "run",
            file.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        // The first signal once the training node has started and computes.
        let log = cache.join("logs").join(format!("{}.log", judge.hex()));
        let t0 = std::time::Instant::now();
        while !log.exists() {
            assert!(t0.elapsed() < Duration::from_secs(60), "the training never started");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(300 + 37 * i as u64 % 200));
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
        // The second once the first is being served (its handler has
        // spoken), so that the two are never merged into one by the kernel.
        let mut said = String::new();
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while err.read_line(&mut line).unwrap_or(0) > 0 {
            said.push_str(&line);
            if line.contains("stopping:") {
                // SAFETY: as above.
                assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
                break;
            }
            line.clear();
        }
        let status = child.wait().unwrap();
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut rest);
        assert_eq!(status.code(), Some(130), "try {i}: {status:?}\n{said}{rest}");
    }
}

#[test]
fn gc_under_another_profile_keeps_a_kept_studys_entries_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let exp = study("1e-3");
    let o = run(dir.path(), &exp, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let cache = dir.path().join("cache");
    let file = dir.path().join("study.exp");
    let objects = || std::fs::read_dir(cache.join("objects")).unwrap().count();
    let before = objects();
    let gc = |extra: &[&str]| {
        let mut args =
            vec!["--cache", cache.to_str().unwrap(), "--numerics", "native", "gc", "--keep", file.to_str().unwrap()];
        args.extend(extra);
        tandem(&args).output().unwrap()
    };
    // Under `native`, the study computed under `portable` is still kept, and said so.
    let o = gc(&["--delete"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("under the `portable` profile"), "{}", text(&o));
    assert_eq!(objects(), before, "a kept study's entries were removed");
    // Asked explicitly, they go (the world and dataset nodes, keyed without a profile, stay).
    let o = gc(&["--delete", "--other-profiles"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(objects() < before, "{}", text(&o));
}

#[test]
fn a_pretrained_config_with_absurd_sizes_or_other_weights_is_refused_at_check_time() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(Path::new("tests/data/wordlevel_gpt2").join(f), model.join(f)).unwrap();
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    let exp = dir.path().join("m.exp");
    std::fs::write(&exp, format!("model base = pretrained({:?})\n", model.display().to_string())).unwrap();
    let with_vocab = |v: i64| {
        let mut c = config.clone();
        c["vocab_size"] = v.into();
        std::fs::write(model.join("config.json"), c.to_string()).unwrap();
    };
    // A vocabulary of 10^15 would ask libtorch for petabytes: refused by
    // name, by `check` and by `tandem pretrained`, with no panic (101).
    with_vocab(1_000_000_000_000_000);
    for args in [vec!["check", exp.to_str().unwrap()], vec!["pretrained", model.to_str().unwrap()]] {
        let o = tandem(&args).output().unwrap();
        let said = text(&o);
        assert!(!o.status.success() && o.status.code() != Some(101), "{args:?}: {said}");
        assert!(said.contains("`vocab_size` is 1000000000000000"), "{args:?}: {said}");
    }
    // A plausible vocabulary the weights do not have: their embedding is
    // another shape, found at check time from the safetensors header.
    with_vocab(config["vocab_size"].as_i64().unwrap() + 1);
    let o = tandem(&["check", exp.to_str().unwrap()]).output().unwrap();
    let said = text(&o);
    assert!(!o.status.success(), "{said}");
    assert!(said.contains("do not fit a gpt2 of this config") && said.contains("token embedding"), "{said}");
}
