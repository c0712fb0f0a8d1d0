//! What a trade-off claim estimates, built from each run's checkpoints:
//! per run (seed) one vector of per-prompt outcomes, which `stats.rs` then
//! compares.
//!
//! The rules, fixed before any verdict under them was looked at:
//!
//! - **Support.** A run's step 0 is the starting policy (SFT, KL 0), shared
//!   by every method: an anchor, not evidence about a method. Only trained
//!   checkpoints (step > 0) are support. The comparison window is
//!   [max over runs of their smallest trained KL, min over runs of their
//!   largest]: every run has trained checkpoints at both of its ends. A
//!   window that is empty, or in which a run has fewer than two trained
//!   checkpoints, makes the claim "not comparable at matched KL" and
//!   reports each method's trained KL range ([`NotComparable`]).
//! - **The budgeted frontier** (the paper's estimand: online is a Pareto
//!   improvement, so at any KL budget the best reachable win rate is
//!   higher): at each of [`BUDGETS`] budgets evenly spaced over the window,
//!   each run's best point with KL ≤ budget (a trained checkpoint, or where
//!   its training path first crosses the budget). "Best" is chosen without
//!   the outcomes it reports: for a run (seed) s and each half of the
//!   prompts, the candidate (grid member × step) is chosen by its mean on
//!   the *other* seeds' runs and the *other* half of the prompts, and s's
//!   own outcomes on this half are what enters. So neither a grid's size
//!   nor a lucky seed or prompt raises its frontier. With one seed the
//!   choice falls back to the other half of the prompts only (and such a
//!   comparison cannot decide anyway). The frontier is averaged over the
//!   budgets.
//! - **The matched-KL curve** (second estimand): each run's outcomes
//!   interpolated at [`CURVE_POINTS`] KL values over the window, along the
//!   run's training path (consecutive trained checkpoints in step order,
//!   the first crossing of that KL), never among checkpoints re-sorted by
//!   a noisy KL; a grid's members are chosen over the same way as the
//!   frontier's candidates. Averaged over the window.

use std::collections::BTreeMap;

/// Budgets of the frontier, evenly spaced over the window, ends included.
pub const BUDGETS: usize = 10;

/// KL values of the matched curve, evenly spaced over the window.
pub const CURVE_POINTS: usize = 20;

/// Trained checkpoints every run needs inside the window.
pub const MIN_TRAINED: usize = 2;

/// One checkpoint of one run: its step, its KL and its per-unit outcomes.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub step: i64,
    pub kl: f64,
    pub units: Vec<f64>,
}

/// One grid member of a method trained with one seed: its checkpoints.
#[derive(Debug, Clone)]
pub struct Run {
    /// The member's name within the method (its non-seed sweep axes): the
    /// same member in every replicate has the same name.
    pub member: String,
    pub path: Vec<Checkpoint>,
}

/// One seed of a method: its grid members' runs.
pub type Replicate = Vec<Run>;

/// Why a matched comparison could not be made, with each method's trained
/// KL range (smallest and largest trained checkpoint KL over its runs).
#[derive(Debug, Clone, PartialEq)]
pub struct NotComparable {
    pub ranges: [Option<(f64, f64)>; 2],
    pub why: String,
}

/// An estimand computed for two methods: per replicate of each, the
/// per-unit outcomes it compares, and the window it was computed over.
#[derive(Debug, Clone)]
pub struct PerRun {
    pub window: (f64, f64),
    pub a: Vec<Vec<f64>>,
    pub b: Vec<Vec<f64>>,
}

fn trained(run: &Run) -> impl Iterator<Item = &Checkpoint> {
    run.path.iter().filter(|c| c.step > 0 && c.kl.is_finite())
}

/// A replicate's trained KL range over its members.
fn trained_range(rep: &Replicate) -> Option<(f64, f64)> {
    let kls: Vec<f64> = rep.iter().flat_map(trained).map(|c| c.kl).collect();
    if kls.is_empty() {
        return None;
    }
    Some((kls.iter().copied().fold(f64::INFINITY, f64::min), kls.iter().copied().fold(f64::NEG_INFINITY, f64::max)))
}

fn method_range(method: &[Replicate]) -> Option<(f64, f64)> {
    let rs: Vec<(f64, f64)> = method.iter().filter_map(trained_range).collect();
    if rs.is_empty() {
        return None;
    }
    Some((
        rs.iter().map(|r| r.0).fold(f64::INFINITY, f64::min),
        rs.iter().map(|r| r.1).fold(f64::NEG_INFINITY, f64::max),
    ))
}

/// The window every replicate of both methods has trained support in.
pub fn window(a: &[Replicate], b: &[Replicate]) -> Result<(f64, f64), NotComparable> {
    let fail = |why: String| NotComparable { ranges: [method_range(a), method_range(b)], why };
    if a.is_empty() || b.is_empty() {
        return Err(fail("a method has no runs".into()));
    }
    let mut ranges = vec![];
    for rep in a.iter().chain(b) {
        match trained_range(rep) {
            Some(r) => ranges.push(r),
            None => return Err(fail("a run has no trained checkpoint (only its starting policy)".into())),
        }
    }
    let lo = ranges.iter().map(|r| r.0).fold(f64::NEG_INFINITY, f64::max);
    let hi = ranges.iter().map(|r| r.1).fold(f64::INFINITY, f64::min);
    if hi <= lo {
        return Err(fail("the methods' trained checkpoints do not overlap in KL".into()));
    }
    let thin = a
        .iter()
        .chain(b)
        .any(|rep| rep.iter().flat_map(trained).filter(|c| c.kl >= lo && c.kl <= hi).count() < MIN_TRAINED);
    if thin {
        return Err(fail(format!(
            "over KL {lo:.2}–{hi:.2}, where every run has trained checkpoints, a run has fewer than {MIN_TRAINED}"
        )));
    }
    Ok((lo, hi))
}

fn even(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    (0..n).map(|i| lo + (hi - lo) * i as f64 / (n - 1).max(1) as f64).collect()
}

/// A run's per-unit outcomes where its training path first crosses `kl`,
/// interpolated linearly between the two consecutive trained checkpoints
/// (in step order) that bracket it; None if the path never reaches it.
pub fn along_path(run: &Run, kl: f64) -> Option<Vec<f64>> {
    let mut path: Vec<&Checkpoint> = trained(run).collect();
    path.sort_by_key(|c| c.step);
    if path.len() == 1 && path[0].kl == kl {
        return Some(path[0].units.clone());
    }
    for w in path.windows(2) {
        let (from, to) = (w[0], w[1]);
        let (lo, hi) = (from.kl.min(to.kl), from.kl.max(to.kl));
        if kl >= lo && kl <= hi {
            let t = if to.kl != from.kl { (kl - from.kl) / (to.kl - from.kl) } else { 0.0 };
            return Some(from.units.iter().zip(&to.units).map(|(x, y)| x + t * (y - x)).collect());
        }
    }
    None
}

/// A candidate's per-unit outcomes in one replicate, by its name.
type Candidates = BTreeMap<String, Vec<f64>>;

fn half_mean(units: &[f64], parity: usize) -> f64 {
    let (mut s, mut n) = (0.0, 0usize);
    for x in units.iter().skip(parity).step_by(2) {
        s += x;
        n += 1;
    }
    if n == 0 {
        f64::NAN
    } else {
        s / n as f64
    }
}

/// Per replicate, the outcomes of a candidate chosen without them: for each
/// half of the units (even, odd), the candidate eligible in this replicate
/// with the best mean on the other replicates' other half (the replicate's
/// own other half when it is the only one, or when no other replicate has
/// an eligible candidate of the same name), scored on this replicate's
/// half. `eligible[r]` holds replicate r's candidates. None when a
/// replicate has no candidate.
pub fn cross_fitted_choice(eligible: &[Candidates], all: &[Candidates]) -> Option<Vec<Vec<f64>>> {
    // Every replicate's half means, computed once.
    let halves: Vec<BTreeMap<&str, [f64; 2]>> =
        all.iter().map(|c| c.iter().map(|(k, u)| (k.as_str(), [half_mean(u, 0), half_mean(u, 1)])).collect()).collect();
    let mut out = vec![];
    for (r, mine) in eligible.iter().enumerate() {
        let n = mine.values().map(|u| u.len()).min()?;
        let mut units = vec![0.0; n];
        for parity in 0..2 {
            let other = 1 - parity;
            // A candidate's score: its mean over the other replicates that have it.
            let score = |name: &str| -> Option<f64> {
                let v: Vec<f64> = halves
                    .iter()
                    .enumerate()
                    .filter(|(q, _)| *q != r)
                    .filter_map(|(_, h)| h.get(name).map(|m| m[other]))
                    .filter(|x| x.is_finite())
                    .collect();
                (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
            };
            let best = |f: &dyn Fn(&str) -> Option<f64>| {
                mine.iter().filter_map(|(k, u)| f(k).map(|s| (s, u))).max_by(|x, y| x.0.total_cmp(&y.0)).map(|(_, u)| u)
            };
            let own = |name: &str| mine.get(name).map(|u| half_mean(u, other)).filter(|x| x.is_finite());
            let chosen = best(&score).or_else(|| best(&own))?;
            for i in (parity..n).step_by(2) {
                units[i] = chosen[i];
            }
        }
        out.push(units);
    }
    Some(out)
}

/// The name of a candidate: a member at a step.
fn candidate(member: &str, step: i64) -> String {
    format!("{member}@{step}")
}

/// Every trained checkpoint of each replicate as a candidate.
fn all_candidates(method: &[Replicate]) -> Vec<Candidates> {
    method
        .iter()
        .map(|rep| {
            rep.iter()
                .flat_map(|run| trained(run).map(move |c| (candidate(&run.member, c.step), c.units.clone())))
                .collect()
        })
        .collect()
}

/// The budgeted frontier of one method, per replicate, averaged over the
/// budgets. A run's candidates at budget k are its trained checkpoints with
/// KL ≤ k and the point where its training path first crosses k
/// (interpolated, named by the member alone so the same member's crossing
/// is one candidate across seeds): the path is continuous, so a run saved
/// sparsely is not held below k by its save schedule alone.
fn frontier_of(method: &[Replicate], budgets: &[f64]) -> Option<Vec<Vec<f64>>> {
    averaged_over(budgets, |k| {
        let eligible: Vec<Candidates> = method
            .iter()
            .map(|rep| {
                let mut c: Candidates = rep
                    .iter()
                    .flat_map(|run| {
                        trained(run)
                            .filter(move |c| c.kl <= k)
                            .map(move |c| (candidate(&run.member, c.step), c.units.clone()))
                    })
                    .collect();
                for run in rep {
                    if let Some(u) = along_path(run, k) {
                        c.insert(format!("{}@kl", run.member), u);
                    }
                }
                c
            })
            .collect();
        cross_fitted_choice(&eligible, &eligible)
    })
}

/// Per replicate and unit, the mean over KL values `at` of what `choose`
/// gives at each (None if it gives nothing at one of them).
fn averaged_over(at: &[f64], choose: impl Fn(f64) -> Option<Vec<Vec<f64>>>) -> Option<Vec<Vec<f64>>> {
    let mut sum: Option<Vec<Vec<f64>>> = None;
    for &k in at {
        let here = choose(k)?;
        sum = Some(match sum {
            None => here,
            Some(s) => s.iter().zip(&here).map(|(x, y)| x.iter().zip(y).map(|(p, q)| p + q).collect()).collect(),
        });
    }
    let n = at.len() as f64;
    sum.map(|s| s.into_iter().map(|v| v.into_iter().map(|x| x / n).collect()).collect())
}

/// The budgeted frontier of A and B over their common trained window.
pub fn frontier(a: &[Replicate], b: &[Replicate]) -> Result<PerRun, NotComparable> {
    let (lo, hi) = window(a, b)?;
    let budgets = even(lo, hi, BUDGETS);
    let fail = || NotComparable {
        ranges: [method_range(a), method_range(b)],
        why: "a run has no candidate within a budget".into(),
    };
    Ok(PerRun {
        window: (lo, hi),
        a: frontier_of(a, &budgets).ok_or_else(fail)?,
        b: frontier_of(b, &budgets).ok_or_else(fail)?,
    })
}

/// One method's matched-KL outcomes at KL `k`, per replicate: each
/// member's outcomes interpolated along its path are its candidates here.
fn curve_at(method: &[Replicate], k: f64) -> Option<Vec<Vec<f64>>> {
    let at_k: Vec<Candidates> = method
        .iter()
        .map(|rep| rep.iter().filter_map(|run| along_path(run, k).map(|u| (run.member.clone(), u))).collect())
        .collect();
    cross_fitted_choice(&at_k, &at_k)
}

/// The matched-KL curve of one method, per replicate, averaged over the points.
fn curve_of(method: &[Replicate], points: &[f64]) -> Option<Vec<Vec<f64>>> {
    averaged_over(points, |k| curve_at(method, k))
}

/// The matched-KL curve of A and B point by point (not averaged): for each
/// of the [`CURVE_POINTS`] KL values over the window, both methods'
/// per-replicate outcomes there. What the report's difference panel draws;
/// the test itself uses their average ([`matched_curve`]).
pub fn matched_points(a: &[Replicate], b: &[Replicate]) -> Result<Vec<(f64, PerRun)>, NotComparable> {
    let (lo, hi) = window(a, b)?;
    Ok(even(lo, hi, CURVE_POINTS)
        .into_iter()
        .filter_map(|k| Some((k, PerRun { window: (lo, hi), a: curve_at(a, k)?, b: curve_at(b, k)? })))
        .collect())
}

/// The matched-KL curves of A and B over their common trained window.
pub fn matched_curve(a: &[Replicate], b: &[Replicate]) -> Result<PerRun, NotComparable> {
    let (lo, hi) = window(a, b)?;
    let points = even(lo, hi, CURVE_POINTS);
    let fail = || NotComparable {
        ranges: [method_range(a), method_range(b)],
        why: "a run's training path leaves a gap inside the window (its members' KL ranges are disjoint)".into(),
    };
    Ok(PerRun {
        window: (lo, hi),
        a: curve_of(a, &points).ok_or_else(fail)?,
        b: curve_of(b, &points).ok_or_else(fail)?,
    })
}

/// The best of a method's checkpoints and members, whatever their KL (a
/// `best` figure's peak), chosen as the frontier chooses.
pub fn peak(method: &[Replicate]) -> Option<Vec<Vec<f64>>> {
    let all = all_candidates(method);
    if all.iter().any(|c| c.is_empty()) {
        return None;
    }
    cross_fitted_choice(&all, &all)
}

/// A run's cross-fitted peak over prompts only: the candidate with the best
/// mean on the even units is scored on the odd ones and vice versa (for
/// one run's own checkpoints, where there are no other seeds to choose on).
pub fn cross_fitted_peak(candidates: &[Vec<f64>]) -> Option<Vec<f64>> {
    let named: Candidates = candidates.iter().enumerate().map(|(i, u)| (format!("{i:06}"), u.clone())).collect();
    if named.is_empty() || named.values().any(|u| u.len() < 2) {
        return None;
    }
    cross_fitted_choice(std::slice::from_ref(&named), std::slice::from_ref(&named)).map(|mut v| v.remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ck(step: i64, kl: f64, units: &[f64]) -> Checkpoint {
        Checkpoint { step, kl, units: units.to_vec() }
    }

    fn run(member: &str, path: Vec<Checkpoint>) -> Run {
        Run { member: member.into(), path }
    }

    #[test]
    fn step_zero_is_an_anchor_not_support() {
        // A reaches KL 1 at its first trained step; B stays below 0.7: their
        // trained checkpoints do not overlap, whatever step 0 says.
        let a = vec![vec![run("", vec![ck(0, 0.0, &[0.0]), ck(50, 1.0, &[1.0]), ck(100, 2.0, &[1.0])])]];
        let b = vec![vec![run("", vec![ck(0, 0.0, &[0.0]), ck(50, 0.3, &[1.0]), ck(100, 0.7, &[1.0])])]];
        let e = window(&a, &b).unwrap_err();
        assert_eq!(e.ranges, [Some((1.0, 2.0)), Some((0.3, 0.7))]);
        // One trained checkpoint of A inside the window is not enough.
        let a = vec![vec![run("", vec![ck(0, 0.0, &[0.0]), ck(50, 0.5, &[1.0]), ck(100, 2.0, &[1.0])])]];
        assert!(window(&a, &b).unwrap_err().why.contains("fewer than 2"));
        let a = vec![vec![run("", vec![ck(10, 0.35, &[0.0]), ck(50, 0.5, &[1.0]), ck(100, 2.0, &[1.0])])]];
        // B's 0.3 is below the window: it has one trained checkpoint inside.
        assert!(window(&a, &b).is_err());
        let b = vec![vec![run("", vec![ck(50, 0.3, &[1.0]), ck(75, 0.5, &[1.0]), ck(100, 0.7, &[1.0])])]];
        assert_eq!(window(&a, &b).unwrap(), (0.35, 0.7));
    }

    #[test]
    fn interpolation_follows_the_training_path() {
        // KL 0.2 → 0.6 → 0.4 → 1.0 by step: at 0.5 the path first crosses
        // between steps 1 and 2 (t = ¾), not between the KL-sorted 0.4 and 0.6.
        let r = run("", vec![ck(1, 0.2, &[0.0]), ck(2, 0.6, &[1.0]), ck(3, 0.4, &[5.0]), ck(4, 1.0, &[9.0])]);
        assert_eq!(along_path(&r, 0.5), Some(vec![0.75]));
        assert_eq!(along_path(&r, 1.5), None);
        assert_eq!(along_path(&r, 0.1), None);
    }

    #[test]
    fn the_choice_is_made_on_other_seeds_and_the_other_half() {
        // Two seeds, two members. Member "x" is best on seed 1, "y" on seed 0:
        // seed 0's outcomes come from seed 1's choice (x), and vice versa.
        let cands = |x: [f64; 2], y: [f64; 2]| -> Candidates {
            [("x".to_string(), x.to_vec()), ("y".to_string(), y.to_vec())].into_iter().collect()
        };
        let all = vec![cands([0.0, 0.0], [1.0, 1.0]), cands([1.0, 1.0], [0.0, 0.0])];
        assert_eq!(cross_fitted_choice(&all, &all), Some(vec![vec![0.0, 0.0], vec![0.0, 0.0]]));
        // One seed: the other half of the prompts chooses.
        let c = vec![vec![1.0, 0.0, 1.0, 0.0], vec![0.0, 1.0, 0.0, 1.0]];
        assert_eq!(cross_fitted_peak(&c), Some(vec![0.0, 0.0, 0.0, 0.0]));
    }

    #[test]
    fn the_frontier_by_hand() {
        // One member per seed, checkpoints (KL, outcome on every unit):
        // A: (0.2, 0.1), (0.4, 0.5), (0.8, 0.9); B: (0.3, 0.2), (0.6, 0.3), (0.9, 0.4).
        // Window [0.3, 0.8]; ten budgets k. Both paths rise, so each
        // method's best within k is where its path crosses k: A's
        // 0.1 + 2(k − 0.2) up to 0.4, then 0.5 + (k − 0.4); B's 0.2 + (k − 0.3)/3.
        let path = |pts: &[(f64, f64)]| -> Replicate {
            vec![run("", pts.iter().enumerate().map(|(i, (k, y))| ck(i as i64 + 1, *k, &[*y; 4])).collect())]
        };
        let a = vec![path(&[(0.2, 0.1), (0.4, 0.5), (0.8, 0.9)]); 2];
        let b = vec![path(&[(0.3, 0.2), (0.6, 0.3), (0.9, 0.4)]); 2];
        let f = frontier(&a, &b).unwrap();
        assert_eq!(f.window, (0.3, 0.8));
        let budgets = even(0.3, 0.8, BUDGETS);
        let best_a: f64 = budgets.iter().map(|k| if *k <= 0.4 { 0.1 + 2.0 * (k - 0.2) } else { 0.5 + (k - 0.4) }).sum();
        let best_b: f64 = budgets.iter().map(|k| 0.2 + (k - 0.3) / 3.0).sum();
        assert!((f.a[0][0] - best_a / BUDGETS as f64).abs() < 1e-12, "{:?}", f.a);
        assert!((f.b[1][3] - best_b / BUDGETS as f64).abs() < 1e-12, "{:?}", f.b);
        // A falling path: the best within k is an earlier checkpoint, not the crossing.
        let falling = vec![path(&[(0.3, 0.9), (0.8, 0.1)]); 2];
        let f = frontier(&falling, &b).unwrap();
        assert!((f.a[0][0] - 0.9).abs() < 1e-12, "{:?}", f.a);
    }

    #[test]
    fn the_matched_points_average_to_the_matched_curve() {
        let path = |pts: &[(f64, f64)]| -> Replicate {
            vec![run("", pts.iter().enumerate().map(|(i, (k, y))| ck(i as i64 + 1, *k, &[*y; 4])).collect())]
        };
        let a = vec![path(&[(0.2, 0.1), (0.4, 0.5), (0.8, 0.9)]); 2];
        let b = vec![path(&[(0.3, 0.2), (0.6, 0.3), (0.9, 0.4)]); 2];
        let points = matched_points(&a, &b).unwrap();
        assert_eq!(points.len(), CURVE_POINTS);
        assert_eq!((points[0].0, points[CURVE_POINTS - 1].0), (0.3, 0.8));
        // At KL 0.3, A is halfway between 0.1 and 0.5; B at its first checkpoint.
        assert!((points[0].1.a[0][0] - 0.3).abs() < 1e-12 && (points[0].1.b[1][2] - 0.2).abs() < 1e-12);
        let curve = matched_curve(&a, &b).unwrap();
        let mean = points.iter().map(|(_, p)| p.a[0][0]).sum::<f64>() / CURVE_POINTS as f64;
        assert!((curve.a[0][0] - mean).abs() < 1e-12);
    }
}
