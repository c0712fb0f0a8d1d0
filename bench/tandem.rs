//! tandem's side of the benchmarks (bench/run.py runs it beside the PyTorch
//! and TRL references and prints the table). Each measurement prints one JSON
//! line on stdout in the references' format; diagnostics go to stderr.
//!
//!     cargo bench --bench tandem -- [--threads N] [--steps N] [--warmup N] [--only NAME]
//!
//! Workload W (issue #7): one offline IPO step of a 2-layer, width-64,
//! 4-head policy over a vocabulary of 63, 32 pairs of prompt 12 + response 12
//! tokens, reference log-probs every step, Adam, no clipping.

use std::time::Instant;

use tch::{Device, Kind, Tensor};

use tandem::ml::adam::Adam;
use tandem::ml::data::Pairs;
use tandem::ml::loss::Loss;
use tandem::ml::policy::{Policy, PolicySpec};
use tandem::ml::preference::{PmHead, PmSpec, PreferenceModel};
use tandem::ml::rng;
use tandem::ml::tokens::{left_pad, right_pad, BOS, EOS, FIRST_CONTENT};
use tandem::ml::train;
use tandem::plan::op::Numerics;

const VOCAB: i64 = 63;
const PAIRS: usize = 32;
const PROMPT: i64 = 12;
const RESPONSE: i64 = 12;

struct Opts {
    threads: i32,
    /// The numerics profile (`native`, the host's kernels, by default).
    numerics: Numerics,
    steps: usize,
    warmup: usize,
    only: Option<String>,
}

fn parse() -> Opts {
    let mut o = Opts { threads: 1, numerics: Numerics::Native, steps: 200, warmup: 20, only: None };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--threads" => o.threads = val().parse().expect("--threads N"),
            "--numerics" => o.numerics = Numerics::from_name(&val()).expect("--numerics portable|native|cuda"),
            "--steps" => o.steps = val().parse().expect("--steps N"),
            "--warmup" => o.warmup = val().parse().expect("--warmup N"),
            "--only" => o.only = Some(val()),
            // The portable product's kernel on an AVX-512 host (the same
            // bytes either way): `avx2` times the kernel every other host runs.
            "--kernel" => tandem::ml::matmul::set_wide_kernel(match val().as_str() {
                "avx512" => true,
                "avx2" => false,
                k => panic!("--kernel avx512|avx2, not {k}"),
            }),
            // cargo bench passes --bench to every bench target.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    o
}

fn spec(response: i64) -> PolicySpec {
    PolicySpec { vocab: VOCAB, layers: 2, width: 64, heads: 4, prompt_len: PROMPT, response_len: response }
}

/// Random pairs shaped like W: prompts of 3..=12 tokens (BOS first),
/// responses of 2..=12 (EOS last); row 0 uses every position.
fn random_pairs(n: usize, seed: u64) -> Pairs {
    use rand::Rng;
    let mut r = rng::stream(seed, "bench/data", 0);
    let content =
        |k: usize, r: &mut rng::Stream| (0..k).map(|_| r.gen_range(FIRST_CONTENT..VOCAB)).collect::<Vec<i64>>();
    let (mut p, mut c, mut j) = (vec![], vec![], vec![]);
    for i in 0..n {
        let lp = if i == 0 { PROMPT as usize } else { r.gen_range(3..=PROMPT as usize) };
        p.push([vec![BOS], content(lp - 1, &mut r)].concat());
        for out in [&mut c, &mut j] {
            let lr = if i == 0 { RESPONSE as usize } else { r.gen_range(2..=RESPONSE as usize) };
            out.push([content(lr - 1, &mut r), vec![EOS]].concat());
        }
    }
    Pairs {
        prompts: left_pad(&p, PROMPT as usize),
        chosen: right_pad(&c, RESPONSE as usize),
        rejected: right_pad(&j, RESPONSE as usize),
        columns: Default::default(),
    }
}

fn params(vs: &tch::nn::VarStore) -> i64 {
    vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
}

/// Times `f` `steps` times after `warmup` untimed calls; prints the JSON line.
fn measure(name: &str, o: &Opts, extra: serde_json::Value, mut f: impl FnMut(usize)) {
    for i in 0..o.warmup {
        f(i);
    }
    let mut ms: Vec<f64> = (0..o.steps)
        .map(|i| {
            let t = Instant::now();
            f(o.warmup + i);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    print_summary(name, o, &extra, &ms);
}

/// Prints one JSON line from sorted step times.
fn print_summary(name: &str, o: &Opts, extra: &serde_json::Value, ms: &[f64]) {
    let n = ms.len();
    let pct = |p: f64| ms[((p / 100.0 * (n - 1) as f64).round() as usize).min(n - 1)];
    let mut out = serde_json::json!({
        "name": name, "impl": if o.numerics == Numerics::Native { "tandem".to_string() } else { format!("tandem {}", o.numerics.name()) },
        "threads": o.threads, "steps": n,
        "ms_per_step_median": pct(50.0), "ms_per_step_mean": ms.iter().sum::<f64>() / n as f64,
        "ms_per_step_p10": pct(10.0), "ms_per_step_p90": pct(90.0),
    });
    if let (Some(a), Some(b)) = (out.as_object_mut(), extra.as_object()) {
        a.extend(b.clone());
    }
    println!("{out}");
}

/// Like [`measure`] for two variants, timed alternately step by step.
fn measure_pair(names: (&str, &str), o: &Opts, extra: serde_json::Value, mut f: impl FnMut(usize, usize)) {
    for i in 0..o.warmup {
        f(i, 0);
        f(i, 1);
    }
    let mut ms = [vec![], vec![]];
    for i in 0..o.steps {
        for (which, out) in ms.iter_mut().enumerate() {
            let t = Instant::now();
            f(o.warmup + i, which);
            out.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    for (name, mut ms) in [names.0, names.1].into_iter().zip(ms) {
        ms.sort_by(f64::total_cmp);
        print_summary(name, o, &extra, &ms);
    }
}

/// Floating-point operations of one forward pass of the policy over `seqs`
/// sequences of `t` tokens, logits at `head_positions` of them: 2 per
/// multiply-add of every matmul, attention's QKᵀ and AV included.
fn forward_flops(s: &PolicySpec, seqs: i64, t: i64, head_positions: i64) -> f64 {
    let d = s.width as f64;
    let per_token_layer = 2.0 * (3.0 * d * d + d * d + 4.0 * d * d * 2.0);
    let attention_layer = 2.0 * 2.0 * (t * t) as f64 * d; // QKᵀ and AV, full T×T (masked, still computed)
    let layers = s.layers as f64;
    (seqs * t) as f64 * per_token_layer * layers
        + seqs as f64 * attention_layer * layers
        + 2.0 * (seqs * head_positions) as f64 * d * s.vocab as f64
}

fn offline_step(o: &Opts) {
    let s = spec(RESPONSE);
    let policy = Policy::new(s, Device::Cpu, 1);
    let reference = Policy::new(s, Device::Cpu, 1);
    let mut adam = Adam::new(policy.vs(), 1e-4, 0, 0.0);
    let batches: Vec<Pairs> = (0..8).map(|i| random_pairs(PAIRS, i)).collect();
    let fwd = forward_flops(&s, 2 * PAIRS as i64, PROMPT + RESPONSE, RESPONSE);
    // Policy forward + backward (2× forward) + reference forward.
    let flops = 4.0 * fwd;
    // The same step without sharing the prompt pass between chosen and
    // rejected (how tandem computed it before; bench/NOTES.md). The two are
    // timed alternately, step by step, so that drifts in the machine's speed
    // fall on both alike.
    let loss = Loss::Ipo { beta: 0.1 };
    // Its own copy of the policy: an Adam owns its variables' storage.
    let policy_b = Policy::new(s, Device::Cpu, 1);
    let mut adam_b = Adam::new(policy_b.vs(), 1e-4, 0, 0.0);
    let unshared = |i: usize, adam: &mut Adam| {
        let batch = &batches[i % batches.len()];
        let b = batch.len();
        let prompts = Tensor::cat(&[&batch.prompts, &batch.prompts], 0);
        let responses = Tensor::cat(&[&batch.chosen, &batch.rejected], 0);
        let lp = policy_b.seq_logprob(&prompts, &responses, false);
        let r = tch::no_grad(|| reference.seq_logprob(&prompts, &responses, false));
        let value = loss.mean(&lp.narrow(0, 0, b), &lp.narrow(0, b, b), &r.narrow(0, 0, b), &r.narrow(0, b, b));
        adam.zero_grad();
        value.backward();
        adam.step();
    };
    let extra = serde_json::json!({"params": params(policy.vs()), "flops_per_step": flops});
    measure_pair(("offline_ipo_step_W", "offline_ipo_step_W_unshared"), o, extra, |i, which| {
        if which == 0 {
            train::preference_step(
                &policy,
                train::Reference::Policy(&reference),
                loss,
                false,
                &mut adam,
                &batches[i % batches.len()],
            )
            .expect("a step");
        } else {
            unshared(i, &mut adam_b);
        }
    });
}

/// The W step reading its reference log-probs from a `reference_logprobs`
/// node (computed once, here before timing) against the step as it was,
/// running the reference every step. Alternating step by step.
fn offline_shared_reference(o: &Opts) {
    let s = spec(RESPONSE);
    let reference = Policy::new(s, Device::Cpu, 1);
    let batches: Vec<Pairs> = (0..8).map(|i| random_pairs(PAIRS, i)).collect();
    let given: Vec<(Tensor, Tensor)> =
        batches.iter().map(|b| train::reference_logprobs(&reference, b, false)).collect();
    let loss = Loss::Ipo { beta: 0.1 };
    let policies = [Policy::new(s, Device::Cpu, 1), Policy::new(s, Device::Cpu, 1)];
    let mut adams: Vec<Adam> = policies.iter().map(|p| Adam::new(p.vs(), 1e-4, 0, 0.0)).collect();
    let extra = serde_json::json!({"params": params(policies[0].vs())});
    measure_pair(("offline_ipo_step_W_shared_reference", "offline_ipo_step_W_live_reference"), o, extra, |i, which| {
        let batch = &batches[i % batches.len()];
        let reference = if which == 0 {
            let (c, r) = &given[i % batches.len()];
            train::Reference::Given { chosen: c.shallow_clone(), rejected: r.shallow_clone() }
        } else {
            train::Reference::Policy(&reference)
        };
        train::preference_step(&policies[which], reference, loss, false, &mut adams[which], batch).expect("a step");
    });
}

/// Where the time of the W step, as `preference_step` computes it, goes:
/// the step written out phase by phase with a clock between phases (each
/// phase's result is forced by the next's use of it; libtorch on the CPU is
/// synchronous). One JSON line per phase, medians over the steps.
/// Times a step phase by phase: `lap(k)` adds the time since the previous
/// lap to phase k, `end()` the whole step; steps before `warmup` are not kept.
struct Laps {
    ms: Vec<Vec<f64>>,
    warmup: usize,
    step: usize,
    start: Instant,
    last: Instant,
}

impl Laps {
    fn new(phases: usize, warmup: usize) -> Laps {
        let now = Instant::now();
        Laps { ms: vec![vec![]; phases + 1], warmup, step: 0, start: now, last: now }
    }

    fn begin(&mut self, step: usize) {
        self.step = step;
        self.start = Instant::now();
        self.last = self.start;
    }

    fn lap(&mut self, k: usize) {
        if self.step >= self.warmup {
            self.ms[k].push(self.last.elapsed().as_secs_f64() * 1e3);
        }
        self.last = Instant::now();
    }

    fn end(&mut self) {
        if self.step >= self.warmup {
            let whole = self.ms.len() - 1;
            self.ms[whole].push(self.start.elapsed().as_secs_f64() * 1e3);
        }
    }

    /// One JSON line per phase, `name(phase)` naming each (None: the whole step).
    fn print(self, o: &Opts, extra: &serde_json::Value, phases: &[&str], name: impl Fn(Option<&str>) -> String) {
        for (k, mut v) in self.ms.into_iter().enumerate() {
            v.sort_by(f64::total_cmp);
            print_summary(&name(phases.get(k).copied()), o, extra, &v);
        }
    }
}

fn step_phases(o: &Opts) {
    let s = spec(RESPONSE);
    let policy = Policy::new(s, Device::Cpu, 1);
    let reference = Policy::new(s, Device::Cpu, 1);
    let mut adam = Adam::new(policy.vs(), 1e-4, 0, 0.0);
    let data = random_pairs(1024, 5);
    let loss = Loss::Ipo { beta: 0.1 };
    const PHASES: [&str; 8] = [
        "select_batch",
        "policy_forward",
        "reference_forward",
        "loss_and_margin",
        "zero_grad",
        "backward",
        "adam",
        "release",
    ];
    let mut laps = Laps::new(PHASES.len(), o.warmup);
    for i in 0..o.warmup + o.steps {
        laps.begin(i);
        let idx = tandem::ml::sampler::offline_indices(data.len() as usize, PAIRS, i as u64, 0);
        let batch = data.select(&idx);
        laps.lap(0);
        let b = batch.len();
        let lp = policy.shared_prompt_seq_logprob(&batch.prompts, &[&batch.chosen, &batch.rejected], false);
        let (lw, ll) = (lp.narrow(0, 0, b), lp.narrow(0, b, b));
        laps.lap(1);
        let (rw, rl) = train::reference_logprobs(&reference, &batch, false);
        laps.lap(2);
        let margin = tch::no_grad(|| ((&lw - &rw) - (&ll - &rl)).mean(Kind::Float).double_value(&[]));
        let value = loss.mean(&lw, &ll, &rw, &rl);
        laps.lap(3);
        adam.zero_grad();
        laps.lap(4);
        value.backward();
        laps.lap(5);
        let _ = (adam.step(), value.double_value(&[]), margin);
        laps.lap(6);
        drop((lp, lw, ll, rw, rl, value, batch));
        laps.lap(7);
        laps.end();
    }
    laps.print(o, &serde_json::json!({}), &PHASES, |p| {
        p.map_or("W_phases_whole_step".to_string(), |p| format!("W_phase_{p}"))
    });
}

/// SFT, phase by phase, at the paper study's size (2 x 64, 64 responses a
/// step: both responses of 32 pairs, prompt 12 + response 12): selecting the
/// batch, the forward pass to token log-probs, the loss, backward, Adam.
fn sft_phases(o: &Opts) {
    const PHASES: [&str; 5] = ["select_batch", "forward", "loss", "backward", "adam"];
    let policy = Policy::new(spec(RESPONSE), Device::Cpu, 1);
    let mut adam = Adam::new(policy.vs(), 3e-4, 0, 0.0);
    let data = random_pairs(4096, 9);
    let mut laps = Laps::new(PHASES.len(), o.warmup);
    for i in 0..o.warmup + o.steps {
        laps.begin(i);
        let idx = tandem::ml::sampler::offline_indices(data.len() as usize, 32, i as u64, 0);
        let b = data.select(&idx);
        let prompts = Tensor::cat(&[&b.prompts, &b.prompts], 0);
        let responses = Tensor::cat(&[&b.chosen, &b.rejected], 0);
        laps.lap(0);
        let (lp, mask) = policy.token_logprobs(&prompts, &responses);
        laps.lap(1);
        let loss = -lp.sum(Kind::Float) / mask.to_kind(Kind::Float).sum(Kind::Float).clamp_min(1.0);
        laps.lap(2);
        adam.zero_grad();
        loss.backward();
        laps.lap(3);
        let _ = (adam.step(), loss.double_value(&[]));
        laps.lap(4);
        laps.end();
    }
    let extra = serde_json::json!({"layers": 2, "width": 64, "responses": 64, "params": params(policy.vs())});
    laps.print(o, &extra, &PHASES, |p| format!("SFT_2x64_{}", p.unwrap_or("whole_step")));
}

/// Preference-model training, phase by phase (#19): one step of eq. (5)
/// with the pooled head (chosen and rejected in one batch of 2 × 64 through
/// the trunk), Adam, at the quickstart's golden-PM size (2 × 64) and the
/// paper study's (3 × 96). In the paper study four 3 × 96 golden PMs of 1k
/// steps gate every other stage.
fn pm_phases(o: &Opts) {
    const PHASES: [&str; 5] = ["select_batch", "forward_and_loss", "zero_grad", "backward", "adam"];
    for (layers, width) in [(2, 64), (3, 96)] {
        let spec = PmSpec { vocab: VOCAB, layers, width, heads: 4, prompt_len: PROMPT, response_len: RESPONSE };
        let pm = PreferenceModel::new(spec, PmHead::Pooled, Device::Cpu, 1);
        let mut adam = Adam::new(pm.vs(), 1e-3, 0, 0.0);
        let data = random_pairs(4096, 7);
        let mut laps = Laps::new(PHASES.len(), o.warmup);
        for i in 0..o.warmup + o.steps {
            laps.begin(i);
            let idx = tandem::ml::sampler::offline_indices(data.len() as usize, 64, i as u64, 0);
            let b = data.select(&idx);
            laps.lap(0);
            let loss = pm.loss(&b.prompts, &b.chosen, &b.rejected);
            laps.lap(1);
            adam.zero_grad();
            laps.lap(2);
            loss.backward();
            laps.lap(3);
            let _ = (adam.step(), loss.double_value(&[]));
            laps.lap(4);
            laps.end();
        }
        let extra = serde_json::json!({"layers": layers, "width": width, "batch_pairs": 64, "params": params(pm.vs())});
        laps.print(o, &extra, &PHASES, |p| format!("PM_{layers}x{width}_{}", p.unwrap_or("whole_step")));
    }
}

fn offline_breakdown(o: &Opts) {
    let s = spec(RESPONSE);
    let policy = Policy::new(s, Device::Cpu, 1);
    let reference = Policy::new(s, Device::Cpu, 1);
    let mut adam = Adam::new(policy.vs(), 1e-4, 0, 0.0);
    let batch = random_pairs(PAIRS, 0);
    let prompts = Tensor::cat(&[&batch.prompts, &batch.prompts], 0);
    let responses = Tensor::cat(&[&batch.chosen, &batch.rejected], 0);
    let fewer =
        Opts { steps: o.steps.min(100), warmup: o.warmup, threads: o.threads, numerics: o.numerics, only: None };
    measure("W_part_reference_fwd", &fewer, serde_json::json!({}), |_| {
        let _ = tch::no_grad(|| reference.seq_logprob(&prompts, &responses, false));
    });
    measure("W_part_policy_fwd", &fewer, serde_json::json!({}), |_| {
        let _ = policy.seq_logprob(&prompts, &responses, false);
    });
    measure("W_part_fwd_bwd", &fewer, serde_json::json!({}), |_| {
        adam.zero_grad();
        policy.seq_logprob(&prompts, &responses, false).sum(Kind::Float).backward();
    });
    measure("W_part_adam", &fewer, serde_json::json!({}), |_| {
        adam.step();
    });
}

fn online_step(o: &Opts) {
    let s = spec(RESPONSE);
    let policy = Policy::new(s, Device::Cpu, 1);
    let reference = Policy::new(s, Device::Cpu, 1);
    let judge = PreferenceModel::new(
        PmSpec { vocab: VOCAB, layers: 2, width: 64, heads: 4, prompt_len: PROMPT, response_len: RESPONSE },
        PmHead::Pooled,
        Device::Cpu,
        2,
    );
    let mut adam = Adam::new(policy.vs(), 1e-4, 0, 0.0);
    let pool = random_pairs(256, 9).prompts;
    // The floor counts full-length work: two samplings of 12 tokens with the
    // KV cache (≈ one forward each), the judge's two scored passes, and W.
    let fwd = forward_flops(&s, PAIRS as i64, PROMPT + RESPONSE, RESPONSE);
    let judge_fwd = forward_flops(&s, 2 * PAIRS as i64, PROMPT + 1 + RESPONSE, 0);
    let flops = 2.0 * fwd + judge_fwd + 4.0 * 2.0 * fwd;
    measure("online_ipo_step", o, serde_json::json!({"params": params(policy.vs()), "flops_per_step": flops}), |i| {
        let (batch, _) = train::online_batch(&policy, &judge, &pool, PAIRS, 1.0, i as u64, 0);
        train::preference_step(
            &policy,
            train::Reference::Policy(&reference),
            Loss::Ipo { beta: 0.1 },
            false,
            &mut adam,
            &batch,
        )
        .expect("a step");
    });
}

fn sampling(o: &Opts) {
    // 16 response tokens, 32 prompts: tokens/s with and without the KV cache.
    let s = spec(16);
    let policy = Policy::new(s, Device::Cpu, 3);
    let prompts = random_pairs(PAIRS, 4).prompts;
    let tokens = (PAIRS * 16) as f64;
    let fewer =
        Opts { steps: o.steps.min(50), warmup: o.warmup.min(5), threads: o.threads, numerics: o.numerics, only: None };
    for (name, cached) in [("sample_16_kv_cache", true), ("sample_16_no_cache", false)] {
        let mut ms_total = 0.0;
        let mut calls = 0;
        measure(name, &fewer, serde_json::json!({"tokens_per_call": tokens}), |i| {
            let t = Instant::now();
            let mut r = rng::stream(5, "bench/sample", i as u64);
            let _ = if cached {
                policy.sample(&prompts, 1.0, &mut r)
            } else {
                policy.sample_without_cache(&prompts, 1.0, &mut r)
            };
            ms_total += t.elapsed().as_secs_f64() * 1e3;
            calls += 1;
        });
        eprintln!(
            "{name}: {:.0} tokens/s (mean over {calls} calls incl. warm-up)",
            tokens * calls as f64 / (ms_total / 1e3)
        );
    }
}

/// Ten win-rate evaluations of 2,048 prompts against one baseline: each
/// drawing the baseline's samples itself (as before the `samples` node)
/// against the baseline sampled once and shared. One "step" is all ten.
fn winrate_shared(o: &Opts) {
    const EVALS: usize = 10;
    const PROMPTS: usize = 2048;
    let s = spec(RESPONSE);
    let baseline = Policy::new(s, Device::Cpu, 11);
    let policies: Vec<Policy> = (0..EVALS as u64).map(|i| Policy::new(s, Device::Cpu, 20 + i)).collect();
    let judge = PreferenceModel::new(
        PmSpec { vocab: VOCAB, layers: 2, width: 64, heads: 4, prompt_len: PROMPT, response_len: RESPONSE },
        PmHead::Pooled,
        Device::Cpu,
        2,
    );
    let prompts = random_pairs(PROMPTS, 12).prompts;
    let fewer =
        Opts { steps: o.steps.min(3), warmup: o.warmup.min(1), threads: o.threads, numerics: o.numerics, only: None };
    let extra = serde_json::json!({"evaluations": EVALS, "prompts": PROMPTS});
    measure_pair(("winrate_10x2048_shared_baseline", "winrate_10x2048_unshared"), &fewer, extra, |i, which| {
        let seed = i as u64;
        if which == 0 {
            // What the `samples` node keeps: the draws and the pooled judge's scores.
            let yb = tandem::ml::eval::baseline_samples(&baseline, &prompts, seed);
            let prefix = tch::no_grad(|| judge.prefix(&prompts));
            let scores = judge.pooled_scores_after(&prefix, &yb).expect("a pooled judge");
            for p in &policies {
                let y = tandem::ml::eval::policy_samples(p, &prompts, seed, PROMPTS as i64);
                let _ = tandem::ml::eval::winrate_scored(&y, &scores, &judge, &prefix);
            }
        } else {
            for p in &policies {
                let _ = tandem::ml::eval::winrate(p, &baseline, &judge, &prompts, seed);
            }
        }
    });
}

/// One win-rate evaluation at the paper study's shapes, phase by phase:
/// the policy's samples (2x64, KV cache) and the judge's pooled scores of
/// them (3x96): as one pass over each whole `[x SEP y]`, and continuing a
/// pass over the prompts `[x SEP]` made beforehand (what the `samples` node
/// keeps), at 512 and 2,048 prompts.
fn winrate_phases(o: &Opts) {
    const PHASES: [&str; 3] = ["sample_policy", "judge_whole", "judge_after_prefix"];
    let policy = Policy::new(spec(RESPONSE), Device::Cpu, 3);
    let judge = PreferenceModel::new(
        PmSpec { vocab: VOCAB, layers: 3, width: 96, heads: 4, prompt_len: PROMPT, response_len: RESPONSE },
        PmHead::Pooled,
        Device::Cpu,
        2,
    );
    for prompts in [512usize, 2048] {
        let p = random_pairs(prompts, 13).prompts;
        let prefix = tch::no_grad(|| judge.prefix(&p));
        let steps = o.steps.min(10);
        let mut laps = Laps::new(PHASES.len(), o.warmup.min(2));
        for i in 0..o.warmup.min(2) + steps {
            laps.begin(i);
            let y = policy.sample(&p, 1.0, &mut tandem::ml::rng::stream(i as u64, "bench/winrate", 0));
            laps.lap(0);
            let _ = tch::no_grad(|| judge.pooled_score_whole(&p, &y));
            laps.lap(1);
            let _ = judge.pooled_scores_after(&prefix, &y);
            laps.lap(2);
            laps.end();
        }
        let extra = serde_json::json!({"prompts": prompts, "policy": "2x64", "judge": "3x96"});
        laps.print(o, &extra, &PHASES, |ph| format!("winrate_{prompts}_{}", ph.unwrap_or("all_three")));
    }
}

/// A PM training step (3x96, 64 pairs: forward, loss, backward, Adam) with
/// chosen and rejected continuing one pass over `[x SEP]`, against one pass
/// over each whole `[x SEP y]` (the step before the sharing), alternating.
fn pm_prefix(o: &Opts) {
    let spec = PmSpec { vocab: VOCAB, layers: 3, width: 96, heads: 4, prompt_len: PROMPT, response_len: RESPONSE };
    let pm = PreferenceModel::new(spec, PmHead::Pooled, Device::Cpu, 1);
    let mut adam = Adam::new(pm.vs(), 1e-3, 0, 0.0);
    let data = random_pairs(4096, 7);
    let fewer =
        Opts { steps: o.steps.min(60), warmup: o.warmup.min(5), threads: o.threads, numerics: o.numerics, only: None };
    let extra = serde_json::json!({"layers": 3, "width": 96, "batch_pairs": 64});
    measure_pair(("PM_3x96_step_shared_prefix", "PM_3x96_step_whole_sequences"), &fewer, extra, |i, which| {
        let idx = tandem::ml::sampler::offline_indices(data.len() as usize, 64, i as u64, 0);
        let b = data.select(&idx);
        let loss = if which == 0 {
            pm.loss(&b.prompts, &b.chosen, &b.rejected)
        } else {
            let s = pm
                .pooled_score_whole(
                    &Tensor::cat(&[&b.prompts, &b.prompts], 0),
                    &Tensor::cat(&[&b.chosen, &b.rejected], 0),
                )
                .expect("pooled");
            let n = b.prompts.size()[0];
            // The loss as `PreferenceModel::loss` forms it from z(x, y_w, y_l).
            let z = s.narrow(0, 0, n) - s.narrow(0, n, n);
            ((-&z).softplus() + (-z).softplus()).mean(Kind::Float) * 0.5
        };
        adam.zero_grad();
        loss.backward();
        let _ = adam.step();
    });
}

/// The `portable` profile's own matrix product (ml::matmul) against
/// libtorch's (MKL's COMPATIBLE branch, and the fused attention), in one
/// process: each step switches the product, so the two alternate step by
/// step. Run with `--numerics portable`. Each variant trains its own copy of
/// the model (an Adam owns its variables' storage).
fn portable_product(o: &Opts) {
    use tandem::ml::matmul::set_portable_product;
    assert!(o.numerics == Numerics::Portable, "--only portable_product needs --numerics portable");
    let switch = |which: usize| set_portable_product(which == 0);
    let names = |what: &str| (format!("{what}_portable_product"), format!("{what}_mkl_compatible"));
    // The W offline step, reference log-probs read (as offline runs do).
    {
        let s = spec(RESPONSE);
        let policies = [Policy::new(s, Device::Cpu, 1), Policy::new(s, Device::Cpu, 1)];
        let mut adams: Vec<Adam> = policies.iter().map(|p| Adam::new(p.vs(), 1e-4, 0, 0.0)).collect();
        let batches: Vec<Pairs> = (0..8).map(|i| random_pairs(PAIRS, i)).collect();
        let reference = Policy::new(s, Device::Cpu, 1);
        let refs: Vec<(Tensor, Tensor)> = batches
            .iter()
            .map(|b| {
                tch::no_grad(|| {
                    (
                        reference.seq_logprob(&b.prompts, &b.chosen, false),
                        reference.seq_logprob(&b.prompts, &b.rejected, false),
                    )
                })
            })
            .collect();
        let (a, b) = names("offline_ipo_step_W");
        measure_pair((&a, &b), o, serde_json::json!({}), |i, which| {
            switch(which);
            let k = i % batches.len();
            let (rw, rl) = (&refs[k].0, &refs[k].1);
            train::preference_step(
                &policies[which],
                train::Reference::Given { chosen: rw.shallow_clone(), rejected: rl.shallow_clone() },
                Loss::Ipo { beta: 0.1 },
                false,
                &mut adams[which],
                &batches[k],
            )
            .expect("a step");
        });
    }
    // SFT (2 × 64, 64 responses) and the PM step at both sizes.
    {
        let policies = [Policy::new(spec(RESPONSE), Device::Cpu, 1), Policy::new(spec(RESPONSE), Device::Cpu, 1)];
        let mut adams: Vec<Adam> = policies.iter().map(|p| Adam::new(p.vs(), 3e-4, 0, 0.0)).collect();
        let data = random_pairs(4096, 9);
        let (a, b) = names("SFT_2x64_step");
        measure_pair((&a, &b), o, serde_json::json!({}), |i, which| {
            switch(which);
            let idx = tandem::ml::sampler::offline_indices(data.len() as usize, 32, i as u64, 0);
            let b = data.select(&idx);
            let prompts = Tensor::cat(&[&b.prompts, &b.prompts], 0);
            let responses = Tensor::cat(&[&b.chosen, &b.rejected], 0);
            let (lp, mask) = policies[which].token_logprobs(&prompts, &responses);
            let loss = -lp.sum(Kind::Float) / mask.to_kind(Kind::Float).sum(Kind::Float).clamp_min(1.0);
            adams[which].zero_grad();
            loss.backward();
            let _ = adams[which].step();
        });
    }
    for (layers, width) in [(2, 64), (3, 96)] {
        let spec = PmSpec { vocab: VOCAB, layers, width, heads: 4, prompt_len: PROMPT, response_len: RESPONSE };
        let pms = [
            PreferenceModel::new(spec, PmHead::Pooled, Device::Cpu, 1),
            PreferenceModel::new(spec, PmHead::Pooled, Device::Cpu, 1),
        ];
        let mut adams: Vec<Adam> = pms.iter().map(|p| Adam::new(p.vs(), 1e-3, 0, 0.0)).collect();
        let data = random_pairs(4096, 7);
        let fewer = Opts {
            steps: o.steps.min(60),
            warmup: o.warmup.min(5),
            threads: o.threads,
            numerics: o.numerics,
            only: None,
        };
        let (a, b) = names(&format!("PM_{layers}x{width}_step"));
        measure_pair((&a, &b), &fewer, serde_json::json!({"layers": layers, "width": width}), |i, which| {
            switch(which);
            let idx = tandem::ml::sampler::offline_indices(data.len() as usize, 64, i as u64, 0);
            let b = data.select(&idx);
            let loss = pms[which].loss(&b.prompts, &b.chosen, &b.rejected);
            adams[which].zero_grad();
            loss.backward();
            let _ = adams[which].step();
        });
    }
    // Sampling 512 prompts with the KV cache (a win rate's policy half).
    {
        let policy = Policy::new(spec(RESPONSE), Device::Cpu, 1);
        let prompts = random_pairs(512, 11).prompts;
        let fewer = Opts {
            steps: o.steps.min(10),
            warmup: o.warmup.min(2),
            threads: o.threads,
            numerics: o.numerics,
            only: None,
        };
        let (a, b) = names("sample_512_prompts");
        measure_pair((&a, &b), &fewer, serde_json::json!({}), |i, which| {
            switch(which);
            let _ = tch::no_grad(|| policy.sample(&prompts, 1.0, &mut tandem::ml::rng::stream(3, "bench", i as u64)));
        });
    }
    set_portable_product(true);
}

/// The W step in float32 against the same step under mixed precision
/// (`precision: "bf16"`: ml::autocast), alternating step by step, at W's size
/// and at a wider one (4 × 256) where the matrix products dominate. Each
/// variant trains its own copy of the same initial policy.
fn precision(o: &Opts) {
    use tandem::ml::autocast;
    for (layers, width) in [(2, 64), (4, 256)] {
        let s = PolicySpec { layers, width, ..spec(RESPONSE) };
        let reference = Policy::new(s, Device::Cpu, 1);
        let policies = [Policy::new(s, Device::Cpu, 1), Policy::new(s, Device::Cpu, 1)];
        let mut adams = policies.each_ref().map(|p| Adam::new(p.vs(), 1e-4, 0, 0.0));
        let batches: Vec<Pairs> = (0..8).map(|i| random_pairs(PAIRS, i)).collect();
        let fewer = Opts { steps: if width > 64 { o.steps.min(50) } else { o.steps }, only: None, ..*o };
        let extra = serde_json::json!({"layers": layers, "width": width, "params": params(policies[0].vs())});
        let names = (format!("ipo_step_{layers}x{width}_float32"), format!("ipo_step_{layers}x{width}_bf16"));
        measure_pair((&names.0, &names.1), &fewer, extra, |i, which| {
            let _precision = if which == 0 { autocast::float32(Device::Cpu) } else { autocast::bf16(Device::Cpu) };
            let batch = &batches[i % batches.len()];
            let loss = Loss::Ipo { beta: 0.1 };
            train::preference_step(
                &policies[which],
                train::Reference::Policy(&reference),
                loss,
                false,
                &mut adams[which],
                batch,
            )
            .expect("a step");
        });
    }
}

fn matmul(o: &Opts) {
    // The machine's float32 matmul rate through libtorch, for the floors.
    let n = 1024;
    let a = Tensor::randn([n, n], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([n, n], (Kind::Float, Device::Cpu));
    let fewer = Opts { steps: o.steps.min(30), warmup: 3, threads: o.threads, numerics: o.numerics, only: None };
    let flops = 2.0 * (n * n * n) as f64;
    measure("matmul_1024_f32", &fewer, serde_json::json!({"flops_per_step": flops}), |_| {
        let _ = a.matmul(&b);
    });
}

/// The portable product (tandem's own, `ml::matmul`) against the host's
/// native one (libtorch's, MKL at this host's level) at the linear layers'
/// shapes of two larger models, forward and backward (three products a
/// layer), alternating step by step. Run under `native`: the portable
/// product does not depend on the profile, libtorch's does.
fn portable_sizes(o: &Opts) {
    use tandem::ml::matmul::portable_linear_2d;
    // (model, layer, rows, in, out): a 4 x 128 policy on 64 sequences of 24
    // tokens, and a 10M-parameter model (8 x 256, a 16,384-token tied head)
    // on 32 sequences of 64.
    const SHAPES: [(&str, &str, i64, i64, i64); 9] = [
        ("policy_4x128", "qkv", 1536, 128, 384),
        ("policy_4x128", "mlp_up", 1536, 128, 512),
        ("policy_4x128", "mlp_down", 1536, 512, 128),
        ("policy_4x128", "head", 1536, 128, 63),
        ("model_10M", "qkv", 2048, 256, 768),
        ("model_10M", "attn_out", 2048, 256, 256),
        ("model_10M", "mlp_up", 2048, 256, 1024),
        ("model_10M", "mlp_down", 2048, 1024, 256),
        ("model_10M", "head", 2048, 256, 16384),
    ];
    let fewer =
        Opts { steps: o.steps.min(60), warmup: o.warmup.min(5), threads: o.threads, numerics: o.numerics, only: None };
    for (model, layer, rows, inner, out) in SHAPES {
        tch::manual_seed(7);
        let x = Tensor::randn([rows, inner], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let w = (Tensor::randn([out, inner], (Kind::Float, Device::Cpu)) * 0.05).set_requires_grad(true);
        let flops = 3.0 * 2.0 * (rows * inner * out) as f64;
        let extra = serde_json::json!({"flops_per_step": flops, "rows": rows, "in": inner, "out": out});
        let names = (format!("{model}_{layer}_portable_product"), format!("{model}_{layer}_native"));
        measure_pair((&names.0, &names.1), &fewer, extra.clone(), |_, which| {
            let y = if which == 0 { portable_linear_2d(&x, &w) } else { x.linear(&w, None::<&Tensor>) };
            y.sum(Kind::Float).backward();
            let _ = (x.grad().zero_(), w.grad().zero_());
        });
        // On an AVX-512 host the portable product above ran the wide kernel
        // (ml::avx512_product, the AVX2 kernel's bytes); here the two kernels
        // side by side.
        if tandem::ml::avx512_product::available() {
            let kernels = (format!("{model}_{layer}_portable_avx2"), format!("{model}_{layer}_portable_avx512"));
            measure_pair((&kernels.0, &kernels.1), &fewer, extra, |_, which| {
                tandem::ml::matmul::set_wide_kernel(which == 1);
                portable_linear_2d(&x, &w).sum(Kind::Float).backward();
                let _ = (x.grad().zero_(), w.grad().zero_());
            });
            tandem::ml::matmul::set_wide_kernel(true);
        }
    }
}

fn main() {
    let mut o = parse();
    // Before any tensor: the profile's settings are read once, at first use.
    o.threads = tandem::exec::numerics::activate(o.numerics, o.threads).expect("the numerics profile");
    tch::set_num_interop_threads(1);
    type Bench = (&'static str, fn(&Opts));
    let all: [Bench; 15] = [
        ("matmul", matmul),
        ("offline", offline_step),
        ("shared_reference", offline_shared_reference),
        ("phases", step_phases),
        ("breakdown", offline_breakdown),
        ("online", online_step),
        ("sampling", sampling),
        ("winrate", winrate_shared),
        ("winrate_phases", winrate_phases),
        ("pm", pm_phases),
        ("pm_prefix", pm_prefix),
        ("sft", sft_phases),
        ("portable_product", portable_product),
        ("portable_sizes", portable_sizes),
        ("precision", precision),
    ];
    for (name, f) in all {
        if o.only.as_deref().is_some_and(|x| x != name) {
            continue;
        }
        // A bench of one profile's own machinery runs under that profile
        // only: asked for by name under another, it says so (below); in a
        // run of every bench, it is skipped, and the run goes on.
        let needs = match name {
            "portable_product" if o.numerics != Numerics::Portable => Some("--numerics portable"),
            "portable_sizes" if o.numerics == Numerics::Portable => Some("--numerics native (it compares with native)"),
            "precision" if o.numerics == Numerics::Portable => {
                Some("--numerics native (bf16 is refused under portable)")
            }
            _ => None,
        };
        if let (Some(why), None) = (needs, &o.only) {
            eprintln!("bench {name}: skipped here, it needs {why}");
            continue;
        }
        eprintln!("bench {name} ({} threads)", o.threads);
        f(&o);
    }
}
