//! A node's log file, written as the node computes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A node's log: appended to `cache/logs/<key>.log` as it runs, and copied
/// into the entry as `log.txt` when it succeeds.
pub struct NodeLog {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
}

impl NodeLog {
    pub fn open(path: &Path) -> NodeLog {
        let _ = std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).ok();
        NodeLog { path: path.to_path_buf(), file: Mutex::new(file) }
    }

    pub fn line(&self, s: &str) {
        if let Ok(mut g) = self.file.lock() {
            if let Some(f) = g.as_mut() {
                let _ = writeln!(f, "{} {s}", humantime::format_rfc3339_seconds(std::time::SystemTime::now()));
            }
        }
    }

    pub fn text(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap_or_default()
    }
}
