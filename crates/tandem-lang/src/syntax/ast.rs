//! The abstract syntax tree of an .exp file. Every node keeps the span it came
//! from so that any later stage can point at the exact text it is unhappy with.

use crate::source::{FileId, Span};
use crate::syntax::number::Number;

/// A parsed file: its imports, constants and declarations, in source order.
#[derive(Debug, Clone)]
pub struct File {
    pub file: FileId,
    pub imports: Vec<Import>,
    pub lets: Vec<Let>,
    pub decls: Vec<Decl>,
    /// Literals the parser could not use (reported already): problems the
    /// checker finds there are echoes of those and are not reported again.
    pub poisoned: Vec<crate::source::Span>,
}

#[derive(Debug, Clone)]
pub struct Import {
    pub path: String,
    pub span: Span,
}

/// `let name = expr`: a named constant, substituted where it is used.
#[derive(Debug, Clone)]
pub struct Let {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

/// The declared kind keyword: what the right-hand side must produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeclKind {
    World,
    Dataset,
    Model,
    Run,
    Eval,
    Figure,
}

impl DeclKind {
    pub fn keyword(self) -> &'static str {
        match self {
            DeclKind::World => "world",
            DeclKind::Dataset => "dataset",
            DeclKind::Model => "model",
            DeclKind::Run => "run",
            DeclKind::Eval => "eval",
            DeclKind::Figure => "figure",
        }
    }

    pub fn from_keyword(s: &str) -> Option<DeclKind> {
        Some(match s {
            "world" => DeclKind::World,
            "dataset" => DeclKind::Dataset,
            "model" => DeclKind::Model,
            "run" => DeclKind::Run,
            "eval" => DeclKind::Eval,
            "figure" => DeclKind::Figure,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Decl {
    pub kind: DeclKind,
    pub kind_span: Span,
    pub name: Ident,
    pub body: DeclBody,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum DeclBody {
    /// `= ctor(args)` (or any expression; the checker insists on a call).
    Expr(Expr),
    /// `= base with { overrides }`.
    Derive(Derive),
}

#[derive(Debug, Clone)]
pub struct Derive {
    pub base: Reference,
    pub overrides: Vec<Override>,
    pub span: Span,
}

/// `loss.beta: 0.5` inside a `with { ... }` block.
#[derive(Debug, Clone)]
pub struct Override {
    pub path: Path,
    pub value: Expr,
    pub span: Span,
}

/// A dotted argument path such as `loss.beta`.
#[derive(Debug, Clone)]
pub struct Path {
    pub segments: Vec<Ident>,
    pub span: Span,
}

impl Path {
    pub fn dotted(&self) -> String {
        self.segments.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(".")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum Expr {
    Number(Number, Span),
    String(String, Span),
    Bool(bool, Span),
    List(Vec<Expr>, Span),
    /// `sweep [a, b, c]`: one grid axis.
    Sweep(Vec<Expr>, Span),
    Call(Call),
    Reference(Reference),
}

impl Expr {
    pub fn span(&self) -> Span {
        match self {
            Expr::Number(_, s) | Expr::String(_, s) | Expr::Bool(_, s) | Expr::List(_, s) | Expr::Sweep(_, s) => *s,
            Expr::Call(c) => c.span,
            Expr::Reference(r) => r.span,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Call {
    pub callee: Ident,
    pub args: Vec<Arg>,
    pub span: Span,
}

/// One argument; `name` is `None` for a positional argument.
#[derive(Debug, Clone)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
    pub span: Span,
}

/// `name`, `name[axis: value]`, `name@step`, or `name[axis: value]@step`.
#[derive(Debug, Clone)]
pub struct Reference {
    pub name: Ident,
    pub selector: Vec<Selection>,
    pub checkpoint: Option<CheckpointRef>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Selection {
    pub path: Path,
    pub value: Expr,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum CheckpointRef {
    Step(Number, Span),
    /// `online@steps_800` with a `let` constant.
    Named(Ident),
}
