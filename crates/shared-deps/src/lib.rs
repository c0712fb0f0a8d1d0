//! No code. This crate's Cargo.toml lists dependencies that tandem-lang
//! shares with the tandem crate, with the features the whole workspace turns
//! on, so that `cargo test -p tandem-lang` and `cargo test --workspace`
//! compile each of them once. See its Cargo.toml for why.
