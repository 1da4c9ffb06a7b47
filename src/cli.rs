//! The `gradc` command line: `check`, `compile`, `run`, `gradcheck`, `bench`.
//!
//! In: arguments and files named on the command line. Out: text on stdout, diagnostics
//! on stderr in the spec's `FILE:LINE:COL: error: MESSAGE` form, and the exit status
//! (0 success, 1 any error in the file or the data, 2 a usage error from clap).

use crate::data::{self, Bound};
use crate::diag::{self, Diagnostic};
use crate::driver::{self, op_count, Compiled};
use crate::ir::{self, ArgRole};
use crate::{gradcheck, interp, syntax};
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
        #[arg(long, default_value_t = gradcheck::DEFAULT_TOLERANCE)]
        tolerance: f64,
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
        eprint!("{}", diag::render(&source.path, &source.text, diags));
    }
}

/// Parses the arguments, runs the command, and returns the exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
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
        Command::Bench { file, data, json } => {
            with_source(&file, |src| bench_command(src, &data, json))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Source(_)) => ExitCode::from(1),
        Err(Failure::Message(message)) => {
            eprintln!("error: {message}");
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
        None => {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`gradc ... | head`) is not an error worth a message.
            let _ = stdout.write_all(text.as_bytes());
            Ok(())
        }
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
        Some(Emit::Clif) => return Err(Failure::Message("the JIT is not built yet".into())),
        None => summary(&compiled, started.elapsed().as_secs_f64() * 1e3),
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

fn read_data(path: &PathBuf) -> Result<serde_json::Value, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| Failure::Message(format!("`{}` is not valid JSON: {e}", path.display())))
}

fn bind(func: &ir::Function, data: &serde_json::Value) -> Result<Bound, Failure> {
    data::bind_json(func, data).map_err(|e| Failure::Message(e.to_string()))
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
}

impl<'a> Engine<'a> {
    fn new(compiled: &'a Compiled, use_interp: bool) -> Result<Engine<'a>, Failure> {
        let _ = use_interp;
        Ok(Engine { compiled })
    }

    /// Evaluates either of the compiled functions (gradcheck perturbs the data).
    fn eval(&self, func: &ir::Function, bound: &Bound) -> Result<Vec<crate::Tensor>, String> {
        interp::eval(func, &bound.dims, &bound.args)
    }

    fn forward(&self, bound: &Bound) -> Result<Vec<crate::Tensor>, Failure> {
        Ok(interp::eval(
            &self.compiled.forward,
            &bound.dims,
            &bound.args,
        )?)
    }

    fn value_and_grad(&self, bound: &Bound) -> Result<Vec<crate::Tensor>, Failure> {
        Ok(interp::eval(&self.compiled.grad, &bound.dims, &bound.args)?)
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
    let report = match data_path {
        Some(path) => {
            let bound = bind(&compiled.forward, &read_data(path)?)?;
            gradcheck::gradcheck(&compiled.forward, &compiled.grad, &bound, eval)?
        }
        None => gradcheck::gradcheck_random(&compiled.forward, &compiled.grad, seed, eval)?.1,
    };
    print!("{report}");
    if report.passed(tolerance) {
        println!(
            "gradcheck passed: worst relative error {:.3e} <= tolerance {tolerance:e}",
            report.worst_error()
        );
        Ok(())
    } else {
        Err(Failure::Message(format!(
            "gradcheck failed: worst relative error {:.3e} > tolerance {tolerance:e}",
            report.worst_error()
        )))
    }
}

fn bench_command(src: &Source, data_path: &PathBuf, json: bool) -> Result<(), Failure> {
    let _ = (src, data_path, json);
    Err(Failure::Message("bench is not built yet".into()))
}
