//! The `tandem` binary as the tests run it, one builder for every test file:
//!
//! ```ignore
//! Tandem::new().args(["check", "study.exp"]).run().fails_with(1).stderr_has("study.exp:7:");
//! ```
//!
//! Every command runs without colour and without a cache taken from the
//! environment (a test names its own with `.cache(dir)`, or reads none).

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

pub struct Tandem {
    cmd: Command,
}

impl Default for Tandem {
    fn default() -> Self {
        Self::new()
    }
}

impl Tandem {
    pub fn new() -> Tandem {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandem"));
        cmd.env("NO_COLOR", "1").env_remove("TANDEM_CACHE");
        Tandem { cmd }
    }

    /// `--cache DIR`, the global option, before the command's own arguments.
    pub fn cache(mut self, dir: &Path) -> Tandem {
        self.cmd.arg("--cache").arg(dir);
        self
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Tandem {
        self.cmd.arg(a);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Tandem
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Tandem {
        self.cmd.env(key, value);
        self
    }

    /// Diagnostics drawn for a terminal this many columns wide.
    pub fn width(self, columns: usize) -> Tandem {
        self.env("COLUMNS", columns.to_string())
    }

    /// The command itself: to spawn, signal and wait on.
    pub fn command(self) -> Command {
        self.cmd
    }

    /// Runs it to the end.
    pub fn run(mut self) -> Ran {
        Ran { out: self.cmd.output().expect("the tandem binary runs") }
    }
}

/// A finished command, with assertions that show its output when they fail.
pub struct Ran {
    pub out: Output,
}

impl Ran {
    pub fn code(&self) -> Option<i32> {
        self.out.status.code()
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    /// Standard output and standard error, in that order.
    pub fn text(&self) -> String {
        self.stdout() + &self.stderr()
    }

    #[track_caller]
    pub fn success(self) -> Ran {
        assert!(self.out.status.success(), "tandem failed ({:?}):\n{}", self.code(), self.text());
        self
    }

    #[track_caller]
    pub fn fails_with(self, code: i32) -> Ran {
        assert_eq!(self.code(), Some(code), "tandem's exit code; its output:\n{}", self.text());
        self
    }

    #[track_caller]
    pub fn stdout_has(self, part: &str) -> Ran {
        assert!(self.stdout().contains(part), "stdout lacks {part:?}:\n{}", self.stdout());
        self
    }

    #[track_caller]
    pub fn stderr_has(self, part: &str) -> Ran {
        assert!(self.stderr().contains(part), "stderr lacks {part:?}:\n{}", self.stderr());
        self
    }

    #[track_caller]
    pub fn stderr_lacks(self, part: &str) -> Ran {
        assert!(!self.stderr().contains(part), "stderr has {part:?}:\n{}", self.stderr());
        self
    }
}
