//! Stage 3: checked program → plan, a DAG of content-keyed nodes; and the
//! comparison of two plans.
pub mod diff;
pub mod key;
pub mod lower;
pub mod node;

pub use key::{CValue, Key};
pub use node::{Node, Plan};
