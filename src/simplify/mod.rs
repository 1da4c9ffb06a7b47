//! IR → simplified IR, to a fixpoint.
//!
//! In: any verified [`Function`]. Out: an equivalent function (same name, dims, args and
//! results, in the same order) with a compacted arena: operands still precede their
//! users, values are renumbered densely, and every instruction is needed by a result.
//!
//! A first round only merges common subexpressions (so the use counts some rules rely
//! on are exact). Every further round is a hash-consing rebuild ([`cse`]) in which every instruction goes
//! through a smart constructor that first tries constant folding ([`fold`]) and the
//! named algebraic rules ([`algebra`]), then reuses an identical existing instruction;
//! dead code is then dropped ([`dce`]). Rounds repeat until the instructions no longer
//! change. Every rule is directional and never makes the code bigger or slower, so the
//! rounds terminate (a round cap guards against a rule cycle, which would be a bug).
//!
//! Value semantics are kept exactly except where a rule says otherwise: `x * 0 → 0`
//! (ignores an infinite or NaN `x`), `x / c → x * (1/c)` (may differ in the last bit when
//! `1/c` is inexact), `x ^ 0.5 → sqrt(x)` (differs for `-0` and `-inf`).

mod algebra;
mod cse;
mod dce;
mod fold;

use crate::ir::{print_function, Function, Op};

/// The most rounds the fixpoint may take; one or two are the rule.
const MAX_ROUNDS: usize = 16;

/// Simplifies to a fixpoint.
pub fn simplify(func: &Function) -> Function {
    let mut current = dce::dce(&cse::rebuild(func, false));
    check(&current, "common subexpression elimination");
    for _ in 0..MAX_ROUNDS {
        let next = dce::dce(&cse::rebuild(&current, true));
        check(&next, "a simplification round");
        if same_instructions(&next, &current) {
            return next;
        }
        current = next;
    }
    current
}

/// Whether two rounds left the same instructions (constants compared by their bits, so
/// that a NaN constant equals itself).
fn same_instructions(a: &Function, b: &Function) -> bool {
    a.results == b.results
        && a.insts.len() == b.insts.len()
        && a.insts.iter().zip(&b.insts).all(|(x, y)| {
            x.ty == y.ty
                && match (&x.op, &y.op) {
                    (Op::Const(p), Op::Const(q)) => p.to_bits() == q.to_bits(),
                    (p, q) => p == q,
                }
        })
}

/// The names of the algebraic rules, in the order they are tried (each has a test in
/// `tests/simplify.rs`).
pub fn rule_names() -> Vec<&'static str> {
    algebra::RULES.iter().map(|(name, _)| *name).collect()
}

/// In debug builds, runs the verifier after a pass; a failure is a compiler bug.
fn check(func: &Function, pass: &str) {
    if cfg!(debug_assertions) {
        if let Err(problems) = crate::ir::verify(func) {
            panic!(
                "compiler bug: the IR is invalid after {pass}:\n{}\n{}",
                problems.join("\n"),
                print_function(func)
            );
        }
    }
}
