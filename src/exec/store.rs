//! The content-addressed cache.
//!
//! ```text
//! cache/
//!   objects/<key hex>/manifest.json   what the entry is, and a digest of every file
//!   objects/<key hex>/<files...>      the artifacts
//!   tmp/<key hex>.<pid>-<host>.<random>/   entries being written
//! ```
//!
//! An entry is written in full under `tmp/` (files, then the manifest), every
//! file and the folder are fsynced, and the folder is renamed into `objects/`
//! in one step. A folder under `objects/` is therefore always complete: a
//! crash leaves at most a stray folder under `tmp/`, which never counts as
//! present. Every read of an artifact checks its blake3 digest.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plan::key::Key;
use crate::plan::node::Node;

pub const MANIFEST: &str = "manifest.json";
const FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum StoreError {
    #[error("cache I/O failed at {path}: {source}")]
    #[diagnostic(code(tandem::cache::io), help("check that the cache folder exists and is writable"))]
    Io { path: PathBuf, source: io::Error },

    #[error("cache entry {key} is corrupt: {what}")]
    #[diagnostic(
        code(tandem::cache::corrupt),
        help("the entry will be recomputed; `tandem verify` checks the whole cache")
    )]
    Corrupt { key: String, what: String },

    #[error("no cache entry {key}")]
    #[diagnostic(
        code(tandem::cache::missing),
        help("`tandem plan FILE` lists the keys of an experiment and whether each is cached")
    )]
    Missing { key: String },

    #[error("`{prefix}` matches {count} cache entries: {examples}")]
    #[diagnostic(code(tandem::cache::ambiguous), help("give more digits of the key"))]
    Ambiguous { prefix: String, count: usize, examples: String },

    #[error("the cache at {cache} is out of space: {what} needs at least {needed} more bytes ({available} free)")]
    #[diagnostic(
        code(tandem::cache::full),
        help(
            "free space on that filesystem or point --cache elsewhere, then run again: finished entries and saved \
             training state are kept, and nothing half-written counts (`tandem gc --delete` removes what no kept \
             study reaches)"
        )
    )]
    Full { cache: PathBuf, what: String, needed: u64, available: u64 },

    #[error("`{name}` is not a valid artifact file name")]
    #[diagnostic(
        code(tandem::cache::bad_name),
        help("artifact names are plain file names: letters, digits, '.', '-', '_'")
    )]
    BadName { name: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// Is this error a full filesystem (ENOSPC, or EDQUOT: a quota that is full)?
fn is_out_of_space(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull
        || e.kind() == io::ErrorKind::QuotaExceeded
        || matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Who writes a staging folder: `<pid>-<host>`, so that `verify` and `gc`
/// call a folder stale only when its writer is known dead (a cache shared by
/// Slurm hosts has writers on other machines).
pub fn writer_tag() -> String {
    format!("{}-{}", std::process::id(), this_host())
}

/// This machine's name, in characters safe in a file name.
pub fn this_host() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let name = if ok {
        String::from_utf8_lossy(&buf[..buf.iter().position(|&b| b == 0).unwrap_or(0)]).into_owned()
    } else {
        String::new()
    };
    let safe: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if safe.is_empty() {
        "unknown".into()
    } else {
        safe
    }
}

/// Bytes free to this process on the filesystem holding `path` (0 if
/// unknown): statvfs's blocks available to unprivileged users times its
/// fragment size, as `df` counts them.
fn available_bytes(path: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return 0 };
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a NUL-terminated path and `st` a statvfs the call fills;
    // it is read only when the call succeeds.
    if unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return 0;
    }
    let st = unsafe { st.assume_init() };
    st.f_bavail.saturating_mul(st.f_frsize)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    pub name: String,
    pub bytes: u64,
    pub blake3: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InputRef {
    pub path: String,
    pub key: Key,
}

/// What an entry is: enough to recompute it, explain it, and check it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    pub kind: String,
    pub key: Key,
    pub version: u32,
    pub names: Vec<String>,
    pub params: serde_json::Value,
    pub inputs: Vec<InputRef>,
    pub tool_version: String,
    pub created: String,
    pub files: Vec<FileEntry>,
    /// Seconds of computation this entry cost (for a checkpoint: since the
    /// run's step 0, over all resumptions). What reusing it saves.
    #[serde(default)]
    pub compute_seconds: f64,
    /// The machine and numerics settings that computed it (absent in
    /// entries written before tandem recorded them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<crate::exec::numerics::Host>,
    /// The parameters exactly as they were hashed into `key` (typed: floats
    /// by their bits, keys as keys), so that `verify` can recompute the key
    /// and catch a manifest edited after the fact. `params` is their JSON,
    /// for people. Absent in entries that are not plan nodes (saved
    /// training state) and in entries written before tandem recorded them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_params: Option<std::collections::BTreeMap<String, crate::plan::key::CValue>>,
}

impl Manifest {
    /// A manifest to fill: no files yet, written now by this tandem on this host.
    fn new(key: Key, kind: &str, names: Vec<String>, params: serde_json::Value) -> Manifest {
        Manifest {
            format: FORMAT,
            kind: kind.to_string(),
            key,
            version: 0,
            names,
            params,
            inputs: vec![],
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            files: vec![],
            compute_seconds: 0.0,
            host: Some(crate::exec::numerics::Host::now()),
            key_params: None,
        }
    }

    /// What the entry is, for messages: its kind and first name.
    fn what(&self) -> String {
        format!("{} {}", self.kind, self.names.first().map(String::as_str).unwrap_or("")).trim().to_string()
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating if needed) a cache folder.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let root = root.into();
        for sub in ["objects", "tmp"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        Ok(Store { root })
    }

    /// Opens a cache folder for reading only: nothing is created.
    pub fn open_existing(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn entry_dir(&self, key: &Key) -> PathBuf {
        self.root.join("objects").join(key.hex())
    }

    /// Present means renamed into `objects/`, which only ever happens to a
    /// complete entry.
    pub fn contains(&self, key: &Key) -> bool {
        self.entry_dir(key).join(MANIFEST).is_file()
    }

    /// Starts writing the entry for a plan node.
    pub fn begin(&self, node: &Node) -> Result<Staging, StoreError> {
        let key_params = node.op.key_params();
        let mut m = Manifest::new(node.key, node.kind(), node.name_strings(), params_json(&key_params));
        m.version = node.op.version();
        m.key_params = Some(key_params);
        m.inputs = node.inputs.iter().map(|(p, k)| InputRef { path: p.clone(), key: *k }).collect();
        self.begin_entry(m)
    }

    /// Starts writing an entry that is no plan node's (a training node's
    /// saved state, `exec/resume.rs`): same files, digests and commit rule.
    pub fn begin_other(
        &self,
        key: Key,
        kind: &str,
        names: Vec<String>,
        params: serde_json::Value,
    ) -> Result<Staging, StoreError> {
        self.begin_entry(Manifest::new(key, kind, names, params))
    }

    fn begin_entry(&self, manifest: Manifest) -> Result<Staging, StoreError> {
        let tmp = self.root.join("tmp");
        // Making a folder needs about a block where anything is needed.
        let full = |source: io::Error| {
            if is_out_of_space(&source) {
                let available = available_bytes(&self.root);
                StoreError::Full { cache: self.root.clone(), what: manifest.what(), needed: 4096, available }
            } else {
                StoreError::Io { path: tmp.clone(), source }
            }
        };
        fs::create_dir_all(&tmp).map_err(full)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}.{}.", manifest.key.hex(), writer_tag()))
            .tempdir_in(&tmp)
            .map_err(full)?;
        Ok(Staging { store: self.clone(), dir, manifest })
    }

    pub fn manifest(&self, key: &Key) -> Result<Manifest, StoreError> {
        let path = self.entry_dir(key).join(MANIFEST);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::Missing { key: key.hex() }),
            Err(e) => return Err(StoreError::Io { path, source: e }),
        };
        let m: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt { key: key.hex(), what: format!("unreadable manifest: {e}") })?;
        if m.key != *key {
            return Err(StoreError::Corrupt { key: key.hex(), what: format!("manifest names key {}", m.key) });
        }
        Ok(m)
    }

    /// Reads one artifact, checking its digest against the manifest.
    pub fn read(&self, key: &Key, name: &str) -> Result<Vec<u8>, StoreError> {
        let m = self.manifest(key)?;
        let entry = m
            .files
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| StoreError::Corrupt { key: key.hex(), what: format!("no file `{name}` in the manifest") })?;
        let path = self.entry_dir(key).join(name);
        let bytes = fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::Corrupt { key: key.hex(), what: format!("`{name}` is missing") },
            _ => StoreError::Io { path: path.clone(), source: e },
        })?;
        check_digest(key, entry, &bytes)?;
        Ok(bytes)
    }

    /// The path of an artifact after checking its digest: for readers (such as
    /// libtorch's) that want a file rather than bytes.
    pub fn verified_path(&self, key: &Key, name: &str) -> Result<PathBuf, StoreError> {
        self.read(key, name)?;
        Ok(self.entry_dir(key).join(name))
    }

    /// Checks an entry: its manifest's recorded parameters still hash to
    /// its key (and `params` still says what they are), and every file
    /// matches its digest.
    pub fn verify(&self, key: &Key) -> Result<Manifest, StoreError> {
        let m = self.manifest(key)?;
        if let Some(kp) = &m.key_params {
            let recomputed = crate::plan::key::node_key(&m.kind, m.version, kp);
            if recomputed != *key {
                return Err(StoreError::Corrupt {
                    key: key.hex(),
                    what: format!(
                        "its manifest's parameters hash to {}, not to its key: the manifest was changed after it was written",
                        recomputed.short()
                    ),
                });
            }
            if m.params != params_json(kp) {
                return Err(StoreError::Corrupt {
                    key: key.hex(),
                    what: "its manifest's `params` no longer say what its key was computed from: the manifest was changed after it was written".into(),
                });
            }
        }
        for f in &m.files {
            self.read(key, &f.name)?;
        }
        Ok(m)
    }

    /// Every complete entry.
    pub fn keys(&self) -> Result<Vec<Key>, StoreError> {
        let dir = self.root.join("objects");
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(StoreError::Io { path: dir, source: e }),
        };
        let mut out = vec![];
        for e in rd {
            let e = e.map_err(io_err(&dir))?;
            if let Some(k) = e.file_name().to_str().and_then(Key::from_hex) {
                out.push(k);
            }
        }
        out.sort();
        Ok(out)
    }

    /// The entry whose key starts with `prefix` (case-insensitive hex).
    pub fn resolve_prefix(&self, prefix: &str) -> Result<Key, StoreError> {
        let p = prefix.to_ascii_lowercase();
        let matches: Vec<Key> = self.keys()?.into_iter().filter(|k| k.hex().starts_with(&p)).collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(StoreError::Missing { key: prefix.to_string() }),
            many => Err(StoreError::Ambiguous {
                prefix: prefix.to_string(),
                count: many.len(),
                examples: many.iter().take(4).map(|k| k.short()).collect::<Vec<_>>().join(", "),
            }),
        }
    }

    /// A training run has no entry of its own: it is kept as its
    /// checkpoints, each an entry whose `run` input is the run's key. The
    /// run whose key starts with `prefix`, and its checkpoints in the cache
    /// as (step, key), by step; None when no checkpoint names such a run.
    pub fn run_checkpoints(&self, prefix: &str) -> Option<(Key, Vec<(i64, Key)>)> {
        let p = prefix.to_ascii_lowercase();
        let mut run = None;
        let mut out = vec![];
        for k in self.keys().ok()? {
            let Ok(m) = self.manifest(&k) else { continue };
            if m.kind != "checkpoint" {
                continue;
            }
            let Some(r) = m.inputs.iter().find(|i| i.path == "run" && i.key.hex().starts_with(&p)) else { continue };
            // Two runs under one prefix: the prefix names neither.
            if run.is_some_and(|seen| seen != r.key) {
                return None;
            }
            run = Some(r.key);
            out.push((m.params.get("step").and_then(|s| s.as_i64()).unwrap_or(0), k));
        }
        out.sort();
        run.map(|r| (r, out))
    }

    /// Removes a corrupt entry so it can be recomputed.
    pub fn evict(&self, key: &Key) -> Result<(), StoreError> {
        let dir = self.entry_dir(key);
        // Rename first so a reader never sees a half-deleted entry.
        let tmp = self.root.join("tmp");
        if !dir.exists() {
            return Ok(());
        }
        fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        let grave = tmp.join(format!("{}.evicted.{}", key.hex(), std::process::id()));
        match fs::rename(&dir, &grave) {
            Ok(()) => fs::remove_dir_all(&grave).map_err(io_err(&grave)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::Io { path: dir, source: e }),
        }
    }
}

/// Key parameters as the manifest's `params` JSON.
fn params_json(kp: &std::collections::BTreeMap<String, crate::plan::key::CValue>) -> serde_json::Value {
    serde_json::Value::Object(kp.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
}

fn check_digest(key: &Key, entry: &FileEntry, bytes: &[u8]) -> Result<(), StoreError> {
    if bytes.len() as u64 != entry.bytes {
        return Err(StoreError::Corrupt {
            key: key.hex(),
            what: format!("`{}` has {} bytes, the manifest says {}", entry.name, bytes.len(), entry.bytes),
        });
    }
    let digest = blake3::hash(bytes).to_hex().to_string();
    if digest != entry.blake3 {
        return Err(StoreError::Corrupt {
            key: key.hex(),
            what: format!("`{}` does not match its blake3 digest", entry.name),
        });
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != MANIFEST
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// An entry being written. Dropped without `commit`, it leaves nothing behind.
pub struct Staging {
    store: Store,
    dir: tempfile::TempDir,
    manifest: Manifest,
}

impl Staging {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes one artifact file.
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        if !valid_name(name) || self.manifest.files.iter().any(|f| f.name == name) {
            return Err(StoreError::BadName { name: name.to_string() });
        }
        let path = self.dir.path().join(name);
        let needed = bytes.len() as u64;
        File::create(&path)
            .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
            .map_err(|e| self.io_error(&path, needed, e))?;
        self.manifest.files.push(FileEntry {
            name: name.to_string(),
            bytes: bytes.len() as u64,
            blake3: blake3::hash(bytes).to_hex().to_string(),
        });
        Ok(())
    }

    /// An I/O error while writing `needed` bytes to `path`: a full
    /// filesystem is said as such, with what was being written.
    fn io_error(&self, path: &Path, needed: u64, source: io::Error) -> StoreError {
        if is_out_of_space(&source) {
            // What is free once the partial file is gone is what counts.
            let _ = fs::remove_file(path);
            self.full(needed, available_bytes(self.dir.path()))
        } else {
            StoreError::Io { path: path.to_path_buf(), source }
        }
    }

    /// For writers that report errors in their own terms (libtorch): if the
    /// filesystem has less than `needed` bytes free, the error is a full
    /// cache, said as such.
    pub fn out_of_space(&self, needed: u64) -> Option<StoreError> {
        let available = available_bytes(self.dir.path());
        (available < needed).then(|| self.full(needed, available))
    }

    fn full(&self, needed: u64, available: u64) -> StoreError {
        let written: u64 = self.manifest.files.iter().map(|f| f.bytes).sum();
        StoreError::Full {
            cache: self.store.root.clone(),
            what: format!("{} ({written} bytes written so far)", self.manifest.what()),
            needed,
            available,
        }
    }

    /// Records how long the entry took to compute.
    pub fn set_compute_seconds(&mut self, secs: f64) {
        self.manifest.compute_seconds = secs;
    }

    /// Registers a file that a writer (e.g. libtorch) already put in
    /// [`Staging::path`]: it is synced and its digest recorded.
    pub fn adopt(&mut self, name: &str) -> Result<(), StoreError> {
        if !valid_name(name) || self.manifest.files.iter().any(|f| f.name == name) {
            return Err(StoreError::BadName { name: name.to_string() });
        }
        let path = self.dir.path().join(name);
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        File::open(&path).and_then(|f| f.sync_all()).map_err(io_err(&path))?;
        self.manifest.files.push(FileEntry {
            name: name.to_string(),
            bytes: bytes.len() as u64,
            blake3: blake3::hash(&bytes).to_hex().to_string(),
        });
        Ok(())
    }

    /// Writes the manifest, syncs, and renames the entry into place. If an
    /// identical entry appeared meanwhile (another process computed the same
    /// node), that one is kept and this one discarded.
    pub fn commit(self) -> Result<Manifest, StoreError> {
        let mut m = self.manifest.clone();
        m.files.sort_by(|a, b| a.name.cmp(&b.name));
        let mpath = self.dir.path().join(MANIFEST);
        let json = serde_json::to_vec_pretty(&m).expect("manifests serialize");
        File::create(&mpath)
            .and_then(|mut f| f.write_all(&json).and_then(|_| f.sync_all()))
            .map_err(|e| self.io_error(&mpath, json.len() as u64, e))?;
        sync_dir(self.dir.path())?;
        let target = self.store.entry_dir(&m.key);
        let staged = self.dir.keep();
        match fs::rename(&staged, &target) {
            Ok(()) => {
                sync_dir(&self.store.root.join("objects"))?;
                Ok(m)
            }
            Err(_) if target.join(MANIFEST).is_file() => {
                let _ = fs::remove_dir_all(&staged);
                self.store.manifest(&m.key)
            }
            // A folder without a manifest (a damaged or hand-made entry) is
            // no entry: it gives way to the complete one.
            Err(_) if target.is_dir() => {
                self.store.evict(&m.key)?;
                match fs::rename(&staged, &target) {
                    Ok(()) => {
                        sync_dir(&self.store.root.join("objects"))?;
                        Ok(m)
                    }
                    Err(e) => {
                        let _ = fs::remove_dir_all(&staged);
                        Err(StoreError::Io { path: target, source: e })
                    }
                }
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&staged);
                Err(StoreError::Io { path: target, source: e })
            }
        }
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    /// A world node; `seed` tells nodes apart.
    fn node(seed: u64) -> Node {
        let op = crate::plan::Op::World(crate::plan::op::WorldSpec {
            flavour: crate::plan::op::WorldFlavour::Summarize,
            seed,
            vocab: 16,
            prompt_len: 4,
            response_len: 4,
            noise: 1.0,
            interaction: 0.0,
        });
        Node::new(op, vec![crate::plan::NodeName::Decl(crate::check::program::InstanceName::plain("n"))])
    }

    #[test]
    fn free_space_is_what_statvfs_says_and_nothing_for_a_missing_path() {
        let dir = tempfile::tempdir().unwrap();
        let free = available_bytes(dir.path());
        assert!(free > 0, "a writable temporary folder has room");
        // `df` reads the same statvfs fields: the two agree within what
        // other writers may do between the calls (1%).
        let df = std::process::Command::new("df").args(["--output=avail", "-B1"]).arg(dir.path()).output().unwrap();
        let theirs: u64 = String::from_utf8_lossy(&df.stdout).lines().nth(1).unwrap().trim().parse().unwrap();
        assert!(free.abs_diff(theirs) <= theirs / 100, "statvfs {free} against df {theirs}");
        assert_eq!(available_bytes(&dir.path().join("no/such/folder")), 0);
    }

    #[test]
    fn write_commit_read_verify() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let n = node(1);
        assert!(!store.contains(&n.key));
        let mut s = store.begin(&n).unwrap();
        s.write("spec.json", b"{\"a\":1}").unwrap();
        // Not present until committed.
        assert!(!store.contains(&n.key));
        let m = s.commit().unwrap();
        assert!(store.contains(&n.key));
        assert_eq!(m.files.len(), 1);
        assert_eq!(store.read(&n.key, "spec.json").unwrap(), b"{\"a\":1}");
        store.verify(&n.key).unwrap();
        assert_eq!(store.resolve_prefix(&n.key.short()).unwrap(), n.key);
        // Nothing is left in tmp.
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn dropped_staging_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let n = node(2);
        {
            let mut s = store.begin(&n).unwrap();
            s.write("a.bin", b"123").unwrap();
        }
        assert!(!store.contains(&n.key));
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn flipped_bit_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let n = node(2);
        let mut s = store.begin(&n).unwrap();
        s.write("a.bin", &[0u8, 1, 2, 3]).unwrap();
        s.commit().unwrap();
        let path = store.entry_dir(&n.key).join("a.bin");
        fs::write(&path, [0u8, 1, 2, 7]).unwrap();
        assert!(matches!(store.read(&n.key, "a.bin"), Err(StoreError::Corrupt { .. })));
        assert!(matches!(store.verify(&n.key), Err(StoreError::Corrupt { .. })));
        store.evict(&n.key).unwrap();
        assert!(!store.contains(&n.key));
    }

    #[test]
    fn second_writer_keeps_the_first_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let n = node(2);
        let mut a = store.begin(&n).unwrap();
        let mut b = store.begin(&n).unwrap();
        a.write("f", b"same").unwrap();
        b.write("f", b"same").unwrap();
        a.commit().unwrap();
        b.commit().unwrap();
        store.verify(&n.key).unwrap();
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut s = store.begin(&node(2)).unwrap();
        for bad in ["", "../x", "a/b", MANIFEST, ".hidden"] {
            assert!(matches!(s.write(bad, b""), Err(StoreError::BadName { .. })), "{bad}");
        }
    }
}
