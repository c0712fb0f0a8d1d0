//! Stage 4: execution. The content-addressed cache store, the artifacts of
//! each node kind, the computation of each node, training runs with
//! checkpoints and resumption, and the runners that walk a plan: on this
//! machine (`runner`) or as Slurm jobs (`slurm`).
pub mod artifacts;
pub mod maintenance;
pub mod nodes;
pub mod params;
pub mod progress;
pub mod runner;
pub mod slurm;
pub mod store;
pub mod training;

pub use store::{Manifest, Store, StoreError};
