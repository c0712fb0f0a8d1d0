//! What a plan node computes, as Rust types: one variant per node kind, each
//! with typed fields. Lowering builds an [`Op`] once from the checked
//! program; the key is its canonical serialization ([`Op::key_params`]); the
//! executor matches on it exhaustively. Nothing downstream reads a parameter
//! by its name.
//!
//! Fields that do not change what is computed (how far a run trains, where a
//! JSONL file lies, how a figure is labelled) live beside the keyed fields
//! but never enter [`Op::key_params`]; [`Op::merge`] says how two
//! declarations lowered to the same node combine them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::check::program::InstanceName;
use crate::plan::key::{CValue, Key};

/// A node of the plan: what it computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    World(WorldSpec),
    Generate(GenerateSpec),
    Relabel(RelabelSpec),
    Pairs(PairsSpec),
    Jsonl(JsonlSpec),
    /// A pretrained model's files, copied into the cache.
    Pretrained(PretrainedSpec),
    Sft(ModelSpec),
    Pm(ModelSpec, PmHead),
    /// A training run, keyed without its length.
    Train(TrainSpec),
    /// A run's checkpoint at a step (> 0); written by the run's training.
    Checkpoint {
        run: Key,
        step: i64,
    },
    /// A policy's samples on evaluation prompts, drawn once and shared by
    /// every win-rate evaluation against that policy as its baseline.
    Samples(SamplesSpec),
    /// A frozen reference policy's log-probs of a fixed training set,
    /// computed once and read by every offline or replay run on it.
    ReferenceLogprobs(ReferenceLogprobsSpec),
    /// One evaluation of one target.
    Eval(EvalSpec),
    /// Drawn by the report from its evaluations' rows.
    Figure(FigureSpec),
}

/// How libtorch computes a node: a numerics profile.
///
/// - `Portable` (the default): meant to give the same bytes on every x86-64
///   machine with AVX2 and FMA and at every `--threads`: the models' matrix
///   products computed by tandem's own product (`ml::matmul`), ATen's kernels
///   pinned to AVX2, MKL's conditional numerical reproducibility on its
///   COMPATIBLE branch for whatever still reaches it, one intra-op thread per
///   node.
/// - `Native`: the host's own kernels and any thread count; fastest, and its
///   bytes may differ from host to host under one key.
/// - `Cuda`: on the GPU, with cuBLAS's deterministic workspace.
///
/// Worlds, generated data and imports do not depend on it (pure Rust), so
/// their keys leave it out and every profile shares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Numerics {
    Portable,
    Native,
    Cuda,
}

impl Numerics {
    pub const ALL: [Numerics; 3] = [Numerics::Portable, Numerics::Native, Numerics::Cuda];

    pub fn name(self) -> &'static str {
        match self {
            Numerics::Portable => "portable",
            Numerics::Native => "native",
            Numerics::Cuda => "cuda",
        }
    }

    /// The profile as a key names it. A profile's revision goes up whenever
    /// what it pins changes bytes: `portable` 2 computes linear layers with
    /// tandem's own matrix product instead of MKL's COMPATIBLE branch
    /// (`ml::matmul`); `portable` 3 takes Adam's square root correctly
    /// rounded instead of from MKL's vector math, which differs between
    /// Intel and AMD processors (`ml::exact_sqrt`).
    pub fn key_name(self) -> &'static str {
        match self {
            Numerics::Portable => "portable 3",
            Numerics::Native => "native",
            Numerics::Cuda => "cuda",
        }
    }

    pub fn from_name(name: &str) -> Option<Numerics> {
        Numerics::ALL.into_iter().find(|n| n.name() == name)
    }
}

/// The floating-point format a training node computes in.
///
/// - `Float32` (the default): every tensor in float32.
/// - `Bf16`: mixed precision. Parameters, gradients and Adam's moments stay
///   float32 (the master copy); libtorch's autocast runs matrix products and
///   attention in bfloat16 (inputs rounded to 8 significant bits, sums kept
///   in float32); layer norms, softmaxes and the output layers (a policy's
///   logits, a PM's score head) run in float32 (ml::autocast). Everything
///   the node computes runs so: its own model's passes, and the reference's
///   and the judge's passes inside an online run. Evaluations are float32
///   whatever their target was trained in.
///
/// bf16 kernels differ between instruction sets (AVX-512 BF16 against
/// AVX2's emulation) and libtorch versions, so the `portable` profile
/// refuses it (`tandem::precision`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Precision {
    #[default]
    Float32,
    Bf16,
}

impl Precision {
    pub const ALL: [Precision; 2] = [Precision::Float32, Precision::Bf16];

    /// As the language spells it (`precision: "bf16"`).
    pub fn name(self) -> &'static str {
        match self {
            Precision::Float32 => "float32",
            Precision::Bf16 => "bf16",
        }
    }

    pub fn from_name(name: &str) -> Option<Precision> {
        Precision::ALL.into_iter().find(|p| p.name() == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorldFlavour {
    Summarize,
    Helpful,
    Harmless,
    Arena,
}

impl WorldFlavour {
    pub const ALL: [WorldFlavour; 4] =
        [WorldFlavour::Summarize, WorldFlavour::Helpful, WorldFlavour::Harmless, WorldFlavour::Arena];

    /// The constructor that makes it (`summarize(...)`).
    pub fn name(self) -> &'static str {
        match self {
            WorldFlavour::Summarize => "summarize",
            WorldFlavour::Helpful => "helpful",
            WorldFlavour::Harmless => "harmless",
            WorldFlavour::Arena => "arena",
        }
    }

    pub fn from_name(name: &str) -> Option<WorldFlavour> {
        WorldFlavour::ALL.into_iter().find(|f| f.name() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorldSpec {
    pub flavour: WorldFlavour,
    pub seed: u64,
    pub vocab: i64,
    pub prompt_len: i64,
    pub response_len: i64,
    pub noise: f64,
    /// Added after keys were in use: left out of the key at 0.
    #[serde(default)]
    pub interaction: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateSpec {
    pub world: Key,
    pub pairs: i64,
    pub val_fraction: f64,
    pub seed: u64,
    /// Added after keys were in use: left out of the key at 0.
    pub overshoot: f64,
    /// Added after keys were in use: left out of the key at 0.
    #[serde(default)]
    pub hide_best: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelabelSpec {
    pub data: Key,
    pub judge: Key,
    pub seed: u64,
    /// How libtorch computes it (enters the key: profiles never share an entry).
    pub numerics: Numerics,
}

/// `pairs(a, b, prompts, judge)`: one response from each policy, labelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairsSpec {
    pub a: Key,
    pub b: Key,
    pub prompts: Key,
    pub judge: Key,
    pub n: i64,
    pub temperature: f64,
    pub seed: u64,
    /// How libtorch computes it (enters the key: profiles never share an entry).
    pub numerics: Numerics,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tokenizer {
    Char,
    Byte,
}

impl Tokenizer {
    pub fn name(self) -> &'static str {
        match self {
            Tokenizer::Char => "char",
            Tokenizer::Byte => "byte",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonlSpec {
    /// blake3 of the file: its content, not its path, enters the key.
    pub content: String,
    pub tokenizer: Tokenizer,
    /// Where the file was when the plan was made (not in the key).
    pub path: String,
    /// A pretrained model whose tokenizer reads the text instead of
    /// `tokenizer` (left out of the key when absent).
    pub model: Option<Key>,
    /// Conversational records: the chat template (and its special tokens)
    /// that renders them, from the model's tokenizer_config.json; in the
    /// key, since it decides the text (absent for plain records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<crate::hfdir::chat::ChatTemplate>,
    /// How the file holds its records (the node's kind says which).
    #[serde(default)]
    pub format: RecordFile,
    /// The share of records held out as the validation split (0: none;
    /// left out of the key then).
    #[serde(default)]
    pub val_fraction: f64,
    /// The widths in tokens records are cut or padded to (None: the
    /// longest record's; left out of the key then).
    #[serde(default)]
    pub max_prompt_len: Option<i64>,
    #[serde(default)]
    pub max_response_len: Option<i64>,
}

/// The file an imported dataset is read from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordFile {
    /// One JSON object per line.
    #[default]
    Jsonl,
    /// One row per record (Hugging Face datasets' on-disk format).
    Parquet,
}

/// `pretrained(path)`: a Hugging Face model directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainedSpec {
    /// blake3 of the directory's files (`hfdir::content_digest`): the key.
    pub content: String,
    /// blake3 of its tokenizer.json: which token ids it reads (not in the key).
    pub tokenizer: String,
    /// Where the directory was when the plan was made (not in the key).
    pub path: String,
}

/// The architecture and optimisation of an SFT policy or a PM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub data: Key,
    pub layers: i64,
    pub width: i64,
    pub heads: i64,
    pub steps: i64,
    pub batch: i64,
    pub lr: f64,
    pub warmup: i64,
    pub clip: f64,
    pub seed: u64,
    /// How libtorch computes it (enters the key: profiles never share an entry).
    pub numerics: Numerics,
    /// A pretrained model to start from (SFT only); its architecture
    /// replaces `layers`, `width` and `heads`, which then leave the key.
    pub base: Option<Key>,
    /// Added after keys were in use: left out of the key at float32.
    #[serde(default)]
    pub precision: Precision,
    /// Preference models: stop at a validation plateau, `patience` checks
    /// every `val_every` steps without a better validation loss (0: train
    /// all `steps`). Left out of the key at 0.
    #[serde(default)]
    pub patience: i64,
    #[serde(default)]
    pub val_every: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PmHead {
    Pooled,
    Joint,
    /// A score on the last non-pad token (a pretrained trunk only).
    Last,
}

impl PmHead {
    pub fn name(self) -> &'static str {
        match self {
            PmHead::Pooled => "pooled",
            PmHead::Joint => "joint",
            PmHead::Last => "last",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Loss {
    Ipo { beta: f64 },
    Dpo { beta: f64 },
    Slic { beta: f64 },
    Bo2,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Sampler {
    Offline {
        data: Key,
    },
    /// `prompts` is filled by lowering from the starting policy's SFT data
    /// when not given; absent only when no such data is known.
    Online {
        judge: Key,
        temperature: f64,
        prompts: Option<Key>,
    },
    Replay {
        source: Key,
        shuffle: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogProb {
    Sum,
    Mean,
}

impl LogProb {
    pub fn name(&self) -> &'static str {
        match self {
            LogProb::Sum => "sum",
            LogProb::Mean => "mean",
        }
    }
}

impl Loss {
    /// Whether the loss reads the reference policy's log-probs.
    pub fn needs_reference(&self) -> bool {
        !matches!(self, Loss::Bo2)
    }
}

/// How far a run must go and what it must save: not in the key, so a
/// longer run resumes a shorter one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunLength {
    /// The largest step anything asks for.
    pub steps: i64,
    pub save_every: i64,
    /// Steps that must be saved whatever `save_every` says (sorted, unique).
    pub checkpoints: Vec<i64>,
}

impl RunLength {
    /// Asks for a checkpoint at `step`; the run now goes at least that far.
    pub fn require(&mut self, step: i64) {
        self.steps = self.steps.max(step);
        if let Err(at) = self.checkpoints.binary_search(&step) {
            self.checkpoints.insert(at, step);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSpec {
    pub policy: Key,
    /// Defaults to `policy` (lowering fills it in).
    pub reference: Key,
    pub loss: Loss,
    pub sampler: Sampler,
    pub lr: f64,
    pub batch: i64,
    pub warmup: i64,
    pub clip: f64,
    pub logprob: LogProb,
    pub seed: u64,
    /// How libtorch computes it (enters the key: profiles never share an entry).
    pub numerics: Numerics,
    pub length: RunLength,
    /// For offline and replay runs whose loss reads the reference: the node
    /// holding its log-probs of the training data (lowering fills it in).
    /// Keyed in place of `reference`, whose key it names.
    pub reference_logprobs: Option<Key>,
    /// Added after keys were in use: left out of the key at float32.
    #[serde(default)]
    pub precision: Precision,
}

/// The fixed data a run trains on, as a reference log-probs node reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrainingData {
    /// A dataset's train split.
    Pairs(Key),
    /// An online run's data stream (a checkpoint holding `stream.safetensors`).
    Stream(Key),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceLogprobsSpec {
    pub reference: Key,
    pub data: TrainingData,
    pub logprob: LogProb,
    pub numerics: Numerics,
    /// The run's: its log-probs of the policy and of the reference must be
    /// computed alike (left out of the key at float32).
    #[serde(default)]
    pub precision: Precision,
}

/// Whose samples a `samples` node holds, which decides their random stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Draw {
    /// A win rate's baseline: one batch from the baseline's own stream, so
    /// that a policy compared with itself is compared with other draws.
    #[default]
    Baseline,
    /// An evaluated policy's responses, read by every evaluation of it that
    /// samples (KL, oracle reward, win rate): drawn in chunks of
    /// `SAMPLE_CHUNK` prompts, each from its own stream, so that the first
    /// rows are the same bits however many are drawn.
    Policy,
}

/// The prompts of a policy's shared samples drawn in one batch (and one
/// random stream) each.
pub const SAMPLE_CHUNK: i64 = 128;

/// A policy's samples on evaluation prompts, drawn once and read by every
/// evaluation that needs them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplesSpec {
    #[serde(default)]
    pub draw: Draw,
    pub policy: Key,
    /// The dataset the prompts are drawn from, and how many.
    pub pool: Key,
    pub prompts: i64,
    pub seed: u64,
    /// A judge whose head scores each response alone (pooled, or a reward
    /// model's last-token head): its scores of the baseline's samples are
    /// kept too, so evaluations score only their own policy's. None for a
    /// joint head (it scores pairs).
    pub judge: Option<Key>,
    pub numerics: Numerics,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSpec {
    pub target: Key,
    /// πsft of the metric; absent for a PM target.
    pub reference: Option<Key>,
    /// The dataset whose prompts the target answers (its SFT data).
    pub pool: Option<Key>,
    pub seed: u64,
    /// How libtorch computes it (enters the key: profiles never share an entry).
    pub numerics: Numerics,
    pub metric: Metric,
    /// The target's shared samples (a `samples` node of `Draw::Policy`), for
    /// a metric that reads responses of the policy: KL, oracle, win rate.
    #[serde(default)]
    pub samples: Option<Key>,
}

impl Metric {
    /// The prompts whose responses of the evaluated policy this metric
    /// reads from the policy's shared samples; None when it draws none
    /// there (a classifier, or self-classification's two draws of its own).
    pub fn shared_prompts(&self) -> Option<i64> {
        match self {
            Metric::Kl { prompts } | Metric::Winrate { prompts, .. } | Metric::Oracle { prompts, .. } => Some(*prompts),
            Metric::Classifier { .. } | Metric::SelfClassifier { .. } | Metric::WinnerLogprob { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Metric {
    Kl {
        prompts: i64,
    },
    /// `baseline` is the policy, `baseline_samples` its samples' node.
    Winrate {
        baseline: Key,
        baseline_samples: Key,
        judge: Key,
        prompts: i64,
    },
    Classifier {
        data: Classified,
        judge: Option<Key>,
        n: i64,
        windows: i64,
    },
    SelfClassifier {
        judge: Key,
        prompts: i64,
    },
    WinnerLogprob {
        data: Key,
        n: i64,
    },
    Oracle {
        world: Key,
        prompts: i64,
    },
}

/// What a classifier evaluation scores: a dataset's train split, or windows
/// along an online run's data stream. Keyed by the input's key alone.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Classified {
    Dataset(Key),
    /// A checkpoint of an online run (`data: online`): its D_online so far.
    Stream(Key),
}

impl Classified {
    pub fn key(self) -> Key {
        match self {
            Classified::Dataset(k) | Classified::Stream(k) => k,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FigureSpec {
    pub shape: FigureShape,
    pub title: String,
    pub show: Presentation,
    /// The titles and presentations of further declarations lowered to this
    /// node (same data, other words: another claim, `expect:` or
    /// `normalize:`), in the order of the node's further names. The report
    /// draws and tests each; none enters the key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub views: Vec<(String, Presentation)>,
}

/// What a figure plots; the evaluation nodes of each axis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FigureShape {
    Tradeoff {
        x: Vec<Key>,
        y: Vec<Key>,
    },
    /// One list of evaluation nodes per evaluation plotted.
    Curve {
        y: Vec<Vec<Key>>,
    },
    /// A training metric per step: the entries keeping the metrics (a
    /// run's checkpoint, a model), the column drawn, the windows smoothed in.
    Curves {
        models: Vec<Key>,
        metric: String,
        windows: i64,
    },
    Scatter {
        x: Vec<Key>,
        y: Vec<Key>,
    },
    Best {
        y: Vec<Key>,
        quantile: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeriesBy {
    /// One series per declaration (a sweep pooled).
    Declaration,
    /// One series per sweep member.
    Member,
}

/// A figure's presentation: never in the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Presentation {
    pub claim: String,
    /// Series in the paper's order, best first.
    pub expect: Vec<String>,
    pub series: SeriesBy,
    /// The series every bar is divided by (`best` only); none by default.
    pub normalize: Option<String>,
    /// The evaluation instances the figure plots: only their rows are
    /// drawn, though an evaluation node shared with another declaration
    /// carries more names.
    pub evals: Vec<InstanceName>,
    /// `best` only: the figure whose `expect:` gaps this one's are claimed
    /// to be narrower than (`gaps_narrower_than`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub narrower_than: Option<InstanceName>,
    /// `margin:`: claims within ±margin of each other are tested for
    /// equivalence ("level").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
    /// `trend:`: the factors of the factorial whose cells this figure's
    /// members are (trade-offs only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trend: Vec<String>,
}

/// Key fields are written through this, so each literal field name appears
/// once, beside the field it names.
struct Fields(BTreeMap<String, CValue>);

impl Fields {
    fn new() -> Fields {
        Fields(BTreeMap::new())
    }
    fn put(&mut self, name: &str, v: CValue) -> &mut Fields {
        self.0.insert(name.to_string(), v);
        self
    }
    fn int(&mut self, name: &str, v: i64) -> &mut Fields {
        self.put(name, CValue::Int(v))
    }
    /// Seeds are checked to lie in 0..=i64::MAX and keyed as integers.
    fn seed(&mut self, name: &str, v: u64) -> &mut Fields {
        self.put(name, CValue::Int(v as i64))
    }
    fn float(&mut self, name: &str, v: f64) -> &mut Fields {
        self.put(name, CValue::Float(v))
    }
    fn str(&mut self, name: &str, v: &str) -> &mut Fields {
        self.put(name, CValue::Str(v.to_string()))
    }
    fn key(&mut self, name: &str, k: Key) -> &mut Fields {
        self.put(name, CValue::Key(k))
    }
    fn opt_key(&mut self, name: &str, k: Option<Key>) -> &mut Fields {
        if let Some(k) = k {
            self.key(name, k);
        }
        self
    }
    /// Left out at float32, the default: keys made before the setting
    /// existed stay what they were.
    fn precision(&mut self, p: Precision) -> &mut Fields {
        if p != Precision::Float32 {
            self.str("precision", p.name());
        }
        self
    }
    fn keys(&mut self, name: &str, ks: &[Key]) -> &mut Fields {
        self.put(name, key_list(ks))
    }
    fn take(&mut self) -> BTreeMap<String, CValue> {
        std::mem::take(&mut self.0)
    }
}

fn key_list(ks: &[Key]) -> CValue {
    CValue::List(ks.iter().map(|k| CValue::Key(*k)).collect())
}

impl Loss {
    pub fn ctor(&self) -> &'static str {
        match self {
            Loss::Ipo { .. } => "ipo",
            Loss::Dpo { .. } => "dpo",
            Loss::Slic { .. } => "slic",
            Loss::Bo2 => "bo2",
        }
    }

    fn record(&self) -> CValue {
        let mut f = Fields::new();
        match self {
            Loss::Ipo { beta } | Loss::Dpo { beta } | Loss::Slic { beta } => {
                f.float("beta", *beta);
            }
            Loss::Bo2 => {}
        }
        CValue::Record { tag: self.ctor().to_string(), fields: f.take() }
    }
}

impl Sampler {
    pub fn ctor(&self) -> &'static str {
        match self {
            Sampler::Offline { .. } => "offline",
            Sampler::Online { .. } => "online",
            Sampler::Replay { .. } => "replay",
        }
    }

    fn record(&self) -> CValue {
        let mut f = Fields::new();
        match self {
            Sampler::Offline { data } => f.key("data", *data),
            Sampler::Online { judge, temperature, prompts } => {
                f.key("judge", *judge).float("temperature", *temperature).opt_key("prompts", *prompts)
            }
            Sampler::Replay { source, shuffle } => f.key("source", *source).float("shuffle", *shuffle),
        };
        CValue::Record { tag: self.ctor().to_string(), fields: f.take() }
    }
}

impl Metric {
    /// What its units are drawn from, beside the pool and seed: the same
    /// string means the same prompts or pairs in the same order.
    pub fn units(&self) -> String {
        match self {
            Metric::Kl { prompts } | Metric::SelfClassifier { prompts, .. } | Metric::Oracle { prompts, .. } => {
                format!("{prompts} prompts")
            }
            Metric::Winrate { baseline_samples, prompts, .. } => {
                format!("{prompts} prompts against {}", baseline_samples.short())
            }
            Metric::Classifier { data, n, windows, .. } => format!("{n} of {} in {windows}", data.key().short()),
            Metric::WinnerLogprob { data, n } => format!("{n} of {}", data.short()),
        }
    }

    pub fn ctor(&self) -> &'static str {
        match self {
            Metric::Kl { .. } => "kl",
            Metric::Winrate { .. } => "winrate",
            Metric::Classifier { .. } => "classifier",
            Metric::SelfClassifier { .. } => "self_classifier",
            Metric::WinnerLogprob { .. } => "winner_logprob",
            Metric::Oracle { .. } => "oracle",
        }
    }
}

impl FigureShape {
    pub fn ctor(&self) -> &'static str {
        match self {
            FigureShape::Tradeoff { .. } => "tradeoff",
            FigureShape::Curve { .. } => "curve",
            FigureShape::Curves { .. } => "curves",
            FigureShape::Scatter { .. } => "scatter",
            FigureShape::Best { .. } => "best",
        }
    }
}

impl ModelSpec {
    fn fields(&self, f: &mut Fields) {
        f.key("data", self.data);
        match self.base {
            Some(base) => f.key("base", base),
            None => f.int("layers", self.layers).int("width", self.width).int("heads", self.heads),
        };
        f.int("steps", self.steps)
            .int("batch", self.batch)
            .float("lr", self.lr)
            .int("warmup", self.warmup)
            .float("clip", self.clip)
            .seed("seed", self.seed)
            .str("numerics", self.numerics.key_name())
            .precision(self.precision);
        if self.patience != 0 {
            f.int("patience", self.patience).int("val_every", self.val_every);
        }
    }
}

impl Op {
    /// The node kind, as it appears in keys, manifests and `plan` output.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::World(w) => match w.flavour {
                WorldFlavour::Summarize => "world.summarize",
                WorldFlavour::Helpful => "world.helpful",
                WorldFlavour::Harmless => "world.harmless",
                WorldFlavour::Arena => "world.arena",
            },
            Op::Generate(_) => "dataset.generate",
            Op::Relabel(_) => "dataset.relabel",
            Op::Pairs(_) => "dataset.pairs",
            Op::Jsonl(j) => match j.format {
                RecordFile::Jsonl => "dataset.jsonl",
                RecordFile::Parquet => "dataset.parquet",
            },
            Op::Pretrained(_) => "model.pretrained",
            Op::Sft(_) => "model.sft",
            Op::Pm(..) => "model.pm",
            Op::Train(_) => "run.train",
            Op::Checkpoint { .. } => "checkpoint",
            Op::Samples(_) => "samples",
            Op::ReferenceLogprobs(_) => "reference_logprobs",
            Op::Eval(e) => match e.metric {
                Metric::Kl { .. } => "eval.kl",
                Metric::Winrate { .. } => "eval.winrate",
                Metric::Classifier { .. } => "eval.classifier",
                Metric::SelfClassifier { .. } => "eval.self_classifier",
                Metric::WinnerLogprob { .. } => "eval.winner_logprob",
                Metric::Oracle { .. } => "eval.oracle",
            },
            Op::Figure(f) => match f.shape {
                FigureShape::Tradeoff { .. } => "figure.tradeoff",
                FigureShape::Curve { .. } => "figure.curve",
                FigureShape::Curves { .. } => "figure.curves",
                FigureShape::Scatter { .. } => "figure.scatter",
                FigureShape::Best { .. } => "figure.best",
            },
        }
    }

    /// The language constructor this op is lowered from (none for a
    /// checkpoint, which `run@k` or a run's length makes).
    pub fn ctor(&self) -> Option<&'static str> {
        Some(match self {
            Op::World(w) => w.flavour.name(),
            Op::Generate(_) => "generate",
            Op::Relabel(_) => "relabel",
            Op::Pairs(_) => "pairs",
            Op::Jsonl(j) => match j.format {
                RecordFile::Jsonl => "jsonl",
                RecordFile::Parquet => "parquet",
            },
            Op::Pretrained(_) => "pretrained",
            Op::Sft(_) => "sft",
            Op::Pm(..) => "pm",
            Op::Train(_) => "train",
            Op::Checkpoint { .. } | Op::Samples(_) | Op::ReferenceLogprobs(_) => return None,
            Op::Eval(e) => e.metric.ctor(),
            Op::Figure(f) => f.shape.ctor(),
        })
    }

    /// The implementation version of this kind. Bump it whenever code
    /// changes what the kind computes: every cached artifact of the kind
    /// (and everything downstream) then gets a new key.
    pub fn version(&self) -> u32 {
        match self {
            // 3: a pooled judge scores both responses continuing one pass
            // over the prompt (`PreferenceModel::scores`); other float
            // rounding. 2: both splits are relabelled (1 kept the train split
            // only).
            Op::Relabel(_) => 3,
            // 4: chosen and rejected continue one pass over the prompt.
            // 3: GELU with the tanh approximation (ATen's kernel, pinned by the
            // numerics profile; the exact GELU ran on oneDNN, whose bytes
            // follow the host's instruction set). 2: the `head` argument
            // (pooled by default; 1 was the joint head).
            Op::Pm(..) => 4,
            // 2: GELU with the tanh approximation, as `Pm`'s 3.
            Op::Sft(_) => 2,
            // 3: offline and replay runs read the reference's log-probs from a
            // shared `reference_logprobs` node, computed in other batch shapes.
            Op::Train(TrainSpec { reference_logprobs: Some(_), .. }) => 3,
            // 3: the judge scores both samples continuing one pass over the
            // prompts, as `Relabel`'s 3.
            Op::Train(TrainSpec { sampler: Sampler::Online { .. }, .. }) => 3,
            // 2: chosen and rejected share the prompts' forward pass.
            Op::Train(_) => 2,
            // 5: the policy's responses are read from its shared `samples`
            // node (drawn in chunks, on a stream of their own). 4: the
            // judge's scores continue its pass over the prompts, kept
            // by the `samples` node. 3: per-unit outcomes (`units.csv`)
            // beside the summary. 2: the baseline's samples (and, for a
            // pooled judge, their scores) come from a shared `samples` node;
            // the key names it.
            Op::Eval(EvalSpec { metric: Metric::Winrate { .. }, .. }) => 5,
            // 3: the policy's responses are read from its shared `samples`
            // node, as `Winrate`'s 5. 2: per-unit outcomes (`units.csv`).
            Op::Eval(EvalSpec { metric: Metric::Kl { .. } | Metric::Oracle { .. }, .. }) => 3,
            // 3: a PM classifying or a judge labelling scores both responses
            // continuing one pass over the prompt, as `Relabel`'s 3.
            Op::Eval(EvalSpec { metric: Metric::Classifier { .. } | Metric::SelfClassifier { .. }, .. }) => 3,
            // 2: per-unit outcomes (`units.csv`) beside the summary.
            Op::Eval(_) => 2,
            // 2: the judge's pass over the prompts is kept beside its scores.
            Op::Samples(_) => 2,
            Op::World(_)
            | Op::Generate(_)
            | Op::Pairs(_)
            | Op::Jsonl(_)
            | Op::Pretrained(_)
            | Op::Checkpoint { .. }
            | Op::ReferenceLogprobs(_)
            | Op::Figure(_) => 1,
        }
    }

    /// The normalized, result-affecting parameters: what the key is made of.
    /// Field names are the language's argument names (a test holds them to
    /// the schema), input keys included as values.
    ///
    /// One flat list of key lines per op, kept together so that what a key
    /// holds reads in one place: exempt from the 120-line rule
    /// (ARCHITECTURE.md names it).
    #[allow(clippy::too_many_lines)]
    pub fn key_params(&self) -> BTreeMap<String, CValue> {
        let mut f = Fields::new();
        match self {
            Op::World(w) => {
                f.seed("seed", w.seed)
                    .int("vocab", w.vocab)
                    .int("prompt_len", w.prompt_len)
                    .int("response_len", w.response_len)
                    .float("noise", w.noise);
                if w.interaction != 0.0 {
                    f.float("interaction", w.interaction);
                }
            }
            Op::Generate(g) => {
                f.key("world", g.world)
                    .int("pairs", g.pairs)
                    .float("val_fraction", g.val_fraction)
                    .seed("seed", g.seed);
                // `-0.0 == 0.0`: every spelling of the default is left out.
                if g.overshoot != 0.0 {
                    f.float("overshoot", g.overshoot);
                }
                if g.hide_best != 0.0 {
                    f.float("hide_best", g.hide_best);
                }
            }
            Op::Relabel(r) => {
                f.key("data", r.data).key("judge", r.judge).seed("seed", r.seed).str("numerics", r.numerics.key_name());
            }
            Op::Pairs(p) => {
                f.key("a", p.a)
                    .key("b", p.b)
                    .key("prompts", p.prompts)
                    .key("judge", p.judge)
                    .int("n", p.n)
                    .float("temperature", p.temperature)
                    .seed("seed", p.seed)
                    .str("numerics", p.numerics.key_name());
            }
            Op::Jsonl(j) => {
                f.str("content", &j.content).str("tokenizer", j.tokenizer.name()).opt_key("tokenizer_of", j.model);
                if let Some(c) = &j.chat {
                    f.str("chat_template", &c.template).str("bos_token", &c.bos_token).str("eos_token", &c.eos_token);
                }
                // Added later: each enters the key only when set.
                if j.val_fraction != 0.0 {
                    f.float("val_fraction", j.val_fraction);
                }
                if let Some(n) = j.max_prompt_len {
                    f.int("max_prompt_len", n);
                }
                if let Some(n) = j.max_response_len {
                    f.int("max_response_len", n);
                }
            }
            Op::Pretrained(p) => {
                f.str("content", &p.content);
            }
            Op::Sft(m) => m.fields(&mut f),
            Op::Pm(m, head) => {
                m.fields(&mut f);
                f.str("head", head.name());
            }
            Op::Train(t) => {
                // Precomputed reference log-probs name the reference.
                f.key("policy", t.policy)
                    .key("reference", t.reference_logprobs.unwrap_or(t.reference))
                    .put("loss", t.loss.record())
                    .put("sampler", t.sampler.record())
                    .float("lr", t.lr)
                    .int("batch", t.batch)
                    .int("warmup", t.warmup)
                    .float("clip", t.clip)
                    .str("logprob", t.logprob.name())
                    .seed("seed", t.seed)
                    .str("numerics", t.numerics.key_name())
                    .precision(t.precision);
            }
            Op::Checkpoint { run, step } => {
                f.key("run", *run).int("step", *step);
            }
            Op::Samples(s) => {
                // A baseline's samples keep the key they had before policies
                // had samples nodes of their own.
                if s.draw == Draw::Policy {
                    f.str("draw", "policy").int("chunk", SAMPLE_CHUNK);
                }
                f.key("policy", s.policy)
                    .key("pool", s.pool)
                    .int("prompts", s.prompts)
                    .seed("seed", s.seed)
                    .opt_key("judge", s.judge)
                    .str("numerics", s.numerics.key_name());
            }
            Op::ReferenceLogprobs(r) => {
                f.key("reference", r.reference);
                match r.data {
                    TrainingData::Pairs(k) => f.key("data", k),
                    TrainingData::Stream(k) => f.key("stream", k),
                };
                f.str("logprob", r.logprob.name()).str("numerics", r.numerics.key_name()).precision(r.precision);
            }
            Op::Eval(e) => {
                f.key("target", e.target)
                    .opt_key("samples", e.samples)
                    .opt_key("reference", e.reference)
                    .opt_key("pool", e.pool)
                    .seed("seed", e.seed)
                    .str("numerics", e.numerics.key_name());
                match &e.metric {
                    Metric::Kl { prompts } => f.int("prompts", *prompts),
                    // `baseline` is keyed by its samples' node, which names the baseline.
                    Metric::Winrate { baseline_samples, judge, prompts, .. } => {
                        f.key("baseline", *baseline_samples).key("judge", *judge).int("prompts", *prompts)
                    }
                    Metric::Classifier { data, judge, n, windows } => {
                        f.key("data", data.key()).opt_key("judge", *judge).int("n", *n).int("windows", *windows)
                    }
                    Metric::SelfClassifier { judge, prompts } => f.key("judge", *judge).int("prompts", *prompts),
                    Metric::WinnerLogprob { data, n } => f.key("data", *data).int("n", *n),
                    Metric::Oracle { world, prompts } => f.key("world", *world).int("prompts", *prompts),
                };
            }
            Op::Figure(fig) => {
                f.str("title", &fig.title);
                match &fig.shape {
                    FigureShape::Tradeoff { x, y } | FigureShape::Scatter { x, y } => f.keys("x", x).keys("y", y),
                    FigureShape::Curve { y } => f.put("y", CValue::List(y.iter().map(|ks| key_list(ks)).collect())),
                    FigureShape::Curves { models, metric, windows } => {
                        f.keys("models", models).str("y", metric).int("windows", *windows)
                    }
                    FigureShape::Best { y, quantile } => f.keys("y", y).float("quantile", *quantile),
                };
            }
        }
        f.take()
    }

    /// The key of this node: kind, version and key parameters.
    pub fn key(&self) -> Key {
        crate::plan::key::node_key(self.kind(), self.version(), &self.key_params())
    }

    /// Facts outside the key, for `plan --json` (`attrs`).
    pub fn facts_json(&self) -> serde_json::Value {
        match self {
            Op::Train(t) => {
                serde_json::json!({"steps": t.length.steps, "save_every": t.length.save_every, "checkpoints": t.length.checkpoints})
            }
            Op::Jsonl(j) => serde_json::json!({"path": j.path}),
            Op::Pretrained(p) => serde_json::json!({"path": p.path}),
            Op::Figure(f) => serde_json::json!({
                "claim": f.show.claim,
                "expect": f.show.expect,
                "series": match f.show.series { SeriesBy::Declaration => "declaration", SeriesBy::Member => "member" },
                "normalize": f.show.normalize,
                "evals": f.show.evals.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            }),
            _ => serde_json::json!({}),
        }
    }

    /// Another declaration lowered to the same node: a run goes as far and
    /// saves as much as any of them asks; other facts keep the first value.
    pub fn merge(&mut self, other: Op) {
        match (self, other) {
            (Op::Train(a), Op::Train(b)) => {
                a.length.steps = a.length.steps.max(b.length.steps);
                for s in b.length.checkpoints {
                    a.length.require(s);
                }
            }
            // Each declaration keeps its own words (the report shows each).
            (Op::Figure(a), Op::Figure(b)) => a.views.push((b.title, b.show)),
            _ => {}
        }
    }

    /// The numerics profile this node is computed under; none for nodes
    /// whose bytes do not depend on libtorch (worlds, generated and imported
    /// data) or that are not computed (checkpoints, figures).
    pub fn numerics(&self) -> Option<Numerics> {
        match self {
            Op::Relabel(s) => Some(s.numerics),
            Op::Pairs(s) => Some(s.numerics),
            Op::Sft(s) | Op::Pm(s, _) => Some(s.numerics),
            Op::Train(s) => Some(s.numerics),
            Op::Eval(s) => Some(s.numerics),
            Op::Samples(s) => Some(s.numerics),
            Op::ReferenceLogprobs(s) => Some(s.numerics),
            Op::World(_)
            | Op::Generate(_)
            | Op::Jsonl(_)
            | Op::Pretrained(_)
            | Op::Checkpoint { .. }
            | Op::Figure(_) => None,
        }
    }

    /// The floating-point format the node computes in: its training
    /// precision for SFT, PM, run and reference log-prob nodes, float32 for
    /// everything else.
    pub fn precision(&self) -> Precision {
        match self {
            Op::Sft(s) | Op::Pm(s, _) => s.precision,
            Op::Train(s) => s.precision,
            Op::ReferenceLogprobs(s) => s.precision,
            Op::World(_)
            | Op::Generate(_)
            | Op::Relabel(_)
            | Op::Pairs(_)
            | Op::Jsonl(_)
            | Op::Pretrained(_)
            | Op::Checkpoint { .. }
            | Op::Samples(_)
            | Op::Eval(_)
            | Op::Figure(_) => Precision::Float32,
        }
    }

    /// Nodes the runner computes: not checkpoints (training writes them) nor
    /// figures (the report draws them).
    pub fn is_computed(&self) -> bool {
        !matches!(self, Op::Checkpoint { .. } | Op::Figure(_))
    }
}

/// The key of a training run's checkpoint at `step` (step > 0). The
/// executor writes checkpoints under exactly these keys.
pub fn checkpoint_key(train: &Key, step: i64) -> Key {
    Op::Checkpoint { run: *train, step }.key()
}
