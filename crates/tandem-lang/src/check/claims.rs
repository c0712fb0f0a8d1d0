//! Claims a figure cannot test: errors, because a report would otherwise
//! state a verdict about a quantity that has no meaning.
//!
//! - `best(y: <kl evaluation>)`: the "best" of a KL is its largest
//!   divergence, not a performance; ranking methods by it says nothing.
//! - `gaps_narrower_than:` naming a figure that is not a `best` figure: the
//!   claim compares gaps between peaks, which a trade-off or a curve does
//!   not have.
//! - `gaps_narrower_than:` on, or naming, a figure without an `expect:` of
//!   at least two series: there is no gap to compare.

use crate::check::expand::Expander;
use crate::check::program::{Instance, Value};
use crate::diagnostic::{Code, Problem};
use crate::syntax::ast::{Call, DeclKind, Expr};

/// The errors about claims of every figure that checked cleanly.
pub fn meaningless_claims(x: &Expander) -> Vec<Problem> {
    let mut out = vec![];
    for (d, info) in x.decls.iter().enumerate() {
        if x.failed.contains(&d) || info.kind != DeclKind::Figure {
            continue;
        }
        let Some(call) = &x.merged[d] else { continue };
        for &i in &info.instances {
            figure(x, &x.instances[i], call, &mut out);
        }
    }
    out
}

fn instance<'x>(x: &'x Expander, fig: &Instance, name: &str) -> Option<&'x Instance> {
    match fig.args.get(name) {
        Some(Value::Instance(e)) => Some(&x.instances[*e]),
        _ => None,
    }
}

/// The series an `expect:` ranks (its argument as written).
fn ranked(fig: &Instance) -> usize {
    match fig.args.get("expect") {
        Some(Value::List(items)) => items.len(),
        _ => 0,
    }
}

fn figure(x: &Expander, fig: &Instance, call: &Call, out: &mut Vec<Problem>) {
    let span_of = |name: &str| arg(call, name).map_or(fig.span, |e| e.span());
    if fig.ctor.name == "best" {
        if let Some(y) = instance(x, fig, "y").filter(|e| e.ctor.name == "kl") {
            out.push(
                Problem::new(
                    Code::MeaninglessClaim,
                    span_of("y"),
                    format!("`{}` ranks methods by their largest KL (`{}` is a KL evaluation)", fig.label, y.label),
                )
                .label("a KL evaluation")
                .help("`best` takes a performance evaluation (a win rate, an oracle reward); the KL belongs on a tradeoff's x"),
            );
        }
    }
    let Some(other) = instance(x, fig, "gaps_narrower_than") else { return };
    if other.ctor.name != "best" {
        out.push(
            Problem::new(
                Code::MeaninglessClaim,
                span_of("gaps_narrower_than"),
                format!(
                    "`{}` compares its gaps with those of `{}`, a `{}` figure, which has no peaks to take gaps between",
                    fig.label, other.label, other.ctor.name
                ),
            )
            .label(format!("a `{}` figure", other.ctor.name))
            .help(
                "name a `best` figure: the claim is that this figure's gaps between peaks are narrower than that one's",
            ),
        );
        return;
    }
    for (f, whose) in [(fig, "this figure"), (other, "the figure it names")] {
        if ranked(f) < 2 {
            out.push(
                Problem::new(
                    Code::MeaninglessClaim,
                    span_of("gaps_narrower_than"),
                    format!(
                        "`{}` has no gaps to compare: {whose}, `{}`, ranks fewer than two series",
                        fig.label, f.label
                    ),
                )
                .label("no gap")
                .help(format!("give `{}` an `expect: [\"upper\", \"lower\"]` ranking", f.label)),
            );
        }
    }
}

fn arg<'c>(call: &'c Call, name: &str) -> Option<&'c Expr> {
    call.args.iter().find(|a| a.name.as_ref().is_some_and(|n| n.name == name)).map(|a| &a.value)
}
