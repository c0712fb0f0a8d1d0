//! Executing a training run: resume from the latest checkpoint at or below
//! the target step, train, and save a checkpoint every `save_every` steps and
//! at the target.
//!
//! A run's key leaves out its length, and everything a step does is a
//! function of (seed, step) and the saved state (parameters, both Adam
//! moments and its step count, the data stream so far), so a run resumed
//! from step k — after a crash, or because a longer run was asked for — is
//! bit-identical to one that never stopped, on the same device and thread
//! count.

use tch::Tensor;

use crate::exec::artifacts::{self as art, ExecError, MetricRow};
use crate::exec::divergence;
use crate::exec::node_log::NodeLog;
use crate::exec::nodes::{prompt_pool, Ctx};
use crate::exec::reference;
use crate::exec::resume::Resume;
use crate::exec::store::Staging;
use crate::ml::adam::Adam;
use crate::ml::data::Pairs;
use crate::ml::loss::Loss;
use crate::ml::policy::Policy;
use crate::ml::sampler;
use crate::ml::train;
use crate::plan::op::{self, checkpoint_key, LogProb, Op, Sampler, TrainSpec, TrainingData};
use crate::plan::{Key, Node};

// One value per training run, never copied around: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Source {
    Offline(Pairs),
    Online { judge: crate::ml::preference::PreferenceModel, pool: Tensor, temperature: f64 },
    Replay { stream: Pairs, order: Vec<usize> },
}

fn loss_of(spec: &TrainSpec) -> Loss {
    match spec.loss {
        op::Loss::Ipo { beta } => Loss::Ipo { beta },
        op::Loss::Dpo { beta } => Loss::Dpo { beta },
        op::Loss::Slic { beta } => Loss::Slic { beta },
        op::Loss::Bo2 => Loss::Bo2,
    }
}

/// The checkpoint node written at `step` of a run.
fn checkpoint_node(run: &Node, step: i64) -> Node {
    let mut ck =
        Node::new(Op::Checkpoint { run: run.key, step }, run.names.iter().filter_map(|n| n.at_step(step)).collect());
    // The run itself has no entry (it is keyed without its length), so
    // its inputs are recorded here too: `show` and `export` follow them.
    ck.inputs.extend(run.inputs.iter().map(|(p, k)| (format!("run.{p}"), *k)));
    ck
}

/// The largest step ≤ `target` with a saved checkpoint (0 if none).
pub fn latest_checkpoint(ctx: &Ctx, run: &Key, target: i64) -> i64 {
    (1..=target).rev().find(|&s| ctx.store.contains(&checkpoint_key(run, s))).unwrap_or(0)
}

/// Trains the run `node` (whose op is `spec`) to `spec.length.steps`,
/// saving every `save_every` steps and at every required step.
pub fn train_run(ctx: &Ctx, node: &Node, spec: &TrainSpec, log: &NodeLog) -> Result<(), ExecError> {
    let target = spec.length.steps;
    let save_every = spec.length.save_every.max(1);
    let seed = spec.seed;
    let batch = spec.batch as usize;
    let lr = spec.lr;
    let mean = spec.logprob == LogProb::Mean;
    let loss = loss_of(spec);
    let source = open_source(ctx, node, spec)?;
    let online = matches!(source, Source::Online { .. });
    // The reference: log-probs computed ahead for fixed data, the policy
    // itself for online batches, nothing for a loss that reads none.
    let given = match (&spec.reference_logprobs, &source) {
        (Some(k), Source::Offline(rows) | Source::Replay { stream: rows, .. }) => {
            Some(reference::load(ctx, k, rows.len())?)
        }
        _ => None,
    };
    let live_reference = if given.is_none() && loss.needs_reference() {
        Some(art::load_policy(ctx.store, &spec.reference, ctx.device)?)
    } else {
        None
    };
    check_shapes(ctx, spec, &source)?;

    let required = &spec.length.checkpoints;
    let Resumed { start, end, policy, mut adam, mut rows, mut stream_parts, seconds_before, mut resume } =
        resume_state(ctx, node, spec, online, log)?;
    let began = std::time::Instant::now();
    log.line(&format!("training {} from step {start} to {end}", node.display_name()));
    if adam.step != start {
        return Err(ExecError::Invalid(format!("checkpoint at {start} holds optimizer step {}", adam.step)));
    }
    (ctx.progress)(start as u64, end as u64);

    // The last step whose state is in the cache (a checkpoint or a snapshot).
    let mut saved = start;
    for step in start..end {
        if ctx.stopping() {
            if step > saved {
                let said = resume.save(node, step, seconds_before + began.elapsed().as_secs_f64(), |st| {
                    write_state(st, &policy, &adam, &rows, &mut stream_parts, online, seed, step)
                })?;
                log.line(&said);
            }
            ctx.resumption().saved_at = Some(step).filter(|s| *s > 0);
            return Err(ExecError::Interrupted);
        }
        let (batch_pairs, drawn, mut online_stats) = next_batch(&source, &policy, &mut stream_parts, batch, step, seed);
        let reference = match (&given, &live_reference, drawn) {
            (Some((c, r)), _, Some(idx)) => {
                let idx = Tensor::from_slice(&idx);
                train::Reference::Given { chosen: c.index_select(0, &idx), rejected: r.index_select(0, &idx) }
            }
            (_, Some(policy), _) => train::Reference::Policy(policy),
            _ => train::Reference::Unused,
        };
        let m = train::preference_step(&policy, reference, loss, mean, &mut adam, &batch_pairs)
            .map_err(|e| ExecError::Invalid(format!("`{}`: {e}", node.display_name())))?;
        if let Err(e) = divergence::check_step(node, step + 1, &m, lr) {
            return Err(forget_diverged(ctx, node, &resume, target, e));
        }
        rows.push(MetricRow::of_step(step + 1, &m, online_stats.take()));
        let done = step + 1;
        let seconds = seconds_before + began.elapsed().as_secs_f64();
        if done % save_every == 0 || done == target || required.binary_search(&done).is_ok() {
            let ck = checkpoint_node(node, done);
            if !ctx.store.contains(&ck.key) {
                if let Err(e) = divergence::check_parameters(node, done, policy.vs(), lr) {
                    return Err(forget_diverged(ctx, node, &resume, target, e));
                }
                let mut st = ctx.store.begin(&ck)?;
                st.set_compute_seconds(seconds);
                write_state(&mut st, &policy, &adam, &rows, &mut stream_parts, online, seed, done)?;
                let last = rows.last().expect("a step ran");
                log.line(&format!(
                    "step {done}: loss {:.5} grad norm {:.4} lr {:.3e}",
                    last.loss, last.grad_norm, last.lr
                ));
                st.write("log.txt", &log.text())?;
                st.commit()?;
            }
            saved = done;
        } else if resume.due() {
            // A snapshot that cannot be written (a full disk) costs only
            // what it would have saved: training goes on.
            match resume.save(node, done, seconds, |st| {
                write_state(st, &policy, &adam, &rows, &mut stream_parts, online, seed, done)
            }) {
                Ok(said) => {
                    log.line(&said);
                    saved = done
                }
                Err(e) => log.line(&format!("could not save state at step {done}: {e}")),
            }
        }
        (ctx.progress)(done as u64, end as u64);
    }
    // The checkpoint at `end` supersedes saved state up to it.
    resume.clear_through(end);
    Ok(())
}

/// Where a sitting of a run starts and ends, and its state there: the
/// policy, Adam, the metrics and (online) the stream so far.
struct Resumed {
    start: i64,
    end: i64,
    policy: Policy,
    adam: Adam,
    rows: Vec<MetricRow>,
    stream_parts: Vec<Pairs>,
    /// Compute recorded before this sitting.
    seconds_before: f64,
    resume: Resume,
}

fn resume_state(ctx: &Ctx, node: &Node, spec: &TrainSpec, online: bool, log: &NodeLog) -> Result<Resumed, ExecError> {
    let target = spec.length.steps;
    // Resume from the latest checkpoint before the first one missing: the
    // target, or a step some evaluation needs that an earlier run of this
    // node (merged from declarations with other save grids) did not save.
    // Training is deterministic, so refilling a gap rewrites nothing.
    let required = &spec.length.checkpoints;
    let missing: Vec<i64> = required
        .iter()
        .copied()
        .filter(|s| *s <= target && !ctx.store.contains(&checkpoint_key(&node.key, *s)))
        .collect();
    let target_done = ctx.store.contains(&checkpoint_key(&node.key, target));
    let first_missing = missing.first().copied().unwrap_or(target);
    let end = if target_done { missing.last().copied().unwrap_or(target) } else { target };
    let checkpointed = latest_checkpoint(ctx, &node.key, first_missing);
    // Saved state past that checkpoint (a stopped sitting) goes further.
    let resume = Resume::open(ctx.store, &node.key, ctx.snapshot_every);
    let snapshot = resume.latest(checkpointed, first_missing);
    let start = snapshot.map_or(checkpointed, |s| s.step);
    let seconds_before = match snapshot {
        Some(s) => s.compute_seconds,
        None if start > 0 => {
            ctx.store.manifest(&checkpoint_key(&node.key, start)).map(|m| m.compute_seconds).unwrap_or(0.0)
        }
        None => 0.0,
    };
    let (policy, adam, rows, stream_parts) = if start == 0 {
        let policy = art::load_policy(ctx.store, &spec.policy, ctx.device)?;
        let adam = Adam::new(policy.vs(), spec.lr, spec.warmup, spec.clip);
        (policy, adam, vec![], vec![])
    } else {
        let (from, key) = match snapshot {
            Some(s) => (resume.store(), s.key),
            None => (ctx.store, checkpoint_key(&node.key, start)),
        };
        let policy = art::load_policy(from, &key, ctx.device)?;
        let mut adam = Adam::new(policy.vs(), spec.lr, spec.warmup, spec.clip);
        adam.restore(&art::load_tensors(from, &key, "optim.safetensors")?)
            .map_err(|e| crate::exec::artifacts::input_err(&key, e))?;
        let rows = art::read_metrics(from, &key)?;
        let parts = if online { vec![art::load_pairs(from, &key, "stream.safetensors")?] } else { vec![] };
        if snapshot.is_some() {
            log.line(&format!("resuming from saved state at step {start}"));
        }
        let mut r = ctx.resumption();
        r.resumed_from = Some(start);
        r.seconds_before = seconds_before;
        (policy, adam, rows, parts)
    };
    Ok(Resumed { start, end, policy, adam, rows, stream_parts, seconds_before, resume })
}

/// Where a run's batches come from: fixed pairs, a judge with its prompts,
/// or another run's stream in replay order.
fn open_source(ctx: &Ctx, node: &Node, spec: &TrainSpec) -> Result<Source, ExecError> {
    let target = spec.length.steps;
    let batch = spec.batch as usize;
    Ok(match &spec.sampler {
        Sampler::Offline { data } => Source::Offline(reference::training_rows(ctx, &TrainingData::Pairs(*data))?),
        Sampler::Online { judge, temperature, prompts } => {
            let prompts = prompts.ok_or_else(|| {
                ExecError::Invalid(format!(
                    "`{}` samples online but has no prompts: its starting policy has no SFT data to draw them from",
                    node.display_name()
                ))
            })?;
            Source::Online {
                judge: art::load_pm(ctx.store, judge, ctx.device)?,
                pool: prompt_pool(ctx.store, &prompts)?,
                temperature: *temperature,
            }
        }
        Sampler::Replay { source, shuffle } => {
            let stream = reference::training_rows(ctx, &TrainingData::Stream(*source))?;
            let needed = target as usize * batch;
            if needed > stream.len() as usize {
                return Err(ExecError::Invalid(format!(
                    "`{}` needs {target} steps × {batch} pairs = {needed} pairs, but the replayed stream has only {}",
                    node.display_name(),
                    stream.len()
                )));
            }
            let order = sampler::replay_order(stream.len() as usize, *shuffle, spec.seed);
            Source::Replay { stream, order }
        }
    })
}

/// Every model and dataset involved must speak the same tokens.
fn check_shapes(ctx: &Ctx, spec: &TrainSpec, source: &Source) -> Result<(), ExecError> {
    let start_policy_shapes = art::saved_shapes(ctx.store, &spec.policy)?;
    // Read from the reference's saved spec, so that log-probs computed
    // ahead of time are held to the same check as a live reference.
    let reference_shapes = art::saved_shapes(ctx.store, &spec.reference)?;
    art::same_shapes("the reference and the starting policy", reference_shapes, start_policy_shapes)?;
    match source {
        Source::Online { judge, pool, .. } => {
            art::same_shapes("the judge and the policy", art::pm_shapes(judge), start_policy_shapes)?;
            if pool.size()[1] != start_policy_shapes.1 {
                return Err(ExecError::Invalid("the prompt pool's prompts are not as wide as the policy's".into()));
            }
        }
        Source::Offline(d) | Source::Replay { stream: d, .. } => {
            if (d.prompt_len(), d.response_len()) != (start_policy_shapes.1, start_policy_shapes.2) {
                return Err(ExecError::Invalid(
                    "the training data's prompts or responses are not the policy's widths".into(),
                ));
            }
        }
    }

    Ok(())
}

/// The batch of step `step`, which rows of fixed data it is (None for an
/// online batch, which is appended to `stream_parts`), and what an online
/// batch's samples were like.
fn next_batch(
    source: &Source,
    policy: &Policy,
    stream_parts: &mut Vec<Pairs>,
    batch: usize,
    step: i64,
    seed: u64,
) -> (Pairs, Option<Vec<i64>>, Option<train::OnlineStats>) {
    match source {
        Source::Offline(data) => {
            let idx = sampler::offline_indices(data.len() as usize, batch, step as u64, seed);
            (data.select(&idx), Some(idx), None)
        }
        Source::Online { judge, pool, temperature } => {
            let (b, stats) = train::online_batch(policy, judge, pool, batch, *temperature, step as u64, seed);
            stream_parts.push(b.select(&(0..b.len()).collect::<Vec<_>>()));
            (b, None, Some(stats))
        }
        Source::Replay { stream, order } => {
            let idx: Vec<i64> =
                order[step as usize * batch..(step as usize + 1) * batch].iter().map(|&i| i as i64).collect();
            (stream.select(&idx), Some(idx), None)
        }
    }
}

/// A diverged run keeps nothing: its checkpoints (finite ones before the
/// divergence included: the run as declared has no result) and its saved
/// state are removed, so no evaluation and no resume ever reads them.
fn forget_diverged(ctx: &Ctx, node: &Node, resume: &Resume, target: i64, e: ExecError) -> ExecError {
    for step in 1..=target {
        let k = checkpoint_key(&node.key, step);
        if ctx.store.contains(&k) {
            let _ = ctx.store.evict(&k);
        }
    }
    resume.clear_through(target);
    e
}

/// What a checkpoint or a snapshot of a run holds at step `done`: the
/// policy, the optimizer's state, the metrics, and an online run's stream
/// so far (its parts joined into one, which later saves extend).
#[allow(clippy::too_many_arguments)]
fn write_state(
    st: &mut Staging,
    policy: &Policy,
    adam: &Adam,
    rows: &[MetricRow],
    stream_parts: &mut Vec<Pairs>,
    online: bool,
    seed: u64,
    done: i64,
) -> Result<(), ExecError> {
    art::write_policy(st, policy)?;
    art::save_tensors(st, "optim.safetensors", &adam.state())?;
    art::write_metrics(st, rows)?;
    art::write_json(
        st,
        "state.json",
        &serde_json::json!({
            "step": done, "seed": seed,
            "rng": "counter-based: every draw comes from (seed, purpose, step); nothing else to restore",
        }),
    )?;
    if online {
        let all = Pairs::concat(stream_parts);
        *stream_parts = vec![all.select(&(0..all.len()).collect::<Vec<_>>())];
        art::save_pairs(st, "stream.safetensors", &all)?;
    }
    Ok(())
}
