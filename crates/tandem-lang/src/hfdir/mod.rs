//! A Hugging Face model directory as files on disk, read without libtorch:
//! which files make the model (`config.json`, `tokenizer.json`,
//! `*.safetensors`), their content digest (the model's identity in keys),
//! the architecture its config names, its tokenizer, and whether its weight
//! files are whole.
//!
//! It sits below every stage so that planning can refuse a directory tandem
//! cannot use (an unsupported architecture, a truncated weight file, a
//! tokenizer that does not fit the embedding) before anything is computed,
//! and `ml::hf` can build the model from the same reading.
//!
//! - `config`: the architecture and its shapes, or the list of what is supported;
//! - `tokenizer`: the directory's own tokenizer through the `tokenizers` crate;
//! - `files`: the directory's files, their digest, and [`files::inspect`],
//!   everything checked that can be checked without loading the weights;
//! - `error`: every failure as a miette diagnostic;
//! - `records`: the JSONL preference record format, and every bad line of a file;
//! - `chat`: conversational records rendered with the tokenizer's chat template;
//! - `parquet`: the same records in a Parquet file, read as JSONL lines.

pub mod chat;
pub mod config;
pub mod error;
pub mod files;
pub mod parquet;
pub mod records;
pub mod tokenizer;

pub use config::{Family, HfConfig};
pub use error::HfError;
pub use files::{content_digest, inspect, model_files, Inspected};
pub use tokenizer::HfTokenizer;
