//! Probe points found in a function's machine code rather than at its entry or at a
//! source line: a call site of a named function, the call of a func value, the block
//! that returns a package-level error. Line numbers move between the releases of one
//! code line (L4's betas put `getOrInitCallInner` at 3625, 3722 and 3732); what the
//! compiler emits for these statements does not, so a profile names them by what they
//! are. Every pattern must match exactly where the profile says (once, or at least
//! once for [`Site::CallsAfterFirstLine`]); anything else refuses the probe, never
//! guesses one.
use std::os::unix::fs::FileExt;

use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

use super::DAGGER;
use crate::gobin::{Function, GoBinary};

/// What to look for inside a profile's function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// The one direct `CALL` of this function (module-relative name). At the call the
    /// callee's register arguments are in place and its stack arguments start at
    /// `[RSP]` (not `[RSP+8]`: no return address is pushed yet). A `CALL rel32` is
    /// emulated by the kernel: one trap, as cheap as an entry probe after the stack check.
    CallTo(&'static str),
    /// Every direct `CALL` of this function except those of the lowest source line that
    /// calls it (e.g. the extra-digest lookups after the recipe digest's).
    CallsAfterFirstLine(&'static str),
    /// The one direct `CALL` of this function from this source line of the probed
    /// function (e.g. `wait` where a caller joins, not where the first caller waits).
    CallOnLine(&'static str, u32),
    /// The one call of a func value: `MOV r, [RDX]` then `CALL r` (Go passes the closure
    /// context in RDX and calls through its first word).
    ClosureCall,
    /// The first instruction of the one block that returns `(nil, <package-level error
    /// variable>)`: both words of the error loaded RIP-relative into RCX and RDI, RAX and
    /// RBX zeroed, then the epilogue and `RET`.
    GlobalErrorReturn,
}

impl Site {
    pub fn describe(&self) -> String {
        match self {
            Site::CallTo(f) => format!("the call of {DAGGER}{f}"),
            Site::CallsAfterFirstLine(f) => {
                format!("calls of {DAGGER}{f} after its first source line")
            }
            Site::CallOnLine(f, line) => format!("the call of {DAGGER}{f} on line {line}"),
            Site::ClosureCall => "the call of its func value argument".into(),
            Site::GlobalErrorReturn => "the return of a package-level error".into(),
        }
    }
}

/// The addresses of `site` inside `f`, or why there are none.
pub fn find(binary: &GoBinary, f: &Function, site: Site) -> Result<Vec<u64>, String> {
    let code = read_code(binary, f)?;
    let instrs = decode(&code, f.entry);
    let callee_entry = |name: &str| {
        let full = format!("{DAGGER}{name}");
        binary
            .functions()
            .iter()
            .find(|g| g.name == full)
            .map(|g| g.entry)
            .ok_or_else(|| format!("{full} is not in this build"))
    };
    let found = match site {
        Site::CallTo(callee) => {
            let target = callee_entry(callee)?;
            exactly_one(calls_to(&instrs, target))?
        }
        Site::CallsAfterFirstLine(callee) => {
            let target = callee_entry(callee)?;
            let lines: Vec<(u64, u32)> = calls_to(&instrs, target)
                .into_iter()
                .map(|pc| (pc, binary.source_line(f, pc).map_or(0, |l| l.line)))
                .collect();
            let first = lines.iter().map(|(_, l)| *l).min().unwrap_or(0);
            let later: Vec<u64> = lines
                .iter()
                .filter(|(_, l)| *l > first)
                .map(|(pc, _)| *pc)
                .collect();
            if later.is_empty() {
                return Err("found none".into());
            }
            later
        }
        Site::CallOnLine(callee, line) => {
            let target = callee_entry(callee)?;
            let on_line = calls_to(&instrs, target)
                .into_iter()
                .filter(|&pc| binary.source_line(f, pc).is_some_and(|l| l.line == line))
                .collect();
            exactly_one(on_line)?
        }
        Site::ClosureCall => exactly_one(closure_calls(&instrs))?,
        Site::GlobalErrorReturn => {
            let is_race_hook = |pc: u64| {
                binary
                    .function_at(pc)
                    .is_some_and(|g| g.entry == pc && g.name.starts_with("runtime.race"))
            };
            exactly_one(global_error_returns(&instrs, &is_race_hook))?
        }
    };
    Ok(found)
}

/// Every direct `CALL` of `callee` from the functions whose full names start with
/// `prefix`: where to probe a function whose own entry the kernel would single-step (a
/// frameless leaf starts with whatever instruction it needs, `TEST` or `MOV`, ~5 us a hit,
/// where a `CALL rel32` is emulated, ~1 us). At the call its arguments are in place.
pub fn callers(binary: &GoBinary, callee: &Function, prefix: &str) -> Result<Vec<u64>, String> {
    let file = std::fs::File::open(binary.path())
        .map_err(|e| format!("cannot read {}: {e}", binary.path().display()))?;
    let mut found = Vec::new();
    for f in binary
        .functions()
        .iter()
        .filter(|f| f.name.starts_with(prefix))
    {
        let Some(offset) = binary.file_offset(f.entry) else {
            continue;
        };
        let mut code = vec![0; (f.end - f.entry) as usize];
        if file.read_exact_at(&mut code, offset).is_err() {
            continue;
        }
        found.extend(calls_to(&decode(&code, f.entry), callee.entry));
    }
    if found.is_empty() {
        return Err(format!("no call of {} in {prefix}*", callee.name));
    }
    Ok(found)
}

fn exactly_one(found: Vec<u64>) -> Result<Vec<u64>, String> {
    match found.len() {
        1 => Ok(found),
        0 => Err("found none".into()),
        n => Err(format!("found {n} places that look like it")),
    }
}

fn read_code(binary: &GoBinary, f: &Function) -> Result<Vec<u8>, String> {
    let offset = binary
        .file_offset(f.entry)
        .ok_or_else(|| format!("{} is not in a loaded segment", f.name))?;
    let file = std::fs::File::open(binary.path())
        .map_err(|e| format!("cannot read {}: {e}", binary.path().display()))?;
    let mut code = vec![0; (f.end - f.entry) as usize];
    file.read_exact_at(&mut code, offset)
        .map_err(|e| format!("cannot read the code of {}: {e}", f.name))?;
    Ok(code)
}

fn decode(code: &[u8], ip: u64) -> Vec<Instruction> {
    let mut d = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
    let mut out = Vec::new();
    while d.can_decode() {
        let i = d.decode();
        if i.is_invalid() {
            // Padding after the last RET (INT3 decodes fine; anything else ends it).
            break;
        }
        out.push(i);
    }
    out
}

fn calls_to(instrs: &[Instruction], target: u64) -> Vec<u64> {
    instrs
        .iter()
        .filter(|i| {
            i.mnemonic() == Mnemonic::Call
                && i.op0_kind() == OpKind::NearBranch64
                && i.near_branch_target() == target
        })
        .map(Instruction::ip)
        .collect()
}

/// `MOV r, [RDX]` followed within a few instructions, `r` untouched, by `CALL r`:
/// the address of the `CALL`.
fn closure_calls(instrs: &[Instruction]) -> Vec<u64> {
    let mut out = Vec::new();
    for (k, i) in instrs.iter().enumerate() {
        let loads_code_pointer = i.mnemonic() == Mnemonic::Mov
            && i.op0_kind() == OpKind::Register
            && i.op1_kind() == OpKind::Memory
            && i.memory_base() == Register::RDX
            && i.memory_index() == Register::None
            && i.memory_displacement64() == 0
            && i.op0_register().size() == 8;
        if !loads_code_pointer {
            continue;
        }
        let r = i.op0_register();
        for next in instrs.iter().skip(k + 1).take(8) {
            if next.mnemonic() == Mnemonic::Call
                && next.op0_kind() == OpKind::Register
                && next.op0_register() == r
            {
                out.push(next.ip());
                break;
            }
            let writes_r = next.op_count() > 0
                && next.op0_kind() == OpKind::Register
                && next.op0_register().full_register() == r.full_register();
            if writes_r || next.flow_control() != iced_x86::FlowControl::Next {
                break;
            }
        }
    }
    out
}

/// Both words of a package-level variable loaded RIP-relative (`[RIP+X]` and
/// `[RIP+X+8]`, either order, a few instructions apart), then straight-line code to a
/// `RET` that zeroes EAX and EBX on the way: `return nil, <error variable>`. Between them
/// only moves, the epilogue and calls of the race detector's hooks (`-race` builds read
/// the variable through `runtime.raceread` and leave through `runtime.racefuncexit`).
/// The address of the first load.
fn global_error_returns(instrs: &[Instruction], is_race_hook: &dyn Fn(u64) -> bool) -> Vec<u64> {
    let rip_load = |i: &Instruction| {
        (i.mnemonic() == Mnemonic::Mov
            && i.op0_kind() == OpKind::Register
            && i.op0_register().size() == 8
            && i.op1_kind() == OpKind::Memory
            && i.is_ip_rel_memory_operand())
        .then(|| i.ip_rel_memory_address())
    };
    let zeroes = |i: &Instruction, reg: Register| {
        i.mnemonic() == Mnemonic::Xor
            && i.op0_kind() == OpKind::Register
            && i.op1_kind() == OpKind::Register
            && i.op0_register() == reg
            && i.op1_register() == reg
    };
    let mut out = Vec::new();
    for k in 0..instrs.len() {
        let Some(x) = rip_load(&instrs[k]) else {
            continue;
        };
        // The other word within the next few instructions.
        let Some(pair_end) = (k + 1..instrs.len().min(k + 5)).find(|&j| {
            rip_load(&instrs[j]).is_some_and(|y| y == x.wrapping_add(8) || x == y.wrapping_add(8))
        }) else {
            continue;
        };
        let (mut rax, mut rbx) = (false, false);
        for next in instrs.iter().skip(pair_end + 1).take(16) {
            if zeroes(next, Register::EAX) {
                rax = true;
            } else if zeroes(next, Register::EBX) {
                rbx = true;
            } else if next.mnemonic() == Mnemonic::Ret {
                if rax && rbx {
                    out.push(instrs[k].ip());
                }
                break;
            } else if next.mnemonic() == Mnemonic::Call {
                let hook = next.op0_kind() == OpKind::NearBranch64
                    && is_race_hook(next.near_branch_target());
                if !hook {
                    break;
                }
            } else if !(is_epilogue(next) || is_move(next)) {
                break;
            }
        }
    }
    // A pair found from both of its loads is one place.
    out.dedup();
    out
}

/// A plain move or address computation (no control flow, no arithmetic on flags).
fn is_move(i: &Instruction) -> bool {
    matches!(i.mnemonic(), Mnemonic::Mov | Mnemonic::Lea)
}

/// `ADD RSP, imm` or `POP RBP`.
fn is_epilogue(i: &Instruction) -> bool {
    match i.mnemonic() {
        Mnemonic::Add => i.op0_kind() == OpKind::Register && i.op0_register() == Register::RSP,
        Mnemonic::Pop => i.op0_kind() == OpKind::Register && i.op0_register() == Register::RBP,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asm(bytes: &[u8]) -> Vec<Instruction> {
        decode(bytes, 0x1000)
    }

    #[test]
    fn a_closure_call_is_found_and_an_interface_call_is_not() {
        // MOV RDX,[RSP+0x370]; MOV RCX,[RDX]; MOV RAX,[RSP+8]; CALL RCX
        let closure = [
            0x48, 0x8b, 0x94, 0x24, 0x70, 0x03, 0x00, 0x00, 0x48, 0x8b, 0x0a, 0x48, 0x8b, 0x44,
            0x24, 0x08, 0xff, 0xd1,
        ];
        assert_eq!(closure_calls(&asm(&closure)), vec![0x1000 + 16]);
        // MOV RCX,[RCX+0x30]; MOV RSI,RCX; CALL RSI (a method through an itab)
        let method = [0x48, 0x8b, 0x49, 0x30, 0x48, 0x89, 0xce, 0xff, 0xd6];
        assert!(closure_calls(&asm(&method)).is_empty());
        // MOV RCX,[RDX]; MOV RCX,[RSP+8]; CALL RCX: the loaded pointer is overwritten.
        let clobbered = [0x48, 0x8b, 0x0a, 0x48, 0x8b, 0x4c, 0x24, 0x08, 0xff, 0xd1];
        assert!(closure_calls(&asm(&clobbered)).is_empty());
    }

    #[test]
    fn the_return_of_a_global_error_is_found() {
        // MOV RCX,[RIP+0x191383]; MOV RDI,[RIP+0x191384]; XOR EAX,EAX; XOR EBX,EBX;
        // ADD RSP,0x318; POP RBP; RET
        let ret = [
            0x48, 0x8b, 0x0d, 0x83, 0x13, 0x19, 0x00, 0x48, 0x8b, 0x3d, 0x84, 0x13, 0x19, 0x00,
            0x31, 0xc0, 0x31, 0xdb, 0x48, 0x81, 0xc4, 0x18, 0x03, 0x00, 0x00, 0x5d, 0xc3,
        ];
        let never = |_: u64| false;
        assert_eq!(global_error_returns(&asm(&ret), &never), vec![0x1000]);
        // The second word not at +8: another variable, not an error's two words.
        let mut other = ret;
        other[10] = 0x90;
        assert!(global_error_returns(&asm(&other), &never).is_empty());
        // A call before the RET: not a plain return, unless it is a race-detector hook.
        let mut call = ret.to_vec();
        call.splice(18..18, [0xe8, 0, 0, 0, 0]);
        assert!(global_error_returns(&asm(&call), &never).is_empty());
        let hook = |pc: u64| pc == 0x1000 + 18 + 5;
        assert_eq!(global_error_returns(&asm(&call), &hook), vec![0x1000]);
        // A branch on the way: not a plain return.
        let mut branch = ret.to_vec();
        branch.splice(18..18, [0x74, 0x00]);
        assert!(global_error_returns(&asm(&branch), &hook).is_empty());
    }

    #[test]
    fn direct_calls_are_found_by_target() {
        // CALL +0x10 (target 0x1015); NOP; CALL -0x20
        let code = [0xe8, 0x10, 0, 0, 0, 0x90, 0xe8, 0xe0, 0xff, 0xff, 0xff];
        let instrs = asm(&code);
        assert_eq!(calls_to(&instrs, 0x1015), vec![0x1000]);
        assert_eq!(calls_to(&instrs, 0x1006 + 5 - 0x20), vec![0x1006]);
    }
}
