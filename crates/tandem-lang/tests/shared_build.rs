//! The language crate's build serves the workspace's. CI runs `cargo test -p
//! tandem-lang` first and `cargo test --workspace` later, in one target
//! folder; Cargo reuses a compiled dependency only when it was compiled with
//! the same features, and it settles features over the packages a command
//! names. `crates/shared-deps` asks, on the language crate's behalf, for the
//! features the rest of the workspace turns on. This test reads what Cargo
//! resolves for the two commands (`cargo tree`, which resolves as a build
//! does, and compiles nothing) and names any crate whose features differ,
//! so a new dependency that turns on another feature is caught here rather
//! than as a slower CI.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each package (name and version) and the feature sets it is built with.
type Resolved = BTreeMap<String, BTreeSet<String>>;

/// `cargo tree` over `packages`, following `edges`, locked. Not offline:
/// on a machine that built only the language crate, the workspace's other
/// crates (tch, torch-sys: their manifests, not libtorch) are not yet
/// downloaded, and Cargo fetches them as it would for the build.
fn resolve(packages: &[&str], edges: &str) -> Resolved {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::process::Command::new(cargo)
        .args(["tree", "--locked", "--no-dedupe", "--prefix", "none", "--format", "{p}|{f}", "-e", edges])
        .args(packages)
        .current_dir(root)
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "cargo tree: {}", String::from_utf8_lossy(&out.stderr));
    let mut resolved = Resolved::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((package, features)) = line.split_once('|') else { continue };
        // "name v1.2.3 (/path) (proc-macro) (*)": the name and version only.
        let id: String = package.split(' ').take(2).collect::<Vec<_>>().join(" ");
        resolved.entry(id).or_default().insert(features.trim().to_string());
    }
    resolved
}

const LANGUAGE: &[&str] = &["-p", "tandem-lang"];
const WORKSPACE: &[&str] = &["--workspace"];

/// What differs between the two resolutions, a line per crate.
fn differences(language: &Resolved, workspace: &Resolved, exact: bool) -> Vec<String> {
    language
        .iter()
        .filter(|(id, sets)| {
            let theirs = workspace.get(*id);
            match exact {
                true => theirs != Some(sets),
                false => !theirs.is_some_and(|t| sets.is_subset(t)),
            }
        })
        .map(|(id, sets)| {
            format!("{id}: the language crate builds it with {sets:?}, the workspace with {:?}", workspace.get(id))
        })
        .collect()
}

#[test]
fn the_language_crate_compiles_its_dependencies_as_the_workspace_does() {
    // The crates compiled for the target (no build scripts, no derive
    // macros): each must have exactly the workspace's features.
    let target = "normal,dev,no-proc-macro";
    let mut wrong = differences(&resolve(LANGUAGE, target), &resolve(WORKSPACE, target), true);
    // Every crate, host side included: each of the language's feature sets
    // must be one the workspace builds too (a crate may be compiled for the
    // host and for the target with different features in the workspace).
    let all = "normal,build,dev";
    let language = resolve(LANGUAGE, all);
    wrong.extend(differences(&language, &resolve(WORKSPACE, all), false));
    assert!(language.keys().any(|id| id.starts_with("pest ")), "the tree was read: pest is in it");
    assert!(
        wrong.is_empty(),
        "the workspace build would compile these again; add their features to crates/shared-deps/Cargo.toml:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn a_difference_in_features_is_seen() {
    let one = |sets: &[&str]| -> Resolved {
        [("libc v0.2".to_string(), sets.iter().map(|s| s.to_string()).collect())].into_iter().collect()
    };
    let (language, workspace) = (one(&["std"]), one(&["extra_traits,std"]));
    assert_eq!(differences(&language, &workspace, true).len(), 1);
    assert_eq!(differences(&language, &workspace, false).len(), 1);
    // A host build with other features beside the same target build: fine
    // for the loose test, not for the exact one.
    let host_and_target = one(&["std", "extra_traits,std"]);
    assert!(differences(&language, &host_and_target, false).is_empty());
    assert_eq!(differences(&language, &host_and_target, true).len(), 1);
    assert!(differences(&language, &language, true).is_empty());
}
