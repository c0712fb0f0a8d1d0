//! A pretrained causal language model: trunk, head and tokenizer, loaded
//! from a Hugging Face directory with every failure said in words.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tch::{nn, Device, Kind, Tensor};

use crate::ml::hf::attention::Cache;
use crate::ml::hf::config::{Family, HfConfig};
use crate::ml::hf::gpt2::Gpt2;
use crate::ml::hf::llama::Llama;
use crate::ml::hf::text::HfTokenizer;
use crate::ml::rng::Stream;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum HfError {
    #[error("`{}` is missing", .0.display())]
    #[diagnostic(
        code(tandem::pretrained::missing),
        help("a pretrained model directory holds config.json, *.safetensors and tokenizer.json, as `save_pretrained` writes them")
    )]
    Missing(PathBuf),
    #[error("`{}`: {msg}", path.display())]
    #[diagnostic(code(tandem::pretrained::config), help("supported architectures: {}", crate::ml::hf::config::SUPPORTED.join(", ")))]
    Config { path: PathBuf, msg: String },
    #[error("`{}` is not a readable safetensors file: {msg}", path.display())]
    #[diagnostic(
        code(tandem::pretrained::weights),
        help("the file may be truncated or of another format; write it again with `save_pretrained`")
    )]
    Weights { path: PathBuf, msg: String },
    #[error("the weights in `{}` do not fit a {model_type} of this config: {msg}", dir.display())]
    #[diagnostic(
        code(tandem::pretrained::shapes),
        help("config.json and the safetensors files must come from one model")
    )]
    Shapes { dir: PathBuf, model_type: String, msg: String },
    #[error("`{}` is not a readable tokenizer: {msg}", path.display())]
    #[diagnostic(
        code(tandem::pretrained::tokenizer),
        help("tokenizer.json is the file Hugging Face's fast tokenizers write")
    )]
    Tokenizer { path: PathBuf, msg: String },
    #[error("`{}` knows {tokens} tokens, but the model's embedding has {vocab} rows", path.display())]
    #[diagnostic(
        code(tandem::pretrained::vocabulary),
        help("the tokenizer and the model do not belong together: use the tokenizer the model was trained with")
    )]
    VocabMismatch { path: PathBuf, tokens: i64, vocab: i64 },
    #[error("{tokens} tokens are more than the {context} positions this GPT-2 has")]
    #[diagnostic(code(tandem::pretrained::too_long), help("shorten the text (or the continuation asked for)"))]
    TooLong { tokens: usize, context: i64 },
    #[error("`{}` exists already", .0.display())]
    #[diagnostic(
        code(tandem::pretrained::exists),
        help("choose a new directory: a model is never written over another")
    )]
    Exists(PathBuf),
    #[error("cannot read `{}`", path.display())]
    #[diagnostic(code(tandem::pretrained::io))]
    Io { path: PathBuf, source: std::io::Error },
}

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
}

/// The files a model directory contributes, in a fixed order: config.json,
/// tokenizer.json, then the safetensors files by name.
pub fn model_files(dir: &Path) -> Result<Vec<PathBuf>, HfError> {
    if !dir.is_dir() {
        return Err(HfError::Missing(dir.to_path_buf()));
    }
    let mut files = vec![dir.join("config.json"), dir.join("tokenizer.json")];
    let mut weights: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| HfError::Io { path: dir.to_path_buf(), source })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    if weights.is_empty() {
        return Err(HfError::Missing(dir.join("model.safetensors")));
    }
    weights.sort();
    files.extend(weights);
    for f in &files {
        if !f.is_file() {
            return Err(HfError::Missing(f.clone()));
        }
    }
    Ok(files)
}

/// blake3 of the directory's files, names and bytes: the model's identity in
/// keys (a copy elsewhere is the same model; an edited file is another).
pub fn content_digest(dir: &Path) -> Result<String, HfError> {
    let mut h = blake3::Hasher::new();
    h.update(b"tandem pretrained v1");
    for f in model_files(dir)? {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let io = |source| HfError::Io { path: f.clone(), source };
        let mut file = std::fs::File::open(&f).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        h.update(&(name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(&len.to_le_bytes());
        std::io::copy(&mut file, &mut h).map_err(io)?;
    }
    Ok(h.finalize().to_hex().to_string())
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
        let config_path = &files[0];
        let text =
            std::fs::read_to_string(config_path).map_err(|source| HfError::Io { path: config_path.clone(), source })?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| HfError::Config { path: config_path.clone(), msg: format!("not JSON: {e}") })?;
        let config = HfConfig::from_json(&json).map_err(|msg| HfError::Config { path: config_path.clone(), msg })?;

        let tok_path = &files[1];
        let tokenizer =
            HfTokenizer::from_file(tok_path).map_err(|msg| HfError::Tokenizer { path: tok_path.clone(), msg })?;
        if tokenizer.vocab_size() > config.vocab {
            return Err(HfError::VocabMismatch {
                path: tok_path.clone(),
                tokens: tokenizer.vocab_size(),
                vocab: config.vocab,
            });
        }

        let mut tensors = HashMap::new();
        for f in &files[2..] {
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
        let own_head = !config.tied && config.family == Family::Llama;
        let head =
            own_head.then(|| (&root / "lm_head").var("weight", &[config.vocab, config.width], nn::Init::Const(0.0)));

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
            }
            Ok(())
        })?;
        vs.freeze();
        let head = match (&trunk, head) {
            (_, Some(h)) => h,
            (Trunk::Gpt2(g), None) => g.embedding().shallow_clone(),
            (Trunk::Llama(l), None) => l.embedding().shallow_clone(),
        };
        Ok(Pretrained { config, config_json: json, vs, tokenizer, trunk, head })
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
            let mut config = self.config_json.clone();
            for key in ["dtype", "torch_dtype"] {
                if key == "dtype" || config.get(key).is_some() {
                    config[key] = serde_json::json!("float32");
                }
            }
            let text = serde_json::to_string_pretty(&config).expect("a JSON value serialises");
            std::fs::write(tmp.join("config.json"), text).map_err(io(&tmp.join("config.json")))?;
            let path = tmp.join("tokenizer.json");
            self.tokenizer.save(&path).map_err(|msg| HfError::Tokenizer { path: path.clone(), msg })?;
            let mut named: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
            named.sort_by(|a, b| a.0.cmp(&b.0));
            let path = tmp.join("model.safetensors");
            Tensor::write_safetensors(&named, &path)
                .map_err(|e| HfError::Weights { path: path.clone(), msg: e.to_string() })?;
            std::fs::rename(&tmp, dir).map_err(io(dir))
        })();
        if written.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        written
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

    fn hidden(&self, ids: &Tensor, positions: &Tensor, key_mask: &Tensor, cache: Option<&mut Cache>) -> Tensor {
        match &self.trunk {
            Trunk::Gpt2(g) => g.forward(ids, positions, key_mask, cache),
            Trunk::Llama(l) => l.forward(ids, positions, key_mask, cache),
        }
    }

    /// Logits [B, T, vocab] of `ids` [B, T] (1 in `key_mask` for real tokens).
    pub fn logits(&self, ids: &Tensor, key_mask: &Tensor) -> Tensor {
        let h = self.hidden(ids, &Self::positions(key_mask), key_mask, None);
        h.matmul(&self.head.tr())
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
            let logits = h.narrow(1, h.size()[1] - 1, 1).squeeze_dim(1).matmul(&self.head.tr());
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
            let last = h.narrow(1, h.size()[1] - 1, 1).matmul(&self.head.tr());
            let next = last.argmax(-1, false); // [1, 1]
            out.push(next.int64_value(&[0, 0]));
            let position = Tensor::from_slice(&[cache.len()]).to_device(device).unsqueeze(0);
            mask = Tensor::cat(&[&mask, &Tensor::ones([1, 1], (Kind::Int64, device))], 1);
            h = self.hidden(&next, &position, &mask, Some(&mut cache));
        }
        out
    }
}
