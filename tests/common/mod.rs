//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;

use tandem::check::{check_file, CheckOptions};
use tandem::plan::lower::lower;
use tandem::plan::Plan;

// The binary as the tests run it: `Tandem::new().args([...]).run().success()`.
mod command;
#[allow(unused_imports)] // each test binary uses some of them
pub use command::{Ran, Tandem};

// Planning text and files: the language crate's test helpers, shared.
#[path = "../../crates/tandem-lang/tests/common/mod.rs"]
mod lang;
#[allow(unused_imports)] // each test binary uses some of them
pub use lang::*;

/// (name, files but the log) of every node of a study's plan that has an
/// entry: what "bit-identical artifacts" compares.
pub fn artifacts(file: &Path, cache: &Path) -> Vec<(String, Vec<tandem::exec::store::FileEntry>)> {
    let checked = check_file(file, CheckOptions::default());
    let plan = lower(&checked.program).unwrap();
    let store = tandem::exec::Store::open_existing(cache);
    plan.ordered()
        .into_iter()
        .filter(|n| !matches!(n.op, tandem::plan::Op::Train(_) | tandem::plan::Op::Figure(_)))
        .map(|n| {
            let m = store.manifest(&n.key).unwrap_or_else(|e| panic!("{}: {e}", n.display_name()));
            (n.display_name(), m.files.into_iter().filter(|f| f.name != "log.txt").collect())
        })
        .collect()
}

// Studies shared by the executor tests (tests/executor.rs, tests/slurm.rs):
// the same text run locally, killed, concurrently or through Slurm.

/// The paper's pipeline in miniature: about 20 s on one core.
pub const MICRO_STUDY: &str = include_str!("../data/micro_study.exp");

/// A study with one failing node: a judge from another world (another
/// vocabulary) cannot label the policy's samples, so `bad` fails and its
/// evaluations are skipped while `good` completes.
pub const FAILING_STUDY: &str = r#"
world w = summarize(seed: 2, vocab: 24, prompt_len: 6, response_len: 8)
world other = helpful(seed: 3, vocab: 30, prompt_len: 6, response_len: 8)
dataset d = generate(w, pairs: 200)
dataset d_other = generate(other, pairs: 200)
model sft = sft(d, layers: 1, width: 16, heads: 2, steps: 20)
model pm_w = pm(d, layers: 1, width: 16, heads: 2, steps: 20)
model pm_other = pm(d_other, layers: 1, width: 16, heads: 2, steps: 20)
run good = train(sft, loss: ipo(), sampler: online(judge: pm_w), steps: 10, save_every: 5, batch: 8)
run bad = train(sft, loss: ipo(), sampler: online(judge: pm_other), steps: 10, save_every: 5, batch: 8)
eval k = kl(policies: [good, bad], prompts: 16, at: [5, 10])
"#;

/// Runs a whole plan on this machine's CPU under `portable` numerics, as
/// `tandem run` would, and asserts that nothing failed or was skipped.
pub fn run_portable(plan: &Plan, store: &tandem::exec::Store, jobs: usize) -> tandem::exec::summary::Summary {
    tandem::exec::numerics::activate(tandem::plan::op::Numerics::Portable, 1).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let progress = tandem::exec::progress::Progress::new(true);
    let s = tandem::exec::local::run(
        plan,
        store,
        &tandem::exec::local::Options {
            device: tch::Device::Cpu,
            only: vec![],
            dry_run: false,
            jobs,
            stop: &stop,
            progress: &progress,
            snapshot_every: None,
        },
    );
    assert!(s.failed.is_empty() && s.skipped.is_empty(), "{:?} {:?}", s.failed, s.skipped);
    s
}
