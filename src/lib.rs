//! tandem: a declarative lab for preference-optimization experiments.
//!
//! The pipeline, one folder per stage (see ARCHITECTURE.md):
//! `syntax` (text → AST) → `check` (AST → typed instances) →
//! `plan` (instances → content-keyed DAG of typed ops) → `exec` (computes
//! nodes into the cache, with `ml` and `worlds`) → `report` (figures,
//! report) and `cli` on top. `source` (files and spans) and `diagnostic`
//! (problems as miette reports) sit below them all. `syntax`, `check`,
//! `plan`, `hfdir`, `source` and `diagnostic` are the `tandem-lang` crate
//! (crates/tandem-lang), built without libtorch, re-exported here. Imports only point down
//! this list; `tests/layers.rs` fails on one that points up.
// No function over 120 lines (clippy.toml sets the bound; `make lint`
// denies it): a long function is split by phase or by type arm.
#![warn(clippy::too_many_lines)]

pub mod exec;
pub mod ml;
pub mod report;
pub mod worlds;

// The language and the formats read at plan time: the `tandem-lang` crate,
// built without libtorch, under the names the pipeline has always used.
#[cfg(feature = "cli")]
pub use tandem_lang::render;
pub use tandem_lang::{check, diagnostic, hfdir, plan, source, syntax};

#[cfg(feature = "cli")]
pub mod cli;
