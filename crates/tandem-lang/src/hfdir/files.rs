//! The files of a model directory, their digest, and what can be checked
//! about them without loading a weight.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::hfdir::config::HfConfig;
use crate::hfdir::error::HfError;
use crate::hfdir::tokenizer::HfTokenizer;

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

/// What planning learns about a model directory: enough to key it, refuse
/// it, and check that data and models built on it share its vocabulary.
pub struct Inspected {
    pub config: HfConfig,
    /// [`content_digest`] of the directory.
    pub digest: String,
    /// blake3 of tokenizer.json alone: two models with the same tokenizer
    /// read the same token ids.
    pub tokenizer_digest: String,
}

/// Reads and checks a directory as far as can be done without libtorch:
/// the config names a supported architecture, the tokenizer parses and
/// fits the embedding, and every safetensors file is whole (its header
/// parses and the file is as long as the header says). Each failure is the
/// [`HfError`] loading would give.
pub fn inspect(dir: &Path) -> Result<Inspected, HfError> {
    let files = model_files(dir)?;
    let (config, _, _) = read_config_and_tokenizer(&files[0], &files[1])?;
    let tok_path = &files[1];
    let mut shapes = vec![];
    for f in &files[2..] {
        shapes.extend(check_safetensors(f)?);
    }
    // The weights must be the model the config describes: at least its
    // token embedding, [vocab_size, width], must be there (whatever the
    // architecture names it). Every tensor is checked when the model loads.
    let embedding = vec![config.vocab as usize, config.width as usize];
    if !shapes.contains(&embedding) {
        return Err(HfError::Shapes {
            dir: dir.to_path_buf(),
            model_type: config.model_type.clone(),
            msg: format!(
                "no tensor has the token embedding's shape [{}, {}] (vocab_size × width)",
                config.vocab, config.width
            ),
        });
    }
    let tok_bytes = std::fs::read(tok_path).map_err(|source| HfError::Io { path: tok_path.clone(), source })?;
    Ok(Inspected {
        config,
        digest: content_digest(dir)?,
        tokenizer_digest: blake3::hash(&tok_bytes).to_hex().to_string(),
    })
}

/// Parses `config.json`.
pub fn read_config(path: &Path) -> Result<HfConfig, HfError> {
    read_config_json(path).map(|(c, _)| c)
}

/// Parses `config.json`, keeping the JSON as read (a model written out
/// again carries it).
fn read_config_json(path: &Path) -> Result<(HfConfig, serde_json::Value), HfError> {
    let text = std::fs::read_to_string(path).map_err(|source| HfError::Io { path: path.to_path_buf(), source })?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| HfError::Config { path: path.to_path_buf(), msg: format!("not JSON: {e}") })?;
    let config = HfConfig::from_json(&json).map_err(|msg| HfError::Config { path: path.to_path_buf(), msg })?;
    Ok((config, json))
}

/// The config (parsed and as JSON) and the tokenizer, checked to belong
/// together: the tokenizer may not know more tokens than the embedding has.
pub fn read_config_and_tokenizer(
    config_path: &Path,
    tok_path: &Path,
) -> Result<(HfConfig, serde_json::Value, HfTokenizer), HfError> {
    let (config, json) = read_config_json(config_path)?;
    let tokenizer =
        HfTokenizer::from_file(tok_path).map_err(|msg| HfError::Tokenizer { path: tok_path.to_path_buf(), msg })?;
    if tokenizer.vocab_size() > config.vocab {
        return Err(HfError::VocabMismatch {
            path: tok_path.to_path_buf(),
            tokens: tokenizer.vocab_size(),
            vocab: config.vocab,
        });
    }
    Ok((config, json, tokenizer))
}

/// A safetensors file is an 8-byte header length, a JSON header giving each
/// tensor's byte range, then the data: it is whole when the header parses
/// and the data ends exactly where the last range does. Reads the header
/// only.
fn check_safetensors(path: &Path) -> Result<Vec<Vec<usize>>, HfError> {
    let bad = |msg: String| HfError::Weights { path: path.to_path_buf(), msg };
    let mut file = std::fs::File::open(path).map_err(|source| HfError::Io { path: path.to_path_buf(), source })?;
    let len = file.metadata().map_err(|source| HfError::Io { path: path.to_path_buf(), source })?.len();
    let mut n = [0u8; 8];
    file.read_exact(&mut n).map_err(|_| bad("shorter than a safetensors header".into()))?;
    let n = u64::from_le_bytes(n);
    if n > 100_000_000 || 8 + n > len {
        return Err(bad(format!("its header claims {n} bytes, more than the file holds")));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(|e| bad(e.to_string()))?;
    let meta: safetensors::tensor::Metadata =
        serde_json::from_slice(&header).map_err(|e| bad(format!("its header is not valid: {e}")))?;
    let end = meta.tensors().values().map(|t| t.data_offsets.1 as u64).max().unwrap_or(0);
    if 8 + n + end != len {
        return Err(bad(format!("the header describes {} bytes of data, the file holds {}", end, len - 8 - n)));
    }
    Ok(meta.tensors().values().map(|t| t.shape.clone()).collect())
}
