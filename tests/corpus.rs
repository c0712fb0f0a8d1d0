//! The corpus under tests/corpus: every file in ok/ must check and plan, and
//! its plan (keys, kinds, names, inputs) is pinned by a snapshot; every file
//! in err/ must fail, and its rendered diagnostics (no color, width 80) are
//! pinned too. A changed key or message shows up as a snapshot diff.

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

fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

#[test]
fn valid_files_plan_and_their_keys_are_pinned() {
    let store = Store::open_existing("tests/corpus/no-cache-here");
    for f in files("ok") {
        let plan = common::plan_path(&f).unwrap_or_else(|e| panic!("{} should be valid:\n{e}", f.display()));
        let text = tandem::cli::view::plan_text(&plan, &store, &f);
        insta::assert_snapshot!(format!("plan_{}", stem(&f)), text);
    }
}

#[test]
fn invalid_files_fail_with_pinned_diagnostics() {
    for f in files("err") {
        let rendered = match common::plan_path(&f) {
            Ok(_) => panic!("{} should have problems", f.display()),
            Err(r) => r,
        };
        insta::assert_snapshot!(format!("diag_{}", stem(&f)), rendered);
    }
}

#[test]
fn every_diagnostic_has_a_location_a_label_and_help() {
    for f in files("err") {
        let checked = tandem::check::check_file(&f, Default::default());
        assert!(!checked.diagnostics.is_empty(), "{}", f.display());
        for d in &checked.diagnostics {
            assert!(d.problem.help.is_some(), "{}: `{}` has no help", f.display(), d.problem.message);
            if d.code() != tandem::diagnostic::Code::Io || d.problem.span.is_some() {
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
