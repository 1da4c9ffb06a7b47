//! The IR verifier: checks every invariant of the module documentation and reports
//! every violation with the instruction it is at.
//!
//! In: any [`Function`]. Out: `Ok(())` or the list of problems. Tests run it after
//! every pass; a failure is a compiler bug, reported with the printed IR.

use super::*;

/// Checks a function; returns every problem found, each naming its instruction.
pub fn verify(func: &Function) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    for (k, inst) in func.insts.iter().enumerate() {
        let mut ok = true;
        for v in inst.op.operands() {
            if v.index() >= k {
                problems.push(format!("v{k}: operand {v} does not precede it"));
                ok = false;
            }
        }
        for d in inst.ty.shape.iter().chain(shape_attr(&inst.op)) {
            if let Dim::Sym(DimVar(n)) = d {
                if *n as usize >= func.dims.len() {
                    problems.push(format!("v{k}: unknown dimension #{n}"));
                    ok = false;
                }
            }
        }
        if inst.ty.rank() > 2 {
            problems.push(format!("v{k}: rank {} > 2", inst.ty.rank()));
        }
        if !ok {
            continue;
        }
        match inst
            .op
            .result_type(&|v| &func.insts[v.index()].ty, &func.args)
        {
            Ok(ty) if ty == inst.ty => {}
            Ok(ty) => problems.push(format!(
                "v{k}: stored type {:?} but the op gives {:?}",
                inst.ty, ty
            )),
            Err(msg) => problems.push(format!("v{k}: {msg}")),
        }
        match &inst.op {
            Op::Gather(_, i) | Op::ScatterAdd(_, i, _) | Op::Pick(_, i) | Op::OneHot(i, _)
                if !matches!(func.op(*i), Op::Arg(_) | Op::ConstInt(_)) =>
            {
                problems.push(format!(
                    "v{k}: index {i} is not an int argument or constant"
                ));
            }
            _ => {}
        }
    }
    let mut loss_count = 0;
    for r in &func.results {
        if r.value.index() >= func.insts.len() {
            problems.push(format!("result {}: {} out of range", r.name, r.value));
            continue;
        }
        match r.role {
            ResultRole::Loss => {
                loss_count += 1;
                if func.ty(r.value) != &Type::real_scalar() {
                    problems.push("the loss is not a real scalar".to_string());
                }
            }
            ResultRole::Grad(p) => match func.args.get(p as usize) {
                Some(a) if a.role == ArgRole::Param => {
                    if func.ty(r.value) != &a.ty {
                        problems.push(format!("grad {}: type differs from the param's", r.name));
                    }
                }
                _ => problems.push(format!("grad {}: argument {p} is not a param", r.name)),
            },
            ResultRole::Output => {}
        }
    }
    if loss_count > 1 {
        problems.push(format!("{loss_count} loss results"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn shape_attr(op: &Op) -> Vec<&Dim> {
    match op {
        Op::Broadcast(_, s) | Op::Reshape(_, s) => s.iter().collect(),
        Op::ScatterAdd(_, _, d) | Op::OneHot(_, d) => vec![d],
        _ => Vec::new(),
    }
}
