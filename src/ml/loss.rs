//! The preference-optimisation losses (Appendix B) and Best-of-2 (eq. 3).
//!
//! With h = [log πθ(y_w) − log πref(y_w)] − [log πθ(y_l) − log πref(y_l)]
//! and z = β·h, the contrastive family minimises f(z):
//! IPO (z − ½)², DPO log(1 + e^(−z)), SLiC max(0, 1 − z).
//! The paper's eq. (1) writes the IPO target as h = β/2; Appendix B (and the
//! IPO paper) give (βh − ½)², whose target is h = 1/(2β). tandem follows
//! Appendix B. Bo2 is −log πθ(y_w | x): SFT on the winner.

use tch::{Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    Ipo { beta: f64 },
    Dpo { beta: f64 },
    Slic { beta: f64 },
    Bo2,
}

impl Loss {
    /// Whether the loss needs the reference policy's log-probs.
    pub fn needs_reference(&self) -> bool {
        !matches!(self, Loss::Bo2)
    }

    /// The loss per example [B] from sequence log-probs [B].
    pub fn per_example(&self, logp_w: &Tensor, logp_l: &Tensor, ref_w: &Tensor, ref_l: &Tensor) -> Tensor {
        let h = || (logp_w - ref_w) - (logp_l - ref_l);
        match *self {
            Loss::Ipo { beta } => (h() * beta - 0.5).square(),
            Loss::Dpo { beta } => (-(h() * beta)).softplus(),
            Loss::Slic { beta } => (-(h() * beta) + 1.0).relu(),
            Loss::Bo2 => -logp_w,
        }
    }

    /// The batch mean.
    pub fn mean(&self, logp_w: &Tensor, logp_l: &Tensor, ref_w: &Tensor, ref_l: &Tensor) -> Tensor {
        self.per_example(logp_w, logp_l, ref_w, ref_l).mean(Kind::Float)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f64]) -> Tensor {
        Tensor::from_slice(v).to_kind(Kind::Double)
    }

    fn vals(x: &Tensor) -> Vec<f64> {
        Vec::try_from(x.to_kind(Kind::Double)).unwrap()
    }

    /// Hand-computed: logp_w = [-1, -2], logp_l = [-3, -1], ref_w = [-1.5, -2], ref_l = [-2, -2]
    /// h = (lw - rw) - (ll - rl) = [0.5 - (-1), 0 - 1] = [1.5, -1]
    fn inputs() -> (Tensor, Tensor, Tensor, Tensor) {
        (t(&[-1.0, -2.0]), t(&[-3.0, -1.0]), t(&[-1.5, -2.0]), t(&[-2.0, -2.0]))
    }

    fn close(a: &[f64], b: &[f64]) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-12, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn values_match_hand_computation() {
        let (w, l, rw, rl) = inputs();
        // β = 0.5: z = [0.75, -0.5]
        close(&vals(&Loss::Ipo { beta: 0.5 }.per_example(&w, &l, &rw, &rl)), &[0.0625, 1.0]);
        close(
            &vals(&Loss::Dpo { beta: 0.5 }.per_example(&w, &l, &rw, &rl)),
            &[(1.0 + (-0.75f64).exp()).ln(), (1.0 + 0.5f64.exp()).ln()],
        );
        close(&vals(&Loss::Slic { beta: 0.5 }.per_example(&w, &l, &rw, &rl)), &[0.25, 1.5]);
        close(&vals(&Loss::Bo2.per_example(&w, &l, &rw, &rl)), &[1.0, 2.0]);
        // β = 2: z = [3, -2]; SLiC hinge is 0 past the margin.
        close(&vals(&Loss::Slic { beta: 2.0 }.per_example(&w, &l, &rw, &rl)), &[0.0, 3.0]);
    }

    #[test]
    fn ipo_is_minimised_at_h_equal_one_over_two_beta() {
        // Appendix B: (βh − ½)² = 0 at h = 1/(2β); with β = 0.1 that is h = 5.
        let beta = 0.1;
        let loss = Loss::Ipo { beta };
        let zero = loss.per_example(&t(&[5.0]), &t(&[0.0]), &t(&[0.0]), &t(&[0.0]));
        assert!(vals(&zero)[0].abs() < 1e-12);
        let off = loss.per_example(&t(&[0.05]), &t(&[0.0]), &t(&[0.0]), &t(&[0.0]));
        assert!(vals(&off)[0] > 0.2, "h = β/2 (eq. 1 as printed) is not the minimiser");
    }

    #[test]
    fn gradients_match_hand_computation() {
        // d/dlogp_w of each loss at the inputs above, batch mean (÷2).
        let cases: Vec<(Loss, Vec<f64>, Vec<f64>)> = vec![
            // IPO: 2(z − ½)β; z = [0.75, −0.5] → [2·0.25·0.5, 2·(−1)·0.5] = [0.25, −1]
            (Loss::Ipo { beta: 0.5 }, vec![0.25 / 2.0, -1.0 / 2.0], vec![-0.25 / 2.0, 1.0 / 2.0]),
            // DPO: −β σ(−z)
            (
                Loss::Dpo { beta: 0.5 },
                vec![-0.5 / (1.0 + 0.75f64.exp()) / 2.0, -0.5 / (1.0 + (-0.5f64).exp()) / 2.0],
                vec![0.5 / (1.0 + 0.75f64.exp()) / 2.0, 0.5 / (1.0 + (-0.5f64).exp()) / 2.0],
            ),
            // SLiC: −β where 1 − z > 0
            (Loss::Slic { beta: 0.5 }, vec![-0.5 / 2.0, -0.5 / 2.0], vec![0.5 / 2.0, 0.5 / 2.0]),
            // Bo2: −1 on the winner, nothing on the loser.
            (Loss::Bo2, vec![-0.5, -0.5], vec![0.0, 0.0]),
        ];
        for (loss, dw, dl) in cases {
            let (w, l, rw, rl) = inputs();
            let w = w.set_requires_grad(true);
            let l = l.set_requires_grad(true);
            loss.mean(&w, &l, &rw, &rl).backward();
            close(&vals(&w.grad()), &dw);
            let gl = l.grad();
            let gl = if gl.defined() { vals(&gl) } else { vec![0.0, 0.0] };
            close(&gl, &dl);
        }
    }
}
