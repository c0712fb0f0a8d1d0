//! Computing one node of each kind (training runs are in `training.rs`).
//! Each function reads its inputs from the cache, computes, and fills a
//! staging entry that the runner commits.

use std::sync::atomic::{AtomicBool, Ordering};

use tch::{Device, Kind, Tensor};

use crate::exec::artifacts::{self as art, DataMeta, ExecError, MetricRow, ResultRow};
use crate::exec::params as P;
use crate::exec::store::{Staging, Store};
use crate::ml::adam::Adam;
use crate::ml::data::Pairs;
use crate::ml::eval::{self, Estimate};
use crate::ml::policy::{Policy, PolicySpec};
use crate::ml::preference::{PmHead, PmSpec, PreferenceModel};
use crate::ml::{rng, train};
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
}

impl Ctx<'_> {
    pub fn check_stop(&self) -> Result<(), ExecError> {
        if self.stop.load(Ordering::Relaxed) {
            Err(ExecError::Interrupted)
        } else {
            Ok(())
        }
    }
}

pub fn world(_ctx: &Ctx, node: &Node, st: &mut Staging) -> Result<(), ExecError> {
    let params: serde_json::Map<String, serde_json::Value> = node.params.iter().map(|(k, v)| (k.clone(), v.to_json())).collect();
    art::write_json(st, "world.json", &serde_json::json!({"kind": node.kind, "params": params}))
}

fn meta_of(p: &Pairs, vocab: i64) -> DataMeta {
    let split: Vec<i64> = p.columns.get("split").map(|s| Vec::try_from(s.to_kind(Kind::Int64)).unwrap_or_default()).unwrap_or_default();
    let val = split.iter().filter(|&&s| s == 1).count() as i64;
    DataMeta { vocab, prompt_len: p.prompt_len(), response_len: p.response_len(), rows: p.len(), train: p.len() - val, val }
}

pub fn generate(ctx: &Ctx, node: &Node, st: &mut Staging) -> Result<(), ExecError> {
    let world = art::load_world(ctx.store, &P::key(node, "world")?)?;
    if world.vocab <= crate::ml::tokens::FIRST_CONTENT {
        return Err(ExecError::Invalid("a world needs more tokens than the four special ones".into()));
    }
    // `overshoot` is left out of the key at its default (0).
    let overshoot = if node.params.contains_key("overshoot") { P::float(node, "overshoot")? } else { 0.0 };
    let pairs = crate::worlds::generate::generate(&world, P::int(node, "pairs")? as usize, P::float(node, "val_fraction")?, overshoot, P::int(node, "seed")? as u64);
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
    Some(Estimate::from_samples(&o.iter().map(|&m| if m > 0.0 { 1.0 } else if m < 0.0 { 0.0 } else { 0.5 }).collect::<Vec<_>>()))
}

pub fn relabel(ctx: &Ctx, node: &Node, st: &mut Staging) -> Result<(), ExecError> {
    let data_key = P::key(node, "data")?;
    // Both splits are relabelled and keep their split: models train on the
    // train split (D_golden proper) and report accuracy on the validation split.
    let data = art::load_pairs(ctx.store, &data_key, "pairs.safetensors")?;
    let meta = art::load_meta(ctx.store, &data_key)?;
    let judge = art::load_pm(ctx.store, &P::key(node, "judge")?, ctx.device)?;
    art::same_shapes("the judge and the data", art::pm_shapes(&judge), art::data_shapes(&meta))?;
    let seed = P::int(node, "seed")? as u64;
    let out = tch::no_grad(|| eval::relabel(&judge, &data, seed));
    art::save_pairs(st, "pairs.safetensors", &out)?;
    let agree = agreement(&data.split(0), &out.split(0));
    let mut m = serde_json::to_value(meta_of(&out, meta.vocab)).expect("meta");
    m["train_agreement_with_input_labels"] = serde_json::json!({"value": agree.value, "stderr": agree.stderr, "n": agree.n});
    if let Some(o) = oracle_agreement(&out.split(0)) {
        m["train_agreement_with_noiseless_oracle"] = serde_json::json!({"value": o.value, "stderr": o.stderr, "n": o.n});
    }
    art::write_json(st, "meta.json", &m)
}

/// Prompts of a dataset's train split.
pub fn prompt_pool(store: &Store, key: &Key) -> Result<Tensor, ExecError> {
    Ok(art::load_pairs(store, key, "pairs.safetensors")?.split(0).prompts)
}

pub fn pairs(ctx: &Ctx, node: &Node, st: &mut Staging) -> Result<(), ExecError> {
    let a = art::load_policy(ctx.store, &P::key(node, "a")?, ctx.device)?;
    let b = art::load_policy(ctx.store, &P::key(node, "b")?, ctx.device)?;
    let prompts_key = P::key(node, "prompts")?;
    let meta = art::load_meta(ctx.store, &prompts_key)?;
    let pool = prompt_pool(ctx.store, &prompts_key)?;
    let judge = art::load_pm(ctx.store, &P::key(node, "judge")?, ctx.device)?;
    art::same_shapes("policies a and b", art::policy_shapes(&a), art::policy_shapes(&b))?;
    art::same_shapes("the judge and the policies", art::pm_shapes(&judge), art::policy_shapes(&a))?;
    art::same_shapes("the prompts' dataset and the policies", art::data_shapes(&meta), art::policy_shapes(&a))?;
    let (n, t, seed) = (P::int(node, "n")? as usize, P::float(node, "temperature")?, P::int(node, "seed")? as u64);
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
        let raw = Pairs { prompts: p.to_device(Device::Cpu), chosen: ya.to_device(Device::Cpu), rejected: yb.to_device(Device::Cpu), columns: Default::default() };
        parts.push(eval::relabel(&judge, &raw, seed.wrapping_add(chunk)));
        start += len;
        (ctx.progress)(start as u64, n as u64);
    }
    let mut out = Pairs::concat(&parts);
    out.columns.insert("split".into(), Tensor::zeros([out.len()], (Kind::Int64, Device::Cpu)));
    art::save_pairs(st, "pairs.safetensors", &out)?;
    art::write_json(st, "meta.json", &meta_of(&out, meta.vocab))
}

/// SFT or PM training, with validation numbers in `summary.json`.
pub fn model(ctx: &Ctx, node: &Node, st: &mut Staging) -> Result<(), ExecError> {
    let data_key = P::key(node, "data")?;
    let meta = art::load_meta(ctx.store, &data_key)?;
    let all = art::load_pairs(ctx.store, &data_key, "pairs.safetensors")?;
    let (train_set, val_set) = (all.split(0), all.split(1));
    if train_set.is_empty() {
        return Err(ExecError::Invalid(format!("`{}` has no training rows", node.display_name())));
    }
    let seed = P::int(node, "seed")? as u64;
    let (layers, width, heads) = (P::int(node, "layers")?, P::int(node, "width")?, P::int(node, "heads")?);
    let (steps, batch) = (P::int(node, "steps")? as u64, P::int(node, "batch")? as usize);
    let (lr, warmup, clip) = (P::float(node, "lr")?, P::int(node, "warmup")?, P::float(node, "clip")?);
    let mut rows = vec![];
    let mut summary = serde_json::Map::new();
    if node.kind == "model.sft" {
        let policy = Policy::new(PolicySpec { vocab: meta.vocab, layers, width, heads, prompt_len: meta.prompt_len, response_len: meta.response_len }, ctx.device, seed);
        let mut adam = Adam::new(&policy.vs, lr, warmup, clip);
        for step in 0..steps {
            ctx.check_stop()?;
            let m = train::sft_step(&policy, &mut adam, &train_set, batch, step, seed);
            if (step + 1) % (steps / 10).max(1) == 0 {
                (ctx.log)(&format!("step {}: loss {:.5} grad norm {:.4}", step + 1, m.loss, m.grad_norm));
            }
            rows.push(MetricRow { step: step as i64 + 1, loss: m.loss, grad_norm: m.grad_norm, lr: m.lr, margin: None });
            (ctx.progress)(step + 1, steps);
        }
        if !val_set.is_empty() {
            let nll = tch::no_grad(|| {
                let (lp, mask) = policy.token_logprobs(&val_set.prompts.to_device(ctx.device), &val_set.chosen.to_device(ctx.device));
                -(lp.sum(Kind::Float) / mask.to_kind(Kind::Float).sum(Kind::Float)).double_value(&[])
            });
            summary.insert("val_token_nll_chosen".into(), serde_json::json!(nll));
        }
        art::write_policy(st, &policy)?;
    } else {
        let head_name = P::string(node, "head")?;
        let head = PmHead::from_name(&head_name).ok_or_else(|| ExecError::Invalid(format!("unknown preference-model head {head_name:?}")))?;
        let pm = PreferenceModel::new(PmSpec { vocab: meta.vocab, layers, width, heads, prompt_len: meta.prompt_len, response_len: meta.response_len }, head, ctx.device, seed);
        let mut adam = Adam::new(&pm.vs, lr, warmup, clip);
        for step in 0..steps {
            ctx.check_stop()?;
            let m = train::pm_step(&pm, &mut adam, &train_set, batch, step, seed);
            if (step + 1) % (steps / 10).max(1) == 0 {
                (ctx.log)(&format!("step {}: loss {:.5} grad norm {:.4}", step + 1, m.loss, m.grad_norm));
            }
            rows.push(MetricRow { step: step as i64 + 1, loss: m.loss, grad_norm: m.grad_norm, lr: m.lr, margin: None });
            (ctx.progress)(step + 1, steps);
        }
        let eval_set = if val_set.is_empty() { &train_set } else { &val_set };
        let acc = tch::no_grad(|| eval::pm_accuracy(&pm, eval_set));
        summary.insert("val_accuracy".into(), serde_json::json!({"value": acc.value, "stderr": acc.stderr, "n": acc.n, "split": if val_set.is_empty() { "train" } else { "validation" }}));
        // Agreement with the world's noiseless preference, where the data knows it.
        if let Some(o) = eval_set.columns.get("oracle") {
            let margins: Vec<f64> = Vec::try_from(pm.margin(&eval_set.prompts.to_device(ctx.device), &eval_set.chosen.to_device(ctx.device), &eval_set.rejected.to_device(ctx.device)).to_kind(Kind::Double).to_device(Device::Cpu)).unwrap_or_default();
            let oracle: Vec<f64> = Vec::try_from(o.to_kind(Kind::Double)).unwrap_or_default();
            let agree: Vec<f64> = margins.iter().zip(&oracle).filter(|(_, o)| **o != 0.0).map(|(m, o)| if *m == 0.0 { 0.5 } else if (*m > 0.0) == (*o > 0.0) { 1.0 } else { 0.0 }).collect();
            let e = Estimate::from_samples(&agree);
            summary.insert("oracle_agreement".into(), serde_json::json!({"value": e.value, "stderr": e.stderr, "n": e.n}));
        }
        art::write_pm(st, &pm)?;
    }
    art::write_metrics(st, &rows)?;
    art::write_json(st, "summary.json", &summary)
}

/// Evaluations: one node scores one policy (or PM) checkpoint.
pub fn evaluate(ctx: &Ctx, node: &Node, st: &mut Staging) -> Result<(), ExecError> {
    let target_key = P::key(node, "target")?;
    let seed = P::int(node, "seed")? as u64;
    let pool = || -> Result<Tensor, ExecError> {
        let k = P::opt_key(node, "pool").ok_or_else(|| ExecError::Invalid(format!("{} has no prompt pool", node.display_name())))?;
        prompt_pool(ctx.store, &k)
    };
    let reference = || -> Result<Policy, ExecError> {
        let k = P::opt_key(node, "reference").ok_or_else(|| ExecError::Invalid(format!("{} needs a reference policy", node.display_name())))?;
        art::load_policy(ctx.store, &k, ctx.device)
    };
    let reference = || -> Result<Policy, ExecError> {
        let r = reference()?;
        art::same_shapes("the reference and the evaluated model", art::policy_shapes(&r), art::saved_shapes(ctx.store, &target_key)?)?;
        Ok(r)
    };
    let rows: Vec<ResultRow> = match node.kind.as_str() {
        "eval.kl" => {
            let policy = art::load_policy(ctx.store, &target_key, ctx.device)?;
            let prompts = eval::eval_prompts(&pool()?, P::int(node, "prompts")? as usize, seed);
            vec![ResultRow::new("kl", &eval::kl(&policy, &reference()?, &prompts, seed), None)]
        }
        "eval.winrate" => {
            let policy = art::load_policy(ctx.store, &target_key, ctx.device)?;
            let baseline = art::load_policy(ctx.store, &P::key(node, "baseline")?, ctx.device)?;
            let judge = art::load_pm(ctx.store, &P::key(node, "judge")?, ctx.device)?;
            art::same_shapes("the baseline and the evaluated policy", art::policy_shapes(&baseline), art::policy_shapes(&policy))?;
            art::same_shapes("the judge and the evaluated policy", art::pm_shapes(&judge), art::policy_shapes(&policy))?;
            let prompts = eval::eval_prompts(&pool()?, P::int(node, "prompts")? as usize, seed);
            vec![ResultRow::new("winrate", &eval::winrate(&policy, &baseline, &judge, &prompts, seed), None)]
        }
        "eval.self_classifier" => {
            let policy = art::load_policy(ctx.store, &target_key, ctx.device)?;
            let judge = art::load_pm(ctx.store, &P::key(node, "judge")?, ctx.device)?;
            art::same_shapes("the judge and the evaluated policy", art::pm_shapes(&judge), art::policy_shapes(&policy))?;
            let prompts = eval::eval_prompts(&pool()?, P::int(node, "prompts")? as usize, seed);
            vec![ResultRow::new("self_accuracy", &eval::self_accuracy(&policy, &reference()?, &judge, &prompts, seed), None)]
        }
        "eval.winner_logprob" => {
            let policy = art::load_policy(ctx.store, &target_key, ctx.device)?;
            let data = art::load_pairs(ctx.store, &P::key(node, "data")?, "pairs.safetensors")?.split(0);
            if (data.prompt_len(), data.response_len()) != (policy.spec.prompt_len, policy.spec.response_len) {
                return Err(ExecError::Invalid("the dataset's widths are not the policy's".into()));
            }
            let idx = eval::subsample_rows(data.len(), P::int(node, "n")? as usize, seed, "eval/rows");
            vec![ResultRow::new("winner_logprob", &eval::winner_logprob(&policy, &reference()?, &data.select(&idx)), None)]
        }
        "eval.classifier" => classifier(ctx, node, &target_key, seed)?,
        "eval.oracle" => {
            let policy = art::load_policy(ctx.store, &target_key, ctx.device)?;
            let world = art::load_world(ctx.store, &P::key(node, "world")?)?;
            if (world.vocab, world.prompt_len, world.response_len) != (policy.spec.vocab, policy.spec.prompt_len, policy.spec.response_len) {
                return Err(ExecError::Invalid("the world's tokens or widths are not the policy's".into()));
            }
            let prompts = eval::eval_prompts(&pool()?, P::int(node, "prompts")? as usize, seed);
            let y = policy.sample(&prompts.to_device(ctx.device), 1.0, &mut rng::stream(seed, "eval/oracle", 0));
            let (ps, ys) = (crate::ml::tokens::unpad(&prompts), crate::ml::tokens::unpad(&y));
            let rewards: Vec<f64> = ps.iter().zip(&ys).map(|(p, r)| world.reward(p, r)).collect();
            // A sample stops on its own when its EOS comes before the last slot.
            let stops: Vec<f64> = ys.iter().map(|r| if (r.len() as i64) < world.response_len { 1.0 } else { 0.0 }).collect();
            let behaviour = |level: usize| -> Estimate {
                let mut r = rng::stream(seed, "eval/oracle-behaviour", level as u64);
                Estimate::from_samples(&ps.iter().map(|p| world.reward(p, &world.behaviour(level, p, &mut r))).collect::<Vec<_>>())
            };
            vec![
                ResultRow::new("oracle_reward", &Estimate::from_samples(&rewards), None),
                ResultRow::new("stops_on_its_own", &Estimate::from_samples(&stops), None),
                ResultRow::new("oracle_reward_worst_behaviour", &behaviour(0), None),
                ResultRow::new("oracle_reward_best_behaviour", &behaviour(crate::worlds::World::BEHAVIOURS - 1), None),
            ]
        }
        other => return Err(ExecError::Invalid(format!("no evaluation `{other}`"))),
    };
    art::write_results(st, &rows)
}

fn classifier(ctx: &Ctx, node: &Node, target_key: &Key, seed: u64) -> Result<Vec<ResultRow>, ExecError> {
    let data_key = P::key(node, "data")?;
    let data_kind = ctx.store.manifest(&data_key)?.kind;
    let n = P::int(node, "n")? as usize;
    // The data: a dataset's train split, or windows along an online run's stream.
    let windows: Vec<(Option<i64>, Pairs)> = if data_kind == "checkpoint" {
        let stream = art::load_pairs(ctx.store, &data_key, "stream.safetensors").map_err(|_| crate::exec::artifacts::input_err(&data_key, "has no data stream: is it an online run?"))?;
        let steps: Vec<i64> = Vec::try_from(stream.columns.get("step").ok_or_else(|| crate::exec::artifacts::input_err(&data_key, "stream without steps"))?.to_kind(Kind::Int64)).unwrap_or_default();
        let k = P::int(node, "windows")?.max(1) as usize;
        let total = stream.len() as usize;
        let mut out = vec![];
        for w in 0..k {
            // Window w: the rows whose position falls in the w-th of k equal parts.
            let (lo, hi) = (w * total / k, ((w + 1) * total / k).max(w * total / k + 1).min(total));
            let rows: Vec<i64> = (lo as i64..hi as i64).collect();
            let take: Vec<i64> = eval::subsample_rows(rows.len() as i64, n, seed.wrapping_add(w as u64), "eval/window").into_iter().map(|i| rows[i as usize]).collect();
            let centre = steps.get((lo + hi) / 2).copied();
            out.push((centre, stream.select(&take)));
        }
        out
    } else {
        let data = art::load_pairs(ctx.store, &data_key, "pairs.safetensors")?.split(0);
        let idx = eval::subsample_rows(data.len(), n, seed, "eval/rows");
        vec![(None, data.select(&idx))]
    };
    let judge = match P::opt_key(node, "judge") {
        Some(k) => Some(art::load_pm(ctx.store, &k, ctx.device)?),
        None => None,
    };
    let target_is_pm = art::read_json::<serde_json::Value>(ctx.store, target_key, "spec.json")?["kind"] == "pm";
    let t = art::saved_shapes(ctx.store, target_key)?;
    if let Some(j) = &judge {
        art::same_shapes("the judge and the classified model", art::pm_shapes(j), t)?;
    }
    if let Some((_, first)) = windows.first() {
        if (first.prompt_len(), first.response_len()) != (t.1, t.2) {
            return Err(ExecError::Invalid("the data's widths are not the classified model's".into()));
        }
    }
    // The classifier: a PM by the A.2 sign rule, or a policy by Appendix E.
    enum Scorer {
        Pm(PreferenceModel),
        Policy(Policy, Policy),
    }
    let scorer = if target_is_pm {
        Scorer::Pm(art::load_pm(ctx.store, target_key, ctx.device)?)
    } else {
        let rk = P::opt_key(node, "reference").ok_or_else(|| ExecError::Invalid(format!("{} needs a reference policy", node.display_name())))?;
        Scorer::Policy(art::load_policy(ctx.store, target_key, ctx.device)?, art::load_policy(ctx.store, &rk, ctx.device)?)
    };
    let mut rows = vec![];
    for (i, (step, pairs)) in windows.into_iter().enumerate() {
        let labelled = match &judge {
            Some(j) => tch::no_grad(|| eval::relabel(j, &pairs, seed.wrapping_add(i as u64))),
            None => pairs,
        };
        let est = match &scorer {
            Scorer::Pm(pm) => tch::no_grad(|| eval::pm_accuracy(pm, &labelled)),
            Scorer::Policy(policy, reference) => tch::no_grad(|| eval::policy_accuracy(policy, reference, &labelled)),
        };
        rows.push(ResultRow::new("accuracy", &est, step));
    }
    Ok(rows)
}
