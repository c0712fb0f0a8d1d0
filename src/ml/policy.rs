//! The policy: a decoder-only transformer over `[prompt | response]`.
//!
//! Its response distribution never puts mass on PAD, BOS or SEP: those
//! logits are pushed to -1e9 (not -inf, so that 0·log 0 terms of a KL stay 0
//! instead of NaN). Sampling, log-probs and KL all use that same distribution.

use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use crate::ml::rng::Stream;
use crate::ml::tokens::{self, BOS, EOS, PAD, SEP};
use crate::ml::transformer::{Arch, Trunk};

/// Shapes a policy is built for.
pub type PolicySpec = crate::ml::transformer::ModelSpec;

pub struct Policy {
    pub vs: nn::VarStore,
    pub spec: PolicySpec,
    trunk: Trunk,
    head: nn::Linear,
    /// [V] 0 for allowed tokens, -1e9 for PAD, BOS, SEP.
    forbid: Tensor,
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
        let head =
            nn::linear(&root / "head", spec.width, spec.vocab, nn::LinearConfig { bias: false, ..Default::default() });
        crate::ml::transformer::init(&vs, seed, spec.layers);
        let mut forbid = vec![0f32; spec.vocab as usize];
        for t in [PAD, BOS, SEP] {
            forbid[t as usize] = NEG as f32;
        }
        let forbid = Tensor::from_slice(&forbid).to_device(device);
        Policy { vs, spec, trunk, head, forbid }
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    fn logits(&self, hidden: &Tensor) -> Tensor {
        self.head.forward(hidden) + &self.forbid
    }

    /// Log-softmax over the vocabulary at each response position: [B, Lr, V].
    /// Position j is the distribution of response token j.
    pub fn response_log_dists(&self, prompts: &Tensor, responses: &Tensor) -> Tensor {
        let lp = prompts.size()[1];
        let lr = responses.size()[1];
        let seq = Tensor::cat(&[prompts, responses], 1);
        let hidden = self.trunk.forward(&seq, &tokens::mask(&seq));
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
        let (hidden_p, cache) = self.trunk.prefill(prompts, &pmask);
        let mut cache = cache.repeat(n);
        let ys = Tensor::cat(responses, 0); // [nB, Lr]
        let ymask = tokens::mask(&ys);
        let count =
            pmask.to_kind(Kind::Int64).sum_dim_intlist([1i64].as_slice(), true, Kind::Int64).repeat([n as i64, 1]); // [nB, 1]
        let positions = ymask.to_kind(Kind::Int64).cumsum(1, Kind::Int64) - 1 + &count;
        let hidden_y = self.trunk.extend(&ys, &positions.clamp_min(0), &ymask, &mut cache);
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
                    tok = tok.fill_(EOS);
                }
                let tok = tok.masked_fill(&done, PAD);
                done = done.logical_or(&tok.eq(EOS));
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
            let (hidden, mut cache) = self.trunk.prefill(prompts, &pmask);
            let mut last = hidden.narrow(1, prompts.size()[1] - 1, 1).squeeze_dim(1);
            let (mut out, mut lps) = (vec![], vec![]);
            let mut done = Tensor::zeros([b], (Kind::Bool, device));
            for j in 0..lr {
                let log_dist = self.logits(&last).log_softmax(-1, Kind::Float);
                let mut tok = self.draw(&log_dist, temperature, rng);
                if j == lr - 1 {
                    tok = tok.fill_(EOS);
                }
                let tok = tok.masked_fill(&done, PAD);
                let lp = log_dist.gather(1, &tok.unsqueeze(1), false).squeeze_dim(1).masked_fill(&done, 0.0);
                done = done.logical_or(&tok.eq(EOS));
                out.push(tok.shallow_clone());
                lps.push(lp);
                if j + 1 < lr {
                    let pos = &count + j;
                    last = self.trunk.step(&tok.unsqueeze(1), &pos, &mut cache).squeeze_dim(1);
                }
            }
            (Tensor::stack(&out, 1), Tensor::stack(&lps, 1))
        })
    }

    /// Copies another policy's parameters into this one.
    pub fn copy_from(&mut self, other: &Policy) {
        self.vs.copy(&other.vs).expect("policies of the same shape");
    }
}
