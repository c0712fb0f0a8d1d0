//! Looking after a cache: `verify` (every entry against its digests) and
//! `gc` (entries no kept experiment reaches).

use std::collections::HashSet;
use std::path::PathBuf;

use rayon::prelude::*;

use crate::exec::store::{Store, StoreError};
use crate::plan::{Key, Plan};

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub checked: usize,
    pub corrupt: Vec<(Key, String)>,
    /// Staging folders left by writers that are no longer running.
    pub stale_tmp: Vec<PathBuf>,
    /// Training nodes with saved state (stopped before their entry).
    pub resumable: Vec<crate::exec::resume::Pending>,
}

/// Is the writer of a staging folder (`<key>.<pid>-<host>.<random>`) gone?
/// Known only for writers on this host; a folder from another host (a cache
/// shared by Slurm jobs) counts as stale once it is a day old. Other folders
/// under `tmp/` (an eviction's leftovers) are stale.
fn stale(path: &std::path::Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let writer = name.split('.').nth(1).unwrap_or_default();
    let (pid, host) = writer.split_once('-').unwrap_or((writer, ""));
    let Ok(pid) = pid.parse::<u32>() else { return true };
    if host.is_empty() || host == crate::exec::store::this_host() {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    } else {
        let age = std::fs::metadata(path).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
        age.is_some_and(|a| a > std::time::Duration::from_secs(24 * 3600))
    }
}

pub fn verify(store: &Store) -> Result<VerifyReport, StoreError> {
    let keys = store.keys()?;
    let corrupt: Vec<(Key, String)> = keys
        .par_iter()
        .filter_map(|k| match store.verify(k) {
            Ok(_) => None,
            Err(StoreError::Corrupt { what, .. }) => Some((*k, what)),
            // Listed under objects/ but with no manifest: a damaged entry.
            Err(StoreError::Missing { .. }) => {
                Some((*k, "its folder has no manifest (an incomplete or damaged entry)".to_string()))
            }
            Err(e) => Some((*k, e.to_string())),
        })
        .collect();
    let resumable = crate::exec::resume::pending(store);
    // Staging folders of the cache, and of each node's saved state.
    let mut stale_tmp: Vec<PathBuf> = vec![];
    for tmp in std::iter::once(store.root().join("tmp")).chain(resumable.iter().map(|p| p.dir.join("tmp"))) {
        if let Ok(rd) = std::fs::read_dir(&tmp) {
            stale_tmp.extend(rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| stale(p)));
        }
    }
    stale_tmp.sort();
    Ok(VerifyReport { checked: keys.len(), corrupt, stale_tmp, resumable })
}

#[derive(Debug, Default)]
pub struct GcReport {
    /// (key, kind, names, bytes) of each unreachable entry.
    pub unreachable: Vec<(Key, String, Vec<String>, u64)>,
    pub kept: usize,
    pub stale_tmp: Vec<PathBuf>,
    /// Saved state of training nodes no kept experiment has: (node, folder).
    pub stale_resume: Vec<(Key, PathBuf)>,
    /// Entries of the kept experiments under another numerics profile,
    /// kept unless asked: (key, kind, profile).
    pub other_profile: Vec<(Key, String, &'static str)>,
}

impl GcReport {
    pub fn bytes(&self) -> u64 {
        self.unreachable.iter().map(|u| u.3).sum()
    }
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| rd.filter_map(|e| e.ok()).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// The nodes of some plans, and their training runs (whose checkpoints at
/// any step are theirs).
fn reach(plans: &[&Plan]) -> (HashSet<Key>, HashSet<String>) {
    let mut reachable: HashSet<Key> = HashSet::new();
    let mut runs: HashSet<String> = HashSet::new();
    for plan in plans {
        for n in plan.graph.node_weights() {
            reachable.insert(n.key);
            if matches!(n.op, crate::plan::Op::Train(_)) {
                runs.insert(n.key.hex());
            }
        }
    }
    (reachable, runs)
}

/// What a gc would remove given the plans to keep. Every node of a kept plan
/// is reachable, and so is every checkpoint (at any step) of a kept training
/// run. `elsewhere` holds the same experiments planned under the other
/// numerics profiles: their entries are kept (and listed) unless
/// `other_profiles` says to remove them too.
pub fn gc_report(
    store: &Store,
    keep: &[Plan],
    elsewhere: &[(&'static str, Plan)],
    other_profiles: bool,
) -> Result<GcReport, StoreError> {
    let (reachable, runs) = reach(&keep.iter().collect::<Vec<_>>());
    let others: Vec<(&'static str, HashSet<Key>, HashSet<String>)> = elsewhere
        .iter()
        .map(|(name, p)| {
            let (r, k) = reach(&[p]);
            (*name, r, k)
        })
        .collect();
    let mut report = GcReport::default();
    for k in store.keys()? {
        let m = match store.manifest(&k) {
            Ok(m) => m,
            Err(_) => {
                report.unreachable.push((k, "(unreadable)".into(), vec![], dir_bytes(&store.entry_dir(&k))));
                continue;
            }
        };
        let of_kept_run =
            m.kind == "checkpoint" && m.params.get("run").and_then(|r| r.as_str()).is_some_and(|r| runs.contains(r));
        let run_of = |runs: &HashSet<String>| {
            m.kind == "checkpoint" && m.params.get("run").and_then(|r| r.as_str()).is_some_and(|r| runs.contains(r))
        };
        let profile = others
            .iter()
            .find(|(_, nodes, their_runs)| nodes.contains(&k) || run_of(their_runs))
            .map(|(name, _, _)| *name);
        if reachable.contains(&k) || of_kept_run {
            report.kept += 1;
        } else if let (Some(profile), false) = (profile, other_profiles) {
            report.kept += 1;
            report.other_profile.push((k, m.kind.clone(), profile));
        } else {
            report.unreachable.push((k, m.kind.clone(), m.names.clone(), m.files.iter().map(|f| f.bytes).sum()));
        }
    }
    if let Ok(v) = verify(store) {
        report.stale_tmp = v.stale_tmp;
        report.stale_resume =
            v.resumable.into_iter().filter(|p| !reachable.contains(&p.node)).map(|p| (p.node, p.dir)).collect();
    }
    Ok(report)
}

/// Removes what a report found unreachable, stale staging folders, and
/// saved state no kept experiment will resume.
pub fn gc_delete(store: &Store, report: &GcReport) -> Result<(), StoreError> {
    for (k, ..) in &report.unreachable {
        store.evict(k)?;
    }
    for p in &report.stale_tmp {
        let _ = std::fs::remove_dir_all(p);
    }
    for (node, _) in &report.stale_resume {
        crate::exec::resume::clear_node(store, node);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::stale;

    #[test]
    fn a_staging_folder_is_stale_only_when_its_writer_is_known_gone() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| {
            let p = dir.path().join(name);
            std::fs::create_dir_all(&p).unwrap();
            p
        };
        let key = "ab".repeat(32);
        let mine = crate::exec::store::writer_tag();
        assert!(!stale(&at(&format!("{key}.{mine}.x1"))), "this process is alive");
        let host = crate::exec::store::this_host();
        assert!(stale(&at(&format!("{key}.4194999-{host}.x2"))), "no such pid here");
        // A writer on another host cannot be asked: a fresh folder is kept.
        assert!(!stale(&at(&format!("{key}.4194999-elsewhere.x3"))));
        assert!(stale(&at(&format!("{key}.evicted.123"))), "an eviction's leftover");
    }
}
