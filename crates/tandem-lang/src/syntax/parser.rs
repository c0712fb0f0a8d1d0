//! pest pairs → AST. One function per grammar rule, each returning the AST
//! node with its span.

use pest::iterators::Pair;
use pest::Parser as _;
use pest_derive::Parser;

use crate::diagnostic::{Code, Problem};
use crate::source::{FileId, Span};
use crate::syntax::ast::*;
use crate::syntax::number::{Number, NumberError};

#[derive(Parser)]
#[grammar = "../grammar/exp.pest"]
pub struct ExpParser;

/// The most syntax errors reported for one file; past a few, the rest are
/// usually echoes of the first.
pub const MAX_SYNTAX_ERRORS: usize = 20;

/// Parses one file. The file comes back whenever it parses: a bad literal
/// (a number that cannot be used, an unknown escape) is a problem, but the
/// file is still checked, with the literal's place marked in
/// [`File::poisoned`]. A syntax error stops pest, so parsing resumes at the
/// next declaration to find the others; then no file comes back.
pub fn parse_file(file: FileId, text: &str) -> (Option<File>, Vec<Problem>) {
    if let Some(p) = too_deep(file, text) {
        return (None, vec![p]);
    }
    // Detailed attempts let syntax errors name the tokens that were expected.
    pest::set_error_detail(true);
    let mut pairs = match ExpParser::parse(Rule::file, text) {
        Ok(pairs) => pairs,
        Err(e) => return (None, syntax_problems(file, text, e)),
    };
    let root = pairs.next().expect("the file rule always yields one pair");
    let mut p = P { file, problems: vec![] };
    let mut out = File { file, imports: vec![], lets: vec![], decls: vec![], poisoned: vec![] };
    for item in root.into_inner() {
        match item.as_rule() {
            Rule::import => out.imports.push(p.import(item)),
            Rule::let_decl => out.lets.push(p.let_decl(item)),
            Rule::decl => out.decls.push(p.decl(item)),
            Rule::EOI => {}
            r => unreachable!("grammar: unexpected item {r:?}"),
        }
    }
    out.poisoned = p.problems.iter().filter_map(|p| p.span).collect();
    (Some(out), p.problems)
}

/// Every syntax error of a file, the first from pest and then the others:
/// after each error parsing restarts at the declaration line the error lies
/// in (an unclosed bracket in the previous one makes pest stumble there), or,
/// when that was tried already, at the next declaration line.
fn syntax_problems(file: FileId, text: &str, first: pest::error::Error<Rule>) -> Vec<Problem> {
    let starts = item_starts(text);
    let mut problems = vec![syntax_problem(file, text, 0, first)];
    let mut base = 0;
    let mut at = problems[0].span.map_or(text.len(), |s| s.start);
    while problems.len() < MAX_SYNTAX_ERRORS {
        let containing = starts.iter().copied().filter(|s| *s <= at && *s > base).max();
        let Some(next) = containing.or_else(|| starts.iter().copied().find(|s| *s >= at && *s > base)) else { break };
        base = next;
        match ExpParser::parse(Rule::file, &text[next..]) {
            Ok(_) => break,
            Err(e) => {
                let p = syntax_problem(file, &text[next..], next, e);
                at = p.span.map_or(text.len(), |s| s.start);
                if !problems.iter().any(|q| q.span == p.span) {
                    problems.push(p);
                }
            }
        }
    }
    problems
}

/// Byte offsets of the lines that begin a declaration, a constant or an
/// import (`run x =`, `let x =`, `import "`): where a parse can restart.
/// No line inside a well-formed item looks like one.
fn item_starts(text: &str) -> Vec<usize> {
    let mut out = vec![];
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start_matches([' ', '\t', '\r']);
        let at = line_start + (line.len() - trimmed.len());
        line_start += line.len();
        let word_end = trimmed.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(trimmed.len());
        let (word, rest) = trimmed.split_at(word_end);
        let rest = rest.trim_start_matches([' ', '\t']);
        let begins = match word {
            "import" => rest.starts_with('"'),
            "let" | "world" | "dataset" | "model" | "run" | "eval" | "figure" => {
                let name_end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
                name_end > 0 && rest[name_end..].trim_start_matches([' ', '\t']).starts_with('=')
            }
            _ => false,
        };
        if begins {
            out.push(at);
        }
    }
    out
}

/// Parses one expression on its own, its spans offsets into `text` (the
/// parser's per-rule tests, `crates/tandem-lang/tests/parser.rs`, read it).
pub fn parse_expr(file: FileId, text: &str) -> Result<Expr, Vec<Problem>> {
    if let Some(p) = too_deep(file, text) {
        return Err(vec![p]);
    }
    pest::set_error_detail(true);
    let mut pairs = ExpParser::parse(Rule::expression, text).map_err(|e| vec![syntax_problem(file, text, 0, e)])?;
    let root = pairs.next().expect("the expression rule always yields one pair");
    let inner = root.into_inner().next().expect("an expression holds one");
    let mut p = P { file, problems: vec![] };
    let e = p.expr(inner);
    if p.problems.is_empty() {
        Ok(e)
    } else {
        Err(p.problems)
    }
}

struct P {
    file: FileId,
    problems: Vec<Problem>,
}

impl P {
    fn span(&self, pair: &Pair<Rule>) -> Span {
        let s = pair.as_span();
        Span::new(self.file, s.start(), s.end())
    }

    fn import(&mut self, pair: Pair<Rule>) -> Import {
        let span = self.span(&pair);
        let s = pair.into_inner().next().expect("import has a string");
        let path = self.string_contents(s);
        Import { path, span }
    }

    fn let_decl(&mut self, pair: Pair<Rule>) -> Let {
        let span = self.span(&pair);
        let mut it = pair.into_inner();
        let name = self.ident(it.next().expect("let name"));
        let value = self.expr(it.next().expect("let value"));
        Let { name, value, span }
    }

    fn decl(&mut self, pair: Pair<Rule>) -> Decl {
        let span = self.span(&pair);
        let mut it = pair.into_inner();
        let kind_pair = it.next().expect("decl kind");
        let kind_span = self.span(&kind_pair);
        let kind = DeclKind::from_keyword(kind_pair.as_str()).expect("grammar only admits kind keywords");
        let name = self.ident(it.next().expect("decl name"));
        let body_pair = it.next().expect("decl body");
        let body = match body_pair.as_rule() {
            Rule::derive => DeclBody::Derive(self.derive(body_pair)),
            _ => DeclBody::Expr(self.expr(body_pair)),
        };
        Decl { kind, kind_span, name, body, span }
    }

    fn derive(&mut self, pair: Pair<Rule>) -> Derive {
        let span = self.span(&pair);
        let mut it = pair.into_inner();
        let base = self.reference(it.next().expect("derive base"));
        let overrides = it
            .map(|o| {
                let span = self.span(&o);
                let mut oi = o.into_inner();
                let path = self.path(oi.next().expect("override path"));
                let value = self.expr(oi.next().expect("override value"));
                Override { path, value, span }
            })
            .collect();
        Derive { base, overrides, span }
    }

    fn path(&mut self, pair: Pair<Rule>) -> Path {
        let span = self.span(&pair);
        let segments = pair.into_inner().map(|i| self.ident(i)).collect();
        Path { segments, span }
    }

    fn ident(&mut self, pair: Pair<Rule>) -> Ident {
        Ident { name: pair.as_str().to_string(), span: self.span(&pair) }
    }

    fn number(&mut self, pair: &Pair<Rule>) -> Number {
        match Number::parse(pair.as_str()) {
            Ok(n) => n,
            Err(e) => {
                let why = match e {
                    NumberError::ExponentTooLarge => "its exponent is far too large",
                    NumberError::Malformed => "it is not a well-formed number",
                };
                self.problems.push(
                    Problem::new(
                        Code::BadNumber,
                        self.span(pair),
                        format!("`{}` is not a usable number: {why}", pair.as_str()),
                    )
                    .label("this number")
                    .help("write numbers like 42, 0.5, 1e-5, 4k (4000) or 2M (2000000)"),
                );
                Number::from_i64(0)
            }
        }
    }

    fn expr(&mut self, pair: Pair<Rule>) -> Expr {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::number => Expr::Number(self.number(&pair), span),
            Rule::string => Expr::String(self.string_contents(pair), span),
            Rule::boolean => Expr::Bool(pair.as_str() == "true", span),
            Rule::list => Expr::List(pair.into_inner().map(|e| self.expr(e)).collect(), span),
            Rule::sweep => {
                let list = pair.into_inner().next().expect("sweep has a list");
                Expr::Sweep(list.into_inner().map(|e| self.expr(e)).collect(), span)
            }
            Rule::call => Expr::Call(self.call(pair)),
            Rule::reference => Expr::Reference(self.reference(pair)),
            r => unreachable!("grammar: unexpected expression {r:?}"),
        }
    }

    fn call(&mut self, pair: Pair<Rule>) -> Call {
        let span = self.span(&pair);
        let mut it = pair.into_inner();
        let callee = self.ident(it.next().expect("callee"));
        let args = it
            .map(|a| {
                let span = self.span(&a);
                let inner: Vec<_> = a.into_inner().collect();
                let (name, value) = match inner.len() {
                    2 => {
                        let mut i = inner.into_iter();
                        let n = self.ident(i.next().unwrap());
                        (Some(n), self.expr(i.next().unwrap()))
                    }
                    _ => (None, self.expr(inner.into_iter().next().expect("arg value"))),
                };
                Arg { name, value, span }
            })
            .collect();
        Call { callee, args, span }
    }

    fn reference(&mut self, pair: Pair<Rule>) -> Reference {
        // pest's span of `name selector? checkpoint?` runs on over the
        // whitespace its optional parts tried; the reference ends where its
        // last part does (`a` in `a with {..}`, not `a `).
        let mut span = self.span(&pair);
        let mut it = pair.into_inner();
        let name = self.ident(it.next().expect("reference name"));
        span.end = name.span.end;
        let mut selector = vec![];
        let mut checkpoint = None;
        for part in it {
            span.end = part.as_span().end();
            match part.as_rule() {
                Rule::selector => {
                    for sel in part.into_inner() {
                        let span = self.span(&sel);
                        let mut si = sel.into_inner();
                        let path = self.path(si.next().expect("selection path"));
                        let value = self.expr(si.next().expect("selection value"));
                        selector.push(Selection { path, value, span });
                    }
                }
                Rule::checkpoint => {
                    let inner = part.into_inner().next().expect("checkpoint target");
                    checkpoint = Some(match inner.as_rule() {
                        Rule::number => CheckpointRef::Step(self.number(&inner), self.span(&inner)),
                        _ => CheckpointRef::Named(self.ident(inner)),
                    });
                }
                r => unreachable!("grammar: unexpected reference part {r:?}"),
            }
        }
        Reference { name, selector, checkpoint, span }
    }
}

/// Brackets nested deeper than this are refused before parsing: every later
/// stage walks the tree recursively, and no experiment needs more.
pub const MAX_NESTING: usize = 128;

/// Finds the first bracket that opens past [`MAX_NESTING`], outside strings
/// and comments.
fn too_deep(file: FileId, text: &str) -> Option<Problem> {
    let bytes = text.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(
                        Problem::new(
                            Code::Syntax,
                            Span::new(file, i, i + 1),
                            format!("brackets nested more than {MAX_NESTING} deep"),
                        )
                        .label("too deep")
                        .help("no experiment needs this much nesting; split the value into `let` constants"),
                    );
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

impl P {
    /// The text of a string literal with its escapes (`\n`, `\t`, `\\`,
    /// `\"`) resolved; any other escape is a problem at its place, not a
    /// silently dropped backslash.
    fn string_contents(&mut self, string: Pair<Rule>) -> String {
        let Some(inner) = string.into_inner().next() else { return String::new() };
        let (text, base) = (inner.as_str(), inner.as_span().start());
        let mut out = String::with_capacity(text.len());
        let mut chars = text.char_indices();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, e @ ('\\' | '"'))) => out.push(e),
                Some((j, other)) => {
                    let end = base + j + other.len_utf8();
                    self.problems.push(
                        Problem::new(
                            Code::Syntax,
                            Span::new(self.file, base + i, end),
                            format!("unknown escape `\\{other}`"),
                        )
                        .label("not an escape tandem knows")
                        .help("strings know \\n, \\t, \\\\ and \\\"; write `\\\\` for a backslash"),
                    );
                }
                None => {}
            }
        }
        out
    }
}

/// Turns pest's error into a problem with a readable "expected ..." message.
/// `text` is what was parsed, starting `offset` bytes into the file.
fn syntax_problem(file: FileId, text: &str, offset: usize, e: pest::error::Error<Rule>) -> Problem {
    use pest::error::{ErrorVariant, InputLocation};
    let (mut start, mut end) = match e.location {
        InputLocation::Pos(p) => (p, p),
        InputLocation::Span((s, e)) => (s, e),
    };
    // The furthest position any rule reached, and the literal tokens that
    // would have let it go on (`,`, `)`, ...): usually the real mistake.
    let mut tokens: Vec<String> = vec![];
    if let Some(attempts) = e.parse_attempts() {
        // Whitespace and comment starters are always acceptable; they say nothing.
        let all: Vec<String> = attempts
            .expected_tokens()
            .iter()
            .map(|t| t.to_string())
            .filter(|t| !t.trim().is_empty() && t != "#" && t != "//")
            .collect();
        // Name the tokens only when every one of them is punctuation: then
        // the mistake is a missing `,` or `)`, not a missing word.
        let punctuation = |t: &String| !t.is_empty() && t.len() <= 2 && t.chars().all(|c| "()[]{},:=@".contains(c));
        // After a number or a name, single characters that would extend it
        // (digits, `e`, `k`, `.`) are not what the user left out.
        let pos = attempts.max_position.min(text.len());
        let after_word = text[..pos].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let continuation = |t: &String| after_word && (t.chars().count() == 1 || t.contains(".."));
        let wanted: Vec<&String> = all.iter().filter(|t| punctuation(t)).collect();
        if !wanted.is_empty() && all.iter().all(|t| punctuation(t) || continuation(t)) && attempts.max_position >= start
        {
            for t in wanted {
                let w = format!("`{t}`");
                if !tokens.contains(&w) {
                    tokens.push(w);
                }
            }
            start = attempts.max_position.min(text.len());
            // Skip whitespace so the label sits on the next token.
            while start < text.len() && text[start..].starts_with(char::is_whitespace) {
                start += text[start..].chars().next().map(|c| c.len_utf8()).unwrap_or(1);
            }
            end = start;
        }
    }
    // Point at the offending token (or the end of input) rather than a zero-width spot.
    let end = if end > start {
        end
    } else {
        let rest = &text[start.min(text.len())..];
        let len = rest
            .char_indices()
            .find(|(i, c)| *i > 0 && (c.is_whitespace() || "()[]{},:=@".contains(*c)))
            .map(|(i, _)| i)
            .unwrap_or(rest.len())
            .max(rest.chars().next().map(|c| c.len_utf8()).unwrap_or(0));
        start + len
    };
    let found =
        if start >= text.len() { "the end of the file".to_string() } else { format!("`{}`", &text[start..end]) };
    let expected: Vec<String> = match &e.variant {
        _ if !tokens.is_empty() && tokens.len() <= 6 => {
            tokens.sort();
            tokens
        }
        ErrorVariant::ParsingError { positives, .. } => {
            let mut words: Vec<String> = positives.iter().filter_map(|r| rule_words(*r)).map(String::from).collect();
            words.sort();
            words.dedup();
            words
        }
        ErrorVariant::CustomError { .. } => vec![],
    };
    let message = if expected.is_empty() {
        format!("unexpected {found}")
    } else {
        format!("expected {}, found {found}", join_or(&expected))
    };
    let help = if found.starts_with("`") && is_keyword(&text[start..end]) {
        format!("`{}` is a reserved word and cannot be used as a name", &text[start..end])
    } else {
        "a file holds `import \"f.exp\"`, `let name = value` and declarations such as `run name = train(...)`; see docs/language.md".into()
    };
    Problem::new(Code::Syntax, Span::new(file, offset + start, offset + end), message)
        .label("not expected here")
        .help(help)
}

fn is_keyword(s: &str) -> bool {
    matches!(
        s,
        "import"
            | "let"
            | "with"
            | "sweep"
            | "true"
            | "false"
            | "world"
            | "dataset"
            | "model"
            | "run"
            | "eval"
            | "figure"
    )
}

fn rule_words(r: Rule) -> Option<&'static str> {
    Some(match r {
        Rule::import => "`import`",
        Rule::let_decl => "`let`",
        Rule::decl | Rule::kind => "a declaration (world, dataset, model, run, eval, figure)",
        Rule::ident | Rule::path | Rule::arg_name => "a name",
        Rule::number => "a number",
        Rule::string | Rule::string_inner => "a string",
        Rule::boolean => "true or false",
        Rule::list => "a list `[...]`",
        Rule::sweep => "`sweep [...]`",
        Rule::call => "a call `name(...)`",
        Rule::reference => "a name",
        Rule::arg => "an argument",
        Rule::override_item => "an override `name: value`",
        Rule::selection | Rule::selector => "a selection `axis: value`",
        Rule::checkpoint => "a checkpoint `@step`",
        Rule::derive => "`with { ... }`",
        Rule::EOI => "the end of the file",
        _ => return None,
    })
}

fn join_or(words: &[String]) -> String {
    match words {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}
