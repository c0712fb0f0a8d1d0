//! tandem's language, built without libtorch: the front half of the
//! pipeline (see ARCHITECTURE.md).
//!
//! `syntax` (text → AST) → `check` (AST → typed instances) → `plan`
//! (instances → content-keyed DAG of typed ops). `source` (files and spans)
//! and `diagnostic` (problems as miette reports) sit below them, and
//! `hfdir` (a Hugging Face model directory, preference records in JSONL and
//! Parquet) beside them, read at plan time; `render` draws diagnostics
//! for people (miette's graphical handler). The `tandem` crate computes the
//! plan (`exec`, `ml`, `worlds`) and reports on it; it re-exports these
//! modules under the same names. Imports only point down this list;
//! `tests/layers.rs` of the workspace fails on one that points up.
// No function over 120 lines (clippy.toml at the workspace root sets the
// bound; `make lint` denies it): a long function is split by phase or by
// type arm.
#![warn(clippy::too_many_lines)]

pub mod check;
pub mod diagnostic;
pub mod hfdir;
pub mod plan;
#[cfg(feature = "render")]
pub mod render;
pub mod source;
pub mod syntax;
