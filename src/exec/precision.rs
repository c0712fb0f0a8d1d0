//! A node's training precision (`plan::op::Precision`), switched on for the
//! thread that computes the node and off again when it ends, however it ends
//! (the guard drops while a panic unwinds to the runner).
//!
//! float32 switches autocast off rather than leaving the thread as it
//! found it, so that no node inherits another's precision.

use tch::Device;

use crate::ml::autocast;
use crate::plan::op::Precision;

/// Computes in `precision` on `device` until the guard is dropped.
pub fn enter(precision: Precision, device: Device) -> autocast::Guard {
    match precision {
        Precision::Float32 => autocast::float32(device),
        Precision::Bf16 => autocast::bf16(device),
    }
}
