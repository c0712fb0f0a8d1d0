//! Synthetic worlds standing in for the paper's four tasks, and the data
//! they generate.
pub mod generate;
pub mod jsonl;
pub mod oracle;

pub use oracle::{Flavour, World};
