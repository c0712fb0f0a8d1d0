//! The statistics behind the report's verdicts: two methods compared on
//! per-unit outcomes (one value per evaluation prompt or pair), with the
//! training run as the unit of replication.
//!
//! - With at least two runs (seeds) per method, the effect is the
//!   difference of the methods' mean run means and its test is Welch's t on
//!   the run means (Satterthwaite's degrees of freedom). A run mean averages
//!   the same prompts for every run, so prompt noise and seed variation both
//!   enter its spread, and the test is exact for normal run means. A
//!   bootstrap over 2–5 seeds would understate that spread (k values
//!   resampled have (k − 1)/k of their variance, and only a handful of
//!   distinct resamples), which is why seeds do not go through one.
//! - With one run for either method, seed variation cannot be estimated. The
//!   difference is then computed over prompts only — paired by prompt where
//!   both methods were scored on the same prompts, with a percentile
//!   bootstrap interval over prompts — and the claim cannot be decided: one
//!   seed's luck would pass for a method's effect.
//!
//! On top: the matched-KL comparison (each run's per-prompt outcomes
//! interpolated on a common KL grid over the range every run reaches),
//! cross-fitted peaks (the best checkpoint chosen on one half of the prompts
//! and scored on the other), Holm's correction over a report's claims and
//! the power line (the seeds or prompts an effect of the observed size
//! needs). `tests/verdicts.rs` calibrates the decision rule by simulation.

use rand::Rng;
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// The significance level of every decision, fixed before any verdict was
/// looked at.
pub const ALPHA: f64 = 0.05;

/// The power the power line asks for.
pub const TARGET_POWER: f64 = 0.8;

/// Bootstrap resamples for prompt-level intervals.
const RESAMPLES: usize = 2000;

/// How a comparison's uncertainty was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Welch's t over run means: seeds and prompts both counted.
    Seeds,
    /// One run for a method: over prompts only, paired by prompt.
    PairedPrompts,
    /// One run for a method, and the methods saw different prompts.
    UnpairedPrompts,
}

/// A difference of two methods (A − B) with its 95% interval and p-value.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub effect: f64,
    pub low: f64,
    pub high: f64,
    /// Two-sided p-value of "no difference".
    pub p: f64,
    pub runs: (usize, usize),
    /// Units (prompts or pairs) per run.
    pub units: usize,
    pub basis: Basis,
    /// For a seed-based comparison: what deciding an effect of this size needs.
    pub power: Option<PowerLine>,
}

impl Comparison {
    /// Whether this comparison may decide a claim at all.
    pub fn decidable(&self) -> bool {
        self.basis == Basis::Seeds
    }
}

/// The design an effect of the observed size needs for 80% power.
#[derive(Debug, Clone, PartialEq)]
pub struct PowerLine {
    /// Power of the present design at the observed effect.
    pub power_now: f64,
    /// Seeds per method at the present prompts; None if more than 1,000.
    pub seeds_needed: Option<usize>,
    /// Prompts per run at the present seeds; None if no number suffices
    /// (seed variation alone is too large) or more than 10⁶.
    pub prompts_needed: Option<usize>,
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

fn var(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let m = mean(xs);
    xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64
}

/// Two-sided p-value of a t statistic (a normal one when df is infinite).
fn p_two_sided(t: f64, df: f64) -> f64 {
    if !t.is_finite() {
        return if t.is_nan() { 1.0 } else { 0.0 };
    }
    let tail = match StudentsT::new(0.0, 1.0, df) {
        Ok(d) if df.is_finite() => 1.0 - d.cdf(t.abs()),
        _ => 1.0 - Normal::standard().cdf(t.abs()),
    };
    (2.0 * tail).min(1.0)
}

fn t_quantile(q: f64, df: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, df) {
        Ok(d) if df.is_finite() => d.inverse_cdf(q),
        _ => Normal::standard().inverse_cdf(q),
    }
}

/// The variance parts of one method: between-seed variance of a run mean
/// (beyond what prompt noise explains) and the per-prompt variance within a
/// run.
#[derive(Debug, Clone, Copy)]
pub struct Parts {
    pub seed_var: f64,
    pub prompt_var: f64,
}

fn parts(runs: &[Vec<f64>]) -> Parts {
    let means: Vec<f64> = runs.iter().map(|r| mean(r)).collect();
    let n = runs.iter().map(|r| r.len()).min().unwrap_or(1).max(1) as f64;
    let prompt_var = mean(&runs.iter().map(|r| var(r)).collect::<Vec<_>>());
    Parts { seed_var: (var(&means) - prompt_var / n).max(0.0), prompt_var }
}

/// Power of Welch's test with `seeds` runs per method and `prompts` per run
/// at true difference `effect`: the shifted-t approximation with the
/// conservative 2(seeds − 1) degrees of freedom.
pub fn power(effect: f64, a: Parts, b: Parts, seeds: usize, prompts: usize) -> f64 {
    power_of(effect, &[a, b], seeds, prompts)
}

/// [`power`] of a contrast of k groups with weights ±1 (a difference of
/// differences has four): k(seeds − 1) degrees of freedom.
fn power_of(effect: f64, groups: &[Parts], seeds: usize, prompts: usize) -> f64 {
    if seeds < 2 {
        return 0.0;
    }
    let per_run = |p: &Parts| p.seed_var + p.prompt_var / prompts as f64;
    let se = (groups.iter().map(per_run).sum::<f64>() / seeds as f64).sqrt();
    if se == 0.0 {
        return if effect == 0.0 { ALPHA } else { 1.0 };
    }
    let df = groups.len() as f64 * (seeds as f64 - 1.0);
    let crit = t_quantile(1.0 - ALPHA / 2.0, df);
    let ncp = effect.abs() / se;
    let d = StudentsT::new(0.0, 1.0, df).expect("df > 0");
    (1.0 - d.cdf(crit - ncp)) + d.cdf(-crit - ncp)
}

fn power_line(effect: f64, groups: &[&[Vec<f64>]]) -> PowerLine {
    let parts: Vec<Parts> = groups.iter().map(|g| parts(g)).collect();
    let seeds = groups.iter().map(|g| g.len()).min().unwrap_or(0);
    let prompts = groups.iter().flat_map(|g| g.iter()).map(|r| r.len()).min().unwrap_or(1).max(1);
    let seeds_needed = (2..=1000).find(|&s| power_of(effect, &parts, s, prompts) >= TARGET_POWER);
    // Prompts: doubling, then bisection, as power grows with prompts.
    let enough = |n: usize| power_of(effect, &parts, seeds, n) >= TARGET_POWER;
    let prompts_needed = if seeds < 2 || !enough(1_000_000) {
        None
    } else {
        let mut hi = 1;
        while !enough(hi) {
            hi *= 2;
        }
        let mut lo = hi / 2;
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if enough(mid) {
                hi = mid
            } else {
                lo = mid
            }
        }
        Some(hi)
    };
    PowerLine { power_now: power_of(effect, &parts, seeds, prompts), seeds_needed, prompts_needed }
}

/// Compares method A with method B. `a` and `b` hold one vector per run
/// (seed) of per-unit outcomes; `paired` says whether unit i is the same
/// prompt (pair) in every run of both. `seed` fixes the bootstrap's draws.
/// None when a method has no run or a run has no units.
pub fn compare(a: &[Vec<f64>], b: &[Vec<f64>], paired: bool, seed: u64) -> Option<Comparison> {
    contrast(&[(a, 1.0), (b, -1.0)], paired, seed)
}

/// Whether the difference A − B is larger than C − D: the contrast
/// (A − B) − (C − D) of four methods (the gap between two methods at one
/// policy size against the gap at another), tested as [`compare`] tests a
/// difference: Welch's t over run means with Satterthwaite's degrees of
/// freedom when every method has two runs or more, over prompts only
/// otherwise. `runs` in the result counts (the fewer of A's and B's, the
/// fewer of C's and D's).
pub fn compare_gaps(
    (a, b): (&[Vec<f64>], &[Vec<f64>]),
    (c, d): (&[Vec<f64>], &[Vec<f64>]),
    paired: bool,
    seed: u64,
) -> Option<Comparison> {
    let mut g = contrast(&[(a, 1.0), (b, -1.0), (c, -1.0), (d, 1.0)], paired, seed)?;
    g.runs = (a.len().min(b.len()), c.len().min(d.len()));
    Some(g)
}

/// The contrast Σ wᵢ·(mean of group i) with weights ±1: each group one
/// vector per run of per-unit outcomes. See [`compare`] for how its
/// uncertainty is computed.
fn contrast(groups: &[(&[Vec<f64>], f64)], paired: bool, seed: u64) -> Option<Comparison> {
    if groups.iter().any(|(g, _)| g.is_empty() || g.iter().any(|r| r.is_empty())) {
        return None;
    }
    let fewest = |sign: f64| groups.iter().filter(|(_, w)| *w == sign).map(|(g, _)| g.len()).min().unwrap_or(0);
    let runs = (fewest(1.0), fewest(-1.0));
    let units = groups.iter().flat_map(|(g, _)| g.iter()).map(|r| r.len()).min().unwrap_or(0);
    let means: Vec<Vec<f64>> = groups.iter().map(|(g, _)| g.iter().map(|r| mean(r)).collect()).collect();
    let effect = groups.iter().zip(&means).fold(0.0, |acc, ((_, w), m)| acc + w * mean(m));
    if groups.iter().all(|(g, _)| g.len() >= 2) {
        let v: Vec<f64> = groups.iter().zip(&means).map(|((g, _), m)| var(m) / g.len() as f64).collect();
        let total: f64 = v.iter().sum();
        let se = total.sqrt();
        let df = if se == 0.0 {
            f64::INFINITY
        } else {
            total.powi(2) / groups.iter().zip(&v).map(|((g, _), vi)| vi.powi(2) / (g.len() - 1) as f64).sum::<f64>()
        };
        let (p, half) = if se == 0.0 {
            (if effect == 0.0 { 1.0 } else { 0.0 }, 0.0)
        } else {
            (p_two_sided(effect / se, df), t_quantile(1.0 - ALPHA / 2.0, df) * se)
        };
        let runs_of: Vec<&[Vec<f64>]> = groups.iter().map(|(g, _)| *g).collect();
        return Some(Comparison {
            effect,
            low: effect - half,
            high: effect + half,
            p,
            runs,
            units,
            basis: Basis::Seeds,
            power: Some(power_line(effect, &runs_of)),
        });
    }
    // A method with one run: prompts only. Each method's per-unit mean over
    // its runs; paired differences where the units are the same prompts.
    let per_unit = |runs: &[Vec<f64>]| -> Vec<f64> {
        let n = runs.iter().map(|r| r.len()).min().unwrap_or(0);
        (0..n).map(|i| mean(&runs.iter().map(|r| r[i]).collect::<Vec<_>>())).collect()
    };
    let u: Vec<(Vec<f64>, f64)> = groups.iter().map(|(g, w)| (per_unit(g), *w)).collect();
    let paired = paired && u.iter().all(|(x, _)| x.len() == u[0].0.len());
    // Paired: the contrast of each prompt, resampled whole.
    let per_prompt: Vec<f64> = if paired {
        (0..u[0].0.len()).map(|i| u.iter().fold(0.0, |acc, (x, w)| acc + w * x[i])).collect()
    } else {
        vec![]
    };
    let mut rng = crate::ml::rng::stream(seed, "report/bootstrap", 0);
    let mut draws: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            if paired {
                let n = per_prompt.len();
                let mut s = 0.0;
                for _ in 0..n {
                    s += per_prompt[rng.gen_range(0..n)];
                }
                s / n as f64
            } else {
                let pick = |x: &[f64], rng: &mut crate::ml::rng::Stream| {
                    (0..x.len()).map(|_| x[rng.gen_range(0..x.len())]).sum::<f64>() / x.len() as f64
                };
                u.iter().fold(0.0, |acc, (x, w)| acc + w * pick(x, &mut rng))
            }
        })
        .collect();
    draws.sort_by(f64::total_cmp);
    let at = |q: f64| draws[((q * (RESAMPLES - 1) as f64).round() as usize).min(RESAMPLES - 1)];
    let effect = u.iter().fold(0.0, |acc, (x, w)| acc + w * mean(x));
    // The bootstrap's p: how often a resample falls on the other side of 0.
    let below = draws.iter().filter(|d| **d <= 0.0).count() as f64 / RESAMPLES as f64;
    let above = draws.iter().filter(|d| **d >= 0.0).count() as f64 / RESAMPLES as f64;
    Some(Comparison {
        effect,
        low: at(ALPHA / 2.0),
        high: at(1.0 - ALPHA / 2.0),
        p: (2.0 * below.min(above)).min(1.0),
        runs,
        units,
        basis: if paired { Basis::PairedPrompts } else { Basis::UnpairedPrompts },
        power: None,
    })
}

/// Holm's step-down adjustment of p-values (same order as given).
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let mut out = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        out[i] = running;
    }
    out
}

/// One effect combined over several worlds.
#[derive(Debug, Clone, PartialEq)]
pub struct Combined {
    pub effect: f64,
    pub low: f64,
    pub high: f64,
    /// Two-sided p-value of "no difference on average over worlds".
    pub p: f64,
    /// The between-world variance of the true effects (DerSimonian–Laird).
    pub tau2: f64,
    /// Worlds with an effect above 0, of `k`, and the sign test's p.
    pub positive: usize,
    pub k: usize,
    pub sign_p: f64,
}

/// Random-effects combination of per-world effects given as (effect,
/// standard error): DerSimonian and Laird's between-world variance τ², then
/// the inverse-variance mean with weights 1/(se² + τ²), its 95% interval and
/// a z-test. Beside it, an exact two-sided sign test over the worlds. None
/// for fewer than two worlds or a standard error that is not positive.
pub fn random_effects(effects: &[(f64, f64)]) -> Option<Combined> {
    let k = effects.len();
    if k < 2 || effects.iter().any(|(e, se)| !e.is_finite() || !se.is_finite() || *se <= 0.0 || se.is_nan()) {
        return None;
    }
    let w: Vec<f64> = effects.iter().map(|(_, se)| 1.0 / (se * se)).collect();
    let sw: f64 = w.iter().sum();
    let fixed = effects.iter().zip(&w).map(|((e, _), w)| w * e).sum::<f64>() / sw;
    let q: f64 = effects.iter().zip(&w).map(|((e, _), w)| w * (e - fixed).powi(2)).sum();
    let c = sw - w.iter().map(|w| w * w).sum::<f64>() / sw;
    let tau2 = ((q - (k as f64 - 1.0)) / c).max(0.0);
    let wr: Vec<f64> = effects.iter().map(|(_, se)| 1.0 / (se * se + tau2)).collect();
    let swr: f64 = wr.iter().sum();
    let effect = effects.iter().zip(&wr).map(|((e, _), w)| w * e).sum::<f64>() / swr;
    let se = (1.0 / swr).sqrt();
    let z = Normal::standard().inverse_cdf(0.975);
    let positive = effects.iter().filter(|(e, _)| *e > 0.0).count();
    let nonzero = effects.iter().filter(|(e, _)| *e != 0.0).count();
    Some(Combined {
        effect,
        low: effect - z * se,
        high: effect + z * se,
        p: p_two_sided(effect / se, f64::INFINITY),
        tau2,
        positive,
        k,
        sign_p: sign_test(positive, nonzero),
    })
}

/// Exact two-sided binomial test of `positive` successes in `n` at ½.
fn sign_test(positive: usize, n: usize) -> f64 {
    if n == 0 {
        return 1.0;
    }
    let pmf = |i: usize| {
        // C(n, i) / 2^n in logs, exact enough for the worlds of one figure.
        let ln_c: f64 = (1..=i).map(|j| ((n - i + j) as f64).ln() - (j as f64).ln()).sum();
        (ln_c - n as f64 * std::f64::consts::LN_2).exp()
    };
    let observed = pmf(positive);
    let p: f64 = (0..=n).map(pmf).filter(|&q| q <= observed * (1.0 + 1e-9)).sum();
    p.min(1.0)
}

/// One checkpoint of one run: its KL and its per-unit outcomes.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub kl: f64,
    pub units: Vec<f64>,
}

/// A run's per-unit outcomes at KL `kl`, interpolated linearly between the
/// two checkpoints that bracket it (checkpoints sorted by KL); None outside
/// the run's range.
pub fn at_kl(run: &[Checkpoint], kl: f64) -> Option<Vec<f64>> {
    let mut pts: Vec<&Checkpoint> = run.iter().collect();
    pts.sort_by(|a, b| a.kl.total_cmp(&b.kl));
    let (first, last) = (pts.first()?, pts.last()?);
    if kl < first.kl || kl > last.kl {
        return None;
    }
    for w in pts.windows(2) {
        let (lo, hi) = (w[0], w[1]);
        if kl >= lo.kl && kl <= hi.kl {
            let t = if hi.kl > lo.kl { (kl - lo.kl) / (hi.kl - lo.kl) } else { 0.0 };
            return Some(lo.units.iter().zip(&hi.units).map(|(a, b)| a + t * (b - a)).collect());
        }
    }
    Some(first.units.clone())
}

/// The matched-KL comparison of two methods. A method is a list of
/// replicates (seeds); a replicate is one or more member curves (a grid of
/// hyper-parameters run with that seed), each a list of checkpoints. On a
/// common grid of `points` KL values — the range every replicate reaches
/// with some member — each replicate's outcomes are interpolated; where it
/// has several members, the member is chosen by cross-fitting at each grid
/// point ([`cross_fitted_peak`]), so a grid's frontier is not biased upward
/// by its size. Per replicate, the mean over the grid is then compared as
/// [`compare`] does. None when the ranges do not overlap.
pub struct MatchedKl {
    pub range: (f64, f64),
    pub average: Comparison,
}

pub type Replicate = Vec<Vec<Checkpoint>>;

fn kl_range(rep: &Replicate) -> (f64, f64) {
    let lo = rep.iter().flatten().map(|c| c.kl).fold(f64::INFINITY, f64::min);
    let hi = rep.iter().flatten().map(|c| c.kl).fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

pub fn matched_kl(a: &[Replicate], b: &[Replicate], points: usize, paired: bool, seed: u64) -> Option<MatchedKl> {
    let ranges: Vec<(f64, f64)> = a.iter().chain(b).map(kl_range).collect();
    let lo = ranges.iter().map(|r| r.0).fold(f64::NEG_INFINITY, f64::max);
    let hi = ranges.iter().map(|r| r.1).fold(f64::INFINITY, f64::min);
    if ranges.is_empty() || !(lo.is_finite() && hi.is_finite()) || hi <= lo || points < 2 {
        return None;
    }
    let grid: Vec<f64> = (0..points).map(|i| lo + (hi - lo) * i as f64 / (points - 1) as f64).collect();
    let average = |rep: &Replicate| -> Option<Vec<f64>> {
        let at: Vec<Vec<f64>> = grid
            .iter()
            .map(|k| {
                let members: Vec<Vec<f64>> = rep.iter().filter_map(|curve| at_kl(curve, *k)).collect();
                match members.len() {
                    0 => None,
                    1 => members.into_iter().next(),
                    _ => cross_fitted_peak(&members),
                }
            })
            .collect::<Option<_>>()?;
        let n = at.iter().map(|v| v.len()).min()?;
        Some((0..n).map(|i| at.iter().map(|v| v[i]).sum::<f64>() / at.len() as f64).collect())
    };
    let ra: Vec<Vec<f64>> = a.iter().map(average).collect::<Option<_>>()?;
    let rb: Vec<Vec<f64>> = b.iter().map(average).collect::<Option<_>>()?;
    Some(MatchedKl { range: (lo, hi), average: compare(&ra, &rb, paired, seed)? })
}

/// A run's cross-fitted peak, per unit: the candidate (checkpoint or grid
/// member) with the best mean on the even units is scored on the odd ones,
/// and the best on the odd units is scored on the even ones, so no unit's
/// outcome both chooses and reports. `candidates` hold per-unit outcomes on
/// the same units.
pub fn cross_fitted_peak(candidates: &[Vec<f64>]) -> Option<Vec<f64>> {
    let n = candidates.iter().map(|c| c.len()).min()?;
    if n < 2 {
        return None;
    }
    let half_mean = |c: &[f64], parity: usize| {
        let v: Vec<f64> = (parity..n).step_by(2).map(|i| c[i]).collect();
        mean(&v)
    };
    let best_on = |parity: usize| {
        candidates.iter().max_by(|a, b| half_mean(a, parity).total_cmp(&half_mean(b, parity))).expect("candidates")
    };
    let (on_even, on_odd) = (best_on(0), best_on(1));
    Some((0..n).map(|i| if i % 2 == 0 { on_odd[i] } else { on_even[i] }).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_effects_by_hand() {
        use super::*;
        // Equal errors 0.1: weights 100 each; fixed mean 0.2; Q = 100·(0.01 + 0.01) = 2;
        // C = 200 − 20000/200 = 100; τ² = (2 − 1)/100 = 0.01; random weights
        // 1/(0.01 + 0.01) = 50 each: mean 0.2, se = √(1/100) = 0.1.
        let c = random_effects(&[(0.1, 0.1), (0.3, 0.1)]).unwrap();
        assert!((c.tau2 - 0.01).abs() < 1e-12, "{c:?}");
        assert!((c.effect - 0.2).abs() < 1e-12);
        assert!((c.high - c.low - 2.0 * 1.959963984540054 * 0.1).abs() < 1e-9);
        // z = 2: p = 0.0455.
        assert!((c.p - 0.04550026).abs() < 1e-6, "{}", c.p);
        // Homogeneous effects: τ² = 0 and the fixed-effect answer.
        let h = random_effects(&[(0.2, 0.1), (0.2, 0.2)]).unwrap();
        assert_eq!(h.tau2, 0.0);
        assert!((h.effect - 0.2).abs() < 1e-12);
        assert!(random_effects(&[(0.2, 0.1)]).is_none());
        assert!(random_effects(&[(0.2, 0.0), (0.1, 0.1)]).is_none());
    }

    #[test]
    fn the_sign_test_by_hand() {
        use super::sign_test;
        // 4 of 4 positive: 2 · (1/16) = 0.125; 3 of 4: 2 · 5/16 = 0.625; 2 of 4: 1.
        assert!((sign_test(4, 4) - 0.125).abs() < 1e-12);
        assert!((sign_test(3, 4) - 0.625).abs() < 1e-12);
        assert!((sign_test(2, 4) - 1.0).abs() < 1e-12);
        assert!((sign_test(0, 6) - 2.0 / 64.0).abs() < 1e-12);
    }

    use super::*;

    #[test]
    fn welch_matches_a_hand_computation() {
        // Run means A = [1, 2, 3] (mean 2, var 1), B = [0, 0, 1, 1] (mean ½, var ⅓).
        let a: Vec<Vec<f64>> = [1.0, 2.0, 3.0].iter().map(|m| vec![*m; 4]).collect();
        let b: Vec<Vec<f64>> = [0.0, 0.0, 1.0, 1.0].iter().map(|m| vec![*m; 4]).collect();
        let c = compare(&a, &b, true, 0).unwrap();
        // se² = 1/3 + (1/3)/4 = 5/12; df = (5/12)² / ((1/3)²/2 + (1/12)²/3) = 3
        let se = (5.0f64 / 12.0).sqrt();
        let df = (5.0f64 / 12.0).powi(2) / ((1.0f64 / 3.0).powi(2) / 2.0 + (1.0f64 / 12.0).powi(2) / 3.0);
        assert!((c.effect - 1.5).abs() < 1e-12);
        assert!((df - 3.0).abs() < 1e-9);
        let t = StudentsT::new(0.0, 1.0, df).unwrap();
        assert!((c.p - 2.0 * (1.0 - t.cdf(1.5 / se))).abs() < 1e-12);
        assert!((c.high - c.effect - t.inverse_cdf(0.975) * se).abs() < 1e-9);
        assert_eq!(c.basis, Basis::Seeds);
        // t = 1.5 / √(5/12) = 2.3238 at df 3: the t density integrated
        // numerically (Simpson's rule, beyond t) gives p = 0.10273.
        assert!((c.p - 0.10273).abs() < 1e-4, "{}", c.p);
    }

    #[test]
    fn a_difference_of_differences_by_hand() {
        // Run means: A = [1, 2, 3], B = [0, 1] (gap 1.5); C = [2, 4],
        // D = [2, 2, 2] (gap 1). Contrast (A − B) − (C − D) = 0.5.
        let runs = |ms: &[f64]| -> Vec<Vec<f64>> { ms.iter().map(|m| vec![*m; 3]).collect() };
        let (a, b, c, d) = (runs(&[1.0, 2.0, 3.0]), runs(&[0.0, 1.0]), runs(&[2.0, 4.0]), runs(&[2.0, 2.0, 2.0]));
        let g = compare_gaps((&a, &b), (&c, &d), true, 0).unwrap();
        assert!((g.effect - 0.5).abs() < 1e-12, "{}", g.effect);
        // Variances of the means: A 1/3, B 0.5/2, C 2/2, D 0: se² = 1/3 + 1/4 + 1.
        let v = [1.0 / 3.0, 0.25, 1.0, 0.0];
        let se2: f64 = v.iter().sum();
        let df = se2 * se2 / (v[0] * v[0] / 2.0 + v[1] * v[1] / 1.0 + v[2] * v[2] / 1.0);
        let t = StudentsT::new(0.0, 1.0, df).unwrap();
        assert!((g.p - 2.0 * (1.0 - t.cdf(0.5 / se2.sqrt()))).abs() < 1e-12);
        assert!((g.high - g.effect - t.inverse_cdf(0.975) * se2.sqrt()).abs() < 1e-9);
        assert_eq!((g.runs, g.basis), ((2, 2), Basis::Seeds));
        // Two methods' difference is the contrast with the other two absent:
        // compare() is compare_gaps() with C = D.
        let same = compare_gaps((&a, &b), (&d, &d), true, 0).unwrap();
        let plain = compare(&a, &b, true, 0).unwrap();
        assert!((same.effect - plain.effect).abs() < 1e-12);
        // One run of a method: over prompts only, never decidable.
        let one = runs(&[1.0]);
        assert_eq!(compare_gaps((&one, &b), (&c, &d), true, 0).unwrap().basis, Basis::PairedPrompts);
    }

    #[test]
    fn holm_adjusts_step_down() {
        // Sorted p: .01, .02, .04 → ×3, ×2, ×1 = .03, .04, .04 (monotone).
        let adj = holm(&[0.04, 0.01, 0.02]);
        assert!((adj[1] - 0.03).abs() < 1e-12 && (adj[2] - 0.04).abs() < 1e-12 && (adj[0] - 0.04).abs() < 1e-12);
        // 0.6 × 2 caps at 1; the step-down never lowers a later one below it.
        assert_eq!(holm(&[0.6, 0.9]), vec![1.0, 1.0]);
    }

    #[test]
    fn one_seed_is_never_decidable_and_pairs_by_prompt() {
        let a = vec![vec![1.0, 0.0, 1.0, 1.0, 0.0, 1.0]];
        let b = vec![vec![1.0, 0.0, 1.0, 0.0, 0.0, 1.0]];
        let c = compare(&a, &b, true, 3).unwrap();
        assert_eq!(c.basis, Basis::PairedPrompts);
        assert!(!c.decidable());
        assert!((c.effect - 1.0 / 6.0).abs() < 1e-12);
        // Paired differences are 0 except one 1: every resample is ≥ 0.
        assert!(c.low >= 0.0 && c.high <= 1.0);
    }

    #[test]
    fn interpolation_and_cross_fitting() {
        let run = vec![Checkpoint { kl: 0.0, units: vec![0.0, 0.0] }, Checkpoint { kl: 2.0, units: vec![1.0, 0.5] }];
        assert_eq!(at_kl(&run, 1.0), Some(vec![0.5, 0.25]));
        assert_eq!(at_kl(&run, 3.0), None);
        // Candidate 0 is best on even units, candidate 1 on odd ones: each
        // half is scored by the other half's choice.
        let c = vec![vec![1.0, 0.0, 1.0, 0.0], vec![0.0, 1.0, 0.0, 1.0]];
        assert_eq!(cross_fitted_peak(&c), Some(vec![0.0, 0.0, 0.0, 0.0]));
        let same = vec![vec![0.2, 0.4, 0.6, 0.8]];
        assert_eq!(cross_fitted_peak(&same), Some(vec![0.2, 0.4, 0.6, 0.8]));
    }
}
