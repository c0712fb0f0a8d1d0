//! The report of one experiment.

use std::path::{Path, PathBuf};

use crate::exec::artifacts as art;
use crate::exec::model_summary::{ModelSummary, Proportion, RelabelMeta};
use crate::exec::schedule::is_done;
use crate::exec::store::Store;
use crate::exec::summary::Summary;
use crate::plan::op::checkpoint_key;
use crate::plan::{Op, Plan};
use crate::report::document::{html, markdown, Block};
use crate::report::figures::{
    figures_of, file_stem, natural_order, write_figure, write_small_multiples, Figure, FigureKind, Point, Tested,
};
use crate::report::palette::Palette;
use crate::report::results::EvalRow;
use crate::report::stats;
use crate::report::verdicts::{self, Decisions};

fn ci(v: f64, se: f64) -> String {
    format!("{v:.3} [{:.3}, {:.3}]", v - 1.96 * se, v + 1.96 * se)
}

/// An accuracy or agreement (a proportion of n pairs) with its Wilson 95%
/// interval: unlike value ± 1.96·se it stays inside [0, 1] and does not
/// shrink to nothing at 0 or 1 ("1.000 [1.000, 1.000] (n = 16)").
fn proportion(p: &Proportion) -> String {
    let (low, high) = stats::wilson(p.value, p.n);
    format!("{:.3} [{low:.3}, {high:.3}] (n = {}, Wilson)", p.value, p.n)
}

/// Pearson's r of points' (x, y) with a 95% interval (Fisher's z), for
/// three points or more.
fn pearson(points: &[&Point]) -> Option<(f64, f64, f64)> {
    let n = points.len() as f64;
    if n < 3.0 {
        return None;
    }
    let (mx, my) = (points.iter().map(|p| p.x).sum::<f64>() / n, points.iter().map(|p| p.y).sum::<f64>() / n);
    let cov: f64 = points.iter().map(|p| (p.x - mx) * (p.y - my)).sum();
    let vx: f64 = points.iter().map(|p| (p.x - mx).powi(2)).sum();
    let vy: f64 = points.iter().map(|p| (p.y - my).powi(2)).sum();
    let r = cov / (vx * vy).sqrt();
    if !r.is_finite() {
        return None;
    }
    let z = r.clamp(-0.999_999, 0.999_999).atanh();
    let se = 1.0 / (n - 3.0).max(1.0).sqrt();
    Some((r, (z - 1.96 * se).tanh(), (z + 1.96 * se).tanh()))
}

/// What the points of a figure say, in sentences with numbers.
fn findings(fig: &Figure) -> Vec<String> {
    let mut out = vec![];
    let mut series: Vec<&str> = vec![];
    for p in &fig.points {
        if !series.contains(&p.series.as_str()) {
            series.push(&p.series);
        }
    }
    match fig.kind {
        FigureKind::Tradeoff => {
            for s in &series {
                let pts: Vec<_> = fig.points.iter().filter(|p| p.series == *s).collect();
                if let Some(best) = pts.iter().max_by(|a, b| a.y.total_cmp(&b.y)) {
                    let last = pts.iter().max_by(|a, b| a.x.total_cmp(&b.x)).expect("non-empty");
                    out.push(format!(
                        "`{s}`: peak {} = {} at {} = {:.3} ({}{}); at its largest KL ({:.3}) it reaches {}.",
                        fig.y_label,
                        ci(best.y, best.y_err / 1.96),
                        fig.x_label,
                        best.x,
                        best.member,
                        best.step.map(|s| format!("@{s}")).unwrap_or_default(),
                        last.x,
                        ci(last.y, last.y_err / 1.96)
                    ));
                    // Over-optimisation: is the cross-fitted peak above the
                    // last checkpoint, prompt by prompt, beyond chance?
                    if let Some(c) = verdicts::over_optimisation(fig, s) {
                        let decided = c.decidable() && c.p < stats::ALPHA && c.effect > 0.0;
                        out.push(format!(
                            "`{s}`: cross-fitted peak minus last checkpoint {:+.3} [{:+.3}, {:+.3}], p = {:.3} ({}) — {}.",
                            c.effect,
                            c.low,
                            c.high,
                            c.p,
                            if c.decidable() { "Welch's t over seeds" } else { "prompts only, one seed" },
                            if decided {
                                "it over-optimises: past its peak, more KL brings a lower score"
                            } else if c.decidable() {
                                "no over-optimisation shown"
                            } else {
                                "not decided: one seed measures prompt noise only"
                            }
                        ));
                    }
                    // Several members (seeds, grid points) pooled in one
                    // series: how far apart their own peaks are.
                    let mut members: Vec<&str> = vec![];
                    for p in &pts {
                        if !members.contains(&p.member.as_str()) {
                            members.push(&p.member);
                        }
                    }
                    if members.len() > 1 {
                        let member_peaks: Vec<f64> = members
                            .iter()
                            .map(|m| {
                                pts.iter().filter(|p| p.member == *m).map(|p| p.y).fold(f64::NEG_INFINITY, f64::max)
                            })
                            .collect();
                        let (lo, hi) = member_peaks
                            .iter()
                            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
                        // Say what the members are: seeds (replicates), grid
                        // points, or both.
                        let distinct = |f: fn(&crate::report::figures::Point) -> &str| {
                            let mut v: Vec<&str> = pts.iter().map(|p| f(p)).collect();
                            v.sort_unstable();
                            v.dedup();
                            v.len()
                        };
                        let (seeds, grid) = (distinct(|p| &p.replicate), distinct(|p| &p.candidate));
                        let what = match (seeds, grid) {
                            (1, g) => format!("{g} grid members"),
                            (r, 1) => format!("{r} seeds"),
                            (r, g) => format!("{} runs ({r} seeds × {g} grid members)", members.len()),
                        };
                        out.push(format!("`{s}` pools {what}; their own peaks range from {lo:.3} to {hi:.3} (the spread between them)."));
                    }
                }
            }
        }
        FigureKind::Scatter => {
            // Within each series first: pooled over methods, a correlation
            // can come from the methods' differences alone (the paper's
            // Fig. 7 warns of exactly this).
            for s in &series {
                let pts: Vec<&Point> = fig.points.iter().filter(|p| p.series == *s).collect();
                if let Some((r, lo, hi)) = pearson(&pts) {
                    out.push(format!("Pearson r within `{s}` ({} points): {r:.3} [{lo:.3}, {hi:.3}].", pts.len()));
                }
            }
            let all: Vec<&Point> = fig.points.iter().collect();
            if let Some((r, lo, hi)) = pearson(&all) {
                out.push(format!(
                    "Pearson r between {} and {} over all {} points{}: {r:.3} [{lo:.3}, {hi:.3}].",
                    fig.x_label,
                    fig.y_label,
                    all.len(),
                    if series.len() > 1 {
                        ", pooled over the series (differences between them can make it)"
                    } else {
                        ""
                    }
                ));
            }
        }
        FigureKind::Curve => {
            for s in &series {
                let mut pts: Vec<_> = fig.points.iter().filter(|p| p.series == *s).collect();
                pts.sort_by(|a, b| a.x.total_cmp(&b.x));
                if let (Some(a), Some(b)) = (pts.first(), pts.last()) {
                    out.push(format!(
                        "`{s}`: {} at {} {:.0} → {} at {:.0}.",
                        ci(a.y, a.y_err / 1.96),
                        fig.x_label,
                        a.x,
                        ci(b.y, b.y_err / 1.96),
                        b.x
                    ));
                }
            }
        }
        FigureKind::Best => {
            for (s, v, se) in &fig.bars {
                out.push(format!("`{s}`: {}", ci(*v, *se)));
            }
        }
    }
    out
}

/// What a figure draws, said under it.
fn caption(fig: &Figure) -> Option<String> {
    Some(match fig.kind {
        FigureKind::Tradeoff => "Points: every checkpoint evaluated, with 95% whiskers. Lines: each configuration's training path (a method's grid member: the mean KL and mean win rate over its seeds at each saved step, in step order), in the method's colour, which is the same in every figure of this report. Dashed: a win rate of 0.5; dotted: the starting policy (step 0). Brackets: the KL window each claim was compared over (where every run has trained checkpoints). Panel below: each claim's difference (upper − lower) along the matched-KL curve across its window, with its 95% interval (not adjusted). The claims are tested on per-prompt outcomes, not read off these lines.".into(),
        FigureKind::Curve => "Lines: each series over steps, with 95% intervals as bands.".into(),
        FigureKind::Scatter => "Points: every checkpoint evaluated on both axes, with 95% whiskers.".into(),
        FigureKind::Best => "Bars: each series' value at the figure's quantile over its checkpoints and members, with a 95% whisker.".into(),
    })
}

/// Claims × sweep members (worlds): the verdict of each, in one table, and
/// where a claim spans several worlds their combined estimate.
fn claims_by_member(figures: &[Figure], d: &Decisions) -> Vec<Block> {
    let mut members: Vec<String> = vec![];
    // claim → (member, cell).
    let mut rows: Vec<(String, Vec<(String, String)>)> = vec![];
    for c in &d.claims {
        let fig = &figures[c.figure];
        let member = if fig.member.is_empty() { "—".to_string() } else { fig.member.clone() };
        if !members.contains(&member) {
            members.push(member.clone());
        }
        let claim = format!("{}: `{}` > `{}`", fig.decl, c.upper, c.lower);
        let cell = match &c.primary {
            Some(a) => format!(
                "**{}** {:+.3} [{:+.3}, {:+.3}]",
                verdicts::word_of(fig, c),
                a.comparison.effect,
                a.comparison.low,
                a.comparison.high
            ),
            None => format!("**{}**", verdicts::word_of(fig, c)),
        };
        match rows.iter_mut().find(|(k, _)| *k == claim) {
            Some((_, cells)) => cells.push((member, cell)),
            None => rows.push((claim, vec![(member, cell)])),
        }
    }
    if members.iter().all(|m| m == "—") {
        // Nothing swept: the detailed table says it all.
        return vec![];
    }
    let combined_cell = |claim: &str| -> String {
        let Some(row) = d.combined.iter().find(|r| format!("{}: `{}` > `{}`", r.decl, r.upper, r.lower) == claim)
        else {
            return "·".into();
        };
        match (&row.combined, &row.why_not) {
            (Some(r), _) => format!(
                "**{}** {:+.3} [{:+.3}, {:+.3}] (95%, unadjusted), p = {} (Holm); {} of {} worlds above 0",
                row.verdict().word(),
                r.effect,
                r.low,
                r.high,
                verdicts::fmt_p(row.p_holm.unwrap_or(r.p)),
                r.positive,
                r.k
            ),
            (None, Some(why)) => format!("not combined: {why}"),
            (None, None) => "·".into(),
        }
    };
    let any_combined = !d.combined.is_empty();
    let mut head: Vec<String> = std::iter::once("claim".to_string()).chain(members.iter().cloned()).collect();
    if any_combined {
        head.push("combined over worlds".into());
    }
    let rows =
        rows.into_iter()
            .map(|(claim, cells)| {
                let combined = combined_cell(&claim);
                let mut row: Vec<String> = std::iter::once(claim)
                    .chain(members.iter().map(|m| {
                        cells.iter().find(|(k, _)| k == m).map(|(_, c)| c.clone()).unwrap_or_else(|| "·".into())
                    }))
                    .collect();
                if any_combined {
                    row.push(combined);
                }
                row
            })
            .collect();
    let mut blocks = vec![
        Block::Para("Each ranking a figure's `expect:` states, and what this run says of it in each sweep member (world): the verdict, then the effect (upper minus lower) with its 95% interval (unadjusted; the verdict is Holm-adjusted).".into()),
        Block::Table { head, rows },
    ];
    if any_combined {
        blocks.push(Block::Para("Combined over worlds: the equal-weight (fixed-effect) mean of the worlds' effects (the worlds are this study's design, not a sample of worlds; each counts once), its 95% interval and t-test (Satterthwaite's degrees of freedom over the worlds'), in the same Holm family as every other claim; figures swept over anything but worlds are not combined.".into()));
    }
    blocks
}

/// Every claim with its effect, p and design.
/// The trend tests of factorials (`trend:`), each with its cells.
fn trend_blocks(figures: &[Figure], d: &Decisions) -> Vec<Block> {
    let mut out = vec![];
    for t in &d.trends {
        out.push(Block::Subheading(format!(
            "Trend: `{}` − `{}` over {} ({})",
            t.upper,
            t.lower,
            t.factors.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(" × "),
            t.figures.join(", ")
        )));
        out.push(Block::Para(format!(
            "One weighted regression over the cells (src/report/trend.rs): each cell's difference on the factors' levels, rescaled to 0–1 over the design, so that a slope is the change of the difference across the factor's whole range; weights 1/se², dispersion φ = {:.2} (1 when the cells agree within their errors), t with {} degrees of freedom. *Holds*: the difference grows with the factor, decided; *does not hold*: it shrinks, decided.",
            t.dispersion,
            t.slopes.first().map_or("-".to_string(), |s| format!("{}", s.df)),
        )));
        if let Some(why) = &t.missing {
            out.push(Block::Para(format!("No regression: {why}.")));
        }
        if !t.slopes.is_empty() {
            out.push(Block::Table {
                head: vec![
                    "factor (levels)".into(),
                    "the difference grows with it".into(),
                    "change across the range (95%, unadjusted)".into(),
                    "p (Holm)".into(),
                ],
                rows: t
                    .slopes
                    .iter()
                    .map(|s| {
                        let f = t.factors.iter().position(|f| *f == s.factor).unwrap_or(0);
                        let levels = &t.design[f];
                        vec![
                            format!(
                                "`{}` ({})",
                                s.factor,
                                levels.iter().map(|l| format!("{l}")).collect::<Vec<_>>().join(", ")
                            ),
                            format!("**{}**", verdicts::slope_verdict(s).word()),
                            format!("{:+.3} [{:+.3}, {:+.3}]", s.estimate, s.low, s.high),
                            s.p_holm.map_or_else(|| verdicts::fmt_p(s.p), verdicts::fmt_p),
                        ]
                    })
                    .collect(),
            });
        }
        let mut head: Vec<String> = vec!["cell".into()];
        head.extend(t.factors.iter().map(|f| format!("`{f}`")));
        head.push(format!("`{}` − `{}` (95%, unadjusted)", t.upper, t.lower));
        let rows = t
            .cells
            .iter()
            .map(|c| {
                let claim = &d.claims[c.claim];
                let fig = &figures[claim.figure];
                let mut row = vec![fig.name.clone()];
                row.extend(c.levels.iter().map(|l| format!("{l}")));
                let cmp = claim.primary.as_ref().map(|a| &a.comparison);
                row.push(cmp.map_or("-".into(), |x| format!("{:+.3} [{:+.3}, {:+.3}]", x.effect, x.low, x.high)));
                row
            })
            .collect();
        out.push(Block::Table { head, rows });
        if !t.left_out.is_empty() {
            out.push(Block::List(t.left_out.iter().map(|w| format!("left out: {w}")).collect()));
        }
    }
    out
}

fn claims_table(figures: &[Figure], d: &Decisions) -> Block {
    let rows = d
        .claims
        .iter()
        .map(|c| {
            let (estimand, effect, p, design) = match &c.primary {
                Some(a) => (
                    a.estimand.name().to_string(),
                    format!("{:+.3} [{:+.3}, {:+.3}]", a.comparison.effect, a.comparison.low, a.comparison.high),
                    c.p_holm.map_or_else(
                        || format!("{} (not decidable)", verdicts::fmt_p(a.comparison.p)),
                        verdicts::fmt_p,
                    ),
                    format!(
                        "{} and {} seeds, {} prompts",
                        a.comparison.runs.0, a.comparison.runs.1, a.comparison.units
                    ),
                ),
                None => (
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    match &c.not_comparable {
                        Some(nc) => verdicts::not_comparable_words(nc, &c.upper, &c.lower),
                        None => c.missing.clone().unwrap_or_default(),
                    },
                ),
            };
            let fig = &figures[c.figure];
            vec![
                fig.name.clone(),
                format!("`{}` > `{}`", c.upper, c.lower),
                format!("**{}**", verdicts::word_of(fig, c)),
                estimand,
                effect,
                p,
                design,
            ]
        })
        .collect();
    Block::Table {
        head: vec![
            "figure".into(),
            "expected ranking".into(),
            "this run".into(),
            "estimand".into(),
            "effect [95% CI, unadjusted]".into(),
            "p (Holm)".into(),
            "design".into(),
        ],
        rows,
    }
}

/// Draws every figure and writes report.md and report.html into `dir`:
/// where the study came from and its time, the models' own numbers, the
/// claims, one section per figure declaration, the training curves.
pub fn write_report(
    dir: &Path,
    file: &Path,
    plan: &Plan,
    store: &Store,
    rows: &[EvalRow],
    summary: &Summary,
    overrides: &[String],
) -> Result<(PathBuf, PathBuf), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mut b = vec![Block::Title(format!("{stem}: tandem report"))];
    if !overrides.is_empty() {
        b.push(Block::Para(format!(
            "Computed with settings from the command line, which the file alone does not give: {}.",
            overrides.iter().map(|s| format!("`--set {s}`")).collect::<Vec<_>>().join(", ")
        )));
    }
    b.extend(provenance_blocks(file, plan, store, summary));
    b.extend(model_blocks(plan, store));
    let (figures, decisions) = tested_figures(plan, store, rows);
    // One colour per method in every figure: the order in which the report
    // first names them (a figure's expected ranking first).
    let training = crate::report::training::figures(plan, store);
    let palette = Palette::of(figures.iter().chain(&training).flat_map(|f| {
        f.expect
            .iter()
            .map(String::as_str)
            .chain(f.points.iter().map(|p| p.series.as_str()))
            .chain(f.bars.iter().map(|b| b.0.as_str()))
    }));
    // The claims come first, right under the title.
    for (i, block) in claims_blocks(&figures, &decisions).into_iter().enumerate() {
        b.insert(1 + i, block);
    }
    b.extend(figure_sections(dir, &figures, &decisions, &palette));
    b.extend(training_blocks(dir, &training, &palette));
    b.push(Block::Heading("All evaluations".into()));
    b.push(Block::Para(format!(
        "{} rows in [evals.csv](evals.csv): eval, target, step, metric, value, stderr, 95% interval, n.",
        rows.len()
    )));
    let md = dir.join("report.md");
    let page = dir.join("report.html");
    std::fs::write(&md, markdown(&b)).map_err(|e| e.to_string())?;
    std::fs::write(&page, html(&b, dir)).map_err(|e| e.to_string())?;
    Ok((md, page))
}

/// Where the results came from (the file, this run against the cache) and
/// where the study's time goes, by node kind.
fn provenance_blocks(file: &Path, plan: &Plan, store: &Store, summary: &Summary) -> Vec<Block> {
    let mut b = vec![];
    // How much the cache saved.
    let mut saved = 0.0;
    let mut entries = 0;
    // (kind, recorded compute seconds) of every stage with a result.
    let mut recorded: Vec<(&str, f64)> = vec![];
    for n in plan.graph.node_weights() {
        let key = match &n.op {
            Op::Train(t) => checkpoint_key(&n.key, t.length.steps),
            Op::Checkpoint { .. } | Op::Figure(_) => continue,
            _ => n.key,
        };
        if !is_done(store, plan, n) {
            continue;
        }
        if let Ok(m) = store.manifest(&key) {
            entries += 1;
            if !summary.ran.iter().any(|r| r.key == n.key) {
                saved += m.compute_seconds;
            }
            recorded.push((n.kind(), m.compute_seconds));
        }
    }
    let spent = summary.node_seconds();
    b.push(Block::Para(format!(
        "From `{}` with tandem {}. The plan has {} stages; this run computed {} ({spent:.1} s of compute) and reused {} from the cache, which saved {saved:.1} s of recorded compute. {} stages have results.",
        file.display(),
        env!("CARGO_PKG_VERSION"),
        plan.len(),
        summary.ran.len(),
        summary.cached,
        entries
    )));
    if !summary.failed.is_empty() {
        b.push(Block::List(
            summary.failed.iter().map(|(n, e, l)| format!("failed: `{n}`: {e} (log: `{}`)", l.display())).collect(),
        ));
    }

    // Where the study's time goes: every stage with a result, however it got
    // there (this run or an earlier one), by the compute its manifest records.
    let kinds = crate::exec::summary::by_kind(recorded);
    let total: f64 = kinds.iter().map(|k| k.seconds).sum();
    let this_run = summary.by_kind();
    if total > 0.0 {
        b.push(Block::Heading("Where the time goes".into()));
        b.push(Block::Para(format!(
            "Node time by kind: {total:.1} s recorded for the {entries} stages with results, and what this run computed of it."
        )));
        b.push(Block::Table {
            head: vec![
                "kind".into(),
                "stages".into(),
                "recorded compute (s)".into(),
                "share".into(),
                "this run (s)".into(),
            ],
            rows: kinds
                .iter()
                .map(|k| {
                    let now = this_run.iter().find(|r| r.kind == k.kind).map_or(0.0, |r| r.seconds);
                    vec![
                        format!("`{}`", k.kind),
                        k.nodes.to_string(),
                        format!("{:.1}", k.seconds),
                        format!("{:.0}%", 100.0 * k.seconds / total),
                        format!("{now:.1}"),
                    ]
                })
                .collect(),
        });
    }

    b
}

/// The preference models' accuracies, the imported datasets and the
/// relabelled datasets' agreements.
fn model_blocks(plan: &Plan, store: &Store) -> Vec<Block> {
    let mut b = vec![];
    // The models' own numbers.
    let mut pm_rows = vec![];
    let mut data_rows = vec![];
    for n in plan.ordered() {
        if matches!(n.op, Op::Pm(..)) && store.contains(&n.key) {
            if let Ok(s) = art::read_json::<ModelSummary>(store, &n.key, "summary.json") {
                let acc = s.val_accuracy.as_ref();
                pm_rows.push(vec![
                    format!("`{}`", n.display_name()),
                    acc.map(|a| proportion(&a.proportion())).unwrap_or("-".into()),
                    acc.map(|a| a.split.clone()).unwrap_or("-".into()),
                    s.oracle_agreement.as_ref().map(proportion).unwrap_or("-".into()),
                ]);
            }
        }
        if matches!(n.op, Op::Relabel(_)) && store.contains(&n.key) {
            if let Ok(m) = art::read_json::<RelabelMeta>(store, &n.key, "meta.json") {
                data_rows.push(vec![
                    format!("`{}`", n.display_name()),
                    proportion(&m.train_agreement_with_input_labels),
                    m.train_agreement_with_noiseless_oracle.as_ref().map(proportion).unwrap_or("-".into()),
                ]);
            }
        }
    }
    if !pm_rows.is_empty() {
        b.push(Block::Heading("Preference models".into()));
        b.push(Block::Table {
            head: vec![
                "model".into(),
                "accuracy on its data's labels (95% CI)".into(),
                "split".into(),
                "agreement with the noiseless oracle".into(),
            ],
            rows: pm_rows,
        });
    }
    b.extend(imported_datasets(plan, store));
    if !data_rows.is_empty() {
        b.push(Block::Heading("Relabelled datasets".into()));
        b.push(Block::Table {
            head: vec![
                "dataset".into(),
                "agreement with the input labels".into(),
                "agreement with the noiseless oracle".into(),
            ],
            rows: data_rows,
        });
    }

    b
}

/// Every figure of the plan, in the order of their names, with every claim
/// their `expect:` rankings make decided in one family.
fn tested_figures(plan: &Plan, store: &Store, rows: &[EvalRow]) -> (Vec<Figure>, Decisions) {
    // Figures, and every claim their `expect:` rankings make, tested
    // together so that Holm's correction covers the whole report. Figures
    // come in the order of their names (numbers as numbers: the paper's
    // order for a study that names them after it).
    let mut figures: Vec<Figure> = plan
        .ordered()
        .into_iter()
        .filter(|n| matches!(n.op, Op::Figure(_)))
        .flat_map(|n| {
            let mut figs = figures_of(n, rows);
            // `curves` figures draw training metrics, from the cache.
            figs.iter_mut().for_each(|f| crate::report::training::fill_declared(plan, store, n, f));
            figs
        })
        .collect();
    figures.sort_by(|a, b| natural_order(&a.name, &b.name));
    crate::report::trend::resolve_levels(plan, &mut figures);
    let decisions = verdicts::decide(&figures);
    // Each figure draws the windows and differences of its own tested claims.
    for c in &decisions.claims {
        let Some(window) = c.primary.as_ref().and_then(|a| a.window) else { continue };
        let difference = verdicts::difference_curve(&figures[c.figure], c)
            .iter()
            .map(|(k, d)| (*k, d.effect, d.low, d.high))
            .collect();
        figures[c.figure].tested.push(Tested { upper: c.upper.clone(), lower: c.lower.clone(), window, difference });
    }
    (figures, decisions)
}

/// The claims section: by member, each in detail, the trend tests, and how
/// they are computed. Empty when nothing is claimed.
fn claims_blocks(figures: &[Figure], decisions: &Decisions) -> Vec<Block> {
    if decisions.claims.is_empty() {
        return vec![];
    }
    let mut top = vec![Block::Heading("Claims".into())];
    top.extend(claims_by_member(figures, decisions));
    top.push(Block::Para("Each claim in detail:".into()));
    top.push(claims_table(figures, decisions));
    top.extend(trend_blocks(figures, decisions));
    top.push(Block::Para(format!(
        "How these are computed (src/report/estimands.rs, stats.rs, verdicts.rs; the rules were fixed before any verdict under them was looked at): each claim compares the two methods' per-prompt outcomes (every policy is scored on the same prompts against the same baseline samples). Only trained checkpoints are evidence: step 0 (the starting policy) is shared by every method, so a trade-off claim is compared over the KL window in which every run has trained checkpoints, and with fewer than {} trained checkpoints per run in it the claim is *not comparable*. A trade-off's primary estimand is the budgeted frontier (the best win rate a method reaches with KL at most k, at {} budgets k spanning the window, the best chosen on the other seeds and the other half of the prompts, so that neither a grid's size nor luck raises it); beside it, the matched-KL curve (each run's win rate along its training path at {} KL values). A `best` claim compares peaks chosen the same way; a `gaps_narrower_than` claim the difference of two gaps. With at least two seeds per method the standard error holds seed variation, prompt noise and the method × prompt interaction (seeds and prompts crossed); with one seed a difference is computed over prompts only and cannot decide. Decisions are at α = {} after Holm's correction over one family of {} tests (every claim, equivalence test, combination over worlds and trend slope; a factorial's cells are estimates, not in the family); intervals are 95% and unadjusted. *Holds*: the expected ranking, decided; *does not hold*: its reverse, decided; *level*: within the figure's `margin:`, decided by two one-sided tests; *undecided*: neither, with the smallest difference the test detects with 80% power.",
        crate::report::estimands::MIN_TRAINED,
        crate::report::estimands::BUDGETS,
        crate::report::estimands::CURVE_POINTS,
        stats::ALPHA,
        decisions.family
    )));
    top
}

/// One section per figure declaration.
fn figure_sections(dir: &Path, figures: &[Figure], decisions: &Decisions, palette: &Palette) -> Vec<Block> {
    let mut b = vec![];
    // One section per declaration: a figure over a sweep (one per world) is
    // one image of small multiples, then a subsection per member.
    let mut i = 0;
    while i < figures.len() {
        let decl = &figures[i].decl;
        let group: Vec<usize> = (i..figures.len()).take_while(|&j| &figures[j].decl == decl).collect();
        i += group.len();
        let first = &figures[group[0]];
        let swept = group.len() > 1 || !first.member.is_empty();
        let heading = if first.member.is_empty() || group.len() > 1 {
            first.title.clone()
        } else {
            format!("{} ({})", first.title, first.member)
        };
        b.push(Block::Heading(heading));
        if group.len() > 1 {
            let drawn: Vec<&Figure> =
                group.iter().map(|&j| &figures[j]).filter(|f| !f.points.is_empty() || !f.bars.is_empty()).collect();
            if drawn.len() > 1 {
                let stem = file_stem(decl);
                match write_small_multiples(dir, &stem, &first.title, &drawn, palette) {
                    Ok(_) => b.push(Block::Image { src: format!("{stem}.svg"), alt: first.title.clone() }),
                    Err(e) => b.push(Block::Para(format!("`{decl}` could not be drawn side by side: {e}"))),
                }
            }
            if let Some(caption) = caption(first) {
                b.push(Block::Para(caption));
            }
            if !first.claim.is_empty() {
                b.push(Block::Para(format!("**Claimed:** {}", first.claim)));
            }
        }
        for &j in &group {
            let fig = &figures[j];
            if group.len() > 1 {
                b.push(Block::Subheading(format!("{} ({})", fig.title, fig.member)));
            }
            if fig.points.is_empty() && fig.bars.is_empty() {
                b.push(Block::Para(format!("`{}`: no data yet (its evaluations are not computed).", fig.name)));
                continue;
            }
            match write_figure(dir, fig, palette) {
                Ok(_) => {
                    let stem = file_stem(&fig.name);
                    if group.len() == 1 {
                        b.push(Block::Image { src: format!("{stem}.svg"), alt: fig.title.clone() });
                        if let Some(caption) = caption(fig) {
                            b.push(Block::Para(caption));
                        }
                        if !fig.claim.is_empty() {
                            b.push(Block::Para(format!("**Claimed:** {}", fig.claim)));
                        }
                    }
                    if !fig.notes.is_empty() {
                        b.push(Block::List(fig.notes.iter().map(|n| format!("note: {n}.")).collect()));
                    }
                    let v: Vec<String> =
                        decisions.claims.iter().filter(|c| c.figure == j).map(|c| verdicts::sentence(fig, c)).collect();
                    if !v.is_empty() {
                        b.push(Block::Para("**This run against the expected ranking:**".into()));
                        b.push(Block::List(v));
                    }
                    b.push(Block::Para("**This run:**".into()));
                    b.push(Block::List(findings(fig)));
                    let alone =
                        if swept { format!("; this panel alone: [{stem}.svg]({stem}.svg)") } else { String::new() };
                    b.push(Block::Para(format!(
                        "Data: [{stem}.csv]({stem}.csv); also [{stem}.png]({stem}.png){alone}."
                    )));
                }
                Err(e) => b.push(Block::Para(format!("`{}` could not be drawn: {e}", fig.name))),
            }
        }
    }
    b
}

/// The training curves of every run declaration.
fn training_blocks(dir: &Path, training: &[Figure], palette: &Palette) -> Vec<Block> {
    let mut b = vec![];
    if !training.is_empty() {
        b.push(Block::Heading("Training".into()));
        b.push(Block::Para(format!(
            "Each run declaration's per-step metrics, from its last checkpoint's `metrics.csv`: its runs (seeds and grid members) averaged in windows of about 1/{} of its steps, each run's mean in a window first; bands are 95% over the runs where there are several. The margin is the mean log-ratio margin h = (log π/π_ref)(chosen) − (log π/π_ref)(rejected) over each batch; its scale depends on the loss and β.",
            crate::report::training::WINDOWS
        )));
        for fig in training {
            match write_figure(dir, fig, palette) {
                Ok(_) => {
                    let stem = file_stem(&fig.name);
                    b.push(Block::Image { src: format!("{stem}.svg"), alt: fig.title.clone() });
                    b.push(Block::Para(format!("Data: [{stem}.csv]({stem}.csv); also [{stem}.png]({stem}.png).")));
                }
                Err(e) => b.push(Block::Para(format!("`{}` could not be drawn: {e}", fig.name))),
            }
        }
    }
    b
}

/// The report's table of imported datasets: each one's records, splits,
/// widths and, where widths were set, how many records they cut.
fn imported_datasets(plan: &Plan, store: &Store) -> Vec<Block> {
    let mut rows = vec![];
    for n in plan.ordered() {
        if !matches!(n.op, Op::Jsonl(_)) || !store.contains(&n.key) {
            continue;
        }
        let Ok(m) = art::read_json::<art::DataMeta>(store, &n.key, "meta.json") else { continue };
        let (prompts_cut, responses_cut) = match m.cut {
            Some(c) => (c.prompts.to_string(), c.responses.to_string()),
            None => ("- (widths of the longest)".into(), "-".into()),
        };
        rows.push(vec![
            format!("`{}`", n.display_name()),
            m.rows.to_string(),
            m.train.to_string(),
            m.val.to_string(),
            m.prompt_len.to_string(),
            m.response_len.to_string(),
            prompts_cut,
            responses_cut,
        ]);
    }
    if rows.is_empty() {
        return vec![];
    }
    let head = [
        "dataset",
        "records",
        "train",
        "validation",
        "prompt width",
        "response width",
        "prompts cut",
        "pairs with a response cut",
    ];
    vec![
        Block::Heading("Imported datasets".into()),
        Block::Table { head: head.iter().map(|h| h.to_string()).collect(), rows },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scatter(points: &[(&str, f64, f64)]) -> Figure {
        Figure {
            name: "fig7".into(),
            decl: "fig7".into(),
            member: String::new(),
            kind: FigureKind::Scatter,
            title: "fig7".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            points: points
                .iter()
                .map(|(s, x, y)| Point {
                    series: s.to_string(),
                    member: s.to_string(),
                    step: None,
                    x: *x,
                    x_err: 0.0,
                    y: *y,
                    y_err: 0.0,
                    n: 1,
                    replicate: String::new(),
                    candidate: String::new(),
                    units: vec![],
                    unit_set: String::new(),
                })
                .collect(),
            bars: vec![],
            claim: String::new(),
            expect: vec![],
            notes: vec![],
            narrower_than: None,
            axes: vec![],
            margin: None,
            tested: vec![],
            trend: vec![],
            levels: Default::default(),
        }
    }

    #[test]
    fn an_accuracy_gets_a_wilson_interval_that_stays_open_at_one() {
        // 16 of 16: Wilson's centre (1 + z²/32)/(1 + z²/16) = 0.9032 and half
        // width (z/(1 + z²/16))·√(z²/1024) = 0.0968, so [0.806, 1.000].
        let p = Proportion { value: 1.0, stderr: 0.0, n: 16 };
        assert_eq!(proportion(&p), "1.000 [0.806, 1.000] (n = 16, Wilson)");
    }

    #[test]
    fn a_scatter_gives_the_correlation_within_each_series_before_the_pooled_one() {
        // Within `a` y rises with x (r = 1), within `b` it falls (r = −1);
        // pooled, the six points have r = 0 (by symmetry): the pooled number
        // hides both.
        let fig = scatter(&[
            ("a", 1.0, 1.0),
            ("a", 2.0, 2.0),
            ("a", 3.0, 3.0),
            ("b", 1.0, 3.0),
            ("b", 2.0, 2.0),
            ("b", 3.0, 1.0),
        ]);
        let f = findings(&fig);
        assert!(f[0].starts_with("Pearson r within `a` (3 points): 1.000"), "{f:?}");
        assert!(f[1].starts_with("Pearson r within `b` (3 points): -1.000"), "{f:?}");
        assert!(f[2].contains("over all 6 points, pooled over the series") && f[2].contains(": 0.000 ["), "{f:?}");
    }
}
