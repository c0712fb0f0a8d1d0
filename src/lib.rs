//! tandem: a declarative lab for preference-optimization experiments.
//!
//! The pipeline, one folder per stage (see ARCHITECTURE.md):
//! `syntax` (text → AST) → `check` (AST → typed instances) →
//! `plan` (instances → content-keyed DAG) → `exec` (the cache store) →
//! `cli` (the commands).
pub mod check;
pub mod diagnostic;
pub mod exec;
pub mod ml;
pub mod plan;
pub mod syntax;
pub mod worlds;

#[cfg(feature = "cli")]
pub mod cli;
