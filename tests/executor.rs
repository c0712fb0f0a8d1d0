//! `tandem run` under stress: killed at random moments, two processes on one
//! cache, a flipped bit, and `gc`. Each ends with the same artifacts as an
//! uninterrupted run and a clean `tandem verify`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use rand::{Rng, SeedableRng};

mod common;
use common::{artifacts, FAILING_STUDY, MICRO_STUDY as STUDY};

fn tandem(args: &[&str]) -> Command {
    common::Tandem::new().args(args).command()
}

fn study_file(dir: &Path) -> PathBuf {
    let f = dir.join("study.exp");
    std::fs::write(&f, STUDY).unwrap();
    f
}

fn run_to_end(file: &Path, cache: &Path) -> String {
    let out = tandem(&[
        "--cache",
        cache.to_str().unwrap(),
        "run",
        file.to_str().unwrap(),
        "--jobs",
        "2",
        "--threads",
        "1",
        "--results",
        cache.join("results").to_str().unwrap(),
    ])
    .output()
    .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    text
}

fn verify_clean(cache: &Path) {
    let out = tandem(&["--cache", cache.to_str().unwrap(), "verify"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains(" 0 corrupt"), "{text}");
}

/// An uninterrupted run, computed once for all tests.
fn reference() -> &'static (tempfile::TempDir, PathBuf) {
    static REF: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    REF.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let file = study_file(dir.path());
        run_to_end(&file, &dir.path().join("cache"));
        (dir, file)
    })
}

fn reference_artifacts() -> Vec<(String, Vec<tandem::exec::store::FileEntry>)> {
    let (dir, file) = reference();
    artifacts(file, &dir.path().join("cache"))
}

/// The longest training node of the reference run, in seconds of computation.
fn longest_training_node() -> f64 {
    let (dir, file) = reference();
    let checked = tandem::check::check_file(file, Default::default());
    let plan = tandem::plan::lower::lower(&checked.program).unwrap();
    let store = tandem::exec::Store::open_existing(dir.path().join("cache"));
    plan.ordered()
        .into_iter()
        .filter(|n| {
            matches!(n.op, tandem::plan::Op::Sft(_) | tandem::plan::Op::Pm(..) | tandem::plan::Op::Checkpoint { .. })
        })
        .map(|n| store.manifest(&n.key).unwrap().compute_seconds)
        .fold(0.0, f64::max)
}

#[test]
fn killed_again_and_again_a_study_still_finishes_and_gives_the_same_artifacts() {
    // Every sitting is SIGKILLed before it could have finished the longest
    // training node from scratch, so the study can only finish by saving
    // state as it goes (every 0.2 s here) and resuming from it.
    let expected = reference_artifacts();
    let longest = longest_training_node();
    let dir = tempfile::tempdir().unwrap();
    let file = study_file(dir.path());
    let cache = dir.path().join("cache");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    const MAX_SITTINGS: usize = 60;
    let (mut sittings, mut killed) = (0, 0);
    let finished = loop {
        assert!(sittings < MAX_SITTINGS, "not finished after {MAX_SITTINGS} sittings ({killed} killed)");
        sittings += 1;
        let mut child = tandem(&[
            "--cache",
            cache.to_str().unwrap(),
            "run",
            file.to_str().unwrap(),
            "--jobs",
            "2",
            "--threads",
            "1",
            "--snapshot-every",
            "0.2",
            "--results",
            dir.path().join("r").to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        let sitting = Duration::from_secs_f64(longest * rng.gen_range(0.4..0.8));
        let t0 = std::time::Instant::now();
        while t0.elapsed() < sitting && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "sitting {sittings} failed: {status}");
            break sittings;
        }
        child.kill().unwrap(); // SIGKILL: no chance to save anything more
        child.wait().unwrap();
        killed += 1;
        // Whatever is present is complete.
        verify_clean(&cache);
    };
    assert!(killed >= 3, "the kills must land mid-run (finished in sitting {finished})");
    eprintln!("finished in sitting {finished}: {killed} SIGKILLs, each sitting at most 0.8 × {longest:.1} s");
    run_to_end(&file, &cache);
    assert_eq!(artifacts(&file, &cache), expected);
    verify_clean(&cache);
    // Saved state is gone once every entry is in.
    let left = std::fs::read_dir(cache.join("resume")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "saved state left behind");
}

/// A study whose only long node is a preference model's training.
const PM_STUDY: &str = r#"
world w = summarize(seed: 2, vocab: 24, prompt_len: 6, response_len: 8)
dataset d = generate(w, pairs: 400)
model judge = pm(d, layers: 2, width: 32, heads: 2, steps: 400, batch: 32, lr: 1e-3)
"#;

/// A sitting killed between a node's commit and the removal of its saved
/// state leaves that state behind; the next run removes it (the node is
/// done, nothing will resume from it) and computes nothing.
#[test]
fn saved_state_left_behind_by_a_finished_node_goes_at_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pm.exp");
    std::fs::write(&file, PM_STUDY).unwrap();
    let cache = dir.path().join("cache");
    run_to_end(&file, &cache);
    let before = artifacts(&file, &cache);
    let checked = tandem::check::check_file(&file, Default::default());
    let plan = tandem::plan::lower::lower(&checked.program).unwrap();
    let judge = plan.node(&plan.names()["judge"]).unwrap();
    let store = tandem::exec::Store::open_existing(&cache);
    // What the killed sitting left: a snapshot of the finished node.
    let mut resume = tandem::exec::resume::Resume::open(&store, &judge.key, None);
    resume.save(judge, 200, 1.0, |st| st.write("state.bin", b"left behind").map_err(Into::into)).unwrap();
    let area = tandem::exec::resume::area(&store, &judge.key);
    assert!(area.exists());
    let text = run_to_end(&file, &cache);
    assert!(!area.exists(), "the finished node's saved state is still there");
    let computed = text.lines().find(|l| l.starts_with("computed")).and_then(|l| l.split_whitespace().nth(1));
    assert_eq!(computed, Some("0"), "{text}");
    assert_eq!(artifacts(&file, &cache), before);
    verify_clean(&cache);
}

#[test]
fn sigterm_in_the_middle_of_a_pm_training_saves_its_step_and_the_rerun_resumes_there() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pm.exp");
    std::fs::write(&file, PM_STUDY).unwrap();
    let run = |cache: &Path, snapshot_every: &str| {
        tandem(&[
            "--cache",
            cache.to_str().unwrap(),
            "run",
            file.to_str().unwrap(),
            "--snapshot-every",
            snapshot_every,
            "--results",
            dir.path().join("r").to_str().unwrap(),
        ])
    };
    // Uninterrupted, for reference.
    let whole = dir.path().join("whole");
    let out = run(&whole, "60").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Saving only on a signal: the state saved is the signal's doing.
    let cache = dir.path().join("cache");
    let child = run(&cache, "0").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let checked = tandem::check::check_file(&file, Default::default());
    let plan = tandem::plan::lower::lower(&checked.program).unwrap();
    let judge = plan.names()["judge"];
    let log = cache.join("logs").join(format!("{}.log", judge.hex()));
    // Wait until the training has logged its progress (every tenth of it).
    let t0 = std::time::Instant::now();
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("step 80:") {
        assert!(t0.elapsed() < Duration::from_secs(120), "the training never got going");
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let signalled = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    let took = signalled.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(75),
        "a stop by signal exits 75:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < Duration::from_secs(5), "took {took:?} to stop");
    eprintln!("stopped {took:?} after SIGTERM");
    let saved: i64 = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("stopped: judge: its state is saved at step "))
        .and_then(|rest| rest.split(';').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no saved step in:\n{stdout}"));
    assert!((80..400).contains(&saved), "saved at step {saved}");
    assert!(!tandem::exec::Store::open_existing(&cache).contains(&judge), "the entry is not made by a stop");
    // `verify` sees the saved state and nothing corrupt.
    let v = tandem(&["--cache", cache.to_str().unwrap(), "verify"]).output().unwrap();
    let vtext = String::from_utf8_lossy(&v.stdout);
    assert!(v.status.success() && vtext.contains(&format!("training state at step {saved}")), "{vtext}");

    // The rerun goes on from that step and ends bit-identical.
    let out = run(&cache, "60").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(&format!("judge from step {saved}")), "{stdout}");
    let store = tandem::exec::Store::open_existing(&cache);
    let reference = tandem::exec::Store::open_existing(&whole);
    let files = |s: &tandem::exec::Store| -> Vec<_> {
        s.manifest(&judge).unwrap().files.into_iter().filter(|f| f.name != "log.txt").collect()
    };
    assert_eq!(files(&store), files(&reference));
    assert!(!cache.join("resume").join(judge.hex()).exists(), "saved state is removed once the entry is in");
}

#[test]
fn two_concurrent_runs_on_one_cache_agree_and_do_not_collide() {
    let expected = reference_artifacts();
    let dir = tempfile::tempdir().unwrap();
    let file = study_file(dir.path());
    let cache = dir.path().join("cache");
    let spawn = |tag: &str| {
        tandem(&[
            "--cache",
            cache.to_str().unwrap(),
            "run",
            file.to_str().unwrap(),
            "--jobs",
            "1",
            "--threads",
            "1",
            "--results",
            dir.path().join(tag).to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    let (a, b) = (spawn("a"), spawn("b"));
    let (oa, ob) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(oa.status.success(), "{}", String::from_utf8_lossy(&oa.stderr));
    assert!(ob.status.success(), "{}", String::from_utf8_lossy(&ob.stderr));
    assert_eq!(artifacts(&file, &cache), expected);
    verify_clean(&cache);
    // Both wrote the same results table.
    let ra = std::fs::read(dir.path().join("a/study/evals.csv")).unwrap();
    let rb = std::fs::read(dir.path().join("b/study/evals.csv")).unwrap();
    assert_eq!(ra, rb);
}

#[test]
fn a_flipped_bit_is_caught_reported_and_recomputed() {
    let expected = reference_artifacts();
    let (refdir, _) = reference();
    let dir = tempfile::tempdir().unwrap();
    let file = study_file(dir.path());
    let cache = dir.path().join("cache");
    // Start from a copy of the finished reference cache.
    copy_dir(&refdir.path().join("cache"), &cache);
    let checked = tandem::check::check_file(&file, Default::default());
    let plan = tandem::plan::lower::lower(&checked.program).unwrap();
    let sft = plan.names()["sft"];
    let model = cache.join("objects").join(sft.hex()).join("model.safetensors");
    let mut bytes = std::fs::read(&model).unwrap();
    let i = bytes.len() - 7;
    bytes[i] ^= 0x10;
    std::fs::write(&model, bytes).unwrap();
    // verify reports it and fails.
    let out = tandem(&["--cache", cache.to_str().unwrap(), "verify"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&sft.short()));
    // run reports, evicts and recomputes it: everything ends as before.
    let text = run_to_end(&file, &cache);
    assert!(text.contains("corrupt cache entry evicted"), "{text}");
    assert_eq!(artifacts(&file, &cache), expected);
    verify_clean(&cache);
    // A second run computes nothing.
    let again = run_to_end(&file, &cache);
    assert!(again.contains("computed        0"), "{again}");
}

#[test]
fn gc_keeps_what_kept_experiments_reach_and_removes_the_rest() {
    let (refdir, _) = reference();
    let dir = tempfile::tempdir().unwrap();
    let file = study_file(dir.path());
    let cache = dir.path().join("cache");
    copy_dir(&refdir.path().join("cache"), &cache);
    let c = cache.to_str().unwrap();
    let out = tandem(&["--cache", c, "gc", "--keep", file.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(", 0 unreachable"), "{text}");
    // An experiment that shares only the upstream stages.
    let other = dir.path().join("other.exp");
    std::fs::write(&other, STUDY.replace("steps: 60", "steps: 60, seed: 5")).unwrap();
    let out = tandem(&["--cache", c, "gc", "--keep", other.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("would remove") && text.contains("checkpoint"), "{text}");
    assert!(!text.contains("model.sft"), "the shared SFT stage is kept:\n{text}");
    // A staging folder of a writer that died, and the saved state of a node
    // that no kept study has.
    let dead = cache.join("tmp").join(format!("{}.4194999.x1y2z3", "ab".repeat(32)));
    std::fs::create_dir_all(&dead).unwrap();
    std::fs::write(dead.join("model.safetensors"), b"half").unwrap();
    let orphan = cache.join("resume").join("cd".repeat(32));
    std::fs::create_dir_all(orphan.join("objects")).unwrap();
    let v = tandem(&["--cache", c, "verify"]).output().unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).contains("stale"), "{}", String::from_utf8_lossy(&v.stdout));
    let before = std::fs::read_dir(cache.join("objects")).unwrap().count();
    let out = tandem(&["--cache", c, "gc", "--keep", other.to_str().unwrap(), "--delete"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("(a writer that stopped)") && text.contains("(saved training state"), "{text}");
    let after = std::fs::read_dir(cache.join("objects")).unwrap().count();
    assert!(after < before && after > 0);
    assert!(!dead.exists() && !orphan.exists(), "gc --delete leaves dead writers' folders and orphaned saved state");
    verify_clean(&cache);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn a_failing_node_stops_only_its_dependents() {
    // A judge from another world (another vocabulary) cannot label this
    // policy's samples: that run fails, its evaluation is skipped, and the
    // rest of the study completes.
    let study = FAILING_STUDY;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mixed.exp");
    std::fs::write(&file, study).unwrap();
    let cache = dir.path().join("cache");
    let out = tandem(&[
        "--cache",
        cache.to_str().unwrap(),
        "run",
        file.to_str().unwrap(),
        "--results",
        dir.path().join("r").to_str().unwrap(),
    ])
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("failed: bad") && stdout.contains("models must come from the same world"), "{stdout}");
    assert!(stdout.contains("log: ") && stdout.contains(".log"), "{stdout}");
    assert!(
        stdout.contains("skipped because an input failed: k.samples(bad@5), k(bad@5), k.samples(bad@10), k(bad@10)"),
        "{stdout}"
    );
    // The good branch finished.
    let csv = std::fs::read_to_string(dir.path().join("r/mixed/evals.csv")).unwrap();
    assert!(csv.contains("good@10"), "{csv}");
    assert!(!csv.contains("bad@10"));
}

#[test]
fn declarations_merged_into_one_run_get_every_checkpoint_they_ask_for() {
    // `every10` and `every5` are the same run (save_every is not in the key).
    // First only `every10` is computed; then a study that also evaluates
    // `every5` at steps 5 and 15 must refill those checkpoints, and the
    // checkpoint at step 10 must come out byte for byte as before.
    let base = r#"
world w = summarize(seed: 2, vocab: 24, prompt_len: 6, response_len: 8)
dataset d = generate(w, pairs: 200)
model sft = sft(d, layers: 1, width: 16, heads: 2, steps: 20)
run every10 = train(sft, loss: ipo(), sampler: offline(d), steps: 20, save_every: 10, batch: 8)
eval k10 = kl(policies: [every10], prompts: 8, at: [10, 20])
"#;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let first = dir.path().join("first.exp");
    std::fs::write(&first, base).unwrap();
    run_to_end(&first, &cache);
    let before = artifacts(&first, &cache);
    let second = dir.path().join("second.exp");
    std::fs::write(&second, format!("{base}run every5 = every10 with {{ save_every: 5 }}\neval k5 = kl(policies: [every5], prompts: 8, at: [5, 15])\n")).unwrap();
    let text = run_to_end(&second, &cache);
    assert!(text.contains("failed          0"), "{text}");
    let after = artifacts(&second, &cache);
    for (name, files) in &before {
        // A node of the second plan may carry both declarations' names.
        let again = after.iter().find(|(n, _)| n.split(", ").any(|m| m == name)).map(|(_, f)| f);
        assert_eq!(Some(files), again, "{name} changed when the gaps were filled");
    }
    let csv = std::fs::read_to_string(cache.join("results/second/evals.csv")).unwrap();
    assert!(csv.contains("every5@5") && csv.contains("every5@15"), "{csv}");
}

/// `name file blake3` lines of a study's artifacts (logs left out).
fn digest_lines(artifacts: &[(String, Vec<tandem::exec::store::FileEntry>)]) -> String {
    let mut lines = vec![];
    for (name, files) in artifacts {
        for f in files {
            lines.push(format!("{name}\t{}\t{}", f.name, f.blake3));
        }
    }
    lines.join("\n") + "\n"
}

#[test]
fn the_portable_profile_reproduces_the_committed_digests() {
    // tests/golden/micro_study.digests holds the bytes of every artifact of
    // the micro study under `portable`, the same on every x86-64 host with
    // AVX2 and FMA. Until `portable 3` an AVX-512 Intel host and an
    // AVX2-only AMD one trained other weights (MKL's square root in Adam;
    // docs/numerics.md, "Measured across hosts"); a host that differs again
    // shows here which artifacts, with its `tandem env`.
    // Rewrite the file only for a deliberate change of what a node computes
    // (a bumped version): TANDEM_GOLDEN=write cargo test --release --test executor.
    let path = Path::new("tests/golden/micro_study.digests");
    let now = digest_lines(&reference_artifacts());
    if std::env::var("TANDEM_GOLDEN").as_deref() == Ok("write") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &now).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(path).unwrap();
    let differ: Vec<&str> = now.lines().filter(|l| !golden.lines().any(|g| g == *l)).collect();
    let host = tandem(&["env"]).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    assert!(
        differ.is_empty() && now.lines().count() == golden.lines().count(),
        "{} of {} artifacts differ from the committed digests of {} on this host:\n{}\n--- this host:\n{host}",
        differ.len(),
        golden.lines().count(),
        path.display(),
        differ.join("\n")
    );
}

#[test]
fn portable_bytes_depend_neither_on_threads_nor_on_the_kernel_level_in_the_environment() {
    // The reference ran with --threads 1 and the environment as it is; this
    // run asks for two threads per node, sets ATen's kernels and MKL's
    // branch from outside to what an AVX2-only host (AUTO) would choose, and
    // caps oneDNN's and MKL's instruction sets at SSE4: as an older host
    // would. No model op may reach a library whose kernels follow the host
    // (the exact GELU ran on oneDNN and did: AVX-512 and AVX2 hosts differed).
    let expected = reference_artifacts();
    let dir = tempfile::tempdir().unwrap();
    let file = study_file(dir.path());
    let cache = dir.path().join("cache");
    let out = tandem(&[
        "--cache",
        cache.to_str().unwrap(),
        "run",
        file.to_str().unwrap(),
        "--jobs",
        "1",
        "--threads",
        "2",
        "--results",
        dir.path().join("r").to_str().unwrap(),
    ])
    .env("ATEN_CPU_CAPABILITY", "avx2")
    .env("MKL_CBWR", "AUTO")
    .env("ONEDNN_MAX_CPU_ISA", "SSE41")
    .env("MKL_ENABLE_INSTRUCTIONS", "SSE4_2")
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(artifacts(&file, &cache), expected);
}
