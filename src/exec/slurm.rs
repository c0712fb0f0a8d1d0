//! Running a plan on Slurm. tandem drives the cluster's scheduler; it does
//! not become one. Each ready node becomes one `sbatch` job running
//! `tandem exec-node KEY` on a cache folder every host shares; the driver
//! submits a node only once its inputs are in that cache (no `afterok`
//! chains: a dependency on a job Slurm has already forgotten counts as met),
//! watches the queue, and reads success from the cache, not from Slurm.
//!
//! What lives in the cache, under `slurm/`:
//! - `nodes/<key>.json`: the node a job computes (kind, parameters, inputs);
//!   `exec-node` recomputes its key from it, so a job never computes
//!   something other than what its name says;
//! - `nodes/<key>.sh`: the batch script;
//! - `jobs/<key>`: the id of the last job submitted for the node, so that a
//!   driver started again adopts jobs still queued or running instead of
//!   submitting them twice (job names, `tandem-<short key>-<cache>`, cover
//!   the moment between `sbatch` returning and that record being written;
//!   the cache's part keeps a driver from adopting the job of another
//!   cache's driver for the same node, whose result lands in that cache);
//! - `logs/<key>.<job id>.out`: each job's output.
//!
//! Preemption and time limits: Slurm sends SIGTERM before it kills a job
//! (KillWait seconds, or a preemption's GraceTime). `exec-node` then saves
//! the state of the training it runs (`exec/resume.rs`) and exits. When the
//! driver sees a job end by TIMEOUT, PREEMPTED or NODE_FAIL without its
//! entry, it submits the node again, up to `attempts` submissions in all,
//! and the new job resumes from the saved state. The summary says how many
//! times each node was submitted again.
//!
//! The cache's guarantees carry over: entries are committed by rename and
//! each node is computed under an exclusive lock, so the shared filesystem
//! must support `flock` across hosts (NFSv4, Lustre and GPFS do).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::exec::artifacts::ExecError;
use crate::exec::local;
use crate::exec::progress::Progress;
use crate::exec::schedule::{self, is_done};
use crate::exec::store::Store;
use crate::exec::summary::{Ran, Summary};
use crate::plan::{Key, Node, Plan};

/// `tandem.toml`: settings a study keeps beside its .exp files.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Where `tandem run` computes nodes unless `--executor` says otherwise.
    #[serde(default)]
    pub executor: Option<Executor>,
    #[serde(default)]
    pub slurm: SlurmProfile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Executor {
    Local,
    Slurm,
}

/// The `[slurm]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmProfile {
    /// Seconds between looks at the queue.
    #[serde(default = "default_poll")]
    pub poll_seconds: f64,
    /// Extra `sbatch` arguments for every job (e.g. `["--qos=short"]`).
    #[serde(default)]
    pub sbatch_args: Vec<String>,
    /// Resources of every job unless its kind says otherwise.
    #[serde(default)]
    pub default: Resources,
    /// Per node kind (`"run.train"`) or family (`"run"`, `"eval"`, `"model"`).
    #[serde(default)]
    pub kind: BTreeMap<String, Resources>,
    /// Submissions of one node, in all, while its jobs end by a time limit,
    /// preemption or a node failure (each resumes from the saved state).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
}

fn default_attempts() -> u32 {
    5
}

fn default_poll() -> f64 {
    2.0
}

impl Default for SlurmProfile {
    fn default() -> Self {
        SlurmProfile {
            poll_seconds: default_poll(),
            sbatch_args: vec![],
            default: Resources::default(),
            kind: BTreeMap::new(),
            attempts: default_attempts(),
        }
    }
}

/// What one job asks for. Unset fields fall back to `[slurm.default]`, then
/// to tandem's defaults (1 CPU per libtorch thread, 4G, 24 hours, no GPU).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub cpus: Option<u32>,
    pub gpus: Option<u32>,
    pub mem: Option<String>,
    pub time: Option<String>,
    pub partition: Option<String>,
    pub account: Option<String>,
}

impl Resources {
    fn or(&self, other: &Resources) -> Resources {
        Resources {
            cpus: self.cpus.or(other.cpus),
            gpus: self.gpus.or(other.gpus),
            mem: self.mem.clone().or_else(|| other.mem.clone()),
            time: self.time.clone().or_else(|| other.time.clone()),
            partition: self.partition.clone().or_else(|| other.partition.clone()),
            account: self.account.clone().or_else(|| other.account.clone()),
        }
    }
}

/// A profile that failed to load, shown with the offending place in the file.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{path}: {message}")]
#[diagnostic(code(tandem::profile))]
pub struct ProfileError {
    pub path: String,
    pub message: String,
    #[source_code]
    pub src: Option<miette::NamedSource<String>>,
    #[label("here")]
    pub at: Option<miette::SourceSpan>,
}

impl Profile {
    /// Reads a profile; a missing file is an error (the caller decides
    /// whether a default location may be absent).
    pub fn load(path: &Path) -> Result<Profile, Box<ProfileError>> {
        let text = std::fs::read_to_string(path).map_err(|e| ProfileError {
            path: path.display().to_string(),
            message: format!("cannot read it: {e}"),
            src: None,
            at: None,
        })?;
        toml::from_str(&text).map_err(|e| {
            Box::new(ProfileError {
                path: path.display().to_string(),
                message: e.message().to_string(),
                at: e.span().map(|r| r.into()),
                src: Some(miette::NamedSource::new(path.display().to_string(), text.clone())),
            })
        })
    }

    /// Resources for a node kind: the kind, then its family, then the default.
    pub fn resources(&self, kind: &str) -> Resources {
        let s = &self.slurm;
        let family = kind.split('.').next().unwrap_or(kind);
        let specific = s.kind.get(kind).or_else(|| s.kind.get(family)).cloned().unwrap_or_default();
        specific.or(&s.default)
    }
}

pub struct SlurmOptions<'a> {
    pub only: Vec<String>,
    pub dry_run: bool,
    pub stop: &'a std::sync::atomic::AtomicBool,
    pub progress: &'a Progress,
    pub profile: &'a Profile,
    /// The tandem binary the jobs run (it must be reachable from every host).
    pub exe: PathBuf,
    /// libtorch threads per job.
    pub threads: i32,
    /// The profile every job activates (the plan's keys are made under it).
    pub numerics: crate::plan::op::Numerics,
    /// The device every job computes on (passed as `--device cpu|cuda`).
    pub device: tch::Device,
    /// Passed to every job's `exec-node --snapshot-every`.
    pub snapshot_every: Option<Duration>,
}

/// A job the driver waits for.
struct Job {
    id: String,
    since: Instant,
}

/// Job states in which Slurm, not the node, ended the job: the node's saved
/// state lets a new job go on.
fn ended_by_cluster(state: &str) -> bool {
    matches!(state, "TIMEOUT" | "PREEMPTED" | "NODE_FAIL")
}

/// Slurm's job states that mean the job may still produce its result.
fn active(state: &str) -> bool {
    matches!(
        state,
        "PENDING"
            | "RUNNING"
            | "CONFIGURING"
            | "COMPLETING"
            | "SUSPENDED"
            | "REQUEUED"
            | "REQUEUE_HOLD"
            | "REQUEUE_FED"
            | "RESIZING"
            | "SIGNALING"
            | "STAGE_OUT"
    )
}

/// A node's job name in this cache: the node's short key, then the first
/// hex digits of the blake3 of the cache's absolute path. Two studies on two
/// caches (two users' drivers, or two tests) often share nodes: each must
/// adopt only its own jobs.
pub fn job_name(store: &Store, key: &Key) -> String {
    let root = std::path::absolute(store.root()).unwrap_or_else(|_| store.root().to_path_buf());
    let cache = blake3::hash(root.as_os_str().as_encoded_bytes()).to_hex();
    format!("tandem-{}-{}", key.short(), &cache[..8])
}

/// What Slurm's clients print when the controller could not be reached or
/// was too busy to answer: nothing was done, so asking again is safe.
const UNREACHABLE: &[&str] = &[
    "Unable to contact slurm controller",
    "Socket timed out",
    "temporarily unable",
    "Zero Bytes were transmitted",
    "Connection refused",
    "Transport endpoint",
];

/// Runs a Slurm client command, asking again while the controller is
/// unreachable or busy (a restart, a timeout under load): up to 6 tries,
/// 1, 2, 4, 8 and 16 s apart. A read (`any_failure`) is repeated on any
/// failure; a submission only when the message says nothing was done.
fn slurm(what: &str, any_failure: bool, make: impl Fn() -> Command) -> Result<std::process::Output, ExecError> {
    let mut wait = Duration::from_secs(1);
    for attempt in 1.. {
        let out = make().output().map_err(|e| {
            ExecError::Invalid(format!("cannot run {what}: {e} (is Slurm's client installed and on PATH?)"))
        })?;
        let err = String::from_utf8_lossy(&out.stderr);
        let transient = any_failure || UNREACHABLE.iter().any(|m| err.contains(m));
        if out.status.success() || !transient || attempt == 6 {
            return Ok(out);
        }
        std::thread::sleep(wait);
        wait *= 2;
    }
    unreachable!("the loop returns by its sixth try")
}

/// This user's jobs Slurm still knows: id → (name, state).
fn queue() -> Result<Queue, ExecError> {
    let out = slurm("squeue", true, || {
        let mut c = Command::new("squeue");
        c.args(["-h", "--me", "-t", "all", "-o", "%i|%j|%T"]);
        c
    })?;
    if !out.status.success() {
        return Err(ExecError::Invalid(format!("squeue failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.trim().splitn(3, '|');
            Some((f.next()?.to_string(), (f.next()?.to_string(), f.next()?.to_string())))
        })
        .collect())
}

fn dirs(store: &Store) -> Result<(PathBuf, PathBuf, PathBuf), ExecError> {
    let root = store.root().join("slurm");
    let (nodes, jobs, logs) = (root.join("nodes"), root.join("jobs"), root.join("logs"));
    for d in [&nodes, &jobs, &logs] {
        std::fs::create_dir_all(d).map_err(|e| ExecError::Invalid(format!("cannot create {}: {e}", d.display())))?;
    }
    Ok((nodes, jobs, logs))
}

/// Writes `bytes` to `path` by rename, so a reader never sees half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExecError> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| ExecError::Invalid(format!("cannot write {}: {e}", path.display())))
}

/// POSIX shell single-quoting.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A device as `exec-node --device` spells it.
fn device_arg(device: tch::Device) -> &'static str {
    match device {
        tch::Device::Cpu => "cpu",
        _ => "cuda",
    }
}

/// Submits one node; returns the job id.
fn submit(store: &Store, node: &Node, opts: &SlurmOptions) -> Result<String, ExecError> {
    let (nodes_dir, jobs_dir, logs_dir) = dirs(store)?;
    let hex = node.key.hex();
    let spec = serde_json::to_vec_pretty(node).map_err(|e| ExecError::Invalid(format!("cannot encode node: {e}")))?;
    write_atomic(&nodes_dir.join(format!("{hex}.json")), &spec)?;
    let cache = std::path::absolute(store.root()).map_err(|e| ExecError::Invalid(format!("cache path: {e}")))?;
    let script = format!(
        "#!/bin/sh\n# {} {} — written by tandem's Slurm driver\n# exec: Slurm's SIGTERM (time limit, preemption) reaches tandem, which saves its state\nexec {} exec-node --cache {} --numerics {} --threads {} --device {} --snapshot-every {} {}\n",
        node.kind(),
        node.display_name(),
        quote(&opts.exe.display().to_string()),
        quote(&cache.display().to_string()),
        opts.numerics.name(),
        opts.threads,
        device_arg(opts.device),
        opts.snapshot_every.map_or(0.0, |d| d.as_secs_f64()),
        hex
    );
    let script_path = nodes_dir.join(format!("{hex}.sh"));
    write_atomic(&script_path, script.as_bytes())?;
    let r = opts.profile.resources(node.kind());
    let cpus = r.cpus.unwrap_or(opts.threads.max(1) as u32);
    let sbatch = || {
        let mut cmd = Command::new("sbatch");
        cmd.arg("--parsable")
            .arg(format!("--job-name={}", job_name(store, &node.key)))
            .arg(format!("--output={}", logs_dir.join(format!("{hex}.%j.out")).display()))
            .arg(format!("--cpus-per-task={cpus}"))
            .arg(format!("--mem={}", r.mem.as_deref().unwrap_or("4G")))
            .arg(format!("--time={}", r.time.as_deref().unwrap_or("24:00:00")));
        if let Some(p) = &r.partition {
            cmd.arg(format!("--partition={p}"));
        }
        if let Some(a) = &r.account {
            cmd.arg(format!("--account={a}"));
        }
        if let Some(g) = r.gpus.filter(|g| *g > 0) {
            cmd.arg(format!("--gpus={g}"));
        }
        cmd.args(&opts.profile.slurm.sbatch_args).arg(&script_path);
        cmd
    };
    let out = slurm("sbatch", false, sbatch)?;
    if !out.status.success() {
        return Err(ExecError::Invalid(format!(
            "sbatch refused the job: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    // --parsable prints "id" or "id;cluster".
    let id = String::from_utf8_lossy(&out.stdout).trim().split(';').next().unwrap_or_default().to_string();
    if id.is_empty() {
        return Err(ExecError::Invalid("sbatch printed no job id".into()));
    }
    write_atomic(&jobs_dir.join(&hex), id.as_bytes())?;
    Ok(id)
}

/// The job a previous driver left for this node, if Slurm still runs it.
fn adopt(store: &Store, key: &Key, queue: &Queue) -> Option<String> {
    let recorded = std::fs::read_to_string(store.root().join("slurm").join("jobs").join(key.hex())).ok();
    if let Some(id) = recorded.map(|s| s.trim().to_string()) {
        if queue.get(&id).is_some_and(|(_, st)| active(st)) {
            return Some(id);
        }
    }
    let name = job_name(store, key);
    queue.iter().find(|(_, (n, st))| *n == name && active(st)).map(|(id, _)| id.clone())
}

fn log_path(store: &Store, key: &Key, id: &str) -> PathBuf {
    store.root().join("slurm").join("logs").join(format!("{}.{id}.out", key.hex()))
}

/// Slurm's queue as `squeue` lists it: job id → (job name, state).
type Queue = HashMap<String, (String, String)>;

/// Runs the plan's missing nodes as Slurm jobs and waits for them.
pub fn run(plan: &Plan, store: &Store, opts: &SlurmOptions) -> Result<Summary, ExecError> {
    let (nodes, (corrupt, unevictable)) = schedule::prepare(plan, store, &opts.only, opts.dry_run, opts.progress);
    let sched = schedule::schedule(plan, store, &nodes);
    let summary = Summary { cached: sched.cached, corrupt, unevictable, ..Default::default() };
    let mut driver = Driver { plan, store, opts, sched, summary, running: HashMap::new(), submitted: HashMap::new() };
    if opts.dry_run {
        for n in &nodes {
            if driver.sched.todo.contains(&n.key) {
                opts.progress.log(&format!("would submit {:<18} {}", n.kind(), n.display_name()));
                driver.summary.ran.push(Ran::new(n, 0.0));
            }
        }
        return Ok(driver.summary);
    }
    dirs(store)?;
    opts.progress.start(driver.sched.todo.len() as u64);
    let poll = Duration::from_secs_f64(opts.profile.slurm.poll_seconds.max(0.1));
    let mut q = queue()?;
    loop {
        driver.submit_ready(&q);
        if driver.running.is_empty() {
            break;
        }
        if opts.stop.load(Ordering::Relaxed) {
            // The jobs are Slurm's now: they go on, and a driver started
            // again adopts them.
            opts.progress.log(&format!(
                "stopping the driver; {} job(s) stay queued or running (run again to follow them, or scancel them)",
                driver.running.len()
            ));
            driver.summary.interrupted = true;
            break;
        }
        std::thread::sleep(poll);
        q = queue()?;
        driver.collect_finished(&q);
    }
    opts.progress.finish();
    Ok(driver.summary)
}

/// The driver's state between polls of the queue.
struct Driver<'a> {
    plan: &'a Plan,
    store: &'a Store,
    opts: &'a SlurmOptions<'a>,
    sched: schedule::Schedule,
    summary: Summary,
    running: HashMap<Key, Job>,
    /// Submissions per node by this driver.
    submitted: HashMap<Key, u32>,
}

impl Driver<'_> {
    /// Submits (or adopts from the queue) whatever is ready.
    fn submit_ready(&mut self, q: &Queue) {
        let (plan, store, opts) = (self.plan, self.store, self.opts);
        while let Some(key) = self.sched.ready.pop_front() {
            let node = plan.node(&key).expect("planned node");
            if is_done(store, plan, node) {
                self.summary.cached += 1;
                self.sched.release(&key);
                continue;
            }
            if let Some(id) = adopt(store, &key, q) {
                opts.progress.log(&format!(
                    "adopted    {:<18} {} (job {id}, still in the queue)",
                    node.kind(),
                    node.display_name()
                ));
                self.running.insert(key, Job { id, since: Instant::now() });
                continue;
            }
            match submit(store, node, opts) {
                Ok(id) => {
                    opts.progress.log(&format!("submitted  {:<18} {} (job {id})", node.kind(), node.display_name()));
                    *self.submitted.entry(key).or_default() += 1;
                    self.running.insert(key, Job { id, since: Instant::now() });
                }
                Err(e) => {
                    opts.progress.log(&format!("failed     {} {}: {e}", node.kind(), node.display_name()));
                    self.summary.failed.push((node.display_name(), e.to_string(), store.root().join("slurm")));
                    let skipped = self.sched.fail(plan, &key);
                    self.summary.skipped.extend(skipped);
                }
            }
        }
    }

    /// Every job no longer active in the queue: done, resubmitted when the
    /// cluster ended it and attempts remain, or failed.
    fn collect_finished(&mut self, q: &Queue) {
        let mut finished: Vec<Key> = self
            .running
            .iter()
            .filter(|(_, j)| !q.get(&j.id).is_some_and(|(_, st)| active(st)))
            .map(|(k, _)| *k)
            .collect();
        finished.sort();
        for key in finished {
            let job = self.running.remove(&key).expect("running job");
            let node = self.plan.node(&key).expect("planned node");
            if is_done(self.store, self.plan, node) {
                self.done(node, &job);
                continue;
            }
            let state = q.get(&job.id).map(|(_, s)| s.clone()).unwrap_or_else(|| "gone from the queue".into());
            let attempts = self.submitted.get(&key).copied().unwrap_or(1);
            if ended_by_cluster(&state) && attempts < self.opts.profile.slurm.attempts.max(1) {
                if let Some(id) = self.resubmit(node, &job, &state, attempts) {
                    self.running.insert(key, Job { id, since: Instant::now() });
                    continue;
                }
            }
            self.failed(node, &job, &state, attempts);
        }
    }

    fn done(&mut self, node: &Node, job: &Job) {
        // Node time as the job measured it where the entry records it; a
        // training run's checkpoints do not, so there the time since
        // submission (queueing included) stands in.
        let secs = self
            .store
            .manifest(&node.key)
            .map(|m| m.compute_seconds)
            .unwrap_or_else(|_| job.since.elapsed().as_secs_f64());
        self.opts.progress.log(&format!(
            "done       {:<18} {} (job {}, {secs:.1}s)",
            node.kind(),
            node.display_name(),
            job.id
        ));
        self.opts.progress.advance();
        self.summary.ran.push(Ran::new(node, secs));
        self.sched.release(&node.key);
    }

    /// Submits a node the cluster ended once more (it resumes from its saved
    /// state); the new job's id, or None when submitting failed.
    fn resubmit(&mut self, node: &Node, job: &Job, state: &str, attempts: u32) -> Option<String> {
        let opts = self.opts;
        match submit(self.store, node, opts) {
            Ok(id) => {
                opts.progress.log(&format!(
                    "resubmitted {:<17} {} (job {} ended {state}; job {id} resumes from the saved state, submission {} of at most {})",
                    node.kind(),
                    node.display_name(),
                    job.id,
                    attempts + 1,
                    opts.profile.slurm.attempts
                ));
                self.submitted.insert(node.key, attempts + 1);
                match self.summary.resubmitted.iter_mut().find(|(n, _)| *n == node.display_name()) {
                    Some((_, times)) => *times += 1,
                    None => self.summary.resubmitted.push((node.display_name(), 1)),
                }
                Some(id)
            }
            Err(e) => {
                opts.progress.log(&format!("could not submit {} again: {e}", node.display_name()));
                None
            }
        }
    }

    /// A job that ended without a result: the failure, with its log's last
    /// words (they say why far better than its state), and what it skips.
    fn failed(&mut self, node: &Node, job: &Job, state: &str, attempts: u32) {
        let log = log_path(self.store, &node.key, &job.id);
        let mut why = if ended_by_cluster(state) {
            format!("Slurm job {} ended ({state}) without a result, after {attempts} submission(s)", job.id)
        } else {
            format!("Slurm job {} ended ({state}) without a result", job.id)
        };
        if let Some(tail) = log_tail(&log, 12) {
            why.push_str(&format!("; the end of its log:\n{tail}"));
        }
        self.opts.progress.log(&format!(
            "failed     {} {}: {why}\n           log: {}",
            node.kind(),
            node.display_name(),
            log.display()
        ));
        self.summary.failed.push((node.display_name(), why, log));
        let skipped = self.sched.fail(self.plan, &node.key);
        self.summary.skipped.extend(skipped);
    }
}

/// The last `lines` lines of a job's log, indented, if it has any.
fn log_tail(path: &Path, lines: usize) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if all.is_empty() {
        return None;
    }
    Some(
        all[all.len().saturating_sub(lines)..]
            .iter()
            .map(|l| format!("             | {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// How `exec-node` ended.
pub enum NodeEnd {
    Computed {
        seconds: f64,
        resumed_from: Option<i64>,
    },
    AlreadyDone,
    /// A signal: the state is saved (at a step, for a training node).
    Stopped {
        saved_at: Option<i64>,
    },
    Failed(String),
}

/// `tandem exec-node KEY`: computes the node a driver wrote for a job.
pub fn exec_node(
    store: &Store,
    key_hex: &str,
    device: tch::Device,
    stop: &std::sync::atomic::AtomicBool,
    snapshot_every: Option<Duration>,
) -> NodeEnd {
    let node = match job_node(store, key_hex) {
        Ok(n) => n,
        Err(e) => return NodeEnd::Failed(e),
    };
    let mut plan = Plan::default();
    plan.add(node.clone());
    // No terminal in a batch job: log lines go to stderr, i.e. the job's output.
    let progress = Progress::new(false);
    let opts =
        local::Options { device, only: vec![], dry_run: false, jobs: 1, stop, progress: &progress, snapshot_every };
    match local::run_one(&plan, store, &opts, &node) {
        Ok(local::Outcome::Computed { seconds, resumed_from }) => NodeEnd::Computed { seconds, resumed_from },
        Ok(local::Outcome::AlreadyDone) => NodeEnd::AlreadyDone,
        Err((ExecError::Interrupted, _, saved_at)) => NodeEnd::Stopped { saved_at },
        Err((e, log, _)) => NodeEnd::Failed(format!("{e} (log: {})", log.display())),
    }
}

/// The node a driver wrote for a job, checked against its key.
fn job_node(store: &Store, key_hex: &str) -> Result<Node, String> {
    let key = Key::from_hex(key_hex).ok_or_else(|| format!("{key_hex:?} is not a node key (64 hex digits)"))?;
    let path = store.root().join("slurm").join("nodes").join(format!("{}.json", key.hex()));
    let text = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let node: Node = serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    // The file must describe the node its name promises.
    if node.key != key || node.op.key() != key {
        return Err(format!(
            "{} does not describe node {}: its parameters give another key",
            path.display(),
            key.short()
        ));
    }
    if !node.op.is_computed() {
        return Err(format!("node {} is a {}, which no job computes", key.short(), node.kind()));
    }
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_name_is_the_nodes_and_its_caches() {
        // Two caches share a node (the same world in two studies): a driver
        // adopting jobs by name must not take the other cache's job, whose
        // result lands in the other cache (the Slurm tests, run side by side,
        // once failed so: "job 1 ended (COMPLETED) without a result").
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Store::open(dir.path().join("a")).unwrap(), Store::open(dir.path().join("b")).unwrap());
        let key = Key::from_hex(&"ab".repeat(32)).unwrap();
        let other = Key::from_hex(&"cd".repeat(32)).unwrap();
        assert_eq!(job_name(&a, &key), job_name(&Store::open(dir.path().join("a")).unwrap(), &key));
        assert_ne!(job_name(&a, &key), job_name(&b, &key));
        assert_ne!(job_name(&a, &key), job_name(&a, &other));
        assert!(job_name(&a, &key).starts_with(&format!("tandem-{}-", key.short())));
    }
}
