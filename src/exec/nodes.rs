//! Computing worlds, datasets and models (training runs are in
//! `training.rs`, evaluations in `evaluate.rs`). Each function takes its
//! node's typed spec, reads its inputs from the cache, computes, and fills a
//! staging entry that the runner commits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::exec::artifacts::{self as art, DataMeta, ExecError, MetricRow};
use crate::exec::divergence;
use crate::exec::model_summary::{Accuracy, ModelSummary, PlateauSummary, Proportion, RelabelMeta};
use crate::exec::resume::Resume;
use crate::exec::store::{Staging, Store};
use crate::ml::adam::Adam;
use crate::ml::data::Pairs;
use crate::ml::eval::{self, Estimate};
use crate::ml::policy::{Policy, PolicySpec};
use crate::ml::preference::{PmHead, PreferenceModel};
use crate::ml::train::StepMetrics;
use crate::ml::{rng, train};
use crate::plan::op::{self, GenerateSpec, ModelSpec, PairsSpec, RelabelSpec};
use crate::plan::{Key, Node};

/// What every node computation can reach.
pub struct Ctx<'a> {
    pub store: &'a Store,
    pub device: Device,
    /// Set to stop between steps (Ctrl-C).
    pub stop: &'a AtomicBool,
    /// Called with (done, total) as training advances.
    pub progress: &'a (dyn Fn(u64, u64) + Sync),
    /// A line for the node's log.
    pub log: &'a (dyn Fn(&str) + Sync),
    /// Seconds of computation between a training node's saved states
    /// (None: only when stopped). Not part of any key.
    pub snapshot_every: Option<std::time::Duration>,
    /// What a training node did with saved state, for the summary.
    pub resumption: &'a Mutex<Resumption>,
}

impl Ctx<'_> {
    pub fn check_stop(&self) -> Result<(), ExecError> {
        if self.stopping() {
            Err(ExecError::Interrupted)
        } else {
            Ok(())
        }
    }

    /// Has a stop been asked for (a signal)?
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub fn resumption(&self) -> std::sync::MutexGuard<'_, Resumption> {
        self.resumption.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A training node's dealings with saved state in one sitting.
#[derive(Debug, Default, Clone, Copy)]
pub struct Resumption {
    /// The step it went on from (saved state or a checkpoint), if not 0.
    pub resumed_from: Option<i64>,
    /// Computation that earlier sittings spent to reach that step.
    pub seconds_before: f64,
    /// Stopped: the step its state was saved at.
    pub saved_at: Option<i64>,
}

/// A world is its parameters: the oracle is rebuilt from them where needed.
pub fn world(node: &Node, st: &mut Staging) -> Result<(), ExecError> {
    let params: serde_json::Map<String, serde_json::Value> =
        node.op.key_params().iter().map(|(k, v)| (k.clone(), v.to_json())).collect();
    art::write_json(st, "world.json", &serde_json::json!({"kind": node.kind(), "params": params}))
}

fn meta_of(p: &Pairs, vocab: i64) -> DataMeta {
    DataMeta::of(p, vocab)
}

pub fn generate(ctx: &Ctx, spec: &GenerateSpec, st: &mut Staging) -> Result<(), ExecError> {
    let world = art::load_world(ctx.store, &spec.world)?;
    if world.vocab <= crate::ml::tokens::FIRST_CONTENT {
        return Err(ExecError::Invalid("a world needs more tokens than the four special ones".into()));
    }
    let pairs = crate::worlds::generate::generate(
        &world,
        spec.pairs as usize,
        spec.val_fraction,
        spec.overshoot,
        spec.hide_best,
        spec.seed,
    );
    art::save_pairs(st, "pairs.safetensors", &pairs)?;
    art::write_json(st, "meta.json", &meta_of(&pairs, world.vocab))
}

/// Agreement of two label sets on the same pairs: rows whose chosen response is the same.
fn agreement(a: &Pairs, b: &Pairs) -> Estimate {
    let same = a.chosen.eq_tensor(&b.chosen).all_dim(1, false).to_kind(Kind::Double);
    Estimate::from_samples(&Vec::<f64>::try_from(same).unwrap_or_default())
}

/// Share of rows whose chosen response the noiseless oracle also prefers (ties ½).
fn oracle_agreement(p: &Pairs) -> Option<Estimate> {
    let o: Vec<f64> = Vec::try_from(p.columns.get("oracle")?.to_kind(Kind::Double)).ok()?;
    Some(eval::share_positive(&o))
}

pub fn relabel(ctx: &Ctx, spec: &RelabelSpec, st: &mut Staging) -> Result<(), ExecError> {
    let data_key = spec.data;
    // Both splits are relabelled and keep their split: models train on the
    // train split (D_golden proper) and report accuracy on the validation split.
    let data = art::load_pairs(ctx.store, &data_key, "pairs.safetensors")?;
    let meta = art::load_meta(ctx.store, &data_key)?;
    let judge = art::load_pm(ctx.store, &spec.judge, ctx.device)?;
    art::same_shapes("the judge and the data", art::pm_shapes(&judge), art::data_shapes(&meta))?;
    let seed = spec.seed;
    let out = tch::no_grad(|| eval::relabel(&judge, &data, seed));
    art::save_pairs(st, "pairs.safetensors", &out)?;
    let agree = agreement(&data.split(0), &out.split(0));
    let m = RelabelMeta {
        shapes: meta_of(&out, meta.vocab),
        train_agreement_with_input_labels: Proportion::of(&agree),
        train_agreement_with_noiseless_oracle: oracle_agreement(&out.split(0)).as_ref().map(Proportion::of),
    };
    art::write_json(st, "meta.json", &m)
}

/// Prompts of a dataset's train split.
pub fn prompt_pool(store: &Store, key: &Key) -> Result<Tensor, ExecError> {
    Ok(art::load_pairs(store, key, "pairs.safetensors")?.split(0).prompts)
}

pub fn pairs(ctx: &Ctx, spec: &PairsSpec, st: &mut Staging) -> Result<(), ExecError> {
    let a = art::load_policy(ctx.store, &spec.a, ctx.device)?;
    let b = art::load_policy(ctx.store, &spec.b, ctx.device)?;
    let prompts_key = spec.prompts;
    let meta = art::load_meta(ctx.store, &prompts_key)?;
    let pool = prompt_pool(ctx.store, &prompts_key)?;
    let judge = art::load_pm(ctx.store, &spec.judge, ctx.device)?;
    art::same_shapes("policies a and b", art::policy_shapes(&a), art::policy_shapes(&b))?;
    art::same_shapes("the judge and the policies", art::pm_shapes(&judge), art::policy_shapes(&a))?;
    art::same_shapes("the prompts' dataset and the policies", art::data_shapes(&meta), art::policy_shapes(&a))?;
    let (n, t, seed) = (spec.n as usize, spec.temperature, spec.seed);
    let prompts = eval::eval_prompts(&pool, n, seed);
    let mut parts = vec![];
    // In chunks of 256 to bound memory.
    let mut start = 0;
    while start < n as i64 {
        ctx.check_stop()?;
        let len = 256.min(n as i64 - start);
        let p = prompts.narrow(0, start, len).to_device(ctx.device);
        let chunk = (start / 256) as u64;
        let ya = a.sample(&p, t, &mut rng::stream(seed, "pairs/a", chunk));
        let yb = b.sample(&p, t, &mut rng::stream(seed, "pairs/b", chunk));
        let raw = Pairs {
            prompts: p.to_device(Device::Cpu),
            chosen: ya.to_device(Device::Cpu),
            rejected: yb.to_device(Device::Cpu),
            columns: Default::default(),
        };
        parts.push(eval::relabel(&judge, &raw, seed.wrapping_add(chunk)));
        start += len;
        (ctx.progress)(start as u64, n as u64);
    }
    let mut out = Pairs::concat(&parts);
    out.columns.insert("split".into(), Tensor::zeros([out.len()], (Kind::Int64, Device::Cpu)));
    art::save_pairs(st, "pairs.safetensors", &out)?;
    art::write_json(st, "meta.json", &meta_of(&out, meta.vocab))
}

/// What SFT or PM training makes.
pub enum ModelKind {
    Sft,
    Pm(op::PmHead),
}

/// Where a model's training starts: the latest saved state (its parameters
/// read into `vs`, the optimizer's state and the metrics so far), or step 0.
fn resume_model(
    ctx: &Ctx,
    resume: &Resume,
    vs: &tch::nn::VarStore,
    steps: u64,
    (lr, warmup, clip): (f64, i64, f64),
    rows: &mut Vec<MetricRow>,
) -> Result<(u64, Adam), ExecError> {
    let Some(saved) = resume.latest(0, steps as i64) else { return Ok((0, Adam::new(vs, lr, warmup, clip))) };
    let from = resume.store();
    let path = from.verified_path(&saved.key, "model.safetensors")?;
    tch::no_grad(|| vs.read_safetensors(&path))?;
    // The optimizer packs the parameters as they are now: after loading them.
    let mut adam = Adam::new(vs, lr, warmup, clip);
    adam.restore(&art::load_tensors(from, &saved.key, "optim.safetensors")?)
        .map_err(|e| art::input_err(&saved.key, e))?;
    if adam.step != saved.step {
        return Err(art::input_err(
            &saved.key,
            format!("saved at step {} with optimizer step {}", saved.step, adam.step),
        ));
    }
    *rows = art::read_metrics(from, &saved.key)?;
    (ctx.log)(&format!("resuming from saved state at step {}", saved.step));
    let mut r = ctx.resumption();
    r.resumed_from = Some(saved.step);
    r.seconds_before = saved.compute_seconds;
    Ok((saved.step as u64, adam))
}

/// Early stopping at a validation plateau: a check every `every` steps
/// (the validation loss `loss()`), and a stop once `patience` checks in a
/// row have not lowered the best. The weights are those it stops with.
pub struct Plateau<'a> {
    pub patience: usize,
    pub every: u64,
    pub loss: &'a dyn Fn() -> f64,
}

/// One validation check of a [`Plateau`] (`validation.csv`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub step: i64,
    pub val_loss: f64,
}

/// Whether the checks so far end in a plateau: `patience` checks since the
/// lowest validation loss (the first of equal ones).
pub fn plateau_reached(checks: &[Check], patience: usize) -> bool {
    let best = checks.iter().enumerate().fold(None, |best: Option<(usize, f64)>, (i, c)| match best {
        Some((_, b)) if c.val_loss >= b => best,
        _ => Some((i, c.val_loss)),
    });
    best.is_some_and(|(i, _)| checks.len() - 1 - i >= patience)
}

/// A model's training (the parameters in `vs`, `steps` steps of
/// `step_once`, fewer where a [`Plateau`] stops it), from its saved state if
/// it has one. Its state is saved every `ctx.snapshot_every` of
/// computation, and when a stop is asked for (then the node ends
/// `Interrupted`, its state saved). Returns the validation checks.
fn train_model(
    ctx: &Ctx,
    node: &Node,
    (vs, steps, hyper): (&tch::nn::VarStore, u64, (f64, i64, f64)),
    rows: &mut Vec<MetricRow>,
    (mut step_once, plateau): (impl FnMut(&mut Adam, u64) -> StepMetrics, Option<Plateau>),
    write_model: impl Fn(&mut Staging) -> Result<(), ExecError>,
) -> Result<Vec<Check>, ExecError> {
    let mut resume = Resume::open(ctx.store, &node.key, ctx.snapshot_every);
    let (start, mut adam) = resume_model(ctx, &resume, vs, steps, hyper, rows)?;
    let mut checks: Vec<Check> = vec![];
    if let (Some(saved), Some(_)) = (resume.latest(0, steps as i64).filter(|_| start > 0), &plateau) {
        let bytes = resume.store().read(&saved.key, "validation.csv")?;
        checks = csv::Reader::from_reader(bytes.as_slice())
            .deserialize()
            .collect::<Result<_, _>>()
            .map_err(|e| art::input_err(&saved.key, format!("validation.csv: {e}")))?;
    }
    let (resume, adam) = (&mut resume, &mut adam);
    let began = Instant::now();
    let before = ctx.resumption().seconds_before;
    let mut saved = start;
    let save = |resume: &mut Resume, adam: &Adam, rows: &[MetricRow], checks: &[Check], at: u64| {
        resume.save(node, at as i64, before + began.elapsed().as_secs_f64(), |st| {
            write_model(st)?;
            art::save_tensors(st, "optim.safetensors", &adam.state())?;
            if plateau.is_some() {
                st.write("validation.csv", &art::csv_bytes(checks).map_err(ExecError::Invalid)?)?;
            }
            art::write_metrics(st, rows)
        })
    };
    let stops = |checks: &[Check]| plateau.as_ref().is_some_and(|p| plateau_reached(checks, p.patience));
    let mut last = start;
    (ctx.progress)(start, steps);
    for step in start..steps {
        if stops(&checks) {
            let best = checks.iter().map(|c| c.val_loss).fold(f64::INFINITY, f64::min);
            (ctx.log)(&format!("validation plateau at step {step}: best validation loss {best:.5}"));
            break;
        }
        if ctx.stopping() {
            if step > saved {
                (ctx.log)(&save(resume, adam, rows, &checks, step)?);
            }
            ctx.resumption().saved_at = Some(step as i64).filter(|s| *s > 0);
            return Err(ExecError::Interrupted);
        }
        let m = step_once(adam, step);
        if let Err(e) = divergence::check_step(node, step as i64 + 1, &m, hyper.0) {
            resume.clear_through(steps as i64);
            return Err(e);
        }
        if (step + 1) % (steps / 10).max(1) == 0 {
            (ctx.log)(&format!("step {}: loss {:.5} grad norm {:.4}", step + 1, m.loss, m.grad_norm));
        }
        rows.push(MetricRow::of_step(step as i64 + 1, &m, None));
        last = step + 1;
        if let Some(p) = plateau.as_ref().filter(|p| last % p.every == 0) {
            checks.push(Check { step: last as i64, val_loss: (p.loss)() });
        }
        (ctx.progress)(step + 1, steps);
        if resume.due() && step + 1 < steps {
            // A snapshot that cannot be written (a full disk) costs only
            // what it would have saved: training goes on.
            match save(resume, adam, rows, &checks, step + 1) {
                Ok(said) => {
                    (ctx.log)(&said);
                    saved = step + 1
                }
                Err(e) => (ctx.log)(&format!("could not save state at step {}: {e}", step + 1)),
            }
        }
    }
    if let Err(e) = divergence::check_parameters(node, last as i64, vs, hyper.0) {
        resume.clear_through(steps as i64);
        return Err(e);
    }
    Ok(checks)
}

/// SFT or PM training, with validation numbers in `summary.json`.
pub fn model(ctx: &Ctx, node: &Node, spec: &ModelSpec, kind: ModelKind, st: &mut Staging) -> Result<(), ExecError> {
    let name = node.display_name();
    let data_key = spec.data;
    let meta = art::load_meta(ctx.store, &data_key)?;
    let all = art::load_pairs(ctx.store, &data_key, "pairs.safetensors")?;
    let (train_set, val_set) = (all.split(0), all.split(1));
    if train_set.is_empty() {
        return Err(ExecError::Invalid(format!("`{name}` has no training rows")));
    }
    let seed = spec.seed;
    let (layers, width, heads) = (spec.layers, spec.width, spec.heads);
    let (steps, batch) = (spec.steps as u64, spec.batch as usize);
    let (lr, warmup, clip) = (spec.lr, spec.warmup, spec.clip);
    let mut rows = vec![];
    let mut summary = ModelSummary::default();
    let head = match kind {
        ModelKind::Sft => None,
        ModelKind::Pm(op::PmHead::Pooled) => Some(PmHead::Pooled),
        ModelKind::Pm(op::PmHead::Joint) => Some(PmHead::Joint),
        ModelKind::Pm(op::PmHead::Last) => Some(PmHead::Last),
    };
    // tandem's own model's shapes (a pretrained base brings its own).
    let own = PolicySpec {
        vocab: meta.vocab,
        layers,
        width,
        heads,
        prompt_len: meta.prompt_len,
        response_len: meta.response_len,
    };
    if let Some(head) = head {
        let pm = match spec.base {
            None => PreferenceModel::new(own, head, ctx.device, seed),
            Some(base) => {
                let model =
                    load_base(ctx.store, &base, ctx.device)?.map_err(|e| art::input_err(&base, e.to_string()))?;
                PreferenceModel::from_pretrained(model, meta.prompt_len, meta.response_len, seed, head)
                    .map_err(ExecError::Invalid)?
            }
        };
        same_vocabulary(&name, meta.vocab, pm.spec.vocab)?;
        let (select_set, val_set) = plateau_split(&name, spec, val_set)?;
        let select_loss = || -> f64 {
            let s = select_set.as_ref().expect("a plateau has its selection rows");
            let d = ctx.device;
            tch::no_grad(|| {
                pm.loss(&s.prompts.to_device(d), &s.chosen.to_device(d), &s.rejected.to_device(d)).double_value(&[])
            })
        };
        let plateau = select_set.as_ref().map(|_| Plateau {
            patience: spec.patience as usize,
            every: spec.val_every.max(1) as u64,
            loss: &select_loss,
        });
        let checks = train_model(
            ctx,
            node,
            (pm.vs(), steps, (lr, warmup, clip)),
            &mut rows,
            (|adam: &mut Adam, step| train::pm_step(&pm, adam, &train_set, batch, step, seed), plateau),
            |st| art::write_pm(st, &pm),
        )?;
        if let Some(select) = &select_set {
            let best = checks.iter().min_by(|a, b| a.val_loss.total_cmp(&b.val_loss));
            summary.plateau = Some(PlateauSummary {
                stopped_at: rows.last().map_or(0, |r| r.step),
                max_steps: steps,
                reached: plateau_reached(&checks, spec.patience as usize),
                best_step: best.map(|c| c.step),
                best_val_loss: best.map(|c| c.val_loss),
                selection_rows: select.len(),
            });
            st.write("validation.csv", &art::csv_bytes(&checks).map_err(ExecError::Invalid)?)?;
        }
        let eval_set = if val_set.is_empty() { &train_set } else { &val_set };
        let acc = tch::no_grad(|| eval::pm_accuracy(&pm, eval_set));
        let split = if val_set.is_empty() { "train" } else { "validation" };
        summary.val_accuracy = Some(Accuracy { value: acc.value, stderr: acc.stderr, n: acc.n, split: split.into() });
        summary.oracle_agreement = pm_oracle_agreement(&pm, eval_set, ctx.device).as_ref().map(Proportion::of);
        art::write_pm(st, &pm)?;
    } else {
        let policy = match spec.base {
            None => Policy::new(own, ctx.device, seed),
            Some(base) => {
                let model = load_base(ctx.store, &base, ctx.device)?;
                art::pretrained_policy(model, &base, meta.prompt_len, meta.response_len)?
            }
        };
        same_vocabulary(&name, meta.vocab, policy.spec.vocab)?;
        train_model(
            ctx,
            node,
            (policy.vs(), steps, (lr, warmup, clip)),
            &mut rows,
            (|adam: &mut Adam, step| train::sft_step(&policy, adam, &train_set, batch, step, seed), None),
            |st| art::write_policy(st, &policy),
        )?;
        if !val_set.is_empty() {
            let nll = tch::no_grad(|| {
                let (lp, mask) = policy
                    .token_logprobs(&val_set.prompts.to_device(ctx.device), &val_set.chosen.to_device(ctx.device));
                -(lp.sum(Kind::Float) / mask.to_kind(Kind::Float).sum(Kind::Float)).double_value(&[])
            });
            summary.val_token_nll_chosen = Some(nll);
        }
        art::write_policy(st, &policy)?;
    }
    art::write_metrics(st, &rows)?;
    art::write_json(st, "summary.json", &summary)
}

/// With a plateau to find (`patience`), the validation split is halved:
/// the even rows decide when to stop, the odd ones measure the accuracy the
/// summary reports, so that it is not chosen on its own data. Without one,
/// (no selection rows, the validation split as it is).
fn plateau_split(name: &str, spec: &ModelSpec, val_set: Pairs) -> Result<(Option<Pairs>, Pairs), ExecError> {
    if spec.patience == 0 {
        return Ok((None, val_set));
    }
    if val_set.len() < 2 {
        return Err(ExecError::Invalid(format!(
            "`{name}` stops at a validation plateau (`patience`), and its data has fewer than 2 validation rows"
        )));
    }
    let rows_of = |parity: i64| (0..val_set.len()).filter(|i| i % 2 == parity).collect::<Vec<i64>>();
    Ok((Some(val_set.select(&rows_of(0))), val_set.select(&rows_of(1))))
}

/// A preference model's agreement with the world's noiseless preference,
/// where the data knows it (an `oracle` column): ties of the model count ½,
/// pairs the oracle calls even are left out.
fn pm_oracle_agreement(pm: &PreferenceModel, data: &Pairs, device: Device) -> Option<Estimate> {
    let o = data.columns.get("oracle")?;
    let margins: Vec<f64> = Vec::try_from(
        pm.margin(&data.prompts.to_device(device), &data.chosen.to_device(device), &data.rejected.to_device(device))
            .to_kind(Kind::Double)
            .to_device(Device::Cpu),
    )
    .unwrap_or_default();
    let oracle: Vec<f64> = Vec::try_from(o.to_kind(Kind::Double)).unwrap_or_default();
    let agree: Vec<f64> = margins
        .iter()
        .zip(&oracle)
        .filter(|(_, o)| **o != 0.0)
        .map(|(m, o)| {
            if *m == 0.0 {
                0.5
            } else if (*m > 0.0) == (*o > 0.0) {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    Some(Estimate::from_samples(&agree))
}

/// A model's token ids against its data's: the plan checks which
/// tokenizer each reads; this catches a base whose entry says otherwise.
fn same_vocabulary(name: &str, data: i64, model: i64) -> Result<(), ExecError> {
    if data == model {
        return Ok(());
    }
    Err(ExecError::Invalid(format!("`{name}`: its data has {data} token ids, its base model {model}")))
}

/// The pretrained model a node starts from, read from its entry: a
/// `pretrained` node's directory, or a policy trained from one (its entry
/// holds a Hugging Face directory of its own).
fn load_base(
    store: &Store,
    key: &Key,
    device: Device,
) -> Result<Result<crate::ml::hf::Pretrained, crate::hfdir::HfError>, ExecError> {
    let weights = if store.manifest(key)?.kind == "model.pretrained" {
        crate::exec::import::pretrained_weights(store, key)?
    } else {
        vec!["model.safetensors".to_string()]
    };
    let weights = weights.iter().map(|w| store.verified_path(key, w)).collect::<Result<Vec<_>, _>>()?;
    let (config, tokenizer) = (store.verified_path(key, "config.json")?, store.verified_path(key, "tokenizer.json")?);
    Ok(crate::ml::hf::Pretrained::load_files(&store.entry_dir(key), &config, &tokenizer, &weights, device))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks(losses: &[f64]) -> Vec<Check> {
        losses.iter().enumerate().map(|(i, &l)| Check { step: 10 * (i as i64 + 1), val_loss: l }).collect()
    }

    #[test]
    fn a_plateau_is_patience_checks_since_the_lowest_loss() {
        assert!(!plateau_reached(&[], 2));
        // Falling throughout: no plateau.
        assert!(!plateau_reached(&checks(&[0.7, 0.6, 0.5, 0.4]), 2));
        // Lowest at the second check; two checks since.
        assert!(plateau_reached(&checks(&[0.7, 0.5, 0.6, 0.55]), 2));
        assert!(!plateau_reached(&checks(&[0.7, 0.5, 0.6, 0.55]), 3));
        // An equal loss is no improvement: the first of equal ones is the best.
        assert!(plateau_reached(&checks(&[0.7, 0.5, 0.5, 0.5]), 2));
        // Patience 0 stops at the first check.
        assert!(plateau_reached(&checks(&[0.7]), 0));
    }
}
