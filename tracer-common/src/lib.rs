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
/// `g.stack.lo`, stable across Go versions.
pub const G_STACK_LO_OFFSET: u64 = 0;

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
    /// Any other instruction (e.g. a source line inside a function): a plain hit,
    /// with no frame of its own.
    Point = 4,
}

impl ProbeKind {
    pub fn from_u32(v: u32) -> Option<ProbeKind> {
        match v {
            1 => Some(ProbeKind::FuncEntry),
            2 => Some(ProbeKind::FuncReturn),
            3 => Some(ProbeKind::GoroutineExit),
            4 => Some(ProbeKind::Point),
            _ => None,
        }
    }
}

/// Cookie bit: this probe has a [`ProbeSpec`] in the `PROBE_SPECS` map, at the slot in
/// the cookie's bits [`COOKIE_SPEC_SHIFT`].. (an array index: its lookup is inlined by the
/// verifier, where a hash lookup cost a helper call per hit).
pub const COOKIE_HAS_SPEC: u64 = 1 << 63;

/// Where a probe's spec slot sits in its cookie.
pub const COOKIE_SPEC_SHIFT: u32 = 40;

/// Spec slots in `PROBE_SPECS`.
pub const MAX_SPECS: u32 = 4096;

/// Cookie bit: the probe sits on a function's stack-check jump (`JBE morestack`). A hit
/// whose flags say the jump is taken (CF or ZF set) is dropped: the stack grows and the
/// function starts again, so the call is reported on the second pass only.
pub const COOKIE_AT_STACK_CHECK: u64 = 1 << 62;

/// Where a probe's stack-depth adjustment sits in its cookie (bits 52..=60), in 8-byte
/// words. A probe that reads a function's return in its caller, after the callee's frame
/// is gone, adds it so the hit reports the depth the callee's entry had (how entries and
/// returns pair); every other probe has 0.
pub const COOKIE_DEPTH_ADJUST_SHIFT: u32 = 52;
pub const COOKIE_DEPTH_ADJUST_WORDS: u64 = 0x1ff;
/// The largest adjustment a cookie holds, in bytes.
pub const MAX_DEPTH_ADJUST: u64 = COOKIE_DEPTH_ADJUST_WORDS * 8;

/// `cookie` with a depth adjustment of `bytes` (a multiple of 8, at most
/// [`MAX_DEPTH_ADJUST`]; the caller checks).
pub const fn with_depth_adjust(cookie: u64, bytes: u64) -> u64 {
    let words = (bytes / 8) & COOKIE_DEPTH_ADJUST_WORDS;
    (cookie & !(COOKIE_DEPTH_ADJUST_WORDS << COOKIE_DEPTH_ADJUST_SHIFT))
        | (words << COOKIE_DEPTH_ADJUST_SHIFT)
}

/// The depth adjustment of a cookie, in bytes.
pub const fn depth_adjust(cookie: u64) -> u64 {
    ((cookie >> COOKIE_DEPTH_ADJUST_SHIFT) & COOKIE_DEPTH_ADJUST_WORDS) * 8
}

/// RFLAGS bits that make `JBE` jump.
pub const FLAGS_BELOW_OR_EQUAL: u64 = (1 << 0) | (1 << 6);

/// The attach cookie: the probe id in the low 32 bits, the kind above it, and with a spec
/// [`COOKIE_HAS_SPEC`] and its slot (below [`MAX_SPECS`]). One generic program serves
/// every probe; the cookie says which. Entry and RET probes of one function share a probe
/// id (that is how calls pair) but read different things: each has its own slot.
pub const fn cookie(probe_id: u32, kind: ProbeKind, spec_slot: Option<u32>) -> u64 {
    let spec = match spec_slot {
        Some(slot) => COOKIE_HAS_SPEC | (((slot % MAX_SPECS) as u64) << COOKIE_SPEC_SHIFT),
        None => 0,
    };
    spec | ((kind as u64) << 32) | probe_id as u64
}

/// [`cookie`], for a probe on a stack-check jump (see [`COOKIE_AT_STACK_CHECK`]).
pub const fn cookie_at_stack_check(probe_id: u32, kind: ProbeKind, spec_slot: Option<u32>) -> u64 {
    cookie(probe_id, kind, spec_slot) | COOKIE_AT_STACK_CHECK
}

/// Splits a cookie into (probe id, kind number, spec slot).
pub const fn split_cookie(cookie: u64) -> (u32, u32, Option<u32>) {
    (
        cookie as u32,
        ((cookie >> 32) as u32) & 0xff,
        if cookie & COOKIE_HAS_SPEC != 0 {
            Some(((cookie >> COOKIE_SPEC_SHIFT) as u32) % MAX_SPECS)
        } else {
            None
        },
    )
}

/// Captures per probe hit, dereference steps per capture, bytes kept per string.
pub const MAX_CAPTURES: usize = 4;
pub const MAX_DEREFS: usize = 4;
pub const CAPTURE_BYTES: usize = 64;

/// Register numbers in a [`CaptureSpec`]: 0..=8 are the Go ABI integer registers
/// (RAX, RBX, RCX, RDI, RSI, R8, R9, R10, R11), then these.
pub const REG_RSP: u8 = 9;
/// RDX holds the closure context pointer in Go's ABI.
pub const REG_RDX: u8 = 10;
/// R14 holds the current goroutine's `g`.
pub const REG_G: u8 = 11;
/// The remaining general registers, for probes inside a function body where the compiler
/// may keep a value anywhere (e.g. the mutex address at an inlined `Lock`).
pub const REG_RBP: u8 = 12;
pub const REG_R12: u8 = 13;
pub const REG_R13: u8 = 14;
pub const REG_R15: u8 = 15;
/// RFLAGS (ZF, bit 6, says whether a just-executed `CMPXCHG` succeeded).
pub const REG_FLAGS: u8 = 16;
pub const SAVED_REGS: usize = 17;
/// Registers kept from a call's entry for its RET probes: the ABI registers, RSP, RDX and
/// R14 (numbers 0..=11). The rest only matter at the instruction being probed.
pub const ENTRY_SAVED_REGS: usize = 12;

/// Where a capture starts.
pub mod capture_base {
    /// A register at this hit.
    pub const REG: u8 = 1;
    /// A register as it was at the entry of this call (for RET probes; the entry
    /// probe must save registers, see [`super::ProbeSpec::save_entry`]).
    pub const ENTRY_REG: u8 = 2;
}

/// What a capture produces.
pub mod capture_kind {
    /// The 8-byte value after the dereference steps.
    pub const WORD: u8 = 1;
    /// A Go string whose header (ptr, len) is at `value + string_offset` after the
    /// steps: its length, and up to [`super::CAPTURE_BYTES`] bytes.
    pub const STRING: u8 = 2;
    /// A Go string passed in two registers (`reg` = ptr, `reg + 1` = len).
    pub const STRING_REGS: u8 = 3;
    /// A [`STRING`] that is never read when a flag says it is secret: before the last
    /// dereference step, the byte at `value + derefs[MAX_DEREFS - 1]` is read, and when
    /// it is non-zero the capture is [`super::Capture::WITHHELD`] (a sensitive argument:
    /// its value never leaves the target). Uses at most `MAX_DEREFS - 1` steps.
    pub const GUARDED_STRING: u8 = 4;
    /// Two adjacent Go strings (headers at `value + string_offset` and 16 bytes after):
    /// each kept to half of [`super::CAPTURE_BYTES`], the first in the first half of
    /// `bytes`; `value` holds both lengths and `nbytes` both kept counts (low and high
    /// halves). One slot and one header read for e.g. an outcome and its route.
    pub const STRING_PAIR: u8 = 5;
    /// Two adjacent words at `value + string_offset` in one read: the first in `value`,
    /// the second in the first 8 bytes of `bytes` (`nbytes` = 8).
    pub const WORD_PAIR: u8 = 6;
}

/// One value to read at a probe hit: start from a register, follow up to
/// [`MAX_DEREFS`] pointers (`value = *(value + derefs[i])`), then produce a word
/// or a string. Built by userspace from an engine profile.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureSpec {
    pub base: u8,
    pub reg: u8,
    pub kind: u8,
    pub nderefs: u8,
    pub string_offset: i32,
    pub derefs: [i32; MAX_DEREFS],
}

/// What a probe reads besides the fixed registers. Lives in the `PROBE_SPECS` array at
/// the slot its cookie names.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeSpec {
    /// Entry probes: save the registers, for the RET probes' `ENTRY_REG` captures.
    pub save_entry: u8,
    /// RET probes: look up (and drop) the registers saved at entry.
    pub use_entry: u8,
    pub ncaptures: u8,
    /// Entry and RET probes: also walk the user stack (see [`GoStackEvent`]). A probe
    /// with a stack sends a [`GoStackEvent`] and no captures.
    pub stack: u8,
    /// Set by the loader: an unset slot reads as zeros.
    pub present: u8,
    pub _pad: [u8; 3],
    pub captures: [CaptureSpec; MAX_CAPTURES],
}

const _: () = assert!(core::mem::size_of::<CaptureSpec>() == 24);
const _: () = assert!(core::mem::size_of::<ProbeSpec>() == 104);

/// One captured value.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capture {
    /// The word, or a string's full length.
    pub value: u64,
    /// 1 when every read succeeded (a fault leaves 0: the value is unknown; 2 is
    /// [`Capture::WITHHELD`]).
    pub ok: u32,
    /// String bytes kept in `bytes` (at most [`CAPTURE_BYTES`]).
    pub nbytes: u32,
    pub bytes: [u8; CAPTURE_BYTES],
}

impl Capture {
    /// `ok` of a [`capture_kind::GUARDED_STRING`] whose flag was set: nothing was read.
    pub const WITHHELD: u32 = 2;

    pub fn withheld(&self) -> bool {
        self.ok == Self::WITHHELD
    }

    pub fn word(&self) -> Option<u64> {
        (self.ok == 1).then_some(self.value)
    }

    /// The captured string (lossy UTF-8), if it was read; may be a prefix of a
    /// longer one, see [`Capture::truncated`].
    pub fn text(&self) -> Option<&[u8]> {
        let n = (self.nbytes as usize).min(CAPTURE_BYTES);
        (self.ok == 1).then(|| &self.bytes[..n])
    }

    pub fn truncated(&self) -> bool {
        self.value > self.nbytes as u64
    }

    /// Both strings of a [`capture_kind::STRING_PAIR`], if it was read (each may be a
    /// prefix of a longer one).
    pub fn pair(&self) -> Option<(&[u8], &[u8])> {
        if self.ok != 1 {
            return None;
        }
        let half = CAPTURE_BYTES / 2;
        let n1 = ((self.nbytes & 0xffff) as usize).min(half);
        let n2 = ((self.nbytes >> 16) as usize).min(half);
        Some((&self.bytes[..n1], &self.bytes[half..half + n2]))
    }

    /// Both words of a [`capture_kind::WORD_PAIR`], if they were read.
    pub fn word_pair(&self) -> Option<(u64, u64)> {
        if self.ok != 1 || self.nbytes != 8 {
            return None;
        }
        let mut second = [0; 8];
        second.copy_from_slice(&self.bytes[..8]);
        Some((self.value, u64::from_ne_bytes(second)))
    }

    /// The full lengths of a [`capture_kind::STRING_PAIR`]'s strings.
    pub fn pair_lengths(&self) -> (u64, u64) {
        (self.value & 0xffff_ffff, self.value >> 32)
    }
}

/// Where the registers of an open call are saved between its entry and RET.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryKey {
    pub tgid: u32,
    pub _pad: u32,
    pub goid: u64,
    pub stack_depth: u64,
}

/// The registers of an open call, saved at its entry for its RET probes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryRegs {
    pub regs: [u64; ENTRY_SAVED_REGS],
    /// The goroutine's stack bounds at the entry: if the stack has moved by the RET
    /// (grown or shrunk by a copy), a saved register pointing into the old stack is
    /// moved by the same distance, as the Go runtime moved what it points at.
    pub stack_lo: u64,
    pub stack_hi: u64,
}

/// A hit of a probe that has a spec: the fixed part plus its captures.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoCaptureEvent {
    pub call: GoCallEvent,
    /// The capture registers after the Go argument registers (`REG_RSP` onward): the
    /// kernel reads captures from this event's own copy, never from shared scratch.
    pub more_regs: [u64; SAVED_REGS - GO_INT_REGS],
    pub captures: [Capture; MAX_CAPTURES],
}

const _: () = assert!(core::mem::size_of::<Capture>() == 80);
const _: () = assert!(core::mem::size_of::<GoCaptureEvent>() == 120 + 8 * 8 + 4 * 80);

/// Return addresses kept per stack: enough to reach the caller's caller's code in
/// deep Go servers, small enough to keep the per-event work bounded.
pub const MAX_STACK: usize = 32;

/// A hit of a probe whose spec asks for the stack. Only meaningful at a function's entry
/// (after the stack check, before `PUSH RBP`) or at a `RET`: there `[RSP]` is the return
/// address and RBP the caller's frame pointer, so `pcs` is the probed PC, the return
/// address, then the frame-pointer chain (`[bp+8]`, `bp = [bp]`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoStackEvent {
    pub call: GoCallEvent,
    /// Valid entries of `pcs`.
    pub nframes: u64,
    pub pcs: [u64; MAX_STACK],
}

const _: () = assert!(core::mem::size_of::<GoStackEvent>() == 120 + 8 + 8 * MAX_STACK);

impl GoStackEvent {
    /// Decodes a stack event; `None` unless the record has exactly its size.
    pub fn from_bytes(bytes: &[u8]) -> Option<GoStackEvent> {
        if !header_says(bytes, record::STACK, core::mem::size_of::<GoStackEvent>()) {
            return None;
        }
        // SAFETY: length checked; read_unaligned copes with any alignment and every
        // bit pattern is a valid GoStackEvent.
        Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr() as *const GoStackEvent) })
    }

    /// The recorded PCs, innermost first.
    pub fn stack(&self) -> &[u64] {
        &self.pcs[..(self.nframes as usize).min(MAX_STACK)]
    }
}

/// Zeroes the bytes of a ring record that no reader looks at: a capture's string bytes
/// past what [`Capture::text`], [`Capture::pair`] and [`Capture::word_pair`] return (all of
/// them when the capture was not read), a capture record's `more_regs` (the kernel's copy
/// to read captures from; userspace reads the captures), and a stack's PCs past its
/// frames. The kernel leaves in the first and last whatever an earlier record wrote at
/// that place in the ring; a recording keeps zeros instead, which compress several times
/// better, and registers that change at every hit would be stored at every hit. Records of
/// another kind, size or layout version are left as they are.
pub fn zero_unread(bytes: &mut [u8]) {
    use core::mem::{offset_of, size_of};
    if header_says(bytes, record::CAPTURE, size_of::<GoCaptureEvent>()) {
        let regs = offset_of!(GoCaptureEvent, more_regs);
        bytes[regs..regs + size_of::<[u64; SAVED_REGS - GO_INT_REGS]>()].fill(0);
        for i in 0..MAX_CAPTURES {
            let at = offset_of!(GoCaptureEvent, captures) + i * size_of::<Capture>();
            let word = |off: usize| {
                let b = &bytes[at + off..at + off + 4];
                u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
            };
            let (ok, nbytes) = (
                word(offset_of!(Capture, ok)),
                word(offset_of!(Capture, nbytes)),
            );
            let start = at + offset_of!(Capture, bytes);
            let string = &mut bytes[start..start + CAPTURE_BYTES];
            let (first, second) = (nbytes & 0xffff, nbytes >> 16);
            let half = CAPTURE_BYTES / 2;
            // Kept: [..n] of a string or word pair (nbytes <= 64), or both halves'
            // prefixes of a string pair (n1 | n2 << 16).
            let (keep_first, keep_second) = match ok {
                1 if second == 0 => ((first as usize).min(CAPTURE_BYTES), 0),
                1 => ((first as usize).min(half), (second as usize).min(half)),
                _ => (0, 0),
            };
            if keep_second == 0 {
                string[keep_first..].fill(0);
            } else {
                string[keep_first..half].fill(0);
                string[half + keep_second..].fill(0);
            }
        }
    } else if header_says(bytes, record::STACK, size_of::<GoStackEvent>()) {
        let at = offset_of!(GoStackEvent, nframes);
        let mut n = [0; 8];
        n.copy_from_slice(&bytes[at..at + 8]);
        let frames = (u64::from_ne_bytes(n) as usize).min(MAX_STACK);
        bytes[offset_of!(GoStackEvent, pcs) + frames * 8..].fill(0);
    }
}

/// The first bytes of every ring-buffer record: which record it is, in which layout
/// version, and its size. Userspace dispatches on `record` and checks the other two; a
/// record that does not match is counted as malformed, never decoded by its length.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventHeader {
    /// One of [`record`].
    pub record: u16,
    pub version: u16,
    /// The whole record's size in bytes.
    pub size: u32,
}

/// The kinds of ring-buffer records.
pub mod record {
    /// A bare [`super::GoCallEvent`].
    pub const CALL: u16 = 1;
    /// A [`super::GoCaptureEvent`].
    pub const CAPTURE: u16 = 2;
    /// A [`super::GoStackEvent`].
    pub const STACK: u16 = 3;
}

/// The layout version of every record; bumped whenever one changes.
pub const EVENT_LAYOUT_VERSION: u16 = 2;

impl EventHeader {
    pub const fn new(record: u16, size: usize) -> EventHeader {
        EventHeader {
            record,
            version: EVENT_LAYOUT_VERSION,
            size: size as u32,
        }
    }

    /// The header at the start of `bytes`, if they are long enough to hold one.
    pub fn from_bytes(bytes: &[u8]) -> Option<EventHeader> {
        if bytes.len() < core::mem::size_of::<EventHeader>() {
            return None;
        }
        // SAFETY: length checked; every bit pattern is a valid EventHeader.
        Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr() as *const EventHeader) })
    }
}

/// One probe hit on a Go function, as captured in the kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoCallEvent {
    /// Says which record this event starts (a bare call, or the start of a capture or
    /// stack record).
    pub header: EventHeader,
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

const _: () = assert!(core::mem::size_of::<GoCallEvent>() == 120);
const _: () = assert!(core::mem::align_of::<GoCallEvent>() == 8);

/// Slots of the per-CPU `COUNTERS` map: what the kernel side could not do, counted
/// so that nothing fails silently.
pub mod counter {
    /// Events not queued: the ring buffer was full.
    pub const LOST_EVENTS: u32 = 0;
    /// Entry registers a RET probe needs could not be stored (map full or busy).
    pub const ENTRY_SAVE_FAILED: u32 = 1;
    /// A RET probe found no entry registers: the call began before attaching, or they
    /// were evicted; its entry-based captures are then unreadable.
    pub const ENTRY_MISSING: u32 = 2;
    /// A probe whose cookie says it has a spec found none: its captures are missing.
    pub const SPEC_MISSING: u32 = 3;
    pub const COUNT: u32 = 4;
}

/// Index of the lost-events slot of the per-CPU `COUNTERS` map.
pub const LOST_EVENTS_SLOT: u32 = counter::LOST_EVENTS;

/// Names shared by the eBPF object and the loader.
pub mod names {
    /// The one program every probe runs; the attach cookie says what a hit means.
    pub const PROBE_PROGRAM: &str = "go_probe";
    pub const EVENTS_MAP: &str = "EVENTS";
    pub const COUNTERS_MAP: &str = "COUNTERS";
    pub const PROBE_SPECS_MAP: &str = "PROBE_SPECS";
    pub const GOID_OFFSET_GLOBAL: &str = "GOID_OFFSET";
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data, repr(C), no padding, every bit pattern valid.
    unsafe impl aya::Pod for super::GoCallEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ProbeSpec {}
}

impl GoCaptureEvent {
    /// Decodes a capture event; `None` unless the record has exactly its size.
    pub fn from_bytes(bytes: &[u8]) -> Option<GoCaptureEvent> {
        if !header_says(
            bytes,
            record::CAPTURE,
            core::mem::size_of::<GoCaptureEvent>(),
        ) {
            return None;
        }
        // SAFETY: length checked; read_unaligned copes with any alignment and every
        // bit pattern is a valid GoCaptureEvent.
        Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr() as *const GoCaptureEvent) })
    }
}

/// Whether `bytes` are exactly one record of kind `record` and `size` bytes in this
/// layout version, as their header says.
fn header_says(bytes: &[u8], record: u16, size: usize) -> bool {
    bytes.len() == size
        && EventHeader::from_bytes(bytes).is_some_and(|h| {
            h.record == record && h.version == EVENT_LAYOUT_VERSION && h.size as usize == size
        })
}

impl GoCallEvent {
    /// Decodes a bare call record; `None` unless its header says so, in this layout
    /// version, with exactly its size.
    pub fn from_bytes(bytes: &[u8]) -> Option<GoCallEvent> {
        if !header_says(bytes, record::CALL, core::mem::size_of::<GoCallEvent>()) {
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
        let c = cookie(0xdead_beef, ProbeKind::FuncReturn, None);
        assert_eq!(split_cookie(c), (0xdead_beef, 2, None));
        assert_eq!(
            split_cookie(cookie(7, ProbeKind::Point, Some(4095))),
            (7, 4, Some(4095))
        );
        assert_eq!(
            split_cookie(cookie_at_stack_check(7, ProbeKind::Point, Some(0))),
            (7, 4, Some(0))
        );
        assert_eq!(
            ProbeKind::from_u32(split_cookie(c).1),
            Some(ProbeKind::FuncReturn)
        );
        assert_eq!(ProbeKind::from_u32(0), None);
    }

    #[test]
    fn a_depth_adjustment_leaves_the_rest_of_the_cookie_alone() {
        let c = cookie_at_stack_check(0xdead_beef, ProbeKind::FuncReturn, Some(4095));
        let adjusted = with_depth_adjust(c, MAX_DEPTH_ADJUST);
        assert_eq!(depth_adjust(adjusted), MAX_DEPTH_ADJUST);
        assert_eq!(split_cookie(adjusted), split_cookie(c));
        assert_eq!(adjusted & COOKIE_AT_STACK_CHECK, COOKIE_AT_STACK_CHECK);
        assert_eq!(depth_adjust(with_depth_adjust(adjusted, 24)), 24);
        assert_eq!(depth_adjust(c), 0);
    }

    #[test]
    fn event_round_trip_and_short_input() {
        let ev = GoCallEvent {
            header: EventHeader::new(record::CALL, core::mem::size_of::<GoCallEvent>()),
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
        // Another layout version, another record kind, a size that lies: not decoded.
        for header in [
            EventHeader {
                version: EVENT_LAYOUT_VERSION + 1,
                ..ev.header
            },
            EventHeader {
                record: record::STACK,
                ..ev.header
            },
            EventHeader {
                size: ev.header.size + 8,
                ..ev.header
            },
        ] {
            let bad = GoCallEvent { header, ..ev };
            assert_eq!(GoCallEvent::from_bytes(bad.as_bytes()), None);
        }
    }

    /// The bytes of a record of type `T` (a plain `repr(C)` event).
    fn bytes_of<T: Copy>(v: &T) -> [u8; 1024] {
        let mut out = [0xee; 1024];
        // SAFETY: T is a repr(C) event of plain integers, smaller than 1024 bytes.
        let src = unsafe {
            core::slice::from_raw_parts(v as *const T as *const u8, core::mem::size_of::<T>())
        };
        out[..src.len()].copy_from_slice(src);
        out
    }

    #[test]
    fn unread_bytes_are_zeroed_and_what_readers_see_is_kept() {
        let call = GoCallEvent {
            header: EventHeader::new(record::CAPTURE, core::mem::size_of::<GoCaptureEvent>()),
            kind: 1,
            probe_id: 7,
            tgid: 100,
            tid: 101,
            ts_ns: 5,
            goid: 42,
            stack_depth: 0x2f0,
            regs: [9; 9],
        };
        // Stale ring bytes everywhere: a string of 5, a pair of 3 and 4, a word pair, and a
        // capture not read.
        let stale = |ok, nbytes| Capture {
            value: 77,
            ok,
            nbytes,
            bytes: core::array::from_fn(|i| i as u8 + 1),
        };
        let ev = GoCaptureEvent {
            call,
            more_regs: [3; SAVED_REGS - GO_INT_REGS],
            captures: [
                stale(1, 5),
                stale(1, 3 | 4 << 16),
                stale(1, 8),
                stale(0, 64),
            ],
        };
        let size = core::mem::size_of::<GoCaptureEvent>();
        let mut bytes = bytes_of(&ev);
        zero_unread(&mut bytes[..size]);
        let after = GoCaptureEvent::from_bytes(&bytes[..size]).expect("still a capture record");
        assert_eq!(after.call, ev.call);
        assert_eq!(after.more_regs, [0; SAVED_REGS - GO_INT_REGS]);
        let (c, was) = (&after.captures, &ev.captures);
        assert_eq!(c[0].text(), was[0].text());
        assert_eq!(c[1].pair(), was[1].pair());
        assert_eq!(c[2].word_pair(), was[2].word_pair());
        assert_eq!(c[3].word(), None);
        for (i, n) in [(0, 5), (2, 8)] {
            assert!(c[i].bytes[n..].iter().all(|&b| b == 0), "capture {i}");
        }
        assert!(c[1].bytes[3..32].iter().all(|&b| b == 0));
        assert!(c[1].bytes[36..].iter().all(|&b| b == 0));
        assert_eq!(c[3].bytes, [0; CAPTURE_BYTES]);
        assert_eq!((c[3].value, c[3].nbytes), (77, 64));

        // A stack keeps its frames; a record of another layout version is left alone.
        let stack = GoStackEvent {
            call: GoCallEvent {
                header: EventHeader::new(record::STACK, core::mem::size_of::<GoStackEvent>()),
                ..call
            },
            nframes: 3,
            pcs: core::array::from_fn(|i| i as u64 + 100),
        };
        let size = core::mem::size_of::<GoStackEvent>();
        let mut bytes = bytes_of(&stack);
        zero_unread(&mut bytes[..size]);
        let after = GoStackEvent::from_bytes(&bytes[..size]).expect("still a stack record");
        assert_eq!(after.stack(), stack.stack());
        assert!(after.pcs[3..].iter().all(|&pc| pc == 0));
        let mut other = bytes_of(&GoCaptureEvent {
            call: GoCallEvent {
                header: EventHeader {
                    version: EVENT_LAYOUT_VERSION + 1,
                    ..ev.call.header
                },
                ..call
            },
            ..ev
        });
        let untouched = other;
        zero_unread(&mut other[..core::mem::size_of::<GoCaptureEvent>()]);
        assert_eq!(other, untouched);
    }
}
