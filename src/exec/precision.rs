//! A node's training precision (`plan::op::Precision`), switched on for the
//! thread that computes the node and off again when it ends, however it ends.
//!
//! bf16 is libtorch's autocast (src/exec/autocast.cpp) for the node's
//! device: the model's variables, their gradients and Adam's moments stay
//! float32, so an update too small for bf16's 8 significant bits still
//! lands; matrix products and attention round their inputs to bf16.

use std::os::raw::c_int;

use tch::Device;

use crate::plan::op::Precision;

/// autocast.cpp's `tandem_autocast_state`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AutocastState {
    enabled: bool,
    dtype: c_int,
    cache: bool,
}

extern "C" {
    fn tandem_autocast_get(cuda: bool) -> AutocastState;
    fn tandem_autocast_set(cuda: bool, state: AutocastState);
    fn tandem_autocast_bf16() -> c_int;
}

/// While alive, the thread computes in its precision; dropping it restores
/// the switches as they were.
#[must_use = "the precision lasts as long as the guard"]
pub struct PrecisionGuard {
    cuda: bool,
    before: Option<AutocastState>,
    /// Not Send: the switches belong to the thread that set them.
    _thread: std::marker::PhantomData<*const ()>,
}

/// Computes in `precision` on `device` until the guard is dropped.
pub fn enter(precision: Precision, device: Device) -> PrecisionGuard {
    let cuda = device.is_cuda();
    let before = match precision {
        Precision::Float32 => None,
        Precision::Bf16 => {
            // SAFETY: plain getters and setters of thread-local switches.
            let before = unsafe { tandem_autocast_get(cuda) };
            // No cache: autocast keeps the bf16 copy of each weight until the
            // switches are set again, and Adam changes the weights in place
            // between a node's steps, so a cached copy would go stale.
            let bf16 = AutocastState { enabled: true, dtype: unsafe { tandem_autocast_bf16() }, cache: false };
            unsafe { tandem_autocast_set(cuda, bf16) };
            Some(before)
        }
    };
    PrecisionGuard { cuda, before, _thread: std::marker::PhantomData }
}

impl Drop for PrecisionGuard {
    fn drop(&mut self) {
        if let Some(before) = self.before {
            // SAFETY: as in `enter`, on the thread that set them (the guard
            // is not Send).
            unsafe { tandem_autocast_set(self.cuda, before) };
        }
    }
}

/// The precision this thread computes in on `device`.
pub fn current(device: Device) -> Precision {
    // SAFETY: plain getters of thread-local switches.
    let (state, bf16) = unsafe { (tandem_autocast_get(device.is_cuda()), tandem_autocast_bf16()) };
    if state.enabled && state.dtype == bf16 {
        Precision::Bf16
    } else {
        Precision::Float32
    }
}

#[cfg(test)]
mod tests {
    use tch::{Kind, Tensor};

    use super::*;

    /// 1 + 2⁻⁹ needs 10 significant bits: float32 keeps it, bf16 (8 bits)
    /// rounds it to 1. So a product of it with 1 tells the two apart by hand.
    #[test]
    fn bf16_rounds_a_products_inputs_and_only_inside_the_guard() {
        let x = Tensor::from_slice(&[1.0f32 + 2f32.powi(-9)]).view([1, 1]);
        let one = Tensor::from_slice(&[1.0f32]).view([1, 1]);
        let product = |a: &Tensor, b: &Tensor| a.matmul(b).to_kind(Kind::Float).double_value(&[0, 0]);
        assert_eq!(product(&x, &one), 1.0 + 2f64.powi(-9));
        {
            let _bf16 = enter(Precision::Bf16, Device::Cpu);
            assert_eq!(current(Device::Cpu), Precision::Bf16);
            assert_eq!(x.matmul(&one).kind(), Kind::BFloat16);
            assert_eq!(product(&x, &one), 1.0);
            // Outside autocast's lists, float32 stays float32.
            assert_eq!((&x * &one).kind(), Kind::Float);
            assert_eq!((&x * &one).double_value(&[0, 0]), 1.0 + 2f64.powi(-9));
            // float32 precision inside bf16 changes nothing.
            let _f32 = enter(Precision::Float32, Device::Cpu);
            assert_eq!(current(Device::Cpu), Precision::Bf16);
        }
        assert_eq!(current(Device::Cpu), Precision::Float32);
        assert_eq!(product(&x, &one), 1.0 + 2f64.powi(-9));
    }

    /// The sums of a bf16 product are kept in float32: 256 products of
    /// 1 · 1 add up to 256 exactly, and with one more 1 to 257, which bf16
    /// could not hold (257 needs 9 significant bits) but its float32
    /// accumulator does before the result is rounded back to bf16 (256).
    #[test]
    fn bf16_products_round_their_result_once() {
        let _bf16 = enter(Precision::Bf16, Device::Cpu);
        let ones = Tensor::ones([1, 257], (Kind::Float, Device::Cpu));
        let dot = ones.matmul(&ones.tr());
        assert_eq!(dot.kind(), Kind::BFloat16);
        // 257 rounds to even among bf16's neighbours 256 and 258.
        assert_eq!(dot.to_kind(Kind::Float).double_value(&[0, 0]), 256.0);
    }

    #[test]
    fn gradients_of_float32_weights_stay_float32_under_bf16() {
        let w = Tensor::from_slice(&[0.5f32, -0.25]).view([2, 1]).set_requires_grad(true);
        let x = Tensor::from_slice(&[1.0f32, 2.0]).view([1, 2]);
        {
            let _bf16 = enter(Precision::Bf16, Device::Cpu);
            let y = x.matmul(&w).to_kind(Kind::Float).sum(Kind::Float);
            y.backward();
        }
        assert_eq!(w.grad().kind(), Kind::Float);
        assert_eq!(Vec::<f32>::try_from(w.grad().view([-1])).unwrap(), vec![1.0, 2.0]);
    }
}
