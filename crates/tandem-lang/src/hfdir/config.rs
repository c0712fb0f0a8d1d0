//! `config.json`: the architecture and its shapes.
//!
//! Supported: GPT-2 (`model_type: "gpt2"`) and the Llama family (`"llama"`,
//! which SmolLM uses too, and `"qwen2"`, which adds biases to the query, key
//! and value projections). Rotary positions must be the plain kind
//! (`rope_type: "default"`); a scaled rope would silently change every
//! position, so it is refused rather than ignored.

use serde_json::Value;

/// The architectures tandem reads, as named in `model_type`.
pub const SUPPORTED: &[&str] = &["gpt2", "llama", "qwen2"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Gpt2,
    Llama,
}

/// Shapes and constants of one pretrained model.
#[derive(Debug, Clone, PartialEq)]
pub struct HfConfig {
    pub family: Family,
    /// `model_type` as written (`qwen2` is the Llama family).
    pub model_type: String,
    pub vocab: i64,
    pub width: i64,
    pub layers: i64,
    pub heads: i64,
    /// Heads of keys and values (grouped-query attention); `heads` for GPT-2.
    pub kv_heads: i64,
    pub head_dim: i64,
    /// Inner width of the MLP.
    pub inner: i64,
    /// Longest sequence the position table (GPT-2) or the config allows.
    pub context: i64,
    /// LayerNorm (GPT-2) or RMSNorm (Llama) epsilon.
    pub norm_eps: f64,
    pub rope_theta: f64,
    /// Biases on the query, key and value projections (Qwen2).
    pub qkv_bias: bool,
    /// The output head shares the token embedding.
    pub tied: bool,
    pub eos: Option<i64>,
    /// `pad_token_id`: a reward model scores the last token that is not it.
    pub pad: Option<i64>,
    /// A reward model (`*ForSequenceClassification` with one label): a
    /// `score` head [1, width] on the last token instead of a language-model head.
    pub score_head: bool,
}

fn int(v: &Value, names: &[&str]) -> Result<Option<i64>, String> {
    for n in names {
        match v.get(*n) {
            None | Some(Value::Null) => continue,
            Some(x) => {
                return x
                    .as_i64()
                    .filter(|i| *i > 0)
                    .map(Some)
                    .ok_or_else(|| format!("`{n}` must be a positive integer"))
            }
        }
    }
    Ok(None)
}

fn need(v: &Value, names: &[&str]) -> Result<i64, String> {
    int(v, names)?.ok_or_else(|| format!("`{}` is missing", names[0]))
}

fn float(v: &Value, name: &str, default: f64) -> Result<f64, String> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => x
            .as_f64()
            .filter(|f| f.is_finite() && *f > 0.0)
            .ok_or_else(|| format!("`{name}` must be a positive number")),
    }
}

/// Whether `architectures` names a sequence classifier, and then that it
/// has one label (a scalar score, as reward models have): transformers
/// gives it `id2label`, or `num_labels`, and two labels when neither is set.
fn reward_model(v: &Value) -> Result<bool, String> {
    let arch = v.get("architectures").and_then(Value::as_array);
    let Some(name) =
        arch.into_iter().flatten().filter_map(Value::as_str).find(|a| a.ends_with("ForSequenceClassification"))
    else {
        return Ok(false);
    };
    let labels = match (v.get("id2label").and_then(Value::as_object), v.get("num_labels").and_then(Value::as_i64)) {
        (Some(m), _) => m.len() as i64,
        (None, Some(n)) => n,
        (None, None) => 2,
    };
    if labels != 1 {
        return Err(format!(
            "`{name}` with {labels} labels is a classifier, not a reward model: tandem reads one label (a scalar score)"
        ));
    }
    Ok(true)
}

/// What every family's config says the same way: read once, before the
/// family's own fields.
struct Shared {
    model_type: String,
    eos: Option<i64>,
    pad: Option<i64>,
    score_head: bool,
}

impl HfConfig {
    /// Reads a parsed `config.json`. The error says what is wrong in words.
    pub fn from_json(v: &Value) -> Result<HfConfig, String> {
        let model_type = v.get("model_type").and_then(Value::as_str).ok_or("`model_type` is missing")?.to_string();
        let family = match model_type.as_str() {
            "gpt2" => Family::Gpt2,
            "llama" | "qwen2" => Family::Llama,
            other => {
                return Err(format!("the architecture `{other}` is not supported; supported: {}", SUPPORTED.join(", ")))
            }
        };
        let score_head = reward_model(v)?;
        let pad = v.get("pad_token_id").and_then(Value::as_i64);
        let eos = match v.get("eos_token_id") {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::Array(a)) => a.first().and_then(Value::as_i64),
            _ => None,
        };
        let c = match family {
            Family::Gpt2 => Self::gpt2(v, Shared { model_type, eos, pad, score_head })?,
            Family::Llama => Self::llama(v, Shared { model_type, eos, pad, score_head })?,
        };
        c.check_sizes()?;
        Ok(c)
    }

    /// A GPT-2 `config.json`'s fields, refusing the variants tandem does not compute.
    fn gpt2(v: &Value, shared: Shared) -> Result<HfConfig, String> {
        let Shared { model_type, eos, pad, score_head } = shared;
        let width = need(v, &["n_embd"])?;
        let heads = need(v, &["n_head"])?;
        if let Some(f) = v.get("activation_function").and_then(Value::as_str) {
            if f != "gelu_new" && f != "gelu_pytorch_tanh" {
                return Err(format!("GPT-2 with `activation_function: {f}` is not supported (gelu_new is)"));
            }
        }
        for (flag, bad) in [("scale_attn_by_inverse_layer_idx", true), ("scale_attn_weights", false)] {
            if v.get(flag).and_then(Value::as_bool) == Some(bad) {
                return Err(format!("GPT-2 with `{flag}: {bad}` is not supported"));
            }
        }
        Ok(HfConfig {
            family: Family::Gpt2,
            model_type,
            vocab: need(v, &["vocab_size"])?,
            width,
            layers: need(v, &["n_layer"])?,
            heads,
            kv_heads: heads,
            head_dim: width / heads,
            inner: int(v, &["n_inner"])?.unwrap_or(4 * width),
            context: need(v, &["n_positions"])?,
            norm_eps: float(v, "layer_norm_epsilon", 1e-5)?,
            rope_theta: 0.0,
            qkv_bias: true,
            tied: true,
            eos,
            pad,
            score_head,
        })
    }

    /// A Llama-family (Llama, Qwen2) `config.json`'s fields, refusing the
    /// variants tandem does not compute.
    fn llama(v: &Value, shared: Shared) -> Result<HfConfig, String> {
        let Shared { model_type, eos, pad, score_head } = shared;
        let width = need(v, &["hidden_size"])?;
        let heads = need(v, &["num_attention_heads"])?;
        let kv_heads = int(v, &["num_key_value_heads"])?.unwrap_or(heads);
        if heads % kv_heads != 0 {
            return Err(format!("{heads} attention heads cannot share {kv_heads} key/value heads evenly"));
        }
        if v.get("mlp_bias").and_then(Value::as_bool) == Some(true) {
            return Err("`mlp_bias: true` is not supported".into());
        }
        if let Some(f) = v.get("hidden_act").and_then(Value::as_str) {
            if f != "silu" {
                return Err(format!("`hidden_act: {f}` is not supported (silu is)"));
            }
        }
        // Older configs carry `rope_theta` and `rope_scaling`; newer
        // ones put both in `rope_parameters`.
        let params = v.get("rope_parameters").filter(|p| p.is_object());
        let scaling = v.get("rope_scaling").filter(|s| !s.is_null()).or(params);
        if let Some(kind) = scaling.and_then(|s| s.get("rope_type").or_else(|| s.get("type"))).and_then(Value::as_str) {
            if kind != "default" {
                return Err(format!("rotary scaling `{kind}` is not supported (only plain rotary positions are)"));
            }
        }
        let rope_theta = match params.and_then(|p| p.get("rope_theta")) {
            Some(t) => t.as_f64().filter(|f| *f > 0.0).ok_or("`rope_theta` must be a positive number")?,
            None => float(v, "rope_theta", 10_000.0)?,
        };
        if v.get("sliding_window").is_some_and(|s| !s.is_null())
            && v.get("use_sliding_window").and_then(Value::as_bool).unwrap_or(model_type != "qwen2")
        {
            return Err("sliding-window attention is not supported".into());
        }
        Ok(HfConfig {
            family: Family::Llama,
            vocab: need(v, &["vocab_size"])?,
            width,
            layers: need(v, &["num_hidden_layers"])?,
            heads,
            kv_heads,
            head_dim: int(v, &["head_dim"])?.unwrap_or(width / heads),
            inner: need(v, &["intermediate_size"])?,
            context: int(v, &["max_position_embeddings"])?.unwrap_or(2048),
            norm_eps: float(v, "rms_norm_eps", 1e-6)?,
            rope_theta,
            qkv_bias: model_type == "qwen2" || v.get("attention_bias").and_then(Value::as_bool).unwrap_or(false),
            tied: v.get("tie_word_embeddings").and_then(Value::as_bool).unwrap_or(false),
            eos,
            pad,
            score_head,
            model_type,
        })
    }

    /// Sizes a model read here could have, and shapes its layers need.
    fn check_sizes(&self) -> Result<(), String> {
        let c = self;
        // Sizes a model read here could have; beyond them a number is a
        // mistake (or an attack), and allocating for it would exhaust memory.
        let bounds: [(&str, i64, i64); 8] = [
            ("vocab_size", c.vocab, 1 << 22),
            ("width (n_embd, hidden_size)", c.width, 1 << 16),
            ("layers (n_layer, num_hidden_layers)", c.layers, 1 << 10),
            ("attention heads", c.heads, 1 << 10),
            ("key/value heads", c.kv_heads, 1 << 10),
            ("head_dim", c.head_dim, 1 << 12),
            ("inner size (n_inner, intermediate_size)", c.inner, 1 << 20),
            ("context (n_positions, max_position_embeddings)", c.context, 1 << 22),
        ];
        for (name, value, max) in bounds {
            if !(1..=max).contains(&value) {
                return Err(format!("`{name}` is {value}, outside 1..={max}, what tandem reads"));
            }
        }
        if c.width % c.heads != 0 && c.family == Family::Gpt2 {
            return Err(format!("a width of {} does not split into {} heads", c.width, c.heads));
        }
        if c.family == Family::Llama && c.head_dim % 2 != 0 {
            return Err(format!("rotary positions need an even head dimension, not {}", c.head_dim));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_family_and_refuses_the_rest_by_name() {
        let g = HfConfig::from_json(&serde_json::json!({"model_type": "gpt2", "vocab_size": 300, "n_embd": 32,
            "n_layer": 2, "n_head": 4, "n_positions": 64}))
        .unwrap();
        assert_eq!((g.family, g.head_dim, g.inner, g.kv_heads, g.tied), (Family::Gpt2, 8, 128, 4, true));
        let q = HfConfig::from_json(&serde_json::json!({"model_type": "qwen2", "vocab_size": 300, "hidden_size": 32,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 64,
            "rope_theta": 500000.0, "tie_word_embeddings": true}))
        .unwrap();
        assert_eq!((q.family, q.kv_heads, q.qkv_bias, q.rope_theta, q.tied), (Family::Llama, 2, true, 500000.0, true));
        let e = HfConfig::from_json(&serde_json::json!({"model_type": "bert"})).unwrap_err();
        assert!(e.contains("`bert` is not supported") && e.contains("gpt2, llama, qwen2"), "{e}");
        let e = HfConfig::from_json(&serde_json::json!({"model_type": "llama", "vocab_size": 300, "hidden_size": 32,
            "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
            "rope_scaling": {"rope_type": "yarn", "factor": 4.0}}))
        .unwrap_err();
        assert!(e.contains("yarn"), "{e}");
        let e = HfConfig::from_json(&serde_json::json!({"model_type": "llama", "hidden_size": 32})).unwrap_err();
        assert!(e.contains("num_attention_heads` is missing"), "{e}");
    }

    #[test]
    fn a_one_label_sequence_classifier_is_a_reward_model() {
        let base = serde_json::json!({"model_type": "gpt2", "vocab_size": 300, "n_embd": 32, "n_layer": 2,
            "n_head": 4, "n_positions": 64, "pad_token_id": 5});
        let with = |extra: serde_json::Value| {
            let mut v = base.clone();
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            HfConfig::from_json(&v)
        };
        let lm = with(serde_json::json!({"architectures": ["GPT2LMHeadModel"]})).unwrap();
        assert!(!lm.score_head);
        assert_eq!(lm.pad, Some(5));
        let rm =
            with(serde_json::json!({"architectures": ["GPT2ForSequenceClassification"], "id2label": {"0": "LABEL_0"}}));
        assert!(rm.unwrap().score_head);
        assert!(
            with(serde_json::json!({"architectures": ["GPT2ForSequenceClassification"], "num_labels": 1}))
                .unwrap()
                .score_head
        );
        // transformers' default is two labels: a classifier, refused by name.
        let e = with(serde_json::json!({"architectures": ["GPT2ForSequenceClassification"]})).unwrap_err();
        assert!(e.contains("2 labels") && e.contains("GPT2ForSequenceClassification"), "{e}");
    }
}
