//! Importing a JSONL preference dataset into the cache: the file must still
//! hold the content the plan was keyed by; parsing and tokenizing are
//! `worlds::jsonl`'s.

use crate::exec::artifacts::{self as art, DataMeta, ExecError};
use crate::exec::store::Staging;
use crate::plan::op::{JsonlSpec, Tokenizer};
use crate::worlds::jsonl;

pub fn jsonl(spec: &JsonlSpec, st: &mut Staging) -> Result<(), ExecError> {
    let path = &spec.path;
    let bytes = std::fs::read(path).map_err(|e| ExecError::Invalid(format!("cannot read {path}: {e}")))?;
    if blake3::hash(&bytes).to_hex().as_str() != spec.content {
        return Err(ExecError::Invalid(format!("{path} changed since the plan was made; plan again")));
    }
    let text = String::from_utf8(bytes).map_err(|_| ExecError::Invalid(format!("{path} is not UTF-8")))?;
    let records = jsonl::parse(&text, path).map_err(ExecError::Invalid)?;
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
