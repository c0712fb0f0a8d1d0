//! The pairwise preference model r(x, y1, y2) ∈ [0, 1] (Appendix A).
//!
//! Two heads give the logit z(x, y1, y2), and r = σ(z):
//! - `joint`: a transformer reads `[prompt | SEP | y1 | SEP | y2]` and a
//!   scalar head on the last real token gives z. Fully pairwise, but every
//!   comparison must be computed inside one causal pass.
//! - `pooled` (the default): the trunk reads `[prompt | SEP | y]` once per
//!   response; the mean of the response tokens' hidden states and the last
//!   real token's state go through a small MLP to a score s(x, y), and
//!   z = s(x, y1) − s(x, y2). It is the Bradley–Terry special case of a
//!   pairwise PM, antisymmetric by construction. The oracles of the built-in
//!   worlds are per-token averages plus length terms, which a mean over the
//!   response reads directly: a joint head at 2–3 layers plateaued near 75%
//!   agreement with the noiseless oracle where the pooled head does not
//!   (docs/worlds.md has the measurements).
//!
//! A preference model can also start from a pretrained language model (or
//! a policy trained from one: the paper's PMs start from the SFT policy):
//! its trunk reads `[prompt | y]` in the model's own token ids, with a new
//! pooled head, or with `last`, the head of transformers'
//! `*ForSequenceClassification` reward models: s(x, y) = w · h, h the hidden
//! state of the last token that is not the config's pad token (as
//! transformers picks it). A reward model read from a Hugging Face
//! directory brings its own `score.weight`, so it judges as it came. It has no SEP to separate the two (the prompt's pass is the
//! prefix each response continues) and no overlap flags (a pretrained trunk
//! reads copying and repetition from the text itself).
//!
//! It is trained with the
//! order-randomised loss of eq. (5), taken in expectation over both orders:
//! −½ log r(x, y_w, y_l) − ½ log(1 − r(x, y_l, y_w)). It prefers y1 over y2 by
//! the sign of r(x, y1, y2) − r(x, y2, y1) (A.2), so a positional bias cannot
//! decide; an exact tie is broken by a seeded coin, never by position.

use rand::Rng;
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use crate::ml::autocast;
use crate::ml::hf::Pretrained;
use crate::ml::matmul::{linear_layer, Linear};
use crate::ml::past::{self, Past};
use crate::ml::rng::Stream;
use crate::ml::tokens::{self, SEP};
use crate::ml::transformer::{Arch, Continuation, Trunk};

/// A pooled head's pass over prompts `[x SEP]` (`[x]` for a pretrained
/// trunk), continued by responses.
pub struct Prefix {
    prompts: Tensor,
    /// Real tokens of each row's prefix: [B, 1].
    real: Tensor,
    /// The hidden state at the prefix's last token (SEP): [B, 1, D].
    sep_hidden: Tensor,
    cache: Past,
}

impl Prefix {
    /// The prefix as named tensors, to be kept beside the prompts it was
    /// computed from (a `samples` node keeps its judge's).
    pub fn to_named(&self) -> Vec<(String, Tensor)> {
        let mut out = self.cache.to_named("prefix.");
        out.push(("prefix.real".into(), self.real.contiguous()));
        out.push(("prefix.sep_hidden".into(), self.sep_hidden.contiguous()));
        out
    }
}

/// Shapes a preference model is built for.
pub type PmSpec = crate::ml::transformer::ModelSpec;

/// How the logit is read off the trunk (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PmHead {
    Joint,
    Pooled,
    /// A score on the last non-pad token: transformers' reward models.
    Last,
}

impl PmHead {
    pub fn name(self) -> &'static str {
        match self {
            PmHead::Joint => "joint",
            PmHead::Pooled => "pooled",
            PmHead::Last => "last",
        }
    }

    pub fn from_name(s: &str) -> Option<PmHead> {
        match s {
            "joint" => Some(PmHead::Joint),
            "pooled" => Some(PmHead::Pooled),
            "last" => Some(PmHead::Last),
            _ => None,
        }
    }
}

enum Head {
    Joint(Linear),
    /// `score.weight` [1, D] on the last non-pad token (pretrained trunks;
    /// `pad` is the config's pad token as a stored id).
    Last {
        score: Tensor,
        pad: Option<i64>,
    },
    /// Features [mean over response, last token] (2D) → D → 1; `overlap`
    /// embeds each response token's two overlap flags (tandem's own trunk
    /// only).
    Pooled {
        hidden: Linear,
        out: Linear,
        overlap: Option<nn::Embedding>,
    },
}

/// The network under the head. (One per model: the variants' sizes do not
/// matter.)
#[allow(clippy::large_enum_variant)]
enum Body {
    Own { vs: nn::VarStore, trunk: Trunk },
    Pretrained(Pretrained),
}

pub struct PreferenceModel {
    pub spec: PmSpec,
    pub kind: PmHead,
    body: Body,
    head: Head,
}

/// Per response token, two flags as one index in 0..4: bit 0 "occurs in the
/// prompt", bit 1 "occurs earlier in the response" (PAD never counts). They
/// are the lexical overlaps — copying and repetition — that reward models of
/// text read with ease and that a 2-layer trunk did not learn to compute
/// from the pairs alone (docs/worlds.md). [B, Lr] → [B, Lr] Int64.
pub fn overlap_flags(prompts: &Tensor, y: &Tensor) -> Tensor {
    let real = tokens::mask(y);
    let in_prompt = y
        .unsqueeze(2)
        .eq_tensor(&prompts.unsqueeze(1))
        .logical_and(&tokens::mask(prompts).unsqueeze(1))
        .any_dim(2, false);
    let lr = y.size()[1];
    let earlier = Tensor::ones([lr, lr], (Kind::Bool, y.device())).tril(-1);
    let repeated = y.unsqueeze(2).eq_tensor(&y.unsqueeze(1)).logical_and(&earlier.unsqueeze(0)).any_dim(2, false);
    let flags = in_prompt.to_kind(Kind::Int64) + repeated.to_kind(Kind::Int64) * 2;
    flags * real.to_kind(Kind::Int64)
}

/// The hidden state at the last real token of each row: [B, T, D] → [B, D].
fn last_real(hidden: &Tensor, mask: &Tensor) -> Tensor {
    let (b, t, d) = hidden.size3().expect("[B, T, D]");
    let idx = (mask.to_kind(Kind::Int64) * Tensor::arange(t, (Kind::Int64, hidden.device()))).argmax(1, true); // [B,1]
    hidden.gather(1, &idx.unsqueeze(2).expand([b, 1, d], false), false).squeeze_dim(1)
}

impl PreferenceModel {
    pub fn new(spec: PmSpec, kind: PmHead, device: Device, seed: u64) -> PreferenceModel {
        let vs = nn::VarStore::new(device);
        let context = match kind {
            PmHead::Joint => spec.prompt_len + 2 * spec.response_len + 2,
            PmHead::Pooled | PmHead::Last => spec.prompt_len + spec.response_len + 1,
        };
        let segments = match kind {
            PmHead::Joint => 3,
            PmHead::Pooled | PmHead::Last => 2,
        };
        let arch =
            Arch { vocab: spec.vocab, layers: spec.layers, width: spec.width, heads: spec.heads, context, segments };
        let root = vs.root();
        let trunk = Trunk::new(&(&root / "trunk"), arch);
        let head = match kind {
            PmHead::Joint => Head::Joint(linear_layer(&root / "head", spec.width, 1, Default::default())),
            // The plan gives `last` a pretrained trunk only; on tandem's own
            // trunk it would be the pooled head's simpler cousin, not built.
            PmHead::Pooled | PmHead::Last => Head::Pooled {
                hidden: linear_layer(&root / "head" / "hidden", 2 * spec.width, spec.width, Default::default()),
                out: linear_layer(&root / "head" / "out", spec.width, 1, Default::default()),
                overlap: Some(nn::embedding(&root / "trunk" / "overlap", 4, spec.width, Default::default())),
            },
        };
        crate::ml::transformer::init(&vs, seed, spec.layers);
        PreferenceModel { spec, kind, body: Body::Own { vs, trunk }, head }
    }

    /// A pooled preference model on a pretrained trunk, for prompts of
    /// `prompt_len` and responses of `response_len` stored tokens, with a
    /// new head (`score.*`, initialised from `seed`); everything trainable.
    pub fn from_pretrained(
        mut model: Pretrained,
        prompt_len: i64,
        response_len: i64,
        seed: u64,
        kind: PmHead,
    ) -> Result<PreferenceModel, String> {
        model.fits((prompt_len + response_len) as usize).map_err(|e| e.to_string())?;
        model.vs.unfreeze();
        let c = &model.config;
        let spec =
            PmSpec { vocab: c.vocab + 1, layers: c.layers, width: c.width, heads: c.heads, prompt_len, response_len };
        let root = model.vs.root() / "score";
        let head = match kind {
            PmHead::Joint => {
                return Err(
                    "a preference model on a pretrained trunk has a pooled or a last-token head, not a joint one"
                        .into(),
                )
            }
            PmHead::Pooled => {
                let head = Head::Pooled {
                    hidden: linear_layer(&root / "hidden", 2 * spec.width, spec.width, Default::default()),
                    out: linear_layer(&root / "out", spec.width, 1, Default::default()),
                    overlap: None,
                };
                crate::ml::transformer::init_where(&model.vs, seed, spec.layers, |name| name.starts_with("score."));
                head
            }
            // A reward model's own score head, as it came; a language
            // model's trunk gets a new one, drawn like the pooled head's.
            PmHead::Last => {
                let score = match &model.score {
                    Some(w) => w.shallow_clone(),
                    None => {
                        let w = root.var("weight", &[1, spec.width], nn::Init::Const(0.0));
                        crate::ml::transformer::init_where(&model.vs, seed, spec.layers, |n| n == "score.weight");
                        w
                    }
                };
                // The stored id of the config's pad token (stored = model id + 1).
                Head::Last { score, pad: c.pad.map(|p| p + 1) }
            }
        };
        Ok(PreferenceModel { spec, kind, body: Body::Pretrained(model), head })
    }

    /// The pretrained model under this one, if it is one.
    pub fn pretrained(&self) -> Option<&Pretrained> {
        match &self.body {
            Body::Pretrained(p) => Some(p),
            Body::Own { .. } => None,
        }
    }

    /// The parameters (a pretrained trunk's and its head's together).
    pub fn vs(&self) -> &nn::VarStore {
        match &self.body {
            Body::Own { vs, .. } => vs,
            Body::Pretrained(p) => &p.vs,
        }
    }

    /// tandem's own trunk; a joint head and overlap flags exist only on it.
    fn own_trunk(&self) -> &Trunk {
        match &self.body {
            Body::Own { trunk, .. } => trunk,
            Body::Pretrained(_) => unreachable!("a pretrained preference model has the pooled head"),
        }
    }

    /// The pooled head's scalar score s(x, y) of each (prompt, response):
    /// [B]; `None` for a joint head, which only scores pairs.
    pub fn pooled_score(&self, prompts: &Tensor, y: &Tensor) -> Option<Tensor> {
        matches!(self.head, Head::Pooled { .. } | Head::Last { .. })
            .then(|| tch::no_grad(|| self.scores(prompts, &[y])))
    }

    /// The prompts' prefix `[x SEP]` through the pooled head's trunk, to be
    /// continued by any number of responses ([`PreferenceModel::scores_after`]).
    pub fn prefix(&self, prompts: &Tensor) -> Prefix {
        let b = prompts.size()[0];
        let (hidden, cache, seq, mask) = match &self.body {
            Body::Own { trunk, .. } => {
                let sep = Tensor::full([b, 1], SEP, (Kind::Int64, prompts.device()));
                let seq = Tensor::cat(&[prompts, &sep], 1);
                let mask = tokens::mask(&seq);
                let (hidden, cache) = trunk.prefill(&seq, &mask);
                (hidden, Past::Own(cache), seq, mask)
            }
            Body::Pretrained(p) => {
                let mask = tokens::mask(prompts);
                let (hidden, cache) = past::pretrained_prefill(p, prompts, &mask);
                (hidden, cache, prompts.shallow_clone(), mask)
            }
        };
        let width = seq.size()[1];
        Prefix {
            prompts: prompts.shallow_clone(),
            real: mask.to_kind(Kind::Int64).sum_dim_intlist([1i64].as_slice(), true, Kind::Int64),
            sep_hidden: hidden.narrow(1, width - 1, 1),
            cache,
        }
    }

    /// A prefix kept by [`Prefix::to_named`], for `prompts`, checked
    /// against this model's shapes; None if a tensor is missing or of
    /// another shape.
    pub fn prefix_from_named(&self, prompts: &Tensor, get: impl Fn(&str) -> Option<Tensor>) -> Option<Prefix> {
        let device = prompts.device();
        let get = |name: &str| get(name).map(|t| t.to_device(device));
        let pretrained = self.pretrained();
        let cache = Past::from_named(get, "prefix.", self.spec.layers, pretrained.is_some())?;
        let (b, lp) = prompts.size2().ok()?;
        let width = self.spec.width;
        // tandem's trunk reads `[x SEP]`; a pretrained one `[x]`, with its
        // own key/value heads.
        let (keys, heads, head_dim) = match pretrained {
            None => (lp + 1, self.spec.heads, width / self.spec.heads),
            Some(p) => (lp, p.config.kv_heads, p.config.head_dim),
        };
        let kv = [b, heads, keys, head_dim];
        let fits = cache
            .to_named("")
            .iter()
            .all(|(name, t)| t.size() == if name == "key_mask" { vec![b, keys] } else { kv.to_vec() });
        let real = get("prefix.real")?;
        let sep_hidden = get("prefix.sep_hidden")?;
        (fits && real.size() == [b, 1] && sep_hidden.size() == [b, 1, width]).then(|| Prefix {
            prompts: prompts.shallow_clone(),
            real,
            sep_hidden,
            cache,
        })
    }

    /// s(x, y) of several response sets to the same prompts, [n·B] (set j
    /// at rows j·B..), with `[x SEP]` through the trunk once: the responses
    /// continue its KV cache. The same numbers as a pass over each whole
    /// `[x SEP y]`, up to float rounding (tests/ml_numerics.rs); a
    /// preference step scores chosen and rejected, so it reads 37 token
    /// rows per pair at the paper's widths instead of 50.
    fn scores(&self, prompts: &Tensor, responses: &[&Tensor]) -> Tensor {
        self.scores_after(&self.prefix(prompts), responses)
    }

    /// The pooled score as one pass over each whole `[x SEP y]`, the prompt
    /// recomputed for every response: what [`PreferenceModel::scores`]
    /// computes without sharing. For tests and benchmarks.
    pub fn pooled_score_whole(&self, prompts: &Tensor, y: &Tensor) -> Option<Tensor> {
        if let (Head::Last { score, pad }, Body::Pretrained(p)) = (&self.head, &self.body) {
            let seq = Tensor::cat(&[prompts, y], 1);
            let mask = tokens::mask(&seq);
            let hidden = past::pretrained_hidden(p, &seq, &mask);
            let keep = match pad {
                Some(pad) => mask.logical_and(&seq.ne(*pad)),
                None => mask,
            };
            return Some(Self::last_head(score, last_real(&hidden, &keep)));
        }
        let Head::Pooled { hidden: fc, out, overlap } = &self.head else { return None };
        if let Body::Pretrained(p) = &self.body {
            let seq = Tensor::cat(&[prompts, y], 1);
            let mask = tokens::mask(&seq);
            let hidden = past::pretrained_hidden(p, &seq, &mask);
            let lr = y.size()[1];
            let resp = hidden.narrow(1, hidden.size()[1] - lr, lr);
            return Some(Self::pooled_head(fc, out, &resp, &tokens::mask(y), last_real(&hidden, &mask)));
        }
        let overlap = overlap.as_ref().expect("tandem's own pooled head has overlap flags");
        Some({
            let b = prompts.size()[0];
            let sep = Tensor::full([b, 1], SEP, (Kind::Int64, prompts.device()));
            let seq = Tensor::cat(&[prompts, &sep, y], 1);
            let mask = tokens::mask(&seq);
            let flags = overlap.forward(&overlap_flags(prompts, y));
            let prefix = Tensor::zeros([b, prompts.size()[1] + 1, self.spec.width], (Kind::Float, prompts.device()));
            let hidden = self.own_trunk().forward_with(&seq, &mask, &Tensor::cat(&[prefix, flags], 1));
            let lr = y.size()[1];
            let resp = hidden.narrow(1, hidden.size()[1] - lr, lr);
            Self::pooled_head(fc, out, &resp, &tokens::mask(y), last_real(&hidden, &mask))
        })
    }

    /// The pooled scores of responses `y` to the prefix's prompts, [B];
    /// `None` for a joint head.
    pub fn pooled_scores_after(&self, prefix: &Prefix, y: &Tensor) -> Option<Tensor> {
        matches!(self.head, Head::Pooled { .. } | Head::Last { .. })
            .then(|| tch::no_grad(|| self.scores_after(prefix, &[y])))
    }

    /// [`PreferenceModel::scores`] continuing a prefix computed before.
    fn scores_after(&self, prefix: &Prefix, responses: &[&Tensor]) -> Tensor {
        let overlap = match &self.head {
            Head::Pooled { overlap, .. } => overlap,
            Head::Last { .. } => &None,
            Head::Joint(_) => unreachable!("scores are the pooled and last-token heads'"),
        };
        let n = responses.len() as i64;
        let mut cache = prefix.cache.repeat(n as usize);
        let prompts = prefix.prompts.repeat([n, 1]);
        let y = Tensor::cat(responses, 0); // [nB, Lr]
        let ymask = tokens::mask(&y);
        let positions =
            (ymask.to_kind(Kind::Int64).cumsum(1, Kind::Int64) - 1 + prefix.real.repeat([n, 1])).clamp_min(0);
        let resp = match (&self.body, &mut cache) {
            (Body::Own { trunk, .. }, Past::Own(cache)) => {
                let overlap = overlap.as_ref().expect("tandem's own pooled head has overlap flags");
                let flags = overlap.forward(&overlap_flags(&prompts, &y)); // [nB, Lr, D]
                let how = Continuation { segment: 1, extra: Some(&flags) };
                trunk.extend_with(&y, &positions, &ymask, how, cache)
            }
            (Body::Pretrained(p), cache) => past::pretrained_extend(p, &y, &positions, &ymask, cache),
            _ => unreachable!("a prefix is made by its own model's trunk"),
        };
        // The last real token of `[x SEP y]`: the response's, or SEP's if it
        // had none.
        let b = y.size()[0];
        let with_sep = Tensor::cat(&[&prefix.sep_hidden.repeat([n, 1, 1]), &resp], 1);
        let with_sep_mask = Tensor::cat(&[&Tensor::ones([b, 1], (Kind::Bool, y.device())), &ymask], 1);
        match &self.head {
            Head::Pooled { hidden: fc, out, .. } => {
                Self::pooled_head(fc, out, &resp, &ymask, last_real(&with_sep, &with_sep_mask))
            }
            Head::Last { score, pad } => {
                // transformers' rule: the last token that is not the pad
                // token (a response ending in an EOS that is also the pad
                // token is scored at the token before it).
                let keep = match pad {
                    Some(p) => ymask.logical_and(&y.ne(*p)),
                    None => ymask.shallow_clone(),
                };
                let keep = Tensor::cat(&[&Tensor::ones([b, 1], (Kind::Bool, y.device())), &keep], 1);
                Self::last_head(score, last_real(&with_sep, &keep))
            }
            Head::Joint(_) => unreachable!("scores are the pooled and last-token heads'"),
        }
    }

    /// The last-token head on the chosen token's hidden state [B, D]: the score [B].
    fn last_head(score: &Tensor, last: Tensor) -> Tensor {
        let _float32 = autocast::float32(last.device());
        last.to_kind(Kind::Float).matmul(&score.to_kind(Kind::Float).tr()).squeeze_dim(1)
    }

    /// The pooled head on the response's hidden states [B, Lr, D] (`ymask`
    /// its real tokens) and the last real token's [B, D]: the score [B].
    fn pooled_head(fc: &Linear, out: &Linear, resp: &Tensor, ymask: &Tensor, last: Tensor) -> Tensor {
        // The score head in float32 under mixed precision too: scores
        // rounded to bf16 would tie where they do not (ml::autocast).
        let _float32 = autocast::float32(resp.device());
        let (resp, last) = (&resp.to_kind(Kind::Float), last.to_kind(Kind::Float));
        // The response's real tokens (EOS included), averaged; an empty
        // response cannot occur (EOS is always there) but would give zeros.
        let resp_mask = ymask.to_kind(Kind::Float).unsqueeze(2); // [B, Lr, 1]
        let mean = (resp * &resp_mask).sum_dim_intlist(1, false, Kind::Float)
            / resp_mask.sum_dim_intlist(1, false, Kind::Float).clamp_min(1.0);
        let features = Tensor::cat(&[mean, last], 1);
        // The tanh GELU, as the trunk's (transformer.rs says why).
        out.forward(&fc.forward(&features).gelu("tanh")).squeeze_dim(1)
    }

    /// The logit of r(x, y1, y2): [B].
    pub fn logit(&self, prompts: &Tensor, y1: &Tensor, y2: &Tensor) -> Tensor {
        match &self.head {
            Head::Joint(head) => {
                let b = prompts.size()[0];
                let sep = Tensor::full([b, 1], SEP, (Kind::Int64, prompts.device()));
                let seq = Tensor::cat(&[prompts, &sep, y1, &sep, y2], 1);
                let mask = tokens::mask(&seq);
                let hidden = self.own_trunk().forward(&seq, &mask);
                let _float32 = autocast::float32(hidden.device());
                head.forward(&last_real(&hidden, &mask).to_kind(Kind::Float)).squeeze_dim(1)
            }
            Head::Pooled { .. } | Head::Last { .. } => {
                // Both responses continue one pass over the prompts.
                let b = prompts.size()[0];
                let s = self.scores(prompts, &[y1, y2]);
                s.narrow(0, 0, b) - s.narrow(0, b, b)
            }
        }
    }

    /// Eq. (5), negated and averaged over the batch.
    pub fn loss(&self, prompts: &Tensor, yw: &Tensor, yl: &Tensor) -> Tensor {
        let z_wl = self.logit(prompts, yw, yl);
        // −log σ(z) = softplus(−z);  −log(1 − σ(z)) = softplus(z)
        let z_lw = match self.kind {
            PmHead::Joint => self.logit(prompts, yl, yw),
            // Antisymmetric: z(x, y_l, y_w) = −z(x, y_w, y_l); no second pass.
            PmHead::Pooled | PmHead::Last => -&z_wl,
        };
        ((-z_wl).softplus() + z_lw.softplus()).mean(Kind::Float) * 0.5
    }

    /// r(x, y1, y2) − r(x, y2, y1): positive means y1 is preferred. [B].
    pub fn margin(&self, prompts: &Tensor, y1: &Tensor, y2: &Tensor) -> Tensor {
        self.judge(prompts, y1, y2).0
    }

    /// The margin of [`Self::margin`] and, for a pooled head, each
    /// response's score s(x, y) behind it ([2B]: y1's, then y2's), from the
    /// same pass: what an online run records of its judge.
    pub fn judge(&self, prompts: &Tensor, y1: &Tensor, y2: &Tensor) -> (Tensor, Option<Tensor>) {
        tch::no_grad(|| match self.kind {
            PmHead::Joint => (self.logit(prompts, y1, y2).sigmoid() - self.logit(prompts, y2, y1).sigmoid(), None),
            PmHead::Pooled | PmHead::Last => {
                // The pooled logit is s(x, y1) − s(x, y2), as `logit` computes it;
                // σ(z) − σ(−z) = tanh(z/2): one pass, and exactly odd in z.
                let b = prompts.size()[0];
                let s = self.scores(prompts, &[y1, y2]);
                (((s.narrow(0, 0, b) - s.narrow(0, b, b)) * 0.5).tanh(), Some(s))
            }
        })
    }

    /// Whether y1 is preferred, per row, with a seeded coin for exact ties.
    pub fn prefers_first(&self, prompts: &Tensor, y1: &Tensor, y2: &Tensor, coin: &mut Stream) -> Vec<bool> {
        let m: Vec<f32> = Vec::try_from(self.margin(prompts, y1, y2).to_device(Device::Cpu)).expect("float margins");
        decide(&m, coin)
    }
}

/// Sign of each margin; a coin from `coin` for exact zeros.
pub fn decide(margins: &[f32], coin: &mut Stream) -> Vec<bool> {
    margins
        .iter()
        .map(|&m| {
            // One draw per row keeps the stream aligned whatever the margins are.
            let c: bool = coin.gen();
            if m > 0.0 {
                true
            } else if m < 0.0 {
                false
            } else {
                c
            }
        })
        .collect()
}
