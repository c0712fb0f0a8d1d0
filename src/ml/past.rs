//! What a trunk has read so far: every layer's keys and values, for
//! tandem's own trunk (`KvCache`) or a pretrained model (`hf::Cache` and the
//! mask of every key, which a pretrained trunk takes whole at each call).
//!
//! Policies continue a prompt's pass with responses and sampled tokens, and
//! a pooled preference model continues one with each response it scores;
//! both read the same stored token ids (`tokens::model_ids` says how a
//! pretrained model's ids are stored).

use tch::{Kind, Tensor};

use crate::ml::hf::{Cache, Pretrained};
use crate::ml::tokens;
use crate::ml::transformer::KvCache;

pub enum Past {
    Own(KvCache),
    Pretrained { cache: Cache, key_mask: Tensor },
}

impl Past {
    /// The past of `n` copies of the batch, copy j of row i at row j·B + i.
    pub fn repeat(&self, n: usize) -> Past {
        match self {
            Past::Own(c) => Past::Own(c.repeat(n)),
            Past::Pretrained { cache, key_mask } => {
                Past::Pretrained { cache: cache.repeat(n), key_mask: key_mask.repeat([n as i64, 1]) }
            }
        }
    }

    /// The past as named tensors (`key_mask`, `k0`, `v0`, ...), contiguous,
    /// to be kept.
    pub fn to_named(&self, prefix: &str) -> Vec<(String, Tensor)> {
        match self {
            Past::Own(c) => c.to_named(prefix),
            Past::Pretrained { cache, key_mask } => {
                let mut out = vec![(format!("{prefix}key_mask"), key_mask.contiguous())];
                for (i, (k, v)) in cache.layers.iter().enumerate() {
                    out.push((format!("{prefix}k{i}"), k.contiguous()));
                    out.push((format!("{prefix}v{i}"), v.contiguous()));
                }
                out
            }
        }
    }

    /// A past of `layers` layers from [`Past::to_named`]'s tensors (for a
    /// pretrained trunk if `pretrained`), or None if one is missing.
    pub fn from_named(
        get: impl Fn(&str) -> Option<Tensor>,
        prefix: &str,
        layers: i64,
        pretrained: bool,
    ) -> Option<Past> {
        if !pretrained {
            return KvCache::from_named(get, prefix, layers).map(Past::Own);
        }
        let key_mask = get(&format!("{prefix}key_mask"))?;
        let layers = (0..layers)
            .map(|i| Some((get(&format!("{prefix}k{i}"))?, get(&format!("{prefix}v{i}"))?)))
            .collect::<Option<Vec<_>>>()?;
        Some(Past::Pretrained { cache: Cache { layers }, key_mask })
    }
}

/// A pretrained model's hidden states [B, T, D] of stored ids `seq` (1 in
/// `mask` for real tokens) over the whole sequence.
pub fn pretrained_hidden(p: &Pretrained, seq: &Tensor, mask: &Tensor) -> Tensor {
    p.hidden(&tokens::model_ids(seq), &tokens::positions(mask), mask, None)
}

/// Like [`pretrained_hidden`], keeping every layer's keys and values.
pub fn pretrained_prefill(p: &Pretrained, seq: &Tensor, mask: &Tensor) -> (Tensor, Past) {
    let mut cache = Cache::default();
    let h = p.hidden(&tokens::model_ids(seq), &tokens::positions(mask), mask, Some(&mut cache));
    (h, Past::Pretrained { cache, key_mask: mask.to_kind(Kind::Bool) })
}

/// Stored ids `seq` [B, T] (PAD allowed, `mask` says which are real)
/// continuing a pretrained `past` at `positions`: hidden [B, T, D].
pub fn pretrained_extend(p: &Pretrained, seq: &Tensor, positions: &Tensor, mask: &Tensor, past: &mut Past) -> Tensor {
    let Past::Pretrained { cache, key_mask } = past else { unreachable!("a pretrained trunk continues its own past") };
    *key_mask = Tensor::cat(&[&*key_mask, &mask.to_kind(Kind::Bool)], 1);
    p.hidden(&tokens::model_ids(seq), positions, key_mask, Some(cache))
}
