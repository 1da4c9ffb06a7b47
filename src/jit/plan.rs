//! Scheduling, fusion and memory: decides where each IR value is computed and which
//! values are stored.
//!
//! In: a verified [`Function`]. Out: a [`Plan`]: a schedule of [`Item`]s (straight-line
//! scalar code, fused loop nests, calls to runtime kernels), how every value is reached
//! (a [`Node`]), which values are stored and where ([`Storage`]), and the arena buffers
//! with their live ranges.
//!
//! The model:
//!
//! - The *domain* of a value is its shape with the literal 1s dropped: `[N]`, `[1, N]`
//!   and `[N, 1]` hold the same elements in the same order. A value of empty domain is a
//!   *scalar*: it lives in a register, computed in straight-line code.
//! - Elementwise ops (`Unary`, `Binary`, `Compare`, `Select`) of one domain fuse into one
//!   loop nest, a [`Group`]; a `Reduce` joins the group producing its input. `Reshape`
//!   and every other op that keeps the domain are aliases; a `Broadcast` that expands
//!   and a `Transpose` are strided views of a stored value (stride 0 on broadcast axes);
//!   a tensor built from a scalar is a splat.
//! - Everything else is a runtime kernel reading strided operands and writing a dense
//!   buffer.
//! - A value is stored only when something reads it from memory: a later group, a view,
//!   a kernel, or the caller (results are written straight into the caller's buffers).
//!
//! Items are numbered from 1 in execution order (0 is function entry); a value read by
//! an item must be complete at an earlier position, which is what keeps the group graph
//! acyclic when a later op joins an earlier group.

use crate::ir::{Axes, Dim, Elem, Function, Op, ReduceOp, Value};

/// A position in the schedule: 0 is function entry, item `k` runs at position `k + 1`.
pub(crate) type Pos = usize;

/// The step between consecutive elements along one axis, in elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stride {
    /// A broadcast axis.
    Zero,
    /// Contiguous.
    One,
    /// The size of a dimension (the row stride of a dense matrix).
    Dim(Dim),
}

impl Stride {
    fn of_dim(d: Dim) -> Stride {
        if d == Dim::Const(1) {
            Stride::One
        } else {
            Stride::Dim(d)
        }
    }
}

/// The shape without its literal 1s.
pub(crate) fn domain(shape: &[Dim]) -> Vec<Dim> {
    shape.iter().copied().filter(|d| !d.is_one()).collect()
}

/// Row-major strides of a dense array of this shape.
pub(crate) fn dense_strides(shape: &[Dim]) -> Vec<Stride> {
    match shape.len() {
        0 => Vec::new(),
        1 => vec![Stride::One],
        _ => vec![Stride::of_dim(shape[1]), Stride::One],
    }
}

/// Strides of `from` (over the axes of `from_shape`) re-expressed over `to_shape`, which
/// holds the same elements in the same order (equal domains): the non-1 axes correspond
/// in order, and the 1 axes get stride 0.
fn remap_strides(from_shape: &[Dim], from: &[Stride], to_shape: &[Dim]) -> Vec<Stride> {
    let mut kept = from_shape
        .iter()
        .zip(from)
        .filter(|(d, _)| !d.is_one())
        .map(|(_, s)| *s);
    to_shape
        .iter()
        .map(|d| {
            if d.is_one() {
                Stride::Zero
            } else {
                kept.next().expect("compiler bug: remapped shapes differ")
            }
        })
        .collect()
}

/// A strided read of a stored value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct View {
    /// The stored value read.
    pub base: Value,
    /// One stride per axis of the viewing value's shape.
    pub strides: Vec<Stride>,
}

/// How a value is computed and reached.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node {
    /// Not needed by any result.
    Dead,
    /// `Arg`, `Const`, `ConstInt`, `DimSize`: ready at entry (tensor args are stored).
    Entry,
    /// A scalar computed by straight-line code at its position.
    Scalar,
    /// The same elements in the same order as an earlier value.
    Alias(Value),
    /// A tensor every element of which is this scalar.
    Splat(Value),
    /// A strided view (expanding broadcast, transpose) of a stored value.
    View(View),
    /// An elementwise value computed inside a group's loop.
    Member(usize),
    /// A reduction accumulated inside a group's loop.
    Reduce(usize, ReduceKind),
    /// A runtime kernel's result (always stored).
    Kernel,
}

/// Which axes of its group's domain a reduction folds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReduceKind {
    /// All of them: a scalar accumulator.
    Full,
    /// The inner axis of a rank-2 domain: one accumulator per row.
    Rows,
    /// The outer axis of a rank-2 domain: a stored accumulator per column.
    Cols,
}

/// Where a stored value lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Storage {
    /// The caller's argument array.
    Arg(u32),
    /// An arena buffer.
    Buf(usize),
    /// The caller's result buffer.
    Result(usize),
}

/// A fused loop nest over one domain.
#[derive(Clone, Debug, Default)]
pub(crate) struct Group {
    /// The iteration space (rank 1 or 2).
    pub domain: Vec<Dim>,
    /// Its position in the schedule.
    pub pos: Pos,
    /// Elementwise members and reductions, in evaluation order.
    pub members: Vec<Value>,
    /// Copies into result buffers: (value read, result index).
    pub copies: Vec<(Value, usize)>,
}

/// One step of the schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Item {
    /// Compute a scalar in straight-line code.
    Scalar(Value),
    /// Run a fused loop nest.
    Group(usize),
    /// Call a runtime kernel.
    Kernel(Value),
}

/// An arena buffer: a dense array of `shape`, live from `first` to `last` (inclusive).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Buffer {
    /// The shape stored (its element count, times 8 bytes, is the size).
    pub shape: Vec<Dim>,
    /// The position that writes it.
    pub first: Pos,
    /// The last position that reads it.
    pub last: Pos,
}

/// How one result reaches the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResultWrite {
    /// A scalar stored at the end of the function.
    Scalar(Value),
    /// Written by the item that computes it, or by a copy in a group.
    InPlace,
}

/// The schedule and memory plan of one function.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// Per value: how it is computed.
    pub nodes: Vec<Node>,
    /// Per value: where it is stored, if it is.
    pub storage: Vec<Option<Storage>>,
    /// The loop nests.
    pub groups: Vec<Group>,
    /// The schedule.
    pub items: Vec<Item>,
    /// The arena buffers.
    pub buffers: Vec<Buffer>,
    /// Per result: how it is written.
    pub result_writes: Vec<ResultWrite>,
}

/// How an operand is read by a loop or a kernel.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Access {
    /// A scalar register value (splat across the loop).
    Scalar(Value),
    /// Memory: base stored value, one stride per axis of the operand's shape.
    Strided(Value, Vec<Stride>),
}

/// Builds the plan of `func`, which must be verified.
pub(crate) fn plan(func: &Function) -> Plan {
    let mut planner = Planner::new(func);
    planner.mark_live();
    for k in 0..func.len() {
        planner.schedule(Value(k as u32));
    }
    planner.finish()
}

/// The most members a group takes; a longer chain continues in a new group, reading
/// the last one's values from memory. One loop nest is one Cranelift function, whose
/// compile time grows faster than its size: a chain of 2,000 `tanh`s in one nest took
/// 1.8 s to compile. The largest group of the benchmark workloads has 20 members.
const MAX_GROUP_MEMBERS: usize = 256;

struct Planner<'a> {
    func: &'a Function,
    nodes: Vec<Node>,
    avail: Vec<Pos>,
    needs_storage: Vec<bool>,
    last_read: Vec<Pos>,
    groups: Vec<Group>,
    items: Vec<Item>,
}

impl<'a> Planner<'a> {
    fn new(func: &'a Function) -> Planner<'a> {
        let n = func.len();
        Planner {
            func,
            nodes: vec![Node::Dead; n],
            avail: vec![0; n],
            needs_storage: vec![false; n],
            last_read: vec![0; n],
            groups: Vec::new(),
            items: Vec::new(),
        }
    }

    /// One reverse sweep: every value a result depends on is marked `Entry` (a
    /// placeholder replaced by `schedule`); the rest stay `Dead`.
    fn mark_live(&mut self) {
        let mut live = vec![false; self.func.len()];
        for r in &self.func.results {
            live[r.value.index()] = true;
        }
        for k in (0..self.func.len()).rev() {
            if live[k] {
                for u in self.func.insts[k].op.operands() {
                    live[u.index()] = true;
                }
                self.nodes[k] = Node::Entry;
            }
        }
    }

    fn domain_of(&self, v: Value) -> Vec<Dim> {
        domain(&self.func.ty(v).shape)
    }

    fn is_scalar(&self, v: Value) -> bool {
        self.func.ty(v).shape.iter().all(|d| d.is_one())
    }

    /// Follows aliases to the value that is actually computed.
    fn resolve(&self, mut v: Value) -> Value {
        while let Node::Alias(w) = self.nodes[v.index()] {
            v = w;
        }
        v
    }

    fn next_pos(&self) -> Pos {
        self.items.len() + 1
    }

    fn push_item(&mut self, item: Item) -> Pos {
        self.items.push(item);
        self.items.len()
    }

    fn new_group(&mut self, domain: Vec<Dim>) -> usize {
        let pos = self.next_pos();
        self.groups.push(Group {
            domain,
            pos,
            ..Group::default()
        });
        let g = self.groups.len() - 1;
        self.push_item(Item::Group(g));
        g
    }

    /// True if `u` is computed inline by group `g` (readable in the same iteration).
    fn inline_in(&self, u: Value, g: usize) -> bool {
        matches!(self.nodes[self.resolve(u).index()], Node::Member(h) if h == g)
    }

    /// How a reader sees `u`: a scalar register or strided memory (marking the base as
    /// stored). Reads are recorded at position `at`.
    fn access(&mut self, u: Value, at: Pos) -> Access {
        let w = self.resolve(u);
        let shape = &self.func.ty(u).shape;
        let access = match &self.nodes[w.index()] {
            Node::Splat(s) => Access::Scalar(*s),
            _ if self.is_scalar(w) => Access::Scalar(w),
            Node::View(view) => {
                let w_shape = &self.func.ty(w).shape;
                Access::Strided(view.base, remap_strides(w_shape, &view.strides, shape))
            }
            _ => {
                let w_shape = &self.func.ty(w).shape;
                Access::Strided(w, remap_strides(w_shape, &dense_strides(w_shape), shape))
            }
        };
        if let Access::Strided(base, _) = &access {
            self.needs_storage[base.index()] = true;
            self.last_read[base.index()] = self.last_read[base.index()].max(at);
        } else if let Access::Scalar(s) = &access {
            self.last_read[s.index()] = self.last_read[s.index()].max(at);
        }
        access
    }

    /// The latest group over `domain` that runs after every value in `reads` is
    /// complete, if it is the last item (joining it keeps the schedule order).
    fn sibling(&self, domain: &[Dim], reads: &[Value]) -> Option<usize> {
        let ready = reads
            .iter()
            .map(|u| self.avail[u.index()])
            .max()
            .unwrap_or(0);
        match self.items.last() {
            Some(Item::Group(g))
                if self.groups[*g].domain == domain && self.groups[*g].pos > ready =>
            {
                Some(*g)
            }
            _ => None,
        }
    }

    /// Chooses the group for a new elementwise or reduction value over `domain` whose
    /// operands are `operands`: the latest group computing one of them inline, if every
    /// other operand is complete before it; else the last item if it is a group of the
    /// same domain; else a new group.
    /// True if group `g` takes more members (it holds fewer than [`MAX_GROUP_MEMBERS`]).
    fn has_room(&self, g: usize) -> bool {
        self.groups[g].members.len() < MAX_GROUP_MEMBERS
    }

    /// A group already holding [`MAX_GROUP_MEMBERS`] takes no more.
    fn choose_group(&mut self, domain: &[Dim], operands: &[Value]) -> usize {
        let mut best: Option<usize> = None;
        for &u in operands {
            if let Node::Member(g) = self.nodes[self.resolve(u).index()] {
                if self.groups[g].domain == domain
                    && self.has_room(g)
                    && best.is_none_or(|b| self.groups[g].pos > self.groups[b].pos)
                {
                    best = Some(g);
                }
            }
        }
        if let Some(g) = best {
            let pos = self.groups[g].pos;
            let fits = operands
                .iter()
                .all(|&u| self.inline_in(u, g) || self.avail[u.index()] < pos);
            if fits {
                return g;
            }
        }
        let resolved: Vec<Value> = operands.iter().map(|&u| self.resolve(u)).collect();
        match self.sibling(domain, &resolved) {
            Some(g) if self.has_room(g) => g,
            _ => self.new_group(domain.to_vec()),
        }
    }

    /// Records how `v` is computed and when it is complete.
    fn schedule(&mut self, v: Value) {
        if self.nodes[v.index()] == Node::Dead {
            return;
        }
        let func = self.func;
        let op = &func.insts[v.index()].op;
        let scalar = self.is_scalar(v);
        match op {
            Op::Arg(_) | Op::Const(_) | Op::ConstInt(_) | Op::DimSize(_) => {
                self.nodes[v.index()] = Node::Entry;
                self.avail[v.index()] = 0;
            }
            Op::Unary(..) | Op::Binary(..) | Op::Compare(..) | Op::Select(..) if scalar => {
                let pos = self.push_item(Item::Scalar(v));
                for u in op.operands() {
                    self.access(u, pos);
                }
                self.nodes[v.index()] = Node::Scalar;
                self.avail[v.index()] = pos;
            }
            Op::Unary(..) | Op::Binary(..) | Op::Compare(..) | Op::Select(..) => {
                let operands = op.operands();
                let g = self.choose_group(&self.domain_of(v), &operands);
                let pos = self.groups[g].pos;
                for &u in &operands {
                    if !self.inline_in(u, g) {
                        self.access(u, pos);
                    }
                }
                self.groups[g].members.push(v);
                self.nodes[v.index()] = Node::Member(g);
                self.avail[v.index()] = pos;
            }
            Op::Reshape(x, _) | Op::Broadcast(x, _) | Op::Transpose(x)
                if self.domain_of(*x) == self.domain_of(v) && self.keeps_order(op) =>
            {
                self.nodes[v.index()] = Node::Alias(*x);
                self.avail[v.index()] = self.avail[x.index()];
            }
            Op::Reshape(x, _) | Op::Broadcast(x, _) | Op::Transpose(x) => {
                let x = *x;
                let w = self.resolve(x);
                self.avail[v.index()] = self.avail[w.index()];
                if self.is_scalar(w) {
                    self.nodes[v.index()] = Node::Splat(w);
                    return;
                }
                if let Node::Splat(s) = self.nodes[w.index()] {
                    self.nodes[v.index()] = Node::Splat(s);
                    return;
                }
                // A view of the stored operand; the read is recorded by its readers.
                let at = self.avail[w.index()];
                let (base, x_strides) = match self.access(x, at) {
                    Access::Strided(base, strides) => (base, strides),
                    Access::Scalar(_) => unreachable!("compiler bug: scalar view base"),
                };
                let x_shape = &func.ty(x).shape;
                let v_shape = &func.ty(v).shape;
                let strides = match op {
                    Op::Transpose(_) => vec![x_strides[1], x_strides[0]],
                    _ => {
                        let offset = v_shape.len() - x_shape.len();
                        (0..v_shape.len())
                            .map(|k| {
                                if k < offset
                                    || (x_shape[k - offset].is_one() && !v_shape[k].is_one())
                                {
                                    Stride::Zero
                                } else {
                                    x_strides[k - offset]
                                }
                            })
                            .collect()
                    }
                };
                self.nodes[v.index()] = Node::View(View { base, strides });
            }
            Op::Reduce(_, x, axes) => {
                let x = *x;
                let x_shape = &func.ty(x).shape;
                let x_domain = domain(x_shape);
                // Reduced axes, numbered in the domain of `x`.
                let mut reduced = Vec::new();
                let mut k_domain = 0;
                for (k, d) in x_shape.iter().enumerate() {
                    if d.is_one() {
                        continue;
                    }
                    if axes.contains(k) {
                        reduced.push(k_domain);
                    }
                    k_domain += 1;
                }
                if reduced.is_empty() {
                    self.nodes[v.index()] = Node::Alias(x);
                    self.avail[v.index()] = self.avail[x.index()];
                    return;
                }
                let kind = if reduced.len() == x_domain.len() {
                    ReduceKind::Full
                } else if reduced == [1] {
                    ReduceKind::Rows
                } else {
                    ReduceKind::Cols
                };
                let g = self.choose_group(&x_domain, &[x]);
                let pos = self.groups[g].pos;
                if !self.inline_in(x, g) {
                    self.access(x, pos);
                }
                self.groups[g].members.push(v);
                self.nodes[v.index()] = Node::Reduce(g, kind);
                self.avail[v.index()] = pos;
                if kind != ReduceKind::Full {
                    self.needs_storage[v.index()] = true;
                }
            }
            Op::LogSumExp(..)
            | Op::Softmax(..)
            | Op::LogSoftmax(..)
            | Op::MatMul(..)
            | Op::Gather(..)
            | Op::ScatterAdd(..)
            | Op::Pick(..)
            | Op::OneHot(..) => {
                let pos = self.push_item(Item::Kernel(v));
                for u in op.operands() {
                    self.access(u, pos);
                }
                self.nodes[v.index()] = Node::Kernel;
                self.avail[v.index()] = pos;
                self.needs_storage[v.index()] = true;
                // A scalar kernel result is loaded into a register right away.
                self.last_read[v.index()] = pos;
            }
        }
    }

    /// True unless `op` is a transpose that really permutes (neither axis is 1).
    fn keeps_order(&self, op: &Op) -> bool {
        match op {
            Op::Transpose(x) => self.func.ty(*x).shape.iter().any(|d| d.is_one()),
            _ => true,
        }
    }

    /// Assigns storage (results first, then arena buffers), adds the copies results
    /// need, and computes buffer live ranges.
    fn finish(mut self) -> Plan {
        let func = self.func;
        let mut storage: Vec<Option<Storage>> = vec![None; func.len()];
        for (k, decl) in func.insts.iter().enumerate() {
            if let Op::Arg(a) = decl.op {
                if !self.is_scalar(Value(k as u32)) {
                    storage[k] = Some(Storage::Arg(a));
                }
            }
        }
        let mut result_writes = Vec::with_capacity(func.results.len());
        let mut copies: Vec<(Value, usize)> = Vec::new();
        for (r, result) in func.results.iter().enumerate() {
            let v = result.value;
            let w = self.resolve(v);
            if self.is_scalar(v) {
                let s = match self.nodes[w.index()] {
                    Node::Splat(s) => s,
                    _ => w,
                };
                result_writes.push(ResultWrite::Scalar(s));
                continue;
            }
            result_writes.push(ResultWrite::InPlace);
            let claimable = matches!(
                self.nodes[w.index()],
                Node::Member(_)
                    | Node::Kernel
                    | Node::Reduce(_, ReduceKind::Rows | ReduceKind::Cols)
            );
            if claimable && storage[w.index()].is_none() {
                storage[w.index()] = Some(Storage::Result(r));
            } else {
                copies.push((v, r));
            }
        }
        // Copies run at the end, after everything they read is complete.
        for (v, r) in copies {
            let dom = self.domain_of(v);
            let w = self.resolve(v);
            let g = match self.sibling(&dom, &[w]) {
                Some(g) => g,
                None => self.new_group(dom),
            };
            let pos = self.groups[g].pos;
            self.access(v, pos);
            self.groups[g].copies.push((v, r));
        }
        let mut buffers = Vec::new();
        for (k, slot) in storage.iter_mut().enumerate() {
            if self.needs_storage[k] && slot.is_none() {
                *slot = Some(Storage::Buf(buffers.len()));
                buffers.push(Buffer {
                    shape: func.insts[k].ty.shape.clone(),
                    first: self.avail[k],
                    last: self.last_read[k].max(self.avail[k]),
                });
            }
        }
        Plan {
            nodes: self.nodes,
            storage,
            groups: self.groups,
            items: self.items,
            buffers,
            result_writes,
        }
    }
}

impl Plan {
    /// Follows aliases to the value that is actually computed.
    pub(crate) fn resolve(&self, mut v: Value) -> Value {
        while let Node::Alias(w) = self.nodes[v.index()] {
            v = w;
        }
        v
    }

    /// How `u` is read (the same answer the planner recorded).
    pub(crate) fn access(&self, func: &Function, u: Value) -> Access {
        let w = self.resolve(u);
        let shape = &func.ty(u).shape;
        let w_shape = &func.ty(w).shape;
        match &self.nodes[w.index()] {
            Node::Splat(s) => Access::Scalar(*s),
            _ if w_shape.iter().all(|d| d.is_one()) => Access::Scalar(w),
            Node::View(view) => {
                Access::Strided(view.base, remap_strides(w_shape, &view.strides, shape))
            }
            _ => Access::Strided(w, remap_strides(w_shape, &dense_strides(w_shape), shape)),
        }
    }
}

/// The element type stored for `v`.
pub(crate) fn elem(func: &Function, v: Value) -> Elem {
    func.ty(v).elem
}

/// The identity element of a reduction.
pub(crate) fn reduce_init(op: ReduceOp) -> f64 {
    match op {
        ReduceOp::Sum => 0.0,
        ReduceOp::Max => f64::NEG_INFINITY,
        ReduceOp::Min => f64::INFINITY,
    }
}

/// The axes of a reduction as a mask over the `(rows, cols)` view of its operand (rank
/// 1 operands are a single row).
pub(crate) fn axes_2d(rank: usize, axes: Axes) -> u8 {
    match rank {
        0 => 0,
        1 => {
            if axes.contains(0) {
                0b10
            } else {
                0
            }
        }
        _ => axes.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{ArgDecl, ArgRole, FuncResult, ResultRole, Type, UnaryOp};

    fn vector_arg(name: &str) -> ArgDecl {
        ArgDecl {
            name: name.into(),
            role: ArgRole::Param,
            ty: Type::real(vec![Dim::Sym(crate::ir::DimVar(0))]),
        }
    }

    #[test]
    fn elementwise_chain_and_sum_fuse_into_one_group() {
        let mut func = Function::new("f", vec!["N".into()], vec![vector_arg("x")]);
        let x = func.push(Op::Arg(0));
        let e = func.push(Op::Unary(UnaryOp::Exp, x));
        let t = func.push(Op::Unary(UnaryOp::Tanh, e));
        let s = func.push(Op::Reduce(ReduceOp::Sum, t, Axes::all(1)));
        func.results.push(FuncResult {
            name: "loss".into(),
            role: crate::ir::ResultRole::Loss,
            value: s,
        });
        let plan = plan(&func);
        assert_eq!(plan.groups.len(), 1);
        assert_eq!(plan.groups[0].members, vec![e, t, s]);
        assert!(plan.buffers.is_empty());
        assert_eq!(plan.result_writes, vec![ResultWrite::Scalar(s)]);
    }

    #[test]
    fn value_used_after_its_own_sum_is_stored() {
        // y = exp(x); loss = sum(y * sum(y)): the second loop reads y from memory.
        let mut func = Function::new("f", vec!["N".into()], vec![vector_arg("x")]);
        let x = func.push(Op::Arg(0));
        let y = func.push(Op::Unary(UnaryOp::Exp, x));
        let s = func.push(Op::Reduce(ReduceOp::Sum, y, Axes::all(1)));
        let shape = func.ty(x).shape.clone();
        let sb = func.push(Op::Broadcast(s, shape));
        let p = func.push(Op::Binary(crate::ir::BinaryOp::Mul, y, sb));
        let l = func.push(Op::Reduce(ReduceOp::Sum, p, Axes::all(1)));
        func.results.push(FuncResult {
            name: "loss".into(),
            role: ResultRole::Loss,
            value: l,
        });
        let plan = plan(&func);
        assert_eq!(plan.groups.len(), 2);
        assert_eq!(plan.storage[y.index()], Some(Storage::Buf(0)));
        assert_eq!(plan.nodes[sb.index()], Node::Splat(s));
        assert_eq!(plan.buffers[0].first, 1);
        assert_eq!(plan.buffers[0].last, 2);
    }
}
