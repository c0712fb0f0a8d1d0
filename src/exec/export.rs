//! Writing any dataset artifact as JSONL in the preference format people
//! already use (`prompt`, `chosen`, `rejected` strings), with extra fields
//! saying where each label came from, so it can be read by pandas or loaded
//! into TRL.
//!
//! Tokens become text through the vocabulary of the JSONL import the data
//! descends from (found by walking the entry's lineage): its characters or
//! bytes, or the pretrained tokenizer that read it; data from a synthetic
//! world has no text, so its tokens are written as words `t<id>` separated
//! by spaces.
//!
//! A policy trained from a pretrained model is exported as the Hugging Face
//! directory its entry holds ([`export_model`]), which transformers loads
//! as is.

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::path::Path;

use tch::Kind;

use crate::exec::artifacts::{self as art, ExecError};
use crate::exec::store::Store;
use crate::hfdir::HfTokenizer;
use crate::ml::data::Pairs;
use crate::ml::tokens::{unpad, BOS, EOS, FIRST_CONTENT};
use crate::plan::Key;

/// How token ids become text.
enum Decoder {
    Units {
        bytes: bool,
        units: Vec<serde_json::Value>,
    },
    /// A pretrained tokenizer: stored ids are its ids + 1; `eos` (stored)
    /// ends a response and is left out of the text.
    Pretrained {
        tokenizer: Box<HfTokenizer>,
        eos: Option<i64>,
    },
    Words,
}

impl Decoder {
    fn text(&self, tokens: &[i64]) -> String {
        if let Decoder::Pretrained { tokenizer, eos } = self {
            let ids: Vec<i64> = tokens.iter().filter(|&&t| Some(t) != *eos).map(|t| t - 1).collect();
            return tokenizer.decode(&ids).unwrap_or_else(|e| format!("<undecodable: {e}>"));
        }
        let content: Vec<i64> =
            tokens.iter().copied().filter(|&t| t != BOS && t != EOS && t >= FIRST_CONTENT).collect();
        match self {
            Decoder::Pretrained { .. } => unreachable!("decoded above"),
            Decoder::Words => content.iter().map(|t| format!("t{t}")).collect::<Vec<_>>().join(" "),
            Decoder::Units { bytes: false, units } => content
                .iter()
                .filter_map(|&t| units.get((t - FIRST_CONTENT) as usize).and_then(|u| u.as_str()))
                .collect(),
            Decoder::Units { bytes: true, units } => {
                let raw: Vec<u8> = content
                    .iter()
                    .filter_map(|&t| units.get((t - FIRST_CONTENT) as usize).and_then(|u| u.as_u64()).map(|b| b as u8))
                    .collect();
                String::from_utf8_lossy(&raw).into_owned()
            }
        }
    }
}

/// The vocabulary of the nearest file import (JSONL or Parquet) upstream
/// of `key`, if any.
fn decoder_for(store: &Store, key: &Key) -> Decoder {
    let mut queue = VecDeque::from([*key]);
    let mut seen = HashSet::new();
    while let Some(k) = queue.pop_front() {
        if !seen.insert(k) {
            continue;
        }
        let Ok(m) = store.manifest(&k) else { continue };
        if m.kind == "dataset.jsonl" || m.kind == "dataset.parquet" {
            if let Ok(v) = art::read_json::<serde_json::Value>(store, &k, "vocab.json") {
                if v["tokenizer"] == "pretrained" {
                    if let Some(d) = pretrained_decoder(store, &m) {
                        return d;
                    }
                }
                let units = v["units"].as_array().cloned().unwrap_or_default();
                return Decoder::Units { bytes: v["tokenizer"] == "byte", units };
            }
        }
        queue.extend(m.inputs.iter().map(|i| i.key));
    }
    Decoder::Words
}

/// The tokenizer (and end token) of the pretrained model a JSONL import
/// was read by: its one input.
fn pretrained_decoder(store: &Store, jsonl: &crate::exec::store::Manifest) -> Option<Decoder> {
    let model = jsonl.inputs.first()?.key;
    let tokenizer = HfTokenizer::from_file(&store.verified_path(&model, "tokenizer.json").ok()?).ok()?;
    let config = crate::hfdir::files::read_config(&store.verified_path(&model, "config.json").ok()?).ok()?;
    Some(Decoder::Pretrained { tokenizer: Box::new(tokenizer), eos: config.eos.map(|e| e + 1) })
}

/// Writes the policy held by entry `key` (a model trained from a pretrained
/// base, or a run's checkpoint of one) as a Hugging Face directory `out`:
/// config.json, tokenizer.json, model.safetensors, each checked against the
/// cache's digest. `out` must not exist; it appears whole or not at all.
pub fn export_model(store: &Store, key: &Key, out: &Path) -> Result<(), ExecError> {
    let m = store.manifest(key)?;
    let files = crate::ml::hf::Pretrained::FILES;
    if !files.iter().all(|f| m.files.iter().any(|g| g.name == *f)) {
        return Err(ExecError::Invalid(format!(
            "{} ({}) is not a policy trained from a pretrained model: only those export as a Hugging Face directory",
            key.short(),
            m.kind
        )));
    }
    // A preference model exports as transformers' reward model when its
    // head is one (`last`); the pooled and joint heads have no class there.
    let config = match pm_head(store, key)? {
        None => None,
        Some(head) if head == "last" => Some(reward_model_config(&store.verified_path(key, "config.json")?)?),
        Some(head) => {
            return Err(ExecError::Invalid(format!(
                "{} is a preference model with the {head} head, which has no transformers class; \
                 train it with `head: \"last\"` (transformers' *ForSequenceClassification) to export it",
                key.short()
            )))
        }
    };
    refuse_existing(out)?;
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp =
        tempfile::tempdir_in(dir).map_err(|e| ExecError::Invalid(format!("cannot write in {}: {e}", dir.display())))?;
    for f in files {
        let from = store.verified_path(key, f)?;
        std::fs::copy(&from, tmp.path().join(f)).map_err(|e| ExecError::Invalid(format!("cannot copy {f}: {e}")))?;
    }
    if let Some(config) = config {
        std::fs::write(tmp.path().join("config.json"), config)
            .map_err(|e| ExecError::Invalid(format!("cannot write config.json: {e}")))?;
    }
    let tmp = tmp.keep();
    std::fs::rename(&tmp, out).map_err(|e| {
        let _ = std::fs::remove_dir_all(&tmp);
        ExecError::Invalid(format!("cannot write {}: {e}", out.display()))
    })
}

/// The head of the preference model entry `key` holds (None: not a PM).
fn pm_head(store: &Store, key: &Key) -> Result<Option<String>, ExecError> {
    if !store.manifest(key)?.files.iter().any(|f| f.name == "spec.json") {
        return Ok(None);
    }
    let spec: serde_json::Value = crate::exec::artifacts::read_json(store, key, "spec.json")?;
    Ok((spec["kind"] == "pm").then(|| spec["head"].as_str().unwrap_or("pooled").to_string()))
}

/// The config of a last-token preference model as transformers' reward
/// model: `<Family>ForSequenceClassification` with one label. The score
/// head is already `score.weight`, the name transformers reads.
fn reward_model_config(path: &Path) -> Result<Vec<u8>, ExecError> {
    let text = std::fs::read(path).map_err(|e| ExecError::Invalid(format!("cannot read {}: {e}", path.display())))?;
    let mut c: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| ExecError::Invalid(format!("{}: {e}", path.display())))?;
    let class = match c["model_type"].as_str() {
        Some("gpt2") => "GPT2ForSequenceClassification",
        Some("llama") => "LlamaForSequenceClassification",
        Some("qwen2") => "Qwen2ForSequenceClassification",
        other => return Err(ExecError::Invalid(format!("no reward-model class for model_type {other:?}"))),
    };
    c["architectures"] = serde_json::json!([class]);
    c["id2label"] = serde_json::json!({"0": "LABEL_0"});
    c["label2id"] = serde_json::json!({"LABEL_0": 0});
    if let Some(o) = c.as_object_mut() {
        o.remove("num_labels");
    }
    Ok(serde_json::to_vec_pretty(&c).expect("a JSON value serialises"))
}

/// An export writes a new path only: never over or through an existing
/// file, directory, symlink (dangling ones too), FIFO or device.
fn refuse_existing(out: &Path) -> Result<(), ExecError> {
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ExecError::Invalid(format!("cannot write {}: {e}", out.display()))),
        Ok(meta) => {
            let ft = meta.file_type();
            let what = if ft.is_symlink() {
                "a symbolic link"
            } else if ft.is_dir() {
                "a directory"
            } else if ft.is_file() {
                "a file"
            } else {
                "a special file (a FIFO, socket or device)"
            };
            Err(ExecError::Invalid(format!(
                "{} exists already ({what}): an export is written to a new path only, never over or through \
                 an existing one",
                out.display()
            )))
        }
    }
}

/// Whether entry `key` holds a policy that [`export_model`] writes.
pub fn is_model(store: &Store, key: &Key) -> bool {
    store.manifest(key).is_ok_and(|m| m.kind != "model.pretrained" && m.files.iter().any(|f| f.name == "config.json"))
}

/// Writes the dataset held by entry `key` (a dataset, or a checkpoint's
/// data stream) to `out`, atomically. Returns the number of records.
pub fn export(store: &Store, key: &Key, out: &Path) -> Result<usize, ExecError> {
    let m = store.manifest(key)?;
    let (file, source) = if m.files.iter().any(|f| f.name == "pairs.safetensors") {
        ("pairs.safetensors", m.kind.clone())
    } else if m.files.iter().any(|f| f.name == "stream.safetensors") {
        ("stream.safetensors", "online stream".to_string())
    } else {
        return Err(ExecError::Invalid(format!(
            "{} ({}) holds no dataset: export a dataset, or a checkpoint of an online run",
            key.short(),
            m.kind
        )));
    };
    refuse_existing(out)?;
    let pairs: Pairs = art::load_pairs(store, key, file)?;
    let decoder = decoder_for(store, key);
    let (p, c, r) = (unpad(&pairs.prompts), unpad(&pairs.chosen), unpad(&pairs.rejected));
    let column = |name: &str| -> Option<Vec<f64>> {
        pairs.columns.get(name).and_then(|t| Vec::<f64>::try_from(t.to_kind(Kind::Double)).ok())
    };
    let (split, step, batch, oracle) = (column("split"), column("step"), column("batch"), column("oracle"));
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| ExecError::Invalid(format!("cannot write in {}: {e}", dir.display())))?;
    for i in 0..p.len() {
        let mut rec = serde_json::json!({
            "prompt": decoder.text(&p[i]),
            "chosen": decoder.text(&c[i]),
            "rejected": decoder.text(&r[i]),
            "label_source": source,
            "entry": key.hex(),
        });
        if let Some(s) = &split {
            rec["split"] = serde_json::json!(if s[i] == 1.0 { "validation" } else { "train" });
        }
        if let Some(s) = &step {
            rec["step"] = serde_json::json!(s[i] as i64);
        }
        if let Some(b) = &batch {
            rec["batch_index"] = serde_json::json!(b[i] as i64);
        }
        if let Some(o) = &oracle {
            rec["oracle_margin"] = serde_json::json!(o[i]);
        }
        writeln!(tmp, "{rec}").map_err(|e| ExecError::Invalid(e.to_string()))?;
    }
    // Readable as any file the user writes (a temporary file is 0600), and
    // linked into place only if nothing appeared there meanwhile.
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644));
    }
    tmp.persist_noclobber(out)
        .map_err(|e| ExecError::Invalid(format!("cannot write {}: {}", out.display(), e.error)))?;
    Ok(p.len())
}
