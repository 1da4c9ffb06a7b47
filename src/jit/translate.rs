//! IR → Cranelift IR, following a [`Plan`].
//!
//! In: a verified [`Function`], its [`Plan`], a fresh `FunctionBuilder` whose signature
//! is [`super::entry_signature`], and the runtime imports. Out: the body of the entry
//! function, finished (`FunctionBuilder::finalize` has run).
//!
//! The entry function takes five pointers: `dims` (one `i64` per symbolic dimension),
//! `args` (one pointer per argument: `f64`/`i64` data), `results` (one `f64` pointer
//! per result), `arena` (the workspace) and `offsets` (one byte offset into the arena
//! per planned buffer). Scalars live in registers; each planned group becomes one loop
//! nest whose inner loop runs two lanes at a time (`F64X2`) when every operand is
//! contiguous or broadcast along it, with a one-lane tail loop; every elementwise op is
//! lowered by [`Translator::lower_elementwise`], one `match` shared by scalar code and
//! both loop widths.

use std::collections::{HashMap, HashSet};

use cranelift::codegen::ir::{FuncRef, StackSlot, StackSlotData, StackSlotKind, Type as ClifType};
use cranelift::prelude::{
    types, FloatCC, FunctionBuilder, InstBuilder, IntCC, MemFlagsData, Value as ClifValue, Variable,
};
use cranelift_jit::JITModule;
use cranelift_module::{FuncId, Linkage, Module};

use super::math::{self, MathFn, MathOptions};
use super::parallel;
use super::plan::{self, Access, Item, Node, Plan, ReduceKind, ResultWrite, Storage, Stride};
use super::runtime;
use crate::ir::{BinaryOp, CmpOp, Dim, Elem, Function, Op, ReduceOp, UnaryOp, Value};

/// Transcendentals inline ([`math`]) rather than as libm calls.
const INLINE_MATH: bool = true;

/// Straight-line code with more transcendentals than this calls libm for them.
const MAX_INLINE_SCALAR_MATH: usize = 16;

/// Lanes per SIMD operation in the vectorised loops.
const LANES: i64 = 2;

/// Elements per block where a vectorised loop evaluates its transcendentals through the
/// runtime's four-lane kernels ([`runtime::block_math_fn`]): small enough that the
/// blocks' buffers stay in L1 next to the loop's other data.
const BLOCK: i64 = 256;

/// Byte offsets of an accumulator's two-lane and one-lane parts in its stack slot (see
/// [`Translator::emit_blocked_inner`]).
const ACC_VECTOR: i32 = 0;
const ACC_SCALAR: i32 = 16;

/// Emits the entry function of `func` into `bcx`.
pub(crate) fn translate(
    func: &Function,
    plan: &Plan,
    bcx: FunctionBuilder<'_>,
    module: &mut JITModule,
    imports: &mut HashMap<&'static str, FuncId>,
    range_fns: &HashMap<usize, FuncId>,
) {
    // Many transcendentals in straight-line code would make a large function to compile
    // (each inline function is tens of instructions): call libm there instead.
    let scalar_math = plan
        .items
        .iter()
        .filter(|item| match item {
            Item::Scalar(v) => {
                matches!(func.op(*v), Op::Unary(u, _) if runtime::math_symbol(*u).is_some())
            }
            _ => false,
        })
        .count();
    let call_scalar_math = scalar_math > MAX_INLINE_SCALAR_MATH;
    let trig_partners = if call_scalar_math {
        trig_partners(func, plan)
    } else {
        HashMap::new()
    };
    let mut t = Translator::new(func, plan, bcx, module, imports);
    t.call_scalar_math = call_scalar_math;
    t.trig_partners = trig_partners;
    t.range_fns = range_fns.clone();
    t.emit_entry();
    for &item in &plan.items {
        match item {
            Item::Scalar(v) => t.emit_scalar(v),
            Item::Group(g) => t.emit_group(g),
            Item::Kernel(v) => t.emit_kernel(v),
        }
    }
    t.emit_results();
    t.bcx.ins().return_(&[]);
    t.bcx.seal_all_blocks();
    let config = t.module.target_config();
    t.bcx.finalize(config);
}

/// The groups compiled as range functions of their own (see [`translate_range_fn`]):
/// those over a symbolic or large domain. Loops are compiled apart from straight-line
/// code (with the better register allocator), and those whose iterations write
/// disjoint memory ([`splittable`]) may be split across threads.
pub(crate) fn range_groups(plan: &Plan) -> Vec<usize> {
    (0..plan.groups.len())
        .filter(|&g| {
            let group = &plan.groups[g];
            let symbolic = group.domain.iter().any(|d| matches!(d, Dim::Sym(_)));
            let elements: i64 = group
                .domain
                .iter()
                .map(|d| match d {
                    Dim::Const(n) => i64::try_from(*n).unwrap_or(i64::MAX),
                    Dim::Sym(_) => 1,
                })
                // A huge literal size is refused at call time; here it only must not
                // overflow.
                .fold(1i64, i64::saturating_mul);
            symbolic || elements >= MIN_RANGE_ELEMENTS
        })
        .collect()
}

/// True if the iterations of group `g`'s outer range write disjoint memory, so that
/// the range may be split (column reductions accumulate into one shared row).
fn splittable(plan: &Plan, g: usize) -> bool {
    !plan.groups[g]
        .members
        .iter()
        .any(|&m| plan.nodes[m.index()] == Node::Reduce(g, ReduceKind::Cols))
}

/// Constant domains smaller than this always run inline.
const MIN_RANGE_ELEMENTS: i64 = 4096;

/// Emits the range function of group `g` into `bcx` (signature
/// `super::range_signature`): `(ctx, start, end, partials)` runs the nest's outer range
/// `[start, end)`. `ctx` holds 8-byte words: the `dims` pointer, the nest's memory
/// pointers ([`nest_pointers`] order), then its non-literal scalar
/// operands; `partials` receives each full reduction's result. The code depends only
/// on the nest's shape, not on which buffers it reads and writes, so nests of the
/// same shape (the layers of a deep network) compile to identical functions.
pub(crate) fn translate_range_fn(
    func: &Function,
    plan: &Plan,
    g: usize,
    bcx: FunctionBuilder<'_>,
    module: &mut JITModule,
    imports: &mut HashMap<&'static str, FuncId>,
) {
    let mut t = Translator::new(func, plan, bcx, module, imports);
    let range = t.emit_range_entry(g);
    t.emit_nest(g, Some(range));
    t.bcx.ins().return_(&[]);
    t.bcx.seal_all_blocks();
    let config = t.module.target_config();
    t.bcx.finalize(config);
}

/// The domain strides of a strided operand of a group (dropping its 1 axes).
fn domain_strides(func: &Function, u: Value, strides: &[Stride]) -> Vec<Stride> {
    func.ty(u)
        .shape
        .iter()
        .zip(strides)
        .filter(|(d, _)| !d.is_one())
        .map(|(_, s)| *s)
        .collect()
}

/// Every operand a group reads from outside itself, in first-use order.
fn group_reads(func: &Function, plan: &Plan, g: usize) -> Vec<Value> {
    let group = &plan.groups[g];
    let mut reads = Vec::new();
    for &m in &group.members {
        for u in func.op(m).operands() {
            if !matches!(plan.nodes[plan.resolve(u).index()], Node::Member(h) if h == g) {
                reads.push(u);
            }
        }
    }
    reads.extend(group.copies.iter().map(|&(v, _)| v));
    reads
}

/// The memory pointers of group `g`'s nest (its `loads` from [`group_operands`]), each
/// once: its loads' bases, its stored members, its copy targets.
fn nest_pointers(plan: &Plan, g: usize, loads: &[LoadSpec]) -> Vec<NestPtr> {
    let group = &plan.groups[g];
    let mut pointers: Vec<NestPtr> = Vec::new();
    let stored = group
        .members
        .iter()
        .filter(|&&m| plan.storage[m.index()].is_some())
        .map(|&m| NestPtr::Stored(m));
    let all = loads
        .iter()
        .map(|l| NestPtr::Stored(l.base))
        .chain(stored)
        .chain(group.copies.iter().map(|&(_, r)| NestPtr::Copy(r)));
    for p in all {
        if !pointers.contains(&p) {
            pointers.push(p);
        }
    }
    pointers
}

/// The families of `blocked` members that share one exponential: sigmoids and softpluses
/// of one value or of its negation, evaluated after the same pass (`pass_of`). Each
/// family of two or more is its lead's index in `blocked` and, per output of
/// [`math::EXP_FAMILY`] (relative to the lead's argument), the index of the member it
/// computes. A member whose output is taken already keeps its own call.
fn exp_families(
    func: &Function,
    plan: &Plan,
    blocked: &[Value],
    pass_of: impl Fn(Value) -> usize,
) -> Vec<(usize, [Option<usize>; 4])> {
    // The value whose exp(-|t|) a sigmoid or softplus takes, and whether its argument is
    // the negation of that value.
    let source = |m: Value| -> Option<(MathFn, Value, bool)> {
        let Op::Unary(u @ (UnaryOp::Sigmoid | UnaryOp::Softplus), x) = *func.op(m) else {
            return None;
        };
        let f = runtime::math_fn(u)?;
        let x = plan.resolve(x);
        Some(match *func.op(x) {
            Op::Unary(UnaryOp::Neg, y) => (f, plan.resolve(y), true),
            _ => (f, x, false),
        })
    };
    /// A family as it is gathered.
    struct Family {
        source: Value,
        pass: usize,
        lead_negated: bool,
        lead: usize,
        outputs: [Option<usize>; 4],
    }
    let mut families: Vec<Family> = Vec::new();
    for (i, &b) in blocked.iter().enumerate() {
        let Some((f, t, negated)) = source(b) else {
            continue;
        };
        let pass = pass_of(b);
        let family = families
            .iter_mut()
            .find(|family| family.source == t && family.pass == pass);
        let lead_negated = family
            .as_ref()
            .map_or(negated, |family| family.lead_negated);
        let output = math::EXP_FAMILY
            .iter()
            .position(|&member| member == (f, negated != lead_negated))
            .expect("every sigmoid and softplus, either way round, is a member");
        match family {
            Some(family) if family.outputs[output].is_none() => family.outputs[output] = Some(i),
            Some(_) => {}
            None => {
                let mut outputs = [None; 4];
                outputs[output] = Some(i);
                families.push(Family {
                    source: t,
                    pass,
                    lead_negated: negated,
                    lead: i,
                    outputs,
                });
            }
        }
    }
    families
        .into_iter()
        .filter(|family| family.outputs.iter().flatten().count() > 1)
        .map(|family| (family.lead, family.outputs))
        .collect()
}

/// The strided operands of a group (deduplicated, first-use order), its scalar
/// operands, and whether it runs as one flat loop.
fn group_operands(func: &Function, plan: &Plan, g: usize) -> (Vec<LoadSpec>, Vec<Value>, bool) {
    let group = &plan.groups[g];
    let domain = &group.domain;
    let mut loads: Vec<LoadSpec> = Vec::new();
    let mut scalar_reads: Vec<Value> = Vec::new();
    for u in group_reads(func, plan, g) {
        match plan.access(func, u) {
            Access::Scalar(s) => {
                let s = plan.resolve(s);
                if !scalar_reads.contains(&s) {
                    scalar_reads.push(s);
                }
            }
            Access::Strided(base, strides) => {
                let spec = LoadSpec::of(func, u, base, &strides);
                if !loads.contains(&spec) {
                    loads.push(spec);
                }
            }
        }
    }
    let has_axis_reductions = group.members.iter().any(|&m| {
        matches!(
            plan.nodes[m.index()],
            Node::Reduce(_, ReduceKind::Rows | ReduceKind::Cols)
        )
    });
    // A rank-2 nest whose operands are all dense or constant runs as one flat loop.
    let flat = domain.len() == 2
        && !has_axis_reductions
        && loads.iter().all(|l| {
            l.strides == [Stride::Dim(domain[1]), Stride::One]
                || l.strides == [Stride::Zero, Stride::Zero]
        });
    (loads, scalar_reads, flat)
}

/// Everything [`translate_range_fn`] reads of group `g`, with each value named by its
/// role in the nest (member `i`, load `k`, scalar slot `j`, or a literal): groups with the
/// same key translate to the same function, so only the first of them is translated.
pub(crate) fn nest_key(func: &Function, plan: &Plan, g: usize) -> String {
    use std::fmt::Write;
    let group = &plan.groups[g];
    let (loads, scalar_reads, _) = group_operands(func, plan, g);
    let member = |w: Value| group.members.iter().position(|&m| m == w);
    let token = |u: Value| -> String {
        let w = plan.resolve(u);
        let elem = func.ty(u).elem;
        if plan.nodes[w.index()] == Node::Member(g) {
            let i = member(w).expect("compiler bug: member outside its group");
            return format!("m{i}:{elem:?}");
        }
        match plan.access(func, u) {
            Access::Scalar(s) => {
                let s = plan.resolve(s);
                match *func.op(s) {
                    Op::Const(c) => format!("c{c:?}:{elem:?}"),
                    Op::ConstInt(n) => format!("i{n}:{elem:?}"),
                    _ => {
                        let j = scalar_reads.iter().position(|&r| r == s);
                        format!("s{j:?}:{:?}:{elem:?}", func.ty(s).elem)
                    }
                }
            }
            Access::Strided(base, strides) => {
                let spec = LoadSpec::of(func, u, base, &strides);
                let k = loads.iter().position(|l| *l == spec);
                format!("l{k:?}:{elem:?}")
            }
        }
    };
    let base_of = |v: Value| loads.iter().position(|l| l.base == v);
    let mut key = format!("{:?};", group.domain);
    for l in &loads {
        let _ = write!(key, "L{:?}{:?}b{:?};", l.strides, l.elem, base_of(l.base));
    }
    for &s in &scalar_reads {
        let _ = match *func.op(s) {
            Op::Const(c) => write!(key, "S{c:?};"),
            Op::ConstInt(n) => write!(key, "S{n};"),
            _ => write!(key, "S{:?};", func.ty(s).elem),
        };
    }
    for &m in &group.members {
        let op = func.op(m);
        let node = match plan.nodes[m.index()] {
            Node::Reduce(_, kind) => format!("{kind:?}"),
            _ => String::new(),
        };
        let _ = write!(
            key,
            "M{:?}{:?}{node}{};",
            op.map_operands(|_| Value(0)),
            func.ty(m),
            plan.storage[m.index()].is_some()
        );
        for u in op.operands() {
            let _ = write!(key, "{},", token(u));
        }
    }
    for &(v, _) in &group.copies {
        let _ = write!(key, "C{};", token(v));
    }
    for p in nest_pointers(plan, g, &loads) {
        let _ = match p {
            NestPtr::Stored(v) => write!(key, "P{:?}{:?};", member(v), base_of(v)),
            NestPtr::Copy(r) => write!(key, "P{:?};", group.copies.iter().position(|c| c.1 == r)),
        };
    }
    key
}

/// A memory pointer a loop nest uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum NestPtr {
    /// The first element of a stored value (read or written).
    Stored(Value),
    /// The caller's buffer of result `r` (a copy target).
    Copy(usize),
}

/// True for the ops a range function rematerialises rather than reading from `ctx`.
fn is_literal_op(op: &Op) -> bool {
    matches!(op, Op::Const(_) | Op::ConstInt(_))
}

/// The outer range of a nest in a range function, and where its reductions go.
#[derive(Clone, Copy)]
struct NestRange {
    start: ClifValue,
    end: ClifValue,
    partials: ClifValue,
}

/// Flags for loads and stores of 8-byte aligned scalars the plan proves in bounds.
fn scalar_flags() -> MemFlagsData {
    MemFlagsData::trusted()
}

/// Flags for two-lane accesses: in bounds, but only 8-byte aligned (so never `aligned`,
/// which would let the backend fold them into SSE instructions that need 16).
fn vector_flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// Where one entry-function parameter is.
#[derive(Clone, Copy)]
enum Param {
    Dims = 0,
    Args = 1,
    Results = 2,
    Arena = 3,
    Offsets = 4,
}

/// Pairs of straight-line scalar `sin(x)` and `cos(x)` of the same argument, each
/// mapped to the other.
fn trig_partners(func: &Function, plan: &Plan) -> HashMap<Value, Value> {
    let mut first: HashMap<(Value, UnaryOp), Value> = HashMap::new();
    let mut partners = HashMap::new();
    for item in &plan.items {
        let Item::Scalar(v) = *item else { continue };
        let Op::Unary(u @ (UnaryOp::Sin | UnaryOp::Cos), x) = *func.op(v) else {
            continue;
        };
        let x = plan.resolve(x);
        let other = if u == UnaryOp::Sin {
            UnaryOp::Cos
        } else {
            UnaryOp::Sin
        };
        match first.get(&(x, other)) {
            Some(&w) if !partners.contains_key(&w) => {
                partners.insert(v, w);
                partners.insert(w, v);
            }
            _ => {
                first.entry((x, u)).or_insert(v);
            }
        }
    }
    partners
}

struct Translator<'a, 'b> {
    /// Whether one-lane transcendentals call libm rather than being inlined.
    call_scalar_math: bool,
    /// Whether vectorised loops may evaluate transcendentals on blocks through the
    /// runtime's four-lane kernels (the host has them).
    block_math: bool,
    math_options: MathOptions,
    func: &'a Function,
    plan: &'a Plan,
    bcx: FunctionBuilder<'b>,
    module: &'a mut JITModule,
    imports: &'a mut HashMap<&'static str, FuncId>,
    /// The range functions of the groups compiled apart.
    range_fns: HashMap<usize, FuncId>,
    /// In a range function: the memory pointers of its nest, read from `ctx`.
    nest_ptrs: HashMap<NestPtr, ClifValue>,
    func_refs: HashMap<&'static str, FuncRef>,
    /// The range functions referred to so far (several nests may share one).
    nest_refs: HashMap<FuncId, FuncRef>,
    params: [Option<ClifValue>; 5],
    /// The size of every symbolic dimension, loaded at entry.
    dims: Vec<ClifValue>,
    /// The register holding each scalar value, once computed.
    scalars: Vec<Option<ClifValue>>,
    /// Scalar sines and cosines of the same argument, each to the other: with libm calls
    /// one `sincos` call computes both.
    trig_partners: HashMap<Value, Value>,
    /// Constants and storage pointers made so far, with the block that holds each (reused
    /// there: straight-line entries would otherwise hold dozens of copies of each).
    block_values: HashMap<BlockValue, (cranelift::prelude::Block, ClifValue)>,
}

impl<'a, 'b> Translator<'a, 'b> {
    /// A translator with nothing emitted yet: inline scalar math, no range functions.
    fn new(
        func: &'a Function,
        plan: &'a Plan,
        bcx: FunctionBuilder<'b>,
        module: &'a mut JITModule,
        imports: &'a mut HashMap<&'static str, FuncId>,
    ) -> Self {
        Translator {
            call_scalar_math: false,
            block_math: INLINE_MATH && math::has_block_kernels(),
            math_options: MathOptions::for_isa(module.isa()),
            func,
            plan,
            bcx,
            module,
            imports,
            range_fns: HashMap::new(),
            nest_ptrs: HashMap::new(),
            func_refs: HashMap::new(),
            nest_refs: HashMap::new(),
            params: [None; 5],
            dims: Vec::new(),
            scalars: vec![None; func.len()],
            trig_partners: HashMap::new(),
            block_values: HashMap::new(),
        }
    }
}

/// One strided operand of a loop nest.
#[derive(Clone, Debug, PartialEq)]
struct LoadSpec {
    base: Value,
    /// One stride per domain axis.
    strides: Vec<Stride>,
    elem: Elem,
}

impl LoadSpec {
    /// How operand `u`, read from `base` with `strides` (one per axis of `u`), is loaded.
    fn of(func: &Function, u: Value, base: Value, strides: &[Stride]) -> LoadSpec {
        LoadSpec {
            base,
            strides: domain_strides(func, u, strides),
            elem: plan::elem(func, base),
        }
    }
}

/// What a loop nest needs while its bodies are emitted.
struct GroupState {
    loads: Vec<LoadSpec>,
    load_base: Vec<ClifValue>,
    /// Per load: bytes between consecutive inner elements, when not 0 or 8.
    load_inner_bytes: Vec<Option<ClifValue>>,
    /// Per load: the pointer to the current row.
    load_row: Vec<ClifValue>,
    /// Per load with inner stride 0: its value for the current row (one lane, two).
    load_invariant: Vec<Option<(ClifValue, Option<ClifValue>)>>,
    /// Scalar operands: (one lane, two lanes).
    splats: HashMap<Value, (ClifValue, Option<ClifValue>)>,
    /// Stored members and copy targets: base pointer and current row pointer.
    stores: HashMap<StoreKey, (ClifValue, ClifValue)>,
    /// Accumulators of `Full` and `Rows` reductions: (two lanes, one lane).
    accs: HashMap<Value, (Option<Variable>, Variable)>,
    rank: usize,
    flat: bool,
    vectorised: bool,
}

/// A dense array a loop nest writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum StoreKey {
    Member(Value),
    Copy(usize),
}

/// The blocks of one counted loop.
/// What one iteration of an inner loop has computed so far: the members' values and
/// the operands loaded (each loaded once however many members read it).
struct Lanes {
    j: ClifValue,
    j_bytes: ClifValue,
    members: HashMap<Value, ClifValue>,
    loaded: HashMap<usize, ClifValue>,
}

/// One pass over a block of a loop whose transcendentals are evaluated on blocks (see
/// [`Translator::emit_blocked_inner`]).
struct Phase {
    /// Whether this is the last pass: every member is computed, stored and reduced.
    last: bool,
    /// The members an earlier pass evaluated on blocks, each with its buffer's address
    /// minus the block's start in bytes (so element `j` is at `buffer + 8·j`).
    ready: HashMap<Value, ClifValue>,
    /// The members this pass computes (all of them in the last pass).
    needed: HashSet<Value>,
    /// The members whose argument this pass writes to their buffer.
    targets: Vec<(Value, ClifValue)>,
}

/// What [`Translator::in_block`] reuses within a block.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum BlockValue {
    Int(i64),
    /// The address of a stored value (the pointer tables do not change during a call).
    Storage(Storage),
    /// The number of elements of a shape.
    Numel(Vec<Dim>),
}

struct LoopBlocks {
    header: cranelift::codegen::ir::Block,
    exit: cranelift::codegen::ir::Block,
}

impl<'a, 'b> Translator<'a, 'b> {
    // ----- function entry, parameters, runtime calls -----

    fn param(&self, p: Param) -> ClifValue {
        self.params[p as usize].expect("compiler bug: entry parameters not set")
    }

    fn emit_entry(&mut self) {
        let entry = self.bcx.create_block();
        self.bcx.append_block_params_for_function_params(entry);
        self.bcx.switch_to_block(entry);
        self.bcx.seal_block(entry);
        let block_params = self.bcx.block_params(entry).to_vec();
        for (k, p) in block_params.into_iter().enumerate() {
            self.params[k] = Some(p);
        }
        let dims_ptr = self.param(Param::Dims);
        self.load_dims(dims_ptr);
        // Every scalar known at entry, computed once here so it dominates all uses.
        for (k, inst) in self.func.insts.iter().enumerate() {
            let v = Value(k as u32);
            if self.plan.nodes[k] != Node::Entry || !is_scalar_shape(&inst.ty.shape) {
                continue;
            }
            let value = match inst.op {
                Op::Const(c) => self.bcx.ins().f64const(c),
                Op::ConstInt(n) => self.bcx.ins().iconst(types::I64, n),
                Op::DimSize(d) => {
                    let size = self.dims[d.0 as usize];
                    self.bcx.ins().fcvt_from_sint(types::F64, size)
                }
                Op::Arg(a) => {
                    let args_ptr = self.param(Param::Args);
                    let ptr =
                        self.bcx
                            .ins()
                            .load(types::I64, scalar_flags(), args_ptr, (8 * a) as i32);
                    let ty = scalar_type(inst.ty.elem);
                    self.bcx.ins().load(ty, scalar_flags(), ptr, 0)
                }
                _ => unreachable!("compiler bug: {v} is not an entry value"),
            };
            self.scalars[k] = Some(value);
        }
    }

    /// Loads the size of every symbolic dimension from the array at `dims_ptr`.
    fn load_dims(&mut self, dims_ptr: ClifValue) {
        for d in 0..self.func.dims.len() {
            let size = self
                .bcx
                .ins()
                .load(types::I64, scalar_flags(), dims_ptr, (8 * d) as i32);
            self.dims.push(size);
        }
    }

    /// The entry block of a range function: unpacks `ctx` into the entry parameters,
    /// the dimensions and the scalar operands of group `g`.
    fn emit_range_entry(&mut self, g: usize) -> NestRange {
        let (loads, scalar_reads, _) = group_operands(self.func, self.plan, g);
        let entry = self.bcx.create_block();
        self.bcx.append_block_params_for_function_params(entry);
        self.bcx.switch_to_block(entry);
        self.bcx.seal_block(entry);
        let block_params = self.bcx.block_params(entry).to_vec();
        let ctx = block_params[0];
        let dims_ptr = self.bcx.ins().load(types::I64, scalar_flags(), ctx, 0);
        self.params[Param::Dims as usize] = Some(dims_ptr);
        self.load_dims(dims_ptr);
        let mut slot: i32 = 1;
        for p in nest_pointers(self.plan, g, &loads) {
            let pointer = self
                .bcx
                .ins()
                .load(types::I64, scalar_flags(), ctx, 8 * slot);
            self.nest_ptrs.insert(p, pointer);
            slot += 1;
        }

        for s in scalar_reads {
            let value = match *self.func.op(s) {
                Op::Const(c) => self.bcx.ins().f64const(c),
                Op::ConstInt(n) => self.bcx.ins().iconst(types::I64, n),
                _ => {
                    let ty = self.scalar_clif_type(s);
                    let value = self.bcx.ins().load(ty, scalar_flags(), ctx, 8 * slot);
                    slot += 1;
                    value
                }
            };
            self.scalars[s.index()] = Some(value);
        }
        NestRange {
            start: block_params[1],
            end: block_params[2],
            partials: block_params[3],
        }
    }

    /// The type of scalar `s` in a range function's context: `f64`, `i64`, or an `i8`
    /// truth value for a mask.
    fn scalar_clif_type(&self, s: Value) -> ClifType {
        match plan::elem(self.func, s) {
            Elem::Bool => types::I8,
            elem => scalar_type(elem),
        }
    }

    fn func_ref(&mut self, name: &'static str) -> FuncRef {
        if let Some(&f) = self.func_refs.get(name) {
            return f;
        }
        // Declared in the module at the kernel's first use: declaring every runtime
        // function up front cost a cold compile 40–100 µs per kernel.
        let id = match self.imports.get(name) {
            Some(&id) => id,
            None => {
                let symbol = runtime::symbols()
                    .into_iter()
                    .find(|s| s.name == name)
                    .unwrap_or_else(|| panic!("compiler bug: no runtime symbol {name}"));
                let sig = super::import_signature(self.module, &symbol.shape);
                let id = self
                    .module
                    .declare_function(name, Linkage::Import, &sig)
                    .unwrap_or_else(|e| panic!("compiler bug: declaring {name}: {e}"));
                self.imports.insert(name, id);
                id
            }
        };
        let f = self.module.declare_func_in_func(id, self.bcx.func);
        self.func_refs.insert(name, f);
        f
    }

    fn call(&mut self, name: &'static str, args: &[ClifValue]) -> Option<ClifValue> {
        let f = self.func_ref(name);
        let call = self.bcx.ins().call(f, args);
        self.bcx.inst_results(call).first().copied()
    }

    /// The value `key` stands for, made by `make` unless the current block has it already.
    fn in_block(
        &mut self,
        key: BlockValue,
        make: impl FnOnce(&mut Self) -> ClifValue,
    ) -> ClifValue {
        let block = self.bcx.current_block();
        if let Some(&(b, value)) = self.block_values.get(&key) {
            if Some(b) == block {
                return value;
            }
        }
        let value = make(self);
        if let Some(b) = block {
            self.block_values.insert(key, (b, value));
        }
        value
    }

    fn iconst(&mut self, n: i64) -> ClifValue {
        self.in_block(BlockValue::Int(n), |t| t.bcx.ins().iconst(types::I64, n))
    }

    fn dim(&mut self, d: Dim) -> ClifValue {
        match d {
            Dim::Const(n) => self.iconst(n as i64),
            Dim::Sym(var) => self.dims[var.0 as usize],
        }
    }

    fn stride(&mut self, s: Stride) -> ClifValue {
        match s {
            Stride::Zero => self.iconst(0),
            Stride::One => self.iconst(1),
            Stride::Dim(d) => self.dim(d),
        }
    }

    fn numel(&mut self, shape: &[Dim]) -> ClifValue {
        self.in_block(BlockValue::Numel(shape.to_vec()), |t| {
            let Some((&first, rest)) = shape.split_first() else {
                return t.iconst(1);
            };
            let mut n = t.dim(first);
            for &d in rest {
                let size = t.dim(d);
                n = t.bcx.ins().imul(n, size);
            }
            n
        })
    }

    /// The address of a stored value's first element.
    fn storage_ptr(&mut self, v: Value) -> ClifValue {
        let storage = self.plan.storage[v.index()]
            .unwrap_or_else(|| panic!("compiler bug: {v} is read from memory but not stored"));
        self.in_block(BlockValue::Storage(storage), |t| {
            t.load_storage_ptr(storage)
        })
    }

    fn load_storage_ptr(&mut self, storage: Storage) -> ClifValue {
        let (table, slot) = match storage {
            Storage::Arg(k) => (Param::Args, k as usize),
            Storage::Result(r) => (Param::Results, r),
            Storage::Buf(b) => (Param::Offsets, b),
        };
        let table = self.param(table);
        let word = self
            .bcx
            .ins()
            .load(types::I64, scalar_flags(), table, (8 * slot) as i32);
        match storage {
            Storage::Buf(_) => {
                let arena = self.param(Param::Arena);
                self.bcx.ins().iadd(arena, word)
            }
            _ => word,
        }
    }

    /// The register of a scalar value.
    fn scalar(&self, v: Value) -> ClifValue {
        let w = self.plan.resolve(v);
        self.scalars[w.index()]
            .unwrap_or_else(|| panic!("compiler bug: scalar {w} used before it is computed"))
    }

    /// A memory operand for a kernel: its address and one stride per axis (a scalar is
    /// spilled to the stack, with stride 0).
    fn operand(&mut self, u: Value) -> (ClifValue, Vec<Stride>) {
        let rank = self.func.ty(u).rank();
        match self.plan.access(self.func, u) {
            Access::Strided(base, strides) => (self.storage_ptr(base), strides),
            Access::Scalar(s) => {
                let value = self.scalar(s);
                let slot = self.bcx.create_sized_stack_slot(StackSlotData::new(
                    StackSlotKind::ExplicitSlot,
                    8,
                    3,
                ));
                let addr = self.bcx.ins().stack_addr(types::I64, slot, 0);
                self.bcx.ins().store(scalar_flags(), value, addr, 0);
                (addr, vec![Stride::Zero; rank])
            }
        }
    }

    // ----- straight-line scalar code -----

    fn emit_scalar(&mut self, v: Value) {
        if self.scalars[v.index()].is_some() {
            // Computed with its sine or cosine partner.
            return;
        }
        if let (Some(&partner), Op::Unary(u, x)) = (self.trig_partners.get(&v), self.func.op(v)) {
            let (u, x) = (*u, *x);
            let arg = self.scalar(x);
            let (sin, cos) = self.sin_cos_call(arg);
            let (mine, theirs) = if u == UnaryOp::Sin {
                (sin, cos)
            } else {
                (cos, sin)
            };
            self.scalars[v.index()] = Some(mine);
            self.scalars[partner.index()] = Some(theirs);
            return;
        }
        let op = &self.func.op(v).clone();
        let inputs: Vec<ClifValue> = op.operands().iter().map(|&u| self.scalar(u)).collect();
        let value = self.lower_elementwise(op, &inputs, 1);
        self.scalars[v.index()] = Some(value);
    }

    /// `sin x` and `cos x` by one call (see [`runtime::SINCOS_IN_REGISTERS`]).
    fn sin_cos_call(&mut self, x: ClifValue) -> (ClifValue, ClifValue) {
        if runtime::SINCOS_IN_REGISTERS {
            let f = self.func_ref("gradc_sincos");
            let call = self.bcx.ins().call(f, &[x]);
            let results = self.bcx.inst_results(call);
            return (results[0], results[1]);
        }
        let f = self.func_ref("gradc_sincos_to");
        let out = self.bcx.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            16,
            3,
        ));
        let addr = self.bcx.ins().stack_addr(types::I64, out, 0);
        self.bcx.ins().call(f, &[x, addr]);
        let sin = self.bcx.ins().load(types::F64, scalar_flags(), addr, 0);
        let cos = self.bcx.ins().load(types::F64, scalar_flags(), addr, 8);
        (sin, cos)
    }

    fn emit_results(&mut self) {
        for (r, write) in self.plan.result_writes.iter().enumerate() {
            if let ResultWrite::Scalar(s) = *write {
                let value = self.scalar(s);
                let results = self.param(Param::Results);
                let ptr = self
                    .bcx
                    .ins()
                    .load(types::I64, scalar_flags(), results, (8 * r) as i32);
                self.bcx.ins().store(scalar_flags(), value, ptr, 0);
            }
        }
    }

    // ----- elementwise lowering, shared by scalars and both loop widths -----

    /// A real constant with `width` lanes.
    fn fconst(&mut self, width: u8, c: f64) -> ClifValue {
        if width == 1 {
            self.bcx.ins().f64const(c)
        } else {
            math::vector_const(&mut self.bcx, types::F64X2, c.to_bits())
        }
    }

    /// The constant a value is everywhere, if it is a literal.
    fn literal(&self, v: Value) -> Option<f64> {
        let mut w = self.plan.resolve(v);
        if let Node::Splat(s) = self.plan.nodes[w.index()] {
            w = self.plan.resolve(s);
        }
        match *self.func.op(w) {
            Op::Const(c) => Some(c),
            _ => None,
        }
    }

    /// `select(mask, a, b)` for one or two lanes.
    fn select(&mut self, width: u8, mask: ClifValue, a: ClifValue, b: ClifValue) -> ClifValue {
        if width == 1 {
            self.bcx.ins().select(mask, a, b)
        } else {
            let mask = self
                .bcx
                .ins()
                .bitcast(types::F64X2, MemFlagsData::new(), mask);
            self.bcx.ins().bitselect(mask, a, b)
        }
    }

    /// Lowers one elementwise op on registers of `width` lanes (1 or 2).
    fn lower_elementwise(&mut self, op: &Op, inputs: &[ClifValue], width: u8) -> ClifValue {
        match *op {
            Op::Unary(u, _) => {
                let x = inputs[0];
                match u {
                    UnaryOp::Neg => self.bcx.ins().fneg(x),
                    UnaryOp::Sqrt => self.bcx.ins().sqrt(x),
                    UnaryOp::Abs => self.bcx.ins().fabs(x),
                    UnaryOp::Square => self.bcx.ins().fmul(x, x),
                    UnaryOp::Relu => {
                        // x when x > 0 or x is NaN, else +0 (the interpreter's rule).
                        let zero = self.fconst(width, 0.0);
                        let not_positive = self.bcx.ins().fcmp(FloatCC::LessThanOrEqual, x, zero);
                        self.select(width, not_positive, zero, x)
                    }
                    UnaryOp::Exp
                    | UnaryOp::Log
                    | UnaryOp::Log1p
                    | UnaryOp::Sin
                    | UnaryOp::Cos
                    | UnaryOp::Tanh
                    | UnaryOp::Sigmoid
                    | UnaryOp::Softplus => self.math(u, x, width),
                }
            }
            Op::Binary(b, _, rhs) => {
                let (x, y) = (inputs[0], inputs[1]);
                match b {
                    BinaryOp::Add => self.bcx.ins().fadd(x, y),
                    BinaryOp::Sub => self.bcx.ins().fsub(x, y),
                    BinaryOp::Mul => self.bcx.ins().fmul(x, y),
                    BinaryOp::Div => self.bcx.ins().fdiv(x, y),
                    BinaryOp::Max => self.bcx.ins().fmax(x, y),
                    BinaryOp::Min => self.bcx.ins().fmin(x, y),
                    // Small integer powers as products, as JAX's integer powers: x * x
                    // and 1 / x are exact (correctly rounded, as C's pow); the others
                    // round twice, within two ulps of it.
                    BinaryOp::Pow => match self.literal(rhs) {
                        Some(2.0) => self.bcx.ins().fmul(x, x),
                        Some(3.0) => {
                            let square = self.bcx.ins().fmul(x, x);
                            self.bcx.ins().fmul(x, square)
                        }
                        Some(4.0) => {
                            let square = self.bcx.ins().fmul(x, x);
                            self.bcx.ins().fmul(square, square)
                        }
                        Some(-1.0) => {
                            let one = self.fconst(width, 1.0);
                            self.bcx.ins().fdiv(one, x)
                        }
                        Some(-2.0) => {
                            let one = self.fconst(width, 1.0);
                            let square = self.bcx.ins().fmul(x, x);
                            self.bcx.ins().fdiv(one, square)
                        }
                        // C's pow: +0 at -0 (where sqrt gives -0, hence the + 0) and
                        // +inf at -inf (where sqrt gives NaN); sqrt is correctly rounded.
                        Some(0.5) => {
                            let root = self.bcx.ins().sqrt(x);
                            let zero = self.fconst(width, 0.0);
                            let root = self.bcx.ins().fadd(root, zero);
                            let minus_inf = self.fconst(width, f64::NEG_INFINITY);
                            let at_minus_inf = self.bcx.ins().fcmp(FloatCC::Equal, x, minus_inf);
                            let inf = self.fconst(width, f64::INFINITY);
                            self.select(width, at_minus_inf, inf, root)
                        }
                        _ => self.per_lane2("gradc_pow", x, y, width),
                    },
                }
            }
            Op::Compare(c, a, _) => {
                let (x, y) = (inputs[0], inputs[1]);
                if self.func.ty(a).elem == Elem::Real {
                    let cc = match c {
                        CmpOp::Lt => FloatCC::LessThan,
                        CmpOp::Le => FloatCC::LessThanOrEqual,
                        CmpOp::Gt => FloatCC::GreaterThan,
                        CmpOp::Ge => FloatCC::GreaterThanOrEqual,
                        CmpOp::Eq => FloatCC::Equal,
                        CmpOp::Ne => FloatCC::NotEqual,
                    };
                    self.bcx.ins().fcmp(cc, x, y)
                } else {
                    let cc = match c {
                        CmpOp::Lt => IntCC::SignedLessThan,
                        CmpOp::Le => IntCC::SignedLessThanOrEqual,
                        CmpOp::Gt => IntCC::SignedGreaterThan,
                        CmpOp::Ge => IntCC::SignedGreaterThanOrEqual,
                        CmpOp::Eq => IntCC::Equal,
                        CmpOp::Ne => IntCC::NotEqual,
                    };
                    self.bcx.ins().icmp(cc, x, y)
                }
            }
            Op::Select(..) => self.select(width, inputs[0], inputs[1], inputs[2]),
            _ => unreachable!("compiler bug: {op:?} is not elementwise"),
        }
    }

    /// A transcendental function: inline code from [`math`] (one lane or two; branch-free
    /// but for sin and cos of arguments beyond 1e8, which take a cold libm block), or with
    /// `INLINE_MATH` off, calls of the runtime's libm wrappers per lane.
    fn math(&mut self, u: UnaryOp, x: ClifValue, width: u8) -> ClifValue {
        if INLINE_MATH && (width == 2 || !self.call_scalar_math) {
            let f = runtime::math_fn(u)
                .unwrap_or_else(|| unreachable!("compiler bug: {u:?} is not a math function"));
            return math::emit_unary_with(&mut self.bcx, f, x, self.math_options);
        }
        let name = runtime::math_symbol(u)
            .unwrap_or_else(|| panic!("compiler bug: no math symbol for {u:?}"));
        if width == 1 {
            self.call(name, &[x]).expect("math call returns a value")
        } else {
            let lanes: Vec<ClifValue> = (0..2u8)
                .map(|lane| {
                    let e = self.bcx.ins().extractlane(x, lane);
                    self.call(name, &[e]).expect("math call returns a value")
                })
                .collect();
            let v = self.bcx.ins().splat(types::F64X2, lanes[0]);
            self.bcx.ins().insertlane(v, lanes[1], 1)
        }
    }

    /// A two-argument runtime math function applied lane by lane.
    fn per_lane2(
        &mut self,
        name: &'static str,
        x: ClifValue,
        y: ClifValue,
        width: u8,
    ) -> ClifValue {
        if width == 1 {
            return self.call(name, &[x, y]).expect("math call returns a value");
        }
        let lanes: Vec<ClifValue> = (0..2u8)
            .map(|lane| {
                let a = self.bcx.ins().extractlane(x, lane);
                let b = self.bcx.ins().extractlane(y, lane);
                self.call(name, &[a, b]).expect("math call returns a value")
            })
            .collect();
        let v = self.bcx.ins().splat(types::F64X2, lanes[0]);
        self.bcx.ins().insertlane(v, lanes[1], 1)
    }

    fn combine(&mut self, op: ReduceOp, acc: ClifValue, x: ClifValue) -> ClifValue {
        match op {
            ReduceOp::Sum => self.bcx.ins().fadd(acc, x),
            ReduceOp::Max => self.bcx.ins().fmax(acc, x),
            ReduceOp::Min => self.bcx.ins().fmin(acc, x),
        }
    }

    // ----- loops -----

    /// Starts `while var + step <= limit { ... }`; the builder is left in the body.
    fn loop_begin(&mut self, var: Variable, limit: ClifValue, step: i64) -> LoopBlocks {
        let header = self.bcx.create_block();
        let body = self.bcx.create_block();
        let exit = self.bcx.create_block();
        self.bcx.ins().jump(header, &[]);
        self.bcx.switch_to_block(header);
        let index = self.bcx.use_var(var);
        let next = self.bcx.ins().iadd_imm_s(index, step);
        let go_on = self
            .bcx
            .ins()
            .icmp(IntCC::SignedLessThanOrEqual, next, limit);
        self.bcx.ins().brif(go_on, body, &[], exit, &[]);
        self.bcx.switch_to_block(body);
        // The body's only predecessor is the header.
        self.bcx.seal_block(body);
        LoopBlocks { header, exit }
    }

    /// Ends a loop started by `loop_begin`: `var += step` and back to the header.
    fn loop_end(&mut self, blocks: LoopBlocks, var: Variable, step: i64) {
        let index = self.bcx.use_var(var);
        let next = self.bcx.ins().iadd_imm_s(index, step);
        self.bcx.def_var(var, next);
        self.bcx.ins().jump(blocks.header, &[]);
        // The back edge was the header's last predecessor: it can be sealed now.
        self.bcx.seal_block(blocks.header);
        self.bcx.switch_to_block(blocks.exit);
        self.bcx.seal_block(blocks.exit);
    }

    // ----- fused loop nests -----

    /// A memory pointer of a nest: from `ctx` in a range function, else computed.
    fn nest_ptr(&mut self, p: NestPtr) -> ClifValue {
        if let Some(&pointer) = self.nest_ptrs.get(&p) {
            return pointer;
        }
        match p {
            NestPtr::Stored(v) => self.storage_ptr(v),
            NestPtr::Copy(r) => {
                let results = self.param(Param::Results);
                self.bcx
                    .ins()
                    .load(types::I64, scalar_flags(), results, (8 * r) as i32)
            }
        }
    }

    /// Runs group `g`: inline, or through its range function (which may split it
    /// across threads).
    fn emit_group(&mut self, g: usize) {
        match self.range_fns.get(&g) {
            Some(&id) => self.emit_range_call(g, id),
            None => self.emit_nest(g, None),
        }
    }

    /// Calls the range function of group `g` through the runtime's parallel loop:
    /// stores its context (entry parameters and scalar operands) on the stack, and
    /// combines the chunks' partial reductions in a fixed order.
    fn emit_range_call(&mut self, g: usize, id: FuncId) {
        let plan = self.plan;
        let func = self.func;
        let group = &plan.groups[g];
        let (loads, scalar_reads, flat) = group_operands(self.func, self.plan, g);
        let passed: Vec<Value> = scalar_reads
            .into_iter()
            .filter(|&s| !is_literal_op(func.op(s)))
            .collect();
        let pointers = nest_pointers(self.plan, g, &loads);
        let mut words = vec![self.param(Param::Dims)];
        for &p in &pointers {
            let pointer = self.nest_ptr(p);
            words.push(pointer);
        }
        for &s in &passed {
            let mut value = self.scalar(s);
            if self.scalar_clif_type(s) == types::I8
                && self.bcx.func.dfg.value_type(value) != types::I8
            {
                value = self.bcx.ins().icmp_imm_s(IntCC::NotEqual, value, 0);
            }
            words.push(value);
        }
        let ctx = self.bcx.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            8 * words.len() as u32,
            3,
        ));
        let ctx_addr = self.bcx.ins().stack_addr(types::I64, ctx, 0);
        for (k, &word) in words.iter().enumerate() {
            self.bcx
                .ins()
                .store(scalar_flags(), word, ctx_addr, (8 * k) as i32);
        }
        let fulls: Vec<Value> = group
            .members
            .iter()
            .copied()
            .filter(|&m| plan.nodes[m.index()] == Node::Reduce(g, ReduceKind::Full))
            .collect();
        let chunks = parallel::CHUNKS;
        let partials = self.bcx.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            (8 * chunks * fulls.len()).max(8) as u32,
            3,
        ));
        // The partials of chunks 1 and up start as the identity, for calls that run the
        // nest whole (chunk 0 then holds everything).
        for (k, &m) in fulls.iter().enumerate() {
            let Op::Reduce(op, _, _) = *func.op(m) else {
                unreachable!("compiler bug: accumulator of a non-reduction")
            };
            let init = self.fconst(1, plan::reduce_init(op));
            for c in 1..chunks {
                let at = 8 * (c * fulls.len() + k);
                self.bcx
                    .ins()
                    .stack_store(types::I64, init, partials, at as i32);
            }
        }
        let domain = group.domain.clone();
        let len = if domain.len() == 1 {
            self.dim(domain[0])
        } else if flat {
            self.numel(&domain)
        } else {
            self.dim(domain[0])
        };
        let elements = self.numel(&domain);
        // A nest that cannot be split reports no work, so it is never split.
        let cost = if splittable(plan, g) {
            self.group_cost(g)
        } else {
            0
        };
        let work = self.bcx.ins().imul_imm_s(elements, cost);
        let fref = match self.nest_refs.get(&id) {
            Some(&fref) => fref,
            None => {
                let fref = self.module.declare_func_in_func(id, self.bcx.func);
                self.nest_refs.insert(id, fref);
                fref
            }
        };
        let address = self.bcx.ins().func_addr(types::I64, fref);
        let partials_addr = self.bcx.ins().stack_addr(types::I64, partials, 0);
        let n_partials = self.iconst(fulls.len() as i64);
        self.call(
            "gradc_parallel_for",
            &[address, ctx_addr, len, work, partials_addr, n_partials],
        );
        for (k, &m) in fulls.iter().enumerate() {
            let Op::Reduce(op, _, _) = *func.op(m) else {
                unreachable!("compiler bug: accumulator of a non-reduction")
            };
            // In chunk order, whichever thread ran each: the same bits on every call.
            let mut total =
                self.bcx
                    .ins()
                    .stack_load(types::I64, types::F64, partials, (8 * k) as i32);
            for c in 1..chunks {
                let at = 8 * (c * fulls.len() + k);
                let part = self
                    .bcx
                    .ins()
                    .stack_load(types::I64, types::F64, partials, at as i32);
                total = self.combine(op, total, part);
            }
            self.scalars[m.index()] = Some(total);
        }
    }

    /// Rough nanoseconds per element of group `g` on one thread, for deciding whether
    /// to split it across threads.
    fn group_cost(&self, g: usize) -> i64 {
        let group = &self.plan.groups[g];
        let ops: i64 = group
            .members
            .iter()
            .map(|&m| match *self.func.op(m) {
                Op::Unary(u, _) if runtime::math_symbol(u).is_some() => 8,
                Op::Binary(BinaryOp::Pow, _, _) => 30,
                Op::Binary(BinaryOp::Div, _, _) | Op::Unary(UnaryOp::Sqrt, _) => 2,
                _ => 1,
            })
            .sum();
        (ops + group.copies.len() as i64) / 2 + 1
    }

    /// Emits the loop nest of group `g`: over its whole domain (`range` is `None`), or,
    /// in a range function, over the outer range `[start, end)` with each full
    /// reduction's result stored to `partials`.
    fn emit_nest(&mut self, g: usize, range: Option<NestRange>) {
        let plan = self.plan;
        let func = self.func;
        let group = &plan.groups[g];
        let domain = group.domain.clone();
        let rank = domain.len();

        let (loads, scalar_reads, flat) = group_operands(self.func, self.plan, g);
        let inner_stride = |l: &LoadSpec| -> Stride {
            if flat && l.strides[1] == Stride::One {
                Stride::One
            } else {
                *l.strides.last().expect("a group has rank 1 or 2")
            }
        };
        let vectorised = loads
            .iter()
            .all(|l| matches!(inner_stride(l), Stride::Zero | Stride::One));

        // Preheader: pointers, strides, splats, accumulators.
        let mut state = GroupState {
            loads: loads.clone(),
            load_base: Vec::new(),
            load_inner_bytes: Vec::new(),
            load_row: Vec::new(),
            load_invariant: vec![None; loads.len()],
            splats: HashMap::new(),
            stores: HashMap::new(),
            accs: HashMap::new(),
            rank,
            flat,
            vectorised,
        };
        for l in &loads {
            let base = self.nest_ptr(NestPtr::Stored(l.base));
            state.load_base.push(base);
            state.load_row.push(base);
            let inner_bytes = match inner_stride(l) {
                Stride::Dim(d) => {
                    let size = self.dim(d);
                    Some(self.bcx.ins().imul_imm_s(size, 8))
                }
                _ => None,
            };
            state.load_inner_bytes.push(inner_bytes);
        }
        for &s in &scalar_reads {
            let one = self.scalar(s);
            let two = if vectorised {
                let ty = self.bcx.func.dfg.value_type(one);
                Some(if ty == types::I8 {
                    let wide = self.bcx.ins().bmask(types::I64, one);
                    self.bcx.ins().splat(types::I64X2, wide)
                } else {
                    self.bcx
                        .ins()
                        .splat(ty.by(2).expect("a two-lane type"), one)
                })
            } else {
                None
            };
            state.splats.insert(s, (one, two));
        }
        for &m in &group.members {
            if plan.storage[m.index()].is_some() {
                let base = self.nest_ptr(NestPtr::Stored(m));
                state.stores.insert(StoreKey::Member(m), (base, base));
            }
            if let Node::Reduce(_, kind) = plan.nodes[m.index()] {
                let Op::Reduce(op, _, _) = *func.op(m) else {
                    unreachable!("compiler bug: reduce node without reduce op")
                };
                match kind {
                    ReduceKind::Full | ReduceKind::Rows => {
                        let vector = vectorised.then(|| self.bcx.declare_var(types::F64X2));
                        let scalar = self.bcx.declare_var(types::F64);
                        state.accs.insert(m, (vector, scalar));
                        if kind == ReduceKind::Full {
                            self.init_acc(&state, m, op);
                        }
                    }
                    ReduceKind::Cols => {
                        let (out, _) = state.stores[&StoreKey::Member(m)];
                        let n = self.dim(domain[1]);
                        let init = self.bcx.ins().f64const(plan::reduce_init(op));
                        self.call("gradc_fill", &[out, n, init]);
                    }
                }
            }
        }
        for &(_, r) in &group.copies {
            let base = self.nest_ptr(NestPtr::Copy(r));
            state.stores.insert(StoreKey::Copy(r), (base, base));
        }

        // The loop nest: the outer range is rows, or the elements of a flat nest.
        let (start, end) = match range {
            Some(r) => (r.start, r.end),
            None => {
                let zero = self.iconst(0);
                let len = if rank == 1 {
                    self.dim(domain[0])
                } else if flat {
                    self.numel(&domain)
                } else {
                    self.dim(domain[0])
                };
                (zero, len)
            }
        };
        let (outer, inner_start, inner_len) = if rank == 1 || flat {
            (None, start, end)
        } else {
            let i_var = self.bcx.declare_var(types::I64);
            self.bcx.def_var(i_var, start);
            let blocks = self.loop_begin(i_var, end, 1);
            let i = self.bcx.use_var(i_var);
            self.begin_row(&mut state, i, &domain);
            let zero = self.iconst(0);
            let cols = self.dim(domain[1]);
            (Some((i_var, blocks, i)), zero, cols)
        };
        let blocked = if vectorised && self.block_math {
            self.blocked_members(g)
        } else {
            Vec::new()
        };
        if blocked.is_empty() {
            self.emit_inner(g, &mut state, inner_start, inner_len, None);
        } else {
            self.emit_blocked_inner(g, &mut state, inner_start, inner_len, &blocked);
        }
        if let Some((i_var, blocks, i)) = outer {
            for &m in &group.members {
                if plan.nodes[m.index()] == Node::Reduce(g, ReduceKind::Rows) {
                    let total = self.finish_acc(&state, m);
                    let (out, _) = state.stores[&StoreKey::Member(m)];
                    let offset = self.bcx.ins().ishl_imm_s(i, 3);
                    let addr = self.bcx.ins().iadd(out, offset);
                    self.bcx.ins().store(scalar_flags(), total, addr, 0);
                }
            }
            self.loop_end(blocks, i_var, 1);
        }
        let mut n_full = 0;
        for &m in &group.members {
            if plan.nodes[m.index()] == Node::Reduce(g, ReduceKind::Full) {
                let total = self.finish_acc(&state, m);
                match range {
                    Some(r) => {
                        self.bcx
                            .ins()
                            .store(scalar_flags(), total, r.partials, 8 * n_full);
                        n_full += 1;
                    }
                    None => self.scalars[m.index()] = Some(total),
                }
            }
        }
    }

    /// The inner loop over `[start, end)`: two lanes at a time while it can (when the
    /// nest is vectorised), then one. With `phase`, one pass of a blocked loop.
    fn emit_inner(
        &mut self,
        g: usize,
        state: &mut GroupState,
        start: ClifValue,
        end: ClifValue,
        phase: Option<&Phase>,
    ) {
        let j_var = self.bcx.declare_var(types::I64);
        self.bcx.def_var(j_var, start);
        if state.vectorised {
            let blocks = self.loop_begin(j_var, end, LANES);
            let j = self.bcx.use_var(j_var);
            self.emit_body(g, state, 2, j, phase);
            self.loop_end(blocks, j_var, LANES);
        }
        // After a two-lane loop the one-lane loop runs at most once per row: there it
        // calls libm for transcendentals, which keeps the inline math out of it (half
        // the code to compile).
        let blocks = self.loop_begin(j_var, end, 1);
        let j = self.bcx.use_var(j_var);
        let call_scalar_math = self.call_scalar_math;
        self.call_scalar_math |= state.vectorised;
        self.emit_body(g, state, 1, j, phase);
        self.call_scalar_math = call_scalar_math;
        self.loop_end(blocks, j_var, 1);
    }

    /// The members of group `g` to evaluate on blocks: transcendentals with a four-lane
    /// runtime kernel. Sigmoids and softpluses of one value (or its negation) share one
    /// call and one `exp(-|t|)` there ([`exp_families`]), as they share it inline; the
    /// four-lane kernels are faster than the inline sharing (fused's value-and-grad,
    /// which takes both of `a·x + c`: inline 7.29 ms, a kernel each 4.91, one family
    /// call 4.38).
    fn blocked_members(&self, g: usize) -> Vec<Value> {
        let func = self.func;
        self.plan.groups[g]
            .members
            .iter()
            .copied()
            .filter(
                |&m| matches!(*func.op(m), Op::Unary(u, _) if runtime::block_math_fn(u).is_some()),
            )
            .collect()
    }

    /// The inner loop over `[start, end)` of a nest with members evaluated on blocks:
    /// for each block of up to [`BLOCK`] elements, passes of the inner loop, each
    /// writing the arguments of the blocked members that depend on no blocked member
    /// not yet evaluated to their buffers, followed by the kernels' calls on them; then
    /// a last pass that computes everything else, reading the blocked members' values
    /// from their buffers. Values other passes need again are recomputed from memory
    /// (cheap next to a transcendental).
    fn emit_blocked_inner(
        &mut self,
        g: usize,
        state: &mut GroupState,
        start: ClifValue,
        end: ClifValue,
        blocked: &[Value],
    ) {
        let func = self.func;
        let plan = self.plan;
        let members = plan.groups[g].members.clone();
        let in_group = |u: Value| -> Option<Value> {
            let w = plan.resolve(u);
            (plan.nodes[w.index()] == Node::Member(g)).then_some(w)
        };
        // The pass after which each member is known: a blocked member one pass after
        // its argument.
        let mut known: HashMap<Value, usize> = HashMap::new();
        for &m in &members {
            let ready = func
                .op(m)
                .operands()
                .iter()
                .filter_map(|&u| in_group(u).map(|w| known[&w]))
                .max()
                .unwrap_or(0);
            known.insert(m, ready + usize::from(blocked.contains(&m)));
        }
        let passes = blocked.iter().map(|b| known[b]).max().unwrap_or(0);
        let families = exp_families(func, plan, blocked, |b| known[&b]);
        let followers: HashSet<Value> = families
            .iter()
            .flat_map(|(lead, outputs)| outputs.iter().flatten().filter(move |&k| k != lead))
            .map(|&k| blocked[k])
            .collect();
        // Blocked members of a contiguous real operand read it in place (by its load's
        // index): no pass copies it to their buffer.
        let direct: HashMap<Value, usize> = blocked
            .iter()
            .filter(|b| !followers.contains(b))
            .filter_map(|&b| {
                let x = func.op(b).operands()[0];
                let Access::Strided(base, strides) = plan.access(func, x) else {
                    return None;
                };
                let spec = LoadSpec::of(func, x, base, &strides);
                let inner = if state.flat && spec.strides[1] == Stride::One {
                    Stride::One
                } else {
                    *spec.strides.last().expect("rank ≥ 1")
                };
                if in_group(x).is_some() || inner != Stride::One || spec.elem != Elem::Real {
                    return None;
                }
                Some((b, state.loads.iter().position(|l| *l == spec)?))
            })
            .collect();

        let slots: Vec<ClifValue> = blocked
            .iter()
            .map(|_| {
                let slot = self.bcx.create_sized_stack_slot(StackSlotData::new(
                    StackSlotKind::ExplicitSlot,
                    (BLOCK * 8) as u32,
                    4,
                ));
                self.bcx.ins().stack_addr(types::I64, slot, 0)
            })
            .collect();
        // The nest's accumulators wait in memory while the blocks run: each block adds to
        // them once, and as variables they would be reloaded in every iteration of every
        // pass's loop (calls clobber every vector register, so they sit in spill slots
        // anyway; measured on fused's value-and-grad, whose last pass reloaded six).
        let mut sums: Vec<Value> = state.accs.keys().copied().collect();
        sums.sort();
        let acc_slots: HashMap<Value, StackSlot> = sums
            .iter()
            .map(|&m| {
                let slot = self.bcx.create_sized_stack_slot(StackSlotData::new(
                    StackSlotKind::ExplicitSlot,
                    32,
                    4,
                ));
                let (vector, scalar) = state.accs[&m];
                let value = self.bcx.use_var(scalar);
                self.bcx
                    .ins()
                    .stack_store(types::I64, value, slot, ACC_SCALAR);
                if let Some(vector) = vector {
                    let value = self.bcx.use_var(vector);
                    self.bcx
                        .ins()
                        .stack_store(types::I64, value, slot, ACC_VECTOR);
                }
                (m, slot)
            })
            .collect();
        let block_var = self.bcx.declare_var(types::I64);
        self.bcx.def_var(block_var, start);
        let blocks = self.loop_begin(block_var, end, 1);
        let block_start = self.bcx.use_var(block_var);
        let full = self.bcx.ins().iadd_imm_s(block_start, BLOCK);
        let block_end = self.bcx.ins().smin(full, end);
        let len = self.bcx.ins().isub(block_end, block_start);
        let start_bytes = self.bcx.ins().ishl_imm_s(block_start, 3);
        let buffers: Vec<ClifValue> = slots
            .iter()
            .map(|&slot| self.bcx.ins().isub(slot, start_bytes))
            .collect();
        let mut ready = HashMap::new();
        for pass in 0..=passes {
            let last = pass == passes;
            // Blocked members whose argument this pass computes.
            let targets: Vec<(Value, ClifValue)> = blocked
                .iter()
                .zip(&buffers)
                .filter(|&(b, _)| {
                    !last
                        && known[b] == pass + 1
                        && !direct.contains_key(b)
                        && !followers.contains(b)
                })
                .map(|(&b, &buffer)| (b, buffer))
                .collect();
            let mut needed = HashSet::new();
            if last {
                needed.extend(members.iter().copied());
            } else {
                let mut stack: Vec<Value> = targets
                    .iter()
                    .filter_map(|&(b, _)| in_group(func.op(b).operands()[0]))
                    .collect();
                while let Some(m) = stack.pop() {
                    if needed.insert(m) && !ready.contains_key(&m) {
                        stack.extend(func.op(m).operands().iter().filter_map(|&u| in_group(u)));
                    }
                }
            }
            let phase = Phase {
                last,
                ready: ready.clone(),
                needed,
                targets,
            };
            // Values live across the kernels' calls sit in memory (every vector register
            // is clobbered by a call): each pass splats its scalar operands afresh and
            // the last sums into accumulators of its own, added to the nest's once per
            // block, so that no loop-carried value goes through memory.
            let splats = state.splats.clone();
            let mut scalars: Vec<Value> = splats.keys().copied().collect();
            scalars.sort();
            for s in scalars {
                let (one, two) = state.splats.get_mut(&s).expect("a splat");
                if let Some(two) = two {
                    let ty = self.bcx.func.dfg.value_type(*two);
                    *two = if self.bcx.func.dfg.value_type(*one) == types::I8 {
                        let wide = self.bcx.ins().bmask(types::I64, *one);
                        self.bcx.ins().splat(ty, wide)
                    } else {
                        self.bcx.ins().splat(ty, *one)
                    };
                }
            }
            let accs = state.accs.clone();
            if last {
                for &m in &sums {
                    let acc = state.accs.get_mut(&m).expect("an accumulator");
                    let Op::Reduce(op, _, _) = *func.op(m) else {
                        unreachable!("compiler bug: accumulator of a non-reduction")
                    };
                    let init = plan::reduce_init(op);
                    let scalar = self.bcx.declare_var(types::F64);
                    let one = self.fconst(1, init);
                    self.bcx.def_var(scalar, one);
                    let vector = acc.0.map(|_| {
                        let vector = self.bcx.declare_var(types::F64X2);
                        let two = self.fconst(2, init);
                        self.bcx.def_var(vector, two);
                        vector
                    });
                    *acc = (vector, scalar);
                }
            }
            if last || !phase.targets.is_empty() {
                self.emit_inner(g, state, block_start, block_end, Some(&phase));
            }
            if last {
                for &m in &sums {
                    let Op::Reduce(op, _, _) = *func.op(m) else {
                        unreachable!("compiler bug: accumulator of a non-reduction")
                    };
                    let local = state.accs[&m];
                    let parts = [
                        (Some(local.1), types::F64, ACC_SCALAR),
                        (local.0, types::F64X2, ACC_VECTOR),
                    ];
                    for (local, ty, offset) in parts {
                        if let Some(local) = local {
                            let total =
                                self.bcx
                                    .ins()
                                    .stack_load(types::I64, ty, acc_slots[&m], offset);
                            let part = self.bcx.use_var(local);
                            let total = self.combine(op, total, part);
                            self.bcx
                                .ins()
                                .stack_store(types::I64, total, acc_slots[&m], offset);
                        }
                    }
                }
            }
            state.splats = splats;
            state.accs = accs;
            for (i, &b) in blocked.iter().enumerate() {
                if last || known[&b] != pass + 1 {
                    continue;
                }
                ready.insert(b, buffers[i]);
                if followers.contains(&b) {
                    // Written by its family's call.
                    continue;
                }
                let src = match direct.get(&b) {
                    Some(&k) => self.bcx.ins().iadd(state.load_row[k], start_bytes),
                    None => slots[i],
                };
                if let Some((_, outputs)) = families.iter().find(|(lead, _)| *lead == i) {
                    let mut args = vec![src, len];
                    for output in outputs {
                        args.push(match output {
                            Some(k) => slots[*k],
                            None => self.iconst(0),
                        });
                    }
                    self.call("gradc_block_exp_family", &args);
                    continue;
                }
                let Op::Unary(u, _) = *func.op(b) else {
                    unreachable!("compiler bug: blocked member is not a unary op")
                };
                let f = runtime::block_math_fn(u).expect("compiler bug: no block kernel");
                let code = MathFn::ALL.iter().position(|&g| g == f).expect("listed");
                let code = self.iconst(code as i64);
                self.call("gradc_block_math", &[code, src, slots[i], len]);
            }
        }
        self.bcx.def_var(block_var, block_end);
        self.bcx.ins().jump(blocks.header, &[]);
        self.bcx.seal_block(blocks.header);
        self.bcx.switch_to_block(blocks.exit);
        self.bcx.seal_block(blocks.exit);
        for &m in &sums {
            let (vector, scalar) = state.accs[&m];
            let value =
                self.bcx
                    .ins()
                    .stack_load(types::I64, types::F64, acc_slots[&m], ACC_SCALAR);
            self.bcx.def_var(scalar, value);
            if let Some(vector) = vector {
                let value =
                    self.bcx
                        .ins()
                        .stack_load(types::I64, types::F64X2, acc_slots[&m], ACC_VECTOR);
                self.bcx.def_var(vector, value);
            }
        }
    }

    fn init_acc(&mut self, state: &GroupState, m: Value, op: ReduceOp) {
        let (vector, scalar) = state.accs[&m];
        let init = plan::reduce_init(op);
        let one = self.fconst(1, init);
        self.bcx.def_var(scalar, one);
        if let Some(vector) = vector {
            let two = self.fconst(2, init);
            self.bcx.def_var(vector, two);
        }
    }

    /// Folds the lanes of an accumulator into one value.
    fn finish_acc(&mut self, state: &GroupState, m: Value) -> ClifValue {
        let Op::Reduce(op, _, _) = *self.func.op(m) else {
            unreachable!("compiler bug: accumulator of a non-reduction")
        };
        let (vector, scalar) = state.accs[&m];
        let tail = self.bcx.use_var(scalar);
        match vector {
            Some(vector) => {
                let v = self.bcx.use_var(vector);
                let lo = self.bcx.ins().extractlane(v, 0);
                let hi = self.bcx.ins().extractlane(v, 1);
                let both = self.combine(op, lo, hi);
                self.combine(op, both, tail)
            }
            None => tail,
        }
    }

    /// At the top of an outer iteration: row pointers, row-invariant loads and row
    /// accumulators.
    fn begin_row(&mut self, state: &mut GroupState, i: ClifValue, domain: &[Dim]) {
        for k in 0..state.loads.len() {
            let outer = state.loads[k].strides[0];
            state.load_row[k] = match outer {
                Stride::Zero => state.load_base[k],
                _ => {
                    let stride = self.stride(outer);
                    let elems = self.bcx.ins().imul(i, stride);
                    let bytes = self.bcx.ins().ishl_imm_s(elems, 3);
                    self.bcx.ins().iadd(state.load_base[k], bytes)
                }
            };
            if state.loads[k].strides[1] == Stride::Zero {
                let ty = scalar_type(state.loads[k].elem);
                let one = self
                    .bcx
                    .ins()
                    .load(ty, scalar_flags(), state.load_row[k], 0);
                let two = state
                    .vectorised
                    .then(|| self.bcx.ins().splat(ty.by(2).expect("two lanes"), one));
                let one = if state.loads[k].elem == Elem::Bool {
                    self.bcx.ins().icmp_imm_s(IntCC::NotEqual, one, 0)
                } else {
                    one
                };
                state.load_invariant[k] = Some((one, two));
            }
        }
        let cols = self.dim(domain[1]);
        let row_elems = self.bcx.ins().imul(i, cols);
        let row_bytes = self.bcx.ins().ishl_imm_s(row_elems, 3);
        // Sorted: the emitted code (and `--emit clif`) must not depend on hash order.
        let mut keys: Vec<StoreKey> = state.stores.keys().copied().collect();
        keys.sort();
        for key in keys {
            if let StoreKey::Member(m) = key {
                if matches!(self.plan.nodes[m.index()], Node::Reduce(..)) {
                    continue;
                }
            }
            let (base, _) = state.stores[&key];
            let row = self.bcx.ins().iadd(base, row_bytes);
            state.stores.insert(key, (base, row));
        }
        let mut rows: Vec<Value> = state
            .accs
            .keys()
            .copied()
            .filter(|m| {
                matches!(
                    self.plan.nodes[m.index()],
                    Node::Reduce(_, ReduceKind::Rows)
                )
            })
            .collect();
        rows.sort();
        for m in rows {
            let Op::Reduce(op, _, _) = *self.func.op(m) else {
                unreachable!("compiler bug: accumulator of a non-reduction")
            };
            self.init_acc(state, m, op);
        }
    }

    /// The value of operand `u` of a member, at element `lanes.j` of the current row.
    fn lane_operand(
        &mut self,
        g: usize,
        state: &GroupState,
        lanes: &mut Lanes,
        u: Value,
        width: u8,
    ) -> ClifValue {
        let w = self.plan.resolve(u);
        if self.plan.nodes[w.index()] == Node::Member(g) {
            return lanes.members[&w];
        }
        match self.plan.access(self.func, u) {
            Access::Scalar(s) => {
                let (one, two) = state.splats[&self.plan.resolve(s)];
                if width == 1 {
                    one
                } else {
                    two.expect("compiler bug: splat missing in a vectorised loop")
                }
            }
            Access::Strided(base, strides) => {
                let spec = LoadSpec::of(self.func, u, base, &strides);
                let k = state
                    .loads
                    .iter()
                    .position(|l| *l == spec)
                    .expect("compiler bug: load not collected");
                if let Some(&x) = lanes.loaded.get(&k) {
                    return x;
                }
                let x = self.load_lane(state, k, width, lanes.j, lanes.j_bytes);
                lanes.loaded.insert(k, x);
                x
            }
        }
    }

    fn load_lane(
        &mut self,
        state: &GroupState,
        k: usize,
        width: u8,
        j: ClifValue,
        j_bytes: ClifValue,
    ) -> ClifValue {
        let spec = &state.loads[k];
        let inner = if state.flat && spec.strides[1] == Stride::One {
            Stride::One
        } else {
            *spec.strides.last().expect("rank ≥ 1")
        };
        if inner == Stride::Zero && state.rank == 2 && !state.flat {
            let (one, two) = state.load_invariant[k].expect("compiler bug: invariant missing");
            return if width == 1 {
                one
            } else {
                two.expect("compiler bug: vector invariant missing")
            };
        }
        let row = state.load_row[k];
        let addr = match inner {
            Stride::Zero => row,
            Stride::One => self.bcx.ins().iadd(row, j_bytes),
            Stride::Dim(_) => {
                let step = state.load_inner_bytes[k].expect("compiler bug: stride missing");
                let offset = self.bcx.ins().imul(j, step);
                self.bcx.ins().iadd(row, offset)
            }
        };
        let one_ty = scalar_type(spec.elem);
        if width == 1 {
            let x = self.bcx.ins().load(one_ty, scalar_flags(), addr, 0);
            if spec.elem == Elem::Bool {
                self.bcx.ins().icmp_imm_s(IntCC::NotEqual, x, 0)
            } else {
                x
            }
        } else if inner == Stride::Zero {
            let x = self.bcx.ins().load(one_ty, scalar_flags(), addr, 0);
            self.bcx.ins().splat(one_ty.by(2).expect("two lanes"), x)
        } else {
            let ty = one_ty.by(2).expect("two lanes");
            self.bcx.ins().load(ty, vector_flags(), addr, 0)
        }
    }

    fn store_lane(&mut self, addr_row: ClifValue, j_bytes: ClifValue, value: ClifValue, width: u8) {
        let addr = self.bcx.ins().iadd(addr_row, j_bytes);
        let ty = self.bcx.func.dfg.value_type(value);
        let value = if ty == types::I8 {
            // A one-lane mask is stored as 0 / -1, like the two-lane compare result.
            self.bcx.ins().bmask(types::I64, value)
        } else {
            value
        };
        let flags = if width == 1 {
            scalar_flags()
        } else {
            vector_flags()
        };
        self.bcx.ins().store(flags, value, addr, 0);
    }

    /// One iteration of the inner loop, `width` lanes at element `j`.
    fn emit_body(
        &mut self,
        g: usize,
        state: &mut GroupState,
        width: u8,
        j: ClifValue,
        phase: Option<&Phase>,
    ) {
        let plan = self.plan;
        let func = self.func;
        let group = &plan.groups[g];
        let j_bytes = self.bcx.ins().ishl_imm_s(j, 3);
        let mut lanes = Lanes {
            j,
            j_bytes,
            members: HashMap::new(),
            loaded: HashMap::new(),
        };
        let (ty, flags) = if width == 1 {
            (types::F64, scalar_flags())
        } else {
            (types::F64X2, vector_flags())
        };
        for &m in &group.members {
            let op = func.op(m);
            if let Some(phase) = phase {
                if !phase.needed.contains(&m) {
                    continue;
                }
                if let Some(&buffer) = phase.ready.get(&m) {
                    let addr = self.bcx.ins().iadd(buffer, j_bytes);
                    let value = self.bcx.ins().load(ty, flags, addr, 0);
                    lanes.members.insert(m, value);
                    if let Some(&(_, row)) = state.stores.get(&StoreKey::Member(m)) {
                        if phase.last {
                            self.store_lane(row, j_bytes, value, width);
                        }
                    }
                    continue;
                }
            }
            let last = phase.is_none_or(|p| p.last);
            if let Op::Reduce(r, x, _) = *op {
                if !last {
                    continue;
                }
                let xv = self.lane_operand(g, state, &mut lanes, x, width);
                let Node::Reduce(_, kind) = plan.nodes[m.index()] else {
                    unreachable!("compiler bug: reduce op without reduce node")
                };
                match kind {
                    ReduceKind::Full | ReduceKind::Rows => {
                        let (vector, scalar) = state.accs[&m];
                        let var = if width == 1 {
                            scalar
                        } else {
                            vector.expect("compiler bug: vector accumulator missing")
                        };
                        let acc = self.bcx.use_var(var);
                        let next = self.combine(r, acc, xv);
                        self.bcx.def_var(var, next);
                    }
                    ReduceKind::Cols => {
                        let (out, _) = state.stores[&StoreKey::Member(m)];
                        let addr = self.bcx.ins().iadd(out, j_bytes);
                        let (ty, flags) = if width == 1 {
                            (types::F64, scalar_flags())
                        } else {
                            (types::F64X2, vector_flags())
                        };
                        let acc = self.bcx.ins().load(ty, flags, addr, 0);
                        let next = self.combine(r, acc, xv);
                        self.bcx.ins().store(flags, next, addr, 0);
                    }
                }
                continue;
            }
            let inputs: Vec<ClifValue> = op
                .operands()
                .iter()
                .map(|&u| self.lane_operand(g, state, &mut lanes, u, width))
                .collect();
            let value = self.lower_elementwise(op, &inputs, width);
            lanes.members.insert(m, value);
            if let Some(&(_, row)) = state.stores.get(&StoreKey::Member(m)) {
                if last {
                    self.store_lane(row, j_bytes, value, width);
                }
            }
        }
        if let Some(phase) = phase {
            for &(b, buffer) in &phase.targets {
                let x = func.op(b).operands()[0];
                let value = self.lane_operand(g, state, &mut lanes, x, width);
                self.store_lane(buffer, j_bytes, value, width);
            }
            if !phase.last {
                return;
            }
        }
        for &(v, r) in &group.copies {
            let value = self.lane_operand(g, state, &mut lanes, v, width);
            let (_, row) = state.stores[&StoreKey::Copy(r)];
            self.store_lane(row, j_bytes, value, width);
        }
    }

    // ----- runtime kernels -----

    fn emit_kernel(&mut self, v: Value) {
        let func = self.func;
        let out = self.storage_ptr(v);
        let shape_of = |u: Value| func.ty(u).shape.clone();
        match *func.op(v) {
            Op::MatMul(a, b) => {
                let (a_ptr, a_strides) = self.operand(a);
                let (b_ptr, b_strides) = self.operand(b);
                let (sa, sb) = (shape_of(a), shape_of(b));
                let m = self.dim(sa[0]);
                let k = self.dim(sa[1]);
                let n = self.dim(sb[1]);
                let one = self.iconst(1);
                let strides: Vec<ClifValue> =
                    [a_strides[0], a_strides[1], b_strides[0], b_strides[1]]
                        .into_iter()
                        .map(|s| self.stride(s))
                        .collect();
                self.call(
                    "gradc_matmul",
                    &[
                        m, n, k, out, n, one, a_ptr, strides[0], strides[1], b_ptr, strides[2],
                        strides[3],
                    ],
                );
            }
            Op::Gather(t, i) => {
                let (t_ptr, t_strides) = self.operand(t);
                let (i_ptr, _) = self.operand(i);
                let st = shape_of(t);
                let rs = self.stride(t_strides[0]);
                let (cs, d) = if st.len() == 2 {
                    (self.stride(t_strides[1]), self.dim(st[1]))
                } else {
                    (self.iconst(0), self.iconst(1))
                };
                let n_idx = self.index_count(i);
                self.call("gradc_gather", &[t_ptr, rs, cs, d, i_ptr, n_idx, out]);
            }
            Op::ScatterAdd(u, i, rows) => {
                let (u_ptr, u_strides) = self.operand(u);
                let (i_ptr, _) = self.operand(i);
                let su = shape_of(u);
                let index_rank = func.ty(i).rank();
                // `u` is `i.shape ++ R`: its first `index_rank` axes follow the index.
                let rs = if index_rank == 1 {
                    self.stride(u_strides[0])
                } else {
                    self.iconst(0)
                };
                let (cs, d) = if su.len() > index_rank {
                    (self.stride(u_strides[index_rank]), self.dim(su[index_rank]))
                } else {
                    (self.iconst(0), self.iconst(1))
                };
                let n_idx = self.index_count(i);
                let rows = self.dim(rows);
                self.call(
                    "gradc_scatter_add",
                    &[u_ptr, rs, cs, d, i_ptr, n_idx, rows, out],
                );
            }
            Op::Pick(x, l) => {
                let (x_ptr, x_strides) = self.operand(x);
                let (l_ptr, _) = self.operand(l);
                let rs = self.stride(x_strides[0]);
                let cs = self.stride(x_strides[1]);
                let n = self.dim(shape_of(x)[0]);
                self.call("gradc_pick", &[x_ptr, rs, cs, n, l_ptr, out]);
            }
            Op::OneHot(l, depth) => {
                let (l_ptr, _) = self.operand(l);
                let n = self.index_count(l);
                let k = self.dim(depth);
                self.call("gradc_onehot", &[l_ptr, n, k, out]);
            }
            Op::Softmax(x, axis) | Op::LogSoftmax(x, axis) => {
                let log = matches!(func.op(v), Op::LogSoftmax(..));
                let (x_ptr, rows, cols, rs, cs) = self.operand_2d(x);
                let axis_2d = if func.ty(x).rank() == 2 {
                    axis as i64
                } else {
                    1
                };
                let axis_2d = self.iconst(axis_2d);
                let log = self.iconst(log as i64);
                self.call(
                    "gradc_softmax",
                    &[x_ptr, rs, cs, rows, cols, axis_2d, out, log],
                );
            }
            Op::LogSumExp(x, axes) => {
                let (x_ptr, rows, cols, rs, cs) = self.operand_2d(x);
                let mask = plan::axes_2d(func.ty(x).rank(), axes);
                let mask = self.iconst(mask as i64);
                self.call("gradc_logsumexp", &[x_ptr, rs, cs, rows, cols, mask, out]);
            }
            _ => unreachable!("compiler bug: {v} is not a kernel op"),
        }
        if is_scalar_shape(&func.ty(v).shape) {
            let value = self.bcx.ins().load(types::F64, scalar_flags(), out, 0);
            self.scalars[v.index()] = Some(value);
        }
    }

    /// The number of indices in an index operand (1 for a scalar).
    fn index_count(&mut self, i: Value) -> ClifValue {
        match self.func.ty(i).shape.first() {
            Some(&d) => self.dim(d),
            None => self.iconst(1),
        }
    }

    /// An operand seen as a `[rows, cols]` matrix (a vector is one row, a scalar 1×1):
    /// address, rows, cols, row stride, column stride.
    fn operand_2d(&mut self, x: Value) -> (ClifValue, ClifValue, ClifValue, ClifValue, ClifValue) {
        let (ptr, strides) = self.operand(x);
        let shape = self.func.ty(x).shape.clone();
        match shape.len() {
            0 => {
                let one = self.iconst(1);
                let zero = self.iconst(0);
                (ptr, one, one, zero, zero)
            }
            1 => {
                let one = self.iconst(1);
                let zero = self.iconst(0);
                let cols = self.dim(shape[0]);
                let cs = self.stride(strides[0]);
                (ptr, one, cols, zero, cs)
            }
            _ => {
                let rows = self.dim(shape[0]);
                let cols = self.dim(shape[1]);
                let rs = self.stride(strides[0]);
                let cs = self.stride(strides[1]);
                (ptr, rows, cols, rs, cs)
            }
        }
    }
}

/// True for a shape all of whose dimensions are literal 1s (a scalar's domain).
fn is_scalar_shape(shape: &[Dim]) -> bool {
    shape.iter().all(|d| d.is_one())
}

/// The one-lane register type of an element type (masks are stored as `i64`).
fn scalar_type(elem: Elem) -> ClifType {
    match elem {
        Elem::Real => types::F64,
        Elem::Int | Elem::Bool => types::I64,
    }
}
