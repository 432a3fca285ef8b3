//! Kernel side: one generic uprobe program for Go functions.
//!
//! It holds no policy. Userspace attaches `go_probe` through multi-uprobe links (one
//! link, many file offsets, limited by the kernel to the traced process) at function
//! entries, at each `RET`, and at other instructions, with a cookie per offset naming the
//! probe and its kind. Every hit copies the same raw facts into the ring buffer: which probe, which goroutine, how deep in its stack, the nine ABI integer
//! registers, and the time. A probe with a spec (from an engine profile) also reads
//! the values the spec names: fields behind pointers, Go strings.
#![no_std]
#![no_main]

use aya_ebpf::{
    EbpfContext,
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, pt_regs},
    helpers::{
        bpf_get_attach_cookie, bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user,
        bpf_probe_read_user_buf,
    },
    macros::{map, uprobe},
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::ProbeContext,
};
use tracer_common::{
    CAPTURE_BYTES, COOKIE_AT_STACK_CHECK, Capture, CaptureSpec, DEPTH_UNKNOWN, ENTRY_SAVED_REGS,
    EntryKey, EntryRegs, FLAGS_BELOW_OR_EQUAL, G_STACK_HI_OFFSET, GOID_UNKNOWN, GoCallEvent,
    GoCaptureEvent, GoStackEvent, LOST_EVENTS_SLOT, MAX_CAPTURES, MAX_DEREFS, MAX_STACK, ProbeSpec,
    SAVED_REGS, SavedRegs, capture_base, capture_kind, spec_key, split_cookie,
};

/// Offset of `goid` in `runtime.g` for the target's Go version; set by the loader.
#[unsafe(no_mangle)]
static GOID_OFFSET: u64 = 152;

/// Default 8 MiB; the loader may resize it.
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(8 * 1024 * 1024, 0);

/// Unread bytes in the ring at which a submit wakes the reader. Below it the reader
/// is not woken (waking it on every event costs about a microsecond per event) and
/// drains on its own short timer instead.
const WAKEUP_BYTES: u64 = 256 * 1024;

/// Events that found the ring buffer full. Userspace sums the CPUs and reports it.
#[map]
static LOST_EVENTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// What each probe with a spec reads, keyed by `spec_key(probe id, kind)`.
#[map]
static PROBE_SPECS: HashMap<u32, ProbeSpec> = HashMap::with_max_entries(4096, 0);

/// Registers of open calls whose RET probes read entry arguments. LRU, so frames a
/// panic skipped cannot fill it.
#[map]
static ENTRY_REGS: LruHashMap<EntryKey, EntryRegs> = LruHashMap::with_max_entries(65536, 0);

/// Scratch space for the registers at a hit (see `capture`).
#[map]
static SCRATCH_REGS: PerCpuArray<SavedRegs> = PerCpuArray::with_max_entries(1, 0);

/// Loaded by userspace as a multi-uprobe program (`BPF_TRACE_UPROBE_MULTI`).
#[uprobe]
pub fn go_probe(ctx: ProbeContext) -> u32 {
    capture(&ctx);
    0
}

#[inline(always)]
fn capture(ctx: &ProbeContext) {
    // The link's pid filter already limits hits to the traced process.
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    // SAFETY: ctx.regs points at the trapped task's saved registers for this hit.
    let regs: &pt_regs = unsafe { &*(ctx.as_ptr() as *const pt_regs) };
    // SAFETY: the helper only reads the cookie stored for this offset of the link.
    let raw_cookie = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    if raw_cookie & COOKIE_AT_STACK_CHECK != 0 && regs.eflags & FLAGS_BELOW_OR_EQUAL != 0 {
        // The stack-check jump will be taken: not a call yet (see COOKIE_AT_STACK_CHECK).
        return;
    }
    let (probe_id, kind, has_spec) = split_cookie(raw_cookie);
    // SAFETY: globals are plain integers the loader rewrites before load; volatile
    // keeps the compiler from folding in the default.
    let goid_offset = unsafe { core::ptr::read_volatile(&GOID_OFFSET) };
    // R14 holds the current g in Go's register ABI.
    let g = regs.r14;
    // SAFETY: user-memory reads through the helper; a fault yields Err, never a crash.
    let goid =
        unsafe { bpf_probe_read_user((g + goid_offset) as *const u64) }.unwrap_or(GOID_UNKNOWN);
    let stack_hi = unsafe { bpf_probe_read_user((g + G_STACK_HI_OFFSET) as *const u64) };
    let stack_depth = match stack_hi {
        Ok(hi) if hi > regs.rsp => hi - regs.rsp,
        _ => DEPTH_UNKNOWN,
    };
    let call = GoCallEvent {
        kind,
        probe_id,
        tgid,
        tid: pid_tgid as u32,
        ts_ns: unsafe { bpf_ktime_get_ns() },
        goid,
        stack_depth,
        regs: [
            regs.rax, regs.rbx, regs.rcx, regs.rdi, regs.rsi, regs.r8, regs.r9, regs.r10, regs.r11,
        ],
    };
    let spec = if has_spec {
        unsafe { PROBE_SPECS.get(spec_key(probe_id, kind)) }
    } else {
        None
    };
    match spec {
        None => {
            let Some(mut entry) = EVENTS.reserve::<GoCallEvent>(0) else {
                count_lost();
                return;
            };
            entry.write(call);
            entry.submit(wakeup_flags());
        }
        Some(spec) if spec.stack != 0 => {
            let Some(mut entry) = EVENTS.reserve::<GoStackEvent>(0) else {
                count_lost();
                return;
            };
            let out = entry.as_mut_ptr();
            // SAFETY: `out` points at reserved ring memory sized for GoStackEvent; every
            // field is written before submit.
            unsafe {
                (*out).call = call;
                (*out).nframes = walk_stack(regs, &mut (*out).pcs);
            }
            entry.submit(wakeup_flags());
        }
        Some(spec) => {
            // The registers at this hit live in a per-CPU slot: with a copy of the entry
            // registers and the event, they would not fit the 512-byte BPF stack.
            let Some(all) = SCRATCH_REGS.get_ptr_mut(0) else {
                return;
            };
            // SAFETY: this CPU's slot, used only while this program runs on it.
            let all = unsafe {
                *all = saved(regs);
                &*all
            };
            let key = EntryKey {
                tgid,
                _pad: 0,
                goid,
                stack_depth,
            };
            if spec.save_entry != 0 {
                let mut kept = EntryRegs {
                    regs: [0; ENTRY_SAVED_REGS],
                };
                kept.regs.copy_from_slice(&all.regs[..ENTRY_SAVED_REGS]);
                let _ = ENTRY_REGS.insert(key, kept, 0);
            }
            // A copy: the map slot may be reused once removed.
            let entry_regs = if spec.use_entry != 0 {
                let found = unsafe { ENTRY_REGS.get(key) }.copied();
                let _ = ENTRY_REGS.remove(key);
                found
            } else {
                None
            };
            let Some(mut entry) = EVENTS.reserve::<GoCaptureEvent>(0) else {
                count_lost();
                return;
            };
            let out = entry.as_mut_ptr();
            // SAFETY: `out` points at reserved ring memory sized for GoCaptureEvent;
            // every field is written before submit.
            unsafe {
                (*out).call = call;
                for i in 0..MAX_CAPTURES {
                    let slot = &mut (*out).captures[i];
                    slot.value = 0;
                    slot.ok = 0;
                    slot.nbytes = 0;
                    if i < spec.ncaptures as usize {
                        read_capture(&spec.captures[i], all, entry_regs.as_ref(), slot);
                    }
                }
            }
            entry.submit(wakeup_flags());
        }
    }
}

#[inline(always)]
fn saved(regs: &pt_regs) -> SavedRegs {
    SavedRegs {
        regs: [
            regs.rax,
            regs.rbx,
            regs.rcx,
            regs.rdi,
            regs.rsi,
            regs.r8,
            regs.r9,
            regs.r10,
            regs.r11,
            regs.rsp,
            regs.rdx,
            regs.r14,
            regs.rbp,
            regs.r12,
            regs.r13,
            regs.r15,
            regs.eflags,
        ],
    }
}

/// The probed PC, the return address at `[RSP]`, then the frame-pointer chain from RBP
/// (Go keeps frame pointers on amd64: `[bp]` is the caller's BP, `[bp+8]` its return
/// address). Valid at a function's entry before `PUSH RBP`, and at a `RET`. Stops at a
/// zero or non-increasing frame pointer, or a fault. Returns how many PCs were written.
#[inline(always)]
fn walk_stack(regs: &pt_regs, pcs: &mut [u64; MAX_STACK]) -> u64 {
    pcs[0] = regs.rip;
    // SAFETY: user-memory reads through the helper; a fault is an Err.
    let Ok(ret) = (unsafe { bpf_probe_read_user(regs.rsp as *const u64) }) else {
        return 1;
    };
    pcs[1] = ret;
    let mut n = 2;
    let mut bp = regs.rbp;
    while n < MAX_STACK {
        if bp == 0 {
            break;
        }
        let next = unsafe { bpf_probe_read_user(bp as *const u64) };
        let ret = unsafe { bpf_probe_read_user((bp + 8) as *const u64) };
        let (Ok(next), Ok(ret)) = (next, ret) else {
            break;
        };
        if ret == 0 {
            break;
        }
        pcs[n] = ret;
        n += 1;
        if next <= bp {
            break;
        }
        bp = next;
    }
    n as u64
}

/// Fills `out` as `spec` says; leaves `ok = 0` if any read faults.
#[inline(always)]
fn read_capture(
    spec: &CaptureSpec,
    now: &SavedRegs,
    at_entry: Option<&EntryRegs>,
    out: &mut Capture,
) {
    let reg = spec.reg as usize;
    // The register, and the one after it (a string's length) where it exists. Plain
    // bounds checks before each index: the verifier must see them.
    let (first, second) = match spec.base {
        capture_base::REG => {
            if reg >= SAVED_REGS {
                return;
            }
            let next = if reg + 1 < SAVED_REGS {
                Some(now.regs[reg + 1])
            } else {
                None
            };
            (now.regs[reg], next)
        }
        capture_base::ENTRY_REG => {
            let Some(r) = at_entry else { return };
            if reg >= ENTRY_SAVED_REGS {
                return;
            }
            let next = if reg + 1 < ENTRY_SAVED_REGS {
                Some(r.regs[reg + 1])
            } else {
                None
            };
            (r.regs[reg], next)
        }
        _ => return,
    };
    if spec.kind == capture_kind::STRING_REGS {
        if let Some(len) = second {
            read_string(first, len, out);
        }
        return;
    }
    let mut value = first;
    for step in 0..MAX_DEREFS {
        if step >= spec.nderefs as usize {
            break;
        }
        let at = value.wrapping_add(spec.derefs[step] as i64 as u64);
        // SAFETY: user-memory read through the helper; a fault is an Err.
        match unsafe { bpf_probe_read_user(at as *const u64) } {
            Ok(v) => value = v,
            Err(_) => return,
        }
    }
    match spec.kind {
        capture_kind::WORD => {
            out.value = value;
            out.ok = 1;
        }
        capture_kind::STRING => {
            let header = value.wrapping_add(spec.string_offset as i64 as u64);
            // SAFETY: as above.
            let ptr = unsafe { bpf_probe_read_user(header as *const u64) };
            let len = unsafe { bpf_probe_read_user((header + 8) as *const u64) };
            if let (Ok(ptr), Ok(len)) = (ptr, len) {
                read_string(ptr, len, out);
            }
        }
        _ => {}
    }
}

#[inline(always)]
fn read_string(ptr: u64, len: u64, out: &mut Capture) {
    out.value = len;
    let n = if len > CAPTURE_BYTES as u64 {
        CAPTURE_BYTES
    } else {
        len as usize
    };
    if n == 0 {
        out.ok = 1;
        return;
    }
    let Some(dst) = out.bytes.get_mut(..n) else {
        return;
    };
    // SAFETY: bounded user-memory read into our buffer.
    if unsafe { bpf_probe_read_user_buf(ptr as *const u8, dst) }.is_ok() {
        out.nbytes = n as u32;
        out.ok = 1;
    }
}

#[inline(always)]
fn wakeup_flags() -> u64 {
    let flags = if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= WAKEUP_BYTES {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    flags as u64
}

#[inline(always)]
fn count_lost() {
    if let Some(slot) = LOST_EVENTS.get_ptr_mut(LOST_EVENTS_SLOT) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *slot += 1 };
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
