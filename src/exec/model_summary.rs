//! `summary.json` of an SFT or preference-model node (the numbers its
//! training measured on held-out rows) and a relabelled dataset's
//! agreements: written by exec and read by the report as types, no field
//! looked up by a string key.
//!
//! The bytes are those the untyped map wrote before: fields in the order it
//! inserted them (tandem builds serde_json with `preserve_order`), absent
//! ones left out; `tests/golden/micro_study.digests` pins them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// A preference model trained to a plateau: where it stopped and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plateau: Option<PlateauSummary>,
    /// A preference model: its accuracy on its data's labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<Accuracy>,
    /// A preference model: its agreement with the world's noiseless oracle
    /// on the rows its accuracy is measured on (synthetic worlds only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oracle_agreement: Option<Proportion>,
    /// An SFT policy: its mean per-token NLL of the validation split's chosen responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_token_nll_chosen: Option<f64>,
}

/// A proportion measured on `n` rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Proportion {
    pub value: f64,
    pub stderr: f64,
    pub n: usize,
}

/// A preference model's accuracy, and the split it was measured on
/// (`validation`, or `train` when the data holds none out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    pub value: f64,
    pub stderr: f64,
    pub n: usize,
    pub split: String,
}

impl Proportion {
    /// An estimate of a proportion (an accuracy or an agreement) as the file keeps it.
    pub fn of(e: &crate::ml::eval::Estimate) -> Proportion {
        Proportion { value: e.value, stderr: e.stderr, n: e.n }
    }
}

impl Accuracy {
    pub fn proportion(&self) -> Proportion {
        Proportion { n: self.n, stderr: self.stderr, value: self.value }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlateauSummary {
    pub stopped_at: i64,
    pub max_steps: u64,
    /// Whether training stopped on a plateau (not at `max_steps`).
    pub reached: bool,
    /// The validation check with the lowest selection loss.
    pub best_step: Option<i64>,
    pub best_val_loss: Option<f64>,
    pub selection_rows: i64,
}

/// `meta.json` of a relabelled dataset: its shapes, and how often the
/// judge's labels agree with the input's and with the noiseless oracle's on
/// the train split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelabelMeta {
    #[serde(flatten)]
    pub shapes: crate::exec::artifacts::DataMeta,
    pub train_agreement_with_input_labels: Proportion,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_agreement_with_noiseless_oracle: Option<Proportion>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The typed summary writes the bytes the untyped map wrote.
    #[test]
    fn a_summary_writes_the_bytes_of_the_map_it_replaces() {
        let typed = ModelSummary {
            oracle_agreement: Some(Proportion { n: 64, stderr: 0.05, value: 0.75 }),
            plateau: Some(PlateauSummary {
                best_step: Some(40),
                best_val_loss: None,
                max_steps: 100,
                reached: true,
                selection_rows: 32,
                stopped_at: 60,
            }),
            val_accuracy: Some(Accuracy { n: 64, split: "validation".into(), stderr: 0.05, value: 0.8125 }),
            val_token_nll_chosen: None,
        };
        // Inserted in the order the untyped code inserted them.
        let mut map = serde_json::Map::new();
        map.insert(
            "plateau".into(),
            serde_json::json!({"stopped_at": 60, "max_steps": 100u64, "reached": true, "best_step": Some(40),
                "best_val_loss": None::<f64>, "selection_rows": 32}),
        );
        map.insert(
            "val_accuracy".into(),
            serde_json::json!({"value": 0.8125, "stderr": 0.05, "n": 64, "split": "validation"}),
        );
        map.insert("oracle_agreement".into(), serde_json::json!({"value": 0.75, "stderr": 0.05, "n": 64}));
        assert_eq!(serde_json::to_vec_pretty(&typed).unwrap(), serde_json::to_vec_pretty(&map).unwrap());
        let sft = ModelSummary { val_token_nll_chosen: Some(1.25), ..Default::default() };
        assert_eq!(serde_json::to_vec_pretty(&sft).unwrap(), b"{\n  \"val_token_nll_chosen\": 1.25\n}");
        let back: ModelSummary = serde_json::from_slice(&serde_json::to_vec_pretty(&typed).unwrap()).unwrap();
        assert_eq!(back, typed);
    }

    /// A relabelled dataset's meta writes the bytes of its shapes with the
    /// agreements added after them, as it always did.
    #[test]
    fn a_relabel_meta_writes_the_bytes_of_the_map_it_replaces() {
        let shapes = crate::exec::artifacts::DataMeta {
            vocab: 24,
            prompt_len: 6,
            response_len: 8,
            rows: 100,
            train: 90,
            val: 10,
            cut: None,
        };
        let typed = RelabelMeta {
            shapes,
            train_agreement_with_input_labels: Proportion { value: 0.875, stderr: 0.03125, n: 90 },
            train_agreement_with_noiseless_oracle: Some(Proportion { value: 0.75, stderr: 0.0625, n: 90 }),
        };
        let mut map = serde_json::to_value(shapes).unwrap();
        map["train_agreement_with_input_labels"] = serde_json::json!({"value": 0.875, "stderr": 0.03125, "n": 90});
        map["train_agreement_with_noiseless_oracle"] = serde_json::json!({"value": 0.75, "stderr": 0.0625, "n": 90});
        assert_eq!(serde_json::to_vec_pretty(&typed).unwrap(), serde_json::to_vec_pretty(&map).unwrap());
    }
}
