//! A pretrained causal language model: trunk, head and tokenizer, loaded
//! from a Hugging Face directory with every failure said in words.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tch::{nn, Device, Kind, Tensor};

use crate::hfdir::files::read_config_and_tokenizer;
use crate::hfdir::{model_files, Family, HfConfig, HfError, HfTokenizer};
use crate::ml::hf::attention::Cache;
use crate::ml::hf::gpt2::Gpt2;
use crate::ml::hf::llama::Llama;
use crate::ml::rng::Stream;

enum Trunk {
    Gpt2(Gpt2),
    Llama(Llama),
}

pub struct Pretrained {
    pub config: HfConfig,
    /// config.json as read: `save` writes it back.
    config_json: serde_json::Value,
    pub vs: nn::VarStore,
    pub tokenizer: HfTokenizer,
    trunk: Trunk,
    /// The output head [vocab, width] (the embedding itself when tied).
    head: Tensor,
    /// A reward model's score head [1, width] (`score.weight`), loaded
    /// with the trunk; None for a language model.
    pub score: Option<Tensor>,
    /// Whether `head` is a language-model head at all: a reward model with
    /// an untied embedding has none (it cannot be a policy).
    pub lm_head: bool,
}

/// The prefix under which the checkpoint keeps the trunk: `transformer`
/// (GPT-2) or `model` (Llama) when saved with its language-model head, none
/// when saved as a bare trunk.
fn prefix(family: Family, names: &HashMap<String, Tensor>) -> &'static str {
    let (with, bare) = match family {
        Family::Gpt2 => ("transformer.wte.weight", "wte.weight"),
        Family::Llama => ("model.embed_tokens.weight", "embed_tokens.weight"),
    };
    match (names.contains_key(with), names.contains_key(bare)) {
        (false, true) => "",
        _ => match family {
            Family::Gpt2 => "transformer",
            Family::Llama => "model",
        },
    }
}

impl Pretrained {
    /// Reads a model directory onto `device`, in float32.
    pub fn load(dir: &Path, device: Device) -> Result<Pretrained, HfError> {
        let files = model_files(dir)?;
        Pretrained::load_files(dir, &files[0], &files[1], &files[2..], device)
    }

    /// Reads a model from its files: `config.json`, `tokenizer.json` and the
    /// weights (a cache entry holds them beside files of its own). `dir`
    /// names the model in errors.
    pub fn load_files(
        dir: &Path,
        config_path: &Path,
        tok_path: &Path,
        weights: &[PathBuf],
        device: Device,
    ) -> Result<Pretrained, HfError> {
        let (config, json, tokenizer) = read_config_and_tokenizer(config_path, tok_path)?;

        let mut tensors = HashMap::new();
        for f in weights {
            let read =
                Tensor::read_safetensors(f).map_err(|e| HfError::Weights { path: f.clone(), msg: e.to_string() })?;
            tensors.extend(read);
        }
        let shapes =
            |msg: String| HfError::Shapes { dir: dir.to_path_buf(), model_type: config.model_type.clone(), msg };

        let mut vs = nn::VarStore::new(device);
        let root = vs.root();
        let pre = prefix(config.family, &tensors);
        let path = if pre.is_empty() { root.clone() } else { &root / pre };
        let trunk = match config.family {
            Family::Gpt2 => Trunk::Gpt2(Gpt2::new(&path, &config)),
            Family::Llama => Trunk::Llama(Llama::new(&path, &config)),
        };
        // A reward model carries a score head where a language model has
        // its output head; GPT-2's output head is the embedding either way.
        let own_head = !config.tied && config.family == Family::Llama && !config.score_head;
        let head =
            own_head.then(|| (&root / "lm_head").var("weight", &[config.vocab, config.width], nn::Init::Const(0.0)));
        let score =
            config.score_head.then(|| (&root / "score").var("weight", &[1, config.width], nn::Init::Const(0.0)));
        let lm_head = !config.score_head || config.tied || config.family == Family::Gpt2;

        // Every parameter must come from the file with its exact shape;
        // tensors the model does not use (GPT-2's old attention-mask
        // buffers) are ignored.
        tch::no_grad(|| -> Result<(), HfError> {
            for (name, mut var) in vs.variables() {
                let src = tensors.get(&name).ok_or_else(|| shapes(format!("the tensor `{name}` is missing")))?;
                if src.size() != var.size() {
                    return Err(shapes(format!("`{name}` is {:?}, the config asks for {:?}", src.size(), var.size())));
                }
                var.f_copy_(&src.to_kind(Kind::Float)).map_err(|e| shapes(format!("`{name}`: {e}")))?;
                // A NaN or infinite weight would train to NaN and sample
                // noise that evaluations score as if it were a policy.
                if var.isfinite().all().int64_value(&[]) == 0 {
                    return Err(shapes(format!("`{name}` holds NaN or infinite values")));
                }
            }
            Ok(())
        })?;
        vs.freeze();
        let head = match (&trunk, head) {
            (_, Some(h)) => h,
            (Trunk::Gpt2(g), None) => g.embedding().shallow_clone(),
            (Trunk::Llama(l), None) => l.embedding().shallow_clone(),
        };
        Ok(Pretrained { config, config_json: json, vs, tokenizer, trunk, head, score, lm_head })
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Writes the model as a Hugging Face directory that transformers loads
    /// as is: the config it was read with (its dtype now float32), every
    /// weight under its Hugging Face name, and the tokenizer. The files go
    /// into a temporary sibling folder that is renamed into place, so `dir`
    /// is either absent or complete; an existing `dir` is never touched.
    pub fn save(&self, dir: &Path) -> Result<(), HfError> {
        if dir.exists() {
            return Err(HfError::Exists(dir.to_path_buf()));
        }
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
        let tmp = dir.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| HfError::Io { path, source }
        };
        let written = (|| {
            std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
            self.write_files(&tmp)?;
            std::fs::rename(&tmp, dir).map_err(io(dir))
        })();
        if written.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        written
    }

    /// The names of the files [`Pretrained::write_files`] writes.
    pub const FILES: [&'static str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

    /// Writes the model's files into the folder `dir`: the config it was
    /// read with (its dtype now float32), the tokenizer, and every weight
    /// under its Hugging Face name, on the CPU.
    pub fn write_files(&self, dir: &Path) -> Result<(), HfError> {
        let io = |path: PathBuf| move |source| HfError::Io { path, source };
        let mut config = self.config_json.clone();
        for key in ["dtype", "torch_dtype"] {
            if key == "dtype" || config.get(key).is_some() {
                config[key] = serde_json::json!("float32");
            }
        }
        let text = serde_json::to_string_pretty(&config).expect("a JSON value serialises");
        std::fs::write(dir.join("config.json"), text).map_err(io(dir.join("config.json")))?;
        let path = dir.join("tokenizer.json");
        self.tokenizer.save(&path).map_err(|msg| HfError::Tokenizer { path: path.clone(), msg })?;
        let mut named: Vec<(String, Tensor)> =
            self.vs.variables().into_iter().map(|(k, v)| (k, v.to_device(Device::Cpu))).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let path = dir.join("model.safetensors");
        Tensor::write_safetensors(&named, &path)
            .map_err(|e| HfError::Weights { path: path.clone(), msg: e.to_string() })
    }

    /// Whether a sequence of `tokens` fits: GPT-2's learned positions end at
    /// its context; rotary positions have no table to run past.
    pub fn fits(&self, tokens: usize) -> Result<(), HfError> {
        match self.config.family {
            Family::Gpt2 if tokens as i64 > self.config.context => {
                Err(HfError::TooLong { tokens, context: self.config.context })
            }
            _ => Ok(()),
        }
    }

    /// Positions counted over real tokens, so that left-padded rows line up.
    fn positions(key_mask: &Tensor) -> Tensor {
        (key_mask.to_kind(Kind::Int64).cumsum(1, Kind::Int64) - 1).clamp_min(0)
    }

    /// Hidden states [B, T, D] of `ids` at `positions`; `key_mask` [B, Tk]
    /// covers every key, those in `cache` first, then the T new ones.
    pub fn hidden(&self, ids: &Tensor, positions: &Tensor, key_mask: &Tensor, cache: Option<&mut Cache>) -> Tensor {
        match &self.trunk {
            Trunk::Gpt2(g) => g.forward(ids, positions, key_mask, cache),
            Trunk::Llama(l) => l.forward(ids, positions, key_mask, cache),
        }
    }

    /// The head's logits [.., vocab] of hidden states [.., D], in float32
    /// under mixed precision too (ml::autocast says why).
    pub fn logits_of(&self, hidden: &Tensor) -> Tensor {
        let _float32 = crate::ml::autocast::float32(hidden.device());
        hidden.to_kind(Kind::Float).matmul(&self.head.tr())
    }

    /// Logits [B, T, vocab] of `ids` [B, T] (1 in `key_mask` for real tokens).
    pub fn logits(&self, ids: &Tensor, key_mask: &Tensor) -> Tensor {
        self.logits_of(&self.hidden(ids, &Self::positions(key_mask), key_mask, None))
    }

    /// A reward model's score of one sequence of its token ids, as
    /// transformers' `*ForSequenceClassification` computes it: the score
    /// head on the last token that is not the config's pad token (the last
    /// token when none is set or all are). None for a language model.
    pub fn score_of(&self, ids: &[i64]) -> Option<f64> {
        let score = self.score.as_ref()?;
        let n = ids.len() as i64;
        let x = Tensor::from_slice(ids).view([1, n]).to_device(self.device());
        let mask = x.ones_like();
        let hidden = tch::no_grad(|| self.hidden(&x, &Self::positions(&mask), &mask, None)); // [1, n, D]
        let last = ids.iter().rposition(|&t| Some(t) != self.config.pad).unwrap_or(ids.len().saturating_sub(1)) as i64;
        let _float32 = crate::ml::autocast::float32(hidden.device());
        let h = hidden.get(0).get(last).to_kind(Kind::Float);
        Some(tch::no_grad(|| h.dot(&score.get(0).to_kind(Kind::Float)).double_value(&[])))
    }

    /// log p(ids[t+1] | ids[..=t]) for every t: [B, T−1].
    pub fn token_logprobs(&self, ids: &Tensor, key_mask: &Tensor) -> Tensor {
        let t = ids.size()[1];
        let lp = self.logits(ids, key_mask).narrow(1, 0, t - 1).log_softmax(-1, Kind::Float);
        lp.gather(2, &ids.narrow(1, 1, t - 1).unsqueeze(2), false).squeeze_dim(2)
    }

    /// Samples up to `new` tokens after each prompt at `temperature`, all
    /// prompts in one left-padded batch through the KV cache. A row ends at
    /// the model's EOS (kept); draws come from `rng` (inverse CDF, one
    /// uniform per row and token), so a seed gives the same tokens again.
    pub fn sample(&self, prompts: &[Vec<i64>], new: usize, temperature: f64, rng: &mut Stream) -> Vec<Vec<i64>> {
        use rand::Rng;
        let device = self.device();
        let b = prompts.len() as i64;
        let width = prompts.iter().map(Vec::len).max().unwrap_or(0);
        if b == 0 || width == 0 || new == 0 {
            return vec![vec![]; prompts.len()];
        }
        let mut ids = Vec::with_capacity(prompts.len() * width);
        let mut real = Vec::with_capacity(prompts.len() * width);
        for p in prompts {
            let pad = width - p.len();
            ids.extend(std::iter::repeat_n(0, pad).chain(p.iter().copied()));
            real.extend(std::iter::repeat_n(0i64, pad).chain(std::iter::repeat_n(1, p.len())));
        }
        let ids = Tensor::from_slice(&ids).view([b, width as i64]).to_device(device);
        let mut mask = Tensor::from_slice(&real).view([b, width as i64]).to_device(device);
        let mut positions = Self::positions(&mask).narrow(1, width as i64 - 1, 1);
        let mut cache = Cache::default();
        let mut h = self.hidden(&ids, &Self::positions(&mask), &mask, Some(&mut cache));
        let mut out: Vec<Vec<i64>> = vec![vec![]; prompts.len()];
        let mut done = vec![false; prompts.len()];
        for _ in 0..new {
            let logits = self.logits_of(&h.narrow(1, h.size()[1] - 1, 1).squeeze_dim(1));
            let cum = (logits / temperature).softmax(-1, Kind::Float).cumsum(-1, Kind::Float);
            let u: Vec<f32> = (0..b).map(|_| rng.gen_range(f32::MIN_POSITIVE..1.0)).collect();
            let u = Tensor::from_slice(&u).to_device(device).unsqueeze(1) * cum.narrow(1, self.config.vocab - 1, 1);
            let next = cum
                .lt_tensor(&u)
                .sum_dim_intlist([1i64].as_slice(), false, Kind::Int64)
                .clamp_max(self.config.vocab - 1);
            let drawn: Vec<i64> = Vec::try_from(&next).unwrap_or_default();
            for (row, &t) in drawn.iter().enumerate() {
                if !done[row] {
                    out[row].push(t);
                    done[row] = Some(t) == self.config.eos;
                }
            }
            if done.iter().all(|d| *d) {
                break;
            }
            positions = &positions + 1;
            mask = Tensor::cat(&[&mask, &Tensor::ones([b, 1], (Kind::Int64, device))], 1);
            h = self.hidden(&next.unsqueeze(1), &positions, &mask, Some(&mut cache));
        }
        out
    }

    /// Greedy decoding of `new` tokens after one prompt, with a KV cache:
    /// the prompt is read once, then each token is one step.
    pub fn greedy(&self, prompt: &[i64], new: usize) -> Vec<i64> {
        let device = self.device();
        let mut cache = Cache::default();
        let ids = Tensor::from_slice(prompt).to_device(device).unsqueeze(0);
        let mut mask = Tensor::ones([1, prompt.len() as i64], (Kind::Int64, device));
        let mut h = self.hidden(&ids, &Self::positions(&mask), &mask, Some(&mut cache));
        let mut out = Vec::with_capacity(new);
        for _ in 0..new {
            let last = self.logits_of(&h.narrow(1, h.size()[1] - 1, 1));
            let next = last.argmax(-1, false); // [1, 1]
            out.push(next.int64_value(&[0, 0]));
            let position = Tensor::from_slice(&[cache.len()]).to_device(device).unsqueeze(0);
            mask = Tensor::cat(&[&mask, &Tensor::ones([1, 1], (Kind::Int64, device))], 1);
            h = self.hidden(&next, &position, &mask, Some(&mut cache));
        }
        out
    }
}
