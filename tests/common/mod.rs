//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use tandem::check::{check_file, check_source, CheckOptions};
use tandem::plan::lower::lower;
use tandem::plan::{Key, Plan};

/// Checks and plans text; panics with the rendered diagnostics on failure.
pub fn plan_text(text: &str) -> Plan {
    let checked = check_source("test.exp", text, CheckOptions::default());
    if !checked.is_ok() {
        panic!("{}\n---\n{}", tandem::cli::render::render(&checked.diagnostics, false, 100), text);
    }
    lower(&checked.program).unwrap_or_else(|d| panic!("{}", tandem::cli::render::render(&d, false, 100)))
}

pub fn plan_path(path: &Path) -> Result<Plan, String> {
    let checked = check_file(path, CheckOptions::default());
    if !checked.is_ok() {
        return Err(tandem::cli::render::render(&checked.diagnostics, false, 80));
    }
    lower(&checked.program).map_err(|d| tandem::cli::render::render(&d, false, 80))
}

pub fn keys(plan: &Plan) -> Vec<Key> {
    let mut k: Vec<Key> = plan.by_key.keys().copied().collect();
    k.sort();
    k
}

pub fn names(plan: &Plan) -> BTreeMap<String, Key> {
    plan.names()
}
