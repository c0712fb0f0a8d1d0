//! The constructor reference of docs/language.md, generated from the schema
//! (`tests/docs.rs` keeps the two in step).

use crate::check::program::display_float;
use crate::check::schema::{Category, Ctor, CtorKind, Default, Ty, CTORS};
use crate::syntax::ast::DeclKind;

/// The constructor reference as Markdown, generated from [`CTORS`];
/// docs/language.md embeds it and a test keeps the two in step.
/// Whether a constructor belongs to a section of the reference.
type Belongs = fn(&Ctor) -> bool;

pub fn reference_markdown() -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let groups: [(&str, Belongs); 8] = [
        ("Worlds (`world`)", |c: &Ctor| matches!(c.kind, CtorKind::Decl { decl: DeclKind::World, .. })),
        ("Datasets (`dataset`)", |c: &Ctor| matches!(c.kind, CtorKind::Decl { decl: DeclKind::Dataset, .. })),
        ("Models (`model`)", |c: &Ctor| matches!(c.kind, CtorKind::Decl { decl: DeclKind::Model, .. })),
        ("Runs (`run`)", |c: &Ctor| matches!(c.kind, CtorKind::Decl { decl: DeclKind::Run, .. })),
        ("Losses (a run's `loss:`)", |c: &Ctor| c.kind == CtorKind::Value(Category::Loss)),
        ("Samplers (a run's `sampler:`)", |c: &Ctor| c.kind == CtorKind::Value(Category::Sampler)),
        ("Evaluations (`eval`)", |c: &Ctor| matches!(c.kind, CtorKind::Decl { decl: DeclKind::Eval, .. })),
        ("Figures (`figure`)", |c: &Ctor| matches!(c.kind, CtorKind::Decl { decl: DeclKind::Figure, .. })),
    ];
    for (title, pred) in groups.iter() {
        let _ = writeln!(s, "### {title}\n");
        for c in CTORS.iter().filter(|c| pred(c)) {
            let _ = writeln!(s, "#### `{}`\n\n{}.", c.name, c.doc);
            if let CtorKind::Decl { node, .. } = c.kind {
                let _ = writeln!(s, " Plan node: `{node}`.");
            }
            if c.params.is_empty() {
                let _ = writeln!(s, "\nNo arguments.\n");
                continue;
            }
            let _ = writeln!(s, "\n| argument | type | default | in key | meaning |\n|---|---|---|---|---|");
            for p in c.params {
                let default = match p.default {
                    Default::Required => "required".to_string(),
                    Default::Optional => "optional".to_string(),
                    Default::Int(v) => v.to_string(),
                    Default::Float(v) => display_float(v),
                    Default::Str(v) => format!("\"{v}\""),
                    Default::Bool(v) => v.to_string(),
                };
                let ty = match p.ty {
                    Ty::Int { min, max } if max >= 1_000_000_000 => format!("integer ≥ {min}"),
                    Ty::Int { min, max } => format!("integer {min}..={max}"),
                    Ty::Float { min, open_min: true, max } if max.is_infinite() => format!("number > {min}"),
                    Ty::Float { min, open_min: false, max } if max.is_infinite() => format!("number ≥ {min}"),
                    Ty::Float { min, max, .. } => format!("number in [{min}, {max}]"),
                    other => other.describe(),
                };
                let _ = writeln!(
                    s,
                    "| `{}` | {} | {} | {} | {} |",
                    p.name,
                    ty,
                    default,
                    match (p.in_key, p.omit_default_from_key) {
                        (true, false) => "yes",
                        (true, true) => "yes, unless at its default",
                        (false, _) => "no",
                    },
                    p.doc
                );
            }
            s.push('\n');
        }
    }
    s
}
