//! Support for the property tests over generated programs.
//!
//! In: a [`generator::Program`] (source text and data). Out: `Ok` or an error message
//! that prints the program, for each property of the pipeline: it compiles (with the
//! right warnings), every stage verifies, nothing swells, simplification preserves
//! values, the gradient matches finite differences, the printed forms are deterministic.
//! Every check that evaluates takes the evaluator as a closure ([`Eval`]), so the same
//! checks run on the interpreter and on compiled code, and [`check_agree`] compares
//! two evaluators.

#![allow(dead_code)]

pub mod generator;

use gradc::data::{bind_json, Bound};
use gradc::driver::{compile, op_count, Compiled};
use gradc::gradcheck::{gradcheck_with, GradcheckOptions, DEFAULT_TOLERANCE};
use gradc::ir::{self, Function};
use gradc::{Diagnostic, Severity, Tensor, TensorData};

use generator::Program;

/// An evaluator: runs a function at a bound point (the interpreter, or compiled code).
pub trait Eval: Fn(&Function, &Bound) -> Result<Vec<Tensor>, String> {}
impl<F: Fn(&Function, &Bound) -> Result<Vec<Tensor>, String>> Eval for F {}

/// The reference evaluator.
pub fn interpret(func: &Function, bound: &Bound) -> Result<Vec<Tensor>, String> {
    gradc::interp::eval(func, &bound.dims, &bound.args)
}

/// The no-swell bound: simplified gradient ops ≤ `SWELL_FACTOR` × forward ops +
/// `SWELL_SLACK` + `KINK_VJP_ALLOWANCE` per kink op (see [`swell_budget`]).
pub const SWELL_FACTOR: usize = 4;

/// The constant part of the no-swell bound. Without it the bound fails on small
/// programs, not by swell but because one op has an expensive VJP: the gradient of a
/// `max` reduction alone is about 10 ops (compare, select, count the ties, divide,
/// broadcasts), and `softmax` and `max` in a 12-op forward give 49 gradient ops.
pub const SWELL_SLACK: usize = 10;

/// The extra budget per kink op of the forward (`maximum`, `minimum`, `abs`, `relu`,
/// `max`, `min`): their VJPs split the gradient at ties (spec §3) and cost 5 to 10
/// ops each (`maximum` is 2 `gt`, 1 `eq`, 3 `select` and a halving), so programs
/// made mostly of them exceed 4× without any swell (measured: 112 gradient ops for 24
/// forward ops, 9 of them kinks).
pub const KINK_VJP_ALLOWANCE: usize = 4;

/// The most gradient ops a forward function may give without counting as a swell.
pub fn swell_budget(forward: &Function) -> usize {
    use gradc::ir::{BinaryOp, Op, ReduceOp, UnaryOp};
    let kinks = forward
        .insts
        .iter()
        .filter(|inst| {
            matches!(
                inst.op,
                Op::Binary(BinaryOp::Max | BinaryOp::Min, ..)
                    | Op::Unary(UnaryOp::Abs | UnaryOp::Relu, _)
                    | Op::Reduce(ReduceOp::Max | ReduceOp::Min, ..)
            )
        })
        .count();
    SWELL_FACTOR * op_count(forward) + SWELL_SLACK + KINK_VJP_ALLOWANCE * kinks
}

/// The relative tolerance for "the same value" across simplification or evaluators.
pub const SAME_VALUE_TOLERANCE: f64 = 1e-9;

/// A gradient element this small is rounding noise: accepted whatever finite
/// differences say. (`gradcheck`'s noise floor scales with the loss, so a loss that is
/// identically 0, e.g. `max(logsumexp(log_softmax(x, 1), 1))`, fails it with a
/// gradient of 7e-20 against a finite difference of exactly 0.)
pub const NEGLIGIBLE_GRADIENT: f64 = 1e-12;

/// An error message about `program`: what went wrong, then the program and its data.
pub fn failure(program: &Program, what: impl AsRef<str>) -> String {
    format!("{}\n{program:?}", what.as_ref())
}

fn render(diagnostics: &[Diagnostic], source: &str) -> String {
    gradc::diag::render("generated.loss", source, diagnostics)
}

/// Compiles the program; an error (with the diagnostics) if it does not compile.
pub fn compile_program(program: &Program) -> Result<Compiled, String> {
    compile(&program.source).map_err(|diagnostics| {
        failure(
            program,
            format!(
                "a generated program does not compile:\n{}",
                render(&diagnostics, &program.source)
            ),
        )
    })
}

/// The warnings are exactly one per unused param, naming it.
pub fn check_warnings(program: &Program, compiled: &Compiled) -> Result<(), String> {
    let warnings: Vec<&Diagnostic> = compiled
        .warnings
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .collect();
    let expected: Vec<String> = program
        .unused_params
        .iter()
        .map(|name| format!("param `{name}` does not affect the loss"))
        .collect();
    let all_expected_found = expected
        .iter()
        .all(|e| warnings.iter().any(|w| w.message.contains(e.as_str())));
    if !all_expected_found || warnings.len() != expected.len() {
        return Err(failure(
            program,
            format!(
                "expected warnings about exactly {:?}, got:\n{}",
                program.unused_params,
                render(&compiled.warnings, &program.source)
            ),
        ));
    }
    Ok(())
}

/// The forward, raw gradient and simplified gradient IR (and the simplified forward)
/// all pass the verifier.
pub fn check_verifies(program: &Program, compiled: &Compiled) -> Result<(), String> {
    let stages = [
        ("forward_raw", &compiled.forward_raw),
        ("forward", &compiled.forward),
        ("grad_raw", &compiled.grad_raw),
        ("grad", &compiled.grad),
    ];
    for (stage, func) in stages {
        if let Err(errors) = ir::verify(func) {
            return Err(failure(
                program,
                format!(
                    "the {stage} IR does not verify:\n{}\n{}",
                    errors.join("\n"),
                    ir::print_function(func)
                ),
            ));
        }
    }
    Ok(())
}

/// The simplified gradient stays within [`swell_budget`].
pub fn check_no_swell(program: &Program, compiled: &Compiled) -> Result<(), String> {
    let (forward, grad) = (op_count(&compiled.forward), op_count(&compiled.grad));
    let budget = swell_budget(&compiled.forward);
    if grad > budget {
        return Err(failure(
            program,
            format!(
                "the gradient swells: {grad} ops (budget {budget}) for a forward of {forward} ops\n{}",
                ir::print_function(&compiled.grad)
            ),
        ));
    }
    Ok(())
}

/// Binds the program's data to the compiled forward function.
pub fn bind(program: &Program, compiled: &Compiled) -> Result<Bound, String> {
    bind_json(&compiled.forward, &program.data)
        .map_err(|e| failure(program, format!("the generated data does not bind: {e}")))
}

/// True if `a` and `b` are the same value up to rounding: relative to their size and
/// to `scale` (the largest magnitude in the tensor, so cancellation is not penalised).
fn same_value(a: f64, b: f64, scale: f64) -> bool {
    same_value_within(a, b, scale, SAME_VALUE_TOLERANCE)
}

/// Compiled code against the interpreter: the spec's 1e-12, relative to the value and
/// (for cancellation) to the tensor's largest magnitude.
pub const AGREE_TOLERANCE: f64 = 1e-12;

fn same_value_within(a: f64, b: f64, scale: f64, tolerance: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    (a - b).abs() <= tolerance * (a.abs().max(b.abs()) + 1e-3 * scale.max(1.0))
}

/// Every result of `func` agrees between two evaluations (`values` vs `others`).
fn compare_results(
    func: &Function,
    values: &[Tensor],
    others: &[Tensor],
    what: &str,
) -> Result<(), String> {
    compare_results_within(func, values, others, what, SAME_VALUE_TOLERANCE)
}

fn compare_results_within(
    func: &Function,
    values: &[Tensor],
    others: &[Tensor],
    what: &str,
    tolerance: f64,
) -> Result<(), String> {
    if values.len() != others.len() {
        return Err(format!(
            "{what}: {} results vs {}",
            values.len(),
            others.len()
        ));
    }
    for ((result, a), b) in func.results.iter().zip(values).zip(others) {
        if a.shape != b.shape {
            return Err(format!(
                "{what}: result `{}` has shape {:?} vs {:?}",
                result.name, a.shape, b.shape
            ));
        }
        let (TensorData::Real(x), TensorData::Real(y)) = (&a.data, &b.data) else {
            return Err(format!("{what}: result `{}` is not real", result.name));
        };
        let scale = x
            .iter()
            .chain(y)
            .filter(|v| v.is_finite())
            .fold(0.0f64, |m, v| m.max(v.abs()));
        for (k, (&u, &v)) in x.iter().zip(y).enumerate() {
            if !same_value_within(u, v, scale, tolerance) {
                return Err(format!(
                    "{what}: result `{}` element {k}: {u:e} vs {v:e} (shape {:?})",
                    result.name, a.shape
                ));
            }
        }
    }
    Ok(())
}

/// Simplification preserves values: `forward_raw` and `forward` agree (loss and
/// outputs), and `grad_raw` and `grad` agree (loss and gradients).
pub fn check_simplify_preserves_values(
    program: &Program,
    compiled: &Compiled,
    bound: &Bound,
    eval: impl Eval,
) -> Result<(), String> {
    let pairs = [
        ("forward", &compiled.forward_raw, &compiled.forward),
        ("grad", &compiled.grad_raw, &compiled.grad),
    ];
    for (what, raw, simplified) in pairs {
        let run = |func: &Function| {
            eval(func, bound)
                .map_err(|e| failure(program, format!("{what}: evaluation failed: {e}")))
        };
        let (before, after) = (run(raw)?, run(simplified)?);
        compare_results(
            simplified,
            &before,
            &after,
            &format!("{what}: raw vs simplified"),
        )
        .map_err(|e| {
            failure(
                program,
                format!(
                    "{e}\n--- raw ---\n{}--- simplified ---\n{}",
                    ir::print_function(raw),
                    ir::print_function(simplified)
                ),
            )
        })?;
    }
    Ok(())
}

/// What a gradient check found.
#[derive(Clone, Debug, PartialEq)]
pub enum GradOutcome {
    /// Checked: the worst error over all params.
    Checked { worst_error: f64 },
    /// Not checked: the loss is not finite at the point.
    Skipped { loss: f64 },
}

/// The simplified gradient matches central finite differences of the simplified
/// forward at the program's data, within the default tolerance.
pub fn check_gradients(
    program: &Program,
    compiled: &Compiled,
    bound: &Bound,
    eval: impl Eval,
) -> Result<GradOutcome, String> {
    let values = eval(&compiled.forward, bound)
        .map_err(|e| failure(program, format!("forward evaluation failed: {e}")))?;
    let loss = values[0].as_real().map_or(f64::NAN, |v| v[0]);
    if !loss.is_finite() {
        return Ok(GradOutcome::Skipped { loss });
    }
    let report = gradcheck_with(
        &compiled.forward,
        &compiled.grad,
        bound,
        &eval,
        GradcheckOptions::default(),
    )
    .map_err(|e| failure(program, format!("gradcheck failed to run: {e}")))?;
    let mut confirmed = Vec::new();
    for param in &report.params {
        if param.passed(DEFAULT_TOLERANCE) || param.worst_abs <= NEGLIGIBLE_GRADIENT {
            continue;
        }
        let second = second_opinion(compiled, bound, param.arg, &eval)
            .map_err(|e| failure(program, format!("second opinion failed to run: {e}")))?;
        if second > DEFAULT_TOLERANCE {
            confirmed.push(format!(
                "`{}`: worst error {second:.3e} with a wide Richardson step",
                param.name
            ));
        }
    }
    if !confirmed.is_empty() {
        return Err(failure(
            program,
            format!(
                "the gradient does not match finite differences:\n{report}{}\n--- grad IR ---\n{}",
                confirmed.join("\n"),
                ir::print_function(&compiled.grad)
            ),
        ));
    }
    Ok(GradOutcome::Checked {
        worst_error: report.worst_error(),
    })
}

/// The relative steps of [`second_opinion`]: `gradcheck`'s own, and wide ones at
/// which rounding noise matters a hundred to a thousand times less.
const SECOND_OPINION_STEPS: [f64; 3] = [1e-5, 1e-3, 1e-2];

/// Re-checks every element of the param at argument `arg` and returns the worst error
/// (`gradcheck`'s measure), each element at the best of a few steps, with Richardson
/// extrapolation `(4·D(h) − D(2h)) / 3`, and with a noise floor that assumes the loss
/// has absolute rounding noise of at least `ε`, not `ε·|loss|`.
///
/// Why: `gradcheck`'s floor assumes the loss is computed to relative precision `ε`;
/// a small loss can carry the absolute noise of larger intermediates. The generator
/// keeps intermediates of magnitude about 1 and up to `BIG`, and
/// `log(1 + square(c))` with `c ≈ 9e-6` is a loss of `8e-11` known only to `1e-16`:
/// `gradcheck`'s differences are then noise, and it reports a 10% error on a gradient
/// that is right to 12 digits (checked in 50-digit arithmetic). A wrong gradient
/// disagrees at every step.
fn second_opinion(
    compiled: &Compiled,
    bound: &Bound,
    arg: u32,
    eval: &impl Eval,
) -> Result<f64, String> {
    let k = arg as usize;
    let grad_values = eval(&compiled.grad, bound)?;
    let gradient = compiled
        .grad
        .results
        .iter()
        .zip(&grad_values)
        .find(|(r, _)| r.role == ir::ResultRole::Grad(arg))
        .and_then(|(_, t)| t.as_real())
        .ok_or("no gradient for the param")?
        .to_vec();
    let loss_at = |point: &Bound| -> Result<f64, String> {
        let values = eval(&compiled.forward, point)?;
        Ok(values[0].as_real().map_or(f64::NAN, |v| v[0]))
    };
    let mut work = bound.clone();
    let x = bound.args[k]
        .as_real()
        .ok_or("the param is not real")?
        .to_vec();
    let mut worst = 0.0f64;
    for (flat, (&x0, &g)) in x.iter().zip(&gradient).enumerate() {
        let mut loss_with = |value: f64| -> Result<f64, String> {
            if let TensorData::Real(v) = &mut work.args[k].data {
                v[flat] = value;
            }
            loss_at(&work)
        };
        let mut difference = |step: f64| -> Result<(f64, f64), String> {
            let (up, down) = (loss_with(x0 + step)?, loss_with(x0 - step)?);
            let width = (x0 + step) - (x0 - step);
            Ok(((up - down) / width, up.abs().max(down.abs())))
        };
        let mut error = f64::INFINITY;
        for relative_step in SECOND_OPINION_STEPS {
            let h = relative_step * x0.abs().max(1.0);
            let (d_h, f_h) = difference(h)?;
            let (d_2h, f_2h) = difference(2.0 * h)?;
            let richardson = (4.0 * d_h - d_2h) / 3.0;
            let floor = 1e7 * f64::EPSILON * f_h.max(f_2h).max(1.0) / h;
            for estimate in [d_h, richardson] {
                let scale = g.abs().max(estimate.abs()).max(floor);
                error = error.min((g - estimate).abs() / scale);
            }
        }
        loss_with(x0)?;
        worst = if error.is_nan() {
            f64::INFINITY
        } else {
            worst.max(error)
        };
    }
    Ok(worst)
}

/// Compiling twice prints the same IR (every stage) and the same `--emit grad`
/// equations.
pub fn check_deterministic(program: &Program, compiled: &Compiled) -> Result<(), String> {
    let again = compile_program(program)?;
    let texts = |c: &Compiled| {
        [
            ("ast", c.ast_text()),
            ("forward_raw", ir::print_function(&c.forward_raw)),
            ("ir", c.forward_ir_text()),
            ("grad_raw", ir::print_function(&c.grad_raw)),
            ("grad-ir", c.grad_ir_text()),
            ("grad", c.grad_equations()),
        ]
    };
    for ((stage, first), (_, second)) in texts(compiled).into_iter().zip(texts(&again)) {
        if first != second {
            return Err(failure(
                program,
                format!("--emit {stage} differs between two compilations:\n{first}\n---\n{second}"),
            ));
        }
    }
    Ok(())
}

/// Two evaluators agree on every result of the forward and gradient functions
/// (for compiled code against the interpreter).
pub fn check_agree(
    program: &Program,
    compiled: &Compiled,
    bound: &Bound,
    reference: impl Eval,
    candidate: impl Eval,
) -> Result<(), String> {
    for func in [&compiled.forward, &compiled.grad] {
        let expected = reference(func, bound)
            .map_err(|e| failure(program, format!("{}: reference failed: {e}", func.name)))?;
        let got = candidate(func, bound)
            .map_err(|e| failure(program, format!("{}: candidate failed: {e}", func.name)))?;
        compare_results_within(
            func,
            &expected,
            &got,
            &format!("{}: reference vs candidate", func.name),
            AGREE_TOLERANCE,
        )
        .map_err(|e| failure(program, e))?;
    }
    Ok(())
}

/// Every property at once, with `eval` as the evaluator: compiles with the right
/// warnings, verifies, does not swell, simplification preserves values, the gradient
/// checks. Returns the gradient check's outcome.
pub fn check_program(program: &Program, eval: impl Eval) -> Result<GradOutcome, String> {
    let compiled = compile_program(program)?;
    check_warnings(program, &compiled)?;
    check_verifies(program, &compiled)?;
    check_no_swell(program, &compiled)?;
    let bound = bind(program, &compiled)?;
    check_simplify_preserves_values(program, &compiled, &bound, &eval)?;
    check_gradients(program, &compiled, &bound, &eval)
}
