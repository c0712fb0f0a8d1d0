//! Pretrained models read from a local Hugging Face directory: `config.json`,
//! `*.safetensors` and `tokenizer.json`, as `save_pretrained` writes them.
//!
//! - `config`: which architecture the directory holds, and its shapes;
//!   anything else is refused with the list of what is supported.
//! - `gpt2`, `llama`: the two families, each a trunk built under the
//!   parameter names Hugging Face uses, so a checkpoint loads by name.
//! - `model`: the whole language model (trunk and head) with per-token
//!   log-probs and KV-cache decoding, and loading with every failure as an
//!   `HfError` (a truncated file, a missing tensor, a tokenizer too large for
//!   the embedding), never a panic.
//! - `text`: the directory's own tokenizer, through Hugging Face's
//!   `tokenizers` crate.
//!
//! The model's identity is the blake3 digest of the files it reads
//! (`model::content_digest`), never its path.

mod attention;
pub mod config;
pub mod gpt2;
pub mod llama;
pub mod model;
pub mod text;

pub use config::{Family, HfConfig};
pub use model::{content_digest, HfError, Pretrained};
