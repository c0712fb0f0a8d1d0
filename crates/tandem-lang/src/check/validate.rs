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
/// `decl_span`, is unusable. Every rule runs, so each problem is reported.
pub fn validate_instance(mut x: Known, id: InstanceId, decl_span: Span) -> bool {
    let instances = x.instances;
    let inst = &instances[id];
    let rules: [fn(&mut Known, &Instance, Span) -> bool; 5] = [
        training_split_not_empty,
        width_divides_heads,
        evaluated_steps_saved,
        replay_within_stream,
        classifier_reads_a_stream,
    ];
    rules.iter().fold(true, |ok, rule| rule(&mut x, inst, decl_span) & ok)
}

/// D_initial's held-out share must leave at least one pair to train on
/// (the split rounds as `generate` rounds it).
fn training_split_not_empty(x: &mut Known, inst: &Instance, decl_span: Span) -> bool {
    if inst.ctor.name != "generate" {
        return true;
    }
    let (Some(pairs), Some(Value::Float(share))) = (inst.int("pairs"), inst.args.get("val_fraction")) else {
        return true;
    };
    let held_out = (pairs as f64 * share).round() as i64;
    if pairs - held_out >= 1 {
        return true;
    }
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
    false
}

/// A transformer's width splits evenly into its heads.
fn width_divides_heads(x: &mut Known, inst: &Instance, decl_span: Span) -> bool {
    let (Some(w), Some(h)) = (inst.int("width"), inst.int("heads")) else { return true };
    if w % h == 0 {
        return true;
    }
    x.problems.push(
        Problem::new(
            Code::OutOfRange,
            decl_span,
            format!("`{}`: width {w} is not a multiple of heads {h}", inst.label),
        )
        .label("width must divide into heads")
        .help(format!("choose a width that is a multiple of {h}, e.g. {}", (w / h).max(1) * h)),
    );
    false
}

/// Evaluations at explicit steps: every evaluated run must save each of them.
fn evaluated_steps_saved(x: &mut Known, inst: &Instance, decl_span: Span) -> bool {
    let Some(Value::List(at)) = inst.args.get("at") else { return true };
    let Some(Value::List(ts)) = inst.args.get("policies").or_else(|| inst.args.get("models")) else { return true };
    let mut ok = true;
    for t in ts {
        let Value::Instance(run) = t else { continue };
        let r = &x.instances[*run];
        if x.decls[r.decl].kind != crate::syntax::ast::DeclKind::Run {
            continue;
        }
        let schedule = SaveSchedule::of(r);
        for s in at {
            let Value::Int(s) = s else { continue };
            if schedule.saves(*s) {
                continue;
            }
            let target = display_value(&|i| x.instances[i].label.clone(), t);
            x.problems.push(
                Problem::new(
                    Code::BadCheckpoint,
                    decl_span,
                    format!("`{}` evaluates `{target}` at step {s}, which it does not save", inst.label),
                )
                .label("evaluation needs a saved checkpoint")
                .related(x.decls[r.decl].name_span, "the run")
                .help(format!("`{}` saves at {}", r.label, schedule.describe())),
            );
            ok = false;
        }
    }
    ok
}

/// A replay cannot consume more pairs than its source stream holds.
fn replay_within_stream(x: &mut Known, inst: &Instance, decl_span: Span) -> bool {
    let Some(Value::Call { ctor, args }) = inst.args.get("sampler") else { return true };
    let (true, Some(Value::Instance(src))) = (ctor.name == "replay", args.get("source")) else { return true };
    let s = &x.instances[*src];
    let have = s.int("steps").unwrap_or(0) * s.int("batch").unwrap_or(0);
    let need = inst.int("steps").unwrap_or(0) * inst.int("batch").unwrap_or(0);
    if need <= have {
        return true;
    }
    x.problems.push(
        Problem::new(
            Code::OutOfRange,
            decl_span,
            format!("`{}` needs {need} pairs (steps × batch) but `{}` logs only {have}", inst.label, s.label),
        )
        .label("replays more than the stream holds")
        .related(x.decls[s.decl].name_span, "the online run")
        .help("give the replay at most as many steps × batch as the online run"),
    );
    false
}

/// A classifier on a policy's data means the run's online data stream.
fn classifier_reads_a_stream(x: &mut Known, inst: &Instance, decl_span: Span) -> bool {
    if inst.ctor.name != "classifier" {
        return true;
    }
    let Some(Value::Instance(src)) = inst.args.get("data") else { return true };
    let s = &x.instances[*src];
    let is_dataset = x.decls[s.decl].kind == crate::syntax::ast::DeclKind::Dataset;
    let online = matches!(s.args.get("sampler"), Some(Value::Call { ctor, .. }) if ctor.name == "online");
    if !is_dataset && !online {
        x.problems.push(
            Problem::new(
                Code::WrongKind,
                decl_span,
                format!("`{}`: `data` must be a dataset or an online run, and `{}` is neither", inst.label, s.label),
            )
            .label("no data stream to classify")
            .help("give a dataset, or a run with `sampler: online(...)` for its D_online"),
        );
        return false;
    }
    if online && s.int("steps") == Some(0) {
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
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use crate::check::errors_of;
    use crate::diagnostic::Code;

    const BASE: &str = "world w = summarize(seed: 1, vocab: 24, prompt_len: 6, response_len: 8)\ndataset d = generate(w, pairs: 200)\nmodel sft = sft(d, layers: 1, width: 16, heads: 2, steps: 20)\nmodel pm = pm(d, layers: 1, width: 16, heads: 2, steps: 20)\n";

    fn errors(decls: &str) -> Vec<(Code, String)> {
        errors_of(&format!("{BASE}{decls}"))
    }

    /// Each rule's problem has its own code and points at the declaration.
    #[test]
    fn each_cross_argument_rule_reports_its_code_at_the_declaration() {
        let d = "dataset e = generate(w, pairs: 2, val_fraction: 0.9)";
        assert_eq!(errors(d), vec![(Code::OutOfRange, d.into())]);
        let m = "model m = sft(d, layers: 1, width: 15, heads: 2)";
        assert_eq!(errors(m), vec![(Code::OutOfRange, m.into())]);
        let (r, k) = (
            "run r = train(sft, loss: ipo(), sampler: offline(d), steps: 10, save_every: 5)",
            "eval k = kl(policies: [r], at: [7])",
        );
        assert_eq!(errors(&format!("{r}\n{k}")), vec![(Code::BadCheckpoint, k.into())]);
        let (o, p) = (
            "run o = train(sft, loss: ipo(), sampler: online(judge: pm), steps: 2, batch: 4)",
            "run p = train(sft, loss: ipo(), sampler: replay(source: o), steps: 3, batch: 4)",
        );
        assert_eq!(errors(&format!("{o}\n{p}")), vec![(Code::OutOfRange, p.into())]);
    }

    #[test]
    fn a_classifier_reads_a_dataset_or_an_online_stream() {
        let (r, c) = (
            "run r = train(sft, loss: ipo(), sampler: offline(d), steps: 10)",
            "eval c = classifier(models: [pm], data: r)",
        );
        assert_eq!(errors(&format!("{r}\n{c}")), vec![(Code::WrongKind, c.into())]);
        let (o, c) = (
            "run o = train(sft, loss: ipo(), sampler: online(judge: pm), steps: 0)",
            "eval c = classifier(models: [pm], data: o)",
        );
        assert_eq!(errors(&format!("{o}\n{c}")), vec![(Code::OutOfRange, c.into())]);
    }

    /// Every rule runs: two mistakes in one declaration are two problems.
    #[test]
    fn every_rule_runs_on_an_instance() {
        assert_eq!(errors("dataset e = generate(w, pairs: 1, val_fraction: 0.9)").len(), 1);
        let two = "model m = sft(d, layers: 1, width: 15, heads: 2)\nmodel n = sft(d, layers: 1, width: 9, heads: 2)";
        assert_eq!(errors(two).len(), 2);
    }
}
