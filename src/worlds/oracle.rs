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
}

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
        World { flavour, seed, vocab, prompt_len, response_len, noise, quality, harmful, popularity }
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
        let quality = y.iter().map(|&t| self.quality[t as usize]).sum::<f64>() / n;
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
        self.behaviour_with(level, prompt, false, r)
    }

    /// Like [`World::behaviour`]; a `careless` response overshoots: its
    /// length is past the target, from L* + 2 to 2·L* + 2 (within the slots),
    /// each token repeats the previous one with probability 0.25 (against
    /// 0.04), and it copies the prompt three times as often. Such responses show a
    /// preference model where the oracle's penalties lie, which responses
    /// that stay below the target never do.
    pub fn behaviour_with(&self, level: usize, prompt: &[i64], careless: bool, r: &mut Stream) -> Vec<i64> {
        let w = weights(self.flavour_of(prompt));
        let slots = (self.response_len - 1).max(1);
        let target = ((w.target_frac * slots as f64).round() as i64).max(1);
        let len = if careless {
            let lo = (target + 2).min(slots);
            r.gen_range(lo..=(2 * target + 2).min(slots))
        } else {
            r.gen_range(1..=(target + 1).min(slots))
        };
        let tau = [0.0, 0.6, 1.2, 2.0][level.min(3)];
        let p_copy = [0.05, 0.1, 0.12, 0.12][level.min(3)] * (w.copy_share / 0.3) * if careless { 3.0 } else { 1.0 };
        let p_repeat = if careless { 0.25 } else { 0.04 };
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

    /// P(a ≻ b) under the simulated raters.
    pub fn p_prefer(&self, prompt: &[i64], a: &[i64], b: &[i64]) -> f64 {
        let d = (self.reward(prompt, a) - self.reward(prompt, b)) / self.noise;
        1.0 / (1.0 + (-d).exp())
    }
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
        let w = world(Flavour::Summarize);
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
        assert!(hi > lo + 0.5, "level 3 {hi} vs level 0 {lo}");
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
                let y = w.behaviour_with(3, &p, flag, &mut r);
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
}
