//! Pretrained models read from a local Hugging Face directory: `config.json`,
//! `*.safetensors` and `tokenizer.json`, as `save_pretrained` writes them.
//!
//! The directory as files (its config, tokenizer, digest, and the checks
//! that need no libtorch) is `crate::hfdir`'s; this module builds the model.
//!
//! - `gpt2`, `llama`: the two families, each a trunk built under the
//!   parameter names Hugging Face uses, so a checkpoint loads by name.
//! - `model`: the whole language model (trunk and head) with per-token
//!   log-probs and KV-cache decoding, and loading with every failure as an
//!   `HfError` (a truncated file, a missing tensor, a tokenizer too large for
//!   the embedding), never a panic.
//!
//! The model's identity is the blake3 digest of the files it reads
//! (`hfdir::content_digest`), never its path.

mod attention;
pub mod gpt2;
pub mod llama;
pub mod model;

pub use crate::hfdir::{content_digest, Family, HfConfig, HfError, HfTokenizer};
pub use attention::Cache;
pub use model::Pretrained;
