//! The pairwise preference model r(x, y1, y2) ∈ [0, 1] (Appendix A).
//!
//! A transformer reads `[prompt | SEP | y1 | SEP | y2]` and a scalar head on
//! the last real token gives a logit; r = σ(logit). It is trained with the
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

pub struct PreferenceModel {
    pub vs: nn::VarStore,
    pub spec: PmSpec,
    trunk: Trunk,
    head: nn::Linear,
}

impl PreferenceModel {
    pub fn new(spec: PmSpec, device: Device, seed: u64) -> PreferenceModel {
        let vs = nn::VarStore::new(device);
        let arch = Arch { vocab: spec.vocab, layers: spec.layers, width: spec.width, heads: spec.heads, context: spec.prompt_len + 2 * spec.response_len + 2 };
        let root = vs.root();
        let trunk = Trunk::new(&(&root / "trunk"), arch);
        let head = nn::linear(&root / "head", spec.width, 1, Default::default());
        crate::ml::transformer::init(&vs, seed, spec.layers);
        PreferenceModel { vs, spec, trunk, head }
    }

    /// The logit of r(x, y1, y2): [B].
    pub fn logit(&self, prompts: &Tensor, y1: &Tensor, y2: &Tensor) -> Tensor {
        let b = prompts.size()[0];
        let sep = Tensor::full([b, 1], SEP, (Kind::Int64, prompts.device()));
        let seq = Tensor::cat(&[prompts, &sep, y1, &sep, y2], 1);
        let mask = tokens::mask(&seq);
        let hidden = self.trunk.forward(&seq, &mask);
        // The last real token: the largest index whose mask is set.
        let t = seq.size()[1];
        let idx = (mask.to_kind(Kind::Int64) * Tensor::arange(t, (Kind::Int64, seq.device()))).argmax(1, true); // [B,1]
        let h = hidden.gather(1, &idx.unsqueeze(2).expand([b, 1, self.spec.width], false), false).squeeze_dim(1);
        self.head.forward(&h).squeeze_dim(1)
    }

    /// Eq. (5), negated and averaged over the batch.
    pub fn loss(&self, prompts: &Tensor, yw: &Tensor, yl: &Tensor) -> Tensor {
        let z_wl = self.logit(prompts, yw, yl);
        let z_lw = self.logit(prompts, yl, yw);
        // −log σ(z) = softplus(−z);  −log(1 − σ(z)) = softplus(z)
        ((-z_wl).softplus() + z_lw.softplus()).mean(Kind::Float) * 0.5
    }

    /// r(x, y1, y2) − r(x, y2, y1): positive means y1 is preferred. [B].
    pub fn margin(&self, prompts: &Tensor, y1: &Tensor, y2: &Tensor) -> Tensor {
        tch::no_grad(|| self.logit(prompts, y1, y2).sigmoid() - self.logit(prompts, y2, y1).sigmoid())
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
