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

/// The widths (in tokens) a file's records are cut or padded to; None: the
/// longest record's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Widths {
    pub prompt: Option<usize>,
    pub response: Option<usize>,
}

/// How many records [`Widths`] cut: prompts, and pairs with a response cut.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cut {
    pub prompts: i64,
    pub responses: i64,
}

/// Token lists as padded pairs of the given widths. A longer prompt keeps
/// its last tokens (what is nearest the response); a longer response keeps
/// its first `width − 1` tokens and its last (end-of-sequence), as a
/// policy's own sample ends when it reaches the last slot.
fn assemble(prompts: Vec<Vec<i64>>, chosen: Vec<Vec<i64>>, rejected: Vec<Vec<i64>>, widths: Widths) -> (Pairs, Cut) {
    let mut cut = Cut::default();
    let lp = widths.prompt.unwrap_or_else(|| prompts.iter().map(Vec::len).max().unwrap_or(1));
    let lr = widths.response.unwrap_or_else(|| chosen.iter().chain(&rejected).map(Vec::len).max().unwrap_or(1));
    let prompts: Vec<Vec<i64>> = prompts
        .into_iter()
        .map(|p| {
            if p.len() <= lp {
                return p;
            }
            cut.prompts += 1;
            p[p.len() - lp..].to_vec()
        })
        .collect();
    let end = |r: &[i64]| -> Vec<i64> { [&r[..lr - 1], &r[r.len() - 1..]].concat() };
    let (mut c2, mut r2) = (Vec::with_capacity(chosen.len()), Vec::with_capacity(rejected.len()));
    for (c, r) in chosen.into_iter().zip(rejected) {
        if c.len() > lr || r.len() > lr {
            cut.responses += 1;
        }
        c2.push(if c.len() > lr { end(&c) } else { c });
        r2.push(if r.len() > lr { end(&r) } else { r });
    }
    let n = prompts.len() as i64;
    let mut pairs = Pairs {
        prompts: left_pad(&prompts, lp),
        chosen: right_pad(&c2, lr),
        rejected: right_pad(&r2, lr),
        columns: Default::default(),
    };
    pairs.columns.insert("split".into(), Tensor::zeros([n], (Kind::Int64, tch::Device::Cpu)));
    (pairs, cut)
}

/// Holds out `fraction` of the rows (at least one, when asked for any) as
/// the validation split (split 1), drawn by a fixed seeded permutation so
/// that one file and fraction always hold out the same records.
pub fn hold_out(pairs: &mut Pairs, fraction: f64) -> Result<(), String> {
    if fraction <= 0.0 {
        return Ok(());
    }
    let n = pairs.len() as usize;
    let n_val = ((n as f64) * fraction).round().max(1.0) as usize;
    if n_val >= n {
        return Err(format!("val_fraction {fraction} of {n} records leaves no record to train on"));
    }
    let perm = crate::ml::rng::permutation(&mut crate::ml::rng::stream(0, "import/validation", 0), n);
    let mut split = vec![0i64; n];
    for &i in perm.iter().take(n_val) {
        split[i] = 1;
    }
    pairs.columns.insert("split".into(), Tensor::from_slice(&split));
    Ok(())
}

/// Tokenizes records with a vocabulary built from their own characters (or bytes).
pub fn tokenize(records: &[(String, String, String)], byte_level: bool) -> Tokenized {
    tokenize_within(records, byte_level, Widths::default()).0
}

/// [`tokenize`], cut or padded to `widths`.
pub fn tokenize_within(records: &[(String, String, String)], byte_level: bool, widths: Widths) -> (Tokenized, Cut) {
    let alphabet: BTreeSet<u32> =
        records.iter().flat_map(|(p, c, r)| [p, c, r].into_iter().flat_map(|s| units(s, byte_level))).collect();
    let index: std::collections::HashMap<u32, i64> =
        alphabet.iter().enumerate().map(|(i, u)| (*u, FIRST_CONTENT + i as i64)).collect();
    let encode = |s: &str| units(s, byte_level).into_iter().map(|u| index[&u]).collect::<Vec<i64>>();
    let prompts: Vec<Vec<i64>> = records.iter().map(|(p, _, _)| [vec![BOS], encode(p)].concat()).collect();
    let chosen: Vec<Vec<i64>> = records.iter().map(|(_, c, _)| [encode(c), vec![EOS]].concat()).collect();
    let rejected: Vec<Vec<i64>> = records.iter().map(|(_, _, r)| [encode(r), vec![EOS]].concat()).collect();
    let (pairs, cut) = assemble(prompts, chosen, rejected, widths);
    (Tokenized { pairs, alphabet: alphabet.into_iter().collect(), byte_level }, cut)
}

/// Tokenizes records with a pretrained model's own tokenizer. A prompt is
/// encoded as `tokenizer(text)` encodes it (its template's special tokens:
/// Llama's BOS, none for GPT-2) unless `rendered`: a chat template's text
/// already holds them, and is encoded as `apply_chat_template` encodes it,
/// without. A prompt left empty starts with `eos` (GPT-2's habit); a
/// response is its tokens and `eos`. Ids are stored one up (see
/// `ml::policy`): 0 stays PAD. Cut or padded to `widths`.
pub fn tokenize_pretrained(
    records: &[(String, String, String)],
    tokenizer: &HfTokenizer,
    eos: i64,
    (rendered, widths): (bool, Widths),
) -> Result<(Pairs, Cut), String> {
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
    Ok(assemble(prompts, chosen, rejected, widths))
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
