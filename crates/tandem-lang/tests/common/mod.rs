//! Helpers shared by the language's tests (and, through `#[path]`, by the
//! workspace's): planning text or a file, and the repository's files by
//! their path from its root, wherever cargo runs the test from.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tandem_lang::check::{check_file, check_source, CheckOptions};
use tandem_lang::plan::lower::lower;
use tandem_lang::plan::{Key, Plan};
use tandem_lang::render::render;

/// A file of the repository, by its path from the repository's root.
pub fn at_root(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

/// Checks and plans text; panics with the rendered diagnostics on failure.
pub fn plan_text(text: &str) -> Plan {
    let checked = check_source("test.exp", text, CheckOptions::default());
    if !checked.is_ok() {
        panic!("{}\n---\n{}", render(&checked.diagnostics, false, 100), text);
    }
    lower(&checked.program).unwrap_or_else(|d| panic!("{}", render(&d, false, 100)))
}

pub fn plan_path(path: &Path) -> Result<Plan, String> {
    let checked = check_file(path, CheckOptions::default());
    if !checked.is_ok() {
        return Err(render(&checked.diagnostics, false, 80));
    }
    lower(&checked.program).map_err(|d| render(&d, false, 80))
}

pub fn keys(plan: &Plan) -> Vec<Key> {
    let mut k: Vec<Key> = plan.by_key.keys().copied().collect();
    k.sort();
    k
}

pub fn names(plan: &Plan) -> BTreeMap<String, Key> {
    plan.names()
}
