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

    /// The same rows padded to other widths: prompts stay right-aligned
    /// (left padding), responses left-aligned (right padding), so a data
    /// set made with other longest records reads as if made at these widths.
    /// Refused, with how many rows are too long, when a row's real tokens do
    /// not fit: nothing is cut.
    pub fn fit_to(&self, prompt_len: i64, response_len: i64) -> Result<Pairs, String> {
        if (self.prompt_len(), self.response_len()) == (prompt_len, response_len) {
            return Ok(self.select(&(0..self.len()).collect::<Vec<_>>()));
        }
        let real = |t: &Tensor| -> Vec<i64> {
            Vec::try_from(t.ne(0).sum_dim_intlist(1, false, Kind::Int64).to_device(Device::Cpu)).expect("int lengths")
        };
        let (p, c, r) = (real(&self.prompts), real(&self.chosen), real(&self.rejected));
        let long_prompts = p.iter().filter(|&&n| n > prompt_len).count();
        let long_responses = c.iter().zip(&r).filter(|(a, b)| (**a).max(**b) > response_len).count();
        if long_prompts + long_responses > 0 {
            return Err(format!(
                "{long_prompts} of {} rows have prompts longer than {prompt_len} tokens and {long_responses} responses longer than {response_len}",
                self.len()
            ));
        }
        let n = self.len();
        let zeros = |w: i64, like: &Tensor| Tensor::zeros([n, w.max(0)], (like.kind(), like.device()));
        let keep = self.prompt_len().min(prompt_len);
        let prompts = Tensor::cat(
            &[zeros(prompt_len - keep, &self.prompts), self.prompts.narrow(1, self.prompt_len() - keep, keep)],
            1,
        );
        let keep = self.response_len().min(response_len);
        let right = |t: &Tensor| Tensor::cat(&[t.narrow(1, 0, keep), zeros(response_len - keep, t)], 1);
        Ok(Pairs {
            prompts,
            chosen: right(&self.chosen),
            rejected: right(&self.rejected),
            columns: self.columns.iter().map(|(k, v)| (k.clone(), v.shallow_clone())).collect(),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_fit_other_widths_and_too_long_ones_are_counted() {
        // Two rows: prompts [PAD 5 6] and [7 8 9], responses [3 2 PAD] and [4 2 PAD].
        let t = |v: &[i64], w: i64| Tensor::from_slice(v).view([2, w]);
        let d = Pairs {
            prompts: t(&[0, 5, 6, 7, 8, 9], 3),
            chosen: t(&[3, 2, 0, 4, 2, 0], 3),
            rejected: t(&[3, 2, 0, 4, 4, 2], 3),
            columns: Default::default(),
        };
        let wide = d.fit_to(5, 4).unwrap();
        assert_eq!(Vec::<i64>::try_from(wide.prompts.view([-1])).unwrap(), [0, 0, 0, 5, 6, 0, 0, 7, 8, 9]);
        assert_eq!(Vec::<i64>::try_from(wide.chosen.view([-1])).unwrap(), [3, 2, 0, 0, 4, 2, 0, 0]);
        // Back to the first widths: the same tensors.
        let back = wide.fit_to(3, 3).unwrap();
        assert!(back.prompts.equal(&d.prompts) && back.rejected.equal(&d.rejected));
        // The second prompt has 3 tokens; the second rejected response 3.
        let e = d.fit_to(2, 2).err().unwrap();
        assert!(e.contains("1 of 2 rows have prompts longer than 2") && e.contains("1 responses longer than 2"), "{e}");
    }
}
