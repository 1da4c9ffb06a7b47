//! Training: the update rules that move params against their gradients.
//!
//! In: the params and their gradients, as slices in declaration order (what
//! [`crate::api::Call::value_and_grad`] fills). Out: the params, moved one step. `gradc
//! train` uses these rules, and so can a Rust training loop (`examples/train_digits.rs`).
//! An [`Optimizer`] keeps its own state (Adam's moments), sized at its first step, and
//! may decay weights and clip the gradients' global norm; a [`Schedule`] varies the
//! learning rate over a run (warm-up, then linear or cosine decay); [`BestParams`] keeps
//! the params of the best score seen.
//! [`Batches`] cuts a bound data set into minibatches along one dimension. [`fit`] puts
//! them together: it is `gradc train`'s loop (the command only parses its flags, prints
//! each [`Report`] and writes the params). For full-batch problems, [`Lbfgs`] takes
//! quasi-Newton steps with a line search instead ([`Method::Lbfgs`]).

mod lbfgs;

pub use lbfgs::{Lbfgs, LbfgsStep, LbfgsStop};

use crate::data::{Bound, SplitMix64};
use crate::ir::{ArgRole, Dim, DimVar, Function, Op};
use crate::jit::ArgData;
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
    /// Decoupled weight decay: each step also moves every param by `-lr · λ · p`.
    weight_decay: f64,
    /// The largest global norm of the gradients a step uses (`None`: no clipping).
    clip_norm: Option<f64>,
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
            weight_decay: 0.0,
            clip_norm: None,
            steps: 0,
            first_moment: Vec::new(),
            second_moment: Vec::new(),
        }
    }

    /// With decoupled weight decay `lambda` (AdamW's, Loshchilov & Hutter): each step also
    /// moves every param by `-lr · lambda · p`, apart from its gradient's step. For SGD
    /// this is the same as adding `lambda/2 · |p|²` to the loss; for Adam it is not
    /// (the decay is not divided by the gradient's scale), which is why AdamW decays so.
    /// It applies to every param, biases included.
    ///
    /// # Panics
    /// If `lambda` is negative or not finite (it would grow the params).
    pub fn with_weight_decay(mut self, lambda: f64) -> Optimizer {
        assert!(
            lambda.is_finite() && lambda >= 0.0,
            "weight decay must be finite and at least 0, got {lambda}"
        );
        self.weight_decay = lambda;
        self
    }

    /// With clipping: a step whose gradients' global norm (the root of the sum of the
    /// squares of all their elements) exceeds `max_norm` uses the gradients scaled down
    /// to that norm (optax's `clip_by_global_norm`).
    ///
    /// # Panics
    /// If `max_norm` is not above 0 (a negative one would turn the steps round).
    pub fn with_clip_norm(mut self, max_norm: f64) -> Optimizer {
        assert!(
            max_norm > 0.0,
            "the clipping norm must be above 0, got {max_norm}"
        );
        self.clip_norm = Some(max_norm);
        self
    }

    /// The learning rate the next step uses.
    pub fn learning_rate(&self) -> f64 {
        self.lr
    }

    /// Sets the learning rate of the steps from now on (a [`Schedule`] sets it before
    /// each step); Adam's moments are kept.
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// Moves every param one step against its gradient: `params[k]` pairs with
    /// `grads[k]`, element for element. The pairs must keep their lengths from step to
    /// step (Adam's state is kept per element).
    ///
    /// # Panics
    /// If the lists, or a param and its gradient, differ in length, or the number of
    /// params or a param's length changed since the first step.
    pub fn step(&mut self, params: &mut [&mut [f64]], grads: &[&[f64]]) {
        assert_eq!(params.len(), grads.len(), "one gradient per param");
        if self.steps > 0 && self.rule == Rule::Adam {
            assert_eq!(
                params.len(),
                self.first_moment.len(),
                "the number of params changed since the first step"
            );
        }
        // 1 unless clipping scales the gradients down.
        let scale = match self.clip_norm {
            Some(max_norm) => {
                let squares: f64 = grads.iter().flat_map(|g| g.iter()).map(|g| g * g).sum();
                let norm = squares.sqrt();
                if norm > max_norm {
                    max_norm / norm
                } else {
                    1.0
                }
            }
            None => 1.0,
        };
        let decay = self.lr * self.weight_decay;
        if self.steps == 0 && self.rule == Rule::Adam {
            self.first_moment = grads.iter().map(|g| vec![0.0; g.len()]).collect();
            self.second_moment = self.first_moment.clone();
        }
        self.steps = self.steps.saturating_add(1);
        for (k, (param, grad)) in params.iter_mut().zip(grads).enumerate() {
            assert_eq!(param.len(), grad.len(), "param {k} and its gradient");
            match self.rule {
                Rule::Sgd => {
                    for (p, &g) in param.iter_mut().zip(grad.iter()) {
                        if decay != 0.0 {
                            *p -= decay * *p;
                        }
                        *p -= self.lr * (g * scale);
                    }
                }
                Rule::Adam => {
                    let (m, v) = (&mut self.first_moment[k], &mut self.second_moment[k]);
                    assert_eq!(m.len(), param.len(), "param {k} changed length");
                    let m_correction = 1.0 - BETA1.powi(self.steps);
                    let v_correction = 1.0 - BETA2.powi(self.steps);
                    for (((p, &g), m), v) in param.iter_mut().zip(grad.iter()).zip(m).zip(v) {
                        let g = g * scale;
                        if decay != 0.0 {
                            *p -= decay * *p;
                        }
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

/// How the learning rate varies over a run of `steps` steps: it rises linearly from
/// `peak / warmup` to `peak` over the first `warmup` steps, then follows the decay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    /// The learning rate after warm-up, where the decay starts.
    pub peak: f64,
    /// The shape of the decay after warm-up.
    pub decay: Decay,
    /// Steps of linear warm-up (0: none).
    pub warmup: usize,
    /// Steps in the whole run.
    pub steps: usize,
}

/// The decay of a [`Schedule`] after its warm-up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decay {
    /// The peak learning rate throughout.
    Constant,
    /// From the peak down towards 0 at the end of the run, in a straight line.
    Linear,
    /// From the peak down towards 0 along half a cosine (SGDR's, without restarts):
    /// slowly at first and at the end.
    Cosine,
}

impl Schedule {
    /// The learning rate of step `step` (0-based). Every step of the run has a positive
    /// rate: the last is `peak / (steps - warmup)` (linear) or about `peak · π² / (4 ·
    /// (steps - warmup)²)` (cosine) rather than 0, which would be a wasted step.
    pub fn learning_rate(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let decaying = self.steps.saturating_sub(self.warmup).max(1) as f64;
        let done = ((step - self.warmup) as f64 / decaying).min(1.0);
        match self.decay {
            Decay::Constant => self.peak,
            Decay::Linear => self.peak * (1.0 - done),
            Decay::Cosine => self.peak * 0.5 * (1.0 + (std::f64::consts::PI * done).cos()),
        }
    }
}

/// The params at the best score seen so far (early stopping's bookkeeping, without
/// stopping): offer it the score and params at each evaluation; it copies the params
/// only when the score beats the best (NaN never does).
#[derive(Clone, Debug)]
pub struct BestParams {
    higher_is_better: bool,
    best: Option<(f64, usize, Vec<Vec<f64>>)>,
}

impl BestParams {
    /// Keeps the params of the highest score if `higher_is_better`, else the lowest.
    pub fn new(higher_is_better: bool) -> BestParams {
        BestParams {
            higher_is_better,
            best: None,
        }
    }

    /// Offers the `score` of `params` at `step`; whether it is the new best (the
    /// params are then copied). Ties keep the earlier step.
    pub fn offer(&mut self, score: f64, step: usize, params: &[&[f64]]) -> bool {
        let better = match &self.best {
            _ if score.is_nan() => false,
            None => true,
            Some((old, _, _)) if self.higher_is_better => score > *old,
            Some((old, _, _)) => score < *old,
        };
        if better {
            self.best = Some((score, step, params.iter().map(|p| p.to_vec()).collect()));
        }
        better
    }

    /// The best score, its step and its params (in the order offered), if any score was
    /// offered that is not NaN.
    pub fn best(&self) -> Option<(f64, usize, &[Vec<f64>])> {
        (self.best.as_ref()).map(|(score, step, params)| (*score, *step, params.as_slice()))
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

/// How [`fit`] moves the params at each step.
#[derive(Clone, Debug)]
pub enum Method {
    /// One update of this optimizer per step, with its weight decay and clipping, at
    /// the learning rate the schedule gives the step (the optimizer's own rate is not
    /// used).
    Descent(Optimizer),
    /// One [`Lbfgs`] step per step: a quasi-Newton direction from the last `history`
    /// steps and a line search along it, on all the data (no batches; the schedule's
    /// rates are not used). The run stops early once no lower loss is found
    /// ([`Fitted::stopped_at`]).
    Lbfgs {
        /// The steps remembered (10 is usual).
        history: usize,
    },
}

/// What [`fit`] does: the knobs of `gradc train`. [`Settings::new`] and
/// [`Settings::lbfgs`] give plain runs; set the other fields on them.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The update rule.
    pub method: Method,
    /// The learning rate of each step, and the number of update steps
    /// ([`Schedule::steps`]; the params are reported after each `report_every` steps
    /// and after the last).
    pub schedule: Schedule,
    /// Steps between reports (0: only the first and the last).
    pub report_every: usize,
    /// Minibatches: rows per batch, the batch dimension's name (`None`: the first axis
    /// of the first input), the seed of the order. `None`: every step sees all the data.
    pub batch: Option<(usize, Option<String>, u64)>,
    /// The value whose best report leaves its params in the data at the end: `loss` or
    /// a scalar output, and whether higher is better. `None`: the last step's params.
    pub keep: Option<(String, bool)>,
}

impl Settings {
    /// `steps` steps of `rule` at the constant learning rate `lr`, each on all the
    /// data, reported at the first and the last, leaving the last step's params.
    pub fn new(rule: Rule, lr: f64, steps: usize) -> Settings {
        Settings {
            method: Method::Descent(Optimizer::new(rule, lr)),
            schedule: Schedule {
                peak: lr,
                decay: Decay::Constant,
                warmup: 0,
                steps,
            },
            report_every: 0,
            batch: None,
            keep: None,
        }
    }

    /// At most `steps` L-BFGS steps remembering the last 10, each on all the data,
    /// reported at the first and the last, leaving the last step's params.
    pub fn lbfgs(steps: usize) -> Settings {
        Settings {
            method: Method::Lbfgs { history: 10 },
            ..Settings::new(Rule::Sgd, 1.0, steps)
        }
    }
}

/// The values of one report, over all the data (not one batch).
#[derive(Clone, Debug, PartialEq)]
pub struct Report<'a> {
    /// The steps taken so far.
    pub step: usize,
    /// The loss.
    pub loss: f64,
    /// The learning rate of the next step, when the schedule varies it (`None` at the
    /// last report, or with a constant rate).
    pub learning_rate: Option<f64>,
    /// The model's scalar outputs (an accuracy...), in declaration order; empty when
    /// the report needed no forward pass over all the data (full-batch training of a
    /// model with no scalar output).
    pub outputs: Vec<(&'a str, f64)>,
}

/// How a [`fit`] ended: the loss at the last report and, with [`Settings::keep`], the
/// kept value and its step.
#[derive(Clone, Debug, PartialEq)]
pub struct Fitted {
    /// The loss over all the data after the last step.
    pub last_loss: f64,
    /// The best value of the kept name and its step, whose params are in the data.
    pub kept: Option<(f64, usize)>,
    /// With [`Method::Lbfgs`]: the step whose params L-BFGS could not move, and why,
    /// when that ended the run before [`Schedule::steps`]; it was reported, and its
    /// params are the ones left.
    pub stopped_at: Option<(usize, LbfgsStop)>,
    /// The value-and-gradient calls made: for SGD and Adam one a step (and, without
    /// batches, one for the loss after the last); for L-BFGS the first call and every
    /// point its line searches tried (as scipy's `nfev`).
    pub evaluations: usize,
}

/// Why [`fit`] stopped.
#[derive(Clone, Debug, PartialEq)]
pub enum FitError {
    /// A call was refused (the data does not fit the model).
    Model(crate::api::ModelError),
    /// The batches could not be made (see [`Batches::new`]), or were asked of
    /// [`Method::Lbfgs`].
    Batches(String),
    /// [`Settings::keep`] names neither `loss` nor a scalar output.
    UnknownKeep {
        /// The name asked for.
        name: String,
        /// The names that can be kept.
        reported: Vec<String>,
    },
    /// The loss became NaN or infinite.
    NotFinite {
        /// The step whose params gave it.
        step: usize,
        /// The loss.
        loss: f64,
        /// The data it was the loss of.
        of: LossOf,
    },
    /// The report callback failed (with its message).
    Report(String),
}

/// What data a loss of [`FitError::NotFinite`] was computed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossOf {
    /// All the data, which every step uses (no minibatches).
    Data,
    /// The step's minibatch.
    Batch,
    /// All the data, at a report between minibatch steps.
    AllData,
}

impl std::fmt::Display for FitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FitError::Model(e) => write!(f, "{e}"),
            FitError::Batches(message) | FitError::Report(message) => write!(f, "{message}"),
            FitError::UnknownKeep { name, reported } => {
                let names: Vec<String> = reported.iter().map(|n| format!("`{n}`")).collect();
                write!(
                    f,
                    "cannot keep the best `{name}`: the values reported are {}",
                    names.join(", ")
                )
            }
            FitError::NotFinite { step, loss, of } => {
                let over = match of {
                    LossOf::Data => "",
                    LossOf::Batch => " of the batch",
                    LossOf::AllData => " over all the data",
                };
                let hint = if *step == 0 {
                    "at the starting params: check the data and the params"
                } else {
                    "after the last update: lower the learning rate"
                };
                let loss = crate::data::real_to_json(*loss);
                let loss = loss.as_str().unwrap_or("NaN");
                write!(f, "the loss{over} is {loss} at step {step}, {hint}")
            }
        }
    }
}

impl std::error::Error for FitError {}

/// Trains the params of `bound` (the data bound for `model`, params at their starting
/// values) as `settings` say, calling `on_report` at each report; the params are left
/// in `bound`: the last step's, or the kept ones. This is `gradc train`.
pub fn fit(
    model: &crate::api::Model,
    bound: &mut Bound,
    settings: &Settings,
    mut on_report: impl FnMut(&Report<'_>) -> Result<(), String>,
) -> Result<Fitted, FitError> {
    let forward = model.forward_function();
    // Scalar outputs (an accuracy...) are reported beside the loss.
    let scalar_outputs: Vec<&str> = (forward.results.iter())
        .filter(|r| r.role == crate::ir::ResultRole::Output)
        .filter(|r| forward.ty(r.value).shape.is_empty())
        .map(|r| r.name.as_str())
        .collect();
    if let Some((name, _)) = &settings.keep {
        if name != "loss" && !scalar_outputs.contains(&name.as_str()) {
            let mut reported = vec!["loss".to_string()];
            reported.extend(scalar_outputs.iter().map(|n| n.to_string()));
            return Err(FitError::UnknownKeep {
                name: name.clone(),
                reported,
            });
        }
    }
    /// The method with its state.
    enum Stepper {
        Descent(Optimizer),
        Lbfgs(Lbfgs),
    }
    let mut stepper = match &settings.method {
        Method::Descent(optimizer) => Stepper::Descent(optimizer.clone()),
        Method::Lbfgs { history } => Stepper::Lbfgs(Lbfgs::new(*history)),
    };
    let descent = matches!(stepper, Stepper::Descent(_));
    if !descent && settings.batch.is_some() {
        return Err(FitError::Batches(
            "L-BFGS takes each step on all the data (its line search compares losses): \
             it takes no batches"
                .to_string(),
        ));
    }
    let schedule = settings.schedule;
    let steps = schedule.steps;
    let varies = descent && (schedule.decay != Decay::Constant || schedule.warmup > 0);
    // Params in declaration order, as their gradients are.
    let is_param: Vec<bool> = (forward.args.iter())
        .map(|arg| arg.role == ArgRole::Param)
        .collect();
    // With batches, the params live in the batch and are copied to `bound` to report
    // the loss over all the data.
    let mut batching = match &settings.batch {
        Some((size, dim, seed)) => {
            let mut batches = Batches::new(forward, bound, dim.as_deref(), *size, *seed)
                .map_err(FitError::Batches)?;
            let batch = batches.first(bound);
            Some((batches, batch))
        }
        None => None,
    };
    let batched = batching.is_some();
    let mut best = (settings.keep.as_ref()).map(|(_, higher)| BestParams::new(*higher));
    // Prepared calls: each step checks slice lengths and indices, and allocates nothing.
    let mut full_call = model.prepare(&bound.dims).map_err(FitError::Model)?;
    let mut batch_call = match &batching {
        Some((_, batch)) => Some(model.prepare(&batch.dims).map_err(FitError::Model)?),
        None => None,
    };
    let mut grads: Vec<Vec<f64>> = (bound.args.iter().zip(&is_param))
        .filter(|(_, &param)| param)
        .map(|(tensor, _)| vec![0.0; tensor.len()])
        .collect();
    let mut last_loss = f64::NAN;
    // L-BFGS's line search leaves the loss and gradient of the params it moves to.
    let mut known_loss: Option<f64> = None;
    let mut stopped_at = None;
    let mut evaluations = 0;
    let mut reported_at = None;
    let mut step = 0;
    loop {
        let last = step == steps || stopped_at.is_some();
        let report =
            (step == 0 || last || (settings.report_every > 0 && step % settings.report_every == 0))
                && reported_at != Some(step);
        // Over all the data (a batch's loss is not the loss), with the scalar outputs.
        let overall = if report && (batched || !scalar_outputs.is_empty()) {
            if let Some((_, batch)) = &batching {
                copy_params(batch, bound, &is_param);
            }
            Some(
                full_call
                    .forward(&bound.arg_data())
                    .map_err(FitError::Model)?,
            )
        } else {
            None
        };
        // The step's data (the batch, or all of it) and its prepared call.
        macro_rules! current_and_call {
            () => {
                match (batching.as_mut(), batch_call.as_mut()) {
                    (Some((_, batch)), Some(call)) => (batch, call),
                    _ => (&mut *bound, &mut full_call),
                }
            };
        }
        // The last step only reports: with batches, it needs no gradient.
        let step_loss = match (overall, known_loss.take()) {
            (Some(loss), _) if last && batched => loss,
            (_, Some(loss)) => loss,
            _ => {
                let (current, call) = current_and_call!();
                let mut slices: Vec<&mut [f64]> = grads.iter_mut().map(|g| &mut g[..]).collect();
                evaluations += 1;
                (call.value_and_grad(&current.arg_data(), &mut slices)).map_err(FitError::Model)?
            }
        };
        if report {
            reported_at = Some(step);
            last_loss = overall.unwrap_or(step_loss);
            let outputs: Vec<(&str, f64)> = match overall {
                Some(_) => (full_call.outputs())
                    .filter(|(name, _)| scalar_outputs.contains(name))
                    .map(|(name, values)| (name, values.first().copied().unwrap_or(f64::NAN)))
                    .collect(),
                None => Vec::new(),
            };
            let learning_rate = (varies && !last).then(|| schedule.learning_rate(step));
            on_report(&Report {
                step,
                loss: last_loss,
                learning_rate,
                outputs: outputs.clone(),
            })
            .map_err(FitError::Report)?;
            if let (Some(best), Some((name, _))) = (best.as_mut(), &settings.keep) {
                let value = if name == "loss" {
                    Some(last_loss)
                } else {
                    outputs.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
                };
                let (current, _) = current_and_call!();
                let params: Vec<&[f64]> = (current.args.iter().zip(&is_param))
                    .filter(|(_, &param)| param)
                    .filter_map(|(tensor, _)| tensor.as_real())
                    .collect();
                best.offer(value.unwrap_or(f64::NAN), step, &params);
            }
        }
        // With batches, the batch's loss and the loss over all the data (NaN data in
        // another batch) are both checked.
        let step_data = if batched { LossOf::Batch } else { LossOf::Data };
        for (loss, of) in [(Some(step_loss), step_data), (overall, LossOf::AllData)] {
            match loss {
                Some(loss) if !loss.is_finite() => {
                    return Err(FitError::NotFinite { step, loss, of })
                }
                _ => {}
            }
        }
        if last {
            break;
        }
        let (current, call) = current_and_call!();
        // The params, and the other arguments as the calls take them.
        let mut params: Vec<&mut [f64]> = Vec::new();
        let mut fixed: Vec<Option<ArgData<'_>>> = Vec::new();
        for (tensor, &param) in current.args.iter_mut().zip(&is_param) {
            match (&mut tensor.data, param) {
                (TensorData::Real(p), true) => {
                    params.push(p.as_mut_slice());
                    fixed.push(None);
                }
                (data, _) => fixed.push(Some(crate::data::arg_data(data))),
            }
        }
        let mut grad_views: Vec<&mut [f64]> = grads.iter_mut().map(|g| &mut g[..]).collect();
        match &mut stepper {
            Stepper::Descent(optimizer) => {
                let grad_views: Vec<&[f64]> = grad_views.iter().map(|g| &g[..]).collect();
                optimizer.set_learning_rate(schedule.learning_rate(step));
                optimizer.step(&mut params, &grad_views);
            }
            Stepper::Lbfgs(lbfgs) => {
                let moved = lbfgs.step(
                    &mut params,
                    step_loss,
                    &mut grad_views,
                    |trial, trial_grads| {
                        let mut trial = trial.iter();
                        let args: Vec<ArgData<'_>> = (fixed.iter())
                            .map(|arg| match arg {
                                Some(arg) => *arg,
                                None => ArgData::Real(trial.next().copied().unwrap_or_default()),
                            })
                            .collect();
                        call.value_and_grad(&args, trial_grads)
                    },
                );
                let moved = moved.map_err(FitError::Model)?;
                evaluations += moved.evaluations;
                known_loss = Some(moved.loss);
                if let Some(stop) = moved.stopped {
                    stopped_at = Some((step, stop));
                    continue;
                }
            }
        }
        if let Some((batches, batch)) = batching.as_mut() {
            batches.advance(bound, batch);
        }
        step += 1;
    }
    let kept = best.as_ref().and_then(|best| best.best());
    if let Some((_, _, params)) = kept {
        let args = (bound.args.iter_mut().zip(&is_param)).filter(|(_, &param)| param);
        for ((arg, _), kept) in args.zip(params) {
            arg.data = TensorData::Real(kept.clone());
        }
    }
    Ok(Fitted {
        last_loss,
        kept: kept.map(|(value, step, _)| (value, step)),
        stopped_at: stopped_at.filter(|&(at, _)| at < steps),
        evaluations,
    })
}

/// Copies the params (the arguments marked in `is_param`) of `from` into `to`.
fn copy_params(from: &Bound, to: &mut Bound, is_param: &[bool]) {
    for ((from, to), _) in (from.args.iter().zip(&mut to.args))
        .zip(is_param)
        .filter(|(_, &param)| param)
    {
        to.clone_from(from);
    }
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

    #[test]
    fn schedules_warm_up_then_decay_towards_zero() {
        let schedule = |decay, warmup| Schedule {
            peak: 0.1,
            decay,
            warmup,
            steps: 14,
        };
        let rates = |s: Schedule| (0..14).map(|k| s.learning_rate(k)).collect::<Vec<_>>();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-15;
        // Warm-up: 0.1 · (k + 1) / 4 for the first four steps, whatever the decay.
        for decay in [Decay::Constant, Decay::Linear, Decay::Cosine] {
            let r = rates(schedule(decay, 4));
            for (k, rate) in r.iter().take(4).enumerate() {
                assert!(close(*rate, 0.1 * (k + 1) as f64 / 4.0), "{decay:?} {r:?}");
            }
            assert!(close(r[4], 0.1), "the decay starts at the peak: {r:?}");
            assert!(r.iter().all(|&x| x > 0.0), "no step is wasted: {r:?}");
        }
        assert!(rates(schedule(Decay::Constant, 0))
            .iter()
            .all(|&x| x == 0.1));
        // Linear: ten steps after warm-up, each 0.01 less.
        let linear = rates(schedule(Decay::Linear, 4));
        for k in 4..14 {
            assert!(close(linear[k], 0.1 - 0.01 * (k - 4) as f64), "{linear:?}");
        }
        // Cosine: half the peak halfway through the decay, symmetric about it.
        let cosine = rates(schedule(Decay::Cosine, 4));
        assert!(close(cosine[9], 0.05), "{cosine:?}");
        assert!(close(cosine[6] + cosine[12], 0.1), "{cosine:?}");
        assert!(cosine.windows(2).skip(4).all(|w| w[1] < w[0]), "{cosine:?}");
    }

    #[test]
    fn weight_decay_shrinks_params_apart_from_their_gradient() {
        // SGD: p ← p − lr·g − lr·λ·p.
        let mut p = vec![2.0, -4.0];
        Optimizer::new(Rule::Sgd, 0.5)
            .with_weight_decay(0.1)
            .step(&mut [&mut p], &[&[1.0, 0.0]]);
        assert_eq!(p, vec![2.0 - 0.5 - 0.1, -4.0 + 0.2]);
        // AdamW: the decay is not divided by the gradient's scale, so a zero gradient
        // still shrinks the param by lr·λ·p.
        let (mut moving, mut still) = (vec![1.0], vec![3.0]);
        let mut adam = Optimizer::new(Rule::Adam, 0.01).with_weight_decay(0.5);
        adam.step(&mut [&mut moving, &mut still], &[&[1e3], &[0.0]]);
        assert!((still[0] - 3.0 * (1.0 - 0.005)).abs() < 1e-15, "{still:?}");
        let adam_step = 0.01 * 1e3 / (1e3 + 1e-8);
        assert!(
            (moving[0] - (1.0 - 0.005 - adam_step)).abs() < 1e-15,
            "{moving:?}"
        );
    }

    #[test]
    fn clipping_scales_the_gradients_down_to_the_global_norm() {
        // Global norm of (3, 4) and (12) is 13: clipped to 1.3, each is a tenth.
        let (mut a, mut b) = (vec![0.0, 0.0], vec![0.0]);
        let mut sgd = Optimizer::new(Rule::Sgd, 1.0).with_clip_norm(1.3);
        sgd.step(&mut [&mut a, &mut b], &[&[3.0, 4.0], &[12.0]]);
        let expected = [-0.3, -0.4, -1.2];
        for (got, want) in a.iter().chain(&b).zip(expected) {
            assert!((got - want).abs() < 1e-15, "{a:?} {b:?}");
        }
        // Below the norm, nothing changes.
        let mut c = vec![0.0];
        sgd.step(&mut [&mut c], &[&[1.0]]);
        assert_eq!(c, vec![-1.0]);
    }

    #[test]
    #[should_panic(expected = "the number of params changed since the first step")]
    fn adam_refuses_a_param_more_than_at_its_first_step() {
        let (mut a, mut c) = ([1.0], [1.0]);
        let mut adam = Optimizer::new(Rule::Adam, 0.1);
        adam.step(&mut [&mut a], &[&[1.0]]);
        adam.step(&mut [&mut a, &mut c], &[&[1.0], &[1.0]]);
    }

    #[test]
    #[should_panic(expected = "the clipping norm must be above 0")]
    fn a_negative_clipping_norm_is_refused() {
        let _ = Optimizer::new(Rule::Sgd, 0.1).with_clip_norm(-1.0);
    }

    #[test]
    fn best_params_are_those_of_the_best_score_offered() {
        let mut highest = BestParams::new(true);
        let mut lowest = BestParams::new(false);
        assert!(highest.best().is_none());
        for (step, score) in [(0, 0.5), (10, f64::NAN), (20, 0.9), (30, 0.9), (40, 0.1)] {
            let p = [step as f64, -(step as f64)];
            highest.offer(score, step, &[&p, &[score]]);
            lowest.offer(score, step, &[&p, &[score]]);
        }
        let (score, step, params) = highest.best().unwrap();
        assert_eq!((score, step), (0.9, 20), "ties keep the earlier step");
        assert_eq!(params, &[vec![20.0, -20.0], vec![0.9]]);
        let (score, step, params) = lowest.best().unwrap();
        assert_eq!((score, step, params[0][0]), (0.1, 40, 40.0));
        let mut only_nan = BestParams::new(false);
        assert!(!only_nan.offer(f64::NAN, 0, &[]));
        assert!(only_nan.best().is_none());
    }
}
