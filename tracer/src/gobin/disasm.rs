//! Where to put uprobes in one Go function: after the stack-growth check for entry (cheap to
//! probe, and fires once per call even when the stack grows), and on every RET for returns
//! (uretprobes break Go's stack walker).
//!
//! The prologue the Go compiler emits on amd64 (R14 holds `g`; `g.stackguard0` is at 0x10):
//!   small frame:  cmp rsp,[r14+10h]                      ; jbe morestack
//!   big frame:    lea r12,[rsp-N] ; cmp r12,[r14+10h]    ; jbe morestack
//!   huge frame:   mov r12,rsp ; sub r12,N ; jb morestack ; cmp r12,[r14+10h] ; jbe morestack
//! Assembly functions (ABI0) load `g` from TLS first (`mov rcx,fs:[-8]`), then compare the
//! same way. We accept any base register, require the 0x10 displacement, and stop looking at
//! the first other control-flow instruction.

use iced_x86::{
    Decoder, DecoderOptions, EncodingKind, FlowControl, Formatter, Instruction, IntelFormatter,
    Mnemonic, OpKind, Register,
};

/// Offset of `g.stackguard0`: stable since Go 1.x began (stack: lo, hi).
const STACKGUARD0: u64 = 0x10;
/// The check is within the first few instructions; looking further only risks false hits.
const PROLOGUE_WINDOW: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// The first instruction after the stack-growth check's conditional jump.
    AfterStackCheck,
    /// No stack check (nosplit or frameless leaf): the function's first instruction.
    NoStackCheck,
    /// The stack check's conditional jump itself, used when the instruction after it is
    /// one the kernel would single-step (Go 1.19-1.20 open frames with `sub rsp`, ~13 us
    /// a hit) while it emulates a jump (~1 us). A hit whose flags say the jump is taken is
    /// not a call yet: the stack grows and the function starts again. The kernel side
    /// drops those hits, so a call is still reported once.
    StackCheckJump,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbePlan {
    /// Virtual address for the entry probe.
    pub entry: u64,
    pub entry_kind: EntryKind,
    /// The instruction at `entry`, Intel syntax, for display (e.g. `push rbp`).
    pub entry_insn: String,
    /// Every RET in `[entry, end)`.
    pub rets: Vec<u64>,
    /// Direct JMP/Jcc whose target is outside the function: the call leaves without a RET.
    pub tail_jumps: Vec<u64>,
    /// Indirect JMPs (`jmp reg` / `jmp [mem]`). In compiled Go these are `switch` jump
    /// tables that stay inside the function; in assembly (e.g. runtime.gogo) they may leave.
    pub indirect_jumps: Vec<u64>,
}

/// Every instruction of `code` decoded linearly from `start`; bytes that do not decode
/// give an invalid instruction and decoding goes on after it.
pub(crate) fn decode_all(code: &[u8], start: u64) -> Vec<Instruction> {
    #[cfg(fuzzing)]
    return unchanged_code::decode_all(code, start);
    #[cfg(not(fuzzing))]
    decode_uncached(code, start)
}

fn decode_uncached(code: &[u8], start: u64) -> Vec<Instruction> {
    Decoder::with_ip(64, code, start, DecoderOptions::NONE)
        .into_iter()
        .collect()
}

/// Fuzzing builds only: `gobin_patch` queries real binaries whose code a patch rarely
/// touches, and decodes the same functions many times per input (each probe site, the
/// plan, the mutex sites, the runtime globals). Decoding identical bytes at the same
/// address again only costs time, so such a decoding is reused; code a patch changed, or
/// a function whose bounds it moved, is decoded afresh.
#[cfg(fuzzing)]
mod unchanged_code {
    use std::collections::HashMap;
    use std::hash::{Hash, Hasher};
    use std::sync::Mutex;

    use super::*;

    /// Bytes of code whose decodings are kept (about ten times that in instructions);
    /// past it, all are dropped.
    const KEPT_CODE_BYTES: usize = 8 << 20;

    struct Kept {
        /// By a hash of (address, bytes): the address, the bytes and their decoding.
        by_hash: HashMap<u64, Vec<(u64, Vec<u8>, Vec<Instruction>)>>,
        code_bytes: usize,
    }

    static KEPT: Mutex<Option<Kept>> = Mutex::new(None);

    pub(super) fn decode_all(code: &[u8], start: u64) -> Vec<Instruction> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (start, code).hash(&mut h);
        let hash = h.finish();
        let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
        let kept = kept.get_or_insert_with(|| Kept {
            by_hash: HashMap::new(),
            code_bytes: 0,
        });
        if let Some(found) = kept.by_hash.get(&hash).and_then(|same| {
            same.iter()
                .find(|(at, bytes, _)| *at == start && bytes.as_slice() == code)
        }) {
            return found.2.clone();
        }
        let insns = decode_uncached(code, start);
        if kept.code_bytes + code.len() > KEPT_CODE_BYTES {
            kept.by_hash.clear();
            kept.code_bytes = 0;
        }
        kept.code_bytes += code.len();
        kept.by_hash
            .entry(hash)
            .or_default()
            .push((start, code.to_vec(), insns.clone()));
        insns
    }
}

/// Plans probes for the function whose machine code is `code`, loaded at `start`.
pub(crate) fn plan(code: &[u8], start: u64) -> Result<ProbePlan, String> {
    let end = start.saturating_add(code.len() as u64);
    let insns = decode_all(code, start);
    let first = insns
        .first()
        .filter(|i| !i.is_invalid())
        .ok_or("the function's first instruction does not decode")?;

    let (entry_ins, entry_kind) = match stack_check_end(&insns) {
        Some(i) => {
            let after = insns
                .get(i)
                .ok_or("the function ends right after its stack check")?;
            if is_push_rbp(after) {
                (after, EntryKind::AfterStackCheck)
            } else {
                (&insns[i - 1], EntryKind::StackCheckJump)
            }
        }
        None => (first, EntryKind::NoStackCheck),
    };
    let entry = entry_ins.ip();

    let mut plan = ProbePlan {
        entry,
        entry_kind,
        entry_insn: format_insn(entry_ins),
        rets: Vec::new(),
        tail_jumps: Vec::new(),
        indirect_jumps: Vec::new(),
    };
    for ins in insns.iter().filter(|i| i.ip() >= entry) {
        match ins.flow_control() {
            FlowControl::Return => plan.rets.push(ins.ip()),
            FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch
                if is_near_branch(ins) =>
            {
                let target = ins.near_branch_target();
                if target < start || target >= end {
                    plan.tail_jumps.push(ins.ip());
                }
            }
            FlowControl::IndirectBranch => plan.indirect_jumps.push(ins.ip()),
            _ => {}
        }
    }
    Ok(plan)
}

/// `push rbp`: the kernel emulates it, so a probe there costs one trap.
fn is_push_rbp(ins: &Instruction) -> bool {
    ins.mnemonic() == Mnemonic::Push
        && ins.op0_kind() == OpKind::Register
        && ins.op0_register() == Register::RBP
}

/// Start addresses of the instructions of `code` decoded linearly from `start`, and the
/// bytes of each: the only addresses a probe may use.
pub(crate) fn instruction_starts(code: &[u8], start: u64) -> Vec<(u64, usize)> {
    decode_all(code, start)
        .iter()
        .map(|i| (i.ip(), i.len()))
        .collect()
}

/// Why the kernel would refuse a uprobe on this instruction (arch/x86 uprobes accept only
/// instructions they can single-step or emulate safely), or `None` if it should accept it.
pub(crate) fn kernel_refusal(code: &[u8], ip: u64) -> Option<String> {
    let ins = Decoder::with_ip(64, code, ip, DecoderOptions::NONE).decode();
    let name = || format_insn(&ins);
    if ins.is_invalid() {
        return Some("not a valid instruction".into());
    }
    if ins.has_lock_prefix() {
        return Some(format!("`{}` has a LOCK prefix", name()));
    }
    if matches!(
        ins.segment_prefix(),
        Register::ES | Register::CS | Register::SS | Register::DS
    ) {
        return Some(format!("`{}` has a segment prefix", name()));
    }
    if matches!(
        ins.encoding(),
        EncodingKind::EVEX | EncodingKind::XOP | EncodingKind::D3NOW | EncodingKind::MVEX
    ) {
        return Some(format!("`{}` is an AVX-512/EVEX instruction", name()));
    }
    let refused = matches!(
        ins.mnemonic(),
        Mnemonic::Int3
            | Mnemonic::Int
            | Mnemonic::Into
            | Mnemonic::Int1
            | Mnemonic::Hlt
            | Mnemonic::In
            | Mnemonic::Out
            | Mnemonic::Insb
            | Mnemonic::Insw
            | Mnemonic::Insd
            | Mnemonic::Outsb
            | Mnemonic::Outsw
            | Mnemonic::Outsd
            | Mnemonic::Ud0
            | Mnemonic::Ud1
            | Mnemonic::Ud2
    ) || (ins.mnemonic() == Mnemonic::Mov
        && ins.op0_kind() == OpKind::Register
        && ins.op0_register() == Register::SS);
    refused.then(|| format!("the kernel does not probe `{}`", name()))
}

/// Index of the instruction after the stack check's JBE, if the prologue has one.
fn stack_check_end(insns: &[Instruction]) -> Option<usize> {
    for (i, ins) in insns.iter().take(PROLOGUE_WINDOW).enumerate() {
        if is_stackguard_cmp(ins) {
            let jump = insns.get(i + 1)?;
            // JNA is the same instruction as JBE; iced names it Jbe.
            return (jump.mnemonic() == Mnemonic::Jbe).then_some(i + 2);
        }
        // Only the huge-frame `jb` (wraparound check) may branch before the compare.
        let allowed = ins.flow_control() == FlowControl::Next || ins.mnemonic() == Mnemonic::Jb;
        if !allowed || ins.is_invalid() {
            return None;
        }
    }
    None
}

/// `cmp rsp|r12, [reg+10h]` (either operand order).
fn is_stackguard_cmp(ins: &Instruction) -> bool {
    if ins.mnemonic() != Mnemonic::Cmp {
        return false;
    }
    let guard_mem = ins.memory_displacement64() == STACKGUARD0
        && ins.memory_index() == Register::None
        && ins.memory_base().is_gpr64();
    let sp_like = |r: Register| matches!(r, Register::RSP | Register::R12);
    match (ins.op0_kind(), ins.op1_kind()) {
        (OpKind::Register, OpKind::Memory) => guard_mem && sp_like(ins.op0_register()),
        (OpKind::Memory, OpKind::Register) => guard_mem && sp_like(ins.op1_register()),
        _ => false,
    }
}

fn is_near_branch(ins: &Instruction) -> bool {
    matches!(
        ins.op0_kind(),
        OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
    )
}

/// Whether an operand access writes (always or conditionally).
pub(crate) fn writes(access: iced_x86::OpAccess) -> bool {
    use iced_x86::OpAccess::*;
    matches!(access, Write | CondWrite | ReadWrite | ReadCondWrite)
}

pub(crate) fn format_insn(ins: &Instruction) -> String {
    let mut out = String::new();
    IntelFormatter::new().format(ins, &mut out);
    out
}
