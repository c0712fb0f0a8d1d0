//! Stage 4: execution. The content-addressed cache store, the artifacts of
//! each node kind, the computation of each node (matched exhaustively on its
//! typed op), training runs with checkpoints and resumption, the schedule,
//! and the runners that walk it: on this machine (`local`) or as Slurm jobs
//! (`slurm`).
pub mod artifacts;
pub mod cuda_backend;
pub mod divergence;
pub mod estimate;
pub mod evaluate;
pub mod export;
pub mod import;
pub mod libtorch_install;
pub mod local;
pub mod maintenance;
pub mod model_summary;
pub mod node_log;
pub mod nodes;
pub mod numerics;
pub mod precision;
pub mod progress;
pub mod reference;
pub mod result_metric;
pub mod resume;
pub mod schedule;
pub mod slurm;
pub mod store;
pub mod summary;
pub mod training;

pub use store::{Manifest, Store, StoreError};
