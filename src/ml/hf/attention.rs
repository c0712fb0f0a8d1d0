//! What both families share: causal attention over a key mask with an
//! optional cache of past keys and values.

use tch::{Kind, Tensor};

/// Keys and values of every layer, [B, kv heads, positions so far, head dim].
#[derive(Default)]
pub struct Cache {
    pub layers: Vec<(Tensor, Tensor)>,
}

impl Cache {
    /// Positions already held.
    pub fn len(&self) -> i64 {
        self.layers.first().map(|(k, _)| k.size()[2]).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cache for `n` copies of the batch, copy j of row i at row j·B + i.
    pub fn repeat(&self, n: usize) -> Cache {
        let rep = |t: &Tensor| t.repeat([n as i64, 1, 1, 1]);
        Cache { layers: self.layers.iter().map(|(k, v)| (rep(k), rep(v))).collect() }
    }
}

/// Appends this layer's new keys and values to the cache (if any) and
/// returns all of them.
pub fn remember(cache: Option<&mut Cache>, layer: usize, k: Tensor, v: Tensor) -> (Tensor, Tensor) {
    let Some(cache) = cache else { return (k, v) };
    if cache.layers.len() <= layer {
        cache.layers.push((k.shallow_clone(), v.shallow_clone()));
        return (k, v);
    }
    let (pk, pv) = &cache.layers[layer];
    let all = (Tensor::cat(&[pk, &k], 2), Tensor::cat(&[pv, &v], 2));
    cache.layers[layer] = (all.0.shallow_clone(), all.1.shallow_clone());
    all
}

/// Which keys each query may read: [B, 1, Tq, Tk], true where key j is real
/// (`key_mask`, [B, Tk]) and not after the query (the Tq queries are the last
/// Tq of the Tk positions).
pub fn allowed(key_mask: &Tensor, tq: i64) -> Tensor {
    let tk = key_mask.size()[1];
    let device = key_mask.device();
    let q = Tensor::arange_start(tk - tq, tk, (Kind::Int64, device)).unsqueeze(1);
    let k = Tensor::arange(tk, (Kind::Int64, device)).unsqueeze(0);
    let causal = k.le_tensor(&q); // [Tq, Tk]
    causal.unsqueeze(0).unsqueeze(0).logical_and(&key_mask.to_kind(Kind::Bool).unsqueeze(1).unsqueeze(1))
}

/// Scaled dot-product attention. q [B, H, Tq, D]; k, v [B, Hkv, Tk, D] with
/// H a multiple of Hkv (grouped-query: each key/value head serves H/Hkv
/// query heads). Returns [B, Tq, H·D]. A query with no key it may read
/// (a padding position) gets a uniform average, finite and never used.
pub fn attend(q: &Tensor, k: &Tensor, v: &Tensor, allowed: &Tensor) -> Tensor {
    let (b, h, tq, d) = q.size4().expect("q is [B, H, T, D]");
    let group = h / k.size()[1];
    let (k, v) = if group > 1 {
        (k.repeat_interleave_self_int(group, Some(1), None), v.repeat_interleave_self_int(group, Some(1), None))
    } else {
        (k.shallow_clone(), v.shallow_clone())
    };
    // Scores are masked and normalised in float32 even when the product ran
    // in bf16 (autocast): float32's lowest value, the mask's fill, is beyond
    // bf16's range (libtorch refuses to fill a bf16 tensor with it), and −∞
    // instead would turn the padding rows' uniform average into NaN.
    let scores = q.matmul(&k.transpose(-2, -1)).to_kind(Kind::Float) / (d as f64).sqrt();
    let scores = scores.masked_fill(&allowed.logical_not(), f64::from(f32::MIN));
    let weights = scores.softmax(-1, Kind::Float);
    weights.matmul(&v).transpose(1, 2).contiguous().view([b, tq, h * d])
}
