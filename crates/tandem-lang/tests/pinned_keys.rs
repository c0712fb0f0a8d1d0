//! The full key set of the shipped studies, pinned: a refactor of the plan
//! or the executor must not move a key, or every cached artifact of every
//! user would silently stop being found.
//!
//! Each line of `tests/pinned/<study>.keys` is `key kind names`, sorted by
//! key. The files were written from the code as it was before the typed
//! plan; to rewrite them after a *deliberate* key change (a bumped node
//! version), run `TANDEM_PIN_KEYS=write cargo test --release --test pinned_keys`
//! and say in the commit why the keys moved.

mod common;

fn key_lines(study: &str) -> String {
    let plan = common::plan_path(&common::at_root(&format!("experiments/{study}.exp")))
        .unwrap_or_else(|e| panic!("{study}: {e}"));
    // Names sorted: which declaration reaches a shared node first is the
    // checker's business, not the key's.
    let mut lines: Vec<String> = plan
        .ordered()
        .into_iter()
        .map(|n| {
            let mut names = n.name_strings();
            names.sort();
            format!("{} {} {}", n.key.hex(), n.kind(), names.join(", "))
        })
        .collect();
    lines.sort();
    lines.join("\n") + "\n"
}

fn check(study: &str) {
    let path = common::at_root(&format!("tests/pinned/{study}.keys"));
    let now = key_lines(study);
    if std::env::var("TANDEM_PIN_KEYS").as_deref() == Ok("write") {
        std::fs::write(&path, &now).unwrap();
        return;
    }
    let pinned = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if pinned != now {
        let old: std::collections::BTreeSet<&str> = pinned.lines().collect();
        let new: std::collections::BTreeSet<&str> = now.lines().collect();
        let gone: Vec<&&str> = old.difference(&new).collect();
        let added: Vec<&&str> = new.difference(&old).collect();
        panic!(
            "{study}: the key set moved\n  gone ({}):\n    {}\n  new ({}):\n    {}",
            gone.len(),
            gone.iter().take(20).map(|s| s.to_string()).collect::<Vec<_>>().join("\n    "),
            added.len(),
            added.iter().take(20).map(|s| s.to_string()).collect::<Vec<_>>().join("\n    ")
        );
    }
}

#[test]
fn quickstart_keys_are_pinned() {
    check("quickstart");
}

#[test]
fn paper_keys_are_pinned() {
    check("paper");
}
