//! Calibration of the report's decision rule (src/report/stats.rs), by
//! simulation, with no training: per-prompt win/loss outcomes drawn for
//! methods whose runs differ by a random seed effect, prompts sharing a
//! difficulty across every run (as every policy is scored on the same
//! prompts against the same baseline samples).
//!
//! - Identical methods: at most 5% of 1,000 simulated reports of three
//!   claims may decide any claim (supports or contradicts) after Holm.
//! - A planted effect: the share of decided claims matches the power the
//!   power line predicts for that design, within 10 points.
//! - A difference of differences (a gap at one policy size against the gap
//!   at another) between four methods whose gaps are equal rejects near α,
//!   never above 7%, and decides a planted shrinkage as often as not at a
//!   size where its power is large.
//! - One seed per method never decides, however large the prompt-level
//!   difference: one seed's luck would pass for a method's effect.

use rand::Rng;
use tandem::ml::rng::{normal, stream, Stream};
use tandem::report::stats::{compare, compare_gaps, holm, power, Parts, ALPHA};

const PROMPTS: usize = 256;
const SEED_SD: f64 = 0.03;
const DIFFICULTY_SD: f64 = 0.15;

/// Per-prompt outcomes (1 win, 0 loss) of `seeds` runs of a method whose
/// win probability is ½ + `effect`, each run with its own seed effect.
fn method(r: &mut Stream, difficulty: &[f64], effect: f64, seeds: usize) -> Vec<Vec<f64>> {
    (0..seeds)
        .map(|_| {
            let run_effect = SEED_SD * normal(r);
            difficulty
                .iter()
                .map(|d| {
                    let p = (0.5 + d + run_effect + effect).clamp(0.01, 0.99);
                    if r.gen_range(0.0..1.0) < p {
                        1.0
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect()
}

fn difficulty(r: &mut Stream) -> Vec<f64> {
    (0..PROMPTS).map(|_| DIFFICULTY_SD * normal(r)).collect()
}

#[test]
fn identical_methods_decide_at_most_five_percent_of_reports() {
    let mut r = stream(17, "calibration/null", 0);
    let reports = 1000;
    let mut deciding = 0;
    for report in 0..reports {
        let claims: Vec<_> = (0..3)
            .map(|c| {
                let d = difficulty(&mut r);
                let (a, b) = (method(&mut r, &d, 0.0, 3), method(&mut r, &d, 0.0, 3));
                compare(&a, &b, true, (report * 3 + c) as u64).unwrap()
            })
            .collect();
        assert!(claims.iter().all(|c| c.decidable()));
        let adjusted = holm(&claims.iter().map(|c| c.p).collect::<Vec<_>>());
        if adjusted.iter().any(|p| *p < ALPHA) {
            deciding += 1;
        }
    }
    let share = deciding as f64 / reports as f64;
    eprintln!("identical methods: {deciding} of {reports} reports decided a claim");
    assert!(share <= 0.05, "{share} of reports decided a claim between identical methods");
    // And the rule is not vacuous: unadjusted single claims reject near α.
    let mut rejected = 0;
    for i in 0..reports {
        let d = difficulty(&mut r);
        let (a, b) = (method(&mut r, &d, 0.0, 3), method(&mut r, &d, 0.0, 3));
        rejected += usize::from(compare(&a, &b, true, i as u64).unwrap().p < ALPHA);
    }
    let rate = rejected as f64 / reports as f64;
    assert!((0.02..=0.07).contains(&rate), "a single claim's false-positive rate is {rate}, not near {ALPHA}");
}

#[test]
fn with_a_planted_effect_decisions_come_as_often_as_the_power_line_predicts() {
    for (effect, seeds) in [(0.05, 4), (0.08, 3), (0.03, 5)] {
        let mut r = stream(23, "calibration/power", (effect * 1000.0) as u64);
        let sims = 1000;
        let mut decided = 0;
        for i in 0..sims {
            let d = difficulty(&mut r);
            let (a, b) = (method(&mut r, &d, effect, seeds), method(&mut r, &d, 0.0, seeds));
            let c = compare(&a, &b, true, i as u64).unwrap();
            decided += usize::from(c.p < ALPHA && c.effect > 0.0);
        }
        // The prediction from the design's true variance parts: seed
        // variation, and per-prompt Bernoulli noise given the prompt
        // (difficulty is shared by both methods, so it cancels).
        let noise = 0.25 - DIFFICULTY_SD * DIFFICULTY_SD;
        let parts = Parts { seed_var: SEED_SD * SEED_SD, prompt_var: noise };
        let predicted = power(effect, parts, parts, seeds, PROMPTS);
        let observed = decided as f64 / sims as f64;
        eprintln!("effect {effect}, {seeds} seeds: decided {observed:.3}, predicted {predicted:.3}");
        assert!((observed - predicted).abs() <= 0.10, "effect {effect}: observed {observed}, predicted {predicted}");
    }
}

#[test]
fn one_seed_per_method_never_decides() {
    let mut r = stream(5, "calibration/one-seed", 0);
    let d = difficulty(&mut r);
    let (a, b) = (method(&mut r, &d, 0.2, 1), method(&mut r, &d, 0.0, 1));
    let c = compare(&a, &b, true, 0).unwrap();
    assert!(c.p < 0.001, "the prompt-level difference is plain: p = {}", c.p);
    assert!(!c.decidable());
}

#[test]
fn equal_gaps_are_called_different_near_alpha_and_a_planted_shrinkage_is_found() {
    let mut r = stream(23, "calibration/gaps", 0);
    let trials = 1000;
    let mut rejected = 0;
    for i in 0..trials {
        // The same gap (0.05) at both sizes; the two sizes score other runs
        // on the same prompts.
        let d = difficulty(&mut r);
        let (a, b) = (method(&mut r, &d, 0.05, 3), method(&mut r, &d, 0.0, 3));
        let (c, e) = (method(&mut r, &d, 0.05, 2), method(&mut r, &d, 0.0, 2));
        let g = compare_gaps((&a, &b), (&c, &e), true, i as u64).unwrap();
        assert!(g.decidable());
        rejected += usize::from(g.p < ALPHA);
    }
    let rate = rejected as f64 / trials as f64;
    eprintln!("equal gaps: {rejected} of {trials} contrasts rejected");
    assert!(rate <= 0.07, "equal gaps were called different in {rate} of trials");
    assert!(rate >= 0.01, "the contrast never rejects ({rate}): the test would be vacuous");
    // A gap of 0.25 at one size and none at the other, with 6 seeds a side:
    // found nearly always, and in the right direction.
    let mut found = 0;
    for i in 0..200 {
        let d = difficulty(&mut r);
        let (a, b) = (method(&mut r, &d, 0.25, 6), method(&mut r, &d, 0.0, 6));
        let (c, e) = (method(&mut r, &d, 0.0, 6), method(&mut r, &d, 0.0, 6));
        let g = compare_gaps((&a, &b), (&c, &e), true, i as u64).unwrap();
        found += usize::from(g.p < ALPHA && g.effect > 0.0);
    }
    assert!(found >= 180, "a planted shrinkage of 0.25 was found in {found} of 200 trials");
}
