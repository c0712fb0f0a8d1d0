//! Progress for people: an overall bar (nodes) and a bar per running node
//! (steps, rate, ETA), with log lines printed above them. Without a terminal
//! the bars are hidden and log lines go to stderr as plain text.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::exec::estimate::{describe, Estimate};
use crate::plan::Key;

/// Seconds between plain progress lines when stderr is not a terminal
/// (Slurm logs, CI, `nohup`); `TANDEM_PROGRESS_SECONDS` sets another.
pub const PLAIN_EVERY_SECONDS: f64 = 30.0;

pub struct Progress {
    multi: MultiProgress,
    overall: ProgressBar,
    terminal: bool,
    quiet: bool,
    shared: Arc<Shared>,
    ticker: Mutex<Option<(std::thread::JoinHandle<()>, Arc<AtomicBool>)>>,
}

/// What the ticker reads: the running nodes and the estimate of the rest.
#[derive(Default)]
struct Shared {
    estimate: Mutex<Option<(Estimate, usize)>>,
    running: Mutex<BTreeMap<u64, (String, Key, ProgressBar)>>,
    next: AtomicU64,
}

pub struct NodeBar {
    bar: ProgressBar,
    id: u64,
    shared: Arc<Shared>,
}

impl NodeBar {
    pub fn set(&self, done: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(done);
    }

    pub fn done(&self) {
        self.bar.finish_and_clear();
        self.shared.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

impl Shared {
    /// The share of a running node's steps already done.
    fn share_done(&self, key: &Key) -> f64 {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running
            .values()
            .find(|(_, k, _)| k == key)
            .map(|(_, _, b)| b.length().filter(|&l| l > 0).map_or(0.0, |l| b.position() as f64 / l as f64))
            .unwrap_or(0.0)
    }

    /// "about 2m 30s left", or nothing before an estimate is set.
    fn eta(&self) -> Option<String> {
        let e = self.estimate.lock().unwrap_or_else(|p| p.into_inner());
        let (estimate, jobs) = e.as_ref()?;
        Some(describe(estimate.left(|k| self.share_done(k)), *jobs))
    }

    /// The running nodes and how far each is: `sft 350/1000`.
    fn running_list(&self) -> String {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let items: Vec<String> = running
            .values()
            .map(|(label, _, b)| match b.length() {
                Some(l) if l > 0 => format!("{label} {}/{l}", b.position()),
                _ => label.clone(),
            })
            .collect();
        items.join(", ")
    }
}

impl Progress {
    /// `quiet` prints nothing at all (tests).
    pub fn new(quiet: bool) -> Progress {
        let terminal = !quiet && std::io::stderr().is_terminal();
        let multi = MultiProgress::with_draw_target(if terminal {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} nodes  {elapsed_precise}  {msg}")
                .expect("template")
                .progress_chars("=> "),
        );
        overall.set_prefix("tandem");
        Progress { multi, overall, terminal, quiet, shared: Arc::default(), ticker: Mutex::new(None) }
    }

    /// The run begins: `nodes` to compute. Starts the ticker, which keeps
    /// the overall bar's time left current on a terminal and, elsewhere,
    /// prints a plain progress line every [`PLAIN_EVERY_SECONDS`].
    pub fn start(&self, nodes: u64) {
        self.overall.set_length(nodes);
        if self.quiet {
            return;
        }
        let every = std::env::var("TANDEM_PROGRESS_SECONDS")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .unwrap_or(PLAIN_EVERY_SECONDS);
        let every = if self.terminal { 1.0 } else { every };
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, overall, terminal, flag) =
            (self.shared.clone(), self.overall.clone(), self.terminal, stop.clone());
        let began = Instant::now();
        let handle = std::thread::spawn(move || {
            let mut last = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if last.elapsed().as_secs_f64() < every || flag.load(Ordering::Relaxed) {
                    continue;
                }
                last = Instant::now();
                let eta = shared.eta();
                if terminal {
                    overall.set_message(eta.unwrap_or_default());
                } else {
                    eprintln!("{}", plain_line(&overall, &shared, began.elapsed(), eta));
                }
            }
        });
        *self.ticker.lock().unwrap_or_else(|p| p.into_inner()) = Some((handle, stop));
    }

    /// What the rest of the run is expected to cost, and how many nodes
    /// compute at once: the time left is shown from here on.
    pub fn estimate(&self, estimate: Estimate, jobs: usize) {
        *self.shared.estimate.lock().unwrap_or_else(|p| p.into_inner()) = Some((estimate, jobs));
    }

    /// A node finished in `seconds`: one more done, and its kind's rate learnt.
    pub fn finished(&self, key: &Key, seconds: f64) {
        if let Some((e, _)) = self.shared.estimate.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            e.finished(key, seconds);
        }
    }

    pub fn advance(&self) {
        self.overall.inc(1);
    }

    pub fn node(&self, label: &str, key: Key) -> NodeBar {
        let bar = self.multi.add(ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template("  {msg:40!} [{bar:20}] {pos}/{len} {per_sec} eta {eta}")
                .expect("template")
                .progress_chars("=> "),
        );
        bar.set_message(label.to_string());
        let id = self.shared.next.fetch_add(1, Ordering::Relaxed);
        self.shared.running.lock().unwrap_or_else(|p| p.into_inner()).insert(id, (label.to_string(), key, bar.clone()));
        NodeBar { bar, id, shared: self.shared.clone() }
    }

    pub fn log(&self, line: &str) {
        if self.quiet {
            return;
        }
        if self.terminal {
            let _ = self.multi.println(line);
        } else {
            eprintln!("{line}");
        }
    }

    pub fn finish(&self) {
        if let Some((handle, stop)) = self.ticker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            stop.store(true, Ordering::Relaxed);
            let _ = handle.join();
        }
        self.overall.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some((handle, stop)) = self.ticker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            stop.store(true, Ordering::Relaxed);
            let _ = handle.join();
        }
    }
}

/// `progress  37/294 nodes, 1m 12s in; about 2m 30s left; running: sft 350/1000, ...`
fn plain_line(overall: &ProgressBar, shared: &Shared, elapsed: Duration, eta: Option<String>) -> String {
    let mut line = format!(
        "progress   {}/{} nodes, {} in",
        overall.position(),
        overall.length().unwrap_or(0),
        humantime::format_duration(Duration::from_secs(elapsed.as_secs()))
    );
    if let Some(eta) = eta {
        line += &format!("; {eta}");
    }
    let running = shared.running_list();
    if !running.is_empty() {
        line += &format!("; running: {running}");
    }
    line
}
