//! What a run of a plan did: computed, cached, failed, skipped, corrupt.

use std::path::PathBuf;

#[derive(Debug, Default)]
pub struct Summary {
    /// (name, seconds) of each computed node.
    pub ran: Vec<(String, f64)>,
    pub cached: usize,
    /// (name, error, log path)
    pub failed: Vec<(String, String, PathBuf)>,
    /// Names not run because an input failed.
    pub skipped: Vec<String>,
    /// Corrupt entries found, evicted and recomputed.
    pub corrupt: Vec<String>,
    pub interrupted: bool,
}
