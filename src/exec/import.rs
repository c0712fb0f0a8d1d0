//! Importing into the cache: a JSONL preference dataset, and a pretrained
//! model's directory. Each must still hold the content the plan was keyed
//! by; parsing and tokenizing text are `worlds::jsonl`'s.

use crate::exec::artifacts::{self as art, DataMeta, ExecError};
use crate::exec::store::{Staging, Store};
use crate::hfdir::{self, HfTokenizer};
use crate::plan::op::{JsonlSpec, PretrainedSpec, Tokenizer};
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

pub fn jsonl(store: &Store, spec: &JsonlSpec, st: &mut Staging) -> Result<(), ExecError> {
    let path = &spec.path;
    let bytes = std::fs::read(path).map_err(|e| ExecError::Invalid(format!("cannot read {path}: {e}")))?;
    if crate::hfdir::records::content_digest(&bytes) != spec.content {
        return Err(ExecError::Invalid(format!("{path} changed since the plan was made; plan again")));
    }
    let text = String::from_utf8(bytes).map_err(|_| ExecError::Invalid(format!("{path} is not UTF-8")))?;
    let records = jsonl::parse_with(&text, path, spec.chat.as_ref()).map_err(ExecError::Invalid)?;
    if let Some(model) = &spec.model {
        return pretrained_text(store, model, (&records, spec.chat.is_some()), path, st);
    }
    let t = jsonl::tokenize(&records, spec.tokenizer == Tokenizer::Byte);
    art::save_pairs(st, "pairs.safetensors", &t.pairs)?;
    art::write_json(st, "vocab.json", &t.vocab_json())?;
    let n = t.pairs.len();
    art::write_json(
        st,
        "meta.json",
        &DataMeta {
            vocab: t.vocab(),
            prompt_len: t.pairs.prompt_len(),
            response_len: t.pairs.response_len(),
            rows: n,
            train: n,
            val: 0,
        },
    )
}

/// Records read by a pretrained model's tokenizer, its ids stored one up.
fn pretrained_text(
    store: &Store,
    model: &crate::plan::Key,
    (records, rendered): (&[(String, String, String)], bool),
    path: &str,
    st: &mut Staging,
) -> Result<(), ExecError> {
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
    let pairs = jsonl::tokenize_pretrained(records, &tokenizer, eos, rendered)
        .map_err(|e| ExecError::Invalid(format!("{path}: {e}")))?;
    art::save_pairs(st, "pairs.safetensors", &pairs)?;
    art::write_json(
        st,
        "vocab.json",
        &serde_json::json!({"tokenizer": "pretrained", "model": model.hex(), "stored_ids": "the tokenizer's id + 1; 0 is PAD"}),
    )?;
    let n = pairs.len();
    art::write_json(
        st,
        "meta.json",
        &DataMeta {
            vocab: config.vocab + 1,
            prompt_len: pairs.prompt_len(),
            response_len: pairs.response_len(),
            rows: n,
            train: n,
            val: 0,
        },
    )
}
