//! Operand order of the fused multiply-adds of a translated loop nest.
//!
//! In: a Cranelift function. Out: the same function in which each `fma x, y, z` whose
//! first factor `x` is still needed afterwards, and whose second factor `y` is not, reads
//! `fma y, x, z` instead (the same value: the two factors commute exactly).
//!
//! Why: Cranelift's x86-64 backend lowers `fma x, y, z` to `vfmadd213pd`, which
//! overwrites the register of `x`. When `x` lives on, the register allocator first copies
//! it to a fresh register; when `y` is the factor that dies, writing it first saves that
//! copy. The inline math of [`super::math`] multiplies a live argument by a constant
//! loaded for the one use all the time (the fused workload's loop body had 11 such
//! copies per iteration).

use cranelift::codegen::entity::SecondaryMap;
use cranelift::codegen::ir::{Block, Function, Inst, Opcode, Value};

/// Where a value is used: not at all, in one block (with the last instruction using it
/// there), or in several blocks.
#[derive(Clone, Copy, Default)]
enum Uses {
    #[default]
    Unused,
    InOneBlock(Block, Inst),
    InSeveralBlocks,
}

/// Swaps the factors of every `fma` of `func` whose first factor lives on past it and
/// whose second factor does not.
pub(crate) fn order_fma_operands(func: &mut Function) {
    // Dense tables (a loop body has hundreds of values): no hashing.
    let mut uses: SecondaryMap<Value, Uses> = SecondaryMap::with_capacity(func.dfg.num_values());
    for block in func.layout.blocks() {
        for inst in func.layout.block_insts(block) {
            for v in func.dfg.inst_values(inst) {
                uses[v] = match uses[v] {
                    Uses::Unused => Uses::InOneBlock(block, inst),
                    Uses::InOneBlock(other, _) if other == block => Uses::InOneBlock(block, inst),
                    _ => Uses::InSeveralBlocks,
                };
            }
        }
    }
    let dies_at = |func: &Function, v: Value, inst: Inst| {
        let defined_here = match func.dfg.value_def(v) {
            cranelift::codegen::ir::ValueDef::Result(def, _) => {
                func.layout.inst_block(def) == func.layout.inst_block(inst)
            }
            _ => false,
        };
        defined_here && matches!(uses[v], Uses::InOneBlock(_, last) if last == inst)
    };
    let fmas: Vec<Inst> = func
        .layout
        .blocks()
        .flat_map(|block| func.layout.block_insts(block))
        .filter(|&inst| func.dfg.insts[inst].opcode() == Opcode::Fma)
        .collect();
    for inst in fmas {
        let args = func.dfg.inst_args(inst);
        let (x, y, z) = (args[0], args[1], args[2]);
        if x != y && !dies_at(func, x, inst) && dies_at(func, y, inst) {
            func.dfg.inst_args_mut(inst).copy_from_slice(&[y, x, z]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cranelift::codegen::ir::UserFuncName;
    use cranelift::codegen::isa::CallConv;
    use cranelift::prelude::*;

    /// The factors of each `fma` of `func`, in order.
    fn factors(func: &Function) -> Vec<(Value, Value)> {
        let block = func.layout.entry_block().unwrap();
        func.layout
            .block_insts(block)
            .filter(|&inst| func.dfg.insts[inst].opcode() == Opcode::Fma)
            .map(|inst| (func.dfg.inst_args(inst)[0], func.dfg.inst_args(inst)[1]))
            .collect()
    }

    #[test]
    fn the_factor_that_dies_is_written_first() {
        let mut sig = Signature::new(CallConv::SystemV);
        sig.params.push(AbiParam::new(types::F64));
        sig.returns.push(AbiParam::new(types::F64));
        let mut func = Function::with_name_signature(UserFuncName::default(), sig);
        let mut builder_ctx = FunctionBuilderContext::new();
        let mut b = FunctionBuilder::new(&mut func, &mut builder_ctx);
        let block = b.create_block();
        b.append_block_params_for_function_params(block);
        b.switch_to_block(block);
        let x = b.block_params(block)[0];
        let t = b.ins().fmul(x, x);
        let (c3, c1, c2) = (
            b.ins().f64const(3.0),
            b.ins().f64const(1.0),
            b.ins().f64const(2.0),
        );
        // `t` is used again below, the constant only here: swapped.
        let u = b.ins().fma(t, c3, c1);
        // `u` dies here: kept.
        let v = b.ins().fma(u, c2, t);
        // Both factors live on: kept.
        let w = b.ins().fma(t, v, v);
        // A function parameter never dies inside the body: its partner goes first.
        let c4 = b.ins().f64const(4.0);
        let r = b.ins().fma(x, c4, w);
        let r = b.ins().fadd(r, t);
        let r = b.ins().fadd(r, v);
        b.ins().return_(&[r]);
        b.seal_all_blocks();
        let flags = settings::Flags::new(settings::builder());
        let isa = cranelift_native::builder()
            .expect("a host Cranelift supports")
            .finish(flags.clone())
            .expect("host ISA");
        b.finalize(isa.frontend_config());

        order_fma_operands(&mut func);

        assert_eq!(factors(&func), vec![(c3, t), (u, c2), (t, v), (c4, x)]);
        cranelift::codegen::verify_function(&func, &flags).expect("still valid");
    }
}
