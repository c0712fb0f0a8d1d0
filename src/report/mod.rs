//! Stage 6: results for people. After a run, every figure of the experiment
//! is drawn (SVG, PNG, CSV) and a report (Markdown and HTML) states what the
//! numbers show, each with its interval and count.
//!
//! Figures are drawn from cached evaluations every time (they are cheap, and
//! their legends use declared names, which never enter a key).
pub mod document;
pub mod estimands;
pub mod figures;
pub mod history;
pub mod palette;
pub mod results;
pub mod stats;
pub mod study;
pub mod tensorboard;
pub mod training;
pub mod trend;
pub mod verdicts;
