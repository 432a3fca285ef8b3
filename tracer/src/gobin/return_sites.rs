//! Where a function's return can be read without probing its `RET`.
//!
//! A uprobe on `RET` is single-stepped (two traps); one on a jump is emulated by the
//! kernel (one trap). So a call's results are read in its caller instead: at the first
//! control transfer after the `CALL`, when the code between the return address and it
//! is straight-line, writes none of the result registers, and no jump lands in it. Then
//! every hit there is one return of the callee from that call, with its results still in
//! their registers. The stack depth the hit reports is corrected by what the callee's
//! frame held (the return address, and the caller's own frame when the site is the
//! caller's `RET`), so it pairs with the callee's entry like a `RET` hit does.
//!
//! A call the analysis cannot see (through an interface, a function value, reflection)
//! returns nowhere probed: callers check the return address its entry finds at `[RSP]`
//! against [`ReturnSite::return_address`].

use iced_x86::{Code, FlowControl, Instruction, InstructionInfoFactory, OpKind, Register};

use super::{Function, GoBinary, disasm};

/// Instructions looked at after a return address; results read later than this are
/// not worth the proof.
const MAX_STRAIGHT_LINE: usize = 24;

/// One direct call of the callee, and where its return is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReturnSite {
    /// What `[RSP]` holds at the callee's entry for a call from here.
    pub return_address: u64,
    /// Where the probe goes.
    pub probe_at: u64,
    /// Bytes to add to the probe's stack depth to get the callee's entry's.
    pub depth_adjust: u64,
    /// The probe sits on a jump the kernel emulates; else on the caller's own `RET`
    /// (single-stepped, as the callee's would be: the call is in tail position).
    pub emulated: bool,
}

/// Every direct call of `callee` in the binary, each with its return site, or why the
/// returns cannot all be read that way (then probe the callee's `RET`s). `results`: the
/// ABI registers the callee's results are in (and anything else read at its return).
pub fn return_sites(
    bin: &GoBinary,
    callee: &Function,
    results: &[Register],
) -> Result<Vec<ReturnSite>, String> {
    let mut sites = Vec::new();
    for f in bin.functions() {
        let Some(code) = bin.code(f) else { continue };
        let calls = call_candidates(code, f.entry, callee.entry);
        if calls.is_empty() {
            continue;
        }
        let insns = bin
            .decoded(f, code)
            .map_err(|why| format!("{} calls it, but {why}", f.name))?;
        for at in calls {
            // A candidate that is not an instruction of our decoding was bytes of another
            // instruction (an immediate, a displacement): not a call.
            let Ok(i) = insns.binary_search_by_key(&at, Instruction::ip) else {
                continue;
            };
            if insns[i].code() != Code::Call_rel32_64 {
                continue;
            }
            sites.push(site_after(bin, f, &insns, i, results)?);
        }
    }
    if sites.is_empty() {
        return Err("no direct call of it was found".into());
    }
    Ok(sites)
}

/// Addresses in `code` (loaded at `start`) of byte patterns `CALL rel32` to `target`.
fn call_candidates(code: &[u8], start: u64, target: u64) -> Vec<u64> {
    memchr::memchr_iter(0xe8, code)
        .filter_map(|i| {
            let rel = i32::from_le_bytes(code.get(i + 1..i + 5)?.try_into().ok()?);
            let next = start.checked_add(i as u64 + 5)?;
            (next.wrapping_add_signed(rel as i64) == target).then_some(start + i as u64)
        })
        .collect()
}

/// The return site of the call `insns[at]` in `f`.
fn site_after(
    bin: &GoBinary,
    f: &Function,
    insns: &[Instruction],
    at: usize,
    results: &[Register],
) -> Result<ReturnSite, String> {
    let call = &insns[at];
    let why = |what: String| format!("its call in {} at {:#x}: {what}", f.name, call.ip());
    if let Some(jump) = insns
        .iter()
        .find(|i| i.flow_control() == FlowControl::IndirectBranch)
    {
        return Err(why(format!(
            "{} has an indirect jump at {:#x} (a jump table could land after the call)",
            f.name,
            jump.ip()
        )));
    }
    let targets: Vec<u64> = insns
        .iter()
        .filter(|i| is_near_branch(i))
        .map(Instruction::near_branch_target)
        .collect();
    let mut info = InstructionInfoFactory::new();
    let return_address = call.next_ip();
    for ins in insns.iter().skip(at + 1).take(MAX_STRAIGHT_LINE) {
        if targets.contains(&ins.ip()) {
            return Err(why(format!(
                "a jump lands at {:#x}, between the call and where its results would be read",
                ins.ip()
            )));
        }
        if ins.is_invalid() {
            return Err(why(format!("{:#x} does not decode", ins.ip())));
        }
        if let Some(reg) = overwritten(&mut info, ins, results) {
            return Err(why(format!(
                "`{}` overwrites {reg:?} before the results are read",
                disasm::format_insn(ins)
            )));
        }
        if let Some(mem) = stores_off_stack(&mut info, ins) {
            return Err(why(format!(
                "`{}` stores to memory through {mem:?} before the results are read",
                disasm::format_insn(ins)
            )));
        }
        let emulated = match ins.flow_control() {
            FlowControl::Next => continue,
            FlowControl::ConditionalBranch | FlowControl::UnconditionalBranch
                if is_near_branch(ins) && emulated_branch(bin, f, ins) =>
            {
                true
            }
            // A call other than to `runtime.deferreturn`: a recovered panic resumes at
            // that call, which would read as a return of the callee.
            FlowControl::Call
                if emulated_branch(bin, f, ins)
                    && !calls_deferreturn(bin, ins.near_branch_target()) =>
            {
                true
            }
            FlowControl::Return => false,
            _ => {
                return Err(why(format!(
                    "the first control transfer after it, `{}`, cannot carry a probe cheaply",
                    disasm::format_insn(ins)
                )));
            }
        };
        let depth_adjust = depth_adjust(bin, f, return_address, ins.ip())
            .ok_or_else(|| why("the stack-pointer table gives no frame size there".to_string()))?;
        return Ok(ReturnSite {
            return_address,
            probe_at: ins.ip(),
            depth_adjust,
            emulated,
        });
    }
    Err(why(format!(
        "no control transfer within {MAX_STRAIGHT_LINE} instructions after it"
    )))
}

/// The stack depth the callee's entry had, less the probe's: the return address (8)
/// plus what the caller's frame shrank by between the return address and the probe
/// (its epilogue, when the probe is its `RET`), from the compiler's own table.
fn depth_adjust(bin: &GoBinary, f: &Function, return_address: u64, probe: u64) -> Option<u64> {
    let at_return = bin.sp_delta_at(f, return_address)?;
    let at_probe = bin.sp_delta_at(f, probe)?;
    let adjust = 8 + at_return.checked_sub(at_probe)?;
    (adjust % 8 == 0 && adjust <= tracer_common::MAX_DEPTH_ADJUST).then_some(adjust)
}

/// A result register (as its 64-bit register) that `ins` writes, or `R14` (`g`, read by
/// every probe).
fn overwritten(
    info: &mut InstructionInfoFactory,
    ins: &Instruction,
    results: &[Register],
) -> Option<Register> {
    info.info(ins)
        .used_registers()
        .iter()
        .filter(|u| disasm::writes(u.access()))
        .map(|u| u.register().full_register())
        .find(|r| *r == Register::R14 || results.contains(r))
}

/// The base register of a store `ins` makes anywhere but the goroutine's stack (spills
/// go through RSP or RBP): such a store could change what the results point at.
fn stores_off_stack(info: &mut InstructionInfoFactory, ins: &Instruction) -> Option<Register> {
    info.info(ins)
        .used_memory()
        .iter()
        .filter(|m| disasm::writes(m.access()))
        .map(|m| m.base())
        .find(|b| !matches!(b, Register::RSP | Register::RBP))
}

/// The kernel emulates `JMP`, `Jcc` (8- or 32-bit displacement) and `CALL rel32`
/// without prefixes (it refuses to emulate a 16-bit operand-size one); Go emits none.
fn emulated_branch(bin: &GoBinary, f: &Function, ins: &Instruction) -> bool {
    let Some(code) = bin.code(f) else {
        return false;
    };
    let at = (ins.ip() - f.entry) as usize;
    matches!(
        code.get(at..at + ins.len()),
        Some([0xe8 | 0xe9 | 0xeb | 0x70..=0x7f, ..] | [0x0f, 0x80..=0x8f, ..])
    )
}

fn calls_deferreturn(bin: &GoBinary, target: u64) -> bool {
    bin.function_at(target)
        .is_none_or(|f| f.name == "runtime.deferreturn")
}

fn is_near_branch(ins: &Instruction) -> bool {
    matches!(
        ins.op0_kind(),
        OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions};

    fn one(bytes: &[u8]) -> Instruction {
        Decoder::with_ip(64, bytes, 0x1000, DecoderOptions::NONE).decode()
    }

    #[test]
    fn a_result_register_written_or_a_store_off_the_stack_refuses_the_site() {
        let mut info = InstructionInfoFactory::new();
        let results = [Register::RAX, Register::RBX, Register::RCX, Register::RDI];
        // mov rdx, rax: reads a result, writes another register.
        assert_eq!(
            overwritten(&mut info, &one(&[0x48, 0x89, 0xc2]), &results),
            None
        );
        // mov eax, edx: writes (the low half of) RAX.
        assert_eq!(
            overwritten(&mut info, &one(&[0x89, 0xd0]), &results),
            Some(Register::RAX)
        );
        // mov r14, rdx: `g`.
        assert_eq!(
            overwritten(&mut info, &one(&[0x49, 0x89, 0xd6]), &results),
            Some(Register::R14)
        );
        // mov [rsp+40h], rax: a spill.
        assert_eq!(
            stores_off_stack(&mut info, &one(&[0x48, 0x89, 0x44, 0x24, 0x40])),
            None
        );
        // mov [rdx], rax: a store through a pointer.
        assert_eq!(
            stores_off_stack(&mut info, &one(&[0x48, 0x89, 0x02])),
            Some(Register::RDX)
        );
    }

    #[test]
    fn call_candidates_are_the_rel32_calls_to_the_target() {
        // call +0 (to 0x1005), then bytes whose E8 lands elsewhere, then call -0x0f (to
        // 0x1005 again from 0x1014).
        let code = [
            0xe8, 0, 0, 0, 0, 0x90, 0xe8, 1, 0, 0, 0, 0x90, 0x90, 0x90, 0x90, 0xe8, 0xf1, 0xff,
            0xff, 0xff,
        ];
        assert_eq!(call_candidates(&code, 0x1000, 0x1005), vec![0x1000, 0x100f]);
    }
}
