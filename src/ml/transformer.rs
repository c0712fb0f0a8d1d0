//! A small decoder-only transformer (pre-LayerNorm, GPT-2 style), built from
//! constructor functions under an `nn::Path`, with an optional KV cache.
//!
//! Padding is handled with a key mask: a query never attends to a PAD key,
//! and every position may attend to itself so that a row is never empty
//! (left-padding positions then compute harmless, finite values). Positions
//! are counted over real tokens, so left-padded prompts line up.

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use crate::ml::matmul::{attention, linear_layer, Linear};

/// What a model is built for: its vocabulary, its size, and the widths of
/// the prompts and responses it reads (the same for policies and PMs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSpec {
    pub vocab: i64,
    pub layers: i64,
    pub width: i64,
    pub heads: i64,
    pub prompt_len: i64,
    pub response_len: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arch {
    pub vocab: i64,
    pub layers: i64,
    pub width: i64,
    pub heads: i64,
    /// Longest sequence (positions) the model sees.
    pub context: i64,
    /// Segment embeddings (0 = none): segment k is what follows the k-th SEP.
    /// Preference models read `[x SEP y]` or `[x SEP y1 SEP y2]`; knowing
    /// which part a token is in lets one attention layer ask "does this
    /// response token occur in the prompt?" (copying), which the oracles
    /// reward and penalise.
    pub segments: i64,
}

#[derive(Debug)]
struct Block {
    ln1: nn::LayerNorm,
    qkv: Linear,
    proj: Linear,
    ln2: nn::LayerNorm,
    fc: Linear,
    out: Linear,
}

#[derive(Debug)]
pub struct Trunk {
    pub arch: Arch,
    tok: nn::Embedding,
    pos: nn::Embedding,
    seg: Option<nn::Embedding>,
    blocks: Vec<Block>,
    ln_f: nn::LayerNorm,
}

/// How a continuation through [`Trunk::extend_with`] joins its prefix.
#[derive(Default)]
pub struct Continuation<'a> {
    /// The segment the continuation starts in: SEPs already in the prefix.
    pub segment: i64,
    /// Added to the continuation's input embeddings: [B, T, D].
    pub extra: Option<&'a Tensor>,
}

/// Keys and values of every layer for the tokens seen so far.
pub struct KvCache {
    k: Vec<Tensor>,
    v: Vec<Tensor>,
    /// [B, T] true for real (non-PAD) keys.
    key_mask: Tensor,
}

impl KvCache {
    /// The cache as named tensors (`k0`, `v0`, ..., `key_mask`), to be kept.
    pub fn to_named(&self, prefix: &str) -> Vec<(String, Tensor)> {
        // Contiguous: a head split leaves keys and values as strided views,
        // which safetensors cannot write.
        let mut out = vec![(format!("{prefix}key_mask"), self.key_mask.contiguous())];
        for (i, (k, v)) in self.k.iter().zip(&self.v).enumerate() {
            out.push((format!("{prefix}k{i}"), k.contiguous()));
            out.push((format!("{prefix}v{i}"), v.contiguous()));
        }
        out
    }

    /// A cache of `layers` layers from [`KvCache::to_named`]'s tensors, or
    /// None if one is missing.
    pub fn from_named(get: impl Fn(&str) -> Option<Tensor>, prefix: &str, layers: i64) -> Option<KvCache> {
        let mut cache = KvCache { k: vec![], v: vec![], key_mask: get(&format!("{prefix}key_mask"))? };
        for i in 0..layers {
            cache.k.push(get(&format!("{prefix}k{i}"))?);
            cache.v.push(get(&format!("{prefix}v{i}"))?);
        }
        Some(cache)
    }

    /// The cache for `n` copies of the batch, stacked along it (copy j of
    /// row i is row j·B + i): one prompt prefix shared by several responses.
    pub fn repeat(&self, n: usize) -> KvCache {
        let rep = |t: &Tensor| {
            let mut times = vec![1i64; t.dim()];
            times[0] = n as i64;
            t.repeat(times.as_slice())
        };
        KvCache {
            k: self.k.iter().map(rep).collect(),
            v: self.v.iter().map(rep).collect(),
            key_mask: rep(&self.key_mask),
        }
    }
}

fn block(p: nn::Path, d: i64) -> Block {
    Block {
        ln1: nn::layer_norm(&p / "ln1", vec![d], Default::default()),
        qkv: linear_layer(&p / "qkv", d, 3 * d, Default::default()),
        proj: linear_layer(&p / "proj", d, d, Default::default()),
        ln2: nn::layer_norm(&p / "ln2", vec![d], Default::default()),
        fc: linear_layer(&p / "fc", d, 4 * d, Default::default()),
        out: linear_layer(&p / "out", 4 * d, d, Default::default()),
    }
}

impl Trunk {
    pub fn new(p: &nn::Path, arch: Arch) -> Trunk {
        let d = arch.width;
        Trunk {
            arch,
            tok: nn::embedding(p / "tok", arch.vocab, d, Default::default()),
            pos: nn::embedding(p / "pos", arch.context, d, Default::default()),
            seg: (arch.segments > 0).then(|| nn::embedding(p / "seg", arch.segments, d, Default::default())),
            blocks: (0..arch.layers).map(|i| block(p / format!("block{i}"), d)).collect(),
            ln_f: nn::layer_norm(p / "ln_f", vec![d], Default::default()),
        }
    }

    fn split_heads(&self, x: &Tensor) -> Tensor {
        let (b, t, _) = x.size3().expect("[B, T, D]");
        let h = self.arch.heads;
        x.view([b, t, h, self.arch.width / h]).transpose(1, 2)
    }

    fn attend(&self, blk: &Block, x: &Tensor, mask: &Tensor, cache: Option<(&mut Tensor, &mut Tensor)>) -> Tensor {
        let (b, t, d) = x.size3().expect("[B, T, D]");
        let qkv = blk.qkv.forward(&blk.ln1.forward(x));
        let parts = qkv.split(d, 2);
        let (q, mut k, mut v) = (self.split_heads(&parts[0]), self.split_heads(&parts[1]), self.split_heads(&parts[2]));
        if let Some((ck, cv)) = cache {
            if ck.numel() > 0 {
                k = Tensor::cat(&[&*ck, &k], 2);
                v = Tensor::cat(&[&*cv, &v], 2);
            }
            *ck = k.shallow_clone();
            *cv = v.shallow_clone();
        }
        let y = attention(&q, &k, &v, mask);
        let y = y.transpose(1, 2).contiguous().view([b, t, d]);
        x + blk.proj.forward(&y)
    }

    /// GELU with the tanh approximation, as GPT-2: ATen computes it with its
    /// own kernels, which the `portable` profile pins. The exact (erf) GELU
    /// runs on oneDNN, whose kernels follow the host's instruction set: on an
    /// AVX-512 host it gave other bytes than on an AVX2 one.
    fn mlp(blk: &Block, x: &Tensor) -> Tensor {
        x + blk.out.forward(&blk.fc.forward(&blk.ln2.forward(x)).gelu("tanh"))
    }

    /// Causal attention over the sequence, PAD keys masked, self always allowed.
    fn full_mask(key_mask: &Tensor) -> Tensor {
        let t = key_mask.size()[1];
        let device = key_mask.device();
        let causal = Tensor::ones([t, t], (Kind::Bool, device)).tril(0);
        let eye = Tensor::eye(t, (Kind::Bool, device));
        let keys = key_mask.unsqueeze(1).unsqueeze(1); // [B,1,1,T]
        causal.unsqueeze(0).unsqueeze(0).logical_and(&keys).logical_or(&eye.unsqueeze(0).unsqueeze(0))
    }

    /// Token, position and (if the trunk has them) segment embeddings.
    fn embed(&self, tokens: &Tensor, key_mask: &Tensor) -> Tensor {
        let pos = crate::ml::tokens::positions(key_mask);
        let x = self.tok.forward(tokens) + self.pos.forward(&pos);
        match &self.seg {
            None => x,
            Some(seg) => {
                let ids = tokens
                    .eq(crate::ml::tokens::SEP)
                    .to_kind(Kind::Int64)
                    .cumsum(1, Kind::Int64)
                    .clamp_max(self.arch.segments - 1);
                x + seg.forward(&ids)
            }
        }
    }

    /// Hidden states [B, T, D] of a whole sequence.
    pub fn forward(&self, tokens: &Tensor, key_mask: &Tensor) -> Tensor {
        self.forward_embedded(self.embed(tokens, key_mask), key_mask)
    }

    /// Like `forward`, with `extra` [B, T, D] added to the input embeddings.
    pub fn forward_with(&self, tokens: &Tensor, key_mask: &Tensor, extra: &Tensor) -> Tensor {
        self.forward_embedded(self.embed(tokens, key_mask) + extra, key_mask)
    }

    fn forward_embedded(&self, mut x: Tensor, key_mask: &Tensor) -> Tensor {
        let mask = Self::full_mask(key_mask);
        for blk in &self.blocks {
            x = self.attend(blk, &x, &mask, None);
            x = Self::mlp(blk, &x);
        }
        self.ln_f.forward(&x)
    }

    /// Like `forward`, and keeps every layer's keys and values for `step`.
    pub fn prefill(&self, tokens: &Tensor, key_mask: &Tensor) -> (Tensor, KvCache) {
        let mut x = self.embed(tokens, key_mask);
        let mask = Self::full_mask(key_mask);
        let mut cache = KvCache { k: vec![], v: vec![], key_mask: key_mask.shallow_clone() };
        for blk in &self.blocks {
            let (mut k, mut v) = (Tensor::new(), Tensor::new());
            x = self.attend(blk, &x, &mask, Some((&mut k, &mut v)));
            x = Self::mlp(blk, &x);
            cache.k.push(k);
            cache.v.push(v);
        }
        (self.ln_f.forward(&x), cache)
    }

    /// `tokens` [B, T] (PAD allowed, `key_mask` says which are real)
    /// continuing the sequences in `cache`, at `positions` [B, T]: each new
    /// token sees every real cached key and the new tokens up to itself.
    /// Hidden [B, T, D]. The same numbers as a forward over the whole
    /// sequence, up to float rounding; the cached prefix is not recomputed.
    pub fn extend(&self, tokens: &Tensor, positions: &Tensor, key_mask: &Tensor, cache: &mut KvCache) -> Tensor {
        self.extend_with(tokens, positions, key_mask, Continuation::default(), cache)
    }

    /// [`Trunk::extend`] for a trunk with segments or extra embeddings: the
    /// continuation starts in segment `how.segment` (the number of SEPs
    /// already in the cache) and `how.extra` [B, T, D], if given, is added
    /// to its input embeddings, as [`Trunk::forward_with`] adds it.
    pub fn extend_with(
        &self,
        tokens: &Tensor,
        positions: &Tensor,
        key_mask: &Tensor,
        how: Continuation,
        cache: &mut KvCache,
    ) -> Tensor {
        let (b, t) = tokens.size2().expect("[B, T]");
        let device = tokens.device();
        let past = cache.key_mask.size()[1];
        let causal = Tensor::ones([t, t], (Kind::Bool, device)).tril(0);
        let eye = Tensor::eye(t, (Kind::Bool, device));
        let new_keys = causal
            .unsqueeze(0)
            .unsqueeze(0)
            .logical_and(&key_mask.unsqueeze(1).unsqueeze(1))
            .logical_or(&eye.unsqueeze(0).unsqueeze(0)); // [B,1,T,T]
        let past_keys = cache.key_mask.unsqueeze(1).unsqueeze(1).expand([b, 1, t, past], false);
        let mask = Tensor::cat(&[past_keys, new_keys], 3);
        cache.key_mask = Tensor::cat(&[&cache.key_mask, key_mask], 1);
        // The same sums in the same order as `embed` (+ `extra`) over the
        // whole sequence.
        let mut x = self.tok.forward(tokens) + self.pos.forward(positions);
        if let Some(seg) = &self.seg {
            let ids = (tokens.eq(crate::ml::tokens::SEP).to_kind(Kind::Int64).cumsum(1, Kind::Int64) + how.segment)
                .clamp_max(self.arch.segments - 1);
            x = &x + seg.forward(&ids);
        }
        if let Some(extra) = how.extra {
            x = &x + extra;
        }
        for (i, blk) in self.blocks.iter().enumerate() {
            let (k, v) = (&mut cache.k[i], &mut cache.v[i]);
            x = self.attend(blk, &x, &mask, Some((k, v)));
            x = Self::mlp(blk, &x);
        }
        self.ln_f.forward(&x)
    }

    /// One new token per row at the given positions: [B, 1] → hidden [B, 1, D].
    pub fn step(&self, token: &Tensor, position: &Tensor, cache: &mut KvCache) -> Tensor {
        let b = token.size()[0];
        let real = Tensor::ones([b, 1], (Kind::Bool, token.device()));
        cache.key_mask = Tensor::cat(&[&cache.key_mask, &real], 1);
        let mask = cache.key_mask.unsqueeze(1).unsqueeze(1); // [B,1,1,T]
        let mut x = self.tok.forward(token) + self.pos.forward(position);
        for (i, blk) in self.blocks.iter().enumerate() {
            let (k, v) = (&mut cache.k[i], &mut cache.v[i]);
            x = self.attend(blk, &x, &mask, Some((k, v)));
            x = Self::mlp(blk, &x);
        }
        self.ln_f.forward(&x)
    }
}

/// Deterministic initialisation, independent of libtorch's global generator:
/// weights ~ N(0, 0.02²) from a stream per variable name, biases 0,
/// LayerNorm gains 1. Output projections are scaled by 1/√(2·layers).
pub fn init(vs: &nn::VarStore, seed: u64, layers: i64) {
    init_where(vs, seed, layers, |_| true)
}

/// [`init`] of the variables whose names `which` accepts (a new head on a
/// pretrained trunk), the others untouched.
pub fn init_where(vs: &nn::VarStore, seed: u64, layers: i64, which: impl Fn(&str) -> bool) {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(n, _)| which(n)).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| {
        for (name, mut t) in vars {
            let n = t.numel();
            let values: Vec<f32> = if name.contains("ln") && name.ends_with("weight") {
                vec![1.0; n]
            } else if name.ends_with("bias") {
                vec![0.0; n]
            } else {
                let scale = if name.ends_with("proj.weight") || name.ends_with("out.weight") {
                    0.02 / (2.0 * layers as f64).sqrt()
                } else {
                    0.02
                };
                let mut rng = crate::ml::rng::stream(seed, &format!("init/{name}"), 0);
                (0..n).map(|_| (crate::ml::rng::normal(&mut rng) * scale) as f32).collect()
            };
            let src = Tensor::from_slice(&values).view(t.size().as_slice()).to_device(t.device());
            t.copy_(&src);
        }
    });
}
