//! The report's claims: each ranking a figure's `expect:` states ("`online`
//! above `offline`") tested on this run's per-prompt outcomes, and said in
//! words and numbers, in the world it was measured in.
//!
//! [`decide`] is the one path from figure data to verdicts; the report and
//! the calibration (`tests/verdicts.rs`) both go through it:
//!
//! 1. every figure's claims (each pair its `expect:` orders, and
//!    its `gaps_narrower_than:` pairs), each with its estimand:
//!    a trade-off's primary test is the budgeted frontier, its secondary
//!    the matched-KL curve (`estimands.rs`); a `best` figure's is the
//!    cross-fitted peak; a gap claim the difference of two such gaps;
//! 2. per declaration swept over worlds, each claim combined over its
//!    worlds (fixed effect, `stats::fixed_effect`);
//! 3. one Holm family over everything that can be decided: the claims, the
//!    equivalence tests of figures with a `margin:`, and the combinations;
//! 4. the verdict words: holds, does not hold, level within ±margin,
//!    undecided, not comparable.
//!
//! Replicates are a method's training seeds (sweep axes named `seed`); a
//! method's other sweep axes are a grid chosen over on other seeds.

use std::collections::BTreeMap;

use crate::report::estimands::{self, Checkpoint, NotComparable, Replicate, Run};
use crate::report::figures::{Figure, FigureKind, Point};
use crate::report::stats::{self, Basis, Combined, Comparison, ALPHA};

/// What a comparison estimates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Estimand {
    /// The best win rate within a KL budget, averaged over budgets.
    Frontier,
    /// The win rate interpolated at matched KL along each run's path.
    MatchedCurve,
    /// The best checkpoint or member, whatever its KL.
    Peak,
    /// One figure's gap between two methods' peaks against another's.
    GapOfPeaks,
}

impl Estimand {
    pub fn name(&self) -> &'static str {
        match self {
            Estimand::Frontier => "budgeted frontier",
            Estimand::MatchedCurve => "matched-KL curve",
            Estimand::Peak => "cross-fitted peak",
            Estimand::GapOfPeaks => "difference of gaps between peaks",
        }
    }
}

/// One analysis of a claim: what was compared, and the comparison.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub estimand: Estimand,
    /// The KL window the estimand was computed over, where it has one.
    pub window: Option<(f64, f64)>,
    pub comparison: Comparison,
}

impl Analysis {
    /// The estimand in words, with its window.
    pub fn what(&self) -> String {
        match (self.estimand, self.window) {
            (Estimand::Frontier, Some((lo, hi))) => format!(
                "budgeted frontier (best win rate with KL ≤ k, {} budgets k over KL {lo:.2}–{hi:.2}, chosen on other seeds and the other half of the prompts)",
                estimands::BUDGETS
            ),
            (Estimand::MatchedCurve, Some((lo, hi))) => {
                format!("matched-KL curve (win rate along each run's training path, averaged over KL {lo:.2}–{hi:.2})")
            }
            (Estimand::Peak, _) => {
                "cross-fitted peak (best checkpoint or member chosen on other seeds and the other half of the prompts)".into()
            }
            (e, _) => e.name().into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The expected ranking, decided.
    Holds,
    /// The reverse of the expected ranking, decided.
    DoesNotHold,
    /// Level within ±margin, decided by the equivalence test.
    Level,
    Undecided,
    /// The methods have no trained checkpoints in common KL.
    NotComparable,
}

impl Verdict {
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::DoesNotHold => "does not hold",
            Verdict::Level => "level",
            Verdict::Undecided => "undecided",
            Verdict::NotComparable => "not comparable",
        }
    }

    /// Whether the verdict is a decision (what Holm's family controls).
    pub fn decided(&self) -> bool {
        matches!(self, Verdict::Holds | Verdict::DoesNotHold | Verdict::Level)
    }
}

/// "`upper` above `lower`", tested in one figure (one world).
#[derive(Debug, Clone)]
pub struct Claim {
    /// The figure's index in the figures given to [`decide`].
    pub figure: usize,
    pub upper: String,
    pub lower: String,
    /// The test that decides, and the one reported beside it.
    pub primary: Option<Analysis>,
    pub secondary: Option<Analysis>,
    /// Why there is no test, when there is none.
    pub missing: Option<String>,
    /// Set when the methods have no common trained KL.
    pub not_comparable: Option<NotComparable>,
    /// Replicates and grid members per method, as (upper, lower).
    pub design: ((usize, usize), (usize, usize)),
    /// The figure's equivalence margin, and the equivalence test's p.
    pub margin: Option<f64>,
    pub p_equivalence: Option<f64>,
    /// After Holm over the report's family.
    pub p_holm: Option<f64>,
    pub p_equivalence_holm: Option<f64>,
}

impl Claim {
    fn new(figure: usize, upper: String, lower: String, design: ((usize, usize), (usize, usize))) -> Claim {
        Claim {
            figure,
            upper,
            lower,
            primary: None,
            secondary: None,
            missing: None,
            not_comparable: None,
            design,
            margin: None,
            p_equivalence: None,
            p_holm: None,
            p_equivalence_holm: None,
        }
    }

    /// A cell of a factorial (`trend:`): an estimate, decided only through
    /// its trend test.
    pub fn is_cell(&self, figures: &[Figure]) -> bool {
        !figures[self.figure].trend.is_empty()
    }

    pub fn verdict(&self) -> Verdict {
        verdict_of(self.primary.as_ref().map(|a| a.comparison.effect), self.p_holm, self.p_equivalence_holm)
            .unwrap_or(if self.not_comparable.is_some() { Verdict::NotComparable } else { Verdict::Undecided })
    }
}

/// The decision from an effect and its adjusted p-values; None when there
/// is no test.
fn verdict_of(effect: Option<f64>, p: Option<f64>, p_equivalence: Option<f64>) -> Option<Verdict> {
    let effect = effect?;
    Some(match (p, p_equivalence) {
        (Some(p), _) if p < ALPHA => {
            if effect > 0.0 {
                Verdict::Holds
            } else {
                Verdict::DoesNotHold
            }
        }
        (_, Some(q)) if q < ALPHA => Verdict::Level,
        _ => Verdict::Undecided,
    })
}

/// One claim of a declaration swept over worlds, combined over them.
#[derive(Debug, Clone)]
pub struct CombinedClaim {
    /// The figure declaration, and the claim's methods.
    pub decl: String,
    pub upper: String,
    pub lower: String,
    /// Indices into [`Decisions::claims`] of its per-world claims.
    pub members: Vec<usize>,
    pub combined: Option<Combined>,
    /// Why the worlds were not combined, when they were not.
    pub why_not: Option<String>,
    pub p_holm: Option<f64>,
}

impl CombinedClaim {
    pub fn verdict(&self) -> Verdict {
        verdict_of(self.combined.as_ref().map(|c| c.effect), self.p_holm, None).unwrap_or(Verdict::Undecided)
    }
}

/// Every claim of a report, combined over worlds where its figures are,
/// adjusted as one family.
#[derive(Debug, Clone, Default)]
pub struct Decisions {
    pub claims: Vec<Claim>,
    pub combined: Vec<CombinedClaim>,
    /// The trend tests of factorials (`trend:`), whose cells' claims are
    /// estimates and not in the family.
    pub trends: Vec<crate::report::trend::Trend>,
    /// The size of Holm's family.
    pub family: usize,
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

/// A method's runs with their checkpoints (KL on x): replicate → members.
fn replicates(m: &Method) -> Vec<Replicate> {
    m.values()
        .map(|members| {
            members
                .iter()
                .map(|(name, pts)| Run {
                    member: name.to_string(),
                    path: pts
                        .iter()
                        .map(|p| Checkpoint { step: p.step.unwrap_or(0), kl: p.x, units: p.units.clone() })
                        .collect(),
                })
                .collect()
        })
        .collect()
}

/// Per replicate, the peak over its members and steps (the x of a `best`
/// figure is a step, not a KL: every point is a candidate).
fn peaks(m: &Method) -> Option<Vec<Vec<f64>>> {
    let reps: Vec<Replicate> = m
        .values()
        .map(|members| {
            members
                .iter()
                .flat_map(|(name, pts)| {
                    pts.iter().map(move |p| Run {
                        member: format!("{name}@{}", p.step.unwrap_or(0)),
                        // Every point counts as trained here: a `best` figure
                        // may rank a model without steps (an SFT policy).
                        path: vec![Checkpoint { step: 1, kl: 0.0, units: p.units.clone() }],
                    })
                })
                .collect()
        })
        .collect();
    estimands::peak(&reps)
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

/// The claims of one figure (index `i` of `figures`), untested by Holm yet.
pub fn claims_of(figures: &[Figure], i: usize) -> Vec<Claim> {
    let fig = &figures[i];
    let mut out = vec![];
    if !matches!(fig.kind, FigureKind::Tradeoff | FigureKind::Best) {
        return out;
    }
    // Every pair the ranking orders, not only neighbours: a ranking
    // `[online, tandem, offline]` claims online above offline too.
    let pairs: Vec<[String; 2]> = (0..fig.expect.len())
        .flat_map(|i| (i + 1..fig.expect.len()).map(move |j| (i, j)))
        .map(|(i, j)| [fig.expect[i].clone(), fig.expect[j].clone()])
        .collect();
    for w in &pairs {
        let (upper, lower) = (method(fig, &w[0]), method(fig, &w[1]));
        let mut claim = Claim::new(i, w[0].clone(), w[1].clone(), (shape(&upper), shape(&lower)));
        claim.margin = fig.margin;
        if upper.is_empty() || lower.is_empty() {
            let absent = if upper.is_empty() { &w[0] } else { &w[1] };
            claim.missing = Some(format!("`{absent}` has no per-prompt results in this figure"));
            out.push(claim);
            continue;
        }
        let pair = paired(&upper, &lower);
        let seed = seed_of(&format!("{}/{}/{}", fig.name, w[0], w[1]));
        let test = |estimand, window, a: &[Vec<f64>], b: &[Vec<f64>]| {
            stats::compare(a, b, pair, seed).map(|comparison| Analysis { estimand, window, comparison })
        };
        if fig.kind == FigureKind::Tradeoff {
            let (ra, rb) = (replicates(&upper), replicates(&lower));
            match estimands::frontier(&ra, &rb) {
                Ok(f) => claim.primary = test(Estimand::Frontier, Some(f.window), &f.a, &f.b),
                Err(e) => claim.not_comparable = Some(e),
            }
            if let Ok(m) = estimands::matched_curve(&ra, &rb) {
                claim.secondary = test(Estimand::MatchedCurve, Some(m.window), &m.a, &m.b);
            }
        } else if let (Some(a), Some(b)) = (peaks(&upper), peaks(&lower)) {
            claim.primary = test(Estimand::Peak, None, &a, &b);
        }
        if let (Some(a), Some(m)) = (&claim.primary, claim.margin) {
            claim.p_equivalence = a.comparison.equivalence_p(m);
        }
        out.push(claim);
    }
    out
}

/// A trade-off claim's matched-KL difference (upper − lower) at each point
/// of its window, each with its unadjusted 95% interval, computed as the
/// claim's own test computes its average: what the figure's difference
/// panel draws. Empty when the methods are not comparable. (Not part of
/// [`decide`]: only drawn figures need it.)
pub fn difference_curve(fig: &Figure, claim: &Claim) -> Vec<(f64, Comparison)> {
    let (upper, lower) = (method(fig, &claim.upper), method(fig, &claim.lower));
    if fig.kind != FigureKind::Tradeoff || upper.is_empty() || lower.is_empty() {
        return vec![];
    }
    let pair = paired(&upper, &lower);
    let seed = seed_of(&format!("{}/{}/{}", fig.name, claim.upper, claim.lower));
    match estimands::matched_points(&replicates(&upper), &replicates(&lower)) {
        Ok(points) => points.iter().filter_map(|(k, p)| Some((*k, stats::compare(&p.a, &p.b, pair, seed)?))).collect(),
        Err(_) => vec![],
    }
}

/// The claims a `best` figure's `gaps_narrower_than:` makes: for each
/// neighbouring pair of its `expect:` and the pair in the same place of the
/// other figure's, "the other figure's gap above this one's", tested as the
/// difference of the two gaps between cross-fitted peaks (on the win rate's
/// own scale, not normalised).
pub fn gap_claims(figures: &[Figure], figure: usize) -> Vec<Claim> {
    let fig = &figures[figure];
    let Some(other_name) = &fig.narrower_than else { return vec![] };
    let mut out = vec![];
    let Some(other) = figures.iter().find(|f| &f.name == other_name) else {
        let mut c = Claim::new(figure, format!("the gaps of `{other_name}`"), "this figure's".into(), ((0, 0), (0, 0)));
        c.missing = Some(format!("`{other_name}` is not a figure of this study"));
        return vec![c];
    };
    for (mine, theirs) in fig.expect.windows(2).zip(other.expect.windows(2)) {
        let label = |f: &Figure, w: &[String]| format!("{} − {} ({})", w[0], w[1], f.name);
        let (a, b) = (method(other, &theirs[0]), method(other, &theirs[1]));
        let (c, d) = (method(fig, &mine[0]), method(fig, &mine[1]));
        // Per side: the fewer seeds and the larger grid of its two methods.
        let design = (both(shape(&a), shape(&b)), both(shape(&c), shape(&d)));
        let mut claim = Claim::new(figure, label(other, theirs), label(fig, mine), design);
        let paired = paired(&a, &b) && paired(&c, &d) && paired(&a, &c);
        let seed = seed_of(&format!("{}/{}/gaps/{}", fig.name, other.name, mine.join("/")));
        match (peaks(&a), peaks(&b), peaks(&c), peaks(&d)) {
            (Some(a), Some(b), Some(c), Some(d)) if [&a, &b, &c, &d].iter().all(|m| !m.is_empty()) => {
                claim.primary = stats::compare_gaps((&a, &b), (&c, &d), paired, seed).map(|comparison| Analysis {
                    estimand: Estimand::GapOfPeaks,
                    window: None,
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

pub use crate::report::figures::is_world_axis;

/// A trend slope's word: "holds" when the difference is decided to grow
/// with the factor, "does not hold" when decided to shrink.
pub fn slope_verdict(s: &crate::report::trend::Slope) -> Verdict {
    match s.p_holm {
        Some(p) if p < ALPHA && s.estimate > 0.0 => Verdict::Holds,
        Some(p) if p < ALPHA => Verdict::DoesNotHold,
        _ => Verdict::Undecided,
    }
}

/// The whole chain: claims of every figure, combinations over worlds, and
/// one Holm family over every test that can decide.
pub fn decide(figures: &[Figure]) -> Decisions {
    let mut claims: Vec<Claim> = vec![];
    for i in 0..figures.len() {
        claims.extend(claims_of(figures, i));
        claims.extend(gap_claims(figures, i));
    }
    // Claims of one declaration, by (upper, lower), over its sweep members.
    let mut groups: Vec<((String, String, String), Vec<usize>)> = vec![];
    for (k, c) in claims.iter().enumerate() {
        let fig = &figures[c.figure];
        // A factorial's cells are not combined: its trend test is their test.
        if fig.axes.is_empty() || !fig.trend.is_empty() {
            continue;
        }
        let id = (fig.decl.clone(), c.upper.clone(), c.lower.clone());
        match groups.iter_mut().find(|(g, _)| *g == id) {
            Some((_, v)) => v.push(k),
            None => groups.push((id, vec![k])),
        }
    }
    let mut combined = vec![];
    for ((decl, upper, lower), members) in groups {
        if members.len() < 2 {
            continue;
        }
        let mut row =
            CombinedClaim { decl, upper, lower, members: members.clone(), combined: None, why_not: None, p_holm: None };
        let other_axes: Vec<&str> = members
            .iter()
            .flat_map(|&k| figures[claims[k].figure].axes.iter())
            .map(|(axis, _)| axis.as_str())
            .filter(|a| !is_world_axis(a))
            .collect();
        let comparisons: Vec<&Comparison> =
            members.iter().filter_map(|&k| claims[k].primary.as_ref().map(|a| &a.comparison)).collect();
        if let Some(axis) = other_axes.first() {
            row.why_not = Some(format!("its figures differ in `{axis}`, not only in the world: they are not combined"));
        } else if comparisons.len() < members.len() {
            row.why_not = Some("a world has no test".into());
        } else if comparisons.iter().any(|c| !c.decidable()) {
            row.why_not = Some("a world has one seed per method (prompt noise only)".into());
        } else {
            row.combined = stats::fixed_effect(&comparisons);
            if row.combined.is_none() {
                row.why_not = Some("a world's standard error is 0".into());
            }
        }
        combined.push(row);
    }
    // One family: every decidable claim's test and equivalence test, every combination.
    let compared: Vec<crate::report::trend::Compared> = claims
        .iter()
        .map(|c| crate::report::trend::Compared {
            figure: c.figure,
            upper: c.upper.clone(),
            lower: c.lower.clone(),
            estimate: c
                .primary
                .as_ref()
                .filter(|a| a.comparison.decidable())
                .map(|a| (a.comparison.effect, a.comparison.se)),
        })
        .collect();
    let mut trends = crate::report::trend::trends(figures, &compared);
    enum Slot {
        Claim(usize),
        Equivalence(usize),
        Combined(usize),
        Slope(usize, usize),
    }
    let mut slots = vec![];
    let mut p = vec![];
    for (k, c) in claims.iter().enumerate() {
        if c.is_cell(figures) {
            continue;
        }
        if let Some(a) = c.primary.as_ref().filter(|a| a.comparison.decidable()) {
            slots.push(Slot::Claim(k));
            p.push(a.comparison.p);
            if let Some(q) = c.p_equivalence {
                slots.push(Slot::Equivalence(k));
                p.push(q);
            }
        }
    }
    for (k, c) in combined.iter().enumerate() {
        if let Some(r) = &c.combined {
            slots.push(Slot::Combined(k));
            p.push(r.p);
        }
    }
    for (t, trend) in trends.iter().enumerate() {
        for (s, slope) in trend.slopes.iter().enumerate() {
            slots.push(Slot::Slope(t, s));
            p.push(slope.p);
        }
    }
    let family = p.len();
    for (slot, adj) in slots.into_iter().zip(stats::holm(&p)) {
        match slot {
            Slot::Claim(k) => claims[k].p_holm = Some(adj),
            Slot::Equivalence(k) => claims[k].p_equivalence_holm = Some(adj),
            Slot::Combined(k) => combined[k].p_holm = Some(adj),
            Slot::Slope(t, s) => trends[t].slopes[s].p_holm = Some(adj),
        }
    }
    Decisions { claims, combined, trends, family }
}

/// "in world summarize": where a figure's claim was measured.
pub fn place(fig: &Figure) -> String {
    if fig.axes.is_empty() {
        return String::new();
    }
    if fig.axes.iter().all(|(a, _)| is_world_axis(a)) {
        let worlds: Vec<&str> = fig.axes.iter().map(|(_, v)| v.as_str()).collect();
        return format!("in world {}", worlds.join(", "));
    }
    format!("at {}", fig.member)
}

/// The verdict in words and numbers, and how it was computed.
/// The verdict word of a claim, or "cell" for a cell of a factorial,
/// which is decided only through its trend test.
pub fn word_of(fig: &Figure, c: &Claim) -> &'static str {
    if fig.trend.is_empty() {
        c.verdict().word()
    } else {
        "cell"
    }
}

pub fn sentence(fig: &Figure, c: &Claim) -> String {
    let place = place(fig);
    let head = format!(
        "{}{}the expected ranking `{}` > `{}`",
        place,
        if place.is_empty() { "" } else { ", " },
        c.upper,
        c.lower
    );
    let verdict = c.verdict();
    let Some(a) = &c.primary else {
        let why = match &c.not_comparable {
            Some(nc) => not_comparable_words(nc, &c.upper, &c.lower),
            None => c.missing.clone().unwrap_or_else(|| "no comparison could be made".into()),
        };
        return format!("{head}: **{}** — {why}.", verdict.word());
    };
    let cmp = &a.comparison;
    if !fig.trend.is_empty() {
        return format!(
            "{head}: **cell** — {} ({}); a cell of the trend test over {}, not decided on its own.",
            numbers(a, None),
            design_words(c, cmp),
            fig.trend.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(" and ")
        );
    }
    let word = match (verdict, c.margin) {
        (Verdict::Level, Some(m)) => format!("level within ±{m}"),
        _ => verdict.word().to_string(),
    };
    let mut s = format!("{head}: **{word}** — {}", numbers(a, c.p_holm));
    s.push_str(&format!(" ({})", design_words(c, cmp)));
    if let (Some(q), Some(m)) = (c.p_equivalence_holm, c.margin) {
        s.push_str(&format!("; equivalence within ±{m}: p {} (Holm)", p_is(q)));
    }
    if !verdict.decided() {
        match cmp.mde() {
            Some(mde) => s.push_str(&format!(
                "; not level either: the smallest difference this test detects with 80% power is ±{mde:.3}"
            )),
            None => s.push_str(
                "; one seed per method measures prompt noise only, not seed variation: deciding needs at least 2 seeds per method",
            ),
        }
    }
    if let Some(sec) = &c.secondary {
        s.push_str(&format!(". Beside it, the {}", numbers(sec, None)));
    }
    s.push('.');
    s
}

/// Each method's trained KL range, said.
pub fn not_comparable_words(nc: &NotComparable, upper: &str, lower: &str) -> String {
    let range = |r: Option<(f64, f64)>| r.map_or("none".to_string(), |(lo, hi)| format!("{lo:.2}–{hi:.2}"));
    format!(
        "not comparable at matched KL: {} (trained checkpoints' KL: `{upper}` {}, `{lower}` {})",
        nc.why,
        range(nc.ranges[0]),
        range(nc.ranges[1])
    )
}

/// The design in words: "`online` 3 seeds, `offline` 3 seeds, a grid of 9; 256 prompts each".
fn design_words(c: &Claim, cmp: &Comparison) -> String {
    let grid =
        |(_, members): (usize, usize)| if members > 1 { format!(" × a grid of {members}") } else { String::new() };
    let seeds = |n: usize| format!("{n} seed{}", if n == 1 { "" } else { "s" });
    format!(
        "`{}` {}{}, `{}` {}{}; {} prompts each",
        c.upper,
        seeds(cmp.runs.0),
        grid(c.design.0),
        c.lower,
        seeds(cmp.runs.1),
        grid(c.design.1),
        cmp.units
    )
}

/// "budgeted frontier …: +0.050 [+0.020, +0.080] (95%, unadjusted), p = 0.003 (Holm; 0.001 alone)".
pub fn numbers(a: &Analysis, p_holm: Option<f64>) -> String {
    let c = &a.comparison;
    let basis = match c.basis {
        Basis::Seeds => "t over seeds × prompts",
        Basis::PairedPrompts => "paired bootstrap over prompts",
        Basis::UnpairedPrompts => "bootstrap over prompts, unpaired",
    };
    let p = match p_holm {
        Some(h) => format!("p {} (Holm; {} alone)", p_is(h), fmt_p(c.p)),
        None => format!("p {}", p_is(c.p)),
    };
    format!("{}: {:+.3} [{:+.3}, {:+.3}] (95%, unadjusted), {p}, {basis}", a.what(), c.effect, c.low, c.high)
}

/// "= 0.024" or "< 0.001".
fn p_is(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".into()
    } else {
        format!("= {p:.3}")
    }
}

pub fn fmt_p(p: f64) -> String {
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
            let last = pts.iter().max_by_key(|q| q.step).expect("two points");
            let candidates: Vec<Vec<f64>> = pts.iter().map(|q| q.units.clone()).collect();
            p.push(estimands::cross_fitted_peak(&candidates)?);
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
