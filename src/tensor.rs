//! Dense arrays passed to and returned from compiled functions.
//!
//! In: call-time data (from JSON, slices or `ndarray`). Out: results of the interpreter
//! and the JIT. Row-major; `shape` is empty for a scalar.

/// The elements of a tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    /// 64-bit floats.
    Real(Vec<f64>),
    /// 64-bit signed integers.
    Int(Vec<i64>),
    /// A comparison mask.
    Bool(Vec<bool>),
}

impl TensorData {
    /// The number of elements stored (which a well-formed tensor's shape agrees with).
    pub fn len(&self) -> usize {
        match self {
            TensorData::Real(v) => v.len(),
            TensorData::Int(v) => v.len(),
            TensorData::Bool(v) => v.len(),
        }
    }

    /// True if no elements are stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A dense row-major array of rank 0, 1 or 2.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Sizes of the dimensions; empty for a scalar.
    pub shape: Vec<usize>,
    /// The elements, `shape.iter().product()` of them.
    pub data: TensorData,
}

impl Tensor {
    /// A real tensor; `data.len()` should equal the product of `shape` (binding a
    /// tensor where it does not is an error naming the argument, not a panic).
    pub fn real(shape: Vec<usize>, data: Vec<f64>) -> Tensor {
        Tensor {
            shape,
            data: TensorData::Real(data),
        }
    }

    /// An int tensor; `data.len()` should equal the product of `shape` (as for
    /// [`Tensor::real`]).
    pub fn int(shape: Vec<usize>, data: Vec<i64>) -> Tensor {
        Tensor {
            shape,
            data: TensorData::Int(data),
        }
    }

    /// A real scalar.
    pub fn scalar(x: f64) -> Tensor {
        Tensor::real(Vec::new(), vec![x])
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True if the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The real elements, or `None` for an int or bool tensor.
    pub fn as_real(&self) -> Option<&[f64]> {
        match &self.data {
            TensorData::Real(v) => Some(v),
            _ => None,
        }
    }

    /// The element type.
    pub fn elem(&self) -> crate::ir::Elem {
        match &self.data {
            TensorData::Real(_) => crate::ir::Elem::Real,
            TensorData::Int(_) => crate::ir::Elem::Int,
            TensorData::Bool(_) => crate::ir::Elem::Bool,
        }
    }

    /// The int elements, or `None` for a real or bool tensor.
    pub fn as_int(&self) -> Option<&[i64]> {
        match &self.data {
            TensorData::Int(v) => Some(v),
            _ => None,
        }
    }
}
