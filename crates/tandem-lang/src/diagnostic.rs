//! User-facing problems with an .exp file, as miette diagnostics.
//!
//! Every problem has a stable code (`tandem::<area>::<what>`), a message, a
//! primary label on the offending span, optional secondary labels (where the
//! other half of a conflict is), and a help line saying what to do. Codes are
//! listed in [`Code`] so that docs and tests can refer to them.

use std::fmt;
use std::sync::Arc;

use miette::{LabeledSpan, NamedSource, SourceSpan};

use crate::source::{SourceMap, Span};

/// Every kind of problem tandem reports about an experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    Syntax,
    Io,
    ImportCycle,
    UnknownName,
    DuplicateName,
    WrongKind,
    UnknownConstructor,
    UnknownArgument,
    MissingArgument,
    DuplicateArgument,
    TooManyPositional,
    PositionalAfterNamed,
    TypeMismatch,
    OutOfRange,
    BadCheckpoint,
    BadSelector,
    BadOverride,
    SweepLimit,
    /// A plan with more nodes than `--max-nodes`.
    PlanLimit,
    AmbiguousSweep,
    /// A declaration whose axes leave no consistent member.
    NoMembers,
    Cycle,
    BadNumber,
    OutsideProject,
    /// A pretrained model directory tandem cannot use.
    Pretrained,
    /// A policy, its reference, judge or data reading other token ids.
    Vocabulary,
    /// A training precision the numerics profile cannot keep (bf16 under
    /// `portable`).
    Precision,
    /// A JSONL dataset's line that is not a preference record (or a file
    /// that is not UTF-8, or has none).
    BadRecord,
    /// A figure's claim that has no meaning (`best` of a KL, gaps of a
    /// figure without peaks).
    MeaninglessClaim,
    /// More problems than are worth showing; the rest are counted.
    TooManyProblems,
    /// A `--set PATH=VALUE` that names nothing or cannot be applied.
    BadSetting,
    /// Warning: an evaluation or figure that asks for nothing (`at: []`, `curve(y: [])`).
    EvaluatesNothing,
    /// Warning: `expect` or `normalize` naming a series the figure does not have.
    UnknownSeries,
    /// Warning: a tradeoff with the KL evaluation on y.
    SwappedAxes,
    /// Warning: a sweep that lists one value twice (its members collapse).
    DuplicateSweepValue,
    /// The checker passed something the planner cannot lower: a bug in tandem.
    Internal,
}

impl Code {
    /// Every code, for docs and tests that must cover them all.
    pub const ALL: &'static [Code] = &[
        Code::Syntax,
        Code::Io,
        Code::ImportCycle,
        Code::UnknownName,
        Code::DuplicateName,
        Code::WrongKind,
        Code::UnknownConstructor,
        Code::UnknownArgument,
        Code::MissingArgument,
        Code::DuplicateArgument,
        Code::TooManyPositional,
        Code::PositionalAfterNamed,
        Code::TypeMismatch,
        Code::OutOfRange,
        Code::BadCheckpoint,
        Code::BadSelector,
        Code::BadOverride,
        Code::SweepLimit,
        Code::PlanLimit,
        Code::AmbiguousSweep,
        Code::NoMembers,
        Code::Cycle,
        Code::BadNumber,
        Code::OutsideProject,
        Code::Pretrained,
        Code::Vocabulary,
        Code::Precision,
        Code::BadRecord,
        Code::MeaninglessClaim,
        Code::TooManyProblems,
        Code::BadSetting,
        Code::EvaluatesNothing,
        Code::UnknownSeries,
        Code::SwappedAxes,
        Code::DuplicateSweepValue,
        Code::Internal,
    ];

    /// Warnings are printed and the command goes on; everything else stops it.
    pub fn is_warning(self) -> bool {
        matches!(self, Code::EvaluatesNothing | Code::UnknownSeries | Code::SwappedAxes | Code::DuplicateSweepValue)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Code::Syntax => "tandem::syntax",
            Code::Io => "tandem::io",
            Code::ImportCycle => "tandem::import_cycle",
            Code::UnknownName => "tandem::unknown_name",
            Code::DuplicateName => "tandem::duplicate_name",
            Code::WrongKind => "tandem::wrong_kind",
            Code::UnknownConstructor => "tandem::unknown_constructor",
            Code::UnknownArgument => "tandem::unknown_argument",
            Code::MissingArgument => "tandem::missing_argument",
            Code::DuplicateArgument => "tandem::duplicate_argument",
            Code::TooManyPositional => "tandem::too_many_positional",
            Code::PositionalAfterNamed => "tandem::positional_after_named",
            Code::TypeMismatch => "tandem::type_mismatch",
            Code::OutOfRange => "tandem::out_of_range",
            Code::BadCheckpoint => "tandem::bad_checkpoint",
            Code::BadSelector => "tandem::bad_selector",
            Code::BadOverride => "tandem::bad_override",
            Code::SweepLimit => "tandem::sweep_limit",
            Code::PlanLimit => "tandem::plan_limit",
            Code::AmbiguousSweep => "tandem::ambiguous_sweep",
            Code::NoMembers => "tandem::no_members",
            Code::Cycle => "tandem::cycle",
            Code::BadNumber => "tandem::bad_number",
            Code::OutsideProject => "tandem::outside_project",
            Code::Pretrained => "tandem::pretrained",
            Code::Vocabulary => "tandem::vocabulary",
            Code::Precision => "tandem::precision",
            Code::BadRecord => "tandem::bad_record",
            Code::MeaninglessClaim => "tandem::meaningless_claim",
            Code::TooManyProblems => "tandem::too_many_problems",
            Code::EvaluatesNothing => "tandem::evaluates_nothing",
            Code::UnknownSeries => "tandem::unknown_series",
            Code::SwappedAxes => "tandem::swapped_axes",
            Code::BadSetting => "tandem::bad_setting",
            Code::DuplicateSweepValue => "tandem::duplicate_sweep_value",
            Code::Internal => "tandem::internal",
        }
    }
}

/// A problem found before anything runs; it points into the source.
#[derive(Debug, Clone)]
pub struct Problem {
    pub code: Code,
    pub message: String,
    pub span: Option<Span>,
    pub label: String,
    pub related: Vec<(Span, String)>,
    pub help: Option<String>,
}

impl Problem {
    pub fn new(code: Code, span: Span, message: impl Into<String>) -> Problem {
        Problem { code, message: message.into(), span: Some(span), label: "here".into(), related: vec![], help: None }
    }

    /// A problem that has no place in a source file (an unreadable path, say).
    pub fn without_span(code: Code, message: impl Into<String>) -> Problem {
        Problem { code, message: message.into(), span: None, label: String::new(), related: vec![], help: None }
    }

    pub fn label(mut self, label: impl Into<String>) -> Problem {
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Problem {
        self.help = Some(help.into());
        self
    }

    pub fn related(mut self, span: Span, label: impl Into<String>) -> Problem {
        self.related.push((span, label.into()));
        self
    }

    /// Attaches the source text so the problem can be rendered on its own.
    pub fn with_sources(self, sources: &SourceMap) -> Diagnostic {
        let mut source = self.span.map(|s| sources.named_source(s.file));
        // A very long line (a generated or minified file) is shown as a
        // window around the problem, not echoed whole.
        let excerpt = self.span.and_then(|p| Excerpt::around(&sources.get(p.file).text, p));
        let mut help = self.help.clone();
        if let (Some(x), Some(p)) = (&excerpt, self.span) {
            let f = sources.get(p.file);
            source = Some(NamedSource::new(f.name.clone(), Arc::new(x.text.clone())));
            // miette counts columns in the excerpt; say where it really is.
            let (line, col) = line_col(&f.text, p.start);
            let note = format!("line {line} is long and shown cut: the problem is at column {col}");
            help = Some(help.map_or(note.clone(), |h| format!("{h} ({note})")));
        }
        // Secondary labels are drawn only when they point into the same file
        // (and, for a long line, into the window shown); otherwise their text
        // is folded into the help so nothing is lost.
        let mut related_here = vec![];
        for (span, label) in &self.related {
            let shown = excerpt.as_ref().is_none_or(|x| x.map(*span).is_some());
            match self.span {
                Some(p) if p.file == span.file && shown => related_here.push((*span, label.clone())),
                _ => {
                    let f = sources.get(span.file);
                    let (line, col) = line_col(&f.text, span.start);
                    let extra = format!("{label} ({}:{line}:{col})", f.name);
                    help = Some(match help {
                        Some(h) => format!("{h}; {extra}"),
                        None => extra,
                    });
                }
            }
        }
        let location = self.span.map(|s| {
            let f = sources.get(s.file);
            let (line, col) = line_col(&f.text, s.start);
            (f.name.clone(), line, col)
        });
        // Every label where it is in its file (an excerpt only changes what
        // is drawn), for editors (`check --format json`).
        let place = |span: Span, label: &str, primary: bool| {
            let f = sources.get(span.file);
            let ((line, column), (end_line, end_column)) = (line_col(&f.text, span.start), line_col(&f.text, span.end));
            Place { file: f.name.clone(), line, column, end_line, end_column, label: label.to_string(), primary }
        };
        let places = self
            .span
            .map(|p| place(p, &self.label, true))
            .into_iter()
            .chain(self.related.iter().map(|(s, l)| place(*s, l, false)))
            .collect();
        Diagnostic { problem: Problem { help, related: related_here, ..self }, source, location, excerpt, places }
    }
}

/// The lines around a problem, with any line longer than [`Excerpt::LONG`]
/// cut to a window: what is rendered instead of the whole file when one of
/// those lines is long. Line numbers stay right (dropped lines stay as empty
/// lines); spans are moved into the excerpt's text with [`Excerpt::map`].
#[derive(Debug, Clone)]
pub struct Excerpt {
    text: String,
    /// (start, end in the file, start in the excerpt) of each kept stretch.
    pieces: Vec<(usize, usize, usize)>,
}

impl Excerpt {
    /// A line longer than this is cut.
    const LONG: usize = 240;
    /// Bytes kept on each side of the problem in a cut line.
    const SIDE: usize = 80;

    fn around(text: &str, primary: Span) -> Option<Excerpt> {
        let start = text.floor_char_boundary(primary.start.min(text.len()));
        let line_start = |at: usize| text[..at].rfind('\n').map_or(0, |i| i + 1);
        let line_end = |at: usize| text[at..].find('\n').map_or(text.len(), |i| at + i);
        let (ls, le) = (line_start(start), line_end(start));
        let prev = (ls > 0).then(|| (line_start(ls - 1), ls - 1));
        let next = (le < text.len()).then(|| (le + 1, line_end(le + 1)));
        let long = |r: (usize, usize)| r.1 - r.0 > Self::LONG;
        if !long((ls, le)) && !prev.is_some_and(long) && !next.is_some_and(long) {
            return None;
        }
        let mut x =
            Excerpt { text: "\n".repeat(text[..prev.map_or(ls, |p| p.0)].matches('\n').count()), pieces: vec![] };
        let keep = |x: &mut Excerpt, from: usize, to: usize, line: (usize, usize)| {
            let (from, to) = (text.floor_char_boundary(from), text.ceil_char_boundary(to));
            if from > line.0 {
                x.text.push('…');
            }
            x.pieces.push((from, to, x.text.len()));
            x.text.push_str(&text[from..to]);
            if to < line.1 {
                x.text.push('…');
            }
        };
        if let Some(p) = prev {
            keep(&mut x, p.0, p.1.min(p.0 + Self::LONG), p);
            x.text.push('\n');
        }
        let end = primary.end.clamp(start, text.len()).min(start + 2 * Self::SIDE);
        keep(&mut x, start.saturating_sub(Self::SIDE).max(ls), (end + Self::SIDE).min(le), (ls, le));
        if let Some(n) = next {
            x.text.push('\n');
            keep(&mut x, n.0, n.1.min(n.0 + Self::LONG), n);
        }
        Some(x)
    }

    /// Where a span of the file lies in the excerpt (its end cut to the
    /// kept stretch), or None when it was not kept.
    fn map(&self, s: Span) -> Option<Span> {
        let (from, to, at) = *self.pieces.iter().find(|(from, to, _)| s.start >= *from && s.start <= *to)?;
        let end = s.end.clamp(s.start, to);
        debug_assert!(from <= s.start);
        Some(Span { file: s.file, start: at + (s.start - from), end: at + (end - from) })
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

/// A [`Problem`] with its source attached: what miette renders.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub problem: Problem,
    source: Option<NamedSource<Arc<String>>>,
    /// file, line, column of the primary span, for one-line output and JSON.
    pub location: Option<(String, usize, usize)>,
    /// Set when the source shown is an excerpt: spans are moved into it.
    excerpt: Option<Excerpt>,
    /// Each label where it lies in its file: the primary first.
    pub places: Vec<Place>,
}

/// Where a label lies: 1-based lines and columns (in characters), the end
/// exclusive, as editors take them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Place {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    pub label: String,
    pub primary: bool,
}

/// A diagnostic as data (`tandem check --format json`): the shape is in
/// docs/language.md.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DiagnosticJson {
    pub code: &'static str,
    pub severity: &'static str,
    pub message: String,
    pub help: Option<String>,
    pub places: Vec<Place>,
}

impl Diagnostic {
    pub fn to_json(&self) -> DiagnosticJson {
        DiagnosticJson {
            code: self.problem.code.as_str(),
            severity: if self.problem.code.is_warning() { "warning" } else { "error" },
            message: self.problem.message.clone(),
            help: self.problem.help.clone(),
            places: self.places.clone(),
        }
    }
}

impl Diagnostic {
    pub fn code(&self) -> Code {
        self.problem.code
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problem.message)
    }
}

impl std::error::Error for Diagnostic {}

impl miette::Diagnostic for Diagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.problem.code.as_str()))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(if self.problem.code.is_warning() { miette::Severity::Warning } else { miette::Severity::Error })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.problem.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let shown = |s: Span| match &self.excerpt {
            Some(x) => x.map(s),
            None => Some(s),
        };
        let span = shown(self.problem.span?)?;
        let primary = LabeledSpan::new_primary_with_span(Some(self.problem.label.clone()), SourceSpan::from(span));
        let rest = self.problem.related.iter().filter_map(move |(s, l)| {
            shown(*s).map(|s| LabeledSpan::new_with_span(Some(l.clone()), SourceSpan::from(s)))
        });
        Some(Box::new(std::iter::once(primary).chain(rest)))
    }
}

/// The closest candidate to `name` by edit distance, for "did you mean".
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // The edit distance costs the product of the lengths: a typo in a
    // 100k-character name took half a minute. Names that long get no
    // suggestion, and a candidate whose length alone puts it past the
    // allowed distance is never measured.
    if name.len() > MAX_SUGGESTED_LEN {
        return None;
    }
    let allowed = |c: &str| (name.len().max(c.len()) / 3).max(1) + usize::from(name.len() > 5);
    candidates
        .into_iter()
        .filter(|c| c.len() <= MAX_SUGGESTED_LEN && name.len().abs_diff(c.len()) <= allowed(c))
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| *d <= allowed(c))
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

/// The longest name a "did you mean" is looked for.
const MAX_SUGGESTED_LEN: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_suggests_close_names_and_skips_very_long_ones() {
        assert_eq!(did_you_mean("sumarize", ["summarize", "helpful"]), Some("summarize"));
        // A candidate too long or too short to be within the allowed
        // distance is never measured, and very long names get no suggestion.
        let long = "a".repeat(100_000);
        let typo = format!("{}b", "a".repeat(99_999));
        assert_eq!(did_you_mean(&typo, [long.as_str(), "alpha"]), None);
        assert_eq!(did_you_mean("abc", [long.as_str()]), None);
    }
}
