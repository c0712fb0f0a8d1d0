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

use crate::ml::exact_sqrt;

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
    /// Per-parameter views into `flat.m` and `flat.v`.
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    flat: Flat,
}

/// Every parameter, both moments and (once each parameter has one) every
/// gradient live in one contiguous buffer each, the parameters' tensors
/// being views into them. The update is then a dozen element-wise ops over
/// the whole model instead of a dozen per parameter tensor (a W step has 26),
/// and each element goes through exactly the arithmetic of a per-tensor
/// update, so results are bit-identical to it.
struct Flat {
    params: Tensor,
    m: Tensor,
    v: Tensor,
    /// Set after the first backward: from then on autograd accumulates into
    /// these views in place, because the gradients already exist.
    grads: Option<Tensor>,
    /// (offset, numel) of each parameter in the buffers, in `params` order.
    spans: Vec<(i64, i64)>,
}

impl Adam {
    /// An optimizer over every variable of `vs`. The variables become views
    /// into its buffers, so a VarStore has one Adam at a time. The update
    /// writes the buffers, so a graph built before `step` must not be
    /// backpropagated after it (libtorch's version check sees the buffer, not
    /// the views); training here always runs forward, backward, step.
    pub fn new(vs: &nn::VarStore, lr: f64, warmup: i64, clip: f64) -> Adam {
        let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        // One buffer holds them all, so they must share a kind and a device
        // (every model here is float32 on one device).
        assert!(
            params.iter().all(|(_, p)| p.kind() == Kind::Float && p.device() == vs.device()),
            "Adam expects float32 variables on the VarStore's device"
        );
        let mut spans = vec![];
        let mut offset = 0;
        for (_, p) in &params {
            spans.push((offset, p.numel() as i64));
            offset += p.numel() as i64;
        }
        let flat = tch::no_grad(|| {
            let buffer = if params.is_empty() {
                Tensor::zeros([0], (Kind::Float, vs.device()))
            } else {
                Tensor::cat(&params.iter().map(|(_, p)| p.detach().reshape([-1])).collect::<Vec<_>>(), 0)
            };
            for ((_, p), &span) in params.iter_mut().zip(&spans) {
                // `p` is the VarStore's own variable: it now reads and writes the buffer.
                p.set_data(&view(&buffer, span, &p.size()));
            }
            Flat { m: buffer.zeros_like(), v: buffer.zeros_like(), params: buffer, grads: None, spans }
        });
        let m = params.iter().zip(&flat.spans).map(|((_, p), &span)| view(&flat.m, span, &p.size())).collect();
        let v = params.iter().zip(&flat.spans).map(|((_, p), &span)| view(&flat.v, span, &p.size())).collect();
        Adam { lr, warmup, clip, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 0, params, m, v, flat }
    }

    /// The flat update only reaches the parameters while they (and their
    /// gradients) still view the buffers. Nothing in tandem breaks that (one
    /// Adam per VarStore, first-order backward only, no retyping); were it
    /// broken, training would silently stop, so it is checked every step
    /// (pointer comparisons, no copy, no device sync).
    fn check_views(&self) {
        let at = |buffer: &Tensor, span: (i64, i64)| buffer.data_ptr() as usize + span.0 as usize * 4;
        for ((name, p), &span) in self.params.iter().zip(&self.flat.spans) {
            assert_eq!(
                p.data_ptr() as usize,
                at(&self.flat.params, span),
                "{name} no longer views Adam's parameter buffer"
            );
            if let Some(grads) = &self.flat.grads {
                assert_eq!(
                    p.grad().data_ptr() as usize,
                    at(grads, span),
                    "{name}'s gradient no longer views Adam's buffer"
                );
            }
        }
    }

    /// Moves every gradient into one buffer, once every parameter has one.
    fn flatten_grads(&mut self) {
        if self.flat.grads.is_some() || self.params.is_empty() {
            return;
        }
        let grads: Vec<Tensor> = self.params.iter().map(|(_, p)| p.grad()).collect();
        if grads.iter().any(|g| !g.defined()) {
            return;
        }
        tch::no_grad(|| {
            let buffer = Tensor::cat(&grads.iter().map(|g| g.reshape([-1])).collect::<Vec<_>>(), 0);
            for (mut g, &span) in grads.into_iter().zip(&self.flat.spans) {
                let size = g.size();
                // The parameter's gradient tensor itself now views the buffer.
                g.set_data(&view(&buffer, span, &size));
            }
            self.flat.grads = Some(buffer);
        });
    }

    pub fn lr_at(&self, step: i64) -> f64 {
        if self.warmup > 0 {
            self.lr * ((step + 1) as f64 / self.warmup as f64).min(1.0)
        } else {
            self.lr
        }
    }

    pub fn zero_grad(&mut self) {
        match &mut self.flat.grads {
            Some(g) => {
                let _ = g.zero_();
            }
            None => {
                for (_, p) in &mut self.params {
                    p.zero_grad();
                }
            }
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
        self.flatten_grads();
        self.check_views();
        let eps = self.eps;
        // One parameter tensor's (or the whole buffer's) update.
        let update = |p: &mut Tensor, g: &Tensor, m: &mut Tensor, v: &mut Tensor| {
            let g = g * scale;
            let _ = m.g_mul_scalar_(b1).g_add_(&(&g * (1.0 - b1)));
            let _ = v.g_mul_scalar_(b2).g_add_(&(g.square() * (1.0 - b2)));
            // The root is the correctly rounded one under `portable`: libtorch's
            // comes from MKL and differs between processors (exact_sqrt.rs).
            let step = (&*m / bc1) / (exact_sqrt::sqrt(&(&*v / bc2)) + eps) * lr;
            let _ = p.g_sub_(&step);
        };
        tch::no_grad(|| match &self.flat.grads {
            Some(g) => update(&mut self.flat.params, g, &mut self.flat.m, &mut self.flat.v),
            None => {
                for (i, (_, p)) in self.params.iter_mut().enumerate() {
                    let g = p.grad();
                    if g.defined() {
                        update(p, &g, &mut self.m[i], &mut self.v[i]);
                    }
                }
            }
        });
        norm
    }

    /// The state as named tensors (for a checkpoint). The moments are views
    /// into the flat buffers.
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

/// The tensor of shape `size` at `span` (offset, numel) of a flat buffer.
fn view(buffer: &Tensor, span: (i64, i64), size: &[i64]) -> Tensor {
    buffer.narrow(0, span.0, span.1).view(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A per-tensor Adam written out independently: the reference the flat
    /// update must match bit for bit.
    fn reference_step(p: &Tensor, g: &Tensor, m: &mut Tensor, v: &mut Tensor, t: i32, lr: f64, scale: f64) -> Tensor {
        let (b1, b2) = (0.9, 0.999);
        let g = g * scale;
        *m = &*m * b1 + &g * (1.0 - b1);
        *v = &*v * b2 + g.square() * (1.0 - b2);
        let step = (&*m / (1.0 - b1.powi(t))) / ((&*v / (1.0 - b2.powi(t))).sqrt() + 1e-8) * lr;
        p - step
    }

    #[test]
    #[should_panic(expected = "no longer views")]
    fn a_second_optimizer_over_the_same_variables_is_caught() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let a = vs.root().var("a", &[4], nn::Init::Randn { mean: 0.0, stdev: 1.0 });
        let mut first = Adam::new(&vs, 1e-2, 0, 0.0);
        let _second = Adam::new(&vs, 1e-2, 0, 0.0); // re-points `a` to its own buffer
        first.zero_grad();
        a.square().sum(Kind::Float).backward();
        first.step();
    }

    #[test]
    fn flat_update_is_bit_identical_to_a_per_tensor_update_and_restores() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let root = vs.root();
        let a = root.var("a", &[3, 5], nn::Init::Randn { mean: 0.0, stdev: 1.0 });
        let b = root.var("b", &[7], nn::Init::Randn { mean: 0.0, stdev: 1.0 });
        let c = root.var("c", &[2, 2, 2], nn::Init::Randn { mean: 0.0, stdev: 1.0 });
        let x = Tensor::randn([5, 7], (Kind::Float, tch::Device::Cpu));
        let loss = |a: &Tensor, b: &Tensor, c: &Tensor| {
            (a.matmul(&x) * b).tanh().sum(Kind::Float) + c.pow_tensor_scalar(3).sum(Kind::Float) * 3.0
        };
        // The reference: copies of the variables, updated per tensor, with
        // gradients from the same loss. A clip of 2 makes the scale bite.
        let mut refs: Vec<Tensor> = [&a, &b, &c].iter().map(|t| t.detach().copy()).collect();
        let mut ms: Vec<Tensor> = refs.iter().map(|t| t.zeros_like()).collect();
        let mut vs_: Vec<Tensor> = refs.iter().map(|t| t.zeros_like()).collect();
        let mut adam = Adam::new(&vs, 1e-2, 0, 2.0);
        for t in 1..=5 {
            adam.zero_grad();
            loss(&a, &b, &c).backward();
            let norm = adam.step();
            let rs: Vec<Tensor> = refs.iter().map(|r| r.detach().set_requires_grad(true)).collect();
            loss(&rs[0], &rs[1], &rs[2]).backward();
            let grads: Vec<Tensor> = rs.iter().map(|r| r.grad()).collect();
            let ref_norm = grads.iter().map(|g| g.square().sum(Kind::Double).double_value(&[])).sum::<f64>().sqrt();
            assert_eq!(norm.to_bits(), ref_norm.to_bits(), "step {t}: gradient norm");
            let scale = if norm > 2.0 { 2.0 / (norm + 1e-6) } else { 1.0 };
            for i in 0..3 {
                refs[i] = tch::no_grad(|| reference_step(&refs[i], &grads[i], &mut ms[i], &mut vs_[i], t, 1e-2, scale));
            }
            for (got, want) in [&a, &b, &c].iter().zip(&refs) {
                assert!(got.equal(want), "step {t}: parameters differ");
            }
        }
        assert!(adam.flat.grads.is_some(), "gradients were moved into the flat buffer");
        // A fresh optimizer restored from the state continues identically.
        let state = adam.state();
        let vs2 = nn::VarStore::new(tch::Device::Cpu);
        let a2 = vs2.root().var_copy("a", &a.detach());
        let b2 = vs2.root().var_copy("b", &b.detach());
        let c2 = vs2.root().var_copy("c", &c.detach());
        let mut adam2 = Adam::new(&vs2, 1e-2, 0, 2.0);
        adam2.restore(&state).unwrap();
        for (opt, (p, q, r)) in [(&mut adam, (&a, &b, &c)), (&mut adam2, (&a2, &b2, &c2))] {
            opt.zero_grad();
            loss(p, q, r).backward();
            opt.step();
        }
        assert!(a.equal(&a2) && b.equal(&b2) && c.equal(&c2), "restored optimizer diverged");
    }
}
