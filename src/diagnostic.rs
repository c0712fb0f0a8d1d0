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
    /// Warning: an evaluation or figure that asks for nothing (`at: []`, `curve(y: [])`).
    EvaluatesNothing,
    /// Warning: `expect` or `normalize` naming a series the figure does not have.
    UnknownSeries,
    /// Warning: a tradeoff with the KL evaluation on y.
    SwappedAxes,
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
        Code::EvaluatesNothing,
        Code::UnknownSeries,
        Code::SwappedAxes,
        Code::Internal,
    ];

    /// Warnings are printed and the command goes on; everything else stops it.
    pub fn is_warning(self) -> bool {
        matches!(self, Code::EvaluatesNothing | Code::UnknownSeries | Code::SwappedAxes)
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
            Code::EvaluatesNothing => "tandem::evaluates_nothing",
            Code::UnknownSeries => "tandem::unknown_series",
            Code::SwappedAxes => "tandem::swapped_axes",
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
        let source = self.span.map(|s| sources.named_source(s.file));
        // Secondary labels are drawn only when they point into the same file;
        // otherwise their text is folded into the help so nothing is lost.
        let mut help = self.help.clone();
        let mut related_here = vec![];
        for (span, label) in &self.related {
            match self.span {
                Some(p) if p.file == span.file => related_here.push((*span, label.clone())),
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
        Diagnostic { problem: Problem { help, related: related_here, ..self }, source, location }
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
        let span = self.problem.span?;
        let primary = LabeledSpan::new_primary_with_span(Some(self.problem.label.clone()), SourceSpan::from(span));
        let rest =
            self.problem.related.iter().map(|(s, l)| LabeledSpan::new_with_span(Some(l.clone()), SourceSpan::from(*s)));
        Some(Box::new(std::iter::once(primary).chain(rest)))
    }
}

/// The closest candidate to `name` by edit distance, for "did you mean".
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| *d <= (name.len().max(c.len()) / 3).max(1) + usize::from(name.len() > 5))
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}
