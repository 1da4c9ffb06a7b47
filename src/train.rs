//! Training: the update rules that move params against their gradients.
//!
//! In: the params and their gradients, as slices in declaration order (what
//! [`crate::api::Call::value_and_grad`] fills). Out: the params, moved one step. `gradc
//! train` uses these rules, and so can a Rust training loop (`examples/train_digits.rs`).
//! An [`Optimizer`] keeps its own state (Adam's moments), sized at its first step.
//! [`Batches`] cuts a bound data set into minibatches along one dimension.

use crate::data::{Bound, SplitMix64};
use crate::ir::{ArgRole, Dim, DimVar, Function, Op};
use crate::tensor::TensorData;

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

/// Minibatches of a data set: the rows of every `input` whose first axis is one
/// dimension (the batch dimension). A batch is the whole data set but for those inputs,
/// which hold `size` rows.
///
/// The batches are consecutive runs of a stream of epochs, each epoch a fresh shuffle
/// of all the rows: every row is drawn once per epoch, and the rows left over at an
/// epoch's end (fewer than `size`) open the next batch, which the new epoch fills up
/// with other rows (no batch holds a row twice).
#[derive(Clone, Debug)]
pub struct Batches {
    dim: DimVar,
    size: usize,
    /// The inputs cut into batches.
    sliced: Vec<usize>,
    /// The number of rows.
    rows: usize,
    /// The stream of rows: the current batch ends at `next`, the rows from `next` on
    /// are still to come.
    stream: Vec<usize>,
    next: usize,
    rng: SplitMix64,
}

impl Batches {
    /// Batches of `size` rows along `dim_name`, or along the first axis of the first
    /// input when it is `None`; the order is shuffled by `seed`. Fails (saying why) if
    /// there is no such dimension, a param has it, an input has it on another axis than
    /// the first, an index points along it, or `size` is 0 or more than the rows there
    /// are.
    pub fn new(
        func: &Function,
        full: &Bound,
        dim_name: Option<&str>,
        size: usize,
        seed: u64,
    ) -> Result<Batches, String> {
        let dim = match dim_name {
            Some(name) => match func.dims.iter().position(|d| d == name) {
                Some(k) => DimVar(k as u32),
                None => return Err(format!("the model has no dimension `{name}`")),
            },
            None => {
                let Some(first) = func.args.iter().find(|a| a.role == ArgRole::Input) else {
                    return Err("the model has no input to cut into batches".into());
                };
                match first.ty.shape.first() {
                    Some(Dim::Sym(dim)) => *dim,
                    _ => {
                        return Err("no dimension to cut into batches: the first input has no \
                             dimension name on its first axis (name one with --batch-dim)"
                            .into())
                    }
                }
            }
        };
        let name = &func.dims[dim.0 as usize];
        let mut sliced = Vec::new();
        for (k, arg) in func.args.iter().enumerate() {
            for (axis, d) in arg.ty.shape.iter().enumerate() {
                if *d != Dim::Sym(dim) {
                    continue;
                }
                if arg.role == ArgRole::Param {
                    return Err(format!(
                        "param `{}` has dimension {name}, so {name} can't be cut into batches",
                        arg.name
                    ));
                }
                if axis > 0 {
                    return Err(format!(
                        "input `{}` has dimension {name} on axis {axis}: only a first axis \
                         can be cut into batches",
                        arg.name
                    ));
                }
                sliced.push(k);
            }
        }
        // Cutting the rows an index points into would move what it points at.
        for check in crate::ir::index_checks(func) {
            if check.bound == Dim::Sym(dim) {
                let index = match *func.op(check.index) {
                    Op::Arg(k) => format!("`{}`", func.args[k as usize].name),
                    Op::ConstInt(n) => format!("the index {n}"),
                    _ => "an index".to_string(),
                };
                return Err(format!(
                    "{index} points at rows along {name}, so {name} can't be cut into batches"
                ));
            }
        }
        let rows = full.dims[dim.0 as usize];
        if size == 0 || size > rows {
            return Err(format!(
                "a batch of {size} rows, but {name} has {rows} (a batch needs 1 to {rows})"
            ));
        }
        let mut batches = Batches {
            dim,
            size,
            sliced,
            rows,
            stream: Vec::with_capacity(rows + size),
            next: 0,
            rng: SplitMix64::new(seed),
        };
        batches.next_rows();
        Ok(batches)
    }

    /// The first batch: `full` with the batch dimension cut to this batch's rows.
    pub fn first(&mut self, full: &Bound) -> Bound {
        let mut batch = full.clone();
        batch.dims[self.dim.0 as usize] = self.size;
        self.fill(full, &mut batch);
        batch
    }

    /// Moves `batch` (made by [`Batches::first`]) on to the next batch's rows of `full`;
    /// the other arguments (the params) are left as they are.
    pub fn advance(&mut self, full: &Bound, batch: &mut Bound) {
        self.next_rows();
        self.fill(full, batch);
    }

    /// Moves on to the next batch's rows, starting an epoch when this one has fewer
    /// than `size` rows left.
    fn next_rows(&mut self) {
        let left = self.stream.len() - self.next;
        if left < self.size {
            // What is left of this epoch, then a fresh shuffle of every row (Fisher-Yates).
            self.stream.drain(..self.next);
            self.next = 0;
            self.stream.extend(0..self.rows);
            let epoch = &mut self.stream[left..];
            for k in (1..epoch.len()).rev() {
                let j = self.rng.below(k as u64 + 1) as usize;
                epoch.swap(k, j);
            }
            // The new epoch's rows that complete the first batch must differ from the
            // left-over ones: swap any repeat for a later row that is no repeat.
            let mut is_left = vec![false; self.rows];
            for &row in &self.stream[..left] {
                is_left[row] = true;
            }
            let fill = self.size - left;
            let (head, tail) = self.stream[left..].split_at_mut(fill);
            let mut spare = tail.iter_mut().filter(|row| !is_left[**row]);
            for row in head.iter_mut().filter(|row| is_left[**row]) {
                if let Some(other) = spare.next() {
                    std::mem::swap(row, other);
                }
            }
        }
        self.next += self.size;
    }

    /// Copies the current batch's rows of the sliced inputs from `full` into `batch`.
    fn fill(&self, full: &Bound, batch: &mut Bound) {
        let rows = &self.stream[self.next - self.size..self.next];
        for &k in &self.sliced {
            let (from, to) = (&full.args[k], &mut batch.args[k]);
            let width = from.shape[1..].iter().product::<usize>();
            to.shape[0] = self.size;
            to.data = match &from.data {
                TensorData::Real(v) => TensorData::Real(rows_of(v, rows, width)),
                TensorData::Int(v) => TensorData::Int(rows_of(v, rows, width)),
                TensorData::Bool(v) => TensorData::Bool(rows_of(v, rows, width)),
            };
        }
    }
}

/// The rows `rows` of `from`, each `width` elements long, one after another.
fn rows_of<T: Copy>(from: &[T], rows: &[usize], width: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(rows.len() * width);
    for &row in rows {
        out.extend_from_slice(&from[row * width..(row + 1) * width]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{ArgDecl, Elem, Type};
    use crate::tensor::Tensor;

    /// `input x: [B, 2]`, `input y: int[B]`, `input t: [T]`, `param w: [2]`, with B = 5
    /// rows (x's row r is `[r, 10 r]`, y's is r) and T = 3.
    fn data_set() -> (Function, Bound) {
        let arg = |name: &str, role, elem, shape: Vec<Dim>| ArgDecl {
            name: name.into(),
            role,
            ty: Type { elem, shape },
        };
        let (b, t) = (Dim::Sym(DimVar(0)), Dim::Sym(DimVar(1)));
        let args = vec![
            arg("x", ArgRole::Input, Elem::Real, vec![b, Dim::Const(2)]),
            arg("y", ArgRole::Input, Elem::Int, vec![b]),
            arg("t", ArgRole::Input, Elem::Real, vec![t]),
            arg("w", ArgRole::Param, Elem::Real, vec![Dim::Const(2)]),
        ];
        let func = Function::new("f", vec!["B".into(), "T".into()], args);
        let x = (0..5).flat_map(|r| [r as f64, 10.0 * r as f64]).collect();
        let bound = Bound {
            dims: vec![5, 3],
            args: vec![
                Tensor::real(vec![5, 2], x),
                Tensor::int(vec![5], (0..5).collect()),
                Tensor::real(vec![3], vec![7.0; 3]),
                Tensor::real(vec![2], vec![1.0, 2.0]),
            ],
        };
        (func, bound)
    }

    #[test]
    fn each_epoch_draws_every_row_once_in_batches_of_the_size() {
        let (func, full) = data_set();
        for seed in 0..20 {
            let mut batches = Batches::new(&func, &full, None, 2, seed).unwrap();
            let mut batch = batches.first(&full);
            let mut stream: Vec<i64> = Vec::new();
            for k in 0..10 {
                if k > 0 {
                    batches.advance(&full, &mut batch);
                }
                assert_eq!(batch.dims, vec![2, 3]);
                let TensorData::Int(rows) = &batch.args[1].data else {
                    panic!("y is int")
                };
                // Rows stay whole and aligned across the inputs; the rest is untouched.
                let x = batch.args[0].as_real().unwrap();
                for (i, &r) in rows.iter().enumerate() {
                    assert_eq!(&x[2 * i..2 * i + 2], &[r as f64, 10.0 * r as f64]);
                }
                assert_eq!(batch.args[2], full.args[2]);
                assert_eq!(batch.args[3], full.args[3]);
                assert_ne!(rows[0], rows[1], "a row twice in one batch");
                stream.extend(rows);
            }
            // 10 batches of 2 from 5 rows are 4 epochs, each every row once (batches
            // straddle epochs: the fifth row of one opens the next).
            let epochs: Vec<Vec<i64>> = stream.chunks(5).map(<[i64]>::to_vec).collect();
            for epoch in &epochs {
                let mut sorted = epoch.clone();
                sorted.sort();
                assert_eq!(sorted, vec![0, 1, 2, 3, 4], "seed {seed}: {stream:?}");
            }
            assert!(epochs.windows(2).any(|w| w[0] != w[1]), "{stream:?}");
        }
    }

    #[test]
    fn rows_that_an_index_points_at_are_not_cut() {
        let source = "input E: [B, D]\ninput i: int[N]\nparam w: [D]\nloss = sum(E[i] @ w)\n";
        let func = crate::driver::compile(source).unwrap().forward;
        let full = crate::data::random_point(&func, 1);
        let error = Batches::new(&func, &full, Some("B"), 1, 0).unwrap_err();
        assert_eq!(
            error,
            "`i` points at rows along B, so B can't be cut into batches"
        );
        // Cutting the indices themselves is fine: they still point into all of E.
        assert!(Batches::new(&func, &full, Some("N"), 1, 0).is_ok());
    }

    #[test]
    fn batches_refuse_what_they_cannot_cut() {
        let (func, full) = data_set();
        let error = |dim: Option<&str>, size| Batches::new(&func, &full, dim, size, 0).unwrap_err();
        assert_eq!(
            error(None, 6),
            "a batch of 6 rows, but B has 5 (a batch needs 1 to 5)"
        );
        assert!(error(None, 0).starts_with("a batch of 0 rows"));
        assert_eq!(error(Some("K"), 1), "the model has no dimension `K`");
        assert!(Batches::new(&func, &full, Some("T"), 3, 0).is_ok());
        let no_inputs = crate::driver::compile("param w\nloss = w^2\n")
            .unwrap()
            .forward;
        let bound = crate::data::random_point(&no_inputs, 0);
        let error = Batches::new(&no_inputs, &bound, None, 1, 0).unwrap_err();
        assert_eq!(error, "the model has no input to cut into batches");
    }

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
