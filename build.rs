//! Gives every binary built from this crate an rpath to libtorch's lib folder,
//! so `target/release/tandem` runs without LD_LIBRARY_PATH, and compiles
//! tandem's C++ files against the same libtorch: the autograd node of the
//! `portable` profile's matrix product (src/ml/portable_mm.cpp), the switch
//! for libtorch's deterministic mode (src/exec/deterministic.cpp) and the
//! switches of its autocast (src/ml/autocast.cpp).
//!
//! torch-sys declares `links = "tch"` and publishes the folder it linked against
//! as `cargo:libtorch_lib=...`; cargo hands that to direct dependents as
//! `DEP_TCH_LIBTORCH_LIB`. The same folder tells the libtorch version, and its
//! parent holds the headers.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=src/ml/portable_mm.cpp");
    println!("cargo:rerun-if-changed=src/exec/deterministic.cpp");
    println!("cargo:rerun-if-changed=src/ml/autocast.cpp");
    // matrixmultiply reads its block sizes from these at its own compile
    // time; other block sizes sum in another order, so `portable` results
    // would change bytes under the same keys.
    for var in ["MATMUL_SGEMM_MC", "MATMUL_SGEMM_KC", "MATMUL_SGEMM_NC"] {
        println!("cargo:rerun-if-env-changed={var}");
        if std::env::var_os(var).is_some() {
            panic!("{var} is set: it changes matrixmultiply's block sizes and so the bytes of the `portable` profile; unset it to build tandem");
        }
    }
    let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        panic!("torch-sys did not say where libtorch is (DEP_TCH_LIBTORCH_LIB): see scripts/bootstrap-venv.sh");
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    let root = std::path::Path::new(&dir).join("..");
    // The libtorch version, for manifests and `tandem env`: PyTorch's
    // version.py sits one folder above its lib folder.
    let version_py = root.join("version.py");
    println!("cargo:rerun-if-changed={}", version_py.display());
    if let Ok(text) = std::fs::read_to_string(&version_py) {
        let version = text
            .lines()
            .find_map(|l| l.strip_prefix("__version__ = "))
            .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"').to_string());
        if let Some(v) = version {
            println!("cargo:rustc-env=TANDEM_LIBTORCH_VERSION={v}");
        }
    }
    // The C++ ABI of the PyTorch wheels tch 0.26 builds against (2.x: the
    // new ABI), as torch-sys compiles its own glue.
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    cc::Build::new()
        .cpp(true)
        .file("src/ml/portable_mm.cpp")
        .file("src/exec/deterministic.cpp")
        .file("src/ml/autocast.cpp")
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .flag_if_supported("-Wno-unused-parameter")
        .warnings(false)
        // No debug information: the cc crate would write full `-g` for the
        // release profile's line tables, and compiling it against
        // libtorch's headers costs more than the code itself.
        .debug(false)
        .compile("tandem_cpp");
}
