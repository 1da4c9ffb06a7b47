//! gradc: a symbolic expression compiler for gradients.
//!
//! A `.loss` file goes through the pipeline, one module per stage:
//!
//! 1. [`syntax`]: source text → [`syntax::ast::File`] (logos lexer, lalrpop grammar).
//! 2. [`check`]: AST → checked program (names, ranks, symbolic dimensions), or diagnostics.
//! 3. [`lower`]: checked program → forward [`ir::Function`] in SSA form.
//! 4. [`autodiff`]: forward IR → value-and-gradient IR (reverse mode, one VJP rule per op).
//! 5. [`simplify`]: IR → IR (folding, algebra, CSE, DCE to a fixpoint).
//! 6. [`jit`]: IR → native code with Cranelift.
//! 7. [`interp`]: the reference interpreter of the IR (the oracle for tests).
//!
//! [`driver`] runs the stages in order; [`data`] binds call-time data; [`train`] has the
//! update rules of training loops; the `gradc` binary is the command line on top.

#![warn(missing_docs)]
// The stage modules' docs walk through their private parts too (rendered by
// `cargo doc --document-private-items`).
#![allow(rustdoc::private_intra_doc_links)]

pub mod api;
pub mod autodiff;
pub mod bench;
pub mod check;
pub mod cli;
pub mod data;
pub mod diag;
pub mod driver;
pub mod equations;
pub mod gradcheck;
pub mod interp;
pub mod ir;
pub mod jit;
pub mod lower;
pub mod shape;
pub mod simplify;
mod stack;
pub mod syntax;
pub mod tensor;
pub mod train;

pub use api::{CompileErrors, CompileOptions, Model, ModelError};
pub use data::{Bound, CallError};
pub use diag::{Diagnostic, Severity, Span};
pub use ir::Function;
pub use tensor::{Tensor, TensorData};
