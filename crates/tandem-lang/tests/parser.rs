//! The parser rule by rule: each grammar rule of `grammar/exp.pest` parsed on
//! its own and pinned as a tree with every node's span (inline insta
//! snapshots, so the input and the tree it gives read side by side). A span
//! is `start..end` in bytes, followed by the text it covers; a changed span
//! or shape shows up as a snapshot diff.
//!
//! Syntax errors are pinned as (code, span, message): where the parser points
//! and what it says.

use tandem_lang::source::{FileId, Span};
use tandem_lang::syntax::ast::{CheckpointRef, DeclBody, Expr, File, Path, Reference};
use tandem_lang::syntax::parser::{parse_expr, parse_file};

/// The tree of one expression, one node per line, children indented.
fn tree(text: &str) -> String {
    let e = parse_expr(FileId(0), text).unwrap_or_else(|p| panic!("{text:?} does not parse: {p:?}"));
    let mut out = String::new();
    expr(text, &e, 0, &mut out);
    out
}

/// The tree of a whole file's imports, constants and declarations.
fn file_tree(text: &str) -> String {
    let (f, problems) = parse_file(FileId(0), text);
    assert!(problems.is_empty(), "{text:?}: {problems:?}");
    let f: File = f.expect("a file");
    let mut out = String::new();
    for i in &f.imports {
        line(text, &mut out, 0, &format!("import {:?}", i.path), i.span);
    }
    for l in &f.lets {
        line(text, &mut out, 0, &format!("let {}", l.name.name), l.span);
        expr(text, &l.value, 1, &mut out);
    }
    for d in &f.decls {
        line(text, &mut out, 0, &format!("decl {} {}", d.kind.keyword(), d.name.name), d.span);
        match &d.body {
            DeclBody::Expr(e) => expr(text, e, 1, &mut out),
            DeclBody::Derive(dv) => {
                line(text, &mut out, 1, "with", dv.span);
                reference(text, &dv.base, 2, &mut out);
                for o in &dv.overrides {
                    line(text, &mut out, 2, &format!("override {}", o.path.dotted()), o.span);
                    path(text, &o.path, 3, &mut out);
                    expr(text, &o.value, 3, &mut out);
                }
            }
        }
    }
    out
}

/// The problems of a text that does not parse, as (code, span, message).
fn errors(text: &str) -> String {
    let (_, problems) = parse_file(FileId(0), text);
    assert!(!problems.is_empty(), "{text:?} parses");
    problems
        .iter()
        .map(|p| {
            let s = p.span.expect("a syntax problem has a place");
            format!("{:?} {}..{}: {}\n", p.code, s.start, s.end, p.message)
        })
        .collect()
}

fn line(text: &str, out: &mut String, depth: usize, what: &str, s: Span) {
    out.push_str(&format!("{}{what} {}..{} {:?}\n", "  ".repeat(depth), s.start, s.end, &text[s.start..s.end]));
}

fn expr(text: &str, e: &Expr, depth: usize, out: &mut String) {
    match e {
        Expr::Number(n, s) => line(text, out, depth, &format!("number {n}"), *s),
        Expr::String(v, s) => line(text, out, depth, &format!("string {v:?}"), *s),
        Expr::Bool(b, s) => line(text, out, depth, &format!("bool {b}"), *s),
        Expr::List(items, s) | Expr::Sweep(items, s) => {
            line(text, out, depth, if matches!(e, Expr::List(..)) { "list" } else { "sweep" }, *s);
            for i in items {
                expr(text, i, depth + 1, out);
            }
        }
        Expr::Call(c) => {
            line(text, out, depth, &format!("call {}", c.callee.name), c.span);
            for a in &c.args {
                let name = a.name.as_ref().map_or("(positional)".to_string(), |n| n.name.clone());
                line(text, out, depth + 1, &format!("arg {name}"), a.span);
                expr(text, &a.value, depth + 2, out);
            }
        }
        Expr::Reference(r) => reference(text, r, depth, out),
    }
}

fn reference(text: &str, r: &Reference, depth: usize, out: &mut String) {
    line(text, out, depth, &format!("ref {}", r.name.name), r.span);
    for sel in &r.selector {
        line(text, out, depth + 1, &format!("select {}", sel.path.dotted()), sel.span);
        expr(text, &sel.value, depth + 2, out);
    }
    match &r.checkpoint {
        Some(CheckpointRef::Step(n, s)) => line(text, out, depth + 1, &format!("at step {n}"), *s),
        Some(CheckpointRef::Named(i)) => line(text, out, depth + 1, &format!("at constant {}", i.name), i.span),
        None => {}
    }
}

fn path(text: &str, p: &Path, depth: usize, out: &mut String) {
    for s in &p.segments {
        line(text, out, depth, &format!("segment {}", s.name), s.span);
    }
}

#[test]
fn number() {
    insta::assert_snapshot!(tree("4k"), @r#"number 4000 0..2 "4k""#);
    insta::assert_snapshot!(tree("-1.5e-3"), @r#"number -1.5e-3 0..7 "-1.5e-3""#);
}

#[test]
fn string_and_boolean() {
    insta::assert_snapshot!(tree(r#""a \"b\"""#), @r#"string "a \"b\"" 0..9 "\"a \\\"b\\\"\"""#);
    insta::assert_snapshot!(tree("true"), @r#"bool true 0..4 "true""#);
}

#[test]
fn list() {
    insta::assert_snapshot!(tree("[1, 2,]"), @r#"
    list 0..7 "[1, 2,]"
      number 1 1..2 "1"
      number 2 4..5 "2"
    "#);
}

#[test]
fn sweep() {
    insta::assert_snapshot!(tree("sweep [1e-4, 3e-4]"), @r#"
    sweep 0..18 "sweep [1e-4, 3e-4]"
      number 1e-4 7..11 "1e-4"
      number 3e-4 13..17 "3e-4"
    "#);
}

#[test]
fn call_with_named_and_positional_arguments() {
    insta::assert_snapshot!(tree("train(sft, loss: ipo(beta: 0.1))"), @r#"
    call train 0..32 "train(sft, loss: ipo(beta: 0.1))"
      arg (positional) 6..9 "sft"
        ref sft 6..9 "sft"
      arg loss 11..31 "loss: ipo(beta: 0.1)"
        call ipo 17..31 "ipo(beta: 0.1)"
          arg beta 21..30 "beta: 0.1"
            number 1e-1 27..30 "0.1"
    "#);
}

#[test]
fn reference_with_selector_and_checkpoint() {
    insta::assert_snapshot!(tree("online[lr: 1e-3, loss.beta: 0.1]@300"), @r#"
    ref online 0..36 "online[lr: 1e-3, loss.beta: 0.1]@300"
      select lr 7..15 "lr: 1e-3"
        number 1e-3 11..15 "1e-3"
      select loss.beta 17..31 "loss.beta: 0.1"
        number 1e-1 28..31 "0.1"
      at step 300 33..36 "300"
    "#);
    insta::assert_snapshot!(tree("online@steps_800"), @r#"
    ref online 0..16 "online@steps_800"
      at constant steps_800 7..16 "steps_800"
    "#);
}

#[test]
fn import_let_and_declaration() {
    insta::assert_snapshot!(file_tree("import \"setup.exp\"\nlet n = 3\nworld w = summarize(seed: n)\n"), @r#"
    import "setup.exp" 0..18 "import \"setup.exp\""
    let n 19..28 "let n = 3"
      number 3 27..28 "3"
    decl world w 29..57 "world w = summarize(seed: n)"
      call summarize 39..57 "summarize(seed: n)"
        arg seed 49..56 "seed: n"
          ref n 55..56 "n"
    "#);
}

#[test]
fn derivation_with_overrides() {
    insta::assert_snapshot!(file_tree("run b = a with { loss.beta: 0.5, steps: 10 }"), @r#"
    decl run b 0..44 "run b = a with { loss.beta: 0.5, steps: 10 }"
      with 8..44 "a with { loss.beta: 0.5, steps: 10 }"
        ref a 8..9 "a"
        override loss.beta 17..31 "loss.beta: 0.5"
          segment loss 17..21 "loss"
          segment beta 22..26 "beta"
          number 5e-1 28..31 "0.5"
        override steps 33..42 "steps: 10"
          segment steps 33..38 "steps"
          number 10 40..42 "10"
    "#);
}

#[test]
fn syntax_errors_point_at_the_place_and_say_what_was_expected() {
    insta::assert_snapshot!(errors("world w = summarize(seed: )"), @"Syntax 26..27: expected `sweep [...]`, a list `[...]`, a name, a number, a string or true or false, found `)`");
    insta::assert_snapshot!(errors("run r = train(a,, b)"), @"Syntax 16..17: expected an argument, found `,`");
    insta::assert_snapshot!(errors("let x = [1, 2"), @"Syntax 13..13: expected `,` or `]`, found the end of the file");
}

/// A keyword cannot be a name, and a number cannot run into a name.
#[test]
fn keywords_and_glued_numbers_are_refused() {
    insta::assert_snapshot!(errors("world sweep = summarize()"), @"Syntax 6..11: expected a name, found `sweep`");
    insta::assert_snapshot!(errors("let x = 12abc"), @"Syntax 8..13: expected `sweep [...]`, a list `[...]`, a name, a number, a string or true or false, found `12abc`");
}
