//! The constructor reference in docs/language.md is generated from the
//! schema; this test fails when they drift. Run with TANDEM_BLESS=1 to rewrite it.

const BEGIN: &str = "<!-- BEGIN GENERATED REFERENCE (tests/docs.rs keeps this in step with crates/tandem-lang/src/check/schema.rs) -->\n";
const END: &str = "<!-- END GENERATED REFERENCE -->";

#[test]
fn language_reference_matches_the_schema() {
    let path = "docs/language.md";
    let doc = std::fs::read_to_string(path).unwrap();
    let start = doc.find(BEGIN).expect("begin marker") + BEGIN.len();
    let end = doc.find(END).expect("end marker");
    let generated = tandem::check::reference::reference_markdown();
    if std::env::var_os("TANDEM_BLESS").is_some() {
        let new = format!("{}{}{}", &doc[..start], generated, &doc[end..]);
        std::fs::write(path, new).unwrap();
        return;
    }
    assert_eq!(
        &doc[start..end],
        generated,
        "docs/language.md is out of date: run `TANDEM_BLESS=1 cargo test --test docs`"
    );
}

#[test]
fn every_example_in_the_language_doc_that_is_a_whole_experiment_checks() {
    // The first example of the doc is a complete experiment but for its import.
    let doc = std::fs::read_to_string("docs/language.md").unwrap();
    let first = doc.split("```exp\n").nth(1).unwrap().split("```").next().unwrap();
    let text = first.replace("import \"worlds.exp\"", "");
    let checked = tandem::check::check_source("doc.exp", &text, Default::default());
    assert!(checked.is_ok(), "{}", tandem::cli::render::render(&checked.diagnostics, false, 100));
}

/// The README is for a newcomer: short, and its quickstart excerpt is a
/// study that checks.
#[test]
fn the_readme_is_short_and_its_quickstart_excerpt_checks() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let lines = readme.lines().count();
    assert!(lines < 300, "README.md has {lines} lines; what is not for a newcomer belongs in docs/");
    let excerpt = readme.split("```exp\n").nth(1).unwrap().split("```").next().unwrap();
    let checked = tandem::check::check_source("README.md", excerpt, Default::default());
    assert!(checked.is_ok(), "{}", tandem::cli::render::render(&checked.diagnostics, false, 100));
}

/// Every command the binary has is in the README's commands table.
/// Every experiment the README shows is written in the language as it is:
/// each `exp` block checks (its files are the reader's, so it is not planned).
#[test]
fn every_experiment_in_the_readme_checks() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let blocks: Vec<&str> = readme.split("```exp\n").skip(1).map(|b| b.split("```").next().unwrap()).collect();
    assert!(blocks.len() >= 2, "the quickstart and the own-data study");
    for b in blocks {
        let checked = tandem::check::check_source("README.md", b, Default::default());
        assert!(checked.is_ok(), "{}\n---\n{b}", tandem::cli::render::render(&checked.diagnostics, false, 100));
    }
}

#[test]
fn the_readme_names_every_command() {
    use clap::CommandFactory;
    let readme = std::fs::read_to_string("README.md").unwrap();
    let table: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `tandem ")).collect();
    for c in tandem::cli::args::Cli::command().get_subcommands() {
        let name = c.get_name();
        assert!(
            table.iter().any(|l| l.starts_with(&format!("| `tandem {name}"))),
            "README.md's commands table has no row for `tandem {name}`"
        );
    }
}
