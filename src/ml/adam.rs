//! Adam written out on tensors, so that its state (both moments and the step
//! count) can be saved in a checkpoint and restored exactly.
//!
//! The learning rate is constant after an optional linear warm-up,
//! lr_t = lr · min(1, (t + 1) / warmup), which depends only on the step, never
//! on the total number of steps: a run's first k steps are the same whether it
//! will go on to 1k or 20k steps, which is what lets a longer run resume from
//! a shorter one. Gradients are clipped by their global L2 norm.

use std::collections::BTreeMap;

use tch::{nn, Kind, Tensor};

pub struct Adam {
    pub lr: f64,
    pub warmup: i64,
    pub clip: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Steps taken so far.
    pub step: i64,
    params: Vec<(String, Tensor)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl Adam {
    pub fn new(vs: &nn::VarStore, lr: f64, warmup: i64, clip: f64) -> Adam {
        let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let m = params.iter().map(|(_, p)| p.zeros_like()).collect();
        let v = params.iter().map(|(_, p)| p.zeros_like()).collect();
        Adam { lr, warmup, clip, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 0, params, m, v }
    }

    pub fn lr_at(&self, step: i64) -> f64 {
        if self.warmup > 0 {
            self.lr * ((step + 1) as f64 / self.warmup as f64).min(1.0)
        } else {
            self.lr
        }
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    /// The global gradient norm before clipping.
    pub fn grad_norm(&self) -> f64 {
        let mut total = 0.0;
        for (_, p) in &self.params {
            let g = p.grad();
            if g.defined() {
                total += g.square().sum(Kind::Double).double_value(&[]);
            }
        }
        total.sqrt()
    }

    /// Clips, updates every parameter, and returns the pre-clip gradient norm.
    pub fn step(&mut self) -> f64 {
        let norm = self.grad_norm();
        let scale = if self.clip > 0.0 && norm > self.clip { self.clip / (norm + 1e-6) } else { 1.0 };
        let lr = self.lr_at(self.step);
        self.step += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let bc1 = 1.0 - b1.powi(self.step as i32);
        let bc2 = 1.0 - b2.powi(self.step as i32);
        tch::no_grad(|| {
            for (i, (_, p)) in self.params.iter_mut().enumerate() {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let g = &g * scale;
                let m = &mut self.m[i];
                let v = &mut self.v[i];
                let _ = m.g_mul_scalar_(b1).g_add_(&(&g * (1.0 - b1)));
                let _ = v.g_mul_scalar_(b2).g_add_(&(g.square() * (1.0 - b2)));
                let update = (&*m / bc1) / ((&*v / bc2).sqrt() + self.eps) * lr;
                let _ = p.g_sub_(&update);
            }
        });
        norm
    }

    /// The state as named tensors (for a checkpoint).
    pub fn state(&self) -> BTreeMap<String, Tensor> {
        let mut out = BTreeMap::new();
        for (i, (name, _)) in self.params.iter().enumerate() {
            out.insert(format!("adam.m.{name}"), self.m[i].shallow_clone());
            out.insert(format!("adam.v.{name}"), self.v[i].shallow_clone());
        }
        out.insert("adam.step".into(), Tensor::from_slice(&[self.step]));
        out
    }

    /// Restores the state saved by [`Adam::state`].
    pub fn restore(&mut self, state: &BTreeMap<String, Tensor>) -> Result<(), String> {
        tch::no_grad(|| {
            for (i, (name, _)) in self.params.iter().enumerate() {
                let m = state.get(&format!("adam.m.{name}")).ok_or(format!("no adam.m.{name}"))?;
                let v = state.get(&format!("adam.v.{name}")).ok_or(format!("no adam.v.{name}"))?;
                self.m[i].copy_(m);
                self.v[i].copy_(v);
            }
            Ok::<(), String>(())
        })?;
        let step = state.get("adam.step").ok_or("no adam.step")?;
        self.step = step.int64_value(&[0]);
        Ok(())
    }
}
