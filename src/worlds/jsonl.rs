//! Importing a preference dataset from JSONL: one object per line with string
//! fields `prompt`, `chosen`, `rejected` (the format TRL and others use).
//!
//! Text becomes tokens with a character- or byte-level vocabulary built from
//! the file itself: the four special tokens, then every distinct character
//! (or byte) in order of first appearance... sorted, so the vocabulary
//! depends only on the set of characters. A malformed line is an error that
//! names the file and line; nothing is imported unless every line is good.

use std::collections::BTreeSet;

use tch::{Kind, Tensor};

use crate::hfdir::records;
use crate::hfdir::HfTokenizer;
use crate::ml::data::Pairs;
use crate::ml::tokens::{left_pad, right_pad, BOS, EOS, FIRST_CONTENT};

/// Parses every line; the first bad one is an error naming file and line.
pub fn parse(text: &str, file: &str) -> Result<Vec<(String, String, String)>, String> {
    parse_with(text, file, None)
}

/// [`parse`], conversational records rendered with `chat`.
pub fn parse_with(
    text: &str,
    file: &str,
    chat: Option<&crate::hfdir::chat::ChatTemplate>,
) -> Result<Vec<(String, String, String)>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.push(records::texts(line, chat).map_err(|e| format!("{file}:{}: {e}", i + 1))?);
    }
    if out.is_empty() {
        return Err(format!("{file}: no records"));
    }
    Ok(out)
}

fn units(s: &str, bytes: bool) -> Vec<u32> {
    if bytes {
        s.bytes().map(u32::from).collect()
    } else {
        s.chars().map(u32::from).collect()
    }
}

/// Records as token pairs, with the vocabulary that made them.
pub struct Tokenized {
    /// Every row in the train split.
    pub pairs: Pairs,
    /// The content units (characters or bytes) in token order, from
    /// token `FIRST_CONTENT` on.
    pub alphabet: Vec<u32>,
    pub byte_level: bool,
}

impl Tokenized {
    pub fn vocab(&self) -> i64 {
        FIRST_CONTENT + self.alphabet.len() as i64
    }

    /// `vocab.json`: how tokens become text again.
    pub fn vocab_json(&self) -> serde_json::Value {
        let byte_level = self.byte_level;
        serde_json::json!({
            "tokenizer": if byte_level { "byte" } else { "char" },
            "special": {"PAD": 0, "BOS": 1, "EOS": 2, "SEP": 3},
            "units": self.alphabet.iter().map(|u| if byte_level { serde_json::json!(u) } else { serde_json::json!(char::from_u32(*u).map(String::from).unwrap_or_default()) }).collect::<Vec<_>>(),
        })
    }
}

/// Tokenizes records with a vocabulary built from their own characters (or bytes).
pub fn tokenize(records: &[(String, String, String)], byte_level: bool) -> Tokenized {
    let alphabet: BTreeSet<u32> =
        records.iter().flat_map(|(p, c, r)| [p, c, r].into_iter().flat_map(|s| units(s, byte_level))).collect();
    let index: std::collections::HashMap<u32, i64> =
        alphabet.iter().enumerate().map(|(i, u)| (*u, FIRST_CONTENT + i as i64)).collect();
    let encode = |s: &str| units(s, byte_level).into_iter().map(|u| index[&u]).collect::<Vec<i64>>();
    let prompts: Vec<Vec<i64>> = records.iter().map(|(p, _, _)| [vec![BOS], encode(p)].concat()).collect();
    let chosen: Vec<Vec<i64>> = records.iter().map(|(_, c, _)| [encode(c), vec![EOS]].concat()).collect();
    let rejected: Vec<Vec<i64>> = records.iter().map(|(_, _, r)| [encode(r), vec![EOS]].concat()).collect();
    let lp = prompts.iter().map(Vec::len).max().unwrap_or(1);
    let lr = chosen.iter().chain(&rejected).map(Vec::len).max().unwrap_or(1);
    let n = records.len() as i64;
    let mut pairs = Pairs {
        prompts: left_pad(&prompts, lp),
        chosen: right_pad(&chosen, lr),
        rejected: right_pad(&rejected, lr),
        columns: Default::default(),
    };
    pairs.columns.insert("split".into(), Tensor::zeros([n], (Kind::Int64, tch::Device::Cpu)));
    Tokenized { pairs, alphabet: alphabet.into_iter().collect(), byte_level }
}

/// Tokenizes records with a pretrained model's own tokenizer. A prompt is
/// encoded as the tokenizer encodes text by default (with the special
/// tokens its template adds: Llama's BOS, none for GPT-2) and, left empty by
/// that, starts with `eos` (GPT-2's habit); a response is its tokens and
/// `eos`. Ids are stored one up (see `ml::policy`): 0 stays PAD.
/// Tokenises records with a pretrained model's tokenizer. A prompt is
/// encoded as `tokenizer(text)` encodes it (its template's special tokens,
/// Llama's BOS), unless `rendered`: a chat template's text already holds
/// them, and is encoded as `apply_chat_template` encodes it, without.
pub fn tokenize_pretrained(
    records: &[(String, String, String)],
    tokenizer: &HfTokenizer,
    eos: i64,
    rendered: bool,
) -> Result<Pairs, String> {
    let stored = |ids: Vec<i64>| ids.into_iter().map(|i| i + 1).collect::<Vec<i64>>();
    let (mut prompts, mut chosen, mut rejected) = (vec![], vec![], vec![]);
    for (i, (p, c, r)) in records.iter().enumerate() {
        let at = |e: String| format!("record {}: {e}", i + 1);
        let mut prompt = if rendered { tokenizer.encode(p) } else { tokenizer.encode_with_template(p) }.map_err(at)?;
        if prompt.is_empty() {
            prompt.push(eos);
        }
        prompts.push(stored(prompt));
        chosen.push(stored([tokenizer.encode(c).map_err(at)?, vec![eos]].concat()));
        rejected.push(stored([tokenizer.encode(r).map_err(at)?, vec![eos]].concat()));
    }
    let lp = prompts.iter().map(Vec::len).max().unwrap_or(1);
    let lr = chosen.iter().chain(&rejected).map(Vec::len).max().unwrap_or(1);
    let mut pairs = Pairs {
        prompts: left_pad(&prompts, lp),
        chosen: right_pad(&chosen, lr),
        rejected: right_pad(&rejected, lr),
        columns: Default::default(),
    };
    pairs.columns.insert("split".into(), Tensor::zeros([records.len() as i64], (Kind::Int64, tch::Device::Cpu)));
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_byte_order_mark_and_crlf_read_as_plain_lines() {
        let text = "\u{feff}{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\r\n{\"prompt\": \"d\", \"chosen\": \"e\", \"rejected\": \"f\"}\r\n";
        let r = super::parse(text, "f.jsonl").unwrap();
        assert_eq!(r, vec![("a".into(), "b".into(), "c".into()), ("d".into(), "e".into(), "f".into())]);
        assert!(crate::hfdir::records::problems(text).is_empty());
    }

    #[test]
    fn every_bad_record_is_named_with_its_line() {
        let text = "{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n\n[1]\n{\"prompt\": \"a\"}\n";
        let p = crate::hfdir::records::problems(text);
        assert_eq!(p.iter().map(|x| x.0).collect::<Vec<_>>(), vec![3, 4]);
        assert!(p[1].1.contains("chosen, rejected"), "{:?}", p);
        assert_eq!(crate::hfdir::records::problems("").len(), 1);
    }
}
