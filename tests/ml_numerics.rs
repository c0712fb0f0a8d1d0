//! Numerical checks of the models against hand computation and brute force.

use tch::{Device, Kind, Tensor};

use tandem::ml::adam::Adam;
use tandem::ml::eval;
use tandem::ml::policy::{Policy, PolicySpec};
use tandem::ml::preference::{decide, PmHead, PmSpec, PreferenceModel};
use tandem::ml::rng::stream;
use tandem::ml::tokens::{left_pad, BOS, EOS, PAD};

fn spec(vocab: i64, response_len: i64) -> PolicySpec {
    PolicySpec { vocab, layers: 2, width: 32, heads: 4, prompt_len: 5, response_len }
}

fn prompts() -> Tensor {
    left_pad(&[vec![BOS, 5, 6, 7], vec![BOS, 8], vec![BOS, 9, 9, 4, 5], vec![BOS]], 5)
}

/// A one-layer pooled PM over [`prompts`] and responses of up to 4 tokens.
fn small_pooled_pm() -> PreferenceModel {
    PreferenceModel::new(
        PmSpec { vocab: 16, layers: 1, width: 16, heads: 2, prompt_len: 5, response_len: 4 },
        PmHead::Pooled,
        Device::Cpu,
        5,
    )
}

/// Three batches of responses to [`prompts`], EOS-terminated, padded to 4.
fn three_responses() -> [Tensor; 3] {
    let pad = |rows: &[Vec<i64>]| tandem::ml::tokens::right_pad(rows, 4);
    [
        pad(&[vec![4, 5, EOS], vec![6, EOS], vec![7, 7, 7, EOS], vec![EOS]]),
        pad(&[vec![5, EOS], vec![6, 8, EOS], vec![EOS], vec![9, EOS]]),
        pad(&[vec![9, 9, EOS], vec![EOS], vec![10, 4, EOS], vec![11, 12, 13, EOS]]),
    ]
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn kv_cache_log_probs_equal_full_forward_log_probs() {
    tch::set_num_threads(1);
    let policy = Policy::new(spec(16, 8), Device::Cpu, 3);
    let p = prompts();
    let (y, cached) = policy.sample_with_logprobs(&p, 1.0, &mut stream(1, "t", 0));
    let (full, _) = tch::no_grad(|| policy.token_logprobs(&p, &y));
    assert!(max_abs(&cached, &full) < 1e-5, "cached vs full: {}", max_abs(&cached, &full));
    // Responses are well formed: content tokens, one EOS, then PAD.
    for row in tandem::ml::tokens::unpad(&y) {
        assert_eq!(*row.last().unwrap(), EOS);
        assert_eq!(row.iter().filter(|&&t| t == EOS).count(), 1);
        assert!(row.iter().all(|&t| t >= 4 || t == EOS));
    }
}

#[test]
fn sampling_with_a_seed_is_reproducible_and_cache_free_sampling_agrees() {
    tch::set_num_threads(1);
    let policy = Policy::new(spec(16, 8), Device::Cpu, 3);
    let p = prompts();
    let a = policy.sample(&p, 1.0, &mut stream(7, "s", 0));
    let b = policy.sample(&p, 1.0, &mut stream(7, "s", 0));
    let c = policy.sample_without_cache(&p, 1.0, &mut stream(7, "s", 0));
    let d = policy.sample(&p, 1.0, &mut stream(8, "s", 0));
    assert!(a.equal(&b));
    assert!(a.equal(&c), "KV-cache sampling must draw what full forward passes draw");
    assert!(!a.equal(&d));
}

/// All responses of a tiny policy: content tokens {4, 5}, up to 3 slots, the
/// last forced to EOS. Returns them padded, with their sampler probability.
fn enumerate(policy: &Policy, prompt: &Tensor) -> Vec<(Vec<i64>, f64)> {
    let lr = policy.spec.response_len as usize;
    let mut out = vec![];
    let mut stack: Vec<Vec<i64>> = vec![vec![]];
    while let Some(prefix) = stack.pop() {
        for t in [4i64, 5, EOS] {
            let mut y = prefix.clone();
            if y.len() + 1 == lr {
                y.push(EOS);
            } else {
                y.push(t);
            }
            if *y.last().unwrap() == EOS {
                if !out.iter().any(|(o, _): &(Vec<i64>, f64)| *o == y) {
                    out.push((y, 0.0));
                }
            } else {
                stack.push(y);
            }
        }
    }
    // Probability under the sampler: model probabilities, the forced EOS has probability 1.
    for (y, prob) in &mut out {
        let mut padded = y.clone();
        padded.resize(lr, PAD);
        let r = Tensor::from_slice(&padded).view([1, lr as i64]);
        let dists = tch::no_grad(|| policy.response_log_dists(prompt, &r));
        let mut lp = 0.0;
        for (j, &tok) in y.iter().enumerate() {
            if j + 1 == lr {
                break; // forced
            }
            lp += dists.double_value(&[0, j as i64, tok]);
        }
        *prob = lp.exp();
    }
    out
}

#[test]
fn exact_kl_matches_brute_force_enumeration() {
    tch::set_num_threads(1);
    // Vocabulary of 6: four special tokens and two content tokens.
    let s = spec(6, 3);
    let policy = Policy::new(s, Device::Cpu, 11);
    let reference = Policy::new(s, Device::Cpu, 12);
    let prompt = left_pad(&[vec![BOS, 4, 5]], 5);
    let ys = enumerate(&policy, &prompt);
    let ys_ref = enumerate(&reference, &prompt);
    let total: f64 = ys.iter().map(|(_, p)| p).sum();
    assert!((total - 1.0).abs() < 1e-5, "probabilities sum to {total}");
    // Sequence-level KL by enumeration.
    let mut kl_seq = 0.0;
    let mut kl_estimator = 0.0;
    for ((y, p), (_, q)) in ys.iter().zip(&ys_ref) {
        kl_seq += p * (p / q).ln();
        let mut padded = y.clone();
        padded.resize(3, PAD);
        let r = Tensor::from_slice(&padded).view([1, 3]);
        kl_estimator += p * policy.kl_per_sequence(&reference, &prompt, &r).double_value(&[0]);
    }
    assert!(kl_seq > 1e-4, "the two policies differ");
    assert!((kl_seq - kl_estimator).abs() < 1e-5, "E[per-token KL sum] {kl_estimator} vs sequence KL {kl_seq}");
    // And the Monte Carlo estimate from real samples lands within 4 standard errors.
    let many = prompt.repeat([4000, 1]);
    let est = eval::kl(&policy, &reference, &many, 5);
    assert!((est.value - kl_seq).abs() < 4.0 * est.stderr + 1e-6, "{est:?} vs {kl_seq}");
}

#[test]
fn shared_samples_keep_their_first_chunks_whatever_the_count_drawn() {
    // The evaluations of a checkpoint read the first rows of one set of
    // samples, sized to the largest of them: the rows a smaller evaluation
    // reads must not depend on how many more were drawn behind them.
    tch::set_num_threads(1);
    let policy = Policy::new(spec(16, 6), Device::Cpu, 3);
    let many = prompts().repeat([5, 1]); // 20 prompts, chunks of 4
    let all = eval::policy_samples(&policy, &many, 7, 4);
    assert_eq!(all.size(), vec![20, 6]);
    for rows in [4, 8, 12] {
        let fewer = eval::policy_samples(&policy, &many.narrow(0, 0, rows), 7, 4);
        assert!(fewer.equal(&all.narrow(0, 0, rows)), "the first {rows} rows moved");
    }
    // Each chunk draws from its own stream: the same four prompts, five
    // times over, are not answered five times alike.
    let chunks: Vec<Tensor> = (0..5).map(|c| all.narrow(0, 4 * c, 4)).collect();
    assert!(chunks.iter().skip(1).any(|c| !c.equal(&chunks[0])), "every chunk drew the same responses");
    // A partial last chunk is drawn as a batch of its own size; one chunk
    // as large as the whole is one batch, as `kl` and `winrate` draw.
    assert_eq!(eval::policy_samples(&policy, &many.narrow(0, 0, 6), 7, 4).size(), vec![6, 6]);
    assert!(eval::policy_samples(&policy, &many, 7, 20).equal(&eval::policy_samples(&policy, &many, 7, 64)));
    assert_eq!(eval::policy_samples(&policy, &many.narrow(0, 0, 0), 7, 4).size(), vec![0, 6]);
}

#[test]
fn kl_of_a_policy_to_itself_is_zero() {
    let policy = Policy::new(spec(16, 6), Device::Cpu, 3);
    let est = eval::kl(&policy, &policy, &prompts(), 1);
    assert_eq!(est.value, 0.0);
}

#[test]
fn preference_decisions_are_debiased_and_ties_use_the_coin() {
    tch::set_num_threads(1);
    for head in [PmHead::Joint, PmHead::Pooled] {
        debiased_decisions(head);
    }
    let draws: Vec<bool> = (0..64).flat_map(|s| decide(&[0.0], &mut stream(s, "c", 0))).collect();
    assert!(draws.iter().any(|&d| d) && draws.iter().any(|&d| !d));
    assert_eq!(decide(&[0.3, -0.2], &mut stream(1, "c", 0)), vec![true, false]);
}

fn debiased_decisions(head: PmHead) {
    let pm = PreferenceModel::new(
        PmSpec { vocab: 16, layers: 1, width: 16, heads: 2, prompt_len: 5, response_len: 4 },
        head,
        Device::Cpu,
        2,
    );
    let p = prompts();
    let y1 = tandem::ml::tokens::right_pad(&[vec![4, 5, EOS], vec![6, EOS], vec![7, 7, 7, EOS], vec![EOS]], 4);
    let y2 = tandem::ml::tokens::right_pad(&[vec![5, EOS], vec![6, 8, EOS], vec![EOS], vec![9, EOS]], 4);
    // margin(x, y1, y2) = r(x,y1,y2) − r(x,y2,y1) is exactly antisymmetric.
    let m12 = pm.margin(&p, &y1, &y2);
    let m21 = pm.margin(&p, &y2, &y1);
    assert!(m12.equal(&(-&m21)));
    let a = pm.prefers_first(&p, &y1, &y2, &mut stream(0, "c", 0));
    let b = pm.prefers_first(&p, &y2, &y1, &mut stream(0, "c", 0));
    for (x, y) in a.iter().zip(&b) {
        assert_ne!(x, y, "swapping the order swaps the decision");
    }
    // Identical responses: margin exactly 0, decided by the coin, not by position.
    let same = pm.margin(&p, &y1, &y1);
    assert!(same.abs().max().double_value(&[]) == 0.0, "{head:?}");
}

#[test]
fn pooled_pm_is_a_difference_of_scores_and_its_loss_is_eq5() {
    // z(x, y1, y2) = s(y1) − s(y2): z(y1, y3) = z(y1, y2) + z(y2, y3), and
    // eq. (5) over both orders reduces to softplus(−z) for an antisymmetric z.
    let pm = small_pooled_pm();
    let p = prompts();
    let [y1, y2, y3] = three_responses();
    let z = |a: &Tensor, b: &Tensor| tch::no_grad(|| pm.logit(&p, a, b));
    assert!(max_abs(&z(&y1, &y3), &(z(&y1, &y2) + z(&y2, &y3))) < 1e-5);
    let loss = tch::no_grad(|| pm.loss(&p, &y1, &y2)).double_value(&[]);
    let by_hand: f64 = Vec::<f64>::try_from(z(&y1, &y2).to_kind(Kind::Double))
        .unwrap()
        .iter()
        .map(|z| (1.0 + (-z).exp()).ln())
        .sum::<f64>()
        / 4.0;
    assert!((loss - by_hand).abs() < 1e-6, "{loss} vs {by_hand}");
}

/// Under mixed precision the trunks compute in bf16 but the output layers in
/// float32: a policy's log-probs come out float32 (and differ from float32's,
/// so bf16 did run), and a pooled PM's logits stay an exact difference of
/// float32 scores, which scores rounded to bf16's 8 bits would not be.
#[test]
fn under_bf16_the_output_layers_stay_float32() {
    use tandem::ml::autocast;
    tch::set_num_threads(1);
    let policy = Policy::new(spec(16, 8), Device::Cpu, 3);
    let p = prompts();
    let (y, _) = policy.sample_with_logprobs(&p, 1.0, &mut stream(1, "t", 0));
    let (float32, _) = tch::no_grad(|| policy.token_logprobs(&p, &y));
    let (mixed, _) = {
        let _bf16 = autocast::bf16(Device::Cpu);
        tch::no_grad(|| policy.token_logprobs(&p, &y))
    };
    assert_eq!(mixed.kind(), Kind::Float);
    let gap = max_abs(&mixed, &float32);
    assert!(gap > 0.0 && gap < 0.1, "bf16 against float32 log-probs: {gap}");

    let pm = small_pooled_pm();
    let [y1, y2, y3] = three_responses();
    let _bf16 = autocast::bf16(Device::Cpu);
    let z = |a: &Tensor, b: &Tensor| tch::no_grad(|| pm.logit(&p, a, b));
    assert_eq!(z(&y1, &y2).kind(), Kind::Float);
    assert!(max_abs(&z(&y1, &y3), &(z(&y1, &y2) + z(&y2, &y3))) < 1e-6);
}

#[test]
fn classifier_formula_matches_its_definition() {
    let s = spec(16, 6);
    let policy = Policy::new(s, Device::Cpu, 1);
    let reference = Policy::new(s, Device::Cpu, 2);
    let p = prompts();
    let y1 = policy.sample(&p, 1.0, &mut stream(1, "a", 0));
    let y2 = policy.sample(&p, 1.0, &mut stream(1, "b", 0));
    let f = eval::classifier_scores(&policy, &reference, &p, &y1, &y2);
    let lp = |m: &Policy, y: &Tensor| tch::no_grad(|| m.seq_logprob(&p, y, false));
    let by_hand = (lp(&policy, &y1) - lp(&policy, &y2)) - (lp(&reference, &y1) - lp(&reference, &y2));
    assert!(max_abs(&f, &by_hand) < 1e-6);
    // A policy equal to its reference scores every pair 0: accuracy exactly ½.
    let data =
        tandem::ml::data::Pairs { prompts: p.shallow_clone(), chosen: y1, rejected: y2, columns: Default::default() };
    assert_eq!(eval::policy_accuracy(&reference, &reference, &data).value, 0.5);
}

#[test]
fn sequence_log_prob_is_the_sum_of_token_log_probs_and_mean_divides_by_length() {
    let policy = Policy::new(spec(16, 6), Device::Cpu, 1);
    let p = prompts();
    let y = tandem::ml::tokens::right_pad(&[vec![4, 5, EOS], vec![EOS], vec![6, 6, 6, 6, 6, EOS], vec![7, EOS]], 6);
    let (tok, mask) = tch::no_grad(|| policy.token_logprobs(&p, &y));
    let sum = tch::no_grad(|| policy.seq_logprob(&p, &y, false));
    let mean = tch::no_grad(|| policy.seq_logprob(&p, &y, true));
    let lens = [3.0, 1.0, 6.0, 2.0];
    for i in 0..4 {
        let row: f64 = (0..6).map(|j| tok.double_value(&[i, j])).sum();
        assert!((row - sum.double_value(&[i])).abs() < 1e-6);
        assert!((sum.double_value(&[i]) / lens[i as usize] - mean.double_value(&[i])).abs() < 1e-6);
        // Padding positions contribute nothing.
        for j in 0..6 {
            if mask.int64_value(&[i, j]) == 0 {
                assert_eq!(tok.double_value(&[i, j]), 0.0);
            }
        }
    }
}

#[test]
fn adam_state_round_trips_and_resumes_bit_for_bit() {
    tch::set_num_threads(1);
    let s = spec(16, 6);
    let data = {
        let p = prompts();
        let y = tandem::ml::tokens::right_pad(&[vec![4, 5, EOS], vec![EOS], vec![6, 6, EOS], vec![7, EOS]], 6);
        tandem::ml::data::Pairs {
            prompts: p,
            chosen: y.shallow_clone(),
            rejected: y.flip([0]),
            columns: Default::default(),
        }
    };
    let run = |steps: u64, resume_at: Option<u64>| -> Tensor {
        let mut policy = Policy::new(s, Device::Cpu, 4);
        let mut adam = Adam::new(policy.vs(), 1e-2, 3, 1.0);
        let mut start = 0;
        if let Some(k) = resume_at {
            // Train to k, save, rebuild everything from the saved state.
            for step in 0..k {
                tandem::ml::train::sft_step(&policy, &mut adam, &data, 4, step, 9);
            }
            let params: Vec<(String, Tensor)> =
                policy.vs().variables().into_iter().map(|(n, t)| (n, t.copy())).collect();
            let state = adam.state().into_iter().map(|(k, v)| (k, v.copy())).collect();
            policy = Policy::new(s, Device::Cpu, 999);
            tch::no_grad(|| {
                let vars = policy.vs().variables();
                for (n, t) in &params {
                    vars[n].shallow_clone().copy_(t);
                }
            });
            adam = Adam::new(policy.vs(), 1e-2, 3, 1.0);
            adam.restore(&state).unwrap();
            start = k;
        }
        for step in start..steps {
            tandem::ml::train::sft_step(&policy, &mut adam, &data, 4, step, 9);
        }
        let mut vars: Vec<(String, Tensor)> = policy.vs().variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        Tensor::cat(&vars.iter().map(|(_, t)| t.flatten(0, -1)).collect::<Vec<_>>(), 0)
    };
    let straight = run(6, None);
    let resumed = run(6, Some(2));
    assert!(straight.equal(&resumed), "resuming from saved Adam state must be bit-identical");
    let fresh = Policy::new(s, Device::Cpu, 4);
    let mut v: Vec<(String, Tensor)> = fresh.vs().variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    let init = Tensor::cat(&v.iter().map(|(_, t)| t.flatten(0, -1)).collect::<Vec<_>>(), 0);
    assert!(!straight.equal(&init), "training moved the parameters");
    assert_eq!(straight.kind(), Kind::Float);
}

#[test]
fn overlap_flags_mark_copied_and_repeated_tokens() {
    // Prompt [PAD BOS 7 8]; response [7 9 9 7 EOS PAD]:
    // 7 copied (1); 9 fresh (0); 9 repeated (2); 7 copied and repeated (3);
    // EOS neither (0); PAD never counts, even though the prompt has PAD (0).
    let prompts = left_pad(&[vec![BOS, 7, 8]], 4);
    let y = tandem::ml::tokens::right_pad(&[vec![7, 9, 9, 7, EOS]], 6);
    let flags = tandem::ml::preference::overlap_flags(&prompts, &y);
    assert_eq!(Vec::<i64>::try_from(flags.view([-1])).unwrap(), vec![1, 0, 2, 3, 0, 0]);
}

#[test]
fn shared_prompt_log_probs_and_gradients_equal_the_full_forward() {
    // Chosen and rejected continuing one prompt pass (what every preference
    // step uses) against each scored with its own full forward: log-probs
    // and every parameter's gradient agree up to float rounding.
    tch::set_num_threads(1);
    let policy = Policy::new(spec(16, 6), Device::Cpu, 4);
    let p = prompts();
    let y1 = tandem::ml::tokens::right_pad(&[vec![4, 5, EOS], vec![6, EOS], vec![7, 7, 7, 7, 7, EOS], vec![EOS]], 6);
    let y2 = tandem::ml::tokens::right_pad(&[vec![5, EOS], vec![6, 8, 9, EOS], vec![EOS], vec![9, 10, EOS]], 6);
    for mean in [false, true] {
        let grads = |f: &dyn Fn() -> Tensor| -> (Tensor, Vec<Tensor>) {
            let mut vars: Vec<(String, Tensor)> = policy.vs().variables().into_iter().collect();
            vars.sort_by(|a, b| a.0.cmp(&b.0));
            for (_, v) in &mut vars {
                v.zero_grad();
            }
            let out = f();
            // A weighted sum, so that chosen and rejected rows count differently.
            let w = Tensor::arange(out.size()[0], (Kind::Float, Device::Cpu)) + 1.0;
            (&out * w).sum(Kind::Float).backward();
            (out.detach(), vars.iter().map(|(_, v)| v.grad().copy()).collect())
        };
        let (shared, g_shared) = grads(&|| policy.shared_prompt_seq_logprob(&p, &[&y1, &y2], mean));
        let (full, g_full) =
            grads(&|| Tensor::cat(&[policy.seq_logprob(&p, &y1, mean), policy.seq_logprob(&p, &y2, mean)], 0));
        assert!(max_abs(&shared, &full) < 1e-5, "mean={mean}: {shared:?} vs {full:?}");
        for (a, b) in g_shared.iter().zip(&g_full) {
            assert!(max_abs(a, b) < 1e-4, "mean={mean}: gradients differ by {}", max_abs(a, b));
        }
    }
}

#[test]
fn reference_log_probs_computed_ahead_give_the_step_a_live_reference_gives() {
    // A `reference_logprobs` node scores a whole dataset in large chunks; a
    // step reading its rows must compute what a step running the reference
    // on its own batch computes, up to float rounding (batch shapes differ).
    use tandem::ml::data::Pairs;
    use tandem::ml::loss::Loss;
    use tandem::ml::train::{self, Reference};
    tch::set_num_threads(1);
    let s = spec(16, 6);
    let reference = Policy::new(s, Device::Cpu, 4);
    let mut r = stream(3, "pairs", 0);
    let responses = |r: &mut tandem::ml::rng::Stream| {
        use rand::Rng;
        let rows: Vec<Vec<i64>> = (0..40)
            .map(|_| {
                let len = r.gen_range(0..5);
                (0..len).map(|_| r.gen_range(4..16)).chain([EOS]).collect()
            })
            .collect();
        tandem::ml::tokens::right_pad(&rows, 6)
    };
    let data = Pairs {
        prompts: Tensor::cat(&(0..10).map(|_| prompts()).collect::<Vec<_>>(), 0),
        chosen: responses(&mut r),
        rejected: responses(&mut r),
        columns: Default::default(),
    };
    // Ahead: all 40 rows in one pass. Live: the step's own 8 rows.
    let (all_c, all_r) = train::reference_logprobs(&reference, &data, false);
    let idx: Vec<i64> = vec![3, 17, 4, 39, 0, 22, 22, 9];
    let batch = data.select(&idx);
    let (live_c, live_r) = train::reference_logprobs(&reference, &batch, false);
    let i = Tensor::from_slice(&idx);
    let (given_c, given_r) = (all_c.index_select(0, &i), all_r.index_select(0, &i));
    assert!(max_abs(&given_c, &live_c) < 1e-5 && max_abs(&given_r, &live_r) < 1e-5);
    // One IPO step each way from the same policy: the same loss and update.
    let policies = [Policy::new(s, Device::Cpu, 5), Policy::new(s, Device::Cpu, 5)];
    let mut adams: Vec<Adam> = policies.iter().map(|p| Adam::new(p.vs(), 1e-2, 0, 0.0)).collect();
    let loss = Loss::Ipo { beta: 0.1 };
    let a = train::preference_step(
        &policies[0],
        Reference::Given { chosen: given_c, rejected: given_r },
        loss,
        false,
        &mut adams[0],
        &batch,
    )
    .unwrap();
    let b = train::preference_step(&policies[1], Reference::Policy(&reference), loss, false, &mut adams[1], &batch)
        .unwrap();
    assert!((a.loss - b.loss).abs() < 1e-5 && (a.margin.unwrap() - b.margin.unwrap()).abs() < 1e-5, "{a:?} {b:?}");
    let params = |p: &Policy| {
        let mut v: Vec<(String, Tensor)> = p.vs().variables().into_iter().collect();
        v.sort_by(|x, y| x.0.cmp(&y.0));
        v
    };
    for ((name, x), (_, y)) in params(&policies[0]).iter().zip(params(&policies[1]).iter()) {
        assert!(max_abs(x, y) < 1e-6, "{name} differs by {}", max_abs(x, y));
    }
    // A loss that reads the reference refuses to run without one.
    assert!(train::preference_step(&policies[0], Reference::Unused, loss, false, &mut adams[0], &batch).is_err());
}

#[test]
fn pooled_scores_continuing_one_prompt_pass_equal_whole_passes() {
    // A pooled PM scores chosen and rejected (and a win rate its samples) by
    // continuing one pass over `[x SEP]`: scores, the loss's gradients and
    // the SEP fallback of a response with no real token agree with a pass
    // over each whole `[x SEP y]` up to float rounding.
    tch::set_num_threads(1);
    let pm = PreferenceModel::new(
        PmSpec { vocab: 16, layers: 2, width: 32, heads: 4, prompt_len: 5, response_len: 6 },
        PmHead::Pooled,
        Device::Cpu,
        8,
    );
    let p = prompts();
    let y1 = tandem::ml::tokens::right_pad(&[vec![4, 5, EOS], vec![6, EOS], vec![7, 7, 7, 7, 7, EOS], vec![EOS]], 6);
    let y2 = tandem::ml::tokens::right_pad(&[vec![5, EOS], vec![6, 8, 9, EOS], vec![], vec![9, 10, EOS]], 6);
    let whole = |y: &Tensor| pm.pooled_score_whole(&p, y).expect("pooled");
    for y in [&y1, &y2] {
        let shared = pm.pooled_score(&p, y).expect("pooled");
        let w = tch::no_grad(|| whole(y));
        assert!(max_abs(&shared, &w) < 1e-5, "{shared:?} vs {w:?}");
    }
    let grads = |f: &dyn Fn() -> Tensor| -> Vec<Tensor> {
        let mut vars: Vec<(String, Tensor)> = pm.vs().variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, v) in &mut vars {
            v.zero_grad();
        }
        f().backward();
        vars.iter().map(|(_, v)| v.grad().copy()).collect()
    };
    // A prefix kept as named tensors (a `samples` node keeps its judge's)
    // and read back continues to the same bytes; a misshapen one is refused.
    let prefix = tch::no_grad(|| pm.prefix(&p));
    let named: std::collections::BTreeMap<String, Tensor> = prefix.to_named().into_iter().collect();
    let read = pm.prefix_from_named(&p, |k| named.get(k).map(|t| t.copy())).expect("a whole prefix");
    let (a, b) = (pm.pooled_scores_after(&prefix, &y1).unwrap(), pm.pooled_scores_after(&read, &y1).unwrap());
    assert!(a.equal(&b));
    assert!(pm.prefix_from_named(&p.narrow(0, 0, 3), |k| named.get(k).map(|t| t.copy())).is_none());
    assert!(pm
        .prefix_from_named(&p, |k| (k != "prefix.v1").then(|| named.get(k).map(|t| t.copy())).flatten())
        .is_none());
    let shared = grads(&|| pm.loss(&p, &y1, &y2));
    let by_whole = grads(&|| (-(whole(&y1) - whole(&y2))).softplus().mean(Kind::Float));
    for (a, b) in shared.iter().zip(&by_whole) {
        assert!(max_abs(a, b) < 1e-5, "gradients differ by {}", max_abs(a, b));
    }
}

// ---- The `portable` profile's matrix product (ml::matmul) ----

/// Inputs from integer arithmetic alone, so every host makes the same ones.
fn fixed(rows: i64, cols: i64, salt: i64) -> Tensor {
    let v: Vec<f32> = (0..rows * cols).map(|i| ((i * 7_919 + salt * 104_729) % 2_001 - 1_000) as f32 / 997.0).collect();
    Tensor::from_slice(&v).view([rows, cols])
}

fn digest(t: &Tensor) -> String {
    let t = t.contiguous();
    let v: Vec<f32> = Vec::<f32>::try_from(&t.view(-1)).unwrap();
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    blake3::hash(&bytes).to_hex()[..16].to_string()
}

/// x · wᵀ and both gradients through the portable product, for a sum
/// weighted by `g` (so every gradient entry differs).
fn portable_with_grads(x: &Tensor, w: &Tensor, g: &Tensor) -> (Tensor, Tensor, Tensor) {
    let (x, w) = (x.detach().set_requires_grad(true), w.detach().set_requires_grad(true));
    let y = tandem::ml::matmul::portable_linear_2d(&x, &w);
    (&y * g).sum(Kind::Float).backward();
    (y.detach(), x.grad(), w.grad())
}

#[test]
fn the_portable_product_equals_libtorchs_within_rounding() {
    // k = 300 crosses the product's block of 256 along the sum.
    let (x, w, g) = (fixed(37, 300, 1), fixed(70, 300, 2), fixed(37, 70, 3));
    let (y, dx, dw) = portable_with_grads(&x, &w, &g);
    let (xr, wr) = (x.set_requires_grad(true), w.set_requires_grad(true));
    let yr = xr.linear(&wr, None::<Tensor>);
    (&yr * &g).sum(Kind::Float).backward();
    let rel = |a: &Tensor, b: &Tensor| max_abs(a, b) / b.abs().max().double_value(&[]);
    assert!(rel(&y, &yr.detach()) < 1e-6, "forward: {}", rel(&y, &yr.detach()));
    assert!(rel(&dx, &xr.grad()) < 1e-6, "dx: {}", rel(&dx, &xr.grad()));
    assert!(rel(&dw, &wr.grad()) < 1e-6, "dw: {}", rel(&dw, &wr.grad()));
    // And it is a product at all: a wrong weight gives a wrong answer.
    let (y2, _, _) = portable_with_grads(&x, &(&w * 1.001), &g);
    assert!(rel(&y2, &yr.detach()) > 1e-4);
}

#[test]
fn the_portable_product_gives_the_same_bytes_whatever_its_operands_layout() {
    // The product packs its operands before it multiplies, so a transposed
    // or sliced view sums in the same order as a contiguous copy.
    let (x, w, g) = (fixed(33, 260, 4), fixed(48, 260, 5), fixed(33, 48, 6));
    let (y, dx, dw) = portable_with_grads(&x, &w, &g);
    let x_t = x.tr().contiguous().tr();
    let w_wide = Tensor::cat(&[&w, &w], 1).narrow(1, 0, 260);
    let (y2, dx2, dw2) = portable_with_grads(&x_t, &w_wide, &g);
    assert!(y.equal(&y2) && dx.equal(&dx2) && dw.equal(&dw2));
}

#[test]
fn the_portable_product_computes_the_pinned_bytes_on_every_host() {
    // Written once (an AVX2 AMD EPYC host); every machine that runs the
    // suite, Intel with AVX-512 included, must compute the same bytes.
    let (x, w, g) = (fixed(129, 300, 7), fixed(200, 300, 8), fixed(129, 200, 9));
    let (y, dx, dw) = portable_with_grads(&x, &w, &g);
    let got = format!("{} {} {}", digest(&y), digest(&dx), digest(&dw));
    assert_eq!(
        got, "13f916a27bd6dff6 bb35388715fdc914 f970ca22a2149eeb",
        "the portable product computed other bytes on this host"
    );
}

#[test]
fn the_portable_batched_product_and_attention_equal_libtorchs_within_rounding() {
    use tandem::ml::matmul::portable_matmul;
    // A batched product over two leading dimensions, the second operand a
    // transposed view (as attention's q kᵀ is).
    let a = fixed(2 * 3 * 7, 16, 10).view([2, 3, 7, 16]).set_requires_grad(true);
    let b = fixed(2 * 3 * 9, 16, 11).view([2, 3, 9, 16]).set_requires_grad(true);
    let g = fixed(2 * 3 * 7, 9, 12).view([2, 3, 7, 9]);
    let mine = portable_matmul(&a, &b.transpose(-2, -1));
    (&mine * &g).sum(Kind::Float).backward();
    let (da, db) = (a.grad().copy(), b.grad().copy());
    let _ = a.grad().zero_();
    let _ = b.grad().zero_();
    let theirs = a.matmul(&b.transpose(-2, -1));
    (&theirs * &g).sum(Kind::Float).backward();
    assert!(max_abs(&mine, &theirs) < 1e-5, "{}", max_abs(&mine, &theirs));
    assert!(max_abs(&da, &a.grad()) < 1e-5 && max_abs(&db, &b.grad()) < 1e-5);
    // Attention written out with it equals libtorch's fused kernel, a
    // query that sees only itself included.
    let q = fixed(2 * 4 * 6, 8, 13).view([2, 4, 6, 8]);
    let (k, v) = (fixed(2 * 4 * 6, 8, 14).view([2, 4, 6, 8]), fixed(2 * 4 * 6, 8, 15).view([2, 4, 6, 8]));
    let mask = Tensor::ones([6, 6], (Kind::Bool, Device::Cpu))
        .tril(0)
        .logical_and(&Tensor::from_slice(&[false, true, true, true, true, true]).view([1, 6]))
        .logical_or(&Tensor::eye(6, (Kind::Bool, Device::Cpu)));
    let written = tandem::ml::matmul::portable_attention(&q, &k, &v, &mask);
    let fused = Tensor::scaled_dot_product_attention(&q, &k, &v, Some(&mask), 0.0, false, None, false);
    assert!(max_abs(&written, &fused) < 1e-5, "{}", max_abs(&written, &fused));
}
