//! The libtorch this process runs on: its folder and its version, read off
//! the files the dynamic linker actually mapped.
//!
//! The build script records the libtorch tandem was compiled against, but the
//! binary may run on another one: `LD_LIBRARY_PATH` wins over the rpath, as
//! when a binary built on one machine runs on a GPU machine's own PyTorch.
//! What computes the bytes is the library in memory, so that is the one
//! asked.

use std::path::{Path, PathBuf};

/// The folder of the `libtorch_cpu.so` mapped into this process, read from
/// `/proc/self/maps`.
pub fn lib_dir() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    mapped_dir(&maps, "libtorch_cpu.so")
}

/// The version of the libtorch mapped into this process: PyTorch's
/// `version.py` beside a wheel's `lib` folder, or `build-version` in a
/// standalone libtorch. None where neither is there.
pub fn version() -> Option<String> {
    version_in(&lib_dir()?.join(".."))
}

/// The version a libtorch folder (the parent of its `lib`) declares.
fn version_in(root: &Path) -> Option<String> {
    if let Ok(text) = std::fs::read_to_string(root.join("version.py")) {
        return text
            .lines()
            .find_map(|l| l.strip_prefix("__version__ = "))
            .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"').to_string());
    }
    let text = std::fs::read_to_string(root.join("build-version")).ok()?;
    Some(text.trim().to_string()).filter(|v| !v.is_empty())
}

/// The folder of the first mapped file called `file` in a `/proc/PID/maps`
/// text.
fn mapped_dir(maps: &str, file: &str) -> Option<PathBuf> {
    // A line's path is all from its first '/': the fields before it
    // (addresses, permissions, offset, device, inode) hold none, and a path
    // may hold spaces.
    maps.lines()
        .filter_map(|line| line.find('/').map(|at| Path::new(line[at..].trim_end())))
        .find(|p| p.file_name().is_some_and(|n| n == file))
        .and_then(|p| p.parent().map(Path::to_path_buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lib_dir_is_read_off_the_maps_line_of_the_library() {
        let maps = "\
7f00-7f01 r-xp 00000000 fd:01 12 /usr/lib/x86_64-linux-gnu/libc.so.6
7f02-7f03 r--p 00000000 fd:01 34 /opt/venv/lib/python3.11/site-packages/torch/lib/libtorch_cpu.so
7f04-7f05 rw-p 00000000 00:00 0
7f06-7f07 r--p 00000000 fd:01 56 /opt/venv/lib/python3.11/site-packages/torch/lib/libtorch_cpu.so.bak
7f08-7f09 r--p 00000000 fd:01 78 /home/a user/torch lib/libtorch_cuda.so
";
        assert_eq!(
            mapped_dir(maps, "libtorch_cpu.so"),
            Some(PathBuf::from("/opt/venv/lib/python3.11/site-packages/torch/lib"))
        );
        assert_eq!(mapped_dir(maps, "libtorch_cuda.so"), Some(PathBuf::from("/home/a user/torch lib")));
        assert_eq!(mapped_dir(maps, "libc10_cuda.so"), None);
    }

    #[test]
    fn a_wheel_and_a_standalone_libtorch_each_say_their_version() {
        let wheel = tempfile::tempdir().unwrap();
        std::fs::write(wheel.path().join("version.py"), "__all__ = []\n__version__ = '2.13.0+cu130'\ndebug = False\n")
            .unwrap();
        assert_eq!(version_in(wheel.path()).as_deref(), Some("2.13.0+cu130"));
        let standalone = tempfile::tempdir().unwrap();
        std::fs::write(standalone.path().join("build-version"), "2.13.0+cpu\n").unwrap();
        assert_eq!(version_in(standalone.path()).as_deref(), Some("2.13.0+cpu"));
        assert_eq!(version_in(tempfile::tempdir().unwrap().path()), None);
    }

    #[test]
    fn this_process_runs_on_the_venvs_libtorch() {
        // Map libtorch first: a test process has not touched it yet.
        let _ = tch::Tensor::from_slice(&[1.0f32]);
        let dir = lib_dir().expect("libtorch_cpu.so is mapped");
        assert!(dir.join("libtorch_cpu.so").is_file(), "{}", dir.display());
        assert!(version().is_some_and(|v| v.starts_with("2.")), "{:?}", version());
    }
}
