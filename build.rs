//! Gives every binary built from this crate an rpath to libtorch's lib folder,
//! so `target/release/tandem` runs without LD_LIBRARY_PATH.
//!
//! torch-sys declares `links = "tch"` and publishes the folder it linked against
//! as `cargo:libtorch_lib=...`; cargo hands that to direct dependents as
//! `DEP_TCH_LIBTORCH_LIB`. The same folder tells the libtorch version.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        // The libtorch version, for manifests and `tandem env`: PyTorch's
        // version.py sits one folder above its lib folder.
        let version_py = std::path::Path::new(&dir).join("..").join("version.py");
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
    }
}
