//! Putting a numerics profile into effect, and describing the host.
//!
//! libtorch reads `ATEN_CPU_CAPABILITY` (which vectorised kernels ATen
//! dispatches to) and MKL reads `MKL_CBWR` (which code branch its BLAS runs)
//! once, the first time they compute. [`activate`] therefore runs before any
//! tensor is made: it sets them in this process's environment, pins the
//! intra-op thread count, and remembers the profile, so the executor can
//! refuse a node keyed under another one. `tandem env` prints a fingerprint
//! of reference computations under the active profile; the tests compare
//! fingerprints across environments to show the settings took effect.
//!
//! Measured on an AVX2-only AMD host (tests/numerics.rs): a matmul's bytes
//! change with `MKL_CBWR` (COMPATIBLE against AUTO), and `MKL_CBWR=AVX2` is
//! silently AUTO there, as MKL documents for non-Intel processors: only
//! COMPATIBLE pins MKL across vendors. `ATEN_CPU_CAPABILITY=default` changes
//! exp, tanh, softmax, layer norm and the matmul.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::plan::op::Numerics;

/// The profile this process computes under, once activated.
static ACTIVE: OnceLock<Numerics> = OnceLock::new();

/// The settings `portable` pins, as (variable, value).
pub const PORTABLE_ENV: [(&str, &str); 2] = [("ATEN_CPU_CAPABILITY", "avx2"), ("MKL_CBWR", "COMPATIBLE,STRICT")];

/// cuBLAS's deterministic workspace (libtorch's deterministic mode needs it).
pub const CUDA_ENV: [(&str, &str); 1] = [("CUBLAS_WORKSPACE_CONFIG", ":4096:8")];

/// Puts `numerics` into effect for this process. Call before any tensor
/// exists: a second call with the same profile is a no-op, with another an
/// error. `threads` is the intra-op thread count asked for; `portable`
/// computes each node on one thread whatever is asked (more threads go to
/// more nodes at once), and returns the count in force.
pub fn activate(numerics: Numerics, threads: i32) -> Result<i32, String> {
    if let Some(active) = ACTIVE.get() {
        return if *active == numerics {
            Ok(tch::get_num_threads())
        } else {
            Err(format!("this process computes under `{}`, not `{}`", active.name(), numerics.name()))
        };
    }
    let intra = match numerics {
        Numerics::Portable => {
            let libtorch = libtorch_version();
            if !is_portable_libtorch(&libtorch) {
                return Err(format!(
                    "the `portable` profile (keys say `{}`) is defined on libtorch {PORTABLE_LIBTORCH}, and this process \
                     runs libtorch {libtorch}: another release computes other bytes (2.11's gradient of layer norm \
                     with GELU differs from 2.13's), which would land under the same keys. Run on libtorch \
                     {PORTABLE_LIBTORCH}, or use `--numerics native`, whose results are this host's own",
                    numerics.key_name()
                ));
            }
            if !host_has_avx2() {
                return Err("the `portable` profile needs a CPU with AVX2 and FMA (x86-64-v3); this one has none: \
                            use `--numerics native`, whose results are this host's own"
                    .into());
            }
            for (k, v) in PORTABLE_ENV {
                set_env(k, v);
            }
            crate::ml::matmul::set_portable_product(true);
            1
        }
        Numerics::Native => threads.max(1),
        Numerics::Cuda => {
            for (k, v) in CUDA_ENV {
                set_env(k, v);
            }
            let backend = crate::exec::cuda_backend::load()
                .map_err(|e| format!("the `cuda` profile needs libtorch's CUDA backend: {e}"))?;
            set_deterministic(true);
            if !tch::Cuda::is_available() {
                return Err(format!(
                    "the `cuda` profile needs a GPU: libtorch's CUDA backend is loaded ({}), but {} \
                     (`tandem env` shows what libtorch sees)",
                    backend.display(),
                    why_no_gpu()
                ));
            }
            threads.max(1)
        }
    };
    tch::set_num_threads(intra);
    let _ = ACTIVE.set(numerics);
    Ok(intra)
}

/// The device a profile computes on: the first GPU under `cuda`, else the
/// CPU.
pub fn device(numerics: Numerics) -> tch::Device {
    if numerics == Numerics::Cuda {
        tch::Device::Cuda(0)
    } else {
        tch::Device::Cpu
    }
}

/// libtorch's own reason for having no GPU (no driver, no device), in its
/// first line: what a user needs to fix it.
fn why_no_gpu() -> String {
    match tch::Tensor::f_zeros([1], (tch::Kind::Float, device(Numerics::Cuda))) {
        Ok(_) => "it counts no device".into(),
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("it finds none");
            let first = first.strip_prefix("Internal torch error: ").unwrap_or(first);
            format!("it finds no GPU: {first}")
        }
    }
}

extern "C" {
    fn tandem_set_deterministic(on: bool);
    fn tandem_deterministic() -> bool;
}

/// Switches libtorch's deterministic mode (src/exec/deterministic.cpp): the
/// deterministic kernel of every operation that has one, cuDNN's
/// deterministic algorithms, no cuDNN autotuning. Process-wide.
pub fn set_deterministic(on: bool) {
    // SAFETY: sets three flags of libtorch's global context; no pointers.
    unsafe { tandem_set_deterministic(on) }
}

/// Whether libtorch's deterministic mode, as [`set_deterministic`] sets
/// it, is on.
pub fn deterministic() -> bool {
    // SAFETY: reads three flags of libtorch's global context.
    unsafe { tandem_deterministic() }
}

fn set_env(key: &str, value: &str) {
    // Before any thread of ours exists and before libtorch or MKL has read
    // its settings: the only moment these variables can still matter.
    std::env::set_var(key, value);
}

/// The profile in force, if one was activated.
pub fn active() -> Option<Numerics> {
    ACTIVE.get().copied()
}

fn host_has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// What a manifest records about the machine and settings that computed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    pub numerics: String,
    pub cpu: String,
    /// The best vector extension the CPU has (`avx512`, `avx2`, `none`).
    pub cpu_features: String,
    /// ATen's kernel level as set for this process (`host's choice` when unset).
    pub kernels: String,
    /// MKL's code branch as set for this process.
    pub mkl_branch: String,
    pub mkl: String,
    pub libtorch: String,
    pub threads: i32,
    /// Under `portable`, the kernel of its matrix product (`avx512` or
    /// `avx2`: the same bytes; `ml::avx512_product`); `-` elsewhere. Absent
    /// from manifests written before it was recorded.
    #[serde(default)]
    pub portable_kernel: String,
}

impl Host {
    /// The host as it is now, in this process.
    pub fn now() -> Host {
        let env = |k: &str| std::env::var(k).unwrap_or_else(|_| "host's choice".into());
        Host {
            numerics: active().map(|n| n.name().to_string()).unwrap_or_else(|| "none".into()),
            cpu: cpu_model(),
            cpu_features: cpu_features().into(),
            kernels: env("ATEN_CPU_CAPABILITY"),
            mkl_branch: env("MKL_CBWR"),
            mkl: mkl_version(),
            libtorch: libtorch_version(),
            threads: tch::get_num_threads(),
            portable_kernel: if crate::ml::matmul::portable_product() {
                crate::ml::matmul::portable_kernel().into()
            } else {
                "-".into()
            },
        }
    }

    pub fn lines(&self) -> Vec<(&'static str, String)> {
        vec![
            ("numerics", self.numerics.clone()),
            ("cpu", self.cpu.clone()),
            ("cpu features", self.cpu_features.clone()),
            ("aten kernels", self.kernels.clone()),
            ("mkl branch", self.mkl_branch.clone()),
            ("mkl", self.mkl.clone()),
            ("libtorch", self.libtorch.clone()),
            ("intra-op threads", self.threads.to_string()),
            ("portable kernel", self.portable_kernel.clone()),
        ]
    }
}

/// The libtorch this binary was built against (from the build script).
pub const LIBTORCH_VERSION: &str = match option_env!("TANDEM_LIBTORCH_VERSION") {
    Some(v) => v,
    None => "unknown",
};

/// The libtorch release whose bytes the `portable` profile's current
/// revision names. Moving tandem to another release means measuring its
/// bytes and raising the revision (`Numerics::key_name`) with this.
pub const PORTABLE_LIBTORCH: &str = "2.13";

/// The version of the libtorch this process runs on: the one mapped into
/// memory, which `LD_LIBRARY_PATH` may have made another than the one built
/// against; that one where the mapped library does not say.
pub fn libtorch_version() -> String {
    crate::exec::libtorch_install::version().unwrap_or_else(|| LIBTORCH_VERSION.to_string())
}

/// Whether `version` (as `2.13.0+cu130`) is a release of [`PORTABLE_LIBTORCH`].
fn is_portable_libtorch(version: &str) -> bool {
    version == PORTABLE_LIBTORCH || version.strip_prefix(PORTABLE_LIBTORCH).is_some_and(|rest| rest.starts_with('.'))
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn cpu_features() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "avx512";
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
    }
    "none"
}

#[cfg(target_arch = "x86_64")]
extern "C" {
    /// MKL's own version string; libtorch's CPU library carries MKL and
    /// exports this function.
    fn MKL_Get_Version_String(buffer: *mut std::os::raw::c_char, len: std::os::raw::c_int);
}

fn mkl_version() -> String {
    if !tch::utils::has_mkl() {
        return "not linked".into();
    }
    #[cfg(target_arch = "x86_64")]
    {
        let mut buf = vec![0 as std::os::raw::c_char; 256];
        // SAFETY: MKL writes at most `len` bytes, NUL-terminated, into the buffer.
        unsafe { MKL_Get_Version_String(buf.as_mut_ptr(), buf.len() as std::os::raw::c_int) };
        let bytes: Vec<u8> = buf.iter().take_while(|c| **c != 0).map(|c| *c as u8).collect();
        String::from_utf8_lossy(&bytes).trim().to_string()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        "unknown".into()
    }
}

/// Digests of reference computations that depend on the settings above: a
/// matmul (MKL's branch), elementwise exp and tanh, softmax, layer norm, the
/// tanh GELU and attention (ATen's kernels); the models' linear layer and
/// attention as they compute them; and the gradients of the ops training
/// runs through, and an optimizer step. Inputs come from a fixed counter-based stream, not
/// libtorch's generator.
pub fn fingerprint() -> Vec<(&'static str, String)> {
    use tch::{Kind, Tensor};
    let values = |n: usize, salt: u64| -> Vec<f32> {
        let mut rng = crate::ml::rng::stream(7, "numerics-fingerprint", salt);
        (0..n).map(|_| rand::Rng::gen_range(&mut rng, -3.0f32..3.0)).collect()
    };
    let a = Tensor::from_slice(&values(257 * 311, 1)).reshape([257, 311]);
    let b = Tensor::from_slice(&values(311 * 129, 2)).reshape([311, 129]);
    let x = Tensor::from_slice(&values(100_000, 3));
    let digest = |t: &Tensor| -> String {
        let v: Vec<f32> = Vec::try_from(t.to_kind(Kind::Float).flatten(0, -1)).unwrap_or_default();
        let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
        blake3::hash(&bytes).to_hex()[..12].to_string()
    };
    vec![
        ("matmul", digest(&a.matmul(&b))),
        ("exp", digest(&x.exp())),
        ("tanh", digest(&x.tanh())),
        ("softmax", digest(&a.softmax(1, Kind::Float))),
        ("layer_norm", digest(&a.layer_norm([311], None::<&Tensor>, None::<&Tensor>, 1e-5, false))),
        // The models' activation and attention (ATen's kernels too).
        ("gelu", digest(&x.gelu("tanh"))),
        ("attention", {
            let q = x.narrow(0, 0, 96_000).reshape([25, 4, 60, 16]);
            digest(&Tensor::scaled_dot_product_attention(
                &q,
                &q.flip([2]),
                &q.roll([7], [2]),
                None::<&Tensor>,
                0.0,
                true,
                None,
                false,
            ))
        }),
        // What the models compute with (ml::matmul: under `portable`, tandem's
        // own products) and, for training, the gradients of each op, so that
        // a host that computes other model bytes shows which op.
        ("model linear", digest(&crate::ml::matmul::linear(&a, &b.tr(), None))),
        ("model attention", {
            let q = x.narrow(0, 0, 96_000).reshape([25, 4, 60, 16]);
            let causal = Tensor::ones([60, 60], (Kind::Bool, tch::Device::Cpu)).tril(0);
            digest(&crate::ml::matmul::attention(&q, &q.flip([2]), &q.roll([7], [2]), &causal))
        }),
        ("grad linear", {
            let (xa, wb) = (a.detach().set_requires_grad(true), b.tr().contiguous().set_requires_grad(true));
            weighted_sum(&crate::ml::matmul::linear(&xa, &wb, None)).backward();
            format!("{} {}", digest(&xa.grad()), digest(&wb.grad()))
        }),
        ("grad attention", {
            let q = x.narrow(0, 0, 96_000).reshape([25, 4, 60, 16]).copy().set_requires_grad(true);
            let causal = Tensor::ones([60, 60], (Kind::Bool, tch::Device::Cpu)).tril(0);
            weighted_sum(&crate::ml::matmul::attention(&q, &q.flip([2]), &q.roll([7], [2]), &causal)).backward();
            digest(&q.grad())
        }),
        ("grad layer_norm gelu", {
            let xa = a.detach().set_requires_grad(true);
            let y = xa.layer_norm([311], None::<&Tensor>, None::<&Tensor>, 1e-5, false).gelu("tanh");
            weighted_sum(&y).backward();
            digest(&xa.grad())
        }),
        ("grad log_softmax", {
            let xa = a.detach().set_requires_grad(true);
            weighted_sum(&xa.log_softmax(1, Kind::Float)).backward();
            digest(&xa.grad())
        }),
        ("grad embedding", {
            let table = b.detach().set_requires_grad(true);
            let ids = Tensor::from_slice(&(0..2_000i64).map(|i| (i * 37) % 311).collect::<Vec<_>>());
            weighted_sum(&Tensor::embedding(&table, &ids, -1, false, false)).backward();
            digest(&table.grad())
        }),
        // A PM's loss (softplus of a margin) and two steps of Adam on its
        // gradient: clipping's norm, both moments and the root of the second
        // (libtorch takes that root in MKL, which differs between Intel and
        // AMD; `portable` takes it correctly rounded, ml::exact_sqrt).
        ("adam softplus", {
            let vs = tch::nn::VarStore::new(tch::Device::Cpu);
            let w = vs.root().var_copy("w", &x.narrow(0, 0, 4_096));
            let mut adam = crate::ml::adam::Adam::new(&vs, 1e-3, 0, 1.0);
            for _ in 0..2 {
                adam.zero_grad();
                weighted_sum(&w.softplus()).backward();
                adam.step();
            }
            digest(&w)
        }),
    ]
}

/// Σ y ⊙ w for a fixed w of y's shape (a sine of the position), so that each
/// entry of a gradient depends on where it sits.
fn weighted_sum(y: &tch::Tensor) -> tch::Tensor {
    let n = y.numel() as i64;
    let w = tch::Tensor::arange(n, (tch::Kind::Float, tch::Device::Cpu)).sin().reshape(y.size().as_slice());
    (y * w).sum(tch::Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portable_takes_every_release_of_its_libtorch_and_no_other() {
        for v in ["2.13", "2.13.0", "2.13.0+cu130", "2.13.1+cpu"] {
            assert!(is_portable_libtorch(v), "{v}");
        }
        for v in ["2.11.0+cu130", "2.130.0", "2.1", "unknown", ""] {
            assert!(!is_portable_libtorch(v), "{v}");
        }
    }
}
