//! Importing into the cache: a JSONL or Parquet preference dataset, and a pretrained
//! model's directory. Each must still hold the content the plan was keyed
//! by; parsing and tokenizing text are `worlds::jsonl`'s.

use crate::exec::artifacts::{self as art, DataMeta, ExecError};
use crate::exec::store::{Staging, Store};
use crate::hfdir::{self, HfTokenizer};
use crate::ml::data::Pairs;
use crate::plan::op::{JsonlSpec, PretrainedSpec, RecordFile, Tokenizer};
use crate::worlds::jsonl;

/// A pretrained model's entry: its files under their own names, and
/// `pretrained.json` naming the weight files.
pub fn pretrained(spec: &PretrainedSpec, st: &mut Staging) -> Result<(), ExecError> {
    let dir = std::path::Path::new(&spec.path);
    let invalid = |e: hfdir::HfError| ExecError::Invalid(e.to_string());
    let files = hfdir::model_files(dir).map_err(invalid)?;
    let mut weights = vec![];
    for f in &files {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let to = st.path().join(&name);
        std::fs::copy(f, &to).map_err(|e| ExecError::Invalid(format!("cannot copy {}: {e}", f.display())))?;
        st.adopt(&name)?;
        if name.ends_with(".safetensors") {
            weights.push(name);
        }
    }
    // What was copied is what the plan was keyed by, or nothing is kept.
    if hfdir::content_digest(st.path()).map_err(invalid)? != spec.content {
        return Err(ExecError::Invalid(format!("{} changed since the plan was made; plan again", spec.path)));
    }
    art::write_json(st, "pretrained.json", &serde_json::json!({"weights": weights, "path": spec.path}))
}

/// A pretrained model entry's weight files, by name.
pub fn pretrained_weights(store: &Store, key: &crate::plan::Key) -> Result<Vec<String>, ExecError> {
    #[derive(serde::Deserialize)]
    struct Files {
        weights: Vec<String>,
    }
    Ok(art::read_json::<Files>(store, key, "pretrained.json")?.weights)
}

/// A preference dataset from a JSONL or Parquet file: its records
/// tokenised, cut or padded to the stated widths, a share held out.
pub fn jsonl(store: &Store, spec: &JsonlSpec, st: &mut Staging) -> Result<(), ExecError> {
    let path = &spec.path;
    let bytes = std::fs::read(path).map_err(|e| ExecError::Invalid(format!("cannot read {path}: {e}")))?;
    // A Parquet file's rows are read as the JSONL lines the plan was keyed by.
    let bytes = match spec.format {
        RecordFile::Jsonl => bytes,
        RecordFile::Parquet => {
            hfdir::parquet::to_jsonl(&bytes).map_err(|e| ExecError::Invalid(format!("{path}: {e}")))?.into_bytes()
        }
    };
    if crate::hfdir::records::content_digest(&bytes) != spec.content {
        return Err(ExecError::Invalid(format!("{path} changed since the plan was made; plan again")));
    }
    let text = String::from_utf8(bytes).map_err(|_| ExecError::Invalid(format!("{path} is not UTF-8")))?;
    let records = jsonl::parse_with(&text, path, spec.chat.as_ref()).map_err(ExecError::Invalid)?;
    let widths = jsonl::Widths {
        prompt: spec.max_prompt_len.map(|n| n as usize),
        response: spec.max_response_len.map(|n| n as usize),
    };
    let (mut pairs, vocab, cut) = match &spec.model {
        Some(model) => {
            let (pairs, vocab, cut) = pretrained_text(store, model, (&records, spec.chat.is_some(), widths), path)?;
            let about = serde_json::json!({"tokenizer": "pretrained", "model": model.hex(), "stored_ids": "the tokenizer's id + 1; 0 is PAD"});
            art::write_json(st, "vocab.json", &about)?;
            (pairs, vocab, cut)
        }
        None => {
            let (t, cut) = jsonl::tokenize_within(&records, spec.tokenizer == Tokenizer::Byte, widths);
            art::write_json(st, "vocab.json", &t.vocab_json())?;
            let vocab = t.vocab();
            (t.pairs, vocab, cut)
        }
    };
    jsonl::hold_out(&mut pairs, spec.val_fraction).map_err(|e| ExecError::Invalid(format!("{path}: {e}")))?;
    art::save_pairs(st, "pairs.safetensors", &pairs)?;
    let cut = (widths != jsonl::Widths::default()).then_some(cut);
    art::write_json(st, "meta.json", &DataMeta { cut, ..DataMeta::of(&pairs, vocab) })
}

/// Records read by a pretrained model's tokenizer, its ids stored one up;
/// with the vocabulary size they are stored in.
fn pretrained_text(
    store: &Store,
    model: &crate::plan::Key,
    (records, rendered, widths): (&[(String, String, String)], bool, jsonl::Widths),
    path: &str,
) -> Result<(Pairs, i64, jsonl::Cut), ExecError> {
    let config = hfdir::files::read_config(&store.verified_path(model, "config.json")?)
        .map_err(|e| ExecError::Invalid(e.to_string()))?;
    let Some(eos) = config.eos else {
        return Err(ExecError::Invalid(
            "the tokenizer's model names no `eos_token_id` in its config.json: responses need a token that ends them"
                .into(),
        ));
    };
    let tokenizer = HfTokenizer::from_file(&store.verified_path(model, "tokenizer.json")?)
        .map_err(|e| art::input_err(model, format!("tokenizer.json: {e}")))?;
    let (pairs, cut) = jsonl::tokenize_pretrained(records, &tokenizer, eos, (rendered, widths))
        .map_err(|e| ExecError::Invalid(format!("{path}: {e}")))?;
    Ok((pairs, config.vocab + 1, cut))
}
