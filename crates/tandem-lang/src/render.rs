//! Rendering diagnostics for people: miette's graphical handler with a
//! theme chosen once (colors only on a terminal unless told otherwise).
//! The CLI prints with it, and the tests pin what it prints. Behind the
//! `render` feature (on by default), which brings miette's graphical handler.

use miette::{GraphicalReportHandler, GraphicalTheme};

use crate::diagnostic::Diagnostic;

/// Renders diagnostics one after another. `color` picks the theme; `width`
/// fixes the line width (tests pin it so snapshots are stable).
pub fn render(diags: &[Diagnostic], color: bool, width: usize) -> String {
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(width).with_links(false);
    let mut out = String::new();
    for d in diags {
        if handler.render_report(&mut out, d).is_err() {
            out.push_str(&format!("{d}\n"));
        }
        out.push('\n');
    }
    out
}

/// Renders any other miette diagnostic (cache errors and the like).
pub fn render_one(d: &dyn miette::Diagnostic, color: bool, width: usize) -> String {
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(width).with_links(false);
    let mut out = String::new();
    if handler.render_report(&mut out, d).is_err() {
        out.push_str(&format!("{d}\n"));
    }
    out
}
