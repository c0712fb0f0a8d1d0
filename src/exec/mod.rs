//! Stage 4: execution. For now, the content-addressed cache store that plans
//! are checked against and that every artifact is written to.
pub mod store;

pub use store::{Manifest, Store, StoreError};
