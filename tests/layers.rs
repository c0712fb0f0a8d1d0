//! The pipeline's layering, checked from the source: every `crate::…` path
//! in a file of one layer must name a layer below it (or its own), and no two
//! files of one folder may import each other in a circle. ARCHITECTURE.md
//! draws the same picture; this test keeps it true.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each layer and the layers it may use, bottom to top.
const LAYERS: &[(&str, &[&str])] = &[
    ("source", &[]),
    ("diagnostic", &["source"]),
    ("render", &["diagnostic", "source"]),
    ("syntax", &["source", "diagnostic"]),
    ("check", &["syntax", "source", "diagnostic"]),
    ("plan", &["check", "syntax", "hfdir", "source", "diagnostic"]),
    ("hfdir", &[]),
    ("ml", &["hfdir"]),
    ("worlds", &["ml", "hfdir"]),
    ("exec", &["plan", "check", "ml", "hfdir", "worlds", "source", "diagnostic"]),
    ("report", &["exec", "plan", "check", "ml", "hfdir", "worlds", "source", "diagnostic"]),
    ("cli", &["report", "exec", "plan", "check", "syntax", "ml", "hfdir", "worlds", "source", "diagnostic", "render"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The two crates' source folders: the language (no libtorch) and the rest.
/// `crate::x` in either names the same module x (the `tandem` crate
/// re-exports the language's modules under their own names).
const SOURCE_DIRS: [&str; 2] = ["crates/tandem-lang/src", "src"];

/// A file's path below its crate's source folder.
fn in_crate(file: &Path) -> Option<&Path> {
    SOURCE_DIRS.iter().find_map(|d| file.strip_prefix(d).ok())
}

/// The layer of a source file: its folder under src/, or its own name.
fn layer_of(file: &Path) -> Option<String> {
    let rel = in_crate(file)?;
    let first = rel.components().next()?.as_os_str().to_string_lossy().into_owned();
    Some(first.trim_end_matches(".rs").to_string())
}

/// Every `crate::a::b…` path in code (comments left out), as its segments.
fn crate_paths(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let path: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
            let segs: Vec<String> = path.split("::").filter(|s| !s.is_empty()).map(String::from).collect();
            if !segs.is_empty() {
                out.push((i + 1, segs));
            }
            rest = after;
        }
    }
    out
}

fn sources() -> Vec<(PathBuf, String)> {
    let mut files = vec![];
    for d in SOURCE_DIRS {
        rust_files(Path::new(d), &mut files);
    }
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            (f, text)
        })
        .collect()
}

#[test]
fn imports_only_point_down_the_pipeline() {
    let allowed: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let mut wrong = vec![];
    for (file, text) in sources() {
        let Some(layer) = layer_of(&file) else { continue };
        let Some(may) = allowed.get(layer.as_str()) else {
            assert!(["lib", "main"].contains(&layer.as_str()), "{} is in no layer: add it to LAYERS", file.display());
            continue;
        };
        for (line, segs) in crate_paths(&text) {
            let to = segs[0].as_str();
            if to != layer && !may.contains(&to) && allowed.contains_key(to) {
                wrong.push(format!("{}:{line}: {layer} uses {to}", file.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "imports that point up (or sideways):\n{}", wrong.join("\n"));
}

#[test]
fn no_two_files_of_a_folder_import_each_other_in_a_circle() {
    use petgraph::graph::DiGraph;
    let mut graph: DiGraph<String, ()> = DiGraph::new();
    let mut ix = BTreeMap::new();
    let files = sources();
    let module_of = |f: &Path| -> Option<(String, String)> {
        let rel = in_crate(f)?;
        let parts: Vec<String> =
            rel.components().map(|c| c.as_os_str().to_string_lossy().trim_end_matches(".rs").to_string()).collect();
        (parts.len() == 2 && parts[1] != "mod").then(|| (parts[0].clone(), parts[1].clone()))
    };
    for (f, _) in &files {
        if let Some(m) = module_of(f) {
            ix.insert(m.clone(), graph.add_node(format!("{}/{}.rs", m.0, m.1)));
        }
    }
    for (f, text) in &files {
        let Some((folder, me)) = module_of(f) else { continue };
        for (_, segs) in crate_paths(text) {
            if segs.len() >= 2 && segs[0] == folder && segs[1] != me {
                if let Some(to) = ix.get(&(folder.clone(), segs[1].clone())) {
                    graph.update_edge(ix[&(folder.clone(), me.clone())], *to, ());
                }
            }
        }
    }
    let circles: Vec<String> = petgraph::algo::tarjan_scc(&graph)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| c.iter().map(|n| graph[*n].clone()).collect::<Vec<_>>().join(" ↔ "))
        .collect();
    assert!(circles.is_empty(), "files importing each other in a circle:\n{}", circles.join("\n"));
}

#[test]
fn the_checker_catches_an_upward_import() {
    // The scanner must see paths in `use` lines and inline.
    let found =
        crate_paths("use crate::exec::store::Store;\nlet x = crate::report::figures::f(); // crate::cli in a comment");
    let firsts: Vec<&str> = found.iter().map(|(_, s)| s[0].as_str()).collect();
    assert_eq!(firsts, ["exec", "report"]);
}

/// The language crate builds without libtorch: nothing it depends on, near
/// or far, is tch or torch-sys (the crate boundary the layers above draw).
#[test]
fn the_language_crate_depends_on_no_libtorch() {
    let meta = cargo_metadata();
    let nodes = meta["resolve"]["nodes"].as_array().unwrap();
    let deps: BTreeMap<&str, Vec<&str>> = nodes
        .iter()
        .map(|n| {
            let d = n["dependencies"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
            (n["id"].as_str().unwrap(), d)
        })
        .collect();
    let root = deps.keys().find(|id| id.contains("tandem-lang")).expect("the language crate is in the workspace");
    let (mut seen, mut todo) = (std::collections::BTreeSet::new(), vec![*root]);
    while let Some(id) = todo.pop() {
        if seen.insert(id) {
            todo.extend(deps.get(id).into_iter().flatten().copied());
        }
    }
    let torch: Vec<&&str> = seen.iter().filter(|id| id.contains("#tch@") || id.contains("#torch-sys@")).collect();
    assert!(torch.is_empty(), "tandem-lang depends on {torch:?}");
    assert!(seen.iter().any(|id| id.contains("#pest@")), "the closure was read: pest is in it");
}

/// What Cargo resolved for this host.
fn cargo_metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        // This host's packages only: others (Windows-only crates) were never downloaded.
        .args(["metadata", "--format-version", "1", "--locked", "--offline", "--filter-platform"])
        .arg(format!("{}-unknown-linux-gnu", std::env::consts::ARCH))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The `portable` profile's product must be matrixmultiply's AVX2+FMA kernel
/// on every host: its `avx512` feature would select another kernel (other
/// bytes) on AVX-512 hosts, and `threading` would split its sums. Cargo
/// unites a crate's features across everything that depends on it, so a new
/// dependency could turn either on unseen; this reads what Cargo resolved.
#[test]
fn the_portable_product_is_built_without_avx512_or_threads() {
    let meta = cargo_metadata();
    let nodes = meta["resolve"]["nodes"].as_array().unwrap();
    let mm: Vec<&serde_json::Value> =
        nodes.iter().filter(|n| n["id"].as_str().unwrap_or("").contains("matrixmultiply")).collect();
    assert_eq!(mm.len(), 1, "one matrixmultiply in the build");
    let features: Vec<&str> = mm[0]["features"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert!(features.contains(&"std"), "runtime detection of AVX2+FMA needs `std`: {features:?}");
    for bad in ["avx512", "threading"] {
        assert!(!features.contains(&bad), "matrixmultiply is built with `{bad}`: {features:?}");
    }
}
