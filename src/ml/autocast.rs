//! Mixed precision: libtorch's autocast (src/ml/autocast.cpp), switched on
//! and off for the current thread by guards.
//!
//! Under [`bf16`], matrix products and attention round their float32 inputs
//! to bfloat16 (8 significant bits) and keep their sums in float32; the
//! variables, their gradients and Adam's moments stay float32, so an update
//! too small for bf16 still lands. Element-wise operations follow their
//! inputs (an activation after a bf16 product is bf16); the residual stream,
//! layer norms, softmax and log-softmax stay float32. The models' output
//! layers (a policy's vocabulary logits, a preference model's score head)
//! compute under [`float32`] whatever the thread's precision: a sequence's
//! log-prob is a sum of many token log-probs, and IPO's h a difference of
//! such sums, so logits rounded to 3 significant digits would bury the
//! signal; a judge's scores rounded so would tie where they do not.

use std::os::raw::c_int;

use tch::Device;

/// autocast.cpp's `tandem_autocast_state`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    enabled: bool,
    dtype: c_int,
    cache: bool,
}

extern "C" {
    fn tandem_autocast_get(cuda: bool) -> State;
    fn tandem_autocast_set(cuda: bool, state: State);
    fn tandem_autocast_bf16() -> c_int;
}

/// While alive, the thread computes as its constructor said; dropped, the
/// switches are as they were.
#[must_use = "the precision lasts as long as the guard"]
pub struct Guard {
    cuda: bool,
    before: State,
    /// Not Send: the switches belong to the thread that set them.
    _thread: std::marker::PhantomData<*const ()>,
}

fn switch(device: Device, to: impl FnOnce(State) -> State) -> Guard {
    let cuda = device.is_cuda();
    // SAFETY: plain getters and setters of this thread's switches.
    let before = unsafe { tandem_autocast_get(cuda) };
    unsafe { tandem_autocast_set(cuda, to(before)) };
    Guard { cuda, before, _thread: std::marker::PhantomData }
}

/// Mixed precision with bf16 on `device` until the guard is dropped.
pub fn bf16(device: Device) -> Guard {
    // SAFETY: returns a constant.
    let dtype = unsafe { tandem_autocast_bf16() };
    // No cache: autocast would keep each weight's bf16 copy until the
    // switches are set again, and Adam changes weights in place between a
    // node's steps, so a cached copy would go stale.
    switch(device, |_| State { enabled: true, dtype, cache: false })
}

/// Plain float32 on `device` until the guard is dropped, whatever the
/// thread's precision was.
pub fn float32(device: Device) -> Guard {
    switch(device, |s| State { enabled: false, ..s })
}

impl Drop for Guard {
    fn drop(&mut self) {
        // SAFETY: as in `switch`, on the thread that set them (Guard is not Send).
        unsafe { tandem_autocast_set(self.cuda, self.before) };
    }
}

/// Whether this thread computes in bf16 on `device`.
pub fn is_bf16(device: Device) -> bool {
    // SAFETY: plain getters of this thread's switches.
    let (state, bf16) = unsafe { (tandem_autocast_get(device.is_cuda()), tandem_autocast_bf16()) };
    state.enabled && state.dtype == bf16
}

#[cfg(test)]
mod tests {
    use tch::{Kind, Tensor};

    use super::*;

    /// 1 + 2⁻⁹ needs 10 significant bits: float32 keeps it, bf16 (8 bits)
    /// rounds it to 1. So a product of it with 1 tells the two apart by hand.
    #[test]
    fn bf16_rounds_a_products_inputs_and_only_inside_its_guard() {
        let x = Tensor::from_slice(&[1.0f32 + 2f32.powi(-9)]).view([1, 1]);
        let one = Tensor::from_slice(&[1.0f32]).view([1, 1]);
        let product = |a: &Tensor, b: &Tensor| a.matmul(b).to_kind(Kind::Float).double_value(&[0, 0]);
        let exact = 1.0 + 2f64.powi(-9);
        assert_eq!(product(&x, &one), exact);
        {
            let _bf16 = bf16(Device::Cpu);
            assert!(is_bf16(Device::Cpu));
            assert_eq!(x.matmul(&one).kind(), Kind::BFloat16);
            assert_eq!(product(&x, &one), 1.0);
            // Off autocast's lists, float32 stays float32.
            assert_eq!((&x * &one).kind(), Kind::Float);
            assert_eq!((&x * &one).double_value(&[0, 0]), exact);
            {
                // An output layer inside a bf16 node: float32 again.
                let _f32 = float32(Device::Cpu);
                assert!(!is_bf16(Device::Cpu));
                assert_eq!(product(&x, &one), exact);
            }
            assert!(is_bf16(Device::Cpu), "leaving float32 gives bf16 back");
            assert_eq!(product(&x, &one), 1.0);
        }
        assert!(!is_bf16(Device::Cpu));
        assert_eq!(product(&x, &one), exact);
    }

    /// A bf16 product keeps its sum in float32 and rounds it once: 258 ones
    /// sum to 258, which bf16 holds (its neighbours at 256 are 2 apart). A
    /// sum kept in bf16 would stick at 256, since 256 + 1 rounds to even.
    #[test]
    fn bf16_products_sum_in_float32() {
        let _bf16 = bf16(Device::Cpu);
        let ones = Tensor::ones([1, 258], (Kind::Float, Device::Cpu));
        let dot = ones.matmul(&ones.tr());
        assert_eq!(dot.kind(), Kind::BFloat16);
        assert_eq!(dot.to_kind(Kind::Float).double_value(&[0, 0]), 258.0);
    }

    #[test]
    fn gradients_of_float32_weights_stay_float32_under_bf16() {
        let w = Tensor::from_slice(&[0.5f32, -0.25]).view([2, 1]).set_requires_grad(true);
        let x = Tensor::from_slice(&[1.0f32, 2.0]).view([1, 2]);
        {
            let _bf16 = bf16(Device::Cpu);
            let y = x.matmul(&w).to_kind(Kind::Float).sum(Kind::Float);
            y.backward();
        }
        assert_eq!(w.grad().kind(), Kind::Float);
        assert_eq!(Vec::<f32>::try_from(w.grad().view([-1])).unwrap(), vec![1.0, 2.0]);
    }
}
