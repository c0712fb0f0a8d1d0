//! The trend test of a factorial: trade-off figures that name the same
//! factors in `trend:` and rank the same `expect:` are the cells of one
//! design. Each cell's difference between two ranked methods (its claim's
//! primary estimate, with its standard error) is an estimate, not decided on
//! its own; one weighted regression over the cells asks, for each ranked
//! pair and factor, whether the difference grows with the factor.
//!
//! The model (a fixed-effect meta-regression with a dispersion factor):
//! d_c = b₀ + Σ_f b_f · z_{c,f} + e_c, with e_c's variance φ·se_c², where
//! z_{c,f} is the cell's level of factor f rescaled to [0, 1] over the
//! design's levels, so that b_f is the change in the difference across the
//! factor's whole range. Weights 1/se_c²; φ = max(1, Q/(k − p)) from the
//! weighted residual sum of squares Q, so that cells disagreeing more than
//! their standard errors say widen every interval rather than being
//! ignored; t with k − p degrees of freedom. Cells that share runs (the same
//! online runs against offline on three data sets) are correlated; the model
//! treats them as independent, which overstates the variance of a factor
//! varied within those runs' cells (a conservative test) — said in
//! docs/worlds.md.

use std::collections::BTreeMap;

use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::plan::{Op, Plan};
use crate::report::figures::is_world_axis;
use crate::report::figures::Figure;
use crate::report::stats::ALPHA;

/// One cell: its levels (in the trend's factor order) and its difference.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Index into the claims given to [`trends`].
    pub claim: usize,
    pub levels: Vec<f64>,
    pub effect: f64,
    pub se: f64,
}

/// A slope of one ranked pair's difference on one factor.
#[derive(Debug, Clone)]
pub struct Slope {
    pub factor: String,
    /// The change of the difference across the factor's range, its standard
    /// error, interval and two-sided p.
    pub estimate: f64,
    pub se: f64,
    pub low: f64,
    pub high: f64,
    pub p: f64,
    pub df: f64,
    /// Holm-adjusted over the report's family.
    pub p_holm: Option<f64>,
}

/// One claim as a trend sees it: where it was made, which pair, and its
/// estimate and standard error where it has a test over seeds.
#[derive(Debug, Clone)]
pub struct Compared {
    pub figure: usize,
    pub upper: String,
    pub lower: String,
    pub estimate: Option<(f64, f64)>,
}

/// The trend test of one ranked pair over one factorial.
#[derive(Debug, Clone)]
pub struct Trend {
    /// The declarations whose members are the cells.
    pub figures: Vec<String>,
    pub factors: Vec<String>,
    /// Each factor's levels in the design, ascending.
    pub design: Vec<Vec<f64>>,
    pub upper: String,
    pub lower: String,
    pub cells: Vec<Cell>,
    /// Cells left out, and why (no test, or no level).
    pub left_out: Vec<String>,
    pub slopes: Vec<Slope>,
    /// The dispersion factor φ (1 when the cells agree within their errors).
    pub dispersion: f64,
    /// Why there is no regression, when there is none.
    pub missing: Option<String>,
}

/// The trend group a figure belongs to: its factors and ranking.
pub fn group_of(fig: &Figure) -> Option<(Vec<String>, Vec<String>)> {
    (!fig.trend.is_empty()).then(|| (fig.trend.clone(), fig.expect.clone()))
}

/// Every trend of a report: per group of figures, per ranked pair.
pub fn trends(figures: &[Figure], claims: &[Compared]) -> Vec<Trend> {
    let mut groups: Vec<(Vec<String>, Vec<String>)> = vec![];
    for g in figures.iter().filter_map(group_of) {
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    let mut out = vec![];
    for (factors, expect) in groups {
        let in_group = |c: &Compared| group_of(&figures[c.figure]).as_ref() == Some(&(factors.clone(), expect.clone()));
        let mut decls: Vec<String> = vec![];
        for c in claims.iter().filter(|c| in_group(c)) {
            if !decls.contains(&figures[c.figure].decl) {
                decls.push(figures[c.figure].decl.clone());
            }
        }
        let pairs = (0..expect.len()).flat_map(|i| (i + 1..expect.len()).map(move |j| (i, j)));
        for (i, j) in pairs {
            let (upper, lower) = (&expect[i], &expect[j]);
            let mut cells = vec![];
            let mut left_out = vec![];
            // A comparison of the very same runs in two figures (online
            // against tandem in each data set's figure, when neither method
            // learns from that data) is one cell, not two.
            let mut seen: Vec<(Vec<String>, String)> = vec![];
            for (k, c) in claims.iter().enumerate() {
                if !in_group(c) || &c.upper != upper || &c.lower != lower {
                    continue;
                }
                let fig = &figures[c.figure];
                let mut runs: Vec<String> = fig
                    .points
                    .iter()
                    .filter(|p| p.series == *upper || p.series == *lower)
                    .map(|p| format!("{}|{}", p.series, p.member))
                    .collect();
                runs.sort();
                runs.dedup();
                if let Some((_, first)) = seen.iter().find(|(r, _)| *r == runs) {
                    left_out.push(format!("{}: the same runs as {first}", fig.name));
                    continue;
                }
                seen.push((runs, fig.name.clone()));
                let levels: Option<Vec<f64>> = factors.iter().map(|f| fig.levels.get(f).copied()).collect();
                match (levels, c.estimate) {
                    (Some(levels), Some((effect, se))) if se > 0.0 => cells.push(Cell { claim: k, levels, effect, se }),
                    (None, _) => left_out.push(format!("{}: a factor's level is not known", fig.name)),
                    _ => left_out.push(format!("{}: no test over seeds", fig.name)),
                }
            }
            out.push(fit(decls.clone(), &factors, upper, lower, cells, left_out));
        }
    }
    out
}

fn fit(
    figures: Vec<String>,
    factors: &[String],
    upper: &str,
    lower: &str,
    cells: Vec<Cell>,
    left_out: Vec<String>,
) -> Trend {
    let design: Vec<Vec<f64>> = (0..factors.len())
        .map(|f| {
            let mut v: Vec<f64> = cells.iter().map(|c| c.levels[f]).collect();
            v.sort_by(f64::total_cmp);
            v.dedup();
            v
        })
        .collect();
    let mut t = Trend {
        figures,
        factors: factors.to_vec(),
        design: design.clone(),
        upper: upper.into(),
        lower: lower.into(),
        cells,
        left_out,
        slopes: vec![],
        dispersion: 1.0,
        missing: None,
    };
    // A factor that takes one level among the distinct comparisons says
    // nothing here (neither method depends on it): it leaves the model.
    let kept: Vec<usize> = (0..factors.len()).filter(|&f| design[f].len() >= 2).collect();
    for f in (0..factors.len()).filter(|f| !kept.contains(f)) {
        t.left_out.push(format!("`{}`: one level among the distinct comparisons, not in the regression", factors[f]));
    }
    if kept.is_empty() {
        t.missing = Some("every factor takes one level in the cells with a test".into());
        return t;
    }
    let p = kept.len() + 1;
    let k = t.cells.len();
    if k < p + 2 {
        t.missing = Some(format!("{k} cells with a test, too few for {p} coefficients and an error"));
        return t;
    }
    // Rows [1, z_1, ..., z_F]; levels rescaled to [0, 1] over the design.
    let rows: Vec<Vec<f64>> = t
        .cells
        .iter()
        .map(|c| {
            let mut r = vec![1.0];
            for &f in &kept {
                let levels = &design[f];
                let (lo, hi) = (levels[0], levels[levels.len() - 1]);
                r.push((c.levels[f] - lo) / (hi - lo));
            }
            r
        })
        .collect();
    let w: Vec<f64> = t.cells.iter().map(|c| 1.0 / (c.se * c.se)).collect();
    let mut xtwx = vec![vec![0.0; p]; p];
    let mut xtwy = vec![0.0; p];
    for ((r, wi), c) in rows.iter().zip(&w).zip(&t.cells) {
        for a in 0..p {
            xtwy[a] += wi * r[a] * c.effect;
            for b in 0..p {
                xtwx[a][b] += wi * r[a] * r[b];
            }
        }
    }
    let Some(inv) = invert(&xtwx) else {
        t.missing = Some("the cells' levels do not separate the factors".into());
        return t;
    };
    let beta: Vec<f64> = (0..p).map(|a| (0..p).map(|b| inv[a][b] * xtwy[b]).sum()).collect();
    let q: f64 = rows
        .iter()
        .zip(&w)
        .zip(&t.cells)
        .map(|((r, wi), c)| {
            let fitted: f64 = r.iter().zip(&beta).map(|(x, b)| x * b).sum();
            wi * (c.effect - fitted).powi(2)
        })
        .sum();
    let df = (k - p) as f64;
    t.dispersion = (q / df).max(1.0);
    let Ok(dist) = StudentsT::new(0.0, 1.0, df) else {
        t.missing = Some("no t distribution for these degrees of freedom".into());
        return t;
    };
    let crit = dist.inverse_cdf(1.0 - ALPHA / 2.0);
    for (j, &f) in kept.iter().enumerate() {
        let factor = &factors[f];
        let se = (t.dispersion * inv[j + 1][j + 1]).sqrt();
        let estimate = beta[j + 1];
        let p = 2.0 * (1.0 - dist.cdf((estimate / se).abs()));
        t.slopes.push(Slope {
            factor: factor.clone(),
            estimate,
            se,
            low: estimate - crit * se,
            high: estimate + crit * se,
            p,
            df,
            p_holm: None,
        });
    }
    t
}

/// Gauss–Jordan inversion with partial pivoting; None when singular.
fn invert(m: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let n = m.len();
    let mut a: Vec<Vec<f64>> = m
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let mut r = row.clone();
            r.extend((0..n).map(|j| if i == j { 1.0 } else { 0.0 }));
            r
        })
        .collect();
    let scale = m.iter().flatten().fold(0.0f64, |s, v| s.max(v.abs())).max(f64::MIN_POSITIVE);
    for col in 0..n {
        let pivot = (col..n).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))?;
        if a[pivot][col].abs() <= 1e-12 * scale {
            return None;
        }
        a.swap(col, pivot);
        let d = a[col][col];
        a[col].iter_mut().for_each(|v| *v /= d);
        for r in 0..n {
            if r != col {
                let f = a[r][col];
                let pivot_row = a[col].clone();
                a[r].iter_mut().zip(&pivot_row).for_each(|(v, p)| *v -= f * p);
            }
        }
    }
    Some(a.into_iter().map(|r| r[n..].to_vec()).collect())
}

/// A factor's level in a figure member, where its own sweep axes say it:
/// an axis of that name (or ending in `.name`), else the one value every
/// point's grid axes give it. None when neither does (`resolve_levels`
/// then looks in the world).
pub fn level_from_axes(fig: &Figure, factor: &str) -> Option<f64> {
    let named = |axis: &str| axis == factor || axis.ends_with(&format!(".{factor}"));
    if let Some((_, v)) = fig.axes.iter().find(|(a, _)| named(a)) {
        return v.parse().ok();
    }
    let mut values: Vec<f64> = fig
        .points
        .iter()
        .flat_map(|p| p.candidate.split(", "))
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| named(k))
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    values.sort_by(f64::total_cmp);
    values.dedup();
    match values.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// The levels of every factor a trend figure names, where its axes say them.
pub fn levels_from_axes(fig: &Figure) -> BTreeMap<String, f64> {
    fig.trend.iter().filter_map(|f| level_from_axes(fig, f).map(|v| (f.clone(), v))).collect()
}

/// Every trend figure's levels: from its axes, else from the world the
/// member is in (its `world` axis names a world declaration of the plan):
/// the world's argument of the factor's name.
pub fn resolve_levels(plan: &Plan, figures: &mut [Figure]) {
    let names = plan.names();
    for fig in figures.iter_mut().filter(|f| !f.trend.is_empty()) {
        fig.levels = levels_from_axes(fig);
        let Some((_, world)) = fig.axes.iter().find(|(a, _)| is_world_axis(a)) else { continue };
        let Some(Op::World(spec)) = names.get(world).and_then(|k| plan.node(k)).map(|n| &n.op) else { continue };
        for factor in &fig.trend {
            if fig.levels.contains_key(factor) {
                continue;
            }
            let level = match factor.as_str() {
                "interaction" => Some(spec.interaction),
                "noise" => Some(spec.noise),
                "vocab" => Some(spec.vocab as f64),
                "prompt_len" => Some(spec.prompt_len as f64),
                "response_len" => Some(spec.response_len as f64),
                _ => None,
            };
            if let Some(v) = level {
                fig.levels.insert(factor.clone(), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(levels: &[f64], effect: f64, se: f64) -> Cell {
        Cell { claim: 0, levels: levels.to_vec(), effect, se }
    }

    #[test]
    fn a_straight_line_through_equal_errors_is_ordinary_least_squares() {
        // d = 0.1 + 0.3·z_h − 0.05·z_a exactly, over a 3 × 3 design with
        // levels h ∈ {0, 0.15, 0.3}, a ∈ {0, 0.5, 1}: Q = 0, φ = 1, and with
        // equal se the covariance is se²·(XᵀX)⁻¹. For a balanced 3 × 3 with
        // z ∈ {0, ½, 1}, Σ(z − z̄)² = 9·(1/6) = 1.5, so se(b_h) = se/√1.5.
        let mut cells = vec![];
        for h in [0.0, 0.15, 0.3] {
            for a in [0.0, 0.5, 1.0] {
                cells.push(cell(&[h, a], 0.1 + 0.3 * (h / 0.3) - 0.05 * a, 0.02));
            }
        }
        let factors = vec!["hide_best".to_string(), "interaction".to_string()];
        let t = fit(vec![], &factors, "online", "offline", cells, vec![]);
        assert!(t.missing.is_none(), "{:?}", t.missing);
        assert!((t.dispersion - 1.0).abs() < 1e-12);
        let (h, a) = (&t.slopes[0], &t.slopes[1]);
        assert!((h.estimate - 0.3).abs() < 1e-12 && (a.estimate + 0.05).abs() < 1e-12);
        assert!((h.se - 0.02 / 1.5f64.sqrt()).abs() < 1e-12, "{}", h.se);
        assert_eq!(h.df, 6.0);
        // t = 0.3·√1.5/0.02 ≈ 18.4 on 6 df (p ≈ 2e-6); t ≈ 3.06 for the other (p ≈ 0.022).
        assert!(h.p < 1e-5 && a.p < 0.05 && a.p > 0.01, "{} {}", h.p, a.p);
    }

    #[test]
    fn cells_that_disagree_beyond_their_errors_widen_the_interval() {
        // The same design, the difference alternating ±0.1 around 0 with se
        // 0.01: no slope, and φ = Q/(k − p) ≫ 1 scales the variance.
        let mut cells = vec![];
        let mut sign = 1.0;
        for h in [0.0, 0.15, 0.3] {
            for a in [0.0, 0.5, 1.0] {
                cells.push(cell(&[h, a], sign * 0.1, 0.01));
                sign = -sign;
            }
        }
        let factors = vec!["h".to_string(), "a".to_string()];
        let t = fit(vec![], &factors, "u", "l", cells, vec![]);
        assert!(t.dispersion > 50.0, "{}", t.dispersion);
        assert!(t.slopes.iter().all(|s| s.p > 0.05), "{:?}", t.slopes);
    }

    #[test]
    fn too_few_cells_or_one_level_give_no_regression() {
        let factors = vec!["h".to_string()];
        let two = vec![cell(&[0.0], 0.1, 0.01), cell(&[1.0], 0.2, 0.01)];
        assert!(fit(vec![], &factors, "u", "l", two, vec![]).missing.is_some());
        let flat = (0..5).map(|_| cell(&[0.3], 0.1, 0.01)).collect();
        assert!(fit(vec![], &factors, "u", "l", flat, vec![]).missing.unwrap().contains("one level"));
        // One factor of two constant: the other is still tested.
        let two_factors = vec!["h".to_string(), "a".to_string()];
        let cells = (0..6).map(|i| cell(&[0.3, i as f64], 0.1 * i as f64, 0.01)).collect();
        let t = fit(vec![], &two_factors, "u", "l", cells, vec![]);
        assert_eq!(t.slopes.len(), 1);
        assert_eq!(t.slopes[0].factor, "a");
        assert!((t.slopes[0].estimate - 0.5).abs() < 1e-9);
        assert!(t.left_out.iter().any(|w| w.contains("`h`")));
    }
}
