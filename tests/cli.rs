//! The `tandem` binary as a user runs it.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::Tandem;

fn tandem(args: &[&str]) -> Output {
    Tandem::new().width(100).args(args).run().out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_explains_every_command() {
    let ran = Tandem::new().arg("--help").run().success();
    ["check", "plan", "diff", "show", "env"].iter().fold(ran, |ran, cmd| ran.stdout_has(cmd));
}

#[test]
fn check_reports_three_mistakes_with_locations_and_fails() {
    let ran = Tandem::new()
        .width(100)
        .args(["check", "tests/corpus/err/three_mistakes.exp"])
        .run()
        .fails_with(1)
        .stderr_has("three_mistakes.exp:7:")
        .stderr_has("three_mistakes.exp:8:")
        .stderr_has("three_mistakes.exp:9:")
        .stderr_has("tandem::wrong_kind")
        .stderr_has("tandem::out_of_range")
        .stderr_has("tandem::unknown_name");
    assert_eq!(ran.stderr().matches("help:").count(), 3, "{}", ran.stderr());
}

#[test]
fn check_of_a_missing_file_is_a_clean_error() {
    Tandem::new()
        .args(["check", "no/such/file.exp"])
        .run()
        .fails_with(1)
        .stderr_has("cannot read")
        .stderr_lacks("panicked");
}

#[test]
fn check_accepts_several_files() {
    let ran =
        Tandem::new().args(["check", "experiments/quickstart.exp", "tests/corpus/ok/all_kinds.exp"]).run().success();
    assert_eq!(ran.stdout().matches(": ok").count(), 2);
}

fn plan_keys(file: &str) -> Vec<String> {
    let o = tandem(&["plan", "--json", file]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format"], 1);
    let mut keys: Vec<String> =
        v["nodes"].as_array().unwrap().iter().map(|n| n["key"].as_str().unwrap().to_string()).collect();
    keys.sort();
    assert_eq!(v["totals"]["nodes"].as_u64().unwrap() as usize, keys.len());
    keys
}

#[test]
fn plan_json_keys_survive_reformatting_and_renaming() {
    let a = plan_keys("experiments/quickstart.exp");
    let b = plan_keys("tests/corpus/ok/quickstart_reformatted.exp");
    assert!(a.len() > 20);
    assert_eq!(a, b);
}

#[test]
fn plan_text_and_dot() {
    let o = tandem(&["plan", "experiments/quickstart.exp"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(out.contains("run.train") && out.contains("missing") && out.contains("totals:"), "{out}");
    let o = tandem(&["plan", "--dot", "experiments/quickstart.exp"]);
    assert!(stdout(&o).starts_with("digraph plan {"));
}

#[test]
fn diff_names_the_changed_learning_rate_and_its_downstream_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read_to_string("experiments/quickstart.exp").unwrap();
    let changed = original.replacen("lr: 1e-4, steps: steps", "lr: 3e-4, steps: steps", 1);
    assert_ne!(original, changed, "the quickstart's online run sets lr: 1e-4");
    let b = dir.path().join("quickstart_lr.exp");
    std::fs::write(&b, changed).unwrap();
    let o = tandem(&["diff", "--json", "experiments/quickstart.exp", b.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let changed = d["changed"].as_array().unwrap();
    // Exactly the runs deriving from `online` changed their own parameter: lr.
    let direct: Vec<(&str, Vec<&str>)> = changed
        .iter()
        .filter(|c| !c["only_inputs"].as_bool().unwrap())
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["params"].as_array().unwrap().iter().map(|p| p["path"].as_str().unwrap()).collect(),
            )
        })
        .collect();
    assert!(!direct.is_empty());
    for (name, params) in &direct {
        assert_eq!(params, &vec!["lr"], "{name}");
        let decl = name.split('[').next().unwrap_or(name);
        assert!(["online", "offline", "tandem", "golden"].contains(&decl), "{name}");
    }
    // Everything downstream changed only because an input did.
    let downstream: Vec<&str> =
        changed.iter().filter(|c| c["only_inputs"].as_bool().unwrap()).map(|c| c["name"].as_str().unwrap()).collect();
    assert!(downstream.contains(&"online[seed=0]@300"), "{downstream:?}");
    assert!(downstream.iter().any(|n| n.starts_with("performance(")), "{downstream:?}");
    assert!(downstream.contains(&"tradeoff"), "{downstream:?}");
    // Upstream stages are shared.
    assert!(d["shared"].as_u64().unwrap() >= 6);
    for name in ["sft", "golden_pm", "proxy_pm", "d_golden"] {
        assert!(!changed.iter().any(|c| c["name"] == name), "{name} should be unchanged");
    }
    // The text form says the same.
    let o = tandem(&["diff", "experiments/quickstart.exp", b.to_str().unwrap()]);
    let out = stdout(&o);
    assert!(out.contains("lr: 1e-4 → 3e-4"), "{out}");
    assert!(out.contains("changed only because an input changed"), "{out}");
}

#[test]
fn diff_names_a_changed_length_and_each_side_s_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read_to_string("experiments/quickstart.exp").unwrap();
    let changed = original.replacen("let steps = 300", "let steps = 400", 1);
    assert_ne!(original, changed, "the quickstart sets `let steps = 300`");
    let b = dir.path().join("quickstart_400.exp");
    std::fs::write(&b, changed).unwrap();
    let o = tandem(&["diff", "--json", "experiments/quickstart.exp", b.to_str().unwrap()]);
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // `steps` is in no key, yet the diff says it changed, run by run.
    let lengths = d["lengths"].as_array().unwrap();
    let online = lengths.iter().find(|l| l["name"] == "online[seed=0]").expect("online's length");
    assert_eq!(online["steps"], serde_json::json!([300, 400]));
    assert_eq!(online["same_key"], true);
    // Downstream, each side's own checkpoint is named.
    let text = stdout(&tandem(&["diff", "experiments/quickstart.exp", b.to_str().unwrap()]));
    assert!(text.contains("steps 300 → 400"), "{text}");
    assert!(text.contains("golden@300) → performance.samples(golden@400)"), "{text}");
}

#[test]
fn show_and_export_take_a_study_and_a_name_as_the_plan_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.exp");
    std::fs::write(
        &file,
        "world w = summarize(seed: 1, vocab: 24, prompt_len: 6, response_len: 8)\n\
         dataset d = generate(w, pairs: 200)\n\
         model sft = sft(d, layers: 1, width: 16, heads: 2, steps: 5)\n\
         model pm = pm(d, layers: 1, width: 16, heads: 2, steps: 5)\n\
         run online = train(sft, loss: ipo(), sampler: online(judge: pm), steps: 10, save_every: 5, batch: 4, seeds: 2)\n",
    )
    .unwrap();
    let (cache, f) = (dir.path().join("cache"), file.to_str().unwrap());
    let c = cache.to_str().unwrap();
    let results = dir.path().join("r");
    let o = tandem(&["--cache", c, "run", f, "--results", results.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A checkpoint of one seed by its printed name; the run's own name means
    // its last checkpoint, the same stream.
    let a = dir.path().join("a.jsonl");
    let o = tandem(&["--cache", c, "export", f, "online[seed=1]@10", a.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let b = dir.path().join("b.jsonl");
    let o = tandem(&["--cache", c, "export", f, "online[seed=1]", b.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&a).unwrap();
    assert_eq!(text.lines().count(), 40, "10 steps × 4 pairs");
    assert_eq!(text, std::fs::read_to_string(&b).unwrap());
    // show by name; a misspelt name gets a suggestion, not a panic.
    let o = tandem(&["--cache", c, "show", f, "d"]);
    assert!(stdout(&o).contains("dataset.generate"), "{}", stdout(&o));
    let o = tandem(&["--cache", c, "show", f, "onlin[seed=1]@10"]);
    assert!(!o.status.success() && stderr(&o).contains("did you mean `online[seed=1]@10`"), "{}", stderr(&o));
    // A run's own key (as `plan` prints it) says what it is and where its
    // models are, not "no cache entry".
    let plan: serde_json::Value = serde_json::from_slice(&tandem(&["plan", f, "--json"]).stdout).unwrap();
    let run = plan["nodes"].as_array().unwrap().iter().find(|n| n["names"][0] == "online[seed=1]").unwrap();
    let o = tandem(&["--cache", c, "show", run["short"].as_str().unwrap()]);
    let said = stderr(&o);
    assert!(!o.status.success(), "{said}");
    assert!(
        said.contains("is a training run, kept as its checkpoints: step 5 (") && said.contains("step 10 ("),
        "{said}"
    );
}

#[test]
fn set_overrides_a_constant_or_an_argument_as_the_file_would_and_diff_explains_it() {
    // Planned as if the file said `let steps = 20`.
    let o = tandem(&["plan", "experiments/quickstart.exp", "--set", "steps=20"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.starts_with("plan for experiments/quickstart.exp with --set steps=20"), "{out}");
    assert!(out.contains("online[seed=0]@20") && !out.contains("online[seed=0]@300"), "{out}");
    // diff A B --set ...: the setting applies to B, and is explained.
    let o = tandem(&["diff", "experiments/quickstart.exp", "experiments/quickstart.exp", "--set", "steps=20"]);
    let out = stdout(&o);
    assert!(out.contains("online[seed=0]: steps 300 → 20"), "{out}");
    let o =
        tandem(&["diff", "experiments/quickstart.exp", "experiments/quickstart.exp", "--set", "online.loss.beta=0.05"]);
    assert!(stdout(&o).contains("loss.beta: 0.1 → 0.05"), "{}", stdout(&o));
    // A setting that names nothing is a diagnostic that says where it was typed.
    let o = tandem(&["check", "experiments/quickstart.exp", "--set", "stpes=20"]);
    let said = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{said}");
    assert!(said.contains("tandem::bad_setting") && said.contains("did you mean `steps`?"), "{said}");
    // A bad value is checked like one in the file.
    let o = tandem(&["check", "experiments/quickstart.exp", "--set", "online.lr=-1"]);
    assert!(!o.status.success() && stderr(&o).contains("--set online.lr=-1"), "{}", stderr(&o));
}

#[test]
fn diff_of_identical_experiments_shares_everything() {
    let o = tandem(&["diff", "--json", "experiments/quickstart.exp", "tests/corpus/ok/quickstart_reformatted.exp"]);
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["only_in_a"].as_array().unwrap().len(), 0);
    assert_eq!(d["only_in_b"].as_array().unwrap().len(), 0);
}

#[test]
fn show_prints_manifest_and_lineage_of_a_cache_entry() {
    use tandem::exec::Store;
    let dir = tempfile::tempdir().unwrap();
    let checked = tandem::check::check_file(Path::new("experiments/quickstart.exp"), Default::default());
    let plan = tandem::plan::lower::lower(&checked.program).unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Write the world, D_initial and the golden PM as entries.
    let mut golden = None;
    for n in plan.ordered().into_iter().take(3) {
        let mut s = store.begin(n).unwrap();
        s.write("artifact.bin", n.kind().as_bytes()).unwrap();
        s.commit().unwrap();
        golden = Some(n.key);
    }
    let key = golden.unwrap();
    let cache = dir.path().to_str().unwrap();
    let o = tandem(&["show", "--cache", cache, &key.short()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("model.pm") && out.contains("golden_pm"), "{out}");
    assert!(out.contains("lineage") && out.contains("data: d_initial") && out.contains("world: summarize"), "{out}");
    assert!(out.contains("artifact.bin"));
    // The plan now reports those three as cached.
    let o = tandem(&["plan", "--json", "--cache", cache, "experiments/quickstart.exp"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["totals"]["cached"], 3);
    // JSON manifest.
    let o = tandem(&["show", "--json", "--cache", cache, &key.hex()[..12]]);
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(m["kind"], "model.pm");
    assert_eq!(m["files"][0]["name"], "artifact.bin");
}

#[test]
fn show_of_an_unknown_key_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let o = tandem(&["show", "--cache", dir.path().to_str().unwrap(), "abcdef"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("tandem::cache::missing"), "{}", stderr(&o));
}

#[test]
fn plan_does_not_create_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("never");
    let o = tandem(&["plan", "--cache", cache.to_str().unwrap(), "experiments/quickstart.exp"]);
    assert!(o.status.success());
    assert!(!cache.exists());
}

#[test]
fn env_runs_libtorch() {
    let o = tandem(&["env"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("sum([1,2,3]) = 6"), "{}", stdout(&o));
}

#[test]
fn the_cuda_profile_loads_libtorchs_cuda_backend_and_names_what_is_missing() {
    // `tandem env` loads the backend to report on it: the venv's libtorch has
    // one, GPU or not.
    let o = tandem(&["env"]);
    let out = stdout(&o);
    let backend = out.lines().find(|l| l.starts_with("cuda backend")).unwrap_or_else(|| panic!("{out}"));
    assert!(backend.ends_with("libtorch_cuda.so"), "{backend}");
    let has_gpu = out.lines().any(|l| l.starts_with("cuda available") && l.ends_with("true"));
    // A run on the GPU: where there is none, the diagnostic says the backend
    // was found and gives libtorch's reason, before anything is planned to run.
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let o = tandem(&[
        "--numerics",
        "cuda",
        "--cache",
        cache.to_str().unwrap(),
        "run",
        "experiments/quickstart.exp",
        "--device",
        "cuda",
        "--dry-run",
    ]);
    if has_gpu {
        assert!(o.status.success(), "{}", stderr(&o));
    } else {
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("CUDA backend is loaded") && err.contains("libtorch_cuda.so"), "{err}");
        assert!(err.contains("finds no GPU") && !err.contains("'CUDA' backend"), "{err}");
        assert!(!cache.exists(), "nothing is written when the profile cannot be honoured");
    }
}

#[test]
fn run_dry_run_and_only_list_what_would_be_computed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let c = cache.to_str().unwrap();
    let o = tandem(&["--cache", c, "run", "experiments/quickstart.exp", "--dry-run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("would run") && err.contains("run.train") && err.contains("golden_pm"), "{err}");
    assert!(stdout(&o).contains("385 to compute, 0 cached"), "{}", stdout(&o));
    // --only: the SFT policy and what it needs, nothing downstream.
    let o = tandem(&["--cache", c, "run", "experiments/quickstart.exp", "--dry-run", "--only", "sft"]);
    let err = stderr(&o);
    assert!(err.contains("model.sft") && err.contains("golden_pm") && !err.contains("run.train"), "{err}");
    assert!(stdout(&o).contains("5 to compute"), "{}", stdout(&o));
    // An unknown name is an error, not a silent no-op.
    let o = tandem(&["--cache", c, "run", "experiments/quickstart.exp", "--only", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nosuch"));
}

#[test]
fn a_jsonl_path_leaving_the_project_must_be_absolute() {
    // project/ (marked by tandem.toml) holds the study in exp/; the data
    // lies beside the project. `../../data/...` climbs out: refused with a
    // help naming the absolute path, which is accepted.
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir_all(project.join("exp")).unwrap();
    std::fs::write(project.join("tandem.toml"), "").unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let data = dir.path().join("data/prefs.jsonl");
    std::fs::copy("tests/data/tiny_prefs.jsonl", &data).unwrap();
    let rel = project.join("exp/rel.exp");
    std::fs::write(&rel, "dataset d = jsonl(\"../../data/prefs.jsonl\")\n").unwrap();
    let o = tandem(&["check", rel.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("tandem::outside_project") && err.contains("leads outside the project"), "{err}");
    let abs = project.join("exp/abs.exp");
    std::fs::write(&abs, format!("dataset d = jsonl({:?})\n", data.to_str().unwrap())).unwrap();
    let o = tandem(&["check", abs.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Inside the project, relative paths are fine.
    std::fs::copy("tests/data/tiny_prefs.jsonl", project.join("prefs.jsonl")).unwrap();
    std::fs::write(&rel, "dataset d = jsonl(\"../prefs.jsonl\")\n").unwrap();
    let o = tandem(&["check", rel.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_bad_profile_is_a_diagnostic_pointing_into_tandem_toml() {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("s.exp");
    std::fs::write(&study, "world w = summarize(seed: 1)\n").unwrap();
    std::fs::write(dir.path().join("tandem.toml"), "[slurm]\npoll_seconds = \"fast\"\n").unwrap();
    let cache = dir.path().join("cache");
    let o = tandem(&["--cache", cache.to_str().unwrap(), "run", study.to_str().unwrap(), "--dry-run"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("tandem::profile") && err.contains("tandem.toml:2:16") && err.contains("expected f64"),
        "{err}"
    );
    assert!(
        !cache.exists() || std::fs::read_dir(cache.join("objects")).map(|d| d.count() == 0).unwrap_or(true),
        "nothing ran"
    );
}

/// The `fingerprint` lines of `tandem env` under a profile and environment.
fn fingerprint(numerics: &str, env: &[(&str, &str)]) -> Vec<String> {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tandem"));
    c.args(["--numerics", numerics, "env"]).env_remove("ATEN_CPU_CAPABILITY").env_remove("MKL_CBWR");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).lines().filter(|l| l.starts_with("fingerprint")).map(String::from).collect()
}

#[test]
fn the_portable_profile_takes_effect_whatever_the_environment_says() {
    // `portable` sets ATen's kernel level and MKL's branch inside the process
    // before libtorch reads them: what the environment says must not matter.
    let portable = fingerprint("portable", &[]);
    assert_eq!(portable.len(), 15, "{portable:?}");
    for env in [
        [("ATEN_CPU_CAPABILITY", "default"), ("MKL_CBWR", "AUTO")],
        [("ATEN_CPU_CAPABILITY", "avx2"), ("MKL_CBWR", "AVX2")],
    ] {
        assert_eq!(fingerprint("portable", &env), portable, "{env:?}");
    }
    // ...and the settings do matter, so that equality is not vacuous: the
    // host's own choices (or ATen's scalar kernels) give other bytes.
    assert_ne!(fingerprint("native", &[("ATEN_CPU_CAPABILITY", "default"), ("MKL_CBWR", "AUTO")]), portable);
    // The same reference computations give the committed digests on every
    // x86-64 host with AVX2 (written once, like tests/golden/micro_study.digests).
    let golden = std::fs::read_to_string("tests/golden/fingerprint.txt").unwrap();
    assert_eq!(
        portable,
        golden.lines().map(String::from).collect::<Vec<_>>(),
        "this host computes other bytes under `portable`"
    );
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    // `tandem plan F | head -1`: the reader goes away after one line, the
    // command's next writes find no reader. It must end quietly (exit 0, or
    // killed by SIGPIPE as `cat` is), never panic.
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    let cache = tempfile::tempdir().unwrap();
    let err_path = cache.path().join("stderr.txt");
    let commands: [&[&str]; 11] = [
        &["plan", "experiments/paper.exp"],
        &["plan", "--json", "experiments/paper.exp"],
        &["plan", "--dot", "experiments/paper.exp"],
        &["diff", "experiments/quickstart.exp", "experiments/paper.exp"],
        &["diff", "--json", "experiments/quickstart.exp", "experiments/paper.exp"],
        &["check", "experiments/paper.exp", "experiments/quickstart.exp"],
        &["run", "--dry-run", "experiments/paper.exp"],
        &["env"],
        &["gc"],
        &["verify"],
        &["--help"],
    ];
    for args in commands {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
            .arg("--cache")
            .arg(cache.path())
            .args(args)
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            // To a file: a command that writes much to stderr before its
            // first line of stdout must not block on an unread pipe.
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        assert!(!first.is_empty(), "{args:?} printed nothing");
        // The reader (and its end of the pipe) is dropped here.
        let status = child.wait().unwrap();
        let err = std::fs::read_to_string(&err_path).unwrap();
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        let quiet = status.success() || status.signal() == Some(libc::SIGPIPE);
        assert!(quiet, "{args:?} ended with {status:?}: {err}");
    }
}

#[test]
fn warnings_are_printed_and_the_command_goes_on() {
    let o = tandem(&["check", "tests/corpus/warn/likely_mistakes.exp"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("tandem::unknown_series") && err.contains("warning: 6 likely mistakes"), "{err}");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("ok (")
            && String::from_utf8_lossy(&o.stdout).contains("6 warnings")
    );
    let o = tandem(&["plan", "tests/corpus/warn/likely_mistakes.exp"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("tandem::swapped_axes"));
}

#[test]
fn max_sweep_takes_numbers_as_the_language_writes_them() {
    for ok in ["1e6", "100k", "2M", "100000"] {
        let o = tandem(&["--max-sweep", ok, "check", "experiments/quickstart.exp"]);
        assert!(o.status.success(), "{ok}: {}", stderr(&o));
    }
    for bad in ["1.5", "0", "1e30", "many"] {
        let o = tandem(&["--max-sweep", bad, "check", "experiments/quickstart.exp"]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", stderr(&o));
        assert!(stderr(&o).contains(&format!("`{bad}`")), "{bad}: {}", stderr(&o));
    }
}

#[test]
fn a_figure_over_worlds_is_one_image_of_small_multiples_with_a_verdict_column_per_world() {
    // Two worlds; every stage inherits the world axis, so each figure is one
    // per world. The report draws each declaration once, side by side,
    // puts the claims × worlds table first, and orders figures as the paper
    // numbers them (fig1, fig2, fig10), not as the plan lists them.
    let study = r#"
world a = summarize(seed: 2, vocab: 24, prompt_len: 6, response_len: 8)
world b = helpful(seed: 3, vocab: 24, prompt_len: 6, response_len: 8)
dataset d = generate(world: sweep [a, b], pairs: 300)
model judge = pm(d, layers: 1, width: 16, heads: 2, steps: 40, batch: 32)
model sft = sft(d, layers: 1, width: 16, heads: 2, steps: 40, batch: 32)
run online = train(sft, loss: ipo(beta: 0.1), sampler: online(judge: judge), lr: 1e-3, steps: 30, save_every: 10, batch: 16)
run offline = online with { sampler: offline(d) }
eval k = kl(policies: [online, offline], prompts: 32)
eval wr = winrate(policies: [online, offline], baseline: sft, judge: judge, prompts: 64)
figure fig10 = curve(y: [k], title: "Ten")
figure fig1 = tradeoff(x: k, y: wr, title: "One", expect: ["online", "offline"])
figure fig2 = curve(y: [wr], title: "Two")
"#;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("worlds.exp");
    std::fs::write(&file, study).unwrap();
    let results = dir.path().join("r");
    let out = tandem(&[
        "--cache",
        dir.path().join("cache").to_str().unwrap(),
        "run",
        file.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let report = std::fs::read_to_string(results.join("worlds/report.md")).unwrap();
    assert!(report.contains("| claim | world=a | world=b | combined over worlds |"), "{report}");
    // One seed per method in each world: undecided there, and not combined.
    // (or not comparable there: then it has no test to combine).
    assert!(report.contains("**undecided** ") && report.contains("not combined: a world has "), "{report}");
    assert!(report.contains("| fig1: `online` > `offline` | **"), "{report}");
    assert!(report.contains("![One](fig1.svg)") && results.join("worlds/fig1.png").is_file(), "{report}");
    assert!(report.contains("### One (world=a)") && report.contains("### One (world=b)"), "{report}");
    let at = |h: &str| report.find(h).unwrap_or_else(|| panic!("no {h} in {report}"));
    assert!(at("## One") < at("## Two") && at("## Two") < at("## Ten"), "{report}");
    assert!(at("## Claims") < at("## One"), "{report}");
}

#[test]
fn without_a_terminal_a_run_prints_plain_progress_lines() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.exp");
    std::fs::write(
        &file,
        "world w = summarize(seed: 1, vocab: 24, prompt_len: 6, response_len: 8)\n\
         dataset d = generate(w, pairs: 200)\n\
         model sft = sft(d, layers: 1, width: 16, heads: 2, steps: 300)\n\
         model pm = pm(d, layers: 1, width: 16, heads: 2, steps: 300)\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["--cache", dir.path().join("cache").to_str().unwrap(), "run", file.to_str().unwrap()])
        .arg("--results")
        .arg(dir.path().join("r"))
        .env("NO_COLOR", "1")
        .env("TANDEM_PROGRESS_SECONDS", "0.1")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    // stderr is a pipe here, as in a Slurm log: the lines are plain text
    // that say how far the whole run is and what is running.
    let line = err.lines().find(|l| l.starts_with("progress   ")).unwrap_or_else(|| panic!("no progress line:\n{err}"));
    assert!(line.contains(" nodes, ") && line.contains(" in"), "{line}");
    assert!(!err.contains('\u{1b}'), "no terminal escapes in a log:\n{err}");
}

#[test]
fn each_run_keeps_its_results_in_history_and_diff_compares_two_results() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("h.exp");
    std::fs::write(
        &file,
        "world w = summarize(seed: 1, vocab: 24, prompt_len: 6, response_len: 8)\n\
         dataset d = generate(w, pairs: 200)\n\
         model sft = sft(d, layers: 1, width: 16, heads: 2, steps: 5)\n\
         model pm = pm(d, layers: 1, width: 16, heads: 2, steps: 5)\n\
         run online = train(sft, loss: ipo(), sampler: online(judge: pm), steps: 4, save_every: 2, batch: 4)\n\
         eval wr = winrate(policies: [online], baseline: sft, judge: pm, prompts: 16)\n\
         figure f = tradeoff(x: wr, y: wr)\n",
    )
    .unwrap();
    let (c, f) = (dir.path().join("cache"), file.to_str().unwrap());
    let results = dir.path().join("r");
    let run = |extra: &[&str]| {
        let mut args = vec!["--cache", c.to_str().unwrap(), "run", f, "--results", results.to_str().unwrap()];
        args.extend_from_slice(extra);
        let o = tandem(&args);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    run(&[]);
    run(&["--set", "wr.prompts=32"]);
    let latest = results.join("h");
    let mut entries: Vec<_> = std::fs::read_dir(latest.join("history")).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    assert_eq!(entries.len(), 2, "{entries:?}");
    for e in &entries {
        for name in ["evals.csv", "report.md", "report.html", "run.json"] {
            assert!(e.join(name).is_file(), "{} lacks {name}", e.display());
        }
        // The HTML report carries its figure: it opens anywhere.
        let html = std::fs::read_to_string(e.join("report.html")).unwrap();
        assert!(html.contains("src=\"data:image/svg+xml;base64,"), "{html}");
    }
    // The record names the settings and every key of the plan.
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(entries[1].join("run.json")).unwrap()).unwrap();
    assert_eq!(record["settings"], serde_json::json!(["wr.prompts=32"]));
    let plan = tandem(&["--cache", c.to_str().unwrap(), "plan", f, "--json", "--set", "wr.prompts=32"]);
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(record["keys"].as_array().unwrap().len(), plan["nodes"].as_array().unwrap().len());
    // The first run against the latest: the win-rate keys changed, and
    // every win rate of the run is listed with both values.
    let o = tandem(&["diff", entries[0].to_str().unwrap(), latest.to_str().unwrap()]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.contains("--set wr.prompts=32"), "{out}");
    let moved = out.lines().filter(|l| l.starts_with("  wr(online@")).count();
    let said: usize =
        out.lines().find_map(|l| l.strip_prefix("evaluations: ")).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert_eq!(moved, said, "{out}");
    assert!(out.contains("keys: ") && !out.contains("keys: 0 only in A"), "{out}");
    // The same results against themselves: nothing moved.
    let o = tandem(&["diff", "--json", latest.to_str().unwrap(), latest.to_str().unwrap()]);
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["moved"].as_array().unwrap().len(), 0);
    assert_eq!(d["keys_only_in_a"].as_array().unwrap().len(), 0);
    // A folder that is not results is named as such.
    let o = tandem(&["diff", dir.path().to_str().unwrap(), latest.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is not a results folder"), "{}", stderr(&o));
}

#[test]
fn check_format_json_gives_each_problem_with_its_code_and_place() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.exp");
    // `nosuch` starts at line 3, column 15 (1-based) and is 6 characters long.
    std::fs::write(&bad, "# a study\nworld w = summarize(seed: 1)\nmodel s = sft(nosuch)\n").unwrap();
    let o = tandem(&["check", "--format", "json", bad.to_str().unwrap(), "experiments/quickstart.exp"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON document on stdout");
    assert_eq!(d["format"], 1);
    let files = d["files"].as_array().unwrap();
    assert_eq!((files[0]["ok"].clone(), files[1]["ok"].clone()), (false.into(), true.into()));
    assert!(files[1]["nodes"].as_u64().unwrap() > 100);
    let problem = &files[0]["diagnostics"][0];
    assert_eq!(problem["code"], "tandem::unknown_name");
    assert_eq!(problem["severity"], "error");
    let place = &problem["places"][0];
    assert_eq!(
        (&place["line"], &place["column"], &place["end_line"], &place["end_column"], &place["primary"]),
        (&3.into(), &15.into(), &3.into(), &21.into(), &true.into()),
        "{problem}"
    );
}

#[test]
fn init_writes_a_starter_study_that_runs_and_never_writes_over_one() {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("lab");
    let o = tandem(&["init", study.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let file = study.join("study.exp");
    let f = file.to_str().unwrap();
    let o = tandem(&["check", f]);
    assert!(o.status.success() && stdout(&o).contains(": ok ("), "{}{}", stdout(&o), stderr(&o));
    // It runs, and its report tests the ranking it states.
    let (cache, results) = (dir.path().join("cache"), dir.path().join("results"));
    let o = tandem(&["--cache", cache.to_str().unwrap(), "run", f, "--results", results.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = std::fs::read_to_string(results.join("study/report.md")).unwrap();
    assert!(report.contains("| tradeoff | `online` > `offline` |"), "{report}");
    // A second init leaves the study as it is.
    std::fs::write(&file, "# mine\n").unwrap();
    let o = tandem(&["init", study.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "# mine\n");
}

#[test]
fn completions_are_scripts_the_shell_loads() {
    let o = tandem(&["completions", "bash"]);
    assert!(o.status.success());
    let script = dir_with("tandem.bash", &o.stdout);
    // bash loads it and registers a completion for `tandem`.
    let b = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p tandem", script.1.display()))
        .output()
        .unwrap();
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    assert!(String::from_utf8_lossy(&b.stdout).contains("tandem"));
    // Every command is offered.
    let text = String::from_utf8_lossy(&o.stdout);
    for cmd in ["check", "plan", "run", "diff", "show", "export", "init", "completions"] {
        assert!(text.contains(cmd), "bash completions lack {cmd}");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let o = tandem(&["completions", shell]);
        assert!(o.status.success() && !o.stdout.is_empty(), "{shell}");
    }
}

/// A temporary folder holding one file with these bytes.
fn dir_with(name: &str, bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    (d, p)
}

#[test]
fn a_curves_figure_draws_a_training_metric_per_declaration() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.exp");
    std::fs::write(
        &file,
        "world w = summarize(seed: 1, vocab: 24, prompt_len: 6, response_len: 8)\n\
         dataset d = generate(w, pairs: 200)\n\
         model sft = sft(d, layers: 1, width: 16, heads: 2, steps: 5)\n\
         model pm = pm(d, layers: 1, width: 16, heads: 2, steps: 5)\n\
         run online = train(sft, loss: ipo(), sampler: online(judge: pm), steps: 8, save_every: 4, batch: 4, seeds: 2)\n\
         run offline = online with { sampler: offline(d) }\n\
         figure lp = curves(runs: [online, offline, sft], y: \"chosen_logprob\", windows: 4)\n\
         figure early = curves(runs: [online@4], y: \"loss\", windows: 100)\n",
    )
    .unwrap();
    let results = dir.path().join("r");
    let o = tandem(&[
        "--cache",
        dir.path().join("cache").to_str().unwrap(),
        "run",
        file.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Four windows of two steps per declaration, each a mean over its two
    // seeds; SFT has no chosen log-prob, so no curve.
    let text = std::fs::read_to_string(results.join("c/lp.csv")).unwrap();
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    for series in ["online", "offline"] {
        let mine: Vec<_> = rows.iter().filter(|x| &x[0] == series).collect();
        assert_eq!(mine.len(), 4, "{series}: {text}");
        assert!(mine.iter().all(|x| &x[7] == "2"), "two runs per window: {text}");
    }
    assert!(!rows.iter().any(|x| &x[0] == "sft"), "{text}");
    // `online@4`: the first four steps only, one per window.
    let early = std::fs::read_to_string(results.join("c/early.csv")).unwrap();
    assert_eq!(early.lines().count() - 1, 4, "{early}");
    let report = std::fs::read_to_string(results.join("c/report.md")).unwrap();
    assert!(report.contains("averaged in windows of about 1/4 of its steps"), "{report}");
}

#[test]
fn a_last_token_head_needs_a_pretrained_trunk() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("l.exp");
    std::fs::write(
        &file,
        "world w = summarize(seed: 1)\ndataset d = generate(w, pairs: 100)\nmodel rm = pm(d, head: \"last\")\n",
    )
    .unwrap();
    let o = tandem(&["plan", file.to_str().unwrap()]);
    let said = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{said}");
    assert!(
        said.contains("tandem::vocabulary") && said.contains("last-token head without a pretrained trunk"),
        "{said}"
    );
}

#[test]
fn a_ten_million_character_record_is_refused_at_check_time_by_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    let big = format!(
        "{{\"prompt\": \"hello\", \"chosen\": \"a\", \"rejected\": \"b\"}}\n{{\"prompt\": \"{}\", \"chosen\": \"a\", \"rejected\": \"b\"}}\n",
        "x".repeat(10_000_000)
    );
    std::fs::write(dir.path().join("big.jsonl"), big).unwrap();
    let file = dir.path().join("big.exp");
    std::fs::write(
        &file,
        "dataset d = jsonl(\"big.jsonl\")\nmodel s = sft(d, layers: 1, width: 16, heads: 2, steps: 2)\n",
    )
    .unwrap();
    let o = tandem(&["check", file.to_str().unwrap()]);
    let said = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{said}");
    assert!(said.contains("tandem::bad_record") && said.contains("big.jsonl:2"), "{said}");
    assert!(said.contains("`prompt` has 10000000 characters, more than the 100000"), "{said}");
}
