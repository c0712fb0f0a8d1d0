//! The paper's evaluations, each a number with its uncertainty and count.

use tch::{Device, Kind, Tensor};

use crate::ml::data::Pairs;
use crate::ml::policy::Policy;
use crate::ml::preference::{PreferenceModel, Prefix};
use crate::ml::rng;

/// A mean with its standard error and 95% interval (normal approximation),
/// and the per-unit values it is the mean of (one per prompt, pair or
/// sample, in the evaluation's unit order), kept so that two evaluations on
/// the same units can be compared unit by unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub stderr: f64,
    pub n: usize,
    pub units: Vec<f64>,
    /// The judge's margin or the classifier's score behind each unit's
    /// outcome (empty where the outcome is the measurement itself).
    pub scores: Vec<f64>,
}

impl Estimate {
    pub fn from_samples(xs: &[f64]) -> Estimate {
        let n = xs.len();
        if n == 0 {
            return Estimate { value: f64::NAN, stderr: f64::NAN, n, units: vec![], scores: vec![] };
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = if n > 1 { xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
        Estimate { value: mean, stderr: (var / n as f64).sqrt(), n, units: xs.to_vec(), scores: vec![] }
    }

    pub fn ci95(&self) -> (f64, f64) {
        (self.value - 1.96 * self.stderr, self.value + 1.96 * self.stderr)
    }
}

fn to_vec(t: &Tensor) -> Vec<f64> {
    Vec::try_from(t.to_device(Device::Cpu).to_kind(Kind::Double)).expect("1-D tensor")
}

/// The first `n` rows of a seeded permutation of `pool`'s rows.
pub fn subsample_rows(total: i64, n: usize, seed: u64, purpose: &str) -> Vec<i64> {
    let perm = rng::permutation(&mut rng::stream(seed, purpose, 0), total as usize);
    perm.into_iter().take(n).map(|i| i as i64).collect()
}

/// Prompts for an evaluation: `n` drawn from the pool (with replacement when
/// the pool is smaller), the same ones for every policy evaluated with `seed`.
pub fn eval_prompts(pool: &Tensor, n: usize, seed: u64) -> Tensor {
    let total = pool.size()[0];
    let idx: Vec<i64> = if (n as i64) <= total {
        subsample_rows(total, n, seed, "eval/prompts")
    } else {
        crate::ml::sampler::prompt_indices(total as usize, n, 0, seed)
    };
    pool.index_select(0, &Tensor::from_slice(&idx).to_device(pool.device()))
}

/// A policy's responses to evaluation prompts, shared by every evaluation
/// that reads them: in chunks of `chunk` prompts, chunk c from its own
/// random stream, so the first k·chunk rows are the same bits however many
/// prompts are drawn.
pub fn policy_samples(policy: &Policy, prompts: &Tensor, seed: u64, chunk: i64) -> Tensor {
    let p = prompts.to_device(policy.device());
    let n = p.size()[0];
    let chunk = chunk.max(1);
    let chunks: Vec<Tensor> = (0..n)
        .step_by(chunk as usize)
        .map(|start| {
            let mut stream = rng::stream(seed, "eval/policy-samples", (start / chunk) as u64);
            policy.sample(&p.narrow(0, start, chunk.min(n - start)), 1.0, &mut stream)
        })
        .collect();
    if chunks.is_empty() {
        return Tensor::zeros([0, policy.spec.response_len], (Kind::Int64, p.device()));
    }
    Tensor::cat(&chunks, 0)
}

/// KL(πθ ‖ πref) as in Appendix D: per prompt, one sample `y` from πθ and
/// the exact per-token KL summed over it; the mean over prompts.
pub fn kl_of(policy: &Policy, reference: &Policy, prompts: &Tensor, y: &Tensor) -> Estimate {
    let d = policy.device();
    Estimate::from_samples(&to_vec(&policy.kl_per_sequence(reference, &prompts.to_device(d), &y.to_device(d))))
}

/// [`kl_of`] on the policy's own samples of `prompts`, drawn in one batch.
pub fn kl(policy: &Policy, reference: &Policy, prompts: &Tensor, seed: u64) -> Estimate {
    kl_of(policy, reference, prompts, &policy_samples(policy, prompts, seed, prompts.size()[0]))
}

/// Score of each side-by-side: 1 if the policy's response wins, 0 if the
/// baseline's does, ½ for an exact tie (identical responses always tie).
/// Both sides sampled here; studies read shared samples instead.
pub fn winrate(policy: &Policy, baseline: &Policy, judge: &PreferenceModel, prompts: &Tensor, seed: u64) -> Estimate {
    let yb = baseline_samples(baseline, prompts, seed);
    winrate_judged(&policy_samples(policy, prompts, seed, prompts.size()[0]), &yb, judge, prompts)
}

/// The baseline's responses a win rate compares against (their own random
/// stream, so they do not depend on the evaluated policy).
pub fn baseline_samples(baseline: &Policy, prompts: &Tensor, seed: u64) -> Tensor {
    let p = prompts.to_device(baseline.device());
    baseline.sample(&p, 1.0, &mut rng::stream(seed, "eval/winrate-baseline", 0))
}

/// The win rate of the policy's responses `y` against baseline responses
/// already drawn and scored by a pooled judge: only `y` is scored here,
/// continuing the judge's pass over the prompts (`prefix`, made with the
/// baseline's scores). None when the judge's head is not pooled (it has no
/// score of one response).
pub fn winrate_scored(
    y: &Tensor,
    baseline_scores: &Tensor,
    judge: &PreferenceModel,
    prefix: &Prefix,
) -> Option<Estimate> {
    let d = judge.vs().device();
    let s = judge.pooled_scores_after(prefix, &y.to_device(d))?;
    // The pooled margin is tanh((s − s_b) / 2): its sign is that of s − s_b.
    Some(share_positive(&to_vec(&(s - baseline_scores.to_device(d)))))
}

/// The share of positive margins, a zero counting ½: 1 / 0 / ½ per row
/// (the margins are kept as the units' scores). A NaN margin stays NaN,
/// never a tie: the evaluation then fails instead of reading ½.
pub fn share_positive(m: &[f64]) -> Estimate {
    let outcomes = Estimate::from_samples(
        &m.iter()
            .map(|&x| {
                if x.is_nan() {
                    f64::NAN
                } else if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    0.0
                } else {
                    0.5
                }
            })
            .collect::<Vec<_>>(),
    );
    Estimate { scores: m.to_vec(), ..outcomes }
}

/// The win rate of the policy's responses `y` against the baseline's `yb`,
/// both already drawn, judged as pairs.
pub fn winrate_judged(y: &Tensor, yb: &Tensor, judge: &PreferenceModel, prompts: &Tensor) -> Estimate {
    let d = judge.vs().device();
    share_positive(&to_vec(&judge.margin(&prompts.to_device(d), &y.to_device(d), &yb.to_device(d))))
}

/// The policy-as-classifier score of Appendix E:
/// f(x, y1, y2) = [log πθ(y1) − log πθ(y2)] − [log πsft(y1) − log πsft(y2)].
pub fn classifier_scores(policy: &Policy, reference: &Policy, prompts: &Tensor, y1: &Tensor, y2: &Tensor) -> Tensor {
    tch::no_grad(|| {
        let d = policy.device();
        let (p, a, b) = (prompts.to_device(d), y1.to_device(d), y2.to_device(d));
        (policy.seq_logprob(&p, &a, false) - policy.seq_logprob(&p, &b, false))
            - (reference.seq_logprob(&p, &a, false) - reference.seq_logprob(&p, &b, false))
    })
}

/// 1 / 0 / ½ per row for a score whose sign says "the first is preferred",
/// when the first is in fact the chosen one.
fn accuracy_of(scores: &Tensor) -> Estimate {
    share_positive(&to_vec(scores))
}

/// Accuracy of a policy as a classifier on labelled pairs (chosen first).
pub fn policy_accuracy(policy: &Policy, reference: &Policy, data: &Pairs) -> Estimate {
    accuracy_of(&classifier_scores(policy, reference, &data.prompts, &data.chosen, &data.rejected))
}

/// Accuracy of a preference model on labelled pairs, by the A.2 sign rule.
pub fn pm_accuracy(pm: &PreferenceModel, data: &Pairs) -> Estimate {
    let d = pm.vs().device();
    accuracy_of(&pm.margin(&data.prompts.to_device(d), &data.chosen.to_device(d), &data.rejected.to_device(d)))
}

/// Relabels pairs with a judge: chosen becomes whichever it prefers (ties by a seeded coin).
pub fn relabel(judge: &PreferenceModel, data: &Pairs, seed: u64) -> Pairs {
    let d = judge.vs().device();
    let mut coin = rng::stream(seed, "relabel/coin", 0);
    let mut keep = Vec::with_capacity(data.len() as usize);
    // In chunks, to bound memory on large datasets.
    let chunk = 512;
    let mut start = 0;
    while start < data.len() {
        let len = chunk.min(data.len() - start);
        let p = data.prompts.narrow(0, start, len).to_device(d);
        let a = data.chosen.narrow(0, start, len).to_device(d);
        let b = data.rejected.narrow(0, start, len).to_device(d);
        keep.extend(judge.prefers_first(&p, &a, &b, &mut coin));
        start += len;
    }
    let pick = Tensor::from_slice(&keep.iter().map(|&k| k as i64).collect::<Vec<_>>()).unsqueeze(1).to_kind(Kind::Bool);
    let chosen = data.chosen.where_self(&pick, &data.rejected);
    let rejected = data.rejected.where_self(&pick, &data.chosen);
    let mut columns: std::collections::BTreeMap<String, Tensor> =
        data.columns.iter().map(|(k, v)| (k.clone(), v.shallow_clone())).collect();
    if let Some(o) = columns.get("oracle") {
        // The oracle margin is of chosen over rejected: flip it where they swapped.
        let sign = pick.squeeze_dim(1).to_kind(Kind::Float) * 2.0 - 1.0;
        let flipped = o * sign;
        columns.insert("oracle".into(), flipped);
    }
    Pairs { prompts: data.prompts.shallow_clone(), chosen, rejected, columns }
}

/// Appendix E.1: the policy classifies pairs of its own samples, labelled by a judge.
pub fn self_accuracy(
    policy: &Policy,
    reference: &Policy,
    judge: &PreferenceModel,
    prompts: &Tensor,
    seed: u64,
) -> Estimate {
    let p = prompts.to_device(policy.device());
    let y1 = policy.sample(&p, 1.0, &mut rng::stream(seed, "eval/self-a", 0));
    let y2 = policy.sample(&p, 1.0, &mut rng::stream(seed, "eval/self-b", 0));
    let pairs = Pairs {
        prompts: p.to_device(Device::Cpu),
        chosen: y1.to_device(Device::Cpu),
        rejected: y2.to_device(Device::Cpu),
        columns: Default::default(),
    };
    let labelled = relabel(judge, &pairs, seed);
    policy_accuracy(policy, reference, &labelled)
}

/// Fig. 8 (bottom): mean log πθ(y_w) − log πsft(y_w) over the winners.
pub fn winner_logprob(policy: &Policy, reference: &Policy, data: &Pairs) -> Estimate {
    tch::no_grad(|| {
        let d = policy.device();
        let (p, w) = (data.prompts.to_device(d), data.chosen.to_device(d));
        Estimate::from_samples(&to_vec(&(policy.seq_logprob(&p, &w, false) - reference.seq_logprob(&p, &w, false))))
    })
}
