//! The statistics behind the report's verdicts: two methods compared on
//! per-unit outcomes (one value per evaluation prompt or pair), with the
//! training run as the unit of replication.
//!
//! The analysis rules, fixed before any verdict of the present rules was
//! looked at:
//!
//! - With at least two runs (seeds) per method, the effect is the
//!   difference of the methods' mean run means, tested with a t statistic
//!   whose variance has every source a report's design shares:
//!   seeds and prompts are crossed (every run is scored on the same
//!   prompts, against the same baseline samples), so besides the spread of
//!   run means within each method (Welch's part: seed variation and
//!   per-run prompt noise) the difference carries the method × prompt
//!   interaction, which is common to every run of a method and therefore
//!   invisible in that spread. It is estimated by moments from the
//!   per-prompt contrast and each method's seed × prompt residual
//!   ([`contrast`]); degrees of freedom by Satterthwaite over the parts.
//! - With one run for either method, seed variation cannot be estimated. The
//!   difference is then computed over prompts only (paired by prompt where
//!   both methods were scored on the same prompts, with a percentile
//!   bootstrap interval over prompts) and the claim cannot be decided: one
//!   seed's luck would pass for a method's effect.
//! - Undecided is not "level": beside every undecided comparison the report
//!   states the minimum detectable effect (the true difference this test
//!   finds with 80% power at its own standard error, [`Comparison::mde`]);
//!   a figure's `margin:` adds the equivalence test (two one-sided tests,
//!   [`Comparison::equivalence_p`]), which decides "level within ±margin".
//! - Decisions at α = 0.05 after Holm's correction over one family: every
//!   test the report can call decided (claims, equivalences, combinations
//!   over worlds). Intervals are 95% intervals of the single comparison,
//!   unadjusted, and said to be.
//! - Over the worlds of a study the effects are combined as fixed effects
//!   (each world once, no between-world variance): the worlds are the
//!   study's design, not a sample from a population of worlds
//!   ([`fixed_effect`]).
//!
//! `estimands.rs` builds the per-run outcomes these compare (the budgeted
//! frontier and the matched-KL curve); `tests/verdicts.rs` calibrates the
//! whole chain, from figure data to verdict, by simulation.

use rand::Rng;
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// The significance level of every decision, fixed before any verdict was
/// looked at.
pub const ALPHA: f64 = 0.05;

/// The power the minimum detectable effect is stated at.
pub const TARGET_POWER: f64 = 0.8;

/// Bootstrap resamples for prompt-level intervals.
const RESAMPLES: usize = 2000;

/// How a comparison's uncertainty was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Seeds and prompts crossed: run means' spread plus the method ×
    /// prompt interaction.
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
    /// The standard error and degrees of freedom behind `p` (for a
    /// prompt-level comparison, the bootstrap's standard deviation and ∞).
    pub se: f64,
    pub df: f64,
    pub runs: (usize, usize),
    /// Units (prompts or pairs) per run.
    pub units: usize,
    pub basis: Basis,
}

impl Comparison {
    /// Whether this comparison may decide a claim at all.
    pub fn decidable(&self) -> bool {
        self.basis == Basis::Seeds
    }

    /// The minimum detectable effect: the true difference this test decides
    /// with 80% power at its own standard error and degrees of freedom,
    /// (t₁₋α/₂ + t₀.₈)·se. None for a comparison that cannot decide.
    pub fn mde(&self) -> Option<f64> {
        if !self.decidable() {
            return None;
        }
        Some((t_quantile(1.0 - ALPHA / 2.0, self.df) + t_quantile(TARGET_POWER, self.df)) * self.se)
    }

    /// The equivalence test against ±`margin` (two one-sided t-tests at the
    /// comparison's standard error and degrees of freedom): the larger of
    /// the p-values of "effect ≤ −margin" and "effect ≥ +margin". None for
    /// a comparison that cannot decide.
    pub fn equivalence_p(&self, margin: f64) -> Option<f64> {
        if !self.decidable() || margin.is_nan() || margin <= 0.0 {
            return None;
        }
        if self.se == 0.0 {
            return Some(if self.effect.abs() < margin { 0.0 } else { 1.0 });
        }
        let cdf = |t: f64| match StudentsT::new(0.0, 1.0, self.df) {
            Ok(d) if self.df.is_finite() => d.cdf(t),
            _ => Normal::standard().cdf(t),
        };
        let above_lower = 1.0 - cdf((self.effect + margin) / self.se);
        let below_upper = cdf((self.effect - margin) / self.se);
        Some(above_lower.max(below_upper))
    }
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
/// difference. `runs` in the result counts (the fewer of A's and B's, the
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

/// Mean over a method's runs of each unit (the runs' common units).
fn unit_means(runs: &[Vec<f64>]) -> Vec<f64> {
    let n = runs.iter().map(|r| r.len()).min().unwrap_or(0);
    (0..n).map(|i| runs.iter().map(|r| r[i]).sum::<f64>() / runs.len() as f64).collect()
}

/// A method's seed × prompt residual mean square: its runs × units table
/// with the run means and the unit means taken out,
/// Σ (y − ȳ_run − ȳ_unit + ȳ)² / ((runs − 1)(units − 1)).
fn residual_ms(runs: &[Vec<f64>]) -> f64 {
    let (s, n) = (runs.len(), runs.iter().map(|r| r.len()).min().unwrap_or(0));
    if s < 2 || n < 2 {
        return 0.0;
    }
    let row: Vec<f64> = runs.iter().map(|r| mean(&r[..n])).collect();
    let col = unit_means(runs);
    let all = mean(&row);
    let ss: f64 =
        runs.iter().zip(&row).map(|(r, rm)| (0..n).map(|i| (r[i] - rm - col[i] + all).powi(2)).sum::<f64>()).sum();
    ss / ((s - 1) * (n - 1)) as f64
}

/// The contrast Σ wᵢ·(mean of group i) with weights ±1 summing to 0: each
/// group one vector per run of per-unit outcomes.
///
/// With two runs or more in every group, its variance has two parts. The
/// spread of run means, vᵢ = var(run means of i)/runsᵢ (Welch's), holds
/// seed variation and each run's own prompt noise. Where every run was
/// scored on the same units (`paired`), a unit's effect common to every
/// run of a group (the method × prompt interaction) does not show in that
/// spread but does move the contrast; its part is
/// I = max(0, var_u(Σ wᵢ ȳᵢ,u) − Σ MSresᵢ/runsᵢ) / units, the variance of
/// the per-unit contrast of the groups' unit means less what their runs'
/// residual noise (the seed × unit mean square) puts into it. Under the
/// model y = μᵢ + seedᵢₛ + unitᵤ + (method × unit)ᵢᵤ + noise, the two parts
/// together are unbiased for the contrast's variance (the prompt's own
/// effect cancels, as the weights sum to 0). The t statistic has
/// Satterthwaite's degrees of freedom over the parts (runsᵢ − 1 each,
/// units − 1 for I).
fn contrast(groups: &[(&[Vec<f64>], f64)], paired: bool, seed: u64) -> Option<Comparison> {
    if groups.iter().any(|(g, _)| g.is_empty() || g.iter().any(|r| r.is_empty())) {
        return None;
    }
    let fewest = |sign: f64| groups.iter().filter(|(_, w)| *w == sign).map(|(g, _)| g.len()).min().unwrap_or(0);
    let runs = (fewest(1.0), fewest(-1.0));
    let units = groups.iter().flat_map(|(g, _)| g.iter()).map(|r| r.len()).min().unwrap_or(0);
    let means: Vec<Vec<f64>> = groups.iter().map(|(g, _)| g.iter().map(|r| mean(r)).collect()).collect();
    let effect = groups.iter().zip(&means).fold(0.0, |acc, ((_, w), m)| acc + w * mean(m));
    let same_units = paired && groups.iter().flat_map(|(g, _)| g.iter()).all(|r| r.len() == units);
    if groups.iter().all(|(g, _)| g.len() >= 2) {
        let v: Vec<f64> = groups.iter().zip(&means).map(|((g, _), m)| var(m) / g.len() as f64).collect();
        let interaction = if same_units && units >= 2 {
            let per_unit: Vec<Vec<f64>> = groups.iter().map(|(g, _)| unit_means(g)).collect();
            let d: Vec<f64> =
                (0..units).map(|u| groups.iter().zip(&per_unit).map(|((_, w), m)| w * m[u]).sum()).collect();
            let noise: f64 = groups.iter().map(|(g, _)| residual_ms(g) / g.len() as f64).sum();
            ((var(&d) - noise) / units as f64).max(0.0)
        } else {
            0.0
        };
        let total: f64 = v.iter().sum::<f64>() + interaction;
        let se = total.sqrt();
        let df = if se == 0.0 {
            f64::INFINITY
        } else {
            let welch: f64 = groups.iter().zip(&v).map(|((g, _), vi)| vi.powi(2) / (g.len() - 1) as f64).sum();
            let inter = if interaction > 0.0 { interaction.powi(2) / (units - 1) as f64 } else { 0.0 };
            total.powi(2) / (welch + inter)
        };
        let (p, half) = if se == 0.0 {
            (if effect == 0.0 { 1.0 } else { 0.0 }, 0.0)
        } else {
            (p_two_sided(effect / se, df), t_quantile(1.0 - ALPHA / 2.0, df) * se)
        };
        return Some(Comparison {
            effect,
            low: effect - half,
            high: effect + half,
            p,
            se,
            df,
            runs,
            units,
            basis: Basis::Seeds,
        });
    }
    // A method with one run: prompts only. Each method's per-unit mean over
    // its runs; paired differences where the units are the same prompts.
    let u: Vec<(Vec<f64>, f64)> = groups.iter().map(|(g, w)| (unit_means(g), *w)).collect();
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
    let se = var(&draws).sqrt();
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
        se,
        df: f64::INFINITY,
        runs,
        units,
        basis: if paired { Basis::PairedPrompts } else { Basis::UnpairedPrompts },
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

/// One effect combined over a study's worlds.
#[derive(Debug, Clone, PartialEq)]
pub struct Combined {
    pub effect: f64,
    pub low: f64,
    pub high: f64,
    /// Two-sided p-value of "no difference in the inverse-variance weighted
    /// mean over these worlds".
    pub p: f64,
    pub se: f64,
    pub df: f64,
    /// Worlds with an effect above 0, of `k`.
    pub positive: usize,
    pub k: usize,
}

/// The fixed-effect combination of per-world comparisons: the equal-weight
/// mean of the worlds' effects, its standard error (Σ seᵢ²)^½ / k, and a
/// t-test with Satterthwaite's degrees of freedom over the worlds' own
/// (each world's variance estimate carries dfᵢ; with every world's df
/// infinite it is the z-test). The worlds are the study's design, so no
/// between-world variance is estimated: the question is whether the
/// methods differ on these worlds, not on a population of worlds. Each
/// world counts once: inverse-variance weights estimated from a few seeds
/// per world are noisy and correlate with the effects they weigh, which
/// made the combined test liberal (7.5% false verdicts at α = 5% in the
/// four-world calibration, `tests/verdicts.rs`). None for fewer than two
/// worlds or a standard error that is not positive.
pub fn fixed_effect(worlds: &[&Comparison]) -> Option<Combined> {
    let k = worlds.len();
    if k < 2 || worlds.iter().any(|c| !c.effect.is_finite() || c.se.is_nan() || c.se <= 0.0 || !c.se.is_finite()) {
        return None;
    }
    let kf = k as f64;
    let effect = worlds.iter().map(|c| c.effect).sum::<f64>() / kf;
    let variance = worlds.iter().map(|c| c.se * c.se).sum::<f64>() / (kf * kf);
    let denom: f64 = worlds
        .iter()
        .map(|c| {
            let term = c.se * c.se / (kf * kf);
            if c.df.is_finite() {
                term * term / c.df
            } else {
                0.0
            }
        })
        .sum();
    let df = if denom > 0.0 { variance * variance / denom } else { f64::INFINITY };
    let se = variance.sqrt();
    let half = t_quantile(1.0 - ALPHA / 2.0, df) * se;
    Some(Combined {
        effect,
        low: effect - half,
        high: effect + half,
        p: p_two_sided(effect / se, df),
        se,
        df,
        positive: worlds.iter().filter(|c| c.effect > 0.0).count(),
        k,
    })
}

/// Wilson's 95% score interval of a proportion of `n` trials: it stays
/// inside [0, 1] where the normal interval p ± 1.96·se would not.
pub fn wilson(p: f64, n: usize) -> (f64, f64) {
    if n == 0 || !p.is_finite() {
        return (0.0, 1.0);
    }
    let z = Normal::standard().inverse_cdf(1.0 - ALPHA / 2.0);
    let n = n as f64;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).max(0.0).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The upper end of the exact (Clopper–Pearson) one-sided 1 − `level`
/// interval of a proportion: `hits` of `n`. What a calibration asserts a
/// false-verdict rate stays under.
pub fn clopper_pearson_upper(hits: usize, n: usize, level: f64) -> f64 {
    if hits >= n {
        return 1.0;
    }
    use statrs::distribution::Beta;
    Beta::new(hits as f64 + 1.0, (n - hits) as f64).map(|b| b.inverse_cdf(1.0 - level)).unwrap_or(1.0)
}

#[cfg(test)]
mod tests {
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
    fn the_method_by_prompt_interaction_by_hand() {
        // A = [[1, 0], [1, 1]], B = [[0, 0], [0, 1]] (runs × prompts).
        // Run means A [½, 1] (var ⅛ → ⅛/2), B [0, ½] (the same): Welch's part ⅛.
        // Unit means A [1, ½], B [0, ½]: per-prompt contrast [1, 0], var ½.
        // Residual mean squares (2 × 2 tables, df 1): ¼ each; their part ¼/2 + ¼/2.
        // Interaction (½ − ¼)/2 = ⅛; total ¼: se ½. Satterthwaite:
        // ¼² / ((1/16)²/1 + (1/16)²/1 + (1/8)²/1) = 8/3.
        let a = vec![vec![1.0, 0.0], vec![1.0, 1.0]];
        let b = vec![vec![0.0, 0.0], vec![0.0, 1.0]];
        let c = compare(&a, &b, true, 0).unwrap();
        assert!((c.effect - 0.5).abs() < 1e-12);
        assert!((c.se - 0.5).abs() < 1e-12, "{c:?}");
        assert!((c.df - 8.0 / 3.0).abs() < 1e-9, "{c:?}");
        // Unpaired (other prompts): the interaction part cannot be told from
        // the prompts' own effect and Welch's part is all.
        let u = compare(&a, &b, false, 0).unwrap();
        assert!((u.se - 0.125f64.sqrt()).abs() < 1e-12, "{u:?}");
        // Runs that agree on every prompt: the interaction is the whole spread.
        let same = vec![vec![1.0, 0.0, 1.0, 1.0]; 3];
        let other = vec![vec![0.0, 1.0, 1.0, 0.0]; 3];
        let c = compare(&same, &other, true, 0).unwrap();
        // d = [1, −1, 0, 1]: mean ¼, var (0.5625 + 1.5625 + 0.0625 + 0.5625)/3 = 11/12; /4.
        assert!((c.se - (11.0f64 / 48.0).sqrt()).abs() < 1e-12, "{c:?}");
        assert!((c.df - 3.0).abs() < 1e-9);
    }

    #[test]
    fn the_minimum_detectable_effect_and_equivalence_by_hand() {
        let c = Comparison {
            effect: 0.01,
            low: 0.0,
            high: 0.0,
            p: 0.5,
            se: 0.02,
            df: f64::INFINITY,
            runs: (3, 3),
            units: 100,
            basis: Basis::Seeds,
        };
        // (1.959964 + 0.841621) · 0.02 = 0.0560317.
        assert!((c.mde().unwrap() - 0.0560317).abs() < 1e-6, "{:?}", c.mde());
        // Margin 0.05: p(effect ≤ −0.05) = 1 − Φ(3) = 0.0013499; p(effect ≥ 0.05) = Φ(−2) = 0.0227501.
        assert!((c.equivalence_p(0.05).unwrap() - 0.0227501).abs() < 1e-6);
        let one_seed = Comparison { basis: Basis::PairedPrompts, ..c };
        assert_eq!((one_seed.mde(), one_seed.equivalence_p(0.05)), (None, None));
    }

    #[test]
    fn fixed_effect_by_hand() {
        let world = |effect: f64, se: f64| Comparison {
            effect,
            low: 0.0,
            high: 0.0,
            p: 0.0,
            se,
            df: f64::INFINITY,
            runs: (3, 3),
            units: 10,
            basis: Basis::Seeds,
        };
        // Equal weights: mean 0.2; se = √(0.01 + 0.04)/2 = 0.111803.
        let (a, b) = (world(0.1, 0.1), world(0.3, 0.2));
        let c = fixed_effect(&[&a, &b]).unwrap();
        assert!((c.effect - 0.2).abs() < 1e-12);
        assert!((c.se - 0.05f64.sqrt() / 2.0).abs() < 1e-12);
        assert!(c.df.is_infinite());
        // z = 0.2/0.111803 = 1.788854: p = 0.073638.
        assert!((c.p - 0.073638).abs() < 1e-5, "{}", c.p);
        // Finite df: two worlds of equal se and df 4 each: Satterthwaite gives 8.
        let (a, b) = (Comparison { df: 4.0, ..world(0.1, 0.1) }, Comparison { df: 4.0, ..world(0.2, 0.1) });
        assert!((fixed_effect(&[&a, &b]).unwrap().df - 8.0).abs() < 1e-9);
        assert!(fixed_effect(&[&a]).is_none());
    }

    #[test]
    fn proportions_by_hand() {
        // Wilson at 5 of 6: centre (0.8333 + 1.9208/6)/(1 + 3.8415/6) = 0.70326;
        // half 1.95996/1.64025 · √(0.02315 + 0.02667) = 0.26670.
        let (lo, hi) = wilson(5.0 / 6.0, 6);
        assert!((lo - 0.43649).abs() < 1e-4 && (hi - 0.96996).abs() < 1e-4, "{lo} {hi}");
        assert_eq!(wilson(1.0, 10).1, 1.0);
        // Clopper–Pearson, 0 of n: 1 − level^(1/n); 0 of 100 at 95%: 0.029513.
        assert!((clopper_pearson_upper(0, 100, 0.05) - 0.0295130).abs() < 1e-6);
    }
}
