//! Dead code elimination: one reverse sweep.
//!
//! In: a function. Out: the same function keeping only the instructions some result
//! needs, compacted and renumbered (operands still precede their users, since the
//! kept instructions stay in their order).

use crate::ir::{FuncResult, Function, Value};

/// Drops every instruction no result depends on and renumbers the rest.
pub(super) fn dce(func: &Function) -> Function {
    let mut live = vec![false; func.len()];
    for result in &func.results {
        live[result.value.index()] = true;
    }
    for index in (0..func.len()).rev() {
        if live[index] {
            for operand in func.insts[index].op.operands() {
                live[operand.index()] = true;
            }
        }
    }
    let mut out = Function::new(&func.name, func.dims.clone(), func.args.clone());
    let mut renamed: Vec<Option<Value>> = vec![None; func.len()];
    for (index, inst) in func.insts.iter().enumerate() {
        if !live[index] {
            continue;
        }
        let op = inst.op.map_operands(|v| {
            renamed[v.index()].expect("compiler bug: a live operand was dropped by DCE")
        });
        renamed[index] = Some(Value(out.insts.len() as u32));
        out.insts.push(crate::ir::Inst {
            op,
            ty: inst.ty.clone(),
        });
    }
    out.results = func
        .results
        .iter()
        .map(|r| FuncResult {
            value: renamed[r.value.index()].expect("compiler bug: a result was dropped by DCE"),
            ..r.clone()
        })
        .collect();
    out
}
