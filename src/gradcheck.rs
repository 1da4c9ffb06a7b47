//! Gradient checking: the derived gradient against central finite differences.
//!
//! In: the forward function (its first `Loss` result is differentiated), the gradient
//! function (its `Grad(k)` results), a [`Bound`] point, and an evaluator (the
//! interpreter or the JIT, behind one closure). Out: a [`GradcheckReport`] with, per
//! param, the worst relative error over the elements checked, where it occurs and both
//! values; [`GradcheckReport::passed`] compares it with a tolerance.
//!
//! # The method, and why the default tolerance is honest
//!
//! For an element `x` of a param, with `h = 1e-5 · max(1, |x|)`, the numerical
//! derivative is the central difference `fd = (f(x+h) − f(x−h)) / ((x+h) − (x−h))` (the
//! denominator is the step actually representable). Its truncation error is about
//! `h²|f'''|/6 ≈ 2e-11·|f'''|`, its rounding error about `ε·|f|/h ≈ 2e-11·|f|`
//! (`ε = 2.2e-16`). The error of an element is
//!
//! ```text
//! err = |g − fd| / max(|g|, |fd|, floor),   floor = 1e7 · ε · max(|f(x±h)|) / h
//! ```
//!
//! a relative error, except that gradients too small for finite differences to resolve
//! (below about `2e-4·|f|`) are compared on that absolute scale instead of being
//! divided by a tiny number. Where `f(x+h)` and `f(x−h)` are exactly equal, the floor
//! is at least `ε · max(1, |f|) / h` (about `2e-11`): the rounding noise of a gradient
//! that is zero (a loss that is identically 0, as `logsumexp(log_softmax(p))`) passes. Pure rounding noise (a few `ε·|f|/h`) then scores about
//! `1e-7`, ten times under a tolerance of `1e-6` and a hundred times under the default
//! [`DEFAULT_TOLERANCE`] `= 1e-5`, while a wrong gradient scores far above either (a
//! sign error scores 2, a missing factor 2 scores 0.5, an error of 1% of a gradient
//! element of size `|f|` scores 1e-2). Well-conditioned smooth losses typically score
//! 1e-9 to 1e-7.
//!
//! A gradient or a difference that is NaN or infinite fails (its error is NaN, or
//! infinite for two different non-NaN values), unless both are the same infinity.
//!
//! When an element fails that test, it is examined again before being reported. First
//! the rounding noise of `f` near `x` is measured (the spread of third differences at
//! eleven points `h` apart; see `rounding_noise`): where the loss is a small difference
//! of large terms (a variance as `E[x²] − E[x]²`) it is far above `ε·|f|`, and ten of its
//! deviations are then forgiven in every difference below. The error reported stays
//! `|g − fd| / max(...)`, with that allowance beside it on the same scale
//! ([`ParamCheck::noise`]); the element passes if the error less the allowance is within
//! the tolerance. Then the one-sided slopes `(f(x+s) − f(x))/s` and `(f(x) − f(x−s))/s`
//! are compared at `s = h` and `s = h/100`. Central differences cannot see a kink at `x`
//! itself (they agree, at every step, on the average of the two slopes), but the gap
//! between the one-sided slopes can: for a smooth loss it shrinks with `s`, while at a
//! kink at `x` or within `h/200` of it (`relu` of exactly 0) it stays the jump of the
//! slope. Such an element is counted as *nonsmooth* and left out of the verdict, as
//! elements near a kink are: the gradient there is a convention (`relu'(0) = 0`) that
//! finite differences cannot confirm. Then the
//! differences at `2h` and `h/10` are computed; if they agree with each other the
//! Richardson extrapolation `(4·D(h) − D(2h)) / 3` decides (truncation error was the
//! problem); if they disagree, the loss is not smooth within `2h` of `x` (a `relu`,
//! `abs` or `max` kink), and the check is repeated with `h/1000`; an element whose
//! differences still disagree is counted as nonsmooth too (the report says how many).
//! A difference that the loss makes NaN or infinite within the step (the edge of a
//! `log` or `sqrt`) is tried at `h/1000` too, and the element fails if that is no better.
//!
//! A param with more than [`GradcheckOptions::max_elements`] elements is checked on
//! that many elements drawn at random (deterministically, without replacement); the
//! report says how many were checked. Over all params at most
//! [`GradcheckOptions::max_total_elements`] are checked: past that, the elements are drawn
//! from all params' together, so a model of many small params is checked in time linear
//! in its size, not quadratic (each element costs evaluations of the whole loss).

use std::fmt;

use crate::data::{try_random_point_with, Bound, RealSampling, SplitMix64};
use crate::ir::{Function, ResultRole};
use crate::tensor::{Tensor, TensorData};

/// The default tolerance on the relative error (see the module documentation).
pub const DEFAULT_TOLERANCE: f64 = 1e-5;

/// The relative step of the central difference.
const RELATIVE_STEP: f64 = 1e-5;

/// How the floor of the error measure scales with the rounding noise of a difference.
const NOISE_FLOOR_FACTOR: f64 = 1e7;

/// How many deviations of measured noise a difference is allowed (a normal deviate
/// exceeds 10 with probability 1e-23).
const NOISE_ALLOWANCE: f64 = 10.0;

/// How much of the gap between the one-sided slopes at step `h` must remain at `h/100`
/// for a kink (a smooth loss keeps 1/100 of it, a kink at the point all of it).
const KINK_GAP_RATIO: f64 = 0.5;

/// Settings of a gradient check.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradcheckOptions {
    /// The most elements checked per param (each costs two or more evaluations).
    pub max_elements: usize,
    /// The most elements checked over all params.
    pub max_total_elements: usize,
    /// Seed of the choice of elements in large params.
    pub seed: u64,
    /// Elements whose error exceeds this are examined a second time (for truncation
    /// error and kinks) before they are reported: use the tolerance of the verdict.
    pub tolerance: f64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            max_elements: 64,
            max_total_elements: 1024,
            seed: 0,
            tolerance: DEFAULT_TOLERANCE,
        }
    }
}

/// The check of one param.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamCheck {
    /// The param's name.
    pub name: String,
    /// Its argument index.
    pub arg: u32,
    /// Its shape.
    pub shape: Vec<usize>,
    /// The number of elements checked (all of them, or a sample).
    pub checked: usize,
    /// Elements left out because the loss is not smooth around them.
    pub nonsmooth: usize,
    /// Elements whose error exceeds the tolerance by no more than the measured rounding
    /// noise of their finite differences (they pass).
    pub within_noise: usize,
    /// The error of the worst element (see the module documentation): NaN if its
    /// gradient or finite difference is NaN, infinite if one of them is infinite. The
    /// worst element is the failing one with the largest error, or, if none fails at
    /// [`GradcheckOptions::tolerance`], the one with the largest error (NaN counts as
    /// the largest).
    pub worst_error: f64,
    /// How much of `worst_error` the measured rounding noise of the finite difference
    /// may explain, on the same scale (ten deviations of it; 0 where it was not
    /// measured): the element passes if `worst_error − noise` is within the tolerance.
    pub noise: f64,
    /// The worst absolute difference `|g − fd|` (infinite if one is NaN).
    pub worst_abs: f64,
    /// The position of the worst element (a multi-index into `shape`), if any was checked.
    pub worst_at: Option<Vec<usize>>,
    /// The derived gradient at that element.
    pub analytic: f64,
    /// The finite-difference estimate at that element.
    pub numeric: f64,
}

impl ParamCheck {
    /// The number of elements of the param.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True if the param has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True if the worst element's error, less its measured noise, is within
    /// `tolerance` (a NaN error fails).
    pub fn passed(&self, tolerance: f64) -> bool {
        passes(self.worst_error, self.noise, tolerance)
    }
}

/// The verdict on one element: its error, less the part measured noise explains, is
/// within the tolerance (NaN fails).
fn passes(error: f64, noise: f64, tolerance: f64) -> bool {
    error - noise <= tolerance
}

/// True if an element that `fails` with `error` is worse than one that `than_fails` with
/// `than`: failing first, then the larger error, NaN the largest.
fn worse((fails, error): (bool, f64), (than_fails, than): (bool, f64)) -> bool {
    let rank = |e: f64| if e.is_nan() { f64::INFINITY } else { e };
    (fails, rank(error)) > (than_fails, rank(than))
}

/// The result of a gradient check: one row per param.
#[derive(Clone, Debug, PartialEq)]
pub struct GradcheckReport {
    /// The loss at the point.
    pub loss: f64,
    /// One check per param, in declaration order.
    pub params: Vec<ParamCheck>,
    /// Params none of whose elements was drawn, the total budget
    /// ([`GradcheckOptions::max_total_elements`]) having gone to others.
    pub not_drawn: usize,
}

impl GradcheckReport {
    /// True if every param passed ([`ParamCheck::passed`]). Exact for the tolerance the
    /// check ran with ([`GradcheckOptions::tolerance`]), which chose the elements shown.
    pub fn passed(&self, tolerance: f64) -> bool {
        self.params.iter().all(|p| p.passed(tolerance))
    }

    /// True if elements were skipped as nonsmooth and none was compared: the check says
    /// nothing about the gradient at this point.
    pub fn inconclusive(&self) -> bool {
        self.params.iter().all(|p| p.checked == 0) && self.params.iter().any(|p| p.nonsmooth > 0)
    }

    /// The worst error over all params: NaN if any is NaN, 0 when there is nothing to
    /// check.
    pub fn worst_error(&self) -> f64 {
        self.params.iter().map(|p| p.worst_error).fold(0.0, |a, b| {
            if a.is_nan() || b.is_nan() {
                f64::NAN
            } else {
                a.max(b)
            }
        })
    }

    /// The param whose worst element decides the verdict at `tolerance`: the failing
    /// param with the largest error, or, if all pass, the one with the largest error;
    /// `None` if there are no params.
    pub fn worst_param(&self, tolerance: f64) -> Option<&ParamCheck> {
        self.params.iter().reduce(|worst, p| {
            let key = |p: &ParamCheck| (!p.passed(tolerance), p.worst_error);
            if worse(key(p), key(worst)) {
                p
            } else {
                worst
            }
        })
    }
}

impl fmt::Display for GradcheckReport {
    /// One line per param: name, elements checked, worst error, where, both values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name_width = self.params.iter().map(|p| p.name.len()).max().unwrap_or(0);
        let name_width = name_width.max("param".len());
        writeln!(f, "loss = {}", self.loss)?;
        writeln!(
            f,
            "{:<name_width$}  {:>15}  {:>10}  {:<10}  {:>23}  {:>23}",
            "param", "checked", "worst err", "at", "gradient", "finite diff."
        )?;
        for p in &self.params {
            let checked = format!("{}/{}", p.checked, p.len());
            let at = match &p.worst_at {
                Some(at) => format!("{at:?}"),
                None => "-".to_string(),
            };
            write!(
                f,
                "{:<name_width$}  {:>15}  {:>10.2e}  {:<10}  {:>23e}  {:>23e}",
                p.name, checked, p.worst_error, at, p.analytic, p.numeric
            )?;
            if p.noise > 0.0 {
                write!(f, "  (measured noise {:.2e})", p.noise)?;
            }
            if p.within_noise > 0 {
                write!(
                    f,
                    "  ({} within tolerance + measured noise)",
                    p.within_noise
                )?;
            }
            if p.nonsmooth > 0 {
                // A kink, or a bend sharper than the step resolves (`logsumexp` of values
                // near 1e13 bends within 1 of a tie, against a step of 1e8).
                let plural = if p.nonsmooth == 1 { "" } else { "s" };
                write!(
                    f,
                    "  ({} element{plural} skipped: not smooth at the step of the finite differences)",
                    p.nonsmooth
                )?;
            }
            writeln!(f)?;
        }
        if self.not_drawn > 0 {
            writeln!(
                f,
                "({} params had no element drawn: the check compares a sample of all the \
                 params' elements together)",
                self.not_drawn
            )?;
        }
        Ok(())
    }
}

fn nan_is_worst_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::INFINITY
    } else {
        a.max(b)
    }
}

/// Checks the gradient function against finite differences of the forward function at
/// `bound`, with the default options. `eval` evaluates a function at a point (the
/// interpreter, or compiled code).
pub fn gradcheck(
    forward: &Function,
    grad: &Function,
    bound: &Bound,
    eval: impl Fn(&Function, &Bound) -> Result<Vec<Tensor>, String>,
) -> Result<GradcheckReport, String> {
    gradcheck_with(forward, grad, bound, eval, GradcheckOptions::default())
}

/// [`gradcheck`] at a deterministic random point ([`try_random_point_with`]): signed values
/// first, and positive values if the loss is not finite there (a `log` or `sqrt` of a
/// param or input). Returns the point used with the report.
pub fn gradcheck_random(
    forward: &Function,
    grad: &Function,
    seed: u64,
    eval: impl Fn(&Function, &Bound) -> Result<Vec<Tensor>, String>,
    options: GradcheckOptions,
) -> Result<(Bound, GradcheckReport), String> {
    let point =
        |sampling| try_random_point_with(forward, seed, sampling).map_err(|e| e.to_string());
    let signed = point(RealSampling::Signed)?;
    if loss_at(forward, &signed, &eval)?.is_finite() {
        let report = gradcheck_with(forward, grad, &signed, &eval, options)?;
        return Ok((signed, report));
    }
    let positive = point(RealSampling::Positive)?;
    let report = gradcheck_with(forward, grad, &positive, &eval, options)?;
    Ok((positive, report))
}

/// [`gradcheck`] with explicit options.
pub fn gradcheck_with(
    forward: &Function,
    grad: &Function,
    bound: &Bound,
    eval: impl Fn(&Function, &Bound) -> Result<Vec<Tensor>, String>,
    options: GradcheckOptions,
) -> Result<GradcheckReport, String> {
    let loss = loss_at(forward, bound, &eval)?;
    if !loss.is_finite() {
        return Err(format!(
            "the loss is {loss} at this point: finite differences need a finite loss"
        ));
    }
    let grad_values = eval(grad, bound)?;
    let mut rng = SplitMix64::new(options.seed);
    let mut work = bound.clone();
    let mut params = Vec::new();
    let gradient_of: std::collections::HashMap<u32, &Tensor> = grad
        .results
        .iter()
        .zip(&grad_values)
        .filter_map(|(r, t)| match r.role {
            ResultRole::Grad(arg) => Some((arg, t)),
            _ => None,
        })
        .collect();
    let sizes: Vec<usize> = forward
        .params()
        .map(|(arg, _)| bound.args.get(arg as usize).map_or(0, Tensor::len))
        .collect();
    let quotas = element_quotas(&sizes, &options, &mut rng);
    let not_drawn = sizes
        .iter()
        .zip(&quotas)
        .filter(|(&n, &q)| n > 0 && q == 0)
        .count();
    for ((arg, decl), &quota) in forward.params().zip(&quotas) {
        let gradient = *gradient_of
            .get(&arg)
            .ok_or_else(|| format!("the gradient function has no gradient for `{}`", decl.name))?;
        let point = &bound.args[arg as usize];
        if gradient.shape != point.shape {
            return Err(format!(
                "the gradient for `{}` has shape {:?}, the param {:?}",
                decl.name, gradient.shape, point.shape
            ));
        }
        let (Some(g), Some(x)) = (gradient.as_real(), point.as_real()) else {
            return Err(format!("`{}` or its gradient is not real", decl.name));
        };
        let mut row = ParamCheck {
            name: decl.name.clone(),
            arg,
            shape: point.shape.clone(),
            checked: 0,
            nonsmooth: 0,
            within_noise: 0,
            worst_error: 0.0,
            noise: 0.0,
            worst_abs: 0.0,
            worst_at: None,
            analytic: 0.0,
            numeric: 0.0,
        };
        for flat in sample_elements(x.len(), quota, &mut rng) {
            let mut loss_with = |value: f64| -> Result<f64, String> {
                set_real(&mut work.args[arg as usize], flat, value);
                loss_at(forward, &work, &eval)
            };
            let outcome = check_element(x[flat], g[flat], options.tolerance, &mut loss_with);
            set_real(&mut work.args[arg as usize], flat, x[flat]);
            let Some(estimate) = outcome? else {
                row.nonsmooth += 1;
                continue;
            };
            row.checked += 1;
            let abs = (g[flat] - estimate.numeric).abs();
            row.worst_abs = nan_is_worst_max(row.worst_abs, abs);
            let fails = !estimate.passes(options.tolerance);
            if !fails && estimate.error > options.tolerance {
                row.within_noise += 1;
            }
            let current = (!row.passed(options.tolerance), row.worst_error);
            if row.worst_at.is_none() || worse((fails, estimate.error), current) {
                row.worst_error = estimate.error;
                row.noise = estimate.noise;
                row.worst_at = Some(multi_index(&row.shape, flat));
                row.analytic = g[flat];
                row.numeric = estimate.numeric;
            }
        }
        params.push(row);
    }
    Ok(GradcheckReport {
        loss,
        params,
        not_drawn,
    })
}

/// The loss: the forward function's `Loss` result, as a number.
fn loss_at(
    forward: &Function,
    bound: &Bound,
    eval: &impl Fn(&Function, &Bound) -> Result<Vec<Tensor>, String>,
) -> Result<f64, String> {
    let values = eval(forward, bound)?;
    forward
        .results
        .iter()
        .zip(&values)
        .find(|(r, _)| r.role == ResultRole::Loss)
        .and_then(|(_, t)| t.as_real().and_then(|v| v.first().copied()))
        .ok_or_else(|| "the forward function returns no real loss".to_string())
}

/// A finite-difference estimate of one element, its error against the gradient and
/// how much of that error measured noise may explain.
#[derive(Clone, Copy, Debug)]
struct Estimate {
    numeric: f64,
    error: f64,
    noise: f64,
}

impl Estimate {
    /// `numeric` against `g`: `|g − fd| / max(|g|, |fd|, floor)`, and the noise
    /// allowance `allowance / max(...)` on the same scale. Non-finite values fail
    /// unless they are equal: a NaN on either side gives a NaN error, an infinity an
    /// infinite one.
    fn new(g: f64, numeric: f64, floor: f64, allowance: f64) -> Estimate {
        let scale = g.abs().max(numeric.abs()).max(floor).max(f64::MIN_POSITIVE);
        let error = if g == numeric {
            0.0
        } else if g.is_nan() || numeric.is_nan() {
            f64::NAN
        } else if g.is_infinite() || numeric.is_infinite() {
            f64::INFINITY
        } else {
            (g - numeric).abs() / scale
        };
        let noise = if error.is_finite() && allowance.is_finite() {
            allowance / scale
        } else {
            0.0
        };
        Estimate {
            numeric,
            error,
            noise,
        }
    }

    fn passes(&self, tolerance: f64) -> bool {
        passes(self.error, self.noise, tolerance)
    }

    /// The error beyond the noise, which the verdict compares with the tolerance.
    fn excess(&self) -> f64 {
        self.error - self.noise
    }
}

/// A central difference at step `h`: the estimate and its rounding-noise floor.
fn central_difference(
    x: f64,
    h: f64,
    loss_with: &mut impl FnMut(f64) -> Result<f64, String>,
) -> Result<(f64, f64), String> {
    let (up, down) = (x + h, x - h);
    let (f_up, f_down) = (loss_with(up)?, loss_with(down)?);
    let step = up - down;
    let estimate = (f_up - f_down) / step;
    let mut floor = NOISE_FLOOR_FACTOR * f64::EPSILON * f_up.abs().max(f_down.abs()) / step * 2.0;
    if f_up == f_down {
        // The loss did not change at all, so the difference resolves nothing finer than
        // a rounding of the loss's terms (of size 1, say): a gradient that is rounding
        // noise around zero (a loss that is identically 0) is no failure, while one
        // above about 1e-10 still is.
        floor = floor.max(f64::EPSILON * f_up.abs().max(1.0) / step * 2.0);
    }
    Ok((estimate, floor))
}

/// The rounding noise of the loss near `x`, measured: the spread (median absolute
/// deviation) of the third differences of `f` at eleven points `h` apart, scaled to one
/// evaluation's noise. Third differences cancel the smooth part (up to `f'''·h³`, which
/// the deviation from their median removes too), so what is left is rounding; a kink
/// disturbs at most three of the eight, which the median ignores. NaN if the loss is
/// not finite at one of the points.
fn rounding_noise(
    x: f64,
    h: f64,
    loss_with: &mut impl FnMut(f64) -> Result<f64, String>,
) -> Result<f64, String> {
    let f = (-5..=5)
        .map(|j| loss_with(x + f64::from(j) * h))
        .collect::<Result<Vec<f64>, String>>()?;
    let mut third: Vec<f64> = f
        .windows(4)
        .map(|w| w[3] - 3.0 * w[2] + 3.0 * w[1] - w[0])
        .collect();
    let center = median(&mut third);
    let mut deviation: Vec<f64> = third.iter().map(|d| (d - center).abs()).collect();
    // For independent noise of deviation σ per evaluation, a third difference has
    // deviation √20·σ, and the median absolute deviation of a normal is 0.674 of its
    // deviation: 3.0·σ.
    Ok(median(&mut deviation) / 3.0)
}

/// How far a central difference at step `h` may be off from evaluations that carry
/// `noise` each: [`NOISE_ALLOWANCE`] times the deviation of `(f(x+h) − f(x−h))/2h`.
/// Nothing is forgiven where the noise could not be measured.
fn noise_allowance(noise: f64, h: f64) -> f64 {
    if noise.is_finite() {
        NOISE_ALLOWANCE * noise * std::f64::consts::SQRT_2 / (2.0 * h)
    } else {
        0.0
    }
}

/// The median (NaN if any value is NaN).
fn median(values: &mut [f64]) -> f64 {
    if values.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    (values[(n - 1) / 2] + values[n / 2]) / 2.0
}

/// True if two difference estimates agree well enough to come from a smooth function
/// (up to `allowance` of measured noise between them).
fn consistent(a: f64, b: f64, floor: f64, allowance: f64) -> bool {
    (a - b).abs() <= 1e-3 * a.abs().max(b.abs()) + 1e-3 * floor + allowance
}

/// True if the loss has a kink at `x`, or so near it that every central difference
/// straddles it: the gap between the one-sided slopes `(f(x+s) − f(x))/s` and
/// `(f(x) − f(x−s))/s` is as wide at `s = h/100` as at `s = h` (for a smooth loss it
/// is `s·f''`, a hundred times narrower), and wider than rounding noise makes it.
fn kink_at(
    x: f64,
    h: f64,
    noise: f64,
    loss_with: &mut impl FnMut(f64) -> Result<f64, String>,
) -> Result<bool, String> {
    let f_x = loss_with(x)?;
    let mut gap = |s: f64| -> Result<(f64, f64), String> {
        let (up, down) = (x + s, x - s);
        let (f_up, f_down) = (loss_with(up)?, loss_with(down)?);
        let gap = (f_up - f_x) / (up - x) - (f_x - f_down) / (x - down);
        // The deviation of `(f_up − 2·f_x + f_down)/s` is √6·σ/s; where σ measures 0
        // the rounding of the three values still counts, on the scale of `consistent`.
        let measured = NOISE_ALLOWANCE * 6f64.sqrt() * noise / s;
        let measured = if measured.is_finite() { measured } else { 0.0 };
        let rounding =
            1e-3 * NOISE_FLOOR_FACTOR * f64::EPSILON * f_x.abs().max(f_up.abs()).max(f_down.abs())
                / s;
        Ok((gap, measured + rounding))
    };
    let (wide, _) = gap(h)?;
    let (narrow, threshold) = gap(h / 100.0)?;
    Ok(narrow.abs() > threshold && narrow.abs() >= KINK_GAP_RATIO * wide.abs())
}

/// Checks one element (see the module documentation); `None` if the loss is not
/// smooth around it.
fn check_element(
    x: f64,
    g: f64,
    tolerance: f64,
    loss_with: &mut impl FnMut(f64) -> Result<f64, String>,
) -> Result<Option<Estimate>, String> {
    let h = RELATIVE_STEP * x.abs().max(1.0);
    let (d_h, floor) = central_difference(x, h, loss_with)?;
    let first = Estimate::new(g, d_h, floor, 0.0);
    // A NaN or infinite gradient is wrong whatever the loss does near `x`: neither
    // noise nor a kink excuses it.
    if first.passes(tolerance) || !g.is_finite() {
        return Ok(Some(first));
    }
    // A second look: rounding noise larger than `ε·|f|` (the loss is a small difference
    // of large terms), a kink at or near `x`, truncation error, or a wrong gradient.
    let noise = rounding_noise(x, h, loss_with)?;
    let allowance = |step: f64| noise_allowance(noise, step);
    let primary = Estimate::new(g, d_h, floor, allowance(h));
    if primary.passes(tolerance) {
        return Ok(Some(primary));
    }
    if kink_at(x, h, noise, loss_with)? {
        return Ok(None);
    }
    let (d_2h, floor_2h) = central_difference(x, 2.0 * h, loss_with)?;
    let (d_small, floor_small) = central_difference(x, h / 10.0, loss_with)?;
    if consistent(d_h, d_2h, floor, allowance(h) + allowance(2.0 * h))
        && consistent(
            d_h,
            d_small,
            floor_small,
            allowance(h) + allowance(h / 10.0),
        )
    {
        let extrapolated = richardson(
            g,
            (d_h, floor, allowance(h)),
            (d_2h, floor_2h, allowance(2.0 * h)),
        );
        return Ok(Some(better(primary, extrapolated)));
    }
    let tiny = h / 1000.0;
    let (d_tiny, floor_tiny) = central_difference(x, tiny, loss_with)?;
    let (d_tiny2, floor_tiny2) = central_difference(x, 2.0 * tiny, loss_with)?;
    if consistent(
        d_tiny,
        d_tiny2,
        floor_tiny,
        allowance(tiny) + allowance(2.0 * tiny),
    ) {
        // Truncation error can still matter at this step where the loss is steep (a
        // `sqrt` near 0), so it is extrapolated too.
        let plain = Estimate::new(g, d_tiny, floor_tiny, allowance(tiny));
        let extrapolated = richardson(
            g,
            (d_tiny, floor_tiny, allowance(tiny)),
            (d_tiny2, floor_tiny2, allowance(2.0 * tiny)),
        );
        return Ok(Some(better(plain, extrapolated)));
    }
    if d_tiny.is_finite() && d_tiny2.is_finite() {
        return Ok(None);
    }
    // The loss is NaN or infinite within the step (the edge of a `log` or `sqrt`): the
    // difference can't be trusted, and that is reported, not skipped.
    Ok(Some(primary))
}

/// The Richardson extrapolation `(4·D(s) − D(2s)) / 3` of central differences at steps
/// `s` and `2s`, each given with its floor and noise allowance, against `g`.
fn richardson(
    g: f64,
    (d, floor, allowance): (f64, f64, f64),
    (d2, floor2, allowance2): (f64, f64, f64),
) -> Estimate {
    // Its noise: 4/3 of D(s)'s plus 1/3 of D(2s)'s.
    let noise = (4.0 * allowance + allowance2) / 3.0;
    Estimate::new(g, (4.0 * d - d2) / 3.0, floor.max(floor2), noise)
}

/// Of two estimates, the one with less error beyond its noise (the first on a tie).
fn better(a: Estimate, b: Estimate) -> Estimate {
    if b.excess() < a.excess() {
        b
    } else {
        a
    }
}

/// How many elements of each param (of `sizes` elements) to check: up to
/// `max_elements` each, and if that is more than `max_total_elements` in all, that many
/// drawn at random from all of them together (without touching `rng` otherwise, so the
/// elements drawn within a param do not change with the budget unless it applies).
fn element_quotas(sizes: &[usize], options: &GradcheckOptions, rng: &mut SplitMix64) -> Vec<usize> {
    let each: Vec<usize> = sizes.iter().map(|&n| n.min(options.max_elements)).collect();
    let total: usize = each.iter().sum();
    if total <= options.max_total_elements {
        return each;
    }
    // Slot `s` of the concatenated quotas belongs to the param whose range holds it.
    let mut quotas = vec![0; sizes.len()];
    let mut param = 0;
    let mut end = each.first().copied().unwrap_or(0);
    for slot in sample_elements(total, options.max_total_elements, rng) {
        while slot >= end {
            param += 1;
            end += each[param];
        }
        quotas[param] += 1;
    }
    quotas
}

/// The flat indices to check: all of `0..n`, or `max` of them drawn at random without
/// replacement, in increasing order.
fn sample_elements(n: usize, max: usize, rng: &mut SplitMix64) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    let mut all: Vec<usize> = (0..n).collect();
    for k in 0..max {
        let j = k + rng.below((n - k) as u64) as usize;
        all.swap(k, j);
    }
    let mut chosen = all[..max].to_vec();
    chosen.sort_unstable();
    chosen
}

fn set_real(t: &mut Tensor, flat: usize, value: f64) {
    if let TensorData::Real(v) = &mut t.data {
        v[flat] = value;
    }
}

/// The multi-index of a flat row-major index.
fn multi_index(shape: &[usize], flat: usize) -> Vec<usize> {
    let mut rest = flat;
    let mut index = vec![0; shape.len()];
    for (k, &size) in shape.iter().enumerate().rev() {
        index[k] = rest % size.max(1);
        rest /= size.max(1);
    }
    index
}
