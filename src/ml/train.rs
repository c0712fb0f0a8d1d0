//! One optimisation step of each kind of training. The loops, checkpoints and
//! resumption live in the executor; a step here is a pure function of the
//! models, the data and the step number.

use tch::{Kind, Tensor};

use crate::ml::adam::Adam;
use crate::ml::data::Pairs;
use crate::ml::loss::Loss;
use crate::ml::policy::Policy;
use crate::ml::preference::PreferenceModel;
use crate::ml::rng;
use crate::ml::sampler;
use crate::ml::tokens;

/// What a step reports.
#[derive(Debug, Clone, Default)]
pub struct StepMetrics {
    pub loss: f64,
    pub grad_norm: f64,
    pub lr: f64,
    /// Preference steps: mean h (the log-ratio margin) over the batch.
    pub margin: Option<f64>,
    /// Preference steps: the policy's mean log-prob of the chosen and of
    /// the rejected responses (Fig. 8's quantities, on the training batch).
    pub chosen_logprob: Option<f64>,
    pub rejected_logprob: Option<f64>,
    /// Preference steps with a reference: the mean log-ratio
    /// log π(y|x) − log π_ref(y|x) of the chosen and of the rejected.
    pub chosen_log_ratio: Option<f64>,
    pub rejected_log_ratio: Option<f64>,
}

/// What an online batch's samples were like, as the run drew and judged
/// them (before the step that learns from them).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OnlineStats {
    /// The judge's mean margin for the chosen sample over the rejected,
    /// r(x, y_w, y_l) − r(x, y_l, y_w) in [−1, 1] (ties count 0).
    pub judge_margin: f64,
    /// A pooled judge's mean score s(x, y) of the samples (None for a joint head).
    pub judge_score: Option<f64>,
    /// The samples' mean length in tokens, end-of-sequence included.
    pub length: f64,
}

/// SFT (Appendix C): both responses of every pair are targets; the loss is
/// the token-mean negative log-likelihood of a batch of them.
pub fn sft_step(policy: &Policy, adam: &mut Adam, data: &Pairs, batch: usize, step: u64, seed: u64) -> StepMetrics {
    let n = data.len() as usize;
    let idx = sampler::offline_indices(2 * n, batch, step, seed);
    let (first, second): (Vec<i64>, Vec<i64>) = idx.iter().partition(|&&i| (i as usize) < n);
    let second: Vec<i64> = second.iter().map(|i| i - n as i64).collect();
    let a = data.select(&first);
    let b = data.select(&second);
    let prompts = Tensor::cat(&[&a.prompts, &b.prompts], 0).to_device(policy.device());
    let responses = Tensor::cat(&[&a.chosen, &b.rejected], 0).to_device(policy.device());
    let (lp, mask) = policy.token_logprobs(&prompts, &responses);
    let loss = -lp.sum(Kind::Float) / mask.to_kind(Kind::Float).sum(Kind::Float).clamp_min(1.0);
    adam.zero_grad();
    loss.backward();
    let lr = adam.lr_at(adam.step);
    let grad_norm = adam.step();
    StepMetrics { loss: loss.double_value(&[]), grad_norm, lr, ..Default::default() }
}

/// One step of preference-model training with eq. (5).
pub fn pm_step(pm: &PreferenceModel, adam: &mut Adam, data: &Pairs, batch: usize, step: u64, seed: u64) -> StepMetrics {
    let idx = sampler::offline_indices(data.len() as usize, batch, step, seed);
    let b = data.select(&idx).to_device(pm.vs().device());
    let loss = pm.loss(&b.prompts, &b.chosen, &b.rejected);
    adam.zero_grad();
    loss.backward();
    let lr = adam.lr_at(adam.step);
    let grad_norm = adam.step();
    StepMetrics { loss: loss.double_value(&[]), grad_norm, lr, ..Default::default() }
}

/// Where a preference step's reference log-probs come from.
pub enum Reference<'a> {
    /// The frozen reference policy, run on the batch now: online batches are
    /// new at every step, so nothing can be computed ahead.
    Policy(&'a Policy),
    /// Computed ahead for exactly this batch's pairs (a `reference` node):
    /// offline and replay data are fixed, so their reference log-probs are
    /// the same in every epoch and for every run sharing reference and data.
    Given { chosen: Tensor, rejected: Tensor },
    /// The loss reads none (Best-of-2).
    Unused,
}

/// The reference's sequence log-probs of a batch's chosen and rejected
/// responses, [B] each, on the reference's device: chosen and rejected in
/// one pass sharing the prompts' computation, exactly as a preference step
/// computes its policy's.
pub fn reference_logprobs(reference: &Policy, batch: &Pairs, mean_logprob: bool) -> (Tensor, Tensor) {
    let device = reference.device();
    let b = batch.len();
    let prompts = batch.prompts.to_device(device);
    let (chosen, rejected) = (batch.chosen.to_device(device), batch.rejected.to_device(device));
    let r = tch::no_grad(|| reference.shared_prompt_seq_logprob(&prompts, &[&chosen, &rejected], mean_logprob));
    (r.narrow(0, 0, b), r.narrow(0, b, b))
}

/// One preference-optimisation step on a labelled batch. Online, offline and
/// replay runs all go through this one function, so a replay of an online
/// run's stream computes exactly what the online run computed.
pub fn preference_step(
    policy: &Policy,
    reference: Reference<'_>,
    loss: Loss,
    mean_logprob: bool,
    adam: &mut Adam,
    batch: &Pairs,
) -> Result<StepMetrics, String> {
    let device = policy.device();
    let b = batch.len();
    // Chosen and rejected in one pass, sharing the prompts' computation.
    let prompts = batch.prompts.to_device(device);
    let (chosen, rejected) = (batch.chosen.to_device(device), batch.rejected.to_device(device));
    let lp = policy.shared_prompt_seq_logprob(&prompts, &[&chosen, &rejected], mean_logprob);
    let (lw, ll) = (lp.narrow(0, 0, b), lp.narrow(0, b, b));
    let (rw, rl) = match reference {
        _ if !loss.needs_reference() => (lw.zeros_like(), ll.zeros_like()),
        Reference::Policy(r) => reference_logprobs(r, batch, mean_logprob),
        Reference::Given { chosen, rejected } => (chosen.to_device(device), rejected.to_device(device)),
        Reference::Unused => return Err(format!("{loss:?} needs the reference's log-probs, and none were given")),
    };
    let margin = tch::no_grad(|| ((&lw - &rw) - (&ll - &rl)).mean(Kind::Float).double_value(&[]));
    let mean = |t: &Tensor| tch::no_grad(|| t.mean(Kind::Float).double_value(&[]));
    let (chosen_logprob, rejected_logprob) = (Some(mean(&lw)), Some(mean(&ll)));
    let (chosen_log_ratio, rejected_log_ratio) =
        if loss.needs_reference() { (Some(mean(&(&lw - &rw))), Some(mean(&(&ll - &rl)))) } else { (None, None) };
    let value = loss.mean(&lw, &ll, &rw, &rl);
    adam.zero_grad();
    value.backward();
    let lr = adam.lr_at(adam.step);
    let grad_norm = adam.step();
    Ok(StepMetrics {
        loss: value.double_value(&[]),
        grad_norm,
        lr,
        margin: Some(margin),
        chosen_logprob,
        rejected_logprob,
        chosen_log_ratio,
        rejected_log_ratio,
    })
}

/// An online batch: prompts from the pool, two fresh samples from the
/// current policy, labelled by the judge (A.2 debiasing, seeded coin on ties).
pub fn online_batch(
    policy: &Policy,
    judge: &PreferenceModel,
    pool: &Tensor,
    batch: usize,
    temperature: f64,
    step: u64,
    seed: u64,
) -> (Pairs, OnlineStats) {
    let n = pool.size()[0] as usize;
    let idx = sampler::prompt_indices(n, batch, step, seed);
    let prompts = pool.index_select(0, &Tensor::from_slice(&idx).to_device(pool.device())).to_device(policy.device());
    let y1 = policy.sample(&prompts, temperature, &mut rng::stream(seed, "online/sample-a", step));
    let y2 = policy.sample(&prompts, temperature, &mut rng::stream(seed, "online/sample-b", step));
    // The judge's margins decide the labels (as `prefers_first` would)
    // and, with its scores, are what the run records of its judge.
    let (margins, scores) = tch::no_grad(|| {
        let d = judge.vs().device();
        judge.judge(&prompts.to_device(d), &y1.to_device(d), &y2.to_device(d))
    });
    let m: Vec<f32> = Vec::try_from(margins.to_device(tch::Device::Cpu)).expect("float margins");
    let first = crate::ml::preference::decide(&m, &mut rng::stream(seed, "online/coin", step));
    let stats = OnlineStats {
        judge_margin: m.iter().zip(&first).map(|(&m, &f)| if f { m as f64 } else { -(m as f64) }).sum::<f64>()
            / m.len().max(1) as f64,
        judge_score: scores.map(|s| s.mean(Kind::Float).double_value(&[])),
        length: tch::no_grad(|| {
            (tokens::mask(&y1).sum(Kind::Float) + tokens::mask(&y2).sum(Kind::Float)).double_value(&[])
                / (2 * y1.size()[0].max(1)) as f64
        }),
    };
    let pick = Tensor::from_slice(&first.iter().map(|&f| f as i64).collect::<Vec<_>>())
        .to_device(policy.device())
        .unsqueeze(1)
        .to_kind(Kind::Bool);
    let chosen = y1.where_self(&pick, &y2);
    let rejected = y2.where_self(&pick, &y1);
    let out = Pairs {
        prompts: prompts.to_device(tch::Device::Cpu),
        chosen: chosen.to_device(tch::Device::Cpu),
        rejected: rejected.to_device(tch::Device::Cpu),
        columns: Default::default(),
    };
    (sampler::tag_stream_batch(out, step as i64), stats)
}
