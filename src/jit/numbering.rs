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

use cranelift::codegen::entity::{packed_option::PackedOption, SecondaryMap};
use cranelift::codegen::ir::{self, Function, Inst, InstructionData, Opcode, Type, Value};

/// Per value, the value it is keyed by when it is not itself: the first equal constant
/// or computation of its block. Dense (no hashing): a loop body has hundreds of values.
type Numbers = SecondaryMap<Value, PackedOption<Value>>;

/// Replaces repeated pure computations within each block of `func` by their first
/// occurrence.
pub(crate) fn number_values(func: &mut Function) {
    // Aliases left by the function builder are resolved first; those this pass makes
    // are looked through by `number` and resolved at the end.
    func.dfg.resolve_all_aliases();
    let mut number: Numbers = SecondaryMap::with_capacity(func.dfg.num_values());
    let blocks: Vec<ir::Block> = func.layout.blocks().collect();
    let mut insts: Vec<Inst> = Vec::new();
    let mut repeated_constants: Vec<Inst> = Vec::new();
    let mut seen: rustc_hash::FxHashMap<(InstructionData, Type), Value> = Default::default();
    for block in blocks {
        seen.clear();
        insts.clear();
        insts.extend(func.layout.block_insts(block));
        for &inst in &insts {
            let Some((key, ty, result)) = numbered_form(func, inst, &number) else {
                continue;
            };
            let is_constant = matches!(
                key.opcode(),
                Opcode::Iconst | Opcode::F64const | Opcode::F32const | Opcode::Vconst
            );
            match seen.get(&(key, ty)) {
                Some(&first) if is_constant => {
                    number[result] = first.into();
                    repeated_constants.push(inst);
                }
                Some(&first) => {
                    number[result] = first.into();
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
    let mut used: SecondaryMap<Value, bool> = SecondaryMap::with_capacity(func.dfg.num_values());
    for block in func.layout.blocks() {
        for inst in func.layout.block_insts(block) {
            for v in func.dfg.inst_values(inst) {
                used[v] = true;
            }
        }
    }
    for &inst in candidates {
        if !used[func.dfg.first_result(inst)] {
            func.layout.remove_inst(inst);
        }
    }
}

/// `inst` with its operands replaced by their numbers, its result type and its result,
/// if it is a pure instruction of a fixed-operand format (so the copy shares no value
/// list with the original, and equal copies are equal data).
fn numbered_form(
    func: &mut Function,
    inst: Inst,
    number: &Numbers,
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
        |v| number[v].expand().unwrap_or(v),
    );
    Some((key, ty, result))
}
