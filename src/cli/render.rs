//! Rendering diagnostics for people: the language crate's renderer
//! (`tandem_lang::render`), where the tests of the language use it too.
pub use crate::render::{render, render_one};
