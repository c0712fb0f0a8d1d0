//! A study's curves and evaluations as TensorBoard event files
//! (`tandem run FILE --tensorboard DIR`, then `tensorboard --logdir DIR`).
//!
//! One TensorBoard "run" per model or training run of the plan, in
//! `DIR/<study>/<name as the plan prints it>/`:
//! - `train/loss`, `train/grad_norm`, `train/lr`, `train/margin`,
//!   `train/chosen_logprob`, `train/rejected_logprob` and, for online runs,
//!   `train/sample_kl`, `train/sample_length`, `train/judge_margin`,
//!   `train/judge_score`, by training step: every row of the node's
//!   `metrics.csv` (SFT, PMs and runs);
//! - `eval/<evaluation>/<metric>` by checkpoint step (0 for a model), with
//!   `.../ci_low` and `.../ci_high` beside it, since TensorBoard draws no
//!   interval. A result along a data stream is keyed by the stream step, in
//!   a tag of its own per checkpoint.
//!
//! The format is TensorBoard's documented one: TFRecord framing (length,
//! masked CRC-32C of the length, the bytes, their masked CRC-32C) around
//! `Event` protocol buffers, the first of which names the file version.
//! Only the fields tandem writes are declared here (tag numbers from
//! TensorFlow's `event.proto` and `summary.proto`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use prost::Message;

use crate::check::program::InstanceName;
use crate::exec::artifacts::{read_metrics, MetricRow};
use crate::exec::store::Store;
use crate::plan::op::checkpoint_key;
use crate::plan::{NodeName, Op, Plan};
use crate::report::results::EvalRow;

/// TensorFlow's `Event`: when, which step, and what (here a version string
/// or a summary).
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(string, optional, tag = "3")]
    pub file_version: Option<String>,
    #[prost(message, optional, tag = "5")]
    pub summary: Option<Summary>,
}

/// TensorFlow's `Summary`: named values.
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// One `Summary.Value`: a tag and a scalar (`simple_value`, which
/// TensorBoard reads as a scalar series).
#[derive(Clone, PartialEq, Message)]
pub struct SummaryValue {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
}

/// The version string TensorBoard expects in a file's first event.
const FILE_VERSION: &str = "brain.Event:2";
/// Every file tandem writes has this name, so an export writes over the
/// previous one instead of adding a second copy of each series.
pub const FILE_NAME: &str = "events.out.tfevents.0.tandem";

/// TFRecord's CRC mask: rotate right by 15 and add a constant (so a CRC of
/// data that itself holds CRCs is not trivially zero).
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord: u64 length (little-endian), its masked CRC, the bytes, theirs.
pub fn append_record(out: &mut Vec<u8>, data: &[u8]) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

/// The records of a file, each checked against both its CRCs (the inverse
/// of [`append_record`]; what the tests read back with).
pub fn read_records(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = vec![];
    while !bytes.is_empty() {
        if bytes.len() < 12 {
            return Err(format!("a record header is cut short ({} bytes)", bytes.len()));
        }
        let (len, rest) = bytes.split_at(8);
        let want = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
        if masked_crc(len) != want {
            return Err("a record's length fails its CRC".into());
        }
        let n = u64::from_le_bytes(len.try_into().expect("8 bytes"));
        let rest = &rest[4..];
        let n = usize::try_from(n).ok().filter(|&n| n.checked_add(4).is_some_and(|m| m <= rest.len()));
        let Some(n) = n else { return Err("a record runs past the end of the file".into()) };
        let (data, rest) = rest.split_at(n);
        if masked_crc(data) != u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) {
            return Err("a record's data fails its CRC".into());
        }
        out.push(data.to_vec());
        bytes = &rest[4..];
    }
    Ok(out)
}

/// One scalar of one TensorBoard run.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    pub tag: String,
    pub step: i64,
    pub value: f64,
}

/// A run's scalars as the bytes of an event file, all stamped `wall_time`.
pub fn event_file(scalars: &[Scalar], wall_time: f64) -> Vec<u8> {
    let mut out = vec![];
    let first = Event { wall_time, step: 0, file_version: Some(FILE_VERSION.into()), summary: None };
    append_record(&mut out, &first.encode_to_vec());
    for s in scalars {
        let value = SummaryValue { tag: s.tag.clone(), simple_value: Some(s.value as f32) };
        let e = Event { wall_time, step: s.step, file_version: None, summary: Some(Summary { value: vec![value] }) };
        append_record(&mut out, &e.encode_to_vec());
    }
    out
}

/// The training scalars of one metrics row (non-finite values left out:
/// TensorBoard would draw them as gaps anyway, and a NaN hides nothing
/// here that the report does not already say).
fn metric_scalars(row: &MetricRow, out: &mut Vec<Scalar>) {
    let mut push = |tag: &str, v: Option<f64>| {
        if let Some(value) = v.filter(|v| v.is_finite()) {
            out.push(Scalar { tag: format!("train/{tag}"), step: row.step, value });
        }
    };
    push("loss", Some(row.loss));
    push("grad_norm", Some(row.grad_norm));
    push("lr", Some(row.lr));
    push("margin", row.margin);
    push("chosen_logprob", row.chosen_logprob);
    push("rejected_logprob", row.rejected_logprob);
    push("sample_kl", row.sample_kl);
    push("sample_length", row.sample_length);
    push("judge_margin", row.judge_margin);
    push("judge_score", row.judge_score);
}

/// The scalars of an evaluation result, on its target's run. The tag names
/// the evaluation by the sweep values its target does not already say
/// (`wr[seed=1]` on `online[seed=1]` is `wr`; an evaluation swept over
/// `prompts` keeps `[prompts=256]`).
fn eval_scalars(r: &EvalRow, out: &mut Vec<Scalar>) {
    let own = InstanceName {
        decl: r.eval.decl.clone(),
        member: r.eval.member.iter().filter(|m| !r.target.member.contains(m)).cloned().collect(),
    };
    let (base, step) = match (r.result.data_step, r.step) {
        (Some(d), Some(s)) => (format!("eval/{own}/{}@{s}", r.result.metric), d),
        (Some(d), None) => (format!("eval/{own}/{}", r.result.metric), d),
        (None, s) => (format!("eval/{own}/{}", r.result.metric), s.unwrap_or(0)),
    };
    for (suffix, value) in [("", r.result.value), ("/ci_low", r.result.ci_low), ("/ci_high", r.result.ci_high)] {
        if value.is_finite() {
            out.push(Scalar { tag: format!("{base}{suffix}"), step, value });
        }
    }
}

/// Every scalar of the plan that is in the cache, by TensorBoard run (the
/// model's or run's name as the plan prints it).
pub fn scalars(plan: &Plan, store: &Store, rows: &[EvalRow]) -> BTreeMap<String, Vec<Scalar>> {
    let mut runs: BTreeMap<String, Vec<Scalar>> = BTreeMap::new();
    for n in plan.ordered() {
        let key = match &n.op {
            Op::Train(t) => checkpoint_key(&n.key, t.length.steps),
            Op::Sft(_) | Op::Pm(..) => n.key,
            _ => continue,
        };
        let Ok(metrics) = read_metrics(store, &key) else { continue };
        for name in &n.names {
            if let NodeName::Decl(i) = name {
                let out = runs.entry(i.to_string()).or_default();
                metrics.iter().for_each(|m| metric_scalars(m, out));
            }
        }
    }
    for r in rows {
        eval_scalars(r, runs.entry(r.target.to_string()).or_default());
    }
    runs.retain(|_, s| !s.is_empty());
    runs
}

/// A name as a folder name: what a path could read as a separator, a
/// parent or a hidden file becomes `_` (names of the language are already
/// plain; sweep values may hold quotes or slashes).
pub fn folder_name(name: &str) -> String {
    let mut s: String =
        name.chars().map(|c| if c.is_alphanumeric() || "_-.,=[]@+ ".contains(c) { c } else { '_' }).collect();
    if s.starts_with('.') || s.is_empty() {
        s.insert(0, '_');
    }
    s
}

/// Writes one event file per run under `dir/<study>/`, each atomically
/// (a temporary file renamed over the last export's). Returns the folder
/// and how many runs and scalars it holds.
pub fn write(dir: &Path, study: &str, runs: &BTreeMap<String, Vec<Scalar>>) -> std::io::Result<(PathBuf, usize)> {
    let root = dir.join(folder_name(study));
    let wall_time =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let mut taken: BTreeMap<String, usize> = BTreeMap::new();
    let mut count = 0;
    for (name, scalars) in runs {
        // Two names that map to one folder get distinct folders.
        let mut folder = folder_name(name);
        let seen = taken.entry(folder.clone()).or_default();
        *seen += 1;
        if *seen > 1 {
            folder = format!("{folder}~{seen}");
        }
        let run_dir = root.join(folder);
        std::fs::create_dir_all(&run_dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&run_dir)?;
        tmp.write_all(&event_file(scalars, wall_time))?;
        tmp.as_file().sync_all()?;
        tmp.persist(run_dir.join(FILE_NAME)).map_err(|e| e.error)?;
        count += scalars.len();
    }
    Ok((root, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_and_its_mask_match_the_published_values() {
        // CRC-32C check value of the nine bytes "123456789" (RFC 3720, B.4).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        // The mask by hand: 0xe3069283 rotated right by 15 is 0x2507c60d;
        // plus 0xa282ead8 (mod 2^32) is 0xc78ab0e5.
        assert_eq!(0xe306_9283u32.rotate_right(15), 0x2507_c60d);
        assert_eq!(masked_crc(b"123456789"), 0xc78a_b0e5);
    }

    #[test]
    fn a_record_is_length_crc_data_crc_and_reads_back() {
        let mut out = vec![];
        append_record(&mut out, b"abc");
        assert_eq!(out.len(), 8 + 4 + 3 + 4);
        assert_eq!(&out[..8], &3u64.to_le_bytes());
        assert_eq!(&out[12..15], b"abc");
        append_record(&mut out, b"");
        assert_eq!(read_records(&out).unwrap(), vec![b"abc".to_vec(), vec![]]);
        // A flipped byte anywhere is found.
        for i in 0..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 1;
            assert!(read_records(&bad).is_err(), "byte {i} flipped went unnoticed");
        }
        assert!(read_records(&out[..out.len() - 1]).is_err());
    }

    #[test]
    fn an_event_file_starts_with_its_version_and_holds_each_scalar() {
        let scalars = vec![
            Scalar { tag: "train/loss".into(), step: 1, value: 0.5 },
            Scalar { tag: "eval/wr/winrate".into(), step: 300, value: 0.0 },
        ];
        let records = read_records(&event_file(&scalars, 12.5)).unwrap();
        assert_eq!(records.len(), 3);
        let first = Event::decode(records[0].as_slice()).unwrap();
        assert_eq!(first.file_version.as_deref(), Some("brain.Event:2"));
        assert_eq!(first.wall_time, 12.5);
        let last = Event::decode(records[2].as_slice()).unwrap();
        assert_eq!(last.step, 300);
        let v = &last.summary.unwrap().value[0];
        // A zero is written, not dropped as a protobuf default.
        assert_eq!((v.tag.as_str(), v.simple_value), ("eval/wr/winrate", Some(0.0)));
        // Field 2 of the Value (simple_value, a 32-bit float) is on the wire.
        assert!(records[2].windows(5).any(|w| w == [0x15, 0, 0, 0, 0]));
    }

    #[test]
    fn folder_names_cannot_leave_the_folder() {
        assert_eq!(folder_name("online[lr=0.001, seed=1]"), "online[lr=0.001, seed=1]");
        assert_eq!(folder_name("../x"), "_.._x");
        assert_eq!(folder_name("a/b\\c"), "a_b_c");
        assert_eq!(folder_name(""), "_");
    }
}
