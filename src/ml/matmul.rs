//! The linear layers of tandem's own models, and the matrix product the
//! `portable` numerics profile computes them with.
//!
//! Under `portable` every host must give the same bytes. libtorch sends a
//! float32 product to MKL, whose only vendor-neutral branch
//! (`MKL_CBWR=COMPATIBLE`) is SSE2 code at about a third of the host's rate
//! (bench/NOTES.md §4); it was most of a step's time under `portable`. So the
//! portable profile computes these products itself: `matrixmultiply`'s
//! AVX2+FMA kernel, the same on every host with AVX2 and FMA (the profile
//! refuses hosts without), with block sizes fixed when it is compiled (build.rs
//! refuses to build with them overridden) and no threads, so the order of every
//! sum is fixed. Its autograd node is the C++ glue in `portable_mm.cpp`.
//!
//! Everything else (attention's fused kernel, element-wise work) stays with
//! ATen, pinned by the profile's settings. The `native` and `cuda` profiles use
//! libtorch's own product; so does any tensor that is not float32 on the CPU.
use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, Ordering};

use tch::{nn, Device, Kind, Tensor};

static PORTABLE: AtomicBool = AtomicBool::new(false);

/// Whether this process computes linear layers with the portable product.
/// Set once by the numerics profile, before any model exists.
pub fn set_portable_product(on: bool) {
    PORTABLE.store(on, Ordering::SeqCst);
}

pub fn portable_product() -> bool {
    PORTABLE.load(Ordering::Relaxed)
}

type Sgemm = extern "C" fn(i64, i64, i64, *const f32, i64, i64, *const f32, i64, i64, *mut f32, i64, i64);

extern "C" {
    fn tandem_portable_linear(
        x: *const torch_sys::C_tensor,
        w: *const torch_sys::C_tensor,
        sgemm: Sgemm,
    ) -> *mut torch_sys::C_tensor;
    fn tandem_portable_matmul(
        a: *const torch_sys::C_tensor,
        b: *const torch_sys::C_tensor,
        sgemm: Sgemm,
    ) -> *mut torch_sys::C_tensor;
    fn tandem_portable_error() -> *const std::os::raw::c_char;
}

static WIDE: AtomicBool = AtomicBool::new(true);

/// Whether the portable product may use the AVX-512 kernel where the host
/// has one (it computes the same bytes as the AVX2 kernel,
/// `ml::avx512_product`); off only to time or test the two side by side.
pub fn set_wide_kernel(on: bool) {
    WIDE.store(on, Ordering::SeqCst);
}

/// Which kernel the portable product runs on this host: `avx512` or `avx2`.
pub fn portable_kernel() -> &'static str {
    if WIDE.load(Ordering::Relaxed) && crate::ml::avx512_product::available() {
        "avx512"
    } else {
        "avx2"
    }
}

/// c[m, n] = a[m, k] · b[k, n], any strides (in elements). Called by the
/// C++ node, with sizes and pointers it has checked against its tensors.
extern "C" fn sgemm(
    m: i64,
    k: i64,
    n: i64,
    a: *const f32,
    rsa: i64,
    csa: i64,
    b: *const f32,
    rsb: i64,
    csb: i64,
    c: *mut f32,
    rsc: i64,
    csc: i64,
) {
    #[cfg(target_arch = "x86_64")]
    if portable_kernel() == "avx512" {
        // SAFETY: as below, and the host has AVX-512F.
        unsafe {
            crate::ml::avx512_product::sgemm(
                m as usize,
                k as usize,
                n as usize,
                a,
                (rsa as isize, csa as isize),
                b,
                (rsb as isize, csb as isize),
                c,
                (rsc as isize, csc as isize),
            );
        }
        return;
    }
    // SAFETY: the node passes the data pointers and strides of live float32
    // tensors of these sizes, and c is a fresh tensor no one else reads.
    unsafe {
        matrixmultiply::sgemm(
            m as usize,
            k as usize,
            n as usize,
            1.0,
            a,
            rsa as isize,
            csa as isize,
            b,
            rsb as isize,
            csb as isize,
            0.0,
            c,
            rsc as isize,
            csc as isize,
        );
    }
}

/// The tensor a C++ node returned, or its error as a panic: tch's own ops
/// panic the same way on what can only be a bug (shapes the model built).
///
/// SAFETY: `out` is null or a new tensor that nothing else owns.
unsafe fn owned(out: *mut torch_sys::C_tensor) -> Tensor {
    if out.is_null() {
        let msg = CStr::from_ptr(tandem_portable_error()).to_string_lossy();
        panic!("portable matrix product: {msg}");
    }
    Tensor::from_ptr(out)
}

/// x [N, in] · w [out, in]ᵀ through the portable product, differentiable in
/// both.
pub fn portable_linear_2d(x: &Tensor, w: &Tensor) -> Tensor {
    // SAFETY: both pointers are live tensors for the call.
    unsafe { owned(tandem_portable_linear(x.as_ptr(), w.as_ptr(), sgemm)) }
}

/// a [..., m, k] · b [..., k, n] (the same leading sizes, no broadcasting)
/// through the portable product, differentiable in both.
pub fn portable_matmul(a: &Tensor, b: &Tensor) -> Tensor {
    // SAFETY: both pointers are live tensors for the call.
    unsafe { owned(tandem_portable_matmul(a.as_ptr(), b.as_ptr(), sgemm)) }
}

fn portable_for(tensors: &[&Tensor]) -> bool {
    portable_product() && tensors.iter().all(|t| t.kind() == Kind::Float && t.device() == Device::Cpu)
}

/// Scaled dot-product attention, q [B, H, T, d] over k, v [B, H, S, d], where
/// `mask` (broadcast to [B, H, T, S]) is true for the keys a query may see:
/// what `scaled_dot_product_attention` computes. Under `portable` it is
/// written out (softmax(q kᵀ / √d) v) so that its two products are the
/// portable one: libtorch's fused kernel multiplies with MKL.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor) -> Tensor {
    if !portable_for(&[q, k, v]) {
        return Tensor::scaled_dot_product_attention(q, k, v, Some(mask), 0.0, false, None, false);
    }
    portable_attention(q, k, v, mask)
}

/// [`attention`] written out with the portable product, whatever the profile.
pub fn portable_attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor) -> Tensor {
    let scale = 1.0 / (*q.size().last().expect("[B, H, T, d]") as f64).sqrt();
    let scores = portable_matmul(q, &k.transpose(-2, -1)) * scale;
    let weights = scores.masked_fill(&mask.logical_not(), f64::NEG_INFINITY).softmax(-1, Kind::Float);
    portable_matmul(&weights, v)
}

/// x [..., in] · wᵀ + b: what `Tensor::linear` computes, through the portable
/// product where the profile asks for it.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
    if !portable_for(&[x, w]) {
        return x.linear(w, b);
    }
    let mut shape = x.size();
    let inner = *shape.last().expect("a linear layer's input has a feature dimension");
    let y = portable_linear_2d(&x.reshape([-1, inner]), w);
    *shape.last_mut().expect("checked above") = w.size()[0];
    let y = y.reshape(shape.as_slice());
    match b {
        Some(b) => y + b,
        None => y,
    }
}

/// A linear layer: tch's parameters and initialisation (so a checkpoint's
/// names and a model's first weights are what `nn::linear` makes), computed
/// by [`linear`].
#[derive(Debug)]
pub struct Linear(pub nn::Linear);

pub fn linear_layer<'a, T: std::borrow::Borrow<nn::Path<'a>>>(
    vs: T,
    in_dim: i64,
    out_dim: i64,
    config: nn::LinearConfig,
) -> Linear {
    Linear(nn::linear(vs, in_dim, out_dim, config))
}

impl nn::Module for Linear {
    fn forward(&self, xs: &Tensor) -> Tensor {
        linear(xs, &self.0.ws, self.0.bs.as_ref())
    }
}
