//! Empty: it exists so that `[build-dependencies]` (the host-side features
//! in Cargo.toml) take part in the build.
fn main() {}
