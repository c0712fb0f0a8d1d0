//! Settings from the command line (`--set PATH=VALUE`), applied to the
//! parsed files before anything is checked, so that an overridden study is
//! checked, planned and keyed exactly as if its file said so.
//!
//! - `--set steps=20` replaces the value of the `let` constant `steps`;
//! - `--set online.lr=3e-4` sets the argument `lr` of the declaration
//!   `online` (a `with { ... }` derivation gets the override in its block);
//! - `--set online.loss.beta=0.05` reaches into a call's argument.
//!
//! The value is parsed as the language's own expression, from a source of
//! its own named after the setting, so a bad value is a diagnostic that
//! points at what was typed.

use std::path::PathBuf;

use crate::check::load::Loaded;
use crate::diagnostic::{did_you_mean, Code, Problem};
use crate::source::Span;
use crate::syntax::ast::{Arg, DeclBody, Expr, Ident, Override, Path};
use crate::syntax::parser::parse_file;

/// Applies every setting in order; each problem is reported with the place
/// it was typed.
pub fn apply(loaded: &mut Loaded, settings: &[String], problems: &mut Vec<Problem>) {
    for setting in settings {
        apply_one(loaded, setting, problems);
    }
}

fn apply_one(loaded: &mut Loaded, setting: &str, problems: &mut Vec<Problem>) {
    // The setting as its own source: `let set = VALUE`, so that the value
    // parses as any value in a file does and diagnostics can point at it.
    let (path, value) = setting.split_once('=').unwrap_or((setting, ""));
    let text = format!("let set = {value}\n");
    let id = loaded.sources.add(format!("--set {setting}"), PathBuf::from("--set"), text.clone());
    let whole = Span::new(id, 0, text.len().saturating_sub(1));
    let bad = |msg: String, help: &str| Problem::new(Code::BadSetting, whole, msg).label("this setting").help(help);
    let segments: Vec<&str> = path.trim().split('.').map(str::trim).collect();
    if !setting.contains('=') || value.trim().is_empty() || segments.iter().any(|s| s.is_empty()) {
        problems.push(bad(
            format!("`--set {setting}` is not PATH=VALUE"),
            "write e.g. `--set steps=20` or `--set online.loss.beta=0.05`",
        ));
        return;
    }
    let (parsed, ps) = parse_file(id, &text);
    if !ps.is_empty() {
        problems.extend(ps);
        return;
    }
    let Some(expr) = parsed.and_then(|f| f.lets.into_iter().next()).map(|l| l.value) else {
        problems.push(bad(format!("`--set {setting}`: the value is not one value"), "give one value after `=`"));
        return;
    };
    let span = expr.span();
    let ident = |name: &str| Ident { name: name.to_string(), span };
    let head = segments[0];
    if segments.len() == 1 {
        for file in &mut loaded.files {
            if let Some(l) = file.lets.iter_mut().find(|l| l.name.name == head) {
                l.value = expr;
                return;
            }
        }
        let is_decl = loaded.files.iter().any(|f| f.decls.iter().any(|d| d.name.name == head));
        let help = if is_decl {
            format!("`{head}` is a declaration: set one of its arguments, e.g. `--set {head}.seed=1`")
        } else {
            let lets: Vec<&str> =
                loaded.files.iter().flat_map(|f| f.lets.iter().map(|l| l.name.name.as_str())).collect();
            match did_you_mean(head, lets.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "a setting names a `let` constant, or DECLARATION.ARGUMENT".to_string(),
            }
        };
        problems.push(bad(format!("`--set {setting}`: no `let` constant `{head}`"), &help));
        return;
    }
    let rest: Vec<Ident> = segments[1..].iter().map(|s| ident(s)).collect();
    for file in &mut loaded.files {
        let Some(decl) = file.decls.iter_mut().find(|d| d.name.name == head) else { continue };
        match &mut decl.body {
            DeclBody::Derive(d) => {
                let dotted = segments[1..].join(".");
                d.overrides.retain(|o| o.path.dotted() != dotted);
                d.overrides.push(Override { path: Path { segments: rest, span }, value: expr, span });
            }
            DeclBody::Expr(Expr::Call(call)) => {
                if let Err(why) = set_argument(&mut call.args, &rest, expr) {
                    problems.push(bad(format!("`--set {setting}`: {why}"), "name the argument as the file writes it"));
                }
            }
            DeclBody::Expr(_) => {
                problems.push(bad(format!("`--set {setting}`: `{head}` is not a call"), "set a `let` constant instead"))
            }
        }
        return;
    }
    let decls: Vec<&str> = loaded.files.iter().flat_map(|f| f.decls.iter().map(|d| d.name.name.as_str())).collect();
    let help = match did_you_mean(head, decls.iter().copied()) {
        Some(s) => format!("did you mean `{s}`?"),
        None => "a setting names a `let` constant, or DECLARATION.ARGUMENT".to_string(),
    };
    problems.push(bad(format!("`--set {setting}`: no declaration `{head}`"), &help));
}

/// Sets the argument at `path` of a call's arguments: replaces a named one,
/// or adds it; reaches into a call given as an argument for a longer path.
fn set_argument(args: &mut Vec<Arg>, path: &[Ident], value: Expr) -> Result<(), String> {
    let name = &path[0];
    let found = args.iter_mut().find(|a| a.name.as_ref().is_some_and(|n| n.name == name.name));
    if path.len() == 1 {
        match found {
            Some(a) => a.value = value,
            None => args.push(Arg { name: Some(name.clone()), span: value.span(), value }),
        }
        return Ok(());
    }
    match found.map(|a| &mut a.value) {
        Some(Expr::Call(inner)) => set_argument(&mut inner.args, &path[1..], value),
        Some(_) => Err(format!("`{}` is not a call with arguments", name.name)),
        None => Err(format!("no argument `{}` written by name to reach into", name.name)),
    }
}
