//! What can go wrong with a model directory, each as a diagnostic that says
//! what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum HfError {
    #[error("`{}` is missing", .0.display())]
    #[diagnostic(
        code(tandem::pretrained::missing),
        help("a pretrained model directory holds config.json, *.safetensors and tokenizer.json, as `save_pretrained` writes them")
    )]
    Missing(PathBuf),
    #[error("`{}`: {msg}", path.display())]
    #[diagnostic(code(tandem::pretrained::config), help("supported architectures: {}", crate::hfdir::config::SUPPORTED.join(", ")))]
    Config { path: PathBuf, msg: String },
    #[error("`{}` is not a readable safetensors file: {msg}", path.display())]
    #[diagnostic(
        code(tandem::pretrained::weights),
        help("the file may be truncated or of another format; write it again with `save_pretrained`")
    )]
    Weights { path: PathBuf, msg: String },
    #[error("the weights in `{}` do not fit a {model_type} of this config: {msg}", dir.display())]
    #[diagnostic(
        code(tandem::pretrained::shapes),
        help("config.json and the safetensors files must come from one model")
    )]
    Shapes { dir: PathBuf, model_type: String, msg: String },
    #[error("`{}` is not a readable tokenizer: {msg}", path.display())]
    #[diagnostic(
        code(tandem::pretrained::tokenizer),
        help("tokenizer.json is the file Hugging Face's fast tokenizers write")
    )]
    Tokenizer { path: PathBuf, msg: String },
    #[error("`{}` knows {tokens} tokens, but the model's embedding has {vocab} rows", path.display())]
    #[diagnostic(
        code(tandem::pretrained::vocabulary),
        help("the tokenizer and the model do not belong together: use the tokenizer the model was trained with")
    )]
    VocabMismatch { path: PathBuf, tokens: i64, vocab: i64 },
    #[error("{tokens} tokens are more than the {context} positions this GPT-2 has")]
    #[diagnostic(code(tandem::pretrained::too_long), help("shorten the text (or the continuation asked for)"))]
    TooLong { tokens: usize, context: i64 },
    #[error("`{}` exists already", .0.display())]
    #[diagnostic(
        code(tandem::pretrained::exists),
        help("choose a new directory: a model is never written over another")
    )]
    Exists(PathBuf),
    #[error("cannot read `{}`", path.display())]
    #[diagnostic(code(tandem::pretrained::io))]
    Io { path: PathBuf, source: std::io::Error },
}
