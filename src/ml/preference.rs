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
//! It is trained with the
//! order-randomised loss of eq. (5), taken in expectation over both orders:
//! −½ log r(x, y_w, y_l) − ½ log(1 − r(x, y_l, y_w)). It prefers y1 over y2 by
//! the sign of r(x, y1, y2) − r(x, y2, y1) (A.2), so a positional bias cannot
//! decide; an exact tie is broken by a seeded coin, never by position.

use rand::Rng;
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use crate::ml::rng::Stream;
use crate::ml::tokens::{self, SEP};
use crate::ml::transformer::{Arch, Trunk};

/// Shapes a preference model is built for.
pub type PmSpec = crate::ml::transformer::ModelSpec;

/// How the logit is read off the trunk (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PmHead {
    Joint,
    Pooled,
}

impl PmHead {
    pub fn name(self) -> &'static str {
        match self {
            PmHead::Joint => "joint",
            PmHead::Pooled => "pooled",
        }
    }

    pub fn from_name(s: &str) -> Option<PmHead> {
        match s {
            "joint" => Some(PmHead::Joint),
            "pooled" => Some(PmHead::Pooled),
            _ => None,
        }
    }
}

enum Head {
    Joint(nn::Linear),
    /// Features [mean over response, last token] (2D) → D → 1; `overlap`
    /// embeds each response token's two overlap flags.
    Pooled {
        hidden: nn::Linear,
        out: nn::Linear,
        overlap: nn::Embedding,
    },
}

pub struct PreferenceModel {
    pub vs: nn::VarStore,
    pub spec: PmSpec,
    pub kind: PmHead,
    trunk: Trunk,
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
            PmHead::Pooled => spec.prompt_len + spec.response_len + 1,
        };
        let segments = match kind {
            PmHead::Joint => 3,
            PmHead::Pooled => 2,
        };
        let arch =
            Arch { vocab: spec.vocab, layers: spec.layers, width: spec.width, heads: spec.heads, context, segments };
        let root = vs.root();
        let trunk = Trunk::new(&(&root / "trunk"), arch);
        let head = match kind {
            PmHead::Joint => Head::Joint(nn::linear(&root / "head", spec.width, 1, Default::default())),
            PmHead::Pooled => Head::Pooled {
                hidden: nn::linear(&root / "head" / "hidden", 2 * spec.width, spec.width, Default::default()),
                out: nn::linear(&root / "head" / "out", spec.width, 1, Default::default()),
                overlap: nn::embedding(&root / "trunk" / "overlap", 4, spec.width, Default::default()),
            },
        };
        crate::ml::transformer::init(&vs, seed, spec.layers);
        PreferenceModel { vs, spec, kind, trunk, head }
    }

    /// The pooled head's score s(x, y): [B].
    /// The pooled head's scalar score of each (prompt, response); `None`
    /// for a joint head, which only scores pairs.
    pub fn pooled_score(&self, prompts: &Tensor, y: &Tensor) -> Option<Tensor> {
        matches!(self.head, Head::Pooled { .. }).then(|| tch::no_grad(|| self.score(prompts, y)))
    }

    fn score(&self, prompts: &Tensor, y: &Tensor) -> Tensor {
        let Head::Pooled { hidden: fc, out, overlap } = &self.head else {
            unreachable!("score() is the pooled head's")
        };
        let b = prompts.size()[0];
        let sep = Tensor::full([b, 1], SEP, (Kind::Int64, prompts.device()));
        let seq = Tensor::cat(&[prompts, &sep, y], 1);
        let mask = tokens::mask(&seq);
        let flags = overlap.forward(&overlap_flags(prompts, y)); // [B, Lr, D]
        let prefix = Tensor::zeros([b, prompts.size()[1] + 1, self.spec.width], (Kind::Float, prompts.device()));
        let hidden = self.trunk.forward_with(&seq, &mask, &Tensor::cat(&[prefix, flags], 1));
        // The response's real tokens (EOS included), averaged; an empty
        // response cannot occur (EOS is always there) but would give zeros.
        let lr = y.size()[1];
        let resp_mask = tokens::mask(y).to_kind(Kind::Float).unsqueeze(2); // [B, Lr, 1]
        let resp = hidden.narrow(1, hidden.size()[1] - lr, lr);
        let mean = (resp * &resp_mask).sum_dim_intlist(1, false, Kind::Float)
            / resp_mask.sum_dim_intlist(1, false, Kind::Float).clamp_min(1.0);
        let features = Tensor::cat(&[mean, last_real(&hidden, &mask)], 1);
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
                let hidden = self.trunk.forward(&seq, &mask);
                head.forward(&last_real(&hidden, &mask)).squeeze_dim(1)
            }
            Head::Pooled { .. } => {
                // Both responses in one batch through the trunk.
                let b = prompts.size()[0];
                let s = self.score(&Tensor::cat(&[prompts, prompts], 0), &Tensor::cat(&[y1, y2], 0));
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
            PmHead::Pooled => -&z_wl,
        };
        ((-z_wl).softplus() + z_lw.softplus()).mean(Kind::Float) * 0.5
    }

    /// r(x, y1, y2) − r(x, y2, y1): positive means y1 is preferred. [B].
    pub fn margin(&self, prompts: &Tensor, y1: &Tensor, y2: &Tensor) -> Tensor {
        tch::no_grad(|| match self.kind {
            PmHead::Joint => self.logit(prompts, y1, y2).sigmoid() - self.logit(prompts, y2, y1).sigmoid(),
            // σ(z) − σ(−z) = tanh(z/2): one pass, and exactly odd in z.
            PmHead::Pooled => (self.logit(prompts, y1, y2) * 0.5).tanh(),
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
