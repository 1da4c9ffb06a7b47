//! Symbolic shapes: broadcasting and the text users see in shape errors.
//!
//! In: shapes of rank ≤ 2 whose dimensions are literal sizes or symbolic names
//! ([`crate::ir::Dim`]). Out: the broadcast shape of several operands (NumPy rules,
//! where only a literal 1 broadcasts and two different names never match), and
//! `[N, 3]`-style text.

use crate::ir::{Dim, Elem, Shape, Type};

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
    fn text() {
        let dims = vec!["N".to_string(), "M".to_string()];
        assert_eq!(shape_text(&dims, &[N, Dim::Const(3)]), "[N, 3]");
        assert_eq!(shape_text(&dims, &[]), "[]");
    }
}
