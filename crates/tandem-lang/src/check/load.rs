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
    let text = normalize(text.to_string());
    let id = loaded.sources.add(name.to_string(), virtual_path.clone(), text.clone());
    let (parsed, ps) = parse_file(id, &text);
    problems.extend(ps);
    let Some(parsed) = parsed else { return loaded };
    let mut stack = vec![(virtual_path, Span::default())];
    for imp in &parsed.imports {
        load_one(&dir.join(&imp.path), Some(imp.span), &mut loaded, &mut stack, problems);
    }
    loaded.files.push(parsed);
    loaded
}

/// The text as the parser reads it: a leading byte-order mark dropped, and
/// CRLF and CR-only line endings made LF. A file saved by any editor on any
/// system then checks exactly as its LF twin (a `#` comment ends at the end
/// of its line whatever ends it; positions are in the normalised text).
pub fn normalize(text: String) -> String {
    let text = text.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(text);
    if !text.contains('\r') {
        return text;
    }
    text.replace("\r\n", "\n").replace('\r', "\n")
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
    // Only a regular file is read: `/dev/zero` or a FIFO would never end.
    if let Ok(meta) = std::fs::metadata(&canonical) {
        if !meta.is_file() {
            let what = if meta.is_dir() { "a folder" } else { "not a regular file (a device, FIFO or socket)" };
            let msg = format!("`{}` is {what}: an experiment is read from a regular file", display_name(path));
            problems.push(match from {
                Some(span) => Problem::new(Code::Io, span, msg).label("imported here").help("import a `.exp` file"),
                None => Problem::without_span(Code::Io, msg),
            });
            return;
        }
    }
    let text = match std::fs::read(&canonical) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(t) => normalize(t),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings_and_a_byte_order_mark_read_as_lf_text() {
        let lf = "# a comment\nlet x = 1\n";
        assert_eq!(normalize(lf.to_string()), lf);
        assert_eq!(normalize("# a comment\r\nlet x = 1\r\n".into()), lf);
        assert_eq!(normalize("# a comment\rlet x = 1\r".into()), lf);
        assert_eq!(normalize("\u{feff}# a comment\nlet x = 1\n".into()), lf);
        // A mark inside the text is not a file's mark: it stays.
        assert_eq!(normalize("a\u{feff}".into()), "a\u{feff}");
    }
}
