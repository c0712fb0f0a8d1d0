//! A pretrained model's own tokenizer (`tokenizer.json`), read with Hugging
//! Face's `tokenizers` crate: the same ids the model was trained on.

use std::path::Path;

pub struct HfTokenizer {
    inner: tokenizers::Tokenizer,
}

impl HfTokenizer {
    pub fn from_file(path: &Path) -> Result<HfTokenizer, String> {
        tokenizers::Tokenizer::from_file(path).map(|inner| HfTokenizer { inner }).map_err(|e| e.to_string())
    }

    /// Ids of a text, without the special tokens a template would add.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>, String> {
        let enc = self.inner.encode(text, false).map_err(|e| e.to_string())?;
        Ok(enc.get_ids().iter().map(|&i| i64::from(i)).collect())
    }

    /// Ids of a text with the special tokens the tokenizer's template adds
    /// (Llama's BOS; nothing for GPT-2), as `tokenizer(text)` gives them.
    pub fn encode_with_template(&self, text: &str) -> Result<Vec<i64>, String> {
        let enc = self.inner.encode(text, true).map_err(|e| e.to_string())?;
        Ok(enc.get_ids().iter().map(|&i| i64::from(i)).collect())
    }

    pub fn decode(&self, ids: &[i64]) -> Result<String, String> {
        let ids: Vec<u32> = ids
            .iter()
            .map(|&i| u32::try_from(i).map_err(|_| format!("token id {i} is out of range")))
            .collect::<Result<_, _>>()?;
        self.inner.decode(&ids, false).map_err(|e| e.to_string())
    }

    /// Writes tokenizer.json.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        self.inner.save(path, false).map_err(|e| e.to_string())
    }

    /// Ids the tokenizer can produce, added tokens included.
    pub fn vocab_size(&self) -> i64 {
        self.inner.get_vocab_size(true) as i64
    }

    /// The id of a token written as text (`<|endoftext|>`), if it has one.
    pub fn id_of(&self, token: &str) -> Option<i64> {
        self.inner.token_to_id(token).map(i64::from)
    }
}
