//! libtorch's CUDA backend, loaded when the `cuda` profile asks for it.
//!
//! Its own test binary, so the one process that loads the backend is this
//! one. The project's venv installs PyTorch's default (CUDA-enabled) wheel,
//! so the backend is there to load on every host, GPU or not; what a GPU
//! changes is whether a CUDA tensor can then be made.

use tch::{Device, Kind, Tensor};

/// What libtorch says when asked for a CUDA tensor: `Ok` where it made one.
fn cuda_tensor() -> Result<(), String> {
    Tensor::f_zeros([2], (Kind::Float, Device::Cuda(0))).map(|_| ()).map_err(|e| e.to_string())
}

/// Whether libtorch's error says it has no CUDA backend, as opposed to no
/// GPU.
fn lacks_cuda_backend(error: &str) -> bool {
    error.contains("from the 'CUDA' backend") || error.contains("ATen_cuda")
}

/// Whether a file of that name is mapped into this process.
fn mapped(file: &str) -> bool {
    std::fs::read_to_string("/proc/self/maps").unwrap().lines().any(|l| l.ends_with(&format!("/{file}")))
}

#[test]
fn loading_the_backend_is_what_lets_libtorch_reach_a_gpu() {
    // Before: tandem's binary, like this test's, starts without libtorch's
    // CUDA half, since the linker drops the library it never calls into. (Not
    // asked through libtorch: its first CUDA question fixes its answer for
    // the process's life, which is why the `cuda` profile loads the backend
    // before anything else touches CUDA.)
    let _ = Tensor::from_slice(&[1.0f32]);
    assert!(mapped("libtorch_cpu.so"));
    assert!(!mapped("libtorch_cuda.so"), "the binary was linked with libtorch_cuda.so after all");

    let path = tandem::exec::cuda_backend::load().expect("the venv's libtorch has a CUDA backend");
    assert!(path.ends_with("libtorch_cuda.so"), "{}", path.display());
    assert!(mapped("libtorch_cuda.so"));
    // Loading twice is one load.
    assert_eq!(tandem::exec::cuda_backend::load().unwrap(), path);

    // After: libtorch answers for the hardware. With a GPU the tensor is
    // made; without one the error is the driver's, not the missing backend's.
    match cuda_tensor() {
        Ok(()) => assert!(tch::Cuda::is_available() && tch::Cuda::device_count() >= 1),
        Err(after) => {
            assert!(!lacks_cuda_backend(&after), "the backend was loaded, yet libtorch still lacks it: {after}");
            assert!(!tch::Cuda::is_available());
        }
    }
}

#[test]
fn libtorchs_deterministic_mode_is_switched_on_and_off() {
    // The `cuda` profile switches it on; tch has no call for it, so tandem's
    // own C++ does (src/exec/deterministic.cpp).
    assert!(!tandem::exec::numerics::deterministic(), "libtorch starts nondeterministic");
    tandem::exec::numerics::set_deterministic(true);
    assert!(tandem::exec::numerics::deterministic());
    tandem::exec::numerics::set_deterministic(false);
    assert!(!tandem::exec::numerics::deterministic());
}
