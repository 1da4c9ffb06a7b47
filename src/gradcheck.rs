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
//! divided by a tiny number. Pure rounding noise (a few `ε·|f|/h`) then scores about
//! `1e-7`, ten times under a tolerance of `1e-6` and a hundred times under the default
//! [`DEFAULT_TOLERANCE`] `= 1e-5`, while a wrong gradient scores far above either (a
//! sign error scores 2, a missing factor 2 scores 0.5, an error of 1% of a gradient
//! element of size `|f|` scores 1e-2). Well-conditioned smooth losses typically score
//! 1e-9 to 1e-7.
//!
//! When an element fails that test, it is examined again before being reported. First
//! the rounding noise of `f` near `x` is measured (the spread of third differences at
//! eleven points `h` apart; see `rounding_noise`): where the loss is a small difference
//! of large terms (a variance as `E[x²] − E[x]²`) it is far above `ε·|f|`, and ten of its
//! deviations are then forgiven in every difference below. Then the
//! differences at `2h` and `h/10` are computed; if they agree with each other the
//! Richardson extrapolation `(4·D(h) − D(2h)) / 3` decides (truncation error was the
//! problem); if they disagree, the loss is not smooth within `2h` of `x` (a `relu`,
//! `abs` or `max` kink), and the check is repeated with `h/1000`; an element whose
//! differences still disagree is counted as *nonsmooth* and left out of the verdict
//! (the report says how many). At an exact kink (`relu` of exactly 0) the
//! differences agree on the average slope while the gradient follows the spec's
//! convention, and the element fails: that is reported, not hidden.
//!
//! A param with more than [`GradcheckOptions::max_elements`] elements is checked on
//! that many elements drawn at random (deterministically, without replacement); the
//! report says how many were checked.

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

/// Settings of a gradient check.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradcheckOptions {
    /// The most elements checked per param (each costs two or more evaluations).
    pub max_elements: usize,
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
    /// The worst error (see the module documentation); NaN counts as infinite.
    pub worst_error: f64,
    /// The worst absolute difference `|g − fd|`.
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
}

/// The result of a gradient check: one row per param.
#[derive(Clone, Debug, PartialEq)]
pub struct GradcheckReport {
    /// The loss at the point.
    pub loss: f64,
    /// One check per param, in declaration order.
    pub params: Vec<ParamCheck>,
}

impl GradcheckReport {
    /// True if every param's worst error is within `tolerance` (NaN fails).
    pub fn passed(&self, tolerance: f64) -> bool {
        self.params.iter().all(|p| p.worst_error <= tolerance)
    }

    /// The worst error over all params (0 when there is nothing to check).
    pub fn worst_error(&self) -> f64 {
        self.params
            .iter()
            .map(|p| p.worst_error)
            .fold(0.0, nan_is_worst_max)
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
            if p.nonsmooth > 0 {
                write!(f, "  ({} nonsmooth elements skipped)", p.nonsmooth)?;
            }
            writeln!(f)?;
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
    for (arg, decl) in forward.params() {
        let gradient = grad
            .results
            .iter()
            .zip(&grad_values)
            .find(|(r, _)| r.role == ResultRole::Grad(arg))
            .map(|(_, t)| t)
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
            worst_error: 0.0,
            worst_abs: 0.0,
            worst_at: None,
            analytic: 0.0,
            numeric: 0.0,
        };
        for flat in sample_elements(x.len(), options.max_elements, &mut rng) {
            let mut loss_with = |value: f64| -> Result<f64, String> {
                set_real(&mut work.args[arg as usize], flat, value);
                loss_at(forward, &work, &eval)
            };
            let outcome = check_element(x[flat], g[flat], options.tolerance, &mut loss_with);
            set_real(&mut work.args[arg as usize], flat, x[flat]);
            let Some(Estimate { numeric, error }) = outcome? else {
                row.nonsmooth += 1;
                continue;
            };
            row.checked += 1;
            let abs = (g[flat] - numeric).abs();
            row.worst_abs = nan_is_worst_max(row.worst_abs, abs);
            let error = if error.is_nan() { f64::INFINITY } else { error };
            if row.worst_at.is_none() || error > row.worst_error {
                row.worst_error = error;
                row.worst_at = Some(multi_index(&row.shape, flat));
                row.analytic = g[flat];
                row.numeric = numeric;
            }
        }
        params.push(row);
    }
    Ok(GradcheckReport { loss, params })
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

/// A finite-difference estimate of one element and its error against the gradient.
struct Estimate {
    numeric: f64,
    error: f64,
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
    let floor = NOISE_FLOOR_FACTOR * f64::EPSILON * f_up.abs().max(f_down.abs()) / step * 2.0;
    Ok((estimate, floor))
}

/// The rounding noise of the loss near `x`, measured: the spread (median absolute
/// deviation) of the third differences of `f` at eleven points `h` apart, scaled to one
/// evaluation's noise. Third differences cancel the smooth part (up to `f'''·h³`, which
/// the deviation from their median removes too), so what is left is rounding; a kink
/// disturbs at most three of the eight, which the median ignores.
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
fn noise_allowance(noise: f64, h: f64) -> f64 {
    NOISE_ALLOWANCE * noise * std::f64::consts::SQRT_2 / (2.0 * h)
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

/// `(|g − fd| − allowance)⁺ / max(|g|, |fd|, floor)`, and 0 when both are 0: the
/// allowance is the part of the difference that the measured noise of `fd` explains.
fn element_error(g: f64, numeric: f64, floor: f64, allowance: f64) -> f64 {
    let scale = g.abs().max(numeric.abs()).max(floor).max(f64::MIN_POSITIVE);
    ((g - numeric).abs() - allowance).max(0.0) / scale
}

/// True if two difference estimates agree well enough to come from a smooth function
/// (up to `allowance` of measured noise between them).
fn consistent(a: f64, b: f64, floor: f64, allowance: f64) -> bool {
    (a - b).abs() <= 1e-3 * a.abs().max(b.abs()) + 1e-3 * floor + allowance
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
    let error = element_error(g, d_h, floor, 0.0);
    if error <= tolerance {
        return Ok(Some(Estimate {
            numeric: d_h,
            error,
        }));
    }
    // A second look: rounding noise larger than `ε·|f|` (the loss is a small difference
    // of large terms), truncation error, a kink nearby, or a wrong gradient.
    let noise = rounding_noise(x, h, loss_with)?;
    let allowance = |step: f64| noise_allowance(noise, step);
    let error = element_error(g, d_h, floor, allowance(h));
    if error <= tolerance {
        return Ok(Some(Estimate {
            numeric: d_h,
            error,
        }));
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
        let richardson = (4.0 * d_h - d_2h) / 3.0;
        // Its noise: 4/3 of d_h's plus 1/3 of d_2h's.
        let richardson_allowance = (4.0 * allowance(h) + allowance(2.0 * h)) / 3.0;
        let richardson_error =
            element_error(g, richardson, floor.max(floor_2h), richardson_allowance);
        return Ok(Some(if richardson_error < error {
            Estimate {
                numeric: richardson,
                error: richardson_error,
            }
        } else {
            Estimate {
                numeric: d_h,
                error,
            }
        }));
    }
    let tiny = h / 1000.0;
    let (d_tiny, floor_tiny) = central_difference(x, tiny, loss_with)?;
    let (d_tiny2, _) = central_difference(x, 2.0 * tiny, loss_with)?;
    if consistent(
        d_tiny,
        d_tiny2,
        floor_tiny,
        allowance(tiny) + allowance(2.0 * tiny),
    ) {
        return Ok(Some(Estimate {
            numeric: d_tiny,
            error: element_error(g, d_tiny, floor_tiny, allowance(tiny)),
        }));
    }
    Ok(None)
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
