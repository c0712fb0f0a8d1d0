//! Warnings: declarations that are valid but almost certainly not what was
//! meant. They are printed and the command goes on (exit 0); they never
//! change a plan.
//!
//! - an evaluation with `at: []` evaluates no run at any step;
//! - `curve(y: [])` draws nothing;
//! - an `expect` (or `best`'s `normalize`) naming a series the figure does
//!   not have: its verdict can never be given;
//! - a `tradeoff` whose `y` is the KL evaluation and `x` is not: the axes are
//!   swapped.

use std::collections::BTreeSet;

use crate::check::expand::Expander;
use crate::check::program::{Instance, Value};
use crate::diagnostic::{did_you_mean, Code, Problem};
use crate::syntax::ast::{Call, DeclKind, Expr};

/// The warnings about every declaration that checked cleanly.
pub fn lint(x: &Expander) -> Vec<Problem> {
    let mut out = vec![];
    for (d, info) in x.decls.iter().enumerate() {
        if x.failed.contains(&d) {
            continue;
        }
        let Some(call) = &x.merged[d] else { continue };
        match info.kind {
            DeclKind::Eval => {
                if let Some(at) = arg(call, "at").filter(|e| is_empty_list(e)) {
                    out.push(
                        Problem::new(
                            Code::EvaluatesNothing,
                            at.span(),
                            format!("`at: []` evaluates no step: no run in `{}` is evaluated", info.name),
                        )
                        .label("no steps")
                        .help("leave `at` out to evaluate every saved step, or list the steps wanted"),
                    );
                }
            }
            DeclKind::Figure => {
                for &i in &info.instances {
                    figure(x, &x.instances[i], call, &mut out);
                }
            }
            _ => {}
        }
    }
    out
}

fn figure(x: &Expander, fig: &Instance, call: &Call, out: &mut Vec<Problem>) {
    let eval_of = |name: &str| match fig.args.get(name) {
        Some(Value::Instance(e)) => Some(&x.instances[*e]),
        _ => None,
    };
    if fig.ctor.name == "curve" {
        if let Some(y) = arg(call, "y").filter(|e| is_empty_list(e)) {
            out.push(
                Problem::new(Code::EvaluatesNothing, y.span(), format!("`{}` draws nothing: `y` is empty", fig.label))
                    .label("no evaluations")
                    .help("list the evaluations to plot against training step"),
            );
        }
    }
    if fig.ctor.name == "tradeoff" {
        if let (Some(xe), Some(ye)) = (eval_of("x"), eval_of("y")) {
            if ye.ctor.name == "kl" && xe.ctor.name != "kl" {
                let span = arg(call, "x").map_or(fig.span, |e| e.span());
                out.push(
                    Problem::new(
                        Code::SwappedAxes,
                        span,
                        format!(
                            "`{}` puts the `{}` evaluation on x and the KL on y: a tradeoff's x is the KL budget",
                            fig.label, xe.ctor.name
                        ),
                    )
                    .label("not a KL evaluation")
                    .help("swap them: `tradeoff(x: <kl evaluation>, y: <performance evaluation>)`"),
                );
            }
        }
    }

    // The series this figure can have: the evaluated declarations (and, for
    // `series: "member"`, their members).
    let mut series = BTreeSet::new();
    for axis in ["x", "y"] {
        let evals: Vec<&Instance> = match fig.args.get(axis) {
            Some(Value::Instance(e)) => vec![&x.instances[*e]],
            Some(Value::List(items)) => items
                .iter()
                .filter_map(|v| if let Value::Instance(e) = v { Some(&x.instances[*e]) } else { None })
                .collect(),
            _ => vec![],
        };
        for e in evals {
            let targets = e.args.get("policies").or_else(|| e.args.get("models"));
            let Some(Value::List(ts)) = targets else { continue };
            for t in ts {
                if let Value::Instance(i) | Value::Checkpoint(i, _) = t {
                    let inst = &x.instances[*i];
                    series.insert(inst.name.decl.clone());
                    series.insert(inst.label.clone());
                }
            }
        }
    }
    if series.is_empty() {
        return;
    }
    let has = |s: &str| series.contains(s);
    let hint = |s: &str| {
        let listed = series.iter().filter(|s| !s.contains('[')).cloned().collect::<Vec<_>>().join(", ");
        match did_you_mean(s, series.iter().map(String::as_str)) {
            Some(m) => format!("did you mean \"{m}\"? its series are {listed}"),
            None => format!("its series are {listed}"),
        }
    };
    if let Some(Expr::List(items, _)) = arg(call, "expect") {
        for item in items {
            if let Expr::String(s, span) = item {
                if !has(s) {
                    out.push(
                        Problem::new(
                            Code::UnknownSeries,
                            *span,
                            format!("`{}` expects a series \"{s}\" it does not have", fig.label),
                        )
                        .label("no such series")
                        .help(format!("{}; a verdict on \"{s}\" can never be given", hint(s))),
                    );
                }
            }
        }
    }
    if let Some(Expr::String(s, span)) = arg(call, "normalize") {
        if !s.is_empty() && !has(s) {
            out.push(
                Problem::new(
                    Code::UnknownSeries,
                    *span,
                    format!("`{}` divides by a series \"{s}\" it does not have", fig.label),
                )
                .label("no such series")
                .help(format!("{}; the bars would be drawn undivided", hint(s))),
            );
        }
    }
}

fn arg<'c>(call: &'c Call, name: &str) -> Option<&'c Expr> {
    call.args.iter().find(|a| a.name.as_ref().is_some_and(|n| n.name == name)).map(|a| &a.value)
}

fn is_empty_list(e: &Expr) -> bool {
    matches!(e, Expr::List(items, _) if items.is_empty())
}
