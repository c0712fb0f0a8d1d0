//! Figures, drawn with plotters as SVG and PNG, laid out like the paper's:
//! KL on x and win rate on y for a trade-off, one colour per method; the data
//! points beside them as CSV.
//!
//! A series is a declaration (`offline` pools all members of an `offline`
//! sweep, as the paper pools its hyper-parameter grid), in one colour in
//! every figure of a report (`palette.rs`). A trade-off draws every
//! checkpoint as a faint point with its 95% whiskers, and each configuration's
//! training path (mean over seeds, step by step: `training_paths`) as a
//! line; reference lines at a win rate of 0.5 and at the starting policy;
//! under it, the KL window each tested claim was compared over and a panel
//! of the tested difference against KL. A curve draws each series as a line
//! with its band. A `best` figure divides by the series its
//! `normalize:` argument names, and by nothing otherwise. A figure declared
//! over a sweep (one per world) is also drawn as small multiples in one
//! image (`write_small_multiples`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::check::program::InstanceName;
use crate::exec::result_metric::ResultMetric;
use crate::plan::op::{FigureShape, FigureSpec, Presentation, SeriesBy};
use crate::plan::{Key, Node, Op};
use crate::report::palette::Palette;
use crate::report::results::EvalRow;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Point {
    pub series: String,
    pub member: String,
    pub step: Option<i64>,
    pub x: f64,
    pub x_err: f64,
    pub y: f64,
    pub y_err: f64,
    pub n: usize,
    /// The training run's seeds (its sweep axes named `seed` or `….seed`):
    /// points with the same replicate are one run of the method, and its
    /// replicates are the method's independent repetitions.
    #[serde(skip)]
    pub replicate: String,
    /// Its other axes: a grid member within a replicate.
    #[serde(skip)]
    pub candidate: String,
    /// Per-unit outcomes of y, and which units they are (pairing).
    #[serde(skip)]
    pub units: Vec<f64>,
    #[serde(skip)]
    pub unit_set: String,
}

/// A target's seeds (the replicate) and its other axes (the grid member).
fn replicate_of(target: &InstanceName) -> (String, String) {
    let is_seed = |axis: &str| axis == "seed" || axis.ends_with(".seed");
    let join = |seed: bool| {
        target
            .member
            .iter()
            .filter(|(k, _)| is_seed(k) == seed)
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    (join(true), join(false))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FigureKind {
    Tradeoff,
    Curve,
    Scatter,
    Best,
}

#[derive(Debug, Clone)]
pub struct Figure {
    pub name: String,
    /// The declaration, and its sweep member (`world=helpful`; empty when
    /// not swept): figures of one declaration are drawn side by side.
    pub decl: String,
    pub member: String,
    pub kind: FigureKind,
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub points: Vec<Point>,
    /// For `best`: (series, value, stderr) bars.
    pub bars: Vec<(String, f64, f64)>,
    /// What the paper found here, and its ranking of the series (best first).
    pub claim: String,
    pub expect: Vec<String>,
    /// Problems with the figure's own arguments, said in the report.
    pub notes: Vec<String>,
    /// The figure (by name) whose `expect:` gaps this one's are claimed to
    /// be narrower than.
    pub narrower_than: Option<String>,
    /// The sweep axes and values of this member (empty when not swept).
    pub axes: Vec<(String, String)>,
    /// `margin:`: the equivalence margin of its claims.
    pub margin: Option<f64>,
    /// The claims tested on it, as drawn (set by the report once decided).
    pub tested: Vec<Tested>,
    /// `trend:`: the factors of the factorial this member is a cell of, and
    /// its level of each (set by `trend::resolve_levels`: from its axes or its world).
    pub trend: Vec<String>,
    pub levels: BTreeMap<String, f64>,
}

/// A claim tested on a trade-off, as its figure draws it.
#[derive(Debug, Clone)]
pub struct Tested {
    pub upper: String,
    pub lower: String,
    /// The KL window it was compared over.
    pub window: (f64, f64),
    /// The matched-KL difference (upper − lower) across the window: (KL,
    /// difference, low, high), the interval 95% and not adjusted.
    pub difference: Vec<(f64, f64, f64, f64)>,
}

/// The rows of the given evaluation nodes; an evaluation that reports several
/// metrics is plotted by its first (its headline).
fn rows_of<'a>(rows: &'a [EvalRow], keys: &[Key], evals: &[InstanceName]) -> Vec<&'a EvalRow> {
    let selected: Vec<&EvalRow> =
        rows.iter().filter(|r| keys.contains(&r.key) && (evals.is_empty() || evals.contains(&r.eval))).collect();
    let mut headline: std::collections::HashMap<&InstanceName, ResultMetric> = std::collections::HashMap::new();
    for r in &selected {
        headline.entry(&r.eval).or_insert(r.result.metric);
    }
    selected.iter().filter(|r| headline.get(&r.eval) == Some(&r.result.metric)).copied().collect()
}

fn metric_label(rows: &[&EvalRow]) -> String {
    rows.first().map(|r| r.result.metric.label().to_string()).unwrap_or_default()
}

/// Every figure a figure node stands for: one per declaration lowered to
/// it (declarations that plot the same evaluations share one node, but
/// each keeps its own title, claim, `expect:` and `normalize:`).
pub fn figures_of(node: &Node, rows: &[EvalRow]) -> Vec<Figure> {
    let Op::Figure(spec) = &node.op else { return vec![] };
    let mut out = vec![figure_data(node, node.names.first(), &spec.title, &spec.show, rows)];
    for (i, (title, show)) in spec.views.iter().enumerate() {
        out.push(figure_data(node, node.names.get(i + 1), title, show, rows));
    }
    out
}

/// Gathers a figure's data from the evaluation table: the figure declared
/// as `name` with its own title and presentation. A series is a target's
/// declaration (a sweep pooled), or its sweep member with `series: "member"`.
pub fn figure_data(
    node: &Node,
    name: Option<&crate::plan::NodeName>,
    title: &str,
    show: &Presentation,
    rows: &[EvalRow],
) -> Figure {
    let label = name.map(|n| n.to_string()).unwrap_or_else(|| node.key.short());
    let (decl, member, axes) = match name {
        Some(crate::plan::NodeName::Decl(i)) => (
            i.decl.clone(),
            i.member.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "),
            i.member.clone(),
        ),
        _ => (label.clone(), String::new(), vec![]),
    };
    let mut fig = Figure {
        title: if title.is_empty() { label.clone() } else { title.to_string() },
        name: label,
        decl,
        member,
        kind: FigureKind::Curve,
        x_label: String::new(),
        y_label: String::new(),
        points: vec![],
        bars: vec![],
        claim: String::new(),
        expect: vec![],
        notes: vec![],
        narrower_than: None,
        axes,
        margin: None,
        tested: vec![],
        trend: vec![],
        levels: BTreeMap::new(),
    };
    let Op::Figure(FigureSpec { shape, .. }) = &node.op else {
        fig.title = fig.name.clone();
        return fig;
    };
    fig.kind = match shape {
        FigureShape::Tradeoff { .. } => FigureKind::Tradeoff,
        FigureShape::Curve { .. } | FigureShape::Curves { .. } => FigureKind::Curve,
        FigureShape::Scatter { .. } => FigureKind::Scatter,
        FigureShape::Best { .. } => FigureKind::Best,
    };
    fig.claim = show.claim.clone();
    fig.expect = show.expect.clone();
    fig.narrower_than = show.narrower_than.as_ref().map(|n| n.to_string());
    fig.margin = show.margin;
    fig.trend = show.trend.clone();
    match shape {
        FigureShape::Tradeoff { x, y } | FigureShape::Scatter { x, y } => fill_pairs(&mut fig, rows, x, y, show),
        FigureShape::Curve { y } => fill_curve(&mut fig, rows, &y.iter().flatten().copied().collect::<Vec<_>>(), show),
        // Training metrics are not evaluations: report::training reads them
        // from the cache and fills this figure's points.
        FigureShape::Curves { metric, .. } => {
            fig.x_label = "training step".into();
            fig.y_label = metric.clone();
        }
        FigureShape::Best { y, quantile } => fill_best(&mut fig, rows, y, *quantile, show),
    }
    fig
}

/// A tradeoff or scatter: one point per target (and step) the x and y
/// evaluations both measured, joined on the evaluated target and step
/// (and, for streams, the data step).
fn fill_pairs(fig: &mut Figure, rows: &[EvalRow], x: &[Key], y: &[Key], show: &Presentation) {
    let xs = rows_of(rows, x, &show.evals);
    let ys = rows_of(rows, y, &show.evals);
    fig.x_label = metric_label(&xs);
    fig.y_label = metric_label(&ys);
    for y in &ys {
        let Some(x) =
            xs.iter().find(|x| x.target == y.target && x.step == y.step && x.result.data_step == y.result.data_step)
        else {
            continue;
        };
        let member = y.target.to_string();
        let series = if show.series == SeriesBy::Member { member.clone() } else { y.target.decl.clone() };
        let (replicate, candidate) = replicate_of(&y.target);
        fig.points.push(Point {
            series,
            member,
            step: y.step,
            x: x.result.value,
            x_err: 1.96 * x.result.stderr,
            y: y.result.value,
            y_err: 1.96 * y.result.stderr,
            n: y.result.n,
            replicate,
            candidate,
            units: y.result.units.clone(),
            unit_set: y.unit_set.clone(),
        });
    }
}

/// A curve: each (evaluation, target) a series over training steps, or
/// over the data stream's steps for windows along a stream.
fn fill_curve(fig: &mut Figure, rows: &[EvalRow], keys: &[Key], show: &Presentation) {
    let ys = rows_of(rows, keys, &show.evals);
    fig.x_label = if ys.iter().any(|r| r.result.data_step.is_some()) {
        "step of the online data stream"
    } else {
        "training step"
    }
    .into();
    fig.y_label = metric_label(&ys);
    for y in &ys {
        let member = format!("{} {}", y.eval, y.target);
        fig.points.push(Point {
            series: member.clone(),
            member,
            step: y.step,
            x: y.result.data_step.or(y.step).unwrap_or(0) as f64,
            x_err: 0.0,
            y: y.result.value,
            y_err: 1.96 * y.result.stderr,
            n: y.result.n,
            replicate: String::new(),
            candidate: String::new(),
            units: vec![],
            unit_set: String::new(),
        });
    }
}

/// Bars: each declaration's value at the given quantile of its members
/// and checkpoints, divided by the `normalize` series where one is named;
/// the rows behind the bars are kept as points for the report's comparisons.
fn fill_best(fig: &mut Figure, rows: &[EvalRow], y: &[Key], quantile: f64, show: &Presentation) {
    let ys = rows_of(rows, y, &show.evals);
    fig.y_label = metric_label(&ys);
    let mut by: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for y in &ys {
        by.entry(y.target.decl.clone()).or_default().push((y.result.value, y.result.stderr));
        let (replicate, candidate) = replicate_of(&y.target);
        fig.points.push(Point {
            series: y.target.decl.clone(),
            member: y.target.to_string(),
            step: y.step,
            x: y.step.unwrap_or(0) as f64,
            x_err: 0.0,
            y: y.result.value,
            y_err: 1.96 * y.result.stderr,
            n: y.result.n,
            replicate,
            candidate: format!("{candidate}@{}", y.step.unwrap_or(0)),
            units: y.result.units.clone(),
            unit_set: y.unit_set.clone(),
        });
    }
    for (series, mut vals) in by {
        vals.sort_by(|a, b| a.0.total_cmp(&b.0));
        let i = ((vals.len() - 1) as f64 * quantile).round() as usize;
        fig.bars.push((series, vals[i].0, vals[i].1));
    }
    if let Some(base_name) = &show.normalize {
        normalize_bars(fig, base_name);
    }
}

/// Divides every bar by the named series' bar; a note says why not where it cannot.
fn normalize_bars(fig: &mut Figure, base_name: &str) {
    match fig.bars.iter().find(|b| b.0 == base_name) {
        Some(&(_, base, _)) if base != 0.0 => {
            for b in &mut fig.bars {
                b.1 /= base;
                b.2 /= base.abs();
            }
            fig.y_label = format!("{} (÷ {base_name})", fig.y_label);
        }
        Some(_) => fig.notes.push(format!("not divided by `{base_name}`: its value is 0")),
        None if fig.bars.is_empty() => {}
        None => fig.notes.push(format!(
            "not divided by `{base_name}`: the figure has no such series (it has {})",
            fig.bars.iter().map(|b| format!("`{}`", b.0)).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Is an axis of a figure's sweep member a world? (Its name is `world` or
/// ends in `.world`, as a seed axis's is or ends in `seed`.)
pub fn is_world_axis(axis: &str) -> bool {
    axis == "world" || axis.ends_with(".world")
}

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold());
    });
}

fn range(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    let v: Vec<f64> = vals.filter(|x| x.is_finite()).collect();
    let (lo, hi) =
        (v.iter().cloned().fold(f64::INFINITY, f64::min), v.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-3);
    (lo - pad, hi + pad)
}

/// Draws a figure into an area; the caller presents the drawing (once: an
/// SVG is written when presented, so a panel must not present the whole).
/// A trade-off with tested claims gets a second panel below: the tested
/// difference against KL.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &Figure,
    caption: &str,
    palette: &Palette,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    root.fill(&WHITE).map_err(e)?;
    if !fig.bars.is_empty() {
        return draw_bars(root, fig, caption, palette).map_err(e);
    }
    let (x0, x1) = range(fig.points.iter().flat_map(|p| [p.x - p.x_err, p.x + p.x_err]));
    let (y0, y1) = range(fig.points.iter().flat_map(|p| [p.y - p.y_err, p.y + p.y_err]));
    let with_difference = fig.kind == FigureKind::Tradeoff && fig.tested.iter().any(|t| !t.difference.is_empty());
    let (main, below) = if with_difference {
        let h = root.dim_in_pixel().1;
        let (top, bottom) = root.split_vertically(h * 64 / 100);
        (top, Some(bottom))
    } else {
        (root.clone(), None)
    };
    let mut chart = ChartBuilder::on(&main)
        .caption(caption, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(e)?;
    chart.configure_mesh().light_line_style(TRANSPARENT).x_desc(&fig.x_label).y_desc(&fig.y_label).draw().map_err(e)?;
    let mut series: Vec<String> = vec![];
    for p in &fig.points {
        if !series.contains(&p.series) {
            series.push(p.series.clone());
        }
    }
    draw_references(&mut chart, fig, (x0, x1), (y0, y1)).map_err(e)?;
    if fig.kind == FigureKind::Tradeoff {
        draw_tradeoff(&mut chart, fig, &series, palette).map_err(e)?;
        draw_windows(&mut chart, fig, (y0, y1)).map_err(e)?;
    } else {
        draw_lines(&mut chart, fig, &series, palette).map_err(e)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(e)?;
    if let Some(area) = below {
        draw_difference(&area, fig, (x0, x1)).map_err(e)?;
    }
    Ok(())
}

/// A `best` figure: one bar per series with its 95% whisker.
fn draw_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &Figure,
    caption: &str,
    palette: &Palette,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let n = fig.bars.len();
    let (_, hi) = range(fig.bars.iter().map(|b| b.1 + 1.96 * b.2));
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..hi.max(0.1))?;
    let names: Vec<String> = fig.bars.iter().map(|b| b.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| names.get(x.round() as usize).cloned().unwrap_or_default())
        .y_desc(&fig.y_label)
        .draw()?;
    for (i, (name, v, se)) in fig.bars.iter().enumerate() {
        let c = palette.colour(name);
        let x = i as f64;
        chart.draw_series(std::iter::once(Rectangle::new([(x - 0.3, 0.0), (x + 0.3, *v)], c.mix(0.7).filled())))?;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(x, v - 1.96 * se), (x, v + 1.96 * se)],
            BLACK.stroke_width(2),
        )))?;
    }
    Ok(())
}

/// Where "no better than the baseline" and "no better than the starting
/// policy" lie: a dashed line at a win rate of 0.5, and a dotted one at the
/// mean of the step-0 (SFT) points of a trade-off; each only when it falls
/// inside the plotted range.
fn draw_references<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    fig: &Figure,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let grey = RGBColor(0x70, 0x70, 0x70);
    if fig.y_label.starts_with("win rate") && (y0..=y1).contains(&0.5) {
        chart
            .draw_series(DashedLineSeries::new([(x0, 0.5), (x1, 0.5)], 6, 4, grey.stroke_width(1)))?
            .label("0.5: level with the baseline")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(1)));
    }
    let start: Vec<f64> = fig.points.iter().filter(|p| p.step == Some(0) && p.y.is_finite()).map(|p| p.y).collect();
    if fig.kind == FigureKind::Tradeoff && !start.is_empty() {
        let sft = start.iter().sum::<f64>() / start.len() as f64;
        if (y0..=y1).contains(&sft) {
            chart
                .draw_series(DashedLineSeries::new([(x0, sft), (x1, sft)], 2, 4, BLACK.stroke_width(1)))?
                .label("starting policy (step 0)")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(1)));
        }
    }
    Ok(())
}

/// Each tested claim's comparison window, as a bracket along the bottom of
/// the plot: the KL range over which both methods have trained checkpoints
/// and the claim was decided.
fn draw_windows<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    fig: &Figure,
    (y0, y1): (f64, f64),
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let grey = RGBColor(0x40, 0x40, 0x40);
    let step = (y1 - y0) * 0.07;
    for (i, t) in fig.tested.iter().enumerate() {
        let (lo, hi) = t.window;
        let y = y0 + step * (i as f64 + 0.8);
        let tick = step * 0.3;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(lo, y + tick), (lo, y), (hi, y), (hi, y + tick)],
            grey.stroke_width(2),
        )))?;
        // Labelled at its left end, away from the legend in the lower right.
        chart.draw_series(std::iter::once(Text::new(
            format!("window: {} vs {}", t.upper, t.lower),
            (lo, y + step * 0.95),
            ("sans-serif", 11).into_font().color(&grey),
        )))?;
    }
    Ok(())
}

/// The panel under a trade-off: for each tested claim, the difference
/// (upper − lower) of the matched-KL curves at each KL of its window, with
/// its unadjusted 95% interval, against a zero line. The claim's test is
/// the average of this curve (the budgeted frontier beside it in the report).
fn draw_difference<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    fig: &Figure,
    (x0, x1): (f64, f64),
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (d0, d1) = range(fig.tested.iter().flat_map(|t| t.difference.iter().flat_map(|d| [d.2, d.3])).chain([0.0]));
    let mut chart = ChartBuilder::on(area)
        .caption("difference at matched KL (95% interval, not adjusted)", ("sans-serif", 14))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(65)
        .build_cartesian_2d(x0..x1, d0..d1)?;
    chart.configure_mesh().light_line_style(TRANSPARENT).x_desc(&fig.x_label).y_desc("upper − lower").draw()?;
    chart.draw_series(std::iter::once(PathElement::new(vec![(x0, 0.0), (x1, 0.0)], BLACK.stroke_width(1))))?;
    let span = (x1 - x0, d1 - d0);
    for (i, t) in fig.tested.iter().filter(|t| t.difference.len() > 1).enumerate() {
        // A pair is not a method: pairs take their own colours (black, then
        // the palette's last ones, which a report's first methods never
        // take), so that no pair is mistaken for a method's line.
        let colour = PAIR_COLOURS[i % PAIR_COLOURS.len()].to_rgba();
        let band: Vec<(f64, f64)> =
            t.difference.iter().map(|d| (d.0, d.3)).chain(t.difference.iter().rev().map(|d| (d.0, d.2))).collect();
        chart.draw_series(std::iter::once(Polygon::new(band, colour.mix(0.15))))?;
        chart
            .draw_series(segments(thin(t.difference.iter().map(|d| (d.0, d.1)), span), colour.stroke_width(2)))?
            .label(format!("{} − {}", t.upper, t.lower))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

/// The difference panel's pair colours: black, sky blue, reddish purple, yellow.
const PAIR_COLOURS: [RGBColor; 4] = [
    crate::report::palette::OKABE_ITO[7],
    crate::report::palette::OKABE_ITO[5],
    crate::report::palette::OKABE_ITO[4],
    crate::report::palette::OKABE_ITO[6],
];

/// A wide line as separate segments: the bitmap backend joins the segments
/// of one wide polyline with mitres, and where a path turns back on itself
/// (a training path whose KL falls) the mitre shoots across the image.
fn segments(points: Vec<(f64, f64)>, style: ShapeStyle) -> Vec<PathElement<(f64, f64)>> {
    points.windows(2).map(|w| PathElement::new(vec![w[0], w[1]], style)).collect()
}

/// A line's points without those that fall on top of the previous one
/// (closer than 1/500 of the plotted range in both directions): the bitmap
/// backend draws a wide segment of zero length as a stray line across the
/// image.
fn thin(points: impl Iterator<Item = (f64, f64)>, (rx, ry): (f64, f64)) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = vec![];
    for p in points {
        match out.last() {
            Some(q) if (p.0 - q.0).abs() * 500.0 < rx && (p.1 - q.1).abs() * 500.0 < ry => {}
            _ => out.push(p),
        }
    }
    out
}

/// A curve (each series a line with its band) or a scatter (points).
fn draw_lines<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    fig: &Figure,
    series: &[String],
    palette: &Palette,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    for s in series {
        let color = palette.colour(s).to_rgba();
        let mut members: BTreeMap<&str, Vec<&Point>> = BTreeMap::new();
        for p in fig.points.iter().filter(|p| &p.series == s) {
            members.entry(&p.member).or_default().push(p);
        }
        let mut first = true;
        for pts in members.values_mut() {
            if fig.kind == FigureKind::Scatter {
                pts.sort_by(|a, b| a.x.total_cmp(&b.x));
            } else {
                pts.sort_by_key(|p| p.step.unwrap_or(0));
            }
            // The 95% interval of y as a band, along x.
            let mut by_x: Vec<&&Point> = pts.iter().collect();
            by_x.sort_by(|a, b| a.x.total_cmp(&b.x));
            if by_x.len() > 1 && fig.kind != FigureKind::Scatter {
                let band: Vec<(f64, f64)> = by_x
                    .iter()
                    .map(|p| (p.x, p.y + p.y_err))
                    .chain(by_x.iter().rev().map(|p| (p.x, p.y - p.y_err)))
                    .collect();
                chart.draw_series(std::iter::once(Polygon::new(band, color.mix(0.15))))?;
            }
            for p in pts.iter() {
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(p.x, p.y - p.y_err), (p.x, p.y + p.y_err)],
                    color.mix(0.5),
                )))?;
                if p.x_err > 0.0 {
                    chart.draw_series(std::iter::once(PathElement::new(
                        vec![(p.x - p.x_err, p.y), (p.x + p.x_err, p.y)],
                        color.mix(0.5),
                    )))?;
                }
            }
            if fig.kind != FigureKind::Scatter {
                let (x, y) = (chart.x_range(), chart.y_range());
                let line = chart.draw_series(segments(
                    thin(pts.iter().map(|p| (p.x, p.y)), (x.end - x.start, y.end - y.start)),
                    color.stroke_width(2),
                ))?;
                if first {
                    line.label(s.clone())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
                }
            }
            let dots = chart.draw_series(pts.iter().map(|p| Circle::new((p.x, p.y), 3, color.filled())))?;
            if first && fig.kind == FigureKind::Scatter {
                dots.label(s.clone()).legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
            }
            first = false;
        }
    }
    Ok(())
}

type Chart<'a, DB> =
    ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>;

/// A trade-off: every checkpoint as a faint point with its 95% whiskers,
/// and each configuration's training path (mean KL and mean win rate over
/// its seeds, step by step) as a line in its method's colour.
fn draw_tradeoff<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    fig: &Figure,
    series: &[String],
    palette: &Palette,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (x, y) = (chart.x_range(), chart.y_range());
    let span = (x.end - x.start, y.end - y.start);
    for s in series {
        let color = palette.colour(s).to_rgba();
        let pts: Vec<&Point> = fig.points.iter().filter(|p| &p.series == s).collect();
        for p in &pts {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(p.x, p.y - p.y_err), (p.x, p.y + p.y_err)],
                color.mix(0.2),
            )))?;
        }
        chart.draw_series(pts.iter().map(|p| Circle::new((p.x, p.y), 2, color.mix(0.5).filled())))?;
        for (i, (_, path)) in training_paths(&pts).into_iter().enumerate() {
            let path = thin(path.into_iter(), span);
            let line = chart.draw_series(segments(path.clone(), color.stroke_width(2)))?;
            if i == 0 {
                line.label(s.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
            }
            chart.draw_series(path.iter().map(|&(x, y)| Circle::new((x, y), 3, color.filled())))?;
        }
    }
    Ok(())
}

/// A series' training paths as drawn: per configuration (grid member: its
/// axes other than the seed), the mean KL and mean y over its seeds at each
/// step, in step order. A line follows what training did, step after step;
/// it never joins checkpoints re-sorted by a noisy KL, and never pools
/// configurations into bins.
pub fn training_paths(points: &[&Point]) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut by: BTreeMap<&str, BTreeMap<i64, Vec<&Point>>> = BTreeMap::new();
    for p in points.iter().filter(|p| p.x.is_finite() && p.y.is_finite()) {
        by.entry(p.candidate.as_str()).or_default().entry(p.step.unwrap_or(0)).or_default().push(p);
    }
    by.into_iter()
        .map(|(candidate, steps)| {
            let path = steps
                .values()
                .map(|ps| {
                    let k = ps.len() as f64;
                    (ps.iter().map(|p| p.x).sum::<f64>() / k, ps.iter().map(|p| p.y).sum::<f64>() / k)
                })
                .collect();
            (candidate.to_string(), path)
        })
        .collect()
}

/// Figures of one declaration over a sweep (one per world) side by side in
/// one image, `<stem>.svg` and `.png`, each panel titled by its member.
pub fn write_small_multiples(
    dir: &Path,
    stem: &str,
    title: &str,
    figs: &[&Figure],
    palette: &Palette,
) -> Result<Vec<PathBuf>, String> {
    register_font();
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let cols = if figs.len() <= 4 { figs.len().min(2) } else { (figs.len() as f64).sqrt().ceil() as usize };
    let rows = figs.len().div_ceil(cols.max(1));
    let size = (640 * cols as u32, 480 * rows as u32 + 40);
    let svg = dir.join(format!("{stem}.svg"));
    let png = dir.join(format!("{stem}.png"));
    fn panels<DB: DrawingBackend>(
        root: DrawingArea<DB, Shift>,
        title: &str,
        figs: &[&Figure],
        grid: (usize, usize),
        palette: &Palette,
    ) -> Result<(), String>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let inner = root.titled(title, ("sans-serif", 22)).map_err(|e| e.to_string())?;
        for (area, fig) in inner.split_evenly(grid).iter().zip(figs) {
            draw(area, fig, if fig.member.is_empty() { &fig.title } else { &fig.member }, palette)?;
        }
        root.present().map_err(|e| e.to_string())
    }
    panels(SVGBackend::new(&svg, size).into_drawing_area(), title, figs, (rows, cols), palette)?;
    panels(BitMapBackend::new(&png, size).into_drawing_area(), title, figs, (rows, cols), palette)?;
    Ok(vec![svg, png])
}

/// Figures in the order of their names with numbers compared as numbers
/// (`fig2` before `fig10`), which puts a study that names its figures after
/// the paper's in the paper's order; sweep members stay in declared order.
pub fn natural_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = vec![];
        for c in s.chars() {
            let digit = c.is_ascii_digit();
            match out.last_mut() {
                Some((d, text)) if *d == digit => text.push(c),
                _ => out.push((digit, c.to_string())),
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(&cb) {
        let o = match (x.0, y.0) {
            (true, true) => x.1.len().cmp(&y.1.len()).then_with(|| x.1.cmp(&y.1)),
            // A number sorts before text at the same place (`fig1` before `fig_e1`).
            (true, false) => std::cmp::Ordering::Less,
            (false, true) => std::cmp::Ordering::Greater,
            (false, false) => x.1.cmp(&y.1),
        };
        if o.is_ne() {
            return o;
        }
    }
    ca.len().cmp(&cb.len())
}

/// A figure's name as a file name: `fig1[world=helpful]` → `fig1_world-helpful`.
pub fn file_stem(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' | '.' => out.push(c),
            '=' => out.push('-'),
            '[' | ',' => out.push('_'),
            _ => {}
        }
    }
    out.trim_end_matches('_').to_string()
}

/// Writes `<name>.svg`, `<name>.png` and `<name>.csv` into `dir`.
pub fn write_figure(dir: &Path, fig: &Figure, palette: &Palette) -> Result<Vec<PathBuf>, String> {
    register_font();
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let stem = file_stem(&fig.name);
    let svg = dir.join(format!("{stem}.svg"));
    let png = dir.join(format!("{stem}.png"));
    let csv_path = dir.join(format!("{stem}.csv"));
    let size = (860, 600);
    // A panel of a figure over worlds names its world.
    let caption = if fig.member.is_empty() { fig.title.clone() } else { format!("{} ({})", fig.title, fig.member) };
    {
        let area = SVGBackend::new(&svg, size).into_drawing_area();
        draw(&area, fig, &caption, palette)?;
        area.present().map_err(|e| e.to_string())?;
    }
    {
        let area = BitMapBackend::new(&png, size).into_drawing_area();
        draw(&area, fig, &caption, palette)?;
        area.present().map_err(|e| e.to_string())?;
    }
    let mut w = csv::Writer::from_path(&csv_path).map_err(|e| e.to_string())?;
    if fig.bars.is_empty() {
        for p in &fig.points {
            w.serialize(p).map_err(|e| e.to_string())?;
        }
    } else {
        w.write_record(["series", "value", "stderr"]).map_err(|e| e.to_string())?;
        for (s, v, se) in &fig.bars {
            w.write_record([s.clone(), v.to_string(), se.to_string()]).map_err(|e| e.to_string())?;
        }
    }
    w.flush().map_err(|e| e.to_string())?;
    Ok(vec![svg, png, csv_path])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(eval: &str, target: &str, key: &Key) -> EvalRow {
        EvalRow {
            eval: InstanceName::plain(eval),
            target: InstanceName::plain(target),
            step: Some(0),
            result: crate::exec::artifacts::ResultRow {
                metric: ResultMetric::Kl,
                value: 0.0,
                stderr: 0.0,
                ci_low: 0.0,
                ci_high: 0.0,
                n: 1,
                data_step: None,
                units: vec![],
                scores: vec![],
            },
            key: *key,
            unit_set: String::new(),
        }
    }

    #[test]
    fn a_figure_takes_only_its_own_evaluations_rows_from_a_shared_node() {
        // One evaluation node (step 0 of runs that all start from SFT) is
        // named by two declarations; each figure must see only its own.
        let shared = Key([7; 32]);
        let rows = vec![row("f1_kl", "online", &shared), row("f13_kl", "shuffled", &shared)];
        let mine = rows_of(&rows, &[shared], &[InstanceName::plain("f1_kl")]);
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].target_label(), "online@0");
        // Without the declared labels (an older plan) every row is kept.
        assert_eq!(rows_of(&rows, &[shared], &[]).len(), 2);
    }

    fn best_figure(normalize: Option<&str>, rows: &[EvalRow], keys: Vec<Key>) -> Figure {
        let show = crate::plan::op::Presentation {
            claim: String::new(),
            expect: vec![],
            series: SeriesBy::Declaration,
            normalize: normalize.map(String::from),
            evals: vec![],
            narrower_than: None,
            margin: None,
            trend: vec![],
        };
        let op = Op::Figure(FigureSpec {
            shape: FigureShape::Best { y: keys, quantile: 1.0 },
            title: String::new(),
            show,
            views: vec![],
        });
        figures_of(&Node::new(op, vec![]), rows).remove(0)
    }

    fn point(x: f64, y: f64, se: f64) -> Point {
        Point {
            series: "s".into(),
            member: "s".into(),
            step: None,
            x,
            x_err: 0.0,
            y,
            y_err: 1.96 * se,
            n: 1,
            replicate: String::new(),
            candidate: String::new(),
            units: vec![],
            unit_set: String::new(),
        }
    }

    #[test]
    fn a_line_follows_each_configurations_path_averaged_over_seeds() {
        // Two seeds of member "lr=1" and one of "lr=2", steps 0, 10, 20.
        // The line of "lr=1" is the seeds' mean at each step, in step order,
        // even where its mean KL falls back (step 20 below step 10).
        let at = |cand: &str, step: i64, x: f64, y: f64| {
            let mut p = point(x, y, 0.01);
            p.candidate = cand.into();
            p.step = Some(step);
            p
        };
        let pts = [
            at("lr=1", 0, 0.0, 0.3),
            at("lr=1", 10, 1.0, 0.4),
            at("lr=1", 20, 0.5, 0.6),
            at("lr=1", 0, 0.0, 0.3),
            at("lr=1", 10, 2.0, 0.6),
            at("lr=1", 20, 1.0, 0.4),
            at("lr=2", 10, 5.0, 0.9),
            at("lr=2", 0, 0.0, 0.3),
        ];
        let refs: Vec<&Point> = pts.iter().collect();
        let paths = training_paths(&refs);
        assert_eq!(paths.len(), 2);
        assert_eq!(paths[0].0, "lr=1");
        assert_eq!(paths[0].1, vec![(0.0, 0.3), (1.5, 0.5), (0.75, 0.5)]);
        assert_eq!(paths[1].1, vec![(0.0, 0.3), (5.0, 0.9)]);
    }

    #[test]
    fn a_tradeoff_with_its_tests_draws_without_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut fig = best_figure(None, &[], vec![]);
        fig.kind = FigureKind::Tradeoff;
        fig.y_label = "win rate against the baseline".into();
        fig.bars.clear();
        for (i, s) in ["online", "offline"].iter().enumerate() {
            for step in [0, 10, 20] {
                let mut p = point(step as f64 * (1.0 + i as f64) / 10.0, 0.3 + step as f64 / 100.0, 0.02);
                p.series = s.to_string();
                p.step = Some(step);
                fig.points.push(p);
            }
        }
        fig.tested.push(Tested {
            upper: "online".into(),
            lower: "offline".into(),
            window: (1.0, 2.0),
            difference: vec![(1.0, 0.1, 0.0, 0.2), (2.0, 0.05, -0.05, 0.15)],
        });
        let written = write_figure(dir.path(), &fig, &Palette::of(["online", "offline"])).unwrap();
        let svg = std::fs::read_to_string(&written[0]).unwrap();
        assert!(svg.contains("difference at matched KL") && svg.contains("window: online vs offline"));
        // Okabe–Ito blue for online, vermillion for offline.
        assert!(svg.contains("#0072B2") && svg.contains("#D55E00"), "colours");
    }

    #[test]
    fn figures_sort_as_the_paper_numbers_them() {
        let mut names =
            vec!["fig_e1", "fig10_small", "fig9", "fig1[world=tldr]", "fig13", "fig1_seeds", "fig4", "fig6"];
        names.sort_by(|a, b| natural_order(a, b));
        assert_eq!(names, ["fig1[world=tldr]", "fig1_seeds", "fig4", "fig6", "fig9", "fig10_small", "fig13", "fig_e1"]);
    }

    #[test]
    fn best_divides_by_the_series_it_names_and_by_no_other() {
        let (a, b) = (Key([1; 32]), Key([2; 32]));
        let mut r1 = row("wr", "online_large", &a);
        r1.result.value = 0.5;
        r1.result.stderr = 0.125;
        let mut r2 = row("wr", "offline_large", &b);
        r2.result.value = 0.25;
        let rows = vec![r1, r2];
        // A series named anything (not only `online`) can be the divisor.
        let fig = best_figure(Some("online_large"), &rows, vec![a, b]);
        let bar = |f: &Figure, s: &str| f.bars.iter().find(|x| x.0 == s).map(|x| (x.1, x.2)).unwrap();
        assert_eq!(bar(&fig, "online_large"), (1.0, 0.25));
        assert_eq!(bar(&fig, "offline_large").0, 0.5);
        assert!(fig.y_label.ends_with("(÷ online_large)"), "{}", fig.y_label);
        // By default nothing is divided, and a series named `online` is not special.
        let plain = best_figure(None, &rows, vec![a, b]);
        assert_eq!(bar(&plain, "online_large").0, 0.5);
        assert!(plain.notes.is_empty());
        // A divisor that is not a series is said, not silently skipped.
        let missing = best_figure(Some("online"), &rows, vec![a, b]);
        assert_eq!(bar(&missing, "online_large").0, 0.5);
        assert_eq!(missing.notes.len(), 1, "{:?}", missing.notes);
    }
}
