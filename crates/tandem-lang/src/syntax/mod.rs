//! Stage 1: text → AST. The grammar lives in `grammar/exp.pest`.
pub mod ast;
pub mod number;
pub mod parser;
