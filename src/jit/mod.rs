//! IR → native code with Cranelift. (STUB: replaced by the JIT work.)
pub mod math;
