//! The policy: a decoder-only transformer over `[prompt | response]`,
//! either tandem's own (`Policy::new`) or a pretrained language model
//! (`Policy::from_pretrained`).
//!
//! Its response distribution never puts mass on PAD (nor, for tandem's own
//! vocabulary, on BOS or SEP): those logits are pushed to -1e9 (not -inf, so
//! that 0·log 0 terms of a KL stay 0 instead of NaN). Sampling, log-probs
//! and KL all use that same distribution.
//!
//! A pretrained model's token ids are kept one up (`stored = id + 1`), so
//! that 0 stays PAD as everywhere else in tandem: batching, masks, samplers
//! and the cache need no second convention. Its distribution over stored
//! ids is the model's own, with PAD's slot at -1e9.

use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use crate::ml::autocast;
use crate::ml::hf::Pretrained;
use crate::ml::matmul::{linear_layer, Linear};
use crate::ml::past::{self, Past};
use crate::ml::rng::Stream;
use crate::ml::tokens::{self, BOS, EOS, PAD, SEP};
use crate::ml::transformer::{Arch, Trunk};

/// Shapes a policy is built for.
pub type PolicySpec = crate::ml::transformer::ModelSpec;

pub struct Policy {
    /// For a pretrained model `vocab` counts stored ids (its own + PAD).
    pub spec: PolicySpec,
    body: Body,
    /// [V] 0 for allowed tokens, -1e9 for PAD (and BOS, SEP of tandem's own).
    forbid: Tensor,
    /// The token that ends a response.
    pub eos: i64,
}

/// The network under a policy. (One per model, never in a collection: the
/// variants' sizes do not matter.)
#[allow(clippy::large_enum_variant)]
enum Body {
    Own { vs: nn::VarStore, trunk: Trunk, head: Linear },
    Pretrained(Pretrained),
}

const NEG: f64 = -1e9;

impl Policy {
    pub fn new(spec: PolicySpec, device: Device, seed: u64) -> Policy {
        let vs = nn::VarStore::new(device);
        let arch = Arch {
            vocab: spec.vocab,
            layers: spec.layers,
            width: spec.width,
            heads: spec.heads,
            context: spec.prompt_len + spec.response_len,
            segments: 0,
        };
        let root = vs.root();
        let trunk = Trunk::new(&(&root / "trunk"), arch);
        let head = linear_layer(
            &root / "head",
            spec.width,
            spec.vocab,
            nn::LinearConfig { bias: false, ..Default::default() },
        );
        crate::ml::transformer::init(&vs, seed, spec.layers);
        let mut forbid = vec![0f32; spec.vocab as usize];
        for t in [PAD, BOS, SEP] {
            forbid[t as usize] = NEG as f32;
        }
        let forbid = Tensor::from_slice(&forbid).to_device(device);
        Policy { spec, body: Body::Own { vs, trunk, head }, forbid, eos: EOS }
    }

    /// A pretrained language model as a policy over prompts of
    /// `prompt_len` and responses of `response_len` stored tokens, its
    /// parameters trainable. Refused (in words) when its config names no
    /// end-of-sequence token, which every response needs, or when the two
    /// widths do not fit its positions.
    pub fn from_pretrained(mut model: Pretrained, prompt_len: i64, response_len: i64) -> Result<Policy, String> {
        if !model.lm_head {
            return Err("a reward model with its own (untied) embedding has no language-model head: it can be a preference model's base (`pm(..., base: ...)`), not a policy".into());
        }
        let Some(eos) = model.config.eos else {
            return Err("the model's config.json names no `eos_token_id`: a response needs a token that ends it".into());
        };
        model.fits((prompt_len + response_len) as usize).map_err(|e| e.to_string())?;
        model.vs.unfreeze();
        let c = &model.config;
        let spec = PolicySpec {
            vocab: c.vocab + 1,
            layers: c.layers,
            width: c.width,
            heads: c.heads,
            prompt_len,
            response_len,
        };
        let mut forbid = vec![0f32; spec.vocab as usize];
        forbid[PAD as usize] = NEG as f32;
        let forbid = Tensor::from_slice(&forbid).to_device(model.device());
        Ok(Policy { spec, body: Body::Pretrained(model), forbid, eos: eos + 1 })
    }

    /// The pretrained model under this policy, if it is one.
    pub fn pretrained(&self) -> Option<&Pretrained> {
        match &self.body {
            Body::Pretrained(p) => Some(p),
            Body::Own { .. } => None,
        }
    }

    /// The parameters.
    pub fn vs(&self) -> &nn::VarStore {
        match &self.body {
            Body::Own { vs, .. } => vs,
            Body::Pretrained(p) => &p.vs,
        }
    }

    pub fn device(&self) -> Device {
        self.vs().device()
    }

    fn logits(&self, hidden: &Tensor) -> Tensor {
        // The output layer in float32 under mixed precision too (ml::autocast
        // says why); a no-op in float32.
        let _float32 = autocast::float32(hidden.device());
        let hidden = &hidden.to_kind(Kind::Float);
        let raw = match &self.body {
            Body::Own { head, .. } => head.forward(hidden),
            Body::Pretrained(p) => {
                let l = p.logits_of(hidden);
                Tensor::cat(&[l.narrow(-1, 0, 1).zeros_like(), l], -1)
            }
        };
        raw + &self.forbid
    }

    /// Hidden states [B, T, D] of whole sequences.
    fn hidden(&self, seq: &Tensor, mask: &Tensor) -> Tensor {
        match &self.body {
            Body::Own { trunk, .. } => trunk.forward(seq, mask),
            Body::Pretrained(p) => past::pretrained_hidden(p, seq, mask),
        }
    }

    /// Like [`Policy::hidden`], keeping every layer's keys and values.
    fn prefill(&self, seq: &Tensor, mask: &Tensor) -> (Tensor, Past) {
        match &self.body {
            Body::Own { trunk, .. } => {
                let (h, cache) = trunk.prefill(seq, mask);
                (h, Past::Own(cache))
            }
            Body::Pretrained(p) => past::pretrained_prefill(p, seq, mask),
        }
    }

    /// `seq` [B, T] (PAD allowed, `mask` says which are real) continuing
    /// `past` at `positions`.
    fn extend(&self, seq: &Tensor, positions: &Tensor, mask: &Tensor, past: &mut Past) -> Tensor {
        match (&self.body, past) {
            (Body::Own { trunk, .. }, Past::Own(cache)) => trunk.extend(seq, positions, mask, cache),
            (Body::Pretrained(p), past) => past::pretrained_extend(p, seq, positions, mask, past),
            _ => unreachable!("a past is made by its own body's prefill"),
        }
    }

    /// One new real token per row: [B, 1] → hidden [B, 1, D].
    fn step(&self, token: &Tensor, position: &Tensor, past: &mut Past) -> Tensor {
        match (&self.body, past) {
            (Body::Own { trunk, .. }, Past::Own(cache)) => trunk.step(token, position, cache),
            (Body::Pretrained(_), past @ Past::Pretrained { .. }) => {
                let real = token.ones_like().to_kind(Kind::Bool);
                self.extend(token, position, &real, past)
            }
            _ => unreachable!("a past is made by its own body's prefill"),
        }
    }

    /// Log-softmax over the vocabulary at each response position: [B, Lr, V].
    /// Position j is the distribution of response token j.
    pub fn response_log_dists(&self, prompts: &Tensor, responses: &Tensor) -> Tensor {
        let lp = prompts.size()[1];
        let lr = responses.size()[1];
        let seq = Tensor::cat(&[prompts, responses], 1);
        let hidden = self.hidden(&seq, &tokens::mask(&seq));
        let h = hidden.narrow(1, lp - 1, lr);
        self.logits(&h).log_softmax(-1, Kind::Float)
    }

    /// Per-token log-probs of the responses [B, Lr] (0 on padding) and the mask.
    pub fn token_logprobs(&self, prompts: &Tensor, responses: &Tensor) -> (Tensor, Tensor) {
        let dists = self.response_log_dists(prompts, responses);
        let mask = tokens::mask(responses);
        let lp = dists.gather(2, &responses.unsqueeze(2), false).squeeze_dim(2);
        (lp * mask.to_kind(Kind::Float), mask)
    }

    /// Sequence log-prob: the sum over response tokens (EOS included), or the mean.
    pub fn seq_logprob(&self, prompts: &Tensor, responses: &Tensor, mean: bool) -> Tensor {
        let (lp, mask) = self.token_logprobs(prompts, responses);
        let s = lp.sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
        if mean {
            s / mask.to_kind(Kind::Float).sum_dim_intlist([1i64].as_slice(), false, Kind::Float).clamp_min(1.0)
        } else {
            s
        }
    }

    /// Sequence log-probs of several responses to the same prompts, as
    /// [`Policy::seq_logprob`] of each would give them (up to float
    /// rounding), with the prompts run through the trunk once: the
    /// responses continue the prompts' KV cache. `responses[j]` [B, Lr] all
    /// answer `prompts` [B, Lp]; returns [n·B], response set j at rows j·B...
    ///
    /// A preference step scores chosen and rejected responses to one batch
    /// of prompts: sharing the prompt pass cuts its work by a quarter at
    /// equal prompt and response widths (bench/NOTES.md).
    pub fn shared_prompt_seq_logprob(&self, prompts: &Tensor, responses: &[&Tensor], mean: bool) -> Tensor {
        let n = responses.len();
        let lp = prompts.size()[1];
        let lr = responses[0].size()[1];
        let pmask = tokens::mask(prompts);
        let (hidden_p, past) = self.prefill(prompts, &pmask);
        let mut past = past.repeat(n);
        let ys = Tensor::cat(responses, 0); // [nB, Lr]
        let ymask = tokens::mask(&ys);
        let count =
            pmask.to_kind(Kind::Int64).sum_dim_intlist([1i64].as_slice(), true, Kind::Int64).repeat([n as i64, 1]); // [nB, 1]
        let positions = ymask.to_kind(Kind::Int64).cumsum(1, Kind::Int64) - 1 + &count;
        let hidden_y = self.extend(&ys, &positions.clamp_min(0), &ymask, &mut past);
        // Token j of a response is predicted at the position before it: the
        // prompt's last for j = 0, the response's own j − 1 after that.
        let last_p = hidden_p.narrow(1, lp - 1, 1).repeat([n as i64, 1, 1]);
        let h = Tensor::cat(&[last_p, hidden_y.narrow(1, 0, lr - 1)], 1); // [nB, Lr, D]
        let dists = self.logits(&h).log_softmax(-1, Kind::Float);
        let lp_tok = dists.gather(2, &ys.unsqueeze(2), false).squeeze_dim(2) * ymask.to_kind(Kind::Float);
        let s = lp_tok.sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
        if mean {
            s / ymask.to_kind(Kind::Float).sum_dim_intlist([1i64].as_slice(), false, Kind::Float).clamp_min(1.0)
        } else {
            s
        }
    }

    /// Draws one token per row from `log_dist` [B, V] with uniforms from `rng`.
    fn draw(&self, log_dist: &Tensor, temperature: f64, rng: &mut Stream) -> Tensor {
        use rand::Rng;
        let probs = (log_dist / temperature).softmax(-1, Kind::Float);
        let cum = probs.cumsum(-1, Kind::Float);
        let b = log_dist.size()[0];
        let u: Vec<f32> = (0..b).map(|_| rng.gen_range(f32::MIN_POSITIVE..1.0)).collect();
        let u =
            Tensor::from_slice(&u).to_device(log_dist.device()).unsqueeze(1) * cum.narrow(1, self.spec.vocab - 1, 1);
        cum.lt_tensor(&u).sum_dim_intlist([1i64].as_slice(), false, Kind::Int64).clamp_max(self.spec.vocab - 1)
    }

    /// Samples responses [B, Lr] with the KV cache. Each row stops at EOS (the
    /// rest is PAD); a row still going at the last slot gets EOS there.
    pub fn sample(&self, prompts: &Tensor, temperature: f64, rng: &mut Stream) -> Tensor {
        self.sample_with_logprobs(prompts, temperature, rng).0
    }

    /// The same draws as [`Policy::sample`] without the KV cache: a full
    /// forward pass per token. For tests and benchmarks.
    pub fn sample_without_cache(&self, prompts: &Tensor, temperature: f64, rng: &mut Stream) -> Tensor {
        tch::no_grad(|| {
            let b = prompts.size()[0];
            let lr = self.spec.response_len;
            let device = self.device();
            let out = Tensor::full([b, lr], PAD, (Kind::Int64, device));
            let mut done = Tensor::zeros([b], (Kind::Bool, device));
            for j in 0..lr {
                let dists = self.response_log_dists(prompts, &out);
                let log_dist = dists.select(1, j);
                let mut tok = self.draw(&log_dist, temperature, rng);
                if j == lr - 1 {
                    tok = tok.fill_(self.eos);
                }
                let tok = tok.masked_fill(&done, PAD);
                done = done.logical_or(&tok.eq(self.eos));
                out.select(1, j).copy_(&tok);
            }
            out
        })
    }

    /// Exact KL(self ‖ reference) summed over each response's positions
    /// (Appendix D): the full categorical KL at every prefix. [B].
    ///
    /// The last slot is left out: there both policies are forced to EOS, so
    /// their distributions agree and its KL is 0. With that, the expectation
    /// of this estimate under [`Policy::sample`] is exactly the sequence-level
    /// KL between the two samplers (the chain rule; see tests/ml_numerics.rs).
    pub fn kl_per_sequence(&self, reference: &Policy, prompts: &Tensor, responses: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let p = self.response_log_dists(prompts, responses);
            let q = reference.response_log_dists(prompts, responses);
            let kl = (p.exp() * (&p - &q)).sum_dim_intlist([2i64].as_slice(), false, Kind::Float);
            let lr = responses.size()[1];
            let free = Tensor::ones([lr], (Kind::Float, responses.device())).index_fill_(
                0,
                &Tensor::from_slice(&[lr - 1]).to_device(responses.device()),
                0.0,
            );
            (kl * tokens::mask(responses).to_kind(Kind::Float) * free).sum_dim_intlist(
                [1i64].as_slice(),
                false,
                Kind::Float,
            )
        })
    }

    /// Sampling as [`Policy::sample`], also returning the log-prob of each
    /// drawn token as the KV-cached forward pass computed it (0 on padding).
    pub fn sample_with_logprobs(&self, prompts: &Tensor, temperature: f64, rng: &mut Stream) -> (Tensor, Tensor) {
        tch::no_grad(|| {
            let b = prompts.size()[0];
            let lr = self.spec.response_len;
            let device = self.device();
            let pmask = tokens::mask(prompts);
            let count = pmask.to_kind(Kind::Int64).sum_dim_intlist([1i64].as_slice(), true, Kind::Int64);
            let (hidden, mut past) = self.prefill(prompts, &pmask);
            let mut last = hidden.narrow(1, prompts.size()[1] - 1, 1).squeeze_dim(1);
            let (mut out, mut lps) = (vec![], vec![]);
            let mut done = Tensor::zeros([b], (Kind::Bool, device));
            for j in 0..lr {
                let log_dist = self.logits(&last).log_softmax(-1, Kind::Float);
                let mut tok = self.draw(&log_dist, temperature, rng);
                if j == lr - 1 {
                    tok = tok.fill_(self.eos);
                }
                let tok = tok.masked_fill(&done, PAD);
                let lp = log_dist.gather(1, &tok.unsqueeze(1), false).squeeze_dim(1).masked_fill(&done, 0.0);
                done = done.logical_or(&tok.eq(self.eos));
                out.push(tok.shallow_clone());
                lps.push(lp);
                if j + 1 < lr {
                    let pos = &count + j;
                    last = self.step(&tok.unsqueeze(1), &pos, &mut past).squeeze_dim(1);
                }
            }
            (Tensor::stack(&out, 1), Tensor::stack(&lps, 1))
        })
    }

    /// Copies another policy's parameters into this one.
    pub fn copy_from(&mut self, other: &Policy) {
        let from = other.vs();
        match &mut self.body {
            Body::Own { vs, .. } => vs.copy(from),
            Body::Pretrained(p) => p.vs.copy(from),
        }
        .expect("policies of the same shape");
    }
}
