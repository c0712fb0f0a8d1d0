//! `tandem run --executor slurm` against a real single-host Slurm cluster
//! (scripts/slurm/up.sh installs and starts munged, slurmctld and slurmd;
//! this needs root). The same micro study through Slurm gives artifacts
//! bit-identical to a local run's, survives its driver being killed with
//! every node computed by exactly one job, and a failing job stops only its
//! dependents and is reported with its Slurm log.
//!
//! Without root the test says so and passes, unless TANDEM_REQUIRE_SLURM=1
//! (set by .ci/run), which turns that into a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{artifacts, FAILING_STUDY as FAILING, MICRO_STUDY as STUDY};

const PROFILE: &str = r#"
executor = "slurm"

[slurm]
poll_seconds = 0.3

[slurm.default]
mem = "1G"
time = "00:20:00"

[slurm.kind."run.train"]
mem = "2G"
"#;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tandem(cache: &Path, args: &[&str]) -> Command {
    common::Tandem::new().cache(cache).args(args).command()
}

fn output(mut c: Command) -> (bool, String) {
    let out = c.output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The tests of this file share one cluster: the first to arrive starts it
/// (unless it was already up), the last to leave stops it (only if a test
/// started it). Without the count, one test's teardown cancels the jobs of
/// another still running.
static CLUSTER_USERS: std::sync::Mutex<(usize, bool)> = std::sync::Mutex::new((0, false));

/// One test's hold on the shared cluster; dropping it releases the hold.
struct Cluster;

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut users = CLUSTER_USERS.lock().unwrap_or_else(|e| e.into_inner());
        users.0 -= 1;
        if users.0 == 0 && users.1 {
            let _ = Command::new("bash").arg(repo().join("scripts/slurm/down.sh")).status();
            users.1 = false;
        }
    }
}

fn cluster_up() -> bool {
    Command::new("sinfo").args(["-h", "-o", "%T"]).output().is_ok_and(|o| {
        o.status.success()
            && String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == "idle" || l.trim() == "mixed")
    })
}

fn start_cluster() -> Option<Cluster> {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        assert!(
            std::env::var_os("TANDEM_REQUIRE_SLURM").is_none(),
            "TANDEM_REQUIRE_SLURM is set, but starting a Slurm cluster needs root"
        );
        eprintln!("SKIPPED: starting a single-host Slurm cluster needs root (set TANDEM_REQUIRE_SLURM=1 to make this a failure)");
        return None;
    }
    let mut users = CLUSTER_USERS.lock().unwrap_or_else(|e| e.into_inner());
    if users.0 == 0 {
        let was_up = cluster_up();
        let status =
            Command::new("bash").arg(repo().join("scripts/slurm/up.sh")).stdout(Stdio::null()).status().unwrap();
        assert!(status.success(), "scripts/slurm/up.sh failed");
        users.1 = !was_up;
    }
    users.0 += 1;
    Some(Cluster)
}

fn write_study(dir: &Path, name: &str, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("tandem.toml"), PROFILE).unwrap();
    let f = dir.join(name);
    std::fs::write(&f, text).unwrap();
    f
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn a_study_on_slurm_matches_a_local_run_and_survives_its_driver_being_killed() {
    let Some(_cluster) = start_cluster() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let study = write_study(&tmp.path().join("study"), "micro.exp", STUDY);
    let file = study.to_str().unwrap();

    // Locally, for reference (`--executor local` overrides the profile).
    let local = tmp.path().join("cache-local");
    let (ok, text) = output(tandem(
        &local,
        &["run", file, "--executor", "local", "--results", tmp.path().join("r1").to_str().unwrap()],
    ));
    assert!(ok, "{text}");

    // On Slurm: kill the driver once a few jobs are in, then start it again.
    let shared = tmp.path().join("cache-slurm");
    let driver_log = tmp.path().join("driver.log");
    let mut driver = tandem(&shared, &["run", file, "--results", tmp.path().join("r2").to_str().unwrap()])
        .stdout(std::fs::File::create(&driver_log).unwrap())
        .stderr(std::fs::File::options().append(true).open(&driver_log).unwrap())
        .spawn()
        .unwrap();
    let jobs = shared.join("slurm/jobs");
    let t0 = Instant::now();
    while count_files(&jobs) < 3 && t0.elapsed() < Duration::from_secs(120) {
        if let Some(status) = driver.try_wait().unwrap() {
            panic!(
                "the driver ended ({status}) before it was killed, with {} job files:\n{}",
                count_files(&jobs),
                std::fs::read_to_string(&driver_log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(count_files(&jobs) >= 3, "no jobs submitted within two minutes");
    driver.kill().unwrap(); // SIGKILL: no chance to clean up
    driver.wait().unwrap();
    let (ok, text) = output(tandem(&shared, &["run", file, "--results", tmp.path().join("r2").to_str().unwrap()]));
    assert!(ok, "{text}");
    assert!(text.contains("failed          0") && text.contains("skipped         0"), "{text}");

    // Bit-identical artifacts, a clean verify, one job per node.
    assert_eq!(artifacts(&study, &local), artifacts(&study, &shared));
    let (ok, text) = output(tandem(&shared, &["verify"]));
    assert!(ok && text.contains(" 0 corrupt"), "{text}");
    let mut per_node = std::collections::BTreeMap::<String, usize>::new();
    for e in std::fs::read_dir(shared.join("slurm/logs")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        *per_node.entry(name.split('.').next().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(per_node.len(), count_files(&jobs), "every submitted node has its log");
    assert!(per_node.values().all(|&n| n == 1), "a node was submitted twice: {per_node:?}");

    // A failing job: reported with its Slurm log, only its dependents skipped.
    let failing = write_study(&tmp.path().join("failing"), "failing.exp", FAILING);
    let cache = tmp.path().join("cache-failing");
    let (ok, text) = output(tandem(
        &cache,
        &["run", failing.to_str().unwrap(), "--results", tmp.path().join("r3").to_str().unwrap()],
    ));
    assert!(!ok, "{text}");
    assert!(text.contains("failed: bad") && text.contains("slurm/logs/"), "{text}");
    assert!(
        text.contains("skipped because an input failed: k.samples(bad@5), k(bad@5), k.samples(bad@10), k(bad@10)"),
        "{text}"
    );
    assert!(text.contains("done       run.train          good"), "{text}");
    let log = text
        .lines()
        .find(|l| l.trim_start().starts_with("log:") && l.contains("slurm/logs/"))
        .unwrap()
        .trim()
        .trim_start_matches("log:")
        .trim()
        .to_string();
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("error:"), "the job's own error is in its Slurm log:\n{log_text}");
}

/// The profile of the time-limit test: a preference model's job may run one
/// minute (Slurm's smallest limit; it acts within 30 s after it).
const SHORT_LIMIT_PROFILE: &str = r#"
executor = "slurm"

[slurm]
poll_seconds = 0.5
attempts = 6

[slurm.default]
mem = "1G"
time = "00:20:00"

[slurm.kind."model.pm"]
time = "1"
"#;

fn pm_study(steps: u64) -> String {
    format!(
        "world w = summarize(seed: 2, vocab: 24, prompt_len: 6, response_len: 8)\n\
         dataset d = generate(w, pairs: 400)\n\
         model judge = pm(d, layers: 2, width: 32, heads: 2, steps: {steps}, batch: 32, lr: 3e-4)\n"
    )
}

#[test]
fn a_job_past_its_time_limit_is_submitted_again_and_resumes_to_the_bits_of_a_local_run() {
    let Some(_cluster) = start_cluster() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // Size the training to about 110 s on this machine: past the 90 s by
    // which the one-minute limit has surely acted (slurmctld enforces limits
    // every 30 s, so 60–90 s in), and short enough that the job submitted
    // again finishes within its own minute.
    let probe = write_study(&tmp.path().join("probe"), "probe.exp", &pm_study(100));
    let probe_cache = tmp.path().join("cache-probe");
    let (ok, text) = output(tandem(
        &probe_cache,
        &["run", probe.to_str().unwrap(), "--executor", "local", "--results", tmp.path().join("r0").to_str().unwrap()],
    ));
    assert!(ok, "{text}");
    let checked = tandem::check::check_file(&probe, Default::default());
    let plan = tandem::plan::lower::lower(&checked.program).unwrap();
    let per_step =
        tandem::exec::Store::open_existing(&probe_cache).manifest(&plan.names()["judge"]).unwrap().compute_seconds
            / 100.0;
    // The probe may have run slower than the training will (other tests share
    // the cores), so a training that ends before the limit is tried again at
    // twice the size; a limit that never stops it fails the test.
    for seconds in [110.0, 220.0] {
        let steps = ((seconds / per_step) as u64).max(200);
        let dir = tmp.path().join(format!("study-{steps}"));
        let study = write_study(&dir, "long.exp", &pm_study(steps));
        std::fs::write(dir.join("tandem.toml"), SHORT_LIMIT_PROFILE).unwrap();
        let file = study.to_str().unwrap();
        // The local reference alongside, on the other core.
        let local = dir.join("cache-local");
        let mut reference =
            tandem(&local, &["run", file, "--executor", "local", "--results", dir.join("r1").to_str().unwrap()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
        // Saving only on a signal: whatever a stopped job keeps, SIGTERM saved.
        let shared = dir.join("cache-slurm");
        let (ok, text) = output(tandem(
            &shared,
            &["run", file, "--snapshot-every", "0", "--results", dir.join("r2").to_str().unwrap()],
        ));
        assert!(ok, "{text}");
        assert!(text.contains("failed          0"), "{text}");
        if !text.contains("ended TIMEOUT") {
            eprintln!("{steps} steps ended before the limit stopped them; trying again at twice the size");
            let _ = reference.kill();
            let _ = reference.wait();
            continue;
        }
        assert!(text.contains("resubmitted"), "{text}");
        assert!(text.contains("(jobs ended by a time limit or preemption, submitted again: judge ×"), "{text}");
        let out = reference.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(artifacts(&study, &local), artifacts(&study, &shared));
        // Each stopped job saved its state on SIGTERM and said so in its log.
        let logs: Vec<String> = std::fs::read_dir(shared.join("slurm/logs"))
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .filter(|t| t.contains("model.pm"))
            .collect();
        assert!(logs.len() >= 2, "{logs:?}");
        assert!(logs.iter().any(|l| l.contains("stopped by a signal; state saved at step")), "{logs:?}");
        assert!(logs.iter().any(|l| l.contains("resumed from step")), "{logs:?}");
        eprintln!("{steps} steps; {} jobs for the preference model", logs.len());
        return;
    }
    panic!("the one-minute limit never stopped the training");
}
