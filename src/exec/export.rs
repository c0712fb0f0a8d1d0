//! Writing any dataset artifact as JSONL in the preference format people
//! already use (`prompt`, `chosen`, `rejected` strings), with extra fields
//! saying where each label came from, so it can be read by pandas or loaded
//! into TRL.
//!
//! Tokens become text through the vocabulary of the JSONL import the data
//! descends from (found by walking the entry's lineage); data from a
//! synthetic world has no text, so its tokens are written as words `t<id>`
//! separated by spaces.

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::path::Path;

use tch::Kind;

use crate::exec::artifacts::{self as art, ExecError};
use crate::exec::store::Store;
use crate::ml::data::Pairs;
use crate::ml::tokens::{unpad, BOS, EOS, FIRST_CONTENT};
use crate::plan::Key;

/// How token ids become text.
enum Decoder {
    Units { bytes: bool, units: Vec<serde_json::Value> },
    Words,
}

impl Decoder {
    fn text(&self, tokens: &[i64]) -> String {
        let content: Vec<i64> =
            tokens.iter().copied().filter(|&t| t != BOS && t != EOS && t >= FIRST_CONTENT).collect();
        match self {
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

/// The vocabulary of the nearest JSONL import upstream of `key`, if any.
fn decoder_for(store: &Store, key: &Key) -> Decoder {
    let mut queue = VecDeque::from([*key]);
    let mut seen = HashSet::new();
    while let Some(k) = queue.pop_front() {
        if !seen.insert(k) {
            continue;
        }
        let Ok(m) = store.manifest(&k) else { continue };
        if m.kind == "dataset.jsonl" {
            if let Ok(v) = art::read_json::<serde_json::Value>(store, &k, "vocab.json") {
                let units = v["units"].as_array().cloned().unwrap_or_default();
                return Decoder::Units { bytes: v["tokenizer"] == "byte", units };
            }
        }
        queue.extend(m.inputs.iter().map(|i| i.key));
    }
    Decoder::Words
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
    tmp.persist(out).map_err(|e| ExecError::Invalid(format!("cannot write {}: {}", out.display(), e.error)))?;
    Ok(p.len())
}
