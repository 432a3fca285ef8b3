//! Where Go's locks can be watched from outside.
//!
//! The slow paths (`lockSlow`, `unlockSlow`, the runtime semaphores) are real functions,
//! named per Go version. The fast paths of `Mutex.Lock`/`Unlock` are inlined into every
//! caller; the pclntab inline tree still says which instructions came from them. Inside
//! those, the one atomic instruction (`LOCK CMPXCHG` for Lock/TryLock, `LOCK XADD` for
//! Unlock) names the mutex in its memory operand.
//!
//! Where the probe goes decides its cost: the kernel emulates a conditional jump (one trap,
//! about 1 us) but single-steps most other instructions (two traps, about 12 us). The compiler
//! follows the atomic with a short test and a conditional jump (`SETE r; TEST r, r; JNE`
//! after a CAS, `DEC r; JE` after the add), so the probe goes on that jump when the
//! operand's registers are still intact there, and the CAS result is read from the SETE
//! register. Otherwise it goes on the instruction right after the atomic (single-stepped),
//! where the registers are intact and ZF says whether the CAS succeeded.

use iced_x86::{FlowControl, Instruction, InstructionInfoFactory, Mnemonic, OpKind, Register};

use super::{Function, GoBinary};

/// Slow-path functions of the sync primitives and the scheduler, as named in this binary.
#[derive(Debug, Clone, Default)]
pub struct SyncFunctions<'b> {
    /// `sync.(*Mutex).lockSlow` (Go ≤ 1.23) or `internal/sync.(*Mutex).lockSlow` (1.24+);
    /// RAX = the mutex.
    pub lock_slow: Option<&'b Function>,
    pub unlock_slow: Option<&'b Function>,
    /// `runtime.semacquire1(addr, ...)`, `runtime.semrelease1(addr, ...)`: RAX = addr.
    pub semacquire: Option<&'b Function>,
    pub semrelease: Option<&'b Function>,
    /// `runtime.gopark(unlockf, lock, reason, ...)`: CL = reason; runs on the parking g.
    pub gopark: Option<&'b Function>,
    /// `runtime.ready(gp, ...)`: RAX = the goroutine made runnable (runs on g0).
    pub ready: Option<&'b Function>,
}

impl GoBinary {
    /// Finds the slow-path functions under the names this Go version uses.
    pub fn sync_functions(&self) -> SyncFunctions<'_> {
        let find = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| self.functions().iter().find(|f| f.name == *n))
        };
        SyncFunctions {
            lock_slow: find(&["internal/sync.(*Mutex).lockSlow", "sync.(*Mutex).lockSlow"]),
            unlock_slow: find(&[
                "internal/sync.(*Mutex).unlockSlow",
                "sync.(*Mutex).unlockSlow",
            ]),
            semacquire: find(&["runtime.semacquire1"]),
            semrelease: find(&["runtime.semrelease1"]),
            gopark: find(&["runtime.gopark"]),
            ready: find(&["runtime.ready"]),
        }
    }

    /// Inlined (and out-of-line) Mutex Lock/TryLock/Unlock sites in the functions whose
    /// package matches `packages`, plus those in the sync package's own out-of-line
    /// `Mutex.Lock/Unlock` and `RWMutex.Lock/Unlock` (reached through defer, interfaces,
    /// and every RWMutex write lock), so a lock taken or released that way is seen too.
    pub fn mutex_sites(&self, packages: &regex::Regex) -> Vec<MutexSite> {
        let mut out = Vec::new();
        for f in self.functions() {
            let pkg = package_of(&f.name);
            let sync_method = OUT_OF_LINE.contains(&f.name.as_str());
            if !sync_method && (pkg.starts_with("runtime") || !packages.is_match(pkg)) {
                continue;
            }
            let Some(code) = self.code(f) else { continue };
            out.extend(sites_in(&f.name, code, f.entry, |pc| {
                self.frames_at(f, pc).into_iter().next().map(|fr| fr.func)
            }));
        }
        out
    }

    /// The machine code of `f`, if the file holds it.
    pub fn code(&self, f: &Function) -> Option<&[u8]> {
        self.elf.read_vaddr(&self.data, f.entry, f.end - f.entry)
    }
}

/// The sync package's own non-inlined lock methods (see [`GoBinary::mutex_sites`]).
const OUT_OF_LINE: &[&str] = &[
    "sync.(*Mutex).Lock",
    "sync.(*Mutex).Unlock",
    "sync.(*Mutex).TryLock",
    "sync.(*RWMutex).Lock",
    "sync.(*RWMutex).Unlock",
    "internal/sync.(*Mutex).Lock",
    "internal/sync.(*Mutex).Unlock",
    "internal/sync.(*Mutex).TryLock",
];

/// The mutex sites in one function's code loaded at `entry`: each `LOCK CMPXCHG` or `LOCK
/// XADD` whose innermost logical function (`inner_func(pc)`, from the inline tree) is a
/// Mutex method that takes or releases the lock.
pub(crate) fn sites_in(
    function: &str,
    code: &[u8],
    entry: u64,
    inner_func: impl Fn(u64) -> Option<String>,
) -> Vec<MutexSite> {
    let insns = super::disasm::decode_all(code, entry);
    let mut info = InstructionInfoFactory::new();
    // Code reached by a jump as well as from the atomic would not hold what the probe
    // reads: such instructions are not probed.
    let targets: std::collections::HashSet<u64> = insns
        .iter()
        .filter(|i| {
            matches!(
                i.op0_kind(),
                OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
            )
        })
        .map(|i| i.near_branch_target())
        .collect();
    let mut out = Vec::new();
    for (i, ins) in insns.iter().enumerate() {
        let Some(op) = atomic_op(ins) else { continue };
        if insns.get(i + 1).is_none_or(|n| n.is_invalid()) {
            continue;
        }
        let Some(inner) = inner_func(ins.ip()) else {
            continue;
        };
        let kind = match (op, method_of(&inner)) {
            (Mnemonic::Cmpxchg, Some("Lock" | "TryLock")) => SiteKind::Acquire,
            (Mnemonic::Xadd, Some("Unlock")) => SiteKind::Release,
            _ => continue,
        };
        let Some(address) = operand_address(ins) else {
            continue;
        };
        let Some((probe_pc, success, on_jump)) =
            probe_point(&insns, i, kind, ins, &mut info, &targets)
        else {
            continue;
        };
        out.push(MutexSite {
            function: function.to_owned(),
            probe_pc,
            kind,
            address,
            success,
            on_jump,
        });
    }
    out
}

/// `Lock` for `sync.(*Mutex).Lock` and `internal/sync.(*Mutex).Lock`; `None` for anything
/// that is not a Mutex method.
fn method_of(func: &str) -> Option<&str> {
    func.strip_prefix("sync.(*Mutex).")
        .or_else(|| func.strip_prefix("internal/sync.(*Mutex)."))
}

/// The Go package path of a function name: `github.com/a/b.(*T).M` → `github.com/a/b`.
pub fn package_of(name: &str) -> &str {
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].find('.') {
        Some(dot) => &name[..slash + dot],
        None => name,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SiteKind {
    /// After a Lock/TryLock CAS: acquired when ZF is set.
    Acquire,
    /// After an Unlock's atomic add: released.
    Release,
}

/// How to compute the mutex address at the probe: `base + index * scale + disp`, with
/// registers named by their capture numbers (`tracer_common::REG_*`), or a fixed address
/// (a package-level mutex addressed RIP-relative).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SiteAddress {
    Regs {
        base: u8,
        index: Option<(u8, u8)>,
        disp: i64,
    },
    /// Link-time address (add the load bias).
    Fixed(u64),
}

/// Where an acquire site learns whether its CAS succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CasResult {
    /// ZF in RFLAGS (the probe is right after the CAS, single-stepped).
    Zf,
    /// The low byte of this register (capture number), set by `SETE` after the CAS.
    LowByte(u8),
    /// A release site: nothing to learn.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MutexSite {
    /// The function containing the site.
    pub function: String,
    /// Link-time address of the instruction after the atomic one: where the probe goes.
    pub probe_pc: u64,
    pub kind: SiteKind,
    pub address: SiteAddress,
    pub success: CasResult,
    /// The probe sits on a conditional jump (emulated by the kernel: cheap).
    pub on_jump: bool,
}

/// Instructions looked at after the atomic one for the jump that tests its result.
const JUMP_WINDOW: usize = 4;

/// The probe address for the atomic at `insns[i]`, how to read a CAS result there, and
/// whether it is a conditional jump.
fn probe_point(
    insns: &[Instruction],
    i: usize,
    kind: SiteKind,
    atomic: &Instruction,
    info: &mut InstructionInfoFactory,
    targets: &std::collections::HashSet<u64>,
) -> Option<(u64, CasResult, bool)> {
    let next = insns[i + 1].ip();
    if targets.contains(&next) {
        return None;
    }
    let fallback = Some(match kind {
        SiteKind::Acquire => (next, CasResult::Zf, false),
        SiteKind::Release => (next, CasResult::None, false),
    });
    let address_regs: Vec<Register> = [atomic.memory_base(), atomic.memory_index()]
        .into_iter()
        .filter(|r| *r != Register::None)
        .collect();
    let mut sete: Option<Register> = None;
    let mut flags_changed = false;
    for ins in insns.iter().skip(i + 1).take(JUMP_WINDOW) {
        if targets.contains(&ins.ip()) {
            return fallback;
        }
        if ins.flow_control() == FlowControl::ConditionalBranch {
            return match (kind, sete.and_then(reg_number)) {
                (SiteKind::Release, _) => Some((ins.ip(), CasResult::None, true)),
                (SiteKind::Acquire, Some(n)) => Some((ins.ip(), CasResult::LowByte(n), true)),
                (SiteKind::Acquire, None) => fallback,
            };
        }
        if ins.flow_control() != FlowControl::Next {
            return fallback;
        }
        let written: Vec<Register> = info
            .info(ins)
            .used_registers()
            .iter()
            .filter(|u| super::disasm::writes(u.access()))
            .map(|u| u.register().full_register())
            .collect();
        if written.iter().any(|w| address_regs.contains(w))
            || sete.is_some_and(|r| written.contains(&r))
        {
            return fallback;
        }
        if ins.mnemonic() == Mnemonic::Sete && ins.op0_kind() == OpKind::Register {
            // SETE must read the CAS's own ZF, into a low byte.
            let high = matches!(
                ins.op0_register(),
                Register::AH | Register::BH | Register::CH | Register::DH
            );
            if flags_changed || high {
                return fallback;
            }
            sete = Some(ins.op0_register().full_register());
        } else if ins.rflags_modified() != 0 && sete.is_none() {
            flags_changed = true;
        }
    }
    fallback
}

/// `LOCK CMPXCHG [mem], reg` or `LOCK XADD [mem], reg` on 32 bits (Mutex.state is int32).
fn atomic_op(ins: &Instruction) -> Option<Mnemonic> {
    let m = ins.mnemonic();
    (ins.has_lock_prefix()
        && matches!(m, Mnemonic::Cmpxchg | Mnemonic::Xadd)
        && ins.op0_kind() == OpKind::Memory
        && ins.op1_kind() == OpKind::Register
        && ins.op1_register().is_gpr32())
    .then_some(m)
}

fn operand_address(ins: &Instruction) -> Option<SiteAddress> {
    if ins.is_ip_rel_memory_operand() {
        return Some(SiteAddress::Fixed(ins.ip_rel_memory_address()));
    }
    // The registers are read after the instruction ran: one it writes (the source, or
    // EAX for CMPXCHG) would no longer hold the address.
    let written = ins.op1_register().full_register();
    let clobbered =
        |r: Register| r == written || (ins.mnemonic() == Mnemonic::Cmpxchg && r == Register::RAX);
    let base = ins.memory_base();
    if base == Register::None || clobbered(base) {
        return None;
    }
    let index = match ins.memory_index() {
        Register::None => None,
        r if clobbered(r) => return None,
        r => Some((reg_number(r)?, ins.memory_index_scale() as u8)),
    };
    Some(SiteAddress::Regs {
        base: reg_number(base)?,
        index,
        disp: ins.memory_displacement64() as i64,
    })
}

/// Capture register number (see `tracer_common::REG_*`) of a 64-bit register.
fn reg_number(r: Register) -> Option<u8> {
    use tracer_common::{REG_G, REG_R12, REG_R13, REG_R15, REG_RBP, REG_RDX, REG_RSP};
    Some(match r {
        Register::RAX => 0,
        Register::RBX => 1,
        Register::RCX => 2,
        Register::RDI => 3,
        Register::RSI => 4,
        Register::R8 => 5,
        Register::R9 => 6,
        Register::R10 => 7,
        Register::R11 => 8,
        Register::RSP => REG_RSP,
        Register::RDX => REG_RDX,
        Register::R14 => REG_G,
        Register::RBP => REG_RBP,
        Register::R12 => REG_R12,
        Register::R13 => REG_R13,
        Register::R15 => REG_R15,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use iced_x86::{Decoder, DecoderOptions};

    use super::*;

    #[test]
    fn packages_of_function_names() {
        assert_eq!(package_of("main.lockPair"), "main");
        assert_eq!(
            package_of("github.com/dagger/dagger/dagql.(*cache).GetOrInitCall.func3"),
            "github.com/dagger/dagger/dagql"
        );
        assert_eq!(
            package_of("internal/sync.(*Mutex).lockSlow"),
            "internal/sync"
        );
        assert_eq!(package_of("sync.(*Mutex).Lock"), "sync");
    }

    #[test]
    fn decodes_the_mutex_operand() {
        // lock cmpxchg [rdx+0x10], ecx
        let code = [0xf0, 0x0f, 0xb1, 0x4a, 0x10];
        let ins = Decoder::with_ip(64, &code, 0x1000, DecoderOptions::NONE).decode();
        assert_eq!(atomic_op(&ins), Some(Mnemonic::Cmpxchg));
        assert_eq!(
            operand_address(&ins),
            Some(SiteAddress::Regs {
                base: tracer_common::REG_RDX,
                index: None,
                disp: 0x10
            })
        );
        // lock xadd [rip+0x100], ecx: a package-level mutex.
        let code = [0xf0, 0x0f, 0xc1, 0x0d, 0x00, 0x01, 0x00, 0x00];
        let ins = Decoder::with_ip(64, &code, 0x1000, DecoderOptions::NONE).decode();
        assert_eq!(atomic_op(&ins), Some(Mnemonic::Xadd));
        assert_eq!(
            operand_address(&ins),
            Some(SiteAddress::Fixed(0x1000 + 8 + 0x100))
        );
    }
}
