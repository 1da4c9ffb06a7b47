//! IR → values, by direct evaluation. (STUB: replaced by the interpreter work.)
use crate::ir::Function;
use crate::tensor::Tensor;

/// Evaluates `func` with dimension sizes `dims` (indexed by `DimVar`) and arguments
/// `args` (already validated by [`crate::data`]); returns the results in order.
pub fn eval(func: &Function, dims: &[usize], args: &[Tensor]) -> Result<Vec<Tensor>, String> {
    let _ = (func, dims, args);
    Err("interpreter not built yet".into())
}
