//! Divergence is a failure, not a result. A learning rate of 1e300 or a
//! checkpoint holding NaN would otherwise train "successfully": its loss
//! NaN, its samples noise, its win rate a meaningless 0.5 that enters
//! figures and verdicts. Every training loop checks each step's loss and
//! gradient norm (numbers it has already computed, so the check is free)
//! and every parameter before it saves one; a diverged node fails with the
//! step and what went non-finite, and, as any failed node, leaves its
//! dependants unrun.

use tch::nn::VarStore;

use crate::exec::artifacts::ExecError;
use crate::ml::train::StepMetrics;
use crate::plan::Node;

/// The error of a node whose training went non-finite at `step`.
fn diverged(node: &Node, step: i64, what: String, lr: f64) -> ExecError {
    ExecError::Diverged {
        node: node.display_name(),
        step,
        what,
        hint: format!(
            "nothing of this run is kept; a smaller learning rate (this one is {lr:e}), a gradient clip, or a \
             finite starting model trains it"
        ),
    }
}

/// Whether one step's loss and gradient norm are finite (called every
/// step: nothing is allocated unless they are not).
pub fn check_step(node: &Node, step: i64, m: &StepMetrics, lr: f64) -> Result<(), ExecError> {
    if m.loss.is_finite() && m.grad_norm.is_finite() {
        return Ok(());
    }
    let what = match (m.loss.is_finite(), m.grad_norm.is_finite()) {
        (false, false) => format!("the loss is {} and the gradient norm {}", m.loss, m.grad_norm),
        (false, true) => format!("the loss is {}", m.loss),
        _ => format!("the gradient norm is {}", m.grad_norm),
    };
    Err(diverged(node, step, what, lr))
}

/// Whether every parameter is finite; the first that is not is named.
pub fn check_parameters(node: &Node, step: i64, vs: &VarStore, lr: f64) -> Result<(), ExecError> {
    let mut vars: Vec<(String, tch::Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in vars {
        if !all_finite(&t) {
            return Err(diverged(node, step, format!("the parameter `{name}` holds NaN or infinite values"), lr));
        }
    }
    Ok(())
}

/// Whether a tensor holds only finite values.
fn all_finite(t: &tch::Tensor) -> bool {
    tch::no_grad(|| t.isfinite().all().int64_value(&[]) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> Node {
        let op = crate::plan::Op::World(crate::plan::op::WorldSpec {
            flavour: crate::plan::op::WorldFlavour::Summarize,
            seed: 1,
            vocab: 16,
            prompt_len: 4,
            response_len: 4,
            noise: 1.0,
            interaction: 0.0,
        });
        Node::new(op, vec![crate::plan::NodeName::Decl(crate::check::program::InstanceName::plain(name))])
    }

    fn metrics(loss: f64, grad_norm: f64) -> StepMetrics {
        StepMetrics { loss, grad_norm, lr: 1e-4, ..Default::default() }
    }

    #[test]
    fn a_non_finite_step_is_named() {
        assert!(check_step(&node("run"), 3, &metrics(0.5, 1.0), 1e-4).is_ok());
        let e = check_step(&node("run"), 3, &metrics(f64::NAN, 1.0), 1e300).unwrap_err().to_string();
        assert!(e.contains("`run` diverged at step 3") && e.contains("loss is NaN"), "{e}");
        let e = check_step(&node("run"), 4, &metrics(0.1, f64::INFINITY), 1e-4).unwrap_err().to_string();
        assert!(e.contains("gradient norm is inf"), "{e}");
    }

    #[test]
    fn a_non_finite_parameter_is_named() {
        let vs = VarStore::new(tch::Device::Cpu);
        let w = vs.root().var("w", &[3], tch::nn::Init::Const(1.0));
        assert!(check_parameters(&node("m"), 1, &vs, 1e-3).is_ok());
        tch::no_grad(|| {
            let _ = w.narrow(0, 1, 1).fill_(f64::NAN);
        });
        let e = check_parameters(&node("m"), 1, &vs, 1e-3).unwrap_err().to_string();
        assert!(e.contains("`w`"), "{e}");
    }
}
