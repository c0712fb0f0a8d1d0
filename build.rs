//! Gives every binary built from this crate an rpath to libtorch's lib folder,
//! so `target/release/tandem` runs without LD_LIBRARY_PATH.
//!
//! torch-sys declares `links = "tch"` and publishes the folder it linked against
//! as `cargo:libtorch_lib=...`; cargo hands that to direct dependents as
//! `DEP_TCH_LIBTORCH_LIB`.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
