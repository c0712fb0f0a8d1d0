//! Checks that involve more than one argument of an instance, run once the
//! instance's arguments are typed.

use crate::check::program::{display_value, DeclInfo, Instance, InstanceId, SaveSchedule, Value};
use crate::diagnostic::{Code, Problem};
use crate::source::Span;

/// The instances made so far and their declarations: what a check across
/// arguments may look at.
pub struct Known<'a> {
    pub instances: &'a [Instance],
    pub decls: &'a [DeclInfo],
    pub problems: &'a mut Vec<Problem>,
}

/// Returns false (after reporting) when instance `id`, declared at
/// `decl_span`, is unusable.
pub fn validate_instance(x: Known, id: InstanceId, decl_span: Span) -> bool {
    let inst = &x.instances[id];
    let mut ok = true;
    let name_of = |x: &Known, v: &Value| display_value(&|i| x.instances[i].label.clone(), v);

    // D_initial's held-out share must leave at least one pair to train on
    // (the split rounds as `generate` rounds it).
    if inst.ctor.name == "generate" {
        if let (Some(pairs), Some(Value::Float(share))) = (inst.int("pairs"), inst.args.get("val_fraction")) {
            let held_out = (pairs as f64 * share).round() as i64;
            if pairs - held_out < 1 {
                x.problems.push(
                    Problem::new(
                        Code::OutOfRange,
                        decl_span,
                        format!(
                            "`{}` holds out {held_out} of its {pairs} pairs for validation, leaving none to train on",
                            inst.label
                        ),
                    )
                    .label("an empty training split")
                    .help("generate more pairs, or hold out a smaller share"),
                );
                ok = false;
            }
        }
    }

    if let (Some(w), Some(h)) = (inst.int("width"), inst.int("heads")) {
        if w % h != 0 {
            x.problems.push(
                Problem::new(
                    Code::OutOfRange,
                    decl_span,
                    format!("`{}`: width {w} is not a multiple of heads {h}", inst.label),
                )
                .label("width must divide into heads")
                .help(format!("choose a width that is a multiple of {h}, e.g. {}", (w / h).max(1) * h)),
            );
            ok = false;
        }
    }

    // Evaluations at explicit steps: every evaluated run must save each of them.
    if let Some(Value::List(at)) = inst.args.get("at") {
        let targets = inst.args.get("policies").or_else(|| inst.args.get("models")).cloned();
        if let Some(Value::List(ts)) = targets {
            for t in ts {
                let Value::Instance(run) = t else { continue };
                let r = &x.instances[run];
                if x.decls[r.decl].kind != crate::syntax::ast::DeclKind::Run {
                    continue;
                }
                let schedule = SaveSchedule::of(r);
                for s in at {
                    if let Value::Int(s) = s {
                        if !schedule.saves(*s) {
                            x.problems.push(
                                Problem::new(
                                    Code::BadCheckpoint,
                                    decl_span,
                                    format!(
                                        "`{}` evaluates `{}` at step {s}, which it does not save",
                                        inst.label,
                                        name_of(&x, &t)
                                    ),
                                )
                                .label("evaluation needs a saved checkpoint")
                                .related(x.decls[r.decl].name_span, "the run")
                                .help(format!(
                                    "`{}` saves at {}",
                                    r.label,
                                    schedule.describe()
                                )),
                            );
                            ok = false;
                        }
                    }
                }
            }
        }
    }

    // A replay cannot consume more pairs than its source stream holds.
    if let Some(Value::Call { ctor, args }) = inst.args.get("sampler") {
        if ctor.name == "replay" {
            if let Some(Value::Instance(src)) = args.get("source") {
                let s = &x.instances[*src];
                let have = s.int("steps").unwrap_or(0) * s.int("batch").unwrap_or(0);
                let need = inst.int("steps").unwrap_or(0) * inst.int("batch").unwrap_or(0);
                if need > have {
                    x.problems.push(
                        Problem::new(
                            Code::OutOfRange,
                            decl_span,
                            format!(
                                "`{}` needs {need} pairs (steps × batch) but `{}` logs only {have}",
                                inst.label, s.label
                            ),
                        )
                        .label("replays more than the stream holds")
                        .related(x.decls[s.decl].name_span, "the online run")
                        .help("give the replay at most as many steps × batch as the online run"),
                    );
                    ok = false;
                }
            }
        }
    }

    // A classifier on a policy's data means the run's online data stream.
    if inst.ctor.name == "classifier" {
        if let Some(Value::Instance(src)) = inst.args.get("data") {
            let s = &x.instances[*src];
            let is_dataset = x.decls[s.decl].kind == crate::syntax::ast::DeclKind::Dataset;
            let online = matches!(s.args.get("sampler"), Some(Value::Call { ctor, .. }) if ctor.name == "online");
            if !is_dataset && !online {
                x.problems.push(
                    Problem::new(
                        Code::WrongKind,
                        decl_span,
                        format!(
                            "`{}`: `data` must be a dataset or an online run, and `{}` is neither",
                            inst.label, s.label
                        ),
                    )
                    .label("no data stream to classify")
                    .help("give a dataset, or a run with `sampler: online(...)` for its D_online"),
                );
                ok = false;
            } else if online && s.int("steps") == Some(0) {
                // A run of 0 steps logged no stream: there is nothing to classify.
                x.problems.push(
                    Problem::new(
                        Code::OutOfRange,
                        decl_span,
                        format!("`{}` classifies the data stream of `{}`, which trains 0 steps", inst.label, s.label),
                    )
                    .label("an empty data stream")
                    .related(x.decls[s.decl].name_span, "the online run")
                    .help("give the online run steps, or classify a dataset"),
                );
                ok = false;
            }
        }
    }
    ok
}
