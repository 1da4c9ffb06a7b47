//! Gradient IR → readable `.loss`-style equations. (STUB: replaced by the autodiff work.)
use crate::ir::Function;

/// The `--emit grad` text of a gradient function.
pub fn equations(grad: &Function) -> String {
    let _ = grad;
    String::new()
}
