//! Training: the update rules that move params against their gradients.
//!
//! In: the params and their gradients, as slices in declaration order (what
//! [`crate::api::Call::value_and_grad`] fills). Out: the params, moved one step. `gradc
//! train` uses these rules, and so can a Rust training loop (`examples/train_digits.rs`).
//! An [`Optimizer`] keeps its own state (Adam's moments), sized at its first step.

/// Which update rule an [`Optimizer`] applies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rule {
    /// Plain gradient descent: `p -= lr * g`.
    Sgd,
    /// Adam (Kingma & Ba, 2015) with β₁ = 0.9, β₂ = 0.999, ε = 1e-8: each element's step is
    /// `lr` times its bias-corrected mean gradient over the root of its mean square.
    Adam,
}

/// An update rule with its learning rate and state.
#[derive(Clone, Debug)]
pub struct Optimizer {
    rule: Rule,
    lr: f64,
    /// Steps taken so far.
    steps: i32,
    /// Adam's running means of each param's gradient and squared gradient.
    first_moment: Vec<Vec<f64>>,
    second_moment: Vec<Vec<f64>>,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPSILON: f64 = 1e-8;

impl Optimizer {
    /// An optimizer applying `rule` with learning rate `lr`.
    pub fn new(rule: Rule, lr: f64) -> Optimizer {
        Optimizer {
            rule,
            lr,
            steps: 0,
            first_moment: Vec::new(),
            second_moment: Vec::new(),
        }
    }

    /// Moves every param one step against its gradient: `params[k]` pairs with
    /// `grads[k]`, element for element. The pairs must keep their lengths from step to
    /// step (Adam's state is kept per element).
    ///
    /// # Panics
    /// If the lists, or a param and its gradient, differ in length, or a param's length
    /// changed since the first step.
    pub fn step(&mut self, params: &mut [&mut [f64]], grads: &[&[f64]]) {
        assert_eq!(params.len(), grads.len(), "one gradient per param");
        if self.steps == 0 && self.rule == Rule::Adam {
            self.first_moment = grads.iter().map(|g| vec![0.0; g.len()]).collect();
            self.second_moment = self.first_moment.clone();
        }
        self.steps = self.steps.saturating_add(1);
        for (k, (param, grad)) in params.iter_mut().zip(grads).enumerate() {
            assert_eq!(param.len(), grad.len(), "param {k} and its gradient");
            match self.rule {
                Rule::Sgd => {
                    for (p, g) in param.iter_mut().zip(grad.iter()) {
                        *p -= self.lr * g;
                    }
                }
                Rule::Adam => {
                    let (m, v) = (&mut self.first_moment[k], &mut self.second_moment[k]);
                    assert_eq!(m.len(), param.len(), "param {k} changed length");
                    let m_correction = 1.0 - BETA1.powi(self.steps);
                    let v_correction = 1.0 - BETA2.powi(self.steps);
                    for (((p, &g), m), v) in param.iter_mut().zip(grad.iter()).zip(m).zip(v) {
                        *m = BETA1 * *m + (1.0 - BETA1) * g;
                        *v = BETA2 * *v + (1.0 - BETA2) * g * g;
                        let (m_hat, v_hat) = (*m / m_correction, *v / v_correction);
                        *p -= self.lr * m_hat / (v_hat.sqrt() + EPSILON);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgd_steps_against_the_gradient() {
        let mut p = vec![1.0, -2.0];
        Optimizer::new(Rule::Sgd, 0.5).step(&mut [&mut p], &[&[2.0, -4.0]]);
        assert_eq!(p, vec![0.0, 0.0]);
    }

    #[test]
    fn adam_takes_steps_of_about_lr_whatever_the_gradient_s_scale() {
        // Bias correction makes the first step exactly lr * g / (|g| + eps).
        let (mut small, mut large) = (vec![0.0], vec![0.0]);
        let mut adam = Optimizer::new(Rule::Adam, 0.1);
        adam.step(&mut [&mut small, &mut large], &[&[1e-3], &[-1e3]]);
        let first_step = |g: f64| -0.1 * g / (g.abs() + 1e-8);
        assert!((small[0] - first_step(1e-3)).abs() < 1e-15, "{small:?}");
        assert!((large[0] - first_step(-1e3)).abs() < 1e-15, "{large:?}");
        assert!((small[0] + 0.1).abs() < 1e-5 && (large[0] - 0.1).abs() < 1e-5);
        // Minimises a quadratic: (p - 3)^2.
        let mut p = vec![0.0];
        let mut adam = Optimizer::new(Rule::Adam, 0.1);
        for _ in 0..500 {
            let g = 2.0 * (p[0] - 3.0);
            adam.step(&mut [&mut p], &[&[g]]);
        }
        assert!((p[0] - 3.0).abs() < 1e-3, "{p:?}");
    }
}
