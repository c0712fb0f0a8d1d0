//! Progress for people: an overall bar (nodes) and a bar per running node
//! (steps, rate, ETA), with log lines printed above them. Without a terminal
//! the bars are hidden and log lines go to stderr as plain text.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    multi: MultiProgress,
    overall: ProgressBar,
    terminal: bool,
    quiet: bool,
}

pub struct NodeBar {
    bar: ProgressBar,
}

impl NodeBar {
    pub fn set(&self, done: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(done);
    }

    pub fn done(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress {
    /// `quiet` prints nothing at all (tests).
    pub fn new(quiet: bool) -> Progress {
        let terminal = !quiet && std::io::stderr().is_terminal();
        let multi = MultiProgress::with_draw_target(if terminal {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} nodes  {elapsed_precise}")
                .expect("template")
                .progress_chars("=> "),
        );
        overall.set_prefix("tandem");
        Progress { multi, overall, terminal, quiet }
    }

    pub fn start(&self, nodes: u64) {
        self.overall.set_length(nodes);
    }

    pub fn advance(&self) {
        self.overall.inc(1);
    }

    pub fn node(&self, label: &str) -> NodeBar {
        let bar = self.multi.add(ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template("  {msg:40!} [{bar:20}] {pos}/{len} {per_sec} eta {eta}")
                .expect("template")
                .progress_chars("=> "),
        );
        bar.set_message(label.to_string());
        NodeBar { bar }
    }

    pub fn log(&self, line: &str) {
        if self.quiet {
            return;
        }
        if self.terminal {
            let _ = self.multi.println(line);
        } else {
            eprintln!("{line}");
        }
    }

    pub fn finish(&self) {
        self.overall.finish_and_clear();
    }
}
