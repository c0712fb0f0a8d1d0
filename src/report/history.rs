//! Results that keep their history. Every `tandem run` writes its results
//! into `results/<study>/` (the latest, rewritten each time) and keeps a
//! copy of what it wrote in `results/<study>/history/<UTC time>/`:
//! `evals.csv`, the report (its HTML carries its figures) and `run.json`,
//! which records the study, the settings from the command line, the
//! numerics profile and every key of the plan. Two results folders, the
//! latest or any of its history, are compared by `tandem diff A B`: the
//! keys only one has, and the evaluations whose values moved.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plan::Plan;

/// The record of one run's results (`run.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    pub format: u32,
    /// The study file as given on the command line.
    pub study: String,
    /// When the results were written (RFC 3339, UTC).
    pub time: String,
    /// `--set` settings, as typed.
    pub settings: Vec<String>,
    pub numerics: String,
    /// Every key of the plan (64 hex digits), sorted.
    pub keys: Vec<String>,
}

pub const RECORD: &str = "run.json";
/// The files of a results folder a history entry keeps.
const KEPT: [&str; 4] = ["evals.csv", "report.md", "report.html", RECORD];

impl RunRecord {
    pub fn new(study: &Path, plan: &Plan, settings: &[String], numerics: &str) -> RunRecord {
        let keys: BTreeSet<String> = plan.graph.node_weights().map(|n| n.key.hex()).collect();
        RunRecord {
            format: 1,
            study: study.display().to_string(),
            time: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            settings: settings.to_vec(),
            numerics: numerics.to_string(),
            keys: keys.into_iter().collect(),
        }
    }
}

/// Writes `run.json` into `dir` (beside the results just written) and
/// copies the kept files into `dir/history/<time>/`. Returns that folder.
pub fn record(dir: &Path, record: &RunRecord) -> std::io::Result<PathBuf> {
    let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    write_atomically(&dir.join(RECORD), &json)?;
    // `2026-12-03T21:30:05Z` as a folder name any filesystem takes.
    let stamp = record.time.replace(':', "-");
    let history = dir.join("history");
    std::fs::create_dir_all(&history)?;
    // Two runs within one second get folders of their own.
    let mut entry = history.join(&stamp);
    let mut n = 1;
    while entry.exists() {
        n += 1;
        entry = history.join(format!("{stamp}-{n}"));
    }
    // Written beside, then renamed: a history entry is whole or absent.
    let tmp = tempfile::Builder::new().prefix(".partial-").tempdir_in(&history)?;
    for name in KEPT {
        let from = dir.join(name);
        if from.is_file() {
            std::fs::copy(&from, tmp.path().join(name))?;
        }
    }
    std::fs::rename(tmp.keep(), &entry)?;
    Ok(entry)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Whether `path` is a results folder (it has a `run.json`).
pub fn is_results_dir(path: &Path) -> bool {
    path.join(RECORD).is_file()
}

/// One evaluation result, as `evals.csv` has it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Value {
    pub value: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub key: String,
}

/// What identifies a row of `evals.csv`: evaluation, target (with its
/// step), metric and, along a data stream, the stream step.
pub type RowId = (String, String, String, String);

/// A results folder read back: its record and its evaluations.
#[derive(Debug, Clone)]
pub struct Results {
    pub dir: PathBuf,
    pub record: RunRecord,
    pub evals: BTreeMap<RowId, Value>,
}

#[derive(Deserialize)]
struct EvalsRow {
    eval: String,
    target: String,
    metric: String,
    value: f64,
    ci_low: f64,
    ci_high: f64,
    data_step: Option<i64>,
    key: String,
}

pub fn load(dir: &Path) -> Result<Results, String> {
    let path = dir.join(RECORD);
    let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let record: RunRecord = serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let path = dir.join("evals.csv");
    let mut evals = BTreeMap::new();
    if path.is_file() {
        let mut r = csv::Reader::from_path(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        for row in r.deserialize::<EvalsRow>() {
            let row = row.map_err(|e| format!("{}: {e}", path.display()))?;
            let data_step = row.data_step.map(|s| s.to_string()).unwrap_or_default();
            evals.insert(
                (row.eval, row.target, row.metric, data_step),
                Value { value: row.value, ci_low: row.ci_low, ci_high: row.ci_high, key: row.key },
            );
        }
    }
    Ok(Results { dir: dir.to_path_buf(), record, evals })
}

/// An evaluation whose value differs between two results.
#[derive(Debug, Clone, Serialize)]
pub struct Moved {
    pub eval: String,
    pub target: String,
    pub metric: String,
    pub data_step: String,
    pub a: Value,
    pub b: Value,
    /// Whether B's value lies outside A's 95% interval.
    pub outside_a_interval: bool,
}

/// Two results compared.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub a: RunRecord,
    pub b: RunRecord,
    pub keys_only_in_a: Vec<String>,
    pub keys_only_in_b: Vec<String>,
    pub keys_shared: usize,
    pub moved: Vec<Moved>,
    /// Rows present on one side only.
    pub evals_only_in_a: usize,
    pub evals_only_in_b: usize,
    /// Rows on both sides with the same value.
    pub evals_unchanged: usize,
}

pub fn compare(a: &Results, b: &Results) -> Comparison {
    let ka: BTreeSet<&String> = a.record.keys.iter().collect();
    let kb: BTreeSet<&String> = b.record.keys.iter().collect();
    let mut moved = vec![];
    let mut unchanged = 0;
    for (id, va) in &a.evals {
        let Some(vb) = b.evals.get(id) else { continue };
        // Bit equality: a result that is the same computation is the same
        // number; anything else moved, however little.
        if va.value.to_bits() == vb.value.to_bits() {
            unchanged += 1;
            continue;
        }
        moved.push(Moved {
            eval: id.0.clone(),
            target: id.1.clone(),
            metric: id.2.clone(),
            data_step: id.3.clone(),
            a: va.clone(),
            b: vb.clone(),
            outside_a_interval: vb.value < va.ci_low || vb.value > va.ci_high,
        });
    }
    Comparison {
        a: RunRecord { keys: vec![], ..a.record.clone() },
        b: RunRecord { keys: vec![], ..b.record.clone() },
        keys_only_in_a: ka.difference(&kb).map(|k| k.to_string()).collect(),
        keys_only_in_b: kb.difference(&ka).map(|k| k.to_string()).collect(),
        keys_shared: ka.intersection(&kb).count(),
        evals_only_in_a: a.evals.keys().filter(|k| !b.evals.contains_key(*k)).count(),
        evals_only_in_b: b.evals.keys().filter(|k| !a.evals.contains_key(*k)).count(),
        evals_unchanged: unchanged,
        moved,
    }
}

/// The comparison as people read it.
pub fn render(c: &Comparison, a: &Path, b: &Path) -> String {
    let mut s = format!(
        "results A: {} ({}, {}{})\nresults B: {} ({}, {}{})\n",
        a.display(),
        c.a.study,
        c.a.time,
        settings(&c.a.settings),
        b.display(),
        c.b.study,
        c.b.time,
        settings(&c.b.settings)
    );
    if c.a.numerics != c.b.numerics {
        s += &format!("numerics: {} → {}\n", c.a.numerics, c.b.numerics);
    }
    s += &format!(
        "keys: {} only in A, {} only in B, {} shared\n",
        c.keys_only_in_a.len(),
        c.keys_only_in_b.len(),
        c.keys_shared
    );
    s += &format!(
        "evaluations: {} moved, {} unchanged, {} only in A, {} only in B\n",
        c.moved.len(),
        c.evals_unchanged,
        c.evals_only_in_a,
        c.evals_only_in_b
    );
    for m in &c.moved {
        let stream = if m.data_step.is_empty() { String::new() } else { format!(" (data step {})", m.data_step) };
        s += &format!(
            "  {}({}) {}{stream}: {:.4} [{:.4}, {:.4}] → {:.4} [{:.4}, {:.4}]{}\n",
            m.eval,
            m.target,
            m.metric,
            m.a.value,
            m.a.ci_low,
            m.a.ci_high,
            m.b.value,
            m.b.ci_low,
            m.b.ci_high,
            if m.outside_a_interval { "  outside A's interval" } else { "" }
        );
    }
    s
}

fn settings(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(", {}", s.iter().map(|s| format!("--set {s}")).collect::<Vec<_>>().join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(keys: &[&str], evals: &[(&str, f64)]) -> Results {
        Results {
            dir: PathBuf::new(),
            record: RunRecord {
                format: 1,
                study: "s.exp".into(),
                time: "t".into(),
                settings: vec![],
                numerics: "portable".into(),
                keys: keys.iter().map(|k| k.to_string()).collect(),
            },
            evals: evals
                .iter()
                .map(|(t, v)| {
                    let id = ("wr".to_string(), t.to_string(), "winrate".to_string(), String::new());
                    (id, Value { value: *v, ci_low: v - 0.1, ci_high: v + 0.1, key: "k".into() })
                })
                .collect(),
        }
    }

    #[test]
    fn a_comparison_counts_keys_and_lists_the_values_that_moved() {
        let a = results(&["k1", "k2", "k3"], &[("online@10", 0.5), ("offline@10", 0.4), ("tandem@10", 0.3)]);
        let b = results(&["k2", "k3", "k4"], &[("online@10", 0.5), ("offline@10", 0.55), ("golden@10", 0.3)]);
        let c = compare(&a, &b);
        assert_eq!(
            (c.keys_only_in_a.clone(), c.keys_only_in_b.clone(), c.keys_shared),
            (vec!["k1".into()], vec!["k4".into()], 2)
        );
        assert_eq!((c.evals_unchanged, c.evals_only_in_a, c.evals_only_in_b), (1, 1, 1));
        assert_eq!(c.moved.len(), 1);
        assert_eq!(c.moved[0].target, "offline@10");
        // 0.55 lies outside [0.3, 0.5].
        assert!(c.moved[0].outside_a_interval);
        let text = render(&c, Path::new("A"), Path::new("B"));
        assert!(text.contains("keys: 1 only in A, 1 only in B, 2 shared"), "{text}");
        assert!(text.contains("wr(offline@10) winrate: 0.4000 [0.3000, 0.5000] → 0.5500"), "{text}");
    }
}
