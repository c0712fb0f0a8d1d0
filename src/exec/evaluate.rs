//! Evaluations: one node scores one policy (or PM) checkpoint against its
//! metric's inputs and writes `results.csv` rows with their uncertainty.

use tch::{Kind, Tensor};

use crate::exec::artifacts::{self as art, ExecError, ResultRow};
use crate::exec::nodes::{prompt_pool, Ctx};
use crate::exec::result_metric::ResultMetric;
use crate::exec::store::Staging;
use crate::ml::data::Pairs;
use crate::ml::eval::{self, Estimate};
use crate::ml::policy::Policy;
use crate::ml::preference::PreferenceModel;
use crate::ml::rng;
use crate::plan::op::{Classified, Draw, EvalSpec, Metric, SamplesSpec, SAMPLE_CHUNK};
use crate::plan::Key;

/// The file a `samples` node holds: `prompts` and `responses`, token ids.
const SAMPLES: &str = "samples.safetensors";

/// Samples drawn once and read by many evaluations: a win rate's baseline
/// (with a pooled judge's scores of it), or an evaluated policy's own
/// responses, which its KL, oracle and win-rate evaluations all read.
pub fn samples(ctx: &Ctx, spec: &SamplesSpec, st: &mut Staging) -> Result<(), ExecError> {
    let policy = art::load_policy(ctx.store, &spec.policy, ctx.device)?;
    let prompts = eval::eval_prompts(&prompt_pool(ctx.store, &spec.pool)?, spec.prompts as usize, spec.seed);
    let responses = match spec.draw {
        Draw::Baseline => eval::baseline_samples(&policy, &prompts, spec.seed),
        Draw::Policy => eval::policy_samples(&policy, &prompts, spec.seed, SAMPLE_CHUNK),
    };
    let mut tensors = std::collections::BTreeMap::new();
    if let Some(judge) = &spec.judge {
        let judge = art::load_pm(ctx.store, judge, ctx.device)?;
        art::same_shapes("the judge and the baseline", art::pm_shapes(&judge), art::policy_shapes(&policy))?;
        let d = judge.vs().device();
        let not_pooled = || ExecError::Invalid("the judge's head scores pairs only; it has no scores to keep".into());
        // The judge's pass over the prompts is kept too: every win rate
        // against these samples continues it with its own policy's responses.
        let prefix = tch::no_grad(|| judge.prefix(&prompts.to_device(d)));
        let scores = judge.pooled_scores_after(&prefix, &responses.to_device(d)).ok_or_else(not_pooled)?;
        tensors.insert("scores".to_string(), scores.to_device(tch::Device::Cpu));
        tensors.extend(prefix.to_named());
    }
    tensors.insert("prompts".to_string(), prompts);
    tensors.insert("responses".to_string(), responses.to_device(tch::Device::Cpu));
    art::save_tensors(st, SAMPLES, &tensors)
}

/// Evaluations: one node scores one policy (or PM) checkpoint.
pub fn evaluate(ctx: &Ctx, name: &str, spec: &EvalSpec, st: &mut Staging) -> Result<(), ExecError> {
    let target_key = spec.target;
    let seed = spec.seed;
    let pool = || -> Result<Tensor, ExecError> {
        let k = spec.pool.ok_or_else(|| ExecError::Invalid(format!("{name} has no prompt pool")))?;
        prompt_pool(ctx.store, &k)
    };
    let reference = || -> Result<Policy, ExecError> {
        let k = spec.reference.ok_or_else(|| ExecError::Invalid(format!("{name} needs a reference policy")))?;
        art::load_policy(ctx.store, &k, ctx.device)
    };
    let reference = || -> Result<Policy, ExecError> {
        let r = reference()?;
        art::same_shapes(
            "the reference and the evaluated model",
            art::policy_shapes(&r),
            art::saved_shapes(ctx.store, &target_key)?,
        )?;
        Ok(r)
    };
    let rows: Vec<ResultRow> = match &spec.metric {
        Metric::Kl { prompts } => {
            let policy = art::load_policy(ctx.store, &target_key, ctx.device)?;
            let (prompts, y) = shared_samples(ctx, spec, &pool()?, *prompts)?;
            vec![ResultRow::new(ResultMetric::Kl, &eval::kl_of(&policy, &reference()?, &prompts, &y), None)]
        }
        Metric::Winrate { baseline, baseline_samples, judge, prompts } => {
            let shapes = art::saved_shapes(ctx.store, &target_key)?;
            let judge = art::load_pm(ctx.store, judge, ctx.device)?;
            art::same_shapes("the baseline and the evaluated policy", art::saved_shapes(ctx.store, baseline)?, shapes)?;
            art::same_shapes("the judge and the evaluated policy", art::pm_shapes(&judge), shapes)?;
            let (prompts, y) = shared_samples(ctx, spec, &pool()?, *prompts)?;
            let drawn = art::load_tensors(ctx.store, baseline_samples, SAMPLES)?;
            let (Some(p), Some(yb)) = (drawn.get("prompts"), drawn.get("responses")) else {
                return Err(art::input_err(baseline_samples, "the baseline's samples lack prompts or responses"));
            };
            if p.size() != prompts.size() || !p.equal(&prompts) {
                return Err(art::input_err(baseline_samples, "the baseline was sampled on other prompts"));
            }
            let won = match drawn.get("scores") {
                Some(scores) => {
                    let d = judge.vs().device();
                    let prefix = judge
                        .prefix_from_named(&prompts.to_device(d), |name| drawn.get(name).map(|t| t.shallow_clone()))
                        .ok_or_else(|| {
                            art::input_err(
                                baseline_samples,
                                "the judge's pass over the prompts is missing or misshapen",
                            )
                        })?;
                    eval::winrate_scored(&y, scores, &judge, &prefix).ok_or_else(|| {
                        art::input_err(baseline_samples, "scores kept for a judge whose head is not pooled")
                    })?
                }
                None => eval::winrate_judged(&y, yb, &judge, &prompts),
            };
            vec![ResultRow::new(ResultMetric::Winrate, &won, None)]
        }
        Metric::SelfClassifier { judge, prompts } => {
            let policy = art::load_policy(ctx.store, &target_key, ctx.device)?;
            let judge = art::load_pm(ctx.store, judge, ctx.device)?;
            art::same_shapes(
                "the judge and the evaluated policy",
                art::pm_shapes(&judge),
                art::policy_shapes(&policy),
            )?;
            let prompts = eval::eval_prompts(&pool()?, *prompts as usize, seed);
            vec![ResultRow::new(
                ResultMetric::SelfAccuracy,
                &eval::self_accuracy(&policy, &reference()?, &judge, &prompts, seed),
                None,
            )]
        }
        Metric::WinnerLogprob { data, n } => {
            let policy = art::load_policy(ctx.store, &target_key, ctx.device)?;
            // Data made with other longest records reads at the policy's widths.
            let data = art::load_pairs(ctx.store, data, "pairs.safetensors")?
                .split(0)
                .fit_to(policy.spec.prompt_len, policy.spec.response_len)
                .map_err(|e| ExecError::Invalid(format!("the dataset does not fit the policy's widths: {e}")))?;
            let idx = eval::subsample_rows(data.len(), *n as usize, seed, "eval/rows");
            vec![ResultRow::new(
                ResultMetric::WinnerLogprob,
                &eval::winner_logprob(&policy, &reference()?, &data.select(&idx)),
                None,
            )]
        }
        Metric::Classifier { data, judge, n, windows } => {
            classifier(ctx, name, spec, Classify { data: *data, judge: *judge, n: *n, windows: *windows })?
        }
        Metric::Oracle { world, prompts } => {
            let world = art::load_world(ctx.store, world)?;
            if (world.vocab, world.prompt_len, world.response_len) != art::saved_shapes(ctx.store, &target_key)? {
                return Err(ExecError::Invalid("the world's tokens or widths are not the policy's".into()));
            }
            let (prompts, y) = shared_samples(ctx, spec, &pool()?, *prompts)?;
            let (ps, ys) = (crate::ml::tokens::unpad(&prompts), crate::ml::tokens::unpad(&y));
            let rewards: Vec<f64> = ps.iter().zip(&ys).map(|(p, r)| world.reward(p, r)).collect();
            // A sample stops on its own when its EOS comes before the last slot.
            let stops: Vec<f64> =
                ys.iter().map(|r| if (r.len() as i64) < world.response_len { 1.0 } else { 0.0 }).collect();
            let behaviour = |level: usize| -> Estimate {
                let mut r = rng::stream(seed, "eval/oracle-behaviour", level as u64);
                Estimate::from_samples(
                    &ps.iter().map(|p| world.reward(p, &world.behaviour(level, p, &mut r))).collect::<Vec<_>>(),
                )
            };
            vec![
                ResultRow::new(ResultMetric::OracleReward, &Estimate::from_samples(&rewards), None),
                ResultRow::new(ResultMetric::StopsOnItsOwn, &Estimate::from_samples(&stops), None),
                ResultRow::new(ResultMetric::OracleRewardWorstBehaviour, &behaviour(0), None),
                ResultRow::new(
                    ResultMetric::OracleRewardBestBehaviour,
                    &behaviour(crate::worlds::World::BEHAVIOURS - 1),
                    None,
                ),
            ]
        }
    };
    finite(name, &rows)?;
    art::write_results(st, &rows)
}

/// The first `n` rows of the evaluated policy's shared samples: its
/// prompts (checked to be the evaluation's own) and its responses.
fn shared_samples(ctx: &Ctx, spec: &EvalSpec, pool: &Tensor, n: i64) -> Result<(Tensor, Tensor), ExecError> {
    let key =
        spec.samples.ok_or_else(|| ExecError::Invalid("an evaluation that samples has no samples node".into()))?;
    let drawn = art::load_tensors(ctx.store, &key, SAMPLES)?;
    let (Some(p), Some(y)) = (drawn.get("prompts"), drawn.get("responses")) else {
        return Err(art::input_err(&key, "the policy's samples lack prompts or responses"));
    };
    let prompts = eval::eval_prompts(pool, n as usize, spec.seed);
    let rows = p.size()[0];
    if rows < n || y.size()[0] != rows || !p.narrow(0, 0, n).equal(&prompts) {
        return Err(art::input_err(&key, "the policy was sampled on other prompts"));
    }
    Ok((prompts, y.narrow(0, 0, n)))
}

/// An evaluation that measured something (n > 0) must have measured a
/// number: a NaN score or value (a policy or judge gone non-finite) fails
/// the node rather than enter figures as a win rate of ½.
fn finite(name: &str, rows: &[ResultRow]) -> Result<(), ExecError> {
    for r in rows.iter().filter(|r| r.n > 0) {
        let bad = std::iter::once(r.value).chain(r.units.iter().copied()).chain(r.scores.iter().copied());
        if let Some(x) = bad.into_iter().find(|x| !x.is_finite()) {
            return Err(ExecError::Invalid(format!(
                "`{name}`: its {} is not finite ({x}); a model it reads holds NaN or infinite values",
                r.metric
            )));
        }
    }
    Ok(())
}

/// The arguments of a classifier evaluation.
struct Classify {
    data: Classified,
    judge: Option<Key>,
    n: i64,
    windows: i64,
}

fn classifier(ctx: &Ctx, name: &str, spec: &EvalSpec, c: Classify) -> Result<Vec<ResultRow>, ExecError> {
    let (target_key, seed) = (&spec.target, spec.seed);
    let data_key = c.data.key();
    let n = c.n as usize;
    // The data: a dataset's train split, or windows along an online run's stream.
    let windows: Vec<(Option<i64>, Pairs)> = if let Classified::Stream(_) = c.data {
        let stream = art::load_pairs(ctx.store, &data_key, "stream.safetensors")
            .map_err(|_| crate::exec::artifacts::input_err(&data_key, "has no data stream: is it an online run?"))?;
        let steps: Vec<i64> = Vec::try_from(
            stream
                .columns
                .get("step")
                .ok_or_else(|| crate::exec::artifacts::input_err(&data_key, "stream without steps"))?
                .to_kind(Kind::Int64),
        )
        .unwrap_or_default();
        let k = c.windows.max(1) as usize;
        let total = stream.len() as usize;
        let mut out = vec![];
        for w in 0..k {
            // Window w: the rows whose position falls in the w-th of k equal parts.
            let (lo, hi) = (w * total / k, ((w + 1) * total / k).max(w * total / k + 1).min(total));
            let rows: Vec<i64> = (lo as i64..hi as i64).collect();
            let take: Vec<i64> = eval::subsample_rows(rows.len() as i64, n, seed.wrapping_add(w as u64), "eval/window")
                .into_iter()
                .map(|i| rows[i as usize])
                .collect();
            let centre = steps.get((lo + hi) / 2).copied();
            out.push((centre, stream.select(&take)));
        }
        out
    } else {
        let data = art::load_pairs(ctx.store, &data_key, "pairs.safetensors")?.split(0);
        let idx = eval::subsample_rows(data.len(), n, seed, "eval/rows");
        vec![(None, data.select(&idx))]
    };
    let judge = match c.judge {
        Some(k) => Some(art::load_pm(ctx.store, &k, ctx.device)?),
        None => None,
    };
    let target_is_pm = art::read_json::<serde_json::Value>(ctx.store, target_key, "spec.json")?["kind"] == "pm";
    let t = art::saved_shapes(ctx.store, target_key)?;
    if let Some(j) = &judge {
        art::same_shapes("the judge and the classified model", art::pm_shapes(j), t)?;
    }
    // Data made with other longest records (a held-out file) reads at the
    // classified model's widths; rows longer than those are refused, counted.
    let windows =
        windows
            .into_iter()
            .map(|(c, w)| w.fit_to(t.1, t.2).map(|w| (c, w)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ExecError::Invalid(format!("the data does not fit the classified model's widths: {e}")))?;
    // The classifier: a PM by the A.2 sign rule, or a policy by Appendix E.
    // One value per node, never copied around: its size does not matter.
    #[allow(clippy::large_enum_variant)]
    enum Scorer {
        Pm(PreferenceModel),
        Policy(Policy, Policy),
    }
    let scorer = if target_is_pm {
        Scorer::Pm(art::load_pm(ctx.store, target_key, ctx.device)?)
    } else {
        let rk = spec.reference.ok_or_else(|| ExecError::Invalid(format!("{name} needs a reference policy")))?;
        Scorer::Policy(
            art::load_policy(ctx.store, target_key, ctx.device)?,
            art::load_policy(ctx.store, &rk, ctx.device)?,
        )
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
        rows.push(ResultRow::new(ResultMetric::Accuracy, &est, step));
    }
    Ok(rows)
}
