//! Source files and spans. Spans are byte ranges into one file; the file is
//! named by a [`FileId`] into a [`SourceMap`], which can hand miette a named
//! source for rendering.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{NamedSource, SourceSpan};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FileId(pub u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub file: FileId,
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span { file, start, end }
    }

    pub fn to(self, other: Span) -> Span {
        Span { file: self.file, start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

impl From<Span> for SourceSpan {
    fn from(s: Span) -> SourceSpan {
        SourceSpan::new(s.start.into(), s.end.saturating_sub(s.start))
    }
}

/// One loaded file: the name shown to users and its text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as the user should see it (relative where possible).
    pub name: String,
    /// The canonical path, used to detect a file imported twice and cycles.
    pub path: PathBuf,
    pub text: Arc<String>,
}

/// All files read while checking one experiment.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn add(&mut self, name: String, path: PathBuf, text: String) -> FileId {
        self.files.push(SourceFile { name, path, text: Arc::new(text) });
        FileId((self.files.len() - 1) as u32)
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn find(&self, path: &Path) -> Option<FileId> {
        self.files.iter().position(|f| f.path == path).map(|i| FileId(i as u32))
    }

    /// A miette source for a file: its display name and full text.
    pub fn named_source(&self, id: FileId) -> NamedSource<Arc<String>> {
        let f = self.get(id);
        NamedSource::new(f.name.clone(), f.text.clone()).with_language("exp")
    }

    pub fn text(&self, span: Span) -> &str {
        let t = &self.get(span.file).text;
        t.get(span.start..span.end).unwrap_or("")
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}
