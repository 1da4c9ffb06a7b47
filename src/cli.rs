//! The `gradc` command line: `check`, `compile`, `run`, `gradcheck`, `bench`.
//!
//! In: arguments and files named on the command line. Out: text on stdout, diagnostics
//! on stderr in the spec's `FILE:LINE:COL: error: MESSAGE` form, and the exit status
//! (0 success, 1 any error in the file or the data, 2 a usage error from clap).

use crate::data::{self, Bound};
use crate::diag::{self, Diagnostic};
use crate::driver::{self, op_count, Compiled};
use crate::ir::{self, ArgRole};
use crate::train::LbfgsStop;
use crate::{api, bench, gradcheck, interp, jit, syntax};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// gradc: compile a `.loss` file to native loss and gradient functions.
#[derive(Parser, Debug)]
#[command(name = "gradc", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Parse and check a file; print its errors and warnings.
    Check {
        /// The `.loss` file.
        file: PathBuf,
    },
    /// Compile a file and print a summary, or one stage with `--emit`.
    Compile {
        /// The `.loss` file.
        file: PathBuf,
        /// Print one stage instead of the summary.
        #[arg(long, value_enum)]
        emit: Option<Emit>,
        /// Write the output to this file instead of stdout.
        #[arg(short = 'o', long = "output")]
        out: Option<PathBuf>,
    },
    /// Evaluate the loss, gradients and outputs on data; print one JSON object.
    Run {
        /// The `.loss` file.
        file: PathBuf,
        /// The data: a JSON object mapping every input and param to its value.
        #[arg(long)]
        data: PathBuf,
        /// Evaluate the forward function only (no `grad` in the output).
        #[arg(long)]
        forward: bool,
        /// Use the reference interpreter instead of the JIT.
        #[arg(long)]
        interp: bool,
    },
    /// Compare the compiled gradient with central finite differences.
    Gradcheck {
        /// The `.loss` file.
        file: PathBuf,
        /// The point to check at (default: a random point).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Seed of the random point.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The largest relative error accepted.
        #[arg(
            long,
            default_value_t = gradcheck::DEFAULT_TOLERANCE,
            allow_negative_numbers = true,
            value_parser = non_negative
        )]
        tolerance: f64,
    },
    /// Fit the params to the data by gradient descent; print the loss as it goes.
    Train {
        /// The `.loss` file.
        file: PathBuf,
        /// The data and the starting params (the same format as for `run`).
        #[arg(long)]
        data: PathBuf,
        /// Number of gradient steps.
        #[arg(long, default_value_t = 100)]
        steps: usize,
        /// Learning rate [default: 0.01] (not for lbfgs, whose line search sets each
        /// step's length).
        #[arg(long, allow_negative_numbers = true, value_parser = positive_finite)]
        lr: Option<f64>,
        /// The update rule.
        #[arg(long, value_enum, default_value_t = Optimizer::Adam)]
        optimizer: Optimizer,
        /// For lbfgs: how many of the last steps shape each direction [default: 10].
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        history: Option<u16>,
        /// How the learning rate decays after any warm-up, from `--lr` towards 0 at the
        /// last step [default: constant].
        #[arg(long, value_enum)]
        schedule: Option<Schedule>,
        /// Steps over which the learning rate rises linearly to `--lr` first [default: 0].
        #[arg(long)]
        warmup: Option<usize>,
        /// Decoupled weight decay (AdamW's): each step also moves every param by
        /// `-lr * DECAY * p` [default: 0].
        #[arg(long, allow_negative_numbers = true, value_parser = finite_non_negative)]
        weight_decay: Option<f64>,
        /// Scale the gradients down to this global norm when theirs is larger.
        #[arg(long, allow_negative_numbers = true, value_parser = positive_finite)]
        clip_norm: Option<f64>,
        /// Print the loss every this many steps (0: only the first and last).
        #[arg(long, default_value_t = 10)]
        every: usize,
        /// Rows per step (minibatches): each step takes this many rows of the inputs
        /// whose first axis is the batch dimension, shuffled each epoch. Without it,
        /// each step uses all the data.
        #[arg(long)]
        batch: Option<usize>,
        /// The batch dimension (default: the first axis of the first input).
        #[arg(long, requires = "batch")]
        batch_dim: Option<String>,
        /// Seeds the order of the rows in the batches.
        #[arg(long, default_value_t = 0, requires = "batch")]
        seed: u64,
        /// With `-o`: write the params of the report step (see `--every`) where this
        /// scalar output, or `loss`, was lowest, rather than the last step's.
        #[arg(
            long,
            value_name = "NAME",
            requires = "out",
            conflicts_with = "keep_max"
        )]
        keep_min: Option<String>,
        /// With `-o`: write the params of the report step where this scalar output (a
        /// held-out accuracy, say) was highest, rather than the last step's.
        #[arg(long, value_name = "NAME", requires = "out")]
        keep_max: Option<String>,
        /// Write the data with the trained params here, ready for `run --data`.
        #[arg(short = 'o', long = "output")]
        out: Option<PathBuf>,
    },
    /// Time compilation, the forward and the value-and-grad function on data.
    Bench {
        /// The `.loss` file.
        file: PathBuf,
        /// The data: a JSON object mapping every input and param to its value.
        #[arg(long)]
        data: PathBuf,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Update rules for `train`.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum Optimizer {
    /// Plain gradient descent: `p -= lr * g`.
    Sgd,
    /// Adam (Kingma & Ba) with beta1 = 0.9, beta2 = 0.999, eps = 1e-8.
    Adam,
    /// L-BFGS: quasi-Newton steps with a line search, each on all the data; stops early
    /// once no lower loss is found.
    Lbfgs,
}

/// Learning-rate decays for `train`.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum Schedule {
    /// `--lr` throughout.
    Constant,
    /// A straight line from `--lr` down towards 0.
    Linear,
    /// Half a cosine from `--lr` down towards 0.
    Cosine,
}

/// The stages `compile --emit` can print.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Emit {
    /// The parsed file as s-expressions.
    Ast,
    /// The forward SSA IR.
    Ir,
    /// The simplified value-and-gradient SSA IR.
    GradIr,
    /// The gradients as `.loss`-style equations.
    Grad,
    /// The Cranelift IR of the forward and value-and-grad functions.
    Clif,
}

/// A failure that ends the command; every variant prints and exits with status 1.
enum Failure {
    /// Diagnostics in the `.loss` file (already collected).
    Source(Vec<Diagnostic>),
    /// Anything else: a file that can't be read, bad data, a failed gradcheck.
    Message(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::Message(message)
    }
}

/// A loaded source file: its path as given and its text.
struct Source {
    path: String,
    text: String,
}

impl Source {
    fn read(path: &PathBuf) -> Result<Source, Failure> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        let display = path.display().to_string();
        match String::from_utf8(bytes) {
            Ok(text) => Ok(Source {
                path: display,
                text,
            }),
            Err(e) => {
                // Point at the first bad byte of a lossy copy, so the caret lands there.
                let at = e.utf8_error().valid_up_to();
                let source = Source {
                    path: display,
                    text: String::from_utf8_lossy(e.as_bytes()).into_owned(),
                };
                let bad =
                    Diagnostic::error(crate::Span::new(at, at + 1), "the file is not valid UTF-8");
                Err(render_failure(&source, Failure::Source(vec![bad])))
            }
        }
    }

    fn compile(&self) -> Result<Compiled, Failure> {
        match driver::compile(&self.text) {
            Ok(compiled) => {
                report(self, &compiled.warnings);
                Ok(compiled)
            }
            Err(diags) => Err(Failure::Source(diags)),
        }
    }
}

/// Renders a source failure right away (it needs the text) and turns it into a
/// message-less failure.
/// A learning rate: a finite number above 0.
fn positive_finite(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        Ok(_) => Err("must be a finite number above 0".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A weight decay: a finite number of at least 0.
fn finite_non_negative(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        Ok(_) => Err("must be a finite number of at least 0".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A tolerance: a number of at least 0 (not NaN, against which every comparison fails).
fn non_negative(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x >= 0.0 => Ok(x),
        Ok(_) => Err("must be a number of at least 0".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn render_failure(source: &Source, failure: Failure) -> Failure {
    match failure {
        Failure::Source(diags) => {
            report(source, &diags);
            Failure::Source(Vec::new())
        }
        other => other,
    }
}

fn report(source: &Source, diags: &[Diagnostic]) {
    if !diags.is_empty() {
        print_err(&diag::render(&source.path, &source.text, diags));
    }
}

/// Parses the arguments, runs the command, and returns the exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Ok(threads) = std::env::var("GRADC_THREADS") {
        if !threads.trim().parse::<usize>().is_ok_and(|n| n > 0) {
            print_err(&format!(
                "warning: GRADC_THREADS=`{threads}` is not a number of threads; using {}\n",
                crate::jit::threads()
            ));
        }
    }
    let result = match cli.command {
        Command::Check { file } => with_source(&file, |src| {
            src.compile()?;
            Ok(())
        }),
        Command::Compile { file, emit, out } => with_source(&file, |src| {
            let text = compile_command(src, emit)?;
            write_output(out.as_ref(), &text)
        }),
        Command::Run {
            file,
            data,
            forward,
            interp,
        } => with_source(&file, |src| run_command(src, &data, forward, interp)),
        Command::Gradcheck {
            file,
            data,
            seed,
            tolerance,
        } => with_source(&file, |src| {
            gradcheck_command(src, data.as_ref(), seed, tolerance)
        }),
        Command::Train {
            file,
            data,
            steps,
            lr,
            optimizer,
            history,
            schedule,
            warmup,
            weight_decay,
            clip_norm,
            every,
            batch,
            batch_dim,
            seed,
            keep_min,
            keep_max,
            out,
        } => with_source(&file, |src| {
            let settings = TrainSettings {
                steps,
                lr,
                optimizer,
                history,
                schedule,
                warmup,
                weight_decay,
                clip_norm,
                every,
                batch: batch.map(|size| (size, batch_dim.clone(), seed)),
                keep: (keep_min.clone().map(|name| (name, false)))
                    .or_else(|| keep_max.clone().map(|name| (name, true))),
            };
            train_command(src, &data, settings, out.as_ref())
        }),
        Command::Bench { file, data, json } => {
            with_source(&file, |src| bench_command(src, &data, json))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Source(_)) => ExitCode::from(1),
        Err(Failure::Message(message)) => {
            print_err(&format!("error: {message}\n"));
            ExitCode::from(1)
        }
    }
}

fn with_source(
    path: &PathBuf,
    command: impl FnOnce(&Source) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let source = Source::read(path)?;
    command(&source).map_err(|f| render_failure(&source, f))
}

fn write_output(out: Option<&PathBuf>, text: &str) -> Result<(), Failure> {
    match out {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| Failure::Message(format!("cannot write `{}`: {e}", path.display()))),
        None => print_out(text),
    }
}

/// Writes `text` to stderr; when even that fails, the exit status is all that is left.
fn print_err(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Writes `text` to stdout. A reader that has gone (`gradc ... | head`) is not an error
/// worth a message, but a stdout that cannot take the text (a full disk) is.
fn print_out(text: &str) -> Result<(), Failure> {
    write_stdout(text).map_err(Failure::Message)
}

/// [`print_out`] with the message alone.
fn write_stdout(text: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("cannot write to stdout: {e}"))
        }
        _ => Ok(()),
    }
}

fn compile_command(src: &Source, emit: Option<Emit>) -> Result<String, Failure> {
    let started = Instant::now();
    let compiled = src.compile()?;
    Ok(match emit {
        Some(Emit::Ast) => syntax::print::print_file(&compiled.ast),
        Some(Emit::Ir) => ir::print_function(&compiled.forward),
        Some(Emit::GradIr) => ir::print_function(&compiled.grad),
        Some(Emit::Grad) => crate::equations::equations(&compiled.grad),
        Some(Emit::Clif) => {
            let forward = jit::clif_text(&compiled.forward).map_err(|e| e.to_string())?;
            let grad = jit::clif_text(&compiled.grad).map_err(|e| e.to_string())?;
            format!("; forward\n{forward}\n; value and gradient\n{grad}")
        }
        None => {
            Engine::new(&compiled, false)?;
            summary(&compiled, started.elapsed().as_secs_f64() * 1e3)
        }
    })
}

fn shape_list(func: &ir::Function, ty: &ir::Type) -> String {
    ir::type_text(func, ty)
}

fn summary(compiled: &Compiled, compile_ms: f64) -> String {
    let forward = &compiled.forward;
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    for arg in &forward.args {
        let role = match arg.role {
            ArgRole::Input => "input",
            ArgRole::Param => "param",
        };
        line(format!(
            "{role:<6} {}: {}",
            arg.name,
            shape_list(forward, &arg.ty)
        ));
    }
    for r in forward.results.iter().skip(1) {
        let ty = forward.ty(r.value);
        line(format!("output {}: {}", r.name, shape_list(forward, ty)));
    }
    line(format!(
        "forward IR:  {} ops as lowered, {} after simplification",
        op_count(&compiled.forward_raw),
        op_count(&compiled.forward)
    ));
    line(format!(
        "gradient IR: {} ops from reverse mode, {} after simplification ({:.2}x the forward)",
        op_count(&compiled.grad_raw),
        op_count(&compiled.grad),
        op_count(&compiled.grad) as f64 / op_count(&compiled.forward).max(1) as f64
    ));
    line(format!(
        "compiled in {compile_ms:.2} ms (forward and value-and-grad, native code)"
    ));
    out
}

fn read_data(path: &PathBuf) -> Result<data::DataFile, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    data::DataFile::parse(text).map_err(|e| Failure::Message(format!("`{}`: {e}", path.display())))
}

fn bind(func: &ir::Function, data: &data::DataFile) -> Result<Bound, Failure> {
    data::bind_data(func, data).map_err(|e| Failure::Message(e.to_string()))
}

fn run_command(
    src: &Source,
    data_path: &PathBuf,
    forward_only: bool,
    use_interp: bool,
) -> Result<(), Failure> {
    let compiled = src.compile()?;
    let data = read_data(data_path)?;
    let bound = bind(&compiled.forward, &data)?;
    let engine = Engine::new(&compiled, use_interp)?;
    let forward_values = engine.forward(&bound)?;
    let grad_values = if forward_only {
        None
    } else {
        Some(engine.value_and_grad(&bound)?)
    };
    let text = data::results_json(
        &compiled.forward,
        &forward_values,
        grad_values.as_deref().map(|g| (&compiled.grad, g)),
    );
    write_output(None, &format!("{text}\n"))
}

/// What evaluates the compiled functions: native code, or the reference interpreter.
struct Engine<'a> {
    compiled: &'a Compiled,
    model: api::Model,
}

impl<'a> Engine<'a> {
    fn new(compiled: &'a Compiled, use_interp: bool) -> Result<Engine<'a>, Failure> {
        let options = api::CompileOptions {
            engine: if use_interp {
                api::Engine::Interpreter
            } else {
                api::Engine::Jit
            },
            ..Default::default()
        };
        let model = api::Model::from_compiled(compiled, options).map_err(|e| e.to_string())?;
        Ok(Engine { compiled, model })
    }

    /// Evaluates either of the compiled functions (gradcheck perturbs the data).
    fn eval(&self, func: &ir::Function, bound: &Bound) -> Result<Vec<crate::Tensor>, String> {
        let result = if std::ptr::eq(func, &self.compiled.forward) {
            self.model.eval_forward(bound)
        } else if std::ptr::eq(func, &self.compiled.grad) {
            self.model.eval_grad(bound)
        } else {
            return interp::eval(func, &bound.dims, &bound.args);
        };
        result.map_err(|e| e.to_string())
    }

    fn forward(&self, bound: &Bound) -> Result<Vec<crate::Tensor>, Failure> {
        Ok(self.eval(&self.compiled.forward, bound)?)
    }

    fn value_and_grad(&self, bound: &Bound) -> Result<Vec<crate::Tensor>, Failure> {
        Ok(self.eval(&self.compiled.grad, bound)?)
    }
}

fn gradcheck_command(
    src: &Source,
    data_path: Option<&PathBuf>,
    seed: u64,
    tolerance: f64,
) -> Result<(), Failure> {
    let compiled = src.compile()?;
    let engine = Engine::new(&compiled, false)?;
    let eval = |func: &ir::Function, bound: &Bound| engine.eval(func, bound);
    let options = gradcheck::GradcheckOptions {
        tolerance,
        seed,
        ..Default::default()
    };
    let report = match data_path {
        Some(path) => {
            let bound = bind(&compiled.forward, &read_data(path)?)?;
            gradcheck::gradcheck_with(&compiled.forward, &compiled.grad, &bound, eval, options)?
        }
        None => {
            let (point, report) = gradcheck::gradcheck_random(
                &compiled.forward,
                &compiled.grad,
                seed,
                eval,
                options,
            )?;
            // The sizes drawn, so that the point can be rebuilt elsewhere.
            let sizes: Vec<String> = (compiled.forward.dims.iter().zip(&point.dims))
                .map(|(name, size)| format!("{name} = {size}"))
                .collect();
            if !sizes.is_empty() {
                print_out(&format!(
                    "random point (seed {seed}): {}\n",
                    sizes.join(", ")
                ))?;
            }
            report
        }
    };
    print_out(&report.to_string())?;
    let verdict = gradcheck_verdict(&report, tolerance);
    let has_params = (compiled.forward.args.iter()).any(|a| a.role == ir::ArgRole::Param);
    if !has_params {
        print_out("gradcheck inconclusive: the model has no `param`, so no gradient to check\n")
    } else if report.passed(tolerance) && report.inconclusive() {
        // Nothing exceeded the tolerance, so the exit status is 0; but nothing was
        // compared either, which "passed" would hide.
        print_out(
            "gradcheck inconclusive: every element was skipped, the loss not being smooth \
             at the step of the finite differences; try other data, or another --seed\n",
        )
    } else if report.passed(tolerance) {
        print_out(&format!("gradcheck passed: {verdict}\n"))
    } else {
        Err(Failure::Message(format!("gradcheck failed: {verdict}")))
    }
}

/// The worst error and what it was compared with: the tolerance, plus the measured
/// noise of the finite differences where that decided.
fn gradcheck_verdict(report: &gradcheck::GradcheckReport, tolerance: f64) -> String {
    let Some(worst) = report.worst_param(tolerance) else {
        return format!("no params to check (tolerance {tolerance:e})");
    };
    let error = worst.worst_error;
    let passed = worst.passed(tolerance);
    if !error.is_finite() {
        let at = worst
            .worst_at
            .as_ref()
            .map_or(String::new(), |at| format!(" at {at:?}"));
        return format!(
            "`{}`{at}: gradient {:e}, finite difference {:e} (relative error {error:.3e})",
            worst.name, worst.analytic, worst.numeric
        );
    }
    let sign = if passed { "<=" } else { ">" };
    if worst.noise > 0.0 && error > tolerance {
        format!(
            "worst relative error {error:.3e} (`{}`) {sign} tolerance {tolerance:e} + \
             measured finite-difference noise {:.3e}",
            worst.name, worst.noise
        )
    } else {
        format!("worst relative error {error:.3e} {sign} tolerance {tolerance:e}")
    }
}

/// The knobs of `gradc train`.
struct TrainSettings {
    steps: usize,
    /// `None`: not given (0.01 for the rules that take one).
    lr: Option<f64>,
    optimizer: Optimizer,
    history: Option<u16>,
    /// `None`, here and below: not given (the defaults are constant, 0 and 0).
    schedule: Option<Schedule>,
    warmup: Option<usize>,
    weight_decay: Option<f64>,
    clip_norm: Option<f64>,
    every: usize,
    /// Rows per batch, the batch dimension's name, the seed of the order.
    batch: Option<(usize, Option<String>, u64)>,
    /// The name of the value (`loss` or a scalar output) whose best report step's params
    /// are written, and whether higher is better.
    keep: Option<(String, bool)>,
}

/// Refuses options that mean nothing to the chosen update rule, rather than ignore them.
fn check_train_options(settings: &TrainSettings) -> Result<(), Failure> {
    let lbfgs = settings.optimizer == Optimizer::Lbfgs;
    if !lbfgs {
        return match settings.history {
            Some(_) => Err(Failure::Message(
                "`--history` is for `--optimizer lbfgs` (the steps it remembers)".into(),
            )),
            None => Ok(()),
        };
    }
    let given = [
        (settings.lr.is_some(), "--lr"),
        (settings.schedule.is_some(), "--schedule"),
        (settings.warmup.is_some(), "--warmup"),
        (settings.weight_decay.is_some(), "--weight-decay"),
        (settings.clip_norm.is_some(), "--clip-norm"),
        (settings.batch.is_some(), "--batch"),
    ];
    match given.iter().find(|(given, _)| *given) {
        Some((_, option)) => Err(Failure::Message(format!(
            "`{option}` does not apply to `--optimizer lbfgs`: its line search sets the \
             length of every step, and every step uses all the data"
        ))),
        None => Ok(()),
    }
}

fn train_command(
    src: &Source,
    data_path: &PathBuf,
    settings: TrainSettings,
    out: Option<&PathBuf>,
) -> Result<(), Failure> {
    check_train_options(&settings)?;
    let compiled = src.compile()?;
    // A missing folder for the trained params is found before training, not after.
    if let Some(folder) = out.and_then(|path| path.parent()) {
        if !folder.as_os_str().is_empty() && !folder.is_dir() {
            let path = out.map_or_else(String::new, |p| p.display().to_string());
            return Err(Failure::Message(format!(
                "cannot write `{path}`: there is no folder `{}`",
                folder.display()
            )));
        }
    }
    let data = read_data(data_path)?;
    let mut bound = bind(&compiled.forward, &data)?;
    let engine = Engine::new(&compiled, false)?;
    let lr = settings.lr.unwrap_or(0.01);
    let (warmup, weight_decay) = (
        settings.warmup.unwrap_or(0),
        settings.weight_decay.unwrap_or(0.0),
    );
    let method = match settings.optimizer {
        Optimizer::Lbfgs => crate::train::Method::Lbfgs {
            history: settings.history.map_or(10, usize::from),
        },
        Optimizer::Sgd | Optimizer::Adam => {
            let rule = if settings.optimizer == Optimizer::Sgd {
                crate::train::Rule::Sgd
            } else {
                crate::train::Rule::Adam
            };
            let mut optimizer =
                crate::train::Optimizer::new(rule, lr).with_weight_decay(weight_decay);
            if let Some(max_norm) = settings.clip_norm {
                optimizer = optimizer.with_clip_norm(max_norm);
            }
            crate::train::Method::Descent(optimizer)
        }
    };
    let schedule = crate::train::Schedule {
        peak: lr,
        decay: match settings.schedule.unwrap_or(Schedule::Constant) {
            Schedule::Constant => crate::train::Decay::Constant,
            Schedule::Linear => crate::train::Decay::Linear,
            Schedule::Cosine => crate::train::Decay::Cosine,
        },
        warmup,
        steps: settings.steps,
    };
    if warmup >= settings.steps && warmup > 0 {
        print_err(&format!(
            "warning: --warmup {} is not below --steps {}: the learning rate never reaches \
             --lr {}\n",
            warmup,
            settings.steps,
            short_number(lr)
        ));
    }
    if !(compiled.forward.args.iter()).any(|arg| arg.role == ir::ArgRole::Param) {
        print_err("warning: the model has no `param`: training leaves it as it is\n");
    }
    if let crate::train::Method::Lbfgs { history } = method {
        // Two vectors the size of all the params per remembered step.
        let params: usize = (compiled.forward.args.iter().zip(&bound.args))
            .filter(|(arg, _)| arg.role == ir::ArgRole::Param)
            .map(|(_, tensor)| tensor.len())
            .sum();
        let bytes = (history as f64) * 2.0 * (params as f64) * 8.0;
        if bytes > 1e9 {
            print_err(&format!(
                "warning: --history {history} keeps up to {:.1} GB of past steps \
                 ({history} × 2 vectors of {params} params)\n",
                bytes / 1e9
            ));
        }
    }
    let fit_settings = crate::train::Settings {
        method,
        schedule,
        report_every: settings.every,
        batch: settings.batch,
        keep: settings.keep.clone(),
    };
    let fitted = crate::train::fit(&engine.model, &mut bound, &fit_settings, |report| {
        // `+ 0.0` prints a loss of -0 (a mean of log-probabilities that round to 0) as 0.
        let mut line = format!("step {:>6}  loss {:.10e}", report.step, report.loss + 0.0);
        if let Some(lr) = report.learning_rate {
            line.push_str(&format!("  lr {}", short_number(lr)));
        }
        for (name, value) in &report.outputs {
            line.push_str(&format!("  {name} {}", short_number(*value)));
        }
        write_stdout(&(line + "\n"))
    })
    .map_err(|e| Failure::Message(e.to_string()))?;
    match fitted.stopped_at {
        Some((step, LbfgsStop::NotFinite)) => print_err(&format!(
            "warning: stopped at step {step}: no lower loss along the L-BFGS direction, \
             and beyond these params the loss is NaN or infinite, so they stay where it can \
             be computed (a `log` of a probability that rounds to 0 or 1? a loss unbounded \
             below?)\n"
        )),
        Some((step, LbfgsStop::GradientNotFinite)) => print_err(&format!(
            "warning: stopped at step {step}: the gradient there has a NaN or infinite \
             element, or is too large to step along, so L-BFGS has no direction (`gradc \
             run` at these params shows it)\n"
        )),
        Some((step, LbfgsStop::NoDecrease | LbfgsStop::ZeroGradient)) => write_stdout(&format!(
            "converged at step {step} ({} loss and gradient evaluations): no step along the \
             L-BFGS direction lowers the loss (a minimum, to the precision of the loss)\n",
            fitted.evaluations
        ))
        .map_err(Failure::Message)?,
        None => {}
    }
    if let Some(path) = out {
        let which = match (fitted.kept, &settings.keep) {
            (Some((value, step)), Some((name, higher))) => {
                let most = if *higher { "highest" } else { "lowest" };
                format!(
                    "the params of step {step}, where `{name}` was {most} ({}), to `{}`",
                    short_number(value),
                    path.display()
                )
            }
            _ => format!(
                "the trained params to `{}` (final loss {:e})",
                path.display(),
                fitted.last_loss
            ),
        };
        let mut object = serde_json::Map::new();
        for (arg, tensor) in compiled.forward.args.iter().zip(&bound.args) {
            object.insert(arg.name.clone(), data::tensor_to_json(tensor));
        }
        let text = data::format_json(&serde_json::Value::Object(object));
        write_output(Some(path), &format!("{text}\n"))?;
        print_err(&format!("wrote {which}\n"));
    }
    Ok(())
}

/// A number for a progress line: six decimals, or six significant digits in exponent
/// form where that would hide it.
fn short_number(x: f64) -> String {
    if !x.is_finite() {
        // As `run` writes them (without its JSON quotes).
        data::real_to_json(x).as_str().unwrap_or("NaN").to_string()
    } else if x != 0.0 && !(1e-3..1e6).contains(&x.abs()) {
        format!("{x:.6e}")
    } else {
        format!("{x:.6}")
    }
}

fn bench_command(src: &Source, data_path: &PathBuf, json: bool) -> Result<(), Failure> {
    // The measured compile must be the process's first, so the file is not checked
    // beforehand: its errors come from the measured compile (or, where the data can't be
    // read, from a check), its warnings from a check after the measurement.
    // The helper thread starts before the data is read, as JAX's client starts its
    // thread pool when the peer harness stages the data: by the compile, it is running.
    crate::jit::start_helper_thread();
    let data = match read_data(data_path) {
        Ok(data) => data,
        Err(failure) => {
            src.compile()?;
            return Err(failure);
        }
    };
    let bind = move |model: &api::Model| model.bind_data(&data);
    let report = match bench::bench_with(&src.text, bind, &bench::BenchOptions::default()) {
        Ok(report) => report,
        Err(api::ModelError::Compile(errors)) => return Err(Failure::Source(errors.diagnostics)),
        Err(e) => return Err(e.to_string().into()),
    };
    src.compile()?;
    let text = if json {
        report.to_json().to_string()
    } else {
        let row = |name: &str, t: &bench::Timing| {
            format!(
                "{name:<15} {:>12.3} {:>12.3} {:>12.3} {:>12.3} {:>8} x {}",
                t.median_us, t.min_us, t.p10_us, t.p90_us, t.samples, t.calls_per_sample
            )
        };
        [
            format!(
                "compile         {:.3} ms (source to the first value-and-grad call: \
                 pipeline {:.3}, native code {:.3}, first call {:.3})",
                report.compile_ms, report.pipeline_ms, report.jit_ms, report.first_call_ms
            ),
            format!("loss            {}", report.loss),
            format!(
                "memory          arena {} bytes; process peak {:.1} MB (data and compiler included)",
                report.peak_memory_bytes,
                report.max_rss_bytes as f64 / 1e6
            ),
            format!(
                "IR ops          forward {}, gradient {} from reverse mode, {} simplified",
                report.forward_ir_ops, report.grad_raw_ir_ops, report.grad_ir_ops
            ),
            format!(
                "{:<15} {:>12} {:>12} {:>12} {:>12} {:>12}",
                "µs per call", "median", "min", "p10", "p90", "samples"
            ),
            row("forward", &report.forward),
            row("value_and_grad", &report.value_and_grad),
        ]
        .join("\n")
    };
    write_output(None, &format!("{text}\n"))
}
