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
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
    programs::ProbeContext,
};
use core::mem::size_of;

use tracer_common::{
    CAPTURE_BYTES, COOKIE_AT_STACK_CHECK, Capture, CaptureSpec, DEPTH_UNKNOWN, ENTRY_SAVED_REGS,
    EntryKey, EntryRegs, EventHeader, FLAGS_BELOW_OR_EQUAL, G_STACK_HI_OFFSET, G_STACK_LO_OFFSET,
    GO_INT_REGS, GOID_UNKNOWN, GoCallEvent, GoCaptureEvent, GoStackEvent, MAX_CAPTURES, MAX_DEREFS,
    MAX_SPECS, MAX_STACK, ProbeSpec, SAVED_REGS, capture_base, capture_kind, counter, depth_adjust,
    record, split_cookie,
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

/// The fill level is asked only when the hit's clock has these low bits clear (one
/// hit in 16): the query is a helper call, and a burst past `WAKEUP_BYTES` is still
/// noticed within a few kilobytes.
const WAKEUP_SAMPLE_MASK: u64 = 0xf;

/// Events that found the ring buffer full. Userspace sums the CPUs and reports it.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// What each probe with a spec reads, at the slot its cookie names.
#[map]
static PROBE_SPECS: Array<ProbeSpec> = Array::with_max_entries(MAX_SPECS, 0);

/// Registers of open calls whose RET probes read entry arguments. LRU, so frames a
/// panic skipped cannot fill it.
#[map]
static ENTRY_REGS: LruHashMap<EntryKey, EntryRegs> = LruHashMap::with_max_entries(65536, 0);

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
    let (probe_id, kind, spec_slot) = split_cookie(raw_cookie);
    // SAFETY: globals are plain integers the loader rewrites before load; volatile
    // keeps the compiler from folding in the default.
    let goid_offset = unsafe { core::ptr::read_volatile(&GOID_OFFSET) };
    // R14 holds the current g in Go's register ABI.
    let g = regs.r14;
    // SAFETY: user-memory reads through the helper; a fault yields Err, never a crash.
    let goid =
        unsafe { bpf_probe_read_user((g + goid_offset) as *const u64) }.unwrap_or(GOID_UNKNOWN);
    let stack_hi = unsafe { bpf_probe_read_user((g + G_STACK_HI_OFFSET) as *const u64) };
    // A probe in a caller, after the callee returned, adds what the callee's frame held
    // (see COOKIE_DEPTH_ADJUST_SHIFT): its hit pairs with the callee's entry.
    let stack_depth = match stack_hi {
        Ok(hi) if hi > regs.rsp => hi - regs.rsp + depth_adjust(raw_cookie),
        _ => DEPTH_UNKNOWN,
    };
    let call = GoCallEvent {
        // Rewritten below when the call starts a capture or stack record.
        header: EventHeader::new(record::CALL, size_of::<GoCallEvent>()),
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
    let spec = match spec_slot {
        Some(slot) => {
            let found = PROBE_SPECS.get(slot).filter(|s| s.present != 0);
            if found.is_none() {
                count(counter::SPEC_MISSING);
            }
            found
        }
        None => None,
    };
    match spec {
        None => {
            let Some(mut entry) = EVENTS.reserve::<GoCallEvent>(0) else {
                count(counter::LOST_EVENTS);
                return;
            };
            entry.write(call);
            entry.submit(wakeup_flags(call.ts_ns));
        }
        Some(spec) if spec.stack != 0 => {
            let Some(mut entry) = EVENTS.reserve::<GoStackEvent>(0) else {
                count(counter::LOST_EVENTS);
                return;
            };
            let out = entry.as_mut_ptr();
            // SAFETY: `out` points at reserved ring memory sized for GoStackEvent; every
            // field is written before submit.
            unsafe {
                (*out).call = call;
                (*out).call.header = EventHeader::new(record::STACK, size_of::<GoStackEvent>());
                (*out).nframes = walk_stack(regs, &mut (*out).pcs);
            }
            entry.submit(wakeup_flags(call.ts_ns));
        }
        Some(spec) => {
            // Captures read the registers from this record's own copy (`call.regs`,
            // `more_regs`), never from a per-CPU scratch slot: uprobe programs run
            // preemptibly, and another task's hit on the same CPU would overwrite one.
            let key = EntryKey {
                tgid,
                _pad: 0,
                goid,
                stack_depth,
            };
            let stack_hi_now = stack_hi.unwrap_or(0);
            if spec.save_entry != 0 {
                // SAFETY: a user-memory read through the helper; a fault gives 0.
                let stack_lo =
                    unsafe { bpf_probe_read_user((g + G_STACK_LO_OFFSET) as *const u64) }
                        .unwrap_or(0);
                let kept = EntryRegs {
                    regs: [
                        regs.rax, regs.rbx, regs.rcx, regs.rdi, regs.rsi, regs.r8, regs.r9,
                        regs.r10, regs.r11, regs.rsp, regs.rdx, regs.r14,
                    ],
                    stack_lo,
                    stack_hi: stack_hi_now,
                };
                if ENTRY_REGS.insert(key, kept, 0).is_err() {
                    count(counter::ENTRY_SAVE_FAILED);
                }
            }
            // A copy: the map slot may be reused once removed.
            let entry_regs = if spec.use_entry != 0 {
                let found = unsafe { ENTRY_REGS.get(key) }.copied();
                if found.is_some() {
                    let _ = ENTRY_REGS.remove(key);
                } else {
                    count(counter::ENTRY_MISSING);
                }
                found
            } else {
                None
            };
            let Some(mut entry) = EVENTS.reserve::<GoCaptureEvent>(0) else {
                count(counter::LOST_EVENTS);
                return;
            };
            let out = entry.as_mut_ptr();
            // SAFETY: `out` points at reserved ring memory sized for GoCaptureEvent;
            // every field is written before submit.
            unsafe {
                (*out).call = call;
                (*out).call.header = EventHeader::new(record::CAPTURE, size_of::<GoCaptureEvent>());
                (*out).more_regs = [
                    regs.rsp,
                    regs.rdx,
                    regs.r14,
                    regs.rbp,
                    regs.r12,
                    regs.r13,
                    regs.r15,
                    regs.eflags,
                ];
                for i in 0..MAX_CAPTURES {
                    let slot = &mut (*out).captures[i];
                    slot.value = 0;
                    slot.ok = 0;
                    slot.nbytes = 0;
                    if i < spec.ncaptures as usize {
                        read_capture(
                            &spec.captures[i],
                            &(*out).call.regs,
                            &(*out).more_regs,
                            entry_regs.as_ref(),
                            stack_hi_now,
                            slot,
                        );
                    }
                }
            }
            entry.submit(wakeup_flags(call.ts_ns));
        }
    }
}

/// Register `i` of the capture numbering (`tracer_common::REG_*`), from the event's
/// own copy of the hit's registers.
#[inline(always)]
fn reg_at(
    call: &[u64; GO_INT_REGS],
    more: &[u64; SAVED_REGS - GO_INT_REGS],
    i: usize,
) -> Option<u64> {
    if i < GO_INT_REGS {
        Some(call[i])
    } else if i - GO_INT_REGS < SAVED_REGS - GO_INT_REGS {
        Some(more[i - GO_INT_REGS])
    } else {
        None
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
    now: &[u64; GO_INT_REGS],
    more: &[u64; SAVED_REGS - GO_INT_REGS],
    at_entry: Option<&EntryRegs>,
    stack_hi_now: u64,
    out: &mut Capture,
) {
    let reg = spec.reg as usize;
    // The register, and the one after it (a string's length) where it exists. Plain
    // bounds checks before each index: the verifier must see them.
    let (first, second) = match spec.base {
        capture_base::REG => {
            let Some(first) = reg_at(now, more, reg) else {
                return;
            };
            (first, reg_at(now, more, reg + 1))
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
            let mut first = r.regs[reg];
            // The goroutine's stack moved since the entry: so did anything on it.
            if r.stack_hi != 0
                && stack_hi_now != 0
                && r.stack_hi != stack_hi_now
                && first >= r.stack_lo
                && first < r.stack_hi
            {
                first = first.wrapping_sub(r.stack_hi).wrapping_add(stack_hi_now);
            }
            (first, next)
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
    let guarded = spec.kind == capture_kind::GUARDED_STRING;
    for step in 0..MAX_DEREFS {
        if step >= spec.nderefs as usize {
            break;
        }
        // A nil pointer (a nil interface, an unarmed field) is followed no further: the
        // read would fault anyway, and each helper call costs more than the test.
        if value < NULL_PAGE {
            return;
        }
        // A secret's flag, read before the last step: a set flag withholds the string.
        if guarded && step + 1 == spec.nderefs as usize {
            let flag = value.wrapping_add(spec.derefs[MAX_DEREFS - 1] as i64 as u64);
            // SAFETY: user-memory read through the helper; a fault is an Err.
            match unsafe { bpf_probe_read_user(flag as *const u8) } {
                Ok(0) => {}
                Ok(_) => {
                    out.ok = Capture::WITHHELD;
                    return;
                }
                Err(_) => return,
            }
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
        capture_kind::STRING | capture_kind::GUARDED_STRING => {
            if value < NULL_PAGE && spec.string_offset < NULL_PAGE as i32 {
                return;
            }
            let header = value.wrapping_add(spec.string_offset as i64 as u64);
            // The string header (pointer, length) in one read: each helper call costs
            // more than the bytes it copies.
            // SAFETY: as above.
            if let Ok([ptr, len]) = unsafe { bpf_probe_read_user(header as *const [u64; 2]) } {
                read_string(ptr, len, out);
            }
        }
        capture_kind::WORD_PAIR => {
            if value < NULL_PAGE && spec.string_offset < NULL_PAGE as i32 {
                return;
            }
            let at = value.wrapping_add(spec.string_offset as i64 as u64);
            // SAFETY: as above.
            if let Ok([first, second]) = unsafe { bpf_probe_read_user(at as *const [u64; 2]) } {
                out.value = first;
                out.bytes[..8].copy_from_slice(&second.to_ne_bytes());
                out.nbytes = 8;
                out.ok = 1;
            }
        }
        capture_kind::STRING_PAIR => {
            if value < NULL_PAGE && spec.string_offset < NULL_PAGE as i32 {
                return;
            }
            let header = value.wrapping_add(spec.string_offset as i64 as u64);
            // Both headers in one read.
            // SAFETY: as above.
            if let Ok([p1, l1, p2, l2]) = unsafe { bpf_probe_read_user(header as *const [u64; 4]) }
            {
                read_string_pair(p1, l1, p2, l2, out);
            }
        }
        _ => {}
    }
}

/// Below this address nothing is mapped (`vm.mmap_min_addr`): a pointer there is nil.
const NULL_PAGE: u64 = 4096;

/// Half of the capture's bytes per string.
const HALF: usize = CAPTURE_BYTES / 2;

#[inline(always)]
fn read_string_pair(p1: u64, l1: u64, p2: u64, l2: u64, out: &mut Capture) {
    let n1 = if l1 > HALF as u64 { HALF } else { l1 as usize };
    let n2 = if l2 > HALF as u64 { HALF } else { l2 as usize };
    if n1 > 0 {
        let Some(dst) = out.bytes.get_mut(..n1) else {
            return;
        };
        // SAFETY: bounded user-memory read into our buffer.
        if unsafe { bpf_probe_read_user_buf(p1 as *const u8, dst) }.is_err() {
            return;
        }
    }
    if n2 > 0 {
        let Some(dst) = out.bytes.get_mut(HALF..HALF + n2) else {
            return;
        };
        // SAFETY: as above.
        if unsafe { bpf_probe_read_user_buf(p2 as *const u8, dst) }.is_err() {
            return;
        }
    }
    out.value = (l1 & 0xffff_ffff) | (l2 << 32);
    out.nbytes = (n1 as u32) | ((n2 as u32) << 16);
    out.ok = 1;
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
fn wakeup_flags(ts_ns: u64) -> u64 {
    let flags = if ts_ns & WAKEUP_SAMPLE_MASK == 0
        && EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= WAKEUP_BYTES
    {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    flags as u64
}

/// Adds one to a per-CPU counter (`tracer_common::counter`).
#[inline(always)]
fn count(slot: u32) {
    if let Some(c) = COUNTERS.get_ptr_mut(slot) {
        // SAFETY: a live, aligned u64 of this CPU's slot. The program runs preemptibly,
        // so a hit of another task on this CPU between this load and store could lose
        // one count (the BPF target has no atomic add in `core`); that interleaving is
        // rare, and the counts are only ever undercounts.
        unsafe { *c += 1 };
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
