//! Stage 4: execution. The content-addressed cache store, the artifacts of
//! each node kind, the computation of each node, training runs with
//! checkpoints and resumption, and the runner that walks a plan.
pub mod artifacts;
pub mod maintenance;
pub mod nodes;
pub mod params;
pub mod progress;
pub mod runner;
pub mod store;
pub mod training;

pub use store::{Manifest, Store, StoreError};
