//! Stage 5: the commands. `args` is what clap parses; [`Config`] is the
//! validated form every command reads; each command prints its own output
//! and returns an exit code.

pub mod args;
pub mod render;
pub mod view;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::check::{check_file_with, CheckOptions};
use crate::diagnostic::Diagnostic;
use crate::exec::store::Store;
use crate::plan::diff::{diff, render_text};
use crate::plan::{Key, Plan};
use view::{plan_dot, plan_json, plan_text, show_text};

/// Exit codes.
pub const EXIT_OK: i32 = 0;
/// The experiment has problems (diagnostics were printed).
pub const EXIT_INVALID: i32 = 1;
/// A bad command line (what clap itself exits with).
pub const EXIT_USAGE: i32 = 2;
/// Something outside the experiment failed (cache I/O, a missing entry).
pub const EXIT_FAILURE: i32 = 3;
/// Stopped by a signal (SIGINT, SIGTERM, SIGHUP) after saving the state of
/// what was training: run again to resume (EX_TEMPFAIL).
pub const EXIT_STOPPED: i32 = 75;
/// A second signal: stopped at once, without saving.
pub const EXIT_KILLED: i32 = 130;

/// The first SIGINT, SIGTERM or SIGHUP asks running nodes to stop: a
/// training node saves its state first (within a step). A second one exits
/// at once.
fn stop_on_signals() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
            // At once, and without running exit handlers: `exit` would run
            // libtorch's static destructors while its worker threads still
            // compute, which crashed (SIGSEGV, exit 139) in a few tries of
            // ten. The cache is consistent at any instant (entries are
            // committed by rename), so there is nothing to clean up.
            // SAFETY: `_exit` only ends the process.
            unsafe { libc::_exit(EXIT_KILLED) }
        }
        eprintln!("\nstopping: saving the state of running trainings (signal again to exit at once)");
    });
    stop
}

/// `--snapshot-every`: 0 means only when stopped.
fn snapshot_interval(seconds: f64) -> Option<std::time::Duration> {
    (seconds > 0.0).then(|| std::time::Duration::from_secs_f64(seconds))
}

/// Validated settings shared by every command.
#[derive(Debug, Clone)]
pub struct Config {
    pub cache: PathBuf,
    pub color: bool,
    pub width: usize,
    pub check: CheckOptions,
    /// `--set PATH=VALUE` settings, applied to the file before checking.
    pub overrides: Vec<String>,
    /// The numerics profile: it selects the keys, and how nodes compute.
    pub numerics: crate::plan::op::Numerics,
}

impl Config {
    pub fn from_cli(cli: &args::Cli) -> Config {
        let color = match cli.color {
            args::Color::Always => true,
            args::Color::Never => false,
            args::Color::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        };
        let width = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).unwrap_or(100).clamp(40, 200);
        Config {
            cache: cli.cache.clone(),
            color,
            width,
            check: CheckOptions { max_instances: cli.max_sweep.max(1), max_nodes: cli.max_nodes.max(1) },
            overrides: cli.set.clone(),
            numerics: cli.numerics.profile(),
        }
    }
}

pub fn run(cli: args::Cli) -> i32 {
    let cfg = Config::from_cli(&cli);
    match cli.command {
        args::Command::Check { files, format } => cmd_check(&cfg, &files, format == args::Format::Json),
        args::Command::Plan { file, json, dot } => cmd_plan(&cfg, &file, json, dot),
        args::Command::Diff { a, b, json } => cmd_diff(&cfg, &a, &b, json),
        args::Command::Show { target, json } => cmd_show(&cfg, &target, json),
        args::Command::Run {
            file,
            only,
            jobs,
            threads,
            device,
            dry_run,
            results,
            executor,
            profile,
            snapshot_every,
            tensorboard,
        } => {
            let snapshot_every = snapshot_interval(snapshot_every);
            cmd_run(
                &cfg,
                &file,
                RunArgs {
                    only,
                    jobs,
                    threads,
                    device,
                    dry_run,
                    results,
                    executor,
                    profile,
                    snapshot_every,
                    tensorboard,
                },
            )
        }
        args::Command::ExecNode { key, threads, device, snapshot_every } => {
            cmd_exec_node(&cfg, &key, threads, device, snapshot_interval(snapshot_every))
        }
        args::Command::Export { args } => {
            let (target, out) = args.split_at(args.len() - 1);
            cmd_export(&cfg, target, Path::new(&out[0]))
        }
        args::Command::Verify { evict } => cmd_verify(&cfg, evict),
        args::Command::Gc { keep, delete, other_profiles } => cmd_gc(&cfg, &keep, delete, other_profiles),
        args::Command::Env => cmd_env(&cfg),
        args::Command::Init { dir } => cmd_init(&dir),
        args::Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut args::Cli::command(), "tandem", &mut std::io::stdout());
            EXIT_OK
        }
        args::Command::Pretrained { dir, text, generate } => cmd_pretrained(&cfg, &dir, &text, generate),
    }
}

/// Checks and plans one file; diagnostics are returned, not printed.
/// Checks and plans one file and prints its warnings (to stderr).
pub fn plan_file(cfg: &Config, file: &Path) -> Result<Plan, Vec<Diagnostic>> {
    let (planned, warnings) = plan_file_quietly(cfg, file);
    print_warnings(cfg, &warnings);
    planned
}

/// A plan or the problems that prevent it, and the warnings either way.
pub type Planned = (Result<Plan, Vec<Diagnostic>>, Vec<Diagnostic>);

/// Checks and plans one file; its problems and warnings are returned, not printed.
pub fn plan_file_quietly(cfg: &Config, file: &Path) -> Planned {
    let checked = check_file_with(file, cfg.check, &cfg.overrides);
    if !checked.is_ok() {
        return (Err(checked.diagnostics), checked.warnings);
    }
    (crate::plan::lower::lower_bounded(&checked.program, cfg.numerics, cfg.check.max_nodes), checked.warnings)
}

/// "3 problems", or "100 problems shown, more counted above" past the cap.
fn count_problems(diags: &[Diagnostic]) -> String {
    use crate::diagnostic::Code;
    let shown = diags.iter().filter(|d| d.code() != Code::TooManyProblems).count();
    let s = if shown == 1 { "" } else { "s" };
    if diags.iter().any(|d| d.code() == Code::TooManyProblems) {
        format!("{shown} problem{s} shown, more counted above")
    } else {
        format!("{shown} problem{s}")
    }
}

fn print_warnings(cfg: &Config, warnings: &[Diagnostic]) {
    if !warnings.is_empty() {
        eprint!("{}", render::render(warnings, cfg.color, cfg.width));
        let n = warnings.len();
        eprintln!("warning: {n} likely mistake{} (the plan is made anyway)", if n == 1 { "" } else { "s" });
    }
}

fn print_diagnostics(cfg: &Config, diags: &[Diagnostic]) {
    eprint!("{}", render::render(diags, cfg.color, cfg.width));
    eprintln!("error: {} found", count_problems(diags));
}

fn cmd_check(cfg: &Config, files: &[PathBuf], json: bool) -> i32 {
    // Files are independent: check them in parallel, report in the order given.
    let results: Vec<(PathBuf, Planned)> = files.par_iter().map(|f| (f.clone(), plan_file_quietly(cfg, f))).collect();
    if json {
        return check_json(&results);
    }
    let mut failed = 0;
    for (file, (r, warnings)) in results {
        print_warnings(cfg, &warnings);
        match r {
            Ok(plan) => {
                let w = match warnings.len() {
                    0 => String::new(),
                    1 => ", 1 warning".to_string(),
                    n => format!(", {n} warnings"),
                };
                println!("{}: ok ({} nodes{w})", file.display(), plan.len())
            }
            Err(diags) => {
                failed += 1;
                eprint!("{}", render::render(&diags, cfg.color, cfg.width));
                eprintln!("{}: {}", file.display(), count_problems(&diags));
            }
        }
    }
    if failed > 0 {
        EXIT_INVALID
    } else {
        EXIT_OK
    }
}

/// `check --format json`: `{"format": 1, "files": [{"file", "ok", "nodes",
/// "diagnostics": [...]}]}` on stdout, warnings and errors alike.
fn check_json(results: &[(PathBuf, Planned)]) -> i32 {
    let mut failed = false;
    let files: Vec<serde_json::Value> = results
        .iter()
        .map(|(file, (r, warnings))| {
            let (ok, nodes, errors) = match r {
                Ok(plan) => (true, Some(plan.len()), &[][..]),
                Err(d) => (false, None, &d[..]),
            };
            failed |= !ok;
            let diagnostics: Vec<_> = errors.iter().chain(warnings).map(|d| d.to_json()).collect();
            serde_json::json!({"file": file.display().to_string(), "ok": ok, "nodes": nodes, "diagnostics": diagnostics})
        })
        .collect();
    println!("{}", serde_json::json!({"format": 1, "files": files}));
    if failed {
        EXIT_INVALID
    } else {
        EXIT_OK
    }
}

fn cmd_plan(cfg: &Config, file: &Path, json: bool, dot: bool) -> i32 {
    let plan = match plan_file(cfg, file) {
        Ok(p) => p,
        Err(d) => {
            print_diagnostics(cfg, &d);
            return EXIT_INVALID;
        }
    };
    // Reading the cache never creates it.
    let store = Store::open_existing(&cfg.cache);
    if json {
        println!("{}", serde_json::to_string_pretty(&plan_json(&plan, &store, file)).expect("plan JSON"));
    } else if dot {
        print!("{}", plan_dot(&plan, &store));
    } else {
        let text = plan_text(&plan, &store, file);
        // Settings from the command line are part of what was planned.
        let shown = cfg.overrides.iter().map(|s| format!("--set {s}")).collect::<Vec<_>>().join(" ");
        match (shown.is_empty(), text.split_once('\n')) {
            (false, Some((head, rest))) => print!("{head} with {shown}\n{rest}"),
            _ => print!("{text}"),
        }
    }
    EXIT_OK
}

fn cmd_diff(cfg: &Config, a: &Path, b: &Path, json: bool) -> i32 {
    if a.is_dir() || b.is_dir() {
        return cmd_diff_results(a, b, json);
    }
    // `--set` applies to B: A is the file as written.
    let plain = Config { overrides: vec![], ..cfg.clone() };
    let (pa, pb) = rayon::join(|| plan_file(&plain, a), || plan_file(cfg, b));
    let mut bad = false;
    for r in [&pa, &pb] {
        if let Err(d) = r {
            print_diagnostics(cfg, d);
            bad = true;
        }
    }
    let (Ok(pa), Ok(pb)) = (pa, pb) else { return EXIT_INVALID };
    debug_assert!(!bad);
    let d = diff(&pa, &pb);
    if json {
        println!("{}", serde_json::to_string_pretty(&d).expect("diff JSON"));
    } else {
        print!("{}", render_text(&d, &a.display().to_string(), &b.display().to_string()));
    }
    EXIT_OK
}

/// The study `tandem init` writes.
const STARTER: &str = include_str!("starter.exp");

/// `tandem init DIR`: writes DIR/study.exp, never over an existing file.
fn cmd_init(dir: &Path) -> i32 {
    let path = dir.join("study.exp");
    let written = std::fs::create_dir_all(dir).and_then(|()| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
        f.write_all(STARTER.as_bytes())?;
        f.sync_all()
    });
    match written {
        Ok(()) => {
            println!("wrote {}: a starter study (online against offline IPO on a synthetic world)", path.display());
            println!("next: tandem check {0}; tandem plan {0}; tandem run {0}", path.display());
            EXIT_OK
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            eprintln!("error: {} already exists; tandem init never writes over a study", path.display());
            EXIT_FAILURE
        }
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", path.display());
            EXIT_FAILURE
        }
    }
}

/// `tandem diff` of two results folders: the keys only one run's plan had,
/// and the evaluations whose values moved.
fn cmd_diff_results(a: &Path, b: &Path, json: bool) -> i32 {
    use crate::report::history;
    let mut loaded = vec![];
    for p in [a, b] {
        if !history::is_results_dir(p) {
            eprintln!(
                "error: {} is not a results folder (one `tandem run` wrote, with a {}); diff takes two study files or two results folders",
                p.display(),
                history::RECORD
            );
            return EXIT_USAGE;
        }
        match history::load(p) {
            Ok(r) => loaded.push(r),
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_FAILURE;
            }
        }
    }
    let c = history::compare(&loaded[0], &loaded[1]);
    if json {
        println!("{}", serde_json::to_string_pretty(&c).expect("comparison JSON"));
    } else {
        print!("{}", history::render(&c, a, b));
    }
    EXIT_OK
}

/// The cache key a command's target names: a key prefix, or a study file
/// and a name as its plan prints it (`online@40`, `online[seed=1]@200`; a
/// run's own name means its last checkpoint, where its model is kept).
fn target_key(cfg: &Config, store: &Store, target: &[String]) -> Result<Key, i32> {
    let [file, name] = target else {
        return store.resolve_prefix(&target[0]).map_err(|e| {
            match (&e, store.run_checkpoints(&target[0])) {
                // A run's key: say what it is and where its models are.
                (crate::exec::StoreError::Missing { .. }, Some((run, steps))) => {
                    let list: Vec<String> = steps.iter().map(|(s, k)| format!("step {s} ({})", k.short())).collect();
                    eprintln!(
                        "error: {} is a training run, kept as its checkpoints: {}; show or export one of those keys",
                        run.short(),
                        list.join(", ")
                    );
                }
                _ => eprint!("{}", render::render_one(&e, cfg.color, cfg.width)),
            }
            EXIT_FAILURE
        });
    };
    let plan = plan_file(cfg, Path::new(file)).map_err(|d| {
        print_diagnostics(cfg, &d);
        EXIT_INVALID
    })?;
    let names = plan.names();
    let Some(key) = names.get(name.as_str()).copied() else {
        let known: Vec<&str> = names.keys().map(String::as_str).collect();
        let hint = crate::diagnostic::did_you_mean(name, known.iter().copied())
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        eprintln!("error: `{file}` has no stage named `{name}`{hint} (`tandem plan {file}` lists them)");
        return Err(EXIT_FAILURE);
    };
    // A run is kept as its checkpoints: its name means the last one.
    if let Some(crate::plan::Node { op: crate::plan::Op::Train(t), .. }) = plan.node(&key) {
        let last = format!("{name}@{}", t.length.steps);
        return names.get(&last).copied().ok_or_else(|| {
            eprintln!("error: `{name}` is a run, kept as its checkpoints; name one, e.g. `{last}`");
            EXIT_FAILURE
        });
    }
    Ok(key)
}

fn cmd_show(cfg: &Config, target: &[String], json: bool) -> i32 {
    let store = Store::open_existing(&cfg.cache);
    let key = match target_key(cfg, &store, target) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let m = match store.manifest(&key) {
        Ok(m) => m,
        Err(e) => {
            eprint!("{}", render::render_one(&e, cfg.color, cfg.width));
            return EXIT_FAILURE;
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&m).expect("manifest JSON"));
    } else {
        print!("{}", show_text(&store, &m));
    }
    EXIT_OK
}

#[allow(clippy::too_many_arguments)]
struct RunArgs {
    only: Vec<String>,
    jobs: Option<usize>,
    threads: Option<i32>,
    device: args::DeviceArg,
    dry_run: bool,
    results: PathBuf,
    executor: Option<args::ExecutorArg>,
    profile: Option<PathBuf>,
    snapshot_every: Option<std::time::Duration>,
    tensorboard: Option<PathBuf>,
}

/// Puts the numerics profile into effect before any tensor exists, and
/// gives the device it computes on and the intra-op threads in force. The
/// GPU is the `cuda` profile's: `--device cuda` under another profile is an
/// error, since its results would be keyed as that profile's.
fn activate(cfg: &Config, device: args::DeviceArg, threads: i32) -> Option<(tch::Device, i32)> {
    use crate::plan::op::Numerics;
    if device == args::DeviceArg::Cuda && cfg.numerics != Numerics::Cuda {
        eprintln!(
            "error: --device cuda computes under the `cuda` numerics profile, and this run is `{}`: add `--numerics cuda`",
            cfg.numerics.name()
        );
        return None;
    }
    match crate::exec::numerics::activate(cfg.numerics, threads) {
        Ok(intra) => Some((crate::exec::numerics::device(cfg.numerics), intra)),
        Err(e) => {
            eprintln!("error: {e}");
            None
        }
    }
}

/// The profile named by --profile, else tandem.toml beside the .exp file
/// (absent: defaults).
fn load_profile(cfg: &Config, file: &Path, named: Option<&Path>) -> Option<crate::exec::slurm::Profile> {
    use crate::exec::slurm::Profile;
    let beside = file.parent().unwrap_or(Path::new(".")).join("tandem.toml");
    let path = match named {
        Some(p) => p.to_path_buf(),
        None if beside.is_file() => beside,
        None => return Some(Profile::default()),
    };
    match Profile::load(&path) {
        Ok(p) => Some(p),
        Err(e) => {
            eprint!("{}", render::render_one(e.as_ref(), cfg.color, cfg.width));
            None
        }
    }
}

/// What `tandem run` computes with, resolved once from its arguments, the
/// settings file and the host, and checked before anything is computed.
struct RunSetup {
    plan: Plan,
    profile: crate::exec::slurm::Profile,
    /// One Slurm job per node, or this machine.
    slurm: bool,
    device: tch::Device,
    /// Intra-op threads per node, as the numerics profile allows.
    threads: i32,
    /// Nodes computed at the same time here.
    jobs: usize,
    store: Store,
    /// `results/<file stem>`.
    out_dir: PathBuf,
}

fn cmd_run(cfg: &Config, file: &Path, a: RunArgs) -> i32 {
    let setup = match resolve_run(cfg, file, &a) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let stop = stop_on_signals();
    let progress = crate::exec::progress::Progress::new(false);
    let started = std::time::Instant::now();
    let summary = match execute_run(cfg, file, &setup, &a, &stop, &progress) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if a.dry_run {
        println!("{} to compute, {} cached", summary.ran.len(), summary.cached);
        return EXIT_OK;
    }
    let RunSetup { plan, store, out_dir, .. } = &setup;
    let rows = crate::report::results::eval_rows(plan, store);
    print_summary(&summary, started);
    let unwritten = !write_outputs(cfg, file, (plan, store, &rows, &summary), out_dir, a.tensorboard.as_deref());
    for (name, step) in &summary.stopped {
        println!("  stopped: {name}: its state is saved at step {step}; run again to resume");
    }
    if summary.interrupted {
        return EXIT_STOPPED;
    }
    if summary.failed.is_empty() && summary.skipped.is_empty() && summary.unevictable.is_empty() && !unwritten {
        EXIT_OK
    } else {
        EXIT_FAILURE
    }
}

/// Plans the file, loads the settings, puts the numerics profile into
/// effect and opens the cache; refuses (with the exit code) what would fail
/// only after hours: an unwritable results folder, `--only` naming nothing.
fn resolve_run(cfg: &Config, file: &Path, a: &RunArgs) -> Result<RunSetup, i32> {
    let plan = plan_file(cfg, file).map_err(|d| {
        print_diagnostics(cfg, &d);
        EXIT_INVALID
    })?;
    let profile = load_profile(cfg, file, a.profile.as_deref()).ok_or(EXIT_INVALID)?;
    let slurm = match a.executor {
        Some(args::ExecutorArg::Slurm) => true,
        Some(args::ExecutorArg::Local) => false,
        None => profile.executor == Some(crate::exec::slurm::Executor::Slurm),
    };
    // Budget: jobs × threads fits the cores. One thread per node by default;
    // `portable` always computes a node on one thread (its bytes must not
    // depend on the thread count), so its cores go to more nodes at once.
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let asked = a.threads.unwrap_or(1).max(1);
    let (device, threads) = activate(cfg, a.device, asked).ok_or(EXIT_FAILURE)?;
    if threads != asked {
        eprintln!(
            "note: `{}` computes each node on {threads} thread(s); --threads {asked} runs more nodes at once instead",
            cfg.numerics.name()
        );
    }
    let jobs = a.jobs.unwrap_or((cores / threads as usize).max(1)).max(1);
    let store = Store::open(&cfg.cache).map_err(|e| {
        eprint!("{}", render::render_one(&e, cfg.color, cfg.width));
        EXIT_FAILURE
    })?;
    let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "study".into());
    let out_dir = a.results.join(&stem);
    // Found before hours of computation, not after.
    if let (false, Err(e)) = (a.dry_run, crate::report::results::check_results_dir(&out_dir)) {
        eprintln!("error: cannot write results: {e}");
        return Err(EXIT_FAILURE);
    }
    let unknown: Vec<&String> = a
        .only
        .iter()
        .filter(|o| !plan.graph.node_weights().any(|n| crate::exec::schedule::selected(n, std::slice::from_ref(*o))))
        .collect();
    if !unknown.is_empty() {
        eprintln!(
            "error: --only names no declaration of {}: {}",
            file.display(),
            unknown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        );
        return Err(EXIT_INVALID);
    }
    Ok(RunSetup { plan, profile, slurm, device, threads, jobs, store, out_dir })
}

/// Computes what is missing, as Slurm jobs or here.
fn execute_run(
    cfg: &Config,
    file: &Path,
    setup: &RunSetup,
    a: &RunArgs,
    stop: &std::sync::atomic::AtomicBool,
    progress: &crate::exec::progress::Progress,
) -> Result<crate::exec::summary::Summary, i32> {
    let RunSetup { plan, profile, slurm, device, threads, jobs, store, .. } = setup;
    if !*slurm {
        if !a.dry_run {
            eprintln!(
                "running {} with {jobs} job(s) × {threads} thread(s); cache {}",
                file.display(),
                cfg.cache.display()
            );
        }
        let opts = crate::exec::local::Options {
            device: *device,
            only: a.only.clone(),
            dry_run: a.dry_run,
            jobs: *jobs,
            stop,
            progress,
            snapshot_every: a.snapshot_every,
        };
        return Ok(crate::exec::local::run(plan, store, &opts));
    }
    let exe = std::env::current_exe().map_err(|e| {
        eprintln!("error: cannot find the tandem binary the jobs should run: {e}");
        EXIT_FAILURE
    })?;
    if !a.dry_run {
        eprintln!("running {} on Slurm, one job per node with {threads} thread(s); cache {} (it must be on a filesystem every host shares)", file.display(), cfg.cache.display());
    }
    let opts = crate::exec::slurm::SlurmOptions {
        only: a.only.clone(),
        dry_run: a.dry_run,
        stop,
        progress,
        profile,
        exe,
        threads: *threads,
        numerics: cfg.numerics,
        device: *device,
        snapshot_every: a.snapshot_every,
    };
    crate::exec::slurm::run(plan, store, &opts).map_err(|e| {
        eprintln!("error: {e}");
        EXIT_FAILURE
    })
}

/// The run's account: nodes computed (and where their time went), cached,
/// failed, skipped, resumed, resubmitted, and the wall time.
fn print_summary(summary: &crate::exec::summary::Summary, started: std::time::Instant) {
    let compute = summary.node_seconds();
    println!();
    println!("{:<10} {:>6}   ({compute:.1}s of node time)", "computed", summary.ran.len());
    // Where the node time went: every kind that took any.
    for k in summary.by_kind().iter().filter(|k| k.seconds > 0.0) {
        let share = 100.0 * k.seconds / compute.max(f64::MIN_POSITIVE);
        println!("  {:<20} {:>5} nodes {:>9.1}s  {share:>4.0}%", k.kind, k.nodes, k.seconds);
    }
    println!("{:<10} {:>6}", "cached", summary.cached);
    println!("{:<10} {:>6}", "failed", summary.failed.len());
    println!("{:<10} {:>6}", "skipped", summary.skipped.len());
    if !summary.corrupt.is_empty() {
        println!("{:<10} {:>6}   (evicted and recomputed)", "corrupt", summary.corrupt.len());
    }
    for c in &summary.unevictable {
        eprintln!("error: corrupt cache entry {c}");
    }
    let resumed: Vec<String> =
        summary.ran.iter().filter_map(|r| r.resumed_from.map(|s| format!("{} from step {s}", r.name))).collect();
    if !resumed.is_empty() {
        println!("{:<10} {:>6}   ({})", "resumed", resumed.len(), resumed.join(", "));
    }
    if !summary.resubmitted.is_empty() {
        let nodes: Vec<String> = summary.resubmitted.iter().map(|(n, times)| format!("{n} ×{times}")).collect();
        println!(
            "{:<10} {:>6}   (jobs ended by a time limit or preemption, submitted again: {})",
            "resubmitted",
            summary.resubmitted.len(),
            nodes.join(", ")
        );
    }
    println!("wall time  {:>6.1}s", started.elapsed().as_secs_f64());
    for (name, why, log) in &summary.failed {
        println!("  failed: {name}: {why}\n          log: {}", log.display());
    }
    if !summary.skipped.is_empty() {
        println!("  skipped because an input failed: {}", summary.skipped.join(", "));
    }
}

/// Writes the results of a run: `evals.csv` and the rest of the tables, the
/// report, and TensorBoard's event files where asked. False when any of
/// them could not be written (each failure said on stderr).
fn write_outputs(
    cfg: &Config,
    file: &Path,
    (plan, store, rows, summary): (
        &crate::plan::Plan,
        &Store,
        &[crate::report::results::EvalRow],
        &crate::exec::summary::Summary,
    ),
    out_dir: &Path,
    tensorboard: Option<&Path>,
) -> bool {
    // Checked again: the folder may have changed while the nodes ran.
    let written = crate::report::results::check_results_dir(out_dir)
        .map_err(std::io::Error::other)
        .and_then(|()| crate::report::results::write_csv(out_dir, rows));
    let mut unwritten = false;
    match written {
        Ok(p) => println!("results: {} ({} rows)", p.display(), rows.len()),
        Err(e) => {
            eprintln!("error: could not write results to {}: {e}", out_dir.display());
            unwritten = true;
        }
    }
    if !unwritten {
        match crate::report::study::write_report(out_dir, file, plan, store, rows, summary, &cfg.overrides) {
            Ok((md, html)) => println!("report:  {} and {}", md.display(), html.display()),
            Err(e) => {
                eprintln!("error: could not write the report in {}: {e}", out_dir.display());
                unwritten = true;
            }
        }
    }
    if !unwritten {
        let record = crate::report::history::RunRecord::new(file, plan, &cfg.overrides, cfg.numerics.name());
        match crate::report::history::record(out_dir, &record) {
            Ok(entry) => println!("history: {}", entry.display()),
            Err(e) => {
                eprintln!("error: could not keep these results in {}/history: {e}", out_dir.display());
                unwritten = true;
            }
        }
    }
    if let Some(dir) = tensorboard {
        let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "study".into());
        let runs = crate::report::tensorboard::scalars(plan, store, rows);
        match crate::report::tensorboard::write(dir, &stem, &runs) {
            Ok((root, n)) => println!("tensorboard: {} ({} runs, {n} scalars)", root.display(), runs.len()),
            Err(e) => {
                eprintln!("error: could not write TensorBoard event files in {}: {e}", dir.display());
                unwritten = true;
            }
        }
    }
    !unwritten
}

fn cmd_exec_node(
    cfg: &Config,
    key: &str,
    threads: i32,
    device: args::DeviceArg,
    snapshot_every: Option<std::time::Duration>,
) -> i32 {
    let Some((device, _)) = activate(cfg, device, threads.max(1)) else { return EXIT_FAILURE };
    let store = match Store::open(&cfg.cache) {
        Ok(s) => s,
        Err(e) => {
            eprint!("{}", render::render_one(&e, cfg.color, cfg.width));
            return EXIT_FAILURE;
        }
    };
    // A Slurm time limit or preemption sends SIGTERM: the node saves its
    // state and the job ends with EXIT_STOPPED; the driver submits it again.
    let stop = stop_on_signals();
    use crate::exec::slurm::NodeEnd;
    match crate::exec::slurm::exec_node(&store, key, device, &stop, snapshot_every) {
        NodeEnd::Computed { seconds, resumed_from } => {
            let resumed = resumed_from.map(|s| format!(" (resumed from step {s})")).unwrap_or_default();
            eprintln!("computed {key} in {seconds:.1}s{resumed}");
            EXIT_OK
        }
        NodeEnd::AlreadyDone => {
            eprintln!("{key} was already in the cache");
            EXIT_OK
        }
        NodeEnd::Stopped { saved_at } => {
            match saved_at {
                Some(step) => eprintln!("stopped by a signal; state saved at step {step}"),
                None => eprintln!("stopped by a signal"),
            }
            EXIT_STOPPED
        }
        NodeEnd::Failed(e) => {
            eprintln!("error: {e}");
            EXIT_FAILURE
        }
    }
}

fn cmd_export(cfg: &Config, target: &[String], out: &Path) -> i32 {
    let store = Store::open_existing(&cfg.cache);
    let key = match target_key(cfg, &store, target) {
        Ok(k) => k,
        Err(code) => return code,
    };
    if crate::exec::export::is_model(&store, &key) {
        return match crate::exec::export::export_model(&store, &key, out) {
            Ok(()) => {
                println!("wrote the model {} to {} (a Hugging Face directory)", key.short(), out.display());
                EXIT_OK
            }
            Err(e) => {
                eprint!("{}", render::render_one(&e, cfg.color, cfg.width));
                EXIT_FAILURE
            }
        };
    }
    match crate::exec::export::export(&store, &key, out) {
        Ok(n) => {
            println!("wrote {n} records to {}", out.display());
            EXIT_OK
        }
        Err(e) => {
            eprint!("{}", render::render_one(&e, cfg.color, cfg.width));
            EXIT_FAILURE
        }
    }
}

fn cmd_verify(cfg: &Config, evict: bool) -> i32 {
    let store = Store::open_existing(&cfg.cache);
    let report = match crate::exec::maintenance::verify(&store) {
        Ok(r) => r,
        Err(e) => {
            eprint!("{}", render::render_one(&e, cfg.color, cfg.width));
            return EXIT_FAILURE;
        }
    };
    let mut evicted = 0;
    for (k, what) in &report.corrupt {
        println!("corrupt  {}  {what}", k.short());
        if evict {
            match store.evict(k) {
                Ok(()) => evicted += 1,
                Err(e) => eprintln!("error: could not evict {}: {e}", k.short()),
            }
        }
    }
    for p in &report.stale_tmp {
        println!("stale    {}  (a writer that stopped; `tandem gc --delete` removes it)", p.display());
    }
    for p in &report.resumable {
        let steps: Vec<String> = p.steps.iter().map(|s| s.to_string()).collect();
        println!(
            "saved    {}  training state at step {} (the next run resumes from it)",
            p.node.short(),
            steps.join(", ")
        );
        for (k, what) in &p.damaged {
            println!(
                "damaged  {}  saved state {}: {what} (skipped and removed when the node resumes)",
                p.node.short(),
                k.short()
            );
        }
    }
    println!(
        "{} entries checked, {} corrupt{}",
        report.checked,
        report.corrupt.len(),
        if evict && !report.corrupt.is_empty() { format!(" ({evicted} evicted)") } else { String::new() }
    );
    if report.corrupt.is_empty() {
        EXIT_OK
    } else {
        EXIT_FAILURE
    }
}

fn cmd_gc(cfg: &Config, keep: &[PathBuf], delete: bool, other_profiles: bool) -> i32 {
    let mut plans = vec![];
    for f in keep {
        match plan_file(cfg, f) {
            Ok(p) => plans.push(p),
            Err(d) => {
                print_diagnostics(cfg, &d);
                return EXIT_INVALID;
            }
        }
    }
    // The same experiments under every other profile: their entries are
    // the kept studies' too, computed with other kernels, and are not
    // removed without --other-profiles.
    let mut elsewhere = vec![];
    for numerics in crate::plan::op::Numerics::ALL.into_iter().filter(|n| *n != cfg.numerics) {
        let other = Config { numerics, ..cfg.clone() };
        for f in keep {
            if let (Ok(p), _) = plan_file_quietly(&other, f) {
                elsewhere.push((numerics.name(), p));
            }
        }
    }
    let store = Store::open_existing(&cfg.cache);
    let report = match crate::exec::maintenance::gc_report(&store, &plans, &elsewhere, other_profiles) {
        Ok(r) => r,
        Err(e) => {
            eprint!("{}", render::render_one(&e, cfg.color, cfg.width));
            return EXIT_FAILURE;
        }
    };
    for (k, kind, names, bytes) in &report.unreachable {
        println!(
            "{} {}  {:<18} {:>10} bytes  {}",
            if delete { "removed" } else { "would remove" },
            k.short(),
            kind,
            bytes,
            if names.is_empty() { "-".into() } else { names.join(", ") }
        );
    }
    for (k, kind, profile) in &report.other_profile {
        println!(
            "kept {}  {:<18} a kept experiment's entry under the `{profile}` profile (--other-profiles removes it)",
            k.short(),
            kind
        );
    }
    for p in &report.stale_tmp {
        println!("{} {}  (a writer that stopped)", if delete { "removed" } else { "would remove" }, p.display());
    }
    for (_, dir) in &report.stale_resume {
        println!(
            "{} {}  (saved training state no kept experiment resumes)",
            if delete { "removed" } else { "would remove" },
            dir.display()
        );
    }
    if delete {
        if let Err(e) = crate::exec::maintenance::gc_delete(&store, &report) {
            eprint!("{}", render::render_one(&e, cfg.color, cfg.width));
            return EXIT_FAILURE;
        }
    }
    println!(
        "{} entries kept, {} {} ({} bytes){}",
        report.kept,
        report.unreachable.len(),
        if delete { "removed" } else { "unreachable" },
        report.bytes(),
        if delete { "" } else { "; run with --delete to remove them" }
    );
    EXIT_OK
}

fn cmd_env(cfg: &Config) -> i32 {
    // The profile first: its settings must be in place before any tensor.
    let activated = crate::exec::numerics::activate(cfg.numerics, 1);
    println!("tandem {}", env!("CARGO_PKG_VERSION"));
    if let Err(e) = &activated {
        println!("numerics             {} cannot be honoured here: {e}", cfg.numerics.name());
    }
    for (what, value) in crate::exec::numerics::Host::now().lines() {
        println!("{:<20} {value}", what);
    }
    println!("libtorch threads     {}", tch::get_num_threads());
    println!("libtorch openmp      {}", tch::utils::has_openmp());
    println!("libtorch mkl         {}", tch::utils::has_mkl());
    // The CUDA backend is loaded on demand (exec/cuda_backend.rs); without it
    // libtorch would say "no GPU" on a machine that has one.
    match crate::exec::cuda_backend::load() {
        Ok(path) => println!("cuda backend         {}", path.display()),
        Err(e) => println!("cuda backend         none: {e}"),
    }
    println!("deterministic        {}", crate::exec::numerics::deterministic());
    println!("cuda available       {}", tch::Cuda::is_available());
    println!("cuda devices         {}", tch::Cuda::device_count());
    // A tiny computation proves the library is loaded and working.
    let t = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
    println!("libtorch check       sum([1,2,3]) = {}", t.sum(tch::Kind::Float).double_value(&[]));
    // Digests of reference computations under these settings: two hosts (or
    // two settings) that print the same lines compute the same bytes.
    for (what, digest) in crate::exec::numerics::fingerprint() {
        println!("fingerprint {:<8} {digest}", what);
    }
    if activated.is_err() {
        return EXIT_FAILURE;
    }
    EXIT_OK
}

/// `tandem pretrained DIR`: what the directory holds, and how the model
/// scores the given texts, under the active numerics profile: on the GPU
/// under `cuda`, else on the CPU.
fn cmd_pretrained(cfg: &Config, dir: &Path, texts: &[String], generate: usize) -> i32 {
    if let Err(e) = crate::exec::numerics::activate(cfg.numerics, 1) {
        eprintln!("error: {e}");
        return EXIT_FAILURE;
    }
    let device = crate::exec::numerics::device(cfg.numerics);
    let fail = |e: &crate::ml::hf::HfError| {
        eprint!("{}", render::render_one(e, cfg.color, cfg.width));
        EXIT_FAILURE
    };
    let digest = match crate::ml::hf::content_digest(dir) {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    let model = match crate::ml::hf::Pretrained::load(dir, device) {
        Ok(m) => m,
        Err(e) => return fail(&e),
    };
    let c = &model.config;
    let params: i64 = model.vs.variables().values().map(|t| t.numel() as i64).sum();
    println!("model        {} ({:?} family)", c.model_type, c.family);
    println!(
        "shape        {} layers, width {}, {} heads ({} for keys and values), MLP {}",
        c.layers, c.width, c.heads, c.kv_heads, c.inner
    );
    println!("vocabulary   {} rows; the tokenizer knows {}", c.vocab, model.tokenizer.vocab_size());
    println!("parameters   {params}");
    println!("digest       {digest}");
    println!("device       {}", if device == tch::Device::Cpu { "cpu" } else { "cuda" });
    if c.score_head {
        println!("head         a reward model: a score on the last token that is not the pad token (`pm(..., base: ..., head: \"last\")` judges with it)");
    }
    for t in texts {
        let ids = match model.tokenizer.encode(t) {
            Ok(ids) if ids.len() >= 2 => ids,
            Ok(_) => {
                println!("text         {t:?}: fewer than two tokens, nothing to score");
                continue;
            }
            Err(e) => {
                eprintln!("error: cannot tokenise {t:?}: {e}");
                return EXIT_FAILURE;
            }
        };
        if let Err(e) = model.fits(ids.len() + generate) {
            return fail(&e);
        }
        if let Some(score) = model.score_of(&ids) {
            println!("text         {t:?}: {} tokens, score = {score:.6}", ids.len());
            continue;
        }
        let n = ids.len() as i64;
        let x = tch::Tensor::from_slice(&ids).view([1, n]).to_device(device);
        let lp = tch::no_grad(|| model.token_logprobs(&x, &x.ones_like()));
        let sum = lp.sum(tch::Kind::Double).double_value(&[]);
        println!("text         {t:?}: {n} tokens, log p = {sum:.4} ({:.4} per predicted token)", sum / (n - 1) as f64);
        if generate > 0 {
            let more = tch::no_grad(|| model.greedy(&ids, generate));
            match model.tokenizer.decode(&more) {
                Ok(s) => println!("  greedy     {s:?}"),
                Err(e) => println!("  greedy     cannot be decoded: {e}"),
            }
            let ids: Vec<String> = more.iter().map(i64::to_string).collect();
            println!("  greedy ids {}", ids.join(" "));
        }
    }
    EXIT_OK
}
