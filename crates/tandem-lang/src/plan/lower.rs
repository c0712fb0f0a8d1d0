//! Lowering a checked program to the plan.
//!
//! | declaration | nodes |
//! |---|---|
//! | world, dataset, model | one node each |
//! | run | a `run.train` node keyed *without* its step count, and one `checkpoint` node per step something needs (its last step, `run@k` references, evaluated steps), keyed by (train key, step) |
//! | eval | one node per evaluated policy and step; a win rate also a `samples` node of its baseline, shared by every evaluation drawing the same prompts |
//! | figure | one node over all its evaluations' nodes |
//!
//! A reference to a run as a policy means its last checkpoint; `run@0` is the
//! policy it started from. Defaults are filled in by the checker, and a run's
//! `reference` defaults to its starting policy, so writing a default out
//! changes no key.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::check::program::{Instance, InstanceName, Program, SaveSchedule, Value};
use crate::diagnostic::{Code, Diagnostic, Problem};
use crate::plan::key::Key;
use crate::plan::model_inputs;
use crate::plan::name::NodeName;
use crate::plan::node::{Node, Plan};
use crate::plan::op::*;
use crate::plan::vocabulary::{self, Vocabulary};

pub use crate::plan::op::checkpoint_key;

#[derive(Debug, Clone)]
enum Output {
    Node(Key),
    Run { train: Key, last: Key, init: Key, reference: Key, schedule: SaveSchedule },
    Eval(Vec<Key>),
}

/// Why an instance could not be lowered.
enum Fail {
    /// An input could not be lowered; its problem is already reported.
    Upstream,
    /// Lowering and the checker disagree: a bug in tandem.
    Internal(String),
    /// The plan reached its bound on nodes.
    Limit,
}

type Lowered<T> = Result<T, Fail>;

/// One thing an evaluation looks at: its node, name, step (for a run's
/// checkpoint) and the reference policy it defaults to.
type EvalTarget = (Key, InstanceName, Option<i64>, Option<Key>);

fn internal<T>(msg: String) -> Lowered<T> {
    Err(Fail::Internal(msg))
}

/// Typed reads of a checked argument list (an instance's, or a loss's or
/// sampler's). The checker has typed and defaulted every argument, so a
/// miss here is a planner out of step with the schema.
struct Args<'a> {
    ctor: &'static str,
    args: &'a BTreeMap<String, Value>,
}

impl<'a> Args<'a> {
    fn get(&self, name: &str) -> Lowered<&'a Value> {
        match self.args.get(name) {
            Some(v) => Ok(v),
            None => internal(format!("`{}` reached the planner without `{name}`", self.ctor)),
        }
    }
    fn int(&self, name: &str) -> Lowered<i64> {
        match self.get(name)? {
            Value::Int(i) => Ok(*i),
            v => internal(format!("`{}.{name}` is {v:?}, not an integer", self.ctor)),
        }
    }
    /// Seeds are checked to lie in 0..=i64::MAX.
    fn seed(&self, name: &str) -> Lowered<u64> {
        self.int(name).map(|i| i as u64)
    }
    fn float(&self, name: &str) -> Lowered<f64> {
        match self.get(name)? {
            Value::Float(f) => Ok(*f),
            v => internal(format!("`{}.{name}` is {v:?}, not a number", self.ctor)),
        }
    }
    /// An optional integer argument (absent: None).
    fn opt_int(&self, name: &str) -> Option<i64> {
        match self.args.get(name) {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }
    fn string(&self, name: &str) -> Lowered<&'a str> {
        match self.get(name)? {
            Value::Str(t) => Ok(t),
            v => internal(format!("`{}.{name}` is {v:?}, not a string", self.ctor)),
        }
    }
    /// An optional presentation string; absent or empty is none.
    fn opt_string(&self, name: &str) -> Option<String> {
        match self.args.get(name) {
            Some(Value::Str(t)) if !t.is_empty() => Some(t.clone()),
            _ => None,
        }
    }
    /// An optional number; absent is none.
    fn opt_float(&self, name: &str) -> Option<f64> {
        match self.args.get(name) {
            Some(Value::Float(f)) => Some(*f),
            Some(Value::Int(i)) => Some(*i as f64),
            _ => None,
        }
    }
    fn strings(&self, name: &str) -> Vec<String> {
        match self.args.get(name) {
            Some(Value::List(items)) => {
                items.iter().filter_map(|i| if let Value::Str(t) = i { Some(t.clone()) } else { None }).collect()
            }
            _ => vec![],
        }
    }
    fn call(&self, name: &str) -> Lowered<(&'static str, Args<'a>)> {
        match self.get(name)? {
            Value::Call { ctor, args } => Ok((ctor.name, Args { ctor: ctor.name, args })),
            v => internal(format!("`{}.{name}` is {v:?}, not a call", self.ctor)),
        }
    }
}

struct Lowerer<'p> {
    program: &'p Program,
    plan: Plan,
    out: Vec<Option<Output>>,
    problems: Vec<Problem>,
    /// Policy node → the dataset whose prompts it answers: the data its
    /// root SFT model was fine-tuned on. Online sampling and evaluations
    /// draw prompts from it unless told otherwise.
    pool: HashMap<Key, Key>,
    /// Pretrained models that cannot generate: reward models whose score
    /// head replaced an untied language-model head (Llama, Qwen2).
    no_lm_head: std::collections::HashSet<Key>,
    /// The profile every libtorch-computed node is keyed and computed under.
    numerics: Numerics,
    max_nodes: usize,
    samples: SampleSizes,
}

/// How many prompts each evaluated policy's shared samples hold: the most
/// that any evaluation of it reads (each reads the first rows). Learnt in a
/// first lowering pass, which adds no samples node, and used in the second.
#[derive(Default)]
struct SampleSizes {
    learning: bool,
    /// (policy, prompt pool, seed) → prompts.
    most: HashMap<(Key, Key, u64), i64>,
}

/// Lowers a checked program under the default numerics profile, `portable`.
pub fn lower(program: &Program) -> Result<Plan, Vec<Diagnostic>> {
    lower_with(program, Numerics::Portable)
}

pub use crate::check::DEFAULT_MAX_NODES;

/// Lowers a checked program; every node computed with libtorch is keyed by
/// `numerics`, so two profiles never share an entry.
pub fn lower_with(program: &Program, numerics: Numerics) -> Result<Plan, Vec<Diagnostic>> {
    lower_bounded(program, numerics, DEFAULT_MAX_NODES)
}

/// Lowers a checked program into at most `max_nodes` nodes. The bound is
/// checked as nodes are added, so an exploding program stops at the
/// declaration that crosses it, with memory for `max_nodes` nodes at most.
pub fn lower_bounded(program: &Program, numerics: Numerics, max_nodes: usize) -> Result<Plan, Vec<Diagnostic>> {
    let learnt = lower_pass(program, numerics, max_nodes, SampleSizes { learning: true, most: HashMap::new() })?;
    let sized = lower_pass(program, numerics, max_nodes, SampleSizes { learning: false, most: learnt.samples.most })?;
    Ok(sized.plan)
}

/// One pass of lowering over every instance.
fn lower_pass(
    program: &Program,
    numerics: Numerics,
    max_nodes: usize,
    samples: SampleSizes,
) -> Result<Lowerer<'_>, Vec<Diagnostic>> {
    let mut l = Lowerer {
        max_nodes,
        numerics,
        program,
        plan: Plan::default(),
        out: vec![None; program.instances.len()],
        problems: vec![],
        pool: Default::default(),
        no_lm_head: Default::default(),
        samples,
    };
    // Instances are numbered in dependency order, so inputs are lowered first.
    for id in 0..program.instances.len() {
        let inst = &program.instances[id];
        match l.lower_instance(inst) {
            Ok(output) => l.out[id] = output,
            Err(Fail::Upstream) => {}
            Err(Fail::Limit) => {
                l.problems.push(
                    Problem::new(
                        Code::PlanLimit,
                        inst.span,
                        format!("the plan would have more than {max_nodes} nodes; `{}` pushes it past", inst.label),
                    )
                    .label("expands past the bound")
                    .help(
                        "each run is one node per checkpoint used and each evaluation one per policy and step: \
                         shrink the sweeps, evaluate at fewer steps, or raise the bound with --max-nodes",
                    ),
                );
                break;
            }
            Err(Fail::Internal(msg)) => l.problems.push(
                Problem::new(Code::Internal, inst.span, format!("tandem cannot plan `{}`: {msg}", inst.label))
                    .label("this declaration")
                    .help("the checker accepted it, so this is a bug in tandem; please report it with this file"),
            ),
        }
    }
    if l.problems.is_empty() {
        Ok(l)
    } else {
        Err(l.problems.into_iter().map(|p| p.with_sources(&program.sources)).collect())
    }
}

impl<'p> Lowerer<'p> {
    /// Lowers one instance; `Ok(None)` for value constructors, which are
    /// lowered where they are used.
    fn lower_instance(&mut self, inst: &'p Instance) -> Lowered<Option<Output>> {
        let a = Args { ctor: inst.ctor.name, args: &inst.args };
        let name = || vec![NodeName::Decl(inst.name.clone())];
        let output = match inst.ctor.name {
            "summarize" | "helpful" | "harmless" | "arena" => {
                let Some(flavour) = WorldFlavour::from_name(inst.ctor.name) else {
                    return internal("no such world".into());
                };
                let op = Op::World(WorldSpec {
                    flavour,
                    seed: a.seed("seed")?,
                    vocab: a.int("vocab")?,
                    prompt_len: a.int("prompt_len")?,
                    response_len: a.int("response_len")?,
                    noise: a.float("noise")?,
                    interaction: a.float("interaction")?,
                });
                Output::Node(self.add(op, name())?)
            }
            "generate" => {
                let op = Op::Generate(GenerateSpec {
                    world: self.key(&a, "world")?,
                    pairs: a.int("pairs")?,
                    val_fraction: a.float("val_fraction")?,
                    seed: a.seed("seed")?,
                    overshoot: a.float("overshoot")?,
                    hide_best: a.float("hide_best")?,
                });
                Output::Node(self.add(op, name())?)
            }
            "relabel" => {
                let op = Op::Relabel(RelabelSpec {
                    data: self.key(&a, "data")?,
                    judge: self.key(&a, "judge")?,
                    seed: a.seed("seed")?,
                    numerics: self.numerics,
                });
                Output::Node(self.add(op, name())?)
            }
            "pairs" => {
                let op = Op::Pairs(PairsSpec {
                    a: self.key(&a, "a")?,
                    b: self.key(&a, "b")?,
                    prompts: self.key(&a, "prompts")?,
                    judge: self.key(&a, "judge")?,
                    n: a.int("n")?,
                    temperature: a.float("temperature")?,
                    seed: a.seed("seed")?,
                    numerics: self.numerics,
                });
                Output::Node(self.add(op, name())?)
            }
            "jsonl" | "parquet" => self.lower_records(inst, &a)?,
            "pretrained" => self.lower_pretrained(inst)?,
            "sft" => self.lower_sft(inst, &a)?,
            "pm" => self.lower_pm(inst, &a)?,
            "train" => self.lower_run(inst, &a)?,
            "kl" | "winrate" | "classifier" | "self_classifier" | "winner_logprob" | "oracle" => {
                self.lower_eval(inst, &a)?
            }
            "tradeoff" | "curve" | "curves" | "scatter" | "best" => self.lower_figure(inst, &a)?,
            _ => return Ok(None),
        };
        Ok(Some(output))
    }

    /// `jsonl(...)` or `parquet(...)`: records keyed by the file's content
    /// (and the chat template of its `tokenizer_of` model), not its path.
    fn lower_records(&mut self, inst: &'p Instance, a: &Args) -> Lowered<Output> {
        let format = if inst.ctor.name == "parquet" { RecordFile::Parquet } else { RecordFile::Jsonl };
        let tokenizer = match a.string("tokenizer")? {
            "char" => Tokenizer::Char,
            "byte" => Tokenizer::Byte,
            other => return internal(format!("no tokenizer {other:?}")),
        };
        let model = self.opt_key(a, "tokenizer_of")?;
        // The tokenizer's chat template, for conversational records.
        let template = match model.and_then(|m| self.plan.node(&m)).map(|n| &n.op) {
            Some(Op::Pretrained(p)) => match crate::hfdir::chat::ChatTemplate::of_dir(Path::new(&p.path)) {
                Ok(t) => t,
                Err(e) => {
                    self.problems.push(
                        Problem::new(Code::Pretrained, inst.span, e).label("its `tokenizer_of` model's chat template"),
                    );
                    return Err(Fail::Upstream);
                }
            },
            _ => None,
        };
        let Some((content, path, conversational)) = self.file_digest(inst, template.as_ref(), format) else {
            return Err(Fail::Upstream);
        };
        let chat = if conversational { template } else { None };
        let spec = JsonlSpec {
            content,
            tokenizer,
            path,
            model,
            chat,
            format,
            val_fraction: a.float("val_fraction")?,
            max_prompt_len: a.opt_int("max_prompt_len"),
            max_response_len: a.opt_int("max_response_len"),
        };
        Ok(Output::Node(self.add(Op::Jsonl(spec), vec![NodeName::Decl(inst.name.clone())])?))
    }

    /// `pretrained(dir)`: keyed by the directory's content, not its path.
    fn lower_pretrained(&mut self, inst: &'p Instance) -> Lowered<Output> {
        let Some((found, path)) = self.pretrained_dir(inst) else { return Err(Fail::Upstream) };
        let c = &found.config;
        // As `ml::hf` builds it: a score head on an untied Llama-family
        // trunk leaves no language-model head to sample with.
        let generates = !c.score_head || c.tied || c.family == crate::hfdir::Family::Gpt2;
        let spec = PretrainedSpec { content: found.digest, tokenizer: found.tokenizer_digest, path };
        let key = self.add(Op::Pretrained(spec), vec![NodeName::Decl(inst.name.clone())])?;
        if !generates {
            self.no_lm_head.insert(key);
        }
        Ok(Output::Node(key))
    }

    fn lower_sft(&mut self, inst: &'p Instance, a: &Args) -> Lowered<Output> {
        let spec = self.model_spec(inst, a)?;
        let data = spec.data;
        let base = spec.base.map(|b| (vocabulary::of(&self.plan, &b), self.no_lm_head.contains(&b)));
        let data_vocab = vocabulary::of(&self.plan, &data);
        if let Some(problem) = model_inputs::sft(inst, base.as_ref().map(|(v, n)| (v, *n)), &data_vocab) {
            self.problems.push(problem);
            return Err(Fail::Upstream);
        }
        let key = self.add(Op::Sft(spec), vec![NodeName::Decl(inst.name.clone())])?;
        self.pool.insert(key, data);
        Ok(Output::Node(key))
    }

    fn lower_pm(&mut self, inst: &'p Instance, a: &Args) -> Lowered<Output> {
        let head = match a.string("head")? {
            "pooled" => PmHead::Pooled,
            "joint" => PmHead::Joint,
            "last" => PmHead::Last,
            other => return internal(format!("no preference-model head {other:?}")),
        };
        let mut spec = self.model_spec(inst, a)?;
        spec.patience = a.int("patience")?;
        spec.val_every = a.int("val_every")?;
        let data_vocab = vocabulary::of(&self.plan, &spec.data);
        let base_vocab = spec.base.map(|b| vocabulary::of(&self.plan, &b));
        if let Some(problem) = model_inputs::pm(inst, base_vocab.as_ref(), head, &data_vocab) {
            self.problems.push(problem);
            return Err(Fail::Upstream);
        }
        Ok(Output::Node(self.add(Op::Pm(spec, head), vec![NodeName::Decl(inst.name.clone())])?))
    }

    fn model_spec(&mut self, inst: &Instance, a: &Args) -> Lowered<ModelSpec> {
        let precision = self.precision(inst, a)?;
        Ok(ModelSpec {
            data: self.key(a, "data")?,
            layers: a.int("layers")?,
            width: a.int("width")?,
            heads: a.int("heads")?,
            steps: a.int("steps")?,
            batch: a.int("batch")?,
            lr: a.float("lr")?,
            warmup: a.int("warmup")?,
            clip: a.float("clip")?,
            seed: a.seed("seed")?,
            numerics: self.numerics,
            base: self.opt_key(a, "base")?,
            precision,
            patience: 0,
            val_every: 0,
        })
    }

    /// A training node's `precision`, refused where the numerics profile
    /// cannot keep its promise with it: bf16 kernels differ from one
    /// instruction set to another, and `portable` promises every host's bytes.
    fn precision(&mut self, inst: &Instance, a: &Args) -> Lowered<Precision> {
        let name = a.string("precision")?;
        let Some(precision) = Precision::from_name(name) else {
            return internal(format!("no precision {name:?}"));
        };
        if precision == Precision::Bf16 && self.numerics == Numerics::Portable {
            self.problems.push(
                Problem::new(
                    Code::Precision,
                    inst.span,
                    format!("`{}` asks for bf16, which the `portable` numerics profile cannot keep", inst.label),
                )
                .label("`precision: \"bf16\"`")
                .help(
                    "bf16 kernels differ between hosts (AVX-512 BF16 against AVX2's emulation), and `portable` \
                     promises the same bytes on every host: run with `--numerics native` (this machine's own \
                     results) or `--numerics cuda`, or leave `precision` out",
                ),
            );
            return Err(Fail::Upstream);
        }
        Ok(precision)
    }

    /// Reports a pair of inputs of `inst` that read different token ids.
    fn vocab_problem(&mut self, inst: &Instance, a: (&str, &Vocabulary), b: (&str, &Vocabulary)) {
        self.problems.push(model_inputs::mixed_vocabularies(inst, a, b));
    }

    /// Every input of `inst` (named for the message) must read the first's
    /// token ids; reports the first that does not.
    fn same_vocabulary(&mut self, inst: &Instance, inputs: &[(&str, Key)]) -> Lowered<()> {
        let Some(((first_name, first), rest)) = inputs.split_first() else { return Ok(()) };
        let want = vocabulary::of(&self.plan, first);
        for (name, key) in rest {
            let got = vocabulary::of(&self.plan, key);
            if got != want {
                self.vocab_problem(inst, (first_name, &want), (name, &got));
                return Err(Fail::Upstream);
            }
        }
        Ok(())
    }

    fn lower_run(&mut self, inst: &'p Instance, a: &Args) -> Lowered<Output> {
        let init = self.key(a, "policy")?;
        let pool = self.pool.get(&init).copied();
        let loss = match a.call("loss")? {
            ("ipo", l) => Loss::Ipo { beta: l.float("beta")? },
            ("dpo", l) => Loss::Dpo { beta: l.float("beta")? },
            ("slic", l) => Loss::Slic { beta: l.float("beta")? },
            ("bo2", _) => Loss::Bo2,
            (other, _) => return internal(format!("no loss `{other}`")),
        };
        let sampler = match a.call("sampler")? {
            ("offline", s) => Sampler::Offline { data: self.key(&s, "data")? },
            // Online sampling draws prompts from the starting policy's data unless told otherwise.
            ("online", s) => Sampler::Online {
                judge: self.key(&s, "judge")?,
                temperature: s.float("temperature")?,
                prompts: self.opt_key(&s, "prompts")?.or(pool),
            },
            ("replay", s) => Sampler::Replay { source: self.key(&s, "source")?, shuffle: s.float("shuffle")? },
            (other, _) => return internal(format!("no sampler `{other}`")),
        };
        // A run's reference defaults to its starting policy, so writing the
        // default out changes no key.
        let reference = self.opt_key(a, "reference")?.unwrap_or(init);
        let logprob = match a.string("logprob")? {
            "sum" => LogProb::Sum,
            "mean" => LogProb::Mean,
            other => return internal(format!("no log-prob reduction {other:?}")),
        };
        let mut inputs = vec![("the starting policy", init), ("the reference", reference)];
        match &sampler {
            Sampler::Offline { data } => inputs.push(("the offline data", *data)),
            Sampler::Online { judge, prompts, .. } => {
                inputs.push(("the judge", *judge));
                inputs.extend(prompts.map(|p| ("the prompts", p)));
            }
            Sampler::Replay { source, .. } => inputs.push(("the replayed run", *source)),
        }
        self.same_vocabulary(inst, &inputs)?;
        // Offline and replay data are fixed: the reference's log-probs of
        // them are computed once, shared by every run on the same data.
        let fixed = match &sampler {
            Sampler::Offline { data } => Some(TrainingData::Pairs(*data)),
            Sampler::Replay { source, .. } => Some(TrainingData::Stream(*source)),
            Sampler::Online { .. } => None,
        };
        let precision = self.precision(inst, a)?;
        let reference_logprobs = match fixed {
            Some(data) if loss.needs_reference() => {
                let spec = ReferenceLogprobsSpec { reference, data, logprob, numerics: self.numerics, precision };
                let name = NodeName::ReferenceLogprobs { run: inst.name.clone() };
                Some(self.add(Op::ReferenceLogprobs(spec), vec![name])?)
            }
            _ => None,
        };
        let (steps, save_every) = (a.int("steps")?, a.int("save_every")?);
        let op = Op::Train(TrainSpec {
            policy: init,
            reference,
            loss,
            sampler,
            lr: a.float("lr")?,
            batch: a.int("batch")?,
            warmup: a.int("warmup")?,
            clip: a.float("clip")?,
            logprob,
            seed: a.seed("seed")?,
            numerics: self.numerics,
            length: RunLength { steps, save_every, checkpoints: vec![] },
            reference_logprobs,
            precision,
        });
        let train = self.add(op, vec![NodeName::Decl(inst.name.clone())])?;
        if let Some(pool) = pool {
            self.pool.insert(train, pool);
        }
        let last = self.checkpoint(train, init, steps, &inst.name)?;
        Ok(Output::Run { train, last, init, reference, schedule: SaveSchedule::of(inst) })
    }

    fn lower_eval(&mut self, inst: &'p Instance, a: &Args) -> Lowered<Output> {
        let mut keys = vec![];
        let list_param = if inst.ctor.name == "classifier" { "models" } else { "policies" };
        let Value::List(targets) = a.get(list_param)? else { return internal(format!("`{list_param}` is not a list")) };
        let at: Option<Vec<i64>> = match inst.args.get("at") {
            Some(Value::List(v)) => {
                Some(v.iter().filter_map(|x| if let Value::Int(i) = x { Some(*i) } else { None }).collect())
            }
            _ => None,
        };
        let seed = a.seed("seed")?;
        let metric = match inst.ctor.name {
            "kl" => Metric::Kl { prompts: a.int("prompts")? },
            "winrate" => {
                // Its samples' node is made per target below (the prompt
                // pool is the target's); this placeholder is replaced there.
                let baseline = self.key(a, "baseline")?;
                Metric::Winrate {
                    baseline,
                    baseline_samples: baseline,
                    judge: self.key(a, "judge")?,
                    prompts: a.int("prompts")?,
                }
            }
            "classifier" => Metric::Classifier {
                data: self.classified(a)?,
                judge: self.opt_key(a, "judge")?,
                n: a.int("n")?,
                windows: a.int("windows")?,
            },
            "self_classifier" => Metric::SelfClassifier { judge: self.key(a, "judge")?, prompts: a.int("prompts")? },
            "winner_logprob" => Metric::WinnerLogprob { data: self.key(a, "data")?, n: a.int("n")? },
            "oracle" => Metric::Oracle { world: self.key(a, "world")?, prompts: a.int("prompts")? },
            other => return internal(format!("no evaluation `{other}`")),
        };
        for t in targets {
            for (target, target_name, step, default_ref) in self.eval_targets(t, at.as_deref())? {
                let given_reference = self.opt_key(a, "reference")?;
                let pool = self.pool.get(&target).copied();
                let mut metric = metric.clone();
                if let Metric::Winrate { baseline, baseline_samples, prompts, judge } = &mut metric {
                    // The baseline's samples: one node per (baseline, prompts,
                    // seed), shared by every target that draws the same prompts;
                    // with the judge's scores of them, per judge, where its head
                    // scores one response at a time (pooled, or a reward
                    // model's last-token head).
                    let Some(pool) = pool else { return internal(format!("`{}` has no prompt pool", inst.label)) };
                    let pooled = matches!(
                        self.plan.node(judge),
                        Some(Node { op: Op::Pm(_, PmHead::Pooled | PmHead::Last), .. })
                    );
                    let samples = SamplesSpec {
                        draw: Draw::Baseline,
                        policy: *baseline,
                        pool,
                        prompts: *prompts,
                        seed,
                        judge: pooled.then_some(*judge),
                        numerics: self.numerics,
                    };
                    let policy = self.plan.node(baseline).map_or_else(|| baseline.short(), |n| n.display_name());
                    let name = NodeName::Samples { eval: inst.name.clone(), policy };
                    *baseline_samples = self.add(Op::Samples(samples), vec![name])?;
                }
                let samples = match (metric.shared_prompts(), pool) {
                    (Some(prompts), Some(pool)) => {
                        let policy = match step {
                            Some(s) => format!("{target_name}@{s}"),
                            None => target_name.to_string(),
                        };
                        let name = NodeName::Samples { eval: inst.name.clone(), policy };
                        Some(self.policy_samples(name, target, pool, seed, prompts)?)
                    }
                    (Some(_), None) => return internal(format!("`{}` has no prompt pool", inst.label)),
                    (None, _) => None,
                };
                let mut inputs = vec![("the evaluated policy", target)];
                inputs.extend(given_reference.or(default_ref).map(|r| ("the reference", r)));
                match &metric {
                    Metric::Winrate { baseline, judge, .. } => {
                        inputs.extend([("the baseline", *baseline), ("the judge", *judge)])
                    }
                    Metric::Classifier { data, judge, .. } => {
                        inputs.push(("the data", data.key()));
                        inputs.extend(judge.map(|j| ("the judge", j)));
                    }
                    Metric::SelfClassifier { judge, .. } => inputs.push(("the judge", *judge)),
                    Metric::WinnerLogprob { data, .. } => inputs.push(("the data", *data)),
                    Metric::Oracle { world, .. } => inputs.push(("the world", *world)),
                    Metric::Kl { .. } => {}
                }
                self.same_vocabulary(inst, &inputs)?;
                let spec = EvalSpec {
                    target,
                    reference: given_reference.or(default_ref),
                    pool,
                    seed,
                    numerics: self.numerics,
                    metric,
                    samples,
                };
                let name = NodeName::Eval { eval: inst.name.clone(), target: target_name, step };
                keys.push(self.add(Op::Eval(spec), vec![name])?);
            }
        }
        Ok(Output::Eval(keys))
    }

    /// The shared samples of an evaluated policy on `prompts` prompts of
    /// its pool. The first pass only notes the size and returns the
    /// policy's own key in their place; the second adds one node per
    /// (policy, pool, seed), as large as the largest evaluation of it.
    fn policy_samples(&mut self, name: NodeName, policy: Key, pool: Key, seed: u64, prompts: i64) -> Lowered<Key> {
        let most = self.samples.most.entry((policy, pool, seed)).or_insert(prompts);
        if self.samples.learning {
            *most = (*most).max(prompts);
            return Ok(policy);
        }
        let prompts = (*most).max(prompts);
        let spec =
            SamplesSpec { draw: Draw::Policy, policy, pool, prompts, seed, judge: None, numerics: self.numerics };
        self.add(Op::Samples(spec), vec![name])
    }

    fn lower_figure(&mut self, inst: &'p Instance, a: &Args) -> Lowered<Output> {
        let title = a.string("title")?.to_string();
        let shape = match inst.ctor.name {
            "tradeoff" => FigureShape::Tradeoff { x: self.eval_keys(a.get("x")?)?, y: self.eval_keys(a.get("y")?)? },
            "scatter" => FigureShape::Scatter { x: self.eval_keys(a.get("x")?)?, y: self.eval_keys(a.get("y")?)? },
            "curve" => {
                let Value::List(ys) = a.get("y")? else { return internal("`curve.y` is not a list".into()) };
                FigureShape::Curve { y: ys.iter().map(|y| self.eval_keys(y)).collect::<Lowered<_>>()? }
            }
            "best" => FigureShape::Best { y: self.eval_keys(a.get("y")?)?, quantile: a.float("quantile")? },
            "curves" => {
                let Value::List(runs) = a.get("runs")? else { return internal("`curves.runs` is not a list".into()) };
                // A run's metrics are kept in its checkpoints: the last one
                // (or the one named) holds every step up to it.
                let mut models = runs.iter().map(|r| self.resolve(r)).collect::<Lowered<Vec<Key>>>()?;
                models.sort();
                models.dedup();
                FigureShape::Curves { models, metric: a.string("y")?.to_string(), windows: a.int("windows")? }
            }
            other => return internal(format!("no figure `{other}`")),
        };
        // The evaluations' declared instances: a figure plots their rows only.
        let mut evals = vec![];
        for axis in ["x", "y"] {
            match inst.args.get(axis) {
                Some(Value::Instance(e)) => evals.push(self.program.instances[*e].name.clone()),
                Some(Value::List(items)) => evals.extend(items.iter().filter_map(|i| {
                    if let Value::Instance(e) = i {
                        Some(self.program.instances[*e].name.clone())
                    } else {
                        None
                    }
                })),
                _ => {}
            }
        }
        let series = match a.opt_string("series").as_deref() {
            Some("member") => SeriesBy::Member,
            _ => SeriesBy::Declaration,
        };
        // Presentation-only arguments never enter the key.
        let show = Presentation {
            claim: a.opt_string("claim").unwrap_or_default(),
            expect: a.strings("expect"),
            series,
            normalize: a.opt_string("normalize"),
            evals,
            narrower_than: match inst.args.get("gaps_narrower_than") {
                Some(Value::Instance(f)) => Some(self.program.instances[*f].name.clone()),
                _ => None,
            },
            margin: a.opt_float("margin"),
            trend: a.strings("trend"),
        };
        Ok(Output::Node(self.add(
            Op::Figure(FigureSpec { shape, title, show, views: vec![] }),
            vec![NodeName::Decl(inst.name.clone())],
        )?))
    }

    /// Adds a node computing `op` (or names an equal one), within the bound.
    fn add(&mut self, op: Op, names: Vec<NodeName>) -> Lowered<Key> {
        let node = Node::new(op, names);
        if self.plan.len() >= self.max_nodes && self.plan.node(&node.key).is_none() {
            return Err(Fail::Limit);
        }
        Ok(self.plan.add(node))
    }

    /// The node key an argument refers to: a world, dataset or model; a run
    /// means its last checkpoint; `run@k` its checkpoint at k.
    fn resolve(&mut self, v: &Value) -> Lowered<Key> {
        match v {
            Value::Instance(i) => match self.out[*i].clone() {
                Some(Output::Node(k)) => Ok(k),
                Some(Output::Run { last, .. }) => Ok(last),
                Some(Output::Eval(_)) => internal("an evaluation is not one node".into()),
                None => Err(Fail::Upstream),
            },
            Value::Checkpoint(i, step) => match self.out[*i].clone() {
                Some(Output::Run { train, init, .. }) => {
                    let run = self.program.instances[*i].name.clone();
                    self.checkpoint(train, init, *step, &run)
                }
                Some(_) => internal("a checkpoint of something that is not a run".into()),
                None => Err(Fail::Upstream),
            },
            other => internal(format!("{other:?} is not a reference")),
        }
    }

    fn key(&mut self, a: &Args, name: &str) -> Lowered<Key> {
        let v = a.get(name)?;
        self.resolve(v)
    }

    fn opt_key(&mut self, a: &Args, name: &str) -> Lowered<Option<Key>> {
        match a.args.get(name) {
            Some(v) => self.resolve(v).map(Some),
            None => Ok(None),
        }
    }

    /// A classifier's data: a dataset, or a run's (or `run@k`'s) data stream.
    fn classified(&mut self, a: &Args) -> Lowered<Classified> {
        let v = a.get("data")?;
        let stream = match v {
            Value::Checkpoint(..) => true,
            Value::Instance(i) => matches!(self.out[*i], Some(Output::Run { .. })),
            _ => false,
        };
        let key = self.resolve(v)?;
        Ok(if stream { Classified::Stream(key) } else { Classified::Dataset(key) })
    }

    /// The nodes of an evaluation argument (a figure's axis).
    fn eval_keys(&mut self, v: &Value) -> Lowered<Vec<Key>> {
        match v {
            // A set: the order of `at:` or of a sweep's values, or a target
            // listed twice, changes neither the figure's key nor its points.
            Value::Instance(i) => match self.out[*i].clone() {
                Some(Output::Eval(mut keys)) => {
                    keys.sort();
                    keys.dedup();
                    Ok(keys)
                }
                Some(_) => internal("a figure axis that is not an evaluation".into()),
                None => Err(Fail::Upstream),
            },
            other => internal(format!("{other:?} is not an evaluation")),
        }
    }

    /// The checkpoint of a training run at a step; step 0 is where it started.
    fn checkpoint(&mut self, train: Key, init: Key, step: i64, run: &InstanceName) -> Lowered<Key> {
        if step == 0 {
            return Ok(init);
        }
        let key =
            self.add(Op::Checkpoint { run: train, step }, vec![NodeName::Checkpoint { run: run.clone(), step }])?;
        if let Some(pool) = self.pool.get(&train).copied() {
            self.pool.insert(key, pool);
        }
        // The training node must now go at least this far, and save this
        // step whatever its `save_every` (declarations merged into one run
        // may save on different grids).
        if let Some(Node { op: Op::Train(t), .. }) = self.plan.node_mut(&train) {
            t.length.require(step);
        }
        Ok(key)
    }

    /// What an evaluation looks at for one entry of its list: a model once, a
    /// checkpoint once, a run at each requested (or each saved) step. Each
    /// comes with its name, step, and the reference policy it defaults to.
    fn eval_targets(&mut self, t: &Value, at: Option<&[i64]>) -> Lowered<Vec<EvalTarget>> {
        Ok(match t {
            Value::Instance(i) => {
                let name = self.program.instances[*i].name.clone();
                match self.out[*i].clone() {
                    Some(Output::Run { train, init, reference, schedule, .. }) => {
                        let chosen: Vec<i64> = match at {
                            Some(a) => a.iter().copied().filter(|s| schedule.saves(*s)).collect(),
                            None => schedule.saved(),
                        };
                        let mut out = Vec::with_capacity(chosen.len());
                        for s in chosen {
                            out.push((self.checkpoint(train, init, s, &name)?, name.clone(), Some(s), Some(reference)));
                        }
                        out
                    }
                    Some(Output::Node(k)) => {
                        // An SFT model is its own reference; a PM has none.
                        let is_policy = self.program.instances[*i].ctor.name == "sft";
                        vec![(k, name, None, is_policy.then_some(k))]
                    }
                    _ => vec![],
                }
            }
            Value::Checkpoint(i, step) => {
                let name = self.program.instances[*i].name.clone();
                match self.out[*i].clone() {
                    Some(Output::Run { train, init, reference, .. }) => {
                        vec![(self.checkpoint(train, init, *step, &name)?, name, Some(*step), Some(reference))]
                    }
                    _ => vec![],
                }
            }
            _ => vec![],
        })
    }

    /// blake3 of an imported file, relative to the .exp file that names it,
    /// and the file's full path.
    /// The file or folder `inst`'s `path` names, relative to the .exp file
    /// that names it; a relative path may not climb out of the project.
    fn argument_path(&mut self, inst: &Instance, what: &str) -> Option<PathBuf> {
        let Some(Value::Str(path)) = inst.args.get("path") else { return None };
        let file = &self.program.sources.get(inst.span.file).path;
        let full = file.parent().unwrap_or(Path::new(".")).join(path);
        // A relative path must not climb out of the project: data from
        // elsewhere is named explicitly, by an absolute path.
        if Path::new(path).is_relative() {
            let root = project_root(&self.program.sources.get(crate::source::FileId(0)).path);
            if let (Some(root), Some(target)) = (normalize(&root), normalize(&full)) {
                if !target.starts_with(&root) {
                    self.problems.push(
                        Problem::new(Code::OutsideProject, inst.span, format!("`{path}` leads outside the project"))
                            .label(what.to_string())
                            .help(
                                "a relative path stays inside the project (the folder with tandem.toml or .git); \
                             name a file from elsewhere by its absolute path",
                            ),
                    );
                    return None;
                }
            }
        }
        Some(full)
    }

    /// A pretrained model's directory, inspected: everything that can be
    /// checked without libtorch is, so that a directory tandem cannot use
    /// is refused here, before anything is computed.
    fn pretrained_dir(&mut self, inst: &Instance) -> Option<(crate::hfdir::Inspected, String)> {
        let full = self.argument_path(inst, "this model's directory")?;
        match crate::hfdir::inspect(&full) {
            Ok(found) => Some((found, full.display().to_string())),
            Err(e) => {
                let help = miette::Diagnostic::help(&e).map(|h| h.to_string());
                // Said with the path as the file writes it, not as resolved.
                let written = match inst.args.get("path") {
                    Some(Value::Str(p)) => p.clone(),
                    _ => full.display().to_string(),
                };
                let message = e.to_string().replace(&full.display().to_string(), &written);
                let mut p = Problem::new(Code::Pretrained, inst.span, message).label("this model's directory");
                if let Some(h) = help {
                    p = p.help(h);
                }
                self.problems.push(p);
                None
            }
        }
    }

    /// A JSONL file's digest and path, and whether its records are
    /// conversations; every bad record is reported (rendered with `chat`
    /// where they are conversations).
    fn file_digest(
        &mut self,
        inst: &Instance,
        chat: Option<&crate::hfdir::chat::ChatTemplate>,
        format: RecordFile,
    ) -> Option<(String, String, bool)> {
        let full = self.argument_path(inst, "this dataset's file")?;
        match std::fs::read(&full) {
            Ok(bytes) => {
                // A Parquet file's rows are read as JSONL lines: checked and
                // keyed as the same records written in JSONL would be.
                let bytes = match format {
                    RecordFile::Jsonl => bytes,
                    RecordFile::Parquet => match crate::hfdir::parquet::to_jsonl(&bytes) {
                        Ok(text) => text.into_bytes(),
                        Err(e) => {
                            self.problems.push(
                                Problem::new(Code::BadRecord, inst.span, format!("{}: {e}", written_path(inst, &full)))
                                    .label("this dataset's file")
                                    .help("a Parquet file as Hugging Face datasets writes it, with columns prompt, chosen, rejected"),
                            );
                            return None;
                        }
                    },
                };
                let conversational = self.check_records(inst, &full, &bytes, (chat, format));
                Some((crate::hfdir::records::content_digest(&bytes), full.display().to_string(), conversational))
            }
            Err(e) => {
                self.problems.push(
                    Problem::new(Code::Io, inst.span, format!("cannot read `{}`: {e}", full.display()))
                        .label("this dataset's file")
                        .help("paths are relative to the .exp file that names them"),
                );
                None
            }
        }
    }
}

impl Lowerer<'_> {
    /// A JSONL file's records, read now so that `check` names every bad
    /// one with its line (up to [`SHOWN_RECORD_PROBLEMS`], then a count),
    /// not the first of them when the node runs.
    fn check_records(
        &mut self,
        inst: &Instance,
        full: &Path,
        bytes: &[u8],
        (chat, format): (Option<&crate::hfdir::chat::ChatTemplate>, RecordFile),
    ) -> bool {
        let written = written_path(inst, full);
        // A Parquet file's line N is its row N.
        let shown = |line: usize| match (line, format) {
            (0, _) => written.clone(),
            (_, RecordFile::Jsonl) => format!("{written}:{line}"),
            (_, RecordFile::Parquet) => format!("{written}: row {line}"),
        };
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                // The line of the first invalid byte.
                let line = bytes[..e.valid_up_to()].iter().filter(|b| **b == b'\n').count() + 1;
                self.problems.push(
                    Problem::new(Code::BadRecord, inst.span, format!("{}: not UTF-8 text", shown(line)))
                        .label("this dataset's file")
                        .help("save the file as UTF-8"),
                );
                return false;
            }
        };
        let conversational = crate::hfdir::records::conversational(text);
        if conversational && chat.is_none() {
            self.problems.push(
                Problem::new(
                    Code::BadRecord,
                    inst.span,
                    format!("{written}: the records are conversations (lists of messages), and nothing renders them"),
                )
                .label("this dataset's file")
                .help(
                    "give `tokenizer_of:` a pretrained model whose tokenizer_config.json has a `chat_template`: \
                     it renders each conversation as transformers' apply_chat_template does",
                ),
            );
            return true;
        }
        let found = crate::hfdir::records::problems_with(text, chat.filter(|_| conversational));
        for (line, what) in found.iter().take(SHOWN_RECORD_PROBLEMS) {
            self.problems.push(
                Problem::new(Code::BadRecord, inst.span, format!("{}: {what}", shown(*line)))
                    .label("this dataset's file")
                    .help("each record (a JSONL line, a Parquet row) has string fields prompt, chosen, rejected, or lists of messages"),
            );
        }
        if found.len() > SHOWN_RECORD_PROBLEMS {
            self.problems.push(
                Problem::new(
                    Code::BadRecord,
                    inst.span,
                    format!("{written}: {} more bad records", found.len() - SHOWN_RECORD_PROBLEMS),
                )
                .label("this dataset's file")
                .help("the first ones are shown above"),
            );
        }
        conversational
    }
}

/// A dataset's path as the study writes it: what the user recognises.
fn written_path(inst: &Instance, full: &Path) -> String {
    match inst.args.get("path") {
        Some(Value::Str(p)) => p.clone(),
        _ => full.display().to_string(),
    }
}

/// Bad records of one JSONL file shown one by one; the rest are counted.
const SHOWN_RECORD_PROBLEMS: usize = 10;

/// The project a top-level .exp file belongs to: the nearest folder above it
/// holding `tandem.toml` or `.git`, else the file's own folder.
fn project_root(top: &Path) -> PathBuf {
    let dir = top.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let abs = std::path::absolute(&dir).unwrap_or(dir.clone());
    abs.ancestors()
        .find(|a| a.join("tandem.toml").exists() || a.join(".git").exists())
        .map(Path::to_path_buf)
        .unwrap_or(abs)
}

/// An absolute path with `.` and `..` resolved lexically (no symlinks followed).
fn normalize(p: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(p).ok()?;
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}
