//! Which token ids a dataset or model reads, followed through the plan: a
//! pretrained model's tokenizer, or tandem's own tokens (a world's, or a
//! JSONL file's characters or bytes).
//!
//! Lowering uses it to refuse, before anything runs, a policy whose
//! reference, judge or data read other token ids than it does. Among
//! tandem's own vocabularies (two worlds of different sizes, say) the
//! executor's shape checks still say which differ.

use crate::plan::op::Op;
use crate::plan::{Key, Plan};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vocabulary {
    /// tandem's own tokens: a world's, or characters or bytes.
    Own,
    /// A pretrained model's tokenizer, by the blake3 of its tokenizer.json.
    Tokenizer(String),
}

impl Vocabulary {
    pub fn describe(&self) -> String {
        match self {
            Vocabulary::Own => "tandem's own tokens".into(),
            Vocabulary::Tokenizer(d) => format!("a pretrained tokenizer (tokenizer.json {})", &d[..d.len().min(12)]),
        }
    }
}

/// The vocabulary of the node `key` (tandem's own for a node not in `plan`).
pub fn of(plan: &Plan, key: &Key) -> Vocabulary {
    let Some(node) = plan.node(key) else { return Vocabulary::Own };
    match &node.op {
        Op::Pretrained(p) => Vocabulary::Tokenizer(p.tokenizer.clone()),
        Op::Jsonl(j) => j.model.map_or(Vocabulary::Own, |m| of(plan, &m)),
        Op::Relabel(r) => of(plan, &r.data),
        Op::Pairs(p) => of(plan, &p.prompts),
        Op::Sft(m) => of(plan, &m.base.unwrap_or(m.data)),
        Op::Pm(m, _) => of(plan, &m.base.unwrap_or(m.data)),
        Op::Train(t) => of(plan, &t.policy),
        Op::Checkpoint { run, .. } => of(plan, run),
        Op::World(_) | Op::Generate(_) | Op::Samples(_) | Op::ReferenceLogprobs(_) | Op::Eval(_) | Op::Figure(_) => {
            Vocabulary::Own
        }
    }
}
