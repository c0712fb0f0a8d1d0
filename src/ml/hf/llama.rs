//! The Llama family (Llama, SmolLM, Qwen2): RMSNorm, rotary positions on
//! queries and keys, grouped-query attention, a SwiGLU MLP, and an output
//! head that is its own matrix unless `tie_word_embeddings` says otherwise.

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use crate::hfdir::HfConfig;
use crate::ml::hf::attention::{allowed, attend, remember, Cache};

/// x / sqrt(mean(x²) + ε) · w, computed in float32 as the reference does.
struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn new(p: nn::Path, d: i64, eps: f64) -> RmsNorm {
        RmsNorm { weight: p.var("weight", &[d], nn::Init::Const(1.0)), eps }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let x32 = x.to_kind(Kind::Float);
        let var = x32.pow_tensor_scalar(2).mean_dim(-1, true, Kind::Float);
        (x32 * (var + self.eps).rsqrt()).to_kind(x.kind()) * &self.weight
    }
}

struct Layer {
    input_layernorm: RmsNorm,
    q_proj: nn::Linear,
    k_proj: nn::Linear,
    v_proj: nn::Linear,
    o_proj: nn::Linear,
    post_attention_layernorm: RmsNorm,
    gate_proj: nn::Linear,
    up_proj: nn::Linear,
    down_proj: nn::Linear,
}

pub struct Llama {
    cfg: HfConfig,
    embed_tokens: Tensor,
    layers: Vec<Layer>,
    norm: RmsNorm,
    /// [head_dim / 2] inverse frequencies of the rotary positions.
    inv_freq: Tensor,
}

impl Llama {
    /// Builds the trunk under `p` (`model` in a LlamaForCausalLM checkpoint).
    pub fn new(p: &nn::Path, cfg: &HfConfig) -> Llama {
        let (d, dh) = (cfg.width, cfg.head_dim);
        let lin = |path: nn::Path, i: i64, o: i64, bias: bool| {
            nn::linear(path, i, o, nn::LinearConfig { bias, ..Default::default() })
        };
        let layers = (0..cfg.layers)
            .map(|i| {
                let l = p / "layers" / i;
                let a = &l / "self_attn";
                let m = &l / "mlp";
                Layer {
                    input_layernorm: RmsNorm::new(&l / "input_layernorm", d, cfg.norm_eps),
                    q_proj: lin(&a / "q_proj", d, cfg.heads * dh, cfg.qkv_bias),
                    k_proj: lin(&a / "k_proj", d, cfg.kv_heads * dh, cfg.qkv_bias),
                    v_proj: lin(&a / "v_proj", d, cfg.kv_heads * dh, cfg.qkv_bias),
                    o_proj: lin(&a / "o_proj", cfg.heads * dh, d, false),
                    post_attention_layernorm: RmsNorm::new(&l / "post_attention_layernorm", d, cfg.norm_eps),
                    gate_proj: lin(&m / "gate_proj", d, cfg.inner, false),
                    up_proj: lin(&m / "up_proj", d, cfg.inner, false),
                    down_proj: lin(&m / "down_proj", cfg.inner, d, false),
                }
            })
            .collect();
        // inv_freq[i] = θ^(−2i/dh), in float64 then rounded, as the reference
        // computes it in float32 from an int64 range.
        let exps = Tensor::arange_start_step(0, dh, 2, (Kind::Int64, p.device())).to_kind(Kind::Float) / dh as f64;
        let inv_freq = Tensor::from(cfg.rope_theta as f32).to_device(p.device()).pow(&exps).reciprocal();
        Llama {
            cfg: cfg.clone(),
            embed_tokens: (p / "embed_tokens").var("weight", &[cfg.vocab, d], nn::Init::Const(0.0)),
            layers,
            norm: RmsNorm::new(p / "norm", d, cfg.norm_eps),
            inv_freq,
        }
    }

    /// cos and sin of every position's angles, [B, 1, T, head_dim], the
    /// halves repeated (Hugging Face's layout: rotate the two halves).
    fn rotary(&self, positions: &Tensor) -> (Tensor, Tensor) {
        let angles = positions.to_kind(Kind::Float).unsqueeze(-1) * self.inv_freq.view([1, 1, -1]);
        let emb = Tensor::cat(&[&angles, &angles], -1).unsqueeze(1);
        (emb.cos(), emb.sin())
    }

    /// Hidden states after the final norm, [B, T, width]; arguments as
    /// `Gpt2::forward`.
    pub fn forward(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        key_mask: &Tensor,
        mut cache: Option<&mut Cache>,
    ) -> Tensor {
        let (b, t) = ids.size2().expect("ids are [B, T]");
        let (h, hkv, dh) = (self.cfg.heads, self.cfg.kv_heads, self.cfg.head_dim);
        let mut x = self.embed_tokens.index_select(0, &ids.flatten(0, 1)).view([b, t, -1]);
        let mask = allowed(key_mask, t);
        let (cos, sin) = self.rotary(positions);
        let rotate = |x: Tensor| {
            let half = dh / 2;
            let turned = Tensor::cat(&[-x.narrow(-1, half, half), x.narrow(-1, 0, half)], -1);
            &x * &cos + turned * &sin
        };
        for (i, l) in self.layers.iter().enumerate() {
            let a = l.input_layernorm.forward(&x);
            let q = rotate(l.q_proj.forward(&a).view([b, t, h, dh]).transpose(1, 2));
            let k = rotate(l.k_proj.forward(&a).view([b, t, hkv, dh]).transpose(1, 2));
            let v = l.v_proj.forward(&a).view([b, t, hkv, dh]).transpose(1, 2);
            let (k, v) = remember(cache.as_deref_mut(), i, k, v);
            x = &x + l.o_proj.forward(&attend(&q, &k, &v, &mask));
            let m = l.post_attention_layernorm.forward(&x);
            x = &x + l.down_proj.forward(&(l.gate_proj.forward(&m).silu() * l.up_proj.forward(&m)));
        }
        self.norm.forward(&x)
    }

    pub fn embedding(&self) -> &Tensor {
        &self.embed_tokens
    }
}
