//! Where a training step's pairs come from.
//!
//! Every choice is a function of (seed, step), so a run resumed at step k
//! draws exactly the batches an uninterrupted run would have drawn.
//!
//! - `offline`: the dataset in epochs; each epoch is a seeded permutation.
//! - `online`: prompts drawn from the prompt pool, two fresh samples from the
//!   current policy, labelled by the judge; each labelled batch is appended,
//!   in order, to the run's data stream D_online.
//! - `replay`: a stored D_online consumed in order, after a shuffle whose
//!   strength is `shuffle` ∈ [0, 1]: the stream of N pairs is cut into
//!   consecutive windows of W = round(N^shuffle) pairs and each window is
//!   permuted uniformly. W = 1 at 0 (the exact online order) and W = N at 1
//!   (a uniform shuffle of the whole stream); in between, a pair moves at most
//!   W − 1 places, and W grows geometrically with the level, matching the
//!   paper's observation that small amounts of shuffling matter little.

use rand::Rng;
use tch::{Kind, Tensor};

use crate::ml::data::Pairs;
use crate::ml::rng;

/// The order in which a replay consumes a stream of `n` pairs.
pub fn replay_order(n: usize, shuffle: f64, seed: u64) -> Vec<usize> {
    let w = window(n, shuffle);
    let mut order: Vec<usize> = Vec::with_capacity(n);
    let mut start = 0;
    let mut block = 0u64;
    while start < n {
        let end = (start + w).min(n);
        let perm = rng::permutation(&mut rng::stream(seed, "replay/window", block), end - start);
        order.extend(perm.into_iter().map(|i| start + i));
        start = end;
        block += 1;
    }
    order
}

/// The shuffle window for a stream of `n` pairs at level `shuffle`.
pub fn window(n: usize, shuffle: f64) -> usize {
    if n <= 1 || shuffle <= 0.0 {
        return 1;
    }
    ((n as f64).powf(shuffle.min(1.0)).round() as usize).clamp(1, n)
}

/// Indices of the offline batch at `step`: epoch by epoch, each a seeded
/// permutation of the dataset.
pub fn offline_indices(n: usize, batch: usize, step: u64, seed: u64) -> Vec<i64> {
    let mut out = Vec::with_capacity(batch);
    let mut pos = step as usize * batch;
    let mut epoch_cache: Option<(usize, Vec<usize>)> = None;
    while out.len() < batch {
        let epoch = pos / n;
        if epoch_cache.as_ref().map(|(e, _)| *e) != Some(epoch) {
            epoch_cache = Some((epoch, rng::permutation(&mut rng::stream(seed, "offline/epoch", epoch as u64), n)));
        }
        out.push(epoch_cache.as_ref().unwrap().1[pos % n] as i64);
        pos += 1;
    }
    out
}

/// `batch` prompt indices from a pool of `n`, drawn with replacement.
pub fn prompt_indices(n: usize, batch: usize, step: u64, seed: u64) -> Vec<i64> {
    let mut r = rng::stream(seed, "online/prompts", step);
    (0..batch).map(|_| r.gen_range(0..n) as i64).collect()
}

/// Appends step and batch-index columns to a labelled batch of a stream.
pub fn tag_stream_batch(mut batch: Pairs, step: i64) -> Pairs {
    let b = batch.len();
    batch.columns.insert("step".into(), Tensor::full([b], step, (Kind::Int64, tch::Device::Cpu)));
    batch.columns.insert("batch".into(), Tensor::arange(b, (Kind::Int64, tch::Device::Cpu)));
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_levels() {
        assert_eq!(replay_order(10, 0.0, 1), (0..10).collect::<Vec<_>>());
        assert_eq!(window(10_000, 0.5), 100);
        assert_eq!(window(10_000, 1.0), 10_000);
        let o = replay_order(1000, 0.5, 3);
        // Windows of round(1000^0.5) = 32: every pair stays inside its window.
        for (i, &j) in o.iter().enumerate() {
            assert_eq!(i / 32, j / 32);
        }
        let full = replay_order(1000, 1.0, 3);
        let mut sorted = full.clone();
        sorted.sort();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_ne!(full, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn offline_batches_cover_each_epoch_once() {
        let n = 10;
        let mut seen: Vec<i64> = (0..5).flat_map(|s| offline_indices(n, 4, s, 9)).collect();
        // 5 steps × 4 = 20 = two epochs: each index exactly twice.
        seen.sort();
        assert_eq!(seen, (0..10).flat_map(|i| [i, i]).collect::<Vec<i64>>());
        // The same step always gives the same batch.
        assert_eq!(offline_indices(n, 4, 3, 9), offline_indices(n, 4, 3, 9));
    }
}
