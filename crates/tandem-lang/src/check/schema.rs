//! What every constructor accepts: the single table the checker, the planner
//! and the language reference are driven by.
//!
//! A constructor is either a *declaration* constructor (it makes a world,
//! dataset, model, run, evaluation or figure: a node in the plan) or a *value*
//! constructor (a loss or a sampler: a structured argument of a run).
//!
//! Each parameter says its type, its default and whether it changes results.
//! Parameters that do not (a run's `steps` and `save_every`, which only say how
//! far to go and how often to save) are kept out of the node key, so a longer
//! run reuses a shorter one's checkpoints.

use crate::syntax::ast::DeclKind;

/// What a name refers to once declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entity {
    World,
    Dataset,
    /// A generative policy: an SFT model, a run (its final checkpoint) or `run@step`.
    Policy,
    /// A pairwise preference model.
    PreferenceModel,
    /// A pretrained language model read from a Hugging Face directory: the
    /// base of an SFT policy and the tokenizer of text data.
    Pretrained,
    Eval,
    Figure,
}

impl Entity {
    pub fn describe(self) -> &'static str {
        match self {
            Entity::World => "a world",
            Entity::Dataset => "a dataset",
            Entity::Policy => "a policy",
            Entity::PreferenceModel => "a preference model",
            Entity::Pretrained => "a pretrained model",
            Entity::Eval => "an evaluation",
            Entity::Figure => "a figure",
        }
    }
}

/// Value constructors: structured arguments that are not nodes themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Loss,
    Sampler,
}

impl Category {
    pub fn describe(self) -> &'static str {
        match self {
            Category::Loss => "a loss (ipo, dpo, slic, bo2)",
            Category::Sampler => "a sampler (offline, online, replay)",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ty {
    /// An integer in `[min, max]`.
    Int {
        min: i64,
        max: i64,
    },
    /// A float in the given range; `open_min` excludes `min` itself (β > 0).
    Float {
        min: f64,
        open_min: bool,
        max: f64,
    },
    /// A string; when `choices` is not empty it must be one of them.
    Str {
        choices: &'static [&'static str],
    },
    Bool,
    /// A reference to a declaration producing one of these entities.
    Ref(&'static [Entity]),
    /// A run whose sampler is `online(...)`: it logs a data stream.
    OnlineRun,
    /// A call to a value constructor of this category.
    Value(Category),
    List(&'static Ty),
}

impl Ty {
    pub fn describe(&self) -> String {
        match self {
            Ty::Int { .. } => "an integer".into(),
            Ty::Float { .. } => "a number".into(),
            Ty::Str { choices: [] } => "a string".into(),
            Ty::Str { choices } => {
                format!("one of {}", choices.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", "))
            }
            Ty::Bool => "true or false".into(),
            Ty::Ref(es) => es.iter().map(|e| e.describe()).collect::<Vec<_>>().join(" or "),
            Ty::OnlineRun => "an online run".into(),
            Ty::Value(c) => c.describe().into(),
            Ty::List(t) => format!("a list of {}", strip_article(&t.describe())),
        }
    }
}

fn strip_article(s: &str) -> String {
    let s = s.strip_prefix("a ").or_else(|| s.strip_prefix("an ")).unwrap_or(s);
    // "a policy" → "policies"; every other noun here takes a plain s.
    format!("{s}s").replace("policys", "policies")
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Default {
    /// The argument must be given.
    Required,
    /// The argument may be left out; lowering decides (e.g. `reference`
    /// defaults to the run's starting policy).
    Optional,
    Int(i64),
    Float(f64),
    Str(&'static str),
    Bool(bool),
}

#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub ty: Ty,
    pub default: Default,
    /// False for parameters that do not change what is computed.
    pub in_key: bool,
    /// For parameters added after keys were in use: at its default value the
    /// parameter is left out of the key, so that a study that does not use
    /// it keeps its cache. Only for defaults that compute exactly what was
    /// computed before the parameter existed.
    pub omit_default_from_key: bool,
    pub doc: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CtorKind {
    /// Makes a declaration of this kind, producing this entity, lowered to a
    /// plan node of kind `node`.
    Decl {
        decl: DeclKind,
        entity: Entity,
        node: &'static str,
    },
    Value(Category),
}

#[derive(Debug)]
pub struct Ctor {
    pub name: &'static str,
    pub kind: CtorKind,
    pub params: &'static [Param],
    pub doc: &'static str,
}

/// Constructors are singletons in [`CTORS`]: equal when their names are.
impl PartialEq for Ctor {
    fn eq(&self, other: &Ctor) -> bool {
        self.name == other.name
    }
}

impl Ctor {
    pub fn param(&self, name: &str) -> Option<&'static Param> {
        self.params.iter().find(|p| p.name == name)
    }

    pub fn entity(&self) -> Option<Entity> {
        match self.kind {
            CtorKind::Decl { entity, .. } => Some(entity),
            CtorKind::Value(_) => None,
        }
    }
}

// --- building blocks -------------------------------------------------------

const fn int(min: i64, max: i64) -> Ty {
    Ty::Int { min, max }
}
const COUNT: Ty = int(1, 1_000_000_000);
const STEPS: Ty = int(0, 1_000_000_000);
const SEED: Ty = int(0, i64::MAX);
const POSITIVE: Ty = Ty::Float { min: 0.0, open_min: true, max: f64::INFINITY };
const NON_NEGATIVE: Ty = Ty::Float { min: 0.0, open_min: false, max: f64::INFINITY };
const UNIT: Ty = Ty::Float { min: 0.0, open_min: false, max: 1.0 };
const HALF_OPEN_UNIT: Ty = Ty::Float { min: 0.0, open_min: false, max: 0.9 };
const POLICY: Ty = Ty::Ref(&[Entity::Policy]);
/// The columns of a training node's `metrics.csv` a `curves` figure draws
/// (docs/running.md, "Training metrics").
pub const TRAINING_METRICS: [&str; 10] = [
    "loss",
    "grad_norm",
    "lr",
    "margin",
    "chosen_logprob",
    "rejected_logprob",
    "sample_kl",
    "sample_length",
    "judge_margin",
    "judge_score",
];
const PM: Ty = Ty::Ref(&[Entity::PreferenceModel]);
const DATASET: Ty = Ty::Ref(&[Entity::Dataset]);
const STEP_LIST: Ty = Ty::List(&STEPS);

const fn p(name: &'static str, ty: Ty, default: Default, doc: &'static str) -> Param {
    Param { name, ty, default, in_key: true, omit_default_from_key: false, doc }
}
/// A parameter added later whose default changes nothing (see
/// [`Param::omit_default_from_key`]).
const fn p_added(name: &'static str, ty: Ty, default: Default, doc: &'static str) -> Param {
    Param { name, ty, default, in_key: true, omit_default_from_key: true, doc }
}
const fn p_nokey(name: &'static str, ty: Ty, default: Default, doc: &'static str) -> Param {
    Param { name, ty, default, in_key: false, omit_default_from_key: false, doc }
}

/// A preference dataset read from a file (`jsonl`, `parquet`).
const IMPORTED_PARAMS: &[Param] = &[
    p("path", Ty::Str { choices: &[] }, Default::Required, "the file: one record per line (JSONL) or per row (Parquet) with prompt, chosen, rejected"),
    p("tokenizer", Ty::Str { choices: &["char", "byte"] }, Default::Str("char"), "how text becomes tokens"),
    p_added(
        "tokenizer_of",
        Ty::Ref(&[Entity::Pretrained]),
        Default::Optional,
        "tokenize with this pretrained model's own tokenizer instead (responses end with its end-of-sequence token)",
    ),
    p_added(
        "val_fraction",
        HALF_OPEN_UNIT,
        Default::Float(0.0),
        "share of records held out as the validation split (a seeded draw): nothing trains on them, and a PM's accuracy is reported on them",
    ),
    p_added(
        "max_prompt_len",
        int(1, 100_000),
        Default::Optional,
        "prompt width in tokens (default: the longest prompt's): a longer prompt keeps its last tokens, counted in the report",
    ),
    p_added(
        "max_response_len",
        int(2, 100_000),
        Default::Optional,
        "response width in tokens, end-of-sequence included (default: the longest response's): a longer response keeps its first tokens and ends there, counted in the report; a policy trained on the data samples responses this long",
    ),
];

const WORLD_PARAMS: &[Param] = &[
    p("seed", SEED, Default::Int(0), "seed of the world's oracle and prompt distribution"),
    p("vocab", int(8, 256), Default::Int(48), "vocabulary size, special tokens included"),
    p("prompt_len", int(1, 64), Default::Int(8), "maximum prompt length in tokens"),
    p("response_len", int(1, 64), Default::Int(12), "maximum response length in tokens, EOS included"),
    p("noise", POSITIVE, Default::Float(1.0), "Bradley–Terry temperature of the simulated raters"),
    p_added(
        "interaction",
        UNIT,
        Default::Float(0.0),
        "weight of a token's value that depends on the prompt's cluster and the token before it (0: a context-free sum over tokens)",
    ),
];

/// The architecture and optimisation arguments shared by SFT and PM training.
macro_rules! model_params {
    ($batch:expr, $lr:expr, $steps:expr $(; $extra:expr)*) => {
        &[
            p("data", DATASET, Default::Required, "the dataset to train on"),
            p("layers", int(1, 64), Default::Int(2), "transformer layers"),
            p("width", int(8, 8192), Default::Int(64), "model width (must be a multiple of heads)"),
            p("heads", int(1, 128), Default::Int(4), "attention heads"),
            p("steps", STEPS, Default::Int($steps), "optimizer steps"),
            p("batch", COUNT, Default::Int($batch), "examples per step"),
            p("lr", POSITIVE, Default::Float($lr), "Adam learning rate"),
            p("warmup", STEPS, Default::Int(0), "linear warm-up steps"),
            p("clip", NON_NEGATIVE, Default::Float(1.0), "gradient-norm clipping (0 = off)"),
            p("seed", SEED, Default::Int(0), "initialisation and data-order seed"),
            PRECISION,
            $($extra,)*
        ]
    };
}

const CLAIM: Param = p_nokey(
    "claim",
    Ty::Str { choices: &[] },
    Default::Str(""),
    "the finding or hypothesis the figure tests (the paper's, or the study's own); the report prints it as the claim beside this run's numbers, never as this run's finding",
);
const EXPECT: Param = p_nokey(
    "expect",
    Ty::List(&Ty::Str { choices: &[] }),
    Default::Optional,
    "series in the order the paper ranks them (best first); the report tests every pair the order ranks",
);

const MARGIN: Param = p_nokey(
    "margin",
    POSITIVE,
    Default::Optional,
    "equivalence margin: each claim is also tested for \"level within ±margin\" (two one-sided tests), fixed before running",
);

const TREND: Param = p_nokey(
    "trend",
    Ty::List(&Ty::Str { choices: &[] }),
    Default::Optional,
    "factors of a factorial: the trade-off figures naming the same factors and ranking the same `expect:` are its cells; each cell's difference is an estimate, and one weighted regression over the cells tests, per ranked pair and factor, whether the difference grows with the factor (a factor's level in a cell: its sweep axis, the world's argument of that name, or the lower series' grid axis)",
);

const SERIES: Param = p_nokey(
    "series",
    Ty::Str { choices: &["declaration", "member"] },
    Default::Str("declaration"),
    "one series per declaration (a sweep pooled) or per sweep member",
);

/// Training's floating-point format (`plan::op::Precision`).
const PRECISION: Param = p_added(
    "precision",
    Ty::Str { choices: &["float32", "bf16"] },
    Default::Str("float32"),
    "bf16: matrix products and attention in bfloat16 under libtorch's autocast, weights and Adam in float32; not under the portable profile",
);

const EVAL_AT: Param =
    p("at", STEP_LIST, Default::Optional, "checkpoint steps of runs to evaluate (default: every saved step)");

pub static CTORS: &[Ctor] = &[
    // --- worlds --------------------------------------------------------------
    Ctor {
        name: "summarize",
        kind: CtorKind::Decl { decl: DeclKind::World, entity: Entity::World, node: "world.summarize" },
        params: WORLD_PARAMS,
        doc: "a world in the character of OpenAI summarization",
    },
    Ctor {
        name: "helpful",
        kind: CtorKind::Decl { decl: DeclKind::World, entity: Entity::World, node: "world.helpful" },
        params: WORLD_PARAMS,
        doc: "a world in the character of Anthropic helpfulness",
    },
    Ctor {
        name: "harmless",
        kind: CtorKind::Decl { decl: DeclKind::World, entity: Entity::World, node: "world.harmless" },
        params: WORLD_PARAMS,
        doc: "a world in the character of Anthropic harmlessness",
    },
    Ctor {
        name: "arena",
        kind: CtorKind::Decl { decl: DeclKind::World, entity: Entity::World, node: "world.arena" },
        params: WORLD_PARAMS,
        doc: "a mixture world in the character of Chat arena",
    },
    // --- datasets ------------------------------------------------------------
    Ctor {
        name: "generate",
        kind: CtorKind::Decl { decl: DeclKind::Dataset, entity: Entity::Dataset, node: "dataset.generate" },
        params: &[
            p("world", Ty::Ref(&[Entity::World]), Default::Required, "the world whose behaviour policies write the pairs"),
            p("pairs", COUNT, Default::Int(2000), "number of labelled pairs (train + validation)"),
            p("val_fraction", HALF_OPEN_UNIT, Default::Float(0.1), "share of pairs held out for validation"),
            p("seed", SEED, Default::Int(0), "sampling seed"),
            p_added(
                "overshoot",
                UNIT,
                Default::Float(0.0),
                "share of behaviour responses written carelessly: longer than the oracle's target, repetitive, copying; shows the PMs the oracle's penalties",
            ),
            p_added(
                "hide_best",
                HALF_OPEN_UNIT,
                Default::Float(0.0),
                "share of tokens the behaviour policies never write: the best in each context (the data miss the region of highest reward)",
            ),
        ],
        doc: "D_initial: prompts and response pairs labelled by the world's noisy oracle",
    },
    Ctor {
        name: "relabel",
        kind: CtorKind::Decl { decl: DeclKind::Dataset, entity: Entity::Dataset, node: "dataset.relabel" },
        params: &[
            p("data", DATASET, Default::Required, "the dataset to relabel (both splits; training uses the train split)"),
            p("judge", PM, Default::Required, "the preference model that labels"),
            p("seed", SEED, Default::Int(0), "seed of the tie-breaking coin"),
        ],
        doc: "D_golden: a dataset relabelled by a preference model",
    },
    Ctor {
        name: "pairs",
        kind: CtorKind::Decl { decl: DeclKind::Dataset, entity: Entity::Dataset, node: "dataset.pairs" },
        params: &[
            p("a", POLICY, Default::Required, "policy (or run@step) writing the first response"),
            p("b", POLICY, Default::Required, "policy (or run@step) writing the second response"),
            p("prompts", DATASET, Default::Required, "the dataset whose prompts are used"),
            p("judge", PM, Default::Required, "the preference model that labels each pair"),
            p("n", COUNT, Default::Int(1000), "number of pairs"),
            p("temperature", POSITIVE, Default::Float(1.0), "sampling temperature"),
            p("seed", SEED, Default::Int(0), "sampling seed"),
        ],
        doc: "a pairs dataset such as D_sft-vs-800: one response from each policy, labelled by a judge",
    },
    Ctor {
        name: "jsonl",
        kind: CtorKind::Decl { decl: DeclKind::Dataset, entity: Entity::Dataset, node: "dataset.jsonl" },
        params: IMPORTED_PARAMS,
        doc: "a preference dataset imported from a JSONL file; keyed by its records",
    },
    Ctor {
        name: "parquet",
        kind: CtorKind::Decl { decl: DeclKind::Dataset, entity: Entity::Dataset, node: "dataset.parquet" },
        params: IMPORTED_PARAMS,
        doc: "a preference dataset imported from a Parquet file (Hugging Face datasets' format) with the columns a JSONL file has; keyed by its records",
    },
    // --- models --------------------------------------------------------------
    Ctor {
        name: "sft",
        kind: CtorKind::Decl { decl: DeclKind::Model, entity: Entity::Policy, node: "model.sft" },
        params: model_params!(64, 3e-4, 1000; p_added(
            "base",
            Ty::Ref(&[Entity::Pretrained]),
            Default::Optional,
            "start from this pretrained model (its architecture replaces layers, width and heads; `steps: 0` takes it as it is)"
        )),
        doc: "a policy trained by SFT on both responses of every pair (Appendix C)",
    },
    Ctor {
        name: "pretrained",
        kind: CtorKind::Decl { decl: DeclKind::Model, entity: Entity::Pretrained, node: "model.pretrained" },
        params: &[p(
            "path",
            Ty::Str { choices: &[] },
            Default::Required,
            "a Hugging Face model directory (config.json, tokenizer.json, *.safetensors); GPT-2, Llama or Qwen2",
        )],
        doc: "a pretrained language model read from a local directory; keyed by its files' content, never its path",
    },
    Ctor {
        name: "pm",
        kind: CtorKind::Decl { decl: DeclKind::Model, entity: Entity::PreferenceModel, node: "model.pm" },
        params: model_params!(32, 1e-4, 1000; p(
            "head",
            Ty::Str { choices: &["pooled", "joint", "last"] },
            Default::Str("pooled"),
            "pooled: score each response, z = s(y1) − s(y2); joint: read [x, y1, y2] in one pass; last (with `base:`): a score on the last token, as transformers' *ForSequenceClassification reward models (a reward model's own head when `base` is one)"
        ); p_added(
            "base",
            Ty::Ref(&[Entity::Pretrained, Entity::Policy]),
            Default::Optional,
            "start from this model's trunk with a new pooled head: a pretrained model, or a policy trained from one (the paper's PMs start from SFT)"
        ); p_added(
            "patience",
            int(0, 1000),
            Default::Int(0),
            "stop at a validation plateau: after this many validation checks without a lower validation loss (0: train all `steps`, which are then a maximum otherwise)"
        ); p_added(
            "val_every",
            COUNT,
            Default::Int(50),
            "steps between validation checks when `patience` is set (in the key only then)"
        )),
        doc: "a pairwise preference model r(x, y1, y2) trained with the order-randomised loss (eq. 5)",
    },
    // --- runs ----------------------------------------------------------------
    Ctor {
        name: "train",
        kind: CtorKind::Decl { decl: DeclKind::Run, entity: Entity::Policy, node: "run.train" },
        params: &[
            p("policy", POLICY, Default::Required, "the starting policy"),
            p("loss", Ty::Value(Category::Loss), Default::Required, "the loss"),
            p("sampler", Ty::Value(Category::Sampler), Default::Required, "where each batch comes from"),
            p("reference", POLICY, Default::Optional, "the reference policy of the loss (default: the starting policy)"),
            p("lr", POSITIVE, Default::Float(1e-4), "Adam learning rate"),
            p("batch", COUNT, Default::Int(32), "pairs per step"),
            p("warmup", STEPS, Default::Int(0), "linear warm-up steps (prefix-stable)"),
            p("clip", NON_NEGATIVE, Default::Float(1.0), "gradient-norm clipping (0 = off)"),
            p("logprob", Ty::Str { choices: &["sum", "mean"] }, Default::Str("sum"), "sequence log-prob over response tokens"),
            p("seed", SEED, Default::Int(0), "sampling and data-order seed"),
            PRECISION,
            p_nokey("steps", STEPS, Default::Int(1000), "optimizer steps (not in the key: longer runs resume shorter ones)"),
            p_nokey("save_every", COUNT, Default::Int(100), "checkpoint interval (not in the key)"),
            p_nokey(
                "save_at",
                Ty::List(&STEPS),
                Default::Optional,
                "further steps to save, e.g. early log-spaced ones [5, 10, 20] so that every method has trained checkpoints at small KL (not in the key)",
            ),
        ],
        doc: "preference optimisation of a policy: a loss and a sampler",
    },
    // --- losses --------------------------------------------------------------
    Ctor {
        name: "ipo",
        kind: CtorKind::Value(Category::Loss),
        params: &[p("beta", POSITIVE, Default::Float(0.1), "regularisation β: f(βh) with f(z) = (z − ½)²")],
        doc: "IPO, f(z) = (z − 1/2)² on z = βh (Appendix B; the margin is 1/(2β) in h)",
    },
    Ctor {
        name: "dpo",
        kind: CtorKind::Value(Category::Loss),
        params: &[p("beta", POSITIVE, Default::Float(0.1), "β in f(βh) with f(z) = log(1 + e^−z)")],
        doc: "DPO, f(z) = log(1 + exp(−z))",
    },
    Ctor {
        name: "slic",
        kind: CtorKind::Value(Category::Loss),
        params: &[p("beta", POSITIVE, Default::Float(0.1), "β in f(βh) with f(z) = max(0, 1 − z)")],
        doc: "SLiC, f(z) = max(0, 1 − z)",
    },
    Ctor {
        name: "bo2",
        kind: CtorKind::Value(Category::Loss),
        params: &[],
        doc: "Best-of-2: −log π(y_w | x) (eq. 3)",
    },
    // --- samplers ------------------------------------------------------------
    Ctor {
        name: "offline",
        kind: CtorKind::Value(Category::Sampler),
        params: &[p("data", DATASET, Default::Required, "the fixed dataset")],
        doc: "batches drawn from a fixed dataset in a seeded order, epoch after epoch",
    },
    Ctor {
        name: "online",
        kind: CtorKind::Value(Category::Sampler),
        params: &[
            p("judge", PM, Default::Required, "the preference model labelling each fresh pair"),
            p("temperature", POSITIVE, Default::Float(1.0), "sampling temperature"),
            p("prompts", DATASET, Default::Optional, "where prompts come from (default: the data the starting policy was fine-tuned on)"),
        ],
        doc: "two fresh samples per prompt from the current policy, labelled by a judge; logs D_online",
    },
    Ctor {
        name: "replay",
        kind: CtorKind::Value(Category::Sampler),
        params: &[
            p("source", Ty::OnlineRun, Default::Required, "the online run whose data stream is replayed"),
            p("shuffle", UNIT, Default::Float(0.0), "0 = exact online order, 1 = uniform shuffle"),
        ],
        doc: "the data stream D_online of an online run, in exact or shuffled order (tandem)",
    },
    // --- evaluations ---------------------------------------------------------
    Ctor {
        name: "kl",
        kind: CtorKind::Decl { decl: DeclKind::Eval, entity: Entity::Eval, node: "eval.kl" },
        params: &[
            p("policies", Ty::List(&POLICY), Default::Required, "policies and runs to evaluate"),
            p("reference", POLICY, Default::Optional, "πsft (default: each run's reference)"),
            p("prompts", COUNT, Default::Int(256), "prompts sampled"),
            EVAL_AT,
            p("seed", SEED, Default::Int(0), "sampling seed"),
        ],
        doc: "exact per-token KL(πθ ‖ πsft) on samples from πθ (Appendix D); a checkpoint's `kl`, `oracle` and `winrate` evaluations with one seed read the same samples (the first `prompts` of them)",
    },
    Ctor {
        name: "winrate",
        kind: CtorKind::Decl { decl: DeclKind::Eval, entity: Entity::Eval, node: "eval.winrate" },
        params: &[
            p("policies", Ty::List(&POLICY), Default::Required, "policies and runs to evaluate"),
            p("baseline", POLICY, Default::Required, "the policy they play against (the golden policy)"),
            p("judge", PM, Default::Required, "the judge (the golden PM)"),
            p("prompts", COUNT, Default::Int(512), "prompts sampled"),
            EVAL_AT,
            p("seed", SEED, Default::Int(0), "sampling seed"),
        ],
        doc: "win rate against a baseline, judged with A.2 debiasing; ties count ½; the policy's responses are the samples its `kl` and `oracle` evaluations read",
    },
    Ctor {
        name: "classifier",
        kind: CtorKind::Decl { decl: DeclKind::Eval, entity: Entity::Eval, node: "eval.classifier" },
        params: &[
            p("models", Ty::List(&Ty::Ref(&[Entity::Policy, Entity::PreferenceModel])), Default::Required, "policies (Appendix E) and preference models"),
            p("data", Ty::Ref(&[Entity::Dataset, Entity::Policy]), Default::Required, "a dataset, or an online run for its data stream"),
            p("judge", PM, Default::Optional, "relabel the data with this PM first (default: the data's own labels)"),
            p("reference", POLICY, Default::Optional, "πsft of the classifier formula (default: each run's reference)"),
            p("n", COUNT, Default::Int(256), "pairs sampled (per window, for a data stream)"),
            p("windows", COUNT, Default::Int(10), "for a data stream: evenly spaced windows along it, each scored"),
            EVAL_AT,
            p("seed", SEED, Default::Int(0), "subsampling seed"),
        ],
        doc: "accuracy against the data's labels of policies as classifiers and of PMs",
    },
    Ctor {
        name: "self_classifier",
        kind: CtorKind::Decl { decl: DeclKind::Eval, entity: Entity::Eval, node: "eval.self_classifier" },
        params: &[
            p("policies", Ty::List(&POLICY), Default::Required, "policies and runs to evaluate"),
            p("judge", PM, Default::Required, "the judge labelling their own samples"),
            p("reference", POLICY, Default::Optional, "πsft (default: each run's reference)"),
            p("prompts", COUNT, Default::Int(256), "prompts sampled"),
            EVAL_AT,
            p("seed", SEED, Default::Int(0), "sampling seed"),
        ],
        doc: "accuracy of a policy as a classifier of its own samples (Appendix E.1)",
    },
    Ctor {
        name: "winner_logprob",
        kind: CtorKind::Decl { decl: DeclKind::Eval, entity: Entity::Eval, node: "eval.winner_logprob" },
        params: &[
            p("policies", Ty::List(&POLICY), Default::Required, "policies and runs to evaluate"),
            p("data", DATASET, Default::Required, "the dataset whose winners are scored"),
            p("reference", POLICY, Default::Optional, "πsft (default: each run's reference)"),
            p("n", COUNT, Default::Int(256), "pairs sampled"),
            EVAL_AT,
            p("seed", SEED, Default::Int(0), "subsampling seed"),
        ],
        doc: "E[log πθ(y_w|x) − log πsft(y_w|x)] over a dataset's winners (Fig. 8 bottom)",
    },
    Ctor {
        name: "oracle",
        kind: CtorKind::Decl { decl: DeclKind::Eval, entity: Entity::Eval, node: "eval.oracle" },
        params: &[
            p("policies", Ty::List(&POLICY), Default::Required, "policies and runs to evaluate"),
            p("world", Ty::Ref(&[Entity::World]), Default::Required, "the world whose hidden oracle scores the samples"),
            p("prompts", COUNT, Default::Int(256), "prompts sampled"),
            EVAL_AT,
            p("seed", SEED, Default::Int(0), "sampling seed"),
        ],
        doc: "the world's noiseless oracle reward of a policy's samples, beside its worst and best behaviour policies, and how often samples stop on their own (EOS before the last slot)",
    },
    // --- figures -------------------------------------------------------------
    Ctor {
        name: "tradeoff",
        kind: CtorKind::Decl { decl: DeclKind::Figure, entity: Entity::Figure, node: "figure.tradeoff" },
        params: &[
            p("x", Ty::Ref(&[Entity::Eval]), Default::Required, "the budget axis (a kl evaluation)"),
            p("y", Ty::Ref(&[Entity::Eval]), Default::Required, "the performance axis (a winrate evaluation)"),
            p("title", Ty::Str { choices: &[] }, Default::Str(""), "figure title"),
            CLAIM,
            EXPECT,
            MARGIN,
            SERIES,
            TREND,
        ],
        doc: "KL against performance, one series per method, intervals as bands (Fig. 1)",
    },
    Ctor {
        name: "curve",
        kind: CtorKind::Decl { decl: DeclKind::Figure, entity: Entity::Figure, node: "figure.curve" },
        params: &[
            p("y", Ty::List(&Ty::Ref(&[Entity::Eval])), Default::Required, "evaluations plotted against training step"),
            p("title", Ty::Str { choices: &[] }, Default::Str(""), "figure title"),
            CLAIM,
        ],
        doc: "metrics against training step (Figs. 6, 8)",
    },
    Ctor {
        name: "curves",
        kind: CtorKind::Decl { decl: DeclKind::Figure, entity: Entity::Figure, node: "figure.curves" },
        params: &[
            p(
                "runs",
                Ty::List(&Ty::Ref(&[Entity::Policy, Entity::PreferenceModel])),
                Default::Required,
                "runs (a swept one: every member; `run@k`: its first k steps) and models whose training is drawn",
            ),
            p("y", Ty::Str { choices: &TRAINING_METRICS }, Default::Str("loss"), "the per-step training metric drawn"),
            p("windows", int(1, 100_000), Default::Int(40), "the smoothing: each curve's steps are averaged in about this many windows"),
            p("title", Ty::Str { choices: &[] }, Default::Str(""), "figure title"),
        ],
        doc: "a training metric against training step, one curve per declaration with a 95% band over its runs (seeds)",
    },
    Ctor {
        name: "scatter",
        kind: CtorKind::Decl { decl: DeclKind::Figure, entity: Entity::Figure, node: "figure.scatter" },
        params: &[
            p("x", Ty::Ref(&[Entity::Eval]), Default::Required, "evaluation on the x axis"),
            p("y", Ty::Ref(&[Entity::Eval]), Default::Required, "evaluation on the y axis"),
            p("title", Ty::Str { choices: &[] }, Default::Str(""), "figure title"),
            CLAIM,
        ],
        doc: "one metric against another, point per checkpoint (Fig. 7)",
    },
    Ctor {
        name: "best",
        kind: CtorKind::Decl { decl: DeclKind::Figure, entity: Entity::Figure, node: "figure.best" },
        params: &[
            p("y", Ty::Ref(&[Entity::Eval]), Default::Required, "the performance evaluation"),
            p("quantile", UNIT, Default::Float(0.9), "the quantile reported as best performance"),
            p_nokey("normalize", Ty::Str { choices: &[] }, Default::Str(""), "the series every bar is divided by, e.g. \"online\" (default: none)"),
            p("title", Ty::Str { choices: &[] }, Default::Str(""), "figure title"),
            CLAIM,
            EXPECT,
            MARGIN,
            p_nokey(
                "gaps_narrower_than",
                Ty::Ref(&[Entity::Figure]),
                Default::Optional,
                "a `best` figure whose `expect:` gaps this one's are expected to be narrower than, pair by pair in order (a larger policy's against a smaller one's: the gap shrinks); tested as a difference of differences",
            ),
        ],
        doc: "best performance per method as a quantile, optionally divided by a named series (Figs. 10, 11)",
    },
];

pub fn ctor(name: &str) -> Option<&'static Ctor> {
    CTORS.iter().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctor_names_are_unique_and_params_too() {
        let mut names: Vec<_> = CTORS.iter().map(|c| c.name).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len());
        for c in CTORS {
            let mut ps: Vec<_> = c.params.iter().map(|p| p.name).collect();
            ps.sort();
            let n = ps.len();
            ps.dedup();
            assert_eq!(n, ps.len(), "{}", c.name);
        }
    }

    #[test]
    fn defaults_satisfy_their_own_types() {
        for c in CTORS {
            for p in c.params {
                match (p.ty, p.default) {
                    (Ty::Int { min, max }, Default::Int(v)) => assert!(v >= min && v <= max, "{}.{}", c.name, p.name),
                    (Ty::Float { min, open_min, max }, Default::Float(v)) => {
                        assert!(v <= max && (v > min || (!open_min && v == min)), "{}.{}", c.name, p.name)
                    }
                    (Ty::Str { choices }, Default::Str(s)) => assert!(choices.is_empty() || choices.contains(&s)),
                    (_, Default::Required | Default::Optional) | (Ty::Bool, Default::Bool(_)) => {}
                    (t, d) => panic!("{}.{}: default {d:?} does not fit {t:?}", c.name, p.name),
                }
            }
        }
    }
}
