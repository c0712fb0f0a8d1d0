//! tandem: a declarative lab for preference-optimization experiments.
//!
//! The pipeline, one folder per stage (see ARCHITECTURE.md):
//! `syntax` (text → AST) → `check` (AST → typed instances) →
//! `plan` (instances → content-keyed DAG of typed ops) → `exec` (computes
//! nodes into the cache, with `ml` and `worlds`) → `report` (figures,
//! report) and `cli` on top. `source` (files and spans) and `diagnostic`
//! (problems as miette reports) sit below them all. Imports only point down
//! this list; `tests/layers.rs` fails on one that points up.
pub mod check;
pub mod diagnostic;
pub mod exec;
pub mod hfdir;
pub mod ml;
pub mod plan;
pub mod report;
pub mod source;
pub mod syntax;
pub mod worlds;

#[cfg(feature = "cli")]
pub mod cli;
