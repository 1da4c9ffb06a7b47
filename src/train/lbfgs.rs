//! L-BFGS: quasi-Newton steps with a line search, for full-batch training.
//!
//! In: the params, their loss and gradient, and a way to evaluate the loss and gradient
//! at other params. Out: the params moved to a point of lower loss, with its loss and
//! gradient. Each step builds a direction from the last `history` steps' changes in
//! params and gradients (Nocedal & Wright, *Numerical Optimization*, algorithm 7.4,
//! the two-loop recursion) and searches along it for a point that satisfies the strong
//! Wolfe conditions (algorithms 3.5 and 3.6), so every pair kept has positive curvature
//! and every direction is a descent direction.

use std::collections::VecDeque;

/// The line search's sufficient-decrease constant (Armijo's c₁).
const C1: f64 = 1e-4;
/// The line search's curvature constant (c₂; 0.9 as quasi-Newton methods use).
const C2: f64 = 0.9;
/// Evaluations of the loss one step may use before it takes the best point it found.
const MAX_EVALUATIONS: usize = 25;

/// L-BFGS's state: the last steps' changes in the params (`s`) and in the gradients
/// (`y`), flattened over all params in declaration order.
#[derive(Clone, Debug)]
pub struct Lbfgs {
    history: usize,
    /// `(s, y, 1 / (s·y))`, oldest first.
    pairs: VecDeque<(Vec<f64>, Vec<f64>, f64)>,
    /// The params' lengths at the first step (they must not change).
    lens: Vec<usize>,
}

/// What one [`Lbfgs::step`] did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LbfgsStep {
    /// The loss at the params left (lower than before, unless `stopped`).
    pub loss: f64,
    /// Evaluations of the loss and gradient the step made.
    pub evaluations: usize,
    /// Why the step could not move the params (they were left unchanged); `None` if
    /// it moved them.
    pub stopped: Option<LbfgsStop>,
}

/// Why an [`Lbfgs::step`] left the params where they were: more steps would not move
/// them either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LbfgsStop {
    /// The gradient is zero.
    ZeroGradient,
    /// No point along the direction has a lower loss: the params are a minimum to the
    /// precision of the loss.
    NoDecrease,
    /// No point along the direction has a lower loss, and some have a loss that is NaN
    /// or infinite: the loss cannot be computed just beyond the params (a probability
    /// rounded to 0 or 1 inside a `log`, or a loss unbounded below that overflows).
    NotFinite,
    /// The gradient at the params has a NaN or infinite element, or is so large that
    /// the slope along it overflows: it gives no direction.
    GradientNotFinite,
}

impl Lbfgs {
    /// L-BFGS remembering the last `history` steps (10 is usual; at least 1).
    pub fn new(history: usize) -> Lbfgs {
        Lbfgs {
            history: history.max(1),
            pairs: VecDeque::new(),
            lens: Vec::new(),
        }
    }

    /// One step from `params`, whose loss is `loss` and gradient `grads` (as a
    /// value-and-gradient call left them): chooses a direction, then calls
    /// `evaluate(trial_params, trial_grads)` for the loss at points along it (writing
    /// their gradients) until one satisfies the strong Wolfe conditions, or no step
    /// could lower the loss by more than its rounding (at most 25 evaluations). Leaves
    /// that point in `params` and its gradient in `grads`, and returns its loss. A failed
    /// evaluation stops the step, with the params unchanged. A loss that is NaN or
    /// infinite counts as too far, so the search comes back towards the params.
    ///
    /// # Panics
    /// If `params` and `grads` differ in number or length, or the params' lengths
    /// changed since the first step.
    pub fn step<E>(
        &mut self,
        params: &mut [&mut [f64]],
        loss: f64,
        grads: &mut [&mut [f64]],
        mut evaluate: impl FnMut(&[&[f64]], &mut [&mut [f64]]) -> Result<f64, E>,
    ) -> Result<LbfgsStep, E> {
        assert_eq!(params.len(), grads.len(), "one gradient per param");
        let lens: Vec<usize> = params.iter().map(|p| p.len()).collect();
        for (k, (p, g)) in params.iter().zip(grads.iter()).enumerate() {
            assert_eq!(p.len(), g.len(), "param {k} and its gradient");
        }
        if self.lens.is_empty() && self.pairs.is_empty() {
            self.lens.clone_from(&lens);
        }
        assert_eq!(lens, self.lens, "the params changed since the first step");
        let x0 = flatten(params);
        let g0 = flatten(grads);
        let unchanged = |evaluations, stop| LbfgsStep {
            loss,
            evaluations,
            stopped: Some(stop),
        };
        if g0.iter().any(|g| !g.is_finite()) {
            return Ok(unchanged(0, LbfgsStop::GradientNotFinite));
        }
        if g0.iter().all(|&g| g == 0.0) {
            return Ok(unchanged(0, LbfgsStop::ZeroGradient));
        }
        let mut direction = self.direction(&g0);
        let mut slope = dot(&direction, &g0);
        // Not below 0 (NaN included).
        if slope.partial_cmp(&0.0) != Some(std::cmp::Ordering::Less) {
            // Rounding made the remembered curvature useless: start again from the
            // gradient.
            self.pairs.clear();
            direction = g0.iter().map(|g| -g).collect();
            slope = dot(&direction, &g0);
        }
        if !slope.is_finite() {
            // A gradient near the largest double: the slope along it overflows, and no
            // step length can be judged.
            return Ok(unchanged(0, LbfgsStop::GradientNotFinite));
        }
        // With no pairs the direction is the gradient, whose scale says nothing of the
        // step: the first trial moves the params by 1 in norm (as scipy's L-BFGS-B does;
        // a gradient of 1e-9 far from a minimum is then not taken for one).
        let first_trial = if self.pairs.is_empty() {
            1.0 / norm(&direction)
        } else {
            1.0
        };
        let mut search = Search {
            x0: &x0,
            direction: &direction,
            loss0: loss,
            slope0: slope,
            lens: &lens,
            trial: vec![0.0; x0.len()],
            evaluations: 0,
            non_finite: false,
        };
        let Some(found) = search.run(first_trial, &mut evaluate)? else {
            // A search stopped by losses it could not compute says nothing of a minimum
            // (a loss unbounded below overflows to -inf).
            let stop = if search.non_finite {
                LbfgsStop::NotFinite
            } else {
                LbfgsStop::NoDecrease
            };
            return Ok(unchanged(search.evaluations, stop));
        };
        let s: Vec<f64> = direction.iter().map(|d| found.alpha * d).collect();
        let x1: Vec<f64> = x0.iter().zip(&s).map(|(x, s)| x + s).collect();
        if x1 == x0 {
            return Ok(unchanged(search.evaluations, LbfgsStop::NoDecrease));
        }
        let y: Vec<f64> = found.grad.iter().zip(&g0).map(|(g1, g0)| g1 - g0).collect();
        let curvature = dot(&s, &y);
        // The strong Wolfe conditions make it positive; a search that ran out of
        // evaluations may not have.
        if curvature > 0.0 && curvature.is_finite() {
            if self.pairs.len() == self.history {
                self.pairs.pop_front();
            }
            self.pairs.push_back((s, y, 1.0 / curvature));
        }
        unflatten(&x1, params);
        unflatten(&found.grad, grads);
        Ok(LbfgsStep {
            loss: found.loss,
            evaluations: search.evaluations,
            stopped: None,
        })
    }

    /// `−H·g` by the two-loop recursion, `H` being the inverse Hessian that the pairs
    /// imply, starting from the scaled identity `(s·y / y·y) I` of the newest pair.
    fn direction(&self, g: &[f64]) -> Vec<f64> {
        let mut q = g.to_vec();
        let mut alphas = Vec::with_capacity(self.pairs.len());
        for (s, y, rho) in self.pairs.iter().rev() {
            let alpha = rho * dot(s, &q);
            axpy(-alpha, y, &mut q);
            alphas.push(alpha);
        }
        if let Some((s, y, _)) = self.pairs.back() {
            let gamma = dot(s, y) / dot(y, y);
            q.iter_mut().for_each(|v| *v *= gamma);
        }
        for ((s, y, rho), alpha) in self.pairs.iter().zip(alphas.iter().rev()) {
            let beta = rho * dot(y, &q);
            axpy(alpha - beta, s, &mut q);
        }
        q.iter_mut().for_each(|v| *v = -*v);
        q
    }
}

/// A point the line search evaluated.
struct Point {
    alpha: f64,
    loss: f64,
    /// The directional derivative there.
    slope: f64,
    grad: Vec<f64>,
}

/// One line search along `direction` from `x0`.
struct Search<'a> {
    x0: &'a [f64],
    direction: &'a [f64],
    loss0: f64,
    slope0: f64,
    lens: &'a [usize],
    trial: Vec<f64>,
    evaluations: usize,
    /// Some point evaluated had a loss that is NaN or infinite.
    non_finite: bool,
}

impl Search<'_> {
    /// Evaluates the point `alpha` along the direction. A loss that is not finite
    /// becomes +∞ (too far).
    fn point<E>(
        &mut self,
        alpha: f64,
        evaluate: &mut impl FnMut(&[&[f64]], &mut [&mut [f64]]) -> Result<f64, E>,
    ) -> Result<Point, E> {
        for ((t, x), d) in self.trial.iter_mut().zip(self.x0).zip(self.direction) {
            *t = x + alpha * d;
        }
        let mut grad = vec![0.0; self.x0.len()];
        let loss = {
            let trial = split(&self.trial, self.lens);
            let mut grads = split_mut(&mut grad, self.lens);
            evaluate(&trial, &mut grads)?
        };
        self.evaluations += 1;
        let slope = dot(&grad, self.direction);
        self.non_finite |= !loss.is_finite();
        Ok(if loss.is_finite() && slope.is_finite() {
            Point {
                alpha,
                loss,
                slope,
                grad,
            }
        } else {
            Point {
                alpha,
                loss: f64::INFINITY,
                slope: f64::NAN,
                grad,
            }
        })
    }

    /// Whether `p` lowers the loss enough for its step (Armijo's condition).
    fn decreases(&self, p: &Point) -> bool {
        // Strictly lower too: near a minimum the Armijo term rounds away, and a step to
        // an equal loss would go on forever.
        p.loss <= self.loss0 + C1 * p.alpha * self.slope0 && p.loss < self.loss0
    }

    /// Whether a step of `length` along the direction can lower the loss by no more
    /// than its rounding: the first-order decrease `-slope0 · length` bounds what a
    /// smaller step can gain.
    fn below_rounding(&self, length: f64) -> bool {
        -self.slope0 * length <= f64::EPSILON * self.loss0.abs()
    }

    /// Whether a step of `alpha` along the direction changes any param (near a minimum
    /// the zoom can shrink a step below the params' rounding, where every trial is the
    /// start again).
    fn moves(&self, alpha: f64) -> bool {
        (self.x0.iter().zip(self.direction)).any(|(x, d)| x + alpha * d != *x)
    }

    /// Whether `p`'s slope is flat enough (the strong curvature condition).
    fn flat(&self, p: &Point) -> bool {
        p.slope.abs() <= -C2 * self.slope0
    }

    /// Algorithm 3.5: grows the step from `first` ([`extrapolate`]) until it brackets a
    /// Wolfe point, then zooms in. `None`: no point lowered the loss.
    fn run<E>(
        &mut self,
        first: f64,
        evaluate: &mut impl FnMut(&[&[f64]], &mut [&mut [f64]]) -> Result<f64, E>,
    ) -> Result<Option<Point>, E> {
        let mut previous = Point {
            alpha: 0.0,
            loss: self.loss0,
            slope: self.slope0,
            grad: Vec::new(),
        };
        let mut alpha = first;
        loop {
            let p = self.point(alpha, evaluate)?;
            if !self.decreases(&p) || (previous.alpha > 0.0 && p.loss >= previous.loss) {
                return self.zoom(previous, p, evaluate);
            }
            if self.flat(&p) {
                return Ok(Some(p));
            }
            if p.slope >= 0.0 {
                return self.zoom(p, previous, evaluate);
            }
            if self.evaluations >= MAX_EVALUATIONS {
                return Ok(Some(p));
            }
            alpha = extrapolate(&previous, &p);
            previous = p;
        }
    }

    /// Algorithm 3.6: `lo` (lowering the loss, or the start) and `hi` bracket a Wolfe
    /// point; shrinks the bracket until a point is one, or the evaluations run out
    /// (then the best point that lowered the loss, if any).
    fn zoom<E>(
        &mut self,
        mut lo: Point,
        mut hi: Point,
        evaluate: &mut impl FnMut(&[&[f64]], &mut [&mut [f64]]) -> Result<f64, E>,
    ) -> Result<Option<Point>, E> {
        loop {
            // Out of evaluations, or a bracket of one double, or one too short for any
            // point in it to lower the loss by more than its rounding (at a minimum, 25
            // evaluations of rounding noise would find no more), or a trial that is the
            // start again.
            let width = (hi.alpha - lo.alpha).abs();
            let alpha = interpolate(&lo, &hi);
            if self.evaluations >= MAX_EVALUATIONS
                || width <= f64::EPSILON * lo.alpha.abs().max(hi.alpha.abs())
                || self.below_rounding(width)
                || !self.moves(alpha)
            {
                return Ok((lo.alpha > 0.0).then_some(lo));
            }
            let p = self.point(alpha, evaluate)?;
            if !self.decreases(&p) || p.loss >= lo.loss {
                hi = p;
            } else {
                if self.flat(&p) {
                    return Ok(Some(p));
                }
                if p.slope * (hi.alpha - lo.alpha) >= 0.0 {
                    hi = lo;
                }
                lo = p;
            }
        }
    }
}

/// The minimiser of the cubic through `a` and `b` (their losses and slopes), kept in the
/// middle 80% of the bracket; the midpoint where that cubic is of no use (a loss or slope
/// that is not finite, or no minimum inside).
fn interpolate(a: &Point, b: &Point) -> f64 {
    let (lo, hi) = if a.alpha < b.alpha { (a, b) } else { (b, a) };
    let width = hi.alpha - lo.alpha;
    let midpoint = lo.alpha + 0.5 * width;
    let finite = [lo.loss, hi.loss, lo.slope, hi.slope]
        .iter()
        .all(|v| v.is_finite());
    if !finite {
        return midpoint;
    }
    // Nocedal & Wright, equation 3.59.
    let d1 = lo.slope + hi.slope - 3.0 * (lo.loss - hi.loss) / (lo.alpha - hi.alpha);
    let radicand = d1 * d1 - lo.slope * hi.slope;
    if radicand.is_nan() || radicand < 0.0 {
        return midpoint;
    }
    let d2 = radicand.sqrt();
    let alpha = hi.alpha - width * (hi.slope + d2 - d1) / (hi.slope - lo.slope + 2.0 * d2);
    let (low, high) = (lo.alpha + 0.1 * width, hi.alpha - 0.1 * width);
    if alpha.is_finite() {
        alpha.clamp(low, high)
    } else {
        midpoint
    }
}

/// The next trial beyond `p` while no point brackets a Wolfe point: where the secant of
/// the slopes at `previous` and `p` reaches zero (the minimum, were the loss quadratic
/// along the line), at least 1.1 and at most 100 times the last increase beyond `p`;
/// 4 times it where the slope is not flattening. Doubling took 19 steps where scipy
/// takes 5 on a badly scaled quadratic (its direction was 10⁴ times too short in one
/// variable, and each search gave up growing it too early); a bound of 4 on the secant
/// (Moré and Thuente's) did no better than doubling.
fn extrapolate(previous: &Point, p: &Point) -> f64 {
    let step = p.alpha - previous.alpha;
    let secant = p.alpha + step * p.slope / (previous.slope - p.slope);
    if secant.is_finite() && p.slope > previous.slope {
        secant.clamp(p.alpha + 1.1 * step, p.alpha + 100.0 * step)
    } else {
        p.alpha + 4.0 * step
    }
}

/// `a·b`, in eight running sums: one sum would wait on each addition in turn (the
/// compiler may not reorder them), which made the directions of a network's 200,000
/// params cost more than its value-and-gradient calls.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut sums = [0.0; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = (a_chunks.remainder().iter())
        .zip(b_chunks.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in a_chunks.zip(b_chunks) {
        for k in 0..8 {
            sums[k] += a[k] * b[k];
        }
    }
    sums.iter().sum::<f64>() + tail
}

/// The Euclidean norm, scaled so that its square cannot overflow.
fn norm(a: &[f64]) -> f64 {
    let largest = a.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    if largest == 0.0 || !largest.is_finite() {
        return largest;
    }
    let scaled: f64 = a.iter().map(|x| (x / largest) * (x / largest)).sum();
    largest * scaled.sqrt()
}

/// `y += a·x`.
fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

fn flatten(parts: &[&mut [f64]]) -> Vec<f64> {
    parts.iter().flat_map(|p| p.iter().copied()).collect()
}

fn unflatten(flat: &[f64], parts: &mut [&mut [f64]]) {
    let mut rest = flat;
    for part in parts.iter_mut() {
        let (head, tail) = rest.split_at(part.len());
        part.copy_from_slice(head);
        rest = tail;
    }
}

fn split<'a>(flat: &'a [f64], lens: &[usize]) -> Vec<&'a [f64]> {
    let mut rest = flat;
    lens.iter()
        .map(|&len| {
            let (head, tail) = rest.split_at(len);
            rest = tail;
            head
        })
        .collect()
}

fn split_mut<'a>(flat: &'a mut [f64], lens: &[usize]) -> Vec<&'a mut [f64]> {
    let mut rest = flat;
    lens.iter()
        .map(|&len| {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(len);
            rest = tail;
            head
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rosenbrock's function in `n` dimensions and its gradient.
    fn rosenbrock(x: &[f64], g: &mut [f64]) -> f64 {
        g.iter_mut().for_each(|g| *g = 0.0);
        let mut f = 0.0;
        for i in 0..x.len() - 1 {
            let (a, b) = (1.0 - x[i], x[i + 1] - x[i] * x[i]);
            f += a * a + 100.0 * b * b;
            g[i] += -2.0 * a - 400.0 * x[i] * b;
            g[i + 1] += 200.0 * b;
        }
        f
    }

    /// Runs L-BFGS from `x` (one param) for at most `steps` steps; the steps taken, the
    /// evaluations made and the final point.
    fn minimise(
        mut x: Vec<f64>,
        steps: usize,
        f: impl Fn(&[f64], &mut [f64]) -> f64,
    ) -> (usize, usize, Vec<f64>, f64) {
        let mut g = vec![0.0; x.len()];
        let mut loss = f(&x, &mut g);
        let mut lbfgs = Lbfgs::new(10);
        let mut evaluations = 1;
        for step in 0..steps {
            let outcome = lbfgs
                .step(&mut [&mut x[..]], loss, &mut [&mut g[..]], |p, g| {
                    Ok::<f64, ()>(f(p[0], g[0]))
                })
                .unwrap();
            evaluations += outcome.evaluations;
            if outcome.stopped.is_some() {
                assert!(
                    matches!(
                        outcome.stopped,
                        Some(LbfgsStop::NoDecrease | LbfgsStop::ZeroGradient)
                    ),
                    "{outcome:?}"
                );
                return (step, evaluations, x, loss);
            }
            assert!(outcome.loss < loss, "step {step} did not lower the loss");
            loss = outcome.loss;
        }
        (steps, evaluations, x, loss)
    }

    #[test]
    fn minimises_rosenbrock_to_rounding_and_stops() {
        for n in [2, 10] {
            let start: Vec<f64> = (0..n)
                .map(|i| if i % 2 == 0 { -1.2 } else { 1.0 })
                .collect();
            let (steps, evaluations, x, loss) = minimise(start, 500, rosenbrock);
            assert!(steps < 200, "n = {n}: {steps} steps");
            assert!(loss < 1e-20, "n = {n}: loss {loss}");
            // A minimum found by comparing losses is as good as √ε in the params.
            for xi in &x {
                assert!((xi - 1.0).abs() < 1e-7, "n = {n}: {x:?}");
            }
            // A line search of a few evaluations per step, not the budget.
            assert!(
                evaluations < 3 * steps,
                "n = {n}: {evaluations} evaluations, {steps} steps"
            );
        }
    }

    #[test]
    fn a_quadratic_is_solved_until_its_loss_stops_falling() {
        // f = ½ xᵀAx − bᵀx with A diagonal (condition number 100): exact line searches
        // would take 5 steps; the Wolfe search takes the first step length that
        // satisfies it (1, mostly), so more.
        let a = [1.0, 3.0, 10.0, 30.0, 100.0];
        let f = |x: &[f64], g: &mut [f64]| {
            let mut f = 0.0;
            for i in 0..5 {
                g[i] = a[i] * x[i] - 1.0;
                f += 0.5 * a[i] * x[i] * x[i] - x[i];
            }
            f
        };
        let (steps, evaluations, x, _) = minimise(vec![0.0; 5], 100, f);
        assert!(steps <= 30, "{steps} steps");
        // Nearly every step's first trial is taken, and the last search stops once a
        // step cannot lower the loss by more than its rounding (it used to try 25).
        assert!(
            evaluations <= steps + 5,
            "{evaluations} evaluations, {steps} steps"
        );
        for i in 0..5 {
            assert!((x[i] * a[i] - 1.0).abs() < 1e-7, "{x:?}");
        }
    }

    #[test]
    fn a_badly_scaled_quadratic_takes_a_few_steps() {
        // The curvatures in x and y differ by s⁴. The first direction is 10⁴ times too
        // short in y at s = 100, and the search must grow it that far at once: by
        // doubling, each step gave up early and the run took 19 steps for every s (scipy's
        // L-BFGS-B: 4 to 9).
        for s in [10.0, 100.0, 1000.0] {
            let f = |p: &[f64], g: &mut [f64]| {
                let (u, v) = (s * p[0], p[1] / s);
                let du = 2.0 * (u - 1.0) + 0.2 * (u - v);
                let dv = 2.0 * (v - 1.0) - 0.2 * (u - v);
                g[0] = du * s;
                g[1] = dv / s;
                (u - 1.0).powi(2) + (v - 1.0).powi(2) + 0.1 * (u - v).powi(2)
            };
            let (steps, evaluations, x, _) = minimise(vec![0.0, 0.0], 100, f);
            assert!(
                steps <= 8 && evaluations <= 20,
                "s = {s}: {steps} steps, {evaluations} evaluations"
            );
            assert!(
                (x[0] * s - 1.0).abs() < 1e-9 && (x[1] / s - 1.0).abs() < 1e-9,
                "s = {s}: {x:?}"
            );
        }
    }

    #[test]
    fn the_last_search_stops_once_its_steps_no_longer_move_the_params() {
        // Himmelblau's function ends at a loss of 8e-31 (its rounding, not 0): the last
        // search used to shrink its step for 25 evaluations (41 in all), the params
        // unchanged by most of them.
        let f = |p: &[f64], g: &mut [f64]| {
            let (a, b) = (p[0] * p[0] + p[1] - 11.0, p[0] + p[1] * p[1] - 7.0);
            g[0] = 4.0 * a * p[0] + 2.0 * b;
            g[1] = 2.0 * a + 4.0 * b * p[1];
            a * a + b * b
        };
        let (steps, evaluations, x, loss) = minimise(vec![-0.5, 0.3], 100, f);
        // The minimum near (-2.805, 3.131).
        assert!(loss < 1e-28 && (x[0] + 2.805).abs() < 1e-3, "{x:?} {loss}");
        assert!(
            evaluations <= steps + 10,
            "{evaluations} evaluations, {steps} steps"
        );
    }

    #[test]
    fn a_tiny_gradient_far_from_a_minimum_is_not_taken_for_one() {
        // (x² − 1)² from x = 1e-9: the gradient is -4e-9, the minima are at ±1. A first
        // step as long as the gradient changes nothing in the loss; one of length 1 does.
        let f = |x: &[f64], g: &mut [f64]| {
            g[0] = 4.0 * x[0] * (x[0] * x[0] - 1.0);
            (x[0] * x[0] - 1.0).powi(2)
        };
        let (_, _, x, loss) = minimise(vec![1e-9], 100, f);
        assert!(
            (x[0].abs() - 1.0).abs() < 1e-7 && loss < 1e-14,
            "{x:?} {loss}"
        );
    }

    #[test]
    fn a_loss_unbounded_below_is_not_called_a_minimum() {
        // -exp(x) falls until it overflows to -inf.
        let f = |x: &[f64], g: &mut [f64]| {
            g[0] = -x[0].exp();
            -x[0].exp()
        };
        let mut x = [0.0];
        let mut g = [0.0];
        let mut loss = f(&x, &mut g);
        let mut lbfgs = Lbfgs::new(10);
        for _ in 0..50 {
            let outcome = lbfgs
                .step(&mut [&mut x[..]], loss, &mut [&mut g[..]], |p, g| {
                    Ok::<f64, ()>(f(p[0], g[0]))
                })
                .unwrap();
            if let Some(stop) = outcome.stopped {
                assert_ne!(stop, LbfgsStop::NoDecrease, "x = {x:?}, loss {loss:e}");
                assert!(loss.is_finite() && loss < -1e300);
                return;
            }
            loss = outcome.loss;
        }
        panic!("did not stop: x = {x:?}, loss {loss:e}");
    }

    #[test]
    fn a_loss_that_overflows_far_away_is_searched_back_from() {
        // exp(x) − 2x has its minimum at ln 2; a first trial far to the right overflows.
        let f = |x: &[f64], g: &mut [f64]| {
            g[0] = x[0].exp() - 2.0;
            x[0].exp() - 2.0 * x[0]
        };
        let (_, _, x, _) = minimise(vec![-800.0], 100, f);
        assert!((x[0] - 2f64.ln()).abs() < 1e-12, "{x:?}");
    }

    #[test]
    fn a_zero_or_nan_gradient_or_a_failed_evaluation_leaves_the_params() {
        let mut x = [3.0];
        let mut g = [0.0];
        for (gradient, stop) in [
            (0.0, LbfgsStop::ZeroGradient),
            (f64::NAN, LbfgsStop::GradientNotFinite),
        ] {
            g[0] = gradient;
            let outcome = Lbfgs::new(5)
                .step(&mut [&mut x[..]], 1.0, &mut [&mut g[..]], |_, _| {
                    Ok::<f64, ()>(0.0)
                })
                .unwrap();
            assert_eq!(outcome.stopped, Some(stop));
            assert!(outcome.evaluations == 0 && x == [3.0]);
        }
        g[0] = 1.0;
        let failed = Lbfgs::new(5).step(&mut [&mut x[..]], 1.0, &mut [&mut g[..]], |_, _| {
            Err("refused")
        });
        assert_eq!(failed, Err("refused"));
        assert_eq!(x, [3.0]);
    }
}
