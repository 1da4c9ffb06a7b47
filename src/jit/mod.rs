//! IR → native code with Cranelift.
//!
//! In: a verified IR [`Function`] (forward or value-and-gradient). Out: a [`Kernel`]:
//! immutable machine code that is `Send + Sync` and callable from many threads at once,
//! each call with its own [`Workspace`].
//!
//! [`compile`] reads as the story of one compilation:
//!
//! 1. **plan** ([`plan`]): fuse elementwise chains and reductions into loop nests,
//!    choose which values are stored, list the arena buffers with their live ranges;
//! 2. **translate** ([`translate`], in `translate_kernel`): emit Cranelift functions
//!    following the plan into a fresh module that imports the runtime symbols
//!    ([`runtime`]): one *range function* per loop nest that may be large (it runs any
//!    sub-range of the nest's outer loop, so [`parallel`] can split it across two
//!    threads; nests that translate to the same function share one), then the entry
//!    function running the whole schedule;
//! 3. **compile** (`compile_function`): Cranelift turns each function into machine code
//!    (`Tier`): loop nests as emitted, after our own value numbering ([`numbering`]),
//!    with the thorough register allocator; an entry without loops of its own quickly; any
//!    other entry optimised. This needs no module, so [`compile_pair`] shares the
//!    functions of the forward and the gradient kernel between two threads ([`helper`]);
//! 4. **finish** (`finish_kernel`): the code is defined in the module, relocated and
//!    made executable.
//!
//! A call binds the symbolic dimensions, so one kernel serves every batch size. The
//! [`Workspace`] holds the arena; the offsets of the planned buffers are computed once
//! per distinct set of dimensions and cached there, so repeated calls with the same
//! dimensions do not allocate.

mod fma_order;
mod helper;
pub use helper::{helper_thread_started, start_helper_thread, threads};
pub mod math;
mod numbering;
mod parallel;
mod plan;
mod runtime;
mod translate;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use std::sync::OnceLock;

use cranelift::codegen::ir::Signature;
use cranelift::codegen::isa::OwnedTargetIsa;
use cranelift::prelude::{settings, types, AbiParam, Configurable, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module, ModuleReloc};

use crate::data::{CallError, IndexTarget};
use crate::ir::{self, Dim, Elem, Function, Op};
use crate::shape::{checked_numel, MAX_ELEMENTS};

/// Why a function could not be compiled, or a call was refused.
#[derive(Clone, Debug, PartialEq)]
pub enum JitError {
    /// Cranelift or the host rejected the code (a compiler bug or an unsupported host).
    Codegen(String),
    /// The function uses something the JIT does not support (named).
    Unsupported(String),
    /// Call-time data does not match the function (wrong count or length).
    BadCall(String),
    /// An index out of range: the same error the data binder gives.
    Call(crate::data::CallError),
}

impl fmt::Display for JitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JitError::Codegen(msg) => write!(f, "code generation failed: {msg}"),
            JitError::Unsupported(msg) => write!(f, "not supported by the JIT: {msg}"),
            JitError::BadCall(msg) => write!(f, "{msg}"),
            JitError::Call(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for JitError {}

/// The machine code entry point: `(dims, args, results, arena, offsets)`.
type EntryFn =
    unsafe extern "C" fn(*const i64, *const *const u8, *const *mut f64, *mut u8, *const i64);

/// The executable memory of one kernel, freed when the last [`Kernel`] clone drops.
struct Code {
    module: Option<JITModule>,
}

// SAFETY: after `finalize_definitions` the module is never touched again except to free
// its memory in `drop`, which needs `&mut self` (so no other thread holds a reference);
// the code itself is immutable and reentrant.
unsafe impl Send for Code {}
// SAFETY: as above: shared references never reach the module.
unsafe impl Sync for Code {}

impl Drop for Code {
    fn drop(&mut self) {
        if let Some(module) = self.module.take() {
            // SAFETY: the last reference to the code is gone (every `Kernel` holding
            // this `Arc` has dropped), so no function pointer into it can be called.
            unsafe { module.free_memory() };
        }
    }
}

/// One argument's data for [`Kernel::call`].
#[derive(Clone, Copy, Debug)]
pub enum ArgData<'a> {
    /// A real array (or scalar: one element).
    Real(&'a [f64]),
    /// An int array (or scalar).
    Int(&'a [i64]),
}

/// Checks argument slices against the expected `(element type, length)` of each
/// argument (named by `names`): their count, then each in order; the first mismatch is
/// the error.
pub fn check_arg_slices(
    names: &[String],
    expected: impl ExactSizeIterator<Item = (Elem, usize)>,
    args: &[ArgData<'_>],
) -> Result<(), CallError> {
    if args.len() != expected.len() {
        return Err(CallError::ArgCount {
            given: args.len(),
            expected: names.to_vec(),
        });
    }
    for ((arg, (elem, len)), name) in args.iter().zip(expected).zip(names) {
        let (found_elem, found_len) = match arg {
            ArgData::Real(x) => (Elem::Real, x.len()),
            ArgData::Int(x) => (Elem::Int, x.len()),
        };
        if found_elem != elem {
            return Err(CallError::WrongElem {
                name: name.clone(),
                expected: elem,
                found: found_elem,
            });
        }
        if found_len != len {
            return Err(CallError::WrongLength {
                name: name.clone(),
                expected: len,
                found: found_len,
            });
        }
    }
    Ok(())
}

/// A buffer of the arena plan: its shape and live range.
#[derive(Clone, Debug)]
struct BufferDecl {
    shape: Vec<Dim>,
    first: usize,
    last: usize,
}

/// A compiled function: machine code plus what a call needs to validate its data and
/// lay out its workspace. Immutable; clones share the code.
#[derive(Clone)]
pub struct Kernel {
    entry: EntryFn,
    _code: Arc<Code>,
    id: u64,
    n_dims: usize,
    args: Vec<(Elem, Vec<Dim>)>,
    /// The arguments' names, for errors.
    arg_names: Vec<String>,
    results: Vec<Vec<Dim>>,
    /// (argument index, exclusive bound, what it indexes) for every int argument used as
    /// an index; see [`IndexTarget`].
    index_args: Vec<(usize, Dim, IndexTarget)>,
    /// (literal index, exclusive bound, what it indexes) for every literal index.
    index_literals: Vec<(i64, Dim, IndexTarget)>,
    buffers: Vec<BufferDecl>,
    /// Every distinct shape of a value the code computes or reads (arguments, results,
    /// intermediate values, fused or stored): a call checks each against
    /// [`MAX_ELEMENTS`] before the code runs, so no size the code derives from the
    /// dimensions overflows and no loop runs past the memory it addresses.
    shapes: Vec<Vec<Dim>>,
    /// Stack the native frames take (the entry's and its largest nest's); see
    /// [`Kernel::call_raw`].
    stack_bytes: usize,
}

impl fmt::Debug for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernel")
            .field("id", &self.id)
            .field("args", &self.args.len())
            .field("results", &self.results.len())
            .field("buffers", &self.buffers.len())
            .finish()
    }
}

static NEXT_KERNEL_ID: AtomicU64 = AtomicU64::new(1);

/// Compiles `func` to native code.
pub fn compile(func: &Function) -> Result<Kernel, JitError> {
    compile_inner(func, false).map(|(kernel, _)| kernel)
}

/// Compiles two functions, sharing the work between two threads when a second core is
/// free: both are translated at once, and the Cranelift functions of each (loop nests
/// and entries) go to a queue as soon as it is translated, from which whichever thread
/// is free compiles the largest first. So a thread that finishes translating the
/// smaller kernel starts compiling its functions rather than waiting for the other.
pub fn compile_pair(
    a: &Function,
    b: &Function,
) -> (Result<Kernel, JitError>, Result<Kernel, JitError>) {
    let ([a, b], _) = compile_sources([Source::Ready(a), Source::Ready(b)]);
    (a, b)
}

/// [`compile_pair`] with the second function made by `make_b`, on whichever thread
/// translates it: the pipeline's gradient stages run while the first function is
/// translated. Returns the second function with its kernel, or `None` if `make_b` made
/// none.
pub fn compile_pair_with(
    a: &Function,
    make_b: &(dyn Fn() -> Option<Function> + Sync),
) -> (Result<Kernel, JitError>, Option<MadeKernel>) {
    let ([a, b], [_, made]) = compile_sources([Source::Ready(a), Source::Later(make_b)]);
    (a, made.map(|function| (function, b)))
}

/// A function made during [`compile_pair_with`], and its kernel.
pub type MadeKernel = (Function, Result<Kernel, JitError>);

/// A function for [`compile_sources`]: given, or made by the thread that translates it.
enum Source<'a> {
    /// Given.
    Ready(&'a Function),
    /// Made by this closure (`None`: it made none).
    Later(&'a (dyn Fn() -> Option<Function> + Sync)),
}

/// The kernels of two functions, and the functions that were made on the way.
fn compile_sources(
    sources: [Source<'_>; 2],
) -> ([Result<Kernel, JitError>; 2], [Option<Function>; 2]) {
    /// One function to compile: its size (the queue's order), kernel, id, code, tier.
    struct Job {
        insts: usize,
        kernel: usize,
        id: FuncId,
        func: cranelift::codegen::ir::Function,
        tier: Tier,
    }
    /// Marks a translation finished even if it panics, so no thread waits for it forever.
    struct Finished<'a>(&'a AtomicUsize);
    impl Drop for Finished<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::Release);
        }
    }
    let made: [Mutex<Option<Function>>; 2] = Default::default();
    let translated: [Mutex<Option<Result<Translated, JitError>>>; 2] = Default::default();
    // Functions of each kernel, counted when queued (to tell a lost job from none).
    let queued: [AtomicUsize; 2] = Default::default();
    let queue: Mutex<Vec<Job>> = Mutex::new(Vec::new());
    let compiled: Mutex<Vec<(usize, Result<MachineCode, JitError>)>> = Mutex::new(Vec::new());
    let next = AtomicUsize::new(0);
    let translating = AtomicUsize::new(sources.len());
    helper::run_on_two_threads(&|| {
        while let k @ 0..=1 = next.fetch_add(1, Ordering::Relaxed) {
            let _finished = Finished(&translating);
            let mut kernel = match sources[k] {
                Source::Ready(function) => translate_kernel(function, false),
                Source::Later(make) => match make() {
                    Some(function) => {
                        let kernel = translate_kernel(&function, false);
                        *lock(&made[k]) = Some(function);
                        kernel
                    }
                    None => Err(JitError::Codegen("no function to compile".into())),
                },
            };
            if let Ok(t) = &mut kernel {
                let tier_of = t.tier_of();
                let jobs: Vec<Job> = std::mem::take(&mut t.functions)
                    .into_iter()
                    .enumerate()
                    .map(|(f, (id, func))| Job {
                        insts: func.dfg.num_insts(),
                        kernel: k,
                        id,
                        func,
                        tier: tier_of(f),
                    })
                    .collect();
                queued[k].store(jobs.len(), Ordering::Relaxed);
                let mut queue = lock(&queue);
                queue.extend(jobs);
                // The largest last: `pop` takes it.
                queue.sort_by_key(|job| job.insts);
            }
            *lock(&translated[k]) = Some(kernel);
        }
        loop {
            let job = lock(&queue).pop();
            if let Some(job) = job {
                let code = compile_function(job.id, &job.func, job.tier);
                lock(&compiled).push((job.kernel, code));
            } else if translating.load(Ordering::Acquire) == 0 {
                // Every job was queued before its translation was marked finished.
                if lock(&queue).is_empty() {
                    return;
                }
            } else {
                std::thread::yield_now();
            }
        }
    });
    let mut code: [Vec<MachineCode>; 2] = Default::default();
    let mut failed: [Option<JitError>; 2] = Default::default();
    for (k, machine) in compiled.into_inner().unwrap_or_else(|e| e.into_inner()) {
        match machine {
            Ok(machine) => code[k].push(machine),
            Err(e) => failed[k] = Some(e),
        }
    }
    let lost = || JitError::Codegen("the JIT thread panicked".into());
    let mut results = translated.map(|slot| {
        slot.into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or_else(|| Err(lost()))
    });
    let [a, b] = [0, 1].map(|k| {
        let translated = std::mem::replace(&mut results[k], Err(lost()))?;
        if let Some(e) = failed[k].take() {
            return Err(e);
        }
        let mut code = std::mem::take(&mut code[k]);
        if code.len() != queued[k].load(Ordering::Relaxed) {
            return Err(lost());
        }
        // In declaration order, whichever thread finished first.
        code.sort_by_key(|machine| machine.id.as_u32());
        finish_kernel(translated, code)
    });
    let made = made.map(|slot| slot.into_inner().unwrap_or_else(|e| e.into_inner()));
    ([a, b], made)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The Cranelift IR of `func`, as compiled by [`compile`] (deterministic text).
pub fn clif_text(func: &Function) -> Result<String, JitError> {
    compile_inner(func, true).map(|(_, text)| name_table_addresses(&text.unwrap_or_default()))
}

/// Replaces every hexadecimal constant that points into one of [`math::tables`] by the
/// table's name (`exp_table+64`): the addresses differ between processes, and the
/// printed CLIF must not.
fn name_table_addresses(text: &str) -> String {
    let tables = math::tables();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("0x") {
        out.push_str(&rest[..at]);
        let literal_len = rest[at + 2..]
            .find(|c: char| !(c.is_ascii_hexdigit() || c == '_'))
            .unwrap_or(rest.len() - at - 2);
        let literal = &rest[at..at + 2 + literal_len];
        let value = i64::from_str_radix(&literal[2..].replace('_', ""), 16).ok();
        let table = value.and_then(|v| {
            tables
                .iter()
                .find(|(_, base, bytes)| v >= *base && v < base + *bytes as i64)
                .map(|(name, base, _)| (name, v - base))
        });
        match table {
            Some((name, 0)) => out.push_str(name),
            Some((name, offset)) => out.push_str(&format!("{name}+{offset}")),
            None => out.push_str(literal),
        }
        rest = &rest[at + 2 + literal_len..];
    }
    out.push_str(rest);
    out
}

fn compile_inner(func: &Function, want_clif: bool) -> Result<(Kernel, Option<String>), JitError> {
    let mut translated = translate_kernel(func, want_clif)?;
    let clif = translated.clif.take();
    Ok((compile_translated(translated)?, clif))
}

/// A kernel translated to Cranelift IR: its module (every function declared), the
/// functions still to compile, and what the [`Kernel`] needs to know.
struct Translated {
    module: JITModule,
    /// Loop nests, then the entry.
    functions: Vec<(FuncId, cranelift::codegen::ir::Function)>,
    /// How the entry is compiled (the nests always get [`Tier::Nest`]).
    entry_tier: Tier,
    entry: FuncId,
    /// The kernel, but for its code (`entry` is a placeholder until finished).
    kernel: Kernel,
    clif: Option<String>,
}

/// How much work Cranelift spends on a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tier {
    /// Optimised IR and backtracking register allocation: for an entry with loops of
    /// its own.
    Optimised,
    /// No IR optimisation and single-pass register allocation: for an entry that runs
    /// once per call and hands all its loops to nests, where compile time is all it costs.
    Quick,
    /// No e-graph (constants stay loads at each use, the emitted order is kept; see
    /// [`numbering`]) and backtracking register allocation: for loop nests.
    Nest,
}

/// Machine code of one function, ready to be defined in its module.
struct MachineCode {
    id: FuncId,
    alignment: u64,
    bytes: Vec<u8>,
    relocs: Vec<ModuleReloc>,
    /// Bytes of stack the function's frame takes (spill slots and stack slots).
    frame_bytes: usize,
}

/// Plans `func` and translates it into a fresh module that knows the runtime symbols:
/// first the loop nests, as range functions (so they can run split across threads),
/// then the entry function that calls them.
fn translate_kernel(func: &Function, want_clif: bool) -> Result<Translated, JitError> {
    check_supported(func)?;
    let reshaped = softmax_from_log_softmax(func);
    let func = reshaped.as_ref().unwrap_or(func);
    let plan = plan::plan(func);

    let mut module = new_module()?;
    // Runtime functions are declared at their first use (see `Translator::func_ref`).
    let mut imports = HashMap::new();
    let mut ctx = module.make_context();
    let mut builder_ctx = FunctionBuilderContext::new();
    let mut clif = want_clif.then(String::new);
    let mut range_fns = HashMap::new();
    let mut functions: Vec<(FuncId, cranelift::codegen::ir::Function)> = Vec::new();
    // Nests of the same shape translate to the same function: one compiled copy serves
    // all (compared as Cranelift data, found by a hash of it).
    let mut nests: HashMap<u64, Vec<usize>> = HashMap::new();
    // Nests with the same key (what translation reads of them, see `nest_key`) are
    // translated once; debug builds translate them all and check that they agree.
    let mut by_key: HashMap<String, usize> = HashMap::new();
    for g in translate::range_groups(&plan) {
        let role_key = translate::nest_key(func, &plan, g);
        let known = by_key.get(&role_key).copied();
        if let (Some(i), false) = (known, cfg!(debug_assertions)) {
            range_fns.insert(g, functions[i].0);
            continue;
        }
        ctx.func.signature = range_signature(&module);
        let builder = cranelift::prelude::FunctionBuilder::new(&mut ctx.func, &mut builder_ctx);
        translate::translate_range_fn(func, &plan, g, builder, &mut module, &mut imports);
        numbering::number_values(&mut ctx.func);
        fma_order::order_fma_operands(&mut ctx.func);
        let same_as = |i: &usize| {
            let nest: &cranelift::codegen::ir::Function = &functions[*i].1;
            nest.stencil == ctx.func.stencil && nest.params == ctx.func.params
        };
        if let Some(i) = known {
            assert!(
                same_as(&i),
                "compiler bug: nest {g} has the key of an earlier nest but not its code"
            );
        }
        let key = nest_hash(&ctx.func);
        let same = known.or_else(|| nests.get(&key)?.iter().copied().find(same_as));
        if let Some(i) = same {
            module.clear_context(&mut ctx);
            range_fns.insert(g, functions[i].0);
            by_key.insert(role_key, i);
            continue;
        }
        // Preemptible, so the entry takes its address as an absolute constant: code
        // blocks of a JIT module may be further apart than a 32-bit offset reaches.
        let id = module
            .declare_function(
                &format!("nest{g}"),
                Linkage::Preemptible,
                &ctx.func.signature,
            )
            .map_err(|e| JitError::Codegen(e.to_string()))?;
        if let Some(clif) = clif.as_mut() {
            clif.push_str(&ctx.func.display().to_string());
        }
        nests.entry(key).or_default().push(functions.len());
        by_key.insert(role_key, functions.len());
        functions.push((
            id,
            std::mem::replace(&mut ctx.func, cranelift::codegen::ir::Function::new()),
        ));
        module.clear_context(&mut ctx);
        range_fns.insert(g, id);
    }
    ctx.func.signature = entry_signature(&module);
    let builder = cranelift::prelude::FunctionBuilder::new(&mut ctx.func, &mut builder_ctx);
    translate::translate(func, &plan, builder, &mut module, &mut imports, &range_fns);
    fma_order::order_fma_operands(&mut ctx.func);
    let entry_tier = if ctx.func.layout.blocks().nth(1).is_none() && !range_fns.is_empty() {
        Tier::Quick
    } else {
        Tier::Optimised
    };
    if let Some(text) = clif.as_mut() {
        text.push_str(&ctx.func.display().to_string());
    }
    let entry = module
        .declare_function("entry", Linkage::Local, &ctx.func.signature.clone())
        .map_err(|e| JitError::Codegen(e.to_string()))?;
    functions.push((
        entry,
        std::mem::replace(&mut ctx.func, cranelift::codegen::ir::Function::new()),
    ));

    let kernel = Kernel {
        entry: placeholder_entry,
        _code: Arc::new(Code { module: None }),
        id: NEXT_KERNEL_ID.fetch_add(1, Ordering::Relaxed),
        n_dims: func.dims.len(),
        args: func
            .args
            .iter()
            .map(|a| (a.ty.elem, a.ty.shape.clone()))
            .collect(),
        results: func
            .results
            .iter()
            .map(|r| func.ty(r.value).shape.clone())
            .collect(),
        arg_names: func.args.iter().map(|a| a.name.clone()).collect(),
        index_args: index_args(func),
        index_literals: index_literals(func),
        buffers: plan
            .buffers
            .iter()
            .map(|b| BufferDecl {
                shape: b.shape.clone(),
                first: b.first,
                last: b.last,
            })
            .collect(),
        shapes: value_shapes(func),
        stack_bytes: 0,
    };
    Ok(Translated {
        module,
        functions,
        entry_tier,
        entry,
        kernel,
        clif,
    })
}

impl Translated {
    /// The tier of each function, by its index in `functions` (the entry is the last).
    fn tier_of(&self) -> impl Fn(usize) -> Tier {
        let (entry, tier) = (self.functions.len() - 1, self.entry_tier);
        move |f| if f == entry { tier } else { Tier::Nest }
    }
}

/// Stands in for the entry of a kernel until its code exists; never called.
extern "C" fn placeholder_entry(
    _: *const i64,
    _: *const *const u8,
    _: *const *mut f64,
    _: *mut u8,
    _: *const i64,
) {
}

/// Functions with more instructions than this get [`Tier::Quick`] whatever they are:
/// backtracking allocation takes time quadratic in the values live across a long
/// function (a product of 4,000 factors took 1.2 s to compile, 10,000 took 10 s),
/// single-pass allocation linear time.
const LARGE_FUNCTION_INSTS: usize = 2000;

/// Compiles one translated function to machine code (no module needed, so any thread
/// can do it).
fn compile_function(
    id: FuncId,
    func: &cranelift::codegen::ir::Function,
    tier: Tier,
) -> Result<MachineCode, JitError> {
    thread_local! {
        // Reused so that the register allocator's buffers are allocated once per thread.
        static CONTEXT: std::cell::RefCell<cranelift::codegen::Context> =
            std::cell::RefCell::new(cranelift::codegen::Context::new());
    }
    let insts = func.dfg.num_insts();
    let tier = if insts > LARGE_FUNCTION_INSTS {
        Tier::Quick
    } else {
        tier
    };
    let isa = host(tier)?;
    CONTEXT.with_borrow_mut(|ctx| {
        ctx.clear();
        ctx.func = func.clone();
        ctx.compile(&**isa, &mut Default::default())
            .map_err(|e| JitError::Codegen(format!("{:?}", e.inner)))?;
        let code = ctx
            .compiled_code()
            .expect("compiler bug: compiled code missing after compile");
        let alignment = code.buffer.alignment as u64;
        let bytes = code.code_buffer().to_vec();
        let relocs = code
            .buffer
            .relocs()
            .iter()
            .map(|reloc| ModuleReloc::from_mach_reloc(reloc, &ctx.func, id))
            .collect();
        let frame_bytes = code
            .buffer
            .frame_layout()
            .map_or(0, |layout| layout.frame_to_fp_offset as usize);
        Ok(MachineCode {
            id,
            alignment,
            bytes,
            relocs,
            frame_bytes,
        })
    })
}

/// Compiles every function of a translated kernel on this thread and finishes it.
fn compile_translated(translated: Translated) -> Result<Kernel, JitError> {
    let tier_of = translated.tier_of();
    let code = translated
        .functions
        .iter()
        .enumerate()
        .map(|(f, (id, func))| compile_function(*id, func, tier_of(f)))
        .collect::<Result<Vec<_>, _>>()?;
    finish_kernel(translated, code)
}

/// Defines the machine code in the kernel's module, relocates it, makes it executable
/// and returns the kernel.
fn finish_kernel(translated: Translated, code: Vec<MachineCode>) -> Result<Kernel, JitError> {
    let Translated {
        mut module,
        entry,
        kernel,
        ..
    } = translated;
    // The entry's frame, and the largest frame of a loop nest it calls.
    let (entry_frame, nest_frame) = code.iter().fold((0, 0), |(e, n), machine| {
        if machine.id == entry {
            (machine.frame_bytes, n)
        } else {
            (e, n.max(machine.frame_bytes))
        }
    });
    for machine in &code {
        module
            .define_function_bytes(
                machine.id,
                machine.alignment,
                &machine.bytes,
                &machine.relocs,
            )
            .map_err(|e| JitError::Codegen(e.to_string()))?;
    }
    module
        .finalize_definitions()
        .map_err(|e| JitError::Codegen(e.to_string()))?;
    let address = module.get_finalized_function(entry);
    // SAFETY: the function was built with `entry_signature`, the C ABI of `EntryFn`.
    let entry = unsafe { std::mem::transmute::<*const u8, EntryFn>(address) };
    Ok(Kernel {
        entry,
        _code: Arc::new(Code {
            module: Some(module),
        }),
        stack_bytes: entry_frame + nest_frame,
        ..kernel
    })
}

/// A hash of what makes two translated functions the same code: the body and the
/// external names it calls.
fn nest_hash(func: &cranelift::codegen::ir::Function) -> u64 {
    use std::hash::{Hash, Hasher};
    // A body is tens of kilobytes of small integers, which SipHash digests several times
    // slower; equal hashes are compared in full.
    let mut hasher = rustc_hash::FxHasher::default();
    func.stencil.hash(&mut hasher);
    for (_, name) in func.params.user_named_funcs().iter() {
        name.hash(&mut hasher);
    }
    hasher.finish()
}

/// `softmax(x, k)` as `exp(l)` where the function already computes `l =
/// log_softmax(x, k)` (the simplifier writes the gradient of a log-softmax that way, for
/// reading): the exponential then fuses into the loop that uses it, where a softmax is
/// a pass of its own. `None` when nothing changes.
fn softmax_from_log_softmax(func: &Function) -> Option<Function> {
    let mut log_softmax: HashMap<(ir::Value, u8), ir::Value> = HashMap::new();
    let mut changed: Option<Function> = None;
    for (i, inst) in func.insts.iter().enumerate() {
        let here = ir::Value(i as u32);
        match inst.op {
            Op::LogSoftmax(x, axis) => {
                log_softmax.entry((x, axis)).or_insert(here);
            }
            Op::Softmax(x, axis) => {
                if let Some(&l) = log_softmax.get(&(x, axis)) {
                    let func = changed.get_or_insert_with(|| func.clone());
                    func.insts[i].op = Op::Unary(ir::UnaryOp::Exp, l);
                }
            }
            _ => {}
        }
    }
    changed
}

/// Rejects what the code generator cannot handle, by name.
fn check_supported(func: &Function) -> Result<(), JitError> {
    ir::verify(func).map_err(|problems| {
        JitError::Codegen(format!("compiler bug: invalid IR: {}", problems.join("; ")))
    })?;
    for r in &func.results {
        if func.ty(r.value).elem != Elem::Real {
            return Err(JitError::Unsupported(format!(
                "result `{}` is not real",
                r.name
            )));
        }
    }
    for check in ir::index_checks(func) {
        if !matches!(func.op(check.index), Op::Arg(_) | Op::ConstInt(_)) {
            return Err(JitError::Unsupported(format!(
                "index {} is not an argument or a literal",
                check.index
            )));
        }
    }
    Ok(())
}

fn index_args(func: &Function) -> Vec<(usize, Dim, IndexTarget)> {
    ir::index_checks(func)
        .into_iter()
        .filter_map(|c| match *func.op(c.index) {
            Op::Arg(k) => Some((k as usize, c.bound, IndexTarget::of(func, &c))),
            _ => None,
        })
        .collect()
}

fn index_literals(func: &Function) -> Vec<(i64, Dim, IndexTarget)> {
    ir::index_checks(func)
        .into_iter()
        .filter_map(|c| match *func.op(c.index) {
            Op::ConstInt(n) => Some((n, c.bound, IndexTarget::of(func, &c))),
            _ => None,
        })
        .collect()
}

/// The host's code generator, detected and configured once per process.
///
/// Single-pass allocation compiles two to three times faster but made fused loops 60% and
/// scalar-heavy code 30% slower, so only [`Tier::Quick`] functions get it.
fn host(tier: Tier) -> Result<&'static OwnedTargetIsa, JitError> {
    static OPTIMISED: OnceLock<Result<OwnedTargetIsa, JitError>> = OnceLock::new();
    static QUICK: OnceLock<Result<OwnedTargetIsa, JitError>> = OnceLock::new();
    static NEST: OnceLock<Result<OwnedTargetIsa, JitError>> = OnceLock::new();
    match tier {
        Tier::Nest => NEST.get_or_init(|| host_isa("none", "backtracking")),
        Tier::Optimised => OPTIMISED.get_or_init(|| host_isa("speed", "backtracking")),
        Tier::Quick => QUICK.get_or_init(|| host_isa("none", "single_pass")),
    }
    .as_ref()
    .map_err(Clone::clone)
}

/// A code generator for the host with the given optimisation level and register
/// allocator.
fn host_isa(opt_level: &str, regalloc: &str) -> Result<OwnedTargetIsa, JitError> {
    let codegen = |e: &dyn fmt::Display| JitError::Codegen(e.to_string());
    let mut flags = settings::builder();
    flags.set("opt_level", opt_level).map_err(|e| codegen(&e))?;
    flags
        .set("regalloc_algorithm", regalloc)
        .map_err(|e| codegen(&e))?;
    // cranelift-jit needs absolute, non-PIC relocations.
    flags
        .set("use_colocated_libcalls", "false")
        .map_err(|e| codegen(&e))?;
    flags.set("is_pic", "false").map_err(|e| codegen(&e))?;
    // A frame larger than a page touches every page on the way down, so that running
    // out of stack hits the guard page rather than whatever lies below it.
    flags
        .set("enable_probestack", "true")
        .map_err(|e| codegen(&e))?;
    flags
        .set("probestack_strategy", "inline")
        .map_err(|e| codegen(&e))?;
    let verify = if cfg!(debug_assertions) {
        "true"
    } else {
        "false"
    };
    flags
        .set("enable_verifier", verify)
        .map_err(|e| codegen(&e))?;
    cranelift_native::builder()
        .map_err(|e| codegen(&e))?
        .finish(settings::Flags::new(flags))
        .map_err(|e| codegen(&e))
}

/// A JIT module for the host.
fn new_module() -> Result<JITModule, JitError> {
    let mut builder = JITBuilder::with_isa(host(Tier::Optimised)?.clone(), default_libcall_names());
    for symbol in runtime::symbols() {
        builder.symbol(symbol.name, symbol.address);
    }
    Ok(JITModule::new(builder))
}

/// The signature of a runtime function of the given shape.
pub(crate) fn import_signature(module: &JITModule, shape: &runtime::SymbolShape) -> Signature {
    use runtime::SymbolShape::*;
    use types::{F64, I64};
    let (params, returns): (Vec<_>, &[_]) = match *shape {
        Ints(n) => (vec![I64; n], &[]),
        Math1 => (vec![F64], &[F64]),
        Math2 => (vec![F64, F64], &[F64]),
        Fill => (vec![I64, I64, F64], &[]),
        SinCos => (vec![F64], &[F64, F64]),
        SinCosTo => (vec![F64, I64], &[]),
    };
    let mut sig = module.make_signature();
    sig.params.extend(params.into_iter().map(AbiParam::new));
    sig.returns
        .extend(returns.iter().copied().map(AbiParam::new));
    sig
}

/// `(dims, args, results, arena, offsets)`, five pointers, no return value.
fn entry_signature(module: &JITModule) -> Signature {
    let mut sig = module.make_signature();
    sig.params.extend((0..5).map(|_| AbiParam::new(types::I64)));
    sig
}

/// `(ctx, start, end, partials)`: a loop nest's range function (see
/// [`parallel::RangeFn`]).
fn range_signature(module: &JITModule) -> Signature {
    let mut sig = module.make_signature();
    sig.params.extend((0..4).map(|_| AbiParam::new(types::I64)));
    sig
}

/// The distinct shapes of the arguments and of every value of `func`.
fn value_shapes(func: &Function) -> Vec<Vec<Dim>> {
    let mut shapes: Vec<Vec<Dim>> = Vec::new();
    let all = func
        .args
        .iter()
        .map(|a| &a.ty.shape)
        .chain(func.insts.iter().map(|i| &i.ty.shape));
    for shape in all {
        if !shape.is_empty() && !shapes.contains(shape) {
            shapes.push(shape.clone());
        }
    }
    shapes
}

/// The number of elements of a shape under the bound dimension sizes; `usize::MAX` for
/// a shape too large to count (a call with such dimensions is refused, see
/// [`Kernel::check_dims`]) or a dimension `dims` does not have.
pub fn numel(shape: &[Dim], dims: &[usize]) -> usize {
    shape
        .iter()
        .try_fold(1usize, |n, &d| {
            crate::shape::dim_size(d, dims).and_then(|size| n.checked_mul(size))
        })
        .unwrap_or(usize::MAX)
}

fn dim_size(d: Dim, dims: &[usize]) -> usize {
    crate::shape::dim_size(d, dims).unwrap_or(usize::MAX)
}

impl Kernel {
    /// The number of symbolic dimensions a call binds.
    pub fn n_dims(&self) -> usize {
        self.n_dims
    }

    /// The number of elements of result `r` under `dims`.
    pub fn result_len(&self, r: usize, dims: &[usize]) -> usize {
        numel(&self.results[r], dims)
    }

    /// The number of results.
    pub fn n_results(&self) -> usize {
        self.results.len()
    }

    /// Arena bytes a call with these dimensions needs (`usize::MAX` if they are too
    /// large, see [`Kernel::check_dims`]).
    pub fn arena_bytes(&self, dims: &[usize]) -> usize {
        layout(&self.buffers, dims).1
    }

    /// Checks the number of dimensions and that every value the code computes or
    /// reads has at most [`MAX_ELEMENTS`] elements and no larger dimension under
    /// `dims` (the limit the interpreter enforces): after this, no size derived from
    /// `dims` overflows. Does not allocate.
    pub fn check_dims(&self, dims: &[usize]) -> Result<(), JitError> {
        if dims.len() != self.n_dims {
            return Err(JitError::BadCall(format!(
                "{} dimensions given, {} expected",
                dims.len(),
                self.n_dims
            )));
        }
        if let Some(&d) = dims.iter().find(|&&d| d > MAX_ELEMENTS) {
            return Err(JitError::BadCall(format!(
                "a dimension of size {d} is too large (more than {MAX_ELEMENTS})"
            )));
        }
        for shape in &self.shapes {
            if checked_numel(shape, dims).is_none() {
                let sizes: Vec<u64> = shape
                    .iter()
                    .map(|&d| match d {
                        Dim::Const(n) => n,
                        Dim::Sym(v) => dims[v.0 as usize] as u64,
                    })
                    .collect();
                return Err(JitError::BadCall(format!(
                    "a value of shape {sizes:?} is too large to evaluate (more than \
                     {MAX_ELEMENTS} elements)"
                )));
            }
        }
        Ok(())
    }

    /// Grows `workspace` for a call at `dims` (already checked by
    /// [`Kernel::check_dims`]), reporting an allocation failure as an error rather than
    /// aborting; the call then finds its arena ready.
    pub fn reserve(&self, dims: &[usize], workspace: &mut Workspace) -> Result<(), JitError> {
        Kernel::reserve_all(&[self], dims, workspace)
    }

    /// [`Kernel::reserve`] for several kernels that share `workspace` (forward and
    /// gradient), growing the arena once to the largest need: growing it for each in
    /// turn would copy it and map fresh pages twice.
    pub fn reserve_all(
        kernels: &[&Kernel],
        dims: &[usize],
        workspace: &mut Workspace,
    ) -> Result<(), JitError> {
        let mut lines = 0;
        for kernel in kernels.iter().filter(|k| !k.buffers.is_empty()) {
            let index = workspace.cached_layout(kernel, dims);
            lines = lines.max(workspace.layouts[index].lines);
        }
        workspace.grow(lines)
    }

    /// Runs the kernel after checking everything the machine code relies on: the
    /// number of dimensions, every argument's element type and length, every index's
    /// range, and every result buffer's length. Results are written into `results`.
    pub fn call(
        &self,
        dims: &[usize],
        args: &[ArgData<'_>],
        results: &mut [&mut [f64]],
        workspace: &mut Workspace,
    ) -> Result<(), JitError> {
        self.check_call(dims, args, results)?;
        self.reserve(dims, workspace)?;
        workspace.arg_ptrs.clear();
        workspace.arg_ptrs.extend(args.iter().map(|a| match a {
            ArgData::Real(x) => x.as_ptr() as usize,
            ArgData::Int(x) => x.as_ptr() as usize,
        }));
        workspace.result_ptrs.clear();
        workspace
            .result_ptrs
            .extend(results.iter_mut().map(|r| r.as_mut_ptr() as usize));
        let (args_ptr, results_ptr) = (
            workspace.arg_ptrs.as_ptr() as *const *const u8,
            workspace.result_ptrs.as_ptr() as *const *mut f64,
        );
        // SAFETY: `check_call` validated every length and index against `dims`; the
        // pointer tables live in the workspace, which `call_raw` does not touch.
        unsafe { self.call_raw(dims, args_ptr, results_ptr, workspace) };
        Ok(())
    }

    /// Validates a call (see [`Kernel::call`]).
    pub fn check_call(
        &self,
        dims: &[usize],
        args: &[ArgData<'_>],
        results: &[&mut [f64]],
    ) -> Result<(), JitError> {
        self.check_args(dims, args)?;
        if results.len() != self.results.len() {
            return Err(JitError::BadCall(format!(
                "{} result buffers given, {} expected",
                results.len(),
                self.results.len()
            )));
        }
        for (r, (buf, shape)) in results.iter().zip(&self.results).enumerate() {
            let expected = numel(shape, dims);
            if buf.len() != expected {
                return Err(JitError::BadCall(format!(
                    "result {r}: buffer of {} elements, {expected} expected",
                    buf.len()
                )));
            }
        }
        Ok(())
    }

    /// Validates the dimensions and arguments of a call: counts, element types,
    /// lengths and index ranges.
    pub fn check_args(&self, dims: &[usize], args: &[ArgData<'_>]) -> Result<(), JitError> {
        self.check_dims(dims)?;
        let expected = self
            .args
            .iter()
            .map(|(elem, shape)| (*elem, numel(shape, dims)));
        check_arg_slices(&self.arg_names, expected, args).map_err(JitError::Call)?;
        self.check_indices(dims, args)
    }

    /// Checks the range of every index argument and literal (arguments already have
    /// the right types and lengths).
    pub fn check_indices(&self, dims: &[usize], args: &[ArgData<'_>]) -> Result<(), JitError> {
        for (k, bound, target) in &self.index_args {
            let bound = dim_size(*bound, dims);
            if let ArgData::Int(indices) = args[*k] {
                if let Some(pos) = indices.iter().position(|&i| i < 0 || i as usize >= bound) {
                    let name = &self.arg_names[*k];
                    let index = if self.args[*k].1.is_empty() {
                        format!("`{name}`")
                    } else {
                        format!("`{name}`[{pos}]")
                    };
                    return Err(JitError::Call(CallError::IndexOutOfRange {
                        index,
                        value: indices[pos],
                        target: target.with_limit(bound as u64),
                    }));
                }
            }
        }
        for (n, bound, target) in &self.index_literals {
            let bound = dim_size(*bound, dims);
            if *n < 0 || *n as usize >= bound {
                return Err(JitError::Call(CallError::LiteralIndexOutOfRange {
                    value: *n,
                    target: target.with_limit(bound as u64),
                }));
            }
        }
        Ok(())
    }

    /// Runs the machine code with no checks.
    ///
    /// # Safety
    /// `dims` must have [`Kernel::n_dims`] entries; `args` must point to one pointer per
    /// argument, each addressing the argument's full data (its shape under `dims`, `f64`
    /// or `i64`) with every index in range; `results` must point to one pointer per
    /// result, each addressing a writable buffer of the result's size, not overlapping
    /// any argument or other result. [`Kernel::check_call`] checks all of this for
    /// slices.
    pub unsafe fn call_raw(
        &self,
        dims: &[usize],
        args: *const *const u8,
        results: *const *mut f64,
        workspace: &mut Workspace,
    ) {
        let (arena, offsets) = if self.buffers.is_empty() {
            (std::ptr::null_mut(), std::ptr::null())
        } else {
            workspace.prepare(self, dims)
        };
        let run = || {
            // SAFETY: the caller upholds the data contract; `usize` and `i64` have the
            // same layout on the 64-bit hosts Cranelift-native supports; the arena holds
            // every planned buffer at its offset.
            unsafe { (self.entry)(dims.as_ptr() as *const i64, args, results, arena, offsets) }
        };
        if self.stack_bytes <= SMALL_FRAME_BYTES {
            run();
        } else {
            // A long scalar program spills megabytes: give it that much stack (a fresh
            // segment when this thread's is short), as rustc does for deep recursion.
            let need = self.stack_bytes + RUNTIME_STACK_BYTES;
            stacker::maybe_grow(need, need, run);
        }
    }
}

/// Native frames up to this size run on the caller's stack as they are, like any
/// function call.
const SMALL_FRAME_BYTES: usize = 64 << 10;

/// Stack kept free, beyond the native frames, for the runtime functions they call (the
/// matrix product, the thread hand-over).
const RUNTIME_STACK_BYTES: usize = 256 << 10;

/// Buffer offsets (bytes, 64-aligned) and the total arena size for `dims`: greedy
/// placement by decreasing size, each at the lowest offset free of every placed buffer
/// whose live range overlaps its own.
fn layout(buffers: &[BufferDecl], dims: &[usize]) -> (Vec<i64>, usize) {
    let sizes: Vec<usize> = buffers
        .iter()
        .map(|b| {
            numel(&b.shape, dims)
                .checked_mul(8)
                .and_then(|bytes| bytes.checked_next_multiple_of(64))
                .unwrap_or(usize::MAX)
        })
        .collect();
    if buffers.len() > GREEDY_LAYOUT_BUFFERS {
        return layout_in_time_order(buffers, &sizes);
    }
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    order.sort_by_key(|&k| (std::cmp::Reverse(sizes[k]), k));
    let mut offsets = vec![0i64; buffers.len()];
    let mut placed: Vec<usize> = Vec::with_capacity(buffers.len());
    let mut total = 0usize;
    for &k in &order {
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&p| {
                buffers[p].first <= buffers[k].last && buffers[k].first <= buffers[p].last
            })
            .map(|&p| {
                let start = offsets[p] as usize;
                (start, start.saturating_add(sizes[p]))
            })
            .collect();
        busy.sort_unstable();
        let mut offset = 0usize;
        for (start, end) in busy {
            if offset.saturating_add(sizes[k]) <= start {
                break;
            }
            offset = offset.max(end);
        }
        offsets[k] = offset as i64;
        total = total.max(offset.saturating_add(sizes[k]));
        placed.push(k);
    }
    (offsets, total)
}

/// Above this many buffers, [`layout`] places them in the order they become live
/// instead: its greedy placement compares every buffer with every one placed before it,
/// which took a second for a gradient keeping 20,000 values for its backward pass.
const GREEDY_LAYOUT_BUFFERS: usize = 512;

/// [`layout`] in time `O(n log n)`: buffers in the order they become live, each in the
/// smallest block freed by a buffer dead before it that is large enough, or else at the
/// end of the arena.
fn layout_in_time_order(buffers: &[BufferDecl], sizes: &[usize]) -> (Vec<i64>, usize) {
    use std::cmp::Reverse;
    use std::collections::{BTreeMap, BinaryHeap};
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    order.sort_by_key(|&k| (buffers[k].first, k));
    let mut offsets = vec![0i64; buffers.len()];
    // Blocks in use, soonest dead first: (last position, offset, block size).
    let mut live: BinaryHeap<Reverse<(usize, usize, usize)>> = BinaryHeap::new();
    // Free blocks by size: offsets.
    let mut free: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut total = 0usize;
    for k in order {
        while let Some(&Reverse((last, offset, size))) = live.peek() {
            if last >= buffers[k].first {
                break;
            }
            live.pop();
            free.entry(size).or_default().push(offset);
        }
        let reused = free
            .range_mut(sizes[k]..)
            .next()
            .and_then(|(&size, offsets)| {
                let offset = offsets.pop()?;
                Some((size, offset, offsets.is_empty()))
            });
        let (offset, size) = match reused {
            Some((size, offset, emptied)) => {
                if emptied {
                    free.remove(&size);
                }
                (offset, size)
            }
            None => {
                let offset = total;
                total = total.saturating_add(sizes[k]);
                (offset, sizes[k])
            }
        };
        offsets[k] = offset as i64;
        live.push(Reverse((buffers[k].last, offset, size)));
    }
    (offsets, total)
}

/// 64 bytes, 64-aligned: the arena's unit, so every buffer starts on a cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// A cached arena layout: for one kernel and one set of dimensions.
#[derive(Clone, Debug)]
struct CachedLayout {
    kernel_id: u64,
    dims: Vec<usize>,
    offsets: Vec<i64>,
    /// Arena lines the layout needs.
    lines: usize,
}

/// Scratch memory for calls: the arena for intermediate buffers and the cached buffer
/// layouts. Reuse one across calls (one per thread); it grows to the largest need and
/// then never allocates again for dimensions it has seen.
#[derive(Default)]
pub struct Workspace {
    /// Never read from Rust: every buffer a kernel reads, it (or an earlier item of the same
    /// call) has written, so the arena needs no zeroing (growing it touches no memory).
    arena: Vec<std::mem::MaybeUninit<Line>>,
    layouts: Vec<CachedLayout>,
    arg_ptrs: Vec<usize>,
    result_ptrs: Vec<usize>,
}

impl fmt::Debug for Workspace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workspace")
            .field("arena_bytes", &self.arena_bytes())
            .field("layouts", &self.layouts.len())
            .finish()
    }
}

/// Layouts kept per workspace (forward and gradient at a few batch sizes).
const MAX_CACHED_LAYOUTS: usize = 8;

impl Workspace {
    /// An empty workspace.
    pub fn new() -> Workspace {
        Workspace::default()
    }

    /// The bytes of arena currently held.
    pub fn arena_bytes(&self) -> usize {
        self.arena.len() * std::mem::size_of::<Line>()
    }

    /// The index of the cached layout of `kernel` at `dims`, computing it and growing
    /// the arena if needed (allocates only for a layout not seen before); an error if
    /// the arena cannot be allocated. `dims` must have passed [`Kernel::check_dims`].
    fn layout_index(&mut self, kernel: &Kernel, dims: &[usize]) -> Result<usize, JitError> {
        let index = self.cached_layout(kernel, dims);
        self.grow(self.layouts[index].lines)?;
        Ok(index)
    }

    /// The index of the cached layout of `kernel` at `dims`, computed if not seen before
    /// (the arena is not grown).
    fn cached_layout(&mut self, kernel: &Kernel, dims: &[usize]) -> usize {
        if let Some(k) = self
            .layouts
            .iter()
            .position(|l| l.kernel_id == kernel.id && l.dims == dims)
        {
            return k;
        }
        let (offsets, bytes) = layout(&kernel.buffers, dims);
        if self.layouts.len() == MAX_CACHED_LAYOUTS {
            self.layouts.remove(0);
        }
        self.layouts.push(CachedLayout {
            kernel_id: kernel.id,
            dims: dims.to_vec(),
            offsets,
            lines: bytes.div_ceil(64),
        });
        self.layouts.len() - 1
    }

    /// Grows the arena to `lines` lines (uninitialised) if it is shorter; an error if it
    /// cannot be allocated.
    fn grow(&mut self, lines: usize) -> Result<(), JitError> {
        if self.arena.len() < lines {
            let more = lines - self.arena.len();
            self.arena.try_reserve_exact(more).map_err(|_| {
                JitError::BadCall(format!(
                    "cannot allocate {} bytes of workspace for the intermediate values",
                    lines * size_of::<Line>()
                ))
            })?;
            // SAFETY: the capacity was reserved above; `MaybeUninit` needs no initialising.
            unsafe { self.arena.set_len(lines) };
        }
        Ok(())
    }

    /// The arena base and the buffer offsets for `kernel` at `dims`, growing the arena
    /// if needed (see [`Workspace::layout_index`]; checked callers have reserved it
    /// with [`Kernel::reserve`] already).
    ///
    /// # Panics
    /// If the arena cannot be allocated.
    fn prepare(&mut self, kernel: &Kernel, dims: &[usize]) -> (*mut u8, *const i64) {
        let index = self
            .layout_index(kernel, dims)
            .unwrap_or_else(|e| panic!("{e}"));
        (
            self.arena.as_mut_ptr() as *mut u8,
            self.layouts[index].offsets.as_ptr(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_reuses_memory_of_dead_buffers() {
        let shape = vec![Dim::Const(8)];
        let buffers = vec![
            BufferDecl {
                shape: shape.clone(),
                first: 1,
                last: 2,
            },
            BufferDecl {
                shape: shape.clone(),
                first: 3,
                last: 4,
            },
            BufferDecl {
                shape,
                first: 2,
                last: 3,
            },
        ];
        let (offsets, total) = layout(&buffers, &[]);
        assert_eq!(offsets[0], offsets[1]);
        assert_ne!(offsets[0], offsets[2]);
        assert_eq!(total, 128);
    }

    #[test]
    fn many_buffers_are_laid_out_without_overlap_among_the_live() {
        // A chain keeping every value for its backward pass, with short-lived
        // temporaries of other sizes between: more than the greedy placement takes.
        let buffers: Vec<BufferDecl> = (0..3 * GREEDY_LAYOUT_BUFFERS)
            .map(|k| BufferDecl {
                shape: vec![Dim::Const(1 + (k as u64 % 5) * 3)],
                first: k,
                last: if k % 3 == 0 { 10_000 - k } else { k + 2 },
            })
            .collect();
        let (offsets, total) = layout(&buffers, &[]);
        let bytes = |k: usize| (1 + (k % 5) * 3) * 8;
        for a in 0..buffers.len() {
            assert!(offsets[a] as usize % 64 == 0);
            assert!(offsets[a] as usize + bytes(a) <= total);
            for b in 0..a {
                let live_together =
                    buffers[a].first <= buffers[b].last && buffers[b].first <= buffers[a].last;
                let (sa, sb) = (offsets[a] as usize, offsets[b] as usize);
                let disjoint = sa + bytes(a) <= sb || sb + bytes(b) <= sa;
                assert!(!live_together || disjoint, "buffers {a} and {b} overlap");
            }
        }
        // The temporaries reuse memory: far less than every buffer apart.
        let apart: usize = (0..buffers.len())
            .map(|k| bytes(k).next_multiple_of(64))
            .sum();
        assert!(total < apart / 2, "{total} of {apart}");
    }
}
