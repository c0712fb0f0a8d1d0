//! The corpus under tests/corpus: every file in ok/ must check and plan, and
//! its plan (keys, kinds, names, inputs) is pinned by a snapshot; every file
//! in err/ must fail, and its rendered diagnostics (no color, width 80) are
//! pinned too. A changed key or message shows up as a snapshot diff.
//!
//! A file may start with `# max-nodes: N` to be checked under a smaller plan
//! bound than the default (`--max-nodes N`).

mod common;

use std::path::{Path, PathBuf};

use tandem::exec::Store;

fn files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(Path::new("tests/corpus").join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "exp"))
        .collect();
    v.sort();
    v
}

/// The options a corpus file asks for in its first line.
fn options(f: &Path) -> tandem::check::CheckOptions {
    let mut opts = tandem::check::CheckOptions::default();
    let text = std::fs::read_to_string(f).unwrap_or_default();
    if let Some(n) = text.lines().next().and_then(|l| l.strip_prefix("# max-nodes: ")) {
        opts.max_nodes = n.trim().parse().expect("a number after `# max-nodes:`");
    }
    opts
}

/// What checking and then planning a file reports.
fn diagnostics(f: &Path) -> Vec<tandem::diagnostic::Diagnostic> {
    let opts = options(f);
    let checked = tandem::check::check_file(f, opts);
    if !checked.is_ok() {
        return checked.diagnostics;
    }
    let numerics = tandem::plan::op::Numerics::Portable;
    tandem::plan::lower::lower_bounded(&checked.program, numerics, opts.max_nodes).err().unwrap_or_default()
}

// `insta::glob!` checks every file and reports all that fail, so one broken
// file does not hide the others.

#[test]
fn valid_files_plan_and_their_keys_are_pinned() {
    let store = Store::open_existing("tests/corpus/no-cache-here");
    insta::glob!("corpus/ok/*.exp", |f| {
        let plan = common::plan_path(f).unwrap_or_else(|e| panic!("{} should be valid:\n{e}", f.display()));
        let text = tandem::cli::view::plan_text(
            &plan,
            &store,
            Path::new("tests/corpus/ok").join(f.file_name().unwrap()).as_path(),
        );
        insta::assert_snapshot!(text);
    });
}

#[test]
fn invalid_files_fail_with_pinned_diagnostics() {
    insta::glob!("corpus/err/*.exp", |f| {
        let rel = Path::new("tests/corpus/err").join(f.file_name().unwrap());
        let found = diagnostics(&rel);
        assert!(!found.is_empty(), "{} should have problems", rel.display());
        insta::assert_snapshot!(tandem::cli::render::render(&found, false, 80));
    });
}

#[test]
fn files_with_likely_mistakes_plan_and_their_warnings_are_pinned() {
    insta::glob!("corpus/warn/*.exp", |f| {
        let rel = Path::new("tests/corpus/warn").join(f.file_name().unwrap());
        let checked = tandem::check::check_file(&rel, options(&rel));
        assert!(checked.is_ok(), "{} should be valid", rel.display());
        tandem::plan::lower::lower(&checked.program).expect("a valid file plans");
        assert!(!checked.warnings.is_empty(), "{} should have warnings", rel.display());
        assert!(checked.warnings.iter().all(|w| w.code().is_warning()));
        insta::assert_snapshot!(tandem::cli::render::render(&checked.warnings, false, 80));
    });
}

#[test]
fn valid_files_have_no_warnings() {
    for f in files("ok") {
        let checked = tandem::check::check_file(&f, options(&f));
        let codes: Vec<&str> = checked.warnings.iter().map(|w| w.code().as_str()).collect();
        assert!(codes.is_empty(), "{}: {codes:?}", f.display());
    }
}

#[test]
fn every_diagnostic_code_has_a_corpus_file_that_shows_it() {
    let mut shown = std::collections::HashSet::new();
    for f in files("err") {
        for d in diagnostics(&f) {
            shown.insert(d.code());
        }
    }
    for f in files("warn") {
        for d in tandem::check::check_file(&f, options(&f)).warnings {
            shown.insert(d.code());
        }
    }
    // `internal` is the checker and planner disagreeing: a bug, never an
    // input's fault. `bad_setting` comes from the command line, not from a
    // file: tests/cli.rs shows it.
    use tandem::diagnostic::Code;
    let missing: Vec<&str> = Code::ALL
        .iter()
        .filter(|c| !matches!(c, Code::Internal | Code::BadSetting) && !shown.contains(c))
        .map(|c| c.as_str())
        .collect();
    assert!(missing.is_empty(), "no file in tests/corpus/err shows {missing:?}");
}

#[test]
fn every_diagnostic_has_a_location_a_label_and_help() {
    for f in files("err") {
        let found = diagnostics(&f);
        assert!(!found.is_empty(), "{}", f.display());
        for d in &found {
            assert!(d.problem.help.is_some(), "{}: `{}` has no help", f.display(), d.problem.message);
            // Only an unreadable file and the count of problems not shown have no place.
            use tandem::diagnostic::Code;
            if !matches!(d.code(), Code::Io | Code::TooManyProblems) || d.problem.span.is_some() {
                let (file, line, col) = d.location.clone().expect("a location");
                assert!(!file.is_empty() && line >= 1 && col >= 1);
                assert!(!d.problem.label.is_empty());
            }
        }
    }
}

#[test]
fn three_mistakes_are_all_reported() {
    let checked = tandem::check::check_file(Path::new("tests/corpus/err/three_mistakes.exp"), Default::default());
    let codes: Vec<&str> = checked.diagnostics.iter().map(|d| d.code().as_str()).collect();
    assert_eq!(codes, ["tandem::wrong_kind", "tandem::out_of_range", "tandem::unknown_name"]);
    let lines: Vec<usize> = checked.diagnostics.iter().map(|d| d.location.as_ref().unwrap().1).collect();
    assert_eq!(lines, [7, 8, 9]);
}
