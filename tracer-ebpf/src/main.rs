//! Kernel side: two generic uprobe programs for Go functions.
//!
//! They hold no policy. Userspace attaches `go_entry` at a function's first body
//! instruction and `go_return` at each of its `RET`s, with a cookie naming the probe;
//! both copy the same raw facts into the ring buffer: which probe, which goroutine,
//! how deep in its stack, the nine ABI integer registers, and the time.
#![no_std]
#![no_main]

use aya_ebpf::{
    EbpfContext,
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, pt_regs},
    helpers::{
        bpf_get_attach_cookie, bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user,
    },
    macros::{map, uprobe},
    maps::{PerCpuArray, RingBuf},
    programs::ProbeContext,
};
use tracer_common::{
    DEPTH_UNKNOWN, G_STACK_HI_OFFSET, GOID_UNKNOWN, GoCallEvent, LOST_EVENTS_SLOT, split_cookie,
};

/// Offset of `goid` in `runtime.g` for the target's Go version; set by the loader.
#[unsafe(no_mangle)]
static GOID_OFFSET: u64 = 152;

/// Host tgid to accept, or 0 for any process mapping the probed file.
#[unsafe(no_mangle)]
static TARGET_TGID: u32 = 0;

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

#[uprobe]
pub fn go_entry(ctx: ProbeContext) -> u32 {
    capture(&ctx);
    0
}

#[uprobe]
pub fn go_return(ctx: ProbeContext) -> u32 {
    capture(&ctx);
    0
}

#[inline(always)]
fn capture(ctx: &ProbeContext) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    // SAFETY: globals are plain integers the loader may rewrite before load; volatile
    // keeps the compiler from folding in the defaults.
    let target = unsafe { core::ptr::read_volatile(&TARGET_TGID) };
    if target != 0 && target != tgid {
        return;
    }
    let Some(mut entry) = EVENTS.reserve::<GoCallEvent>(0) else {
        count_lost();
        return;
    };
    // SAFETY: ctx.regs points at the trapped task's saved registers for this hit.
    let regs: &pt_regs = unsafe { &*(ctx.as_ptr() as *const pt_regs) };
    // SAFETY: the helper only reads the cookie stored on this attachment.
    let (probe_id, kind) = split_cookie(unsafe { bpf_get_attach_cookie(ctx.as_ptr()) });
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
    entry.write(GoCallEvent {
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
    });
    let flags = if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= WAKEUP_BYTES {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    entry.submit(flags as u64);
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
