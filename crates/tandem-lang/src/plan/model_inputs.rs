//! What an SFT's or a preference model's inputs may be: the refusals lowering
//! reports when a `base:` and the data do not go together (they read other
//! token ids, the base cannot generate, the head does not fit the trunk).
//! Each function looks at vocabularies and flags already worked out by
//! lowering and returns the problem to report, if any; none of them adds a
//! node.

use crate::check::program::Instance;
use crate::diagnostic::{Code, Problem};
use crate::plan::op::PmHead;
use crate::plan::vocabulary::Vocabulary;

/// Two inputs of `inst`, each (what it is, the token ids it reads), that read
/// different token ids.
pub fn mixed_vocabularies(inst: &Instance, a: (&str, &Vocabulary), b: (&str, &Vocabulary)) -> Problem {
    Problem::new(
        Code::Vocabulary,
        inst.span,
        format!(
            "`{}` mixes vocabularies: {} reads {}, {} reads {}",
            inst.label,
            a.0,
            a.1.describe(),
            b.0,
            b.1.describe()
        ),
    )
    .label("these inputs read different token ids")
    .help(
        "a policy, its reference, its judge and its data must read the same token ids: \
         text for a pretrained model is `jsonl(..., tokenizer_of: that model)`, and policies trained from it \
         are `sft(..., base: that model)` and the runs that start from them",
    )
}

/// An SFT's `base:` (its vocabulary, and whether it lacks a language-model
/// head) against its data's vocabulary.
pub fn sft(inst: &Instance, base: Option<(&Vocabulary, bool)>, data: &Vocabulary) -> Option<Problem> {
    match base {
        Some((_, true)) => Some(
            Problem::new(
                Code::Pretrained,
                inst.span,
                format!("`{}` starts from a reward model, which has no language-model head", inst.label),
            )
            .label("its `base:`")
            .help("a `*ForSequenceClassification` model scores, it does not generate: give `sft` a causal language model as `base:`, and use the reward model as a judge, `pm(data, base: m, head: \"last\", steps: 0)`"),
        ),
        Some((b, false)) if b != data => Some(mixed_vocabularies(inst, ("the base model", b), ("its data", data))),
        None if *data != Vocabulary::Own => Some(
            Problem::new(
                Code::Vocabulary,
                inst.span,
                format!("`{}` trains a new policy on text read by a pretrained tokenizer", inst.label),
            )
            .label("no `base:`")
            .help("text tokenized with `tokenizer_of: m` trains the model m: add `base: m`"),
        ),
        _ => None,
    }
}

/// A preference model's `base:` vocabulary and head against its data's
/// vocabulary.
pub fn pm(inst: &Instance, base: Option<&Vocabulary>, head: PmHead, data: &Vocabulary) -> Option<Problem> {
    let problem = |label: &'static str, message: String, help: &str| {
        Some(Problem::new(Code::Vocabulary, inst.span, message).label(label).help(help.to_string()))
    };
    match base {
        Some(Vocabulary::Own) => problem(
            "its `base`",
            format!("`{}` starts a preference model from a model of tandem's own", inst.label),
            "`base:` takes a pretrained model, or a policy trained from one; \
             leave it out to train a preference model of tandem's own",
        ),
        Some(b) if b != data => Some(mixed_vocabularies(inst, ("the base model", b), ("its data", data))),
        Some(_) if head == PmHead::Joint => problem(
            "`head: \"joint\"` with `base:`",
            format!("`{}` asks for a joint head on a pretrained trunk", inst.label),
            "a preference model from a pretrained trunk has the pooled head: leave `head` out",
        ),
        None if head == PmHead::Last => problem(
            "`head: \"last\"` without `base:`",
            format!("`{}` asks for a last-token head without a pretrained trunk", inst.label),
            "the last-token head is transformers' reward-model head: give `base:` a pretrained \
             model (a reward model keeps its own head), or leave `head` out",
        ),
        None if *data != Vocabulary::Own => problem(
            "no `base:`",
            format!("`{}` would train a new preference model on {}", inst.label, data.describe()),
            "text read by a pretrained tokenizer trains a preference model from that model: \
             add `base:` with it, or with a policy trained from it",
        ),
        _ => None,
    }
}
