//! Stage 3: checked program → plan, a DAG of content-keyed nodes whose ops
//! are typed (`op.rs`) and whose names are typed (`name.rs`); and the
//! comparison of two plans.
pub mod diff;
pub mod key;
pub mod lower;
pub mod model_inputs;
pub mod name;
pub mod node;
pub mod op;
pub mod vocabulary;

pub use key::{CValue, Key};
pub use name::NodeName;
pub use node::{Node, Plan};
pub use op::Op;
