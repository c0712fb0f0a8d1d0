//! The report's claims: each ranking a figure's `expect:` states ("the
//! paper: `online` above `offline`") tested on this run's per-prompt
//! outcomes with the statistics of `stats.rs`, Holm-corrected over every
//! claim of the report, and said in words and numbers.
//!
//! A trade-off claim is tested at matched KL (the paper's claim is about
//! the same KL budget); its cross-fitted peak is reported beside it. A
//! `best` figure's claim compares cross-fitted peaks. Replicates are a
//! method's training seeds; a method's other sweep axes are a grid chosen
//! over by cross-fitting, with its size stated.

use std::collections::BTreeMap;

use crate::report::figures::{Figure, FigureKind, Point};
use crate::report::stats::{self, Basis, Checkpoint, Comparison, Replicate, ALPHA};

/// KL grid points of a matched-KL comparison.
const GRID: usize = 20;

/// One analysis of a claim: what was compared, and the comparison.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub what: String,
    pub comparison: Comparison,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Supports,
    Contradicts,
    Undecided,
}

impl Verdict {
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Supports => "supports the paper",
            Verdict::Contradicts => "contradicts the paper",
            Verdict::Undecided => "undecided",
        }
    }
}

/// "The paper: `upper` above `lower`", tested.
#[derive(Debug, Clone)]
pub struct Claim {
    pub figure: String,
    pub upper: String,
    pub lower: String,
    /// The test that decides (matched KL, or the cross-fitted peak).
    pub primary: Option<Analysis>,
    pub secondary: Option<Analysis>,
    /// Why there is no test, when there is none.
    pub missing: Option<String>,
    /// Replicates and grid members per method, as (upper, lower).
    pub design: ((usize, usize), (usize, usize)),
    /// The primary p-value after Holm over the report's decidable claims.
    pub p_holm: Option<f64>,
}

/// A method's points: replicate → candidate (grid member) → points by step.
type Method<'a> = BTreeMap<&'a str, BTreeMap<&'a str, Vec<&'a Point>>>;

fn method<'a>(fig: &'a Figure, series: &str) -> Method<'a> {
    let mut m: Method = BTreeMap::new();
    for p in fig.points.iter().filter(|p| p.series == series && !p.units.is_empty()) {
        m.entry(p.replicate.as_str()).or_default().entry(p.candidate.as_str()).or_default().push(p);
    }
    for members in m.values_mut() {
        for pts in members.values_mut() {
            pts.sort_by_key(|p| p.step);
        }
    }
    m
}

fn shape(m: &Method) -> (usize, usize) {
    (m.len(), m.values().map(|c| c.len()).max().unwrap_or(0))
}

/// Per replicate, the cross-fitted best of all its points (members × steps).
fn peaks(m: &Method) -> Option<Vec<Vec<f64>>> {
    m.values()
        .map(|members| {
            let candidates: Vec<Vec<f64>> = members.values().flatten().map(|p| p.units.clone()).collect();
            stats::cross_fitted_peak(&candidates)
        })
        .collect()
}

fn curves(m: &Method) -> Vec<Replicate> {
    m.values()
        .map(|members| {
            members
                .values()
                .map(|pts| pts.iter().map(|p| Checkpoint { kl: p.x, units: p.units.clone() }).collect())
                .collect()
        })
        .collect()
}

/// Whether unit i is the same prompt for every point of both methods.
fn paired(a: &Method, b: &Method) -> bool {
    let mut sets = a.values().chain(b.values()).flat_map(|m| m.values()).flatten().map(|p| &p.unit_set);
    let first = sets.next();
    first.is_some_and(|f| sets.all(|s| s == f))
}

fn seed_of(text: &str) -> u64 {
    let h = blake3::hash(text.as_bytes());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
}

/// The claims of one figure, untested by Holm yet.
pub fn claims_of(fig: &Figure) -> Vec<Claim> {
    let mut out = vec![];
    if !matches!(fig.kind, FigureKind::Tradeoff | FigureKind::Best) {
        return out;
    }
    for w in fig.expect.windows(2) {
        let (upper, lower) = (method(fig, &w[0]), method(fig, &w[1]));
        let mut claim = Claim {
            figure: fig.title.clone(),
            upper: w[0].clone(),
            lower: w[1].clone(),
            primary: None,
            secondary: None,
            missing: None,
            design: (shape(&upper), shape(&lower)),
            p_holm: None,
        };
        if upper.is_empty() || lower.is_empty() {
            let absent = if upper.is_empty() { &w[0] } else { &w[1] };
            claim.missing = Some(format!("`{absent}` has no per-prompt results in this figure"));
            out.push(claim);
            continue;
        }
        let pair = paired(&upper, &lower);
        let seed = seed_of(&format!("{}/{}/{}", fig.name, w[0], w[1]));
        let peak = match (peaks(&upper), peaks(&lower)) {
            (Some(a), Some(b)) => stats::compare(&a, &b, pair, seed).map(|comparison| Analysis {
                what: "cross-fitted peak (best checkpoint or member chosen on half the prompts, scored on the other)"
                    .into(),
                comparison,
            }),
            _ => None,
        };
        if fig.kind == FigureKind::Tradeoff {
            let matched = stats::matched_kl(&curves(&upper), &curves(&lower), GRID, pair, seed);
            match matched {
                Some(m) => {
                    claim.primary = Some(Analysis {
                        what: format!("win rate at matched KL, averaged over KL {:.2}–{:.2}", m.range.0, m.range.1),
                        comparison: m.average,
                    });
                    claim.secondary = peak;
                }
                None => {
                    claim.missing = Some("the two methods' KL ranges do not overlap: no matched-KL comparison".into());
                    claim.secondary = peak;
                }
            }
        } else {
            claim.primary = peak;
        }
        out.push(claim);
    }
    out
}

/// The claims a `best` figure's `gaps_narrower_than:` makes: for each
/// neighbouring pair of its `expect:` and the pair in the same place of the
/// other figure's, "the other figure's gap above this one's", tested as the
/// difference of the two gaps between cross-fitted peaks (on the win rate's
/// own scale, not normalised), with `figure` the index of the figure that
/// makes the claim.
pub fn gap_claims(figures: &[Figure], figure: usize) -> Vec<Claim> {
    let fig = &figures[figure];
    let Some(other_name) = &fig.narrower_than else { return vec![] };
    let mut out = vec![];
    let Some(other) = figures.iter().find(|f| &f.name == other_name) else {
        return vec![Claim {
            figure: fig.title.clone(),
            upper: format!("the gaps of `{other_name}`"),
            lower: "this figure's".into(),
            primary: None,
            secondary: None,
            missing: Some(format!("`{other_name}` is not a figure of this study")),
            design: ((0, 0), (0, 0)),
            p_holm: None,
        }];
    };
    for (mine, theirs) in fig.expect.windows(2).zip(other.expect.windows(2)) {
        let label = |f: &Figure, w: &[String]| format!("{} − {} ({})", w[0], w[1], f.name);
        let (a, b) = (method(other, &theirs[0]), method(other, &theirs[1]));
        let (c, d) = (method(fig, &mine[0]), method(fig, &mine[1]));
        let mut claim = Claim {
            figure: fig.title.clone(),
            upper: label(other, theirs),
            lower: label(fig, mine),
            primary: None,
            secondary: None,
            missing: None,
            // Per side: the fewer seeds and the larger grid of its two methods.
            design: (both(shape(&a), shape(&b)), both(shape(&c), shape(&d))),
            p_holm: None,
        };
        let paired = paired(&a, &b) && paired(&c, &d) && paired(&a, &c);
        let seed = seed_of(&format!("{}/{}/gaps/{}", fig.name, other.name, mine.join("/")));
        match (peaks(&a), peaks(&b), peaks(&c), peaks(&d)) {
            (Some(a), Some(b), Some(c), Some(d)) if [&a, &b, &c, &d].iter().all(|m| !m.is_empty()) => {
                claim.primary = stats::compare_gaps((&a, &b), (&c, &d), paired, seed).map(|comparison| Analysis {
                    what: "difference of the gaps between cross-fitted peaks (win rate, not normalised)".into(),
                    comparison,
                });
            }
            _ => claim.missing = Some("a method of the four has no per-prompt results".into()),
        }
        out.push(claim);
    }
    out
}

fn both(x: (usize, usize), y: (usize, usize)) -> (usize, usize) {
    (x.0.min(y.0), x.1.max(y.1))
}

/// Holm over the primary p-values of every decidable claim of a report.
pub fn adjust(claims: &mut [Claim]) {
    let idx: Vec<usize> =
        (0..claims.len()).filter(|&i| claims[i].primary.as_ref().is_some_and(|a| a.comparison.decidable())).collect();
    let p: Vec<f64> = idx.iter().map(|&i| claims[i].primary.as_ref().expect("filtered").comparison.p).collect();
    for (i, adj) in idx.into_iter().zip(stats::holm(&p)) {
        claims[i].p_holm = Some(adj);
    }
}

impl Claim {
    pub fn verdict(&self) -> Verdict {
        match (&self.primary, self.p_holm) {
            (Some(a), Some(p)) if p < ALPHA => {
                if a.comparison.effect > 0.0 {
                    Verdict::Supports
                } else {
                    Verdict::Contradicts
                }
            }
            _ => Verdict::Undecided,
        }
    }

    /// The design in words: "3 seeds × 256 prompts" per method.
    fn design_words(&self, c: &Comparison) -> String {
        let grid =
            |(_, members): (usize, usize)| if members > 1 { format!(", a grid of {members}") } else { String::new() };
        format!(
            "`{}` {} seed{}{}, `{}` {} seed{}{}; {} prompts each",
            self.upper,
            c.runs.0,
            if c.runs.0 == 1 { "" } else { "s" },
            grid(self.design.0),
            self.lower,
            c.runs.1,
            if c.runs.1 == 1 { "" } else { "s" },
            grid(self.design.1),
            c.units
        )
    }

    /// The verdict in words and numbers, and how it was computed.
    pub fn sentence(&self) -> String {
        let head = format!("paper: `{}` above `{}`", self.upper, self.lower);
        let Some(a) = &self.primary else {
            let why = self.missing.clone().unwrap_or_else(|| "no comparison could be made".into());
            let peak = self.secondary.as_ref().map(|s| format!("; {}", numbers(s, None))).unwrap_or_default();
            return format!("{head} — **undecided**: {why}{peak}.");
        };
        let c = &a.comparison;
        let verdict = self.verdict();
        let mut s = format!("{head} — **{}**: {}", verdict.word(), numbers(a, self.p_holm));
        s.push_str(&format!(" ({})", self.design_words(c)));
        if verdict == Verdict::Undecided {
            match (c.basis, &c.power) {
                (Basis::Seeds, Some(pl)) => {
                    let seeds = pl.seeds_needed.map_or("more than 1,000 seeds per method".to_string(), |s| {
                        format!("about {} seeds per method", grouped(s))
                    });
                    let prompts = pl.prompts_needed.map_or(
                        "no number of prompts suffices at these seeds (seed variation dominates)".to_string(),
                        |n| format!("about {} prompts per point", grouped(n)),
                    );
                    s.push_str(&format!(
                        "; an effect of this size is decided with 80% power by {seeds}, or {prompts} (power now {:.0}%)",
                        100.0 * pl.power_now
                    ));
                }
                _ => s.push_str(
                    "; one seed per method measures prompt noise only, not seed variation: deciding needs at least 2 seeds per method",
                ),
            }
        }
        if let Some(sec) = &self.secondary {
            s.push_str(&format!(". Beside it, {}", numbers(sec, None)));
        }
        s.push('.');
        s
    }
}

/// "the win rate at matched KL …: +0.050 [0.020, 0.080], p = 0.003 (Holm)".
fn numbers(a: &Analysis, p_holm: Option<f64>) -> String {
    let c = &a.comparison;
    let basis = match c.basis {
        Basis::Seeds => "Welch's t over seeds",
        Basis::PairedPrompts => "paired bootstrap over prompts",
        Basis::UnpairedPrompts => "bootstrap over prompts, unpaired",
    };
    let p = match p_holm {
        Some(h) => format!("p = {} (Holm; {} unadjusted)", fmt_p(h), fmt_p(c.p)),
        None => format!("p = {}", fmt_p(c.p)),
    };
    format!("{}: {:+.3} [{:+.3}, {:+.3}], {p}, {basis}", a.what, c.effect, c.low, c.high)
}

/// A count with thousands separators, as the report writes numbers: 567,656.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn fmt_p(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".into()
    } else {
        format!("{p:.3}")
    }
}

/// Over-optimisation of one series: per replicate, the cross-fitted peak of
/// each member's checkpoints against that member's last checkpoint, paired
/// by prompt. None when no member has two checkpoints.
pub fn over_optimisation(fig: &Figure, series: &str) -> Option<Comparison> {
    let m = method(fig, series);
    let (mut peaks, mut lasts) = (vec![], vec![]);
    for members in m.values() {
        let (mut p, mut l): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (vec![], vec![]);
        for pts in members.values().filter(|pts| pts.len() >= 2) {
            let last = pts.iter().max_by(|a, b| a.x.total_cmp(&b.x)).expect("two points");
            let candidates: Vec<Vec<f64>> = pts.iter().map(|q| q.units.clone()).collect();
            p.push(stats::cross_fitted_peak(&candidates)?);
            l.push(last.units.clone());
        }
        if p.is_empty() {
            continue;
        }
        let avg = |v: &[Vec<f64>]| {
            let n = v.iter().map(|x| x.len()).min().unwrap_or(0);
            (0..n).map(|i| v.iter().map(|x| x[i]).sum::<f64>() / v.len() as f64).collect::<Vec<f64>>()
        };
        peaks.push(avg(&p));
        lasts.push(avg(&l));
    }
    stats::compare(&peaks, &lasts, true, seed_of(&format!("{}/{series}/over", fig.name)))
}

#[cfg(test)]
mod tests {
    use super::grouped;

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(567656), "567,656");
        assert_eq!(grouped(1234567), "1,234,567");
    }
}
