//! The Rust API: compile a `.loss` file once, then evaluate its loss and gradient many
//! times from Rust data.
//!
//! In: `.loss` source (or an already [`Compiled`] pipeline) and call-time data, as named
//! [`Tensor`]s (validated by [`crate::data::bind_tensors`]) or, on the fast path, as
//! slices in declaration order whose lengths were fixed by [`Model::prepare`]. Out: the
//! loss, the outputs, and the gradients written into caller-owned buffers.
//!
//! Invariants: every length, dimension and index is checked before native code runs, so
//! wrong data is an `Err`, never undefined behaviour. A [`Model`] is `Send + Sync`; any
//! number of threads may call it at once (each call borrows a workspace from a pool).
//! A [`Call`] owns its workspace: repeated calls through it do not allocate.
//!
//! ```no_run
//! use gradc::api::{Model, Call};
//! use gradc::jit::ArgData;
//! let model = Model::from_source("input x\nparam w\nloss = (w * x - 1)^2\n").unwrap();
//! let bound = model.bind(vec![("x".into(), gradc::Tensor::scalar(2.0)),
//!                             ("w".into(), gradc::Tensor::scalar(0.3))]).unwrap();
//! let (loss, grads) = model.value_and_grad_vec(&bound).unwrap();
//! let mut call: Call = model.prepare(&bound.dims).unwrap();
//! let mut dw = [0.0];
//! let loss2 = call.value_and_grad(&[ArgData::Real(&[2.0]), ArgData::Real(&[0.3])],
//!                                 &mut [&mut dw]).unwrap();
//! assert_eq!(loss, loss2);
//! # let _ = grads;
//! ```

use std::fmt;
use std::path::Path;
use std::sync::Mutex;

use crate::data;
pub use crate::data::{Bound, CallError};
use crate::diag::Diagnostic;
use crate::driver::{self, Compiled};
use crate::ir::{ArgRole, Elem, Function, ResultRole};
use crate::jit::{self, ArgData, JitError, Kernel, Workspace};
use crate::tensor::{Tensor, TensorData};

/// How a [`Model`] is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompileOptions {
    /// Run the simplifier on the forward and gradient IR (on by default).
    pub simplify: bool,
    /// Evaluate with native code or with the reference interpreter.
    pub engine: Engine,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            simplify: true,
            engine: Engine::Jit,
        }
    }
}

/// What evaluates a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// Native code from the Cranelift JIT.
    Jit,
    /// The reference interpreter (slow, for cross-checking).
    Interpreter,
}

/// The errors (and warnings) of a `.loss` source that does not compile, with their
/// rendering as `gradc check` prints them: `FILE:LINE:COL: error: MESSAGE`, the source
/// line and a caret.
#[derive(Clone, Debug, PartialEq)]
pub struct CompileErrors {
    /// The diagnostics, spans into the source.
    pub diagnostics: Vec<Diagnostic>,
    /// The diagnostics rendered against the source (FILE is the path given to
    /// [`Model::from_file`], or `<source>`).
    pub rendered: String,
}

impl CompileErrors {
    /// The diagnostics of `source`, read from `path`, rendered.
    pub fn new(path: &str, source: &str, diagnostics: Vec<Diagnostic>) -> CompileErrors {
        let rendered = crate::diag::render(path, source, &diagnostics);
        CompileErrors {
            diagnostics,
            rendered,
        }
    }

    /// Diagnostics with no source to point into (a stage after parsing failed): their
    /// messages alone.
    fn without_source(diagnostics: Vec<Diagnostic>) -> CompileErrors {
        let messages: Vec<&str> = diagnostics.iter().map(|d| d.message.as_str()).collect();
        let rendered = messages.join("\n");
        CompileErrors {
            diagnostics,
            rendered,
        }
    }
}

/// Why a model could not be built or called.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelError {
    /// The `.loss` source has errors (with any warnings).
    Compile(CompileErrors),
    /// The file could not be read.
    Io(String),
    /// Call-time data does not fit the model (names the input, param or gradient buffer
    /// at fault): from binding, or from a slice-level call (wrong count, element type or
    /// length of an argument or gradient buffer, an index out of range). Both engines
    /// give the same error.
    Call(CallError),
    /// The JIT failed or refused a call.
    Jit(JitError),
    /// The interpreter failed.
    Eval(String),
    /// A call that could not be made otherwise: the wrong number of dimension sizes,
    /// data bound for another model, memory that could not be allocated.
    BadCall(String),
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::Compile(errors) => {
                write!(
                    f,
                    "the model does not compile:\n{}",
                    errors.rendered.trim_end()
                )
            }
            ModelError::Io(msg) | ModelError::Eval(msg) | ModelError::BadCall(msg) => {
                write!(f, "{msg}")
            }
            ModelError::Call(e) => write!(f, "{e}"),
            ModelError::Jit(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ModelError {}

impl From<CallError> for ModelError {
    fn from(e: CallError) -> Self {
        ModelError::Call(e)
    }
}

impl From<JitError> for ModelError {
    fn from(e: JitError) -> Self {
        match e {
            JitError::BadCall(msg) => ModelError::BadCall(msg),
            JitError::Call(e) => ModelError::Call(e),
            other => ModelError::Jit(other),
        }
    }
}

/// The forward results of one call.
#[derive(Clone, Debug, PartialEq)]
pub struct Forward {
    /// The loss.
    pub loss: f64,
    /// Every `output`, by name, in declaration order.
    pub outputs: Vec<(String, Tensor)>,
}

impl Forward {
    /// The output named `name`, if the model has one.
    pub fn output(&self, name: &str) -> Option<&Tensor> {
        self.outputs.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
}

/// A compiled `.loss` model: forward and value-and-gradient functions, native code for
/// both, and a pool of workspaces for concurrent calls.
pub struct Model {
    forward_fn: Function,
    grad_fn: Function,
    warnings: Vec<Diagnostic>,
    kernels: Option<(Kernel, Kernel)>,
    pool: Mutex<Vec<Workspace>>,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("args", &self.arg_names())
            .field("jit", &self.kernels.is_some())
            .finish()
    }
}

impl Model {
    /// Compiles `.loss` source with the default options (simplified, JIT).
    pub fn from_source(source: &str) -> Result<Model, ModelError> {
        Model::with_options(source, CompileOptions::default())
    }

    /// Reads and compiles a `.loss` file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Model, ModelError> {
        let path = path.as_ref();
        let source = std::fs::read_to_string(path)
            .map_err(|e| ModelError::Io(format!("cannot read `{}`: {e}", path.display())))?;
        Model::compile(
            &path.display().to_string(),
            &source,
            CompileOptions::default(),
        )
    }

    /// Compiles `.loss` source with the given options.
    pub fn with_options(source: &str, options: CompileOptions) -> Result<Model, ModelError> {
        Model::compile("<source>", source, options)
    }

    /// Compiles `source`, read from `path` (for the errors' positions).
    fn compile(path: &str, source: &str, options: CompileOptions) -> Result<Model, ModelError> {
        let front = driver::compile_front(source)
            .map_err(|d| ModelError::Compile(CompileErrors::new(path, source, d)))?;
        Model::from_front(front, options).map(|(model, _)| model)
    }

    /// Builds a model from the front of the pipeline, running its gradient stages on
    /// the way; returns every artefact of the pipeline too. With the JIT on two threads,
    /// the gradient stages run while the forward function is translated.
    pub fn from_front(
        front: driver::Front,
        options: CompileOptions,
    ) -> Result<(Model, Compiled), ModelError> {
        if !(options.simplify && options.engine == Engine::Jit) {
            let gradient = (front.gradient())
                .map_err(|d| ModelError::Compile(CompileErrors::without_source(d)))?;
            let compiled = front.finish(gradient);
            return Ok((Model::from_compiled(&compiled, options)?, compiled));
        }
        // The raw gradient (or the failure) stays here; the JIT takes the simplified one.
        let grad_raw: Mutex<Option<Result<Function, Vec<Diagnostic>>>> = Mutex::new(None);
        let (forward, made) = jit::compile_pair_with(front.forward(), &|| {
            let (raw, result) = match front.gradient() {
                Ok((raw, grad)) => (Ok(raw), Some(grad)),
                Err(diagnostics) => (Err(diagnostics), None),
            };
            *grad_raw.lock().unwrap_or_else(|e| e.into_inner()) = Some(raw);
            result
        });
        let grad_raw = grad_raw.into_inner().unwrap_or_else(|e| e.into_inner());
        let (raw, grad_fn, grad) = match (grad_raw, made) {
            (Some(Ok(raw)), Some((grad_fn, grad))) => (raw, grad_fn, grad),
            (Some(Err(diagnostics)), _) => {
                return Err(ModelError::Compile(CompileErrors::without_source(
                    diagnostics,
                )))
            }
            _ => {
                return Err(ModelError::Jit(JitError::Codegen(
                    "the JIT thread panicked".into(),
                )))
            }
        };
        let compiled = front.finish((raw, grad_fn.clone()));
        let model = Model {
            forward_fn: compiled.forward.clone(),
            grad_fn,
            warnings: compiled.warnings.clone(),
            kernels: Some((forward?, grad?)),
            pool: Mutex::new(Vec::new()),
        };
        Ok((model, compiled))
    }

    /// Builds a model from the output of the pipeline (JIT-compiling both functions
    /// unless the interpreter is asked for).
    pub fn from_compiled(
        compiled: &Compiled,
        options: CompileOptions,
    ) -> Result<Model, ModelError> {
        let (forward_fn, grad_fn) = if options.simplify {
            (compiled.forward.clone(), compiled.grad.clone())
        } else {
            (compiled.forward_raw.clone(), compiled.grad_raw.clone())
        };
        let kernels = match options.engine {
            Engine::Jit => {
                let (forward, grad) = jit::compile_pair(&forward_fn, &grad_fn);
                Some((forward?, grad?))
            }
            Engine::Interpreter => None,
        };
        Ok(Model {
            forward_fn,
            grad_fn,
            warnings: compiled.warnings.clone(),
            kernels,
            pool: Mutex::new(Vec::new()),
        })
    }

    /// The compiler's warnings (e.g. a param the loss does not depend on).
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// The forward function (results: loss, then outputs).
    pub fn forward_function(&self) -> &Function {
        &self.forward_fn
    }

    /// The value-and-gradient function (results: loss, then one gradient per param).
    pub fn grad_function(&self) -> &Function {
        &self.grad_fn
    }

    /// Input and param names in declaration order (the order of fast-path arguments).
    pub fn arg_names(&self) -> Vec<&str> {
        self.forward_fn
            .args
            .iter()
            .map(|a| a.name.as_str())
            .collect()
    }

    /// Dimension names in the order [`Model::prepare`] and [`Bound::dims`] take their
    /// sizes (the order of first appearance in the file).
    pub fn dim_names(&self) -> &[String] {
        &self.forward_fn.dims
    }

    /// Param names in declaration order (the order of gradients).
    pub fn param_names(&self) -> Vec<&str> {
        self.forward_fn
            .params()
            .map(|(_, a)| a.name.as_str())
            .collect()
    }

    /// Binds named tensors to the inputs and params, checking names, element types,
    /// shapes, dimension agreement and index ranges.
    pub fn bind(&self, named: Vec<(String, Tensor)>) -> Result<Bound, ModelError> {
        Ok(data::bind_tensors(&self.forward_fn, named)?)
    }

    /// Binds a `DATA.json` object (the command line's format). Numbers are taken as
    /// the f64s they parsed to; [`Model::bind_data`] also checks an `int`'s text.
    pub fn bind_json(&self, data: &serde_json::Value) -> Result<Bound, ModelError> {
        Ok(data::bind_json(&self.forward_fn, data)?)
    }

    /// Binds `DATA.json` read from a file ([`data::DataFile`]), as the command line
    /// does: a number given for an `int` must be an integer as written.
    pub fn bind_data(&self, data: &data::DataFile) -> Result<Bound, ModelError> {
        Ok(data::bind_data(&self.forward_fn, data)?)
    }

    /// Evaluates the forward function: every result (loss, then outputs) as a tensor.
    pub fn eval_forward(&self, bound: &Bound) -> Result<Vec<Tensor>, ModelError> {
        self.eval(false, bound)
    }

    /// Evaluates the value-and-gradient function: loss, then one gradient per param.
    pub fn eval_grad(&self, bound: &Bound) -> Result<Vec<Tensor>, ModelError> {
        self.eval(true, bound)
    }

    fn eval(&self, grad: bool, bound: &Bound) -> Result<Vec<Tensor>, ModelError> {
        let func = if grad {
            &self.grad_fn
        } else {
            &self.forward_fn
        };
        check_bound(func, bound)?;
        let Some(kernels) = &self.kernels else {
            return crate::interp::eval(func, &bound.dims, &bound.args).map_err(ModelError::Eval);
        };
        let kernel = if grad { &kernels.1 } else { &kernels.0 };
        kernel.check_dims(&bound.dims)?;
        let mut outputs: Vec<Vec<f64>> = (0..kernel.n_results())
            .map(|r| zeros(kernel.result_len(r, &bound.dims)))
            .collect::<Result<_, _>>()?;
        let args = arg_data(bound)?;
        {
            let mut slices: Vec<&mut [f64]> =
                outputs.iter_mut().map(|o| o.as_mut_slice()).collect();
            self.with_workspace(|ws| kernel.call(&bound.dims, &args, &mut slices, ws))?;
        }
        Ok(func
            .results
            .iter()
            .zip(outputs)
            .map(|(r, data)| {
                let shape = func
                    .ty(r.value)
                    .shape
                    .iter()
                    .map(|&d| dim_size(d, &bound.dims))
                    .collect();
                Tensor::real(shape, data)
            })
            .collect())
    }

    /// The loss and the outputs.
    pub fn forward(&self, bound: &Bound) -> Result<Forward, ModelError> {
        let results = self.eval_forward(bound)?;
        let mut loss = f64::NAN;
        let mut outputs = Vec::new();
        for (r, t) in self.forward_fn.results.iter().zip(results) {
            match r.role {
                ResultRole::Loss => loss = t.as_real().map_or(f64::NAN, |x| x[0]),
                _ => outputs.push((r.name.clone(), t)),
            }
        }
        Ok(Forward { loss, outputs })
    }

    /// The loss; the gradient of every param (declaration order) is written into
    /// `grads`, whose buffers must have the params' sizes.
    pub fn value_and_grad(
        &self,
        bound: &Bound,
        grads: &mut [&mut [f64]],
    ) -> Result<f64, ModelError> {
        check_bound(&self.grad_fn, bound)?;
        let lens: Vec<usize> = self.grad_fn.results[1..]
            .iter()
            .map(|r| crate::jit::numel(&self.grad_fn.ty(r.value).shape, &bound.dims))
            .collect();
        check_grad_buffers(&self.grad_fn, &lens, grads)?;
        let mut loss = [0.0];
        match &self.kernels {
            Some((_, kernel)) => {
                let args = arg_data(bound)?;
                self.with_workspace(|ws| {
                    let mut results = results_with_loss(&mut loss, grads);
                    kernel.call(&bound.dims, &args, &mut results, ws)
                })?;
            }
            None => {
                let values = crate::interp::eval(&self.grad_fn, &bound.dims, &bound.args)
                    .map_err(ModelError::Eval)?;
                copy_results(&values, &mut loss, grads)?;
            }
        }
        Ok(loss[0])
    }

    /// The loss and freshly allocated gradients (one tensor per param).
    pub fn value_and_grad_vec(&self, bound: &Bound) -> Result<(f64, Vec<Tensor>), ModelError> {
        let mut values = self.eval_grad(bound)?;
        let loss = values
            .first()
            .and_then(|t| t.as_real())
            .map_or(f64::NAN, |x| x[0]);
        values.remove(0);
        Ok((loss, values))
    }

    /// Prepares repeated calls at fixed dimension sizes (`dims` indexed like the
    /// function's dimensions, e.g. `bound.dims`): the returned [`Call`] owns a
    /// workspace and checks only slice lengths and index ranges per call. An error if
    /// a value of either function would be too large at these sizes
    /// ([`CallError::TooLarge`]) or the workspace cannot be allocated.
    pub fn prepare(&self, dims: &[usize]) -> Result<Call<'_>, ModelError> {
        if dims.len() != self.forward_fn.dims.len() {
            return Err(ModelError::BadCall(format!(
                "{} dimension sizes given, the model has {} ({})",
                dims.len(),
                self.forward_fn.dims.len(),
                self.forward_fn.dims.join(", ")
            )));
        }
        data::check_sizes(&self.forward_fn, dims)?;
        data::check_sizes(&self.grad_fn, dims)?;
        let mut workspace = Workspace::new();
        if let Some((forward, kernel)) = &self.kernels {
            for k in [forward, kernel] {
                k.check_dims(dims)?;
            }
            jit::Kernel::reserve_all(&[forward, kernel], dims, &mut workspace)?;
        }
        // Checked by `check_sizes`: no count overflows.
        let numel = |shape: &[crate::ir::Dim]| jit::numel(shape, dims);
        let arg_lens = (self.forward_fn.args.iter())
            .map(|a| (a.ty.elem, numel(&a.ty.shape)))
            .collect();
        let grad_lens = (self.grad_fn.results.iter().skip(1))
            .map(|r| numel(&self.grad_fn.ty(r.value).shape))
            .collect();
        Ok(Call {
            model: self,
            arg_lens,
            grad_lens,
            dims: dims.to_vec(),
            workspace,
            forward_results: Vec::new(),
            scratch_args: Vec::new(),
            scratch_results: Vec::new(),
        })
    }

    fn with_workspace<R>(&self, f: impl FnOnce(&mut Workspace) -> R) -> R {
        let taken = self
            .pool
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        let mut workspace = taken.unwrap_or_default();
        let result = f(&mut workspace);
        self.pool
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(workspace);
        result
    }
}

/// Repeated calls of one [`Model`] at fixed dimension sizes, with arguments passed as
/// slices in declaration order. Owns its workspace: after the first call, calls do not
/// allocate. One `Call` per thread.
pub struct Call<'m> {
    model: &'m Model,
    /// Per argument: (element type, length) under `dims`.
    arg_lens: Vec<(Elem, usize)>,
    /// Per gradient: its length under `dims`.
    grad_lens: Vec<usize>,
    dims: Vec<usize>,
    workspace: Workspace,
    forward_results: Vec<Vec<f64>>,
    scratch_args: Vec<usize>,
    scratch_results: Vec<usize>,
}

impl fmt::Debug for Call<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call").field("dims", &self.dims).finish()
    }
}

impl<'m> Call<'m> {
    /// The dimension sizes this call was prepared for.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Runs `kernel` on the argument and result pointers already listed in
    /// `scratch_args` and `scratch_results`.
    ///
    /// # Safety
    /// Every listed argument's type, length and indices must have been checked for
    /// `self.dims`, and every listed result buffer must be live and of its result's
    /// length.
    unsafe fn run_checked(&mut self, kernel: &Kernel) {
        // SAFETY: the caller's contract; the pointer tables point into live borrowed
        // slices and stay untouched while the kernel runs.
        unsafe {
            kernel.call_raw(
                &self.dims,
                self.scratch_args.as_ptr() as *const *const u8,
                self.scratch_results.as_ptr() as *const *mut f64,
                &mut self.workspace,
            )
        };
    }

    /// The loss; the gradient of every param (declaration order) is written into
    /// `grads`. `args` has one entry per input and param in declaration order; lengths,
    /// element types and indices are checked before native code runs.
    pub fn value_and_grad(
        &mut self,
        args: &[ArgData<'_>],
        grads: &mut [&mut [f64]],
    ) -> Result<f64, ModelError> {
        let model = self.model;
        let mut loss = [0.0];
        match &model.kernels {
            Some((_, kernel)) => {
                self.list_args(args)?;
                self.list_grad_buffers(&mut loss, grads)?;
                kernel.check_indices(&self.dims, args)?;
                // SAFETY: lengths and indices were checked above for `self.dims`, and
                // every result buffer has its result's length.
                unsafe { self.run_checked(kernel) };
            }
            None => {
                self.list_args(args)?;
                self.list_grad_buffers(&mut loss, grads)?;
                let bound = bound_from_args(&model.grad_fn, &self.dims, args)?;
                let values = crate::interp::eval(&model.grad_fn, &bound.dims, &bound.args)
                    .map_err(ModelError::Eval)?;
                copy_results(&values, &mut loss, grads)?;
            }
        }
        Ok(loss[0])
    }

    /// The loss of the forward function (outputs are computed into internal buffers;
    /// see [`Call::outputs`]).
    pub fn forward(&mut self, args: &[ArgData<'_>]) -> Result<f64, ModelError> {
        let model = self.model;
        match &model.kernels {
            Some((kernel, _)) => {
                if self.forward_results.len() != kernel.n_results() {
                    self.forward_results = (0..kernel.n_results())
                        .map(|r| zeros(kernel.result_len(r, &self.dims)))
                        .collect::<Result<_, _>>()?;
                }
                // Refused data leaves no outputs behind, rather than the last call's.
                if let Err(e) = (self.list_args(args))
                    .and_then(|()| Ok(kernel.check_indices(&self.dims, args)?))
                {
                    self.forward_results.clear();
                    return Err(e);
                }
                self.scratch_results.clear();
                self.scratch_results.extend(
                    self.forward_results
                        .iter_mut()
                        .map(|r| r.as_mut_ptr() as usize),
                );
                // SAFETY: as in `value_and_grad`; the result buffers were sized for
                // `self.dims` above.
                unsafe { self.run_checked(kernel) };
            }
            None => {
                self.forward_results.clear();
                self.list_args(args)?;
                let bound = bound_from_args(&model.forward_fn, &self.dims, args)?;
                let values = crate::interp::eval(&model.forward_fn, &bound.dims, &bound.args)
                    .map_err(ModelError::Eval)?;
                self.forward_results = values
                    .into_iter()
                    .map(|t| t.as_real().map(<[f64]>::to_vec).unwrap_or_default())
                    .collect();
            }
        }
        Ok(self.forward_results[0][0])
    }

    /// The outputs computed by the last [`Call::forward`], in declaration order (none
    /// if it failed).
    pub fn outputs(&self) -> impl Iterator<Item = (&str, &[f64])> {
        self.model
            .forward_fn
            .results
            .iter()
            .zip(&self.forward_results)
            .filter(|(r, _)| r.role == ResultRole::Output)
            .map(|(r, data)| (r.name.as_str(), data.as_slice()))
    }

    /// Checks the count, element types and lengths of fast-path arguments and lists
    /// their addresses in `scratch_args`. One pass without early exits (a call's whole
    /// overhead on small models); the error is worked out only when something is wrong.
    fn list_args(&mut self, args: &[ArgData<'_>]) -> Result<(), ModelError> {
        let mut all_match = args.len() == self.arg_lens.len();
        self.scratch_args.resize(args.len(), 0);
        for ((arg, &(elem, len)), address) in
            args.iter().zip(&self.arg_lens).zip(&mut self.scratch_args)
        {
            let (found_elem, found_len, found_address) = arg_parts(arg);
            all_match &= (found_elem == elem) & (found_len == len);
            *address = found_address;
        }
        if all_match {
            return Ok(());
        }
        let names = &self.model.forward_fn.args;
        let names: Vec<String> = names.iter().map(|a| a.name.clone()).collect();
        jit::check_arg_slices(&names, self.arg_lens.iter().copied(), args)?;
        Err(ModelError::BadCall(
            "compiler bug: no argument is of the wrong length".into(),
        ))
    }

    /// Checks the caller's gradient buffers (see [`check_grad_buffers`]) and lists the
    /// loss cell and them in `scratch_results`, in one pass as [`Call::list_args`].
    fn list_grad_buffers(
        &mut self,
        loss: &mut [f64; 1],
        grads: &mut [&mut [f64]],
    ) -> Result<(), ModelError> {
        if grads.len() != self.grad_lens.len() {
            return check_grad_buffers(&self.model.grad_fn, &self.grad_lens, grads);
        }
        self.scratch_results.resize(grads.len() + 1, 0);
        self.scratch_results[0] = loss.as_mut_ptr() as usize;
        let mut all_match = true;
        for ((g, &len), address) in grads
            .iter_mut()
            .zip(&self.grad_lens)
            .zip(&mut self.scratch_results[1..])
        {
            all_match &= g.len() == len;
            *address = g.as_mut_ptr() as usize;
        }
        if all_match {
            Ok(())
        } else {
            check_grad_buffers(&self.model.grad_fn, &self.grad_lens, grads)
        }
    }

    /// Arena bytes held by this call's workspace.
    pub fn workspace_bytes(&self) -> usize {
        self.workspace.arena_bytes()
    }
}

/// An argument's element type, length and address.
fn arg_parts(a: &ArgData<'_>) -> (Elem, usize, usize) {
    match a {
        ArgData::Real(x) => (Elem::Real, x.len(), x.as_ptr() as usize),
        ArgData::Int(x) => (Elem::Int, x.len(), x.as_ptr() as usize),
    }
}

/// The size of a dimension whose shape passed [`data::check_sizes`].
fn dim_size(d: crate::ir::Dim, dims: &[usize]) -> usize {
    crate::shape::dim_size(d, dims).unwrap_or(0)
}

/// `n` zeros, or an error if they cannot be allocated (`n` is bounded by
/// [`crate::shape::MAX_ELEMENTS`], but 16 GiB may still be more than the host has).
fn zeros(n: usize) -> Result<Vec<f64>, ModelError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        ModelError::BadCall(format!("cannot allocate a result buffer of {n} elements"))
    })?;
    v.resize(n, 0.0);
    Ok(v)
}

/// Re-checks a bound made elsewhere (it may come from another function's binder, or
/// have been changed through its public fields): its counts, every argument's element
/// type and shape, the size of every value `func` computes, and every index.
fn check_bound(func: &Function, bound: &Bound) -> Result<(), ModelError> {
    let other_model = || {
        ModelError::BadCall(
            "the data does not fit this model: it was bound for another model, or its \
             dimension sizes or tensors were changed after binding (bind it again)"
                .to_string(),
        )
    };
    if bound.dims.len() != func.dims.len() || bound.args.len() != func.args.len() {
        return Err(other_model());
    }
    // Every argument's element type and shape, as binding checks them: a bound from a
    // model with the same number of arguments must not reach code that reads it as its own.
    if !data::check_bound(func, bound)? {
        return Err(other_model());
    }
    Ok(())
}

fn arg_data(bound: &Bound) -> Result<Vec<ArgData<'_>>, ModelError> {
    bound
        .args
        .iter()
        .map(|t| match &t.data {
            TensorData::Real(x) => Ok(ArgData::Real(x)),
            TensorData::Int(x) => Ok(ArgData::Int(x)),
            TensorData::Bool(_) => Err(ModelError::BadCall(
                "a mask cannot be passed as data".into(),
            )),
        })
        .collect()
}

/// The result table of a value-and-gradient call: the loss cell, then the gradients.
fn results_with_loss<'a>(
    loss: &'a mut [f64; 1],
    grads: &'a mut [&mut [f64]],
) -> Vec<&'a mut [f64]> {
    let mut results: Vec<&mut [f64]> = Vec::with_capacity(grads.len() + 1);
    results.push(loss);
    results.extend(grads.iter_mut().map(|g| &mut **g));
    results
}

/// Checks the caller's gradient buffers against the params of `grad_fn`: one buffer per
/// param in declaration order, the `k`-th of `lens[k]` elements.
fn check_grad_buffers(
    grad_fn: &Function,
    lens: &[usize],
    grads: &[&mut [f64]],
) -> Result<(), ModelError> {
    let params = grad_fn.results.get(1..).unwrap_or(&[]);
    if grads.len() != params.len() {
        return Err(ModelError::Call(CallError::GradBufferCount {
            given: grads.len(),
            params: params.iter().map(|r| r.name.clone()).collect(),
        }));
    }
    for ((g, &want), param) in grads.iter().zip(lens).zip(params) {
        if g.len() != want {
            return Err(ModelError::Call(CallError::GradBufferLength {
                name: param.name.clone(),
                expected: want,
                found: g.len(),
            }));
        }
    }
    Ok(())
}

/// The interpreter's loss and gradients into the caller's buffers (already checked
/// against the params' sizes by [`check_grad_buffers`] or [`Call::list_grad_buffers`]).
fn copy_results(
    values: &[Tensor],
    loss: &mut [f64; 1],
    grads: &mut [&mut [f64]],
) -> Result<(), ModelError> {
    loss[0] = values
        .first()
        .and_then(|t| t.as_real())
        .map_or(f64::NAN, |x| x[0]);
    for (g, t) in grads.iter_mut().zip(&values[1..]) {
        match t.as_real() {
            Some(src) if src.len() == g.len() => g.copy_from_slice(src),
            _ => {
                return Err(ModelError::BadCall(
                    "compiler bug: a gradient is not a real tensor of its param's size".into(),
                ))
            }
        }
    }
    Ok(())
}

/// Tensors from fast-path slices (interpreter engine), checked by the data binder. The
/// slices passed [`Call::list_args`] (one per argument, of the right type and length).
fn bound_from_args(
    func: &Function,
    dims: &[usize],
    args: &[ArgData<'_>],
) -> Result<Bound, ModelError> {
    let named = func
        .args
        .iter()
        .zip(args)
        .map(|(decl, a)| {
            let shape: Vec<usize> = decl.ty.shape.iter().map(|&d| dim_size(d, dims)).collect();
            let data = match (a, decl.ty.elem) {
                (ArgData::Real(x), _) => TensorData::Real(x.to_vec()),
                (ArgData::Int(x), _) => TensorData::Int(x.to_vec()),
            };
            (decl.name.clone(), Tensor { shape, data })
        })
        .collect();
    let bound = data::bind_tensors(func, named)?;
    if bound.dims != dims {
        return Err(ModelError::BadCall(
            "the data does not have the prepared sizes".into(),
        ));
    }
    Ok(bound)
}

/// Which arguments are params, as a mask in declaration order.
pub fn param_mask(func: &Function) -> Vec<bool> {
    func.args.iter().map(|a| a.role == ArgRole::Param).collect()
}

/// A real tensor from an `ndarray` array of rank 0, 1 or 2 (copied, row-major).
#[cfg(feature = "ndarray")]
pub fn tensor_from_ndarray<S, D>(array: &ndarray::ArrayBase<S, D>) -> Result<Tensor, ModelError>
where
    S: ndarray::Data<Elem = f64>,
    D: ndarray::Dimension,
{
    if array.ndim() > 2 {
        return Err(ModelError::BadCall(format!("rank {} > 2", array.ndim())));
    }
    Ok(Tensor::real(
        array.shape().to_vec(),
        array.iter().copied().collect(),
    ))
}

/// An int tensor from an `ndarray` array of rank 0, 1 or 2 (copied, row-major).
#[cfg(feature = "ndarray")]
pub fn int_tensor_from_ndarray<S, D>(array: &ndarray::ArrayBase<S, D>) -> Result<Tensor, ModelError>
where
    S: ndarray::Data<Elem = i64>,
    D: ndarray::Dimension,
{
    if array.ndim() > 2 {
        return Err(ModelError::BadCall(format!("rank {} > 2", array.ndim())));
    }
    Ok(Tensor::int(
        array.shape().to_vec(),
        array.iter().copied().collect(),
    ))
}
