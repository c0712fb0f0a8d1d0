//! The TextMate grammar in editors/vscode says what the language says: its
//! keywords are the parser's, its constructors the checker's, and its
//! patterns pick out the parts of a real line.

mod common;

use std::collections::BTreeSet;

fn grammar() -> serde_json::Value {
    let text = std::fs::read_to_string(common::at_root("editors/vscode/syntaxes/tandem.tmLanguage.json")).unwrap();
    serde_json::from_str(&text).expect("the grammar is JSON")
}

/// The alternatives `a|b|c` inside the first `\b(...)` of a pattern.
fn alternatives(pattern: &str) -> BTreeSet<String> {
    let inner = pattern.split("\\b(").nth(1).unwrap().split(')').next().unwrap();
    inner.split('|').map(str::to_string).collect()
}

#[test]
fn keywords_are_the_parsers() {
    let g = grammar();
    let r = &g["repository"];
    let mut ours = alternatives(r["declaration"]["match"].as_str().unwrap());
    ours.extend(alternatives(r["keyword"]["match"].as_str().unwrap()));
    ours.extend(alternatives(r["constant"]["match"].as_str().unwrap()));
    let pest = std::fs::read_to_string(common::at_root("crates/tandem-lang/grammar/exp.pest")).unwrap();
    let rule = pest.lines().find(|l| l.starts_with("keyword ")).unwrap();
    let theirs: BTreeSet<String> = rule.split('"').skip(1).step_by(2).map(str::to_string).collect::<BTreeSet<_>>();
    assert_eq!(ours, theirs);
}

#[test]
fn constructors_are_the_checkers() {
    let g = grammar();
    let pattern = g["repository"]["constructor"]["patterns"][0]["match"].as_str().unwrap();
    let ours = alternatives(pattern);
    let theirs: BTreeSet<String> = tandem_lang::check::schema::CTORS.iter().map(|c| c.name.to_string()).collect();
    assert_eq!(ours, theirs, "editors/vscode/syntaxes/tandem.tmLanguage.json lists other constructors than the schema");
}

/// Every span of `line` that the repository pattern `rule` (or its first
/// sub-pattern, or capture `group`) matches.
fn matches(rule: &str, group: usize, line: &str) -> Vec<String> {
    let g = grammar();
    let r = &g["repository"][rule];
    let pattern = r["match"].as_str().or_else(|| r["patterns"][0]["match"].as_str()).unwrap();
    let re = fancy_regex::Regex::new(pattern).unwrap_or_else(|e| panic!("{rule}: {e}"));
    re.captures_iter(line).map(|c| c.unwrap().get(group).unwrap().as_str().to_string()).collect()
}

#[test]
fn the_patterns_find_the_parts_of_a_line() {
    let line = "run online = train(sft, loss: ipo(beta: 0.1), lr: sweep [1e-5, 3e-4], steps: 4k) # note";
    assert_eq!(matches("declaration", 2, line), ["online"]);
    assert_eq!(matches("constructor", 1, line), ["train", "ipo"]);
    assert_eq!(matches("argument", 1, line), ["loss", "beta", "lr", "steps"]);
    assert_eq!(matches("number", 0, line), ["0.1", "1e-5", "3e-4", "4k"]);
    assert_eq!(matches("keyword", 0, line), ["sweep"]);
    assert_eq!(matches("comment", 0, line), ["# note"]);
    assert_eq!(matches("checkpoint", 2, "eval e = kl(policies: [online@800, tandem@steps])"), ["800", "steps"]);
    // A name with digits is not a number; a path is one argument.
    assert!(matches("number", 0, "model sft2 = sft(d_1)").is_empty());
    assert_eq!(matches("argument", 1, "run b = a with { loss.beta: 0.5 }"), ["loss.beta"]);
}
