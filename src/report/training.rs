//! The report's "Training" section: what each run did step by step, read
//! from the per-step metrics its last checkpoint keeps (`metrics.csv`:
//! loss, gradient norm, learning rate; for preference losses the mean
//! log-ratio margin h and the policy's log-probs of the chosen and rejected
//! responses; for online runs the samples' KL from the reference and length). One curve per run declaration: its
//! seeds (and grid members) averaged in windows of steps, with a 95% band
//! over the runs where there are several.

use std::collections::BTreeMap;

use crate::exec::artifacts::{read_metrics, MetricRow};
use crate::exec::store::Store;
use crate::plan::op::checkpoint_key;
use crate::plan::{NodeName, Op, Plan};
use crate::report::figures::{Figure, FigureKind, Point};

/// Windows per curve: a run's steps are averaged in about this many.
pub const WINDOWS: i64 = 40;

/// A metric the section draws: its file name (with a hyphen, which no
/// declared figure's name can have, so a figure of the study is never
/// written over), its axis label, and its title.
struct Curve {
    name: &'static str,
    label: &'static str,
    title: &'static str,
    /// The `metrics.csv` column ([`metric_value`]).
    metric: &'static str,
}

const CURVES: [Curve; 6] = [
    Curve { name: "training-loss", label: "training loss", title: "Training: loss per step", metric: "loss" },
    Curve {
        name: "training-margin",
        label: "log-ratio margin h (chosen − rejected)",
        title: "Training: implicit reward margin per step",
        metric: "margin",
    },
    Curve {
        name: "training-logprob-chosen",
        label: "log π(y_w | x), batch mean",
        title: "Training: the policy's log-prob of the chosen responses (Fig. 8)",
        metric: "chosen_logprob",
    },
    Curve {
        name: "training-logprob-rejected",
        label: "log π(y_l | x), batch mean",
        title: "Training: the policy's log-prob of the rejected responses (Fig. 8)",
        metric: "rejected_logprob",
    },
    Curve {
        name: "training-sample-kl",
        label: "log π(y|x) − log π_ref(y|x) of the samples",
        title: "Online training: KL from the reference of each step's samples",
        metric: "sample_kl",
    },
    Curve {
        name: "training-sample-length",
        label: "tokens per sample",
        title: "Online training: length of each step's samples",
        metric: "sample_length",
    },
];

/// A metric row's value by its `metrics.csv` column name (the names a
/// `curves` figure takes: `check::schema::TRAINING_METRICS`).
pub fn metric_value(name: &str) -> Option<fn(&MetricRow) -> Option<f64>> {
    Some(match name {
        "loss" => |r| Some(r.loss),
        "grad_norm" => |r| Some(r.grad_norm),
        "lr" => |r| Some(r.lr),
        "margin" => |r| r.margin,
        "chosen_logprob" => |r| r.chosen_logprob,
        "rejected_logprob" => |r| r.rejected_logprob,
        "sample_kl" => |r| r.sample_kl,
        "sample_length" => |r| r.sample_length,
        "judge_margin" => |r| r.judge_margin,
        "judge_score" => |r| r.judge_score,
        _ => return None,
    })
}

/// One curve per declaration: its runs' rows averaged in about `windows`
/// windows of steps (each run's mean in a window, then the mean over runs
/// with a 95% band where there are several).
fn curve_points(
    runs: &BTreeMap<String, Vec<Vec<MetricRow>>>,
    value: fn(&MetricRow) -> Option<f64>,
    windows: i64,
) -> Vec<Point> {
    let mut points = vec![];
    for (decl, its_runs) in runs {
        let last = its_runs.iter().flat_map(|r| r.iter().map(|m| m.step)).max().unwrap_or(0);
        let width = (last / windows.max(1)).max(1);
        // Window → each run's mean in it.
        let mut by_window: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
        for rows in its_runs {
            let mut sums: BTreeMap<i64, (f64, usize)> = BTreeMap::new();
            for r in rows {
                if let Some(v) = value(r).filter(|v| v.is_finite()) {
                    let e = sums.entry((r.step - 1).max(0) / width).or_default();
                    e.0 += v;
                    e.1 += 1;
                }
            }
            for (w, (s, k)) in sums {
                by_window.entry(w).or_default().push(s / k as f64);
            }
        }
        for (w, means) in by_window {
            let n = means.len();
            let mean = means.iter().sum::<f64>() / n as f64;
            let half = if n > 1 {
                let var = means.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
                1.96 * (var / n as f64).sqrt()
            } else {
                0.0
            };
            points.push(Point {
                series: decl.clone(),
                member: decl.clone(),
                step: Some((w + 1) * width),
                x: (w as f64 + 0.5) * width as f64,
                x_err: 0.0,
                y: mean,
                y_err: half,
                n,
                replicate: String::new(),
                candidate: String::new(),
                units: vec![],
                unit_set: String::new(),
            });
        }
    }
    points
}

/// A declared `curves` figure's points, read from the cache: each entry
/// it names (a run's checkpoint, a model) is one run of the declaration the
/// plan names it by. `fig` is the figure `figures::figures_of` made of the
/// node (title, names, axis labels); entries not in the cache are left out.
pub fn fill_declared(plan: &Plan, store: &Store, node: &crate::plan::Node, fig: &mut Figure) {
    let Op::Figure(crate::plan::op::FigureSpec {
        shape: crate::plan::op::FigureShape::Curves { models, metric, windows },
        ..
    }) = &node.op
    else {
        return;
    };
    let Some(value) = metric_value(metric) else { return };
    let mut runs: BTreeMap<String, Vec<Vec<MetricRow>>> = BTreeMap::new();
    for key in models {
        let Some(n) = plan.node(key) else { continue };
        let Ok(rows) = read_metrics(store, key) else { continue };
        let decl = n.names.iter().find_map(|name| match name {
            NodeName::Decl(i) => Some(i.decl.clone()),
            NodeName::Checkpoint { run, .. } => Some(run.decl.clone()),
            _ => None,
        });
        runs.entry(decl.unwrap_or_else(|| key.short())).or_default().push(rows);
    }
    fig.points = curve_points(&runs, value, *windows);
    fig.notes.push(format!(
        "Each curve: a declaration's runs, each averaged in windows of about 1/{windows} of its steps, then the mean over its runs, with a 95% band where there are several (`windows:` sets the smoothing)"
    ));
}

/// The Training figures of a plan's finished runs (none when no run has
/// its metrics in the cache). Each point: one window of steps of one run
/// declaration, the mean over its runs of each run's mean in the window.
pub fn figures(plan: &Plan, store: &Store) -> Vec<Figure> {
    // Declaration → its runs' metric rows.
    let mut runs: BTreeMap<String, Vec<Vec<MetricRow>>> = BTreeMap::new();
    for n in plan.ordered() {
        let Op::Train(t) = &n.op else { continue };
        let Ok(rows) = read_metrics(store, &checkpoint_key(&n.key, t.length.steps)) else { continue };
        // A node shared by several declarations counts for each.
        for name in &n.names {
            if let NodeName::Decl(i) = name {
                runs.entry(i.decl.clone()).or_default().push(rows.clone());
            }
        }
    }
    if runs.is_empty() {
        return vec![];
    }
    let mut out = vec![];
    for c in &CURVES {
        let value = metric_value(c.metric).expect("a metrics.csv column");
        let points = curve_points(&runs, value, WINDOWS);
        if points.is_empty() {
            continue;
        }
        out.push(Figure {
            name: c.name.into(),
            decl: c.name.into(),
            member: String::new(),
            kind: FigureKind::Curve,
            title: c.title.into(),
            x_label: "training step".into(),
            y_label: c.label.into(),
            points,
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
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_a_curves_figure_takes_is_a_column() {
        for m in crate::check::schema::TRAINING_METRICS {
            assert!(metric_value(m).is_some(), "{m}");
        }
        for c in &CURVES {
            assert!(metric_value(c.metric).is_some(), "{}", c.metric);
        }
    }

    #[test]
    fn a_curve_averages_windows_then_runs() {
        let row =
            |step: i64, loss: f64| MetricRow { step, loss, ..MetricRow::of_step(step, &Default::default(), None) };
        // Two runs of 4 steps in 2 windows of 2 steps.
        let a = vec![row(1, 1.0), row(2, 3.0), row(3, 5.0), row(4, 7.0)];
        let b = vec![row(1, 3.0), row(2, 5.0), row(3, 7.0), row(4, 9.0)];
        let runs = BTreeMap::from([("online".to_string(), vec![a, b])]);
        let p = curve_points(&runs, |r| Some(r.loss), 2);
        // Window 1: means 2 and 4, their mean 3; the band 1.96 × sd/√n = 1.96 × √2/√2.
        assert_eq!((p[0].x, p[0].y, p[0].n), (1.0, 3.0, 2));
        assert!((p[0].y_err - 1.96).abs() < 1e-12);
        assert_eq!((p[1].x, p[1].y, p[1].step), (3.0, 7.0, Some(4)));
    }
}
