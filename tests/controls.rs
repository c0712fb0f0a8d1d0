//! The instrument's controls (experiments/controls.exp), run from an empty
//! cache through the executor and the report's one deciding path
//! (`verdicts::decide` over every figure of the file, one Holm family):
//! - positive control: online must be found above offline where the best
//!   tokens are hidden from offline's data ("holds");
//! - negative control: online must not be found above offline in the
//!   additive, full-support world;
//! - A/A: online against itself on other seeds must not be decided either
//!   way, except as level within the file's margin.
//!
//! The predictions are the file's, stated before it was first run.

mod common;

use std::path::Path;

use tandem::exec::Store;
use tandem::plan::Op;
use tandem::report::figures::{figures_of, Figure};
use tandem::report::verdicts::{decide, sentence, Verdict};

#[test]
fn the_instrument_finds_the_known_effect_and_not_the_absent_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let plan = common::plan_path(Path::new("experiments/controls.exp")).unwrap();
    common::run_portable(&plan, &store, 2);

    let rows = tandem::report::results::eval_rows(&plan, &store);
    let figures: Vec<Figure> = plan
        .ordered()
        .into_iter()
        .filter(|n| matches!(n.op, Op::Figure(_)))
        .flat_map(|n| figures_of(n, &rows))
        .collect();
    let d = decide(&figures);
    let verdict = |figure: &str| -> (Verdict, String) {
        let c = d.claims.iter().find(|c| figures[c.figure].name == figure).unwrap();
        (c.verdict(), sentence(&figures[c.figure], c))
    };
    let (positive, said_positive) = verdict("positive");
    let (negative, said_negative) = verdict("negative");
    let (a_a, said_a_a) = verdict("a_a");
    let all = format!("positive: {said_positive}\nnegative: {said_negative}\nA/A: {said_a_a}");
    eprintln!("{all}");
    assert_eq!(positive, Verdict::Holds, "{all}");
    assert_ne!(negative, Verdict::Holds, "{all}");
    assert!(matches!(a_a, Verdict::Undecided | Verdict::Level | Verdict::NotComparable), "{all}");
    // Every test had three training seeds a side: the verdicts weigh runs.
    for c in &d.claims {
        let a = c.primary.as_ref().expect("every control has a test");
        assert_eq!(a.comparison.runs, (3, 3), "{all}");
    }
    // The README and docs/studies.md quote these numbers: they must be the
    // ones computed (under `portable`, every AVX2 host computes the same).
    let docs = [std::fs::read_to_string("README.md").unwrap(), std::fs::read_to_string("docs/studies.md").unwrap()];
    for figure in ["positive", "negative", "a_a"] {
        let c = d.claims.iter().find(|c| figures[c.figure].name == figure).unwrap();
        let x = &c.primary.as_ref().unwrap().comparison;
        let quoted = format!("{:+.3} [{:+.3}, {:+.3}]", x.effect, x.low, x.high).replace('-', "\u{2212}");
        for (doc, name) in docs.iter().zip(["README.md", "docs/studies.md"]) {
            assert!(doc.contains(&quoted), "{name} does not quote the {figure} control as computed: {quoted}\n{all}");
        }
    }
}
