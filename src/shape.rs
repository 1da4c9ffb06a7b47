//! Symbolic shapes: broadcasting and the text users see in shape errors.
//!
//! In: shapes of rank ≤ 2 whose dimensions are literal sizes or symbolic names
//! ([`crate::ir::Dim`]). Out: the broadcast shape of several operands (NumPy rules,
//! where only a literal 1 broadcasts and two different names never match), and
//! `[N, 3]`-style text.

use crate::ir::{Dim, Elem, Shape, Type};

/// The most elements one value may have at call time (16 GiB of f64), and so also the
/// largest size of any one dimension. Every evaluator checks the shape of every value
/// it will compute against this limit before it allocates or enters native code
/// (the interpreter per value, the JIT and the data binders for the whole function up
/// front), so a huge literal dimension (`onehot(l, 100000000000)`) or a product of
/// dimensions that overflows `usize` is an error, never an allocation failure, an
/// overflowed size or memory out of bounds.
pub const MAX_ELEMENTS: usize = 1 << 31;

/// The number of elements of an array with these sizes, if every size and their
/// product are at most [`MAX_ELEMENTS`]. Never overflows.
pub fn checked_len(sizes: impl IntoIterator<Item = usize>) -> Option<usize> {
    sizes.into_iter().try_fold(1usize, |acc, size| {
        if size > MAX_ELEMENTS {
            return None;
        }
        acc.checked_mul(size).filter(|&n| n <= MAX_ELEMENTS)
    })
}

/// The size of a dimension under the bound sizes `dims` (indexed by `DimVar`): `None`
/// for a dimension `dims` does not have or a literal too large for `usize`.
pub fn dim_size(dim: Dim, dims: &[usize]) -> Option<usize> {
    match dim {
        Dim::Const(n) => usize::try_from(n).ok(),
        Dim::Sym(v) => dims.get(v.0 as usize).copied(),
    }
}

/// The number of elements of `shape` under `dims`, if every dimension is known and
/// within the limits of [`checked_len`]. Does not allocate.
pub fn checked_numel(shape: &[Dim], dims: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| {
        let size = dim_size(d, dims)?;
        checked_len([acc, size])
    })
}

/// The exact number of elements of `shape` under `dims` (for messages: it cannot
/// overflow for rank ≤ 2); `None` for an unknown dimension.
pub fn exact_numel(shape: &[Dim], dims: &[usize]) -> Option<u128> {
    shape.iter().try_fold(1u128, |acc, &d| {
        let size = match d {
            Dim::Const(n) => u128::from(n),
            Dim::Sym(v) => *dims.get(v.0 as usize)? as u128,
        };
        Some(acc.saturating_mul(size))
    })
}

/// The NumPy broadcast of `shapes`: aligned on the right, a dimension matches an equal
/// dimension or a literal 1. `None` if they do not broadcast. `[N]` and `[M]` do not
/// broadcast even if N and M are equal at call time.
pub fn broadcast(shapes: &[&[Dim]]) -> Option<Shape> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut result: Shape = vec![Dim::Const(1); rank];
    for shape in shapes {
        let offset = rank - shape.len();
        for (k, dim) in shape.iter().enumerate() {
            let slot = &mut result[offset + k];
            if slot.is_one() {
                *slot = *dim;
            } else if !dim.is_one() && dim != slot {
                return None;
            }
        }
    }
    Some(result)
}

/// `[B, 3]` for a shape, `[]` for a scalar, with dimension names from `dims`.
pub fn shape_text(dims: &[String], shape: &[Dim]) -> String {
    let names: Vec<String> = shape
        .iter()
        .map(|d| match d {
            Dim::Const(n) => n.to_string(),
            Dim::Sym(v) => dims
                .get(v.0 as usize)
                .cloned()
                .unwrap_or_else(|| format!("?{}", v.0)),
        })
        .collect();
    format!("[{}]", names.join(", "))
}

/// `real[B, 3]`, `int[B]`, `mask[N]`, or for a scalar `a real scalar`, `an int
/// scalar`, `a scalar mask`: the text of a type in a message.
pub fn type_text(dims: &[String], ty: &Type) -> String {
    let (elem, scalar) = match ty.elem {
        Elem::Real => ("real", "a real scalar"),
        Elem::Int => ("int", "an int scalar"),
        Elem::Bool => ("mask", "a scalar mask"),
    };
    if ty.shape.is_empty() {
        scalar.to_string()
    } else {
        format!("{elem}{}", shape_text(dims, &ty.shape))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::DimVar;

    const N: Dim = Dim::Sym(DimVar(0));
    const M: Dim = Dim::Sym(DimVar(1));
    const ONE: Dim = Dim::Const(1);

    #[test]
    fn numpy_rules_with_symbolic_dims() {
        assert_eq!(broadcast(&[&[N], &[M, N]]), Some(vec![M, N]));
        assert_eq!(broadcast(&[&[N, ONE], &[ONE, M]]), Some(vec![N, M]));
        assert_eq!(broadcast(&[&[], &[N]]), Some(vec![N]));
        assert_eq!(broadcast(&[&[ONE], &[ONE]]), Some(vec![ONE]));
        assert_eq!(broadcast(&[&[N], &[M]]), None);
        assert_eq!(broadcast(&[&[Dim::Const(3)], &[N]]), None);
        assert_eq!(broadcast(&[&[N, M], &[N]]), None);
    }

    #[test]
    fn sizes_are_bounded_and_never_overflow() {
        assert_eq!(checked_len([]), Some(1));
        assert_eq!(checked_len([3, 4]), Some(12));
        assert_eq!(checked_len([0, MAX_ELEMENTS]), Some(0));
        assert_eq!(checked_len([MAX_ELEMENTS]), Some(MAX_ELEMENTS));
        assert_eq!(checked_len([MAX_ELEMENTS + 1]), None);
        assert_eq!(checked_len([0, MAX_ELEMENTS + 1]), None);
        assert_eq!(checked_len([1 << 16, 1 << 16]), None);
        assert_eq!(checked_len([usize::MAX, 2]), None);
        let big = Dim::Const(1 << 62);
        assert_eq!(checked_numel(&[N, big], &[2]), None);
        assert_eq!(checked_numel(&[N, Dim::Const(4)], &[2]), Some(8));
        assert_eq!(checked_numel(&[M], &[2]), None, "unknown dimension");
        assert_eq!(exact_numel(&[N, big], &[2]), Some(1 << 63));
        assert_eq!(
            exact_numel(&[Dim::Const(u64::MAX), Dim::Const(u64::MAX)], &[]),
            Some(u128::from(u64::MAX) * u128::from(u64::MAX))
        );
    }

    #[test]
    fn text() {
        let dims = vec!["N".to_string(), "M".to_string()];
        assert_eq!(shape_text(&dims, &[N, Dim::Const(3)]), "[N, 3]");
        assert_eq!(shape_text(&dims, &[]), "[]");
    }
}
