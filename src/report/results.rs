//! The evaluation table: every result of every evaluation node the plan
//! names, one row per (declared name, metric), and `evals.csv`, its tidy
//! form. Rows carry typed names, so figures group them by declaration and
//! member without parsing a label.

use std::path::Path;

use crate::check::program::InstanceName;
use crate::exec::artifacts as art;
use crate::exec::result_metric::ResultMetric;
use crate::exec::store::Store;
use crate::plan::{Key, NodeName, Op, Plan};

/// One evaluation result of one target: the evaluation node's own row
/// (`results.csv`, with its units from `units.csv`) and what names it.
#[derive(Debug, Clone)]
pub struct EvalRow {
    /// The evaluation's instance (`wr`, `wr[seed=1]`).
    pub eval: InstanceName,
    /// What it evaluated: a run (at `step`) or a model.
    pub target: InstanceName,
    pub step: Option<i64>,
    /// The metric, its estimate, interval and units (prompt, pair or sample,
    /// in the evaluation's order) with, where there is one, the score behind
    /// each: what paired comparisons are computed from.
    pub result: art::ResultRow,
    pub key: Key,
    /// Which units those are: rows with the same `unit_set` were scored on
    /// the same prompts (pairs) in the same order, so unit i pairs with unit i.
    pub unit_set: String,
}

impl EvalRow {
    /// The target as the plan prints it: `online[lr=0.001]@300`, `golden_pm`.
    pub fn target_label(&self) -> String {
        match self.step {
            Some(s) => format!("{}@{s}", self.target),
            None => self.target.to_string(),
        }
    }
}

/// A row of `evals.csv`: the columns documented in docs/running.md.
#[derive(Debug, serde::Serialize)]
struct CsvRow {
    eval: String,
    target: String,
    step: Option<i64>,
    metric: ResultMetric,
    value: f64,
    stderr: f64,
    ci_low: f64,
    ci_high: f64,
    n: usize,
    data_step: Option<i64>,
    key: String,
}

/// Every evaluation result of the plan that is in the cache.
pub fn eval_rows(plan: &Plan, store: &Store) -> Vec<EvalRow> {
    let mut out = vec![];
    for node in plan.ordered() {
        if !matches!(node.op, Op::Eval(_)) || !store.contains(&node.key) {
            continue;
        }
        let Ok(rows) = art::read_results(store, &node.key) else { continue };
        let units = art::read_units(store, &node.key).unwrap_or_default();
        let unit_set = match &node.op {
            Op::Eval(e) => {
                let pool = e.pool.map(|k| k.short()).unwrap_or_default();
                format!("{}/{pool}/{}/{}", e.metric.ctor(), e.seed, e.metric.units())
            }
            _ => String::new(),
        };
        let results: Vec<art::ResultRow> = rows
            .into_iter()
            .map(|r| {
                let mine = units.iter().filter(|u| u.metric == r.metric && u.data_step == r.data_step);
                art::ResultRow {
                    units: mine.clone().map(|u| u.value).collect(),
                    scores: mine.filter_map(|u| u.score).collect(),
                    ..r
                }
            })
            .collect();
        for name in &node.names {
            let NodeName::Eval { eval, target, step } = name else { continue };
            for result in &results {
                out.push(EvalRow {
                    eval: eval.clone(),
                    target: target.clone(),
                    step: *step,
                    result: result.clone(),
                    key: node.key,
                    unit_set: unit_set.clone(),
                });
            }
        }
    }
    out
}

/// A row of `per_prompt.csv`: one unit of one result.
#[derive(Debug, serde::Serialize)]
struct UnitCsvRow {
    eval: String,
    target: String,
    step: Option<i64>,
    metric: ResultMetric,
    data_step: Option<i64>,
    unit: usize,
    value: f64,
    score: Option<f64>,
}

/// Writes `evals.csv` and `per_prompt.csv` (every unit of every row: the
/// same unit index is the same prompt or pair across the targets of one
/// evaluation) into `dir`.
pub fn write_csv(dir: &Path, rows: &[EvalRow]) -> std::io::Result<std::path::PathBuf> {
    let units: Vec<UnitCsvRow> = rows
        .iter()
        .flat_map(|r| {
            r.result.units.iter().enumerate().map(move |(i, v)| UnitCsvRow {
                eval: r.eval.to_string(),
                target: r.target_label(),
                step: r.step,
                metric: r.result.metric,
                data_step: r.result.data_step,
                unit: i,
                value: *v,
                score: r.result.scores.get(i).copied(),
            })
        })
        .collect();
    write_atomically(dir, "per_prompt.csv", &art::csv_bytes(&units).map_err(std::io::Error::other)?)?;
    write_evals_csv(dir, rows)
}

/// Writes `evals.csv` into `dir`.
fn write_evals_csv(dir: &Path, rows: &[EvalRow]) -> std::io::Result<std::path::PathBuf> {
    let csv_rows: Vec<CsvRow> = rows
        .iter()
        .map(|r| CsvRow {
            eval: r.eval.to_string(),
            target: r.target_label(),
            step: r.step,
            metric: r.result.metric,
            value: r.result.value,
            stderr: r.result.stderr,
            ci_low: r.result.ci_low,
            ci_high: r.result.ci_high,
            n: r.result.n,
            data_step: r.result.data_step,
            key: r.key.short(),
        })
        .collect();
    let bytes = art::csv_bytes(&csv_rows).map_err(std::io::Error::other)?;
    write_atomically(dir, "evals.csv", &bytes)
}

/// A temporary file in `dir`, then a rename: a reader never sees half a table.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(name);
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(&path).map_err(|e| e.error)?;
    Ok(path)
}

/// Whether `dir` can take a study's results without anything being written
/// over or through what is not ours: it is a real directory (or can be
/// made one), and nothing in it (one level of subfolders deep) is a
/// symbolic link, FIFO, socket or device, which rewriting a result file
/// would follow or replace. Results are rewritten in place on every run;
/// only regular files and folders may be there.
pub fn check_results_dir(dir: &Path) -> Result<(), String> {
    fn kind(ft: std::fs::FileType) -> Option<&'static str> {
        if ft.is_symlink() {
            Some("a symbolic link")
        } else if ft.is_file() || ft.is_dir() {
            None
        } else {
            Some("a special file (a FIFO, socket or device)")
        }
    }
    // The folder, or the nearest part of its path that exists, must be a
    // folder (a link to one is fine: `results -> /scratch/results`).
    let mut ancestor = Some(dir);
    while let Some(a) = ancestor.filter(|a| !a.as_os_str().is_empty()) {
        match std::fs::metadata(a) {
            Ok(m) if m.is_dir() => break,
            Ok(m) => {
                let what = kind(m.file_type()).unwrap_or("a file");
                return Err(format!("{} is {what}, not a folder: results are written into a folder", a.display()));
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
                ancestor = a.parent()
            }
            Err(e) => return Err(format!("{}: {e}", a.display())),
        }
    }
    if !dir.is_dir() {
        return Ok(());
    }
    let mut folders = vec![(dir.to_path_buf(), 0)];
    while let Some((folder, depth)) = folders.pop() {
        let entries = std::fs::read_dir(&folder).map_err(|e| format!("{}: {e}", folder.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", folder.display()))?;
            let ft = entry.file_type().map_err(|e| format!("{}: {e}", entry.path().display()))?;
            if let Some(what) = kind(ft) {
                return Err(format!(
                    "{} is {what}: results are rewritten on every run and would be written through it; move it away",
                    entry.path().display()
                ));
            }
            if ft.is_dir() && depth < 1 {
                folders.push((entry.path(), depth + 1));
            }
        }
    }
    Ok(())
}
