//! Token conventions and batching.
//!
//! Every vocabulary starts with four special tokens. A policy sequence is
//! `[prompt | response]`: the prompt starts with BOS and is padded on the
//! left to a fixed width, the response ends with EOS and is padded on the
//! right. Fixed widths (the world's maximum lengths) keep every batch the same
//! shape, which is what lets an offline replay of an online run's data stream
//! compute exactly the same numbers as the online run did.

use tch::{Device, Kind, Tensor};

pub const PAD: i64 = 0;
pub const BOS: i64 = 1;
pub const EOS: i64 = 2;
pub const SEP: i64 = 3;
/// The first ordinary token.
pub const FIRST_CONTENT: i64 = 4;

/// Left-pads prompts (each must start with BOS) to `width`.
pub fn left_pad(rows: &[Vec<i64>], width: usize) -> Tensor {
    let mut flat = Vec::with_capacity(rows.len() * width);
    for r in rows {
        let r = &r[r.len().saturating_sub(width)..];
        flat.extend(std::iter::repeat_n(PAD, width - r.len()));
        flat.extend_from_slice(r);
    }
    Tensor::from_slice(&flat).view([rows.len() as i64, width as i64])
}

/// Right-pads responses (each ending with EOS) to `width`.
pub fn right_pad(rows: &[Vec<i64>], width: usize) -> Tensor {
    let mut flat = Vec::with_capacity(rows.len() * width);
    for r in rows {
        let r = &r[..r.len().min(width)];
        flat.extend_from_slice(r);
        flat.extend(std::iter::repeat_n(PAD, width - r.len()));
    }
    Tensor::from_slice(&flat).view([rows.len() as i64, width as i64])
}

/// Rows of a 2-D int tensor without their padding.
pub fn unpad(t: &Tensor) -> Vec<Vec<i64>> {
    let (n, w) = t.size2().expect("a 2-D token tensor");
    let flat: Vec<i64> =
        Vec::try_from(t.to_device(Device::Cpu).to_kind(Kind::Int64).reshape([-1])).expect("int tensor");
    (0..n as usize)
        .map(|i| flat[i * w as usize..(i + 1) * w as usize].iter().copied().filter(|&x| x != PAD).collect())
        .collect()
}

/// A pretrained model's token ids from stored ones. Its ids are stored one
/// up (`stored = id + 1`) so that 0 stays PAD, as for tandem's own tokens:
/// batching, masks, samplers and the cache need no second convention. PAD
/// becomes id 0 here, which its mask keeps out of every result.
pub fn model_ids(stored: &Tensor) -> Tensor {
    (stored - 1).clamp_min(0)
}

/// 1 where a token is not PAD.
pub fn mask(t: &Tensor) -> Tensor {
    t.ne(PAD)
}

/// Positions 0, 1, 2, ... counted over real tokens only (left padding gets 0).
pub fn positions(mask: &Tensor) -> Tensor {
    (mask.to_kind(Kind::Int64).cumsum(1, Kind::Int64) - 1).clamp_min(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_round_trips() {
        let rows = vec![vec![BOS, 7, 8], vec![BOS, 9]];
        let l = left_pad(&rows, 4);
        assert_eq!(Vec::<i64>::try_from(l.reshape([-1])).unwrap(), vec![0, 1, 7, 8, 0, 0, 1, 9]);
        assert_eq!(unpad(&l), rows);
        let r = right_pad(&[vec![5, EOS], vec![EOS]], 3);
        assert_eq!(Vec::<i64>::try_from(r.reshape([-1])).unwrap(), vec![5, 2, 0, 2, 0, 0]);
        let p = positions(&mask(&l));
        assert_eq!(Vec::<i64>::try_from(p.reshape([-1])).unwrap(), vec![0, 0, 1, 2, 0, 0, 0, 1]);
    }
}
