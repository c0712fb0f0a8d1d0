//! The names of plan nodes, typed: which declaration (and sweep member) a
//! node comes from, which target an evaluation looks at and at what step.
//! Rendered in one place ([`std::fmt::Display`]); `--only`, the results
//! table and the figures read the fields, never a parsed label.

use serde::{Deserialize, Serialize};

use crate::check::program::InstanceName;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NodeName {
    /// A world, dataset, model, run or figure: `online[lr=0.001]`.
    Decl(InstanceName),
    /// A run's checkpoint: `online@300`.
    Checkpoint { run: InstanceName, step: i64 },
    /// An evaluation of one target, a model or a run at a step:
    /// `wr(online@300)`, `acc(golden_pm)`.
    Eval { eval: InstanceName, target: InstanceName, step: Option<i64> },
    /// The baseline samples an evaluation compares against:
    /// `wr.samples(golden@300)`.
    Samples { eval: InstanceName, policy: String },
    /// The reference log-probs a run trains against:
    /// `offline[lr=0.001].reference_logprobs`.
    ReferenceLogprobs { run: InstanceName },
}

impl NodeName {
    /// The declared instance this name starts with (the evaluation's, for
    /// an evaluation).
    pub fn head(&self) -> &InstanceName {
        match self {
            NodeName::Decl(i)
            | NodeName::Checkpoint { run: i, .. }
            | NodeName::Eval { eval: i, .. }
            | NodeName::Samples { eval: i, .. }
            | NodeName::ReferenceLogprobs { run: i } => i,
        }
    }

    /// Whether `--only wanted` selects this node: `wanted` is its
    /// declaration, its sweep member or its whole name.
    pub fn selected_by(&self, wanted: &str) -> bool {
        let head = self.head();
        head.decl == wanted || head.to_string() == wanted || self.to_string() == wanted
    }

    /// The same name at another step of the run (checkpoints written by a
    /// run's training carry the run's names at that step).
    pub fn at_step(&self, step: i64) -> Option<NodeName> {
        match self {
            NodeName::Decl(run) => Some(NodeName::Checkpoint { run: run.clone(), step }),
            _ => None,
        }
    }
}

impl std::fmt::Display for NodeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeName::Decl(i) => write!(f, "{i}"),
            NodeName::Checkpoint { run, step } => write!(f, "{run}@{step}"),
            NodeName::Eval { eval, target, step: Some(s) } => write!(f, "{eval}({target}@{s})"),
            NodeName::Eval { eval, target, step: None } => write!(f, "{eval}({target})"),
            NodeName::Samples { eval, policy } => write!(f, "{eval}.samples({policy})"),
            NodeName::ReferenceLogprobs { run } => write!(f, "{run}.reference_logprobs"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(decl: &str, axes: &[(&str, &str)]) -> InstanceName {
        InstanceName { decl: decl.into(), member: axes.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    #[test]
    fn names_render_as_the_plan_prints_them() {
        let run = member("online", &[("lr", "0.001")]);
        assert_eq!(NodeName::Decl(run.clone()).to_string(), "online[lr=0.001]");
        assert_eq!(NodeName::Checkpoint { run: run.clone(), step: 300 }.to_string(), "online[lr=0.001]@300");
        let wr = NodeName::Eval { eval: member("wr", &[]), target: run, step: Some(300) };
        assert_eq!(wr.to_string(), "wr(online[lr=0.001]@300)");
        let acc = NodeName::Eval { eval: member("acc", &[]), target: member("golden_pm", &[]), step: None };
        assert_eq!(acc.to_string(), "acc(golden_pm)");
    }

    #[test]
    fn only_selects_by_declaration_member_or_whole_name() {
        let run = member("online", &[("lr", "0.001")]);
        let ck = NodeName::Checkpoint { run: run.clone(), step: 300 };
        assert!(ck.selected_by("online"));
        assert!(ck.selected_by("online[lr=0.001]"));
        assert!(ck.selected_by("online[lr=0.001]@300"));
        assert!(!ck.selected_by("online_large"));
        assert!(!ck.selected_by("onl"));
        let wr = NodeName::Eval { eval: member("wr", &[]), target: run, step: Some(300) };
        assert!(wr.selected_by("wr"));
        // An evaluation belongs to its evaluation declaration, not its target.
        assert!(!wr.selected_by("online"));
    }
}
