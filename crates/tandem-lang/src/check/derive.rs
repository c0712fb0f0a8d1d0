//! Turning a declaration's body into one constructor call with named
//! arguments: positional arguments get their parameter names, and
//! `base with { path: value }` copies the base's call and replaces arguments,
//! reaching into nested calls with dotted paths (`loss.beta: 0.5`).

use crate::check::schema::{ctor, Category, Ctor, CtorKind};
use crate::diagnostic::{did_you_mean, Code, Problem};
use crate::syntax::ast::{Arg, Call, DeclKind, Expr, Ident, Override};

/// Resolves positional arguments to names, recursively in nested calls.
/// Reports unknown constructors and arguments, duplicates and surplus
/// positionals. Returns None when the call is unusable.
pub fn normalize_call(call: &Call, problems: &mut Vec<Problem>) -> Option<Call> {
    let Some(c) = ctor(&call.callee.name) else {
        problems.push(unknown_ctor(&call.callee, None));
        return None;
    };
    let mut ok = true;
    let mut out = Call { callee: call.callee.clone(), args: vec![], span: call.span };
    for (i, arg) in call.args.iter().enumerate() {
        let name = match &arg.name {
            Some(n) if c.param(&n.name).is_none() => match replicates(c, n, &arg.value) {
                Some(Ok((name, value))) => {
                    if !push_named(&mut out, name, value, arg.span, problems) {
                        ok = false;
                    }
                    continue;
                }
                Some(Err(p)) => {
                    problems.push(p);
                    ok = false;
                    continue;
                }
                None => {
                    problems.push(unknown_arg(c, n));
                    ok = false;
                    continue;
                }
            },
            Some(n) => n.clone(),
            None if call.args[..i].iter().any(|a| a.name.is_some()) => {
                problems.push(
                    Problem::new(
                        Code::PositionalAfterNamed,
                        arg.span,
                        "a positional argument cannot follow named ones",
                    )
                    .label("positional argument")
                    .help(format!(
                        "put positional arguments first, or name it; {} takes {}",
                        c.name,
                        signature_help(c)
                    )),
                );
                ok = false;
                continue;
            }
            None => match c.params.get(i) {
                Some(p) => Ident { name: p.name.to_string(), span: arg.value.span() },
                None => {
                    problems.push(
                        Problem::new(
                            Code::TooManyPositional,
                            arg.span,
                            format!("`{}` takes at most {} positional argument(s)", c.name, c.params.len()),
                        )
                        .label("one too many")
                        .help(signature_help(c)),
                    );
                    ok = false;
                    continue;
                }
            },
        };
        let value = match normalize_expr(&arg.value, problems) {
            Some(v) => v,
            None => {
                ok = false;
                continue;
            }
        };
        if !push_named(&mut out, name, value, arg.span, problems) {
            ok = false;
        }
    }
    ok.then_some(out)
}

/// Adds a named argument to a normalized call, unless it is there already.
fn push_named(
    out: &mut Call,
    name: Ident,
    value: Expr,
    span: crate::source::Span,
    problems: &mut Vec<Problem>,
) -> bool {
    if let Some(prev) = out.args.iter().find(|a: &&Arg| a.name.as_ref().map(|n| &n.name) == Some(&name.name)) {
        problems.push(
            Problem::new(Code::DuplicateArgument, name.span, format!("argument `{}` is given twice", name.name))
                .label("second value")
                .related(prev.span, "first value")
                .help(if name.name == "seed" {
                    "give each argument once (`seeds: N` sets `seed` too)"
                } else {
                    "give each argument once"
                }),
        );
        return false;
    }
    out.args.push(Arg { name: Some(name), value, span });
    true
}

/// The most replicates `seeds: N` may ask for; a larger grid is written out.
pub const MAX_REPLICATES: i64 = 1000;

/// Replication in one word: `seeds: N` on a constructor with a `seed` stands
/// for `seed: sweep [0, 1, …, N−1]`, an axis the report treats as the
/// method's independent repetitions (seed 0 is the un-replicated stage, so
/// the cache shares it). None when `name` is not `seeds` or the constructor
/// has no `seed`; an error when N is not a whole number from 1 to 1000.
fn replicates(c: &Ctor, name: &Ident, value: &Expr) -> Option<Result<(Ident, Expr), Problem>> {
    if name.name != "seeds" || c.param("seed").is_none() {
        return None;
    }
    let n = match value {
        Expr::Number(n, _) => n.as_i64().filter(|n| (1..=MAX_REPLICATES).contains(n)),
        _ => None,
    };
    Some(match n {
        Some(n) => {
            let span = value.span();
            let items = (0..n).map(|i| Expr::Number(crate::syntax::number::Number::from_i64(i), span)).collect();
            Ok((Ident { name: "seed".into(), span: name.span }, Expr::Sweep(items, span)))
        }
        None => Err(Problem::new(
            Code::TypeMismatch,
            value.span(),
            format!("`seeds` takes a whole number of replicates from 1 to {MAX_REPLICATES}"),
        )
        .label("not a number of seeds")
        .help("`seeds: 3` runs seeds 0, 1 and 2; for other seeds write `seed: sweep [...]`")),
    })
}

fn normalize_expr(e: &Expr, problems: &mut Vec<Problem>) -> Option<Expr> {
    Some(match e {
        Expr::Call(c) => Expr::Call(normalize_call(c, problems)?),
        Expr::List(items, s) => {
            Expr::List(items.iter().map(|i| normalize_expr(i, problems)).collect::<Option<_>>()?, *s)
        }
        Expr::Sweep(items, s) => {
            Expr::Sweep(items.iter().map(|i| normalize_expr(i, problems)).collect::<Option<_>>()?, *s)
        }
        other => other.clone(),
    })
}

/// Checks that a declaration's constructor makes what the keyword declares.
pub fn check_decl_ctor(
    kind: DeclKind,
    kind_span: crate::source::Span,
    call: &Call,
    problems: &mut Vec<Problem>,
) -> Option<&'static Ctor> {
    let c = ctor(&call.callee.name)?;
    match c.kind {
        CtorKind::Decl { decl, .. } if decl == kind => Some(c),
        CtorKind::Decl { decl, .. } => {
            problems.push(
                Problem::new(
                    Code::WrongKind,
                    call.callee.span,
                    format!("`{}` makes a {}, but this is declared as a {}", c.name, decl.keyword(), kind.keyword()),
                )
                .label(format!("makes a {}", decl.keyword()))
                .related(kind_span, format!("declared as a {}", kind.keyword()))
                .help(format!(
                    "write `{} name = {}(...)`, or use one of: {}",
                    decl.keyword(),
                    c.name,
                    ctors_for(kind)
                )),
            );
            None
        }
        CtorKind::Value(cat) => {
            problems.push(
                Problem::new(
                    Code::WrongKind,
                    call.callee.span,
                    format!("`{}` is {}, not something a declaration can make", c.name, cat_word(cat)),
                )
                .label("not a declaration constructor")
                .help(format!("a {} is made by one of: {}", kind.keyword(), ctors_for(kind))),
            );
            None
        }
    }
}

fn cat_word(c: Category) -> &'static str {
    match c {
        Category::Loss => "a loss",
        Category::Sampler => "a sampler",
    }
}

pub fn ctors_for(kind: DeclKind) -> String {
    crate::check::schema::CTORS
        .iter()
        .filter(|c| matches!(c.kind, CtorKind::Decl { decl, .. } if decl == kind))
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn signature_help(c: &Ctor) -> String {
    let ps: Vec<String> = c
        .params
        .iter()
        .map(|p| match p.default {
            crate::check::schema::Default::Required => p.name.to_string(),
            _ => format!("{}?", p.name),
        })
        .collect();
    format!("{}({})", c.name, ps.join(", "))
}

pub fn unknown_ctor(callee: &Ident, expected: Option<&str>) -> Problem {
    let names = crate::check::schema::CTORS.iter().map(|c| c.name);
    let p = Problem::new(Code::UnknownConstructor, callee.span, format!("unknown constructor `{}`", callee.name))
        .label("no such constructor");
    match did_you_mean(&callee.name, names) {
        Some(s) => p.help(format!("did you mean `{s}`?")),
        None => p.help(
            expected
                .map(|e| format!("expected {e}"))
                .unwrap_or_else(|| "see docs/language.md for the constructors".into()),
        ),
    }
}

pub fn unknown_arg(c: &Ctor, name: &Ident) -> Problem {
    let p = Problem::new(Code::UnknownArgument, name.span, format!("`{}` has no argument `{}`", c.name, name.name))
        .label("unknown argument");
    match did_you_mean(&name.name, c.params.iter().map(|p| p.name)) {
        Some(s) => p.help(format!("did you mean `{s}`? {} takes {}", c.name, signature_help(c))),
        None => p.help(format!("{} takes {}", c.name, signature_help(c))),
    }
}

/// Applies one override to a normalized call.
/// Overrides of one `with { ... }` that contradict each other: a path set
/// twice (`lr: 1e-3, lr: 3e-3`), or a part set and then dropped by setting
/// its whole (`sampler.temperature: 2, sampler: online(...)`). Setting a
/// whole and then one of its parts is fine: the part refines the new whole.
/// Returns false (after reporting) when any is found.
pub fn check_override_set(overrides: &[Override], problems: &mut Vec<Problem>) -> bool {
    let mut ok = true;
    // `seeds: N` sets `seed`: the two contradict like one path set twice.
    let names = |o: &Override| -> Vec<String> {
        match &o.path.segments[..] {
            [one] if one.name == "seeds" => vec!["seed".to_string()],
            all => all.iter().map(|s| s.name.clone()).collect(),
        }
    };
    for (i, later) in overrides.iter().enumerate() {
        let l = names(later);
        for earlier in &overrides[..i] {
            let e = names(earlier);
            if e == l {
                problems.push(
                    Problem::new(
                        Code::DuplicateArgument,
                        later.path.span,
                        format!("`{}` is set twice in one `with`", l.join(".")),
                    )
                    .label("second value")
                    .related(earlier.path.span, "first value")
                    .help("keep one of them: only the last would count"),
                );
                ok = false;
            } else if l.len() < e.len() && e[..l.len()] == l[..] {
                problems.push(
                    Problem::new(
                        Code::BadOverride,
                        later.path.span,
                        format!("`{}` is replaced whole here, dropping `{}` set before it", l.join("."), e.join(".")),
                    )
                    .label("replaces the whole")
                    .related(earlier.path.span, "dropped")
                    .help(format!(
                        "set `{}` first and `{}` after it, or put the value into the call",
                        l.join("."),
                        e.join(".")
                    )),
                );
                ok = false;
            }
        }
    }
    ok
}

pub fn apply_override(call: &mut Call, o: &Override, problems: &mut Vec<Problem>) -> bool {
    apply_path(call, &o.path.segments, &o.value, o, problems)
}

fn apply_path(call: &mut Call, path: &[Ident], value: &Expr, o: &Override, problems: &mut Vec<Problem>) -> bool {
    let Some(c) = ctor(&call.callee.name) else { return false };
    let head = &path[0];
    if c.param(&head.name).is_none() {
        match (path.len(), replicates(c, head, value)) {
            (1, Some(Ok((seed, sweep)))) => {
                let o = Override {
                    path: crate::syntax::ast::Path { segments: vec![seed], span: o.path.span },
                    ..o.clone()
                };
                return apply_path(call, &o.path.segments.clone(), &sweep, &o, problems);
            }
            (1, Some(Err(p))) => problems.push(p),
            _ => problems.push(unknown_arg(c, head)),
        }
        return false;
    }
    let existing = call.args.iter_mut().find(|a| a.name.as_ref().map(|n| n.name.as_str()) == Some(head.name.as_str()));
    if path.len() == 1 {
        let Some(value) = normalize_expr(value, problems) else { return false };
        match existing {
            Some(a) => {
                a.value = value;
                a.span = o.span;
            }
            None => call.args.push(Arg { name: Some(head.clone()), value, span: o.span }),
        }
        return true;
    }
    match existing.map(|a| &mut a.value) {
        Some(Expr::Call(inner)) => apply_path(inner, &path[1..], value, o, problems),
        Some(other) => {
            problems.push(
                Problem::new(
                    Code::BadOverride,
                    o.path.span,
                    format!("cannot reach into `{}`: it is not a call here", head.name),
                )
                .label("path goes through a non-call")
                .related(other.span(), "the base's value")
                .help(format!("override `{}` whole instead", head.name)),
            );
            false
        }
        None => {
            // Left at its default. Only a loss or sampler has parts to reach;
            // anything else (a number, a name) has none, given or not.
            let param = c.param(&head.name).expect("checked above");
            let problem = match param.ty {
                crate::check::schema::Ty::Value(cat) => Problem::new(
                    Code::BadOverride,
                    o.path.span,
                    format!("cannot reach into `{}`: the base leaves it at its default", head.name),
                )
                .label("nothing to override")
                .help(format!(
                    "set `{}` whole, as {}: `{}: ...(...)`",
                    head.name,
                    cat.describe(),
                    head.name
                )),
                ty => Problem::new(
                    Code::BadOverride,
                    o.path.span,
                    format!("`{}` is {}: it has no parts to reach into", head.name, ty.describe()),
                )
                .label("path goes through a value with no parts")
                .help(format!("override `{}` itself: `{}: ...`", head.name, head.name)),
            };
            problems.push(problem);
            false
        }
    }
}
