//! Reading an experiment's files: the root file and, recursively, its imports.
//! An import path is relative to the importing file. A file reached twice is
//! read once; a file that imports itself, directly or not, is an error.

use std::path::{Path, PathBuf};

use crate::diagnostic::{Code, Problem};
use crate::source::{FileId, SourceMap, Span};
use crate::syntax::ast::File;
use crate::syntax::parser::parse_file;

pub struct Loaded {
    pub sources: SourceMap,
    pub files: Vec<File>,
}

pub fn load(root: &Path, problems: &mut Vec<Problem>) -> Loaded {
    let mut loaded = Loaded { sources: SourceMap::default(), files: vec![] };
    let mut stack = vec![];
    load_one(root, None, &mut loaded, &mut stack, problems);
    loaded
}

/// Loads an experiment given as text (its imports are read from disk,
/// relative to `dir`). Used by tests and tools that build sources in memory.
pub fn load_text(name: &str, dir: &Path, text: &str, problems: &mut Vec<Problem>) -> Loaded {
    let mut loaded = Loaded { sources: SourceMap::default(), files: vec![] };
    let virtual_path = dir.join(name);
    let id = loaded.sources.add(name.to_string(), virtual_path.clone(), text.to_string());
    let (parsed, ps) = parse_file(id, text);
    problems.extend(ps);
    let Some(parsed) = parsed else { return loaded };
    let mut stack = vec![(virtual_path, Span::default())];
    for imp in &parsed.imports {
        load_one(&dir.join(&imp.path), Some(imp.span), &mut loaded, &mut stack, problems);
    }
    loaded.files.push(parsed);
    loaded
}

fn display_name(path: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    match cwd.and_then(|c| path.strip_prefix(&c).ok().map(Path::to_path_buf)) {
        Some(rel) => rel.display().to_string(),
        None => path.display().to_string(),
    }
}

fn load_one(
    path: &Path,
    from: Option<Span>,
    loaded: &mut Loaded,
    stack: &mut Vec<(PathBuf, Span)>,
    problems: &mut Vec<Problem>,
) {
    let canonical = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) => {
            let msg = format!("cannot read `{}`: {e}", display_name(path));
            problems.push(match from {
                Some(span) => Problem::new(Code::Io, span, msg)
                    .label("imported here")
                    .help("import paths are relative to the importing file"),
                None => Problem::without_span(Code::Io, msg),
            });
            return;
        }
    };
    if let Some(pos) = stack.iter().position(|(p, _)| *p == canonical) {
        let span = from.expect("the root cannot be on the stack already");
        let chain: Vec<String> =
            stack[pos..].iter().map(|(p, _)| display_name(p)).chain([display_name(&canonical)]).collect();
        problems.push(
            Problem::new(Code::ImportCycle, span, format!("import cycle: {}", chain.join(" → ")))
                .label("this import closes the cycle")
                .help("move the shared declarations into a file that both can import"),
        );
        return;
    }
    if loaded.sources.find(&canonical).is_some() {
        return; // already loaded through another import
    }
    let text = match std::fs::read(&canonical) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) => {
                let msg = format!("`{}` is not UTF-8 text", path.display());
                problems.push(match from {
                    Some(span) => Problem::new(Code::Io, span, msg).label("imported here"),
                    None => Problem::without_span(Code::Io, msg),
                });
                return;
            }
        },
        Err(e) => {
            let msg = format!("cannot read `{}`: {e}", path.display());
            problems.push(match from {
                Some(span) => Problem::new(Code::Io, span, msg).label("imported here"),
                None => Problem::without_span(Code::Io, msg),
            });
            return;
        }
    };
    let id: FileId = loaded.sources.add(display_name(&canonical), canonical.clone(), text);
    let (parsed, ps) = parse_file(id, &loaded.sources.get(id).text.clone());
    problems.extend(ps);
    let Some(parsed) = parsed else { return };
    stack.push((canonical.clone(), from.unwrap_or_default()));
    let dir = canonical.parent().map(Path::to_path_buf).unwrap_or_default();
    for imp in &parsed.imports {
        load_one(&dir.join(&imp.path), Some(imp.span), loaded, stack, problems);
    }
    stack.pop();
    loaded.files.push(parsed);
}
