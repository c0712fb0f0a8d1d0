//! Preference data in memory and on disk.
//!
//! A [`Pairs`] set holds prompts [N, Lp] (left-padded, BOS first), and the
//! chosen and rejected responses [N, Lr] (right-padded, EOS last), plus named
//! per-row columns: `split` (0 train, 1 validation), `step` and `batch` (where
//! a row of an online data stream came from), `oracle` (the noiseless oracle
//! margin r*(chosen) − r*(rejected), where a world knows it). On disk it is
//! one safetensors file; tokens are stored as int16.

use std::collections::BTreeMap;
use std::path::Path;

use tch::{Device, Kind, Tensor};

pub struct Pairs {
    pub prompts: Tensor,
    pub chosen: Tensor,
    pub rejected: Tensor,
    pub columns: BTreeMap<String, Tensor>,
}

impl Pairs {
    pub fn len(&self) -> i64 {
        self.prompts.size()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn prompt_len(&self) -> i64 {
        self.prompts.size()[1]
    }

    pub fn response_len(&self) -> i64 {
        self.chosen.size()[1]
    }

    /// Rows at the given indices (in that order).
    pub fn select(&self, idx: &[i64]) -> Pairs {
        let i = Tensor::from_slice(idx).to_device(self.prompts.device());
        Pairs {
            prompts: self.prompts.index_select(0, &i),
            chosen: self.chosen.index_select(0, &i),
            rejected: self.rejected.index_select(0, &i),
            columns: self
                .columns
                .iter()
                .map(|(k, v)| (k.clone(), v.index_select(0, &i.to_device(v.device()))))
                .collect(),
        }
    }

    /// Rows whose `split` column equals `split` (all rows if there is none).
    pub fn split(&self, split: i64) -> Pairs {
        match self.columns.get("split") {
            None => self.select(&(0..self.len()).collect::<Vec<_>>()),
            Some(s) => {
                let v: Vec<i64> = Vec::try_from(s.to_kind(Kind::Int64).to_device(Device::Cpu)).expect("int column");
                let idx: Vec<i64> = v.iter().enumerate().filter(|(_, x)| **x == split).map(|(i, _)| i as i64).collect();
                self.select(&idx)
            }
        }
    }

    pub fn concat(parts: &[Pairs]) -> Pairs {
        let cat = |f: &dyn Fn(&Pairs) -> &Tensor| Tensor::cat(&parts.iter().map(f).collect::<Vec<_>>(), 0);
        let mut columns = BTreeMap::new();
        if let Some(first) = parts.first() {
            for k in first.columns.keys() {
                if parts.iter().all(|p| p.columns.contains_key(k)) {
                    columns.insert(k.clone(), Tensor::cat(&parts.iter().map(|p| &p.columns[k]).collect::<Vec<_>>(), 0));
                }
            }
        }
        Pairs { prompts: cat(&|p| &p.prompts), chosen: cat(&|p| &p.chosen), rejected: cat(&|p| &p.rejected), columns }
    }

    pub fn to_device(&self, device: Device) -> Pairs {
        Pairs {
            prompts: self.prompts.to_device(device),
            chosen: self.chosen.to_device(device),
            rejected: self.rejected.to_device(device),
            columns: self.columns.iter().map(|(k, v)| (k.clone(), v.shallow_clone())).collect(),
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), tch::TchError> {
        let mut named: Vec<(String, Tensor)> = vec![
            ("prompts".into(), self.prompts.to_device(Device::Cpu).to_kind(Kind::Int16)),
            ("chosen".into(), self.chosen.to_device(Device::Cpu).to_kind(Kind::Int16)),
            ("rejected".into(), self.rejected.to_device(Device::Cpu).to_kind(Kind::Int16)),
        ];
        for (k, v) in &self.columns {
            named.push((format!("col.{k}"), v.to_device(Device::Cpu)));
        }
        Tensor::write_safetensors(&named, path)
    }

    pub fn load(path: &Path, device: Device) -> Result<Pairs, String> {
        let named = Tensor::read_safetensors(path).map_err(|e| e.to_string())?;
        let mut map: BTreeMap<String, Tensor> = named.into_iter().collect();
        let mut take = |k: &str| map.remove(k).ok_or_else(|| format!("{} has no `{k}`", path.display()));
        let prompts = take("prompts")?.to_kind(Kind::Int64).to_device(device);
        let chosen = take("chosen")?.to_kind(Kind::Int64).to_device(device);
        let rejected = take("rejected")?.to_kind(Kind::Int64).to_device(device);
        let columns = map.into_iter().filter_map(|(k, v)| k.strip_prefix("col.").map(|c| (c.to_string(), v))).collect();
        let p = Pairs { prompts, chosen, rejected, columns };
        let n = p.len();
        if p.chosen.size()[0] != n || p.rejected.size()[0] != n || p.columns.values().any(|c| c.size()[0] != n) {
            return Err(format!("{}: columns of different lengths", path.display()));
        }
        Ok(p)
    }
}
