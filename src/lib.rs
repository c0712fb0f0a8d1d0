//! tandem: a declarative lab for preference-optimization experiments.
//!
//! The pipeline, one folder per stage (see ARCHITECTURE.md):
//! `syntax` (text → AST) → `check` (AST → typed instances) →
//! `plan` (instances → content-keyed DAG) → `exec` (computes nodes into the
//! cache, with `ml` and `worlds`) → `report` (figures, report) and `cli`.
pub mod check;
pub mod diagnostic;
pub mod exec;
pub mod ml;
pub mod plan;
pub mod report;
pub mod syntax;
pub mod worlds;

#[cfg(feature = "cli")]
pub mod cli;
