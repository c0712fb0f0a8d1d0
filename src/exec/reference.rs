//! A `reference_logprobs` node: the frozen reference policy's sequence
//! log-probs of every pair a run can draw from fixed data (a dataset's train
//! split or an online run's stream), computed once and read by every offline
//! and replay run sharing that reference and data — the nine members of a
//! learning-rate × β grid, every shuffle level of a replay — in place of a
//! reference forward pass at each of their steps.

use std::collections::BTreeMap;

use crate::exec::artifacts::{self as art, ExecError};
use crate::exec::nodes::Ctx;
use crate::exec::store::Staging;
use crate::ml::data::Pairs;
use crate::ml::train;
use crate::plan::op::{LogProb, ReferenceLogprobsSpec, TrainingData};
use crate::plan::Key;

/// The file the node holds: `chosen` and `rejected`, float32 [N], row i
/// for row i of the data as training indexes it.
pub const FILE: &str = "reference.safetensors";

/// Rows per forward pass over a dataset: large batches, few calls.
pub const DATASET_CHUNK: i64 = 256;

/// The rows a run trains on, in the order training indexes them.
pub fn training_rows(ctx: &Ctx, data: &TrainingData) -> Result<Pairs, ExecError> {
    match data {
        TrainingData::Pairs(k) => Ok(art::load_pairs(ctx.store, k, "pairs.safetensors")?.split(0)),
        TrainingData::Stream(k) => art::load_pairs(ctx.store, k, "stream.safetensors"),
    }
}

/// How the rows are cut into forward passes. A stream is cut at its online
/// steps, so each chunk is the very batch the online run scored with this
/// reference: a replay in exact order then reads the online run's own
/// reference numbers, bit for bit (tests/micro_study.rs). A dataset is cut
/// into [`DATASET_CHUNK`]-row passes.
fn chunks(data: &TrainingData, rows: &Pairs) -> Result<Vec<i64>, ExecError> {
    let n = rows.len();
    match data {
        TrainingData::Pairs(_) => {
            Ok((0..n).step_by(DATASET_CHUNK as usize).map(|start| DATASET_CHUNK.min(n - start)).collect())
        }
        TrainingData::Stream(k) => {
            let steps = rows.columns.get("step").ok_or_else(|| art::input_err(k, "the stream has no `step` column"))?;
            let steps: Vec<i64> = Vec::try_from(steps.to_kind(tch::Kind::Int64))
                .map_err(|e| art::input_err(k, format!("the stream's `step` column: {e}")))?;
            let mut out: Vec<i64> = vec![];
            for (i, s) in steps.iter().enumerate() {
                if i > 0 && steps[i - 1] == *s {
                    *out.last_mut().expect("a chunk is open") += 1;
                } else {
                    out.push(1);
                }
            }
            Ok(out)
        }
    }
}

pub fn compute(ctx: &Ctx, spec: &ReferenceLogprobsSpec, st: &mut Staging) -> Result<(), ExecError> {
    let reference = art::load_policy(ctx.store, &spec.reference, ctx.device)?;
    let rows = training_rows(ctx, &spec.data)?;
    let (_, prompt, response) = art::policy_shapes(&reference);
    if (rows.prompt_len(), rows.response_len()) != (prompt, response) {
        return Err(ExecError::Invalid(
            "the training data's prompts or responses are not the reference policy's widths".into(),
        ));
    }
    let mean = spec.logprob == LogProb::Mean;
    let (mut chosen, mut rejected) = (vec![], vec![]);
    let mut start = 0;
    for n in chunks(&spec.data, &rows)? {
        ctx.check_stop()?;
        let (c, r) = train::reference_logprobs(&reference, &rows.select(&(start..start + n).collect::<Vec<_>>()), mean);
        chosen.push(c.to_device(tch::Device::Cpu));
        rejected.push(r.to_device(tch::Device::Cpu));
        start += n;
    }
    let cat = |parts: &[tch::Tensor]| match parts {
        [] => tch::Tensor::zeros([0], (tch::Kind::Float, tch::Device::Cpu)),
        _ => tch::Tensor::cat(parts, 0),
    };
    let tensors = BTreeMap::from([("chosen".to_string(), cat(&chosen)), ("rejected".to_string(), cat(&rejected))]);
    art::save_tensors(st, FILE, &tensors)
}

/// A run's precomputed reference log-probs, [N] chosen and [N] rejected,
/// checked against the number of rows it trains on.
pub fn load(ctx: &Ctx, key: &Key, rows: i64) -> Result<(tch::Tensor, tch::Tensor), ExecError> {
    let mut t = art::load_tensors(ctx.store, key, FILE)?;
    let mut take = |name: &str| t.remove(name).ok_or_else(|| art::input_err(key, format!("{FILE} has no `{name}`")));
    let (c, r) = (take("chosen")?, take("rejected")?);
    if c.size() != [rows] || r.size() != [rows] {
        return Err(art::input_err(
            key,
            format!("it holds reference log-probs of {:?} rows; the run trains on {rows}", c.size()),
        ));
    }
    Ok((c, r))
}
