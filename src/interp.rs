//! The reference interpreter: evaluates an IR [`Function`] directly on dense arrays.
//!
//! In: a function, the size of every symbolic dimension (indexed by [`DimVar`]) and one
//! [`Tensor`] per argument (normally a [`crate::data::Bound`], already validated). Out:
//! one tensor per entry of `func.results`, in order, or a message if the arguments do not
//! match the function or an index is out of range. It never panics on a well-typed
//! function (one that passes [`crate::ir::verify`]); anything else is an `Err`.
//!
//! This is the oracle the JIT is tested against, so every op is written plainly, one
//! loop nest per op, with the numerical conventions below spelled out:
//!
//! - Elementwise ops follow IEEE: NaN propagates through everything, `maximum`/`minimum`
//!   and the `max`/`min` reductions included (as NumPy's `maximum` and `max` do).
//! - `pow` is C's `pow` ([`f64::powf`]). `sigmoid` uses the `exp(-|x|)` form on each
//!   side of 0 and `softplus(x) = max(x, 0) + log1p(exp(-|x|))`, so neither overflows.
//!   `relu(x)` is `x` for `x > 0` or NaN, else `0`.
//! - Reductions over zero elements give `0` (sum), `-inf` (max), `+inf` (min).
//! - `logsumexp` is `m + log(Σ exp(x - m))` with `m` the (NaN-propagating) maximum of
//!   the group, replaced by `0` when it is infinite: an all `-inf` (or empty) group gives
//!   `-inf`, a group holding `+inf` gives `+inf` (as SciPy's `logsumexp`).
//! - `softmax(x) = exp(x - m) / Σ exp(x - m)` and `log_softmax(x) = (x - m) -
//!   log(Σ exp(x - m))` with `m` the maximum along the axis, not replaced: an all `-inf`
//!   row gives NaN (as the usual NumPy formula does).
//! - Sums (reductions, matrix products) accumulate left to right in index order.
//!
//! Intermediate values are dropped after their last use, so memory stays near the live
//! set. Every buffer the size of a value is allocated fallibly: memory the host can't
//! give is an `Err` ("cannot allocate N bytes ..."), not an abort.

use crate::ir::{Axes, BinaryOp, CmpOp, Dim, DimVar, Function, Op, ReduceOp, UnaryOp, Value};
use crate::shape::{self, checked_len, MAX_ELEMENTS};
use crate::tensor::{Tensor, TensorData};

/// Evaluates `func` with dimension sizes `dims` (indexed by `DimVar`) and arguments
/// `args` (already validated by [`crate::data`]); returns the results in order.
pub fn eval(func: &Function, dims: &[usize], args: &[Tensor]) -> Result<Vec<Tensor>, String> {
    if dims.len() != func.dims.len() {
        return Err(format!(
            "`{}` has {} dimensions, {} sizes given",
            func.name,
            func.dims.len(),
            dims.len()
        ));
    }
    if args.len() != func.args.len() {
        return Err(format!(
            "`{}` takes {} arguments, {} given",
            func.name,
            func.args.len(),
            args.len()
        ));
    }
    for (decl, arg) in func.args.iter().zip(args) {
        let shape = concrete_shape(&decl.ty.shape, dims)?;
        if arg.shape != shape || arg.elem() != decl.ty.elem || !consistent(arg) {
            return Err(format!(
                "argument `{}` should be {:?} {:?}, is {:?} {:?}",
                decl.name,
                decl.ty.elem,
                shape,
                arg.elem(),
                arg.shape
            ));
        }
    }

    let last_use = last_uses(func);
    let mut values: Vec<Option<Tensor>> = vec![None; func.insts.len()];
    for (k, inst) in func.insts.iter().enumerate() {
        let shape = concrete_shape(&inst.ty.shape, dims)?;
        let result =
            eval_op(&inst.op, shape.clone(), dims, args, &values).map_err(|e| match e {
                EvalError::Invalid(msg) => format!("v{k}: {msg}"),
                // About the host, not the function: the value's name would not help.
                EvalError::OutOfMemory(msg) => msg,
            })?;
        if result.shape != shape || result.elem() != inst.ty.elem || !consistent(&result) {
            return Err(format!(
                "v{k}: computed {:?} {:?} but the type says {:?} {:?}",
                result.elem(),
                result.shape,
                inst.ty.elem,
                shape
            ));
        }
        if last_use[k] != k {
            values[k] = Some(result);
        }
        for v in inst.op.operands() {
            if last_use[v.index()] == k {
                values[v.index()] = None;
            }
        }
    }
    func.results
        .iter()
        .map(|r| {
            let value = values
                .get(r.value.index())
                .and_then(Option::as_ref)
                .ok_or_else(|| format!("result `{}`: {} is not computed", r.name, r.value))?;
            try_clone(value).map_err(|e| e.to_string())
        })
        .collect()
}

/// Why an op could not be evaluated.
#[derive(Debug)]
enum EvalError {
    /// The function or its arguments are not what the op needs.
    Invalid(String),
    /// A buffer for the op's result could not be allocated.
    OutOfMemory(String),
}

impl From<String> for EvalError {
    fn from(msg: String) -> EvalError {
        EvalError::Invalid(msg)
    }
}

impl From<&str> for EvalError {
    fn from(msg: &str) -> EvalError {
        EvalError::Invalid(msg.to_string())
    }
}

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvalError::Invalid(msg) | EvalError::OutOfMemory(msg) => f.write_str(msg),
        }
    }
}

/// An empty vector with room for `n` elements, or an error if the host can't give the
/// memory: shapes are bounded by [`MAX_ELEMENTS`], but 16 GiB may still be too much.
fn buffer<T>(n: usize) -> Result<Vec<T>, EvalError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        EvalError::OutOfMemory(format!(
            "cannot allocate {} bytes for an intermediate value",
            (n as u128) * (std::mem::size_of::<T>() as u128)
        ))
    })?;
    Ok(v)
}

/// `n` copies of `value`, allocated fallibly.
fn filled<T: Clone>(n: usize, value: T) -> Result<Vec<T>, EvalError> {
    let mut v = buffer(n)?;
    v.resize(n, value);
    Ok(v)
}

/// The first `n` items of `items`, allocated fallibly.
fn collected<T>(n: usize, items: impl Iterator<Item = T>) -> Result<Vec<T>, EvalError> {
    let mut v = buffer(n)?;
    v.extend(items.take(n));
    Ok(v)
}

/// A copy of `t`, allocated fallibly.
fn try_clone(t: &Tensor) -> Result<Tensor, EvalError> {
    Ok(Tensor {
        shape: t.shape.clone(),
        data: try_clone_data(&t.data)?,
    })
}

fn try_clone_data(data: &TensorData) -> Result<TensorData, EvalError> {
    Ok(match data {
        TensorData::Real(v) => TensorData::Real(collected(v.len(), v.iter().copied())?),
        TensorData::Int(v) => TensorData::Int(collected(v.len(), v.iter().copied())?),
        TensorData::Bool(v) => TensorData::Bool(collected(v.len(), v.iter().copied())?),
    })
}

/// For every value, the index of the last instruction using it: its own index if
/// nothing uses it, `usize::MAX` for the results, which live to the end.
fn last_uses(func: &Function) -> Vec<usize> {
    let mut last: Vec<usize> = (0..func.insts.len()).collect();
    for (k, inst) in func.insts.iter().enumerate() {
        for v in inst.op.operands() {
            if let Some(slot) = last.get_mut(v.index()) {
                *slot = k;
            }
        }
    }
    for r in &func.results {
        if let Some(slot) = last.get_mut(r.value.index()) {
            *slot = usize::MAX;
        }
    }
    last
}

/// The sizes of a symbolic shape, if it is not too large to evaluate: every dimension
/// and the element count at most [`MAX_ELEMENTS`] (16 GiB of f64), so that a large value
/// (`column(a) * row(b)` of two long vectors, `onehot(l, 100000000000)`) is an error, not
/// an allocation failure or an overflowed size. The JIT and the data binders check
/// the same limit.
fn concrete_shape(shape: &[Dim], dims: &[usize]) -> Result<Vec<usize>, String> {
    let sizes: Vec<usize> = shape
        .iter()
        .map(|d| dim_size(*d, dims))
        .collect::<Result<_, _>>()?;
    if checked_len(sizes.iter().copied()).is_none() {
        return Err(format!(
            "a value of shape {sizes:?} is too large to evaluate (more than {MAX_ELEMENTS} elements)"
        ));
    }
    Ok(sizes)
}

fn dim_size(d: Dim, dims: &[usize]) -> Result<usize, String> {
    shape::dim_size(d, dims).ok_or_else(|| match d {
        Dim::Const(n) => format!("dimension {n} too large"),
        Dim::Sym(DimVar(v)) => format!("unknown dimension #{v}"),
    })
}

/// True if the element count matches the shape.
fn consistent(t: &Tensor) -> bool {
    t.data.len() == t.shape.iter().product::<usize>()
}

fn reals(t: &Tensor) -> Result<&[f64], String> {
    t.as_real()
        .ok_or_else(|| "expected a real operand".to_string())
}

fn ints(t: &Tensor) -> Result<&[i64], String> {
    t.as_int()
        .ok_or_else(|| "expected an int operand".to_string())
}

/// Evaluates one op; `shape` is the concrete shape of its declared result type.
fn eval_op(
    op: &Op,
    shape: Vec<usize>,
    dims: &[usize],
    args: &[Tensor],
    values: &[Option<Tensor>],
) -> Result<Tensor, EvalError> {
    let get = |v: Value| -> Result<&Tensor, String> {
        values
            .get(v.index())
            .and_then(Option::as_ref)
            .ok_or_else(|| format!("operand {v} is not available"))
    };
    Ok(match *op {
        Op::Arg(k) => try_clone(
            args.get(k as usize)
                .ok_or_else(|| format!("no argument {k}"))?,
        )?,
        Op::Const(c) => Tensor::scalar(c),
        Op::ConstInt(n) => Tensor::int(Vec::new(), vec![n]),
        Op::DimSize(d) => Tensor::scalar(dim_size(Dim::Sym(d), dims)? as f64),
        Op::Unary(u, x) => {
            let x = get(x)?;
            let f = unary_fn(u);
            let x_data = reals(x)?;
            Tensor::real(
                x.shape.clone(),
                collected(x_data.len(), x_data.iter().map(|&e| f(e)))?,
            )
        }
        Op::Binary(b, lhs, rhs) => {
            let (lhs, rhs) = (get(lhs)?, get(rhs)?);
            let (a, c) = (reals(lhs)?, reals(rhs)?);
            if lhs.shape != rhs.shape {
                return Err(format!("shapes {:?} and {:?} differ", lhs.shape, rhs.shape).into());
            }
            let f = binary_fn(b);
            Tensor::real(
                lhs.shape.clone(),
                collected(a.len(), a.iter().zip(c).map(|(&x, &y)| f(x, y)))?,
            )
        }
        Op::Compare(c, lhs, rhs) => {
            let (lhs, rhs) = (get(lhs)?, get(rhs)?);
            if lhs.shape != rhs.shape {
                return Err(format!("shapes {:?} and {:?} differ", lhs.shape, rhs.shape).into());
            }
            let mask: Vec<bool> = match (&lhs.data, &rhs.data) {
                (TensorData::Real(a), TensorData::Real(b)) => {
                    collected(a.len(), a.iter().zip(b).map(|(x, y)| compare(c, *x, *y)))?
                }
                (TensorData::Int(a), TensorData::Int(b)) => {
                    collected(a.len(), a.iter().zip(b).map(|(x, y)| compare(c, *x, *y)))?
                }
                _ => return Err("comparison needs two reals or two ints".into()),
            };
            Tensor {
                shape: lhs.shape.clone(),
                data: TensorData::Bool(mask),
            }
        }
        Op::Select(m, a, b) => {
            let (m, a, b) = (get(m)?, get(a)?, get(b)?);
            let TensorData::Bool(mask) = &m.data else {
                return Err("select needs a mask".into());
            };
            if m.shape != a.shape || a.shape != b.shape {
                return Err("select operands differ in shape".into());
            }
            let (a, b) = (reals(a)?, reals(b)?);
            let data = collected(
                mask.len(),
                mask.iter()
                    .zip(a.iter().zip(b))
                    .map(|(&m, (&x, &y))| if m { x } else { y }),
            )?;
            Tensor::real(shape, data)
        }
        Op::Broadcast(x, _) => broadcast(get(x)?, shape)?,
        Op::Reshape(x, _) => {
            let x = get(x)?;
            if x.len() != shape.iter().product::<usize>() {
                return Err(format!("cannot reshape {:?} to {:?}", x.shape, shape).into());
            }
            Tensor {
                shape,
                data: try_clone_data(&x.data)?,
            }
        }
        Op::Transpose(x) => {
            let x = get(x)?;
            let [m, n] = rank2(x)?;
            let data = reals(x)?;
            let mut out = buffer(m * n)?;
            for j in 0..n {
                for i in 0..m {
                    out.push(data[i * n + j]);
                }
            }
            Tensor::real(vec![n, m], out)
        }
        Op::Reduce(r, x, axes) => {
            let (init, fold): (f64, fn(f64, f64) -> f64) = match r {
                ReduceOp::Sum => (0.0, |acc, e| acc + e),
                ReduceOp::Max => (f64::NEG_INFINITY, nan_max),
                ReduceOp::Min => (f64::INFINITY, nan_min),
            };
            let x = get(x)?;
            let groups = Groups::new(&x.shape, axes)?;
            let data = reals(x)?;
            let mut out = filled(groups.n_out, init)?;
            for (flat, &e) in data.iter().enumerate() {
                let o = groups.out_index(flat);
                out[o] = fold(out[o], e);
            }
            Tensor::real(groups.out_shape, out)
        }
        Op::LogSumExp(x, axes) => {
            let x = get(x)?;
            let groups = Groups::new(&x.shape, axes)?;
            let data = reals(x)?;
            let mut shift = filled(groups.n_out, f64::NEG_INFINITY)?;
            for (flat, &e) in data.iter().enumerate() {
                let o = groups.out_index(flat);
                shift[o] = nan_max(shift[o], e);
            }
            for m in &mut shift {
                if m.is_infinite() {
                    *m = 0.0;
                }
            }
            let mut sums = filled(groups.n_out, 0.0)?;
            for (flat, &e) in data.iter().enumerate() {
                let o = groups.out_index(flat);
                sums[o] += (e - shift[o]).exp();
            }
            let out = collected(sums.len(), sums.iter().zip(&shift).map(|(s, m)| m + s.ln()))?;
            Tensor::real(groups.out_shape, out)
        }
        Op::Softmax(x, axis) | Op::LogSoftmax(x, axis) => {
            let log = matches!(op, Op::LogSoftmax(..));
            let x = get(x)?;
            // A scalar is softmaxed as a group of one element.
            let group_shape = if x.shape.is_empty() {
                vec![1]
            } else {
                x.shape.clone()
            };
            if axis as usize >= group_shape.len() {
                return Err(format!("axis {axis} out of range").into());
            }
            let groups = Groups::new(&group_shape, Axes::one(axis as usize))?;
            let data = reals(x)?;
            let mut max = filled(groups.n_out, f64::NEG_INFINITY)?;
            for (flat, &e) in data.iter().enumerate() {
                let o = groups.out_index(flat);
                max[o] = nan_max(max[o], e);
            }
            let mut sums = filled(groups.n_out, 0.0)?;
            for (flat, &e) in data.iter().enumerate() {
                let o = groups.out_index(flat);
                sums[o] += (e - max[o]).exp();
            }
            let out = collected(
                data.len(),
                data.iter().enumerate().map(|(flat, &e)| {
                    let o = groups.out_index(flat);
                    if log {
                        (e - max[o]) - sums[o].ln()
                    } else {
                        (e - max[o]).exp() / sums[o]
                    }
                }),
            )?;
            Tensor::real(x.shape.clone(), out)
        }
        Op::MatMul(a, b) => {
            let (a, b) = (get(a)?, get(b)?);
            let ([m, k], [k2, n]) = (rank2(a)?, rank2(b)?);
            if k != k2 {
                return Err(format!("matmul of {:?} and {:?}", a.shape, b.shape).into());
            }
            let (a, b) = (reals(a)?, reals(b)?);
            let mut out = filled(m * n, 0.0)?;
            // i-k-j order: the inner loop runs along rows of `b` and `out`.
            for i in 0..m {
                let out_row = &mut out[i * n..(i + 1) * n];
                for p in 0..k {
                    let a_ip = a[i * k + p];
                    let b_row = &b[p * n..(p + 1) * n];
                    for (o, &b_pj) in out_row.iter_mut().zip(b_row) {
                        *o += a_ip * b_pj;
                    }
                }
            }
            Tensor::real(vec![m, n], out)
        }
        Op::Gather(t, i) => {
            let (table, index) = (get(t)?, get(i)?);
            let Some((&rows, row_shape)) = table.shape.split_first() else {
                return Err("gather from a scalar".into());
            };
            let row_len: usize = row_shape.iter().product();
            let data = reals(table)?;
            let mut out = buffer(index.len().saturating_mul(row_len))?;
            for &ix in ints(index)? {
                let r = checked_index(ix, rows)?;
                out.extend_from_slice(&data[r * row_len..(r + 1) * row_len]);
            }
            Tensor::real(shape, out)
        }
        Op::ScatterAdd(u, i, rows) => {
            let (updates, index) = (get(u)?, get(i)?);
            let rows = dim_size(rows, dims)?;
            if !updates.shape.starts_with(&index.shape) {
                return Err("scatter updates do not match the indices".into());
            }
            let row_shape = &updates.shape[index.shape.len()..];
            let row_len: usize = row_shape.iter().product();
            let data = reals(updates)?;
            let mut out = filled(rows.saturating_mul(row_len), 0.0)?;
            for (b, &ix) in ints(index)?.iter().enumerate() {
                let r = checked_index(ix, rows)?;
                let src = &data[b * row_len..(b + 1) * row_len];
                for (o, &e) in out[r * row_len..(r + 1) * row_len].iter_mut().zip(src) {
                    *o += e;
                }
            }
            Tensor::real(shape, out)
        }
        Op::Pick(x, l) => {
            let (x, labels) = (get(x)?, get(l)?);
            let [b, k] = rank2(x)?;
            let labels = ints(labels)?;
            if labels.len() != b {
                return Err(format!("pick from {:?} with {} labels", x.shape, labels.len()).into());
            }
            let data = reals(x)?;
            let mut out = buffer(b)?;
            for (row, &l) in labels.iter().enumerate() {
                out.push(data[row * k + checked_index(l, k)?]);
            }
            Tensor::real(vec![b], out)
        }
        Op::OneHot(l, depth) => {
            let labels = get(l)?;
            let depth = dim_size(depth, dims)?;
            let labels = ints(labels)?;
            let mut out = filled(labels.len().saturating_mul(depth), 0.0)?;
            for (row, &l) in labels.iter().enumerate() {
                out[row * depth + checked_index(l, depth)?] = 1.0;
            }
            Tensor::real(shape, out)
        }
    })
}

/// An index as a `usize`, if it lies in `0..bound`.
fn checked_index(ix: i64, bound: usize) -> Result<usize, String> {
    usize::try_from(ix)
        .ok()
        .filter(|&r| r < bound)
        .ok_or_else(|| format!("index {ix} out of range 0..{bound}"))
}

fn rank2(t: &Tensor) -> Result<[usize; 2], String> {
    match t.shape[..] {
        [m, n] => Ok([m, n]),
        _ => Err(format!("expected rank 2, got shape {:?}", t.shape)),
    }
}

/// NumPy broadcast of `x` to `shape`: dimensions aligned on the right, a size-1 (or
/// missing) dimension repeated.
fn broadcast(x: &Tensor, shape: Vec<usize>) -> Result<Tensor, EvalError> {
    if x.shape.len() > shape.len() {
        return Err(format!("{:?} does not broadcast to {:?}", x.shape, shape).into());
    }
    // Source strides aligned with the target's axes; 0 where the source repeats.
    let offset = shape.len() - x.shape.len();
    let mut strides = vec![0usize; shape.len()];
    let mut stride = 1;
    for (k, &size) in x.shape.iter().enumerate().rev() {
        let target = shape[k + offset];
        if size == target {
            strides[k + offset] = stride;
        } else if size != 1 {
            return Err(format!("{:?} does not broadcast to {:?}", x.shape, shape).into());
        }
        stride *= size;
    }
    let n: usize = shape.iter().product();
    let source_index = |flat: usize| -> usize {
        let mut rest = flat;
        let mut src = 0;
        for (k, &size) in shape.iter().enumerate().rev() {
            src += (rest % size) * strides[k];
            rest /= size;
        }
        src
    };
    let data = match &x.data {
        TensorData::Real(v) => TensorData::Real(collected(n, (0..n).map(|f| v[source_index(f)]))?),
        TensorData::Int(v) => TensorData::Int(collected(n, (0..n).map(|f| v[source_index(f)]))?),
        TensorData::Bool(v) => TensorData::Bool(collected(n, (0..n).map(|f| v[source_index(f)]))?),
    };
    Ok(Tensor { shape, data })
}

/// How the elements of a shape fall into the groups of a reduction over some axes:
/// maps each flat input index to the flat index of its group in the reduced shape.
struct Groups {
    /// The input shape.
    shape: Vec<usize>,
    /// Per input axis, the stride in the output (0 for a reduced axis).
    out_strides: Vec<usize>,
    /// The reduced shape.
    out_shape: Vec<usize>,
    /// The number of groups (elements of the reduced shape).
    n_out: usize,
}

impl Groups {
    fn new(shape: &[usize], axes: Axes) -> Result<Groups, String> {
        if (axes.0 as u32) >> shape.len() != 0 {
            return Err(format!("axes {:#b} out of range", axes.0));
        }
        let mut out_strides = vec![0; shape.len()];
        let mut stride = 1;
        for k in (0..shape.len()).rev() {
            if !axes.contains(k) {
                out_strides[k] = stride;
                stride *= shape[k];
            }
        }
        let out_shape: Vec<usize> = (0..shape.len())
            .filter(|&k| !axes.contains(k))
            .map(|k| shape[k])
            .collect();
        Ok(Groups {
            shape: shape.to_vec(),
            out_strides,
            n_out: out_shape.iter().product(),
            out_shape,
        })
    }

    fn out_index(&self, flat: usize) -> usize {
        let mut rest = flat;
        let mut out = 0;
        for k in (0..self.shape.len()).rev() {
            out += (rest % self.shape[k]) * self.out_strides[k];
            rest /= self.shape[k];
        }
        out
    }
}

fn unary_fn(u: UnaryOp) -> fn(f64) -> f64 {
    match u {
        UnaryOp::Neg => |x| -x,
        UnaryOp::Exp => f64::exp,
        UnaryOp::Log => f64::ln,
        UnaryOp::Log1p => f64::ln_1p,
        UnaryOp::Sqrt => f64::sqrt,
        UnaryOp::Sin => f64::sin,
        UnaryOp::Cos => f64::cos,
        UnaryOp::Tanh => f64::tanh,
        UnaryOp::Sigmoid => sigmoid,
        UnaryOp::Relu => |x| if x > 0.0 || x.is_nan() { x } else { 0.0 },
        UnaryOp::Softplus => softplus,
        UnaryOp::Abs => f64::abs,
        UnaryOp::Square => |x| x * x,
    }
}

/// `1 / (1 + exp(-x))` without overflow: only `exp(-|x|)` is ever computed.
pub fn sigmoid(x: f64) -> f64 {
    let e = (-x.abs()).exp();
    if x >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        // Also the NaN branch: e is NaN, so the result is NaN.
        e / (1.0 + e)
    }
}

/// `log(1 + exp(x))` without overflow: `max(x, 0) + log1p(exp(-|x|))`.
pub fn softplus(x: f64) -> f64 {
    let positive_part = if x > 0.0 { x } else { 0.0 };
    positive_part + (-x.abs()).exp().ln_1p()
}

fn binary_fn(b: BinaryOp) -> fn(f64, f64) -> f64 {
    match b {
        BinaryOp::Add => |a, b| a + b,
        BinaryOp::Sub => |a, b| a - b,
        BinaryOp::Mul => |a, b| a * b,
        BinaryOp::Div => |a, b| a / b,
        BinaryOp::Pow => f64::powf,
        BinaryOp::Max => nan_max,
        BinaryOp::Min => nan_min,
    }
}

/// IEEE 754-2019 `maximum`, as Cranelift's `fmax` in native code: NaN if either operand
/// is NaN, and +0 above -0 (Rust's `f64::max` may return either zero).
pub(crate) fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b {
        if a.is_sign_negative() {
            b
        } else {
            a
        }
    } else {
        a.max(b)
    }
}

/// IEEE 754-2019 `minimum`, as Cranelift's `fmin`: NaN if either operand is NaN, and -0
/// below +0.
pub(crate) fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b {
        if a.is_sign_negative() {
            a
        } else {
            b
        }
    } else {
        a.min(b)
    }
}

/// The comparison `a op b` (false if either is NaN, but for `!=`).
pub(crate) fn compare<T: PartialOrd>(op: CmpOp, a: T, b: T) -> bool {
    match op {
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_the_host_cannot_give_is_an_error_not_an_abort() {
        // More bytes than any allocator can give (beyond isize::MAX).
        let n = usize::MAX / 8;
        let err = buffer::<f64>(n).unwrap_err();
        assert!(matches!(err, EvalError::OutOfMemory(_)), "{err:?}");
        assert!(err.to_string().starts_with("cannot allocate"), "{err}");
        assert!(matches!(filled(n, 0.0), Err(EvalError::OutOfMemory(_))));
        assert!(matches!(
            collected(n, std::iter::repeat(1.0)),
            Err(EvalError::OutOfMemory(_))
        ));
        assert_eq!(filled(3, 2.0).unwrap(), vec![2.0; 3]);
    }
}
