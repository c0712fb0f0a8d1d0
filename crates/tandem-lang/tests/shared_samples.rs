//! Evaluations that sample a policy read one `samples` node per
//! (policy, prompt pool, seed), as large as the largest of them.

mod common;

use tandem_lang::plan::op::{Draw, Op, SamplesSpec};
use tandem_lang::plan::{Key, Plan};

const STUDY: &str = r#"
world w = summarize(seed: 1, vocab: 24, prompt_len: 6, response_len: 8)
dataset d = generate(w, pairs: 200)
model sft = sft(d, layers: 1, width: 16, heads: 2, steps: 20)
model judge = pm(d, layers: 1, width: 16, heads: 2, steps: 20)
run a = train(sft, loss: ipo(), sampler: offline(d), steps: 20, save_every: 10)
run b = train(sft, loss: ipo(), sampler: offline(d), steps: 20, save_every: 10, lr: 3e-4)
eval k = kl(policies: [a, b], prompts: 128, at: [10, 20])
eval o = oracle(policies: [a], world: w, prompts: 300, at: [10])
eval wr = winrate(policies: [a], baseline: sft, judge: judge, prompts: 256, at: [10, 20])
eval k9 = kl(policies: [a], prompts: 64, seed: 9, at: [10])
eval acc = classifier(models: [a], data: d, at: [10])
"#;

/// The samples node an evaluation node reads, with its spec.
fn samples_of(plan: &Plan, eval: &str) -> (Key, SamplesSpec) {
    let key = plan.names()[eval];
    let Op::Eval(e) = &plan.node(&key).unwrap().op else { panic!("{eval} is not an evaluation") };
    let s = e.samples.unwrap_or_else(|| panic!("{eval} reads no samples"));
    let Op::Samples(spec) = &plan.node(&s).unwrap().op else { panic!("{eval}'s samples are not a samples node") };
    (s, spec.clone())
}

#[test]
fn evaluations_of_one_checkpoint_share_samples_sized_to_the_largest() {
    let plan = common::plan_text(STUDY);
    // a@10 is read by a KL (128), an oracle (300) and a win rate (256): one
    // node of 300 prompts, the policy's own draw.
    let (shared, spec) = samples_of(&plan, "k(a@10)");
    assert_eq!((spec.draw, spec.prompts, spec.seed), (Draw::Policy, 300, 0));
    assert_eq!(samples_of(&plan, "o(a@10)").0, shared);
    assert_eq!(samples_of(&plan, "wr(a@10)").0, shared);
    // At step 20 the oracle does not look: the win rate's 256 is the most.
    assert_eq!(samples_of(&plan, "k(a@20)").1.prompts, 256);
    assert_eq!(samples_of(&plan, "k(a@20)").0, samples_of(&plan, "wr(a@20)").0);
    // b is evaluated by the KL alone.
    assert_eq!(samples_of(&plan, "k(b@10)").1.prompts, 128);
    // Another seed draws other prompts: a node of its own.
    let (other, spec9) = samples_of(&plan, "k9(a@10)");
    assert_ne!(other, shared);
    assert_eq!((spec9.prompts, spec9.seed), (64, 9));
    // The win rate's baseline keeps its own draw, apart from the policy's.
    let Op::Eval(e) = &plan.node(&plan.names()["wr(a@10)"]).unwrap().op else { unreachable!() };
    let tandem_lang::plan::op::Metric::Winrate { baseline_samples, .. } = &e.metric else { unreachable!() };
    let Op::Samples(base) = &plan.node(baseline_samples).unwrap().op else { unreachable!() };
    assert_eq!(base.draw, Draw::Baseline);
    // A classifier samples nothing.
    let Op::Eval(acc) = &plan.node(&plan.names()["acc(a@10)"]).unwrap().op else { unreachable!() };
    assert_eq!(acc.samples, None);
}

#[test]
fn a_larger_evaluation_resizes_the_samples_and_nothing_upstream() {
    let plan = common::plan_text(STUDY);
    let more = common::plan_text(&STUDY.replace("prompts: 300", "prompts: 512"));
    let (before, after) = (samples_of(&plan, "k(a@10)"), samples_of(&more, "k(a@10)"));
    assert_eq!(after.1.prompts, 512);
    assert_ne!(before.0, after.0);
    // Its readers move with it; the policy it samples does not.
    assert_ne!(plan.names()["k(a@10)"], more.names()["k(a@10)"]);
    assert_eq!(before.1.policy, after.1.policy);
    // Where the oracle does not look, nothing moves.
    assert_eq!(samples_of(&plan, "k(a@20)").0, samples_of(&more, "k(a@20)").0);
    assert_eq!(plan.names()["k(b@10)"], more.names()["k(b@10)"]);
}
