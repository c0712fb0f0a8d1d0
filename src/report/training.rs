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
    value: fn(&MetricRow) -> Option<f64>,
}

const CURVES: [Curve; 6] = [
    Curve { name: "training-loss", label: "training loss", title: "Training: loss per step", value: |r| Some(r.loss) },
    Curve {
        name: "training-margin",
        label: "log-ratio margin h (chosen − rejected)",
        title: "Training: implicit reward margin per step",
        value: |r| r.margin,
    },
    Curve {
        name: "training-logprob-chosen",
        label: "log π(y_w | x), batch mean",
        title: "Training: the policy's log-prob of the chosen responses (Fig. 8)",
        value: |r| r.chosen_logprob,
    },
    Curve {
        name: "training-logprob-rejected",
        label: "log π(y_l | x), batch mean",
        title: "Training: the policy's log-prob of the rejected responses (Fig. 8)",
        value: |r| r.rejected_logprob,
    },
    Curve {
        name: "training-sample-kl",
        label: "log π(y|x) − log π_ref(y|x) of the samples",
        title: "Online training: KL from the reference of each step's samples",
        value: |r| r.sample_kl,
    },
    Curve {
        name: "training-sample-length",
        label: "tokens per sample",
        title: "Online training: length of each step's samples",
        value: |r| r.sample_length,
    },
];

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
        let mut points = vec![];
        for (decl, its_runs) in &runs {
            let last = its_runs.iter().flat_map(|r| r.iter().map(|m| m.step)).max().unwrap_or(0);
            let width = (last / WINDOWS).max(1);
            // Window → each run's mean in it.
            let mut by_window: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
            for rows in its_runs {
                let mut sums: BTreeMap<i64, (f64, usize)> = BTreeMap::new();
                for r in rows {
                    if let Some(v) = (c.value)(r).filter(|v| v.is_finite()) {
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
