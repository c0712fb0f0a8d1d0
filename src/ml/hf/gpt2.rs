//! GPT-2: learned positions, pre-LayerNorm blocks, fused query/key/value
//! projection, tanh-approximated GELU, output head tied to the token
//! embedding. Its projections are stored as Conv1D weights, [in, out], so
//! they are multiplied from the right.

use tch::nn::{self, Module};
use tch::Tensor;

use crate::hfdir::HfConfig;
use crate::ml::hf::attention::{allowed, attend, remember, Cache};

/// A projection stored as Hugging Face's Conv1D: y = x·W + b, W [in, out].
struct Conv1d {
    weight: Tensor,
    bias: Tensor,
}

impl Conv1d {
    fn new(p: nn::Path, inp: i64, out: i64) -> Conv1d {
        Conv1d {
            weight: p.var("weight", &[inp, out], nn::Init::Const(0.0)),
            bias: p.var("bias", &[out], nn::Init::Const(0.0)),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.matmul(&self.weight) + &self.bias
    }
}

struct Block {
    ln_1: nn::LayerNorm,
    c_attn: Conv1d,
    c_proj: Conv1d,
    ln_2: nn::LayerNorm,
    c_fc: Conv1d,
    mlp_proj: Conv1d,
}

pub struct Gpt2 {
    cfg: HfConfig,
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: nn::LayerNorm,
}

impl Gpt2 {
    /// Builds the trunk under `p` (`transformer` in a GPT2LMHeadModel
    /// checkpoint), with Hugging Face's parameter names.
    pub fn new(p: &nn::Path, cfg: &HfConfig) -> Gpt2 {
        let d = cfg.width;
        let ln = nn::LayerNormConfig { eps: cfg.norm_eps, ..Default::default() };
        let blocks = (0..cfg.layers)
            .map(|i| {
                let b = p / "h" / i;
                Block {
                    ln_1: nn::layer_norm(&b / "ln_1", vec![d], ln),
                    c_attn: Conv1d::new(&b / "attn" / "c_attn", d, 3 * d),
                    c_proj: Conv1d::new(&b / "attn" / "c_proj", d, d),
                    ln_2: nn::layer_norm(&b / "ln_2", vec![d], ln),
                    c_fc: Conv1d::new(&b / "mlp" / "c_fc", d, cfg.inner),
                    mlp_proj: Conv1d::new(&b / "mlp" / "c_proj", cfg.inner, d),
                }
            })
            .collect();
        Gpt2 {
            cfg: cfg.clone(),
            wte: (p / "wte").var("weight", &[cfg.vocab, d], nn::Init::Const(0.0)),
            wpe: (p / "wpe").var("weight", &[cfg.context, d], nn::Init::Const(0.0)),
            blocks,
            ln_f: nn::layer_norm(p / "ln_f", vec![d], ln),
        }
    }

    /// Hidden states after the final LayerNorm, [B, T, width], for `ids`
    /// [B, T] at `positions` [B, T]; `key_mask` [B, past + T] marks real
    /// tokens among everything the cache holds and these.
    pub fn forward(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        key_mask: &Tensor,
        mut cache: Option<&mut Cache>,
    ) -> Tensor {
        let (b, t) = ids.size2().expect("ids are [B, T]");
        let (h, dh) = (self.cfg.heads, self.cfg.head_dim);
        let mut x = self.wte.index_select(0, &ids.flatten(0, 1)).view([b, t, -1])
            + self.wpe.index_select(0, &positions.flatten(0, 1)).view([b, t, -1]);
        let mask = allowed(key_mask, t);
        for (i, blk) in self.blocks.iter().enumerate() {
            let qkv = blk.c_attn.forward(&blk.ln_1.forward(&x));
            let heads = |part: i64| qkv.narrow(2, part * h * dh, h * dh).view([b, t, h, dh]).transpose(1, 2);
            let (k, v) = remember(cache.as_deref_mut(), i, heads(1), heads(2));
            x = &x + blk.c_proj.forward(&attend(&heads(0), &k, &v, &mask));
            let m = blk.c_fc.forward(&blk.ln_2.forward(&x)).gelu("tanh");
            x = &x + blk.mlp_proj.forward(&m);
        }
        self.ln_f.forward(&x)
    }

    /// The output head: the token embedding, transposed.
    pub fn embedding(&self) -> &Tensor {
        &self.wte
    }
}
