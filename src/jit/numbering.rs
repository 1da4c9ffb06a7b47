//! Local value numbering of a translated loop nest.
//!
//! In: a Cranelift function as [`super::translate`] emits it. Out: the same function in
//! which every pure instruction that repeats an earlier one of its block (same opcode,
//! immediates, result type and operands) is gone, its result an alias of the earlier one.
//!
//! Loop nests are compiled without Cranelift's e-graph pass (`Tier::Nest`) because that
//! pass also merges the equal constants of a loop body into one long-lived register each,
//! which the register allocator then spills and reloads on every iteration (the fused
//! workload's loop body: 42 stack accesses with it, 7 without). This pass gives back the
//! part of the e-graph that nests need: the inline math of two functions of the same
//! argument (softplus and sigmoid of `t` both compute `exp(-|t|)`) is computed once.
//! Constants are numbered by their value but never merged: each use keeps its own
//! constant-pool load.

use std::collections::HashMap;

use cranelift::codegen::ir::{self, Function, Inst, InstructionData, Opcode, Type, Value};

/// Replaces repeated pure computations within each block of `func` by their first
/// occurrence.
pub(crate) fn number_values(func: &mut Function) {
    // The value each value is keyed by: itself, or the first equal constant or
    // computation of its block.
    let mut number: HashMap<Value, Value> = HashMap::new();
    let blocks: Vec<ir::Block> = func.layout.blocks().collect();
    let mut insts: Vec<Inst> = Vec::new();
    let mut repeated_constants: Vec<Inst> = Vec::new();
    for block in blocks {
        let mut seen: rustc_hash::FxHashMap<(InstructionData, Type), Value> = Default::default();
        insts.clear();
        insts.extend(func.layout.block_insts(block));
        for &inst in &insts {
            resolve_operands(func, inst);
            let Some((key, ty, result)) = numbered_form(func, inst, &number) else {
                continue;
            };
            let is_constant = matches!(
                key.opcode(),
                Opcode::Iconst | Opcode::F64const | Opcode::F32const | Opcode::Vconst
            );
            match seen.get(&(key, ty)) {
                Some(&first) if is_constant => {
                    number.insert(result, first);
                    repeated_constants.push(inst);
                }
                Some(&first) => {
                    func.layout.remove_inst(inst);
                    func.dfg.detach_inst_results(inst);
                    func.dfg.change_to_alias(result, first);
                }
                None => {
                    seen.insert((key, ty), result);
                }
            }
        }
    }
    func.dfg.resolve_all_aliases();
    remove_unused(func, &repeated_constants);
}

/// Removes those of `candidates` (pure, one result) whose result nothing uses.
fn remove_unused(func: &mut Function, candidates: &[Inst]) {
    let mut used: std::collections::HashSet<Value> = std::collections::HashSet::new();
    for block in func.layout.blocks() {
        for inst in func.layout.block_insts(block) {
            used.extend(func.dfg.inst_values(inst));
        }
    }
    for &inst in candidates {
        if !used.contains(&func.dfg.first_result(inst)) {
            func.layout.remove_inst(inst);
        }
    }
}

/// Points the operands of `inst` past aliases made by earlier merges.
fn resolve_operands(func: &mut Function, inst: Inst) {
    let resolved: Vec<Value> = func
        .dfg
        .inst_values(inst)
        .map(|v| func.dfg.resolve_aliases(v))
        .collect();
    func.dfg.overwrite_inst_values(inst, resolved.into_iter());
}

/// `inst` with its operands replaced by their numbers, its result type and its result,
/// if it is a pure instruction of a fixed-operand format (so the copy shares no value
/// list with the original, and equal copies are equal data).
fn numbered_form(
    func: &mut Function,
    inst: Inst,
    number: &HashMap<Value, Value>,
) -> Option<(InstructionData, Type, Value)> {
    let data = func.dfg.insts[inst];
    let fixed_operands = matches!(
        data,
        InstructionData::Unary { .. }
            | InstructionData::UnaryImm { .. }
            | InstructionData::UnaryIeee64 { .. }
            | InstructionData::UnaryConst { .. }
            | InstructionData::Binary { .. }
            | InstructionData::BinaryImm8 { .. }
            | InstructionData::Ternary { .. }
            | InstructionData::TernaryImm8 { .. }
            | InstructionData::IntCompare { .. }
            | InstructionData::FloatCompare { .. }
            | InstructionData::Shuffle { .. }
            // `bitcast` has this format (for its endianness flags).
            | InstructionData::LoadNoOffset { .. }
            | InstructionData::Load { .. }
    );
    let op = data.opcode();
    // A load is pure when the memory never changes and it cannot trap (the math tables).
    let pure_load = match data {
        InstructionData::Load {
            opcode: Opcode::Load,
            flags,
            ..
        } => {
            let flags = func.dfg.mem_flags[flags];
            flags.readonly() && flags.notrap() && flags.can_move()
        }
        _ => false,
    };
    let pure = pure_load
        || !(op.is_call()
            || op.is_branch()
            || op.is_terminator()
            || op.is_return()
            || op.can_trap()
            || op.can_load()
            || op.can_store()
            || op.other_side_effects());
    if !fixed_operands || !pure || func.dfg.inst_results(inst).len() != 1 {
        return None;
    }
    let result = func.dfg.first_result(inst);
    let ty = func.dfg.value_type(result);
    let mut key = data;
    let dfg = &mut func.dfg;
    key.map_values(
        &mut dfg.value_lists,
        &mut dfg.jump_tables,
        &mut dfg.exception_tables,
        |v| number.get(&v).copied().unwrap_or(v),
    );
    Some((key, ty, result))
}
