//! The square root of a float32 tensor with one right answer on every CPU.
//!
//! libtorch hands a float32 `sqrt` to MKL's vector math (`vsSqrt`), whose
//! result is not the correctly rounded one and depends on the processor:
//! measured on 100,000 values in [0.001, 9], an Intel Xeon with AVX-512
//! differs from the correctly rounded root in 14,946 of them under
//! `MKL_CBWR=COMPATIBLE`, an emulated AMD EPYC (qemu, `-cpu EPYC-Rome`) in
//! 13,135 others, and `MKL_CBWR=AUTO` changes the count again. Adam takes a
//! root of its second moment at every step, so under `portable` that was
//! enough to make an AVX-512 Intel host train other weights than an AMD one
//! (docs/numerics.md, "Measured across hosts").
//!
//! IEEE 754 defines the square root as correctly rounded, and every x86-64
//! `sqrtss`/`sqrtps` computes exactly that, so Rust's `f32::sqrt` over the
//! tensor's elements gives the same bytes everywhere. The `portable` profile
//! takes roots here; the others keep libtorch's.

use tch::{Device, Kind, Tensor};

use crate::ml::matmul::portable_product;

/// √t element-wise: correctly rounded under `portable` (for float32 CPU
/// tensors), libtorch's own otherwise. Not differentiable: Adam's update,
/// its one caller on a training path, runs without gradients.
pub fn sqrt(t: &Tensor) -> Tensor {
    if !(portable_product() && t.kind() == Kind::Float && t.device() == Device::Cpu) {
        return t.sqrt();
    }
    correctly_rounded(t)
}

/// The correctly rounded root of every element of a float32 CPU tensor.
pub fn correctly_rounded(t: &Tensor) -> Tensor {
    assert!(t.kind() == Kind::Float && t.device() == Device::Cpu, "correctly_rounded takes float32 CPU tensors");
    // A fresh contiguous copy: the loop below writes it in place.
    let out = t.detach().contiguous().copy();
    let n = out.numel();
    if n > 0 {
        // SAFETY: `out` is a contiguous float32 CPU tensor of `n` elements
        // that only this function holds.
        let values = unsafe { std::slice::from_raw_parts_mut(out.data_ptr() as *mut f32, n) };
        for x in values {
            *x = x.sqrt();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_the_correctly_rounded_ones() {
        // Hand-checked: √4 = 2, √2 rounds to 0x3FB504F3, √0 = 0, √−0 = −0,
        // √−1 and √NaN are NaN, √∞ = ∞; the smallest subnormal 2⁻¹⁴⁹ has
        // root 2⁻⁷⁴·√2, which rounds to 0x1A3504F3.
        let x = Tensor::from_slice(&[4.0f32, 2.0, 0.0, -0.0, -1.0, f32::NAN, f32::INFINITY, f32::from_bits(1)]);
        let r: Vec<f32> = Vec::try_from(&correctly_rounded(&x)).unwrap();
        assert_eq!(r[0], 2.0);
        assert_eq!(r[1].to_bits(), 0x3FB5_04F3);
        assert_eq!(r[2].to_bits(), 0);
        assert_eq!(r[3].to_bits(), (-0.0f32).to_bits());
        assert!(r[4].is_nan() && r[5].is_nan());
        assert_eq!(r[6], f32::INFINITY);
        assert_eq!(r[7].to_bits(), 0x1A35_04F3);
    }

    #[test]
    fn every_root_agrees_with_the_double_precision_root_rounded_once() {
        // For float32, √ in float64 rounded to float32 is correctly rounded
        // (53 ≥ 2·24 + 2 bits), so it is an independent reference.
        let values: Vec<f32> = (0..20_000).map(|i| 1e-3 + i as f32 * 4.5e-4).collect();
        let x = Tensor::from_slice(&values).view([100, 200]).transpose(0, 1);
        let ours: Vec<f32> = Vec::try_from(&correctly_rounded(&x).reshape([-1])).unwrap();
        let x_flat: Vec<f32> = Vec::try_from(&x.contiguous().reshape([-1])).unwrap();
        for (r, v) in ours.iter().zip(&x_flat) {
            assert_eq!(r.to_bits(), ((*v as f64).sqrt() as f32).to_bits(), "√{v}");
        }
        assert_eq!(correctly_rounded(&x).size(), vec![200, 100]);
    }
}
