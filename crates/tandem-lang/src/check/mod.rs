//! Stage 2: AST → a checked [`Program`].
//!
//! `load` reads the file and its imports, `names` builds one namespace and the
//! dependency order, `derive` resolves `with` derivations into plain calls,
//! `expand` turns sweeps into instances and `eval` types every argument
//! against the constructor table in `schema`. Every problem found along the
//! way is collected, so a file with three mistakes reports all three.

pub mod claims;
pub mod derive;
pub mod eval;
pub mod expand;
pub mod lint;
pub mod load;
pub mod names;
pub mod overrides;
pub mod program;
pub mod reference;
pub mod schema;
pub mod validate;

use std::collections::HashSet;
use std::path::Path;

use crate::diagnostic::{Code, Diagnostic, Problem};
pub use program::{Program, Value};

#[derive(Debug, Clone, Copy)]
pub struct CheckOptions {
    /// The most instances one declaration may expand to.
    pub max_instances: usize,
    /// The most nodes the plan may have; every instance is at least one, so
    /// the checker stops expanding once the instances alone pass it.
    pub max_nodes: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions { max_instances: 100_000, max_nodes: DEFAULT_MAX_NODES }
    }
}

/// The most nodes a plan may have unless told otherwise (`--max-nodes`).
pub const DEFAULT_MAX_NODES: usize = 1_000_000;

/// The most errors reported for one file; the rest are counted.
pub const MAX_REPORTED: usize = 100;

/// The outcome of checking one root file.
pub struct Checked {
    pub program: Program,
    /// Errors: any one of them means the program is not planned.
    pub diagnostics: Vec<Diagnostic>,
    /// Likely mistakes in a valid program ([`lint`]); printed, never fatal.
    pub warnings: Vec<Diagnostic>,
}

impl Checked {
    pub fn is_ok(&self) -> bool {
        self.diagnostics.is_empty()
    }
}

pub fn check_file(path: &Path, opts: CheckOptions) -> Checked {
    check_file_with(path, opts, &[])
}

/// Checks an experiment file with command-line settings (`--set
/// PATH=VALUE`, [`overrides`]) applied to it first.
pub fn check_file_with(path: &Path, opts: CheckOptions, settings: &[String]) -> Checked {
    let mut problems: Vec<Problem> = vec![];
    let mut loaded = load::load(path, &mut problems);
    overrides::apply(&mut loaded, settings, &mut problems);
    finish(loaded, problems, opts)
}

/// Checks an experiment given as text; imports are relative to the current folder.
pub fn check_source(name: &str, text: &str, opts: CheckOptions) -> Checked {
    let mut problems: Vec<Problem> = vec![];
    let dir = std::env::current_dir().unwrap_or_default();
    let loaded = load::load_text(name, &dir, text, &mut problems);
    finish(loaded, problems, opts)
}

fn finish(loaded: load::Loaded, mut problems: Vec<Problem>, opts: CheckOptions) -> Checked {
    let ns = names::build(&loaded.files, &mut problems);
    let mut x = expand::Expander::new(&ns, &loaded.sources, opts.max_instances);
    x.max_total = opts.max_nodes;
    x.run();
    problems.extend(std::mem::take(&mut x.problems));
    problems.extend(claims::meaningless_claims(&x));
    problems.extend(lint::lint(&x));

    // A literal the parser could not use stands in as a placeholder; what
    // the checker says about that placeholder is an echo, not news.
    let poisoned: Vec<crate::source::Span> = loaded.files.iter().flat_map(|f| f.poisoned.iter().copied()).collect();
    problems.retain(|p| {
        matches!(p.code, crate::diagnostic::Code::BadNumber | crate::diagnostic::Code::Syntax)
            || !p.span.is_some_and(|s| {
                poisoned
                    .iter()
                    .any(|q| q.file == s.file && q.start < s.end.max(s.start + 1) && s.start < q.end.max(q.start + 1))
            })
    });

    // One report per distinct problem (sweeps can hit the same one many times),
    // in source order.
    let mut seen = HashSet::new();
    problems.retain(|p| seen.insert((p.code, p.span.map(|s| (s.file, s.start, s.end)), p.message.clone())));
    problems.sort_by_key(|p| p.span.map(|s| (s.file, s.start)));
    // Past a hundred, more problems are noise (and each one costs a scan of
    // its file to render): show the first hundred errors and count the rest.
    let errors = problems.iter().filter(|p| !p.code.is_warning()).count();
    if errors > MAX_REPORTED {
        let mut kept = 0;
        problems.retain(|p| {
            kept += usize::from(!p.code.is_warning());
            p.code.is_warning() || kept <= MAX_REPORTED
        });
        problems.push(
            Problem::without_span(
                Code::TooManyProblems,
                format!("and {} more problems not shown", errors - MAX_REPORTED),
            )
            .help("fix the ones above first; many of the rest are likely the same mistake"),
        );
    }
    let (warnings, errors): (Vec<Problem>, Vec<Problem>) = problems.into_iter().partition(|p| p.code.is_warning());
    let diagnostics = errors.into_iter().map(|p| p.with_sources(&loaded.sources)).collect();
    let warnings = warnings.into_iter().map(|p| p.with_sources(&loaded.sources)).collect();
    let program = Program { sources: loaded.sources.clone(), decls: x.decls, instances: x.instances };
    Checked { program, diagnostics, warnings }
}

/// What the checker's own unit tests compare: each error of a text as its
/// code and the text its primary span covers, in file order.
#[cfg(test)]
pub(crate) fn errors_of(text: &str) -> Vec<(Code, String)> {
    spanned(&check_source("t.exp", text, CheckOptions::default()).diagnostics, text)
}

/// The same for a valid text's warnings.
#[cfg(test)]
pub(crate) fn warnings_of(text: &str) -> Vec<(Code, String)> {
    spanned(&check_source("t.exp", text, CheckOptions::default()).warnings, text)
}

#[cfg(test)]
fn spanned(found: &[Diagnostic], text: &str) -> Vec<(Code, String)> {
    found
        .iter()
        .map(|d| {
            let covered = d.problem.span.map(|s| text[s.start..s.end].to_string()).unwrap_or_default();
            (d.problem.code, covered)
        })
        .collect()
}
