//! Loading libtorch's CUDA backend, which tandem never links.
//!
//! PyTorch splits libtorch in two: `libtorch_cpu.so`, and `libtorch_cuda.so`,
//! whose static initialisers register the CUDA kernels and hooks with ATen.
//! tandem calls no symbol of the second, so the linker (`--as-needed`, the
//! default) drops it from the binary even though torch-sys asks for it, and
//! libtorch then answers "no GPU" on a machine that has one: CUDA tensors
//! fail with "Cannot initialize CUDA without ATen_cuda library".
//!
//! Linking it for good (`--no-as-needed`) would make every run, and every
//! CPU-only test, map the 470 MB library and its CUDA runtimes at start-up.
//! So the `cuda` profile loads it when it is asked for ([`load`]), from the
//! folder of the `libtorch_cpu.so` this process already runs on: the pair
//! must be one build, also where a binary built elsewhere runs on a GPU
//! machine's own libtorch through `LD_LIBRARY_PATH`.
//!
//! It must be loaded before anything asks libtorch about CUDA (even
//! `tch::manual_seed` does): libtorch looks up its CUDA hooks once, at the
//! first question, and keeps the answer. `numerics::activate` runs first in
//! every command, so that is where the `cuda` profile loads it.

use std::path::PathBuf;
use std::sync::OnceLock;

/// The outcome of the one load this process attempts.
static LOADED: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The file name of libtorch's CUDA half.
const CUDA_LIBRARY: &str = "libtorch_cuda.so";

/// Loads libtorch's CUDA backend once; later calls return the first
/// outcome. `Ok` gives the file loaded; `Err` says why there is none (a
/// libtorch built for the CPU only, or a library that would not load).
/// Loading does not need a GPU: whether one is there is
/// `tch::Cuda::is_available()`'s to say afterwards.
pub fn load() -> Result<PathBuf, String> {
    LOADED.get_or_init(load_once).clone()
}

fn load_once() -> Result<PathBuf, String> {
    let dir = crate::exec::libtorch_install::lib_dir().ok_or_else(|| {
        "cannot tell where this process's libtorch is (no libtorch_cpu.so among its mapped files)".to_string()
    })?;
    let path = dir.join(CUDA_LIBRARY);
    if !path.is_file() {
        return Err(format!("this libtorch ({}) is built for the CPU only: it has no {CUDA_LIBRARY}", dir.display()));
    }
    // RTLD_GLOBAL: the backend's symbols serve libraries it loads in turn;
    // RTLD_NOW: a missing CUDA runtime is an error here, not a crash later.
    let flags = libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL;
    // SAFETY: loading runs the library's initialisers. These are libtorch's
    // own registrations of its CUDA kernels with the libtorch_cpu.so of the
    // same folder, which is what they are written to do.
    let library = unsafe { libloading::os::unix::Library::open(Some(&path), flags) }
        .map_err(|e| format!("{} would not load: {}", path.display(), with_causes(&e)))?;
    // Never unloaded: ATen keeps pointers into it for the process's life.
    std::mem::forget(library);
    Ok(path)
}

/// An error and the chain of its causes, as one line: libloading keeps the
/// dynamic linker's own words (the library that is missing) in the cause.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
