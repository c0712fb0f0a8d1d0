//! Reading and writing the artifacts of each node kind.
//!
//! | node kind | files |
//! |---|---|
//! | `world.*` | `world.json` |
//! | `dataset.*` | `pairs.safetensors`, `meta.json` (vocab, lengths, counts, label statistics) |
//! | `model.sft`, `model.pm`, `checkpoint` | `model.safetensors`, `spec.json`, `metrics.csv`; checkpoints add `optim.safetensors`, `state.json`, and for online runs `stream.safetensors` (D_online so far) |
//! | `eval.*` | `results.csv` (metric, value, stderr, ci_low, ci_high, n, data_step) |

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::exec::result_metric::ResultMetric;
use crate::exec::store::{Staging, Store, StoreError};
use crate::ml::data::Pairs;
use crate::ml::hf::Pretrained;
use crate::ml::policy::{Policy, PolicySpec};
use crate::ml::preference::{PmHead, PmSpec, PreferenceModel};
use crate::plan::Key;
use crate::worlds::{Flavour, World};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ExecError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),

    #[error("input {key} is not usable: {what}")]
    #[diagnostic(
        code(tandem::exec::input),
        help("`tandem show {key}` shows the entry; `tandem verify` checks the cache")
    )]
    Input { key: String, what: String },

    #[error("{0}")]
    #[diagnostic(
        code(tandem::exec::invalid),
        help("the experiment asks for something this node cannot do; fix the .exp file")
    )]
    Invalid(String),

    #[error("libtorch failed: {0}")]
    #[diagnostic(code(tandem::exec::torch))]
    Torch(String),

    #[error("`{node}` diverged at step {step}: {what}")]
    #[diagnostic(code(tandem::exec::diverged), help("{hint}"))]
    Diverged { node: String, step: i64, what: String, hint: String },

    #[error("interrupted")]
    #[diagnostic(
        code(tandem::exec::interrupted),
        help("finished nodes and saved checkpoints are kept; run again to resume")
    )]
    Interrupted,
}

impl From<tch::TchError> for ExecError {
    fn from(e: tch::TchError) -> Self {
        // libtorch appends a C++ backtrace; its first line is the message.
        ExecError::Torch(e.to_string().lines().next().unwrap_or_default().to_string())
    }
}

pub fn input_err(key: &Key, what: impl Into<String>) -> ExecError {
    ExecError::Input { key: key.short(), what: what.into() }
}

/// Shapes of a dataset: what models trained on it are built for.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct DataMeta {
    pub vocab: i64,
    pub prompt_len: i64,
    pub response_len: i64,
    pub rows: i64,
    pub train: i64,
    pub val: i64,
    /// An imported dataset's records cut to its widths (absent elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut: Option<crate::worlds::jsonl::Cut>,
}

impl DataMeta {
    /// The shapes of `p`, its validation rows those of split 1.
    pub fn of(p: &Pairs, vocab: i64) -> DataMeta {
        let split: Vec<i64> = p
            .columns
            .get("split")
            .map(|s| Vec::try_from(s.to_kind(tch::Kind::Int64)).unwrap_or_default())
            .unwrap_or_default();
        let val = split.iter().filter(|&&s| s == 1).count() as i64;
        DataMeta {
            vocab,
            prompt_len: p.prompt_len(),
            response_len: p.response_len(),
            rows: p.len(),
            train: p.len() - val,
            val,
            cut: None,
        }
    }
}

pub fn read_json<T: for<'de> Deserialize<'de>>(store: &Store, key: &Key, name: &str) -> Result<T, ExecError> {
    let bytes = store.read(key, name)?;
    serde_json::from_slice(&bytes).map_err(|e| input_err(key, format!("{name}: {e}")))
}

pub fn write_json<T: Serialize>(st: &mut Staging, name: &str, v: &T) -> Result<(), ExecError> {
    st.write(name, &serde_json::to_vec_pretty(v).expect("serializable"))?;
    Ok(())
}

pub fn load_world(store: &Store, key: &Key) -> Result<World, ExecError> {
    let m = store.manifest(key)?;
    let flavour = m
        .kind
        .strip_prefix("world.")
        .and_then(Flavour::from_name)
        .ok_or_else(|| input_err(key, format!("{} is not a world", m.kind)))?;
    let p = &m.params;
    let int = |k: &str| p[k].as_i64().ok_or_else(|| input_err(key, format!("world without `{k}`")));
    let float = |k: &str| p[k].as_f64().ok_or_else(|| input_err(key, format!("world without `{k}`")));
    // `interaction` is left out of the key at its default 0 (older entries lack it).
    let interaction = if p.get("interaction").is_some() { float("interaction")? } else { 0.0 };
    Ok(World::new(
        flavour,
        int("seed")? as u64,
        int("vocab")?,
        int("prompt_len")?,
        int("response_len")?,
        float("noise")?,
    )
    .with_interaction(interaction))
}

pub fn load_pairs(store: &Store, key: &Key, name: &str) -> Result<Pairs, ExecError> {
    let path = store.verified_path(key, name)?;
    Pairs::load(&path, Device::Cpu).map_err(|e| input_err(key, e))
}

pub fn save_pairs(st: &mut Staging, name: &str, pairs: &Pairs) -> Result<(), ExecError> {
    let columns: i64 = pairs.columns.values().map(tensor_bytes).sum();
    let needed = 2 * (pairs.prompts.numel() + pairs.chosen.numel() + pairs.rejected.numel()) as i64 + columns;
    libtorch_write(st, name, needed as u64, |path| pairs.save(path))
}

fn tensor_bytes(t: &Tensor) -> i64 {
    (t.numel() * t.kind().elt_size_in_bytes()) as i64
}

pub fn load_meta(store: &Store, key: &Key) -> Result<DataMeta, ExecError> {
    read_json(store, key, "meta.json")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SpecJson {
    kind: String,
    vocab: i64,
    layers: i64,
    width: i64,
    heads: i64,
    prompt_len: i64,
    response_len: i64,
    /// Preference models only: the head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    head: Option<String>,
    /// `pretrained` for a policy kept as a Hugging Face directory
    /// (config.json, tokenizer.json, model.safetensors); absent for
    /// tandem's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    format: Option<String>,
}

const PRETRAINED_FORMAT: &str = "pretrained";

pub fn write_policy(st: &mut Staging, policy: &Policy) -> Result<(), ExecError> {
    let s = policy.spec;
    write_json(
        st,
        "spec.json",
        &SpecJson {
            kind: "policy".into(),
            vocab: s.vocab,
            layers: s.layers,
            width: s.width,
            heads: s.heads,
            prompt_len: s.prompt_len,
            response_len: s.response_len,
            head: None,
            format: policy.pretrained().map(|_| PRETRAINED_FORMAT.into()),
        },
    )?;
    // A Hugging Face directory in the entry: `tandem export` copies it out as is.
    write_weights(st, policy.pretrained(), policy.vs())
}

/// A model's weights: a pretrained one's as a Hugging Face directory
/// (config, tokenizer, model.safetensors under Hugging Face's names, a new
/// head among them), tandem's own as `model.safetensors`.
fn write_weights(st: &mut Staging, pretrained: Option<&Pretrained>, vs: &tch::nn::VarStore) -> Result<(), ExecError> {
    match pretrained {
        Some(model) => {
            model.write_files(st.path()).map_err(|e| ExecError::Invalid(e.to_string()))?;
            for name in Pretrained::FILES {
                st.adopt(name)?;
            }
            Ok(())
        }
        None => save_vars(st, "model.safetensors", vs),
    }
}

/// A pretrained model as a policy over prompts and responses of these widths.
pub fn pretrained_policy(
    model: Result<Pretrained, crate::hfdir::HfError>,
    key: &Key,
    prompt_len: i64,
    response_len: i64,
) -> Result<Policy, ExecError> {
    let model = model.map_err(|e| input_err(key, e.to_string()))?;
    Policy::from_pretrained(model, prompt_len, response_len).map_err(ExecError::Invalid)
}

pub fn write_pm(st: &mut Staging, pm: &PreferenceModel) -> Result<(), ExecError> {
    let s = pm.spec;
    write_json(
        st,
        "spec.json",
        &SpecJson {
            kind: "pm".into(),
            vocab: s.vocab,
            layers: s.layers,
            width: s.width,
            heads: s.heads,
            prompt_len: s.prompt_len,
            response_len: s.response_len,
            head: Some(pm.kind.name().into()),
            format: pm.pretrained().map(|_| PRETRAINED_FORMAT.into()),
        },
    )?;
    // A pretrained trunk's head is `score.*` among its weights.
    write_weights(st, pm.pretrained(), pm.vs())
}

fn save_vars(st: &mut Staging, name: &str, vs: &tch::nn::VarStore) -> Result<(), ExecError> {
    let mut vars: Vec<(String, Tensor)> =
        vs.variables().into_iter().map(|(k, v)| (k, v.to_device(Device::Cpu))).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    write_safetensors(st, name, &vars)
}

fn write_safetensors(st: &mut Staging, name: &str, tensors: &[(String, Tensor)]) -> Result<(), ExecError> {
    let needed: i64 = tensors.iter().map(|(k, t)| tensor_bytes(t) + k.len() as i64 + 64).sum();
    libtorch_write(st, name, needed as u64, |path| Tensor::write_safetensors(tensors, path))
}

/// A file libtorch writes into the staging folder itself, then adopted. Its
/// errors come in libtorch's words; on a filesystem with less than the file's
/// `needed` bytes free the error is said as a full cache.
fn libtorch_write(
    st: &mut Staging,
    name: &str,
    needed: u64,
    write: impl FnOnce(&std::path::Path) -> Result<(), tch::TchError>,
) -> Result<(), ExecError> {
    let path = st.path().join(name);
    if let Err(e) = write(&path) {
        // What is free once the partial file is gone is what counts.
        let _ = std::fs::remove_file(&path);
        return Err(match st.out_of_space(needed) {
            Some(full) => full.into(),
            None => e.into(),
        });
    }
    st.adopt(name)?;
    Ok(())
}

pub fn save_tensors(st: &mut Staging, name: &str, tensors: &BTreeMap<String, Tensor>) -> Result<(), ExecError> {
    let named: Vec<(String, Tensor)> = tensors.iter().map(|(k, v)| (k.clone(), v.to_device(Device::Cpu))).collect();
    write_safetensors(st, name, &named)
}

pub fn load_tensors(store: &Store, key: &Key, name: &str) -> Result<BTreeMap<String, Tensor>, ExecError> {
    let path: PathBuf = store.verified_path(key, name)?;
    Ok(Tensor::read_safetensors(&path)?.into_iter().collect())
}

pub fn load_policy(store: &Store, key: &Key, device: Device) -> Result<Policy, ExecError> {
    let s: SpecJson = read_json(store, key, "spec.json")?;
    if s.kind != "policy" {
        return Err(input_err(key, "not a policy"));
    }
    if s.format.as_deref() == Some(PRETRAINED_FORMAT) {
        let [config, tokenizer, weights] = Pretrained::FILES.map(|f| store.verified_path(key, f));
        let model = Pretrained::load_files(&store.entry_dir(key), &config?, &tokenizer?, &[weights?], device);
        return pretrained_policy(model, key, s.prompt_len, s.response_len);
    }
    let mut policy = Policy::new(
        PolicySpec {
            vocab: s.vocab,
            layers: s.layers,
            width: s.width,
            heads: s.heads,
            prompt_len: s.prompt_len,
            response_len: s.response_len,
        },
        device,
        0,
    );
    let path = store.verified_path(key, "model.safetensors")?;
    tch::no_grad(|| policy.vs().read_safetensors(&path))?;
    let _ = &mut policy;
    Ok(policy)
}

pub fn load_pm(store: &Store, key: &Key, device: Device) -> Result<PreferenceModel, ExecError> {
    let s: SpecJson = read_json(store, key, "spec.json")?;
    if s.kind != "pm" {
        return Err(input_err(key, "not a preference model"));
    }
    let head = match s.head.as_deref() {
        None => return Err(input_err(
            key,
            "this preference model was made by an older tandem (no head recorded); run the study again to rebuild it",
        )),
        Some(name) => {
            PmHead::from_name(name).ok_or_else(|| input_err(key, format!("unknown preference-model head {name:?}")))?
        }
    };
    if s.format.as_deref() == Some(PRETRAINED_FORMAT) {
        let [config, tokenizer, weights] = Pretrained::FILES.map(|f| store.verified_path(key, f));
        let weights = weights?;
        let model = Pretrained::load_files(
            &store.entry_dir(key),
            &config?,
            &tokenizer?,
            std::slice::from_ref(&weights),
            device,
        )
        .map_err(|e| input_err(key, e.to_string()))?;
        let pm = PreferenceModel::from_pretrained(model, s.prompt_len, s.response_len, 0, head)
            .map_err(ExecError::Invalid)?;
        // The head's weights, beside the trunk's.
        tch::no_grad(|| pm.vs().read_safetensors(&weights))?;
        return Ok(pm);
    }
    let pm = PreferenceModel::new(
        PmSpec {
            vocab: s.vocab,
            layers: s.layers,
            width: s.width,
            heads: s.heads,
            prompt_len: s.prompt_len,
            response_len: s.response_len,
        },
        head,
        device,
        0,
    );
    let path = store.verified_path(key, "model.safetensors")?;
    tch::no_grad(|| pm.vs().read_safetensors(&path))?;
    Ok(pm)
}

/// Shapes two models must share to work together: a vocabulary (the same
/// token ids) and the same prompt and response widths.
pub fn same_shapes(what: &str, a: (i64, i64, i64), b: (i64, i64, i64)) -> Result<(), ExecError> {
    if a == b {
        return Ok(());
    }
    Err(ExecError::Invalid(format!(
        "{what}: one works on {} tokens with prompts of {} and responses of {}, the other on {} tokens, {} and {}; models must come from the same world or dataset",
        a.0, a.1, a.2, b.0, b.1, b.2
    )))
}

pub fn policy_shapes(p: &Policy) -> (i64, i64, i64) {
    (p.spec.vocab, p.spec.prompt_len, p.spec.response_len)
}

pub fn pm_shapes(p: &PreferenceModel) -> (i64, i64, i64) {
    (p.spec.vocab, p.spec.prompt_len, p.spec.response_len)
}

/// The shapes of a saved model, from its spec.json, without loading it.
pub fn saved_shapes(store: &Store, key: &Key) -> Result<(i64, i64, i64), ExecError> {
    let s: SpecJson = read_json(store, key, "spec.json")?;
    Ok((s.vocab, s.prompt_len, s.response_len))
}

pub fn data_shapes(m: &DataMeta) -> (i64, i64, i64) {
    (m.vocab, m.prompt_len, m.response_len)
}

/// One line of a training log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricRow {
    pub step: i64,
    pub loss: f64,
    pub grad_norm: f64,
    pub lr: f64,
    pub margin: Option<f64>,
    // The columns below were added later: entries written before lack them
    // and read as empty.
    /// Preference steps: the policy's mean log-prob of the chosen and the
    /// rejected responses of the batch.
    #[serde(default)]
    pub chosen_logprob: Option<f64>,
    #[serde(default)]
    pub rejected_logprob: Option<f64>,
    /// Online steps: the mean log π(y|x) − log π_ref(y|x) of the batch's
    /// samples, drawn from the policy before the step: a one-sample
    /// estimate of KL(π ‖ π_ref) on the run's prompts (None without a
    /// reference, as for Best-of-2).
    #[serde(default)]
    pub sample_kl: Option<f64>,
    /// Online steps: the samples' mean length in tokens (EOS included).
    #[serde(default)]
    pub sample_length: Option<f64>,
    /// Online steps: the judge's mean margin for the chosen sample over the
    /// rejected one, in [−1, 1].
    #[serde(default)]
    pub judge_margin: Option<f64>,
    /// Online steps with a pooled judge: its mean score s(x, y) of the samples.
    #[serde(default)]
    pub judge_score: Option<f64>,
}

impl MetricRow {
    /// The row of training step `step` (1-based).
    pub fn of_step(
        step: i64,
        m: &crate::ml::train::StepMetrics,
        online: Option<crate::ml::train::OnlineStats>,
    ) -> MetricRow {
        let sample_kl = match (online, m.chosen_log_ratio, m.rejected_log_ratio) {
            (Some(_), Some(c), Some(r)) => Some((c + r) / 2.0),
            _ => None,
        };
        MetricRow {
            step,
            loss: m.loss,
            grad_norm: m.grad_norm,
            lr: m.lr,
            margin: m.margin,
            chosen_logprob: m.chosen_logprob,
            rejected_logprob: m.rejected_logprob,
            sample_kl,
            sample_length: online.map(|o| o.length),
            judge_margin: online.map(|o| o.judge_margin),
            judge_score: online.and_then(|o| o.judge_score),
        }
    }
}

/// Rows as CSV bytes, with a header from their field names.
pub fn csv_bytes<T: Serialize>(rows: &[T]) -> Result<Vec<u8>, String> {
    let mut w = csv::Writer::from_writer(vec![]);
    for r in rows {
        w.serialize(r).map_err(|e| e.to_string())?;
    }
    w.into_inner().map_err(|e| e.to_string())
}

pub fn write_metrics(st: &mut Staging, rows: &[MetricRow]) -> Result<(), ExecError> {
    st.write("metrics.csv", &csv_bytes(rows).map_err(ExecError::Invalid)?)?;
    Ok(())
}

pub fn read_metrics(store: &Store, key: &Key) -> Result<Vec<MetricRow>, ExecError> {
    let bytes = store.read(key, "metrics.csv")?;
    let mut r = csv::Reader::from_reader(bytes.as_slice());
    r.deserialize().collect::<Result<Vec<MetricRow>, _>>().map_err(|e| input_err(key, format!("metrics.csv: {e}")))
}

/// One row of an evaluation's results.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResultRow {
    pub metric: ResultMetric,
    pub value: f64,
    pub stderr: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub n: usize,
    /// For evaluations along a data stream: the stream step the window is centred on.
    pub data_step: Option<i64>,
    /// Each unit's value and score (`units.csv`), not in `results.csv`.
    #[serde(skip)]
    pub units: Vec<f64>,
    #[serde(skip)]
    pub scores: Vec<f64>,
}

/// One unit (prompt, pair or sample) of one result: `units.csv`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UnitRow {
    pub metric: ResultMetric,
    pub data_step: Option<i64>,
    /// The unit's index in the evaluation's order: the same prompt (pair)
    /// for every target evaluated on the same prompts (pairs) and seed.
    pub unit: usize,
    pub value: f64,
    pub score: Option<f64>,
}

impl ResultRow {
    pub fn new(metric: ResultMetric, e: &crate::ml::eval::Estimate, data_step: Option<i64>) -> ResultRow {
        let (lo, hi) = e.ci95();
        ResultRow {
            metric,
            value: e.value,
            stderr: e.stderr,
            ci_low: lo,
            ci_high: hi,
            n: e.n,
            data_step,
            units: e.units.clone(),
            scores: e.scores.clone(),
        }
    }
}

/// `results.csv` (one row per metric) and `units.csv` (one per unit).
pub fn write_results(st: &mut Staging, rows: &[ResultRow]) -> Result<(), ExecError> {
    st.write("results.csv", &csv_bytes(rows).map_err(ExecError::Invalid)?)?;
    let units: Vec<UnitRow> = rows
        .iter()
        .flat_map(|r| {
            r.units.iter().enumerate().map(|(i, v)| UnitRow {
                metric: r.metric,
                data_step: r.data_step,
                unit: i,
                value: *v,
                score: r.scores.get(i).copied(),
            })
        })
        .collect();
    st.write("units.csv", &csv_bytes(&units).map_err(ExecError::Invalid)?)?;
    Ok(())
}

/// Every unit of an evaluation's results, in `units.csv` order.
pub fn read_units(store: &Store, key: &Key) -> Result<Vec<UnitRow>, ExecError> {
    let bytes = store.read(key, "units.csv")?;
    let mut r = csv::Reader::from_reader(bytes.as_slice());
    r.deserialize().collect::<Result<Vec<UnitRow>, _>>().map_err(|e| input_err(key, format!("units.csv: {e}")))
}

pub fn read_results(store: &Store, key: &Key) -> Result<Vec<ResultRow>, ExecError> {
    let bytes = store.read(key, "results.csv")?;
    let mut r = csv::Reader::from_reader(bytes.as_slice());
    r.deserialize().collect::<Result<Vec<ResultRow>, _>>().map_err(|e| input_err(key, format!("results.csv: {e}")))
}
