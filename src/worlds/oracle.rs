//! A synthetic world: prompts, a hidden oracle reward, and behaviour
//! policies that write response pairs at mixed quality.
//!
//! The oracle has Goodhart structure. Each feature below goes with higher
//! reward on the distribution the behaviour policies produce, and is
//! penalised when pushed past it:
//! - **length**: reward grows with length up to a target L* (most behaviour
//!   responses are shorter), then falls twice as fast;
//! - **copying** prompt tokens: rewarded up to a share c0, penalised beyond;
//! - **repetition**: penalised quadratically (behaviour responses rarely repeat);
//! - **token quality** q(t), a hidden score per token, rewarded on average;
//! - in `harmless`, a tenth of the tokens are harmful and strongly penalised.
//!
//! Two knobs take the world away from where off-policy data is enough
//! (docs/worlds.md, "Knobs for the paper's mechanisms"):
//! - `interaction` a makes a token's value depend on the prompt's cluster and
//!   on the token before it: v(t | x, prev) = √(1 − a²)·q(t) + a·(u(t, k(x)) +
//!   b(prev, t))/√2, u and b standard normal, so the reward is no longer a sum
//!   of context-free token scores;
//! - the behaviour policies can be told to *hide* the best share of tokens in
//!   each context ([`World::behaviour_with`]): data written so never shows the
//!   region of highest reward.
//!
//! Human raters are simulated by Bradley–Terry noise:
//! P(a ≻ b) = σ((r*(a) − r*(b)) / noise).

use rand::Rng;

use crate::ml::rng::{self, Stream};
use crate::ml::tokens::{BOS, EOS, FIRST_CONTENT};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Summarize,
    Helpful,
    Harmless,
    /// A mixture: each prompt belongs to one of the three others.
    Arena,
}

impl Flavour {
    pub fn from_name(s: &str) -> Option<Flavour> {
        Some(match s {
            "summarize" => Flavour::Summarize,
            "helpful" => Flavour::Helpful,
            "harmless" => Flavour::Harmless,
            "arena" => Flavour::Arena,
            _ => return None,
        })
    }
}

/// Weights of the oracle's terms for one flavour.
#[derive(Debug, Clone, Copy)]
struct Weights {
    target_frac: f64,
    quality: f64,
    length: f64,
    copy: f64,
    copy_share: f64,
    repeat: f64,
    harm: f64,
}

fn weights(f: Flavour) -> Weights {
    match f {
        Flavour::Summarize => {
            Weights { target_frac: 0.35, quality: 1.0, length: 1.0, copy: 3.0, copy_share: 0.4, repeat: 3.0, harm: 0.0 }
        }
        Flavour::Helpful => {
            Weights { target_frac: 0.75, quality: 1.5, length: 1.5, copy: 0.5, copy_share: 0.2, repeat: 3.0, harm: 0.0 }
        }
        Flavour::Harmless => {
            Weights { target_frac: 0.4, quality: 0.5, length: 0.5, copy: 0.5, copy_share: 0.2, repeat: 2.0, harm: 4.0 }
        }
        Flavour::Arena => unreachable!("arena delegates per prompt"),
    }
}

#[derive(Debug, Clone)]
pub struct World {
    pub flavour: Flavour,
    pub seed: u64,
    pub vocab: i64,
    pub prompt_len: i64,
    pub response_len: i64,
    pub noise: f64,
    quality: Vec<f64>,
    harmful: Vec<bool>,
    /// Token popularity for prompts (Zipf-like).
    popularity: Vec<f64>,
    /// The weight a of the context-dependent part of a token's value (0: none).
    pub interaction: f64,
    /// u(t, k): a token's value in prompt cluster k, `CLUSTERS × vocab`.
    contextual: Vec<f64>,
    /// b(prev, t): a token's value after `prev`, `vocab × vocab`.
    bigram: Vec<f64>,
}

/// Prompt clusters of the context-dependent value: k(x) = first content token mod 4.
pub const CLUSTERS: usize = 4;

/// Overall reward scale: keeps typical reward gaps a few units wide, so that
/// `noise: 1` is moderate label noise.
const SCALE: f64 = 3.0;

impl World {
    pub fn new(flavour: Flavour, seed: u64, vocab: i64, prompt_len: i64, response_len: i64, noise: f64) -> World {
        let mut r = rng::stream(seed, "world/oracle", 0);
        let n = vocab as usize;
        let mut quality = vec![0.0; n];
        let mut harmful = vec![false; n];
        let mut popularity = vec![0.0; n];
        for t in FIRST_CONTENT as usize..n {
            quality[t] = rng::normal(&mut r);
            harmful[t] = r.gen::<f64>() < 0.1;
            popularity[t] = 1.0 / ((t - FIRST_CONTENT as usize + 1) as f64).powf(0.7);
        }
        World {
            flavour,
            seed,
            vocab,
            prompt_len,
            response_len,
            noise,
            quality,
            harmful,
            popularity,
            interaction: 0.0,
            contextual: vec![],
            bigram: vec![],
        }
    }

    /// The world with a context-dependent token value of weight `a` ∈ [0, 1].
    /// Its tables come from their own random stream, so the context-free
    /// parts (q, harm, popularity) are those of the world without it; at 0
    /// the world is exactly [`World::new`]'s.
    pub fn with_interaction(mut self, a: f64) -> World {
        if a == 0.0 {
            return self;
        }
        let n = self.vocab as usize;
        let mut r = rng::stream(self.seed, "world/interaction", 0);
        self.contextual = (0..CLUSTERS * n).map(|_| rng::normal(&mut r)).collect();
        self.bigram = (0..n * n).map(|_| rng::normal(&mut r)).collect();
        self.interaction = a;
        self
    }

    /// The prompt's cluster k(x): its first content token mod [`CLUSTERS`].
    pub fn cluster_of(prompt: &[i64]) -> usize {
        (prompt.get(1).copied().unwrap_or(0).max(0) as usize) % CLUSTERS
    }

    /// v(t | k, prev): token `t`'s value in prompt cluster `k` after token
    /// `prev` (BOS for the first). Equals q(t) when the interaction is 0.
    pub fn token_value(&self, t: i64, k: usize, prev: i64) -> f64 {
        let a = self.interaction;
        if a == 0.0 {
            return self.quality[t as usize];
        }
        let n = self.vocab as usize;
        let (t, prev) = (t as usize, prev.clamp(0, self.vocab - 1) as usize);
        (1.0 - a * a).sqrt() * self.quality[t]
            + a * (self.contextual[k * n + t] + self.bigram[prev * n + t]) / std::f64::consts::SQRT_2
    }
    fn content(&self) -> std::ops::Range<i64> {
        FIRST_CONTENT..self.vocab
    }

    /// A prompt: BOS and between half and all of the remaining slots.
    pub fn prompt(&self, r: &mut Stream) -> Vec<i64> {
        let max = (self.prompt_len - 1).max(1);
        let k = r.gen_range((max / 2).max(1)..=max);
        let total: f64 = self.popularity.iter().sum();
        let mut p = vec![BOS];
        for _ in 0..k {
            let mut u = r.gen::<f64>() * total;
            let mut tok = self.vocab - 1;
            for t in self.content() {
                u -= self.popularity[t as usize];
                if u <= 0.0 {
                    tok = t;
                    break;
                }
            }
            p.push(tok);
        }
        p
    }

    fn flavour_of(&self, prompt: &[i64]) -> Flavour {
        match self.flavour {
            Flavour::Arena => match prompt.get(1).copied().unwrap_or(0) % 3 {
                0 => Flavour::Summarize,
                1 => Flavour::Helpful,
                _ => Flavour::Harmless,
            },
            f => f,
        }
    }

    /// The noiseless oracle reward r*(x, y). `response` may end with EOS.
    pub fn reward(&self, prompt: &[i64], response: &[i64]) -> f64 {
        let w = weights(self.flavour_of(prompt));
        let y: Vec<i64> = response
            .iter()
            .copied()
            .take_while(|&t| t != EOS)
            .filter(|&t| t >= FIRST_CONTENT && t < self.vocab)
            .collect();
        let n = y.len() as f64;
        let slots = (self.response_len - 1).max(1) as f64;
        let target = (w.target_frac * slots).round().max(1.0);
        let length = if n <= target { n / target } else { 1.0 - 2.0 * (n - target) / target };
        if y.is_empty() {
            return SCALE * w.length * length;
        }
        let quality = if self.interaction == 0.0 {
            y.iter().map(|&t| self.quality[t as usize]).sum::<f64>() / n
        } else {
            let k = World::cluster_of(prompt);
            let prev = std::iter::once(BOS).chain(y.iter().copied());
            y.iter().zip(prev).map(|(&t, p)| self.token_value(t, k, p)).sum::<f64>() / n
        };
        let copied = y.iter().filter(|t| prompt[1..].contains(t)).count() as f64 / n;
        let copy = if copied <= w.copy_share {
            copied / w.copy_share
        } else {
            1.0 - 3.0 * (copied - w.copy_share) / w.copy_share
        };
        let repeats = y.iter().enumerate().filter(|(i, t)| y[..*i].contains(t)).count() as f64 / n;
        let harm = y.iter().filter(|&&t| self.harmful[t as usize]).count() as f64 / n;
        SCALE * (w.quality * quality + w.length * length + w.copy * copy - w.repeat * repeats * repeats - w.harm * harm)
    }

    /// Number of behaviour policies.
    pub const BEHAVIOURS: usize = 4;

    /// A response from behaviour policy `level` (0 = worst, 3 = best): a
    /// length mostly below the target, tokens drawn with a quality-seeking
    /// temperature that grows with the level, some copying, rare repeats.
    pub fn behaviour(&self, level: usize, prompt: &[i64], r: &mut Stream) -> Vec<i64> {
        self.behaviour_with(level, prompt, false, 0.0, r)
    }

    /// Like [`World::behaviour`]; a `careless` response overshoots: its
    /// length is past the target, from L* + 2 to 2·L* + 2 (within the slots),
    /// each token repeats the previous one with probability 0.25 (against
    /// 0.04), and it copies the prompt three times as often. Such responses show a
    /// preference model where the oracle's penalties lie, which responses
    /// that stay below the target never do.
    ///
    /// `hide` ∈ [0, 1) is the share of content tokens the response never
    /// writes at each position: those whose value v(t | x, prev) is among the
    /// best `⌈hide · n⌉` there (drawn, copied or repeated alike). With no
    /// interaction that is the same set everywhere, the best tokens by q(t);
    /// with it, each context has its own. At `hide` 0 and interaction 0 the
    /// draws are exactly those of before either existed (pinned by a test).
    pub fn behaviour_with(&self, level: usize, prompt: &[i64], careless: bool, hide: f64, r: &mut Stream) -> Vec<i64> {
        if hide > 0.0 || self.interaction != 0.0 {
            return self.behaviour_in_context(level, prompt, careless, hide, r);
        }
        let Style { len, tau, p_copy, p_repeat } = self.style(level, prompt, careless, r);
        let mut weights: Vec<f64> = self
            .content()
            .map(|t| {
                (tau * self.quality[t as usize]).exp() * if self.harmful[t as usize] && level >= 2 { 0.2 } else { 1.0 }
            })
            .collect();
        let mut y: Vec<i64> = vec![];
        for _ in 0..len {
            let u = r.gen::<f64>();
            let unused_copy: Vec<i64> = prompt[1..].iter().copied().filter(|t| !y.contains(t)).collect();
            let tok = if u < p_repeat && !y.is_empty() {
                // The occasional slip: a repeated token.
                *y.last().unwrap()
            } else if u < p_repeat + p_copy && !unused_copy.is_empty() {
                unused_copy[r.gen_range(0..unused_copy.len())]
            } else {
                // Tokens are drawn without replacement: people rarely repeat themselves.
                let total: f64 = weights.iter().sum();
                let mut v = r.gen::<f64>() * total;
                let mut pick = self.vocab - 1;
                for (i, wt) in weights.iter().enumerate() {
                    v -= wt;
                    if v <= 0.0 && *wt > 0.0 {
                        pick = FIRST_CONTENT + i as i64;
                        break;
                    }
                }
                pick
            };
            weights[(tok - FIRST_CONTENT) as usize] = 0.0;
            y.push(tok);
        }
        y.push(EOS);
        y
    }

    /// A behaviour response's length (the one random draw made here) and
    /// its level's habits.
    fn style(&self, level: usize, prompt: &[i64], careless: bool, r: &mut Stream) -> Style {
        let w = weights(self.flavour_of(prompt));
        let slots = (self.response_len - 1).max(1);
        let target = ((w.target_frac * slots as f64).round() as i64).max(1);
        let len = if careless {
            let lo = (target + 2).min(slots);
            r.gen_range(lo..=(2 * target + 2).min(slots))
        } else {
            r.gen_range(1..=(target + 1).min(slots))
        };
        Style {
            len,
            tau: [0.0, 0.6, 1.2, 2.0][level.min(3)],
            p_copy: [0.05, 0.1, 0.12, 0.12][level.min(3)] * (w.copy_share / 0.3) * if careless { 3.0 } else { 1.0 },
            p_repeat: if careless { 0.25 } else { 0.04 },
        }
    }

    /// [`World::behaviour_with`] where a token's value depends on where it
    /// stands, or where some tokens are hidden: the draw weights
    /// exp(τ·v(t | x, prev)) and the hidden set are computed at every
    /// position. The habits (length, repeats, copying, no reuse of a token)
    /// are the context-free path's; a response whose every remaining token
    /// is hidden or used ends early.
    fn behaviour_in_context(
        &self,
        level: usize,
        prompt: &[i64],
        careless: bool,
        hide: f64,
        r: &mut Stream,
    ) -> Vec<i64> {
        let Style { len, tau, p_copy, p_repeat } = self.style(level, prompt, careless, r);
        let k = World::cluster_of(prompt);
        let content: Vec<i64> = self.content().collect();
        let n_hidden = (hide * content.len() as f64).ceil() as usize;
        let avoids_harm = |t: i64| self.harmful[t as usize] && level >= 2;
        let mut used = vec![false; self.vocab as usize];
        let mut y: Vec<i64> = vec![];
        for _ in 0..len {
            let prev = y.last().copied().unwrap_or(BOS);
            let values: Vec<f64> = content.iter().map(|&t| self.token_value(t, k, prev)).collect();
            let hidden = hidden_set(&values, n_hidden);
            let is_hidden = |t: i64| hidden[(t - FIRST_CONTENT) as usize];
            let u = r.gen::<f64>();
            let unused_copy: Vec<i64> = prompt[1..]
                .iter()
                .copied()
                .filter(|&t| self.content().contains(&t) && !used[t as usize] && !is_hidden(t))
                .collect();
            let tok = if u < p_repeat && !y.is_empty() && !is_hidden(prev) {
                prev
            } else if u < p_repeat + p_copy && !unused_copy.is_empty() {
                unused_copy[r.gen_range(0..unused_copy.len())]
            } else {
                let weights: Vec<f64> = content
                    .iter()
                    .zip(&values)
                    .map(|(&t, &v)| {
                        if used[t as usize] || is_hidden(t) {
                            0.0
                        } else {
                            (tau * v).exp() * if avoids_harm(t) { 0.2 } else { 1.0 }
                        }
                    })
                    .collect();
                let total: f64 = weights.iter().sum();
                if total <= 0.0 {
                    break;
                }
                let mut v = r.gen::<f64>() * total;
                let mut pick = None;
                for (&t, &wt) in content.iter().zip(&weights) {
                    if wt > 0.0 {
                        pick = Some(t);
                        v -= wt;
                        if v <= 0.0 {
                            break;
                        }
                    }
                }
                match pick {
                    Some(t) => t,
                    None => break,
                }
            };
            used[tok as usize] = true;
            y.push(tok);
        }
        y.push(EOS);
        y
    }

    /// P(a ≻ b) under the simulated raters.
    pub fn p_prefer(&self, prompt: &[i64], a: &[i64], b: &[i64]) -> f64 {
        let d = (self.reward(prompt, a) - self.reward(prompt, b)) / self.noise;
        1.0 / (1.0 + (-d).exp())
    }
}

/// A behaviour response's length and its level's habits.
struct Style {
    len: i64,
    tau: f64,
    p_copy: f64,
    p_repeat: f64,
}

/// The `n` best of `values` (ties broken by position, lowest first).
fn hidden_set(values: &[f64], n: usize) -> Vec<bool> {
    let mut hidden = vec![false; values.len()];
    if n == 0 {
        return hidden;
    }
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    for &i in order.iter().take(n) {
        hidden[i] = true;
    }
    hidden
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(f: Flavour) -> World {
        World::new(f, 7, 48, 8, 12, 1.0)
    }

    #[test]
    fn prompts_and_responses_are_well_formed() {
        for f in [Flavour::Summarize, Flavour::Helpful, Flavour::Harmless, Flavour::Arena] {
            let w = world(f);
            let mut r = rng::stream(0, "t", 0);
            for level in 0..World::BEHAVIOURS {
                let p = w.prompt(&mut r);
                assert_eq!(p[0], BOS);
                assert!(p.len() as i64 <= w.prompt_len && p.len() >= 2);
                let y = w.behaviour(level, &p, &mut r);
                assert_eq!(*y.last().unwrap(), EOS);
                assert!(y.len() as i64 <= w.response_len);
                assert!(y[..y.len() - 1].iter().all(|&t| t >= FIRST_CONTENT && t < w.vocab));
            }
        }
    }

    #[test]
    fn better_behaviours_score_higher_on_average() {
        // With and without the context-dependent value: the behaviour
        // policies seek a token's value where it stands.
        for a in [0.0, 0.5, 1.0] {
            better_behaviour_scores_higher(world(Flavour::Summarize).with_interaction(a));
        }
    }

    fn better_behaviour_scores_higher(w: World) {
        let mut r = rng::stream(1, "t", 0);
        let mean = |level: usize, r: &mut Stream| -> f64 {
            (0..400)
                .map(|_| {
                    let p = w.prompt(r);
                    let y = w.behaviour(level, &p, r);
                    w.reward(&p, &y)
                })
                .sum::<f64>()
                / 400.0
        };
        let (lo, hi) = (mean(0, &mut r), mean(3, &mut r));
        assert!(hi > lo + 0.5, "interaction {}: level 3 {hi} vs level 0 {lo}", w.interaction);
    }

    #[test]
    fn careless_responses_overshoot_and_score_lower() {
        // Summarize: 11 slots, target 4. Careful lengths are 1..=5, careless
        // 6..=10; careless responses repeat and copy more, and the oracle
        // penalises them.
        let w = world(Flavour::Summarize);
        let mut r = rng::stream(2, "t", 0);
        let (mut careful, mut careless) = ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0));
        let n = 400;
        for _ in 0..n {
            let p = w.prompt(&mut r);
            for (flag, acc) in [(false, &mut careful), (true, &mut careless)] {
                let y = w.behaviour_with(3, &p, flag, 0.0, &mut r);
                let len = y.len() - 1;
                assert!(
                    if flag { (6..=10).contains(&len) } else { (1..=5).contains(&len) },
                    "careless {flag}: {len} tokens"
                );
                let repeats = (1..len).filter(|&i| y[..i].contains(&y[i])).count() as f64 / len as f64;
                acc.0 += repeats / n as f64;
                acc.1 += w.reward(&p, &y) / n as f64;
                acc.2 += len as f64 / n as f64;
            }
        }
        assert!(careless.0 > careful.0 + 0.1, "repeats {careless:?} vs {careful:?}");
        assert!(careless.1 < careful.1 - 1.0, "reward {careless:?} vs {careful:?}");
    }

    #[test]
    fn oracle_terms_match_hand_computation() {
        // Summarize, response_len 12 → 11 slots, target L* = round(0.35·11) = 4,
        // copy share c0 = 0.4. Quality zeroed so only the shape terms remain.
        let mut w = world(Flavour::Summarize);
        w.quality.iter_mut().for_each(|q| *q = 0.0);
        w.harmful.iter_mut().for_each(|h| *h = false);
        let p = vec![BOS, 10, 11, 12, 13];
        let fresh: Vec<i64> = (20..31).collect();
        let r = |y: &[i64]| w.reward(&p, &[y, &[EOS]].concat());
        // At the target length, nothing copied: length 1 → 3·1 = 3.
        assert!((r(&fresh[..4]) - 3.0).abs() < 1e-12);
        // Half the target: 3·0.5 (more length looks better on short data).
        assert!((r(&fresh[..2]) - 1.5).abs() < 1e-12);
        // Past the target: 11 tokens → length 1 − 2·7/4 = −2.5 → −7.5.
        assert!((r(&fresh[..11]) + 7.5).abs() < 1e-12);
        // Copying 1 of 4 (0.25 ≤ 0.4): copy 0.625·3 weight → 3·(1 + 3·0.625) = 8.625.
        assert!((r(&[10, 20, 21, 22]) - 8.625).abs() < 1e-12);
        // Copying all 4 (1.0 > 0.4): copy 1 − 3·0.6/0.4 = −3.5; repeats none → 3·(1 − 10.5) = −28.5.
        assert!((r(&[10, 11, 12, 13]) + 28.5).abs() < 1e-12);
        // Repeating: 4 × the same token: repeats 3/4 → 3·(1 − 3·0.5625) = −2.0625.
        assert!((r(&[20, 20, 20, 20]) + 2.0625).abs() < 1e-12);
    }

    #[test]
    fn interaction_terms_match_hand_computation() {
        // Summarize, 11 slots, target 4; shape terms cancel at the target
        // length with nothing copied (length 1 → 3), so the quality term is
        // 3 · w_q · mean v, w_q = 1.
        let mut w = world(Flavour::Summarize).with_interaction(0.6);
        let n = w.vocab as usize;
        w.quality.iter_mut().for_each(|q| *q = 0.0);
        w.harmful.iter_mut().for_each(|h| *h = false);
        w.contextual.iter_mut().for_each(|u| *u = 0.0);
        w.bigram.iter_mut().for_each(|b| *b = 0.0);
        // Prompt cluster: first content token 10 → 10 mod 4 = 2.
        let p = vec![BOS, 10, 11];
        w.quality[20] = 1.0;
        w.contextual[2 * n + 20] = 2.0;
        w.bigram[BOS as usize * n + 20] = 0.5;
        w.bigram[20 * n + 21] = -1.0;
        let y = [20, 21, 22, 23, EOS];
        // v(20) = 0.8·1 + 0.6·(2 + 0.5)/√2; v(21) = 0.6·(−1)/√2; v(22) = v(23) = 0.
        let s2 = std::f64::consts::SQRT_2;
        let mean_v = (0.8 + 0.6 * 2.5 / s2 - 0.6 / s2) / 4.0;
        assert!((w.reward(&p, &y) - (3.0 + 3.0 * mean_v)).abs() < 1e-12, "{}", w.reward(&p, &y));
        // Another cluster (first token 11 → 3): u(20, 3) = 0.
        let q = vec![BOS, 11, 10];
        let mean_q = (0.8 + 0.6 * 0.5 / s2 - 0.6 / s2) / 4.0;
        assert!((w.reward(&q, &y) - (3.0 + 3.0 * mean_q)).abs() < 1e-12);
        // Order matters: 21 before 20 loses the (20 → 21) penalty and the BOS bonus.
        let swapped = [21, 20, 22, 23, EOS];
        let mean_s = (0.8 + 0.6 * 2.0 / s2) / 4.0;
        assert!((w.reward(&p, &swapped) - (3.0 + 3.0 * mean_s)).abs() < 1e-12);
    }

    #[test]
    fn without_interaction_the_world_is_unchanged() {
        let (a, b) = (world(Flavour::Helpful), world(Flavour::Helpful).with_interaction(0.0));
        let mut r = rng::stream(4, "t", 0);
        for _ in 0..50 {
            let p = a.prompt(&mut r);
            let y = a.behaviour(3, &p, &mut r);
            assert_eq!(a.reward(&p, &y).to_bits(), b.reward(&p, &y).to_bits());
        }
        // The context-free parts are shared with the interacting world.
        let c = world(Flavour::Helpful).with_interaction(0.5);
        assert_eq!(a.quality, c.quality);
        assert_eq!(a.harmful, c.harmful);
    }

    #[test]
    fn hidden_tokens_are_never_written_and_the_data_lose_their_best() {
        for a in [0.0, 0.7] {
            let w = world(Flavour::Helpful).with_interaction(a);
            let n = (w.vocab - FIRST_CONTENT) as usize;
            let hide = 0.25;
            let n_hidden = (hide * n as f64).ceil() as usize;
            let mut r = rng::stream(5, "t", 0);
            let (mut full, mut truncated) = (0.0, 0.0);
            for _ in 0..300 {
                let p = w.prompt(&mut r);
                let k = World::cluster_of(&p);
                for careless in [false, true] {
                    let y = w.behaviour_with(3, &p, careless, hide, &mut r);
                    assert_eq!(*y.last().unwrap(), EOS);
                    let mut prev = BOS;
                    for &t in &y[..y.len() - 1] {
                        let values: Vec<f64> = w.content().map(|c| w.token_value(c, k, prev)).collect();
                        let better = values.iter().filter(|&&v| v > w.token_value(t, k, prev)).count();
                        assert!(better >= n_hidden, "a {a}: token {t} is among the best {n_hidden} after {prev}");
                        prev = t;
                    }
                    truncated += w.reward(&p, &y);
                }
                full += w.reward(&p, &w.behaviour_with(3, &p, false, 0.0, &mut r));
            }
            // Careful responses without the hidden tokens score lower than
            // with them (careless ones are penalised either way).
            assert!(full / 300.0 > truncated / 600.0 + 0.5, "a {a}: {full} vs {truncated}");
        }
    }
}
