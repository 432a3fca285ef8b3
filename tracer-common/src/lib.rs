//! Event and probe-spec layouts shared by the kernel programs and userspace.
//!
//! This is the only definition of what crosses the ring buffer. Every struct is
//! `#[repr(C)]`, 8-byte aligned, with no implicit padding, so both sides agree
//! byte for byte; the `const` assertions below guard the sizes.
#![no_std]

/// Number of integer argument (and result) registers in Go's amd64 register ABI:
/// RAX, RBX, RCX, RDI, RSI, R8, R9, R10, R11.
pub const GO_INT_REGS: usize = 9;

/// `goid` value the kernel writes when the goroutine id could not be read.
pub const GOID_UNKNOWN: u64 = u64::MAX;

/// `stack_depth` value the kernel writes when `g.stack.hi` could not be read.
pub const DEPTH_UNKNOWN: u64 = u64::MAX;

/// Offset of `g.stack.hi` in `runtime.g`: `stack` is the first field of `g` in
/// every Go version (`stack{lo, hi}`), so `hi` is the second word.
pub const G_STACK_HI_OFFSET: u64 = 8;

/// What a probe hit means. Stable numbers: they travel in attach cookies and events.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    /// First instruction of a Go function body (after its stack-growth check).
    FuncEntry = 1,
    /// A `RET` instruction of a Go function.
    FuncReturn = 2,
    /// `runtime.goexit1`: the current goroutine is exiting; its open frames are gone.
    GoroutineExit = 3,
}

impl ProbeKind {
    pub fn from_u32(v: u32) -> Option<ProbeKind> {
        match v {
            1 => Some(ProbeKind::FuncEntry),
            2 => Some(ProbeKind::FuncReturn),
            3 => Some(ProbeKind::GoroutineExit),
            _ => None,
        }
    }
}

/// The attach cookie: the probe id in the low 32 bits, the kind in the high 32.
/// One generic program serves every probe; the cookie tells it which one fired.
pub const fn cookie(probe_id: u32, kind: ProbeKind) -> u64 {
    ((kind as u64) << 32) | probe_id as u64
}

/// Splits a cookie into (probe id, kind number).
pub const fn split_cookie(cookie: u64) -> (u32, u32) {
    (cookie as u32, (cookie >> 32) as u32)
}

/// One probe hit on a Go function, as captured in the kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoCallEvent {
    /// A [`ProbeKind`] number.
    pub kind: u32,
    /// Which probe fired (index into userspace's probe table).
    pub probe_id: u32,
    /// Host process id (tgid) and thread id.
    pub tgid: u32,
    pub tid: u32,
    /// `bpf_ktime_get_ns()` at the hit (CLOCK_MONOTONIC).
    pub ts_ns: u64,
    /// Goroutine id (`g.goid` through R14), or [`GOID_UNKNOWN`].
    pub goid: u64,
    /// `g.stack.hi - RSP` at the hit, or [`DEPTH_UNKNOWN`]. Both the entry probe
    /// (before `PUSH RBP`) and a `RET` see RSP pointing at the return address, so an
    /// entry and its return have the same depth. The distance from the stack top is
    /// kept when Go copies a growing stack, where RSP itself is not.
    pub stack_depth: u64,
    /// The integer ABI registers RAX, RBX, RCX, RDI, RSI, R8, R9, R10, R11: arguments
    /// at entry, results at return.
    pub regs: [u64; GO_INT_REGS],
}

const _: () = assert!(core::mem::size_of::<GoCallEvent>() == 112);
const _: () = assert!(core::mem::align_of::<GoCallEvent>() == 8);

/// Index of the single slot of the per-CPU `LOST_EVENTS` counter.
pub const LOST_EVENTS_SLOT: u32 = 0;

/// Names shared by the eBPF object and the loader.
pub mod names {
    pub const ENTRY_PROGRAM: &str = "go_entry";
    pub const RETURN_PROGRAM: &str = "go_return";
    pub const EVENTS_MAP: &str = "EVENTS";
    pub const LOST_EVENTS_MAP: &str = "LOST_EVENTS";
    pub const GOID_OFFSET_GLOBAL: &str = "GOID_OFFSET";
    pub const TARGET_TGID_GLOBAL: &str = "TARGET_TGID";
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data, repr(C), no padding, every bit pattern valid.
    unsafe impl aya::Pod for super::GoCallEvent {}
}

impl GoCallEvent {
    /// Decodes an event from ring-buffer bytes; `None` if the record is too short.
    pub fn from_bytes(bytes: &[u8]) -> Option<GoCallEvent> {
        if bytes.len() < core::mem::size_of::<GoCallEvent>() {
            return None;
        }
        // SAFETY: length checked above; read_unaligned copes with any alignment and
        // every bit pattern is a valid GoCallEvent.
        Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr() as *const GoCallEvent) })
    }

    /// The event as bytes (for tests and recordings).
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: repr(C) without padding; the slice covers exactly the struct.
        unsafe {
            core::slice::from_raw_parts(
                self as *const GoCallEvent as *const u8,
                core::mem::size_of::<GoCallEvent>(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_round_trip() {
        let c = cookie(0xdead_beef, ProbeKind::FuncReturn);
        assert_eq!(split_cookie(c), (0xdead_beef, 2));
        assert_eq!(
            ProbeKind::from_u32(split_cookie(c).1),
            Some(ProbeKind::FuncReturn)
        );
        assert_eq!(ProbeKind::from_u32(0), None);
    }

    #[test]
    fn event_round_trip_and_short_input() {
        let ev = GoCallEvent {
            kind: 1,
            probe_id: 7,
            tgid: 100,
            tid: 101,
            ts_ns: 123_456,
            goid: 42,
            stack_depth: 0x2f0,
            regs: [1, 2, 3, 4, 5, 6, 7, 8, u64::MAX],
        };
        let bytes = ev.as_bytes();
        assert_eq!(GoCallEvent::from_bytes(bytes), Some(ev));
        assert_eq!(GoCallEvent::from_bytes(&bytes[..bytes.len() - 1]), None);
    }
}
